/*
 * A worker pool whose workers each hold a connection, and a thread-local
 * log file built lazily by the first job that needs one.
 *
 * Python:
 *
 *     local = threading.local()
 *
 *     def init():                      # ThreadPoolExecutor(initializer=)
 *         local.conn = connect()       # ... and no finalizer: the
 *                                      # connection is closed whenever
 *     with ThreadPoolExecutor(3, initializer=init) as ex:   # the GC says
 *         results = list(ex.map(query, requests))
 *
 * C with reap, below: the pool's init opens each worker's connection (a
 * socketpair standing in for a socket to a server) and registers both
 * ends in the worker's own root scope, where the ledger shows them under
 * the worker's thread; fini closes them, on the worker's thread, when the
 * pool closes. A reap_tls key gives each worker a log file on first use,
 * closed by its destructor when the worker's thread ends. Nothing is
 * left open at exit (the example runs under REAP_DEBUG=leaks:strict).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reap.h"

/* A worker's connection: we write requests on `out` and the "server"
 * answers on `in` (here: the other end of a socketpair, so the answer is
 * the request itself). */
struct conn {
	int out, in;
	reap_cleanup *h_out, *h_in; /* their entries in the worker's root */
	unsigned worker;
	int queries;
};

static struct conn conns[3];

static int open_conn(void *ctx, unsigned worker, void **state)
{
	struct conn *c = &conns[worker];
	int sv[2], rc;

	(void)ctx;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* NULL: the worker's current scope, its own root. */
	if ((rc = reap_defer_fd(NULL, sv[0], &c->h_out)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	if ((rc = reap_defer_fd(NULL, sv[1], &c->h_in)) < 0) {
		close(sv[1]);
		return rc; /* sv[0] is closed with the worker's root */
	}
	c->out = sv[0];
	c->in = sv[1];
	c->worker = worker;
	*state = c;
	return 0;
}

static void close_conn(void *ctx, unsigned worker, void *state)
{
	struct conn *c = state;

	(void)ctx;
	printf("  worker %u: closing its connection (fds %d, %d) after %d "
	       "queries\n", worker, c->out, c->in, c->queries);
	(void)reap_cleanup_run(c->h_in);
	(void)reap_cleanup_run(c->h_out);
}

/* The thread-local log: one FILE per worker, opened on first use. */
static reap_tls *log_key;
static int logs_opened, logs_closed;

static int log_open(void *ctx, void **value)
{
	FILE *f = tmpfile();

	(void)ctx;
	if (f == NULL)
		return -errno;
	__atomic_add_fetch(&logs_opened, 1, __ATOMIC_RELAXED);
	*value = f;
	return 0;
}

static void log_close(void *ctx, void *value)
{
	(void)ctx;
	fclose(value);
	__atomic_add_fetch(&logs_closed, 1, __ATOMIC_RELAXED);
}

/* A job: send the request on this worker's connection, read the answer,
 * log it in this worker's log. */
static int query(void *arg, void *state, void **result)
{
	struct conn *c = state;
	const char *req = arg;
	char *answer;
	size_t len = strlen(req);
	FILE *log;
	int rc;

	if (write(c->out, req, len) != (ssize_t)len)
		return -EIO;
	usleep(2000); /* the server thinks */
	if ((answer = calloc(1, len + 1)) == NULL)
		return -ENOMEM;
	if (read(c->in, answer, len) != (ssize_t)len) {
		free(answer);
		return -EIO;
	}
	for (size_t i = 0; i < len; i++)
		answer[i] = (char)toupper((unsigned char)answer[i]);
	if ((rc = reap_tls_get(log_key, (void **)&log)) < 0) {
		free(answer);
		return rc;
	}
	fprintf(log, "%s -> %s\n", req, answer);
	c->queries++;
	*result = answer;
	return 0;
}

int main(void)
{
	static const char *requests[] = {"select 1", "select 2", "begin",
					 "insert", "commit", "select 3",
					 "vacuum", "analyze", "select 4"};
	enum { N = sizeof requests / sizeof requests[0] };
	reap_pool_opts opts = {.name = "db"};
	reap_future *f[N];
	reap_pool_stats st;
	reap_scope *s;
	reap_pool *p;
	int rc;

	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return 1;
	/* Older than the pool, so closed after it: the workers' logs are
	 * closed at their threads' end, before the key goes. */
	if ((rc = reap_tls_create(s, log_open, log_close, NULL, &log_key)) < 0 ||
	    (rc = reap_pool_create_opts(s, &opts, 3, open_conn, close_conn, NULL,
					&p)) < 0) {
		fprintf(stderr, "pool: %s\n", reap_strerror(rc));
		reap_scope_close(s);
		return 1;
	}

	for (int i = 0; i < N; i++)
		if ((rc = reap_pool_submit(p, query, (void *)requests[i], &f[i])) < 0)
			f[i] = NULL;
	for (int i = 0; i < N; i++) {
		void *answer = NULL;

		if (f[i] == NULL)
			continue;
		if ((rc = reap_future_wait(f[i], REAP_FOREVER)) == 0)
			rc = reap_future_result(f[i], &answer);
		printf("%-9s -> %s\n", requests[i], rc == 0 ? (char *)answer
							 : reap_strerror(rc));
		free(answer);
		reap_future_release(f[i]);
	}

	/* The ledger sees the pool, its workers, and each worker's
	 * connection in the worker's root scope. */
	printf("\nwhile the pool runs:\n");
	reap_ledger_report(stdout, REAP_REPORT_TREE);

	reap_pool_stats_get(p, &st);
	printf("\npool: %llu submitted, %llu completed, %llu failed, %u workers\n",
	       (unsigned long long)st.submitted, (unsigned long long)st.completed,
	       (unsigned long long)st.failed, st.workers);

	printf("\nclosing the scope (drains the pool, runs each fini, joins):\n");
	rc = reap_scope_close(s);
	printf("closed: %s; logs opened %d, closed %d; %zu resources live\n",
	       reap_errname(rc), logs_opened, logs_closed, reap_ledger_count());
	return rc == 0 && logs_opened == logs_closed && reap_ledger_count() == 0
		       ? 0 : 1;
}
