/* The workload of bench/triggers.ts: a loop that loads, adds and stores the
   first 2 KiB of a data page, ROUNDS times (about 77 million instructions),
   then powers off through the SiFive test device. The benchmark arms
   hardware breakpoints and watchpoints beside this loop (on bytes and code it
   never touches, on its pages and on others) and measures what the loop pays
   for them. */
#define ROUNDS 50000

  .section .text.start, "ax"
  .globl _start
_start:
  rdtime s2
  la t0, data
  li s0, ROUNDS
outer:
  mv t1, t0
  li t2, 256
inner:
  ld a0, 0(t1)
  add a1, a1, a0
  sd a1, 0(t1)
  addi t1, t1, 8
  addi t2, t2, -1
  bnez t2, inner
  addi s0, s0, -1
  bnez s0, outer
  rdtime s3
  sub s3, s3, s2
  li t0, 0x10000000         /* UART THR */
  li t1, 'T'
  sb t1, 0(t0)
  li t1, '='
  sb t1, 0(t0)
  li t2, 60
2:srl t1, s3, t2
  andi t1, t1, 15
  addi t1, t1, '0'
  li t3, '9'
  ble t1, t3, 3f
  addi t1, t1, 'a' - '9' - 1
3:sb t1, 0(t0)
  addi t2, t2, -4
  bgez t2, 2b
  li t1, '\n'
  sb t1, 0(t0)
  li t0, 0x100000
  li t1, 0x5555
  sw t1, 0(t0)
1:j 1b
  /* Never executed: a hardware breakpoint here leaves the loop's code page without a fetch TLB entry. */
  .globl never_near
never_near:
  j never_near
  /* Never executed, on a page of its own. */
  .balign 4096
  .globl never_far
never_far:
  j never_far

  .data
  .balign 4096
  .globl data
data: .space 4096
  .globl other
other: .space 4096
