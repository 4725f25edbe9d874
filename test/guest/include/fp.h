/* FP test helpers for user-mode tests; W is "s" or "d". Values are raw bit
   patterns. Each operation prints its raw result and then fflags (cleared). */
#ifndef TSV_FP_H
#define TSV_FP_H
#include "user.h"

.macro LDF fr, bits, w
  li t0, \bits
  .ifc \w, s
  fmv.w.x \fr, t0
  .else
  fmv.d.x \fr, t0
  .endif
.endm

/* two-source op with rounding mode */
.macro OP2R op, w, a, b, rm
  LDF ft0, \a, \w
  LDF ft1, \b, \w
  \op\().\w ft2, ft0, ft1, \rm
  PFREG "\op\().\w \a \b \rm", ft2
  PFLAGS " "
.endm
/* two-source op without rounding mode (min/max/sgnj) */
.macro OP2 op, w, a, b
  LDF ft0, \a, \w
  LDF ft1, \b, \w
  \op\().\w ft2, ft0, ft1
  PFREG "\op\().\w \a \b", ft2
  PFLAGS " "
.endm
/* comparison producing an integer */
.macro CMP op, w, a, b
  LDF ft0, \a, \w
  LDF ft1, \b, \w
  \op\().\w t2, ft0, ft1
  PHEX "\op\().\w \a \b", t2
  PFLAGS " "
.endm
/* sqrt with rounding mode */
.macro OP1R op, w, a, rm
  LDF ft0, \a, \w
  \op\().\w ft2, ft0, \rm
  PFREG "\op\().\w \a \rm", ft2
  PFLAGS " "
.endm
.macro CLASS w, a
  LDF ft0, \a, \w
  fclass.\w t2, ft0
  PHEX "fclass.\w \a", t2
  PFLAGS " "
.endm
.macro FMA op, w, a, b, c, rm
  LDF ft0, \a, \w
  LDF ft1, \b, \w
  LDF ft3, \c, \w
  \op\().\w ft2, ft0, ft1, ft3, \rm
  PFREG "\op\().\w \a \b \c \rm", ft2
  PFLAGS " "
.endm
/* all five static modes, then dyn with frm = 0..4 */
.macro ALLRM2 op, w, a, b
  OP2R \op, \w, \a, \b, rne
  OP2R \op, \w, \a, \b, rtz
  OP2R \op, \w, \a, \b, rdn
  OP2R \op, \w, \a, \b, rup
  OP2R \op, \w, \a, \b, rmm
  .irp m, 0, 1, 2, 3, 4
  csrwi frm, \m
  OP2R \op, \w, \a, \b, dyn
  .endr
  csrwi frm, 0
.endm
.macro ALLRMFMA op, w, a, b, c
  .irp m, rne, rtz, rdn, rup, rmm
  FMA \op, \w, \a, \b, \c, \m
  .endr
  csrwi frm, 2
  FMA \op, \w, \a, \b, \c, dyn
  csrwi frm, 0
.endm
#endif
