/*
 * Coroutine contexts and stacks: the portable part.
 *
 * What a switch preserves. reap__ctx_switch() is an ordinary function
 * call as far as the compiler of its caller knows, so the caller already
 * assumes every caller-saved register is clobbered. The switch therefore
 * saves only what the ABI says a call preserves: on x86-64 rbx, rbp and
 * r12-r15, the stack pointer, and the floating-point control state (the
 * MXCSR's rounding mode and exception masks, the x87 control word). The
 * control state is saved per context on purpose: a coroutine that sets a
 * rounding mode keeps it across its suspensions and does not impose it on
 * whoever runs next, exactly as threads do. A new context starts with the
 * control state of the thread that made it. The status flags (exceptions
 * raised) are not part of it. The ucontext fallback gets the same from
 * glibc's swapcontext (which also saves the signal mask, a system call).
 *
 * Stack layout. A stack is one anonymous private mapping: its lowest page
 * is PROT_NONE, the guard, and the usable part runs above it, a whole
 * number of pages. Stacks grow down, so an overflow runs into the guard
 * and dies of SIGSEGV instead of writing over a neighbour (a single frame
 * larger than a page could still jump it; the code that runs on these
 * stacks must not keep such frames). The first frame of a new context is
 * laid at the top of the usable part, 16-byte aligned, by the platform
 * part; its return address leads to reap__ctx_start(), which calls the
 * context's function. Up to REAP__STACK_CACHE freed stacks are kept per
 * thread and handed out again for the same size; the cache is drained at
 * thread exit (and at process exit for the main thread).
 *
 * How the tools are told. Each tool must see a switch as a change of the
 * running stack or it reports nonsense:
 *  - ASan: __sanitizer_start_switch_fiber() names the destination stack
 *    before the jump and saves the departing context's fake stack;
 *    __sanitizer_finish_switch_fiber() after it (also on the first entry
 *    of a new context) restores ours and tells us the bounds of the stack
 *    we came from, which is how the thread's own stack gets known. The
 *    last switch out of a finished context passes no fake-stack slot, so
 *    ASan frees it. A stack's shadow is unpoisoned when the stack is given
 *    back, since frames that never returned leave poisoned redzones.
 *  - TSan: every made context has a fiber of its own; the thread's own
 *    context takes the thread's current fiber the first time it switches
 *    away. Switches synchronise (flag 0), so a coroutine's accesses
 *    happen before those of whoever it switches to, on the same thread,
 *    and a stack reused by a later context carries no false race.
 *  - valgrind: stacks are registered when mapped, deregistered when
 *    unmapped.
 *
 * When fn returns. The context is marked finished and switches, for the
 * last time, to the context that last switched to it (its resumer, the
 * scheduler in the loop to come); switching to a finished context is
 * misuse and aborts with a message. A context destroyed while suspended
 * is simply abandoned: its frames are never unwound (with ASan's
 * detect_stack_use_after_return its fake stack is not reclaimed either).
 *
 * The running context is tracked per thread (tl_next below): the
 * platform part's first frame does not pass the context to
 * reap__ctx_start(), which reads it from there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ctx.h"

#ifndef MAP_STACK
#define MAP_STACK 0
#endif

/* Which tools to tell: decided once, at compile time. */
#if defined(__SANITIZE_ADDRESS__)
#define CTX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define CTX_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define CTX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CTX_TSAN 1
#endif
#endif
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#define CTX_VALGRIND 1
#endif
#endif

#ifdef CTX_ASAN
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#ifdef CTX_TSAN
#include <sanitizer/tsan_interface.h>
#endif
#ifdef CTX_VALGRIND
#include <valgrind/valgrind.h>
#endif

enum {
	CTX_THREAD = 0, /* the thread's own stack (a zeroed context) */
	CTX_MADE = 1,   /* runs fn on a stack of its own */
	CTX_DONE = 2    /* fn returned */
};

/* ------------------------------------------------------------------ */
/* the tools                                                          */

#ifdef CTX_ASAN
static void asan_start(struct reap__ctx *from, struct reap__ctx *to, int last)
{
	__sanitizer_start_switch_fiber(last ? NULL : &from->asan_fake,
				       to->stack_lo, to->stack_size);
}
static void asan_finish(struct reap__ctx *self, struct reap__ctx *prev)
{
	const void *lo;
	size_t size;

	__sanitizer_finish_switch_fiber(self->asan_fake, &lo, &size);
	prev->stack_lo = lo;
	prev->stack_size = size;
}
static void asan_unpoison(void *p, size_t n)
{
	__asan_unpoison_memory_region(p, n);
}
#else
static void asan_start(struct reap__ctx *from, struct reap__ctx *to, int last) {}
static void asan_finish(struct reap__ctx *self, struct reap__ctx *prev) {}
static void asan_unpoison(void *p, size_t n) {}
#endif

#ifdef CTX_TSAN
static void tsan_make(struct reap__ctx *ctx)
{
	ctx->tsan_fiber = __tsan_create_fiber(0);
}
static void tsan_switch(struct reap__ctx *from, struct reap__ctx *to)
{
	if (from->tsan_fiber == NULL)
		from->tsan_fiber = __tsan_get_current_fiber();
	__tsan_switch_to_fiber(to->tsan_fiber, 0);
}
static void tsan_destroy(struct reap__ctx *ctx)
{
	if (ctx->tsan_fiber != NULL)
		__tsan_destroy_fiber(ctx->tsan_fiber);
	ctx->tsan_fiber = NULL;
}
#else
static void tsan_make(struct reap__ctx *ctx) {}
static void tsan_switch(struct reap__ctx *from, struct reap__ctx *to) {}
static void tsan_destroy(struct reap__ctx *ctx) {}
#endif

#ifdef CTX_VALGRIND
static unsigned vg_register(char *lo, size_t size)
{
	return VALGRIND_STACK_REGISTER(lo, lo + size);
}
static void vg_deregister(unsigned id)
{
	VALGRIND_STACK_DEREGISTER(id);
}
#else
static unsigned vg_register(char *lo, size_t size) { return 0; }
static void vg_deregister(unsigned id) {}
#endif

/* ------------------------------------------------------------------ */
/* stacks                                                             */

static atomic_long stacks_mapped; /* for tests and reports */
static size_t page_size;
static pthread_once_t stack_once = PTHREAD_ONCE_INIT;

static __thread struct reap__stack cache[REAP__STACK_CACHE];
static __thread unsigned ncache;

static void unmap(struct reap__stack *st)
{
	vg_deregister(st->vg_id);
	asan_unpoison(st->lo, st->size);
	munmap(st->map, st->maplen);
	/* Relaxed: a statistic; orders no other memory. */
	atomic_fetch_sub_explicit(&stacks_mapped, 1, memory_order_relaxed);
}

void reap__stack_cache_drain(void)
{
	while (ncache > 0)
		unmap(&cache[--ncache]);
}

static void drain_at_exit(struct reap__tstate *ts)
{
	reap__stack_cache_drain();
}

static void stack_init(void)
{
	long p = sysconf(_SC_PAGESIZE);

	page_size = p > 0 ? (size_t)p : 4096;
	reap__on_thread_exit(drain_at_exit);
}

long reap__stack_mapped(void)
{
	/* Relaxed: read by tests after the threads that counted joined. */
	return atomic_load_explicit(&stacks_mapped, memory_order_relaxed);
}

void reap__stack_fork_child(void)
{
	/* Relaxed: one thread in the child. */
	atomic_store_explicit(&stacks_mapped, (long)ncache, memory_order_relaxed);
}

int reap__stack_acquire(struct reap__stack *st, size_t size)
{
	size_t maplen;
	char *map;

	pthread_once(&stack_once, stack_init);
	(void)reap__ts(); /* so that this thread's exit runs the drain */
	if (size == 0)
		size = REAP__STACK_DEFAULT;
	if (size < REAP__STACK_MIN)
		size = REAP__STACK_MIN;
	if (size > SIZE_MAX / 2)
		return -ENOMEM;
	size = (size + page_size - 1) & ~(page_size - 1);
	if (reap__fault_point())
		return -ENOMEM;
	for (unsigned i = ncache; i-- > 0;) {
		if (cache[i].size == size) {
			*st = cache[i];
			cache[i] = cache[--ncache];
			return 0;
		}
	}
	maplen = size + page_size;
	map = mmap(NULL, maplen, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
	if (map == MAP_FAILED)
		return -ENOMEM;
	if (mprotect(map, page_size, PROT_NONE) != 0) {
		munmap(map, maplen);
		return -ENOMEM;
	}
	/* Relaxed: a statistic; orders no other memory. */
	atomic_fetch_add_explicit(&stacks_mapped, 1, memory_order_relaxed);
	st->map = map;
	st->maplen = maplen;
	st->lo = map + page_size;
	st->size = size;
	st->vg_id = vg_register(st->lo, size);
	return 0;
}

void reap__stack_release(struct reap__stack *st)
{
	if (st->map == NULL)
		return;
	if (ncache == REAP__STACK_CACHE) {
		unmap(st);
	} else {
		asan_unpoison(st->lo, st->size);
		cache[ncache++] = *st;
	}
	st->map = NULL;
}

/* ------------------------------------------------------------------ */
/* contexts                                                           */

/* The context that switched last on this thread, and the one it
 * switched to (the running one, once the switch is done). */
static __thread struct reap__ctx *tl_prev, *tl_next;

void reap__ctx_make(struct reap__ctx *ctx, struct reap__stack *st,
		    void (*fn)(void *), void *arg)
{
	*ctx = (struct reap__ctx){0};
	ctx->fn = fn;
	ctx->arg = arg;
	ctx->stack_lo = st->lo;
	ctx->stack_size = st->size;
	ctx->state = CTX_MADE;
	ctx->sp = reap__ctx_arch_init(st->lo, st->lo + st->size);
	tsan_make(ctx);
}

static void jump(struct reap__ctx *from, struct reap__ctx *to, int last)
{
	tl_prev = from;
	tl_next = to;
	asan_start(from, to, last);
	tsan_switch(from, to);
	reap__ctx_jump(&from->sp, to->sp);
	/* Resumed: whoever switched to us set tl_prev and tl_next. */
	asan_finish(from, tl_prev);
}

void reap__ctx_switch(struct reap__ctx *from, struct reap__ctx *to)
{
	if (unlikely(to->state == CTX_DONE))
		reap__misuse("reap: switch to coroutine context %p, whose "
			     "function has returned", (void *)to);
	if (unlikely(from->state == CTX_DONE))
		reap__misuse("reap: switch from coroutine context %p, whose "
			     "function has returned", (void *)from);
	to->resumer = from;
	jump(from, to, 0);
}

void reap__ctx_start(void)
{
	struct reap__ctx *self = tl_next;

	asan_finish(self, tl_prev);
	self->fn(self->arg);
	self->state = CTX_DONE;
	jump(self, self->resumer, 1);
	reap__misuse("reap: finished coroutine context %p was resumed", (void *)self);
}

int reap__ctx_finished(const struct reap__ctx *ctx)
{
	return ctx->state == CTX_DONE;
}

void reap__ctx_destroy(struct reap__ctx *ctx)
{
	if (unlikely(ctx == tl_next && ctx->state != CTX_DONE))
		reap__misuse("reap: destroy of the running coroutine context %p",
			     (void *)ctx);
	tsan_destroy(ctx);
	if (ctx == tl_next)
		tl_next = NULL;
	if (ctx == tl_prev)
		tl_prev = NULL;
}
