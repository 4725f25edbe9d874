// A raw disk whose format was guessed (tsvisor run --disk PATH without
// format=) must not be able to change the guess: a guest that writes a qcow2
// header to its first sector would, on the next run, see its disk opened as
// qcow2, with a backing file of its choosing on the host. As QEMU does for
// probed raw images, writes that would put the qcow2 magic at offset 0 fail
// (the guest gets an I/O error) and nothing is written.

import { type BlockBackend, DiskError, readInto, writeFrom } from './backend.js';
import { isQcow2Magic } from './qcow2-header.js';
import { concat } from './vectored.js';

const MAGIC_LEN = 4;

export class ProbedRawGuard implements BlockBackend {
  readonly size: number;
  readonly readOnly: boolean;
  constructor(private readonly inner: BlockBackend) {
    this.size = inner.size;
    this.readOnly = inner.readOnly;
  }

  mayHoldData(offset: number, len: number): boolean {
    return this.inner.mayHoldData?.(offset, len) ?? true;
  }

  read(offset: number, buf: Uint8Array): void {
    this.inner.read(offset, buf);
  }

  readv(offset: number, bufs: readonly Uint8Array[]): void {
    readInto(this.inner, offset, bufs);
  }

  writev(offset: number, bufs: readonly Uint8Array[]): void {
    // Only the first few bytes matter to the check: a write that reaches them is checked whole.
    if (offset < MAGIC_LEN && bufs.length > 0) this.check(offset, concat(bufs.slice(0, MAGIC_LEN)));
    writeFrom(this.inner, offset, bufs);
  }

  write(offset: number, buf: Uint8Array): void {
    this.check(offset, buf);
    this.inner.write(offset, buf);
  }

  private check(offset: number, buf: Uint8Array): void {
    if (offset < MAGIC_LEN && buf.length > 0) {
      // The first bytes as they would be after this write (a request may come in
      // several pieces, so bytes already on disk count too).
      const head = new Uint8Array(Math.min(MAGIC_LEN, this.size));
      this.inner.read(0, head);
      const n = Math.min(buf.length, head.length - offset);
      head.set(buf.subarray(0, n), offset);
      if (isQcow2Magic(head)) {
        throw new DiskError('write refused: it would make this raw disk (its format was guessed) look like a qcow2 image');
      }
    }
  }

  flush(): void {
    this.inner.flush();
  }

  discard(offset: number, len: number): void {
    this.inner.discard(offset, len);
  }

  writeZeroes(offset: number, len: number): void {
    this.inner.writeZeroes(offset, len);
  }

  close(): void {
    this.inner.close();
  }
}
