/*
 * Thread-local resources: lazy per-thread init, destructors at thread
 * exit (reap threads, threads reap did not start, pthread_exit, and the
 * main thread at process exit, checked from outside through helper_tls),
 * bounded re-runs, key close, set/peek semantics, and a thread still
 * running at exit reported with its values.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

static atomic_int inits, dtors;
static atomic_long dtor_sum;

struct val {
	long n;
};

static int make_val(void *ctx, void **v)
{
	struct val *p = malloc(sizeof *p);

	if (p == NULL)
		return -ENOMEM;
	p->n = atomic_fetch_add(&inits, 1) + 1;
	if (ctx != NULL)
		(*(atomic_int *)ctx)++;
	*v = p;
	return 0;
}

static void free_val(void *ctx, void *v)
{
	(void)ctx;
	atomic_fetch_add(&dtors, 1);
	atomic_fetch_add(&dtor_sum, ((struct val *)v)->n);
	free(v);
}

static reap_tls *key;

static void *get_twice(void *arg)
{
	void *a, *b;

	(void)arg;
	if (reap_tls_get(key, &a) < 0 || reap_tls_get(key, &b) < 0 || a != b)
		return NULL;
	return a;
}

TEST(tls_lazy_init_once_per_thread_and_dtor_at_thread_exit)
{
	reap_scope *s;
	reap_thread *t[4];
	void *res[4];
	void *mine;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, make_val, free_val, NULL, &key));
	ASSERT_NULL(reap_tls_peek(key));
	for (int i = 0; i < 4; i++)
		ASSERT_OK(reap_thread_spawn(s, get_twice, NULL, &t[i]));
	for (int i = 0; i < 4; i++) {
		ASSERT_OK(reap_thread_join(t[i], &res[i], NULL));
		ASSERT_NOT_NULL(res[i]);
	}
	/* Each thread built its own, and destroyed it at its exit. */
	ASSERT_EQ_INT(atomic_load(&inits), 4);
	ASSERT_EQ_INT(atomic_load(&dtors), 4);
	ASSERT_EQ_INT(atomic_load(&dtor_sum), 1 + 2 + 3 + 4);
	/* The main thread's own value: destroyed when the key closes. */
	ASSERT_OK(reap_tls_get(key, &mine));
	ASSERT_EQ_PTR(reap_tls_peek(key), mine);
	ASSERT_EQ_INT(atomic_load(&inits), 5);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&dtors), 5);
}

/* A thread reap did not start, ending by return and by pthread_exit. */
static void *raw_get(void *arg)
{
	void *v;

	if (reap_tls_get(key, &v) < 0)
		return NULL;
	if (arg != NULL)
		pthread_exit(v);
	return v;
}

TEST(tls_dtor_at_exit_of_a_thread_reap_did_not_start)
{
	reap_scope *s;
	pthread_t th;
	void *res = NULL;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, make_val, free_val, NULL, &key));
	ASSERT_EQ_INT(pthread_create(&th, NULL, raw_get, NULL), 0);
	ASSERT_EQ_INT(pthread_join(th, &res), 0);
	ASSERT_NOT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&dtors), 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

TEST(tls_dtor_at_pthread_exit)
{
	reap_scope *s;
	pthread_t th;
	reap_thread *t;
	void *res = NULL;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, make_val, free_val, NULL, &key));
	ASSERT_EQ_INT(pthread_create(&th, NULL, raw_get, (void *)1), 0);
	ASSERT_EQ_INT(pthread_join(th, &res), 0);
	ASSERT_NOT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&dtors), 1);
	/* And a reap thread calling pthread_exit. */
	ASSERT_OK(reap_thread_spawn(s, raw_get, (void *)1, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NOT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&dtors), 2);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&dtors), 2);
}

/* Destructors run before the thread's root scope closes; afterwards
 * the thread's storage is closed. */
static atomic_int order[3], norder;
static reap_tls *key2;

static void note_dtor(void *ctx, void *v)
{
	(void)ctx;
	(void)v;
	order[atomic_fetch_add(&norder, 1)] = 1;
}

static void root_cleanup(void *arg)
{
	(void)arg;
	order[atomic_fetch_add(&norder, 1)] = 2;
	/* Too late for new values: the storage is closed. */
	if (reap_tls_set(key2, (void *)1) == REAP_ECLOSED &&
	    reap_tls_peek(key2) == NULL)
		order[atomic_fetch_add(&norder, 1)] = 3;
}

static void *set_then_root(void *arg)
{
	(void)arg;
	if (reap_defer(NULL, root_cleanup, NULL, NULL) < 0 ||
	    reap_tls_set(key2, (void *)7) < 0)
		return (void *)1;
	return NULL;
}

TEST(tls_dtors_run_before_the_thread_root_closes)
{
	reap_scope *s;
	reap_thread *t;
	void *res = (void *)2;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, NULL, note_dtor, NULL, &key2));
	ASSERT_OK(reap_thread_spawn(s, set_then_root, NULL, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&norder), 3);
	ASSERT_EQ_INT(order[0], 1);
	ASSERT_EQ_INT(order[1], 2);
	ASSERT_EQ_INT(order[2], 3);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* A destructor that sets a value again re-runs, a bounded number of
 * times; what is left is reported. */
static atomic_int reruns;
static reap_tls *sticky_key;

static void sticky_dtor(void *ctx, void *v)
{
	(void)ctx;
	(void)v;
	atomic_fetch_add(&reruns, 1);
	if (reap_tls_set(sticky_key, (void *)0x51) < 0)
		atomic_fetch_add(&reruns, 1000);
}

static void *set_sticky(void *arg)
{
	(void)arg;
	return reap_tls_set(sticky_key, (void *)0x50) < 0 ? (void *)1 : NULL;
}

TEST(tls_dtor_reruns_are_bounded_and_the_rest_reported)
{
	reap_scope *s;
	reap_thread *t;
	void *res = (void *)2;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, NULL, sticky_dtor, NULL, &sticky_key));
	ASSERT_OK(reap_thread_spawn(s, set_sticky, NULL, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&reruns), REAP_TLS_DTOR_ITERATIONS);
	ASSERT_CONTAINS(test_reports(), "still set after 4 rounds");
	ASSERT_CONTAINS(test_reports(), "value 0x51 of the key created at");
	ASSERT_CONTAINS(test_reports(), "test_tls.c");
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&reruns), REAP_TLS_DTOR_ITERATIONS);
}

/* One re-run is fine: a destructor that sets another key's value. */
static reap_tls *second_key;
static atomic_int second_dtors;

static void second_dtor(void *ctx, void *v)
{
	(void)ctx;
	(void)v;
	atomic_fetch_add(&second_dtors, 1);
}

static void first_dtor(void *ctx, void *v)
{
	(void)ctx;
	(void)v;
	if (reap_tls_set(second_key, (void *)0x2) < 0)
		atomic_fetch_add(&second_dtors, 1000);
}

static void *set_first(void *arg)
{
	return reap_tls_set(arg, (void *)0x1) < 0 ? (void *)1 : NULL;
}

TEST(tls_value_set_by_a_dtor_is_destroyed_in_the_next_round)
{
	reap_scope *s;
	reap_tls *first;
	reap_thread *t;
	void *res = (void *)2;

	ASSERT_OK(reap_scope_open(NULL, &s));
	/* second_key's slot comes after first's: only a second round sees
	 * the value set by first_dtor. */
	ASSERT_OK(reap_tls_create(s, NULL, first_dtor, NULL, &first));
	ASSERT_OK(reap_tls_create(s, NULL, second_dtor, NULL, &second_key));
	ASSERT_OK(reap_thread_spawn(s, set_first, first, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&second_dtors), 1);
	ASSERT_TRUE(strstr(test_reports(), "rounds") == NULL);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* Closing a key destroys the values of threads still holding one. */
static atomic_int holder_ready, holder_go;

static void *hold_value(void *arg)
{
	void *v;

	(void)arg;
	if (reap_tls_get(key, &v) < 0)
		return (void *)1;
	atomic_store(&holder_ready, 1);
	/* From here on the key may be closed: not touched again. */
	while (!atomic_load(&holder_go))
		usleep(1000);
	return NULL;
}

TEST(tls_key_close_destroys_values_of_running_threads)
{
	reap_scope *outer, *ks;
	reap_thread *t;
	void *res = (void *)2;

	ASSERT_OK(reap_scope_open(NULL, &outer));
	ASSERT_OK(reap_scope_open(NULL, &ks));
	ASSERT_OK(reap_tls_create(ks, make_val, free_val, NULL, &key));
	ASSERT_OK(reap_thread_spawn(outer, hold_value, NULL, &t));
	while (!atomic_load(&holder_ready))
		usleep(1000);
	ASSERT_EQ_INT(reap_scope_close(ks), 0);
	ASSERT_EQ_INT(atomic_load(&dtors), 1);
	atomic_store(&holder_go, 1);
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_NULL(res);
	ASSERT_EQ_INT(atomic_load(&dtors), 1); /* not again at its exit */
	ASSERT_EQ_INT(reap_scope_close(outer), 0);
}

TEST(tls_set_replaces_and_destroys_the_old_value)
{
	reap_scope *s;
	struct val *a = malloc(sizeof *a), *b = malloc(sizeof *b);

	a->n = 10;
	b->n = 20;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, NULL, free_val, NULL, &key));
	ASSERT_OK(reap_tls_set(key, a));
	ASSERT_EQ_PTR(reap_tls_peek(key), a);
	ASSERT_OK(reap_tls_set(key, a)); /* the same: not destroyed */
	ASSERT_EQ_INT(atomic_load(&dtors), 0);
	ASSERT_OK(reap_tls_set(key, b));
	ASSERT_EQ_INT(atomic_load(&dtors), 1);
	ASSERT_EQ_INT(atomic_load(&dtor_sum), 10);
	ASSERT_OK(reap_tls_set(key, NULL));
	ASSERT_EQ_INT(atomic_load(&dtors), 2);
	ASSERT_NULL(reap_tls_peek(key));
	{
		void *v = (void *)1;

		ASSERT_OK(reap_tls_get(key, &v)); /* no init: NULL */
		ASSERT_NULL(v);
	}
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&dtors), 2);
}

static int init_fails(void *ctx, void **v)
{
	(void)v;
	(*(int *)ctx)++;
	return -EPROTO;
}

TEST(tls_init_error_stores_nothing_and_retries)
{
	reap_scope *s;
	int calls = 0;
	void *v = (void *)0x77;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, init_fails, free_val, &calls, &key));
	ASSERT_EQ_INT(reap_tls_get(key, &v), -EPROTO);
	ASSERT_EQ_PTR(v, (void *)0x77);
	ASSERT_EQ_INT(reap_tls_get(key, &v), -EPROTO);
	ASSERT_EQ_INT(calls, 2);
	ASSERT_NULL(reap_tls_peek(key));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&dtors), 0);
}

TEST(tls_reused_slot_does_not_see_old_values)
{
	reap_scope *s;
	reap_tls *a, *b;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, NULL, NULL, NULL, &a));
	ASSERT_OK(reap_tls_set(a, (void *)0x10));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, NULL, NULL, NULL, &b));
	ASSERT_NULL(reap_tls_peek(b));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

TEST(tls_key_is_a_resource_in_the_ledger)
{
	reap_scope *s;
	reap_ledger_stat st;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, make_val, free_val, NULL, &key));
	ASSERT_OK(reap_ledger_stats("thread-local key", &st));
	ASSERT_EQ_SIZE(st.live, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_OK(reap_ledger_stats("thread-local key", &st));
	ASSERT_EQ_SIZE(st.live, 0);
}

/* ------------------------------------------------------------------ */
/* Checked from outside, through helper_tls                             */

static char *run_helper(const char *mode, const char *debug, int *status)
{
	static char path[4200], envbuf[128];
	char *argv[] = {path, (char *)mode, NULL};
	char *env[] = {envbuf, NULL};
	char *out = NULL;

	snprintf(path, sizeof path, "%s/helper_tls", test_bindir());
	if (access(path, X_OK) != 0)
		test_fail(__FILE__, __LINE__, "helper %s is missing", path);
	unsetenv("REAP_DEBUG");
	snprintf(envbuf, sizeof envbuf, "REAP_DEBUG=%s", debug ? debug : "");
	*status = test_run(argv, env, &out);
	return out;
}

static void expect_exit(int status, int code, const char *out)
{
	if (!WIFEXITED(status) || WEXITSTATUS(status) != code)
		test_fail(__FILE__, __LINE__, "helper_tls: wait status 0x%x, "
			  "expected exit %d; output:\n---\n%s---", status, code, out);
}

TEST(tls_main_thread_dtor_runs_at_return_from_main)
{
	int st;
	char *out = run_helper("return", NULL, &st);

	expect_exit(st, 0, out);
	ASSERT_CONTAINS(out, "helper_tls: main returns\nhelper_tls: dtor main\n");
	free(out);
}

TEST(tls_main_thread_dtor_runs_at_exit_call)
{
	int st;
	char *out = run_helper("exit", NULL, &st);

	expect_exit(st, 0, out);
	ASSERT_CONTAINS(out, "helper_tls: dtor main\n");
	free(out);
}

TEST(tls_dtor_of_the_thread_calling_exit)
{
	int st;
	char *out = run_helper("exit-thread", NULL, &st);

	expect_exit(st, 0, out);
	ASSERT_CONTAINS(out, "helper_tls: dtor exit-caller\n");
	free(out);
}

TEST(tls_dtor_at_pthread_exit_checked_from_outside)
{
	int st;
	char *out = run_helper("pthread-exit", NULL, &st);

	expect_exit(st, 0, out);
	ASSERT_CONTAINS(out, "helper_tls: dtor raw-thread\nhelper_tls: joined\n");
	free(out);
}

TEST(tls_thread_running_at_exit_is_reported_with_its_values)
{
	int st, key_line = 0, spawn_line = 0;
	char *out = run_helper("running", "leaks", &st), want[128];
	const char *p;

	expect_exit(st, 0, out);
	if ((p = strstr(out, "helper_tls: key line ")) != NULL)
		key_line = atoi(p + strlen("helper_tls: key line "));
	if ((p = strstr(out, "helper_tls: spawn line ")) != NULL)
		spawn_line = atoi(p + strlen("helper_tls: spawn line "));
	ASSERT_GT_INT(key_line, 0);
	ASSERT_GT_INT(spawn_line, 0);
	ASSERT_CONTAINS(out, "thread \"daemon\"");
	ASSERT_CONTAINS(out, "is still running at exit");
	snprintf(want, sizeof want, "spawned at tests/thread/helper_tls.c:%d in main()",
		 spawn_line);
	if (strstr(out, want) == NULL) /* without the prefix map */
		snprintf(want, sizeof want, "helper_tls.c:%d in main()", spawn_line);
	ASSERT_CONTAINS(out, want);
	snprintf(want, sizeof want, "helper_tls.c:%d in make_key()", key_line);
	ASSERT_CONTAINS(out, "thread-local value");
	ASSERT_CONTAINS(out, want);
	/* In the leak report too, as an open thread. */
	ASSERT_CONTAINS(out, "Open thread \"daemon\"");
	free(out);
	/* Under leaks:strict it fails the exit status. */
	out = run_helper("running", "leaks:strict", &st);
	expect_exit(st, REAP_LEAK_EXIT_CODE, out);
	free(out);
}
