/*
 * The context switch through ucontext: the fallback for architectures
 * without a ctx_<arch>.S, or with -DREAP_UCONTEXT=ON. Slower (swapcontext
 * saves and restores the signal mask with a system call) but portable.
 *
 * A suspended context's saved "stack pointer" is the address of a
 * ucontext_t on its own stack: in reap__ctx_jump's frame while it waits,
 * or at the top of a new stack, where reap__ctx_arch_init puts the one
 * that starts it. glibc's getcontext/swapcontext save the floating-point
 * control state (x87 environment and MXCSR on x86-64), so a new context
 * starts with its maker's, and each keeps its own, as with the assembly.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <ucontext.h>

#include "ctx.h"

static void boot(void)
{
	reap__ctx_start();
}

void *reap__ctx_arch_init(void *lo, void *top)
{
	uintptr_t at = ((uintptr_t)top - sizeof(ucontext_t)) & ~(uintptr_t)63;
	ucontext_t *uc = (ucontext_t *)at;

	if (getcontext(uc) != 0)
		abort(); /* cannot fail on Linux */
	uc->uc_stack.ss_sp = lo;
	uc->uc_stack.ss_size = (size_t)(at - (uintptr_t)lo);
	uc->uc_link = NULL;
	makecontext(uc, boot, 0);
	return uc;
}

void reap__ctx_jump(void **save, void *to)
{
	ucontext_t here;

	/* No stack of its own: ASan's swapcontext interceptor clears the
	 * shadow of the stack a context names, when it names one. */
	here.uc_stack = (stack_t){0};
	*save = &here;
	swapcontext(&here, (ucontext_t *)to);
}
