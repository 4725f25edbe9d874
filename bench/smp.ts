// SMP benchmark: the project's CPU benchmark programs (bench/guest/*.c) run as
// N parallel copies inside the default guest, in a 1-hart and a 2-hart VM,
// under tsvisor (--smp) and QEMU (-smp N -accel tcg,thread=multi), in the same
// run. Reports per configuration the boot time to the shell prompt and, per
// program, the throughput (copies finished per host second, from typing the
// command to the last copy's result), QEMU/tsvisor ratios and the 1 -> 2 hart
// speedup.
//
//   npm run bench:smp -- [--only sha256,matmul] [--scale X] [--hart-threads on|off] [--json]
//
// --hart-threads (default on): the 2-hart tsvisor VM runs each hart on a host
// thread of its own (phase 2); off: the harts take turns on one thread.

import { spawn } from 'node:child_process';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { ensureDefaultGuest, defaultCacheDir } from '../src/image/default-guest.js';
import { table } from './lib/format.js';
import { buildGuestPrograms, buildBenchInitrd, REPO_ROOT, TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll, track } from './lib/proc.js';
import { readFileSync } from 'node:fs';
import { CpuCore } from '../src/machine/cpu-core.js';
import { QUANTUM } from '../src/machine/harts.js';
import { defaultWasmPath } from '../src/vm/vm-handle.js';

const PROGRAMS = ['sha256', 'matmul', 'interp'] as const;
const READY = 'tsvisor guest ready';
const APPEND = 'console=ttyS0';
/**
 * Guest RAM for every configuration: sha256 holds a 64 MiB x scale buffer per
 * copy, and two copies at scale 3 (2 x 192 MiB) do not fit the 392 MiB a
 * 512 MiB guest has free at its prompt: the guest's OOM killer took one copy
 * and the bench waited for its result for ever (it looked like a hang of the
 * 2-hart VM). So: 256 MiB for the system plus the largest copies' buffers.
 */
function guestMemMiB(scale: number): number {
  const harts = Math.max(...CONFIGS.map((c) => c.harts));
  return Math.max(512, Math.ceil((256 + harts * 64 * scale) / 64) * 64);
}
let MEM = '512M';
/** What the guest prints when its OOM killer ends a copy (which then never reports). */
const OOM_RE = /Out of memory: Killed process \d+ \((\S+)\)/;
const BENCH_RE = /BENCH (\S+) (\d+(?:\.\d+)?) (\S+)\r?\n/g;

interface Config {
  label: string;
  emulator: 'tsvisor' | 'qemu';
  harts: number;
}
const CONFIGS: Config[] = [
  { label: 'tsvisor 1 hart', emulator: 'tsvisor', harts: 1 },
  { label: 'tsvisor 2 harts', emulator: 'tsvisor', harts: 2 },
  { label: 'QEMU -smp 1', emulator: 'qemu', harts: 1 },
  { label: 'QEMU -smp 2 (MTTCG)', emulator: 'qemu', harts: 2 },
];

interface Result {
  config: Config;
  bootSeconds: number | null;
  /** Per program: copies per host second (N copies / wall time), and the checksums seen. */
  throughput: Record<string, { perSecond: number; wallSeconds: number; checksums: string[] } | null>;
  errors: string[];
}

let hartThreads = 'on';

function command(c: Config, kernel: string, initrd: string): { cmd: string; args: string[] } {
  if (c.emulator === 'qemu') {
    return {
      cmd: 'qemu-system-riscv64',
      args: ['-M', 'virt', '-smp', String(c.harts), '-accel', 'tcg,thread=multi', '-m', MEM, '-nographic',
        '-kernel', kernel, '-initrd', initrd, '-append', APPEND],
    };
  }
  return {
    cmd: process.execPath,
    args: [TSVISOR_BIN, 'run', '--smp', String(c.harts), '--kernel', kernel, '--initrd', initrd, '--append', APPEND,
      '--mem', MEM, '--net', 'none', ...(c.harts > 1 ? ['--hart-threads', hartThreads] : [])],
  };
}

/** Boot one configuration, run each program as `harts` parallel copies, power off. */
function session(c: Config, kernel: string, initrd: string, programs: readonly string[], scale: number, say: (s: string) => void): Promise<Result> {
  const { cmd, args } = command(c, kernel, initrd);
  const result: Result = { config: c, bootSeconds: null, throughput: {}, errors: [] };
  return new Promise((resolve) => {
    const child = track(spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
    const t0 = performance.now();
    let text = '';
    let index = -1;
    let typedAt = 0;
    let booted = false;
    /** The current program's copies are done; waiting for the shell prompt. */
    let waiting = false;
    let timer: NodeJS.Timeout | undefined;
    const arm = (ms: number, why: string) => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        result.errors.push(why);
        child.kill('SIGKILL');
      }, ms);
    };
    const next = () => {
      index++;
      text = '';
      if (index >= programs.length) {
        child.stdin!.write('poweroff -f\n');
        arm(60_000, 'no poweroff');
        return;
      }
      const p = programs[index];
      const copies = Array.from({ length: c.harts }, () => `/bench/${p} ${scale} &`).join(' ');
      typedAt = performance.now();
      child.stdin!.write(`${copies} wait\n`);
      arm(900_000, `${p}: no result`);
    };
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      if (!booted) {
        const at = text.indexOf(READY);
        if (at >= 0 && text.indexOf('# ', at) >= 0) {
          booted = true;
          result.bootSeconds = (performance.now() - t0) / 1000;
          say(`  ${c.label}: shell after ${result.bootSeconds.toFixed(1)} s`);
          next();
        }
        return;
      }
      if (index >= programs.length || waiting) return;
      const oom = OOM_RE.exec(text);
      if (oom) {
        result.errors.push(`${programs[index]}: the guest's OOM killer ended a copy (${oom[1]}); guest RAM ${MEM}`);
        clearTimeout(timer);
        child.kill('SIGKILL');
        return;
      }
      const lines = [...text.matchAll(BENCH_RE)];
      if (lines.length >= c.harts) {
        const wall = (performance.now() - typedAt) / 1000;
        const p = programs[index];
        result.throughput[p] = { perSecond: c.harts / wall, wallSeconds: wall, checksums: lines.map((m) => m[3]) };
        say(`  ${c.label}: ${c.harts} x ${p} in ${wall.toFixed(2)} s`);
        // Wait for the prompt (all copies reaped) before the next program.
        waiting = true;
        const waitPrompt = setInterval(() => {
          if (/# $/.test(text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, ''))) {
            clearInterval(waitPrompt);
            waiting = false;
            next();
          }
        }, 50);
      }
    });
    child.stderr!.on('data', () => {});
    child.stdin!.on('error', () => {});
    arm(900_000, 'no shell prompt');
    child.on('close', () => {
      clearTimeout(timer);
      resolve(result);
    });
  });
}

/**
 * What one hart switch costs by itself (save, load, TLB flush; not the TLB
 * misses that follow): switches back and forth between two harts of a core.
 */
function switchMicros(): number {
  const core = new CpuCore(new Uint8Array(readFileSync(defaultWasmPath())), 64 << 20, { mmioRead: () => 0, mmioWrite: () => {}, ecall: () => {} });
  core.reset(0x8000_0000n);
  core.exports.hartSetCount(2);
  core.exports.hartSaveTo(1);
  let best = Infinity;
  for (let round = 0; round < 5; round++) {
    const n = 10_000;
    const t = performance.now();
    for (let i = 0; i < n; i++) {
      core.exports.hartSwitch(1);
      core.exports.hartSwitch(0);
    }
    best = Math.min(best, ((performance.now() - t) * 1000) / (2 * n));
  }
  return best;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { only: { type: 'string' }, scale: { type: 'string' }, json: { type: 'boolean' }, 'hart-threads': { type: 'string' } },
  });
  hartThreads = values['hart-threads'] ?? 'on';
  if (hartThreads !== 'on' && hartThreads !== 'off') throw new Error('--hart-threads needs on or off');
  const programs = values.only ? values.only.split(',').filter((p) => (PROGRAMS as readonly string[]).includes(p)) : [...PROGRAMS];
  if (programs.length === 0) throw new Error(`--only: none of ${PROGRAMS.join(', ')}`);
  const scale = Number(values.scale ?? '1');
  if (!(scale > 0 && scale <= 100)) throw new Error('--scale needs a number in (0, 100]');
  MEM = `${guestMemMiB(scale)}M`;
  const say = (s: string) => process.stderr.write(s + '\n');
  const switchUs = switchMicros();
  say(`hart switch: ${switchUs.toFixed(1)} us (best of 5 rounds)`);
  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const workDir = join(defaultCacheDir(), 'bench-smp');
  const bins = buildGuestPrograms(programs, join(workDir, 'bin'), say);
  const initrd = join(workDir, 'initramfs-smp.cpio.gz');
  buildBenchInitrd(guest.initrd, bins, initrd);

  const results: Result[] = [];
  for (const c of CONFIGS) {
    say(`${c.label}`);
    results.push(await session(c, guest.kernel, initrd, programs, scale, say));
  }
  const by = (label: string) => results.find((r) => r.config.label === label)!;
  const rows = programs.map((p) => {
    const t1 = by('tsvisor 1 hart').throughput[p];
    const t2 = by('tsvisor 2 harts').throughput[p];
    const q1 = by('QEMU -smp 1').throughput[p];
    const q2 = by('QEMU -smp 2 (MTTCG)').throughput[p];
    const f = (x: number | undefined) => (x === undefined ? '-' : x.toFixed(3));
    const r = (a?: number, b?: number) => (a && b ? (a / b).toFixed(2) : '-');
    return [p, f(t1?.perSecond), f(t2?.perSecond), r(t2?.perSecond, t1?.perSecond), f(q1?.perSecond), f(q2?.perSecond),
      r(q2?.perSecond, q1?.perSecond), r(t1?.perSecond, q1?.perSecond), r(t2?.perSecond, q2?.perSecond)];
  });
  const host = { date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion() };
  if (values.json) {
    process.stdout.write(JSON.stringify({ host, scale, switchUs, hartThreads, results }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`SMP benchmark, ${host.date}, ${host.cpu} (${host.cores} cores), Node ${host.node}, ${host.qemu}, scale ${scale}, guest RAM ${MEM}\n`);
  process.stdout.write(`Hart switch (save, load, TLB flush): ${switchUs.toFixed(1)} us; quantum ${QUANTUM} instructions; 2-hart VM with --hart-threads ${hartThreads}.\n`);
  process.stdout.write('Throughput: copies finished per host second (N copies in an N-hart VM).\n\n');
  const head = ['program', 'tsvisor 1', 'tsvisor 2', 'speedup', 'QEMU 1', 'QEMU 2', 'speedup', 'tsvisor/QEMU 1', 'tsvisor/QEMU 2'];
  process.stdout.write(table([head, ...rows], new Set([1, 2, 3, 4, 5, 6, 7, 8])) + '\n\n');
  const boots = results.map((r) => [r.config.label, r.bootSeconds === null ? '-' : r.bootSeconds.toFixed(1), r.errors.join('; ') || '-']);
  process.stdout.write(table([['configuration', 'boot to shell (s)', 'errors'], ...boots], new Set([1])) + '\n');
}

main().catch((e) => {
  killAll();
  process.stderr.write(`bench:smp: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
