/* Translator torture: loops that the translator keeps inside one wasm loop
   (a block whose branch or jump goes back to its own first instruction).
   Registers then stay in wasm locals across iterations, so every case here
   checks a way the hart state could go stale:
   - a CSR instruction (run through the interpreter) whose rd is used later
     in the same iteration and in the next one;
   - an AMO with rd, and FCLASS / FCVT.L.D writing an x register;
   - a side exit taken in a late iteration, before the instruction that
     writes a register late in the body (the value of the previous
     iteration must reach the hart);
   - a loop closed by an unconditional jump, left by a branch in its middle;
   - loads that miss the TLB every iteration (the slow path inside the loop);
   - a body near the translator's block limit, and one past it (a loop body
     of more than 256 instructions is still one block, up to 512), left by a
     side exit in its middle in a late iteration.
   Each loop runs 100k+ times, so it is translated while it runs. */
#include "user.h"

#define N 150000

/* six instructions of mixing for case 8 */
.macro MIX_ROUND
  add s1, s1, s2
  slli t0, s1, 13
  xor s2, s2, t0
  srli t1, s2, 7
  xor s3, s3, t1
  add s4, s4, s3
.endm

TEST_BEGIN jit_loop
  /* 1. csrrw fflags inside the loop */
  li s0, N
  li s1, 0
  csrwi fflags, 0
1:
  andi t1, s0, 0x1f
  csrrw t2, fflags, t1
  add s1, s1, t2
  slli t3, t2, 3
  xor s1, s1, t3
  addi s0, s0, -1
  bnez s0, 1b
  PHEX "csr loop sum", s1
  csrr t0, fflags
  PHEX "csr loop fflags", t0
  csrwi fflags, 0

  /* 2. amoadd.d with rd inside the loop */
  la s2, cell
  sd zero, 0(s2)
  li s0, N
  li s1, 0
2:
  andi t1, s0, 0xff
  amoadd.d t2, t1, (s2)
  add s1, s1, t2
  srli t3, s1, 5
  xor s1, s1, t3
  addi s0, s0, -1
  bnez s0, 2b
  PHEX "amo loop sum", s1
  ld t0, 0(s2)
  PHEX "amo loop cell", t0

  /* 3. fclass.d and fcvt.l.d (x-register results from FP) */
  li s0, N
  li s1, 0
3:
  andi t1, s0, 7
  addi t1, t1, -3
  fcvt.d.l fa0, t1
  fclass.d t2, fa0
  add s1, s1, t2
  fcvt.l.d t3, fa0, rtz
  add s1, s1, t3
  slli s1, s1, 1
  srli t4, s1, 61
  xor s1, s1, t4
  addi s0, s0, -1
  bnez s0, 3b
  PHEX "fp loop sum", s1
  csrwi fflags, 0

  /* 4. a side exit in iteration N-77, before s4 and s5 are written late in the body */
  li s0, 0
  li s3, N - 77
  li s4, 11
  li s5, 0
4:
  beq s0, s3, 41f
  addi s0, s0, 1
  mul t0, s0, s0
  add s5, s5, t0
  addi s4, s4, 3
  j 4b
41:
  PHEX "late exit s0", s0
  PHEX "late exit s4", s4
  PHEX "late exit s5", s5

  /* 5. two exits from one loop body, taken alternately over time */
  li s0, 0
  li s1, 0
5:
  addi s0, s0, 1
  li t0, 3 * N
  bgeu s0, t0, 52f
  slli t1, s0, 50
  bnez t1, 51f
  addi s1, s1, 100          /* every 16384th iteration: leave the loop block and come back */
  j 5b
51:
  add s1, s1, s0
  j 5b
52:
  PHEX "two exits s1", s1

  /* 6. loads that miss the TLB: 64 pages, one load per page per iteration */
  la s2, pages
  li s0, N
  li s1, 0
6:
  andi t1, s0, 63
  slli t1, t1, 12
  add t1, t1, s2
  ld t2, 0(t1)
  add t2, t2, s0
  sd t2, 0(t1)
  add s1, s1, t2
  addi s0, s0, -1
  bnez s0, 6b
  PHEX "tlb loop sum", s1

  /* 7. a long body (about 60 instructions) */
  li s0, N / 4
  li s1, 1
  li s2, 2
  li s3, 3
  li s4, 4
7:
  .rept 14
  add s1, s1, s2
  xor s2, s2, s3
  slli s3, s3, 1
  add s4, s4, s1
  .endr
  addi s0, s0, -1
  bnez s0, 7b
  PHEX "long loop s1", s1
  PHEX "long loop s2", s2
  PHEX "long loop s3", s3
  PHEX "long loop s4", s4

  /* 8. a body of 334 instructions (one page, so one block), with a store and
     a load each iteration and a side exit in its middle in the last one */
  li s0, N / 8
  li s1, 1
  li s2, 2
  li s3, 3
  li s4, 4
  la s5, cell
  j 8f
  .balign 4096
8:
  .rept 40
  MIX_ROUND
  .endr
  sd s4, 0(s5)
  li t2, 1
  beq s0, t2, 9f
  ld t3, 0(s5)
  add s1, s1, t3
  .rept 15
  MIX_ROUND
  .endr
9:
  addi s0, s0, -1
  bnez s0, 8b
  PHEX "longer loop s1", s1
  PHEX "longer loop s2", s2
  PHEX "longer loop s3", s3
  PHEX "longer loop s4", s4
TEST_END

  .data
  .balign 8
cell: .dword 0
  .bss
  .balign 4096
pages: .zero 64 * 4096
