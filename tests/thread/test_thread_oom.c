/*
 * The allocation-failure sweep of the thread layer: every constructor
 * (reap_thread_spawn, with and without options, reap_cancel_create,
 * reap_tls_create, reap_tls_get with init, reap_tls_set) is called with
 * its 1st, 2nd, ... fallible acquisition failing until it succeeds. The
 * creation of the thread itself is one of those acquisitions, so the
 * sweep also fails pthread_create (-EAGAIN). A failed call must return
 * the error, leave *out untouched, never run the thread or init, count
 * nothing in the ledger, and leave nothing allocated once the owner is
 * closed (the owner's cleanup stack may keep a chunk it grew until
 * then). Each sweep must hit at least one failure.
 */
#define _GNU_SOURCE
#include <stdatomic.h>
#include <unistd.h>

#include "../runner.h"

#define MAX_N 32

#define SENTINEL ((void *)(uintptr_t)0x5e47)

/* The thread waits for the gate, so that it makes no acquisition while
 * the injector is armed. */
static atomic_int gate, ran;

static void *gated(void *arg)
{
	while (!atomic_load(&gate))
		usleep(100);
	atomic_fetch_add(&ran, 1);
	return arg;
}

static void sweep_spawn(const reap_thread_opts *opts, int prefill, int *enomem,
			int *eagain)
{
	for (int n = 1;; n++) {
		reap_scope *p;
		reap_thread *t = SENTINEL;
		size_t count, base = reap_alloc_live();
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &p));
		for (int i = 0; i < prefill; i++) {
			reap_scope *c;

			ASSERT_OK(reap_scope_open(p, &c));
		}
		count = reap_ledger_count();
		atomic_store(&gate, 0);
		atomic_store(&ran, 0);
		reap_fault_alloc(n);
		rc = reap_thread_spawn_at(p, opts, gated, NULL, &t, REAP_SITE);
		seen = test_fault_disarm();
		atomic_store(&gate, 1);
		if (rc == 0) {
			ASSERT_NE_PTR(t, SENTINEL);
			ASSERT_EQ_SIZE(reap_ledger_count(), count + 1);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			ASSERT_EQ_INT(atomic_load(&ran), 1);
			return;
		}
		ASSERT_GE_INT(seen, n);
		if (rc == -ENOMEM)
			(*enomem)++;
		else if (rc == -EAGAIN)
			(*eagain)++;
		else
			test_fail(__FILE__, __LINE__, "spawn failed with %s", reap_errname(rc));
		ASSERT_EQ_PTR(t, SENTINEL);
		ASSERT_EQ_SIZE(reap_ledger_count(), count);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_INT(atomic_load(&ran), 0);
		ASSERT_EQ_SIZE(reap_alloc_live(), base);
	}
}

TEST(oom_thread_spawn_including_thread_creation)
{
	int enomem = 0, eagain = 0;

	/* Prefills cross the owner's first chunk boundary. */
	for (int prefill = 0; prefill < 40; prefill += 13)
		sweep_spawn(NULL, prefill, &enomem, &eagain);
	ASSERT_GE_INT(enomem, 4);
	ASSERT_EQ_INT(eagain, 4);
}

TEST(oom_thread_spawn_opts_with_shared_token)
{
	int enomem = 0, eagain = 0;
	reap_scope *s;
	reap_thread_opts o = {.name = "oom-worker", .stack_size = 1 << 20};

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_cancel_create(s, &o.cancel));
	sweep_spawn(&o, 0, &enomem, &eagain);
	ASSERT_GE_INT(enomem, 1);
	ASSERT_EQ_INT(eagain, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

TEST(oom_cancel_create)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p;
		reap_cancel *c = SENTINEL;
		size_t count;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &p));
		count = reap_ledger_count();
		reap_fault_alloc(n);
		rc = reap_cancel_create(p, &c);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(c, SENTINEL);
			ASSERT_EQ_SIZE(reap_ledger_count(), count + 1);
			reap_cancel_request(c);
			ASSERT_TRUE(reap_cancel_requested(c));
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(c, SENTINEL);
		ASSERT_EQ_SIZE(reap_ledger_count(), count);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_SIZE(reap_alloc_live(), test_alloc_base);
	}
	ASSERT_GE_INT(failures, 1);
}

static atomic_int inits, dtors;

static int init_val(void *ctx, void **v)
{
	(void)ctx;
	atomic_fetch_add(&inits, 1);
	*v = (void *)0x1234;
	return 0;
}

static void dtor_val(void *ctx, void *v)
{
	(void)ctx;
	(void)v;
	atomic_fetch_add(&dtors, 1);
}

TEST(oom_tls_create)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p;
		reap_tls *k = SENTINEL;
		size_t count;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &p));
		count = reap_ledger_count();
		reap_fault_alloc(n);
		rc = reap_tls_create(p, init_val, dtor_val, NULL, &k);
		seen = test_fault_disarm();
		if (rc == 0) {
			void *v;

			ASSERT_EQ_SIZE(reap_ledger_count(), count + 1);
			ASSERT_OK(reap_tls_get(k, &v));
			ASSERT_EQ_PTR(v, (void *)0x1234);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			ASSERT_EQ_INT(atomic_load(&dtors), 1);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(k, SENTINEL);
		ASSERT_EQ_SIZE(reap_ledger_count(), count);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_SIZE(reap_alloc_live(), test_alloc_base);
	}
	ASSERT_GE_INT(failures, 1);
	ASSERT_EQ_INT(atomic_load(&inits), 1);
}

/* get with init, and set: the first value of a thread (its vector is
 * made) and a key past the vector's first size (it grows). A failed
 * call never runs init and keeps the thread's other values. */
static void sweep_get_set(int use_set)
{
	reap_scope *p;
	reap_tls *k[10];
	int failures = 0;

	for (int which = 0; which < 2; which++) {
		ASSERT_OK(reap_scope_open(NULL, &p));
		for (int i = 0; i < 10; i++)
			ASSERT_OK(reap_tls_create(p, init_val, dtor_val, NULL, &k[i]));
		if (which == 1)
			ASSERT_OK(reap_tls_set(k[0], (void *)0x77)); /* vector of 8 */
		for (int n = 1;; n++) {
			reap_tls *key = k[which == 0 ? 0 : 9];
			void *v = SENTINEL;
			long seen;
			int rc;

			ASSERT_LT_INT(n, MAX_N);
			atomic_store(&inits, 0);
			reap_fault_alloc(n);
			rc = use_set ? reap_tls_set(key, (void *)0x99) : reap_tls_get(key, &v);
			seen = test_fault_disarm();
			if (rc == 0) {
				ASSERT_EQ_PTR(reap_tls_peek(key), use_set ? (void *)0x99
									: (void *)0x1234);
				ASSERT_EQ_INT(atomic_load(&inits), use_set ? 0 : 1);
				break;
			}
			failures++;
			ASSERT_GE_INT(seen, n);
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_EQ_PTR(v, SENTINEL);
			ASSERT_EQ_INT(atomic_load(&inits), 0);
			ASSERT_NULL(reap_tls_peek(key));
			if (which == 1)
				ASSERT_EQ_PTR(reap_tls_peek(k[0]), (void *)0x77);
		}
		ASSERT_EQ_INT(reap_scope_close(p), 0);
	}
	ASSERT_EQ_INT(failures, 2);
	ASSERT_EQ_SIZE(reap_alloc_live(), test_alloc_base);
}

TEST(oom_tls_get_with_init)
{
	sweep_get_set(0);
}

TEST(oom_tls_set)
{
	sweep_get_set(1);
}
