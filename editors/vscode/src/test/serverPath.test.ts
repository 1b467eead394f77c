import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import { resolveServerPath } from '../serverPath';

function tempBin(name: string, mode = 0o755): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ghostline-vscode-'));
  const file = path.join(dir, name);
  fs.writeFileSync(file, '#!/bin/sh\n');
  fs.chmodSync(file, mode);
  return file;
}

test('found on PATH when no setting', () => {
  const bin = tempBin('ghostline-lsp');
  const found = resolveServerPath('', { PATH: ['/nonexistent', path.dirname(bin)].join(path.delimiter) });
  assert.equal(found.path, bin);
});

test('not found on PATH says so', () => {
  const found = resolveServerPath(undefined, { PATH: '/nonexistent' });
  assert.equal(found.path, undefined);
  assert.match(found.error ?? '', /not on PATH/);
});

test('a non-executable file on PATH is skipped', { skip: process.platform === 'win32' }, () => {
  const bin = tempBin('ghostline-lsp', 0o644);
  assert.equal(resolveServerPath('', { PATH: path.dirname(bin) }).path, undefined);
});

test('the setting wins, relative to the workspace folder', () => {
  const bin = tempBin('ghostline-lsp');
  const dir = path.dirname(bin);
  assert.equal(resolveServerPath(bin, { PATH: '' }).path, bin);
  assert.equal(resolveServerPath('ghostline-lsp', { PATH: '' }, dir).path, bin);
  assert.match(resolveServerPath('/nope/ghostline-lsp', { PATH: dir }).error ?? '', /not an executable/);
});

test('~ expands to the home directory', () => {
  const found = resolveServerPath('~/definitely-not-here/ghostline-lsp', { PATH: '' });
  assert.match(found.error ?? '', /not an executable/);
});
