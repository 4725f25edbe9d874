/* Physical memory protection: grants and denials for S, U and M (locked)
   accesses with NAPOT, NA4 and TOR entries, lowest entry wins, an access
   must lie wholly inside its entry, no entry matching fails S/U, page-table
   reads are checked as S-mode loads, MPRV uses MPP's rules, and locked
   entries ignore writes. Loops repeat accesses so cached translations (the
   TLB, translated code) are exercised as well as the first, slow access. */
#include "bare.h"

#define CFG_R 0x01
#define CFG_W 0x02
#define CFG_X 0x04
#define CFG_TOR 0x08
#define CFG_NA4 0x10
#define CFG_NAPOT 0x18
#define CFG_L 0x80
#define ALL_ONES54 0x3fffffffffffff
/* pmpaddr of a NAPOT 4 KiB region at reg (aligned): (base >> 2) | 0x1ff */
.macro NAPOT4K dst, base
  srli \dst, \base, 2
  ori \dst, \dst, 0x1ff
.endm

/* Run fn in mode with a2 = argument; expect `trap` traps (0/1) with cause. */
.macro TRY mode, fn, arg, name, trap, cause
  CLRTRAP
  li a0, \mode
  la a1, \fn
  mv a2, \arg
  call rt_enter
  LDV t0, rt_mcount
  CHECK "\name traps", t0, \trap
  .if \trap
  LDV t0, rt_mcause
  CHECK "\name mcause", t0, \cause
  .endif
.endm

/* The mtval of the last M trap must be the address in reg. */
.macro CHECK_TVAL name, reg
  LDV t0, rt_mtval
  CHECKR "\name mtval", t0, \reg
.endm

TEST_BEGIN pmp
  csrw medeleg, zero
  /* Entry 15: the whole address space RWX (lowest priority); entry 0 off. */
  li t0, ALL_ONES54
  csrw pmpaddr15, t0
  li t0, (CFG_NAPOT | CFG_R | CFG_W | CFG_X) << 56
  csrw pmpcfg2, t0
  csrw pmpcfg0, zero
  csrr t0, pmpcfg2
  srli t0, t0, 56
  CHECK "pmp15cfg", t0, 0x1f
  csrr t0, pmpaddr15
  li t1, ALL_ONES54
  CHECKR "pmpaddr15", t0, t1
  csrr t0, pmpcfg0
  CHECK "pmpcfg0 cleared", t0, 0
  /* The odd pmpcfg registers do not exist on RV64. */
  CLRTRAP
  csrr t0, pmpcfg1
  LDV t0, rt_mcount
  CHECK "pmpcfg1 traps", t0, 1
  LDV t0, rt_mcause
  CHECK "pmpcfg1 illegal", t0, 2

  la s1, region            /* 2 pages of data */
  TRY MODE_S, do_load, s1, "S load, entry 15 only", 0, 0
  TRY MODE_U, do_store, s1, "U store, entry 15 only", 0, 0

  /* ---- NAPOT 4 KiB, read only ---- */
  NAPOT4K t0, s1
  csrw pmpaddr0, t0
  li t0, CFG_NAPOT | CFG_R
  csrw pmpcfg0, t0
  csrr t0, pmpaddr0
  NAPOT4K t1, s1
  CHECKR "pmpaddr0 NAPOT", t0, t1
  TRY MODE_S, do_load, s1, "S load NAPOT R", 0, 0
  TRY MODE_S, do_store, s1, "S store NAPOT R", 1, 7
  CHECK_TVAL "S store NAPOT R", s1
  TRY MODE_U, do_load, s1, "U load NAPOT R", 0, 0
  TRY MODE_U, do_store, s1, "U store NAPOT R", 1, 7
  /* the next page is outside the entry: entry 15 allows it */
  li t0, 4096
  add s2, s1, t0
  TRY MODE_S, do_store, s2, "S store next page", 0, 0
  /* an AMO needs write permission too */
  TRY MODE_S, do_amo, s1, "S amoadd NAPOT R", 1, 7
  /* M-mode: unlocked entries do not apply */
  mv a0, s1
  call do_store_m
  CHECK "M store NAPOT R unlocked", zero, 0
  /* MPRV with MPP=S: loads and stores use S-mode's rules */
  CLRTRAP
  RESUME_AT 1f
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  li t0, (MODE_S << 11) | MSTATUS_MPRV
  csrs mstatus, t0
  sd zero, 0(s1)
1:li t0, MSTATUS_MPRV
  csrc mstatus, t0
  li t0, MSTATUS_MPP
  csrs mstatus, t0
  LDV t0, rt_mcount
  CHECK "MPRV S store traps", t0, 1
  LDV t0, rt_mcause
  CHECK "MPRV S store mcause", t0, 7

  /* ---- no execute: code page under NAPOT R ---- */
  la s3, code_page
  NAPOT4K t0, s3
  csrw pmpaddr1, t0
  li t0, (CFG_NAPOT | CFG_R) << 8
  csrs pmpcfg0, t0
  la t0, mexc_regrant
  STV t0, rt_mexc_hook
  TRY MODE_S, code_fn, s1, "S fetch NAPOT R", 1, 1
  LDV t0, rt_mepc
  CHECKA "S fetch NAPOT R mepc", t0, code_fn
  CHECK_TVAL "S fetch NAPOT R", s3
  STV zero, rt_mexc_hook
  li t0, (CFG_NAPOT | CFG_R | CFG_X) << 8
  csrs pmpcfg0, t0
  TRY MODE_U, code_fn, s1, "U fetch NAPOT RX", 0, 0
  csrw pmpcfg0, zero

  /* ---- NA4: one word without permissions, in a read-write page ---- */
  addi s4, s1, 0x100
  srli t0, s4, 2
  csrw pmpaddr0, t0
  NAPOT4K t0, s1
  csrw pmpaddr1, t0
  li t0, CFG_NA4 | ((CFG_NAPOT | CFG_R | CFG_W) << 8)
  csrw pmpcfg0, t0
  TRY MODE_S, do_loadw, s4, "S lw NA4 word", 1, 5
  CHECK_TVAL "S lw NA4 word", s4
  addi a3, s4, 4
  TRY MODE_S, do_loadw, a3, "S lw after NA4 word", 0, 0
  addi a3, s4, -4
  TRY MODE_U, do_loadw, a3, "U lw before NA4 word", 0, 0
  /* 8 bytes of which 4 are in the NA4 entry: a partial match fails */
  TRY MODE_S, do_load, s4, "S ld over NA4 word", 1, 5
  /* the rest of the page keeps working in a hot loop */
  addi a3, s4, 0x200
  TRY MODE_U, loop_loads, a3, "U hot loads beside NA4", 0, 0
  CHECK "U hot loads result", a0, 0
  /* ... and the loop ends on the protected word */
  TRY MODE_U, loop_hit, s4, "U hot loop into NA4", 1, 5
  CHECK_TVAL "U hot loop into NA4", s4
  csrw pmpcfg0, zero

  /* ---- TOR: [region + 0x1000, region + 0x1800) read only ---- */
  li t0, 0x1000
  add s5, s1, t0
  srli t0, s5, 2
  csrw pmpaddr0, t0
  li t0, 0x800
  add t0, s5, t0
  srli t0, t0, 2
  csrw pmpaddr1, t0
  li t0, (CFG_TOR | CFG_R) << 8
  csrw pmpcfg0, t0
  TRY MODE_S, do_store, s5, "S store TOR base", 1, 7
  li t0, 0x7f8
  add a3, s5, t0
  TRY MODE_S, do_store, a3, "S store TOR top-8", 1, 7
  TRY MODE_U, do_load, a3, "U load TOR top-8", 0, 0
  li t0, 0x800
  add a3, s5, t0
  TRY MODE_S, do_store, a3, "S store TOR top", 0, 0
  addi a3, s5, -8
  TRY MODE_U, do_store, a3, "U store below TOR", 0, 0
  /* an empty TOR range (top <= base) matches nothing */
  srli t0, s5, 2
  csrw pmpaddr1, t0
  TRY MODE_S, do_store, s5, "S store empty TOR", 0, 0
  csrw pmpcfg0, zero

  /* ---- lowest entry wins ---- */
  NAPOT4K t0, s1
  csrw pmpaddr0, t0
  csrw pmpaddr1, t0
  li t0, (CFG_NAPOT | CFG_R | CFG_W) | ((CFG_NAPOT | CFG_R) << 8)
  csrw pmpcfg0, t0
  TRY MODE_S, do_store, s1, "S store entry0 RW over entry1 R", 0, 0
  li t0, (CFG_NAPOT | CFG_R) | ((CFG_NAPOT | CFG_R | CFG_W) << 8)
  csrw pmpcfg0, t0
  TRY MODE_S, do_store, s1, "S store entry0 R over entry1 RW", 1, 7
  csrw pmpcfg0, zero

  /* ---- no entry matches: S/U fail, M succeeds. One entry stays active
     elsewhere (an NA4 word): QEMU refuses mret to S/U with no active entry. ---- */
  csrw pmpcfg2, zero
  srli t0, s4, 2
  csrw pmpaddr0, t0
  li t0, CFG_NA4 | CFG_R | CFG_W | CFG_X
  csrw pmpcfg0, t0
  la t0, mexc_regrant
  STV t0, rt_mexc_hook
  TRY MODE_S, code_fn, s1, "S fetch, no matching entry", 1, 1
  LDV t0, rt_mepc
  CHECKA "S fetch, no matching entry mepc", t0, code_fn
  csrw pmpcfg2, zero
  li t0, CFG_NA4 | CFG_R | CFG_W | CFG_X
  csrw pmpcfg0, t0
  TRY MODE_U, code_fn, s1, "U fetch, no matching entry", 1, 1
  STV zero, rt_mexc_hook
  csrw pmpcfg2, zero
  li t0, CFG_NA4 | CFG_R | CFG_W | CFG_X
  csrw pmpcfg0, t0
  mv a0, s1
  call do_store_m
  CHECK "M store, no matching entry", zero, 0

  /* ---- page-table reads are S-mode loads ---- */
  li t0, (CFG_NAPOT | CFG_R | CFG_W | CFG_X) << 56
  csrw pmpcfg2, t0
  call build_page_table
  la s6, root_pt
  NAPOT4K t0, s6
  csrw pmpaddr0, t0
  li t0, CFG_NAPOT
  csrw pmpcfg0, t0
  srli t0, s6, 12
  li t1, 8 << 60
  or t0, t0, t1
  csrw satp, t0
  sfence.vma
  la t0, mexc_regrant
  STV t0, rt_mexc_hook
  TRY MODE_S, code_fn, s1, "S fetch, page table denied", 1, 1
  LDV t0, rt_mepc
  CHECKA "S fetch, page table denied mepc", t0, code_fn
  STV zero, rt_mexc_hook
  li t0, CFG_NAPOT | CFG_R
  csrw pmpcfg0, t0
  TRY MODE_S, do_load, s1, "S load, page table readable", 0, 0
  csrw satp, zero
  sfence.vma
  csrw pmpcfg0, zero

  /* ---- locked entries: apply to M, ignore writes ---- */
  NAPOT4K t0, s1
  csrw pmpaddr0, t0
  li t0, CFG_L | CFG_NAPOT | CFG_R
  csrw pmpcfg0, t0
  CLRTRAP
  RESUME_AT 2f
  sd zero, 0(s1)
2:LDV t0, rt_mcount
  CHECK "M store locked R traps", t0, 1
  LDV t0, rt_mcause
  CHECK "M store locked R mcause", t0, 7
  CHECK_TVAL "M store locked R", s1
  CLRTRAP
  ld t1, 0(s1)
  LDV t0, rt_mcount
  CHECK "M load locked R traps", t0, 0
  csrw pmpcfg0, zero
  csrr t0, pmpcfg0
  CHECK "locked cfg ignores writes", t0, CFG_L | CFG_NAPOT | CFG_R
  csrw pmpaddr0, zero
  csrr t0, pmpaddr0
  NAPOT4K t1, s1
  CHECKR "locked addr ignores writes", t0, t1
  /* other bytes of pmpcfg0 stay writable */
  li t0, (CFG_NAPOT | CFG_R) << 8
  csrs pmpcfg0, t0
  csrr t0, pmpcfg0
  CHECK "unlocked byte writable", t0, ((CFG_NAPOT | CFG_R) << 8) | CFG_L | CFG_NAPOT | CFG_R
  li t0, 0xff << 8
  csrc pmpcfg0, t0
  /* M fetch from a locked entry without X */
  NAPOT4K t0, s3
  csrw pmpaddr2, t0
  li t0, (CFG_L | CFG_NAPOT | CFG_R) << 16
  csrs pmpcfg0, t0
  CLRTRAP
  RESUME_AT 3f
  call code_fn_m
3:LDV t0, rt_mcount
  CHECK "M fetch locked R traps", t0, 1
  LDV t0, rt_mcause
  CHECK "M fetch locked R mcause", t0, 1
  LDV t0, rt_mepc
  CHECKA "M fetch locked R mepc", t0, code_fn_m
  /* a locked TOR entry locks the pmpaddr below it */
  srli t0, s5, 2
  csrw pmpaddr3, t0
  li t0, 0x800
  add t0, s5, t0
  srli t0, t0, 2
  csrw pmpaddr4, t0
  li t0, (CFG_L | CFG_TOR | CFG_R | CFG_W | CFG_X) << 32
  csrs pmpcfg0, t0
  csrw pmpaddr3, zero
  csrr t0, pmpaddr3
  srli t1, s5, 2
  CHECKR "pmpaddr3 below locked TOR", t0, t1
  mv a0, s5
  call do_store_m
  CHECK "M store locked TOR RWX", zero, 0
TEST_END

/* ---- functions run in S or U mode: a0 = address, return a0 ---- */
do_load:
  ld a0, 0(a0)
  RET_TO_M
do_loadw:
  lw a0, 0(a0)
  RET_TO_M
do_store:
  li t0, 0x5a
  sd t0, 0(a0)
  RET_TO_M
do_amo:
  li t0, 1
  amoadd.d t0, t0, (a0)
  RET_TO_M
/* 300 loads from a0 (allowed): returns 0 */
loop_loads:
  li t1, 300
1:ld t2, 0(a0)
  addi t1, t1, -1
  bnez t1, 1b
  li a0, 0
  RET_TO_M
/* 300 loads from a0 + 0x40, then one from a0 */
loop_hit:
  li t1, 300
  addi t3, a0, 0x40
1:ld t2, 0(t3)
  addi t1, t1, -1
  bnez t1, 1b
  lw t2, 0(a0)
  RET_TO_M
/* M-mode helper */
do_store_m:
  li t0, 0x77
  sd t0, 0(a0)
  ret

/* M trap hook: allow everything again (entry 15 RWX, entries 0..7 off), so the
   faulting function continues after the handler skips its first instruction. */
mexc_regrant:
  csrw pmpcfg0, zero
  li t0, (CFG_NAPOT | CFG_R | CFG_W | CFG_X) << 56
  csrw pmpcfg2, t0
  ret

/* Sv39 root table: gigapage identity mappings of 0x0 (devices) and 0x80000000 (RAM), S RWX */
build_page_table:
  la t0, root_pt
  li t1, (0x00000000 >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 0(t0)
  li t1, (0x80000000 >> 12) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D
  sd t1, 16(t0)
  ret

/* A code page of its own (4 KiB aligned, nothing else on it). */
  .section .text.pmpcode, "ax"
  .balign 4096
code_page:
code_fn:
  .option push
  .option norvc
  nop
  .option pop
  li a0, 0
  RET_TO_M
code_fn_m:
  .option push
  .option norvc
  nop
  .option pop
  ret
  .balign 4096

  .bss
  .balign 4096
region: .space 8192
root_pt: .space 4096
