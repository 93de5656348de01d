/*
 * A thread still running at exit is reported, never silently dropped.
 *
 * Python:
 *
 *     def poll():
 *         conn = local.conn = connect()      # a thread-local connection
 *         while True:                        # never looks at a stop flag
 *             conn.poll(); time.sleep(0.01)
 *
 *     threading.Thread(target=poll, daemon=True).start()
 *     sys.exit(0)      # the daemon thread dies mid-poll; conn is never
 *                      # closed and nothing says so
 *
 * C with reap, below. The program runs itself as a child process with
 * REAP_DEBUG=leaks: the child starts such a poller and returns from
 * main. At exit reap cancels the poller, gives it its join limit, and
 * when it still runs reports it: where it was spawned, who owned it, its
 * thread-local connection, what its root scope holds, and an open thread
 * in the leak report. The parent shows that report, then does it
 * right: a poller that waits with reap_cancel_sleep() stops when its
 * owner closes, its connection is closed by its thread-local destructor,
 * and nothing is left.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reap.h"

/* A "connection": an fd on /dev/null, one per thread, built lazily. */
static int conn_open(void *ctx, void **value)
{
	int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	(void)ctx;
	if (fd < 0)
		return -errno;
	*value = (void *)(intptr_t)(fd + 1); /* +1: never NULL */
	return 0;
}

static void conn_close(void *ctx, void *value)
{
	(void)ctx;
	close((int)(intptr_t)value - 1);
	printf("  [poller's connection closed by its thread-local destructor]\n");
	fflush(stdout);
}

static reap_tls *conn;
static volatile int polling;

/* The daemon-style poller: it never looks at its cancellation token. */
static void *stubborn_poller(void *arg)
{
	void *c;

	(void)arg;
	if (reap_tls_get(conn, &c) < 0)
		return NULL;
	/* A log file in the thread's root scope, for the report to show. */
	{
		int log = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (log < 0 || reap_defer_fd(NULL, log, NULL) < 0)
			return NULL;
	}
	__atomic_store_n(&polling, 1, __ATOMIC_RELEASE);
	for (;;)
		usleep(10000); /* poll(c) ... forever */
	return NULL;
}

/* The cooperative poller: every wait is a cancellation point. */
static void *poller(void *arg)
{
	void *c;

	(void)arg;
	if (reap_tls_get(conn, &c) < 0)
		return NULL;
	__atomic_store_n(&polling, 1, __ATOMIC_RELEASE);
	while (reap_cancel_sleep(NULL, 10000000) == 0)
		; /* poll(c) every 10 ms until cancelled */
	return NULL;
}

static int child(void)
{
	reap_thread_opts o = {.name = "poller", .join_limit_ns = 100000000};
	reap_thread *t;

	if (reap_tls_create(NULL, conn_open, conn_close, NULL, &conn) < 0 ||
	    reap_thread_spawn_opts(NULL, &o, stubborn_poller, NULL, &t) < 0)
		return 1;
	while (!__atomic_load_n(&polling, __ATOMIC_ACQUIRE))
		usleep(1000);
	printf("child: returning from main with the poller still running\n");
	fflush(stdout);
	return 0; /* reap reports the poller at exit */
}

/* Run ourselves as the child, with REAP_DEBUG=leaks; return its output. */
static char *run_child(const char *self, int *status)
{
	int p[2];
	pid_t pid;
	char *out = NULL, buf[4096];
	size_t len = 0;
	ssize_t n;

	if (pipe(p) < 0)
		return NULL;
	fflush(NULL);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		setenv("REAP_DEBUG", "leaks", 1);
		execl(self, self, "--child", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], buf, sizeof buf)) > 0) {
		char *o = realloc(out, len + (size_t)n + 1);

		if (o == NULL)
			break;
		out = o;
		memcpy(out + len, buf, (size_t)n);
		len += (size_t)n;
		out[len] = '\0';
	}
	close(p[0]);
	waitpid(pid, status, 0);
	return out;
}

int main(int argc, char **argv)
{
	char self[4096];
	ssize_t n;
	int status = 0, rc = 0;
	char *out;

	if (argc > 1 && strcmp(argv[1], "--child") == 0)
		return child();

	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';

	printf("1. A poller that never checks for cancellation, left running at "
	       "exit (child process, REAP_DEBUG=leaks):\n\n");
	out = run_child(self, &status);
	if (out == NULL)
		return 1;
	for (const char *p = out; *p != '\0';) {
		const char *eol = strchr(p, '\n');
		int len = eol ? (int)(eol - p) : (int)strlen(p);

		printf("  | %.*s\n", len, p);
		p += len + (eol != NULL);
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
	    strstr(out, "thread \"poller\"") == NULL ||
	    strstr(out, "is still running at exit") == NULL ||
	    strstr(out, "thread-local value") == NULL ||
	    strstr(out, "in its root scope") == NULL ||
	    strstr(out, "Open thread \"poller\"") == NULL) {
		printf("\nthe report is not what was expected\n");
		rc = 1;
	}
	free(out);

	printf("\n2. The same poller waiting with reap_cancel_sleep(), owned by a "
	       "scope:\n\n");
	{
		reap_scope *s;
		reap_thread *t;
		reap_thread_opts o = {.name = "poller"};

		if (reap_scope_open(NULL, &s) < 0 ||
		    reap_tls_create(s, conn_open, conn_close, NULL, &conn) < 0 ||
		    reap_thread_spawn_opts(s, &o, poller, NULL, &t) < 0)
			return 1;
		while (!__atomic_load_n(&polling, __ATOMIC_ACQUIRE))
			usleep(1000);
		printf("  closing its owner: cancel, join, close the connection\n");
		fflush(stdout);
		if (reap_scope_close(s) != 0)
			rc = 1;
	}
	printf("  %zu resources live afterwards\n", reap_ledger_count());
	return rc == 0 && reap_ledger_count() == 0 ? 0 : 1;
}
