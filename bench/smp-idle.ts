// Idle cost of SMP guests: the default guest at its shell prompt, doing
// nothing, under tsvisor (--smp N) and QEMU (-smp N, MTTCG) in the same run.
// Every configuration is booted in turn and left at its prompt; once all are
// up (and settled), the host CPU time each process uses (all its threads,
// from /proc/PID/stat) is measured over the same window, so every figure sees
// the same host load. An extra tsvisor VM with --stats reports, over the same
// window, what the guest asked for (timer interrupts, IPIs per hart) and how
// often the worker woke.
//
//   npm run bench:smp-idle -- [--harts 1,4] [--seconds 60] [--settle 30] [--json]
//                             [--compare BIN[,BIN...]] [--no-qemu] [--hart-threads on|off]
//
// --hart-threads (default on, as `tsvisor run`): multi-hart VMs run each hart
// on a host thread of its own.
//
// --compare BIN[,BIN...] adds the same tsvisor configurations run from other builds'
// bin/tsvisor.js (before/after figures in one run; it must know --hart-threads).
//
// With hart threads, the --stats VM's report also gives each hart thread's
// loop (slices, sleeps = wakeups, translations, host time in slices) and the
// CPU time of each thread of the process (by thread id, in creation order:
// main thread, V8's platform threads, ..., the VM's worker = the device
// thread, then hart 0, 1, ...).

import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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
/** Clock ticks per second of /proc/PID/stat times (USER_HZ; 100 on Linux). */
const CLK_TCK = 100;

interface Config {
  label: string;
  emulator: 'tsvisor' | 'qemu';
  harts: number;
  stats?: boolean;
  /** Another build's bin/tsvisor.js. */
  bin?: string;
}

interface Running {
  config: Config;
  child: ChildProcess;
  bootSeconds: number;
  stderr: string;
}

let hartThreads = 'on';

function command(c: Config, kernel: string, initrd: string): { cmd: string; args: string[] } {
  if (c.emulator === 'qemu') {
    return {
      cmd: 'qemu-system-riscv64',
      args: ['-M', 'virt', '-smp', String(c.harts), '-accel', 'tcg,thread=multi', '-m', MEM, '-nographic', '-kernel', kernel, '-initrd', initrd, '-append', APPEND],
    };
  }
  const args = [c.bin ?? TSVISOR_BIN, 'run', '--smp', String(c.harts), '--kernel', kernel, '--initrd', initrd, '--append', APPEND, '--mem', MEM, '--net', 'none'];
  if (c.stats) args.push('--stats');
  if (c.harts > 1) args.push('--hart-threads', hartThreads);
  return { cmd: process.execPath, args };
}

/** Boot one configuration to its shell prompt; it stays running. */
function boot(c: Config, kernel: string, initrd: string): Promise<Running> {
  const { cmd, args } = command(c, kernel, initrd);
  const child = track(spawn(cmd, args, { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
  const t0 = performance.now();
  const run: Running = { config: c, child, bootSeconds: 0, stderr: '' };
  child.stderr!.setEncoding('latin1');
  child.stderr!.on('data', (s: string) => (run.stderr += s));
  child.stdin!.on('error', () => {});
  return new Promise((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error(`${c.label}: no shell prompt in 15 minutes`)), 900_000);
    child.on('close', (code) => reject(new Error(`${c.label}: exited (${code}) before its prompt: ${run.stderr.slice(-300)}`)));
    child.stdout!.setEncoding('latin1');
    const onData = (chunk: string) => {
      text += chunk;
      const at = text.indexOf(READY);
      if (at >= 0 && text.indexOf('# ', at) >= 0) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        child.stdout!.resume(); // keep draining
        run.bootSeconds = (performance.now() - t0) / 1000;
        resolve(run);
      }
    };
    child.stdout!.on('data', onData);
  });
}

/** User + system CPU time of a process and all its threads, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK; // utime, stime (fields 14 and 15)
}

/**
 * CPU seconds per thread of a process, keyed `name#tid` (every thread of Node
 * is called `node`; thread ids grow in creation order, so the last ones are the
 * VM's worker and its hart threads).
 */
function threadSeconds(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`).sort((a, b) => Number(a) - Number(b))) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'latin1');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      out.set(`${name}#${tid}`, (Number(fields[11]) + Number(fields[12])) / CLK_TCK);
    } catch {
      // the thread ended meanwhile
    }
  }
  return out;
}

interface Figures {
  interrupts: Record<string, number>;
  harts: { hart: number; instructions: number; interrupts: number; wfis: number; ipis: number; switchedIn: number }[];
  slices: number;
  sleeps: number;
  switches: number;
  instructions: number;
  translations: number;
  modules: number;
  busyMs: number;
  /** Hart threads' loops (with --hart-threads on). */
  loops: { hart: number; slices: number; sleeps: number; emptyWakes: number; translations: number; modules: number; jitMs: number; busyMs: number }[];
}

/** The counters of the last --stats report in `text`. */
function parseStats(text: string): Figures | null {
  const at = text.lastIndexOf('tsvisor stats');
  if (at < 0) return null;
  const t = text.slice(at);
  const num = (s: string) => Number(s.replace(/,/g, ''));
  const f: Figures = { interrupts: {}, harts: [], slices: 0, sleeps: 0, switches: 0, instructions: 0, translations: 0, modules: 0, busyMs: 0, loops: [] };
  // The hart threads' loop lines come before the report (HartThreads.describe).
  const loopText = text.slice(text.lastIndexOf('hart threads', at), at);
  for (const m of loopText.matchAll(/hart (\d+) loop\s+([\d,]+) slices, ([\d,]+) sleeps \(([\d,]+) woken for nothing\), ([\d,]+) translations in ([\d,]+) modules, ([\d,]+) ms translating, ([\d,]+) ms in slices/g)) {
    f.loops.push({ hart: Number(m[1]), slices: num(m[2]), sleeps: num(m[3]), emptyWakes: num(m[4]), translations: num(m[5]), modules: num(m[6]), jitMs: num(m[7]), busyMs: num(m[8]) });
  }
  const tr = /translations\s+([\d,]+) made in ([\d,]+) modules/.exec(t);
  if (tr) [f.translations, f.modules] = [num(tr[1]), num(tr[2])];
  f.instructions = num(/guest instructions\s+([\d,]+)/.exec(t)?.[1] ?? '0');
  for (const m of t.matchAll(/(supervisor \w+|machine \w+) interrupt: ([\d,]+)/g)) f.interrupts[m[1]] = num(m[2]);
  const loop = /host loop\s+([\d,]+) slices, ([\d,]+) idle sleeps, ([\d,]+) ms in slices/.exec(t);
  if (loop) [f.slices, f.sleeps, f.busyMs] = [num(loop[1]), num(loop[2]), num(loop[3])];
  f.switches = num(/taking turns on one thread: ([\d,]+) switches/.exec(t)?.[1] ?? '0');
  for (const m of t.matchAll(/hart (\d+)\s+[^:]+: ([\d,]+) instructions, ([\d,]+) interrupts, ([\d,]+) WFI waits, ([\d,]+) IPIs received, switched in ([\d,]+) times/g)) {
    f.harts.push({ hart: Number(m[1]), instructions: num(m[2]), interrupts: num(m[3]), wfis: num(m[4]), ipis: num(m[5]), switchedIn: num(m[6]) });
  }
  return f;
}

/** Ask a --stats VM for a report and wait for it. */
async function statsNow(r: Running): Promise<Figures | null> {
  const before = r.stderr.length;
  r.child.kill('SIGUSR1');
  for (let i = 0; i < 100 && !/host loop[^\n]*\n/.test(r.stderr.slice(before)); i++) await delay(50);
  return parseStats(r.stderr.slice(before));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { harts: { type: 'string' }, seconds: { type: 'string' }, settle: { type: 'string' }, json: { type: 'boolean' }, 'no-qemu': { type: 'boolean' }, compare: { type: 'string' }, 'hart-threads': { type: 'string' } },
  });
  hartThreads = values['hart-threads'] ?? 'on';
  if (hartThreads !== 'on' && hartThreads !== 'off') throw new Error('--hart-threads needs on or off');
  const harts = (values.harts ?? '1,4').split(',').map(Number);
  if (harts.some((n) => !Number.isInteger(n) || n < 1 || n > 8)) throw new Error('--harts: a list of counts 1..8');
  const seconds = Number(values.seconds ?? '60');
  const settle = Number(values.settle ?? '30');
  if (!(seconds >= 5) || !(settle >= 0)) throw new Error('--seconds must be at least 5 and --settle at least 0');
  const say = (s: string) => process.stderr.write(s + '\n');
  const guest = await ensureDefaultGuest({ progress: false, log: (s) => say(s.replace(/\n$/, '')) });
  const configs: Config[] = [
    ...harts.map((n): Config => ({ label: `tsvisor ${n} hart${n > 1 ? 's' : ''}`, emulator: 'tsvisor', harts: n })),
    ...(values.compare ?? '').split(',').filter(Boolean).flatMap((bin, i, all) =>
      harts.map((n): Config => ({ label: `compared build${all.length > 1 ? ` ${i + 1}` : ''}, ${n} hart${n > 1 ? 's' : ''}`, emulator: 'tsvisor', harts: n, bin }))),
    ...(values['no-qemu'] ? [] : harts.map((n): Config => ({ label: `QEMU -smp ${n}`, emulator: 'qemu', harts: n }))),
  ];
  const most = Math.max(...harts);
  configs.push({ label: `tsvisor ${most} harts --stats`, emulator: 'tsvisor', harts: most, stats: true });
  const running: Running[] = [];
  for (const c of configs) {
    say(`${c.label}: booting`);
    const r = await boot(c, guest.kernel, guest.initrd);
    say(`${c.label}: prompt after ${r.bootSeconds.toFixed(1)} s`);
    running.push(r);
  }
  say(`all at their prompts; settling ${settle} s, then measuring ${seconds} s`);
  await delay(settle * 1000);
  const statsVm = running.find((r) => r.config.stats)!;
  const load0 = loadavg()[0];
  const first = running.map((r) => cpuSeconds(r.child.pid!));
  const threads0 = threadSeconds(statsVm.child.pid!);
  const statsBefore = await statsNow(statsVm);
  const t0 = performance.now();
  await delay(seconds * 1000);
  const last = running.map((r) => cpuSeconds(r.child.pid!));
  const window = (performance.now() - t0) / 1000;
  const threads1 = threadSeconds(statsVm.child.pid!);
  const statsAfter = await statsNow(statsVm);
  const load1 = loadavg()[0];
  for (const r of running) r.child.kill('SIGKILL');

  const results = running.map((r, i) => ({ label: r.config.label, harts: r.config.harts, bootSeconds: r.bootSeconds, corePercent: (100 * (last[i] - first[i])) / window }));
  let rates: Record<string, unknown> | null = null;
  if (statsBefore && statsAfter) {
    const per = (a: number, b: number) => (b - a) / window;
    rates = {
      instructionsPerSecond: per(statsBefore.instructions, statsAfter.instructions),
      slicesPerSecond: per(statsBefore.slices, statsAfter.slices),
      sleepsPerSecond: per(statsBefore.sleeps, statsAfter.sleeps),
      switchesPerSecond: per(statsBefore.switches, statsAfter.switches),
      translationsPerSecond: per(statsBefore.translations, statsAfter.translations),
      modulesPerSecond: per(statsBefore.modules, statsAfter.modules),
      /** Percent of a core the worker spent in slices (guest and devices), the rest of its CPU time is the loop and sleeps. */
      slicePercent: per(statsBefore.busyMs, statsAfter.busyMs) / 10,
      threadPercent: Object.fromEntries([...threads1].map(([k, v]) => [k, (100 * (v - (threads0.get(k) ?? 0))) / window]).filter(([, v]) => (v as number) > 0)),
      interruptsPerSecond: Object.fromEntries(Object.keys(statsAfter.interrupts).map((k) => [k, per(statsBefore.interrupts[k] ?? 0, statsAfter.interrupts[k])])),
      loops: statsAfter.loops.map((l) => {
        const b = statsBefore.loops.find((x) => x.hart === l.hart);
        return {
          hart: l.hart, slicesPerSecond: per(b?.slices ?? 0, l.slices), sleepsPerSecond: per(b?.sleeps ?? 0, l.sleeps), emptyWakesPerSecond: per(b?.emptyWakes ?? 0, l.emptyWakes), translationsPerSecond: per(b?.translations ?? 0, l.translations),
          modulesPerSecond: per(b?.modules ?? 0, l.modules), jitPercent: per(b?.jitMs ?? 0, l.jitMs) / 10, slicePercent: per(b?.busyMs ?? 0, l.busyMs) / 10,
        };
      }),
      harts: statsAfter.harts.map((h) => {
        const b = statsBefore.harts.find((x) => x.hart === h.hart);
        return { hart: h.hart, interruptsPerSecond: per(b?.interrupts ?? 0, h.interrupts), wfisPerSecond: per(b?.wfis ?? 0, h.wfis), ipisPerSecond: per(b?.ipis ?? 0, h.ipis), switchedInPerSecond: per(b?.switchedIn ?? 0, h.switchedIn) };
      }),
    };
  }
  const host = { date: new Date().toISOString().slice(0, 10), cpu: cpuModel(), cores: cpus().length, node: process.version, qemu: qemuVersion(), loadAverage: [load0, load1] };
  if (values.json) {
    process.stdout.write(JSON.stringify({ host, seconds: window, settle, results, rates }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`Idle SMP guests, ${host.date}, ${host.cpu} (${host.cores} cores), Node ${host.node}, QEMU ${host.qemu}\n`);
  process.stdout.write(`At the shell prompt, ${window.toFixed(0)} s measured after ${settle} s settling; load average ${load0.toFixed(1)} -> ${load1.toFixed(1)}.\n\n`);
  process.stdout.write(table([['configuration', 'boot (s)', '% of a host core'], ...results.map((r) => [r.label, r.bootSeconds.toFixed(1), r.corePercent.toFixed(2)])], new Set([1, 2])) + '\n\n');
  if (rates) {
    const f = (x: unknown) => (x as number).toFixed(1);
    process.stdout.write(`${statsVm.config.label}, per second: ${f(rates.instructionsPerSecond)} instructions, ${f(rates.slicesPerSecond)} slices, ${f(rates.sleepsPerSecond)} idle sleeps, ${f(rates.switchesPerSecond)} hart switches, ${f(rates.translationsPerSecond)} translations in ${f(rates.modulesPerSecond)} modules; ${(rates.slicePercent as number).toFixed(2)}% of a core in slices\n`);
    process.stdout.write(`  % of a core by thread: ${Object.entries(rates.threadPercent as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ')}\n`);
    process.stdout.write(`  interrupts: ${Object.entries(rates.interruptsPerSecond as Record<string, number>).map(([k, v]) => `${k} ${v.toFixed(1)}`).join(', ')}\n`);
    for (const h of rates.harts as { hart: number; interruptsPerSecond: number; wfisPerSecond: number; ipisPerSecond: number; switchedInPerSecond: number }[]) {
      process.stdout.write(`  hart ${h.hart}: ${f(h.interruptsPerSecond)} interrupts, ${f(h.wfisPerSecond)} WFI waits, ${f(h.ipisPerSecond)} IPIs, switched in ${f(h.switchedInPerSecond)}\n`);
    }
    for (const l of rates.loops as { hart: number; slicesPerSecond: number; sleepsPerSecond: number; emptyWakesPerSecond: number; translationsPerSecond: number; modulesPerSecond: number; jitPercent: number; slicePercent: number }[]) {
      process.stdout.write(`  hart ${l.hart} thread: ${f(l.slicesPerSecond)} slices, ${f(l.sleepsPerSecond)} sleeps (${f(l.emptyWakesPerSecond)} woken for nothing), ${f(l.translationsPerSecond)} translations in ${f(l.modulesPerSecond)} modules; ${l.jitPercent.toFixed(2)}% of a core translating, ${l.slicePercent.toFixed(2)}% in slices\n`);
    }
  }
}

main().catch((e) => {
  killAll();
  process.stderr.write(`bench:smp-idle: ${e instanceof Error ? e.message : String(e)}\n`);
  process.exit(1);
});
