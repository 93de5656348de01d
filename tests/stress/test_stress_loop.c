/*
 * The event loop under spawn, cancel and join races. Each round, a main
 * task opens a group and spawns tasks that sleep, yield, pass items over
 * channels (with deadlines), take semaphore permits, offload calls, spawn
 * children of their own, or fail; meanwhile main cancels random tasks at
 * random times, joins some of those it holds handles to, and finally
 * closes the group. Every choice comes from a fixed-seed PRNG.
 *
 * Checked: every task started and ended exactly once (its end is counted
 * by a cleanup in its own scope, so a task whose scope never closed is
 * caught); a joined task's outcome is what it said it returned; the
 * group's close returns a failure exactly when an unjoined task failed;
 * the loop's statistics agree with the counts; every offloaded result
 * was either handed back or dropped; and the runner's ledger check finds
 * nothing left.
 *
 * The same rounds on REAP_STRESS_THREADS loops at once, each on a thread
 * of its own (default 2); runs racing with reap_loop_stop() from another
 * thread (every task still ends exactly once, none is left alive); and
 * two threads creating loops with nothing ordering them, for TSan.
 *
 * REAP_STRESS_ITERS rounds (default 150). Built for ThreadSanitizer as
 * well.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../runner.h"

#define MS 1000000ull
#define NTASK 24

static uint64_t prng(uint64_t *s)
{
	/* xorshift64* */
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dull;
}

static unsigned pick(uint64_t *s, unsigned n)
{
	return (unsigned)(prng(s) % n);
}

struct world;

struct rec {
	struct world *w;
	uint64_t seed;
	int kind;
	atomic_int started, ended; /* ended counted by a scope cleanup */
	int said;                  /* what it returned */
	int has_handle, joined, failing;
	int child_ran;
};

struct round_out {
	int close_rc;
	int spawned;
	int failed_unjoined, failed_joined;
};

struct world {
	struct round_out out;
	reap_chan *ch;
	reap_sem *sem;
	struct rec recs[NTASK];
	atomic_long offl_made, offl_back, offl_dropped;
	long children_started, children_ended;
};

static void count_end(void *arg)
{
	struct rec *r = arg;

	r->ended++;
}

static int child_fn(void *arg, void **result)
{
	struct world *w = arg;
	int rc;

	(void)result;
	w->children_started++;
	rc = reap_sleep(200 * 1000);
	w->children_ended++;
	return rc == -ECANCELED ? rc : 0;
}

static int offl(void *arg, void **result)
{
	struct world *w = arg;
	void *p = reap_malloc(16);

	if (p == NULL)
		return -ENOMEM;
	w->offl_made++;
	*result = p;
	usleep(100);
	return 0;
}

/* Drops happen on the loop's thread, inside the cancelled task. */
static _Thread_local long tl_dropped;

static void offl_drop(void *r)
{
	tl_dropped++;
	reap_free(r);
}

static int worker(void *arg, void **result)
{
	struct rec *r = arg;
	struct world *w = r->w;
	uint64_t s = r->seed;
	int rc = 0;

	(void)result;
	r->started++;
	if (reap_defer(NULL, count_end, r, NULL) != 0)
		return -ENOMEM;
	for (int step = 0; step < 6 && rc == 0; step++) {
		switch (r->kind) {
		case 0:
			rc = reap_sleep((uint64_t)pick(&s, 400) * 1000);
			break;
		case 1:
			rc = reap_yield();
			break;
		case 2:
			rc = reap_chan_send(w->ch, r, reap_now_ns() + pick(&s, 2000) * 1000);
			if (rc == -ETIMEDOUT)
				rc = 0;
			break;
		case 3: {
			void *item;

			rc = reap_chan_recv(w->ch, &item, reap_now_ns() + pick(&s, 2000) * 1000);
			if (rc == -ETIMEDOUT)
				rc = 0;
			break;
		}
		case 4:
			rc = reap_sem_acquire(w->sem, reap_now_ns() + pick(&s, 2000) * 1000);
			if (rc == 0) {
				rc = reap_yield();
				reap_sem_release(w->sem);
			} else if (rc == -ETIMEDOUT) {
				rc = 0;
			}
			break;
		case 5: {
			void *res = NULL;

			rc = reap_to_thread(offl, w, offl_drop, &res);
			if (rc == 0) {
				ASSERT_NOT_NULL(res);
				w->offl_back++;
				reap_free(res);
			} else {
				ASSERT_NULL(res);
			}
			break;
		}
		case 6: {
			reap_group *g;

			ASSERT_OK(reap_group_open(NULL, &g));
			for (int i = 0; i < 2; i++)
				ASSERT_OK(reap_task_spawn(g, child_fn, w, NULL));
			r->child_ran = 1;
			rc = reap_group_close(g, NULL);
			break;
		}
		default: { /* fails after a little while */
			rc = reap_sleep((uint64_t)pick(&s, 300) * 1000);
			if (rc == 0)
				rc = -EIO;
			break;
		}
		}
	}
	/* Only -ECANCELED, -EIO (a failing kind) or 0 come out. */
	if (rc != 0 && rc != -ECANCELED && rc != -EIO)
		test_fail(__FILE__, __LINE__, "kind %d: unexpected %d (%s)", r->kind,
			  rc, reap_errname(rc));
	r->said = rc;
	return rc;
}

static int round_main(void *arg, void **result)
{
	struct world *w = arg;
	uint64_t s = w->recs[0].seed ^ 0x9e3779b97f4a7c15ull;
	struct round_out *out = &w->out;
	reap_task *h[NTASK] = {0};
	reap_group *g;
	reap_scope *sc;
	reap_error *chain = NULL;

	(void)result;
	ASSERT_OK(reap_scope_open(NULL, &sc));
	ASSERT_OK(reap_chan_create(sc, pick(&s, 3), &w->ch));
	ASSERT_OK(reap_sem_create(sc, 1 + pick(&s, 2), &w->sem));
	ASSERT_OK(reap_group_open(sc, &g));
	for (int i = 0; i < NTASK; i++) {
		struct rec *r = &w->recs[i];

		r->w = w;
		r->kind = (int)pick(&s, 16) < 1 ? 7 : (int)pick(&s, 7);
		r->failing = r->kind == 7;
		r->has_handle = pick(&s, 2);
		ASSERT_OK(reap_task_spawn(g, worker, r, r->has_handle ? &h[i] : NULL));
		out->spawned++;
		if (pick(&s, 4) == 0)
			ASSERT_OK(reap_yield());
	}
	/* Cancel and join at random while they run. */
	for (int k = 0; k < 2 * NTASK; k++) {
		unsigned i = pick(&s, NTASK);
		int rc;

		switch (pick(&s, 4)) {
		case 0:
			if (h[i] != NULL)
				reap_task_cancel(h[i]);
			break;
		case 1:
			if (h[i] != NULL) {
				rc = reap_task_join(h[i], NULL);
				ASSERT_EQ_INT(rc, w->recs[i].said);
				ASSERT_EQ_INT(w->recs[i].ended, 1);
				w->recs[i].joined = 1;
				h[i] = NULL;
			}
			break;
		case 2:
			ASSERT_OK(reap_sleep((uint64_t)pick(&s, 300) * 1000));
			break;
		default:
			ASSERT_OK(reap_yield());
			break;
		}
	}
	if (pick(&s, 8) == 0)
		reap_group_cancel(g);
	out->close_rc = reap_group_close(g, &chain);
	for (int i = 0; i < NTASK; i++) {
		struct rec *r = &w->recs[i];

		if (r->said != 0 && r->said != -ECANCELED) {
			if (r->joined)
				out->failed_joined++;
			else
				out->failed_unjoined++;
		}
	}
	if (out->failed_unjoined > 0) {
		ASSERT_TRUE(out->close_rc < 0);
		ASSERT_GE_INT(reap_error_count(chain), 1);
	} else {
		ASSERT_EQ_INT(out->close_rc, 0);
		ASSERT_NULL(chain);
	}
	reap_error_free(chain);
	ASSERT_OK(reap_scope_close(sc));
	return 0;
}

static void run_rounds(uint64_t seed, long rounds)
{
	reap_scope *s;
	reap_loop *loop;
	reap_loop_stats st;
	long total = 0, failed = 0;
	struct world *w = calloc(1, sizeof *w);

	ASSERT_NOT_NULL(w);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create_opts(s, &(reap_loop_opts){.workers = 2}, &loop));
	for (long r = 0; r < rounds; r++) {
		struct round_out out;
		void *res = &out;
		long dropped0 = tl_dropped;

		memset(w, 0, sizeof *w);
		for (int i = 0; i < NTASK; i++)
			w->recs[i].seed = seed + (uint64_t)r * 1000003u + (uint64_t)i + 1;
		ASSERT_OK(reap_loop_run(loop, round_main, w, &res));
		ASSERT_NULL(res);
		out = w->out;
		ASSERT_EQ_INT(out.spawned, NTASK);
		total += 1 + NTASK + w->children_started;
		failed += out.failed_joined + out.failed_unjoined;
		for (int i = 0; i < NTASK; i++) {
			struct rec *rc = &w->recs[i];

			if (rc->started != 1 || rc->ended != 1)
				test_fail(__FILE__, __LINE__, "round %ld task %d (kind %d): "
					  "started %d, ended %d", r, i, rc->kind,
					  (int)rc->started, (int)rc->ended);
		}
		ASSERT_EQ_INT(w->children_started, w->children_ended);
		/* Every offloaded result came back or was dropped, once. */
		ASSERT_EQ_INT(w->offl_made, w->offl_back + (tl_dropped - dropped0));
	}
	reap_loop_stats_get(loop, &st);
	ASSERT_EQ_INT(st.live, 0);
	ASSERT_EQ_INT((long)st.spawned, total);
	ASSERT_EQ_INT((long)st.ended, total);
	ASSERT_GE_INT((long)st.failed, failed);
	/* The races happened: tasks were cancelled, some failed. */
	if (getenv("REAP_STRESS_VERBOSE"))
		fprintf(stderr, "spawned %llu cancelled %llu failed %llu (seen %ld) "
			"offloaded %llu dropped %ld\n",
			(unsigned long long)st.spawned, (unsigned long long)st.cancelled,
			(unsigned long long)st.failed, failed,
			(unsigned long long)st.offloaded, tl_dropped);
	ASSERT_GT_INT((long)st.cancelled, 0);
	ASSERT_GT_INT(failed, 0);
	ASSERT_GT_INT((long)st.offloaded, 0);
	ASSERT_OK(reap_scope_close(s));
	free(w);
}

TEST(stress_loop_spawn_cancel_join)
{
	long rounds = test_env_long("REAP_STRESS_ITERS", 150, 1, 1000000);

	run_rounds(0x1234567ull, rounds);
}

struct thr {
	uint64_t seed;
	long rounds;
};

static void *thread_rounds(void *arg)
{
	struct thr *t = arg;

	run_rounds(t->seed, t->rounds);
	return NULL;
}

TEST(stress_loop_loops_on_threads)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	long rounds = test_env_long("REAP_STRESS_ITERS", 150, 1, 1000000) / 2 + 1;
	pthread_t th[64];
	struct thr a[64];

	for (long i = 0; i < nthreads; i++) {
		a[i] = (struct thr){0xabcdef01ull * (uint64_t)(i + 1), rounds};
		ASSERT_EQ_INT(pthread_create(&th[i], NULL, thread_rounds, &a[i]), 0);
	}
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_join(th[i], NULL), 0);
}

/* A loop's tasks racing with reap_loop_stop() from another thread: each
 * run ends with every task ended once, whatever moment the stop came. */
struct stopper {
	reap_loop *loop;
	atomic_int go, quit;
	uint64_t seed;
};

static void *stop_thread(void *arg)
{
	struct stopper *st = arg;
	uint64_t s = st->seed;

	while (!st->quit) {
		if (st->go) {
			usleep(pick(&s, 15000));
			reap_loop_stop(st->loop);
			st->go = 0;
		} else {
			usleep(100);
		}
	}
	return NULL;
}

static struct stopper *the_stopper;

static int stop_main(void *arg, void **result)
{
	struct world *w = arg;
	uint64_t s = w->recs[0].seed;
	reap_scope *sc;

	(void)result;
	the_stopper->go = 1; /* the stop comes 0-15 ms from now */
	ASSERT_OK(reap_scope_open(NULL, &sc));
	ASSERT_OK(reap_chan_create(sc, 1, &w->ch));
	ASSERT_OK(reap_sem_create(sc, 1, &w->sem));
	for (int i = 0; i < NTASK; i++) {
		struct rec *r = &w->recs[i];

		r->w = w;
		r->kind = (int)pick(&s, 7);
		/* Detached, in the root group: the stop must end them. */
		ASSERT_OK(reap_task_spawn(NULL, worker, r, NULL));
	}
	/* Close the objects only after every worker is gone: wait here. */
	for (int i = 0; i < 400; i++) {
		int alive = 0;

		for (int k = 0; k < NTASK; k++)
			alive += w->recs[k].ended == 0;
		if (alive == 0)
			break;
		if (reap_sleep(1 * MS) < 0) {
			/* Cancelled by the stop: wait, shielded, for them. */
			reap_shield_begin();
			while (reap_sleep(1 * MS) == 0) {
				alive = 0;
				for (int k = 0; k < NTASK; k++)
					alive += w->recs[k].ended == 0;
				if (alive == 0)
					break;
			}
			(void)reap_shield_end();
			break;
		}
	}
	ASSERT_OK(reap_scope_close(sc));
	return 0;
}

static int empty_main(void *arg, void **result)
{
	(void)arg;
	(void)result;
	return 0;
}

TEST(stress_loop_stop_races)
{
	long rounds = test_env_long("REAP_STRESS_ITERS", 150, 1, 1000000) / 3 + 1;
	struct stopper st = {.seed = 77};
	long stopped = 0;
	reap_loop_stats ls;
	struct world *w = calloc(1, sizeof *w);
	reap_scope *s;
	pthread_t th;

	ASSERT_NOT_NULL(w);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &st.loop));
	the_stopper = &st;
	ASSERT_EQ_INT(pthread_create(&th, NULL, stop_thread, &st), 0);
	for (long r = 0; r < rounds; r++) {
		int rc;

		memset(w, 0, sizeof *w);
		for (int i = 0; i < NTASK; i++)
			w->recs[i].seed = 99 + (uint64_t)r * 7919u + (uint64_t)i;
		test_reports_clear();
		rc = reap_loop_run(st.loop, stop_main, w, NULL);
		ASSERT_TRUE(rc == 0 || rc == -ECANCELED);
		reap_loop_stats_get(st.loop, &ls);
		ASSERT_EQ_INT(ls.live, 0);
		stopped += strstr(test_reports(), "reap_loop_stop() was called") != NULL;
		for (int i = 0; i < NTASK; i++) {
			if (w->recs[i].started != 1 || w->recs[i].ended != 1)
				test_fail(__FILE__, __LINE__, "round %ld task %d: started %d, "
					  "ended %d", r, i, (int)w->recs[i].started,
					  (int)w->recs[i].ended);
		}
		while (st.go) /* the stop of this round was asked */
			usleep(100);
		/* A stop that came after the run ends the next one: spend it
		 * on an empty run. */
		ASSERT_OK(reap_loop_run(st.loop, empty_main, NULL, NULL));
	}
	st.quit = 1;
	ASSERT_EQ_INT(pthread_join(th, NULL), 0);
	if (getenv("REAP_STRESS_VERBOSE"))
		fprintf(stderr, "%ld of %ld runs stopped\n", stopped, rounds);
	ASSERT_GT_INT(stopped, 0);
	ASSERT_LT_INT(stopped, rounds + 1);
	test_reports_clear();
	ASSERT_OK(reap_scope_close(s));
	free(w);
}

/* Two threads each create a loop of their own, one after the other,
 * with no synchronisation between them (relaxed flags, which order
 * nothing for ThreadSanitizer): loops on different threads share no
 * state, so TSan must find nothing. */
static atomic_int two_ready, two_done;

static int trivial_main(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_sleep(1000));
	*(int *)arg += 1;
	return 0;
}

static void *second_creator(void *arg)
{
	reap_scope *s;
	reap_loop *loop;
	int ran = 0;

	(void)arg;
	while (!atomic_load_explicit(&two_ready, memory_order_relaxed))
		usleep(100);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, trivial_main, &ran, NULL));
	ASSERT_EQ_INT(ran, 1);
	ASSERT_OK(reap_scope_close(s));
	atomic_store_explicit(&two_done, 1, memory_order_relaxed);
	return NULL;
}

TEST(stress_loop_create_on_two_threads)
{
	reap_scope *s;
	reap_loop *loop;
	pthread_t th;
	int ran = 0;

	ASSERT_EQ_INT(pthread_create(&th, NULL, second_creator, NULL), 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	atomic_store_explicit(&two_ready, 1, memory_order_relaxed);
	while (!atomic_load_explicit(&two_done, memory_order_relaxed))
		usleep(100);
	ASSERT_OK(reap_loop_run(loop, trivial_main, &ran, NULL));
	ASSERT_EQ_INT(ran, 1);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(pthread_join(th, NULL), 0);
}
