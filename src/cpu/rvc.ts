// RVC (compressed instruction) expander for RV64GC.
//
// expandCompressed(h) maps a 16-bit compressed instruction (h & 3 != 3) to
// the 32-bit RV64 instruction with identical architectural effect, so the
// decoder/interpreter only ever needs to understand the base encodings.
// Returns 0 for encodings that are illegal or reserved on RV64GC (0 is itself
// an illegal 32-bit instruction, so callers can raise an illegal-instruction
// trap on it directly).
//
// HINT encodings (C.NOP with imm != 0, C.ADDI with imm == 0, C.LI/C.LUI/
// C.MV/C.ADD/C.SLLI with rd == x0, shifts with shamt == 0) are legal and
// expand to their base forms, which are themselves no-ops or write x0.
//
// Encodings deliberately treated as reserved (return 0):
//   0x0000 (defined illegal), C.ADDI4SPN nzuimm == 0, quadrant 0 funct3 100,
//   C.ADDIW rd == 0, C.ADDI16SP imm == 0, C.LUI imm == 0, C.SUBW/C.ADDW
//   neighbours (100 1 11 1x), C.LWSP/C.LDSP rd == 0, C.JR rs1 == 0.
//   (C.FLW/C.FSW/C.FLWSP/C.FSWSP/C.JAL are RV32-only and occupy slots that
//   RV64 reuses for C.LD/C.SD/C.LDSP/C.SDSP/C.ADDIW, so they never appear.)

// Base opcodes.
const OP_LOAD: u32 = 0x03;
const OP_LOAD_FP: u32 = 0x07;
const OP_IMM: u32 = 0x13;
const OP_IMM_32: u32 = 0x1b;
const OP_STORE: u32 = 0x23;
const OP_STORE_FP: u32 = 0x27;
const OP_OP: u32 = 0x33;
const OP_LUI: u32 = 0x37;
const OP_OP_32: u32 = 0x3b;
const OP_BRANCH: u32 = 0x63;
const OP_JALR: u32 = 0x67;
const OP_JAL: u32 = 0x6f;

const EBREAK: u32 = 0x00100073;

// ---- 32-bit format builders (imm arguments are raw bit patterns) ----

// @ts-ignore: decorator
@inline function encI(imm: u32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return (imm << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}

// @ts-ignore: decorator
@inline function encR(f7: u32, rs2: u32, rs1: u32, f3: u32, rd: u32, op: u32): u32 {
  return (f7 << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | (rd << 7) | op;
}

// @ts-ignore: decorator
@inline function encS(imm: u32, rs2: u32, rs1: u32, f3: u32, op: u32): u32 {
  return ((imm >> 5) << 25) | (rs2 << 20) | (rs1 << 15) | (f3 << 12) | ((imm & 0x1f) << 7) | op;
}

/** B-type; `imm` is the sign-extended byte offset (bit 0 ignored). */
// @ts-ignore: decorator
@inline function encB(imm: u32, rs2: u32, rs1: u32, f3: u32): u32 {
  return (((imm >> 12) & 1) << 31) | (((imm >> 5) & 0x3f) << 25) | (rs2 << 20) | (rs1 << 15) |
    (f3 << 12) | (((imm >> 1) & 0xf) << 8) | (((imm >> 11) & 1) << 7) | OP_BRANCH;
}

/** JAL; `imm` is the sign-extended byte offset. */
// @ts-ignore: decorator
@inline function encJ(imm: u32, rd: u32): u32 {
  return (((imm >> 20) & 1) << 31) | (((imm >> 1) & 0x3ff) << 21) | (((imm >> 11) & 1) << 20) |
    (((imm >> 12) & 0xff) << 12) | (rd << 7) | OP_JAL;
}

/** Sign-extend the low `bits` bits of `v`. */
// @ts-ignore: decorator
@inline function sext(v: u32, bits: u32): u32 {
  return <u32>((<i32>(v << (32 - bits))) >> (32 - bits));
}

// ---- compressed field extractors ----

/** CI-format 6-bit immediate: imm[5] = h[12], imm[4:0] = h[6:2], sign-extended, 12 bits. */
// @ts-ignore: decorator
@inline function ciImm12(h: u32): u32 {
  return sext((((h >> 12) & 1) << 5) | ((h >> 2) & 0x1f), 6) & 0xfff;
}

/** CI shift amount: shamt[5] = h[12], shamt[4:0] = h[6:2]. */
// @ts-ignore: decorator
@inline function ciShamt(h: u32): u32 {
  return (((h >> 12) & 1) << 5) | ((h >> 2) & 0x1f);
}

/** CL/CS 8-byte scaled offset: uimm[5:3] = h[12:10], uimm[7:6] = h[6:5]. */
// @ts-ignore: decorator
@inline function clOffD(h: u32): u32 {
  return (((h >> 10) & 7) << 3) | (((h >> 5) & 3) << 6);
}

/** CL/CS 4-byte scaled offset: uimm[5:3] = h[12:10], uimm[2] = h[6], uimm[6] = h[5]. */
// @ts-ignore: decorator
@inline function clOffW(h: u32): u32 {
  return (((h >> 10) & 7) << 3) | (((h >> 6) & 1) << 2) | (((h >> 5) & 1) << 6);
}

export function expandCompressed(h: u32): u32 {
  h &= 0xffff;
  const f3 = h >> 13;
  switch (h & 3) {
    // ------------------------------------------------------------ quadrant 0
    case 0: {
      const rdp = ((h >> 2) & 7) + 8; // rd' / rs2'
      const rs1p = ((h >> 7) & 7) + 8;
      switch (f3) {
        case 0: {
          // C.ADDI4SPN: nzuimm[5:4|9:6|2|3] = h[12:5]
          const imm = (((h >> 11) & 3) << 4) | (((h >> 7) & 0xf) << 6) |
            (((h >> 6) & 1) << 2) | (((h >> 5) & 1) << 3);
          if (imm == 0) return 0; // includes the all-zero halfword
          return encI(imm, 2, 0, rdp, OP_IMM);
        }
        case 1: return encI(clOffD(h), rs1p, 3, rdp, OP_LOAD_FP); // C.FLD
        case 2: return encI(clOffW(h), rs1p, 2, rdp, OP_LOAD);    // C.LW
        case 3: return encI(clOffD(h), rs1p, 3, rdp, OP_LOAD);    // C.LD
        case 5: return encS(clOffD(h), rdp, rs1p, 3, OP_STORE_FP); // C.FSD
        case 6: return encS(clOffW(h), rdp, rs1p, 2, OP_STORE);   // C.SW
        case 7: return encS(clOffD(h), rdp, rs1p, 3, OP_STORE);   // C.SD
        default: return 0; // 100: reserved
      }
    }
    // ------------------------------------------------------------ quadrant 1
    case 1: {
      const rd = (h >> 7) & 0x1f;
      switch (f3) {
        case 0: return encI(ciImm12(h), rd, 0, rd, OP_IMM); // C.ADDI / C.NOP (+hints)
        case 1: // C.ADDIW
          if (rd == 0) return 0;
          return encI(ciImm12(h), rd, 0, rd, OP_IMM_32);
        case 2: return encI(ciImm12(h), 0, 0, rd, OP_IMM); // C.LI
        case 3: {
          if (rd == 2) {
            // C.ADDI16SP: nzimm[9] = h[12], nzimm[4|6|8:7|5] = h[6:2]
            const raw = (((h >> 12) & 1) << 9) | (((h >> 6) & 1) << 4) | (((h >> 5) & 1) << 6) |
              (((h >> 3) & 3) << 7) | (((h >> 2) & 1) << 5);
            if (raw == 0) return 0;
            return encI(sext(raw, 10) & 0xfff, 2, 0, 2, OP_IMM);
          }
          // C.LUI: nzimm[17] = h[12], nzimm[16:12] = h[6:2]
          const raw = (((h >> 12) & 1) << 5) | ((h >> 2) & 0x1f);
          if (raw == 0) return 0;
          return (sext(raw, 6) << 12) | (rd << 7) | OP_LUI;
        }
        case 4: {
          const rdp = ((h >> 7) & 7) + 8;
          switch ((h >> 10) & 3) {
            case 0: return encI(ciShamt(h), rdp, 5, rdp, OP_IMM);             // C.SRLI
            case 1: return encI(ciShamt(h) | 0x400, rdp, 5, rdp, OP_IMM);     // C.SRAI
            case 2: return encI(ciImm12(h), rdp, 7, rdp, OP_IMM);             // C.ANDI
            default: {
              const rs2p = ((h >> 2) & 7) + 8;
              const sel = (h >> 5) & 3;
              if ((h & 0x1000) == 0) {
                switch (sel) {
                  case 0: return encR(0x20, rs2p, rdp, 0, rdp, OP_OP); // C.SUB
                  case 1: return encR(0, rs2p, rdp, 4, rdp, OP_OP);    // C.XOR
                  case 2: return encR(0, rs2p, rdp, 6, rdp, OP_OP);    // C.OR
                  default: return encR(0, rs2p, rdp, 7, rdp, OP_OP);   // C.AND
                }
              }
              if (sel == 0) return encR(0x20, rs2p, rdp, 0, rdp, OP_OP_32); // C.SUBW
              if (sel == 1) return encR(0, rs2p, rdp, 0, rdp, OP_OP_32);    // C.ADDW
              return 0; // reserved
            }
          }
        }
        case 5: {
          // C.J: offset[11|4|9:8|10|6|7|3:1|5] = h[12:2]
          const raw = (((h >> 12) & 1) << 11) | (((h >> 11) & 1) << 4) | (((h >> 9) & 3) << 8) |
            (((h >> 8) & 1) << 10) | (((h >> 7) & 1) << 6) | (((h >> 6) & 1) << 7) |
            (((h >> 3) & 7) << 1) | (((h >> 2) & 1) << 5);
          return encJ(sext(raw, 12), 0);
        }
        default: {
          // C.BEQZ / C.BNEZ: offset[8|4:3] = h[12:10], offset[7:6|2:1|5] = h[6:2]
          const rs1p = ((h >> 7) & 7) + 8;
          const raw = (((h >> 12) & 1) << 8) | (((h >> 10) & 3) << 3) | (((h >> 5) & 3) << 6) |
            (((h >> 3) & 3) << 1) | (((h >> 2) & 1) << 5);
          return encB(sext(raw, 9), 0, rs1p, f3 & 1); // 110 -> beq (0), 111 -> bne (1)
        }
      }
    }
    // ------------------------------------------------------------ quadrant 2
    case 2: {
      const rd = (h >> 7) & 0x1f;
      const rs2 = (h >> 2) & 0x1f;
      switch (f3) {
        case 0: return encI(ciShamt(h), rd, 1, rd, OP_IMM); // C.SLLI (+hints)
        case 1: {
          // C.FLDSP: uimm[5] = h[12], uimm[4:3] = h[6:5], uimm[8:6] = h[4:2]
          const off = (((h >> 12) & 1) << 5) | (((h >> 5) & 3) << 3) | (((h >> 2) & 7) << 6);
          return encI(off, 2, 3, rd, OP_LOAD_FP);
        }
        case 2: {
          // C.LWSP: uimm[5] = h[12], uimm[4:2] = h[6:4], uimm[7:6] = h[3:2]
          if (rd == 0) return 0;
          const off = (((h >> 12) & 1) << 5) | (((h >> 4) & 7) << 2) | (((h >> 2) & 3) << 6);
          return encI(off, 2, 2, rd, OP_LOAD);
        }
        case 3: {
          // C.LDSP
          if (rd == 0) return 0;
          const off = (((h >> 12) & 1) << 5) | (((h >> 5) & 3) << 3) | (((h >> 2) & 7) << 6);
          return encI(off, 2, 3, rd, OP_LOAD);
        }
        case 4: {
          if ((h & 0x1000) == 0) {
            if (rs2 == 0) {
              if (rd == 0) return 0;
              return encI(0, rd, 0, 0, OP_JALR); // C.JR
            }
            return encR(0, rs2, 0, 0, rd, OP_OP); // C.MV
          }
          if (rs2 == 0) {
            if (rd == 0) return EBREAK; // C.EBREAK
            return encI(0, rd, 0, 1, OP_JALR); // C.JALR
          }
          return encR(0, rs2, rd, 0, rd, OP_OP); // C.ADD
        }
        case 5: {
          // C.FSDSP: uimm[5:3] = h[12:10], uimm[8:6] = h[9:7]
          const off = (((h >> 10) & 7) << 3) | (((h >> 7) & 7) << 6);
          return encS(off, rs2, 2, 3, OP_STORE_FP);
        }
        case 6: {
          // C.SWSP: uimm[5:2] = h[12:9], uimm[7:6] = h[8:7]
          const off = (((h >> 9) & 0xf) << 2) | (((h >> 7) & 3) << 6);
          return encS(off, rs2, 2, 2, OP_STORE);
        }
        default: {
          // C.SDSP
          const off = (((h >> 10) & 7) << 3) | (((h >> 7) & 7) << 6);
          return encS(off, rs2, 2, 3, OP_STORE);
        }
      }
    }
    default: return 0; // not a compressed instruction
  }
}
