// Snapshot and restore benchmark: the default guest with 512 MiB of RAM, idle
// at its shell prompt, under tsvisor and under QEMU in the same run, one after
// the other. For each: the cold boot to the prompt, the time to save the VM
// (tsvisor: SIGUSR2 to `run --snapshot-dir`; QEMU: QMP `migrate` to
// "exec:cat > FILE"), and restores (tsvisor: `run --restore DIR`; QEMU:
// `-incoming "exec:cat FILE"`) timed from starting the process to the guest
// answering a command typed on its console. tsvisor also reports the restore
// inside the VMM (state read, memory mapped, devices rebuilt). Then the same
// inside a daemon (`tsvisor serve`): VMs defined from a snapshot the daemon
// took, started one at a time (POST start to the console's answer; a warm
// worker is ready, as on a daemon between requests), and N clones at once
// (POST /v1/snapshots/SNAP/clones) with the daemon process's PSS before and
// after them.
//
//   npm run bench:snapshot -- [--runs N] [--clones N] [--json]

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { table } from './lib/format.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll, track } from './lib/proc.js';
import { REPO_ROOT, TSVISOR_BIN } from './lib/guest-build.js';
import { daemonRestoresAndClones } from './lib/daemon-restore.js';

const MEM = '512M';
const APPEND = 'console=ttyS0';
const TIMEOUT_MS = 600_000;
const ANSWER = /R2R/;
const ASK = 'echo R$((1+1))R\n';
/** A restored QEMU guest that has not answered in this long is counted as failed (it happens: the guest stays silent). */
const QEMU_RESTORE_TIMEOUT_MS = 120_000;

/** A process whose stdout and stderr are collected; waits on patterns. */
class Proc {
  readonly child: ChildProcess;
  readonly started = performance.now();
  out = '';
  err = '';
  private wake: (() => void) | null = null;
  exited = false;

  constructor(cmd: string, args: string[]) {
    this.child = track(spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
    this.child.stdout!.setEncoding('latin1').on('data', (s: string) => {
      this.out += s;
      this.wake?.();
    });
    this.child.stderr!.setEncoding('latin1').on('data', (s: string) => {
      this.err += s;
      this.wake?.();
    });
    this.child.stdin!.on('error', () => {});
    this.child.on('close', () => {
      this.exited = true;
      this.wake?.();
    });
  }

  type(s: string): void {
    this.child.stdin!.write(s);
  }

  /** Wait until `test` holds; ms since the process started. */
  async until(what: string, test: () => boolean, ms = TIMEOUT_MS, every?: () => void): Promise<number> {
    const end = performance.now() + ms;
    for (;;) {
      if (test()) return performance.now() - this.started;
      if (this.exited) throw new Error(`${what}: the process exited\n${this.err.slice(-800)}`);
      if (performance.now() > end) throw new Error(`${what}: nothing within ${ms / 1000} s\n${this.out.slice(-500)}\n${this.err.slice(-500)}`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 1000);
        this.wake = () => {
          clearTimeout(t);
          r();
        };
      });
      this.wake = null;
      every?.();
    }
  }

  /** Type the question now and again each second until the guest answers; ms from start to the answer. */
  async answer(timeoutMs = TIMEOUT_MS): Promise<number> {
    const from = this.out.length;
    this.type(ASK);
    let last = performance.now();
    return this.until('the console answer', () => ANSWER.test(this.out.slice(from)), timeoutMs, () => {
      if (performance.now() - last > 2000) {
        last = performance.now();
        this.type(ASK);
      }
    });
  }

  async shell(): Promise<number> {
    return this.until('the shell prompt', () => /tsvisor guest ready[\s\S]*# /.test(this.out));
  }

  async end(): Promise<void> {
    if (this.exited) return;
    this.child.kill('SIGKILL');
    await this.until('exit', () => this.exited, 30_000).catch(() => {});
  }
}

/** A minimal QMP client: one command at a time. */
async function qmp(path: string): Promise<{ cmd(execute: string, args?: object): Promise<Record<string, unknown>>; close(): void }> {
  let sock;
  for (let i = 0; ; i++) {
    try {
      sock = await new Promise<ReturnType<typeof connect>>((resolve, reject) => {
        const s = connect(path, () => resolve(s));
        s.once('error', reject);
      });
      break;
    } catch (e) {
      if (i > 200) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  let buf = '';
  const lines: Record<string, unknown>[] = [];
  let wake: (() => void) | null = null;
  sock.setEncoding('utf8').on('data', (s: string) => {
    buf += s;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    wake?.();
  });
  const next = async (): Promise<Record<string, unknown>> => {
    for (;;) {
      const l = lines.shift();
      if (l && !('event' in l)) return l;
      if (!l) await new Promise<void>((r) => (wake = r));
    }
  };
  await next(); // greeting
  const cmd = async (execute: string, args?: object) => {
    sock.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    const r = await next();
    if ('error' in r) throw new Error(`QMP ${execute}: ${JSON.stringify(r.error)}`);
    return r;
  };
  await cmd('qmp_capabilities');
  return { cmd, close: () => sock.destroy() };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, clones: { type: 'string', default: '10' }, json: { type: 'boolean' } } });
  const runs = Number(values.runs);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs must be a positive integer');
  const cloneCount = Number(values.clones);
  if (!Number.isInteger(cloneCount) || cloneCount < 0 || cloneCount > 64) throw new Error('--clones must be an integer from 0 to 64');
  const load = { start: loadavg()[0]!, end: NaN };
  const say = (m: string) => process.stderr.write(`${m}\n`);
  const g = await ensureDefaultGuest({ progress: false, log: () => {} });
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-snapshot-'));
  try {
    // tsvisor: boot, idle, snapshot, restores.
    say('tsvisor: cold boot');
    const snap = join(dir, 'snap');
    const t = new Proc(process.execPath, [TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', APPEND, '--mem', MEM, '--snapshot-dir', snap]);
    const tBoot = await t.shell();
    const tBootAnswer = await t.answer();
    await new Promise((r) => setTimeout(r, 2000));
    const snapFrom = t.err.length;
    t.child.kill('SIGUSR2');
    await t.until('the snapshot', () => /snapshot written/.test(t.err.slice(snapFrom)));
    const tSnapMs = Number(/in (\d+) ms/.exec(t.err.slice(snapFrom))![1]);
    await t.end();
    const tRestore: { answer: number; inVmm: number; report: string }[] = [];
    for (let i = 0; i < runs; i++) {
      say(`tsvisor: restore ${i + 1}/${runs}`);
      const r = new Proc(process.execPath, [TSVISOR_BIN, 'run', '--restore', snap]);
      const answer = await r.answer();
      const inVmm = Number(/restored in ([\d.]+) ms/.exec(r.err)?.[1] ?? NaN);
      tRestore.push({ answer, inVmm, report: /tsvisor: (restored in [^\n]*)/.exec(r.err)?.[1] ?? '' });
      await r.end();
    }

    // The daemon: restores of a snapshot it took, and clones.
    const daemon = await daemonRestoresAndClones(
      { kernel: g.kernel, initrd: g.initrd, memMiB: 512, append: APPEND }, dir,
      { restores: runs, clones: cloneCount, settleMs: 3000, timeoutMs: TIMEOUT_MS, say },
    );

    // QEMU: boot, idle, migrate to a file, restores with -incoming.
    say('qemu: cold boot');
    const file = join(dir, 'qemu.mig');
    const qmpPath = (n: number) => join(dir, `qmp${n}.sock`);
    const qemuArgs = (n: number) => ['-M', 'virt', '-m', MEM, '-display', 'none', '-serial', 'stdio', '-monitor', 'none', '-nic', 'none', '-qmp', `unix:${qmpPath(n)},server=on,wait=off`, '-kernel', g.kernel, '-initrd', g.initrd, '-append', APPEND];
    const q = new Proc('qemu-system-riscv64', qemuArgs(0));
    const qBoot = await q.shell();
    const qBootAnswer = await q.answer();
    await new Promise((r) => setTimeout(r, 2000));
    const c = await qmp(qmpPath(0));
    const m0 = performance.now();
    await c.cmd('migrate', { uri: `exec:cat > ${file}` });
    for (;;) {
      const st = (await c.cmd('query-migrate')).return as { status?: string };
      if (st.status === 'completed') break;
      if (st.status === 'failed' || st.status === 'cancelled') throw new Error(`QEMU migration ${st.status}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    const qSnapMs = performance.now() - m0;
    c.close();
    await q.end();
    const qRestore: number[] = [];
    const qFailed: string[] = [];
    for (let i = 0; i < runs; i++) {
      say(`qemu: restore ${i + 1}/${runs}`);
      const r = new Proc('qemu-system-riscv64', [...qemuArgs(i + 1), '-incoming', `exec:cat ${file}`]);
      try {
        // A restored QEMU guest that answers does so within seconds; one that never does is reported.
        qRestore.push(await r.answer(QEMU_RESTORE_TIMEOUT_MS));
      } catch (e) {
        // A restored guest that never answers (it happened once: a kernel panic right after -incoming) is reported, not fatal.
        const why = /Kernel panic[^\n]*/.exec(r.out)?.[0] ?? (e instanceof Error ? e.message.split('\n')[0]! : String(e));
        qFailed.push(why);
        say(`qemu: restore ${i + 1} failed: ${why}`);
      }
      await r.end();
    }
    if (qRestore.length === 0) say(`every QEMU restore failed (its ratios are left out): ${qFailed.join('; ')}`);

    const tAns = median(tRestore.map((x) => x.answer));
    const qAns = median(qRestore);
    const dAns = median(daemon.restores.map((x) => x.startToAnswerMs));
    load.end = loadavg()[0]!;
    const report = {
      date: new Date().toISOString(), hostLoad1m: load,
      host: { cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion() },
      guest: { memory: MEM, kernel: g.kernel, initrd: g.initrd },
      runs,
      tsvisor: {
        bootToPromptMs: tBoot, bootToAnswerMs: tBootAnswer, snapshotMs: tSnapMs,
        snapshotBytesOnDisk: statSync(join(snap, 'memory.bin')).blocks * 512,
        restoreToAnswerMs: tRestore.map((x) => x.answer), restoreInVmmMs: tRestore.map((x) => x.inVmm),
        medianRestoreToAnswerMs: tAns, medianRestoreInVmmMs: median(tRestore.map((x) => x.inVmm)),
        restoreReports: tRestore.map((x) => x.report),
      },
      daemon: {
        startToAnswerMs: daemon.restores.map((x) => x.startToAnswerMs), medianStartToAnswerMs: dAns,
        restoreReports: daemon.restores.map((x) => x.report), clones: daemon.clones,
      },
      qemu: { bootToPromptMs: qBoot, bootToAnswerMs: qBootAnswer, migrateToFileMs: qSnapMs, fileBytes: statSync(file).size, restoreToAnswerMs: qRestore, failedRestores: qFailed, medianRestoreToAnswerMs: qAns },
      ratios: { restoreToAnswer: tAns / qAns, daemonRestoreToAnswer: dAns / qAns, snapshot: tSnapMs / qSnapMs, tsvisorRestoreVsColdBoot: tAns / tBootAnswer, qemuRestoreVsColdBoot: qAns / qBootAnswer },
    };
    if (values.json) {
      process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
      return;
    }
    const f = (ms: number) => `${ms.toFixed(0)} ms`;
    process.stdout.write(`Snapshot/restore, default guest, ${MEM} RAM, idle at its prompt (median of ${runs} restores)\n\n`);
    process.stdout.write(table([
      ['', 'tsvisor', 'QEMU', 'tsvisor / QEMU'],
      ['cold boot to answering console', f(tBootAnswer), f(qBootAnswer), (tBootAnswer / qBootAnswer).toFixed(2)],
      ['save (snapshot / migrate to file)', f(tSnapMs), f(qSnapMs), (tSnapMs / qSnapMs).toFixed(2)],
      ['restore: process start to answering console', f(tAns), f(qAns), (tAns / qAns).toFixed(2)],
      ['restore inside the VMM', `${report.tsvisor.medianRestoreInVmmMs.toFixed(1)} ms`, '-', '-'],
      ['daemon: POST start to answering console', f(dAns), f(qAns), (dAns / qAns).toFixed(2)],
      ['restore / cold boot', (tAns / tBootAnswer).toFixed(3), (qAns / qBootAnswer).toFixed(3), '-'],
    ], new Set([1, 2, 3])));
    if (qFailed.length) process.stdout.write(`\nQEMU restores that never answered: ${qFailed.length} (${qFailed.join('; ')})\n`);
    process.stdout.write(`\ntsvisor run --restore, per run: ${tRestore.map((x) => x.report).join('\n  ')}\n`);
    process.stdout.write(`daemon restores, per run: ${daemon.restores.map((x) => `${x.startToAnswerMs.toFixed(0)} ms to the answer (POST answered ${x.postMs.toFixed(0)}, console open ${x.consoleOpenMs.toFixed(0)}, question echoed ${x.echoMs.toFixed(0)} ms; by then ${(x.instructions / 1e6).toFixed(2)} M guest instructions since the snapshot, ${x.busyMs.toFixed(0)} ms running, ${(x.translatedShare * 100).toFixed(0)}% translated); ${x.report}`).join('\n  ')}\n`);
    const dc = daemon.clones;
    if (dc) {
      const mib = (k: number) => (k / 1024).toFixed(1);
      process.stdout.write(`daemon clones: ${dc.count}, daemon PSS ${mib(dc.daemonPssBeforeKiB)} -> ${mib(dc.daemonPssAfterKiB)} MiB: ${mib(dc.perCloneKiB)} MiB per clone, of which ${mib(dc.writtenPerCloneKiB)} MiB guest pages it wrote\n`);
    }
    process.stdout.write(`host load (1 min): ${load.start.toFixed(1)} at the start, ${load.end.toFixed(1)} at the end\n`);
    process.stdout.write(`\nsnapshot memory file: ${(report.tsvisor.snapshotBytesOnDisk / 2 ** 20).toFixed(0)} MiB on disk; QEMU migration file: ${(report.qemu.fileBytes / 2 ** 20).toFixed(0)} MiB\n`);
  } finally {
    killAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:snapshot: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
