// The web console's actions across snapshots, daemons and restarts, in a real
// browser (Debian's chromium driven by playwright-core) against two
// `tsvisor serve` children with their own state directories and ports and one
// images directory (shared storage): a snapshot taken from a VM's page is
// cloned from the host page (POST /v1/snapshots/SNAP/clones) and the clones
// run; a VM that dirties memory is migrated to the other daemon from its page
// (a bad address refused in the page, a wrong token failing visibly with the
// VM running on, then the move with its rounds and throttle shown as it goes);
// the other daemon's page shows it arrived. Then the first daemon is stopped
// and started again, and the second one killed (SIGKILL) and started again:
// the graphs still have the samples from before and the events list what
// happened before, read back from the state directories. No JavaScript
// errors, and no failed requests except while a daemon is deliberately down.
// Screenshots go to test-artifacts/ui/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { api, dirtyKernel, makeImages, until } from './daemon-helpers.js';
import { launchChromium, loadPlaywright } from './lib/browser.js';
import { ServeChild } from './lib/serve-child.js';
import { budget } from './lib/budget.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;
declare const MutationObserver: any;
declare const getComputedStyle: any;

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url));
const TOKEN_A = 'fleet-token-a-5d1e27c9';
const TOKEN_B = 'fleet-token-b-93ab04f6';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };

const pw = await loadPlaywright();
const skip = typeof pw === 'string' ? pw : false;

describe('snapshots, clones, migration and restarts in chromium', { skip }, () => {
  let dir = '';
  let images = '';
  let a: ServeChild;
  let b: ServeChild;
  let ctx: BrowserContext | undefined;
  let pageA: Page;
  let pageB: Page;
  const problems: string[] = [];
  /** Ports of daemons that are down on purpose: requests to them may fail. */
  const down = new Set<number>();
  /** Refusals a test provokes on purpose ("METHOD path status"), each allowed once. */
  const expected: string[] = [];
  let expectedLogged = 0;
  const takeExpected = (what: string) => {
    const i = expected.indexOf(what);
    if (i >= 0) expected.splice(i, 1);
    return i >= 0;
  };
  const apiA = (method: string, path: string, body?: unknown) => api({ port: a.port, token: TOKEN_A }, method, path, body);
  const apiB = (method: string, path: string, body?: unknown) => api({ port: b.port, token: TOKEN_B }, method, path, body);
  const instructions = async (where: typeof apiA, name: string) => ((await where('GET', `/v1/vms/${name}/stats`)).json?.instructions as number) ?? 0;

  function watch(page: Page, who: string): void {
    const portOf = (url: string) => Number(new URL(url).port);
    page.on('pageerror', (e) => problems.push(`${who}: page error: ${e.message}`));
    page.on('console', (m) => {
      // A refused connection while that daemon is down is logged by chromium too.
      if (m.type() !== 'error' || (down.size > 0 && /ERR_CONNECTION_REFUSED/.test(m.text()))) return;
      // Chromium logs each refusal a test provoked as well: counted against those answers at the end.
      if (/the server responded with a status of 409/.test(m.text())) expectedLogged++;
      else problems.push(`${who}: console error: ${m.text()}`);
    });
    page.on('requestfailed', (q) => {
      if (!down.has(portOf(q.url())) && !q.url().endsWith('/console')) problems.push(`${who}: request failed: ${q.method()} ${q.url()} ${q.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && !takeExpected(`${res.request().method()} ${new URL(res.url()).pathname} ${res.status()}`)) problems.push(`${who}: HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });
    page.on('dialog', (d) => void d.accept());
  }

  before(async () => {
    if (typeof pw === 'string') return;
    const made = await makeImages(false);
    dir = made.dir;
    images = made.images;
    writeFileSync(join(made.images, 'dirty'), dirtyKernel());
    mkdirSync(join(dir, 'a'));
    mkdirSync(join(dir, 'b'));
    a = new ServeChild({ dir: join(dir, 'a'), imagesDir: made.images, token: TOKEN_A });
    b = new ServeChild({ dir: join(dir, 'b'), imagesDir: made.images, token: TOKEN_B });
    await a.start();
    await b.start();
    ({ ctx, page: pageA } = await launchChromium(pw, DESKTOP));
    watch(pageA, 'A');
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await ctx?.close();
    await a?.stop();
    await b?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function login(page: Page, url: string, token: string): Promise<void> {
    await page.goto(`${url}/ui/`);
    await page.locator('#token').waitFor({ state: 'visible' });
    await page.fill('#token', token);
    await page.press('#token', 'Enter');
    await page.locator('#summary .card').first().waitFor({ timeout: 30_000 });
  }

  async function shoot(page: Page, name: string): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    assert.ok(overflow <= 1, `${name}: the page is ${overflow} px wider than a phone screen`);
  }

  const textOf = (page: Page, id: string) => page.evaluate((i) => document.getElementById(i)?.textContent ?? '', id);
  async function waitText(page: Page, id: string, re: RegExp, ms: number): Promise<void> {
    try {
      await page.waitForFunction(([i, src]) => new RegExp(src).test(document.getElementById(i)?.textContent ?? ''), [id, re.source] as const, { timeout: budget(ms), polling: 200 });
    } catch {
      throw new Error(`#${id} never showed ${re}; it shows: ${await textOf(page, id)}`);
    }
  }

  test('a snapshot taken on a VM page is cloned from the host page; the clones run', { timeout: budget(300_000) }, async () => {
    await login(pageA, a.url, TOKEN_A);
    assert.equal((await apiA('POST', '/v1/vms', { name: 'base', memory: 32, kernel: 'spin' })).status, 201);
    assert.equal((await apiA('POST', '/v1/vms/base/start')).status, 200);
    await until('base to run', async () => (await instructions(apiA, 'base')) > 1e6, 60_000, 200);
    await pageA.goto(`${a.url}/ui/#/vm/base`);
    await pageA.locator('#vm-actions button[data-action="snapshot"]').click();
    await pageA.fill('#snapshot-name', 'basesnap');
    await pageA.press('#snapshot-name', 'Enter');
    await waitText(pageA, 'vm-message', /Snapshot basesnap written/, 120_000);
    // The message offers clones of what was just written.
    await pageA.locator('#vm-message a', { hasText: 'make clones of it' }).click();
    await pageA.waitForURL(/#\/host\?clone=basesnap$/);
    await pageA.locator('#clone-form').waitFor({ state: 'visible' });
    assert.equal(await textOf(pageA, 'clone-snapshot'), 'basesnap');
    assert.equal(await pageA.locator('#clone-prefix').inputValue(), 'basesnap');
    // A bad count is refused in the page, by its field, and nothing is sent.
    await pageA.fill('#clone-count', '0');
    await pageA.click('#clone-submit');
    await waitText(pageA, 'clone-message', /How many: a whole number from 1 to 64/, 5_000);
    assert.equal(await pageA.locator('#clone-count').getAttribute('aria-invalid'), 'true');
    assert.equal((await apiA('GET', '/v1/vms')).json.length, 1, 'no clone was made');
    await pageA.fill('#clone-count', '2');
    await pageA.fill('#clone-prefix', 'twin');
    await pageA.click('#clone-submit');
    await waitText(pageA, 'clone-message', /Made 2 clones of basesnap in [\d.]+ s: twin-1 \(running\), twin-2 \(running\)/, 180_000);
    assert.equal(await pageA.locator('#clone-form').isHidden(), true);
    // The clones really run: their instruction counts go on, from the snapshot's.
    for (const n of ['twin-1', 'twin-2']) {
      const vm = (await apiA('GET', `/v1/vms/${n}`)).json;
      assert.equal(vm.config.snapshot, 'basesnap');
      assert.equal(vm.config.clone, true);
      const i0 = await instructions(apiA, n);
      await until(`${n} to run on`, async () => (await instructions(apiA, n)) > i0 + 1e6, 60_000, 200);
    }
    // The snapshot list says it is in use; the clone's link opens its page, whose events say where it came from.
    await pageA.locator('#clone-message a', { hasText: 'twin-1' }).click();
    await pageA.waitForURL(/#\/vm\/twin-1$/);
    await pageA.locator('#vm-events li[data-kind="started"]', { hasText: 'from snapshot basesnap' }).waitFor({ timeout: 30_000 });
    // A snapshot its clones are defined from cannot be deleted (the button says why); an unused one can.
    assert.equal((await apiA('PUT', '/v1/vms/base/snapshot', { dir: 'spare' })).status, 200);
    await pageA.goto(`${a.url}/ui/#/host`);
    const used = pageA.locator('#host-snapshots li[data-snapshot="basesnap"] button[data-action="delete"]');
    await used.waitFor();
    assert.equal(await used.isDisabled(), true);
    assert.match(String(await used.getAttribute('title')), /used by twin-1, twin-2/);
    await pageA.locator('#host-snapshots li[data-snapshot="spare"] button[data-action="delete"]').click();
    await waitText(pageA, 'clone-message', /Snapshot spare deleted/, 30_000);
    await pageA.locator('#host-snapshots li[data-snapshot="spare"]').waitFor({ state: 'detached', timeout: 30_000 });
    assert.equal((await apiA('GET', '/v1/snapshots/spare')).status, 404);
    await shoot(pageA, 'host-clones');
  });

  test('list: rows sorted by name; the console fits its box; an error banner can be dismissed and goes when its state changes', { timeout: budget(180_000) }, async () => {
    copyFileSync(join(images, 'spin'), join(images, 'gone'));
    assert.equal((await apiA('POST', '/v1/vms', { name: 'nokernel', memory: 16, kernel: 'gone' })).status, 201);
    rmSync(join(images, 'gone'));
    await pageA.goto(`${a.url}/ui/#/`);
    const names = async () => (await pageA.locator('#vms tbody tr td:first-child').allInnerTexts()).map((x) => x.trim());
    await until('the list', async () => (await names()).length === 4, 30_000, 200);
    assert.deepEqual(await names(), ['base', 'nokernel', 'twin-1', 'twin-2']);
    const row = (n: string) => pageA.locator('#vms tbody tr', { has: pageA.locator('td:first-child', { hasText: new RegExp(`^${n}$`) }) });

    // Its kernel is gone: the start is refused, and the banner says why until dismissed (from the keyboard).
    expected.push('POST /v1/vms/nokernel/start 409', 'POST /v1/vms/nokernel/start 409');
    await row('nokernel').getByRole('button', { name: 'Start', exact: true }).click();
    await waitText(pageA, 'error-text', /start nokernel: cannot open kernel .*gone/, 30_000);
    await pageA.locator('#error-close').focus();
    await pageA.keyboard.press('Enter');
    await pageA.locator('#error').waitFor({ state: 'hidden', timeout: 5_000 });
    // Again; then the kernel is back and the VM starts elsewhere (the API): the banner describes a state that has passed, and goes.
    await row('nokernel').getByRole('button', { name: 'Start', exact: true }).click();
    await pageA.locator('#error').waitFor({ state: 'visible', timeout: 30_000 });
    copyFileSync(join(images, 'spin'), join(images, 'gone'));
    assert.equal((await apiA('POST', '/v1/vms/nokernel/start')).status, 200);
    await pageA.locator('#error').waitFor({ state: 'hidden', timeout: 30_000 });
    assert.deepEqual(expected, [], 'both refusals happened');

    // The terminal stays inside its box, at desktop and at phone width.
    await row('twin-1').getByRole('button', { name: 'Console', exact: true }).click();
    await pageA.locator('#term .xterm-screen').waitFor();
    for (const size of [DESKTOP, PHONE]) {
      await pageA.setViewportSize(size);
      await pageA.evaluate(() => window.dispatchEvent(new Event('resize')));
      // Inside the content box: the rows and columns drawn neither spill into the padding nor get cut off.
      const inside = () => {
        const t = document.getElementById('term');
        const cs = getComputedStyle(t);
        const r = t.getBoundingClientRect();
        const px = (p: string) => parseFloat(cs.getPropertyValue(p));
        const box = {
          left: r.left + px('border-left-width') + px('padding-left'),
          right: r.right - px('border-right-width') - px('padding-right'),
          top: r.top + px('border-top-width') + px('padding-top'),
          bottom: r.bottom - px('border-bottom-width') - px('padding-bottom'),
        };
        const scr = document.querySelector('#term .xterm-screen').getBoundingClientRect();
        const ok = scr.width > 100 && scr.left >= box.left - 0.5 && scr.right <= box.right + 0.5 && scr.top >= box.top - 0.5 && scr.bottom <= box.bottom + 0.5;
        return ok ? '' : `screen ${JSON.stringify(scr)} in content box ${JSON.stringify(box)}`;
      };
      let why = '';
      await until(`the terminal inside its box at ${size.width} px`, async () => (why = await pageA.evaluate(inside)) === '', 10_000, 100).catch(() => {
        throw new Error(`the terminal sticks out of its box at ${size.width} px: ${why}`);
      });
    }
    await pageA.setViewportSize(DESKTOP);
    await pageA.click('#detach');
    assert.equal((await apiA('DELETE', '/v1/vms/nokernel?force=true')).status, 204);
    assert.deepEqual(problems, []);
    assert.ok(expectedLogged <= 2, `${expectedLogged} refusals logged, 2 provoked`);
  });

  test('migrate from the VM page: a bad address and a wrong token are refused visibly, then the VM moves with its progress shown', { timeout: budget(600_000) }, async () => {
    assert.equal((await apiA('POST', '/v1/vms', { name: 'mover', memory: 32, kernel: 'dirty' })).status, 201);
    assert.equal((await apiA('POST', '/v1/vms/mover/start')).status, 200);
    await until('mover to run', async () => (await instructions(apiA, 'mover')) > 1e6, 60_000, 200);
    await pageA.goto(`${a.url}/ui/#/vm/mover`);
    const migrate = pageA.locator('#vm-actions button[data-action="migrate"]');
    await migrate.waitFor();
    assert.equal(await migrate.isEnabled(), true);
    await migrate.click();
    await pageA.locator('#migrate-to').waitFor({ state: 'visible' });
    assert.equal(await pageA.evaluate(() => document.activeElement?.id), 'migrate-to', 'the form takes the focus');

    // Checked in the page: an address that is not http://HOST:PORT is never sent (nor is the token).
    await pageA.fill('#migrate-to', `ftp://127.0.0.1:${b.port}`);
    await pageA.fill('#migrate-token', TOKEN_B);
    await pageA.press('#migrate-token', 'Enter');
    await waitText(pageA, 'migrate-form-message', /Destination: the other daemon as http:\/\/HOST:PORT/, 5_000);
    assert.equal(await pageA.locator('#migrate-to').getAttribute('aria-invalid'), 'true');

    // A wrong token: the destination refuses, the page says so, and the VM runs on here.
    await pageA.fill('#migrate-to', b.url);
    await pageA.fill('#migrate-token', 'not-the-token-of-b');
    await pageA.click('#migrate-form button[type=submit]');
    await waitText(pageA, 'vm-message', /Migration to http:\/\/127\.0\.0\.1:\d+ failed: .*(401|token).*The VM runs on here\./, 120_000);
    assert.equal((await apiA('GET', '/v1/vms/mover')).json.state, 'running');
    await pageA.locator('#vm-events li[data-kind="migrated"]', { hasText: 'failed' }).waitFor({ timeout: 30_000 });

    // Every text the progress line shows is recorded, however fast the rounds go.
    await pageA.evaluate(() => {
      const seen: string[] = [];
      window.migrationTexts = seen;
      const t = document.getElementById('migrate-text');
      new MutationObserver(() => seen.push(t.textContent)).observe(t, { childList: true, characterData: true, subtree: true });
    });
    await migrate.click();
    await pageA.fill('#migrate-to', b.url);
    await pageA.fill('#migrate-token', TOKEN_B);
    // 1 ms cannot hold a round's worth of dirty pages: at least two rounds before it moves.
    await pageA.fill('#migrate-downtime', '1');
    await pageA.click('#migrate-form button[type=submit]');
    await pageA.locator('#migrate-progress').waitFor({ state: 'visible', timeout: 30_000 });
    assert.doesNotMatch(await textOf(pageA, 'vm-message'), /failed/, 'the earlier failure is not shown as if about this attempt');
    assert.equal(await migrate.isDisabled(), true, 'one migration at a time');
    await pageA.screenshot({ path: join(ARTIFACTS, 'vm-migrating-desktop.png'), fullPage: true });
    await waitText(pageA, 'vm-message', /mover migrated to http:\/\/127\.0\.0\.1:\d+ in [\d.]+ s \(downtime \d+ ms, [\d.]+ \w+ in \d+ rounds?(, guest throttled up to \d+%)?\); it runs there now/, 480_000);
    // The line followed the migration while it ran (how many rounds it catches depends on the host's speed),
    // and the result names the rounds and the throttle that auto-converge needed.
    const texts: string[] = await pageA.evaluate(() => window.migrationTexts);
    assert.ok(texts.length > 0 && texts.every((t) => /^Migrating to http:\/\/127\.0\.0\.1:\d+: (connecting|precopy|stopped|committing), round \d+, [\d.]+ \w+ sent, .*\d+ s$/.test(t)), `progress shown: ${texts.join(' | ')}`);
    const result = await textOf(pageA, 'vm-message');
    assert.ok(Number(/in (\d+) rounds/.exec(result)?.[1]) >= 2, result);
    // Whether auto-converge had to throttle depends on how much the guest dirtied while the
    // pipelined rounds ran; when it did, the result says how far (never a 0%).
    assert.doesNotMatch(result, /throttled up to 0%/);
    assert.equal(await pageA.locator('#migrate-progress').isHidden(), true);
    await waitText(pageA, 'vm-state', /^migrated away$/, 30_000);
    assert.equal(await pageA.locator('#vm-actions button:not([disabled])').count(), 0, 'no action offered for a VM that left');
    // Gone here, running there, and it went on from where it was.
    assert.equal((await apiA('GET', '/v1/vms/mover')).status, 404);
    assert.equal((await apiB('GET', '/v1/vms/mover')).json?.state, 'running');
    const n0 = await instructions(apiB, 'mover');
    await until('mover to go on at B', async () => (await instructions(apiB, 'mover')) > n0 + 1e6, 60_000, 200);
    await shoot(pageA, 'vm-migrated');

    // The other daemon's page shows it with its arrival; A's host events the departure.
    pageB = await ctx!.newPage();
    watch(pageB, 'B');
    await login(pageB, b.url, TOKEN_B);
    await pageB.goto(`${b.url}/ui/#/vm/mover`);
    await waitText(pageB, 'vm-state', /^running$/, 30_000);
    await pageB.locator('#vm-events li[data-kind="migrated"]', { hasText: 'arrived by live migration' }).waitFor({ timeout: 30_000 });
    await pageA.goto(`${a.url}/ui/#/host`);
    await pageA.locator('#host-events li[data-kind="migrated"]', { hasText: /mover\s+migrated to http/ }).waitFor({ timeout: 30_000 });
    assert.deepEqual(problems, []);
  });

  test('graphs and events outlive a daemon restart and a daemon crash', { timeout: budget(300_000) }, async () => {
    // Enough samples of the clones and the host before the restart.
    await until('history samples at A', async () => ((await apiA('GET', '/v1/vms/twin-1/history')).json?.t.length ?? 0) >= 5, 60_000, 500);
    const before = (await apiA('GET', '/v1/vms/twin-1/history')).json;
    const hostBefore = (await apiA('GET', '/v1/host/history')).json;
    const eventsBefore = (await apiA('GET', '/v1/host/events')).json as { kind: string; time: string }[];
    await pageA.goto(`${a.url}/ui/#/vm/twin-1`);
    await pageA.waitForFunction(() => Number(document.getElementById('vm-charts').dataset.points ?? 0) >= 5, null, { timeout: 60_000, polling: 500 });

    // An orderly stop: the page goes offline, then comes back by itself when the daemon is there again.
    down.add(a.port);
    await a.stop('SIGTERM');
    await pageA.waitForFunction(() => document.getElementById('main').classList.contains('offline'), null, { timeout: 30_000 });
    await a.start();
    await pageA.waitForFunction(() => !document.getElementById('main').classList.contains('offline'), null, { timeout: 60_000 });
    down.delete(a.port);
    // The list keeps its order across the restart (sorted, not in the order the daemon loaded them).
    await pageA.goto(`${a.url}/ui/#/`);
    await until('the list after the restart', async () => (await pageA.locator('#vms tbody tr').count()) === 3, 30_000, 200);
    assert.deepEqual((await pageA.locator('#vms tbody tr td:first-child').allInnerTexts()).map((x) => x.trim()), ['base', 'twin-1', 'twin-2']);

    const after = (await apiA('GET', '/v1/vms/twin-1/history')).json;
    assert.equal(after.t[0], before.t[0], 'the first sample from before the restart is still there');
    const k = before.t.length - 1;
    assert.equal(after.t[k], before.t[k]);
    assert.deepEqual(after.mips.slice(0, k + 1), before.mips.slice(0, k + 1), 'the samples read back are the ones taken');
    assert.ok(after.mips.slice(0, k + 1).some((v: number | null) => v !== null && v > 0), 'twin-1 ran before the restart');
    const hostAfter = (await apiA('GET', '/v1/host/history')).json;
    assert.equal(hostAfter.t[0], hostBefore.t[0]);
    // The time the daemon was down is a gap (one sample of nulls), not a line drawn across it.
    assert.equal(hostBefore.mips.filter((v: number | null) => v === null).length, 0);
    assert.equal(hostAfter.mips.filter((v: number | null) => v === null).length, 1, 'a gap marks the restart');
    const eventsAfter = (await apiA('GET', '/v1/host/events')).json as { kind: string; time: string; message: string }[];
    assert.deepEqual(eventsAfter.slice(0, eventsBefore.length), eventsBefore, 'every event from before, in order');
    const daemonEvents = eventsAfter.filter((e) => e.kind === 'daemon').map((e) => e.message);
    assert.deepEqual(daemonEvents.map((m) => m.replace(/:.*/, '')), ['daemon started', 'daemon stopped', 'daemon started']);

    // The page shows the old samples and events.
    await pageA.goto(`${a.url}/ui/#/vm/twin-1`);
    await pageA.waitForFunction((n) => Number(document.getElementById('vm-charts').dataset.points ?? 0) > n, before.t.length, { timeout: 60_000, polling: 500 });
    await pageA.locator('#vm-events li[data-kind="stopped"]').waitFor({ timeout: 30_000 });
    const vmEvents = await pageA.locator('#vm-events').innerText();
    assert.match(vmEvents, /created from snapshot basesnap/);
    assert.match(vmEvents, /started from snapshot basesnap/);
    await pageA.goto(`${a.url}/ui/#/host`);
    await pageA.locator('#host-events li[data-kind="daemon"]', { hasText: 'daemon stopped' }).waitFor({ timeout: 30_000 });
    assert.match(await pageA.locator('#host-events').innerText(), /mover\s+migrated to http/);
    await shoot(pageA, 'host-after-restart');

    // A crash (SIGKILL: nothing flushed at exit) keeps what was written as it happened.
    await until('history samples at B', async () => ((await apiB('GET', '/v1/host/history')).json?.t.length ?? 0) >= 3, 60_000, 500);
    const bHost = (await apiB('GET', '/v1/host/history')).json;
    down.add(b.port);
    await b.stop('SIGKILL');
    await b.start();
    down.delete(b.port);
    const bAfter = (await apiB('GET', '/v1/host/history')).json;
    assert.equal(bAfter.t[0], bHost.t[0], 'B\'s samples before the crash are back');
    assert.ok(bAfter.t.length > bHost.t.length);
    const bEvents = (await apiB('GET', '/v1/vms/mover/events')).json as { kind: string; message: string }[];
    assert.ok(bEvents.some((e) => e.kind === 'migrated' && /arrived/.test(e.message)), JSON.stringify(bEvents));
    // The VM's thread died with the daemon: listed as stopped, its history and events kept.
    await pageB.goto(`${b.url}/ui/#/vm/mover`);
    await waitText(pageB, 'vm-state', /^stopped$/, 60_000);
    await pageB.locator('#vm-events li[data-kind="migrated"]', { hasText: 'arrived by live migration' }).waitFor({ timeout: 30_000 });
    await pageB.waitForFunction(() => Number(document.getElementById('vm-charts').dataset.points ?? 0) >= 3, null, { timeout: 60_000, polling: 500 });
    assert.deepEqual(problems, []);
  });
});
