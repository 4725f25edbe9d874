// A real Debian userland job in the guest, QEMU and tsvisor one after the
// other on the same host: python3 (bench/guest/userland/job.py: sqlite3 in
// process, lzma and zlib, sorting, text, json), the sqlite3 CLI, xz and gzip,
// sort and awk (bench/guest/userland/job.sh), in a chroot of the disk
// `tsvisor image build --userland` makes (built here if it is not cached).
//
// Both emulators boot the default guest's kernel and initramfs with the same
// command line and memory, the userland disk as a fresh qcow2 overlay each
// (the base is never written) and the job's two files as a small raw tar
// disk. The host times each part between the markers the guest prints
// (job.sh); the job's checksums must be the same under both, and the python
// part's output must also match qemu-riscv64 user mode running the same
// python3 from the same tree on the host.
//
//   npm run bench:userland -- [--scale X] [--json] [--emulators qemu,tsvisor]
//                             [--timeout SECONDS] [--tsvisor-arg ARG]... [--node-arg ARG]... [--no-user-check]
//
// --tsvisor-arg --stats prints tsvisor's counters at exit (they are in the
// guest's poweroff output, on stderr with TSVISOR_BENCH_ECHO=1);
// --node-arg=--cpu-prof --node-arg=--cpu-prof-dir=DIR profiles it.

import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseBenchArgs } from './lib/args.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { ensureUserland } from '../src/image/userland-disk.js';
import { ConsoleSession } from './lib/console.js';
import { table } from './lib/format.js';
import { REPO_ROOT, TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll } from './lib/proc.js';

const APPEND = 'console=ttyS0';
const MEM = '1G';
const JOB_DIR = join(REPO_ROOT, 'bench', 'guest', 'userland');
const PARTS = ['python', 'sqlite3', 'compress', 'text'] as const;
type Part = (typeof PARTS)[number] | 'job';
type Emulator = 'qemu' | 'tsvisor';
/** Linux's USER_HZ for /proc times (100 on every common architecture). */
const CLOCK_TICKS = 100;
const MARKER = /^@@UL (begin|end) (\w+)(?: ([0-9a-f]{64}))?\s*$/;

interface Options {
  scale: number;
  json: boolean;
  emulators: Set<Emulator>;
  timeoutMs: number;
  tsvisorArgs: string[];
  /** Node options for tsvisor's process (e.g. --cpu-prof --cpu-prof-dir=DIR: a profile per thread, the worker's included). */
  nodeArgs: string[];
  userCheck: boolean;
}

interface PartResult {
  seconds: number;
  /** CPU time (user + system, all threads) the emulator's process spent on the part: less sensitive to other load than wall time. */
  cpuSeconds: number | null;
  checksum: string;
}

/** utime + stime of a process in seconds (Linux /proc), or null. */
function cpuSecondsOf(pid: number | undefined): number | null {
  if (pid === undefined) return null;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) in parentheses.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / CLOCK_TICKS;
  } catch {
    return null;
  }
}

interface RunResult {
  emulator: Emulator;
  bootSeconds: number | null;
  /** Mounting the disks and the python byte-code warm-up (see prepareCommands). */
  prepareSeconds: number | null;
  /** From process start to the job's end marker. */
  totalSeconds: number | null;
  parts: Partial<Record<Part, PartResult>>;
  loadBefore: number;
  loadAfter: number;
  error: string | null;
}

function fail(msg: string): never {
  process.stderr.write(`bench:userland: ${msg}\n` +
    'usage: npm run bench:userland -- [--scale X] [--json] [--emulators qemu,tsvisor] [--timeout SECONDS] [--tsvisor-arg ARG]... [--node-arg ARG]... [--no-user-check]\n');
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const values = parseBenchArgs(
    argv,
    {
      scale: { type: 'string', default: '1' },
      json: { type: 'boolean', default: false },
      emulators: { type: 'string', default: 'qemu,tsvisor' },
      timeout: { type: 'string', default: '1800' },
      'tsvisor-arg': { type: 'string', multiple: true },
      'node-arg': { type: 'string', multiple: true },
      'no-user-check': { type: 'boolean', default: false },
    },
    fail,
  );
  const scale = Number(values.scale);
  if (!Number.isFinite(scale) || scale < 0.05 || scale > 20) fail(`--scale needs a number from 0.05 to 20, not '${values.scale}'`);
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout < 10) fail(`--timeout needs a number of seconds (at least 10), not '${values.timeout}'`);
  const emulators = new Set<Emulator>();
  for (const e of values.emulators.split(',')) {
    if (e !== 'qemu' && e !== 'tsvisor') fail(`unknown emulator '${e}' (qemu, tsvisor)`);
    emulators.add(e);
  }
  return { scale, json: values.json, emulators, timeoutMs: timeout * 1000, tsvisorArgs: values['tsvisor-arg'] ?? [], nodeArgs: values['node-arg'] ?? [], userCheck: !values['no-user-check'] };
}

/** The job's files as a raw tar disk (padded to whole 64 KiB; the guest reads it with tar -xf /dev/vdX). */
function jobDisk(dir: string): string {
  const path = join(dir, 'job.tar');
  execFileSync('tar', ['--format=ustar', '--owner=0', '--group=0', '-cf', path, '-C', JOB_DIR, 'job.py', 'job.sh']);
  const size = statSync(path).size;
  truncateSync(path, Math.ceil(size / 65536) * 65536 + 65536);
  return path;
}

/**
 * Typed at the initramfs shell before the job: mount the userland disk
 * (whichever of vda and vdb holds ext4; the other is the job's tar), /proc,
 * /dev and a tmpfs /tmp (Debian trixie's default) in it, unpack the job, and
 * import the modules job.py uses once. That import writes their byte code,
 * which python3's postinst (py3compile) would have made on a configured
 * system: the disk builder cannot make it without running riscv64 code.
 */
function prepareCommands(): string[] {
  // One short line each: a long line gets folded by the shell's line editor.
  return [
    'mkdir -p /mnt; J=; for d in /dev/vda /dev/vdb; do mount -t ext4 $d /mnt 2>/dev/null || J=$d; done; echo J=$J',
    'mount -t proc proc /mnt/proc && mount -o bind /dev /mnt/dev && mount -t tmpfs -o size=512m tmpfs /mnt/tmp',
    'mkdir -p /mnt/job && tar -xf $J -C /mnt/job && ls /mnt/job',
    'M=collections,hashlib,json,lzma,random,re,sqlite3,zlib',
    'chroot /mnt /usr/bin/python3 -c "import $M" && echo @@UL prepared-$((6 * 7))',
  ];
}

async function runOne(emulator: Emulator, cmd: string, args: string[], opts: Options, say: (s: string) => void): Promise<RunResult> {
  const res: RunResult = { emulator, bootSeconds: null, prepareSeconds: null, totalSeconds: null, parts: {}, loadBefore: loadavg()[0], loadAfter: 0, error: null };
  const s = new ConsoleSession(cmd, args);
  const begun = new Map<string, { wall: number; cpu: number | null }>();
  let partial = '';
  s.child.stdout!.on('data', (chunk: string) => {
    const now = performance.now();
    const cpu = cpuSecondsOf(s.child.pid);
    const lines = (partial + chunk).split('\n');
    partial = lines.pop() ?? '';
    for (const raw of lines) {
      const m = MARKER.exec(raw.replace(/\r/g, ''));
      if (!m) continue;
      const name = m[2] as Part;
      // With --stats, tsvisor prints its counters on SIGUSR1: at the job's start and end, so the job's share can be told from the boot's.
      if (name === 'job' && opts.tsvisorArgs.includes('--stats') && emulator === 'tsvisor') s.child.kill('SIGUSR1');
      const b = begun.get(name);
      if (m[1] === 'begin') begun.set(name, { wall: now, cpu });
      else if (b && m[3]) {
        res.parts[name] = { seconds: (now - b.wall) / 1000, cpuSeconds: cpu !== null && b.cpu !== null ? cpu - b.cpu : null, checksum: m[3] };
        if (name === 'job') res.totalSeconds = (now - s.started) / 1000;
        else say(`${emulator}: ${name} ${res.parts[name]!.seconds.toFixed(1)} s`);
      }
    }
  });
  try {
    res.bootSeconds = await s.waitForShell(opts.timeoutMs);
    say(`${emulator}: shell after ${res.bootSeconds.toFixed(1)} s; preparing`);
    const t0 = performance.now();
    let prep = '';
    for (const c of prepareCommands()) prep += await s.run(c, opts.timeoutMs);
    if (!/J=\/dev\/vd[ab]/.test(prep) || !/job\.py/.test(prep) || !prep.includes('@@UL prepared-42')) throw new Error(`preparing the chroot failed: ${prep.trim().split('\n').slice(-3).join(' | ')}`);
    res.prepareSeconds = (performance.now() - t0) / 1000;
    say(`${emulator}: prepared in ${res.prepareSeconds.toFixed(1)} s; running the job`);
    const out = await s.run(`chroot /mnt /bin/sh /job/job.sh ${opts.scale} /job; echo "@@UL status $?"`, opts.timeoutMs);
    const status = /@@UL status (\d+)/.exec(out)?.[1];
    if (status !== '0') throw new Error(`the job failed (status ${status ?? '?'}): ${out.trim().split('\n').slice(-4).join(' | ')}`);
    if (!res.parts.job) throw new Error('the job ended without its end marker');
    await s.poweroff();
  } catch (e) {
    res.error = e instanceof Error ? e.message : String(e);
    await s.kill();
  }
  res.loadAfter = loadavg()[0];
  return res;
}

/** The python part under qemu-riscv64 user mode on the host, from the same tree: sha256 of its output and seconds. */
function userModePython(tree: string, scale: number, dir: string): { checksum: string; seconds: number } {
  const out = join(dir, 'user');
  mkdirSync(out, { recursive: true });
  const t0 = performance.now();
  // -B: no byte code written into the cached tree.
  const r = spawnSync('qemu-riscv64', ['-L', tree, join(tree, 'usr/bin/python3'), '-B', join(JOB_DIR, 'job.py'), String(scale), out], {
    env: { PATH: '/usr/bin:/bin', LC_ALL: 'C', PYTHONHASHSEED: '0' }, maxBuffer: 64 << 20, encoding: 'buffer',
  });
  const seconds = (performance.now() - t0) / 1000;
  if (r.error) throw new Error(`cannot run qemu-riscv64: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`job.py under qemu-riscv64 failed (status ${r.status}): ${r.stderr.toString().trim().split('\n').slice(-2).join(' | ')}`);
  return { checksum: createHash('sha256').update(r.stdout).digest('hex'), seconds };
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const say = (t: string) => process.stderr.write(t + '\n');
  const disk = await ensureUserland({ log: say });
  const g = await ensureDefaultGuest({ progress: false, log: (t) => say(t.replace(/\n$/, '')) });
  const dir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-userland-'));
  try {
    const job = jobDisk(dir);
    const overlay = (name: string) => {
      const p = join(dir, `${name}.qcow2`);
      execFileSync('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'qcow2', '-b', disk.path, p]);
      return p;
    };
    let user: { checksum: string; seconds: number; load: number } | null = null;
    if (opts.userCheck) {
      say('qemu-riscv64 (user mode): running job.py');
      const load = loadavg()[0];
      user = { ...userModePython(disk.tree, opts.scale, dir), load };
      say(`qemu-riscv64: job.py in ${user.seconds.toFixed(1)} s`);
    }
    const runs: Partial<Record<Emulator, RunResult>> = {};
    if (opts.emulators.has('qemu')) {
      say('qemu: booting');
      runs.qemu = await runOne('qemu', 'qemu-system-riscv64', [
        '-M', 'virt', '-m', MEM, '-nographic', '-nic', 'none', '-kernel', g.kernel, '-initrd', g.initrd, '-append', APPEND,
        '-drive', `file=${overlay('qemu')},format=qcow2,if=none,id=hd0`, '-device', 'virtio-blk-device,drive=hd0',
        '-drive', `file=${job},format=raw,if=none,id=hd1,readonly=on`, '-device', 'virtio-blk-device,drive=hd1',
      ], opts, say);
    }
    if (opts.emulators.has('tsvisor')) {
      say('tsvisor: booting');
      runs.tsvisor = await runOne('tsvisor', process.execPath, [
        ...opts.nodeArgs, TSVISOR_BIN, 'run', '--kernel', g.kernel, '--initrd', g.initrd, '--append', APPEND, '--mem', MEM, '--net', 'none',
        '--disk', overlay('tsvisor'), '--disk', `${job},format=raw,readonly=on`, ...opts.tsvisorArgs,
      ], opts, say);
    }
    report(opts, runs, user, g.version);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function report(opts: Options, runs: Partial<Record<Emulator, RunResult>>, user: { checksum: string; seconds: number; load: number } | null, kernel: string): void {
  const q = runs.qemu;
  const t = runs.tsvisor;
  const rows = ([...PARTS, 'job'] as Part[]).map((part) => {
    const qp = q?.parts[part] ?? null;
    const tp = t?.parts[part] ?? null;
    return {
      part,
      qemuSeconds: qp?.seconds ?? null,
      tsvisorSeconds: tp?.seconds ?? null,
      // QEMU's time over tsvisor's: above 1, tsvisor was faster.
      ratio: qp && tp && tp.seconds > 0 ? qp.seconds / tp.seconds : null,
      qemuCpuSeconds: qp?.cpuSeconds ?? null,
      tsvisorCpuSeconds: tp?.cpuSeconds ?? null,
      cpuRatio: qp?.cpuSeconds && tp?.cpuSeconds ? qp.cpuSeconds / tp.cpuSeconds : null,
      checksumsMatch: qp && tp ? qp.checksum === tp.checksum : null,
      checksum: tp?.checksum ?? qp?.checksum ?? null,
    };
  });
  const guestPython = (t ?? q)?.parts.python?.checksum ?? null;
  const userMatch = user && guestPython ? user.checksum === guestPython : null;
  const mismatches: string[] = rows.filter((r) => r.checksumsMatch === false).map((r) => r.part);
  if (userMatch === false) mismatches.push('python vs qemu-riscv64');
  const errors = Object.values(runs).filter((r) => r.error).map((r) => `${r.emulator}: ${r.error}`);
  const host = { date: new Date().toISOString(), cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion(), kernel };
  if (opts.json) {
    process.stdout.write(JSON.stringify({ benchmark: 'userland', scale: opts.scale, mem: MEM, append: APPEND, host, runs, results: rows, userMode: user, userModeMatch: userMatch, mismatches, errors }, null, 2) + '\n');
  } else {
    const f = (x: number | null) => (x === null ? '-' : x.toFixed(1));
    const x = (v: number | null) => (v === null ? '-' : `${v.toFixed(2)}x`);
    const trows = [['part', 'QEMU (s)', 'tsvisor (s)', 'QEMU/tsvisor', 'QEMU CPU (s)', 'tsvisor CPU (s)', 'CPU ratio', 'output']];
    for (const r of rows) {
      trows.push([r.part === 'job' ? 'whole job' : r.part, f(r.qemuSeconds), f(r.tsvisorSeconds), x(r.ratio),
        f(r.qemuCpuSeconds), f(r.tsvisorCpuSeconds), x(r.cpuRatio),
        r.checksumsMatch === null ? '-' : r.checksumsMatch ? 'same' : 'DIFFERENT']);
    }
    const line = (r: RunResult | undefined, what: keyof RunResult) => (r && typeof r[what] === 'number' ? `${(r[what] as number).toFixed(1)} s` : '-');
    const out = [
      '',
      `Debian userland job in a chroot (scale ${opts.scale}; kernel ${kernel}, ${MEM} RAM), seconds on the host clock between the guest's markers`,
      'QEMU/tsvisor = QEMU time / tsvisor time (above 1x: tsvisor faster; the target is at least 0.67x, i.e. at most 1.5x QEMU\'s time);',
      'CPU: user + system time of the emulator\'s process (all threads) over the same span, less sensitive to other load on the host',
      '',
      table(trows, new Set([1, 2, 3, 4, 5, 6])),
      '',
      `boot to the shell:  QEMU ${line(q, 'bootSeconds')}, tsvisor ${line(t, 'bootSeconds')}`,
      `prepare (mounts, byte code): QEMU ${line(q, 'prepareSeconds')}, tsvisor ${line(t, 'prepareSeconds')}`,
      `boot + prepare + job: QEMU ${line(q, 'totalSeconds')}, tsvisor ${line(t, 'totalSeconds')}` +
        (q?.totalSeconds && t?.totalSeconds ? ` (${(q.totalSeconds / t.totalSeconds).toFixed(2)}x)` : ''),
      user ? `python part under qemu-riscv64 user mode: ${user.seconds.toFixed(1)} s, output ${userMatch === null ? 'not compared' : userMatch ? 'the same as in the guest' : 'DIFFERENT from the guest'}` : 'python part under qemu-riscv64 user mode: not run',
      `job checksum: ${rows.find((r) => r.part === 'job')?.checksum ?? '-'}`,
      `load average (1 min) before/after: QEMU ${q ? `${q.loadBefore.toFixed(1)}/${q.loadAfter.toFixed(1)}` : '-'}, tsvisor ${t ? `${t.loadBefore.toFixed(1)}/${t.loadAfter.toFixed(1)}` : '-'}`,
      `date: ${host.date}; ${host.cpu} (${host.cores} cores); node ${host.node}; QEMU ${host.qemu}`,
      '',
    ];
    for (const m of mismatches) out.push(`!!! OUTPUT MISMATCH: ${m}`);
    for (const e of errors) out.push(`error: ${e}`);
    process.stdout.write(out.join('\n') + '\n');
  }
  const incomplete = [...opts.emulators].some((e) => !runs[e]?.parts.job);
  process.exitCode = mismatches.length > 0 || errors.length > 0 || incomplete ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:userland: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
