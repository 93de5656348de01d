/*
 * The cache under concurrency (built for ThreadSanitizer too).
 *
 * REAP_STRESS_THREADS workers (default 2) each run REAP_STRESS_ITERS
 * iterations (default 200000) of a mix of put (a new value, int or string
 * key among 256, random size and TTL), get (the value, if any, must not
 * have begun to close; some are kept a while in a ring, some are marked
 * unusable), remove and clear, on a cache of 64 entries and 4 shards with
 * a validity check, while a sweeper thread sweeps every millisecond and
 * a clock thread moves the injected clock. Eviction must never close a
 * value a worker holds: every value closes exactly once, only after its
 * last release, and the statistics add up.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../runner.h"

#define NKEYS 256
#define RING 4

struct conn {
	atomic_int closing;
	atomic_int usable;
};

static atomic_long made, closed, bad, hits;
static atomic_int running;
static _Atomic uint64_t fake_ns = 1;

static uint64_t fake_clock(void *ctx)
{
	(void)ctx;
	return atomic_load_explicit(&fake_ns, memory_order_relaxed);
}

static void conn_close(void *obj)
{
	struct conn *k = obj;

	if (atomic_exchange(&k->closing, 1) != 0)
		atomic_fetch_add(&bad, 1);
	atomic_fetch_add(&closed, 1);
}

static reap_obj_type conn_type = {
	.name = "stress-conn", .size = sizeof(struct conn), .close = conn_close};

static bool conn_ok(void *value, void *ctx)
{
	struct conn *k = value;

	(void)ctx;
	if (atomic_load(&k->closing))
		atomic_fetch_add(&bad, 1);
	return atomic_load(&k->usable);
}

static reap_cache *cache;
static long iters;

static void *worker(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 3;
	struct conn *ring[RING] = {0};

	for (long i = 0; i < iters; i++) {
		uint64_t r, k;
		char name[32];
		int str;

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		r = seed >> 24;
		k = (r >> 8) % NKEYS;
		str = k & 1;
		snprintf(name, sizeof name, "conn-%llu", (unsigned long long)k);
		switch (r % 16) {
		case 0: case 1: case 2: case 3: case 4: {
			struct conn *c;
			uint64_t ttl = (r >> 20) % 3 == 0 ? REAP_CACHE_TTL_NONE
							   : ((r >> 22) % 50 + 1) * 1000;
			size_t size = (size_t)((r >> 30) % 64 + 1);
			int rc;

			if (reap_obj_create(&conn_type, &c) != 0)
				test_fail(__FILE__, __LINE__, "create failed");
			atomic_store(&c->usable, 1);
			atomic_fetch_add(&made, 1);
			rc = str ? reap_cache_put_str(cache, name, c, size, ttl)
				 : reap_cache_put_int(cache, k, c, size, ttl);
			if (rc != 0)
				test_fail(__FILE__, __LINE__, "put: %d", rc);
			reap_release(c);
			break;
		}
		case 5:
			(void)(str ? reap_cache_remove_str(cache, name)
				   : reap_cache_remove_int(cache, k));
			break;
		case 6:
			if ((r >> 12) % 64 == 0)
				reap_cache_clear(cache);
			else if ((r >> 12) % 64 == 1)
				(void)reap_cache_sweep(cache);
			break;
		default: {
			struct conn *c = str ? reap_cache_get_str(cache, name)
					     : reap_cache_get_int(cache, k);

			if (c == NULL)
				break;
			atomic_fetch_add(&hits, 1);
			if (atomic_load(&c->closing))
				atomic_fetch_add(&bad, 1);
			if ((r >> 14) % 8 == 0)
				atomic_store(&c->usable, 0);
			if ((r >> 17) & 1) {
				struct conn **slot = &ring[(r >> 18) % RING];

				if (*slot != NULL) {
					if (atomic_load(&(*slot)->closing))
						atomic_fetch_add(&bad, 1);
					reap_release(*slot);
				}
				*slot = c;
			} else {
				reap_release(c);
			}
		}
		}
	}
	for (int i = 0; i < RING; i++)
		if (ring[i] != NULL)
			reap_release(ring[i]);
	return NULL;
}

static void *clock_thread(void *arg)
{
	(void)arg;
	while (atomic_load(&running)) {
		atomic_fetch_add_explicit(&fake_ns, 1000, memory_order_relaxed);
		usleep(50);
	}
	return NULL;
}

TEST(cache_concurrent_mix_with_sweeper)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	reap_cache_config cfg = {.max_count = 64, .max_bytes = 64 * 40,
				 .shards = 4, .valid = conn_ok};
	reap_cache_stat st;
	reap_scope *s;
	pthread_t w[64], ck;

	iters = test_env_long("REAP_STRESS_ITERS", 200000, 1, 100000000);
	reap_set_clock(fake_clock, NULL);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cache_open(s, &cfg, &cache));
	ASSERT_OK(reap_cache_sweeper_start(s, cache, 1000000, NULL));
	atomic_store(&running, 1);
	ASSERT_EQ_INT(pthread_create(&ck, NULL, clock_thread, NULL), 0);
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i), 0);
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_join(w[i], NULL), 0);
	atomic_store(&running, 0);
	ASSERT_EQ_INT(pthread_join(ck, NULL), 0);
	reap_cache_stats(cache, &st);
	printf("cache: %ld values; %llu hits, %llu misses; evicted: %llu capacity, "
	       "%llu ttl, %llu invalid, %llu explicit; %llu replaced; %llu sweeps\n",
	       atomic_load(&made), (unsigned long long)st.hits,
	       (unsigned long long)st.misses,
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_CAPACITY],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_TTL],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_INVALID],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_EXPLICIT],
	       (unsigned long long)st.replaced, (unsigned long long)st.sweeps);
	ASSERT_EQ_INT(st.hits, atomic_load(&hits));
	ASSERT_LE_INT(st.count, 64);
	ASSERT_LE_INT(st.bytes, 64 * 40);
	/* Every value put either is still in or left by one road. */
	uint64_t out = st.replaced;
	for (int r = 0; r < REAP_CACHE_EVICT_NREASONS; r++)
		out += st.evicted[r];
	ASSERT_EQ_INT(out + st.count, atomic_load(&made));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&bad), 0);
	ASSERT_EQ_INT(atomic_load(&closed), atomic_load(&made));
	reap_set_clock(NULL, NULL);
}
