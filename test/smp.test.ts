// SMP guests end to end: the real Debian kernel and busybox initramfs boot with
// 1, 2, 4 and 8 harts (--smp / VmConfig.cpus); nproc and /proc/cpuinfo count
// them; a torture program (test/guest/linux/smp_torture.c: amoadd, LR/SC loops,
// an LR/SC spinlock, a fenced message ring, the fenced litmus shapes MP, SB,
// LB and 2+2W, cross-modified code with fence.i and remote fence.i) passes on
// every hart count, with the translator on and off; CPU hotplug takes a hart
// off and back while a workload runs; deterministic 4-hart boots print the same
// bytes, with and without the translator.
//
// Boots take minutes on a loaded 2-core host: waits are on console output,
// with generous stall limits (see test/lib/vm-console.ts).

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootDefaultGuest, ChildConsole, type VmConsole } from './lib/vm-console.js';
import { RUN_STATE_PAUSED, type SnapshotResult } from '../src/vm/protocol.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { writeCpio } from '../src/image/cpio.js';
import { budget } from './lib/budget.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TORTURE = join(ROOT, 'build/guest/linux/smp_torture.elf');
const CLI = join(ROOT, 'bin/tsvisor.js');
const BOOT_MS = 600_000;
const RUN_MS = 300_000;
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-smp-'));
let initrd = '';

before(async () => {
  const guest = await ensureDefaultGuest({ progress: false, log: () => {} });
  const r = spawnSync('bash', [join(ROOT, 'test/guest/build.sh')], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  // The default initramfs plus a second archive with the torture program (the kernel
  // unpacks both; the second starts on a 4-byte boundary).
  const extra = writeCpio([
    { path: 'usr', type: 'dir', mode: 0o755 },
    { path: 'usr/bin', type: 'dir', mode: 0o755 },
    { path: 'usr/bin/smp_torture', type: 'file', mode: 0o755, data: readFileSync(TORTURE) },
  ]);
  const base = readFileSync(guest.initrd);
  initrd = join(dir, 'initrd');
  writeFileSync(initrd, Buffer.concat([base, Buffer.alloc((4 - (base.length % 4)) % 4), extra]));
});
after(() => rmSync(dir, { recursive: true, force: true }));

/** Non-deterministic VMs run each hart on a thread of its own (phase 2); TSVISOR_TEST_HART_THREADS=off tests phase 1 instead. */
const hartThreads = process.env.TSVISOR_TEST_HART_THREADS !== 'off';

const RVWMO_FORBIDDEN: Record<string, string> = { MP: '10', SB: '00', LB: '11', '2+2W': '11' };

/** Run the torture program; returns the litmus outcomes it saw (shape -> outcome -> count). */
async function torture(c: VmConsole, harts: number): Promise<Record<string, Record<string, number>>> {
  const out = await c.run('smp_torture', RUN_MS);
  assert.match(out, new RegExp(`threads ${harts}\\r?\\n`), out);
  assert.match(out, /smp_torture: PASS/, out);
  assert.doesNotMatch(out, /FAIL/, out);
  assert.match(out, /status 0$/, out);
  const want = harts * 20000;
  for (const k of ['amoadd', 'lrsc', 'spinlock']) assert.match(out, new RegExp(`${k} ${want}\\r?\\n`), `${k} total: ${out}`);
  const seen: Record<string, Record<string, number>> = {};
  for (const m of out.matchAll(/litmus (\S+) ([01]{2}) (\d+)/g)) {
    (seen[m[1]] ??= {})[m[2]] = Number(m[3]);
  }
  if (harts >= 2) {
    assert.deepEqual(Object.keys(seen).sort(), ['2+2W', 'LB', 'MP', 'SB']);
    for (const [shape, outcomes] of Object.entries(seen)) {
      assert.equal(Object.values(outcomes).reduce((a, b) => a + b, 0), 400, `${shape}: every run has an outcome`);
      assert.equal(outcomes[RVWMO_FORBIDDEN[shape]], 0, `${shape}: outcome ${RVWMO_FORBIDDEN[shape]} is forbidden by RVWMO`);
    }
    assert.match(out, /xmc_result 2\r?\n/, out);
  }
  return seen;
}

async function counts(c: VmConsole): Promise<{ nproc: number; cpuinfo: number }> {
  const out = await c.run('nproc; grep -c ^processor /proc/cpuinfo', 60_000);
  const nums = [...out.matchAll(/^(\d+)\r?$/gm)].map((m) => Number(m[1]));
  assert.equal(nums.length, 2, out);
  return { nproc: nums[0], cpuinfo: nums[1] };
}

describe('SMP guests', { concurrency: 1 }, () => {
  for (const harts of [1, 2, 4, 8]) {
    test(`${harts} hart(s): nproc and /proc/cpuinfo count them, the torture program passes`, { timeout: budget(BOOT_MS + 3 * RUN_MS) }, async () => {
      const c = await bootDefaultGuest({ initrd, cpus: harts, memMiB: 256, hartThreads }, {}, BOOT_MS);
      try {
        assert.deepEqual(await counts(c), { nproc: harts, cpuinfo: harts });
        const seen = await torture(c, harts);
        if (harts >= 2) console.log(`litmus outcomes with ${harts} harts: ${JSON.stringify(seen)}`);
      } finally {
        await c.vm.kill('test done');
      }
    });
  }

  test('CPU hotplug: a hart goes offline and back while a workload runs', { timeout: budget(BOOT_MS + 3 * RUN_MS) }, async () => {
    const c = await bootDefaultGuest({ initrd, cpus: 4, memMiB: 256, hartThreads }, {}, BOOT_MS);
    try {
      await c.run('(while :; do :; done) & P1=$!; (while :; do :; done) & P2=$!', 60_000);
      const off = await c.run('echo 0 > /sys/devices/system/cpu/cpu1/online; cat /sys/devices/system/cpu/online; nproc', RUN_MS);
      assert.match(off, /status 0$/, off);
      assert.match(off, /^0,2-3\r?\n3\r?$/m, off);
      const on = await c.run('echo 1 > /sys/devices/system/cpu/cpu1/online; cat /sys/devices/system/cpu/online; nproc', RUN_MS);
      assert.match(on, /status 0$/, on);
      assert.match(on, /^0-3\r?\n4\r?$/m, on);
      await c.run('kill $P1 $P2', 60_000);
      await torture(c, 4);
    } finally {
      await c.vm.kill('test done');
    }
  });

  test('deterministic 4-hart boots print the same bytes, with the translator on and off; the torture program passes without it', { timeout: budget(3 * BOOT_MS + RUN_MS) }, async () => {
    const boots: string[] = [];
    for (const jit of [true, true, false]) {
      const c = await bootDefaultGuest({ initrd, cpus: 4, memMiB: 256, deterministic: true, jit }, {}, BOOT_MS);
      try {
        // Up to the first prompt: what comes after depends on when the test looks.
        const ready = c.out.indexOf('tsvisor guest ready');
        boots.push(c.out.slice(0, c.out.indexOf('# ', ready) + 2));
        if (!jit) await torture(c, 4);
      } finally {
        await c.vm.kill('test done');
      }
    }
    assert.match(boots[0], /smp: Brought up 1 node, 4 CPUs/);
    assert.equal(boots[1], boots[0], 'two deterministic boots with the translator');
    assert.equal(boots[2], boots[0], 'translator off and on');
  });

  test('a deterministic 2-hart VM restored from a snapshot at instruction N prints exactly what the original printed after N', { timeout: budget(3 * BOOT_MS) }, async () => {
    const a = await bootDefaultGuest({ initrd, cpus: 2, memMiB: 256, deterministic: true }, {}, BOOT_MS);
    const snapDir = join(dir, 'snap');
    a.vm.pause();
    for (let k = 0; a.vm.live().state !== RUN_STATE_PAUSED; k++) {
      assert.ok(k < 6000, 'the VM pauses');
      await new Promise((r) => setTimeout(r, 10));
    }
    const n = Number(a.vm.live().instret) + 20_000_000;
    // Markers are computed by the shell, so the echoed command line never matches them.
    const events = [{ instret: n + 50_000, data: 'smp_torture; echo after-$((6*7)); poweroff\n' }];
    const snapped = new Promise<SnapshotResult>((resolve) => a.vm.once('snapshot', resolve));
    await a.vm.command({ type: 'scheduleSnapshot', dir: snapDir, instret: n });
    await a.vm.command({ type: 'scheduleInput', events });
    a.vm.resume();
    const snap = await snapped;
    assert.equal(snap.instret, n);
    const exitA = await a.vm.exited;
    assert.equal(exitA.code, 0, exitA.reason);
    assert.match(a.out, /smp_torture: PASS[\s\S]*after-42/);

    const script = join(dir, 'script.json');
    writeFileSync(script, JSON.stringify(events));
    const child = spawn(process.execPath, [CLI, 'run', '--restore', snapDir, '--input-script', script], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    const b = new ChildConsole(child);
    let outB = '';
    child.stdout!.on('data', (x: Buffer) => (outB += x.toString('latin1')));
    const code = await b.exited;
    assert.equal(code, 0, b.out.slice(-2000));
    assert.match(outB, /threads 2\r?\n[\s\S]*smp_torture: PASS[\s\S]*after-42/);
    assert.ok(a.out.endsWith(outB), `the restored VM's output is not the tail of the original's\n--- restored ---\n${outB.slice(0, 3000)}`);
  });
});
