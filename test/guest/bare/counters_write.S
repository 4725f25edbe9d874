/* Writable minstret and mcycle: after an M-mode write the counters continue
   from the written value, exactly (QEMU runs with -icount, so counts are
   exact there too); S and U see the written base through instret/cycle;
   time does not jump when minstret is written. The writing instruction
   itself counts on top of the value written, as on QEMU. */
#include "bare.h"

.macro LOOP n
  li t2, \n
1:addi t2, t2, -1
  bnez t2, 1b
.endm

TEST_BEGIN counters_write
  csrw medeleg, zero
  li t0, 7
  csrw mcounteren, t0
  csrw scounteren, t0
  /* the next instruction sees the written value plus the write itself */
  li t0, 1000
  csrw minstret, t0
  csrr t1, minstret
  CHECK "minstret after write", t1, 1001
  li t0, 2000
  csrw mcycle, t0
  csrr t1, mcycle
  CHECK "mcycle after write", t1, 2001
  /* a loop of 2 * 500 instructions (li, csrw, csrr add 3) */
  li t0, 0x123456789
  csrw minstret, t0
  LOOP 500
  csrr t1, minstret
  li t0, 0x123456789 + 1 + 1 + 1000
  CHECKR "minstret after loop", t1, t0
  /* csrrw returns the old value: exact too */
  li t0, 50
  csrw minstret, t0
  nop
  nop
  li t2, 100
  csrrw t1, minstret, t2
  CHECK "csrrw minstret old", t1, 54
  /* (what csrrw leaves is not compared: QEMU 7.2 miscounts after a csrrw of minstret) */
  /* a huge value wraps like the real 64-bit counter */
  li t0, -2
  csrw minstret, t0
  nop
  csrr t1, minstret
  CHECK "minstret wraps", t1, 0
  /* rdinstret and rdcycle (the unprivileged views) follow in M */
  li t0, 7000
  csrw minstret, t0
  rdinstret t1
  CHECK "rdinstret after write", t1, 7001
  li t0, 8000
  csrw mcycle, t0
  rdcycle t1
  CHECK "rdcycle after write", t1, 8001
  /* time is independent of the instruction counter's value */
  rdtime s1
  li t0, 0x7000000000000000
  csrw minstret, t0
  rdtime s2
  sub t0, s2, s1
  sltiu t0, t0, 1000
  CHECK "time did not jump", t0, 1
  /* S and U see the written base: a read there lies within a few hundred counts */
  li t0, 0x40000000
  csrw minstret, t0
  li a0, MODE_S
  la a1, lower_instret
  call rt_enter
  li t0, 0x40000000
  sub t0, a0, t0
  sltiu t0, t0, 500
  CHECK "S instret continues", t0, 1
  li t0, 0x50000000
  csrw mcycle, t0
  li a0, MODE_U
  la a1, lower_cycle
  call rt_enter
  li t0, 0x50000000
  sub t0, a0, t0
  sltiu t0, t0, 500
  CHECK "U cycle continues", t0, 1
  /* counting in S between two reads is exact */
  li a0, MODE_S
  la a1, lower_delta
  call rt_enter
  CHECK "S instret delta", a0, 1 + 2 * 300 + 1
  csrw mcounteren, zero
  csrw scounteren, zero
TEST_END

lower_instret:
  rdinstret a0
  RET_TO_M
lower_cycle:
  rdcycle a0
  RET_TO_M
lower_delta:
  rdinstret t0
  LOOP 300
  rdinstret t1
  sub a0, t1, t0
  RET_TO_M
