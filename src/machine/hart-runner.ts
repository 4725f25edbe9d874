// One hart on a thread of its own (SMP phase 2): a core instance in the hart's
// area of the VM's shared memory runs the hart in short slices; between slices
// (its safe points) it takes what other threads asked of it through the
// HartBoard: device interrupt lines, IPIs, remote fences, retired code, a hold.
// SBI calls run here (ThreadHarts below answers HSM, IPI and RFENCE across
// threads); console and reset go to the device thread. No Node APIs: the
// thread's entry (src/vm/hart-thread.ts) gives the clock and the host calls.

import { EXIT_WFI, EXIT_BREAKPOINT, EXIT_YIELD, type CpuCore } from './cpu-core.js';
import { HartBoard, type HartLoopCounts, HSM_STARTED, HSM_STOPPED, HSM_START_PENDING, HSM_SUSPENDED, FENCE_TLB, FENCE_CODE, type FenceRange, WHERE_RUN, WHERE_SAFE_POINT, WHERE_STOPPED, WHERE_WFI, WHERE_PARKED, WHERE_FENCE_WAIT, WHERE_ENDED, WHERE_CREDIT, WHERE_TRANSLATING } from './hart-board.js';
import { STATE, HART_STRIDE, HART_ATTN_OFF, JIT_BUDGET_OFF } from './layout.js';
import { enterSupervisor } from './harts.js';
import { Sbi, type SbiHarts, type SbiHost } from './sbi.js';
import { IRQ_M_EXT, IRQ_S_EXT } from './layout.js';
import { HART_DRAIN_INSNS } from '../jit/jit.js';

/**
 * Instructions per slice: between HART_SLICE_MIN and HART_SLICE_MAX, aiming at
 * SLICE_TARGET_US of host time (nextSlice). Requests from other threads
 * (interrupt lines, IPIs, fences, a hold) do not wait for the slice's end: they
 * poke the hart, which leaves at its next block head (pokeHart). What does wait
 * for it is the guest's clock (setTime) and so its timer interrupts, and the
 * daemon's credit. A fixed 100,000 was 20 us of a translated hot loop: 50,000
 * slice boundaries a second cost a hart thread about 10% of its host time
 * (the loop's bookkeeping, and the interpreted instructions before each
 * slice's end that no whole block fitted), where the VM thread's 2,000,000
 * cost it under 1%.
 */
export const HART_SLICE_MIN = 100_000;
/** The VM thread's slice (src/vm/worker.ts): the timer is never later than on a 1-hart VM. */
export const HART_SLICE_MAX = 2_000_000;
export const SLICE_TARGET_US = 500;
/**
 * The next slice's budget after one of `budget` instructions that ran `ran` of
 * them in `us` of host time: the measured rate times SLICE_TARGET_US, at most
 * twice the last budget (one fast slice is no trend), within the bounds. A slice
 * that left early (WFI, a poke, a PAUSE) says little about the rate: the budget
 * stays, unless that slice already took longer than the target.
 */
export function nextSlice(budget: number, ran: number, us: number): number {
  if (ran < budget && us < SLICE_TARGET_US) return budget;
  const want = us > 0 ? Math.floor((ran / us) * SLICE_TARGET_US) : HART_SLICE_MAX;
  return Math.max(HART_SLICE_MIN, Math.min(HART_SLICE_MAX, 2 * budget, want));
}
/**
 * Longest sleep without looking at the board again (a missed wake would cost
 * at most this; every waker notifies the wake word, see HartBoard.wake). An
 * idle Linux (NO_HZ) sets its timer seconds ahead, so at 200 ms each idle hart
 * woke 5 times a second for nothing; 1 s is the VM worker's own cap.
 */
const MAX_SLEEP_MS = 1000;
const TICKS_PER_MS = 10_000n;
const ALL_ONES = 0xffff_ffff_ffff_ffffn;
const PRV_S = 1;
const LINE_MASK = (1 << IRQ_M_EXT) | (1 << IRQ_S_EXT);

export interface HartRunnerHost {
  /** Host time in timebase ticks on the VM's origin. */
  nowTicks(): bigint;
  /** Console bytes (already in the board's buffer for this hart: `length` of them). */
  consoleWrite(length: number): void;
  consoleReadByte(): number;
  systemReset(kind: 'poweroff' | 'reset', code: number): void;
  /** Host time spent waiting for device accesses so far, us (statistics). */
  deviceWaitUs?(): number;
}

export interface HartRunnerOptions {
  hart: number;
  jit: boolean;
  /** The S-mode ecall hook mask of the boot hart (SBI in the VMM). */
  ecallHookMask: number;
  /** Kernel panic() entries to watch (guest virtual addresses). */
  panicVas: bigint[];
}

export class HartRunner implements SbiHarts {
  readonly count: number;
  readonly current: number;
  private readonly sbi: Sbi;
  private stopAsked = false;
  private suspendAsked = false;
  /** In WFI or a retentive suspend: runs again once an interrupt is pending and enabled. */
  private waiting = false;
  private linesApplied = 0;
  /** The next slice's budget (nextSlice). */
  private slice = HART_SLICE_MIN;
  /** Waiting for the daemon's credit (the device thread was rung once for this wait). */
  private creditWait = false;
  private readonly baseInterrupts: bigint;

  constructor(private readonly core: CpuCore, private readonly board: HartBoard, private readonly host: HartRunnerHost, opts: HartRunnerOptions) {
    this.count = board.harts;
    this.current = opts.hart;
    const ex = core.exports;
    // Sizes the instance for guest RAM (its globals); the hart's state then comes from its slot.
    core.reset(0n, this.current);
    ex.hartSetCount(this.count);
    ex.hartAdopt(this.current);
    ex.setHartThreads(1);
    ex.setEcallHookMask(opts.ecallHookMask);
    core.jit.drainInsns = HART_DRAIN_INSNS;
    core.setOrderingFences(true);
    core.setJitEnabled(opts.jit);
    opts.panicVas.forEach((va, i) => core.setBreakpoint(i, va));
    this.panicSlots = opts.panicVas.length;
    this.panicWatchSeen = board.panicWatchWord();
    this.jitDropSeen = board.jitDropWord();
    // The slot's mip holds the lines as they were when the hart was saved.
    this.linesApplied = Number(BigInt.asUintN(64, ex.hartFieldGet(this.current, F_MIPHW)) & BigInt(LINE_MASK));
    this.waiting = board.waiting(this.current);
    this.baseInterrupts = core.interruptsTaken();
    const sbiHost: SbiHost = {
      consoleWrite: (bytes) => {
        const buf = board.consoleBytes[this.current];
        for (let at = 0; at < bytes.length; at += buf.length) {
          const part = bytes.subarray(at, at + buf.length);
          buf.set(part);
          host.consoleWrite(part.length);
        }
      },
      consoleReadByte: () => host.consoleReadByte(),
      systemReset: (kind, code) => {
        host.systemReset(kind, code);
        // The device thread ends or rebuilds the VM: this hart runs no further.
        this.stopAsked = true;
        ex.requestExit();
      },
    };
    this.sbi = new Sbi(core, this, sbiHost);
    board.poke = pokeHart(core.memoryBuffer);
    this.attn = new Int32Array(core.memoryBuffer, STATE + this.current * HART_STRIDE + HART_ATTN_OFF, 1);
  }

  /** This hart's attention word (see pokeHart). */
  private readonly attn: Int32Array;

  private panicSlots: number;
  /** The board's translation-drop word last taken, and the drops made. */
  private jitDropSeen: number;
  private jitDrops = 0;
  /** The board's panic watch word last taken (see HartBoard.watchPanic). */
  private panicWatchSeen: number;

  /** The core's ecall import. */
  ecall(): void {
    this.sbi.handle();
  }

  // ---- SbiHarts ----

  private valid(h: number): boolean {
    return Number.isInteger(h) && h >= 0 && h < this.count;
  }

  start(h: number, addr: bigint, opaque: bigint): 'ok' | 'started' | 'invalid' {
    if (!this.valid(h)) return 'invalid';
    return this.board.requestStart(h, addr, opaque) ? 'ok' : 'started';
  }

  stopCurrent(): void {
    this.stopAsked = true;
    this.core.exports.requestExit();
  }

  suspendCurrent(retentive: boolean, addr: bigint, opaque: bigint): void {
    this.board.setResume(this.current, retentive ? null : { addr, opaque });
    this.suspendAsked = true;
    this.core.exports.requestExit();
  }

  status(h: number): number | null {
    return this.valid(h) ? this.board.hsm(h) : null;
  }

  sendSoftIpi(h: number): void {
    this.board.sendIpi(h);
    if (h === this.current) this.takeIpi();
  }

  remoteFence(to: number[], tlb: boolean, range: FenceRange | null = null): void {
    const tickets: [number, number][] = [];
    for (const h of to) {
      if (h === this.current) {
        if (tlb) this.flushTlb(range);
        else this.core.exports.hartFenceI();
      }
      // A stopped hart flushes when it starts (hartAdopt / enterSupervisor); asked anyway it acknowledges at once.
      else if (this.board.hsm(h) !== HSM_STOPPED) {
        // A hart asleep in WFI takes the request before it runs again: no need to wake it
        // and wait. Linux fences every other hart on each flush_tlb_all (a 2-hart boot asked
        // hart 1 about 4,000 times, mostly asleep), and each wait was a thread wakeup on
        // both sides, longer on a loaded host.
        const t = this.board.requestFenceUnlessAsleep(h, tlb, range);
        if (t !== null) tickets.push([h, t]);
        else this.fencesSkipped++;
      }
    }
    // Wait for each to acknowledge at its next safe point, answering requests made of this hart
    // meanwhile (two harts fencing each other at once would otherwise wait for ever).
    if (!tickets.length) return;
    this.board.setWhere(this.current, WHERE_FENCE_WAIT);
    const t = this.host.nowTicks();
    for (const [h, ticket] of tickets) {
      while (!this.board.fenceAcked(h, ticket)) {
        if (this.board.ended()) return;
        this.serviceFences();
        this.board.waitFenceAck(h, ticket, 1);
      }
    }
    this.fenceWaitUs += Number(this.host.nowTicks() - t) / 10;
    this.board.setWhere(this.current, WHERE_RUN);
  }

  /**
   * A TLB fence: of `range` page by page when it is small (as the guest's own
   * sfence.vma of each page would: links into other pages stay), else all.
   * Linux fences a range of a few pages on every other hart that ran the
   * process for each unmapping, and a full flush there dropped every link
   * between that hart's translated blocks.
   */
  private flushTlb(range: FenceRange | null): void {
    if (range) this.core.exports.flushTlbRange(range.start, range.size);
    else this.core.exports.flushTlb();
  }

  // ---- the loop ----

  private takeIpi(): void {
    if (this.board.takeIpi(this.current)) this.core.exports.hartMipBits(this.current, 1, 2n, 1);
  }

  private serviceFences(): void {
    const due = this.board.fenceDue(this.current);
    if (due === null) return;
    const kind = this.board.takeFenceKind(this.current);
    // fence.i needs no TLB flush: only this hart's links into code that another hart retired.
    // Both kinds may have been asked: a TLB flush keeps the links within a page, so a
    // fence.i asked with it is done too (kind 0, never posted, gets both).
    if (kind & FENCE_TLB || kind === 0) this.flushTlb(kind & FENCE_TLB ? this.board.takeFenceRange(this.current) : null);
    if (kind & FENCE_CODE || kind === 0) this.core.exports.hartFenceI();
    this.board.ackFence(this.current, due);
  }

  /** What other threads asked of this hart since the last safe point. */
  private service(): void {
    const ex = this.core.exports;
    const h = this.current;
    this.serviceFences();
    if (this.board.takeCodeRetired(h)) ex.hartUnlinkAll();
    // The idle VM's translation housekeeping (the device thread decides, each hart
    // acts on its own translator, which no other thread may touch).
    this.core.jit.idle = this.board.jitIdle();
    const drop = this.board.jitDropWord();
    if (drop !== this.jitDropSeen) {
      this.jitDropSeen = drop;
      if (this.core.jit.modulesLive > 0) {
        this.core.jit.dropAll();
        this.jitDrops++;
      }
    }
    const watch = this.board.panicWatchWord();
    if (watch !== this.panicWatchSeen) {
      // A restored VM's panic watch, armed after this thread started.
      this.panicWatchSeen = watch;
      for (let i = 0; i < this.panicSlots; i++) this.core.setBreakpoint(i, null);
      const vas = this.board.panicWatchVas(watch);
      vas.forEach((va, i) => this.core.setBreakpoint(i, va));
      this.panicSlots = vas.length;
    }
    const lines = this.board.lines(h) & LINE_MASK;
    if (lines !== this.linesApplied) {
      for (const bit of [IRQ_M_EXT, IRQ_S_EXT]) {
        const m = 1 << bit;
        if ((lines & m) !== (this.linesApplied & m)) ex.setIrqLine(bit, lines & m ? 1 : 0);
      }
      this.linesApplied = lines;
    }
    this.takeIpi();
  }

  private publish(): void {
    this.board.setInstret(this.current, this.core.instret, this.core.interruptsTaken() - this.baseInterrupts);
    this.board.setJitCounts(this.current, this.core.jit.modulesLive, this.jitDrops);
    this.board.setLoopCounts(this.current, this.loopCounts());
  }

  /** Calls into the core and sleeps on the wake word so far (published with the counts). */
  private slices = 0;
  private sleeps = 0;
  private emptyWakes = 0;
  /** Remote fences asked of a sleeping hart, not waited for (see remoteFence). */
  private fencesSkipped = 0;
  /** Slices ended by a PAUSE. */
  private pauses = 0;
  private sleepUs = 0;
  private fenceWaitUs = 0;
  /** The last thing this hart did was a WFI sleep (another one in a row means that one was for nothing). */
  private sleptInWfi = false;

  private loopCounts(): HartLoopCounts {
    const js = this.core.jit.stats;
    return { slices: this.slices, sleeps: this.sleeps, emptyWakes: this.emptyWakes, fencesSkipped: this.fencesSkipped, pauses: this.pauses, translations: js.translations, modules: js.modules, jitUs: js.ms * 1000,
      sleepUs: this.sleepUs, fenceWaitUs: this.fenceWaitUs, deviceUs: this.host.deviceWaitUs?.() ?? 0, shared: js.shared, sharedBlocks: js.sharedBlocks };
  }

  /** Sleep on this hart's wake word (until woken, or `ms`). */
  private sleep(seen: number, ms: number): void {
    this.sleeps++;
    // A stopped or idle hart still reads the other harts' offered translations (Jit.sharing);
    // not a parked one (the device thread may use hart 0's area meanwhile).
    if (!this.board.held()) this.core.jit.takeShared();
    this.board.setLoopCounts(this.current, this.loopCounts());
    const t = this.host.nowTicks();
    this.board.sleep(this.current, seen, ms);
    this.sleepUs += Number(this.host.nowTicks() - t) / 10;
  }

  /** Save this hart into its slot and wait while the VM is held (pause, snapshot); then take the slot back. */
  private park(): void {
    const ex = this.core.exports;
    const h = this.current;
    ex.hartSaveTo(h);
    this.board.setWaiting(h, this.waiting);
    this.publish();
    this.board.setParked(h, true);
    this.board.setWhere(h, WHERE_PARKED);
    while (this.board.held() && !this.board.ended()) {
      const seen = this.board.wakeSeen(h);
      const due = this.board.fenceDue(h);
      if (due !== null) this.board.ackFence(h, due); // the TLB is flushed on the way out
      if (!this.board.held()) break;
      this.sleep(seen, MAX_SLEEP_MS);
    }
    // The device thread may have changed the hart while it was held (a restore of the slot).
    ex.hartAdopt(h);
    this.waiting = this.board.waiting(h);
    this.linesApplied = Number(BigInt.asUintN(64, ex.hartFieldGet(h, F_MIPHW)) & BigInt(LINE_MASK));
    this.board.setParked(h, false);
  }

  private enterS(addr: bigint, opaque: bigint): void {
    enterSupervisor(this.core, this.current, addr, opaque);
    this.core.exports.flushTlb();
    this.core.priv = PRV_S;
  }

  /** Run until the VM ends. */
  run(): void {
    const ex = this.core.exports;
    const h = this.current;
    const board = this.board;
    for (;;) {
      if (board.ended()) break;
      board.setWhere(h, WHERE_SAFE_POINT);
      Atomics.store(this.attn, 0, 0);
      const seen = board.wakeSeen(h);
      this.service();
      if (board.held()) {
        this.park();
        continue;
      }
      const hsm = board.hsm(h);
      if (hsm === HSM_STOPPED) {
        board.setWaiting(h, true);
        board.setWhere(h, WHERE_STOPPED);
        this.sleep(seen, MAX_SLEEP_MS);
        continue;
      }
      if (hsm === HSM_START_PENDING) {
        const r = board.startRequest(h);
        this.enterS(r.addr, r.opaque);
        this.waiting = false;
        board.setWaiting(h, false);
        board.setHsm(h, HSM_STARTED);
      }
      ex.setTime(this.host.nowTicks());
      if (this.waiting) {
        if (!ex.hartWakeable(h)) {
          const d = BigInt.asUintN(64, ex.nextTimerDeadline());
          const now = this.host.nowTicks();
          // A deadline that has passed without waking the hart (its timer is masked) cannot wake it either.
          const ms = d > now && d !== ALL_ONES ? Math.min(MAX_SLEEP_MS, Number((d - now) / TICKS_PER_MS) + 1) : MAX_SLEEP_MS;
          board.setWhere(h, WHERE_WFI);
          board.noteSleep(h, ms);
          if (this.sleptInWfi) this.emptyWakes++;
          this.sleptInWfi = true;
          this.sleep(seen, ms);
          continue;
        }
        this.waiting = false;
        board.setWaiting(h, false);
        if (hsm === HSM_SUSPENDED) {
          const r = board.resumeAt(h);
          if (r) this.enterS(r.addr, r.opaque);
          board.setResume(h, null);
          board.setHsm(h, HSM_STARTED);
        }
      }
      // The daemon's credit holds for all the harts together: none runs past it (the
      // where word first, so a new limit set meanwhile wakes this hart; see setCreditLimit).
      board.setWhere(h, WHERE_CREDIT);
      const left = board.creditLeft();
      if (left !== null && left <= 0n) {
        if (!this.creditWait) board.ringDevice();
        this.creditWait = true;
        board.sleep(h, seen, MAX_SLEEP_MS);
        continue;
      }
      this.creditWait = false;
      this.sleptInWfi = false;
      const t = this.host.nowTicks();
      board.setWhere(h, WHERE_RUN);
      // A fence asked of this hart while it ran no guest code was not waited for
      // (HartBoard.requestFenceUnlessAsleep): take it before the first instruction.
      this.serviceFences();
      // Under the daemon's credit the slice stays short: a hart runs at most one slice
      // past what it saw of the others' counts.
      const budget = left === null ? this.slice : left < BigInt(HART_SLICE_MIN) ? Number(left) : HART_SLICE_MIN;
      const before = this.core.instret;
      const r = ex.run(budget);
      // What became hot: translated now (CpuCore.run's drain), as a state that other
      // harts' fences need not wait for.
      board.setWhere(h, WHERE_TRANSLATING);
      this.core.jit.drain();
      this.slices++;
      board.setWhere(h, WHERE_SAFE_POINT);
      const tEnd = this.host.nowTicks();
      const us = Number(tEnd - t) / 10;
      board.addBusyUs(h, us);
      if (left === null) this.slice = nextSlice(this.slice, Number(this.core.instret - before), us);
      this.publish();
      this.noteSafePoint(r);
      if (this.stopAsked) {
        this.stopAsked = false;
        this.suspendAsked = false;
        board.setHsm(h, HSM_STOPPED);
        continue;
      }
      if (this.suspendAsked) {
        this.suspendAsked = false;
        this.waiting = true;
        board.setWaiting(h, true);
        board.setHsm(h, HSM_SUSPENDED);
        continue;
      }
      if (r === EXIT_YIELD) this.pauses++;
      if (r === EXIT_WFI) {
        this.waiting = true;
        board.countWfi(h);
        board.setWaiting(h, true);
      } else if (r === EXIT_BREAKPOINT && this.panicSlots > 0) {
        // The kernel entered panic(): say so once, then let it print its message at full speed.
        board.notePanic();
        for (let i = 0; i < this.panicSlots; i++) this.core.setBreakpoint(i, null);
      }
    }
    this.publish();
    board.setWhere(h, WHERE_ENDED);
  }

  /** What the hang dump shows of this hart (HartThreads.describe). */
  private noteSafePoint(exit: number): void {
    const ex = this.core.exports;
    this.board.noteSafePoint(this.current, {
      exit, priv: this.core.priv, pc: this.core.pc,
      mip: BigInt.asUintN(64, ex.cpuStateGet(F_MIPSW) | ex.cpuStateGet(F_MIPHW)), mie: BigInt.asUintN(64, ex.cpuStateGet(F_MIE)),
      mstatus: BigInt.asUintN(64, ex.cpuStateGet(F_MSTATUS)), stimecmp: BigInt.asUintN(64, ex.cpuStateGet(F_STIMECMP)), time: BigInt.asUintN(64, ex.getTime()),
    });
  }
}

/**
 * Make hart h leave its slice at its next block head: its attention word, and a
 * zero budget for the chain of translated blocks it may be in (the dispatcher
 * sets the budget again for the next chain, by when the attention word stops it).
 */
export function pokeHart(memory: ArrayBuffer): (h: number) => void {
  const i32 = new Int32Array(memory);
  return (h) => {
    const base = STATE + h * HART_STRIDE;
    Atomics.store(i32, (base + HART_ATTN_OFF) >> 2, 1);
    Atomics.store(i32, (base + JIT_BUDGET_OFF) >> 2, 0);
  };
}

/** F_MIPHW: the cpuStateGet number of the device-driven mip bits (src/cpu/harts.ts). */
const F_MIPHW = 8;
const F_MSTATUS = 3;
const F_MIE = 6;
const F_MIPSW = 7;
const F_STIMECMP = 24;
