// The harts of a machine, run round-robin on one thread: the core holds one
// live hart and the others' saved contexts (src/cpu/harts.ts); this module
// decides who runs next, in fixed instruction quanta, so a run is
// deterministic. It also keeps each hart's SBI HSM state and answers for the
// whole machine: it is idle (WFI) only when every started hart waits.

import { EXIT_BUDGET, EXIT_WFI, EXIT_HOST, EXIT_YIELD, type CpuCore } from './cpu-core.js';
import { HART_CTX_MAX } from './layout.js';
import { CPU_FIELDS } from './cpu-persist.js';
import type { SbiHarts } from './sbi.js';
import { HSM_START_PENDING, type HartBoard } from './hart-board.js';
import { IRQ_M_EXT, IRQ_S_EXT } from './layout.js';

/** SBI HSM states (the values hart_get_status returns). */
export const HSM_STARTED = 0;
export const HSM_STOPPED = 1;
export const HSM_SUSPENDED = 4;

/** Most harts a machine may have. */
export const MAX_HARTS = HART_CTX_MAX;
/**
 * Instructions a hart runs before the next one gets the core. A switch costs far
 * more than its own 10 to 30 us: the TLB is refilled page walk by page walk and
 * the links between translated blocks are made again. A hart that spins in the
 * kernel (cpu_relax() executes PAUSE) gives up the rest of its quantum at once,
 * so a long quantum wastes little on locks; see docs/smp.md.
 */
export const QUANTUM = 200_000;

const F = (name: string): number => {
  const i = CPU_FIELDS.indexOf(name as (typeof CPU_FIELDS)[number]);
  if (i < 0) throw new Error(`no cpu field ${name}`);
  return i;
};
const F_PC = F('pc');
const F_PRIV = F('priv');
const F_MHARTID = F('mhartid');
const F_SATP = F('satp');
const F_MSTATUS = F('mstatus');
const F_STIMECMP = F('stimecmp');
const F_MTIMECMP = F('mtimecmp');
const F_MSIP = F('msip');
const F_MIPHW = F('mipHw');
const MS_SIE = 2n;
const PRV_S = 1;
const ALL_ONES = 0xffff_ffff_ffff_ffffn;

/** SBI hart_start (and a non-retentive resume): hart h in S-mode at `addr` with a0 = h, a1 = opaque, translation and interrupts off. */
export function enterSupervisor(core: CpuCore, h: number, addr: bigint, opaque: bigint): void {
  const ex = core.exports;
  for (let r = 1; r < 32; r++) ex.hartRegSet(h, r, 0n);
  ex.hartRegSet(h, 10, BigInt(h));
  ex.hartRegSet(h, 11, BigInt.asUintN(64, opaque));
  ex.hartFieldSet(h, F_PC, BigInt.asUintN(64, addr));
  ex.hartFieldSet(h, F_PRIV, BigInt(PRV_S));
  ex.hartFieldSet(h, F_SATP, 0n);
  ex.hartFieldSet(h, F_MSTATUS, BigInt.asUintN(64, ex.hartFieldGet(h, F_MSTATUS)) & ~MS_SIE);
}

export interface HartStats {
  /** Context switches between harts so far. */
  switches: number;
  /** Instructions each hart retired (with one hart: see HartSet.report()). */
  instructions: number[];
  /** Times a hart went idle (WFI with nothing pending); the stall watch takes it as a sign of life. */
  wfis: number;
  /** Per hart: times it went idle. */
  hartWfis: number[];
  /** Per hart: interrupts it took (with one hart: see HartSet.report()). */
  interrupts: number[];
  /** Per hart: SBI IPIs sent to it. */
  ipis: number[];
  /** Per hart: times it got the core from another hart. */
  switchedIn: number[];
}

/** What a hart is doing, for statistics. */
export type HartStateName = 'started' | 'stopped' | 'suspended';

/** One hart's figures (plain data: statistics, the API, metrics). */
export interface HartReport {
  hart: number;
  state: HartStateName;
  /** Waiting for an interrupt (WFI or a retentive suspend). */
  waiting: boolean;
  instructions: number;
  interrupts: number;
  wfis: number;
  ipis: number;
  /** Times it got the core from another hart (phase 1: harts take turns). */
  switchedIn: number;
}

/** The scheduler's state in a snapshot (the harts' registers travel as CpuStates). */
export interface HartSetState {
  current: number;
  left: number;
  hsm: number[];
  waiting: boolean[];
  resumeAt: ({ addr: string; opaque: string } | null)[];
}

export class HartSet implements SbiHarts {
  readonly count: number;
  /** HSM state per hart. */
  readonly hsm: number[];
  /** In WFI (or a retentive suspend): skipped until an interrupt is pending for it. */
  readonly waiting: boolean[];
  /** Non-retentive suspend: where the hart resumes, with a1 = opaque. */
  private readonly resumeAt: ({ addr: bigint; opaque: bigint } | null)[];
  private left = QUANTUM;
  private yieldAsked = false;
  /** Only this hart may run (a debugger steps it while the others stay stopped); null: all. */
  only: number | null = null;
  readonly stats: HartStats;

  constructor(private readonly core: CpuCore, count: number) {
    if (!Number.isInteger(count) || count < 1 || count > MAX_HARTS) throw new RangeError(`bad hart count ${count} (1..${MAX_HARTS})`);
    this.count = count;
    core.exports.hartSetCount(count);
    this.hsm = Array.from({ length: count }, (_, h) => (h === 0 ? HSM_STARTED : HSM_STOPPED));
    this.waiting = new Array<boolean>(count).fill(false);
    this.resumeAt = new Array(count).fill(null);
    const zeros = () => new Array<number>(count).fill(0);
    this.stats = { switches: 0, instructions: zeros(), wfis: 0, hartWfis: zeros(), interrupts: zeros(), ipis: zeros(), switchedIn: zeros() };
  }

  /** The hart whose state is live in the core (SBI calls come from it). */
  get current(): number {
    return this.core.exports.hartCurrent();
  }

  field(h: number, name: number): bigint {
    return BigInt.asUintN(64, this.core.exports.hartFieldGet(h, name));
  }
  setField(h: number, name: number, v: bigint): void {
    this.core.exports.hartFieldSet(h, name, BigInt.asUintN(64, v));
  }

  /**
   * After the boot hart is set up: every other hart gets a copy of its machine-mode
   * setup (delegation, counters, PMP, Sstc), stopped until hart_start.
   */
  initSecondaries(): void {
    for (let h = 1; h < this.count; h++) {
      this.core.exports.hartSaveTo(h);
      this.setField(h, F_MHARTID, BigInt(h));
      for (let r = 1; r < 64; r++) this.core.exports.hartRegSet(h, r, 0n);
      this.setField(h, F_MSIP, 0n);
      this.setField(h, F_STIMECMP, ALL_ONES);
      this.setField(h, F_MTIMECMP, ALL_ONES);
    }
  }

  /** Firmware boots (--bios): every hart starts at the entry in M-mode with a0 = its id, like QEMU's harts. */
  startAllAt(entry: bigint, a1: bigint, a2: bigint): void {
    for (let h = 1; h < this.count; h++) {
      this.core.exports.hartSaveTo(h);
      this.setField(h, F_MHARTID, BigInt(h));
      for (let r = 1; r < 64; r++) this.core.exports.hartRegSet(h, r, 0n);
      this.core.exports.hartRegSet(h, 10, BigInt(h));
      this.core.exports.hartRegSet(h, 11, a1);
      this.core.exports.hartRegSet(h, 12, a2);
      this.setField(h, F_PC, entry);
      this.hsm[h] = HSM_STARTED;
    }
  }

  // ---- SBI HSM ----

  /** hart_start: S-mode at `addr` with a0 = hart id, a1 = opaque, translation and interrupts off. */
  start(h: number, addr: bigint, opaque: bigint): 'ok' | 'started' | 'invalid' {
    if (!this.valid(h)) return 'invalid';
    if (this.hsm[h] !== HSM_STOPPED) return 'started';
    this.enterS(h, addr, opaque);
    this.hsm[h] = HSM_STARTED;
    this.waiting[h] = false;
    return 'ok';
  }

  private enterS(h: number, addr: bigint, opaque: bigint): void {
    enterSupervisor(this.core, h, addr, opaque);
  }

  /** hart_stop by the calling hart: it leaves the core until a hart_start. */
  stopCurrent(): void {
    const h = this.current;
    this.hsm[h] = HSM_STOPPED;
    this.yieldNow();
  }

  /** hart_suspend by the calling hart: retentive waits like WFI, non-retentive resumes at `addr`. */
  suspendCurrent(retentive: boolean, addr: bigint, opaque: bigint): void {
    const h = this.current;
    this.hsm[h] = HSM_SUSPENDED;
    this.waiting[h] = true;
    this.resumeAt[h] = retentive ? null : { addr, opaque };
    this.yieldNow();
  }

  status(h: number): number | null {
    return this.valid(h) ? this.hsm[h] : null;
  }

  valid(h: number): boolean {
    return Number.isInteger(h) && h >= 0 && h < this.count;
  }

  /** Set SSIP on hart h (SBI IPI). */
  sendSoftIpi(h: number): void {
    this.stats.ipis[h]++;
    this.core.exports.hartMipBits(h, 1, 2n, 1);
  }

  /**
   * SBI RFENCE. Only the live hart holds TLB entries: a switched-out hart's TLB is
   * flushed when it is switched in. Translated code follows stores to code pages
   * for every hart (one shared cache), so fence.i needs nothing more than that.
   */
  remoteFence(to: number[], _tlb: boolean): void {
    if (to.includes(this.current)) this.core.exports.flushTlb();
  }

  /** Let the next hart run soon: the caller (an SBI call) likely waits for another hart. */
  yieldNow(): void {
    this.yieldAsked = true;
    this.core.exports.requestExit();
  }

  /** Set while the harts run on threads of their own: device lines go to their board. */
  board: HartBoard | null = null;

  /** A device interrupt line (PLIC context output) of hart h: MEIP or SEIP. */
  setIrqLine(h: number, bit: number, level: boolean): void {
    if (this.board) {
      this.board.setLine(h, bit, level);
      return;
    }
    if (h === this.current) this.core.exports.setIrqLine(bit, level ? 1 : 0);
    else this.core.exports.hartMipBits(h, 0, 1n << BigInt(bit), level ? 1 : 0);
  }

  /** Whether hart h can run now (started and not waiting, or woken by a pending interrupt). */
  private runnable(h: number): boolean {
    if (this.hsm[h] === HSM_STOPPED) return false;
    if (!this.waiting[h]) return true;
    if (!this.core.exports.hartWakeable(h)) return false;
    this.waiting[h] = false;
    if (this.hsm[h] === HSM_SUSPENDED) {
      const r = this.resumeAt[h];
      if (r) this.enterS(h, r.addr, r.opaque);
      this.resumeAt[h] = null;
      this.hsm[h] = HSM_STARTED;
    }
    return true;
  }

  /** The next hart to run, starting with the current one if its quantum is not over; -1 when all wait. */
  private pick(): number {
    const cur = this.current;
    if (this.only !== null) {
      if (!this.runnable(this.only)) return -1;
      if (this.only !== cur) this.left = QUANTUM;
      else if (this.left <= 0) this.left = 1;
      return this.only;
    }
    if (this.left > 0 && this.runnable(cur)) return cur;
    for (let i = 1; i <= this.count; i++) {
      const h = (cur + i) % this.count;
      if (this.runnable(h)) {
        this.left = QUANTUM;
        return h;
      }
    }
    return -1;
  }

  /**
   * Run up to `budget` instructions over all harts. Returns EXIT_WFI only when
   * every started hart waits; a breakpoint or a host request ends it at once.
   */
  run(budget: number, halted: () => boolean): number {
    if (this.count === 1) {
      const r = this.core.run(budget);
      this.waiting[0] = r === EXIT_WFI;
      if (r === EXIT_WFI) {
        this.stats.wfis++;
        this.stats.hartWfis[0]++;
      }
      return r;
    }
    const start = this.core.instret;
    for (;;) {
      const done = Number(this.core.instret - start);
      if (done >= budget) return EXIT_BUDGET;
      const h = this.pick();
      if (h < 0) return EXIT_WFI;
      if (h !== this.current) {
        this.core.exports.hartSwitch(h);
        this.stats.switches++;
        this.stats.switchedIn[h]++;
      }
      const before = this.core.instret;
      const irqBefore = this.core.interruptsTaken();
      const r = this.core.run(Math.min(budget - done, this.left));
      const ran = Number(this.core.instret - before);
      this.left -= ran;
      this.stats.instructions[h] += ran;
      this.stats.interrupts[h] += Number(this.core.interruptsTaken() - irqBefore);
      if (r === EXIT_WFI) {
        this.stats.wfis++;
        this.stats.hartWfis[h]++;
        this.waiting[h] = true;
        this.left = 0;
        continue;
      }
      if (r === EXIT_YIELD) {
        this.left = 0; // PAUSE: the hart spins on something another hart must do
        continue;
      }
      if (r === EXIT_HOST && this.yieldAsked && !halted()) {
        this.yieldAsked = false;
        this.left = 0;
        continue;
      }
      if (r !== EXIT_BUDGET && r !== 3 /* a hot loop was translated: go on */) return r;
    }
  }

  /** Every hart's state and counters (one hart: the core's own counts). */
  report(): HartReport[] {
    const st = this.stats;
    const one = this.count === 1;
    return this.hsm.map((hsm, h) => ({
      hart: h,
      state: hsm === HSM_STARTED ? 'started' : hsm === HSM_SUSPENDED ? 'suspended' : 'stopped',
      waiting: this.waiting[h],
      instructions: one ? Number(this.core.instret) : st.instructions[h],
      interrupts: one ? Number(this.core.interruptsTaken()) : st.interrupts[h],
      wfis: st.hartWfis[h],
      ipis: st.ipis[h],
      switchedIn: st.switchedIn[h],
    }));
  }

  /**
   * Harts about to run on threads of their own (phase 2): their HSM states and
   * waits go to the board, with their interrupt lines when they start (`lines`;
   * after a park the board's lines are the PLIC's latest).
   */
  toBoard(board: HartBoard, lines: boolean): void {
    for (let h = 0; h < this.count; h++) {
      board.setHsm(h, this.hsm[h]);
      board.setWaiting(h, this.waiting[h]);
      board.setResume(h, this.resumeAt[h]);
      if (!lines) continue;
      const hw = Number(this.field(h, F_MIPHW) & ((1n << BigInt(IRQ_M_EXT)) | (1n << BigInt(IRQ_S_EXT))));
      board.setLinesTo(h, hw);
    }
  }

  /**
   * The harts' threads are parked (their registers are in their slots): take
   * their HSM states, waits and counters back, so this set describes the VM as
   * a phase-1 set would (snapshots, statistics).
   */
  fromBoard(board: HartBoard, instret: bigint[], interrupts: bigint[]): void {
    for (let h = 0; h < this.count; h++) {
      const s = board.hsm(h);
      // A start that the hart has not taken yet: phase 1 starts it at once.
      if (s === HSM_START_PENDING) {
        const r = board.startRequest(h);
        this.enterS(h, r.addr, r.opaque);
        board.setHsm(h, HSM_STARTED);
      }
      this.hsm[h] = board.hsm(h);
      this.waiting[h] = board.waiting(h);
      this.resumeAt[h] = board.resumeAt(h);
      this.stats.instructions[h] = Number(instret[h]);
      this.stats.interrupts[h] = Number(interrupts[h]);
      this.stats.hartWfis[h] = board.wfis(h);
      this.stats.ipis[h] = board.ipis(h);
    }
    this.stats.wfis = this.stats.hartWfis.reduce((a, b) => a + b, 0);
  }

  save(): HartSetState {
    return {
      current: this.current,
      left: this.left,
      hsm: this.hsm.slice(),
      waiting: this.waiting.slice(),
      resumeAt: this.resumeAt.map((r) => (r ? { addr: r.addr.toString(16), opaque: r.opaque.toString(16) } : null)),
    };
  }

  /** Check a saved state against this machine; null when it fits. */
  static problem(st: unknown, count: number): string | null {
    if (typeof st !== 'object' || st === null) return 'harts: not an object';
    const s = st as Record<string, unknown>;
    const isList = (a: unknown, ok: (x: unknown) => boolean) => Array.isArray(a) && a.length === count && a.every(ok);
    if (!Number.isInteger(s.current) || (s.current as number) < 0 || (s.current as number) >= count) return 'harts: bad current hart';
    if (!Number.isInteger(s.left) || (s.left as number) < 0 || (s.left as number) > QUANTUM) return 'harts: bad quantum';
    if (!isList(s.hsm, (x) => x === HSM_STARTED || x === HSM_STOPPED || x === HSM_SUSPENDED)) return 'harts: bad HSM states';
    if (!isList(s.waiting, (x) => typeof x === 'boolean')) return 'harts: bad waiting flags';
    const hex = (x: unknown) => typeof x === 'string' && /^[0-9a-f]{1,16}$/.test(x);
    if (!isList(s.resumeAt, (x) => x === null || (typeof x === 'object' && hex((x as { addr: unknown }).addr) && hex((x as { opaque: unknown }).opaque)))) {
      return 'harts: bad resume addresses';
    }
    return null;
  }

  /** Restore a state that problem() accepted; the harts' registers are already in place. */
  restore(s: HartSetState): void {
    s.hsm.forEach((v, h) => (this.hsm[h] = v));
    s.waiting.forEach((v, h) => (this.waiting[h] = v));
    s.resumeAt.forEach((r, h) => (this.resumeAt[h] = r ? { addr: BigInt('0x' + r.addr), opaque: BigInt('0x' + r.opaque) } : null));
    this.left = s.left;
    if (s.current !== this.current) this.core.exports.hartSwitch(s.current);
  }

  /** Earliest timer deadline of the harts that can wake, in ticks (all ones: none). */
  nextDeadline(): bigint {
    if (this.count === 1) return BigInt.asUintN(64, this.core.exports.nextTimerDeadline());
    let d = ALL_ONES;
    for (let h = 0; h < this.count; h++) {
      if (this.hsm[h] === HSM_STOPPED) continue;
      const x = BigInt.asUintN(64, this.core.exports.hartDeadline(h));
      if (x < d) d = x;
    }
    return d;
  }
}
