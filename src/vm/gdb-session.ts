// The GDB stub inside a VM's worker: it reads the debugger's bytes from the
// gdb port between slices (the worker never returns to its event loop while
// the guest runs), answers packets against the live machine, holds the guest
// while it is stopped, and runs single steps through the interpreter. In
// deterministic runs it keeps checkpoints (gdb-history.ts) and executes
// backwards by re-running from the nearest one.

import { receiveMessageOnPort, type MessagePort } from 'node:worker_threads';
import { CTRL_STOP, CTRL_WAKE, type GdbPortMessage, type SharedControl } from './protocol.js';
import { GdbStub, SIGINT, SIGTRAP, Z_ACCESS, Z_HW, Z_READ, Z_SW, Z_WRITE, type DebugTarget, type PointType, type StopReason, type StubAction } from '../gdb/stub.js';
import type { RegisterRef } from '../gdb/registers.js';
import { EXIT_BREAKPOINT, EXIT_WFI, type VirtMachine } from '../machine/virt.js';
import { HSM_STARTED, HSM_STOPPED } from '../machine/harts.js';
import { debugRead, debugWrite } from '../machine/debug-access.js';
import { MAX_BREAKPOINTS, MAX_TRIGGERS, type CpuCore, type TriggerSpec } from '../machine/cpu-core.js';
import { ReverseHistory } from './gdb-history.js';
import { coverRange, overlaps } from './trigger-cover.js';

/** Checkpoint interval of deterministic runs under a debugger (instructions; a multiple of the worker's slice grid). */
export const DEFAULT_CHECKPOINT_EVERY = 10_000_000;
export const DEFAULT_MAX_CHECKPOINTS = 64;
/** Breakpoint slots 0 and 1 watch the kernel's panic entry (VirtMachine.watchPanic). */
const FIRST_BP_SLOT = 2;
/** Largest watched range (bytes). */
const MAX_WATCH = 0x10000;
/** tdata1's type field of a trigger nobody uses (type 15, disabled). */
const TRIGGER_DISABLED = 15n;
/** The worker's deterministic slice grid: replays slice on it too. */
const GRID = 2_000_000;

/** What the session needs from the worker that owns the machine. */
export interface GdbHost {
  machine(): VirtMachine;
  readonly control: SharedControl;
  readonly deterministic: boolean;
  readonly jit: boolean;
  /** Replace the machine with one rebuilt from a checkpoint's state, RAM filled by `loadRam`. */
  rebuild(state: unknown, loadRam: (ram: Uint8Array) => void): VirtMachine;
  /** Hold back console output (a replay must not print again what the guest printed). */
  muteConsole(on: boolean): void;
  /** Called about twice a second while the guest is held (the worker publishes its counters). */
  idle(): void;
}

/** A hardware breakpoint (Z1) or watchpoint (Z2..Z4) and the triggers that carry it. */
interface HwPoint {
  type: PointType;
  addr: bigint;
  len: number;
  triggers: { slot: number; spec: TriggerSpec }[];
}

export type SessionVerdict = 'run' | 'kill';

export class GdbSession implements DebugTarget {
  private stub: GdbStub | null = null;
  /** The guest is held (stopped for the debugger, or waiting for one with --gdb-wait). */
  private held: boolean;
  /** Software breakpoints (Z0) by address: the core's pc breakpoint slot, and how many insertions hold it. */
  private readonly bps = new Map<bigint, { slot: number; count: number }>();
  /** Hardware breakpoints and watchpoints (Z1..Z4), on the core's Sdtrig triggers. */
  private readonly hw: HwPoint[] = [];
  /** Instruction count at which the guest stopped at one of our points: resuming there runs that instruction once. */
  private stoppedAt: bigint | null = null;
  /** The hart that stopped there (instret is shared by the harts). */
  private stoppedHart = 0;
  private readonly history: ReverseHistory | null;
  private readonly every: number;
  private pendingStop: StopReason | null = null;
  private killed = false;

  constructor(
    private readonly port: MessagePort,
    private readonly host: GdbHost,
    opts: { wait?: boolean; checkpointEvery?: number; maxCheckpoints?: number },
  ) {
    this.held = opts.wait === true;
    this.every = host.deterministic ? opts.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY : 0;
    if (this.every > 0 && this.every % GRID !== 0) throw new Error(`checkpoint interval ${this.every} is not a multiple of ${GRID}`);
    this.history = this.every > 0 ? new ReverseHistory(opts.maxCheckpoints ?? DEFAULT_MAX_CHECKPOINTS) : null;
  }

  get canReverse(): boolean {
    return this.history !== null;
  }

  get harts(): number {
    return this.m.harts.count;
  }

  hartInfo(h: number): string {
    const hs = this.m.harts;
    const state = hs.hsm[h] === HSM_STOPPED ? 'stopped by HSM' : hs.hsm[h] === HSM_STARTED ? (hs.waiting[h] ? 'waiting (WFI)' : 'running') : 'suspended';
    return `hart ${h}, ${state}${h === hs.current ? ', live' : ''}`;
  }

  /** Run fn with hart h live in the core (the debugger reads a saved hart through the core's accessors), then switch back. */
  private onHart<T>(h: number, fn: () => T): T {
    const ex = this.m.core.exports;
    const cur = ex.hartCurrent();
    if (h === cur || h < 0 || h >= this.m.harts.count) return fn();
    ex.hartSwitch(h);
    try {
      return fn();
    } finally {
      ex.hartSwitch(cur);
    }
  }

  /** Triggers are per hart (each hart's Sdtrig state is switched with it): the debugger's go onto every hart, since code and memory are shared. */
  private setTriggerAll(slot: number, spec: TriggerSpec | null): void {
    for (let h = 0; h < this.m.harts.count; h++) this.onHart(h, () => this.m.core.setTrigger(slot, spec));
  }

  private get m(): VirtMachine {
    return this.host.machine();
  }

  // ---- the worker's hooks ----

  /**
   * Between slices: take the debugger's input, and while the guest is held,
   * wait for it (answering packets, stepping) until it continues, detaches or
   * kills, or the owner stops the VM.
   */
  service(): SessionVerdict {
    this.checkpoint();
    for (;;) {
      const seen = Atomics.load(this.host.control.ctrl, CTRL_WAKE);
      this.drainPort();
      if (this.killed) return 'kill';
      if (!this.held || Atomics.load(this.host.control.ctrl, CTRL_STOP)) return 'run';
      this.host.idle();
      Atomics.wait(this.host.control.ctrl, CTRL_WAKE, seen, 500);
    }
  }

  /** Cut a slice so it ends on the checkpoint grid. */
  limitSlice(slice: number): number {
    if (!this.every) return slice;
    const left = this.every - Number(this.m.core.instret % BigInt(this.every));
    return Math.min(slice, left);
  }

  /** After a slice: a stop at one of the debugger's breakpoints or watchpoints holds the guest. */
  afterSlice(r: number): void {
    if (r !== EXIT_BREAKPOINT || !this.stub) return;
    const why = this.ownStop();
    if (why) this.stop(this.pointStop(why));
    else this.m.core.stepOverBreakpoint(); // an access in a watch's cover but outside the range: not the debugger's
  }

  /**
   * Console input entered the machine: a replay cannot reproduce it, so the
   * newest checkpoint is taken here, after it (its state holds the bytes).
   */
  inputArrived(): void {
    if (!this.history) return;
    const m = this.m;
    this.history.add(m.core.instret, m.saveState(), m.core.ram, true);
  }

  /** The guest ended (poweroff, failure): tell the debugger. */
  exited(code: number): void {
    if (this.stub) this.send(this.stub.stopped({ kind: 'exited', code }));
  }

  /** A guest reboot replaced the machine: points go onto the new core, history starts over. */
  machineReplaced(): void {
    this.history?.clear();
    this.install();
  }

  // ---- input ----

  private drainPort(): void {
    for (;;) {
      const got = receiveMessageOnPort(this.port);
      if (!got) return;
      const msg = got.message as GdbPortMessage;
      if (msg.type === 'connect') {
        // A new debugger finds the guest stopped, as after an interrupt.
        this.stub = new GdbStub(this);
        this.held = true;
      } else if (msg.type === 'disconnect') {
        this.release();
      } else if (msg.type === 'data' && this.stub && msg.data instanceof Uint8Array) {
        const out = this.stub.input(msg.data);
        if (out.send) this.send(out.send);
        if (out.interrupt && !this.held) this.stop({ kind: 'signal', signal: SIGINT, hart: this.m.harts.current });
        if (out.action) this.act(out.action, out.stepHart);
      }
      if (this.killed) return;
    }
  }

  private send(s: string): void {
    this.port.postMessage({ type: 'data', data: Uint8Array.from(s, (c) => c.charCodeAt(0)) });
  }

  private stop(reason: StopReason): void {
    this.held = true;
    if (this.stub?.isRunning) this.send(this.stub.stopped(reason));
  }

  /** The debugger went away: drop its points and let the guest run. */
  private release(): void {
    this.stub = null;
    for (const b of this.bps.values()) this.m.core.setBreakpoint(b.slot, null);
    for (const p of this.hw) for (const t of p.triggers) this.setTriggerAll(t.slot, null);
    this.bps.clear();
    this.hw.length = 0;
    this.resumeOverStop();
    this.held = false;
  }

  /** Resuming from a stop at one of our points runs that instruction (once) instead of stopping again. */
  private resumeOverStop(): void {
    const core = this.m.core;
    if (this.stoppedAt !== null && this.stoppedAt === core.instret && this.stoppedHart === this.m.harts.current) core.stepOverBreakpoint();
    this.stoppedAt = null;
  }

  /** The guest stopped at one of our points (it is held with pc on the instruction). */
  private pointStop(why: StopReason): StopReason {
    this.stoppedAt = this.m.core.instret;
    this.stoppedHart = this.m.harts.current;
    return why;
  }

  private act(a: StubAction, stepHart: number): void {
    const stub = this.stub!;
    switch (a) {
      case 'continue':
        this.resumeOverStop();
        this.held = false;
        return;
      case 'step':
        this.send(stub.stopped(this.step(stepHart)));
        return;
      case 'reverse-step':
        this.send(stub.stopped(this.reverseStep()));
        return;
      case 'reverse-continue':
        this.send(stub.stopped(this.reverseContinue()));
        return;
      case 'detach':
        this.release();
        return;
      case 'kill':
        this.killed = true;
        return;
    }
  }

  // ---- running ----

  /**
   * One instruction through the interpreter. A WFI that finds nothing to do
   * is followed, as in the worker's run loop, by the jump of guest time to the
   * next deadline (deterministic runs), so stepping and replays see the run's
   * timing; a hart already idle steps once its timer fires.
   */
  private step(hart: number): StopReason {
    const m = this.m;
    const core = m.core;
    const before = core.instret;
    const done: StopReason = { kind: 'signal', signal: SIGTRAP, hart };
    // A hart stopped by HSM executes nothing until another hart starts it.
    if (m.harts.hsm[hart] === HSM_STOPPED) return done;
    core.setJitEnabled(false);
    m.harts.only = hart;
    try {
      if (hart !== m.harts.current) core.exports.hartSwitch(hart);
      this.resumeOverStop();
      for (let i = 0; i < 1000; i++) {
        const r = m.runSlice(1);
        if (r === EXIT_BREAKPOINT) {
          // A point on this instruction stops it first, as hardware triggers do.
          const why = this.ownStop();
          if (why) return this.pointStop(why);
          core.stepOverBreakpoint(); // in a watch's cover but outside the range
          continue;
        }
        if (r === EXIT_WFI && this.host.deterministic && core.instret === before && m.skipToNextDeadline()) continue;
        break;
      }
    } finally {
      m.harts.only = null;
      core.setJitEnabled(this.host.jit);
    }
    this.checkpoint();
    return done;
  }

  /** Why run() stopped, if it was for one of ours (a panic watch is the worker's). */
  private ownStop(): StopReason | null {
    const core = this.m.core;
    const hart = this.m.harts.current;
    const acc = core.lastTriggerAccess();
    if (!acc) return this.bps.has(BigInt.asUintN(64, core.pc)) ? { kind: 'signal', signal: SIGTRAP, hart, breakType: 'swbreak' } : null;
    if (acc.execute) {
      const pc = BigInt.asUintN(64, core.pc);
      return this.hw.some((p) => p.type === Z_HW && p.addr === pc) ? { kind: 'signal', signal: SIGTRAP, hart, breakType: 'hwbreak' } : null;
    }
    // The watch whose own bytes the access touched (its triggers may cover more).
    const hit = this.hw.find((p) => p.type !== Z_HW && overlaps(p.addr, BigInt(p.len), acc.addr, BigInt(acc.size)) &&
      (p.type === Z_ACCESS || (p.type === Z_WRITE ? acc.store : acc.load)));
    if (!hit) return null;
    const type = hit.type === Z_ACCESS ? 'awatch' : hit.type === Z_WRITE ? 'watch' : 'rwatch';
    return { kind: 'signal', signal: SIGTRAP, hart, watch: { type, addr: acc.addr > hit.addr ? acc.addr : hit.addr } };
  }

  /** At a grid point of a deterministic run: keep a checkpoint. */
  private checkpoint(): void {
    if (!this.history) return;
    const m = this.m;
    if (m.core.instret % BigInt(this.every) !== 0n && this.history.count > 0) return;
    this.history.add(m.core.instret, m.saveState(), m.core.ram);
  }

  /** Rebuild the machine at checkpoint `index` (console muted; no points set). */
  private rewind(index: number): VirtMachine {
    const h = this.history!;
    return this.host.rebuild(h.state(index), (ram) => h.loadRam(index, ram));
  }

  /** Run m with the points cleared (or installed) to exactly `target`; returns the stops passed when `collect`. */
  private runTo(m: VirtMachine, target: bigint, collect: boolean, stopAtNth = -1): { instret: bigint; reason: StopReason }[] {
    const stops: { instret: bigint; reason: StopReason }[] = [];
    let guard = 0;
    while (m.core.instret < target) {
      const left = target - m.core.instret;
      const grid = BigInt(GRID) - (m.core.instret % BigInt(GRID));
      const budget = Number(left < grid ? left : grid);
      const r = m.runSlice(budget);
      // As the worker does after a slice that ends in WFI (deterministic runs): time jumps to the next deadline.
      if (r === EXIT_WFI && (!m.skipToNextDeadline() || ++guard > 1_000_000)) break;
      if (r === EXIT_BREAKPOINT) {
        const why = collect ? this.ownStop() : null;
        if (why) {
          stops.push({ instret: m.core.instret, reason: why });
          if (stops.length - 1 === stopAtNth) return stops;
        }
        m.core.stepOverBreakpoint();
      }
    }
    return stops;
  }

  private reverseStep(): StopReason {
    const now = this.m.core.instret;
    const at = now > 0n ? this.history!.find(now - 1n) : null;
    if (!at) return { kind: 'signal', signal: SIGTRAP, replayLog: 'begin' };
    this.host.muteConsole(true);
    try {
      const m = this.rewind(at.index);
      this.runTo(m, now - 1n, false);
    } finally {
      this.host.muteConsole(false);
      this.install();
    }
    return { kind: 'signal', signal: SIGTRAP, hart: this.m.harts.current };
  }

  /** Back to the last breakpoint or watchpoint stop before now, or to the start of the history. */
  private reverseContinue(): StopReason {
    const h = this.history!;
    const now = this.m.core.instret;
    this.host.muteConsole(true);
    try {
      let end = now;
      for (let at = now > 0n ? h.find(now - 1n) : null; at; at = at.index > 0 ? h.find(at.instret - 1n) : null) {
        const m = this.rewind(at.index);
        this.install();
        const stops = this.runTo(m, end, true).filter((s) => s.instret < now);
        if (stops.length) {
          // Run again from the checkpoint up to that stop, so the state is exactly the stop's.
          const again = this.rewind(at.index);
          this.install();
          const got = this.runTo(again, end, true, stops.length - 1);
          return this.pointStop(got.at(-1)!.reason);
        }
        end = at.instret;
        if (at.index === 0) break;
      }
      // No stop in the history: rest at its beginning.
      const first = h.find(h.oldest!)!;
      const m = this.rewind(first.index);
      return { kind: 'signal', signal: SIGTRAP, hart: m.harts.current, replayLog: 'begin' };
    } finally {
      this.host.muteConsole(false);
      this.install();
    }
  }

  /** Put every breakpoint and watchpoint onto the current core (after a rebuild). */
  private install(): void {
    const core = this.m.core;
    for (const [addr, b] of this.bps) core.setBreakpoint(b.slot, addr);
    for (const p of this.hw) for (const t of p.triggers) this.setTriggerAll(t.slot, t.spec);
  }

  // ---- DebugTarget ----

  readRegister(r: RegisterRef, hart = 0): bigint | null {
    return this.onHart(hart, () => this.readLive(r));
  }

  private readLive(r: RegisterRef): bigint | null {
    const core = this.m.core;
    switch (r.kind) {
      case 'x':
        return core.getX(r.index);
      case 'pc':
        return BigInt.asUintN(64, core.pc);
      case 'f':
        return core.getF(r.index);
      case 'priv':
        return BigInt(core.priv);
      case 'csr':
        if (r.csr === 1) return BigInt(core.fpControl.fflags);
        if (r.csr === 2) return BigInt(core.fpControl.frm);
        if (r.csr === 3) return BigInt((core.fpControl.frm << 5) | core.fpControl.fflags);
        return BigInt.asUintN(64, core.readCsr(r.csr));
    }
  }

  writeRegister(r: RegisterRef, v: bigint, hart = 0): boolean {
    return this.onHart(hart, () => this.writeLive(r, v));
  }

  private writeLive(r: RegisterRef, v: bigint): boolean {
    const core = this.m.core;
    switch (r.kind) {
      case 'x':
        core.setX(r.index, v);
        return true;
      case 'pc':
        core.pc = BigInt.asUintN(64, v);
        return true;
      case 'f':
        core.setF(r.index, v);
        return true;
      case 'priv':
        if (v !== 0n && v !== 1n && v !== 3n) return false;
        core.priv = Number(v);
        return true;
      case 'csr': {
        const fp = core.fpControl;
        if (r.csr === 1) core.fpControl = { ...fp, fflags: Number(v & 0x1fn) };
        else if (r.csr === 2) core.fpControl = { ...fp, frm: Number(v & 7n) };
        else if (r.csr === 3) core.fpControl = { fflags: Number(v & 0x1fn), frm: Number((v >> 5n) & 7n) };
        else core.writeCsr(r.csr, v);
        return true;
      }
    }
  }

  readMemory(addr: bigint, len: number, phys: boolean, hart = 0): Uint8Array {
    return this.onHart(hart, () => debugRead(this.m.core, addr, len, phys));
  }

  writeMemory(addr: bigint, data: Uint8Array, phys: boolean, hart = 0): boolean {
    return this.onHart(hart, () => debugWrite(this.m.core, addr, data, phys));
  }

  insertPoint(type: PointType, addr: bigint, len: number): boolean {
    const core = this.m.core;
    if (type === Z_SW) {
      if ((addr & 1n) !== 0n) return false;
      const b = this.bps.get(addr);
      if (b) {
        b.count++;
        return true;
      }
      const used = new Set([...this.bps.values()].map((x) => x.slot));
      let slot = FIRST_BP_SLOT;
      while (slot < MAX_BREAKPOINTS && (used.has(slot) || core.breakpoint(slot) !== null)) slot++;
      if (slot >= MAX_BREAKPOINTS) return false;
      core.setBreakpoint(slot, addr);
      this.bps.set(addr, { slot, count: 1 });
      return true;
    }
    if (type === Z_HW ? (addr & 1n) !== 0n : !Number.isInteger(len) || len < 1 || len > MAX_WATCH) return false;
    if (addr + BigInt(type === Z_HW ? 1 : len) > 1n << 64n) return false;
    const free = this.freeTriggers(core);
    if (free.length === 0) return false;
    const ranges = type === Z_HW ? [{ address: addr, length: 1n }] : coverRange(addr, BigInt(len), free.length);
    const triggers = ranges.map((r, i) => ({
      slot: free[i],
      spec: { address: r.address, length: r.length, execute: type === Z_HW, load: type === Z_READ || type === Z_ACCESS, store: type === Z_WRITE || type === Z_ACCESS },
    }));
    for (const t of triggers) this.setTriggerAll(t.slot, t.spec);
    this.hw.push({ type, addr, len: type === Z_HW ? 1 : len, triggers });
    return true;
  }

  private describeTriggers(core: CpuCore): string {
    const lines: string[] = [];
    for (let i = 0; i < MAX_TRIGGERS; i++) {
      const p = this.hw.find((x) => x.triggers.some((t) => t.slot === i));
      const t = core.trigger(i);
      if (p) {
        const what = ['', 'hbreak', 'watch', 'rwatch', 'awatch'][p.type];
        const spec = p.triggers.find((x) => x.slot === i)!.spec;
        lines.push(`trigger ${i}: debugger, ${what} 0x${p.addr.toString(16)} (${p.len} bytes), matches 0x${spec.address.toString(16)}..0x${(spec.address + spec.length! - 1n).toString(16)}`);
      } else if (t.tdata1 >> 60n === TRIGGER_DISABLED) {
        lines.push(`trigger ${i}: free`);
      } else {
        lines.push(`trigger ${i}: guest, tdata1 0x${t.tdata1.toString(16)} tdata2 0x${t.tdata2.toString(16)}`);
      }
    }
    return lines.join('\n') + '\n';
  }

  /** Triggers neither the guest (on any hart) nor this session uses, lowest first. */
  private freeTriggers(core: CpuCore): number[] {
    const ours = new Set(this.hw.flatMap((p) => p.triggers.map((t) => t.slot)));
    const free: number[] = [];
    const unused = (i: number): boolean => {
      for (let h = 0; h < this.m.harts.count; h++) if (this.onHart(h, () => core.trigger(i).tdata1 >> 60n !== TRIGGER_DISABLED)) return false;
      return true;
    };
    for (let i = 0; i < MAX_TRIGGERS; i++) if (!ours.has(i) && unused(i)) free.push(i);
    return free;
  }

  removePoint(type: PointType, addr: bigint, len: number): boolean {
    const core = this.m.core;
    if (type === Z_SW) {
      const b = this.bps.get(addr);
      if (!b) return false;
      if (--b.count === 0) {
        core.setBreakpoint(b.slot, null);
        this.bps.delete(addr);
      }
      return true;
    }
    // A hardware breakpoint's length is the instruction's size, not part of its identity.
    const i = this.hw.findIndex((p) => p.type === type && p.addr === addr && (type === Z_HW || p.len === len));
    if (i < 0) return false;
    for (const t of this.hw[i].triggers) this.setTriggerAll(t.slot, null);
    this.hw.splice(i, 1);
    return true;
  }

  monitor(cmd: string): string | null {
    const core = this.m.core;
    if (cmd === 'help') {
      return [
        'monitor instret        instructions the guest has retired',
        'monitor history        how far back reverse execution can go (deterministic runs)',
        `monitor triggers       the ${MAX_TRIGGERS} hardware triggers (hbreak, watch, rwatch, awatch): who holds each`,
      ].join('\n');
    }
    if (cmd === 'instret') return `${core.instret}\n`;
    if (cmd === 'triggers') return this.describeTriggers(core);
    if (cmd === 'history') {
      const h = this.history;
      if (!h) return 'no reverse execution: start the VM with --deterministic\n';
      return `checkpoints: ${h.count} every ${this.every} instructions, oldest at ${h.oldest ?? '-'}; ` +
        `reverse execution reaches back to instruction ${h.oldest ?? '-'} (now ${core.instret}); ` +
        `memory held: ${(h.bytes / 1048576).toFixed(1)} MiB\n`;
    }
    return null;
  }
}
