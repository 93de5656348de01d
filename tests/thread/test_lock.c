/*
 * reap_mutex, REAP_WITH_LOCK on every exit path, and the lock-order
 * checker of REAP_DEBUG=locks: inversions between two locks and through
 * a chain of three are reported with both acquisition sites, once; a
 * consistent order and a run without the switch report nothing.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <unistd.h>

#include "../runner.h"

/* These tests invert lock orders on purpose: ThreadSanitizer's own
 * deadlock detector must not fail them. */
const char *__tsan_default_options(void)
{
	return "detect_deadlocks=0";
}

static reap_mutex a = REAP_MUTEX_INIT("accounts");
static reap_mutex b = REAP_MUTEX_INIT("ledger");
static reap_mutex c = REAP_MUTEX_INIT("audit");

static int held(reap_mutex *m)
{
	if (reap_mutex_trylock(m) == 0) {
		reap_mutex_unlock(m);
		return 0;
	}
	return 1;
}

TEST(lock_basic_and_trylock)
{
	reap_mutex m;

	reap_mutex_init(&m, "dyn");
	reap_mutex_lock(&m);
	ASSERT_TRUE(held(&m));
	ASSERT_EQ_INT(reap_mutex_trylock(&m), -EBUSY);
	reap_mutex_unlock(&m);
	ASSERT_FALSE(held(&m));
	ASSERT_OK(reap_mutex_trylock(&m));
	reap_mutex_unlock(&m);
	reap_mutex_destroy(&m);
}

static int with_return(int early)
{
	REAP_WITH_LOCK(&a) {
		if (early)
			return held(&a) ? 1 : -1;
	}
	return 2;
}

TEST(lock_with_lock_releases_on_every_exit_path)
{
	int n = 0;

	/* End of the block. */
	REAP_WITH_LOCK(&a) {
		ASSERT_TRUE(held(&a));
		n++;
	}
	ASSERT_FALSE(held(&a));
	/* break and continue leave the block. */
	REAP_WITH_LOCK(&a) {
		n++;
		break;
	}
	ASSERT_FALSE(held(&a));
	for (int i = 0; i < 3; i++) {
		REAP_WITH_LOCK(&a) {
			n++;
			continue;
		}
		ASSERT_FALSE(held(&a));
	}
	/* return. */
	ASSERT_EQ_INT(with_return(1), 1);
	ASSERT_FALSE(held(&a));
	ASSERT_EQ_INT(with_return(0), 2);
	/* goto out of it. */
	REAP_WITH_LOCK(&a) {
		n++;
		goto out;
	}
	n += 100;
out:
	ASSERT_FALSE(held(&a));
	ASSERT_EQ_INT(n, 6);
	/* Nested, two locks. */
	REAP_WITH_LOCK(&a) {
		REAP_WITH_LOCK(&b) {
			ASSERT_TRUE(held(&a) && held(&b));
		}
		ASSERT_FALSE(held(&b));
	}
	ASSERT_FALSE(held(&a));
}

/* Take x then y, on another thread (the order is process-wide). */
static reap_mutex *first, *second;
static int line_first, line_second;

static void *take_in_order(void *arg)
{
	(void)arg;
	line_first = __LINE__ + 1;
	reap_mutex_lock(first);
	line_second = __LINE__ + 1;
	reap_mutex_lock(second);
	reap_mutex_unlock(second);
	reap_mutex_unlock(first);
	return NULL;
}

static void order_on_thread(reap_mutex *x, reap_mutex *y)
{
	pthread_t t;

	first = x;
	second = y;
	ASSERT_EQ_INT(pthread_create(&t, NULL, take_in_order, NULL), 0);
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
}

TEST(lock_order_inversion_is_reported_with_both_sites)
{
	char want[128];
	int l1, l2;

	ASSERT_OK(reap_debug_set("locks"));
	order_on_thread(&a, &b); /* accounts, then ledger */
	ASSERT_EQ_STR(test_reports(), "");
	l1 = __LINE__ + 1;
	reap_mutex_lock(&b); /* ledger, then accounts: inverted */
	l2 = __LINE__ + 1;
	reap_mutex_lock(&a);
	reap_mutex_unlock(&a);
	reap_mutex_unlock(&b);
	ASSERT_CONTAINS(test_reports(), "lock-order inversion");
	ASSERT_CONTAINS(test_reports(), "takes \"accounts\"");
	ASSERT_CONTAINS(test_reports(), "while holding \"ledger\"");
	/* Our two sites... */
	snprintf(want, sizeof want, "test_lock.c:%d in test_lock_order_inversion", l2);
	ASSERT_CONTAINS(test_reports(), want);
	snprintf(want, sizeof want, "test_lock.c:%d in test_lock_order_inversion", l1);
	ASSERT_CONTAINS(test_reports(), want);
	/* ... and the other thread's two. */
	snprintf(want, sizeof want, "test_lock.c:%d in take_in_order", line_first);
	ASSERT_CONTAINS(test_reports(), want);
	snprintf(want, sizeof want, "test_lock.c:%d in take_in_order", line_second);
	ASSERT_CONTAINS(test_reports(), want);

	/* Once only. */
	test_reports_clear();
	reap_mutex_lock(&b);
	reap_mutex_lock(&a);
	reap_mutex_unlock(&a);
	reap_mutex_unlock(&b);
	ASSERT_EQ_STR(test_reports(), "");
	ASSERT_OK(reap_debug_set(""));
}

TEST(lock_order_inversion_through_a_chain)
{
	ASSERT_OK(reap_debug_set("locks"));
	order_on_thread(&a, &b); /* accounts -> ledger */
	order_on_thread(&b, &c); /* ledger -> audit */
	ASSERT_EQ_STR(test_reports(), "");
	REAP_WITH_LOCK(&c) {
		REAP_WITH_LOCK(&a) { /* audit -> accounts closes the cycle */
		}
	}
	ASSERT_CONTAINS(test_reports(), "takes \"accounts\"");
	ASSERT_CONTAINS(test_reports(), "while holding \"audit\"");
	ASSERT_CONTAINS(test_reports(), "\"accounts\" was held");
	ASSERT_CONTAINS(test_reports(), "\"ledger\" was held");
	ASSERT_OK(reap_debug_set(""));
}

TEST(lock_consistent_order_reports_nothing)
{
	ASSERT_OK(reap_debug_set("locks"));
	for (int i = 0; i < 3; i++) {
		order_on_thread(&a, &b);
		REAP_WITH_LOCK(&a) {
			REAP_WITH_LOCK(&b) {
				REAP_WITH_LOCK(&c) {
				}
			}
		}
		/* Released out of order is fine. */
		reap_mutex_lock(&a);
		reap_mutex_lock(&b);
		reap_mutex_unlock(&a);
		reap_mutex_unlock(&b);
	}
	ASSERT_EQ_STR(test_reports(), "");
	ASSERT_OK(reap_debug_set(""));
}

TEST(lock_inversion_unchecked_without_the_switch)
{
	order_on_thread(&a, &b);
	reap_mutex_lock(&b);
	reap_mutex_lock(&a);
	reap_mutex_unlock(&a);
	reap_mutex_unlock(&b);
	ASSERT_EQ_STR(test_reports(), "");
}
