// Core side of the translator: the block cache the run loop dispatches
// through, hot-block counting, the compile queue the host drains between
// slices, and the slow-path helpers translated code imports. Translated blocks
// are wasm functions in the shared table; they keep registers in the STATE
// block, so the interpreter and translated code always agree on hart state.

import {
  STATE, PC_OFF, JIT_FLAG_OFF, JIT_QUEUE_OFF, JIT_QUEUE_MAX, JIT_HASH, JIT_HASH_SIZE, JIT_HOT, JIT_HOT_SIZE,
  PAGE_GEN, CODE_PAGE, RAM_HOST, JIT_LAST_EXIT_OFF, JIT_EPOCH_OFF, JIT_USER_EPOCH_OFF, JIT_CODE_EPOCH_OFF, JIT_DONE_OFF, JIT_URGENT_OFF, JIT_BUDGET_OFF,
} from './state';
import { pc, priv, trapped, breakBatch, ramSize, instret, exitReason, mstatus, curInsnBits, MS_FS, EXC_ILLEGAL, PRV_U } from './hart';
import { execFp } from './fpu';
import { markFsDirty } from './csr';
import { raiseException, takePendingException, updateTimerLines, pendingInterrupt } from './trap';
import { loadSlow, storeSlow, tlbFetch, tagFetch, protectCodePage, retireCodePage, bumpCodeLinkEpoch, noteLinkTarget, noteJcacheFill, RAM_BASE } from './mmu';
import { count, CNT_RELINK, CNT_JIT_INTERP, CNT_JIT_AMO, CNT_JIT_CSR, CNT_JIT_SYSTEM, CNT_JIT_ONWARD } from './counters';
import { execute, amo, csrInsn, mulh, mulhsu, mulhu, div64, divu64, rem64, remu64, div32, divu32, rem32, remu32 } from './exec';
import { jitHashAt, jitHotAt, stateAt } from './hart-area';
import { JIT_JCACHE_BASE_OFF, JIT_JCACHE_ENTRIES, X_OFF } from './state';

/** Executions of a block head before it is queued for translation. */
const HOT_THRESHOLD: i32 = 64;
/**
 * The threshold in force: the host raises it while the guest idles (see
 * jitSetHotThreshold and Jit.idle in src/jit/jit.ts).
 */
let hotThreshold: i32 = HOT_THRESHOLD;

/**
 * Executions a head needs before it is queued (0: the usual HOT_THRESHOLD). An
 * idle guest runs its timer and housekeeping code a few times a second: at 64
 * executions such a block is translated after a minute and then saves almost
 * nothing, while translating it cost about 0.15 ms of host time; with hart
 * threads every hart pays that for itself.
 */
export function jitSetHotThreshold(n: i32): void {
  hotThreshold = n > 0 ? n : HOT_THRESHOLD;
}
const QUEUED: i32 = -0x40000000;
/** Further executions of a queued loop head before translation is requested at once. */
const URGENT_AFTER: i32 = 1024;

/** First entry of the 2-entry set for hpc. */
@inline function setOf(hpc: u32): u32 {
  return jitHashAt() + ((((hpc >> 1) ^ (hpc >> 15)) & (JIT_HASH_SIZE - 2)) << 5);
}

/**
 * The hot counter of head `hpc`: 2-way sets of {hpc, count}. Returns the way
 * that holds `hpc`, else the one a new head may take (a queued head's first,
 * else the lower count) with bit 0 set.
 */
@inline function hotEntry(hpc: u32): u32 {
  const h = jitHotAt() + ((((hpc >> 1) ^ (hpc >> 15)) & (JIT_HOT_SIZE - 2)) << 3);
  if (load<u32>(h) == hpc) return h;
  if (load<u32>(h, 8) == hpc) return h + 8;
  const c0 = load<i32>(h, 4);
  const c1 = load<i32>(h, 12);
  return (c1 < c0 ? h + 8 : h) | 1;
}

@inline function entryValid(e: u32): bool {
  return load<u32>(e, 24) == load<u32>(PAGE_GEN + (load<u32>(e, 28) << 2));
}

/** Host (linear-memory) address of the instruction at pc, from the fetch TLB; 0 on a miss. */
@inline export function fetchHostAddr(va: u64): u32 {
  const e = tlbFetch + ((<u32>(va >> 12) & 1023) << 4);
  if (load<u64>(e) != ((va >> 12) | tagFetch)) return 0;
  return <u32>(va + load<u64>(e, 8));
}

/** Block-cache entry for (pc, hpc) if it is valid, else 0. */
@inline export function lookupBlock(va: u64, hpc: u32): u32 {
  const e = setOf(hpc);
  if (load<u32>(e) == hpc && load<u64>(e, 8) == va && entryValid(e)) return e;
  const e2 = e + 32;
  if (load<u32>(e2) == hpc && load<u64>(e2, 8) == va && entryValid(e2)) return e2;
  return 0;
}

/** The dispatcher found block `e` at the target of the last unchained exit: link them. */
@inline export function linkLastExit(e: u32, va: u64): void {
  const slot = load<u32>(stateAt() + JIT_LAST_EXIT_OFF);
  if (slot == 0) return;
  store<u32>(stateAt() + JIT_LAST_EXIT_OFF, 0);
  if (load<u32>(slot, 24) != 0) {
    // An indirect jump's slot follows its latest target (the exit checks it before chaining).
    store<u64>(slot, va, 16);
  } else if (load<u64>(slot, 16) != va) {
    return; // the exit's constant target must be this block
  }
  count(CNT_RELINK);
  // (a page flush need not unlink a link within a page: see JIT_CODE_EPOCH_OFF)
  if (load<u32>(slot, 28) == 0) noteLinkTarget(va);
  linkSlot(slot, e);
}

/** Point link slot `slot` at block-cache entry `e` (its table slot and length), valid in this epoch. */
@inline function linkSlot(slot: u32, e: u32): void {
  // The target was found through the fetch TLB of this privilege: a user block's link
  // follows the user epoch (see JIT_USER_EPOCH_OFF), one within the exit's page the code epoch.
  const ep = stateAt() + (load<u32>(slot, 28) != 0 ? JIT_CODE_EPOCH_OFF : priv == PRV_U ? JIT_USER_EPOCH_OFF : JIT_EPOCH_OFF);
  store<u32>(slot, load<u32>(e, 16));
  store<u32>(slot, load<u32>(ep), 4);
  store<u32>(slot, load<u32>(e, 20), 8);
  store<u32>(slot, ep, 12);
}

/**
 * Count an untranslated block head; queue it for translation when hot. A queued
 * head that keeps being reached by a backward jump is a long-running loop: then
 * leave run() so the host translates it now rather than at the end of the slice.
 */
/**
 * False while the block cache, the hot counts and the code-page marks are all
 * zero (a new core, or just after a flush): a flush then has nothing to clear.
 * A restore flushes right after the reset, and clearing the 2 MiB cache of a
 * new memory cost a page fault per page touched.
 */
let jitTablesUsed = false;

export function noteBlockHead(va: u64, hpc: u32, backward: bool): void {
  jitTablesUsed = true;
  let h = hotEntry(hpc);
  if ((h & 1) != 0) {
    // Both ways belong to other heads. The one with the lower count keeps it, one
    // count lower, while it has counted more than this head: a head that runs
    // rarely (an interrupt path, say) must not reset a hot one every time it comes
    // by. With one way and no such rule, kernel heads of the fork path that ran
    // thousands of times were never translated: a colliding head took their
    // counter back to 1 every few dozen runs.
    h &= ~1;
    const held = load<i32>(h, 4);
    if (held > 1) {
      store<i32>(h, held - 1, 4);
      return;
    }
    store<u32>(h, hpc);
    store<i32>(h, 1, 4);
    return;
  }
  const c = load<i32>(h, 4) + 1;
  store<i32>(h, c, 4);
  // Not for pages whose code keeps being rewritten: their translations die young.
  if (c == QUEUED + URGENT_AFTER && backward && load<u32>(PAGE_GEN + (((hpc - RAM_HOST) >> 12) << 2)) < 4) {
    // Queued, not yet translated, and still looping: a long-running loop.
    store<u32>(stateAt() + JIT_URGENT_OFF, 1);
    if (exitReason == 0) exitReason = EXIT_COMPILE;
    breakBatch = true;
    return;
  }
  // Queued heads count up from QUEUED (negative); a head whose count passed a
  // lower threshold than the one in force is queued at its next execution.
  if (c < hotThreshold) return;
  const q = stateAt() + JIT_QUEUE_OFF;
  const n = load<u32>(q);
  if (n >= JIT_QUEUE_MAX) {
    store<i32>(h, 0, 4); // try again later
    return;
  }
  const e = q + 16 + (n << 4);
  store<u64>(e, va);
  store<u32>(e, hpc, 8);
  store<u32>(q, n + 1);
  store<i32>(h, QUEUED, 4);
}

/**
 * Warm start (the host's cache of heads that were hot in an earlier run): `hot`
 * sets the head's count so it is queued the first time it runs; false lets a
 * head the cache wrongly named count up afresh. Sharing a counter with another
 * head only changes when one of them gets translated, never what runs.
 */
export function jitPrimeHead(hpc: u32, hot: bool): void {
  jitTablesUsed = true;
  const h = hotEntry(hpc) & ~1;
  store<u32>(h, hpc);
  store<i32>(h, hot ? HOT_THRESHOLD - 1 : 0, 4);
}

/** run() returned so the host can translate a hot loop right away. */
export const EXIT_COMPILE: u32 = 3;

// ---- exports for the host ----

/** How often the queued head at `hpc` ran since it was queued (-1: not queued, or its counter was taken over). */
export function jitHeadRuns(hpc: u32): i32 {
  const h = hotEntry(hpc);
  if ((h & 1) != 0) return -1;
  const c = load<i32>(h, 4);
  return c < 0 ? c - QUEUED : -1;
}
export function jitQueueLength(): u32 {
  return load<u32>(stateAt() + JIT_QUEUE_OFF);
}
export function jitQueueClear(): void {
  store<u32>(stateAt() + JIT_QUEUE_OFF, 0);
}

/** Record a translated block: table slot `fn` runs `len` instructions starting at (va, hpc). */
export function jitInstall(va: u64, hpc: u32, fn: u32, len: u32): void {
  jitTablesUsed = true;
  const pg = (hpc - RAM_HOST) >> 12;
  if (<u64>pg >= (ramSize >> 12)) return;
  if (load<u8>(CODE_PAGE + pg) == 0) protectCodePage(pg);
  // Installed: a later eviction lets the head count up and be translated again.
  const h = hotEntry(hpc);
  if ((h & 1) == 0) store<i32>(h, 0, 4);
  // Newest entry first in its set; the older one moves to the second way (the one there is dropped).
  const e = setOf(hpc);
  if (load<u32>(e) != 0 && !(load<u32>(e) == hpc && load<u64>(e, 8) == va) && entryValid(e)) {
    memory.copy(e + 32, e, 32);
  }
  store<u32>(e, hpc);
  store<u64>(e, va, 8);
  store<u32>(e, fn, 16);
  store<u32>(e, len, 20);
  store<u32>(e, load<u32>(PAGE_GEN + (pg << 2)), 24);
  store<u32>(e, pg, 28);
}

/** Forget every translation (cache full, or the host asks). */
export function jitFlushAll(): void {
  jitForget(true);
}

/** Forget every translation; the block cache, hot counts and code pages are cleared if `clearTables` and anything was put in them (see jitTablesUsed). */
export function jitForget(clearTables: bool): void {
  bumpCodeLinkEpoch();
  store<u32>(stateAt() + JIT_LAST_EXIT_OFF, 0);
  if (clearTables && jitTablesUsed) {
    jitTablesUsed = false;
    memory.fill(jitHashAt(), 0, JIT_HASH_SIZE << 5);
    memory.fill(jitHotAt(), 0, JIT_HOT_SIZE << 3);
    const pages = <u32>(ramSize >> 12);
    for (let pg: u32 = 0; pg < pages; pg++) {
      if (load<u8>(CODE_PAGE + pg) != 0) retireCodePage(pg);
    }
  }
  jitQueueClear();
}

/** The host wrote guest RAM [off, off+len) (device DMA, loaders): retire translations there. */
export function jitInvalidateRange(off: u64, len: u64): void {
  if (len == 0) return;
  const first = <u32>(off >> 12);
  const last = <u32>((off + len - 1) >> 12);
  const pages = <u32>(ramSize >> 12);
  for (let pg = first; pg <= last && pg < pages; pg++) {
    if (load<u8>(CODE_PAGE + pg) != 0) retireCodePage(pg);
  }
}

// ---- helpers imported by translated code ----

@inline function setFlag(): void {
  store<u32>(stateAt() + JIT_FLAG_OFF, trapped ? 1 : (breakBatch ? 2 : 0));
}

/** Slow-path load (TLB miss, MMIO, page crossing). Sign/zero extension is done by the caller. */
// `k` is how many instructions of the block retired before this one; with the
// blocks chained before it in this call (JIT_DONE) that makes instret, and so
// deterministic time, exact inside the helper, as in the interpreter.
@inline function retiredBefore(k: u32): u64 {
  return <u64>load<u32>(stateAt() + JIT_DONE_OFF) + <u64>k;
}

export function jitLoad(va: u64, size: u32, k: u32): u64 {
  const d = retiredBefore(k);
  instret += d;
  const v = loadSlow(va, size);
  instret -= d;
  setFlag();
  return v;
}

export function jitStore(va: u64, size: u32, v: u64, k: u32): void {
  const d = retiredBefore(k);
  instret += d;
  storeSlow(va, size, v);
  instret -= d;
  setFlag();
}

/**
 * Where a slow-path load or store that raised JIT_FLAG leaves the block: pc
 * (trapped) or the next instruction (done, leave now), in the STATE block, so
 * translated code needs one exit for both (see emitLoad in translate.ts).
 */
@inline function leaveAt(insnPc: u64, op: u32): void {
  store<u64>(stateAt() + PC_OFF, trapped ? insnPc : insnPc + (((op >> 8) & 1) != 0 ? 4 : 2));
}

/**
 * The slow path of a translated load, which also leaves the block on its own
 * (see emitLoad in src/jit/translate.ts): on a flag (trap, or a leave after an
 * access that changed interrupt state) it leaves the exit pc in the STATE
 * block (on the access, or after it) and accounts the k + 1 instructions in
 * JIT_DONE, and a completed load's value in x[rd]; the block then only writes
 * back its registers and returns. Returns the loaded value (sign- or
 * zero-extended), or `old` (rd's value in the block) if the load trapped.
 * op = k << 9 | (4-byte instruction) << 8 | rd << 3 | funct3.
 */
export function jitLoadX(va: u64, insnPc: u64, op: u32, old: u64): u64 {
  const f3 = op & 7;
  const k = (op >> 9) & 0xff;
  const d = retiredBefore(k);
  instret += d;
  let v = loadSlow(va, <u32>1 << (f3 & 3));
  instret -= d;
  if (f3 == 0) v = <u64><i64><i8>v;
  else if (f3 == 1) v = <u64><i64><i16>v;
  else if (f3 == 2) v = <u64><i64><i32>v;
  setFlag();
  if (trapped) {
    leaveAt(insnPc, op);
    leaveCount(k);
    return old;
  }
  if (breakBatch) {
    const rd = (op >> 3) & 31;
    if (rd != 0) store<u64>(stateAt() + X_OFF + (rd << 3), v);
    leaveAt(insnPc, op);
    leaveCount(k);
  }
  return v;
}

/** A store's slow path for translated code, leaving the block like jitLoadX (op: k << 9 | (4-byte) << 8 | size). */
export function jitStoreX(va: u64, v: u64, insnPc: u64, op: u32): void {
  const k = (op >> 9) & 0xff;
  const d = retiredBefore(k);
  instret += d;
  storeSlow(va, op & 0xff, v);
  instret -= d;
  setFlag();
  if (trapped || breakBatch) {
    leaveAt(insnPc, op);
    leaveCount(k);
  }
}

/** The block leaves after its instruction k (which trapped or completed): count it with the k before it. */
@inline function leaveCount(k: u32): void {
  store<u32>(stateAt() + JIT_DONE_OFF, load<u32>(stateAt() + JIT_DONE_OFF) + k + 1);
}

/** Run the one instruction at the pc held in the STATE block through the interpreter. */
export function jitInterp(k: u32): void {
  count(CNT_JIT_INTERP);
  const d = retiredBefore(k);
  instret += d;
  pc = load<u64>(stateAt() + PC_OFF);
  execute();
  store<u64>(stateAt() + PC_OFF, pc);
  instret -= d;
  setFlag();
}

/**
 * An LR, SC or AMO whose inline fast path did not apply (see emitAmo in
 * src/jit/translate.ts): address and rs2 come in, what goes to rd comes back,
 * with no fetch or decode and no registers written back first.
 */
export function jitAmo(insn: u32, va: u64, b: u64, k: u32): u64 {
  count(CNT_JIT_AMO);
  const d = retiredBefore(k);
  instret += d;
  curInsnBits = <u64>insn;
  const v = amo(insn, va, b);
  instret -= d;
  setFlag();
  return v;
}

/**
 * A CSR instruction from translated code, `src` being rs1's value (or the
 * immediate): returns what goes to rd, with no fetch or decode and no
 * registers written back first (a CSR instruction touches no other x register).
 */
export function jitCsr(insn: u32, src: u64, k: u32): u64 {
  count(CNT_JIT_CSR);
  const d = retiredBefore(k);
  instret += d;
  curInsnBits = <u64>insn;
  const v = csrInsn(insn, src);
  instret -= d;
  setFlag();
  return v;
}

/** run() is not being asked to stop (exitReason). */
const EXIT_NONE_: u32 = 0;
const SRET: u32 = 0x10200073;
const MRET: u32 = 0x30200073;

/**
 * ECALL, EBREAK, SRET, MRET or SFENCE.VMA ending a translated block (pc in the
 * STATE block, `n` the block's instructions including this one): runs it
 * through the interpreter and takes the trap it raises, as run() would, then
 * finds the block at the new pc through the fetch TLB of the new privilege and
 * returns its table slot, so the chain goes on into the trap handler or back
 * to the interrupted code without returning to run(). Returns 0 when run()
 * must look first: an interrupt is now pending (the interpreter takes it at the
 * same instruction), an ecall went to the host, the host asked to stop, no
 * block is translated there or it does not fit the budget.
 */
export function jitSystem(n: u32): u32 {
  count(CNT_JIT_SYSTEM);
  // Retired before this instruction; run() counts it (the block's n includes it).
  const d = <u64>load<u32>(stateAt() + JIT_DONE_OFF) + <u64>n - 1;
  instret += d;
  pc = load<u64>(stateAt() + PC_OFF);
  execute();
  let onward = false;
  if (trapped) {
    // No breakpoint or trigger stops here: a page they watch holds no translated code.
    takePendingException();
    onward = true;
  } else {
    const bits = <u32>curInsnBits;
    onward = bits == SRET || bits == MRET || (bits >> 25) == 0x09;
  }
  store<u64>(stateAt() + PC_OFF, pc);
  if (onward && exitReason == EXIT_NONE_) {
    // What run() checks before the next instruction, with time as it stands after this one.
    instret++;
    updateTimerLines();
    instret--;
    onward = pendingInterrupt() < 0;
  }
  instret -= d;
  if (!onward) return 0;
  breakBatch = false;
  const hpc = fetchHostAddr(pc);
  if (hpc == 0) return 0;
  const e = lookupBlock(pc, hpc);
  if (e == 0 || load<u32>(stateAt() + JIT_DONE_OFF) + n + load<u32>(e, 20) > load<u32>(stateAt() + JIT_BUDGET_OFF)) return 0;
  count(CNT_JIT_ONWARD);
  return load<u32>(e, 16);
}

/**
 * A JALR exit whose one-entry link slot points elsewhere (a function returning
 * to another caller): find the block at `va` here instead of going back to the
 * dispatcher, relink the slot to it and return its table slot (0: none, or it
 * would not fit the budget).
 */
export function jitLookup(va: u64, slot: u32): u32 {
  const hpc = fetchHostAddr(va);
  if (hpc == 0) return 0;
  const e = lookupBlock(va, hpc);
  if (e == 0) return 0;
  if (load<u32>(stateAt() + JIT_DONE_OFF) + load<u32>(e, 20) > load<u32>(stateAt() + JIT_BUDGET_OFF)) return 0;
  store<u64>(slot, va, 16);
  noteLinkTarget(va);
  linkSlot(slot, e);
  // Also the jump cache, which other indirect jumps to va probe first (see emitJumpCacheProbe in translate.ts).
  noteJcacheFill();
  const j = load<u32>(stateAt() + JIT_JCACHE_BASE_OFF) + ((<u32>(va >> 1) & (JIT_JCACHE_ENTRIES - 1)) << 4);
  store<u64>(j, va);
  store<u32>(j, load<u32>(e, 16), 8);
  store<u32>(j, load<u32>(e, 20), 12);
  return load<u32>(e, 16);
}

export { RAM_BASE };

// M-extension operations with RISC-V semantics (no wasm traps on /0 or overflow).
export function jitMulh(a: u64, b: u64): u64 { return mulh(a, b); }
export function jitMulhsu(a: u64, b: u64): u64 { return mulhsu(a, b); }
export function jitMulhu(a: u64, b: u64): u64 { return mulhu(a, b); }
export function jitDiv(a: u64, b: u64): u64 { return div64(a, b); }
export function jitDivu(a: u64, b: u64): u64 { return divu64(a, b); }
export function jitRem(a: u64, b: u64): u64 { return rem64(a, b); }
export function jitRemu(a: u64, b: u64): u64 { return remu64(a, b); }
export function jitDivw(a: u64, b: u64): u64 { return div32(a, b); }
export function jitDivuw(a: u64, b: u64): u64 { return divu32(a, b); }
export function jitRemw(a: u64, b: u64): u64 { return rem32(a, b); }
export function jitRemuw(a: u64, b: u64): u64 { return remu32(a, b); }

/**
 * An FP computational instruction (OP-FP or a fused multiply-add) from translated
 * code: the same checks as the interpreter, without fetching and decoding.
 */
export function jitFp(insn: u32, k: u32): void {
  if ((mstatus & MS_FS) == 0 || !execFp(insn)) {
    curInsnBits = <u64>insn;
    raiseException(EXC_ILLEGAL, <u64>insn);
  } else {
    markFsDirty();
  }
  void k;
  setFlag();
}
