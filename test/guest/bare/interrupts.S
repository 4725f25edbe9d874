/* Interrupts: CLINT machine timer and software interrupts, WFI wake-up with
   interrupts globally disabled, priority (MSI before MTI), M interrupts
   taken while in S with MIE=0, supervisor software interrupt via sip.SSIP
   (delegated), S interrupt taken in U with SIE=0, Sstc stimecmp timer
   delegated to S. */
#include "bare.h"
#define CSR_STIMECMP 0x14d
#define CSR_MENVCFG  0x30a

.macro WAIT_IRQ counter, n
  li t4, 0
99:
  LDV t5, \counter
  li t6, \n
  bgeu t5, t6, 98f
  wfi
  addi t4, t4, 1
  li t6, 100000000
  bltu t4, t6, 99b
  PUTS "FAIL timeout waiting for interrupt\n"
  j rt_abort
98:
.endm

TEST_BEGIN interrupts
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

  /* MTIP visible in mip without a trap */
  li t0, CLINT_MTIMECMP
  sd zero, 0(t0)
  csrr t1, mip
  andi t1, t1, 0x80
  CHECK "mip.MTIP when mtime >= mtimecmp", t1, 0x80
  li t1, -1
  sd t1, 0(t0)
  csrr t1, mip
  andi t1, t1, 0x80
  CHECK "mip.MTIP cleared by mtimecmp write", t1, 0
  /* mtime advances */
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  li t3, 10000
1:addi t3, t3, -1
  bnez t3, 1b
  ld t2, 0(t0)
  sltu t3, t1, t2
  CHECK "mtime advances", t3, 1
  /* the time CSR mirrors mtime */
  rdtime t1
  ld t2, 0(t0)
  sltu t3, t2, t1
  CHECK "rdtime <= later mtime", t3, 0

  /* machine timer interrupt */
  call seq_reset
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 1000
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  li t0, 0x80
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_IRQ rt_mirqcount, 1
  csrci mstatus, MSTATUS_MIE
  LDV t0, rt_mirqcause
  CHECK "machine timer mcause", t0, 0x8000000000000007
  LDV t0, rt_mirqcount
  CHECK "machine timer count", t0, 1
  csrw mie, zero

  /* WFI wakes up with MIE=0 when an enabled interrupt is pending; no trap */
  li t0, CLINT_MTIME
  ld t1, 0(t0)
  addi t1, t1, 1000
  li t0, CLINT_MTIMECMP
  sd t1, 0(t0)
  li t0, 0x80
  csrs mie, t0
2:wfi
  csrr t1, mip
  andi t1, t1, 0x80
  beqz t1, 2b
  LDV t0, rt_mirqcount
  CHECK "wfi with MIE=0: no trap", t0, 1
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  csrw mie, zero

  /* machine software interrupt via CLINT msip */
  li t0, CLINT_MSIP
  li t1, 1
  sw t1, 0(t0)
  csrr t1, mip
  andi t1, t1, 0x8
  CHECK "mip.MSIP after msip=1", t1, 0x8
  li t0, 0x8
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_IRQ rt_mirqcount, 2
  csrci mstatus, MSTATUS_MIE
  LDV t0, rt_mirqcause
  CHECK "machine software mcause", t0, 0x8000000000000003
  csrr t1, mip
  andi t1, t1, 0x8
  CHECK "mip.MSIP cleared", t1, 0
  csrw mie, zero

  /* priority: MSI and MTI both pending -> MSI first */
  call seq_reset
  li t0, CLINT_MSIP
  li t1, 1
  sw t1, 0(t0)
  li t0, CLINT_MTIMECMP
  sd zero, 0(t0)
  li t0, 0x88
  csrs mie, t0
  csrsi mstatus, MSTATUS_MIE
  WAIT_IRQ rt_mirqcount, 4
  csrci mstatus, MSTATUS_MIE
  csrw mie, zero
  la t0, seq
  ld t1, 0(t0)
  CHECK "priority first", t1, 0x8000000000000003
  ld t1, 8(t0)
  CHECK "priority second", t1, 0x8000000000000007

  /* masking: mie bit clear -> not taken even with MIE=1 */
  li t0, CLINT_MTIMECMP
  sd zero, 0(t0)
  csrsi mstatus, MSTATUS_MIE
  nop
  nop
  csrci mstatus, MSTATUS_MIE
  LDV t0, rt_mirqcount
  CHECK "masked by mie", t0, 4
  /* M interrupt taken while in S even with mstatus.MIE=0 */
  li t0, 0x80
  csrs mie, t0
  li a0, MODE_S
  la a1, s_spin
  call rt_enter
  LDV t0, rt_mirqcount
  CHECK "M timer taken in S with MIE=0", t0, 5
  LDV t0, rt_mirqcause
  CHECK "M timer from S mcause", t0, 0x8000000000000007
  csrw mie, zero

  /* supervisor software interrupt, delegated */
  li t0, 0x222
  csrw mideleg, t0
  li t0, 0x2
  csrs mie, t0
  li a0, MODE_S
  la a1, s_ssip
  call rt_enter
  CHECK "S saw SSIP", a0, 1
  LDV t0, rt_sirqcause
  CHECK "SSIP scause", t0, 0x8000000000000001
  LDV t0, rt_mirqcount
  CHECK "SSIP not taken in M", t0, 5

  /* S interrupt pending with SIE=0 is taken once in U-mode */
  li a0, MODE_S
  la a1, s_to_u
  call rt_enter
  LDV t0, rt_sirqcount
  CHECK "SSIP taken in U with SIE=0", t0, 2
  LDV t0, rt_sstatus
  csrw mie, zero

  /* Sstc: stimecmp delegated supervisor timer */
  li t0, 1
  slli t0, t0, 63
  csrs CSR_MENVCFG, t0
  csrr t1, CSR_MENVCFG
  srli t1, t1, 63
  CHECK "menvcfg.STCE", t1, 1
  li t0, 2
  csrs mcounteren, t0    /* TM: S may access time and stimecmp */
  li t0, 0x20
  csrs mie, t0
  li a0, MODE_S
  la a1, s_stimer
  call rt_enter
  CHECK "S timer fired", a0, 1
  LDV t0, rt_sirqcause
  CHECK "S timer scause", t0, 0x8000000000000005
  csrr t1, mip
  andi t1, t1, 0x20
  CHECK "mip.STIP clear after stimecmp=-1", t1, 0
  csrw mie, zero
  csrw mideleg, zero
TEST_END

/* ---- hooks (called from the trap handlers, may clobber t0-t6, a0-a7) ---- */
m_hook:
  la t0, seqn
  ld t1, 0(t0)
  slli t2, t1, 3
  la t3, seq
  add t3, t3, t2
  sd a0, 0(t3)
  addi t1, t1, 1
  andi t1, t1, 7
  sd t1, 0(t0)
  slli t0, a0, 1
  srli t0, t0, 1
  li t1, 7
  bne t0, t1, 1f
  li t0, CLINT_MTIMECMP
  li t1, -1
  sd t1, 0(t0)
  ret
1:li t1, 3
  bne t0, t1, 2f
  li t0, CLINT_MSIP
  sw zero, 0(t0)
2:ret

s_hook:
  slli t0, a0, 1
  srli t0, t0, 1
  li t1, 1
  bne t0, t1, 1f
  csrci sip, 2
  ret
1:li t1, 5
  bne t0, t1, 2f
  li t0, -1
  csrw CSR_STIMECMP, t0
2:ret

seq_reset:
  la t0, seqn
  sd zero, 0(t0)
  ret

/* ---- S / U code ---- */
s_spin:                        /* MTIP already pending (mtimecmp=0) */
  li t0, 1000
1:addi t0, t0, -1
  bnez t0, 1b
  RET_TO_M

s_ssip:
  csrsi sie, 2
  csrsi sstatus, MSTATUS_SIE
  csrsi sip, 2
  WAIT_IRQ rt_sirqcount, 1
  csrci sstatus, MSTATUS_SIE
  li a0, 1
  RET_TO_M

s_to_u:
  csrci sstatus, MSTATUS_SIE
  csrsi sip, 2
  nop
  LDV t0, rt_sirqcount
  CHECK "SSIP not taken in S with SIE=0", t0, 1
  li t0, MSTATUS_SPP
  csrc sstatus, t0
  la t0, u_code
  csrw sepc, t0
  sret
u_code:
  nop
  nop
  RET_TO_M

s_stimer:
  li t0, 0x20
  csrs sie, t0
  rdtime t1
  addi t1, t1, 1000
  csrw CSR_STIMECMP, t1
  csrsi sstatus, MSTATUS_SIE
  WAIT_IRQ rt_sirqcount, 3
  csrci sstatus, MSTATUS_SIE
  li a0, 1
  RET_TO_M

  .data
  .balign 8
seqn: .dword 0
seq: .space 64
