// A debugger's watched range as Sdtrig address triggers. A trigger matches one
// address or a NAPOT range (a power of two of bytes, aligned to its size), so
// a range of any other shape is covered by a larger one: accesses inside the
// cover but outside the range stop the hart too, and the stub steps over them
// without telling the debugger. Triggers are few (the guest sees four), so a
// second one is spent only when the range straddles a large boundary and one
// cover would be more than twice the range's size rounded up to a power of
// two (8 bytes at 0x...ffc would otherwise watch 8 KiB); then one trigger
// covers each side of the cover's midpoint.

/** One trigger's watched bytes: `length` is a power of two and `address` is aligned to it. */
export interface NapotRange {
  address: bigint;
  length: bigint;
}

const MAX_ADDRESS = (1n << 64n) - 1n;

/** The smallest NAPOT range holding [address, address + length). */
export function napotCover(address: bigint, length: bigint): NapotRange {
  if (length < 1n || address < 0n || address + length - 1n > MAX_ADDRESS) throw new RangeError(`bad range of ${length} bytes at ${address}`);
  const last = address + length - 1n;
  let size = 1n;
  while (size < length || address / size !== last / size) size <<= 1n;
  return { address: address - (address % size), length: size };
}

/**
 * Triggers for [address, address + length): one NAPOT cover, or two when
 * `free` allows it and one would be loose (see above).
 */
export function coverRange(address: bigint, length: bigint, free: number): NapotRange[] {
  const one = napotCover(address, length);
  let pow2 = 1n;
  while (pow2 < length) pow2 <<= 1n;
  if (free < 2 || one.length <= 2n * pow2) return [one];
  const mid = one.address + one.length / 2n;
  const last = address + length - 1n;
  if (address >= mid || last < mid) return [one];
  const two = [napotCover(address, mid - address), napotCover(mid, last - mid + 1n)];
  return two[0].length + two[1].length < one.length ? two : [one];
}

/** Whether [a, a + alen) and [b, b + blen) share a byte. */
export function overlaps(a: bigint, alen: bigint, b: bigint, blen: bigint): boolean {
  return a < b + blen && b < a + alen;
}
