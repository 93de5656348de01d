/*
 * Worker pools under concurrency. REAP_STRESS_THREADS submitter threads
 * (default 2) each run REAP_STRESS_ITERS iterations (default 20000)
 * against one pool of REAP_STRESS_WORKERS workers (default 2). Each
 * iteration submits a job and then, chosen at random: cancels it at once,
 * waits for it, waits with a deadline that may pass, cancels it after a
 * short wait, releases it unwaited, or submits it without a future; some
 * jobs fail, some submit a job of their own, some check
 * reap_job_cancelled().
 *
 * Checked: every job ran at most once; a job whose cancel returned 0
 * never ran and its future says -ECANCELED; any other future says what
 * its job returned; the pool's statistics agree with what the
 * submitters counted; init and fini ran once per worker.
 *
 * The close race: submitters go on submitting while the owner closes
 * the pool (drain or cancel); every accepted job ran or was cancelled,
 * never both and never neither, and every refused submit got
 * REAP_ECLOSED and ran nothing.
 *
 * Built for ThreadSanitizer as well (the Tsan build type).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../runner.h"

/* One job: runs counts its runs; its outcome is fixed at submit. */
struct job {
	atomic_int runs;
	int outcome; /* what the job returns */
	int nested;  /* submit a fire-and-forget job of its own */
};

static atomic_long nested_runs, nested_submitted;
static atomic_int inits, finis;
static reap_pool *pool;

static int stress_init(void *ctx, unsigned w, void **state)
{
	(void)ctx;
	*state = (void *)(uintptr_t)(w + 1);
	inits++;
	return 0;
}

static void stress_fini(void *ctx, unsigned w, void *state)
{
	(void)ctx;
	if (state != (void *)(uintptr_t)(w + 1))
		abort();
	finis++;
}

static int nested_job(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	nested_runs++;
	return 0;
}

static int stress_job(void *arg, void *state, void **result)
{
	struct job *j = arg;

	if (state == NULL)
		abort();
	j->runs++;
	if (j->nested && reap_pool_submit(pool, nested_job, NULL, NULL) == 0)
		nested_submitted++;
	(void)reap_job_cancelled();
	*result = j;
	return j->outcome;
}

struct submitter {
	unsigned seed;
	long iters;
	struct job *jobs;
	/* What it saw. */
	long accepted, cancelled, with_result, failed, rejected;
	long ff_failed;
};

static unsigned rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 16;
}

static void check_outcome(struct job *j, reap_future *f, bool cancelled_ok)
{
	void *res = NULL;
	int rc = reap_future_result(f, &res);

	if (cancelled_ok) {
		if (rc != -ECANCELED || res != NULL)
			test_fail(__FILE__, __LINE__, "cancelled job: %d", rc);
		return;
	}
	if (rc != j->outcome || res != j)
		test_fail(__FILE__, __LINE__, "job outcome %d (want %d), %p (want %p)",
			  rc, j->outcome, res, (void *)j);
}

static void *submit_loop(void *arg)
{
	struct submitter *me = arg;

	for (long i = 0; i < me->iters; i++) {
		struct job *j = &me->jobs[i];
		unsigned r = rnd(&me->seed);
		reap_future *f;
		int rc;

		j->outcome = r % 7 == 0 ? -EIO : 0;
		j->nested = r % 61 == 0;
		if (r % 11 == 0) { /* fire and forget */
			j->outcome = 0;
			if (reap_pool_submit(pool, stress_job, j, NULL) != 0)
				test_fail(__FILE__, __LINE__, "submit failed");
			me->accepted++;
			continue;
		}
		if ((rc = reap_pool_submit(pool, stress_job, j, &f)) != 0)
			test_fail(__FILE__, __LINE__, "submit: %s", reap_errname(rc));
		me->accepted++;
		switch ((r >> 4) % 6) {
		case 0: /* cancel at once */
		case 1: /* cancel after a little while */
			if ((r >> 4) % 6 == 1)
				for (unsigned k = r % 64; k > 0; k--)
					__asm__ __volatile__("" ::: "memory");
			rc = reap_future_cancel(f);
			if (rc == 0) {
				me->cancelled++;
				if (!reap_future_done(f))
					test_fail(__FILE__, __LINE__, "cancelled, not done");
				check_outcome(j, f, true);
			} else {
				if (rc != -EBUSY && rc != -EALREADY)
					test_fail(__FILE__, __LINE__, "cancel: %d", rc);
				if (reap_future_wait(f, REAP_FOREVER) != 0)
					test_fail(__FILE__, __LINE__, "wait failed");
				check_outcome(j, f, false);
				me->with_result++;
			}
			break;
		case 2: /* a deadline that may pass */
			rc = reap_future_wait(f, reap_now_ns() + (r % 3) * 1000);
			if (rc == -ETIMEDOUT) {
				if (reap_future_result(f, NULL) == -EBUSY)
					rc = reap_future_wait(f, REAP_FOREVER);
				else
					rc = 0; /* ended right after the deadline */
			}
			if (rc != 0)
				test_fail(__FILE__, __LINE__, "wait: %d", rc);
			check_outcome(j, f, false);
			me->with_result++;
			break;
		case 3: /* released unwaited: the job still runs */
			break;
		default:
			if (reap_future_wait(f, REAP_FOREVER) != 0)
				test_fail(__FILE__, __LINE__, "wait failed");
			check_outcome(j, f, false);
			me->with_result++;
			break;
		}
		if (j->outcome < 0)
			me->failed++;
		reap_future_release(f);
	}
	return NULL;
}

TEST(stress_pool_submit_cancel_wait)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	long iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000);
	long nworkers = test_env_long("REAP_STRESS_WORKERS", 2, 1, 64);
	struct submitter *sub = calloc((size_t)nthreads, sizeof *sub);
	pthread_t *th = calloc((size_t)nthreads, sizeof *th);
	long accepted = 0, cancelled = 0, ran = 0;
	reap_pool_stats st;
	reap_scope *s;

	ASSERT_NOT_NULL(sub);
	ASSERT_NOT_NULL(th);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, (unsigned)nworkers, stress_init, stress_fini,
				   NULL, &pool));
	for (long t = 0; t < nthreads; t++) {
		sub[t].seed = (unsigned)t * 7919u + 1;
		sub[t].iters = iters;
		sub[t].jobs = calloc((size_t)iters, sizeof(struct job));
		ASSERT_NOT_NULL(sub[t].jobs);
		ASSERT_EQ_INT(pthread_create(&th[t], NULL, submit_loop, &sub[t]), 0);
	}
	for (long t = 0; t < nthreads; t++)
		ASSERT_EQ_INT(pthread_join(th[t], NULL), 0);
	ASSERT_OK(reap_pool_close(pool, REAP_POOL_DRAIN));
	ASSERT_EQ_INT(inits, nworkers);
	ASSERT_EQ_INT(finis, nworkers);
	reap_pool_stats_get(pool, &st);
	for (long t = 0; t < nthreads; t++) {
		accepted += sub[t].accepted;
		cancelled += sub[t].cancelled;
		for (long i = 0; i < iters; i++) {
			int runs = sub[t].jobs[i].runs;

			if (runs > 1)
				test_fail(__FILE__, __LINE__, "job ran %d times", runs);
			ran += runs;
		}
		free(sub[t].jobs);
	}
	/* Drained: every job that was not cancelled ran, exactly once. */
	ASSERT_EQ_INT(ran + cancelled, accepted);
	ASSERT_EQ_INT(nested_runs, nested_submitted);
	ASSERT_EQ_INT(st.submitted, accepted + nested_submitted);
	ASSERT_EQ_INT(st.cancelled, cancelled);
	ASSERT_EQ_INT(st.completed + st.failed, ran + nested_runs);
	ASSERT_EQ_INT(st.queued, 0);
	ASSERT_EQ_INT(st.running, 0);
	ASSERT_OK(reap_scope_close(s));
	free(sub);
	free(th);
}

/* ------------------------------------------------------------------ */
/* Submitting while the pool closes                                     */

struct racer {
	long iters;
	reap_future **f;
	struct job *jobs;
	long accepted, rejected;
	atomic_int *go;
};

static void *race_loop(void *arg)
{
	struct racer *me = arg;

	while (!atomic_load(me->go))
		;
	for (long i = 0; i < me->iters; i++) {
		int rc = reap_pool_submit(pool, stress_job, &me->jobs[i], &me->f[i]);

		if (rc == REAP_ECLOSED) {
			me->f[i] = NULL;
			me->rejected++;
		} else if (rc != 0) {
			test_fail(__FILE__, __LINE__, "submit: %s", reap_errname(rc));
		} else {
			me->accepted++;
		}
	}
	return NULL;
}

static void close_race(reap_pool_mode mode)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	long iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000);
	long nworkers = test_env_long("REAP_STRESS_WORKERS", 2, 1, 64);
	struct racer *r = calloc((size_t)nthreads, sizeof *r);
	pthread_t *th = calloc((size_t)nthreads, sizeof *th);
	atomic_int go = 0;
	long accepted = 0, rejected = 0, ran = 0, cancelled = 0;
	reap_pool_stats st;
	reap_scope *s;

	ASSERT_NOT_NULL(r);
	ASSERT_NOT_NULL(th);
	inits = finis = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create(s, (unsigned)nworkers, stress_init, stress_fini,
				   NULL, &pool));
	for (long t = 0; t < nthreads; t++) {
		r[t].iters = iters;
		r[t].go = &go;
		r[t].f = calloc((size_t)iters, sizeof *r[t].f);
		r[t].jobs = calloc((size_t)iters, sizeof(struct job));
		ASSERT_NOT_NULL(r[t].f);
		ASSERT_NOT_NULL(r[t].jobs);
		ASSERT_EQ_INT(pthread_create(&th[t], NULL, race_loop, &r[t]), 0);
	}
	atomic_store(&go, 1);
	usleep(2000);
	ASSERT_OK(reap_pool_close(pool, mode));
	for (long t = 0; t < nthreads; t++)
		ASSERT_EQ_INT(pthread_join(th[t], NULL), 0);
	ASSERT_EQ_INT(finis, nworkers);
	for (long t = 0; t < nthreads; t++) {
		accepted += r[t].accepted;
		rejected += r[t].rejected;
		for (long i = 0; i < iters; i++) {
			struct job *j = &r[t].jobs[i];
			reap_future *f = r[t].f[i];
			int rc;

			if (f == NULL) { /* refused: never ran */
				ASSERT_EQ_INT(j->runs, 0);
				continue;
			}
			ASSERT_TRUE(reap_future_done(f));
			rc = reap_future_result(f, NULL);
			if (rc == -ECANCELED) {
				ASSERT_EQ_INT(j->runs, 0);
				cancelled++;
			} else {
				ASSERT_EQ_INT(rc, 0);
				ASSERT_EQ_INT(j->runs, 1);
				ran++;
			}
			reap_future_release(f);
		}
		free(r[t].f);
		free(r[t].jobs);
	}
	reap_pool_stats_get(pool, &st);
	ASSERT_EQ_INT(ran + cancelled, accepted);
	ASSERT_EQ_INT(st.rejected, rejected);
	ASSERT_EQ_INT(st.cancelled, cancelled);
	if (mode == REAP_POOL_DRAIN)
		ASSERT_EQ_INT(cancelled, 0);
	ASSERT_OK(reap_scope_close(s));
	free(r);
	free(th);
}

TEST(stress_pool_submit_while_closing_drain)
{
	close_race(REAP_POOL_DRAIN);
}

TEST(stress_pool_submit_while_closing_cancel)
{
	close_race(REAP_POOL_CANCEL);
}

/* Many short-lived pools, created and closed while other threads use
 * their own: creation, init, fini and join under contention. */
static void *pool_churn(void *arg)
{
	long iters = *(long *)arg;

	for (long i = 0; i < iters; i++) {
		reap_scope *s;
		reap_pool *p;
		reap_future *f;
		struct job j = {0};

		if (reap_scope_open(NULL, &s) != 0 ||
		    reap_pool_create(s, 2, stress_init, stress_fini, NULL, &p) != 0)
			test_fail(__FILE__, __LINE__, "create failed");
		if (reap_pool_submit(p, nested_job, &j, &f) != 0 ||
		    reap_future_wait(f, REAP_FOREVER) != 0)
			test_fail(__FILE__, __LINE__, "submit failed");
		if (i % 2 == 0)
			(void)reap_pool_close(p, i % 4 ? REAP_POOL_DRAIN : REAP_POOL_CANCEL);
		(void)reap_scope_close(s);
		reap_future_release(f); /* after its pool is gone */
	}
	return NULL;
}

TEST(stress_pool_create_close_churn)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	long iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000) / 100 + 1;
	pthread_t th[64];

	inits = finis = 0;
	for (long t = 0; t < nthreads; t++)
		ASSERT_EQ_INT(pthread_create(&th[t], NULL, pool_churn, &iters), 0);
	for (long t = 0; t < nthreads; t++)
		ASSERT_EQ_INT(pthread_join(th[t], NULL), 0);
	ASSERT_EQ_INT(inits, 2 * nthreads * iters);
	ASSERT_EQ_INT(finis, inits);
}
