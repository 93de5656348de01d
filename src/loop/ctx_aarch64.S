/*
 * The context switch for AArch64 (AAPCS64). See ctx.c for what it
 * preserves and why.
 *
 * A suspended context's stack pointer points at this frame (176 bytes,
 * keeping sp 16-byte aligned), lowest address first:
 *
 *     0   x19 x20        48   x25 x26        96   d8  d9       144  d14 d15
 *    16   x21 x22        64   x27 x28       112   d10 d11      160  FPCR, spare
 *    32   x23 x24        80   x29 x30       128   d12 d13
 *
 * Only the low 64 bits of v8-v15 are callee-saved, so d8-d15 are all the
 * vector state a switch keeps; FPCR is the floating-point control state
 * (rounding, flush-to-zero), kept per context as MXCSR is on x86-64.
 * reap__ctx_jump stores the frame and loads the other context's; the
 * first frame of a new context (reap__ctx_arch_init) has zero registers,
 * the caller's FPCR and x30 = reap__ctx_boot, which calls
 * reap__ctx_start() with a zero frame pointer and an undefined return
 * address, so that backtraces end there.
 */
	.text

/* void reap__ctx_jump(void **save, void *to) */
	.globl	reap__ctx_jump
	.hidden	reap__ctx_jump
	.type	reap__ctx_jump, %function
	.p2align 4
reap__ctx_jump:
	.cfi_startproc
	sub	sp, sp, #176
	.cfi_adjust_cfa_offset 176
	stp	x19, x20, [sp, #0]
	stp	x21, x22, [sp, #16]
	stp	x23, x24, [sp, #32]
	stp	x25, x26, [sp, #48]
	stp	x27, x28, [sp, #64]
	stp	x29, x30, [sp, #80]
	stp	d8, d9, [sp, #96]
	stp	d10, d11, [sp, #112]
	stp	d12, d13, [sp, #128]
	stp	d14, d15, [sp, #144]
	mrs	x10, fpcr
	str	x10, [sp, #160]
	mov	x9, sp
	str	x9, [x0]
	mov	sp, x1
	/* Write FPCR only when it differs from ours: contexts almost
	 * always share it, and the write is costly. */
	ldr	x9, [sp, #160]
	cmp	x9, x10
	b.eq	1f
	msr	fpcr, x9
1:
	ldp	x19, x20, [sp, #0]
	ldp	x21, x22, [sp, #16]
	ldp	x23, x24, [sp, #32]
	ldp	x25, x26, [sp, #48]
	ldp	x27, x28, [sp, #64]
	ldp	x29, x30, [sp, #80]
	ldp	d8, d9, [sp, #96]
	ldp	d10, d11, [sp, #112]
	ldp	d12, d13, [sp, #128]
	ldp	d14, d15, [sp, #144]
	add	sp, sp, #176
	.cfi_adjust_cfa_offset -176
	ret
	.cfi_endproc
	.size	reap__ctx_jump, .-reap__ctx_jump

/* void *reap__ctx_arch_init(void *lo, void *top): the first frame, 176
 * bytes below top rounded down to 16 less 16 (a zero pair above it, as a
 * fake frame record). The control state is the caller's. */
	.globl	reap__ctx_arch_init
	.hidden	reap__ctx_arch_init
	.type	reap__ctx_arch_init, %function
	.p2align 4
reap__ctx_arch_init:
	.cfi_startproc
	and	x1, x1, #~15
	sub	x1, x1, #16
	stp	xzr, xzr, [x1]
	sub	x0, x1, #176
	mov	x2, x0
1:	stp	xzr, xzr, [x2], #16
	cmp	x2, x1
	b.lo	1b
	adrp	x3, reap__ctx_boot
	add	x3, x3, :lo12:reap__ctx_boot
	str	x3, [x0, #88]
	mrs	x3, fpcr
	str	x3, [x0, #160]
	ret
	.cfi_endproc
	.size	reap__ctx_arch_init, .-reap__ctx_arch_init

	.type	reap__ctx_boot, %function
	.p2align 4
reap__ctx_boot:
	.cfi_startproc
	.cfi_undefined x30
	mov	x29, xzr
	bl	reap__ctx_start
	brk	#0
	.cfi_endproc
	.size	reap__ctx_boot, .-reap__ctx_boot

	.section .note.GNU-stack, "", %progbits
