// A single-producer, single-consumer ring of Ethernet frames on a
// SharedArrayBuffer: the path of every frame between a VM's worker (its
// virtio-net device) and the NIC's backend on the owner's thread. Each record is
// a 4-byte length and the frame, padded to 4 bytes; a frame may wrap around the
// end of the ring. Positions are free-running 32-bit counters.

const HDR_WRITE = 0;
const HDR_READ = 1;
const HDR_SIGNAL = 2; // bumped on every push, for a consumer waiting with Atomics.wait(Async)
const HDR_DROPPED = 3; // frames refused because the ring was full
const HDR_INTS = 8;
const HDR_BYTES = HDR_INTS * 4;

/** Atomics.waitAsync (Node 16+) is missing from the ES2022 typings this project compiles against. */
interface AtomicsWaitAsync {
  waitAsync(a: Int32Array, index: number, value: number, timeout?: number): { async: false; value: string } | { async: true; value: Promise<string> };
}

export const DEFAULT_RING_BYTES = 512 * 1024;

export class FrameRing {
  readonly sab: SharedArrayBuffer;
  private readonly hdr: Int32Array;
  private readonly data: Uint8Array;
  private readonly mask: number;
  private readonly dv: DataView;
  /** Holds a frame that wraps around the end, so peek() can return one view. */
  private scratch = new Uint8Array(2048);
  private peekedLen = -1;

  /** A new ring with `capacity` bytes of frame space (a power of two). */
  static create(capacity = DEFAULT_RING_BYTES): FrameRing {
    if (capacity < 4096 || (capacity & (capacity - 1)) !== 0) throw new Error(`frame ring capacity ${capacity} is not a power of two >= 4096`);
    return new FrameRing(new SharedArrayBuffer(HDR_BYTES + capacity));
  }

  /** The same ring seen from another thread. */
  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.hdr = new Int32Array(sab, 0, HDR_INTS);
    this.data = new Uint8Array(sab, HDR_BYTES);
    this.dv = new DataView(sab, HDR_BYTES);
    this.mask = this.data.length - 1;
  }

  get capacity(): number {
    return this.data.length;
  }

  /** Frames refused because the ring was full. */
  get dropped(): number {
    return Atomics.load(this.hdr, HDR_DROPPED);
  }

  /** The push counter a waiting consumer compares against. */
  get signal(): number {
    return Atomics.load(this.hdr, HDR_SIGNAL);
  }

  /** Bytes in use (records and padding). */
  get used(): number {
    return (Atomics.load(this.hdr, HDR_WRITE) - Atomics.load(this.hdr, HDR_READ)) >>> 0;
  }

  /**
   * Append one frame made of `parts` (total `length` bytes). Returns false, and
   * counts a drop, if it does not fit.
   */
  push(parts: readonly Uint8Array[], length: number, notify = true): boolean {
    const rec = 4 + ((length + 3) & ~3);
    const write = Atomics.load(this.hdr, HDR_WRITE) >>> 0;
    const read = Atomics.load(this.hdr, HDR_READ) >>> 0;
    if (rec > this.data.length - ((write - read) >>> 0)) {
      Atomics.add(this.hdr, HDR_DROPPED, 1);
      return false;
    }
    let p = (write + 4) & this.mask;
    for (const part of parts) {
      const first = Math.min(part.length, this.data.length - p);
      this.data.set(first === part.length ? part : part.subarray(0, first), p);
      if (first < part.length) this.data.set(part.subarray(first), 0);
      p = (p + part.length) & this.mask;
    }
    this.dv.setUint32(write & this.mask, length, true);
    Atomics.store(this.hdr, HDR_WRITE, (write + rec) | 0);
    if (notify) this.notify();
    return true;
  }

  /** Wake a consumer waiting for frames (push() does this unless told not to). */
  notify(): void {
    Atomics.add(this.hdr, HDR_SIGNAL, 1);
    Atomics.notify(this.hdr, HDR_SIGNAL);
  }

  /** The oldest frame, as a view valid until consume(); null if the ring is empty. */
  peek(): Uint8Array | null {
    const read = Atomics.load(this.hdr, HDR_READ) >>> 0;
    const write = Atomics.load(this.hdr, HDR_WRITE) >>> 0;
    if (read === write) return null;
    const at = read & this.mask;
    const len = this.dv.getUint32(at, true);
    this.peekedLen = len;
    const start = (at + 4) & this.mask;
    if (start + len <= this.data.length) return this.data.subarray(start, start + len);
    if (this.scratch.length < len) this.scratch = new Uint8Array(len);
    const first = this.data.length - start;
    this.scratch.set(this.data.subarray(start), 0);
    this.scratch.set(this.data.subarray(0, len - first), first);
    return this.scratch.subarray(0, len);
  }

  /** Drop the frame peek() returned. */
  consume(): void {
    if (this.peekedLen < 0) {
      if (this.peek() === null) return;
    }
    const rec = 4 + ((this.peekedLen + 3) & ~3);
    const read = Atomics.load(this.hdr, HDR_READ) >>> 0;
    Atomics.store(this.hdr, HDR_READ, (read + rec) | 0);
    this.peekedLen = -1;
  }

  /** Resolve when a frame may have been pushed since `seen` (or after `ms`). */
  waitAsync(seen: number, ms: number): Promise<unknown> | null {
    const r = (Atomics as unknown as AtomicsWaitAsync).waitAsync(this.hdr, HDR_SIGNAL, seen, ms);
    return r.async ? r.value : null;
  }
}
