/* RVC: compressed instructions (forms forced with c.* mnemonics). */
#include "user.h"

TEST_BEGIN rvc
  .option push
  .option rvc
  c.li s0, -32
  PHEX "c.li -32", s0
  c.li s0, 31
  PHEX "c.li 31", s0
  c.lui s1, 0x1f
  PHEX "c.lui 0x1f", s1
  c.lui s1, 0xfffe0
  PHEX "c.lui 0xfffe0", s1
  c.li a0, 5
  c.addi a0, -6
  PHEX "c.addi", a0
  c.li a0, -1
  c.addiw a0, 1
  PHEX "c.addiw", a0
  li a0, 0x7fffffff
  c.addiw a0, 1
  PHEX "c.addiw ovf", a0
  li a0, 0x123456789
  c.addiw a0, 0
  PHEX "c.sext.w", a0
  mv a5, sp
  c.addi16sp sp, -64
  sub a4, a5, sp
  PHEX "c.addi16sp", a4
  c.addi4spn a3, sp, 16
  sub a4, a3, sp
  PHEX "c.addi4spn", a4
  c.addi16sp sp, 64
  li a0, 0x8000000000000001
  c.slli a0, 3
  PHEX "c.slli", a0
  li a0, 0x8000000000000001
  c.srli a0, 63
  PHEX "c.srli", a0
  li a0, 0x8000000000000001
  c.srai a0, 1
  PHEX "c.srai", a0
  li a0, 0x00ff00ff00ff00ff
  c.andi a0, -16
  PHEX "c.andi", a0
  li a0, 100
  li a1, 58
  c.mv a2, a0
  PHEX "c.mv", a2
  c.add a2, a1
  PHEX "c.add", a2
  c.sub a2, a1
  PHEX "c.sub", a2
  li a0, 0xff0f
  li a1, 0x0ff0
  c.mv a2, a0
  c.xor a2, a1
  PHEX "c.xor", a2
  c.mv a2, a0
  c.or a2, a1
  PHEX "c.or", a2
  c.mv a2, a0
  c.and a2, a1
  PHEX "c.and", a2
  li a0, 0x7fffffff
  li a1, 1
  c.mv a2, a0
  c.addw a2, a1
  PHEX "c.addw", a2
  li a0, 0
  c.mv a2, a0
  c.subw a2, a1
  PHEX "c.subw", a2
  /* loads/stores */
  la a0, cbuf
  li a1, 0xfedcba9876543210
  c.sd a1, 8(a0)
  c.sw a1, 16(a0)
  c.ld a2, 8(a0)
  PHEX "c.sd/c.ld", a2
  c.lw a2, 16(a0)
  PHEX "c.sw/c.lw", a2
  li a1, 0xabcdef0123456789
  c.sdsp a1, 8(sp)
  c.ldsp a3, 8(sp)
  PHEX "c.sdsp/c.ldsp", a3
  c.swsp a1, 4(sp)
  c.lwsp a3, 4(sp)
  PHEX "c.swsp/c.lwsp", a3
  /* FP compressed loads/stores */
  li a1, 0x400921fb54442d18
  c.sd a1, 0(a0)
  c.fld fa0, 0(a0)
  c.fsd fa0, 24(a0)
  c.ld a2, 24(a0)
  PHEX "c.fld/c.fsd", a2
  c.fsdsp fa0, 16(sp)
  c.fldsp fa1, 16(sp)
  fmv.x.d a2, fa1
  PHEX "c.fsdsp/c.fldsp", a2
  /* control flow */
  li a0, 0
  c.beqz a0, 1f
  li a0, 0xbad
1:PHEX "c.beqz taken", a0
  li a0, 1
  c.bnez a0, 2f
  li a0, 0xbad
2:PHEX "c.bnez taken", a0
  li a0, 0
  c.bnez a0, 3f
  li a0, 0x600d
3:PHEX "c.bnez not taken", a0
  c.j 4f
  li a0, 0xbad
4:la a1, 5f
  c.jalr a1
5:la a2, 5b
  sub a2, ra, a2        /* return address = after c.jalr (2 bytes) */
  PHEX "c.jalr link", a2
  la a1, 6f
  c.jr a1
  li a0, 0xbad
6:PHEX "c.jr", a0
  /* c.nop and odd-address-free alignment: a 4-byte insn at a 2-aligned pc */
  c.nop
  .balign 4
  c.nop
  li a0, 0x12345678      /* starts at pc % 4 == 2 */
  PHEX "misaligned-pc 32bit insn", a0
  /* loop with compressed ops */
  c.li a0, 0
  c.li a1, 10
7:c.add a0, a1
  c.addi a1, -1
  c.bnez a1, 7b
  PHEX "c loop", a0
  .option pop
TEST_END

  .data
  .balign 16
cbuf: .space 64
