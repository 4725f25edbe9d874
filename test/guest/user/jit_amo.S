/* Translated atomics: every AMO (.w and .d), LR/SC, in loops hot enough to be
   translated, so the translator's inline AMO path (a page the data TLB holds
   for loads and stores) and its call into the core (LR, SC, a page not yet in
   the TLB) both run. Operands come from a xorshift state, so the signed and
   unsigned min/max see both signs and the .w forms see upper bits that must be
   ignored. Checks: rd aliasing rs2 and rs1, rd = x0, an SC that fails for want
   of a reservation, and a cell on a page first touched by the AMO itself. */
#include "user.h"

#define N 3000

/* x = xorshift64(x) in s1; t6 scratch */
.macro NEXT
  slli t6, s1, 13
  xor s1, s1, t6
  srli t6, s1, 7
  xor s1, s1, t6
  slli t6, s1, 17
  xor s1, s1, t6
.endm

/* op on the cell at (s0): operand s1, old into t2; fold old and memory into s2 */
.macro STEP op, ld
  NEXT
  \op t2, s1, (s0)
  add s2, s2, t2
  \ld t3, 0(s0)
  xor s2, s2, t3
  slli t6, s2, 9
  srli s2, s2, 55
  or s2, s2, t6
.endm

TEST_BEGIN jit_amo
  li s1, 0x9e3779b97f4a7c15
  li s2, 0
  la s0, cells
  li t0, 0x5a5a5a5a5a5a5a5a
  sd t0, 0(s0)
  sd t0, 8(s0)
  li s3, N
1:
  la s0, cells
  STEP amoswap.d, ld
  STEP amoadd.d, ld
  STEP amoand.d, ld
  STEP amoor.d, ld
  STEP amoxor.d, ld
  STEP amomin.d, ld
  STEP amomax.d, ld
  STEP amominu.d, ld
  STEP amomaxu.d, ld
  addi s0, s0, 8
  STEP amoswap.w, ld
  STEP amoadd.w, ld
  STEP amoand.w, ld
  STEP amoor.w, ld
  STEP amoxor.w, ld
  STEP amomin.w, lw
  STEP amomax.w, lw
  STEP amominu.w, lwu
  STEP amomaxu.w, lwu
  addi s3, s3, -1
  bnez s3, 1b
  PHEX "amo sum", s2

  /* rd = rs2 and rd = rs1 (the address register is overwritten by the old value) */
  li s3, N
  li s2, 0
2:
  la s0, cells
  andi t1, s3, 0x3f
  amoadd.d t1, t1, (s0)
  add s2, s2, t1
  la t4, cells + 8
  amoxor.w t4, s3, (t4)
  add s2, s2, t4
  la t5, cells
  amoor.d zero, s3, (t5)
  addi s3, s3, -1
  bnez s3, 2b
  PHEX "alias sum", s2
  la s0, cells
  ld t0, 0(s0)
  PHEX "alias cell 0", t0
  ld t0, 8(s0)
  PHEX "alias cell 1", t0

  /* lr/sc increment loop, and an sc with no reservation every iteration */
  li s3, N
  li s2, 0
  la s0, cells
3:
  lr.d t1, (s0)
  addi t1, t1, 3
  sc.d t2, t1, (s0)
  bnez t2, 3b
  addi t4, s0, 8
  sc.w t2, s3, (t4)
  add s2, s2, t2
  lr.w t3, (t4)
  add s2, s2, t3
  addi s3, s3, -1
  bnez s3, 3b
  PHEX "lrsc sum", s2
  ld t0, 0(s0)
  PHEX "lrsc cell", t0

  /* each page's first access is an AMO (no TLB entry yet): the core's path, then inline */
  la s0, pages
  li s3, 256
  li s2, 0
4:
  li t1, 5
  amoadd.d t2, t1, (s0)
  add s2, s2, t2
  amoadd.d t2, t1, (s0)
  add s2, s2, t2
  addi t4, s0, 4
  amomaxu.w t2, s3, (t4)
  add s2, s2, t2
  ld t3, 0(s0)
  add s2, s2, t3
  li t6, 4096
  add s0, s0, t6
  addi s3, s3, -1
  bnez s3, 4b
  PHEX "page sum", s2
TEST_END

  .data
  .balign 16
cells: .dword 0, 0
  .bss
  .balign 4096
pages: .zero 256 * 4096
