// Per-hart figures (state, instructions, interrupts, idle waits, IPIs,
// switches) published by a VM's worker in shared memory, beside the per-VM
// live counters, so the daemon's stats route and /metrics read them at any
// time without waiting on the worker. Counters go on across guest reboots
// (each reboot is a fresh machine whose own counts start at 0).

import { MAX_HARTS, type HartReport, type HartStateName } from '../machine/harts.js';

export type { HartReport } from '../machine/harts.js';

/** BigInt64 slots per hart. */
const SLOT_STATE = 0; // 0: never published, else 1 + index in STATE_NAMES
const SLOT_WAITING = 1;
const SLOT_INSTRUCTIONS = 2;
const SLOT_INTERRUPTS = 3;
const SLOT_WFIS = 4;
const SLOT_IPIS = 5;
const SLOT_SWITCHED_IN = 6;
const SLOTS = 8;
const STATE_NAMES: HartStateName[] = ['started', 'stopped', 'suspended'];
const COUNTERS = ['instructions', 'interrupts', 'wfis', 'ipis', 'switchedIn'] as const;
const COUNTER_SLOTS = [SLOT_INSTRUCTIONS, SLOT_INTERRUPTS, SLOT_WFIS, SLOT_IPIS, SLOT_SWITCHED_IN];

export function createHartStatsBlock(): BigInt64Array {
  return new BigInt64Array(new SharedArrayBuffer(MAX_HARTS * SLOTS * 8));
}

/** Worker side: publishes a machine's reports on top of the counts of the machines a reboot replaced. */
export class HartStatsPublisher {
  private readonly base: number[][] = Array.from({ length: MAX_HARTS }, () => COUNTERS.map(() => 0));

  constructor(private readonly block: BigInt64Array) {}

  publish(harts: HartReport[]): void {
    for (const r of harts) {
      if (r.hart < 0 || r.hart >= MAX_HARTS) continue;
      const at = r.hart * SLOTS;
      const b = this.base[r.hart];
      COUNTERS.forEach((k, i) => Atomics.store(this.block, at + COUNTER_SLOTS[i], BigInt(b[i] + r[k])));
      Atomics.store(this.block, at + SLOT_WAITING, r.waiting ? 1n : 0n);
      Atomics.store(this.block, at + SLOT_STATE, BigInt(1 + STATE_NAMES.indexOf(r.state)));
    }
  }

  /** Before a guest reboot replaces the machine: its counts become the base of the next one's. */
  carry(harts: HartReport[]): void {
    for (const r of harts) if (r.hart >= 0 && r.hart < MAX_HARTS) COUNTERS.forEach((k, i) => (this.base[r.hart][i] += r[k]));
  }
}

/** The figures of a hart that is not running (or not published yet). */
export function idleHart(hart: number): HartReport {
  return { hart, state: 'stopped', waiting: false, instructions: 0, interrupts: 0, wfis: 0, ipis: 0, switchedIn: 0 };
}

/** Owner side: the first `count` harts as last published; never blocks. */
export function readHartStats(block: BigInt64Array, count: number): HartReport[] {
  const n = Math.max(0, Math.min(MAX_HARTS, Math.floor(count)));
  return Array.from({ length: n }, (_, h) => {
    const at = h * SLOTS;
    const state = Number(Atomics.load(block, at + SLOT_STATE));
    if (state === 0) return idleHart(h);
    const r = idleHart(h);
    r.state = STATE_NAMES[state - 1] ?? 'stopped';
    r.waiting = Atomics.load(block, at + SLOT_WAITING) !== 0n;
    COUNTERS.forEach((k, i) => (r[k] = Number(Atomics.load(block, at + COUNTER_SLOTS[i]))));
    return r;
  });
}

/** Exactly `count` entries, whatever a runner reported (a VM that is not running reports none). */
export function hartsOfVm(reported: HartReport[], count: number): HartReport[] {
  return Array.from({ length: count }, (_, h) => reported[h] ?? idleHart(h));
}
