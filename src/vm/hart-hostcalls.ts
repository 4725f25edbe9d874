// Requests a hart thread makes of the VM's device thread that are not device
// accesses (the SBI console and reset): they travel through the MMIO mailbox
// at addresses no guest access can have (the hart thread refuses guest
// accesses at or above MAX_GUEST_PHYS), with the kind and hart in the address.

/** Guest physical addresses are at most 56 bits (Sv57 included). */
export const MAX_GUEST_PHYS = 2 ** 56;
// Spaced by powers of two so that every address stays exact as a double.
const HOSTCALL_BASE = 2 ** 56;
const KIND_UNIT = 2 ** 40;
const HART_UNIT = 2 ** 32;

/** Write: `value` console bytes are in the board's buffer of the hart. */
export const HOSTCALL_CONSOLE = 1;
/** Read: the next console input byte plus one, or 0 when none waits. */
export const HOSTCALL_GETCHAR = 2;
/** Write: power off (value 0x000 | code) or reset (0x100 | code). */
export const HOSTCALL_RESET = 3;

export function hostCallAddress(kind: number, hart: number): number {
  return HOSTCALL_BASE + kind * KIND_UNIT + hart * HART_UNIT;
}

/** The host call an address names, or null for a device access. */
export function hostCallOf(addr: number): { kind: number; hart: number } | null {
  if (addr < HOSTCALL_BASE) return null;
  const rest = addr - HOSTCALL_BASE;
  return { kind: Math.floor(rest / KIND_UNIT), hart: Math.floor((rest % KIND_UNIT) / HART_UNIT) };
}
