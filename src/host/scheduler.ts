// CPU fair share among VMs. Each period the scheduler divides the host CPU
// given to VMs (--cpus cores) among the runnable VMs in proportion to their
// weights, never beyond a VM's cap or one core, and hands
// the time out as instruction credit: the worker runs while its retired
// instructions are below its credit (src/vm/protocol.ts). CPU time becomes
// instructions through each VM's measured instructions per busy microsecond.
// An idle or paused VM's share goes to the others (work-conserving).
//
// A VM is one unit whatever its hart count: its weight and cap apply to all its
// harts together (its instructions and busy time are the sums over its harts,
// whether they take turns on the VM's one thread or run on threads of their
// own). A cap is in host cores and may be up to the hart count; a VM is given
// at most as many cores as it has threads (Schedulable.threads).

import { RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, RUN_STATE_THROTTLED, type LiveCounters } from '../vm/protocol.js';

/** The part of a VM the scheduler needs (VmSupervisor implements it). */
export interface Schedulable {
  readonly name: string;
  readonly weight: number;
  readonly cap: number | undefined;
  /** Host threads its harts run on (several with hart threads; default VM_THREADS). */
  readonly threads?: number;
  live(): LiveCounters | null;
  setCredit(instret: bigint): void;
  window: { mips: number; cpuShare: number; instructionShare: number };
}

interface Track {
  instret: bigint;
  busyUs: number;
  at: number;
  /** Smoothed instructions per busy microsecond. */
  ipus: number;
  /** Host time a capped VM used beyond its cap, paid back from later grants (µs). */
  capDebtUs: number;
  credit: bigint;
  /** Instructions and busy time since the last published window. */
  winInstr: number;
  winBusyUs: number;
  speedInstr: number;
  speedBusyUs: number;
  /** Whether ipus comes from a measurement yet (the first one replaces the guess). */
  measured: boolean;
  /** Service received (CPU µs from instructions) per weight unit; -1 while not runnable. */
  vtime: number;
}

export interface SchedulerOptions {
  cpus: number;
  periodMs: number;
  /** CPU time used by this process so far, in µs (all threads; default process.cpuUsage()). */
  cpuTimeUs?: () => number;
}

function processCpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

/** Host threads a VM's harts run on unless it says otherwise (phase 1 of SMP: all harts on one thread; docs/smp.md). */
export const VM_THREADS = 1;
/** Host threads of a VM: its hart count when each hart has a thread of its own. */
function threadsOf(vm: Schedulable): number {
  return vm.threads ?? VM_THREADS;
}
/** The cap that limits a VM: a cap of as many cores as it has threads, or more, limits nothing. */
function effectiveCap(vm: Schedulable): number | undefined {
  return vm.cap !== undefined && vm.cap < threadsOf(vm) ? vm.cap : undefined;
}

/** Before a VM has been measured: a guess of its speed (instructions per µs). */
const INITIAL_IPUS = 100;
/** An idle VM still gets this share of a core, so it can take its interrupts at once. */
const IDLE_SHARE = 0.02;
const EMA = 0.2;
const MIN_BOOST = 0.1;
const MAX_BOOST = 4;
const SPEED_SAMPLE_US = 5000;
/** Periods with fewer instructions (an idle guest's timer ticks) say nothing about a VM's speed. */
const SPEED_MIN_INSTRUCTIONS = 100_000;
/** How many periods of entitlement a starved VM may catch up on. */
const MAX_LAG = 10;
/**
 * A late period (the event loop was busy) hands out the time that really
 * passed, up to this many periods: credit sized by the nominal period starved
 * every VM in proportion to the delay (twenty booting guests got a tenth of
 * their share while the test's main thread was busy).
 */
const MAX_PERIODS_PER_TICK = 10;
/** Monitoring figures (MIPS, shares) are published over windows this long. */
const REPORT_WINDOW_MS = 1000;

/**
 * Split `capacity` among demands with weights, each limited by its own ceiling
 * (water filling): what a capped entry cannot take is redistributed.
 */
export function weightedShares(capacity: number, entries: { weight: number; ceiling: number }[]): number[] {
  const out = entries.map(() => 0);
  let open = entries.map((_, i) => i);
  let left = capacity;
  while (open.length > 0 && left > 1e-9) {
    const total = open.reduce((s, i) => s + entries[i].weight, 0);
    const clamped: number[] = [];
    for (const i of open) {
      const want = (left * entries[i].weight) / total;
      if (out[i] + want >= entries[i].ceiling) clamped.push(i);
    }
    if (clamped.length === 0) {
      for (const i of open) out[i] += (left * entries[i].weight) / total;
      left = 0;
      break;
    }
    for (const i of clamped) {
      left -= entries[i].ceiling - out[i];
      out[i] = entries[i].ceiling;
    }
    open = open.filter((i) => !clamped.includes(i));
  }
  return out;
}

export class FairShareScheduler {
  private readonly tracks = new Map<string, Track>();
  private timer: NodeJS.Timeout | null = null;
  private cpus: number;
  readonly periodMs: number;
  private windowStart = performance.now();
  private readonly cpuTimeUs: () => number;
  private lastCpu: number | null = null;
  private lastCpuAt = 0;
  private usedCores = 0;
  /** Correction of the capacity estimate from the process's real CPU use (see adaptBoost). */
  boost = 1;
  /** The virtual time of the slowest runnable VM at the last period. */
  private vfloor = 0;
  /** When the last period began (performance.now()), or null before the first. */
  private lastTickAt: number | null = null;
  /** How much later than its period the last period began (ms; monitoring). */
  lateMs = 0;

  constructor(private readonly vms: () => Iterable<Schedulable>, opts: SchedulerOptions) {
    this.cpus = opts.cpus;
    this.periodMs = opts.periodMs;
    this.cpuTimeUs = opts.cpuTimeUs ?? processCpuUs;
  }

  /**
   * A worker's busy time is wall time inside the emulator, which overstates its
   * CPU time when the host has more threads than cores, so speeds measured
   * from it are too low. The process's real CPU time (all threads) corrects
   * the total: while VMs wait for credit and the process uses less than
   * --cpus cores, the period's capacity grows; above --cpus it shrinks. The
   * correction stays within [MIN_BOOST, MAX_BOOST]: a large one would also let
   * a VM run that many periods ahead of the others (see `level`).
   */
  private adaptBoost(now: number, anyThrottled: boolean, anyRunnable: boolean): void {
    const cpu = this.cpuTimeUs();
    if (this.lastCpu !== null && now > this.lastCpuAt) {
      const used = (cpu - this.lastCpu) / ((now - this.lastCpuAt) * 1000);
      this.usedCores = this.usedCores * 0.7 + used * 0.3;
      if (anyRunnable) {
        if (this.usedCores > this.cpus * 1.03) this.boost = Math.max(MIN_BOOST, this.boost * 0.93);
        else if (anyThrottled && this.usedCores < this.cpus * 0.95) this.boost = Math.min(MAX_BOOST, this.boost * 1.07);
      }
    }
    this.lastCpu = cpu;
    this.lastCpuAt = now;
  }

  /** Host time a capped VM has used beyond its cap and not yet paid back (µs). */
  capDebtUs(name: string): number {
    return this.tracks.get(name)?.capDebtUs ?? 0;
  }

  get hostCpus(): number {
    return this.cpus;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.periodMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /** One scheduling period: measure the last one, then hand out credit for the next. */
  tick(now = performance.now()): void {
    const running: { vm: Schedulable; live: LiveCounters; t: Track }[] = [];
    const seen = new Set<string>();
    for (const vm of this.vms()) {
      const live = vm.live();
      if (!live || live.state === RUN_STATE_EXITED) continue;
      seen.add(vm.name);
      let t = this.tracks.get(vm.name);
      if (!t || live.instret < t.instret) {
        // New (or restarted) worker: start measuring from here.
        t = { instret: live.instret, busyUs: live.busyUs, at: now, ipus: t?.ipus ?? INITIAL_IPUS, capDebtUs: 0, credit: -1n, winInstr: 0, winBusyUs: 0, vtime: -1, speedInstr: 0, speedBusyUs: 0, measured: t?.measured ?? false };
        this.tracks.set(vm.name, t);
        running.push({ vm, live, t });
        continue;
      }
      const dt = Math.max(1, (now - t.at) * 1000);
      const dInstr = Number(live.instret - t.instret);
      const dBusy = live.busyUs - t.busyUs;
      // Measure speed over at least SPEED_SAMPLE_US of busy time: one period of a throttled VM is too short.
      // Not while the guest idles: its slices are mostly wake-up overhead, and a speed learnt
      // there would starve it of credit when it gets work again (a console command after a
      // long idle would crawl until the estimate recovered).
      // A VM held back by its credit was busy however few instructions it ran: its
      // speed is sampled too, or an estimate learnt too low (busy time is wall time,
      // inflated while the host had more threads than cores) would keep its credit
      // under the sampling threshold for ever (twenty guests booted at 1.7 MIPS each).
      if ((dInstr >= SPEED_MIN_INSTRUCTIONS || (dInstr > 0 && live.state === RUN_STATE_THROTTLED)) && live.state !== RUN_STATE_IDLE) {
        t.speedInstr += dInstr;
        t.speedBusyUs += Math.max(0, dBusy);
      }
      if (t.speedBusyUs >= SPEED_SAMPLE_US && t.speedInstr > 0) {
        const measured = t.speedInstr / t.speedBusyUs;
        t.ipus = t.measured ? t.ipus * (1 - EMA) + measured * EMA : measured;
        t.measured = true;
        t.speedInstr = 0;
        t.speedBusyUs = 0;
      }
      const cap = effectiveCap(vm);
      if (cap !== undefined) t.capDebtUs = Math.max(0, t.capDebtUs + dBusy - cap * dt);
      if (t.vtime >= 0) t.vtime += dInstr / vm.weight;
      t.winInstr += dInstr;
      t.winBusyUs += Math.max(0, dBusy);
      t.instret = live.instret;
      t.busyUs = live.busyUs;
      t.at = now;
      running.push({ vm, live, t });
    }
    for (const name of [...this.tracks.keys()]) if (!seen.has(name)) this.tracks.delete(name);
    if (now - this.windowStart >= REPORT_WINDOW_MS) this.publishWindow(running, now);

    // Runnable: wants CPU now (running, booting or waiting for credit).
    const runnable = running.filter((r) => r.live.state !== RUN_STATE_IDLE && r.live.state !== RUN_STATE_PAUSED);
    const elapsedMs = this.lastTickAt === null ? this.periodMs : now - this.lastTickAt;
    this.lastTickAt = now;
    this.lateMs = Math.max(0, elapsedMs - this.periodMs);
    const periodUs = Math.min(Math.max(elapsedMs, this.periodMs), this.periodMs * MAX_PERIODS_PER_TICK) * 1000;
    const ceilings = runnable.map((r) => effectiveCap(r.vm) ?? threadsOf(r.vm));
    const shares = weightedShares(this.cpus, runnable.map((r, i) => ({ weight: r.vm.weight, ceiling: ceilings[i] })));
    // Weighted fair queuing on measured service: each VM's retired
    // instructions divided by its weight is its virtual time. A VM ahead of the
    // slowest one gets less this period, so the shares hold even when the host
    // is busier than the scheduler assumes. The period's capacity in
    // instructions comes from the VMs' measured speeds.
    const open = runnable.map((_, i) => i).filter((i) => shares[i] < ceilings[i] - 1e-9);
    let level = 0; // virtual time the open VMs may reach in this period (instructions per weight unit)
    if (open.length > 0) {
      let v = Infinity;
      let vmax = -Infinity;
      for (const i of open) {
        const t = runnable[i].t;
        if (t.vtime < 0) t.vtime = this.vfloor; // newly runnable: no credit for the time it slept
        v = Math.min(v, t.vtime);
        vmax = Math.max(vmax, t.vtime);
      }
      // Capacity is short only if even the VM furthest behind used all its credit.
      const laggard = open.find((i) => runnable[i].t.vtime === v)!;
      this.adaptBoost(now, runnable[laggard].live.state === RUN_STATE_THROTTLED, true);
      let capacity = 0;
      let weights = 0;
      for (const i of open) {
        capacity += shares[i] * periodUs * runnable[i].t.ipus * this.boost;
        weights += runnable[i].vm.weight;
      }
      const d = capacity / weights;
      // A VM far behind (starved by the host) forgoes entitlement older than MAX_LAG periods.
      v = Math.max(v, vmax - MAX_LAG * d);
      for (const i of open) runnable[i].t.vtime = Math.max(runnable[i].t.vtime, v);
      this.vfloor = v;
      level = v + d;
    } else {
      this.adaptBoost(now, false, runnable.length > 0);
    }
    for (const r of running) if (!runnable.includes(r)) r.t.vtime = -1;
    runnable.forEach((r, i) => {
      const cap = effectiveCap(r.vm);
      if (cap === undefined && shares[i] >= threadsOf(r.vm) - 1e-9) {
        // All the cores it can use and no cap: nothing to hold back.
        r.t.vtime = this.vfloor;
        if (r.t.credit !== -1n) {
          r.t.credit = -1n;
          r.vm.setCredit(-1n);
        }
        return;
      }
      const ipus = r.t.ipus;
      const boosted = ipus * this.boost;
      let n = open.includes(i) ? Math.min(periodUs * boosted, Math.max(0, (level - r.t.vtime) * r.vm.weight)) : shares[i] * periodUs * boosted;
      if (cap !== undefined) n = Math.max(0, Math.min(n, (cap * periodUs - r.t.capDebtUs) * ipus));
      this.grant(r, n);
    });
    // A whole thread nobody runnable uses: an uncapped idle VM that wakes would get
    // all of it at the next period anyway, so it need not wait for that period
    // (up to 50 ms) after spending its allowance on the first interrupt; a console
    // command to a VM restored idle at its prompt waited exactly that.
    const spare = this.cpus - shares.reduce((sum, s) => sum + s, 0) >= VM_THREADS - 1e-9;
    for (const r of running) {
      if (runnable.includes(r)) continue;
      if (spare && effectiveCap(r.vm) === undefined) {
        if (r.t.credit !== -1n) {
          r.t.credit = -1n;
          r.vm.setCredit(-1n);
        }
        continue;
      }
      // Idle or paused: a small allowance so interrupts are handled at once.
      this.grant(r, Math.min(IDLE_SHARE, effectiveCap(r.vm) ?? 1) * periodUs * r.t.ipus);
    }
  }

  /** Per-VM MIPS, host cores used, and share of all guest instructions over the last window. */
  private publishWindow(running: { vm: Schedulable; t: Track }[], now: number): void {
    const dt = (now - this.windowStart) * 1000;
    this.windowStart = now;
    const total = running.reduce((sum, r) => sum + r.t.winInstr, 0);
    for (const { vm, t } of running) {
      vm.window.mips = t.winInstr / dt;
      vm.window.cpuShare = t.winBusyUs / dt;
      vm.window.instructionShare = total > 0 ? t.winInstr / total : 0;
      t.winInstr = 0;
      t.winBusyUs = 0;
    }
  }

  private grant(r: { vm: Schedulable; live: LiveCounters; t: Track }, instructions: number): void {
    // Credit is absolute: unused credit from the last period is not banked.
    const credit = r.live.instret + BigInt(Math.floor(instructions));
    r.t.credit = credit;
    r.vm.setCredit(credit);
  }
}
