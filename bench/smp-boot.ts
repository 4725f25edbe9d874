// Boot time with several harts: the default guest booted to its shell prompt
// by tsvisor with 1 hart and with 2 (harts taking turns on one thread, and on
// hart threads) and by QEMU -smp 1 / -smp 2 (MTTCG), one VM at a time, the
// configurations interleaved round by round so each sees about the same host
// load. Reports every boot and the median per configuration, with ratios to
// 1 hart and to QEMU. With --stats each tsvisor VM prints, at its prompt, its
// --stats report (for hart threads, each thread's loop: slices, sleeps,
// translations and host time translating and in slices), to see where a
// second hart costs.
//
//   npm run bench:smp-boot -- [--rounds 3] [--harts 2] [--compare BIN[,BIN...]] [--stats] [--json]
//
// --compare adds the tsvisor configurations run from other builds' bin/tsvisor.js.

import { spawn } from 'node:child_process';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { setTimeout as delay } from 'node:timers/promises';
import { ensureDefaultGuest } from '../src/image/default-guest.js';
import { table } from './lib/format.js';
import { REPO_ROOT, TSVISOR_BIN } from './lib/guest-build.js';
import { cpuModel, qemuVersion } from './lib/host.js';
import { killAll, track } from './lib/proc.js';

const READY = 'tsvisor guest ready';
const APPEND = 'console=ttyS0';
const MEM = '512M';

interface Config {
  label: string;
  emulator: 'tsvisor' | 'qemu';
  harts: number;
  threads?: 'on' | 'off';
  bin?: string;
}

interface Boot {
  seconds: number;
  /** The --stats report at the prompt (tsvisor with --stats). */
  stats: string;
}

function command(c: Config, kernel: string, initrd: string, stats: boolean): { cmd: string; args: string[] } {
  if (c.emulator === 'qemu') {
    return {
      cmd: 'qemu-system-riscv64',
      args: ['-M', 'virt', '-smp', String(c.harts), '-accel', 'tcg,thread=multi', '-m', MEM, '-nographic', '-kernel', kernel, '-initrd', initrd, '-append', APPEND],
    };
  }
  const args = [c.bin ?? TSVISOR_BIN, 'run', '--smp', String(c.harts), '--kernel', kernel, '--initrd', initrd, '--append', APPEND, '--mem', MEM, '--net', 'none'];
  if (c.threads) args.push('--hart-threads', c.threads);
  if (stats) args.push('--stats');
  return { cmd: process.execPath, args };
}

/** Boot one VM to its prompt, take its stats if asked, and kill it. */
async function bootOnce(c: Config, kernel: string, initrd: string, stats: boolean): Promise<Boot> {
  const { cmd, args } = command(c, kernel, initrd, stats && c.emulator === 'tsvisor');
  const child = track(spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
  const t0 = performance.now();
  let stderr = '';
  child.stderr!.setEncoding('latin1');
  child.stderr!.on('data', (s: string) => (stderr += s));
  child.stdin!.on('error', () => {});
  const seconds = await new Promise<number>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${c.label}: no shell prompt in 10 minutes`)), 600_000);
    child.on('close', (code) => reject(new Error(`${c.label}: exited (${code}) before its prompt: ${stderr.slice(-300)}`)));
    child.stdout!.setEncoding('latin1');
    child.stdout!.on('data', (chunk: string) => {
      text += chunk;
      const at = text.indexOf(READY);
      if (at >= 0 && text.indexOf('# ', at) >= 0) {
        clearTimeout(timer);
        resolve((performance.now() - t0) / 1000);
      }
    });
  });
  let report = '';
  if (stats && c.emulator === 'tsvisor') {
    const before = stderr.length;
    child.kill('SIGUSR1');
    for (let i = 0; i < 100 && !/host loop[^\n]*\n/.test(stderr.slice(before)); i++) await delay(50);
    report = stderr.slice(before);
  }
  child.removeAllListeners('close');
  child.kill('SIGKILL');
  await new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('close', r)));
  return { seconds, stats: report };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string' }, harts: { type: 'string' }, compare: { type: 'string' }, stats: { type: 'boolean' }, json: { type: 'boolean' } },
  });
  const rounds = Number(values.rounds ?? '3');
  const n = Number(values.harts ?? '2');
  if (!Number.isInteger(rounds) || rounds < 1) throw new Error('--rounds needs a positive integer');
  if (!Number.isInteger(n) || n < 2 || n > 8) throw new Error('--harts needs 2..8');
  const say = (s: string) => process.stderr.write(s + '\n');
  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const tsvisor = (bin: string | undefined, tag: string): Config[] => [
    { label: `tsvisor${tag} 1 hart`, emulator: 'tsvisor', harts: 1, bin },
    { label: `tsvisor${tag} ${n} harts, one thread`, emulator: 'tsvisor', harts: n, threads: 'off', bin },
    { label: `tsvisor${tag} ${n} harts, hart threads`, emulator: 'tsvisor', harts: n, threads: 'on', bin },
  ];
  const compare = (values.compare ?? '').split(',').filter(Boolean);
  const configs: Config[] = [
    ...tsvisor(undefined, ''),
    ...compare.flatMap((bin, i) => tsvisor(bin, ` (compared build${compare.length > 1 ? ` ${i + 1}` : ''})`)),
    { label: 'QEMU -smp 1', emulator: 'qemu', harts: 1 },
    { label: `QEMU -smp ${n} (MTTCG)`, emulator: 'qemu', harts: n },
  ];
  const boots = new Map<Config, Boot[]>(configs.map((c) => [c, []]));
  const load0 = loadavg()[0];
  for (let r = 0; r < rounds; r++) {
    // Rotate the order each round, so no configuration always follows the same one.
    const order = configs.map((_, i) => configs[(i + r) % configs.length]);
    for (const c of order) {
      const b = await bootOnce(c, guest.kernel, guest.initrd, values.stats === true);
      say(`round ${r + 1}: ${c.label}: prompt after ${b.seconds.toFixed(1)} s`);
      if (b.stats) say(b.stats.trimEnd());
      boots.get(c)!.push(b);
    }
  }
  const load1 = loadavg()[0];
  const med = new Map(configs.map((c) => [c, median(boots.get(c)!.map((b) => b.seconds))]));
  const host = { date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion(), loadAverage: [load0, load1] };
  if (values.json) {
    process.stdout.write(JSON.stringify({ host, rounds, results: configs.map((c) => ({ label: c.label, harts: c.harts, boots: boots.get(c)!.map((b) => b.seconds), median: med.get(c) })) }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`Boot to the shell prompt, ${host.date}, ${host.cpu} (${host.cores} cores), Node ${host.node}, QEMU ${host.qemu}\n`);
  process.stdout.write(`${rounds} rounds, configurations interleaved; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}.\n\n`);
  const one = (c: Config) => configs.find((x) => x.emulator === c.emulator && x.bin === c.bin && x.harts === 1)!;
  const qemuSame = (c: Config) => configs.find((x) => x.emulator === 'qemu' && x.harts === c.harts)!;
  const rows = configs.map((c) => [
    c.label,
    boots.get(c)!.map((b) => b.seconds.toFixed(1)).join(' '),
    med.get(c)!.toFixed(1),
    (med.get(c)! / med.get(one(c))!).toFixed(2),
    c.emulator === 'qemu' ? '-' : (med.get(c)! / med.get(qemuSame(c))!).toFixed(2),
  ]);
  process.stdout.write(table([['configuration', 'boots (s)', 'median (s)', 'vs 1 hart', 'vs QEMU'], ...rows], new Set([2, 3, 4])) + '\n');
}

main().catch((e) => {
  killAll();
  process.stderr.write(`bench:smp-boot: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
