import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';

const root = path.resolve(__dirname, '..', '..');

test('every contributed command is registered by the extension, and every keybinding names one', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const source = fs.readFileSync(path.join(root, 'src', 'extension.ts'), 'utf8');
  const contributed: string[] = pkg.contributes.commands.map((c: { command: string }) => c.command);
  for (const command of ['ghostline.showStats', 'ghostline.acceptNextWord', 'ghostline.acceptNextLine']) {
    assert.ok(contributed.includes(command), command);
  }
  for (const command of contributed) {
    assert.ok(source.includes(`registerCommand('${command}'`), `${command} is not registered`);
  }
  for (const binding of pkg.contributes.keybindings) {
    assert.ok(contributed.includes(binding.command), binding.command);
  }
});

test('the stats settings default to local on, shared off', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
  const props = pkg.contributes.configuration.properties;
  assert.equal(props['ghostline.stats'].default, true);
  assert.equal(props['ghostline.shareStats'].default, false);
});
