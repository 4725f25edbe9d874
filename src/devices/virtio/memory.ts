// Guest physical memory as devices see it for DMA: one contiguous RAM block.
// Every access is bounds-checked by the caller through `ramRange`, so a device
// can never touch host memory outside guest RAM whatever the guest hands it.

export interface GuestMemory {
  /** Guest RAM (a view, e.g. the CPU core's `ram`). */
  readonly ram: Uint8Array;
  /** Guest physical address of ram[0]. */
  readonly base: number;
  /**
   * Called after a device wrote ram[off, off + len) (DMA). The CPU uses it to drop
   * translated code of those pages, as if the guest itself had stored there.
   */
  noteWrite?(off: number, len: number): void;
}

/**
 * Offset into `ram` of the guest physical range [addr, addr + len), or -1 if any
 * part of it lies outside RAM (also for non-integer or overflowing values).
 */
export function ramRange(mem: GuestMemory, addr: number, len: number): number {
  if (!Number.isSafeInteger(addr) || !Number.isSafeInteger(len) || len < 0) return -1;
  const off = addr - mem.base;
  if (off < 0 || len > mem.ram.length || off > mem.ram.length - len) return -1;
  return off;
}

/** A DataView on the whole RAM block (little-endian accessors are used throughout). */
export function ramView(mem: GuestMemory): DataView {
  return new DataView(mem.ram.buffer, mem.ram.byteOffset, mem.ram.byteLength);
}

/** Combine two 32-bit register halves into an address; values beyond 2^53 become NaN (never in RAM). */
export function joinAddr(lo: number, hi: number): number {
  if (hi >= 0x20_0000) return Number.NaN;
  return (hi >>> 0) * 0x1_0000_0000 + (lo >>> 0);
}
