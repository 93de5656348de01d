/*
 * Objects under concurrency (built for ThreadSanitizer too).
 *
 * finalize_once_race: REAP_STRESS_ITERS (default 1,000,000) objects, in
 * batches, each with one finalizer; one thread releases the objects
 * while another calls their finalizers explicitly, both walking the
 * batch in the same order so that they meet. Every finalizer must run
 * exactly once, whichever side wins.
 *
 * weak_get_races_last_release (REAP_STRESS_ITERS objects, default
 * 300,000): one thread drops the last reference of
 * each object while another upgrades weak references to it. An upgrade
 * either fails or yields an object whose close has not begun (checked
 * with a flag that close sets), and every object closes exactly once.
 *
 * acquire_release_shared: REAP_STRESS_THREADS threads acquire and
 * release one object; the count ends where it started.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "../runner.h"

#define BATCH 1000

struct item {
	atomic_int closing; /* set by close */
	atomic_int *closes;
};

static void item_close(void *obj)
{
	struct item *it = obj;

	atomic_store(&it->closing, 1);
	atomic_fetch_add(it->closes, 1);
}

static reap_obj_type item_type = {
	.name = "item", .size = sizeof(struct item), .close = item_close};

/* A two-party spin barrier, reusable. */
static atomic_uint bar_count, bar_gen;
static void barrier(void)
{
	unsigned gen = atomic_load(&bar_gen);

	if (atomic_fetch_add(&bar_count, 1) == 1) {
		atomic_store(&bar_count, 0);
		atomic_fetch_add(&bar_gen, 1);
	} else {
		while (atomic_load(&bar_gen) == gen)
			;
	}
}

static struct item *items[BATCH];
static reap_finalizer *fins[BATCH];
static reap_weak *weaks[BATCH];
static atomic_int runs[BATCH];
static atomic_int closes[BATCH];
static long nbatches;

static int count_run(void *ctx)
{
	atomic_fetch_add((atomic_int *)ctx, 1);
	return 0;
}

static void *caller(void *arg)
{
	(void)arg;
	for (long b = 0; b < nbatches; b++) {
		barrier(); /* batch ready */
		for (int i = 0; i < BATCH; i++)
			(void)reap_finalizer_call(fins[i]);
		barrier(); /* batch done */
	}
	return NULL;
}

TEST(finalize_once_race)
{
	long iters = test_env_long("REAP_STRESS_ITERS", 1000000, BATCH, 1L << 30);
	pthread_t t;
	long total = 0;

	nbatches = iters / BATCH;
	ASSERT_EQ_INT(pthread_create(&t, NULL, caller, NULL), 0);
	for (long b = 0; b < nbatches; b++) {
		for (int i = 0; i < BATCH; i++) {
			atomic_store(&runs[i], 0);
			atomic_store(&closes[i], 0);
			ASSERT_OK(reap_obj_create(&item_type, &items[i]));
			items[i]->closes = &closes[i];
			ASSERT_OK(reap_finalize(items[i], count_run, &runs[i],
						REAP_FINALIZE_NO_ATEXIT, &fins[i]));
		}
		barrier();
		for (int i = 0; i < BATCH; i++)
			reap_release(items[i]);
		barrier();
		for (int i = 0; i < BATCH; i++) {
			ASSERT_EQ_INT(atomic_load(&runs[i]), 1);
			ASSERT_EQ_INT(atomic_load(&closes[i]), 1);
			ASSERT_FALSE(reap_finalizer_alive(fins[i]));
			reap_finalizer_release(fins[i]);
		}
		total += BATCH;
	}
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	ASSERT_EQ_INT(total, nbatches * BATCH);
}

static atomic_long upgrades, failed_upgrades;

static void *upgrader(void *arg)
{
	(void)arg;
	for (long b = 0; b < nbatches; b++) {
		barrier();
		for (int i = 0; i < BATCH; i++) {
			struct item *it = reap_weak_get(weaks[i]);

			if (it == NULL) {
				atomic_fetch_add(&failed_upgrades, 1);
				continue;
			}
			/* Never a resurrection: close has not begun. */
			if (atomic_load(&it->closing))
				abort();
			atomic_fetch_add(&upgrades, 1);
			reap_release(it);
		}
		barrier();
	}
	return NULL;
}

TEST(weak_get_races_last_release)
{
	long iters = test_env_long("REAP_STRESS_ITERS", 300000, BATCH, 1L << 30);
	pthread_t t;

	nbatches = iters / BATCH;
	ASSERT_EQ_INT(pthread_create(&t, NULL, upgrader, NULL), 0);
	for (long b = 0; b < nbatches; b++) {
		for (int i = 0; i < BATCH; i++) {
			atomic_store(&closes[i], 0);
			ASSERT_OK(reap_obj_create(&item_type, &items[i]));
			items[i]->closes = &closes[i];
			ASSERT_OK(reap_weak_create(items[i], &weaks[i]));
		}
		barrier();
		for (int i = 0; i < BATCH; i++)
			reap_release(items[i]);
		barrier();
		for (int i = 0; i < BATCH; i++) {
			ASSERT_EQ_INT(atomic_load(&closes[i]), 1);
			ASSERT_NULL(reap_weak_get(weaks[i]));
			reap_weak_destroy(weaks[i]);
		}
	}
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	ASSERT_EQ_INT(atomic_load(&upgrades) + atomic_load(&failed_upgrades),
		      nbatches * BATCH);
	printf("upgrades: %ld won, %ld lost the race\n", atomic_load(&upgrades),
	       atomic_load(&failed_upgrades));
}

static struct item *shared;
static long per_thread;

static void *hammer(void *arg)
{
	(void)arg;
	for (long i = 0; i < per_thread; i++) {
		reap_acquire(shared);
		reap_release(shared);
	}
	return NULL;
}

TEST(acquire_release_shared)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	pthread_t t[64];
	atomic_int closed = 0;

	per_thread = test_env_long("REAP_STRESS_ITERS", 1000000, 1, 1L << 30);
	ASSERT_OK(reap_obj_create(&item_type, &shared));
	shared->closes = &closed;
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, hammer, NULL), 0);
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_join(t[i], NULL), 0);
	ASSERT_EQ_INT(reap_obj_refs(shared), 1);
	ASSERT_EQ_INT(atomic_load(&closed), 0);
	reap_release(shared);
	ASSERT_EQ_INT(atomic_load(&closed), 1);
}
