/*
 * bench/gc.c: the cycle detector against CPython's (issue 3, row d).
 *
 *   3d1  reap_gc_collect() over n objects in n/2 two-object garbage
 *        cycles: finds them, clears, and frees them (finalizing close
 *        included), vs gc.collect() over n instances of a __slots__
 *        class in the same cycles.
 *   3d2  reap_gc_collect() over n live tracked objects, in two-object
 *        cycles of which one member is held from outside: examines them
 *        and frees nothing, vs gc.collect() over the same shape.
 *
 * Only the collect call is timed, per object. The objects are made
 * before it (untimed) in every round, so each round examines n fresh
 * objects. CPython runs bench/py/gc.py with /usr/bin/python3, after this
 * program's rounds (its own warm-up and the same number of rounds), with
 * the interpreter's own objects frozen (gc.freeze) so that it examines
 * the benchmark's objects only, as reap does. Both sides report the
 * median of their rounds.
 */
#include "bench.h"

#include <reap/obj.h>

struct node {
	void *other;
	size_t word;
};

static size_t closed_sum;

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	return n->other != NULL ? visit(n->other, ctx) : 0;
}

static void node_clear(void *obj)
{
	struct node *n = obj;
	void *o = n->other;

	n->other = NULL;
	if (o != NULL)
		reap_release(o);
}

static void node_close(void *obj)
{
	closed_sum += ((struct node *)obj)->word;
	node_clear(obj);
}

static reap_obj_type node_type = {.name = "bench-node", .size = sizeof(struct node),
	.close = node_close, .traverse = node_traverse, .clear = node_clear};

static void die(const char *what)
{
	fprintf(stderr, "bench_gc: %s\n", what);
	exit(1);
}

/* n/2 pairs a <-> b; if keep is not NULL, keep[i] holds pair i's a. */
static void make_pairs(size_t n, struct node **keep)
{
	for (size_t i = 0; i < n / 2; i++) {
		struct node *a, *b;

		if (reap_obj_create(&node_type, &a) < 0 ||
		    reap_obj_create(&node_type, &b) < 0)
			die("reap_obj_create failed");
		a->word = b->word = 1;
		/* Single-threaded here, but the rule costs little. */
		reap_gc_lock(NULL);
		a->other = b;                 /* our reference to b */
		b->other = reap_acquire(a);
		reap_gc_unlock(NULL);
		if (keep != NULL)
			keep[i] = a;
		else
			reap_release(a);
	}
}

static double collect_timed(size_t expect)
{
	double t0 = bench_now();
	int got = reap_gc_collect(NULL);
	double t = bench_now() - t0;

	if (got < 0 || (size_t)got != expect) {
		fprintf(stderr, "bench_gc: collected %d, expected %zu\n", got, expect);
		exit(1);
	}
	return t;
}

static double reap_garbage(size_t n)
{
	double t;

	n &= ~(size_t)1;
	make_pairs(n, NULL);
	closed_sum = 0;
	t = collect_timed(n);
	if (closed_sum != n)
		die("not every object was closed");
	return t / (double)n;
}

static struct node **keep;

static double reap_live(size_t n)
{
	double t;

	n &= ~(size_t)1;
	make_pairs(n, keep);
	t = collect_timed(0);
	/* Untimed: let them go. */
	for (size_t i = 0; i < n / 2; i++)
		reap_release(keep[i]);
	if (reap_gc_collect(NULL) != (int)n)
		die("the live pairs were not collected afterwards");
	return t / (double)n;
}

/* Median, min and max of reps rounds after a warm-up. */
static void rounds(const char *title, double (*fn)(size_t), size_t n, int reps,
		   bench_contender *c)
{
	double t[BENCH_MAX_REPS];

	fn(n);
	for (int r = 0; r < reps; r++)
		t[r] = fn(n);
	c->ns = bench_median(t, reps);
	c->min_ns = t[0];
	c->max_ns = t[reps - 1];
	fprintf(stderr, "  %-28s median %8.1f ns/object  (min %.1f, max %.1f)\n",
		title, c->ns, c->min_ns, c->max_ns);
}

static void python(size_t n, int reps, bench_contender *garbage,
		   bench_contender *live)
{
	char cmd[1024], id[16];
	double med, lo, hi;
	FILE *p;
	int got = 0;

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/gc.py %zu %d",
		 BENCH_SOURCE_DIR, n, reps);
	if ((p = popen(cmd, "r")) == NULL)
		die("cannot run python3");
	while (fscanf(p, "%15s %lf %lf %lf", id, &med, &lo, &hi) == 4) {
		bench_contender *c = strcmp(id, "3d1") == 0 ? garbage
				     : strcmp(id, "3d2") == 0 ? live : NULL;

		if (c == NULL)
			continue;
		c->ns = med;
		c->min_ns = lo;
		c->max_ns = hi;
		fprintf(stderr, "  %-28s median %8.1f ns/object  (min %.1f, max %.1f)\n",
			c == garbage ? "CPython, garbage cycles" : "CPython, live objects",
			med, lo, hi);
		got++;
	}
	if (pclose(p) != 0 || got != 2)
		die("bench/py/gc.py failed");
}

int main(void)
{
	size_t n = bench_n();
	int reps = bench_reps();
	bench_contender rg = {.name = "reap"}, rl = {.name = "reap"};
	bench_contender pg = {.name = "CPython gc"}, pl = {.name = "CPython gc"};

	if ((keep = malloc((n / 2 + 1) * sizeof *keep)) == NULL)
		die("out of memory");
	fprintf(stderr, "(d) cycle detector: %zu objects, 1 warm-up + %d rounds\n",
		n, reps);
	rounds("reap, garbage cycles", reap_garbage, n, reps, &rg);
	rounds("reap, live objects", reap_live, n, reps, &rl);
	python(n, reps, &pg, &pl);

	bench_note("Rows 3d1, 3d2: one collection of the default domain "
		   "(reap_gc_collect) vs CPython 3's gc.collect(), timed alone, per "
		   "object, over n objects made untimed before it in every round: "
		   "3d1 two-object garbage cycles (found, cleared, closed and freed), "
		   "3d2 live two-object cycles held from outside (examined, kept). "
		   "CPython's objects are instances of a __slots__ class; its startup "
		   "objects are frozen so that it examines the same objects as reap.");
	bench_row("3d1", "collect n objects in 2-object garbage cycles", &rg, &pg,
		  ">=3");
	bench_row("3d2", "collect over n live tracked objects (2-object cycles "
		  "held from outside)", &rl, &pl, ">=3");
	free(keep);
	return 0;
}
