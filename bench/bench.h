/*
 * bench/bench.h: the small harness every benchmark program shares.
 *
 * A program measures groups of contenders that do the same work: each
 * contender is a function doing the whole job once for n objects. A
 * group runs one warm-up round that is not counted, then `reps` rounds in
 * which the contenders take turns (a, b, c, a, b, c, ...), so that noise
 * on the machine falls on all of them alike. Each contender's result is
 * the median of its rounds, in nanoseconds per object.
 *
 * A program then prints rows, one per comparison, on stdout:
 *
 *   ROW <id> <what> <reap_ns> <peer> <peer_ns> <ratio> <target> <met>
 *
 * tab-separated, where ratio = peer_ns / reap_ns (above 1: reap is
 * faster), target is ">=3" or "<=1.5" (a bound on the ratio) and met is
 * "met" or "missed". A program may also print NOTE lines (NOTE <text>),
 * which say in a sentence what its rows measure; they go into the docs.
 * bench/run.sh collects the ROW and NOTE lines of every program listed in
 * bench/CMakeLists.txt; every other line of stdout, and all of stderr,
 * is for people.
 *
 * The environment sets the size of the work: BENCH_N objects per round
 * (default 1000000) and BENCH_REPS counted rounds (default 11, at least 5).
 */
#ifndef REAP_BENCH_H
#define REAP_BENCH_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_MAX_REPS 101

typedef struct bench_contender {
	const char *name;     /* as it appears in the table: "reap", "talloc" */
	void (*run)(size_t n); /* does the whole job once; aborts if it fails */
	double ns;            /* filled by bench_group: median ns per object */
	double min_ns, max_ns; /* and the spread of the counted rounds */
} bench_contender;

static inline unsigned long bench_env(const char *name, unsigned long dflt,
				      unsigned long lo, unsigned long hi)
{
	const char *v = getenv(name);
	char *end;
	unsigned long x;

	if (v == NULL || *v == '\0')
		return dflt;
	x = strtoul(v, &end, 10);
	if (*end != '\0' || x < lo || x > hi) {
		fprintf(stderr, "bench: %s=%s is not a number in [%lu, %lu]\n",
			name, v, lo, hi);
		exit(2);
	}
	return x;
}

static inline size_t bench_n(void)
{
	return bench_env("BENCH_N", 1000000, 1, 100000000);
}

static inline int bench_reps(void)
{
	return (int)bench_env("BENCH_REPS", 11, 5, BENCH_MAX_REPS);
}

static inline double bench_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

static inline int bench_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static inline double bench_median(double *v, int k)
{
	qsort(v, (size_t)k, sizeof *v, bench_cmp);
	return k % 2 ? v[k / 2] : (v[k / 2 - 1] + v[k / 2]) / 2;
}

/*
 * Run a group: one warm-up round, then reps interleaved rounds. Fills
 * each contender's ns, min_ns and max_ns, and prints them to stderr.
 */
static inline void bench_group(const char *title, bench_contender *c,
			       size_t nc, size_t n, int reps)
{
	static double t[16][BENCH_MAX_REPS];

	if (nc > 16) {
		fprintf(stderr, "bench: at most 16 contenders per group\n");
		exit(2);
	}
	fprintf(stderr, "%s: %zu objects, 1 warm-up + %d rounds of", title, n,
		reps);
	for (size_t j = 0; j < nc; j++)
		fprintf(stderr, "%s %s", j ? "," : "", c[j].name);
	fprintf(stderr, "\n");
	for (int r = -1; r < reps; r++) {
		for (size_t j = 0; j < nc; j++) {
			double t0 = bench_now();

			c[j].run(n);
			if (r >= 0)
				t[j][r] = (bench_now() - t0) / (double)n;
		}
	}
	for (size_t j = 0; j < nc; j++) {
		c[j].ns = bench_median(t[j], reps);
		c[j].min_ns = t[j][0];
		c[j].max_ns = t[j][reps - 1];
		fprintf(stderr, "  %-20s median %8.1f ns/op  (min %.1f, max %.1f)\n",
			c[j].name, c[j].ns, c[j].min_ns, c[j].max_ns);
	}
}

/*
 * Print one ROW: base is the reap side, peer the other; the ratio is
 * peer / base. target is ">=X" or "<=X", a bound on the ratio.
 */
static inline void bench_row(const char *id, const char *what,
			     const bench_contender *base,
			     const bench_contender *peer, const char *target)
{
	double ratio = peer->ns / base->ns, bound = atof(target + 2);
	int met;

	if (strncmp(target, ">=", 2) == 0) {
		met = ratio >= bound;
	} else if (strncmp(target, "<=", 2) == 0) {
		met = ratio <= bound;
	} else {
		fprintf(stderr, "bench: bad target \"%s\" for row %s\n", target, id);
		exit(2);
	}
	printf("ROW\t%s\t%s\t%.1f\t%s\t%.1f\t%.2f\t%s\t%s\n", id, what, base->ns,
	       peer->name, peer->ns, ratio, target, met ? "met" : "missed");
	fflush(stdout);
}

/* Print a NOTE: one sentence for the docs on what some rows measure. */
static inline void bench_note(const char *text)
{
	printf("NOTE\t%s\n", text);
	fflush(stdout);
}

#endif /* REAP_BENCH_H */
