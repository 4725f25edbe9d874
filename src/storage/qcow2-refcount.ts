// qcow2 reference counts: a refcount table of 64-bit offsets to refcount blocks,
// each block an array of (1 << refcount_order)-bit counts, one per host cluster.
//
// Allocation is always at the end of the file. A new cluster gets its refcount
// written before the caller writes anything that points at it (the caller's
// write-back fsyncs before writing such a reference). A new refcount block is
// written in full and fsynced before the table entry that points at it, and a
// grown table likewise before the header switches to it: a crash in between
// leaks clusters, it never leaves a reference to a free cluster or a table
// entry pointing at a block that never reached the disk. Such fsyncs come once
// per refcount block (thousands of clusters), not once per cluster.

import { DiskError } from './backend.js';
import type { ImageFile } from './qcow2-io.js';
import { putU64, OFF_REFTABLE_OFFSET } from './qcow2-header.js';

const hex = (n: number) => `0x${n.toString(16)}`;
const MAX_CACHED_BLOCKS = 512;

export class Refcounts {
  private readonly file: ImageFile;
  private readonly cs: number;
  private readonly clusterBits: number;
  private readonly order: number;
  private readonly bits: number;
  /** Refcount entries per block. */
  readonly perBlock: number;
  private readonly maxRefcount: number;
  private tableOffset: number;
  private tableClusters: number;
  private table: number[];
  private readonly blocks = new Map<number, Uint8Array>();
  /** Cluster index where the next search for a free cluster starts. */
  private nextFree: number;

  constructor(file: ImageFile, clusterBits: number, order: number, tableOffset: number, tableClusters: number) {
    this.file = file;
    this.clusterBits = clusterBits;
    this.cs = 2 ** clusterBits;
    this.order = order;
    this.bits = 2 ** order;
    this.perBlock = (this.cs * 8) / this.bits;
    this.maxRefcount = this.bits >= 53 ? Number.MAX_SAFE_INTEGER : 2 ** this.bits - 1;
    this.tableOffset = tableOffset;
    this.tableClusters = tableClusters;
    const raw = new Uint8Array(tableClusters * this.cs);
    file.readExact(tableOffset, raw, 'refcount table');
    const dv = new DataView(raw.buffer);
    this.table = new Array<number>(raw.length / 8);
    for (let i = 0; i < this.table.length; i++) {
      const hi = dv.getUint32(i * 8);
      const lo = dv.getUint32(i * 8 + 4) & ~0x1ff;
      if (hi >= 0x200000) throw new DiskError(`qcow2: refcount table entry ${i} is too large`);
      this.table[i] = hi * 0x1_0000_0000 + (lo >>> 0);
    }
    this.nextFree = Math.ceil(file.size / this.cs);
  }

  /** Offsets of the refcount table and blocks, for checks that walk the metadata. */
  get tableLocation(): { offset: number; clusters: number } {
    return { offset: this.tableOffset, clusters: this.tableClusters };
  }

  private loadBlock(ti: number): Uint8Array | null {
    if (ti >= this.table.length) return null;
    const off = this.table[ti];
    if (off === 0) return null;
    let blk = this.blocks.get(ti);
    if (blk) return blk;
    if (off % this.cs !== 0) throw new DiskError(`qcow2: refcount block at ${hex(off)} is not cluster aligned`);
    blk = new Uint8Array(this.cs);
    this.file.readExact(off, blk, 'refcount block');
    if (this.blocks.size >= MAX_CACHED_BLOCKS) this.blocks.delete(this.blocks.keys().next().value as number);
    this.blocks.set(ti, blk);
    return blk;
  }

  private getIn(blk: Uint8Array, idx: number): number {
    switch (this.order) {
      case 3: return blk[idx];
      case 4: return (blk[idx * 2] << 8) | blk[idx * 2 + 1];
      case 5: return new DataView(blk.buffer, blk.byteOffset).getUint32(idx * 4);
      case 6: {
        const dv = new DataView(blk.buffer, blk.byteOffset);
        const hi = dv.getUint32(idx * 8);
        if (hi >= 0x200000) throw new DiskError(`qcow2: refcount too large`);
        return hi * 0x1_0000_0000 + dv.getUint32(idx * 8 + 4);
      }
      default: {
        const bitPos = idx * this.bits;
        return (blk[bitPos >> 3] >> (bitPos & 7)) & (this.bits === 8 ? 0xff : (1 << this.bits) - 1);
      }
    }
  }

  /** Store v into blk; returns [byte offset, length] of what changed. */
  private setIn(blk: Uint8Array, idx: number, v: number): [number, number] {
    switch (this.order) {
      case 3: blk[idx] = v; return [idx, 1];
      case 4: blk[idx * 2] = v >> 8; blk[idx * 2 + 1] = v & 0xff; return [idx * 2, 2];
      case 5: new DataView(blk.buffer, blk.byteOffset).setUint32(idx * 4, v); return [idx * 4, 4];
      case 6: putU64(new DataView(blk.buffer, blk.byteOffset), idx * 8, v); return [idx * 8, 8];
      default: {
        const bitPos = idx * this.bits;
        const mask = ((1 << this.bits) - 1) << (bitPos & 7);
        const b = bitPos >> 3;
        blk[b] = (blk[b] & ~mask) | ((v << (bitPos & 7)) & mask);
        return [b, 1];
      }
    }
  }

  /** Refcount of host cluster `ci` (0 when no block covers it). */
  get(ci: number): number {
    const blk = this.loadBlock(Math.floor(ci / this.perBlock));
    return blk ? this.getIn(blk, ci % this.perBlock) : 0;
  }

  /** Set the refcount of host cluster `ci`, creating its refcount block if needed. */
  set(ci: number, v: number): void {
    if (v < 0 || v > this.maxRefcount) throw new DiskError(`qcow2: refcount ${v} out of range for cluster ${hex(ci * this.cs)}`);
    const ti = Math.floor(ci / this.perBlock);
    let blk = this.loadBlock(ti);
    if (!blk) {
      if (v === 0) return;
      this.createBlock(ti);
      blk = this.loadBlock(ti)!;
    }
    const [b, len] = this.setIn(blk, ci % this.perBlock, v);
    this.file.write(this.table[ti] + b, blk.subarray(b, b + len));
  }

  increment(ci: number): void {
    this.set(ci, this.get(ci) + 1);
  }

  decrement(ci: number): void {
    const v = this.get(ci);
    if (v === 0) throw new DiskError(`qcow2: refcount of cluster ${hex(ci * this.cs)} would go below 0`);
    this.set(ci, v - 1);
  }

  /**
   * Allocate `n` contiguous free clusters (refcount 1 each) and return the byte
   * offset of the first. The caller writes their contents before referencing them.
   */
  allocate(n: number): number {
    let start = this.nextFree;
    for (;;) {
      let ok = true;
      for (let i = 0; i < n; i++) {
        if (this.get(start + i) !== 0) {
          start = start + i + 1;
          ok = false;
          break;
        }
      }
      if (ok) break;
    }
    this.nextFree = start + n;
    for (let i = 0; i < n; i++) this.set(start + i, 1);
    return start * this.cs;
  }

  /** Make sure table entry `ti` points at a refcount block. */
  private createBlock(ti: number): void {
    if (ti >= this.table.length) {
      this.growTable(ti + 1);
      if (this.table[ti] !== 0) return; // the growth placed a block there
    }
    // The new block takes the next free cluster; it may count itself.
    let bc = this.nextFree;
    while (this.get(bc) !== 0) bc++;
    this.nextFree = bc + 1;
    const blk = new Uint8Array(this.cs);
    const selfCovered = Math.floor(bc / this.perBlock) === ti;
    if (selfCovered) this.setIn(blk, bc % this.perBlock, 1);
    this.file.write(bc * this.cs, blk);
    if (!selfCovered) this.set(bc, 1);
    this.file.sync(); // the block (and its own count) before the entry that points at it
    this.writeTableEntry(ti, bc * this.cs);
    this.blocks.set(ti, blk);
  }

  private writeTableEntry(ti: number, off: number): void {
    this.table[ti] = off;
    const e = new Uint8Array(8);
    putU64(new DataView(e.buffer), 0, off);
    this.file.write(this.tableOffset + ti * 8, e);
  }

  /**
   * Move the refcount table to a larger place at the end of the file, together
   * with the refcount blocks needed to count the new table and those blocks.
   * New table and blocks are written first, then the header is switched to them,
   * then the old table is freed.
   */
  private growTable(minEntries: number): void {
    const cs = this.cs;
    const per = this.perBlock;
    let s = this.nextFree;
    while (this.get(s) !== 0) s++;
    const wanted = Math.max(minEntries, this.table.length) * 2;
    let tClusters = Math.max(1, Math.ceil((wanted * 8) / cs));
    let missing: number[] = [];
    for (;;) {
      // Blocks needed to count clusters [s, s + tClusters + missing.length).
      let b = 0;
      for (;;) {
        const end = s + tClusters + b; // exclusive
        const list: number[] = [];
        for (let ti = Math.floor(s / per); ti <= Math.floor((end - 1) / per); ti++) {
          if (ti >= this.table.length || this.table[ti] === 0) list.push(ti);
        }
        if (list.length === b) {
          missing = list;
          break;
        }
        b = list.length;
      }
      const end = s + tClusters + missing.length;
      const entries = Math.max(minEntries, Math.floor((end - 1) / per) + 1, this.table.length);
      if (entries * 8 <= tClusters * cs) break;
      tClusters++;
    }
    const end = s + tClusters + missing.length;
    if (tClusters * cs > 64 * 1024 * 1024) throw new DiskError('qcow2: refcount table would grow too large');

    const newTable = new Array<number>((tClusters * cs) / 8).fill(0);
    for (let i = 0; i < this.table.length; i++) newTable[i] = this.table[i];
    missing.forEach((ti, k) => {
      newTable[ti] = (s + tClusters + k) * cs;
    });
    // Write the new blocks, counting every cluster of the new area they cover.
    missing.forEach((ti, k) => {
      const blk = new Uint8Array(cs);
      for (let c = Math.max(s, ti * per); c < Math.min(end, (ti + 1) * per); c++) this.setIn(blk, c % per, 1);
      this.file.write((s + tClusters + k) * cs, blk);
      this.blocks.set(ti, blk);
    });
    // Count new-area clusters covered by blocks that already exist.
    const missingSet = new Set(missing);
    for (let c = s; c < end; c++) {
      const ti = Math.floor(c / per);
      if (!missingSet.has(ti)) this.set(c, 1);
    }
    // The new table itself.
    const raw = new Uint8Array(tClusters * cs);
    const dv = new DataView(raw.buffer);
    newTable.forEach((off, i) => putU64(dv, i * 8, off));
    this.file.write(s * cs, raw);
    // Switch the header over (one small write).
    const hdr = new Uint8Array(12);
    const hdv = new DataView(hdr.buffer);
    putU64(hdv, 0, s * cs);
    hdv.setUint32(8, tClusters);
    const oldOffset = this.tableOffset;
    const oldClusters = this.tableClusters;
    this.file.sync(); // the new table and blocks before the header points at them
    this.file.write(OFF_REFTABLE_OFFSET, hdr);
    this.table = newTable;
    this.tableOffset = s * cs;
    this.tableClusters = tClusters;
    this.nextFree = end;
    // Free the old table, once the header no longer points at it.
    this.file.sync();
    for (let i = 0; i < oldClusters; i++) this.decrement(oldOffset / cs + i);
  }
}
