/*
 * Reference-counted objects, weak references and finalizers.
 *
 * The invariants, and why reap_weak_get() is safe against a concurrent
 * last release:
 *
 * 1. An object's strong count (REAP__REFS(refs)) never rises from 0.
 *    Every increment either comes from a holder of a reference
 *    (reap_acquire: the count is at least 1 before and stays so while
 *    the holder waits), or is a compare-and-swap from a value that is
 *    not 0 and not doomed (reap_weak_get). So the one release that takes
 *    the count from 1 to 0 owns the death: nobody can get a reference
 *    afterwards, and an upgrade that raced it either won before (the
 *    count was then at least 2, so that release was not the last one) or
 *    saw 0 and returned NULL. The object is never resurrected.
 *
 * 2. The header's memory is held by `weak`: 1 for the strong references
 *    as a group (dropped when the object dies), plus one per weak
 *    reference. The memory is freed when it reaches 0. A weak reference
 *    therefore always reads a valid `refs`, even after death:
 *    reap_weak_get() never touches freed memory, and it fails on a dead
 *    object by invariant 1. (Finalizer records need no hold: see
 *    invariant 4 and final_unlist().)
 *
 * 3. The cycle detector may set REAP__DOOMED in refs on members of a
 *    garbage cycle: with a CAS from the count it computed, or with a
 *    plain store for a member that no weak reference and no other
 *    holder can reach (see gc.c). An upgrade fails
 *    on a doomed object, so garbage cannot be reached again through weak
 *    references while its cycle is being broken; the count below the bit
 *    goes on as before, and the last release still ends it.
 *
 * 4. Death notifications (weak callbacks and finalizers) hang off the
 *    object in a list guarded by a stripe lock. The dying thread pops them
 *    one at a time under that lock, so reap_weak_destroy() and
 *    reap_finalizer_detach() always see a record either still listed
 *    (and can unlink it) or taken (and then wait for, or skip, its run).
 *    A finalizer runs when a compare-and-swap of its state from ALIVE to
 *    DEAD succeeds; the object's death, an explicit call, a detach and
 *    the exit run all race through that one CAS, so it runs at most once.
 */
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "obj_internal.h"

/* The body follows the header aligned for any type; the hot fields of
 * the header fill its first cache line. */
_Static_assert(sizeof(struct reap__obj) % _Alignof(max_align_t) == 0,
	       "object bodies must be aligned for any type");
_Static_assert(offsetof(struct reap__obj, site) == 64,
	       "the counting and gc fields fill the first cache line");

/* ------------------------------------------------------------------ */
/* Locks and registry                                                   */

/* The locks of this file guard a few pointer moves: spinlocks. */
typedef struct {
	atomic_int held;
} __attribute__((aligned(64))) spin;

static inline void spin_lock(spin *l)
{
	reap__spin_lock(&l->held);
}

static inline void spin_unlock(spin *l)
{
	reap__spin_unlock(&l->held);
}

#define NSTRIPES 64
static spin stripes[NSTRIPES];

/* Every object's header alone takes 128 bytes, so the address bits
 * above those pick the stripe. The stripes are static: a stripe may be
 * locked for an object whose memory is gone. */
static spin *stripe_of(const void *p)
{
	return &stripes[((uintptr_t)p >> 7) % NSTRIPES];
}

void reap__obj_lock(const struct reap__obj *o)
{
	spin_lock(stripe_of(o));
}

void reap__obj_unlock(const struct reap__obj *o)
{
	spin_unlock(stripe_of(o));
}

#define NSHARDS 16
static struct shard {
	spin lock;
	struct reap__oreg *head;
} shards[NSHARDS];

static reap_type type_weak = REAP_TYPE_INIT("weakref", NULL);
static reap_type type_final = REAP_TYPE_INIT("finalizer", NULL);
static reap_type type_hold; /* defined below, with its describe */

static size_t leak_source(FILE *f, size_t *per_type);
static pthread_once_t layer_once = PTHREAD_ONCE_INIT;
static void exit_finalize(void);
static void thread_exit(struct reap__tstate *ts);

static void fork_child(struct reap__tstate *ts);

static int layer_ready; /* set once layer_init has run */

static void layer_init(void)
{
	reap__ledger_add_source(leak_source);
	reap__on_exit(REAP__EXIT_FINALIZE, exit_finalize);
	reap__on_thread_exit(thread_exit);
	reap__on_fork(REAP__FORK_LAYER, NULL, NULL, fork_child);
	/* Release: a creator that sees the flag sees the hooks set. */
	__atomic_store_n(&layer_ready, 1, __ATOMIC_RELEASE);
}

void reap__obj_layer_init(void)
{
	if (unlikely(!__atomic_load_n(&layer_ready, __ATOMIC_ACQUIRE)))
		pthread_once(&layer_once, layer_init);
}

/* Register a record if the ledger is on; returns whether it counted. */
static int reg_add(struct reap__tstate *ts, struct reap__oreg *r,
		   unsigned type_id, int kind)
{
	struct shard *sh;

	r->on = 0;
	r->gen = reap__fork_gen;
	if (!reap__ledger_active())
		return 0;
	reap__count_created(ts, type_id);
	r->kind = (uint8_t)kind;
	r->t_ms = ts->now_ms;
	r->tid = ts->num;
	r->shard = (uint8_t)(ts->num % NSHARDS);
	r->on = 1;
	sh = &shards[r->shard];
	spin_lock(&sh->lock);
	r->prev = NULL;
	r->next = sh->head;
	if (sh->head != NULL)
		sh->head->prev = r;
	sh->head = r;
	spin_unlock(&sh->lock);
	return 1;
}

static void reg_del(struct reap__oreg *r, unsigned type_id)
{
	struct shard *sh;
	struct reap__tstate *ts;

	if (!r->on)
		return;
	if (unlikely(reap__oreg_inherited(r))) {
		/* The parent's: the child's registry and counts never had
		 * it (fork_child). */
		r->on = 0;
		return;
	}
	sh = &shards[r->shard];
	spin_lock(&sh->lock);
	LIST_UNLINK(sh->head, r, prev, next);
	spin_unlock(&sh->lock);
	r->on = 0;
	ts = reap__ts();
	reap__count_closed(ts, type_id);
	reap__count_settle(ts);
}

/* The ledger id of an object type, registering it on first use. */
static pthread_mutex_t otype_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned otype_id(reap_obj_type *t)
{
	unsigned id = __atomic_load_n(&t->ledger.id, __ATOMIC_ACQUIRE);

	if (likely(id != 0))
		return id;
	pthread_mutex_lock(&otype_lock);
	if (t->ledger.name == NULL)
		t->ledger.name = t->name;
	pthread_mutex_unlock(&otype_lock);
	return reap__type_id(&t->ledger);
}

/* ------------------------------------------------------------------ */
/* Quarantine of freed objects                                          */

/*
 * Freed object blocks of up to QBYTES are kept, marked dead, in a ring of
 * the last QSIZE per thread, so that a release or acquire through a stale
 * pointer finds the dead magic and names both sites instead of reading
 * reused memory. A thread that is exiting frees at once.
 */
#define QSIZE 64
#define QBYTES 1024
static __thread struct {
	void *slot[QSIZE];
	unsigned pos;
	int off;
} quarantine;

/* The bytes of an object's block (its type outlives it). */
static size_t obj_bytes(const struct reap__obj *o)
{
	return sizeof *o + o->type->size;
}

static void quarantine_drain(void)
{
	for (unsigned i = 0; i < QSIZE; i++) {
		if (quarantine.slot[i] != NULL)
			reap__block_free_held(quarantine.slot[i], obj_bytes(quarantine.slot[i]));
		quarantine.slot[i] = NULL;
	}
}

static void thread_exit(struct reap__tstate *ts)
{
	(void)ts;
	quarantine_drain();
	quarantine.off = 1;
}

static void obj_free(struct reap__obj *o)
{
	void **slot;

	if (quarantine.off || sizeof *o + o->type->size > QBYTES) {
		reap__block_free(o, obj_bytes(o));
		return;
	}
	slot = &quarantine.slot[quarantine.pos++ % QSIZE];
	if (*slot != NULL)
		reap__block_free_held(*slot, obj_bytes(*slot));
	reap__alloc_forget(o);
	*slot = o;
}

/* Drop one hold on the header's memory. */
static void weak_put(struct reap__obj *o)
{
	/* Holds are never added once the object is dead (that needs a
	 * strong reference), so seeing 1 means ours is the last: no other
	 * holder is left to race with, and the read-modify-write can go.
	 * Acquire on that load, and acq_rel on the decrement otherwise: every
	 * access to the header by other holders happens before the free. */
	if (atomic_load_explicit(&o->weak, memory_order_acquire) == 1 ||
	    atomic_fetch_sub_explicit(&o->weak, 1, memory_order_acq_rel) == 1)
		obj_free(o);
}

/* ------------------------------------------------------------------ */
/* Death records                                                        */

enum { D_WEAK = 1, D_FINAL = 2 };
enum { W_ARMED, W_RUNNING, W_DONE, W_CANCELLED };
enum { F_ALIVE, F_DEAD };

struct reap__death {
	struct reap__death *next, *prev;
	int kind;
	int listed; /* in its object's list; under the stripe lock */
};

struct reap_weak {
	struct reap__death d; /* first: a death record is its weak ref */
	struct reap__obj *o;
	reap_weak_fn cb;
	void *ctx;
	_Atomic int state;        /* W_*; only with a callback */
	pthread_t runner;         /* the thread running the callback */
	int free_after;           /* destroyed from inside its callback */
	const reap_site *site;
	struct reap__oreg reg;
};

struct reap_finalizer {
	struct reap__death d; /* first */
	/* The object: valid while d.listed (read under its stripe lock),
	 * since a dying object takes every record off its list before its
	 * memory can go. A finalizer holds no weak hold of its own. */
	struct reap__obj *o;
	const char *tname; /* the object's type name, for reports */
	reap_finalize_fn fn;
	void *ctx;
	unsigned flags;
	_Atomic int state; /* F_* */
	_Atomic uint32_t refs; /* the object's list, the handle, the exit list */
	const reap_site *site;
	struct reap_finalizer *xprev, *xnext; /* exit list; under exit_lock */
	int xlisted;
	struct reap__oreg reg;
};

static void death_link(struct reap__obj *o, struct reap__death *d)
{
	d->prev = NULL;
	d->next = o->deaths;
	if (o->deaths != NULL)
		o->deaths->prev = d;
	/* Release: read without the lock by a dying object (obj_die). */
	__atomic_store_n(&o->deaths, d, __ATOMIC_RELEASE);
	d->listed = 1;
}

static void death_unlink(struct reap__obj *o, struct reap__death *d)
{
	if (d->prev != NULL)
		d->prev->next = d->next;
	else /* release: see death_link(); the last write to the object */
		__atomic_store_n(&o->deaths, d->next, __ATOMIC_RELEASE);
	if (d->next != NULL)
		d->next->prev = d->prev;
	d->listed = 0;
}

/* ------------------------------------------------------------------ */
/* Objects                                                              */

void reap__obj_check(const struct reap__obj *o, const char *what,
		     const reap_site *site)
{
	char a[256], b[256], c[256];
	uint32_t magic = RD(o->magic);

	if (likely(magic == O_LIVE))
		return;
	if (magic == O_DEAD)
		reap__misuse("%s of object %p (\"%s\") at %s: it was released for good "
			     "at %s; created at %s",
			     what, reap__body(o), o->type ? o->type->name : "?",
			     reap__site_str(site, a, sizeof a),
			     reap__site_str(o->release_site, b, sizeof b),
			     reap__site_str(o->site, c, sizeof c));
	reap__misuse("%s of %p at %s: not a reap object", what, reap__body(o),
		     reap__site_str(site, a, sizeof a));
}

int reap_obj_create_at(reap_gc_domain *domain, reap_obj_type *type, void **out,
		       const reap_site *site)
{
	struct reap__tstate *ts;
	struct reap__obj *o;
	size_t size = type->size;

	if (size == 0 || type->name == NULL || size > SIZE_MAX / 2)
		return reap_raisef(-EINVAL, "object type %s: %s",
				   type->name ? type->name : "(no name)",
				   type->name ? "size 0" : "no name");
	if (unlikely(!__atomic_load_n(&layer_ready, __ATOMIC_ACQUIRE)))
		pthread_once(&layer_once, layer_init);
	ts = reap__ts();
	o = reap__block_alloc(sizeof *o + size);
	if (o == NULL)
		return -ENOMEM;
	memset(o, 0, sizeof *o + size);
	atomic_init(&o->refs, 1);
	atomic_init(&o->weak, 1);
	o->magic = O_LIVE;
	o->type = type;
	o->site = site;
	if (reg_add(ts, &o->reg, otype_id(type), REG_OBJ))
		o->flags |= OF_REGISTERED | OF_COUNTED;
	if (type->traverse != NULL)
		reap__gc_track(domain, o);
	*out = reap__body(o);
	return 0;
}

/*
 * The counting paths read nothing of the object but what their
 * read-modify-write returns. A read of the header before it would fetch
 * the line shared and then upgrade it, and one after it may find the
 * line taken by another thread meanwhile: either way, one more
 * coherence transfer per operation when threads share the object. Misuse
 * still shows: a dead object's count is 0 (its block is in quarantine),
 * so a stale acquire or release reads 0 and takes the slow path, which
 * checks the magic word and names the sites.
 */
void *reap_acquire(void *obj)
{
	struct reap__obj *o = reap__hdr(obj);
	/* Relaxed: the caller holds a reference, so the count cannot reach
	 * 0 meanwhile; ordering comes with the release that hands it on. */
	uint32_t old = atomic_fetch_add_explicit(&o->refs, 1, memory_order_relaxed);

	if (unlikely(REAP__REFS(old) == 0)) {
		reap__obj_check(o, "acquire", NULL);
		reap__misuse("acquire of object %p (\"%s\") whose last reference "
			     "is being released", obj, o->type->name);
	}
	return obj;
}

static void report_error(int rc, const char *what, const reap_site *site)
{
	char a[256];

	reap__report("reap: %s failed: %s (%s), registered at %s\n", what,
		     reap_strerror(rc), reap_errname(rc), reap__site_str(site, a, sizeof a));
}

static void final_put(struct reap_finalizer *f);
static void final_put_n(struct reap_finalizer *f, uint32_t n);
static int exit_unlink_keep(struct reap_finalizer *f);

/* Run f if it is still alive; returns fn's result, or -ESRCH. *xref
 * receives 1 if f was taken off the exit list, whose reference the
 * caller then drops. */
static int final_fire(struct reap_finalizer *f, int *xref)
{
	int expect = F_ALIVE, rc;

	*xref = 0;
	/* Acq_rel: the winner sees the registration's writes; the losers
	 * see that it ran. */
	if (!atomic_compare_exchange_strong_explicit(&f->state, &expect, F_DEAD,
						     memory_order_acq_rel,
						     memory_order_acquire))
		return -ESRCH;
	if (unlikely(reap__oreg_inherited(&f->reg)))
		return -ESRCH; /* the parent's: dead now, never run here */
	*xref = exit_unlink_keep(f);
	rc = f->fn(f->ctx);
	if (rc < 0)
		report_error(rc, "finalizer", f->site);
	return rc;
}

/* The death of o, on the thread that dropped its last reference. */
static void obj_die(struct reap__obj *o, const reap_site *site)
{
	struct reap__death *d;
	/* Made in the parent of a fork: its close, the callbacks and
	 * finalizers registered there are the parent's and never run here;
	 * those the child registered on it do. Its memory, the child's
	 * copy, is never freed (no weak_put), like the other inherited
	 * structures (see base.c, "Fork"). */
	int inherited = reap__oreg_inherited(&o->reg);

	o->release_site = site;
	WR(o->magic, O_DEAD);
	if ((o->flags & OF_TRACKED) && !inherited)
		reap__gc_untrack(o);
	/* Newest first, one record at a time under the lock (invariant 4).
	 * Nobody can add a record now (that takes a strong reference), and
	 * removals only empty the list: a look at an empty list saves the
	 * lock, the common case. Acquire: a remover's store of the empty
	 * list was its last write to the object, which we may now free. */
	while (__atomic_load_n(&o->deaths, __ATOMIC_ACQUIRE) != NULL) {
		struct reap_weak *w = NULL;
		struct reap_finalizer *f;
		int xref;

		reap__obj_lock(o);
		d = o->deaths;
		if (d == NULL) {
			reap__obj_unlock(o);
			break;
		}
		death_unlink(o, d);
		if (d->kind == D_WEAK) {
			w = (struct reap_weak *)d;
			if (unlikely(reap__oreg_inherited(&w->reg))) {
				/* The parent's callback: never run here. */
				atomic_store_explicit(&w->state, W_DONE,
						      memory_order_release);
				reap__obj_unlock(o);
				continue;
			}
			w->runner = pthread_self();
			atomic_store_explicit(&w->state, W_RUNNING, memory_order_relaxed);
		}
		reap__obj_unlock(o);
		if (w != NULL) {
			w->cb(w, w->ctx);
			reap__obj_lock(o);
			/* Release: a destroyer that sees DONE sees the run. */
			atomic_store_explicit(&w->state, W_DONE, memory_order_release);
			if (w->free_after) {
				reap__obj_unlock(o);
				reap_weak_destroy(w);
				continue;
			}
			reap__obj_unlock(o);
			continue;
		}
		f = (struct reap_finalizer *)d;
		(void)final_fire(f, &xref);
		final_put_n(f, 1 + (uint32_t)xref); /* the list's, the exit list's */
	}
	if (unlikely(inherited)) {
		o->reg.on = 0;
		return;
	}
	if (o->type->close != NULL)
		o->type->close(reap__body(o));
	if (o->flags & OF_REGISTERED)
		reg_del(&o->reg, otype_id(o->type));
	weak_put(o);
}

void reap_release_at(void *obj, const reap_site *site)
{
	struct reap__obj *o = reap__hdr(obj);
	/* Acq_rel: release, so that this holder's writes to the object
	 * happen before the close that the last release runs; acquire, so
	 * that the last release sees every other holder's. (One ordering
	 * for all: a separate acquire fence would cost the same on x86 and
	 * is invisible to ThreadSanitizer.) */
	uint32_t old = atomic_fetch_sub_explicit(&o->refs, 1, memory_order_acq_rel);

	if (likely(REAP__REFS(old) > 1))
		return;
	reap__obj_check(o, "release", site);
	if (unlikely(REAP__REFS(old) == 0)) {
		char a[256], b[256];

		reap__misuse("release of object %p (\"%s\") at %s: no reference left; "
			     "created at %s", obj, o->type->name,
			     reap__site_str(site, a, sizeof a), reap__site_str(o->site, b, sizeof b));
	}
	obj_die(o, site);
}

unsigned reap_obj_refs(const void *obj)
{
	const struct reap__obj *o = reap__hdr(obj);

	return REAP__REFS(atomic_load_explicit(&o->refs, memory_order_relaxed));
}

reap_obj_type *reap_obj_type_of(const void *obj)
{
	return reap__hdr(obj)->type;
}

/* A scope's reference. */
static void describe_hold(void *arg, char *buf, size_t len)
{
	struct reap__obj *o = reap__hdr(arg);

	snprintf(buf, len, "on %s %p", o->type->name, arg);
}
static reap_type type_hold = REAP_TYPE_INIT("ref", describe_hold);
static const reap_site hold_site = {"(scope close)", "reap_scope_hold", 0};

static void hold_release(void *obj)
{
	reap_release_at(obj, &hold_site);
}

int reap_scope_hold_at(reap_scope *s, void *obj, int adopt, reap_cleanup **h,
		       const reap_site *site)
{
	int rc;

	reap__obj_check(reap__hdr(obj), "hold", site);
	if (!adopt)
		reap_acquire(obj);
	rc = reap_defer_at(s, &type_hold, hold_release, obj, h, site);
	if (rc < 0 && !adopt)
		reap_release_at(obj, site);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Weak references                                                      */

int reap_weak_create_at(void *obj, reap_weak_fn cb, void *ctx, reap_weak **out,
			const reap_site *site)
{
	struct reap__obj *o = reap__hdr(obj);
	struct reap_weak *w;

	reap__obj_check(o, "weak reference", site); /* created: layer ready */
	w = reap__block_alloc(sizeof *w);
	if (w == NULL)
		return -ENOMEM;
	memset(w, 0, sizeof *w);
	w->o = o;
	w->cb = cb;
	w->ctx = ctx;
	w->d.kind = D_WEAK;
	atomic_init(&w->state, W_ARMED);
	/* Relaxed: the caller's strong reference keeps `weak` above 0. */
	atomic_fetch_add_explicit(&o->weak, 1, memory_order_relaxed);
	if (cb != NULL) {
		reap__obj_lock(o);
		death_link(o, &w->d);
		reap__obj_unlock(o);
	}
	w->site = site;
	reg_add(reap__ts(), &w->reg, reap__type_id(&type_weak), REG_WEAK);
	*out = w;
	return 0;
}

void *reap_weak_get(reap_weak *w)
{
	struct reap__obj *o = w->o;
	/* A guess, not a load: the CAS below then starts with the line held
	 * exclusively (see reap_acquire), and a wrong guess costs one retry
	 * with the value the CAS read. */
	uint32_t r = 1;

	/* Invariant 1: never from 0, never on a doomed object. Acquire on
	 * success: the new holder sees what the last releaser wrote. */
	do {
		if (REAP__REFS(r) == 0 || (r & REAP__DOOMED))
			return NULL;
	} while (!atomic_compare_exchange_weak_explicit(&o->refs, &r, r + 1,
							memory_order_acquire,
							memory_order_relaxed));
	return reap__body(o);
}

bool reap_weak_alive(const reap_weak *w)
{
	uint32_t r = atomic_load_explicit(&w->o->refs, memory_order_relaxed);

	return REAP__REFS(r) != 0 && !(r & REAP__DOOMED);
}

void reap_weak_destroy(reap_weak *w)
{
	struct reap__obj *o;

	if (w == NULL)
		return;
	o = w->o;
	if (w->cb != NULL) {
		reap__obj_lock(o);
		if (w->d.listed) {
			death_unlink(o, &w->d);
			atomic_store_explicit(&w->state, W_CANCELLED,
					      memory_order_relaxed);
		} else if (atomic_load_explicit(&w->state, memory_order_acquire) ==
			   W_RUNNING) {
			if (pthread_equal(w->runner, pthread_self())) {
				/* From inside its own callback: the dying
				 * thread frees it when the callback returns. */
				w->free_after = 1;
				reap__obj_unlock(o);
				return;
			}
			/* The callback runs on another thread: wait for it,
			 * as promised (it never runs after we return). */
			while (atomic_load_explicit(&w->state, memory_order_acquire) ==
			       W_RUNNING) {
				reap__obj_unlock(o);
				sched_yield();
				reap__obj_lock(o);
			}
		}
		reap__obj_unlock(o);
	}
	reg_del(&w->reg, reap__type_id(&type_weak));
	weak_put(o);
	reap__block_free(w, sizeof *w);
}

/* ------------------------------------------------------------------ */
/* Finalizers                                                           */

/* Live finalizers flagged for exit, newest first. */
static spin exit_lock;
static struct reap_finalizer *exit_head;

/* Take f off the exit list; returns 1 if it was there, and the caller
 * then owns the list's reference. */
static int exit_unlink_keep(struct reap_finalizer *f)
{
	int had;

	if (f->flags & REAP_FINALIZE_NO_ATEXIT)
		return 0;
	/* The parent's exit list is not the child's (fork_child): its
	 * links lead into the parent's copy. */
	if (unlikely(reap__oreg_inherited(&f->reg)))
		return 0;
	spin_lock(&exit_lock);
	had = f->xlisted;
	if (had) {
		if (f->xprev != NULL)
			f->xprev->xnext = f->xnext;
		else
			exit_head = f->xnext;
		if (f->xnext != NULL)
			f->xnext->xprev = f->xprev;
		f->xlisted = 0;
	}
	spin_unlock(&exit_lock);
	return had;
}

static void exit_unlink(struct reap_finalizer *f)
{
	if (exit_unlink_keep(f))
		final_put(f);
}

static void final_put_n(struct reap_finalizer *f, uint32_t n)
{
	/* References are never added to a finalizer record: seeing n means
	 * these are the last (see weak_put). Acquire / acq_rel: the last
	 * dropper sees every other holder's use. */
	if (atomic_load_explicit(&f->refs, memory_order_acquire) != n &&
	    atomic_fetch_sub_explicit(&f->refs, n, memory_order_acq_rel) != n)
		return;
	reg_del(&f->reg, reap__type_id(&type_final));
	reap__block_free(f, sizeof *f);
}

static void final_put(struct reap_finalizer *f)
{
	final_put_n(f, 1);
}

int reap_finalize_at(void *obj, reap_finalize_fn fn, void *ctx, unsigned flags,
		     reap_finalizer **out, const reap_site *site)
{
	struct reap__obj *o = reap__hdr(obj);
	struct reap_finalizer *f;

	reap__obj_check(o, "finalize", site);
	if (flags & ~(unsigned)REAP_FINALIZE_NO_ATEXIT)
		return reap_raisef(-EINVAL, "reap_finalize: unknown flags %#x", flags);
	f = reap__block_alloc(sizeof *f);
	if (f == NULL)
		return -ENOMEM;
	memset(f, 0, sizeof *f);
	f->o = o;
	f->fn = fn;
	f->ctx = ctx;
	f->flags = flags;
	f->site = site;
	f->d.kind = D_FINAL;
	f->reg.gen = reap__fork_gen; /* reg_add sets it too, with a handle */
	atomic_init(&f->state, F_ALIVE);
	f->tname = o->type->name;
	atomic_init(&f->refs, 1 + (out != NULL) + !(flags & REAP_FINALIZE_NO_ATEXIT));
	if (out != NULL)
		reg_add(reap__ts(), &f->reg, reap__type_id(&type_final), REG_FINAL);
	if (!(flags & REAP_FINALIZE_NO_ATEXIT)) {
		spin_lock(&exit_lock);
		f->xnext = exit_head;
		if (exit_head != NULL)
			exit_head->xprev = f;
		exit_head = f;
		f->xlisted = 1;
		spin_unlock(&exit_lock);
	}
	reap__obj_lock(o);
	death_link(o, &f->d);
	reap__obj_unlock(o);
	if (out != NULL)
		*out = f;
	return 0;
}

/* Take f off its object's list, if the object has not taken it yet. The
 * stripe lock is static, so taking it is safe even when the object is
 * gone; f->d.listed, read under it, says whether the object is there. */
static void final_unlist(struct reap_finalizer *f)
{
	int had;

	reap__obj_lock(f->o);
	had = f->d.listed;
	if (had)
		death_unlink(f->o, &f->d);
	reap__obj_unlock(f->o);
	if (had)
		final_put(f);
}

int reap_finalizer_call(reap_finalizer *f)
{
	int xref, rc = final_fire(f, &xref);

	if (xref)
		final_put(f);
	if (rc != -ESRCH)
		final_unlist(f);
	return rc;
}

bool reap_finalizer_detach(reap_finalizer *f, void **ctx)
{
	int expect = F_ALIVE;

	/* Acq_rel: as in final_fire(); a detach is a run that does nothing. */
	if (!atomic_compare_exchange_strong_explicit(&f->state, &expect, F_DEAD,
						     memory_order_acq_rel,
						     memory_order_acquire))
		return false;
	if (ctx != NULL)
		*ctx = f->ctx;
	exit_unlink(f);
	final_unlist(f);
	return true;
}

bool reap_finalizer_peek(const reap_finalizer *f, void **ctx)
{
	if (atomic_load_explicit(&f->state, memory_order_acquire) != F_ALIVE)
		return false;
	if (ctx != NULL)
		*ctx = f->ctx;
	return true;
}

bool reap_finalizer_alive(const reap_finalizer *f)
{
	return atomic_load_explicit(&f->state, memory_order_acquire) == F_ALIVE;
}

void reap_finalizer_release(reap_finalizer *f)
{
	if (f != NULL)
		final_put(f);
}

size_t reap_finalize_atexit_run(void)
{
	size_t n = 0;

	for (;;) {
		struct reap_finalizer *f;
		int xref;

		spin_lock(&exit_lock);
		f = exit_head;
		if (f == NULL) {
			spin_unlock(&exit_lock);
			break;
		}
		/* Newest first; finalizers registered by this one's run go
		 * to the head and are taken next. The list's reference
		 * passes to us. */
		exit_head = f->xnext;
		if (exit_head != NULL)
			exit_head->xprev = NULL;
		f->xlisted = 0;
		spin_unlock(&exit_lock);
		if (final_fire(f, &xref) != -ESRCH) {
			n++;
			final_unlist(f);
		}
		final_put(f); /* the exit list's, passed to us above */
	}
	return n;
}

static void exit_finalize(void)
{
	(void)reap_finalize_atexit_run();
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

/*
 * The child of a fork has one thread. Every lock of the layer is made
 * anew: the stripes, the registry shards, the exit list, the type lock
 * (their holders may have been other threads). What exists at the fork
 * is the parent's: the registry forgets it (so the child's leak report
 * never names it, and the ledger has forgotten its counts already), and
 * so does the exit list, so that the child's exit runs no finalizer the
 * parent registered (Python's multiprocessing clears its finalizer
 * registry in the child likewise). Records keep the generation they
 * were made in (reap__oreg.gen): an inherited one is never unlinked
 * from the child's lists, counted, or run, whatever the child does
 * with it. The finalizers flagged for exit that the ledger did not
 * count (no handle) are counted as inherited here.
 */
static void fork_child(struct reap__tstate *ts)
{
	size_t n = 0;

	(void)ts;
	for (int i = 0; i < NSTRIPES; i++)
		atomic_init(&stripes[i].held, 0);
	for (int k = 0; k < NSHARDS; k++) {
		atomic_init(&shards[k].lock.held, 0);
		shards[k].head = NULL;
	}
	atomic_init(&exit_lock.held, 0);
	for (struct reap_finalizer *f = exit_head; f != NULL; f = f->xnext)
		if (!f->reg.on)
			n++;
	exit_head = NULL;
	reap__mutex_reset(&otype_lock);
	reap__gc_fork_child();
	if (n > 0)
		reap__fork_count_inherited(n);
}

/* ------------------------------------------------------------------ */
/* Leak report                                                          */

static size_t leak_source(FILE *f, size_t *per_type)
{
	uint32_t now = reap__now_ms();
	size_t n = 0;

	for (int k = 0; k < NSHARDS; k++) {
		spin_lock(&shards[k].lock);
		for (struct reap__oreg *r = shards[k].head; r != NULL; r = r->next) {
			char desc[200], owner[64];
			const char *what;
			const reap_site *site;
			unsigned id;
			uint32_t age = now > r->t_ms ? now - r->t_ms : 0;

			if (r->kind == REG_OBJ) {
				struct reap__obj *o = (struct reap__obj *)
					((char *)r - offsetof(struct reap__obj, reg));
				char d[128] = "";

				if (o->type->describe != NULL)
					o->type->describe(reap__body(o), d, sizeof d);
				snprintf(desc, sizeof desc, "%s%s(object %p)", d,
					 d[0] ? " " : "", reap__body(o));
				snprintf(owner, sizeof owner, "(shared: %u reference%s)",
					 REAP__REFS(atomic_load(&o->refs)),
					 REAP__REFS(atomic_load(&o->refs)) == 1 ? "" : "s");
				what = o->type->name;
				id = o->type->ledger.id;
				site = o->site;
			} else if (r->kind == REG_WEAK) {
				struct reap_weak *w = (struct reap_weak *)
					((char *)r - offsetof(struct reap_weak, reg));

				snprintf(desc, sizeof desc, "to %s %p", w->o->type->name,
					 reap__body(w->o));
				snprintf(owner, sizeof owner, "(the caller's handle)");
				what = "weakref";
				id = type_weak.id;
				site = w->site;
			} else {
				struct reap_finalizer *fz = (struct reap_finalizer *)
					((char *)r - offsetof(struct reap_finalizer, reg));

				snprintf(desc, sizeof desc, "on %s (%s)", fz->tname,
					 reap_finalizer_alive(fz) ? "alive" : "dead");
				snprintf(owner, sizeof owner, "(the caller's handle)");
				what = "finalizer";
				id = type_final.id;
				site = fz->site;
			}
			reap__leak_print(f, what, desc, age, r->tid, site, owner);
			if (id < REAP__MAX_TYPES)
				per_type[id]++;
			n++;
		}
		spin_unlock(&shards[k].lock);
	}
	return n;
}
