/*
 * The cycle detector: rings, self-references, chains hanging off cycles,
 * reachable cycles (kept), cycles through untracked objects (kept, a
 * documented limit), uncollectable groups (reported with type and
 * creation site, listed by reap_gc_garbage), weak references and
 * finalizers of collected objects, domains, the lock, debug reports.
 * Every test breaks what it could not collect by hand, so that the
 * runner finds the ledger empty.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <unistd.h>

#include "../runner.h"

/* ------------------------------------------------------------------ */
/* A node holds up to two references to other objects.                  */

#define MAXID 300000

struct node {
	void *a, *b;
	int id;
};

static int closes[MAXID], clears[MAXID];
static int nclosed, ncleared, next_id;

static void reset(void)
{
	memset(closes, 0, sizeof closes);
	memset(clears, 0, sizeof clears);
	nclosed = ncleared = next_id = 0;
}

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	if (n->a != NULL && visit(n->a, ctx) != 0)
		return 1;
	if (n->b != NULL && visit(n->b, ctx) != 0)
		return 1;
	return 0;
}

static void node_drop(struct node *n)
{
	void *a = n->a, *b = n->b;

	n->a = n->b = NULL;
	if (a != NULL)
		reap_release(a);
	if (b != NULL)
		reap_release(b);
}

static void node_clear(void *obj)
{
	struct node *n = obj;

	clears[n->id]++;
	ncleared++;
	node_drop(n);
}

static void node_close(void *obj)
{
	struct node *n = obj;

	closes[n->id]++;
	nclosed++;
	node_drop(n);
}

static void node_describe(void *obj, char *buf, size_t len)
{
	snprintf(buf, len, "node #%d", ((struct node *)obj)->id);
}

static reap_obj_type node_type = {.name = "node", .size = sizeof(struct node),
	.close = node_close, .traverse = node_traverse, .clear = node_clear,
	.describe = node_describe};

/* Tracked, but without clear: a cycle of these is uncollectable. */
static reap_obj_type stubborn_type = {.name = "stubborn",
	.size = sizeof(struct node), .close = node_close,
	.traverse = node_traverse};

/* Not tracked (no traverse): the detector cannot see its references. */
static reap_obj_type leaf_type = {.name = "leaf", .size = sizeof(struct node),
	.close = node_close};

/* A new node, numbered; its creation site is the caller's line. */
static struct node *mk_at(reap_gc_domain *d, reap_obj_type *t,
			  const reap_site *site)
{
	struct node *n;

	ASSERT_OK(reap_obj_create_at(d, t, (void **)&n, site));
	ASSERT_LT_INT(next_id, MAXID);
	n->id = next_id++;
	return n;
}
#define mk_in(d, t) mk_at((d), (t), REAP_SITE)
#define mk(t) mk_at(NULL, (t), REAP_SITE)

/* x->a = y (a new reference to y), under the domain lock, as the
 * threading rule asks; the old referent is released after. */
static void set_a_in(reap_gc_domain *d, struct node *x, void *y)
{
	void *old;

	reap_gc_lock(d);
	old = x->a;
	x->a = y != NULL ? reap_acquire(y) : NULL;
	reap_gc_unlock(d);
	if (old != NULL)
		reap_release(old);
}

static void set_a(struct node *x, void *y) { set_a_in(NULL, x, y); }

static void set_b(struct node *x, void *y)
{
	void *old;

	reap_gc_lock(NULL);
	old = x->b;
	x->b = y != NULL ? reap_acquire(y) : NULL;
	reap_gc_unlock(NULL);
	if (old != NULL)
		reap_release(old);
}

static reap_gc_stat stats(reap_gc_domain *d)
{
	reap_gc_stat st;

	reap_gc_stats(d, &st);
	return st;
}

/* A ring of n nodes, released: pure garbage. */
static void make_ring(int n)
{
	struct node *first = mk(&node_type), *prev = first;

	for (int i = 1; i < n; i++) {
		struct node *x = mk(&node_type);

		set_a(prev, x);
		if (prev != first)
			reap_release(prev);
		prev = x;
	}
	set_a(prev, first);
	reap_release(prev);
	if (prev != first)
		reap_release(first);
}

static void assert_each_closed_once(int n)
{
	for (int i = 0; i < n; i++)
		if (closes[i] != 1)
			test_fail(__FILE__, __LINE__, "node #%d closed %d times", i,
				  closes[i]);
}

/* ------------------------------------------------------------------ */
/* Rings and self-references                                            */

static int fin_runs;
static int fin(void *ctx)
{
	(void)ctx;
	fin_runs++;
	return 0;
}

TEST(gc_ring_of_two_collected_finalizers_and_close_once)
{
	struct node *a, *b;

	reset();
	fin_runs = 0;
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	ASSERT_OK(reap_finalize(a, fin, NULL, 0, NULL));
	ASSERT_OK(reap_finalize(b, fin, NULL, 0, NULL));
	ASSERT_EQ_SIZE(stats(NULL).tracked, 2);
	reap_release(a);
	reap_release(b);
	ASSERT_EQ_INT(nclosed, 0); /* the cycle keeps them */
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	ASSERT_EQ_INT(fin_runs, 2);
	ASSERT_EQ_INT(nclosed, 2);
	ASSERT_EQ_INT(ncleared, 2);
	assert_each_closed_once(2);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(fin_runs, 2);
	ASSERT_EQ_INT(nclosed, 2);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 0);
	ASSERT_EQ_SIZE(stats(NULL).collected, 2);
	ASSERT_EQ_SIZE(stats(NULL).collections, 2);
}

TEST(gc_ring_of_three_collected)
{
	reset();
	make_ring(3);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 3);
	assert_each_closed_once(3);
}

TEST(gc_rings_of_many_sizes_collected_together)
{
	int total = 0;

	reset();
	for (int n = 1; n <= 40; n++) {
		make_ring(n);
		total += n;
	}
	ASSERT_EQ_INT(reap_gc_collect(NULL), total);
	assert_each_closed_once(total);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 0);
}

/* Deep structures are collected without recursion: each member dies on
 * its own, after every clear has run. */
TEST(gc_ring_of_200000_collected)
{
	reset();
	make_ring(200000);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 200000);
	assert_each_closed_once(200000);
}

TEST(gc_self_reference_collected)
{
	struct node *a;

	reset();
	a = mk(&node_type);
	set_a(a, a);
	set_b(a, a);
	reap_release(a);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 1);
	assert_each_closed_once(1);
}

/* ------------------------------------------------------------------ */
/* Chains hanging off cycles                                            */

TEST(gc_chain_hanging_off_a_cycle_collected)
{
	struct node *a, *b, *c, *d, *leaf;

	reset();
	a = mk(&node_type);
	b = mk(&node_type);
	c = mk(&node_type);
	d = mk(&node_type);
	leaf = mk(&leaf_type); /* untracked, at the end of the chain */
	set_a(a, b);
	set_a(b, a);
	set_b(b, c);
	set_a(c, d);
	set_a(d, leaf);
	reap_release(leaf);
	reap_release(d);
	reap_release(c);
	reap_release(b);
	reap_release(a);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 4); /* the tracked ones */
	assert_each_closed_once(5);             /* and the leaf */
}

TEST(gc_long_chain_hanging_off_a_cycle_collected)
{
	struct node *a, *b, *prev;
	int n = 100000;

	reset();
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	prev = b;
	for (int i = 0; i < n; i++) {
		struct node *x = mk(&node_type);

		set_b(prev, x);
		if (prev != b)
			reap_release(prev);
		prev = x;
	}
	reap_release(prev);
	reap_release(a);
	reap_release(b);
	ASSERT_EQ_INT(reap_gc_collect(NULL), n + 2);
	assert_each_closed_once(n + 2);
}

/* A chain that hangs off a live object is not garbage, nor is a live
 * chain that a cycle hangs off. */
TEST(gc_live_chain_keeps_the_cycle_it_leads_to)
{
	struct node *x, *a, *b;

	reset();
	x = mk(&node_type);
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(x, a);
	set_a(a, b);
	set_a(b, a);
	reap_release(a);
	reap_release(b);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(nclosed, 0);
	reap_release(x); /* x dies now; a <-> b is garbage */
	ASSERT_EQ_INT(nclosed, 1);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	assert_each_closed_once(3);
}

/* ------------------------------------------------------------------ */
/* Reachable cycles are not collected                                   */

TEST(gc_cycle_held_from_outside_not_collected)
{
	struct node *a, *b;

	reset();
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	reap_release(b); /* we keep a */
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(ncleared, 0);
	ASSERT_NOT_NULL(a->a);
	ASSERT_EQ_PTR(((struct node *)a->a)->a, a);
	reap_release(a);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	assert_each_closed_once(2);
}

TEST(gc_cycle_held_by_a_scope_not_collected)
{
	struct node *a, *b;
	reap_scope *s;

	reset();
	ASSERT_OK(reap_scope_open(NULL, &s));
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	ASSERT_OK(reap_scope_adopt(s, b, NULL)); /* the scope holds b */
	reap_release(a);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(nclosed, 0); /* still a cycle */
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	assert_each_closed_once(2);
}

/* A reference from an untracked object counts as one from outside, so a
 * cycle through an untracked object is not found: a documented limit.
 * Giving the untracked type traverse (and clear) makes it collectable. */
TEST(gc_cycle_through_an_untracked_object_is_not_collected)
{
	struct node *a, *leaf;

	reset();
	a = mk(&node_type);
	leaf = mk(&leaf_type);
	set_a(a, leaf);
	leaf->a = reap_acquire(a); /* untracked: no lock needed */
	reap_release(leaf);
	reap_release(a);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 1);
	/* Break it by hand: the leaf lets a go. */
	{
		void *p = leaf->a;

		leaf->a = NULL;
		reap_release(p);
	}
	/* a died (only the leaf held it), and took the leaf with it. */
	ASSERT_EQ_INT(nclosed, 2);
	assert_each_closed_once(2);
}

/* Objects of another domain are outside: a cycle across domains is not
 * found by either. */
TEST(gc_cycle_across_domains_is_not_collected)
{
	reap_scope *s;
	reap_gc_domain *d;
	struct node *a, *b;

	reset();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	a = mk(&node_type);
	b = mk_in(d, &node_type);
	set_a(a, b);
	set_a_in(d, b, a);
	reap_release(a);
	reap_release(b);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(reap_gc_collect(d), 0);
	ASSERT_EQ_INT(nclosed, 0);
	set_a(a, NULL); /* by hand: b dies, and a with it */
	ASSERT_EQ_INT(nclosed, 2);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* ------------------------------------------------------------------ */
/* Uncollectable groups                                                 */

static struct node *stub1, *stub2, *held;
static int stub1_line, stub2_line;

/* stub1 <-> stub2, both without clear; stub1 also holds `held`, a node
 * with clear: all three are uncollectable (held is kept alive by them). */
static void make_stubborn(void)
{
	stub1_line = __LINE__ + 1;
	stub1 = mk(&stubborn_type);
	stub2_line = __LINE__ + 1;
	stub2 = mk(&stubborn_type);
	held = mk(&node_type);
	set_a(stub1, stub2);
	set_a(stub2, stub1);
	set_b(stub1, held);
	reap_release(held);
	reap_release(stub2);
	reap_release(stub1);
}

/* Break the stubborn cycle by hand, through the references that
 * reap_gc_garbage hands out, so that what is left is a collectable
 * cycle: stub1 <-> held (stub2 dies at once). */
static void break_stubborn(void)
{
	reap_gc_item g[8];

	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, g, 8), 3);
	set_a(held, stub1);
	set_a(stub1, NULL);
	for (int i = 0; i < 3; i++)
		reap_release(g[i].obj);
	ASSERT_EQ_INT(nclosed, 1); /* stub2 */
}

TEST(gc_uncollectable_cycle_reported_with_type_and_site)
{
	char want[256];
	const char *r;

	reset();
	ASSERT_OK(reap_debug_set("gc:uncollectable"));
	make_stubborn();
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(ncleared, 0); /* held was not cleared either */
	r = test_reports();
	ASSERT_CONTAINS(r, "reap: gc: 3 uncollectable object(s) in 1 group(s) "
			   "in the default domain");
	ASSERT_CONTAINS(r, "\"stubborn\" (no clear), created at ");
	ASSERT_CONTAINS(r, "obj/test_gc.c:");
	snprintf(want, sizeof want, "test_gc.c:%d in make_stubborn()", stub1_line);
	ASSERT_CONTAINS(r, want);
	snprintf(want, sizeof want, "test_gc.c:%d in make_stubborn()", stub2_line);
	ASSERT_CONTAINS(r, want);
	ASSERT_CONTAINS(r, "\"node\" node #2, created at");
	ASSERT_EQ_SIZE(stats(NULL).uncollectable, 3);

	/* Reported once: the next collection finds them again, silently. */
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_STR(test_reports(), "");
	ASSERT_EQ_SIZE(stats(NULL).uncollectable, 3);

	/* Broken by hand, they are collected. */
	break_stubborn();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	assert_each_closed_once(3);
	ASSERT_EQ_SIZE(stats(NULL).uncollectable, 0);
	ASSERT_OK(reap_debug_set(""));
}

TEST(gc_uncollectable_listed_by_the_api)
{
	reap_gc_item g[8];
	int seen_stub = 0, seen_node = 0;

	reset();
	make_stubborn();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, g, 1), 3); /* the count, one filled */
	reap_release(g[0].obj);
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, g, 8), 3);
	for (int i = 0; i < 3; i++) {
		ASSERT_EQ_INT(g[i].group, 1);
		ASSERT_EQ_PTR(g[i].type, reap_obj_type_of(g[i].obj));
		ASSERT_CONTAINS(g[i].site->file, "obj/test_gc.c");
		if (g[i].obj == stub1 || g[i].obj == stub2) {
			seen_stub++;
			ASSERT_TRUE(g[i].no_clear);
			ASSERT_EQ_STR(g[i].type->name, "stubborn");
			ASSERT_EQ_STR(g[i].site->func, "make_stubborn");
			ASSERT_EQ_INT(g[i].site->line,
				      g[i].obj == stub1 ? stub1_line : stub2_line);
		} else {
			seen_node++;
			ASSERT_EQ_PTR(g[i].obj, held);
			ASSERT_FALSE(g[i].no_clear);
		}
		ASSERT_EQ_INT(reap_obj_refs(g[i].obj), 2); /* a member's and ours */
	}
	ASSERT_EQ_INT(seen_stub, 2);
	ASSERT_EQ_INT(seen_node, 1);
	/* While we hold them they are reachable: nothing is listed. */
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, NULL, 0), 0);
	for (int i = 0; i < 3; i++)
		reap_release(g[i].obj);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, NULL, 0), 3);
	break_stubborn();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, NULL, 0), 0);
	assert_each_closed_once(3);
}

/* A member without clear in a cycle with a member that has one: clear
 * cuts the cycle, so it is collected. */
TEST(gc_cycle_with_one_clear_is_collected)
{
	struct node *s, *n, *t;

	reset();
	s = mk(&stubborn_type);
	n = mk(&node_type);
	t = mk(&stubborn_type); /* a tail without clear, held by s */
	set_a(s, n);
	set_a(n, s);
	set_b(s, t);
	reap_release(s);
	reap_release(n);
	reap_release(t);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 3);
	assert_each_closed_once(3);
	ASSERT_EQ_INT(ncleared, 1);
	ASSERT_EQ_SIZE(stats(NULL).uncollectable, 0);
}

/* Two separate stubborn cycles and a collectable ring at once: two
 * groups kept, the ring collected. */
TEST(gc_uncollectable_groups_numbered_and_the_rest_collected)
{
	struct node *s[4];
	reap_gc_item g[8];
	unsigned groups = 0;

	reset();
	ASSERT_OK(reap_debug_set("gc:uncollectable"));
	for (int i = 0; i < 4; i++)
		s[i] = mk(&stubborn_type);
	make_ring(5);
	set_a(s[0], s[1]);
	set_a(s[1], s[0]);
	set_a(s[2], s[3]);
	set_a(s[3], s[2]);
	for (int i = 0; i < 4; i++)
		reap_release(s[i]);
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 5);
	ASSERT_CONTAINS(test_reports(), "4 uncollectable object(s) in 2 group(s)");
	ASSERT_CONTAINS(test_reports(), "  group 2:\n");
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, g, 8), 4);
	for (int i = 0; i < 4; i++) {
		groups |= 1u << g[i].group;
		reap_release(g[i].obj);
	}
	ASSERT_EQ_INT(groups, 6); /* groups 1 and 2 */
	/* Each pair is one group. */
	ASSERT_EQ_SIZE(reap_gc_garbage(NULL, g, 8), 4);
	for (int i = 0; i < 4; i++) {
		for (int j = 0; j < 4; j++)
			if (g[j].obj == ((struct node *)g[i].obj)->a)
				ASSERT_EQ_INT(g[j].group, g[i].group);
	}
	for (int i = 0; i < 4; i++)
		reap_release(g[i].obj);
	/* Broken by hand (we may: they are alive, and held by each
	 * other), they die at once: each pair is a chain now. */
	set_a(s[0], NULL);
	set_a(s[2], NULL);
	ASSERT_EQ_INT(nclosed, 9);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	assert_each_closed_once(9);
	ASSERT_OK(reap_debug_set(""));
}

/* ------------------------------------------------------------------ */
/* Weak references and the doomed bit                                   */

static int weak_cb_runs;
static void weak_cb(reap_weak *w, void *ctx)
{
	(void)ctx;
	ASSERT_NULL(reap_weak_get(w));
	weak_cb_runs++;
}

TEST(gc_weak_reference_to_collected_member_is_null)
{
	struct node *a, *b;
	reap_weak *w, *wb;

	reset();
	weak_cb_runs = 0;
	a = mk(&node_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	ASSERT_OK(reap_weak_create(a, &w));
	ASSERT_OK(reap_weak_create_cb(b, weak_cb, NULL, &wb));
	reap_release(a);
	reap_release(b);
	/* Before collection the garbage can still be reached, and that
	 * reference makes it reachable again. */
	{
		struct node *again = reap_weak_get(w);

		ASSERT_EQ_PTR(again, a);
		ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
		reap_release(again);
	}
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	ASSERT_NULL(reap_weak_get(w));
	ASSERT_FALSE(reap_weak_alive(w));
	ASSERT_EQ_INT(weak_cb_runs, 1);
	reap_weak_destroy(w);
	reap_weak_destroy(wb);
	assert_each_closed_once(2);
}

/* During the collection (here: from clear, once the group is doomed),
 * a weak reference to a member cannot resurrect it. */
static reap_weak *peer_weak;
static int weak_get_in_clear = -1;

static void probing_clear(void *obj)
{
	void *p = reap_weak_get(peer_weak);

	weak_get_in_clear = p != NULL;
	if (p != NULL)
		reap_release(p);
	node_clear(obj);
}

static reap_obj_type probing_type = {.name = "probing",
	.size = sizeof(struct node), .close = node_close,
	.traverse = node_traverse, .clear = probing_clear};

TEST(gc_weak_get_during_collection_cannot_resurrect)
{
	struct node *a, *b;

	reset();
	a = mk(&probing_type);
	b = mk(&node_type);
	set_a(a, b);
	set_a(b, a);
	ASSERT_OK(reap_weak_create(b, &peer_weak));
	reap_release(a);
	reap_release(b);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	ASSERT_EQ_INT(weak_get_in_clear, 0);
	ASSERT_NULL(reap_weak_get(peer_weak));
	reap_weak_destroy(peer_weak);
	assert_each_closed_once(2);
}

/* A clear that keeps its references: the members survive, undoomed,
 * reported, still tracked. */
static void lazy_clear(void *obj)
{
	(void)obj;
	ncleared++;
}

static reap_obj_type lazy_type = {.name = "lazy", .size = sizeof(struct node),
	.close = node_close, .traverse = node_traverse, .clear = lazy_clear};

TEST(gc_members_that_survive_clear_are_reported_and_kept)
{
	struct node *a, *b;
	reap_weak *w;

	reset();
	a = mk(&lazy_type);
	b = mk(&lazy_type);
	set_a(a, b);
	set_a(b, a);
	ASSERT_OK(reap_weak_create(a, &w));
	reap_release(a);
	reap_release(b);
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_INT(ncleared, 2);
	ASSERT_CONTAINS(test_reports(), "2 object(s) of a garbage group in the "
					"default domain survived");
	ASSERT_EQ_SIZE(stats(NULL).tracked, 2);
	/* Undoomed: reachable through the weak reference again. */
	a = reap_weak_get(w);
	ASSERT_NOT_NULL(a);
	set_a(a, NULL); /* by hand */
	reap_release(a);
	ASSERT_EQ_INT(nclosed, 2);
	reap_weak_destroy(w);
}

/* ------------------------------------------------------------------ */
/* Domains                                                              */

TEST(gc_domain_collects_only_its_own)
{
	reap_scope *s;
	reap_gc_domain *d;
	struct node *a, *b, *x, *y;

	reset();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	a = mk_in(d, &node_type);
	b = mk_in(d, &node_type);
	x = mk(&node_type);
	y = mk(&node_type);
	set_a_in(d, a, b);
	set_a_in(d, b, a);
	set_a(x, y);
	set_a(y, x);
	reap_release(a);
	reap_release(b);
	reap_release(x);
	reap_release(y);
	ASSERT_EQ_SIZE(stats(d).tracked, 2);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 2);
	ASSERT_EQ_INT(reap_gc_collect(d), 2);
	ASSERT_EQ_INT(closes[0] + closes[1], 2);
	ASSERT_EQ_INT(closes[2] + closes[3], 0);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 2);
	assert_each_closed_once(4);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* Closing the owner scope collects the domain a last time. */
TEST(gc_domain_closed_with_its_scope_collects_once)
{
	reap_scope *s;
	reap_gc_domain *d;
	struct node *a, *b;

	reset();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	a = mk_in(d, &node_type);
	b = mk_in(d, &node_type);
	set_a_in(d, a, b);
	set_a_in(d, b, a);
	reap_release(a);
	reap_release(b);
	ASSERT_OK(reap_ledger_stats("gc domain", &(reap_ledger_stat){0}));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	assert_each_closed_once(2);
}

/* Objects may outlive their domain: they stay valid, and the domain's
 * memory goes with the last of them. */
TEST(gc_domain_destroyed_before_its_objects)
{
	reap_scope *s;
	reap_gc_domain *d;
	struct node *a, *b;

	reset();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	a = mk_in(d, &node_type);
	b = mk_in(d, &node_type);
	set_a_in(d, a, b);
	reap_release(b);
	reap_gc_domain_destroy(d);
	ASSERT_EQ_INT(nclosed, 0);
	ASSERT_EQ_INT(reap_obj_refs(a->a), 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0); /* the cleanup was cancelled */
	reap_release(a);
	assert_each_closed_once(2);
}

static void create_in_destroyed(void *arg)
{
	reap_scope *s;
	reap_gc_domain *d;
	struct node *a, *n;

	(void)arg;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_gc_domain_create(s, &d));
	a = mk_in(d, &node_type); /* keeps the domain's memory */
	reap_gc_domain_destroy(d);
	ASSERT_OK(reap_obj_create_in(d, &node_type, &n));
	(void)a;
}

TEST(gc_domain_use_after_destroy_is_misuse)
{
	const char *msg = test_expect_misuse(create_in_destroyed, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "reap_obj_create_in of gc domain");
	ASSERT_CONTAINS(msg, "after it was destroyed");
	ASSERT_CONTAINS(msg, "test_gc.c");
}

/* ------------------------------------------------------------------ */
/* The lock                                                             */

TEST(gc_collect_with_the_lock_held_is_edeadlk)
{
	reap_gc_lock(NULL);
	ASSERT_EQ_INT(reap_gc_collect(NULL), -EDEADLK);
	reap_gc_unlock(NULL);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
}

/* Recursive: creating and releasing tracked objects (deaths included)
 * with the lock held does not deadlock. */
TEST(gc_lock_is_recursive_deaths_under_it)
{
	struct node *a, *b;

	reset();
	reap_gc_lock(NULL);
	reap_gc_lock(NULL);
	a = mk(&node_type);
	b = mk(&node_type);
	a->a = reap_acquire(b);
	reap_release(b);
	reap_release(a); /* both die here, untracking under our lock */
	reap_gc_unlock(NULL);
	reap_gc_unlock(NULL);
	assert_each_closed_once(2);
}

static void unlock_unheld(void *arg)
{
	(void)arg;
	reap_gc_unlock(NULL);
}

TEST(gc_unlock_not_held_is_misuse)
{
	const char *msg = test_expect_misuse(unlock_unheld, NULL);

	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "which this thread does not hold");
}

/* Another thread waits for the lock: a collection cannot run while a
 * thread changes references. */
static atomic_int other_done;
static void *other_collect(void *arg)
{
	(void)arg;
	ASSERT_GE_INT(reap_gc_collect(NULL), 0);
	atomic_store(&other_done, 1);
	return NULL;
}

TEST(gc_collection_waits_for_the_lock)
{
	pthread_t t;
	struct node *a, *b;

	reset();
	a = mk(&node_type);
	b = mk(&node_type);
	reap_gc_lock(NULL);
	ASSERT_EQ_INT(pthread_create(&t, NULL, other_collect, NULL), 0);
	usleep(50000);
	ASSERT_EQ_INT(atomic_load(&other_done), 0);
	/* Halfway through making a cycle while the collector waits. */
	a->a = reap_acquire(b);
	reap_release(b);
	b->a = reap_acquire(a);
	reap_release(a);
	reap_gc_unlock(NULL);
	pthread_join(t, NULL);
	ASSERT_EQ_INT(atomic_load(&other_done), 1);
	ASSERT_EQ_INT(reap_gc_collect(NULL) + nclosed, 2);
	assert_each_closed_once(2);
}

/* ------------------------------------------------------------------ */
/* Reports and resources                                                */

TEST(gc_debug_reports_each_collection)
{
	reset();
	ASSERT_OK(reap_debug_set("gc"));
	make_ring(3);
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 3);
	ASSERT_CONTAINS(test_reports(), "reap: gc: collection 1 of the default "
					"domain: 3 unreachable, 3 collected, 0 "
					"uncollectable; 0 tracked;");
	ASSERT_OK(reap_debug_set(""));
	test_reports_clear();
	ASSERT_EQ_INT(reap_gc_collect(NULL), 0);
	ASSERT_EQ_STR(test_reports(), "");
}

/* A collection allocates nothing: with every allocation failing it
 * still collects. */
TEST(gc_collect_allocates_nothing)
{
	reset();
	make_ring(10);
	reap_fault_alloc(1);
	ASSERT_EQ_INT(reap_gc_collect(NULL), 10);
	ASSERT_EQ_INT(reap_fault_count(), 0);
	reap_fault_alloc(0);
	assert_each_closed_once(10);
}

TEST(gc_stats_and_tracking)
{
	struct node *a, *leaf;
	reap_gc_stat st;

	reset();
	st = stats(NULL);
	ASSERT_EQ_SIZE(st.tracked, 0);
	a = mk(&node_type);
	leaf = mk(&leaf_type);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 1); /* leaf has no traverse */
	reap_release(leaf);
	reap_release(a);
	ASSERT_EQ_SIZE(stats(NULL).tracked, 0);
	ASSERT_EQ_SIZE(stats(NULL).collections, st.collections);
}
