/*
 * fork() from a reap process, in the states a program forks in: reap
 * threads running, a pool at work, a loop on the forking thread, inside
 * a task, thread-local values set, exit finalizers and live objects,
 * another thread hammering scopes and the ledger. Each test forks with
 * plain fork(); the child checks what it inherited and reports through
 * its exit status (and a shared counter, for what must not run there);
 * the parent waits and asserts, then cleans up normally (the runner
 * checks its ledger afterwards).
 *
 * The child's contract (include/reap/proc.h, "Fork"): an empty ledger,
 * one thread, locks free, nothing inherited reported as a leak, no
 * inherited cleanup, destructor or finalizer run, and reap usable.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

/* A counter both processes see: what ran where. */
static atomic_int *shared;

static void shared_map(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
		       MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	ASSERT_TRUE(p != MAP_FAILED);
	shared = p;
	atomic_init(shared, 0);
}

static void shared_unmap(void)
{
	munmap((void *)shared, 4096);
	shared = NULL;
}

/* In the child: a failed check ends it with status 1 and says why. */
#define CHILD_CHECK(c)                                                      \
	do {                                                                \
		if (!(c)) {                                                 \
			fprintf(stderr, "child check failed at %s:%d: %s\n", \
				__FILE__, __LINE__, #c);                    \
			fflush(stderr);                                     \
			_exit(1);                                           \
		}                                                           \
	} while (0)
#define CHILD_OK(expr) CHILD_CHECK((expr) == 0)

/*
 * LeakSanitizer's check at the child's exit would report what only the
 * parent's other threads referenced (their stacks are not in the child):
 * the parent's memory, which the child inherits and never frees, by
 * design. It is the parent's business, checked there; the child turns
 * the check off (the hook LSan calls at exit).
 */
static int in_child;
int __lsan_is_turned_off(void);
int __lsan_is_turned_off(void)
{
	return in_child;
}

/*
 * ThreadSanitizer refuses, by default, to start threads in the child of
 * a multithreaded fork (die_after_fork): its own state is fine there
 * (it locks it around fork), the option guards programs whose libc is
 * not. The children here start threads on purpose.
 */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void)
{
	return "die_after_fork=0:atexit_sleep_ms=0";
}

/*
 * AddressSanitizer's allocator (gcc 12's libasan) takes no lock around
 * fork(): a child forked while another thread is inside malloc() waits
 * forever on the allocator's copied lock (glibc's malloc, and TSan's,
 * are made consistent at fork). Under ASan the hammering threads
 * therefore pause, between batches, while the parent forks.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ASAN_FORK_PAUSE 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ASAN_FORK_PAUSE 1
#endif
#endif
#ifndef ASAN_FORK_PAUSE
#define ASAN_FORK_PAUSE 0
#endif
static pthread_rwlock_t fork_pause = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;

/* The child's reports go to stderr, not to the parent's capture. */
static void child_start(void)
{
	in_child = 1;
	reap_set_report_hook(NULL, NULL);
}

static uint64_t mono_ms(void)
{
	return reap_now_ns() / 1000000u;
}

static void count_cleanup(void *arg)
{
	atomic_fetch_add(shared, arg != NULL ? (int)(intptr_t)arg : 1);
}

/* The child's own life: a scope, a thread, a cleanup, all closed. */
static void *child_thread(void *arg)
{
	(void)arg;
	atomic_fetch_add(shared, 1000);
	return NULL;
}

static void child_normal_life(void)
{
	reap_scope *s;
	reap_thread *t;

	CHILD_OK(reap_scope_open(NULL, &s));
	CHILD_OK(reap_defer(s, count_cleanup, (void *)(intptr_t)100, NULL));
	CHILD_OK(reap_thread_spawn(s, child_thread, NULL, &t));
	CHILD_CHECK(reap_ledger_count() >= 3);
	CHILD_OK(reap_scope_close(s));
	CHILD_CHECK(reap_ledger_count() == 0);
}

/* ------------------------------------------------------------------ */
/* Threads                                                              */

static atomic_int running;

static void *spin_until_cancelled(void *arg)
{
	(void)arg;
	atomic_fetch_add(&running, 1);
	while (reap_cancel_sleep(NULL, 1000000) == 0)
		;
	return NULL;
}

TEST(fork_while_threads_run)
{
	reap_thread_opts o = {.join_limit_ns = 4000000000ull};
	reap_scope *s;
	reap_thread *t[3];
	uint64_t t0;
	pid_t pid;

	shared_map();
	atomic_store(&running, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, count_cleanup, NULL, NULL));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(reap_thread_spawn_opts(s, &o, spin_until_cancelled, NULL, &t[i]));
	while (atomic_load(&running) < 3)
		usleep(1000);

	t0 = mono_ms();
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_CHECK(reap_ledger_count() == 0);
		CHILD_CHECK(reap_fork_inherited() >= 5); /* scope, cleanup, 3 threads */
		CHILD_CHECK(reap_fork_parent() == getppid());
		CHILD_CHECK(reap_thread_self() == NULL);
		CHILD_OK(reap_debug_set("leaks:strict"));
		/* Not waited for: the parent's threads are not here. */
		exit(0);
	}
	ASSERT_GT_INT(pid, 0);
	ASSERT_EQ_INT(test_wait(pid), 0);
	/* Well under the threads' join limit (4 s). */
	ASSERT_LT_INT(mono_ms() - t0, 2000);
	ASSERT_EQ_INT(atomic_load(shared), 0);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(atomic_load(shared), 1);
	shared_unmap();
}

/* Forked from a reap thread (not the main one): the child's main thread
 * is that thread, no longer a reap thread, and its exit is prompt. */
static void *fork_from_thread(void *arg)
{
	pid_t pid;

	(void)arg;
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_CHECK(reap_thread_self() == NULL);
		CHILD_CHECK(reap_ledger_count() == 0);
		child_normal_life();
		CHILD_OK(reap_debug_set("leaks:strict"));
		exit(0);
	}
	return (void *)(intptr_t)test_wait(pid);
}

TEST(fork_from_a_reap_thread)
{
	reap_thread_opts o = {.join_limit_ns = 4000000000ull};
	reap_thread *t, *other;
	reap_scope *s;
	void *res;
	uint64_t t0 = mono_ms();

	shared_map();
	atomic_store(&running, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_thread_spawn_opts(s, &o, spin_until_cancelled, NULL, &other));
	while (atomic_load(&running) < 1)
		usleep(1000);
	ASSERT_OK(reap_thread_spawn(NULL, fork_from_thread, NULL, &t));
	ASSERT_OK(reap_thread_join(t, &res, NULL));
	ASSERT_EQ_INT((intptr_t)res, 0);
	ASSERT_LT_INT(mono_ms() - t0, 2000);
	ASSERT_EQ_INT(atomic_load(shared), 1100); /* the child's own */
	ASSERT_OK(reap_scope_close(s));
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* Pools                                                                */

static int busy_job(void *arg, void *state, void **result)
{
	(void)arg;
	(void)state;
	(void)result;
	atomic_fetch_add(&running, 1);
	while (!reap_job_cancelled())
		usleep(1000);
	return 0;
}

static int quick_job(void *arg, void *state, void **result)
{
	(void)state;
	*result = arg;
	return 0;
}

TEST(fork_while_pool_runs)
{
	reap_pool_opts po = {.on_close = REAP_POOL_CANCEL};
	reap_pool *p;
	reap_future *f[2];
	reap_scope *s;
	uint64_t t0;
	pid_t pid;

	atomic_store(&running, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_pool_create_opts(s, &po, 2, NULL, NULL, NULL, &p));
	for (int i = 0; i < 2; i++)
		ASSERT_OK(reap_pool_submit(p, busy_job, NULL, &f[i]));
	while (atomic_load(&running) < 2)
		usleep(1000);

	t0 = mono_ms();
	if ((pid = fork()) == 0) {
		reap_pool *cp;
		reap_future *cf;
		reap_scope *cs;
		void *r = NULL;

		child_start();
		CHILD_CHECK(reap_ledger_count() == 0);
		CHILD_CHECK(reap_fork_inherited() > 0);
		CHILD_CHECK(reap_pool_worker_index() == -1);
		/* A pool of the child's own works as usual. */
		CHILD_OK(reap_scope_open(NULL, &cs));
		CHILD_OK(reap_pool_create(cs, 2, NULL, NULL, NULL, &cp));
		CHILD_OK(reap_pool_submit(cp, quick_job, (void *)(intptr_t)42, &cf));
		CHILD_OK(reap_future_wait(cf, REAP_FOREVER));
		CHILD_OK(reap_future_result(cf, &r));
		CHILD_CHECK((intptr_t)r == 42);
		reap_future_release(cf);
		CHILD_OK(reap_pool_close(cp, REAP_POOL_DRAIN));
		CHILD_OK(reap_scope_close(cs));
		CHILD_OK(reap_debug_set("leaks:strict"));
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_LT_INT(mono_ms() - t0, 2000);
	for (int i = 0; i < 2; i++)
		reap_future_release(f[i]);
	ASSERT_OK(reap_pool_close(p, REAP_POOL_CANCEL));
	ASSERT_OK(reap_scope_close(s));
}

/* ------------------------------------------------------------------ */
/* Loops                                                                */

static int add_task(void *arg, void **result)
{
	(void)result;
	atomic_fetch_add(shared, (int)(intptr_t)arg);
	return reap_sleep(1000000);
}

/* In the child: a loop of its own, a task run in it. */
static void child_loop_life(void)
{
	reap_loop *loop;
	reap_scope *s;

	CHILD_CHECK(reap_loop_current() == NULL);
	CHILD_OK(reap_scope_open(NULL, &s));
	CHILD_OK(reap_loop_create(s, &loop));
	CHILD_OK(reap_loop_run(loop, add_task, (void *)(intptr_t)10, NULL));
	CHILD_OK(reap_scope_close(s));
	CHILD_CHECK(reap_ledger_count() == 0);
}

TEST(fork_from_a_thread_with_a_loop)
{
	reap_loop *loop;
	reap_scope *s;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, add_task, (void *)(intptr_t)1, NULL));
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_CHECK(reap_ledger_count() == 0);
		child_loop_life();
		CHILD_OK(reap_debug_set("leaks:strict"));
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 11);
	ASSERT_OK(reap_scope_close(s));
	shared_unmap();
}

static int forking_task(void *arg, void **result)
{
	pid_t pid;
	reap_scope *s;

	(void)arg;
	(void)result;
	/* Something of the task's own, which the child must not close. */
	if (reap_scope_open(NULL, &s) < 0 ||
	    reap_defer(s, count_cleanup, (void *)(intptr_t)1000, NULL) < 0)
		return -ENOMEM;
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_CHECK(reap_task_self() == NULL);
		CHILD_CHECK(reap_ledger_count() == 0);
		child_loop_life();
		/* The task's scope is the parent's: closing the copy runs
		 * nothing. */
		CHILD_OK(reap_scope_close(s));
		CHILD_OK(reap_debug_set("leaks:strict"));
		exit(0);
	}
	*(int *)arg = test_wait(pid);
	return reap_scope_close(s);
}

TEST(fork_inside_a_task)
{
	reap_loop *loop;
	reap_scope *s;
	int st = -1;

	shared_map();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, forking_task, &st, NULL));
	ASSERT_EQ_INT(st, 0);
	/* The child's task (10), then the parent's own close (1000). */
	ASSERT_EQ_INT(atomic_load(shared), 1010);
	ASSERT_OK(reap_scope_close(s));
	shared_unmap();
}

TEST(fork_with_blocking_detector_on)
{
	reap_loop_opts o = {.detect_blocking = 1, .blocking_ns = 50000000};
	reap_loop *loop;
	reap_scope *s;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create_opts(s, &o, &loop));
	if ((pid = fork()) == 0) {
		reap_loop *l2;
		reap_scope *cs;

		child_start();
		/* A watchdog of the child's own starts and stops. */
		CHILD_OK(reap_scope_open(NULL, &cs));
		CHILD_OK(reap_loop_create_opts(cs, &o, &l2));
		CHILD_OK(reap_loop_run(l2, add_task, (void *)(intptr_t)10, NULL));
		CHILD_OK(reap_scope_close(cs));
		CHILD_OK(reap_debug_set("leaks:strict"));
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 10);
	ASSERT_OK(reap_scope_close(s));
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* Thread-local values                                                  */

static int tls_init(void *ctx, void **v)
{
	(void)ctx;
	*v = malloc(16);
	return *v != NULL ? 0 : -ENOMEM;
}

static void tls_dtor(void *ctx, void *v)
{
	(void)ctx;
	atomic_fetch_add(shared, 1);
	free(v);
}

static reap_tls *tkey;

static void *hold_tls_until_cancelled(void *arg)
{
	void *v;

	(void)arg;
	if (reap_tls_get(tkey, &v) < 0)
		return NULL;
	atomic_fetch_add(&running, 1);
	while (reap_cancel_sleep(NULL, 1000000) == 0)
		;
	return NULL;
}

TEST(fork_tls_destructors_do_not_run_in_child)
{
	reap_thread *t;
	reap_scope *s;
	void *v;
	pid_t pid;

	shared_map();
	atomic_store(&running, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_tls_create(s, tls_init, tls_dtor, NULL, &tkey));
	ASSERT_OK(reap_tls_get(tkey, &v));
	ASSERT_OK(reap_thread_spawn(s, hold_tls_until_cancelled, NULL, &t));
	while (atomic_load(&running) < 1)
		usleep(1000);
	if ((pid = fork()) == 0) {
		void *cv;

		child_start();
		CHILD_CHECK(reap_fork_inherited() > 0);
		/* The inherited value is the parent's: dropped here, and a
		 * new one is made on demand, destroyed at the child's exit. */
		CHILD_CHECK(reap_tls_peek(tkey) == NULL);
		CHILD_OK(reap_tls_get(tkey, &cv));
		CHILD_CHECK(cv != NULL && cv != v);
		/* A key of the child's own too. */
		{
			reap_tls *k2;
			void *x;

			CHILD_OK(reap_tls_create(NULL, tls_init, tls_dtor, NULL, &k2));
			CHILD_OK(reap_tls_get(k2, &x));
		}
		/* Left open on purpose, both keys (the parent's is in this
		 * copy of the root): exit closes them, and that is the test.
		 * Not a leak to report. */
		CHILD_OK(reap_debug_set(""));
		exit(0); /* destroys the child's two values: 2 */
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 2);
	/* Thread first (its value), then the key (main's value). */
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(atomic_load(shared), 4);
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* Objects                                                              */

static void obj_close(void *obj)
{
	(void)obj;
	atomic_fetch_add(shared, 10000);
}

static reap_obj_type thing = {.name = "thing", .size = 32, .close = obj_close};

static int count_final(void *ctx)
{
	atomic_fetch_add(shared, (int)(intptr_t)ctx);
	return 0;
}

static void count_weak(reap_weak *w, void *ctx)
{
	(void)w;
	atomic_fetch_add(shared, (int)(intptr_t)ctx);
}

TEST(fork_exit_finalizers_do_not_run_in_child)
{
	void *a, *b;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_obj_create(&thing, &a));
	ASSERT_OK(reap_finalize(a, count_final, (void *)(intptr_t)1, 0, NULL));
	if ((pid = fork()) == 0) {
		child_start();
		/* One of the child's own runs at its exit (100); the
		 * parent's (1) does not, nor the object's close. */
		CHILD_OK(reap_obj_create(&thing, &b));
		CHILD_OK(reap_finalize(b, count_final, (void *)(intptr_t)100, 0, NULL));
		CHILD_OK(reap_debug_set("")); /* left for exit, on purpose */
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 100);
	reap_release(a);
	ASSERT_EQ_INT(atomic_load(shared), 10101);
	shared_unmap();
}

TEST(fork_live_objects_are_not_child_leaks)
{
	reap_gc_domain *d;
	reap_finalizer *fz;
	reap_weak *w;
	reap_scope *s;
	void *a, *c;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	ASSERT_OK(reap_obj_create(&thing, &a));
	ASSERT_OK(reap_obj_create_in(d, &thing, &c));
	ASSERT_OK(reap_weak_create_cb(a, count_weak, (void *)(intptr_t)2, &w));
	ASSERT_OK(reap_finalize(a, count_final, (void *)(intptr_t)1,
				REAP_FINALIZE_NO_ATEXIT, &fz));
	ASSERT_OK(reap_scope_hold(s, c, NULL));

	if ((pid = fork()) == 0) {
		child_start();
		CHILD_CHECK(reap_ledger_count() == 0);
		CHILD_CHECK(reap_fork_inherited() >= 7);
		CHILD_OK(reap_debug_set("leaks:strict"));
		/* Releasing the last reference to an inherited object runs
		 * none of the parent's: close, weak callback, finalizer. */
		reap_release(a);
		reap_weak_destroy(w);
		reap_finalizer_release(fz);
		CHILD_CHECK(reap_ledger_count() == 0);
		/* A collection sees none of the parent's objects. */
		CHILD_CHECK(reap_gc_collect(NULL) == 0);
		CHILD_CHECK(reap_gc_collect(d) == 0);
		exit(0); /* nothing to report: status 0, not 23 */
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 0);

	/* The control: a leak of the child's own fails its exit. */
	if ((pid = fork()) == 0) {
		void *mine;

		child_start();
		reap_set_report_hook(NULL, NULL);
		CHILD_OK(reap_debug_set("leaks:strict"));
		CHILD_OK(reap_obj_create(&thing, &mine));
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), REAP_LEAK_EXIT_CODE);

	reap_weak_destroy(w);
	reap_finalizer_release(fz);
	reap_release(a); /* finalizer 1, close 10000 */
	reap_release(c);
	ASSERT_OK(reap_scope_close(s)); /* c's close */
	ASSERT_EQ_INT(atomic_load(shared), 20001);
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* Scopes                                                               */

TEST(fork_closing_a_copied_scope_runs_nothing)
{
	reap_scope *s, *inner;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, count_cleanup, (void *)(intptr_t)1, NULL));
	ASSERT_OK(reap_scope_open(s, &inner));
	ASSERT_OK(reap_defer(inner, count_cleanup, (void *)(intptr_t)2, NULL));
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_OK(reap_debug_set("leaks:strict"));
		CHILD_OK(reap_scope_close(s));
		CHILD_CHECK(atomic_load(shared) == 0);
		child_normal_life(); /* 1100 */
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 1100);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(atomic_load(shared), 1103);
	shared_unmap();
}

TEST(fork_child_lives_normally)
{
	pid_t pid;

	shared_map();
	if ((pid = fork()) == 0) {
		child_start();
		CHILD_OK(reap_debug_set("leaks:strict"));
		for (int i = 0; i < 3; i++)
			child_normal_life();
		child_loop_life();
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 3 * 1100 + 10);
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* Forks while another thread works                                     */

static atomic_int hammer_stop;
static reap_obj_type quiet = {.name = "quiet", .size = 16};

static void noop(void *arg)
{
	(void)arg;
}

static void *hammer(void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&text, &len);

	(void)arg;
	atomic_fetch_add(&running, 1);
	while (!atomic_load(&hammer_stop) && !reap_cancel_requested(NULL)) {
		reap_scope *s;
		void *o;

		if (ASAN_FORK_PAUSE)
			pthread_rwlock_rdlock(&fork_pause);
		for (int i = 0; i < 50; i++) {
			if (reap_scope_open(NULL, &s) == 0) {
				if (reap_defer(s, noop, NULL, NULL) < 0)
					noop(NULL);
				(void)reap_scope_close(s);
			}
		}
		if (reap_obj_create(&quiet, &o) == 0)
			reap_release(o);
		if (m != NULL) {
			reap_ledger_report(m, REAP_REPORT_TREE | REAP_REPORT_STATS);
			rewind(m);
		}
		if (ASAN_FORK_PAUSE)
			pthread_rwlock_unlock(&fork_pause);
	}
	if (m != NULL)
		fclose(m);
	free(text);
	return NULL;
}

TEST(fork_while_another_thread_hammers)
{
	reap_thread *t[2];
	reap_scope *s;

	shared_map();
	atomic_store(&running, 0);
	atomic_store(&hammer_stop, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	for (int i = 0; i < 2; i++)
		ASSERT_OK(reap_thread_spawn(s, hammer, NULL, &t[i]));
	while (atomic_load(&running) < 2)
		usleep(1000);
	for (int round = 0; round < 20; round++) {
		pid_t pid;

		usleep(2000);
		if (ASAN_FORK_PAUSE)
			pthread_rwlock_wrlock(&fork_pause);
		if ((pid = fork()) == 0) {
			char *text = NULL;
			size_t len = 0;
			FILE *m;

			child_start();
			CHILD_CHECK(reap_ledger_count() == 0);
			CHILD_OK(reap_debug_set("leaks:strict"));
			child_normal_life();
			m = open_memstream(&text, &len);
			CHILD_CHECK(m != NULL);
			/* A report walks the child's (fresh) ledger: empty. */
			CHILD_CHECK(reap_ledger_report(m, REAP_REPORT_TREE |
							  REAP_REPORT_STATS) == 0);
			fclose(m);
			free(text);
			exit(0);
		}
		if (ASAN_FORK_PAUSE)
			pthread_rwlock_unlock(&fork_pause);
		ASSERT_EQ_INT(test_wait(pid), 0);
	}
	atomic_store(&hammer_stop, 1);
	ASSERT_OK(reap_scope_close(s));
	/* Each child's own life ran in full: its thread and its cleanup. */
	ASSERT_EQ_INT(atomic_load(shared), 20 * 1100);
	shared_unmap();
}

/* ------------------------------------------------------------------ */
/* gc domains and cache sweepers                                         */

static reap_gc_domain *held_domain;

static void *hold_gc_locks(void *arg)
{
	(void)arg;
	reap_gc_lock(NULL);
	reap_gc_lock(held_domain);
	atomic_fetch_add(&running, 1);
	while (reap_cancel_sleep(NULL, 1000000) == 0)
		;
	reap_gc_unlock(held_domain);
	reap_gc_unlock(NULL);
	return NULL;
}

TEST(fork_while_gc_locks_held_and_sweeper_runs)
{
	reap_cache_config cfg = {.max_count = 8};
	reap_cache_sweeper *sw;
	reap_cache *c;
	reap_thread *t;
	reap_scope *s;
	pid_t pid;

	atomic_store(&running, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &held_domain));
	ASSERT_OK(reap_cache_open(s, &cfg, &c));
	ASSERT_OK(reap_cache_sweeper_start(s, c, 1000000, &sw));
	ASSERT_OK(reap_thread_spawn(s, hold_gc_locks, NULL, &t));
	while (atomic_load(&running) < 1)
		usleep(1000);
	if ((pid = fork()) == 0) {
		reap_cache_sweeper *csw;
		reap_cache *cc;
		reap_scope *cs;

		child_start();
		CHILD_OK(reap_debug_set("leaks:strict"));
		/* The locks another thread held are free here. */
		CHILD_CHECK(reap_gc_collect(NULL) == 0);
		CHILD_CHECK(reap_gc_collect(held_domain) == 0);
		/* A cache and sweeper of the child's own. */
		CHILD_OK(reap_scope_open(NULL, &cs));
		CHILD_OK(reap_cache_open(cs, &cfg, &cc));
		CHILD_OK(reap_cache_sweeper_start(cs, cc, 1000000, &csw));
		usleep(5000);
		CHILD_OK(reap_scope_close(cs));
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_OK(reap_scope_close(s));
}

/* A cycle the parent left for the collector: the child's collections do
 * not see it (it is the parent's), nor a child object that refers to a
 * member of it; the parent's collection then collects it. */
struct node {
	void *ref;
};

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	return n->ref != NULL ? visit(n->ref, ctx) : 0;
}

static void node_clear(void *obj)
{
	struct node *n = obj;
	void *r = n->ref;

	n->ref = NULL;
	if (r != NULL)
		reap_release(r);
}

static void node_close(void *obj)
{
	node_clear(obj);
	atomic_fetch_add(shared, 1);
}

static reap_obj_type node_type = {.name = "node", .size = sizeof(struct node),
				  .close = node_close, .traverse = node_traverse,
				  .clear = node_clear};

TEST(fork_gc_does_not_collect_inherited_cycles)
{
	struct node *a, *b;
	pid_t pid;

	shared_map();
	ASSERT_OK(reap_obj_create(&node_type, (void **)&a));
	ASSERT_OK(reap_obj_create(&node_type, (void **)&b));
	a->ref = reap_acquire(b);
	b->ref = reap_acquire(a);
	reap_release(a);
	reap_release(b); /* garbage now: a <-> b */
	if ((pid = fork()) == 0) {
		struct node *c, *d, *e;

		child_start();
		CHILD_OK(reap_debug_set("leaks:strict"));
		/* The child's own cycle, and a node of its own that refers
		 * to a (an outside reference, for the child's collector). */
		CHILD_OK(reap_obj_create(&node_type, (void **)&c));
		CHILD_OK(reap_obj_create(&node_type, (void **)&d));
		CHILD_OK(reap_obj_create(&node_type, (void **)&e));
		c->ref = reap_acquire(d);
		d->ref = reap_acquire(c);
		e->ref = reap_acquire(a);
		reap_release(c);
		reap_release(d);
		CHILD_CHECK(reap_gc_collect(NULL) == 2); /* c and d only */
		CHILD_CHECK(atomic_load(shared) == 2);
		reap_release(e); /* drops its reference to a: a lives on */
		CHILD_CHECK(atomic_load(shared) == 3);
		CHILD_CHECK(reap_gc_collect(NULL) == 0);
		CHILD_CHECK(reap_ledger_count() == 0);
		exit(0);
	}
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(atomic_load(shared), 3);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	ASSERT_EQ_INT(atomic_load(shared), 5);
	shared_unmap();
}
