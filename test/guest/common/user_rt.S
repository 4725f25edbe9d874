/* Runtime for user-mode guest tests: entry point and printing helpers. */
#include "user.h"

  .section .text.start, "ax"
  .globl _start
_start:
  la sp, __stack_top
  /* enable nothing special; FP is usable in Linux user mode by default */
  j test_main

  .text
/* rt_write(a0=buf, a1=len): write(1, buf, len). Clobbers a0-a2, a7. */
rt_write:
  mv a2, a1
  mv a1, a0
  li a0, 1
  li a7, SYS_write
  ecall
  ret

/* rt_puts(a0=nul-terminated string). Preserves all registers except none. */
  .globl rt_puts
rt_puts:
  addi sp, sp, -48
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd a1, 16(sp)
  sd a2, 24(sp)
  sd a7, 32(sp)
  sd t0, 40(sp)
  mv t0, a0
1:lbu a1, 0(t0)
  beqz a1, 2f
  addi t0, t0, 1
  j 1b
2:sub a1, t0, a0
  call rt_write
  ld ra, 0(sp)
  ld a0, 8(sp)
  ld a1, 16(sp)
  ld a2, 24(sp)
  ld a7, 32(sp)
  ld t0, 40(sp)
  addi sp, sp, 48
  ret

/* rt_print_lh(a0=label, a1=value): prints "label xxxxxxxxxxxxxxxx\n".
   Preserves all registers. */
  .globl rt_print_lh
rt_print_lh:
  addi sp, sp, -80
  sd ra, 0(sp)
  sd a0, 8(sp)
  sd a1, 16(sp)
  sd a2, 24(sp)
  sd a7, 32(sp)
  sd t0, 40(sp)
  sd t1, 48(sp)
  sd t2, 56(sp)
  call rt_puts
  /* build " " + 16 hex digits + "\n" in a stack buffer (18 bytes at 62(sp)) */
  addi t0, sp, 62
  li t1, ' '
  sb t1, 0(t0)
  li t2, 60
3:srl t1, a1, t2
  andi t1, t1, 15
  addi t1, t1, '0'
  li a2, '9'
  ble t1, a2, 4f
  addi t1, t1, 'a' - '0' - 10
4:addi t0, t0, 1
  sb t1, 0(t0)
  addi t2, t2, -4
  bgez t2, 3b
  li t1, '\n'
  sb t1, 1(t0)
  addi a0, sp, 62
  li a1, 18
  call rt_write
  ld ra, 0(sp)
  ld a0, 8(sp)
  ld a1, 16(sp)
  ld a2, 24(sp)
  ld a7, 32(sp)
  ld t0, 40(sp)
  ld t1, 48(sp)
  ld t2, 56(sp)
  addi sp, sp, 80
  ret

  .bss
  .balign 16
__stack_bottom:
  .space 65536
  .globl __stack_top
__stack_top:
