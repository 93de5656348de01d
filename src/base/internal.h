/*
 * Internals shared by reap's layers. Nothing here is part of the API.
 */
#ifndef REAP_INTERNAL_H
#define REAP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "reap.h"

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

REAP_NORETURN void reap__misuse(const char *fmt, ...) REAP_PRINTF(1, 2);
void reap__report(const char *fmt, ...) REAP_PRINTF(1, 2);
void reap__report_text(const char *text);

/* Quarantine support: stop counting a block as live without freeing it,
 * and free such a block later. */
void reap__alloc_forget(void *p);
void reap__free_forgotten(void *p);

/* Blocks of a few fixed sizes, cached per thread (see base.c). */
void *reap__block_alloc(size_t size);
void reap__block_free(void *p, size_t size);
struct reap__tstate;
void reap__block_cache_drain(struct reap__tstate *ts);

extern unsigned reap__debug;  /* REAP_DEBUG_* */
void reap__init(void);        /* idempotent, run by a constructor */

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

/* A registered cleanup. 40 bytes; the handle users hold points here. */
struct reap_cleanup {
	void *fn;
	void *arg;
	const reap_site *site;
	reap_scope *owner;
	uint32_t t_ms;   /* creation time, ms since start */
	uint16_t tid;    /* creating thread's number */
	uint8_t type;    /* ledger type id, 0 if untracked */
	uint8_t flags;   /* F_* */
};

struct reap__chunk {
	struct reap__chunk *prev; /* older chunk */
	reap_cleanup *end;        /* one past the last slot */
	reap_cleanup slot[];
};

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

	/* The cleanup stack: slots [chunk->slot, top) of the newest chunk,
	 * then whole older chunks. top is stored with release order so that
	 * a reporter that loads it with acquire sees the slots below it. */
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
	reap_scope *reg_prev, *reg_next;
	reap_scope *closing_next; /* this thread's stack of closing scopes */
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

	/* ledger: counters not yet folded into the process totals */
	int32_t pend_created[REAP__MAX_TYPES];
	int32_t pend_closed[REAP__MAX_TYPES];
	unsigned pend_ops;
	unsigned pend_max;  /* highest type id touched */

	uint64_t next_id, id_limit; /* block of scope ids */

	uint32_t now_ms;     /* cached creation time for cleanups */
	unsigned clock_ops;  /* registrations since now_ms was read */

	struct {
		size_t size;
		void *head;
	} bcache[REAP__CACHE_SIZES]; /* freed blocks kept for reuse */

	reap_scope *quarantine[REAP__QUARANTINE];
	unsigned qpos;

	struct reap__tstate *prev, *next; /* registry of thread states */
};

struct reap__tstate *reap__ts_slow(void);
extern __thread struct reap__tstate reap__ts_tls;
static inline struct reap__tstate *reap__ts(void)
{
	struct reap__tstate *ts = &reap__ts_tls;
	return likely(ts->ready) ? ts : reap__ts_slow();
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
void reap__ledger_thread_attach(struct reap__tstate *ts);
void reap__ledger_thread_detach(struct reap__tstate *ts);
void reap__ledger_scope_add(reap_scope *s);
void reap__ledger_scope_del(reap_scope *s);
void reap__ledger_free_chunk(reap_scope *s, struct reap__chunk *chunk);
void reap__chunk_free(struct reap__chunk *c);
void reap__ledger_exit_report(void);
void reap__owner_path(const reap_scope *s, char *buf, size_t len);
reap_type *reap__type_by_id(unsigned id);

static inline int reap__ledger_active(void)
{
#if REAP_WITH_LEDGER
	return atomic_load_explicit(&reap__ledger_on, memory_order_relaxed);
#else
	return 0;
#endif
}

static inline void reap__count_created(struct reap__tstate *ts, unsigned id)
{
	ts->pend_created[id]++;
	if (id > ts->pend_max)
		ts->pend_max = id;
	if (unlikely(++ts->pend_ops >= 64))
		reap__ledger_flush(ts);
}

static inline void reap__count_closed(struct reap__tstate *ts, unsigned id)
{
	ts->pend_closed[id]++;
	if (id > ts->pend_max)
		ts->pend_max = id;
	if (unlikely(++ts->pend_ops >= 64))
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

#endif /* REAP_INTERNAL_H */
