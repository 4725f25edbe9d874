/* A bare program for the debugger tests (test/gdb.test.ts): it zeroes every
   register, so tsvisor and QEMU reach `step_here` in the same state whatever
   their boot conventions; warms a function up until tsvisor translates it;
   then `step_here` (on a page of its own, so a breakpoint there does not keep
   the hot code from being translated) calls it, increments the global
   `counter` three times and loads from `pair` for the watchpoint tests. Ends by powering off through
   the SiFive test device. Runs in M- or S-mode, with paging off. */

  .section .text.start, "ax"
  .globl _start
_start:
  .irp r, 1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31
  li x\r, 0
  .endr
  la sp, stack_top
  li s0, 3000
1:call work
  addi s0, s0, -1
  bnez s0, 1b
  li a0, 0
  li a1, 0
  j step_here

  .globl work
work:                       /* a0, a1 <- a mix of a0 and the buffer */
  la t3, buf
  addi a0, a0, 3
  slli a1, a0, 2
  xor a0, a0, a1
  ld t4, 8(t3)
  add t4, t4, a0
  sd t4, 8(t3)
  srli a1, t4, 3
  ret

  .balign 4096
  .globl step_here
step_here:
  li s1, 4
2:call work
  add s2, s2, a0
  mul s3, s2, a1
  addi s1, s1, -1
  bnez s1, 2b
  .globl count_loop
count_loop:
  la t0, counter
  li t1, 3
3:ld t2, 0(t0)
  addi t2, t2, 1
  sd t2, 0(t0)
  addi t1, t1, -1
  bnez t1, 3b
  /* Two loads of `pair` for a read watchpoint on its first 12 bytes: the
     first reads bytes 12..15 (inside the trigger's 16-byte cover, outside the
     range), the second bytes 8..15. Uncompressed, so the test knows the pcs. */
  .option push
  .option norvc
  .globl near_miss
near_miss:
  la t0, pair
  lw t2, 12(t0)
  .globl near_hit
near_hit:
  ld t2, 8(t0)
  .option pop
  .globl done
done:
  li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
4:j 4b

  .data
  .balign 8
  .globl counter
counter: .dword 0
buf: .space 64
  .balign 16
  .globl pair
pair: .dword 0x1111, 0x2222
  .bss
  .balign 16
  .space 4096
stack_top:
