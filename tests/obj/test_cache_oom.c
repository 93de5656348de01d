/*
 * The allocation-failure sweep of the cache: open (at several shard
 * counts, and with its owner at every fill level that makes the owner's
 * stack grow), put (new key and replacing), and the sweeper (whose
 * thread creation is one more fault point). Each failing N must return
 * -ENOMEM (-EAGAIN for the thread), change nothing, register nothing and
 * leak nothing; each sweep must hit at least one failure.
 */
#define _GNU_SOURCE
#include "../runner.h"

#define MAX_N 300 /* open with 256 shards allocates 258 times */

struct conn {
	int alive;
};

static void conn_close(void *obj) { ((struct conn *)obj)->alive = 0; }

static reap_obj_type conn_type = {
	.name = "conn", .size = sizeof(struct conn), .close = conn_close};

static struct conn *conn_new(void)
{
	struct conn *k;

	ASSERT_OK(reap_obj_create(&conn_type, &k));
	k->alive = 1;
	return k;
}

static void nop(void *arg) { (void)arg; }

#define SENTINEL ((reap_cache *)(uintptr_t)0xca4e)

static int sweep_open(const reap_cache_config *cfg, int fill)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cache *c = SENTINEL;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		for (int i = 0; i < fill; i++)
			ASSERT_OK(reap_defer(s, nop, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_cache_open(s, cfg, &c);
		seen = test_fault_disarm();
		if (rc == 0) {
			struct conn *k = conn_new();
			void *g;

			ASSERT_NE_PTR(c, SENTINEL);
			ASSERT_OK(reap_cache_put_int(c, 1, k, 1, 0));
			g = reap_cache_get_int(c, 1);
			ASSERT_EQ_PTR(g, k);
			reap_release(g);
			reap_release(k);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(c, SENTINEL);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
	return failures;
}

TEST(cache_oom_open_default)
{
	/* the cache, 16 tables, the owner's entry */
	ASSERT_GE_INT(sweep_open(NULL, 0), 17);
}

TEST(cache_oom_open_every_shard_count)
{
	for (unsigned sh = 1; sh <= 256; sh *= 2) {
		reap_cache_config cfg = {.shards = sh, .max_count = 1000};

		ASSERT_GE_INT(sweep_open(&cfg, 0), (int)sh + 1);
	}
}

TEST(cache_oom_open_at_every_fill_level_of_the_owner)
{
	reap_cache_config cfg = {.shards = 1};

	for (int fill = 0; fill <= 40; fill++)
		sweep_open(&cfg, fill);
}

static void sweep_put(int str, int replace)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_cache_config cfg = {.max_count = 2, .shards = 1};
		reap_cache *c;
		struct conn *old = conn_new(), *a = conn_new(), *other = conn_new();
		struct test_snap before;
		reap_cache_stat st;
		long seen;
		void *g;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_cache_open(NULL, &cfg, &c));
		ASSERT_OK(reap_cache_put_int(c, 99, other, 1, 0));
		if (replace)
			ASSERT_OK(str ? reap_cache_put_str(c, "k", old, 1, 0)
				      : reap_cache_put_int(c, 5, old, 1, 0));
		before = test_snap();
		reap_fault_alloc(n);
		rc = str ? reap_cache_put_str(c, "k", a, 1, 0)
			 : reap_cache_put_int(c, 5, a, 1, 0);
		seen = test_fault_disarm();
		reap_cache_stats(c, &st);
		if (rc == 0) {
			g = str ? reap_cache_get_str(c, "k") : reap_cache_get_int(c, 5);
			ASSERT_EQ_PTR(g, a);
			reap_release(g);
			ASSERT_EQ_INT(st.replaced, replace);
			reap_cache_close(c);
			reap_release(a);
			reap_release(old);
			reap_release(other);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
		/* Nothing evicted, replaced or referenced. */
		ASSERT_EQ_SIZE(st.count, (size_t)(1 + replace));
		ASSERT_EQ_INT(st.replaced, 0);
		ASSERT_EQ_INT(st.evicted[REAP_CACHE_EVICT_CAPACITY], 0);
		ASSERT_EQ_INT(reap_obj_refs(a), 1);
		g = str ? reap_cache_get_str(c, "k") : reap_cache_get_int(c, 5);
		ASSERT_EQ_PTR(g, replace ? (void *)old : NULL);
		if (g != NULL)
			reap_release(g);
		reap_cache_close(c);
		reap_release(a);
		reap_release(old);
		reap_release(other);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(cache_oom_put_int) { sweep_put(0, 0); }
TEST(cache_oom_put_str) { sweep_put(1, 0); }
TEST(cache_oom_put_replacing) { sweep_put(0, 1); sweep_put(1, 1); }

/* A table that cannot grow is no failure. */
TEST(cache_oom_growth_is_benign)
{
	reap_cache_config cfg = {.shards = 1};
	reap_cache *c;
	enum { N = 300 };
	int failed = 0;

	ASSERT_OK(reap_cache_open(NULL, &cfg, &c));
	for (int i = 0; i < N; i++) {
		struct conn *k = conn_new();

		reap_fault_alloc(2); /* the entry is the 1st; growth the 2nd */
		ASSERT_OK(reap_cache_put_int(c, (uint64_t)i, k, 1, 0));
		failed += test_fault_disarm() >= 2;
		reap_release(k);
	}
	ASSERT_GE_INT(failed, 1);
	for (int i = 0; i < N; i++) {
		void *g = reap_cache_get_int(c, (uint64_t)i);

		ASSERT_NOT_NULL(g);
		reap_release(g);
	}
	reap_cache_close(c);
}

TEST(cache_oom_sweeper_start)
{
	int failures = 0, thread_failed = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cache *c;
		reap_cache_sweeper *sw = (reap_cache_sweeper *)(uintptr_t)0x5;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		ASSERT_OK(reap_cache_open(s, NULL, &c));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_cache_sweeper_start(s, c, REAP_SEC, &sw);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(sw, (reap_cache_sweeper *)(uintptr_t)0x5);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_TRUE(rc == -ENOMEM || rc == -EAGAIN);
		thread_failed += rc == -EAGAIN;
		ASSERT_EQ_PTR(sw, (reap_cache_sweeper *)(uintptr_t)0x5);
		ASSERT_UNCHANGED(before);
		/* Nothing left behind: the cache can take a sweeper. */
		ASSERT_OK(reap_cache_sweeper_start(s, c, REAP_SEC, NULL));
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 2);
	ASSERT_EQ_INT(thread_failed, 1);
}
