/*
 * The allocation-failure sweep of the pool's constructors: reap_pool_create
 * and reap_pool_submit are called with their 1st, 2nd, ... fallible
 * acquisition failing (allocations, and thread creation, which the
 * thread layer counts through the same fault hook) until they succeed.
 * A failed call must return -ENOMEM (-EAGAIN for a thread the "system"
 * refused), leave *out untouched, run no job, run fini for exactly the
 * workers whose init ran, and leave the ledger count and
 * reap_alloc_live() as they were.
 *
 * The counter is process-wide: an allocation a worker thread makes while
 * the sweep is armed may be the one that fails. Whatever fails, the
 * rules above must hold, so the sweeps accept either error code and
 * require only that each was seen at least once.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <unistd.h>

#include "../runner.h"

#define MAX_N 400

#define SENTINEL_POOL ((reap_pool *)(uintptr_t)0x9001)
#define SENTINEL_FUTURE ((reap_future *)(uintptr_t)0xf001)

/* Workers that allocate in init and free in fini, so that a failing
 * init is part of the sweep too. */
static atomic_int inits, finis;

static int alloc_init(void *ctx, unsigned w, void **state)
{
	(void)ctx;
	(void)w;
	if ((*state = reap_malloc(64)) == NULL)
		return -ENOMEM;
	inits++;
	return 0;
}

static void alloc_fini(void *ctx, unsigned w, void *state)
{
	(void)ctx;
	(void)w;
	reap_free(state);
	finis++;
}

static atomic_int ran;

static void noop_cleanup(void *arg)
{
	(void)arg;
}

static int job_count(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	ran++;
	return 0;
}

/* Sweep reap_pool_create of n workers; returns the number of failures
 * seen with -ENOMEM and -EAGAIN through enomem and eagain. */
static void sweep_create(unsigned nworkers, reap_pool_init_fn init,
			 reap_pool_fini_fn fini, int *enomem, int *eagain)
{
	for (int n = 1;; n++) {
		reap_scope *s;
		reap_pool *p = SENTINEL_POOL;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		/* The scope's cleanup stack exists before the snapshot: the
		 * failed call may use it and give it back, not free it. */
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		inits = finis = 0;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_pool_create(s, nworkers, init, fini, NULL, &p);
		seen = test_fault_disarm();
		if (rc == 0) {
			reap_future *f;

			ASSERT_NE_PTR(p, SENTINEL_POOL);
			if (init != NULL)
				ASSERT_EQ_INT(inits, (int)nworkers);
			/* The pool that came out works. */
			ran = 0;
			ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f));
			ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
			ASSERT_OK(reap_future_result(f, NULL));
			reap_future_release(f);
			ASSERT_OK(reap_scope_close(s));
			ASSERT_EQ_INT(ran, 1);
			ASSERT_EQ_INT(finis, inits);
			break;
		}
		ASSERT_GE_INT(seen, n);
		ASSERT_TRUE(rc == -ENOMEM || rc == -EAGAIN);
		if (rc == -ENOMEM)
			(*enomem)++;
		else
			(*eagain)++;
		ASSERT_EQ_PTR(p, SENTINEL_POOL);
		ASSERT_EQ_INT(finis, inits); /* every init that ran was undone */
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
}

TEST(oom_pool_create)
{
	int enomem = 0, eagain = 0;

	sweep_create(3, NULL, NULL, &enomem, &eagain);
	ASSERT_GE_INT(enomem, 1);
	ASSERT_GE_INT(eagain, 1); /* thread creation failed, at least once */
}

TEST(oom_pool_create_with_allocating_init)
{
	int enomem = 0, eagain = 0;

	sweep_create(3, alloc_init, alloc_fini, &enomem, &eagain);
	ASSERT_GE_INT(enomem, 1);
	ASSERT_GE_INT(eagain, 1);
}

TEST(oom_pool_create_under_the_current_scope)
{
	for (int n = 1;; n++) {
		reap_scope *s, *prev;
		reap_pool *p = SENTINEL_POOL;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		prev = reap_scope_set_current(s);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_pool_create(NULL, 2, NULL, NULL, NULL, &p);
		test_fault_disarm();
		reap_scope_set_current(prev);
		if (rc == 0) {
			ASSERT_OK(reap_scope_close(s));
			break;
		}
		ASSERT_TRUE(rc == -ENOMEM || rc == -EAGAIN);
		ASSERT_EQ_PTR(p, SENTINEL_POOL);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
}

/* Submit with `held` futures already outstanding (so that the sweep
 * meets the pool's store of futures at every fill level that needs a
 * new slab), with or without a future. */
static int sweep_submit(int held, bool with_future)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_pool *p;
		reap_future *f = SENTINEL_FUTURE, **h = calloc((size_t)held + 1, sizeof *h);
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_NOT_NULL(h);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
		for (int i = 0; i < held; i++)
			ASSERT_OK(reap_pool_submit(p, job_count, NULL, &h[i]));
		for (int i = 0; i < held; i++)
			ASSERT_OK(reap_future_wait(h[i], REAP_FOREVER));
		ran = 0;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_pool_submit(p, job_count, NULL, with_future ? &f : NULL);
		seen = test_fault_disarm();
		if (rc == 0) {
			if (with_future) {
				ASSERT_NE_PTR(f, SENTINEL_FUTURE);
				ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
				reap_future_release(f);
			}
			for (int i = 0; i < held; i++)
				reap_future_release(h[i]);
			ASSERT_OK(reap_scope_close(s));
			ASSERT_EQ_INT(ran, 1);
			free(h);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(f, SENTINEL_FUTURE);
		ASSERT_UNCHANGED(before);
		for (int i = 0; i < held; i++)
			reap_future_release(h[i]);
		ASSERT_OK(reap_scope_close(s));
		ASSERT_EQ_INT(ran, 0); /* a failed submit runs nothing */
		free(h);
	}
	return failures;
}

TEST(oom_pool_submit_first)
{
	ASSERT_GE_INT(sweep_submit(0, true), 1);
	ASSERT_GE_INT(sweep_submit(0, false), 1);
}

/* Every number of outstanding futures up to 200: the store grows at some
 * of them, and a submit there must fail cleanly. */
TEST(oom_pool_submit_at_every_fill_level)
{
	int growths = 0;

	for (int held = 0; held <= 200; held++)
		if (sweep_submit(held, true) > 0)
			growths++;
	ASSERT_GE_INT(growths, 3);
}
