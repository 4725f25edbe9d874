// Warm start: the translation batches (one wasm module each) of one run, kept
// between runs by the host (src/vm/jit-cache.ts), so a later boot of the same
// guest skips the translator for code it has translated before.
//
// A batch's module bakes in where it lives: its table slots (a direct call
// checks the link slot holds the callee's table slot) and the addresses of the
// link slots its exits use. So a cached batch is put back at exactly those
// slots: a warm run keeps the table slots and link slots of the batches it read
// free, and makes its own translations above them.
//
// Validity: a batch is used only if every guest byte each of its blocks was
// translated from is, at that moment, the same in guest RAM (a byte-for-byte
// comparison), the file was made by the same translator with the same flags
// (the host's build id, see jit-cache.ts), and WebAssembly.validate accepts the
// module; the host checks a SHA-256 over the file before anything here sees it.
// Otherwise the queued heads are translated as usual. No Node API here.

import { MAX_LOOP_INSNS } from './translate.js';

/** One translated block of a batch. `off` and `lo` are RAM offsets: the head, and bytes[0]. */
export interface CachedBlock {
  va: bigint;
  off: number;
  lo: number;
  bytes: Uint8Array;
  /** Instructions of the block (its dispatch length); 0: the head was not translatable. */
  insns: number;
}

/** A link slot the batch's code uses, in allocation order from `link`. */
export interface CachedLink {
  target: bigint;
  dynamic: boolean;
  /** The target is in the page of the block that exits (it follows the code epoch: JIT_CODE_EPOCH_OFF). */
  local: boolean;
}

export interface CachedBatch {
  /** First table slot (function i of the module is at slot + i). */
  slot: number;
  /** Index of its first link slot. */
  link: number;
  links: CachedLink[];
  blocks: CachedBlock[];
  module: Uint8Array;
}

export interface WarmStats {
  /** Batches (modules) and blocks in the file read at start. */
  batches: number;
  blocks: number;
  /** Batches put back from the cache, and the blocks they installed. */
  used: number;
  usedBlocks: number;
  /** Batches whose guest bytes were not the cached ones when one of their heads got hot. */
  changed: number;
  /** Batches whose module did not validate. */
  invalid: number;
  /** Batches recorded in this run for the next (cached ones used plus new ones). */
  recorded: number;
}

const MAGIC = [0x54, 0x53, 0x56, 0x42, 0x41, 0x54, 0x30, 0x31]; // "TSVBAT01"
/** Blocks per batch, links per batch, bytes per module, bytes per block: sanity limits for reading. */
const MAX_BLOCKS = 4096;
const MAX_LINKS = 1 << 17;
const MAX_MODULE = 64 << 20;
const MAX_BLOCK_BYTES = 4096;
/** Module bytes one run records at most. */
const MAX_RECORDED_BYTES = 48 << 20;

/** Writes into a buffer that doubles as needed (a boot's batches are about 20 MiB). */
class Writer {
  private buf = new Uint8Array(1 << 16);
  private dv = new DataView(this.buf.buffer);
  size = 0;
  private room(n: number): void {
    if (this.size + n <= this.buf.length) return;
    let len = this.buf.length * 2;
    while (len < this.size + n) len *= 2;
    const next = new Uint8Array(len);
    next.set(this.buf.subarray(0, this.size));
    this.buf = next;
    this.dv = new DataView(next.buffer);
  }
  u32(v: number): void {
    this.room(4);
    this.dv.setUint32(this.size, v, true);
    this.size += 4;
  }
  u64(v: bigint): void {
    this.room(8);
    this.dv.setBigUint64(this.size, v, true);
    this.size += 8;
  }
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.raw(b);
  }
  raw(b: Uint8Array): void {
    this.room(b.length);
    this.buf.set(b, this.size);
    this.size += b.length;
  }
  finish(): Uint8Array {
    return this.buf.slice(0, this.size);
  }
}

class Reader {
  private dv: DataView;
  p = 0;
  constructor(private readonly b: Uint8Array) {
    this.dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }
  private need(n: number): void {
    if (this.p + n > this.b.length) throw new RangeError('truncated');
  }
  u32(): number {
    this.need(4);
    const v = this.dv.getUint32(this.p, true);
    this.p += 4;
    return v;
  }
  u64(): bigint {
    this.need(8);
    const v = this.dv.getBigUint64(this.p, true);
    this.p += 8;
    return v;
  }
  bytes(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) throw new RangeError(`a field of ${n} bytes`);
    this.need(n);
    const v = this.b.slice(this.p, this.p + n);
    this.p += n;
    return v;
  }
  raw(n: number): Uint8Array {
    this.need(n);
    const v = this.b.subarray(this.p, this.p + n);
    this.p += n;
    return v;
  }
  get done(): boolean {
    return this.p === this.b.length;
  }
}

/** The batches in the file format (the host adds its integrity check around it). */
export function encodeBatches(buildId: Uint8Array, batches: CachedBatch[]): Uint8Array {
  const w = new Writer();
  w.raw(new Uint8Array(MAGIC));
  w.bytes(buildId);
  w.u32(batches.length);
  for (const b of batches) {
    w.u32(b.slot);
    w.u32(b.link);
    w.u32(b.links.length);
    for (const l of b.links) {
      w.u64(l.target);
      w.u32((l.dynamic ? 1 : 0) | (l.local ? 2 : 0));
    }
    w.u32(b.blocks.length);
    for (const k of b.blocks) {
      w.u64(k.va);
      w.u32(k.off);
      w.u32(k.lo);
      w.u32(k.insns);
      w.bytes(k.bytes);
    }
    w.bytes(b.module);
  }
  return w.finish();
}

/** Parse batches; anything but exactly what encodeBatches wrote for `buildId` gives an error text. */
export function decodeBatches(file: Uint8Array, buildId: Uint8Array, ramSize: number): CachedBatch[] | string {
  try {
    const r = new Reader(file);
    const magic = r.raw(MAGIC.length);
    if (magic.some((v, i) => v !== MAGIC[i])) return 'not a translation cache (or another format version)';
    const id = r.bytes(64);
    if (id.length !== buildId.length || id.some((v, i) => v !== buildId[i])) return 'made by another translator build or flags';
    const n = r.u32();
    const out: CachedBatch[] = [];
    for (let i = 0; i < n; i++) {
      const slot = r.u32();
      const link = r.u32();
      const nl = r.u32();
      if (nl > MAX_LINKS) return `batch ${i}: ${nl} links`;
      const links: CachedLink[] = [];
      for (let j = 0; j < nl; j++) {
        const target = r.u64();
        const flags = r.u32();
        if (flags > 2) return `batch ${i}: bad link`; // (a dynamic link is never local)
        links.push({ target, dynamic: (flags & 1) !== 0, local: (flags & 2) !== 0 });
      }
      const nb = r.u32();
      if (nb === 0 || nb > MAX_BLOCKS) return `batch ${i}: ${nb} blocks`;
      const blocks: CachedBlock[] = [];
      for (let j = 0; j < nb; j++) {
        const va = r.u64();
        const off = r.u32();
        const lo = r.u32();
        const insns = r.u32();
        const bytes = r.bytes(MAX_BLOCK_BYTES);
        if (insns > 0 && (off < lo || off >= lo + bytes.length || lo + bytes.length > ramSize)) return `batch ${i}: block ${j} out of range`;
        if (insns > MAX_LOOP_INSNS) return `batch ${i}: block ${j} too long`;
        blocks.push({ va, off, lo, bytes, insns });
      }
      const module = r.bytes(MAX_MODULE);
      out.push({ slot, link, links, blocks, module });
    }
    if (!r.done) return 'trailing bytes';
    return out;
  } catch (e) {
    return e instanceof RangeError ? `truncated or damaged (${e.message})` : String(e);
  }
}

/** The build id a file was made for (for tools and tests), or null. */
export function batchesBuildId(file: Uint8Array): Uint8Array | null {
  try {
    const r = new Reader(file);
    if (r.raw(MAGIC.length).some((v, i) => v !== MAGIC[i])) return null;
    return r.bytes(64);
  } catch {
    return null;
  }
}

const keyOf = (va: bigint, off: number) => `${va.toString(16)}@${off.toString(16)}`;

/**
 * One run's warm start: the batches read from the cache, put back when one of
 * their heads gets hot, and the batches of this run for the next.
 */
export class WarmStart {
  readonly stats: WarmStats = { batches: 0, blocks: 0, used: 0, usedBlocks: 0, changed: 0, invalid: 0, recorded: 0 };
  /** Why the cache file was not used or written, for --stats ('' if it was). */
  note = '';
  /** Unused cached batches by the key of each translated head. */
  private byHead = new Map<string, CachedBatch>();
  private recorded: CachedBatch[] = [];
  /** Table slots and link slots the cached batches take: this run translates above them. */
  slotEnd = 0;
  linkEnd = 0;
  /** False after a flush: the slots are then reused, and neither cached nor new batches are kept. */
  active = true;

  /** `ramHost`: the linear-memory address of guest RAM; `ram`: guest RAM. */
  constructor(private readonly ramHost: number, private readonly ram: Uint8Array, readonly buildId: Uint8Array) {}

  /** Take the cached batches (each head's hot count is primed with `prime` so it is queued at first sight). */
  load(batches: CachedBatch[], prime: (hpc: number) => void): void {
    this.stats.batches = batches.length;
    for (const b of batches) {
      this.slotEnd = Math.max(this.slotEnd, b.slot + b.blocks.length);
      this.linkEnd = Math.max(this.linkEnd, b.link + b.links.length);
      for (const k of b.blocks) {
        if (k.insns === 0) continue;
        this.stats.blocks++;
        this.byHead.set(keyOf(k.va, k.off), b);
        prime(this.ramHost + k.off);
      }
    }
  }

  /** The unused cached batch that translated head (va, hpc), if any. */
  batchOf(va: bigint, hpc: number): CachedBatch | undefined {
    return this.active && this.byHead.size ? this.byHead.get(keyOf(va, hpc - this.ramHost)) : undefined;
  }

  /** The batch is about to be put back (or was rejected): it is not offered again. */
  take(b: CachedBatch): void {
    for (const k of b.blocks) if (this.byHead.get(keyOf(k.va, k.off)) === b) this.byHead.delete(keyOf(k.va, k.off));
  }

  /** Slot and link ranges of batches put back so far: [start, end) pairs. */
  private claimed: [number, number, number, number][] = [];

  /** Reserve the batch's table and link slots; false if a batch put back before overlaps them (a damaged file). */
  claim(b: CachedBatch): boolean {
    const s0 = b.slot, s1 = b.slot + b.blocks.length, l0 = b.link, l1 = b.link + b.links.length;
    for (const [a0, a1, k0, k1] of this.claimed) {
      if (s0 < a1 && a0 < s1) return false;
      if (l0 < l1 && k0 < k1 && l0 < k1 && k0 < l1) return false;
    }
    this.claimed.push([s0, s1, l0, l1]);
    return true;
  }

  /** Every guest byte the batch's blocks were translated from is the same in RAM now. */
  sameCode(b: CachedBatch): boolean {
    for (const k of b.blocks) {
      if (k.insns === 0) continue;
      if (k.lo + k.bytes.length > this.ram.length) return false;
      for (let i = 0; i < k.bytes.length; i++) if (this.ram[k.lo + i] !== k.bytes[i]) return false;
    }
    return true;
  }

  /** Copy guest RAM [lo, hi) (linear-memory addresses) for a block being recorded. */
  codeAt(lo: number, hi: number): { lo: number; bytes: Uint8Array } | null {
    const off = lo - this.ramHost;
    if (off < 0 || hi <= lo || hi - lo > MAX_BLOCK_BYTES || off + (hi - lo) > this.ram.length) return null;
    return { lo: off, bytes: this.ram.slice(off, off + (hi - lo)) };
  }

  private recordedBytes = 0;

  record(b: CachedBatch): void {
    // A file stays under the size the host reads (a boot of the default guest makes about 20 MiB).
    if (!this.active || this.recordedBytes + b.module.length > MAX_RECORDED_BYTES) return;
    this.recordedBytes += b.module.length;
    this.recorded.push(b);
    this.stats.recorded = this.recorded.length;
  }

  /** A flush reuses the slots: stop putting batches back and recording them. */
  stop(): void {
    this.active = false;
    this.byHead.clear();
  }

  /** Linear-memory address of a RAM offset. */
  hostAddr(off: number): number {
    return this.ramHost + off;
  }

  /** This run's batches in the file format (null if there is nothing worth writing). */
  encode(): Uint8Array | null {
    return this.recorded.length ? encodeBatches(this.buildId, this.recorded) : null;
  }
}
