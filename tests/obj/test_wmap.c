/*
 * The weak-value map: entries vanish with their values, get returns a
 * strong reference or nothing, iteration survives values dying, and the
 * allocation-failure sweep over every call that allocates.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "../runner.h"

struct sess {
	int id;
	int *closed; /* incremented by close */
	int alive;   /* 1 until close */
};

static void sess_close(void *obj)
{
	struct sess *s = obj;

	s->alive = 0;
	if (s->closed != NULL)
		(*s->closed)++;
}

static reap_obj_type sess_type = {
	.name = "sess", .size = sizeof(struct sess), .close = sess_close};

static struct sess *sess_new(int id, int *closed)
{
	struct sess *s;

	ASSERT_OK(reap_obj_create(&sess_type, &s));
	s->id = id;
	s->closed = closed;
	s->alive = 1;
	return s;
}

static reap_wmap *map_new(reap_scope *s)
{
	reap_wmap *m;

	ASSERT_OK(reap_wmap_create(s, &m));
	return m;
}

TEST(wmap_put_get_int_and_str_keys)
{
	reap_wmap *m = map_new(NULL);
	struct sess *a = sess_new(1, NULL), *b = sess_new(2, NULL), *g;

	ASSERT_OK(reap_wmap_put_int(m, 7, a));
	ASSERT_OK(reap_wmap_put_str(m, "7", b)); /* a different key */
	ASSERT_EQ_SIZE(reap_wmap_count(m), 2);
	ASSERT_EQ_INT(reap_obj_refs(a), 1);      /* the map holds no reference */
	g = reap_wmap_get_int(m, 7);
	ASSERT_EQ_PTR(g, a);
	ASSERT_EQ_INT(reap_obj_refs(a), 2);      /* get returns one */
	reap_release(g);
	g = reap_wmap_get_str(m, "7");
	ASSERT_EQ_PTR(g, b);
	reap_release(g);
	ASSERT_NULL(reap_wmap_get_int(m, 8));
	ASSERT_NULL(reap_wmap_get_str(m, "8"));
	ASSERT_NULL(reap_wmap_get_str(m, "")); /* the empty key is a key too */
	ASSERT_OK(reap_wmap_put_str(m, "", a));
	g = reap_wmap_get_str(m, "");
	ASSERT_EQ_PTR(g, a);
	reap_release(g);
	reap_wmap_destroy(m);
	/* The values are untouched by the map's end. */
	ASSERT_EQ_INT(reap_obj_refs(a), 1);
	ASSERT_TRUE(a->alive && b->alive);
	reap_release(a);
	reap_release(b);
}

TEST(wmap_entry_disappears_when_value_dies)
{
	reap_wmap *m = map_new(NULL);
	int closed = 0;
	struct sess *a = sess_new(1, &closed), *b = sess_new(2, &closed);

	ASSERT_OK(reap_wmap_put_str(m, "alice", a));
	ASSERT_OK(reap_wmap_put_str(m, "bob", b));
	ASSERT_EQ_SIZE(reap_wmap_count(m), 2);
	reap_release(a);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 1);
	ASSERT_NULL(reap_wmap_get_str(m, "alice"));
	ASSERT_EQ_INT(reap_wmap_remove_str(m, "alice"), -ENOENT);
	/* A get's reference keeps the value (and the entry) alive. */
	struct sess *g = reap_wmap_get_str(m, "bob");
	ASSERT_EQ_PTR(g, b);
	reap_release(b);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 1);
	reap_release(g);
	ASSERT_EQ_INT(closed, 2);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	reap_wmap_destroy(m);
}

TEST(wmap_put_replaces_and_remove)
{
	reap_wmap *m = map_new(NULL);
	struct sess *a = sess_new(1, NULL), *b = sess_new(2, NULL), *g;
	int closed = 0;

	ASSERT_OK(reap_wmap_put_int(m, 1, a));
	ASSERT_OK(reap_wmap_put_int(m, 1, b));
	ASSERT_EQ_SIZE(reap_wmap_count(m), 1);
	g = reap_wmap_get_int(m, 1);
	ASSERT_EQ_PTR(g, b);
	reap_release(g);
	/* The replaced entry's weak reference is gone: a's death does
	 * not touch the map. */
	a->closed = &closed;
	reap_release(a);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 1);
	ASSERT_OK(reap_wmap_remove_int(m, 1));
	ASSERT_EQ_INT(reap_wmap_remove_int(m, 1), -ENOENT);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	ASSERT_TRUE(b->alive);
	reap_release(b);
	reap_wmap_destroy(m);
}

TEST(wmap_same_value_under_two_keys)
{
	reap_wmap *m = map_new(NULL);
	struct sess *a = sess_new(1, NULL);

	ASSERT_OK(reap_wmap_put_int(m, 1, a));
	ASSERT_OK(reap_wmap_put_str(m, "one", a));
	ASSERT_EQ_SIZE(reap_wmap_count(m), 2);
	reap_release(a);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	reap_wmap_destroy(m);
}

TEST(wmap_many_keys_grow_the_tables)
{
	reap_wmap *m = map_new(NULL);
	enum { N = 3000 };
	static struct sess *v[N];
	char key[32];

	for (int i = 0; i < N; i++) {
		v[i] = sess_new(i, NULL);
		snprintf(key, sizeof key, "k%d", i);
		ASSERT_OK(reap_wmap_put_str(m, key, v[i]));
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i << 40, v[i]));
	}
	ASSERT_EQ_SIZE(reap_wmap_count(m), 2 * N);
	for (int i = 0; i < N; i++) {
		struct sess *g;

		snprintf(key, sizeof key, "k%d", i);
		g = reap_wmap_get_str(m, key);
		ASSERT_EQ_PTR(g, v[i]);
		reap_release(g);
		g = reap_wmap_get_int(m, (uint64_t)i << 40);
		ASSERT_EQ_PTR(g, v[i]);
		reap_release(g);
	}
	for (int i = 0; i < N; i += 2)
		reap_release(v[i]);
	ASSERT_EQ_SIZE(reap_wmap_count(m), N);
	reap_wmap_destroy(m);
	for (int i = 1; i < N; i += 2)
		reap_release(v[i]);
}

/* Closing the owning scope destroys the map; live values stay. */
TEST(wmap_owned_by_scope)
{
	reap_scope *s;
	reap_wmap *m;
	struct sess *a = sess_new(1, NULL);
	reap_ledger_stat st;

	ASSERT_OK(reap_scope_open(NULL, &s));
	m = map_new(s);
	ASSERT_OK(reap_wmap_put_int(m, 1, a));
	ASSERT_OK(reap_ledger_stats("wmap", &st));
	ASSERT_EQ_INT(st.live, 1);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_OK(reap_ledger_stats("wmap", &st));
	ASSERT_EQ_INT(st.live, 0);
	ASSERT_TRUE(a->alive);
	reap_release(a);
}

/* The map under the current scope, named in the ledger's tree. */
TEST(wmap_in_the_owner_tree)
{
	reap_scope *s, *prev;
	reap_wmap *m;
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "registry"));
	prev = reap_scope_set_current(s);
	m = map_new(NULL);
	reap_scope_set_current(prev);
	f = open_memstream(&text, &len);
	ASSERT_NOT_NULL(f);
	reap_ledger_report(f, REAP_REPORT_TREE);
	fclose(f);
	ASSERT_CONTAINS(text, "registry");
	ASSERT_CONTAINS(text, "wmap");
	ASSERT_CONTAINS(text, "test_wmap.c");
	free(text);
	(void)m;
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* ------------------------------------------------------------------ */
/* Iteration                                                            */

struct walk {
	reap_wmap *m;
	int calls, bad;
	int sum;
	struct sess **drop; /* released on the first call */
	int ndrop;
	int stop_at;
};

static int walk_fn(const char *skey, uint64_t ikey, void *value, void *ctx)
{
	struct walk *w = ctx;
	struct sess *s = value;

	w->calls++;
	if (!s->alive || reap_obj_refs(s) < 1)
		w->bad++;
	if (skey == NULL && (uint64_t)s->id != ikey)
		w->bad++;
	w->sum += s->id;
	if (w->drop != NULL) {
		for (int i = 0; i < w->ndrop; i++)
			reap_release(w->drop[i]);
		w->drop = NULL;
	}
	return w->stop_at != 0 && w->calls == w->stop_at ? 42 : 0;
}

TEST(wmap_foreach_sees_live_values)
{
	reap_wmap *m = map_new(NULL);
	struct sess *v[10];
	struct walk w = {0};

	for (int i = 0; i < 10; i++) {
		v[i] = sess_new(i + 1, NULL);
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i + 1, v[i]));
	}
	reap_release(v[3]); /* dead: not walked */
	ASSERT_EQ_INT(reap_wmap_foreach(m, walk_fn, &w), 0);
	ASSERT_EQ_INT(w.calls, 9);
	ASSERT_EQ_INT(w.bad, 0);
	ASSERT_EQ_INT(w.sum, 55 - 4);
	/* fn's nonzero result stops the walk and comes back. */
	memset(&w, 0, sizeof w);
	w.stop_at = 3;
	ASSERT_EQ_INT(reap_wmap_foreach(m, walk_fn, &w), 42);
	ASSERT_EQ_INT(w.calls, 3);
	for (int i = 0; i < 10; i++)
		if (i != 3)
			reap_release(v[i]);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	reap_wmap_destroy(m);
}

/* Values die while the walk runs: the first call drops every
 * reference the test holds. Values of shards already taken stay alive
 * (the walk holds them) and are passed alive; the others die, vanish
 * from the map and are never passed. */
static void foreach_while_values_die(int n)
{
	reap_wmap *m = map_new(NULL);
	struct sess **v = calloc((size_t)n, sizeof *v);
	struct walk w = {0};
	int closed = 0;

	ASSERT_NOT_NULL(v);
	for (int i = 0; i < n; i++) {
		v[i] = sess_new(i, &closed);
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i, v[i]));
	}
	w.drop = v;
	w.ndrop = n;
	ASSERT_EQ_INT(reap_wmap_foreach(m, walk_fn, &w), 0);
	ASSERT_EQ_INT(w.bad, 0);
	ASSERT_GE_INT(w.calls, 1);
	ASSERT_LT_INT(w.calls, n); /* later shards died first */
	ASSERT_EQ_INT(closed, n);  /* and all are gone after the walk */
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	reap_wmap_destroy(m);
	free(v);
}

TEST(wmap_foreach_while_values_die)
{
	foreach_while_values_die(100);
}

/* Shards with more than 64 entries: the snapshot moves to the heap. */
TEST(wmap_foreach_while_values_die_big_shards)
{
	foreach_while_values_die(5000);
}

/* fn removes entries and puts new ones during the walk. */
static int mutate_fn(const char *skey, uint64_t ikey, void *value, void *ctx)
{
	struct walk *w = ctx;

	(void)skey;
	(void)value;
	w->calls++;
	(void)reap_wmap_remove_int(w->m, ikey);
	if (reap_wmap_put_int(w->m, ikey + 1000, value) != 0)
		w->bad++;
	return 0;
}

TEST(wmap_foreach_fn_mutates_the_map)
{
	reap_wmap *m = map_new(NULL);
	struct sess *v[50];
	struct walk w = {.m = m};

	for (int i = 0; i < 50; i++) {
		v[i] = sess_new(i, NULL);
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i, v[i]));
	}
	ASSERT_EQ_INT(reap_wmap_foreach(m, mutate_fn, &w), 0);
	ASSERT_EQ_INT(w.bad, 0);
	ASSERT_GE_INT(w.calls, 50);
	for (int i = 0; i < 50; i++) {
		void *g = reap_wmap_get_int(m, (uint64_t)i);

		ASSERT_NULL(g);
	}
	for (int i = 0; i < 50; i++)
		reap_release(v[i]);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	reap_wmap_destroy(m);
}

/* ------------------------------------------------------------------ */
/* Threads                                                              */

static void *release_on_thread(void *arg)
{
	reap_release(arg);
	return NULL;
}

TEST(wmap_value_dies_on_another_thread)
{
	reap_wmap *m = map_new(NULL);
	int closed = 0;
	struct sess *a = sess_new(1, &closed);
	pthread_t t;

	ASSERT_OK(reap_wmap_put_str(m, "a", a));
	ASSERT_EQ_INT(pthread_create(&t, NULL, release_on_thread, a), 0);
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	ASSERT_EQ_INT(closed, 1);
	ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
	ASSERT_NULL(reap_wmap_get_str(m, "a"));
	reap_wmap_destroy(m);
}

/* A death callback of the map is in flight on another thread when the
 * map is destroyed: destroy waits for it (the sess close blocks until
 * destroy has begun). */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static int gate_state;

struct slow {
	int dummy;
};

static void *die_slowly(void *arg)
{
	reap_release(arg);
	return NULL;
}

static void slow_cb_close(void *obj)
{
	(void)obj;
	pthread_mutex_lock(&gate_lock);
	gate_state = 1;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
}

static reap_obj_type slow_type = {
	.name = "slow", .size = sizeof(struct slow), .close = slow_cb_close};

TEST(wmap_destroy_while_values_die)
{
	for (int round = 0; round < 200; round++) {
		reap_wmap *m = map_new(NULL);
		struct slow *v[8];
		pthread_t t[8];

		gate_state = 0;
		for (int i = 0; i < 8; i++) {
			ASSERT_OK(reap_obj_create(&slow_type, &v[i]));
			ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i, v[i]));
		}
		for (int i = 0; i < 8; i++)
			ASSERT_EQ_INT(pthread_create(&t[i], NULL, die_slowly, v[i]), 0);
		reap_wmap_destroy(m); /* races the deaths */
		for (int i = 0; i < 8; i++)
			ASSERT_EQ_INT(pthread_join(t[i], NULL), 0);
		ASSERT_EQ_INT(gate_state, 1);
	}
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                  */

#define MAX_N 64

#define SENTINEL_MAP ((reap_wmap *)(uintptr_t)0x3a9)

static void nop(void *arg) { (void)arg; }

/* Every failing allocation of create, with the owner at every fill
 * level up to 40, so that at some its cleanup stack must grow too. */
TEST(wmap_oom_create)
{
	int failures = 0;

	for (int fill = 0; fill <= 40; fill++) {
		for (int n = 1;; n++) {
			reap_scope *s;
			reap_wmap *m = SENTINEL_MAP;
			struct test_snap before;
			long seen;
			int rc;

			ASSERT_LT_INT(n, MAX_N);
			ASSERT_OK(reap_scope_open(NULL, &s));
			for (int i = 0; i < fill; i++)
				ASSERT_OK(reap_defer(s, nop, NULL, NULL));
			before = test_snap();
			reap_fault_alloc(n);
			rc = reap_wmap_create(s, &m);
			seen = test_fault_disarm();
			if (rc == 0) {
				struct sess *a = sess_new(1, NULL), *g;

				ASSERT_NE_PTR(m, SENTINEL_MAP);
				ASSERT_OK(reap_wmap_put_int(m, 1, a));
				g = reap_wmap_get_int(m, 1);
				ASSERT_EQ_PTR(g, a);
				reap_release(g);
				reap_release(a);
				ASSERT_EQ_INT(reap_scope_close(s), 0);
				break;
			}
			failures++;
			ASSERT_GE_INT(seen, n);
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_EQ_PTR(m, SENTINEL_MAP);
			ASSERT_UNCHANGED(before);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
		}
	}
	ASSERT_GE_INT(failures, 41 * 2);
}

/* put: a failed put leaves the map as it was, the old entry of a
 * replaced key included. */
static void sweep_put(int str, int replace)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_wmap *m = map_new(NULL);
		struct sess *old = sess_new(1, NULL), *a = sess_new(2, NULL), *g;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		if (replace)
			ASSERT_OK(str ? reap_wmap_put_str(m, "k", old)
				      : reap_wmap_put_int(m, 5, old));
		before = test_snap();
		reap_fault_alloc(n);
		rc = str ? reap_wmap_put_str(m, "k", a) : reap_wmap_put_int(m, 5, a);
		seen = test_fault_disarm();
		g = str ? reap_wmap_get_str(m, "k") : reap_wmap_get_int(m, 5);
		if (rc == 0) {
			ASSERT_EQ_PTR(g, a);
			reap_release(g);
			ASSERT_EQ_SIZE(reap_wmap_count(m), 1);
			reap_release(a);
			ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
			reap_release(old);
			reap_wmap_destroy(m);
			break;
		}
		failures++;
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(g, replace ? old : NULL);
		if (g != NULL)
			reap_release(g);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_SIZE(reap_wmap_count(m), (size_t)replace);
		reap_release(a);
		reap_release(old);
		ASSERT_EQ_SIZE(reap_wmap_count(m), 0);
		reap_wmap_destroy(m);
	}
	ASSERT_GE_INT(failures, 2); /* the entry, the weak reference */
}

TEST(wmap_oom_put_int) { sweep_put(0, 0); }
TEST(wmap_oom_put_str) { sweep_put(1, 0); }
TEST(wmap_oom_put_replacing) { sweep_put(1, 1); sweep_put(0, 1); }

/* A table that cannot grow is no failure: the chains get longer. */
TEST(wmap_oom_growth_is_benign)
{
	reap_wmap *m = map_new(NULL);
	enum { N = 400 };
	struct sess *v[N];
	int failed = 0;

	for (int i = 0; i < N; i++) {
		long n;

		v[i] = sess_new(i, NULL);
		/* Fail the 3rd allocation of the put: the entry and the
		 * weak reference come first, then any growth. */
		reap_fault_alloc(3);
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i, v[i]));
		n = test_fault_disarm();
		failed += n >= 3;
	}
	ASSERT_GE_INT(failed, 1);
	for (int i = 0; i < N; i++) {
		struct sess *g = reap_wmap_get_int(m, (uint64_t)i);

		ASSERT_EQ_PTR(g, v[i]);
		reap_release(g);
	}
	for (int i = 0; i < N; i++)
		reap_release(v[i]);
	reap_wmap_destroy(m);
}

/* foreach over a shard bigger than its stack snapshot needs memory. */
static int count_fn(const char *skey, uint64_t ikey, void *value, void *ctx)
{
	(void)skey;
	(void)ikey;
	(void)value;
	(*(int *)ctx)++;
	return 0;
}

TEST(wmap_oom_foreach)
{
	reap_wmap *m = map_new(NULL);
	enum { N = 2000 };
	static struct sess *v[N];
	int calls = 0, failures = 0;

	for (int i = 0; i < N; i++) {
		v[i] = sess_new(i, NULL);
		ASSERT_OK(reap_wmap_put_int(m, (uint64_t)i, v[i]));
	}
	for (int n = 1;; n++) {
		struct test_snap before = test_snap();
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		calls = 0;
		reap_fault_alloc(n);
		rc = reap_wmap_foreach(m, count_fn, &calls);
		test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(calls, N);
			break;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_UNCHANGED(before);
	}
	ASSERT_GE_INT(failures, 1);
	for (int i = 0; i < N; i++)
		reap_release(v[i]);
	reap_wmap_destroy(m);
}
