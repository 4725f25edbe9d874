// The web console's management pages in a real browser (Debian's chromium
// driven by playwright-core) against a `tsvisor serve --listen ... --token-file`
// child: the host summary; the create form with a field error from the
// page's schema check and one from the daemon; a VM created from the form
// boots the default guest with a qcow2 disk (made by qemu-img) and a user
// NIC; its details page shows live counters, graphs with points and its
// events; its console answers `echo $((6*7))`; a VM whose kernel cannot mount
// a root file system fails and its log view shows the panic; the host page
// graphs and lists events; delete from the details page. No JavaScript errors
// and no failed requests. Screenshots of each page at desktop and phone width
// go to test-artifacts/ui/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { api, makeImages, until } from './daemon-helpers.js';
import { launchChromium, loadPlaywright } from './lib/browser.js';
import { budget } from './lib/budget.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url));
const TOKEN = 'pages-test-token-51c9e0d2';
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const BOOT_MS = 480_000;

const pw = await loadPlaywright(['qemu-img']);
const skip = typeof pw === 'string' ? pw : false;

describe('management pages in chromium', { skip }, () => {
  let dir = '';
  let daemon: ChildProcess | undefined;
  let port = 0;
  let ctx: BrowserContext | undefined;
  let page: Page;
  const problems: string[] = [];
  let loggedIn = false;
  // The create form's refusals are answers the page expects (and shows): 400 on POST /v1/vms only.
  // Chromium logs each as a console error too; those are matched against the expected answers at the end.
  let formMac = ''; // the MAC the daemon gave formvm's NIC
  let expected400 = 0;
  let logged400 = 0;
  const base = () => `http://127.0.0.1:${port}/ui/`;
  const vm = async (name: string) => JSON.parse((await api({ port, token: TOKEN }, 'GET', `/v1/vms/${name}`)).text);

  before(async () => {
    if (typeof pw === 'string') return;
    const made = await makeImages(true);
    dir = made.dir;
    execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', join(made.images, 'data.qcow2'), '16M']);
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

    ({ ctx, page } = await launchChromium(pw, DESKTOP));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error' || !loggedIn) return;
      if (/the server responded with a status of 400/.test(m.text())) logged400++;
      else problems.push(`console error: ${m.text()}`);
    });
    page.on('requestfailed', (q) => {
      if (!q.url().endsWith('/console')) problems.push(`request failed: ${q.method()} ${q.url()} ${q.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      const expected = res.status() === 400 && res.request().method() === 'POST' && res.url().endsWith('/v1/vms');
      if (expected) expected400++;
      else if (res.status() >= 400 && loggedIn) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });
    page.on('dialog', (d) => void d.accept());
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

  /** Screenshots of the page shown at desktop and phone width. */
  async function shoot(name: string): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    // At phone width nothing may stick out sideways except inside a scrolling table wrapper.
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    assert.ok(overflow <= 1, `${name}: the page is ${overflow} px wider than a phone screen`);
  }

  const text = (sel: string) => page.locator(sel).innerText();
  /** The terminal's visible text (xterm.js draws spaces as no-break spaces; trailing ones go). */
  const screen = async () => (await page.locator('#term .xterm-rows').innerText()).replace(/\u00a0/g, ' ').replace(/ +$/gm, '');
  async function waitScreen(what: string, re: RegExp, ms: number): Promise<void> {
    try {
      await page.waitForFunction(
        (src) => new RegExp(src, 'm').test(String(document.querySelector('#term .xterm-rows')?.innerText ?? '').replace(/\u00a0/g, ' ').replace(/ +$/gm, '')),
        re.source,
        { timeout: ms, polling: 200 },
      );
    } catch {
      throw new Error(`the console never showed ${what}; it shows:\n${await screen()}`);
    }
  }
  const field = (path: string) => page.locator(`#create-fields [data-field="${path}"]`);
  const fieldError = (path: string) => page.locator(`#create-fields [data-error-for="${path}"]`);

  test('login; the host summary shows cores, the memory budget and VMs by state', { timeout: budget(60_000) }, async () => {
    await page.goto(base());
    await page.locator('#login').waitFor({ state: 'visible' });
    loggedIn = true;
    await page.fill('#token', TOKEN);
    await page.click('#login button[type=submit]');
    await page.locator('#summary .card').first().waitFor({ timeout: 30_000 });
    const summary = await text('#summary');
    assert.match(summary, /Cores for VMs\s+1\b/);
    assert.match(summary, /0 \/ 1024 MiB/);
    assert.match(await text('#empty'), /No VMs defined/);
  });

  test('create from the form: a bad value is refused by its field, then the VM boots and its console answers', { timeout: budget(BOOT_MS + 240_000) }, async () => {
    await page.click('#nav a[href="#/create"]');
    await field('name').waitFor();
    // The kernel and initramfs come from the images directory listing.
    const kernels = await field('kernel').locator('option').allInnerTexts();
    assert.ok(kernels.some((k) => k.startsWith('vmlinux (kernel')), `kernel choices: ${kernels.join(', ')}`);
    await field('name').fill('formvm');
    await field('memory').fill('1');
    await field('kernel').selectOption('vmlinux');
    await field('initrd').selectOption('initrd');
    await page.click('#create-submit');
    // Checked in the page against the daemon's schema: nothing was sent.
    await until('memory error', async () => /memory: must be at least \d+ MiB/.test(await fieldError('memory').innerText()), 10_000);
    assert.equal(await field('memory').getAttribute('aria-invalid'), 'true');
    await shoot('create-error');

    // A value only the daemon can judge (a cap above its --cpus and the VM's one hart): its error lands by the field too.
    await field('memory').fill('256');
    await field('cpu.cap').fill('4');
    await page.click('#create-submit');
    await until('cpu.cap error from the daemon', async () => /cpu\.cap: (must be at most 1|4 cores is more than the VM.s 1 hart)/.test(await fieldError('cpu.cap').innerText()), 30_000);
    assert.equal(await fieldError('memory').innerText(), '', 'the memory error went once fixed');
    await field('cpu.cap').fill('');

    await page.click('#add-disk');
    await field('disks[0].path').selectOption('data.qcow2');
    await field('disks[0].limits.bps').fill('50000000');
    await page.click('#add-nic');
    await field('nics[0].limits.rxBps').fill('10000000');
    await field('cpu.weight').fill('2048');
    await page.click('#create-submit');
    await page.waitForURL(/#\/vm\/formvm$/, { timeout: 60_000 });
    const made = await vm('formvm');
    assert.equal(made.config.memory, 256);
    assert.equal(made.config.cpu.weight, 2048);
    assert.equal(made.config.disks[0].format, 'qcow2');
    assert.deepEqual(made.config.disks[0].limits, { bps: 50000000 });
    assert.deepEqual(made.config.nics[0], { mode: 'user', limits: { rxBps: 10000000 } });
    await until('formvm running', async () => (await vm('formvm')).state === 'running', 60_000, 200);

    // The details page's Console button opens the console on the list page.
    await page.locator('#vm-actions button[data-action="console"]').click();
    await page.locator('#term .xterm-rows').waitFor();
    // The guest may print its NIC's address right after the prompt, on the same line.
    await waitScreen('the shell prompt', /^~ #/, BOOT_MS);
    await page.locator('#term textarea').focus();
    await page.keyboard.type('echo $((6*7))');
    await page.keyboard.press('Enter');
    await waitScreen('42', /^42$/, 60_000);
    await shoot('list-console');
  });

  test('details: live counters, graphs with points, a change applied, events of start and stop', { timeout: budget(300_000) }, async () => {
    await page.goto(`${base()}#/vm/formvm`);
    // The kernel read the disk's partition table: the disk's read counter is live.
    await page.waitForFunction(
      () => {
        const cells = document.querySelectorAll('#vm-disks tbody td');
        return cells.length > 3 && /[1-9]/.test(cells[3].textContent ?? '') && cells[3].textContent !== '-';
      },
      null,
      { timeout: 60_000, polling: 500 },
    );
    assert.match(await text('#vm-disks tbody'), /vda\s+data\.qcow2\s+qcow2/);
    assert.equal(await page.locator('#vm-disks input[data-limit="bps"]').inputValue(), '50000000');
    assert.match(await text('#vm-nics tbody'), /eth0\s+user\s+52:54:00/);
    formMac = /52:54:00(:[0-9a-f]{2}){3}/.exec(await text('#vm-nics tbody'))![0];
    assert.ok(Number((await text('#vm-instructions')).replace(/\D/g, '')) > 0, 'instructions counted');
    // Graphs: at least three samples drawn (2 s apart) into canvases.
    await page.waitForFunction(() => Number(document.getElementById('vm-charts').dataset.points ?? 0) >= 3, null, { timeout: 60_000, polling: 500 });
    assert.equal(await page.locator('#vm-charts canvas').count(), 5);

    // Change the CPU weight of the running VM from its page.
    await page.fill('#edit-weight', '512');
    await page.click('#edit-form button[type=submit]');
    await until('weight applied', async () => (await vm('formvm')).config.cpu.weight === 512, 30_000, 200);
    await page.locator('#vm-events li[data-kind="changed"]').waitFor({ timeout: 30_000 });
    await shoot('vm-running');

    // A snapshot from the page, with its progress shown while it is written.
    await page.locator('#vm-actions button[data-action="snapshot"]').click();
    await page.fill('#snapshot-name', 'formsnap');
    await page.click('#snapshot-form button[type=submit]');
    await page.waitForFunction(() => /Snapshot formsnap written/.test(document.getElementById('vm-message').textContent ?? ''), null, { timeout: budget(120_000) });
    assert.equal(await page.locator('#vm-progress').isHidden(), true);
    await page.locator('#vm-events li[data-kind="snapshot"]').waitFor({ timeout: 30_000 });

    await page.locator('#vm-actions button[data-action="stop"]').click();
    await until('formvm stopped', async () => (await vm('formvm')).state === 'stopped', 60_000, 200);
    await page.locator('#vm-events li[data-kind="stopped"]').waitFor({ timeout: 30_000 });
    const events = await text('#vm-events');
    assert.match(events, /created \(256 MiB\)/);
    assert.match(events, /changed: CPU weight 512$/m, "an empty cap field removes no cap the VM never had");
    assert.match(events, /started/);
    // Stop is graceful: the power button made the guest power itself off.
    assert.match(events, /stopped: guest powered off/);
    assert.equal((await vm('formvm')).lastExit, 'guest powered off');
    // The log of the stopped VM is still there: it holds the boot and the guest's own shutdown.
    await page.waitForFunction(() => /Linux version/.test(document.getElementById('vm-log').textContent ?? ''), null, { timeout: budget(30_000) });
    assert.match(await page.locator('#vm-log').textContent() ?? '', /tsvisor guest: power button pressed, powering off/);
  });

  test('restore the snapshot as a new VM from the form; it answers at once; delete it while running', { timeout: budget(300_000) }, async () => {
    await page.goto(`${base()}#/host`);
    await page.locator('#host-snapshots a', { hasText: 'Restore as new VM' }).click();
    await page.waitForURL(/#\/create\?snapshot=formsnap$/);
    await field('name').waitFor();
    // The form starts with what the snapshot needs: its memory and NIC count.
    assert.equal(await field('snapshot').inputValue(), 'formsnap');
    assert.equal(await field('memory').inputValue(), '256');
    assert.equal(await page.locator('#create-nics fieldset.item').count(), 1);
    // The NIC keeps the MAC it had when the snapshot was taken (a restore refuses another).
    assert.equal(await field('nics[0].mac').inputValue(), formMac);
    assert.equal(await field('name').inputValue(), 'formsnap-restored');
    await page.click('#create-submit');
    await page.waitForURL(/#\/vm\/formsnap-restored$/, { timeout: 60_000 });
    await until('restored running', async () => (await vm('formsnap-restored')).state === 'running', 60_000, 200);
    await page.locator('#vm-events li[data-kind="started"]', { hasText: 'from snapshot formsnap' }).waitFor({ timeout: 30_000 });
    await page.locator('#vm-actions button[data-action="console"]').click();
    await page.locator('#term textarea').waitFor({ state: 'attached' });
    await page.waitForFunction(() => /attached/.test(document.getElementById('console-state').textContent ?? ''), null, { timeout: budget(30_000) });
    await page.locator('#term textarea').focus();
    await page.keyboard.type('echo restored-$((7*6))');
    await page.keyboard.press('Enter');
    await waitScreen('the restored guest answering', /^restored-42$/, 120_000);
    await page.click('#detach');
    // Delete while running: the page asks (accepted here) and forces it.
    await page.goto(`${base()}#/vm/formsnap-restored`);
    await page.locator('#vm-actions button[data-action="delete"]').click();
    await page.waitForURL(/#\/$/, { timeout: 30_000 });
    await until('restored deleted', async () => (await api({ port, token: TOKEN }, 'GET', '/v1/vms/formsnap-restored')).status === 404, 60_000, 200);
  });

  test('a failed VM: its details show the failure and its log view shows the panic', { timeout: budget(BOOT_MS + 60_000) }, async () => {
    const r = await api({ port, token: TOKEN }, 'POST', '/v1/vms', { name: 'noroot', memory: 128, kernel: 'vmlinux' });
    assert.equal(r.status, 201, r.text);
    assert.equal((await api({ port, token: TOKEN }, 'POST', '/v1/vms/noroot/start')).status, 200);
    await page.goto(`${base()}#/vm/noroot`);
    await until('noroot failed', async () => (await vm('noroot')).state === 'failed', BOOT_MS, 500);
    await page.waitForFunction(() => document.getElementById('vm-state').textContent === 'failed', null, { timeout: 30_000 });
    assert.match(await text('#vm-last-failure'), /kernel panic/);
    await page.waitForFunction(() => /Kernel panic - not syncing/.test(document.getElementById('vm-log').textContent ?? ''), null, { timeout: budget(30_000) });
    const log = await page.locator('#vm-log').textContent();
    assert.match(log ?? '', /\[tsvisor\] noroot failed: kernel panic/);
    assert.doesNotMatch(log ?? '', /\x1b/, 'escape sequences are not shown raw');
    await page.locator('#vm-events li[data-kind="failed"]').waitFor({ timeout: 30_000 });
    await shoot('vm-failed');
  });

  test('host page: graphs with points, events of every VM, images and snapshots', { timeout: budget(120_000) }, async () => {
    await page.click('#nav a[href="#/host"]');
    await page.waitForFunction(() => Number(document.getElementById('host-charts').dataset.points ?? 0) >= 3, null, { timeout: 60_000, polling: 500 });
    await page.locator('#host-events li[data-kind="failed"]').waitFor({ timeout: 30_000 });
    const events = await text('#host-events');
    assert.match(events, /daemon started/);
    assert.match(events, /formvm\s+stopped/);
    assert.match(events, /noroot\s+failed: kernel panic/);
    assert.match(await text('#host-images'), /data\.qcow2 qcow2/);
    await shoot('host');
  });

  test('list: sort and filter; delete from the details page; no errors, no failed requests', { timeout: budget(120_000) }, async () => {
    await page.click('#nav a[href="#/"]');
    await page.locator('#vms tbody tr').nth(1).waitFor();
    const names = async () => (await page.locator('#vms tbody tr:not([hidden]) td:first-child').allInnerTexts()).map((s) => s.trim());
    assert.deepEqual(await names(), ['formvm', 'noroot']);
    await page.click('#vms th[data-sort="name"]');
    assert.deepEqual(await names(), ['noroot', 'formvm']);
    await page.fill('#filter', 'fail');
    assert.deepEqual(await names(), ['noroot']);
    await shoot('list-filtered');
    await page.fill('#filter', '');

    await page.goto(`${base()}#/vm/noroot`);
    await page.locator('#vm-actions button[data-action="delete"]').click();
    await page.waitForURL(/#\/$/, { timeout: 30_000 });
    await until('noroot deleted', async () => (await api({ port, token: TOKEN }, 'GET', '/v1/vms/noroot')).status === 404, 30_000, 200);
    await page.waitForFunction(() => document.querySelectorAll('#vms tbody tr').length === 1, null, { timeout: 30_000 });
    assert.deepEqual(problems, []);
    assert.equal(expected400, 1, 'the daemon refused the form once (cpu.cap)');
    assert.ok(logged400 <= expected400, `${logged400} requests logged as 400, ${expected400} expected`);
  });
});
