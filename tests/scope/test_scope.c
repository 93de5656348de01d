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

/* Every cleanup gets a sequence number; close must run them in exactly
 * the reverse order, across chunk boundaries. */
static int seq_log[5000], nseq;

static void log_seq(void *arg)
{
	seq_log[nseq++] = (int)(intptr_t)arg;
}

TEST(thousands_of_cleanups_across_chunks_run_in_reverse)
{
	reap_scope *s;

	nseq = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	for (int i = 0; i < 5000; i++)
		ASSERT_OK(reap_defer(s, log_seq, N(i), NULL));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(nseq, 5000);
	for (int i = 0; i < 5000; i++)
		ASSERT_EQ_INT(seq_log[i], 4999 - i);
}

static int runs;
static void count_run(void *arg) { (void)arg; runs++; }

TEST(handle_runs_early_once_and_cancel_never_runs)
{
	reap_scope *s;
	reap_cleanup *a, *b;

	runs = 0;
	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, note, N('a'), &a));
	ASSERT_OK(reap_defer(s, note, N('b'), &b));
	ASSERT_OK(reap_defer(s, note, N('c'), NULL));
	ASSERT_EQ_INT(reap_cleanup_run(a), 0);
	ASSERT_EQ_STR(order, "a");
	reap_cleanup_cancel(b);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_STR(order, "ac");
}

TEST(defer_then_cancel_in_a_loop_does_not_grow)
{
	reap_scope *s;
	reap_cleanup *h;
	size_t live;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, count_run, NULL, &h));
	reap_cleanup_cancel(h);
	live = reap_alloc_live();
	for (int i = 0; i < 100000; i++) {
		ASSERT_OK(reap_defer(s, count_run, NULL, &h));
		reap_cleanup_cancel(h);
	}
	ASSERT_EQ_SIZE(reap_alloc_live(), live);
	/* Out of order too: cancel the older of two, then the newer. */
	for (int i = 0; i < 100000; i++) {
		reap_cleanup *h2;

		ASSERT_OK(reap_defer(s, count_run, NULL, &h));
		ASSERT_OK(reap_defer(s, count_run, NULL, &h2));
		reap_cleanup_cancel(h);
		reap_cleanup_cancel(h2);
	}
	ASSERT_EQ_SIZE(reap_alloc_live(), live);
	runs = 0;
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(runs, 0);
}

static reap_scope *late_scope;

static void register_more(void *arg)
{
	note(arg);
	if (reap_defer(late_scope, note, N('L'), NULL) != 0)
		test_fail(__FILE__, __LINE__, "defer during close failed");
}

TEST(cleanup_registered_during_close_runs_next)
{
	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &late_scope));
	ASSERT_OK(reap_defer(late_scope, note, N('a'), NULL));
	ASSERT_OK(reap_defer(late_scope, register_more, N('r'), NULL));
	ASSERT_EQ_INT(reap_scope_close(late_scope), 0);
	ASSERT_EQ_STR(order, "rLa");
}

/* ------------------------------------------------------------------ */
/* Errors in flight (ExitStack semantics)                              */

static int seen_codes[16], nseen;

static int see(void *arg, const reap_error *in)
{
	seen_codes[nseen++] = in ? in->code : 0;
	return (int)(intptr_t)arg;
}

static int raise_pipe(void *arg, const reap_error *in)
{
	(void)arg;
	seen_codes[nseen++] = in ? in->code : 0;
	return reap_raisef(-EPIPE, "peer went away after %d bytes", 42);
}

TEST(exit_cleanups_see_the_error_in_flight_and_chain_new_ones)
{
	reap_scope *s;
	reap_error *chain;
	int rc;

	nseen = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "job"));
	ASSERT_OK(reap_defer_exit(s, NULL, see, N(0), NULL));   /* sees EPIPE */
	ASSERT_OK(reap_defer_exit(s, NULL, raise_pipe, NULL, NULL));
	ASSERT_OK(reap_defer_exit(s, NULL, see, N(0), NULL));   /* sees EIO */
	reap_scope_failf(s, -EIO, "disk said no");
	rc = reap_scope_close_err(s, &chain);
	ASSERT_EQ_INT(rc, -EPIPE);
	ASSERT_EQ_INT(nseen, 3);
	ASSERT_EQ_INT(seen_codes[0], -EIO);
	ASSERT_EQ_INT(seen_codes[1], -EIO);
	ASSERT_EQ_INT(seen_codes[2], -EPIPE);
	ASSERT_EQ_SIZE(reap_error_count(chain), 2);
	ASSERT_EQ_INT(chain->code, -EPIPE);
	ASSERT_EQ_STR(chain->msg, "peer went away after 42 bytes");
	ASSERT_CONTAINS(chain->site->file, "test_scope.c");
	ASSERT_CONTAINS(chain->where, "job");
	ASSERT_EQ_INT(chain->cause->code, -EIO);
	ASSERT_EQ_STR(chain->cause->msg, "disk said no");
	ASSERT_NULL(chain->cause->cause);
	reap_error_free(chain);
}

TEST(close_without_taking_the_chain_reports_it)
{
	reap_scope *s;

	test_reports_clear();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_exit(s, NULL, raise_pipe, NULL, NULL));
	reap_scope_fail(s, -EIO);
	ASSERT_EQ_INT(reap_scope_close(s), -EPIPE);
	ASSERT_CONTAINS(test_reports(), "EPIPE");
	ASSERT_CONTAINS(test_reports(), "EIO");
	ASSERT_CONTAINS(test_reports(), "peer went away");
}

TEST(a_lone_error_is_returned_not_reported)
{
	reap_scope *s;

	test_reports_clear();
	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_scope_fail(s, -EIO);
	ASSERT_EQ_INT(reap_scope_error(s), -EIO);
	ASSERT_EQ_INT(reap_scope_close(s), -EIO);
	ASSERT_EQ_STR(test_reports(), "");
}

TEST(suppress_swallows_the_error_for_older_cleanups)
{
	reap_scope *s;
	reap_error *chain;

	nseen = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_exit(s, NULL, see, N(0), NULL));
	ASSERT_OK(reap_defer_exit(s, NULL, see, N(REAP_SUPPRESS), NULL));
	reap_scope_fail(s, -EIO);
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), 0);
	ASSERT_NULL(chain);
	ASSERT_EQ_INT(seen_codes[0], -EIO);
	ASSERT_EQ_INT(seen_codes[1], 0);
}

TEST(child_closed_by_parent_inherits_the_error_in_flight)
{
	reap_scope *p, *c;

	nseen = 0;
	ASSERT_OK(reap_scope_open(NULL, &p));
	ASSERT_OK(reap_defer_exit(p, NULL, see, N(0), NULL));
	ASSERT_OK(reap_scope_open(p, &c));
	ASSERT_OK(reap_defer_exit(c, NULL, see, N(REAP_SUPPRESS), NULL));
	reap_scope_fail(p, -EIO);
	/* The child's cleanup sees EIO and suppresses it; the parent's older
	 * cleanup then sees nothing, like nested with-blocks. */
	ASSERT_EQ_INT(reap_scope_close(p), 0);
	ASSERT_EQ_INT(nseen, 2);
	ASSERT_EQ_INT(seen_codes[0], -EIO);
	ASSERT_EQ_INT(seen_codes[1], 0);
}

TEST(a_child_error_reaches_the_parents_older_cleanups)
{
	reap_scope *p, *c;
	reap_error *chain;

	nseen = 0;
	ASSERT_OK(reap_scope_open(NULL, &p));
	ASSERT_OK(reap_defer_exit(p, NULL, see, N(0), NULL));
	ASSERT_OK(reap_scope_open(p, &c));
	reap_scope_fail(c, -ENOSPC);
	reap_scope_fail(p, -EIO);
	ASSERT_EQ_INT(reap_scope_close_err(p, &chain), -ENOSPC);
	ASSERT_EQ_INT(seen_codes[0], -ENOSPC);
	ASSERT_EQ_SIZE(reap_error_count(chain), 2);
	ASSERT_EQ_INT(chain->cause->code, -EIO);
	reap_error_free(chain);
}

/* ------------------------------------------------------------------ */
/* The block macro                                                      */

static int with_return(int fail)
{
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		if (reap_defer(s, note, N('w'), NULL) != 0)
			return -1;
		if (fail)
			return 7; /* leaves through return */
		rc = 3;
	}
	return rc;
}

TEST(with_scope_closes_on_return_break_continue_goto_and_fallthrough)
{
	int rc;

	norder = 0;
	ASSERT_EQ_INT(with_return(1), 7);
	ASSERT_EQ_STR(order, "w");
	ASSERT_EQ_INT(with_return(0), 3); /* a positive result survives */
	ASSERT_EQ_STR(order, "ww");

	for (int i = 0; i < 3; i++) {
		rc = 0;
		REAP_WITH_SCOPE(s, NULL, &rc) {
			ASSERT_OK(reap_defer(s, note, N('0' + i), NULL));
			if (i == 0)
				break;
			if (i == 1)
				continue;
			goto out;
		}
	}
out:
	ASSERT_EQ_STR(order, "ww012");
}

static int with_error(int suppress)
{
	int rc = 0;

	nseen = 0;
	REAP_WITH_SCOPE(s, NULL, &rc) {
		if ((rc = reap_defer_exit(s, NULL, see,
					  N(suppress ? REAP_SUPPRESS : 0), NULL)) < 0)
			break;
		rc = -ETIMEDOUT; /* the block fails */
	}
	return rc;
}

TEST(with_scope_closes_with_the_blocks_error)
{
	ASSERT_EQ_INT(with_error(0), -ETIMEDOUT);
	ASSERT_EQ_INT(seen_codes[0], -ETIMEDOUT);
	ASSERT_EQ_INT(with_error(1), 0);
	ASSERT_EQ_INT(seen_codes[0], -ETIMEDOUT);
}

TEST(nested_with_scopes)
{
	int rc = 0, rc2 = 0;

	norder = 0;
	REAP_WITH_SCOPE(outer, NULL, &rc) {
		ASSERT_OK(reap_defer(outer, note, N('o'), NULL));
		REAP_WITH_SCOPE(inner, outer, &rc2) {
			ASSERT_OK(reap_defer(inner, note, N('i'), NULL));
		}
		ASSERT_EQ_STR(order, "i");
	}
	ASSERT_EQ_STR(order, "io");
}

/* ------------------------------------------------------------------ */
/* Ownership moves                                                      */

TEST(move_a_cleanup_to_another_scope)
{
	reap_scope *a, *b;
	reap_cleanup *h;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &a));
	ASSERT_OK(reap_scope_open(NULL, &b));
	ASSERT_OK(reap_defer(a, note, N('m'), &h));
	ASSERT_OK(reap_defer(b, note, N('b'), NULL));
	ASSERT_OK(reap_cleanup_move(&h, b));
	ASSERT_EQ_INT(reap_scope_close(a), 0);
	ASSERT_EQ_STR(order, "");
	ASSERT_EQ_INT(reap_scope_close(b), 0);
	ASSERT_EQ_STR(order, "mb"); /* moved: the newest of b */
}

TEST(move_a_child_scope_to_another_owner)
{
	reap_scope *a, *b, *c, *d;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &a));
	ASSERT_OK(reap_scope_open(NULL, &b));
	ASSERT_OK(reap_scope_open(a, &c));
	ASSERT_OK(reap_scope_open(c, &d));
	ASSERT_OK(reap_defer(c, note, N('c'), NULL));
	ASSERT_EQ_INT(reap_scope_move(c, c), -EINVAL);
	ASSERT_EQ_INT(reap_scope_move(c, d), -EINVAL); /* its own descendant */
	ASSERT_EQ_INT(reap_scope_move(reap_scope_root(), a), -EINVAL);
	ASSERT_OK(reap_scope_move(c, b));
	ASSERT_EQ_PTR(reap_scope_parent(c), b);
	ASSERT_EQ_INT(reap_scope_close(a), 0);
	ASSERT_EQ_STR(order, "");
	ASSERT_EQ_INT(reap_scope_close(b), 0);
	ASSERT_EQ_STR(order, "c");
}

TEST(pop_all_moves_everything_without_running_it)
{
	reap_scope *s, *kept, *child;
	reap_cleanup *h;
	char *mem;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer(s, note, N('1'), NULL));
	ASSERT_OK(reap_scope_open(s, &child));
	ASSERT_OK(reap_defer(child, note, N('c'), NULL));
	ASSERT_OK(reap_defer(s, note, N('2'), &h));
	ASSERT_NOT_NULL(mem = reap_scope_strdup(s, "still here"));
	ASSERT_OK(reap_scope_pop_all(s, NULL, &kept));
	ASSERT_EQ_PTR(reap_scope_parent(child), kept);
	ASSERT_OK(reap_defer(s, note, N('s'), NULL));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_STR(order, "s");
	ASSERT_EQ_STR(mem, "still here"); /* the memory moved too */
	reap_cleanup_cancel(h);            /* handles stay valid */
	ASSERT_EQ_INT(reap_scope_close(kept), 0);
	ASSERT_EQ_STR(order, "sc1");
}

TEST(pop_all_into_itself_and_refusal_of_a_descendant)
{
	reap_scope *s, *kept, *child;

	norder = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_open(s, &child));
	ASSERT_OK(reap_defer(s, note, N('a'), NULL));
	ASSERT_EQ_INT(reap_scope_pop_all(s, child, &kept), -EINVAL);
	ASSERT_OK(reap_scope_pop_all(s, s, &kept));
	ASSERT_EQ_PTR(reap_scope_parent(kept), s);
	ASSERT_OK(reap_defer(s, note, N('b'), NULL));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_STR(order, "ba");
}

/* ------------------------------------------------------------------ */
/* Memory, ready cleanups, current scope, threads                       */

static void check_mem(void *arg)
{
	if (strcmp(arg, "alive") != 0)
		test_fail(__FILE__, __LINE__, "scope memory gone before cleanups");
	runs++;
}

TEST(scope_memory_is_aligned_and_outlives_cleanups)
{
	reap_scope *s;
	char *p;

	runs = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	for (size_t n = 1; n < 70000; n = n * 3 + 1) {
		unsigned char *m = reap_scope_alloc(s, n);

		ASSERT_NOT_NULL(m);
		ASSERT_EQ_INT((uintptr_t)m % 16, 0);
		memset(m, 0xab, n);
	}
	ASSERT_NOT_NULL(p = reap_scope_strdup(s, "alive"));
	ASSERT_OK(reap_defer(s, check_mem, p, NULL));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(runs, 1);
}

TEST(ready_cleanups_close_fd_file_memory_and_unlock)
{
	static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
	reap_scope *s;
	int fd = open("/dev/null", O_RDONLY);
	FILE *f = fopen("/dev/null", "r");
	int ffd = fileno(f);

	ASSERT_GE_INT(fd, 0);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_fd(s, fd, NULL));
	ASSERT_OK(reap_defer_file(s, f, NULL));
	ASSERT_OK(reap_defer_free(s, malloc(100), NULL));
	ASSERT_OK(pthread_mutex_lock(&m));
	ASSERT_OK(reap_defer_unlock(s, &m, NULL));
	ASSERT_EQ_INT(pthread_mutex_trylock(&m), EBUSY);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_INT(fcntl(fd, F_GETFD), -1);
	ASSERT_EQ_INT(fcntl(ffd, F_GETFD), -1);
	ASSERT_EQ_INT(pthread_mutex_trylock(&m), 0);
	pthread_mutex_unlock(&m);
}

TEST(ready_cleanups_reject_bad_input_and_report_failed_close)
{
	reap_scope *s;
	reap_error *chain;
	int fd = open("/dev/null", O_RDONLY);

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_INT(reap_defer_fd(s, -1, NULL), -EBADF);
	ASSERT_EQ_INT(reap_defer_file(s, NULL, NULL), -EINVAL);
	ASSERT_EQ_INT(reap_defer_free(s, NULL, NULL), -EINVAL);
	ASSERT_EQ_INT(reap_defer_unlock(s, NULL, NULL), -EINVAL);
	ASSERT_EQ_INT(reap_defer(s, NULL, NULL, NULL), -EINVAL);
	ASSERT_OK(reap_defer_fd(s, fd, NULL));
	close(fd); /* the scope's close(fd) will now fail with EBADF */
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EBADF);
	ASSERT_NOT_NULL(chain);
	ASSERT_CONTAINS(chain->msg, "close(");
	reap_error_free(chain);
}

TEST(current_scope_is_the_default_owner)
{
	reap_scope *s, *c, *old;

	ASSERT_EQ_PTR(reap_scope_current(), reap_scope_root());
	ASSERT_OK(reap_scope_open(NULL, &s));
	old = reap_scope_set_current(s);
	ASSERT_EQ_PTR(old, reap_scope_root());
	ASSERT_OK(reap_scope_open(NULL, &c));
	ASSERT_EQ_PTR(reap_scope_parent(c), s);
	reap_scope_set_current(NULL);
	ASSERT_EQ_PTR(reap_scope_current(), reap_scope_root());
	ASSERT_EQ_INT(reap_scope_close(s), 0); /* closes c too */
}

static void *thread_body(void *arg)
{
	/* NULL: the thread's own root scope, closed when the thread ends. */
	if (reap_defer(NULL, note, arg, NULL) != 0)
		return (void *)1;
	if (reap_scope_current() == reap_scope_root())
		return (void *)2;
	return NULL;
}

TEST(a_threads_root_scope_closes_at_thread_exit)
{
	pthread_t t;
	void *ret;

	norder = 0;
	ASSERT_OK(pthread_create(&t, NULL, thread_body, N('t')));
	ASSERT_OK(pthread_join(t, &ret));
	ASSERT_NULL(ret);
	ASSERT_EQ_STR(order, "t");
}

TEST(owner_paths_use_names)
{
	reap_scope *srv, *conn;
	reap_error *chain;

	ASSERT_OK(reap_scope_open(NULL, &srv));
	ASSERT_OK(reap_scope_name(srv, "server"));
	ASSERT_OK(reap_scope_open(srv, &conn));
	ASSERT_OK(reap_scope_name(conn, "conn#%d", 12));
	ASSERT_EQ_STR(reap_scope_get_name(conn), "conn#12");
	reap_scope_fail(conn, -ECONNRESET);
	ASSERT_EQ_INT(reap_scope_close_err(conn, &chain), -ECONNRESET);
	ASSERT_EQ_STR(chain->where, "root/server/conn#12");
	reap_error_free(chain);
	ASSERT_EQ_INT(reap_scope_close(srv), 0);
}

/* ------------------------------------------------------------------ */
/* Misuse                                                               */

static void double_close(void *arg)
{
	reap_scope *s;

	(void)arg;
	if (reap_scope_open(NULL, &s) != 0 || reap_scope_name(s, "victim") != 0)
		return;
	reap_scope_close(s);
	reap_scope_close(s);
}

static void use_after_close(void *arg)
{
	reap_scope *s;

	(void)arg;
	if (reap_scope_open(NULL, &s) != 0)
		return;
	reap_scope_close(s);
	if (reap_defer(s, count_run, NULL, NULL) != 0)
		return;
}

static reap_scope *mis_parent;

static void close_parent(void *arg)
{
	(void)arg;
	reap_scope_close(mis_parent);
}

static void reorder(void *arg)
{
	reap_scope *c;

	(void)arg;
	if (reap_scope_open(NULL, &mis_parent) != 0 ||
	    reap_scope_open(mis_parent, &c) != 0 ||
	    reap_defer(c, close_parent, NULL, NULL) != 0)
		return;
	reap_scope_close(c);
}

static void close_root(void *arg)
{
	(void)arg;
	reap_scope_close(reap_scope_root());
}

static void run_cancelled(void *arg)
{
	reap_scope *s;
	reap_cleanup *h, *h2;

	(void)arg;
	if (reap_scope_open(NULL, &s) != 0 ||
	    reap_defer(s, count_run, NULL, &h) != 0 ||
	    reap_defer(s, count_run, NULL, &h2) != 0)
		return;
	reap_cleanup_cancel(h);
	reap_cleanup_run(h);
}

TEST(misuse_aborts_naming_both_sites)
{
	const char *m;

	m = test_expect_misuse(double_close, NULL);
	ASSERT_NOT_NULL(m);
	ASSERT_CONTAINS(m, "double close");
	ASSERT_CONTAINS(m, "scope victim"); /* its name outlives its memory */
	ASSERT_CONTAINS(m, "test_scope.c");
	ASSERT_CONTAINS(m, "created at");
	ASSERT_CONTAINS(m, "first closed at");
	ASSERT_CONTAINS(m, "in double_close()");

	m = test_expect_misuse(use_after_close, NULL);
	ASSERT_NOT_NULL(m);
	ASSERT_CONTAINS(m, "reap_defer");
	ASSERT_CONTAINS(m, "first closed at");

	m = test_expect_misuse(reorder, NULL);
	ASSERT_NOT_NULL(m);
	ASSERT_CONTAINS(m, "out of order");
	ASSERT_CONTAINS(m, "close_parent()");

	m = test_expect_misuse(close_root, NULL);
	ASSERT_NOT_NULL(m);
	ASSERT_CONTAINS(m, "root scope");

	m = test_expect_misuse(run_cancelled, NULL);
	ASSERT_NOT_NULL(m);
	ASSERT_CONTAINS(m, "already ran, was cancelled");
	ASSERT_CONTAINS(m, "run_cancelled()");
}

static int raise_in_block(void)
{
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		rc = reap_raisef(-ENOENT, "no such thing: %s", "widget");
	}
	return rc;
}

TEST(a_raisef_result_keeps_its_message_in_the_chain)
{
	reap_scope *s;
	reap_error *chain;

	test_reports_clear();
	ASSERT_EQ_INT(raise_in_block(), -ENOENT);
	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_scope_fail(s, reap_raisef(-EACCES, "locked by %d", 7));
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EACCES);
	ASSERT_EQ_STR(chain->msg, "locked by 7");
	ASSERT_CONTAINS(chain->site->func, "a_raisef_result_keeps");
	reap_error_free(chain);
}
