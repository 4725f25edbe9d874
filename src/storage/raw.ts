// Raw disk images: the file is the disk, byte for byte. Positional reads and
// writes on one file descriptor; FLUSH is fsync.

import { closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { type BlockBackend, DiskError, type SeekData } from './backend.js';
import { preadvAll, pwritevAll, totalLength } from './vectored.js';

const ZERO_CHUNK = 1 << 20;

export class RawDisk implements BlockBackend {
  readonly size: number;
  private fd: number;
  private zeroes: Uint8Array | null = null;

  private constructor(fd: number, size: number, readonly readOnly: boolean, readonly path: string, private readonly seekData?: SeekData) {
    this.fd = fd;
    this.size = size;
  }

  /** `seekData` (the native addon's) lets mayHoldData() see the file's holes. */
  static open(path: string, opts: { readOnly?: boolean; seekData?: SeekData } = {}): RawDisk {
    const readOnly = opts.readOnly === true;
    let fd: number;
    try {
      fd = openSync(path, readOnly ? 'r' : 'r+');
    } catch (e) {
      throw new DiskError(`cannot open disk ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const st = fstatSync(fd);
    if (!st.isFile() && !st.isBlockDevice()) {
      closeSync(fd);
      throw new DiskError(`disk is not a regular file: ${path}`);
    }
    return new RawDisk(fd, st.size, readOnly, path, st.isFile() ? opts.seekData : undefined);
  }

  mayHoldData(offset: number, len: number): boolean {
    this.check(offset, len);
    if (!this.seekData || len === 0) return len > 0;
    try {
      const data = this.seekData(this.fd, offset, false);
      return data >= 0 && data < offset + len;
    } catch {
      return true; // the file system cannot tell: read it
    }
  }

  private check(offset: number, len: number): void {
    if (this.fd < 0) throw new Error('raw disk: used after close');
    if (!Number.isSafeInteger(offset) || offset < 0 || len < 0 || offset + len > this.size) {
      throw new RangeError(`raw disk: range ${offset}+${len} is outside the disk (${this.size} bytes)`);
    }
  }

  read(offset: number, buf: Uint8Array): void {
    this.check(offset, buf.length);
    let done = 0;
    while (done < buf.length) {
      const n = readSync(this.fd, buf, done, buf.length - done, offset + done);
      if (n === 0) {
        buf.fill(0, done); // file shorter than expected (truncated meanwhile): reads as zeroes
        return;
      }
      done += n;
    }
  }

  write(offset: number, buf: Uint8Array): void {
    if (this.readOnly) throw new Error('raw disk: write to a read-only disk');
    this.check(offset, buf.length);
    let done = 0;
    while (done < buf.length) done += writeSync(this.fd, buf, done, buf.length - done, offset + done);
  }

  readv(offset: number, bufs: readonly Uint8Array[]): void {
    const len = totalLength(bufs);
    this.check(offset, len);
    const got = preadvAll(this.fd, bufs, offset);
    if (got < len) {
      // File shorter than expected (truncated meanwhile): the rest reads as zeroes.
      let skip = got;
      for (const b of bufs) {
        if (skip >= b.length) skip -= b.length;
        else {
          b.fill(0, skip);
          skip = 0;
        }
      }
    }
  }

  writev(offset: number, bufs: readonly Uint8Array[]): void {
    if (this.readOnly) throw new Error('raw disk: write to a read-only disk');
    this.check(offset, totalLength(bufs));
    pwritevAll(this.fd, bufs, offset);
  }

  flush(): void {
    if (this.fd >= 0 && !this.readOnly) fsyncSync(this.fd);
  }

  discard(offset: number, len: number): void {
    // Node has no fallocate(PUNCH_HOLE), and discard is only a hint: the contents
    // of a discarded range are unspecified, so leaving them alone is correct.
    this.check(offset, len);
    if (this.readOnly) throw new Error('raw disk: discard on a read-only disk');
  }

  writeZeroes(offset: number, len: number): void {
    if (this.readOnly) throw new Error('raw disk: write to a read-only disk');
    this.check(offset, len);
    this.zeroes ??= new Uint8Array(ZERO_CHUNK);
    for (let done = 0; done < len; ) {
      const n = Math.min(ZERO_CHUNK, len - done);
      this.write(offset + done, this.zeroes.subarray(0, n));
      done += n;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
  }
}
