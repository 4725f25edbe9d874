// Graceful stop and reboot through the guest's power button and restart key
// (virtio-input), the console size reaching the guest's hvc0, and a VM too
// small to boot: all with the default guest in a real daemon.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { api, ConsoleClient, READY_LINE, startTestDaemon, until, type TestDaemon } from './daemon-helpers.js';

let d: TestDaemon;
const logs: string[] = [];

before(async () => {
  d = await startTestDaemon({ withGuest: true, cpus: 2, log: (m) => logs.push(m) });
});
after(async () => {
  await d?.cleanup();
});

const CLI = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));
/** The CLI as a child process (asynchronously: the daemon runs in this process). */
function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args, '--socket', d.socketPath], { encoding: 'utf8' }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

const resize = (c: ConsoleClient, cols: number, rows: number) => c.ws.send(JSON.stringify({ type: 'resize', cols, rows }));

/** Create and start a default-guest VM and wait for its shell. */
async function bootVm(name: string, extra: Record<string, unknown> = {}): Promise<ConsoleClient> {
  const created = await api(d, 'POST', '/v1/vms', { name, memory: 128, kernel: 'vmlinux', initrd: 'initrd', ...extra });
  assert.equal(created.status, 201, created.text);
  assert.equal((await api(d, 'POST', `/v1/vms/${name}/start`)).status, 200);
  const c = await ConsoleClient.open(d.socketPath, name);
  await c.waitFor(READY_LINE, 600_000);
  await c.waitFor('~ # ', 120_000);
  return c;
}

test('console size: stty size in the guest follows the resize messages', async () => {
  const c = await bootVm('size');
  try {
    resize(c, 146, 40);
    // Each command waits for its answer: the guest takes the size from a config interrupt.
    let from = c.output.length;
    await until('stty size to say 40 146', async () => {
      from = c.output.length;
      c.send('stty size\n');
      await c.waitFor(/\d+ \d+\r?\n/, 60_000, from);
      return /\n40 146\r?\n/.test(c.output.slice(from - 1));
    }, 120_000, 500);
    resize(c, 100, 30);
    await until('stty size to say 30 100', async () => {
      from = c.output.length;
      c.send('stty size\n');
      await c.waitFor(/\d+ \d+\r?\n/, 60_000, from);
      return /\n30 100\r?\n/.test(c.output.slice(from - 1));
    }, 120_000, 500);
    // A bad size is ignored, never typed into the guest.
    c.ws.send(JSON.stringify({ type: 'resize', cols: 0, rows: 99999 }));
    from = c.output.length;
    c.send('echo after-$((2*21))\n');
    await c.waitFor('after-42', 60_000, from);
    assert.doesNotMatch(c.output.slice(from), /resize/);
  } finally {
    c.close();
  }
  // A stopped VM keeps the size for its next start.
  assert.equal((await api(d, 'POST', '/v1/vms/size/kill')).status, 200);
});

test('graceful stop: the guest powers off on its power button, with exit status 0', async () => {
  const c = await bootVm('gs');
  const t0 = Date.now();
  const r = await api(d, 'POST', '/v1/vms/gs/stop', { timeout: 300 });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'stopped');
  assert.equal(r.json.lastExit, 'guest powered off', 'ended by the guest, not by the host');
  assert.equal(r.json.lastFailure, null);
  await until('the console to close', () => c.closed, 30_000);
  assert.match(c.output, /tsvisor guest: power button pressed, powering off/);
  const log = (await api(d, 'GET', '/v1/vms/gs/log')).text;
  assert.match(log, /power button pressed, powering off/);
  assert.ok(!logs.some((l) => /gs: stopping without the guest/.test(l)), logs.join('\n'));
  console.log(`graceful stop took ${Date.now() - t0} ms`);
});

test('graceful reboot: the restart key reboots the guest, which comes up again', async () => {
  const c = await bootVm('rb');
  try {
    const from = c.output.length;
    const r = await api(d, 'POST', '/v1/vms/rb/reboot', { timeout: 300 });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.json.state, 'running');
    await c.waitFor('restart key pressed, rebooting', 60_000, from);
    await c.waitFor(READY_LINE, 600_000, from);
    assert.ok(!logs.some((l) => /rb: resetting without the guest/.test(l)), logs.join('\n'));
  } finally {
    c.close();
  }
  assert.equal((await api(d, 'POST', '/v1/vms/rb/stop', { timeout: 0 })).json.state, 'stopped');
});

test('a guest that ignores the button is stopped after the timeout', async () => {
  const c = await bootVm('deaf', { append: 'console=hvc0 earlycon=sbi tsvisor.buttons=off' });
  const t0 = Date.now();
  const r = await api(d, 'POST', '/v1/vms/deaf/stop', { timeout: 5 });
  const waited = Date.now() - t0;
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.state, 'stopped');
  assert.notEqual(r.json.lastExit, 'guest powered off');
  assert.ok(waited >= 5000, `stop returned after ${waited} ms, before the timeout`);
  assert.ok(logs.some((l) => /deaf: stopping without the guest: the guest did not power off within 5 s/.test(l)), logs.join('\n'));
  assert.doesNotMatch(c.output, /power button pressed/);
  c.close();
  // Bad bodies are refused with the field named.
  await api(d, 'POST', '/v1/vms/deaf/start');
  for (const body of [{ timeout: -1 }, { timeout: 1.5 }, { timeout: 4000 }, { timeout: '5' }, { wait: 5 }]) {
    const bad = await api(d, 'POST', '/v1/vms/deaf/stop', body);
    assert.equal(bad.status, 400, JSON.stringify(body));
    assert.match(bad.json.error, /^(timeout|body):/);
  }
  assert.equal((await api(d, 'POST', '/v1/vms/deaf/kill')).json.state, 'stopped');
});

test('a VM too small to boot (64 MiB) fails with the reason, and its log shows the early panic', async () => {
  // A kernel without a System.map next to it: the boot watch, not the panic breakpoint, must notice.
  mkdirSync(join(d.images, 'nomap'));
  copyFileSync(join(d.images, 'vmlinux'), join(d.images, 'nomap', 'vmlinux'));
  const created = await api(d, 'POST', '/v1/vms', { name: 'tiny', memory: 64, kernel: 'nomap/vmlinux', initrd: 'initrd' });
  assert.equal(created.status, 201, created.text);
  assert.equal((await api(d, 'POST', '/v1/vms/tiny/start')).status, 200);
  let vm: { state: string; lastFailure: string | null } = { state: '', lastFailure: null };
  await until('the 64 MiB VM to fail', async () => {
    vm = (await api(d, 'GET', '/v1/vms/tiny')).json;
    return vm.state === 'failed';
  }, 600_000, 500, () => JSON.stringify(vm));
  assert.match(vm.lastFailure ?? '', /the guest never came up/);
  const log = (await api(d, 'GET', '/v1/vms/tiny/log')).text;
  assert.match(log, /Kernel panic - not syncing/, 'earlycon printed the early panic');
  assert.ok(logs.some((l) => /tiny: failed: the guest never came up/.test(l)), logs.join('\n'));
});

test('tsvisor stop --timeout and reboot: a guest without a driver for the buttons is stopped or reset at once', async () => {
  assert.equal((await api(d, 'POST', '/v1/vms', { name: 'bare', memory: 16, kernel: 'idle' })).status, 201);
  assert.equal((await api(d, 'POST', '/v1/vms/bare/start')).status, 200);
  const rb = await cli('reboot', 'bare', '--timeout', '600');
  assert.equal(rb.code, 0, rb.stderr);
  assert.match(rb.stdout, /^bare: running$/m);
  assert.ok(logs.some((l) => /bare: resetting without the guest: the guest has no driver for its buttons/.test(l)), logs.join('\n'));
  const bad = await cli('start', 'bare', '--timeout', '5');
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown option '--timeout' for 'tsvisor start'/);
  const bad2 = await cli('stop', 'bare', '--timeout', 'soon');
  assert.equal(bad2.code, 2);
  assert.match(bad2.stderr, /invalid --timeout 'soon'/);
  const r = await cli('stop', 'bare', '--timeout', '600');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^bare: stopped/m);
  assert.ok(logs.some((l) => /bare: stopping without the guest: the guest has no driver for its buttons/.test(l)), logs.join('\n'));
});
