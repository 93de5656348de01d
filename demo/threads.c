/*
 * The tour, part 3: threads. A scoped thread that sleeps until it is
 * cancelled by the close of its owner; a worker pool whose workers each
 * open their own connection (a thread-local value, built on first use)
 * and close it when the pool closes; a failing job that does not kill
 * its worker; and a held lock released on every path.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo.h"

/* ---- a scoped thread, cancelled by its owner's close -------------------- */

static void *ticker(void *arg)
{
	int rc = reap_cancel_sleep(NULL, 3600 * REAP_SEC); /* an hour, unless... */

	printf("    ticker: woke with %s\n", reap_errname(rc));
	(void)arg;
	return NULL;
}

/* ---- per-worker connections ----------------------------------------------- */

struct wconn {
	int fd[2];
	int worker;
	unsigned jobs;
};

static int wconn_init(void *ctx, void **value)
{
	struct wconn *c = malloc(sizeof *c);

	(void)ctx;
	if (c == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fd) < 0) {
		free(c);
		return -errno;
	}
	c->jobs = 0;
	c->worker = reap_pool_worker_index(); /* init runs on the worker */
	*value = c;
	return 0;
}

static void wconn_dtor(void *ctx, void *value)
{
	struct wconn *c = value;

	(void)ctx;
	printf("    worker %d: closes its connection (fds %d/%d) after %u jobs\n",
	       c->worker, c->fd[0], c->fd[1], c->jobs);
	close(c->fd[0]);
	close(c->fd[1]);
	free(c);
}

static reap_tls *conn_key;
static reap_mutex totals_lock = REAP_MUTEX_INIT("totals");
static long total;

/* A job: use this worker's connection, built on its first job. */
static int job(void *arg, void *state, void **result)
{
	struct wconn *c;
	long n = (long)arg;
	int rc;

	(void)state;
	(void)result;
	if (n == 13)
		return reap_raisef(-EPROTO, "job 13 fails on purpose");
	if ((rc = reap_tls_get(conn_key, (void **)&c)) < 0)
		return rc;
	c->jobs++;
	REAP_WITH_LOCK(&totals_lock) {
		total += n;
	}
	return 0;
}

/* The pool's per-worker teardown runs on the worker, before its
 * thread-local values are destroyed at its exit. */
static int worker_init(void *ctx, unsigned worker, void **state)
{
	(void)ctx;
	(void)worker;
	*state = NULL;
	return 0;
}

static void worker_fini(void *ctx, unsigned worker, void *state)
{
	(void)ctx;
	(void)state;
	printf("    worker %u: fini\n", worker);
}

int demo_threads(void)
{
	static const reap_thread_opts ticker_opts = {.name = "ticker"};
	reap_future *f[20];
	reap_pool_stats st;
	reap_thread *t;
	reap_pool *pool;
	reap_scope *s;
	int rc, failed = 0;

	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return rc;
	if ((rc = reap_scope_name(s, "threads")) < 0)
		goto out;

	printf("   A thread owned by the \"threads\" scope sleeps for an hour, "
	       "unless cancelled.\n");
	if ((rc = reap_thread_spawn_opts(s, &ticker_opts, ticker, NULL, &t)) < 0)
		goto out;

	printf("   A pool of 2 workers; each builds its own connection on its "
	       "first job\n   (a reap_tls value) and closes it when it exits.\n");
	if ((rc = reap_tls_create(s, wconn_init, wconn_dtor, NULL, &conn_key)) < 0 ||
	    (rc = reap_pool_create(s, 2, worker_init, worker_fini, NULL, &pool)) < 0)
		goto out;
	for (long i = 0; i < 20; i++)
		if ((rc = reap_pool_submit(pool, job, (void *)(i + 1), &f[i])) < 0)
			goto out;
	for (int i = 0; i < 20; i++) {
		rc = reap_future_wait(f[i], REAP_FOREVER);
		if (rc == 0)
			rc = reap_future_result(f[i], NULL); /* the job's own code */
		if (rc < 0) {
			failed++;
			printf("   job %d failed: %s; its worker goes on\n", i + 1,
			       reap_errname(rc));
		}
		reap_future_release(f[i]);
	}
	reap_pool_stats_get(pool, &st);
	printf("   %llu jobs completed, %llu failed; sum of the others: %ld\n\n",
	       (unsigned long long)st.completed, (unsigned long long)st.failed,
	       total);
	printf("   The ledger: the thread and the pool's workers, each with its "
	       "own root scope:\n\n");
	reap_ledger_report(stdout, REAP_REPORT_TREE);
	printf("\n   Closing the scope, newest first: the pool drains and "
	       "closes (each worker\n   runs its fini, then its connection is "
	       "closed as the worker exits), the key\n   goes, and the ticker "
	       "is cancelled and joined:\n");
	rc = reap_scope_close(s);
	s = NULL;
	printf("   closed (%s); %zu live resources.\n",
	       rc == 0 ? "no error" : reap_errname(rc), reap_ledger_count());
out:
	if (s != NULL)
		(void)reap_scope_close(s);
	return rc < 0 ? rc : (failed == 1 ? 0 : -EPROTO);
}
