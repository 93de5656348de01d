/* Scopes: order of close, handles, moves, memory, the block macro. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "../runner.h"

static char order[64];
static int norder;

static void note(void *arg)
{
	order[norder++] = (char)(intptr_t)arg;
	order[norder] = '\0';
}

#define N(c) ((void *)(intptr_t)(c))

TEST(close_runs_cleanups_newest_first)
{
	reap_scope *s;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, note, N('a'), NULL));
	ASSERT_OK(reap_defer(s, note, N('b'), NULL));
	ASSERT_OK(reap_defer(s, note, N('c'), NULL));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_STR(order, "cba");
}

TEST(children_and_cleanups_interleave_in_reverse)
{
	reap_scope *p, *c1, *c2;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &p));
	ASSERT_OK(reap_defer(p, note, N('1'), NULL));
	ASSERT_OK(reap_scope_open(p, &c1));
	ASSERT_OK(reap_defer(c1, note, N('a'), NULL));
	ASSERT_OK(reap_defer(p, note, N('2'), NULL));
	ASSERT_OK(reap_scope_open(p, &c2));
	ASSERT_OK(reap_defer(c2, note, N('b'), NULL));
	ASSERT_OK(reap_defer(c1, note, N('c'), NULL)); /* c1 is older than c2 */
	ASSERT_OK(reap_defer(p, note, N('3'), NULL));
	ASSERT_EQ_INT(reap_scope_close(p), 0);
	ASSERT_EQ_STR(order, "3b2ca1");
}

TEST(child_closed_early_is_not_closed_again)
{
	reap_scope *p, *c;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &p));
	ASSERT_OK(reap_scope_open(p, &c));
	ASSERT_OK(reap_defer(c, note, N('c'), NULL));
	ASSERT_OK(reap_defer(p, note, N('p'), NULL));
	ASSERT_EQ_INT(reap_scope_close(c), 0);
	ASSERT_EQ_STR(order, "c");
	ASSERT_EQ_INT(reap_scope_close(p), 0);
	ASSERT_EQ_STR(order, "cp");
}

