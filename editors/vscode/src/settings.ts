// VS Code settings → ghostline-lsp settings. Pure (no `vscode` import) so it is unit-tested.

/** ghostline-lsp's setting names (lsp-server/src/settings.rs), all under `ghostline.` here. */
export const LSP_SETTING_KEYS = [
  'backendUrl',
  'apiKeyEnv',
  'caFile',
  'model',
  'fimTemplate',
  'maxTokens',
  'maxLines',
  'multiline',
  'debounceMs',
  'enabledLanguages',
  'timeoutMs',
  'latencyTargetMs',
  'contextTokens',
  'temperature',
  'contextMode',
  'promptFamily',
  'retrievedShare',
  'similarWindows',
  'grammarsDir',
  'excludeGlobs',
  'maxIndexedFiles',
  'stats',
  'shareStats',
] as const;

export type LspSettings = Partial<Record<(typeof LSP_SETTING_KEYS)[number], unknown>>;

/** The subset of a configuration section that VS Code needs to read. */
export interface ConfigLike {
  get<T>(key: string): T | undefined;
}

/**
 * The object sent as `initializationOptions` and in `workspace/didChangeConfiguration`:
 * only keys the user set to a usable value; empty strings mean "the server's default"
 * (`model`, `fimTemplate` → null), so the server picks what the backend reports.
 */
export function toLspSettings(config: ConfigLike): LspSettings {
  const out: LspSettings = {};
  for (const key of LSP_SETTING_KEYS) {
    const value = config.get<unknown>(key);
    if (value === undefined) {
      continue;
    }
    if ((key === 'model' || key === 'fimTemplate' || key === 'caFile') && (value === '' || value === null)) {
      out[key] = null;
      continue;
    }
    if (key === 'backendUrl' && typeof value === 'string') {
      out[key] = value.trim().replace(/\/+$/, '');
      continue;
    }
    out[key] = value;
  }
  return out;
}

/** Whether a configuration change touches settings the server must be told about. */
export function affectsServer(affects: (section: string) => boolean): boolean {
  return LSP_SETTING_KEYS.some((key) => affects(`ghostline.${key}`));
}

/** Whether the server has to be restarted (its command changed). */
export function needsRestart(affects: (section: string) => boolean): boolean {
  return affects('ghostline.serverPath');
}
