/*
 * Internals shared by reap's layers. Nothing here is part of the API.
 */
#ifndef REAP_INTERNAL_H
#define REAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "reap.h"

/* Everything declared below is internal to the library: hidden, so that
 * even position-independent code reaches it without the GOT. */
#pragma GCC visibility push(hidden)

#ifndef REAP_WITH_LEDGER
#define REAP_WITH_LEDGER 1
#endif

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/*
 * Fields that the ledger's reporter reads while the owner thread writes
 * them. Relaxed atomics compile to plain moves on the architectures reap
 * targets; they only keep the compiler from tearing or caching them, and
 * tell ThreadSanitizer the race is intended. Their ordering comes from
 * the release store of a scope's top pointer and from the shard locks.
 */
#define RD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define WR(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)

/* ------------------------------------------------------------------ */
/* base                                                                 */

/* A pause inside a spin-wait loop. */
#if defined(__x86_64__) || defined(__i386__)
#define reap__cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define reap__cpu_relax() __asm__ volatile("yield" ::: "memory")
#else
#define reap__cpu_relax() ((void)0)
#endif

/*
 * A spinlock, for critical sections of a few pointer moves: one atomic
 * exchange to take, one store to drop, against two atomic operations for
 * a mutex. A waiter yields the CPU after a short spin, in case the
 * holder was preempted.
 */
void reap__spin_wait(atomic_int *l);
static inline void reap__spin_lock(atomic_int *l)
{
	/* Acquire: the holder's writes before its unlock are visible. */
	if (unlikely(atomic_exchange_explicit(l, 1, memory_order_acquire)))
		reap__spin_wait(l);
}
static inline void reap__spin_unlock(atomic_int *l)
{
	/* Release: our writes happen before the next holder's reads. */
	atomic_store_explicit(l, 0, memory_order_release);
}

REAP_NORETURN void reap__misuse(const char *fmt, ...) REAP_PRINTF(1, 2);
void reap__report(const char *fmt, ...) REAP_PRINTF(1, 2);
void reap__report_text(const char *text);

/* A report written piece by piece: reap__report_open() gives a stream
 * into b (NULL when none can be made: report nothing), and
 * reap__report_send() closes it and hands its text to the report hook;
 * reap__report_drop() closes it and forgets the text (nothing to say). */
struct reap__rbuf {
	char *text;
	size_t len;
	FILE *f;
};
FILE *reap__report_open(struct reap__rbuf *b);
void reap__report_send(struct reap__rbuf *b);
void reap__report_drop(struct reap__rbuf *b);

/* A site as "file:line in func()" ("(unknown site)" for NULL), into buf
 * (returned) or onto f. */
const char *reap__site_str(const reap_site *s, char *buf, size_t len);
void reap__site_print(FILE *f, const reap_site *s);

/* Quarantine support: stop counting a block as live without freeing it,
 * and free such a block later. */
void reap__alloc_forget(void *p);
void reap__free_forgotten(void *p);

struct reap__tstate;
/* Allocation counts: fold a leaving thread's; the process totals; the
 * sum over the registered threads plus the totals (ledger.c). */
void reap__alloc_fold(struct reap__tstate *ts);
long reap__alloc_total(int held);
void reap__ledger_threads_alloc(long *sum, int held);

/* Blocks of a few fixed sizes, cached per thread (see base.c). */
void *reap__block_alloc(size_t size);
void *reap__block_alloc_aligned(size_t size, size_t align, size_t *bytes);
void reap__block_free(void *p, size_t size);
/* reap__block_free() for a block that reap__alloc_forget() took off
 * the live count (a quarantined one). */
void reap__block_free_held(void *p, size_t size);
struct reap__tstate;
void reap__block_cache_drain(struct reap__tstate *ts);

/* One more fallible acquisition (a thread, a process, an fd) for the
 * fault injector: true when it is the one to fail. Allocations through
 * reap_malloc() count themselves. */
int reap__fault_point(void);

/* Hooks of later layers. Thread-exit hooks run on an exiting thread
 * before its root scope closes (and, at process exit, on the thread
 * that calls exit()). Exit hooks run at process exit, phase by phase,
 * before the leak report is taken and the process root is closed. Both
 * are registered once per layer, on first use; at most 8 of each (per
 * phase): one more is a bug of reap's, and aborts through the misuse
 * hook. */
enum {
	REAP__EXIT_THREADS,  /* report threads still running */
	REAP__EXIT_FINALIZE, /* finalizers flagged for exit */
	REAP__EXIT_NPHASES
};
void reap__on_thread_exit(void (*fn)(struct reap__tstate *ts));
void reap__on_exit(int phase, void (*fn)(void));
void reap__run_thread_exit_hooks(struct reap__tstate *ts);

/*
 * Fork. base registers one pthread_atfork() triple. Later layers add
 * theirs with reap__on_fork(), once per layer, in a phase: prepare hooks
 * run before the fork, the last phase first and in each the newest
 * first; parent hooks after it, and child hooks in the child, the first
 * phase first and in each the oldest first. Child hooks run after base
 * has reset the child's own state (one thread: the forking one, now the
 * process's main thread; reap's global locks re-initialised; an empty
 * process root, current; an empty ledger). A child hook forgets what
 * its layer inherited (the threads, loops and tasks that do not exist in
 * the child, the objects that are the parent's) and re-initialises its
 * global locks; it must not run inherited cleanups. At most 8 triples
 * per phase (one more aborts). The users' hooks (reap_atfork, proc
 * layer) are the one triple of REAP__FORK_USER: their prepare runs
 * before every layer's, their parent and child after, so that users see
 * reap consistent.
 *
 * reap__fork_gen counts the forks between the process's start and now:
 * a scope made in an earlier generation is inherited (its gen field is
 * older) and closing it discards its cleanups without running them.
 */
enum {
	REAP__FORK_LAYER, /* the layers' own state */
	REAP__FORK_USER,  /* the users' at-fork hooks */
	REAP__FORK_NPHASES
};
extern uint32_t reap__fork_gen;
void reap__on_fork(int phase, void (*prepare)(void), void (*parent)(void),
		   void (*child)(struct reap__tstate *ts));
void reap__keys_fork_child(void);
/* In a forked child, put a lock back in its initial state, writing only
 * if it is not in it already: a page left unwritten stays shared with the
 * parent (copy-on-write), and every page spared makes a fork cheaper. */
static inline void reap__mutex_reset(pthread_mutex_t *m)
{
	static const pthread_mutex_t init = PTHREAD_MUTEX_INITIALIZER;

	if (__builtin_memcmp(m, &init, sizeof init) != 0)
		__builtin_memcpy(m, &init, sizeof init);
}
static inline void reap__cond_reset(pthread_cond_t *cv, const pthread_condattr_t *a)
{
	pthread_cond_t init;

	pthread_cond_init(&init, a);
	if (__builtin_memcmp(cv, &init, sizeof init) != 0)
		__builtin_memcpy(cv, &init, sizeof init);
}
/* Count inherited resources for reap_fork_inherited(). */
void reap__fork_count_inherited(size_t n);

/* Run the process's exit sequence (exit hooks, leak report, root close)
 * now, as a forked child does before _exit(); returns the status the
 * leak check asks for (0, or REAP_LEAK_EXIT_CODE under leaks:strict). */
int reap__exit_sequence(void);

extern unsigned reap__debug;  /* REAP_DEBUG_* */
void reap__init(void);        /* idempotent, run by a constructor */

/* CLOCK_MONOTONIC in nanoseconds, whatever the clock hook says (what
 * pthread waits and timeouts are measured against), and a time in that
 * form as a struct timespec. */
uint64_t reap__mono_ns(void);
static inline struct timespec reap__timespec(uint64_t ns)
{
	struct timespec t = {(time_t)(ns / 1000000000u), (long)(ns % 1000000000u)};

	return t;
}

/* a + b, or UINT64_MAX (REAP_FOREVER) when that overflows: deadlines. */
static inline uint64_t reap__add_sat(uint64_t a, uint64_t b)
{
	return b > UINT64_MAX - a ? UINT64_MAX : a + b;
}

/* Intrusive doubly linked lists through the link fields p and n of their
 * nodes, kept as a head pointer (LIST_UNLINK) or a (head, tail) pair
 * (DLIST_APPEND, DLIST_UNLINK, which also clears x's links). */
#define LIST_UNLINK(head, x, p, n)            \
	do {                                  \
		if ((x)->p != NULL)           \
			(x)->p->n = (x)->n;   \
		else                          \
			(head) = (x)->n;      \
		if ((x)->n != NULL)           \
			(x)->n->p = (x)->p;   \
	} while (0)
#define DLIST_APPEND(head, tail, x, p, n)     \
	do {                                  \
		(x)->n = NULL;                \
		(x)->p = (tail);              \
		if ((tail) != NULL)           \
			(tail)->n = (x);      \
		else                          \
			(head) = (x);         \
		(tail) = (x);                 \
	} while (0)
#define DLIST_UNLINK(head, tail, x, p, n)     \
	do {                                  \
		LIST_UNLINK(head, x, p, n);   \
		if ((x)->n == NULL)           \
			(tail) = (x)->p;      \
		(x)->p = (x)->n = NULL;       \
	} while (0)

/* Milliseconds since reap started, from the clock hook; cheap (coarse
 * clock) when no hook is set. */
uint32_t reap__now_ms(void);
uint64_t reap__start_ns(void);

/* The pending message of reap_raisef() on this thread. */
struct reap__raise {
	int code;
	const reap_site *site;
	char msg[256];
};
struct reap__raise *reap__raise_take(int code);

/* Error links. */
reap_error *reap__error_new(int code, const reap_site *site, const char *msg,
			    const char *where, const reap_error *cause);

/* ------------------------------------------------------------------ */
/* entries and scopes                                                    */

enum {
	E_PLAIN = 1, /* reap_cleanup_fn */
	E_EXIT = 2,  /* reap_exit_fn */
	E_CHILD = 3  /* a child scope; arg is the scope */
};

enum {
	F_LIVE = 1u << 0,    /* registered and not yet run, cancelled or moved */
	F_COUNTED = 1u << 1, /* counted by the ledger when created */
	F_KIND = 3u << 2     /* E_* << 2 */
};
#define F_KIND_OF(f) (((f) >> 2) & 3u)
#define KF(key, flags) ((uint32_t)(key) << 8 | (uint32_t)(flags))
#define KF_KEY(kf) ((kf) >> 8)
#define KF_FLAGS(kf) ((kf) & 0xffu)

/*
 * A registered cleanup: 16 bytes; the handle users hold points here. What
 * it runs, where it was registered and its type are in its key; its owner
 * is in the chunk it lives in; its thread is its owner's.
 */
struct reap_cleanup {
	void *arg;
	uint32_t kf;   /* key id << 8 | F_* */
	uint32_t t_ms; /* creation time, ms since start (0: ledger off) */
};

/*
 * Cleanup chunks are made of 512-byte segments of 32 slots, aligned to
 * 512 bytes. Slot 0 of every segment holds a pointer to the chunk, so an
 * entry finds its chunk, and so its owner, by masking its address. The
 * chunk descriptor itself fills slots 0-2 of segment 0.
 */
#define REAP__SEG 512u
#define REAP__SEG_SLOTS (REAP__SEG / sizeof(reap_cleanup))
struct reap__chunk {
	struct reap__chunk *self; /* slot 0: every segment points here */
	reap_scope *owner;
	struct reap__chunk *prev; /* older chunk, or next spare */
	void *base;               /* what the allocator returned */
	size_t bytes;             /* what was asked of it */
	uint32_t nseg;
};
#define REAP__CHUNK_HDR 3 /* slots taken by the descriptor in segment 0 */

static inline struct reap__chunk *reap__chunk_of(const reap_cleanup *e)
{
	return *(struct reap__chunk *const *)((uintptr_t)e & ~(uintptr_t)(REAP__SEG - 1));
}
static inline reap_cleanup *reap__chunk_first(struct reap__chunk *c)
{
	return (reap_cleanup *)c + REAP__CHUNK_HDR;
}
static inline reap_cleanup *reap__chunk_end(struct reap__chunk *c)
{
	return (reap_cleanup *)((char *)c + (size_t)c->nseg * REAP__SEG);
}
static inline int reap__is_seg_header(const reap_cleanup *e)
{
	return ((uintptr_t)e & (REAP__SEG - 1)) == 0;
}

/* Keys: interned (site, fn, type) triples; see site.c. */
#define REAP__MAX_KEYS 65536
#define REAP__KCACHE 64
struct reap__key {
	const reap_site *site;
	void *fn;
	reap_type *type;
	unsigned type_id;
};
extern struct reap__key reap__keys[REAP__MAX_KEYS];
struct reap__kcache {
	const reap_site *site;
	void *fn;
	reap_type *type;
	uint32_t id;
};
static inline unsigned reap__kcache_slot(const reap_site *site, void *fn,
					 reap_type *type)
{
	return (unsigned)(((uintptr_t)site >> 3) ^ ((uintptr_t)fn >> 4) ^
			  ((uintptr_t)type >> 6)) & (REAP__KCACHE - 1);
}

struct reap__block {
	struct reap__block *next;
	size_t size;
	max_align_t data[];
};

struct reap__arena {
	char *cur, *end;
	struct reap__block *blocks;
	size_t bytes; /* handed out to users */
	unsigned nblocks;
};

struct reap__tstate;

enum { S_OPEN = 0x5c09e0e1u, S_CLOSING = 0x5c09c105u, S_CLOSED = 0xdeadc105u };

enum {
	SF_ROOT = 1u << 0,       /* process or thread root; not a resource */
	SF_REGISTERED = 1u << 1, /* in a ledger shard */
	SF_COUNTED = 1u << 2,    /* counted as a "scope" resource */
	SF_STATIC = 1u << 3      /* storage not from the allocator */
};

struct reap_scope {
	uint32_t magic;
	uint32_t flags;
	reap_scope *parent;
	reap_cleanup *self; /* our entry in the parent; NULL for roots */

	/* The cleanup stack: slots [first, top) of the newest chunk, then
	 * whole older chunks. limit is the end of top's segment. top is
	 * stored with release order so that a reporter that loads it with
	 * acquire sees the slots below it. */
	struct reap__chunk *chunk;
	reap_cleanup *top;
	reap_cleanup *limit;
	struct reap__chunk *spare; /* emptied chunks, reused before new ones */
	unsigned nchunks;

	struct reap__arena arena;

	/* The error in flight. */
	int err;
	reap_error *chain;

	/* Ledger record. */
	const char *name;
	const reap_site *site, *close_site;
	uint64_t t_ns;
	uint64_t id;
	uint32_t tid;
	unsigned shard;
	uint32_t gen; /* reap__fork_gen when made: older means inherited */
	reap_scope *reg_prev, *reg_next;
	reap_scope *closing_next; /* this thread's stack of closing scopes */
	char closed_name[24];     /* the name, kept for misuse reports */
};

/* Per-thread state: lives in thread-local storage, never allocated. */
#define REAP__MAX_TYPES 256
#define REAP__QUARANTINE 64
#define REAP__CACHE_SIZES 12
struct reap__tstate {
	int ready;
	uint32_t num;       /* T1 is the first thread to use reap */
	int ostid;          /* gettid() */
	int is_main;
	reap_scope *current;
	reap_scope *closing; /* stack of scopes closing on this thread */
	reap_scope root;     /* the thread's root scope (not on main) */

	/* What every registration writes, together: one cache line and one
	 * page for the fields, one line per type for its counts (after a
	 * fork every page written again is a copy-on-write fault). */
	struct reap__kcache last; /* the last registration's key */
	unsigned pend_ops;  /* counted since the last fold */
	uint32_t now_ms;     /* cleanups' creation time, read at each fold */
	long alloc_live, alloc_held; /* allocation counts not yet folded
				      * (see base.c) */

	/* ledger: counts per type not yet folded into the process totals */
	struct reap__pend {
		int32_t created, closed;
		int32_t high; /* highest created - closed since */
		int32_t low;  /* lowest balance since (<= 0) */
		uint32_t hseq; /* reap__fold_seq at that high */
	} pend[REAP__MAX_TYPES];

	uint64_t next_id, id_limit; /* block of scope ids */

	struct reap__kcache kcache[REAP__KCACHE];

	struct {
		size_t size;
		void *head;
	} bcache[REAP__CACHE_SIZES]; /* freed blocks kept for reuse */

	reap_scope *quarantine[REAP__QUARANTINE];
	unsigned qpos;

	long cache_pend; /* block cache bytes not yet added to the total */

	/* State of later layers, owned by them. */
	struct reap__thread *thread; /* the reap thread running here, if any */
	struct reap__tls_vec *tls;   /* this thread's thread-local values */
	struct reap_task *task;      /* the task running here, if any (loop) */

	struct reap__tstate *prev, *next; /* registry of thread states */
};

/*
 * The thread's state is large (a few KiB), so it lives in ordinary
 * thread-local storage, which a dlopen'd libreap.so reaches only through
 * __tls_get_addr. The hot paths reach it instead through an 8-byte
 * initial-exec pointer, set once the state is ready: one load from %fs,
 * and small enough for the static TLS space that dlopen leaves.
 */
struct reap__tstate *reap__ts_slow(void);
extern __thread struct reap__tstate reap__ts_tls;
extern __thread struct reap__tstate *reap__ts_self
	__attribute__((tls_model("initial-exec")));
static inline struct reap__tstate *reap__ts(void)
{
	struct reap__tstate *ts = reap__ts_self;

	return likely(ts != NULL) ? ts : reap__ts_slow();
}

uint32_t reap__key_slow(struct reap__tstate *ts, const reap_site *site,
			void *fn, reap_type *type);
/* The key of a triple; 0 when the table is full. */
static inline uint32_t reap__key(struct reap__tstate *ts, const reap_site *site,
				 void *fn, reap_type *type)
{
	struct reap__kcache *c = &ts->kcache[reap__kcache_slot(site, fn, type)];

	if (likely(c->site == site && c->fn == fn && c->type == type))
		return c->id;
	return reap__key_slow(ts, site, fn, type);
}

/* Called by a scope close that runs inside a task (ts->task set), as it
 * begins (begin 1) and ends (begin 0): the loop shields the task. */
extern void (*reap__task_close_hook)(struct reap_task *t, int begin);

/* A task's scope is made on first use: inside a task that has none yet,
 * ts->current is NULL and this hook makes it (NULL: out of memory). */
extern reap_scope *(*reap__task_scope_hook)(struct reap__tstate *ts);

/* The current scope: the default owner of what is created without one.
 * NULL only when a task's scope could not be made (out of memory). */
static inline reap_scope *reap__current(struct reap__tstate *ts)
{
	if (__builtin_expect(ts->current == NULL, 0) && ts->task != NULL)
		return reap__task_scope_hook(ts);
	return ts->current;
}

/* scope internals used by the exit path */
void reap__scope_close_root(reap_scope *root);
void reap__scope_free_quarantine(struct reap__tstate *ts);
extern reap_scope reap__root;

/* ------------------------------------------------------------------ */
/* ledger                                                               */

extern reap_type reap__type_scope;
extern atomic_bool reap__ledger_on;

void reap__type_register(reap_type *t);
void reap__ledger_flush(struct reap__tstate *ts);
int reap__ledger_flush_ok(struct reap__tstate *ts); /* flush, return 0 */
void reap__ledger_thread_attach(struct reap__tstate *ts);
void reap__ledger_thread_detach(struct reap__tstate *ts);
/* In a forked child: forget the parent's scopes, threads and counts;
 * returns how many live resources were forgotten. */
size_t reap__ledger_fork_child(struct reap__tstate *ts);
void reap__ledger_scope_add(reap_scope *s);
void reap__ledger_scope_del(reap_scope *s);
void reap__ledger_free_chunk(reap_scope *s, struct reap__chunk *chunk);
void reap__chunk_free(struct reap__chunk *c);
void reap__owner_path(const reap_scope *s, char *buf, size_t len);
reap_type *reap__type_by_id(unsigned id);

/*
 * Resources that live outside scopes (reference-counted objects, running
 * threads) reach the leak report through a source: a function that
 * prints each of its live resources with reap__leak_print(), adds one to
 * per_type[type id] for each, and returns how many it printed. It is
 * called with the scope shards locked, so it must not open or close
 * scopes; at most 8 sources.
 */
typedef size_t (*reap__leak_source)(FILE *f, size_t *per_type);
void reap__ledger_add_source(reap__leak_source fn);
void reap__leak_print(FILE *f, const char *what, const char *desc,
		      uint64_t age_ms, uint32_t tid, const reap_site *site,
		      const char *owner);

static inline int reap__ledger_active(void)
{
#if REAP_WITH_LEDGER
	return atomic_load_explicit(&reap__ledger_on, memory_order_relaxed);
#else
	return 0;
#endif
}

/* Count a registration of type id. Every 64 counts the thread folds its
 * pending counts into the totals and reads the coarse clock again. The
 * highest pending balance since the last fold makes `peak` exact for one
 * thread: the fold adds it to the live count it starts from, provided no
 * other thread folded in between (the fold sequence number tells). */
extern atomic_uint reap__fold_seq;

static inline void reap__count_up(struct reap__tstate *ts, unsigned id)
{
	/* Only this thread writes its pending counts: plain reads suffice;
	 * the stores are atomic because other threads read them. */
	int32_t c = ts->pend[id].created + 1, run = c - ts->pend[id].closed;

	WR(ts->pend[id].created, c);
	if (run > ts->pend[id].high) {
		WR(ts->pend[id].high, run);
		/* Relaxed: compared with itself later, ordered by nothing. */
		WR(ts->pend[id].hseq, atomic_load_explicit(&reap__fold_seq,
							   memory_order_relaxed));
	}
	ts->pend_ops++;
}

static inline void reap__count_created(struct reap__tstate *ts, unsigned id)
{
	reap__count_up(ts, id);
	if (unlikely(ts->pend_ops >= 64))
		reap__ledger_flush(ts);
}

/* Count a release. Close counts without folding and folds once at its
 * end (reap__count_settle), so that its loop stays short. */
static inline void reap__count_closed(struct reap__tstate *ts, unsigned id)
{
	int32_t d = ts->pend[id].closed + 1, run = ts->pend[id].created - d;

	WR(ts->pend[id].closed, d);
	if (run < ts->pend[id].low)
		WR(ts->pend[id].low, run);
	ts->pend_ops++;
}

static inline void reap__count_settle(struct reap__tstate *ts)
{
	if (unlikely(ts->pend_ops >= 64))
		reap__ledger_flush(ts);
}

static inline unsigned reap__type_id(reap_type *t)
{
	unsigned id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
	if (unlikely(id == 0)) {
		reap__type_register(t);
		id = __atomic_load_n(&t->id, __ATOMIC_ACQUIRE);
	}
	return id;
}

#pragma GCC visibility pop
#endif /* REAP_INTERNAL_H */
