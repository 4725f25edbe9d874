// Sdtrig trigger module: TRIG_COUNT triggers of type 6 (mcontrol6) matching
// the virtual address of instruction fetches, loads and stores.
//
// What is implemented (other fields are WARL and read back as zero):
// - match 0 (the address equals tdata2; for loads and stores: any accessed
//   byte is at tdata2) and match 1 (NAPOT range in tdata2, any byte in it);
// - size 0 (any), chain 0 (each trigger stands alone), select 0 (address),
//   no hit bits, tdata3 reads zero;
// - timing: every match fires before the instruction or access takes effect
//   (nothing is retired, written or loaded);
// - action 0 raises a breakpoint exception (cause 3, tval = the matching
//   address: the pc, or the start of the access). As the spec asks when tcontrol
//   is absent, an action-0 trigger does not fire in M-mode while mstatus.MIE is 0
//   (else a trigger in a trap handler would clobber mepc);
// - action 1 (enter Debug Mode) belongs to the host debugger: only the host
//   sets it (with dmode = 1, so the guest cannot change that trigger); a hit
//   stops run() with EXIT_BREAKPOINT before the instruction, as pc breakpoints do.
// Writing an unsupported type to tdata1 leaves the trigger disabled (type 15).
//
// Pages holding a watched address never get a TLB entry of that access kind,
// so every access there reaches the checks on the slow path; changing a
// trigger flushes the TLBs (which also unlinks translated blocks).

import { priv, mstatus, trapped, breakBatch, PRV_M, PRV_S, MS_MIE, EXC_BREAKPOINT } from './hart';
import { TRIG_OFF } from './layout';
import { stateAt } from './hart-area';
import { raiseException } from './exception';
import { bpHit, bpResuming } from './breakpoints';

export const TRIG_COUNT: u32 = 4;

const TYPE_SHIFT: u64 = 60;
const TYPE_MCONTROL6: u64 = 6;
const TYPE_DISABLED: u64 = 15;
const DMODE: u64 = <u64>1 << 59;
const ACTION_SHIFT: u64 = 12;
const MATCH_SHIFT: u64 = 7;
const BIT_M: u64 = 1 << 6;
const BIT_S: u64 = 1 << 4;
const BIT_U: u64 = 1 << 3;
export const TRIG_EXEC: u32 = 4;
export const TRIG_STORE: u32 = 2;
export const TRIG_LOAD: u32 = 1;
/** Fields a guest may set in an mcontrol6 tdata1: match (2 bits here), m, s, u, execute, store, load. */
const GUEST_BITS: u64 = (<u64>3 << MATCH_SHIFT) | BIT_M | BIT_S | BIT_U | 7;
const DISABLED: u64 = TYPE_DISABLED << TYPE_SHIFT;

// In the hart's state block, not on the module's heap (shared by every instance of the core).
@inline function tdata1At(i: u32): u32 { return stateAt() + TRIG_OFF + (i << 3); }
@inline function tdata2At(i: u32): u32 { return stateAt() + TRIG_OFF + 32 + (i << 3); }
export let tselect: u32 = 0;
/** Access kinds (TRIG_EXEC/STORE/LOAD bits) some trigger watches: 0 means no checks at all. */
let armed: u32 = 0;
/** The last host (action 1) trigger that stopped run(), or -1. */
export let trigHostHit: i32 = -1;
/** The access that stopped it: first byte, size and kind (TRIG_* bits; an AMO is a load and a store). */
export let trigHitAddr: u64 = 0;
export let trigHitSize: u32 = 0;
export let trigHitKind: u32 = 0;

export function trigReset(): void {
  for (let i: u32 = 0; i < TRIG_COUNT; i++) {
    store<u64>(tdata1At(i), DISABLED);
    store<u64>(tdata2At(i), 0);
  }
  tselect = 0;
  trigHostHit = -1;
  rearm();
}

function rearm(): void {
  armed = 0;
  for (let i: u32 = 0; i < TRIG_COUNT; i++) {
    const t = load<u64>(tdata1At(i));
    if ((t >> TYPE_SHIFT) == TYPE_MCONTROL6 && (t & (BIT_M | BIT_S | BIT_U)) != 0) armed |= <u32>t & 7;
  }
}

/** Legal tdata1 value for a write of v (guest: dmode and action forced to 0). */
function legalize(v: u64, host: bool): u64 {
  if ((v >> TYPE_SHIFT) != TYPE_MCONTROL6) return DISABLED;
  let match = (v >> MATCH_SHIFT) & 0xf;
  if (match > 1) match = 0;
  let r = (TYPE_MCONTROL6 << TYPE_SHIFT) | (v & GUEST_BITS & ~(<u64>3 << MATCH_SHIFT)) | (match << MATCH_SHIFT);
  if (host) r |= DMODE | (<u64>1 << ACTION_SHIFT);
  return r;
}

// ---- CSRs (M-mode only; the caller checked the privilege) ----

export function trigCsrRead(csr: u32): u64 {
  switch (csr) {
    case 0x7a0: return <u64>tselect;
    case 0x7a1: return load<u64>(tdata1At(tselect));
    case 0x7a2: return load<u64>(tdata2At(tselect));
    case 0x7a4: return (<u64>1 << 24) | (<u64>1 << TYPE_DISABLED) | (<u64>1 << TYPE_MCONTROL6); // version 1, types 6 and 15
  }
  return 0; // tdata3, tcontrol-less mcontext/scontext: read zero
}

/** A guest CSR write; returns whether the TLBs must be flushed. */
export function trigCsrWrite(csr: u32, v: u64): bool {
  if (csr == 0x7a0) {
    if (v < <u64>TRIG_COUNT) tselect = <u32>v;
    return false;
  }
  const i = tselect;
  if ((load<u64>(tdata1At(i)) & DMODE) != 0) return false; // owned by the host debugger
  if (csr == 0x7a1) {
    store<u64>(tdata1At(i), legalize(v, false));
  } else if (csr == 0x7a2) {
    store<u64>(tdata2At(i), v);
  } else {
    return false;
  }
  rearm();
  return true;
}

// ---- host debugger ----

/**
 * Host: set trigger i to stop run() (action 1, dmode 1) on the kinds in `kinds`
 * (TRIG_EXEC/STORE/LOAD) at `address` in every privilege mode; `napot` makes
 * tdata2 a NAPOT range. kinds 0 frees the trigger. The caller flushes the TLBs.
 */
export function trigHostSet(i: u32, kinds: u32, address: u64, napot: bool): void {
  if (i >= TRIG_COUNT) return;
  if (kinds == 0) {
    store<u64>(tdata1At(i), DISABLED);
    store<u64>(tdata2At(i), 0);
  } else {
    const v = (TYPE_MCONTROL6 << TYPE_SHIFT) | (<u64>(napot ? 1 : 0) << MATCH_SHIFT) | BIT_M | BIT_S | BIT_U | <u64>(kinds & 7);
    store<u64>(tdata1At(i), legalize(v, true));
    store<u64>(tdata2At(i), address);
  }
  rearm();
}

export function trigGet(i: u32, which: u32): u64 {
  if (i >= TRIG_COUNT) return 0;
  return which == 1 ? load<u64>(tdata1At(i)) : load<u64>(tdata2At(i));
}

/** Snapshot restore: raw values (the host validated them with trigLegal). */
export function trigPut(i: u32, t1: u64, t2: u64): void {
  if (i >= TRIG_COUNT) return;
  store<u64>(tdata1At(i), t1);
  store<u64>(tdata2At(i), t2);
  rearm();
}

/** Whether t1 is a value this module can hold in tdata1 (for restores). */
export function trigLegal(t1: u64): bool {
  return t1 == DISABLED || legalize(t1, (t1 & DMODE) != 0) == t1;
}

export function setTselect(v: u32): void {
  if (v < TRIG_COUNT) tselect = v;
}

// ---- matching ----

@inline function napotLo(t2: u64): u64 {
  return t2 & (t2 + 1); // clear the trailing ones
}

/** Does trigger value (t1, t2) cover any byte of [a, a + size)? */
@inline function covers(t1: u64, t2: u64, a: u64, size: u32): bool {
  const last = a + <u64>size - 1;
  if (((t1 >> MATCH_SHIFT) & 0xf) == 1) {
    const l = napotLo(t2);
    const h = l | ((t2 ^ l) << 1) | 1;
    return !(last < l || a > h);
  }
  return t2 >= a && t2 <= last;
}

/** Whether a TLB entry of access kind `kind` (TRIG_* bit) may be made for the page of va. */
export function trigPageFree(va: u64, kind: u32): bool {
  if ((armed & kind) == 0) return true;
  const pl = va & ~(<u64>0xfff);
  for (let i: u32 = 0; i < TRIG_COUNT; i++) {
    const t1 = load<u64>(tdata1At(i));
    if ((t1 >> TYPE_SHIFT) != TYPE_MCONTROL6 || (<u32>t1 & kind) == 0) continue;
    if (covers(t1, load<u64>(tdata2At(i)), pl, 0x1000)) return false;
  }
  return true;
}

/**
 * Check the triggers of kind `kind` for an access of [va, va + size). On a hit
 * raises the breakpoint exception (action 0) or stops for the host (action 1)
 * and returns true: the caller must not perform the access.
 */
export function trigCheck(va: u64, size: u32, kind: u32): bool {
  if ((armed & kind) == 0) return false;
  const modeBit: u64 = priv == PRV_M ? BIT_M : (priv == PRV_S ? BIT_S : BIT_U);
  for (let i: u32 = 0; i < TRIG_COUNT; i++) {
    const t1 = load<u64>(tdata1At(i));
    if ((t1 >> TYPE_SHIFT) != TYPE_MCONTROL6 || (<u32>t1 & kind) == 0 || (t1 & modeBit) == 0) continue;
    if (!covers(t1, load<u64>(tdata2At(i)), va, size)) continue;
    if ((t1 & DMODE) != 0) {
      if (bpResuming()) continue; // the host resumes over this stop
      trigHostHit = <i32>i;
      trigHitAddr = va;
      trigHitSize = size;
      trigHitKind = kind;
      bpHit = true;
      trapped = true;
      breakBatch = true;
      return true;
    }
    if (priv == PRV_M && (mstatus & MS_MIE) == 0) continue;
    raiseException(EXC_BREAKPOINT, va);
    return true;
  }
  return false;
}
