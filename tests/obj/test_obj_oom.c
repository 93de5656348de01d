/*
 * Allocation failure at every allocation site of the obj layer's
 * constructors: reap_obj_create, reap_weak_create(_cb), reap_finalize
 * (with and without a handle) and reap_scope_hold. For each n, the n-th
 * acquisition fails until the call needs no more than n-1; every failing
 * call must return -ENOMEM, leave its out parameter and the object
 * untouched, register nothing and leak nothing.
 */
#include "../runner.h"

#define MAX_N 64

struct thing {
	int closed;
};
static int closes;
static void thing_close(void *obj)
{
	(void)obj;
	closes++;
}
static reap_obj_type thing_type = {
	.name = "thing", .size = sizeof(struct thing), .close = thing_close};

TEST(oom_obj_create)
{
	int failures = 0;

	for (int n = 1;; n++) {
		struct thing *t = (struct thing *)0x1;
		struct test_snap before = test_snap();
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		reap_fault_alloc(n);
		rc = reap_obj_create(&thing_type, &t);
		test_fault_disarm();
		if (rc == 0) {
			closes = 0;
			reap_release(t);
			ASSERT_EQ_INT(closes, 1);
			break;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(t, (struct thing *)0x1);
		ASSERT_UNCHANGED(before);
	}
	ASSERT_GE_INT(failures, 1);
}

static void weak_cb(reap_weak *w, void *ctx)
{
	(void)w;
	(*(int *)ctx)++;
}

static void sweep_weak(int with_cb)
{
	int failures = 0, cb = 0;

	for (int n = 1;; n++) {
		struct thing *t;
		reap_weak *w = (reap_weak *)0x1;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_obj_create(&thing_type, &t));
		before = test_snap();
		reap_fault_alloc(n);
		rc = with_cb ? reap_weak_create_cb(t, weak_cb, &cb, &w)
			     : reap_weak_create(t, &w);
		test_fault_disarm();
		cb = 0;
		if (rc == 0) {
			reap_release(t);
			ASSERT_EQ_INT(cb, with_cb);
			reap_weak_destroy(w);
			break;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(w, (reap_weak *)0x1);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_obj_refs(t), 1);
		reap_release(t);
		ASSERT_EQ_INT(cb, 0); /* a failed call never runs its callback */
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_weak_create)
{
	sweep_weak(0);
}

TEST(oom_weak_create_cb)
{
	sweep_weak(1);
}

static int fin_runs;
static int fin(void *ctx)
{
	(void)ctx;
	fin_runs++;
	return 0;
}

static void sweep_finalize(int handle)
{
	int failures = 0;

	for (int n = 1;; n++) {
		struct thing *t;
		reap_finalizer *f = (reap_finalizer *)0x1;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_obj_create(&thing_type, &t));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_finalize(t, fin, NULL, 0, handle ? &f : NULL);
		test_fault_disarm();
		fin_runs = 0;
		if (rc == 0) {
			reap_release(t);
			ASSERT_EQ_INT(fin_runs, 1);
			if (handle)
				reap_finalizer_release(f);
			ASSERT_EQ_SIZE(reap_finalize_atexit_run(), 0);
			break;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(f, (reap_finalizer *)0x1);
		ASSERT_UNCHANGED(before);
		reap_release(t);
		ASSERT_EQ_INT(fin_runs, 0);
		ASSERT_EQ_SIZE(reap_finalize_atexit_run(), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_finalize)
{
	sweep_finalize(0);
}

TEST(oom_finalize_with_handle)
{
	sweep_finalize(1);
}

static void noop(void *arg)
{
	(void)arg;
}

/* Hold into a scope already holding `prefill` cleanups; returns how many
 * failures the sweep saw (0 when the scope had room). */
static int sweep_hold(int prefill)
{
	int failures = 0;

	for (int n = 1;; n++) {
		struct thing *t;
		reap_scope *s;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_obj_create(&thing_type, &t));
		ASSERT_OK(reap_scope_open(NULL, &s));
		for (int i = 0; i < prefill; i++)
			ASSERT_OK(reap_defer(s, noop, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_hold(s, t, NULL);
		test_fault_disarm();
		closes = 0;
		if (rc == 0) {
			ASSERT_EQ_INT(reap_obj_refs(t), 2);
			reap_release(t);
			ASSERT_OK(reap_scope_close(s));
			ASSERT_EQ_INT(closes, 1);
			break;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_obj_refs(t), 1);
		ASSERT_OK(reap_scope_close(s));
		ASSERT_EQ_INT(closes, 0);
		reap_release(t);
	}
	return failures;
}

/* Every fill level up to 100, so that some hold needs a new chunk. */
TEST(oom_scope_hold)
{
	int failures = 0;

	for (int prefill = 0; prefill <= 100; prefill++)
		failures += sweep_hold(prefill);
	ASSERT_GE_INT(failures, 1);
}
