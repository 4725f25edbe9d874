// SiFive PLIC as on QEMU virt: level-triggered sources 1..N-1, per-source priority,
// per-context enables, threshold and claim/complete. Contexts come in pairs per
// hart: context 2h is hart h in M-mode, 2h+1 is hart h in S-mode. The VM wires
// each context's output to the hart's MEIP / SEIP bit via onContextChange.

import type { MmioDevice, RestoreResult, Snapshottable } from './device.js';
import { isIntArray, isIntIn, isRecord } from './device.js';
import { PLIC_NUM_SOURCES, PLIC_PRIORITY_BITS } from './plic-sizes.js';

// ---- Register map (offsets from the PLIC base) ----
export const PLIC_PRIORITY_BASE = 0x0; // + 4 * source
export const PLIC_PENDING_BASE = 0x1000; // + 4 * word
export const PLIC_ENABLE_BASE = 0x2000; // + PLIC_ENABLE_STRIDE * ctx + 4 * word
export const PLIC_ENABLE_STRIDE = 0x80;
export const PLIC_CONTEXT_BASE = 0x20_0000; // + PLIC_CONTEXT_STRIDE * ctx
export const PLIC_CONTEXT_STRIDE = 0x1000;
export const PLIC_CONTEXT_THRESHOLD = 0x0;
export const PLIC_CONTEXT_CLAIM = 0x4;

export interface PlicOptions {
  name?: string;
  /** Number of harts; the PLIC has 2 contexts (M, S) per hart. Default 1. */
  harts?: number;
  /** Number of sources including the reserved source 0. Default 96 (sources 1..95). */
  numSources?: number;
  /** Called when a context's interrupt output changes level. */
  onContextChange?: (ctx: number, level: boolean) => void;
}

export interface PlicState {
  priority: number[];
  level: number[]; // 0/1 per source: input line level
  pending: number[]; // 0/1 per source
  claimed: number[]; // 0/1 per source: claimed and not yet completed
  enable: number[][]; // per context, one 0/1 per source
  threshold: number[]; // per context
}

export class Plic implements MmioDevice, Snapshottable {
  readonly name: string;
  readonly numSources: number;
  readonly numContexts: number;
  private readonly words: number;
  private readonly maxPriority = (1 << PLIC_PRIORITY_BITS) - 1;
  private readonly onContextChange: ((ctx: number, level: boolean) => void) | undefined;

  private readonly priority: Uint32Array;
  private readonly level: Uint8Array;
  /** Pending and claimed bits, 32 sources per word. */
  private readonly pending: Uint32Array;
  private readonly claimed: Uint32Array;
  /** Enable bits: words per context, context-major. */
  private readonly enable: Uint32Array;
  private readonly threshold: Uint32Array;
  private readonly output: Uint8Array;

  constructor(opts: PlicOptions = {}) {
    const harts = opts.harts ?? 1;
    const numSources = opts.numSources ?? PLIC_NUM_SOURCES;
    if (!Number.isInteger(harts) || harts < 1 || harts > 15872 / 2) throw new RangeError(`plic: bad hart count ${harts}`);
    if (!Number.isInteger(numSources) || numSources < 2 || numSources > 1024) {
      throw new RangeError(`plic: bad source count ${numSources}`);
    }
    this.name = opts.name ?? 'plic';
    this.numSources = numSources;
    this.numContexts = 2 * harts;
    this.words = Math.ceil(numSources / 32);
    this.onContextChange = opts.onContextChange;
    this.priority = new Uint32Array(numSources);
    this.level = new Uint8Array(numSources);
    this.pending = new Uint32Array(this.words);
    this.claimed = new Uint32Array(this.words);
    this.enable = new Uint32Array(this.words * this.numContexts);
    this.threshold = new Uint32Array(this.numContexts);
    this.output = new Uint8Array(this.numContexts);
  }

  // ---- Device side ----

  /** Set the level of interrupt source `src` (1..numSources-1). Out-of-range sources are ignored. */
  setIrq(src: number, level: boolean): void {
    if (!(src >= 1 && src < this.numSources)) return;
    this.level[src] = level ? 1 : 0;
    // Level-triggered gateway: the request follows the line while it is not in service.
    if (!this.isSet(this.claimed, src)) this.setBit(this.pending, src, level);
    this.update();
  }

  /** Whether context `ctx` currently asserts its interrupt output. */
  contextLevel(ctx: number): boolean {
    return this.output[ctx] === 1;
  }

  // ---- Guest side ----

  read(offset: number, size: 1 | 2 | 4): number {
    const word = this.readWord(offset & ~3);
    if (size === 4) return word >>> 0;
    const shift = (offset & 3) * 8;
    return (word >>> shift) & (size === 1 ? 0xff : 0xffff);
  }

  write(offset: number, size: 1 | 2 | 4, value: number): void {
    // The PLIC is specified for 32-bit accesses only; narrower writes are ignored.
    if (size !== 4 || offset & 3) return;
    value >>>= 0;
    if (offset < PLIC_PENDING_BASE) {
      const src = offset >>> 2;
      if (src >= 1 && src < this.numSources) {
        this.priority[src] = Math.min(value, this.maxPriority);
        this.update();
      }
      return;
    }
    if (offset < PLIC_ENABLE_BASE) return; // pending bits are read only
    if (offset < PLIC_CONTEXT_BASE) {
      const rel = offset - PLIC_ENABLE_BASE;
      const ctx = Math.floor(rel / PLIC_ENABLE_STRIDE);
      const w = (rel % PLIC_ENABLE_STRIDE) >>> 2;
      if (ctx < this.numContexts && w < this.words) {
        let v = value;
        if (w === 0) v &= ~1; // source 0 does not exist
        if (w === this.words - 1 && this.numSources % 32 !== 0) v &= (1 << this.numSources % 32) - 1;
        this.enable[ctx * this.words + w] = v >>> 0;
        this.update();
      }
      return;
    }
    const rel = offset - PLIC_CONTEXT_BASE;
    const ctx = Math.floor(rel / PLIC_CONTEXT_STRIDE);
    if (ctx >= this.numContexts) return;
    const reg = rel % PLIC_CONTEXT_STRIDE;
    if (reg === PLIC_CONTEXT_THRESHOLD) {
      this.threshold[ctx] = Math.min(value, this.maxPriority);
      this.update();
    } else if (reg === PLIC_CONTEXT_CLAIM) {
      this.complete(ctx, value);
    }
  }

  /** Claim for context `ctx`: the best pending source (0 if none), which stops being pending. */
  claim(ctx: number): number {
    const src = this.best(ctx);
    if (src !== 0) {
      this.setBit(this.pending, src, false);
      this.setBit(this.claimed, src, true);
      this.update();
    }
    return src;
  }

  /** Completion of source `src` by context `ctx`; ignored unless the source is enabled for ctx. */
  complete(ctx: number, src: number): void {
    if (!(src >= 1 && src < this.numSources) || ctx < 0 || ctx >= this.numContexts) return;
    if (!this.isEnabled(ctx, src)) return;
    this.setBit(this.claimed, src, false);
    // A line that is still high raises a new request.
    if (this.level[src]) this.setBit(this.pending, src, true);
    this.update();
  }

  // ---- State ----

  save(): PlicState {
    const bits = (arr: Uint32Array, base: number): number[] => {
      const out: number[] = [];
      for (let s = 0; s < this.numSources; s++) out.push((arr[base + (s >>> 5)]! >>> (s & 31)) & 1);
      return out;
    };
    const enable: number[][] = [];
    for (let c = 0; c < this.numContexts; c++) enable.push(bits(this.enable, c * this.words));
    return {
      priority: Array.from(this.priority),
      level: Array.from(this.level),
      pending: bits(this.pending, 0),
      claimed: bits(this.claimed, 0),
      enable,
      threshold: Array.from(this.threshold),
    };
  }

  restore(state: unknown): RestoreResult {
    const n = this.numSources;
    if (!isRecord(state)) return { ok: false, error: 'plic: state is not an object' };
    if (!isIntArray(state.priority, n, 0, this.maxPriority)) {
      return { ok: false, error: `plic: priority must be ${n} integers in 0..${this.maxPriority}` };
    }
    for (const k of ['level', 'pending', 'claimed'] as const) {
      if (!isIntArray(state[k], n, 0, 1)) return { ok: false, error: `plic: ${k} must be ${n} bits` };
    }
    if (!Array.isArray(state.enable) || state.enable.length !== this.numContexts) {
      return { ok: false, error: `plic: enable must have ${this.numContexts} contexts` };
    }
    for (const e of state.enable) {
      if (!isIntArray(e, n, 0, 1)) return { ok: false, error: `plic: each enable entry must be ${n} bits` };
    }
    if (!isIntArray(state.threshold, this.numContexts, 0, this.maxPriority)) {
      return { ok: false, error: `plic: threshold must be ${this.numContexts} integers in 0..${this.maxPriority}` };
    }
    const s = state as unknown as PlicState;
    this.priority.set(s.priority);
    this.priority[0] = 0;
    this.level.set(s.level);
    this.level[0] = 0;
    this.pending.fill(0);
    this.claimed.fill(0);
    this.enable.fill(0);
    for (let src = 1; src < n; src++) {
      this.setBit(this.pending, src, s.pending[src] === 1);
      this.setBit(this.claimed, src, s.claimed[src] === 1);
      for (let c = 0; c < this.numContexts; c++) {
        if (s.enable[c]![src] === 1) this.enable[c * this.words + (src >>> 5)]! |= 1 << (src & 31);
      }
    }
    this.threshold.set(s.threshold);
    this.update(true);
    return { ok: true };
  }

  // ---- Internals ----

  private readWord(offset: number): number {
    if (offset < PLIC_PENDING_BASE) {
      const src = offset >>> 2;
      return src < this.numSources ? this.priority[src]! : 0;
    }
    if (offset < PLIC_ENABLE_BASE) {
      const w = (offset - PLIC_PENDING_BASE) >>> 2;
      return w < this.words ? this.pending[w]! : 0;
    }
    if (offset < PLIC_CONTEXT_BASE) {
      const rel = offset - PLIC_ENABLE_BASE;
      const ctx = Math.floor(rel / PLIC_ENABLE_STRIDE);
      const w = (rel % PLIC_ENABLE_STRIDE) >>> 2;
      return ctx < this.numContexts && w < this.words ? this.enable[ctx * this.words + w]! : 0;
    }
    const rel = offset - PLIC_CONTEXT_BASE;
    const ctx = Math.floor(rel / PLIC_CONTEXT_STRIDE);
    if (ctx >= this.numContexts) return 0;
    const reg = rel % PLIC_CONTEXT_STRIDE;
    if (reg === PLIC_CONTEXT_THRESHOLD) return this.threshold[ctx]!;
    if (reg === PLIC_CONTEXT_CLAIM) return this.claim(ctx);
    return 0;
  }

  /** Highest-priority source that is pending, enabled for ctx and above its threshold (ties: lowest id). */
  private best(ctx: number): number {
    let bestSrc = 0;
    let bestPrio = this.threshold[ctx]!;
    const base = ctx * this.words;
    for (let w = 0; w < this.words; w++) {
      let bits = this.pending[w]! & this.enable[base + w]!;
      while (bits !== 0) {
        const bit = 31 - Math.clz32(bits & -bits);
        bits &= bits - 1;
        const src = w * 32 + bit;
        const p = this.priority[src]!;
        if (p > bestPrio) {
          bestPrio = p;
          bestSrc = src;
        }
      }
    }
    return bestSrc;
  }

  private update(force = false): void {
    for (let ctx = 0; ctx < this.numContexts; ctx++) {
      const level = this.best(ctx) !== 0 ? 1 : 0;
      if (level !== this.output[ctx] || force) {
        this.output[ctx] = level;
        this.onContextChange?.(ctx, level === 1);
      }
    }
  }

  private isEnabled(ctx: number, src: number): boolean {
    return ((this.enable[ctx * this.words + (src >>> 5)]! >>> (src & 31)) & 1) === 1;
  }

  private isSet(arr: Uint32Array, src: number): boolean {
    return ((arr[src >>> 5]! >>> (src & 31)) & 1) === 1;
  }

  private setBit(arr: Uint32Array, src: number, on: boolean): void {
    if (on) arr[src >>> 5]! |= 1 << (src & 31);
    else arr[src >>> 5]! &= ~(1 << (src & 31));
  }
}
