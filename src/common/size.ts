// Memory size parsing for `--mem`: "512M", "1G", "1048576K", "1.5G", plain bytes.

export const MIB = 1024 * 1024;
/** Smallest guest RAM accepted, in MiB. */
export const MIN_MEM_MIB = 16;
/** Largest guest RAM accepted, in MiB: guest RAM lives in one wasm32 memory. */
export const MAX_MEM_MIB = 3584;

/** A size string the user got wrong; the message is fit to show as is. */
export class SizeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SizeError';
  }
}

const UNIT_SHIFT: Record<string, number> = { '': 0, K: 10, M: 20, G: 30, T: 40 };

/**
 * Parse a size with an optional binary unit suffix (K, M, G, T; also written
 * KB/KiB, MB/MiB, ...; case-insensitive). A number without a unit is bytes.
 * Returns bytes, or null when the text is not a size.
 */
export function parseSize(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?$/i.exec(text.trim());
  if (!m) return null;
  const shift = UNIT_SHIFT[(m[2] ?? '').toUpperCase()];
  const value = Number(m[1]);
  if (!Number.isFinite(value)) return Infinity; // more digits than a double holds
  const bytes = value * 2 ** shift;
  if (!Number.isSafeInteger(bytes)) {
    // A fraction that does not come out to whole bytes (or an absurdly large number).
    return Number.isFinite(bytes) && bytes > Number.MAX_SAFE_INTEGER ? Infinity : null;
  }
  return bytes;
}

/** Show a byte count the way a user would write it: 512M, 1G, 1536K, 100 bytes. */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  for (const [unit, shift] of [['T', 40], ['G', 30], ['M', 20], ['K', 10]] as const) {
    const n = bytes / 2 ** shift;
    if (n >= 1 && Number.isInteger(n)) return `${n}${unit}`;
  }
  return `${bytes} bytes`;
}

/**
 * Parse the `--mem` option into whole MiB, enforcing the limits.
 * Throws SizeError with a one-line message naming the option and the value.
 */
export function parseMemSize(text: string, option = '--mem'): number {
  const bytes = parseSize(text);
  if (bytes === null) {
    throw new SizeError(`invalid ${option} '${text}': expected a size like 512M or 1G`);
  }
  const shown = text.trim();
  if (bytes < MIN_MEM_MIB * MIB) {
    throw new SizeError(`${option} ${shown} is too small (minimum ${MIN_MEM_MIB}M)`);
  }
  if (bytes > MAX_MEM_MIB * MIB) {
    throw new SizeError(`${option} ${shown} is too large (maximum ${MAX_MEM_MIB}M, the wasm32 limit)`);
  }
  if (bytes % MIB !== 0) {
    throw new SizeError(`${option} ${shown} is not a whole number of MiB (e.g. ${Math.ceil(bytes / MIB)}M)`);
  }
  return bytes / MIB;
}
