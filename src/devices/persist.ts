// Small codecs shared by the per-device save/restore code: 64-bit values as
// hex strings (JSON has no 64-bit integers) and page bitmaps as runs. Every
// decoder returns null for anything malformed, so a restore can refuse a
// hostile snapshot with a message instead of throwing.

/** A u64 as "0x..." (lower-case hex). */
export function u64ToHex(v: bigint): string {
  return `0x${BigInt.asUintN(64, v).toString(16)}`;
}

/** Parse "0x..." with 1..16 hex digits; null otherwise. */
export function hexToU64(v: unknown): bigint | null {
  if (typeof v !== 'string' || !/^0x[0-9a-f]{1,16}$/.test(v)) return null;
  return BigInt(v);
}

/** Set bits of a bitmap as [start, length] runs (compact for the few, clustered pages a balloon holds). */
export function bitmapToRuns(bits: Uint8Array, count: number): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= count; i++) {
    const set = i < count && (bits[i >> 3] & (1 << (i & 7))) !== 0;
    if (set && start < 0) start = i;
    else if (!set && start >= 0) {
      runs.push([start, i - start]);
      start = -1;
    }
  }
  return runs;
}

/** Rebuild a bitmap of `count` bits from runs; null if a run is malformed, overlapping or out of range. */
export function runsToBitmap(runs: unknown, count: number): { bits: Uint8Array; set: number } | null {
  if (!Array.isArray(runs)) return null;
  const bits = new Uint8Array(Math.ceil(count / 8));
  let end = 0;
  let set = 0;
  for (const r of runs) {
    if (!Array.isArray(r) || r.length !== 2) return null;
    const [s, n] = r as unknown[];
    if (typeof s !== 'number' || typeof n !== 'number' || !Number.isInteger(s) || !Number.isInteger(n)) return null;
    if (s < end || n < 1 || s + n > count) return null; // sorted, disjoint, inside
    for (let i = s; i < s + n; i++) bits[i >> 3] |= 1 << (i & 7);
    set += n;
    end = s + n;
  }
  return { bits, set };
}
