// Ten clones of one snapshot of the default guest (real kernel, real busybox),
// each a `tsvisor run --restore --clone --name tc-i` process started by the test:
// every one answers on its console; its NIC carries a MAC of its own (derived
// from its name), which the guest picks up when its virtio_net driver probes
// again (Linux reads the MAC at probe only: the test rebinds the driver); and
// /dev/urandom differs between clones (the new VM generation ID reseeds the
// guest RNG). The host memory of each clone (PSS) is reported as a diagnostic.

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createNicHosts } from '../src/net/create-backend.js';
import { defaultMac, formatMac } from '../src/net/mac.js';
import { bootDefaultGuest, ChildConsole } from './lib/vm-console.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(ROOT, 'bin/tsvisor.js');
const CLONES = 10;
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-clone-ten-'));
const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** PSS and RSS of a process in MiB (/proc/PID/smaps_rollup). */
function memoryOf(pid: number): { pss: number; rss: number } {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(rollup)?.[1] ?? NaN);
  return { pss: kb('Pss') / 1024, rss: kb('Rss') / 1024 };
}

test('ten clones answer on their consoles with MACs and random bytes of their own', { timeout: budget(40 * 60 * 1000) }, async (t) => {
  const a = await bootDefaultGuest({ name: 'ten', nicSpecs: ['user'] }, { nics: await createNicHosts([{ mode: 'user', params: [] }], 'ten') });
  const original = /([0-9a-f]{2}(:[0-9a-f]{2}){5})/.exec(await a.run('cat /sys/class/net/eth0/address'))?.[1];
  assert.ok(original, "the original's MAC");
  a.vm.pause();
  const snap = join(dir, 'snap');
  await a.vm.snapshot(snap);
  await a.vm.stop();

  const names = Array.from({ length: CLONES }, (_, i) => `tc-${i + 1}`);
  const consoles = names.map((name) => {
    const child = spawn(process.execPath, [CLI, 'run', '--restore', snap, '--clone', '--clone-dir', join(dir, name), '--name', name], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    children.add(child);
    child.stdin!.on('error', () => {});
    return new ChildConsole(child);
  });
  await Promise.all(consoles.map((c) => c.waitFor(/restored in [\d.]+ ms/, 600_000)));

  // The driver probes again (unbind, bind) and so reads the device's MAC anew.
  const show = [
    'd=$(basename $(readlink /sys/class/net/eth0/device))',
    'echo $d > /sys/bus/virtio/drivers/virtio_net/unbind',
    'echo $d > /sys/bus/virtio/drivers/virtio_net/bind',
    'echo M$((1+1))M $(cat /sys/class/net/eth0/address) $(head -c 16 /dev/urandom | od -An -x | tr -d " \\n")',
  ].join('; ');
  const seen = await Promise.all(consoles.map(async (c, i) => {
    const out = await c.run(show, 600_000);
    const m = /M2M ([0-9a-f:]{17}) ([0-9a-f]{32})/.exec(out);
    assert.ok(m, `${names[i]} printed its MAC and random bytes\n${out}`);
    return { mac: m[1]!, random: m[2]! };
  }));
  for (const [i, s] of seen.entries()) {
    assert.equal(s.mac, formatMac(defaultMac(names[i]!, 0)), `${names[i]}: the guest sees the clone's own MAC`);
    assert.notEqual(s.mac, original, `${names[i]}: not the original's MAC`);
  }
  assert.equal(new Set(seen.map((s) => s.mac)).size, CLONES, 'ten different MACs');
  assert.equal(new Set(seen.map((s) => s.random)).size, CLONES, 'ten different /dev/urandom outputs');

  // Idle a moment, then report what each clone costs the host.
  await new Promise((res) => setTimeout(res, 5000));
  let total = 0;
  for (const [i, c] of consoles.entries()) {
    const m = memoryOf(c.child.pid!);
    total += m.pss;
    t.diagnostic(`${names[i]}: PSS ${m.pss.toFixed(1)} MiB, RSS ${m.rss.toFixed(1)} MiB`);
  }
  t.diagnostic(`ten clones of a 128 MiB guest: PSS ${total.toFixed(0)} MiB in all, ${(total / CLONES).toFixed(1)} MiB each`);
  for (const c of consoles) c.type('poweroff -f');
  const codes = await Promise.all(consoles.map((c) => Promise.race([c.exited, new Promise<never>((_, rej) => setTimeout(() => rej(new Error('timed out: poweroff')), 300_000).unref())])));
  assert.deepEqual(codes, names.map(() => 0));
});
