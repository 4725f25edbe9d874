// Physical memory protection: 16 entries (pmpcfg0/pmpcfg2 hold 8 config bytes
// each on RV64, pmpaddr0..15), address matching OFF/TOR/NA4/NAPOT with a
// 4-byte grain, the lock bit, lowest index wins. An access that no entry
// matches succeeds in M-mode and fails in S/U-mode (entries are implemented,
// so the privileged spec's rule applies even while all are OFF).
//
// The TLB caches a 4 KiB page only when one entry (or none) decides the whole
// page, so cached accesses need no check; every change flushes the TLBs.

import { PRV_M } from './hart';
import { PMP_OFF } from './layout';
import { stateAt } from './hart-area';

export const PMP_COUNT: u32 = 16;

const CFG_R: u32 = 1;
const CFG_W: u32 = 2;
const CFG_X: u32 = 4;
const CFG_A: u32 = 0x18;
const CFG_L: u32 = 0x80;
const A_TOR: u32 = 0x08;
const A_NA4: u32 = 0x10;
const A_NAPOT: u32 = 0x18;
/** pmpaddr holds physical address bits 55:2. */
const ADDR_MASK: u64 = (<u64>1 << 54) - 1;

// The entries live in the hart's state block, not on the module's heap: every
// instance of the core (one per hart thread) would share heap allocations.
// cfg: u8 each, then addr, and the decoded byte range of each entry, inclusive
// (lo > hi when it matches nothing): u64 each.
@inline function cfgAt(i: u32): u32 { return stateAt() + PMP_OFF + i; }
@inline function addrAt(i: u32): u32 { return stateAt() + PMP_OFF + 16 + (i << 3); }
@inline function loAt(i: u32): u32 { return stateAt() + PMP_OFF + 16 + 128 + (i << 3); }
@inline function hiAt(i: u32): u32 { return stateAt() + PMP_OFF + 16 + 256 + (i << 3); }
/** Active (A != OFF) entries are all within [first, end). */
let first: u32 = 0;
let end: u32 = 0;

/** Clear every entry (reset). */
export function pmpReset(): void {
  for (let i: u32 = 0; i < PMP_COUNT; i++) {
    store<u8>(cfgAt(i), 0);
    store<u64>(addrAt(i), 0);
  }
  decode();
}

function decode(): void {
  first = PMP_COUNT;
  end = 0;
  for (let i: u32 = 0; i < PMP_COUNT; i++) {
    const c = <u32>load<u8>(cfgAt(i));
    const a = load<u64>(addrAt(i));
    let l: u64 = 1;
    let h: u64 = 0;
    const mode = c & CFG_A;
    if (mode == A_TOR) {
      const base: u64 = i == 0 ? 0 : load<u64>(addrAt(i - 1)) << 2;
      const top = a << 2;
      if (top > base) {
        l = base;
        h = top - 1;
      }
    } else if (mode == A_NA4) {
      l = a << 2;
      h = l + 3;
    } else if (mode == A_NAPOT) {
      // k trailing ones: a naturally aligned region of 2^(k+3) bytes.
      const k = <u64>ctz(~a);
      const size: u64 = <u64>1 << (k + 3);
      l = (a << 2) & ~(size - 1);
      h = l + size - 1;
    }
    store<u64>(loAt(i), l);
    store<u64>(hiAt(i), h);
    if (mode != 0) {
      if (i < first) first = i;
      end = i + 1;
    }
  }
}

@inline function locked(i: u32): bool {
  return (<u32>load<u8>(cfgAt(i)) & CFG_L) != 0;
}

/** pmpcfgN (N even): 8 config bytes. */
export function pmpCfgRead(n: u32): u64 {
  let v: u64 = 0;
  for (let j: u32 = 0; j < 8; j++) v |= <u64>load<u8>(cfgAt(n * 4 + j)) << (8 * <u64>j);
  return v;
}

/** Write pmpcfgN (N even). Locked bytes keep their value; returns whether anything changed. */
export function pmpCfgWrite(n: u32, v: u64): bool {
  let changed = false;
  for (let j: u32 = 0; j < 8; j++) {
    const i = n * 4 + j;
    if (locked(i)) continue;
    // Bits 6:5 are reserved (zero); R=0 W=1 is reserved and becomes R=0 W=0.
    let b = <u32>(v >> (8 * <u64>j)) & 0x9f;
    if ((b & (CFG_R | CFG_W)) == CFG_W) b &= ~CFG_W;
    if (<u32>load<u8>(cfgAt(i)) != b) {
      store<u8>(cfgAt(i), <u8>b);
      changed = true;
    }
  }
  if (changed) decode();
  return changed;
}

export function pmpAddrRead(i: u32): u64 {
  return load<u64>(addrAt(i));
}

/** Write pmpaddrI: ignored when entry I is locked, or when entry I+1 is a locked TOR (I is its base). */
export function pmpAddrWrite(i: u32, v: u64): bool {
  if (locked(i)) return false;
  if (i + 1 < PMP_COUNT && locked(i + 1) && (<u32>load<u8>(cfgAt(i + 1)) & CFG_A) == A_TOR) return false;
  const nv = v & ADDR_MASK;
  if (load<u64>(addrAt(i)) == nv) return false;
  store<u64>(addrAt(i), nv);
  decode();
  return true;
}

/** Permission bit of an access kind (fetch 0, load 1, store 2) in a config byte. */
@inline function permBit(access: u32): u32 {
  return access == 0 ? CFG_X : (access == 1 ? CFG_R : CFG_W);
}

/** Whether an access of `size` bytes at physical `pa` in privilege `mode` passes PMP. */
export function pmpAllows(pa: u64, size: u32, access: u32, mode: u32): bool {
  const last = pa + <u64>size - 1;
  for (let i = first; i < end; i++) {
    const c = <u32>load<u8>(cfgAt(i));
    if ((c & CFG_A) == 0) continue;
    const l = load<u64>(loAt(i));
    const h = load<u64>(hiAt(i));
    if (last < l || pa > h) continue;
    // The lowest matching entry decides, and it must cover every byte.
    if (pa < l || last > h) return false;
    if (mode == PRV_M && (c & CFG_L) == 0) return true;
    return (c & permBit(access)) != 0;
  }
  return mode == PRV_M;
}

/** Whether one entry (or none) decides every byte of the 4 KiB page holding `pa`: then the TLB may cache it. */
export function pmpPageUniform(pa: u64): bool {
  const pl = pa & ~(<u64>0xfff);
  const ph = pl | 0xfff;
  for (let i = first; i < end; i++) {
    if ((<u32>load<u8>(cfgAt(i)) & CFG_A) == 0) continue;
    const l = load<u64>(loAt(i));
    const h = load<u64>(hiAt(i));
    if (ph < l || pl > h) continue;
    return pl >= l && ph <= h;
  }
  return true;
}

// ---- snapshots: raw access that ignores the lock bits (the host validated the values) ----

export function pmpCfgPut(n: u32, v: u64): void {
  for (let j: u32 = 0; j < 8; j++) store<u8>(cfgAt(n * 4 + j), <u8>(v >> (8 * <u64>j)));
  decode();
}

export function pmpAddrPut(i: u32, v: u64): void {
  store<u64>(addrAt(i), v & ADDR_MASK);
  decode();
}
