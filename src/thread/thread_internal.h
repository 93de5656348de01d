/*
 * Internals of the thread layer, shared by thread.c (scoped threads),
 * cancel.c (tokens), tls.c (thread-local values) and lock.c (reap_mutex
 * and the lock-order checker). The pool (pool.c) builds on the public
 * API only, but for its fork hook.
 */
#ifndef REAP_THREAD_INTERNAL_H
#define REAP_THREAD_INTERNAL_H

#include "../base/internal.h"

#pragma GCC visibility push(hidden)

/* ------------------------------------------------------------------ */
/* cancel.c                                                             */

/*
 * A token. `requested` is the flag every check reads; `lock` guards the
 * rest. Sleepers wait on `cv` under `lock`; fd waits poll `efd` (an
 * eventfd made on the first fd wait); condition waits on a user's cv are
 * listed in `waiters` so that a request can wake them. A token is shared
 * by reference count: its owner scope (or its thread, for a thread's own
 * token) holds one, each thread spawned with it holds one.
 */
struct reap__cwait;
struct reap_cancel {
	atomic_int requested;
	atomic_uint refs;
	pthread_mutex_t lock;
	pthread_cond_t cv;           /* CLOCK_MONOTONIC */
	int efd;                     /* -1 until an fd wait needs it */
	struct reap__cwait *waiters; /* condition waits in progress */
	const reap_site *site;
	int embedded;                /* part of a reap thread, not allocated */
};

void reap__cancel_init(reap_cancel *c, const reap_site *site, int embedded);
void reap__cancel_ref(reap_cancel *c);
void reap__cancel_unref(reap_cancel *c);

/* ------------------------------------------------------------------ */
/* thread.c                                                             */

enum { T_MAGIC = 0x7e4d0a11u, T_DEAD = 0x7e4dd1edu };

struct reap_thread {
	uint32_t magic;
	pthread_t th;
	reap_thread_fn fn;
	void *arg;
	const reap_site *site;      /* where it was spawned */
	const reap_site *exit_site; /* reap_thread_exit(), if called */
	uint64_t t_ns;              /* spawn time */
	uint64_t join_limit_ns;
	reap_cancel *cancel;        /* own or shared; one reference held */
	reap_cleanup *h;            /* entry in the owner scope */
	struct reap__tstate *ts;    /* the thread's state while it runs */
	atomic_uint num;            /* its T<n>; 0 until it starts */
	int named;

	/* Guarded by lock: how it ended. */
	pthread_mutex_t lock;
	pthread_cond_t done_cv; /* CLOCK_MONOTONIC */
	int done;               /* its end hook ran: result ready */
	int abandoned;          /* owner gave up waiting: detached */
	int exit_waited;        /* the exit hook already gave it its grace */
	int code;               /* reap_thread_exit's code, then the final one */
	reap_error *chain;

	struct reap_thread *prev, *next; /* registry of live reap threads */
	reap_cancel own;
	char name[32];
	char owner[128]; /* owner path at spawn */
};

/* Register the layer's exit hooks and leak source (idempotent). */
void reap__thread_layer_init(void);

/* The reap thread running on a thread state (base.c keeps it as an
 * opaque struct reap__thread pointer). */
static inline reap_thread *reap__thread_of(const struct reap__tstate *ts)
{
	return (reap_thread *)(void *)ts->thread;
}

static inline void reap__thread_set(struct reap__tstate *ts, reap_thread *t)
{
	ts->thread = (struct reap__thread *)(void *)t;
}

/* ------------------------------------------------------------------ */
/* tls.c                                                                */

/* Destroy the calling thread's thread-local values (bounded re-runs) and
 * close its thread-local storage. Idempotent. */
void reap__tls_thread_exit(struct reap__tstate *ts);
/* Print the thread-local values of the thread whose state is ts, one
 * line each with prefix; return how many. */
size_t reap__tls_print_thread(struct reap__tstate *ts, FILE *f,
			      const char *prefix);
/* In a forked child: forget the other threads' vectors and the forking
 * thread's values (inherited: their destructors never run here); the
 * thread layer's fork hook calls it. */
void reap__tls_fork_child(struct reap__tstate *ts);
/* Report the values of threads reap did not start that are still running
 * (all threads but the caller whose ts->thread is NULL). */
size_t reap__tls_print_foreign(FILE *f, struct reap__tstate *self);

/* ------------------------------------------------------------------ */
/* pool.c                                                               */

/* In a forked child: forget the pools (their workers do not exist). */
void reap__pool_fork_child(void);

#pragma GCC visibility pop
#endif /* REAP_THREAD_INTERNAL_H */
