// The live-migration stream: framed, checksummed messages between the source
// daemon and the destination daemon (docs/migration.md). Everything here is a
// pure function over bytes, so the decoder can be fuzzed: a stream is
// untrusted input on the destination, and every field is checked before use.
//
// A frame is a 12-byte header {type u8, 0 u8, 0 u16, payload length u32 LE,
// CRC-32 of the payload u32 LE} and the payload. Control messages carry JSON;
// PAGES carries a batch of guest pages in binary (see encodePages).

import { crc32 } from 'node:zlib';

export const MIGRATION_MAGIC = 'tsvisor-migration';
/** Bump on any change a reader of the previous version would misread. */
export const MIGRATION_VERSION = 1;
export const PAGE_SIZE = 4096;
export const HEADER_BYTES = 12;
/** Pages in one PAGES frame at most (4 MiB of data). */
export const MAX_BATCH_PAGES = 1024;
/** JSON messages (the device state is the largest) are at most this large. */
export const MAX_JSON_BYTES = 64 * 1024 * 1024;
/** Largest DISK payload: header, 64 block indexes and 64 blocks of 64 KiB (see disk-blocks.ts). */
const MAX_DISK_PAYLOAD = 8 + 64 * (4 + 65536);
const MAX_PAYLOAD = Math.max(MAX_JSON_BYTES, 4 + MAX_BATCH_PAGES * (4 + PAGE_SIZE), MAX_DISK_PAYLOAD);
/** Index bit of a PAGES entry: the page is all zeros and carries no data. */
export const ZERO_PAGE_FLAG = 0x8000_0000;
const ZERO_FLAG = ZERO_PAGE_FLAG;

export const FrameType = {
  /** source → destination: who is coming (JSON Hello). */
  HELLO: 1,
  /** destination → source: accepted, send memory. */
  ACCEPT: 2,
  /** destination → source: refused (JSON {error}); nothing was kept. */
  REFUSE: 3,
  /** source → destination: a batch of guest pages. */
  PAGES: 4,
  /** source → destination: a round of pages is complete (JSON {round}). */
  ROUND: 5,
  /** destination → source: every page up to this round is applied (JSON {round}). */
  ACK: 6,
  /** source → destination: the paused machine's device state (JSON {machine, instret}). */
  STATE: 7,
  /** source → destination: the source has released the disks; start the VM (JSON {}). */
  COMMIT: 8,
  /** destination → source: the VM runs here now (JSON {}). */
  RUNNING: 9,
  /** destination → source: the VM could not be started here (JSON {error}); the source resumes. */
  FAILED: 10,
  /** source → destination: give up (JSON {reason}); the destination discards everything. */
  CANCEL: 11,
  /** source → destination: a batch of disk blocks (--copy-storage; see disk-blocks.ts). */
  DISK: 12,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];
const TYPE_NAMES = new Map<number, string>(Object.entries(FrameType).map(([k, v]) => [v, k]));

export function frameTypeName(t: number): string {
  return TYPE_NAMES.get(t) ?? `type ${t}`;
}

export class MigrationStreamError extends Error {
  override name = 'MigrationStreamError';
}

export interface Frame {
  type: FrameTypeValue;
  payload: Uint8Array;
}

export function encodeFrame(type: FrameTypeValue, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const dv = new DataView(out.buffer);
  dv.setUint8(0, type);
  dv.setUint32(4, payload.length, true);
  dv.setUint32(8, crc32(payload) >>> 0, true);
  out.set(payload, HEADER_BYTES);
  return out;
}

export function encodeJson(type: FrameTypeValue, value: unknown): Uint8Array {
  return encodeFrame(type, new TextEncoder().encode(JSON.stringify(value)));
}

/**
 * Splits a byte stream into checked frames. push() returns the frames completed
 * by a chunk and throws MigrationStreamError on a bad header, a payload over the
 * limit or a checksum mismatch; after an error the decoder stays failed.
 */
export class FrameDecoder {
  /** Received bytes not yet part of a returned frame, as the chunks came (copied once). */
  private chunks: Uint8Array[] = [];
  /** Index of the first chunk still held. */
  private head = 0;
  private held = 0;
  /** The checked header of the frame being received, once its 12 bytes are in. */
  private header: { type: FrameTypeValue; len: number; crc: number } | null = null;
  private failed: string | null = null;

  push(chunk: Uint8Array, owned = false): Frame[] {
    if (this.failed) throw new MigrationStreamError(this.failed);
    // Chunks are kept, not joined on every push: joining made a frame arriving in
    // n chunks cost O(n^2) copying (a 4 MiB PAGES frame in 64 KiB reads decoded at a few MiB/s).
    if (chunk.length > 0) {
      // A copy unless the caller hands the chunk over (`owned`): it may reuse its buffer.
      let own = chunk;
      if (!owned) {
        own = new Uint8Array(chunk.length);
        own.set(chunk);
      }
      this.chunks.push(own);
      this.held += chunk.length;
    }
    // A frame is taken whole once its header and payload are in; its header is checked as soon as it is in.
    const out: Frame[] = [];
    try {
      for (;;) {
        if (!this.header) {
          if (this.held < HEADER_BYTES) break;
          const head = this.take(HEADER_BYTES);
          const dv = new DataView(head.buffer, head.byteOffset, HEADER_BYTES);
          const type = dv.getUint8(0);
          if (!TYPE_NAMES.has(type)) throw new MigrationStreamError(`unknown frame type ${type}`);
          if (dv.getUint8(1) !== 0 || dv.getUint16(2, true) !== 0) throw new MigrationStreamError('frame header: reserved bits set');
          const len = dv.getUint32(4, true);
          if (len > MAX_PAYLOAD) throw new MigrationStreamError(`${frameTypeName(type)} frame of ${len} bytes is over the limit (${MAX_PAYLOAD})`);
          this.header = { type: type as FrameTypeValue, len, crc: dv.getUint32(8, true) };
        }
        const h = this.header;
        if (this.held < h.len) break;
        const payload = this.take(h.len);
        this.header = null;
        if ((crc32(payload) >>> 0) !== h.crc) throw new MigrationStreamError(`${frameTypeName(h.type)} frame: checksum mismatch (corrupt stream)`);
        out.push({ type: h.type, payload });
      }
    } catch (e) {
      this.failed = (e as Error).message;
      throw e;
    }
    return out;
  }

  /** Consume the first n held bytes (n <= held). */
  private take(n: number): Uint8Array {
    if (n === 0) return new Uint8Array(0);
    this.held -= n;
    const first = this.chunks[this.head]!;
    let out: Uint8Array;
    if (first.length >= n) {
      // The chunk is this decoder's own (a copy, or handed over): a view of it is safe to hand out.
      out = first.subarray(0, n);
      if (first.length === n) this.head++;
      else this.chunks[this.head] = first.subarray(n);
    } else {
      out = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const c = this.chunks[this.head]!;
        const k = Math.min(c.length, n - got);
        out.set(c.subarray(0, k), got);
        got += k;
        if (k === c.length) this.head++;
        else this.chunks[this.head] = c.subarray(k);
      }
    }
    // Drop consumed chunks now and then (shifting one at a time is quadratic for tiny reads).
    if (this.head > 1024 || this.head === this.chunks.length) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  /** Bytes of an incomplete frame held back. */
  get pendingBytes(): number {
    return this.held + (this.header ? HEADER_BYTES : 0);
  }
}

/** The JSON object a control frame carries (throws MigrationStreamError if it is not one). */
export function decodeJson(f: Frame): Record<string, unknown> {
  if (f.type === FrameType.PAGES || f.type === FrameType.DISK) throw new MigrationStreamError(`${frameTypeName(f.type)} frame is not JSON`);
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(f.payload));
  } catch {
    throw new MigrationStreamError(`${frameTypeName(f.type)} frame: payload is not valid JSON`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MigrationStreamError(`${frameTypeName(f.type)} frame: payload is not a JSON object`);
  return v as Record<string, unknown>;
}

/**
 * A PAGES payload: count u32, then per page u32 (index, ZERO_FLAG for a zero
 * page), then the data of the non-zero pages in that order. `data` holds
 * whole pages; pages that are all zero are sent as a flag only.
 */
export function encodePages(indexes: ArrayLike<number>, data: Uint8Array): Uint8Array {
  const n = indexes.length;
  if (n === 0 || n > MAX_BATCH_PAGES) throw new RangeError(`a batch holds 1..${MAX_BATCH_PAGES} pages, not ${n}`);
  if (data.length !== n * PAGE_SIZE) throw new RangeError('data must hold one page per index');
  const words = new Int32Array(data.buffer, data.byteOffset, data.length >>> 2);
  const zero = new Uint8Array(n);
  let dataPages = 0;
  for (let p = 0; p < n; p++) {
    let z = true;
    for (let i = p * (PAGE_SIZE >>> 2), e = i + (PAGE_SIZE >>> 2); i < e; i++) {
      if (words[i] !== 0) {
        z = false;
        break;
      }
    }
    zero[p] = z ? 1 : 0;
    if (!z) dataPages++;
  }
  const out = new Uint8Array(4 + 4 * n + dataPages * PAGE_SIZE);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, n, true);
  let d = 4 + 4 * n;
  for (let p = 0; p < n; p++) {
    const idx = indexes[p];
    if (!Number.isInteger(idx) || idx < 0 || idx >= ZERO_FLAG) throw new RangeError(`bad page index ${idx}`);
    dv.setUint32(4 + 4 * p, (zero[p] ? ZERO_FLAG | idx : idx) >>> 0, true);
    if (!zero[p]) {
      out.set(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), d);
      d += PAGE_SIZE;
    }
  }
  return out;
}

export interface PageBatch {
  /** Page indexes in guest RAM (page 0 = the first RAM page). */
  indexes: Uint32Array;
  /** Per entry: offset of its data in `data`, or -1 for a zero page. */
  offsets: Int32Array;
  data: Uint8Array;
}

/** Parse and check a PAGES payload against a RAM of `pageCount` pages. */
export function decodePages(payload: Uint8Array, pageCount: number): PageBatch {
  if (payload.length < 4) throw new MigrationStreamError('PAGES frame: shorter than its count');
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const n = dv.getUint32(0, true);
  if (n === 0 || n > MAX_BATCH_PAGES) throw new MigrationStreamError(`PAGES frame: ${n} pages (1..${MAX_BATCH_PAGES} allowed)`);
  if (payload.length < 4 + 4 * n) throw new MigrationStreamError('PAGES frame: truncated index list');
  const indexes = new Uint32Array(n);
  const offsets = new Int32Array(n);
  let d = 4 + 4 * n;
  for (let p = 0; p < n; p++) {
    const w = dv.getUint32(4 + 4 * p, true);
    const idx = w & ~ZERO_FLAG;
    if (idx >= pageCount) throw new MigrationStreamError(`PAGES frame: page ${idx} is outside guest RAM (${pageCount} pages)`);
    indexes[p] = idx;
    if (w & ZERO_FLAG) offsets[p] = -1;
    else {
      offsets[p] = d;
      d += PAGE_SIZE;
    }
  }
  if (d !== payload.length) throw new MigrationStreamError(`PAGES frame: ${payload.length} bytes, its index list says ${d}`);
  return { indexes, offsets, data: payload };
}
