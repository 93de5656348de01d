/*
 * bench/pool.c: worker pools, issue 4 (b).
 *
 *   (b) n empty jobs on a pool of 2 workers, all submitted, then all
 *       waited for: reap (reap_pool_submit with a future for each job,
 *       then reap_future_wait + reap_future_release on each, in order)
 *       against GLib (g_thread_pool_push of each job to an exclusive
 *       GThreadPool of 2 threads, then one wait until a counter of
 *       finished jobs, bumped by each job, reaches n) and against
 *       Python's ThreadPoolExecutor(max_workers=2) (submit each, keep
 *       the futures, then f.result() on each; bench/py/pool.py, with
 *       n / 20 jobs per round since it is far slower).
 *
 * The pools are created once, before the rounds, and their workers are
 * warm. GLib's side does less than reap's: it has no per-job future to
 * wait on or release, only one counter and one wake-up per round. Every
 * job counts itself and each round checks the count, so a job that did
 * not run stops the benchmark.
 */
#include "bench.h"

#include <glib.h>
#include <stdatomic.h>

#include <reap/thread.h>

static atomic_size_t jobs_run;

static void die(const char *what)
{
	fprintf(stderr, "bench_pool: %s\n", what);
	exit(1);
}

static void check_run(const char *who, size_t n)
{
	size_t got = atomic_load(&jobs_run);

	if (got != n) {
		fprintf(stderr, "bench_pool: %s ran %zu jobs of %zu\n", who, got, n);
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* reap                                                                 */

static reap_pool *rpool;
static reap_future **futures;

static int empty_job(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	/* Relaxed: a count read after every future was waited for. */
	atomic_fetch_add_explicit(&jobs_run, 1, memory_order_relaxed);
	return 0;
}

static void reap_submit_wait(size_t n)
{
	atomic_store(&jobs_run, 0);
	for (size_t i = 0; i < n; i++)
		if (reap_pool_submit(rpool, empty_job, NULL, &futures[i]) < 0)
			die("reap_pool_submit failed");
	for (size_t i = 0; i < n; i++) {
		if (reap_future_wait(futures[i], REAP_FOREVER) < 0 ||
		    reap_future_result(futures[i], NULL) < 0)
			die("reap_future_wait failed");
		reap_future_release(futures[i]);
	}
	check_run("reap", n);
}

/* ------------------------------------------------------------------ */
/* GLib                                                                 */

static GThreadPool *gpool;
static GMutex gdone_lock;
static GCond gdone_cv;
static size_t gtarget;

static void glib_job(gpointer data, gpointer user)
{
	(void)data;
	(void)user;
	/* The job that makes the count reach the target wakes the waiter. */
	if (atomic_fetch_add_explicit(&jobs_run, 1, memory_order_acq_rel) + 1 ==
	    __atomic_load_n(&gtarget, __ATOMIC_ACQUIRE)) {
		g_mutex_lock(&gdone_lock);
		g_cond_signal(&gdone_cv);
		g_mutex_unlock(&gdone_lock);
	}
}

static void glib_submit_wait(size_t n)
{
	atomic_store(&jobs_run, 0);
	__atomic_store_n(&gtarget, n, __ATOMIC_RELEASE);
	for (size_t i = 0; i < n; i++)
		if (!g_thread_pool_push(gpool, GSIZE_TO_POINTER(i + 1), NULL))
			die("g_thread_pool_push failed");
	g_mutex_lock(&gdone_lock);
	while (atomic_load_explicit(&jobs_run, memory_order_acquire) < n)
		g_cond_wait(&gdone_cv, &gdone_lock);
	g_mutex_unlock(&gdone_lock);
	check_run("GLib", n);
}

/* ------------------------------------------------------------------ */

static double python_ns(size_t n, int reps)
{
	char cmd[1024];
	FILE *p;
	double ns;

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/pool.py %zu %d",
		 BENCH_SOURCE_DIR, n, reps);
	p = popen(cmd, "r");
	if (p == NULL || fscanf(p, "%lf", &ns) != 1 || pclose(p) != 0)
		die(cmd);
	return ns;
}

int main(void)
{
	size_t n = bench_n(), npy = n / 20 ? n / 20 : 1;
	int reps = bench_reps();
	GError *err = NULL;
	bench_contender b[] = {
		{.name = "reap", .run = reap_submit_wait},
		{.name = "GLib GThreadPool", .run = glib_submit_wait},
	};
	bench_contender py = {.name = "Python TPE"};

	if ((futures = malloc(n * sizeof *futures)) == NULL)
		die("out of memory");
	if (reap_pool_create(NULL, 2, NULL, NULL, NULL, &rpool) < 0)
		die("reap_pool_create failed");
	gpool = g_thread_pool_new(glib_job, NULL, 2, TRUE, &err);
	if (gpool == NULL)
		die("g_thread_pool_new failed");

	bench_group("(b) submit + wait of empty jobs, 2 workers", b, 2, n, reps);
	fprintf(stderr, "(b) Python ThreadPoolExecutor: %zu jobs per round\n", npy);
	py.ns = python_ns(npy, reps);
	fprintf(stderr, "  %-20s median %8.1f ns/op\n", py.name, py.ns);

	bench_note("Rows 4b1, 4b2: n empty jobs on a pool of 2 workers created "
		   "beforehand, all submitted and then all waited for. reap: "
		   "reap_pool_submit with a future per job, then "
		   "reap_future_wait + reap_future_release of each; GLib: "
		   "g_thread_pool_push to an exclusive GThreadPool of 2, then "
		   "one wait for a shared counter of finished jobs (no per-job "
		   "future: less work than reap's side); Python: "
		   "ThreadPoolExecutor(max_workers=2), submit each then "
		   "f.result() of each, with n/20 jobs per round.");
	bench_row("4b1", "submit + wait, empty jobs, 2 workers", &b[0], &b[1],
		  ">=1.5");
	bench_row("4b2", "submit + wait, empty jobs, 2 workers", &b[0], &py,
		  ">=20");

	g_thread_pool_free(gpool, FALSE, TRUE);
	(void)reap_pool_close(rpool, REAP_POOL_DRAIN);
	free(futures);
	return 0;
}
