// Ghostline for VS Code: starts ghostline-lsp and shows its inline completions as ghost
// text (vscode-languageclient's InlineCompletionItemFeature, LSP 3.18).
import * as vscode from 'vscode';
import {
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  LogMessageNotification,
  ServerOptions,
  ShowMessageNotification,
  State as ClientState,
} from 'vscode-languageclient/node';

import { resolveServerPath } from './serverPath';
import { affectsServer, needsRestart, toLspSettings } from './settings';
import { look, StatusModel } from './status';

let client: LanguageClient | undefined;
let output: vscode.LogOutputChannel;
let statusItem: vscode.StatusBarItem;
let status: StatusModel;
let statsOutput: vscode.OutputChannel | undefined;

function config() {
  return vscode.workspace.getConfiguration('ghostline');
}

function enabled(): boolean {
  return config().get<boolean>('enable') !== false;
}

function render() {
  const l = look(status.state, status.detail);
  statusItem.text = l.text;
  // The tooltip also opens the acceptance stats (ghostline-lsp's `ghostline.stats` table).
  const tooltip = new vscode.MarkdownString(
    `${l.tooltip.replace(/\n/g, '  \n')}\n\n[$(graph) Acceptance stats](command:ghostline.showStats)`,
    true,
  );
  tooltip.isTrusted = { enabledCommands: ['ghostline.showStats'] };
  statusItem.tooltip = tooltip;
  statusItem.backgroundColor = l.background ? new vscode.ThemeColor(l.background) : undefined;
  statusItem.command = status.state === 'stopped' ? 'ghostline.showLog' : 'ghostline.toggleEnabled';
}

async function startClient(context: vscode.ExtensionContext) {
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath;
  const found = resolveServerPath(config().get<string>('serverPath'), process.env, folder);
  if (!found.path) {
    output.error(found.error ?? 'no ghostline-lsp');
    status.setRunning(false, found.error ?? 'no ghostline-lsp');
    void vscode.window.showWarningMessage(`Ghostline: ${found.error}`, 'Open settings').then((choice) => {
      if (choice) {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'ghostline.serverPath');
      }
    });
    return;
  }
  output.info(`starting ${found.path}`);
  const serverOptions: ServerOptions = {
    command: found.path,
    args: [],
    options: { env: { ...process.env, GHOSTLINE_LSP_LOG: process.env.GHOSTLINE_LSP_LOG ?? 'info' } },
  };
  const clientOptions: LanguageClientOptions = {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    initializationOptions: toLspSettings(config()),
    outputChannel: output,
    middleware: {
      provideInlineCompletionItems: async (document, position, context, token, next) => {
        if (!enabled()) {
          return null;
        }
        status.requestStarted();
        let answered = false;
        try {
          const result = await next(document, position, context, token);
          const items = Array.isArray(result) ? result : result?.items;
          answered = !!items && items.length > 0;
          return result;
        } finally {
          status.requestEnded(answered);
        }
      },
    },
  };
  client = new LanguageClient('ghostline', 'Ghostline', serverOptions, clientOptions);
  client.onDidChangeState((event) => {
    if (event.newState === ClientState.Running) {
      status.setRunning(true);
    } else if (event.newState === ClientState.Stopped) {
      status.setRunning(false, 'ghostline-lsp stopped (see the log)');
    }
  });
  client.onNotification(ShowMessageNotification.type, (message) => {
    status.serverMessage(message.type, message.message);
    output.warn(message.message);
    if (message.type === 1) {
      void vscode.window.showErrorMessage(message.message);
    } else if (message.type === 2) {
      void vscode.window.showWarningMessage(message.message);
    }
  });
  client.onNotification(LogMessageNotification.type, (message) => {
    status.serverMessage(message.type, message.message);
    output.info(message.message);
  });
  try {
    await client.start();
  } catch (error) {
    output.error(`ghostline-lsp failed to start: ${error}`);
    status.setRunning(false, `ghostline-lsp failed to start: ${error}`);
  }
}

/** The acceptance stats table (today and the last 7 days), as ghostline-lsp prints it. */
async function showStats() {
  if (!client || !client.isRunning()) {
    void vscode.window.showWarningMessage('Ghostline: ghostline-lsp is not running (see the log).');
    return;
  }
  const table = await client.sendRequest(ExecuteCommandRequest.type, {
    command: 'ghostline.stats',
    arguments: [{ days: 7 }],
  });
  statsOutput ??= vscode.window.createOutputChannel('Ghostline Stats');
  statsOutput.clear();
  statsOutput.append(typeof table === 'string' ? table : JSON.stringify(table));
  statsOutput.show(true);
}

/**
 * VS Code's own partial accept, then `ghostline.accept` with `kind` so the server counts a
 * partly accepted suggestion (VS Code 1.91 has no stable hook for partial accepts). The
 * server counts it only for the suggestion it showed last in that document.
 */
async function acceptPart(kind: 'word' | 'line') {
  const editor = vscode.window.activeTextEditor;
  await vscode.commands.executeCommand(
    kind === 'word' ? 'editor.action.inlineSuggest.acceptNextWord' : 'editor.action.inlineSuggest.acceptNextLine',
  );
  if (client?.isRunning() && editor) {
    const uri = client.code2ProtocolConverter.asUri(editor.document.uri);
    void client
      .sendRequest(ExecuteCommandRequest.type, { command: 'ghostline.accept', arguments: [{ uri, kind }] })
      .catch((error) => output.warn(`ghostline.accept: ${error}`));
  }
}

async function stopClient() {
  const old = client;
  client = undefined;
  if (old) {
    try {
      await old.stop();
    } catch (error) {
      output.warn(`stopping ghostline-lsp: ${error}`);
    }
  }
}

export async function activate(context: vscode.ExtensionContext) {
  output = vscode.window.createOutputChannel('Ghostline', { log: true });
  statusItem = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
  statusItem.name = 'Ghostline';
  status = new StatusModel(() => render());
  status.setEnabled(enabled());
  statusItem.show();
  context.subscriptions.push(output, statusItem);

  context.subscriptions.push(
    vscode.commands.registerCommand('ghostline.toggleEnabled', async () => {
      await config().update('enable', !enabled(), vscode.ConfigurationTarget.Global);
    }),
    vscode.commands.registerCommand('ghostline.triggerSuggestion', async () => {
      if (!enabled()) {
        await config().update('enable', true, vscode.ConfigurationTarget.Global);
      }
      await vscode.commands.executeCommand('editor.action.inlineSuggest.trigger');
    }),
    vscode.commands.registerCommand('ghostline.showLog', () => output.show(true)),
    vscode.commands.registerCommand('ghostline.showStats', showStats),
    vscode.commands.registerCommand('ghostline.acceptNextWord', () => acceptPart('word')),
    vscode.commands.registerCommand('ghostline.acceptNextLine', () => acceptPart('line')),
    { dispose: () => statsOutput?.dispose() },
    vscode.commands.registerCommand('ghostline.restartServer', async () => {
      await stopClient();
      await startClient(context);
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('ghostline.enable')) {
        status.setEnabled(enabled());
      }
      if (needsRestart((s) => event.affectsConfiguration(s))) {
        await stopClient();
        await startClient(context);
      } else if (client && affectsServer((s) => event.affectsConfiguration(s))) {
        await client.sendNotification('workspace/didChangeConfiguration', {
          settings: { ghostline: toLspSettings(config()) },
        });
      }
    }),
  );
  await startClient(context);
}

export async function deactivate() {
  await stopClient();
}
