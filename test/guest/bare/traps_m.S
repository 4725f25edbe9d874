/* M-mode exceptions: illegal instruction (several kinds), ecall, ebreak,
   access faults on unmapped addresses, misaligned AMO / LR, jalr bit 0,
   misaligned loads/stores (performed without trap, as QEMU does), mret
   MPP/MPIE handling. */
#include "bare.h"

TEST_BEGIN traps_m
  /* enable FP first */
  li t0, MSTATUS_FS
  csrs mstatus, t0

  CLRTRAP
ill0: .hword 0x0000             /* all-zero 16-bit: c.illegal */
  CHECK_MTRAP "illegal 0x0000", 2, ill0, 0
  CLRTRAP
ill1: .word 0xfe000033          /* OP with funct7=0x7f: reserved */
  CHECK_MTRAP "illegal op funct7", 2, ill1, 0xfe000033
  CLRTRAP
ill2: .word 0xffffffff          /* >32-bit encoding space */
  LDV t0, rt_mcause
  CHECK "illegal 0xffffffff mcause", t0, 2
  LDV t0, rt_mepc
  CHECKA "illegal 0xffffffff mepc", t0, ill2
  LDV t0, rt_mtval
  PHEX "illegal 0xffffffff mtval", t0
  CLRTRAP
ill3: csrr t0, 0x7ff            /* nonexistent CSR (custom space, not implemented) */
  CHECK_MTRAP "illegal csr 0x7ff", 2, ill3, 0x7ff022f3
  CLRTRAP
ill4: csrw mvendorid, zero      /* write to read-only CSR */
  CHECK_MTRAP "write read-only csr", 2, ill4, 0xf1101073
  CLRTRAP
  .option push
  .option norvc
  /* FP instruction with mstatus.FS = 0 */
  li t0, MSTATUS_FS
  csrc mstatus, t0
  CLRTRAP
ill6: fadd.d ft0, ft1, ft2
  CHECK_MTRAP "fp with FS=0", 2, ill6, 0x0220f053
  CLRTRAP
ill7: csrr t1, fcsr
  CHECK_MTRAP "fcsr with FS=0", 2, ill7, 0x00302373
  li t0, MSTATUS_FS
  csrs mstatus, t0
  csrr t1, fcsr
  CHECK "fcsr with FS!=0 no trap", t1, 0
  .option pop

  /* ecall from M */
  CLRTRAP
ec0: ecall
  CHECK_MTRAP "ecall M", 11, ec0, 0
  LDV t0, rt_mstatus
  srli t0, t0, 11
  andi t0, t0, 3
  CHECK "ecall M mpp", t0, 3

  /* ebreak and c.ebreak */
  CLRTRAP
  .option push
  .option norvc
eb0: ebreak
  .option pop
  LDV t0, rt_mcause
  CHECK "ebreak mcause", t0, 3
  LDV t0, rt_mepc
  CHECKA "ebreak mepc", t0, eb0
  LDV t0, rt_mtval
  PHEX "ebreak mtval", t0
  CLRTRAP
eb1: c.ebreak
  LDV t0, rt_mcause
  CHECK "c.ebreak mcause", t0, 3
  LDV t0, rt_mepc
  CHECKA "c.ebreak mepc", t0, eb1

  /* access faults on an address unmapped in both QEMU virt and tsvisor */
  li s0, 0x20000
  CLRTRAP
af0: ld t0, 0(s0)
  CHECK_MTRAP "load access fault", 5, af0, 0x20000
  CLRTRAP
af1: sw t0, 8(s0)
  CHECK_MTRAP "store access fault", 7, af1, 0x20008
  CLRTRAP
af2: amoadd.w t0, t0, (s0)
  /* spec: store/AMO access fault (7); QEMU 7.2 reports 5. Accept both. */
  LDV t0, rt_mcause
  addi t0, t0, -5
  andi t0, t0, ~2
  CHECK "amo access fault cause 5 or 7", t0, 0
  LDV t0, rt_mtval
  CHECK "amo access fault mtval", t0, 0x20000
  CLRTRAP
  RESUME_AT af3
  jalr ra, 0(s0)
af3:
  LDV t0, rt_mcause
  CHECK "fetch access fault mcause", t0, 1
  LDV t0, rt_mepc
  CHECK "fetch access fault mepc", t0, 0x20000
  LDV t0, rt_mtval
  CHECK "fetch access fault mtval", t0, 0x20000
  /* beyond the end of QEMU's 128 MiB is not checked (RAM size differs) */

  /* misaligned AMO: store/AMO address misaligned (6) */
  la s0, data
  addi s1, s0, 2
  CLRTRAP
ma0: amoadd.w t0, t1, (s1)
  /* spec: 6 (or access fault); QEMU 7.2 reports 4. Accept 4 or 6. */
  LDV t0, rt_mcause
  addi t0, t0, -4
  andi t0, t0, ~2
  CHECK "misaligned amo.w cause 4 or 6", t0, 0
  LDV t0, rt_mepc
  CHECKA "misaligned amo.w mepc", t0, ma0
  LDV t0, rt_mtval
  addi t0, t0, -2
  CHECKA "misaligned amo.w mtval", t0, data
  addi s1, s0, 4
  CLRTRAP
ma1: amoswap.d t0, t1, (s1)
  /* spec: 6 (or access fault); QEMU 7.2 reports 4. Accept 4 or 6. */
  LDV t0, rt_mcause
  addi t0, t0, -4
  andi t0, t0, ~2
  CHECK "misaligned amo.d cause 4 or 6", t0, 0
  LDV t0, rt_mepc
  CHECKA "misaligned amo.d mepc", t0, ma1
  LDV t0, rt_mtval
  addi t0, t0, -4
  CHECKA "misaligned amo.d mtval", t0, data
  CLRTRAP
ma3: lr.w t0, (s1)             /* aligned for .w: fine */
  LDV t0, rt_mcount
  CHECK "aligned lr.w no trap", t0, 0
  addi s1, s0, 1
  CLRTRAP
ma4: lr.w t0, (s1)
  /* spec allows address-misaligned or access fault; QEMU: 4 */
  LDV t0, rt_mcause
  CHECK "misaligned lr.w mcause", t0, 4
  LDV t0, rt_mtval
  addi t0, t0, -1
  CHECKA "misaligned lr.w mtval", t0, data

  /* misaligned regular loads/stores: QEMU performs them, no trap */
  li t0, 0x8877665544332211
  sd t0, 0(s0)
  li t0, 0xffeeddccbbaa9988
  sd t0, 8(s0)
  CLRTRAP
  ld t1, 3(s0)
  CHECK "misaligned ld", t1, 0xaa99888877665544
  lw t1, 1(s0)
  CHECK "misaligned lw", t1, 0x55443322
  lhu t1, 7(s0)
  CHECK "misaligned lhu", t1, 0x8888
  li t2, 0x0102030405060708
  sd t2, 5(s0)
  ld t1, 0(s0)
  CHECK "misaligned sd lo", t1, 0x0607085544332211
  LDV t0, rt_mcount
  CHECK "misaligned ld/st no trap", t0, 0

  /* jalr clears bit 0 (no misaligned fetch with C) */
  CLRTRAP
  la t0, jt
  addi t0, t0, 1
  li a0, 0
  jalr ra, 0(t0)
  j jt_after
  .balign 4
jt: li a0, 0x600d
  ret
jt_after:
  CHECK "jalr odd target", a0, 0x600d
  LDV t0, rt_mcount
  CHECK "jalr odd no trap", t0, 0
  /* 2-byte aligned target is fine with C */
  la t0, jt2
  jalr ra, 0(t0)
  j jt2_after
  .balign 4
  c.nop
jt2: li a0, 0x2222
  ret
jt2_after:
  CHECK "jalr 2-aligned target", a0, 0x2222

  /* mret to M: MIE = MPIE, MPIE = 1, MPP = U (least privileged) */
  li t0, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP
  csrc mstatus, t0
  li t0, MSTATUS_MPP     /* MPP = M, MPIE = 0 */
  csrs mstatus, t0
  la t0, mr1
  csrw mepc, t0
  mret
  .balign 4
mr1:
  csrr t0, mstatus
  li t1, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP
  and t0, t0, t1
  CHECK "mret to M (MPIE=0)", t0, MSTATUS_MPIE
  /* MPIE = 1 -> MIE becomes 1 (no interrupts enabled in mie) */
  li t0, MSTATUS_MPP | MSTATUS_MPIE
  csrs mstatus, t0
  la t0, mr2
  csrw mepc, t0
  mret
mr2:
  csrr t0, mstatus
  li t1, MSTATUS_MIE | MSTATUS_MPIE | MSTATUS_MPP
  and t0, t0, t1
  CHECK "mret to M (MPIE=1)", t0, MSTATUS_MPIE | MSTATUS_MIE
  csrci mstatus, MSTATUS_MIE

  /* mepc low bit is cleared (IALIGN=16) */
  li t0, 0x80001235
  csrw mepc, t0
  csrr t0, mepc           /* spec: bit 0 reads 0; QEMU 7.2 keeps it */
  andi t0, t0, -2
  CHECK "mepc write/read", t0, 0x80001234

  /* mtvec: direct mode, check written value */
  csrr t0, mtvec
  CHECKA "mtvec", t0, rt_mtrap
  /* mscratch full width */
  csrr s2, mscratch
  li t0, 0xdeadbeefcafef00d
  csrw mscratch, t0
  csrr t1, mscratch
  CHECK "mscratch", t1, 0xdeadbeefcafef00d
  csrw mscratch, s2
  /* misa: RV64 with I M A F D C S U present */
  csrr t0, misa
  srli t1, t0, 62
  CHECK "misa mxl", t1, 2
  li t1, 0x141129          /* A C D F I M S U */
  and t0, t0, t1
  CHECK "misa IMAFDCSU", t0, 0x141129
  /* LR/SC: success without a trap; failure when the trap handler executes a
     dummy SC (xRET alone is allowed, not required, to clear the reservation) */
  la s0, data
  sd zero, 32(s0)
  addi s1, s0, 32
  lr.d t0, (s1)
  li t1, 5
  sc.d t2, t1, (s1)
  CHECK "sc.d without trap", t2, 0
  la t0, dummy_sc_hook
  STV t0, rt_mexc_hook
  CLRTRAP
  lr.d t0, (s1)
  ecall
  li t1, 6
  sc.d t2, t1, (s1)
  snez t2, t2
  CHECK "sc.d after trap with dummy sc fails", t2, 1
  ld t1, 0(s1)
  CHECK "sc.d failed: memory unchanged", t1, 5
  STV zero, rt_mexc_hook
  /* mhartid = 0 */
  csrr t0, mhartid
  CHECK "mhartid", t0, 0
TEST_END

dummy_sc_hook:
  la t0, scratch
  sc.d t1, zero, (t0)
  ret

  .data
  .balign 16
data: .space 64
scratch: .dword 0
