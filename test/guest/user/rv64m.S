/* RV64M: multiply/divide incl. W forms, division by zero and overflow. */
#include "user.h"

.macro RR op, a, b
  li t0, \a
  li t1, \b
  \op t2, t0, t1
  PHEX "\op \a \b", t2
.endm

.macro ALL a, b
  RR mul, \a, \b
  RR mulh, \a, \b
  RR mulhsu, \a, \b
  RR mulhu, \a, \b
  RR mulw, \a, \b
  RR div, \a, \b
  RR divu, \a, \b
  RR rem, \a, \b
  RR remu, \a, \b
  RR divw, \a, \b
  RR divuw, \a, \b
  RR remw, \a, \b
  RR remuw, \a, \b
.endm

TEST_BEGIN rv64m
  ALL 7, 3
  ALL -7, 3
  ALL 7, -3
  ALL -7, -3
  ALL 0, 0
  ALL 5, 0
  ALL -5, 0
  ALL 0x8000000000000000, -1
  ALL 0x8000000000000000, 1
  ALL 0xffffffff80000000, -1
  ALL 0x80000000, 0xffffffff
  ALL 0x123456789abcdef0, 0x0fedcba987654321
  ALL -1, -1
  ALL 0x7fffffffffffffff, 0x7fffffffffffffff
  ALL 0x8000000000000000, 0x8000000000000000
  ALL 0x00000001ffffffff, 0x00000000ffffffff
  ALL 0xdeadbeef, 0x10
  /* rd aliases source */
  li t0, 12345
  li t1, 678
  mul t0, t0, t1
  PHEX "mul rd=rs1", t0
  li t1, 100
  div t1, t0, t1
  PHEX "div rd=rs2", t1
TEST_END
