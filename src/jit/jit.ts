// Translator policy and cache management: between slices, drain the core's
// queue of hot block heads, translate them into one wasm module, put the
// functions in the shared table and tell the core where they are. When the
// table is full, every translation is dropped and the cache starts over.

import { buildModule, I32, I64, OP, type FuncBody, type ImportFunc } from './wasm-builder.js';
import { translateBlock, exitFunctionBody, slowPathBodies, SLOW_TYPES, BLOCK_LOCALS, EXIT_LOCALS, planRegion, translateRegion, regionEntryBody, HART_RELATIVE, RELATIVE_GLOBALS, type StateBase } from './translate.js';
import type { WarmStart, CachedBatch, CachedBlock, CachedLink } from './warm-start.js';
import { newCodeSize, addCodeSize, type CodeSize } from './code-size.js';
import { STATE, JIT_QUEUE_OFF, JIT_URGENT_OFF, JIT_LINKS, JIT_LINKS_MAX, JIT_EPOCH_OFF } from '../machine/layout.generated.js';
/**
 * A queued head is planned as a region (translateRegion) only if it ran this
 * often between being queued and the drain: a region costs several blocks'
 * translating and compiling, which only a loop that keeps running repays. At
 * 256 the Debian userland job (bench:userland, many short-lived processes)
 * took 30.3-30.7 s against 28.1 s without regions; at 4,096, 27.3 s, and the
 * CPU programs' hot loops still became regions.
 */
const REGION_MIN_RUNS = 4096;
/**
 * In a drain for an urgent loop (a queued head still looping, run 1,024 times
 * more: src/cpu/jit.ts), heads that ran this often qualify, the loop's own
 * head among them (the drain comes too early for the count above).
 */
const URGENT_REGION_RUNS = 1024;
/** Translate when this many heads are queued, or after DRAIN_SLICES slices: fewer, larger modules cost less to instantiate. */
const DRAIN_BATCH = 48;
/**
 * Live modules before everything is dropped and translated afresh. Each module
 * holds its own code space in V8 (memory mappings), so a long-running guest that
 * keeps meeting new code must not accumulate them without bound.
 */
const MAX_LIVE_MODULES = 1024;
/**
 * Queued heads wait up to this many slices for more to join them (hart threads'
 * slices are sized to about 0.5 ms, so a module gathers about as many blocks
 * there as on the worker).
 */
const DRAIN_SLICES = 4;
/**
 * On a hart thread queued heads also wait for this many guest instructions
 * (Jit.drainInsns): its slices end early and often (device accesses, fences,
 * WFI; about 4,000 a second in a 2-hart boot), so four slices made modules of
 * about 14 blocks there against 40 on the worker, and a module's fixed costs
 * (compile, instantiate, install) made a hart's share of the boot's translating
 * 1.9 s against 1.1 s on the worker.
 */
export const HART_DRAIN_INSNS = 4_000_000n;
// An idle guest (see Jit.idle) translates only full batches: its rarely run
// code (timer ticks, housekeeping) gets hot one block at a time for minutes,
// and a module per few slices cost an idle VM more host time than its guest.
/**
 * Executions before an idle guest's block head is queued (64 otherwise, see
 * src/cpu/jit.ts). After the idle drop (src/vm/worker.ts) the idle loop's code
 * came back one block at a time: a 4-hart VM on hart threads made about 85
 * translations a second in its first minute at the prompt, each hart for
 * itself, which was most of its host time. A translation costs about 0.15 ms,
 * the time to interpret several thousand instructions, so a block run a few
 * times a second does not earn it back for minutes. A busy second brings the
 * usual threshold back, and code that runs often still crosses this one in
 * well under a second.
 */
const IDLE_HOT_THRESHOLD = 1024;
/** Table slots below this are left to the core module. */
export const FIRST_SLOT = 16;
/** Translation slots (core table and chain table) before a flush. */
export const TABLE_SIZE = 32768;
/**
 * Slots the tables start with; they grow (doubling) as translations arrive. A
 * table of TABLE_SIZE made up front cost 10 to 25 ms per VM start on the test
 * host, and an idle guest never needs most of it.
 */
export const TABLE_INITIAL = 1024;

/** A compiled WebAssembly.Module (opaque here; hart threads pass them to each other). */
export type WasmModule = object;

/**
 * A module of HART_RELATIVE translations one hart thread made, offered to the
 * VM's other hart threads (Jit.sharing): each puts it back at slots and link
 * slots of its own when one of its heads gets hot there, if the guest bytes
 * its blocks were translated from are still the same. V8 shares a module's
 * compiled code between the threads it is posted to, so a hart that takes it
 * neither translates nor compiles that code again.
 */
export interface SharedBatch {
  module: WasmModule;
  /** Function i is block i: head, host address of its code, instructions (0: not translated), the guest bytes it read from `lo`. */
  blocks: { va: bigint; hpc: number; insns: number; lo: number; bytes: Uint8Array }[];
  /** Its link slots in allocation order (the module's link i is the taker's first link slot + i). */
  links: CachedLink[];
  /** The entry functions of regions' other blocks (export xI), at the table slots after the blocks'. */
  extras: { va: bigint; hpc: number; insns: number }[];
}

/** How a hart thread's Jit meets the other hart threads of its VM (set by the host). */
export interface JitSharing {
  send(b: SharedBatch): void;
  /** The batches other harts sent since the last call. */
  receive(): SharedBatch[];
}

/**
 * Heads of batches offered by other harts that are kept waiting to be taken
 * (a boot offers about 12,800); beyond this the offers are dropped (code that
 * runs again is translated as usual), so a hart that stays in other code does
 * not keep other harts' modules alive without bound.
 */
const MAX_OFFERED_HEADS = 1 << 14;

interface WasmTable {
  set(i: number, f: unknown): void;
  grow(delta: number): number;
  readonly length: number;
}
declare const performance: { now(): number };
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => WasmModule;
  Instance: new (m: WasmModule, imports: object) => { exports: Record<string, unknown> };
  Table: new (d: { initial: number; element: 'anyfunc' }) => WasmTable;
};

export interface JitCoreExports {
  jitQueueLength(): number;
  jitHeadRuns(hpc: number): number;
  getInstret(): bigint;
  jitQueueClear(): void;
  jitInstall(va: bigint, hpc: number, fn: number, len: number): void;
  jitFlushAll(): void;
  jitPrimeHead(hpc: number, hot: boolean): void;
  jitSetHotThreshold(n: number): void;
  rvcExpand(half: number): number;
  [name: string]: unknown;
}

const HELPERS = ['jitLoad', 'jitStore', 'jitInterp', 'jitMulh', 'jitMulhsu', 'jitMulhu', 'jitDiv', 'jitDivu',
  'jitRem', 'jitRemu', 'jitDivw', 'jitDivuw', 'jitRemw', 'jitRemuw', 'jitFp', 'jitLookup', 'jitAmo', 'jitCsr', 'jitSystem',
  'jitLoadX', 'jitStoreX'] as const;
/** Imported by every block module after the core's helpers: the chain trampoline. */
const CHAIN_IMPORT = 'jitChain';
/** Guest virtual addresses from here up are the upper half, where Linux keeps its kernel. */
const KERNEL_HALF = 1n << 63n;
/**
 * Body of the module function at the position of a queued head that could not
 * be translated: it only keeps the function indices of the others equal to
 * their queue positions and is never installed in the table.
 */
const UNTRANSLATED_BODY = new Uint8Array([OP.i32_const, 0]);

export interface JitStats {
  /** Bytes of wasm generated (all modules, since start). */
  bytes: number;
  translations: number;
  modules: number;
  flushes: number;
  rejected: number;
  /** Host time spent translating, compiling and installing (drains, and cached batches put back), ms. */
  ms: number;
  /** Bytes of block bodies by kind of guest instruction (since start). */
  codeSize: CodeSize;
  /** Regions made (translateRegion), and the blocks in them (also counted in translations). */
  regions: number;
  regionBlocks: number;
  /** Batches other harts translated, put back here (Jit.sharing), and their blocks. */
  shared: number;
  sharedBlocks: number;
}

export class Jit {
  private nextSlot = FIRST_SLOT;
  private nextLink = 0;
  /** A drain ran out of link slots: flush before the next one. */
  private linksFull = false;
  private liveModules = 0;
  private slicesWaiting = 0;
  /** The instruction count when the heads now waiting began to wait (null: none wait). */
  private waitingSince: bigint | null = null;
  /** Besides DRAIN_SLICES slices, queued heads wait this many instructions (0: none; see HART_DRAIN_INSNS). */
  drainInsns = 0n;
  private idleNow = false;
  /**
   * Set by the owner while the guest idles: translate only full batches (or
   * urgent loops), and only heads that ran IDLE_HOT_THRESHOLD times.
   */
  get idle(): boolean {
    return this.idleNow;
  }
  set idle(on: boolean) {
    if (on === this.idleNow) return;
    this.idleNow = on;
    this.ex.jitSetHotThreshold(on ? IDLE_HOT_THRESHOLD : 0);
  }
  /**
   * Set by the owner for a moment after a restore: translate nothing (the heads
   * stay queued). A restored guest answering its first command ran a few
   * hundred thousand instructions, and translating the first of them (one
   * module, before the first translations of this thread had warmed up) took
   * longer than interpreting all of them.
   */
  hold = false;
  private imports: Record<string, unknown>;
  /**
   * The table translated blocks chain through. V8 (11.x) gives every instance that
   * imports a table its own copy of the table's dispatch entries and keeps the
   * instance alive as long as the table lives. So block modules import no table:
   * they tail-call a one-function trampoline module that does the
   * return_call_indirect, and only the trampoline imports the table. Each
   * generation of translations (until a flush) gets a fresh table and trampoline,
   * dropped with them. The core's table holds the same functions at the same
   * slots for the dispatcher.
   */
  private chainTable: WasmTable;
  readonly stats: JitStats = { bytes: 0, translations: 0, modules: 0, flushes: 0, rejected: 0, ms: 0, codeSize: newCodeSize(), regions: 0, regionBlocks: 0, shared: 0, sharedBlocks: 0 };
  /** The translation cache kept between runs, when the host keeps one (see warm-start.ts). */
  warm: WarmStart | null = null;
  /** Queued heads taken from the core's queue early (to put cached batches back) and not translated yet. */
  private pending: { va: bigint; hpc: number }[] = [];
  /**
   * Compiles and instantiates each new module of translations when the host sets
   * it (the worker uses it to pick V8's tier-up budget for the module, see
   * src/vm/tier-budget.ts); `kernel` says most of the module's blocks are
   * supervisor code (upper half of the address space). It must call `compile`.
   */
  compileWith: (<T>(kernel: boolean, compile: () => T) => T) | null = null;
  /**
   * Which heads whose page holds a loop of several blocks they reach are
   * translated as a region (translateRegion): those of user code (the default),
   * all, or none. Kernel code is left out by default: in boots with and
   * without its regions the time did not tell them apart, and its regions
   * doubled the translating (measured 7 December 2026, README).
   */
  regions: 'user' | 'all' | 'off' = 'user';
  /**
   * Set by a hart thread of a VM with several (before the first drain): its
   * translations are HART_RELATIVE, offered to the other harts, and theirs are
   * put back here instead of translating the same code again.
   */
  sharing: JitSharing | null = null;
  /** Offered batches not taken yet, by the key (headKey) of each head. */
  private offers = new Map<string, SharedBatch>();
  /** Sees each new module's bytes and its blocks' guest pcs (the worker's TSVISOR_JIT_DUMP, for reading translated code). */
  onModule: ((bytes: Uint8Array, vas: bigint[]) => void) | null = null;

  constructor(
    private readonly ex: JitCoreExports,
    private readonly memory: { buffer: ArrayBuffer },
    private readonly table: WasmTable,
    /**
     * Called after a flush. V8 frees a dropped module's code space only when its
     * garbage collector runs, and a JS heap with little pressure may not run it for
     * a long time: meanwhile the mappings pile up until the process runs out of them.
     * The host can force a collection here.
     */
    private readonly onFlush?: () => void,
    /** Offset of this hart's area (HART_STRIDE * hart; 0 with one thread): its state block, link slots. */
    private readonly hartOff = 0,
  ) {
    this.chainTable = new WebAssembly.Table({ initial: TABLE_INITIAL, element: 'anyfunc' });
    this.imports = this.makeImports();
  }

  private makeImports(): Record<string, unknown> {
    const env: Record<string, unknown> = { memory: this.memory };
    for (const h of HELPERS) env[h] = this.ex[h];
    env[CHAIN_IMPORT] = this.makeTrampoline();
    return { env };
  }

  /** chain(slot) = return_call_indirect chainTable[slot], as a function block modules import. */
  private makeTrampoline(): unknown {
    const code = new Uint8Array([OP.local_get, 0, OP.return_call_indirect, 0, 0]);
    const bytes = buildModule(
      [{ params: [], results: [I32] }, { params: [I32], results: [I32] }],
      [],
      [{ type: 1, locals: [], code, exportName: 'chain' }],
      true,
    );
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory: this.memory, table: this.chainTable } });
    return inst.exports.chain;
  }

  /** Grow both tables (doubling, at most TABLE_SIZE) to hold slots below `end`. */
  private ensureSlots(end: number): void {
    for (const t of [this.table, this.chainTable]) {
      if (t.length >= end) continue;
      let size = t.length;
      while (size < end) size *= 2;
      t.grow(Math.min(size, TABLE_SIZE) - t.length);
    }
  }

  /** Modules holding translations now (each costs host memory: code and V8's metadata). */
  get modulesLive(): number {
    return this.liveModules;
  }

  /**
   * Drop every translation (between slices only), e.g. when the guest has gone
   * idle: boot code that never runs again stops costing host memory, and what
   * the guest runs next is translated again when it gets hot.
   */
  dropAll(): void {
    if (this.liveModules > 0) this.flush();
  }

  /** Drop every translation and link: the table and the link slots start over. */
  private flush(): void {
    this.ex.jitFlushAll();
    // The cached batches' slots are reused from now on.
    this.warm?.stop();
    // Let the old modules go: nothing may reference their functions any more.
    for (let i = FIRST_SLOT; i < this.nextSlot; i++) this.table.set(i, null);
    this.chainTable = new WebAssembly.Table({ initial: TABLE_INITIAL, element: 'anyfunc' });
    this.imports = this.makeImports();
    this.liveModules = 0;
    // (an idle VM drops its translations to give their memory back: other harts' modules too)
    this.offers.clear();
    this.nextSlot = FIRST_SLOT;
    this.nextLink = 0;
    this.linksFull = false;
    this.stats.flushes++;
    this.onFlush?.();
  }

  /** Translate whatever the core queued during the last slice. */
  drain(): void {
    if (this.hold) return;
    this.takeShared();
    const n = this.ex.jitQueueLength();
    // (heads left pending, by a batch put back or one that was not, are translated when due even if nothing new is queued)
    if (n === 0 && this.pending.length === 0) return;
    const urgent = new DataView(this.memory.buffer).getUint32(this.hartOff + STATE + JIT_URGENT_OFF, true) !== 0;
    const waiting = n + this.pending.length;
    let waited = true;
    if (this.drainInsns > 0n) {
      const now = this.ex.getInstret();
      if (this.waitingSince === null || now < this.waitingSince) this.waitingSince = now;
      waited = now - this.waitingSince >= this.drainInsns;
    }
    const due = urgent || waiting >= DRAIN_BATCH || (!this.idle && waited && this.slicesWaiting + 1 >= DRAIN_SLICES);
    // A queued head of a cached batch goes in at once (putting a batch back costs no
    // translation); the other heads wait for a drain that is due, so that what is new
    // still makes modules of the usual size.
    const warm = this.warm?.active ? this.warm : null;
    const cached = !due && (warm !== null || this.offers.size > 0)
      && this.queuedHeads(n).some((h) => warm?.batchOf(h.va, h.hpc) !== undefined || this.offers.has(headKey(h.va, h.hpc)));
    if (!due && !cached) {
      if (!this.idle) this.slicesWaiting++;
      return;
    }
    const t0 = performance.now();
    if (due) {
      new DataView(this.memory.buffer).setUint32(this.hartOff + STATE + JIT_URGENT_OFF, 0, true);
      this.slicesWaiting = 0;
      this.waitingSince = null;
      if (this.nextSlot + waiting > TABLE_SIZE || this.linksFull || this.liveModules >= MAX_LIVE_MODULES) {
        this.flush();
      }
    }
    const heads = [...this.pending, ...this.queuedHeads(n)];
    this.pending = [];
    this.ex.jitQueueClear();
    const unwarmed = this.warm?.active ? this.putBack(heads) : heads;
    const rest = this.offers.size > 0 ? this.putBackShared(unwarmed) : unwarmed;
    if (due) {
      if (rest.length) this.translate(rest, urgent);
    } else {
      this.pending = rest;
    }
    this.stats.ms += performance.now() - t0;
  }

  private queuedHeads(n: number): { va: bigint; hpc: number }[] {
    const dv = new DataView(this.memory.buffer);
    const heads: { va: bigint; hpc: number }[] = [];
    for (let i = 0; i < n; i++) {
      const e = this.hartOff + STATE + JIT_QUEUE_OFF + 16 + i * 16;
      heads.push({ va: dv.getBigUint64(e, true), hpc: dv.getUint32(e + 8, true) });
    }
    return heads;
  }

  /**
   * Use the translation batches kept from an earlier run (before the guest's
   * first instruction): their heads are primed to be queued the first time they
   * run, and their table and link slots are kept free for them; what this run
   * translates is recorded in `warm` for the next.
   */
  startWarm(warm: WarmStart, batches: CachedBatch[]): void {
    // A warm run translates what is new above the cached batches, so only those in
    // the lower half of the table and of the link slots are taken: the upper halves
    // stay for new code (and the file does not creep up run after run).
    const fits = batches.filter((b) => b.slot >= FIRST_SLOT && b.slot + b.blocks.length <= TABLE_SIZE / 2 && b.link + b.links.length <= JIT_LINKS_MAX / 2);
    // Each batch put back is a live module: the largest half of MAX_LIVE_MODULES
    // leaves room for what is new before the module count forces a flush.
    const taken = fits.length > MAX_LIVE_MODULES / 2 ? [...fits].sort((a, b) => b.blocks.length - a.blocks.length).slice(0, MAX_LIVE_MODULES / 2) : fits;
    warm.load(taken, (hpc) => this.ex.jitPrimeHead(hpc, true));
    this.warm = warm;
    this.nextSlot = Math.max(this.nextSlot, warm.slotEnd);
    this.nextLink = Math.max(this.nextLink, warm.linkEnd);
  }

  /**
   * Put back the cached batches of queued heads (each checked against guest RAM);
   * returns the heads still to translate.
   */
  private putBack(heads: { va: bigint; hpc: number }[]): { va: bigint; hpc: number }[] {
    const warm = this.warm!;
    const done = new Set<string>();
    for (const { va, hpc } of heads) {
      const b = warm.batchOf(va, hpc);
      if (!b) continue;
      if (!warm.sameCode(b)) {
        // Not now (this head is translated as usual); maybe when another of its heads gets hot,
        // e.g. once the kernel has patched its text as it had when the batch was made.
        warm.stats.changed++;
        continue;
      }
      warm.take(b);
      let inst: { exports: Record<string, unknown> };
      try {
        if (!warm.claim(b)) throw new Error('overlaps another batch');
        // Compiling validates the module: a damaged one throws.
        inst = new WebAssembly.Instance(new WebAssembly.Module(b.module), this.imports);
        b.blocks.forEach((k, i) => {
          if (k.insns > 0 && typeof inst.exports[`b${i}`] !== 'function') throw new Error('missing export');
        });
      } catch {
        warm.stats.invalid++;
        continue;
      }
      const dv = new DataView(this.memory.buffer);
      b.links.forEach((l, i) => this.initLink(dv, this.hartOff + JIT_LINKS + 32 * (b.link + i), l));
      this.stats.modules++;
      this.liveModules++;
      this.ensureSlots(b.slot + b.blocks.length);
      b.blocks.forEach((k, i) => {
        if (k.insns === 0) return;
        const slot = b.slot + i;
        const hpcK = warm.hostAddr(k.off);
        this.place(slot, inst.exports[`b${i}`], k.va, hpcK, k.insns);
        done.add(headKey(k.va, hpcK));
        warm.stats.usedBlocks++;
      });
      warm.stats.used++;
      warm.record(b);
    }
    return done.size ? heads.filter((h) => !done.has(headKey(h.va, h.hpc))) : heads;
  }

  /**
   * Read what the other harts offered since the last call (the owner also calls
   * this while its hart sleeps, so the channel does not keep their modules queued).
   */
  takeShared(): void {
    if (this.sharing) this.takeOffers(this.sharing.receive());
  }

  /**
   * Index the batches other harts offered; each head this hart has not queued
   * is primed, so that it is queued (and its batch put back) the first time it runs.
   */
  private takeOffers(batches: SharedBatch[]): void {
    for (const b of batches) {
      if (this.offers.size + b.blocks.length + b.extras.length > MAX_OFFERED_HEADS) this.offers.clear();
      for (const k of entriesOf(b)) {
        this.offers.set(headKey(k.va, k.hpc), b);
        if (this.ex.jitHeadRuns(k.hpc) < 0) this.ex.jitPrimeHead(k.hpc, true);
      }
    }
  }

  /**
   * Put back the offered batches of queued heads whose guest bytes are still
   * the ones they were translated from, at this hart's next free table and
   * link slots; returns the heads still to translate.
   */
  private putBackShared(heads: { va: bigint; hpc: number }[]): { va: bigint; hpc: number }[] {
    const done = new Set<string>();
    const u8 = new Uint8Array(this.memory.buffer);
    for (const { va, hpc } of heads) {
      const b = this.offers.get(headKey(va, hpc));
      if (!b) continue;
      for (const k of entriesOf(b)) if (this.offers.get(headKey(k.va, k.hpc)) === b) this.offers.delete(headKey(k.va, k.hpc));
      const same = b.blocks.every((k) => k.insns === 0 || (k.lo + k.bytes.length <= u8.length && k.bytes.every((v, i) => u8[k.lo + i] === v)));
      const slots = b.blocks.length + b.extras.length;
      const fits = this.nextSlot + slots <= TABLE_SIZE && this.nextLink + b.links.length <= JIT_LINKS_MAX && this.liveModules < MAX_LIVE_MODULES;
      if (!same || !fits) continue;
      const slot0 = this.nextSlot;
      const inst = new WebAssembly.Instance(b.module, this.relativeImports(slot0, this.nextLink));
      const dv = new DataView(this.memory.buffer);
      b.links.forEach((l, i) => this.initLink(dv, this.hartOff + JIT_LINKS + 32 * (this.nextLink + i), l));
      this.nextLink += b.links.length;
      this.nextSlot += slots;
      this.ensureSlots(this.nextSlot);
      this.liveModules++;
      this.stats.shared++;
      b.blocks.forEach((k, i) => {
        if (k.insns === 0) return;
        this.place(slot0 + i, inst.exports[`b${i}`], k.va, k.hpc, k.insns);
        this.stats.sharedBlocks++;
        done.add(headKey(k.va, k.hpc));
      });
      b.extras.forEach((x, i) => {
        this.place(slot0 + b.blocks.length + i, inst.exports[`x${i}`], x.va, x.hpc, x.insns);
        done.add(headKey(x.va, x.hpc));
      });
    }
    return done.size ? heads.filter((h) => !done.has(headKey(h.va, h.hpc))) : heads;
  }

  /** Imports of a HART_RELATIVE module put at table slot `slot0` with its first link slot at index `link0`. */
  private relativeImports(slot0: number, link0: number): object {
    const globals: Record<(typeof RELATIVE_GLOBALS)[number], number> = { hart: this.hartOff, slot0, link0: this.hartOff + 32 * link0 };
    return { env: { ...(this.imports.env as object), ...globals } };
  }

  /** Put translated function `f` (guest head va at host address hpc, `len` instructions) at table slot `slot` of both tables and tell the core. */
  private place(slot: number, f: unknown, va: bigint, hpc: number, len: number): void {
    this.table.set(slot, f);
    this.chainTable.set(slot, f);
    this.ex.jitInstall(va, hpc, slot, len);
  }

  /** A link slot as allocated: never current until the dispatcher links it. */
  private initLink(dv: DataView, addr: number, { target, dynamic, local }: CachedLink): void {
    dv.setUint32(addr, 0, true); // fn
    dv.setUint32(addr + 4, 0xffffffff, true); // epoch: never current until linked
    dv.setUint32(addr + 8, 0, true); // len
    dv.setUint32(addr + 12, this.hartOff + STATE + JIT_EPOCH_OFF, true); // the epoch word it follows (set again when linked)
    dv.setBigUint64(addr + 16, target, true);
    dv.setUint32(addr + 24, dynamic ? 1 : 0, true); // dynamic: the dispatcher sets the target when it links
    dv.setUint32(addr + 28, local ? 1 : 0, true); // local: in the exit's page, immune to TLB flushes (JIT_CODE_EPOCH_OFF)
  }

  /** Translate `heads` into one module and install what translated. */
  private translate(heads: { va: bigint; hpc: number }[], urgent = false): void {
    const buf = this.memory.buffer;
    const dv = new DataView(buf);
    const warm = this.warm?.active ? this.warm : null;
    // Shared with the other hart threads: code relative to the hart, slots and link slots of the module.
    const relative = this.sharing !== null && warm === null;
    const stateBase: StateBase = relative ? HART_RELATIVE : this.hartOff + STATE;
    // For the warm-start cache: the link slots this batch's code uses, in order from linkStart.
    const linkStart = this.nextLink;
    const links: CachedLink[] = [];
    let linksRanOut = false;
    /** The head being translated (its links to targets in its page are local). */
    let headVa = 0n;
    const allocLink = (target: bigint, dynamic = false): number => {
      // Out of link slots: this exit returns to the dispatcher, and the next drain starts afresh.
      if (this.nextLink >= JIT_LINKS_MAX) {
        this.linksFull = true;
        linksRanOut = true;
        return 0;
      }
      const addr = this.hartOff + JIT_LINKS + 32 * this.nextLink++;
      // Every block (and region) lies in its head's page.
      const link: CachedLink = { target, dynamic, local: !dynamic && target >> 12n === headVa >> 12n };
      this.initLink(dv, addr, link);
      if (warm || relative) links.push(link);
      return relative ? JIT_LINKS + 32 * (this.nextLink - 1 - linkStart) : addr;
    };
    const u8 = new Uint8Array(buf);
    const read16 = (a: number) => u8[a] | (u8[a + 1] << 8);
    // The core expands and caches on first use (its RVC_TABLE), also for encodings the guest has not run yet.
    const expandRvc = (half: number) => this.ex.rvcExpand(half) >>> 0;
    // Function i of the module is queue entry i, installed at table slot base + i, so
    // an exit linked to another block of this drain can tail-call it directly (the
    // module's exit function). A head that cannot be translated keeps its position
    // with UNTRANSLATED_BODY.
    const base = this.nextSlot;
    // Where the code counts its table slots from (HART_RELATIVE code adds the slot0 it is given).
    const slotOrigin = relative ? 0 : base;
    // The module's exit function comes after the blocks.
    const firstFunc = HELPERS.length + 1;
    const index = new Map<bigint, number>();
    heads.forEach(({ va }, i) => {
      if (!index.has(va)) index.set(va, i);
    });
    const direct = (target: bigint) => {
      const i = index.get(target);
      return i === undefined ? undefined : { func: firstFunc + i, slot: slotOrigin + i };
    };
    // Then its slow-path functions for loads and stores.
    const exitFunc = firstFunc + heads.length;
    const exits = {
      exitFunc, firstFunc, base: slotOrigin, count: heads.length, direct,
      slowLoad: exitFunc + 1, slowLoadOld: exitFunc + 2, slowStore: exitFunc + 3,
    };
    const blocks: { va: bigint; hpc: number; body: FuncBody; len: number; ok: boolean }[] = [];
    // The guest bytes each translation read, for the warm-start cache.
    let lo = 0;
    let hi = 0;
    const read16Seen = (a: number) => {
      if (a < lo) lo = a;
      if (a + 2 > hi) hi = a + 2;
      return read16(a);
    };
    const cachedBlocks: CachedBlock[] | null = warm ? [] : null;
    const sharedBlocks: SharedBatch['blocks'] | null = relative ? [] : null;
    // Region functions come after the slow paths, then the entry functions of their
    // other blocks (table slots after the heads'), so the dispatcher enters a region at any of them.
    const regionFns: FuncBody[] = [];
    const extras: { va: bigint; hpc: number; len: number; body: FuncBody }[] = [];
    for (const { va, hpc } of heads) {
      headVa = va;
      // Not with the warm-start cache (it checks each block's guest bytes on its own).
      const regionWanted = this.regions === 'all' || (this.regions === 'user' && va < KERNEL_HALF);
      const minRuns = urgent ? URGENT_REGION_RUNS : REGION_MIN_RUNS;
      // (a region offered to other harts is checked by every byte its planning read)
      const readRegion = relative ? read16Seen : read16;
      lo = hpc;
      hi = hpc;
      const plan = regionWanted && !warm && this.ex.jitHeadRuns(hpc) >= minRuns ? planRegion(va, hpc, readRegion, expandRvc, exits, stateBase) : null;
      if (plan) {
        let made: ReturnType<typeof translateRegion> | null = null;
        try {
          made = translateRegion(plan, readRegion, expandRvc, allocLink, exits, stateBase);
        } catch {
          // (a second pass that saw other instructions than the plan) translated as a block
        }
        if (made) {
          addCodeSize(this.stats.codeSize, made.size);
          const fn = exits.slowStore + 1 + regionFns.push({ type: 0, locals: BLOCK_LOCALS, code: made.code }) - 1;
          const code = regionEntryBody(0, fn, stateBase);
          blocks.push({ va, hpc, len: plan.plans[0].insns, ok: true, body: { type: 0, locals: [], code, exportName: `b${blocks.length}` } });
          plan.plans.forEach((p, j) => {
            if (j === 0 || base + heads.length + extras.length >= TABLE_SIZE) return;
            const entry = regionEntryBody(j, fn, stateBase);
            extras.push({ va: p.pc, hpc: p.hpc, len: p.insns, body: { type: 0, locals: [], code: entry, exportName: `x${extras.length}` } });
          });
          sharedBlocks?.push({ va, hpc, insns: plan.plans[0].insns, lo, bytes: u8.slice(lo, hi) });
          this.stats.regions++;
          this.stats.regionBlocks += plan.plans.length;
          continue;
        }
      }
      lo = hpc;
      hi = hpc;
      const t = translateBlock(va, hpc, warm || relative ? read16Seen : read16, expandRvc, allocLink, exits, stateBase);
      if (!t) this.stats.rejected++;
      else addCodeSize(this.stats.codeSize, t.size);
      if (cachedBlocks) {
        const code = t ? warm!.codeAt(lo, hi) : { lo: hpc - warm!.hostAddr(0), bytes: new Uint8Array(0) };
        if (code) cachedBlocks.push({ va, off: hpc - warm!.hostAddr(0), lo: code.lo, bytes: code.bytes, insns: t ? t.insns : 0 });
      }
      sharedBlocks?.push({ va, hpc, insns: t ? t.insns : 0, lo, bytes: t ? u8.slice(lo, hi) : new Uint8Array(0) });
      const body: FuncBody = t
        ? { type: 0, locals: BLOCK_LOCALS, code: t.code, exportName: `b${blocks.length}` }
        : { type: 0, locals: [], code: UNTRANSLATED_BODY };
      blocks.push({ va, hpc, len: t ? t.insns : 0, ok: t !== null, body });
    }
    if (!blocks.some((b) => b.ok)) return;
    const types = [
      { params: [], results: [I32] }, // 0: block
      { params: [I64, I32, I32], results: [I64] }, // 1: jitLoad
      { params: [I64, I32, I64, I32], results: [] }, // 2: jitStore
      { params: [I32], results: [] }, // 3: jitInterp
      { params: [I64, I64], results: [I64] }, // 4: M helpers
      { params: [I32, I32], results: [] }, // 5: jitFp
      { params: [I32], results: [I32] }, // 6: the chain trampoline
      { params: [I64, I32], results: [I32] }, // 7: jitLookup
      { params: [I32, I64, I64, I32], results: [I64] }, // 8: jitAmo
      { params: [I32, I64, I32], results: [I64] }, // 9: jitCsr
      { params: [I32, I64, I32], results: [I32] }, // 10: the module's exit function
      { params: [I64, I64, I32, I64], results: [I64] }, // 11: jitLoadX
      { params: [I64, I64, I64, I32], results: [] }, // 12: jitStoreX
      ...SLOW_TYPES, // 13..15: the module's slow paths of loads and stores
    ];
    const typeOf = (name: string, i: number) =>
      name === 'jitFp' ? 5 : name === 'jitLookup' ? 7 : name === 'jitAmo' ? 8 : name === 'jitCsr' ? 9 : name === 'jitSystem' ? 6
        : name === 'jitLoadX' ? 11 : name === 'jitStoreX' ? 12 : i === 0 ? 1 : i === 1 ? 2 : i === 2 ? 3 : 4;
    const imps: ImportFunc[] = HELPERS.map((name, i) => ({ module: 'env', name, type: typeOf(name, i) }));
    imps.push({ module: 'env', name: CHAIN_IMPORT, type: 6 });
    const exitFn: FuncBody = { type: 10, locals: EXIT_LOCALS, code: exitFunctionBody(exits, stateBase) };
    const slowFns: FuncBody[] = slowPathBodies(stateBase).map((code, i) => ({ type: 13 + i, locals: [], code }));
    const bytes = buildModule(types, imps, [...blocks.map((b) => b.body), exitFn, ...slowFns, ...regionFns, ...extras.map((x) => x.body)], false, relative ? RELATIVE_GLOBALS : []);
    if (warm && cachedBlocks && cachedBlocks.length === blocks.length && !linksRanOut) {
      warm.record({ slot: base, link: linkStart, links, blocks: cachedBlocks, module: bytes });
    }
    this.onModule?.(bytes, blocks.map((b) => b.va));
    let module: WasmModule | null = null;
    const compile = () => new WebAssembly.Instance((module = new WebAssembly.Module(bytes)), relative ? this.relativeImports(base, linkStart) : this.imports);
    let kernelBlocks = 0;
    for (const b of blocks) if (b.ok && b.va >= KERNEL_HALF) kernelBlocks++;
    const inst = this.compileWith ? this.compileWith(2 * kernelBlocks > blocks.filter((b) => b.ok).length, compile) : compile();
    this.stats.modules++;
    this.liveModules++;
    this.stats.bytes += bytes.length;
    this.nextSlot = base + blocks.length + extras.length;
    this.ensureSlots(this.nextSlot);
    blocks.forEach((b, i) => {
      if (!b.ok) return;
      const slot = base + i;
      this.place(slot, inst.exports[`b${i}`], b.va, b.hpc, b.len);
      this.stats.translations++;
    });
    extras.forEach((x, i) => {
      const slot = base + blocks.length + i;
      this.place(slot, inst.exports[`x${i}`], x.va, x.hpc, x.len);
    });
    // (a region's other blocks were read without keeping their bytes: not offered)
    if (relative && module !== null && sharedBlocks && !linksRanOut) {
      this.sharing!.send({ module, blocks: sharedBlocks, links, extras: extras.map((x) => ({ va: x.va, hpc: x.hpc, insns: x.len })) });
    }
  }
}

const headKey = (va: bigint, hpc: number) => `${va.toString(16)}@${hpc}`;

/** The guest pcs a shared batch is entered at: its translated blocks and its regions' other blocks. */
const entriesOf = (b: SharedBatch) => [...b.blocks.filter((k) => k.insns > 0), ...b.extras];
