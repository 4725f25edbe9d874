// The web console in a real browser: Debian's chromium driven by
// playwright-core, against a `tsvisor serve --listen ... --token-file ...`
// child booting the default guest. Logs in with a token of spaces, a wrong and
// the right token; starts a VM; types in the xterm.js console and reads the
// guest's answers from the page. Covers the console bugs of issue 17: the
// re-attach replay (1), keys while paused (2), underscores (3), Ctrl-C (4),
// the terminal size (7), the Reboot button, and asserts no JavaScript errors and no failed requests after login.
// Screenshots at desktop and phone width go to test-artifacts/ui/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { api, makeImages, until } from './daemon-helpers.js';
import { launchChromium, loadPlaywright } from './lib/browser.js';
import { budget } from './lib/budget.js';

// Browser globals, for the functions that run in the page (this file is compiled without the DOM library).
/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const Image: any;

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url));
const TOKEN = 'browser-test-token-7f3a';

const pw = await loadPlaywright();
const skip = typeof pw === 'string' ? pw : false;

describe('web console in chromium', { skip }, () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  let port = 0;
  let ctx: BrowserContext | undefined;
  let page: Page;
  const problems: string[] = []; // JavaScript errors and failed requests after login
  let loggedIn = false;

  before(async () => {
    if (typeof pw === 'string') return;
    const made = await makeImages(true);
    dir = made.dir;
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${TOKEN}\n`, { mode: 0o600 });
    daemon = spawn(
      process.execPath,
      [CLI, 'serve', '--socket', join(dir, 's.sock'), '--state-dir', join(dir, 'state'), '--images-dir', made.images,
        '--listen', '127.0.0.1:0', '--token-file', tokenFile, '--cpus', '1', '--memory-budget', '1024M'],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    daemon.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    await until('daemon listening', () => /and 127\.0\.0\.1:\d+/.test(err) || daemon!.exitCode !== null, 30_000);
    port = Number(/and 127\.0\.0\.1:(\d+)/.exec(err)?.[1]);
    assert.ok(port > 0, `daemon did not start: ${err}`);
    const r = await api({ port, token: TOKEN }, 'POST', '/v1/vms', { name: 'web', kernel: 'vmlinux', initrd: 'initrd', memory: 256 });
    assert.equal(r.status, 201, r.text);

    ({ ctx, page } = await launchChromium(pw, { width: 1280, height: 900 }));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && loggedIn) problems.push(`console error: ${m.text()}`);
    });
    page.on('requestfailed', (q) => {
      // Closing the console WebSocket on detach is not a failure.
      if (!q.url().endsWith('/console')) problems.push(`request failed: ${q.method()} ${q.url()} ${q.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && loggedIn) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await ctx?.close();
    if (daemon && daemon.exitCode === null) {
      daemon.kill('SIGTERM');
      await new Promise((r) => daemon!.once('exit', r));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const row = () => page.locator('#vms tbody tr', { hasText: 'web' });
  /** The terminal's visible text, one line per row (xterm.js draws spaces as no-break spaces; trailing ones go). */
  const screen = async () => (await page.locator('#term .xterm-rows').innerText()).replace(/\u00a0/g, ' ').replace(/ +$/gm, '');

  async function waitScreen(what: string, re: RegExp, ms = 120_000): Promise<void> {
    try {
      await page.waitForFunction(
        (src) =>
          new RegExp(src, 'm').test(
            String(document.querySelector('#term .xterm-rows')?.innerText ?? '').replace(/\u00a0/g, ' ').replace(/ +$/gm, ''),
          ),
        re.source,
        { timeout: ms, polling: 200 },
      );
    } catch {
      throw new Error(`the console never showed ${what}; it shows:\n${await screen()}`);
    }
  }

  async function typeLine(text: string): Promise<void> {
    await page.locator('#term textarea').focus();
    await page.keyboard.type(text);
    await page.keyboard.press('Enter');
  }

  async function clickAction(label: string, state: string): Promise<void> {
    await row().getByRole('button', { name: label, exact: true }).click();
    await page.waitForFunction(
      (s) => document.querySelector('#vms tbody tr td:nth-child(2)')?.textContent === s,
      state,
      { timeout: 30_000 },
    );
  }

  test('login: no API request before the token; spaces and a wrong token are refused', { timeout: budget(60_000) }, async () => {
    const apiCalls: string[] = [];
    const onReq = (q: { url(): string }) => {
      if (q.url().includes('/v1/')) apiCalls.push(q.url());
    };
    page.on('request', onReq);
    await page.goto(`http://127.0.0.1:${port}/ui/`);
    await page.locator('#login').waitFor({ state: 'visible' });
    assert.deepEqual(apiCalls, [], 'the page called the API before it had a token');
    await page.fill('#token', '    ');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => /only spaces/.test(document.getElementById('login-message')!.textContent ?? ''));
    assert.deepEqual(apiCalls, [], 'a token of spaces was sent');
    page.off('request', onReq);

    await page.fill('#token', 'wrong-token');
    await page.click('#login button[type=submit]');
    await page.waitForFunction(() => /refused/.test(document.getElementById('login-message')!.textContent ?? ''), null, { timeout: budget(30_000) });
    assert.equal(await page.locator('#login').isVisible(), true);

    loggedIn = true;
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');
    await row().waitFor({ timeout: 30_000 });
    assert.equal(await row().locator('td').nth(1).innerText(), 'created');
  });

  test('start, console, echo $((6*7)) reads 42', { timeout: budget(600_000) }, async () => {
    await clickAction('Start', 'running');
    await row().getByRole('button', { name: 'Console', exact: true }).click();
    await waitScreen('the shell prompt', /^~ #$/, 480_000);
    await typeLine('echo $((6*7))');
    await waitScreen('42', /^42$/);
    await page.screenshot({ path: join(ARTIFACTS, 'console-desktop.png') });
  });

  test('bug 3: underscores are drawn inside their row', { timeout: budget(120_000) }, async () => {
    await typeLine('clear; echo ________________________________');
    await waitScreen('a row of underscores', /^_{32}$/);
    // The first row holds only the underscores: some of its pixels must be lit.
    const box = await page.locator('#term .xterm-rows > div').first().boundingBox();
    assert.ok(box, 'no first terminal row');
    const png = await page.screenshot({ clip: { x: box.x, y: box.y, width: Math.min(box.width, 300), height: box.height } });
    writeFileSync(join(ARTIFACTS, 'underscores.png'), png);
    const lit = await page.evaluate(async (b64) => {
      const img = new Image();
      img.src = `data:image/png;base64,${b64}`;
      await img.decode();
      const c = document.createElement('canvas');
      c.width = img.width;
      c.height = img.height;
      const g = c.getContext('2d')!;
      g.drawImage(img, 0, 0);
      const d = g.getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < d.length; i += 4) if (d[i] + d[i + 1] + d[i + 2] > 300) n++;
      return n;
    }, png.toString('base64'));
    assert.ok(lit > 20, `the underscores are clipped: only ${lit} lit pixels in their row`);
  });

  test('bug 1: re-attaching does not type answers to replayed queries', { timeout: budget(120_000) }, async () => {
    // The length too: answers to terminal queries are escape sequences, invisible once echoed.
    await typeLine('read x; echo "len=${#x} got=[$x]"');
    await waitScreen('the read command', /read x; echo/);
    await page.click('#detach');
    await row().getByRole('button', { name: 'Console', exact: true }).click();
    await waitScreen('the replay', /read x; echo/, 30_000);
    await typeLine('hello');
    await waitScreen('what read got', /^len=\d+ got=\[.*\]$/);
    assert.match(await screen(), /^len=5 got=\[hello\]$/m);
  });

  test('bug 2: keys typed while paused reach the guest after resume, and the page says so', { timeout: budget(120_000) }, async () => {
    await clickAction('Pause', 'paused');
    await page.waitForFunction(() => /paused/.test(document.getElementById('console-state')!.textContent ?? ''), null, { timeout: budget(10_000) });
    await typeLine('echo paused-$((5*5))');
    await page.screenshot({ path: join(ARTIFACTS, 'paused-desktop.png') });
    await clickAction('Resume', 'running');
    await waitScreen('the line typed while paused', /^paused-25$/);
    assert.match(await page.locator('#console-state').innerText(), /keys go to the guest/);
  });

  test('bug 4: Ctrl-C stops a command', { timeout: budget(180_000) }, async () => {
    await typeLine("sh -c 'echo sleeping-$((3*3)); exec sleep 100'");
    await waitScreen('the command starting', /^sleeping-9$/);
    await page.keyboard.press('Control+C');
    // Well under the sleep's 100 s: only Ctrl-C gets the prompt back this soon.
    await typeLine('echo back-$((6*7))');
    await waitScreen('the shell after Ctrl-C', /^back-42$/, 60_000);
  });

  test('bug 7: stty size in the guest matches the terminal, also after a resize', { timeout: budget(240_000) }, async () => {
    for (const viewport of [{ width: 1400, height: 900 }, { width: 1000, height: 700 }]) {
      await page.setViewportSize(viewport);
      await page.evaluate(() => window.dispatchEvent(new Event('resize')));
      const rows = await page.locator('#term .xterm-rows > div').count();
      // The size travels page -> daemon -> guest while the page goes on: ask until the guest has it.
      let cols = 0;
      await until(`stty size to say ${rows} rows`, async () => {
        await typeLine('clear; stty size');
        await waitScreen('stty size', /^\d+ \d+$/, 60_000);
        const m = /^(\d+) (\d+)$/m.exec(await screen())!;
        cols = Number(m[2]);
        return Number(m[1]) === rows;
      }, 120_000, 500);
      // The guest's idea of the width: a line of exactly that many characters fills one row, no more.
      await typeLine(`clear; printf "%0${cols}dE\\n" 0`);
      await waitScreen(`a row of ${cols} zeros, then the E on the next row`, new RegExp(`^0{${cols}}\\nE$`), 60_000);
    }
  });

  test('Reboot: the restart key makes the guest reboot itself, and it comes back to its prompt', { timeout: budget(720_000) }, async () => {
    await typeLine('clear');
    await waitScreen('a cleared screen', /^~ #$/);
    await row().getByRole('button', { name: 'Reboot', exact: true }).click();
    // The guest's own handler reboots it (not a reset from outside): it says so first, then the kernel boots
    // again (read from the console log: the terminal scrolls past those lines faster than it can be polled).
    const log = async () => (await api({ port, token: TOKEN }, 'GET', '/v1/vms/web/log')).text;
    const bootsBefore = (await log()).split('Linux version').length;
    await until('the guest rebooting itself', async () => /tsvisor guest: restart key pressed, rebooting/.test(await log()), 120_000, 500);
    await until('a new boot', async () => (await log()).split('Linux version').length > bootsBefore, 240_000, 500);
    await waitScreen('the prompt again', /^~ #$/, 480_000);
    assert.equal(await row().locator('td').nth(1).innerText(), 'running');
    await typeLine('echo rebooted-$((6*7))');
    await waitScreen('the rebooted guest answering', /^rebooted-42$/);
  });

  test('phone width: every action button is on screen; no errors, no failed requests', { timeout: budget(60_000) }, async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    for (const b of await row().getByRole('button').all()) {
      const box = await b.boundingBox();
      assert.ok(box && box.x >= 0 && box.x + box.width <= 390, `button ${await b.innerText()} is off-screen: ${JSON.stringify(box)}`);
    }
    await page.screenshot({ path: join(ARTIFACTS, 'console-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 900 });
    await page.screenshot({ path: join(ARTIFACTS, 'list-desktop.png') });
    assert.deepEqual(problems, []);
  });

  test('the daemon gone: the page says offline instead of looking live', { timeout: budget(60_000) }, async () => {
    daemon!.kill('SIGTERM');
    await new Promise((r) => (daemon!.exitCode !== null ? r(null) : daemon!.once('exit', r)));
    await page.waitForFunction(() => document.getElementById('main').classList.contains('offline'), null, { timeout: 30_000 });
    assert.match(await page.locator('#status').innerText(), /offline since .*daemon cannot be reached/);
    await page.screenshot({ path: join(ARTIFACTS, 'offline-desktop.png') });
  });
});
