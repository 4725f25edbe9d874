/* Runtime for bare-metal guest tests: M-mode entry, UART output, check
   bookkeeping, M and S trap handlers and privilege switching helpers. */
#include "bare.h"

#define FRAME 264   /* 32 regs + alignment */

  .section .text.start, "ax"
  .globl _start
_start:
  csrw mie, zero
  la sp, __stack_top
  la t0, __mtrap_stack_top
  csrw mscratch, t0
  la t0, __strap_stack_top
  csrw sscratch, t0
  /* PMP entry 0: NAPOT over the whole address space, RWX, so S/U-mode
     accesses are allowed (QEMU implements PMP; without an entry S/U
     accesses fault).  The trap vector catches this if PMP is absent. */
  la t0, 1f
  csrw mtvec, t0
  li t0, -1
  csrw pmpaddr0, t0
  li t0, 0x1f
  csrw pmpcfg0, t0
  .balign 4
1:la t0, rt_mtrap
  csrw mtvec, t0
  la t0, rt_strap
  csrw stvec, t0
  j test_main

  .text
/* ---- output ---- */
  .globl rt_putc
rt_putc:                    /* a0 = byte; clobbers t0,t1 */
  li t0, UART_BASE
1:lbu t1, 5(t0)
  andi t1, t1, 0x20
  beqz t1, 1b
  sb a0, 0(t0)
  ret

  .globl rt_puts
rt_puts:                    /* a0 = string; preserves all */
  addi sp, sp, -32
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd t0, 16(sp)
  sd t1, 24(sp)
  addi sp, sp, -16
  sd s0, 0(sp)
  mv s0, a0
2:lbu a0, 0(s0)
  beqz a0, 3f
  call rt_putc
  addi s0, s0, 1
  j 2b
3:ld s0, 0(sp)
  addi sp, sp, 16
  ld ra, 0(sp)
  ld a0, 8(sp)
  ld t0, 16(sp)
  ld t1, 24(sp)
  addi sp, sp, 32
  ret

rt_puthex:                  /* a1 = value, prints 16 digits; preserves all */
  addi sp, sp, -48
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd t0, 16(sp)
  sd t1, 24(sp)
  sd t2, 32(sp)
  li t2, 60
4:srl a0, a1, t2
  andi a0, a0, 15
  addi a0, a0, '0'
  li t0, '9'
  ble a0, t0, 5f
  addi a0, a0, 'a' - '0' - 10
5:call rt_putc
  addi t2, t2, -4
  bgez t2, 4b
  ld ra, 0(sp)
  ld a0, 8(sp)
  ld t0, 16(sp)
  ld t1, 24(sp)
  ld t2, 32(sp)
  addi sp, sp, 48
  ret

  .globl rt_print_lh
rt_print_lh:                /* a0 = label, a1 = value; preserves all */
  addi sp, sp, -32
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd t0, 16(sp)
  sd t1, 24(sp)
  call rt_puts
  li a0, ' '
  call rt_putc
  call rt_puthex
  li a0, '\n'
  call rt_putc
  ld ra, 0(sp)
  ld a0, 8(sp)
  ld t0, 16(sp)
  ld t1, 24(sp)
  addi sp, sp, 32
  ret

  .globl rt_check
rt_check:                   /* a0 = label, a1 = got, a2 = expected */
  addi sp, sp, -32
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd t0, 16(sp)
  sd t1, 24(sp)
  bne a1, a2, 6f
  la a0, str_pass
  call rt_puts
  ld a0, 8(sp)
  call rt_print_lh
  j 7f
6:la t0, rt_failcount
  ld t1, 0(t0)
  addi t1, t1, 1
  sd t1, 0(t0)
  la a0, str_fail
  call rt_puts
  ld a0, 8(sp)
  call rt_puts
  li a0, ' '
  call rt_putc
  call rt_puthex
  la a0, str_expected
  call rt_puts
  mv t0, a1
  mv a1, a2
  call rt_puthex
  mv a1, t0
  li a0, '\n'
  call rt_putc
7:ld ra, 0(sp)
  ld a0, 8(sp)
  ld t0, 16(sp)
  ld t1, 24(sp)
  addi sp, sp, 32
  ret

/* ---- end of test (M-mode) ---- */
  .globl rt_finish
rt_finish:
  LDV t0, rt_failcount
  bnez t0, 8f
  PUTS "== ALL PASS\n"
  li t1, 0x5555
  j 9f
8:PUTS "== SOME CHECKS FAILED\n"
  PHEX "failures", t0
  slli t1, t0, 16
  li t2, 0x3333
  or t1, t1, t2
9:li t0, TESTDEV
  sw t1, 0(t0)
10:wfi
  j 10b

  .globl rt_abort
rt_abort:                   /* unexpected situation: fail immediately */
  PUTS "FAIL abort\n"
  li t1, 0xff3333
  li t0, TESTDEV
  sw t1, 0(t0)
  j 10b

/* ---- privilege switching ----
   rt_enter(a0 = mode (0=U, 1=S), a1 = entry, a2 = argument): runs entry in
   the given mode with a0 = argument and returns (in M-mode) the a0 given to
   RET_TO_M.  Callee-saved registers, sp, ra are preserved. */
  .globl rt_enter
rt_enter:
  la t0, rt_ctx
  sd ra, 0(t0)
  sd sp, 8(t0)
  sd s0, 16(t0)
  sd s1, 24(t0)
  sd s2, 32(t0)
  sd s3, 40(t0)
  sd s4, 48(t0)
  sd s5, 56(t0)
  sd s6, 64(t0)
  sd s7, 72(t0)
  sd s8, 80(t0)
  sd s9, 88(t0)
  sd s10, 96(t0)
  sd s11, 104(t0)
  li t0, MSTATUS_MPP
  csrc mstatus, t0
  slli t1, a0, 11
  csrs mstatus, t1
  csrw mepc, a1
  mv a0, a2
  mret

/* ---- M-mode trap handler ---- */
  .balign 4
  .globl rt_mtrap
rt_mtrap:
  csrrw sp, mscratch, sp
  addi sp, sp, -FRAME
  .irp r, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
  sd x\r, (\r * 8)(sp)
  .endr
  csrr t0, mcause
  bltz t0, 20f
  /* ecall with magic a7 from U/S: return to rt_enter caller (not recorded) */
  li t1, 8
  beq t0, t1, 12f
  li t1, 9
  beq t0, t1, 12f
  j 13f
12:ld t2, (17 * 8)(sp)
  li t1, RT_MAGIC
  bne t2, t1, 13f
  ld a0, (10 * 8)(sp)
  la t0, __mtrap_stack_top
  csrw mscratch, t0
  la t0, rt_ctx
  ld ra, 0(t0)
  ld sp, 8(t0)
  ld s0, 16(t0)
  ld s1, 24(t0)
  ld s2, 32(t0)
  ld s3, 40(t0)
  ld s4, 48(t0)
  ld s5, 56(t0)
  ld s6, 64(t0)
  ld s7, 72(t0)
  ld s8, 80(t0)
  ld s9, 88(t0)
  ld s10, 96(t0)
  ld s11, 104(t0)
  li t0, MSTATUS_MPP     /* leave MPP = M */
  csrs mstatus, t0
  ret
13:
  /* exception: record */
  la t1, rt_trapvars
  ld t2, 0(t1)
  addi t2, t2, 1
  sd t2, 0(t1)           /* rt_mcount */
  sd t0, 8(t1)           /* rt_mcause */
  csrr t2, mepc
  sd t2, 16(t1)          /* rt_mepc */
  csrr t2, mtval
  sd t2, 24(t1)          /* rt_mtval */
  csrr t2, mstatus
  sd t2, 32(t1)          /* rt_mstatus */
  /* runaway protection */
  ld t2, 0(t1)
  li t3, 64
  bgeu t2, t3, rt_abort
  /* optional hook */
  LDV t3, rt_mexc_hook
  beqz t3, 11f
  mv a0, t0
  jalr t3
  csrr t0, mcause
11:
  /* resume address or skip the instruction */
  la t1, rt_resume
  ld t2, 0(t1)
  beqz t2, 14f
  sd zero, 0(t1)
  csrw mepc, t2
  j 30f
14:csrr t2, mepc
  lhu t3, 0(t2)
  andi t3, t3, 3
  li t4, 3
  addi t2, t2, 2
  bne t3, t4, 15f
  addi t2, t2, 2
15:csrw mepc, t2
  j 30f
20:
  /* interrupt */
  la t1, rt_trapvars
  ld t2, 80(t1)
  addi t2, t2, 1
  sd t2, 80(t1)          /* rt_mirqcount */
  sd t0, 88(t1)          /* rt_mirqcause */
  li t3, 1000
  bgeu t2, t3, rt_abort
  LDV t3, rt_mirq_hook
  beqz t3, rt_abort
  mv a0, t0
  jalr t3
30:
  .irp r, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
  ld x\r, (\r * 8)(sp)
  .endr
  addi sp, sp, FRAME
  csrrw sp, mscratch, sp
  mret

/* ---- S-mode trap handler (for delegated traps) ---- */
  .balign 4
  .globl rt_strap
rt_strap:
  csrrw sp, sscratch, sp
  addi sp, sp, -FRAME
  .irp r, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
  sd x\r, (\r * 8)(sp)
  .endr
  csrr t0, scause
  bltz t0, 50f
  /* delegated ecall from U with magic: forward to M (not recorded) */
  li t1, 8
  bne t0, t1, 41f
  ld t2, (17 * 8)(sp)
  li t1, RT_MAGIC
  bne t2, t1, 41f
  la t0, __strap_stack_top
  csrw sscratch, t0
  ld a0, (10 * 8)(sp)
  li a7, RT_MAGIC
  ecall                  /* never returns */
41:
  la t1, rt_trapvars
  ld t2, 40(t1)
  addi t2, t2, 1
  sd t2, 40(t1)          /* rt_scount */
  sd t0, 48(t1)          /* rt_scause */
  csrr t2, sepc
  sd t2, 56(t1)          /* rt_sepc */
  csrr t2, stval
  sd t2, 64(t1)          /* rt_stval */
  csrr t2, sstatus
  sd t2, 72(t1)          /* rt_sstatus */
  ld t2, 40(t1)
  li t3, 64
  bgeu t2, t3, 45f
42:
  la t1, rt_resume
  ld t2, 0(t1)
  beqz t2, 43f
  sd zero, 0(t1)
  csrw sepc, t2
  j 60f
43:csrr t2, sepc
  lhu t3, 0(t2)
  andi t3, t3, 3
  li t4, 3
  addi t2, t2, 2
  bne t3, t4, 44f
  addi t2, t2, 2
44:csrw sepc, t2
  j 60f
45:j rt_abort             /* runaway or unexpected interrupt */
50:
  la t1, rt_trapvars
  ld t2, 96(t1)
  addi t2, t2, 1
  sd t2, 96(t1)          /* rt_sirqcount */
  sd t0, 104(t1)         /* rt_sirqcause */
  LDV t3, rt_sirq_hook
  beqz t3, 45b
  mv a0, t0
  jalr t3
60:
  .irp r, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31
  ld x\r, (\r * 8)(sp)
  .endr
  addi sp, sp, FRAME
  csrrw sp, sscratch, sp
  sret

  .section .rodata.str, "a"
str_pass: .asciz "PASS "
str_fail: .asciz "FAIL "
str_expected: .asciz " expected "

  .data
  .balign 8
  .globl rt_trapvars, rt_mcount, rt_mcause, rt_mepc, rt_mtval, rt_mstatus
  .globl rt_scount, rt_scause, rt_sepc, rt_stval, rt_sstatus
  .globl rt_mirqcount, rt_mirqcause, rt_sirqcount, rt_sirqcause
rt_trapvars:
rt_mcount:   .dword 0
rt_mcause:   .dword 0
rt_mepc:     .dword 0
rt_mtval:    .dword 0
rt_mstatus:  .dword 0
rt_scount:   .dword 0
rt_scause:   .dword 0
rt_sepc:     .dword 0
rt_stval:    .dword 0
rt_sstatus:  .dword 0
rt_mirqcount: .dword 0
rt_mirqcause: .dword 0
rt_sirqcount: .dword 0
rt_sirqcause: .dword 0
  .globl rt_resume, rt_mirq_hook, rt_sirq_hook, rt_mexc_hook, rt_failcount
rt_resume:   .dword 0
rt_mirq_hook: .dword 0
rt_sirq_hook: .dword 0
rt_mexc_hook: .dword 0
rt_failcount: .dword 0
rt_ctx: .space 8 * 14

  .bss
  .balign 16
  .space 16384
  .globl __stack_top
__stack_top:
  .space 8192
__mtrap_stack_top:
  .space 8192
__strap_stack_top:
