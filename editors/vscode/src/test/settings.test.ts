import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

import { affectsServer, LSP_SETTING_KEYS, needsRestart, toLspSettings } from '../settings';

const root = path.resolve(__dirname, '..', '..');

function fakeConfig(values: Record<string, unknown>) {
  return { get: <T>(key: string) => values[key] as T | undefined };
}

test('every LSP setting is a contributed setting and the other way round', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const contributed = Object.keys(pkg.contributes.configuration.properties)
    .map((k) => k.replace(/^ghostline\./, ''))
    .filter((k) => !['enable', 'serverPath', 'trace.server'].includes(k));
  assert.deepEqual([...contributed].sort(), [...LSP_SETTING_KEYS].sort());
});

test('the setting names are the ones ghostline-lsp reads', () => {
  // lsp-server/src/settings.rs: snake_case fields, serde camelCase.
  const source = fs.readFileSync(path.join(root, '..', '..', 'lsp-server', 'src', 'settings.rs'), 'utf8');
  const body = source.split('pub struct Settings {')[1].split('\n}')[0];
  const fields = [...body.matchAll(/^\s*pub (\w+):/gm)].map((m) => m[1].replace(/_(\w)/g, (_, c: string) => c.toUpperCase()));
  assert.ok(fields.length > 5);
  assert.deepEqual([...fields].sort(), [...LSP_SETTING_KEYS].sort());
});

test('defaults in package.json match the server defaults that the README promises', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const props = pkg.contributes.configuration.properties;
  assert.equal(props['ghostline.backendUrl'].default, 'http://127.0.0.1:8123');
  assert.equal(props['ghostline.apiKeyEnv'].default, 'GHOSTLINE_API_KEY');
  assert.deepEqual(props['ghostline.multiline'].enum, ['auto', 'always', 'never']);
});

test('toLspSettings keeps set keys, maps empty model/template to null, trims the URL', () => {
  const out = toLspSettings(
    fakeConfig({ backendUrl: ' http://gpu:8123/ ', model: '', fimTemplate: null, maxTokens: 64, unknown: 1 }),
  );
  assert.deepEqual(out, { backendUrl: 'http://gpu:8123', model: null, fimTemplate: null, maxTokens: 64 });
});

test('configuration changes: server settings are sent, a new server path restarts', () => {
  assert.equal(affectsServer((s) => s === 'ghostline.maxTokens'), true);
  assert.equal(affectsServer((s) => s === 'ghostline.enable'), false);
  assert.equal(needsRestart((s) => s === 'ghostline.serverPath'), true);
  assert.equal(needsRestart((s) => s === 'ghostline.maxTokens'), false);
});
