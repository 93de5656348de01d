/*
 * base: error names, raisef messages, the allocator hook with its live
 * count and fault injection, the clock, REAP_DEBUG, the misuse and report
 * hooks, per-thread state and the process start-up and exit.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* ------------------------------------------------------------------ */
/* Error names                                                          */

static const struct {
	int code;
	const char *name, *desc;
} reap_codes[] = {
	{REAP_ECLOSED, "REAP_ECLOSED", "owner is closed or closing"},
	{REAP_ELEAK, "REAP_ELEAK", "resources are still open"},
	{REAP_ECHAINED, "REAP_ECHAINED", "several errors; see the chain"},
};

const char *reap_strerror(int code)
{
	if (code == 0)
		return "Success";
	for (size_t i = 0; i < sizeof reap_codes / sizeof reap_codes[0]; i++)
		if (reap_codes[i].code == code)
			return reap_codes[i].desc;
	if (code < 0 && code > -REAP_EBASE) {
		const char *d = strerrordesc_np(-code);
		if (d != NULL)
			return d;
	}
	return "Unknown error";
}

const char *reap_errname(int code)
{
	if (code == 0)
		return "0";
	for (size_t i = 0; i < sizeof reap_codes / sizeof reap_codes[0]; i++)
		if (reap_codes[i].code == code)
			return reap_codes[i].name;
	if (code < 0 && code > -REAP_EBASE) {
		const char *n = strerrorname_np(-code);
		if (n != NULL)
			return n;
	}
	return "E?";
}

static __thread struct reap__raise raise_tls;

int reap_raisef_at(const reap_site *site, int code, const char *fmt, ...)
{
	va_list ap;

	raise_tls.code = code;
	raise_tls.site = site;
	va_start(ap, fmt);
	vsnprintf(raise_tls.msg, sizeof raise_tls.msg, fmt, ap);
	va_end(ap);
	return code;
}

/* The pending raise for code, if the last reap_raisef() on this thread
 * was for it; the pending message is consumed either way. */
struct reap__raise *reap__raise_take(int code)
{
	int had = raise_tls.code;

	raise_tls.code = 0;
	return (had != 0 && had == code) ? &raise_tls : NULL;
}

/* ------------------------------------------------------------------ */
/* Allocation                                                           */

static void *sys_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *sys_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void sys_free(void *ctx, void *p) { (void)ctx; free(p); }

static reap_allocator alloc_hook = {sys_malloc, sys_realloc, sys_free, NULL};
/*
 * Blocks handed out and not yet freed (live), and blocks kept by caches
 * and quarantines (held). Each thread counts its own changes in its
 * state, where only it writes them, so that an allocation costs no
 * atomic read-modify-write; a reader sums them with these totals, which
 * take the counts of threads that have left and of threads without a
 * state (before start-up, after their exit).
 */
static atomic_long alloc_live;
static atomic_long alloc_held;

static inline void count_live(long d)
{
	struct reap__tstate *ts = reap__ts_self;

	if (likely(ts != NULL))
		WR(ts->alloc_live, ts->alloc_live + d); /* only we write it */
	else
		atomic_fetch_add_explicit(&alloc_live, d, memory_order_relaxed);
}

static inline void count_held(long d)
{
	struct reap__tstate *ts = reap__ts_self;

	if (likely(ts != NULL))
		WR(ts->alloc_held, ts->alloc_held + d);
	else
		atomic_fetch_add_explicit(&alloc_held, d, memory_order_relaxed);
}

/* Fold a leaving thread's counts into the totals (under the lock of
 * the ledger's thread registry, so that a reader sees them once). */
void reap__alloc_fold(struct reap__tstate *ts)
{
	atomic_fetch_add_explicit(&alloc_live, ts->alloc_live, memory_order_relaxed);
	atomic_fetch_add_explicit(&alloc_held, ts->alloc_held, memory_order_relaxed);
	WR(ts->alloc_live, 0);
	WR(ts->alloc_held, 0);
}

static long alloc_sum(int held)
{
	long sum = 0;

	reap__ledger_threads_alloc(&sum, held);
	return sum;
}

/* Called by the ledger with its thread registry locked. */
long reap__alloc_total(int held)
{
	return atomic_load_explicit(held ? &alloc_held : &alloc_live,
				    memory_order_relaxed);
}
static atomic_long fault_nth;     /* fail when fault_seen reaches it */
static atomic_long fault_seen;    /* acquisitions since the last arming */

int reap_set_allocator(const reap_allocator *a)
{
	struct reap__tstate *ts = reap__ts();

	if (a != NULL && (a->malloc == NULL || a->realloc == NULL || a->free == NULL))
		return -EINVAL;
	/* Blocks that reap keeps for reuse came from the current allocator
	 * too: give back this thread's, and refuse while others hold any. */
	reap__scope_free_quarantine(ts);
	reap__block_cache_drain(ts);
	if (alloc_sum(0) != 0 || alloc_sum(1) != 0)
		return -EBUSY;
	if (a == NULL)
		alloc_hook = (reap_allocator){sys_malloc, sys_realloc, sys_free, NULL};
	else
		alloc_hook = *a;
	return 0;
}

void reap_fault_alloc(long nth)
{
	/* Relaxed is enough: the counter is a test knob, and the thread
	 * that arms it is the one whose acquisitions it means to fail. */
	atomic_store_explicit(&fault_seen, 0, memory_order_relaxed);
	atomic_store_explicit(&fault_nth, nth < 0 ? 0 : nth, memory_order_relaxed);
}

long reap_fault_count(void)
{
	return atomic_load_explicit(&fault_seen, memory_order_relaxed);
}

/* True if this acquisition is the one to fail. Counts only while armed,
 * so that an unarmed process pays one relaxed load. */
static int fault_hit(void)
{
	long nth = atomic_load_explicit(&fault_nth, memory_order_relaxed);

	if (likely(nth == 0))
		return 0;
	return atomic_fetch_add_explicit(&fault_seen, 1, memory_order_relaxed) + 1 == nth;
}

void reap__spin_wait(atomic_int *l)
{
	/* Acquire on the exchange, as in reap__spin_lock(); the load is
	 * relaxed, only a hint that the lock is free. */
	do {
		for (int i = 0; atomic_load_explicit(l, memory_order_relaxed); i++) {
			if (i >= 64)
				sched_yield();
			else
				reap__cpu_relax();
		}
	} while (atomic_exchange_explicit(l, 1, memory_order_acquire));
}

int reap__fault_point(void)
{
	return fault_hit();
}

void *reap_malloc(size_t size)
{
	void *p;

	if (unlikely(fault_hit()) ||
	    (p = alloc_hook.malloc(alloc_hook.ctx, size ? size : 1)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	/* Relaxed: the count is a statistic; frees of this block happen
	 * after its allocation in some thread's order anyway. */
	count_live(1);
	return p;
}

void *reap_calloc(size_t n, size_t size)
{
	size_t total;
	void *p;

	if (__builtin_mul_overflow(n, size, &total)) {
		errno = ENOMEM;
		return NULL;
	}
	if ((p = reap_malloc(total)) != NULL)
		memset(p, 0, total);
	return p;
}

void *reap_realloc(void *ptr, size_t size)
{
	void *p;

	if (ptr == NULL)
		return reap_malloc(size);
	if (unlikely(fault_hit()) ||
	    (p = alloc_hook.realloc(alloc_hook.ctx, ptr, size ? size : 1)) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	return p;
}

void reap_free(void *ptr)
{
	if (ptr == NULL)
		return;
	alloc_hook.free(alloc_hook.ctx, ptr);
	count_live(-1);
}

void reap__alloc_forget(void *p)
{
	(void)p;
	count_live(-1);
	count_held(1);
}

void reap__free_forgotten(void *p)
{
	alloc_hook.free(alloc_hook.ctx, p);
	count_held(-1);
}

/*
 * The block cache. Closing a scope frees its cleanup chunks and memory
 * blocks; glibc gives such memory back to the kernel when the top of its
 * heap grows past its trim threshold, so the next scope of the same size
 * pays a page fault every 4 KiB. Each thread therefore keeps the blocks it
 * frees, by exact size (a handful of sizes: the chunk and block sizes of
 * scope.c), up to a process-wide limit, and drains them at exit. Cached
 * blocks are not live: reap_alloc_live() does not count them. Taking one
 * from the cache is a fallible acquisition like any allocation, so fault
 * injection sees the same sites whether or not the cache is warm.
 */
/* Bytes kept by all threads' caches. Each thread counts its changes in
 * ts->cache_pend and adds them here once they pass CACHE_BATCH either
 * way, so that a cached alloc or free costs no atomic operation; the
 * limit is a soft bound, and may be passed by up to CACHE_BATCH bytes
 * per thread. */
#define CACHE_BATCH 65536
static atomic_long cache_bytes;

static inline void cache_count(struct reap__tstate *ts, long d)
{
	ts->cache_pend += d;
	if (unlikely(ts->cache_pend > CACHE_BATCH || ts->cache_pend < -CACHE_BATCH)) {
		/* Relaxed: a statistic compared against a soft bound. */
		atomic_fetch_add_explicit(&cache_bytes, ts->cache_pend,
					  memory_order_relaxed);
		ts->cache_pend = 0;
	}
}
static size_t cache_limit = (size_t)128 << 20;

void reap_set_cache_limit(size_t bytes)
{
	__atomic_store_n(&cache_limit, bytes, __ATOMIC_RELAXED);
	if (bytes == 0)
		reap_cache_trim();
}

void reap_cache_trim(void)
{
	reap__block_cache_drain(reap__ts());
}

void *reap__block_alloc(size_t size)
{
	struct reap__tstate *ts = reap__ts();

	for (unsigned i = 0; i < REAP__CACHE_SIZES; i++) {
		void **head;

		if (ts->bcache[i].size != size || ts->bcache[i].head == NULL)
			continue;
		if (unlikely(fault_hit())) {
			errno = ENOMEM;
			return NULL;
		}
		head = ts->bcache[i].head;
		ts->bcache[i].head = *head;
		cache_count(ts, -(long)size);
		count_held(-1);
		count_live(1);
		return head;
	}
	return reap_malloc(size);
}

/*
 * A block aligned to align (a power of two, at most 4096). With the
 * default allocator it comes from posix_memalign at its exact size; with
 * a user's allocator, which has no aligned call, size + align - 16 bytes
 * are allocated and the caller aligns inside them. *bytes receives the
 * size to pass back to reap__block_free(); the returned pointer is what
 * to free, and aligning it up gives the block.
 */
void *reap__block_alloc_aligned(size_t size, size_t align, size_t *bytes)
{
	struct reap__tstate *ts;
	void *p;

	if (alloc_hook.malloc != sys_malloc) {
		*bytes = size + align - 16;
		return reap__block_alloc(*bytes);
	}
	/* Odd: no size of an unaligned block (a multiple of 16) matches. */
	*bytes = size | 1;
	ts = reap__ts();
	for (unsigned i = 0; i < REAP__CACHE_SIZES; i++)
		if (ts->bcache[i].size == *bytes && ts->bcache[i].head != NULL)
			return reap__block_alloc(*bytes);
	if (unlikely(fault_hit()) || posix_memalign(&p, align, size) != 0) {
		errno = ENOMEM;
		return NULL;
	}
	count_live(1);
	return p;
}

void reap__block_free(void *p, size_t size)
{
	struct reap__tstate *ts = &reap__ts_tls;
	unsigned i, free_slot = REAP__CACHE_SIZES;
	long kept;

	if (p == NULL)
		return;
	kept = atomic_load_explicit(&cache_bytes, memory_order_relaxed) +
	       ts->cache_pend + (long)size;
	if (!ts->ready ||
	    (kept > 0 && (size_t)kept > __atomic_load_n(&cache_limit, __ATOMIC_RELAXED))) {
		reap_free(p);
		return;
	}
	for (i = 0; i < REAP__CACHE_SIZES; i++) {
		if (ts->bcache[i].size == size)
			break;
		if (ts->bcache[i].head == NULL && free_slot == REAP__CACHE_SIZES)
			free_slot = i;
	}
	if (i == REAP__CACHE_SIZES) {
		if (free_slot == REAP__CACHE_SIZES) {
			reap_free(p);
			return;
		}
		i = free_slot;
		ts->bcache[i].size = size;
	}
	*(void **)p = ts->bcache[i].head;
	ts->bcache[i].head = p;
	/* Relaxed: the limit is a soft bound on memory kept. */
	cache_count(ts, (long)size);
	count_live(-1);
	count_held(1);
}

void reap__block_free_held(void *p, size_t size)
{
	/* Counted as held already: as live for a moment, then cached or
	 * freed as any block. */
	count_held(-1);
	count_live(1);
	reap__block_free(p, size);
}

void reap__block_cache_drain(struct reap__tstate *ts)
{
	long drained = 0;

	for (unsigned i = 0; i < REAP__CACHE_SIZES; i++) {
		void **p = ts->bcache[i].head;

		while (p != NULL) {
			void **next = *p;

			alloc_hook.free(alloc_hook.ctx, p);
			drained += (long)ts->bcache[i].size;
			count_held(-1);
			p = next;
		}
		ts->bcache[i].head = NULL;
	}
	/* Settle this thread's share: pending counts, less what went. */
	atomic_fetch_add_explicit(&cache_bytes, ts->cache_pend - drained,
				  memory_order_relaxed);
	ts->cache_pend = 0;
}

size_t reap_alloc_live(void)
{
	long n = alloc_sum(0);

	return n > 0 ? (size_t)n : 0;
}

/* ------------------------------------------------------------------ */
/* Clock                                                                */

static uint64_t (*clock_fn)(void *);
static void *clock_ctx;
static uint64_t start_ns;

static uint64_t mono_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t reap__mono_ns(void)
{
	return mono_ns(CLOCK_MONOTONIC);
}

uint64_t reap_now_ns(void)
{
	return clock_fn ? clock_fn(clock_ctx) : mono_ns(CLOCK_MONOTONIC);
}

void reap_set_clock(uint64_t (*now)(void *ctx), void *ctx)
{
	clock_ctx = ctx;
	clock_fn = now;
}

uint64_t reap__start_ns(void) { return start_ns; }

uint32_t reap__now_ms(void)
{
	uint64_t t = clock_fn ? clock_fn(clock_ctx) : mono_ns(CLOCK_MONOTONIC_COARSE);

	return t > start_ns ? (uint32_t)((t - start_ns) / 1000000u) : 0;
}

/* ------------------------------------------------------------------ */
/* Debug switches and hooks                                             */

unsigned reap__debug;

/* Parse a REAP_DEBUG spec. Words of later layers are not known here:
 * strictly (the API) they are an error; leniently (the environment) they
 * are skipped, so one variable can serve every layer. */
static int parse_debug(const char *spec, unsigned *out, int strict)
{
	unsigned flags = 0;
	const char *p = spec;

	while (p != NULL && *p != '\0') {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n == 5 && strncmp(p, "leaks", 5) == 0)
			flags |= REAP_DEBUG_LEAKS;
		else if (n == 12 && strncmp(p, "leaks:strict", 12) == 0)
			flags |= REAP_DEBUG_LEAKS | REAP_DEBUG_STRICT;
		else if (n == 10 && strncmp(p, "ledger:off", 10) == 0)
			flags |= REAP_DEBUG_NOLEDGER;
		else if (n == 2 && strncmp(p, "gc", 2) == 0)
			flags |= REAP_DEBUG_GC;
		else if (n == 16 && strncmp(p, "gc:uncollectable", 16) == 0)
			flags |= REAP_DEBUG_GC_UNCOLLECTABLE;
		else if (n == 5 && strncmp(p, "locks", 5) == 0)
			flags |= REAP_DEBUG_LOCKS;
		else if (n == 8 && strncmp(p, "blocking", 8) == 0)
			flags |= REAP_DEBUG_BLOCKING;
		else if (n != 0 && strict)
			return -EINVAL;
		p = end ? end + 1 : NULL;
	}
	*out = flags;
	return 0;
}

int reap_debug_set(const char *spec)
{
	unsigned flags;
	int rc = parse_debug(spec ? spec : "", &flags, 1);

	if (rc < 0)
		return rc;
	__atomic_store_n(&reap__debug, flags, __ATOMIC_RELAXED);
	reap_ledger_enable(!(flags & REAP_DEBUG_NOLEDGER));
	return 0;
}

unsigned reap_debug_flags(void)
{
	return __atomic_load_n(&reap__debug, __ATOMIC_RELAXED);
}

static reap_misuse_fn misuse_fn;
static void *misuse_ctx;
static reap_report_fn report_fn;
static void *report_ctx;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;

void reap_set_misuse_hook(reap_misuse_fn fn, void *ctx)
{
	misuse_ctx = ctx;
	misuse_fn = fn;
}

void reap_set_report_hook(reap_report_fn fn, void *ctx)
{
	report_ctx = ctx;
	report_fn = fn;
}

void reap__misuse(const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (misuse_fn != NULL) {
		misuse_fn(msg, misuse_ctx);
	} else {
		fprintf(stderr, "reap: misuse: %s\n", msg);
		fflush(stderr);
	}
	abort();
}

void reap__report_text(const char *text)
{
	pthread_mutex_lock(&report_lock);
	if (report_fn != NULL) {
		report_fn(text, report_ctx);
	} else {
		fputs(text, stderr);
		fflush(stderr);
	}
	pthread_mutex_unlock(&report_lock);
}

FILE *reap__report_open(struct reap__rbuf *b)
{
	b->text = NULL;
	b->len = 0;
	return b->f = open_memstream(&b->text, &b->len);
}

void reap__report_send(struct reap__rbuf *b)
{
	fclose(b->f);
	reap__report_text(b->text);
	free(b->text);
}

void reap__report_drop(struct reap__rbuf *b)
{
	fclose(b->f);
	free(b->text);
}

void reap__report(const char *fmt, ...)
{
	char buf[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	reap__report_text(buf);
}

/* ------------------------------------------------------------------ */
/* Per-thread state                                                     */

/* The last-key cache starts on a sentinel site no caller can pass, so the
 * fast path of a defer is never taken before the thread is set up. */
static const reap_site sentinel_site = {"", "", -1};
__thread struct reap__tstate reap__ts_tls = {.last = {.site = &sentinel_site}};
__thread struct reap__tstate *reap__ts_self __attribute__((tls_model("initial-exec")));
static pthread_key_t ts_key;
static atomic_uint ts_numbers;

/* Layer hooks: written under hooks_lock, read without it; a slot is
 * published by the release store of its count. */
static pthread_mutex_t hooks_lock = PTHREAD_MUTEX_INITIALIZER;
static void (*thread_hooks[8])(struct reap__tstate *);
static atomic_uint nthread_hooks;
static void (*exit_hooks[REAP__EXIT_NPHASES][8])(void);
static atomic_uint nexit_hooks[REAP__EXIT_NPHASES];

/* A table of hooks is full: a layer registered more than once, or the
 * tables are too small for the layers. A bug of reap's own, never
 * silent: a dropped hook would leave a layer half-reset. Called with
 * hooks_lock held; aborts. */
static REAP_NORETURN void hooks_full(const char *what)
{
	pthread_mutex_unlock(&hooks_lock);
	reap__misuse("the table of %s hooks is full", what);
}

void reap__on_thread_exit(void (*fn)(struct reap__tstate *ts))
{
	unsigned n;

	pthread_mutex_lock(&hooks_lock);
	n = atomic_load_explicit(&nthread_hooks, memory_order_relaxed);
	if (n >= 8)
		hooks_full("thread-exit");
	thread_hooks[n] = fn;
	atomic_store_explicit(&nthread_hooks, n + 1, memory_order_release);
	pthread_mutex_unlock(&hooks_lock);
}

void reap__on_exit(int phase, void (*fn)(void))
{
	unsigned n;

	pthread_mutex_lock(&hooks_lock);
	n = atomic_load_explicit(&nexit_hooks[phase], memory_order_relaxed);
	if (n >= 8)
		hooks_full("exit");
	exit_hooks[phase][n] = fn;
	atomic_store_explicit(&nexit_hooks[phase], n + 1, memory_order_release);
	pthread_mutex_unlock(&hooks_lock);
}

void reap__run_thread_exit_hooks(struct reap__tstate *ts)
{
	/* Acquire: pairs with the registration's release store. */
	unsigned n = atomic_load_explicit(&nthread_hooks, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		thread_hooks[i](ts);
}

/* Thread exit: close the thread's root scope, fold its counters into the
 * totals, free the scopes kept in quarantine and leave the registry. The
 * main thread does the same from the exit handler instead. */
static void ts_exit(void *arg)
{
	struct reap__tstate *ts = arg;

	if (!ts->ready || ts->is_main)
		return;
	reap__run_thread_exit_hooks(ts);
	reap__scope_close_root(&ts->root);
	reap__scope_free_quarantine(ts);
	reap__block_cache_drain(ts);
	reap__ledger_thread_detach(ts);
	ts->ready = 0;
	reap__ts_self = NULL;
}

struct reap__tstate *reap__ts_slow(void)
{
	struct reap__tstate *ts = &reap__ts_tls;

	reap__init();
	ts->num = atomic_fetch_add_explicit(&ts_numbers, 1, memory_order_relaxed) + 1;
	ts->ostid = (int)gettid();
	ts->now_ms = reap__now_ms();
	ts->is_main = ts->ostid == (int)getpid();
	if (ts->is_main) {
		ts->current = &reap__root;
	} else {
		reap_scope *r = &ts->root;

		r->magic = S_OPEN;
		r->flags = SF_ROOT | SF_STATIC;
		r->name = "thread";
		r->tid = ts->num;
		r->gen = reap__fork_gen;
		r->t_ns = reap_now_ns();
		ts->current = r;
	}
	ts->ready = 1;
	reap__ts_self = ts;
	reap__ledger_thread_attach(ts);
	if (!ts->is_main) {
		WR(ts->root.shard, ts->num);
		reap__ledger_scope_add(&ts->root);
	}
	/* Only for the destructor: the value itself is never read. */
	pthread_setspecific(ts_key, ts);
	return ts;
}

/* ------------------------------------------------------------------ */
/* Start-up and exit                                                    */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* The exit sequence: the layers' exit hooks, the leak report, the close
 * of the process root. Returns REAP_LEAK_EXIT_CODE when leaks:strict
 * found leaks, else 0. */
int reap__exit_sequence(void)
{
	struct reap__tstate *ts = reap__ts();
	char *text = NULL;
	size_t len = 0, leaks = 0;
	unsigned dbg = reap_debug_flags();

	/* Later layers first: threads still running are reported, this
	 * thread's thread-local values are destroyed, then the finalizers
	 * flagged for exit run. */
	for (int ph = 0; ph < REAP__EXIT_NPHASES; ph++) {
		unsigned n = atomic_load_explicit(&nexit_hooks[ph], memory_order_acquire);

		for (unsigned i = 0; i < n; i++)
			exit_hooks[ph][i]();
		if (ph == REAP__EXIT_THREADS)
			reap__run_thread_exit_hooks(ts);
	}
	/* What the program left open, taken before reap closes it. */
	if (dbg & REAP_DEBUG_LEAKS) {
		FILE *m = open_memstream(&text, &len);

		if (m != NULL) {
			leaks = reap_ledger_check(m);
			fclose(m);
		}
	}
	/* Whichever thread called exit() closes the process root: no
	 * other thread will, and the root's owner rule ends with the process. */
	reap__scope_close_root(&reap__root);
	reap__scope_free_quarantine(ts);
	reap__block_cache_drain(ts);
	if (text != NULL) {
		if (leaks > 0)
			reap__report_text(text);
		free(text);
	}
	return (dbg & REAP_DEBUG_STRICT) && leaks > 0 ? REAP_LEAK_EXIT_CODE : 0;
}

static void at_exit(void)
{
	if (reap__exit_sequence() != 0) {
		fflush(NULL);
		_exit(REAP_LEAK_EXIT_CODE);
	}
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

uint32_t reap__fork_gen;
static pid_t fork_parent, fork_pid;
static size_t fork_inherited;
static struct {
	void (*prepare)(void);
	void (*parent)(void);
	void (*child)(struct reap__tstate *);
} fork_hooks[REAP__FORK_NPHASES][8];
static atomic_uint nfork_hooks[REAP__FORK_NPHASES];
/* The counts fork_prepare() saw: the parent and child hooks run the same
 * ones, whatever registers meanwhile (forks do not overlap: the C
 * library holds its at-fork lock from the prepare to the parent or
 * child handlers). */
static unsigned fork_n[REAP__FORK_NPHASES];

void reap__on_fork(int phase, void (*prepare)(void), void (*parent)(void),
		   void (*child)(struct reap__tstate *ts))
{
	unsigned n;

	pthread_mutex_lock(&hooks_lock);
	n = atomic_load_explicit(&nfork_hooks[phase], memory_order_relaxed);
	if (n >= 8)
		hooks_full("fork");
	fork_hooks[phase][n].prepare = prepare;
	fork_hooks[phase][n].parent = parent;
	fork_hooks[phase][n].child = child;
	/* Release: a forking thread that sees the count sees the slot. */
	atomic_store_explicit(&nfork_hooks[phase], n + 1, memory_order_release);
	pthread_mutex_unlock(&hooks_lock);
}

void reap__fork_count_inherited(size_t n)
{
	fork_inherited += n;
}

/* Prepare hooks: the last phase first, and in each the newest first. */
static void fork_prepare(void)
{
	for (int ph = REAP__FORK_NPHASES; ph-- > 0;) {
		/* Acquire: pairs with the registration's release store. */
		fork_n[ph] = atomic_load_explicit(&nfork_hooks[ph], memory_order_acquire);
		for (unsigned i = fork_n[ph]; i-- > 0;)
			if (fork_hooks[ph][i].prepare != NULL)
				fork_hooks[ph][i].prepare();
	}
	fork_pid = getpid();
}

/* Parent hooks: the first phase first, and in each the oldest first. */
static void fork_parent_hook(void)
{
	for (int ph = 0; ph < REAP__FORK_NPHASES; ph++)
		for (unsigned i = 0; i < fork_n[ph]; i++)
			if (fork_hooks[ph][i].parent != NULL)
				fork_hooks[ph][i].parent();
}

/*
 * The child of a fork: the forking thread is the only one left, and it
 * is the new process's main thread. Whatever another thread was doing
 * under one of reap's locks stopped mid-way, so the locks are made anew
 * and the structures they guard are forgotten rather than walked: the
 * parent's scopes are recognised later by their older generation. Their
 * memory is the child's copy and is simply never freed.
 */
static reap_scope inherited_root __attribute__((used));

static void fork_child(void)
{
	struct reap__tstate *ts = reap__ts_self;
	size_t inherited;

	reap__mutex_reset(&report_lock);
	reap__mutex_reset(&hooks_lock);
	reap__keys_fork_child();
	fork_parent = fork_pid;
	reap__fork_gen++;

	/* The parent's root stays reachable (for leak checkers), never
	 * closed. */
	inherited_root = reap__root;
	memset(&reap__root, 0, sizeof reap__root);
	reap__root.magic = S_OPEN;
	reap__root.flags = SF_ROOT | SF_STATIC;
	reap__root.name = "root";
	reap__root.t_ns = reap_now_ns();
	reap__root.gen = reap__fork_gen;
	if (ts != NULL) {
		ts->ostid = (int)gettid();
		ts->is_main = 1;
		ts->current = &reap__root;
		ts->closing = NULL;
		ts->task = NULL;
	}
	inherited = reap__ledger_fork_child(ts);
	reap__ledger_scope_add(&reap__root);
	fork_inherited = inherited;
	if (ts == NULL) /* a thread that never used reap: start it now */
		ts = reap__ts_slow();
	reap__root.tid = ts->num;
	for (int ph = 0; ph < REAP__FORK_NPHASES; ph++)
		for (unsigned i = 0; i < fork_n[ph]; i++)
			if (fork_hooks[ph][i].child != NULL)
				fork_hooks[ph][i].child(ts);
}

pid_t reap_fork_parent(void)
{
	return fork_parent;
}

size_t reap_fork_inherited(void)
{
	return fork_inherited;
}

static void init_once_fn(void)
{
	const char *env;
	unsigned flags = 0;

	start_ns = mono_ns(CLOCK_MONOTONIC);
	pthread_key_create(&ts_key, ts_exit);
	reap__root.magic = S_OPEN;
	reap__root.flags = SF_ROOT | SF_STATIC;
	reap__root.name = "root";
	reap__root.t_ns = start_ns;
	reap__root.tid = 1;
	pthread_atfork(fork_prepare, fork_parent_hook, fork_child);
	if ((env = getenv("REAP_DEBUG")) != NULL)
		(void)parse_debug(env, &flags, 0);
	reap__debug = flags;
	if (flags & REAP_DEBUG_NOLEDGER)
		atomic_store(&reap__ledger_on, false);
	reap__ledger_scope_add(&reap__root);
	if ((env = getenv("REAP_FAULT_ALLOC")) != NULL)
		reap_fault_alloc(strtol(env, NULL, 10));
	atexit(at_exit);
}

void reap__init(void)
{
	pthread_once(&init_once, init_once_fn);
}

__attribute__((constructor)) static void reap_ctor(void)
{
	reap__init();
	(void)reap__ts();
}
