// Harts on host threads of their own (SMP phase 2, --hart-threads on): a
// 2-hart Debian guest runs a busy loop pinned to each CPU, and the host shows
// the parallelism directly: the test process (which hosts the VM's worker and
// its hart threads) has two threads that each gained CPU time over the same
// window, at least a third of the busiest one's (on one thread the harts would
// take turns and one thread would gain it all), and each hart's instruction
// count grew. Then the VM is paused and snapshotted while its harts run on
// threads (they park into the phase-1 picture), and the snapshot restores into
// a VM that runs its harts on threads again: both loops still count.
//
// Rounds of parallel busy programs on 2 and 4 harts (twice as many copies as
// harts, each a pipe from one process into a checksum in another, so the
// harts wake each other with IPIs, migrate tasks and fence): every copy of
// every round prints the right checksum within its budget, and the guest's
// OOM killer never acts (bench:smp's "hang" of a 2-hart VM was its OOM killer
// ending one of two copies that did not fit the guest's RAM, the bench then
// waiting for that copy's result for ever). With 2 harts each hart took
// translations the other made (Jit.sharing; test/jit-share.test.ts).

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootDefaultGuest, VmConsole, type VmConsole as VmConsoleType } from './lib/vm-console.js';
import { VmHandle, defaultWasmPath } from '../src/vm/vm-handle.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { RUN_STATE_PAUSED, type SnapshotResult } from '../src/vm/protocol.js';
import { budget } from './lib/budget.js';
import { until } from './daemon-helpers.js';

const BOOT_MS = 600_000;
const dir = mkdtempSync(join(tmpdir(), 'tsvisor-smp-threads-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** CPU time (clock ticks, user + system) of every thread of this process. */
function threadTimes(): Map<string, number> {
  const out = new Map<string, number>();
  for (const t of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${t}/stat`, 'latin1');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(t, Number(f[11]) + Number(f[12]));
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

async function hartInstructionsGrow(vm: VmHandle, harts: number): Promise<void> {
  const first = vm.hartStats().map((h) => h.instructions);
  await until('every hart retires instructions', () => vm.hartStats().every((h, i) => h.instructions > first[i] + 50_000_000), 120_000);
  assert.equal(first.length, harts);
}

/** SHA-256 of 4 MiB of zero bytes. */
const ZEROS_4M_SHA256 = 'bb9f8df61474d25e71fa00722318cd387396ca1736605e1248821cc0de3d3af8';
const ROUNDS = 4;
const ROUND_MS = 300_000;

for (const harts of [2, 4]) {
  test(`${harts} harts on threads: ${ROUNDS} rounds of ${2 * harts} parallel checksums all finish, right`, { timeout: budget(BOOT_MS + ROUNDS * ROUND_MS) }, async () => {
    const c = await bootDefaultGuest({ cpus: harts, memMiB: 256, hartThreads: true }, {}, BOOT_MS);
    try {
      const copies = 2 * harts;
      const cmd = Array.from({ length: copies }, (_, i) => `(head -c 4194304 /dev/zero | sha256sum | sed 's/^/copy${i} /') &`).join(' ') + ' wait';
      for (let round = 1; round <= ROUNDS; round++) {
        const out = await c.run(cmd, ROUND_MS);
        assert.doesNotMatch(out, /Out of memory|Killed/, `round ${round}: ${out}`);
        for (let i = 0; i < copies; i++) assert.match(out, new RegExp(`copy${i} ${ZEROS_4M_SHA256}`), `round ${round}, copy ${i}: ${out}`);
      }
      const stats = c.vm.hartStats();
      assert.equal(stats.length, harts);
      for (const h of stats) assert.ok(h.instructions > 0, `hart ${h.hart} ran: ${JSON.stringify(stats)}`);
      if (harts !== 2) return;
      // The harts shared their translations: each put back modules the other
      // translated (the boot and the rounds run the same kernel code on both).
      const shared = await new Promise<string>((res) => {
        c.vm.once('stats', res);
        c.vm.requestStats();
      });
      const taken = [...shared.matchAll(/hart (\d+) loop .*; ([\d,]+) translations in ([\d,]+) modules taken from other harts/g)];
      assert.equal(taken.length, harts, shared);
      for (const m of taken) assert.ok(Number(m[2].replace(/,/g, '')) > 100, `hart ${m[1]} took translations of the other: ${m[0]}`);
      // Idle now: the idle VM's translation drop reaches every hart's own translator
      // (the statistics report shows each hart thread's modules and drops before it parks them).
      let text = '';
      await until('every hart dropped its translations while idle', async () => {
        const got = new Promise<string>((res) => c.vm.once('stats', res));
        c.vm.requestStats();
        text = await got;
        const drops = [...text.matchAll(/hart (\d+) thread .* drops=(\d+)/g)].map((m) => Number(m[2]));
        return drops.length === harts && drops.every((d) => d >= 1);
      }, 120_000, 5000);
      assert.match(text, /modules=\d+ drops=[1-9]/, text);
      // Idle cost after the drop, from each hart thread's loop counters over an idle
      // window (counts of what the threads did, not timings): the idle code is not
      // translated again block by block (at the usual threshold each hart made
      // hundreds of translations in its first idle minute; now at most one idle
      // batch of 48, or a loop), and a hart waiting in WFI sleeps until its timer
      // rather than waking every 200 ms for nothing (about 4 such wakeups a second
      // per hart before; at most one a second now, since the cap is 1 s).
      const loops = async () => {
        const got = new Promise<string>((res) => c.vm.once('stats', res));
        c.vm.requestStats();
        const t = await got;
        return new Map([...t.matchAll(/hart (\d+) loop\s+([\d,]+) slices, ([\d,]+) sleeps \(([\d,]+) woken for nothing\), ([\d,]+) translations/g)]
          .map((m) => [Number(m[1]), { emptyWakes: Number(m[4].replace(/,/g, '')), translations: Number(m[5].replace(/,/g, '')) }]));
      };
      const IDLE_WINDOW_MS = 20_000;
      const before = await loops();
      const t0 = Date.now();
      await new Promise((r) => setTimeout(r, IDLE_WINDOW_MS));
      const after = await loops();
      const secs = (Date.now() - t0) / 1000;
      assert.equal(after.size, harts, text);
      for (const [h, a] of after) {
        const b = before.get(h)!;
        const made = a.translations - b.translations;
        const empty = (a.emptyWakes - b.emptyWakes) / secs;
        assert.ok(made <= 2 * 48, `hart ${h}: ${made} translations in ${secs.toFixed(0)} s of idle (at most two idle batches)`);
        assert.ok(empty <= 2, `hart ${h}: woken ${empty.toFixed(1)} times a second for nothing while idle in WFI`);
      }
    } finally {
      await c.vm.kill('test done');
    }
  });
}

test('a 2-hart VM with --hart-threads runs its harts on two host threads at once; pause, snapshot and restore keep them on threads', { timeout: budget(3 * BOOT_MS) }, async () => {
  const c: VmConsoleType = await bootDefaultGuest({ cpus: 2, memMiB: 256, hartThreads: true }, {}, BOOT_MS);
  try {
    await c.run('for c in 0 1; do taskset -c $c sh -c "while :; do :; done" & done; echo loops-$((20+22))', 60_000);
    await hartInstructionsGrow(c.vm, 2);
    const before = threadTimes();
    // Long enough for a few hundred clock ticks per busy thread; the check below is on CPU time, not on this wait.
    await until('two threads gain CPU time', () => {
      const now = threadTimes();
      const gains = [...now].map(([t, v]) => v - (before.get(t) ?? v)).sort((a, b) => b - a);
      return gains[1] >= 200;
    }, 300_000, 200);
    const after = threadTimes();
    const gains = [...after].map(([t, v]) => ({ t, gain: v - (before.get(t) ?? v) })).sort((a, b) => b.gain - a.gain);
    console.log(`thread CPU ticks gained: ${gains.slice(0, 5).map((g) => g.gain).join(', ')}`);
    assert.ok(gains[1].gain >= gains[0].gain / 3, `the second-busiest thread ran about as much as the busiest: ${gains[0].gain} vs ${gains[1].gain}`);
    const stats = c.vm.hartStats();
    assert.deepEqual(stats.map((h) => h.state), ['started', 'started']);

    // Pause: the harts park; the instruction count stands still while paused.
    c.vm.pause();
    await until('the VM pauses', () => c.vm.live().state === RUN_STATE_PAUSED, 60_000);
    const pausedAt = c.vm.live().instret;
    const snapDir = join(dir, 'snap');
    const snap = await c.vm.command({ type: 'snapshot', dir: snapDir }) as SnapshotResult;
    assert.equal(BigInt(snap.instret), pausedAt, 'the snapshot is taken where the VM paused');
    c.vm.resume();
    await hartInstructionsGrow(c.vm, 2);
  } finally {
    await c.vm.kill('test done');
  }

  const guest = await ensureDefaultGuest({});
  assert.ok(guest.systemMap, 'the default guest has its System.map');
  const vm = new VmHandle({
    kernel: guest.kernel, initrd: guest.initrd, append: 'console=ttyS0', memMiB: 256, deterministic: false,
    wasmPath: defaultWasmPath(), cpus: 2, hartThreads: true, restore: join(dir, 'snap'), systemMap: guest.systemMap,
  });
  const r = new VmConsole(vm);
  vm.start();
  try {
    await hartInstructionsGrow(vm, 2);
    const out = await r.run('echo restored-$((6*7)); nproc', 120_000);
    assert.match(out, /restored-42\r?\n2\r?\n/, out);
    // A restored VM arms its panic watch a moment after it runs again, by when its
    // hart threads are running: the watch must reach them. A crash on hart 1 (not the
    // device thread's hart 0) ends the VM as a kernel panic; without the watch on the
    // threads the panicked kernel would spin and this wait would run out. The worker
    // arms it at its first housekeeping (about once a second) at least 1 s after the
    // restore: with device accesses as quick as they now are, the commands above can
    // be done before that, and a crash then was not watched (the VM did not end).
    await new Promise((res) => setTimeout(res, budget(3000)));
    r.type('taskset -c 1 sh -c "echo c > /proc/sysrq-trigger"');
    const exit = await Promise.race([vm.exited, new Promise<null>((res) => setTimeout(() => res(null), budget(180_000)).unref())]);
    assert.ok(exit, `the VM did not end: ${r.out.slice(-2000)}`);
    assert.equal(exit.code, 1);
    assert.equal(exit.reason, 'kernel panic');
    assert.match(r.out, /sysrq triggered crash/);
  } finally {
    await vm.kill('test done');
  }
});
