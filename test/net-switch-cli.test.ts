// Two `tsvisor run` processes on one switch (--net switch=NAME): the first hosts
// the switch, the second joins through its Unix socket. One guest listens with
// nc, the other sends 10 MiB; the checksums on both sides match.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildConsole } from './lib/vm-console.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const runtime = mkdtempSync(join(tmpdir(), 'tsvisor-sw-'));
after(() => rmSync(runtime, { recursive: true, force: true }));

async function startVm(guest: { kernel: string; initrd: string }, mac: string): Promise<ChildConsole> {
  const child = spawn(
    process.execPath,
    [CLI, 'run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--mem', '128M', '--net', `switch=lan,mac=${mac}`, '--append', 'console=ttyS0 tsvisor.dhcp=off'],
    { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, TSVISOR_RUNTIME_DIR: runtime } },
  );
  const c = new ChildConsole(child);
  try {
    // Generous: a boot on a loaded 2-core host has taken more than 5 minutes.
    await c.waitFor(/tsvisor guest ready/, 720_000);
    await c.waitFor(/# /, 60_000);
  } catch (e) {
    child.kill('SIGKILL'); // no VM left behind by a failed test
    throw e;
  }
  return c;
}

async function stopVm(c: ChildConsole): Promise<void> {
  c.type('poweroff -f');
  const t = setTimeout(() => c.child.kill('SIGKILL'), 30_000);
  await c.exited;
  clearTimeout(t);
}

test('two tsvisor processes on a switch: 10 MiB over TCP, checksums match', { timeout: budget(1_800_000) }, async () => {
  const guest = await ensureDefaultGuest({});
  // The first to start hosts the switch; the second joins it.
  const pa = startVm(guest, '52:54:00:00:01:0a');
  // The second joins once the first listens on the switch's socket.
  const sock = join(runtime, 'switch-lan.sock');
  const end = Date.now() + 120_000;
  let early: unknown;
  pa.catch((e: unknown) => (early = e));
  while (!existsSync(sock)) {
    if (early) throw early;
    if (Date.now() > end) throw new Error(`the first tsvisor did not create ${sock} within 120 s`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const started = await Promise.allSettled([pa, startVm(guest, '52:54:00:00:01:0b')]);
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    for (const r of started) if (r.status === 'fulfilled') r.value.child.kill('SIGKILL');
    throw (failed as PromiseRejectedResult).reason;
  }
  const [a, b] = started.map((r) => (r as PromiseFulfilledResult<ChildConsole>).value);
  try {
    await a.run('ip addr add 10.0.5.1/24 dev eth0');
    await b.run('ip addr add 10.0.5.2/24 dev eth0');
    const made = await b.run('dd if=/dev/urandom of=/tmp/x bs=1048576 count=10 2>/dev/null; sha256sum /tmp/x', 120_000);
    const want = /([0-9a-f]{64})\s+\/tmp\/x/.exec(made)?.[1];
    assert.ok(want, made);
    const recv = a.type('nc -l -p 5000 > /tmp/r; echo RECEIVED $(wc -c < /tmp/r)');
    // The listener is up once a's shell ran it: b retries until it connects (refused before that).
    const sent = await b.run('for i in $(seq 120); do nc 10.0.5.1 5000 < /tmp/x && break; sleep 1; done; [ $i -lt 120 ]', 300_000);
    assert.match(sent, /status 0/);
    await a.waitFor(/RECEIVED 10485760/, 120_000, recv);
    const got = await a.run('sha256sum /tmp/r');
    assert.ok(got.includes(want), `receiver's checksum differs: ${got}`);
  } finally {
    await Promise.all([stopVm(a), stopVm(b)]);
  }
});
