/* sfence.vma of one address inside a megapage must drop the TLB's 4 KiB
   pieces of the whole megapage, and an sfence.vma of a 4 KiB page must take
   effect while superpages are cached elsewhere (S-mode, Sv39). Loads run in
   hot loops so translated code's TLB fast path is exercised too.
     VA_M 0x1_0000_0000  2 MiB megapage -> PA_A or PA_B
     VA_P 0x1_0020_0000  4 KiB page     -> PA_A + 0x5000 or PA_B + 0x5000
   RAM is reached through an identity gigapage, itself a superpage. */
#include "bare.h"

#define VA_M  0x100000000
#define VA_P  0x100200000
#define PA_A  0x81000000
#define PA_B  0x81200000
#define LEAF  (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#define HOT 100000

/* reg = leaf PTE for physical address pa */
.macro MKLEAF reg, pa
  li \reg, ((\pa) >> 12) << 10 | LEAF
.endm

/* s1 = sum over HOT loads of the doubleword at VA in register va */
.macro HOTLOAD va
  li s0, HOT
  li s1, 0
91:
  ld t0, 0(\va)
  add s1, s1, t0
  addi s0, s0, -1
  bnez s0, 91b
.endm

TEST_BEGIN tlb_super
  csrw medeleg, zero
  /* markers, through physical addresses */
  li t0, PA_A + 0x3000
  li t1, 0x11
  sd t1, 0(t0)
  li t0, PA_B + 0x3000
  li t1, 0x22
  sd t1, 0(t0)
  li t0, PA_A + 0x5000
  li t1, 0x33
  sd t1, 0(t0)
  li t0, PA_B + 0x5000
  li t1, 0x44
  sd t1, 0(t0)
  /* page tables */
  la t0, l2
  li t1, (0 >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 0(t0)
  li t1, (0x80000000 >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 16(t0)
  la t1, l1
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, 32(t0)                 /* l2[4] -> l1 */
  la t0, l1
  MKLEAF t1, PA_A
  sd t1, 0(t0)                  /* l1[0]: megapage VA_M -> PA_A */
  la t1, l0
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, 8(t0)                  /* l1[1] -> l0 */
  la t0, l0
  MKLEAF t1, PA_A + 0x5000
  sd t1, 0(t0)                  /* l0[0]: VA_P -> PA_A + 0x5000 */
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
  la s10, l1
  la s11, l0
  li s8, VA_M + 0x3000
  li s9, VA_P

  /* 1. a piece of the megapage, hot */
  HOTLOAD s8
  CHECK "megapage piece -> A", s1, 0x11 * HOT
  /* 2. remap the megapage; flush its first piece only (not the one cached) */
  MKLEAF t1, PA_B
  sd t1, 0(s10)
  li t2, VA_M
  sfence.vma t2
  HOTLOAD s8
  CHECK "megapage piece -> B after sfence.vma of another piece", s1, 0x22 * HOT
  /* 3. back to A, flushing the megapage's last piece */
  MKLEAF t1, PA_A
  sd t1, 0(s10)
  li t2, VA_M + 0x1ff000
  sfence.vma t2
  HOTLOAD s8
  CHECK "megapage piece -> A after sfence.vma of the last piece", s1, 0x11 * HOT

  /* 4. a 4 KiB page while superpages are cached: flush just that page */
  HOTLOAD s9
  CHECK "4 KiB page -> A", s1, 0x33 * HOT
  MKLEAF t1, PA_B + 0x5000
  sd t1, 0(s11)
  sfence.vma s9
  HOTLOAD s9
  CHECK "4 KiB page -> B after sfence.vma of it", s1, 0x44 * HOT
  /* ... and the megapage piece cached before is still right */
  HOTLOAD s8
  CHECK "megapage piece still -> A", s1, 0x11 * HOT

  /* 5. alternate the megapage A/B, flushing a different piece each time */
  li s2, 0          /* i */
  li s3, 0          /* mismatches */
  li s5, 2000
1:andi t0, s2, 1
  MKLEAF t1, PA_A
  beqz t0, 2f
  MKLEAF t1, PA_B
2:sd t1, 0(s10)
  andi t2, s2, 0x1ff
  slli t2, t2, 12
  li t3, VA_M
  add t2, t2, t3
  sfence.vma t2
  ld t4, 0(s8)
  li t5, 0x11
  beqz t0, 3f
  li t5, 0x22
3:beq t4, t5, 4f
  addi s3, s3, 1
4:addi s2, s2, 1
  bne s2, s5, 1b
  CHECK "alternating megapage mismatches", s3, 0
  li a0, 0x600d
  RET_TO_M

  .bss
  .balign 4096
l2: .space 4096
l1: .space 4096
l0: .space 4096
