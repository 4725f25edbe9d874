// What every memory-mapped device looks like to the bus, and the conventions for
// interrupt lines and device state.

/** Access width in bytes. 8-byte guest accesses are split by the bus into two 4-byte calls (low word first). */
export type AccessSize = 1 | 2 | 4;

/**
 * A device mapped into guest physical memory. `offset` is relative to the device's
 * base. Values are unsigned 32-bit JS numbers (0..0xffff_ffff), truncated to `size`
 * bytes. Reads of unimplemented registers return 0; writes to them are ignored:
 * a guest can never make a device throw.
 */
export interface MmioDevice {
  readonly name: string;
  read(offset: number, size: AccessSize): number;
  write(offset: number, size: AccessSize, value: number): void;
}

/** An interrupt line: the device calls it with the line's current level (level-triggered). */
export type IrqLine = (level: boolean) => void;

/** Result of restoring saved state: a value, never an exception. */
export type RestoreResult = { ok: true } | { ok: false; error: string };

/**
 * Device state as plain data (JSON-serialisable: numbers, booleans, strings, arrays,
 * plain objects). `save()` returns a fresh object that shares nothing with the device;
 * `restore()` validates the whole object before changing anything, so a malformed
 * snapshot leaves the device as it was and reports why. After a successful restore
 * the device re-drives its output lines.
 */
export interface Snapshottable {
  save(): unknown;
  restore(state: unknown): RestoreResult;
}

// ---- Small helpers for validating restored state ----

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** True if `v` is an integer in [min, max]. */
export function isIntIn(v: unknown, min: number, max: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max;
}

/** True if `v` is an array of `len` integers in [min, max] (any length if len < 0). */
export function isIntArray(v: unknown, len: number, min: number, max: number): v is number[] {
  if (!Array.isArray(v)) return false;
  if (len >= 0 && v.length !== len) return false;
  return v.every((x) => isIntIn(x, min, max));
}
