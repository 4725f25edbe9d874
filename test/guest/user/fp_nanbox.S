/* NaN-boxing: single-precision operations on improperly boxed registers
   treat the input as the canonical NaN; transfers/stores do not check. */
#include "fp.h"

.macro UNBOXED fr, bits
  li t0, \bits
  fmv.d.x \fr, t0
.endm

TEST_BEGIN fp_nanbox
  csrwi fcsr, 0
  li t0, 0x3f800000
  fmv.w.x fa1, t0            /* 1.0f properly boxed */
  li t0, 0xbf800000
  fmv.w.x fa2, t0            /* -1.0f */
  UNBOXED fa0, 0x000000003f800000   /* 1.0f but upper bits zero */
  fadd.s ft2, fa0, fa1
  PFREG "fadd.s unboxed+1", ft2
  PFLAGS " "
  fadd.s ft2, fa1, fa0
  PFREG "fadd.s 1+unboxed", ft2
  PFLAGS " "
  fmul.s ft2, fa0, fa1
  PFREG "fmul.s unboxed", ft2
  PFLAGS " "
  fsgnj.s ft2, fa0, fa2
  PFREG "fsgnj.s unboxed,-1", ft2
  PFLAGS " "
  fsgnj.s ft2, fa1, fa0
  PFREG "fsgnj.s 1,unboxed", ft2
  PFLAGS " "
  fsgnjn.s ft2, fa1, fa0
  PFREG "fsgnjn.s 1,unboxed", ft2
  PFLAGS " "
  fsgnjx.s ft2, fa0, fa2
  PFREG "fsgnjx.s unboxed,-1", ft2
  PFLAGS " "
  fmin.s ft2, fa0, fa1
  PFREG "fmin.s unboxed,1", ft2
  PFLAGS " "
  fmax.s ft2, fa0, fa0
  PFREG "fmax.s unboxed,unboxed", ft2
  PFLAGS " "
  feq.s t2, fa0, fa0
  PHEX "feq.s unboxed", t2
  PFLAGS " "
  flt.s t2, fa0, fa1
  PHEX "flt.s unboxed", t2
  PFLAGS " "
  fclass.s t2, fa0
  PHEX "fclass.s unboxed", t2
  PFLAGS " "
  fcvt.d.s ft2, fa0
  PFREG "fcvt.d.s unboxed", ft2
  PFLAGS " "
  fcvt.w.s t2, fa0, rtz
  PHEX "fcvt.w.s unboxed", t2
  PFLAGS " "
  fmadd.s ft2, fa1, fa1, fa0
  PFREG "fmadd.s c=unboxed", ft2
  PFLAGS " "
  fsqrt.s ft2, fa0
  PFREG "fsqrt.s unboxed", ft2
  PFLAGS " "
  /* partially boxed (upper not all ones) */
  UNBOXED fa3, 0xfffffffe3f800000
  fadd.s ft2, fa3, fa1
  PFREG "fadd.s partial-box", ft2
  PFLAGS " "
  UNBOXED fa3, 0xffffffff3f800000
  fadd.s ft2, fa3, fa1
  PFREG "fadd.s full-box", ft2
  PFLAGS " "
  /* transfers are not checked */
  fmv.x.w t2, fa0
  PHEX "fmv.x.w unboxed", t2
  la s0, nbuf
  fsw fa0, 0(s0)
  lwu t2, 0(s0)
  PHEX "fsw unboxed", t2
  /* a single result written into an FP register is boxed */
  fadd.s ft2, fa1, fa1
  fmv.x.d t2, ft2
  PHEX "boxed result", t2
  flw ft3, 0(s0)
  fmv.x.d t2, ft3
  PHEX "flw boxed", t2
  /* double ops on a boxed single see a NaN double */
  fadd.d ft2, fa1, fa1
  PFREG "fadd.d on boxed single", ft2
  PFLAGS " "
  /* fmv.s (fsgnj.s) on an sNaN payload, boxed */
  li t0, 0x7f800001
  fmv.w.x fa4, t0
  fmv.s ft2, fa4
  PFREG "fmv.s sNaN", ft2
  fneg.s ft2, fa4
  PFREG "fneg.s sNaN", ft2
  fabs.s ft2, fa2
  PFREG "fabs.s -1", ft2
  PFLAGS "end"
TEST_END
  .data
  .balign 16
nbuf: .space 16
