// Exceptions and interrupts. A faulting operation records the exception here
// and sets `trapped`; the run loop then enters the trap handler once, so guest
// faults never unwind through the interpreter as host exceptions.

import {
  pc, priv, mstatus, medeleg, mideleg, mie, mipSw, mipHw, mtvec, stvec, mepc, sepc, mcause, scause,
  mtval, stval, trapped, breakBatch, reservation, PRV_M, PRV_S, PRV_U, MS_SIE, MS_MIE, MS_SPIE, MS_MPIE,
  MS_SPP, MS_MPP, MS_MPP_SHIFT, mtimecmp, stimecmp, menvcfg, msip, currentTime, MIP_MTIP, MIP_STIP, MIP_MSIP,
} from './hart';
import { updateTlbSets } from './mmu';
import { count, CNT_TRAP_ENTRY } from './counters';
import { pendingCause, pendingTval } from './exception';
import { STATE, TRAP_COUNTS_OFF, TRAP_COUNTS_INT_OFF, LAST_TRAP_OFF } from './state';
import { stateAt } from './hart-area';

export { raiseException } from './exception';


/** Traps taken from U-mode (syscalls, faults, interrupts of a running program): the host's sign that programs run. */
export let trapsFromUser: u64 = 0;

const INTERRUPT_BIT: u64 = <u64>1 << 63;

/** Enter the trap handler for `cause` (bit 63 set for interrupts); epc is the current pc. */
export function enterTrap(cause: u64, tval: u64): void {
  const isInterrupt = (cause & INTERRUPT_BIT) != 0;
  const code = cause & 63;
  // Per-cause counters for --stats: exceptions at TRAP_COUNTS, interrupts 64 slots later.
  const slot = stateAt() + TRAP_COUNTS_OFF + (<u32>code << 3) + (isInterrupt ? TRAP_COUNTS_INT_OFF : 0);
  store<u64>(slot, load<u64>(slot) + 1);
  count(CNT_TRAP_ENTRY);
  if (priv == PRV_U) trapsFromUser++;
  store<u64>(stateAt() + LAST_TRAP_OFF, cause);
  store<u64>(stateAt() + LAST_TRAP_OFF + 8, pc);
  store<u64>(stateAt() + LAST_TRAP_OFF + 16, tval);
  const deleg = isInterrupt ? mideleg : medeleg;
  reservation = 0xffffffffffffffff;
  if (priv <= PRV_S && ((deleg >> code) & 1) != 0) {
    scause = cause;
    sepc = pc;
    stval = tval;
    let s = mstatus;
    s = (s & ~MS_SPIE) | ((s & MS_SIE) << 4); // SPIE <- SIE
    s = (s & ~MS_SPP) | (<u64>priv << 8);
    s &= ~MS_SIE;
    mstatus = s;
    pc = (stvec & 1) != 0 && isInterrupt ? (stvec & ~3) + 4 * code : stvec & ~3;
    priv = PRV_S;
  } else {
    mcause = cause;
    mepc = pc;
    mtval = tval;
    let s = mstatus;
    s = (s & ~MS_MPIE) | ((s & MS_MIE) << 4); // MPIE <- MIE
    s = (s & ~MS_MPP) | (<u64>priv << MS_MPP_SHIFT);
    s &= ~MS_MIE;
    mstatus = s;
    pc = (mtvec & 1) != 0 && isInterrupt ? (mtvec & ~3) + 4 * code : mtvec & ~3;
    priv = PRV_M;
  }
  updateTlbSets();
  breakBatch = true;
}

/** Take the exception recorded by raiseException. */
export function takePendingException(): void {
  trapped = false;
  enterTrap(pendingCause, pendingTval);
}

/** Refresh the timer and software interrupt lines from CLINT and Sstc state. */
export function updateTimerLines(): void {
  const t = currentTime();
  let hw = mipHw & ~(MIP_MTIP | MIP_STIP | MIP_MSIP);
  if (t >= mtimecmp) hw |= MIP_MTIP;
  if ((menvcfg >> 63) != 0 && t >= stimecmp) hw |= MIP_STIP;
  if (msip != 0) hw |= MIP_MSIP;
  mipHw = hw;
}

@inline export function effectiveMip(): u64 {
  // With Sstc enabled STIP follows stimecmp only; otherwise M-mode software drives it.
  const sw = (menvcfg >> 63) != 0 ? mipSw & ~MIP_STIP : mipSw;
  return sw | mipHw;
}

// Priority order of the privileged spec: MEI, MSI, MTI, SEI, SSI, STI.
const ORDER: StaticArray<u32> = [11, 3, 7, 9, 1, 5];

/** The interrupt to take now, or -1. */
export function pendingInterrupt(): i32 {
  const pend = effectiveMip() & mie;
  if (pend == 0) return -1;
  const mEnabled = priv < PRV_M || (mstatus & MS_MIE) != 0;
  const sEnabled = priv < PRV_S || (priv == PRV_S && (mstatus & MS_SIE) != 0);
  const mPend = mEnabled ? pend & ~mideleg : 0;
  const sPend = sEnabled ? pend & mideleg : 0;
  if ((mPend | sPend) == 0) return -1;
  const sel = mPend != 0 ? mPend : sPend;
  for (let i = 0; i < 6; i++) {
    const b = unchecked(ORDER[i]);
    if (((sel >> b) & 1) != 0) return <i32>b;
  }
  return -1;
}

/** Enter the highest-priority enabled pending interrupt, if any. Returns true if taken. */
export function checkInterrupts(): bool {
  const irq = pendingInterrupt();
  if (irq < 0) return false;
  enterTrap(INTERRUPT_BIT | <u64>irq, 0);
  return true;
}

export { PRV_U };
