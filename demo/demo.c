/*
 * The tour of reap. Part 1, scopes and the ledger: an owner tree of
 * scopes holding files, descriptors, memory, a held lock and child
 * scopes; an error injected half-way; every cleanup running in reverse
 * order with the chained errors printed; the ledger before and after.
 * Part 2, shared objects (objects.c): a connection cache, a weak-value
 * registry, a finalizer and a collected cycle. Part 3, threads
 * (threads.c): a scoped thread cancelled by its owner's close, and a
 * worker pool with per-worker connections. Part 4, the event loop
 * (async.c): a task group, a failure cancelling its siblings, an async
 * close, a deadline, and the report of a task that waits forever.
 * Part 5, processes (proc.c): a scoped child with its output through a
 * pipe, a forked fn child with its own root scope, a child that ignores
 * SIGTERM killed after its grace period, a shared counter with an exact
 * total, and a lock holder killed mid-update whose data is repaired.
 * Part 6, the manager (mgr.c): a manager process shared by three worker
 * processes through typed proxies, batched; a worker killed holding the
 * manager's lock, its successor told, its session objects reclaimed.
 *
 *     reap-demo          the tour
 *     reap-demo --leak   also leak one scope on purpose and show the
 *                        exit-time report that attributes it
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;

/* A connection: a socket pair standing in for a peer, a log file and a
 * receive buffer, all owned by the connection's scope. */
struct conn {
	int id;
	int fd[2];
	FILE *log;
	char *buf;
};

static void say_closed(void *arg)
{
	printf("    cleanup: %s closed\n", (const char *)arg);
}

/* An exit cleanup that flushes the log, and fails for connection 2. */
static int flush_log(void *arg, const reap_error *inflight)
{
	struct conn *c = arg;

	printf("    cleanup: flush log of conn#%d (error in flight: %s)\n", c->id,
	       inflight ? reap_errname(inflight->code) : "none");
	if (c->id == 2)
		return reap_raisef(-EIO, "log of conn#%d: disk full while flushing", c->id);
	return 0;
}

static int open_conn(reap_scope *server, int id, reap_scope **out)
{
	reap_scope *s;
	struct conn *c;
	int rc;

	if ((rc = reap_scope_open(server, &s)) < 0)
		return rc;
	if ((rc = reap_scope_name(s, "conn#%d", id)) < 0)
		goto fail;
	/* Registered first, so it runs last of this scope's cleanups. */
	if ((rc = reap_defer(s, say_closed, (void *)reap_scope_get_name(s), NULL)) < 0)
		goto fail;
	/* Memory owned by the scope: freed after every cleanup has run. */
	if ((c = reap_scope_alloc(s, sizeof *c)) == NULL ||
	    (c->buf = reap_scope_alloc(s, 4096)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	c->id = id;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, c->fd) < 0) {
		rc = -errno;
		goto fail;
	}
	/* Each resource is registered the moment it exists. */
	if ((rc = reap_defer_fd(s, c->fd[0], NULL)) < 0) {
		close(c->fd[0]);
		close(c->fd[1]);
		goto fail;
	}
	if ((rc = reap_defer_fd(s, c->fd[1], NULL)) < 0) {
		close(c->fd[1]);
		goto fail;
	}
	if ((c->log = tmpfile()) == NULL) {
		rc = -errno;
		goto fail;
	}
	if ((rc = reap_defer_file(s, c->log, NULL)) < 0) {
		fclose(c->log);
		goto fail;
	}
	if ((rc = reap_defer_exit(s, NULL, flush_log, c, NULL)) < 0)
		goto fail;
	fprintf(c->log, "conn#%d opened\n", id);
	*out = s;
	return 0;
fail:
	reap_scope_close(s); /* undoes whatever was registered, in reverse */
	return rc;
}

static int serve(reap_scope *server)
{
	reap_scope *conn[3];
	int rc;

	for (int i = 0; i < 3; i++)
		if ((rc = open_conn(server, i + 1, &conn[i])) < 0)
			return rc;
	if ((rc = reap_defer(server, say_closed, "server listener", NULL)) < 0)
		return rc;

	/* Hold the connection table's lock; the scope releases it. */
	pthread_mutex_lock(&table_lock);
	if ((rc = reap_defer_unlock(conn[1], &table_lock, NULL)) < 0) {
		pthread_mutex_unlock(&table_lock);
		return rc;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int leak = argc > 1 && strcmp(argv[1], "--leak") == 0;
	reap_error *chain = NULL;
	reap_scope *server;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("reap demo: every resource has one owner, and closing the owner "
	       "releases it\n\n");
	printf("1. Build an owner tree: a server scope with three connection "
	       "scopes,\n   each holding a socket pair, a log FILE, memory and "
	       "an exit cleanup;\n   conn#2 also holds the table lock.\n\n");
	if ((rc = reap_scope_open(NULL, &server)) < 0 ||
	    (rc = reap_scope_name(server, "server")) < 0) {
		fprintf(stderr, "demo: %s\n", reap_strerror(rc));
		return 1;
	}
	rc = serve(server);
	printf("   the ledger now (%zu live resources):\n\n", reap_ledger_count());
	reap_ledger_report(stdout, REAP_REPORT_TREE | REAP_REPORT_STATS);

	printf("\n2. Inject an error half-way: the request times out while the "
	       "tree is open.\n   Closing the server runs every cleanup newest "
	       "first; each exit cleanup\n   sees the error in flight, and "
	       "conn#2's failing flush is chained over it.\n\n");
	if (rc == 0)
		rc = -ETIMEDOUT;
	reap_scope_failf(server, rc, "request deadline passed while serving");
	rc = reap_scope_close_err(server, &chain);
	printf("\n   close returned %s; the whole chain:\n\n", reap_errname(rc));
	reap_error_print(chain, stdout);
	reap_error_free(chain);
	if (pthread_mutex_trylock(&table_lock) == 0) {
		printf("\n   the table lock was released by conn#2's scope\n");
		pthread_mutex_unlock(&table_lock);
	}

	printf("\n3. The ledger after the close: %zu live resources.\n\n",
	       reap_ledger_count());
	reap_ledger_report(stdout, REAP_REPORT_STATS);

	printf("\n4. Shared objects: references, weak references, a cache, a "
	       "finalizer, a cycle.\n\n");
	if ((rc = demo_objects()) < 0) {
		fprintf(stderr, "demo: objects: %s\n", reap_strerror(rc));
		return 1;
	}

	printf("\n5. Threads: a scoped thread, a worker pool, thread-local "
	       "connections.\n\n");
	if ((rc = demo_threads()) < 0) {
		fprintf(stderr, "demo: threads: %s\n", reap_strerror(rc));
		return 1;
	}

	printf("\n6. The event loop: tasks, groups, async close, deadlines, "
	       "the pending-task report.\n\n");
	if ((rc = demo_async()) < 0) {
		fprintf(stderr, "demo: async: %s\n", reap_strerror(rc));
		return 1;
	}

	printf("\n7. Processes: scoped children, a fork with its own root, a "
	       "shared counter,\n   a lock whose holder is killed.\n\n");
	if ((rc = demo_proc()) < 0) {
		fprintf(stderr, "demo: proc: %s\n", reap_strerror(rc));
		return 1;
	}

	printf("\n8. The manager: shared objects for many processes, a worker "
	       "killed holding\n   a lock, what it owned reclaimed.\n\n");
	if ((rc = demo_mgr()) < 0) {
		fprintf(stderr, "demo: mgr: %s\n", reap_strerror(rc));
		return 1;
	}

	if (leak) {
		reap_scope *forgotten;
		int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

		printf("\n9. --leak: open a scope holding a descriptor and never "
		       "close it.\n   With REAP_DEBUG=leaks (switched on here by "
		       "reap_debug_set), exit\n   prints what was left open, with "
		       "the line that created it:\n\n");
		if (reap_debug_set("leaks") < 0 ||
		    reap_scope_open(NULL, &forgotten) < 0 ||
		    reap_scope_name(forgotten, "forgotten") < 0 ||
		    reap_defer_fd(forgotten, fd, NULL) < 0)
			return 1;
		fflush(stdout);
		return 0; /* the report follows on stderr */
	}
	printf("\nRun `reap-demo --leak` to see a leak attributed to its line.\n");
	return 0;
}
