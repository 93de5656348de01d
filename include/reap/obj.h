/*
 * reap/obj.h: reference-counted objects, weak references, finalizers,
 * weak-value maps, caches, and the cycle detector.
 *
 * These are helpers around reap's one rule (every resource has one
 * owner), not a substitute for it. Use them where ownership really is
 * shared:
 *
 *   - one owner, known lifetime: plain scope ownership (reap_defer), no
 *     reference count at all;
 *   - several holders, the last one closes: a reference (reap_acquire /
 *     reap_release), held by a scope with reap_scope_hold() where it can
 *     be;
 *   - "use it if it is still there" (registries, caches of sessions): a
 *     weak reference, or a weak-value map;
 *   - "do this when it dies, or at exit at the latest": a finalizer,
 *     which receives its own context, never the dying object.
 *
 * An object is a block of type->size bytes (zeroed at creation) that
 * follows a hidden header. The last release runs the object's finalizers
 * and weak callbacks (newest first), then type->close, then frees the
 * memory once no weak reference remains. Every object is a resource in
 * the ledger under its type's name, with its creation site and thread;
 * an object alive at exit is reported as a leak.
 *
 *     static reap_obj_type conn_type = {.name = "conn",
 *             .size = sizeof(struct conn), .close = conn_close};
 *     struct conn *c;
 *     int rc = reap_obj_create(&conn_type, &c);   // one reference: ours
 *     reap_acquire(c); give_to_worker(c);          // the worker's
 *     reap_release(c);                             // ours, gone
 */
#ifndef REAP_OBJ_H
#define REAP_OBJ_H

#include "scope.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ */
/* Object types                                                         */

typedef struct reap_gc_domain reap_gc_domain;

/* Called by traverse for each reference the object holds to another
 * object; returns 0 to go on. */
typedef int (*reap_visit_fn)(void *referent, void *ctx);

/*
 * An object type, with static storage:
 *   name      for the ledger and reports;
 *   size      bytes of the object's body;
 *   close     run once, at the last release, after the finalizers; it
 *             releases what the object holds (may be NULL);
 *   traverse  for the cycle detector: call visit on every object this
 *             one holds a reference to (may be NULL: never tracked);
 *   clear     for the cycle detector: drop those references (release
 *             them and clear the fields), breaking a cycle. A tracked
 *             type without clear can be found in a cycle, never freed:
 *             it is reported as uncollectable;
 *   describe  a short description for reports (may be NULL).
 * The private fields are filled on first use.
 */
typedef struct reap_obj_type {
	const char *name;
	size_t size;
	void (*close)(void *obj);
	int (*traverse)(void *obj, reap_visit_fn visit, void *ctx);
	void (*clear)(void *obj);
	void (*describe)(void *obj, char *buf, size_t len);
	reap_type ledger; /* private */
} reap_obj_type;

/* ------------------------------------------------------------------ */
/* References                                                           */

/*
 * Create an object of type with one reference, the caller's. Its body is
 * zeroed. A type with traverse is tracked by the default gc domain
 * (reap_obj_create_in() names another).
 * Errors: -ENOMEM, -EINVAL (size 0 or no name). On failure *out is
 * untouched. Ownership: the caller owns the one reference.
 * Thread safety: any thread.
 */
#define reap_obj_create(type, out) \
	reap_obj_create_at(NULL, (type), (void **)(out), REAP_SITE)
#define reap_obj_create_in(domain, type, out) \
	reap_obj_create_at((domain), (type), (void **)(out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_obj_create_at(reap_gc_domain *domain,
					       reap_obj_type *type, void **out,
					       const reap_site *site)
	REAP_NONNULL(2, 3, 4);

/* Take one more reference and return obj. Misuse (aborts): obj already
 * released for good. Ownership: the caller owns the new reference.
 * Thread safety: any thread, while the caller holds a reference. */
REAP_API void *reap_acquire(void *obj) REAP_NONNULL(1);

/*
 * Drop one reference; the last one runs the finalizers and close, on the
 * calling thread. Misuse (aborts, naming the creation site and the last
 * release site): releasing an object already dead. Ownership: takes the
 * caller's reference. Thread safety: any thread.
 */
#define reap_release(obj) reap_release_at((obj), REAP_SITE)
REAP_API void reap_release_at(void *obj, const reap_site *site) REAP_NONNULL(1, 2);

/* Strong references now (a snapshot). Ownership: borrows obj. Thread
 * safety: any thread. */
REAP_API unsigned reap_obj_refs(const void *obj) REAP_NONNULL(1);

/* The object's type. Ownership: borrows obj. Thread safety: any thread. */
REAP_API reap_obj_type *reap_obj_type_of(const void *obj) REAP_NONNULL(1);

/*
 * Make scope s (NULL: the current scope) hold a new reference to obj,
 * released when s closes, or early through the handle h (may be NULL).
 * reap_scope_adopt() hands the caller's own reference to s instead.
 * Errors: -ENOMEM (no reference taken or handed over). Ownership: s owns
 * the reference. Thread safety: owner thread of s.
 */
#define reap_scope_hold(s, obj, h) reap_scope_hold_at((s), (obj), 0, (h), REAP_SITE)
#define reap_scope_adopt(s, obj, h) reap_scope_hold_at((s), (obj), 1, (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_scope_hold_at(reap_scope *s, void *obj,
					       int adopt, reap_cleanup **h,
					       const reap_site *site)
	REAP_NONNULL(2, 5);

/* ------------------------------------------------------------------ */
/* Weak references                                                      */

typedef struct reap_weak reap_weak;

/* Called once when the referent dies (before its close), like the
 * callback of weakref.ref(obj, cb). The object cannot be reached any
 * more: reap_weak_get(w) returns NULL. */
typedef void (*reap_weak_fn)(reap_weak *w, void *ctx);

/*
 * Make a weak reference to obj, with an optional death callback.
 * Errors: -ENOMEM. Ownership: the caller owns the weak reference and
 * destroys it with reap_weak_destroy(); it keeps obj's memory (not obj)
 * alive. Thread safety: any thread, while the caller holds a reference.
 */
#define reap_weak_create(obj, out) \
	reap_weak_create_at((obj), NULL, NULL, (out), REAP_SITE)
#define reap_weak_create_cb(obj, cb, ctx, out) \
	reap_weak_create_at((obj), (cb), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_weak_create_at(void *obj, reap_weak_fn cb,
						void *ctx, reap_weak **out,
						const reap_site *site)
	REAP_NONNULL(1, 4, 5);

/* A new strong reference to the referent, or NULL if it died or is
 * dying (never a resurrection, never freed memory). Ownership: the
 * caller owns the returned reference. Thread safety: any thread. */
REAP_API void *reap_weak_get(reap_weak *w) REAP_NONNULL(1);

/* True while the referent is alive (a snapshot). Thread safety: any. */
REAP_API bool reap_weak_alive(const reap_weak *w) REAP_NONNULL(1);

/* Destroy a weak reference; its callback will not run after this
 * returns. Ownership: takes w. Thread safety: any thread. */
REAP_API void reap_weak_destroy(reap_weak *w);

/* ------------------------------------------------------------------ */
/* Finalizers                                                           */

typedef struct reap_finalizer reap_finalizer;

/* A finalizer: receives its context, never the object. 0 or a negative
 * code, which is reported (with the finalizer's creation site), not
 * lost. */
typedef int (*reap_finalize_fn)(void *ctx);

enum {
	REAP_FINALIZE_NO_ATEXIT = 1u << 0 /* do not run at process exit */
};

/*
 * Register fn(ctx) to run exactly once: when obj dies, when called with
 * reap_finalizer_call(), or at process exit (unless
 * REAP_FINALIZE_NO_ATEXIT), whichever comes first. At exit, live
 * finalizers run newest first, including those registered meanwhile.
 * Errors: -ENOMEM, -EINVAL (unknown flags). Ownership: if out is NULL,
 * the finalizer belongs to obj; otherwise the caller also holds a handle
 * and drops it with reap_finalizer_release() (the finalizer stays armed).
 * Thread safety: any thread, while the caller holds a reference.
 */
#define reap_finalize(obj, fn, ctx, flags, out) \
	reap_finalize_at((obj), (fn), (ctx), (flags), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_finalize_at(void *obj, reap_finalize_fn fn,
					     void *ctx, unsigned flags,
					     reap_finalizer **out,
					     const reap_site *site)
	REAP_NONNULL(1, 2, 6);

/* Run it now if still alive (it then never runs again); returns what fn
 * returned, or -ESRCH if it had already run or been detached. Thread
 * safety: any thread; exactly one of racing calls and deaths runs it. */
REAP_API int reap_finalizer_call(reap_finalizer *f) REAP_NONNULL(1);

/* Disarm it if alive and give back its context: true then, false if it
 * had already run or been detached. ctx may be NULL. */
REAP_API bool reap_finalizer_detach(reap_finalizer *f, void **ctx) REAP_NONNULL(1);

/* Its context if alive (true), without disarming it. */
REAP_API bool reap_finalizer_peek(const reap_finalizer *f, void **ctx) REAP_NONNULL(1);

/* True until it runs or is detached. */
REAP_API bool reap_finalizer_alive(const reap_finalizer *f) REAP_NONNULL(1);

/* Drop the caller's handle (NULL is ignored). Ownership: takes f.
 * Thread safety: any thread. */
REAP_API void reap_finalizer_release(reap_finalizer *f);

/* Run every live finalizer flagged for exit now, newest first (what
 * process exit does). Returns how many ran. Thread safety: any thread. */
REAP_API size_t reap_finalize_atexit_run(void);

/* ------------------------------------------------------------------ */
/* Weak-value maps (src/obj/wmap.c)                                     */

/* @wmap: declarations go here */

/* ------------------------------------------------------------------ */
/* Caches (src/obj/cache.c)                                             */

/* @cache: declarations go here */

/* ------------------------------------------------------------------ */
/* The cycle detector (src/obj/gc.c)                                    */

/* @gc: declarations go here */

#ifdef __cplusplus
}
#endif
#endif /* REAP_OBJ_H */
