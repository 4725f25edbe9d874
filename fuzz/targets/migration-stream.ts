// The live-migration stream as the destination reads it (src/vm/migration/
// stream.ts): frames split at any byte boundary, headers, CRC-32 checks, JSON
// control messages, PAGES batches written into guest RAM (worker-side.ts
// applyPages). The only error allowed is MigrationStreamError (or the receiver's
// Error naming the bad page). Invariants: a decoded page lies inside RAM, its
// data inside the frame, and nothing outside the VM's RAM is ever written (RAM
// here is a view with guard bytes on both sides); DISK frames of --copy-storage
// likewise never write outside their disk.
//
// Random bytes would almost never carry a valid CRC, so the input is a small
// program that builds a stream (see build()): frames whose checksum the target
// computes, PAGES frames assembled from index lists, raw bytes, bad checksums.
import {
  FrameDecoder, FrameType, HEADER_BYTES, MigrationStreamError, PAGE_SIZE, decodeJson, decodePages, encodeFrame, type Frame, type FrameTypeValue,
} from '../../src/vm/migration/stream.js';
import { applyPages } from '../../src/vm/migration/worker-side.js';
import { DISK_BLOCK, applyDiskBlocks, decodeDiskBlocks } from '../../src/vm/migration/disk-blocks.js';
import { allowing, check } from '../lib/expect.js';

const GUARD = 4096;
const GUARD_BYTE = 0x5a;
const MAX_RAM_PAGES = 64;
const backing = new Uint8Array(GUARD + MAX_RAM_PAGES * PAGE_SIZE + GUARD);
const guards = new Uint8Array(backing.length).fill(GUARD_BYTE);
const TYPES = Object.values(FrameType) as FrameTypeValue[];
/** A disk of --copy-storage: three and a half blocks, so the last one is cut at the end. */
const DISK_SIZE = 3 * DISK_BLOCK + DISK_BLOCK / 2;
const diskBacking = new Uint8Array(GUARD + DISK_SIZE + GUARD);

class Reader {
  at = 0;
  constructor(private readonly d: Uint8Array) {}
  get left(): number {
    return this.d.length - this.at;
  }
  u8(): number {
    return this.at < this.d.length ? this.d[this.at++]! : 0;
  }
  u16(): number {
    return this.u8() | (this.u8() << 8);
  }
  bytes(n: number): Uint8Array {
    const b = this.d.subarray(this.at, Math.min(this.d.length, this.at + n));
    this.at += b.length;
    return b;
  }
}

/** A PAGES payload from an index list: count (true or a lie), entries with the zero flag, data pages filled with a pattern. */
function pagesPayload(r: Reader): Uint8Array {
  const n = r.u8() % 12;
  const lie = r.u8();
  const entries: number[] = [];
  let dataPages = 0;
  for (let i = 0; i < n; i++) {
    const w = r.u16() | (r.u8() & 0x80 ? 0x8000_0000 : 0);
    if (r.u8() & 1) entries.push((w | 0x7fff_0000) >>> 0); // far outside any RAM
    else entries.push(w >>> 0);
    if (!(entries[i]! & 0x8000_0000)) dataPages++;
  }
  const extra = lie & 0x10 ? (lie & 0x0f) - 8 : 0; // a data section too short or too long
  const out = new Uint8Array(4 + 4 * n + Math.max(0, (dataPages * PAGE_SIZE) + extra * 16));
  const dv = new DataView(out.buffer);
  dv.setUint32(0, lie & 0x20 ? (n + (lie & 0x0f)) >>> 0 : n, true);
  entries.forEach((w, i) => dv.setUint32(4 + 4 * i, w, true));
  for (let p = 4 + 4 * n, k = 0; p < out.length; p++, k++) out[p] = (k * 31 + lie) & 0xff;
  return out;
}

/**
 * The stream the input describes. Ops (low 2 bits of a byte): 0 raw bytes,
 * 1 a frame with payload bytes from the input and a correct checksum, 2 a
 * PAGES frame from an index list, 3 a frame whose header or checksum is wrong.
 */
function build(r: Reader): Uint8Array {
  const parts: Uint8Array[] = [];
  while (r.left > 0 && parts.length < 64) {
    const op = r.u8();
    const type = TYPES[(op >>> 2) % TYPES.length]!;
    switch (op & 3) {
      case 0:
        parts.push(r.bytes(r.u8()).slice());
        break;
      case 1:
        parts.push(encodeFrame(type, r.bytes(r.u16() % 2048).slice()));
        break;
      case 2:
        parts.push(encodeFrame(FrameType.PAGES, pagesPayload(r)));
        break;
      default: {
        const f = encodeFrame(type, r.bytes(r.u8()).slice());
        f[r.u8() % HEADER_BYTES]! ^= 1 << (r.u8() & 7);
        parts.push(f);
      }
    }
  }
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function receive(frame: Frame, ram: Uint8Array, pageCount: number): void {
  if (frame.type === FrameType.DISK) {
    const b = allowing([MigrationStreamError], () => decodeDiskBlocks(frame.payload, [DISK_SIZE]));
    if (!b) return;
    const disk = diskBacking.subarray(GUARD, GUARD + DISK_SIZE);
    allowing([MigrationStreamError], () => applyDiskBlocks(b, DISK_SIZE, (at, d) => {
      check(at >= 0 && at + d.length <= DISK_SIZE, `disk write at ${at}+${d.length} outside the disk`);
      disk.set(d, at);
    }, (at, len) => {
      check(at >= 0 && at + len <= DISK_SIZE, `disk zeroing at ${at}+${len} outside the disk`);
      disk.fill(0, at, at + len);
    }));
    return;
  }
  if (frame.type !== FrameType.PAGES) {
    allowing([MigrationStreamError], () => decodeJson(frame));
    return;
  }
  const batch = allowing([MigrationStreamError], () => decodePages(frame.payload, pageCount));
  if (!batch) return;
  for (let i = 0; i < batch.indexes.length; i++) {
    check(batch.indexes[i]! < pageCount, `decoded page ${batch.indexes[i]} outside RAM of ${pageCount} pages`);
    const off = batch.offsets[i]!;
    check(off === -1 || (off >= 0 && off + PAGE_SIZE <= batch.data.length), `page data at ${off} outside the frame`);
  }
  applyPages(ram, batch.indexes, batch.offsets, batch.data);
  // What was applied last for each page is what RAM holds.
  const last = new Map<number, number>();
  batch.indexes.forEach((pg, i) => last.set(pg, batch.offsets[i]!));
  for (const [pg, off] of last) {
    const got = ram.subarray(pg * PAGE_SIZE, (pg + 1) * PAGE_SIZE);
    const want = off < 0 ? new Uint8Array(PAGE_SIZE) : batch.data.subarray(off, off + PAGE_SIZE);
    check(Buffer.compare(got, want) === 0, `page ${pg} does not hold what the frame carried`);
  }
}

export function fuzz(data: Buffer): void {
  const r = new Reader(data);
  const c = r.u8();
  const pageCount = 1 + (r.u8() % MAX_RAM_PAGES);
  const stream = build(r);
  // Chunks of 1..8 bytes (every boundary inside a header) or larger ones, as TCP reads come.
  const chunk = c < 64 ? 1 + (c & 7) : 9 + ((c * 37) % 700);
  const whole = allowing([MigrationStreamError], () => new FrameDecoder().push(stream));
  backing.fill(GUARD_BYTE);
  diskBacking.fill(GUARD_BYTE);
  const ram = backing.subarray(GUARD, GUARD + pageCount * PAGE_SIZE);
  ram.fill(0);
  const dec = new FrameDecoder();
  let consumed = 0;
  let index = 0;
  for (let at = 0; at < stream.length; at += chunk) {
    const frames = allowing([MigrationStreamError], () => dec.push(stream.subarray(at, at + chunk)));
    if (!frames) break; // the stream is refused; a decoder that failed stays failed
    for (const f of frames) {
      const same = whole?.[index++];
      check(!whole || (same !== undefined && same.type === f.type && Buffer.compare(same.payload, f.payload) === 0), `frame ${index - 1} differs when the stream is read in ${chunk}-byte chunks`);
      consumed += HEADER_BYTES + f.payload.length;
      receive(f, ram, pageCount);
    }
  }
  check(consumed <= stream.length, 'decoded more bytes than were sent');
  // Where the stream is cut into reads must not change what it means.
  if (whole) check(consumed === whole.reduce((n, f) => n + HEADER_BYTES + f.payload.length, 0), 'chunked and whole decoding disagree');
  const end = GUARD + pageCount * PAGE_SIZE;
  check(Buffer.compare(backing.subarray(0, GUARD), guards.subarray(0, GUARD)) === 0, 'bytes before guest RAM were written');
  check(Buffer.compare(backing.subarray(end), guards.subarray(end)) === 0, 'bytes after guest RAM were written');
  const diskEnd = GUARD + DISK_SIZE;
  check(diskBacking.subarray(0, GUARD).every((x) => x === GUARD_BYTE) && diskBacking.subarray(diskEnd).every((x) => x === GUARD_BYTE), 'bytes outside the disk were written');
}
