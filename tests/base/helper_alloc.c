/*
 * helper_alloc MODE: checks of the allocator hook that need a process in
 * which reap has not allocated anything yet. Prints "helper_alloc: ok" and
 * exits 0 when every check holds; otherwise prints what failed, exit 1.
 *
 *   hook      -EINVAL for a partial allocator, -EBUSY while blocks are
 *             live, every allocation of reap goes through the hook, NULL
 *             restores malloc
 *   bigblock  a big scope block is reused by the next scope or given back
 *   envfault  run with REAP_FAULT_ALLOC=2: the second allocation fails
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reap.h"

#define CHECK(c)                                                            \
	do {                                                                \
		if (!(c)) {                                                 \
			printf("helper_alloc: FAIL at line %d: %s\n", __LINE__, #c); \
			fflush(stdout);                                     \
			exit(1);                                            \
		}                                                           \
	} while (0)

/* A counting allocator: each block carries its size in a header. */
struct counts {
	size_t mallocs, reallocs, frees;
	size_t live, live_bytes;
};

struct hdr {
	size_t size;
	max_align_t pad[];
};

static void *c_malloc(void *ctx, size_t n)
{
	struct counts *c = ctx;
	struct hdr *h = malloc(sizeof *h + n);

	if (h == NULL)
		return NULL;
	h->size = n;
	c->mallocs++;
	c->live++;
	c->live_bytes += n;
	return h + 1;
}

static void *c_realloc(void *ctx, void *p, size_t n)
{
	struct counts *c = ctx;
	struct hdr *h = (struct hdr *)p - 1, *nh;
	size_t old = h->size;

	if ((nh = realloc(h, sizeof *nh + n)) == NULL)
		return NULL;
	nh->size = n;
	c->reallocs++;
	c->live_bytes += n;
	c->live_bytes -= old;
	return nh + 1;
}

static void c_free(void *ctx, void *p)
{
	struct counts *c = ctx;
	struct hdr *h = (struct hdr *)p - 1;

	c->frees++;
	c->live--;
	c->live_bytes -= h->size;
	free(h);
}

static int runs;
static void bump(void *arg) { (void)arg; runs++; }

static void mode_hook(void)
{
	static struct counts A;
	const reap_allocator a = {c_malloc, c_realloc, c_free, &A};
	const reap_allocator no_free = {c_malloc, c_realloc, NULL, &A};
	const reap_allocator no_malloc = {NULL, c_realloc, c_free, &A};
	const reap_allocator no_realloc = {c_malloc, NULL, c_free, &A};
	reap_scope *s;
	char *p, *q;
	size_t m0;

	CHECK(reap_alloc_live() == 0);

	/* A partial allocator is refused and changes nothing. */
	CHECK(reap_set_allocator(&no_free) == -EINVAL);
	CHECK(reap_set_allocator(&no_malloc) == -EINVAL);
	CHECK(reap_set_allocator(&no_realloc) == -EINVAL);
	reap_free(reap_malloc(8));
	CHECK(A.mallocs == 0);

	/* Install it: reap_malloc, realloc, calloc and free go through it. */
	CHECK(reap_set_allocator(&a) == 0);
	CHECK((p = reap_malloc(24)) != NULL);
	CHECK(A.mallocs == 1 && A.live == 1 && A.live_bytes == 24);
	CHECK(reap_alloc_live() == 1);

	/* -EBUSY while one of its blocks is live; the hook stays. */
	CHECK(reap_set_allocator(NULL) == -EBUSY);
	CHECK(reap_set_allocator(&no_free) == -EINVAL); /* arguments first */
	CHECK((p = reap_realloc(p, 100)) != NULL);
	CHECK(A.reallocs == 1 && A.live_bytes == 100);
	CHECK((q = reap_calloc(4, 8)) != NULL);
	CHECK(A.mallocs == 2);
	for (int i = 0; i < 32; i++)
		CHECK(q[i] == 0);
	reap_free(q);
	reap_free(p);
	CHECK(A.frees == 2 && A.live == 0);
	CHECK(reap_alloc_live() == 0);

	/* NULL restores malloc. */
	CHECK(reap_set_allocator(NULL) == 0);
	CHECK((p = reap_malloc(24)) != NULL);
	CHECK(A.mallocs == 2);
	reap_free(p);
	CHECK(A.frees == 2);

	/* Scopes, cleanups, names and scope memory allocate through it. */
	CHECK(reap_set_allocator(&a) == 0);
	m0 = A.mallocs;
	CHECK(reap_scope_open(NULL, &s) == 0);
	CHECK(A.mallocs > m0);
	CHECK(reap_defer(s, bump, NULL, NULL) == 0);
	CHECK(reap_scope_name(s, "via-hook-%d", 1) == 0);
	CHECK(reap_scope_alloc(s, 5000) != NULL);
	CHECK(reap_scope_strdup(s, "x") != NULL);
	/* Every block reap counts as live is one the hook handed out. */
	CHECK(A.live >= reap_alloc_live());
	CHECK(A.mallocs >= m0 + 4);
	CHECK(reap_scope_close(s) == 0);
	CHECK(runs == 1);
	CHECK(A.live >= reap_alloc_live());
	/* The root keeps its chunk, from this allocator: still busy. */
	CHECK(reap_alloc_live() > 0);
	CHECK(reap_set_allocator(NULL) == -EBUSY);
}

static void mode_bigblock(void)
{
	static struct counts A;
	const reap_allocator a = {c_malloc, c_realloc, c_free, &A};
	const size_t big = (size_t)1 << 20;
	reap_scope *s;
	size_t kept, before;

	CHECK(reap_set_allocator(&a) == 0);
	CHECK(reap_scope_open(NULL, &s) == 0);
	CHECK(reap_scope_alloc(s, big) != NULL);
	CHECK(A.live_bytes >= big);
	CHECK(reap_scope_close(s) == 0);
	kept = A.live_bytes;
	if (kept < big) {
		printf("helper_alloc: ok (given back)\n");
		return;
	}
	/* Kept in the cache: the next scope of the same shape must take it
	 * back instead of asking the allocator for another megabyte. */
	before = A.live_bytes;
	CHECK(reap_scope_open(NULL, &s) == 0);
	CHECK(reap_scope_alloc(s, big) != NULL);
	if (A.live_bytes >= before + big) {
		printf("helper_alloc: FAIL: a %zu-byte scope block was kept after its "
		       "scope closed (%zu bytes still held by reap with nothing "
		       "open) and the next scope allocating %zu bytes did not reuse "
		       "it: %zu bytes held now\n", big, kept, big, A.live_bytes);
		exit(1);
	}
	CHECK(reap_scope_close(s) == 0);
}

static void mode_envfault(void)
{
	void *p1, *p2, *p3;

	CHECK((p1 = reap_malloc(8)) != NULL);
	CHECK((p2 = reap_malloc(8)) == NULL);
	CHECK((p3 = reap_malloc(8)) != NULL);
	CHECK(reap_fault_count() == 3);
	reap_free(p1);
	reap_free(p3);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (strcmp(mode, "hook") == 0)
		mode_hook();
	else if (strcmp(mode, "bigblock") == 0)
		mode_bigblock();
	else if (strcmp(mode, "envfault") == 0)
		mode_envfault();
	else {
		printf("helper_alloc: unknown mode \"%s\"\n", mode);
		return 2;
	}
	printf("helper_alloc: ok\n");
	return 0;
}
