// Entry point of the CPU core (compiled to wasm). The host calls run() in
// slices; each slice returns to JS so devices, time and input are serviced and
// so V8 can tier the hot wasm code up between calls.

import {
  pc, priv, instret, mipHw, breakBatch, exitReason, trapped, timeNow, deterministic, timeSkew, ecallHookMask,
  ramSize, mhartid, mtimecmp, stimecmp, menvcfg, reservation, PRV_M, currentTime, jitEnabled, DET_INSNS_PER_TICK,
  curInsnBits, instretDelta, cycleDelta,
} from './hart';
import { pmpReset } from './pmp';
import { hartsReset } from './harts';
export {
  hartSetCount, hartCurrent, hartSwitch, hartSaveTo, hartFieldGet, hartFieldSet, hartMipBits, hartWakeable, hartDeadline,
  hartRegGet, hartRegSet, hartAdopt, hartUnlinkAll, hartFenceI,
} from './harts';
export { setHartThreads } from './mmu';
import { trigReset, trigHostSet, trigHostHit, trigHitAddr, trigHitSize, trigHitKind, trigGet } from './triggers';
export { trigLegal } from './triggers';
import { execute, EXIT_NONE, EXIT_HOST } from './exec';
export { rvcExpand } from './exec';
import { takePendingException, updateTimerLines, checkInterrupts, trapsFromUser } from './trap';
import { csrRead, csrWrite } from './csr';
import { tlbFlushAll, tlbFlushPage, updateTlbSets, fetchInsn, dirtyLogRestart as mmuDirtyLogRestart } from './mmu';
import { STATE, STATE_SIZE, PC_OFF, JIT_FLAG_OFF, JIT_DONE_OFF, JIT_BUDGET_OFF, JIT_LAST_EXIT_OFF, HART_ATTN_OFF } from './state';
import { bpHit, bpTake } from './breakpoints';
import { count, CNT_DISPATCH, CNT_HEAD_MISS, CNT_CHAIN_TRAP, CNT_CHAIN_BREAK } from './counters';
import { fetchHostAddr, lookupBlock, noteBlockHead, jitForget, linkLastExit } from './jit';
import { stateAt } from './hart-area';
export {
  jitQueueLength, jitHeadRuns, jitQueueClear, jitInstall, jitFlushAll, jitInvalidateRange, jitLoad, jitStore, jitInterp,
  jitFp, jitAmo, jitCsr, jitSystem, jitMulh, jitMulhsu, jitMulhu, jitDiv, jitDivu, jitRem, jitRemu, jitDivw, jitDivuw, jitRemw, jitRemuw, jitLookup,
  jitPrimeHead, jitSetHotThreshold,
  jitLoadX, jitStoreX,
} from './jit';

export { EXIT_WFI, setOrderingFences } from './exec';
// Every layout constant as an immutable wasm global: test/layout.test.ts checks the host's copy against them.
export * from './layout';
export { setHartArea } from './hart-area';
export { EXIT_BREAKPOINT, bpSet, bpGet, bpStepOver } from './breakpoints';

/** Host debugger triggers (see triggers.ts): set or free trigger i, then flush the TLBs. */
export function trigSet(i: u32, kinds: u32, address: u64, napot: bool): void {
  trigHostSet(i, kinds, address, napot);
  tlbFlushAll();
  breakBatch = true;
}
/** tdata1 (which = 1) or tdata2 (which = 2) of trigger i. */
export function trigRead(i: u32, which: u32): u64 { return trigGet(i, which); }
/** The host trigger that made run() return EXIT_BREAKPOINT, or -1 (a pc breakpoint). */
export function trigLastHit(): i32 { return trigHostHit; }
/** The access of that stop: its first byte (which = 0), size (1) or kind (2, TRIG_* bits). */
export function trigLastAccess(which: u32): u64 {
  return which == 0 ? trigHitAddr : which == 1 ? <u64>trigHitSize : <u64>trigHitKind;
}

export function onAbort(msg: usize, file: usize, line: u32, col: u32): void {
  unreachable();
}

/**
 * False until the first reset. The host gives every instance a memory of its
 * own, new and all zeros, so the first reset need not clear the state block and
 * the translator's tables: on a fresh memory each page it touched would cost a
 * page fault, which was most of what a restore spent in the core.
 */
let memoryUsed = false;

/** Reset the hart: M-mode at `entry`, with the given RAM size in bytes. */
export function reset(ram: u64, hartId: u64, entry: u64): void {
  const clear = memoryUsed;
  memoryUsed = true;
  if (clear) memory.fill(stateAt(), 0, STATE_SIZE);
  hartsReset(clear);
  ramSize = ram;
  mhartid = hartId;
  pc = entry;
  priv = PRV_M;
  instret = 0;
  mtimecmp = 0xffffffffffffffff;
  stimecmp = 0xffffffffffffffff;
  reservation = 0xffffffffffffffff;
  trapped = false;
  exitReason = EXIT_NONE;
  instretDelta = 0;
  cycleDelta = 0;
  pmpReset();
  trigReset();
  tlbFlushAll();
  updateTlbSets();
  jitForget(clear);
}

/** In deterministic mode: the instret at which guest time reaches the next armed timer deadline. */
function nextEventInstret(): u64 {
  const now = currentTime();
  let d: u64 = 0xffffffffffffffff;
  if (mtimecmp > now) d = mtimecmp;
  if ((menvcfg >> 63) != 0 && stimecmp > now && stimecmp < d) d = stimecmp;
  if (d == 0xffffffffffffffff) return d;
  // time = instret / DET_INSNS_PER_TICK + timeSkew reaches d at this instret.
  const ticks = d - timeSkew;
  if (ticks > 0xffffffffffffffff / DET_INSNS_PER_TICK) return 0xffffffffffffffff;
  return ticks * DET_INSNS_PER_TICK;
}

/**
 * Execute up to `budget` instructions. Returns why it stopped: 0 budget used,
 * 1 WFI with nothing pending, 2 the host asked (requestExit), 3 a hot loop
 * waits for translation, 4 a breakpoint (pc on it, not executed).
 *
 * Interrupts are taken at exact instruction counts (a trap, an instruction that
 * changes interrupt state, a deterministic timer deadline), never at batch or
 * block boundaries, so a run with and without translated code is identical.
 */
export function run(budget: u32): u32 {
  exitReason = EXIT_NONE;
  trigHostHit = -1;
  const end = instret + <u64>budget;
  while (true) {
    updateTimerLines();
    checkInterrupts();
    breakBatch = false;
    let limit = end;
    if (deterministic) {
      const ev = nextEventInstret();
      if (ev < limit) limit = ev;
    }
    let atHead = true;
    let backward = false;
    store<u32>(stateAt() + JIT_LAST_EXIT_OFF, 0);
    while (instret < limit) {
      if (atHead && load<u32>(stateAt() + HART_ATTN_OFF) != 0) {
        // Another thread wants this hart at a safe point (an interrupt line, an IPI, a fence, a hold).
        exitReason = EXIT_HOST;
        break;
      }
      if (atHead && jitEnabled) {
        let hpc = fetchHostAddr(pc);
        if (hpc == 0) {
          // Fill the fetch TLB (after a flush) so a translated block can run right away;
          // a fault here is left for the interpreter to raise.
          fetchInsn(pc);
          if (trapped) {
            trapped = false;
            bpHit = false; // a breakpoint here stops execute() below
          }
          else hpc = fetchHostAddr(pc);
        }
        if (hpc != 0) {
          const e = lookupBlock(pc, hpc);
          if (e != 0) {
            if (instret + <u64>load<u32>(e, 20) <= limit) {
              linkLastExit(e, pc);
              store<u32>(stateAt() + JIT_FLAG_OFF, 0);
              store<u32>(stateAt() + JIT_DONE_OFF, 0);
              const room = limit - instret;
              store<u32>(stateAt() + JIT_BUDGET_OFF, room > 0x7fffffff ? 0x7fffffff : <u32>room);
              count(CNT_DISPATCH);
              call_indirect<u32>(load<u32>(e, 16));
              const n = load<u32>(stateAt() + JIT_DONE_OFF);
              instret += <u64>n;
              pc = load<u64>(stateAt() + PC_OFF);
              jitInstructions += <u64>n;
              if (trapped) {
                count(CNT_CHAIN_TRAP);
                if (bpHit) {
                  // A host trigger stopped the access: the block counted that instruction
                  // as it counts one that traps, but a stop retires nothing.
                  instret--;
                  jitInstructions--;
                  bpTake();
                } else {
                  takePendingException();
                }
                break;
              }
              if (breakBatch) {
                count(CNT_CHAIN_BREAK);
                break;
              }
              continue;
            }
          } else {
            count(CNT_HEAD_MISS);
            noteBlockHead(pc, hpc, backward);
          }
        }
      }
      const before = pc;
      store<u32>(stateAt() + JIT_LAST_EXIT_OFF, 0);
      execute();
      if (trapped) {
        if (bpHit) {
          bpTake(); // stopped before the instruction: nothing retired, no trap
          break;
        }
        instret++;
        takePendingException();
        break;
      }
      instret++;
      if (breakBatch) break;
      // A new block can start after a jump, after an instruction translation stops at
      // (SYSTEM), and on a new page: blocks never span pages, so straight-line code
      // after an instruction that straddles a page boundary (never translated) would
      // otherwise be interpreted up to the next jump.
      atHead = pc - before > 4 || (<u32>curInsnBits & 0x7f) == 0x73 || ((pc ^ before) >> 12) != 0;
      backward = pc < before;
    }
    if (exitReason != EXIT_NONE || instret >= end) break;
  }
  return exitReason;
}

/** Instructions retired inside translated blocks (for --stats). */
export let jitInstructions: u64 = 0;
export function getJitInstructions(): u64 { return jitInstructions; }
export function setJitEnabled(on: bool): void { jitEnabled = on; }

/** Called by the host (also from inside an import callback) to end the current run() early. */
export function requestExit(): void {
  exitReason = EXIT_HOST;
  breakBatch = true;
}

/** Drive a device interrupt line into mip (MEIP=11, SEIP=9). */
export function setIrqLine(bit: u32, level: bool): void {
  const m = <u64>1 << bit;
  mipHw = level ? mipHw | m : mipHw & ~m;
  breakBatch = true;
}

export function getPc(): u64 { return pc; }
export function getTrapsFromUser(): u64 { return trapsFromUser; }
export function setPc(v: u64): void { pc = v; }
export function getPriv(): u32 { return priv; }
export function setPriv(p: u32): void {
  priv = p;
  updateTlbSets();
}
export function getInstret(): u64 { return instret; }
export function setTime(t: u64): void { timeNow = t; }
export function getTime(): u64 { return currentTime(); }
export function setDeterministic(on: bool): void { deterministic = on; }
export function addTimeSkew(t: u64): void { timeSkew += t; }
export function setEcallHookMask(m: u32): void { ecallHookMask = m; }

/** Earliest timer deadline (in ticks) that could wake a WFI, or all ones. */
export function nextTimerDeadline(): u64 {
  let d = mtimecmp;
  if ((menvcfg >> 63) != 0 && stimecmp < d) d = stimecmp;
  return d;
}

/** Host access to CSRs, bypassing privilege checks (boot setup, SBI, debugging). */
export function hostReadCsr(csr: u32): u64 {
  const saved = priv;
  priv = PRV_M;
  const v = csrRead(csr, false);
  priv = saved;
  trapped = false;
  return v;
}
export function hostWriteCsr(csr: u32, v: u64): void {
  const saved = priv;
  priv = PRV_M;
  csrWrite(csr, v);
  priv = saved;
  updateTlbSets();
}
export function flushTlb(): void { tlbFlushAll(); }
/** Pages a remote sfence.vma flushes one by one (Linux's own threshold for a full flush is 64). */
const FENCE_RANGE_PAGES: u64 = 64;
/**
 * A remote sfence.vma of [start, start + size) (SBI RFENCE, any ASID): as an
 * sfence.vma of each page (tlbFlushPage: that page in every context, links into
 * it only); an empty or larger range flushes everything.
 */
export function flushTlbRange(start: u64, size: u64): void {
  const first = start >> 12;
  const end = (start + size + 0xfff) >> 12;
  if (size == 0 || end <= first || end - first > FENCE_RANGE_PAGES) {
    tlbFlushAll();
    return;
  }
  for (let p = first; p < end; p++) tlbFlushPage(p << 12);
}
/** Live migration: clear the dirty page map and the store TLB (see DIRTY_PAGE). */
export function dirtyLogRestart(): void { mmuDirtyLogRestart(); }

// Snapshot access to the hart's module globals (see persist.ts).
export { cpuStateFieldCount, cpuStateGet, cpuStateSet, cpuStateRestored } from './persist';
