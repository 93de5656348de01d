/*
 * bench/lifecycle.c: owned objects with destructors, and plain deferred
 * cleanups, in reap, talloc and APR.
 *
 *   (a) n objects of 64 bytes, each with a destructor, owned by a parent
 *       and released by closing it: reap (scope memory + reap_defer),
 *       talloc (talloc_size + talloc_set_destructor), APR (apr_palloc +
 *       apr_pool_cleanup_register).
 *   (b) n plain cleanups registered in one owner and run by closing it:
 *       reap_defer vs apr_pool_cleanup_register.
 *   (c) (a) for reap with the ledger on and off: what the ledger costs.
 *
 * Every contender writes a word into each object and its destructor adds
 * that word to a sum, which is checked after each round: the work cannot
 * be optimised away, and a destructor that ran on the wrong object or
 * did not run at all stops the benchmark.
 */
#include "bench.h"

#include <apr_general.h>
#include <apr_pools.h>
#include <talloc.h>

#include <reap/ledger.h>
#include <reap/scope.h>

#define OBJ_SIZE 64

static size_t dtor_sum;

static void die(const char *what)
{
	fprintf(stderr, "bench_lifecycle: %s\n", what);
	exit(1);
}

static void check_sum(const char *who, size_t n)
{
	if (dtor_sum != n) {
		fprintf(stderr, "bench_lifecycle: %s ran %zu destructors of %zu\n",
			who, dtor_sum, n);
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* (a) owned objects with destructors                                   */

static void reap_obj_dtor(void *p)
{
	dtor_sum += *(size_t *)p;
}

static void reap_objects(size_t n)
{
	reap_scope *s;

	dtor_sum = 0;
	if (reap_scope_open(NULL, &s) < 0)
		die("reap_scope_open failed");
	for (size_t i = 0; i < n; i++) {
		size_t *p = reap_scope_alloc(s, OBJ_SIZE);

		if (p == NULL)
			die("reap_scope_alloc failed");
		*p = 1;
		if (reap_defer(s, reap_obj_dtor, p, NULL) < 0)
			die("reap_defer failed");
	}
	(void)reap_scope_close(s);
	check_sum("reap", n);
}

static void reap_objects_ledger_on(size_t n)
{
	reap_ledger_enable(true);
	reap_objects(n);
}

static void reap_objects_ledger_off(size_t n)
{
	reap_ledger_enable(false);
	reap_objects(n);
	reap_ledger_enable(true);
}

static int talloc_obj_dtor(void *p)
{
	dtor_sum += *(size_t *)p;
	return 0;
}

static void talloc_objects(size_t n)
{
	void *parent = talloc_new(NULL);

	dtor_sum = 0;
	if (parent == NULL)
		die("talloc_new failed");
	for (size_t i = 0; i < n; i++) {
		size_t *p = talloc_size(parent, OBJ_SIZE);

		if (p == NULL)
			die("talloc_size failed");
		*p = 1;
		talloc_set_destructor((void *)p, talloc_obj_dtor);
	}
	talloc_free(parent);
	check_sum("talloc", n);
}

static apr_status_t apr_obj_dtor(void *p)
{
	dtor_sum += *(size_t *)p;
	return APR_SUCCESS;
}

static void apr_objects(size_t n)
{
	apr_pool_t *pool;

	dtor_sum = 0;
	if (apr_pool_create(&pool, NULL) != APR_SUCCESS)
		die("apr_pool_create failed");
	for (size_t i = 0; i < n; i++) {
		size_t *p = apr_palloc(pool, OBJ_SIZE);

		if (p == NULL)
			die("apr_palloc failed");
		*p = 1;
		apr_pool_cleanup_register(pool, p, apr_obj_dtor,
					  apr_pool_cleanup_null);
	}
	apr_pool_destroy(pool);
	check_sum("APR", n);
}

/* ------------------------------------------------------------------ */
/* (b) plain deferred cleanups                                          */

static size_t one = 1;

static void reap_plain(size_t n)
{
	reap_scope *s;

	dtor_sum = 0;
	if (reap_scope_open(NULL, &s) < 0)
		die("reap_scope_open failed");
	for (size_t i = 0; i < n; i++)
		if (reap_defer(s, reap_obj_dtor, &one, NULL) < 0)
			die("reap_defer failed");
	(void)reap_scope_close(s);
	check_sum("reap", n);
}

static void apr_plain(size_t n)
{
	apr_pool_t *pool;

	dtor_sum = 0;
	if (apr_pool_create(&pool, NULL) != APR_SUCCESS)
		die("apr_pool_create failed");
	for (size_t i = 0; i < n; i++)
		apr_pool_cleanup_register(pool, &one, apr_obj_dtor,
					  apr_pool_cleanup_null);
	apr_pool_destroy(pool);
	check_sum("APR", n);
}

/* ------------------------------------------------------------------ */

int main(void)
{
	size_t n = bench_n();
	int reps = bench_reps();
	bench_contender a[] = {
		{.name = "reap", .run = reap_objects_ledger_on},
		{.name = "talloc", .run = talloc_objects},
		{.name = "APR", .run = apr_objects},
		{.name = "reap, ledger off", .run = reap_objects_ledger_off},
	};
	bench_contender b[] = {
		{.name = "reap", .run = reap_plain},
		{.name = "APR", .run = apr_plain},
	};

	if (apr_initialize() != APR_SUCCESS)
		die("apr_initialize failed");

	bench_group("(a, c) 64-byte objects with destructors", a, 4, n, reps);
	bench_group("(b) plain deferred cleanups", b, 2, n, reps);

	/* The reap side of (c) is the ledger-off run: ratio = on / off. */
	bench_contender ledger_on = a[0];
	ledger_on.name = "reap, ledger on";

	bench_note("Rows a1, a2: 64-byte objects, each with a destructor, owned by "
		   "a parent that is then closed: reap_scope_alloc + reap_defer "
		   "into one scope and reap_scope_close (ledger on, the default); "
		   "talloc_size + talloc_set_destructor and talloc_free of the "
		   "parent; apr_palloc + apr_pool_cleanup_register and "
		   "apr_pool_destroy. Each destructor reads a word of its object "
		   "and adds it to a sum that is checked after every round.");
	bench_note("Row b: plain cleanups registered in one owner and run when "
		   "it closes: reap_defer + reap_scope_close vs "
		   "apr_pool_cleanup_register + apr_pool_destroy.");
	bench_note("Row c: the work of a1 done by reap with the ledger off "
		   "(reap column) and on (peer column), both measured in the same "
		   "rounds as a1/a2; the ratio is the ledger's cost factor.");
	bench_row("a1", "64-byte object + destructor, freed by closing its owner",
		  &a[0], &a[1], ">=3");
	bench_row("a2", "64-byte object + destructor, freed by closing its owner",
		  &a[0], &a[2], ">=2");
	bench_row("b", "plain deferred cleanup, registered and run at close",
		  &b[0], &b[1], ">=2");
	bench_row("c", "ledger cost on (a): reap column = ledger off, ratio = on/off",
		  &a[3], &ledger_on, "<=1.5");

	apr_terminate();
	return 0;
}
