// A disk whose image can be replaced while the VM runs: a snapshot that
// freezes the disk puts a new qcow2 overlay (backed by the old image) under
// the device, between two guest slices, and the guest goes on writing that.

import type { BlockBackend } from './backend.js';

export class SwitchableDisk implements BlockBackend {
  constructor(private current: BlockBackend) {}

  get size(): number {
    return this.current.size;
  }

  get readOnly(): boolean {
    return this.current.readOnly;
  }

  read(offset: number, buf: Uint8Array): void {
    this.current.read(offset, buf);
  }

  write(offset: number, buf: Uint8Array): void {
    this.current.write(offset, buf);
  }

  flush(): void {
    this.current.flush();
  }

  discard(offset: number, len: number): void {
    this.current.discard(offset, len);
  }

  writeZeroes(offset: number, len: number): void {
    this.current.writeZeroes(offset, len);
  }

  close(): void {
    this.current.close();
  }

  /**
   * Go on with `next` (same size, already open); the old image is flushed and
   * closed (the new one reads it as its backing file through its own handle).
   */
  switchTo(next: BlockBackend): void {
    if (next.size !== this.current.size) throw new Error(`the new image has ${next.size} bytes, the disk ${this.current.size}`);
    const old = this.current;
    old.flush();
    this.current = next;
    old.close();
  }
}
