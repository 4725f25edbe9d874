// Host-side handle on the wasm CPU core: creates the linear memory that holds
// hart state and guest RAM, instantiates the core with its imports, and offers
// typed access to registers. No Node APIs: the wasm bytes come from the caller.

import {
  DEBUG_BP_MAX, STATE, X_OFF, F_OFF, FFLAGS_OFF, FRM_OFF, RAM_HOST, MMIO_FAULT_OFF, TRAP_COUNTS_OFF, TRAP_COUNTS_INT_OFF,
  WALK_COUNTS_OFF, LOOKUP_COUNTS_OFF, DIRTY_PAGE, CODE_PAGE, PAGE_GEN, SYS_COUNTS_OFF, SYS_COUNTS_N, HART_STRIDE, HART_AREAS_MAX,
} from './layout.js';
import { Jit, TABLE_INITIAL, type JitCoreExports } from '../jit/jit.js';
import { setOrderingFences as setTranslatorFences } from '../jit/translate.js';

export interface CoreImports {
  mmioRead(addr: number, size: number): number;
  mmioWrite(addr: number, size: number, value: number): void;
  ecall(): void;
  /** The translation cache was dropped: a good moment for the host to collect the old modules. */
  jitFlushed?(): void;
  /**
   * The host's clock now in timebase ticks, on the origin of the ticks given to
   * setTime (realtime runs): the guest's time reads take it. Without it the guest
   * sees the time of the slice's start.
   */
  hostTime?(): number;
}

const NO_HOST_TIME = () => -1;

interface CoreExports {
  reset(ram: bigint, hartId: bigint, entry: bigint): void;
  run(budget: number): number;
  requestExit(): void;
  setIrqLine(bit: number, level: number): void;
  getPc(): bigint;
  setPc(v: bigint): void;
  getPriv(): number;
  setPriv(p: number): void;
  getInstret(): bigint;
  setTime(t: bigint): void;
  getTime(): bigint;
  setDeterministic(on: number): void;
  addTimeSkew(t: bigint): void;
  setEcallHookMask(m: number): void;
  nextTimerDeadline(): bigint;
  hostReadCsr(csr: number): bigint;
  hostWriteCsr(csr: number, v: bigint): void;
  flushTlb(): void;
  flushTlbRange(start: bigint, size: bigint): void;
  dirtyLogRestart(): void;
  setJitEnabled(on: number): void;
  setOrderingFences(on: number): void;
  getJitInstructions(): bigint;
  jitInvalidateRange(off: bigint, len: bigint): void;
  bpSet(i: number, va: bigint): void;
  bpGet(i: number): bigint;
  bpStepOver(): void;
  trigSet(i: number, kinds: number, address: bigint, napot: number): void;
  trigRead(i: number, which: number): bigint;
  trigLastHit(): number;
  trigLastAccess(which: number): bigint;
  trigLegal(tdata1: bigint): number;
  getTrapsFromUser(): bigint;
  cpuStateFieldCount(): number;
  cpuStateGet(i: number): bigint;
  cpuStateSet(i: number, v: bigint): void;
  cpuStateRestored(): void;
  /** The 32-bit expansion of a 16-bit encoding (0: illegal), cached in RVC_TABLE on first use. */
  rvcExpand(half: number): number;
  // SMP (src/cpu/harts.ts); hart arguments are indices 0..count-1, booleans are 0/1.
  hartSetCount(n: number): void;
  hartCurrent(): number;
  hartSwitch(h: number): void;
  hartSaveTo(h: number): void;
  hartFieldGet(h: number, i: number): bigint;
  hartFieldSet(h: number, i: number, v: bigint): void;
  hartMipBits(h: number, sw: number, bits: bigint, on: number): void;
  hartWakeable(h: number): number;
  hartDeadline(h: number): bigint;
  hartRegGet(h: number, r: number): bigint;
  hartRegSet(h: number, r: number, v: bigint): void;
  /** A hart thread takes hart h over from its saved context (phase 2). */
  hartAdopt(h: number): void;
  /** Drop every link between translated blocks of this instance. */
  hartUnlinkAll(): void;
  hartFenceI(): void;
  /** Harts run on threads of their own: code protection reaches every hart area's store TLB. */
  setHartThreads(on: number): void;
}

export const EXIT_BUDGET = 0;
export const EXIT_WFI = 1;
export const EXIT_HOST = 2;
/** PAUSE executed with several harts (the machine's HartSet runs the next hart). */
export const EXIT_YIELD = 5;
/** run() stopped with pc on a breakpoint, before executing it (see setBreakpoint). */
export const EXIT_BREAKPOINT = 4;
/** How many pc breakpoints the core holds. */
export const MAX_BREAKPOINTS = DEBUG_BP_MAX;
const NO_BREAKPOINT = 0xffffffffffffffffn;
/** How many Sdtrig triggers the core has (the guest sees them too). */
export const MAX_TRIGGERS = 4;

/** An access a host trigger stopped (see CpuCore.lastTriggerAccess). */
export interface TriggerAccess {
  addr: bigint;
  size: number;
  execute: boolean;
  store: boolean;
  load: boolean;
}

/** What a host trigger watches: instruction fetch, load, store (any combination). */
export interface TriggerSpec {
  execute?: boolean;
  load?: boolean;
  store?: boolean;
  /** First byte watched. */
  address: bigint;
  /** Bytes watched from `address`: 1 (default), or a power of two with `address` aligned to it. */
  length?: bigint;
}

/**
 * The core's system-path event counters (SYS_COUNTS_OFF), in the order of the
 * CNT_* indices of src/cpu/counters.ts, which says what each counts.
 */
export const SYS_COUNTER_NAMES = [
  'dispatch', 'headMiss', 'relink', 'chainTrap', 'chainBreak',
  'unlinkFlush', 'unlinkCode', 'unlinkPage', 'unlinkSuper', 'unlinkUser',
  'fencePage', 'fenceAsid', 'fenceAll', 'fencePageFull', 'satp', 'satpChange',
  'codeProtect', 'codeRetire', 'jitInterp', 'trapEntry', 'xret', 'unlinkPageUser', 'jitAmo', 'jitCsr', 'jitSystem', 'jitOnward',
] as const;
export type SysCounters = Record<(typeof SYS_COUNTER_NAMES)[number], bigint>;

/** Slack after guest RAM so an instruction fetch at the very end of RAM stays in bounds. */
const RAM_SLACK = 0x10000;
const WASM_PAGE = 0x10000;

// The lib in tsconfig has no DOM/wasm typings; describe the few pieces used.
declare const WebAssembly: {
  Memory: new (d: { initial: number; maximum?: number; shared?: boolean }) => CoreMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (m: object, imports: object) => { exports: Record<string, unknown> };
  Table: new (d: { element: 'anyfunc'; initial: number }) => { set(i: number, f: unknown): void; grow(delta: number): number; readonly length: number };
};

/** A core's linear memory (a shared WebAssembly.Memory). */
export interface CoreMemory {
  readonly buffer: ArrayBuffer;
}

/**
 * SMP phase 2: a core instance for one hart of several, each on its own
 * thread. `memory` is the first instance's (`CpuCore.memory`, passed to the
 * thread); `hart` picks the hart area (layout.ts HART_STRIDE) this instance's
 * state block, TLB and translation tables live in.
 */
export interface CoreShare {
  memory: CoreMemory;
  hart: number;
}

/**
 * A core instantiated before its machine exists (a warm worker makes one while
 * it waits): the linear memory for `ramSize` of guest RAM and the instance,
 * whose host imports forward to whatever machine takes it later. Making them
 * is most of building a machine (V8 reserves and maps the memory, then
 * instantiates); a VM that finds one ready skips that. Used once, untouched
 * until then, so its memory is still all zeros as a new core's must be.
 */
export class PreparedCore {
  readonly mem: { buffer: ArrayBuffer };
  readonly table: { set(i: number, f: unknown): void; grow(delta: number): number; readonly length: number };
  readonly exports: Record<string, unknown>;
  private target: CoreImports | null = null;

  constructor(wasmBytes: Uint8Array, readonly ramSize: number) {
    const pages = Math.ceil((RAM_HOST + ramSize + RAM_SLACK) / WASM_PAGE);
    this.mem = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
    this.table = new WebAssembly.Table({ element: 'anyfunc', initial: TABLE_INITIAL });
    const to = () => {
      if (!this.target) throw new Error('prepared core used before a machine took it');
      return this.target;
    };
    this.exports = new WebAssembly.Instance(new WebAssembly.Module(wasmBytes), {
      env: {
        memory: this.mem,
        table: this.table,
        abort: () => {
          throw new Error('cpu core aborted');
        },
        mmioRead: (a: number, size: number) => to().mmioRead(a, size),
        mmioWrite: (a: number, size: number, v: number) => to().mmioWrite(a, size, v),
        ecall: () => to().ecall(),
        hostTime: () => (this.target?.hostTime ?? NO_HOST_TIME)(),
      },
    }).exports;
  }

  /** Hand the core to its machine (once). */
  bind(imports: CoreImports): void {
    if (this.target) throw new Error('a prepared core serves one machine');
    this.target = imports;
  }
}

/** What a core is made from: the module's bytes, or a core prepared ahead for the same RAM size. */
export type CoreSource = Uint8Array | PreparedCore;

export class CpuCore {
  readonly ram: Uint8Array;
  readonly ramSize: number;
  private readonly mem: CoreMemory;
  /** This instance's state block (STATE in hart 0's area, or the shared hart's). */
  private readonly st: number;
  private readonly x: BigUint64Array;
  private readonly f: BigUint64Array;
  private readonly u32: Uint32Array;
  readonly exports: CoreExports;
  /** Translator; it only runs when enabled with setJitEnabled(). */
  readonly jit: Jit;
  /** Per guest page: 1 once written since the last dirtyLogRestart (DIRTY_PAGE). */
  private readonly dirtyMap: Uint8Array;
  private readonly codePages: Uint8Array;
  /** The generation of each guest page (bumped when its translations are retired). */
  private readonly pageGens: Int32Array;

  constructor(source: CoreSource, ramSize: number, imports: CoreImports, share?: CoreShare) {
    this.ramSize = ramSize;
    const pages = Math.ceil((RAM_HOST + ramSize + RAM_SLACK) / WASM_PAGE);
    const hart = share?.hart ?? 0;
    if (!Number.isInteger(hart) || hart < 0 || hart >= HART_AREAS_MAX) throw new Error(`hart area ${hart} is outside 0..${HART_AREAS_MAX - 1}`);
    if (share && share.memory.buffer.byteLength < pages * WASM_PAGE) throw new Error('the shared memory is smaller than this core needs');
    if (share && source instanceof PreparedCore) throw new Error('a prepared core has a memory of its own: it cannot join another core\'s');
    let table: PreparedCore['table'];
    let exports: Record<string, unknown>;
    if (source instanceof PreparedCore) {
      if (source.ramSize !== ramSize) throw new Error(`the prepared core has ${source.ramSize} bytes of RAM, not ${ramSize}`);
      source.bind(imports);
      this.mem = source.mem;
      table = source.table;
      exports = source.exports;
    } else {
      // A new memory for every core: the core's first reset relies on it being all zeros
      // (an instance sharing another's memory has its own hart area, untouched so far).
      // Shared (a SharedArrayBuffer), because the core is built with wasm threads so
      // that harts can run on several host threads over the same guest RAM.
      this.mem = share?.memory ?? new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      const mod = new WebAssembly.Module(source);
      table = new WebAssembly.Table({ element: 'anyfunc', initial: TABLE_INITIAL });
      exports = new WebAssembly.Instance(mod, {
        env: {
          memory: this.mem,
          table,
          abort: () => {
            throw new Error('cpu core aborted');
          },
          mmioRead: imports.mmioRead,
          mmioWrite: imports.mmioWrite,
          ecall: imports.ecall,
          hostTime: imports.hostTime ?? NO_HOST_TIME,
        },
      }).exports;
    }
    this.st = STATE + hart * HART_STRIDE;
    this.exports = exports as unknown as CoreExports;
    const ex = exports as unknown as { setHartArea(h: number): number };
    if (hart !== 0 && ex.setHartArea(hart) !== 1) throw new Error(`the core has no area for hart ${hart}`);
    this.jit = new Jit(exports as unknown as JitCoreExports, this.mem, table, imports.jitFlushed, hart * HART_STRIDE);
    const buf = this.mem.buffer;
    this.ram = new Uint8Array(buf, RAM_HOST, ramSize);
    this.x = new BigUint64Array(buf, this.st + X_OFF, 32);
    this.f = new BigUint64Array(buf, this.st + F_OFF, 32);
    this.u32 = new Uint32Array(buf);
    const pageCount = Math.floor(ramSize / 4096);
    this.dirtyMap = new Uint8Array(buf, DIRTY_PAGE, pageCount);
    this.codePages = new Uint8Array(buf, CODE_PAGE, pageCount);
    this.pageGens = new Int32Array(buf, PAGE_GEN, pageCount);
  }

  /** Trap counts by cause (exceptions, interrupts) and slow-path translations by kind. */
  counters(): { exceptions: bigint[]; interrupts: bigint[]; walks: { fetch: bigint; load: bigint; store: bigint }; lookups: { load: bigint; store: bigint } } {
    const causes = TRAP_COUNTS_INT_OFF / 8;
    const v = new BigUint64Array(this.mem.buffer, this.st + TRAP_COUNTS_OFF, 2 * causes);
    const w = new BigUint64Array(this.mem.buffer, this.st + WALK_COUNTS_OFF, 3);
    const l = new BigUint64Array(this.mem.buffer, this.st + LOOKUP_COUNTS_OFF, 2);
    return {
      exceptions: [...v.subarray(0, causes)],
      interrupts: [...v.subarray(causes, 2 * causes)],
      walks: { fetch: w[0], load: w[1], store: w[2] },
      lookups: { load: l[0], store: l[1] },
    };
  }

  private irqView: Uint32Array | null = null;

  /** System-path events so far (see SYS_COUNTER_NAMES). */
  sysCounters(): SysCounters {
    const v = new BigUint64Array(this.mem.buffer, this.st + SYS_COUNTS_OFF, SYS_COUNTS_N);
    const out = {} as SysCounters;
    SYS_COUNTER_NAMES.forEach((n, i) => (out[n] = v[i]));
    return out;
  }

  /** Interrupts taken so far, all causes. */
  interruptsTaken(): bigint {
    // Read after every slice of a hart thread (per-hart statistics): keep the view, and add
    // the u64 counters as halves in Numbers (exact below 2^53). Iterating a BigUint64Array and
    // adding BigInts was 10% of a hart thread's host time at 20,000-instruction slices.
    if (this.irqView?.buffer !== this.mem.buffer) this.irqView = new Uint32Array(this.mem.buffer, this.st + TRAP_COUNTS_OFF + TRAP_COUNTS_INT_OFF, TRAP_COUNTS_INT_OFF / 4);
    const v = this.irqView;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < v.length; i += 2) {
      lo += v[i];
      hi += v[i + 1];
    }
    return BigInt(lo) + (BigInt(hi) << 32n);
  }

  /** Traps taken from U-mode so far: a program ran (a stall watch sees from it that the guest is alive). */
  trapsFromUser(): bigint {
    return BigInt.asUintN(64, this.exports.getTrapsFromUser());
  }

  /** Run up to `budget` instructions, then translate what became hot. */
  run(budget: number): number {
    const r = this.exports.run(budget);
    this.jit.drain();
    return r;
  }

  /**
   * Make the guest's FENCEs that order stores before loads real barriers, in
   * the interpreter and in code translated from now on (in this thread): needed
   * when harts run on several threads, a cost otherwise.
   */
  setOrderingFences(on: boolean): void {
    this.exports.setOrderingFences(on ? 1 : 0);
    setTranslatorFences(on);
  }

  setJitEnabled(on: boolean): void {
    this.exports.setJitEnabled(on ? 1 : 0);
  }

  /** Harts on threads of their own: told when a host write retired translated code, so each drops its links. */
  onCodeRetired: (() => void) | null = null;

  /** The host wrote guest RAM directly (device DMA): mark the pages dirty, drop translations of them. */
  noteRamWrite(offset: number, length: number): void {
    if (length <= 0) return;
    const first = Math.floor(offset / 4096);
    const end = Math.min(this.dirtyMap.length, Math.floor((offset + length - 1) / 4096) + 1);
    this.dirtyMap.fill(1, first, end);
    if (this.onCodeRetired) {
      // Harts on threads of their own: this instance's hart area (area 0) is hart 0's
      // while its thread runs, so the core's retire, which also bumps the link epoch
      // and empties the jump cache of its area, would race with hart 0's translated
      // code reading them (a torn jump-cache entry is a call through a bad table
      // index). Only the shared part here: the page's generation (every hart's block
      // lookup checks it) and its code byte; each hart drops its own links when told.
      let retired = false;
      for (let p = first; p < end; p++) {
        if (Atomics.load(this.codePages, p) === 0) continue;
        Atomics.store(this.codePages, p, 0);
        Atomics.add(this.pageGens, p, 1);
        retired = true;
      }
      if (retired) this.onCodeRetired();
      return;
    }
    for (let p = first; p < end; p++) {
      if (this.codePages[p] !== 0) {
        this.exports.jitInvalidateRange(BigInt(offset), BigInt(length));
        return;
      }
    }
  }

  /** Pages written since the last takeDirtyPages(). */
  dirtyPageCount(): number {
    let n = 0;
    const m = this.dirtyMap;
    for (let i = 0; i < m.length; i++) n += m[i];
    return n;
  }

  /**
   * Pages written since the last call (a copy of the dirty map, one byte per
   * page), and a new round starts: the map is cleared and the store TLB
   * flushed, so the next store to any page is seen again. Call between slices.
   */
  takeDirtyPages(): Uint8Array {
    const out = this.dirtyMap.slice();
    this.exports.dirtyLogRestart();
    return out;
  }

  /**
   * Set breakpoint `slot` (0..MAX_BREAKPOINTS-1) at guest virtual address `va`
   * (null clears it). run() then returns EXIT_BREAKPOINT with pc on it before
   * executing it, in any privilege mode. Fetches on its page take the slow
   * path and are never translated, so keep breakpoints on cold code.
   */
  setBreakpoint(slot: number, va: bigint | null): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_BREAKPOINTS) throw new RangeError(`breakpoint slot ${slot} out of range`);
    if (va !== null && (va < 0n || va >= NO_BREAKPOINT || (va & 1n) !== 0n)) throw new RangeError(`bad breakpoint address ${va}`);
    this.exports.bpSet(slot, va ?? NO_BREAKPOINT);
    // Drop fetch TLB entries (and with them the links between translated blocks) for the page.
    this.exports.flushTlb();
  }

  /** The address of breakpoint `slot`, or null. */
  breakpoint(slot: number): bigint | null {
    const v = BigInt.asUintN(64, this.exports.bpGet(slot)); // wasm hands i64 over signed
    return v === NO_BREAKPOINT ? null : v;
  }

  /** After EXIT_BREAKPOINT: let the next run() execute the instruction at pc once. */
  stepOverBreakpoint(): void {
    this.exports.bpStepOver();
  }

  /**
   * Use Sdtrig trigger `slot` (0..MAX_TRIGGERS-1) as a debugger's hardware
   * breakpoint or watchpoint (null frees it). A hit makes run() return
   * EXIT_BREAKPOINT before the instruction or access takes effect, in any
   * privilege mode; lastTriggerHit() then names the slot and
   * stepOverBreakpoint() resumes. The guest sees the trigger (dmode = 1,
   * action 1) but cannot change it. Watched pages take the slow path.
   */
  setTrigger(slot: number, spec: TriggerSpec | null): void {
    if (!Number.isInteger(slot) || slot < 0 || slot >= MAX_TRIGGERS) throw new RangeError(`trigger slot ${slot} out of range`);
    if (spec === null) {
      this.exports.trigSet(slot, 0, 0n, 0);
      return;
    }
    const kinds = (spec.execute ? 4 : 0) | (spec.store ? 2 : 0) | (spec.load ? 1 : 0);
    if (kinds === 0) throw new RangeError('a trigger must watch execute, load or store');
    const len = spec.length ?? 1n;
    const a = spec.address;
    if (a < 0n || a > 0xffff_ffff_ffff_ffffn) throw new RangeError(`bad trigger address ${a}`);
    if (len === 1n) {
      this.exports.trigSet(slot, kinds, a, 0);
      return;
    }
    // NAPOT: aligned power of two; tdata2 is the base with (log2(len) - 1) trailing ones.
    if (len < 2n || (len & (len - 1n)) !== 0n || len > 1n << 63n || (a & (len - 1n)) !== 0n) {
      throw new RangeError(`trigger length ${len} must be a power of two with the address aligned to it`);
    }
    this.exports.trigSet(slot, kinds, a | ((len >> 1n) - 1n), 1);
  }

  /** tdata1 and tdata2 of trigger `slot` as the guest reads them. */
  trigger(slot: number): { tdata1: bigint; tdata2: bigint } {
    return {
      tdata1: BigInt.asUintN(64, this.exports.trigRead(slot, 1)),
      tdata2: BigInt.asUintN(64, this.exports.trigRead(slot, 2)),
    };
  }

  /** After EXIT_BREAKPOINT: the host trigger that stopped the run, or null when it was a pc breakpoint. */
  lastTriggerHit(): number | null {
    const i = this.exports.trigLastHit();
    return i < 0 ? null : i;
  }

  /**
   * After EXIT_BREAKPOINT by a host trigger: the access it stopped, its first
   * byte and size, and what it was (an AMO is both a load and a store; a fetch
   * has size 1). Null when a pc breakpoint stopped the run.
   */
  lastTriggerAccess(): TriggerAccess | null {
    if (this.exports.trigLastHit() < 0) return null;
    const kind = Number(this.exports.trigLastAccess(2));
    return {
      addr: BigInt.asUintN(64, this.exports.trigLastAccess(0)),
      size: Number(this.exports.trigLastAccess(1)),
      execute: (kind & 4) !== 0,
      store: (kind & 2) !== 0,
      load: (kind & 1) !== 0,
    };
  }

  /**
   * Play firmware for a guest started directly in S- or U-mode: PMP entry 15
   * (the lowest priority) as NAPOT over all memory with read, write and execute,
   * unlocked, as OpenSBI leaves its last entry. Without an entry S/U accesses fail.
   */
  grantAllMemory(): void {
    this.writeCsr(0x3bf, (1n << 54n) - 1n); // pmpaddr15: every address
    const cfg2 = this.readCsr(0x3a2) & ~(0xffn << 56n);
    this.writeCsr(0x3a2, cfg2 | (0x1fn << 56n)); // pmp15cfg: NAPOT, X, W, R
  }

  reset(entry: bigint, hartId = 0): void {
    this.exports.reset(BigInt(this.ramSize), BigInt(hartId), entry);
  }

  getX(r: number): bigint {
    return this.x[r];
  }
  setX(r: number, v: bigint): void {
    if (r !== 0) this.x[r] = BigInt.asUintN(64, v);
  }
  getF(r: number): bigint {
    return this.f[r];
  }
  setF(r: number, v: bigint): void {
    this.f[r] = BigInt.asUintN(64, v);
  }

  /** fflags and frm (they live in linear memory next to the registers). */
  get fpControl(): { fflags: number; frm: number } {
    return { fflags: this.u32[(this.st + FFLAGS_OFF) >>> 2], frm: this.u32[(this.st + FRM_OFF) >>> 2] };
  }
  set fpControl(v: { fflags: number; frm: number }) {
    this.u32[(this.st + FFLAGS_OFF) >>> 2] = v.fflags & 0x1f;
    this.u32[(this.st + FRM_OFF) >>> 2] = v.frm & 7;
  }

  /** The WebAssembly.Memory itself, for another hart's instance (CoreShare). */
  get memory(): CoreMemory {
    return this.mem;
  }

  /** The WebAssembly.Memory's buffer (guest RAM is `ram`, at RAM_HOST inside it). */
  get memoryBuffer(): ArrayBuffer {
    return this.mem.buffer;
  }

  /** Mark the MMIO access in progress as hitting no device (the core raises an access fault). */
  signalMmioFault(): void {
    this.u32[(this.st + MMIO_FAULT_OFF) >>> 2] = 1;
  }

  get pc(): bigint {
    return this.exports.getPc();
  }
  set pc(v: bigint) {
    this.exports.setPc(v);
  }
  get priv(): number {
    return this.exports.getPriv();
  }
  set priv(p: number) {
    this.exports.setPriv(p);
  }
  get instret(): bigint {
    return this.exports.getInstret();
  }
  readCsr(csr: number): bigint {
    return this.exports.hostReadCsr(csr);
  }
  writeCsr(csr: number, v: bigint): void {
    this.exports.hostWriteCsr(csr, BigInt.asUintN(64, v));
  }
}
