/*
 * The ledger under concurrency. Worker threads (REAP_STRESS_THREADS of
 * them, default 2, plus the main thread) each run REAP_STRESS_ITERS
 * iterations (default 20000) of: open a scope under their own current
 * scope, name it, register cleanups of three kinds (enough, some of the
 * time, to spill into a second chunk), sometimes a child scope and scope
 * memory, move a cleanup into the child, move everything into a new
 * scope (pop_all), cancel some cleanups and run some early, then close
 * it (the child sometimes first). A
 * reporter thread meanwhile takes full reports (tree, stats, leaks) and
 * reads the counters, over and over.
 *
 * Checked: every cleanup ran exactly once unless cancelled (each has its
 * own counter, checked right after its scope closed), totals agree, and
 * at the end the ledger is exact: created == closed per type, the created
 * counts equal what the workers made, nothing is live, and no peak
 * exceeds what could ever be open at once.
 *
 * Built for ThreadSanitizer as well (the Tsan build type).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <unistd.h>

#include "../runner.h"

#define MAXK 40 /* cleanups per scope: past the first chunk of 16 */

static void widget_describe(void *arg, char *buf, size_t len)
{
	snprintf(buf, len, "widget at %p", arg);
}

static reap_type widget_type = REAP_TYPE_INIT("stress-widget", widget_describe);

/* What the workers made and what ran, process-wide. */
static atomic_long made_scopes, made_defers, made_widgets;
static atomic_long expected_runs, total_runs;
static atomic_int stop_reporter;
static atomic_long reports;

static void hit(void *arg)
{
	atomic_fetch_add_explicit((atomic_int *)arg, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&total_runs, 1, memory_order_relaxed);
}

static int hit_exit(void *arg, const reap_error *in)
{
	(void)in;
	hit(arg);
	return 0;
}

struct worker {
	int idx;
	long iters;
	pthread_t th;
};

enum { ARMED, CANCELLED, RAN_EARLY };

static void work(struct worker *w)
{
	atomic_int slot[MAXK + 1];
	int state[MAXK];
	reap_cleanup *h[MAXK];

	for (long i = 0; i < w->iters; i++) {
		int k = (int)((i * 7 + w->idx * 3) % (MAXK + 1));
		int child = i % 5 == 0;
		long defers = 0, widgets = 0, runs = 0;
		int popped = 0;
		reap_scope *s, *c = NULL;

		ASSERT_OK(reap_scope_open(NULL, &s));
		if (i % 2 == 0)
			ASSERT_OK(reap_scope_name(s, "w%d-%ld", w->idx, i));
		for (int j = 0; j < k; j++) {
			atomic_init(&slot[j], 0);
			state[j] = ARMED;
			switch (j % 3) {
			case 0:
				ASSERT_OK(reap_defer(s, hit, &slot[j], &h[j]));
				defers++;
				break;
			case 1:
				ASSERT_OK(reap_defer_exit(s, &widget_type, hit_exit,
							  &slot[j], &h[j]));
				widgets++;
				break;
			default:
				ASSERT_OK(reap_defer_at(s, &widget_type, hit, &slot[j],
							&h[j], REAP_SITE));
				widgets++;
				break;
			}
		}
		if (child) {
			reap_scope *prev = reap_scope_set_current(s);

			ASSERT_OK(reap_scope_open(NULL, &c)); /* under s */
			reap_scope_set_current(prev);
			ASSERT_EQ_PTR(reap_scope_parent(c), s);
			ASSERT_OK(reap_scope_name(c, "child-%ld", i));
			atomic_init(&slot[MAXK], 0);
			ASSERT_OK(reap_defer(c, hit, &slot[MAXK], NULL));
			defers++;
		}
		if (i % 3 == 0)
			ASSERT_NOT_NULL(reap_scope_alloc(s, 64 + (size_t)(i % 200)));
		if (child && k > 0 && i % 4 == 0) {
			/* h[0] now belongs to the child; it still runs once. */
			ASSERT_OK(reap_cleanup_move(&h[0], c));
		}
		if (i % 7 == 3) {
			reap_scope *n;

			/* Everything moves into a new child of s, unrun; the
			 * handles stay valid. */
			ASSERT_OK(reap_scope_pop_all(s, s, &n));
			ASSERT_EQ_PTR(reap_scope_parent(n), s);
			popped = 1;
		}
		for (int j = 0; j < k; j++) {
			if ((i + j) % 4 == 0) {
				reap_cleanup_cancel(h[j]);
				state[j] = CANCELLED;
			} else if ((i + j) % 5 == 1) {
				ASSERT_EQ_INT(reap_cleanup_run(h[j]), 0);
				ASSERT_EQ_INT(atomic_load(&slot[j]), 1);
				state[j] = RAN_EARLY;
			}
		}
		if (child && i % 2 == 0)
			ASSERT_EQ_INT(reap_scope_close(c), 0); /* early */
		ASSERT_EQ_INT(reap_scope_close(s), 0);

		for (int j = 0; j < k; j++) {
			int want = state[j] == CANCELLED ? 0 : 1;

			if (atomic_load(&slot[j]) != want)
				test_fail(__FILE__, __LINE__,
					  "worker %d iteration %ld: cleanup %d (%s) ran %d "
					  "time(s)", w->idx, i, j,
					  state[j] == CANCELLED ? "cancelled" : "armed",
					  atomic_load(&slot[j]));
			runs += want;
		}
		if (child) {
			ASSERT_EQ_INT(atomic_load(&slot[MAXK]), 1);
			runs++;
		}
		atomic_fetch_add(&made_scopes, 1 + child + popped);
		atomic_fetch_add(&made_defers, defers);
		atomic_fetch_add(&made_widgets, widgets);
		atomic_fetch_add(&expected_runs, runs);
	}
}

static void *worker_main(void *arg)
{
	work(arg);
	return NULL;
}

static void *reporter_main(void *arg)
{
	(void)arg;
	do {
		char *text = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&text, &len);
		reap_ledger_stat st[64];
		size_t n;

		ASSERT_NOT_NULL(m);
		reap_ledger_report(m, REAP_REPORT_TREE | REAP_REPORT_STATS |
					      REAP_REPORT_LEAKS);
		fclose(m);
		ASSERT_CONTAINS(text, "SUMMARY: reap:");
		free(text);
		(void)reap_ledger_count();
		n = reap_ledger_stats_all(st, 64);
		ASSERT_GE_INT(n, 1);
		atomic_fetch_add(&reports, 1);
	} while (!atomic_load(&stop_reporter));
	return NULL;
}

static reap_ledger_stat stat_or_zero(const char *name)
{
	reap_ledger_stat st;

	if (reap_ledger_stats(name, &st) != 0)
		memset(&st, 0, sizeof st);
	return st;
}

TEST(ledger_counts_stay_exact_under_concurrent_scopes_and_reports)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 0, 256);
	long iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000);
	struct worker *w = calloc((size_t)nthreads + 1, sizeof *w);
	reap_ledger_stat sc0 = stat_or_zero("scope"), df0 = stat_or_zero("defer");
	reap_ledger_stat sc, df, wg;
	pthread_t rep;
	long nworkers = nthreads + 1;

	ASSERT_NOT_NULL(w);
	ASSERT_EQ_INT(pthread_create(&rep, NULL, reporter_main, NULL), 0);
	for (long t = 1; t <= nthreads; t++) {
		w[t].idx = (int)t;
		w[t].iters = iters;
		ASSERT_EQ_INT(pthread_create(&w[t].th, NULL, worker_main, &w[t]), 0);
	}
	w[0].idx = 0; /* the main thread works too, under the process root */
	w[0].iters = iters;
	work(&w[0]);
	for (long t = 1; t <= nthreads; t++)
		ASSERT_EQ_INT(pthread_join(w[t].th, NULL), 0);
	atomic_store(&stop_reporter, 1);
	ASSERT_EQ_INT(pthread_join(rep, NULL), 0);
	free(w);

	ASSERT_GE_INT(atomic_load(&reports), 1);
	ASSERT_EQ_INT(atomic_load(&total_runs), atomic_load(&expected_runs));
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);

	sc = stat_or_zero("scope");
	df = stat_or_zero("defer");
	wg = stat_or_zero("stress-widget");
	ASSERT_EQ_SIZE(sc.created - sc0.created, atomic_load(&made_scopes));
	ASSERT_EQ_SIZE(sc.created, sc.closed);
	ASSERT_EQ_SIZE(sc.live, 0);
	ASSERT_EQ_SIZE(df.created - df0.created, atomic_load(&made_defers));
	ASSERT_EQ_SIZE(df.created, df.closed);
	ASSERT_EQ_SIZE(df.live, 0);
	ASSERT_EQ_SIZE(wg.created, atomic_load(&made_widgets));
	ASSERT_EQ_SIZE(wg.created, wg.closed);
	ASSERT_EQ_SIZE(wg.live, 0);

	/* At most three scopes (s, its child, the scope of a pop_all) and
	 * MAXK + 1 cleanups per worker are ever open at once: a larger peak
	 * was never true. */
	if (sc.peak > sc0.peak && sc.peak > (uint64_t)(3 * nworkers))
		test_fail(__FILE__, __LINE__, "scope peak %llu, but at most %ld "
			  "scopes were ever open at once",
			  (unsigned long long)sc.peak, 3 * nworkers);
	if (df.peak > df0.peak && df.peak > (uint64_t)((MAXK + 1) * nworkers))
		test_fail(__FILE__, __LINE__, "defer peak %llu, but at most %ld "
			  "were ever open at once", (unsigned long long)df.peak,
			  (MAXK + 1) * nworkers);
	if (wg.peak > (uint64_t)(MAXK * nworkers))
		test_fail(__FILE__, __LINE__, "widget peak %llu, but at most %ld "
			  "were ever open at once", (unsigned long long)wg.peak,
			  MAXK * nworkers);
}
