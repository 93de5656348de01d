/*
 * The allocation-failure sweep: every constructor of the scope layer is
 * called with its 1st, 2nd, ... allocation failing until it succeeds. A
 * failed call must return -ENOMEM (NULL for the allocating calls), change
 * nothing, register nothing and never run its callback: the resource is
 * still the caller's, and the ledger count and reap_alloc_live() are what
 * they were before the call. Each sweep must hit at least one failure, so
 * that it tests something.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "../runner.h"

#define MAX_N 64 /* no constructor makes this many allocations */

static int runs;
static void bump(void *arg) { (void)arg; runs++; }

static int exit_runs;
static int exit_bump(void *arg, const reap_error *in)
{
	(void)arg;
	(void)in;
	exit_runs++;
	return 0;
}

static reap_type conn_type = REAP_TYPE_INIT("oomconn", NULL);

#define ASSERT_FAULT_HIT(n) ASSERT_GE_INT(seen, (n))

#define SENTINEL_SCOPE ((reap_scope *)(uintptr_t)0x5e47)
#define SENTINEL_HANDLE ((reap_cleanup *)(uintptr_t)0x4a9d)

static void open_ok(reap_scope *parent, reap_scope **out)
{
	ASSERT_OK(reap_scope_open(parent, out));
}

/* ------------------------------------------------------------------ */
/* reap_scope_open                                                      */

/* Open a child of a parent holding `prefill` cleanups. Returns how many
 * allocations the open needed: 1 (the scope) or 2 (also a new chunk for
 * the parent's stack). */
static int sweep_open(int prefill)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p, *c = SENTINEL_SCOPE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &p);
		for (int i = 0; i < prefill; i++)
			ASSERT_OK(reap_defer(p, bump, NULL, NULL));
		runs = 0;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_open(p, &c);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(c, SENTINEL_SCOPE);
			ASSERT_EQ_PTR(reap_scope_parent(c), p);
			ASSERT_EQ_SIZE(reap_ledger_count(), before.count + 1);
			ASSERT_OK(reap_defer(c, bump, NULL, NULL));
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			ASSERT_EQ_INT(runs, prefill + 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(c, SENTINEL_SCOPE);
		ASSERT_UNCHANGED(before);
		/* The parent still holds exactly its own cleanups. */
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_INT(runs, prefill);
	}
	ASSERT_GE_INT(failures, 1);
	return failures;
}

TEST(oom_scope_open_first_child)
{
	sweep_open(0);
}

/* Every fill level of the parent up to 160 cleanups, so that the sweep
 * crosses each boundary of its stack's storage, wherever the layout puts
 * them: at some levels the open must also fail for the parent's new
 * chunk, and leave the parent as it was. */
TEST(oom_scope_open_at_every_fill_level_of_the_parent)
{
	int growths = 0;

	for (int prefill = 0; prefill <= 160; prefill++)
		if (sweep_open(prefill) == 2)
			growths++;
	ASSERT_GE_INT(growths, 2);
}

TEST(oom_scope_open_under_the_current_scope)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p, *c = SENTINEL_SCOPE, *prev;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &p);
		prev = reap_scope_set_current(p);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_open(NULL, &c);
		seen = test_fault_disarm();
		reap_scope_set_current(prev);
		if (rc == 0) {
			ASSERT_EQ_PTR(reap_scope_parent(c), p);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(c, SENTINEL_SCOPE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

/* ------------------------------------------------------------------ */
/* reap_defer and reap_defer_exit                                       */

/* Register cleanups until the scope's top chunk is exactly full (the
 * next registration needs memory); return how many were registered. */
static int fill_chunk(reap_scope *s)
{
	int k = 1;

	ASSERT_OK(reap_defer(s, bump, NULL, NULL)); /* the first chunk */
	reap_fault_alloc(1);
	while (k < 100000 && reap_defer(s, bump, NULL, NULL) == 0)
		k++;
	reap_fault_alloc(0);
	ASSERT_LT_INT(k, 100000);
	return k;
}

TEST(oom_defer)
{
	int failures = 0, k;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		reap_ledger_stat st0, st1;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		runs = 0;
		k = fill_chunk(s); /* the next defer needs a new chunk */
		ASSERT_OK(reap_ledger_stats("defer", &st0));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer(s, bump, NULL, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(h, SENTINEL_HANDLE);
			ASSERT_EQ_SIZE(reap_ledger_count(), before.count + 1);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(runs, k + 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_EQ_INT(runs, 0); /* never called on failure */
		ASSERT_UNCHANGED(before);
		ASSERT_OK(reap_ledger_stats("defer", &st1));
		ASSERT_EQ_SIZE(st1.created, st0.created);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_EQ_INT(runs, k); /* only the filling ones were registered */
	}
	ASSERT_GE_INT(failures, 1);
}

/* The same, into a fresh scope: its first chunk is the allocation. */
TEST(oom_defer_into_a_fresh_scope)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		runs = 0;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer(s, bump, NULL, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(runs, 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_EQ_INT(runs, 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_defer_exit_with_a_user_type)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		exit_runs = 0;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_exit(s, &conn_type, exit_bump, NULL, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_SIZE(reap_ledger_count(), before.count + 1);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(exit_runs, 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_EQ_INT(exit_runs, 0);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_EQ_INT(exit_runs, 0);
	}
	ASSERT_GE_INT(failures, 1);
}

/* ------------------------------------------------------------------ */
/* Ready cleanups: the resource stays the caller's on failure           */

static int fd_is_open(int fd)
{
	return fcntl(fd, F_GETFD) != -1;
}

TEST(oom_defer_fd)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		int fd, rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		ASSERT_TRUE((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_fd(s, fd, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_FALSE(fd_is_open(fd));
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_TRUE(fd_is_open(fd));
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_TRUE(fd_is_open(fd)); /* still ours */
		ASSERT_EQ_INT(close(fd), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_defer_file)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		FILE *f;
		int fd, rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		ASSERT_NOT_NULL(f = fopen("/dev/null", "re"));
		fd = fileno(f);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_file(s, f, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_FALSE(fd_is_open(fd));
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_TRUE(fd_is_open(fd)); /* the FILE is still ours */
		ASSERT_EQ_INT(fgetc(f), EOF);
		ASSERT_EQ_INT(fclose(f), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_defer_free)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		char *p;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		ASSERT_NOT_NULL(p = malloc(64));
		strcpy(p, "still mine");
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_free(s, p, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(reap_scope_close(s), 0); /* frees p */
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		/* Not freed by the scope: reading and freeing it is ours (a
		 * sanitizer build catches a use after free or double free). */
		ASSERT_EQ_STR(p, "still mine");
		free(p);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_defer_unlock)
{
	int failures = 0;

	for (int n = 1;; n++) {
		pthread_mutexattr_t at;
		pthread_mutex_t m;
		reap_scope *s;
		reap_cleanup *h = SENTINEL_HANDLE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		pthread_mutexattr_init(&at);
		pthread_mutexattr_settype(&at, PTHREAD_MUTEX_ERRORCHECK);
		pthread_mutex_init(&m, &at);
		pthread_mutexattr_destroy(&at);
		ASSERT_EQ_INT(pthread_mutex_lock(&m), 0);
		open_ok(NULL, &s);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_defer_unlock(s, &m, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(pthread_mutex_trylock(&m), 0); /* unlocked */
			ASSERT_EQ_INT(pthread_mutex_unlock(&m), 0);
			pthread_mutex_destroy(&m);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, SENTINEL_HANDLE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		/* Still held by us: an unlock by the scope would have freed it. */
		ASSERT_EQ_INT(pthread_mutex_trylock(&m), EBUSY);
		ASSERT_EQ_INT(pthread_mutex_unlock(&m), 0);
		pthread_mutex_destroy(&m);
	}
	ASSERT_GE_INT(failures, 1);
}

/* ------------------------------------------------------------------ */
/* Moves                                                                */

TEST(oom_cleanup_move)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *src, *dst;
		reap_cleanup *h, *h0;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &src);
		open_ok(NULL, &dst); /* no chunk yet: the move must allocate */
		runs = 0;
		ASSERT_OK(reap_defer(src, bump, NULL, &h));
		h0 = h;
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_cleanup_move(&h, dst);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_SIZE(reap_ledger_count(), before.count);
			ASSERT_EQ_INT(reap_scope_close(src), 0);
			ASSERT_EQ_INT(runs, 0);
			ASSERT_EQ_INT(reap_scope_close(dst), 0);
			ASSERT_EQ_INT(runs, 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(h, h0);
		ASSERT_UNCHANGED(before);
		/* Still in src, and the handle still works. */
		ASSERT_EQ_INT(reap_scope_close(dst), 0);
		ASSERT_EQ_INT(runs, 0);
		ASSERT_EQ_INT(reap_cleanup_run(h), 0);
		ASSERT_EQ_INT(runs, 1);
		ASSERT_EQ_INT(reap_scope_close(src), 0);
		ASSERT_EQ_INT(runs, 1);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_scope_move)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p, *c, *np;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &p);
		open_ok(p, &c);
		open_ok(NULL, &np); /* no chunk yet: the move must allocate */
		runs = 0;
		ASSERT_OK(reap_defer(c, bump, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_move(c, np);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_PTR(reap_scope_parent(c), np);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			ASSERT_EQ_INT(runs, 0);
			ASSERT_EQ_INT(reap_scope_close(np), 0);
			ASSERT_EQ_INT(runs, 1);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(reap_scope_parent(c), p);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(np), 0);
		ASSERT_EQ_INT(runs, 0); /* c was not moved into np */
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_INT(runs, 1); /* p still owned c */
	}
	ASSERT_GE_INT(failures, 1);
}

/* pop_all into s itself: the new scope is a child of s. */
TEST(oom_scope_pop_all_into_itself)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s, *out = SENTINEL_SCOPE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		runs = 0;
		for (int i = 0; i < 3; i++)
			ASSERT_OK(reap_defer(s, bump, NULL, NULL));
		ASSERT_NOT_NULL(reap_scope_strdup(s, "memory of s"));
		reap_scope_fail(s, -EIO);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_pop_all(s, s, &out);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_NE_PTR(out, SENTINEL_SCOPE);
			ASSERT_EQ_PTR(reap_scope_parent(out), s);
			ASSERT_EQ_INT(reap_scope_error(s), -EIO);
			ASSERT_EQ_INT(reap_scope_close(out), 0);
			ASSERT_EQ_INT(runs, 3);
			ASSERT_EQ_INT(reap_scope_close(s), -EIO);
			ASSERT_EQ_INT(runs, 3);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(out, SENTINEL_SCOPE);
		ASSERT_EQ_INT(reap_scope_error(s), -EIO);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(runs, 0);
		ASSERT_EQ_INT(reap_scope_close(s), -EIO);
		ASSERT_EQ_INT(runs, 3); /* s kept all three */
	}
	ASSERT_GE_INT(failures, 1);
}

/* pop_all into another scope, which has no chunk yet. */
TEST(oom_scope_pop_all_into_another_scope)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s, *p, *out = SENTINEL_SCOPE;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		open_ok(NULL, &p);
		runs = 0;
		for (int i = 0; i < 3; i++)
			ASSERT_OK(reap_defer(s, bump, NULL, NULL));
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_pop_all(s, p, &out);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_PTR(reap_scope_parent(out), p);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			ASSERT_EQ_INT(runs, 0);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			ASSERT_EQ_INT(runs, 3);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_PTR(out, SENTINEL_SCOPE);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
		ASSERT_EQ_INT(runs, 0);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
		ASSERT_EQ_INT(runs, 3);
	}
	ASSERT_GE_INT(failures, 1);
}

/* ------------------------------------------------------------------ */
/* Names and scope memory                                               */

/* Use up the scope's current memory block exactly, so that the next
 * small allocation needs a new block. */
static void fill_arena(reap_scope *s)
{
	int i;

	reap_fault_alloc(1);
	for (i = 0; i < 100000 && reap_scope_alloc(s, 16) != NULL; i++)
		;
	reap_fault_alloc(0);
	ASSERT_LT_INT(i, 100000);
}

TEST(oom_scope_name)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_name(s, "conn#%d", 12);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_STR(reap_scope_get_name(s), "conn#12");
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_NULL(reap_scope_get_name(s));
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_scope_rename_keeps_the_old_name)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		struct test_snap before;
		long seen;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		ASSERT_OK(reap_scope_name(s, "old"));
		fill_arena(s);
		before = test_snap();
		reap_fault_alloc(n);
		rc = reap_scope_name(s, "new-%s", "name");
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_STR(reap_scope_get_name(s), "new-name");
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_STR(reap_scope_get_name(s), "old");
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

static void sweep_alloc(size_t size, int strdup_it)
{
	static char big[3000];
	int failures = 0;

	memset(big, 'x', sizeof big - 1);
	for (int n = 1;; n++) {
		reap_scope *s;
		struct test_snap before;
		long seen;
		char *p;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		before = test_snap();
		errno = 0;
		reap_fault_alloc(n);
		p = strdup_it ? reap_scope_strdup(s, size > 100 ? big : "hello")
			      : reap_scope_alloc(s, size);
		seen = test_fault_disarm();
		if (p != NULL) {
			ASSERT_EQ_INT((uintptr_t)p % 16, 0);
			if (strdup_it)
				ASSERT_EQ_STR(p, size > 100 ? big : "hello");
			else
				memset(p, 0xa5, size);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(errno, ENOMEM);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_scope_alloc_small)
{
	sweep_alloc(40, 0);
}

TEST(oom_scope_alloc_big)
{
	sweep_alloc(5000, 0);
}

TEST(oom_scope_alloc_big_when_a_block_has_room)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		struct test_snap before;
		long seen;
		char *p;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		ASSERT_NOT_NULL(reap_scope_alloc(s, 16)); /* a block exists */
		before = test_snap();
		errno = 0;
		reap_fault_alloc(n);
		p = reap_scope_alloc(s, 70000); /* bigger than any block */
		seen = test_fault_disarm();
		if (p != NULL) {
			memset(p, 1, 70000);
			ASSERT_EQ_INT(reap_scope_close(s), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(errno, ENOMEM);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(s), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_scope_strdup)
{
	sweep_alloc(5, 1);
}

TEST(oom_scope_strdup_big)
{
	sweep_alloc(3000, 1);
}

/* Sizes whose rounding or header would wrap around must fail, not hand
 * out a block smaller than asked for. Only sizes that overflow reap's own
 * arithmetic are used, so a correct reap never calls malloc with them. */
TEST(scope_alloc_of_size_max_fails)
{
	volatile size_t huge = SIZE_MAX; /* hidden from alloc_size checks */
	reap_scope *s;

	open_ok(NULL, &s);
	errno = 0;
	ASSERT_NULL(reap_scope_alloc(s, huge));
	ASSERT_EQ_INT(errno, ENOMEM);
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

TEST(scope_alloc_of_nearly_size_max_fails)
{
	volatile size_t huge = SIZE_MAX;
	reap_scope *s;

	open_ok(NULL, &s);
	for (size_t d = 1; d <= 40; d++) {
		errno = 0;
		ASSERT_NULL(reap_scope_alloc(s, huge - d));
		ASSERT_EQ_INT(errno, ENOMEM);
	}
	ASSERT_EQ_INT(reap_scope_close(s), 0);
}

/* ------------------------------------------------------------------ */
/* reap_scope_failf                                                     */

static int inflight_code;
static int see_inflight(void *arg, const reap_error *in)
{
	(void)arg;
	inflight_code = in ? in->code : 0;
	return 0;
}

/* Without memory for the link, the code is still recorded: the scope's
 * error, what exit cleanups see and what close returns. */
TEST(oom_scope_failf_still_records_the_code)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_error *chain = NULL;
		size_t live;
		int hit;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		inflight_code = 0;
		ASSERT_OK(reap_defer_exit(s, NULL, see_inflight, NULL, NULL));
		live = reap_alloc_live();
		reap_fault_alloc(n);
		reap_scope_failf(s, -EIO, "disk %d failed", 3);
		hit = test_fault_disarm() >= n;
		ASSERT_EQ_INT(reap_scope_error(s), -EIO);
		if (!hit) {
			ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EIO);
			ASSERT_EQ_INT(inflight_code, -EIO);
			ASSERT_EQ_SIZE(reap_error_count(chain), 1);
			ASSERT_EQ_STR(chain->msg, "disk 3 failed");
			reap_error_free(chain);
			break;
		}
		failures++;
		ASSERT_EQ_SIZE(reap_alloc_live(), live); /* no link kept */
		ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EIO);
		ASSERT_EQ_INT(inflight_code, -EIO);
		reap_error_free(chain);
	}
	ASSERT_GE_INT(failures, 1);
}

TEST(oom_scope_failf_over_an_earlier_error)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_error *chain = NULL;
		int hit;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &s);
		inflight_code = 0;
		ASSERT_OK(reap_defer_exit(s, NULL, see_inflight, NULL, NULL));
		reap_scope_failf(s, -EINVAL, "first");
		reap_fault_alloc(n);
		reap_scope_failf(s, -EPIPE, "second");
		hit = test_fault_disarm() >= n;
		ASSERT_EQ_INT(reap_scope_error(s), -EPIPE);
		ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EPIPE);
		ASSERT_EQ_INT(inflight_code, -EPIPE);
		if (!hit) {
			ASSERT_EQ_SIZE(reap_error_count(chain), 2);
			reap_error_free(chain);
			break;
		}
		failures++;
		reap_error_free(chain);
	}
	ASSERT_GE_INT(failures, 1);
}

/* The chain handed over by close_err describes the error it returns:
 * its newest link carries that code, even when memory for the link ran
 * out at the time of the failf (close may allocate it then, or hand over
 * no chain at all, but not a chain whose newest error is another one). */
TEST(oom_close_err_chain_describes_the_returned_error)
{
	reap_scope *s;
	reap_error *chain = NULL;
	int rc;

	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_scope_failf(s, -EINVAL, "first");
	reap_fault_alloc(1);
	reap_scope_failf(s, -EPIPE, "second");
	ASSERT_EQ_INT(test_fault_disarm(), 1); /* the link for EPIPE was not made */
	rc = reap_scope_close_err(s, &chain);
	ASSERT_EQ_INT(rc, -EPIPE);
	if (chain != NULL && chain->code != rc)
		test_fail(__FILE__, __LINE__, "close_err returned %s but the "
			  "chain it handed over starts with %s (\"%s\")",
			  reap_errname(rc), reap_errname(chain->code),
			  chain->msg ? chain->msg : "");
	reap_error_free(chain);
}

/* ------------------------------------------------------------------ */
/* REAP_WITH_SCOPE                                                      */

TEST(oom_with_scope_skips_the_body_and_gives_enomem)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *p;
		struct test_snap before;
		long seen;
		int rc = 0, ran = 0;

		ASSERT_LT_INT(n, MAX_N);
		open_ok(NULL, &p); /* no chunk yet */
		runs = 0;
		before = test_snap();
		reap_fault_alloc(n);
		REAP_WITH_SCOPE(s, p, &rc) {
			reap_fault_alloc(0);
			ran = 1;
			ASSERT_OK(reap_defer(s, bump, NULL, NULL));
		}
		seen = test_fault_disarm();
		if (ran) {
			ASSERT_EQ_INT(rc, 0);
			ASSERT_EQ_INT(runs, 1);
			ASSERT_EQ_INT(reap_scope_close(p), 0);
			break;
		}
		failures++;
		ASSERT_FAULT_HIT(n);
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_INT(runs, 0);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap_scope_close(p), 0);
	}
	ASSERT_GE_INT(failures, 1);
}

/* "rc may be NULL: errors then go to the report hook." A block skipped
 * because its scope could not be opened is such an error. */
TEST(oom_with_scope_without_rc_reports_the_open_failure)
{
	reap_scope *p;
	int ran = 0;

	open_ok(NULL, &p);
	test_reports_clear();
	reap_fault_alloc(1);
	REAP_WITH_SCOPE(s, p, NULL) {
		(void)s;
		ran = 1;
	}
	reap_fault_alloc(0);
	ASSERT_EQ_INT(ran, 0);
	ASSERT_EQ_INT(reap_scope_close(p), 0);
	ASSERT_CONTAINS(test_reports(), "ENOMEM");
}
