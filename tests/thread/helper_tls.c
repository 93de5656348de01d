/*
 * helper_tls MODE: thread-local destructors and threads still running at
 * process exit, checked from outside by test_tls.c.
 *
 *   return       main sets a value, returns from main: its destructor
 *                runs at exit (main-thread exit)
 *   exit         the same through exit(0) called on the main thread
 *   exit-thread  a reap thread calls exit(0) while main waits: the
 *                calling thread's values are destroyed
 *   pthread-exit a thread reap did not start sets a value and calls
 *                pthread_exit(): its destructor runs then, before main
 *                prints "joined"
 *   running      a reap thread named "daemon" sets a value and never
 *                stops; main returns: the thread is reported at exit with
 *                its value and the key's creation site
 *
 * Destructors print "helper_tls: dtor <value>"; the creating lines are
 * printed as "helper_tls: key line N" and "helper_tls: spawn line N".
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reap.h"

static reap_tls *key;
static volatile int daemon_ready;

static void dtor(void *ctx, void *value)
{
	(void)ctx;
	printf("helper_tls: dtor %s\n", (const char *)value);
	fflush(stdout);
}

static void make_key(void)
{
	int line = __LINE__ + 1;
	if (reap_tls_create(NULL, NULL, dtor, NULL, &key) < 0)
		exit(3);
	printf("helper_tls: key line %d\n", line);
	fflush(stdout);
}

static void set(const char *v)
{
	if (reap_tls_set(key, (void *)v) < 0)
		exit(4);
}

static void *raw_thread(void *arg)
{
	(void)arg;
	set("raw-thread");
	pthread_exit(NULL);
}

static void *exiting_thread(void *arg)
{
	(void)arg;
	set("exit-caller");
	exit(0);
}

static void *daemon_thread(void *arg)
{
	(void)arg;
	set("daemon-value");
	__atomic_store_n(&daemon_ready, 1, __ATOMIC_RELEASE);
	printf("helper_tls: daemon running\n");
	fflush(stdout);
	for (volatile int forever = 1; forever;)
		usleep(1000); /* never looks at its cancellation token */
	return NULL;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	make_key();
	if (strcmp(mode, "return") == 0) {
		set("main");
		printf("helper_tls: main returns\n");
		fflush(stdout);
		return 0;
	}
	if (strcmp(mode, "exit") == 0) {
		set("main");
		exit(0);
	}
	if (strcmp(mode, "exit-thread") == 0) {
		reap_thread *t;

		if (reap_thread_spawn(NULL, exiting_thread, NULL, &t) < 0)
			return 5;
		(void)reap_thread_join(t, NULL, NULL); /* never returns */
		return 6;
	}
	if (strcmp(mode, "pthread-exit") == 0) {
		pthread_t t;

		if (pthread_create(&t, NULL, raw_thread, NULL) != 0)
			return 5;
		pthread_join(t, NULL);
		printf("helper_tls: joined\n");
		fflush(stdout);
		return 0;
	}
	if (strcmp(mode, "running") == 0) {
		reap_thread_opts o = {.name = "daemon", .join_limit_ns = 50000000};
		reap_thread *t;
		int line = __LINE__ + 1;
		if (reap_thread_spawn_opts(NULL, &o, daemon_thread, NULL, &t) < 0)
			return 5;
		printf("helper_tls: spawn line %d\n", line);
		fflush(stdout);
		while (!__atomic_load_n(&daemon_ready, __ATOMIC_ACQUIRE))
			usleep(1000);
		return 0;
	}
	printf("helper_tls: unknown mode \"%s\"\n", mode);
	return 2;
}
