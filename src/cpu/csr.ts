// Control and status registers: access checks (privilege, read-only,
// counter enables, TVM, FS) and the WARL rules of each register.

import {
  priv, mstatus, medeleg, mideleg, mie, mipSw, mtvec, mscratch, mepc, mcause, mtval, mcounteren, menvcfg,
  stvec, sscratch, sepc, scause, stval, scounteren, senvcfg, satp, stimecmp, mhartid, instret, misaValue,
  breakBatch, curInsnBits, instretDelta, cycleDelta, PRV_U, PRV_S, PRV_M, MS_SIE, MS_MIE, MS_SPIE, MS_UBE, MS_MPIE, MS_SPP, MS_MPP, MS_FS, MS_MPRV,
  MS_SUM, MS_MXR, MS_TVM, MS_TW, MS_TSR, MS_UXL, MS_SXL, MS_SD, S_INTERRUPTS, readTime, EXC_ILLEGAL,
} from './hart';
import { STATE, FFLAGS_OFF, FRM_OFF, FS_DIRTY_OFF } from './state';
import { raiseException, effectiveMip, updateTimerLines } from './trap';
import { count, CNT_SATP } from './counters';
import { updateTlbSets, tlbFlushAll, tlbSatpWritten, ASID_BITS } from './mmu';
import { pmpCfgRead, pmpCfgWrite, pmpAddrRead, pmpAddrWrite, PMP_COUNT } from './pmp';
import { trigCsrRead, trigCsrWrite } from './triggers';
import { stateAt } from './hart-area';

const SSTATUS_MASK: u64 = MS_SIE | MS_SPIE | MS_UBE | MS_SPP | MS_FS | MS_SUM | MS_MXR | MS_UXL | MS_SD;
const MSTATUS_WRITABLE: u64 =
  MS_SIE | MS_MIE | MS_SPIE | MS_MPIE | MS_SPP | MS_MPP | MS_FS | MS_MPRV | MS_SUM | MS_MXR | MS_TVM | MS_TW | MS_TSR;
const SSTATUS_WRITABLE: u64 = MS_SIE | MS_SPIE | MS_SPP | MS_FS | MS_SUM | MS_MXR;
const MIE_WRITABLE: u64 = 0xaaa;
const MIP_WRITABLE: u64 = 0x222; // SSIP, STIP, SEIP
const MEDELEG_WRITABLE: u64 = 0xbbff; // bit 11 holds its value but never applies (M traps stay in M), as on QEMU
const MIDELEG_WRITABLE: u64 = S_INTERRUPTS;
const STATUS_XL: u64 = (<u64>2 << 32) | (<u64>2 << 34); // UXL = SXL = 64-bit

@inline function withSd(s: u64): u64 {
  return (s & MS_FS) == MS_FS ? s | MS_SD : s & ~MS_SD;
}

export function readMstatus(): u64 {
  return withSd(mstatus) | STATUS_XL;
}

export function writeMstatus(v: u64): void {
  let nv = (mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
  if ((nv & MS_MPP) == (<u64>2 << 11)) nv = (nv & ~MS_MPP) | (mstatus & MS_MPP); // MPP=2 is reserved
  const old = mstatus;
  mstatus = nv;
  store<u32>(stateAt() + FS_DIRTY_OFF, (nv & MS_FS) == MS_FS ? 1 : 0);
  // Leave the batch (and the translated block) only for what the run loop or
  // translated code holds on to: the data TLB set (MPRV, MPP), and an interrupt
  // enable that lets an already pending interrupt in. The kernel saves and
  // restores SIE around every spinlock; those writes need no break. (SUM and
  // MXR accesses are never cached in the TLB; FS is checked where it is used.)
  if (((old ^ nv) & (MS_MPRV | MS_MPP)) != 0) {
    updateTlbSets();
    breakBatch = true;
  }
  if ((nv & ~old & (MS_SIE | MS_MIE)) != 0 && (effectiveMip() & mie) != 0) breakBatch = true;
}

function illegal(): u64 {
  raiseException(EXC_ILLEGAL, curInsnBits);
  return 0;
}

/** Counter CSRs from S/U are gated by mcounteren (and scounteren for U). */
function counterAllowed(bit: u32): bool {
  if (priv == PRV_M) return true;
  if (((mcounteren >> bit) & 1) == 0) return false;
  if (priv == PRV_U && ((scounteren >> bit) & 1) == 0) return false;
  return true;
}

@inline function fsOff(): bool {
  return (mstatus & MS_FS) == 0;
}

export function markFsDirty(): void {
  mstatus |= MS_FS;
  store<u32>(stateAt() + FS_DIRTY_OFF, 1);
}

/** Read a CSR for a csrr* instruction; raises illegal instruction when not allowed. */
export function csrRead(csr: u32, willWrite: bool): u64 {
  if (priv < ((csr >> 8) & 3)) return illegal();
  if (willWrite && (csr >> 10) == 3) return illegal();
  switch (csr) {
    case 0x001: if (fsOff()) return illegal(); return <u64>load<u32>(stateAt() + FFLAGS_OFF);
    case 0x002: if (fsOff()) return illegal(); return <u64>load<u32>(stateAt() + FRM_OFF);
    case 0x003: if (fsOff()) return illegal();
      return <u64>(load<u32>(stateAt() + FFLAGS_OFF) | (load<u32>(stateAt() + FRM_OFF) << 5));
    case 0xc00: if (!counterAllowed(0)) return illegal(); return instret + cycleDelta;
    case 0xc01: if (!counterAllowed(1)) return illegal(); return readTime();
    case 0xc02: if (!counterAllowed(2)) return illegal(); return instret + instretDelta;
    case 0x100: return readMstatus() & SSTATUS_MASK;
    case 0x104: return mie & mideleg;
    case 0x105: return stvec;
    case 0x106: return <u64>scounteren;
    case 0x10a: return senvcfg;
    case 0x140: return sscratch;
    case 0x141: return sepc;
    case 0x142: return scause;
    case 0x143: return stval;
    case 0x144: return effectiveMip() & mideleg;
    case 0x14d:
      // Sstc: S-mode needs both menvcfg.STCE and mcounteren.TM.
      if (priv == PRV_S && ((menvcfg >> 63) == 0 || (mcounteren & 2) == 0)) return illegal();
      return stimecmp;
    case 0x180:
      if (priv == PRV_S && (mstatus & MS_TVM) != 0) return illegal();
      return satp;
    case 0x300: return readMstatus();
    case 0x301: return misaValue;
    case 0x302: return medeleg;
    case 0x303: return mideleg;
    case 0x304: return mie;
    case 0x305: return mtvec;
    case 0x306: return <u64>mcounteren;
    case 0x30a: return menvcfg;
    case 0x320: return 0; // mcountinhibit
    case 0x340: return mscratch;
    case 0x341: return mepc;
    case 0x342: return mcause;
    case 0x343: return mtval;
    case 0x344: return effectiveMip();
    case 0xb00: return instret + cycleDelta;
    case 0xb02: return instret + instretDelta;
    case 0x7a0: case 0x7a1: case 0x7a2: case 0x7a3: case 0x7a4: return trigCsrRead(csr);
    case 0xf11: return 0; // mvendorid
    case 0xf12: return 0; // marchid
    case 0xf13: return 0; // mimpid
    case 0xf14: return mhartid;
    case 0xf15: return 0; // mconfigptr
  }
  // pmpcfg0/2 (odd numbers do not exist on RV64), pmpaddr0..15; entries 16..63 are not implemented: zero.
  if (csr >= 0x3a0 && csr <= 0x3af) {
    if ((csr & 1) != 0) return illegal();
    const n = csr - 0x3a0;
    return n * 4 < PMP_COUNT ? pmpCfgRead(n) : 0;
  }
  if (csr >= 0x3b0 && csr <= 0x3ef) {
    const i = csr - 0x3b0;
    return i < PMP_COUNT ? pmpAddrRead(i) : 0;
  }
  // hpmcounter3..31 (read zero, gated like the others), mhpmcounter/mhpmevent: present, read zero.
  if (csr >= 0xc03 && csr <= 0xc1f) {
    if (!counterAllowed(csr - 0xc00)) return illegal();
    return 0;
  }
  if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) return 0;
  return illegal();
}

/** Write a CSR after a successful csrRead of the same CSR. */
export function csrWrite(csr: u32, v: u64): void {
  switch (csr) {
    case 0x001:
      store<u32>(stateAt() + FFLAGS_OFF, <u32>v & 0x1f);
      markFsDirty();
      return;
    case 0x002:
      store<u32>(stateAt() + FRM_OFF, <u32>v & 7);
      markFsDirty();
      return;
    case 0x003:
      store<u32>(stateAt() + FFLAGS_OFF, <u32>v & 0x1f);
      store<u32>(stateAt() + FRM_OFF, (<u32>v >> 5) & 7);
      markFsDirty();
      return;
    case 0x100:
      writeMstatus((mstatus & ~SSTATUS_WRITABLE) | (v & SSTATUS_WRITABLE));
      return;
    case 0x104:
      mie = (mie & ~mideleg) | (v & mideleg & MIE_WRITABLE);
      breakBatch = true;
      return;
    case 0x105: stvec = (v & 3) >= 2 ? (v & ~3) : v; return;
    case 0x106: scounteren = <u32>v; return;
    case 0x10a: senvcfg = v & 1; return;
    case 0x140: sscratch = v; return;
    case 0x141: sepc = v & ~1; return;
    case 0x142: scause = v & 0x800000000000003f; return;
    case 0x143: stval = v; return;
    case 0x144: {
      // Only SSIP is writable from S-mode.
      const m = mideleg & 0x2;
      mipSw = (mipSw & ~m) | (v & m);
      breakBatch = true;
      return;
    }
    case 0x14d:
      stimecmp = v;
      updateTimerLines();
      breakBatch = true;
      return;
    case 0x180: {
      const mode = v >> 60;
      if (mode != 0 && mode != 8 && mode != 9) return; // unsupported modes leave satp unchanged
      count(CNT_SATP);
      const old = satp;
      satp = v & ((<u64>0xf << 60) | (((<u64>1 << ASID_BITS) - 1) << 44) | ((<u64>1 << 44) - 1));
      tlbSatpWritten(old);
      breakBatch = true;
      return;
    }
    case 0x300: writeMstatus(v); return;
    case 0x301: return;
    case 0x302: medeleg = v & MEDELEG_WRITABLE; return;
    case 0x303: mideleg = v & MIDELEG_WRITABLE; breakBatch = true; return;
    case 0x304: mie = v & MIE_WRITABLE; breakBatch = true; return;
    case 0x305: mtvec = (v & 3) >= 2 ? (v & ~3) : v; return;
    case 0x306: mcounteren = <u32>v; return;
    case 0x30a:
      menvcfg = v & ((<u64>1 << 63) | 1);
      updateTimerLines();
      breakBatch = true;
      return;
    case 0x340: mscratch = v; return;
    case 0x341: mepc = v & ~1; return;
    case 0x342: mcause = v & 0x800000000000003f; return;
    case 0x343: mtval = v; return;
    case 0x344:
      mipSw = (mipSw & ~MIP_WRITABLE) | (v & MIP_WRITABLE);
      breakBatch = true;
      return;
    // The counters read instret plus a delta: the writing instruction itself
    // still counts on top of the value written (as QEMU counts it), and
    // deterministic time, which follows instret, is unaffected.
    case 0xb00: cycleDelta = v - instret; return;
    case 0xb02: instretDelta = v - instret; return;
  }
  if (csr >= 0x7a0 && csr <= 0x7a4) {
    if (trigCsrWrite(csr, v)) protectionChanged();
    return;
  }
  if (csr >= 0x3a0 && csr <= 0x3af) {
    const n = csr - 0x3a0;
    if (n * 4 < PMP_COUNT && pmpCfgWrite(n, v)) protectionChanged();
    return;
  }
  if (csr >= 0x3b0 && csr <= 0x3bf) {
    if (pmpAddrWrite(csr - 0x3b0, v)) protectionChanged();
    return;
  }
  // The rest are read-only zero or WARL-zero registers: writes are dropped.
}

/** PMP or a trigger changed: cached translations (TLB entries, block links) may now be wrong. */
function protectionChanged(): void {
  tlbFlushAll();
  breakBatch = true;
}

export { PRV_S };
