/* Misaligned loads and stores of every width (QEMU performs them without a
   trap in user mode; the output shows the resulting values). */
#include "user.h"

TEST_BEGIN misaligned
  la s0, mbuf
  li t0, 0x0706050403020100
  sd t0, 0(s0)
  li t0, 0x0f0e0d0c0b0a0908
  sd t0, 8(s0)
  li t0, 0x8786858483828180
  sd t0, 16(s0)
  .irp off, 1, 3, 5, 7
  lh t1, \off(s0)
  PHEX "lh +\off", t1
  lhu t1, \off(s0)
  PHEX "lhu +\off", t1
  .endr
  .irp off, 1, 2, 3, 5, 6, 7, 13, 15
  lw t1, \off(s0)
  PHEX "lw +\off", t1
  lwu t1, \off(s0)
  PHEX "lwu +\off", t1
  ld t1, \off(s0)
  PHEX "ld +\off", t1
  .endr
  /* stores */
  li t0, 0xa1a2a3a4a5a6a7a8
  sh t0, 1(s0)
  sw t0, 6(s0)
  sd t0, 11(s0)
  ld t1, 0(s0)
  PHEX "after stores 0", t1
  ld t1, 8(s0)
  PHEX "after stores 8", t1
  ld t1, 16(s0)
  PHEX "after stores 16", t1
  /* misaligned FP load/store */
  li t0, 0x400921fb54442d18
  sd t0, 32(s0)
  addi s1, s0, 33
  sd t0, 0(s1)
  fld fa0, 0(s1)
  PHEX "fld +33 (raw via fmv)", t0
  fmv.x.d t1, fa0
  PHEX "fld +33", t1
  flw fa1, 2(s1)
  fmv.x.d t1, fa1
  PHEX "flw +35", t1
  fsd fa0, 43(s0)
  ld t1, 40(s0)
  PHEX "fsd +43 lo", t1
  ld t1, 48(s0)
  PHEX "fsd +43 hi", t1
  /* crossing a page boundary */
  la s1, page2
  addi s1, s1, -3
  li t0, 0x1122334455667788
  sd t0, 0(s1)
  ld t1, 0(s1)
  PHEX "ld across page", t1
  lw t1, 1(s1)
  PHEX "lw across page", t1
  /* compressed loads/stores misaligned */
  addi a0, s0, 1
  c.ld a1, 8(a0)
  PHEX "c.ld +9", a1
  c.lw a1, 4(a0)
  PHEX "c.lw +5", a1
TEST_END
  .data
  .balign 4096
mbuf: .space 4096
page2: .space 64
