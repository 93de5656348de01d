/*
 * reap/scope.h: scopes, deferred cleanups and error chains.
 *
 * A scope owns resources. Each resource is registered as a cleanup with
 * reap_defer() (or one of the ready cleanups below); each child scope is
 * itself a resource of its parent. reap_scope_close() runs every cleanup
 * and closes every child, newest first, on every path, and never stops
 * half-way: it is the C form of try/finally, `with` and
 * contextlib.ExitStack.
 *
 *     reap_scope *s;
 *     int rc = reap_scope_open(NULL, &s);
 *     if (rc < 0) return rc;
 *     FILE *f = fopen(path, "r");
 *     if (f == NULL) rc = -errno;
 *     else rc = reap_defer_file(s, f, NULL);
 *     ...
 *     return reap_scope_close(s);       // fclose runs here
 *
 * Errors while closing follow ExitStack's rules. The scope carries an
 * error in flight (set by reap_scope_fail(), or by the result of a
 * REAP_WITH_SCOPE block). Each exit cleanup (reap_exit_fn) sees it and may
 * return 0 (let it through), REAP_SUPPRESS (swallow it) or a negative code
 * (a new error, chained to the one in flight, which becomes its cause).
 * Close returns the final error; reap_scope_close_err() also hands over
 * the whole chain.
 *
 * Who may touch a scope: one thread at a time, its owner. Registering,
 * moving and closing are owner-thread calls unless a function says
 * otherwise. The ledger (reap/ledger.h) reads scopes from any thread.
 */
#ifndef REAP_SCOPE_H
#define REAP_SCOPE_H

#include <pthread.h>

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_scope reap_scope;
typedef struct reap_cleanup reap_cleanup;
typedef struct reap_type reap_type;

/* ------------------------------------------------------------------ */
/* Resource types                                                       */

/*
 * A resource type names what a cleanup releases, for the ledger and its
 * reports. Define one per kind of resource with static storage:
 *
 *     static reap_type conn_type = REAP_TYPE_INIT("conn", conn_describe);
 *
 * describe (optional) writes a short description of the resource whose
 * cleanup argument is arg ("fd 7", "conn to db:5432") into buf.
 */
struct reap_type {
	const char *name;
	void (*describe)(void *arg, char *buf, size_t len);
	unsigned id; /* private: assigned on first use */
};
#define REAP_TYPE_INIT(name, describe) {(name), (describe), 0}

/* Built-in types, by name: "defer", "fd", "FILE", "memory", "mutex"
 * (scopes count as "scope"). Ownership: static, reap's; pass their
 * address. Thread safety: any thread. */
REAP_API extern reap_type reap_type_defer, reap_type_fd, reap_type_file,
	reap_type_memory, reap_type_mutex;

/* ------------------------------------------------------------------ */
/* Scopes                                                               */

/*
 * Open a scope owned by parent; NULL means the calling thread's current
 * scope (the process root scope on the main thread, the thread's own
 * root scope on other threads). The new scope is registered in parent
 * like any other resource: closing parent closes it in its turn.
 *
 * Errors: -ENOMEM. On failure *out is untouched and nothing is registered.
 * Ownership: parent owns the new scope; the caller may close it earlier.
 * Thread safety: owner thread of parent.
 */
#define reap_scope_open(parent, out) reap_scope_open_at((parent), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_scope_open_at(reap_scope *parent,
					       reap_scope **out,
					       const reap_site *site)
	REAP_NONNULL(2);

/*
 * Close a scope: run its cleanups and close its child scopes, newest
 * first, each seeing the error in flight; then free its memory. Returns
 * the final error (0 if none). When that error chains others, the chain
 * is passed to the report hook so that none is lost; use
 * reap_scope_close_err() to take it instead.
 *
 * Close cannot be cancelled and never stops half-way. After it returns, s
 * is gone; using or closing it again is misuse (reported with both
 * sites). Closing an ancestor of a scope that is closing on this thread,
 * from inside that scope's cleanups, is misuse too.
 *
 * Ownership: takes s. Thread safety: owner thread.
 */
#define reap_scope_close(s) reap_scope_close_at((s), REAP_SITE)
REAP_API int reap_scope_close_at(reap_scope *s, const reap_site *site);

/*
 * Like reap_scope_close(), and hand the whole error chain to the caller
 * through *chain (NULL when the close ends without error). Ownership:
 * takes s; the caller owns *chain and frees it with reap_error_free().
 * Thread safety: owner thread.
 */
#define reap_scope_close_err(s, chain) \
	reap_scope_close_err_at((s), (chain), REAP_SITE)
REAP_API int reap_scope_close_err_at(reap_scope *s, reap_error **chain,
				     const reap_site *site)
	REAP_NONNULL(2);

/*
 * Set the error in flight: the error the scope will be closed with, as if
 * the block it guards had raised it. A second call chains the new error
 * over the first. A negative code is required; 0 does nothing. If no
 * memory is left to record the link, the code is still kept.
 * Ownership: borrows s. Thread safety: owner thread.
 */
#define reap_scope_fail(s, code) reap_scope_failf_at((s), (code), REAP_SITE, NULL)
#define reap_scope_failf(s, code, ...) \
	reap_scope_failf_at((s), (code), REAP_SITE, __VA_ARGS__)
REAP_API void reap_scope_failf_at(reap_scope *s, int code,
				  const reap_site *site, const char *fmt, ...)
	REAP_PRINTF(4, 5);

/* The code of the error in flight (0 if none). Thread safety: owner
 * thread. Ownership: borrows s. */
REAP_API int reap_scope_error(const reap_scope *s);

/*
 * Name the scope, printf-style; the name appears in owner paths
 * ("root/server/conn#12"). Errors: -ENOMEM (the old name stays).
 * Ownership: the name is copied into the scope's memory.
 * Thread safety: owner thread.
 */
REAP_API REAP_NODISCARD int reap_scope_name(reap_scope *s, const char *fmt, ...)
	REAP_PRINTF(2, 3);

/* The scope's name, or NULL. Ownership: borrowed, valid until the scope
 * closes or is renamed. Thread safety: owner thread. */
REAP_API const char *reap_scope_get_name(const reap_scope *s);

/* The owning scope, or NULL for a root scope. Thread safety: owner
 * thread. Ownership: borrowed. */
REAP_API reap_scope *reap_scope_parent(const reap_scope *s);

/* The process root scope, closed at exit. Ownership: borrowed; closing it
 * by hand is misuse. Thread safety: any thread may get the pointer; only
 * the main thread may register into it. */
REAP_API reap_scope *reap_scope_root(void);

/*
 * The calling thread's current scope: the default owner when a NULL
 * scope is passed. It starts as the thread's root scope (the process
 * root on the main thread). Never NULL. Ownership: borrowed.
 * Thread safety: per-thread state.
 */
REAP_API reap_scope *reap_scope_current(void);

/* Make s the calling thread's current scope (NULL: back to the thread's
 * root) and return the previous one. Ownership: borrows s, which must
 * outlive its time as current. Thread safety: per-thread state. */
REAP_API reap_scope *reap_scope_set_current(reap_scope *s);

/*
 * Move a child scope under another owner. It becomes the newest resource
 * of new_parent. Errors: -ENOMEM; -EINVAL if new_parent is s or one of its
 * descendants, or s is a root. On failure nothing changes.
 * Ownership: new_parent owns s afterwards. Thread safety: owner thread of
 * both scopes.
 */
REAP_API REAP_NODISCARD int reap_scope_move(reap_scope *s,
					    reap_scope *new_parent);

/*
 * ExitStack.pop_all: move every cleanup, child scope and block of memory
 * of s into a new scope owned by parent (NULL: the current scope), without
 * running them. s stays open and empty and keeps its error in flight.
 * Handles stay valid. Errors: -ENOMEM; -EINVAL if parent is a descendant
 * of s. On failure nothing changes. Ownership: parent owns *out.
 * Thread safety: owner thread of s and parent.
 */
#define reap_scope_pop_all(s, parent, out) \
	reap_scope_pop_all_at((s), (parent), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_scope_pop_all_at(reap_scope *s,
						  reap_scope *parent,
						  reap_scope **out,
						  const reap_site *site)
	REAP_NONNULL(1, 3);

/* ------------------------------------------------------------------ */
/* Deferred cleanups                                                    */

/* A cleanup that cannot fail. */
typedef void (*reap_cleanup_fn)(void *arg);

/*
 * An exit cleanup, like __exit__: it sees the error in flight (NULL if
 * none) and returns 0 to let it through, REAP_SUPPRESS to swallow it, or
 * a negative code for a new error chained over it (use reap_raisef() to
 * attach a message). It must not keep the pointer.
 */
typedef int (*reap_exit_fn)(void *arg, const reap_error *inflight);

/*
 * Register fn(arg) to run when s closes (s NULL: the current scope).
 * If h is not NULL it receives a handle that can run the cleanup early,
 * cancel it, or move it to another scope.
 *
 * Errors: -ENOMEM. A failed call registers nothing and never calls fn:
 * release the resource yourself. Ownership: s owns the resource from now
 * on; the handle is borrowed and valid until the cleanup runs, is
 * cancelled or the scope closes. Thread safety: owner thread of s.
 */
#define reap_defer(s, fn, arg, h) \
	reap_defer_at((s), &reap_type_defer, (fn), (arg), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_at(reap_scope *s, reap_type *type,
					  reap_cleanup_fn fn, void *arg,
					  reap_cleanup **h,
					  const reap_site *site);

/* Like reap_defer(), for an exit cleanup, with a resource type of the
 * caller's (NULL: "defer"). Same errors, ownership and thread safety. */
#define reap_defer_exit(s, type, fn, arg, h) \
	reap_defer_exit_at((s), (type), (fn), (arg), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_exit_at(reap_scope *s, reap_type *type,
					       reap_exit_fn fn, void *arg,
					       reap_cleanup **h,
					       const reap_site *site);

/*
 * Run a cleanup now (APR's cleanup_run) and forget it. Returns what an
 * exit cleanup returned with no error in flight (0 for a plain one).
 * Ownership: takes the handle. Thread safety: owner thread of its scope.
 */
REAP_API int reap_cleanup_run(reap_cleanup *h);

/* Forget a cleanup without running it (APR's cleanup_kill): the caller
 * takes the resource back. Ownership: takes the handle. Thread safety:
 * owner thread of its scope. */
REAP_API void reap_cleanup_cancel(reap_cleanup *h);

/*
 * Move a cleanup to another scope, where it becomes the newest resource;
 * its creation site and time are kept. *h is updated to the new handle.
 * Errors: -ENOMEM (nothing changes). Ownership: dst owns the resource.
 * Thread safety: owner thread of both scopes.
 */
REAP_API REAP_NODISCARD int reap_cleanup_move(reap_cleanup **h,
					      reap_scope *dst)
	REAP_NONNULL(1, 2);

/* ------------------------------------------------------------------ */
/* Ready cleanups for common resources                                   */

/*
 * The ready cleanups. Each registers one resource like reap_defer(), with
 * its own type, and releases it at close: close(fd), fclose(f), free(p),
 * or pthread_mutex_unlock(m) of a mutex the caller holds. A failing
 * close(), fclose() or unlock is chained as an error with a message.
 * Errors: -EBADF for a negative fd, -EINVAL for a NULL pointer, -ENOMEM;
 * a failed call leaves the resource to the caller. Ownership: s takes the
 * resource; the handle is borrowed as with reap_defer(). Thread safety:
 * owner thread of s.
 */

/* close(fd) at scope close. Ownership: s takes fd. Thread safety: owner
 * thread of s. */
#define reap_defer_fd(s, fd, h) reap_defer_fd_at((s), (fd), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_fd_at(reap_scope *s, int fd,
					     reap_cleanup **h,
					     const reap_site *site);

/* fclose(f) at scope close. Ownership: s takes f. Thread safety: owner
 * thread of s. */
#define reap_defer_file(s, f, h) reap_defer_file_at((s), (f), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_file_at(reap_scope *s, FILE *f,
					       reap_cleanup **h,
					       const reap_site *site);

/* free(p) at scope close, for memory from malloc(). Ownership: s takes
 * p. Thread safety: owner thread of s. */
#define reap_defer_free(s, p, h) reap_defer_free_at((s), (p), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_free_at(reap_scope *s, void *p,
					       reap_cleanup **h,
					       const reap_site *site);

/* pthread_mutex_unlock(m) at scope close, for a mutex the caller holds.
 * Ownership: s takes the holding of m, not m. Thread safety: owner thread
 * of s, which must be the thread holding m. */
#define reap_defer_unlock(s, m, h) reap_defer_unlock_at((s), (m), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_unlock_at(reap_scope *s,
						 pthread_mutex_t *m,
						 reap_cleanup **h,
						 const reap_site *site);

/* ------------------------------------------------------------------ */
/* Scope-owned memory                                                   */

/*
 * Allocate size bytes (16-byte aligned) owned by s, freed when s closes,
 * after every cleanup has run, so cleanups may still use it. Returns NULL
 * (errno ENOMEM) on failure. Ownership: s owns the block; it is never
 * freed alone. Thread safety: owner thread of s.
 */
REAP_API void *reap_scope_alloc(reap_scope *s, size_t size)
	__attribute__((malloc, alloc_size(2)));

/* Copy a string into memory owned by s. NULL (errno ENOMEM) on failure.
 * Ownership: s owns the copy; str is borrowed. Thread safety: owner thread
 * of s. */
REAP_API char *reap_scope_strdup(reap_scope *s, const char *str)
	__attribute__((malloc));

/* ------------------------------------------------------------------ */
/* The block macro                                                      */

/*
 * REAP_WITH_SCOPE(name, parent, &rc) { ... }
 *
 * Open a scope `name` under parent for the block and close it when
 * control leaves the block by any path: falling off the end, break,
 * continue, return or goto. The block's result *rc (an int the caller
 * declares) is the error in flight at close; afterwards *rc holds the
 * final error of the close. If the scope cannot be opened the block does
 * not run and *rc is -ENOMEM. rc may be NULL: errors then go to the
 * report hook.
 *
 *     int rc = 0;
 *     REAP_WITH_SCOPE(s, NULL, &rc) {
 *             if ((rc = reap_defer_fd(s, fd, NULL)) < 0) break;
 *             rc = work(s);
 *     }
 *     return rc;
 */
typedef struct reap_with {
	reap_scope *scope;
	int *rc;
	int state;
	const reap_site *site;
} reap_with;

/* Internal to REAP_WITH_SCOPE; not for direct use. Ownership: the
 * reap_with holds the block's scope until reap__with_exit closes it.
 * Thread safety: owner thread of parent. */
REAP_API reap_with reap__with_enter(reap_scope *parent, int *rc,
				    const reap_site *site);
REAP_API void reap__with_exit(reap_with *w);

#define REAP__CAT2(a, b) a##b
#define REAP__CAT(a, b) REAP__CAT2(a, b)
#define REAP__W REAP__CAT(reap__with_, __LINE__)

#define REAP_WITH_SCOPE(name, parent, rcp)                                  \
	for (reap_with REAP__W __attribute__((cleanup(reap__with_exit))) =  \
		     reap__with_enter((parent), (rcp), REAP_SITE);          \
	     REAP__W.state == 0; REAP__W.state = 1)                         \
		for (reap_scope *name = REAP__W.scope; name != NULL;        \
		     name = NULL)

#ifdef __cplusplus
}
#endif
#endif /* REAP_SCOPE_H */
