// The interpreter: fetch, decode and execute one instruction (RV64IMAFDC,
// Zicsr, Zifencei, privileged instructions). This is the reference
// implementation; a translator must agree with it.

import { getX, setX, getF, setF, STATE, X_OFF, RVC_TABLE } from './state';
import { FENCE_WORD_OFF } from './layout';
import {
  pc, priv, mstatus, mepc, sepc, trapped, breakBatch, exitReason, reservation, reservedValue, reservedValueKnown, ecallHookMask, curInsnBits, mie,
  instret, PRV_U, PRV_S, PRV_M, MS_SIE, MS_MIE, MS_SPIE, MS_MPIE, MS_SPP, MS_MPP, MS_MPP_SHIFT, MS_FS, MS_MPRV,
  MS_TSR, MS_TW, MS_TVM, EXC_ILLEGAL, EXC_BREAKPOINT, EXC_LOAD_MISALIGNED, EXC_STORE_MISALIGNED,
} from './hart';
import { raiseException, effectiveMip } from './trap';
import {
  load8, load16, load32, load64, store8, store16, store32, store64, fetchInsn, translate, translateAmo, hostOf,
  amoHostFast, loadHostFast, physOfHost,
  tlbFlushAll, tlbFlushPage, tlbFlushAsid, updateTlbSets, ACC_LOAD, fenceICode, hartThreads,
} from './mmu';
import { csrRead, csrWrite, markFsDirty } from './csr';
import { expandCompressed } from './rvc';
import { hartCount } from './hart-slots';
import { count, CNT_FENCE_PAGE, CNT_FENCE_ASID, CNT_FENCE_ALL, CNT_XRET } from './counters';

/** RVC_TABLE entry of an encoding that is not a valid compressed instruction (no 32-bit expansion ends in binary 01). */
const RVC_ILLEGAL: u32 = 1;

/**
 * The 32-bit expansion of the compressed instruction `half`, or 0 if it is
 * illegal. RVC_TABLE caches it per encoding, filled on first use: an entry of 0
 * is "not expanded yet" (fresh memory is zero, so a new core pays nothing for
 * the table), RVC_ILLEGAL "illegal".
 */
export function rvcExpand(half: u32): u32 {
  const at = RVC_TABLE + ((half & 0xffff) << 2);
  let insn = load<u32>(at);
  if (insn == 0) {
    insn = (half & 3) == 3 ? 0 : expandCompressed(half & 0xffff);
    if (insn == 0) insn = RVC_ILLEGAL;
    store<u32>(at, insn);
  }
  return insn == RVC_ILLEGAL ? 0 : insn;
}
import { execFp } from './fpu';
import { stateAt } from './hart-area';

@external('env', 'ecall') declare function hostEcall(): void;

export const EXIT_NONE: u32 = 0;
export const EXIT_WFI: u32 = 1;
export const EXIT_HOST: u32 = 2;
/** PAUSE with several harts: this hart spins, let the next one have the core (harts.ts). */
export const EXIT_YIELD: u32 = 5;
const PAUSE: u32 = 0x0100000f;

@inline function sext32(v: u64): u64 {
  return <u64><i64><i32>v;
}

@inline function immI(insn: u32): u64 {
  return <u64>(<i64>(<i32>insn >> 20));
}
@inline function immS(insn: u32): u64 {
  return <u64>(<i64>(((<i32>insn >> 20) & ~31) | ((insn >> 7) & 31)));
}
@inline function immB(insn: u32): u64 {
  const v = ((<i32>insn >> 19) & ~0xfff) | ((insn << 4) & 0x800) | ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e);
  return <u64><i64>v;
}
@inline function immJ(insn: u32): u64 {
  const v = ((<i32>insn >> 11) & ~0xfffff) | (insn & 0xff000) | ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe);
  return <u64><i64>v;
}

export function mulhu(a: u64, b: u64): u64 {
  const al = a & 0xffffffff, ah = a >> 32, bl = b & 0xffffffff, bh = b >> 32;
  const p0 = al * bl, p1 = al * bh, p2 = ah * bl, p3 = ah * bh;
  const mid = (p0 >> 32) + (p1 & 0xffffffff) + (p2 & 0xffffffff);
  return p3 + (p1 >> 32) + (p2 >> 32) + (mid >> 32);
}
export function mulh(a: u64, b: u64): u64 {
  let h = mulhu(a, b);
  if (<i64>a < 0) h -= b;
  if (<i64>b < 0) h -= a;
  return h;
}
export function mulhsu(a: u64, b: u64): u64 {
  let h = mulhu(a, b);
  if (<i64>a < 0) h -= b;
  return h;
}
@inline export function div64(a: u64, b: u64): u64 {
  if (b == 0) return 0xffffffffffffffff;
  if (a == 0x8000000000000000 && b == 0xffffffffffffffff) return a;
  return <u64>(<i64>a / <i64>b);
}
@inline export function divu64(a: u64, b: u64): u64 {
  return b == 0 ? 0xffffffffffffffff : a / b;
}
@inline export function rem64(a: u64, b: u64): u64 {
  if (b == 0) return a;
  if (a == 0x8000000000000000 && b == 0xffffffffffffffff) return 0;
  return <u64>(<i64>a % <i64>b);
}
@inline export function remu64(a: u64, b: u64): u64 {
  return b == 0 ? a : a % b;
}
@inline export function div32(a: u64, b: u64): u64 {
  const x = <i32>a, y = <i32>b;
  if (y == 0) return 0xffffffffffffffff;
  if (x == i32.MIN_VALUE && y == -1) return sext32(<u64><u32>x);
  return <u64><i64>(x / y);
}
@inline export function divu32(a: u64, b: u64): u64 {
  const x = <u32>a, y = <u32>b;
  if (y == 0) return 0xffffffffffffffff;
  return sext32(<u64>(x / y));
}
@inline export function rem32(a: u64, b: u64): u64 {
  const x = <i32>a, y = <i32>b;
  if (y == 0) return sext32(<u64><u32>x);
  if (x == i32.MIN_VALUE && y == -1) return 0;
  return <u64><i64>(x % y);
}
@inline export function remu32(a: u64, b: u64): u64 {
  const x = <u32>a, y = <u32>b;
  if (y == 0) return sext32(<u64>x);
  return sext32(<u64>(x % y));
}

function illegalInsn(): void {
  raiseException(EXC_ILLEGAL, curInsnBits);
}

/** Execute the instruction at pc. On a fault, pc is left at the instruction and `trapped` is set. */
export function execute(): void {
  const raw = fetchInsn(pc);
  if (trapped) return;
  let insn: u32;
  let next: u64;
  if ((raw & 3) != 3) {
    const half = raw & 0xffff;
    curInsnBits = <u64>half;
    insn = load<u32>(RVC_TABLE + (half << 2));
    if (insn == 0) insn = rvcExpand(half);
    else if (insn == RVC_ILLEGAL) insn = 0;
    if (insn == 0) {
      illegalInsn();
      return;
    }
    next = pc + 2;
  } else {
    insn = raw;
    curInsnBits = <u64>raw;
    next = pc + 4;
  }
  const rd = (insn >> 7) & 31;
  const f3 = (insn >> 12) & 7;
  const rs1 = (insn >> 15) & 31;
  const rs2 = (insn >> 20) & 31;
  const f7 = insn >> 25;

  // Dense switch on opcode[6:2] (bits 1:0 are 11 for every 32-bit encoding) so it compiles to a jump table.
  switch ((insn >> 2) & 31) {
    case 13: // LUI (0x37)
      setX(rd, <u64><i64><i32>(insn & 0xfffff000));
      break;
    case 5: // AUIPC (0x17)
      setX(rd, pc + <u64><i64><i32>(insn & 0xfffff000));
      break;
    case 27: { // JAL (0x6f)
      const t = pc + immJ(insn);
      setX(rd, next);
      next = t;
      break;
    }
    case 25: { // JALR (0x67)
      if (f3 != 0) { illegalInsn(); return; }
      const t = (getX(rs1) + immI(insn)) & ~(<u64>1);
      setX(rd, next);
      next = t;
      break;
    }
    case 24: { // BRANCH (0x63)
      const a = getX(rs1), b = getX(rs2);
      let take = false;
      switch (f3) {
        case 0: take = a == b; break;
        case 1: take = a != b; break;
        case 4: take = <i64>a < <i64>b; break;
        case 5: take = <i64>a >= <i64>b; break;
        case 6: take = a < b; break;
        case 7: take = a >= b; break;
        default: illegalInsn(); return;
      }
      if (take) next = pc + immB(insn);
      break;
    }
    case 0: { // LOAD (0x03)
      const va = getX(rs1) + immI(insn);
      let v: u64;
      switch (f3) {
        case 0: v = <u64><i64><i8>load8(va); break;
        case 1: v = <u64><i64><i16>load16(va); break;
        case 2: v = sext32(load32(va)); break;
        case 3: v = load64(va); break;
        case 4: v = load8(va); break;
        case 5: v = load16(va); break;
        case 6: v = load32(va); break;
        default: illegalInsn(); return;
      }
      if (trapped) return;
      setX(rd, v);
      break;
    }
    case 8: { // STORE (0x23)
      const va = getX(rs1) + immS(insn);
      const v = getX(rs2);
      switch (f3) {
        case 0: store8(va, v); break;
        case 1: store16(va, v); break;
        case 2: store32(va, v); break;
        case 3: store64(va, v); break;
        default: illegalInsn(); return;
      }
      if (trapped) return;
      break;
    }
    case 4: { // OP-IMM (0x13)
      const a = getX(rs1);
      const imm = immI(insn);
      let v: u64;
      switch (f3) {
        case 0: v = a + imm; break;
        case 1:
          if ((insn >> 26) != 0) { illegalInsn(); return; }
          v = a << (imm & 63);
          break;
        case 2: v = <i64>a < <i64>imm ? 1 : 0; break;
        case 3: v = a < imm ? 1 : 0; break;
        case 4: v = a ^ imm; break;
        case 5: {
          const f6 = insn >> 26;
          if (f6 == 0) v = a >> (imm & 63);
          else if (f6 == 0x10) v = <u64>(<i64>a >> <i64>(imm & 63));
          else { illegalInsn(); return; }
          break;
        }
        case 6: v = a | imm; break;
        default: v = a & imm; break;
      }
      setX(rd, v);
      break;
    }
    case 6: { // OP-IMM-32 (0x1b)
      const a = getX(rs1);
      let v: u64;
      switch (f3) {
        case 0: v = sext32(a + immI(insn)); break;
        case 1:
          if (f7 != 0) { illegalInsn(); return; }
          v = sext32(<u64>(<u32>a << rs2));
          break;
        case 5:
          if (f7 == 0) v = sext32(<u64>(<u32>a >> rs2));
          else if (f7 == 0x20) v = <u64><i64>(<i32>a >> rs2);
          else { illegalInsn(); return; }
          break;
        default: illegalInsn(); return;
      }
      setX(rd, v);
      break;
    }
    case 12: { // OP (0x33)
      const a = getX(rs1), b = getX(rs2);
      let v: u64;
      if (f7 == 0) {
        switch (f3) {
          case 0: v = a + b; break;
          case 1: v = a << (b & 63); break;
          case 2: v = <i64>a < <i64>b ? 1 : 0; break;
          case 3: v = a < b ? 1 : 0; break;
          case 4: v = a ^ b; break;
          case 5: v = a >> (b & 63); break;
          case 6: v = a | b; break;
          default: v = a & b; break;
        }
      } else if (f7 == 0x20) {
        if (f3 == 0) v = a - b;
        else if (f3 == 5) v = <u64>(<i64>a >> <i64>(b & 63));
        else { illegalInsn(); return; }
      } else if (f7 == 1) {
        switch (f3) {
          case 0: v = a * b; break;
          case 1: v = mulh(a, b); break;
          case 2: v = mulhsu(a, b); break;
          case 3: v = mulhu(a, b); break;
          case 4: v = div64(a, b); break;
          case 5: v = divu64(a, b); break;
          case 6: v = rem64(a, b); break;
          default: v = remu64(a, b); break;
        }
      } else { illegalInsn(); return; }
      setX(rd, v);
      break;
    }
    case 14: { // OP-32 (0x3b)
      const a = getX(rs1), b = getX(rs2);
      let v: u64;
      if (f7 == 0) {
        if (f3 == 0) v = sext32(a + b);
        else if (f3 == 1) v = sext32(<u64>(<u32>a << (<u32>b & 31)));
        else if (f3 == 5) v = sext32(<u64>(<u32>a >> (<u32>b & 31)));
        else { illegalInsn(); return; }
      } else if (f7 == 0x20) {
        if (f3 == 0) v = sext32(a - b);
        else if (f3 == 5) v = <u64><i64>(<i32>a >> (<i32>b & 31));
        else { illegalInsn(); return; }
      } else if (f7 == 1) {
        switch (f3) {
          case 0: v = sext32(a * b); break;
          case 4: v = div32(a, b); break;
          case 5: v = divu32(a, b); break;
          case 6: v = rem32(a, b); break;
          case 7: v = remu32(a, b); break;
          default: illegalInsn(); return;
        }
      } else { illegalInsn(); return; }
      setX(rd, v);
      break;
    }
    case 3: // MISC-MEM (0x0f): FENCE, FENCE.I (translations follow stores; memory is coherent)
      if (f3 > 1) { illegalInsn(); return; }
      // The host (x86-TSO) reorders only a later load before an earlier store:
      // only a fence ordering stores before loads needs a real barrier.
      if (f3 == 0 && orderingFences && fenceOrdersStoreLoad(insn)) atomic.add<u32>(stateAt() + FENCE_WORD_OFF, 0);
      // FENCE.I with harts on threads of their own: another hart's store retired its
      // translation of the page through the shared page generation, but this hart's
      // links between blocks follow its own epoch.
      if (f3 == 1 && hartThreads) {
        fenceICode();
        breakBatch = true;
      }
      if (insn == PAUSE && hartCount > 1 && exitReason == EXIT_NONE) {
        exitReason = EXIT_YIELD;
        breakBatch = true;
      }
      break;
    case 28: // SYSTEM (0x73)
      if (!execSystem(insn, rd, f3, rs1)) return;
      if (f3 == 0 && (insn == 0x30200073 || insn == 0x10200073)) return; // mret/sret set pc
      break;
    case 11: { // AMO (0x2f)
      const v = amo(insn, getX(rs1), getX(rs2));
      if (trapped) return;
      setX(rd, v);
      break;
    }
    case 1: { // LOAD-FP (0x07)
      if ((mstatus & MS_FS) == 0 || (f3 != 2 && f3 != 3)) { illegalInsn(); return; }
      const va = getX(rs1) + immI(insn);
      if (f3 == 2) {
        const v = load32(va);
        if (trapped) return;
        setF(rd, v | 0xffffffff00000000);
      } else {
        const v = load64(va);
        if (trapped) return;
        setF(rd, v);
      }
      markFsDirty();
      break;
    }
    case 9: { // STORE-FP (0x27)
      if ((mstatus & MS_FS) == 0 || (f3 != 2 && f3 != 3)) { illegalInsn(); return; }
      const va = getX(rs1) + immS(insn);
      if (f3 == 2) store32(va, getF(rs2));
      else store64(va, getF(rs2));
      if (trapped) return;
      break;
    }
    case 20: // OP-FP (0x53)
    case 16: // FMADD (0x43)
    case 17: // FMSUB (0x47)
    case 18: // FNMSUB (0x4b)
    case 19: // FNMADD (0x4f)
      if ((mstatus & MS_FS) == 0 || !execFp(insn)) { illegalInsn(); return; }
      markFsDirty();
      break;
    default:
      illegalInsn();
      return;
  }
  if (trapped) return;
  pc = next;
}

/** SYSTEM opcode. Returns false if the instruction trapped. */
function execSystem(insn: u32, rd: u32, f3: u32, rs1: u32): bool {
  if (f3 == 0) {
    if (rd != 0) { illegalInsn(); return false; }
    switch (insn) {
      case 0x00000073: { // ECALL
        if (((ecallHookMask >> priv) & 1) != 0) {
          hostEcall();
          return true;
        }
        raiseException(8 + (priv == PRV_M ? 3 : priv), 0);
        return false;
      }
      case 0x00100073: // EBREAK
        raiseException(EXC_BREAKPOINT, 0); // tval 0, as QEMU reports it
        return false;
      case 0x30200073: { // MRET
        if (priv != PRV_M) { illegalInsn(); return false; }
        const s = mstatus;
        const mpp = <u32>((s & MS_MPP) >> MS_MPP_SHIFT);
        let ns = (s & ~MS_MIE) | ((s & MS_MPIE) >> 4);
        ns |= MS_MPIE;
        ns &= ~MS_MPP;
        if (mpp != PRV_M) ns &= ~MS_MPRV;
        mstatus = ns;
        priv = mpp;
        pc = mepc;
        updateTlbSets();
        count(CNT_XRET);
        breakBatch = true;
        return true;
      }
      case 0x10200073: { // SRET
        if (priv < PRV_S || (priv == PRV_S && (mstatus & MS_TSR) != 0)) { illegalInsn(); return false; }
        const s = mstatus;
        const spp = <u32>((s & MS_SPP) >> 8);
        let ns = (s & ~MS_SIE) | ((s & MS_SPIE) >> 4);
        ns |= MS_SPIE;
        ns &= ~MS_SPP;
        ns &= ~MS_MPRV;
        mstatus = ns;
        priv = spp;
        pc = sepc;
        updateTlbSets();
        count(CNT_XRET);
        breakBatch = true;
        return true;
      }
      case 0x10500073: // WFI
        if (priv == PRV_U || (priv == PRV_S && (mstatus & MS_TW) != 0)) { illegalInsn(); return false; }
        if ((effectiveMip() & mie) == 0) {
          exitReason = EXIT_WFI;
          breakBatch = true;
        }
        return true;
    }
    if ((insn >> 25) == 0x09) { // SFENCE.VMA
      if (priv == PRV_U || (priv == PRV_S && (mstatus & MS_TVM) != 0)) { illegalInsn(); return false; }
      const rs2 = (insn >> 20) & 31;
      if (rs1 != 0) {
        count(CNT_FENCE_PAGE);
        tlbFlushPage(getX(rs1));
      } else if (rs2 != 0) {
        count(CNT_FENCE_ASID);
        tlbFlushAsid(<u32>getX(rs2));
      } else {
        count(CNT_FENCE_ALL);
        tlbFlushAll();
      }
      return true;
    }
    illegalInsn();
    return false;
  }
  if (f3 == 4) { illegalInsn(); return false; }
  const old = csrInsn(insn, f3 >= 5 ? <u64>rs1 : getX(rs1));
  if (trapped) return false;
  setX(rd, old);
  return true;
}

/**
 * A Zicsr instruction with `src` the value of rs1 (or the immediate of the I
 * forms): reads, writes as the op says, and returns what goes to rd (check
 * `trapped`). The interpreter and translated code (jitCsr) share it.
 */
export function csrInsn(insn: u32, src: u64): u64 {
  const csr = insn >> 20;
  const op = (insn >> 12) & 3;
  const writes = op == 1 || ((insn >> 15) & 31) != 0;
  const old = csrRead(csr, writes);
  if (trapped) return 0;
  if (writes) {
    let nv: u64;
    if (op == 1) nv = src;
    else if (op == 2) nv = old | src;
    else nv = old & ~src;
    csrWrite(csr, nv);
  }
  return old;
}

/**
 * An A-extension instruction (LR, SC, AMO*) on address `va` with `b` the value
 * of rs2: performs it and returns what goes to rd, or raises (check `trapped`)
 * with memory untouched. The interpreter and translated code (jitAmo) share it.
 */
export function amo(insn: u32, va: u64, b: u64): u64 {
  const f3 = (insn >> 12) & 7;
  const isW = f3 == 2;
  if (!isW && f3 != 3) { illegalInsn(); return 0; }
  const f5 = insn >> 27;
  const size: u64 = isW ? 4 : 8;
  if (f5 == 0x02) { // LR
    if (((insn >> 20) & 31) != 0) { illegalInsn(); return 0; }
    if ((va & (size - 1)) != 0) { raiseException(EXC_LOAD_MISALIGNED, va); return 0; }
    const hl = loadHostFast(va);
    let pa: u64;
    let v: u64;
    if (hl != 0) {
      pa = physOfHost(hl);
      v = isW ? sext32(<u64>load<u32>(hl)) : load<u64>(hl);
    } else {
      pa = translate(va, ACC_LOAD);
      if (trapped) return 0;
      if (isW) v = sext32(load32(va)); else v = load64(va);
      if (trapped) return 0;
    }
    reservation = pa;
    reservedValue = v;
    reservedValueKnown = true;
    return v;
  }
  // Validate the encoding before any side effect.
  if (f5 != 0x03 && f5 != 0x01 && f5 != 0x00 && f5 != 0x04 && f5 != 0x0c && f5 != 0x08 &&
      f5 != 0x10 && f5 != 0x14 && f5 != 0x18 && f5 != 0x1c) { illegalInsn(); return 0; }
  if ((va & (size - 1)) != 0) { raiseException(EXC_STORE_MISALIGNED, va); return 0; }
  let h = amoHostFast(va);
  let pa: u64;
  if (h != 0) {
    pa = physOfHost(h);
  } else {
    pa = translateAmo(va, <u32>size, f5 != 0x03);
    if (trapped) return 0;
    h = hostOf(pa);
  }
  if (f5 == 0x03) { // SC: stores only if the location still holds what LR read
    const ok = reservation == pa;
    reservation = 0xffffffffffffffff;
    if (!ok) return 1;
    if (isW) {
      const expect: u32 = reservedValueKnown ? <u32>reservedValue : atomic.load<u32>(h);
      return atomic.cmpxchg<u32>(h, expect, <u32>b) == expect ? 0 : 1;
    }
    const expect: u64 = reservedValueKnown ? reservedValue : atomic.load<u64>(h);
    return atomic.cmpxchg<u64>(h, expect, b) == expect ? 0 : 1;
  }
  // Atomic read-modify-writes on the shared memory: atomic whatever thread
  // another hart runs on. A locked x86 instruction is a full barrier, so .aq
  // and .rl need nothing more.
  if (isW) {
    const bw = <u32>b;
    let o: u32;
    switch (f5) {
      case 0x01: o = atomic.xchg<u32>(h, bw); break;
      case 0x00: o = atomic.add<u32>(h, bw); break;
      case 0x04: o = atomic.xor<u32>(h, bw); break;
      case 0x0c: o = atomic.and<u32>(h, bw); break;
      case 0x08: o = atomic.or<u32>(h, bw); break;
      default: o = amoMinMax32(h, f5, bw); break;
    }
    return sext32(<u64>o);
  }
  switch (f5) {
    case 0x01: return atomic.xchg<u64>(h, b);
    case 0x00: return atomic.add<u64>(h, b);
    case 0x04: return atomic.xor<u64>(h, b);
    case 0x0c: return atomic.and<u64>(h, b);
    case 0x08: return atomic.or<u64>(h, b);
  }
  return amoMinMax64(h, f5, b);
}

/** AMOMIN/MAX[U].W as a compare-and-swap loop (wasm has no atomic min/max); returns the old word. */
function amoMinMax32(h: usize, f5: u32, b: u32): u32 {
  let o = atomic.load<u32>(h);
  while (true) {
    let r: u32;
    switch (f5) {
      case 0x10: r = <i32>o < <i32>b ? o : b; break;
      case 0x14: r = <i32>o > <i32>b ? o : b; break;
      case 0x18: r = o < b ? o : b; break;
      default: r = o > b ? o : b; break;
    }
    const seen = atomic.cmpxchg<u32>(h, o, r);
    if (seen == o) break;
    o = seen;
  }
  return o;
}

/** AMOMIN/MAX[U].D as a compare-and-swap loop; returns the old doubleword. */
function amoMinMax64(h: usize, f5: u32, b: u64): u64 {
  let o = atomic.load<u64>(h);
  while (true) {
    let r: u64;
    switch (f5) {
      case 0x10: r = <i64>o < <i64>b ? o : b; break;
      case 0x14: r = <i64>o > <i64>b ? o : b; break;
      case 0x18: r = o < b ? o : b; break;
      default: r = o > b ? o : b; break;
    }
    const seen = atomic.cmpxchg<u64>(h, o, r);
    if (seen == o) break;
    o = seen;
  }
  return o;
}

/**
 * Set by the host when harts may run on other threads (a VM with several
 * harts): FENCEs that order stores before loads become real barriers.
 */
export let orderingFences: bool = false;
export function setOrderingFences(on: bool): void { orderingFences = on; }

/**
 * True for a FENCE whose predecessor set has W and successor set has R (fence
 * rw,rw, w,r, ...): the one ordering x86-TSO does not give by itself. FENCE.TSO
 * (fm = 1000) orders everything but that.
 */
export function fenceOrdersStoreLoad(insn: u32): bool {
  return (insn >> 28) != 8 && ((insn >> 24) & 1) != 0 && ((insn >> 21) & 1) != 0;
}

export { X_OFF, STATE, instret, PRV_U, MS_SIE, MS_SPIE, MS_MPIE, MS_SPP, MS_MPRV, EXIT_NONE as _EXIT_NONE };
