/*
 * loop: the coroutine context switch and its stacks (internal layer).
 * Every test ends with no stack mapped: stacks are released and the
 * calling thread's cache drained (end()).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"
#include "../../src/loop/ctx.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

static struct reap__ctx main_ctx;

static void end(void)
{
	reap__stack_cache_drain();
	ASSERT_EQ_INT(reap__stack_mapped(), 0);
}

/* ------------------------------------------------------------------ */

struct pp {
	struct reap__ctx co;
	long value; /* passed back and forth */
	int rounds;
};

static void ping(void *arg)
{
	struct pp *p = arg;

	for (int i = 0; i < p->rounds; i++) {
		p->value = p->value * 2 + 1; /* main sent v; we answer 2v+1 */
		reap__ctx_switch(&p->co, &main_ctx);
	}
	p->value = -1;
}

TEST(ctx_ping_pong)
{
	struct reap__stack st;
	struct pp p = {.rounds = 10000};

	ASSERT_OK(reap__stack_acquire(&st, 0));
	reap__ctx_make(&p.co, &st, ping, &p);
	for (int i = 0; i < p.rounds; i++) {
		p.value = i;
		reap__ctx_switch(&main_ctx, &p.co);
		ASSERT_EQ_INT(p.value, 2L * i + 1);
		ASSERT_FALSE(reap__ctx_finished(&p.co));
	}
	reap__ctx_switch(&main_ctx, &p.co); /* runs to the end of ping */
	ASSERT_TRUE(reap__ctx_finished(&p.co));
	ASSERT_EQ_INT(p.value, -1);
	reap__ctx_destroy(&p.co);
	reap__stack_release(&st);
	ASSERT_EQ_INT(reap__stack_mapped(), 1); /* cached */
	end();
}

/* ------------------------------------------------------------------ */

#define NCO 16
#define NROUNDS 100

struct rr {
	struct reap__ctx ctx[NCO];
	struct reap__stack st[NCO];
	int trace[NCO * NROUNDS];
	int ntrace;
};
static struct rr rr;

static void rr_fn(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int r = 0; r < NROUNDS; r++) {
		rr.trace[rr.ntrace++] = id;
		/* Hand over to the next coroutine; the last one to main. */
		reap__ctx_switch(&rr.ctx[id], id + 1 < NCO ? &rr.ctx[id + 1] : &main_ctx);
	}
}

TEST(ctx_round_robin)
{
	for (int i = 0; i < NCO; i++) {
		ASSERT_OK(reap__stack_acquire(&rr.st[i], 0));
		reap__ctx_make(&rr.ctx[i], &rr.st[i], rr_fn, (void *)(intptr_t)i);
	}
	for (int r = 0; r < NROUNDS; r++)
		reap__ctx_switch(&main_ctx, &rr.ctx[0]);
	ASSERT_EQ_INT(rr.ntrace, NCO * NROUNDS);
	for (int k = 0; k < NCO * NROUNDS; k++)
		ASSERT_EQ_INT(rr.trace[k], k % NCO);
	/* Resumed once more, each finishes and returns to its resumer,
	 * main. */
	for (int i = 0; i < NCO; i++) {
		reap__ctx_switch(&main_ctx, &rr.ctx[i]);
		ASSERT_TRUE(reap__ctx_finished(&rr.ctx[i]));
		reap__ctx_destroy(&rr.ctx[i]);
		reap__stack_release(&rr.st[i]);
	}
	ASSERT_EQ_INT(reap__stack_mapped(), NCO - REAP__STACK_CACHE);
	/* Stacks beyond the cache's bound were unmapped at release. */
	end();
}

/* ------------------------------------------------------------------ */

struct deep {
	struct reap__ctx co;
	const char *lo, *hi;
	const char *deepest;
	long sum;
};

static __attribute__((noinline)) long recurse(struct deep *d, int n)
{
	volatile char buf[128];
	long s;

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)(n + (int)i);
	if (n == 0) {
		d->deepest = (const char *)buf;
		reap__ctx_switch(&d->co, &main_ctx); /* suspend at the bottom */
		return buf[0];
	}
	s = recurse(d, n - 1);
	return s + buf[sizeof buf - 1];
}

static void deep_fn(void *arg)
{
	struct deep *d = arg;

	d->sum = recurse(d, 1000);
}

TEST(ctx_deep_recursion)
{
	struct reap__stack st;
	struct deep d = {0};
	long want = 0;

	ASSERT_OK(reap__stack_acquire(&st, 1024 * 1024));
	ASSERT_GE_INT((long)st.size, 1024 * 1024);
	reap__ctx_make(&d.co, &st, deep_fn, &d);
	reap__ctx_switch(&main_ctx, &d.co);
	ASSERT_TRUE(d.deepest >= st.lo && d.deepest < st.lo + st.size);
	/* At least a frame's worth of each level was used. */
	ASSERT_GT_INT((long)(st.lo + st.size - d.deepest), 1000L * 128);
	reap__ctx_switch(&main_ctx, &d.co);
	ASSERT_TRUE(reap__ctx_finished(&d.co));
	for (int n = 1; n <= 1000; n++)
		want += (char)(n + 127);
	ASSERT_EQ_INT(d.sum, want);
	reap__ctx_destroy(&d.co);
	reap__stack_release(&st);
	end();
}

/* ------------------------------------------------------------------ */

/* Many values live across each switch, on both sides: whatever registers
 * the compiler keeps them in must come back intact. */
struct regs {
	struct reap__ctx co;
	volatile long seed;
	long result;
};

#define MIX(x, k) ((unsigned long)(x) * 6364136223846793005ul + (unsigned long)(k))
typedef unsigned long ul;

static __attribute__((noinline)) long churn(struct reap__ctx *self, long seed,
					    int switches)
{
	ul a = MIX(seed, 1), b = MIX(a, 2), c = MIX(b, 3), d = MIX(c, 4);
	ul e = MIX(d, 5), f = MIX(e, 6), g = MIX(f, 7), h = MIX(g, 8);
	ul i = MIX(h, 9), j = MIX(i, 10), k = MIX(j, 11), l = MIX(k, 12);
	double x = (double)(seed & 0xffff), y = x * 0.5, z = x + 3.25;

	for (int n = 0; n < switches; n++) {
		reap__ctx_switch(self, &main_ctx);
		a = MIX(a, b) ^ l;
		b = MIX(b, c) ^ k;
		c = MIX(c, d) ^ j;
		d = MIX(d, e) ^ i;
		e = MIX(e, f) ^ h;
		f = MIX(f, g) ^ a;
		g = MIX(g, h) ^ b;
		h = MIX(h, i) ^ c;
		i = MIX(i, j) ^ d;
		j = MIX(j, k) ^ e;
		k = MIX(k, l) ^ f;
		l = MIX(l, a) ^ g;
		x = x * 1.5 + y;
		y = y - z * 0.25;
		z = z + x * 0.125;
	}
	return (long)(a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^ l ^ (ul)(long)x ^
		      (ul)(long)y ^ (ul)(long)z);
}

static void regs_fn(void *arg)
{
	struct regs *r = arg;

	r->result = churn(&r->co, r->seed, 50);
}

static struct reap__ctx dummy; /* a context that stays suspended */

TEST(ctx_callee_saved_registers)
{
	struct reap__stack st, st2;
	struct regs r = {.seed = 12345}, r2 = {.seed = 12345};
	long want, mine;

	ASSERT_OK(reap__stack_acquire(&st, 0));
	ASSERT_OK(reap__stack_acquire(&st2, 0));
	reap__ctx_make(&r.co, &st, regs_fn, &r);
	reap__ctx_make(&r2.co, &st2, regs_fn, &r2);
	/* Main interleaves its own churn of many live values. */
	{
		ul a = MIX(r.seed, 21), b = MIX(a, 22), c = MIX(b, 23), d = MIX(c, 24);
		ul e = MIX(d, 25), f = MIX(e, 26), g = MIX(f, 27), h = MIX(g, 28);
		ul a0 = a, b0 = b, c0 = c, d0 = d, e0 = e, f0 = f, g0 = g, h0 = h;

		while (!reap__ctx_finished(&r.co)) {
			reap__ctx_switch(&main_ctx, &r.co);
			a += b; b ^= c; c += d; d ^= e; e += f; f ^= g; g += h; h ^= a;
		}
		for (int n = 0; n < 51; n++) {
			a0 += b0; b0 ^= c0; c0 += d0; d0 ^= e0;
			e0 += f0; f0 ^= g0; g0 += h0; h0 ^= a0;
		}
		mine = (long)(a ^ b ^ c ^ d ^ e ^ f ^ g ^ h);
		ASSERT_EQ_INT(mine, (long)(a0 ^ b0 ^ c0 ^ d0 ^ e0 ^ f0 ^ g0 ^ h0));
	}
	want = r.result;
	/* Again on a second context, main doing nothing in between. */
	while (!reap__ctx_finished(&r2.co))
		reap__ctx_switch(&main_ctx, &r2.co);
	ASSERT_EQ_INT(r2.result, want);
	/* And computed inline, with no switch at all. */
	{
		long seed = r.seed;
		ul a = MIX(seed, 1), b = MIX(a, 2), c = MIX(b, 3), d = MIX(c, 4);
		ul e = MIX(d, 5), f = MIX(e, 6), g = MIX(f, 7), h = MIX(g, 8);
		ul i = MIX(h, 9), j = MIX(i, 10), k = MIX(j, 11), l = MIX(k, 12);
		double x = (double)(seed & 0xffff), y = x * 0.5, z = x + 3.25;

		for (int n = 0; n < 50; n++) {
			a = MIX(a, b) ^ l;
			b = MIX(b, c) ^ k;
			c = MIX(c, d) ^ j;
			d = MIX(d, e) ^ i;
			e = MIX(e, f) ^ h;
			f = MIX(f, g) ^ a;
			g = MIX(g, h) ^ b;
			h = MIX(h, i) ^ c;
			i = MIX(i, j) ^ d;
			j = MIX(j, k) ^ e;
			k = MIX(k, l) ^ f;
			l = MIX(l, a) ^ g;
			x = x * 1.5 + y;
			y = y - z * 0.25;
			z = z + x * 0.125;
		}
		ASSERT_EQ_INT(want, (long)(a ^ b ^ c ^ d ^ e ^ f ^ g ^ h ^ i ^ j ^ k ^
					   l ^ (ul)(long)x ^ (ul)(long)y ^ (ul)(long)z));
	}
	reap__ctx_destroy(&r.co);
	reap__ctx_destroy(&r2.co);
	reap__stack_release(&st);
	reap__stack_release(&st2);
	end();
}

/* ------------------------------------------------------------------ */

/*
 * The rounding mode, read and set straight in the control registers (no
 * libm): RM_* on x86-64 is the MXCSR's rounding field, which set_rm()
 * also writes to the x87 control word; on aarch64, the FPCR's.
 */
#if defined(__x86_64__)
#define RM_NEAR 0u
#define RM_DOWN 1u
#define RM_UP 2u
static unsigned get_rm(void)
{
	unsigned csr;

	__asm__ volatile("stmxcsr %0" : "=m"(csr));
	return (csr >> 13) & 3u;
}
static unsigned get_x87_rm(void)
{
	unsigned short cw;

	__asm__ volatile("fnstcw %0" : "=m"(cw));
	return (cw >> 10) & 3u;
}
static void set_rm(unsigned rm)
{
	unsigned csr;
	unsigned short cw;

	__asm__ volatile("stmxcsr %0" : "=m"(csr));
	csr = (csr & ~0x6000u) | rm << 13;
	__asm__ volatile("ldmxcsr %0" : : "m"(csr) : "memory");
	__asm__ volatile("fnstcw %0" : "=m"(cw));
	cw = (unsigned short)((cw & ~0x0c00u) | rm << 10);
	__asm__ volatile("fldcw %0" : : "m"(cw) : "memory");
}
#define HAVE_RM 1
#elif defined(__aarch64__)
#define RM_NEAR 0u
#define RM_UP 1u
#define RM_DOWN 2u
static unsigned get_rm(void)
{
	unsigned long fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	return (unsigned)(fpcr >> 22) & 3u;
}
static unsigned get_x87_rm(void)
{
	return get_rm();
}
static void set_rm(unsigned rm)
{
	unsigned long fpcr;

	__asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
	fpcr = (fpcr & ~(3ul << 22)) | (unsigned long)rm << 22;
	__asm__ volatile("msr fpcr, %0" : : "r"(fpcr) : "memory");
}
#define HAVE_RM 1
#endif

#ifdef HAVE_RM
static void need_rm(void) {}
#else
#define RM_NEAR 0u
#define RM_UP 1u
#define RM_DOWN 2u
static unsigned get_rm(void) { return 0; }
static unsigned get_x87_rm(void) { return 0; }
static void set_rm(unsigned rm) {}
static void need_rm(void)
{
	test_skip("no rounding-mode access for this architecture in the test");
}
#endif
struct fp {
	struct reap__ctx co;
	int ok_start, ok_after;
	double third; /* 1/3 computed by the coroutine after a switch */
};

/* Out of line, so that the division stays between the mode changes. */
static __attribute__((noinline)) double divide(double a, double b)
{
	volatile double x = a, y = b, q;

	q = x / y;
	return q;
}

static void fp_fn(void *arg)
{
	struct fp *f = arg;

	/* Started with its maker's mode (to nearest). */
	f->ok_start = get_rm() == RM_NEAR && get_x87_rm() == RM_NEAR;
	set_rm(RM_DOWN);
	reap__ctx_switch(&f->co, &main_ctx);
	/* Main set upward meanwhile; ours is still downward. */
	f->ok_after = get_rm() == RM_DOWN && get_x87_rm() == RM_DOWN;
	f->third = divide(1.0, 3.0);
}

TEST(ctx_fp_control_per_context)
{
	struct reap__stack st;
	struct fp f = {0};
	double up;

	need_rm();
	set_rm(RM_NEAR);
	ASSERT_OK(reap__stack_acquire(&st, 0));
	reap__ctx_make(&f.co, &st, fp_fn, &f);
	reap__ctx_switch(&main_ctx, &f.co);
	ASSERT_TRUE(f.ok_start);
	/* The coroutine's downward mode did not leak to main. */
	ASSERT_EQ_INT(get_rm(), RM_NEAR);
	ASSERT_EQ_INT(get_x87_rm(), RM_NEAR);
	set_rm(RM_UP);
	reap__ctx_switch(&main_ctx, &f.co);
	ASSERT_TRUE(reap__ctx_finished(&f.co));
	ASSERT_TRUE(f.ok_after);
	/* Main's upward mode survived the coroutine's downward one. */
	ASSERT_EQ_INT(get_rm(), RM_UP);
	ASSERT_EQ_INT(get_x87_rm(), RM_UP);
	up = divide(1.0, 3.0);
	set_rm(RM_NEAR);
	/* Rounding was really in effect on each side (valgrind keeps the
	 * modes in the registers but computes to nearest). */
	if (!RUNNING_ON_VALGRIND)
		ASSERT_TRUE(f.third < up);
	reap__ctx_destroy(&f.co);
	reap__stack_release(&st);
	end();
}

/* ------------------------------------------------------------------ */

static void touch_fn(void *arg)
{
	volatile char buf[256];

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (char)i;
	*(int *)arg += buf[7];
}

TEST(ctx_stack_cache_reuse)
{
	struct reap__stack a, b, c;
	struct reap__ctx co;
	char *first;
	int n = 0;

	ASSERT_OK(reap__stack_acquire(&a, 0));
	ASSERT_EQ_INT(reap__stack_mapped(), 1);
	ASSERT_EQ_INT((long)a.size, REAP__STACK_DEFAULT);
	reap__ctx_make(&co, &a, touch_fn, &n);
	reap__ctx_switch(&main_ctx, &co);
	reap__ctx_destroy(&co);
	first = a.map;
	reap__stack_release(&a);
	ASSERT_NULL(a.map);
	/* The second acquisition of that size takes the cached stack. */
	ASSERT_OK(reap__stack_acquire(&b, 0));
	ASSERT_EQ_PTR(b.map, first);
	ASSERT_EQ_INT(reap__stack_mapped(), 1);
	reap__ctx_make(&co, &b, touch_fn, &n);
	reap__ctx_switch(&main_ctx, &co);
	reap__ctx_destroy(&co);
	ASSERT_EQ_INT(n, 14);
	/* Another size maps another stack; a tiny one is raised. */
	ASSERT_OK(reap__stack_acquire(&c, 1));
	ASSERT_EQ_INT((long)c.size, REAP__STACK_MIN);
	ASSERT_NE_PTR(c.map, b.map);
	ASSERT_EQ_INT(reap__stack_mapped(), 2);
	reap__stack_release(&b);
	reap__stack_release(&c);
	ASSERT_EQ_INT(reap__stack_mapped(), 2);
	end();
}

static void *thread_stacks(void *arg)
{
	struct reap__stack st[3];

	for (int i = 0; i < 3; i++)
		if (reap__stack_acquire(&st[i], 0) != 0)
			return NULL;
	for (int i = 0; i < 3; i++)
		reap__stack_release(&st[i]);
	return arg;
}

TEST(ctx_stack_cache_drained_at_thread_exit)
{
	static int token;
	pthread_t t;
	void *ret;

	ASSERT_EQ_INT(pthread_create(&t, NULL, thread_stacks, &token), 0);
	ASSERT_EQ_INT(pthread_join(t, &ret), 0);
	ASSERT_EQ_PTR(ret, &token);
	ASSERT_EQ_INT(reap__stack_mapped(), 0);
}

/* ------------------------------------------------------------------ */

static volatile int overflow_limit = 1 << 30; /* never reached */

static __attribute__((noinline)) int overflow(int n)
{
	volatile char buf[256];

	if (n == overflow_limit)
		return 0;
	buf[0] = (char)n;
	buf[sizeof buf - 1] = (char)n;
	return overflow(n + 1) + buf[0] + buf[sizeof buf - 1];
}

static void overflow_fn(void *arg)
{
	*(int *)arg = overflow(0);
}

TEST(ctx_stack_overflow_hits_guard)
{
	pid_t pid;
	int status;

	pid = fork();
	ASSERT_GE_INT(pid, 0);
	if (pid == 0) {
		struct reap__stack st;
		struct reap__ctx co;
		int r = 0;

		/* The default action, not a sanitizer's handler: it would
		 * need a stack of its own and would exit instead of dying. */
		signal(SIGSEGV, SIG_DFL);
		if (reap__stack_acquire(&st, 0) != 0)
			_exit(3);
		reap__ctx_make(&co, &st, overflow_fn, &r);
		reap__ctx_switch(&main_ctx, &co);
		_exit(4); /* not reached */
	}
	ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFSIGNALED(status));
	ASSERT_EQ_INT(WTERMSIG(status), SIGSEGV);
}

/* ------------------------------------------------------------------ */

TEST(ctx_stack_alloc_failure_sweep)
{
	/* Once with an empty cache (mmap), once with a cached stack. */
	for (int cached = 0; cached < 2; cached++) {
		struct reap__stack keep;
		int failed = 0;

		if (cached) {
			ASSERT_OK(reap__stack_acquire(&keep, 0));
			reap__stack_release(&keep);
		}
		for (int n = 1;; n++) {
			struct reap__stack st = {.map = (char *)1};
			long mapped = reap__stack_mapped();
			struct test_snap before = test_snap();
			long seen;
			int rc;

			ASSERT_LT_INT(n, 16);
			reap_fault_alloc(n);
			rc = reap__stack_acquire(&st, 0);
			seen = test_fault_disarm();
			if (rc == 0) {
				ASSERT_EQ_INT(reap__stack_mapped(), cached ? mapped : mapped + 1);
				reap__stack_release(&st);
				break;
			}
			failed++;
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_GE_INT(seen, n);
			ASSERT_EQ_PTR(st.map, (char *)1); /* untouched */
			ASSERT_EQ_INT(reap__stack_mapped(), mapped);
			ASSERT_UNCHANGED(before);
		}
		ASSERT_GE_INT(failed, 1);
	}
	end();
}

/* ------------------------------------------------------------------ */

struct alloc {
	struct reap__ctx co;
	int steps;
};

static void alloc_fn(void *arg)
{
	struct alloc *a = arg;

	for (int i = 0; i < 100; i++) {
		char *p = reap_malloc(100 + (size_t)i);

		ASSERT_NOT_NULL(p);
		memset(p, i, 100 + (size_t)i);
		reap__ctx_switch(&a->co, &main_ctx);
		ASSERT_EQ_INT(p[99 + i], (char)i);
		reap_free(p);
		a->steps++;
	}
}

TEST(ctx_coroutine_allocates)
{
	struct reap__stack st;
	struct alloc a = {0};
	size_t live = reap_alloc_live();

	ASSERT_OK(reap__stack_acquire(&st, 0));
	reap__ctx_make(&a.co, &st, alloc_fn, &a);
	while (!reap__ctx_finished(&a.co)) {
		char *q = reap_malloc(64);

		ASSERT_NOT_NULL(q);
		reap__ctx_switch(&main_ctx, &a.co);
		reap_free(q);
	}
	ASSERT_EQ_INT(a.steps, 100);
	ASSERT_EQ_SIZE(reap_alloc_live(), live);
	reap__ctx_destroy(&a.co);
	reap__stack_release(&st);
	end();
}

/* ------------------------------------------------------------------ */

/* Two coroutines on one thread update plain shared data in turn: the
 * switches order them, so TSan must report nothing. */
static long shared_counter;
static long shared_log[200];

struct duo {
	struct reap__ctx co[2];
	int id[2];
};
static struct duo duo;

static void duo_fn(void *arg)
{
	int id = *(int *)arg;

	for (int i = 0; i < 100; i++) {
		shared_log[shared_counter] = id;
		shared_counter++;
		reap__ctx_switch(&duo.co[id], id == 0 ? &duo.co[1] : &main_ctx);
	}
}

TEST(ctx_shared_data_no_race)
{
	struct reap__stack st[2];

	for (int i = 0; i < 2; i++) {
		duo.id[i] = i;
		ASSERT_OK(reap__stack_acquire(&st[i], 0));
		reap__ctx_make(&duo.co[i], &st[i], duo_fn, &duo.id[i]);
	}
	for (int i = 0; i < 100; i++) {
		reap__ctx_switch(&main_ctx, &duo.co[0]);
		ASSERT_EQ_INT(shared_counter, 2L * (i + 1));
	}
	for (int i = 0; i < 200; i++)
		ASSERT_EQ_INT(shared_log[i], i % 2);
	for (int i = 0; i < 2; i++) {
		reap__ctx_switch(&main_ctx, &duo.co[i]); /* finishes */
		ASSERT_TRUE(reap__ctx_finished(&duo.co[i]));
		reap__ctx_destroy(&duo.co[i]);
		reap__stack_release(&st[i]);
	}
	end();
}

/* A stack used by one coroutine, then (from the cache) by the next, the
 * first one suspended for good and destroyed: the same addresses written
 * by two fibers, ordered by the switches. */
static void scribble_fn(void *arg)
{
	volatile long buf[512];

	for (size_t i = 0; i < 512; i++)
		buf[i] = (long)i * (long)(intptr_t)arg;
	(void)buf[511];
	reap__ctx_switch(&dummy, &main_ctx);
}

static void scribble2_fn(void *arg)
{
	volatile long buf[512];
	long s = 0;

	for (size_t i = 0; i < 512; i++)
		buf[i] = (long)i;
	for (size_t i = 0; i < 512; i++)
		s += buf[i];
	*(long *)arg = s;
}

TEST(ctx_stack_reuse_no_race)
{
	struct reap__stack st, st2;
	char *first;
	long s = 0;

	for (int round = 0; round < 4; round++) {
		ASSERT_OK(reap__stack_acquire(&st, 0));
		/* The first never finishes: it is destroyed while suspended. */
		reap__ctx_make(&dummy, &st, scribble_fn, (void *)(intptr_t)(round + 1));
		reap__ctx_switch(&main_ctx, &dummy);
		ASSERT_FALSE(reap__ctx_finished(&dummy));
		reap__ctx_destroy(&dummy);
		first = st.map;
		reap__stack_release(&st);
		ASSERT_OK(reap__stack_acquire(&st2, 0));
		ASSERT_EQ_PTR(st2.map, first);
		{
			struct reap__ctx co;

			reap__ctx_make(&co, &st2, scribble2_fn, &s);
			reap__ctx_switch(&main_ctx, &co);
			ASSERT_TRUE(reap__ctx_finished(&co));
			reap__ctx_destroy(&co);
		}
		ASSERT_EQ_INT(s, 511L * 512 / 2);
		reap__stack_release(&st2);
	}
	end();
}

/* ------------------------------------------------------------------ */

static void finished_fn(void *arg) {}

static void switch_to_finished(void *arg)
{
	struct reap__stack st;
	struct reap__ctx co;

	if (reap__stack_acquire(&st, 0) != 0)
		return;
	reap__ctx_make(&co, &st, finished_fn, NULL);
	reap__ctx_switch(&main_ctx, &co);
	reap__ctx_switch(&main_ctx, &co); /* misuse */
}

TEST(ctx_switch_to_finished_is_misuse)
{
	const char *msg = test_expect_misuse(switch_to_finished, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "function has returned");
}
