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

/* True while the referent is alive (a snapshot). Ownership: borrows w.
 * Thread safety: any thread. */
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
 * returned, or -ESRCH if it had already run or been detached. Ownership:
 * borrows f (the object need not be alive). Thread safety: any thread;
 * exactly one of racing calls, detaches, deaths and the exit run wins. */
REAP_API int reap_finalizer_call(reap_finalizer *f) REAP_NONNULL(1);

/* Disarm it if alive and give back its context: true then, false if it
 * had already run or been detached. ctx may be NULL. Ownership: borrows
 * f; the context is the caller's again. Thread safety: any thread. */
REAP_API bool reap_finalizer_detach(reap_finalizer *f, void **ctx) REAP_NONNULL(1);

/* Its context if alive (true), without disarming it. Ownership: borrows
 * f and lends the context. Thread safety: any thread. */
REAP_API bool reap_finalizer_peek(const reap_finalizer *f, void **ctx) REAP_NONNULL(1);

/* True until it runs or is detached. Ownership: borrows f. Thread
 * safety: any thread. */
REAP_API bool reap_finalizer_alive(const reap_finalizer *f) REAP_NONNULL(1);

/* Drop the caller's handle (NULL is ignored). Ownership: takes f.
 * Thread safety: any thread. */
REAP_API void reap_finalizer_release(reap_finalizer *f);

/* Run every live finalizer flagged for exit now, newest first (what
 * process exit does). Returns how many ran. Ownership: nothing is taken
 * or returned. Thread safety: any thread. */
REAP_API size_t reap_finalize_atexit_run(void);

/* ------------------------------------------------------------------ */
/* Weak-value maps (src/obj/wmap.c)                                     */

/*
 * A weak-value map (Python's WeakValueDictionary): keys are strings
 * (copied) or unsigned integers, both kinds in one map ("7" and 7 are
 * different keys); values are objects, held only through a weak
 * reference, so the map never keeps a value alive. When a value dies its
 * entry disappears, on the thread that ran the last release, before the
 * value's close. The map itself is a resource owned by a scope.
 *
 *     reap_wmap *sessions;
 *     int rc = reap_wmap_create(NULL, &sessions);
 *     rc = reap_wmap_put_str(sessions, "alice", sess);  // sess not acquired
 *     struct session *s = reap_wmap_get_str(sessions, "alice");
 *     if (s != NULL) { use(s); reap_release(s); }       // a strong reference
 *
 * Every call but create and destroy may run on any thread at the same
 * time as the others, and as values die on any thread.
 */
typedef struct reap_wmap reap_wmap;

/*
 * Create an empty map owned by scope s (NULL: the current scope).
 * Errors: -ENOMEM (nothing registered, *out untouched). Ownership: s owns
 * the map; closing s destroys it (or reap_wmap_destroy(), earlier).
 * Thread safety: owner thread of s.
 */
#define reap_wmap_create(s, out) reap_wmap_create_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_wmap_create_at(reap_scope *s, reap_wmap **out,
						const reap_site *site)
	REAP_NONNULL(2, 3);

/*
 * Destroy the map now: drop every weak reference (values are not
 * touched) and free it. Death callbacks racing the destroy are waited
 * for. Misuse: any other call on m still running or made afterwards.
 * Ownership: takes m (cancels its cleanup in its scope). Thread safety:
 * owner thread of m's scope.
 */
REAP_API void reap_wmap_destroy(reap_wmap *m);

/*
 * Map key to obj, replacing the entry the key had. The map takes a weak
 * reference (recorded at the caller's site), no strong one.
 * Errors: -ENOMEM (the map is unchanged). Ownership: borrows obj, and
 * key (copied). Thread safety: any thread, while the caller holds a
 * reference to obj.
 */
#define reap_wmap_put_int(m, key, obj) \
	reap_wmap_put_int_at((m), (key), (obj), REAP_SITE)
#define reap_wmap_put_str(m, key, obj) \
	reap_wmap_put_str_at((m), (key), (obj), REAP_SITE)
REAP_API REAP_NODISCARD int reap_wmap_put_int_at(reap_wmap *m, uint64_t key,
						 void *obj,
						 const reap_site *site)
	REAP_NONNULL(1, 3, 4);
REAP_API REAP_NODISCARD int reap_wmap_put_str_at(reap_wmap *m, const char *key,
						 void *obj,
						 const reap_site *site)
	REAP_NONNULL(1, 2, 3, 4);

/*
 * The value of key as a new strong reference, or NULL if there is none
 * or it is dying (never a resurrected or freed object). Ownership: the
 * caller owns the returned reference and releases it. Thread safety: any
 * thread.
 */
REAP_API void *reap_wmap_get_int(reap_wmap *m, uint64_t key) REAP_NONNULL(1);
REAP_API void *reap_wmap_get_str(reap_wmap *m, const char *key)
	REAP_NONNULL(1, 2);

/* Remove key's entry (the value is not touched). Returns 0, or -ENOENT
 * if there was none. Ownership: borrows key. Thread safety: any thread. */
REAP_API int reap_wmap_remove_int(reap_wmap *m, uint64_t key) REAP_NONNULL(1);
REAP_API int reap_wmap_remove_str(reap_wmap *m, const char *key)
	REAP_NONNULL(1, 2);

/* Entries now (a snapshot; a value that is dying may still be counted
 * until its death callback has run). Ownership: borrows m. Thread
 * safety: any thread. */
REAP_API size_t reap_wmap_count(const reap_wmap *m) REAP_NONNULL(1);

/*
 * Called by reap_wmap_foreach() for one live entry: skey is its string
 * key, or NULL for an integer key ikey. value is held by the walk for the
 * call (reap_acquire() it to keep it). Return 0 to go on; anything else
 * stops the walk and is returned by it.
 */
typedef int (*reap_wmap_fn)(const char *skey, uint64_t ikey, void *value,
			    void *ctx);

/*
 * Call fn once for each entry whose value was alive when the walk reached
 * its shard, with a strong reference held, and no lock of the map held:
 * fn may put, get and remove, and values may die meanwhile (a value that
 * dies after its shard was taken is still passed, alive, since the walk
 * holds it). Entries added during the walk may or may not be seen.
 * Returns 0, fn's nonzero result, or -ENOMEM (a shard with more than 64
 * entries needs a snapshot buffer). Ownership: borrows m; fn's value is
 * borrowed. Thread safety: any thread.
 */
REAP_API int reap_wmap_foreach(reap_wmap *m, reap_wmap_fn fn, void *ctx)
	REAP_NONNULL(1, 2);

/* ------------------------------------------------------------------ */
/* Caches (src/obj/cache.c)                                             */

/*
 * A cache for "logically dead but still referenced" resources (pooled
 * connections, sessions): values are objects, and the cache holds one
 * reference to each. An entry leaves the cache when
 *   - the cache is over capacity (by count or by bytes: each put names
 *     its value's size), least recently used first;
 *   - its time to live has passed (per entry, or the cache's default);
 *   - the validity check says the value is no longer usable;
 *   - it is removed by hand, or replaced by a put of the same key.
 * Eviction drops only the cache's reference: a value borrowed by a
 * worker (from get) stays alive until the worker releases it, and its
 * close runs then, on that thread, never under the worker. get and
 * reap_cache_sweep() apply the TTL and the validity check; a sweeper
 * thread owned by a scope can sweep periodically. Time is reap_now_ns(),
 * so reap_set_clock() moves it in tests.
 *
 * Concurrency: the keys are spread over shards (16 by default), each with
 * its own lock, hash table and LRU list, so get and put are O(1) and
 * threads working on different shards do not wait for each other. The
 * capacity is global and exact (for one thread putting at a time). With
 * several shards the LRU order is approximate and per shard (CLOCK: a hit
 * marks its entry used, and eviction gives a used entry a second
 * chance), so that a hit writes nothing shared: over capacity, a put
 * evicts from its own shard first, then from the others. Set shards = 1
 * for an exact global LRU (a hit moves its entry to the front).
 *
 *     reap_cache_config cfg = {.max_count = 64, .ttl_ns = 30 * REAP_SEC,
 *                              .valid = conn_ok};
 *     reap_cache *c;
 *     int rc = reap_cache_open(NULL, &cfg, &c);
 *     rc = reap_cache_put_str(c, "db:5432", conn, sizeof *conn, 0);
 *     struct conn *k = reap_cache_get_str(c, "db:5432");  // or NULL
 *     if (k != NULL) { use(k); reap_release(k); }
 */
typedef struct reap_cache reap_cache;
typedef struct reap_cache_sweeper reap_cache_sweeper;

#define REAP_SEC UINT64_C(1000000000) /* nanoseconds in a second */
#define REAP_CACHE_TTL_DEFAULT 0      /* put: the cache's default TTL */
#define REAP_CACHE_TTL_NONE UINT64_MAX /* put: never expires */

/* Is the value still usable (a connection not closed by its peer)? Runs
 * with a reference held by the cache and no lock of the cache held,
 * possibly on several threads at once; it must not close the value. */
typedef bool (*reap_cache_valid_fn)(void *value, void *ctx);

typedef struct reap_cache_config {
	size_t max_count;   /* entries; 0: no limit */
	size_t max_bytes;   /* sum of the entries' sizes; 0: no limit */
	uint64_t ttl_ns;    /* default time to live; 0: entries do not expire */
	reap_cache_valid_fn valid; /* may be NULL: every value is valid */
	void *valid_ctx;
	/* Lock shards, rounded up to a power of two, at most 256. 0: 16,
	 * fewer for a small max_count (at least 8 entries per shard). */
	unsigned shards;
} reap_cache_config;

/* Eviction reasons, indexes of reap_cache_stat.evicted. */
enum {
	REAP_CACHE_EVICT_CAPACITY, /* over max_count or max_bytes */
	REAP_CACHE_EVICT_TTL,      /* expired (found by get or sweep) */
	REAP_CACHE_EVICT_INVALID,  /* the validity check failed */
	REAP_CACHE_EVICT_EXPLICIT, /* reap_cache_remove_*, reap_cache_clear */
	REAP_CACHE_EVICT_NREASONS
};

typedef struct reap_cache_stat {
	uint64_t hits;     /* gets that returned a value */
	uint64_t misses;   /* gets that did not (absent, expired or invalid) */
	uint64_t evicted[REAP_CACHE_EVICT_NREASONS];
	uint64_t replaced; /* entries replaced by a put of their key */
	uint64_t sweeps;   /* reap_cache_sweep() runs, the sweeper's included */
	size_t count;      /* entries now */
	size_t bytes;      /* sum of their sizes */
} reap_cache_stat;

/*
 * Open an empty cache owned by scope s (NULL: the current scope), with
 * the settings of *cfg (NULL: no limits, no TTL, no check).
 * Errors: -ENOMEM; -EINVAL (shards above 256). On failure nothing is
 * registered and *out is untouched. Ownership: s owns the cache; closing
 * s closes it (or reap_cache_close(), earlier); *cfg is copied.
 * Thread safety: owner thread of s.
 */
#define reap_cache_open(s, cfg, out) \
	reap_cache_open_at((s), (cfg), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_cache_open_at(reap_scope *s,
					       const reap_cache_config *cfg,
					       reap_cache **out,
					       const reap_site *site)
	REAP_NONNULL(3, 4);

/*
 * Close the cache now: stop its sweeper if one still runs, release the
 * cache's reference to every value (values still borrowed live on with
 * their holders), free it. Misuse: any other call on c still running or
 * made afterwards. Ownership: takes c (runs its cleanup in its scope).
 * Thread safety: owner thread of c's scope.
 */
REAP_API void reap_cache_close(reap_cache *c);

/*
 * Cache obj under key, with a size (counted against max_bytes) and a
 * time to live (REAP_CACHE_TTL_DEFAULT, REAP_CACHE_TTL_NONE, or
 * nanoseconds). The cache takes a reference of its own; the caller keeps
 * its own. An entry with the same key is replaced (its reference
 * dropped). Entries over capacity are evicted, least recently used
 * first (approximately, with several shards: see above); never the new
 * one.
 * Errors: -ENOMEM; -E2BIG (size above max_bytes). On failure the cache
 * is unchanged. Ownership: borrows obj and key (copied). Thread safety:
 * any thread, while the caller holds a reference to obj.
 */
REAP_API REAP_NODISCARD int reap_cache_put_int(reap_cache *c, uint64_t key,
					       void *obj, size_t size,
					       uint64_t ttl_ns)
	REAP_NONNULL(1, 3);
REAP_API REAP_NODISCARD int reap_cache_put_str(reap_cache *c, const char *key,
					       void *obj, size_t size,
					       uint64_t ttl_ns)
	REAP_NONNULL(1, 2, 3);

/*
 * The value of key as a new strong reference, and key is marked recently
 * used (see above); NULL if it is absent, expired or fails
 * the validity check (those two are evicted). O(1), no allocation.
 * Ownership: the caller owns the returned reference and releases it.
 * Thread safety: any thread.
 */
REAP_API void *reap_cache_get_int(reap_cache *c, uint64_t key) REAP_NONNULL(1);
REAP_API void *reap_cache_get_str(reap_cache *c, const char *key)
	REAP_NONNULL(1, 2);

/* Evict key's entry (reason explicit). Returns 0, or -ENOENT if there
 * was none. Ownership: borrows key. Thread safety: any thread. */
REAP_API int reap_cache_remove_int(reap_cache *c, uint64_t key) REAP_NONNULL(1);
REAP_API int reap_cache_remove_str(reap_cache *c, const char *key)
	REAP_NONNULL(1, 2);

/* Evict every entry (reason explicit). Ownership: drops the cache's
 * references. Thread safety: any thread. */
REAP_API void reap_cache_clear(reap_cache *c) REAP_NONNULL(1);

/*
 * Evict every expired entry and every entry whose value fails the
 * validity check; returns how many were evicted. The check runs outside
 * the shard locks, a batch of entries at a time. Values whose last
 * reference was the cache's are closed on the calling thread. Ownership:
 * borrows c. Thread safety: any thread (sweeps do not overlap: a second
 * one waits for the first).
 */
REAP_API size_t reap_cache_sweep(reap_cache *c) REAP_NONNULL(1);

/* Entries now (a snapshot). Ownership: borrows c. Thread safety: any
 * thread. */
REAP_API size_t reap_cache_count(const reap_cache *c) REAP_NONNULL(1);

/* Fill *out with the statistics (summed shard by shard, so a snapshot
 * only while other threads use the cache). Ownership: fills the caller's
 * *out. Thread safety: any thread. */
REAP_API void reap_cache_stats(reap_cache *c, reap_cache_stat *out)
	REAP_NONNULL(1, 2);

/*
 * Start a thread that calls reap_cache_sweep(c) every interval_ns of
 * real time (CLOCK_MONOTONIC; TTLs follow reap_now_ns()), owned by scope
 * s (NULL: the current scope). Closing s stops it promptly (it waits on
 * a condition variable, signalled at stop) and joins it; so does
 * reap_cache_sweeper_stop(), or closing c. A cache has one sweeper at a
 * time. Errors: -ENOMEM; -EAGAIN (no thread); -EINVAL (interval 0);
 * -EBUSY (c already has one). On failure nothing is registered.
 * Ownership: s owns the sweeper; *out (may be NULL) is borrowed, valid
 * until it is stopped. Thread safety: owner thread of s.
 */
#define reap_cache_sweeper_start(s, c, interval_ns, out) \
	reap_cache_sweeper_start_at((s), (c), (interval_ns), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_cache_sweeper_start_at(
	reap_scope *s, reap_cache *c, uint64_t interval_ns,
	reap_cache_sweeper **out, const reap_site *site) REAP_NONNULL(2, 5);

/* Stop the sweeper now: wake it, join it, free it. Ownership: takes sw
 * (runs its cleanup in its scope). Thread safety: owner thread of its
 * scope. */
REAP_API void reap_cache_sweeper_stop(reap_cache_sweeper *sw);

/* ------------------------------------------------------------------ */
/* The cycle detector (src/obj/gc.c)                                    */

/*
 * Reference counts cannot free a group of objects that hold each other
 * (a cycle): each keeps the others' counts above 0. The cycle detector
 * finds such groups and breaks them, as Python's gc module does.
 *
 * An object is tracked when its type has traverse: it belongs to a gc
 * domain (the default one, or the one named at reap_obj_create_in())
 * from creation to death. reap_gc_collect() examines every object the
 * domain tracks, finds the groups that nothing outside them references
 * (trial deletion: a member's count, minus the references traverse
 * reports from other tracked members, is 0 for all of them), and breaks
 * each group by calling type->clear on its members, which leads to the
 * normal last release of each: finalizers, weak callbacks, close, free.
 * Nothing runs automatically: call it where it suits the program (after
 * a batch of work, from a timer, before a leak check).
 *
 * A group whose references cannot all be cut (a cycle of members whose
 * type has no clear, and everything those hold) is uncollectable: it is
 * kept as it is, listed by reap_gc_garbage() (Python's gc.garbage), and
 * reported once under REAP_DEBUG=gc:uncollectable, each member with its
 * type and creation site. REAP_DEBUG=gc reports every collection.
 *
 * The threading rule. While a collection may run on another thread:
 *   - reap_acquire, reap_release, reap_weak_get and the like may run on
 *     any thread, on any tracked object, with no lock: counts are atomic,
 *     a collection only breaks a group whose counts it saw hold still,
 *     and reap_weak_get() fails on a group being broken;
 *   - the references stored in tracked objects (what traverse reports)
 *     may be changed, or read to take a new reference from them, only
 *     with the domain's lock held (reap_gc_lock). Without it a thread
 *     could move a reference out of a group while the collector is
 *     deciding the group is garbage;
 *   - creating and the death of tracked objects take the lock by
 *     themselves.
 * The lock is recursive, so releasing a reference with it held (which
 * may run a death, finalizers and close on this thread) is allowed.
 * traverse runs with the lock held: it must only report references.
 * clear runs without it, on the collecting thread, on objects nothing
 * else can reach any more.
 *
 *     node_link(a, b);                 // under reap_gc_lock, each way
 *     reap_release(a); reap_release(b); // a <-> b: unreachable, leaked
 *     int n = reap_gc_collect(NULL);   // 2: both closed and freed
 */

/* Statistics of a domain (see reap_gc_stats). */
typedef struct reap_gc_stat {
	uint64_t collections;   /* reap_gc_collect() calls that ran */
	uint64_t collected;     /* objects freed by them, in total */
	uint64_t abandoned;     /* times a group was left alone because
				   counts changed while it was examined */
	size_t tracked;         /* objects tracked now, garbage included */
	size_t uncollectable;   /* objects in reap_gc_garbage() now */
} reap_gc_stat;

/* One uncollectable object (see reap_gc_garbage). */
typedef struct reap_gc_item {
	void *obj;              /* a new reference, the caller's */
	reap_obj_type *type;
	const reap_site *site;  /* where it was created */
	unsigned group;         /* 1, 2, ...: members of one group hold
				   each other (numbered by the collection
				   that found them) */
	bool no_clear;          /* its type has no clear */
} reap_gc_item;

/*
 * Create a gc domain owned by scope s (NULL: the current scope), for
 * objects created with reap_obj_create_in(). A domain is collected on
 * its own: collections of one domain never wait for another's, and a
 * reference from another domain (or from an untracked object) counts as
 * a reference from outside.
 * Errors: -ENOMEM (nothing registered, *out untouched).
 * Ownership: s owns the domain; closing s destroys it (see
 * reap_gc_domain_destroy). Thread safety: owner thread of s.
 */
#define reap_gc_domain_create(s, out) \
	reap_gc_domain_create_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_gc_domain_create_at(reap_scope *s,
						     reap_gc_domain **out,
						     const reap_site *site)
	REAP_NONNULL(2, 3);

/*
 * Destroy a domain now: collect it one last time, then let it go. The
 * objects it still tracks (alive, or uncollectable: those are reported
 * under REAP_DEBUG=gc:uncollectable, and are leaks) stay valid; they
 * are no longer collected, and the domain's memory is freed with the
 * last of them. Misuse (aborts): creating objects in d or any other
 * call on d afterwards, or destroying it with its lock held.
 * Ownership: takes d (cancels its cleanup in its scope). Thread safety:
 * owner thread of d's scope.
 */
REAP_API void reap_gc_domain_destroy(reap_gc_domain *d) REAP_NONNULL(1);

/*
 * Collect domain d (NULL: the default domain): find the groups of
 * tracked objects that only reference each other and break them (see
 * above). Finalizers, weak callbacks, clear and close run on the calling
 * thread. Returns how many tracked objects were freed (at most INT_MAX),
 * or -EDEADLK if the calling thread holds d's lock (a collection there
 * would see references half changed). Allocates nothing: it cannot fail
 * for want of memory. A group whose counts change while it is examined
 * is left for the next collection (counted in `abandoned`).
 * Ownership: borrows d. Thread safety: any thread; collections of one
 * domain on several threads take turns, except for the clear and close
 * of what they found, which may overlap.
 */
REAP_API REAP_NODISCARD int reap_gc_collect(reap_gc_domain *d);

/* Fill *out with d's statistics (NULL: the default domain). Ownership:
 * borrows d. Thread safety: any thread. */
REAP_API void reap_gc_stats(reap_gc_domain *d, reap_gc_stat *out)
	REAP_NONNULL(2);

/*
 * Take and drop the lock of domain d (NULL: the default domain); hold
 * it to change, or to read and acquire, the references that traverse
 * reports, while a collection may run on another thread. Recursive.
 * Misuse (aborts): unlocking a lock the calling thread does not hold.
 * Ownership: borrows d. Thread safety: any thread.
 */
REAP_API void reap_gc_lock(reap_gc_domain *d);
REAP_API void reap_gc_unlock(reap_gc_domain *d);

/*
 * The uncollectable objects of d (NULL: the default domain) as found by
 * its last collection, Python's gc.garbage: fills out[0..cap) with up to
 * cap of them, each with a new reference, and returns how many there
 * are (which may exceed cap). To free them, break their references by
 * hand (under the lock), release the references this call gave, and
 * collect again. Ownership: the caller owns out[i].obj and releases it.
 * Thread safety: any thread.
 */
REAP_API size_t reap_gc_garbage(reap_gc_domain *d, reap_gc_item *out,
				size_t cap);

#ifdef __cplusplus
}
#endif
#endif /* REAP_OBJ_H */
