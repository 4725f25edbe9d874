// QEMU's side of the migration benchmark: live migration between two QEMU
// processes on loopback (`-incoming tcp:`), driven through QMP, and a
// snapshot written with `migrate` to a file and restored with
// `-incoming exec:cat FILE`.

import { createServer } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ConsoleSession } from './console.js';
import { Qmp, type QemuMigrateInfo } from './qmp.js';

export interface GuestSpec {
  kernel: string;
  initrd: string;
  memMiB: number;
  append: string;
}

/** What one live migration measured, for either emulator. */
export interface MigrationFigures {
  totalMs: number;
  downtimeMs: number;
  bytes: number;
  rounds: number;
  /** The CPU throttle in force at the end (auto-converge), percent; null when not reported. */
  throttlePct: number | null;
  /** tsvisor: when each step of the migration ended (ms from its start; GET /v1/vms/NAME/migrate). */
  steps?: Record<string, number>;
  /** The guest answered (idle) or went on with its workload (dirty) on the destination. */
  verified: boolean;
}

export interface MigrationCase {
  name: 'idle' | 'dirty';
  /** Typed into the source's shell before the migration starts (the dirtying workload), or null. */
  workload: string | null;
}

export const POLL_MS = 100;

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export function qemuArgs(g: GuestSpec, qmpPath: string, extra: string[] = []): string[] {
  return [
    '-M', 'virt', '-m', `${g.memMiB}M`, '-nographic', '-kernel', g.kernel, '-initrd', g.initrd, '-append', g.append,
    '-qmp', `unix:${qmpPath},server=on,wait=off`, ...extra,
  ];
}

/**
 * Types a line whose output differs from its echo and waits for that output: the
 * console answers. Retyped every 10 s: under heavy host load a line typed while the
 * guest was still settling after a move was seen to go unanswered.
 */
export async function consoleAnswers(s: ConsoleSession, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    s.child.stdin!.write('echo A$((40+2))B\n');
    try {
      await s.waitFor(/A42B/, Math.min(10_000, Math.max(1, end - Date.now())), 'waiting for the console to answer');
      return;
    } catch (e) {
      if (Date.now() >= end || /exited/.test((e as Error).message)) throw e;
    }
  }
}

/** Waits for a `DIRTY <pass> <sum>` line of bench/guest/dirty.c; returns the pass. */
export async function dirtyPass(s: ConsoleSession, timeoutMs: number): Promise<void> {
  await s.waitFor(/DIRTY \d+ [0-9a-f]{16}\n/, timeoutMs, 'waiting for the dirtying workload to report a pass');
}

async function pollMigration(q: Qmp, timeoutMs: number): Promise<QemuMigrateInfo> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await q.execute<QemuMigrateInfo>('query-migrate');
    if (info.status === 'completed') return info;
    if (info.status === 'failed' || info.status === 'cancelled') {
      throw new Error(`QEMU migration ${info.status}${info['error-desc'] ? `: ${info['error-desc']}` : ''}`);
    }
    if (Date.now() > end) {
      await q.execute('migrate_cancel').catch(() => {});
      throw new Error(`QEMU migration did not finish within ${timeoutMs / 1000} s (status ${info.status}, ${info.ram?.['dirty-sync-count'] ?? '?'} rounds)`);
    }
    await delay(POLL_MS);
  }
}

/**
 * One QEMU live migration: boot a source, start the workload, start a
 * destination with -incoming, migrate with the given downtime limit, then check
 * the guest goes on at the destination.
 */
export async function qemuLiveMigration(
  g: GuestSpec, c: MigrationCase, work: string, opts: { downtimeMs: number; maxBandwidth: number; timeoutMs: number; say: (s: string) => void },
): Promise<MigrationFigures> {
  const srcQmp = join(work, `qemu-src-${c.name}.qmp`);
  const dstQmp = join(work, `qemu-dst-${c.name}.qmp`);
  const src = new ConsoleSession('qemu-system-riscv64', qemuArgs(g, srcQmp));
  let dst: ConsoleSession | null = null;
  const qmps: Qmp[] = [];
  try {
    await src.waitForShell(opts.timeoutMs);
    const q = await Qmp.connect(srcQmp, 30_000);
    qmps.push(q);
    if (c.workload) {
      src.child.stdin!.write(`${c.workload}\n`);
      await dirtyPass(src, opts.timeoutMs);
      await dirtyPass(src, opts.timeoutMs);
    }
    const port = await freePort();
    dst = new ConsoleSession('qemu-system-riscv64', qemuArgs(g, dstQmp, ['-incoming', `tcp:127.0.0.1:${port}`]));
    qmps.push(await Qmp.connect(dstQmp, 60_000));
    await q.execute('migrate-set-parameters', { 'downtime-limit': opts.downtimeMs, 'max-bandwidth': opts.maxBandwidth });
    // A guest dirtying faster than the link needs throttling to converge; QEMU does it only when asked.
    await q.execute('migrate-set-capabilities', { capabilities: [{ capability: 'auto-converge', state: c.workload !== null }] });
    opts.say(`qemu ${c.name}: migrating to tcp:127.0.0.1:${port}`);
    await q.execute('migrate', { uri: `tcp:127.0.0.1:${port}` });
    const info = await pollMigration(q, opts.timeoutMs);
    if (c.workload) await dirtyPass(dst, opts.timeoutMs);
    else await consoleAnswers(dst, opts.timeoutMs);
    return {
      totalMs: info['total-time'] ?? NaN,
      downtimeMs: info.downtime ?? NaN,
      bytes: info.ram?.transferred ?? NaN,
      rounds: info.ram?.['dirty-sync-count'] ?? NaN,
      throttlePct: info['cpu-throttle-percentage'] ?? (c.workload ? 0 : null),
      verified: true,
    };
  } finally {
    for (const q of qmps) q.close();
    await src.kill();
    await dst?.kill();
  }
}

export interface QemuSnapshotFigures {
  /** Boot: process start to an answering console. */
  coldBootMs: number;
  /** `stop` + migrate to a file, QEMU's total-time. */
  snapshotMs: number;
  snapshotBytes: number;
  /** Process start of `-incoming exec:cat FILE` to an answering console. */
  restoreToAnswerMs: number;
  /** Proportional set size of the restored QEMU, KiB. */
  restoredPssKiB: number;
}

export function pssKiB(pid: number): number {
  const m = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** QEMU's snapshot and restore: migrate a stopped VM to a file, start another QEMU from it. */
export async function qemuSnapshotRestore(g: GuestSpec, work: string, opts: { settleMs: number; timeoutMs: number; say: (s: string) => void }): Promise<QemuSnapshotFigures> {
  const file = join(work, 'qemu-state.bin');
  const srcQmp = join(work, 'qemu-snap.qmp');
  const src = new ConsoleSession('qemu-system-riscv64', qemuArgs(g, srcQmp));
  let coldBootMs: number;
  let snapshotMs: number;
  let snapshotBytes: number;
  try {
    await src.waitForShell(opts.timeoutMs);
    await consoleAnswers(src, opts.timeoutMs);
    coldBootMs = performance.now() - src.started;
    await delay(opts.settleMs);
    const q = await Qmp.connect(srcQmp, 30_000);
    try {
      await q.execute('stop');
      await q.execute('migrate', { uri: `exec:cat > '${file}'` });
      const info = await pollMigration(q, opts.timeoutMs);
      snapshotMs = info['total-time'] ?? NaN;
      snapshotBytes = info.ram?.transferred ?? NaN;
    } finally {
      q.close();
    }
  } finally {
    await src.kill();
  }
  opts.say('qemu: restoring from the migration file');
  const dstQmp = join(work, 'qemu-restore.qmp');
  const dst = new ConsoleSession('qemu-system-riscv64', qemuArgs(g, dstQmp, ['-incoming', `exec:cat '${file}'`]));
  try {
    const q = await Qmp.connect(dstQmp, opts.timeoutMs);
    try {
      // The source was stopped, so the destination stays paused after loading: continue it.
      for (;;) {
        const { status } = await q.execute<{ status: string }>('query-status');
        if (status === 'running') break;
        if (status === 'paused' || status === 'postmigrate') await q.execute('cont');
        else if (status !== 'inmigrate') throw new Error(`QEMU restore: unexpected status ${status}`);
        else await delay(5);
      }
    } finally {
      q.close();
    }
    await consoleAnswers(dst, opts.timeoutMs);
    const restoreToAnswerMs = performance.now() - dst.started;
    await delay(opts.settleMs);
    return { coldBootMs, snapshotMs, snapshotBytes, restoreToAnswerMs, restoredPssKiB: pssKiB(dst.child.pid!) };
  } finally {
    await dst.kill();
  }
}
