/*
 * The cache: sharded open-addressing tables with per-shard CLOCK lists, a
 * global capacity, TTLs, a validity check, and a sweeper thread.
 *
 * The rules it keeps:
 *
 * 1. The cache holds exactly one reference to the value of each entry in
 *    its shards. An entry is unlinked (from its table slot or spill list,
 *    and from its LRU list) only under its shard lock, and the unlinker
 *    then releases that reference and frees the entry, always after
 *    unlocking: a release may run the value's close, which may take any
 *    lock or call the cache.
 *
 * 2. No user code runs under a shard lock: the validity check runs on a
 *    reference the caller took under the lock, after unlocking. An entry
 *    it condemns is looked up again by its (hash, seq) pair, seq being
 *    unique within the shard, so an entry replaced or evicted meanwhile
 *    is never taken for it.
 *
 * 3. The capacity is global: count and bytes are atomic sums kept next to
 *    the per-shard ones, written by puts and evictions only, never by a
 *    hit. A put over capacity evicts from the tail of its own shard
 *    (never the entry it added), then from the other shards one lock at
 *    a time: no thread ever holds two shard locks.
 *
 * 4. A sweep walks each shard from its LRU tail toward its head with a
 *    cursor kept in the shard, which every unlink and every move to the
 *    front fixes up, so the walk can drop the lock between batches.
 *    Entries visited in this sweep carry its epoch and are skipped if
 *    moved ahead of the cursor. One sweep runs at a time (sweep_lock).
 *
 * 5. A slot of a shard's table mirrors the fields of its entry that a hit
 *    reads (hash, value, deadline), which never change during the entry's
 *    life, so an integer-key hit touches the slot and the value, never the
 *    entry. An integer key is found by its hash alone: reap__mix64() is a
 *    bijection. Tables are at most half full; a table that cannot grow
 *    (allocation failure) fills up to one free slot, then its shard keeps
 *    the rest on a spill list, searched only while it is not empty and
 *    emptied into the table at the next growth.
 *
 * 6. The LRU order is approximate (CLOCK, or second chance) when there
 *    are several shards: a hit only sets the reference bit of its slot
 *    (once), and eviction gives a tail entry whose bit is set a second
 *    chance, clearing it and moving it to the head. A hit thus writes
 *    nothing outside its shard's first line and its slot. With one shard
 *    the order is exact: a hit moves its entry to the front.
 *
 * Shard locks are spinlocks: the critical sections are a probe and a few
 * pointer moves, never an allocation except a table's growth, never user
 * code. A waiter yields the CPU after a short spin, in case the holder
 * was preempted. The hit path takes one shard lock, makes no allocation,
 * reads the clock only for an entry that has a TTL, and takes its
 * reference with one atomic increment.
 */
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obj_internal.h"

#define MAX_SHARDS 256
#define MIN_BUCKETS 8
#define MAX_PRESIZE (1u << 17)
#define BATCH 32
#define NEVER UINT64_MAX


struct centry {
	struct centry *prev, *next; /* LRU: prev toward the head (newest);
				     * next: the dead list once unlinked */
	struct centry *spill;       /* the spill list, if on it (rule 5) */
	void *value;
	uint64_t hash;
	uint64_t expires; /* reap_now_ns() deadline, or NEVER */
	uint64_t seq;
	size_t size;
	uint32_t klen;  /* 0: integer key; else strlen + 1 */
	uint32_t epoch; /* the last sweep that visited it */
	uint8_t spilled;
	char skey[];
};

/* A table slot (rule 5): 32 bytes, two to a cache line. */
#define SLOT_STR ((uintptr_t)1) /* in ent: a string key */
#define SLOT_REF ((uintptr_t)2) /* in ent: used since its last chance */
#define SLOT_BITS (SLOT_STR | SLOT_REF)
struct cslot {
	uint64_t hash;
	uintptr_t ent; /* struct centry * | SLOT_*; 0: free */
	void *value;
	uint64_t expires;
};

static inline struct centry *slot_entry(const struct cslot *s)
{
	return (struct centry *)(s->ent & ~SLOT_BITS);
}

struct cshard {
	/* First line: all that a hit reads or writes. */
	atomic_int lock; /* 0 free, 1 held */
	uint32_t epoch;
	struct cslot *tab;
	size_t mask;
	uint64_t hits, misses;
	struct centry *head, *tail;
	struct centry *spill; /* rule 5; NULL but after a failed growth */
	/* The rest, under the lock too. */
	size_t n, used, bytes; /* entries, of them in tab, sum of sizes */
	struct centry *cursor; /* the sweep's next entry (rule 4) */
	uint64_t seq;
	uint64_t replaced;
	uint64_t evicted[REAP_CACHE_EVICT_NREASONS];
} __attribute__((aligned(64)));

struct reap_cache {
	size_t max_count, max_bytes;
	uint64_t ttl_ns;
	reap_cache_valid_fn valid;
	void *valid_ctx;
	unsigned nshards, shift;
	int bounded; /* max_count or max_bytes: keep the global sums */
	int exact;   /* one shard: exact LRU (rule 6) */
	pthread_mutex_t sweep_lock;
	reap_cache_sweeper *sweeper;
	reap_cleanup *handle;
	void *base;
	struct cshard *shards;
	/* Written by puts: a line of their own, away from the settings
	 * that every get reads. Kept only for a bounded cache. */
	_Atomic size_t count __attribute__((aligned(64)));
	_Atomic size_t bytes;
	_Atomic uint64_t sweeps;
	_Atomic unsigned rover; /* where cross-shard eviction starts */
};

struct reap_cache_sweeper {
	reap_cache *c; /* NULL once the cache stopped it */
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t interval_ns;
	int stop;
	uint32_t gen; /* reap__fork_gen at start: older, its thread is gone */
	reap_cleanup *handle;
};

static void cache_describe(void *arg, char *buf, size_t len)
{
	reap_cache *c = arg;

	reap_cache_stat st;

	reap_cache_stats(c, &st);
	snprintf(buf, len, "%zu entries, %zu bytes", st.count, st.bytes);
}

static void sweeper_describe(void *arg, char *buf, size_t len)
{
	reap_cache_sweeper *sw = arg;

	snprintf(buf, len, "every %llu ms",
		 (unsigned long long)(sw->interval_ns / 1000000u));
}

static reap_type type_cache = REAP_TYPE_INIT("cache", cache_describe);
static reap_type type_sweeper = REAP_TYPE_INIT("cache sweeper", sweeper_describe);

/* ------------------------------------------------------------------ */
/* Shard locks                                                          */

static inline void shard_lock(struct cshard *sh)
{
	reap__spin_lock(&sh->lock);
}

static inline void shard_unlock(struct cshard *sh)
{
	reap__spin_unlock(&sh->lock);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

static inline int entry_eq(const struct centry *e, const struct reap__okey *k)
{
	return e->hash == k->hash && e->klen == k->klen &&
	       (k->klen == 0 || memcmp(e->skey, k->s, k->klen) == 0);
}

/* Does slot s hold key k? An integer key by its hash alone (rule 5). */
static inline int slot_eq(const struct cslot *s, const struct reap__okey *k)
{
	if (s->hash != k->hash)
		return 0;
	if (k->klen == 0)
		return !(s->ent & SLOT_STR);
	return (s->ent & SLOT_STR) && entry_eq(slot_entry(s), k);
}

static inline struct cshard *shard_of(reap_cache *c, uint64_t hash)
{
	return &c->shards[c->shift < 64 ? hash >> c->shift : 0];
}

/* ------------------------------------------------------------------ */
/* Shards (every function here runs under the shard lock)               */

/* The slot of key k, or NULL (then *spilled: its entry on the spill
 * list, or NULL). */
static inline struct cslot *find(struct cshard *sh, const struct reap__okey *k,
				 struct centry **spilled)
{
	size_t i = k->hash & sh->mask;

	*spilled = NULL;
	for (;; i = (i + 1) & sh->mask) {
		struct cslot *s = &sh->tab[i];

		if (s->ent == 0)
			break;
		if (slot_eq(s, k))
			return s;
	}
	for (struct centry *e = sh->spill; e != NULL; e = e->spill)
		if (entry_eq(e, k)) {
			*spilled = e;
			break;
		}
	return NULL;
}

/* The slot of e, which is in the table. */
static struct cslot *slot_of(struct cshard *sh, const struct centry *e)
{
	size_t i = e->hash & sh->mask;

	while (slot_entry(&sh->tab[i]) != e)
		i = (i + 1) & sh->mask;
	return &sh->tab[i];
}

/* Put e in a free slot of tab (mask): there is one. */
static void slot_add(struct cslot *tab, size_t mask, struct centry *e,
		     uintptr_t bits)
{
	size_t i = e->hash & mask;

	while (tab[i].ent != 0)
		i = (i + 1) & mask;
	tab[i].hash = e->hash;
	tab[i].ent = (uintptr_t)e | (e->klen != 0 ? SLOT_STR : 0) | bits;
	tab[i].value = e->value;
	tab[i].expires = e->expires;
}

/* Free slot i, shifting back the slots after it that may move. */
static void slot_del(struct cshard *sh, size_t i)
{
	size_t j = i, h;

	for (;;) {
		j = (j + 1) & sh->mask;
		if (sh->tab[j].ent == 0)
			break;
		h = sh->tab[j].hash & sh->mask;
		/* Its home h outside the cyclic range (i, j]: it may move
		 * back to i. */
		if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
			sh->tab[i] = sh->tab[j];
			i = j;
		}
	}
	memset(&sh->tab[i], 0, sizeof sh->tab[i]);
}

static inline void lru_unlink(struct cshard *sh, struct centry *e)
{
	if (sh->cursor == e)
		sh->cursor = e->prev;
	LIST_UNLINK(sh->head, e, prev, next);
	if (e->next == NULL)
		sh->tail = e->prev;
}

static inline void lru_push(struct cshard *sh, struct centry *e)
{
	e->prev = NULL;
	e->next = sh->head;
	if (sh->head != NULL)
		sh->head->prev = e;
	else
		sh->tail = e;
	sh->head = e;
}

/* Take e out of the shard and push it on *dead (rule 1). */
static void unlink_entry(reap_cache *c, struct cshard *sh, struct centry *e,
			 struct centry **dead)
{
	if (e->spilled) {
		struct centry **pp = &sh->spill;

		while (*pp != e)
			pp = &(*pp)->spill;
		*pp = e->spill;
	} else {
		slot_del(sh, (size_t)(slot_of(sh, e) - sh->tab));
		sh->used--;
	}
	lru_unlink(sh, e);
	sh->n--;
	sh->bytes -= e->size;
	if (c->bounded) {
		/* Relaxed: sums read as snapshots; the shard lock orders
		 * the rest. */
		atomic_fetch_sub_explicit(&c->count, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&c->bytes, e->size, memory_order_relaxed);
	}
	e->next = *dead;
	*dead = e;
}

/* Double the table and empty the spill list into it; a failure is benign
 * (rule 5). */
static void grow(struct cshard *sh)
{
	size_t nb = (sh->mask + 1) * 2;
	struct cslot *t = reap_calloc(nb, sizeof *t);

	if (t == NULL)
		return;
	for (size_t i = 0; i <= sh->mask; i++)
		if (sh->tab[i].ent != 0)
			slot_add(t, nb - 1, slot_entry(&sh->tab[i]),
				 sh->tab[i].ent & SLOT_REF);
	for (struct centry *e = sh->spill; e != NULL; e = e->spill) {
		slot_add(t, nb - 1, e, 0);
		e->spilled = 0;
		sh->used++;
	}
	sh->spill = NULL;
	reap_free(sh->tab);
	sh->tab = t;
	sh->mask = nb - 1;
}

/* Link e into sh's table (or spill list) and LRU head. */
static void link_entry(struct cshard *sh, struct centry *e)
{
	if (2 * (sh->used + 1) > sh->mask + 1)
		grow(sh);
	if (sh->used + 2 <= sh->mask + 1) { /* one slot stays free */
		slot_add(sh->tab, sh->mask, e, 0);
		sh->used++;
	} else {
		e->spilled = 1;
		e->spill = sh->spill;
		sh->spill = e;
	}
	lru_push(sh, e);
	sh->n++;
}

static inline int over(reap_cache *c)
{
	return (c->max_count != 0 &&
		atomic_load_explicit(&c->count, memory_order_relaxed) > c->max_count) ||
	       (c->max_bytes != 0 &&
		atomic_load_explicit(&c->bytes, memory_order_relaxed) > c->max_bytes);
}

/* Evict from sh's tail, never keep, while the cache is over capacity;
 * a tail entry used since its last chance gets another (rule 6). */
static void evict_over(reap_cache *c, struct cshard *sh, struct centry *keep,
		       struct centry **dead)
{
	size_t spared = 0;

	while (over(c)) {
		struct centry *e = sh->tail;
		struct cslot *s;

		if (e != NULL && e == keep)
			e = e->prev;
		if (e == NULL)
			return;
		if (!e->spilled && spared < sh->n &&
		    ((s = slot_of(sh, e))->ent & SLOT_REF)) {
			s->ent &= ~SLOT_REF;
			lru_unlink(sh, e);
			lru_push(sh, e);
			spared++;
			continue;
		}
		sh->evicted[REAP_CACHE_EVICT_CAPACITY]++;
		unlink_entry(c, sh, e, dead);
	}
}

/* Drop the cache's references, outside every lock (rule 1). */
static size_t bury(struct centry *dead)
{
	size_t n = 0;

	while (dead != NULL) {
		struct centry *next = dead->next;

		reap_release(dead->value);
		reap_free(dead);
		dead = next;
		n++;
	}
	return n;
}

/* ------------------------------------------------------------------ */
/* Open and close                                                       */

static void sweeper_halt(reap_cache_sweeper *sw);

static void cache_free(reap_cache *c)
{
	for (unsigned i = 0; i < c->nshards; i++)
		reap_free(c->shards[i].tab);
	pthread_mutex_destroy(&c->sweep_lock);
	reap_free(c->base);
}

/* Detach every entry of every shard; no statistics. */
static struct centry *take_all(reap_cache *c, int explicit)
{
	struct centry *dead = NULL;

	for (unsigned i = 0; i < c->nshards; i++) {
		struct cshard *sh = &c->shards[i];

		shard_lock(sh);
		if (explicit)
			sh->evicted[REAP_CACHE_EVICT_EXPLICIT] += sh->n;
		while (sh->head != NULL)
			unlink_entry(c, sh, sh->head, &dead);
		shard_unlock(sh);
	}
	return dead;
}

static void cache_cleanup(void *arg)
{
	reap_cache *c = arg;

	if (c->sweeper != NULL) {
		sweeper_halt(c->sweeper);
		c->sweeper->c = NULL; /* its scope frees it later */
		c->sweeper = NULL;
	}
	bury(take_all(c, 0));
	cache_free(c);
}

static unsigned pow2_at_least(size_t n)
{
	unsigned b = 0;

	while (((size_t)1 << b) < n)
		b++;
	return b;
}

int reap_cache_open_at(reap_scope *s, const reap_cache_config *cfg,
		       reap_cache **out, const reap_site *site)
{
	static const reap_cache_config none;
	unsigned nshards, bits, i = 0;
	size_t buckets, hdr = (sizeof(reap_cache) + 63) & ~(size_t)63;
	reap_cache *c;
	void *base;
	int rc = -ENOMEM;

	if (cfg == NULL)
		cfg = &none;
	if (cfg->shards > MAX_SHARDS)
		return reap_raisef(-EINVAL, "reap_cache_open: %u shards (at most %d)",
				   cfg->shards, MAX_SHARDS);
	if (cfg->shards != 0) {
		bits = pow2_at_least(cfg->shards);
	} else {
		bits = 4;
		while (bits > 0 && cfg->max_count != 0 &&
		       cfg->max_count < ((size_t)8 << bits))
			bits--;
	}
	nshards = 1u << bits;
	buckets = MIN_BUCKETS;
	if (cfg->max_count != 0) {
		/* At most half full (rule 5). */
		size_t per = 2 * (cfg->max_count / nshards + 1);

		buckets = (size_t)1 << pow2_at_least(per < MAX_PRESIZE ? per : MAX_PRESIZE);
		if (buckets < MIN_BUCKETS)
			buckets = MIN_BUCKETS;
	}

	base = reap_malloc(63 + hdr + (size_t)nshards * sizeof(struct cshard));
	if (base == NULL)
		return -ENOMEM;
	c = (reap_cache *)(((uintptr_t)base + 63) & ~(uintptr_t)63);
	memset(c, 0, hdr + (size_t)nshards * sizeof(struct cshard));
	c->base = base;
	c->shards = (struct cshard *)((char *)c + hdr);
	c->max_count = cfg->max_count;
	c->max_bytes = cfg->max_bytes;
	c->bounded = cfg->max_count != 0 || cfg->max_bytes != 0;
	c->exact = nshards == 1;
	c->ttl_ns = cfg->ttl_ns;
	c->valid = cfg->valid;
	c->valid_ctx = cfg->valid_ctx;
	c->nshards = nshards;
	c->shift = 64 - bits; /* 64: one shard, index 0 */
	for (i = 0; i < nshards; i++) {
		struct cshard *sh = &c->shards[i];

		sh->tab = reap_calloc(buckets, sizeof *sh->tab);
		if (sh->tab == NULL)
			goto fail;
		sh->mask = buckets - 1;
	}
	pthread_mutex_init(&c->sweep_lock, NULL);
	rc = reap_defer_at(s, &type_cache, cache_cleanup, c, &c->handle, site);
	if (rc < 0) {
		pthread_mutex_destroy(&c->sweep_lock);
		goto fail;
	}
	*out = c;
	return 0;
fail:
	while (i-- > 0)
		reap_free(c->shards[i].tab);
	reap_free(base);
	return rc;
}

void reap_cache_close(reap_cache *c)
{
	if (c != NULL)
		(void)reap_cleanup_run(c->handle);
}

/* ------------------------------------------------------------------ */
/* Put, get, remove                                                     */

/* Under sh's lock: the entry of key k, or NULL. */
static struct centry *find_entry(struct cshard *sh, const struct reap__okey *k)
{
	struct centry *spilled;
	struct cslot *s = find(sh, k, &spilled);

	return s != NULL ? slot_entry(s) : spilled;
}

static int put(reap_cache *c, const struct reap__okey *k, void *obj, size_t size,
	       uint64_t ttl)
{
	struct cshard *sh = shard_of(c, k->hash);
	struct centry *e, *old, *dead = NULL;
	uint64_t now;

	if (c->max_bytes != 0 && size > c->max_bytes)
		return reap_raisef(-E2BIG, "reap_cache_put: %zu bytes in a cache "
				   "of %zu", size, c->max_bytes);
	e = reap_malloc(sizeof *e + k->klen);
	if (e == NULL)
		return -ENOMEM;
	if (ttl == REAP_CACHE_TTL_DEFAULT)
		ttl = c->ttl_ns ? c->ttl_ns : NEVER;
	e->expires = NEVER;
	if (ttl != NEVER) {
		now = reap_now_ns();
		e->expires = ttl < NEVER - now ? now + ttl : NEVER - 1;
	}
	e->value = reap_acquire(obj);
	e->hash = k->hash;
	e->size = size;
	e->klen = k->klen;
	e->epoch = 0;
	e->spilled = 0;
	e->spill = NULL;
	if (k->klen != 0)
		memcpy(e->skey, k->s, k->klen);

	shard_lock(sh);
	if ((old = find_entry(sh, k)) != NULL) {
		sh->replaced++;
		unlink_entry(c, sh, old, &dead);
	}
	e->seq = ++sh->seq;
	link_entry(sh, e);
	sh->bytes += size;
	if (c->bounded) {
		/* Relaxed: sums read as snapshots (rule 3). */
		atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->bytes, size, memory_order_relaxed);
	}
	evict_over(c, sh, e, &dead);
	shard_unlock(sh);

	/* Still over: the rest of the excess lives in other shards. */
	if (over(c) && c->nshards > 1) {
		/* Relaxed: only spreads the starting shard. */
		unsigned start = atomic_fetch_add_explicit(&c->rover, 1,
							   memory_order_relaxed);

		for (unsigned j = 0; j < c->nshards && over(c); j++) {
			struct cshard *o = &c->shards[(start + j) & (c->nshards - 1)];

			if (o == sh)
				continue;
			shard_lock(o);
			evict_over(c, o, NULL, &dead);
			shard_unlock(o);
		}
	}
	bury(dead);
	return 0;
}

int reap_cache_put_int(reap_cache *c, uint64_t key, void *obj, size_t size,
		       uint64_t ttl_ns)
{
	struct reap__okey k = reap__okey_int(key);

	return put(c, &k, obj, size, ttl_ns);
}

int reap_cache_put_str(reap_cache *c, const char *key, void *obj, size_t size,
		       uint64_t ttl_ns)
{
	struct reap__okey k = reap__okey_str(key);

	return put(c, &k, obj, size, ttl_ns);
}

/* The entry of shard sh with (hash, seq), if still there. Under the lock. */
static struct centry *find_seq(struct cshard *sh, uint64_t hash, uint64_t seq)
{
	size_t i = hash & sh->mask;

	for (;; i = (i + 1) & sh->mask) {
		struct cslot *s = &sh->tab[i];

		if (s->ent == 0)
			break;
		if (s->hash == hash && slot_entry(s)->seq == seq)
			return slot_entry(s);
	}
	for (struct centry *e = sh->spill; e != NULL; e = e->spill)
		if (e->seq == seq)
			return e;
	return NULL;
}

/* The validity check failed for v, taken from entry (hash, seq) of sh. */
static void condemn(reap_cache *c, struct cshard *sh, uint64_t hash,
		    uint64_t seq, struct centry **dead)
{
	struct centry *e = find_seq(sh, hash, seq);

	if (e != NULL) {
		sh->evicted[REAP_CACHE_EVICT_INVALID]++;
		unlink_entry(c, sh, e, dead);
	}
}

/* A new reference to v, held by the cache. */
static inline void *take_ref(void *v)
{
	/* Relaxed: the cache's reference (rule 1) keeps the count above 0
	 * while we hold the shard lock; the caller's release orders. */
	atomic_fetch_add_explicit(&reap__hdr(v)->refs, 1, memory_order_relaxed);
	return v;
}

/* The miss or expiry side of get, out of the hit path. */
static __attribute__((noinline)) void *get_slow(reap_cache *c,
						struct cshard *sh,
						struct centry *e,
						uint64_t *seq)
{
	struct centry *dead = NULL;
	void *v;

	if (e == NULL) {
		sh->misses++;
		shard_unlock(sh);
		return NULL;
	}
	if (e->expires != NEVER && reap_now_ns() >= e->expires) {
		sh->misses++;
		sh->evicted[REAP_CACHE_EVICT_TTL]++;
		unlink_entry(c, sh, e, &dead);
		shard_unlock(sh);
		bury(dead);
		return NULL;
	}
	/* A live spilled entry (rule 5): a hit. */
	v = take_ref(e->value);
	if (c->exact && e != sh->head) {
		lru_unlink(sh, e);
		lru_push(sh, e);
	}
	sh->hits++;
	*seq = e->seq;
	shard_unlock(sh);
	return v;
}

/* Inlined in each caller, so that an integer key's hit makes one call. */
static inline __attribute__((always_inline)) void *
get(reap_cache *c, const struct reap__okey *k)
{
	struct cshard *sh = shard_of(c, k->hash);
	struct centry *e, *dead = NULL;
	struct cslot *s;
	uint64_t seq = 0;
	void *v;

	shard_lock(sh);
	s = find(sh, k, &e);
	if (unlikely(s == NULL) ||
	    unlikely(s->expires != NEVER && reap_now_ns() >= s->expires)) {
		v = get_slow(c, sh, s != NULL ? slot_entry(s) : e, &seq);
		if (v == NULL || c->valid == NULL)
			return v;
		goto check; /* a spilled entry: checked like any other */
	}
	v = s->value;
	/* The caller reads the value next: start its line on its way while
	 * the count's line comes. */
	__builtin_prefetch(v);
	take_ref(v);
	if (c->exact) {
		e = slot_entry(s);
		if (e != sh->head) {
			lru_unlink(sh, e);
			lru_push(sh, e);
		}
	} else if (!(s->ent & SLOT_REF)) {
		s->ent |= SLOT_REF;
	}
	sh->hits++;
	if (likely(c->valid == NULL)) {
		shard_unlock(sh);
		return v;
	}
	seq = slot_entry(s)->seq;
	shard_unlock(sh);
check:
	if (c->valid(v, c->valid_ctx))
		return v;
	shard_lock(sh);
	sh->hits--;
	sh->misses++;
	condemn(c, sh, k->hash, seq, &dead);
	shard_unlock(sh);
	bury(dead);
	reap_release(v);
	return NULL;
}

void *reap_cache_get_int(reap_cache *c, uint64_t key)
{
	struct reap__okey k = reap__okey_int(key);

	return get(c, &k);
}

void *reap_cache_get_str(reap_cache *c, const char *key)
{
	struct reap__okey k = reap__okey_str(key);

	return get(c, &k);
}

static int remove_key(reap_cache *c, const struct reap__okey *k)
{
	struct cshard *sh = shard_of(c, k->hash);
	struct centry *e, *dead = NULL;

	shard_lock(sh);
	e = find_entry(sh, k);
	if (e != NULL) {
		sh->evicted[REAP_CACHE_EVICT_EXPLICIT]++;
		unlink_entry(c, sh, e, &dead);
	}
	shard_unlock(sh);
	if (e == NULL)
		return -ENOENT;
	bury(dead);
	return 0;
}

int reap_cache_remove_int(reap_cache *c, uint64_t key)
{
	struct reap__okey k = reap__okey_int(key);

	return remove_key(c, &k);
}

int reap_cache_remove_str(reap_cache *c, const char *key)
{
	struct reap__okey k = reap__okey_str(key);

	return remove_key(c, &k);
}

void reap_cache_clear(reap_cache *c)
{
	bury(take_all(c, 1));
}

/* ------------------------------------------------------------------ */
/* Sweep                                                                */

struct held {
	void *v;
	uint64_t hash, seq;
	int bad;
};

/* Sweep one shard; returns how many entries it evicted. */
static size_t sweep_shard(reap_cache *c, struct cshard *sh)
{
	struct held batch[BATCH];
	struct centry *dead = NULL;
	size_t evicted = 0, steps = 0, budget;
	uint64_t now = reap_now_ns();
	uint32_t epoch;

	shard_lock(sh);
	epoch = ++sh->epoch;
	if (epoch == 0)
		epoch = ++sh->epoch; /* 0 marks entries never visited */
	/* Entries moved ahead of the cursor are walked again (and skipped);
	 * the budget bounds the walk under a stream of gets and puts. */
	budget = 4 * sh->n + BATCH;
	sh->cursor = sh->tail;
	for (;;) {
		size_t nb = 0;
		int done;

		while (sh->cursor != NULL && nb < BATCH && steps < budget) {
			struct centry *e = sh->cursor;

			sh->cursor = e->prev;
			steps++;
			if (e->epoch == epoch)
				continue;
			e->epoch = epoch;
			if (e->expires != NEVER && now >= e->expires) {
				sh->evicted[REAP_CACHE_EVICT_TTL]++;
				unlink_entry(c, sh, e, &dead);
				evicted++;
				continue;
			}
			if (c->valid != NULL) {
				batch[nb].v = reap_acquire(e->value);
				batch[nb].hash = e->hash;
				batch[nb].seq = e->seq;
				nb++;
			}
		}
		done = sh->cursor == NULL || steps >= budget;
		if (nb == 0 && dead == NULL)
			break;
		shard_unlock(sh);
		/* Rule 2: the check runs unlocked, on our own references. */
		for (size_t i = 0; i < nb; i++)
			batch[i].bad = !c->valid(batch[i].v, c->valid_ctx);
		shard_lock(sh);
		for (size_t i = 0; i < nb; i++) {
			struct centry *before = dead;

			if (!batch[i].bad)
				continue;
			condemn(c, sh, batch[i].hash, batch[i].seq, &dead);
			evicted += dead != before;
		}
		shard_unlock(sh);
		/* Our references, then the cache's (rule 1). */
		for (size_t i = 0; i < nb; i++)
			reap_release(batch[i].v);
		bury(dead);
		dead = NULL;
		shard_lock(sh);
		if (done)
			break;
	}
	sh->cursor = NULL;
	shard_unlock(sh);
	return evicted;
}

size_t reap_cache_sweep(reap_cache *c)
{
	size_t n = 0;

	pthread_mutex_lock(&c->sweep_lock);
	for (unsigned i = 0; i < c->nshards; i++)
		n += sweep_shard(c, &c->shards[i]);
	pthread_mutex_unlock(&c->sweep_lock);
	/* Relaxed: a counter. */
	atomic_fetch_add_explicit(&c->sweeps, 1, memory_order_relaxed);
	return n;
}

/* ------------------------------------------------------------------ */
/* Counts and statistics                                                */

size_t reap_cache_count(const reap_cache *cc)
{
	reap_cache *c = (reap_cache *)cc; /* the locks change */
	size_t n = 0;

	if (c->bounded)
		return atomic_load_explicit(&c->count, memory_order_relaxed);
	for (unsigned i = 0; i < c->nshards; i++) {
		shard_lock(&c->shards[i]);
		n += c->shards[i].n;
		shard_unlock(&c->shards[i]);
	}
	return n;
}

void reap_cache_stats(reap_cache *c, reap_cache_stat *out)
{
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < c->nshards; i++) {
		struct cshard *sh = &c->shards[i];

		shard_lock(sh);
		out->hits += sh->hits;
		out->misses += sh->misses;
		out->replaced += sh->replaced;
		for (int r = 0; r < REAP_CACHE_EVICT_NREASONS; r++)
			out->evicted[r] += sh->evicted[r];
		out->count += sh->n;
		out->bytes += sh->bytes;
		shard_unlock(sh);
	}
	out->sweeps = atomic_load_explicit(&c->sweeps, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The sweeper thread                                                   */

static void *sweeper_main(void *arg)
{
	reap_cache_sweeper *sw = arg;
	struct timespec t;

	pthread_mutex_lock(&sw->lock);
	while (!sw->stop) {
		uint64_t ns;
		int rc = 0;

		clock_gettime(CLOCK_MONOTONIC, &t);
		ns = (uint64_t)t.tv_nsec + sw->interval_ns;
		t.tv_sec += (time_t)(ns / 1000000000u);
		t.tv_nsec = (long)(ns % 1000000000u);
		while (!sw->stop && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&sw->cond, &sw->lock, &t);
		if (sw->stop)
			break;
		pthread_mutex_unlock(&sw->lock);
		(void)reap_cache_sweep(sw->c);
		pthread_mutex_lock(&sw->lock);
	}
	pthread_mutex_unlock(&sw->lock);
	return NULL;
}

/* Wake the thread and join it. */
static void sweeper_halt(reap_cache_sweeper *sw)
{
	/* Started in the parent of a fork: no thread here to stop (and its
	 * lock may have been held by it). The child must not use what it
	 * inherited; this only keeps a stray close from hanging. */
	if (sw->gen != reap__fork_gen)
		return;
	pthread_mutex_lock(&sw->lock);
	sw->stop = 1;
	pthread_cond_signal(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
	pthread_join(sw->thread, NULL);
}

static void sweeper_free(reap_cache_sweeper *sw)
{
	pthread_cond_destroy(&sw->cond);
	pthread_mutex_destroy(&sw->lock);
	reap_free(sw);
}

static void sweeper_cleanup(void *arg)
{
	reap_cache_sweeper *sw = arg;

	if (sw->c != NULL) {
		sweeper_halt(sw);
		sw->c->sweeper = NULL;
	}
	sweeper_free(sw);
}

int reap_cache_sweeper_start_at(reap_scope *s, reap_cache *c,
				uint64_t interval_ns, reap_cache_sweeper **out,
				const reap_site *site)
{
	reap_cache_sweeper *sw;
	pthread_condattr_t ca;
	sigset_t all, old;
	int rc;

	if (interval_ns == 0)
		return reap_raisef(-EINVAL, "reap_cache_sweeper_start: interval 0");
	if (c->sweeper != NULL)
		return reap_raisef(-EBUSY, "reap_cache_sweeper_start: the cache "
				   "has a sweeper already");
	sw = reap_malloc(sizeof *sw);
	if (sw == NULL)
		return -ENOMEM;
	memset(sw, 0, sizeof *sw);
	sw->c = c;
	sw->gen = reap__fork_gen;
	sw->interval_ns = interval_ns;
	pthread_mutex_init(&sw->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sw->cond, &ca);
	pthread_condattr_destroy(&ca);
	/* Registered before the thread starts, so that a failure leaves
	 * nothing running; the cleanup's handle is kept for stop. */
	rc = reap_defer_at(s, &type_sweeper, sweeper_cleanup, sw, &sw->handle, site);
	if (rc < 0) {
		sweeper_free(sw);
		return rc;
	}
	if (reap__fault_point()) {
		rc = -EAGAIN;
	} else {
		/* The sweeper takes no signal meant for the program. */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		rc = -pthread_create(&sw->thread, NULL, sweeper_main, sw);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	if (rc < 0) {
		sw->c = NULL; /* nothing to halt */
		reap_cleanup_cancel(sw->handle);
		sweeper_free(sw);
		return rc;
	}
	c->sweeper = sw;
	if (out != NULL)
		*out = sw;
	return 0;
}

void reap_cache_sweeper_stop(reap_cache_sweeper *sw)
{
	if (sw != NULL)
		(void)reap_cleanup_run(sw->handle);
}
