/* Translator: MULH, MULHSU and MULHU inline in translated code (four 32x32-bit
   products, sign corrections). A loop over pseudo-random operands (every sign
   combination, carries out of the middle column) runs 20,000 times, so it is
   translated while it runs; the checksums must be QEMU's. */
#include "user.h"

#define N 20000

TEST_BEGIN jit_mulh
  li s0, N
  li s1, 0               /* mulh checksum */
  li s2, 0               /* mulhsu checksum */
  li s3, 0               /* mulhu checksum */
  li s4, 0x9e3779b97f4a7c15   /* LCG state */
  li s5, 6364136223846793005
  li s6, 1442695040888963407
1:
  mul s4, s4, s5
  add s4, s4, s6
  mv t0, s4              /* a */
  srli t1, s4, 17
  xor t1, t1, s4
  slli t2, s4, 29
  xor t1, t1, t2         /* b */
  andi t3, s0, 3         /* every fourth: a = b, or small / all-ones operands */
  bnez t3, 2f
  mv t0, t1
2:
  li t4, 1
  bne t3, t4, 3f
  li t0, -1
3:
  mulh t5, t0, t1
  xor s1, s1, t5
  slli t6, s1, 7
  srli s1, s1, 57
  or s1, s1, t6
  mulhsu t5, t0, t1
  add s2, s2, t5
  xor s2, s2, t0
  mulhu t5, t0, t1
  sub s3, s3, t5
  mulhu t5, t5, t5       /* rd = rs1 = rs2 */
  xor s3, s3, t5
  addi s0, s0, -1
  bnez s0, 1b
  PHEX "mulh sum", s1
  PHEX "mulhsu sum", s2
  PHEX "mulhu sum", s3
TEST_END
