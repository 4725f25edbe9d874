// Host-set pc breakpoints and data watchpoints (a kernel's panic entry, a
// debugger). A page holding a breakpoint never gets a fetch TLB entry, so every
// fetch on it takes the slow path, where the pc is compared; translated code
// never runs there either, because the dispatcher finds blocks through the
// fetch TLB. Likewise a page holding a watchpoint never gets a load or store
// TLB entry, so every access there (interpreted or translated) takes the slow
// path, which compares the range. Code and data on other pages keep their
// full speed. Both stop *before* the instruction: it has no effect and is not
// counted, like a fault that is never taken (the debugger steps over it).

import { instret, trapped, breakBatch, exitReason } from './hart';
import { DEBUG_BP, DEBUG_BP_MAX, DEBUG_WP, DEBUG_WP_MAX } from './state';

/** run() stopped before executing the instruction at a breakpoint or a watched access (pc is on it). */
export const EXIT_BREAKPOINT: u32 = 4;
export const BP_MAX: u32 = DEBUG_BP_MAX;
export const WP_MAX: u32 = DEBUG_WP_MAX;
export const WATCH_READ: u32 = 1;
export const WATCH_WRITE: u32 = 2;
const NONE: u64 = 0xffffffffffffffff;

/** Bit i set: breakpoint slot i is in use (its address at DEBUG_BP + 8i). */
let bpMask: u64 = 0;
/** Bit i set: watchpoint slot i is in use. */
let wpMask: u32 = 0;
/** Set with trapped when a fetch hit a breakpoint or an access a watchpoint: run() leaves without retiring or trapping. */
export let bpHit: bool = false;
/** A stop at this instret is ignored (the host resumes over it). */
let skipInstret: u64 = NONE;
/** The last stop was a watchpoint: its kind (WATCH_READ or WATCH_WRITE) and the accessed address; 0 for a pc breakpoint. */
let watchHitKind: u32 = 0;
let watchHitAddr: u64 = 0;

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
  watchHitKind = 0;
  stop();
  return true;
}

/** Set watchpoint i on the bytes [va, va+len) for accesses of `kind` (bits WATCH_READ, WATCH_WRITE); kind 0 clears it. The caller flushes the TLB. */
export function wpSet(i: u32, va: u64, len: u64, kind: u32): void {
  if (i >= WP_MAX) return;
  const bit: u32 = 1 << i;
  if (kind == 0 || len == 0) {
    wpMask &= ~bit;
    return;
  }
  const e = DEBUG_WP + (i << 5);
  store<u64>(e, va);
  store<u64>(e, va + len - 1, 8);
  store<u64>(e, <u64>kind, 16);
  wpMask |= bit;
}

/** Whether a load or store TLB entry may be made for the page of va. */
export function wpFreePage(va: u64): bool {
  let m = wpMask;
  const p = va >> 12;
  while (m != 0) {
    const i = <u32>ctz(m);
    m &= m - 1;
    const e = DEBUG_WP + (i << 5);
    if (p >= load<u64>(e) >> 12 && p <= load<u64>(e, 8) >> 12) return false;
  }
  return true;
}

/** Slow-path data access of `size` bytes at va of `kind`: stop before it if it touches a watched range. */
export function wpCheck(va: u64, size: u32, kind: u32): bool {
  let m = wpMask;
  if (m == 0) return false;
  const last = va + <u64>size - 1;
  while (m != 0) {
    const i = <u32>ctz(m);
    m &= m - 1;
    const e = DEBUG_WP + (i << 5);
    const lo = load<u64>(e);
    const hi = load<u64>(e, 8);
    if ((<u32>load<u64>(e, 16) & kind) == 0 || last < lo || va > hi) continue;
    if (instret == skipInstret) return false;
    watchHitKind = kind;
    watchHitAddr = va > lo ? va : lo;
    stop();
    return true;
  }
  return false;
}

/** Whether any watchpoint is set (the slow paths test this first). */
@inline export function wpAny(): bool {
  return wpMask != 0;
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

/** Let the next run() execute the instruction at the current breakpoint or watched access once. */
export function bpStepOver(): void {
  skipInstret = instret;
}

/** run() starts: no watchpoint has stopped it (a later stop may be a trigger's). */
export function wpResetHit(): void {
  watchHitKind = 0;
}

/** After EXIT_BREAKPOINT: 0 for a pc breakpoint, else the watch kind that stopped (WATCH_READ or WATCH_WRITE). */
export function watchKind(): u32 {
  return watchHitKind;
}
export function watchAddr(): u64 {
  return watchHitAddr;
}
