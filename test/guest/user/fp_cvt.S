/* FP conversions: float<->int (saturation, NaN, rounding modes, sign
   extension of 32-bit results), float<->double, fmv. */
#include "fp.h"

/* float -> int */
.macro F2I op, w, a, rm
  LDF ft0, \a, \w
  \op t2, ft0, \rm
  PHEX "\op \a \rm", t2
  PFLAGS " "
.endm
/* int -> float */
.macro I2F op, a, rm
  li t0, \a
  \op ft2, t0, \rm
  PFREG "\op \a \rm", ft2
  PFLAGS " "
.endm
/* int -> double, exact (no rounding mode operand) */
.macro I2FX op, a
  li t0, \a
  \op ft2, t0
  PFREG "\op \a", ft2
  PFLAGS " "
.endm
.macro F2IALL w, a
  .irp op, fcvt.w.\w, fcvt.wu.\w, fcvt.l.\w, fcvt.lu.\w
  F2I \op, \w, \a, rtz
  .endr
.endm
.macro F2IRM op, w, a
  .irp rm, rne, rtz, rdn, rup, rmm
  F2I \op, \w, \a, \rm
  .endr
  csrwi frm, 4
  F2I \op, \w, \a, dyn
  csrwi frm, 0
.endm

TEST_BEGIN fp_cvt
  csrwi fcsr, 0
  /* single -> int */
  F2IALL s, 0x3f800000      /* 1.0 */
  F2IALL s, 0xbf800000      /* -1.0 */
  F2IALL s, 0xbf000000      /* -0.5 */
  F2IALL s, 0x80000000      /* -0 */
  F2IALL s, 0x4f000000      /* 2^31 */
  F2IALL s, 0xcf000000      /* -2^31 */
  F2IALL s, 0x4f800000      /* 2^32 */
  F2IALL s, 0x5f000000      /* 2^63 */
  F2IALL s, 0xdf000000      /* -2^63 */
  F2IALL s, 0x5f800000      /* 2^64 */
  F2IALL s, 0x4f7fffff      /* 2^32 - 256 */
  F2IALL s, 0x7f800000      /* +inf */
  F2IALL s, 0xff800000      /* -inf */
  F2IALL s, 0x7fc00000      /* qNaN */
  F2IALL s, 0xffc00000      /* -qNaN */
  F2IALL s, 0x7f800001      /* sNaN */
  /* double -> int */
  F2IALL d, 0x3ff0000000000000
  F2IALL d, 0xbff0000000000000
  F2IALL d, 0x41dfffffffc00000   /* 2^31 - 1 */
  F2IALL d, 0x41e0000000000000   /* 2^31 */
  F2IALL d, 0xc1e0000000000000   /* -2^31 */
  F2IALL d, 0xc1e0000000200000   /* -2^31 - 1 */
  F2IALL d, 0x41efffffffe00000   /* 2^32 - 1 */
  F2IALL d, 0x41f0000000000000   /* 2^32 */
  F2IALL d, 0x43e0000000000000   /* 2^63 */
  F2IALL d, 0xc3e0000000000000   /* -2^63 */
  F2IALL d, 0x43f0000000000000   /* 2^64 */
  F2IALL d, 0x43efffffffffffff
  F2IALL d, 0x7ff0000000000000
  F2IALL d, 0xfff0000000000000
  F2IALL d, 0x7ff8000000000000
  F2IALL d, 0xfff8000000000000
  F2IALL d, 0x7ff0000000000001
  F2IALL d, 0xbfefffffffffffff   /* -0.999.. */
  /* rounding modes on conversion */
  F2IRM fcvt.w.s, s, 0x40200000   /* 2.5 */
  F2IRM fcvt.w.s, s, 0xc0200000   /* -2.5 */
  F2IRM fcvt.w.s, s, 0x3fc00000   /* 1.5 */
  F2IRM fcvt.l.d, d, 0x4004000000000000  /* 2.5 */
  F2IRM fcvt.l.d, d, 0xc004000000000000  /* -2.5 */
  F2IRM fcvt.lu.d, d, 0xbfe0000000000000 /* -0.5 */
  F2IRM fcvt.wu.d, d, 0xbfe8000000000000 /* -0.75 */
  F2IRM fcvt.wu.s, s, 0x4f7fffff
  /* int -> float */
  .irp rm, rne, rtz, rdn, rup, rmm
  I2F fcvt.s.w, 0x7fffffff, \rm
  I2F fcvt.s.wu, 0xffffffff, \rm
  I2F fcvt.s.l, 0x7fffffffffffffff, \rm
  I2F fcvt.s.lu, 0xffffffffffffffff, \rm
  I2F fcvt.d.l, 0x7fffffffffffffff, \rm
  I2F fcvt.d.lu, 0xffffffffffffffff, \rm
  I2F fcvt.s.w, 16777217, \rm
  I2F fcvt.s.w, -16777219, \rm
  I2F fcvt.d.l, 0x20000000000001, \rm
  .endr
  I2F fcvt.s.w, 0x1234567800000001, rne   /* upper bits ignored */
  I2F fcvt.s.wu, 0xffffffff00000003, rne
  I2FX fcvt.d.w, 0xffffffff80000000
  I2FX fcvt.d.w, 0x0000000080000000
  I2FX fcvt.d.wu, 0xffffffff80000000
  I2F fcvt.d.l, -1, rne
  I2F fcvt.d.l, 0, rne
  I2F fcvt.s.l, 0, rne
  /* single <-> double */
  .irp v, 0x3f800000, 0x7f800001, 0xffc00001, 0x00000001, 0xff800000, 0x80000000
  LDF ft0, \v, s
  fcvt.d.s ft2, ft0
  PFREG "fcvt.d.s \v", ft2
  PFLAGS " "
  .endr
  .irp v, 0x3ff0000000000000, 0x3ff0000010000000, 0x3ff0000030000000, 0x47efffffffffffff, 0x36a0000000000000, 0x7ff0000000000001, 0xfff8000000000001, 0x8000000000000001
  .irp rm, rne, rtz, rdn, rup, rmm
  LDF ft0, \v, d
  fcvt.s.d ft2, ft0, \rm
  PFREG "fcvt.s.d \v \rm", ft2
  PFLAGS " "
  .endr
  .endr
  /* fmv.w.x / fmv.x.w / fmv.d.x / fmv.x.d bit transfers (no flags) */
  li t0, 0x123456787f800001
  fmv.w.x ft0, t0
  PFREG "fmv.w.x boxes", ft0
  fmv.x.w t1, ft0
  PHEX "fmv.x.w", t1
  fmv.d.x ft1, t0
  fmv.x.d t1, ft1
  PHEX "fmv.d.x/fmv.x.d", t1
  PFLAGS "fmv"
TEST_END
