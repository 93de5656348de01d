/*
 * The cache: sharded hash tables with per-shard LRU lists, a global
 * capacity, TTLs, a validity check, and a sweeper thread.
 *
 * The rules it keeps:
 *
 * 1. The cache holds exactly one reference to the value of each entry in
 *    its tables. An entry is unlinked (from its table and LRU list) only
 *    under its shard lock, and the unlinker then releases that reference
 *    and frees the entry, always after unlocking: a release may run the
 *    value's close, which may take any lock or call the cache.
 *
 * 2. No user code runs under a shard lock: the validity check runs on a
 *    reference the caller took under the lock, after unlocking. An entry
 *    it condemns is looked up again by its (hash, seq) pair, seq being
 *    unique within the shard, so an entry replaced or evicted meanwhile
 *    is never taken for it.
 *
 * 3. The capacity is global: count and bytes are atomic sums kept next to
 *    the per-shard ones. A put over capacity evicts from the tail of its
 *    own shard (never the entry it added), then from the other shards one
 *    lock at a time: no thread ever holds two shard locks.
 *
 * 4. A sweep walks each shard from its LRU tail toward its head with a
 *    cursor kept in the shard, which every unlink fixes up, so the walk
 *    can drop the lock between batches. Entries visited in this sweep
 *    carry its epoch and are skipped if moved ahead of the cursor. One
 *    sweep runs at a time (sweep_lock).
 *
 * The hit path takes one shard lock, makes no allocation, reads the clock
 * only for an entry that has a TTL, and moves the entry to the front.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "obj_internal.h"

#define MAX_SHARDS 256
#define MIN_BUCKETS 8
#define MAX_PRESIZE (1u << 16)
#define BATCH 32
#define NEVER UINT64_MAX

struct centry {
	struct centry *hnext;      /* hash chain; the dead list once unlinked */
	struct centry *prev, *next; /* LRU: prev toward the head (newest) */
	void *value;
	uint64_t hash;
	uint64_t ikey;
	uint64_t expires; /* reap_now_ns() deadline, or NEVER */
	uint64_t seq;
	size_t size;
	uint32_t klen;  /* 0: integer key; else strlen + 1 */
	uint32_t epoch; /* the last sweep that visited it */
	char skey[];
};

struct cshard {
	pthread_mutex_t lock;
	struct centry **tab;
	size_t mask, n, bytes;
	struct centry *head, *tail;
	struct centry *cursor; /* the sweep's next entry (rule 4) */
	uint64_t seq;
	uint32_t epoch;
	/* statistics, under the lock */
	uint64_t hits, misses, replaced;
	uint64_t evicted[REAP_CACHE_EVICT_NREASONS];
} __attribute__((aligned(64)));

struct reap_cache {
	size_t max_count, max_bytes;
	uint64_t ttl_ns;
	reap_cache_valid_fn valid;
	void *valid_ctx;
	unsigned nshards, shift;
	int bounded; /* max_count or max_bytes: keep the global sums */
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
/* Keys                                                                 */

struct key {
	const char *s;
	uint64_t i;
	uint32_t klen;
	uint64_t hash;
};

static inline uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static inline struct key key_int(uint64_t i)
{
	struct key k = {NULL, i, 0, mix64(i)};

	return k;
}

static struct key key_str(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		h = (h ^ (unsigned char)s[n]) * UINT64_C(0x100000001b3);
	struct key k = {s, 0, (uint32_t)(n + 1), mix64(h ^ n)};
	return k;
}

static inline int key_eq(const struct centry *e, const struct key *k)
{
	if (e->hash != k->hash || e->klen != k->klen)
		return 0;
	return k->klen == 0 ? e->ikey == k->i : memcmp(e->skey, k->s, k->klen) == 0;
}

static inline struct cshard *shard_of(reap_cache *c, uint64_t hash)
{
	return &c->shards[c->shift < 64 ? hash >> c->shift : 0];
}

/* ------------------------------------------------------------------ */
/* Shards (every function here runs under the shard lock)               */

static inline struct centry *find(struct cshard *sh, const struct key *k)
{
	struct centry *e = sh->tab[k->hash & sh->mask];

	while (e != NULL && !key_eq(e, k))
		e = e->hnext;
	return e;
}

static inline void lru_unlink(struct cshard *sh, struct centry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		sh->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
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
	struct centry **pp = &sh->tab[e->hash & sh->mask];

	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	if (sh->cursor == e)
		sh->cursor = e->prev;
	lru_unlink(sh, e);
	sh->n--;
	sh->bytes -= e->size;
	if (c->bounded) {
		/* Relaxed: sums read as snapshots; the shard lock orders
		 * the rest. */
		atomic_fetch_sub_explicit(&c->count, 1, memory_order_relaxed);
		atomic_fetch_sub_explicit(&c->bytes, e->size, memory_order_relaxed);
	}
	e->hnext = *dead;
	*dead = e;
}

/* Double the table; a failure is benign (the chains grow longer). */
static void grow(struct cshard *sh)
{
	size_t nb = (sh->mask + 1) * 2;
	struct centry **t = reap_calloc(nb, sizeof *t);

	if (t == NULL)
		return;
	for (size_t i = 0; i <= sh->mask; i++) {
		struct centry *e = sh->tab[i], *next;

		for (; e != NULL; e = next) {
			next = e->hnext;
			e->hnext = t[e->hash & (nb - 1)];
			t[e->hash & (nb - 1)] = e;
		}
	}
	reap_free(sh->tab);
	sh->tab = t;
	sh->mask = nb - 1;
}

static inline int over(reap_cache *c)
{
	return (c->max_count != 0 &&
		atomic_load_explicit(&c->count, memory_order_relaxed) > c->max_count) ||
	       (c->max_bytes != 0 &&
		atomic_load_explicit(&c->bytes, memory_order_relaxed) > c->max_bytes);
}

/* Evict from sh's tail, never keep, while the cache is over capacity. */
static void evict_over(reap_cache *c, struct cshard *sh, struct centry *keep,
		       struct centry **dead)
{
	while (over(c)) {
		struct centry *e = sh->tail;

		if (e != NULL && e == keep)
			e = e->prev;
		if (e == NULL)
			return;
		sh->evicted[REAP_CACHE_EVICT_CAPACITY]++;
		unlink_entry(c, sh, e, dead);
	}
}

/* Drop the cache's references, outside every lock (rule 1). */
static size_t bury(struct centry *dead)
{
	size_t n = 0;

	while (dead != NULL) {
		struct centry *next = dead->hnext;

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
	for (unsigned i = 0; i < c->nshards; i++) {
		pthread_mutex_destroy(&c->shards[i].lock);
		reap_free(c->shards[i].tab);
	}
	pthread_mutex_destroy(&c->sweep_lock);
	reap_free(c->base);
}

/* Detach every entry of every shard; no statistics. */
static struct centry *take_all(reap_cache *c, int explicit)
{
	struct centry *dead = NULL;

	for (unsigned i = 0; i < c->nshards; i++) {
		struct cshard *sh = &c->shards[i];

		pthread_mutex_lock(&sh->lock);
		if (explicit)
			sh->evicted[REAP_CACHE_EVICT_EXPLICIT] += sh->n;
		while (sh->head != NULL)
			unlink_entry(c, sh, sh->head, &dead);
		pthread_mutex_unlock(&sh->lock);
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
		size_t per = cfg->max_count / nshards + 1;

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
		pthread_mutex_init(&sh->lock, NULL);
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
	while (i-- > 0) {
		pthread_mutex_destroy(&c->shards[i].lock);
		reap_free(c->shards[i].tab);
	}
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

static int put(reap_cache *c, const struct key *k, void *obj, size_t size,
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
	e->ikey = k->i;
	e->size = size;
	e->klen = k->klen;
	e->epoch = 0;
	if (k->klen != 0)
		memcpy(e->skey, k->s, k->klen);

	pthread_mutex_lock(&sh->lock);
	if ((old = find(sh, k)) != NULL) {
		sh->replaced++;
		unlink_entry(c, sh, old, &dead);
	}
	if (sh->n >= sh->mask + 1)
		grow(sh);
	e->seq = ++sh->seq;
	e->hnext = sh->tab[k->hash & sh->mask];
	sh->tab[k->hash & sh->mask] = e;
	lru_push(sh, e);
	sh->n++;
	sh->bytes += size;
	if (c->bounded) {
		atomic_fetch_add_explicit(&c->count, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&c->bytes, size, memory_order_relaxed);
	}
	evict_over(c, sh, e, &dead);
	pthread_mutex_unlock(&sh->lock);

	/* Still over: the rest of the excess lives in other shards. */
	if (over(c) && c->nshards > 1) {
		unsigned start = atomic_fetch_add_explicit(&c->rover, 1,
							   memory_order_relaxed);

		for (unsigned j = 0; j < c->nshards && over(c); j++) {
			struct cshard *o = &c->shards[(start + j) & (c->nshards - 1)];

			if (o == sh)
				continue;
			pthread_mutex_lock(&o->lock);
			evict_over(c, o, NULL, &dead);
			pthread_mutex_unlock(&o->lock);
		}
	}
	bury(dead);
	return 0;
}

int reap_cache_put_int(reap_cache *c, uint64_t key, void *obj, size_t size,
		       uint64_t ttl_ns)
{
	struct key k = key_int(key);

	return put(c, &k, obj, size, ttl_ns);
}

int reap_cache_put_str(reap_cache *c, const char *key, void *obj, size_t size,
		       uint64_t ttl_ns)
{
	struct key k = key_str(key);

	return put(c, &k, obj, size, ttl_ns);
}

/* The entry of shard sh with (hash, seq), if still there. Under the lock. */
static struct centry *find_seq(struct cshard *sh, uint64_t hash, uint64_t seq)
{
	struct centry *e = sh->tab[hash & sh->mask];

	while (e != NULL && e->seq != seq)
		e = e->hnext;
	return e;
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

static void *get(reap_cache *c, const struct key *k)
{
	struct cshard *sh = shard_of(c, k->hash);
	struct centry *e, *dead = NULL;
	uint64_t seq;
	void *v;

	pthread_mutex_lock(&sh->lock);
	e = find(sh, k);
	if (unlikely(e == NULL)) {
		sh->misses++;
		pthread_mutex_unlock(&sh->lock);
		return NULL;
	}
	if (e->expires != NEVER && reap_now_ns() >= e->expires) {
		sh->misses++;
		sh->evicted[REAP_CACHE_EVICT_TTL]++;
		unlink_entry(c, sh, e, &dead);
		pthread_mutex_unlock(&sh->lock);
		bury(dead);
		return NULL;
	}
	v = reap_acquire(e->value);
	if (e != sh->head) {
		lru_unlink(sh, e);
		lru_push(sh, e);
	}
	sh->hits++;
	if (likely(c->valid == NULL)) {
		pthread_mutex_unlock(&sh->lock);
		return v;
	}
	seq = e->seq;
	pthread_mutex_unlock(&sh->lock);

	if (c->valid(v, c->valid_ctx))
		return v;
	pthread_mutex_lock(&sh->lock);
	sh->hits--;
	sh->misses++;
	condemn(c, sh, k->hash, seq, &dead);
	pthread_mutex_unlock(&sh->lock);
	bury(dead);
	reap_release(v);
	return NULL;
}

void *reap_cache_get_int(reap_cache *c, uint64_t key)
{
	struct key k = key_int(key);

	return get(c, &k);
}

void *reap_cache_get_str(reap_cache *c, const char *key)
{
	struct key k = key_str(key);

	return get(c, &k);
}

static int remove_key(reap_cache *c, const struct key *k)
{
	struct cshard *sh = shard_of(c, k->hash);
	struct centry *e, *dead = NULL;

	pthread_mutex_lock(&sh->lock);
	e = find(sh, k);
	if (e != NULL) {
		sh->evicted[REAP_CACHE_EVICT_EXPLICIT]++;
		unlink_entry(c, sh, e, &dead);
	}
	pthread_mutex_unlock(&sh->lock);
	if (e == NULL)
		return -ENOENT;
	bury(dead);
	return 0;
}

int reap_cache_remove_int(reap_cache *c, uint64_t key)
{
	struct key k = key_int(key);

	return remove_key(c, &k);
}

int reap_cache_remove_str(reap_cache *c, const char *key)
{
	struct key k = key_str(key);

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

	pthread_mutex_lock(&sh->lock);
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
		pthread_mutex_unlock(&sh->lock);
		/* Rule 2: the check runs unlocked, on our own references. */
		for (size_t i = 0; i < nb; i++)
			batch[i].bad = !c->valid(batch[i].v, c->valid_ctx);
		pthread_mutex_lock(&sh->lock);
		for (size_t i = 0; i < nb; i++) {
			struct centry *before = dead;

			if (!batch[i].bad)
				continue;
			condemn(c, sh, batch[i].hash, batch[i].seq, &dead);
			evicted += dead != before;
		}
		pthread_mutex_unlock(&sh->lock);
		/* Our references, then the cache's (rule 1). */
		for (size_t i = 0; i < nb; i++)
			reap_release(batch[i].v);
		bury(dead);
		dead = NULL;
		pthread_mutex_lock(&sh->lock);
		if (done)
			break;
	}
	sh->cursor = NULL;
	pthread_mutex_unlock(&sh->lock);
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

size_t reap_cache_count(const reap_cache *c)
{
	size_t n = 0;

	if (c->bounded)
		return atomic_load_explicit(&c->count, memory_order_relaxed);
	for (unsigned i = 0; i < c->nshards; i++) {
		pthread_mutex_lock(&c->shards[i].lock);
		n += c->shards[i].n;
		pthread_mutex_unlock(&c->shards[i].lock);
	}
	return n;
}

void reap_cache_stats(reap_cache *c, reap_cache_stat *out)
{
	memset(out, 0, sizeof *out);
	for (unsigned i = 0; i < c->nshards; i++) {
		struct cshard *sh = &c->shards[i];

		pthread_mutex_lock(&sh->lock);
		out->hits += sh->hits;
		out->misses += sh->misses;
		out->replaced += sh->replaced;
		for (int r = 0; r < REAP_CACHE_EVICT_NREASONS; r++)
			out->evicted[r] += sh->evicted[r];
		out->count += sh->n;
		out->bytes += sh->bytes;
		pthread_mutex_unlock(&sh->lock);
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
