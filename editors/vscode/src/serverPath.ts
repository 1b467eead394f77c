// Finding the ghostline-lsp binary. Pure Node, unit-tested.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

function isExecutable(file: string): boolean {
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) {
      return false;
    }
    if (process.platform === 'win32') {
      return true;
    }
    fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * The server command: the `ghostline.serverPath` setting when set (`~` expanded, relative
 * paths against the first workspace folder), otherwise `ghostline-lsp` found on PATH.
 * Returns undefined with the reason when there is none.
 */
export function resolveServerPath(
  setting: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  workspaceFolder?: string,
): { path?: string; error?: string } {
  const configured = (setting ?? '').trim();
  if (configured !== '') {
    let candidate = configured.replace(/^~(?=$|[\\/])/, os.homedir());
    if (!path.isAbsolute(candidate) && workspaceFolder) {
      candidate = path.join(workspaceFolder, candidate);
    }
    if (isExecutable(candidate)) {
      return { path: candidate };
    }
    return { error: `ghostline.serverPath ${configured} is not an executable file` };
  }
  const names = process.platform === 'win32' ? ['ghostline-lsp.exe', 'ghostline-lsp'] : ['ghostline-lsp'];
  const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter((d) => d !== '');
  for (const dir of dirs) {
    for (const name of names) {
      const candidate = path.join(dir, name);
      if (isExecutable(candidate)) {
        return { path: candidate };
      }
    }
  }
  return { error: 'ghostline-lsp is not on PATH; set ghostline.serverPath' };
}
