/*
 * Worker pools: per-worker init and fini, futures (wait, deadline,
 * cancel, result), close modes, failing jobs, closed pools, statistics,
 * the ledger's view of pools and unreleased futures.
 *
 * Jobs that must stay running while the test does something block on a
 * gate; tests that need a close to be under way poll the pool's
 * statistics (`closing`) from inside the job.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

#define MS 1000000ull

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

struct counts {
	atomic_int inits, finis, init_fail_at;
	atomic_uint init_mask, fini_mask;
	pthread_t init_thread[16];
	void *state_seen[16];
	int state[16];
	atomic_int fini_wrong_thread, fini_wrong_state, init_not_reap;
};

static int count_init(void *ctx, unsigned w, void **state)
{
	struct counts *c = ctx;

	if (c->init_fail_at >= 0 && (int)w == c->init_fail_at)
		return -EIO;
	if (reap_thread_self() == NULL || reap_scope_current() == reap_scope_root())
		c->init_not_reap++;
	c->init_thread[w] = pthread_self();
	c->state[w] = (int)w + 100;
	*state = &c->state[w];
	atomic_fetch_or(&c->init_mask, 1u << w);
	c->inits++;
	return 0;
}

static void count_fini(void *ctx, unsigned w, void *state)
{
	struct counts *c = ctx;

	if (!pthread_equal(c->init_thread[w], pthread_self()))
		c->fini_wrong_thread++;
	if (state != &c->state[w])
		c->fini_wrong_state++;
	atomic_fetch_or(&c->fini_mask, 1u << w);
	c->finis++;
}

static void noop_cleanup(void *arg)
{
	(void)arg;
}

static void counts_init(struct counts *c)
{
	memset(c, 0, sizeof *c);
	c->init_fail_at = -1;
}

static int job_noop(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	return 0;
}

static atomic_int ran;

static int job_count(void *arg, void *state, void **result)
{
	(void)state;
	ran++;
	*result = arg;
	return 0;
}

static int job_fail(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	ran++;
	return -EIO;
}

/* A gate: jobs that block until the test opens it. */
static atomic_int gate_open, gate_entered;
static atomic_int saw_cancelled, saw_token, saw_eclosed;

static int job_gate(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	gate_entered++;
	while (!gate_open)
		usleep(1000);
	saw_cancelled = reap_job_cancelled();
	return 0;
}

static void wait_entered(int n)
{
	for (int i = 0; i < 5000 && gate_entered < n; i++)
		usleep(1000);
	ASSERT_GE_INT(gate_entered, n);
}

/* Blocks until the pool (arg) begins to close, then reports what it saw:
 * whether it was asked to stop, and whether a submit is refused. */
static int job_until_closing(void *arg, void *state, void **result)
{
	reap_pool *p = arg;
	reap_pool_stats st;
	reap_future *f = NULL;

	(void)state;
	(void)result;
	gate_entered++;
	do {
		usleep(1000);
		reap_pool_stats_get(p, &st);
	} while (!st.closing);
	saw_cancelled = reap_job_cancelled();
	saw_token = reap_cancel_requested(NULL);
	saw_eclosed = reap_pool_submit(p, job_count, NULL, &f) == REAP_ECLOSED &&
		      f == NULL;
	return 0;
}

/* ------------------------------------------------------------------ */
/* init and fini                                                        */

TEST(pool_init_fini_counts_match_workers)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;

	counts_init(&c);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 4, count_init, count_fini, &c, &p));
	/* Creation returns once every init has returned. */
	ASSERT_EQ_INT(c.inits, 4);
	ASSERT_EQ_INT(c.init_mask, 0xf);
	ASSERT_EQ_INT(c.finis, 0);
	ASSERT_EQ_INT(c.init_not_reap, 0);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(c.finis, 4);
	ASSERT_EQ_INT(c.fini_mask, 0xf);
	ASSERT_EQ_INT(c.fini_wrong_thread, 0);
	ASSERT_EQ_INT(c.fini_wrong_state, 0);
}

TEST(pool_init_fini_counts_with_one_and_many_workers)
{
	for (unsigned n = 1; n <= 16; n *= 2) {
		struct counts c;
		reap_scope *s;
		reap_pool *p;

		counts_init(&c);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_pool_create(s, n, count_init, count_fini, &c, &p));
		for (int i = 0; i < 50; i++)
			ASSERT_OK(reap_pool_submit(p, job_noop, NULL, NULL));
		ASSERT_OK(reap_pool_close(p, REAP_POOL_DRAIN));
		ASSERT_EQ_INT(c.inits, (int)n);
		ASSERT_EQ_INT(c.finis, (int)n);
		ASSERT_EQ_INT(c.fini_mask, (1u << n) - 1);
		ASSERT_EQ_INT(c.fini_wrong_thread, 0);
		ASSERT_OK(reap_scope_close(s)); /* the closed pool's entry */
		ASSERT_EQ_INT(c.finis, (int)n);
	}
}

TEST(pool_null_init_and_fini)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f;
	void *res;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_count, &ran, &f));
	ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
	ASSERT_OK(reap_future_result(f, &res));
	ASSERT_EQ_PTR(res, &ran);
	reap_future_release(f);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_failing_init_fails_creation_cleanly)
{
	for (int bad = 0; bad < 4; bad++) {
		struct counts c;
		reap_scope *s;
		reap_pool *p = (reap_pool *)(uintptr_t)0x9e9e;
		size_t count, live;

		counts_init(&c);
		c.init_fail_at = bad;
		ASSERT_OK(reap_scope_open(NULL, &s));
		/* The scope's cleanup stack exists before the snapshot: the
		 * failed call may use it and give it back, not free it. */
		ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		count = reap_ledger_count();
		live = reap_alloc_live();
		ASSERT_EQ_INT(reap_pool_create(s, 4, count_init, count_fini, &c, &p),
			      -EIO);
		ASSERT_EQ_PTR(p, (reap_pool *)(uintptr_t)0x9e9e);
		/* fini ran for exactly the workers whose init succeeded. */
		ASSERT_EQ_INT(c.inits, 3);
		ASSERT_EQ_INT(c.finis, 3);
		ASSERT_EQ_INT(c.init_mask, c.fini_mask);
		ASSERT_EQ_INT(c.fini_mask & (1u << bad), 0);
		ASSERT_EQ_SIZE(reap_ledger_count(), count);
		ASSERT_EQ_SIZE(reap_alloc_live(), live);
		ASSERT_OK(reap_scope_close(s));
	}
}

TEST(pool_bad_arguments)
{
	reap_scope *s;
	reap_pool *p = NULL;
	reap_pool_opts o = {.on_close = (reap_pool_mode)7};

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_INT(reap_pool_create(s, 0, NULL, NULL, NULL, &p), -EINVAL);
	ASSERT_EQ_INT(reap_pool_create(s, 100000, NULL, NULL, NULL, &p), -EINVAL);
	ASSERT_EQ_INT(reap_pool_create_opts(s, &o, 1, NULL, NULL, NULL, &p),
		      -EINVAL);
	ASSERT_NULL(p);
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_EQ_INT(reap_pool_submit(p, NULL, NULL, NULL), -EINVAL);
	ASSERT_OK(reap_scope_close(s));
}

/* ------------------------------------------------------------------ */
/* Jobs and futures                                                     */

static int job_state_and_index(void *arg, void *state, void **result)
{
	int *seen = arg;

	(void)result;
	seen[0] = *(int *)state;
	seen[1] = reap_pool_worker_index();
	return 0;
}

TEST(pool_job_gets_its_worker_state)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;
	int seen[2] = {-1, -2};
	reap_future *f;

	counts_init(&c);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, count_init, count_fini, &c, &p));
	ASSERT_OK(reap_pool_submit(p, job_state_and_index, seen, &f));
	ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
	ASSERT_OK(reap_future_result(f, NULL));
	ASSERT_EQ_INT(seen[0], 100);
	ASSERT_EQ_INT(seen[1], 0);
	ASSERT_EQ_INT(reap_pool_worker_index(), -1);
	ASSERT_FALSE(reap_job_cancelled());
	reap_future_release(f);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_results_and_errors_come_back)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f[64];
	int tag[64];

	ran = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 3, NULL, NULL, NULL, &p));
	for (int i = 0; i < 64; i++)
		ASSERT_OK(reap_pool_submit(p, i % 3 ? job_count : job_fail,
					   &tag[i], &f[i]));
	for (int i = 0; i < 64; i++) {
		void *res = (void *)1;

		ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
		ASSERT_TRUE(reap_future_done(f[i]));
		if (i % 3) {
			ASSERT_OK(reap_future_result(f[i], &res));
			ASSERT_EQ_PTR(res, &tag[i]);
		} else {
			ASSERT_EQ_INT(reap_future_result(f[i], &res), -EIO);
			ASSERT_NULL(res);
		}
		ASSERT_EQ_INT(reap_future_cancel(f[i]), -EALREADY);
		reap_future_release(f[i]);
	}
	ASSERT_EQ_INT(ran, 64);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_failing_jobs_do_not_kill_workers)
{
	reap_scope *s;
	reap_pool *p;
	reap_pool_stats st;
	reap_future *f;

	ran = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	for (int i = 0; i < 500; i++) {
		ASSERT_OK(reap_pool_submit(p, job_fail, NULL, &f));
		ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
		ASSERT_EQ_INT(reap_future_result(f, NULL), -EIO);
		reap_future_release(f);
	}
	ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f));
	ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
	ASSERT_OK(reap_future_result(f, NULL));
	reap_future_release(f);
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.failed, 500);
	ASSERT_EQ_INT(st.completed, 1);
	ASSERT_EQ_INT(st.workers, 2);
	ASSERT_EQ_INT(ran, 501);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_fire_and_forget_runs_and_reports_failures)
{
	reap_scope *s;
	reap_pool *p;

	ran = 0;
	test_reports_clear();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	for (int i = 0; i < 1000; i++)
		ASSERT_OK(reap_pool_submit(p, job_count, NULL, NULL));
	ASSERT_OK(reap_pool_submit(p, job_fail, NULL, NULL));
	ASSERT_OK(reap_scope_close(s)); /* drains */
	ASSERT_EQ_INT(ran, 1001);
	/* Nobody could see that error: it went to the report hook. */
	ASSERT_CONTAINS(test_reports(), "without a future");
	ASSERT_CONTAINS(test_reports(), "EIO");
	ASSERT_CONTAINS(test_reports(), "test_pool.c");
}

static int job_submits(void *arg, void *state, void **result)
{
	reap_pool *p = arg;
	reap_future *f;
	int rc;

	(void)state;
	if ((rc = reap_pool_submit(p, job_count, NULL, &f)) < 0)
		return rc;
	*result = f;
	return 0;
}

TEST(pool_jobs_may_submit)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f;
	void *inner;

	ran = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_submits, p, &f));
	ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
	ASSERT_OK(reap_future_result(f, &inner));
	reap_future_release(f);
	/* The inner future is the caller's too (its creator handed it
	 * over through the result). */
	ASSERT_OK(reap_future_wait(inner, REAP_FOREVER));
	ASSERT_OK(reap_future_result(inner, NULL));
	reap_future_release(inner);
	ASSERT_EQ_INT(ran, 1);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_future_wait_deadline)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f;
	uint64_t t0;

	gate_open = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &f));
	/* A deadline already past: at once. */
	ASSERT_EQ_INT(reap_future_wait(f, reap_now_ns()), -ETIMEDOUT);
	t0 = reap_now_ns();
	ASSERT_EQ_INT(reap_future_wait(f, t0 + 30 * MS), -ETIMEDOUT);
	ASSERT_GE_INT(reap_now_ns() - t0, 30 * MS);
	ASSERT_FALSE(reap_future_done(f));
	ASSERT_EQ_INT(reap_future_result(f, NULL), -EBUSY);
	gate_open = 1;
	ASSERT_OK(reap_future_wait(f, reap_now_ns() + 10000 * MS));
	ASSERT_TRUE(reap_future_done(f));
	ASSERT_OK(reap_future_result(f, NULL));
	reap_future_release(f);
	ASSERT_OK(reap_scope_close(s));
}

struct waiter {
	reap_future *f;
	atomic_int rc;
};

static void *wait_thread(void *arg)
{
	struct waiter *w = arg;

	w->rc = reap_future_wait(w->f, REAP_FOREVER);
	return NULL;
}

TEST(pool_several_waiters_on_one_future)
{
	reap_scope *s;
	reap_pool *p;
	struct waiter w[4];
	reap_thread *t[4];

	gate_open = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &w[0].f));
	for (int i = 0; i < 4; i++) {
		w[i].f = w[0].f;
		w[i].rc = 1;
		ASSERT_OK(reap_thread_spawn(s, wait_thread, &w[i], &t[i]));
	}
	usleep(20000);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(w[i].rc, 1);
	gate_open = 1;
	for (int i = 0; i < 4; i++) {
		ASSERT_OK(reap_thread_join(t[i], NULL, NULL));
		ASSERT_EQ_INT(w[i].rc, 0);
	}
	reap_future_release(w[0].f);
	ASSERT_OK(reap_scope_close(s));
}

/* A reap thread waiting on a future is cancelled through its token. */
TEST(pool_future_wait_is_cancellable)
{
	reap_scope *s;
	reap_pool *p;
	struct waiter w;
	reap_thread *t;

	gate_open = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &w.f));
	w.rc = 1;
	ASSERT_OK(reap_thread_spawn(s, wait_thread, &w, &t));
	usleep(20000);
	ASSERT_EQ_INT(w.rc, 1);
	reap_cancel_request(reap_thread_cancel_token(t));
	ASSERT_OK(reap_thread_join(t, NULL, NULL));
	ASSERT_EQ_INT(w.rc, -ECANCELED);
	/* The future is untouched. */
	ASSERT_FALSE(reap_future_done(w.f));
	gate_open = 1;
	ASSERT_OK(reap_future_wait(w.f, REAP_FOREVER));
	reap_future_release(w.f);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_cancel_of_queued_future)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[8];
	reap_pool_stats st;
	void *res = (void *)1;

	ran = 0;
	gate_open = 0;
	gate_entered = 0;
	saw_cancelled = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &g));
	wait_entered(1);
	for (int i = 0; i < 8; i++)
		ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f[i]));
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.queued, 8);
	ASSERT_EQ_INT(st.running, 1);
	/* Cancel the even ones: they end now, and never run. */
	for (int i = 0; i < 8; i += 2) {
		ASSERT_OK(reap_future_cancel(f[i]));
		ASSERT_TRUE(reap_future_done(f[i]));
		ASSERT_OK(reap_future_wait(f[i], 0));
		ASSERT_EQ_INT(reap_future_result(f[i], &res), -ECANCELED);
		ASSERT_NULL(res);
		ASSERT_EQ_INT(reap_future_cancel(f[i]), -EALREADY);
	}
	/* A running job is asked, not stopped. */
	ASSERT_EQ_INT(reap_future_cancel(g), -EBUSY);
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.cancelled, 4);
	ASSERT_EQ_INT(st.queued, 4);
	gate_open = 1;
	for (int i = 1; i < 8; i += 2) {
		ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
		ASSERT_OK(reap_future_result(f[i], NULL));
	}
	ASSERT_OK(reap_future_wait(g, REAP_FOREVER));
	ASSERT_OK(reap_future_result(g, NULL)); /* its own outcome */
	ASSERT_EQ_INT(saw_cancelled, 1);
	ASSERT_EQ_INT(ran, 4);
	for (int i = 0; i < 8; i++)
		reap_future_release(f[i]);
	reap_future_release(g);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(ran, 4);
}

/* Releasing a future does not cancel its job. */
TEST(pool_release_before_the_end)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f;

	ran = 0;
	gate_open = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &f));
	reap_future_release(f);
	ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f));
	reap_future_release(f);
	gate_open = 1;
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(ran, 1);
	ASSERT_EQ_INT(gate_entered, 1);
}

/* ------------------------------------------------------------------ */
/* Close modes                                                          */

TEST(pool_close_drain_runs_every_queued_job)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[10];
	reap_pool_stats st;

	counts_init(&c);
	ran = 0;
	gate_entered = 0;
	saw_cancelled = saw_token = saw_eclosed = -1;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, count_init, count_fini, &c, &p));
	ASSERT_OK(reap_pool_submit(p, job_until_closing, p, &g));
	wait_entered(1);
	for (int i = 0; i < 10; i++)
		ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f[i]));
	ASSERT_OK(reap_pool_close(p, REAP_POOL_DRAIN));
	ASSERT_EQ_INT(ran, 10);
	ASSERT_EQ_INT(saw_cancelled, 0); /* draining asks nothing */
	ASSERT_EQ_INT(saw_token, 0);
	ASSERT_EQ_INT(saw_eclosed, 1);   /* no submits while closing */
	ASSERT_EQ_INT(c.finis, 1);
	for (int i = 0; i < 10; i++) {
		ASSERT_TRUE(reap_future_done(f[i]));
		ASSERT_OK(reap_future_result(f[i], NULL));
		reap_future_release(f[i]);
	}
	reap_future_release(g);
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.completed, 11);
	ASSERT_EQ_INT(st.cancelled, 0);
	ASSERT_EQ_INT(st.rejected, 1);
	ASSERT_EQ_INT(st.workers, 0);
	ASSERT_TRUE(st.closing);
	ASSERT_OK(reap_scope_close(s));
}

TEST(pool_close_cancel_cancels_queued_jobs)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[10];
	reap_pool_stats st;

	counts_init(&c);
	ran = 0;
	gate_entered = 0;
	saw_cancelled = saw_token = saw_eclosed = -1;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, count_init, count_fini, &c, &p));
	ASSERT_OK(reap_pool_submit(p, job_until_closing, p, &g));
	wait_entered(1);
	for (int i = 0; i < 10; i++)
		ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f[i]));
	ASSERT_OK(reap_pool_close(p, REAP_POOL_CANCEL));
	ASSERT_EQ_INT(ran, 0);
	ASSERT_EQ_INT(saw_cancelled, 1); /* the running job was asked */
	ASSERT_EQ_INT(saw_token, 1);     /* through the worker's token too */
	ASSERT_EQ_INT(saw_eclosed, 1);
	ASSERT_EQ_INT(c.finis, 1);
	ASSERT_OK(reap_future_result(g, NULL)); /* it finished its way */
	for (int i = 0; i < 10; i++) {
		ASSERT_TRUE(reap_future_done(f[i]));
		ASSERT_EQ_INT(reap_future_result(f[i], NULL), -ECANCELED);
		reap_future_release(f[i]);
	}
	reap_future_release(g);
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.completed, 1);
	ASSERT_EQ_INT(st.cancelled, 10);
	ASSERT_EQ_INT(st.queued, 0);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(ran, 0);
}

/* Closing the owner scope drains by default... */
TEST(pool_scope_close_drains_by_default)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[10];

	counts_init(&c);
	ran = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, count_init, count_fini, &c, &p));
	ASSERT_OK(reap_pool_submit(p, job_until_closing, p, &g));
	wait_entered(1);
	for (int i = 0; i < 10; i++)
		ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f[i]));
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(ran, 10);
	ASSERT_EQ_INT(c.finis, 1);
	/* The futures outlive their pool. */
	for (int i = 0; i < 10; i++) {
		ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
		ASSERT_OK(reap_future_result(f[i], NULL));
		reap_future_release(f[i]);
	}
	reap_future_release(g);
}

/* ... and cancels when the pool was created so. */
TEST(pool_scope_close_cancels_when_asked)
{
	struct counts c;
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[10];
	reap_pool_opts o = {.name = "cancelling", .on_close = REAP_POOL_CANCEL};

	counts_init(&c);
	ran = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create_opts(s, &o, 2, count_init, count_fini, &c, &p));
	ASSERT_OK(reap_pool_submit(p, job_until_closing, p, &g));
	wait_entered(1);
	for (int i = 0; i < 10; i++)
		ASSERT_OK(reap_pool_submit(p, job_until_closing, p, &f[i]));
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(c.finis, 2);
	/* The second worker may have started one more before the close. */
	int cancelled = 0;
	for (int i = 0; i < 10; i++) {
		int rc = reap_future_result(f[i], NULL);

		ASSERT_TRUE(rc == 0 || rc == -ECANCELED);
		cancelled += rc == -ECANCELED;
		reap_future_release(f[i]);
	}
	ASSERT_GE_INT(cancelled, 9);
	reap_future_release(g);
}

TEST(pool_submit_to_closed_pool_fails)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f = (reap_future *)(uintptr_t)0xf00;
	reap_pool_stats st;

	ran = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_pool_close(p, REAP_POOL_DRAIN));
	ASSERT_EQ_INT(reap_pool_submit(p, job_count, NULL, &f), REAP_ECLOSED);
	ASSERT_EQ_PTR(f, (reap_future *)(uintptr_t)0xf00);
	ASSERT_EQ_INT(reap_pool_submit(p, job_count, NULL, NULL), REAP_ECLOSED);
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.rejected, 2);
	ASSERT_EQ_INT(st.submitted, 0);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(ran, 0);
}

static void close_twice(void *arg)
{
	reap_pool *p;

	(void)arg;
	if (reap_pool_create(NULL, 1, NULL, NULL, NULL, &p) < 0)
		return;
	(void)reap_pool_close(p, REAP_POOL_DRAIN);
	(void)reap_pool_close(p, REAP_POOL_DRAIN);
}

TEST(pool_close_twice_is_misuse)
{
	const char *msg = test_expect_misuse(close_twice, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "already closed");
	ASSERT_CONTAINS(msg, "test_pool.c");
}

static atomic_int self_close_reached;

static int job_closes_its_pool(void *arg, void *state, void **result)
{
	(void)state;
	(void)result;
	self_close_reached = 1;
	(void)reap_pool_close(arg, REAP_POOL_DRAIN);
	return 0;
}

static void close_from_job(void *arg)
{
	reap_pool *p;
	reap_future *f;

	(void)arg;
	if (reap_pool_create(NULL, 1, NULL, NULL, NULL, &p) < 0 ||
	    reap_pool_submit(p, job_closes_its_pool, p, &f) < 0)
		return;
	(void)reap_future_wait(f, REAP_FOREVER);
	sleep(5); /* the misuse ends the process first */
}

TEST(pool_close_from_own_job_is_misuse)
{
	const char *msg = test_expect_misuse(close_from_job, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "its own job");
}

/* ------------------------------------------------------------------ */
/* Statistics and the ledger                                            */

TEST(pool_statistics)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *g, *f[6];
	reap_pool_stats st;

	gate_open = 0;
	gate_entered = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.workers, 2);
	ASSERT_EQ_INT(st.submitted, 0);
	ASSERT_FALSE(st.closing);
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &g));
	ASSERT_OK(reap_pool_submit(p, job_gate, NULL, &f[0]));
	wait_entered(2);
	for (int i = 1; i < 6; i++)
		ASSERT_OK(reap_pool_submit(p, i < 4 ? job_count : job_fail, NULL,
					   &f[i]));
	ASSERT_OK(reap_future_cancel(f[5]));
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.submitted, 7);
	ASSERT_EQ_INT(st.running, 2);
	ASSERT_EQ_INT(st.queued, 4);
	ASSERT_EQ_INT(st.cancelled, 1);
	ASSERT_EQ_INT(st.idle, 0);
	gate_open = 1;
	for (int i = 0; i < 6; i++)
		ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
	ASSERT_OK(reap_future_wait(g, REAP_FOREVER));
	reap_pool_stats_get(p, &st);
	ASSERT_EQ_INT(st.completed, 5);
	ASSERT_EQ_INT(st.failed, 1);
	ASSERT_EQ_INT(st.cancelled, 1);
	ASSERT_EQ_INT(st.queued, 0);
	ASSERT_EQ_INT(st.running, 0);
	for (int i = 0; i < 6; i++)
		reap_future_release(f[i]);
	reap_future_release(g);
	ASSERT_OK(reap_scope_close(s));
}

static char *report_of(unsigned flags)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	reap_ledger_report(f, flags);
	fclose(f);
	return buf;
}

TEST(pool_ledger_shows_the_pool_and_its_workers)
{
	reap_scope *s;
	reap_pool *p;
	reap_pool_opts o = {.name = "db"};
	reap_ledger_stat st;
	char *text;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create_opts(s, &o, 2, NULL, NULL, NULL, &p));
	ASSERT_OK(reap_ledger_stats("pool", &st));
	ASSERT_EQ_INT(st.live, 1);
	text = report_of(REAP_REPORT_TREE);
	ASSERT_CONTAINS(text, "pool \"db\": 2 workers");
	ASSERT_CONTAINS(text, "db/0");
	ASSERT_CONTAINS(text, "db/1");
	ASSERT_CONTAINS(text, "test_pool.c");
	free(text);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_OK(reap_ledger_stats("pool", &st));
	ASSERT_EQ_INT(st.live, 0);
}

TEST(pool_unreleased_future_is_reported)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f;
	reap_ledger_stat st;
	size_t before;
	char *text;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 1, NULL, NULL, NULL, &p));
	before = reap_ledger_count();
	ASSERT_OK(reap_pool_submit(p, job_noop, NULL, &f));
	ASSERT_OK(reap_future_wait(f, REAP_FOREVER));
	ASSERT_EQ_SIZE(reap_ledger_count(), before + 1);
	ASSERT_OK(reap_scope_close(s));
	/* The pool is gone; its unreleased future is not. */
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_ledger_stats("future", &st));
	ASSERT_EQ_INT(st.live, 1);
	text = report_of(REAP_REPORT_LEAKS);
	ASSERT_CONTAINS(text, "Open future (done) of pool \"pool\"");
	ASSERT_CONTAINS(text, "test_pool.c");
	ASSERT_CONTAINS(text, "SUMMARY: reap: 1 open resource(s), 1 future");
	free(text);
	reap_future_release(f);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

static void release_twice(void *arg)
{
	reap_pool *p;
	reap_future *f;

	(void)arg;
	if (reap_pool_create(NULL, 1, NULL, NULL, NULL, &p) < 0 ||
	    reap_pool_submit(p, job_noop, NULL, &f) < 0)
		return;
	(void)reap_future_wait(f, REAP_FOREVER);
	reap_future_release(f);
	reap_future_release(f);
}

TEST(pool_release_twice_is_misuse)
{
	const char *msg = test_expect_misuse(release_twice, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "released twice");
}

/* With the ledger off, futures are not counted, and still work. */
TEST(pool_futures_with_the_ledger_off)
{
	reap_scope *s;
	reap_pool *p;
	reap_future *f[100];

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	reap_ledger_enable(false);
	for (int i = 0; i < 100; i++)
		ASSERT_OK(reap_pool_submit(p, job_noop, NULL, &f[i]));
	reap_ledger_enable(true);
	for (int i = 0; i < 100; i++) {
		ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
		reap_future_release(f[i]);
	}
	ASSERT_OK(reap_scope_close(s));
}

/* Many more futures than one slab holds, all outstanding at once. */
TEST(pool_many_outstanding_futures)
{
	enum { N = 20000 };
	reap_scope *s;
	reap_pool *p;
	reap_future **f = malloc(N * sizeof *f);

	ran = 0;
	ASSERT_NOT_NULL(f);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, 2, NULL, NULL, NULL, &p));
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < N; i++)
			ASSERT_OK(reap_pool_submit(p, job_count, NULL, &f[i]));
		for (int i = 0; i < N; i++) {
			ASSERT_OK(reap_future_wait(f[i], REAP_FOREVER));
			reap_future_release(f[i]);
		}
	}
	ASSERT_EQ_INT(ran, 3 * N);
	ASSERT_OK(reap_scope_close(s));
	free(f);
}

/* ------------------------------------------------------------------ */
/* A pool still open at process exit                                     */

static int exit_pipe = -1;

static void fini_to_pipe(void *ctx, unsigned w, void *state)
{
	char c = (char)('0' + w);

	(void)ctx;
	(void)state;
	if (write(exit_pipe, &c, 1) != 1)
		_exit(3);
}

/* At exit, reap asks every thread to stop: the workers of a pool left
 * open in the process root stop at once (their idle wait watches their
 * token), run fini, and the process ends without the 5 s wait and the
 * report of threads that do not stop. */
TEST(pool_left_open_at_exit_stops_promptly)
{
	int fds[2], st;
	pid_t pid;
	char buf[16];
	ssize_t n, got = 0;
	uint64_t t0 = reap_now_ns();

	ASSERT_EQ_INT(pipe(fds), 0);
	fflush(NULL);
	if ((pid = fork()) == 0) {
		reap_pool *p;

		close(fds[0]);
		exit_pipe = fds[1];
		if (reap_pool_create(NULL, 2, NULL, fini_to_pipe, NULL, &p) < 0)
			_exit(2);
		for (int i = 0; i < 100; i++)
			if (reap_pool_submit(p, job_noop, NULL, NULL) < 0)
				_exit(2);
		if (reap_debug_set("") != 0) /* left open on purpose */
			_exit(2);
		exit(0);
	}
	close(fds[1]);
	while ((n = read(fds[0], buf + got, sizeof buf - 1 - (size_t)got)) > 0)
		got += n;
	close(fds[0]);
	ASSERT_EQ_INT(waitpid(pid, &st, 0), pid);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ_INT(WEXITSTATUS(st), 0);
	ASSERT_EQ_INT(got, 2); /* both fini ran */
	ASSERT_LT_INT(reap_now_ns() - t0, 3000 * MS);
}

/* Jobs that block must not keep queued jobs from idle workers: with n
 * workers, n blocking jobs all start, however the workers were spinning
 * or sleeping when they came. */
TEST(pool_every_worker_gets_work)
{
	for (int round = 0; round < 200; round++) {
		reap_scope *s;
		reap_pool *p;

		gate_open = 0;
		gate_entered = 0;
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_pool_create(s, 3, NULL, NULL, NULL, &p));
		if (round % 2)
			usleep(round % 7 * 300); /* some asleep, some spinning */
		for (int i = 0; i < 3; i++)
			ASSERT_OK(reap_pool_submit(p, job_gate, NULL, NULL));
		wait_entered(3);
		gate_open = 1;
		ASSERT_OK(reap_scope_close(s));
	}
}
