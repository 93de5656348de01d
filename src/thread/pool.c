/*
 * Worker pools: reap threads that run init, then jobs from a shared
 * queue, then fini; futures for the jobs' outcomes.
 *
 * Lifetimes. A pool's memory is held by references (p->refs): one for
 * the pool while its owner scope has not closed it, one per worker
 * thread until that thread has finished with the pool, one per future
 * a caller holds, and a short one a submitter takes while it wakes a
 * worker after letting go of the lock. Whoever drops the last frees it,
 * so that futures stay usable after the pool closed, and a pool handle
 * stays valid (closed: submits fail) until its owner scope closes.
 *
 * A future is held by the pool (until a worker ran or skipped it, or a
 * cancelling close dropped it) and by the caller (until
 * reap_future_release). Its `hold` word says who; the last to let go
 * returns it to the pool's free stack. Futures are never freed alone:
 * they live in slabs that the pool frees with itself, so a handle is
 * never a dangling pointer into freed memory while the pool lives.
 *
 * State of a future (`state`, low two bits): QUEUED -> RUNNING -> DONE,
 * or QUEUED -> CANCELLED. Only a worker moves it out of RUNNING, and
 * both ways out of QUEUED are compare-and-swaps, so a job cancelled
 * before it started never runs, and a job that started is never reported
 * cancelled. WAITER is set by a thread about to sleep on the pool's
 * wait_cv under wait_m; whoever ends the future sees the bit in the word
 * it swapped out and broadcasts under wait_m, so that no wake-up is lost.
 * CANCEL_REQ asks a running job to stop (reap_job_cancelled()).
 *
 * The queue is a list under p->lock, linked through the futures, so a
 * submit allocates nothing once the free stack has futures to reuse.
 * Cancelling a queued future leaves it in the queue; the worker that
 * takes it skips it. Idle workers spin a little before sleeping on
 * work_cv; a submitter signals only when some worker sleeps and none
 * spins (a spinner takes the job without a system call), and a worker
 * that takes a job and leaves others queued wakes a sleeper, so that a
 * queued job never waits behind a long one while a worker sleeps.
 *
 * Free futures: callers and workers push them on `freed` (a lock-free
 * stack: push by compare-and-swap, and the only pop takes the whole
 * stack at once, so there is no ABA); submitters, under p->lock, move
 * the whole stack to `spare` when it runs dry, and allocate a new slab
 * only when both are empty.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "thread_internal.h"

#define POOL_MAX_WORKERS 1024
#define SLAB_MIN 32
#define SLAB_MAX 4096
#define SPIN_WORKER 2000 /* polls of an empty queue before sleeping */
#define SPIN_WAIT 200    /* polls of a pending future before sleeping */
#define LEAKS_SHOWN 8    /* unreleased futures listed per pool */

enum { P_LIVE = 0x9001c0deu, P_DEAD = 0x9001dea0u };

enum { FS_QUEUED = 0, FS_RUNNING = 1, FS_DONE = 2, FS_CANCELLED = 3,
       FS_MASK = 3, FS_WAITER = 4, FS_CANCEL_REQ = 8 };

enum { FH_POOL = 1, FH_CALLER = 2, /* holders */
       FH_COUNTED = 4,             /* counted by the ledger (caller's) */
       FH_NOFUTURE = 8 };          /* fire-and-forget */

enum { C_OPEN = 0, C_DRAIN = 1, C_CANCEL = 2 }; /* p->closing */

struct reap_future {
	_Atomic uint32_t state;
	_Atomic uint32_t hold;
	reap_job_fn fn;
	void *arg;
	void *result;
	int err;
	uint32_t tid;          /* creating thread, for reports */
	const reap_site *site; /* submit site (RD/WR: leak reports read it) */
	struct reap_future *next; /* queue, spare list or free stack */
	reap_pool *pool;
	uint32_t t_ms;         /* creation, ms since start (coarse) */
} __attribute__((aligned(64)));

struct slab {
	struct slab *next;
	reap_future *f;
	unsigned n;
};

struct worker {
	reap_pool *pool;
	reap_thread *thread;
	void *state;
	reap_future *cur; /* the job running; this worker's thread only */
	reap_cancel *token; /* its thread's cancellation token */
	unsigned index;
	/* Statistics, written by this worker only, read by any thread. */
	_Atomic uint64_t started, completed, failed;
	char name[32];
} __attribute__((aligned(64)));

struct reap_pool {
	uint32_t magic;
	_Atomic uint32_t refs;
	unsigned n;
	reap_pool_mode on_close;
	reap_pool_init_fn init;
	reap_pool_fini_fn fini;
	void *ctx;
	reap_scope *owner;
	const reap_site *site;
	void *base; /* what the allocator returned */
	int closed; /* reap_pool_close ran; owner thread only */
	char name[32];

	/* Under lock. */
	pthread_mutex_t lock;
	pthread_cond_t work_cv; /* workers wait for jobs */
	pthread_cond_t ctl_cv;  /* creator and closer wait for workers */
	reap_future *_Atomic head; /* atomic: spinning workers peek at it */
	reap_future *tail;
	reap_future *spare;
	struct slab *_Atomic slabs; /* atomic: the leak report walks it */
	unsigned slab_next;
	unsigned sleepers; /* RD/WR: statistics read it */
	unsigned started;  /* workers whose init returned */
	unsigned active;   /* workers not yet done with fini */
	unsigned running;  /* RD/WR: workers in their job loop */
	int init_err;
	_Atomic int closing; /* C_*; atomic: spinning workers read it */
	_Atomic uint64_t submitted;

	_Atomic unsigned spinning;
	reap_future *_Atomic freed;
	_Atomic uint64_t rejected, cancelled;

	/* Future waits. */
	pthread_mutex_t wait_m;
	pthread_cond_t wait_cv;

	reap_pool *reg_prev, *reg_next; /* registry, for leak reports */
	struct worker w[];
};

static reap_type future_type = REAP_TYPE_INIT("future", NULL);

static __thread struct worker *cur_worker;

/* ------------------------------------------------------------------ */
/* The registry of pools, for the leak report of unreleased futures     */

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reap_pool *reg_head;
static pthread_once_t reg_once = PTHREAD_ONCE_INIT;

/* Called by the ledger with its shards locked: takes only reg_lock,
 * which is never held while the ledger is entered. */
static size_t leak_source(FILE *f, size_t *per_type)
{
	size_t total = 0;
	uint32_t now = reap__now_ms();
	unsigned id = reap__type_id(&future_type);

	pthread_mutex_lock(&reg_lock);
	for (reap_pool *p = reg_head; p != NULL; p = p->reg_next) {
		size_t count = 0;
		char desc[160], owner[96];

		/* Acquire: pairs with the release that published each slab,
		 * whose futures' fields are read below. */
		for (struct slab *s = atomic_load_explicit(&p->slabs,
							  memory_order_acquire);
		     s != NULL; s = s->next) {
			for (unsigned i = 0; i < s->n; i++) {
				reap_future *fu = &s->f[i];
				uint32_t h = atomic_load_explicit(
					&fu->hold, memory_order_acquire);
				uint32_t st, t_ms;

				if ((h & (FH_CALLER | FH_COUNTED)) !=
				    (FH_CALLER | FH_COUNTED))
					continue;
				if (count++ >= LEAKS_SHOWN)
					continue;
				st = atomic_load_explicit(&fu->state,
							  memory_order_relaxed) & FS_MASK;
				t_ms = RD(fu->t_ms);
				snprintf(desc, sizeof desc, "(%s) of pool \"%s\"",
					 st == FS_DONE ? "done" :
					 st == FS_CANCELLED ? "cancelled" :
					 st == FS_RUNNING ? "running" : "queued",
					 p->name);
				snprintf(owner, sizeof owner,
					 "the caller of reap_pool_submit "
					 "(reap_future_release)");
				reap__leak_print(f, "future", desc,
						 now > t_ms ? now - t_ms : 0,
						 RD(fu->tid), RD(fu->site), owner);
			}
		}
		if (count > LEAKS_SHOWN)
			fprintf(f, "... and %zu more unreleased futures of pool "
				   "\"%s\"\n\n", count - LEAKS_SHOWN, p->name);
		total += count;
	}
	pthread_mutex_unlock(&reg_lock);
	per_type[id] += total;
	return total;
}

static void reg_init(void)
{
	reap__ledger_add_source(leak_source);
}

static void reg_add(reap_pool *p)
{
	pthread_mutex_lock(&reg_lock);
	p->reg_next = reg_head;
	if (reg_head != NULL)
		reg_head->reg_prev = p;
	reg_head = p;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(reap_pool *p)
{
	pthread_mutex_lock(&reg_lock);
	LIST_UNLINK(reg_head, p, reg_prev, reg_next);
	pthread_mutex_unlock(&reg_lock);
}

/* In a forked child: the pools' workers do not exist, and their
 * futures are the parent's (the ledger has forgotten their counts), so
 * the registry starts empty; a pool made in the child registers anew.
 * The forking thread, a worker or not, is no pool's worker here. */
void reap__pool_fork_child(void)
{
	reap__mutex_reset(&reg_lock);
	reg_head = NULL;
	cur_worker = NULL;
}

/* ------------------------------------------------------------------ */
/* Memory                                                               */

static void pool_free(reap_pool *p)
{
	struct slab *s = atomic_load_explicit(&p->slabs, memory_order_relaxed);

	reg_del(p);
	while (s != NULL) {
		struct slab *next = s->next;

		reap_free(s);
		s = next;
	}
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->work_cv);
	pthread_cond_destroy(&p->ctl_cv);
	pthread_mutex_destroy(&p->wait_m);
	pthread_cond_destroy(&p->wait_cv);
	p->magic = P_DEAD;
	reap_free(p->base);
}

static void pool_ref(reap_pool *p)
{
	/* Relaxed: the caller already holds a reference. */
	atomic_fetch_add_explicit(&p->refs, 1, memory_order_relaxed);
}

static void pool_unref(reap_pool *p)
{
	/* Release: our uses of p happen before the free; acquire: the
	 * freeing thread sees everyone else's. */
	if (atomic_fetch_sub_explicit(&p->refs, 1, memory_order_acq_rel) == 1)
		pool_free(p);
}

/* A new slab of futures, linked into a list; NULL when out of memory.
 * Called with p->lock held. */
static reap_future *slab_new(reap_pool *p)
{
	unsigned n = p->slab_next;
	size_t bytes = sizeof(struct slab) + 64 + (size_t)n * sizeof(reap_future);
	struct slab *s = reap_malloc(bytes);
	uintptr_t a;

	if (s == NULL)
		return NULL;
	a = ((uintptr_t)(s + 1) + 63) & ~(uintptr_t)63;
	s->f = (reap_future *)a;
	s->n = n;
	memset(s->f, 0, (size_t)n * sizeof(reap_future));
	for (unsigned i = 0; i < n; i++) {
		s->f[i].pool = p;
		s->f[i].next = i + 1 < n ? &s->f[i + 1] : NULL;
	}
	s->next = atomic_load_explicit(&p->slabs, memory_order_relaxed);
	/* Release: the leak report that finds the slab sees it zeroed. */
	atomic_store_explicit(&p->slabs, s, memory_order_release);
	if (p->slab_next < SLAB_MAX)
		p->slab_next *= 2;
	return s->f;
}

/* Give a future nobody holds back to its pool. */
static void future_free(reap_pool *p, reap_future *f)
{
	reap_future *top = atomic_load_explicit(&p->freed, memory_order_relaxed);

	do
		f->next = top;
	/* Release: the submitter that takes the stack sees f's last
	 * writes before it reuses f. */
	while (!atomic_compare_exchange_weak_explicit(
		&p->freed, &top, f, memory_order_release, memory_order_relaxed));
}

/* Let go of one holder (FH_POOL or FH_CALLER); free f if it was the
 * last. Returns the hold word before. */
static uint32_t future_drop(reap_pool *p, reap_future *f, uint32_t who)
{
	/* Acq_rel: the last holder frees f after every other holder's
	 * accesses. */
	uint32_t h = atomic_fetch_and_explicit(&f->hold, ~who,
					       memory_order_acq_rel);

	if ((h & (FH_POOL | FH_CALLER) & ~who) == 0)
		future_free(p, f);
	return h;
}

/* ------------------------------------------------------------------ */
/* Ending a future                                                      */

static void wake_waiters(reap_pool *p)
{
	pthread_mutex_lock(&p->wait_m);
	pthread_cond_broadcast(&p->wait_cv);
	pthread_mutex_unlock(&p->wait_m);
}

/* QUEUED -> CANCELLED; true if this call did it. */
static bool cancel_queued(reap_pool *p, reap_future *f)
{
	uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);

	while ((s & FS_MASK) == FS_QUEUED) {
		/* Acq_rel: a waiter that sees CANCELLED sees nothing more
		 * to read; the swap orders us against the worker's. */
		if (atomic_compare_exchange_weak_explicit(
			    &f->state, &s, FS_CANCELLED, memory_order_acq_rel,
			    memory_order_relaxed)) {
			atomic_fetch_add_explicit(&p->cancelled, 1,
						  memory_order_relaxed);
			if (s & FS_WAITER)
				wake_waiters(p);
			return true;
		}
	}
	return false;
}

static void report_lost(reap_pool *p, reap_future *f, int rc)
{
	const reap_site *s = f->site;

	reap__report("reap: a job of pool \"%s\" submitted without a future "
		     "at %s:%d (%s) failed: %s (%s)\n",
		     p->name, s->file, s->line, s->func, reap_errname(rc),
		     reap_strerror(rc));
}

/* Run f on worker w, unless it was cancelled first. */
static void run_job(struct worker *w, reap_future *f)
{
	reap_pool *p = w->pool;
	uint32_t s = atomic_load_explicit(&f->state, memory_order_relaxed);
	void *result = NULL;
	int rc;

	do {
		if ((s & FS_MASK) != FS_QUEUED) { /* cancelled */
			future_drop(p, f, FH_POOL);
			return;
		}
		/* Acquire: the job's fields, written before the submitter
		 * let go of the lock, are ours (the lock orders them too). */
	} while (!atomic_compare_exchange_weak_explicit(
		&f->state, &s, (s & ~(uint32_t)FS_MASK) | FS_RUNNING,
		memory_order_acquire, memory_order_relaxed));
	/* Relaxed counters: one writer each, read for statistics. */
	atomic_store_explicit(&w->started,
			      atomic_load_explicit(&w->started, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	w->cur = f;
	rc = f->fn(f->arg, w->state, &result);
	w->cur = NULL;
	f->result = result;
	f->err = rc;
	if (rc < 0)
		atomic_store_explicit(&w->failed,
				      atomic_load_explicit(&w->failed, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	else
		atomic_store_explicit(&w->completed,
				      atomic_load_explicit(&w->completed, memory_order_relaxed) + 1,
				      memory_order_relaxed);
	/* Release: a thread that sees DONE sees result and err. */
	s = atomic_exchange_explicit(&f->state, FS_DONE, memory_order_acq_rel);
	if (s & FS_WAITER)
		wake_waiters(p);
	if (rc < 0 && (atomic_load_explicit(&f->hold, memory_order_relaxed) &
		       FH_NOFUTURE))
		report_lost(p, f, rc);
	future_drop(p, f, FH_POOL);
}

/* ------------------------------------------------------------------ */
/* Workers                                                              */

/* The next job for w, or NULL once the pool closes and, when draining,
 * the queue is empty, or once w's thread is asked to stop (its token:
 * a cancelling close, or the process exiting). */
static reap_future *take(struct worker *w)
{
	reap_pool *p = w->pool;
	reap_future *f;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		if (unlikely(reap_cancel_requested(w->token))) {
			f = NULL;
			break;
		}
		f = atomic_load_explicit(&p->head, memory_order_relaxed);
		if (f != NULL) {
			atomic_store_explicit(&p->head, f->next,
					      memory_order_relaxed);
			if (f->next == NULL)
				p->tail = NULL;
			/* More jobs and a sleeping worker: wake it. The
			 * submitter of those jobs may have counted on us,
			 * spinning then, to take them; our job may be long. */
			else if (p->sleepers > 0)
				pthread_cond_signal(&p->work_cv);
			break;
		}
		if (atomic_load_explicit(&p->closing, memory_order_relaxed))
			break;
		/* Spin a little outside the lock: a job that comes soon
		 * costs no sleep and no wake-up. Relaxed peeks: the lock
		 * taken afterwards orders what they hint at. */
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add_explicit(&p->spinning, 1, memory_order_relaxed);
		for (int i = 0; i < SPIN_WORKER; i++) {
			if (atomic_load_explicit(&p->head, memory_order_relaxed) ||
			    atomic_load_explicit(&p->closing, memory_order_relaxed))
				break;
			reap__cpu_relax();
			if ((i & 127) == 127)
				sched_yield();
		}
		atomic_fetch_sub_explicit(&p->spinning, 1, memory_order_relaxed);
		pthread_mutex_lock(&p->lock);
		if (atomic_load_explicit(&p->head, memory_order_relaxed) ||
		    atomic_load_explicit(&p->closing, memory_order_relaxed))
			continue;
		WR(p->sleepers, p->sleepers + 1);
		/* Returns early (-ECANCELED) when w's token is requested;
		 * the check at the top of the loop then ends w. */
		(void)reap_cancel_cond_wait(w->token, &p->work_cv, &p->lock,
					    REAP_FOREVER);
		WR(p->sleepers, p->sleepers - 1);
	}
	pthread_mutex_unlock(&p->lock);
	return f;
}

/* Take the whole queue; p->lock held. */
static reap_future *detach_queue(reap_pool *p)
{
	reap_future *list = atomic_load_explicit(&p->head, memory_order_relaxed);

	atomic_store_explicit(&p->head, NULL, memory_order_relaxed);
	p->tail = NULL;
	return list;
}

/* Cancel every job of a detached queue and let go of them. */
static void cancel_list(reap_pool *p, reap_future *list)
{
	while (list != NULL) {
		reap_future *next = list->next;

		cancel_queued(p, list);
		future_drop(p, list, FH_POOL);
		list = next;
	}
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	reap_pool *p = w->pool;
	int rc = 0;
	reap_future *f;

	cur_worker = w;
	w->token = reap_cancel_self();
	if (p->init != NULL)
		rc = p->init(p->ctx, w->index, &w->state);
	pthread_mutex_lock(&p->lock);
	p->started++;
	if (rc < 0 && p->init_err == 0)
		p->init_err = rc;
	if (rc == 0)
		WR(p->running, p->running + 1);
	pthread_cond_broadcast(&p->ctl_cv);
	pthread_mutex_unlock(&p->lock);
	if (rc == 0) {
		reap_future *orphans = NULL;

		while ((f = take(w)) != NULL)
			run_job(w, f);
		pthread_mutex_lock(&p->lock);
		WR(p->running, p->running - 1);
		/* The last worker to stop while the pool is open (their
		 * tokens were requested: the process is exiting) closes it
		 * to submits and cancels what is left, so that every
		 * accepted job still runs or is cancelled. */
		if (p->running == 0 &&
		    atomic_load_explicit(&p->closing, memory_order_relaxed) == C_OPEN) {
			atomic_store_explicit(&p->closing, C_CANCEL,
					      memory_order_release);
			orphans = detach_queue(p);
		}
		pthread_mutex_unlock(&p->lock);
		cancel_list(p, orphans);
		if (p->fini != NULL)
			p->fini(p->ctx, w->index, w->state);
	}
	cur_worker = NULL;
	pthread_mutex_lock(&p->lock);
	if (--p->active == 0)
		pthread_cond_broadcast(&p->ctl_cv);
	pthread_mutex_unlock(&p->lock);
	pool_unref(p);
	return NULL;
}

/*
 * Stop the workers: no more submits; in cancel mode, cancel what is
 * queued and ask the running jobs to stop. Returns once every worker
 * has run fini (their threads may still be ending). Idempotent.
 */
static void pool_stop(reap_pool *p, reap_pool_mode mode, unsigned nthreads)
{
	reap_future *list = NULL;

	/* Tokens first (not under p->lock: a request wakes the workers'
	 * waits on it), so that a job that sees the pool closing sees its
	 * token requested too. A worker may stop on its token before the
	 * pool is marked closing: the last one then cancels the queue
	 * itself (worker_main). */
	if (mode == REAP_POOL_CANCEL)
		for (unsigned i = 0; i < nthreads; i++)
			reap_cancel_request(reap_thread_cancel_token(p->w[i].thread));
	pthread_mutex_lock(&p->lock);
	if (atomic_load_explicit(&p->closing, memory_order_relaxed) == C_OPEN) {
		/* Release: pairs with the acquire of reap_pool_stats_get(). */
		atomic_store_explicit(&p->closing,
				      mode == REAP_POOL_CANCEL ? C_CANCEL : C_DRAIN,
				      memory_order_release);
		if (mode == REAP_POOL_CANCEL)
			list = detach_queue(p);
		pthread_cond_broadcast(&p->work_cv);
	}
	pthread_mutex_unlock(&p->lock);
	cancel_list(p, list);
	pthread_mutex_lock(&p->lock);
	while (p->active > 0)
		pthread_cond_wait(&p->ctl_cv, &p->lock);
	/* Workers that stopped on their tokens may have left jobs. */
	list = detach_queue(p);
	pthread_mutex_unlock(&p->lock);
	cancel_list(p, list);
}

/* ------------------------------------------------------------------ */
/* The pool's entry in its owner scope                                  */

static void pool_describe(void *arg, char *buf, size_t len)
{
	reap_pool *p = arg;
	reap_pool_stats st;

	reap_pool_stats_get(p, &st);
	if (atomic_load_explicit(&p->closing, memory_order_relaxed) != C_OPEN &&
	    st.workers == 0)
		snprintf(buf, len, "\"%s\", closed", p->name);
	else
		snprintf(buf, len, "\"%s\": %u workers, %llu queued, %llu running",
			 p->name, p->n, (unsigned long long)st.queued,
			 (unsigned long long)st.running);
}

static reap_type pool_type = REAP_TYPE_INIT("pool", pool_describe);

/* The owner scope closes: stop the workers in the pool's close mode (if
 * reap_pool_close did not already), then let go of the pool. Their
 * threads' entries, older than this one, are joined next. */
static int pool_entry_close(void *arg, const reap_error *inflight)
{
	reap_pool *p = arg;

	(void)inflight;
	if (!p->closed)
		pool_stop(p, p->on_close, p->n);
	pool_unref(p);
	return 0;
}

/* ------------------------------------------------------------------ */
/* API                                                                  */

static void check_pool(const reap_pool *p, const char *what)
{
	if (unlikely(p->magic != P_LIVE))
		reap__misuse("%s: %p is not a live pool", what, (const void *)p);
}

int reap_pool_create_at(reap_scope *s, const reap_pool_opts *opts, unsigned n,
			reap_pool_init_fn init, reap_pool_fini_fn fini,
			void *ctx, reap_pool **out, const reap_site *site)
{
	size_t bytes = sizeof(reap_pool) + (size_t)n * sizeof(struct worker) + 64;
	const char *name = opts && opts->name ? opts->name : "pool";
	unsigned spawned = 0;
	reap_pool *p;
	void *base;
	int rc = 0;

	if (n == 0 || n > POOL_MAX_WORKERS)
		return -EINVAL;
	if (opts != NULL && opts->on_close != REAP_POOL_DRAIN &&
	    opts->on_close != REAP_POOL_CANCEL)
		return -EINVAL;
	if (s == NULL && (s = reap_scope_current()) == NULL)
		return -ENOMEM;
	pthread_once(&reg_once, reg_init);
	if ((base = reap_malloc(bytes)) == NULL)
		return -ENOMEM;
	p = (reap_pool *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
	memset(p, 0, bytes - ((char *)p - (char *)base));
	p->magic = P_LIVE;
	p->base = base;
	p->n = n;
	p->on_close = opts ? opts->on_close : REAP_POOL_DRAIN;
	p->init = init;
	p->fini = fini;
	p->ctx = ctx;
	p->owner = s;
	p->site = site;
	p->slab_next = SLAB_MIN;
	snprintf(p->name, sizeof p->name, "%s", name);
	atomic_init(&p->refs, 1);
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->wait_m, NULL);
	pthread_cond_init(&p->work_cv, NULL);
	pthread_cond_init(&p->ctl_cv, NULL);
	pthread_cond_init(&p->wait_cv, NULL);
	reg_add(p);

	for (unsigned i = 0; i < n; i++) {
		struct worker *w = &p->w[i];
		reap_thread_opts to = {.name = w->name};

		w->pool = p;
		w->index = i;
		snprintf(w->name, sizeof w->name, "%.20s/%u", p->name, i);
		pool_ref(p); /* the worker's */
		pthread_mutex_lock(&p->lock);
		p->active++;
		pthread_mutex_unlock(&p->lock);
		rc = reap_thread_spawn_at(s, &to, worker_main, w, &w->thread, site);
		if (rc < 0) {
			pthread_mutex_lock(&p->lock);
			p->active--;
			pthread_mutex_unlock(&p->lock);
			pool_unref(p);
			break;
		}
		spawned++;
	}
	pthread_mutex_lock(&p->lock);
	while (p->started < spawned)
		pthread_cond_wait(&p->ctl_cv, &p->lock);
	if (rc == 0)
		rc = p->init_err;
	pthread_mutex_unlock(&p->lock);
	if (rc == 0)
		rc = reap_defer_exit_at(s, &pool_type, pool_entry_close, p, NULL,
					site);
	if (rc < 0) {
		pool_stop(p, REAP_POOL_CANCEL, spawned);
		for (unsigned i = 0; i < spawned; i++)
			(void)reap_thread_join(p->w[i].thread, NULL, NULL);
		p->magic = P_DEAD;
		pool_unref(p);
		return rc;
	}
	*out = p;
	return 0;
}

int reap_pool_close(reap_pool *p, reap_pool_mode mode)
{
	int rc = 0;

	check_pool(p, "reap_pool_close");
	if (p->closed)
		reap__misuse("reap_pool_close: pool \"%s\" created at %s:%d is "
			     "already closed", p->name, p->site->file,
			     p->site->line);
	if (cur_worker != NULL && cur_worker->pool == p)
		reap__misuse("reap_pool_close: pool \"%s\" created at %s:%d "
			     "closed from its own job (it would wait for "
			     "itself)", p->name, p->site->file, p->site->line);
	if (mode != REAP_POOL_DRAIN && mode != REAP_POOL_CANCEL)
		reap__misuse("reap_pool_close: bad mode %d", (int)mode);
	p->closed = 1;
	pool_stop(p, mode, p->n);
	for (unsigned i = 0; i < p->n; i++) {
		int r = reap_thread_join(p->w[i].thread, NULL, NULL);

		if (rc == 0)
			rc = r;
	}
	return rc;
}

int reap_pool_submit_at(reap_pool *p, reap_job_fn fn, void *arg,
			reap_future **out, const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	uint32_t hold = FH_POOL;
	reap_future *f;
	bool wake;

	check_pool(p, "reap_pool_submit");
	if (fn == NULL)
		return -EINVAL;
	if (out == NULL)
		hold |= FH_NOFUTURE;
	else if (reap__ledger_active())
		hold |= FH_CALLER | FH_COUNTED;
	else
		hold |= FH_CALLER;

	pthread_mutex_lock(&p->lock);
	if (unlikely(atomic_load_explicit(&p->closing, memory_order_relaxed))) {
		pthread_mutex_unlock(&p->lock);
		atomic_fetch_add_explicit(&p->rejected, 1, memory_order_relaxed);
		return REAP_ECLOSED;
	}
	if ((f = p->spare) == NULL) {
		/* Acquire: pairs with the pushes' release. */
		f = atomic_exchange_explicit(&p->freed, NULL, memory_order_acquire);
		if (f == NULL && (f = slab_new(p)) == NULL) {
			pthread_mutex_unlock(&p->lock);
			return -ENOMEM;
		}
	}
	p->spare = f->next;
	/* Nobody else can see f: plain or relaxed initialisation; the
	 * lock's release publishes it to the worker that takes it. */
	atomic_store_explicit(&f->state, FS_QUEUED, memory_order_relaxed);
	atomic_store_explicit(&f->hold, hold, memory_order_relaxed);
	f->fn = fn;
	f->arg = arg;
	f->result = NULL;
	f->err = 0;
	f->next = NULL;
	WR(f->site, site);
	WR(f->tid, ts->num);
	WR(f->t_ms, ts->now_ms);
	if (p->tail != NULL)
		p->tail->next = f;
	else
		atomic_store_explicit(&p->head, f, memory_order_relaxed);
	p->tail = f;
	atomic_store_explicit(&p->submitted,
			      atomic_load_explicit(&p->submitted, memory_order_relaxed) + 1,
			      memory_order_relaxed);
	/* Wake a sleeper only if no worker is spinning: a spinner takes
	 * the job without a system call. Relaxed: a stale count costs a
	 * spurious signal or a spinner's short delay, never a lost job
	 * (sleepers is read under the lock, and a spinner rechecks the
	 * queue under it before it sleeps). */
	wake = p->sleepers > 0 &&
	       atomic_load_explicit(&p->spinning, memory_order_relaxed) == 0;
	/* A reference for the caller's future, and one that keeps p alive
	 * through the signal below, should the pool close meanwhile.
	 * Relaxed: we hold p (it is open, under our lock). */
	if (wake + (out != NULL) > 0)
		atomic_fetch_add_explicit(&p->refs, (uint32_t)(wake + (out != NULL)),
					  memory_order_relaxed);
	pthread_mutex_unlock(&p->lock);
	if (wake) {
		pthread_cond_signal(&p->work_cv);
		pool_unref(p);
	}
	if (out != NULL) {
		if (hold & FH_COUNTED)
			reap__count_created(ts, reap__type_id(&future_type));
		*out = f;
	}
	return 0;
}

void reap_pool_stats_get(const reap_pool *p, reap_pool_stats *st)
{
	uint64_t started = 0, completed = 0, failed = 0;

	check_pool(p, "reap_pool_stats_get");
	for (unsigned i = 0; i < p->n; i++) {
		const struct worker *w = &p->w[i];

		/* Read the ends before the starts, so that running never
		 * comes out negative. */
		completed += atomic_load_explicit(&w->completed, memory_order_acquire);
		failed += atomic_load_explicit(&w->failed, memory_order_acquire);
		started += atomic_load_explicit(&w->started, memory_order_acquire);
	}
	memset(st, 0, sizeof *st);
	st->cancelled = atomic_load_explicit(&p->cancelled, memory_order_relaxed);
	st->submitted = atomic_load_explicit(&p->submitted, memory_order_relaxed);
	st->rejected = atomic_load_explicit(&p->rejected, memory_order_relaxed);
	st->completed = completed;
	st->failed = failed;
	st->running = started > completed + failed ? started - completed - failed : 0;
	st->queued = st->submitted > started + st->cancelled
			     ? st->submitted - started - st->cancelled : 0;
	st->closing = atomic_load_explicit(&p->closing, memory_order_acquire) !=
		      C_OPEN;
	st->workers = RD(p->running);
	st->idle = RD(p->sleepers) +
		   atomic_load_explicit(&p->spinning, memory_order_relaxed);
	if (st->idle > st->workers)
		st->idle = st->workers;
}

/* ------------------------------------------------------------------ */
/* Futures                                                              */

static inline bool ended(uint32_t s)
{
	return (s & FS_MASK) >= FS_DONE;
}

int reap_future_wait(reap_future *f, uint64_t deadline_ns)
{
	reap_pool *p = f->pool;
	int rc = 0;

	/* Acquire: seeing DONE, we see the job's result. */
	if (ended(atomic_load_explicit(&f->state, memory_order_acquire)))
		return 0;
	for (int i = 0; i < SPIN_WAIT; i++) {
		reap__cpu_relax();
		if (ended(atomic_load_explicit(&f->state, memory_order_acquire)))
			return 0;
	}
	pthread_mutex_lock(&p->wait_m);
	for (;;) {
		/* Acq_rel: the bit must be visible to whoever ends the
		 * future before we sleep (see the essay at the top). */
		if (ended(atomic_fetch_or_explicit(&f->state, FS_WAITER,
						   memory_order_acq_rel)))
			break;
		rc = reap_cancel_cond_wait(NULL, &p->wait_cv, &p->wait_m,
					   deadline_ns);
		if (rc < 0) {
			if (ended(atomic_load_explicit(&f->state,
						       memory_order_acquire)))
				rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&p->wait_m);
	return rc;
}

int reap_future_result(const reap_future *f, void **result)
{
	uint32_t s = atomic_load_explicit(&f->state, memory_order_acquire);

	switch (s & FS_MASK) {
	case FS_DONE:
		if (result != NULL)
			*result = f->result;
		return f->err;
	case FS_CANCELLED:
		if (result != NULL)
			*result = NULL;
		return -ECANCELED;
	default:
		return -EBUSY;
	}
}

bool reap_future_done(const reap_future *f)
{
	return ended(atomic_load_explicit(&f->state, memory_order_acquire));
}

int reap_future_cancel(reap_future *f)
{
	uint32_t s;

	if (cancel_queued(f->pool, f))
		return 0;
	s = atomic_load_explicit(&f->state, memory_order_relaxed);
	if ((s & FS_MASK) == FS_RUNNING) {
		/* Relaxed: a request, polled by the job; if the job ended
		 * meanwhile, the bit is dropped with its state. */
		atomic_fetch_or_explicit(&f->state, FS_CANCEL_REQ,
					 memory_order_relaxed);
		return -EBUSY;
	}
	return -EALREADY;
}

void reap_future_release(reap_future *f)
{
	reap_pool *p;
	uint32_t h;

	if (f == NULL)
		return;
	p = f->pool;
	h = atomic_load_explicit(&f->hold, memory_order_relaxed);
	if (unlikely(!(h & FH_CALLER)))
		reap__misuse("reap_future_release: future %p of pool \"%s\" is "
			     "not held (released twice?)", (void *)f, p->name);
	future_drop(p, f, FH_CALLER);
	if (h & FH_COUNTED) {
		struct reap__tstate *ts = reap__ts();

		reap__count_closed(ts, reap__type_id(&future_type));
		reap__count_settle(ts);
	}
	pool_unref(p);
}

bool reap_job_cancelled(void)
{
	struct worker *w = cur_worker;

	if (w == NULL || w->cur == NULL)
		return false;
	return (atomic_load_explicit(&w->cur->state, memory_order_relaxed) &
		FS_CANCEL_REQ) ||
	       atomic_load_explicit(&w->pool->closing, memory_order_relaxed) ==
		       C_CANCEL ||
	       reap_cancel_requested(NULL);
}

int reap_pool_worker_index(void)
{
	struct worker *w = cur_worker;

	return w != NULL ? (int)w->index : -1;
}
