// SMP on one thread: the core runs one hart at a time in its globals and state
// block; the others wait in saved contexts (HART_CTX) and the host switches
// between them at quantum boundaries. Translated code and the block cache stay
// shared (they hold nothing hart-specific); the TLB is flushed at each switch
// because its entries belong to one hart's satp and privilege.

import { STATE, X_OFF, F_OFF, FFLAGS_OFF, FRM_OFF, HART_CTX, HART_CTX_SIZE, HART_CTX_MAX, HART_CTX_X_OFF, HART_CTX_F_OFF, HART_CTX_FP_OFF } from './layout';
import { cpuStateGet, cpuStateSet, cpuStateFieldCount } from './persist';
import { reservation, breakBatch, currentTime, MS_FS, mstatus, MIP_MTIP, MIP_STIP, MIP_MSIP } from './hart';
import { FS_DIRTY_OFF } from './state';
import { tlbFlushAll, updateTlbSets, bumpCodeLinkEpoch, fenceICode } from './mmu';
import { curHart, hartCount, setCurHart, setHartCount, slotBase, F_MTIMECMP, F_MSIP } from './hart-slots';
import { stateAt } from './hart-area';

// Fields shared by the whole machine (cpuStateGet numbers): instret (guest time in
// deterministic runs follows it, so it must not go back when harts switch), timeNow,
// deterministic, timeSkew, ecallHookMask, jitEnabled, ramSize.
const F_INSTRET: u32 = 2;
const F_MIE: u32 = 6;
const F_MIPSW: u32 = 7;
const F_MIPHW: u32 = 8;
const F_MENVCFG: u32 = 15;
const F_STIMECMP: u32 = 24;

@inline function shared(i: u32): bool {
  return i == F_INSTRET || (i >= 28 && i <= 30) || (i >= 32 && i <= 34);
}

@inline function ctx(h: u32): u32 {
  return slotBase(h);
}

/** At reset: hart 0 is live, every slot is empty (`clear` false: the slots are known to be zero, a fresh memory). */
export function hartsReset(clear: bool): void {
  setCurHart(0);
  if (clear) memory.fill(HART_CTX, 0, HART_CTX_MAX * HART_CTX_SIZE);
}

export function hartSetCount(n: u32): void {
  setHartCount(n < 1 ? 1 : n > HART_CTX_MAX ? HART_CTX_MAX : n);
}

export function hartCurrent(): u32 {
  return curHart;
}

/** Copy the live hart's state into its slot. */
export function hartSave(): void {
  hartSaveTo(curHart);
}

/** Copy the live hart's state into slot h (the host makes secondary harts from the boot hart's setup). */
export function hartSaveTo(h: u32): void {
  if (h >= HART_CTX_MAX) return;
  const c = ctx(h);
  const n = cpuStateFieldCount();
  for (let i: u32 = 0; i < n; i++) if (!shared(i)) store<u64>(c + (i << 3), cpuStateGet(i));
  memory.copy(c + HART_CTX_X_OFF, stateAt() + X_OFF, 256);
  memory.copy(c + HART_CTX_F_OFF, stateAt() + F_OFF, 256);
  store<u32>(c + HART_CTX_FP_OFF, load<u32>(stateAt() + FFLAGS_OFF));
  store<u32>(c + HART_CTX_FP_OFF + 4, load<u32>(stateAt() + FRM_OFF));
}

/**
 * Make hart `h` the live one: save the current hart, load h. Reservations end at
 * a switch (another hart may store before this one runs again, and an SC may
 * always fail), and the TLB is flushed.
 */
export function hartSwitch(h: u32): void {
  if (h >= hartCount) return;
  if (h != curHart) {
    hartSave();
    hartLoad(h);
  }
  reservation = 0xffffffffffffffff;
}

/** Load slot h into the core (the live state is overwritten; save it first). */
export function hartLoad(h: u32): void {
  const c = ctx(h);
  const n = cpuStateFieldCount();
  for (let i: u32 = 0; i < n; i++) if (!shared(i)) cpuStateSet(i, load<u64>(c + (i << 3)));
  memory.copy(stateAt() + X_OFF, c + HART_CTX_X_OFF, 256);
  memory.copy(stateAt() + F_OFF, c + HART_CTX_F_OFF, 256);
  store<u32>(stateAt() + FFLAGS_OFF, load<u32>(c + HART_CTX_FP_OFF));
  store<u32>(stateAt() + FRM_OFF, load<u32>(c + HART_CTX_FP_OFF + 4));
  store<u32>(stateAt() + FS_DIRTY_OFF, (mstatus & MS_FS) == MS_FS ? 1 : 0);
  setCurHart(h);
  reservation = 0xffffffffffffffff;
  tlbFlushAll();
  updateTlbSets();
  breakBatch = true;
}

/**
 * A hart thread (SMP phase 2) takes over hart h from its slot: its instance's
 * globals were never a hart's, so nothing is saved first.
 */
export function hartAdopt(h: u32): void {
  if (h < hartCount) hartLoad(h);
}

/** Translated code stops following its links (another thread retired code this hart may have linked into). */
export function hartUnlinkAll(): void {
  bumpCodeLinkEpoch();
  breakBatch = true;
}

/** A FENCE.I another hart asked of this one (SBI RFENCE): see fenceICode. */
export function hartFenceI(): void {
  fenceICode();
  breakBatch = true;
}

/** A field of hart h (cpuStateGet numbering): live for the current hart, else from its slot. */
export function hartFieldGet(h: u32, i: u32): u64 {
  if (h == curHart || shared(i)) return cpuStateGet(i);
  return load<u64>(ctx(h) + (i << 3));
}

export function hartFieldSet(h: u32, i: u32, v: u64): void {
  if (h == curHart || shared(i)) {
    cpuStateSet(i, v);
    breakBatch = true;
    return;
  }
  store<u64>(ctx(h) + (i << 3), v);
}

/** OR (set) or clear bits of hart h's device-driven mip (PLIC lines, SBI IPIs go to mipSw). */
export function hartMipBits(h: u32, sw: bool, bits: u64, on: bool): void {
  const f = sw ? F_MIPSW : F_MIPHW;
  const v = hartFieldGet(h, f);
  hartFieldSet(h, f, on ? v | bits : v & ~bits);
}

/** Whether hart h has an interrupt pending and enabled in mie (what ends its WFI). */
export function hartWakeable(h: u32): bool {
  const t = currentTime();
  let hw = hartFieldGet(h, F_MIPHW) & ~(MIP_MTIP | MIP_STIP | MIP_MSIP);
  const stce = (hartFieldGet(h, F_MENVCFG) >> 63) != 0;
  if (t >= hartFieldGet(h, F_MTIMECMP)) hw |= MIP_MTIP;
  if (stce && t >= hartFieldGet(h, F_STIMECMP)) hw |= MIP_STIP;
  if (hartFieldGet(h, F_MSIP) != 0) hw |= MIP_MSIP;
  let sw = hartFieldGet(h, F_MIPSW);
  if (stce) sw &= ~MIP_STIP;
  return ((sw | hw) & hartFieldGet(h, F_MIE)) != 0;
}

/** Earliest timer deadline of hart h in ticks, or all ones. */
export function hartDeadline(h: u32): u64 {
  let d = hartFieldGet(h, F_MTIMECMP);
  if ((hartFieldGet(h, F_MENVCFG) >> 63) != 0) {
    const s = hartFieldGet(h, F_STIMECMP);
    if (s < d) d = s;
  }
  return d;
}

/** Register r of hart h: x0..x31, f0..f31 as 32..63, fflags 64, frm 65. */
export function hartRegGet(h: u32, r: u32): u64 {
  const a = regAddr(h, r);
  if (a == 0) return 0;
  return r >= 64 ? <u64>load<u32>(a) : load<u64>(a);
}

export function hartRegSet(h: u32, r: u32, v: u64): void {
  const a = regAddr(h, r);
  if (r == 0 || a == 0) return;
  if (r >= 64) store<u32>(a, <u32>v & (r == 64 ? 0x1f : 7));
  else store<u64>(a, v);
}

function regAddr(h: u32, r: u32): u32 {
  if (h >= HART_CTX_MAX || r > 65) return 0;
  if (h == curHart) {
    if (r < 32) return stateAt() + X_OFF + (r << 3);
    if (r < 64) return stateAt() + F_OFF + ((r - 32) << 3);
    return stateAt() + (r == 64 ? FFLAGS_OFF : FRM_OFF);
  }
  const c = ctx(h);
  if (r < 32) return c + HART_CTX_X_OFF + (r << 3);
  if (r < 64) return c + HART_CTX_F_OFF + ((r - 32) << 3);
  return c + HART_CTX_FP_OFF + (r == 64 ? 0 : 4);
}
