// Execution of the RISC-V F and D computational instructions (OP-FP and the
// four fused multiply-add major opcodes). Loads/stores, the mstatus.FS check
// and marking FS dirty are the caller's job.
//
// Every encoding is fully validated before any state is touched, so that an
// illegal one (return false) leaves registers and fflags unchanged and the
// caller can raise an illegal-instruction trap.

import { STATE, FFLAGS_OFF, FRM_OFF, getX, setX, getF, setF } from "./state";
import {
  sfFlags, CNAN_S,
  fAdd, fMul, fDiv, fSqrt, fMulAdd, fCvtFF, fFromInt, fToInt,
  fEq, fLt, fLe, fMinMax, fClass,
} from "./softfloat";
import { stateAt } from './hart-area';

const OP_FP: u32 = 0x53;
const OP_FMADD: u32 = 0x43;
const OP_FMSUB: u32 = 0x47;
const OP_FNMSUB: u32 = 0x4b;
const OP_FNMADD: u32 = 0x4f;

const BOX: u64 = 0xffffffff00000000;

/**
 * Read a single-precision operand: an F register whose upper 32 bits are not
 * all ones is not a valid NaN-boxed binary32 and reads as the canonical NaN.
 */
@inline function getS(r: u32): u64 {
  let v = getF(r);
  return (v & BOX) == BOX ? v & 0xffffffff : CNAN_S;
}
/** Write a single-precision result NaN-boxed. */
@inline function setS(r: u32, v: u64): void {
  setF(r, v | BOX);
}
/** Read an operand in the given format (fmt 0 = S, 1 = D). */
@inline function getFmt(r: u32, dbl: bool): u64 {
  return dbl ? getF(r) : getS(r);
}
@inline function setFmt(r: u32, v: u64, dbl: bool): void {
  if (dbl) setF(r, v); else setS(r, v);
}

/** Sign-extend the low 32 bits. */
@inline function sext32(v: u64): u64 {
  return <u64><i64><i32><u32>v;
}

/**
 * Resolve the instruction's rm field to a concrete rounding mode 0..4, or
 * return 8 if it is illegal (5, 6, or dynamic with frm >= 5).
 */
@inline function resolveRm(rm: u32): u32 {
  if (rm == 7) rm = load<u32>(stateAt() + FRM_OFF);
  return rm <= 4 ? rm : 8;
}

/** Fold the softfloat flags of the instruction just executed into fflags. */
@inline function commitFlags(): void {
  if (sfFlags != 0) {
    let p = stateAt() + FFLAGS_OFF;
    store<u32>(p, load<u32>(p) | sfFlags);
  }
}

export function execFp(insn: u32): bool {
  let op = insn & 0x7f;
  let rd = (insn >> 7) & 31;
  let rm = (insn >> 12) & 7;
  let rs1 = (insn >> 15) & 31;
  let rs2 = (insn >> 20) & 31;
  let fmt = (insn >> 25) & 3;
  if (fmt > 1) return false; // H and Q formats are not part of RV64GC: illegal instruction
  let dbl = fmt == 1;

  if (op != OP_FP) {
    if (op != OP_FMADD && op != OP_FMSUB && op != OP_FNMSUB && op != OP_FNMADD) return false;
    let mode = resolveRm(rm);
    if (mode > 4) return false;
    let rs3 = insn >> 27;
    let a = getFmt(rs1, dbl), b = getFmt(rs2, dbl), c = getFmt(rs3, dbl);
    let sb: u64 = dbl ? <u64>1 << 63 : <u64>1 << 31;
    // FMSUB: a*b - c; FNMSUB: -(a*b) + c; FNMADD: -(a*b) - c.
    if (op == OP_FNMSUB || op == OP_FNMADD) a ^= sb;
    if (op == OP_FMSUB || op == OP_FNMADD) c ^= sb;
    sfFlags = 0;
    setFmt(rd, fMulAdd(a, b, c, dbl, mode), dbl);
    commitFlags();
    return true;
  }

  let f5 = insn >> 27;
  switch (f5) {
    case 0x00: // FADD
    case 0x01: // FSUB
    case 0x02: // FMUL
    case 0x03: { // FDIV
      let mode = resolveRm(rm);
      if (mode > 4) return false;
      let a = getFmt(rs1, dbl), b = getFmt(rs2, dbl);
      sfFlags = 0;
      let r: u64;
      if (f5 == 0x00) r = fAdd(a, b, dbl, mode);
      else if (f5 == 0x01) r = fAdd(a, b ^ (dbl ? <u64>1 << 63 : <u64>1 << 31), dbl, mode);
      else if (f5 == 0x02) r = fMul(a, b, dbl, mode);
      else r = fDiv(a, b, dbl, mode);
      setFmt(rd, r, dbl);
      commitFlags();
      return true;
    }
    case 0x0b: { // FSQRT
      if (rs2 != 0) return false;
      let mode = resolveRm(rm);
      if (mode > 4) return false;
      let a = getFmt(rs1, dbl);
      sfFlags = 0;
      setFmt(rd, fSqrt(a, dbl, mode), dbl);
      commitFlags();
      return true;
    }
    case 0x04: { // FSGNJ / FSGNJN / FSGNJX: no flags, no NaN canonicalisation
      if (rm > 2) return false;
      let a = getFmt(rs1, dbl), b = getFmt(rs2, dbl);
      let sb: u64 = dbl ? <u64>1 << 63 : <u64>1 << 31;
      let s: u64;
      if (rm == 0) s = b & sb;
      else if (rm == 1) s = ~b & sb;
      else s = (a ^ b) & sb;
      setFmt(rd, (a & ~sb) | s, dbl);
      return true;
    }
    case 0x05: { // FMIN / FMAX
      if (rm > 1) return false;
      let a = getFmt(rs1, dbl), b = getFmt(rs2, dbl);
      sfFlags = 0;
      setFmt(rd, fMinMax(a, b, dbl, rm == 1), dbl);
      commitFlags();
      return true;
    }
    case 0x08: { // FCVT.S.D (fmt=S, rs2=1) / FCVT.D.S (fmt=D, rs2=0)
      if (rs2 != (dbl ? <u32>0 : <u32>1)) return false;
      let mode = resolveRm(rm);
      if (mode > 4) return false;
      let a = getFmt(rs1, !dbl);
      sfFlags = 0;
      setFmt(rd, fCvtFF(a, dbl, mode), dbl);
      commitFlags();
      return true;
    }
    case 0x14: { // FLE (rm 0) / FLT (1) / FEQ (2)
      if (rm > 2) return false;
      let a = getFmt(rs1, dbl), b = getFmt(rs2, dbl);
      sfFlags = 0;
      let r = rm == 2 ? fEq(a, b, dbl) : rm == 1 ? fLt(a, b, dbl) : fLe(a, b, dbl);
      setX(rd, <u64>r);
      commitFlags();
      return true;
    }
    case 0x18: { // FCVT.{W,WU,L,LU}.{S,D}
      if (rs2 > 3) return false;
      let mode = resolveRm(rm);
      if (mode > 4) return false;
      let a = getFmt(rs1, dbl);
      let bits: i32 = rs2 >= 2 ? 64 : 32;
      sfFlags = 0;
      let r = fToInt(a, dbl, bits, (rs2 & 1) == 0, mode);
      setX(rd, bits == 32 ? sext32(r) : r);
      commitFlags();
      return true;
    }
    case 0x1a: { // FCVT.{S,D}.{W,WU,L,LU}
      if (rs2 > 3) return false;
      let mode = resolveRm(rm);
      if (mode > 4) return false;
      let v = getX(rs1);
      // 32-bit sources use the low 32 bits, sign- or zero-extended.
      if (rs2 == 0) v = sext32(v);
      else if (rs2 == 1) v &= 0xffffffff;
      sfFlags = 0;
      setFmt(rd, fFromInt(v, (rs2 & 1) == 0, dbl, mode), dbl);
      commitFlags();
      return true;
    }
    case 0x1c: { // FMV.X.{W,D} (rm 0) / FCLASS (rm 1)
      if (rs2 != 0 || rm > 1) return false;
      if (rm == 0) {
        let v = getF(rs1); // raw bits, no NaN-box check
        setX(rd, dbl ? v : sext32(v));
      } else {
        setX(rd, fClass(getFmt(rs1, dbl), dbl));
      }
      return true;
    }
    case 0x1e: { // FMV.{W,D}.X
      if (rs2 != 0 || rm != 0) return false;
      let v = getX(rs1);
      if (dbl) setF(rd, v); else setS(rd, v & 0xffffffff);
      return true;
    }
    default:
      return false;
  }
}
