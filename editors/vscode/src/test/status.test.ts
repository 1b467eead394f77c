import { test } from 'node:test';
import * as assert from 'node:assert/strict';

import { look, State, StatusModel } from '../status';

test('starting → ready → working → ready', () => {
  const seen: State[] = [];
  const model = new StatusModel((s) => seen.push(s));
  assert.equal(model.state, 'starting');
  model.setRunning(true);
  model.requestStarted();
  model.requestEnded(true);
  assert.deepEqual(seen, ['ready', 'working', 'ready']);
});

test('a backend warning makes it unreachable until a suggestion comes back', () => {
  const model = new StatusModel();
  model.setRunning(true);
  model.serverMessage(2, 'ghostline: cannot connect at http://127.0.0.1:8123; suggestions pause');
  assert.equal(model.state, 'unreachable');
  model.requestStarted();
  assert.equal(model.state, 'working');
  model.requestEnded(false);
  assert.equal(model.state, 'unreachable');
  model.serverMessage(3, 'ghostline: the backend at http://127.0.0.1:8123 answers again');
  assert.equal(model.state, 'ready');
  model.serverMessage(2, 'ghostline: timed out');
  model.requestStarted();
  model.requestEnded(true);
  assert.equal(model.state, 'ready');
});

test('messages from elsewhere do not change the state', () => {
  const model = new StatusModel();
  model.setRunning(true);
  model.serverMessage(2, 'something else went wrong');
  assert.equal(model.state, 'ready');
});

test('disabled wins over everything; a stopped server says why', () => {
  const model = new StatusModel();
  model.setRunning(true);
  model.requestStarted();
  model.setEnabled(false);
  assert.equal(model.state, 'disabled');
  model.setEnabled(true);
  model.setRunning(false, 'ghostline-lsp stopped');
  assert.equal(model.state, 'stopped');
  assert.match(look('stopped', 'ghostline-lsp stopped').tooltip, /stopped/);
});

test('every state has a look, and the attention states are coloured', () => {
  for (const s of ['starting', 'ready', 'working', 'unreachable', 'disabled', 'stopped'] as State[]) {
    assert.match(look(s).text, /Ghostline/);
  }
  assert.ok(look('unreachable').background);
  assert.equal(look('ready').background, undefined);
});
