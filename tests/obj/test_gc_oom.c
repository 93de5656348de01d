/*
 * The allocation-failure sweep over the cycle detector's constructors:
 * reap_gc_domain_create (under a named scope and under the current one)
 * and the creation of a tracked object in a domain. Each is called with
 * its 1st, 2nd, ... allocation failing until it succeeds; a failed call
 * returns -ENOMEM, leaves *out untouched and changes nothing (ledger
 * count, live blocks, the domain's tracked count). A collection
 * allocates nothing, so it succeeds whichever allocation fails.
 */
#include "../runner.h"

#define MAX_N 64

struct node {
	void *a;
};

static int closes;

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	return n->a != NULL ? visit(n->a, ctx) : 0;
}

static void node_clear(void *obj)
{
	struct node *n = obj;
	void *a = n->a;

	n->a = NULL;
	if (a != NULL)
		reap_release(a);
}

static void node_close(void *obj)
{
	closes++;
	node_clear(obj);
}

static reap_obj_type node_type = {.name = "oomnode", .size = sizeof(struct node),
	.close = node_close, .traverse = node_traverse, .clear = node_clear};

#define SENTINEL_DOMAIN ((reap_gc_domain *)(uintptr_t)0x6cd0)
#define SENTINEL_OBJ ((void *)(uintptr_t)0x0b70)

static void sweep_domain_create(int under_current)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s, *prev = NULL;
		reap_gc_domain *d = SENTINEL_DOMAIN;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		if (under_current)
			prev = reap_scope_set_current(s);
		before = test_snap();
		reap_fault_alloc(n);
		rc = under_current ? reap_gc_domain_create(NULL, &d)
				   : reap_gc_domain_create(s, &d);
		seen = test_fault_disarm();
		if (under_current)
			reap_scope_set_current(prev);
		if (rc == 0) {
			struct node *a;
			reap_gc_stat st;

			ASSERT_NE_PTR(d, SENTINEL_DOMAIN);
			ASSERT_EQ_SIZE(reap_ledger_count(), before.count + 1);
			ASSERT_OK(reap_obj_create_in(d, &node_type, &a));
			a->a = reap_acquire(a); /* a self-cycle, left to the close */
			reap_release(a);
			reap_gc_stats(d, &st);
			ASSERT_EQ_SIZE(st.tracked, 1);
			closes = 0;
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(closes, 1);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(d, SENTINEL_DOMAIN);
		ASSERT_EQ_SIZE(reap_ledger_count(), before.count);
		ASSERT_EQ_SIZE(reap_alloc_live(), before.live);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_gc_domain_create)
{
	sweep_domain_create(0);
}

TEST(oom_gc_domain_create_under_the_current_scope)
{
	sweep_domain_create(1);
}

/* A tracked object that cannot be created is not tracked. */
TEST(oom_gc_tracked_object_create_in_a_domain)
{
	reap_scope *s;
	reap_gc_domain *d;
	int failures = 0;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	for (int n = 1;; n++) {
		void *o = SENTINEL_OBJ;
		reap_gc_stat st;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_obj_create_in(d, &node_type, &o);
		seen = test_fault_disarm();
		reap_gc_stats(d, &st);
		if (rc == 0) {
			ASSERT_EQ_SIZE(st.tracked, 1);
			reap_release(o);
			reap_gc_stats(d, &st);
			ASSERT_EQ_SIZE(st.tracked, 0);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(o, SENTINEL_OBJ);
		ASSERT_EQ_SIZE(st.tracked, 0);
		ASSERT_EQ_SIZE(reap_ledger_count(), before.count);
		ASSERT_EQ_SIZE(reap_alloc_live(), before.live);
	}
	ASSERT_GE_INT(failures, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* Whichever allocation fails, a collection collects, and the domain's
 * counts stay exact. */
TEST(oom_gc_collect_never_fails)
{
	for (int n = 1; n <= 8; n++) {
		struct node *a, *b;
		reap_gc_stat st;

		ASSERT_OK(reap_obj_create(&node_type, &a));
		ASSERT_OK(reap_obj_create(&node_type, &b));
		a->a = reap_acquire(b);
		b->a = reap_acquire(a);
		reap_release(a);
		reap_release(b);
		closes = 0;
		reap_fault_alloc(n);
		ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
		test_fault_disarm();
		ASSERT_EQ_INT(closes, 2);
		reap_gc_stats(NULL, &st);
		ASSERT_EQ_SIZE(st.tracked, 0);
		ASSERT_EQ_SIZE(st.collected, 2 * (uint64_t)n);
	}
}
