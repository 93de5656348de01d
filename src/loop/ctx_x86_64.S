/*
 * The context switch for x86-64 (System V ABI). See ctx.c for what it
 * preserves and why.
 *
 * A suspended context's stack pointer points at this frame, lowest
 * address first:
 *
 *     0   MXCSR (4 bytes), x87 control word (2 bytes), 2 spare
 *     8   r15
 *    16   r14
 *    24   r13
 *    32   r12
 *    40   rbx
 *    48   rbp
 *    56   return address
 *
 * reap__ctx_jump pushes it and pops the other context's (the control
 * words only when they differ, and the return address by an indirect
 * jump); the first frame
 * of a new context (reap__ctx_arch_init) has zero registers and returns
 * into reap__ctx_boot, which calls reap__ctx_start() with the stack
 * aligned as for a call and a zero frame pointer, so that backtraces end
 * there.
 */
	.text

/* void reap__ctx_jump(void **save, void *to) */
	.globl	reap__ctx_jump
	.hidden	reap__ctx_jump
	.type	reap__ctx_jump, @function
	.p2align 4
reap__ctx_jump:
	.cfi_startproc
	pushq	%rbp
	.cfi_adjust_cfa_offset 8
	pushq	%rbx
	.cfi_adjust_cfa_offset 8
	pushq	%r12
	.cfi_adjust_cfa_offset 8
	pushq	%r13
	.cfi_adjust_cfa_offset 8
	pushq	%r14
	.cfi_adjust_cfa_offset 8
	pushq	%r15
	.cfi_adjust_cfa_offset 8
	subq	$8, %rsp
	.cfi_adjust_cfa_offset 8
	stmxcsr	(%rsp)
	fnstcw	4(%rsp)
	/* Ours, read back at the widths written (a wider load would wait
	 * for both stores to retire). */
	movl	(%rsp), %eax
	movzwl	4(%rsp), %ecx
	movq	%rsp, (%rdi)
	movq	%rsi, %rsp
	/* Load the other context's control words only when they differ
	 * from ours: the loads serialize, and contexts almost always
	 * share them. */
	.cfi_remember_state
	cmpl	(%rsp), %eax
	jne	2f
	cmpw	4(%rsp), %cx
	jne	2f
1:	addq	$8, %rsp
	.cfi_adjust_cfa_offset -8
	popq	%r15
	.cfi_adjust_cfa_offset -8
	popq	%r14
	.cfi_adjust_cfa_offset -8
	popq	%r13
	.cfi_adjust_cfa_offset -8
	popq	%r12
	.cfi_adjust_cfa_offset -8
	popq	%rbx
	.cfi_adjust_cfa_offset -8
	popq	%rbp
	.cfi_adjust_cfa_offset -8
	/* An indirect jump rather than ret: the return predictor is wrong
	 * after a switch anyway, and the indirect one learns the pattern. */
	popq	%rdx
	.cfi_adjust_cfa_offset -8
	.cfi_register rip, rdx
	jmp	*%rdx
2:	.cfi_restore_state
	ldmxcsr	(%rsp)
	fldcw	4(%rsp)
	jmp	1b
	.cfi_endproc
	.size	reap__ctx_jump, .-reap__ctx_jump

/* void *reap__ctx_arch_init(void *lo, void *top): the first frame, 80
 * bytes below top rounded down to 16, so that reap__ctx_boot starts with
 * rsp = top - 16 (aligned, with a zero word above as a fake return
 * address). The control state is the caller's. */
	.globl	reap__ctx_arch_init
	.hidden	reap__ctx_arch_init
	.type	reap__ctx_arch_init, @function
	.p2align 4
reap__ctx_arch_init:
	.cfi_startproc
	andq	$-16, %rsi
	leaq	-80(%rsi), %rax
	movq	$0, (%rax)
	stmxcsr	(%rax)
	fnstcw	4(%rax)
	movq	$0, 8(%rax)
	movq	$0, 16(%rax)
	movq	$0, 24(%rax)
	movq	$0, 32(%rax)
	movq	$0, 40(%rax)
	movq	$0, 48(%rax)
	leaq	reap__ctx_boot(%rip), %rcx
	movq	%rcx, 56(%rax)
	movq	$0, 64(%rax)
	movq	$0, 72(%rax)
	ret
	.cfi_endproc
	.size	reap__ctx_arch_init, .-reap__ctx_arch_init

	.type	reap__ctx_boot, @function
	.p2align 4
reap__ctx_boot:
	.cfi_startproc
	.cfi_undefined rip
	xorl	%ebp, %ebp
	call	reap__ctx_start
	ud2
	.cfi_endproc
	.size	reap__ctx_boot, .-reap__ctx_boot

	.section .note.GNU-stack, "", @progbits
