/*
 * Stackful coroutine contexts and their stacks: the lowest layer of the
 * event loop. Internal; nothing here is part of the API. See ctx.c for
 * what a switch preserves and how the sanitizers are told.
 *
 *     struct reap__stack st;
 *     struct reap__ctx self = {0}, co;
 *     if (reap__stack_acquire(&st, 0) == 0) {
 *         reap__ctx_make(&co, &st, fn, arg);
 *         reap__ctx_switch(&self, &co);      // runs fn(arg) until it switches back
 *         ...
 *         reap__ctx_destroy(&co);
 *         reap__stack_release(&st);
 *     }
 *
 * Thread safety: a context runs on the thread that made it and is switched
 * to only from that thread; stacks are cached per thread.
 */
#ifndef REAP_LOOP_CTX_H
#define REAP_LOOP_CTX_H

#include <stddef.h>

#include "../base/internal.h"

#pragma GCC visibility push(hidden)

#define REAP__STACK_DEFAULT (64u * 1024) /* usable bytes when 0 is asked */
#define REAP__STACK_MIN (16u * 1024)     /* smaller requests are raised */
#define REAP__STACK_CACHE 8              /* stacks kept per thread, at most */

/*
 * A coroutine stack: a private anonymous mapping whose lowest page is
 * PROT_NONE (the guard), the usable part above it. Caller storage.
 */
struct reap__stack {
	char *map;     /* the whole mapping, guard page first */
	size_t maplen; /* its length */
	char *lo;      /* lowest usable byte (just above the guard) */
	size_t size;   /* usable bytes: the stack runs from lo + size down */
	unsigned vg_id; /* valgrind's id for the registered stack */
};

/*
 * Fill *st with a stack of at least size usable bytes (0: the default),
 * rounded up to whole pages; from this thread's cache when one of that
 * size is there, else freshly mapped. One fallible acquisition for the
 * fault injector, whether cached or not. Returns 0, or -ENOMEM (nothing
 * acquired, *st untouched). Any thread.
 */
int reap__stack_acquire(struct reap__stack *st, size_t size);

/* Give st back: into this thread's cache, or unmapped when the cache is
 * full. No context may still run on it. Any thread. */
void reap__stack_release(struct reap__stack *st);

/* Unmap every stack in the calling thread's cache (also done at thread
 * exit). */
void reap__stack_cache_drain(void);

/* Stacks mapped and not yet unmapped, process-wide (cached ones count). */
long reap__stack_mapped(void);
/* In a forked child: count as mapped only the stacks this thread's cache
 * holds (the child's to unmap); the stacks of inherited tasks and other
 * threads' caches are the parent's copies, never unmapped here. */
void reap__stack_fork_child(void);

/*
 * An execution context. A zeroed one stands for the thread's own stack
 * (the context that first switches away); reap__ctx_make() prepares one
 * that runs a function on a stack of its own. Caller storage.
 */
struct reap__ctx {
	void *sp;                 /* saved stack pointer (see ctx_*.S, ctx_ucontext.c) */
	void (*fn)(void *);
	void *arg;
	struct reap__ctx *resumer; /* who switched to us last: fn returns there */
	const void *stack_lo;     /* stack bounds, for ASan (thread stack: learned) */
	size_t stack_size;
	void *asan_fake;          /* ASan's fake stack while switched out */
	void *tsan_fiber;         /* TSan's fiber (thread's own: learned) */
	int state;                /* CTX_* in ctx.c */
};

/*
 * Prepare ctx to run fn(arg) on st when first switched to. When fn
 * returns, the context is finished and control goes to the context that
 * last switched to it, as if that one's reap__ctx_switch() returned;
 * switching to a finished context is misuse (abort). st must outlive ctx's
 * last run. Cannot fail.
 */
void reap__ctx_make(struct reap__ctx *ctx, struct reap__stack *st,
		    void (*fn)(void *), void *arg);

/* Save the running context into from and resume to. Returns when some
 * context switches back to from. from must be the running context. */
void reap__ctx_switch(struct reap__ctx *from, struct reap__ctx *to);

/* Whether ctx's function has returned. */
int reap__ctx_finished(const struct reap__ctx *ctx);

/* Release what the sanitizers hold for a made context (finished or
 * suspended, never running). Its stack is the caller's to release. */
void reap__ctx_destroy(struct reap__ctx *ctx);

/*
 * The platform part (ctx_<arch>.S or ctx_ucontext.c). arch_init lays out
 * a first frame in [lo, top) so that jumping to the returned stack
 * pointer calls reap__ctx_start(), with the floating-point control state
 * of the caller. jump saves the callee-saved state on the current stack,
 * stores the stack pointer in *save and resumes the context saved at to.
 */
void *reap__ctx_arch_init(void *lo, void *top);
void reap__ctx_jump(void **save, void *to);
REAP_NORETURN void reap__ctx_start(void);

#pragma GCC visibility pop
#endif /* REAP_LOOP_CTX_H */
