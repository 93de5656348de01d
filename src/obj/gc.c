/*
 * The cycle detector: trial deletion over the objects of a gc domain.
 *
 * What a collection computes. With the domain's lock held, every tracked
 * object o gets gc_refs = its count (a snapshot), then loses one for
 * each reference that traverse reports from another tracked object of
 * the domain. What is left is the number of references from outside the
 * domain's objects: from threads, scopes, untracked objects and other
 * domains. Objects left above 0 are roots; everything traverse reaches
 * from a root is reachable; the rest, U, is referenced only from inside
 * U. This is CPython's algorithm (update_refs, subtract_refs,
 * move_unreachable), with the lists threaded through the headers, so a
 * collection allocates nothing.
 *
 * Why it is sound with counts changing on other threads. The threading
 * rule (reap/obj.h) lets acquire, release and weak_get run at any time,
 * but changes the references stored in tracked objects, and taking a new
 * reference through one, only with the domain's lock held. The
 * collector holds the lock from the snapshot until the group is doomed,
 * so the edges between the domain's objects are fixed for that time: the
 * number of references to a member m of U from inside U is a constant
 * in(m), and its snapshot s(m) was in(m) (gc_refs reached 0). A count
 * equal to s(m) therefore means "no reference to m from outside U right
 * now". Outside references to m can then appear in two ways only: from
 * one already held, by reap_acquire (so there was one), or by
 * reap_weak_get. The collector sets REAP__DOOMED with a CAS from s(m):
 * if it succeeds there was no outside reference at that instant, and
 * from then on weak_get fails on m (obj.c, invariant 3) and no other
 * path can make one: m stays unreachable for good. Doing this for every
 * member makes the whole of U unreachable for good. A CAS that fails (a
 * count moved: weak_get won the race, or a thread released a reference
 * it held) abandons the collection of U: the bits already set are
 * cleared and U goes back to the tracked list, to be examined again by
 * the next collection. Most members have no weak reference, and then
 * the CAS is not needed: if an acquire load of the count gives s(m) and
 * m's weak count is then 1, nobody outside U holds m, no weak reference
 * can call weak_get on it, and none can be made until the lock is
 * dropped (that needs a reference to m: one held outside U, or one read
 * from a tracked object under the lock). Nothing else can write the
 * count meanwhile, so a plain atomic store of (s(m) + 1) | DOOMED does
 * what the CAS would, without stalling the walk on a locked
 * instruction. (The acquire is what makes "weak count 1" true: a weak
 * reference is made by a holder before the release of its strong one,
 * and s(m) is that release's value or a later one.) Objects whose count is 0 are dying on another
 * thread (waiting for this lock in reap__gc_untrack); they are left out:
 * not traversed, so what they reference counts as referenced from
 * outside, which is what it is until their close runs.
 *
 * Breaking a group. The CAS that dooms a member also takes a reference
 * of the collector's on it (s(m) to (s(m) + 1) | DOOMED). With every
 * member doomed, the collector chains them through gc_refs, unlocks,
 * calls clear on each (each drops its references), then drops its own
 * references with the normal release: the members die one by one,
 * running their finalizers, weak callbacks and close. While it works
 * the members are on no list of the domain, so a collection on another
 * thread never traverses an object whose clear may be running. A member
 * whose count is then 1 is held by the collector alone and dies in its
 * release, on its thread: the collector untracks it itself, without the
 * lock (that is most of them, and most of a collection's cost would
 * otherwise be that lock). The others (held by a member without clear
 * until its close) go on a watch list and untrack themselves when they
 * die; any still there at the end survived (a clear or close that kept
 * references: a bug of the type) and go back to the live list, undoomed.
 *
 * Uncollectable objects. Clearing the members that have clear cuts their
 * references; those of members without clear stay until the member's
 * close. So a cycle made only of members without clear can never be
 * freed, nor anything it references. The collector finds these (the
 * members left after peeling, Kahn-style, the members that no remaining
 * member without clear references, then everything those reach), keeps
 * them as they are on the domain's garbage list, numbered by group, and
 * reports the new ones under REAP_DEBUG=gc:uncollectable. The next
 * collection examines them again, in case the program broke them.
 *
 * gc_refs is ours: written at track and under the domain's lock only.
 * During a collection it packs the state bits below, the snapshot and
 * the working count; between collections it keeps G_REPORTED, and on
 * the garbage list G_KEPT and the group number.
 */
#include <inttypes.h>
#include <limits.h>
#include <string.h>

#include "obj_internal.h"

_Static_assert(sizeof(intptr_t) == 8, "gc_refs packs 64 bits");

#define G_REPORTED (UINT64_C(1) << 63)   /* reported as uncollectable */
#define G_COLLECTING (UINT64_C(1) << 62) /* examined by this collection */
#define G_UNREACH (UINT64_C(1) << 61)    /* in U, not reached (yet) */
#define G_PEELED (UINT64_C(1) << 60)     /* in U, collectable after all */
#define G_KEPT (UINT64_C(1) << 59)       /* uncollectable: on the garbage list */
#define G_SKIP (UINT64_C(1) << 58)       /* left out of this collection */
#define G_SNAP_SHIFT 32
#define G_SNAP_MAX ((UINT64_C(1) << 26) - 1) /* bits 32..57 */
#define G_LOW UINT64_C(0xffffffff)

static inline uint64_t gget(const struct reap__obj *o) { return (uint64_t)o->gc_refs; }
static inline void gset(struct reap__obj *o, uint64_t v) { o->gc_refs = (intptr_t)v; }
static inline uint32_t gsnap(const struct reap__obj *o)
{
	return (uint32_t)((gget(o) >> G_SNAP_SHIFT) & G_SNAP_MAX);
}

enum { D_LIVE = 0x9cd0a11eu, D_DEAD = 0x9cdeadd0u };

struct reap_gc_domain {
	pthread_mutex_t mu;
	/* The holder's token (0: free). Only the holder writes its own
	 * token, so a thread that reads its own token holds the lock;
	 * relaxed, since no other thread's value is ever acted on. */
	_Atomic uintptr_t owner;
	unsigned depth; /* the holder's recursion */
	uint32_t magic;
	int closed;     /* destroyed: freed with the last tracked object */
	const reap_site *site; /* creation; NULL for the default domain */
	reap_cleanup *cleanup; /* in its owner scope */

	/* Under mu. */
	struct reap__obj live;    /* tracked objects, examined */
	struct reap__obj garbage; /* uncollectable, as the last collection found */
	size_t ntracked, ngarbage;
	uint64_t collections, collected, abandoned;

	struct reap_gc_domain *dprev, *dnext; /* domains, for fork; doms_lock */
};

/* Every domain but the default one, so that a forked child can reset
 * their locks. */
static pthread_mutex_t doms_lock = PTHREAD_MUTEX_INITIALIZER;
static reap_gc_domain *doms;

static reap_gc_domain def = {
	.mu = PTHREAD_MUTEX_INITIALIZER,
	.magic = D_LIVE,
	.live = {.gc_prev = &def.live, .gc_next = &def.live},
	.garbage = {.gc_prev = &def.garbage, .gc_next = &def.garbage},
};


/* ------------------------------------------------------------------ */
/* Lists: circular, through gc_prev/gc_next, with a header as the head  */

static inline void list_init(struct reap__obj *h) { h->gc_prev = h->gc_next = h; }
static inline int list_empty(const struct reap__obj *h) { return h->gc_next == h; }

static inline void list_unlink(struct reap__obj *o)
{
	o->gc_prev->gc_next = o->gc_next;
	o->gc_next->gc_prev = o->gc_prev;
}

static inline void list_append(struct reap__obj *h, struct reap__obj *o)
{
	o->gc_prev = h->gc_prev;
	o->gc_next = h;
	h->gc_prev->gc_next = o;
	h->gc_prev = o;
}

static inline void list_move(struct reap__obj *o, struct reap__obj *h)
{
	list_unlink(o);
	list_append(h, o);
}

/*
 * A walk over a list chases pointers, one cache miss after another, and
 * a collection is a few such walks over memory far larger than the
 * caches. The lists are mostly in allocation order, objects one stride
 * apart, so guess that the object PREFETCH_STEPS on lies at the same
 * stride and ask for it early (24 steps measured best on bench_gc; 8 was
 * too short). A wrong guess costs a wasted load: a prefetch never faults.
 */
#define PREFETCH_STEPS 24
static inline void prefetch_ahead(const struct reap__obj *o, const struct reap__obj *next)
{
	/* In integers: the guess may point anywhere, even past the end of
	 * the address space, which pointer arithmetic may not. */
	uintptr_t n = (uintptr_t)next;

	__builtin_prefetch((const void *)(n + PREFETCH_STEPS * (n - (uintptr_t)o)), 1);
}

/* Move every element of from to the end of to. */
static void list_merge(struct reap__obj *from, struct reap__obj *to)
{
	if (list_empty(from))
		return;
	from->gc_next->gc_prev = to->gc_prev;
	to->gc_prev->gc_next = from->gc_next;
	from->gc_prev->gc_next = to;
	to->gc_prev = from->gc_prev;
	list_init(from);
}

/* ------------------------------------------------------------------ */
/* The domain lock: a mutex made recursive by an owner token            */

static __thread char self_token;
#define SELF ((uintptr_t)&self_token)

static int held(reap_gc_domain *d)
{
	return atomic_load_explicit(&d->owner, memory_order_relaxed) == SELF;
}

static void dlock(reap_gc_domain *d)
{
	if (held(d)) {
		d->depth++;
		return;
	}
	pthread_mutex_lock(&d->mu);
	atomic_store_explicit(&d->owner, SELF, memory_order_relaxed);
	d->depth = 1;
}

static void dunlock(reap_gc_domain *d)
{
	if (--d->depth == 0) {
		atomic_store_explicit(&d->owner, 0, memory_order_relaxed);
		pthread_mutex_unlock(&d->mu);
	}
}

static const char *domain_name(const reap_gc_domain *d, char *buf, size_t len)
{
	char s[256];

	if (d == &def)
		snprintf(buf, len, "the default domain");
	else
		snprintf(buf, len, "the domain created at %s",
			 reap__site_str(d->site, s, sizeof s));
	return buf;
}

static reap_gc_domain *live_domain(reap_gc_domain *d, const char *what)
{
	if (d == NULL)
		return &def;
	if (d->magic != D_LIVE) {
		char s[256];

		reap__misuse("%s of gc domain %p%s, created at %s",
			     what, (void *)d,
			     d->magic == D_DEAD ? " after it was destroyed" : ": not a gc domain",
			     d->magic == D_DEAD ? reap__site_str(d->site, s, sizeof s) : "?");
	}
	return d;
}

static void domain_free(reap_gc_domain *d)
{
	pthread_mutex_lock(&doms_lock);
	LIST_UNLINK(doms, d, dprev, dnext);
	pthread_mutex_unlock(&doms_lock);
	pthread_mutex_destroy(&d->mu);
	reap_free(d);
}

/* ------------------------------------------------------------------ */
/* Tracking (called by obj.c)                                           */

void reap__gc_track(reap_gc_domain *d, struct reap__obj *o)
{
	d = live_domain(d, "reap_obj_create_in");
	/* The object is not published yet: plain writes. */
	o->domain = d;
	o->gc_refs = 0;
	o->flags |= OF_TRACKED;
	dlock(d);
	list_append(&d->live, o);
	d->ntracked++;
	dunlock(d);
}

void reap__gc_untrack(struct reap__obj *o)
{
	reap_gc_domain *d = o->domain;
	int last;

	dlock(d);
	list_unlink(o);
	list_init(o);
	if (gget(o) & G_KEPT)
		d->ngarbage--;
	d->ntracked--;
	last = d->closed && d->ntracked == 0;
	dunlock(d);
	if (last)
		domain_free(d);
}

/* ------------------------------------------------------------------ */
/* Trial deletion                                                       */

struct walk {
	reap_gc_domain *d;
	struct reap__obj *list; /* where reached objects go */
	uint32_t group;
	size_t moved;           /* how many were moved there */
	int noclear;            /* an unreachable one has no clear */
};

static inline void traverse(struct reap__obj *o, reap_visit_fn fn, struct walk *w)
{
	(void)o->type->traverse(reap__body(o), fn, w);
}

/* The object behind a reference, if this collection examines it. */
static inline struct reap__obj *examined(void *ref, const struct walk *w)
{
	struct reap__obj *t;

	if (ref == NULL)
		return NULL;
	t = reap__hdr(ref);
	return t->domain == w->d && (gget(t) & G_COLLECTING) ? t : NULL;
}

/* Snapshot o's count. Dying objects (count 0) and the very rare count
 * too large for the snapshot field are left out: not examined, so that
 * what they reference counts as referenced from outside. */
static inline uint64_t snapshot(struct reap__obj *o, uint64_t g)
{
	/* Relaxed: only the value matters; the CAS at doom checks it. */
	uint32_t r = atomic_load_explicit(&o->refs, memory_order_relaxed);
	uint64_t n = REAP__REFS(r);

	g &= G_REPORTED;
	if (n == 0 || (r & REAP__DOOMED) || n > G_SNAP_MAX)
		g |= G_SKIP;
	else
		g |= G_COLLECTING | n << G_SNAP_SHIFT | n;
	gset(o, g);
	return g;
}

/* A reference from an examined object: one fewer from outside. A
 * referent not snapshotted yet is snapshotted first (it is on the live
 * list, further on: nothing else of this domain is reachable from there,
 * see the essay), which saves a pass over the list. */
static int visit_decref(void *ref, void *ctx)
{
	struct walk *w = ctx;
	struct reap__obj *t;
	uint64_t g;

	if (ref == NULL || (t = reap__hdr(ref))->domain != w->d)
		return 0;
	g = gget(t);
	if (!(g & (G_COLLECTING | G_SKIP)))
		g = snapshot(t, g);
	if (!(g & G_COLLECTING))
		return 0;
	if (unlikely((g & G_LOW) == 0)) {
		char s[256];

		reap__misuse("gc: traverse reports more references to %p "
			     "(\"%s\", created at %s) than its count holds",
			     ref, t->type->name, reap__site_str(t->site, s, sizeof s));
	}
	gset(t, g - 1);
	return 0;
}

/* update_refs and subtract_refs in one pass. */
static void subtract_refs(reap_gc_domain *d)
{
	struct walk w = {d, NULL, 0, 0, 0};

	for (struct reap__obj *o = d->live.gc_next; o != &d->live; o = o->gc_next) {
		uint64_t g = gget(o);

		prefetch_ahead(o, o->gc_next);
		if (!(g & (G_COLLECTING | G_SKIP)))
			g = snapshot(o, g);
		if (g & G_COLLECTING)
			traverse(o, visit_decref, &w);
	}
}

/* Reached from a reachable object: reachable. */
static int visit_reachable(void *ref, void *ctx)
{
	struct walk *w = ctx;
	struct reap__obj *t = examined(ref, w);

	if (t != NULL) {
		uint64_t g = gget(t);

		if (g & G_UNREACH) {
			/* Already passed over: back to the end of the list
			 * being scanned, to be scanned as reachable. */
			list_move(t, w->list);
			w->moved++;
			gset(t, (g & ~(G_UNREACH | G_LOW)) | 1);
		} else if ((g & G_LOW) == 0) {
			gset(t, g | 1); /* not scanned yet: will be, as a root */
		}
	}
	return 0;
}

/* Split the live list: roots and what they reach stay (and are no
 * longer marked as examined); the rest goes to u. Returns |u|, and in
 * *noclear whether a member of u has no clear. */
static size_t move_unreachable(reap_gc_domain *d, struct reap__obj *u,
			       int *noclear)
{
	struct walk w = {d, &d->live, 0, 0, 0};
	struct reap__obj *o = d->live.gc_next;
	size_t n = 0;

	while (o != &d->live) {
		uint64_t g = gget(o);

		prefetch_ahead(o, o->gc_next);
		if (!(g & G_COLLECTING)) {
			gset(o, g & ~G_SKIP);
			o = o->gc_next;
		} else if (g & G_LOW) {
			traverse(o, visit_reachable, &w);
			gset(o, 0); /* reachable: a new episode if it is lost again */
			o = o->gc_next; /* read after: the scan may append */
		} else {
			struct reap__obj *next = o->gc_next;

			list_move(o, u);
			gset(o, g | G_UNREACH);
			w.noclear |= o->type->clear == NULL;
			n++;
			o = next;
		}
	}
	*noclear = w.noclear;
	return n - w.moved;
}

/* ------------------------------------------------------------------ */
/* Uncollectable objects                                                */

/* The state of an object of U during the analysis. */
static inline struct reap__obj *in_u(void *ref, const struct walk *w)
{
	struct reap__obj *t = examined(ref, w);

	return t != NULL && (gget(t) & G_UNREACH) ? t : NULL;
}

static int visit_indeg(void *ref, void *ctx)
{
	struct reap__obj *t = in_u(ref, ctx);

	if (t != NULL)
		gset(t, gget(t) + 1);
	return 0;
}

static int visit_peel(void *ref, void *ctx)
{
	struct walk *w = ctx;
	struct reap__obj *t = in_u(ref, w);

	if (t != NULL && !(gget(t) & G_PEELED)) {
		uint64_t g = gget(t) - 1;

		if ((g & G_LOW) == 0) {
			list_move(t, w->list);
			g |= G_PEELED;
		}
		gset(t, g);
	}
	return 0;
}

static int visit_keep(void *ref, void *ctx)
{
	struct walk *w = ctx;
	struct reap__obj *t = in_u(ref, w);

	if (t != NULL && (gget(t) & G_PEELED)) {
		list_move(t, w->list);
		gset(t, gget(t) & ~G_PEELED);
	}
	return 0;
}

static int visit_group(void *ref, void *ctx)
{
	struct walk *w = ctx;
	struct reap__obj *t = in_u(ref, w);

	if (t != NULL && !(gget(t) & (G_PEELED | G_KEPT))) {
		list_move(t, w->list);
		gset(t, (gget(t) & ~G_LOW) | G_KEPT | w->group);
	}
	return 0;
}

/*
 * Move the uncollectable members of u to kept, grouped and numbered, and
 * leave the collectable ones in u. Returns how many were kept. Called
 * only when a member of u has no clear.
 */
static size_t split_uncollectable(reap_gc_domain *d, struct reap__obj *u,
				  struct reap__obj *kept)
{
	struct reap__obj peeled, rest;
	struct walk w = {d, NULL, 0, 0, 0};
	struct reap__obj *o, *next;
	size_t n = 0;

	/* The working counts of u's members are 0 (that is why they are
	 * there): they count in-degrees now, along the references that
	 * clear will not cut, those of members without clear. */
	for (o = u->gc_next; o != u; o = o->gc_next)
		if (o->type->clear == NULL)
			traverse(o, visit_indeg, &w);
	/* Peel what no remaining such reference holds. */
	list_init(&peeled);
	w.list = &peeled;
	for (o = u->gc_next; o != u; o = next) {
		next = o->gc_next;
		if ((gget(o) & G_LOW) == 0) {
			list_move(o, &peeled);
			gset(o, gget(o) | G_PEELED);
		}
	}
	for (o = peeled.gc_next; o != &peeled; o = o->gc_next)
		if (o->type->clear == NULL)
			traverse(o, visit_peel, &w);
	if (list_empty(u)) {
		list_merge(&peeled, u);
		goto out;
	}
	/* What remains is on such a cycle or held by one; so is all it
	 * reaches. */
	list_init(&rest);
	list_merge(u, &rest);
	w.list = &rest;
	for (o = rest.gc_next; o != &rest; o = o->gc_next)
		traverse(o, visit_keep, &w);
	list_merge(&peeled, u);
	/* Number the groups: each is what one seed reaches of the rest. */
	w.list = kept;
	while (!list_empty(&rest)) {
		o = rest.gc_next;
		w.group++;
		list_move(o, kept);
		gset(o, (gget(o) & ~G_LOW) | G_KEPT | w.group);
		for (; o != kept; o = o->gc_next) {
			traverse(o, visit_group, &w);
			n++;
		}
	}
	for (o = kept->gc_next; o != kept; o = o->gc_next)
		gset(o, gget(o) & (G_REPORTED | G_KEPT | G_LOW));
out:
	/* The collectable ones lose their analysis bits. */
	for (o = u->gc_next; o != u; o = o->gc_next)
		gset(o, gget(o) & ~(G_PEELED | G_LOW));
	return n;
}

/* Format the kept objects not reported yet into buf and mark them. */
static size_t report_kept(reap_gc_domain *d, struct reap__obj *kept,
			  char *buf, size_t len)
{
	size_t fresh = 0, shown = 0, pos = 0, groups = 0;
	uint32_t last = 0;
	char dn[320], s[256], desc[128];

	for (struct reap__obj *o = kept->gc_next; o != kept; o = o->gc_next) {
		if (gget(o) & G_REPORTED)
			continue;
		fresh++;
		if ((uint32_t)gget(o) != last) {
			groups++;
			last = (uint32_t)gget(o);
		}
	}
	if (fresh == 0)
		return 0;
	pos = (size_t)snprintf(buf, len,
			       "reap: gc: %zu uncollectable object(s) in %zu group(s) "
			       "in %s (a cycle of objects whose type has no clear, "
			       "and what it holds):\n",
			       fresh, groups, domain_name(d, dn, sizeof dn));
	last = 0;
	for (struct reap__obj *o = kept->gc_next; o != kept; o = o->gc_next) {
		uint64_t g = gget(o);
		int k = 0;

		if (g & G_REPORTED)
			continue;
		gset(o, g | G_REPORTED);
		if (pos + 400 > len)
			continue;
		if ((uint32_t)g != last) {
			last = (uint32_t)g;
			k = snprintf(buf + pos, len - pos, "  group %u:\n", last);
			pos += (size_t)k;
		}
		desc[0] = '\0';
		if (o->type->describe != NULL)
			o->type->describe(reap__body(o), desc, sizeof desc);
		k = snprintf(buf + pos, len - pos, "    %p \"%s\"%s%s%s, created at %s\n",
			     reap__body(o), o->type->name,
			     o->type->clear ? "" : " (no clear)", desc[0] ? " " : "",
			     desc, reap__site_str(o->site, s, sizeof s));
		if (k > 0 && (size_t)k < len - pos)
			pos += (size_t)k;
		shown++;
	}
	if (shown < fresh && pos + 80 <= len)
		snprintf(buf + pos, len - pos,
			 "  ... and %zu more (reap_gc_garbage() lists them all)\n",
			 fresh - shown);
	return fresh;
}

/* ------------------------------------------------------------------ */
/* Collection                                                           */

static const reap_site gc_site = {"(cycle detector)", "reap_gc_collect", 0};

/*
 * Doom every member of u and take a reference on each, moving its count
 * from the snapshot s to (s + 1) | DOOMED (a CAS, or a store when it has
 * no weak reference: see the essay), and chain them through gc_refs
 * (the list links are not used after the lock is dropped). If a count
 * moved, undo and return NULL (u is left in place, its gc_refs cleared).
 * Under the lock.
 */
static struct reap__obj *doom(struct reap__obj *u)
{
	struct reap__obj *o, *head = NULL, *prev = NULL;

	for (o = u->gc_next; o != u; o = o->gc_next) {
		uint32_t want = gsnap(o), seen;

		prefetch_ahead(o, o->gc_next);
		/* Acquire: if the count is the snapshot, it is the value the
		 * last outside holder's release left (or a later one), and
		 * we see what that holder wrote: its weak references in
		 * particular, and what clear and close will read. */
		seen = atomic_load_explicit(&o->refs, memory_order_acquire);
		if (seen != want)
			break;
		/* Relaxed: the acquire above orders it. */
		if (atomic_load_explicit(&o->weak, memory_order_relaxed) == 1) {
			/* No weak reference, and none can appear (see the
			 * essay): nothing else can change the count now. A
			 * plain atomic store, which unlike a CAS does not
			 * stall the walk; relaxed: the lock, dropped after,
			 * orders it before anything else reads it. */
			atomic_store_explicit(&o->refs, (want + 1) | REAP__DOOMED,
					      memory_order_relaxed);
		} else if (!atomic_compare_exchange_strong_explicit(
				   &o->refs, &want, (want + 1) | REAP__DOOMED,
				   /* Acq_rel: a success orders every later
				    * weak_get's failure after it. */
				   memory_order_acq_rel, memory_order_relaxed)) {
			break;
		}
		gset(o, 0);
		if (prev != NULL)
			gset(prev, (uint64_t)(uintptr_t)o);
		else
			head = o;
		prev = o;
	}
	if (o == u)
		return head;
	for (struct reap__obj *x = u->gc_next; x != o; x = x->gc_next) {
		/* Drop our reference and the bit at once; never the last
		 * reference (the members' references to each other hold
		 * it). Relaxed: the bit only gates weak_get, which rereads. */
		uint32_t old = atomic_fetch_sub_explicit(&x->refs, REAP__DOOMED + 1,
							 memory_order_relaxed);
		if (unlikely(REAP__REFS(old) <= 1))
			reap__misuse("gc: object %p (\"%s\") lost the references "
				     "traverse reports", reap__body(x), x->type->name);
	}
	for (o = u->gc_next; o != u; o = o->gc_next)
		gset(o, 0);
	return NULL;
}

int reap_gc_collect(reap_gc_domain *d)
{
	struct reap__obj u, kept, watch, *o, *next, *chain = NULL;
	size_t nunreach, nkept = 0, nfresh = 0, ndoomed = 0, nfast = 0,
	       survivors = 0;
	unsigned dbg = reap_debug_flags();
	uint64_t t0 = dbg & REAP_DEBUG_GC ? reap_now_ns() : 0;
	char text[8192];
	int abandoned = 0, noclear;

	d = live_domain(d, "reap_gc_collect");
	if (held(d))
		return -EDEADLK;
	list_init(&u);
	list_init(&kept);
	list_init(&watch);
	dlock(d);
	/* The garbage of the last collection is examined again: the program
	 * may have broken it by hand. */
	for (o = d->garbage.gc_next; o != &d->garbage; o = o->gc_next)
		gset(o, gget(o) & G_REPORTED);
	list_merge(&d->garbage, &d->live);
	d->ngarbage = 0;

	subtract_refs(d);
	nunreach = move_unreachable(d, &u, &noclear);
	if (noclear) {
		nkept = split_uncollectable(d, &u, &kept);
		if (nkept > 0) {
			if (dbg & REAP_DEBUG_GC_UNCOLLECTABLE)
				nfresh = report_kept(d, &kept, text, sizeof text);
			list_merge(&kept, &d->garbage);
			d->ngarbage = nkept;
		}
	}
	if (!list_empty(&u)) {
		if ((chain = doom(&u)) != NULL) {
			ndoomed = nunreach - nkept;
		} else {
			abandoned = 1;
			d->abandoned++;
			list_merge(&u, &d->live);
		}
	}
	d->collections++;
	dunlock(d);
	if (nfresh > 0)
		reap__report_text(text);
	if (chain == NULL)
		goto done;

	/* No member can die yet (we hold a reference on each), and no other
	 * thread can reach one: the chain is stable, and clear runs on
	 * objects nothing else touches. */
	for (o = chain; o != NULL; o = next) {
		next = (struct reap__obj *)(uintptr_t)gget(o);
		if (next != NULL)
			prefetch_ahead(o, next);
		if (o->type->clear != NULL)
			o->type->clear(reap__body(o));
	}
	/*
	 * Now drop our references. A member whose count is 1 holds only ours:
	 * nothing can raise it, so it dies in our release, on this thread; we
	 * untrack it ourselves (OF_TRACKED off, which its death reads on this
	 * same thread), with no lock. The others (held by a member without
	 * clear, which lets them go in its close, or by a clear that kept
	 * references) go on a watch list and untrack themselves, wherever
	 * they die. What is left on it afterwards survived.
	 */
	for (o = chain; o != NULL; o = next) {
		next = (struct reap__obj *)(uintptr_t)gget(o);
		if (next != NULL)
			prefetch_ahead(o, next);
		/* Relaxed: our own reference orders nothing. */
		if (REAP__REFS(atomic_load_explicit(&o->refs, memory_order_relaxed)) == 1) {
			o->flags &= ~OF_TRACKED;
			nfast++;
		} else {
			dlock(d);
			list_append(&watch, o);
			gset(o, 0);
			dunlock(d);
		}
		reap_release_at(reap__body(o), &gc_site);
	}
	dlock(d);
	for (o = watch.gc_next; o != &watch; o = o->gc_next) {
		atomic_fetch_and_explicit(&o->refs, ~REAP__DOOMED, memory_order_relaxed);
		survivors++;
	}
	list_merge(&watch, &d->live);
	d->ntracked -= nfast;
	d->collected += ndoomed - survivors;
	dunlock(d);
	if (survivors > 0) {
		char dn[320];

		reap__report("reap: gc: %zu object(s) of a garbage group in %s "
			     "survived its collection: a clear or close kept "
			     "references (they stay tracked)\n",
			     survivors, domain_name(d, dn, sizeof dn));
	}
done:
	if (dbg & REAP_DEBUG_GC) {
		char dn[320];
		reap_gc_stat st;

		reap_gc_stats(d, &st);
		reap__report("reap: gc: collection %" PRIu64 " of %s: %zu unreachable, "
			     "%zu collected, %zu uncollectable%s; %zu tracked; "
			     "%.1f us\n",
			     st.collections, domain_name(d, dn, sizeof dn), nunreach,
			     ndoomed - survivors, nkept,
			     abandoned ? " (the rest abandoned: counts "
							  "changed meanwhile)" : "",
			     st.tracked, (double)(reap_now_ns() - t0) / 1e3);
	}
	return ndoomed - survivors > INT_MAX ? INT_MAX : (int)(ndoomed - survivors);
}

/* ------------------------------------------------------------------ */
/* Domains, statistics, garbage, lock                                   */

static reap_type type_domain = REAP_TYPE_INIT("gc domain", NULL);

/* Collect a last time, then free d now or with its last object. */
static void domain_close(reap_gc_domain *d)
{
	size_t left, kept;
	int rc = reap_gc_collect(d);

	(void)rc;
	dlock(d);
	left = d->ntracked;
	kept = d->ngarbage;
	d->closed = 1;
	d->magic = D_DEAD;
	dunlock(d);
	if (left > 0 && (reap_debug_flags() & REAP_DEBUG_GC)) {
		char dn[320];

		reap__report("reap: gc: %s is destroyed with %zu tracked object(s) "
			     "still alive (%zu uncollectable); they are no longer "
			     "collected\n", domain_name(d, dn, sizeof dn), left, kept);
	}
	if (left == 0)
		domain_free(d);
}

static void domain_cleanup(void *arg)
{
	domain_close(arg);
}

int reap_gc_domain_create_at(reap_scope *s, reap_gc_domain **out,
			     const reap_site *site)
{
	reap_gc_domain *d = reap_malloc(sizeof *d);
	int rc;

	if (d == NULL)
		return -ENOMEM;
	memset(d, 0, sizeof *d);
	pthread_mutex_init(&d->mu, NULL);
	d->magic = D_LIVE;
	d->site = site;
	list_init(&d->live);
	list_init(&d->garbage);
	reap__obj_layer_init(); /* its fork hook resets the domains */
	pthread_mutex_lock(&doms_lock);
	d->dprev = NULL;
	d->dnext = doms;
	if (doms != NULL)
		doms->dprev = d;
	doms = d;
	pthread_mutex_unlock(&doms_lock);
	rc = reap_defer_at(s, &type_domain, domain_cleanup, d, &d->cleanup, site);
	if (rc < 0) {
		domain_free(d);
		return rc;
	}
	*out = d;
	return 0;
}

/*
 * In a forked child (obj.c's fork hook): the objects a domain tracks are
 * the parent's, never collected here (a collection would clear and close
 * them), so each domain starts with empty lists, and each object that
 * was on them leaves the domain (domain NULL), so that a collection of
 * the child's own objects that reference it counts it as outside, like
 * an untracked object. An inherited object that dies in the child is
 * not untracked (obj_die). Objects that a collection on another thread
 * had taken off the lists at the moment of the fork cannot be found;
 * they keep their domain. A domain's lock is made anew, unless the
 * forking thread holds it (reap_gc_lock across the fork): that thread
 * still holds it in the child and will unlock it.
 */
static void leave_domain(struct reap__obj *h)
{
	for (struct reap__obj *o = h->gc_next; o != NULL && o != h; o = o->gc_next)
		o->domain = NULL;
}

static void domain_fork_child(reap_gc_domain *d)
{
	leave_domain(&d->live);
	leave_domain(&d->garbage);
	if (!held(d)) {
		reap__mutex_reset(&d->mu);
		atomic_init(&d->owner, 0);
		d->depth = 0;
	}
	list_init(&d->live);
	list_init(&d->garbage);
	d->ntracked = d->ngarbage = 0;
}

void reap__gc_fork_child(void)
{
	reap__mutex_reset(&doms_lock);
	domain_fork_child(&def);
	for (reap_gc_domain *d = doms; d != NULL; d = d->dnext)
		domain_fork_child(d);
}

void reap_gc_domain_destroy(reap_gc_domain *d)
{
	live_domain(d, "reap_gc_domain_destroy");
	if (d == &def)
		reap__misuse("reap_gc_domain_destroy of the default gc domain");
	if (held(d))
		reap__misuse("reap_gc_domain_destroy of gc domain %p with its lock held",
			     (void *)d);
	reap_cleanup_cancel(d->cleanup);
	domain_close(d);
}

void reap_gc_stats(reap_gc_domain *d, reap_gc_stat *out)
{
	d = live_domain(d, "reap_gc_stats");
	dlock(d);
	out->collections = d->collections;
	out->collected = d->collected;
	out->abandoned = d->abandoned;
	out->tracked = d->ntracked;
	out->uncollectable = d->ngarbage;
	dunlock(d);
}

void reap_gc_lock(reap_gc_domain *d)
{
	dlock(live_domain(d, "reap_gc_lock"));
}

void reap_gc_unlock(reap_gc_domain *d)
{
	d = live_domain(d, "reap_gc_unlock");
	if (!held(d))
		reap__misuse("reap_gc_unlock of gc domain %p, which this thread does "
			     "not hold", (void *)d);
	dunlock(d);
}

size_t reap_gc_garbage(reap_gc_domain *d, reap_gc_item *out, size_t cap)
{
	size_t n = 0;

	d = live_domain(d, "reap_gc_garbage");
	dlock(d);
	for (struct reap__obj *o = d->garbage.gc_next; o != &d->garbage; o = o->gc_next) {
		uint32_t r = atomic_load_explicit(&o->refs, memory_order_relaxed);

		/* Skip the dying: the program broke it, and its last release
		 * waits for this lock to untrack it. */
		if (REAP__REFS(r) == 0)
			continue;
		if (n < cap) {
			/* A new reference, never from 0 (obj.c, invariant 1).
			 * Relaxed: the lock orders the rest. */
			while (!atomic_compare_exchange_weak_explicit(
				&o->refs, &r, r + 1, memory_order_relaxed,
				memory_order_relaxed))
				if (REAP__REFS(r) == 0)
					break;
			if (REAP__REFS(r) == 0)
				continue;
			out[n].obj = reap__body(o);
			out[n].type = o->type;
			out[n].site = o->site;
			out[n].group = (uint32_t)gget(o);
			out[n].no_clear = o->type->clear == NULL;
		}
		n++;
	}
	dunlock(d);
	return n;
}
