/*
 * The thread layer under concurrency. REAP_STRESS_THREADS driver threads
 * (default 2) each run REAP_STRESS_ITERS iterations (default 300):
 *
 *   spawn_join: open a scope, spawn 1-4 threads that end in every way
 *     (return, reap_thread_exit with an error, pthread_exit, a sleep
 *     until cancelled, a condition wait until cancelled), with resources
 *     in their root scopes; join some (join, join_until), leave the rest
 *     to the scope's close, which cancels them. A reporter thread takes
 *     ledger reports all along.
 *   cancel: a waiter (sleep, condition wait, fd wait) and a request race
 *     each other from the first instant: every wait must end -ECANCELED
 *     (or normally, for a wait that ended before), none may hang.
 *   tls: threads that hold values end while their key is being closed:
 *     every value is destroyed exactly once, by the one or the other.
 *
 * Checked: every thread ran and ended as it should, every cleanup and
 * destructor ran exactly once, and the ledger is empty at the end (the
 * runner checks that). Built for ThreadSanitizer too (Tsan build type).
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../runner.h"

static long nthreads, iters;

static void params(void)
{
	nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	iters = test_env_long("REAP_STRESS_ITERS", 300, 1, 10000000);
}

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

static void run_drivers(void *(*fn)(void *))
{
	pthread_t th[64];

	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_create(&th[i], NULL, fn, (void *)(intptr_t)i), 0);
	for (long i = 0; i < nthreads; i++) {
		void *res = NULL;

		ASSERT_EQ_INT(pthread_join(th[i], &res), 0);
		if (res != NULL)
			test_fail(__FILE__, __LINE__, "driver %ld: %s", i, (char *)res);
	}
}

/* ------------------------------------------------------------------ */
/* spawn/join                                                           */

static atomic_long started, ended_cleanups, expected_cleanups;
static atomic_int stop_reporter;

static void count_cleanup(void *arg)
{
	(void)arg;
	atomic_fetch_add_explicit(&ended_cleanups, 1, memory_order_relaxed);
}

enum { END_RETURN, END_EXIT_CODE, END_PTHREAD_EXIT, END_SLEEP, END_COND, END_KINDS };

static pthread_mutex_t cm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ccv = PTHREAD_COND_INITIALIZER;

static void *worker(void *arg)
{
	int kind = (int)(intptr_t)arg;

	atomic_fetch_add_explicit(&started, 1, memory_order_relaxed);
	if (reap_defer(NULL, count_cleanup, NULL, NULL) < 0)
		return (void *)"defer failed";
	switch (kind) {
	case END_RETURN:
		return NULL;
	case END_EXIT_CODE:
		reap_thread_exit(NULL, -EIO);
	case END_PTHREAD_EXIT:
		pthread_exit(NULL);
	case END_SLEEP:
		if (reap_cancel_sleep(NULL, 60000000000ull) != -ECANCELED)
			return (void *)"sleep not cancelled";
		return NULL;
	default: {
		int rc = 0;

		pthread_mutex_lock(&cm);
		while (rc == 0)
			rc = reap_cancel_cond_wait(NULL, &ccv, &cm, REAP_FOREVER);
		pthread_mutex_unlock(&cm);
		return rc == -ECANCELED ? NULL : (void *)"cond wait not cancelled";
	}
	}
}

static void *spawn_driver(void *arg)
{
	unsigned seed = (unsigned)(intptr_t)arg * 7919u + 1;

	for (long it = 0; it < iters; it++) {
		reap_scope *s;
		reap_thread *t[4];
		int kinds[4], n = 1 + (int)(rnd(&seed) % 4);

		if (reap_scope_open(NULL, &s) < 0)
			return "scope open failed";
		for (int i = 0; i < n; i++) {
			kinds[i] = (int)(rnd(&seed) % END_KINDS);
			if (reap_thread_spawn(s, worker, (void *)(intptr_t)kinds[i], &t[i]) < 0)
				return "spawn failed";
			atomic_fetch_add_explicit(&expected_cleanups, 1, memory_order_relaxed);
		}
		for (int i = 0; i < n; i++) {
			void *res = NULL;
			int rc;

			switch (rnd(&seed) % 3) {
			case 0: /* leave it to the close */
				break;
			case 1:
				if (kinds[i] >= END_SLEEP)
					reap_cancel_request(reap_thread_cancel_token(t[i]));
				rc = reap_thread_join(t[i], &res, NULL);
				if (res != NULL)
					return res;
				if (rc != (kinds[i] == END_EXIT_CODE ? -EIO : 0))
					return "wrong join result";
				break;
			default:
				rc = reap_thread_join_until(t[i], reap_now_ns(), NULL, NULL);
				if (rc == -ETIMEDOUT)
					break; /* still owned: the close joins it */
				if (rc != (kinds[i] == END_EXIT_CODE ? -EIO : 0))
					return "wrong join_until result";
			}
		}
		/* Threads that ended with -EIO and were not joined make the
		 * close fail with it; nothing else may. */
		{
			int rc = reap_scope_close(s);

			if (rc != 0 && rc != -EIO)
				return "close failed";
		}
	}
	return NULL;
}

static void *reporter(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_reporter)) {
		char *text = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&text, &len);

		if (m == NULL)
			continue;
		reap_ledger_report(m, REAP_REPORT_TREE | REAP_REPORT_LEAKS);
		fclose(m);
		free(text);
		usleep(500);
	}
	return NULL;
}

TEST(stress_thread_spawn_join_and_close_races)
{
	pthread_t rep;

	params();
	ASSERT_EQ_INT(pthread_create(&rep, NULL, reporter, NULL), 0);
	run_drivers(spawn_driver);
	atomic_store(&stop_reporter, 1);
	ASSERT_EQ_INT(pthread_join(rep, NULL), 0);
	ASSERT_EQ_INT(atomic_load(&started), atomic_load(&expected_cleanups));
	ASSERT_EQ_INT(atomic_load(&ended_cleanups), atomic_load(&expected_cleanups));
	ASSERT_GE_INT(atomic_load(&started), iters * nthreads);
	test_reports_clear(); /* chains of unjoined -EIO threads */
}

/* ------------------------------------------------------------------ */
/* cancel                                                               */

struct cwait {
	reap_cancel *c;
	int kind;
	int fd;
	pthread_mutex_t m;
	pthread_cond_t cv;
	int rc;
};

static void *cwaiter(void *arg)
{
	struct cwait *w = arg;

	switch (w->kind) {
	case 0:
		w->rc = reap_cancel_sleep(w->c, 60000000000ull);
		break;
	case 1:
		pthread_mutex_lock(&w->m);
		do
			w->rc = reap_cancel_cond_wait(w->c, &w->cv, &w->m, REAP_FOREVER);
		while (w->rc == 0);
		pthread_mutex_unlock(&w->m);
		break;
	default:
		w->rc = reap_cancel_wait_fd(w->c, w->fd, POLLIN, REAP_FOREVER);
	}
	return NULL;
}

static void *cancel_driver(void *arg)
{
	unsigned seed = (unsigned)(intptr_t)arg * 104729u + 3;
	int fds[2];

	if (pipe(fds) < 0)
		return "pipe failed";
	for (long it = 0; it < iters; it++) {
		struct cwait w = {.kind = (int)(rnd(&seed) % 3), .fd = fds[0]};
		reap_scope *s;
		pthread_t th;
		unsigned delay = rnd(&seed) % 4;

		pthread_mutex_init(&w.m, NULL);
		pthread_cond_init(&w.cv, NULL);
		if (reap_scope_open(NULL, &s) < 0 || reap_cancel_create(s, &w.c) < 0)
			return "setup failed";
		if (pthread_create(&th, NULL, cwaiter, &w) != 0)
			return "pthread_create failed";
		if (delay == 1)
			sched_yield();
		else if (delay > 1)
			usleep(delay * 50);
		if (w.kind == 1 && rnd(&seed) % 2) {
			/* Request with the waiter's mutex held. */
			pthread_mutex_lock(&w.m);
			reap_cancel_request(w.c);
			pthread_mutex_unlock(&w.m);
		} else {
			reap_cancel_request(w.c);
		}
		pthread_join(th, NULL);
		if (w.rc != -ECANCELED)
			return "a wait did not end with -ECANCELED";
		if (reap_scope_close(s) != 0)
			return "close failed";
		pthread_mutex_destroy(&w.m);
		pthread_cond_destroy(&w.cv);
	}
	close(fds[0]);
	close(fds[1]);
	return NULL;
}

TEST(stress_cancel_request_races_every_wait)
{
	params();
	run_drivers(cancel_driver);
}

/* ------------------------------------------------------------------ */
/* tls                                                                  */

static atomic_long tls_made, tls_destroyed;

static int tls_init(void *ctx, void **v)
{
	(void)ctx;
	*v = malloc(16);
	if (*v == NULL)
		return -ENOMEM;
	atomic_fetch_add_explicit(&tls_made, 1, memory_order_relaxed);
	return 0;
}

static void tls_dtor(void *ctx, void *v)
{
	(void)ctx;
	atomic_fetch_add_explicit(&tls_destroyed, 1, memory_order_relaxed);
	free(v);
}

struct holder {
	reap_tls *k;
	atomic_int done_using;
};

static void *tls_user(void *arg)
{
	struct holder *h = arg;
	void *v;

	if (reap_tls_get(h->k, &v) < 0)
		return (void *)1;
	/* Done with the key: from here it may close while we exit. */
	atomic_fetch_add(&h->done_using, 1);
	return NULL;
}

static void *tls_driver(void *arg)
{
	unsigned seed = (unsigned)(intptr_t)arg * 15485863u + 5;

	for (long it = 0; it < iters; it++) {
		reap_scope *outer, *ks;
		struct holder h = {0};
		reap_thread *t;
		int n = 1 + (int)(rnd(&seed) % 3);
		void *mine;

		if (reap_scope_open(NULL, &outer) < 0 || reap_scope_open(NULL, &ks) < 0 ||
		    reap_tls_create(ks, tls_init, tls_dtor, NULL, &h.k) < 0)
			return "setup failed";
		for (int i = 0; i < n; i++)
			if (reap_thread_spawn(outer, tls_user, &h, &t) < 0)
				return "spawn failed";
		if (rnd(&seed) % 2 && reap_tls_get(h.k, &mine) < 0)
			return "get failed";
		while (atomic_load(&h.done_using) < n)
			sched_yield();
		/* Threads are exiting now: the close races their destructors. */
		if (reap_scope_close(ks) != 0 || reap_scope_close(outer) != 0)
			return "close failed";
	}
	return NULL;
}

TEST(stress_tls_key_close_races_thread_exit)
{
	params();
	run_drivers(tls_driver);
	ASSERT_GE_INT(atomic_load(&tls_made), iters * nthreads);
	ASSERT_EQ_INT(atomic_load(&tls_destroyed), atomic_load(&tls_made));
}
