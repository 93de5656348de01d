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
 * tokens can also be created on their own and shared by several workers.
 */
typedef struct reap_cancel reap_cancel;

/*
 * Create a token owned by scope s (NULL: the current scope).
 * Errors: -ENOMEM. Ownership: s owns the token; closing s destroys it.
 * Thread safety: owner thread of s.
 */
#define reap_cancel_create(s, out) reap_cancel_create_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_cancel_create_at(reap_scope *s,
						  reap_cancel **out,
						  const reap_site *site)
	REAP_NONNULL(2, 3);

/* Request cancellation and wake every wait on the token. Idempotent.
 * Ownership: borrows c. Thread safety: any thread. */
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
 * Waits that return -ECANCELED when c (NULL: the calling thread's token)
 * is cancelled. deadline_ns is absolute on reap_now_ns()'s clock;
 * REAP_FOREVER waits without a deadline. They return 0 when the wait
 * ends normally, -ETIMEDOUT at the deadline, -ECANCELED on cancellation
 * (checked first: a cancelled token makes every wait return at once).
 * Ownership: all arguments borrowed. Thread safety: any thread.
 */
#define REAP_FOREVER UINT64_MAX

/* Sleep for ns nanoseconds. */
REAP_API int reap_cancel_sleep(reap_cancel *c, uint64_t ns);

/* pthread_cond_wait on cv with m held (as pthread requires); m is held
 * again on return, whatever the result. Spurious wake-ups return 0. */
REAP_API int reap_cancel_cond_wait(reap_cancel *c, pthread_cond_t *cv,
				   pthread_mutex_t *m, uint64_t deadline_ns)
	REAP_NONNULL(2, 3);

/* Wait until fd is ready for events (POLLIN, POLLOUT, ...). Returns the
 * revents (> 0) when ready. */
REAP_API int reap_cancel_wait_fd(reap_cancel *c, int fd, short events,
				 uint64_t deadline_ns);

/* ------------------------------------------------------------------ */
/* Scoped threads                                                       */

typedef struct reap_thread reap_thread;
typedef void *(*reap_thread_fn)(void *arg);

/* Options for reap_thread_spawn_opts(); zero means the default. */
typedef struct reap_thread_opts {
	const char *name;       /* for reports and the OS ("T3" by default) */
	uint64_t join_limit_ns; /* wait at owner close; default 5 s */
	size_t stack_size;      /* default: the system's */
	reap_cancel *cancel;    /* share this token instead of a new one */
} reap_thread_opts;

/*
 * Start fn(arg) on a new thread owned by s (NULL: the current scope).
 * The thread's current scope is its own root scope, closed (and its
 * leftovers reported under REAP_DEBUG=leaks, with the thread's name)
 * when fn returns or the thread calls reap_thread_exit() or
 * pthread_exit().
 *
 * Errors: -ENOMEM, -EAGAIN (the system refused a thread), -EINVAL. On
 * failure nothing runs and *out is untouched. Ownership: s owns the
 * thread; closing s requests cancellation and joins it. *out is borrowed
 * until reap_thread_join() or the close of s. Thread safety: owner
 * thread of s.
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
 * Wait for t to end and take its result and its error chain (the chain
 * its root scope closed with, or the code it passed to
 * reap_thread_exit()). Returns the thread's error code (0 if none).
 * result and chain may be NULL. Ownership: takes t (its entry in its
 * owner scope is removed); the caller owns *chain (reap_error_free).
 * Thread safety: owner thread of t's scope.
 */
REAP_API int reap_thread_join(reap_thread *t, void **result,
			      reap_error **chain) REAP_NONNULL(1);

/* Like reap_thread_join() with a deadline; -ETIMEDOUT leaves t running
 * and owned as before. */
REAP_API int reap_thread_join_until(reap_thread *t, uint64_t deadline_ns,
				    void **result, reap_error **chain)
	REAP_NONNULL(1);

/* End the calling reap thread with result and error code code (0 or
 * negative); its root scope closes as if fn had returned. On a thread
 * reap did not start it calls pthread_exit(result). Ownership: nothing
 * is taken. Thread safety: the calling thread only. */
REAP_API REAP_NORETURN void reap_thread_exit(void *result, int code);

/* t's cancellation token, its name. Ownership: borrowed from t. Thread
 * safety: any thread while t is owned. */
REAP_API reap_cancel *reap_thread_cancel_token(reap_thread *t) REAP_NONNULL(1);
REAP_API const char *reap_thread_name(const reap_thread *t) REAP_NONNULL(1);

/* The calling thread's reap thread, or NULL. Ownership: borrowed.
 * Thread safety: any thread (about itself). */
REAP_API reap_thread *reap_thread_self(void);

/* ------------------------------------------------------------------ */
/* Thread-local resources                                               */

/*
 * A thread-local key: each thread has its own value, created lazily by
 * init on first reap_tls_get() in that thread (like threading.local with
 * __init__), and destroyed by dtor when the thread exits, including the
 * main thread at process exit and threads reap did not start. If a
 * destructor sets a value again, destructors re-run, at most
 * REAP_TLS_DTOR_ITERATIONS times. A thread still running at process exit
 * is reported with the values it holds.
 */
typedef struct reap_tls reap_tls;
typedef int (*reap_tls_init_fn)(void *ctx, void **value); /* 0 or -errno */
typedef void (*reap_tls_dtor_fn)(void *ctx, void *value);
#define REAP_TLS_DTOR_ITERATIONS 4

/*
 * Create a key owned by s (NULL: the current scope); closing s destroys
 * the key, running dtor for the value of every thread that still has
 * one... on the closing thread (document precisely in the source).
 * init and dtor may be NULL. Errors: -ENOMEM, -EAGAIN (too many keys).
 * Ownership: s owns the key. Thread safety: owner thread of s.
 */
#define reap_tls_create(s, init, dtor, ctx, out) \
	reap_tls_create_at((s), (init), (dtor), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_tls_create_at(reap_scope *s,
					       reap_tls_init_fn init,
					       reap_tls_dtor_fn dtor, void *ctx,
					       reap_tls **out,
					       const reap_site *site)
	REAP_NONNULL(5, 6);

/* The calling thread's value, built by init on first use. Errors: what
 * init returned, -ENOMEM. Ownership: the thread owns the value; the
 * caller borrows it. Thread safety: any thread. */
REAP_API REAP_NODISCARD int reap_tls_get(reap_tls *k, void **value)
	REAP_NONNULL(1, 2);

/* The value if set, else NULL, without running init. Fast path.
 * Ownership: borrowed. Thread safety: any thread. */
REAP_API void *reap_tls_peek(reap_tls *k) REAP_NONNULL(1);

/* Replace the calling thread's value (the old one is destroyed by dtor
 * unless it is the same). Errors: -ENOMEM. Ownership: the thread takes
 * value. Thread safety: any thread. */
REAP_API REAP_NODISCARD int reap_tls_set(reap_tls *k, void *value)
	REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Scoped locks                                                         */

/*
 * A mutex known to reap: lock-order inversions between reap locks are
 * detected under REAP_DEBUG=locks (both acquisition sites reported).
 */
typedef struct reap_mutex {
	pthread_mutex_t m;
	const char *name;
	unsigned id; /* private: for the lock-order checker */
} reap_mutex;
#define REAP_MUTEX_INIT(name) {PTHREAD_MUTEX_INITIALIZER, (name), 0}

#define reap_mutex_lock(m) reap_mutex_lock_at((m), REAP_SITE)
REAP_API void reap_mutex_lock_at(reap_mutex *m, const reap_site *site)
	REAP_NONNULL(1);
REAP_API void reap_mutex_unlock(reap_mutex *m) REAP_NONNULL(1);

/*
 * REAP_WITH_LOCK(m) { ... }: hold m for the block and release it when
 * control leaves it by any path (end, break, continue, return, goto).
 */
/* (defined by the implementation; see thread/lock.c) */

/* ------------------------------------------------------------------ */
/* Worker pools                                                         */

typedef struct reap_pool reap_pool;
typedef struct reap_future reap_future;

/* Per-worker setup and teardown: init builds the worker's resources and
 * returns them in *state (0 or -errno; a failing init fails the pool's
 * creation); fini receives them when the worker stops. */
typedef int (*reap_pool_init_fn)(void *ctx, unsigned worker, void **state);
typedef void (*reap_pool_fini_fn)(void *ctx, unsigned worker, void *state);
/* A job: returns 0 or -errno, may set *result. state is the worker's. */
typedef int (*reap_job_fn)(void *arg, void *state, void **result);

#define reap_pool_create(s, n, init, fini, ctx, out) \
	reap_pool_create_at((s), (n), (init), (fini), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_pool_create_at(reap_scope *s, unsigned n,
						reap_pool_init_fn init,
						reap_pool_fini_fn fini,
						void *ctx, reap_pool **out,
						const reap_site *site)
	REAP_NONNULL(6, 7);

#ifdef __cplusplus
}
#endif
#endif /* REAP_THREAD_H */
