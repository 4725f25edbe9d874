// Disk contents in a migration stream (--copy-storage): DISK frames carry
// blocks of 64 KiB of one disk. Payload: {disk u8, 0 u8, 0 u16, count u32},
// then `count` words {block index u32, bit 31: an all-zero block without data},
// then the data of the other blocks in that order. The last block of a disk
// whose size is not a multiple of the block size is sent whole, zero-padded;
// the writer cuts it at the disk's end. Pure functions over bytes, like
// stream.ts: the decoder checks every field against the disks announced.

import { crc32 } from 'node:zlib';
import { FrameType, HEADER_BYTES, MigrationStreamError } from './stream.js';

export const DISK_BLOCK = 64 * 1024;
/** Blocks in one DISK frame at most (4 MiB of data). */
export const MAX_BATCH_BLOCKS = 64;
const ZERO_BLOCK = 0x8000_0000;
const HEAD = 8;

/** Blocks of a disk of `size` bytes. */
export function blockCount(size: number): number {
  return Math.ceil(size / DISK_BLOCK);
}

/**
 * Whole DISK frames (header and checksum included) for `blocks` of disk
 * `disk`, read with `read(block, into)` (into is zero-filled, DISK_BLOCK long).
 */
export function encodeDiskFrames(disk: number, blocks: readonly number[], read: (block: number, into: Uint8Array) => void): Uint8Array {
  if (!Number.isInteger(disk) || disk < 0 || disk > 255) throw new RangeError(`bad disk index ${disk}`);
  const parts: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(DISK_BLOCK);
  const words = new Int32Array(buf.buffer);
  for (let at = 0; at < blocks.length; at += MAX_BATCH_BLOCKS) {
    const group = blocks.slice(at, at + MAX_BATCH_BLOCKS);
    const datas: (Uint8Array | null)[] = [];
    for (const b of group) {
      buf.fill(0);
      read(b, buf);
      let zero = true;
      for (let i = 0; i < words.length; i++) {
        if (words[i] !== 0) {
          zero = false;
          break;
        }
      }
      datas.push(zero ? null : buf.slice());
    }
    const n = group.length;
    const len = HEAD + 4 * n + datas.filter((d) => d).length * DISK_BLOCK;
    const frame = new Uint8Array(HEADER_BYTES + len);
    const dv = new DataView(frame.buffer);
    const p = HEADER_BYTES;
    dv.setUint8(p, disk);
    dv.setUint32(p + 4, n, true);
    let d = p + HEAD + 4 * n;
    group.forEach((b, k) => {
      if (!Number.isInteger(b) || b < 0 || b >= ZERO_BLOCK) throw new RangeError(`bad block index ${b}`);
      const data = datas[k];
      dv.setUint32(p + HEAD + 4 * k, (data ? b : ZERO_BLOCK | b) >>> 0, true);
      if (data) {
        frame.set(data, d);
        d += DISK_BLOCK;
      }
    });
    dv.setUint8(0, FrameType.DISK);
    dv.setUint32(4, len, true);
    dv.setUint32(8, crc32(frame.subarray(HEADER_BYTES)) >>> 0, true);
    parts.push(frame);
    total += frame.length;
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const f of parts) {
    out.set(f, o);
    o += f.length;
  }
  return out;
}

export interface DiskBatch {
  disk: number;
  blocks: Uint32Array;
  /** Per block: offset of its data in `data`, or -1 for an all-zero block. */
  offsets: Int32Array;
  data: Uint8Array;
}

/** Parse and check a DISK payload against disks of these sizes (bytes). */
export function decodeDiskBlocks(payload: Uint8Array, diskSizes: readonly number[]): DiskBatch {
  if (payload.length < HEAD) throw new MigrationStreamError('DISK frame: shorter than its header');
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const disk = dv.getUint8(0);
  if (dv.getUint8(1) !== 0 || dv.getUint16(2, true) !== 0) throw new MigrationStreamError('DISK frame: reserved bits set');
  if (disk >= diskSizes.length) throw new MigrationStreamError(`DISK frame: disk ${disk} does not exist (${diskSizes.length} disks are copied)`);
  const n = dv.getUint32(4, true);
  if (n === 0 || n > MAX_BATCH_BLOCKS) throw new MigrationStreamError(`DISK frame: ${n} blocks (1..${MAX_BATCH_BLOCKS} allowed)`);
  if (payload.length < HEAD + 4 * n) throw new MigrationStreamError('DISK frame: truncated block list');
  const limit = blockCount(diskSizes[disk]);
  const blocks = new Uint32Array(n);
  const offsets = new Int32Array(n);
  let d = HEAD + 4 * n;
  for (let k = 0; k < n; k++) {
    const w = dv.getUint32(HEAD + 4 * k, true);
    const b = w & ~ZERO_BLOCK;
    if (b >= limit) throw new MigrationStreamError(`DISK frame: block ${b} is beyond disk ${disk} (${limit} blocks)`);
    blocks[k] = b;
    if (w & ZERO_BLOCK) offsets[k] = -1;
    else {
      offsets[k] = d;
      d += DISK_BLOCK;
    }
  }
  if (d !== payload.length) throw new MigrationStreamError(`DISK frame: ${payload.length} bytes, its block list says ${d}`);
  return { disk, blocks, offsets, data: payload };
}

/** Write a checked batch into a disk of `size` bytes (the last block is cut at the end). */
export function applyDiskBlocks(b: DiskBatch, size: number, write: (offset: number, data: Uint8Array) => void, zero: (offset: number, len: number) => void): void {
  for (let k = 0; k < b.blocks.length; k++) {
    const at = b.blocks[k] * DISK_BLOCK;
    const len = Math.min(DISK_BLOCK, size - at);
    if (len <= 0) throw new MigrationStreamError('DISK block beyond the disk');
    const off = b.offsets[k];
    if (off < 0) zero(at, len);
    else write(at, b.data.subarray(off, off + len));
  }
}
