// qcow2 disk images (versions 2 and 3) as a BlockBackend: reads through
// L1 -> L2 -> data clusters, backing files (raw or qcow2, chains of them), zero
// and compressed clusters; writes with cluster allocation at the end of the file,
// copy-on-write from the backing file and refcount updates (lazy refcounts off).
//
// Crash safety, as QEMU orders it: refcount increments and new data clusters
// are written at once, while L2 and L1 changes stay in memory (write-back) until
// flush() or too many tables are dirty. Writing them back is ordered by fsync:
// refcounts and data, then L2 tables, then L1 entries, then the refcount
// decrements of clusters no longer referenced (qcow2-metadata order, see
// writeBackMetadata). A crash, even one that reorders writes between fsyncs,
// may leak clusters but never leaves a reference to a cluster whose refcount
// is 0, and keeps everything written before the last completed flush().
//
// Images with the dirty bit set open read-only only (their refcounts may be
// stale); images with internal snapshots likewise (shared clusters are not
// handled on write). Limits documented in docs/storage-qcow2.md.

import { closeSync, fstatSync, openSync, readSync, writeSync, fsyncSync } from 'node:fs';
import { inflateRawSync, constants as zconst } from 'node:zlib';
import { DiskError, type BlockBackend } from './backend.js';
import { buildHeader, INCOMPAT_DIRTY, isQcow2Magic, OFF_AUTOCLEAR, parseHeader, type Qcow2Header } from './qcow2-header.js';
import { ImageFile } from './qcow2-io.js';
import { BufCursor, HostRun, spread, totalLength } from './vectored.js';
import { Refcounts } from './qcow2-refcount.js';
import { checkBacking, resolveBackingPath, type BackingPolicy } from './backing.js';

const hex = (n: number) => `0x${n.toString(16)}`;
const MAX_CACHED_L2 = 1024;
/** Dirty L2 tables kept in memory before they are written back without a flush(). */
const MAX_DIRTY_L2 = 64;
const COPIED = 0x80000000; // in the high word of L1/L2 entries
const COMPRESSED = 0x40000000;
const ZERO_FLAG = 1; // in the low word of an L2 entry (v3)

export interface Qcow2OpenOptions {
  readOnly?: boolean;
  /** Rules for backing files (backing.ts); formats are always taken from the headers. */
  backing?: BackingPolicy;
}

export interface Qcow2CreateOptions {
  size: number;
  clusterBits?: number;
  backing?: string;
  backingFormat?: 'raw' | 'qcow2';
}

/** Where one virtual cluster's data lives. */
type Mapping =
  | { kind: 'unallocated' }
  | { kind: 'zero'; host: number } // host 0: no preallocated cluster
  | { kind: 'data'; host: number; copied: boolean }
  | { kind: 'compressed'; host: number; csize: number };

/** A read-only raw file used as a backing file. */
class RawBacking implements BlockBackend {
  readonly readOnly = true;
  readonly size: number;
  private readonly fd: number;
  constructor(path: string) {
    try {
      this.fd = openSync(path, 'r');
    } catch (e) {
      throw new DiskError(`cannot open backing file ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    this.size = fstatSync(this.fd).size;
  }
  read(offset: number, buf: Uint8Array): void {
    const avail = Math.max(0, Math.min(buf.length, this.size - offset));
    let got = 0;
    while (got < avail) {
      const n = readSync(this.fd, buf, got, avail - got, offset + got);
      if (n === 0) break;
      got += n;
    }
    buf.fill(0, got);
  }
  write(): void { throw new DiskError('backing file is read-only'); }
  flush(): void {}
  discard(): void { throw new DiskError('backing file is read-only'); }
  writeZeroes(): void { throw new DiskError('backing file is read-only'); }
  close(): void { closeSync(this.fd); }
}

/** Is the file a qcow2 image (by its magic)? */
export function probeQcow2(path: string): boolean {
  const fd = openSync(path, 'r');
  try {
    const head = new Uint8Array(4);
    const n = readSync(fd, head, 0, 4, 0);
    return n === 4 && isQcow2Magic(head);
  } finally {
    closeSync(fd);
  }
}

export { resolveBackingPath };

function openBacking(imagePath: string, h: Qcow2Header, depth: number, policy: BackingPolicy): BlockBackend | undefined {
  const b = checkBacking(imagePath, h, depth, policy);
  if (b === undefined) return undefined;
  if (b.format === 'raw') return new RawBacking(b.path);
  return new Qcow2Image(b.path, true, depth + 1, policy);
}

/** Read the header (first cluster, at most 2 MiB) and validate it. */
function readHeader(file: ImageFile): Qcow2Header {
  const head = new Uint8Array(Math.min(file.size, 2 * 1024 * 1024));
  file.readUpTo(0, head);
  return parseHeader(head, file.size);
}

export class Qcow2Image implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  readonly header: Qcow2Header;
  readonly backing: BlockBackend | undefined;
  private readonly file: ImageFile;
  private readonly cs: number;
  private readonly l2Bits: number;
  private readonly l1: Uint32Array; // pairs: [hi, lo] per entry
  private readonly l2Cache = new Map<number, Uint8Array>();
  /** L2 tables changed in memory only: offset -> dirty byte range [from, to). */
  private readonly dirtyL2 = new Map<number, [number, number]>();
  /** L1 entries changed in memory only. */
  private readonly dirtyL1 = new Set<number>();
  /** Old mappings whose clusters lose a reference once the change is on disk. */
  private pendingRelease: Mapping[] = [];
  private refcounts: Refcounts | undefined;

  constructor(path: string, readOnly: boolean, depth = 0, policy: BackingPolicy = {}) {
    this.file = new ImageFile(path, readOnly);
    try {
      const h = readHeader(this.file);
      this.header = h;
      this.readOnly = readOnly;
      this.size = h.size;
      this.cs = h.clusterSize;
      this.l2Bits = h.clusterBits - 3;
      if (!readOnly) {
        if (h.incompatible & INCOMPAT_DIRTY) {
          throw new DiskError("qcow2: image is dirty (refcounts may be stale); open it read-only or repair it with 'qemu-img check -r all'");
        }
        if (h.nbSnapshots > 0) throw new DiskError('qcow2: images with internal snapshots can only be opened read-only');
      }
      const raw = new Uint8Array(h.l1Size * 8);
      this.file.readExact(h.l1Offset, raw, 'L1 table');
      const dv = new DataView(raw.buffer);
      this.l1 = new Uint32Array(h.l1Size * 2);
      for (let i = 0; i < h.l1Size * 2; i++) this.l1[i] = dv.getUint32(i * 4);
      if (!readOnly) {
        this.refcounts = new Refcounts(this.file, h.clusterBits, h.refcountOrder, h.refTableOffset, h.refTableClusters);
        if (h.autoclear !== 0) {
          // Extensions we do not keep up to date (bitmaps, ...) are invalidated, as the spec asks.
          this.file.write(OFF_AUTOCLEAR, new Uint8Array(8));
        }
      }
      this.backing = openBacking(path, h, depth, policy);
    } catch (e) {
      this.file.close();
      throw e;
    }
  }

  // ---- metadata lookup ----

  private l2Offset(l1i: number): number {
    const hi = this.l1[l1i * 2];
    const lo = this.l1[l1i * 2 + 1];
    const off = (hi & 0x00ffffff) * 0x1_0000_0000 + ((lo & 0xfffffe00) >>> 0);
    if (off % this.cs !== 0) throw new DiskError(`qcow2: L2 table offset ${hex(off)} (L1 entry ${l1i}) is not cluster aligned`);
    return off;
  }

  private loadL2(off: number): Uint8Array {
    let t = this.l2Cache.get(off);
    if (t) return t;
    t = new Uint8Array(this.cs);
    this.file.readExact(off, t, 'L2 table');
    if (this.l2Cache.size >= MAX_CACHED_L2) this.evictL2();
    this.l2Cache.set(off, t);
    return t;
  }

  /** Drop the oldest clean L2 table from the cache (dirty ones are never dropped). */
  private evictL2(): void {
    if (this.dirtyL2.size >= this.l2Cache.size) this.writeBackMetadata();
    for (const off of this.l2Cache.keys()) {
      if (!this.dirtyL2.has(off)) {
        this.l2Cache.delete(off);
        return;
      }
    }
  }

  private decodeL2(hi: number, lo: number): Mapping {
    if (hi & COMPRESSED) {
      const x = 62 - (this.header.clusterBits - 8);
      const e = (BigInt(hi) << 32n) | BigInt(lo);
      const host = Number(e & ((1n << BigInt(x)) - 1n));
      const sectors = Number((e >> BigInt(x)) & ((1n << BigInt(62 - x)) - 1n)) + 1;
      return { kind: 'compressed', host, csize: sectors * 512 - (host & 511) };
    }
    const host = (hi & 0x00ffffff) * 0x1_0000_0000 + ((lo & 0xfffffe00) >>> 0);
    if (host % this.cs !== 0) throw new DiskError(`qcow2: data cluster offset ${hex(host)} is not cluster aligned`);
    if (lo & ZERO_FLAG && this.header.version === 3) return { kind: 'zero', host };
    if (host === 0) return { kind: 'unallocated' };
    return { kind: 'data', host, copied: (hi & COPIED) !== 0 };
  }

  private lookup(vc: number): Mapping {
    const l1i = Math.floor(vc / 2 ** this.l2Bits);
    if (l1i >= this.header.l1Size) return { kind: 'unallocated' };
    const l2off = this.l2Offset(l1i);
    if (l2off === 0) return { kind: 'unallocated' };
    const t = this.loadL2(l2off);
    const i = vc % 2 ** this.l2Bits;
    const dv = new DataView(t.buffer);
    return this.decodeL2(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
  }

  private readCompressed(m: { host: number; csize: number }): Uint8Array {
    if (m.host >= this.file.size) throw new DiskError(`qcow2: compressed cluster at ${hex(m.host)} is past end of file`);
    const src = new Uint8Array(Math.min(m.csize, this.file.size - m.host));
    this.file.readExact(m.host, src, 'compressed cluster');
    let out: Uint8Array;
    try {
      out = inflateRawSync(src, { finishFlush: zconst.Z_SYNC_FLUSH, maxOutputLength: this.cs });
    } catch {
      throw new DiskError(`qcow2: compressed cluster at ${hex(m.host)} does not decompress`);
    }
    if (out.length < this.cs) throw new DiskError(`qcow2: compressed cluster at ${hex(m.host)} decompresses to ${out.length} bytes, not a cluster`);
    return out;
  }

  private readBacking(offset: number, buf: Uint8Array): void {
    if (!this.backing || offset >= this.backing.size) {
      buf.fill(0);
      return;
    }
    const n = Math.min(buf.length, this.backing.size - offset);
    this.backing.read(offset, buf.subarray(0, n));
    buf.fill(0, n);
  }

  /** Read part of a virtual cluster given its mapping. */
  private readMapped(m: Mapping, vOffset: number, intra: number, out: Uint8Array): void {
    switch (m.kind) {
      case 'unallocated':
        this.readBacking(vOffset, out);
        return;
      case 'zero':
        out.fill(0);
        return;
      case 'compressed':
        out.set(this.readCompressed(m).subarray(intra, intra + out.length));
        return;
      case 'data':
        if (m.host + intra + out.length > this.file.size) {
          throw new DiskError(`qcow2: data cluster at ${hex(m.host)} extends past end of file`);
        }
        this.file.readExact(m.host + intra, out, 'data cluster');
    }
  }

  private checkRange(offset: number, len: number): void {
    if (!Number.isSafeInteger(offset) || offset < 0 || len < 0 || offset + len > this.size) {
      throw new DiskError(`qcow2: access at ${offset} (+${len}) is outside the disk (${this.size} bytes)`);
    }
  }

  /** False when no cluster of the range is allocated in this image or its backing chain (or all are zero clusters). */
  mayHoldData(offset: number, len: number): boolean {
    this.checkRange(offset, len);
    if (len === 0) return false;
    const last = Math.floor((offset + len - 1) / this.cs);
    for (let vc = Math.floor(offset / this.cs); vc <= last; vc++) {
      const m = this.lookup(vc);
      if (m.kind === 'data' || m.kind === 'compressed') return true;
      if (m.kind !== 'unallocated' || !this.backing) continue;
      // The part of this cluster inside the range reads from the backing file.
      const from = Math.max(offset, vc * this.cs);
      const to = Math.min(offset + len, (vc + 1) * this.cs, this.backing.size);
      if (to > from && (this.backing.mayHoldData?.(from, to - from) ?? true)) return true;
    }
    return false;
  }

  /**
   * read() into several buffers: data clusters that follow one another in the
   * file are read with one preadv, whatever the cluster size.
   */
  readv(offset: number, bufs: readonly Uint8Array[]): void {
    const len = totalLength(bufs);
    this.checkRange(offset, len);
    const cur = new BufCursor(bufs);
    const run = new HostRun((host, b) => this.file.readvExact(host, b, 'data cluster'));
    let done = 0;
    while (done < len) {
      const pos = offset + done;
      const vc = Math.floor(pos / this.cs);
      const intra = pos % this.cs;
      const n = Math.min(this.cs - intra, len - done);
      const pieces = cur.take(n);
      const m = this.lookup(vc);
      if (m.kind === 'data') {
        const h = m.host + intra;
        if (h + n > this.file.size) throw new DiskError(`qcow2: data cluster at ${hex(m.host)} extends past end of file`);
        run.add(h, pieces, n);
      } else {
        run.flush();
        if (pieces.length === 1) this.readMapped(m, pos, intra, pieces[0]);
        else {
          const tmp = new Uint8Array(n);
          this.readMapped(m, pos, intra, tmp);
          spread(tmp, pieces);
        }
      }
      done += n;
    }
    run.flush();
  }

  read(offset: number, buf: Uint8Array): void {
    this.checkRange(offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const vc = Math.floor(pos / this.cs);
      const intra = pos % this.cs;
      const n = Math.min(this.cs - intra, buf.length - done);
      this.readMapped(this.lookup(vc), pos, intra, buf.subarray(done, done + n));
      done += n;
    }
  }

  // ---- writes ----

  private rc(): Refcounts {
    if (this.readOnly || !this.refcounts) throw new DiskError('qcow2: image is read-only');
    return this.refcounts;
  }

  private writeL1Entry(l1i: number, off: number): void {
    const hi = (Math.floor(off / 0x1_0000_0000) | COPIED) >>> 0;
    const lo = off >>> 0;
    this.l1[l1i * 2] = hi;
    this.l1[l1i * 2 + 1] = lo;
    this.dirtyL1.add(l1i);
  }

  private markL2Dirty(l2off: number, from: number, to: number): void {
    const r = this.dirtyL2.get(l2off);
    this.dirtyL2.set(l2off, r ? [Math.min(r[0], from), Math.max(r[1], to)] : [from, to]);
  }

  /** The L2 table for virtual cluster vc, allocated if needed and writable in place. */
  private writableL2(vc: number): number {
    const rc = this.rc();
    const l1i = Math.floor(vc / 2 ** this.l2Bits);
    if (l1i >= this.header.l1Size) throw new DiskError(`qcow2: L1 table too small for cluster ${vc}`);
    const off = this.l2Offset(l1i);
    if (off === 0) {
      if (this.dirtyL2.size >= MAX_DIRTY_L2) this.writeBackMetadata();
      const n = rc.allocate(1);
      if (this.l2Cache.size >= MAX_CACHED_L2) this.evictL2();
      this.l2Cache.set(n, new Uint8Array(this.cs));
      this.markL2Dirty(n, 0, this.cs); // a new table is written whole
      this.writeL1Entry(l1i, n);
      return n;
    }
    if ((this.l1[l1i * 2] & COPIED) === 0) {
      const refs = rc.get(off / this.cs);
      if (refs !== 1) throw new DiskError(`qcow2: L2 table at ${hex(off)} is shared (refcount ${refs}); writing it is not supported`);
      this.writeL1Entry(l1i, off);
    }
    return off;
  }

  /** Refuse to write guest data over the header, the L1 table or the refcount table (a corrupt L2 entry). */
  private checkNotMetadata(host: number): void {
    const h = this.header;
    const loc = this.rc().tableLocation;
    const inside = (start: number, len: number) => host + this.cs > start && host < start + len;
    if (host < this.cs || inside(h.l1Offset, h.l1Size * 8) || inside(loc.offset, loc.clusters * this.cs)) {
      throw new DiskError(`qcow2: data cluster at ${hex(host)} overlaps image metadata (the image is corrupt)`);
    }
  }

  private writeL2Entry(l2off: number, vc: number, hi: number, lo: number): void {
    const t = this.loadL2(l2off);
    const i = vc % 2 ** this.l2Bits;
    const dv = new DataView(t.buffer);
    dv.setUint32(i * 8, hi >>> 0);
    dv.setUint32(i * 8 + 4, lo >>> 0);
    this.markL2Dirty(l2off, i * 8, i * 8 + 8);
  }

  /** The clusters behind an old mapping lose a reference once the new mapping is on disk. */
  private release(m: Mapping): void {
    if (m.kind === 'data' || m.kind === 'compressed' || (m.kind === 'zero' && m.host !== 0)) this.pendingRelease.push(m);
  }

  /** Drop one reference to the clusters behind an old mapping (no longer referenced on disk). */
  private dropReference(m: Mapping): void {
    const rc = this.rc();
    if (m.kind === 'data' || (m.kind === 'zero' && m.host !== 0)) {
      rc.decrement(m.host / this.cs);
    } else if (m.kind === 'compressed') {
      const first = Math.floor(m.host / this.cs);
      const last = Math.floor((m.host + m.csize - 1) / this.cs);
      for (let c = first; c <= last; c++) rc.decrement(c);
    }
  }

  /**
   * Write `data` (one or more buffers, inside one cluster) at byte `intra` of
   * virtual cluster vc: maps the cluster (allocating or copying it as needed)
   * and hands the bytes to `put` with their place in the file, which writes
   * them before the request returns (writev merges neighbours into one call).
   */
  private writeCluster(vc: number, intra: number, data: readonly Uint8Array[], put: (pos: number, data: readonly Uint8Array[]) => void): void {
    const rc = this.rc();
    const l2off = this.writableL2(vc);
    const m = this.lookup(vc);
    const writeAt = (pos: number) => put(pos, data);
    if (m.kind === 'data' && (m.copied || rc.get(m.host / this.cs) === 1)) {
      this.checkNotMetadata(m.host);
      writeAt(m.host + intra);
      if (!m.copied) this.writeL2Entry(l2off, vc, Math.floor(m.host / 0x1_0000_0000) | COPIED, m.host >>> 0);
      return;
    }
    let host: number;
    if (intra === 0 && totalLength(data) === this.cs) {
      // A whole new cluster: written straight from the caller's buffers.
      host = rc.allocate(1);
      writeAt(host);
    } else {
      // A new cluster: old contents (backing, zeros, decompressed or shared) plus the new bytes.
      const full = new Uint8Array(this.cs);
      const vOffset = vc * this.cs;
      this.readMapped(m, vOffset, 0, full.subarray(0, Math.min(this.cs, this.size - vOffset)));
      let p = intra;
      for (const b of data) {
        full.set(b, p);
        p += b.length;
      }
      host = rc.allocate(1);
      put(host, [full]);
    }
    this.writeL2Entry(l2off, vc, Math.floor(host / 0x1_0000_0000) | COPIED, host >>> 0);
    this.release(m);
  }

  write(offset: number, buf: Uint8Array): void {
    this.writev(offset, [buf]);
  }

  /**
   * write() from several buffers, a whole new cluster without a copy: clusters
   * that lie one after another in the file (a sequential write over clusters
   * allocated in order) go out in one pwritev, as reads do. Only data is
   * written here; the metadata pointing at it waits for flush(), so a torn
   * call loses nothing that was durable.
   */
  writev(offset: number, bufs: readonly Uint8Array[]): void {
    this.rc();
    const len = totalLength(bufs);
    this.checkRange(offset, len);
    const cur = new BufCursor(bufs);
    const run = new HostRun((host, b) => (b.length === 1 ? this.file.write(host, b[0]) : this.file.writev(host, b)));
    const put = (pos: number, data: readonly Uint8Array[]) => run.add(pos, data, totalLength(data));
    try {
      let done = 0;
      while (done < len) {
        const pos = offset + done;
        const vc = Math.floor(pos / this.cs);
        const intra = pos % this.cs;
        const n = Math.min(this.cs - intra, len - done);
        this.writeCluster(vc, intra, cur.take(n), put);
        done += n;
      }
    } finally {
      // Clusters already mapped get their data even if a later one failed (as when each was written at once).
      run.flush();
    }
  }

  /**
   * Write the in-memory L2 and L1 changes back, each kind after an fsync that
   * makes what it depends on durable: new refcounts and data clusters before
   * the L2 entries that point at them, L2 tables before the L1 entries that
   * point at them, and only then the refcount decrements of clusters that
   * lost their last reference. One round costs at most three fsyncs however
   * many clusters it covers. The data of a newly allocated cluster is ordered
   * before its L2 entry too (by the first fsync), so a crash never shows a
   * reference to a cluster that was never written.
   */
  private writeBackMetadata(): void {
    if (this.dirtyL2.size === 0 && this.dirtyL1.size === 0 && this.pendingRelease.length === 0) return;
    if (this.dirtyL2.size > 0) {
      this.file.sync();
      for (const [off, [from, to]] of this.dirtyL2) {
        const t = this.l2Cache.get(off);
        if (t) this.file.write(off + from, t.subarray(from, to));
      }
      this.dirtyL2.clear();
    }
    if (this.dirtyL1.size > 0) {
      this.file.sync();
      const e = new Uint8Array(8);
      const dv = new DataView(e.buffer);
      for (const l1i of [...this.dirtyL1].sort((a, b) => a - b)) {
        dv.setUint32(0, this.l1[l1i * 2]);
        dv.setUint32(4, this.l1[l1i * 2 + 1]);
        this.file.write(this.header.l1Offset + l1i * 8, e);
      }
      this.dirtyL1.clear();
    }
    if (this.pendingRelease.length > 0) {
      this.file.sync();
      const list = this.pendingRelease;
      this.pendingRelease = [];
      for (const m of list) this.dropReference(m);
    }
  }

  flush(): void {
    if (this.readOnly) return;
    this.writeBackMetadata();
    this.file.sync();
  }

  /** Apply `whole` to each whole cluster in the range and `partial` to the pieces at its ends. */
  private eachCluster(offset: number, len: number, whole: (vc: number) => void, partial: (pos: number, n: number) => void): void {
    this.checkRange(offset, len);
    let pos = offset;
    const end = offset + len;
    while (pos < end) {
      const vc = Math.floor(pos / this.cs);
      const intra = pos % this.cs;
      const n = Math.min(this.cs - intra, end - pos);
      // The last cluster of a disk whose size is not cluster aligned counts as whole if the range reaches the end.
      if (intra === 0 && (n === this.cs || pos + n === this.size)) whole(vc);
      else partial(pos, n);
      pos += n;
    }
  }

  discard(offset: number, len: number): void {
    this.rc();
    const v3 = this.header.version === 3;
    this.eachCluster(offset, len, (vc) => {
      const m = this.lookup(vc);
      if (m.kind === 'zero' && m.host === 0) return;
      if (m.kind === 'unallocated' && (!v3 || !this.backing)) return;
      if (!v3 && this.backing) return; // v2 cannot hide backing data without writing zeros; discard is advisory
      // v3: the cluster becomes a zero cluster, so it never shows backing data again.
      const l2off = this.writableL2(vc);
      this.writeL2Entry(l2off, vc, 0, v3 ? ZERO_FLAG : 0);
      this.release(m);
    }, () => {
      // Partial clusters are left alone (discard is a hint).
    });
  }

  writeZeroes(offset: number, len: number): void {
    this.rc();
    const v3 = this.header.version === 3;
    this.eachCluster(offset, len, (vc) => {
      const m = this.lookup(vc);
      if (m.kind === 'zero') return;
      if (m.kind === 'unallocated' && !this.backing) return;
      if (v3) {
        const l2off = this.writableL2(vc);
        this.writeL2Entry(l2off, vc, 0, ZERO_FLAG);
        this.release(m);
      } else {
        const pos = vc * this.cs;
        this.write(pos, new Uint8Array(Math.min(this.cs, this.size - pos)));
      }
    }, (pos, n) => {
      const m = this.lookup(Math.floor(pos / this.cs));
      if (m.kind === 'zero' || (m.kind === 'unallocated' && !this.backing)) return;
      this.write(pos, new Uint8Array(n));
    });
  }

  close(): void {
    try {
      // Written back, not fsynced: durability is what flush() promises.
      if (!this.readOnly && !this.file.isClosed) this.writeBackMetadata();
    } finally {
      this.file.close();
      const b = this.backing;
      if (b) b.close();
    }
  }

  // ---- information ----

  /** Number of virtual clusters with data in this layer (allocated, compressed or preallocated zero). */
  allocatedClusters(): number {
    let n = 0;
    for (let l1i = 0; l1i < this.header.l1Size; l1i++) {
      const off = this.l2Offset(l1i);
      if (off === 0) continue;
      const t = this.loadL2(off);
      const dv = new DataView(t.buffer);
      for (let i = 0; i < this.cs / 8; i++) {
        const vc = l1i * 2 ** this.l2Bits + i;
        if (vc * this.cs >= this.size) break;
        const m = this.decodeL2(dv.getUint32(i * 8), dv.getUint32(i * 8 + 4));
        if (m.kind === 'data' || m.kind === 'compressed') n++;
      }
    }
    return n;
  }
}

/** Open a qcow2 image (and its backing chain) as a block backend. */
export function openQcow2(path: string, opts: Qcow2OpenOptions = {}): Qcow2Image {
  return new Qcow2Image(path, opts.readOnly === true, 0, opts.backing ?? {});
}

/**
 * Create an empty qcow2 (version 3, 16-bit refcounts, zlib) image; with `backing`,
 * an overlay whose unwritten clusters read from that file. The backing name is
 * stored as given (relative names are resolved against the new image's directory).
 */
export function createQcow2(path: string, opts: Qcow2CreateOptions): void {
  const clusterBits = opts.clusterBits ?? 16;
  if (!Number.isInteger(clusterBits) || clusterBits < 9 || clusterBits > 21) {
    throw new DiskError(`qcow2: cluster_bits ${clusterBits} out of range (9..21)`);
  }
  const size = opts.size;
  if (!Number.isSafeInteger(size) || size < 0 || size > 2 ** 50) throw new DiskError(`qcow2: invalid virtual size ${size}`);
  const cs = 2 ** clusterBits;
  const l1Size = Math.ceil(size / (cs * (cs / 8)));
  const l1Clusters = Math.max(1, Math.ceil((l1Size * 8) / cs));
  const perBlock = cs / 2; // 16-bit refcounts
  let rtClusters = 1;
  let blocks = 1;
  for (;;) {
    const total = 1 + rtClusters + blocks + l1Clusters;
    const b = Math.ceil(total / perBlock);
    const r = Math.ceil((b * 8) / cs);
    if (b === blocks && r === rtClusters) break;
    blocks = Math.max(b, blocks);
    rtClusters = Math.max(r, rtClusters);
  }
  const total = 1 + rtClusters + blocks + l1Clusters;
  const rtOffset = cs;
  const blocksOffset = cs * (1 + rtClusters);
  const l1Offset = cs * (1 + rtClusters + blocks);
  const backingFormat = opts.backing === undefined ? undefined : opts.backingFormat ?? 'raw';
  const image = new Uint8Array(total * cs);
  image.set(buildHeader({ clusterBits, size, l1Size, l1Offset, refTableOffset: rtOffset, refTableClusters: rtClusters, backingFile: opts.backing, backingFormat }), 0);
  const dv = new DataView(image.buffer);
  for (let b = 0; b < blocks; b++) {
    const off = blocksOffset + b * cs;
    dv.setUint32(rtOffset + b * 8, Math.floor(off / 0x1_0000_0000));
    dv.setUint32(rtOffset + b * 8 + 4, off >>> 0);
  }
  for (let c = 0; c < total; c++) dv.setUint16(blocksOffset + c * 2, 1);
  let fd: number;
  try {
    fd = openSync(path, 'w');
  } catch (e) {
    throw new DiskError(`cannot create image ${path} (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    let done = 0;
    while (done < image.length) done += writeSync(fd, image, done, image.length - done, done);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
