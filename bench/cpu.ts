// Guest program benchmarks: the project's own C programs in bench/guest/,
// built for riscv64 (-O2 -static), packed into an extra initramfs layer and
// run inside the default guest under QEMU (qemu-system-riscv64 -M virt, TCG)
// and under tsvisor, one emulator after the other. Each program times its own
// work inside the guest and prints `BENCH name seconds checksum`; the
// checksums of the two emulators must agree.
//
// Two suites: `cpu` (CPU-bound programs) and `syspath` (lmbench-style loops of
// one kernel operation each: system calls, pipes, context switches, fork,
// exec, a shell spawning processes, page faults, mmap churn, signals) and a
// busybox userland job (sys_userland: seq, awk, sort, gzip, bzip2, sed, tar).
//
//   npm run bench:cpu -- [--only a,b] [--json] [--scale X] [--timeout SECONDS]
//   npm run bench:syspath -- [same options]      (= bench:cpu --suite syspath)

import { spawn, spawnSync } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseBenchArgs } from './lib/args.js';
import { ensureDefaultGuest, defaultCacheDir } from '../src/image/default-guest.js';
import { table, geomean } from './lib/format.js';
import { buildGuestPrograms, buildBenchInitrd, CFLAGS, REPO_ROOT, TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion, compilerVersion } from './lib/host.js';
import { killAll, track } from './lib/proc.js';

/** The programs of each suite, in the order they run. Each is bench/guest/<name>.c. */
const SUITES = {
  cpu: ['sha256', 'sort', 'matmul', 'interp', 'ptrchase', 'lz77'],
  syspath: ['sys_null', 'sys_pipe', 'sys_ctxsw', 'sys_fork', 'sys_exec', 'sys_shell', 'sys_pgfault', 'sys_mmap', 'sys_signal', 'sys_userland'],
} as const;
type Suite = keyof typeof SUITES;
type Program = string;
/** Programs that need more than the C library (a shell): left out of the user-mode check. */
const NO_USER_CHECK = new Set(['sys_shell', 'sys_userland']);

/** What the guest's /init prints just before it starts the shell. */
const READY_MARKER = 'tsvisor guest ready';
const APPEND = 'console=ttyS0';
const MEM = '512M';
const POWEROFF_TIMEOUT_MS = 30_000;

interface Options {
  suite: Suite;
  only: Program[];
  json: boolean;
  scale: number;
  /** Per program, once the shell has its command (ms). */
  timeoutMs: number;
  /** To the first shell prompt (ms). */
  bootTimeoutMs: number;
  userCheck: boolean;
  /** Which emulators to run (both by default). */
  emulators: Set<'qemu' | 'tsvisor'>;
  /** Extra arguments for `tsvisor run` (e.g. a translator switch). */
  tsvisorArgs: string[];
  /** Runs of each program per emulator (the median is reported). */
  runs: number;
}

interface BenchLine {
  seconds: number;
  checksum: string;
  /** Host wall time from typing the command to the BENCH line (includes the program's setup). */
  wallSeconds: number;
}

interface SessionResult {
  emulator: string;
  command: string;
  bootSeconds: number | null;
  /** Every run of each program, in order. */
  runs: Partial<Record<Program, BenchLine[]>>;
  /** Per program: the run with the median time. */
  results: Partial<Record<Program, BenchLine>>;
  errors: string[];
}

interface Row {
  name: Program;
  qemu: BenchLine | null;
  tsvisor: BenchLine | null;
  /** QEMU time / tsvisor time: tsvisor's throughput relative to QEMU's. */
  ratio: number | null;
  checksumsMatch: boolean | null;
}

// ------------------------------------------------------------------ options

function usage(): string {
  return (
    'usage: npm run bench:cpu -- [--suite cpu|syspath] [--only NAME,...] [--runs N] [--json] [--scale X] [--timeout SECONDS]\n' +
    '                            [--boot-timeout SECONDS] [--no-user-check] [--emulators qemu,tsvisor]\n' +
    '                            [--tsvisor-arg ARG]...\n' +
    `programs (--suite cpu): ${SUITES.cpu.join(', ')}\n` +
    `programs (--suite syspath): ${SUITES.syspath.join(', ')}\n` +
    'The scale (default 1, or $TSVISOR_BENCH_SCALE) multiplies each program\'s work.\n'
  );
}

function fail(msg: string): never {
  process.stderr.write(`bench:cpu: ${msg}\n${usage()}`);
  process.exit(2);
}

function parseOptions(argv: string[]): Options {
  const values = parseBenchArgs(
    argv,
    {
      suite: { type: 'string' },
      only: { type: 'string' },
      json: { type: 'boolean' },
      scale: { type: 'string' },
      timeout: { type: 'string' },
      'boot-timeout': { type: 'string' },
      'no-user-check': { type: 'boolean' },
      emulators: { type: 'string' },
      'tsvisor-arg': { type: 'string', multiple: true },
      runs: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    fail,
  );
  if (values.help) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const suite = (values.suite ?? 'cpu') as Suite;
  if (!(suite in SUITES)) fail(`unknown suite "${values.suite}" (cpu, syspath)`);
  const PROGRAMS: readonly Program[] = SUITES[suite];
  let only: Program[] = [...PROGRAMS];
  if (values.only !== undefined) {
    const names = values.only.split(',').map((s) => s.trim()).filter(Boolean);
    for (const n of names) if (!PROGRAMS.includes(n)) fail(`unknown program "${n}" in suite ${suite}`);
    only = PROGRAMS.filter((p) => names.includes(p));
    if (only.length === 0) fail('--only names no program');
  }
  const scale = Number(values.scale ?? process.env.TSVISOR_BENCH_SCALE ?? '1');
  if (!Number.isFinite(scale) || scale <= 0 || scale > 1000) fail('--scale needs a number in (0, 1000]');
  const timeout = Number(values.timeout ?? '300');
  const bootTimeout = Number(values['boot-timeout'] ?? '600');
  if (!Number.isFinite(timeout) || timeout <= 0) fail('--timeout needs a positive number of seconds');
  if (!Number.isFinite(bootTimeout) || bootTimeout <= 0) fail('--boot-timeout needs a positive number of seconds');
  const emulators = new Set<'qemu' | 'tsvisor'>();
  for (const e of (values.emulators ?? 'qemu,tsvisor').split(',').map((x) => x.trim()).filter(Boolean)) {
    if (e !== 'qemu' && e !== 'tsvisor') fail(`unknown emulator "${e}" (qemu, tsvisor)`);
    emulators.add(e);
  }
  if (emulators.size === 0) fail('--emulators names no emulator');
  const runs = Number(values.runs ?? '1');
  if (!Number.isInteger(runs) || runs < 1) fail('--runs needs a positive integer');
  return {
    suite,
    runs,
    tsvisorArgs: values['tsvisor-arg'] ?? [],
    emulators,
    only,
    json: values.json === true,
    scale,
    timeoutMs: timeout * 1000,
    bootTimeoutMs: bootTimeout * 1000,
    userCheck: values['no-user-check'] !== true,
  };
}

// -------------------------------------------------------------------- build

const BENCH_RE = /BENCH (\S+) (\d+(?:\.\d+)?) (\S+)\r?\n/;

/** Runs each program once under user-mode QEMU at a small scale: a quick sanity check. */
function userModeCheck(bins: Map<Program, string>, say: (s: string) => void): void {
  const probe = spawnSync('qemu-riscv64', ['--version'], { encoding: 'utf8' });
  if (probe.error) {
    say('qemu-riscv64 (user mode) not found: skipping the quick check');
    return;
  }
  for (const [name, bin] of bins) {
    if (NO_USER_CHECK.has(name)) continue;
    const r = spawnSync('qemu-riscv64', [bin, '0.02'], { encoding: 'utf8', timeout: 120_000 });
    const m = BENCH_RE.exec(r.stdout ?? '');
    if (r.status !== 0 || !m || m[1] !== name) {
      throw new Error(`user-mode check of ${name} failed (status ${r.status}): ${(r.stderr || r.stdout || '').trim()}`);
    }
  }
  say(`user-mode check passed: ${[...bins.keys()].filter((n) => !NO_USER_CHECK.has(n)).join(', ')}`);
}

// ------------------------------------------------------------------ session

/**
 * Boots one emulator, waits for the shell prompt, types each program and
 * collects its BENCH line, then powers the guest off.
 */
function runSession(
  emulator: string,
  command: string,
  args: string[],
  programs: readonly Program[],
  opts: Options,
  say: (s: string) => void,
): Promise<SessionResult> {
  return new Promise((resolve) => {
    const result: SessionResult = {
      emulator,
      command: [command === process.execPath ? 'node' : command, ...args.map((a) => (a === TSVISOR_BIN ? 'bin/tsvisor.js' : a))].join(' '),
      bootSeconds: null,
      runs: {},
      results: {},
      errors: [],
    };
    // Each round runs every program once; rounds repeat for --runs.
    const queue: Program[] = [];
    for (let r = 0; r < opts.runs; r++) queue.push(...programs);
    const t0 = performance.now();
    const child = track(spawn(command, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
    // Console output since the last thing we waited for.
    let text = '';
    let stderrTail = '';
    let phase: 'boot' | 'program' | 'prompt' | 'poweroff' | 'done' = 'boot';
    let index = -1;
    let typedAt = 0;
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const arg = opts.scale === 1 ? '' : ` ${opts.scale}`;

    const setTimer = (ms: number, why: string) => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        result.errors.push(why);
        say(`  ${emulator}: ${why}`);
        if (phase === 'poweroff' || phase === 'boot') {
          child.kill('SIGKILL');
        } else {
          poweroff();
        }
      }, ms);
    };

    const poweroff = () => {
      phase = 'poweroff';
      child.stdin?.write('poweroff -f\n');
      setTimer(POWEROFF_TIMEOUT_MS, 'did not power off in time; killed');
    };

    const next = () => {
      index++;
      if (index >= queue.length) {
        poweroff();
        return;
      }
      const name = queue[index];
      text = '';
      phase = 'program';
      typedAt = performance.now();
      say(`  ${emulator}: /bench/${name}${arg}`);
      child.stdin?.write(`/bench/${name}${arg}\n`);
      setTimer(opts.timeoutMs, `/bench/${name} gave no result within ${opts.timeoutMs / 1000} s`);
    };

    /** The shell prompt: the buffer ends in "# " after a line break. */
    // (busybox's line editor follows its prompt with a cursor-position query, ESC [ 6 n.)
    const atPrompt = () => /(^|\n)[^\n]*# $/.test(text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''));

    const onData = () => {
      if (phase === 'boot') {
        const at = text.indexOf(READY_MARKER);
        if (at >= 0 && text.indexOf('# ', at + READY_MARKER.length) >= 0) {
          result.bootSeconds = (performance.now() - t0) / 1000;
          say(`  ${emulator}: shell prompt after ${result.bootSeconds.toFixed(1)} s`);
          next();
        } else if (text.length > 1 << 20) {
          text = text.slice(-4096);
        }
      } else if (phase === 'program') {
        const name = queue[index];
        const m = BENCH_RE.exec(text);
        if (m) {
          const wallSeconds = (performance.now() - typedAt) / 1000;
          if (m[1] !== name) {
            result.errors.push(`/bench/${name} printed a result for "${m[1]}"`);
          } else {
            (result.runs[name] ??= []).push({ seconds: Number(m[2]), checksum: m[3], wallSeconds });
            say(`  ${emulator}: ${name} ${m[2]} s (checksum ${m[3]})`);
          }
          text = text.slice(m.index + m[0].length);
          phase = 'prompt';
          onData();
        } else if (atPrompt() && text.includes(`/bench/${name}`)) {
          // Back at the prompt without a result: the program failed.
          const out = text.replace(/\r/g, '').split('\n').slice(1, -1).join(' | ').slice(0, 400);
          result.errors.push(`/bench/${name} printed no BENCH line: ${out}`);
          say(`  ${emulator}: ${name} failed: ${out}`);
          next();
        }
      } else if (phase === 'prompt') {
        if (atPrompt()) next();
      }
    };

    child.stdout!.setEncoding('latin1');
    const echo = process.env.TSVISOR_BENCH_ECHO === '1';
    child.stdout!.on('data', (chunk: string) => {
      if (echo) process.stderr.write(chunk);
      text += chunk;
      onData();
    });
    child.stderr!.setEncoding('latin1');
    child.stderr!.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-400);
    });
    child.stdin!.on('error', () => {});
    child.on('error', (e) => {
      result.errors.push(`cannot start ${command}: ${e.message}`);
    });
    setTimer(opts.bootTimeoutMs, `no shell prompt within ${opts.bootTimeoutMs / 1000} s`);
    child.on('close', (code, signal) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      if (phase !== 'poweroff') {
        const why = stderrTail.trim().split('\n').pop();
        result.errors.push(`exited (${signal ?? `status ${code}`}) while waiting for ${phase === 'boot' ? 'the prompt' : queue[index]}${why ? `: ${why}` : ''}`);
      }
      phase = 'done';
      for (const [name, list] of Object.entries(result.runs) as [Program, BenchLine[]][]) {
        const sorted = [...list].sort((a, b) => a.seconds - b.seconds);
        result.results[name] = sorted[(sorted.length - 1) >> 1];
        const sums = new Set(list.map((b) => b.checksum));
        if (sums.size > 1) result.errors.push(`${name}: runs disagree on the checksum: ${[...sums].join(', ')}`);
      }
      resolve(result);
    });
  });
}

// --------------------------------------------------------------------- main

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const say = (s: string) => process.stderr.write(s + '\n');

  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const workDir = join(defaultCacheDir(), `bench-${opts.suite}`);
  const bins = buildGuestPrograms(opts.only, join(workDir, 'bin'), say);
  if (opts.userCheck) userModeCheck(bins, say);
  const initrd = join(workDir, 'initramfs-bench.cpio.gz');
  buildBenchInitrd(guest.initrd, bins, initrd);

  const skipped = (emulator: string): SessionResult => ({ emulator, command: '', bootSeconds: null, runs: {}, results: {}, errors: [] });
  const sessions: SessionResult[] = [];
  if (!opts.emulators.has('qemu')) sessions.push(skipped('qemu'));
  else {
  say(`QEMU (qemu-system-riscv64 -M virt, TCG), ${opts.only.length} programs, scale ${opts.scale}`);
  sessions.push(
    await runSession(
      'qemu',
      'qemu-system-riscv64',
      ['-M', 'virt', '-m', MEM, '-nographic', '-kernel', guest.kernel, '-initrd', initrd, '-append', APPEND],
      opts.only,
      opts,
      say,
    ),
  );
  }
  if (!opts.emulators.has('tsvisor')) sessions.push(skipped('tsvisor'));
  else {
  say(`tsvisor, ${opts.only.length} programs, scale ${opts.scale}`);
  sessions.push(
    await runSession(
      'tsvisor',
      process.execPath,
      [TSVISOR_BIN, 'run', '--kernel', guest.kernel, '--initrd', initrd, '--append', APPEND, '--mem', MEM, ...opts.tsvisorArgs],
      opts.only,
      opts,
      say,
    ),
  );
  }
  const [qemu, tsv] = sessions;

  const rows: Row[] = opts.only.map((name) => {
    const q = qemu.results[name] ?? null;
    const t = tsv.results[name] ?? null;
    return {
      name,
      qemu: q,
      tsvisor: t,
      ratio: q && t && t.seconds > 0 ? q.seconds / t.seconds : null,
      checksumsMatch: q && t ? q.checksum === t.checksum : null,
    };
  });
  const ratios = rows.flatMap((r) => (r.ratio === null ? [] : [r.ratio]));
  const gm = ratios.length === rows.length ? geomean(ratios) : null;
  const mismatches = rows.filter((r) => r.checksumsMatch === false);
  const missing = rows.filter((r) => r.qemu === null || r.tsvisor === null);
  // A guest that reports more time than the host saw pass has a broken clock.
  const clockWarnings: string[] = [];
  for (const s of sessions) {
    for (const [name, list] of Object.entries(s.runs) as [Program, BenchLine[]][]) for (const b of list) {
      if (b.seconds > b.wallSeconds * 1.05 + 0.5) {
        clockWarnings.push(`${s.emulator} ${name}: guest says ${b.seconds.toFixed(2)} s, host saw ${b.wallSeconds.toFixed(2)} s`);
      }
    }
  }

  const host = {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpuModel(),
    cores: cpus().length,
    node: process.version,
    qemu: qemuVersion(),
    compiler: compilerVersion(),
    kernel: guest.version,
  };

  if (opts.json) {
    process.stdout.write(
      JSON.stringify(
        { benchmark: opts.suite, runs: opts.runs, host, mem: MEM, append: APPEND, scale: opts.scale, cflags: CFLAGS, sessions, results: rows, geomeanRatio: gm, mismatches: mismatches.map((r) => r.name), clockWarnings },
        null,
        2,
      ) + '\n',
    );
  } else {
    const f = (b: BenchLine | null, e: 'qemu' | 'tsvisor') => (b ? b.seconds.toFixed(3) : opts.emulators.has(e) ? 'failed' : 'skipped');
    const tableRows = [['program', 'QEMU (s)', 'tsvisor (s)', 'throughput vs QEMU', 'checksum']];
    for (const r of rows) {
      tableRows.push([
        r.name,
        f(r.qemu, 'qemu'),
        f(r.tsvisor, 'tsvisor'),
        r.ratio === null ? '-' : `${r.ratio.toFixed(3)}x`,
        r.checksumsMatch === null ? '-' : r.checksumsMatch ? 'match' : 'MISMATCH',
      ]);
    }
    tableRows.push(['geomean', '', '', gm === null ? '-' : `${gm.toFixed(3)}x`, '']);
    const out = [
      '',
      `${opts.suite === 'cpu' ? 'CPU-bound guest programs' : 'System-path guest programs'}, seconds measured inside the guest${opts.runs > 1 ? `, median of ${opts.runs} runs` : ''} (kernel ${host.kernel}, -m ${MEM}, scale ${opts.scale})`,
      `throughput vs QEMU = QEMU time / tsvisor time (1x = as fast as QEMU${opts.suite === 'cpu' ? '; the target is at least 0.5x' : ''})`,
      '',
      table(tableRows, new Set([1, 2, 3])),
      '',
      `boot to prompt: QEMU ${qemu.bootSeconds === null ? '-' : `${qemu.bootSeconds.toFixed(1)} s`}, tsvisor ${tsv.bootSeconds === null ? '-' : `${tsv.bootSeconds.toFixed(1)} s`}`,
      `date:     ${host.date}`,
      `cpu:      ${host.cpu} (${host.cores} cores)`,
      `node:     ${host.node}`,
      `qemu:     ${host.qemu}`,
      `compiler: ${host.compiler} ${CFLAGS.join(' ')}`,
      '',
    ];
    for (const r of mismatches) {
      out.push(`!!! CHECKSUM MISMATCH in ${r.name}: QEMU ${r.qemu!.checksum}, tsvisor ${r.tsvisor!.checksum}`);
    }
    for (const s of sessions) for (const e of s.errors) out.push(`error (${s.emulator}): ${e}`);
    for (const w of clockWarnings) out.push(`warning: clock: ${w}`);
    process.stdout.write(out.join('\n') + (out[out.length - 1] === '' ? '' : '\n'));
  }
  if (mismatches.length > 0) {
    process.stderr.write(`\nbench:cpu: CHECKSUM MISMATCH: ${mismatches.map((r) => r.name).join(', ')} (tsvisor computed a different result than QEMU)\n`);
  }
  const sessionErrors = sessions.some((s) => s.errors.length > 0);
  const incomplete = missing.filter((r) => (opts.emulators.has('qemu') && !r.qemu) || (opts.emulators.has('tsvisor') && !r.tsvisor));
  process.exitCode = mismatches.length > 0 || incomplete.length > 0 || sessionErrors ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench:cpu: ${e instanceof Error ? e.message : String(e)}\n`);
  killAll();
  process.exit(1);
});
