// Harts on host threads of their own (SMP phase 2, --hart-threads on): a
// 2-hart Debian guest runs a busy loop pinned to each CPU, and the host shows
// the parallelism directly: the test process (which hosts the VM's worker and
// its hart threads) has two threads that each gained CPU time over the same
// window, at least a third of the busiest one's (on one thread the harts would
// take turns and one thread would gain it all), and each hart's instruction
// count grew. Then the VM is paused and snapshotted while its harts run on
// threads (they park into the phase-1 picture), and the snapshot restores into
// a VM that runs its harts on threads again: both loops still count.

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
  const vm = new VmHandle({
    kernel: guest.kernel, initrd: guest.initrd, append: 'console=ttyS0', memMiB: 256, deterministic: false,
    wasmPath: defaultWasmPath(), cpus: 2, hartThreads: true, restore: join(dir, 'snap'),
  });
  const r = new VmConsole(vm);
  vm.start();
  try {
    await hartInstructionsGrow(vm, 2);
    const out = await r.run('echo restored-$((6*7)); nproc', 120_000);
    assert.match(out, /restored-42\r?\n2\r?\n/, out);
  } finally {
    await vm.kill('test done');
  }
});
