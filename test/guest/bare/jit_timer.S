/* Translator torture: timer interrupts during long hot loops.
   1. M-mode: CLINT mtimecmp armed shortly after the start of a 2M-iteration
      hot loop and re-armed by the handler (at most MAXIRQ times); the loop's
      checksum must be right and >= 1 interrupt must have been taken.
   2. M-mode: a hot loop that only ends when the timer handler sets a flag
      (after exactly 3 interrupts).
   3. S-mode: the same checksum loop with Sstc stimecmp delegated to S.
   Only values that do not depend on timing are printed. */
#include "bare.h"
#define CSR_STIMECMP 0x14d
#define CSR_MENVCFG  0x30a
#define ITER   2000000
#define MAXIRQ 20
#define PERIOD 20000
#define CSUM   0x6f278df7909bc296             /* the checksum loop result (computed offline) */

/* checksum loop over s0 = ITER..1, result in a0; uses s0-s3, t0 */
.macro CSUM_LOOP
  li s0, ITER
  li s1, 0
  li s2, 1
  li s3, 0x9e3779b97f4a7c15
  .balign 16
77:
  mul t0, s0, s3
  xor s1, s1, t0
  add s2, s2, s1
  srli t0, s2, 7
  xor s2, s2, t0
  addi s0, s0, -1
  bnez s0, 77b
  add a0, s1, s2
.endm

TEST_BEGIN jit_timer
  csrw mie, zero
  csrw mideleg, zero
  csrw medeleg, zero
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  la t0, m_hook
  STV t0, rt_mirq_hook
  la t0, s_hook
  STV t0, rt_sirq_hook

  /* 1. checksum loop with M timer interrupts */
  STV zero, nirq
  STV zero, stop_at
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 1000
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  li t0, 0x80
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  CSUM_LOOP
  csrci mstatus, MSTATUS_MIE
  csrw mie, zero
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  CHECK "M loop checksum with timer interrupts", a0, CSUM
  LDV t0, nirq
  sltu t1, zero, t0
  CHECK "M timer interrupts taken >= 1", t1, 1
  li t2, MAXIRQ + 1
  sltu t1, t0, t2
  CHECK "M timer interrupts <= MAXIRQ", t1, 1
  LDV t0, rt_mirqcause
  CHECK "M timer mcause", t0, 0x8000000000000007

  /* 2. a hot loop ended only by the interrupt handler */
  STV zero, nirq
  STV zero, flag
  li t0, 3
  STV t0, stop_at
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 1000
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  li t0, 0x80
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  la t2, flag
  li s1, 0
1:ld t0, 0(t2)
  addi s1, s1, 1
  beqz t0, 1b
  csrci mstatus, MSTATUS_MIE
  csrw mie, zero
  CHECK "poll loop ended by the handler: flag", t0, 1
  LDV t0, nirq
  CHECK "poll loop: interrupts", t0, 3

  /* 3. S-mode loop with the Sstc timer delegated to S */
  li t0, 1
  slli t0, t0, 63
  csrs CSR_MENVCFG, t0
  li t0, 2
  csrs mcounteren, t0
  li t0, 0x20
  csrw mideleg, t0
  csrs mie, t0
  STV zero, nirq
  STV zero, stop_at
  li a0, MODE_S
  la a1, s_loop
  call rt_enter
  CHECK "S loop checksum with stimecmp interrupts", a0, CSUM
  csrw mie, zero
  csrw mideleg, zero
  LDV t0, nirq
  sltu t1, zero, t0
  CHECK "S timer interrupts taken >= 1", t1, 1
  li t2, MAXIRQ + 1
  sltu t1, t0, t2
  CHECK "S timer interrupts <= MAXIRQ", t1, 1
  LDV t0, rt_sirqcause
  CHECK "S timer scause", t0, 0x8000000000000005
TEST_END

s_loop:
  li t0, 0x20
  csrs sie, t0
  rdtime t1
  addi t1, t1, 1000
  csrw CSR_STIMECMP, t1
  csrsi sstatus, MSTATUS_SIE
  CSUM_LOOP
  csrci sstatus, MSTATUS_SIE
  li t0, -1
  csrw CSR_STIMECMP, t0
  RET_TO_M

/* M timer: count; with stop_at != 0, set flag and stop after stop_at
   interrupts; otherwise re-arm until MAXIRQ. (May clobber t0-t6, a0-a7.) */
m_hook:
  la t0, rt_mirqcount
  sd zero, 0(t0)
  la t0, nirq
  ld t1, 0(t0)
  addi t1, t1, 1
  sd t1, 0(t0)
  li t3, CLINT_MTIMECMP
  LDV t2, stop_at
  beqz t2, 1f
  bltu t1, t2, 2f
  li t4, 1
  STV t4, flag
  j 3f
1:li t2, MAXIRQ
  bgeu t1, t2, 3f
2:li t4, CLINT_MTIME
  ld t4, 0(t4)
  li t5, PERIOD
  add t4, t4, t5
  sd t4, 0(t3)
  ret
3:li t4, -1
  sd t4, 0(t3)
  ret

s_hook:
  la t0, nirq
  ld t1, 0(t0)
  addi t1, t1, 1
  sd t1, 0(t0)
  li t2, MAXIRQ
  bgeu t1, t2, 1f
  rdtime t4
  li t5, PERIOD
  add t4, t4, t5
  csrw CSR_STIMECMP, t4
  ret
1:li t4, -1
  csrw CSR_STIMECMP, t4
  ret

  .data
  .balign 8
nirq: .dword 0
stop_at: .dword 0
flag: .dword 0
