/* Shared macros for user-mode guest tests (Linux syscall ABI: write=64, exit=93).
   Output format: one line per value, "<label> <16 lowercase hex digits>\n". */
#ifndef TSV_USER_H
#define TSV_USER_H

#define SYS_write 64
#define SYS_exit  93

/* Print a literal string (no newline added). Preserves all registers. */
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

/* Print "label <hex64 of reg>\n". Preserves all registers (reg must not be sp). */
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

/* Print the raw 64-bit contents of an FP register. */
.macro PFREG label, freg
  addi sp, sp, -16
  sd t6, 0(sp)
  fmv.x.d t6, \freg
  PHEX "\label", t6
  ld t6, 0(sp)
  addi sp, sp, 16
.endm

/* Print fflags ("label fflags") and clear them. */
.macro PFLAGS label
  addi sp, sp, -16
  sd t6, 0(sp)
  csrr t6, fflags
  PHEX "\label fflags", t6
  csrw fflags, zero
  ld t6, 0(sp)
  addi sp, sp, 16
.endm

/* Terminate with exit(code). */
.macro EXIT code
  li a0, \code
  li a7, SYS_exit
  ecall
.endm

/* Every test program defines test_main; _start (common/user_rt.S) jumps to it
   with sp pointing to a private .bss stack. */
.macro TEST_BEGIN name
  .text
  .globl test_main
test_main:
  PUTS "== \name\n"
.endm

.macro TEST_END
  PUTS "== done\n"
  EXIT 0
.endm

#endif
