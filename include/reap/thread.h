/*
 * reap/thread.h: threads owned by scopes, cancellation tokens,
 * thread-local resources whose destructors really run, scoped locks with
 * lock-order checking, and worker pools with per-worker setup and
 * teardown.
 *
 * A reap thread is a resource of the scope that spawned it. It runs with
 * its own root scope as its current scope, so what it creates without
 * naming an owner is closed when it ends. Closing the owning scope
 * requests cancellation and joins the thread, waiting at most the
 * thread's join limit; a thread that does not stop by then is reported
 * (creation site, what it still holds), never silently abandoned.
 *
 *     static void *work(void *arg) {
 *             while (!reap_cancel_requested(NULL)) ...;
 *             return NULL;
 *     }
 *     reap_thread *t;
 *     int rc = reap_thread_spawn(s, work, arg, &t);  // s owns t
 *     ...
 *     reap_scope_close(s);  // cancels t, joins it, closes its root
 *
 * The worker pool (second half of this header) builds on these threads.
 * docs/threads.md tells the whole story; what is reported at exit is
 * under reap_thread_spawn() below.
 */
#ifndef REAP_THREAD_H
#define REAP_THREAD_H

#include <pthread.h>

#include "scope.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Cancellation tokens                                                  */

/*
 * A cancellation token: cooperative, one-way (once requested it stays
 * requested), observable from any thread. Every reap thread has one;
 * tokens can also be created on their own and shared by several
 * threads (reap_thread_opts.cancel).
 */
typedef struct reap_cancel reap_cancel;

/*
 * Create a token owned by scope s (NULL: the current scope).
 * Errors: -ENOMEM. On failure *out is untouched. Ownership: s owns the
 * token; closing s releases it (threads spawned with it keep it alive
 * until they are joined). Thread safety: owner thread of s.
 */
#define reap_cancel_create(s, out) reap_cancel_create_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_cancel_create_at(reap_scope *s,
						  reap_cancel **out,
						  const reap_site *site)
	REAP_NONNULL(2, 3);

/* Request cancellation and wake every wait on the token. Idempotent.
 * Ownership: borrows c. Thread safety: any thread; not from a signal
 * handler (it takes a lock). */
REAP_API void reap_cancel_request(reap_cancel *c) REAP_NONNULL(1);

/* True once cancellation was requested. c NULL: the calling thread's own
 * token (false on a thread without one). Ownership: borrows c. Thread
 * safety: any thread. */
REAP_API bool reap_cancel_requested(const reap_cancel *c);

/* The calling thread's token: its reap thread's, or NULL on a thread reap
 * did not start. Ownership: borrowed; valid while the thread runs.
 * Thread safety: any thread (about itself). */
REAP_API reap_cancel *reap_cancel_self(void);

/*
 * Waits that return -ECANCELED when c (NULL: the calling thread's token;
 * on a thread without one they are plain waits) is cancelled.
 * deadline_ns is absolute on reap_now_ns()'s clock; REAP_FOREVER waits
 * without a deadline. They return 0 when the wait ends normally,
 * -ETIMEDOUT at the deadline, -ECANCELED on cancellation (checked first:
 * a cancelled token makes every wait return at once).
 *
 *     while ((rc = reap_cancel_sleep(NULL, 100000000)) == 0)
 *             poll_something();          // every 100 ms until cancelled
 *
 * Ownership: all arguments borrowed. Thread safety: any thread; c may be
 * waited on by several threads at once.
 */
/* Sleep for ns nanoseconds (REAP_FOREVER: until cancelled). Returns 0
 * after the full time, -ECANCELED as soon as c is cancelled. Ownership:
 * borrows c. Thread safety: any thread. */
REAP_API int reap_cancel_sleep(reap_cancel *c, uint64_t ns);

/* pthread_cond_wait on cv with m held (as pthread requires); m is held
 * again on return, whatever the result. Spurious wake-ups return 0, so
 * loop on your predicate. A request made while the requester itself
 * holds m is still seen (once the requester lets m go). Ownership:
 * borrows c, cv and m.
 * Thread safety: any thread, with m held. */
REAP_API int reap_cancel_cond_wait(reap_cancel *c, pthread_cond_t *cv,
				   pthread_mutex_t *m, uint64_t deadline_ns)
	REAP_NONNULL(2, 3);

/* Wait until fd is ready for events (POLLIN, POLLOUT, ...). Returns the
 * revents (> 0) when ready; -EBADF for a bad fd, or a negative errno if
 * the token's eventfd cannot be made (-EMFILE). Ownership: borrows c and
 * fd. Thread safety: any thread. */
REAP_API int reap_cancel_wait_fd(reap_cancel *c, int fd, short events,
				 uint64_t deadline_ns);

/* ------------------------------------------------------------------ */
/* Scoped threads                                                       */

typedef struct reap_thread reap_thread;
typedef void *(*reap_thread_fn)(void *arg);

/* Options for reap_thread_spawn_opts(); zero means the default. */
typedef struct reap_thread_opts {
	const char *name;       /* for reports and the OS (copied, at most 31
				 * bytes kept; "T<n>" by default, n as in
				 * the ledger's reports) */
	uint64_t join_limit_ns; /* wait at owner close; default 5 s */
	size_t stack_size;      /* default: the system's */
	reap_cancel *cancel;    /* share this token instead of a new one */
} reap_thread_opts;

/*
 * Start fn(arg) on a new thread owned by s (NULL: the current scope).
 *
 * The thread's current scope is its own root scope. When fn returns, or
 * the thread calls reap_thread_exit() or pthread_exit(), first its
 * thread-local values are destroyed (reap_tls), then whatever its root
 * scope still holds is closed, newest first; under REAP_DEBUG=leaks that
 * leftover is reported first, naming the thread. The error chain of that
 * close is the thread's outcome (reap_thread_join()).
 *
 * Closing s requests the thread's cancellation token and joins the
 * thread, waiting at most its join limit. If the thread ended with an
 * error, the close chains it (-ECANCELED, the answer to the request, is
 * not an error). If it does not stop in time it is reported (site, owner,
 * thread-local values, what its root scope holds), detached and left
 * running, and the close gets -ETIMEDOUT; the ledger counts it until it
 * ends. reap keeps what the thread itself uses (its record, its token,
 * its root scope); what the closed owner held is gone, so a thread must
 * not use its owner's resources after being cancelled.
 *
 * At process exit every reap thread still running is cancelled and given
 * its join limit, all at once; those still running then are reported
 * with their creation site and what they hold, including their
 * thread-local values, and are open resources in the leak report.
 *
 * Errors: -ENOMEM, -EAGAIN (the system refused a thread, or fault
 * injection), -EINVAL (a stack size below PTHREAD_STACK_MIN), -EPERM. On
 * failure nothing runs, nothing stays registered and *out is untouched
 * (the owner's cleanup stack may keep a grown chunk until it closes).
 * Ownership: s owns the thread; *out is borrowed until reap_thread_join()
 * or the close of s. Thread safety: owner thread of s.
 */
#define reap_thread_spawn(s, fn, arg, out) \
	reap_thread_spawn_at((s), NULL, (fn), (arg), (out), REAP_SITE)
#define reap_thread_spawn_opts(s, opts, fn, arg, out) \
	reap_thread_spawn_at((s), (opts), (fn), (arg), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_thread_spawn_at(reap_scope *s,
						 const reap_thread_opts *opts,
						 reap_thread_fn fn, void *arg,
						 reap_thread **out,
						 const reap_site *site)
	REAP_NONNULL(3, 6);

/*
 * Wait for t to end and take its result (what fn returned or was passed
 * to pthread_exit/reap_thread_exit) and its error chain: the chain its
 * root scope closed with, over the code it passed to reap_thread_exit().
 * Returns the thread's error code (0 if none); -EDEADLK (t is the
 * caller; nothing changes). result and chain may be NULL.
 * Ownership: takes t (its entry in its owner scope is removed); the
 * caller owns *chain (reap_error_free). Thread safety: owner thread of
 * t's scope.
 */
REAP_API int reap_thread_join(reap_thread *t, void **result,
			      reap_error **chain) REAP_NONNULL(1);

/* Like reap_thread_join() with a deadline (absolute, reap_now_ns()'s
 * clock); -ETIMEDOUT leaves t running and owned as before. Ownership:
 * takes t unless it fails. Thread safety: owner thread of t's scope. */
REAP_API int reap_thread_join_until(reap_thread *t, uint64_t deadline_ns,
				    void **result, reap_error **chain)
	REAP_NONNULL(1);

/* End the calling reap thread with result and error code code (0 or
 * negative; a message raised with reap_raisef() for it is kept); its
 * root scope closes as if fn had returned, with code in flight. On a
 * thread reap did not start it is pthread_exit(result). Ownership:
 * nothing is taken. Thread safety: the calling thread only. */
#define reap_thread_exit(result, code) \
	reap_thread_exit_at((result), (code), REAP_SITE)
REAP_API REAP_NORETURN void reap_thread_exit_at(void *result, int code,
						const reap_site *site);

/* t's cancellation token. Ownership: borrowed from t; valid while t is
 * owned. Thread safety: any thread while t is owned. */
REAP_API reap_cancel *reap_thread_cancel_token(reap_thread *t) REAP_NONNULL(1);

/* t's name: the one given, else "T<n>" once the thread runs ("T?"
 * before). Ownership: borrowed from t. Thread safety: any thread while
 * t is owned. */
REAP_API const char *reap_thread_name(const reap_thread *t) REAP_NONNULL(1);

/* The calling thread's reap thread, or NULL. Ownership: borrowed.
 * Thread safety: any thread (about itself). */
REAP_API reap_thread *reap_thread_self(void);

/* ------------------------------------------------------------------ */
/* Thread-local resources                                               */

/*
 * A thread-local key: each thread has its own value, created lazily by
 * init on first reap_tls_get() in that thread (like threading.local with
 * __init__), and destroyed by dtor when the thread exits: reap threads,
 * threads reap did not start (once they have used reap), and the main
 * thread, or whichever thread calls exit(), at process exit, before the
 * leak report. Destructors run before the thread's root scope closes, so
 * they may use what it holds. If a destructor sets a value again, the
 * destructors re-run, at most REAP_TLS_DTOR_ITERATIONS rounds; values
 * still set then are reported and dropped. A thread still running at
 * process exit is reported with the values it holds.
 *
 * After a thread's values are destroyed its thread-local storage is
 * closed: reap_tls_peek() returns NULL, reap_tls_get() (with init) and
 * reap_tls_set() fail with REAP_ECLOSED. A NULL value means "no value".
 *
 *     static int open_conn(void *ctx, void **v) { ... *v = conn; return 0; }
 *     static void close_conn(void *ctx, void *v) { conn_close(v); }
 *     reap_tls *k;
 *     rc = reap_tls_create(s, open_conn, close_conn, NULL, &k);
 *     ... in any thread: void *conn; rc = reap_tls_get(k, &conn);
 */
typedef struct reap_tls reap_tls;
typedef int (*reap_tls_init_fn)(void *ctx, void **value); /* 0 or -errno */
typedef void (*reap_tls_dtor_fn)(void *ctx, void *value);
#define REAP_TLS_DTOR_ITERATIONS 4

/*
 * Create a key owned by s (NULL: the current scope). init and dtor may
 * be NULL. Closing s closes the key: the value of every thread that still
 * has one is destroyed there, on the closing thread, and the close waits
 * for destructors of the key running on exiting threads; after it no
 * destructor of the key runs anywhere. So close a key only when no other
 * thread uses it any more: open it before the threads that use it, in
 * the same scope or an outer one, and the scope's LIFO close does that.
 * Errors: -ENOMEM, -EAGAIN (1024 keys open). Ownership: s owns the key;
 * ctx is borrowed until the key closes. Thread safety: owner thread of s.
 */
#define reap_tls_create(s, init, dtor, ctx, out) \
	reap_tls_create_at((s), (init), (dtor), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_tls_create_at(reap_scope *s,
					       reap_tls_init_fn init,
					       reap_tls_dtor_fn dtor, void *ctx,
					       reap_tls **out,
					       const reap_site *site)
	REAP_NONNULL(5, 6);

/* The calling thread's value, built by init on first use (without init:
 * the value set, or NULL). Errors: what init returned (nothing is
 * stored, init runs again next time), -ENOMEM (init is not called),
 * REAP_ECLOSED. Ownership: the thread owns the value; the caller borrows
 * it. Thread safety: any thread. */
REAP_API REAP_NODISCARD int reap_tls_get(reap_tls *k, void **value)
	REAP_NONNULL(1, 2);

/* The value if set, else NULL, without running init: a few instructions.
 * Ownership: borrowed. Thread safety: any thread. */
REAP_API void *reap_tls_peek(reap_tls *k) REAP_NONNULL(1);

/* Replace the calling thread's value (the old one is destroyed by dtor
 * unless it is the same; NULL removes the value). Errors: -ENOMEM,
 * REAP_ECLOSED; on error value is still the caller's. Ownership: the
 * thread takes value. Thread safety: any thread. */
REAP_API REAP_NODISCARD int reap_tls_set(reap_tls *k, void *value)
	REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Scoped locks                                                         */

/*
 * A mutex known to reap. Under REAP_DEBUG=locks (or reap_debug_set) the
 * order in which threads take reap mutexes is recorded, and taking one
 * in the opposite order of an order seen before (directly, or through a
 * chain of others) is reported to the report hook, before the thread
 * blocks, with the sites of both acquisitions on each side; the program
 * goes on. Without it a reap_mutex costs what a pthread mutex costs.
 *
 *     static reap_mutex accounts = REAP_MUTEX_INIT("accounts");
 *     REAP_WITH_LOCK(&accounts) {
 *             if (bad) return -EINVAL;   // unlocked on the way out
 *             ...
 *     }
 */
typedef struct reap_mutex {
	pthread_mutex_t m;
	const char *name; /* for reports; static storage */
	unsigned id;      /* private: for the lock-order checker */
} reap_mutex;
#define REAP_MUTEX_INIT(name) {PTHREAD_MUTEX_INITIALIZER, (name), 0}

/* Initialize / destroy a mutex in the caller's storage (or use
 * REAP_MUTEX_INIT). Ownership: the caller owns m; name is borrowed for
 * m's life. Thread safety: before / after any thread uses m. */
REAP_API void reap_mutex_init(reap_mutex *m, const char *name) REAP_NONNULL(1);
REAP_API void reap_mutex_destroy(reap_mutex *m) REAP_NONNULL(1);

/* Lock, try to lock (0 or -EBUSY), unlock. Ownership: borrows m.
 * Thread safety: any thread; unlock on the thread that locked. */
#define reap_mutex_lock(m) reap_mutex_lock_at((m), REAP_SITE)
REAP_API void reap_mutex_lock_at(reap_mutex *m, const reap_site *site)
	REAP_NONNULL(1);
#define reap_mutex_trylock(m) reap_mutex_trylock_at((m), REAP_SITE)
REAP_API REAP_NODISCARD int reap_mutex_trylock_at(reap_mutex *m,
						  const reap_site *site)
	REAP_NONNULL(1);
REAP_API void reap_mutex_unlock(reap_mutex *m) REAP_NONNULL(1);

/*
 * REAP_WITH_LOCK(m) { ... }: hold m for the block and release it when
 * control leaves it by any path (end, break, continue, return, goto).
 * break and continue leave the block itself, as in REAP_WITH_SCOPE.
 */
typedef struct reap_lock_guard {
	reap_mutex *m;
	int state;
} reap_lock_guard;

/* Internal to REAP_WITH_LOCK; not for direct use. Ownership: the guard
 * holds m until reap__lock_exit. Thread safety: the locking thread. */
REAP_API reap_lock_guard reap__lock_enter(reap_mutex *m, const reap_site *site);
REAP_API void reap__lock_exit(reap_lock_guard *g);

#define REAP__LG REAP__CAT(reap__lock_, __LINE__)
#define REAP_WITH_LOCK(mx)                                                  \
	for (reap_lock_guard REAP__LG __attribute__((cleanup(reap__lock_exit))) = \
		     reap__lock_enter((mx), REAP_SITE);                     \
	     REAP__LG.state == 0; REAP__LG.state = 1)

/* ------------------------------------------------------------------ */
/* Worker pools                                                         */

/*
 * A pool of worker threads with per-worker setup and teardown, running
 * jobs submitted from any thread and handing back their results through
 * futures (Python's ThreadPoolExecutor, with a finalizer as well as an
 * initializer).
 *
 *     static int open_conn(void *ctx, unsigned w, void **state) { ... }
 *     static void close_conn(void *ctx, unsigned w, void *state) { ... }
 *     static int query(void *arg, void *conn, void **result) { ... }
 *
 *     reap_pool *p;
 *     reap_future *f;
 *     int rc = reap_pool_create(s, 4, open_conn, close_conn, NULL, &p);
 *     rc = reap_pool_submit(p, query, "SELECT 1", &f);
 *     if (rc == 0 && reap_future_wait(f, REAP_FOREVER) == 0)
 *             rc = reap_future_result(f, &row);   // what query returned
 *     reap_future_release(f);
 *     reap_scope_close(s);   // drains the queue, runs every fini, joins
 *
 * Each worker is a reap thread (see above) owned by the pool: it has its
 * own root scope as its current scope and its own thread-local values.
 * It runs init once when it starts, then jobs, then fini once when the
 * pool closes. What init creates without naming an owner goes to the
 * worker's root scope and is closed when the worker ends, after fini.
 *
 * A pool is a resource of the scope it is created in: it appears in the
 * ledger as a scope (named after the pool) holding its worker threads
 * and a "pool" entry. Closing that scope, or reap_pool_close(), closes
 * the pool:
 *   1. submits fail with REAP_ECLOSED from then on;
 *   2. REAP_POOL_DRAIN runs every job already queued; REAP_POOL_CANCEL
 *      cancels every job that has not started (its future ends with
 *      -ECANCELED, the job never runs), marks the running ones cancelled
 *      (reap_job_cancelled() turns true) and requests each worker's
 *      cancellation token, so that reap_cancel_*() waits inside running
 *      jobs return -ECANCELED;
 *   3. each worker finishes its current job, runs fini and ends; the
 *      close waits for all of them (no time limit: a job that never
 *      returns blocks the close) and joins them.
 * A job returning an error never ends its worker. A worker whose own
 * cancellation token is requested (reap requests every thread's at
 * process exit) stops after its current job and runs fini; once the last
 * one has stopped, the pool refuses submits and cancels what is queued,
 * so that an accepted job always runs or ends cancelled.
 */
typedef struct reap_pool reap_pool;
typedef struct reap_future reap_future;

/* Per-worker setup and teardown, run on the worker's own thread. init
 * builds the worker's resources and returns them in *state (0 or -errno;
 * a failing init fails the pool's creation); fini receives them when
 * the worker stops. fini runs exactly once for every worker whose init
 * succeeded, and for no other. worker is the worker's index, 0 to n-1. */
typedef int (*reap_pool_init_fn)(void *ctx, unsigned worker, void **state);
typedef void (*reap_pool_fini_fn)(void *ctx, unsigned worker, void *state);

/* A job: runs on a worker with that worker's state; returns 0 or -errno
 * and may set *result (NULL beforehand). */
typedef int (*reap_job_fn)(void *arg, void *state, void **result);

/* What closing the pool does with jobs that have not started. */
typedef enum reap_pool_mode {
	REAP_POOL_DRAIN = 0, /* run them all, then stop (the default) */
	REAP_POOL_CANCEL = 1 /* cancel them; ask running jobs to stop */
} reap_pool_mode;

/* Options for reap_pool_create_opts(); zero means the default. */
typedef struct reap_pool_opts {
	const char *name;       /* the pool's scope name; "pool" by default;
				 * workers are named "<name>/<index>" */
	reap_pool_mode on_close; /* mode when the owner scope closes it */
} reap_pool_opts;

/*
 * Create a pool of n workers (1 to 1024) owned by s (NULL: the current
 * scope). Each worker runs init(ctx, i, &state) on its own thread
 * (init NULL: state NULL), and creation returns once every init has
 * returned. fini (may be NULL) runs at close, on the worker's thread.
 *
 * Errors: -EINVAL (n out of range), -ENOMEM, -EAGAIN (the system refused
 * a thread), or the first error an init returned. On failure the workers
 * already started are stopped, fini runs for each whose init succeeded,
 * all are joined, nothing is left registered or allocated, and *out is
 * untouched. Ownership: s owns the pool; closing s closes it in the mode
 * of opts->on_close (drain by default). *out is borrowed until s closes
 * (a pool closed by reap_pool_close() stays a valid handle until then:
 * it refuses submits and still gives statistics). ctx is borrowed until
 * the pool is closed. Thread safety: owner thread of s.
 */
#define reap_pool_create(s, n, init, fini, ctx, out) \
	reap_pool_create_at((s), NULL, (n), (init), (fini), (ctx), (out), \
			    REAP_SITE)
#define reap_pool_create_opts(s, opts, n, init, fini, ctx, out) \
	reap_pool_create_at((s), (opts), (n), (init), (fini), (ctx), (out), \
			    REAP_SITE)
REAP_API REAP_NODISCARD int reap_pool_create_at(reap_scope *s,
						const reap_pool_opts *opts,
						unsigned n,
						reap_pool_init_fn init,
						reap_pool_fini_fn fini,
						void *ctx, reap_pool **out,
						const reap_site *site)
	REAP_NONNULL(7, 8);

/*
 * Close the pool now in the given mode (see above) and return once every
 * worker has run fini and been joined. Returns 0, or the first error a
 * worker thread ended with (reap_thread_join()). Misuse: closing twice,
 * or from one of the pool's own jobs (it would wait for itself).
 * Ownership: borrows p, which stays in its owner scope, closed, until
 * that scope closes; futures already handed out stay valid until
 * released. Thread safety: owner thread of the pool's scope; other
 * threads may submit meanwhile (they get REAP_ECLOSED once it began).
 */
REAP_API int reap_pool_close(reap_pool *p, reap_pool_mode mode)
	REAP_NONNULL(1);

/*
 * Queue fn(arg, state, &result) to run on one of the workers. With out
 * not NULL, *out receives a future for the job; with out NULL the job is
 * fire-and-forget, and an error it returns goes to the report hook (so
 * that none is lost) as well as into the pool's `failed` count.
 *
 * Errors: REAP_ECLOSED (the pool is closing or closed, also from one of
 * its own jobs while it drains), -ENOMEM, -EINVAL (fn NULL). A failed
 * submit runs nothing and leaves *out untouched. Ownership: borrows p and
 * arg (arg must stay valid until the job ends); the caller owns *out
 * and must give it back with reap_future_release(); unreleased futures
 * are counted by the ledger as resources of type "future" and reported
 * as leaks. Thread safety: any thread, including the pool's workers.
 */
#define reap_pool_submit(p, fn, arg, out) \
	reap_pool_submit_at((p), (fn), (arg), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_pool_submit_at(reap_pool *p, reap_job_fn fn,
						void *arg, reap_future **out,
						const reap_site *site)
	REAP_NONNULL(1, 5);

/* Statistics of a pool; counts since its creation. */
typedef struct reap_pool_stats {
	uint64_t submitted; /* accepted by reap_pool_submit() */
	uint64_t rejected;  /* refused with REAP_ECLOSED */
	uint64_t completed; /* ran and returned 0 */
	uint64_t failed;    /* ran and returned an error */
	uint64_t cancelled; /* cancelled before they started; never ran */
	uint64_t queued;    /* waiting now (submitted - started - cancelled) */
	uint64_t running;   /* running now */
	unsigned workers;   /* workers running jobs now (0 once closed) */
	unsigned idle;      /* of those, waiting for a job */
	bool closing;       /* close has begun: submits fail */
} reap_pool_stats;

/* Fill *st with p's statistics: a snapshot, exact when no job starts or
 * ends meanwhile. Ownership: borrows p. Thread safety: any thread while
 * p is open. */
REAP_API void reap_pool_stats_get(const reap_pool *p, reap_pool_stats *st)
	REAP_NONNULL(1, 2);

/*
 * Wait until the future's job has ended (it finished or was cancelled).
 * deadline_ns is absolute on reap_now_ns()'s clock; REAP_FOREVER waits
 * without one. Returns 0 once it has ended (read the outcome with
 * reap_future_result()), -ETIMEDOUT at the deadline, -ECANCELED if the
 * calling thread's own cancellation token (a reap thread's) is
 * requested; on both errors the future is untouched and still pending.
 * Ownership: borrows f. Thread safety: any thread; several may wait on
 * one future.
 */
REAP_API int reap_future_wait(reap_future *f, uint64_t deadline_ns)
	REAP_NONNULL(1);

/*
 * The outcome of an ended future: what its job returned (0 or -errno),
 * with *result set to what it stored (result may be NULL), or -ECANCELED
 * if it was cancelled before it started (the job never ran); -EBUSY if
 * the job has not ended yet (*result untouched). Ownership: borrows f;
 * *result is the job's. Thread safety: any thread.
 */
REAP_API int reap_future_result(const reap_future *f, void **result)
	REAP_NONNULL(1);

/* True once the job has ended (finished or cancelled). Ownership: borrows
 * f. Thread safety: any thread. */
REAP_API bool reap_future_done(const reap_future *f) REAP_NONNULL(1);

/*
 * Cancel the job. Returns 0 if it had not started: it never will, and
 * the future ends now with -ECANCELED. Returns -EBUSY if it is running:
 * cancellation is requested and the job sees it through
 * reap_job_cancelled() (it is not interrupted; its outcome is what it
 * returns). Returns -EALREADY if it had already ended. Ownership:
 * borrows f. Thread safety: any thread.
 */
REAP_API int reap_future_cancel(reap_future *f) REAP_NONNULL(1);

/*
 * Give the future back. A job that has not ended goes on (releasing is
 * not cancelling: call reap_future_cancel() first for that); its outcome
 * is then dropped. Ownership: takes f; NULL is a no-op. Thread safety:
 * any thread, once per future.
 */
REAP_API void reap_future_release(reap_future *f);

/*
 * Inside a job: true once the job's cancellation was requested, by
 * reap_future_cancel() or by a REAP_POOL_CANCEL close of its pool (which
 * also requests the worker's token, reap_cancel_self()). False outside
 * a job. Long jobs should poll it between steps. Ownership: nothing is
 * taken. Thread safety: the calling worker, about its current job.
 */
REAP_API bool reap_job_cancelled(void);

/* Inside a job: the index of the worker running it (0 to n-1), or -1
 * outside a job's worker. Ownership: nothing is taken. Thread safety:
 * the calling thread, about itself. */
REAP_API int reap_pool_worker_index(void);

#ifdef __cplusplus
}
#endif
#endif /* REAP_THREAD_H */
