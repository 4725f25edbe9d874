// The last N bytes of a stream in one fixed buffer: pushing overwrites the
// oldest bytes in place, so a chatty guest costs no allocation per chunk.

export class ByteRing {
  private readonly buf: Uint8Array;
  /** Index of the next byte to write. */
  private head = 0;
  /** Bytes held (at most the capacity). */
  private size = 0;

  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity <= 0) throw new RangeError('ByteRing capacity must be a positive integer');
    this.buf = new Uint8Array(capacity);
  }

  get length(): number {
    return this.size;
  }

  push(data: Uint8Array): void {
    const cap = this.capacity;
    // Only the last `cap` bytes of a large chunk can survive.
    const src = data.length > cap ? data.subarray(data.length - cap) : data;
    const first = Math.min(src.length, cap - this.head);
    this.buf.set(src.subarray(0, first), this.head);
    if (first < src.length) this.buf.set(src.subarray(first), 0);
    this.head = (this.head + src.length) % cap;
    this.size = Math.min(cap, this.size + src.length);
  }

  /** The bytes held, oldest first (a copy). */
  snapshot(): Buffer {
    const out = Buffer.allocUnsafe(this.size);
    const start = (this.head - this.size + this.capacity) % this.capacity;
    const first = Math.min(this.size, this.capacity - start);
    out.set(this.buf.subarray(start, start + first), 0);
    if (first < this.size) out.set(this.buf.subarray(0, this.size - first), first);
    return out;
  }

  clear(): void {
    this.head = this.size = 0;
  }
}
