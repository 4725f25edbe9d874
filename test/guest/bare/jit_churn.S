/* Translator torture: hot code running while page tables churn (S-mode, Sv39).
     VA_D    0x1_0000_0000  4K data page -> D0..D3 (dword j of Dk = k << 32 | 7 j)
     VA_C    0x1_0000_1000  4K code page -> C0 or C1 (Ck returns dword (a0 & 511)
                            of VA_D plus 0x100 k)
     VA_MEGA 0x1_0040_0000  2M megapage -> PA 0x80400000 or 0x80600000
   Iteration i of the hot loop maps D(i & 3) and C((i >> 2) & 1), flushes
   (sfence.vma for both addresses when i & 8, else sfence.vma without an
   address), reads VA_D directly and through a call to VA_C, and folds both
   into a checksum.  Then a megapage is remapped every iteration and flushed
   with sfence.vma given another 4K page inside it than the one read. */
#include "bare.h"

#define VA_D    0x100000000
#define VA_C    0x100001000
#define VA_MEGA 0x100400000
#define MEGA0   0x80400000
#define MEGA1   0x80600000
#define LEAF  (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define N       60000
#define CHURN_SUM 0xf97b70e2f8c2ab40         /* a model of s_churn, computed offline */

.macro MKPTE reg, sym
  la \reg, \sym
  srli \reg, \reg, 12
  slli \reg, \reg, 10
  ori \reg, \reg, LEAF
.endm

TEST_BEGIN jit_churn
  csrw medeleg, zero
  /* data pages */
  la t0, dpages
  li t1, 0                          /* k */
1:li t2, 0                          /* j */
2:slli t3, t1, 32
  slli t4, t2, 3
  sub t4, t4, t2
  or t3, t3, t4
  sd t3, 0(t0)
  addi t0, t0, 8
  addi t2, t2, 1
  li t4, 512
  bne t2, t4, 2b
  addi t1, t1, 1
  li t4, 4
  bne t1, t4, 1b
  /* megapage targets: a marker dword in every 4K page */
  li t0, MEGA0
  li t1, MEGA1
  li t2, 0
3:slli t3, t2, 12
  add t4, t0, t3
  ori t5, t2, 0x400
  sd t5, 0(t4)
  add t4, t1, t3
  ori t5, t2, 0x600
  sd t5, 0(t4)
  addi t2, t2, 1
  li t3, 512
  bne t2, t3, 3b
  /* page tables */
  la t0, l2
  li t1, (0 >> 12) << 10 | LEAF
  sd t1, 0(t0)
  li t1, (0x80000000 >> 12) << 10 | LEAF
  sd t1, 16(t0)
  la t1, l1
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, 32(t0)                     /* l2[4] -> l1 */
  la t0, l1
  la t1, l0
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, 0(t0)                      /* l1[0] -> l0 */
  li t1, (MEGA0 >> 12) << 10 | LEAF
  sd t1, 16(t0)                     /* l1[2]: megapage */
  la t0, l0
  MKPTE t1, dpages
  sd t1, 0(t0)
  MKPTE t1, code0
  sd t1, 8(t0)
  la t0, l2
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li a0, MODE_S
  la a1, s_churn
  call rt_enter
  CHECK "data/code churn checksum", a0, CHURN_SUM
  li a0, MODE_S
  la a1, s_mega
  call rt_enter
  CHECK "megapage remap + sfence.vma (other 4K page): mismatches", a0, 0
  csrw satp, zero
  sfence.vma
TEST_END

s_churn:
  la s10, l0
  li s11, VA_C
  li s9, VA_D
  MKPTE s7, dpages                  /* PTE of D0; Dk = s7 + (k << 10) */
  MKPTE s6, code0                   /* PTE of C0; C1 = s6 + (1 << 10) */
  li s2, 0                          /* i */
  li s3, 0                          /* checksum */
  li s5, N
1:andi t0, s2, 3
  slli t0, t0, 10
  add t0, t0, s7
  sd t0, 0(s10)
  srli t1, s2, 2
  andi t1, t1, 1
  slli t1, t1, 10
  add t1, t1, s6
  sd t1, 8(s10)
  andi t2, s2, 8
  beqz t2, 2f
  sfence.vma s9
  sfence.vma s11
  j 3f
2:sfence.vma
3:slli t3, s2, 1
  add t3, t3, s2
  andi t3, t3, 511
  slli t3, t3, 3
  add t3, t3, s9
  ld s4, 0(t3)                      /* direct read through VA_D */
  mv a0, s2
  jalr s11                          /* read through code at VA_C */
  li t4, 31
  mul s3, s3, t4
  add s3, s3, s4
  add s3, s3, a0
  addi s2, s2, 1
  bne s2, s5, 1b
  mv a0, s3
  RET_TO_M

s_mega:
  la s10, l1
  li s4, VA_MEGA + 0x5000
  li s8, VA_MEGA + 0x3000           /* flushed address: another 4K page of the megapage */
  li s7, (MEGA0 >> 12) << 10 | LEAF
  li s6, (MEGA1 >> 12) << 10 | LEAF
  li s2, 0
  li s3, 0
  li s5, 200000
1:andi t0, s2, 1
  mv t1, s7
  li t2, 0x405
  beqz t0, 2f
  mv t1, s6
  li t2, 0x605
2:sd t1, 16(s10)
  sfence.vma s8
  ld t3, 0(s4)                      /* VA_MEGA + 0x5000 */
  beq t3, t2, 3f
  addi s3, s3, 1
3:addi s2, s2, 1
  bne s2, s5, 1b
  mv a0, s3
  RET_TO_M

.macro CODEPAGE name, k
  .balign 4096
\name:
  li t0, 1
  slli t0, t0, 32                   /* VA_D */
  andi t1, a0, 511
  slli t1, t1, 3
  add t0, t0, t1
  ld a0, 0(t0)
  addi a0, a0, 0x100 * \k
  ret
.endm
  CODEPAGE code0, 0
  CODEPAGE code1, 1
  .balign 4096

  .data
  .balign 4096
dpages: .space 4 * 4096
  .bss
  .balign 4096
l2: .space 4096
l1: .space 4096
l0: .space 4096
