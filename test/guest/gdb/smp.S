/* A two-hart bare program for the debugger's thread tests
   (test/gdb-smp.test.ts), run with --smp 2 and no firmware: hart 0 starts
   hart 1 through SBI HSM, then counts in s0 forever at `hart0_loop`; hart 1
   enters at `hart1_entry` and calls `hart1_work` (which only it executes)
   forever, storing an increasing count to the global `shared`, which only
   it writes. So a breakpoint on hart1_work or a watchpoint on `shared` can
   only be hit by hart 1 (thread 2). */

  .section .text.start, "ax"
  .globl _start
_start:
  li s0, 0
  li a0, 1                  /* hart_start(1, hart1_entry, 0) */
  la a1, hart1_entry
  li a2, 0
  li a7, 0x48534D
  li a6, 0
  ecall
  .globl hart0_loop
hart0_loop:
  addi s0, s0, 1
  j hart0_loop

  .globl hart1_entry
hart1_entry:
  la t0, shared
  li s1, 0
1:call hart1_work
  j 1b

  .globl hart1_work
hart1_work:
  addi s1, s1, 1
  sd s1, 0(t0)
  ret

  .data
  .balign 8
  .globl shared
shared: .dword 0
