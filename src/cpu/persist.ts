// Host access to the hart state that lives in module globals, for snapshots
// and migration. Fields are numbered (the order of the table in
// src/machine/cpu-persist.ts, which names them); the x/f registers, pc's
// mirror and fflags/frm live in linear memory and are read there directly.
// Only architectural state: TLBs, translations and statistics are caches and
// are rebuilt after a restore.

import {
  pc, priv, instret, mstatus, medeleg, mideleg, mie, mipSw, mipHw, mtvec, mscratch, mepc, mcause, mtval, mcounteren,
  menvcfg, stvec, sscratch, sepc, scause, stval, scounteren, senvcfg, satp, stimecmp, mhartid, mtimecmp, msip, timeNow,
  deterministic, timeSkew, reservation, reservedValueKnown, ecallHookMask, jitEnabled, ramSize, MS_FS, breakBatch, instretDelta, cycleDelta,
} from './hart';
import { pmpCfgRead, pmpAddrRead, pmpCfgPut, pmpAddrPut, PMP_COUNT } from './pmp';
import { tselect, setTselect, trigGet, trigPut, TRIG_COUNT } from './triggers';
import { STATE, FS_DIRTY_OFF } from './state';
import { updateTlbSets, tlbFlushAll } from './mmu';
import { jitFlushAll } from './jit';
import { stateAt } from './hart-area';

// Fields 35.. (counter deltas, PMP, triggers) came with the PMP/Sdtrig work:
// 35 instretDelta, 36 cycleDelta, 37..52 pmpaddr0..15, 53 pmpcfg0, 54 pmpcfg2,
// 55 tselect, then tdata1, tdata2 of each trigger.
const F_PMPADDR: u32 = 37;
const F_PMPCFG: u32 = F_PMPADDR + PMP_COUNT;
const F_TSELECT: u32 = F_PMPCFG + 2;
const F_TDATA: u32 = F_TSELECT + 1;

/** Number of fields reachable through cpuStateGet/cpuStateSet. */
export const CPU_STATE_FIELDS: u32 = F_TDATA + 2 * TRIG_COUNT;

export function cpuStateFieldCount(): u32 {
  return CPU_STATE_FIELDS;
}

export function cpuStateGet(i: u32): u64 {
  switch (i) {
    case 0: return pc;
    case 1: return <u64>priv;
    case 2: return instret;
    case 3: return mstatus;
    case 4: return medeleg;
    case 5: return mideleg;
    case 6: return mie;
    case 7: return mipSw;
    case 8: return mipHw;
    case 9: return mtvec;
    case 10: return mscratch;
    case 11: return mepc;
    case 12: return mcause;
    case 13: return mtval;
    case 14: return <u64>mcounteren;
    case 15: return menvcfg;
    case 16: return stvec;
    case 17: return sscratch;
    case 18: return sepc;
    case 19: return scause;
    case 20: return stval;
    case 21: return <u64>scounteren;
    case 22: return senvcfg;
    case 23: return satp;
    case 24: return stimecmp;
    case 25: return mhartid;
    case 26: return mtimecmp;
    case 27: return <u64>msip;
    case 28: return timeNow;
    case 29: return deterministic ? 1 : 0;
    case 30: return timeSkew;
    case 31: return reservation;
    case 32: return <u64>ecallHookMask;
    case 33: return jitEnabled ? 1 : 0;
    case 34: return ramSize;
    case 35: return instretDelta;
    case 36: return cycleDelta;
  }
  if (i >= F_PMPADDR && i < F_PMPCFG) return pmpAddrRead(i - F_PMPADDR);
  if (i >= F_PMPCFG && i < F_TSELECT) return pmpCfgRead((i - F_PMPCFG) * 2);
  if (i == F_TSELECT) return <u64>tselect;
  if (i >= F_TDATA && i < CPU_STATE_FIELDS) return trigGet((i - F_TDATA) >> 1, ((i - F_TDATA) & 1) + 1);
  return 0;
}

/** Set one field; the host validates values before (see cpu-persist.ts). ramSize is fixed by reset(). */
export function cpuStateSet(i: u32, v: u64): void {
  switch (i) {
    case 0: pc = v; break;
    case 1: priv = <u32>v; break;
    case 2: instret = v; break;
    case 3: mstatus = v; break;
    case 4: medeleg = v; break;
    case 5: mideleg = v; break;
    case 6: mie = v; break;
    case 7: mipSw = v; break;
    case 8: mipHw = v; break;
    case 9: mtvec = v; break;
    case 10: mscratch = v; break;
    case 11: mepc = v; break;
    case 12: mcause = v; break;
    case 13: mtval = v; break;
    case 14: mcounteren = <u32>v; break;
    case 15: menvcfg = v; break;
    case 16: stvec = v; break;
    case 17: sscratch = v; break;
    case 18: sepc = v; break;
    case 19: scause = v; break;
    case 20: stval = v; break;
    case 21: scounteren = <u32>v; break;
    case 22: senvcfg = v; break;
    case 23: satp = v; break;
    case 24: stimecmp = v; break;
    case 25: mhartid = v; break;
    case 26: mtimecmp = v; break;
    case 27: msip = <u32>v & 1; break;
    case 28: timeNow = v; break;
    case 29: deterministic = v != 0; break;
    case 30: timeSkew = v; break;
    case 31: reservation = v; reservedValueKnown = false; break;
    case 32: ecallHookMask = <u32>v; break;
    case 33: jitEnabled = v != 0; break;
    case 35: instretDelta = v; break;
    case 36: cycleDelta = v; break;
  }
  if (i >= F_PMPADDR && i < F_PMPCFG) pmpAddrPut(i - F_PMPADDR, v);
  else if (i >= F_PMPCFG && i < F_TSELECT) pmpCfgPut((i - F_PMPCFG) * 2, v);
  else if (i == F_TSELECT) setTselect(<u32>v);
  else if (i >= F_TDATA && i < CPU_STATE_FIELDS) {
    const t = (i - F_TDATA) >> 1;
    if (((i - F_TDATA) & 1) == 0) trigPut(t, v, trigGet(t, 2));
    else trigPut(t, trigGet(t, 1), v);
  }
}

/** After a restore: recompute what is derived from the fields and drop every cache. */
export function cpuStateRestored(): void {
  store<u32>(stateAt() + FS_DIRTY_OFF, (mstatus & MS_FS) == MS_FS ? 1 : 0);
  tlbFlushAll();
  updateTlbSets();
  jitFlushAll();
  breakBatch = true;
}
