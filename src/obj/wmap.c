/*
 * The weak-value map.
 *
 * Keys hash to one of NSHARDS shards; each shard has a lock and a chained
 * hash table of entries. An entry holds a weak reference to its value,
 * with a death callback (on_death) whose context is the entry.
 *
 * The lifetime argument:
 *
 * 1. An entry is "linked" while it is in its shard's table; only a
 *    holder of the shard lock links or unlinks it, and whoever unlinks it
 *    (remove, a replacing put, destroy, or the death callback) drops the
 *    table's hold on it. Its memory is held by `holds`: 1 for the table,
 *    plus 1 per foreach that has it in its snapshot. The last hold frees
 *    it, destroying its weak reference first.
 *
 * 2. reap_weak_destroy() waits for a death callback running on another
 *    thread, and defers the free when called from inside the callback
 *    itself (obj.c). No shard lock is ever held while a weak reference is
 *    destroyed, so a callback waiting for that lock cannot deadlock a
 *    destroyer. Hence the callback never runs on a freed entry: the entry
 *    is freed only after its weak reference is destroyed, and a callback
 *    that lost the race to unlink finds the entry unlinked and returns
 *    without touching it again.
 *
 * 3. Destroying the map first unlinks every entry under the shard locks,
 *    then destroys their weak references (waiting for running callbacks,
 *    which find their entries unlinked), and only then frees the shards.
 *    A callback that unlinked its entry itself does not touch the map
 *    after it unlocks the shard.
 *
 * 4. reap_weak_get() is a lock-free compare-and-swap on the value's
 *    count, so get calls it under the shard lock: the weak reference
 *    cannot be destroyed meanwhile (1), and the CAS never resurrects a
 *    dying value. Lock order: obj.c's locks are never held when a death
 *    callback runs, and the map never calls into obj.c while holding a
 *    shard lock except for that CAS, which takes no lock.
 */
#include <stdlib.h>
#include <string.h>

#include "obj_internal.h"

#define NSHARDS 16
#define MIN_BUCKETS 8
#define BATCH 64 /* foreach snapshot kept on the stack */

struct wentry {
	struct wentry *next;
	struct reap_wmap *map;
	reap_weak *w;
	uint64_t hash;
	uint64_t ikey;
	_Atomic uint32_t holds;
	uint32_t klen; /* 0: integer key; else strlen + 1 */
	int linked;    /* under the shard lock */
	char skey[];
};

struct wshard {
	pthread_mutex_t lock;
	struct wentry **tab;
	size_t mask;
	size_t n;
} __attribute__((aligned(64)));

struct reap_wmap {
	struct wshard shards[NSHARDS];
	reap_cleanup *handle;
	void *base; /* what the allocator returned */
};

static void wmap_describe(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "%zu entries", reap_wmap_count(arg));
}

static reap_type type_wmap = REAP_TYPE_INIT("wmap", wmap_describe);

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

static int key_eq(const struct wentry *e, const struct reap__okey *k)
{
	if (e->hash != k->hash || e->klen != k->klen)
		return 0;
	return k->klen == 0 ? e->ikey == k->i : memcmp(e->skey, k->s, k->klen) == 0;
}

static struct wshard *shard_of(reap_wmap *m, uint64_t hash)
{
	return &m->shards[hash >> 60]; /* NSHARDS == 16 */
}

/* ------------------------------------------------------------------ */
/* Entries                                                              */

static void entry_put(struct wentry *e)
{
	/* Acq_rel: the last dropper sees the others' reads of the entry. */
	if (atomic_fetch_sub_explicit(&e->holds, 1, memory_order_acq_rel) != 1)
		return;
	/* Waits for a callback running elsewhere; from inside e's own
	 * callback obj.c frees w when the callback returns. */
	reap_weak_destroy(e->w);
	reap_free(e);
}

/* Find key in sh; *pp is the link pointing at it. Under the lock. */
static struct wentry **find(struct wshard *sh, const struct reap__okey *k)
{
	struct wentry **pp = &sh->tab[k->hash & sh->mask];

	for (; *pp != NULL; pp = &(*pp)->next)
		if (key_eq(*pp, k))
			return pp;
	return pp;
}

static void unlink_at(struct wshard *sh, struct wentry **pp)
{
	struct wentry *e = *pp;

	*pp = e->next;
	e->linked = 0;
	sh->n--;
}

/* Double the table; a failure is benign (the chains grow longer). */
static void grow(struct wshard *sh)
{
	size_t nb = (sh->mask + 1) * 2;
	struct wentry **t = reap_calloc(nb, sizeof *t);

	if (t == NULL)
		return;
	for (size_t i = 0; i <= sh->mask; i++) {
		struct wentry *e = sh->tab[i], *next;

		for (; e != NULL; e = next) {
			next = e->next;
			e->next = t[e->hash & (nb - 1)];
			t[e->hash & (nb - 1)] = e;
		}
	}
	reap_free(sh->tab);
	sh->tab = t;
	sh->mask = nb - 1;
}

/* The value of e died (or is dying): take e out, if nobody did. */
static void on_death(reap_weak *w, void *ctx)
{
	struct wentry *e = ctx;
	struct wshard *sh = shard_of(e->map, e->hash);
	int mine = 0;

	(void)w;
	pthread_mutex_lock(&sh->lock);
	if (e->linked) {
		struct wentry **pp = &sh->tab[e->hash & sh->mask];

		while (*pp != e)
			pp = &(*pp)->next;
		unlink_at(sh, pp);
		mine = 1;
	}
	pthread_mutex_unlock(&sh->lock);
	/* Not linked: the unlinker holds the table's hold and is waiting
	 * in reap_weak_destroy() for us to return; touch nothing. */
	if (mine)
		entry_put(e);
}

/* ------------------------------------------------------------------ */
/* The map                                                              */

static void wmap_free(reap_wmap *m)
{
	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_destroy(&m->shards[i].lock);
		reap_free(m->shards[i].tab);
	}
	reap_free(m->base);
}

static void wmap_cleanup(void *arg)
{
	reap_wmap *m = arg;

	for (int i = 0; i < NSHARDS; i++) {
		struct wshard *sh = &m->shards[i];
		struct wentry *list = NULL, *e, *next;

		/* Unlink everything first (invariant 3) ... */
		pthread_mutex_lock(&sh->lock);
		for (size_t b = 0; b <= sh->mask; b++) {
			for (e = sh->tab[b]; e != NULL; e = next) {
				next = e->next;
				e->linked = 0;
				e->next = list;
				list = e;
			}
			sh->tab[b] = NULL;
		}
		sh->n = 0;
		pthread_mutex_unlock(&sh->lock);
		/* ... then drop the table's holds, lock-free. */
		for (e = list; e != NULL; e = next) {
			next = e->next;
			entry_put(e);
		}
	}
	wmap_free(m);
}

int reap_wmap_create_at(reap_scope *s, reap_wmap **out, const reap_site *site)
{
	void *base = reap_malloc(sizeof(reap_wmap) + 63);
	reap_wmap *m;
	int i, rc = -ENOMEM;

	if (base == NULL)
		return -ENOMEM;
	m = (reap_wmap *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
	memset(m, 0, sizeof *m);
	m->base = base;
	for (i = 0; i < NSHARDS; i++) {
		struct wshard *sh = &m->shards[i];

		sh->tab = reap_calloc(MIN_BUCKETS, sizeof *sh->tab);
		if (sh->tab == NULL)
			goto fail;
		sh->mask = MIN_BUCKETS - 1;
		pthread_mutex_init(&sh->lock, NULL);
	}
	rc = reap_defer_at(s, &type_wmap, wmap_cleanup, m, &m->handle, site);
	if (rc < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	while (i-- > 0) {
		pthread_mutex_destroy(&m->shards[i].lock);
		reap_free(m->shards[i].tab);
	}
	reap_free(base);
	return rc;
}

void reap_wmap_destroy(reap_wmap *m)
{
	if (m != NULL)
		(void)reap_cleanup_run(m->handle);
}

static int put(reap_wmap *m, const struct reap__okey *k, void *obj,
	       const reap_site *site)
{
	struct wshard *sh = shard_of(m, k->hash);
	struct wentry *e, *old = NULL, **pp;
	int rc;

	e = reap_malloc(sizeof *e + k->klen);
	if (e == NULL)
		return -ENOMEM;
	e->map = m;
	e->hash = k->hash;
	e->ikey = k->i;
	e->klen = k->klen;
	e->linked = 0;
	atomic_init(&e->holds, 1);
	if (k->klen != 0)
		memcpy(e->skey, k->s, k->klen);
	/* Outside the shard lock: it takes obj.c's stripe lock. The
	 * caller's reference keeps obj alive, so the callback cannot run
	 * before e is linked. */
	rc = reap_weak_create_at(obj, on_death, e, &e->w, site);
	if (rc < 0) {
		reap_free(e);
		return rc;
	}
	pthread_mutex_lock(&sh->lock);
	pp = find(sh, k);
	if (*pp != NULL) {
		old = *pp;
		unlink_at(sh, pp);
	}
	if (sh->n >= sh->mask + 1)
		grow(sh);
	pp = &sh->tab[k->hash & sh->mask];
	e->next = *pp;
	*pp = e;
	e->linked = 1;
	sh->n++;
	pthread_mutex_unlock(&sh->lock);
	if (old != NULL)
		entry_put(old);
	return 0;
}

int reap_wmap_put_int_at(reap_wmap *m, uint64_t key, void *obj,
			 const reap_site *site)
{
	struct reap__okey k = reap__okey_int(key);

	return put(m, &k, obj, site);
}

int reap_wmap_put_str_at(reap_wmap *m, const char *key, void *obj,
			 const reap_site *site)
{
	struct reap__okey k = reap__okey_str(key);

	return put(m, &k, obj, site);
}

static void *get(reap_wmap *m, const struct reap__okey *k)
{
	struct wshard *sh = shard_of(m, k->hash);
	struct wentry *e;
	void *v = NULL;

	pthread_mutex_lock(&sh->lock);
	e = *find(sh, k);
	if (e != NULL)
		v = reap_weak_get(e->w); /* lock-free (invariant 4) */
	pthread_mutex_unlock(&sh->lock);
	return v;
}

void *reap_wmap_get_int(reap_wmap *m, uint64_t key)
{
	struct reap__okey k = reap__okey_int(key);

	return get(m, &k);
}

void *reap_wmap_get_str(reap_wmap *m, const char *key)
{
	struct reap__okey k = reap__okey_str(key);

	return get(m, &k);
}

static int remove_key(reap_wmap *m, const struct reap__okey *k)
{
	struct wshard *sh = shard_of(m, k->hash);
	struct wentry **pp, *e;

	pthread_mutex_lock(&sh->lock);
	pp = find(sh, k);
	e = *pp;
	if (e != NULL)
		unlink_at(sh, pp);
	pthread_mutex_unlock(&sh->lock);
	if (e == NULL)
		return -ENOENT;
	entry_put(e);
	return 0;
}

int reap_wmap_remove_int(reap_wmap *m, uint64_t key)
{
	struct reap__okey k = reap__okey_int(key);

	return remove_key(m, &k);
}

int reap_wmap_remove_str(reap_wmap *m, const char *key)
{
	struct reap__okey k = reap__okey_str(key);

	return remove_key(m, &k);
}

size_t reap_wmap_count(const reap_wmap *cm)
{
	reap_wmap *m = (reap_wmap *)cm;
	size_t n = 0;

	for (int i = 0; i < NSHARDS; i++) {
		pthread_mutex_lock(&m->shards[i].lock);
		n += m->shards[i].n;
		pthread_mutex_unlock(&m->shards[i].lock);
	}
	return n;
}

struct snap {
	struct wentry *e;
	void *v;
};

int reap_wmap_foreach(reap_wmap *m, reap_wmap_fn fn, void *ctx)
{
	struct snap stack[BATCH], *buf = stack;
	size_t cap = BATCH;
	int rc = 0;

	for (int i = 0; i < NSHARDS && rc == 0; i++) {
		struct wshard *sh = &m->shards[i];
		size_t n = 0, k;

		pthread_mutex_lock(&sh->lock);
		while (sh->n > cap) {
			size_t want = sh->n + sh->n / 2;
			struct snap *nb;

			pthread_mutex_unlock(&sh->lock);
			nb = reap_malloc(want * sizeof *nb);
			if (nb == NULL) {
				rc = -ENOMEM;
				goto out;
			}
			if (buf != stack)
				reap_free(buf);
			buf = nb;
			cap = want;
			pthread_mutex_lock(&sh->lock);
		}
		/* Hold each live value and its entry (for the key). */
		for (size_t b = 0; b <= sh->mask; b++) {
			for (struct wentry *e = sh->tab[b]; e != NULL; e = e->next) {
				void *v = reap_weak_get(e->w);

				if (v == NULL)
					continue; /* dying: its callback removes it */
				/* Relaxed: the shard lock orders it before any
				 * unlink, whose drop is acq_rel. */
				atomic_fetch_add_explicit(&e->holds, 1,
							  memory_order_relaxed);
				buf[n].e = e;
				buf[n].v = v;
				n++;
			}
		}
		pthread_mutex_unlock(&sh->lock);
		for (k = 0; k < n; k++) {
			struct wentry *e = buf[k].e;

			if (rc == 0)
				rc = fn(e->klen ? e->skey : NULL, e->ikey, buf[k].v,
					ctx);
			/* Value first: its death may unlink e, and the
			 * entry must outlive the callback's use of it. */
			reap_release(buf[k].v);
			entry_put(e);
		}
	}
out:
	if (buf != stack)
		reap_free(buf);
	return rc;
}
