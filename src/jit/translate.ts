// Translation of one guest basic block to a wasm function body.
//
// The block runs straight-line from its first instruction to a control
// transfer (included) or to an instruction it does not translate (excluded:
// SYSTEM, anything illegal). Registers live in wasm locals, loaded on first
// use and written back at every exit, so the STATE block is exact whenever the
// block returns. Loads and stores inline the software-TLB fast path and call
// the core's slow path otherwise; a slow path that traps (or asks to leave)
// ends the block with pc at the faulting instruction (or after it) and the
// count of instructions retired, exactly as the interpreter would.
// FP computational instructions call the core's jitFp, except for inline fast
// paths (see "Inline FP fast paths"); CSR instructions and atomics call the
// core's jitCsr and jitAmo in place (AMOs whose page the TLB holds run inline).

import { ByteWriter, OP, I32, I64, F64, ATOMIC, ATOMIC_PREFIX } from './wasm-builder.js';
import {
  STATE, X_OFF, F_OFF, PC_OFF, FFLAGS_OFF, FRM_OFF, TLB_BASES_OFF, TLB_TAGS_OFF, TLB_SIZE, FS_DIRTY_OFF, LOOKUP_COUNTS_OFF,
  JIT_FLAG_OFF, JIT_DONE_OFF, JIT_BUDGET_OFF, JIT_LAST_EXIT_OFF, JIT_JCACHE_BASE_OFF, JIT_JCACHE_ENTRIES, JIT_REGION_ENTRY_OFF,
} from '../machine/layout.generated.js';
import { newCodeSize, codeKindOf, type CodeSize } from './code-size.js';
import { stronglyConnected } from './regions.js';

/** The PAUSE hint (Zihintpause), which Linux's cpu_relax() executes in every spin loop. */
const PAUSE = 0x0100000f;

/**
 * Allocates a link slot (32 bytes of linear memory) for a chainable exit to
 * `target`; returns its address. A `dynamic` slot (an indirect jump) has no
 * fixed target: the dispatcher links it to whichever block the jump last went
 * to, and the exit chains only when the jump goes there again.
 */
export type LinkAllocator = (target: bigint, dynamic?: boolean) => number;

/**
 * The module's exit function (see exitFunctionBody), which every exit of a
 * chaining block tail-calls with (link slot, exit pc, instructions retired),
 * and where the module's block functions are: `count` functions from wasm
 * function index `firstFunc`, installed at table slots `base` onwards.
 */
export interface ModuleExits {
  exitFunc: number;
  firstFunc: number;
  base: number;
  count: number;
  /** The block of this module translated for guest pc `target`, if any: its function index and table slot. */
  direct?: (target: bigint) => { func: number; slot: number } | undefined;
  /**
   * The module's slow-path functions (see slowPathBodies), by function index:
   * load (va, pc, op) and load with rd's old value (va, pc, op, old), each
   * returning (value, flag); store (va, value, pc, op) returning the flag.
   */
  slowLoad: number;
  slowLoadOld: number;
  slowStore: number;
}

/** Import indices inside a block module (see jit.ts for the list). */
export const IMP = {
  load: 0, store: 1, interp: 2,
  mulh: 3, mulhsu: 4, mulhu: 5, div: 6, divu: 7, rem: 8, remu: 9, divw: 10, divuw: 11, remw: 12, remuw: 13,
  fp: 14,
  lookup: 15,
  amo: 16,
  csr: 17,
  system: 18,
  loadx: 19, storex: 20,
  chain: 21,
} as const;

const MAX_INSNS = 256;
/**
 * A block that branches back to its own head may run to this many: a loop body
 * longer than MAX_INSNS (the kernel's unrolled SHA-256 rounds, 329) would
 * otherwise be split in two blocks that chain into each other every iteration,
 * writing back and reloading its registers, instead of one wasm loop.
 */
export const MAX_LOOP_INSNS = 512;

/**
 * The state block the code being made addresses: its hart's (baked into every
 * access; see HART_STRIDE in layout.ts), or hart 0's in HART_RELATIVE code,
 * which adds the hart's offset. Set with hartRelative by useBase for the call.
 */
let stateBlock: number = STATE;

/**
 * Where translated code finds its hart: a number is the hart's state block,
 * baked into every access (the code is that hart's only). HART_RELATIVE code
 * imports three i32 globals (RELATIVE_GLOBALS, in this order): the hart's
 * offset (HART_STRIDE * hart), pushed as the base of every access to the state
 * block (whose offsets are then hart 0's); the table slot of the module's first
 * block; the address of the module's first link slot less JIT_LINKS (a link
 * allocator then returns JIT_LINKS + 32 * its index in the module). One
 * compiled module can so be instantiated by every hart thread of a VM, each at
 * slots and link slots of its own (see Jit.sharing).
 */
export const HART_RELATIVE = 'hart-relative';
export type StateBase = number | typeof HART_RELATIVE;
export const RELATIVE_GLOBALS = ['hart', 'slot0', 'link0'] as const;
const G_HART = 0;
const G_SLOT0 = 1;
const G_LINK0 = 2;
/** The code being made is HART_RELATIVE (set with stateBlock). */
let hartRelative = false;

/** Set stateBlock and hartRelative for the code about to be made. */
function useBase(base: StateBase): void {
  hartRelative = base === HART_RELATIVE;
  stateBlock = base === HART_RELATIVE ? STATE : base;
}

/** Push the base of a state-block access (its offset is stateBlock + field). */
function hartBase(f: ByteWriter): ByteWriter {
  return hartRelative ? f.byte(OP.global_get).u32(G_HART) : f.byte(OP.i32_const).i32(0);
}

/** Push a table slot of this module's blocks (`slot`: relative to the first, in HART_RELATIVE code). */
function pushSlot(f: ByteWriter, slot: number): ByteWriter {
  f.byte(OP.i32_const).i32(slot);
  return hartRelative ? f.byte(OP.global_get).u32(G_SLOT0).byte(OP.i32_add) : f;
}

// locals: 0..30 = x1..x31, then temporaries
const L_VA = 31;
const L_VAL = 32;
const L_EXITPC = 33; // i64: the pc an exit leaves with
const L_E = 34; // i32 TLB entry address
const L_TLBL = 35; // i32 load TLB base
const L_TLBS = 36; // i32 store TLB base
const L_COUNT = 37; // i32: instructions retired at the exit
const L_SLOT = 38; // i32: link slot of a chainable exit, or 0
const L_DIRECT = 39; // i32: which of the block's direct targets (1-based) a chaining exit goes to, 0 for none
const L_OK = 40; // i32: an inline FP fast path's result may be used
const L_FP = 41; // first of the f64 temporaries of the FP fast paths
const FP_TEMPS = 13;
const L_TAG = L_FP + FP_TEMPS; // i64: the data TLB's context tag (constant in a block: changing it ends the block)
const L_SLOWX = L_TAG + 1; // i32: nonzero once a load's or store's slow path left the block (see emitLoad)
const L_ENTRY = L_SLOWX + 1; // i32: in a region, the block to run next (see translateRegion)
export const BLOCK_LOCALS: [number, number][] = [[34, I64], [7, I32], [FP_TEMPS, F64], [1, I64], [2, I32]];

export interface TranslatedBlock {
  code: Uint8Array;
  insns: number;
  /** Where its bytes went, by kind of instruction. */
  size: CodeSize;
}

/**
 * A block that branches back to its own first instruction (a loop) is emitted a
 * second time as a wasm loop: registers stay in locals across iterations
 * instead of being written back and reloaded at every back edge.
 * `preload`: every register the block reads or writes, loaded before the loop
 * (a lazy first load would not dominate the next iteration); `written`: every
 * register the block writes, which each exit then writes back; `maxLen`: the
 * most instructions one iteration retires, for the budget check.
 */
interface LoopPlan {
  preload: Set<number>;
  written: Set<number>;
  maxLen: number;
  /** A region's blocks (see translateRegion): head pc to its index, and each one's length. */
  region?: { index: Map<bigint, number>; lens: number[] };
}

function sext(v: number, bits: number): number {
  const s = 32 - bits;
  return (v << s) >> s;
}

/**
 * Emits one block. Registers are loaded into locals on first use. Every exit
 * records (pc, count, link slot, mask of registers written so far) and branches
 * to one shared epilogue, which writes back the masked registers, accounts the
 * instructions and chains to the next block or returns: exits stay a few bytes.
 */
class Emitter {
  readonly c = new ByteWriter();
  readonly size = newCodeSize();
  private loaded = new Set<number>();
  /** Registers written since the STATE block was last made current. */
  private dirty = new Set<number>();
  /** Every register the epilogue may have to write back. */
  private everDirty = new Set<number>();
  /** Structured-control nesting inside the outer exit block. */
  private depth = 0;
  /**
   * mstatus.FS is known to be Dirty here: an earlier FS check or FP instruction
   * of the block passed (each leaves the block otherwise), and only a CSR write
   * could lower FS again (it runs through emitCsr, which clears this).
   */
  fsDirty = false;
  /** The TLB base locals (L_TLBL, L_TLBS) the block's probes read: the prologue loads only these. */
  readonly tlbUsed = new Set<number>();
  /** Registers read by the block (for a loop plan). */
  readonly readRegs = new Set<number>();
  /** A branch or jump of the block goes back to its head. */
  sawLoop = false;

  /** Targets of the block's constant control-flow exits (what a region is planned from). */
  readonly exitTargets = new Set<bigint>();
  /**
   * Set while planning or translating a region: the heads of its blocks. A
   * block then does not follow jumps inside the page (the region goes to that
   * block instead), and a branch back to its head does not end it.
   */
  regionStarts: Set<bigint> | null = null;

  constructor(private readonly allocLink: LinkAllocator | null, public head: bigint, readonly loop: LoopPlan | null = null,
    readonly exits: ModuleExits | null = null) {
    if (loop) {
      for (const r of loop.preload) this.loaded.add(r);
      for (const r of loop.written) {
        this.dirty.add(r);
        this.everDirty.add(r);
      }
    }
  }

  op(...bytes: number[]): this {
    this.c.bytes(bytes);
    return this;
  }
  /** Push the base of a state-block access (see hartBase). */
  sb(): this {
    hartBase(this.c);
    return this;
  }
  i32c(v: number): this {
    this.c.byte(OP.i32_const).i32(v);
    return this;
  }
  i64c(v: bigint): this {
    this.c.byte(OP.i64_const).i64(v);
    return this;
  }
  f64c(v: number): this {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setFloat64(0, v, true);
    this.c.byte(OP.f64_const).bytes(b);
    return this;
  }
  lget(l: number): this {
    this.c.byte(OP.local_get).u32(l);
    return this;
  }
  lset(l: number): this {
    this.c.byte(OP.local_set).u32(l);
    return this;
  }
  ltee(l: number): this {
    this.c.byte(OP.local_tee).u32(l);
    return this;
  }
  mem(opc: number, align: number, offset: number): this {
    this.c.byte(opc).u32(align).u32(offset);
    return this;
  }
  call(f: number): this {
    this.c.byte(OP.call).u32(f);
    return this;
  }
  /** An instruction of the threads proposal (ATOMIC_PREFIX); `align` must be the access's natural one. */
  atomic(sub: number, align: number, offset: number): this {
    this.c.byte(ATOMIC_PREFIX).u32(sub).u32(align).u32(offset);
    return this;
  }
  /** A full memory barrier (atomic.fence). */
  fence(): this {
    this.c.byte(ATOMIC_PREFIX).u32(ATOMIC.fence).byte(0);
    return this;
  }
  loopVoid(): this {
    this.c.byte(OP.loop).byte(0x40);
    this.depth++;
    return this;
  }
  brIf(label: number): this {
    this.c.byte(OP.br_if).u32(label);
    return this;
  }
  ifVoid(): this {
    this.c.byte(OP.if).byte(0x40);
    this.depth++;
    return this;
  }
  ifI64(): this {
    this.c.byte(OP.if).byte(I64);
    this.depth++;
    return this;
  }
  else(): this {
    this.c.byte(OP.else);
    return this;
  }
  end(): this {
    this.c.byte(OP.end);
    this.depth--;
    return this;
  }

  /** Push x[r]. Only called on straight-line code, so a first load dominates later uses. */
  reg(r: number): this {
    if (r === 0) return this.i64c(0n);
    this.readRegs.add(r);
    if (!this.loaded.has(r)) {
      this.sb().mem(OP.i64_load, 3, stateBlock + X_OFF + 8 * r).ltee(r - 1);
      this.loaded.add(r);
      return this;
    }
    return this.lget(r - 1);
  }
  /** Pop into x[r]. */
  setReg(r: number): this {
    if (r === 0) return this.op(OP.drop);
    this.lset(r - 1);
    this.loaded.add(r);
    this.dirty.add(r);
    this.everDirty.add(r);
    return this;
  }
  /** x[r] was written by this block and not yet stored to the STATE block. */
  isDirty(r: number): boolean {
    return this.dirty.has(r);
  }
  /**
   * x[r] (r != 0) in its local without pushing it: its local index. Like reg(),
   * only on straight-line code.
   */
  regLocal(r: number): number {
    this.readRegs.add(r);
    if (!this.loaded.has(r)) {
      this.sb().mem(OP.i64_load, 3, stateBlock + X_OFF + 8 * r).lset(r - 1);
      this.loaded.add(r);
    }
    return r - 1;
  }
  /** The module's slow-path functions for loads and stores. */
  slowFns(): ModuleExits {
    if (!this.exits) throw new Error('translateBlock: loads and stores need the module\'s slow-path functions');
    return this.exits;
  }
  /** Every register the block writes. */
  writtenRegs(): Set<number> {
    return new Set(this.everDirty);
  }
  /** Store the registers written so far, leaving the tracking as it is (for a path that then exits). */
  storeDirty(): this {
    for (const r of this.dirty) this.sb().lget(r - 1).mem(OP.i64_store, 3, stateBlock + X_OFF + 8 * r);
    return this;
  }
  /** Make the STATE block current before the interpreter runs an instruction; it may change rd. */
  flushForInterp(rd: number): this {
    for (const r of this.dirty) this.sb().lget(r - 1).mem(OP.i64_store, 3, stateBlock + X_OFF + 8 * r);
    // In a loop every written register stays dirty (the next iteration may exit
    // before writing it again) and rd is reloaded at once (reloadAfterHelper).
    if (this.loop) return this;
    this.dirty.clear();
    this.loaded.delete(rd);
    return this;
  }
  /** After a helper that may have written x[rd] in the STATE block: in a loop, reload its local now. */
  reloadAfterHelper(rd: number): this {
    if (this.loop && rd !== 0) this.sb().mem(OP.i64_load, 3, stateBlock + X_OFF + 8 * rd).lset(rd - 1);
    return this;
  }
  storePc(pc: bigint): this {
    return this.sb().i64c(pc).mem(OP.i64_store, 3, stateBlock + PC_OFF);
  }

  /** Distinct sets of registers exits write back (bit r = x[r]); exits with the same set share its stores. */
  private masks: number[] = [];
  /**
   * The exits' branches to their groups: where the two-byte depth is, the depth
   * of the group laid out first (innermost), and the group. Groups are laid out
   * in finish(), so the depths are patched there.
   */
  private exitBrs: { at: number; base: number; group: number }[] = [];
  private groupOf(mask: number): number {
    const group = this.masks.indexOf(mask);
    return group < 0 ? this.masks.push(mask) - 1 : group;
  }
  private toExit(count: number, slot: number): this {
    let mask = 0;
    for (const r of this.dirty) mask |= 1 << r;
    const group = this.groupOf(mask);
    this.i32c(count).lset(L_COUNT);
    // L_SLOT is 0 unless an exit sets it, and an exit is the last thing a run of the block does.
    if (slot !== 0) {
      this.i32c(slot);
      if (hartRelative) this.c.byte(OP.global_get).u32(G_LINK0).byte(OP.i32_add);
      this.lset(L_SLOT);
    }
    // Out of the open ifs (and the loop) to the end of the group's block, where its stores are.
    this.c.byte(OP.br);
    this.exitBrs.push({ at: this.c.length, base: this.depth + (this.loop ? 1 : 0), group });
    this.c.u32x2(0);
    return this;
  }

  /** A load's or store's slow path left the block somewhere (see slowExitIf). */
  private slowExits = false;
  /**
   * Leave the block if a slow path's flag (on the stack if `onStack`, else
   * just put in L_SLOWX) is nonzero: the
   * core has already stored the exit pc (and a completed load's rd, see
   * jitLoadX) and accounted the instructions, so the exit writes back the
   * registers written so far and returns (L_SLOWX tells the tail). Values on
   * the stack are dropped on the way out and stay there otherwise.
   */
  slowExitIf(onStack: boolean): this {
    let mask = 0;
    for (const r of this.dirty) mask |= 1 << r;
    const group = this.groupOf(mask);
    this.slowExits = true;
    if (onStack) this.ltee(L_SLOWX);
    else this.lget(L_SLOWX);
    this.c.byte(OP.br_if);
    this.exitBrs.push({ at: this.c.length, base: this.depth + (this.loop ? 1 : 0), group });
    this.c.u32x2(0);
    return this;
  }

  /**
   * Order of the write-back groups (position 0 innermost): largest sets first,
   * so that where the next set is a subset of this one, this group stores only
   * the difference and falls through into the next one's stores. Exits mostly
   * see the dirty set grow along the block, so the sets nest and each
   * register's store is emitted about once instead of once per exit.
   */
  private groupOrder(): number[] {
    const bits = (m: number) => {
      let n = 0;
      for (let x = m >>> 0; x !== 0; x &= x - 1) n++;
      return n;
    };
    return this.masks.map((m, g) => ({ g, n: bits(m) })).sort((a, b) => b.n - a.n || a.g - b.g).map((x) => x.g);
  }
  /**
   * Back to the block's head after `count` instructions of this iteration: go
   * round the wasm loop while a whole further iteration fits the budget, else
   * leave to the head (the dispatcher then runs the rest of the budget).
   */
  loopBack(count: number): this {
    return this.goTo(this.head, count);
  }
  /** In a region, the index of the block at `pc` (-1: not one of the region's). */
  regionIndex(pc: bigint): number {
    return this.loop?.region?.index.get(pc) ?? -1;
  }
  /**
   * Go on at `target` (the head of this loop block, or a block of this region)
   * after `count` instructions: round the wasm loop while the target's run
   * fits the budget, else leave to it (the dispatcher runs the rest).
   */
  goTo(target: bigint, count: number): this {
    if (!this.loop) throw new Error('goTo outside a loop block');
    const region = this.loop.region;
    const j = region ? region.index.get(target) : undefined;
    if (region && j === undefined) throw new Error('goTo: not a block of the region');
    this.sb().mem(OP.i32_load, 2, stateBlock + JIT_DONE_OFF).i32c(count).op(OP.i32_add).lset(L_COUNT);
    this.lget(L_COUNT).i32c(region ? region.lens[j!] : this.loop.maxLen).op(OP.i32_add);
    this.sb().mem(OP.i32_load, 2, stateBlock + JIT_BUDGET_OFF).op(OP.i32_le_u).ifVoid();
    this.sb().lget(L_COUNT).mem(OP.i32_store, 2, stateBlock + JIT_DONE_OFF);
    if (region && target === this.head && this.ownLoopAt > 0) {
      this.c.byte(OP.br).u32(this.depth - this.ownLoopAt); // this block's own loop
    } else {
      if (region) this.i32c(j!).lset(L_ENTRY);
      this.c.byte(OP.br).u32(this.depth); // the loop label, just outside the open ifs
    }
    this.end();
    return this.exitConst(target, count);
  }
  /** A region's dispatch at the top of its loop: a br_table on L_ENTRY into block `n - 1 - depth`'s code. */
  regionDispatch(n: number): void {
    for (let i = 0; i < n; i++) this.c.byte(OP.block).byte(0x40);
    this.lget(L_ENTRY).c.byte(OP.br_table).u32(n - 1);
    for (let i = 0; i < n - 1; i++) this.c.u32(i);
    this.c.u32(n - 1);
    this.c.byte(OP.end); // block 0's code follows
    this.depth = n - 1;
  }
  /**
   * Block i of a region starts (after the code of block i - 1, which never
   * falls through). One that branches back to its own head gets a wasm loop of
   * its own, so that its iterations skip the region's dispatch.
   */
  regionBlock(i: number, n: number, head: bigint, loops: boolean): void {
    this.regionBlockEnd();
    if (i > 0) this.c.byte(OP.end);
    this.depth = n - 1 - i;
    this.head = head;
    this.fsDirty = false;
    if (loops) {
      this.loopVoid();
      this.ownLoopAt = this.depth;
    }
  }
  /** After a region block's code: close its own loop. */
  regionBlockEnd(): void {
    if (this.ownLoopAt === 0) return;
    this.end();
    this.ownLoopAt = 0;
  }
  /** The depth just inside the current region block's own loop (0: it has none). */
  private ownLoopAt = 0;
  /** Exit to a constant pc; `chain`: through a link slot straight into the next block when possible. */
  exitConst(pc: bigint, count: number, chain = false): this {
    if (chain) this.exitTargets.add(pc);
    this.i64c(pc).lset(L_EXITPC);
    const slot = chain && this.allocLink ? this.allocLink(pc) : 0;
    if (slot !== 0) {
      this.chains = true;
      const d = this.exits?.direct?.(pc);
      if (d) {
        let i = this.directs.findIndex((x) => x.func === d.func);
        if (i < 0) i = this.directs.push(d) - 1;
        this.i32c(i + 1).lset(L_DIRECT);
      }
    }
    return this.toExit(count, slot);
  }
  /** A constant-target exit of this block chains: the block checks its slot inline (see finish). */
  private chains = false;
  /** Blocks of this module its exits go to, in order of first use (L_DIRECT - 1 indexes it). */
  private directs: { func: number; slot: number }[] = [];
  /** Exit to the pc on the stack (no chaining). */
  exitDyn(count: number): this {
    this.lset(L_EXITPC);
    return this.toExit(count, 0);
  }
  /** Exit to the pc on the stack, chaining when it is the target the slot was last linked to. */
  exitDynChained(count: number): this {
    this.lset(L_EXITPC);
    return this.toExit(count, this.allocLink ? this.allocLink(0n, true) : 0);
  }
  /** Exit with the pc the interpreter left in the STATE block. */
  exitStoredPc(count: number): this {
    this.sb().mem(OP.i64_load, 3, stateBlock + PC_OFF).lset(L_EXITPC);
    return this.toExit(count, 0);
  }

  /** Prologue (TLB bases), the body inside the exit block, and the shared epilogue. */
  finish(): Uint8Array {
    const f = new ByteWriter();
    const m = (opc: number, align: number, off: number) => f.byte(opc).u32(align).u32(off);
    // Only what the block's probes use: a block without loads or stores enters with no memory reads.
    if (this.tlbUsed.has(L_TLBL)) { hartBase(f); m(OP.i32_load, 2, stateBlock + TLB_BASES_OFF + 4); f.byte(OP.local_set).u32(L_TLBL); }
    if (this.tlbUsed.has(L_TLBS)) { hartBase(f); m(OP.i32_load, 2, stateBlock + TLB_BASES_OFF + 8); f.byte(OP.local_set).u32(L_TLBS); }
    if (this.tlbUsed.size > 0) { hartBase(f); m(OP.i64_load, 3, stateBlock + TLB_TAGS_OFF + 8); f.byte(OP.local_set).u32(L_TAG); }
    if (this.loop?.region) { hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_REGION_ENTRY_OFF); f.byte(OP.local_set).u32(L_ENTRY); }
    if (this.loop) {
      for (const r of this.loop.preload) {
        hartBase(f); m(OP.i64_load, 3, stateBlock + X_OFF + 8 * r); f.byte(OP.local_set).u32(r - 1);
      }
    }
    // One block per distinct write-back set, innermost first; an exit leaves the
    // body to the end of its set's block, writes those registers and goes on to
    // the shared tail (the end of the outermost block).
    const groups = this.masks.length;
    const order = this.groupOrder();
    const position = new Array<number>(groups);
    order.forEach((g, p) => (position[g] = p));
    for (const b of this.exitBrs) this.c.patchU32x2(b.at, b.base + position[b.group]);
    f.byte(OP.block).byte(0x40); // the tail
    for (let g = 0; g < groups; g++) f.byte(OP.block).byte(0x40);
    if (this.loop) f.byte(OP.loop).byte(0x40);
    f.bytes(this.c.finish());
    const body = f.length;
    if (this.loop) f.byte(OP.end);
    for (let p = 0; p < groups; p++) {
      f.byte(OP.end);
      const mask = this.masks[order[p]];
      const next = p + 1 < groups ? this.masks[order[p + 1]] : -1;
      // Falls through into the next group's stores when those are a subset of its own.
      const fall = next >= 0 && (next & ~mask) === 0;
      const own = fall ? mask & ~next : mask;
      for (let r = 1; r < 32; r++) {
        if (own & (1 << r)) {
          hartBase(f).byte(OP.local_get).u32(r - 1); m(OP.i64_store, 3, stateBlock + X_OFF + 8 * r);
        }
      }
      if (!fall && p < groups - 1) f.byte(OP.br).u32(groups - 1 - p); // past the other groups' stores
    }
    // (emitBlock counts everything outside the instructions as frame: move the stores out of it)
    this.size.bytes.writeback += f.length - body;
    this.size.bytes.frame -= f.length - body;
    f.byte(OP.end);
    // A slow path's exit: pc and count are in the STATE block already.
    if (this.slowExits) f.byte(OP.local_get).u32(L_SLOWX).byte(OP.if).byte(0x40).byte(OP.i32_const).i32(0).byte(OP.return).byte(OP.end);
    if (this.allocLink && this.exits !== null) {
      if (this.chains) {
        // The common case inline, to save the hop through the exit function:
        // if (slot && slot.epoch == *slot.epochWord && slot.target == pc && done + count + slot.len <= budget)
        //   { done += count; tail-call slot.fn (directly when it is a block of this module) }
        f.byte(OP.local_get).u32(L_SLOT).byte(OP.if).byte(0x40);
        f.byte(OP.local_get).u32(L_SLOT); m(OP.i32_load, 2, 4);
        f.byte(OP.local_get).u32(L_SLOT); m(OP.i32_load, 2, 12); m(OP.i32_load, 2, 0); f.byte(OP.i32_eq);
        f.byte(OP.local_get).u32(L_SLOT); m(OP.i64_load, 3, 16);
        f.byte(OP.local_get).u32(L_EXITPC).byte(OP.i64_eq).byte(OP.i32_and);
        hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
        f.byte(OP.local_get).u32(L_COUNT).byte(OP.i32_add).byte(OP.local_tee).u32(L_COUNT);
        f.byte(OP.local_get).u32(L_SLOT); m(OP.i32_load, 2, 8); f.byte(OP.i32_add);
        hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_BUDGET_OFF); f.byte(OP.i32_le_u).byte(OP.i32_and);
        f.byte(OP.if).byte(0x40);
        hartBase(f).byte(OP.local_get).u32(L_COUNT); m(OP.i32_store, 2, stateBlock + JIT_DONE_OFF);
        const n = this.directs.length;
        if (n > 0) {
          // br_table on L_DIRECT to arm k (1..n); 0 goes on to the trampoline. An arm
          // calls its function only if the slot holds exactly its table slot.
          f.byte(OP.block).byte(0x40);
          for (let k = n; k >= 0; k--) f.byte(OP.block).byte(0x40);
          f.byte(OP.local_get).u32(L_DIRECT).byte(OP.br_table).u32(n + 1);
          for (let k = 0; k <= n; k++) f.u32(k);
          f.u32(0);
          f.byte(OP.end);
          f.byte(OP.br).u32(n);
          for (let k = 1; k <= n; k++) {
            f.byte(OP.end);
            const d = this.directs[k - 1];
            f.byte(OP.local_get).u32(L_SLOT); m(OP.i32_load, 2, 0);
            pushSlot(f, d.slot).byte(OP.i32_eq).byte(OP.if).byte(0x40);
            f.byte(OP.return_call).u32(d.func);
            f.byte(OP.end);
            if (k < n) f.byte(OP.br).u32(n - k);
          }
          f.byte(OP.end);
        }
        f.byte(OP.local_get).u32(L_SLOT); m(OP.i32_load, 2, 0);
        f.byte(OP.return_call).u32(IMP.chain);
        f.byte(OP.end);
        // Not chained: L_COUNT holds done + count now; give the exit function the count again.
        f.byte(OP.local_get).u32(L_COUNT); hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
        f.byte(OP.i32_sub).byte(OP.local_set).u32(L_COUNT);
        f.byte(OP.end);
      }
      // Everything else (dynamic targets, the jump cache, links for the dispatcher, the pc): the exit function.
      f.byte(OP.local_get).u32(L_SLOT).byte(OP.local_get).u32(L_EXITPC).byte(OP.local_get).u32(L_COUNT);
      f.byte(OP.return_call).u32(this.exits.exitFunc);
      return f.finish();
    }
    hartBase(f).byte(OP.local_get).u32(L_EXITPC); m(OP.i64_store, 3, stateBlock + PC_OFF);
    hartBase(hartBase(f)); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
    f.byte(OP.local_get).u32(L_COUNT).byte(OP.i32_add); m(OP.i32_store, 2, stateBlock + JIT_DONE_OFF);
    f.byte(OP.i32_const).i32(0);
    return f.finish();
  }
}

/** Locals of the exit function after its parameters (slot i32, exit pc i64, count i32): fn and entry, i32. */
export const EXIT_LOCALS: [number, number][] = [[2, I32]];

/**
 * The exit function of a module of chaining blocks, one per module instead of a
 * copy of this in every block: account the instructions (JIT_DONE), then
 * tail-call the next block when the exit's link slot is current (its epoch),
 * goes to this pc (an indirect jump's slot follows its latest target) and the
 * block fits the budget: a block of this module directly, others through the
 * chain trampoline. An indirect jump whose slot missed tries the hart's jump
 * cache, then the core's lookup (which relinks the slot and fills the cache).
 * Otherwise note the slot for the dispatcher to link (JIT_LAST_EXIT), store
 * the pc and return to the dispatcher. Params: slot (0: not chainable), exit
 * pc, instructions retired by the block.
 */
export function exitFunctionBody(mod: ModuleExits, stateBase: StateBase): Uint8Array {
  useBase(stateBase);
  const P_SLOT = 0, P_PC = 1, P_COUNT = 2, T_FN = 3, T_E = 4;
  const f = new ByteWriter();
  const m = (opc: number, align: number, off: number) => f.byte(opc).u32(align).u32(off);
  const get = (l: number) => f.byte(OP.local_get).u32(l);
  hartBase(hartBase(f)); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
  get(P_COUNT).byte(OP.i32_add); m(OP.i32_store, 2, stateBlock + JIT_DONE_OFF);
  get(P_SLOT).byte(OP.if).byte(0x40);
  {
    // slot.epoch == *slot.epochWord && slot.target == pc && done + slot.len <= budget
    get(P_SLOT); m(OP.i32_load, 2, 4);
    get(P_SLOT); m(OP.i32_load, 2, 12); m(OP.i32_load, 2, 0); f.byte(OP.i32_eq);
    get(P_SLOT); m(OP.i64_load, 3, 16); get(P_PC).byte(OP.i64_eq).byte(OP.i32_and);
    hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
    get(P_SLOT); m(OP.i32_load, 2, 8); f.byte(OP.i32_add);
    hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_BUDGET_OFF); f.byte(OP.i32_le_u).byte(OP.i32_and);
    f.byte(OP.if).byte(0x40);
    get(P_SLOT); m(OP.i32_load, 2, 0); f.byte(OP.local_set).u32(T_FN);
    if (mod.count > 0) {
      // A table slot of this module's blocks: the function installed there is
      // this module's (slots are not reused before a flush, which stales every link).
      f.byte(OP.block).byte(0x40); // the trampoline path
      for (let i = 0; i < mod.count; i++) f.byte(OP.block).byte(0x40);
      get(T_FN); pushSlot(f, mod.base).byte(OP.i32_sub);
      f.byte(OP.br_table).u32(mod.count);
      for (let i = 0; i < mod.count; i++) f.u32(i);
      f.u32(mod.count);
      for (let i = 0; i < mod.count; i++) {
        f.byte(OP.end);
        f.byte(OP.return_call).u32(mod.firstFunc + i);
      }
      f.byte(OP.end);
    }
    get(T_FN).byte(OP.return_call).u32(IMP.chain);
    f.byte(OP.end);
    get(P_SLOT); m(OP.i32_load, 2, 24);
    f.byte(OP.if).byte(0x40);
    {
      // The jump cache entry for pc in this privilege's part.
      hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_JCACHE_BASE_OFF);
      get(P_PC).byte(OP.i32_wrap_i64).byte(OP.i32_const).i32(3).byte(OP.i32_shl);
      f.byte(OP.i32_const).i32((JIT_JCACHE_ENTRIES - 1) << 4).byte(OP.i32_and).byte(OP.i32_add).byte(OP.local_tee).u32(T_E);
      m(OP.i64_load, 3, 0); get(P_PC).byte(OP.i64_eq);
      hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_DONE_OFF);
      get(T_E); m(OP.i32_load, 2, 12); f.byte(OP.i32_add);
      hartBase(f); m(OP.i32_load, 2, stateBlock + JIT_BUDGET_OFF); f.byte(OP.i32_le_u).byte(OP.i32_and);
      f.byte(OP.if).byte(0x40);
      get(T_E); m(OP.i32_load, 2, 8); f.byte(OP.return_call).u32(IMP.chain);
      f.byte(OP.end);
      get(P_PC); get(P_SLOT); f.byte(OP.call).u32(IMP.lookup);
      f.byte(OP.local_tee).u32(T_FN).byte(OP.if).byte(0x40);
      get(T_FN).byte(OP.return_call).u32(IMP.chain);
      f.byte(OP.end);
    }
    f.byte(OP.end);
    hartBase(f); get(P_SLOT); m(OP.i32_store, 2, stateBlock + JIT_LAST_EXIT_OFF);
  }
  f.byte(OP.end);
  hartBase(f); get(P_PC); m(OP.i64_store, 3, stateBlock + PC_OFF);
  f.byte(OP.i32_const).i32(0);
  return f.finish();
}

/**
 * The module's slow-path functions for loads and stores (ModuleExits.slowLoad,
 * slowLoadOld, slowStore, in this order; types SLOW_TYPES): each calls the
 * core's jitLoadX or jitStoreX and returns what it returned with the JIT flag,
 * so that a call site needs no code of its own to read the flag.
 */
export function slowPathBodies(stateBase: StateBase): Uint8Array[] {
  useBase(stateBase);
  const body = (params: number, helper: number, zeroOld: boolean) => {
    const f = new ByteWriter();
    for (let i = 0; i < params; i++) f.byte(OP.local_get).u32(i);
    if (zeroOld) f.byte(OP.i64_const).i64(0n);
    f.byte(OP.call).u32(helper);
    hartBase(f).byte(OP.i32_load).u32(2).u32(stateBlock + JIT_FLAG_OFF);
    return f.finish();
  };
  return [body(3, IMP.loadx, true), body(4, IMP.loadx, false), body(4, IMP.storex, false)];
}

/** The function types of slowPathBodies, in order. */
export const SLOW_TYPES = [
  { params: [I64, I64, I32], results: [I64, I32] },
  { params: [I64, I64, I32, I64], results: [I64, I32] },
  { params: [I64, I64, I64, I32], results: [I32] },
];

/** Read a 16-bit parcel at a linear-memory address. */
type Read16 = (addr: number) => number;
/** The 32-bit expansion of a 16-bit encoding, or 0 if it is illegal (the core's rvcExpand). */
type ExpandRvc = (half: number) => number;

/**
 * Translate the block at guest virtual `pc`, whose first byte is at linear-memory
 * address `hpc`. Returns null when the first instruction is not translatable.
 */
export function translateBlock(
  pc: bigint, hpc: number, read16: Read16, expandRvc: ExpandRvc, allocLink: LinkAllocator | null = null,
  exits: ModuleExits | null = null, stateBase: StateBase = STATE,
): TranslatedBlock | null {
  if (allocLink && exits === null) throw new Error('translateBlock: a chaining block needs its module\'s exit function');
  useBase(stateBase);
  // The second pass reuses the first pass's link slots: one per constant target, one for an indirect jump.
  const link = allocLink && slotPerTarget(allocLink);
  let first = new Emitter(link, pc, null, exits);
  let t = emitBlock(first, pc, hpc, read16, expandRvc, MAX_LOOP_INSNS);
  if (t && t.insns > MAX_INSNS && !first.sawLoop) {
    // Not a loop after all: the usual length.
    first = new Emitter(link, pc, null, exits);
    t = emitBlock(first, pc, hpc, read16, expandRvc, MAX_INSNS);
  }
  if (!t || !first.sawLoop) return t;
  const preload = new Set([...first.readRegs, ...first.writtenRegs()]);
  const looped = new Emitter(link, pc, { preload, written: first.writtenRegs(), maxLen: t.insns }, exits);
  return emitBlock(looped, pc, hpc, read16, expandRvc, t.insns);
}

/** One link slot per constant target (and one for all indirect jumps) of a translation, whatever its passes ask. */
function slotPerTarget(allocLink: LinkAllocator): LinkAllocator {
  const slots = new Map<string, number>();
  return (target, dynamic = false) => {
    const key = dynamic ? 'dyn' : target.toString();
    let a = slots.get(key);
    if (a === undefined) slots.set(key, (a = allocLink(target, dynamic)));
    return a;
  };
}

/**
 * The instruction at linear-memory address `a` (a 16-bit one expanded), if it
 * lies wholly below `end` and is a valid compressed encoding.
 */
function fetchAt(a: number, end: number, read16: Read16, expandRvc: ExpandRvc): { insn: number; len: number } | null {
  if (a + 2 > end) return null;
  const lo = read16(a);
  if ((lo & 3) !== 3) {
    const insn = expandRvc(lo);
    return insn === 0 ? null : { insn, len: 2 };
  }
  if (a + 4 > end) return null;
  return { insn: (lo | (read16(a + 2) << 16)) >>> 0, len: 4 };
}

/** What a first pass over a block of a region found (see analyzeBlock). */
export interface BlockPlan {
  pc: bigint;
  hpc: number;
  insns: number;
  reads: Set<number>;
  writes: Set<number>;
  /** Constant targets of its exits (its own head among them when it loops to itself). */
  targets: Set<bigint>;
}

/**
 * A first pass over the block at `pc` as a block of a region whose heads are
 * `starts` (no link slots taken, the code thrown away): its length,
 * registers and exits. Null when it does not translate.
 */
function analyzeBlock(pc: bigint, hpc: number, read16: Read16, expandRvc: ExpandRvc, exits: ModuleExits, stateBase: StateBase, starts: Set<bigint>): BlockPlan | null {
  useBase(stateBase);
  const e = new Emitter(null, pc, null, exits);
  e.regionStarts = starts;
  const t = emitBlock(e, pc, hpc, read16, expandRvc, MAX_INSNS, false);
  if (!t) return null;
  return { pc, hpc, insns: t.insns, reads: new Set(e.readRegs), writes: e.writtenRegs(), targets: new Set(e.exitTargets) };
}

/** A region's blocks (the first is the head it was planned from) and their heads. */
export interface RegionPlan {
  plans: BlockPlan[];
  starts: Set<bigint>;
}

/** Blocks of one region at most, and their instructions. */
const MAX_REGION_BLOCKS = 32;
const MAX_REGION_INSNS = 2048;

/**
 * Whether code reachable from `pc` inside its page jumps or branches backwards
 * (without which its blocks cannot form a cycle): a cheap look, by opcode, before
 * planning a region.
 */
function backEdgeInPage(pc: bigint, hpc: number, read16: Read16, expandRvc: ExpandRvc): boolean {
  const pageStart = hpc & ~0xfff;
  const seen = new Set<number>();
  const work = [hpc];
  let insns = 0;
  while (work.length && seen.size < MAX_REGION_BLOCKS * 2) {
    let a = work.pop()!;
    if (seen.has(a)) continue;
    seen.add(a);
    for (;;) {
      if (a < pageStart || ++insns > MAX_REGION_INSNS) break;
      const f = fetchAt(a, pageStart + 0x1000, read16, expandRvc);
      if (!f) break;
      const { insn, len } = f;
      const opc = insn & 0x7f;
      if (opc === 0x63 || opc === 0x6f) {
        const t = a + (opc === 0x63 ? Number(immB(insn)) : Number(immJ(insn)));
        if (t <= a && t >= pageStart) return true;
        if (t < pageStart + 0x1000) work.push(t);
        if (opc === 0x6f) break;
      } else if (opc === 0x67 || opc === 0x73 || (opc === 0x0f && ((insn >>> 12) & 7) !== 0)) {
        break;
      }
      a += len;
    }
  }
  return false;
}

/**
 * Plan a region from the queued head at `pc`: the blocks reachable from it
 * inside its page (a block here ends at a jump, not following it, or where a
 * block ends anyway; branches stay side exits, and a block may run on through
 * the head of another), bounded; null unless some of them form a cycle (a
 * loop of several blocks) and the head's block translates.
 */
export function planRegion(pc: bigint, hpc: number, read16: Read16, expandRvc: ExpandRvc, exits: ModuleExits, stateBase: StateBase = STATE): RegionPlan | null {
  if (!backEdgeInPage(pc, hpc, read16, expandRvc)) return null;
  const hostOf = (t: bigint) => hpc - Number(pc & 0xfffn) + Number(t & 0xfffn);
  const inPage = (t: bigint) => t >> 12n === pc >> 12n;
  const starts = new Set<bigint>([pc]);
  const order: bigint[] = [pc];
  const plans: BlockPlan[] = [];
  let insns = 0;
  for (let i = 0; i < order.length; i++) {
    const p = analyzeBlock(order[i], hostOf(order[i]), read16, expandRvc, exits, stateBase, starts);
    if (!p) {
      if (i === 0) return null;
      continue;
    }
    plans.push(p);
    if ((insns += p.insns) > MAX_REGION_INSNS) return null;
    for (const t of p.targets) {
      if (!inPage(t) || starts.has(t)) continue;
      if (starts.size === MAX_REGION_BLOCKS) return null;
      starts.add(t);
      order.push(t);
    }
  }
  if (plans.length < 2) return null;
  const at = new Map(plans.map((p, i) => [p.pc, i] as [bigint, number]));
  const edges = plans.map((p) => [...p.targets].map((t) => at.get(t)).filter((k): k is number => k !== undefined));
  if (!stronglyConnected(edges).some((c) => c.length > 1 || edges[c[0]].includes(c[0]))) return null;
  return { plans, starts };
}

/**
 * A region: the blocks of one guest page that a hot head reaches (planRegion),
 * some of them in a cycle (a loop whose body is several blocks: branches that
 * leave the straight line and come back), translated into one wasm function.
 * Inside it registers stay in wasm locals (loaded at entry, written back at
 * every exit, as in a loop block) and going from one of its blocks to another
 * is a br_table on L_ENTRY at the top of one wasm loop, after the same budget
 * check as a loop block's back edge, instead of writing back, checking a link
 * slot and chaining. Each of its blocks is entered through an entry function
 * of its own that stores the block's index in JIT_REGION_ENTRY_OFF and
 * tail-calls the region (regionEntryBody).
 */
export function translateRegion(
  { plans, starts }: RegionPlan, read16: Read16, expandRvc: ExpandRvc, allocLink: LinkAllocator, exits: ModuleExits, stateBase: StateBase = STATE,
): { code: Uint8Array; size: CodeSize } {
  useBase(stateBase);
  const link = slotPerTarget(allocLink);
  const preload = new Set<number>();
  const written = new Set<number>();
  for (const p of plans) {
    for (const r of p.reads) preload.add(r);
    for (const r of p.writes) {
      preload.add(r);
      written.add(r);
    }
  }
  const n = plans.length;
  const region = { index: new Map(plans.map((p, i) => [p.pc, i] as [bigint, number])), lens: plans.map((p) => p.insns) };
  const e = new Emitter(link, plans[0].pc, { preload, written, maxLen: Math.max(...region.lens), region }, exits);
  e.regionStarts = starts;
  e.regionDispatch(n);
  plans.forEach((p, i) => {
    e.regionBlock(i, n, p.pc, p.targets.has(p.pc));
    const t = emitBlock(e, p.pc, p.hpc, read16, expandRvc, p.insns, false);
    // The second pass must see the instructions the first did (the budget checks count on it).
    if (!t || t.insns !== p.insns) throw new Error(`translateRegion: block ${p.pc.toString(16)} changed between passes`);
  });
  e.regionBlockEnd();
  const body = e.c.length;
  const code = e.finish();
  e.size.insns.frame++;
  e.size.bytes.frame += code.length - body;
  return { code, size: e.size };
}

/** The entry function of a region's block (its table slot): store the block's index, then tail-call the region. */
export function regionEntryBody(index: number, regionFunc: number, stateBase: StateBase = STATE): Uint8Array {
  useBase(stateBase);
  const f = new ByteWriter();
  hartBase(f).byte(OP.i32_const).i32(index).byte(OP.i32_store).u32(2).u32(stateBlock + JIT_REGION_ENTRY_OFF);
  f.byte(OP.return_call).u32(regionFunc);
  return f.finish();
}

function emitBlock(e: Emitter, pc: bigint, hpc: number, read16: Read16, expandRvc: ExpandRvc, maxInsns: number, finish = true): TranslatedBlock | null {
  const pageStart = hpc & ~0xfff;
  const pageEnd = pageStart + 0x1000;
  // Superblock: conditional branches become side exits and jumps inside the page
  // are followed, so one dispatch covers many guest basic blocks.
  let curPc = pc;
  let curHpc = hpc;
  let n = 0;
  let ended = false;
  while (n < maxInsns && !ended) {
    if (curHpc < pageStart) break;
    const f = fetchAt(curHpc, pageEnd, read16, expandRvc);
    if (!f) break;
    const { insn, len } = f;
    const before = e.c.length;
    const r = emitInsn(e, insn, curPc, BigInt(len), n, pageStart, hpc - Number(pc & 0xfffn));
    if (r === 'stop') break;
    const kind = codeKindOf(insn);
    e.size.insns[kind]++;
    e.size.bytes[kind] += e.c.length - before;
    n++;
    if (r === 'end') {
      ended = true;
    } else if (typeof r === 'bigint') {
      // followed a jump inside the page
      curHpc += Number(BigInt.asIntN(64, r - curPc));
      curPc = r;
    } else {
      curPc += BigInt(len);
      curHpc += len;
    }
  }
  if (n === 0) return null;
  const body = e.c.length;
  if (!ended) {
    if (e.loop && curPc === e.head) e.loopBack(n);
    else if (e.regionIndex(curPc) >= 0) e.goTo(curPc, n);
    else e.exitConst(curPc, n, true);
  }
  if (!finish) return { code: new Uint8Array(0), insns: n, size: e.size };
  const code = e.finish();
  e.size.insns.frame++;
  e.size.bytes.frame += code.length - body;
  return { code, insns: n, size: e.size };
}

/** 'ok': continue after it; 'end': the block ends with it; 'stop': not translated; bigint: continue at that pc. */
type EmitResult = 'ok' | 'end' | 'stop' | bigint;

function immI(insn: number): bigint {
  return BigInt(insn >> 20);
}
function immS(insn: number): bigint {
  return BigInt(((insn >> 20) & ~31) | ((insn >>> 7) & 31));
}
function immB(insn: number): bigint {
  const v = ((insn >> 19) & ~0xfff) | ((insn << 4) & 0x800) | ((insn >>> 20) & 0x7e0) | ((insn >>> 7) & 0x1e);
  return BigInt(v);
}
function immJ(insn: number): bigint {
  const v = ((insn >> 11) & ~0xfffff) | (insn & 0xff000) | ((insn >>> 9) & 0x800) | ((insn >>> 20) & 0x7fe);
  return BigInt(v);
}

/** Emit sign extension of the low 32 bits of the i64 on the stack. */
function sext32(e: Emitter): void {
  e.op(OP.i64_extend32_s);
}

function emitInsn(e: Emitter, insn: number, pc: bigint, len: bigint, k: number, pageStart: number, pageHostBase: number): EmitResult {
  const rd = (insn >>> 7) & 31;
  const f3 = (insn >>> 12) & 7;
  const rs1 = (insn >>> 15) & 31;
  const rs2 = (insn >>> 20) & 31;
  const f7 = insn >>> 25;
  const next = pc + len;
  switch ((insn >>> 2) & 31) {
    case 13: // LUI
      e.i64c(BigInt(insn & 0xfffff000 | 0) << 0n).setReg(rd);
      return 'ok';
    case 5: // AUIPC
      e.i64c(BigInt.asUintN(64, pc + BigInt(insn & 0xfffff000 | 0))).setReg(rd);
      return 'ok';
    case 27: { // JAL
      const t = BigInt.asUintN(64, pc + immJ(insn));
      e.i64c(next).setReg(rd);
      if (e.regionStarts) {
        if (e.regionIndex(t) >= 0) e.goTo(t, k + 1);
        else e.exitConst(t, k + 1, true);
        return 'end';
      }
      if (t === e.head) {
        e.sawLoop = true;
        if (e.loop) {
          e.loopBack(k + 1);
          return 'end';
        }
      }
      // Same virtual page: the target's bytes are in this page too, keep translating there.
      if (t >> 12n === pc >> 12n && pageHostBase + Number(t & 0xfffn) >= pageStart) return t;
      e.exitConst(t, k + 1, true);
      return 'end';
    }
    case 25: { // JALR
      if (f3 !== 0) return 'stop';
      e.reg(rs1).i64c(immI(insn)).op(OP.i64_add).i64c(-2n).op(OP.i64_and).lset(L_VA);
      e.i64c(next).setReg(rd);
      e.lget(L_VA).exitDynChained(k + 1);
      return 'end';
    }
    case 24: { // BRANCH: a side exit when taken
      const cmp = [OP.i64_eq, OP.i64_ne, -1, -1, OP.i64_lt_s, OP.i64_ge_s, OP.i64_lt_u, OP.i64_ge_u][f3];
      if (cmp < 0) return 'stop';
      const t = BigInt.asUintN(64, pc + immB(insn));
      e.reg(rs1).reg(rs2).op(cmp).ifVoid();
      if (t === e.head && !e.regionStarts) {
        // A loop. Its exit ends the block (in both passes, so the first pass's
        // register sets are the loop's own): what follows the loop would only add
        // registers to load before and write back after every run of the loop.
        e.sawLoop = true;
        if (e.loop) e.loopBack(k + 1);
        else e.exitConst(t, k + 1, true);
        e.end();
        e.exitConst(next, k + 1, true);
        return 'end';
      }
      if (e.regionIndex(t) >= 0) e.goTo(t, k + 1);
      else e.exitConst(t, k + 1, true);
      e.end();
      return 'ok';
    }
    case 0: // LOAD
      if (f3 === 7) return 'stop';
      emitLoad(e, insn, rd, rs1, f3, pc, next, k);
      return 'ok';
    case 8: // STORE
      if (f3 > 3) return 'stop';
      emitStore(e, insn, rs1, rs2, f3, pc, next, k);
      return 'ok';
    case 4: // OP-IMM
      return emitOpImm(e, insn, rd, rs1, f3);
    case 6: // OP-IMM-32
      return emitOpImm32(e, insn, rd, rs1, f3, f7, rs2);
    case 12: // OP
      return emitOp(e, rd, rs1, rs2, f3, f7, false);
    case 14: // OP-32
      return emitOp(e, rd, rs1, rs2, f3, f7, true);
    case 3: // MISC-MEM: FENCE.I ends the block (the interpreter runs it), and so does
      // PAUSE: with several harts the interpreter hands the core to the next one.
      // A FENCE is a barrier only where the host would reorder (see the interpreter).
      if (f3 === 0) {
        if (insn === PAUSE) return 'stop';
        if (orderingFences && fenceOrdersStoreLoad(insn)) e.fence();
        return 'ok';
      }
      return 'stop';
    case 28: // SYSTEM: CSR instructions run in place through the core (a write that
      // changes translation or interrupt state sets breakBatch, which ends the block);
      // ECALL, EBREAK, xRET, WFI and SFENCE.VMA end the block before them.
      if (f3 === 0) {
        if (!SYSTEM_ONWARD.has(insn >>> 0) && !(insn >>> 25 === 0x09 && rd === 0)) return 'stop';
        emitSystem(e, pc, k);
        return 'end';
      }
      if (f3 === 4) return 'stop';
      emitCsr(e, insn, rd, rs1, f3, pc, next, k);
      return 'ok';
    case 11: // AMO
      return emitAmo(e, insn, rd, rs1, rs2, f3, pc, next, k);
    case 1: // LOAD-FP
      if (f3 !== 2 && f3 !== 3) return 'stop';
      emitFpLoad(e, insn, rd, rs1, f3 === 3, pc, next, k);
      return 'ok';
    case 9: // STORE-FP
      if (f3 !== 2 && f3 !== 3) return 'stop';
      emitFpStore(e, insn, rs1, rs2, f3 === 3, pc, next, k);
      return 'ok';
    case 16: case 17: case 18: case 19: // fused multiply-add: F registers only
      if (!emitFmaFast(e, insn, rd, rs1, rs2, pc, k)) emitFp(e, insn, rd, false, pc, k);
      return 'ok';
    case 20: { // OP-FP: compares, conversions and moves also read or write an x register
      const f5 = insn >>> 27;
      const fpOnly = f5 <= 5 || f5 === 8 || f5 === 0x0b;
      if (!emitFpFast(e, insn, rd, rs1, rs2, pc, k)) emitFp(e, insn, rd, !fpOnly, pc, k);
      return 'ok';
    }
    default:
      return 'stop';
  }
}

/** ECALL, EBREAK, SRET, MRET (SFENCE.VMA is matched by its funct7): they end the block through jitSystem. */
const SYSTEM_ONWARD = new Set([0x00000073, 0x00100073, 0x10200073, 0x30200073]);

/**
 * A trap, xRET or fence ends the block through the core's jitSystem, which
 * runs it and returns the table slot of the block to go on with (0: back to
 * the dispatcher). The registers are written back first (the trap handler,
 * and the host's SBI for an ecall, work on the STATE block) and are not
 * written again after the call, as an SBI call may change a0 and a1.
 */
function emitSystem(e: Emitter, pc: bigint, k: number): void {
  e.storeDirty();
  e.storePc(pc);
  e.i32c(k + 1).call(IMP.system).lset(L_SLOT);
  // The epilogue's bookkeeping: the retired count (jitSystem left the pc).
  e.sb().sb().mem(OP.i32_load, 2, stateBlock + JIT_DONE_OFF).i32c(k + 1).op(OP.i32_add).mem(OP.i32_store, 2, stateBlock + JIT_DONE_OFF);
  e.lget(L_SLOT).ifVoid();
  e.lget(L_SLOT).op(OP.return_call).c.u32(IMP.chain);
  e.end();
  e.i32c(0).op(OP.return);
}

/**
 * After a core helper that left its result in L_VAL: leave the block if it
 * raised JIT_FLAG (1: trapped at this instruction; 2: done, but leave the
 * block now, with rd written).
 */
function emitHelperFlagExits(e: Emitter, rd: number, pc: bigint, next: bigint, k: number): void {
  e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).ifVoid();
  e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).i32c(1).op(OP.i32_eq).ifVoid();
  e.exitConst(pc, k + 1);
  e.end();
  e.lget(L_VAL).setReg(rd);
  e.exitConst(next, k + 1);
  e.end();
}

/**
 * A CSR instruction through the core's jitCsr: rs1's value (or the immediate)
 * goes in, rd's comes back. A write may change mstatus.FS, so later FP
 * instructions of the block check it again.
 */
function emitCsr(e: Emitter, insn: number, rd: number, rs1: number, f3: number, pc: bigint, next: bigint, k: number): void {
  e.fsDirty = false;
  e.i32c(insn | 0);
  if (f3 >= 5) e.i64c(BigInt(rs1));
  else e.reg(rs1);
  e.i32c(k).call(IMP.csr).lset(L_VAL);
  emitHelperFlagExits(e, rd, pc, next, k);
  e.lget(L_VAL).setReg(rd);
}

/** FP computation through the core's jitFp (no fetch or decode); a trap leaves with pc on it. */
function emitFp(e: Emitter, insn: number, rd: number, touchesX: boolean, pc: bigint, k: number): void {
  if (touchesX) e.flushForInterp(rd);
  e.i32c(insn | 0).i32c(k).call(IMP.fp);
  if (touchesX) e.reloadAfterHelper(rd);
  e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).ifVoid();
  e.exitConst(pc, k + 1);
  e.end();
  // Past here jitFp did not trap, so it found FS on and left it Dirty.
  e.fsDirty = true;
}

// ---- Inline FP fast paths ----
//
// A fast path computes the result with native wasm arithmetic (IEEE binary32/
// binary64, round to nearest even) and uses it only when it is provably what
// the interpreter (fpu.ts + softfloat.ts) would produce, fflags included;
// otherwise the instruction goes through jitFp as before. F registers stay in
// the STATE block (they are never cached in locals), so nothing needs writing back.
//
// Flags: fflags bits are sticky, so once NX is set an operation that can only
// raise NX leaves fflags unchanged. With finite operands and a result r whose
// magnitude is in [2^-1021, max finite] (binary32: [2^-125, max]), no other
// flag is possible: NV and DZ only come with a NaN or infinite result (inputs
// that are NaN or infinite also give one, except x/inf = 0, which is excluded
// too), OF in RNE always yields an infinity, and UF needs a tiny result. Hence
// the fast paths require: mstatus.FS Dirty (else jitFp checks FS and may trap),
// NX already set, rounding mode RNE (static, or dynamic with frm = 0), and a
// result in that range. Single-precision operands must be properly NaN-boxed
// (else they read as the canonical NaN).

const NANBOX = -0x100000000n;
const MIN_SAFE_D = 2 ** -1021;
const MAX_D = 1.7976931348623157e308;
const MIN_SAFE_S = 2 ** -125;
const MAX_S = 3.4028234663852886e38;
/** f64 temporaries. */
const T_A = L_FP, T_B = L_FP + 1, T_C = L_FP + 2, T_PH = L_FP + 3, T_PL = L_FP + 4, T_AH = L_FP + 5, T_AL = L_FP + 6;
const T_BH = L_FP + 7, T_BL = L_FP + 8, T_SH = L_FP + 9, T_SL = L_FP + 10, T_T = L_FP + 11, T_R = L_FP + 12;

/** Push i32: FS Dirty, fflags.NX set and (for rm = 7) frm = RNE. Only rm 0 and 7 may call this. */
function emitFastCond(e: Emitter, rm: number, needNx: boolean): void {
  if (e.fsDirty) e.i32c(1);
  else e.sb().mem(OP.i32_load, 2, stateBlock + FS_DIRTY_OFF);
  if (!needNx && rm === 0) return;
  // fflags and frm as one i64: low word fflags, high word frm (FRM_OFF = FFLAGS_OFF + 4, see test/layout.test.ts).
  const mask = (needNx ? 1n : 0n) | (rm === 7 ? -0x100000000n : 0n);
  e.sb().mem(OP.i64_load, 3, stateBlock + FFLAGS_OFF).i64c(mask).op(OP.i64_and).i64c(needNx ? 1n : 0n).op(OP.i64_eq);
  e.op(OP.i32_and);
}

/**
 * Load f[rs1] and f[rs2] (at fa, fb) as f64 into T_A and T_B (binary32 values
 * unboxed, AND-ing their NaN-box check into L_OK) and AND into L_OK that neither
 * is a NaN (x == x is false only for NaN): the operands compares and FMIN/FMAX
 * can take inline without raising flags.
 */
function emitOrderedPair(e: Emitter, dbl: boolean, fa: number, fb: number): void {
  if (dbl) {
    e.sb().mem(OP.f64_load, 3, fa).lset(T_A);
    e.sb().mem(OP.f64_load, 3, fb).lset(T_B);
  } else {
    e.sb().mem(OP.i64_load, 3, fa).lset(L_VA);
    e.sb().mem(OP.i64_load, 3, fb).lset(L_VAL);
    emitBoxedCheck(e, [L_VA, L_VAL]);
    emitS2D(e, L_VA);
    e.lset(T_A);
    emitS2D(e, L_VAL);
    e.lset(T_B);
  }
  e.lget(T_A).lget(T_A).op(OP.f64_eq).lget(T_B).lget(T_B).op(OP.f64_eq).op(OP.i32_and);
  e.lget(L_OK).op(OP.i32_and).lset(L_OK);
}

/**
 * FMV.X.D / FMV.X.W (raw bits, the binary32 sign-extended, no NaN-box check)
 * and FEQ/FLT/FLE on ordered operands (no NaN: no flags) write x[rd]. The slow
 * path's jitFp writes x[rd] in the STATE block, which is then read back, so
 * both paths leave the result in the register's local.
 */
function emitFpToXFast(e: Emitter, insn: number, f5: number, rd: number, rs2: number, rm: number, dbl: boolean,
  fa: number, fb: number, pc: bigint, k: number): boolean {
  const cmp = f5 === 0x14;
  if (cmp ? rm > 2 : rs2 !== 0 || rm !== 0) return false; // FCLASS (rm 1) and illegal encodings: jitFp
  emitFastCond(e, 0, false);
  e.lset(L_OK);
  if (cmp) emitOrderedPair(e, dbl, fa, fb);
  e.lget(L_OK).ifI64();
  if (cmp) {
    e.lget(T_A).lget(T_B).op([OP.f64_le, OP.f64_lt, OP.f64_eq][rm]).op(OP.i64_extend_i32_u);
  } else {
    e.sb().mem(OP.i64_load, 3, fa);
    if (!dbl) e.op(OP.i64_extend32_s);
  }
  elseJitFpToX(e, insn, rd, pc, k);
  return true;
}

/** Close a fast path that left an x-register result: otherwise jitFp computes it into x[rd]. */
function elseJitFpToX(e: Emitter, insn: number, rd: number, pc: bigint, k: number): void {
  e.else();
  emitFp(e, insn, rd, false, pc, k);
  e.sb().mem(OP.i64_load, 3, stateBlock + X_OFF + 8 * rd);
  e.end();
  e.setReg(rd);
}

/**
 * FCVT.D.S widens exactly: no flags for a non-NaN operand, whatever the
 * (valid) rounding mode. FCVT.S.D narrows with one RNE rounding (wasm's
 * demote), under the same conditions as the arithmetic: NX already set and a
 * normal binary32 result.
 */
function emitCvtFFFast(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, rm: number, dbl: boolean,
  pc: bigint, k: number): boolean {
  if (rs2 !== (dbl ? 0 : 1)) return false;
  const fa = stateBlock + F_OFF + 8 * rs1;
  if (dbl) {
    if (rm === 5 || rm === 6) return false;
    emitFastCond(e, 0, false);
    if (rm === 7) e.sb().mem(OP.i32_load, 2, stateBlock + FRM_OFF).i32c(4).op(OP.i32_le_u).op(OP.i32_and);
    e.lset(L_OK);
    e.sb().mem(OP.i64_load, 3, fa).lset(L_VA);
    emitBoxedCheck(e, [L_VA]);
    emitS2D(e, L_VA);
    e.ltee(T_R).lget(T_R).op(OP.f64_eq).lget(L_OK).op(OP.i32_and).lset(L_OK); // not a NaN
  } else {
    if (rm !== 0 && rm !== 7) return false;
    emitFastCond(e, rm, true);
    e.lset(L_OK);
    e.sb().mem(OP.f64_load, 3, fa).op(OP.f32_demote_f64, OP.f64_promote_f32).lset(T_R);
    emitRangeCheck(e, T_R, MIN_SAFE_S, MAX_S);
  }
  emitFastOrSlow(e, insn, rd, pc, k, () => emitStoreF(e, rd, T_R, dbl));
  return true;
}

/**
 * FCVT.{W,WU,L,LU}.{S,D} in RTZ, RNE, RDN or RUP (wasm trunc, nearest, floor,
 * ceil round to an integral f64 exactly) when the rounded value is in the
 * target's range (no NV) and either it equals the operand or fflags.NX is
 * already set (NX is the only other flag). The 32-bit results are
 * sign-extended, as RISC-V wants (FCVT.WU included). x[rd] is written as in
 * emitFpToXFast.
 */
function emitCvtToIntFast(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, rm: number, dbl: boolean,
  pc: bigint, k: number): boolean {
  if (rs2 > 3) return false;
  const round = [OP.f64_nearest, OP.f64_trunc, OP.f64_floor, OP.f64_ceil, -1, -1, -1, OP.f64_nearest][rm];
  if (round < 0) return false; // RMM has no wasm rounding; 5 and 6 are illegal
  const fa = stateBlock + F_OFF + 8 * rs1;
  emitFastCond(e, rm === 7 ? 7 : 0, false);
  e.lset(L_OK);
  if (dbl) {
    e.sb().mem(OP.f64_load, 3, fa).lset(T_A);
  } else {
    e.sb().mem(OP.i64_load, 3, fa).lset(L_VA);
    emitBoxedCheck(e, [L_VA]);
    emitS2D(e, L_VA);
    e.lset(T_A);
  }
  e.lget(T_A).op(round).lset(T_R);
  // Range of the rounded value (false for NaN); -0 counts as 0 for the unsigned ones.
  const [lo, hi, hiIncl] = [[-(2 ** 31), 2 ** 31 - 1, true], [0, 2 ** 32 - 1, true], [-(2 ** 63), 2 ** 63, false], [0, 2 ** 64, false]][rs2] as [number, number, boolean];
  e.lget(T_R).f64c(lo).op(OP.f64_ge).lget(T_R).f64c(hi).op(hiIncl ? OP.f64_le : OP.f64_lt).op(OP.i32_and);
  e.lget(L_OK).op(OP.i32_and).lset(L_OK);
  // Exact, or NX already set.
  e.lget(T_R).lget(T_A).op(OP.f64_eq);
  e.sb().mem(OP.i32_load, 2, stateBlock + FFLAGS_OFF).i32c(1).op(OP.i32_and).op(OP.i32_or);
  e.lget(L_OK).op(OP.i32_and).lset(L_OK);
  e.lget(L_OK).ifI64();
  e.lget(T_R).op(rs2 === 3 ? OP.i64_trunc_f64_u : OP.i64_trunc_f64_s);
  if (rs2 === 1) e.op(OP.i64_extend32_s);
  elseJitFpToX(e, insn, rd, pc, k);
  return true;
}

/**
 * FCVT.{S,D}.{W,WU,L,LU} of an integer the target format holds exactly
 * (|v| <= 2^53, binary32: 2^24): no flags, and the rounding mode does not
 * matter, but it must be a valid one (else jitFp raises illegal instruction).
 */
function emitCvtFromIntFast(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, rm: number, dbl: boolean,
  pc: bigint, k: number): boolean {
  if (rs2 > 3 || rm === 5 || rm === 6) return false;
  const lim = dbl ? 2n ** 53n : 2n ** 24n;
  e.reg(rs1);
  if (rs2 === 0) e.op(OP.i64_extend32_s); // W: the low 32 bits, sign-extended
  else if (rs2 === 1) e.i64c(0xffffffffn).op(OP.i64_and); // WU: zero-extended
  e.lset(L_VAL);
  emitFastCond(e, 0, false);
  if (rm === 7) e.sb().mem(OP.i32_load, 2, stateBlock + FRM_OFF).i32c(4).op(OP.i32_le_u).op(OP.i32_and);
  // Signed: -lim <= v <= lim, as v + lim <= 2 lim unsigned; unsigned: v <= lim.
  const signed = (rs2 & 1) === 0;
  if (signed) e.lget(L_VAL).i64c(lim).op(OP.i64_add).i64c(2n * lim).op(OP.i64_le_u);
  else e.lget(L_VAL).i64c(lim).op(OP.i64_le_u);
  e.op(OP.i32_and).lset(L_OK);
  emitFastOrSlow(e, insn, rd, pc, k, () => {
    e.lget(L_VAL).op(signed ? OP.f64_convert_i64_s : OP.f64_convert_i64_u).lset(T_R);
    emitStoreF(e, rd, T_R, dbl);
  }, true);
  return true;
}

/** AND into L_OK: both raw F values in i64 locals la, lb (and lc) are NaN-boxed. */
function emitBoxedCheck(e: Emitter, ls: number[]): void {
  e.lget(ls[0]);
  for (let i = 1; i < ls.length; i++) e.lget(ls[i]).op(OP.i64_and);
  e.i64c(NANBOX).op(OP.i64_and).i64c(NANBOX).op(OP.i64_eq).lget(L_OK).op(OP.i32_and).lset(L_OK);
}

/** Push the binary32 in the low half of i64 local l, widened (exactly) to f64. */
function emitS2D(e: Emitter, l: number): void {
  e.lget(l).op(OP.i32_wrap_i64, OP.f32_reinterpret_i32, OP.f64_promote_f32);
}

/** AND into L_OK: lo <= |f64 local t| <= hi (false for NaN). */
function emitRangeCheck(e: Emitter, t: number, lo: number, hi: number, strictHi = false): void {
  e.lget(t).op(OP.f64_abs).f64c(lo).op(OP.f64_ge);
  e.lget(t).op(OP.f64_abs).f64c(hi).op(strictHi ? OP.f64_lt : OP.f64_le).op(OP.i32_and);
  e.lget(L_OK).op(OP.i32_and).lset(L_OK);
}

/**
 * if (L_OK) { f[rd] = result } else { jitFp }. `store` pushes nothing; it
 * emits the store of the result. `readsX`: the instruction reads an x register.
 */
function emitFastOrSlow(e: Emitter, insn: number, rd: number, pc: bigint, k: number, store: () => void, readsX = false): void {
  e.lget(L_OK).ifVoid();
  store();
  e.else();
  if (readsX) e.storeDirty(); // jitFp reads x[rs1] from the STATE block
  emitFp(e, insn, rd, false, pc, k);
  e.end();
}

/** Store the f64 local t to f[rd], as binary64 or (dbl false; t exactly a binary32) NaN-boxed binary32. */
function emitStoreF(e: Emitter, rd: number, t: number, dbl: boolean): void {
  e.sb().lget(t);
  if (dbl) {
    e.mem(OP.f64_store, 3, stateBlock + F_OFF + 8 * rd);
  } else {
    e.op(OP.f32_demote_f64, OP.i32_reinterpret_f32, OP.i64_extend_i32_u).i64c(NANBOX).op(OP.i64_or);
    e.mem(OP.i64_store, 3, stateBlock + F_OFF + 8 * rd);
  }
}

/** OP-FP: FADD/FSUB/FMUL/FDIV/FSQRT/FSGNJ* inline; false when this encoding has no fast path. */
function emitFpFast(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, pc: bigint, k: number): boolean {
  const f5 = insn >>> 27;
  const fmt = (insn >>> 25) & 3;
  const rm = (insn >>> 12) & 7;
  if (fmt > 1) return false;
  const dbl = fmt === 1;
  const fa = stateBlock + F_OFF + 8 * rs1, fb = stateBlock + F_OFF + 8 * rs2;
  if (f5 === 0x1c || f5 === 0x14) return emitFpToXFast(e, insn, f5, rd, rs2, rm, dbl, fa, fb, pc, k);
  if (f5 === 0x1e) {
    // FMV.D.X / FMV.W.X: raw bits (binary32 NaN-boxed), no flags.
    if (rs2 !== 0 || rm !== 0) return false;
    e.reg(rs1).lset(L_VAL);
    const known = e.fsDirty;
    if (!known) {
      emitFastCond(e, 0, false);
      e.ifVoid();
    }
    e.sb().lget(L_VAL);
    if (!dbl) e.i64c(0xffffffffn).op(OP.i64_and).i64c(NANBOX).op(OP.i64_or);
    e.mem(OP.i64_store, 3, stateBlock + F_OFF + 8 * rd);
    if (!known) {
      e.else();
      e.storeDirty(); // jitFp reads x[rs1] from the STATE block
      emitFp(e, insn, rd, false, pc, k);
      e.end();
    }
    return true;
  }
  if (f5 === 5) {
    // FMIN/FMAX of ordered operands: wasm's min/max order -0 below +0, as RISC-V does; no flags.
    if (rm > 1) return false;
    emitFastCond(e, 0, false);
    e.lset(L_OK);
    emitOrderedPair(e, dbl, fa, fb);
    e.lget(T_A).lget(T_B).op(rm === 0 ? OP.f64_min : OP.f64_max).lset(T_R);
    emitFastOrSlow(e, insn, rd, pc, k, () => emitStoreF(e, rd, T_R, dbl));
    return true;
  }
  if (f5 === 8) return emitCvtFFFast(e, insn, rd, rs1, rs2, rm, dbl, pc, k);
  if (f5 === 0x18) return emitCvtToIntFast(e, insn, rd, rs1, rs2, rm, dbl, pc, k);
  if (f5 === 0x1a) return emitCvtFromIntFast(e, insn, rd, rs1, rs2, rm, dbl, pc, k);
  if (f5 === 4) {
    // FSGNJ/FSGNJN/FSGNJX: bit operations, no flags and no NaN canonicalisation.
    if (rm > 2) return false;
    const sb = dbl ? -0x8000000000000000n : 0x80000000n;
    e.sb().mem(OP.i64_load, 3, fa).lset(L_VA);
    e.sb().mem(OP.i64_load, 3, fb).lset(L_VAL);
    emitFastCond(e, 0, false);
    e.lset(L_OK);
    if (!dbl) emitBoxedCheck(e, [L_VA, L_VAL]);
    emitFastOrSlow(e, insn, rd, pc, k, () => {
      e.sb().lget(L_VA).i64c(~sb).op(OP.i64_and);
      if (rm === 0) e.lget(L_VAL).i64c(sb).op(OP.i64_and);
      else if (rm === 1) e.lget(L_VAL).i64c(sb).op(OP.i64_and).i64c(sb).op(OP.i64_xor);
      else e.lget(L_VA).lget(L_VAL).op(OP.i64_xor).i64c(sb).op(OP.i64_and);
      e.op(OP.i64_or).mem(OP.i64_store, 3, stateBlock + F_OFF + 8 * rd);
    });
    return true;
  }
  const sqrt = f5 === 0x0b;
  if (!(f5 <= 3 || (sqrt && rs2 === 0))) return false;
  if (rm !== 0 && rm !== 7) return false;
  emitFastCond(e, rm, true);
  e.lset(L_OK);
  const nat = sqrt ? -1 : dbl ? [OP.f64_add, OP.f64_sub, OP.f64_mul, OP.f64_div][f5] : [OP.f32_add, OP.f32_sub, OP.f32_mul, OP.f32_div][f5];
  if (dbl) {
    e.sb().mem(OP.f64_load, 3, fa);
    if (sqrt) e.op(OP.f64_sqrt);
    else e.sb().mem(OP.f64_load, 3, fb).op(nat);
    e.lset(T_R);
    emitRangeCheck(e, T_R, MIN_SAFE_D, MAX_D);
  } else {
    e.sb().mem(OP.i64_load, 3, fa).lset(L_VA);
    if (!sqrt) e.sb().mem(OP.i64_load, 3, fb).lset(L_VAL);
    emitBoxedCheck(e, sqrt ? [L_VA] : [L_VA, L_VAL]);
    // Native binary32 arithmetic rounds once, as softfloat does.
    e.lget(L_VA).op(OP.i32_wrap_i64, OP.f32_reinterpret_i32);
    if (sqrt) e.op(OP.f32_sqrt);
    else e.lget(L_VAL).op(OP.i32_wrap_i64, OP.f32_reinterpret_i32, nat);
    e.op(OP.f64_promote_f32).lset(T_R);
    emitRangeCheck(e, T_R, MIN_SAFE_S, MAX_S);
  }
  emitFastOrSlow(e, insn, rd, pc, k, () => emitStoreF(e, rd, T_R, dbl));
  return true;
}

/**
 * Make f64 local s, the sum RN(x + y), the sum rounded to odd instead: when
 * it is inexact (Knuth's TwoSum error is nonzero) and the last significand
 * bit is even, step one ulp towards the error, onto the odd neighbour (the
 * exact sum lies strictly between the two). `tmp` is an f64 local.
 */
function emitRoundToOdd(e: Emitter, x: number, y: number, s: number, tmp: number): void {
  // yv = s - x; err = (x - (s - yv)) + (y - yv)
  e.lget(s).lget(x).op(OP.f64_sub).lset(tmp);
  e.lget(x).lget(s).lget(tmp).op(OP.f64_sub).op(OP.f64_sub);
  e.lget(y).lget(tmp).op(OP.f64_sub).op(OP.f64_add).lset(tmp);
  // bits(s) += (err != 0 && even(s)) ? (sign(err) == sign(s) ? 1 : -1) : 0
  e.lget(s).op(OP.i64_reinterpret_f64).ltee(L_VA);
  e.lget(L_VA).lget(tmp).op(OP.i64_reinterpret_f64).op(OP.i64_xor).i64c(63n).op(OP.i64_shr_s).i64c(1n).op(OP.i64_or);
  e.i64c(0n);
  e.lget(tmp).f64c(0).op(OP.f64_ne).lget(L_VA).op(OP.i32_wrap_i64).i32c(1).op(OP.i32_and).op(OP.i32_eqz).op(OP.i32_and);
  e.op(OP.select).op(OP.i64_add).op(OP.f64_reinterpret_i64).lset(s);
}

/**
 * FMADD/FMSUB/FNMSUB/FNMADD inline; false when this encoding has no fast path.
 *
 * wasm has no fused multiply-add, so the exact value a*b + c is built with
 * error-free transformations and rounded once with the help of rounding to
 * odd (RO), which is emulated: RO(x) is x when representable, else the
 * neighbour of x whose last significand bit is odd. Its useful property: if a
 * value is rounded to odd on a grid at least two bits finer than the
 * breakpoints (midpoints) of a later round-to-nearest, the later rounding
 * gives the same result as rounding the exact value directly.
 *
 * binary64: (ph, pl) = TwoProduct(a, b) by Veltkamp splitting (exact when the
 * operands' exponents are within +-480: no overflow in the split, and the
 * error term's lowest bit, at least 2^-1064, is representable);
 * (sh, sl) = TwoSum(ph, c), exact. So a*b + c = sh + sl + pl exactly, and the
 * result is RN(sh + RO(sl + pl)). Why: if sl = 0, sl + pl = pl is exact. Else
 * ph + c was inexact, which rules out cancellation (Sterbenz), so
 * ulp(ph) <= 2 ulp(sh) and |sl + pl| <= 1.5 ulp(sh); then the result is within
 * one binade of sh, its midpoints are multiples of ulp(sh)/8 (so is sh),
 * while the RO grid of sl + pl is below ulp(sh) * 2^-51: sh + RO(sl + pl) is
 * never a midpoint and lies on the same side of every midpoint as the exact sum.
 *
 * binary32: the product of two binary32 values is exact in binary64, so
 * RN32(RO64(p + c)) is the fused result (64-bit RO has 29 spare bits).
 */
function emitFmaFast(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, pc: bigint, k: number): boolean {
  const fmt = (insn >>> 25) & 3;
  const rm = (insn >>> 12) & 7;
  const rs3 = insn >>> 27;
  if (fmt > 1 || (rm !== 0 && rm !== 7)) return false;
  const dbl = fmt === 1;
  const op = insn & 0x7f;
  // FMSUB: a*b - c; FNMSUB: -(a*b) + c; FNMADD: -(a*b) - c.
  const negA = op === 0x4b || op === 0x4f;
  const negC = op === 0x47 || op === 0x4f;
  const fr = (r: number) => stateBlock + F_OFF + 8 * r;
  emitFastCond(e, rm, true);
  e.lset(L_OK);
  if (dbl) {
    e.sb().mem(OP.f64_load, 3, fr(rs1));
    if (negA) e.op(OP.f64_neg);
    e.lset(T_A);
    e.sb().mem(OP.f64_load, 3, fr(rs2)).lset(T_B);
    e.sb().mem(OP.f64_load, 3, fr(rs3));
    if (negC) e.op(OP.f64_neg);
    e.lset(T_C);
    emitRangeCheck(e, T_A, 2 ** -480, 2 ** 481, true);
    emitRangeCheck(e, T_B, 2 ** -480, 2 ** 481, true);
    emitRangeCheck(e, T_C, 0, 2 ** 481, true);
    const SPLIT = 134217729; // 2^27 + 1
    e.lget(T_A).lget(T_B).op(OP.f64_mul).lset(T_PH);
    // Veltkamp: x = hi + lo with hi holding the top 26 bits.
    const split = (x: number, hi: number, lo: number) => {
      e.f64c(SPLIT).lget(x).op(OP.f64_mul).lset(T_T); // cx
      e.lget(T_T).lget(T_T).lget(x).op(OP.f64_sub).op(OP.f64_sub).lset(hi); // cx - (cx - x)
      e.lget(x).lget(hi).op(OP.f64_sub).lset(lo);
    };
    split(T_A, T_AH, T_AL);
    split(T_B, T_BH, T_BL);
    // pl = ((ah*bh - ph) + ah*bl + al*bh) + al*bl
    e.lget(T_AH).lget(T_BH).op(OP.f64_mul).lget(T_PH).op(OP.f64_sub);
    e.lget(T_AH).lget(T_BL).op(OP.f64_mul).op(OP.f64_add);
    e.lget(T_AL).lget(T_BH).op(OP.f64_mul).op(OP.f64_add);
    e.lget(T_AL).lget(T_BL).op(OP.f64_mul).op(OP.f64_add).lset(T_PL);
    // sh = ph + c, sl = its error
    e.lget(T_PH).lget(T_C).op(OP.f64_add).lset(T_SH);
    e.lget(T_SH).lget(T_PH).op(OP.f64_sub).lset(T_T); // yv
    e.lget(T_PH).lget(T_SH).lget(T_T).op(OP.f64_sub).op(OP.f64_sub);
    e.lget(T_C).lget(T_T).op(OP.f64_sub).op(OP.f64_add).lset(T_SL);
    // t = RO(sl + pl); r = RN(sh + t)
    e.lget(T_SL).lget(T_PL).op(OP.f64_add).lset(T_T);
    emitRoundToOdd(e, T_SL, T_PL, T_T, T_AH);
    e.lget(T_SH).lget(T_T).op(OP.f64_add).lset(T_R);
    emitRangeCheck(e, T_R, MIN_SAFE_D, MAX_D);
  } else {
    e.sb().mem(OP.i64_load, 3, fr(rs1)).lset(L_VA);
    e.sb().mem(OP.i64_load, 3, fr(rs2)).lset(L_VAL);
    e.sb().mem(OP.i64_load, 3, fr(rs3)).lset(L_EXITPC);
    emitBoxedCheck(e, [L_VA, L_VAL, L_EXITPC]);
    emitS2D(e, L_VA);
    if (negA) e.op(OP.f64_neg);
    emitS2D(e, L_VAL);
    e.op(OP.f64_mul).lset(T_PH); // exact: 24-bit by 24-bit significands
    emitS2D(e, L_EXITPC);
    if (negC) e.op(OP.f64_neg);
    e.lset(T_C);
    e.lget(T_PH).lget(T_C).op(OP.f64_add).lset(T_SH);
    emitRoundToOdd(e, T_PH, T_C, T_SH, T_T);
    e.lget(T_SH).op(OP.f32_demote_f64, OP.f64_promote_f32).lset(T_R);
    emitRangeCheck(e, T_R, MIN_SAFE_S, MAX_S);
  }
  emitFastOrSlow(e, insn, rd, pc, k, () => emitStoreF(e, rd, T_R, dbl));
  return true;
}

/**
 * Unless mstatus.FS is Dirty, run this instruction through the interpreter (which
 * checks FS, may trap, and marks FS Dirty) and leave the block after it.
 */
function emitFsGuard(e: Emitter, pc: bigint, k: number): void {
  if (e.fsDirty) return;
  e.fsDirty = true;
  e.sb().mem(OP.i32_load, 2, stateBlock + FS_DIRTY_OFF).op(OP.i32_eqz).ifVoid();
  e.storeDirty();
  e.storePc(pc);
  e.i32c(k).call(IMP.interp);
  e.exitStoredPc(k + 1);
  e.end();
}

/** FLW/FLD into f[rd] (in the STATE block); single-precision values are NaN-boxed. */
function emitFpLoad(e: Emitter, insn: number, rd: number, rs1: number, dbl: boolean, pc: bigint, next: bigint, k: number): void {
  const size = dbl ? 8 : 4;
  const box = () => { if (!dbl) e.i64c(-0x100000000n).op(OP.i64_or); };
  emitFsGuard(e, pc, k);
  e.reg(rs1).i64c(immI(insn)).op(OP.i64_add).lset(L_VA);
  e.sb();
  emitProbe(e, L_TLBL, size);
  e.ifI64();
  emitHostAddr(e);
  e.mem(dbl ? OP.i64_load : OP.i64_load32_u, dbl ? 3 : 2, 0);
  e.else();
  e.lget(L_VA).i32c(size).i32c(k).call(IMP.load);
  e.lset(L_VAL);
  e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).ifVoid();
  {
    e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).i32c(1).op(OP.i32_eq).ifVoid();
    e.exitConst(pc, k + 1);
    e.end();
    e.sb().lget(L_VAL);
    box();
    e.mem(OP.i64_store, 3, stateBlock + F_OFF + 8 * rd);
    e.exitConst(next, k + 1);
  }
  e.end();
  e.lget(L_VAL);
  e.end();
  box();
  e.mem(OP.i64_store, 3, stateBlock + F_OFF + 8 * rd);
}

/** FSW/FSD of f[rs2]. */
function emitFpStore(e: Emitter, insn: number, rs1: number, rs2: number, dbl: boolean, pc: bigint, next: bigint, k: number): void {
  const size = dbl ? 8 : 4;
  emitFsGuard(e, pc, k);
  e.reg(rs1).i64c(immS(insn)).op(OP.i64_add).lset(L_VA);
  e.sb().mem(OP.i64_load, 3, stateBlock + F_OFF + 8 * rs2).lset(L_VAL);
  emitProbe(e, L_TLBS, size);
  e.ifVoid();
  emitHostAddr(e);
  e.lget(L_VAL).mem(dbl ? OP.i64_store : OP.i64_store32, dbl ? 3 : 2, 0);
  e.else();
  e.lget(L_VA).i32c(size).lget(L_VAL).i32c(k).call(IMP.store);
  e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).ifVoid();
  {
    e.i64c(pc).i64c(next);
    e.sb().mem(OP.i32_load, 2, stateBlock + JIT_FLAG_OFF).i32c(1).op(OP.i32_eq).op(OP.select);
    e.exitDyn(k + 1);
  }
  e.end();
  e.end();
}

// Barriers for FENCEs that order stores before loads: needed only when harts run
// on several threads; with one thread every order is already sequential.
let orderingFences = false;

/** Emit real barriers for FENCE in the code translated from now on (a VM with several harts). */
export function setOrderingFences(on: boolean): void {
  orderingFences = on;
}

/**
 * True for a FENCE whose predecessor set has W and successor set has R (fence
 * rw,rw, w,r, ...): the one reordering x86-TSO makes. FENCE.TSO (fm = 1000)
 * orders everything but that. The interpreter has the same test (exec.ts).
 */
export function fenceOrdersStoreLoad(insn: number): boolean {
  return insn >>> 28 !== 8 && ((insn >>> 24) & 1) !== 0 && ((insn >>> 21) & 1) !== 0;
}

// Data TLB lookups are counted at STATE + LOOKUP_COUNTS_OFF (loads, then stores), as the interpreter does.
let countLookups = false;

/** Count TLB lookups in the code translated from now on (for --stats; it costs a little speed). */
export function setCountLookups(on: boolean): void {
  countLookups = on;
}

/** TLB probe for the address in local `va`: leaves i32 condition "fast path usable" on the stack. */
function emitProbe(e: Emitter, base: number, size: number, va = L_VA): void {
  e.tlbUsed.add(base);
  if (countLookups) {
    const at = stateBlock + LOOKUP_COUNTS_OFF + (base === L_TLBL ? 0 : 8);
    e.sb().sb().mem(OP.i64_load, 3, at).i64c(1n).op(OP.i64_add).mem(OP.i64_store, 3, at);
  }
  // e = base + ((va >> 12) & (TLB_SIZE - 1)) * 16, computed on the low 32 bits
  e.lget(base).lget(va).op(OP.i32_wrap_i64).i32c(8).op(OP.i32_shr_u).i32c((TLB_SIZE - 1) << 4).op(OP.i32_and)
    .op(OP.i32_add).ltee(L_E);
  // Compared with the page of the access's last byte: an entry at index i only
  // holds a page whose low ten bits are i, so an access that crosses into the next
  // page (whose index is i + 1) never matches and takes the slow path.
  e.mem(OP.i64_load, 3, 0).lget(va);
  if (size > 1) e.i64c(BigInt(size - 1)).op(OP.i64_add);
  e.i64c(12n).op(OP.i64_shr_u).lget(L_TAG).op(OP.i64_or).op(OP.i64_eq);
}

/** Host address for the fast path: wrap(va + addend). */
function emitHostAddr(e: Emitter, va = L_VA): void {
  e.lget(va).lget(L_E).mem(OP.i64_load, 3, 8).op(OP.i64_add).op(OP.i32_wrap_i64);
}

/** The local holding the address rs1 + imm of a load or store: rs1's own when imm is 0, else L_VA. */
function emitAddress(e: Emitter, rs1: number, imm: bigint): number {
  if (imm === 0n && rs1 !== 0) return e.regLocal(rs1);
  e.reg(rs1);
  if (imm !== 0n) e.i64c(imm).op(OP.i64_add);
  e.lset(L_VA);
  return L_VA;
}

const LOAD_OPS = [OP.i64_load8_s, OP.i64_load16_s, OP.i64_load32_s, OP.i64_load, OP.i64_load8_u, OP.i64_load16_u, OP.i64_load32_u];
const SIZES = [1, 2, 4, 8, 1, 2, 4];

function emitLoad(e: Emitter, insn: number, rd: number, rs1: number, f3: number, pc: bigint, next: bigint, k: number): void {
  const size = SIZES[f3];
  const va = emitAddress(e, rs1, immI(insn));
  emitProbe(e, L_TLBL, size, va);
  e.ifI64();
  emitHostAddr(e, va);
  e.mem(LOAD_OPS[f3], Math.log2(size), 0);
  e.else();
  const slow = e.c.length;
  // The module's slow-path function calls jitLoadX and returns (value, flag).
  // On a flag the core has left the exit pc and the count in the STATE block,
  // and x[rd] if the load completed, so the exit writes back the registers and
  // returns. An rd this block wrote and has not stored is written back there
  // too: its value goes in and comes back if the load trapped, and it is put
  // in rd's local before the exit.
  const dirty = e.isDirty(rd);
  const fns = e.slowFns();
  e.lget(va).i64c(pc).i32c(slowOp(k, next - pc, rd, f3));
  if (dirty) e.lget(rd - 1).call(fns.slowLoadOld).lset(L_SLOWX).ltee(rd - 1).slowExitIf(false);
  else e.call(fns.slowLoad).slowExitIf(true);
  e.end();
  e.size.memSlowBytes += e.c.length - slow;
  e.setReg(rd);
}

/** The op word of jitLoadX and jitStoreX (src/cpu/jit.ts): k, instruction length, rd, and funct3 or size. */
function slowOp(k: number, len: bigint, rd: number, low: number): number {
  return (k << 9) | (len === 4n ? 1 << 8 : 0) | (rd << 3) | low;
}

const STORE_OPS = [OP.i64_store8, OP.i64_store16, OP.i64_store32, OP.i64_store];

/** funct5 of the AMOs the fast path computes inline (LR and SC always go through jitAmo). */
const AMO_OPS = new Set([0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c]);

/**
 * LR, SC and AMOs. An AMO on an aligned address whose page the data TLB holds
 * for loads and for stores (so it is RAM, writable, readable, not watched, not
 * holding translated code and already marked dirty: see amoHostFast in mmu.ts)
 * runs inline; everything else calls the core's jitAmo, which does what the
 * interpreter does (and raises what it raises) without fetch or decode.
 */
function emitAmo(e: Emitter, insn: number, rd: number, rs1: number, rs2: number, f3: number, pc: bigint, next: bigint, k: number): EmitResult {
  const f5 = insn >>> 27;
  // Encodings the interpreter rejects are left to it.
  if ((f3 !== 2 && f3 !== 3) || !(AMO_OPS.has(f5) || f5 === 0x02 || f5 === 0x03) || (f5 === 0x02 && rs2 !== 0)) return 'stop';
  const w = f3 === 2;
  const size = w ? 4 : 8;
  e.reg(rs1).lset(L_VA);
  if (f5 !== 0x02) e.reg(rs2).lset(L_VAL);
  else e.i64c(0n).lset(L_VAL);
  const inline = AMO_OPS.has(f5);
  if (inline) {
    // aligned && load entry && store entry (the second probe leaves L_E at the store entry)
    e.lget(L_VA).i64c(BigInt(size - 1)).op(OP.i64_and).op(OP.i64_eqz);
    emitProbe(e, L_TLBL, size);
    e.op(OP.i32_and);
    emitProbe(e, L_TLBS, size);
    e.op(OP.i32_and);
    e.ifI64();
    emitHostAddr(e);
    e.lset(L_OK);
    emitAtomicRmw(e, f5, w);
    e.else();
  }
  e.i32c(insn | 0).lget(L_VA).lget(L_VAL).i32c(k).call(IMP.amo).lset(L_VAL);
  emitHelperFlagExits(e, rd, pc, next, k);
  e.lget(L_VAL);
  if (inline) e.end();
  e.setReg(rd);
  return 'ok';
}

/** The wasm read-modify-write for each AMO that has one, as [64-bit, 32-bit] sub-opcodes. */
const RMW_OPS = new Map<number, [number, number]>([
  [0x00, [ATOMIC.i64_rmw_add, ATOMIC.i64_rmw32_add_u]],
  [0x01, [ATOMIC.i64_rmw_xchg, ATOMIC.i64_rmw32_xchg_u]],
  [0x04, [ATOMIC.i64_rmw_xor, ATOMIC.i64_rmw32_xor_u]],
  [0x08, [ATOMIC.i64_rmw_or, ATOMIC.i64_rmw32_or_u]],
  [0x0c, [ATOMIC.i64_rmw_and, ATOMIC.i64_rmw32_and_u]],
]);

/**
 * The AMO at host address L_OK (aligned, RAM) as one atomic operation on the
 * shared memory, so it is atomic against harts on other threads; leaves the old
 * value (sign-extended for .W) for rd. Min/max have no wasm instruction: a
 * compare-and-swap loop, with L_EXITPC as scratch.
 */
function emitAtomicRmw(e: Emitter, f5: number, w: boolean): void {
  const align = w ? 2 : 3;
  const rmw = RMW_OPS.get(f5);
  if (rmw) {
    e.lget(L_OK).lget(L_VAL).atomic(w ? rmw[1] : rmw[0], align, 0);
    if (w) e.op(OP.i64_extend32_s);
    return;
  }
  e.lget(L_OK).atomic(w ? ATOMIC.i64_load32_u : ATOMIC.i64_load, align, 0);
  if (w) e.op(OP.i64_extend32_s);
  e.lset(L_VA);
  e.loopVoid();
  e.lget(L_OK).lget(L_VA);
  emitAmoResult(e, f5, w);
  e.atomic(w ? ATOMIC.i64_rmw32_cmpxchg_u : ATOMIC.i64_rmw_cmpxchg, align, 0);
  if (w) e.op(OP.i64_extend32_s);
  // seen != old: another hart changed it; go round with what it holds now
  e.ltee(L_EXITPC).lget(L_VA).op(OP.i64_ne);
  e.lget(L_EXITPC).lset(L_VA);
  e.brIf(0);
  e.end();
  e.lget(L_VA);
}

/** Push the value an AMO stores, from old (L_VA, sign-extended for .W) and rs2 (L_VAL). */
function emitAmoResult(e: Emitter, f5: number, w: boolean): void {
  const b = () => {
    e.lget(L_VAL);
    if (w) e.op(OP.i64_extend32_s);
  };
  switch (f5) {
    case 0x01: b(); return; // swap
    case 0x00: e.lget(L_VA); b(); e.op(OP.i64_add); return;
    case 0x04: e.lget(L_VA); b(); e.op(OP.i64_xor); return;
    case 0x0c: e.lget(L_VA); b(); e.op(OP.i64_and); return;
    case 0x08: e.lget(L_VA); b(); e.op(OP.i64_or); return;
  }
  // min/max: select(old, b, old OP b); unsigned .W compares the low words
  e.lget(L_VA);
  b();
  if (w && (f5 === 0x18 || f5 === 0x1c)) {
    e.lget(L_VA).op(OP.i32_wrap_i64);
    e.lget(L_VAL).op(OP.i32_wrap_i64);
    e.op(f5 === 0x18 ? OP.i32_lt_u : OP.i32_gt_u);
  } else {
    e.lget(L_VA);
    b();
    e.op(f5 === 0x10 ? OP.i64_lt_s : f5 === 0x14 ? OP.i64_gt_s : f5 === 0x18 ? OP.i64_lt_u : OP.i64_gt_u);
  }
  e.op(OP.select);
}

function emitStore(e: Emitter, insn: number, rs1: number, rs2: number, f3: number, pc: bigint, next: bigint, k: number): void {
  const size = 1 << f3;
  const va = emitAddress(e, rs1, immS(insn));
  // rs2 straight from its local (x0 through L_VAL).
  let val = L_VAL;
  if (rs2 !== 0) val = e.regLocal(rs2);
  else e.i64c(0n).lset(L_VAL);
  emitProbe(e, L_TLBS, size, va);
  e.ifVoid();
  emitHostAddr(e, va);
  e.lget(val).mem(STORE_OPS[f3], f3, 0);
  e.else();
  const slow = e.c.length;
  // Like a load's: on a flag the core has left the exit pc and the count.
  e.lget(va).lget(val).i64c(pc).i32c(slowOp(k, next - pc, 0, size)).call(e.slowFns().slowStore).slowExitIf(true);
  e.end();
  e.size.memSlowBytes += e.c.length - slow;
}

function emitOpImm(e: Emitter, insn: number, rd: number, rs1: number, f3: number): EmitResult {
  const imm = immI(insn);
  const sh = BigInt((insn >>> 20) & 63);
  switch (f3) {
    case 0: e.reg(rs1).i64c(imm).op(OP.i64_add); break;
    case 1:
      if ((insn >>> 26) !== 0) return 'stop';
      e.reg(rs1).i64c(sh).op(OP.i64_shl);
      break;
    case 2: e.reg(rs1).i64c(imm).op(OP.i64_lt_s, OP.i64_extend_i32_u); break;
    case 3: e.reg(rs1).i64c(imm).op(OP.i64_lt_u, OP.i64_extend_i32_u); break;
    case 4: e.reg(rs1).i64c(imm).op(OP.i64_xor); break;
    case 5: {
      const f6 = insn >>> 26;
      if (f6 === 0) e.reg(rs1).i64c(sh).op(OP.i64_shr_u);
      else if (f6 === 0x10) e.reg(rs1).i64c(sh).op(OP.i64_shr_s);
      else return 'stop';
      break;
    }
    case 6: e.reg(rs1).i64c(imm).op(OP.i64_or); break;
    default: e.reg(rs1).i64c(imm).op(OP.i64_and); break;
  }
  e.setReg(rd);
  return 'ok';
}

function emitOpImm32(e: Emitter, insn: number, rd: number, rs1: number, f3: number, f7: number, shamt: number): EmitResult {
  switch (f3) {
    case 0: e.reg(rs1).i64c(immI(insn)).op(OP.i64_add); sext32(e); break;
    case 1:
      if (f7 !== 0) return 'stop';
      e.reg(rs1).i64c(BigInt(shamt)).op(OP.i64_shl); sext32(e);
      break;
    case 5:
      if (f7 === 0) {
        e.reg(rs1).i64c(0xffffffffn).op(OP.i64_and).i64c(BigInt(shamt)).op(OP.i64_shr_u); sext32(e);
      } else if (f7 === 0x20) {
        e.reg(rs1); sext32(e); e.i64c(BigInt(shamt)).op(OP.i64_shr_s);
      } else return 'stop';
      break;
    default: return 'stop';
  }
  e.setReg(rd);
  return 'ok';
}

/**
 * MULH (f3 1), MULHSU (2), MULHU (3) inline: the high 64 bits of the 128-bit
 * product from four 32x32-bit products (wasm has no wide multiply). A call into
 * the core per multiply made the kernel's bignum and elliptic-curve code (its
 * crypto self-tests, a large part of a boot's instructions) pay a call for each
 * limb. The two cross products are computed twice rather than kept in locals.
 */
function emitMulHigh(e: Emitter, rs1: number, rs2: number, f3: number): void {
  const A = L_VA, B = L_VAL;
  e.reg(rs1).lset(A);
  e.reg(rs2).lset(B);
  const lo = (l: number) => e.lget(l).i64c(0xffffffffn).op(OP.i64_and);
  const hi = (l: number) => e.lget(l).i64c(32n).op(OP.i64_shr_u);
  hi(A); hi(B); e.op(OP.i64_mul); // ah*bh
  lo(A); hi(B); e.op(OP.i64_mul).i64c(32n).op(OP.i64_shr_u, OP.i64_add); // + (al*bh)>>32
  hi(A); lo(B); e.op(OP.i64_mul).i64c(32n).op(OP.i64_shr_u, OP.i64_add); // + (ah*bl)>>32
  lo(A); lo(B); e.op(OP.i64_mul).i64c(32n).op(OP.i64_shr_u); // carries of the middle column:
  lo(A); hi(B); e.op(OP.i64_mul).i64c(0xffffffffn).op(OP.i64_and, OP.i64_add);
  hi(A); lo(B); e.op(OP.i64_mul).i64c(0xffffffffn).op(OP.i64_and, OP.i64_add);
  e.i64c(32n).op(OP.i64_shr_u, OP.i64_add);
  // Signed operands: subtract the other operand for each negative one (two's complement).
  if (f3 === 1 || f3 === 2) e.lget(B).lget(A).i64c(63n).op(OP.i64_shr_s, OP.i64_and, OP.i64_sub);
  if (f3 === 1) e.lget(A).lget(B).i64c(63n).op(OP.i64_shr_s, OP.i64_and, OP.i64_sub);
}

function emitOp(e: Emitter, rd: number, rs1: number, rs2: number, f3: number, f7: number, w: boolean): EmitResult {
  if (f7 === 1) {
    // M extension
    if (!w) {
      if (f3 === 0) e.reg(rs1).reg(rs2).op(OP.i64_mul);
      else if (f3 <= 3) emitMulHigh(e, rs1, rs2, f3);
      else e.reg(rs1).reg(rs2).call([0, IMP.mulh, IMP.mulhsu, IMP.mulhu, IMP.div, IMP.divu, IMP.rem, IMP.remu][f3]);
    } else {
      if (f3 === 0) { e.reg(rs1).reg(rs2).op(OP.i64_mul); sext32(e); }
      else if (f3 >= 4) e.reg(rs1).reg(rs2).call([IMP.divw, IMP.divuw, IMP.remw, IMP.remuw][f3 - 4]);
      else return 'stop';
    }
    e.setReg(rd);
    return 'ok';
  }
  if (f7 !== 0 && f7 !== 0x20) return 'stop';
  const alt = f7 === 0x20;
  if (!w) {
    switch (f3) {
      case 0: e.reg(rs1).reg(rs2).op(alt ? OP.i64_sub : OP.i64_add); break;
      case 1: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_shl); break; // wasm masks the count to 6 bits
      case 2: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_lt_s, OP.i64_extend_i32_u); break;
      case 3: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_lt_u, OP.i64_extend_i32_u); break;
      case 4: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_xor); break;
      case 5: e.reg(rs1).reg(rs2).op(alt ? OP.i64_shr_s : OP.i64_shr_u); break;
      case 6: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_or); break;
      default: if (alt) return 'stop'; e.reg(rs1).reg(rs2).op(OP.i64_and); break;
    }
  } else {
    switch (f3) {
      case 0: e.reg(rs1).reg(rs2).op(alt ? OP.i64_sub : OP.i64_add); sext32(e); break;
      case 1:
        if (alt) return 'stop';
        e.reg(rs1).reg(rs2).i64c(31n).op(OP.i64_and).op(OP.i64_shl); sext32(e);
        break;
      case 5:
        if (alt) {
          e.reg(rs1); sext32(e); e.reg(rs2).i64c(31n).op(OP.i64_and).op(OP.i64_shr_s);
        } else {
          e.reg(rs1).i64c(0xffffffffn).op(OP.i64_and).reg(rs2).i64c(31n).op(OP.i64_and).op(OP.i64_shr_u); sext32(e);
        }
        break;
      default: return 'stop';
    }
  }
  e.setReg(rd);
  return 'ok';
}

export { sext };
