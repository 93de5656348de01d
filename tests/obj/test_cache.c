/*
 * The cache: hits and misses, LRU and capacity by count and by bytes,
 * TTL with an injected clock (no test sleeps for real), the validity
 * check on get and on sweep, eviction that never closes a value in use,
 * statistics, and the sweeper thread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "../runner.h"

/* ------------------------------------------------------------------ */
/* Connections and a clock moved by hand                                */

static int closed_total;

struct conn {
	int id;
	int alive;  /* 1 until close */
	int usable; /* what the validity check answers */
	int *closed;
};

static void conn_close(void *obj)
{
	struct conn *k = obj;

	k->alive = 0;
	__atomic_add_fetch(&closed_total, 1, __ATOMIC_RELEASE); /* any thread */
	if (k->closed != NULL)
		(*k->closed)++;
}

static reap_obj_type conn_type = {
	.name = "conn", .size = sizeof(struct conn), .close = conn_close};

static struct conn *conn_new(int id)
{
	struct conn *k;

	ASSERT_OK(reap_obj_create(&conn_type, &k));
	k->id = id;
	k->alive = 1;
	k->usable = 1;
	return k;
}

static int checks;
static bool conn_ok(void *value, void *ctx)
{
	struct conn *k = value;

	(void)ctx;
	checks++;
	if (!k->alive)
		test_fail(__FILE__, __LINE__, "validity check on a closed conn");
	return k->usable;
}

static uint64_t fake_ns = 1000 * REAP_SEC;
static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&fake_ns, __ATOMIC_RELAXED);
}
static void use_fake_clock(void) { reap_set_clock(fake_clock, NULL); }
static void advance(uint64_t ns) { __atomic_add_fetch(&fake_ns, ns, __ATOMIC_RELAXED); }

static reap_cache *cache_new(reap_scope *s, const reap_cache_config *cfg)
{
	reap_cache *c;

	ASSERT_OK(reap_cache_open(s, cfg, &c));
	return c;
}

/* Put k under key and drop the caller's reference: the cache's is
 * then the only one. */
static void put_own(reap_cache *c, uint64_t key, struct conn *k, size_t size,
		    uint64_t ttl)
{
	ASSERT_OK(reap_cache_put_int(c, key, k, size, ttl));
	reap_release(k);
}

static bool has(reap_cache *c, uint64_t key)
{
	void *v = reap_cache_get_int(c, key);

	if (v != NULL)
		reap_release(v);
	return v != NULL;
}

static reap_cache_stat stats(reap_cache *c)
{
	reap_cache_stat st;

	reap_cache_stats(c, &st);
	return st;
}

/* ------------------------------------------------------------------ */

TEST(cache_put_get_hits_and_misses)
{
	reap_cache *c = cache_new(NULL, NULL);
	struct conn *a = conn_new(1), *b = conn_new(2), *g;
	reap_cache_stat st;

	ASSERT_OK(reap_cache_put_int(c, 1, a, 10, 0));
	ASSERT_OK(reap_cache_put_str(c, "1", b, 20, 0)); /* another key */
	ASSERT_EQ_INT(reap_obj_refs(a), 2);               /* ours + the cache's */
	ASSERT_EQ_SIZE(reap_cache_count(c), 2);
	g = reap_cache_get_int(c, 1);
	ASSERT_EQ_PTR(g, a);
	ASSERT_EQ_INT(reap_obj_refs(a), 3);
	reap_release(g);
	g = reap_cache_get_str(c, "1");
	ASSERT_EQ_PTR(g, b);
	reap_release(g);
	ASSERT_NULL(reap_cache_get_int(c, 2));
	ASSERT_NULL(reap_cache_get_str(c, "2"));
	ASSERT_NULL(reap_cache_get_str(c, "12"));
	st = stats(c);
	ASSERT_EQ_INT(st.hits, 2);
	ASSERT_EQ_INT(st.misses, 3);
	ASSERT_EQ_SIZE(st.count, 2);
	ASSERT_EQ_SIZE(st.bytes, 30);
	for (int r = 0; r < REAP_CACHE_EVICT_NREASONS; r++)
		ASSERT_EQ_INT(st.evicted[r], 0);
	reap_cache_close(c);
	ASSERT_EQ_INT(reap_obj_refs(a), 1);
	ASSERT_TRUE(a->alive && b->alive);
	reap_release(a);
	reap_release(b);
}

TEST(cache_open_settings)
{
	reap_cache_config bad = {.shards = 257};
	reap_cache *c = (reap_cache *)(uintptr_t)0x77;

	ASSERT_EQ_INT(reap_cache_open(NULL, &bad, &c), -EINVAL);
	ASSERT_EQ_PTR(c, (reap_cache *)(uintptr_t)0x77);
	for (unsigned sh = 0; sh <= 256; sh = sh ? sh * 2 + 1 : 1) {
		reap_cache_config cfg = {.shards = sh, .max_count = 5};
		reap_cache *k = cache_new(NULL, &cfg);

		for (int i = 0; i < 50; i++)
			put_own(k, (uint64_t)i, conn_new(i), 1, 0);
		ASSERT_EQ_SIZE(reap_cache_count(k), 5);
		reap_cache_close(k);
	}
}

/* The one rule: eviction drops the cache's reference only. */
TEST(cache_value_in_use_survives_eviction)
{
	reap_cache_config cfg = {.max_count = 1, .shards = 1};
	reap_cache *c = cache_new(NULL, &cfg);
	int closed = 0;
	struct conn *a = conn_new(1), *b = conn_new(2), *w;

	a->closed = &closed;
	put_own(c, 1, a, 1, 0);
	w = reap_cache_get_int(c, 1); /* a worker borrows it */
	ASSERT_EQ_PTR(w, a);
	put_own(c, 2, b, 1, 0);       /* evicts a: capacity */
	ASSERT_FALSE(has(c, 1));
	ASSERT_EQ_INT(stats(c).evicted[REAP_CACHE_EVICT_CAPACITY], 1);
	ASSERT_EQ_INT(closed, 0);     /* not under the worker */
	ASSERT_TRUE(w->alive);
	ASSERT_EQ_INT(reap_obj_refs(w), 1);
	reap_release(w);              /* returned: closed now, here */
	ASSERT_EQ_INT(closed, 1);
	reap_cache_close(c);
}

/* The same for every other way out: TTL, invalid, explicit, close. */
TEST(cache_value_in_use_survives_every_eviction)
{
	reap_cache_config cfg = {.valid = conn_ok};
	reap_scope *s;
	reap_cache *c;
	int closed = 0;
	struct conn *k[4], *w[4];

	use_fake_clock();
	ASSERT_OK(reap_scope_open(NULL, &s));
	c = cache_new(s, &cfg);
	for (int i = 0; i < 4; i++) {
		k[i] = conn_new(i);
		k[i]->closed = &closed;
		put_own(c, (uint64_t)i, k[i], 1, i == 0 ? REAP_SEC : 0);
		w[i] = reap_cache_get_int(c, (uint64_t)i);
		ASSERT_EQ_PTR(w[i], k[i]);
	}
	advance(2 * REAP_SEC);
	k[1]->usable = 0;
	ASSERT_EQ_SIZE(reap_cache_sweep(c), 2);   /* 0: TTL, 1: invalid */
	ASSERT_OK(reap_cache_remove_int(c, 2));   /* explicit */
	ASSERT_EQ_INT(reap_scope_close(s), 0);    /* 3: the cache's end */
	ASSERT_EQ_INT(closed, 0);
	for (int i = 0; i < 4; i++) {
		ASSERT_TRUE(w[i]->alive);
		ASSERT_EQ_INT(reap_obj_refs(w[i]), 1);
		reap_release(w[i]);
	}
	ASSERT_EQ_INT(closed, 4);
	reap_set_clock(NULL, NULL);
}

TEST(cache_lru_by_count)
{
	reap_cache_config cfg = {.max_count = 3, .shards = 1};
	reap_cache *c = cache_new(NULL, &cfg);
	int closed = 0;

	for (int i = 1; i <= 3; i++) {
		struct conn *k = conn_new(i);

		k->closed = &closed;
		put_own(c, (uint64_t)i, k, 1, 0);
	}
	ASSERT_TRUE(has(c, 1)); /* 1 is now the most recent: order 1 3 2 */
	put_own(c, 4, conn_new(4), 1, 0);
	ASSERT_EQ_INT(closed, 1); /* 2 went, closed: the cache held the last ref */
	ASSERT_FALSE(has(c, 2));
	put_own(c, 5, conn_new(5), 1, 0);
	ASSERT_FALSE(has(c, 3));
	ASSERT_TRUE(has(c, 1));
	ASSERT_TRUE(has(c, 4));
	ASSERT_TRUE(has(c, 5));
	ASSERT_EQ_SIZE(reap_cache_count(c), 3);
	ASSERT_EQ_INT(stats(c).evicted[REAP_CACHE_EVICT_CAPACITY], 2);
	reap_cache_close(c);
}

TEST(cache_capacity_by_bytes)
{
	reap_cache_config cfg = {.max_bytes = 100, .shards = 1};
	reap_cache *c = cache_new(NULL, &cfg);
	struct conn *big = conn_new(9);
	reap_cache_stat st;

	put_own(c, 1, conn_new(1), 40, 0);
	put_own(c, 2, conn_new(2), 40, 0);
	ASSERT_EQ_SIZE(stats(c).bytes, 80);
	put_own(c, 3, conn_new(3), 30, 0); /* 110: 1 goes */
	ASSERT_FALSE(has(c, 1));
	ASSERT_EQ_SIZE(stats(c).bytes, 70);
	put_own(c, 4, conn_new(4), 100, 0); /* everything else goes */
	st = stats(c);
	ASSERT_EQ_SIZE(st.count, 1);
	ASSERT_EQ_SIZE(st.bytes, 100);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_CAPACITY], 3);
	ASSERT_TRUE(has(c, 4));
	/* Bigger than the whole cache: refused, nothing changes. */
	ASSERT_EQ_INT(reap_cache_put_int(c, 5, big, 101, 0), -E2BIG);
	ASSERT_EQ_INT(reap_obj_refs(big), 1);
	ASSERT_TRUE(has(c, 4));
	/* Replacing with a smaller size frees the difference. */
	ASSERT_OK(reap_cache_put_int(c, 4, big, 10, 0));
	ASSERT_EQ_SIZE(stats(c).bytes, 10);
	ASSERT_EQ_INT(stats(c).replaced, 1);
	reap_release(big);
	reap_cache_close(c);
}

/* Capacity is global over the shards: never above max_count, and every
 * evicted value (held only by the cache) is closed. */
TEST(cache_capacity_is_global_across_shards)
{
	reap_cache_config cfg = {.max_count = 100, .max_bytes = 0, .shards = 16};
	reap_cache *c = cache_new(NULL, &cfg);
	int closed = 0;
	reap_cache_stat st;

	for (int i = 0; i < 5000; i++) {
		struct conn *k = conn_new(i);

		k->closed = &closed;
		put_own(c, (uint64_t)i * 7919, k, 1, 0);
		ASSERT_LE_INT(reap_cache_count(c), 100);
	}
	st = stats(c);
	ASSERT_EQ_SIZE(st.count, 100);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_CAPACITY], 4900);
	ASSERT_EQ_INT(closed, 4900);
	/* The newest entry always stays. */
	ASSERT_TRUE(has(c, (uint64_t)4999 * 7919));
	reap_cache_close(c);
	ASSERT_EQ_INT(closed, 5000);
}

TEST(cache_ttl_with_injected_clock)
{
	reap_cache_config cfg = {.ttl_ns = 10 * REAP_SEC};
	reap_cache *c;
	int closed = 0;
	struct conn *a = conn_new(1), *b = conn_new(2), *k3 = conn_new(3);

	use_fake_clock();
	c = cache_new(NULL, &cfg);
	a->closed = b->closed = k3->closed = &closed;
	put_own(c, 1, a, 1, REAP_CACHE_TTL_DEFAULT);   /* 10 s */
	put_own(c, 2, b, 1, REAP_CACHE_TTL_NONE);      /* forever */
	put_own(c, 3, k3, 1, REAP_SEC);                /* 1 s */
	advance(REAP_SEC - 1);
	ASSERT_TRUE(has(c, 3));                        /* not yet */
	advance(1);
	ASSERT_FALSE(has(c, 3));                       /* 1 s: gone */
	ASSERT_EQ_INT(closed, 1);
	advance(8 * REAP_SEC);
	ASSERT_TRUE(has(c, 1));                        /* a hit does not renew */
	advance(REAP_SEC);
	ASSERT_FALSE(has(c, 1));
	advance(1000 * REAP_SEC);
	ASSERT_TRUE(has(c, 2));
	reap_cache_stat st = stats(c);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_TTL], 2);
	ASSERT_EQ_INT(st.hits, 3);
	ASSERT_EQ_INT(st.misses, 2);
	ASSERT_EQ_INT(closed, 2);
	reap_cache_close(c);
	ASSERT_EQ_INT(closed, 3);
	reap_set_clock(NULL, NULL);
}

/* A TTL so long that now + ttl overflows never wraps into the past. */
TEST(cache_ttl_saturates)
{
	reap_cache *c = cache_new(NULL, NULL);

	use_fake_clock();
	put_own(c, 1, conn_new(1), 1, UINT64_MAX - 1);
	advance(REAP_SEC);
	ASSERT_TRUE(has(c, 1));
	reap_cache_close(c);
	reap_set_clock(NULL, NULL);
}

TEST(cache_invalid_evicted_on_get)
{
	reap_cache_config cfg = {.valid = conn_ok};
	reap_cache *c = cache_new(NULL, &cfg);
	int closed = 0;
	struct conn *a = conn_new(1);

	a->closed = &closed;
	put_own(c, 1, a, 1, 0);
	checks = 0;
	ASSERT_TRUE(has(c, 1));
	ASSERT_EQ_INT(checks, 1);
	a->usable = 0;
	ASSERT_NULL(reap_cache_get_int(c, 1));
	ASSERT_EQ_INT(closed, 1); /* the cache held the last reference */
	reap_cache_stat st = stats(c);
	ASSERT_EQ_INT(st.hits, 1);
	ASSERT_EQ_INT(st.misses, 1);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_INVALID], 1);
	ASSERT_EQ_SIZE(st.count, 0);
	reap_cache_close(c);
}

/* The sweep, with more entries than one batch of checks, and a check
 * that mutates the cache while the sweep has dropped its lock. */
static reap_cache *mut_cache;
static int mut_next = 100000;
static bool conn_ok_mutating(void *value, void *ctx)
{
	struct conn *k = value;

	(void)ctx;
	checks++;
	if (!k->alive)
		test_fail(__FILE__, __LINE__, "validity check on a closed conn");
	if (k->id % 5 == 0) {
		/* Remove a neighbour (maybe the sweep's cursor) and add one. */
		(void)reap_cache_remove_int(mut_cache, (uint64_t)k->id + 1);
		struct conn *n = conn_new(mut_next);
		if (reap_cache_put_int(mut_cache, (uint64_t)mut_next++, n, 1, 0) != 0)
			test_fail(__FILE__, __LINE__, "put in check failed");
		reap_release(n);
		void *g = reap_cache_get_int(mut_cache, (uint64_t)k->id + 2);
		if (g != NULL)
			reap_release(g);
	}
	return k->usable;
}

TEST(cache_sweep_evicts_expired_and_invalid)
{
	reap_cache_config cfg = {.valid = conn_ok, .shards = 4};
	reap_cache *c;
	int closed = 0, n = 1000, expect = 0;
	size_t got;

	use_fake_clock();
	c = cache_new(NULL, &cfg);
	for (int i = 0; i < n; i++) {
		struct conn *k = conn_new(i);

		k->closed = &closed;
		k->usable = i % 7 != 0;
		expect += i % 7 == 0 || i % 11 == 0;
		put_own(c, (uint64_t)i, k, 1, i % 11 == 0 ? REAP_SEC : 0);
	}
	advance(2 * REAP_SEC);
	checks = 0;
	got = reap_cache_sweep(c);
	ASSERT_EQ_SIZE(got, (size_t)expect);
	ASSERT_EQ_INT(closed, expect);
	/* Expired entries are not checked. */
	ASSERT_EQ_INT(checks, n - (n + 10) / 11);
	reap_cache_stat st = stats(c);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_TTL], (n + 10) / 11);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_INVALID],
		      expect - (n + 10) / 11);
	ASSERT_EQ_INT(st.sweeps, 1);
	ASSERT_EQ_SIZE(st.count, (size_t)(n - expect));
	ASSERT_EQ_SIZE(reap_cache_sweep(c), 0); /* nothing left to do */
	reap_cache_close(c);
	ASSERT_EQ_INT(closed, n);
	reap_set_clock(NULL, NULL);
}

TEST(cache_sweep_while_the_check_mutates_the_cache)
{
	reap_cache_config cfg = {.valid = conn_ok_mutating, .shards = 2};
	reap_cache *c = cache_new(NULL, &cfg);
	int closed = 0;

	mut_cache = c;
	for (int i = 0; i < 500; i++) {
		struct conn *k = conn_new(i);

		k->closed = &closed;
		k->usable = i % 3 != 0;
		put_own(c, (uint64_t)i, k, 1, 0);
	}
	checks = 0;
	(void)reap_cache_sweep(c);
	ASSERT_GE_INT(checks, 100);
	/* Every unusable conn that the check did not remove is gone. */
	for (int i = 0; i < 500; i += 3)
		ASSERT_FALSE(has(c, (uint64_t)i));
	reap_cache_close(c);
}

TEST(cache_replace_remove_clear)
{
	reap_cache *c = cache_new(NULL, NULL);
	int closed = 0;
	struct conn *a = conn_new(1), *b = conn_new(2);
	reap_cache_stat st;

	a->closed = b->closed = &closed;
	put_own(c, 1, a, 5, 0);
	put_own(c, 1, b, 7, 0); /* a is replaced, released: closed */
	ASSERT_EQ_INT(closed, 1);
	ASSERT_OK(reap_cache_remove_int(c, 1));
	ASSERT_EQ_INT(reap_cache_remove_int(c, 1), -ENOENT);
	ASSERT_EQ_INT(reap_cache_remove_str(c, "1"), -ENOENT);
	ASSERT_EQ_INT(closed, 2);
	for (int i = 0; i < 20; i++) {
		char key[16];
		struct conn *k = conn_new(i);

		snprintf(key, sizeof key, "c%d", i);
		ASSERT_OK(reap_cache_put_str(c, key, k, 1, 0));
		reap_release(k);
	}
	ASSERT_OK(reap_cache_remove_str(c, "c3"));
	reap_cache_clear(c);
	st = stats(c);
	ASSERT_EQ_SIZE(st.count, 0);
	ASSERT_EQ_SIZE(st.bytes, 0);
	ASSERT_EQ_INT(st.replaced, 1);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_EXPLICIT], 21);
	ASSERT_EQ_INT(closed_total, 22);
	reap_cache_close(c);
}

/* Every statistic at once, with exact values. */
TEST(cache_stats_by_reason)
{
	reap_cache_config cfg = {.max_count = 4, .shards = 1, .valid = conn_ok};
	reap_cache *c;
	reap_cache_stat st;
	struct conn *k[8];

	use_fake_clock();
	c = cache_new(NULL, &cfg);
	for (int i = 0; i < 8; i++) {
		k[i] = conn_new(i);
		ASSERT_OK(reap_cache_put_int(c, (uint64_t)i, k[i], 1,
					     i == 5 ? REAP_SEC : 0));
	}
	/* 0..3 evicted by capacity; 4..7 in */
	ASSERT_FALSE(has(c, 0));               /* miss */
	ASSERT_TRUE(has(c, 4));                /* hit */
	k[6]->usable = 0;
	ASSERT_FALSE(has(c, 6));               /* miss, invalid */
	advance(REAP_SEC);
	ASSERT_FALSE(has(c, 5));               /* miss, TTL */
	ASSERT_OK(reap_cache_remove_int(c, 7)); /* explicit */
	ASSERT_OK(reap_cache_put_int(c, 4, k[4], 1, 0)); /* replaced */
	(void)reap_cache_sweep(c);
	st = stats(c);
	ASSERT_EQ_INT(st.hits, 1);
	ASSERT_EQ_INT(st.misses, 3);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_CAPACITY], 4);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_TTL], 1);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_INVALID], 1);
	ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_EXPLICIT], 1);
	ASSERT_EQ_INT(st.replaced, 1);
	ASSERT_EQ_INT(st.sweeps, 1);
	ASSERT_EQ_SIZE(st.count, 1);
	ASSERT_EQ_SIZE(st.bytes, 1);
	reap_cache_close(c);
	for (int i = 0; i < 8; i++)
		reap_release(k[i]);
	reap_set_clock(NULL, NULL);
}

/* Closing the owner closes the cache, which releases every value; the
 * ledger names the cache while it lives. */
TEST(cache_owned_by_scope)
{
	reap_scope *s;
	reap_cache *c;
	int closed = 0;
	reap_ledger_stat st;
	struct conn *kept = conn_new(99);

	ASSERT_OK(reap_scope_open(NULL, &s));
	c = cache_new(s, NULL);
	for (int i = 0; i < 10; i++) {
		struct conn *k = conn_new(i);

		k->closed = &closed;
		put_own(c, (uint64_t)i, k, 1, 0);
	}
	ASSERT_OK(reap_cache_put_int(c, 99, kept, 1, 0));
	ASSERT_OK(reap_ledger_stats("cache", &st));
	ASSERT_EQ_INT(st.live, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(closed, 10);
	ASSERT_TRUE(kept->alive);
	ASSERT_EQ_INT(reap_obj_refs(kept), 1);
	reap_release(kept);
	ASSERT_OK(reap_ledger_stats("cache", &st));
	ASSERT_EQ_INT(st.live, 0);
}

/* ------------------------------------------------------------------ */
/* The sweeper                                                          */

static double mono_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

TEST(cache_sweeper_sweeps_periodically)
{
	reap_cache_config cfg = {.ttl_ns = REAP_SEC};
	reap_scope *s;
	reap_cache *c;
	double t0;

	use_fake_clock();
	ASSERT_OK(reap_scope_open(NULL, &s));
	c = cache_new(s, &cfg);
	for (int i = 0; i < 10; i++)
		put_own(c, (uint64_t)i, conn_new(i), 1, 0);
	ASSERT_OK(reap_cache_sweeper_start(s, c, 1000000 /* 1 ms */, NULL));
	advance(2 * REAP_SEC); /* the TTL passes on the injected clock */
	/* Wait (for the thread, not for the TTL) until a sweep has evicted
	 * and closed everything. */
	t0 = mono_s();
	while ((reap_cache_count(c) != 0 || stats(c).sweeps == 0 ||
		__atomic_load_n(&closed_total, __ATOMIC_ACQUIRE) != 10) &&
	       mono_s() - t0 < 10)
		usleep(1000);
	ASSERT_EQ_SIZE(reap_cache_count(c), 0);
	ASSERT_GE_INT(stats(c).sweeps, 1);
	ASSERT_EQ_INT(stats(c).evicted[REAP_CACHE_EVICT_TTL], 10);
	/* closed on the sweeper thread */
	ASSERT_EQ_INT(__atomic_load_n(&closed_total, __ATOMIC_ACQUIRE), 10);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	reap_set_clock(NULL, NULL);
}

/* An hour between sweeps; closing the scope must not wait for it. */
TEST(cache_sweeper_stops_promptly_on_scope_close)
{
	reap_scope *s, *outer;
	reap_cache *c;
	reap_cache_sweeper *sw;
	reap_ledger_stat st;
	double t0, took;

	ASSERT_OK(reap_scope_open(NULL, &outer));
	c = cache_new(outer, NULL);
	put_own(c, 1, conn_new(1), 1, 0);
	ASSERT_OK(reap_scope_open(outer, &s));
	ASSERT_OK(reap_cache_sweeper_start(s, c, 3600 * REAP_SEC, &sw));
	ASSERT_NOT_NULL(sw);
	ASSERT_OK(reap_ledger_stats("cache sweeper", &st));
	ASSERT_EQ_INT(st.live, 1);
	usleep(20000); /* let it reach its wait */
	t0 = mono_s();
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	took = mono_s() - t0;
	ASSERT_TRUE(took < 0.5);
	ASSERT_OK(reap_ledger_stats("cache sweeper", &st));
	ASSERT_EQ_INT(st.live, 0);
	/* The cache can have another one now. */
	ASSERT_OK(reap_cache_sweeper_start(outer, c, 3600 * REAP_SEC, &sw));
	reap_cache_sweeper_stop(sw);
	ASSERT_EQ_INT(stats(c).sweeps, 0);
	ASSERT_EQ_INT(reap_scope_close(outer), 0);
}

/* The cache closes before the sweeper's scope: it stops the thread
 * itself; the scope later frees what is left. */
TEST(cache_close_stops_its_sweeper)
{
	reap_scope *s;
	reap_cache *c;
	double t0;

	ASSERT_OK(reap_scope_open(NULL, &s));
	c = cache_new(NULL, NULL);
	put_own(c, 1, conn_new(1), 1, 0);
	ASSERT_OK(reap_cache_sweeper_start(s, c, 3600 * REAP_SEC, NULL));
	ASSERT_EQ_INT(reap_cache_sweeper_start(s, c, REAP_SEC, NULL), -EBUSY);
	ASSERT_EQ_INT(reap_cache_sweeper_start(s, c, 0, NULL), -EINVAL);
	t0 = mono_s();
	reap_cache_close(c);
	ASSERT_TRUE(mono_s() - t0 < 0.5);
	ASSERT_EQ_INT(closed_total, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}
