// A disk whose file can be let go and taken back while the machine stays
// built: during a live migration the source closes its images before the
// destination opens them (the COMMIT handshake), and the destination builds
// its machine before it may open them. The virtio-blk device only needs the
// size and the read-only setting until the guest runs. A snapshot that freezes
// the disk switches it to a new overlay (backed by the old image) between slices.

import { DiskError, type BlockBackend, readInto, writeFrom } from '../../storage/backend.js';
import { totalLength } from '../../storage/vectored.js';

export class SwappableDisk implements BlockBackend {
  /** Told of every range the guest changes (a migration copying the disk tracks its dirty blocks). */
  onChange: ((offset: number, len: number) => void) | null = null;

  constructor(readonly size: number, readonly readOnly: boolean, private inner: BlockBackend | null) {}

  /** The open backend, or null while the disk is released. */
  get backend(): BlockBackend | null {
    return this.inner;
  }

  private get open(): BlockBackend {
    if (!this.inner) throw new DiskError('the disk is released (the VM is migrating)');
    return this.inner;
  }

  /** Take an opened backend (it must match the size and read-only setting the machine was built with). */
  attach(b: BlockBackend): void {
    if (b.size !== this.size) throw new DiskError(`the disk has ${b.size} bytes, the VM was built with ${this.size}`);
    if (b.readOnly !== this.readOnly) throw new DiskError('the disk was opened with a different read-only setting');
    this.inner = b;
  }

  /** Flush and close the file; the machine keeps the disk (attach() gives it a file again). */
  release(): void {
    const b = this.inner;
    this.inner = null;
    if (!b) return;
    try {
      if (!b.readOnly) b.flush();
    } finally {
      b.close();
    }
  }

  /**
   * Go on with `next` (same size, writable, already open); the old image is
   * flushed and closed (the new one reads it as its backing file through its own handle).
   */
  switchTo(next: BlockBackend): void {
    const old = this.open;
    if (this.readOnly) throw new DiskError('a read-only disk is not switched');
    if (next.size !== this.size) throw new DiskError(`the new image has ${next.size} bytes, the disk ${this.size}`);
    if (next.readOnly) throw new DiskError('the new image is read-only');
    old.flush();
    this.inner = next;
    old.close();
  }

  read(offset: number, buf: Uint8Array): void {
    this.open.read(offset, buf);
  }
  readv(offset: number, bufs: readonly Uint8Array[]): void {
    readInto(this.open, offset, bufs);
  }
  writev(offset: number, bufs: readonly Uint8Array[]): void {
    writeFrom(this.open, offset, bufs);
    this.onChange?.(offset, totalLength(bufs));
  }
  mayHoldData(offset: number, len: number): boolean {
    return this.open.mayHoldData?.(offset, len) ?? true;
  }
  write(offset: number, buf: Uint8Array): void {
    this.open.write(offset, buf);
    this.onChange?.(offset, buf.length);
  }
  flush(): void {
    this.open.flush();
  }
  discard(offset: number, len: number): void {
    this.open.discard(offset, len);
    this.onChange?.(offset, len);
  }
  writeZeroes(offset: number, len: number): void {
    this.open.writeZeroes(offset, len);
    this.onChange?.(offset, len);
  }
  close(): void {
    const b = this.inner;
    this.inner = null;
    b?.close();
  }
}
