/* Paging test body shared by bare/paging_sv39.S and bare/paging_sv48.S
   (SV48 defined for the latter).  Page tables are built in .bss by M-mode;
   the tests run in S-mode (and one in U-mode); page faults go to M-mode
   (no delegation) except for a final delegated case.
   Virtual layout:
     0x0_0000_0000  1 GiB identity (devices)        S RWX, A/D preset
     0x0_8000_0000  1 GiB identity (RAM)            S RWX, A/D preset
     0x1_0000_0000  2 MiB megapage -> PA 0x80000000 S R, A=D=0
     0x1_0020_0000  4 KiB pages (see L0 below)
     0x1_0040_0000  misaligned megapage (PPN not 2 MiB aligned)
     0x1_4000_0000  misaligned gigapage
     0x1_8000_0000  gigapage alias of PA 0x80000000, A=D=0
     (Sv48 only) 0x80_0000_0000 512 GiB page -> PA 0 */
#include "bare.h"

#define VA_MEGA   0x100000000
#define VA_4K     0x100200000
#define VA_MISMEGA 0x100400000
#define VA_MISGIGA 0x140000000
#define VA_GIGA   0x180000000
#define PG(i)     (VA_4K + (i) * 4096)
#define LEAF_S    (PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D)

.macro SETPTE table, idx, pareg, flags
  srli t1, \pareg, 12
  slli t1, t1, 10
  ori t1, t1, \flags
  la t2, \table
  li t3, (\idx) * 8
  add t2, t2, t3
  sd t1, 0(t2)
.endm
.macro LDPTE reg, table, idx
  la \reg, \table
  ld \reg, ((\idx) * 8)(\reg)
.endm

#ifdef SV48
#define SATP_MODE 9
#define NAME paging_sv48
#else
#define SATP_MODE 8
#define NAME paging_sv39
#endif

TEST_BEGIN NAME
  csrw medeleg, zero
  /* data patterns */
  la t0, page_a
  li t1, 0xaaaa000000000001
  sd t1, 0(t0)
  la t0, page_b
  li t1, 0xbbbb000000000002
  sd t1, 0(t0)
  la t0, page_u
  li t1, 0xcccc000000000003
  sd t1, 0(t0)
  /* top level of the Sv39-style tree: l2 */
  li t0, 0
  SETPTE l2, 0, t0, LEAF_S
  li t0, 0x80000000
  SETPTE l2, 2, t0, LEAF_S
  la t0, l1
  SETPTE l2, 4, t0, PTE_V
  li t0, 0x80200000
  SETPTE l2, 5, t0, LEAF_S
  li t0, 0x80000000
  SETPTE l2, 6, t0, PTE_V | PTE_R | PTE_W
  li t0, 0x80000000
  SETPTE l1, 0, t0, PTE_V | PTE_R
  la t0, l0
  SETPTE l1, 1, t0, PTE_V
  li t0, 0x80001000
  SETPTE l1, 2, t0, LEAF_S
  la t0, page_a
  SETPTE l0, 0, t0, PTE_V | PTE_R | PTE_W
  la t0, page_b
  SETPTE l0, 1, t0, PTE_V | PTE_R | PTE_A
  SETPTE l0, 2, t0, PTE_V | PTE_X | PTE_A
  la t0, page_u
  SETPTE l0, 3, t0, PTE_V | PTE_R | PTE_W | PTE_U | PTE_A | PTE_D
  la t0, page_b
  SETPTE l0, 5, t0, PTE_V | PTE_W | PTE_A | PTE_D
  la t0, xpage
  SETPTE l0, 6, t0, PTE_V | PTE_X | PTE_A
  la t0, page_a
  SETPTE l0, 7, t0, PTE_V | PTE_R | PTE_A
  la t0, upage
  SETPTE l0, 8, t0, PTE_V | PTE_R | PTE_X | PTE_U | PTE_A
#ifdef SV48
  la t0, l2
  SETPTE l3, 0, t0, PTE_V
  li t0, 0
  SETPTE l3, 1, t0, LEAF_S
  la t0, l3
#else
  la t0, l2
#endif
  srli t0, t0, 12
  li t1, SATP_MODE
  slli t1, t1, 60
  or t0, t0, t1
  csrw satp, t0
  csrr t1, satp
  srli t1, t1, 60
  CHECK "satp mode", t1, SATP_MODE
  sfence.vma

  li a0, MODE_S
  la a1, s_body
  call rt_enter
  CHECK "S body done", a0, 0x5d

  /* U-mode under paging: code at PG(8), U data at PG(3) */
  la t0, u_fault_next
  la t1, upage
  sub t0, t0, t1
  li t1, PG(8)
  add t0, t0, t1
  STV t0, rt_resume
  CLRTRAP
  li a0, MODE_U
  li a1, PG(8)
  call rt_enter
  CHECK "U load from U page", a0, 0xcccc000000000003
  LDV t0, rt_mcause
  CHECK "U load from S page mcause", t0, 13
  LDV t0, rt_mtval
  CHECK "U load from S page mtval", t0, PG(0)
  LDV t0, rt_mepc
  PHEX "U fault mepc", t0

  /* page fault delegated to S: scause/stval */
  li t0, 1 << 13
  csrw medeleg, t0
  CLRTRAP
  li a0, MODE_S
  la a1, s_deleg
  call rt_enter
  CHECK_STRAP "delegated load page fault", 13, s_deleg_pc, PG(4)
  csrw medeleg, zero
  csrw satp, zero
  sfence.vma
TEST_END

/* ----- S-mode body (identity-mapped code) ----- */
s_body:
  /* identity translation through the RAM gigapage */
  la t0, page_a
  ld t1, 0(t0)
  CHECK "identity load", t1, 0xaaaa000000000001
  /* 4K page with A=D=0: hardware sets A on load, D on store */
  li s0, PG(0)
  ld t1, 0(s0)
  CHECK "4K load", t1, 0xaaaa000000000001
  LDPTE t2, l0, 0
  andi t3, t2, PTE_A | PTE_D
  CHECK "4K A set after load", t3, PTE_A
  PHEX "pte0 after load", t2
  li t1, 0xaaaa000000000011
  sd t1, 8(s0)
  LDPTE t2, l0, 0
  andi t3, t2, PTE_A | PTE_D
  CHECK "4K D set after store", t3, PTE_A | PTE_D
  PHEX "pte0 after store", t2
  la t0, page_a
  ld t1, 8(t0)
  CHECK "store visible at PA", t1, 0xaaaa000000000011
  /* megapage, A=0 */
  li s0, VA_MEGA
  lw t1, 0(s0)
  li t0, 0x80000000
  lw t2, 0(t0)
  CHECKR "megapage load", t1, t2
  la t0, page_a
  li t3, 0x80000000
  sub t0, t0, t3            /* offset of page_a inside the megapage? only if < 2M */
  li t3, 0x200000
  bgeu t0, t3, 1f
  add t0, t0, s0
  ld t1, 8(t0)
  CHECK "megapage data", t1, 0xaaaa000000000011
1:LDPTE t2, l1, 0
  andi t3, t2, PTE_A | PTE_D
  CHECK "megapage A set", t3, PTE_A
  /* gigapage alias, A=D=0 */
  la t0, page_b
  li t3, 0x80000000
  sub t0, t0, t3
  li t3, VA_GIGA
  add s1, t0, t3
  ld t1, 0(s1)
  CHECK "gigapage alias load", t1, 0xbbbb000000000002
  LDPTE t2, l2, 6
  andi t3, t2, PTE_A | PTE_D
  CHECK "gigapage A set", t3, PTE_A
  li t1, 0xbbbb000000000022
  sd t1, 8(s1)
  LDPTE t2, l2, 6
  andi t3, t2, PTE_A | PTE_D
  CHECK "gigapage D set", t3, PTE_A | PTE_D
  PHEX "gigapage pte", t2

  /* store to read-only page: store page fault 15 */
  li s0, PG(1)
  ld t1, 0(s0)
  CHECK "read-only page load", t1, 0xbbbb000000000002
  CLRTRAP
ro_st: sd t1, 0(s0)
  CHECK_MTRAP "store to read-only", 15, ro_st, PG(1)
  /* amo on read-only page: 15 */
  CLRTRAP
ro_amo: amoadd.d t1, t1, (s0)
  CHECK_MTRAP "amo to read-only", 15, ro_amo, PG(1)
  /* execute-only page: load faults unless MXR */
  li s0, PG(2)
  CLRTRAP
xo_ld: ld t1, 16(s0)
  CHECK_MTRAP "load from X-only, MXR=0", 13, xo_ld, PG(2) + 16
  li t0, MSTATUS_MXR
  csrs sstatus, t0
  CLRTRAP
  ld t1, 0(s0)
  CHECK "load from X-only, MXR=1", t1, 0xbbbb000000000002
  LDV t0, rt_mcount
  CHECK "MXR no trap", t0, 0
  li t0, MSTATUS_MXR
  csrc sstatus, t0
  /* U page from S: SUM */
  li s0, PG(3)
  CLRTRAP
u_ld: ld t1, 0(s0)
  CHECK_MTRAP "S load from U page, SUM=0", 13, u_ld, PG(3)
  CLRTRAP
u_st: sd t1, 0(s0)
  CHECK_MTRAP "S store to U page, SUM=0", 15, u_st, PG(3)
  li t0, MSTATUS_SUM
  csrs sstatus, t0
  CLRTRAP
  ld t1, 0(s0)
  CHECK "S load from U page, SUM=1", t1, 0xcccc000000000003
  LDV t0, rt_mcount
  CHECK "SUM no trap", t0, 0
  /* S may never execute a U page, even with SUM=1 */
  CLRTRAP
  RESUME_AT u_x_back
  li t0, PG(8)
  jalr ra, 0(t0)
u_x_back:
  LDV t0, rt_mcause
  CHECK "S fetch from U page mcause", t0, 12
  LDV t0, rt_mtval
  CHECK "S fetch from U page mtval", t0, PG(8)
  li t0, MSTATUS_SUM
  csrc sstatus, t0
  /* invalid PTE */
  li s0, PG(4)
  CLRTRAP
inv_ld: lw t1, 4(s0)
  CHECK_MTRAP "load from invalid", 13, inv_ld, PG(4) + 4
  CLRTRAP
inv_st: sb t1, 7(s0)
  CHECK_MTRAP "store to invalid", 15, inv_st, PG(4) + 7
  CLRTRAP
  RESUME_AT inv_x_back
  jalr ra, 0(s0)
inv_x_back:
  LDV t0, rt_mcause
  CHECK "fetch from invalid mcause", t0, 12
  LDV t0, rt_mepc
  CHECK "fetch from invalid mepc", t0, PG(4)
  LDV t0, rt_mtval
  CHECK "fetch from invalid mtval", t0, PG(4)
  /* W without R is reserved: fault */
  li s0, PG(5)
  CLRTRAP
wo_ld: ld t1, 0(s0)
  CHECK_MTRAP "load from W-only PTE", 13, wo_ld, PG(5)
  CLRTRAP
wo_st: sd t1, 0(s0)
  CHECK_MTRAP "store to W-only PTE", 15, wo_st, PG(5)
  /* execute from an X-only page */
  li t0, PG(6)
  li a0, 0
  jalr ra, 0(t0)
  CHECK "execute from X page", a0, 0x77
  /* fetch from a non-X page */
  CLRTRAP
  RESUME_AT nx_back
  li t0, PG(0)
  jalr ra, 0(t0)
nx_back:
  LDV t0, rt_mcause
  CHECK "fetch from non-X mcause", t0, 12
  LDV t0, rt_mtval
  CHECK "fetch from non-X mtval", t0, PG(0)
  /* misaligned superpages */
  li s0, VA_MISMEGA
  CLRTRAP
mm_ld: ld t1, 0(s0)
  CHECK_MTRAP "misaligned megapage", 13, mm_ld, VA_MISMEGA
  li s0, VA_MISGIGA + 0x1000
  CLRTRAP
mg_ld: ld t1, 0(s0)
  CHECK_MTRAP "misaligned gigapage", 13, mg_ld, VA_MISGIGA + 0x1000
  /* Sv39: VA 0x80_xxxx_xxxx is non-canonical -> fault.
     Sv48: it lies in the 512 GiB page mapping PA 0. */
  la t0, page_a
  li t1, 0x8000000000
  add s0, t0, t1
  CLRTRAP
nc_ld: ld t1, 0(s0)
#ifdef SV48
  CHECK "sv48 512G page load", t1, 0xaaaa000000000001
  LDV t0, rt_mcount
  CHECK "sv48 512G page no trap", t0, 0
#else
  LDV t0, rt_mcause
  CHECK "sv39 non-canonical mcause", t0, 13
  LDV t0, rt_mepc
  CHECKA "sv39 non-canonical mepc", t0, nc_ld
  LDV t0, rt_mtval
  CHECKR "sv39 non-canonical mtval", t0, s0
#endif
  /* upper non-canonical (bit 63 set, bit 47/38 clear) */
  li s0, 0x8000000000001000
  CLRTRAP
nc2_ld: ld t1, 0(s0)
  CHECK_MTRAP "non-canonical high", 13, nc2_ld, 0x8000000000001000
  /* sfence.vma after a PTE change */
  li s0, PG(7)
  ld t1, 0(s0)
  CHECK "pg7 before remap", t1, 0xaaaa000000000001
  la t0, page_b
  SETPTE l0, 7, t0, PTE_V | PTE_R | PTE_A
  sfence.vma s0
  ld t1, 0(s0)
  CHECK "pg7 after remap+sfence.vma va", t1, 0xbbbb000000000002
  la t0, page_u
  SETPTE l0, 7, t0, PTE_V | PTE_R | PTE_A
  sfence.vma
  ld t1, 0(s0)
  CHECK "pg7 after remap+sfence.vma all", t1, 0xcccc000000000003
  /* satp readable in S */
  csrr t0, satp
  srli t0, t0, 60
  CHECK "satp mode from S", t0, SATP_MODE
  li a0, 0x5d
  RET_TO_M

s_deleg:
  li s0, PG(4)
s_deleg_pc: ld t1, 0(s0)
  RET_TO_M

/* ----- pages mapped at other virtual addresses ----- */
  .section .text.xpage, "ax"
  .balign 4096
xpage:
  li a0, 0x77
  ret
  .balign 4096
upage:                         /* U-mode code, runs at PG(8) */
  li t0, PG(3)
  ld s0, 0(t0)
  li t0, PG(0)
  ld t1, 0(t0)                 /* faults: S page */
u_fault_next:
  mv a0, s0
  RET_TO_M
  .balign 4096

  .bss
  .balign 4096
#ifdef SV48
l3: .space 4096
#endif
l2: .space 4096
l1: .space 4096
l0: .space 4096
page_a: .space 4096
page_b: .space 4096
page_u: .space 4096
