/* Translator: regions (several blocks of one page that jump to each other in a
   cycle, translated into one wasm function; see translateRegion). A
   quicksort-like partition of an array, run over and over, so its blocks are
   hot and form a region while it runs: two inner loops closed by jumps, forward
   branches that skip stores, a block that branches back to its own head
   inside the region, a call to a function in the same page (a jump into the
   region, a return out of it), a CSR read (a call into the core) and loads and
   stores in every block. The checksums must be QEMU's. */
#include "user.h"

#define N 256
#define ROUNDS 3000

TEST_BEGIN jit_region
  /* fill the array from an LCG */
  la s5, arr
  li t0, 0x9e3779b97f4a7c15
  li t1, 6364136223846793005
  li t2, 1442695040888963407
  li t3, N
  mv t4, s5
0:
  mul t0, t0, t1
  add t0, t0, t2
  srli t5, t0, 40
  sd t5, 0(t4)
  addi t4, t4, 8
  addi t3, t3, -1
  bnez t3, 0b
  li s0, ROUNDS
  li s4, 0                 /* checksum */
  li s6, 0                 /* swaps */
  j 1f

  .balign 4096
1: /* one round: partition arr[0..N-1] around a pivot that moves each round */
  li s1, 0
  li s2, N - 1
  slli t0, s0, 3
  andi t0, t0, (N - 1) * 8
  add t0, t0, s5
  ld s3, 0(t0)
2: /* scan from the left */
  bge s1, s2, 5f
3:
  slli t0, s1, 3
  add t0, t0, s5
  ld t1, 0(t0)
  bge t1, s3, 4f
  addi s1, s1, 1
  j 3b
4: /* scan from the right */
  slli t2, s2, 3
  add t2, t2, s5
  ld t3, 0(t2)
  bge s3, t3, 6f
  addi s2, s2, -1
  blt s1, s2, 4b
  j 5f
6: /* swap unless the scans met */
  bge s1, s2, 5f
  sd t3, 0(t0)
  sd t1, 0(t2)
  addi s6, s6, 1
  addi s1, s1, 1
  addi s2, s2, -1
  j 2b
5: /* the round's end: fold in where the scans met, spin a little, call mix */
  add s4, s4, s1
  slli t0, s4, 5
  xor s4, s4, t0
  add s4, s4, s2
  andi t4, s0, 7
7:
  addi t4, t4, 1
  andi t5, t4, 7
  bnez t5, 7b
  add s4, s4, t4
  frflags t6
  add s4, s4, t6
  jal ra, mix
  addi s0, s0, -1
  bnez s0, 1b
  j 9f

mix: /* perturb the array a little so every round partitions something new */
  srli t0, s4, 7
  andi t0, t0, (N - 1) * 8
  add t0, t0, s5
  ld t1, 0(t0)
  xor t1, t1, s4
  srli t1, t1, 3
  sd t1, 0(t0)
  ret

9:
  PHEX "region checksum", s4
  PHEX "region swaps", s6
  /* and the array's own checksum */
  li s0, N
  mv t4, s5
  li s4, 0
8:
  ld t0, 0(t4)
  slli t1, s4, 7
  srli s4, s4, 57
  or s4, s4, t1
  xor s4, s4, t0
  addi t4, t4, 8
  addi s0, s0, -1
  bnez s0, 8b
  PHEX "region array", s4
TEST_END

  .data
  .balign 8
arr: .zero N * 8
