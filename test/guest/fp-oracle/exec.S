# Execution template for the FP oracle. The C driver copies the bytes between
# fp_tmpl_start and fp_tmpl_end into an executable buffer and patches the
# 4-byte slot at fp_tmpl_insn with the instruction under test, so arbitrary
# encodings (every rm, dynamic rm, reserved ones) run on the real ISA.
#
# void run(uint64_t io[7]): io[0..2] = operands A, B, C, io[3] = frm.
# A, B, C are placed in both x11..x13 and f11..f13; the instruction uses
# rd = 10, rs1 = 11, rs2 = 12, rs3 = 13. x10 and f10 start at zero.
# Out: io[4] = x10, io[5] = raw bits of f10, io[6] = fflags. frm is restored.
	.option norvc
	.text
	.globl fp_tmpl_start, fp_tmpl_insn, fp_tmpl_end
	.p2align 2
fp_tmpl_start:
	mv	t6, a0
	ld	a1, 0(t6)
	ld	a2, 8(t6)
	ld	a3, 16(t6)
	ld	t0, 24(t6)
	fmv.d.x	f11, a1
	fmv.d.x	f12, a2
	fmv.d.x	f13, a3
	fmv.d.x	f10, zero
	li	a0, 0
	fsrm	t3, t0		# t3 = caller's frm, restored below
	fsflags	zero
fp_tmpl_insn:
	nop
	frflags	t1
	fmv.x.d	t2, f10
	fsrm	t3		# the C code's own FP must not run with the test frm
	sd	a0, 32(t6)
	sd	t2, 40(t6)
	sd	t1, 48(t6)
	ret
fp_tmpl_end:
	.section .note.GNU-stack,"",@progbits
