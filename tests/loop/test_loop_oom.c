/*
 * The allocation-failure sweep of the loop's constructors: each is called
 * with its 1st, 2nd, ... fallible acquisition failing (allocations, the
 * task stack, the poller's fds, the offload workers' threads) until it
 * succeeds. A failed call must return -ENOMEM (-EMFILE for the poller's
 * fds, -EAGAIN for a worker thread), leave *out untouched, run nothing,
 * and leave the ledger count and reap_alloc_live() as they were.
 *
 * Calls made inside a task are swept inside the loop's main task; the
 * spawned task never runs before the caller suspends, so the sweep
 * disarms first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "../runner.h"

#define MAX_N 400
#define SENTINEL ((void *)(uintptr_t)0x5e5e)

static void noop_cleanup(void *arg)
{
	(void)arg;
}

/* ------------------------------------------------------------------ */

static int main_trivial(void *arg, void **result)
{
	(void)result;
	*(int *)arg += 1;
	return 0;
}

TEST(oom_loop_create)
{
	int enomem = 0, emfile = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_loop *loop = SENTINEL;
		struct test_snap before;
		long seen;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_loop_create(s, &loop);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(loop, SENTINEL);
			ASSERT_EQ_PTR(reap_loop_current(), loop);
			ASSERT_OK(reap_loop_run(loop, main_trivial, &ran, NULL));
			ASSERT_EQ_INT(ran, 1);
			ASSERT_OK(reap_scope_close(s));
			ASSERT_NULL(reap_loop_current());
			break;
		}
		ASSERT_GE_INT(seen, n);
		if (rc == -ENOMEM)
			enomem++;
		else if (rc == -EMFILE)
			emfile++;
		else
			test_fail(__FILE__, __LINE__, "n=%d: reap_loop_create returned %d (%s)",
				  n, rc, reap_errname(rc));
		ASSERT_EQ_PTR(loop, SENTINEL);
		ASSERT_NULL(reap_loop_current());
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
	ASSERT_GE_INT(enomem, 1);
	ASSERT_GE_INT(emfile, 1); /* the poller's fds are fault points */
}

TEST(oom_loop_create_with_detector)
{
	reap_loop_opts o = {.detect_blocking = true};

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_loop *loop = SENTINEL;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_loop_create_opts(s, &o, &loop);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_OK(reap_scope_close(s));
			break;
		}
		ASSERT_TRUE(rc == -ENOMEM || rc == -EMFILE);
		ASSERT_EQ_PTR(loop, SENTINEL);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
}

/* reap_loop_run's own spawn of main. */
static int main_disarms(void *arg, void **result)
{
	(void)result;
	test_fault_disarm(); /* main ran: the spawn succeeded */
	*(int *)arg += 1;
	return 0;
}

TEST(oom_loop_run_spawn_of_main)
{
	reap_scope *s;
	reap_loop *loop;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	for (int n = 1;; n++) {
		struct test_snap before;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_loop_run(loop, main_disarms, &ran, NULL);
		test_fault_disarm();
		if (ran) {
			ASSERT_OK(rc);
			ASSERT_EQ_INT(ran, 1);
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
	}
	ASSERT_OK(reap_scope_close(s));
}

/* ------------------------------------------------------------------ */
/* Sweeps inside a task                                                 */

static void with_loop(reap_task_fn fn, void *arg)
{
	reap_scope *s;
	reap_loop *loop;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, fn, arg, NULL));
	ASSERT_OK(reap_scope_close(s));
}

static int sweep_group_open(void *arg, void **result)
{
	(void)arg;
	(void)result;
	for (int n = 1;; n++) {
		reap_scope *s;
		reap_group *g = SENTINEL;
		struct test_snap before;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_group_open(s, &g);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_OK(reap_task_spawn(g, main_trivial, &ran, NULL));
			ASSERT_OK(reap_group_close(g, NULL));
			ASSERT_EQ_INT(ran, 1);
			ASSERT_OK(reap_scope_close(s));
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(g, SENTINEL);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
	return 0;
}

TEST(oom_group_open)
{
	with_loop(sweep_group_open, NULL);
}

static int counted(void *arg, void **result)
{
	(void)result;
	*(int *)arg += 1;
	return 0;
}

struct spawn_sweep {
	int named;
	int stack_failures; /* failures that happened at the stack */
};

static int sweep_spawn(void *arg, void **result)
{
	struct spawn_sweep *sw = arg;
	reap_task_opts o = {.name = "swept", .stack_size = 32 * 1024};
	reap_loop_stats st0, st1;

	(void)result;
	for (int n = 1;; n++) {
		reap_group *g;
		reap_task *t = SENTINEL;
		struct test_snap before;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_group_open(NULL, &g));
		reap_loop_stats_get(reap_loop_current(), &st0);
		before = test_snap();
		reap_fault_alloc(n);
		rc = sw->named ? reap_task_spawn_opts(g, &o, counted, &ran, &t)
			       : reap_task_spawn(g, counted, &ran, &t);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(t, SENTINEL);
			ASSERT_OK(reap_task_join(t, NULL));
			ASSERT_EQ_INT(ran, 1);
			ASSERT_OK(reap_group_close(g, NULL));
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(t, SENTINEL);
		ASSERT_UNCHANGED(before);
		reap_loop_stats_get(reap_loop_current(), &st1);
		ASSERT_EQ_INT(st1.live, st0.live);
		ASSERT_EQ_INT(st1.spawned, st0.spawned);
		ASSERT_OK(reap_yield()); /* it would run now: it must not */
		ASSERT_EQ_INT(ran, 0);
		ASSERT_OK(reap_group_close(g, NULL));
		ASSERT_EQ_INT(ran, 0);
	}
	return 0;
}

TEST(oom_task_spawn)
{
	struct spawn_sweep sw = {0, 0};

	with_loop(sweep_spawn, &sw);
}

TEST(oom_task_spawn_named_with_stack_size)
{
	struct spawn_sweep sw = {1, 0};

	with_loop(sweep_spawn, &sw);
}

/* Detached spawns into the root group. */
static int sweep_spawn_detached(void *arg, void **result)
{
	(void)arg;
	(void)result;
	for (int n = 1;; n++) {
		struct test_snap before;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_task_spawn(NULL, counted, &ran, NULL);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_OK(reap_sleep(1000)); /* let it run */
			ASSERT_EQ_INT(ran, 1);
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_yield()); /* it would run now: it must not */
		ASSERT_EQ_INT(ran, 0);
	}
	return 0;
}

TEST(oom_task_spawn_detached)
{
	with_loop(sweep_spawn_detached, NULL);
}

enum { P_CHAN0, P_CHAN, P_EVENT, P_SEM };

static int sweep_prim(void *arg, void **result)
{
	int kind = (int)(intptr_t)arg;

	(void)result;
	for (int n = 1;; n++) {
		reap_scope *s;
		void *obj = SENTINEL;
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		switch (kind) {
		case P_CHAN0:
			rc = reap_chan_create(s, 0, (reap_chan **)&obj);
			break;
		case P_CHAN:
			rc = reap_chan_create(s, 16, (reap_chan **)&obj);
			break;
		case P_EVENT:
			rc = reap_event_create(s, (reap_event **)&obj);
			break;
		default:
			rc = reap_sem_create(s, 2, (reap_sem **)&obj);
			break;
		}
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(obj, SENTINEL);
			/* It works. */
			switch (kind) {
			case P_CHAN: {
				void *item;

				ASSERT_OK(reap_chan_send(obj, s, REAP_FOREVER));
				ASSERT_OK(reap_chan_recv(obj, &item, REAP_FOREVER));
				ASSERT_EQ_PTR(item, s);
				break;
			}
			case P_EVENT:
				reap_event_set(obj);
				ASSERT_OK(reap_event_wait(obj, REAP_FOREVER));
				break;
			case P_SEM:
				ASSERT_OK(reap_sem_acquire(obj, REAP_FOREVER));
				reap_sem_release(obj);
				break;
			default:
				break;
			}
			ASSERT_OK(reap_scope_close(s));
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(obj, SENTINEL);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
	}
	return 0;
}

TEST(oom_chan_create_rendezvous) { with_loop(sweep_prim, (void *)(intptr_t)P_CHAN0); }
TEST(oom_chan_create_buffered) { with_loop(sweep_prim, (void *)(intptr_t)P_CHAN); }
TEST(oom_event_create) { with_loop(sweep_prim, (void *)(intptr_t)P_EVENT); }
TEST(oom_sem_create) { with_loop(sweep_prim, (void *)(intptr_t)P_SEM); }

/* ------------------------------------------------------------------ */
/* reap_to_thread                                                       */

static int offl_fn(void *arg, void **result)
{
	*(int *)arg += 1;
	*result = arg;
	return 0;
}

static int first_eagain, first_enomem;

/* The first call starts the workers: a fresh loop for each n. */
static int one_first_offload(void *arg, void **result)
{
	long n = *(long *)arg;
	int ran = 0, rc;
	void *res = SENTINEL;

	(void)result;
	reap_fault_alloc(n);
	rc = reap_to_thread(offl_fn, &ran, NULL, &res);
	test_fault_disarm();
	if (rc == 0) {
		ASSERT_EQ_INT(ran, 1);
		ASSERT_EQ_PTR(res, &ran);
		*(long *)arg = 0; /* done */
		return 0;
	}
	if (rc != -ENOMEM && rc != -EAGAIN)
		test_fail(__FILE__, __LINE__, "n=%ld: reap_to_thread returned %d (%s)",
			  n, rc, reap_errname(rc));
	if (rc == -EAGAIN)
		first_eagain++;
	else
		first_enomem++;
	ASSERT_EQ_INT(ran, 0);
	/* The loop still works after the failure. */
	ASSERT_OK(reap_to_thread(offl_fn, &ran, NULL, &res));
	ASSERT_EQ_INT(ran, 1);
	return 0;
}

TEST(oom_to_thread_first_call)
{
	for (long n = 1;; n++) {
		long arg = n;

		ASSERT_LT_INT(n, MAX_N);
		with_loop(one_first_offload, &arg);
		if (arg == 0)
			break;
	}
	ASSERT_GE_INT(first_enomem, 1);
	ASSERT_GE_INT(first_eagain, 1); /* a worker thread refused */
}

static int sweep_offload(void *arg, void **result)
{
	int ran = 0;
	void *res;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_to_thread(offl_fn, &ran, NULL, &res)); /* workers up */
	for (int n = 1;; n++) {
		struct test_snap before;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ran = 0;
		res = SENTINEL;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_to_thread(offl_fn, &ran, NULL, &res);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(ran, 1);
			ASSERT_EQ_PTR(res, &ran);
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_INT(ran, 0);
		ASSERT_UNCHANGED(before);
	}
	return 0;
}

TEST(oom_to_thread_submit)
{
	with_loop(sweep_offload, NULL);
}

/* A cleanup registration that fails. */
static int aclose_noop(void *arg, const reap_error *inflight)
{
	(void)inflight;
	*(int *)arg += 1;
	return 0;
}

static int sweep_defer_async(void *arg, void **result)
{
	(void)arg;
	(void)result;
	for (int n = 1;; n++) {
		reap_scope *s;
		struct test_snap before;
		int rc, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_async(s, NULL, aclose_noop, &ran, NULL);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_OK(reap_scope_close(s));
			ASSERT_EQ_INT(ran, 1);
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_scope_close(s));
		ASSERT_EQ_INT(ran, 0);
	}
	return 0;
}

TEST(oom_defer_async)
{
	with_loop(sweep_defer_async, NULL);
}
