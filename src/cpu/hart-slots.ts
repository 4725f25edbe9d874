// Where the harts that are not running keep their state (HART_CTX slots), and
// which hart is live. A leaf module: the CLINT reaches other harts' registers
// through it without importing the context switch (harts.ts).

import { HART_CTX, HART_CTX_SIZE } from './layout';

/** Index of the hart whose state is live in the core. */
export let curHart: u32 = 0;
/** Harts of this machine (1..HART_CTX_MAX). */
export let hartCount: u32 = 1;

export function setCurHart(h: u32): void {
  curHart = h;
}
export function setHartCount(n: u32): void {
  hartCount = n;
}

@inline export function slotBase(h: u32): u32 {
  return HART_CTX + h * HART_CTX_SIZE;
}

/** Field i (cpuStateGet numbering) of a hart that is not live. */
@inline export function slotGet(h: u32, i: u32): u64 {
  return load<u64>(slotBase(h) + (i << 3));
}
@inline export function slotSet(h: u32, i: u32, v: u64): void {
  store<u64>(slotBase(h) + (i << 3), v);
}

// cpuStateGet numbers of the CLINT's fields (see persist.ts).
export const F_MTIMECMP: u32 = 26;
export const F_MSIP: u32 = 27;
