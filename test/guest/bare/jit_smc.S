/* Translator torture: self-modifying code (M-mode, no paging).
   Every hot phase runs more than a million instructions, so it crosses a
   slice boundary of the emulator and its code gets translated; then the code
   is rewritten (store + fence.i) and the new behaviour must be seen.
   - a hot function whose `addi a0, a0, imm` is rewritten, then rewritten
     with many values in a hot loop (sw, sb, amoswap.w, fsw)
   - fresh copies of a function: each one made hot, then rewritten
   - a compressed `c.addi` rewritten with sh
   - a function that writes the instruction at (store pc + 8) and executes it
   - a hot loop that rewrites one of its own instructions every iteration
   - a hot loop whose data lives in its own code page */
#include "bare.h"

#define ADDI_A0   0x00050513          /* addi a0, a0, 0 */
#define RET_INSN  0x00008067          /* jalr x0, 0(ra) */
#define CADDI_A0  0x0501              /* c.addi a0, 0 (imm bits 12, 6:2) */
#define CJR_RA    0x8082              /* c.jr ra */
#define HOT       200000              /* calls in a hot phase (> 1M insns) */

/* call fn (register) n times with a0 = 0, s1 = sum of results */
.macro HOTCALL fnreg, n
  li s0, \n
  li s1, 0
91:
  li a0, 0
  jalr \fnreg
  add s1, s1, a0
  addi s0, s0, -1
  bnez s0, 91b
.endm

TEST_BEGIN jit_smc
  csrw medeleg, zero
  li t0, MSTATUS_FS
  csrs mstatus, t0

  /* ---- 1. hot function, one rewrite ---- */
  la s2, f_inc
  HOTCALL s2, HOT
  CHECK "hot f_inc sum", s1, HOT
  li t0, ADDI_A0 | (5 << 20)
  sw t0, 0(s2)
  fence.i
  li a0, 100
  jalr s2
  CHECK "f_inc after rewrite to +5", a0, 105
  HOTCALL s2, HOT
  CHECK "hot f_inc+5 sum", s1, 5 * HOT

  /* ---- 2. rewrite with every 12-bit immediate in a hot loop (sw) ----
     i = 0..N-1: imm = (i & 0xfff) - 2048, call with a0 = i, expect i + imm */
  li s3, 0          /* i */
  li s4, 0          /* mismatches */
  li s5, 0          /* sum of results */
  li s6, 100000
  li s7, ADDI_A0
1:slli t0, s3, 52
  srli t0, t0, 52
  addi t0, t0, -2048
  slli t1, t0, 20              /* sw keeps the low 32 bits: imm[11:0] << 20 */
  or t1, t1, s7
  sw t1, 0(s2)
  fence.i
  mv a0, s3
  jalr s2
  add s5, s5, a0
  add t2, s3, t0
  beq a0, t2, 2f
  addi s4, s4, 1
2:addi s3, s3, 1
  bne s3, s6, 1b
  CHECK "sw rewrite loop mismatches", s4, 0
  CHECK "sw rewrite loop sum", s5, 4997864800

  /* ---- 3. rewrite only the top byte of the instruction (sb): imm = sext(b << 4) ---- */
  li t0, ADDI_A0
  sw t0, 0(s2)
  fence.i
  li s3, 0
  li s4, 0
  li s5, 0
  li s6, 50000
1:andi t0, s3, 0xff
  sb t0, 3(s2)
  fence.i
  mv a0, s3
  jalr s2
  add s5, s5, a0
  slli t1, t0, 56
  srai t1, t1, 52               /* sext(b) << 4 */
  add t1, t1, s3
  beq a0, t1, 2f
  addi s4, s4, 1
2:addi s3, s3, 1
  bne s3, s6, 1b
  CHECK "sb rewrite loop mismatches", s4, 0
  PHEX "sb rewrite loop sum", s5

  /* ---- 4. rewrite with amoswap.w and fsw (instructions the translator hands to the interpreter) ---- */
  li s3, 0
  li s4, 0
  li s6, 20000
  li s7, ADDI_A0
1:andi t0, s3, 0x7ff
  slli t1, t0, 20
  or t1, t1, s7
  andi t2, s3, 1
  bnez t2, 3f
  amoswap.w t3, t1, (s2)
  j 4f
3:fmv.w.x ft0, t1
  fsw ft0, 0(s2)
4:fence.i
  mv a0, s3
  jalr s2
  add t1, s3, t0
  beq a0, t1, 2f
  addi s4, s4, 1
2:addi s3, s3, 1
  bne s3, s6, 1b
  CHECK "amoswap/fsw rewrite mismatches", s4, 0

  /* ---- 5. fresh copies: make each one hot, then rewrite it ----
     copy r (r = 0..7) at codebuf + 256*r: addi a0, a0, r+1; ret */
  li s8, 0          /* r */
  li s9, 0          /* failures */
1:la s2, codebuf
  slli t0, s8, 8
  add s2, s2, t0
  addi t1, s8, 1
  slli t1, t1, 20
  li t2, ADDI_A0
  or t1, t1, t2
  sw t1, 0(s2)
  li t2, RET_INSN
  sw t2, 4(s2)
  fence.i
  HOTCALL s2, HOT
  addi t0, s8, 1
  li t1, HOT
  mul t0, t0, t1
  beq s1, t0, 2f
  addi s9, s9, 1
2:li t1, -1               /* rewrite to addi a0, a0, -(r+1) */
  sub t1, t1, s8
  slli t1, t1, 20
  li t2, ADDI_A0
  or t1, t1, t2
  sw t1, 0(s2)
  fence.i
  li a0, 1000
  jalr s2
  li t0, 999
  sub t0, t0, s8
  beq a0, t0, 3f
  addi s9, s9, 1
3:addi s8, s8, 1
  li t0, 8
  bne s8, t0, 1b
  CHECK "fresh copies hot then rewritten: failures", s9, 0

  /* ---- 6. compressed: c.addi a0, imm rewritten with sh ---- */
  la s2, f_cinc
  HOTCALL s2, HOT
  CHECK "hot c.addi sum", s1, HOT
  li s3, 0
  li s4, 0
  li s6, 64 * 300
1:andi t0, s3, 63             /* 6-bit imm field value */
  slli t1, t0, 58
  srai t1, t1, 58             /* t1 = sext6(imm) */
  andi t2, t0, 31
  slli t2, t2, 2
  srli t3, t0, 5
  slli t3, t3, 12
  or t2, t2, t3
  ori t2, t2, CADDI_A0
  sh t2, 0(s2)
  fence.i
  mv a0, s3
  jalr s2
  add t1, t1, s3
  beq a0, t1, 2f
  addi s4, s4, 1
2:addi s3, s3, 1
  bne s3, s6, 1b
  CHECK "c.addi rewrite loop mismatches", s4, 0

  /* ---- 7. write the next-but-one instruction and execute it ---- */
  la s2, f_selfnext
  li a1, ADDI_A0 | (1 << 20)
  HOTCALL s2, HOT
  PHEX "selfnext warm-up sum", s1
  li s3, 0
  li s4, 0
  li s5, 0
  li s6, 100000
  li s7, ADDI_A0
1:andi s8, s3, 0x7ff
  slli a1, s8, 20
  or a1, a1, s7
  mv a0, s3
  jalr s2                       /* clobbers t0 */
  add s5, s5, a0
  add t1, s3, s8
  beq a0, t1, 2f
  addi s4, s4, 1
2:addi s3, s3, 1
  bne s3, s6, 1b
  CHECK "store to pc+8 then execute: mismatches", s4, 0
  PHEX "store to pc+8 sum", s5

  /* ---- 8. a hot loop rewriting one of its own instructions ---- */
  li a0, 300000
  call f_selfloop
  PHEX "self-rewriting loop sum", a0
  /* each iteration adds (previous t2 & 1023) */
  li a0, 300000
  call ref_selfloop
  mv t0, a0
  li a0, 300000
  call f_selfloop
  CHECKR "self-rewriting loop vs reference", a0, t0

  /* ---- 9. data in the code page of a hot loop ---- */
  li a0, 300000
  call f_datacode
  CHECK "loop storing into its own code page", a0, 300000 * 300001 / 2
TEST_END

/* reference for f_selfloop without self-modification */
ref_selfloop:
  mv t2, a0
  li a0, 0
  li t4, 0
1:add a0, a0, t4
  andi t4, t2, 1023
  addi t2, t2, -1
  bnez t2, 1b
  ret

  .option push
  .option norvc
  .balign 4096
f_inc:
  addi a0, a0, 1
  ret
  .balign 4096
f_cinc:
  .option rvc
  c.addi a0, 1
  c.jr ra
  .option norvc
  .balign 4096
f_selfnext:                     /* a1 = instruction word to execute */
  auipc t0, 0
  sw a1, 12(t0)                 /* = this store's pc + 8 */
  fence.i
  addi a0, a0, 0
  ret
  .balign 4096
f_selfloop:                     /* a0 = n; the addi is rewritten every iteration */
  mv t2, a0
  li a0, 0
  lla t1, 2f
  li t3, ADDI_A0
2:addi a0, a0, 0
  andi t4, t2, 1023
  slli t4, t4, 20
  or t4, t4, t3
  sw t4, 0(t1)
  fence.i
  addi t2, t2, -1
  bnez t2, 2b
  sw t3, 0(t1)                  /* restore for the next call */
  fence.i
  ret
  .balign 4096
f_datacode:                     /* a0 = n: returns n + (n-1) + ... + 1 via dc_var */
  lla t0, dc_var
  sd zero, 0(t0)
1:ld t1, 0(t0)
  add t1, t1, a0
  sd t1, 0(t0)
  addi a0, a0, -1
  bnez a0, 1b
  ld a0, 0(t0)
  ret
  .balign 8
dc_var: .dword 0
  .balign 4096
codebuf:
  .space 4096
  .option pop
