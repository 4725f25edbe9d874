/* Translator torture: code pages remapped under hot code (S-mode, Sv39).
   Virtual layout (l2[0], l2[2]: identity gigapages for devices and RAM):
     VA_C1 0x1_0000_0000  -> code page A (returns 1) or B (returns 2)
     VA_C2 0x1_0000_1000  -> code page A as well (alias)
     VA_L  0x1_0000_2000  -> loop page LA or LB: the same loop, which remaps
                             its own page every iteration (LA adds 1, LB adds 2)
   Every hot phase runs more than a million instructions so the code gets
   translated before the mapping changes. */
#include "bare.h"

#define VA_C1 0x100000000
#define VA_C2 0x100001000
#define VA_L  0x100002000
#define LEAF  (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)
#define LI_A0(v) (0x00000513 | ((v) << 20))   /* addi a0, zero, v */
#define HOT 200000

/* reg = leaf PTE for the physical address of symbol sym */
.macro MKPTE reg, sym
  la \reg, \sym
  srli \reg, \reg, 12
  slli \reg, \reg, 10
  ori \reg, \reg, LEAF
.endm

/* call the function at VA in register fn n times, s1 = sum of a0 */
.macro HOTCALL fn, n
  li s0, \n
  li s1, 0
91:
  jalr \fn
  add s1, s1, a0
  addi s0, s0, -1
  bnez s0, 91b
.endm

TEST_BEGIN jit_remap
  csrw medeleg, zero
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
  sd t1, 32(t0)                 /* l2[4] -> l1 */
  la t0, l1
  la t1, l0
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, 0(t0)                  /* l1[0] -> l0 */
  la t0, l0
  MKPTE t1, page_a
  sd t1, 0(t0)
  sd t1, 8(t0)
  MKPTE t1, page_la
  sd t1, 16(t0)
  la t0, l2
  srli t0, t0, 12
  li t1, 8
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  li a0, MODE_S
  la a1, s_main
  call rt_enter
  CHECK "S-mode part done", a0, 0x600d
  csrw satp, zero
  sfence.vma
TEST_END

s_main:
  la s10, l0
  MKPTE s8, page_a
  MKPTE s9, page_b
  li s11, VA_C1

  /* 1. hot through A */
  HOTCALL s11, HOT
  CHECK "VA_C1 -> A hot sum", s1, HOT
  /* 2. remap to B, sfence.vma with the address */
  sd s9, 0(s10)
  sfence.vma s11
  jalr s11
  CHECK "VA_C1 -> B after sfence.vma addr", a0, 2
  HOTCALL s11, HOT
  CHECK "VA_C1 -> B hot sum", s1, 2 * HOT
  /* 3. back to A, sfence.vma without an address */
  sd s8, 0(s10)
  sfence.vma
  jalr s11
  CHECK "VA_C1 -> A after sfence.vma", a0, 1
  HOTCALL s11, HOT
  CHECK "VA_C1 -> A again hot sum", s1, HOT

  /* 4. alternate A/B every call; both sfence forms */
  li s2, 0          /* i */
  li s3, 0          /* mismatches */
  li s4, 0          /* sum */
  li s5, 100000
1:andi t0, s2, 1
  mv t1, s8
  beqz t0, 2f
  mv t1, s9
2:sd t1, 0(s10)
  andi t2, s2, 2
  beqz t2, 3f
  sfence.vma s11
  j 4f
3:sfence.vma
4:jalr s11
  add s4, s4, a0
  andi t0, s2, 1
  addi t0, t0, 1
  beq a0, t0, 5f
  addi s3, s3, 1
5:addi s2, s2, 1
  bne s2, s5, 1b
  CHECK "alternating A/B mismatches", s3, 0
  CHECK "alternating A/B sum", s4, 150000
  sd s8, 0(s10)
  sfence.vma

  /* 5. the same physical code at three virtual addresses (VA_C1, VA_C2, identity) */
  li s7, VA_C2
  la s6, page_a
  li s2, HOT
  li s4, 0
1:jalr s11
  add s4, s4, a0
  jalr s7
  add s4, s4, a0
  jalr s6
  add s4, s4, a0
  addi s2, s2, -1
  bnez s2, 1b
  CHECK "three aliases hot sum", s4, 3 * HOT
  /* rewrite through the identity mapping */
  li t0, LI_A0(3)
  sw t0, 0(s6)
  fence.i
  jalr s11
  CHECK "VA_C1 sees rewrite via identity", a0, 3
  jalr s7
  CHECK "VA_C2 sees rewrite via identity", a0, 3
  jalr s6
  CHECK "identity sees rewrite", a0, 3
  /* make them hot again, then rewrite through the VA_C2 alias */
  li s2, HOT
  li s4, 0
1:jalr s11
  add s4, s4, a0
  jalr s7
  add s4, s4, a0
  addi s2, s2, -1
  bnez s2, 1b
  CHECK "aliases hot sum after rewrite", s4, 6 * HOT
  li t0, LI_A0(4)
  sw t0, 0(s7)
  fence.i
  jalr s11
  CHECK "VA_C1 sees rewrite via VA_C2", a0, 4
  jalr s7
  CHECK "VA_C2 sees rewrite via VA_C2", a0, 4
  jalr s6
  CHECK "identity sees rewrite via VA_C2", a0, 4
  /* many rewrites through alternating aliases, calls through the others */
  li s2, 0
  li s3, 0
  li s5, 30000
1:andi t0, s2, 1023
  slli t1, t0, 20
  ori t1, t1, 0x513
  andi t2, s2, 1
  mv t3, s6
  beqz t2, 2f
  mv t3, s7
2:sw t1, 0(t3)
  fence.i
  jalr s11
  bne a0, t0, 3f
  jalr s7
  bne a0, t0, 3f
  jalr s6
  beq a0, t0, 4f
3:addi s3, s3, 1
4:addi s2, s2, 1
  bne s2, s5, 1b
  CHECK "rewrites through aliases: mismatches", s3, 0
  li t0, LI_A0(1)
  sw t0, 0(s6)
  fence.i

  /* 6. a hot loop that remaps its own code page every iteration */
  la a1, l0
  addi a1, a1, 16
  MKPTE a2, page_la
  MKPTE a3, page_lb
  li a4, VA_L
  li a0, 400000
  jalr a4
  CHECK "self-remapping loop sum", a0, 599999
  sd a2, 0(a1)
  sfence.vma
  li a0, 0x600d
  RET_TO_M

/* LA and LB: the same loop at the same offset; only the increment differs.
   a0 = n, a1 = &PTE of VA_L, a2 = PTE -> LA, a3 = PTE -> LB, a4 = VA_L.
   Iteration with a0 = m adds the increment of the page it runs in, then
   maps LB if m is odd and LA if it is even, and flushes (with the address
   if m & 2, else everything), then fence.i: the bytes at this virtual pc
   change, and QEMU (the oracle) may keep running the old page's code until
   fence.i when a page remaps itself. */
.macro LOOPPAGE name, k
  .balign 4096
\name:
  li t0, 0
1:addi t0, t0, \k
  andi t1, a0, 1
  mv t2, a2
  beqz t1, 2f
  mv t2, a3
2:sd t2, 0(a1)
  andi t1, a0, 2
  beqz t1, 3f
  sfence.vma a4
  j 4f
3:sfence.vma
4:fence.i                       /* new code at this virtual address: sync the fetch stream too */
  addi a0, a0, -1
  bnez a0, 1b
  mv a0, t0
  ret
.endm

  .option push
  .option norvc
  .balign 4096
page_a:
  addi a0, zero, 1
  ret
  .balign 4096
page_b:
  addi a0, zero, 2
  ret
  LOOPPAGE page_la, 1
  LOOPPAGE page_lb, 2
  .balign 4096
  .option pop

  .bss
  .balign 4096
l2: .space 4096
l1: .space 4096
l0: .space 4096
