// Host-set pc breakpoints (a kernel's panic entry today, a debugger later).
// A page holding a breakpoint never gets a fetch TLB entry, so every fetch on
// it takes the slow path, where the pc is compared; translated code never
// runs there either, because the dispatcher finds blocks through the fetch
// TLB. Code on other pages keeps its full speed.

import { instret, trapped, breakBatch, exitReason } from './hart';

/** run() stopped before executing the instruction at a breakpoint (pc is on it). */
export const EXIT_BREAKPOINT: u32 = 4;
export const BP_MAX: u32 = 4;
const NONE: u64 = 0xffffffffffffffff;

let bp0: u64 = NONE;
let bp1: u64 = NONE;
let bp2: u64 = NONE;
let bp3: u64 = NONE;
// Their pages; NONE is no page number (those are at most 52 bits).
let pg0: u64 = NONE;
let pg1: u64 = NONE;
let pg2: u64 = NONE;
let pg3: u64 = NONE;
/** Set with trapped when a fetch hit a breakpoint: run() leaves without retiring or trapping. */
export let bpHit: bool = false;
/** A breakpoint fetched at this instret is ignored (the host resumes over it). */
let skipInstret: u64 = NONE;

/** Set breakpoint i at va, or clear it with all ones. The caller flushes the TLB (see CpuCore). */
export function bpSet(i: u32, va: u64): void {
  const pg = va == NONE ? NONE : va >> 12;
  if (i == 0) { bp0 = va; pg0 = pg; }
  else if (i == 1) { bp1 = va; pg1 = pg; }
  else if (i == 2) { bp2 = va; pg2 = pg; }
  else if (i == 3) { bp3 = va; pg3 = pg; }
}

export function bpGet(i: u32): u64 {
  return i == 0 ? bp0 : i == 1 ? bp1 : i == 2 ? bp2 : i == 3 ? bp3 : NONE;
}

/** Whether a fetch TLB entry may be made for the page of va. */
@inline export function bpFreePage(va: u64): bool {
  const p = va >> 12;
  return p != pg0 && p != pg1 && p != pg2 && p != pg3;
}

/** Slow-path fetch at va: stop here if it is a breakpoint. Returns true when it stopped. */
export function bpCheck(va: u64): bool {
  if (va != bp0 && va != bp1 && va != bp2 && va != bp3) return false;
  if (instret == skipInstret) return false;
  bpHit = true;
  trapped = true;
  breakBatch = true;
  return true;
}

/** run() saw the stop: clear it and report EXIT_BREAKPOINT. */
export function bpTake(): void {
  bpHit = false;
  trapped = false;
  exitReason = EXIT_BREAKPOINT;
}

/** True while the host resumes over the stop at this instruction (pc breakpoint or host trigger). */
@inline export function bpResuming(): bool {
  return instret == skipInstret;
}

/** Let the next run() execute the instruction at the current breakpoint once. */
export function bpStepOver(): void {
  skipInstret = instret;
}
