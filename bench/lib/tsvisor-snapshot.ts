// tsvisor's side of the snapshot part of the migration benchmark: a snapshot
// of a guest idle at its prompt (`tsvisor run --snapshot-dir`, SIGUSR2), a
// restore to an answering console (`tsvisor run --restore`), and the host
// memory of clones started with `tsvisor clone`.

import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { ConsoleSession } from './console.js';
import { TSVISOR_BIN } from './guest-build.js';
import { consoleAnswers, pssKiB, type GuestSpec } from './qemu-migrate.js';

/** Resolves with the first match of `re` in what `s` writes to stderr from now on. */
function onStderr(s: ConsoleSession, re: RegExp, timeoutMs: number, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => {
      s.child.stderr!.off('data', check);
      reject(new Error(`${what}: nothing within ${timeoutMs / 1000} s (${s.lastError()})`));
    }, timeoutMs);
    function check(chunk: string): void {
      text += chunk;
      const m = re.exec(text);
      if (m) {
        clearTimeout(timer);
        s.child.stderr!.off('data', check);
        resolve(m);
      }
    }
    s.child.stderr!.on('data', check);
  });
}

export interface TsvisorSnapshotFigures {
  coldBootMs: number;
  /** tsvisor's own figure for the snapshot (pause, write memory and state, resume). */
  snapshotMs: number;
  /** From SIGUSR2 to the report on stderr. */
  snapshotWallMs: number;
  dataPages: number;
  /** tsvisor's own figure: reading the snapshot and building the machine. */
  restoreMs: number;
  /** 'mapped' (copy-on-write from the memory file) or 'read'. */
  restoreMemory: string;
  /** From the "restored" report to the console's answer. */
  restoredToAnswerMs: number;
  /** Process start of `tsvisor run --restore` to an answering console (Node's own start included). */
  restoreToAnswerMs: number;
  restoredPssKiB: number;
}

export function tsvisorRunArgs(g: GuestSpec, extra: string[]): string[] {
  return [TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', g.append, '--mem', `${g.memMiB}M`, '--net', 'none', ...extra];
}

export async function tsvisorSnapshotRestore(
  g: GuestSpec, snapDir: string, opts: { settleMs: number; timeoutMs: number; say: (s: string) => void },
): Promise<TsvisorSnapshotFigures> {
  const src = new ConsoleSession(process.execPath, tsvisorRunArgs(g, ['--snapshot-dir', snapDir]));
  let coldBootMs: number;
  let snapshotMs: number;
  let snapshotWallMs: number;
  let dataPages: number;
  try {
    await src.waitForShell(opts.timeoutMs);
    await consoleAnswers(src, opts.timeoutMs);
    coldBootMs = performance.now() - src.started;
    await delay(opts.settleMs);
    const said = onStderr(src, /snapshot written to .* at instruction \d+: (\d+) pages of memory in (\d+) ms/, opts.timeoutMs, 'waiting for the snapshot');
    const t0 = performance.now();
    src.child.kill('SIGUSR2');
    const m = await said;
    snapshotWallMs = performance.now() - t0;
    dataPages = Number(m[1]);
    snapshotMs = Number(m[2]);
    await consoleAnswers(src, opts.timeoutMs); // the original goes on after its snapshot
  } finally {
    await src.poweroff();
  }
  opts.say('tsvisor: restoring the snapshot');
  const dst = new ConsoleSession(process.execPath, [TSVISOR_BIN, 'run', '--restore', snapDir]);
  try {
    const m = await onStderr(dst, /restored in ([\d.]+) ms \(guest memory (\w+)\)/, opts.timeoutMs, 'waiting for the restore');
    const restoredAt = performance.now();
    await consoleAnswers(dst, opts.timeoutMs);
    const answeredAt = performance.now();
    await delay(opts.settleMs);
    return {
      coldBootMs, snapshotMs, snapshotWallMs, dataPages,
      restoreMs: Number(m[1]),
      restoreMemory: m[2]!,
      restoredToAnswerMs: answeredAt - restoredAt,
      restoreToAnswerMs: answeredAt - dst.started,
      restoredPssKiB: pssKiB(dst.child.pid!),
    };
  } finally {
    await dst.poweroff();
  }
}

export interface CloneFigures {
  count: number;
  /** Per clone: proportional set size, and the guest pages it wrote (private copies of the memory file's pages), KiB. */
  clones: { pssKiB: number; writtenKiB: number }[];
}

/** KiB of private (copied-on-write) pages in the process's mappings of the snapshot memory file. */
export function writtenGuestKiB(pid: number): number {
  let inMem = false;
  let kib = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inMem = line.trimEnd().endsWith('/memory.bin');
    else if (inMem && line.startsWith('Private_Dirty:')) kib += Number(line.split(/\s+/)[1]);
  }
  return kib;
}

const alive = (pid: number) => {
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
};

async function until(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(250);
  }
}

/** `tsvisor clone SNAP --count N`: waits for every clone to restore and settle, reads their memory, stops them. */
export async function tsvisorClones(snapDir: string, dir: string, count: number, opts: { settleMs: number; timeoutMs: number }): Promise<CloneFigures> {
  const r = spawnSync(process.execPath, [TSVISOR_BIN, 'clone', snapDir, '--count', String(count), '--prefix', 'bench', '--dir', dir], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tsvisor clone failed: ${r.stderr.trim()}`);
  const lines = r.stdout.trim().split('\n').map((l) => l.split(' '));
  const pids = lines.map((l) => Number(l[1]));
  try {
    for (const [name, pid, d] of lines) {
      const log = join(d!, 'console.log');
      await until(`${name} to restore`, () => existsSync(log) && /restored in [\d.]+ ms/.test(readFileSync(log, 'utf8')), opts.timeoutMs);
      if (!alive(Number(pid))) throw new Error(`${name} exited: ${readFileSync(log, 'utf8').slice(-500)}`);
    }
    await delay(opts.settleMs);
    return { count, clones: pids.map((p) => ({ pssKiB: pssKiB(p), writtenKiB: writtenGuestKiB(p) })) };
  } finally {
    for (const p of pids) if (alive(p)) process.kill(p, 'SIGTERM');
    await until('the clones to exit', () => pids.every((p) => !alive(p)), 60_000).catch(() => {
      for (const p of pids) if (alive(p)) process.kill(p, 'SIGKILL');
    });
  }
}
