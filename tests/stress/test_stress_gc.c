/*
 * The cycle detector under concurrency, proving the threading rule of
 * reap/obj.h. Worker threads (REAP_STRESS_THREADS, default 2) each run
 * REAP_STRESS_ITERS iterations (default 20000) of: make a 2-object cycle
 * (the edges set under the domain lock), churn acquire/release on it
 * with no lock, take a reference through an edge under the lock (the
 * rule), drop the creator's references, check that what it still holds
 * was neither cleared nor closed, then drop that too (the cycle is
 * garbage now); upgrade a weak reference to the garbage, racing the
 * collector, and check that an upgrade that succeeds never yields a
 * cleared object; sometimes keep a cycle alive for a while in a slot,
 * and make short-lived tracked objects that die while a collection
 * runs. One collector thread calls reap_gc_collect() in a loop
 * meanwhile.
 *
 * Checked: no object is cleared or closed while a thread holds a
 * reference it took by the rule; every object is closed exactly once
 * (closes == creations, clears <= closes); at the end nothing is
 * tracked. Built for ThreadSanitizer as well: clear writes the edges
 * without the lock, so a collection that broke a group some thread could
 * still reach would show up as a race.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>

#include "../runner.h"

struct node {
	void *a;          /* the edge: under the domain lock */
	atomic_int state; /* 0 live, 1 cleared, 2 closed */
};

static atomic_long made, closed, cleared, bad;

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	return n->a != NULL ? visit(n->a, ctx) : 0;
}

/* Runs on doomed objects only: no lock (nothing else can reach them). */
static void node_clear(void *obj)
{
	struct node *n = obj;
	void *a = n->a;

	atomic_store(&n->state, 1);
	atomic_fetch_add(&cleared, 1);
	n->a = NULL;
	if (a != NULL)
		reap_release(a);
}

static void node_close(void *obj)
{
	struct node *n = obj;
	void *a = n->a;

	if (atomic_exchange(&n->state, 2) == 2)
		atomic_fetch_add(&bad, 1); /* closed twice */
	atomic_fetch_add(&closed, 1);
	n->a = NULL;
	if (a != NULL)
		reap_release(a);
}

static reap_obj_type node_type = {.name = "stress-node",
	.size = sizeof(struct node), .close = node_close,
	.traverse = node_traverse, .clear = node_clear};

static struct node *mk(void)
{
	struct node *n;

	if (reap_obj_create(&node_type, &n) != 0)
		test_fail(__FILE__, __LINE__, "reap_obj_create failed");
	atomic_fetch_add(&made, 1);
	return n;
}

/* A reference held by the rule must never see its object broken. */
static void check_intact(struct node *n, const char *how)
{
	if (atomic_load(&n->state) != 0) {
		fprintf(stderr, "stress-gc: object %p %s while held (%s)\n",
			(void *)n, atomic_load(&n->state) == 1 ? "cleared" : "closed",
			how);
		atomic_fetch_add(&bad, 1);
	}
}

static atomic_int stop;
static long iters;

static void *worker(void *arg)
{
	struct node *slot = NULL;
	unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + 1;

	for (long i = 0; i < iters; i++) {
		struct node *a = mk(), *b = mk(), *x;
		reap_weak *w = NULL;

		seed = seed * 1103515245u + 12345u;
		reap_gc_lock(NULL);
		a->a = reap_acquire(b);
		b->a = reap_acquire(a);
		reap_gc_unlock(NULL);
		if (seed % 2 == 0 && reap_weak_create(b, &w) != 0)
			test_fail(__FILE__, __LINE__, "reap_weak_create failed");
		/* Counts move with no lock. */
		for (int k = 0; k < 3; k++)
			reap_release(reap_acquire(a));
		/* A reference taken through an edge: under the lock. */
		reap_gc_lock(NULL);
		x = reap_acquire(a->a);
		reap_gc_unlock(NULL);
		reap_release(a);
		reap_release(b);
		/* Only x (which is b) holds the cycle now; a is reachable
		 * through it. */
		check_intact(x, "through an edge");
		reap_gc_lock(NULL);
		check_intact(x->a, "reached from a held object");
		reap_gc_unlock(NULL);
		if (seed % 8 == 1) {
			/* Keep this one alive a while. */
			if (slot != NULL)
				reap_release(slot);
			slot = x;
		} else {
			reap_release(x); /* garbage from here */
		}
		/* A short-lived tracked object: dies while a collection
		 * may be running. */
		reap_release(mk());
		if (w != NULL) {
			/* Upgrade again and again: each success races a
			 * collection that may have found the cycle garbage. */
			for (int k = 0; k < 64; k++) {
				struct node *p = reap_weak_get(w);

				if (p == NULL)
					break;
				check_intact(p, "through a weak reference");
				/* Hold it across a collection's clear. */
				if (k % 8 == 7)
					sched_yield();
				reap_release(reap_acquire(p));
				check_intact(p, "through a weak reference, later");
				reap_release(p);
			}
			reap_weak_destroy(w);
		}
		if (slot != NULL)
			check_intact(slot, "kept in a slot");
	}
	if (slot != NULL)
		reap_release(slot);
	return NULL;
}

static void *collector(void *arg)
{
	long *total = arg;

	while (!atomic_load(&stop)) {
		int n = reap_gc_collect(NULL);

		if (n < 0)
			test_fail(__FILE__, __LINE__, "reap_gc_collect: %d", n);
		*total += n;
		/* Let the workers run between collections: on a loaded machine
		 * (2 CPUs, TSan, other tests) back-to-back collections starve
		 * them and the test crawls. */
		sched_yield();
	}
	return NULL;
}

TEST(stress_gc_collect_while_threads_acquire_release_and_upgrade)
{
	long nthreads = test_env_long("REAP_STRESS_THREADS", 2, 1, 64);
	pthread_t t[64], c;
	long total = 0;
	reap_gc_stat st;
	int n;

	iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000);
	ASSERT_EQ_INT(pthread_create(&c, NULL, collector, &total), 0);
	for (long i = 0; i < nthreads; i++)
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i), 0);
	for (long i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	atomic_store(&stop, 1);
	pthread_join(c, NULL);
	ASSERT_GE_INT(n = reap_gc_collect(NULL), 0);
	total += n;
	reap_gc_stats(NULL, &st);
	fprintf(stderr, "stress-gc: %ld threads x %ld iterations: %ld objects, "
		"%ld collected (%ld while the workers ran), %" PRIu64
		" collections, %" PRIu64 " abandoned\n", nthreads, iters,
		atomic_load(&made), total, total - n, st.collections, st.abandoned);
	ASSERT_EQ_INT(atomic_load(&bad), 0);
	/* No group was broken while something outside still held it. */
	ASSERT_EQ_PTR(strstr(test_reports(), "survived"), NULL);
	ASSERT_EQ_SIZE(st.tracked, 0);
	ASSERT_EQ_INT(atomic_load(&closed), atomic_load(&made));
	ASSERT_LE_INT(atomic_load(&cleared), atomic_load(&closed));
	/* Every cycle went through the detector: 2 objects each. */
	ASSERT_EQ_INT(total, 2 * nthreads * iters);
	ASSERT_EQ_INT((long)st.collected, total);
}

/* Collections of several domains at once, and several collectors on one
 * domain: they take turns, and each object is collected once. */
static reap_gc_domain *doms[2];

static void *domain_worker(void *arg)
{
	reap_gc_domain *d = doms[(uintptr_t)arg % 2];

	for (long i = 0; i < iters; i++) {
		struct node *a, *b;

		if (reap_obj_create_in(d, &node_type, &a) != 0 ||
		    reap_obj_create_in(d, &node_type, &b) != 0)
			test_fail(__FILE__, __LINE__, "reap_obj_create_in failed");
		atomic_fetch_add(&made, 2);
		reap_gc_lock(d);
		a->a = reap_acquire(b);
		b->a = reap_acquire(a);
		reap_gc_unlock(d);
		reap_release(a);
		reap_release(b);
		if (i % 64 == 0 && reap_gc_collect(d) < 0)
			test_fail(__FILE__, __LINE__, "reap_gc_collect failed");
	}
	return NULL;
}

TEST(stress_gc_domains_and_concurrent_collectors)
{
	reap_scope *s;
	pthread_t t[4];

	iters = test_env_long("REAP_STRESS_ITERS", 20000, 1, 100000000) / 2 + 1;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &doms[0]));
	ASSERT_OK(reap_gc_domain_create(s, &doms[1]));
	for (uintptr_t i = 0; i < 4; i++)
		ASSERT_EQ_INT(pthread_create(&t[i], NULL, domain_worker, (void *)i), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		reap_gc_stat st;

		ASSERT_GE_INT(reap_gc_collect(doms[i]), 0);
		reap_gc_stats(doms[i], &st);
		ASSERT_EQ_SIZE(st.tracked, 0);
		ASSERT_EQ_INT((long)st.collected, 2 * 2 * iters);
	}
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(atomic_load(&bad), 0);
	ASSERT_EQ_INT(atomic_load(&closed), atomic_load(&made));
}
