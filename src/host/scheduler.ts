// CPU fair share among VMs. Each period the scheduler divides the host CPU
// given to VMs (--cpus cores) among the runnable VMs in proportion to their
// weights, never beyond a VM's cap or one core (a VM has one hart), and hands
// the time out as instruction credit: the worker runs while its retired
// instructions are below its credit (src/vm/protocol.ts). CPU time becomes
// instructions through each VM's measured instructions per busy microsecond.
// An idle or paused VM's share goes to the others (work-conserving).

import { RUN_STATE_EXITED, RUN_STATE_IDLE, RUN_STATE_PAUSED, type LiveCounters } from '../vm/protocol.js';

/** The part of a VM the scheduler needs (VmSupervisor implements it). */
export interface Schedulable {
  readonly name: string;
  readonly weight: number;
  readonly cap: number | undefined;
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
}

export interface SchedulerOptions {
  cpus: number;
  periodMs: number;
}

/** Before a VM has been measured: a guess of its speed (instructions per µs). */
const INITIAL_IPUS = 100;
/** An idle VM still gets this share of a core, so it can take its interrupts at once. */
const IDLE_SHARE = 0.02;
const EMA = 0.2;

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

  constructor(private readonly vms: () => Iterable<Schedulable>, opts: SchedulerOptions) {
    this.cpus = opts.cpus;
    this.periodMs = opts.periodMs;
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
    let totalInstr = 0;
    for (const vm of this.vms()) {
      const live = vm.live();
      if (!live || live.state === RUN_STATE_EXITED) continue;
      seen.add(vm.name);
      let t = this.tracks.get(vm.name);
      if (!t || live.instret < t.instret) {
        // New (or restarted) worker: start measuring from here.
        t = { instret: live.instret, busyUs: live.busyUs, at: now, ipus: t?.ipus ?? INITIAL_IPUS, capDebtUs: 0, credit: -1n };
        this.tracks.set(vm.name, t);
        running.push({ vm, live, t });
        continue;
      }
      const dt = Math.max(1, (now - t.at) * 1000);
      const dInstr = Number(live.instret - t.instret);
      const dBusy = live.busyUs - t.busyUs;
      if (dBusy > 2000 && dInstr > 0) t.ipus = t.ipus * (1 - EMA) + (dInstr / dBusy) * EMA;
      vm.window.mips = dInstr / dt;
      vm.window.cpuShare = Math.max(0, dBusy) / dt;
      totalInstr += dInstr;
      const cap = vm.cap;
      if (cap !== undefined) t.capDebtUs = Math.max(0, t.capDebtUs + dBusy - cap * dt);
      t.instret = live.instret;
      t.busyUs = live.busyUs;
      t.at = now;
      running.push({ vm, live, t });
    }
    for (const name of [...this.tracks.keys()]) if (!seen.has(name)) this.tracks.delete(name);
    if (totalInstr > 0) {
      const sumRate = running.reduce((s, r) => s + r.vm.window.mips, 0);
      for (const r of running) r.vm.window.instructionShare = sumRate > 0 ? r.vm.window.mips / sumRate : 0;
    }

    // Runnable: wants CPU now (running, booting or waiting for credit).
    const runnable = running.filter((r) => r.live.state !== RUN_STATE_IDLE && r.live.state !== RUN_STATE_PAUSED);
    const periodUs = this.periodMs * 1000;
    const shares = weightedShares(
      this.cpus,
      runnable.map((r) => ({ weight: r.vm.weight, ceiling: Math.min(1, r.vm.cap ?? 1) })),
    );
    const share = new Map<Schedulable, number>();
    runnable.forEach((r, i) => share.set(r.vm, shares[i]));
    for (const r of running) {
      const cap = r.vm.cap;
      const s = share.get(r.vm);
      if (s === undefined) {
        // Idle or paused: a small allowance so interrupts are handled at once.
        const allowanceUs = Math.min(IDLE_SHARE, cap ?? 1) * periodUs;
        this.grant(r, allowanceUs);
        continue;
      }
      if (cap === undefined && s >= 1 - 1e-9) {
        // A whole core and no cap: nothing to hold back.
        if (r.t.credit !== -1n) {
          r.t.credit = -1n;
          r.vm.setCredit(-1n);
        }
        continue;
      }
      let us = s * periodUs;
      if (cap !== undefined) us = Math.max(0, Math.min(us, cap * periodUs - r.t.capDebtUs));
      this.grant(r, us);
    }
  }

  private grant(r: { vm: Schedulable; live: LiveCounters; t: Track }, us: number): void {
    // Credit is absolute: unused credit from the last period is not banked.
    const credit = r.live.instret + BigInt(Math.floor(us * r.t.ipus));
    r.t.credit = credit;
    r.vm.setCredit(credit);
  }
}
