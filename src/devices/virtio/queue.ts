// Split virtqueues (virtio 1.2, section 2.7): the descriptor table, the driver
// (avail) ring and the device (used) ring in guest RAM. A descriptor chain
// becomes a validated list of readable then writable RAM ranges; anything a
// hostile driver can get wrong comes back as an error value with a reason and
// no access outside guest RAM ever happens.

import { type GuestMemory, ramRange, ramView } from './memory.js';

// ---- Descriptor and ring layout ----
export const DESC_SIZE = 16; // addr u64, len u32, flags u16, next u16
export const VIRTQ_DESC_F_NEXT = 1;
export const VIRTQ_DESC_F_WRITE = 2;
export const VIRTQ_DESC_F_INDIRECT = 4;
/** avail.flags bit: the driver asks for no used-buffer interrupts (ignored with EVENT_IDX). */
export const VIRTQ_AVAIL_F_NO_INTERRUPT = 1;
/** used.flags bit: the device asks for no notifications (ignored with EVENT_IDX). */
export const VIRTQ_USED_F_NO_NOTIFY = 1;
/** Largest queue a device may offer (split rings index with u16). */
export const VIRTQ_MAX_SIZE = 32768;

/** One guest RAM range of a chain, as an offset into the RAM block. */
export interface BufRange {
  /** Offset into GuestMemory.ram. */
  readonly off: number;
  readonly len: number;
}

/** A validated descriptor chain: readable buffers (device reads) first, then writable ones. */
export interface Chain {
  /** Head descriptor index, returned in the used ring. */
  readonly head: number;
  readonly readable: BufRange[];
  readonly writable: BufRange[];
  readonly readLen: number;
  readonly writeLen: number;
}

export type PopResult = { kind: 'empty' } | { kind: 'chain'; chain: Chain } | { kind: 'error'; error: string };

export interface QueueFeatures {
  indirect: boolean;
  eventIdx: boolean;
}

function hex(n: number): string {
  return Number.isFinite(n) ? `0x${n.toString(16)}` : String(n);
}

/**
 * Walk the chain starting at `head` of the descriptor table at `descAddr` with
 * `size` entries. Pure function of guest RAM: used by the queue and by tests.
 */
export function walkChain(mem: GuestMemory, descAddr: number, size: number, head: number, features: QueueFeatures, dv = ramView(mem)): { ok: true; chain: Chain } | { ok: false; error: string } {
  const readable: BufRange[] = [];
  const writable: BufRange[] = [];
  let readLen = 0;
  let writeLen = 0;
  if (!Number.isInteger(head) || head < 0 || head >= size) return { ok: false, error: `chain head ${head} is outside the queue (size ${size})` };

  // The table being walked: the queue's own, or one indirect table.
  let table = ramRange(mem, descAddr, size * DESC_SIZE);
  if (table < 0) return { ok: false, error: `descriptor table ${hex(descAddr)} is outside guest RAM` };
  let tableLen = size;
  let inIndirect = false;
  let idx = head;
  // Every descriptor visited counts; a chain can never be longer than the queue (or,
  // inside an indirect table, than that table), which also bounds a loop.
  let seen = 0;
  let limit = size;
  for (;;) {
    if (idx >= tableLen) {
      return { ok: false, error: `descriptor index ${idx} is outside the ${inIndirect ? 'indirect table' : 'queue'} (${tableLen} entries)` };
    }
    if (++seen > limit) {
      return { ok: false, error: inIndirect ? `indirect chain longer than its table (${tableLen} entries) or looping` : `descriptor chain longer than the queue size ${size} (a loop?)` };
    }
    const d = table + idx * DESC_SIZE;
    const lo = dv.getUint32(d, true);
    const hi = dv.getUint32(d + 4, true);
    const len = dv.getUint32(d + 8, true);
    const flags = dv.getUint16(d + 12, true);
    const next = dv.getUint16(d + 14, true);
    const addr = hi >= 0x20_0000 ? Number.NaN : hi * 0x1_0000_0000 + lo;

    if (flags & VIRTQ_DESC_F_INDIRECT) {
      if (!features.indirect) return { ok: false, error: 'indirect descriptor but VIRTIO_F_RING_INDIRECT_DESC was not negotiated' };
      if (inIndirect) return { ok: false, error: 'nested indirect descriptor (an indirect table may not point to another)' };
      if (flags & VIRTQ_DESC_F_NEXT) return { ok: false, error: 'indirect descriptor also has the NEXT flag' };
      if (flags & VIRTQ_DESC_F_WRITE) return { ok: false, error: 'indirect descriptor has the WRITE flag' };
      if (len === 0 || len % DESC_SIZE !== 0) return { ok: false, error: `indirect table length ${len} is not a non-zero multiple of ${DESC_SIZE}` };
      if (addr % DESC_SIZE !== 0) return { ok: false, error: `indirect table ${hex(addr)} is not ${DESC_SIZE}-byte aligned` };
      const t = ramRange(mem, addr, len);
      if (t < 0) return { ok: false, error: `indirect table ${hex(addr)}+${len} is outside guest RAM` };
      if (readable.length + writable.length > 0) {
        // Allowed by the spec only as the sole descriptor; we keep it strict and simple.
        return { ok: false, error: 'indirect descriptor after direct buffers in the same chain' };
      }
      table = t;
      tableLen = len / DESC_SIZE;
      if (tableLen > VIRTQ_MAX_SIZE) return { ok: false, error: `indirect table has ${tableLen} entries (more than ${VIRTQ_MAX_SIZE})` };
      inIndirect = true;
      idx = 0;
      seen = 0;
      limit = tableLen;
      continue;
    }

    const off = ramRange(mem, addr, len);
    if (off < 0) return { ok: false, error: `buffer ${hex(addr)}+${len} is outside guest RAM` };
    if (flags & VIRTQ_DESC_F_WRITE) {
      writable.push({ off, len });
      writeLen += len;
    } else {
      if (writable.length > 0) return { ok: false, error: 'readable buffer after a writable one' };
      readable.push({ off, len });
      readLen += len;
    }
    if (readLen > 0xffff_ffff || writeLen > 0xffff_ffff) return { ok: false, error: 'total buffer length of the chain overflows 32 bits' };
    if (!(flags & VIRTQ_DESC_F_NEXT)) break;
    idx = next;
  }
  return { ok: true, chain: { head, readable, writable, readLen, writeLen } };
}

/** Plain-data state of one queue (transport registers plus the device's ring positions). */
export interface QueueState {
  size: number;
  ready: boolean;
  desc: number;
  avail: number;
  used: number;
  lastAvail: number;
  usedIdx: number;
  signalledUsed: number;
  signalValid: boolean;
}

export class Virtqueue {
  /** Queue size the driver chose (power of two, 1..maxSize). */
  size: number;
  ready = false;
  descAddr = 0;
  availAddr = 0;
  usedAddr = 0;
  /** Next avail ring entry the device will take (free-running u16). */
  lastAvail = 0;
  /** Our copy of used.idx (free-running u16). */
  usedIdx = 0;
  /** used.idx when the driver was last interrupted (for event-index suppression). */
  private signalledUsed = 0;
  private signalValid = false;
  private availOff = 0;
  private usedOff = 0;
  features: QueueFeatures = { indirect: false, eventIdx: false };

  constructor(private readonly mem: GuestMemory, readonly maxSize: number) {
    this.size = maxSize;
  }

  reset(): void {
    this.size = this.maxSize;
    this.ready = false;
    this.descAddr = this.availAddr = this.usedAddr = 0;
    this.lastAvail = this.usedIdx = this.signalledUsed = 0;
    this.signalValid = false;
  }

  /** Check the driver's configuration when it sets QueueReady; null if fine, else why not. */
  activate(features: QueueFeatures): string | null {
    const n = this.size;
    this.features = features;
    if (n < 1 || n > this.maxSize || (n & (n - 1)) !== 0) return `queue size ${n} is not a power of two in 1..${this.maxSize}`;
    if (this.descAddr % 16 !== 0) return `descriptor table ${hex(this.descAddr)} is not 16-byte aligned`;
    if (this.availAddr % 2 !== 0) return `driver ring ${hex(this.availAddr)} is not 2-byte aligned`;
    if (this.usedAddr % 4 !== 0) return `device ring ${hex(this.usedAddr)} is not 4-byte aligned`;
    if (ramRange(this.mem, this.descAddr, n * DESC_SIZE) < 0) return `descriptor table ${hex(this.descAddr)} is outside guest RAM`;
    this.availOff = ramRange(this.mem, this.availAddr, 6 + 2 * n);
    if (this.availOff < 0) return `driver ring ${hex(this.availAddr)} is outside guest RAM`;
    this.usedOff = ramRange(this.mem, this.usedAddr, 6 + 8 * n);
    if (this.usedOff < 0) return `device ring ${hex(this.usedAddr)} is outside guest RAM`;
    this.ready = true;
    this.lastAvail = 0;
    this.usedIdx = 0;
    this.signalledUsed = 0;
    this.signalValid = false;
    return null;
  }

  private view: DataView | null = null;
  private viewOf: Uint8Array | null = null;

  /** A DataView on RAM, made once per RAM block: queues are looked at before and after every slice. */
  private get dv(): DataView {
    if (this.viewOf !== this.mem.ram || !this.view) {
      this.view = ramView(this.mem);
      this.viewOf = this.mem.ram;
    }
    return this.view;
  }

  /** Take the next available chain, if any. */
  pop(): PopResult {
    if (!this.ready) return { kind: 'empty' };
    const dv = this.dv;
    const availIdx = dv.getUint16(this.availOff + 2, true);
    const pending = (availIdx - this.lastAvail) & 0xffff;
    if (pending === 0) return { kind: 'empty' };
    if (pending > this.size) return { kind: 'error', error: `driver ring index ${availIdx} is ${pending} entries ahead (queue size ${this.size})` };
    const head = dv.getUint16(this.availOff + 4 + 2 * (this.lastAvail % this.size), true);
    this.lastAvail = (this.lastAvail + 1) & 0xffff;
    if (this.features.eventIdx) {
      dv.setUint16(this.usedOff + 4 + 8 * this.size, this.lastAvail, true); // avail_event
      this.mem.noteWrite?.(this.usedOff + 4 + 8 * this.size, 2);
    }
    const r = walkChain(this.mem, this.descAddr, this.size, head, this.features, dv);
    return r.ok ? { kind: 'chain', chain: r.chain } : { kind: 'error', error: r.error };
  }

  /** True if chains are waiting (without taking one). */
  hasAvailable(): boolean {
    if (!this.ready) return false;
    return this.dv.getUint16(this.availOff + 2, true) !== this.lastAvail;
  }

  /** Return a chain to the driver with `written` bytes written into its writable buffers. */
  pushUsed(head: number, written: number): void {
    if (!this.ready) return;
    const dv = this.dv;
    const e = this.usedOff + 4 + 8 * (this.usedIdx % this.size);
    dv.setUint32(e, head, true);
    dv.setUint32(e + 4, written >>> 0, true);
    this.usedIdx = (this.usedIdx + 1) & 0xffff;
    dv.setUint16(this.usedOff + 2, this.usedIdx, true);
    // Used-ring pages are device writes too (a live migration must resend them).
    this.mem.noteWrite?.(this.usedOff, 4);
    this.mem.noteWrite?.(e, 8);
  }

  /**
   * Whether the driver wants a used-buffer interrupt for what was pushed since the
   * last call (event index: used_event; otherwise the NO_INTERRUPT flag).
   */
  needsInterrupt(): boolean {
    if (!this.ready) return false;
    const dv = this.dv;
    const newIdx = this.usedIdx;
    const old = this.signalledUsed;
    const valid = this.signalValid;
    this.signalledUsed = newIdx;
    this.signalValid = true;
    if (valid && newIdx === old) return false;
    if (!this.features.eventIdx) return (dv.getUint16(this.availOff, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    const usedEvent = dv.getUint16(this.availOff + 4 + 2 * this.size, true);
    if (!valid) return true;
    // vring_need_event: interrupt if used_event lies in [old, new).
    return ((newIdx - usedEvent - 1) & 0xffff) < ((newIdx - old) & 0xffff);
  }

  save(): QueueState {
    return {
      size: this.size, ready: this.ready, desc: this.descAddr, avail: this.availAddr, used: this.usedAddr,
      lastAvail: this.lastAvail, usedIdx: this.usedIdx, signalledUsed: this.signalledUsed, signalValid: this.signalValid,
    };
  }

  /**
   * Restore a saved queue (snapshot input: untrusted). A ready queue is checked as
   * the driver's QueueReady is (size, alignment, rings inside RAM); indexes are u16.
   * Returns why not, changing nothing, or null.
   */
  restore(state: unknown, features: QueueFeatures): string | null {
    if (typeof state !== 'object' || state === null) return 'queue state is not an object';
    const s = state as Record<string, unknown>;
    const u16 = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffff;
    // An address register pair beyond 2^53 is NaN here (never in RAM), saved as null.
    const addr = (v: unknown) => v === null || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0);
    if (typeof s.ready !== 'boolean' || typeof s.signalValid !== 'boolean') return 'ready and signalValid must be booleans';
    if (!u16(s.lastAvail) || !u16(s.usedIdx) || !u16(s.signalledUsed)) return 'ring indexes must be 16-bit integers';
    // The driver may write any 32-bit size while the queue is not ready; QueueReady checks it.
    if (typeof s.size !== 'number' || !Number.isInteger(s.size) || s.size < 0 || s.size > 0xffff_ffff) return 'queue size must be a 32-bit integer';
    if (!addr(s.desc) || !addr(s.avail) || !addr(s.used)) return 'ring addresses must be non-negative integers';
    const saved = this.save();
    const savedFeatures = this.features;
    this.size = s.size;
    this.descAddr = (s.desc as number | null) ?? Number.NaN;
    this.availAddr = (s.avail as number | null) ?? Number.NaN;
    this.usedAddr = (s.used as number | null) ?? Number.NaN;
    this.features = features;
    if (s.ready) {
      const err = this.activate(features);
      if (err) {
        this.restoreUnchecked(saved);
        this.features = savedFeatures;
        return err;
      }
    }
    this.ready = s.ready;
    this.lastAvail = s.lastAvail as number;
    this.usedIdx = s.usedIdx as number;
    this.signalledUsed = s.signalledUsed as number;
    this.signalValid = s.signalValid;
    return null;
  }

  private restoreUnchecked(q: QueueState): void {
    this.size = q.size;
    this.ready = q.ready;
    this.descAddr = q.desc;
    this.availAddr = q.avail;
    this.usedAddr = q.used;
    this.lastAvail = q.lastAvail;
    this.usedIdx = q.usedIdx;
    this.signalledUsed = q.signalledUsed;
    this.signalValid = q.signalValid;
  }

  /**
   * Walk the chain at `head` again: a device that held a chain when the machine
   * was saved keeps only its head; the descriptors are still in guest RAM
   * (the driver may not touch them before the chain is used), so the restored
   * device rebuilds it, with the same checks as when it was first taken.
   */
  chainAt(head: number): { ok: true; chain: Chain } | { ok: false; error: string } {
    if (!this.ready) return { ok: false, error: 'held chain on a queue that is not ready' };
    return walkChain(this.mem, this.descAddr, this.size, head, this.features);
  }
}

/** Copy bytes out of a chain's readable buffers starting at byte `from` (gather). Returns bytes copied. */
export function gather(mem: GuestMemory, bufs: readonly BufRange[], from: number, dst: Uint8Array): number {
  let skip = from;
  let n = 0;
  for (const b of bufs) {
    if (n >= dst.length) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const take = Math.min(b.len - skip, dst.length - n);
    dst.set(mem.ram.subarray(b.off + skip, b.off + skip + take), n);
    n += take;
    skip = 0;
  }
  return n;
}

/** Copy bytes into a chain's writable buffers starting at byte `from` (scatter). Returns bytes copied. */
export function scatter(mem: GuestMemory, bufs: readonly BufRange[], from: number, src: Uint8Array): number {
  let skip = from;
  let n = 0;
  for (const b of bufs) {
    if (n >= src.length) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const take = Math.min(b.len - skip, src.length - n);
    mem.ram.set(src.subarray(n, n + take), b.off + skip);
    mem.noteWrite?.(b.off + skip, take);
    n += take;
    skip = 0;
  }
  return n;
}

/**
 * The RAM views of the byte range [from, from + len) of a buffer list, split at buffer
 * boundaries; buffers that follow each other in RAM share one view (Linux hands a
 * large request over page by page, and neighbouring pages make one host I/O
 * vector). `forWrite`: the caller will fill them, so they are reported as written.
 */
export function slices(mem: GuestMemory, bufs: readonly BufRange[], from: number, len: number, forWrite = false): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = from;
  let left = len;
  let start = -1;
  let end = -1;
  const emit = () => {
    if (start < 0) return;
    out.push(mem.ram.subarray(start, end));
    if (forWrite) mem.noteWrite?.(start, end - start);
  };
  for (const b of bufs) {
    if (left <= 0) break;
    if (skip >= b.len) {
      skip -= b.len;
      continue;
    }
    const take = Math.min(b.len - skip, left);
    const at = b.off + skip;
    if (at !== end) {
      emit();
      start = at;
    }
    end = at + take;
    left -= take;
    skip = 0;
  }
  emit();
  return out;
}
