/* D extension (double precision) arithmetic, rounding, FMA, min/max,
   compares, fclass, sign injection, loads/stores. */
#include "fp.h"
#define ONE   0x3ff0000000000000
#define MONE  0xbff0000000000000
#define TWO   0x4000000000000000
#define THREE 0x4008000000000000
#define HALFULP 0x3ca0000000000000   /* 2^-53 */
#define ULP15 0x3cb8000000000000     /* 1.5 ulp of 1.0 */
#define PINF  0x7ff0000000000000
#define NINF  0xfff0000000000000
#define QNAN  0x7ff8000000000000
#define SNAN  0x7ff0000000000001
#define NQNAN 0xfff8000000000123
#define PZERO 0
#define NZERO 0x8000000000000000
#define MAXD  0x7fefffffffffffff
#define MINSUB 0x0000000000000001
#define MINNORM 0x0010000000000000

TEST_BEGIN fp_d
  csrwi fcsr, 0
  ALLRM2 fadd, d, ONE, HALFULP
  ALLRM2 fadd, d, ONE, ULP15
  ALLRM2 fadd, d, MONE, 0xbca0000000000000
  ALLRM2 fsub, d, ONE, ONE
  ALLRM2 fdiv, d, ONE, THREE
  ALLRM2 fdiv, d, MONE, THREE
  ALLRM2 fmul, d, MAXD, TWO
  ALLRM2 fmul, d, 0xffefffffffffffff, TWO
  ALLRM2 fmul, d, MINNORM, 0x3fe0000000000001
  ALLRM2 fmul, d, MINSUB, 0x3fe0000000000000
  ALLRM2 fmul, d, 0x3ff0000000000001, 0x3ff0000000000001
  .irp rm, rne, rtz, rdn, rup, rmm
  OP1R fsqrt, d, TWO, \rm
  .endr
  OP1R fsqrt, d, MONE, rne
  OP1R fsqrt, d, NZERO, rne
  OP1R fsqrt, d, PINF, rne
  OP1R fsqrt, d, SNAN, rne
  OP1R fsqrt, d, 0x4010000000000000, rne
  OP2R fadd, d, PINF, NINF, rne
  OP2R fsub, d, PINF, PINF, rne
  OP2R fmul, d, PZERO, PINF, rne
  OP2R fdiv, d, PZERO, PZERO, rne
  OP2R fdiv, d, ONE, NZERO, rne
  OP2R fdiv, d, PINF, PINF, rne
  OP2R fadd, d, QNAN, ONE, rne
  OP2R fadd, d, NQNAN, ONE, rne
  OP2R fadd, d, SNAN, ONE, rne
  OP2R fmul, d, NQNAN, SNAN, rne
  OP2R fsub, d, PZERO, PZERO, rdn
  OP2R fsub, d, PZERO, PZERO, rne
  OP2R fadd, d, NZERO, NZERO, rne
  OP2R fadd, d, NZERO, PZERO, rdn
  OP2R fdiv, d, ONE, MAXD, rne
  OP2R fdiv, d, ONE, MAXD, rup
  /* min / max */
  OP2 fmin, d, ONE, TWO
  OP2 fmax, d, ONE, TWO
  OP2 fmin, d, PZERO, NZERO
  OP2 fmin, d, NZERO, PZERO
  OP2 fmax, d, PZERO, NZERO
  OP2 fmax, d, NZERO, PZERO
  OP2 fmin, d, QNAN, ONE
  OP2 fmax, d, ONE, QNAN
  OP2 fmin, d, SNAN, ONE
  OP2 fmax, d, SNAN, ONE
  OP2 fmin, d, QNAN, QNAN
  OP2 fmax, d, SNAN, NQNAN
  OP2 fmin, d, NINF, MAXD
  /* sign injection */
  OP2 fsgnj, d, ONE, MONE
  OP2 fsgnjn, d, ONE, MONE
  OP2 fsgnjx, d, MONE, MONE
  OP2 fsgnj, d, SNAN, MONE
  OP2 fsgnjn, d, NQNAN, NQNAN
  OP2 fsgnjx, d, QNAN, MONE
  /* comparisons */
  CMP feq, d, ONE, ONE
  CMP feq, d, PZERO, NZERO
  CMP feq, d, QNAN, QNAN
  CMP feq, d, SNAN, ONE
  CMP flt, d, ONE, TWO
  CMP flt, d, TWO, ONE
  CMP flt, d, NZERO, PZERO
  CMP flt, d, QNAN, ONE
  CMP fle, d, ONE, ONE
  CMP fle, d, NZERO, PZERO
  CMP fle, d, ONE, QNAN
  CMP fle, d, SNAN, SNAN
  CMP flt, d, NINF, PINF
  /* fclass */
  CLASS d, NINF
  CLASS d, MONE
  CLASS d, 0x800fffffffffffff
  CLASS d, NZERO
  CLASS d, PZERO
  CLASS d, MINSUB
  CLASS d, ONE
  CLASS d, PINF
  CLASS d, SNAN
  CLASS d, QNAN
  CLASS d, NQNAN
  /* fused multiply-add */
  ALLRMFMA fmadd, d, ONE, 0x3ff0000000000001, MONE
  ALLRMFMA fmadd, d, 0x3ff0000000000001, 0x3ff0000000000001, MONE
  ALLRMFMA fmsub, d, THREE, 0x3fd5555555555555, ONE
  ALLRMFMA fnmadd, d, THREE, 0x3fd5555555555555, ONE
  ALLRMFMA fnmsub, d, THREE, 0x3fd5555555555555, ONE
  FMA fmadd, d, PZERO, PINF, ONE, rne
  FMA fmadd, d, PZERO, PINF, QNAN, rne
  FMA fmadd, d, ONE, ONE, SNAN, rne
  FMA fmadd, d, PINF, ONE, NINF, rne
  FMA fmadd, d, MAXD, TWO, NINF, rne
  FMA fmsub, d, ONE, PZERO, PZERO, rne
  FMA fnmadd, d, ONE, PZERO, PZERO, rne
  FMA fnmsub, d, ONE, PZERO, PZERO, rne
  FMA fmadd, d, ONE, NZERO, PZERO, rdn
  /* loads/stores */
  la s0, dbuf
  li t0, 0x400921fb54442d18
  sd t0, 0(s0)
  fld fa0, 0(s0)
  PFREG "fld", fa0
  fsd fa0, 8(s0)
  ld t1, 8(s0)
  PHEX "fsd", t1
  fmv.x.d t1, fa0
  PHEX "fmv.x.d", t1
  PFLAGS "final"
TEST_END
  .data
  .balign 16
dbuf: .space 16
