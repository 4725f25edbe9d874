// The VM worker's part of a live migration (the owner drives it with commands,
// see VmCommand in protocol.ts). Source: pages to send, round by round, from
// the core's dirty page map, copied out between slices; a hold that keeps the
// guest stopped for the final pass; a CPU throttle (auto-converge). Destination:
// received pages written into guest RAM, every index checked again.

import type { CpuCore } from '../../machine/cpu-core.js';
import { guestPages } from '../snapshot.js';
import { crc32 } from 'node:zlib';
import { FrameType, HEADER_BYTES, MAX_BATCH_PAGES, PAGE_SIZE, ZERO_PAGE_FLAG } from './stream.js';
import { DISK_BLOCK, blockCount, encodeDiskFrames } from './disk-blocks.js';
import type { SwappableDisk } from './swappable-disk.js';
import type { BlockBackend } from '../../storage/backend.js';

export interface PagesOut {
  /** Whole PAGES frames (header, checksum, payload), ready to be written to the stream as they are. */
  frames: Uint8Array;
  /** Pages in them. */
  pages: number;
  /** Pages still queued in this round after these. */
  left: number;
}

export class SourceMigration {
  /** Per page: 1 = still to send in this round. */
  private pending: Uint8Array;
  private cursor = 0;
  private queued = 0;
  /** The guest stays stopped (final pass, or waiting for the destination's word). */
  hold = false;
  /** Percent of host time the guest is kept off the CPU (auto-converge). */
  throttle = 0;

  constructor(private readonly core: CpuCore) {
    // The log starts before memory is read, so a page changed while round 0 runs is sent again.
    core.takeDirtyPages();
    const f = new Uint8Array(Math.floor(core.ram.length / PAGE_SIZE));
    for (const [first, count] of guestPages(core.ram).nonZeroRuns()) f.fill(1, first, first + count);
    this.pending = f;
    this.queued = count(f);
  }

  get left(): number {
    return this.queued;
  }

  /** The next round: every page written since the previous one started. Returns how many. */
  nextRound(): number {
    const d = this.core.takeDirtyPages();
    // Pages not sent yet stay queued (a round cut short by the final pass).
    for (let i = 0; i < d.length; i++) if (d[i]) this.pending[i] = 1;
    this.cursor = 0;
    this.queued = count(this.pending);
    return this.queued;
  }

  /** Pages written since the current round started (the next round's size, so far). */
  dirtyNow(): number {
    return this.core.dirtyPageCount();
  }

  /**
   * Copy up to `max` queued pages out of guest RAM as finished PAGES frames
   * (zero pages as a flag only), so the owner writes them to the socket
   * without touching them again.
   */
  take(max: number): PagesOut {
    const idx: number[] = [];
    const p = this.pending;
    while (idx.length < max && this.cursor < p.length) {
      if (p[this.cursor]) {
        p[this.cursor] = 0;
        idx.push(this.cursor);
      }
      this.cursor++;
    }
    this.queued -= idx.length;
    return { frames: encodePageFrames(this.core.ram, idx), pages: idx.length, left: this.queued };
  }
}

/** PAGES frames holding the pages `idx` of `ram` (at most MAX_BATCH_PAGES a frame), one buffer for all. */
export function encodePageFrames(ram: Uint8Array, idx: readonly number[]): Uint8Array {
  const words = new Int32Array(ram.buffer, ram.byteOffset, ram.byteLength >>> 2);
  const perPage = PAGE_SIZE >>> 2;
  const zero = new Uint8Array(idx.length);
  let size = 0;
  for (let at = 0; at < idx.length; at += MAX_BATCH_PAGES) {
    const n = Math.min(MAX_BATCH_PAGES, idx.length - at);
    size += HEADER_BYTES + 4 + 4 * n;
    for (let k = at; k < at + n; k++) {
      let z = 1;
      for (let i = idx[k] * perPage, e = i + perPage; i < e; i++) {
        if (words[i] !== 0) {
          z = 0;
          break;
        }
      }
      zero[k] = z;
      if (!z) size += PAGE_SIZE;
    }
  }
  const out = new Uint8Array(size);
  const dv = new DataView(out.buffer);
  let o = 0;
  for (let at = 0; at < idx.length; at += MAX_BATCH_PAGES) {
    const n = Math.min(MAX_BATCH_PAGES, idx.length - at);
    const head = o;
    const start = o + HEADER_BYTES;
    dv.setUint32(start, n, true);
    let d = start + 4 + 4 * n;
    for (let k = 0; k < n; k++) {
      const pg = idx[at + k];
      dv.setUint32(start + 4 + 4 * k, (zero[at + k] ? ZERO_PAGE_FLAG | pg : pg) >>> 0, true);
    }
    // Data pages in runs of consecutive guest pages, one copy per run.
    for (let k = 0; k < n; ) {
      if (zero[at + k]) {
        k++;
        continue;
      }
      let e = k + 1;
      while (e < n && !zero[at + e] && idx[at + e] === idx[at + e - 1] + 1) e++;
      const first = idx[at + k];
      out.set(ram.subarray(first * PAGE_SIZE, (first + e - k) * PAGE_SIZE), d);
      d += (e - k) * PAGE_SIZE;
      k = e;
    }
    dv.setUint8(head, FrameType.PAGES);
    dv.setUint32(head + 4, d - start, true);
    dv.setUint32(head + 8, crc32(out.subarray(start, d)) >>> 0, true);
    o = d;
  }
  return out;
}

function count(f: Uint8Array): number {
  let n = 0;
  for (let i = 0; i < f.length; i++) n += f[i];
  return n;
}

/** Destination: write a batch into guest RAM. Indexes were checked by the decoder; checked again here. */
export function applyPages(ram: Uint8Array, indexes: Uint32Array, offsets: Int32Array, data: Uint8Array): void {
  const pages = Math.floor(ram.length / PAGE_SIZE);
  for (let i = 0; i < indexes.length; i++) {
    const pg = indexes[i];
    if (pg >= pages) throw new Error(`page ${pg} is outside guest RAM`);
    const at = pg * PAGE_SIZE;
    const off = offsets[i];
    if (off < 0) ram.fill(0, at, at + PAGE_SIZE);
    else {
      if (off + PAGE_SIZE > data.length) throw new Error('page data out of range');
      ram.set(data.subarray(off, off + PAGE_SIZE), at);
    }
  }
}

export interface BlocksOut {
  /** Whole DISK frames, ready to be written to the stream. */
  frames: Uint8Array;
  blocks: number;
  left: number;
}

/** One byte per DISK_BLOCK of the disk: 1 unless the image knows the block reads as zeros (a hole, clusters allocated nowhere). */
export function allocatedBlocks(d: BlockBackend): Uint8Array {
  const map = new Uint8Array(blockCount(d.size));
  for (let b = 0; b < map.length; b++) {
    const at = b * DISK_BLOCK;
    map[b] = d.mayHoldData ? (d.mayHoldData(at, Math.min(DISK_BLOCK, d.size - at)) ? 1 : 0) : 1;
  }
  return map;
}

/**
 * Source, --copy-storage: in round 0 every block of every disk that may hold
 * data (allocatedBlocks: a raw file's holes and clusters no layer of a qcow2
 * image allocates are skipped unread; all-zero blocks read travel as a flag),
 * then in each round the blocks the guest wrote during the previous one.
 * Blocks are read through the VM's own open disks between slices, so a block
 * read is what the guest last wrote.
 */
export class DiskCopy {
  private readonly pending: Uint8Array[];
  private readonly dirty: Uint8Array[];
  private disk = 0;
  private cursor = 0;
  private queued = 0;

  constructor(private readonly disks: readonly SwappableDisk[]) {
    // Round 0 sends the blocks that may hold data: the destination's new images read as zeros elsewhere.
    this.pending = disks.map(allocatedBlocks);
    this.dirty = disks.map((d) => new Uint8Array(blockCount(d.size)));
    this.queued = this.pending.reduce((n, p) => n + p.length, 0);
    disks.forEach((d, i) => {
      d.onChange = (offset, len) => {
        if (len <= 0) return;
        const m = this.dirty[i];
        const last = Math.min(m.length - 1, Math.floor((offset + len - 1) / DISK_BLOCK));
        for (let b = Math.floor(offset / DISK_BLOCK); b <= last; b++) m[b] = 1;
      };
    });
  }

  get left(): number {
    return this.queued;
  }

  /** Blocks written since the current round started. */
  dirtyNow(): number {
    let n = 0;
    for (const m of this.dirty) for (let i = 0; i < m.length; i++) n += m[i];
    return n;
  }

  /** The next round: the blocks written during the previous one. */
  nextRound(): number {
    this.queued = 0;
    this.pending.forEach((p, i) => {
      const m = this.dirty[i];
      for (let b = 0; b < p.length; b++) {
        if (m[b]) p[b] = 1;
        this.queued += p[b];
      }
      m.fill(0);
    });
    this.disk = 0;
    this.cursor = 0;
    return this.queued;
  }

  /** Read up to `max` queued blocks of one disk as DISK frames. */
  take(max: number): BlocksOut {
    while (this.disk < this.pending.length) {
      const p = this.pending[this.disk];
      const idx: number[] = [];
      while (idx.length < max && this.cursor < p.length) {
        if (p[this.cursor]) {
          p[this.cursor] = 0;
          idx.push(this.cursor);
        }
        this.cursor++;
      }
      if (idx.length > 0) {
        this.queued -= idx.length;
        const disk = this.disks[this.disk];
        const frames = encodeDiskFrames(this.disk, idx, (b, into) => {
          const at = b * DISK_BLOCK;
          disk.read(at, into.subarray(0, Math.min(DISK_BLOCK, disk.size - at)));
        });
        return { frames, blocks: idx.length, left: this.queued };
      }
      this.disk++;
      this.cursor = 0;
    }
    return { frames: new Uint8Array(0), blocks: 0, left: 0 };
  }

  /** Stop tracking (the migration ended either way). */
  end(): void {
    for (const d of this.disks) d.onChange = null;
  }
}
