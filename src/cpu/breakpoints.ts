// Host-set pc breakpoints (a kernel's panic entry, a debugger's software
// breakpoints). A page holding a breakpoint never gets a fetch TLB entry, so
// every fetch on it takes the slow path, where the pc is compared; translated
// code never runs there either, because the dispatcher finds blocks through
// the fetch TLB. Code on other pages keeps its full speed. A hit stops *before*
// the instruction: it has no effect and is not counted, like a fault that is
// never taken (the debugger steps over it). A debugger's hardware breakpoints
// and watchpoints are Sdtrig triggers (./triggers), which stop the same way.

import { instret, trapped, breakBatch, exitReason } from './hart';
import { DEBUG_BP, DEBUG_BP_MAX } from './state';

/** run() stopped before executing the instruction at a breakpoint or a host trigger (pc is on it). */
export const EXIT_BREAKPOINT: u32 = 4;
export const BP_MAX: u32 = DEBUG_BP_MAX;
const NONE: u64 = 0xffffffffffffffff;

/** Bit i set: breakpoint slot i is in use (its address at DEBUG_BP + 8i). */
let bpMask: u64 = 0;
/** Set with trapped when a fetch hit a breakpoint or an access a host trigger: run() leaves without retiring or trapping. */
export let bpHit: bool = false;
/** A stop at this instret is ignored (the host resumes over it). */
let skipInstret: u64 = NONE;

/** Set breakpoint i at va, or clear it with all ones. The caller flushes the TLB (see CpuCore). */
export function bpSet(i: u32, va: u64): void {
  if (i >= BP_MAX) return;
  const bit = <u64>1 << <u64>i;
  if (va == NONE) {
    bpMask &= ~bit;
    return;
  }
  store<u64>(DEBUG_BP + (i << 3), va);
  bpMask |= bit;
}

export function bpGet(i: u32): u64 {
  if (i >= BP_MAX || ((bpMask >> <u64>i) & 1) == 0) return NONE;
  return load<u64>(DEBUG_BP + (i << 3));
}

/** Whether a fetch TLB entry may be made for the page of va. */
export function bpFreePage(va: u64): bool {
  let m = bpMask;
  const p = va >> 12;
  while (m != 0) {
    const i = <u32>ctz(m);
    m &= m - 1;
    if (load<u64>(DEBUG_BP + (i << 3)) >> 12 == p) return false;
  }
  return true;
}

@inline function stop(): void {
  bpHit = true;
  trapped = true;
  breakBatch = true;
}

/** Slow-path fetch at va: stop here if it is a breakpoint. Returns true when it stopped. */
export function bpCheck(va: u64): bool {
  let m = bpMask;
  if (m == 0) return false;
  let hit = false;
  while (m != 0) {
    const i = <u32>ctz(m);
    m &= m - 1;
    if (load<u64>(DEBUG_BP + (i << 3)) == va) {
      hit = true;
      break;
    }
  }
  if (!hit || instret == skipInstret) return false;
  stop();
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

/** Let the next run() execute the instruction at the current breakpoint or host trigger once. */
export function bpStepOver(): void {
  skipInstret = instret;
}
