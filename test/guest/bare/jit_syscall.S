/* Translator torture: a hot system-call loop. U-mode makes 100,000 ecalls
   (delegated to S); the S handler computes a result, now and then fences a
   page or everything, and returns with sret, so translated code goes from the
   ecall into the handler and from the sret back to U without the dispatcher.
   Meanwhile the Sstc timer, delegated to S, interrupts U-mode or fires while
   the handler runs with SIE clear: then it is pending at the sret and must be
   taken right after it, before the next U instruction. Only values that do
   not depend on timing are printed. */
#include "bare.h"
#define CSR_STIMECMP 0x14d
#define CSR_MENVCFG  0x30a
#define N      100000
#define PERIOD 1500
#define MAXIRQ 60
#define BACK   99           /* a7 of the ecall that ends the U loop */

TEST_BEGIN jit_syscall
  li t0, 1
  slli t0, t0, 63
  csrs CSR_MENVCFG, t0      /* Sstc */
  li t0, 2
  csrs mcounteren, t0       /* S reads time */
  li t0, 1 << 8
  csrw medeleg, t0          /* ecall from U */
  li t0, 0x20
  csrw mideleg, t0          /* S timer */
  csrs mie, t0
  li a0, MODE_S
  la a1, s_main
  call rt_enter
  csrw mie, zero
  csrw mideleg, zero
  csrw medeleg, zero
  LDV t0, result
  CHECK "ecall loop result", t0, 0x5f8b2716e5153b01
  LDV t0, counts
  CHECK "ecalls handled", t0, N
  LDV t0, counts + 8
  sltu t1, zero, t0
  CHECK "timer interrupts taken >= 1", t1, 1
TEST_END

s_main:
  la t0, s_trap
  csrw stvec, t0
  li t0, 0x20
  csrs sie, t0
  rdtime t1
  addi t1, t1, PERIOD
  csrw CSR_STIMECMP, t1
  la t0, u_loop
  csrw sepc, t0
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  sret
s_back:
  li t0, -1
  csrw CSR_STIMECMP, t0
  la t0, result
  sd s1, 0(t0)
  RET_TO_M

/* S trap handler: keeps every U register but a0 (the ecall's result). */
  .balign 4
s_trap:
  csrw sscratch, t0
  la t0, save
  sd t1, 0(t0)
  sd t2, 8(t0)
  csrr t1, scause
  bltz t1, irq
  li t2, BACK
  beq a7, t2, back
  slli t2, a0, 1
  add a0, a0, t2            /* a0 = 3 a0 + a7 + number of this ecall */
  add a0, a0, a7
  la t1, counts
  ld t2, 0(t1)
  addi t2, t2, 1
  sd t2, 0(t1)
  add a0, a0, t2
  andi t1, t2, 15
  bnez t1, 1f
  sfence.vma a0, zero
1:andi t1, t2, 1023
  bnez t1, 2f
  sfence.vma
2:csrr t1, sepc
  addi t1, t1, 4
  csrw sepc, t1
  j out
irq:
  la t1, counts
  ld t2, 8(t1)
  addi t2, t2, 1
  sd t2, 8(t1)
  li t1, MAXIRQ
  bgeu t2, t1, 3f
  rdtime t1
  addi t1, t1, PERIOD
  csrw CSR_STIMECMP, t1
  j out
3:li t1, -1
  csrw CSR_STIMECMP, t1
out:
  ld t1, 0(t0)
  ld t2, 8(t0)
  csrr t0, sscratch
  sret
back:
  la t1, s_back
  csrw sepc, t1
  li t1, MSTATUS_SPP
  csrs sstatus, t1
  j out

u_loop:
  li s0, N
  li s1, 0
1:andi a7, s0, 7
  mv a0, s0
  ecall
  add s1, s1, a0
  slli t0, s1, 7
  srli t1, s1, 57
  or s1, t0, t1
  addi s0, s0, -1
  bnez s0, 1b
  li a7, BACK
  ecall

  .data
  .balign 8
result: .dword 0
counts: .dword 0, 0
save:   .dword 0, 0
