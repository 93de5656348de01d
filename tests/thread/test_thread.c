/*
 * Scoped threads and cancellation tokens: spawn and join, results and
 * error chains, the owner's close (cancel, join, report), cancellation of
 * a sleeping thread and of threads waiting on a condition variable and
 * on an fd, the thread's root scope, pthread_exit and reap_thread_exit,
 * and a thread that does not stop.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

#define MS 1000000ull

static atomic_int ran, cleaned;

static void *ret_arg(void *arg)
{
	atomic_fetch_add(&ran, 1);
	return arg;
}

static void bump_cleaned(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cleaned, 1);
}

/* Poll until the ledger and the allocator are back to the test's start
 * (a thread that ends by itself finishes after we can see it). */
static void wait_settled(void)
{
	for (int i = 0; i < 5000; i++) {
		if (reap_ledger_count() == 0 && reap_alloc_live() == test_alloc_base)
			return;
		usleep(1000);
	}
}

TEST(thread_spawn_join_result)
{
	reap_thread *t;
	void *res = NULL;
	reap_error *chain = (reap_error *)1;
	int x;

	ASSERT_OK(reap_thread_spawn(NULL, ret_arg, &x, &t));
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_thread_join(t, &res, &chain));
	ASSERT_EQ_PTR(res, &x);
	ASSERT_NULL(chain);
	ASSERT_EQ_INT(atomic_load(&ran), 1);
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
}

TEST(thread_is_in_the_ledger_as_a_thread_of_its_scope)
{
	reap_scope *s;
	reap_thread *t;
	reap_ledger_stat st;
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "owner"));
	ASSERT_OK(reap_thread_spawn(s, ret_arg, NULL, &t));
	ASSERT_OK(reap_ledger_stats("thread", &st));
	ASSERT_EQ_SIZE(st.live, 1);
	m = open_memstream(&text, &len);
	reap_ledger_report(m, REAP_REPORT_LEAKS);
	fclose(m);
	ASSERT_CONTAINS(text, "Open thread");
	ASSERT_CONTAINS(text, "test_thread.c");
	ASSERT_CONTAINS(text, "owner: root/owner");
	free(text);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_OK(reap_ledger_stats("thread", &st));
	ASSERT_EQ_SIZE(st.live, 0);
}

/* The thread's root scope is its current scope and closes when it ends. */
static void *use_root(void *arg)
{
	reap_scope *cur = reap_scope_current();

	*(reap_scope **)arg = cur;
	if (reap_defer(NULL, bump_cleaned, NULL, NULL) < 0)
		return (void *)1;
	return NULL;
}

TEST(thread_root_scope_closes_at_thread_end)
{
	reap_thread *t;
	reap_scope *root = NULL;
	void *res = (void *)2;

	/* The runner turns leak reports on; this is the quiet default. */
	ASSERT_OK(reap_debug_set(""));
	ASSERT_OK(reap_thread_spawn(NULL, use_root, &root, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_NOT_NULL(root);
	ASSERT_NE_PTR(root, reap_scope_root());
	ASSERT_EQ_INT(atomic_load(&cleaned), 1);
	/* Not reported without REAP_DEBUG=leaks. */
	ASSERT_TRUE(strstr(test_reports(), "still open in its root") == NULL);
}

TEST(thread_root_leftovers_reported_under_leaks)
{
	reap_thread_opts o = {.name = "leaky-worker"};
	reap_thread *t;
	reap_scope *root;

	ASSERT_OK(reap_debug_set("leaks"));
	ASSERT_OK(reap_thread_spawn_opts(NULL, &o, use_root, &root, &t));
	ASSERT_OK(reap_thread_join(t, NULL, NULL));
	ASSERT_OK(reap_debug_set(""));
	ASSERT_EQ_INT(atomic_load(&cleaned), 1);
	ASSERT_CONTAINS(test_reports(), "thread \"leaky-worker\"");
	ASSERT_CONTAINS(test_reports(), "1 resource(s) still open in its root scope");
	ASSERT_CONTAINS(test_reports(), "test_thread.c");
	ASSERT_CONTAINS(test_reports(), "use_root()");
}

/* A failing exit cleanup in the root: the chain reaches the joiner. */
static int fail_eio(void *arg, const reap_error *in)
{
	(void)arg;
	(void)in;
	return reap_raisef(-EIO, "disk %s gone", "sda");
}

static void *root_fails(void *arg)
{
	(void)arg;
	if (reap_defer_exit(NULL, NULL, fail_eio, NULL, NULL) < 0)
		return (void *)1;
	return NULL;
}

TEST(thread_join_gives_the_root_error_chain)
{
	reap_thread *t;
	reap_error *chain = NULL;

	ASSERT_OK(reap_thread_spawn(NULL, root_fails, NULL, &t));
	ASSERT_EQ_INT(reap_thread_join(t, NULL, &chain), -EIO);
	ASSERT_NOT_NULL(chain);
	ASSERT_EQ_INT(chain->code, -EIO);
	ASSERT_EQ_STR(chain->msg, "disk sda gone");
	reap_error_free(chain);
}

TEST(thread_error_is_chained_into_the_owner_close)
{
	reap_scope *s;
	reap_thread *t;
	reap_error *chain = NULL;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_thread_spawn(s, root_fails, NULL, &t));
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EIO);
	ASSERT_NOT_NULL(chain);
	ASSERT_CONTAINS(chain->msg, "disk sda gone");
	ASSERT_CONTAINS(chain->msg, "thread \"T");
	reap_error_free(chain);
}

static void *exits_with_code(void *arg)
{
	if (reap_defer(NULL, bump_cleaned, NULL, NULL) < 0)
		return NULL;
	reap_thread_exit(arg, reap_raisef(-EPIPE, "peer went away"));
}

TEST(thread_exit_with_code_closes_root_and_gives_chain)
{
	reap_thread *t;
	reap_error *chain = NULL;
	void *res = NULL;
	int x;

	ASSERT_OK(reap_thread_spawn(NULL, exits_with_code, &x, &t));
	ASSERT_EQ_INT(reap_thread_join(t, &res, &chain), -EPIPE);
	ASSERT_EQ_PTR(res, &x);
	ASSERT_EQ_INT(atomic_load(&cleaned), 1);
	ASSERT_NOT_NULL(chain);
	ASSERT_EQ_STR(chain->msg, "peer went away");
	ASSERT_CONTAINS(chain->site->func, "exits_with_code");
	reap_error_free(chain);
}

static void *calls_pthread_exit(void *arg)
{
	if (reap_defer(NULL, bump_cleaned, NULL, NULL) < 0)
		return NULL;
	pthread_exit(arg);
}

TEST(thread_pthread_exit_closes_root)
{
	reap_thread *t;
	void *res = NULL;
	int x;

	ASSERT_OK(reap_thread_spawn(NULL, calls_pthread_exit, &x, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_EQ_PTR(res, &x);
	ASSERT_EQ_INT(atomic_load(&cleaned), 1);
}

/* ------------------------------------------------------------------ */
/* Cancellation                                                         */

static atomic_int result_code = 1;

static void *sleeper(void *arg)
{
	(void)arg;
	atomic_store(&result_code, reap_cancel_sleep(NULL, 60000 * MS));
	return NULL;
}

TEST(thread_owner_close_cancels_a_sleeping_thread)
{
	reap_scope *s;
	reap_thread *t;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_thread_spawn(s, sleeper, NULL, &t));
	usleep(20000); /* most likely asleep by now; either way it stops */
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&result_code), -ECANCELED);
}

TEST(cancel_sleep_runs_its_time_without_request)
{
	reap_scope *s;
	reap_cancel *c;
	uint64_t t0 = reap_now_ns();

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cancel_create(s, &c));
	ASSERT_EQ_INT(reap_cancel_sleep(c, 2 * MS), 0);
	ASSERT_GE_INT((long long)(reap_now_ns() - t0), (long long)(2 * MS));
	ASSERT_FALSE(reap_cancel_requested(c));
	reap_cancel_request(c);
	ASSERT_TRUE(reap_cancel_requested(c));
	ASSERT_EQ_INT(reap_cancel_sleep(c, 60000 * MS), -ECANCELED);
	/* No token on the main thread: a plain sleep. */
	ASSERT_NULL(reap_cancel_self());
	ASSERT_FALSE(reap_cancel_requested(NULL));
	ASSERT_EQ_INT(reap_cancel_sleep(NULL, 1000), 0);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

static pthread_mutex_t wm = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wcv = PTHREAD_COND_INITIALIZER;
static int wpred;
static atomic_int waiting;

static void *cond_waiter(void *arg)
{
	int rc = 0;

	pthread_mutex_lock(&wm);
	atomic_store(&waiting, 1);
	while (!wpred && rc == 0)
		rc = reap_cancel_cond_wait(arg, &wcv, &wm, REAP_FOREVER);
	pthread_mutex_unlock(&wm);
	atomic_store(&result_code, rc);
	return NULL;
}

TEST(thread_owner_close_cancels_a_thread_waiting_on_a_condition)
{
	reap_scope *s;
	reap_thread *t;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_thread_spawn(s, cond_waiter, NULL, &t));
	while (!atomic_load(&waiting))
		usleep(1000);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&result_code), -ECANCELED);
}

/* The requester holds the waiter's mutex: the wake still arrives. */
TEST(cancel_cond_wait_while_requester_holds_the_mutex)
{
	reap_scope *s;
	reap_cancel *c;
	reap_thread *t;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cancel_create(s, &c));
	ASSERT_OK(reap_thread_spawn(NULL, cond_waiter, c, &t));
	while (!atomic_load(&waiting))
		usleep(1000);
	pthread_mutex_lock(&wm);
	reap_cancel_request(c);
	pthread_mutex_unlock(&wm);
	ASSERT_OK(reap_thread_join(t, NULL, NULL));
	ASSERT_EQ_INT(atomic_load(&result_code), -ECANCELED);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

TEST(cancel_cond_wait_signal_and_deadline)
{
	reap_scope *s;
	reap_cancel *c;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cancel_create(s, &c));
	pthread_mutex_lock(&wm);
	ASSERT_EQ_INT(reap_cancel_cond_wait(c, &wcv, &wm, reap_now_ns() + 5 * MS),
		      -ETIMEDOUT);
	ASSERT_EQ_INT(reap_cancel_cond_wait(c, &wcv, &wm, reap_now_ns()), -ETIMEDOUT);
	pthread_mutex_unlock(&wm);
	/* A signal ends the wait with 0. */
	{
		reap_thread *t;

		ASSERT_OK(reap_thread_spawn(NULL, cond_waiter, c, &t));
		while (!atomic_load(&waiting))
			usleep(1000);
		pthread_mutex_lock(&wm);
		wpred = 1;
		pthread_cond_broadcast(&wcv);
		pthread_mutex_unlock(&wm);
		ASSERT_OK(reap_thread_join(t, NULL, NULL));
		ASSERT_EQ_INT(atomic_load(&result_code), 0);
	}
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

static int pipe_fds[2];

static void *fd_waiter(void *arg)
{
	(void)arg;
	atomic_store(&waiting, 1);
	atomic_store(&result_code,
		     reap_cancel_wait_fd(NULL, pipe_fds[0], POLLIN, REAP_FOREVER));
	return NULL;
}

TEST(thread_owner_close_cancels_a_thread_waiting_on_an_fd)
{
	reap_scope *s;
	reap_thread *t;

	ASSERT_OK(pipe(pipe_fds) == 0 ? 0 : -errno);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_fd(s, pipe_fds[0], NULL));
	ASSERT_OK(reap_defer_fd(s, pipe_fds[1], NULL));
	ASSERT_OK(reap_thread_spawn(s, fd_waiter, NULL, &t));
	while (!atomic_load(&waiting))
		usleep(1000);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&result_code), -ECANCELED);
}

TEST(cancel_wait_fd_ready_and_deadline)
{
	reap_scope *s;
	reap_cancel *c;

	ASSERT_OK(pipe(pipe_fds) == 0 ? 0 : -errno);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_fd(s, pipe_fds[0], NULL));
	ASSERT_OK(reap_defer_fd(s, pipe_fds[1], NULL));
	ASSERT_OK(reap_cancel_create(s, &c));
	ASSERT_EQ_INT(reap_cancel_wait_fd(c, pipe_fds[0], POLLIN, reap_now_ns() + 2 * MS),
		      -ETIMEDOUT);
	ASSERT_EQ_INT(reap_cancel_wait_fd(c, pipe_fds[1], POLLOUT, REAP_FOREVER),
		      POLLOUT);
	ASSERT_EQ_INT(write(pipe_fds[1], "x", 1), 1);
	ASSERT_EQ_INT(reap_cancel_wait_fd(NULL, pipe_fds[0], POLLIN, REAP_FOREVER),
		      POLLIN);
	ASSERT_EQ_INT(reap_cancel_wait_fd(c, -1, POLLIN, REAP_FOREVER), -EBADF);
	reap_cancel_request(c);
	ASSERT_EQ_INT(reap_cancel_wait_fd(c, pipe_fds[0], POLLIN, REAP_FOREVER),
		      -ECANCELED);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* A token shared by several threads: one request stops them all. */
static void *sleep_on(void *arg)
{
	return reap_cancel_sleep(arg, 60000 * MS) == -ECANCELED ? arg : NULL;
}

TEST(cancel_shared_token_stops_every_thread)
{
	reap_scope *s;
	reap_cancel *c;
	reap_thread *t[3];
	reap_thread_opts o = {0};

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cancel_create(s, &c));
	o.cancel = c;
	for (int i = 0; i < 3; i++) {
		ASSERT_OK(reap_thread_spawn_opts(s, &o, sleep_on, NULL, &t[i]));
		ASSERT_EQ_PTR(reap_thread_cancel_token(t[i]), c);
	}
	reap_cancel_request(c);
	for (int i = 0; i < 3; i++) {
		void *res = (void *)1;

		ASSERT_OK(reap_thread_join(t[i], &res, NULL));
		ASSERT_NULL(res); /* NULL arg: sleep_on saw the cancel */
	}
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

static void *own_token(void *arg)
{
	*(reap_cancel **)arg = reap_cancel_self();
	return reap_thread_self();
}

TEST(thread_self_name_and_token)
{
	reap_thread_opts o = {.name = "named-one"};
	reap_thread *t;
	reap_cancel *c = NULL;
	void *self = NULL;

	ASSERT_NULL(reap_thread_self());
	ASSERT_OK(reap_thread_spawn_opts(NULL, &o, own_token, &c, &t));
	ASSERT_EQ_STR(reap_thread_name(t), "named-one");
	{
		reap_cancel *tok = reap_thread_cancel_token(t);

		ASSERT_OK(reap_thread_join(t, &self, NULL));
		ASSERT_EQ_PTR(c, tok);
		ASSERT_EQ_PTR(self, t);
	}
}

TEST(thread_default_name_is_its_number)
{
	reap_thread *t;
	const char *n;

	ASSERT_OK(reap_thread_spawn(NULL, sleep_on, NULL, &t));
	while (strcmp((n = reap_thread_name(t)), "T?") == 0)
		usleep(1000);
	ASSERT_EQ_INT(n[0], 'T');
	ASSERT_GT_INT(atoi(n + 1), 1);
	reap_cancel_request(reap_thread_cancel_token(t));
	ASSERT_OK(reap_thread_join(t, NULL, NULL));
}

TEST(thread_join_until_times_out_then_joins)
{
	reap_thread *t;

	ASSERT_OK(reap_thread_spawn(NULL, sleep_on, NULL, &t));
	ASSERT_EQ_INT(reap_thread_join_until(t, reap_now_ns() + 2 * MS, NULL, NULL),
		      -ETIMEDOUT);
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	reap_cancel_request(reap_thread_cancel_token(t));
	ASSERT_OK(reap_thread_join_until(t, reap_now_ns() + 10000 * MS, NULL, NULL));
}

static void *join_self(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)reap_thread_join(reap_thread_self(), NULL, NULL);
}

TEST(thread_join_of_itself_is_edeadlk)
{
	reap_thread *t;
	void *res;

	ASSERT_OK(reap_thread_spawn(NULL, join_self, NULL, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_EQ_INT((intptr_t)res, -EDEADLK);
}

/* A thread spawns its own threads into its root: its end joins them. */
static void *parent_of_two(void *arg)
{
	reap_thread *a, *b;

	(void)arg;
	if (reap_thread_spawn(NULL, ret_arg, NULL, &a) < 0 ||
	    reap_thread_spawn(NULL, sleep_on, NULL, &b) < 0)
		return (void *)1;
	return NULL;
}

TEST(thread_end_joins_the_threads_it_owns)
{
	reap_thread *t;
	void *res = (void *)2;

	ASSERT_OK(reap_thread_spawn(NULL, parent_of_two, NULL, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&ran), 1);
}

/* ------------------------------------------------------------------ */
/* A thread that does not stop                                          */

static atomic_int release_stubborn;

static void *stubborn(void *arg)
{
	(void)arg;
	while (!atomic_load(&release_stubborn))
		usleep(1000);
	return NULL;
}

TEST(thread_that_does_not_stop_is_reported_and_left_running)
{
	reap_thread_opts o = {.name = "stubborn", .join_limit_ns = 20 * MS};
	reap_scope *s;
	reap_thread *t;
	reap_error *chain = NULL;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "svc"));
	ASSERT_OK(reap_thread_spawn_opts(s, &o, stubborn, NULL, &t));
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -ETIMEDOUT);
	ASSERT_NOT_NULL(chain);
	ASSERT_CONTAINS(chain->msg, "stubborn");
	reap_error_free(chain);
	ASSERT_CONTAINS(test_reports(), "thread \"stubborn\"");
	ASSERT_CONTAINS(test_reports(), "did not stop within 0.020s");
	ASSERT_CONTAINS(test_reports(), "owned by root/svc");
	ASSERT_CONTAINS(test_reports(), "test_thread.c");
	/* Still counted, and in the leak report, until it ends. */
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	{
		char *text = NULL;
		size_t len = 0;
		FILE *m = open_memstream(&text, &len);

		reap_ledger_report(m, REAP_REPORT_LEAKS);
		fclose(m);
		ASSERT_CONTAINS(text, "Open thread \"stubborn\"");
		ASSERT_CONTAINS(text, "SUMMARY: reap: 1 open resource(s), 1 thread");
		free(text);
	}
	atomic_store(&release_stubborn, 1);
	wait_settled();
}
