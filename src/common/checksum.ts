// The Internet checksum (RFC 1071). Every frame toward the guest and every
// TCP/UDP segment from it is summed, so the loop reads four bytes at a time
// when the data is aligned: the ones'-complement sum is byte-order independent
// up to a final byte swap, so little-endian 32-bit reads are fine.

/** Folds a non-negative sum (up to 2^53) to 16 bits with end-around carry. */
export function fold(s: number): number {
  while (s > 0xffff) s = (s % 0x10000) + Math.floor(s / 0x10000);
  return s;
}

/** Ones'-complement sum of the big-endian 16-bit words of b[off, off+len), plus acc; 16 bits. */
export function onesSum(b: Uint8Array, off: number, len: number, acc = 0): number {
  let s = acc;
  let i = off;
  const end = off + len;
  const abs = b.byteOffset + off;
  if ((abs & 1) === 0 && len >= 32) {
    if ((abs & 3) === 2) {
      s += (b[i] << 8) | b[i + 1];
      i += 2;
    }
    const n = (end - i) >>> 2;
    const words = new Uint32Array(b.buffer, b.byteOffset + i, n);
    let le = 0;
    // At most 2^21 words (8 MiB) keep the sum exact in a double; frames are far smaller.
    for (let k = 0; k < n; k++) le += words[k];
    le = fold(le);
    s += ((le & 0xff) << 8) | (le >>> 8);
    i += n << 2;
  }
  for (; i + 1 < end; i += 2) s += (b[i] << 8) | b[i + 1];
  if (i < end) s += b[i] << 8;
  return fold(s);
}

/** The checksum field value for a folded sum. */
export function finish(sum: number): number {
  return ~sum & 0xffff;
}

/** Sum of the IPv4 pseudo header used by TCP and UDP. */
export function pseudoSum(src: number, dst: number, proto: number, len: number): number {
  return fold((src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff) + proto + len);
}
