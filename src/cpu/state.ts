// Hart state helpers. The memory layout itself (offsets of the hart state,
// the TLB, the translator's tables, guest RAM) lives in ./layout, the one
// source the host's src/machine/layout.generated.ts is generated from.

import { STATE, X_OFF, F_OFF } from './layout';
import { stateAt } from './hart-area';
export * from './layout';

// fflags bits
export const FLAG_NX: u32 = 1;
export const FLAG_UF: u32 = 2;
export const FLAG_OF: u32 = 4;
export const FLAG_DZ: u32 = 8;
export const FLAG_NV: u32 = 16;

// rounding modes
export const RM_RNE: u32 = 0;
export const RM_RTZ: u32 = 1;
export const RM_RDN: u32 = 2;
export const RM_RUP: u32 = 3;
export const RM_RMM: u32 = 4;
export const RM_DYN: u32 = 7;

@inline export function getX(r: u32): u64 {
  return load<u64>(stateAt() + X_OFF + (r << 3));
}
@inline export function setX(r: u32, v: u64): void {
  if (r != 0) store<u64>(stateAt() + X_OFF + (r << 3), v);
}
@inline export function getF(r: u32): u64 {
  return load<u64>(stateAt() + F_OFF + (r << 3));
}
@inline export function setF(r: u32, v: u64): void {
  store<u64>(stateAt() + F_OFF + (r << 3), v);
}
