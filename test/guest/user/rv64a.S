/* RV64A: lr/sc success/failure and every AMO (.w and .d). */
#include "user.h"

/* amo op on word/dword: mem init, operand; prints old value and new memory */
.macro AMOD op, init, val
  la s0, mem
  li t0, \init
  sd t0, 0(s0)
  li t1, \val
  \op t2, t1, (s0)
  PHEX "\op \init \val old", t2
  ld t3, 0(s0)
  PHEX "\op \init \val mem", t3
.endm
.macro AMOW op, init, val
  la s0, mem
  li t0, 0x5a5a5a5a5a5a5a5a
  sd t0, 0(s0)
  li t0, \init
  sw t0, 0(s0)
  li t1, \val
  \op t2, t1, (s0)
  PHEX "\op \init \val old", t2
  ld t3, 0(s0)
  PHEX "\op \init \val mem", t3
.endm
.macro BOTH init64, init32, val
  AMOD amoswap.d, \init64, \val
  AMOD amoadd.d, \init64, \val
  AMOD amoand.d, \init64, \val
  AMOD amoor.d, \init64, \val
  AMOD amoxor.d, \init64, \val
  AMOD amomin.d, \init64, \val
  AMOD amomax.d, \init64, \val
  AMOD amominu.d, \init64, \val
  AMOD amomaxu.d, \init64, \val
  AMOW amoswap.w, \init32, \val
  AMOW amoadd.w, \init32, \val
  AMOW amoand.w, \init32, \val
  AMOW amoor.w, \init32, \val
  AMOW amoxor.w, \init32, \val
  AMOW amomin.w, \init32, \val
  AMOW amomax.w, \init32, \val
  AMOW amominu.w, \init32, \val
  AMOW amomaxu.w, \init32, \val
.endm

TEST_BEGIN rv64a
  BOTH 0x8000000000000001, 0x80000001, 1
  BOTH 0x0000000000000005, 0x00000005, -3
  BOTH 0xfffffffffffffffe, 0xfffffffe, 0x7fffffff
  BOTH 0x123456789abcdef0, 0x9abcdef0, 0x0f0f0f0f0f0f0f0f
  BOTH 0x7fffffffffffffff, 0x7fffffff, 0xffffffff80000000
  /* ordering suffixes assemble and behave the same */
  AMOD amoadd.d.aq, 1, 2
  AMOD amoadd.d.rl, 1, 2
  AMOD amoadd.d.aqrl, 1, 2
  AMOW amoswap.w.aqrl, 0xffffffff, 0
  /* rd = x0 */
  la s0, mem
  li t0, 10
  sd t0, 0(s0)
  li t1, 5
  amoadd.d zero, t1, (s0)
  ld t2, 0(s0)
  PHEX "amoadd rd=x0 mem", t2

  /* lr/sc success */
  la s0, mem
  li t0, 0x1111
  sd t0, 0(s0)
  lr.d t1, (s0)
  addi t1, t1, 1
  sc.d t2, t1, (s0)
  PHEX "sc.d success rc", t2
  ld t3, 0(s0)
  PHEX "sc.d success mem", t3
  /* sc without reservation (after successful sc): must fail */
  li t1, 0x2222
  sc.d t2, t1, (s0)
  snez t2, t2
  PHEX "sc.d no-reservation failed", t2
  ld t3, 0(s0)
  PHEX "sc.d no-reservation mem", t3
  /* lr.w sign-extension and sc.w */
  li t0, 0xffffffff87654321
  sw t0, 0(s0)
  lr.w t1, (s0)
  PHEX "lr.w value", t1
  li t1, 0x7777
  sc.w t2, t1, (s0)
  PHEX "sc.w success rc", t2
  ld t3, 0(s0)
  PHEX "sc.w mem", t3
  /* retry loop idiom (cas) */
  li t4, 0x7777
  li t5, 0xabcd
1:lr.w.aq t1, (s0)
  bne t1, t4, 2f
  sc.w.rl t2, t5, (s0)
  bnez t2, 1b
2:lw t3, 0(s0)
  PHEX "cas result", t3
  /* sc to a different address than lr: spec allows failure; only check memory
     consistency by reading back */
  la s1, mem2
  lr.d t1, (s0)
  sc.d t2, t1, (s0)
  PHEX "lr.d/sc.d same value rc", t2
TEST_END

  .data
  .balign 16
mem:  .dword 0, 0
mem2: .dword 0, 0
