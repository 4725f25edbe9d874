// Guest memory access: Sv39/Sv48 translation with a software TLB, physical
// routing (RAM, CLINT, host MMIO devices) and misaligned-access emulation.
//
// Fast path: a direct-mapped TLB per access kind (fetch/load/store) and per
// privilege maps a guest virtual page to an addend that turns the guest
// virtual address into a wasm linear-memory address. Only translations whose
// permission outcome cannot change without an sfence.vma/satp write are
// cached: S-mode access to U pages (depends on SUM) and loads that rely on MXR
// always take the slow path, so SUM/MXR toggles need no flush.
//
// PMP (./pmp) is checked on the slow path, on the physical address, with the
// access's effective privilege; page-table reads are checked as S-mode loads.
// A page is cached only if one PMP entry decides all of it, and only for
// the access kind and privilege that passed; PMP writes flush the TLBs. Pages
// watched by a trigger (./triggers) are not cached for the watched kind.

import {
  TLB_BASE, TLB_SIZE, RAM_HOST, STATE, TLB_BASES_OFF, TLB_TAGS_OFF, PAGE_GEN, CODE_PAGE, JIT_EPOCH_OFF, JIT_USER_EPOCH_OFF, JIT_CODE_EPOCH_OFF, JIT_RETIRES_SEEN_OFF, CODE_RETIRES,
  JIT_JCACHE_OFF, JIT_JCACHE_ENTRIES, JIT_JCACHE_BASE_OFF,
  MMIO_FAULT_OFF, WALK_COUNTS_OFF, LOOKUP_COUNTS_OFF, DIRTY_PAGE, LINK_PAGES_OFF, LINK_PAGES_BITS, ASID_TABLE_OFF, ASID_COUNT,
} from './state';
import { HART_STRIDE } from './layout';

// Which pages links point into, so that a page fence unlinks only when it must:
// one map for the links of each epoch (a link made in U-mode follows the user
// epoch, see linkSlot in jit.ts), each cleared with its epoch's bump.
const LINK_MAP_BYTES: u32 = LINK_PAGES_BITS >> 3;
@inline function linkMapKernel(): u32 { return stateAt() + LINK_PAGES_OFF; }
@inline function linkMapUser(): u32 { return stateAt() + LINK_PAGES_OFF + LINK_MAP_BYTES; }
let kernelLinksNoted: bool = false;
let userLinksNoted: bool = false;

// Jump cache parts filled since they were last emptied (true at start: the
// state block may hold anything until the first bump, which reset and restore do).
let jcacheUserUsed: bool = true;
let jcacheSuperUsed: bool = true;
const JCACHE_PART: u32 = JIT_JCACHE_ENTRIES << 4;

/** Address of privilege p's part of the jump cache. */
@inline export function jcachePart(p: u32): u32 {
  return stateAt() + JIT_JCACHE_OFF + p * JCACHE_PART;
}

/** A jump-cache entry is being filled in the current privilege: its part must be emptied at the next bump. */
@inline export function noteJcacheFill(): void {
  if (priv == PRV_U) jcacheUserUsed = true;
  else jcacheSuperUsed = true;
}

/** Links between translated blocks assume the current code: invalidate them all (also those within a page). */
export function bumpCodeLinkEpoch(): void {
  // (read first: a page retired from now on counts for the next FENCE.I)
  store<u32>(stateAt() + JIT_RETIRES_SEEN_OFF, atomic.load<u32>(CODE_RETIRES));
  store<u32>(stateAt() + JIT_CODE_EPOCH_OFF, load<u32>(stateAt() + JIT_CODE_EPOCH_OFF) + 1);
  bumpLinkEpoch();
}

/**
 * FENCE.I with harts on threads of their own (the instruction, or asked of this
 * hart by another through SBI): a store by another hart retired its
 * translations of a page through the shared page generation, but this hart's
 * links between blocks, and its jump cache, follow its own epochs. Dropped
 * only if some hart retired code since this one last dropped them.
 */
export function fenceICode(): void {
  if (atomic.load<u32>(CODE_RETIRES) != load<u32>(stateAt() + JIT_RETIRES_SEEN_OFF)) bumpCodeLinkEpoch();
}

/** Links between translated blocks assume the current mappings: invalidate those into other pages. */
export function bumpLinkEpoch(): void {
  store<u32>(stateAt() + JIT_EPOCH_OFF, load<u32>(stateAt() + JIT_EPOCH_OFF) + 1);
  if (jcacheSuperUsed) {
    // S, the unused 2 and M (U follows the user epoch, below).
    memory.fill(jcachePart(1), 0xff, 3 * JCACHE_PART);
    jcacheSuperUsed = false;
  }
  bumpUserLinkEpoch();
  if (kernelLinksNoted) {
    memory.fill(linkMapKernel(), 0, LINK_MAP_BYTES);
    kernelLinksNoted = false;
  }
}

/**
 * Only the links into user code (see JIT_USER_EPOCH_OFF): the user address
 * space changed while the S/M context, so every kernel translation, stayed.
 * A kernel block is only ever reached in S-mode (S cannot execute U pages)
 * and a user block only in U-mode, and xRET and traps end a chain.
 */
function bumpUserLinkEpoch(): void {
  store<u32>(stateAt() + JIT_USER_EPOCH_OFF, load<u32>(stateAt() + JIT_USER_EPOCH_OFF) + 1);
  if (jcacheUserUsed) {
    memory.fill(jcachePart(PRV_U), 0xff, JCACHE_PART);
    jcacheUserUsed = false;
  }
  if (userLinksNoted) {
    memory.fill(linkMapUser(), 0, LINK_MAP_BYTES);
    userLinksNoted = false;
  }
}

/**
 * A page's bit in a link map: each half of the address space has half of the
 * map, so the fence of a user page (low half, e.g. a copy-on-write fault)
 * never aliases a kernel page that links point into.
 */
@inline function linkBit(vpn: u64): u32 {
  const half = LINK_PAGES_BITS >> 1;
  return (<u32>(vpn >> 51) & 1) * half + (<u32>vpn & (half - 1));
}

/** A link into the page of `va` is being made in the current privilege: a fence of that page must unlink (see tlbFlushPage). */
@inline export function noteLinkTarget(va: u64): void {
  const b = linkBit(va >> 12);
  let map = linkMapKernel();
  if (priv == PRV_U) {
    map = linkMapUser();
    userLinksNoted = true;
  } else {
    kernelLinksNoted = true;
  }
  const a = map + (b >> 3);
  store<u8>(a, <u8>(<u32>load<u8>(a) | (<u32>1 << (b & 7))));
}

@inline function linkTargetSeen(map: u32, vpn: u64): bool {
  const b = linkBit(vpn);
  return ((<u32>load<u8>(map + (b >> 3)) >> (b & 7)) & 1) != 0;
}
import {
  count, CNT_UNLINK_FLUSH, CNT_UNLINK_CODE, CNT_UNLINK_PAGE, CNT_UNLINK_SUPER, CNT_UNLINK_USER, CNT_UNLINK_PAGE_USER, CNT_FENCE_PAGE_FULL,
  CNT_SATP_CHANGE, CNT_CODE_PROTECT, CNT_CODE_RETIRE,
} from './counters';
import {
  priv, satp, mstatus, ramSize, PRV_M, PRV_S, PRV_U, MS_MPRV, MS_MPP, MS_MPP_SHIFT, MS_SUM, MS_MXR,
  EXC_INSN_ACCESS, EXC_LOAD_ACCESS, EXC_STORE_ACCESS, EXC_INSN_PAGE, EXC_LOAD_PAGE, EXC_STORE_PAGE,
  trapped, breakBatch,
} from './hart';
import { raiseException } from './exception';
import { clintRead, clintWrite, CLINT_BASE, CLINT_SIZE } from './clint';
import { bpFreePage, bpCheck } from './breakpoints';
import { pmpAllows, pmpPageUniform } from './pmp';
import { trigCheck, trigPageFree, TRIG_EXEC, TRIG_LOAD, TRIG_STORE } from './triggers';
import { stateAt, tlbAt, hartOff } from './hart-area';
import { hartCount } from './hart-slots';

@external('env', 'mmioRead') declare function hostMmioRead(addr: u32, size: u32): u32;
@external('env', 'mmioWrite') declare function hostMmioWrite(addr: u32, size: u32, value: u32): void;

export const RAM_BASE: u64 = 0x80000000;

export const ACC_FETCH: u32 = 0;
export const ACC_LOAD: u32 = 1;
export const ACC_STORE: u32 = 2;

const SET_BYTES: u32 = TLB_SIZE * 16;
const TLB_MASK: u32 = TLB_SIZE - 1;
/** Set index 3 is never filled: accesses through it always take the slow path. */
const SET_NOFILL: u32 = 3;

export let tlbFetch: u32 = tlbAt();
export let tlbLoad: u32 = tlbAt();
export let tlbStore: u32 = tlbAt();

// TLB contexts. An entry's tag is its 52-bit virtual page number with a
// context number in bits 52..63, and a lookup compares it with the page number
// ORed with the tag of the set it probes (tagFetch, tagData). Flushing is
// then taking a fresh context, not clearing 192 KiB, and entries of an address
// space survive a switch away and back: satp offers ASIDs (ASID_BITS), each
// ASID with its satp value keeps its context for the user set until an
// sfence.vma or a different satp value for that ASID retires it. The S and M
// sets share one context that survives satp writes while it holds only global
// translations (the kernel's); a non-global one filled there marks it, and the
// next satp change retires it. A context is never reused until the numbers run
// out, which empties the TLB for real. Context 0xfff is never used, so an
// empty entry (all ones) matches nothing.

export const ASID_BITS: u64 = 9;
const CTX_SHIFT: u64 = 52;
const CTX_LAST: u32 = 0xffe;
let nextCtx: u32 = 1;
/** Context of the U sets (the current ASID's) and of the S and M sets. */
let userCtx: u32 = 0;
let superCtx: u32 = 0;
/** A translation that is not global was cached under superCtx. */
let superHasLocal: bool = false;
/** What a lookup ORs into the page number: the context of the set it probes, shifted. */
export let tagFetch: u64 = 0;
export let tagData: u64 = 0;

const PTE_V: u64 = 1;
const PTE_R: u64 = 2;
const PTE_W: u64 = 4;
const PTE_X: u64 = 8;
const PTE_U: u64 = 16;
const PTE_G: u64 = 32;
const PTE_A: u64 = 64;
const PTE_D: u64 = 128;
const PPN_MASK: u64 = (<u64>1 << 44) - 1;

/** Whether the last successful translation may be cached in the TLB. */
let lastCacheable: bool = false;
const NO_PAGE: u64 = 0xffffffffffffffff;
/**
 * One-entry TLBs for the pages a breakpoint or trigger keeps out of the real
 * ones (fetch, load, store): every access there still reaches the checks, but
 * without a page walk each. Flushed with the TLB; valid for the TLB set
 * (privilege) they were filled under.
 */
let debugFetchVpn: u64 = NO_PAGE;
let debugFetchAddend: u64 = 0;
let debugFetchSet: u32 = 0;
let debugLoadVpn: u64 = NO_PAGE;
let debugLoadPa: u64 = 0;
let debugLoadSet: u32 = 0;
let debugStoreVpn: u64 = NO_PAGE;
let debugStorePa: u64 = 0;
let debugStoreSet: u32 = 0;

@inline function debugEntriesFlush(): void {
  debugFetchVpn = NO_PAGE;
  debugLoadVpn = NO_PAGE;
  debugStoreVpn = NO_PAGE;
}
/** The last translation came from a megapage or gigapage leaf. */
let lastSuperpage: bool = false;
/** The last translation holds in every address space (a G bit on its walk, or M-mode's identity). */
let lastGlobal: bool = false;
/**
 * Virtual page numbers covered by the superpages TLB entries were filled from
 * (inclusive; empty when lo > hi), in the upper half of the address space. The
 * TLB holds 4 KiB pieces, so an sfence.vma
 * of an address inside a superpage must drop everything (the leaf covers many
 * pieces); one outside every superpage (a user page, while the kernel's linear
 * map uses superpages) drops just its own page.
 */
let superLo: u64 = 0xffffffffffffffff;
let superHi: u64 = 0;
/**
 * The same for the lower half of the address space (bit 63 clear), kept apart:
 * one range over both would span from a process's huge pages up to the
 * kernel's linear map, and every page fence between them would flush it all.
 */
let superLoLow: u64 = 0xffffffffffffffff;
let superHiLow: u64 = 0;
/** Low bits of the address inside the last translation's leaf (0xfff for a 4 KiB page). */
let lastLeafMask: u64 = 0xfff;

@inline function setBase(kind: u32, set: u32): u32 {
  return tlbAt() + (kind * 4 + set) * SET_BYTES;
}

@inline function setTag(set: u32): u64 {
  return <u64>(set == PRV_U ? userCtx : superCtx) << CTX_SHIFT;
}

/** Recompute the TLB sets in use; call after any change of priv, MPRV or MPP (and of a context). */
export function updateTlbSets(): void {
  const fset = priv == PRV_M ? 2 : priv;
  tlbFetch = setBase(ACC_FETCH, fset);
  let eff = priv;
  if (priv == PRV_M && (mstatus & MS_MPRV) != 0) eff = <u32>((mstatus & MS_MPP) >> MS_MPP_SHIFT);
  const set = eff == PRV_M ? 2 : (eff == 2 ? SET_NOFILL : eff);
  tlbLoad = setBase(ACC_LOAD, set);
  tlbStore = setBase(ACC_STORE, set);
  tagFetch = setTag(fset);
  tagData = setTag(set);
  store<u32>(stateAt() + TLB_BASES_OFF, tlbFetch);
  store<u32>(stateAt() + TLB_BASES_OFF + 4, tlbLoad);
  store<u32>(stateAt() + TLB_BASES_OFF + 8, tlbStore);
  store<u64>(stateAt() + TLB_TAGS_OFF, tagFetch);
  store<u64>(stateAt() + TLB_TAGS_OFF + 8, tagData);
  store<u32>(stateAt() + JIT_JCACHE_BASE_OFF, jcachePart(priv));
}

@inline function asidOf(v: u64): u32 {
  return <u32>(v >> 44) & (ASID_COUNT - 1);
}

/** The user context for satp value `v`: the one its ASID had under the same value, or a fresh one. */
function bindUserCtx(v: u64): void {
  const t = stateAt() + ASID_TABLE_OFF + (asidOf(v) << 4);
  if (load<u32>(t, 8) != 0 && load<u64>(t) == v) {
    userCtx = load<u32>(t, 8);
    return;
  }
  userCtx = nextCtx++;
  store<u64>(t, v);
  store<u32>(t, userCtx, 8);
}

/** Retire the S/M context if it may hold a translation of another address space; unlink what that staled. */
@inline function retireSuperIfLocal(): void {
  if (superHasLocal) {
    superCtx = nextCtx++;
    superHasLocal = false;
    count(CNT_UNLINK_SUPER);
    bumpLinkEpoch();
  } else {
    count(CNT_UNLINK_USER);
    bumpUserLinkEpoch();
  }
}

/** satp was written (its new value is in place; `old` was the previous one). */
export function tlbSatpWritten(old: u64): void {
  // The debugger's one-entry TLBs carry no context tag: any change of address space drops them.
  debugEntriesFlush();
  if (satp == old) {
    // Same address space: drop what it cached, as an sfence.vma of its ASID would.
    tlbFlushAsid(asidOf(satp));
    return;
  }
  count(CNT_SATP_CHANGE);
  if (nextCtx + 2 > CTX_LAST) {
    tlbFlushAll();
    return;
  }
  retireSuperIfLocal();
  bindUserCtx(satp);
  updateTlbSets();
}

/** sfence.vma x0, asid: the non-global translations of one address space (here: more). */
export function tlbFlushAsid(asid: u32): void {
  debugEntriesFlush();
  if (nextCtx + 2 > CTX_LAST) {
    tlbFlushAll();
    return;
  }
  store<u32>(stateAt() + ASID_TABLE_OFF + ((asid & (ASID_COUNT - 1)) << 4), 0, 8);
  retireSuperIfLocal();
  if ((asid & (ASID_COUNT - 1)) == asidOf(satp)) bindUserCtx(satp);
  updateTlbSets();
}

/**
 * A store hit guest RAM at `off`: mark the page dirty (live migration) and, if
 * translated code came from that page, retire it. Every store to RAM that does
 * not go through a store TLB entry passes here, and an entry is only filled by
 * a store that does (see storeSlow), so a page with an entry is already marked.
 */
@inline export function noteRamStore(off: u64): void {
  const pg = <u32>(off >> 12);
  store<u8>(DIRTY_PAGE + pg, 1);
  if (load<u8>(CODE_PAGE + pg) != 0) retireCodePage(pg);
}

/** Start a dirty-log round: every page clean, and no store TLB entry left to bypass the marking. */
export function dirtyLogRestart(): void {
  memory.fill(DIRTY_PAGE, 0, <usize>(ramSize >> 12));
  memory.fill(setBase(ACC_STORE, 0), 0xff, 4 * SET_BYTES);
}

export function retireCodePage(pg: u32): void {
  // Leave the running block after this instruction: it may have come from this page.
  breakBatch = true;
  count(CNT_CODE_RETIRE);
  count(CNT_UNLINK_CODE);
  atomic.add<u32>(CODE_RETIRES, 1);
  bumpCodeLinkEpoch();
  store<u8>(CODE_PAGE + pg, 0);
  const g = PAGE_GEN + (pg << 2);
  store<u32>(g, load<u32>(g) + 1);
}

/** Make every store to guest-RAM page `pg` take the slow path (it now holds translated code). */
export function protectCodePage(pg: u32): void {
  count(CNT_CODE_PROTECT);
  store<u8>(CODE_PAGE + pg, 1);
  const hostPage = <u64>RAM_HOST + (<u64>pg << 12);
  // Harts on threads of their own each have a store TLB: every one must stop
  // writing this page on its fast path, or a store by another hart would not
  // retire this hart's translation (QEMU clears every vCPU's TLB the same way).
  const areas: u32 = hartThreads ? hartCount : 1;
  for (let a: u32 = 0; a < areas; a++) {
    const other = hartThreads ? <i32>(a * HART_STRIDE) - <i32>hartOff : 0;
    for (let s: u32 = 0; s < 4; s++) protectInSet(<u32>(<i32>setBase(ACC_STORE, s) + other), hostPage);
  }
}

/** Harts run on threads of their own (SMP phase 2): code protection reaches every hart's TLB. */
export let hartThreads: bool = false;
export function setHartThreads(on: bool): void { hartThreads = on; }

function protectInSet(base: u32, hostPage: u64): void {
  for (let i: u32 = 0; i < TLB_SIZE; i++) {
    const e = base + (i << 4);
    const tag = load<u64>(e);
    if (tag == 0xffffffffffffffff) continue;
    if (((tag << 12) + load<u64>(e, 8)) >> 12 == hostPage >> 12) store<u64>(e, 0xffffffffffffffff);
  }
}

/** Every translation of every address space goes: fresh contexts (the TLB is cleared only when they run out). */
export function tlbFlushAll(): void {
  count(CNT_UNLINK_FLUSH);
  bumpLinkEpoch();
  debugEntriesFlush();
  if (nextCtx + 2 > CTX_LAST) {
    memory.fill(tlbAt(), 0xff, 12 * SET_BYTES);
    nextCtx = 1;
  }
  memory.fill(stateAt() + ASID_TABLE_OFF, 0, ASID_COUNT * 16);
  superCtx = nextCtx++;
  superHasLocal = false;
  bindUserCtx(satp);
  superLo = 0xffffffffffffffff;
  superHi = 0;
  superLoLow = 0xffffffffffffffff;
  superHiLow = 0;
  updateTlbSets();
}

/** sfence.vma with a virtual address: only that page's entries can be stale, in any context. */
export function tlbFlushPage(va: u64): void {
  const vpn = va >> 12;
  debugEntriesFlush();
  if ((va >> 63) != 0 ? vpn >= superLo && vpn <= superHi : vpn >= superLoLow && vpn <= superHiLow) {
    count(CNT_FENCE_PAGE_FULL);
    tlbFlushAll();
    return;
  }
  // Links into other pages stay right; a page flush per page fault (the kernel
  // fences even a newly valid PTE) would otherwise unlink every block each time.
  // A user page's fence leaves the kernel's links alone.
  if (linkTargetSeen(linkMapKernel(), vpn)) {
    count(CNT_UNLINK_PAGE);
    bumpLinkEpoch();
  } else if (linkTargetSeen(linkMapUser(), vpn)) {
    count(CNT_UNLINK_PAGE_USER);
    bumpUserLinkEpoch();
  }
  const idx = (<u32>vpn & TLB_MASK) << 4;
  for (let s: u32 = 0; s < 12; s++) {
    const e = tlbAt() + s * SET_BYTES + idx;
    if (load<u64>(e) << 12 == vpn << 12) store<u64>(e, 0xffffffffffffffff);
  }
}

@inline function tlbFill(base: u32, tag: u64, va: u64, pa: u64): void {
  if (lastSuperpage) {
    const lo = (va & ~lastLeafMask) >> 12;
    const hi = (va | lastLeafMask) >> 12;
    if ((va >> 63) != 0) {
      if (lo < superLo) superLo = lo;
      if (hi > superHi) superHi = hi;
    } else {
      if (lo < superLoLow) superLoLow = lo;
      if (hi > superHiLow) superHiLow = hi;
    }
  }
  if (!lastGlobal && tag == <u64>superCtx << CTX_SHIFT) superHasLocal = true;
  const vpn = va >> 12;
  const e = base + ((<u32>vpn & TLB_MASK) << 4);
  store<u64>(e, vpn | tag);
  store<u64>(e, (<u64>RAM_HOST + ((pa & ~0xfff) - RAM_BASE)) - (va & ~0xfff), 8);
}

@inline function isRamPage(pa: u64): bool {
  return pa - RAM_BASE < ramSize;
}

function pageFault(access: u32, va: u64): u64 {
  raiseException(access == ACC_FETCH ? EXC_INSN_PAGE : (access == ACC_LOAD ? EXC_LOAD_PAGE : EXC_STORE_PAGE), va);
  return 0;
}

function accessFault(access: u32, va: u64): u64 {
  raiseException(access == ACC_FETCH ? EXC_INSN_ACCESS : (access == ACC_LOAD ? EXC_LOAD_ACCESS : EXC_STORE_ACCESS), va);
  return 0;
}

/** Privilege that loads/stores run with (MPRV lets M-mode borrow MPP's view). */
@inline function effectivePriv(access: u32): u32 {
  if (access != ACC_FETCH && priv == PRV_M && (mstatus & MS_MPRV) != 0) {
    return <u32>((mstatus & MS_MPP) >> MS_MPP_SHIFT);
  }
  return priv;
}

/** Translate a guest virtual address. On a fault raises the exception and returns 0 (check `trapped`). */

@inline function countLookup(kind: u32): void {
  const c = stateAt() + LOOKUP_COUNTS_OFF + (kind << 3);
  store<u64>(c, load<u64>(c) + 1);
}

export function translate(va: u64, access: u32): u64 {
  const cnt = stateAt() + WALK_COUNTS_OFF + (access << 3);
  store<u64>(cnt, load<u64>(cnt) + 1);
  const ep = effectivePriv(access);
  const mode = <u32>(satp >> 60);
  lastSuperpage = false;
  if (ep == PRV_M || mode == 0) {
    lastCacheable = true;
    lastGlobal = ep == PRV_M;
    return va;
  }
  let global = false;
  const levels: i32 = mode == 8 ? 3 : 4;
  const vaBits: u64 = 12 + 9 * <u64>levels;
  // The address must be sign-extended from its top valid bit.
  if (<u64>((<i64>(va << (64 - vaBits))) >> (64 - vaBits)) != va) return pageFault(access, va);
  let a: u64 = (satp & PPN_MASK) << 12;
  for (let i: i32 = levels - 1; i >= 0; i--) {
    const shift = 12 + 9 * <u64>i;
    const pteAddr = a + (((va >> shift) & 0x1ff) << 3);
    if (!isRamPage(pteAddr) || !pmpAllows(pteAddr, 8, ACC_LOAD, PRV_S)) return accessFault(access, va);
    const host = <usize>(<u64>RAM_HOST + (pteAddr - RAM_BASE));
    let pte = load<u64>(host);
    // Reserved bits 63..54 (Svnapot/Svpbmt are not offered) must be zero.
    if ((pte & PTE_V) == 0 || (pte & (PTE_R | PTE_W)) == PTE_W || (pte >> 54) != 0) {
      return pageFault(access, va);
    }
    const ppn = (pte >> 10) & PPN_MASK;
    if ((pte & PTE_G) != 0) global = true; // a G bit holds for everything below it
    if ((pte & (PTE_R | PTE_X)) == 0) {
      a = ppn << 12;
      continue;
    }
    // Leaf. A superpage must be aligned.
    const lowPpnBits: u64 = 9 * <u64>i;
    if (i > 0 && (ppn & ((<u64>1 << lowPpnBits) - 1)) != 0) return pageFault(access, va);
    let cacheable = true;
    if (ep == PRV_U) {
      if ((pte & PTE_U) == 0) return pageFault(access, va);
    } else if ((pte & PTE_U) != 0) {
      if (access == ACC_FETCH || (mstatus & MS_SUM) == 0) return pageFault(access, va);
      cacheable = false;
    }
    if (access == ACC_FETCH) {
      if ((pte & PTE_X) == 0) return pageFault(access, va);
    } else if (access == ACC_LOAD) {
      if ((pte & PTE_R) == 0) {
        if ((mstatus & MS_MXR) == 0 || (pte & PTE_X) == 0) return pageFault(access, va);
        cacheable = false;
      }
    } else {
      if ((pte & PTE_W) == 0) return pageFault(access, va);
    }
    // Hardware A/D update (as QEMU does by default).
    const want = pte | PTE_A | (access == ACC_STORE ? PTE_D : 0);
    if (want != pte) {
      // The A/D update is an S-mode store to the page table.
      if (!pmpAllows(pteAddr, 8, ACC_STORE, PRV_S)) return accessFault(access, va);
      store<u64>(host, want);
      store<u8>(DIRTY_PAGE + <u32>((pteAddr - RAM_BASE) >> 12), 1);
    }
    const pageMask: u64 = (<u64>1 << shift) - 1;
    const pa = ((ppn << 12) & ~pageMask) | (va & pageMask);
    lastCacheable = cacheable;
    lastSuperpage = i > 0;
    lastGlobal = global;
    lastLeafMask = pageMask;
    return pa;
  }
  return pageFault(access, va);
}

// ---- physical access ----

function physRead(pa: u64, size: u32, va: u64, access: u32): u64 {
  const off = pa - RAM_BASE;
  if (off < ramSize && off + size <= ramSize) {
    const h = <usize>(<u64>RAM_HOST + off);
    if (size == 8) return load<u64>(h);
    if (size == 4) return <u64>load<u32>(h);
    if (size == 2) return <u64>load<u16>(h);
    return <u64>load<u8>(h);
  }
  if (pa >= CLINT_BASE && pa < CLINT_BASE + CLINT_SIZE) return clintRead(<u32>(pa - CLINT_BASE), size);
  if (pa >= 0x100000000 || access == ACC_FETCH) return accessFault(access, va);
  store<u32>(stateAt() + MMIO_FAULT_OFF, 0);
  let v: u64;
  if (size == 8) {
    const lo = hostMmioRead(<u32>pa, 4);
    const hi = hostMmioRead(<u32>pa + 4, 4);
    v = (<u64>hi << 32) | <u64>lo;
  } else {
    v = <u64>hostMmioRead(<u32>pa, size);
  }
  if (load<u32>(stateAt() + MMIO_FAULT_OFF) != 0) return accessFault(access, va);
  return v;
}

function physWrite(pa: u64, size: u32, v: u64, va: u64): void {
  const off = pa - RAM_BASE;
  if (off < ramSize && off + size <= ramSize) {
    noteRamStore(off);
    const h = <usize>(<u64>RAM_HOST + off);
    if (size == 8) store<u64>(h, v);
    else if (size == 4) store<u32>(h, <u32>v);
    else if (size == 2) store<u16>(h, <u16>v);
    else store<u8>(h, <u8>v);
    return;
  }
  if (pa >= CLINT_BASE && pa < CLINT_BASE + CLINT_SIZE) {
    clintWrite(<u32>(pa - CLINT_BASE), size, v);
    return;
  }
  if (pa >= 0x100000000) {
    accessFault(ACC_STORE, va);
    return;
  }
  store<u32>(stateAt() + MMIO_FAULT_OFF, 0);
  if (size == 8) {
    hostMmioWrite(<u32>pa, 4, <u32>v);
    hostMmioWrite(<u32>pa + 4, 4, <u32>(v >> 32));
  } else {
    hostMmioWrite(<u32>pa, size, <u32>v);
  }
  if (load<u32>(stateAt() + MMIO_FAULT_OFF) != 0) accessFault(ACC_STORE, va);
}

// ---- virtual access, slow paths ----

/** Translate and check PMP for an access of `size` bytes (within one page); 0 with a trap raised on a fault. */
function translateChecked(va: u64, size: u32, access: u32): u64 {
  const pa = translate(va, access);
  if (trapped) return 0;
  if (!pmpAllows(pa, size, access, effectivePriv(access))) return accessFault(access, va);
  return pa;
}

/** Whether the page of a translation that passed PMP may go into the TLB. */
@inline function mayCache(pa: u64): bool {
  return lastCacheable && isRamPage(pa) && pmpPageUniform(pa);
}

export function loadSlow(va: u64, size: u32): u64 {
  if (trigCheck(va, size, TRIG_LOAD)) return 0;
  if (va >> 12 == debugLoadVpn && tlbLoad == debugLoadSet && (va & 0xfff) + size <= 0x1000) {
    return physRead(debugLoadPa | (va & 0xfff), size, va, ACC_LOAD);
  }
  return loadSlowUnwatched(va, size);
}

function loadSlowUnwatched(va: u64, size: u32): u64 {
  if ((va & 0xfff) + size > 0x1000) {
    // Crosses a page: assemble byte by byte so each page is translated (and may fault) on its own.
    let v: u64 = 0;
    for (let i: u32 = 0; i < size; i++) {
      const b = loadSlowUnwatched(va + i, 1);
      if (trapped) return 0;
      v |= b << (8 * <u64>i);
    }
    return v;
  }
  const pa = translateChecked(va, size, ACC_LOAD);
  if (trapped) return 0;
  // A watched page stays out of the TLB so each access there comes back here.
  if (mayCache(pa)) {
    if (trigPageFree(va, TRIG_LOAD)) {
      tlbFill(tlbLoad, tagData, va, pa);
    } else {
      debugLoadVpn = va >> 12;
      debugLoadPa = pa & ~0xfff;
      debugLoadSet = tlbLoad;
    }
  }
  return physRead(pa, size, va, ACC_LOAD);
}

export function storeSlow(va: u64, size: u32, v: u64): void {
  if (trigCheck(va, size, TRIG_STORE)) return;
  if (va >> 12 == debugStoreVpn && tlbStore == debugStoreSet && (va & 0xfff) + size <= 0x1000) {
    physWrite(debugStorePa | (va & 0xfff), size, v, va); // marks the page dirty and retires code there
    return;
  }
  storeSlowUnwatched(va, size, v);
}

function storeSlowUnwatched(va: u64, size: u32, v: u64): void {
  if ((va & 0xfff) + size > 0x1000) {
    // Translate and check both parts first so a fault on the second leaves memory untouched.
    const firstPart = 0x1000 - <u32>(va & 0xfff);
    translateChecked(va, firstPart, ACC_STORE);
    if (trapped) return;
    translateChecked((va | 0xfff) + 1, size - firstPart, ACC_STORE);
    if (trapped) return;
    for (let i: u32 = 0; i < size; i++) {
      storeSlowUnwatched(va + i, 1, v >> (8 * <u64>i));
      if (trapped) return;
    }
    return;
  }
  const pa = translateChecked(va, size, ACC_STORE);
  if (trapped) return;
  if (mayCache(pa)) {
    if (!trigPageFree(va, TRIG_STORE)) {
      debugStoreVpn = va >> 12;
      debugStorePa = pa & ~0xfff;
      debugStoreSet = tlbStore;
    } else if (load<u8>(CODE_PAGE + <u32>((pa - RAM_BASE) >> 12)) == 0) {
      tlbFill(tlbStore, tagData, va, pa);
    }
  }
  physWrite(pa, size, v, va);
}

/**
 * Physical address of a store-kind access (AMO, SC) of `size` bytes, RAM only;
 * 0 with a trap raised otherwise. An AMO needs PMP read and write permission
 * and is seen by load and store triggers (`reads`); an SC only by store triggers.
 */
export function translateAmo(va: u64, size: u32, reads: bool = true): u64 {
  if (trigCheck(va, size, reads ? TRIG_LOAD | TRIG_STORE : TRIG_STORE)) return 0;
  const pa = translateChecked(va, size, ACC_STORE);
  if (trapped) return 0;
  if (!pmpAllows(pa, size, ACC_LOAD, effectivePriv(ACC_LOAD))) return accessFault(ACC_STORE, va);
  if (pa - RAM_BASE >= ramSize) {
    accessFault(ACC_STORE, va);
    return 0;
  }
  const cache = mayCache(pa);
  noteRamStore(pa - RAM_BASE);
  // Fill both data TLBs as a load and a store there would, so the next AMO takes amoHostFast.
  // (A writable page is readable: W without R faults in translate, and PMP checked both kinds.)
  if (cache) {
    if (trigPageFree(va, TRIG_LOAD)) tlbFill(tlbLoad, tagData, va, pa);
    if (trigPageFree(va, TRIG_STORE)) tlbFill(tlbStore, tagData, va, pa);
  }
  return pa;
}

@inline export function hostOf(pa: u64): usize {
  return <usize>(<u64>RAM_HOST + (pa - RAM_BASE));
}

// ---- virtual access, fast paths ----

@inline function tlbEntry(base: u32, va: u64): u32 {
  return base + ((<u32>(va >> 12) & TLB_MASK) << 4);
}

/**
 * Host address of a naturally aligned AMO or SC at `va` when the data TLB holds
 * its page for both loads and stores, else 0 (take translateAmo). Both entries
 * exist only for a RAM page whose translation, PMP and triggers allowed that
 * kind of access, with no translated code on it and already marked dirty (see
 * storeSlow), so the access needs no further check. The kernel's atomics
 * (locks, reference counts, page-table updates) otherwise pay a page walk each.
 */
@inline export function amoHostFast(va: u64): usize {
  const tag = (va >> 12) | tagData;
  const es = tlbEntry(tlbStore, va);
  if (load<u64>(es) != tag || load<u64>(tlbEntry(tlbLoad, va)) != tag) return 0;
  return <usize>(va + load<u64>(es, 8));
}

/** Host address of a naturally aligned load (LR) at `va` when the load TLB holds its page, else 0. */
@inline export function loadHostFast(va: u64): usize {
  const e = tlbEntry(tlbLoad, va);
  if (load<u64>(e) != ((va >> 12) | tagData)) return 0;
  return <usize>(va + load<u64>(e, 8));
}

/** Guest physical address of a host address inside guest RAM. */
@inline export function physOfHost(h: usize): u64 {
  return <u64>h - <u64>RAM_HOST + RAM_BASE;
}

@inline export function load8(va: u64): u64 {
  countLookup(0);
  const e = tlbEntry(tlbLoad, va);
  if (load<u64>(e) == ((va >> 12) | tagData)) return <u64>load<u8>(<usize>(va + load<u64>(e, 8)));
  return loadSlow(va, 1);
}
@inline export function load16(va: u64): u64 {
  countLookup(0);
  const e = tlbEntry(tlbLoad, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xffe) return <u64>load<u16>(<usize>(va + load<u64>(e, 8)));
  return loadSlow(va, 2);
}
@inline export function load32(va: u64): u64 {
  countLookup(0);
  const e = tlbEntry(tlbLoad, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xffc) return <u64>load<u32>(<usize>(va + load<u64>(e, 8)));
  return loadSlow(va, 4);
}
@inline export function load64(va: u64): u64 {
  countLookup(0);
  const e = tlbEntry(tlbLoad, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xff8) return load<u64>(<usize>(va + load<u64>(e, 8)));
  return loadSlow(va, 8);
}
@inline export function store8(va: u64, v: u64): void {
  countLookup(1);
  const e = tlbEntry(tlbStore, va);
  if (load<u64>(e) == ((va >> 12) | tagData)) store<u8>(<usize>(va + load<u64>(e, 8)), <u8>v);
  else storeSlow(va, 1, v);
}
@inline export function store16(va: u64, v: u64): void {
  countLookup(1);
  const e = tlbEntry(tlbStore, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xffe) store<u16>(<usize>(va + load<u64>(e, 8)), <u16>v);
  else storeSlow(va, 2, v);
}
@inline export function store32(va: u64, v: u64): void {
  countLookup(1);
  const e = tlbEntry(tlbStore, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xffc) store<u32>(<usize>(va + load<u64>(e, 8)), <u32>v);
  else storeSlow(va, 4, v);
}
@inline export function store64(va: u64, v: u64): void {
  countLookup(1);
  const e = tlbEntry(tlbStore, va);
  if (load<u64>(e) == ((va >> 12) | tagData) && (va & 0xfff) <= 0xff8) store<u64>(<usize>(va + load<u64>(e, 8)), v);
  else storeSlow(va, 8, v);
}

function fetchSlow16(va: u64): u32 {
  const pa = translateChecked(va, 2, ACC_FETCH);
  if (trapped) return 0;
  if (!isRamPage(pa) || pa - RAM_BASE + 2 > ramSize) {
    accessFault(ACC_FETCH, va);
    return 0;
  }
  // A breakpoint's or trigger's page stays out of the fetch TLB so each fetch there comes back here
  // (and translated code is never found there); its translation goes into the debug fetch entry.
  if (mayCache(pa)) {
    if (bpFreePage(va) && trigPageFree(va, TRIG_EXEC)) {
      tlbFill(tlbFetch, tagFetch, va, pa);
    } else {
      debugFetchVpn = va >> 12;
      debugFetchAddend = (<u64>RAM_HOST + ((pa & ~0xfff) - RAM_BASE)) - (va & ~0xfff);
      debugFetchSet = tlbFetch;
    }
  }
  return <u32>load<u16>(hostOf(pa));
}

/** Fetch the instruction at va: 32 bits, or a compressed one in the low 16 bits. */
@inline export function fetchInsn(va: u64): u32 {
  const e = tlbEntry(tlbFetch, va);
  if (load<u64>(e) == ((va >> 12) | tagFetch) && (va & 0xfff) <= 0xffc) return load<u32>(<usize>(va + load<u64>(e, 8)));
  return fetchInsnSlow(va);
}

function fetchInsnSlow(va: u64): u32 {
  // An instruction address trigger comes before any fault of the fetch itself.
  if (trigCheck(va, 1, TRIG_EXEC)) return 0;
  if (va >> 12 == debugFetchVpn && tlbFetch == debugFetchSet && (va & 0xfff) <= 0xffc) {
    if (bpCheck(va)) return 0;
    return load<u32>(<usize>(va + debugFetchAddend));
  }
  const lo = fetchSlow16(va);
  if (trapped || bpCheck(va)) return 0;
  if ((lo & 3) != 3) return lo;
  const hi = fetchSlow16(va + 2);
  if (trapped) return 0;
  return lo | (hi << 16);
}

export { PRV_S, PRV_U };
