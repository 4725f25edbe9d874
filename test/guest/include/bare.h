/* Shared definitions for bare-metal (M-mode entry) guest tests.
   Output: UART ns16550a THR at 0x10000000.  Exit: sifive test device at
   0x100000 (0x5555 pass, (code<<16)|0x3333 fail). */
#ifndef TSV_BARE_H
#define TSV_BARE_H

#define UART_BASE   0x10000000
#define TESTDEV     0x100000
#define CLINT_MSIP  0x2000000
#define CLINT_MTIMECMP 0x2004000
#define CLINT_MTIME 0x200bff8
#define RT_MAGIC    0x7e57       /* a7 value of an ecall meaning "back to M" */

#define MSTATUS_SIE  (1 << 1)
#define MSTATUS_MIE  (1 << 3)
#define MSTATUS_SPIE (1 << 5)
#define MSTATUS_MPIE (1 << 7)
#define MSTATUS_SPP  (1 << 8)
#define MSTATUS_MPP  (3 << 11)
#define MSTATUS_FS   (3 << 13)
#define MSTATUS_MPRV (1 << 17)
#define MSTATUS_SUM  (1 << 18)
#define MSTATUS_MXR  (1 << 19)
#define MSTATUS_TVM  (1 << 20)
#define MSTATUS_TW   (1 << 21)
#define MSTATUS_TSR  (1 << 22)
#define MODE_U 0
#define MODE_S 1
#define MODE_M 3

#define PTE_V (1 << 0)
#define PTE_R (1 << 1)
#define PTE_W (1 << 2)
#define PTE_X (1 << 3)
#define PTE_U (1 << 4)
#define PTE_G (1 << 5)
#define PTE_A (1 << 6)
#define PTE_D (1 << 7)

/* Print a literal string. Preserves all registers. */
.macro PUTS str
  .pushsection .rodata.str, "a"
.Lps\@: .asciz "\str"
  .popsection
  addi sp, sp, -16
  sd a0, 0(sp)
  sd ra, 8(sp)
  la a0, .Lps\@
  call rt_puts
  ld a0, 0(sp)
  ld ra, 8(sp)
  addi sp, sp, 16
.endm

/* Print "label <hex64>\n" (observed value, not checked). */
.macro PHEX label, reg
  .pushsection .rodata.str, "a"
.Lph\@: .asciz "\label"
  .popsection
  addi sp, sp, -32
  sd a0, 0(sp)
  sd a1, 8(sp)
  sd ra, 16(sp)
  mv a1, \reg
  la a0, .Lph\@
  call rt_print_lh
  ld a0, 0(sp)
  ld a1, 8(sp)
  ld ra, 16(sp)
  addi sp, sp, 32
.endm

/* Check reg == expected (immediate/expression): prints
   "PASS label <hex>" or "FAIL label <hex> expected <hex>". */
.macro CHECK label, reg, expected
  .pushsection .rodata.str, "a"
.Lck\@: .asciz "\label"
  .popsection
  addi sp, sp, -32
  sd a0, 0(sp)
  sd a1, 8(sp)
  sd a2, 16(sp)
  sd ra, 24(sp)
  mv a1, \reg
  li a2, \expected
  la a0, .Lck\@
  call rt_check
  ld a0, 0(sp)
  ld a1, 8(sp)
  ld a2, 16(sp)
  ld ra, 24(sp)
  addi sp, sp, 32
.endm

/* Check reg == register/label address expected in reg2. */
.macro CHECKR label, reg, reg2
  .pushsection .rodata.str, "a"
.Lcr\@: .asciz "\label"
  .popsection
  addi sp, sp, -32
  sd a0, 0(sp)
  sd a1, 8(sp)
  sd a2, 16(sp)
  sd ra, 24(sp)
  mv a1, \reg
  mv a2, \reg2
  la a0, .Lcr\@
  call rt_check
  ld a0, 0(sp)
  ld a1, 8(sp)
  ld a2, 16(sp)
  ld ra, 24(sp)
  addi sp, sp, 32
.endm

/* Check that reg equals the address of label sym (uses t6). */
.macro CHECKA label, reg, sym
  addi sp, sp, -16
  sd t6, 0(sp)
  la t6, \sym
  CHECKR "\label", \reg, t6
  ld t6, 0(sp)
  addi sp, sp, 16
.endm

/* reg = 64-bit variable sym */
.macro LDV reg, sym
  la \reg, \sym
  ld \reg, 0(\reg)
.endm
/* variable sym = reg (uses t6) */
.macro STV reg, sym
  la t6, \sym
  sd \reg, 0(t6)
.endm

/* Reset the recorded trap state (M and S). Uses t6. */
.macro CLRTRAP
  la t6, rt_trapvars
  sd zero, 0(t6)
  sd zero, 8(t6)
  sd zero, 16(t6)
  sd zero, 24(t6)
  sd zero, 32(t6)
  sd zero, 40(t6)
  sd zero, 48(t6)
  sd zero, 56(t6)
  sd zero, 64(t6)
  sd zero, 72(t6)
.endm

/* Make the next exception resume at label (M or S handler). Uses t6. */
.macro RESUME_AT lbl
  addi sp, sp, -16
  sd t5, 0(sp)
  la t5, \lbl
  la t6, rt_resume
  sd t5, 0(t6)
  ld t5, 0(sp)
  addi sp, sp, 16
.endm

/* Check the last trap taken into M-mode: cause, epc (label), tval (imm). */
.macro CHECK_MTRAP name, cause, epc_sym, tval
  addi sp, sp, -16
  sd t5, 0(sp)
  LDV t5, rt_mcount
  CHECK "\name mtrap count", t5, 1
  LDV t5, rt_mcause
  CHECK "\name mcause", t5, \cause
  LDV t5, rt_mepc
  CHECKA "\name mepc", t5, \epc_sym
  LDV t5, rt_mtval
  CHECK "\name mtval", t5, \tval
  ld t5, 0(sp)
  addi sp, sp, 16
.endm
/* same, but tval is the address of symbol tsym plus offset toff */
.macro CHECK_MTRAPA name, cause, epc_sym, tsym, toff
  addi sp, sp, -16
  sd t5, 0(sp)
  LDV t5, rt_mcount
  CHECK "\name mtrap count", t5, 1
  LDV t5, rt_mcause
  CHECK "\name mcause", t5, \cause
  LDV t5, rt_mepc
  CHECKA "\name mepc", t5, \epc_sym
  LDV t5, rt_mtval
  addi t5, t5, -(\toff)
  CHECKA "\name mtval", t5, \tsym
  ld t5, 0(sp)
  addi sp, sp, 16
.endm
.macro CHECK_STRAP name, cause, epc_sym, tval
  addi sp, sp, -16
  sd t5, 0(sp)
  LDV t5, rt_scount
  CHECK "\name strap count", t5, 1
  LDV t5, rt_mcount
  CHECK "\name no mtrap", t5, 0
  LDV t5, rt_scause
  CHECK "\name scause", t5, \cause
  LDV t5, rt_sepc
  CHECKA "\name sepc", t5, \epc_sym
  LDV t5, rt_stval
  CHECK "\name stval", t5, \tval
  ld t5, 0(sp)
  addi sp, sp, 16
.endm

/* From S or U mode: return to the M-mode caller of rt_enter, a0 = result. */
.macro RET_TO_M
  li a7, RT_MAGIC
  ecall
.endm

.macro TEST_BEGIN name
  .text
  .globl test_main
test_main:
  PUTS "== \name\n"
.endm
.macro TEST_END
  j rt_finish
.endm

#endif
