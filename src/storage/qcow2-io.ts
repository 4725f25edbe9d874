// Positioned file I/O for the qcow2 code, bounds-checked against the file size.
// Metadata reads never go past end of file; every write goes through here so a
// read-only image can never be written.

import { DiskError } from './backend.js';
import { closeSync, fdatasyncSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { concat, preadvAll, pwritevAll, totalLength } from './vectored.js';

/** An I/O failure of the host file (EIO, ENOSPC, EFBIG for an offset a corrupt table points to) as a DiskError. */
function ioFailed(e: unknown, what: string, pos: number): DiskError {
  const code = (e as NodeJS.ErrnoException).code ?? String(e);
  return new DiskError(`qcow2: ${what} at 0x${pos.toString(16)} failed (${code})`);
}

export class ImageFile {
  /** Test hook: sees every read (position, length, file size) before it happens. */
  static onRead: ((pos: number, len: number, fileSize: number) => void) | undefined;
  /** Test hook: sees every write and fsync of a writable image (crash-consistency recording). */
  static recorder: { write(path: string, pos: number, data: Uint8Array): void; sync(path: string): void } | undefined;
  readonly fd: number;
  readonly path: string;
  readonly readOnly: boolean;
  /** Current file size as we know it (grows as we write past the end). */
  size: number;
  private closed = false;

  constructor(path: string, readOnly: boolean) {
    this.path = path;
    this.readOnly = readOnly;
    try {
      this.fd = openSync(path, readOnly ? 'r' : 'r+');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new DiskError(`cannot open image ${path} (${code})`);
    }
    this.size = fstatSync(this.fd).size;
  }

  /** Read exactly buf.length bytes at pos; fail (never read) when that passes end of file. */
  readExact(pos: number, buf: Uint8Array, what: string): void {
    if (pos < 0 || pos + buf.length > this.size) {
      throw new DiskError(`qcow2: ${what} at 0x${pos.toString(16)} extends past end of file`);
    }
    ImageFile.onRead?.(pos, buf.length, this.size);
    let got = 0;
    while (got < buf.length) {
      let n: number;
      try {
        n = readSync(this.fd, buf, got, buf.length - got, pos + got);
      } catch (e) {
        throw ioFailed(e, `reading ${what}`, pos);
      }
      if (n === 0) throw new DiskError(`qcow2: ${what} at 0x${pos.toString(16)}: unexpected end of file`);
      got += n;
    }
  }

  /** readExact into several buffers in order (one preadv). */
  readvExact(pos: number, bufs: readonly Uint8Array[], what: string): void {
    const len = totalLength(bufs);
    if (pos < 0 || pos + len > this.size) {
      throw new DiskError(`qcow2: ${what} at 0x${pos.toString(16)} extends past end of file`);
    }
    ImageFile.onRead?.(pos, len, this.size);
    let got: number;
    try {
      got = preadvAll(this.fd, bufs, pos);
    } catch (e) {
      throw ioFailed(e, `reading ${what}`, pos);
    }
    if (got < len) throw new DiskError(`qcow2: ${what} at 0x${pos.toString(16)}: unexpected end of file`);
  }

  /** Read up to buf.length bytes at pos; bytes past end of file read as zero. Returns bytes read. */
  readUpTo(pos: number, buf: Uint8Array): number {
    const avail = Math.max(0, Math.min(buf.length, this.size - pos));
    if (avail > 0) ImageFile.onRead?.(pos, avail, this.size);
    let got = 0;
    while (got < avail) {
      let n: number;
      try {
        n = readSync(this.fd, buf, got, avail - got, pos + got);
      } catch (e) {
        throw ioFailed(e, 'read', pos);
      }
      if (n === 0) break;
      got += n;
    }
    buf.fill(0, got);
    return got;
  }

  write(pos: number, buf: Uint8Array): void {
    if (this.readOnly) throw new DiskError('qcow2: image is read-only');
    ImageFile.recorder?.write(this.path, pos, buf);
    let done = 0;
    try {
      while (done < buf.length) {
        done += writeSync(this.fd, buf, done, buf.length - done, pos + done);
      }
    } catch (e) {
      throw ioFailed(e, 'write', pos);
    }
    if (pos + buf.length > this.size) this.size = pos + buf.length;
  }

  /** write() of several buffers in order as one range (one pwritev). */
  writev(pos: number, bufs: readonly Uint8Array[]): void {
    if (this.readOnly) throw new DiskError('qcow2: image is read-only');
    // One system call, so one recorded write (a crash test tears writes apart only between calls).
    ImageFile.recorder?.write(this.path, pos, concat(bufs));
    const len = totalLength(bufs);
    try {
      pwritevAll(this.fd, bufs, pos);
    } catch (e) {
      throw ioFailed(e, 'write', pos);
    }
    if (pos + len > this.size) this.size = pos + len;
  }

  sync(): void {
    if (this.readOnly) return;
    ImageFile.recorder?.sync(this.path);
    // fdatasync: the file size is data for it, and no other inode field matters here.
    try {
      fdatasyncSync(this.fd);
    } catch (e) {
      throw ioFailed(e, 'flush', 0);
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
