/* Zicsr on user-accessible CSRs: fflags, frm, fcsr (all six instruction
   forms) plus existence of cycle/time/instret (values are not printed). */
#include "user.h"

TEST_BEGIN zicsr
  csrwi fcsr, 0
  csrr t0, fcsr
  PHEX "fcsr init", t0
  /* csrrw */
  li t1, 0x1f
  csrrw t0, fflags, t1
  PHEX "csrrw fflags old", t0
  csrr t0, fflags
  PHEX "fflags", t0
  csrr t0, fcsr
  PHEX "fcsr after fflags", t0
  /* upper bits of fflags are ignored */
  li t1, 0xffffffffffffffe1
  csrw fflags, t1
  csrr t0, fflags
  PHEX "fflags masked", t0
  /* csrrc / csrrs */
  li t1, 0x3
  csrrc t0, fflags, t1
  PHEX "csrrc fflags old", t0
  csrr t0, fflags
  PHEX "csrrc fflags new", t0
  li t1, 0x6
  csrrs t0, fflags, t1
  PHEX "csrrs fflags old", t0
  csrr t0, fflags
  PHEX "csrrs fflags new", t0
  /* immediate forms */
  csrrwi t0, fflags, 0x15
  PHEX "csrrwi old", t0
  csrrsi t0, fflags, 0x0a
  PHEX "csrrsi old", t0
  csrrci t0, fflags, 0x11
  PHEX "csrrci old", t0
  csrr t0, fflags
  PHEX "fflags final", t0
  /* frm */
  csrrwi t0, frm, 3
  PHEX "frm old", t0
  csrr t0, frm
  PHEX "frm", t0
  csrr t0, fcsr
  PHEX "fcsr with frm", t0
  li t1, 0xfd
  csrw frm, t1
  csrr t0, frm
  PHEX "frm masked", t0
  csrsi frm, 2
  csrr t0, frm
  PHEX "frm set", t0
  csrci frm, 7
  csrr t0, frm
  PHEX "frm cleared", t0
  /* fcsr write sets both */
  li t1, 0xffffffffffffff5a
  csrrw t0, fcsr, t1
  PHEX "fcsr old", t0
  csrr t0, fcsr
  PHEX "fcsr masked", t0
  csrr t0, frm
  PHEX "frm from fcsr", t0
  csrr t0, fflags
  PHEX "fflags from fcsr", t0
  /* csrrs/csrrc with x0 source do not write (read-only safe) */
  csrrs t0, fcsr, zero
  PHEX "csrrs x0", t0
  csrrc t0, fcsr, zero
  PHEX "csrrc x0", t0
  csrrsi t0, fcsr, 0
  PHEX "csrrsi 0", t0
  /* rd = x0 still writes */
  li t1, 0x20
  csrrw zero, fcsr, t1
  csrr t0, fcsr
  PHEX "csrrw rd=x0", t0
  csrwi fcsr, 0
  /* an FP op sets fflags: 1.0/3.0 inexact */
  li t1, 1
  fcvt.d.l ft0, t1
  li t1, 3
  fcvt.d.l ft1, t1
  fdiv.d ft2, ft0, ft1
  csrr t0, fflags
  PHEX "fdiv inexact", t0
  fmv.d.x fa7, zero
  csrwi fflags, 0
  fdiv.d ft2, ft0, fa7
  csrr t0, fflags
  PHEX "fdiv by zero flags", t0
  csrwi fflags, 0
  /* counters: existence only */
  rdcycle t0
  rdtime t1
  rdinstret t2
  csrr t0, cycle
  csrr t1, time
  csrr t2, instret
  rdinstret t3
  rdinstret t4
  sltu t5, t4, t3       /* instret must not go backwards */
  PHEX "instret monotonic (0=ok)", t5
  PUTS "counters readable\n"
TEST_END
