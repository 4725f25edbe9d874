/* RV64I: every base integer instruction, printed as hex. */
#include "user.h"

/* register-register op */
.macro RR op, a, b
  li t0, \a
  li t1, \b
  \op t2, t0, t1
  PHEX "\op \a \b", t2
.endm
/* register-immediate op */
.macro RI op, a, imm
  li t0, \a
  \op t2, t0, \imm
  PHEX "\op \a \imm", t2
.endm
/* branch: prints 1 if taken, 0 if not */
.macro BR op, a, b
  li t0, \a
  li t1, \b
  li t2, 1
  \op t0, t1, 1f
  li t2, 0
1:PHEX "\op \a \b", t2
.endm

TEST_BEGIN rv64i
  RR add, 0x7fffffffffffffff, 1
  RR add, -1, 1
  RR add, 0x123456789, 0x987654321
  RR sub, 0, 1
  RR sub, 0x8000000000000000, 1
  RR addw, 0x7fffffff, 1
  RR addw, 0xffffffff, 1
  RR addw, 0x123456789abcdef0, 0x1000
  RR subw, 0, 1
  RR subw, 0x80000000, 1
  RR subw, 0x100000000, 0
  RI addi, 5, -6
  RI addi, 0x7ffffffffffffffe, 2047
  RI addi, 0, -2048
  RI addiw, 0x7fffffff, 1
  RI addiw, 0x1ffffffff, 0
  RI addiw, -1, -2048
  RR and, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
  RR or,  0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
  RR xor, 0xff00ff00ff00ff00, 0x0ff00ff00ff00ff0
  RI andi, 0x123456789abcdef0, -256
  RI andi, 0x123456789abcdef0, 0x7f0
  RI ori,  0x123456789abcdef0, -2048
  RI ori,  0x123456789abcdef0, 0x00f
  RI xori, 0x123456789abcdef0, -1
  RI xori, 0x123456789abcdef0, 0x555
  RR sll, 0x8000000000000001, 1
  RR sll, 1, 63
  RR sll, 1, 64
  RR sll, 1, 65
  RR sll, 0x123456789abcdef0, -1
  RR srl, 0x8000000000000000, 63
  RR srl, 0x8000000000000000, 64
  RR srl, 0x8000000000000000, 127
  RR sra, 0x8000000000000000, 63
  RR sra, 0x8000000000000000, 1
  RR sra, 0x4000000000000000, 62
  RR sra, 0x8000000000000000, 0xc4
  RR sllw, 1, 31
  RR sllw, 1, 32
  RR sllw, 3, 31
  RR sllw, 0xffffffff00000001, 33
  RR srlw, 0x80000000, 31
  RR srlw, 0xffffffff80000000, 0
  RR srlw, 0xffffffff80000000, 1
  RR srlw, 0x1234567880000000, 63
  RR sraw, 0x80000000, 31
  RR sraw, 0x80000000, 1
  RR sraw, 0x7fffffff, 30
  RR sraw, 0xffffffff40000000, 32
  RI slli, 0x1234, 0
  RI slli, 0x1234, 63
  RI slli, 0x8000000000000001, 32
  RI srli, -1, 1
  RI srli, -1, 63
  RI srli, -1, 0
  RI srai, 0x8000000000000000, 0
  RI srai, 0x8000000000000000, 31
  RI srai, 0x8000000000000000, 63
  RI slliw, 1, 31
  RI slliw, 0x12345678, 4
  RI slliw, -1, 0
  RI srliw, -1, 0
  RI srliw, -1, 31
  RI srliw, 0x80000000, 4
  RI sraiw, 0x80000000, 0
  RI sraiw, 0x80000000, 31
  RI sraiw, 0x7fff0000, 16
  RR slt, -1, 1
  RR slt, 1, -1
  RR slt, 5, 5
  RR sltu, -1, 1
  RR sltu, 1, -1
  RR sltu, 0, 0
  RI slti, -1, 0
  RI slti, 0, -1
  RI slti, -2049, -2048
  RI sltiu, 1, -1
  RI sltiu, -1, -1
  RI sltiu, 0, 1
  RI sltiu, 5, 1
  BR beq, 1, 1
  BR beq, 1, 2
  BR bne, 1, 1
  BR bne, 1, 2
  BR blt, -1, 0
  BR blt, 0, -1
  BR blt, 3, 3
  BR bge, -1, 0
  BR bge, 0, -1
  BR bge, 3, 3
  BR bltu, -1, 0
  BR bltu, 0, -1
  BR bltu, 3, 3
  BR bgeu, -1, 0
  BR bgeu, 0, -1
  BR bgeu, 3, 3

  /* backward branch loop */
  li t0, 10
  li t1, 0
2:add t1, t1, t0
  addi t0, t0, -1
  bnez t0, 2b
  PHEX "loop sum", t1

  /* lui / auipc */
  lui t0, 0x12345
  PHEX "lui 0x12345", t0
  lui t0, 0x80000
  PHEX "lui 0x80000", t0
  lui t0, 0xfffff
  PHEX "lui 0xfffff", t0
  /* auipc relative to a known label */
3:auipc t0, 0
  la t1, 3b
  sub t2, t0, t1
  PHEX "auipc-self", t2
  PHEX "auipc abs", t0
  auipc t0, 0x1
  la t1, 3b
  sub t2, t0, t1
  PHEX "auipc+0x1000 delta", t2
  auipc t0, 0x80000
  PHEX "auipc 0x80000", t0

  /* jal / jalr link values */
  .option push
  .option norvc
  jal t0, 4f
4:la t1, 4b
  sub t2, t0, t1
  PHEX "jal link-target", t2
  la t1, 5f
  jalr t0, 0(t1)
5:la t1, 5b
  sub t2, t0, t1
  PHEX "jalr link-ret", t2
  /* jalr with offset and bit 0 cleared */
  la t1, 6f
  addi t1, t1, -7
  jalr t0, 8(t1)       /* target = 6f + 1 -> bit 0 cleared -> 6f */
  li t2, 0xbad
  j 7f
6:li t2, 0x600d
7:PHEX "jalr clears bit0", t2
  /* jalr rd == rs1 */
  la t1, 8f
  jalr t1, 0(t1)
8:la t2, 8b
  sub t2, t1, t2
  PHEX "jalr rd=rs1", t2
  /* x0 destination */
  jal zero, 9f
  li t2, 0xbad
9:addi zero, zero, 5
  PHEX "x0", zero
  .option pop

  /* loads and stores, all widths */
  la s0, buf
  li t0, 0x8899aabbccddeeff
  sd t0, 0(s0)
  li t0, 0x0011223344556677
  sd t0, 8(s0)
  lb t1, 0(s0)
  PHEX "lb 0", t1
  lb t1, 1(s0)
  PHEX "lb 1", t1
  lbu t1, 7(s0)
  PHEX "lbu 7", t1
  lb t1, 8(s0)
  PHEX "lb 8", t1
  lh t1, 0(s0)
  PHEX "lh 0", t1
  lhu t1, 0(s0)
  PHEX "lhu 0", t1
  lh t1, 6(s0)
  PHEX "lh 6", t1
  lh t1, 8(s0)
  PHEX "lh 8", t1
  lw t1, 0(s0)
  PHEX "lw 0", t1
  lwu t1, 0(s0)
  PHEX "lwu 0", t1
  lw t1, 4(s0)
  PHEX "lw 4", t1
  lw t1, 8(s0)
  PHEX "lw 8", t1
  lwu t1, 12(s0)
  PHEX "lwu 12", t1
  ld t1, 0(s0)
  PHEX "ld 0", t1
  ld t1, 8(s0)
  PHEX "ld 8", t1
  addi s1, s0, 16
  ld t1, -16(s1)
  PHEX "ld -16", t1
  li t0, 0xa5a5a5a5a5a5a5a5
  sb t0, 3(s0)
  sh t0, 8(s0)
  sw t0, 12(s0)
  ld t1, 0(s0)
  PHEX "after sb", t1
  ld t1, 8(s0)
  PHEX "after sh/sw", t1
  li t0, 0x1122334455667788
  sd t0, 0(s0)
  sw zero, 4(s0)
  ld t1, 0(s0)
  PHEX "sw zero", t1
  /* store then load, negative offsets, x0 load */
  sh t0, -2(s1)
  lhu t1, -2(s1)
  PHEX "sh/lhu -2", t1
  lw zero, 0(s0)
  PHEX "lw to x0", zero

  /* fence, fence.i, nop-like */
  fence
  fence rw, rw
  fence.i
  nop
  PUTS "fences ok\n"
TEST_END

  .data
  .balign 16
buf: .space 64
