// Boot-to-shell benchmark: the default guest (Debian riscv64 kernel + busybox
// initramfs) under tsvisor (realtime and deterministic, each cold, with the
// translation cache off, and warm, from a cache an untimed boot filled) and
// under QEMU, one after the other on the same host. Measures the wall time from
// process start to the first shell prompt, then powers the guest off.
//
//   npm run bench -- [--runs N] [--json] [--timeout SECONDS]

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseBenchArgs } from './lib/args.js';
import { ensureDefaultGuest } from '../src/image/default-guest.js';

/** What the guest's /init prints just before it starts the shell. */
const READY_MARKER = 'tsvisor guest ready';
/** The kernel command line, the same for every emulator. */
const APPEND = 'console=ttyS0';
const MEM = '512M';
/** How long a guest may take to power off once asked (ms). */
const POWEROFF_TIMEOUT_MS = 30_000;

// bench/boot.ts is compiled to dist/bench/boot.js; the repo root is two levels up.
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const TSVISOR_BIN = fileURLToPath(new URL('../../bin/tsvisor.js', import.meta.url));

interface Target {
  name: string;
  command: string;
  args: string[];
  env?: NodeJS.ProcessEnv;
}

interface RunResult {
  /** Seconds from spawn to the first prompt after the ready marker; null on failure. */
  bootSeconds: number | null;
  /** Seconds from typing `poweroff -f` to process exit; null if it was killed or never asked. */
  poweroffSeconds: number | null;
  exitCode: number | null;
  error?: string;
}

interface TargetSummary {
  name: string;
  command: string;
  runs: RunResult[];
  /** Median of the successful runs' boot times. */
  bootSeconds: number | null;
  /** bootSeconds divided by QEMU's. */
  ratioToQemu: number | null;
}

interface HostInfo {
  date: string;
  cpu: string;
  cores: number;
  node: string;
  qemu: string;
  kernel: string;
  initrd: string;
}

function usage(): string {
  return 'usage: npm run bench -- [--runs N] [--json] [--timeout SECONDS]\n';
}

function parseOptions(argv: string[]): { runs: number; json: boolean; timeoutMs: number } {
  const usageError = (msg: string): never => {
    process.stderr.write(`bench: ${msg}\n${usage()}`);
    process.exit(2);
  };
  const values = parseBenchArgs(
    argv,
    {
      runs: { type: 'string' },
      json: { type: 'boolean' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    usageError,
  );
  if (values.help) {
    process.stdout.write(usage());
    process.exit(0);
  }
  const runs = Number(values.runs ?? '1');
  const timeout = Number(values.timeout ?? '600');
  if (!Number.isInteger(runs) || runs < 1) {
    process.stderr.write(`bench: --runs needs a positive integer\n${usage()}`);
    process.exit(2);
  }
  if (!Number.isFinite(timeout) || timeout <= 0) {
    process.stderr.write(`bench: --timeout needs a positive number of seconds\n${usage()}`);
    process.exit(2);
  }
  return { runs, json: values.json === true, timeoutMs: timeout * 1000 };
}

function cpuModel(): string {
  try {
    const line = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => /^model name\s*:/.test(l));
    if (line) return line.split(':').slice(1).join(':').trim();
  } catch {
    // fall back to what node knows
  }
  return cpus()[0]?.model ?? 'unknown';
}

function qemuVersion(): string {
  try {
    const out = execFileSync('qemu-system-riscv64', ['--version'], { encoding: 'utf8' });
    return out.split('\n')[0].replace(/^QEMU emulator version\s*/, '').trim();
  } catch {
    return 'not installed';
  }
}

/** One boot: spawn, wait for the prompt, type poweroff, wait for exit (or kill). */
function bootOnce(t: Target, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(t.command, t.args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'], env: t.env ?? process.env });
    let text = '';
    let stderrTail = '';
    let bootSeconds: number | null = null;
    let poweroffAt: number | null = null;
    let error: string | undefined;
    let killed = false;
    let settled = false;

    const kill = (why: string) => {
      if (killed || child.exitCode !== null) return;
      killed = true;
      error ??= why;
      child.kill('SIGKILL');
    };
    const bootTimer = setTimeout(() => kill(`no shell prompt within ${timeoutMs / 1000} s`), timeoutMs);
    let offTimer: NodeJS.Timeout | undefined;

    const onPrompt = () => {
      bootSeconds = (performance.now() - t0) / 1000;
      clearTimeout(bootTimer);
      poweroffAt = performance.now();
      child.stdin.write('poweroff -f\n');
      offTimer = setTimeout(() => kill('did not power off in time'), POWEROFF_TIMEOUT_MS);
    };

    child.stdout.setEncoding('latin1');
    child.stdout.on('data', (chunk: string) => {
      if (bootSeconds !== null) return;
      text += chunk;
      const at = text.indexOf(READY_MARKER);
      if (at >= 0 && text.indexOf('# ', at + READY_MARKER.length) >= 0) {
        onPrompt();
      } else if (text.length > 1 << 20) {
        text = text.slice(-4096); // keep the tail only; the marker is short
      }
    });
    child.stderr.setEncoding('latin1');
    child.stderr.on('data', (chunk: string) => {
      stderrTail = (stderrTail + chunk).slice(-400);
    });
    child.stdin.on('error', () => {}); // the process may exit before reading its input
    child.on('error', (e) => {
      error ??= `cannot start ${t.command}: ${e.message}`;
    });
    child.on('close', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(bootTimer);
      if (offTimer) clearTimeout(offTimer);
      if (bootSeconds === null && !error) {
        const why = stderrTail.trim().split('\n').pop();
        error = `exited (status ${code}) before the prompt${why ? `: ${why}` : ''}`;
      }
      const poweroffSeconds = poweroffAt !== null && !killed ? (performance.now() - poweroffAt) / 1000 : null;
      resolve({ bootSeconds, poweroffSeconds, exitCode: code, error });
    });
  });
}

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function pad(s: string, n: number, right = false): string {
  return right ? s.padStart(n) : s.padEnd(n);
}

function table(rows: string[][], rightCols: Set<number>): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]) => r.map((c, i) => pad(c, widths[i], rightCols.has(i))).join('  ').trimEnd();
  return [line(rows[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  const opts = parseOptions(process.argv.slice(2));
  const say = (s: string) => {
    if (!opts.json) process.stderr.write(s + '\n');
  };

  const guest = await ensureDefaultGuest({ progress: false, log: (s) => process.stderr.write(s.endsWith('\n') ? s : s + '\n') });
  const host: HostInfo = {
    date: new Date().toISOString().slice(0, 10),
    cpu: cpuModel(),
    cores: cpus().length,
    node: process.version,
    qemu: qemuVersion(),
    kernel: guest.version,
    initrd: guest.initrd,
  };

  const guestArgs = ['--kernel', guest.kernel, '--initrd', guest.initrd, '--append', APPEND, '--mem', MEM];
  // The warm targets use a cache of their own, filled by one untimed boot each first.
  const cacheDir = mkdtempSync(join(tmpdir(), 'tsvisor-bench-jit-'));
  const env = { ...process.env, TSVISOR_JIT_CACHE_DIR: cacheDir, TSVISOR_JIT_CACHE: '' };
  const tsv = (name: string, extra: string[]): Target => ({ name, command: process.execPath, args: [TSVISOR_BIN, 'run', ...extra, ...guestArgs], env });
  const targets: Target[] = [
    { name: 'qemu-system-riscv64 (TCG)', command: 'qemu-system-riscv64',
      args: ['-M', 'virt', '-m', MEM, '-nographic', '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', APPEND] },
    tsv('tsvisor, cold (--jit-cache off)', ['--jit-cache', 'off']),
    tsv('tsvisor, warm translation cache', ['--jit-cache', 'on']),
    tsv('tsvisor --deterministic, cold', ['--deterministic', '--jit-cache', 'off']),
    tsv('tsvisor --deterministic, warm', ['--deterministic', '--jit-cache', 'on']),
  ];
  process.on('exit', () => rmSync(cacheDir, { recursive: true, force: true }));
  for (const t of targets.filter((x) => x.name.includes('warm'))) {
    say(`filling the translation cache: ${t.name} (untimed) ...`);
    const r = await bootOnce(t, opts.timeoutMs);
    if (r.bootSeconds === null) say(`  failed: ${r.error}`);
  }

  const results = new Map<string, RunResult[]>(targets.map((t) => [t.name, []]));
  const loads: number[] = [];
  for (let i = 0; i < opts.runs; i++) {
    loads.push(loadavg()[0]);
    // One run of every target before the next round, strictly one at a time.
    for (const t of targets) {
      say(`run ${i + 1}/${opts.runs}: ${t.name} ...`);
      const r = await bootOnce(t, opts.timeoutMs);
      results.get(t.name)!.push(r);
      say(r.bootSeconds !== null ? `  prompt after ${r.bootSeconds.toFixed(2)} s` : `  failed: ${r.error}`);
      if (r.bootSeconds !== null && r.error) say(`  note: ${r.error}`);
    }
  }

  const summaries: TargetSummary[] = targets.map((t) => {
    const runs = results.get(t.name)!;
    return {
      name: t.name,
      command: [t.command === process.execPath ? 'node' : t.command, ...t.args.map((a) => (a === TSVISOR_BIN ? 'bin/tsvisor.js' : a))].join(' '),
      runs,
      bootSeconds: median(runs.flatMap((r) => (r.bootSeconds === null ? [] : [r.bootSeconds]))),
      ratioToQemu: null,
    };
  });
  const qemu = summaries[0].bootSeconds;
  for (const s of summaries) s.ratioToQemu = qemu && s.bootSeconds !== null ? s.bootSeconds / qemu : null;

  if (opts.json) {
    process.stdout.write(JSON.stringify({ benchmark: 'boot-to-prompt', runs: opts.runs, host, loadAverages: loads, append: APPEND, mem: MEM, results: summaries }, null, 2) + '\n');
  } else {
    const rows = [['emulator', 'boot to prompt (s)', 'ratio to QEMU', 'ok runs']];
    for (const s of summaries) {
      const ok = s.runs.filter((r) => r.bootSeconds !== null).length;
      rows.push([
        s.name,
        s.bootSeconds === null ? 'failed' : s.bootSeconds.toFixed(2),
        s.ratioToQemu === null ? '-' : `${s.ratioToQemu.toFixed(2)}x`,
        `${ok}/${s.runs.length}`,
      ]);
    }
    const out = [
      '',
      `Boot to shell prompt, median of ${opts.runs} run${opts.runs === 1 ? '' : 's'} (kernel ${host.kernel}, -m ${MEM}, append "${APPEND}")`,
      '',
      table(rows, new Set([1, 2, 3])),
      '',
      `date:  ${host.date}`,
      `cpu:   ${host.cpu} (${host.cores} cores)`,
      `node:  ${host.node}`,
      `qemu:  ${host.qemu}`,
      `load:  1-minute load average at the start of each round: ${loads.map((l) => l.toFixed(2)).join(', ')}`,
      '',
    ];
    process.stdout.write(out.join('\n'));
  }
  const anyFailed = summaries.some((s) => s.bootSeconds === null);
  process.exitCode = anyFailed ? 1 : 0;
}

main().catch((e: unknown) => {
  process.stderr.write(`bench: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}\n`);
  process.exit(1);
});
