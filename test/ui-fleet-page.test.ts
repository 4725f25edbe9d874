// The web console's Fleet page in a real browser (Debian's chromium driven by
// playwright-core) against one real etcd and three `tsvisor serve --fleet`
// daemons sharing an images directory, running the tiny spinning kernel:
// logged in on h2's page, the page lists every host with its cores and
// memory and every VM with its host; the host of v1 and v2 is drained from the
// page and its VMs
// move by live migration (they keep running on their new hosts) while it is
// shown drained; it is undrained; one VM is migrated to a chosen host from
// the page; the events list shows the placements, the drain and the moves
// (and no conflict); the page's daemon stops and the page says it is offline,
// then comes back with it.
// No JavaScript errors and no failed requests. Screenshots at desktop and
// phone width go to test-artifacts/ui/.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BrowserContext, Page } from 'playwright-core';
import { makeImages, until } from './daemon-helpers.js';
import { launchChromium, loadPlaywright } from './lib/browser.js';
import { EtcdCluster, etcdBinary } from './lib/etcd.js';
import { FLEET_TOKEN, MemberDaemon, waitHosts } from './lib/fleet-daemons.js';
import { budget } from './lib/budget.js';

/* eslint-disable @typescript-eslint/no-explicit-any */
declare const document: any;
declare const window: any;

const ARTIFACTS = fileURLToPath(new URL('../../test-artifacts/ui/', import.meta.url));
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
const BUDGET = 256;

const pw = await loadPlaywright();
const skip = typeof pw === 'string' ? pw : etcdBinary() === null ? 'etcd is missing (Debian package etcd-server)' : false;

describe('the Fleet page in chromium', { skip }, () => {
  let dir = '';
  let etcd: EtcdCluster | undefined;
  let hosts: MemberDaemon[] = [];
  let ctx: BrowserContext | undefined;
  let page: Page;
  const problems: string[] = [];
  let down = false; // the page's daemon is stopped on purpose: its requests fail
  let loggedIn = false; // before the token is given, the page's probe is refused (401): expected
  const host = (name: string) => hosts.find((h) => h.opts.name === name)!;
  const instructions = async (h: MemberDaemon, vm: string) => ((await h.api('GET', `/v1/vms/${vm}/stats`)).json?.instructions as number) ?? 0;

  before(async () => {
    if (typeof pw === 'string') return;
    const made = await makeImages(false);
    dir = made.dir;
    etcd = await EtcdCluster.start(join(dir, 'etcd'), 1);
    // h1 and h3 in rack a, h2 in rack b: placement by label puts the VMs where the test wants them.
    hosts = [['h1', 'rack=a'], ['h2', 'rack=b'], ['h3', 'rack=a']].map(([name, label]) =>
      new MemberDaemon({ name: name!, dir, images: made.images, endpoints: etcd!.endpoints, budgetMiB: BUDGET, leaseSeconds: 4, labels: [label!] }));
    await Promise.all(hosts.map((h) => h.start()));
    await waitHosts(hosts[0]!, ['h1', 'h2', 'h3']);
    ({ ctx, page } = await launchChromium(pw, DESKTOP));
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && loggedIn && !(down && /ERR_CONNECTION_REFUSED/.test(m.text()))) problems.push(`console error: ${m.text()}`);
    });
    page.on('requestfailed', (q) => {
      if (!down && !q.url().endsWith('/console')) problems.push(`request failed: ${q.method()} ${q.url()} ${q.failure()?.errorText}`);
    });
    page.on('response', (res) => {
      if (res.status() >= 400 && loggedIn) problems.push(`HTTP ${res.status()} for ${res.request().method()} ${res.url()}`);
    });
    page.on('dialog', (d) => void d.accept());
    mkdirSync(ARTIFACTS, { recursive: true });
  });

  after(async () => {
    await ctx?.close();
    await Promise.all(hosts.map((h) => h.stop('SIGKILL')));
    await etcd?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  async function shoot(name: string): Promise<void> {
    await page.screenshot({ path: join(ARTIFACTS, `${name}-desktop.png`), fullPage: true });
    await page.setViewportSize(PHONE);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    // Every control of the page within the phone's width: nothing to reach by scrolling a table sideways.
    const outside = await page.evaluate(() => [...document.querySelectorAll('#fleet-view button, #fleet-view select')]
      .filter((b: any) => b.getBoundingClientRect().right > window.innerWidth).map((b: any) => b.getAttribute('aria-label')));
    await page.screenshot({ path: join(ARTIFACTS, `${name}-phone.png`), fullPage: true });
    await page.setViewportSize(DESKTOP);
    await page.evaluate(() => window.dispatchEvent(new Event('resize')));
    assert.ok(overflow <= 1, `${name}: the page is ${overflow} px wider than a phone screen`);
    assert.deepEqual(outside, [], `${name}: controls beyond a phone's width`);
  }

  /** Wait until the row `sel` carries data-`key`="value" (the page redraws every poll). */
  async function waitRow(sel: string, key: string, re: RegExp, ms: number): Promise<void> {
    try {
      await page.waitForFunction(([s, k, src]) => new RegExp(src).test(document.querySelector(s)?.dataset[k] ?? ''), [sel, key, re.source] as const, { timeout: budget(ms), polling: 200 });
    } catch {
      throw new Error(`${sel} never had ${key} ${re}; the page shows:\n${await page.locator('#fleet-view').innerText()}`);
    }
  }
  const hostRow = (n: string) => `#fleet-hosts tr[data-host="${n}"]`;
  const vmRow = (n: string) => `#fleet-vms tr[data-vm="${n}"]`;
  const vmHost = (n: string) => page.evaluate((s) => document.querySelector(s)?.dataset.host ?? '', vmRow(n));

  test('every host with its capacity and every VM with its host', { timeout: budget(240_000) }, async () => {
    // Placed through the fleet API: v1 and v2 in rack a (h1 then h3 by pack), v3 on h2.
    for (const [name, rack] of [['v1', 'a'], ['v2', 'a'], ['v3', 'b']] as const) {
      const r = await host('h1').api('POST', '/v1/fleet/vms', { vm: { name, memory: 16, kernel: 'spin' }, policy: 'pack', labels: { rack }, start: true });
      assert.equal(r.status, 201, r.text);
    }
    const placed = (await host('h1').api('GET', '/v1/fleet/vms')).json as { name: string; host: string }[];
    const where = new Map(placed.map((v) => [v.name, v.host]));
    assert.equal(where.get('v1'), where.get('v2'), 'pack put v1 and v2 together');
    assert.equal(where.get('v3'), 'h2');
    for (const [n, h] of where) await until(`${n} to run on ${h}`, async () => (await instructions(host(h), n)) > 1e6, 120_000, 200);

    await page.goto(`http://127.0.0.1:${host('h2').port}/ui/`);
    await page.locator('#token').waitFor({ state: 'visible' });
    loggedIn = true;
    await page.fill('#token', FLEET_TOKEN);
    await page.press('#token', 'Enter');
    await page.locator('#summary .card').first().waitFor({ timeout: budget(30_000) });
    await page.getByRole('link', { name: 'Fleet', exact: true }).click();
    await page.waitForURL(/#\/fleet$/);
    for (const n of ['h1', 'h2', 'h3']) await waitRow(hostRow(n), 'state', /^ready$/, 30_000);
    for (const n of ['v1', 'v2', 'v3']) await waitRow(vmRow(n), 'state', /^running$/, 30_000);
    // Each host's row: its cores, the memory placed on it against its budget, its VM count, its labels.
    const api = (await host('h2').api('GET', '/v1/fleet/hosts')).json as { name: string; cores: number; allocatedMiB: number }[];
    for (const h of api) {
      const cells = (await page.locator(`${hostRow(h.name)} td`).allInnerTexts()).map((x) => x.trim());
      const mine = [...where.values()].filter((x) => x === h.name).length;
      assert.equal(cells[2], String(h.cores));
      assert.equal(cells[3], `${16 * mine} / ${BUDGET} MiB`);
      assert.equal(cells[4], String(mine));
      assert.equal(cells[5], h.name === 'h2' ? 'rack=b' : 'rack=a');
    }
    for (const [n, h] of where) {
      assert.equal(await vmHost(n), h);
      assert.match(await page.locator(vmRow(n)).innerText(), new RegExp(`${n}\\s+${h}\\s+running\\s+16 MiB\\s+no`));
    }
    await shoot('fleet');
  });

  test('drain a host from the page: its VMs move and keep running, it is shown drained; undrain', { timeout: budget(600_000) }, async () => {
    const vms = (await host('h2').api('GET', '/v1/fleet/vms')).json as { name: string; host: string }[];
    const from = vms.find((v) => v.name === 'v1')!.host;
    const leaving = vms.filter((v) => v.host === from).map((v) => v.name);
    assert.deepEqual(leaving.sort(), ['v1', 'v2']);
    const before = new Map<string, number>();
    for (const n of leaving) before.set(n, await instructions(host(from), n));
    await page.getByRole('button', { name: `Drain ${from}`, exact: true }).click();
    await waitRow(hostRow(from), 'state', /^drained$/, 60_000);
    for (const n of leaving) {
      await waitRow(vmRow(n), 'host', new RegExp(`^(?!${from}$)h\\d$`), 400_000);
      await waitRow(vmRow(n), 'state', /^running$/, 120_000);
      // Moved, not restarted: its instruction count went on from where it was, on the new host.
      const to = host(await vmHost(n));
      const i0 = await instructions(to, n);
      assert.ok(i0 > before.get(n)!, `${n}: ${i0} on ${to.opts.name} after ${before.get(n)} on ${from}`);
      await until(`${n} to keep running on ${to.opts.name}`, async () => (await instructions(to, n)) > i0 + 1e6, 120_000, 200);
      assert.equal((await host(from).api('GET', `/v1/vms/${n}`)).status, 404);
    }
    // A drained host offers Undrain, not Drain; its row says why it takes nothing.
    assert.equal(await page.getByRole('button', { name: `Drain ${from}`, exact: true }).count(), 0);
    await waitRow(hostRow(from), 'state', /^drained$/, 5_000);
    await page.locator(`${hostRow(from)} td:nth-child(5)`, { hasText: /^0$/ }).waitFor({ timeout: budget(30_000) });
    await shoot('fleet-drained');
    await page.getByRole('button', { name: `Undrain ${from}`, exact: true }).click();
    await waitRow(hostRow(from), 'state', /^ready$/, 60_000);
    const rec = ((await host('h3').api('GET', '/v1/fleet/hosts')).json as { name: string; unschedulable: boolean }[]).find((h) => h.name === from)!;
    assert.equal(rec.unschedulable, false);
  });

  test('migrate one VM to a chosen host from the page; the events list the placements and the moves', { timeout: budget(400_000) }, async () => {
    const i0 = await instructions(host('h2'), 'v3');
    await page.locator(`${vmRow('v3')} select`).selectOption('h1');
    await page.getByRole('button', { name: 'Migrate v3', exact: true }).click();
    await waitRow(vmRow('v3'), 'host', /^h1$/, 300_000);
    await waitRow(vmRow('v3'), 'state', /^running$/, 120_000);
    await until('v3 to run on h1', async () => (await instructions(host('h1'), 'v3')) > i0 + 1e6, 120_000, 200);
    assert.equal((await host('h2').api('GET', '/v1/vms/v3')).status, 404);

    const events = async () => page.locator('#fleet-events').innerText();
    await until('the events', async () => /v3: live migration from h2 to h1/.test(await events()), 30_000, 200);
    const text = await events();
    for (const n of ['v1', 'v2', 'v3']) assert.match(text, new RegExp(`placed\\s+${n} \\(16 MiB\\) placed on h\\d by pack`));
    assert.match(text, /drain\s+draining h\d: 2 VM\(s\)/);
    for (const n of ['v1', 'v2']) assert.match(text, new RegExp(`migrated\\s+${n} moved from h\\d to h\\d \\(drain\\)`));
    assert.match(text, /undrain\s+h\d is schedulable again/);
    for (const k of ['joined', 'placed', 'drain', 'migrated', 'undrain']) assert.ok(await page.locator(`#fleet-events li[data-kind="${k}"]`).count() > 0, k);
    // A migration asked of the fleet is a handover, never reported as the VM running in two places.
    assert.equal(await page.locator('#fleet-events li[data-kind="conflict"]').count(), 0, text);
    await shoot('fleet-events');
    assert.deepEqual(problems, []);
  });

  test('the page\'s daemon stops: the page says it is offline, and comes back with it', { timeout: budget(180_000) }, async () => {
    down = true;
    await host('h2').stop('SIGTERM');
    await page.waitForFunction(() => document.getElementById('main').classList.contains('offline'), null, { timeout: budget(30_000) });
    assert.match(await page.locator('#status').innerText(), /offline since .*: the daemon cannot be reached/);
    await host('h2').start();
    await page.waitForFunction(() => !document.getElementById('main').classList.contains('offline'), null, { timeout: budget(60_000) });
    down = false;
    // It rejoined: the page lists it ready again, with the others.
    for (const n of ['h1', 'h2', 'h3']) await waitRow(hostRow(n), 'state', /^ready$/, 60_000);
    assert.deepEqual(problems, []);
  });
});
