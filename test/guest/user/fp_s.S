/* F extension (single precision) arithmetic, rounding, FMA, min/max,
   compares, fclass, sign injection. */
#include "fp.h"
#define ONE   0x3f800000
#define MONE  0xbf800000
#define TWO   0x40000000
#define THREE 0x40400000
#define HALFULP 0x33800000   /* 2^-24: exactly half an ulp of 1.0 */
#define ULP15 0x34400000     /* 1.5 ulp of 1.0 */
#define PINF  0x7f800000
#define NINF  0xff800000
#define QNAN  0x7fc00000
#define SNAN  0x7f800001
#define NQNAN 0xffc00123
#define PZERO 0
#define NZERO 0x80000000
#define MAXF  0x7f7fffff
#define MINSUB 0x00000001
#define MINNORM 0x00800000

TEST_BEGIN fp_s
  csrwi fcsr, 0
  ALLRM2 fadd, s, ONE, HALFULP
  ALLRM2 fadd, s, ONE, ULP15
  ALLRM2 fadd, s, MONE, 0xb3800000
  ALLRM2 fsub, s, ONE, ONE
  ALLRM2 fdiv, s, ONE, THREE
  ALLRM2 fdiv, s, MONE, THREE
  ALLRM2 fmul, s, MAXF, TWO
  ALLRM2 fmul, s, 0xff7fffff, TWO
  ALLRM2 fmul, s, MINNORM, 0x3f000001
  ALLRM2 fmul, s, MINSUB, 0x3f000000
  .irp rm, rne, rtz, rdn, rup, rmm
  OP1R fsqrt, s, TWO, \rm
  .endr
  OP1R fsqrt, s, MONE, rne
  OP1R fsqrt, s, NZERO, rne
  OP1R fsqrt, s, PINF, rne
  OP1R fsqrt, s, SNAN, rne
  OP2R fadd, s, PINF, NINF, rne
  OP2R fsub, s, PINF, PINF, rne
  OP2R fmul, s, PZERO, PINF, rne
  OP2R fdiv, s, PZERO, PZERO, rne
  OP2R fdiv, s, ONE, NZERO, rne
  OP2R fdiv, s, PINF, PINF, rne
  OP2R fadd, s, QNAN, ONE, rne
  OP2R fadd, s, NQNAN, ONE, rne
  OP2R fadd, s, SNAN, ONE, rne
  OP2R fmul, s, NQNAN, SNAN, rne
  OP2R fsub, s, PZERO, PZERO, rdn
  OP2R fsub, s, PZERO, PZERO, rne
  OP2R fadd, s, NZERO, NZERO, rne
  OP2R fadd, s, NZERO, PZERO, rdn
  /* min / max */
  OP2 fmin, s, ONE, TWO
  OP2 fmax, s, ONE, TWO
  OP2 fmin, s, PZERO, NZERO
  OP2 fmin, s, NZERO, PZERO
  OP2 fmax, s, PZERO, NZERO
  OP2 fmax, s, NZERO, PZERO
  OP2 fmin, s, QNAN, ONE
  OP2 fmax, s, ONE, QNAN
  OP2 fmin, s, SNAN, ONE
  OP2 fmax, s, SNAN, ONE
  OP2 fmin, s, QNAN, QNAN
  OP2 fmax, s, SNAN, NQNAN
  OP2 fmin, s, NINF, MAXF
  /* sign injection (no canonicalisation of NaNs) */
  OP2 fsgnj, s, ONE, MONE
  OP2 fsgnjn, s, ONE, MONE
  OP2 fsgnjx, s, MONE, MONE
  OP2 fsgnj, s, SNAN, MONE
  OP2 fsgnjn, s, NQNAN, NQNAN
  OP2 fsgnjx, s, QNAN, MONE
  /* comparisons */
  CMP feq, s, ONE, ONE
  CMP feq, s, PZERO, NZERO
  CMP feq, s, QNAN, QNAN
  CMP feq, s, SNAN, ONE
  CMP flt, s, ONE, TWO
  CMP flt, s, TWO, ONE
  CMP flt, s, NZERO, PZERO
  CMP flt, s, QNAN, ONE
  CMP fle, s, ONE, ONE
  CMP fle, s, NZERO, PZERO
  CMP fle, s, ONE, QNAN
  CMP fle, s, SNAN, SNAN
  CMP flt, s, NINF, PINF
  /* fclass */
  CLASS s, NINF
  CLASS s, MONE
  CLASS s, 0x807fffff
  CLASS s, NZERO
  CLASS s, PZERO
  CLASS s, MINSUB
  CLASS s, ONE
  CLASS s, PINF
  CLASS s, SNAN
  CLASS s, QNAN
  CLASS s, NQNAN
  /* fused multiply-add */
  ALLRMFMA fmadd, s, ONE, 0x3f800001, 0xbf800000
  ALLRMFMA fmadd, s, 0x3f800001, 0x3f800001, MONE
  ALLRMFMA fmsub, s, THREE, 0x3eaaaaab, ONE
  ALLRMFMA fnmadd, s, THREE, 0x3eaaaaab, ONE
  ALLRMFMA fnmsub, s, THREE, 0x3eaaaaab, ONE
  FMA fmadd, s, PZERO, PINF, ONE, rne
  FMA fmadd, s, PZERO, PINF, QNAN, rne
  FMA fmadd, s, ONE, ONE, SNAN, rne
  FMA fmadd, s, PINF, ONE, NINF, rne
  FMA fmadd, s, MAXF, TWO, NINF, rne
  FMA fmsub, s, ONE, PZERO, PZERO, rne
  FMA fnmadd, s, ONE, PZERO, PZERO, rne
  FMA fnmsub, s, ONE, PZERO, PZERO, rne
  FMA fmadd, s, ONE, NZERO, PZERO, rdn
  /* loads/stores of singles */
  la s0, fbuf
  li t0, 0x4049fdb0
  sw t0, 0(s0)
  flw fa0, 0(s0)
  PFREG "flw boxes", fa0
  fsw fa0, 4(s0)
  lwu t1, 4(s0)
  PHEX "fsw", t1
  fmv.x.w t1, fa0
  PHEX "fmv.x.w", t1
  li t0, 0xc0490fdb
  fmv.w.x fa1, t0
  fmv.x.w t1, fa1
  PHEX "fmv.x.w neg sign-extends", t1
  PFLAGS "final"
TEST_END
  .data
  .balign 16
fbuf: .space 16
