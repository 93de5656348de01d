/*
 * bench/cache.c: (e) the reap cache's get and put throughput, at 1 and 2
 * threads, against a bare hash lookup.
 *
 *   3e1  a cache hit (reap_cache_get_int + reap_release of the returned
 *        reference) vs a bare open-addressing lookup of the same keys in
 *        the same order (linear probing, the same hash function, no lock,
 *        no reference count, no LRU): target "within 3x", ratio >= 0.33.
 *   3e2  cache hits on 2 threads (each doing half of the gets) vs 1: the
 *        "peer" is the 1-thread time per get, the reap side the 2-thread
 *        time per get, so the ratio is the speedup; target >= 1.5.
 *   3e3  the same for puts that replace an entry (the old value's
 *        reference is dropped), 2 threads vs 1; target >= 1.5.
 *   3e4  a mixed load, 90% gets and 10% puts over twice as many keys as
 *        the cache holds (LRU eviction at work), 2 threads vs 1; target
 *        >= 1.5. Its hit rate is printed as a NOTE.
 *
 * BENCH_KEYS keys (default 65,536), each with a reap object as its value, accessed in one
 * pseudo-random order shared by every contender. A checksum of what the
 * lookups return is compared after each round, so that no contender can
 * skip the work.
 */
#include "bench.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <reap/obj.h>

/* The cache's own key mixer, so that the bare table hashes alike. */
#include "../src/obj/obj_internal.h"

static uint32_t NKEYS; /* BENCH_KEYS, a power of two */
#define NMIXKEYS (2 * NKEYS)

struct val {
	uint64_t x;
};

static reap_obj_type val_type = {.name = "bench-val", .size = sizeof(struct val)};

static uint64_t *keys;
static struct val **vals;
static uint32_t *order; /* n indexes into keys */
static size_t norder;
static reap_cache *cache, *mixcache;
static uint64_t expect_sum;

static void die(const char *what)
{
	fprintf(stderr, "bench_cache: %s\n", what);
	exit(1);
}

/* ------------------------------------------------------------------ */
/* The bare table: open addressing, linear probing, load 0.5            */

#define BARE_SLOTS (2 * (size_t)NKEYS)
static struct slot {
	uint64_t key;
	void *val;
} *bare;

static void bare_put(uint64_t k, void *v)
{
	size_t i = reap__mix64(k) & (BARE_SLOTS - 1);

	while (bare[i].val != NULL && bare[i].key != k)
		i = (i + 1) & (BARE_SLOTS - 1);
	bare[i].key = k;
	bare[i].val = v;
}

static inline void *bare_get(uint64_t k)
{
	size_t i = reap__mix64(k) & (BARE_SLOTS - 1);

	while (bare[i].val != NULL) {
		if (bare[i].key == k)
			return bare[i].val;
		i = (i + 1) & (BARE_SLOTS - 1);
	}
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Contenders                                                           */

static void check(const char *who, uint64_t sum)
{
	if (sum != expect_sum) {
		fprintf(stderr, "bench_cache: %s: checksum %llu, want %llu\n", who,
			(unsigned long long)sum, (unsigned long long)expect_sum);
		exit(1);
	}
}

static void run_bare(size_t n)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n; i++) {
		struct val *v = bare_get(keys[order[i]]);

		sum += v->x;
	}
	check("bare", sum);
}

static uint64_t gets(size_t from, size_t to)
{
	uint64_t sum = 0;

	for (size_t i = from; i < to; i++) {
		struct val *v = reap_cache_get_int(cache, keys[order[i]]);

		if (v == NULL)
			die("a get missed");
		sum += v->x;
		reap_release(v);
	}
	return sum;
}

static void run_get1(size_t n)
{
	check("get, 1 thread", gets(0, n));
}

static void puts_(size_t from, size_t to)
{
	for (size_t i = from; i < to; i++) {
		uint32_t k = order[i];

		if (reap_cache_put_int(cache, keys[k], vals[k], 1, 0) != 0)
			die("a put failed");
	}
}

static void run_put1(size_t n)
{
	puts_(0, n);
}

static _Atomic uint64_t mix_hits, mix_gets;

static void mixed(size_t from, size_t to)
{
	uint64_t hits = 0, ngets = 0;

	for (size_t i = from; i < to; i++) {
		uint32_t k = order[i] * 2u + (uint32_t)(i & 1); /* of 2 * NKEYS */

		if (i % 10 == 0) {
			if (reap_cache_put_int(mixcache, keys[k], vals[k], 1, 0) != 0)
				die("a put failed");
		} else {
			struct val *v = reap_cache_get_int(mixcache, keys[k]);

			ngets++;
			if (v != NULL) {
				hits++;
				reap_release(v);
			}
		}
	}
	atomic_fetch_add(&mix_hits, hits);
	atomic_fetch_add(&mix_gets, ngets);
}

static void run_mix1(size_t n)
{
	mixed(0, n);
}

/* Two threads, each taking half of the work. */
struct half {
	int what; /* 0 get, 1 put, 2 mixed */
	size_t from, to;
	uint64_t sum;
};

static void *half_main(void *arg)
{
	struct half *h = arg;

	if (h->what == 0)
		h->sum = gets(h->from, h->to);
	else if (h->what == 1)
		puts_(h->from, h->to);
	else
		mixed(h->from, h->to);
	return NULL;
}

/* CPU time and wall time of the 2-thread rounds: on a shared machine the
 * two threads may not get two CPUs, which the speedup rows cannot tell. */
static double two_cpu_ns, two_wall_ns;

static double cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static uint64_t two(int what, size_t n)
{
	struct half h[2] = {{what, 0, n / 2, 0}, {what, n / 2, n, 0}};
	pthread_t t[2];
	double c0 = cpu_now(), w0 = bench_now();

	for (int i = 0; i < 2; i++)
		if (pthread_create(&t[i], NULL, half_main, &h[i]) != 0)
			die("pthread_create failed");
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	two_cpu_ns += cpu_now() - c0;
	two_wall_ns += bench_now() - w0;
	return h[0].sum + h[1].sum;
}

static void run_get2(size_t n) { check("get, 2 threads", two(0, n)); }
static void run_put2(size_t n) { (void)two(1, n); }
static void run_mix2(size_t n) { (void)two(2, n); }

/* ------------------------------------------------------------------ */

int main(void)
{
	size_t n = bench_n();
	int reps = bench_reps();
	reap_cache_config cfg = {.max_count = 0};
	reap_cache_config mixcfg;
	uint64_t seed = 12345;
	char note[512];

	NKEYS = (uint32_t)bench_env("BENCH_KEYS", 65536, 16, 1u << 24);
	if (NKEYS & (NKEYS - 1))
		die("BENCH_KEYS must be a power of two");
	mixcfg = (reap_cache_config){.max_count = NKEYS};
	keys = calloc(NMIXKEYS, sizeof *keys);
	vals = calloc(NMIXKEYS, sizeof *vals);
	bare = calloc(BARE_SLOTS, sizeof *bare);
	if (keys == NULL || vals == NULL || bare == NULL)
		die("out of memory");

	if (reap_cache_open(NULL, &cfg, &cache) != 0 ||
	    reap_cache_open(NULL, &mixcfg, &mixcache) != 0)
		die("reap_cache_open failed");
	for (uint32_t i = 0; i < NMIXKEYS; i++) {
		keys[i] = (uint64_t)i * UINT64_C(0x9e3779b97f4a7c15) + 17;
		if (reap_obj_create(&val_type, &vals[i]) != 0)
			die("reap_obj_create failed");
		vals[i]->x = i + 1;
		if (i < NKEYS) {
			bare_put(keys[i], vals[i]);
			if (reap_cache_put_int(cache, keys[i], vals[i], 1, 0) != 0)
				die("reap_cache_put failed");
		}
	}
	norder = n;
	order = malloc(n * sizeof *order);
	if (order == NULL)
		die("out of memory");
	expect_sum = 0;
	for (size_t i = 0; i < n; i++) {
		seed = seed * 6364136223846793005u + 1442695040888963407u;
		order[i] = (uint32_t)(seed >> 33) % NKEYS;
		expect_sum += order[i] + 1;
	}

	bench_contender get1[] = {
		{.name = "bare hash lookup", .run = run_bare},
		{.name = "reap cache hit", .run = run_get1},
	};
	bench_contender get2[] = {
		{.name = "1 thread", .run = run_get1},
		{.name = "2 threads", .run = run_get2},
	};
	bench_contender put2[] = {
		{.name = "1 thread", .run = run_put1},
		{.name = "2 threads", .run = run_put2},
	};
	bench_contender mix2[] = {
		{.name = "1 thread", .run = run_mix1},
		{.name = "2 threads", .run = run_mix2},
	};

	bench_group("(e) get hit vs bare lookup", get1, 2, n, reps);
	bench_group("(e) get hit, 1 vs 2 threads", get2, 2, n, reps);
	bench_group("(e) put (replacing), 1 vs 2 threads", put2, 2, n, reps);
	atomic_store(&mix_hits, 0);
	atomic_store(&mix_gets, 0);
	bench_group("(e) 90% get / 10% put, 1 vs 2 threads", mix2, 2, n, reps);

	snprintf(note, sizeof note,
		 "Rows 3e1-3e4: the reap cache (16 spinlock shards, approximate LRU, int keys, no TTL, "
		 "no validity check) over %u keys (BENCH_KEYS) whose values are "
		 "reap objects, in one pseudo-random order. 3e1: a hit (get + "
		 "release of the returned reference) vs a bare open-addressing "
		 "lookup (no lock, no reference, no LRU) of the same keys; hit "
		 "rate 100%%. 3e2-3e4: the same work on 2 threads vs 1, the ratio "
		 "being the speedup in throughput.", NKEYS);
	bench_note(note);
	snprintf(note, sizeof note,
		 "Row 3e4: 90%% gets and 10%% puts over %u keys in a cache of %u "
		 "(LRU eviction per shard): hit rate %.1f%% over every round; 3e2 "
		 "and 3e3 hit 100%% of their keys.", 2 * NKEYS, NKEYS,
		 100.0 * (double)atomic_load(&mix_hits) /
			 (double)(atomic_load(&mix_gets) ? atomic_load(&mix_gets) : 1));
	bench_note(note);
	snprintf(note, sizeof note,
		 "Rows 3e2-3e4: the 2-thread rounds got %.2f CPUs on average "
		 "(process CPU time over wall time); below 2, the machine was "
		 "shared and the speedup is bounded by that figure.",
		 two_wall_ns > 0 ? two_cpu_ns / two_wall_ns : 0.0);
	bench_note(note);

	bench_row("3e1", "(e) cache hit vs bare hash lookup", &get1[1], &get1[0],
		  ">=0.33");
	bench_contender p = get2[0], r = get2[1];
	bench_row("3e2", "(e) cache get, 2 threads vs 1 (speedup)", &r, &p, ">=1.5");
	p = put2[0];
	r = put2[1];
	bench_row("3e3", "(e) cache put, 2 threads vs 1 (speedup)", &r, &p, ">=1.5");
	p = mix2[0];
	r = mix2[1];
	bench_row("3e4", "(e) 90/10 get/put, 2 threads vs 1 (speedup)", &r, &p,
		  ">=1.5");

	reap_cache_close(cache);
	reap_cache_close(mixcache);
	for (uint32_t i = 0; i < NMIXKEYS; i++)
		reap_release(vals[i]);
	free(order);
	free(keys);
	free(vals);
	free(bare);
	return 0;
}
