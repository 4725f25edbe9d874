// Entry point of the CPU core (compiled to wasm). The host calls run() in
// slices; each slice returns to JS so devices, time and input are serviced and
// so V8 can tier the hot wasm code up between calls.

import {
  pc, priv, instret, mipHw, breakBatch, exitReason, trapped, timeNow, deterministic, timeSkew, ecallHookMask,
  ramSize, mhartid, mtimecmp, stimecmp, menvcfg, reservation, PRV_M, currentTime,
} from './hart';
import { execute, initRvcTable, EXIT_NONE, EXIT_HOST } from './exec';
import { takePendingException, updateTimerLines, checkInterrupts } from './trap';
import { csrRead, csrWrite } from './csr';
import { tlbFlushAll, updateTlbSets } from './mmu';
import { STATE } from './state';

export { EXIT_WFI } from './exec';

const BATCH: u32 = 4096;

export function onAbort(msg: usize, file: usize, line: u32, col: u32): void {
  unreachable();
}

/** Reset the hart: M-mode at `entry`, with the given RAM size in bytes. */
export function reset(ram: u64, hartId: u64, entry: u64): void {
  memory.fill(STATE, 0, 0x10000);
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
  tlbFlushAll();
  updateTlbSets();
  initRvcTable();
}

/**
 * Execute up to `budget` instructions. Returns why it stopped: 0 budget used,
 * 1 WFI with nothing pending, 2 the host asked (requestExit).
 */
export function run(budget: u32): u32 {
  exitReason = EXIT_NONE;
  updateTimerLines();
  checkInterrupts();
  let done: u32 = 0;
  while (done < budget) {
    breakBatch = false;
    let n = budget - done;
    if (n > BATCH) n = BATCH;
    let i: u32 = 0;
    while (i < n) {
      execute();
      instret++;
      i++;
      if (trapped) takePendingException();
      if (breakBatch) break;
    }
    done += i;
    updateTimerLines();
    checkInterrupts();
    if (exitReason != EXIT_NONE) break;
  }
  return exitReason;
}

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
