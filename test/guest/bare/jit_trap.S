/* Translator torture: a fault in the middle of a hot straight-line sequence
   (M-mode access faults at 0x20000).  Iteration s2 = 1, 2, ... N; when
   (s2 & 1023) == 37 the memory access in the middle of the loop body goes to
   0x20000 + 8 * (s2 & 255) instead of table + 8 * (s2 & 255).  The exception
   hook checks, for every fault: mcause, mepc (the faulting instruction),
   mtval, that the registers written before the fault in the same block hold
   their new values (s2, t0, t3, a3) and that those written after it still
   hold the previous iteration's values (s7, s8); then it sets t3 = 0x1000
   and the runtime skips the instruction.  Variants: ld, sd, fld and
   amoadd.d (the last two run through the interpreter inside translated code). */
#include "bare.h"

#define BAD   0x20000
#define CAUSE_AMO 0x57               /* hook: accept 5 or 7 */
#define N     102400               /* > 1M instructions: the loop gets translated */
#define NFAULT 100                 /* s2 = 1024 k + 37 for k = 0..99 */
/* expected checksums (a model of the loops below) */
#define SUM_LD  0x25d4c40
#define SUM_SD  0x9c1a14c60
#define TAB_SD  0xc7c0400
#define SUM_FLD 0x25736d4
#define SUM_AMO 0x50f076e7150
#define TAB_AMO 0x9c19c8be0

/* name, faulting sequence (address in a3), cause; after it: s6 += t3 */
.macro TRAPLOOP name, seq, cause
  call fill_table
  la t0, hv
  sd zero, 0(t0)                   /* faults seen */
  sd zero, 8(t0)                   /* bad faults */
  li t1, \cause
  sd t1, 16(t0)
  la t1, \name\()_pc
  sd t1, 24(t0)
  la s4, table
  li s5, BAD
  li s2, 0
  li s6, 0
  li s7, 0
  li s8, 0xff
  li s9, N
  fmv.d.x ft0, zero
  .balign 64
1:addi s2, s2, 1
  slli t0, s2, 3
  mv t3, t0
  andi t1, s2, 1023
  xori t1, t1, 37
  seqz t1, t1
  andi t2, s2, 255
  slli t2, t2, 3
  add a3, s4, t2
  add a4, s5, t2
  sub a4, a4, a3
  mul a4, a4, t1
  add a3, a3, a4
\name\()_pc:
  \seq
  add s6, s6, t3
  addi s7, s7, 1
  addi s8, s2, 0xff
  blt s2, s9, 1b
  LDV t0, hv
  CHECK "\name: faults", t0, NFAULT
  LDV t0, hv + 8
  CHECK "\name: faults with wrong state", t0, 0
  CHECK "\name: iterations after the access", s7, N
.endm

TEST_BEGIN jit_trap
  csrw medeleg, zero
  li t0, MSTATUS_FS
  csrs mstatus, t0
  la t0, hook
  STV t0, rt_mexc_hook

  TRAPLOOP ld, "ld t3, 0(a3)", 5
  CHECK "ld: checksum", s6, SUM_LD
  TRAPLOOP sd, "sd t0, 0(a3)", 7
  CHECK "sd: checksum", s6, SUM_SD
  call table_sum
  CHECK "sd: table sum", a0, TAB_SD
  TRAPLOOP fld, "fld ft0, 0(a3); fmv.x.d t3, ft0", 5
  CHECK "fld: checksum", s6, SUM_FLD
  TRAPLOOP amo, "amoadd.d t3, t0, (a3)", CAUSE_AMO
  CHECK "amoadd.d: checksum", s6, SUM_AMO
  call table_sum
  CHECK "amoadd.d: table sum", a0, TAB_AMO
  STV zero, rt_mexc_hook
TEST_END

/* table[j] = 3 j + 1, j = 0..255 */
fill_table:
  la t0, table
  li t1, 0
  li t2, 256
1:slli t3, t1, 1
  add t3, t3, t1
  addi t3, t3, 1
  sd t3, 0(t0)
  addi t0, t0, 8
  addi t1, t1, 1
  bne t1, t2, 1b
  ret
table_sum:
  la t0, table
  li t1, 256
  li a0, 0
1:ld t2, 0(t0)
  add a0, a0, t2
  addi t0, t0, 8
  addi t1, t1, -1
  bnez t1, 1b
  ret

/* Exception hook: a0 = mcause, sp = the trap frame (x_r at 8 r). */
#define FR(r) ((r) * 8)(sp)
hook:
  la t0, rt_mcount
  sd zero, 0(t0)                   /* no runaway abort: we expect many */
  la t0, hv
  ld t1, 0(t0)                     /* k = faults before this one */
  addi t2, t1, 1
  sd t2, 0(t0)
  ld t2, 16(t0)
  li t3, CAUSE_AMO
  bne t2, t3, 7f
  addi t3, a0, -5                  /* AMO: spec 7, QEMU 7.2 reports 5 (as in traps_m) */
  andi t3, t3, ~2
  bnez t3, 9f
  j 6f
7:bne a0, t2, 9f                   /* mcause */
6:
  csrr t2, mepc
  ld t3, 24(t0)
  bne t2, t3, 9f                   /* mepc = the faulting instruction */
  li t4, BAD + 8 * 37
  csrr t2, mtval
  bne t2, t4, 9f                   /* mtval = the address */
  ld t2, FR(13)                    /* a3 (written before) */
  bne t2, t4, 9f
  ld t2, FR(18)                    /* s2 (written before) = 1024 k + 37 */
  slli t3, t1, 10
  addi t3, t3, 37
  bne t2, t3, 9f
  slli t3, t2, 3
  ld t4, FR(5)                     /* t0 = 8 s2 (written before) */
  bne t4, t3, 9f
  ld t4, FR(28)                    /* t3 = 8 s2: the faulting access wrote nothing */
  bne t4, t3, 9f
  addi t3, t2, -1
  ld t4, FR(23)                    /* s7 = s2 - 1 (written after: old value) */
  bne t4, t3, 9f
  addi t3, t2, 0xfe
  ld t4, FR(24)                    /* s8 = previous s2 + 0xff (written after) */
  bne t4, t3, 9f
  j 8f
9:ld t2, 8(t0)
  addi t2, t2, 1
  sd t2, 8(t0)
8:li t2, 0x1000
  sd t2, FR(28)                    /* fix-up: t3 = 0x1000 */
  ret

  .data
  .balign 8
hv: .space 32
  .balign 4096
table: .space 2048
