/*
 * The weak-value map under concurrency (built for ThreadSanitizer too).
 *
 * get_races_death: REAP_STRESS_THREADS writer threads (default 2) each
 * run REAP_STRESS_ITERS iterations (default 200000) of: create a value,
 * put it under one of 64 keys (int or string), and drop it, so that it
 * dies at once (or later, from a ring of values each writer keeps for a
 * while), its entry vanishing from the death callback. Reader threads
 * get the same keys meanwhile: a get either fails or returns a value
 * whose close has not begun (close sets a flag), and keeps it alive
 * while it holds it. Another thread removes keys and walks the map with
 * foreach. At the end every value closed exactly once and the map is
 * empty.
 *
 * destroy_races_death: rounds in which a map is destroyed while the
 * values in it die on other threads.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "../runner.h"

#define NKEYS 64
#define RING 8

struct val {
	atomic_int closing;
	uint64_t key;
};

static atomic_long made, closed, bad, got, walked;
static atomic_int writers_left;

static void val_close(void *obj)
{
	struct val *v = obj;

	if (atomic_exchange(&v->closing, 1) != 0)
		atomic_fetch_add(&bad, 1);
	atomic_fetch_add(&closed, 1);
}

static reap_obj_type val_type = {
	.name = "stress-val", .size = sizeof(struct val), .close = val_close};

static reap_wmap *map;
static long iters;

static void key_name(char *buf, size_t len, uint64_t k)
{
	snprintf(buf, len, "key-%llu", (unsigned long long)k);
}

static void *writer(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg * 0x9e3779b97f4a7c15u + 1;
	struct val *ring[RING] = {0};

	for (long i = 0; i < iters; i++) {
		struct val *v;
		uint64_t k;
		char name[32];

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		k = (seed >> 33) % NKEYS;
		if (reap_obj_create(&val_type, &v) != 0)
			test_fail(__FILE__, __LINE__, "create failed");
		atomic_fetch_add(&made, 1);
		v->key = k;
		if (k & 1) {
			key_name(name, sizeof name, k);
			if (reap_wmap_put_str(map, name, v) != 0)
				test_fail(__FILE__, __LINE__, "put failed");
		} else if (reap_wmap_put_int(map, k, v) != 0) {
			test_fail(__FILE__, __LINE__, "put failed");
		}
		/* Keep some alive for a while, drop the others now. */
		if ((seed >> 20) & 1) {
			struct val **slot = &ring[(seed >> 21) % RING];

			if (*slot != NULL)
				reap_release(*slot);
			*slot = v;
		} else {
			reap_release(v);
		}
	}
	for (int i = 0; i < RING; i++)
		if (ring[i] != NULL)
			reap_release(ring[i]);
	atomic_fetch_sub(&writers_left, 1);
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t seed = (uint64_t)(uintptr_t)arg + 77;

	while (atomic_load(&writers_left) > 0) {
		struct val *v;
		uint64_t k;
		char name[32];

		seed = seed * 6364136223846793005u + 1442695040888963407u;
		k = (seed >> 33) % NKEYS;
		if (k & 1) {
			key_name(name, sizeof name, k);
			v = reap_wmap_get_str(map, name);
		} else {
			v = reap_wmap_get_int(map, k);
		}
		if (v == NULL)
			continue;
		atomic_fetch_add(&got, 1);
		if (atomic_load(&v->closing) || v->key != k)
			atomic_fetch_add(&bad, 1);
		reap_release(v);
	}
	return NULL;
}

static int walk_fn(const char *skey, uint64_t ikey, void *value, void *ctx)
{
	struct val *v = value;

	(void)skey;
	(void)ikey;
	(void)ctx;
	if (atomic_load(&v->closing))
		atomic_fetch_add(&bad, 1);
	atomic_fetch_add(&walked, 1);
	return 0;
}

static void *walker(void *arg)
{
	uint64_t seed = 5;

	(void)arg;
	while (atomic_load(&writers_left) > 0) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		if (reap_wmap_foreach(map, walk_fn, NULL) != 0)
			atomic_fetch_add(&bad, 1);
		(void)reap_wmap_remove_int(map, ((seed >> 33) % NKEYS) & ~1u);
		(void)reap_wmap_count(map);
	}
	return NULL;
}

TEST(wmap_get_races_death)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	pthread_t w[64], r[64], k;

	iters = test_env_long("REAP_STRESS_ITERS", 200000, 1, 100000000);
	ASSERT_OK(reap_wmap_create(NULL, &map));
	atomic_store(&writers_left, (int)nthreads);
	for (long i = 0; i < nthreads; i++) {
		ASSERT_EQ_INT(pthread_create(&w[i], NULL, writer, (void *)(uintptr_t)i), 0);
		ASSERT_EQ_INT(pthread_create(&r[i], NULL, reader, (void *)(uintptr_t)i), 0);
	}
	ASSERT_EQ_INT(pthread_create(&k, NULL, walker, NULL), 0);
	for (long i = 0; i < nthreads; i++) {
		ASSERT_EQ_INT(pthread_join(w[i], NULL), 0);
		ASSERT_EQ_INT(pthread_join(r[i], NULL), 0);
	}
	ASSERT_EQ_INT(pthread_join(k, NULL), 0);
	printf("wmap: %ld values, %ld gets returned one, %ld walked\n",
	       atomic_load(&made), atomic_load(&got), atomic_load(&walked));
	ASSERT_EQ_INT(atomic_load(&bad), 0);
	ASSERT_EQ_INT(atomic_load(&closed), atomic_load(&made));
	ASSERT_EQ_SIZE(reap_wmap_count(map), 0);
	reap_wmap_destroy(map);
}

struct dying {
	struct val **v;
	int n;
};

static void *release_all(void *arg)
{
	struct dying *d = arg;

	for (int i = 0; i < d->n; i++)
		reap_release(d->v[i]);
	return NULL;
}

TEST(wmap_destroy_races_death)
{
	long rounds = test_env_long("REAP_STRESS_ITERS", 200000, 1, 100000000) / 100;
	enum { N = 64 };

	for (long r = 0; r < rounds; r++) {
		struct val *v[N];
		struct dying d[2] = {{v, N / 2}, {v + N / 2, N / 2}};
		pthread_t t[2];

		ASSERT_OK(reap_wmap_create(NULL, &map));
		for (int i = 0; i < N; i++) {
			ASSERT_OK(reap_obj_create(&val_type, &v[i]));
			atomic_fetch_add(&made, 1);
			ASSERT_OK(reap_wmap_put_int(map, (uint64_t)i, v[i]));
		}
		for (int i = 0; i < 2; i++)
			ASSERT_EQ_INT(pthread_create(&t[i], NULL, release_all, &d[i]), 0);
		reap_wmap_destroy(map);
		for (int i = 0; i < 2; i++)
			ASSERT_EQ_INT(pthread_join(t[i], NULL), 0);
	}
	ASSERT_EQ_INT(atomic_load(&bad), 0);
	ASSERT_EQ_INT(atomic_load(&closed), atomic_load(&made));
}
