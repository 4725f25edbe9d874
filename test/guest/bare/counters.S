/* Counter access gating: mcounteren / scounteren for cycle, time, instret
   from S and U; M-mode counters; Sstc stimecmp gated by mcounteren.TM. */
#include "bare.h"

.macro TRY mode, fn, name, expect_trap
  CLRTRAP
  li a0, \mode
  la a1, \fn
  call rt_enter
  LDV t0, rt_mcount
  CHECK "\name traps", t0, \expect_trap
  .if \expect_trap
  LDV t0, rt_mcause
  CHECK "\name mcause", t0, 2
  .endif
.endm

TEST_BEGIN counters
  csrw medeleg, zero
  /* M-mode: all readable, cycle/instret advance */
  rdinstret t0
  nop
  rdinstret t1
  sltu t2, t0, t1
  CHECK "instret advances", t2, 1
  csrr t0, mcycle
  csrr t1, minstret
  rdcycle t0
  rdtime t1
  CHECK "M counters readable", zero, 0
  /* minstret writes are not checked: QEMU without icount derives it from host time */
  csrw mcounteren, zero
  csrw scounteren, zero
  TRY MODE_S, s_cycle, "S cycle mcounteren=0", 1
  TRY MODE_S, s_time, "S time mcounteren=0", 1
  TRY MODE_S, s_instret, "S instret mcounteren=0", 1
  TRY MODE_U, s_cycle, "U cycle mcounteren=0", 1
  li t0, 7
  csrw mcounteren, t0
  csrr t1, mcounteren
  andi t1, t1, 7
  CHECK "mcounteren", t1, 7
  TRY MODE_S, s_cycle, "S cycle mcounteren=7", 0
  TRY MODE_S, s_time, "S time mcounteren=7", 0
  TRY MODE_S, s_instret, "S instret mcounteren=7", 0
  TRY MODE_U, s_cycle, "U cycle scounteren=0", 1
  TRY MODE_U, s_time, "U time scounteren=0", 1
  TRY MODE_U, s_instret, "U instret scounteren=0", 1
  li t0, 7
  csrw scounteren, t0
  csrr t1, scounteren
  andi t1, t1, 7
  CHECK "scounteren", t1, 7
  TRY MODE_U, s_cycle, "U cycle scounteren=7", 0
  TRY MODE_U, s_time, "U time scounteren=7", 0
  TRY MODE_U, s_instret, "U instret scounteren=7", 0
  /* only the selected bit matters */
  li t0, 2
  csrw scounteren, t0
  TRY MODE_U, s_time, "U time scounteren=TM", 0
  TRY MODE_U, s_cycle, "U cycle scounteren=TM", 1
  li t0, 5
  csrw mcounteren, t0
  TRY MODE_S, s_time, "S time mcounteren=CY|IR", 1
  TRY MODE_S, s_cycle, "S cycle mcounteren=CY|IR", 0
  /* S-mode counter CSR writes are illegal (read-only) */
  li t0, 7
  csrw mcounteren, t0
  TRY MODE_S, s_wcycle, "S write cycle", 1
  /* stimecmp with STCE=1: needs mcounteren.TM */
  li t0, 1
  slli t0, t0, 63
  csrs 0x30a, t0
  li t0, 5
  csrw mcounteren, t0
  TRY MODE_S, s_stimecmp, "S stimecmp TM=0", 1
  li t0, 7
  csrw mcounteren, t0
  TRY MODE_S, s_stimecmp, "S stimecmp TM=1", 0
  csrw mcounteren, zero
  csrw scounteren, zero
TEST_END

s_cycle:
  rdcycle a0
  RET_TO_M
s_time:
  rdtime a0
  RET_TO_M
s_instret:
  rdinstret a0
  RET_TO_M
s_wcycle:
  csrw cycle, zero
  RET_TO_M
s_stimecmp:
  li t0, -1
  csrw 0x14d, t0
  RET_TO_M
