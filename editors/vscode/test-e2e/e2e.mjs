// Drives a real VS Code (code-server) in Debian's Chromium: opens a file, types, waits for
// Ghostline's ghost text, accepts it with Tab, saves. The caller checks the file on disk.
// env: CODE_SERVER_URL, WORKSPACE, FILE (relative to WORKSPACE), LINE, TYPE, EXPECT,
//      SETTLE_MS (a person's pause between placing the cursor and typing), SCREENSHOT_DIR,
//      CHROMIUM (default /usr/bin/chromium), TIMEOUT_MS
import { chromium } from 'playwright-core';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const env = (name, fallback) => process.env[name] ?? fallback;
const url = env('CODE_SERVER_URL');
const workspace = env('WORKSPACE');
const file = env('FILE', 'add.py');
const line = env('LINE', '2');
const typed = env('TYPE', 'return ');
const expect = env('EXPECT', 'a + b');
const settle = Number(env('SETTLE_MS', '1000'));
const shots = env('SCREENSHOT_DIR', '.');
const timeout = Number(env('TIMEOUT_MS', '120000'));

const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'ghostline-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
  viewport: { width: 1280, height: 800 },
});
const page = context.pages()[0] ?? (await context.newPage());
const step = (what) => console.log(`[e2e] ${what}`);
try {
  step(`open ${url}/?folder=${workspace}`);
  await page.goto(`${url}/?folder=${encodeURIComponent(workspace)}`, { timeout });
  await page.waitForSelector('.monaco-workbench', { timeout });
  step('wait for the Ghostline status bar item (the extension is active)');
  await page.waitForSelector('.statusbar-item:has-text("Ghostline")', { timeout });
  step(`quick open ${file}`);
  await page.keyboard.press('Control+P');
  await page.waitForSelector('.quick-input-widget input', { timeout });
  await page.keyboard.type(file, { delay: 20 });
  await page.waitForSelector(`.quick-input-list .monaco-list-row:has-text("${file}")`, { timeout });
  await page.keyboard.press('Enter');
  await page.waitForSelector(`.tab.active:has-text("${file}")`, { timeout });
  await page.waitForSelector('.monaco-editor.focused', { timeout });
  // As a person would: the cursor to the end of the line above (code, where VS Code asks for
  // code actions), a pause, the arrow down to the end of the line, typing.
  step(`go to the end of line ${Number(line) - 1}, then down to line ${line}, and type ${JSON.stringify(typed)}`);
  await page.keyboard.press('Control+G');
  await page.keyboard.type(String(Number(line) - 1));
  await page.keyboard.press('Enter');
  await page.keyboard.press('End');
  await page.waitForTimeout(settle);
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('End');
  await page.keyboard.type(typed, { delay: 60 });
  step(`wait for ghost text containing ${JSON.stringify(expect)}`);
  // Monaco draws ghost text as elements whose class names contain "ghost-text".
  const ghostSelector = '.monaco-editor.focused [class*="ghost-text"]';
  const ghostNow = () => page.evaluate((sel) => [...document.querySelectorAll(sel)]
    .map((e) => e.textContent).join('').replace(/\u00a0/g, ' '), ghostSelector);
  await page.waitForFunction(
    ([sel, want]) => [...document.querySelectorAll(sel)]
      .map((e) => e.textContent).join('').replace(/\u00a0/g, ' ').includes(want),
    [ghostSelector, expect], { timeout, polling: 200 });
  const ghostText = await ghostNow();
  step(`ghost text: ${JSON.stringify(ghostText)}`);
  await page.screenshot({ path: path.join(shots, 'vscode-ghost-text.png') });
  step('Tab accepts; save');
  await page.keyboard.press('Tab');
  await page.waitForFunction(
    (sel) => [...document.querySelectorAll(sel)].every((e) => (e.textContent ?? '').trim() === ''),
    ghostSelector, { timeout: 10000 }).catch(() => {});
  await page.keyboard.press('Control+S');
  await page.waitForSelector(`.tab.active:not(.dirty):has-text("${file}")`, { timeout: 20000 });
  const status = await page.locator('.statusbar-item:has-text("Ghostline")').first().getAttribute('aria-label');
  step(`status bar: ${status}`);
  await page.screenshot({ path: path.join(shots, 'vscode-accepted.png') });
  console.log(JSON.stringify({ ghostText, status }));
} catch (error) {
  await page.screenshot({ path: path.join(shots, 'vscode-failure.png') }).catch(() => {});
  const lines = await page.evaluate(() => document.querySelector('.monaco-editor .view-lines')?.outerHTML ?? '').catch(() => '');
  fs.writeFileSync(path.join(shots, 'vscode-failure-view-lines.html'), lines);
  console.error(`[e2e] failed: ${error}`);
  process.exitCode = 1;
} finally {
  await context.close();
  fs.rmSync(profile, { recursive: true, force: true });
}
