/* Address spaces with ASIDs (S-mode, Sv39): entries cached under one ASID
   must not answer for another, must come back right when the first is
   active again, and sfence.vma by address or by ASID must reach an address
   space that is not active. Global mappings are shared by both roots. Loads
   run in hot loops so translated code's TLB fast path is exercised too.
     VA_P 0x1_000a_5000  4 KiB, not global: A -> PA_A (later PA_D), B -> PA_B (later PA_C)
     VA_G 0x1_4004_5000  4 KiB, global, one table for both: PA_G, later PA_F */
#include "bare.h"

#define VA_P  0x1000a5000   /* TLB index 0xa5: no other access of the test shares it */
#define VA_G  0x140045000
#define PA_A  0x81000000
#define PA_B  0x81001000
#define PA_C  0x81002000
#define PA_D  0x81003000
#define PA_G  0x81004000
#define PA_F  0x81005000
#define LEAF  (PTE_V | PTE_R | PTE_W | PTE_A | PTE_D)
#define GIGA  (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D | PTE_G)
#define HOT 50000
/* byte offsets of the two leaves in their level-0 tables */
#define L0P (0xa5 * 8)
#define L0G (0x45 * 8)

.macro MKLEAF reg, pa, extra=0
  li \reg, ((\pa) >> 12) << 10 | LEAF | (\extra)
.endm

/* store a pointer PTE to table `sym` at byte offset off of table `at` */
.macro LINK at, off, sym
  la t0, \at
  la t1, \sym
  srli t1, t1, 12
  slli t1, t1, 10
  ori t1, t1, PTE_V
  sd t1, \off(t0)
.endm

/* reg = Sv39 satp for root `sym` with ASID asid */
.macro MKSATP reg, sym, asid
  la \reg, \sym
  srli \reg, \reg, 12
  li t6, (8 << 16) | (\asid)
  slli t6, t6, 44
  or \reg, \reg, t6
.endm

/* s1 = sum over HOT loads of the doubleword at the VA in register va */
.macro HOTLOAD va
  li s0, HOT
  li s1, 0
91:
  ld t0, 0(\va)
  add s1, s1, t0
  addi s0, s0, -1
  bnez s0, 91b
.endm

.macro MARK pa, v
  li t0, \pa
  li t1, \v
  sd t1, 0(t0)
.endm

TEST_BEGIN tlb_asid
  csrw medeleg, zero
  MARK PA_A, 0x11
  MARK PA_B, 0x22
  MARK PA_C, 0x33
  MARK PA_D, 0x44
  MARK PA_G, 0x55
  MARK PA_F, 0x66
  /* two roots with the same global identity gigapages (devices, RAM) */
  la t0, l2a
  li t1, (0 >> 12) << 10 | GIGA
  sd t1, 0(t0)
  li t1, (0x80000000 >> 12) << 10 | GIGA
  sd t1, 16(t0)
  la t0, l2b
  li t1, (0 >> 12) << 10 | GIGA
  sd t1, 0(t0)
  li t1, (0x80000000 >> 12) << 10 | GIGA
  sd t1, 16(t0)
  LINK l2a, 32, l1a
  LINK l1a, 0, l0a
  LINK l2b, 32, l1b
  LINK l1b, 0, l0b
  LINK l2a, 40, l1g
  LINK l2b, 40, l1g
  LINK l1g, 0, l0g
  la t0, l0a
  MKLEAF t1, PA_A
  sd t1, L0P(t0)
  la t0, l0b
  MKLEAF t1, PA_B
  sd t1, L0P(t0)
  la t0, l0g
  MKLEAF t1, PA_G, PTE_G
  sd t1, L0G(t0)
  MKSATP t0, l2a, 1
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
  MKSATP s6, l2a, 1
  MKSATP s7, l2b, 2
  li s8, VA_P
  li s9, VA_G

  /* 1. each address space sees its own page, also when switching back */
  HOTLOAD s8
  CHECK "ASID 1 -> A", s1, 0x11 * HOT
  csrw satp, s7
  HOTLOAD s8
  CHECK "ASID 2 -> B", s1, 0x22 * HOT
  csrw satp, s6
  HOTLOAD s8
  CHECK "ASID 1 again -> A", s1, 0x11 * HOT
  csrw satp, s7
  HOTLOAD s8
  CHECK "ASID 2 again -> B", s1, 0x22 * HOT

  /* 2. from ASID 1, remap ASID 2's page and fence that page in ASID 2 */
  csrw satp, s6
  HOTLOAD s8
  la t0, l0b
  MKLEAF t1, PA_C
  sd t1, L0P(t0)
  li t2, 2
  sfence.vma s8, t2
  HOTLOAD s8
  CHECK "ASID 1 unchanged -> A", s1, 0x11 * HOT
  csrw satp, s7
  HOTLOAD s8
  CHECK "ASID 2 after its page fence -> C", s1, 0x33 * HOT

  /* 3. from ASID 2, remap ASID 1's page and fence all of ASID 1 */
  la t0, l0a
  MKLEAF t1, PA_D
  sd t1, L0P(t0)
  li t2, 1
  sfence.vma zero, t2
  HOTLOAD s8
  CHECK "ASID 2 unchanged -> C", s1, 0x33 * HOT
  csrw satp, s6
  HOTLOAD s8
  CHECK "ASID 1 after its ASID fence -> D", s1, 0x44 * HOT

  /* 4. a global page is the same in both; remapped and fenced by address */
  HOTLOAD s9
  CHECK "global in ASID 1 -> G", s1, 0x55 * HOT
  csrw satp, s7
  HOTLOAD s9
  CHECK "global in ASID 2 -> G", s1, 0x55 * HOT
  la t0, l0g
  MKLEAF t1, PA_F, PTE_G
  sd t1, L0G(t0)
  sfence.vma s9
  HOTLOAD s9
  CHECK "global in ASID 2 after fence -> F", s1, 0x66 * HOT
  csrw satp, s6
  HOTLOAD s9
  CHECK "global in ASID 1 after fence -> F", s1, 0x66 * HOT

  /* 5. ASID 1 reused for root B (after an ASID fence, as a kernel does) */
  MKSATP t0, l2b, 1
  csrw satp, t0
  sfence.vma zero, t2
  HOTLOAD s8
  CHECK "ASID 1 on root B -> C", s1, 0x33 * HOT

  /* 6. the ASID field holds what was written (within its width) and is not zero-only */
  csrr t0, satp
  srli t0, t0, 44
  li t1, 0xffff
  and t0, t0, t1
  CHECK "satp ASID reads back", t0, 1
  li t1, 0xffff
  slli t1, t1, 44
  or t1, s6, t1
  csrw satp, t1
  csrr t0, satp
  csrw satp, s6
  sfence.vma
  srli t0, t0, 44
  andi t0, t0, 1
  CHECK "satp ASID bit 0 is writable", t0, 1
  li a0, 0x600d
  RET_TO_M

  .bss
  .balign 4096
l2a: .space 4096
l2b: .space 4096
l1a: .space 4096
l1b: .space 4096
l1g: .space 4096
l0a: .space 4096
l0b: .space 4096
l0g: .space 4096
