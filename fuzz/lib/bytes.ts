// Reads structured values out of a fuzzer's byte string. Past the end every read
// gives zero (or an empty array), so any input, however short, is a whole program.

export class Bytes {
  private pos = 0;
  constructor(readonly buf: Uint8Array) {}

  get remaining(): number {
    return this.buf.length - this.pos;
  }
  get done(): boolean {
    return this.pos >= this.buf.length;
  }
  u8(): number {
    return this.pos < this.buf.length ? this.buf[this.pos++] : 0;
  }
  u16(): number {
    return this.u8() | (this.u8() << 8);
  }
  u32(): number {
    return (this.u16() | (this.u16() << 16)) >>> 0;
  }
  /** A u64 as a JS number, capped to 2^53 - 1 (values beyond that behave alike for the code under test). */
  u64(): number {
    const lo = this.u32();
    const hi = this.u32();
    return Math.min(hi * 0x1_0000_0000 + lo, Number.MAX_SAFE_INTEGER);
  }
  bool(): boolean {
    return (this.u8() & 1) === 1;
  }
  /** One of `items`, chosen by the next byte. */
  pick<T>(items: readonly T[]): T {
    return items[this.u8() % items.length];
  }
  /** One of `items`, or (for one more selector value) whatever `other` reads: rarer, wilder values. */
  pickOr<T>(items: readonly T[], other: () => T): T {
    const k = this.u8() % (items.length + 1);
    return k < items.length ? items[k] : other();
  }
  bytes(n: number): Uint8Array {
    const take = Math.max(0, Math.min(n, this.remaining));
    const out = this.buf.subarray(this.pos, this.pos + take);
    this.pos += take;
    return out;
  }
  /** A length-prefixed (u16) chunk. */
  chunk(max = 0xffff): Uint8Array {
    return this.bytes(Math.min(this.u16(), max));
  }
  rest(): Uint8Array {
    return this.bytes(this.remaining);
  }
  /** A length-prefixed string (latin1, so every byte value is a character). */
  str(max = 255): string {
    return Buffer.from(this.bytes(Math.min(this.u8(), max))).toString('latin1');
  }
}
