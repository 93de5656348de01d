/*
 * helper_exit MODE: returns from main with resources open (MODE "leak") or
 * with everything closed (MODE "clean"), for the exit-time leak report.
 *
 * "leak" leaves a scope named "leaky-conn" open, holding an fd on
 * /dev/null and a plain deferred cleanup that prints a marker when it runs
 * (at exit, when reap closes the root scope). It prints the lines of the
 * three creating calls first, so that the test can look for them in the
 * report. "exit-in-thread" registers a cleanup in the process root and
 * has a second thread call exit().
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reap.h"

static int leaked_fd = -1;

static void leaked_cleanup(void *arg)
{
	(void)arg;
	/* Newest first: the fd, older than this cleanup, is still open. */
	if (leaked_fd >= 0 && fcntl(leaked_fd, F_GETFD) == -1)
		printf("helper_exit: fd closed before the newer cleanup ran\n");
	printf("helper_exit: leaked cleanup ran\n");
	fflush(stdout);
}

/* A destructor of the executable runs after every atexit handler,
 * reap's included: by then reap must have closed the leaked fd. */
__attribute__((destructor)) static void after_reap(void)
{
	if (leaked_fd < 0)
		return;
	if (fcntl(leaked_fd, F_GETFD) == -1)
		printf("helper_exit: fd closed at exit\n");
	else
		printf("helper_exit: fd still open at exit\n");
	fflush(stdout);
}

static void noop(void *arg) { (void)arg; }

static void root_cleanup(void *arg)
{
	(void)arg;
	printf("helper_exit: root cleanup ran\n");
	fflush(stdout);
}

/* "exit-in-thread": another thread ends the process while main waits. */
static void *exit_from_thread(void *arg)
{
	(void)arg;
	exit(0);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int line_scope, line_fd, line_defer;
	reap_scope *s;

	if (strcmp(mode, "leak") == 0) {
		line_scope = __LINE__ + 1;
		if (reap_scope_open(NULL, &s) < 0)
			return 1;
		if (reap_scope_name(s, "leaky-%s", "conn") < 0)
			return 1;
		if ((leaked_fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
			return 1;
		line_fd = __LINE__ + 1;
		if (reap_defer_fd(s, leaked_fd, NULL) < 0)
			return 1;
		line_defer = __LINE__ + 1;
		if (reap_defer(s, leaked_cleanup, NULL, NULL) < 0)
			return 1;
		printf("helper_exit: lines scope=%d fd=%d defer=%d\n", line_scope,
		       line_fd, line_defer);
		fflush(stdout);
		return 0; /* s is never closed */
	}
	if (strcmp(mode, "clean") == 0) {
		if (reap_scope_open(NULL, &s) < 0)
			return 1;
		if (reap_defer(s, noop, NULL, NULL) < 0)
			return 1;
		if (reap_scope_close(s) != 0)
			return 1;
		printf("helper_exit: clean\n");
		fflush(stdout);
		return 0;
	}
	if (strcmp(mode, "exit-in-thread") == 0) {
		pthread_t t;

		if (reap_defer(NULL, root_cleanup, NULL, NULL) < 0 ||
		    pthread_create(&t, NULL, exit_from_thread, NULL) != 0)
			return 1;
		pthread_join(t, NULL); /* never returns: the thread exits */
		return 3;
	}
	printf("helper_exit: unknown mode \"%s\"\n", mode);
	return 2;
}
