/*
 * An async connection pool, with asynchronous close at scope exit.
 *
 * Python (asyncio):
 *
 *     async with contextlib.AsyncExitStack() as stack:   # the pool
 *         pool = asyncio.Queue()
 *         for i in range(3):
 *             conn = await stack.enter_async_context(connect(i))
 *             pool.put_nowait(conn)       # aclose: send bye, await ack
 *         async with asyncio.TaskGroup() as tg:
 *             for name in clients:
 *                 tg.create_task(client(pool, name))
 *
 * C with reap, below. Each connection is a socket pair: the client end
 * sits in the pool (a channel), the other end is served by an echo
 * server task. A client borrows a connection and gives it back in an
 * asynchronous cleanup of its task's scope. Each connection is closed by
 * an asynchronous cleanup of the pool's scope: it says goodbye and waits
 * for the server's acknowledgement before closing its fd. One client is
 * cancelled while its cleanup is under way, and the cleanup still ends
 * (a scope close in a task is shielded). Last, a task that calls
 * nanosleep() is caught by the blocking detector.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "reap.h"

#define NCONN 3
#define MS (REAP_SEC / 1000)

struct conn {
	int id;
	int fd; /* the client end */
	reap_chan *pool;
};

/* ---- the reports, collected by the report hook ------------------------- */

/* The hook may run on the detector's watchdog thread: hence the lock. */
static pthread_mutex_t reports_lock = PTHREAD_MUTEX_INITIALIZER;
static char reports[4][320];
static int nreports;

static void on_report(const char *text, void *ctx)
{
	(void)ctx;
	pthread_mutex_lock(&reports_lock);
	for (int i = 0; i < nreports && i < 4; i++)
		if (strncmp(reports[i], text, strlen(reports[i])) == 0)
			goto out; /* the same call site again */
	if (nreports < 4) {
		size_t n = strcspn(text, ";\n"); /* up to its first clause */

		if (n >= sizeof reports[0])
			n = sizeof reports[0] - 1;
		memcpy(reports[nreports], text, n);
		reports[nreports][n] = '\0';
	}
	nreports++;
out:
	pthread_mutex_unlock(&reports_lock);
}

static int report_count(void)
{
	int n;

	pthread_mutex_lock(&reports_lock);
	n = nreports;
	pthread_mutex_unlock(&reports_lock);
	return n;
}

/* ---- small I/O helpers: every wait is a suspension point ---------------- */

/* The fds are nonblocking: try the call first, and wait (suspending the
 * task) only when it would block. */
static int wait_ready(int fd, unsigned events, uint64_t deadline)
{
	int rc = reap_wait_fd(fd, events, deadline);

	return rc < 0 ? rc : 0; /* > 0: the ready bits */
}

static int send_msg(int fd, const char *msg)
{
	uint64_t deadline = reap_now_ns() + 500 * MS;
	size_t len = strlen(msg);
	int rc;

	for (;;) {
		ssize_t n = write(fd, msg, len);

		if (n == (ssize_t)len)
			return 0;
		if (n >= 0 || errno != EAGAIN)
			return n < 0 ? -errno : -EIO;
		if ((rc = wait_ready(fd, REAP_WRITE, deadline)) < 0)
			return rc;
	}
}

/* One message: the peer answers each one before the next is sent.
 * Returns its length, 0 at end of file, or a negative errno. */
static int recv_msg(int fd, char *buf, size_t cap)
{
	uint64_t deadline = reap_now_ns() + 500 * MS;
	int rc;

	for (;;) {
		ssize_t n = read(fd, buf, cap - 1);

		if (n >= 0) {
			buf[n] = '\0';
			return (int)n;
		}
		if (errno != EAGAIN)
			return -errno;
		if ((rc = wait_ready(fd, REAP_READ, deadline)) < 0)
			return rc;
	}
}

/* ---- the echo server, one task per connection --------------------------- */

static int echo_server(void *arg, void **result)
{
	int fd = (int)(intptr_t)arg, rc;
	char buf[128];

	(void)result;
	/* The task owns its end from its first instruction: a task always
	 * runs, even when it starts cancelled. */
	if ((rc = reap_defer_fd(NULL, fd, NULL)) < 0) {
		close(fd);
		return rc;
	}
	while ((rc = recv_msg(fd, buf, sizeof buf)) > 0) {
		if (strcmp(buf, "bye") == 0) {
			reap_sleep(20 * MS); /* a server that takes its time */
			rc = send_msg(fd, "ack");
			continue; /* the client closes next: end of file */
		}
		if ((rc = send_msg(fd, buf)) < 0)
			break;
	}
	return rc < 0 ? rc : 0;
}

/* ---- opening and closing connections ------------------------------------ */

/* The asynchronous close: goodbye, the server's ack, then close(). */
static int conn_close(void *arg, const reap_error *inflight)
{
	struct conn *c = arg;
	char buf[16];
	int rc;

	(void)inflight;
	if ((rc = send_msg(c->fd, "bye")) == 0 &&
	    (rc = recv_msg(c->fd, buf, sizeof buf)) >= 0)
		rc = rc > 0 && strcmp(buf, "ack") == 0 ? 0 : -EPROTO;
	printf("  conn %d: said bye, server %s; fd %d closed\n", c->id,
	       rc == 0 ? "acknowledged" : reap_errname(rc), c->fd);
	close(c->fd);
	return rc < 0 ? reap_raisef(rc, "goodbye on conn %d", c->id) : 0;
}

static int conn_open(reap_scope *pool_scope, reap_group *servers,
		     reap_chan *pool, int id)
{
	struct conn *c = reap_scope_alloc(pool_scope, sizeof *c);
	int sv[2], rc;

	if (c == NULL)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if ((rc = reap_task_spawn(servers, echo_server, (void *)(intptr_t)sv[1],
				  NULL)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	*c = (struct conn){.id = id, .fd = sv[0], .pool = pool};
	if ((rc = reap_defer_async(pool_scope, NULL, conn_close, c, NULL)) < 0) {
		close(sv[0]); /* the server sees end of file and ends */
		return rc;
	}
	return reap_chan_send(pool, c, REAP_FOREVER); /* room for all */
}

/* ---- clients ------------------------------------------------------------- */

struct client {
	const char *name;
	int rounds;
	reap_chan *pool;
	reap_event *in_cleanup; /* set when its give-back starts */
	struct conn *conn;      /* the loan */
	int cleanup_done;
};

/* The give-back, an asynchronous cleanup of the client's scope: check
 * that the connection is clean (one more round trip), then return it. */
static int give_back(void *arg, const reap_error *inflight)
{
	struct client *cl = arg;
	struct conn *c = cl->conn;
	char buf[64];
	int rc, cancelled;

	(void)inflight;
	if (cl->in_cleanup != NULL)
		reap_event_set(cl->in_cleanup);
	/* Suspensions inside a scope close are shielded: a cancellation
	 * that arrives now waits until the close is over. */
	reap_sleep(30 * MS);
	if ((rc = send_msg(c->fd, "ping")) == 0 &&
	    (rc = recv_msg(c->fd, buf, sizeof buf)) >= 0)
		rc = rc > 0 ? 0 : -EPROTO;
	reap_shield_begin(); /* shield_end tells whether it was cancelled */
	cancelled = reap_shield_end() == -ECANCELED;
	printf("  %s: cleanup done, conn %d back in the pool (%s)\n", cl->name,
	       c->id, cancelled ? "cancelled meanwhile: the cleanup ran to its end"
				: "not cancelled");
	cl->cleanup_done = 1;
	return reap_chan_send(c->pool, c, REAP_FOREVER) == 0 ? rc : -EIO;
}

static int client(void *arg, void **result)
{
	struct client *cl = arg;
	char msg[64], buf[64];
	void *item;
	int rc;

	(void)result;
	if ((rc = reap_chan_recv(cl->pool, &item, reap_now_ns() + 500 * MS)) < 0)
		return rc; /* borrow a connection, waiting for one at most 0.5 s */
	cl->conn = item;
	/* From here on the scope owns the loan: every exit gives it back. */
	if ((rc = reap_defer_async(NULL, NULL, give_back, cl, NULL)) < 0) {
		(void)reap_chan_send(cl->pool, cl->conn, REAP_FOREVER);
		return rc;
	}
	for (int i = 1; i <= cl->rounds; i++) {
		snprintf(msg, sizeof msg, "%s #%d", cl->name, i);
		if ((rc = send_msg(cl->conn->fd, msg)) < 0 ||
		    (rc = recv_msg(cl->conn->fd, buf, sizeof buf)) < 0)
			return rc;
		printf("  %s on conn %d: sent \"%s\", echo \"%s\"\n", cl->name,
		       cl->conn->id, msg, buf);
		reap_sleep(5 * MS);
	}
	return 0;
}

/* A task that blocks its loop with a libc sleep instead of reap_sleep():
 * 120 ms, over the detector's 50 ms threshold. nanosleep() may end early
 * with EINTR (the detector samples the thread's stack with a signal), so
 * it sleeps again for the rest. */
static int sloppy(void *arg, void **result)
{
	struct timespec ts = {0, 120 * 1000 * 1000};

	(void)arg;
	(void)result;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
	return 0;
}

/* ---- the main task --------------------------------------------------------- */

static int main_task(void *arg, void **result)
{
	static const char *names[] = {"alice", "bob", "carol", "dave"};
	struct client cls[4];
	reap_task *tasks[4], *t;
	reap_group *servers, *clients;
	reap_event *carol_in_cleanup;
	reap_error *chain = NULL;
	reap_chan *pool;
	int rc = 0, out, nspawned = 0;

	(void)arg;
	(void)result;
	/* The servers outlive the pool's scope: its closes need them. */
	if ((rc = reap_group_open(NULL, &servers)) < 0 ||
	    (rc = reap_chan_create(NULL, NCONN, &pool)) < 0 ||
	    (rc = reap_event_create(NULL, &carol_in_cleanup)) < 0)
		return rc;

	printf("1. A pool of %d connections, each served by an echo task.\n", NCONN);
	REAP_WITH_SCOPE(pool_scope, NULL, &rc) {
		for (int i = 1; i <= NCONN && rc == 0; i++)
			rc = conn_open(pool_scope, servers, pool, i);
		if (rc < 0)
			break;

		printf("2. Four clients share them; carol will be cancelled "
		       "during her cleanup.\n");
		/* Owned by the pool's scope, and younger than the
		 * connections: on an early exit it closes first. */
		if ((rc = reap_group_open(pool_scope, &clients)) < 0)
			break;
		for (int i = 0; i < 4; i++) {
			cls[i] = (struct client){.name = names[i], .rounds = 2,
						 .pool = pool};
			if (i == 2)
				cls[i].in_cleanup = carol_in_cleanup;
			if ((rc = reap_task_spawn_opts(clients,
						       &(reap_task_opts){.name = names[i]},
						       client, &cls[i], &tasks[i])) < 0)
				break;
			nspawned++;
		}
		if (rc == 0 &&
		    (rc = reap_event_wait(carol_in_cleanup, reap_now_ns() + REAP_SEC)) == 0) {
			printf("  main: carol is in her cleanup; cancel her now\n");
			reap_task_cancel(tasks[2]);
		}
		for (int i = 0; i < nspawned; i++) {
			out = reap_task_join(tasks[i], NULL);

			if (out < 0 || i == 2)
				printf("  join %s: %s\n", names[i], out == 0
				       ? "0 (her function had returned before the cancel)"
				       : reap_errname(out));
			if (out < 0 && rc == 0)
				rc = out;
		}
		out = reap_group_close(clients, &chain);
		if (rc == 0)
			rc = out;
		if (rc < 0) {
			reap_error_print(chain, stdout);
			break;
		}
		printf("  carol's cleanup %s\n", cls[2].cleanup_done
			       ? "finished although she was cancelled"
			       : "did NOT finish");

		printf("3. A task calls nanosleep(): the blocking detector reports it.\n");
		if ((rc = reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "sloppy"},
					       sloppy, NULL, &t)) < 0 ||
		    (rc = reap_task_join(t, NULL)) < 0)
			break;
		/* The watchdog's report comes from its own thread: give it
		 * a moment (it samples and symbolizes the loop's stack). */
		for (int i = 0; i < 200 && report_count() < 2; i++)
			reap_sleep(5 * MS);
		pthread_mutex_lock(&reports_lock);
		for (int i = 0; i < nreports && i < 4; i++)
			printf("  report hook got: %s\n", reports[i]);
		pthread_mutex_unlock(&reports_lock);

		printf("4. The pool's scope closes: each connection says bye and "
		       "waits for its ack.\n");
	}
	reap_error_free(chain);
	if (rc < 0)
		return rc;
	return reap_group_close(servers, NULL); /* each server saw its end of file */
}

int main(void)
{
	reap_loop_opts opts = {.detect_blocking = true, .blocking_ns = 50 * MS};
	reap_loop *loop;
	uint64_t t0 = reap_now_ns();
	int rc = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	reap_set_report_hook(on_report, NULL);
	REAP_WITH_SCOPE(s, NULL, &rc) {
		if ((rc = reap_loop_create_opts(s, &opts, &loop)) < 0)
			break;
		rc = reap_loop_run(loop, main_task, NULL, NULL);
	} /* the loop closes here */
	reap_set_report_hook(NULL, NULL);
	printf("5. Done in %llu ms: %s\n",
	       (unsigned long long)((reap_now_ns() - t0) / MS),
	       rc == 0 ? "no error" : reap_errname(rc));
	return rc == 0 ? 0 : 1;
}
