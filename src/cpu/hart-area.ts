// Where this core instance's hart area is (SMP phase 2): the per-hart tables of
// layout.ts (state block, TLB, hot counts, block cache, link slots) sit at
// their address plus hartOff. Each thread instantiates the core itself, so this
// global is per thread; with one thread (phase 1) it stays 0.

import { STATE, TLB_BASE, JIT_HOT, JIT_HASH, HART_STRIDE, HART_AREAS_MAX } from './layout';

export let hartOff: u32 = 0;

/** Use hart h's area (before the first reset). Returns false for a hart with no area. */
export function setHartArea(h: u32): bool {
  if (h >= HART_AREAS_MAX) return false;
  hartOff = h * HART_STRIDE;
  return true;
}

/** This instance's state block. */
@inline export function stateAt(): u32 {
  return STATE + hartOff;
}
/** This instance's TLB. */
@inline export function tlbAt(): u32 {
  return TLB_BASE + hartOff;
}
/** This instance's hot counts. */
@inline export function jitHotAt(): u32 {
  return JIT_HOT + hartOff;
}
/** This instance's block cache. */
@inline export function jitHashAt(): u32 {
  return JIT_HASH + hartOff;
}
