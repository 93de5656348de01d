/* base: error names, raisef, the allocator hook and its live count, fault
 * injection, REAP_DEBUG, the clock and error chains. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../runner.h"

/* ------------------------------------------------------------------ */
/* Error names                                                          */

TEST(strerror_and_errname_of_success_and_errnos)
{
	ASSERT_EQ_STR(reap_strerror(0), "Success");
	ASSERT_EQ_STR(reap_errname(0), "0");

	ASSERT_EQ_STR(reap_errname(-ENOMEM), "ENOMEM");
	ASSERT_EQ_STR(reap_strerror(-ENOMEM), "Cannot allocate memory");
	ASSERT_EQ_STR(reap_errname(-EINVAL), "EINVAL");
	ASSERT_EQ_STR(reap_strerror(-EINVAL), "Invalid argument");
	ASSERT_EQ_STR(reap_errname(-EIO), "EIO");
	ASSERT_EQ_STR(reap_strerror(-EIO), "Input/output error");
	ASSERT_EQ_STR(reap_errname(-EBUSY), "EBUSY");
	ASSERT_EQ_STR(reap_errname(-ENOENT), "ENOENT");
	ASSERT_EQ_STR(reap_errname(-EPIPE), "EPIPE");
	ASSERT_EQ_STR(reap_errname(-ECANCELED), "ECANCELED");
	ASSERT_EQ_STR(reap_errname(-ETIMEDOUT), "ETIMEDOUT");
	ASSERT_EQ_STR(reap_strerror(-ETIMEDOUT), "Connection timed out");
	ASSERT_EQ_STR(reap_errname(-EBADF), "EBADF");
}

TEST(strerror_and_errname_of_every_reap_code)
{
	static const struct {
		int code;
		const char *name, *word;
	} codes[] = {
		{REAP_ECLOSED, "REAP_ECLOSED", "closed"},
		{REAP_ELEAK, "REAP_ELEAK", "open"},
		{REAP_ECHAINED, "REAP_ECHAINED", "chain"},
	};

	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
		const char *d = reap_strerror(codes[i].code);

		ASSERT_EQ_STR(reap_errname(codes[i].code), codes[i].name);
		ASSERT_CONTAINS(d, codes[i].word);
		ASSERT_TRUE(strcmp(d, "Unknown error") != 0);
		for (size_t j = 0; j < i; j++)
			ASSERT_TRUE(strcmp(d, reap_strerror(codes[j].code)) != 0);
	}
	/* Below every errno value, as the header promises. */
	ASSERT_LT_INT(REAP_ECLOSED, -4095);
	ASSERT_LT_INT(REAP_ECHAINED, REAP_ELEAK);
}

TEST(unknown_codes_have_a_name_and_a_description)
{
	const int unknown[] = {-19999, -(REAP_EBASE), REAP_ELAST,
			       -(REAP_EBASE + 999), INT_MIN, INT_MAX, 4242};

	for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
		ASSERT_EQ_STR(reap_errname(unknown[i]), "E?");
		ASSERT_NOT_NULL(reap_strerror(unknown[i]));
		ASSERT_EQ_STR(reap_strerror(unknown[i]), "Unknown error");
	}
}

TEST(raisef_returns_its_code)
{
	ASSERT_EQ_INT(reap_raisef(-EIO, "disk %s", "sda"), -EIO);
	ASSERT_EQ_INT(reap_raisef(REAP_ECLOSED, "owner %d gone", 3), REAP_ECLOSED);
	ASSERT_EQ_INT(reap_raisef(-ENOMEM, "%s", ""), -ENOMEM);
	ASSERT_EQ_INT(reap_raisef(0, "nothing"), 0);
}

/* ------------------------------------------------------------------ */
/* Allocation                                                           */

static char *helper_path(const char *name)
{
	static char buf[4200];

	snprintf(buf, sizeof buf, "%s/%s", test_bindir(), name);
	if (access(buf, X_OK) != 0)
		test_fail(__FILE__, __LINE__, "helper %s is missing", buf);
	return buf;
}

/* Run helper_alloc in a mode and require it to say "ok" and exit 0. */
static void run_alloc_helper(const char *mode, char *const *env)
{
	char *argv[] = {helper_path("helper_alloc"), (char *)mode, NULL};
	char *out = NULL;
	int st = test_run(argv, env, &out);

	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
	    strstr(out, "helper_alloc: ok") == NULL)
		test_fail(__FILE__, __LINE__,
			  "helper_alloc %s: status 0x%x, output:\n---\n%s---", mode,
			  st, out);
	free(out);
}

/* The hook itself needs a process in which reap has allocated nothing
 * yet (the runner's warm-up leaves the root's chunk live): the helper
 * checks -EINVAL for a partial allocator, -EBUSY while blocks are live,
 * that every allocation of reap goes through the hook, and that NULL
 * restores malloc. */
TEST(allocator_hook_in_a_fresh_process)
{
	run_alloc_helper("hook", NULL);
}

/* Closing a scope keeps its blocks in the per-thread cache "for the next
 * scope" (base.h). A block that the next scope can never take back must
 * not be kept forever: either the allocator gets it back or the next
 * scope of the same shape reuses it. */
TEST(a_big_scope_block_is_reused_or_given_back)
{
	run_alloc_helper("bigblock", NULL);
}

TEST(reap_fault_alloc_env_arms_at_start_up)
{
	char *env[] = {"REAP_FAULT_ALLOC=2", NULL};

	run_alloc_helper("envfault", env);
}

static size_t counting_mallocs;
static void *counting_malloc(void *ctx, size_t n)
{
	(void)ctx;
	counting_mallocs++;
	return malloc(n);
}
static void *counting_realloc(void *ctx, void *p, size_t n)
{
	(void)ctx;
	return realloc(p, n);
}
static void counting_free(void *ctx, void *p)
{
	(void)ctx;
	free(p);
}

TEST(set_allocator_is_refused_while_blocks_are_live)
{
	const reap_allocator a = {counting_malloc, counting_realloc,
				  counting_free, NULL};
	void *p;

	/* The root's chunk is live since the runner's warm-up; add one. */
	ASSERT_NOT_NULL(p = reap_malloc(10));
	ASSERT_GT_INT(reap_alloc_live(), 0);
	ASSERT_EQ_INT(reap_set_allocator(&a), -EBUSY);
	ASSERT_EQ_INT(reap_set_allocator(NULL), -EBUSY);
	/* Nothing changed: the old allocator is still the one in use. */
	counting_mallocs = 0;
	reap_free(reap_malloc(8));
	ASSERT_EQ_SIZE(counting_mallocs, 0);
	reap_free(p);
}

TEST(malloc_calloc_realloc_free_and_the_live_count)
{
	size_t base = reap_alloc_live();
	char *p, *q, *r, *z;

	ASSERT_NOT_NULL(p = reap_malloc(10));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 1);
	memcpy(p, "abcdefghi", 10);

	ASSERT_NOT_NULL(q = reap_calloc(7, 9));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 2);
	for (int i = 0; i < 63; i++)
		ASSERT_EQ_INT(q[i], 0);

	/* realloc keeps the count and the contents. */
	ASSERT_NOT_NULL(p = reap_realloc(p, 100000));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 2);
	ASSERT_EQ_STR(p, "abcdefghi");
	ASSERT_NOT_NULL(p = reap_realloc(p, 3));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 2);
	ASSERT_EQ_INT(memcmp(p, "abc", 3), 0);

	/* realloc(NULL) is malloc. */
	ASSERT_NOT_NULL(r = reap_realloc(NULL, 16));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 3);

	/* Zero bytes is a real, distinct block. */
	ASSERT_NOT_NULL(z = reap_malloc(0));
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 4);

	reap_free(p);
	reap_free(q);
	reap_free(r);
	reap_free(z);
	reap_free(NULL);
	ASSERT_EQ_SIZE(reap_alloc_live(), base);
}

TEST(calloc_overflow_gives_null_and_enomem)
{
	size_t base = reap_alloc_live();

	errno = 0;
	ASSERT_NULL(reap_calloc(SIZE_MAX / 2 + 1, 2));
	ASSERT_EQ_INT(errno, ENOMEM);
	errno = 0;
	ASSERT_NULL(reap_calloc(2, SIZE_MAX / 2 + 1));
	ASSERT_EQ_INT(errno, ENOMEM);
	errno = 0;
	ASSERT_NULL(reap_calloc(SIZE_MAX, SIZE_MAX));
	ASSERT_EQ_INT(errno, ENOMEM);
	ASSERT_EQ_SIZE(reap_alloc_live(), base);
}

TEST(fault_alloc_fails_exactly_the_nth_allocation)
{
	size_t base = reap_alloc_live();
	void *p[6];

	reap_fault_alloc(3);
	ASSERT_EQ_INT(reap_fault_count(), 0);
	for (int i = 0; i < 6; i++) {
		errno = 0;
		p[i] = reap_malloc(32);
		if (i == 2) {
			ASSERT_NULL(p[i]);
			ASSERT_EQ_INT(errno, ENOMEM);
		} else {
			ASSERT_NOT_NULL(p[i]);
		}
		ASSERT_EQ_INT(reap_fault_count(), i + 1);
	}
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 5);
	reap_fault_alloc(0);
	ASSERT_EQ_INT(reap_fault_count(), 0);
	for (int i = 0; i < 6; i++)
		reap_free(p[i]);
	/* Disarmed: nothing fails and nothing is counted. */
	for (int i = 0; i < 100; i++) {
		void *x = reap_malloc(8);

		ASSERT_NOT_NULL(x);
		reap_free(x);
	}
	ASSERT_EQ_INT(reap_fault_count(), 0);
	/* A negative count disarms too. */
	reap_fault_alloc(-3);
	reap_free(reap_malloc(8));
	ASSERT_EQ_INT(reap_fault_count(), 0);
	ASSERT_EQ_SIZE(reap_alloc_live(), base);
}

TEST(fault_alloc_counts_calloc_and_realloc_and_keeps_the_old_block)
{
	size_t base = reap_alloc_live();
	char *p, *q;

	ASSERT_NOT_NULL(p = reap_malloc(8));
	memcpy(p, "1234567", 8);

	reap_fault_alloc(1);
	errno = 0;
	ASSERT_NULL(reap_realloc(p, 4096));
	ASSERT_EQ_INT(errno, ENOMEM);
	ASSERT_EQ_INT(reap_fault_count(), 1);
	ASSERT_EQ_STR(p, "1234567"); /* the old block is still the caller's */
	ASSERT_EQ_SIZE(reap_alloc_live(), base + 1);

	reap_fault_alloc(2);
	ASSERT_NOT_NULL(q = reap_calloc(2, 2));
	errno = 0;
	ASSERT_NULL(reap_calloc(2, 2));
	ASSERT_EQ_INT(errno, ENOMEM);
	ASSERT_EQ_INT(reap_fault_count(), 2);

	/* realloc(NULL) is an allocation like any other. */
	reap_fault_alloc(1);
	errno = 0;
	ASSERT_NULL(reap_realloc(NULL, 64));
	ASSERT_EQ_INT(errno, ENOMEM);
	reap_fault_alloc(0);
	reap_free(q);
	reap_free(p);
	ASSERT_EQ_SIZE(reap_alloc_live(), base);
}

/* ------------------------------------------------------------------ */
/* REAP_DEBUG                                                           */

TEST(debug_set_accepts_known_words_and_rejects_unknown_ones)
{
	ASSERT_OK(reap_debug_set("leaks"));
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS);
	ASSERT_TRUE(reap_ledger_enabled());

	ASSERT_OK(reap_debug_set("leaks:strict"));
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS | REAP_DEBUG_STRICT);

	ASSERT_OK(reap_debug_set("ledger:off"));
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_NOLEDGER);
	ASSERT_FALSE(reap_ledger_enabled());

	ASSERT_OK(reap_debug_set(""));
	ASSERT_EQ_INT(reap_debug_flags(), 0);
	ASSERT_TRUE(reap_ledger_enabled());

	ASSERT_OK(reap_debug_set("leaks,ledger:off"));
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS | REAP_DEBUG_NOLEDGER);
	ASSERT_FALSE(reap_ledger_enabled());

	/* An unknown word changes nothing, alone or among known ones. */
	ASSERT_EQ_INT(reap_debug_set("bogus"), -EINVAL);
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS | REAP_DEBUG_NOLEDGER);
	ASSERT_FALSE(reap_ledger_enabled());
	ASSERT_EQ_INT(reap_debug_set("leaks:strict,bogus"), -EINVAL);
	ASSERT_EQ_INT(reap_debug_set("ledger:on"), -EINVAL);
	ASSERT_EQ_INT(reap_debug_set("leak"), -EINVAL);
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS | REAP_DEBUG_NOLEDGER);
	ASSERT_FALSE(reap_ledger_enabled());

	/* Empty words are skipped. */
	ASSERT_OK(reap_debug_set(",leaks,,"));
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS);
	ASSERT_TRUE(reap_ledger_enabled());

	ASSERT_EQ_INT(reap_debug_set("bogus"), -EINVAL);
	ASSERT_EQ_INT(reap_debug_flags(), REAP_DEBUG_LEAKS);
	ASSERT_TRUE(reap_ledger_enabled());

	ASSERT_OK(reap_debug_set(""));
}

/* ------------------------------------------------------------------ */
/* Clock                                                                */

static uint64_t fake_now(void *ctx)
{
	return *(const uint64_t *)ctx;
}

static uint64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

TEST(set_clock_drives_now_and_null_restores_the_monotonic_clock)
{
	uint64_t t = 123456789012345ull, a, b;

	reap_set_clock(fake_now, &t);
	ASSERT_EQ_SIZE(reap_now_ns(), 123456789012345ull);
	ASSERT_EQ_SIZE(reap_now_ns(), 123456789012345ull); /* time stands */
	t += 2500000000ull;
	ASSERT_EQ_SIZE(reap_now_ns(), 123458789012345ull + 500000000ull);
	t = 7;
	ASSERT_EQ_SIZE(reap_now_ns(), 7);

	reap_set_clock(NULL, NULL);
	a = mono_now();
	b = reap_now_ns();
	ASSERT_TRUE(b >= a);
	ASSERT_TRUE(b - a < 1000000000ull);
	ASSERT_TRUE(reap_now_ns() >= b);
}

/* ------------------------------------------------------------------ */
/* Error chains                                                         */

static int raise_line;
static int seen_code;
static char seen_msg[64];

static int raise_eio(void *arg, const reap_error *in)
{
	(void)arg;
	seen_code = in ? in->code : 0;
	snprintf(seen_msg, sizeof seen_msg, "%s", in && in->msg ? in->msg : "");
	raise_line = __LINE__ + 1;
	return reap_raisef(-EIO, "disk %s", "sda");
}

TEST(error_chain_from_a_failed_scope_and_a_failing_exit_cleanup)
{
	reap_scope *s;
	reap_error *chain = NULL;
	size_t live;
	char *text = NULL;
	size_t len = 0;
	FILE *m;
	char want[512];
	int fail_line;

	ASSERT_EQ_SIZE(reap_error_count(NULL), 0);
	reap_error_free(NULL);

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_name(s, "job"));
	ASSERT_OK(reap_defer_exit(s, NULL, raise_eio, NULL, NULL));
	fail_line = __LINE__ + 1;
	reap_scope_failf(s, -EINVAL, "bad %d", 7);
	ASSERT_EQ_INT(reap_scope_error(s), -EINVAL);
	live = reap_alloc_live();
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EIO);

	/* The cleanup saw the error in flight with its message. */
	ASSERT_EQ_INT(seen_code, -EINVAL);
	ASSERT_EQ_STR(seen_msg, "bad 7");

	ASSERT_NOT_NULL(chain);
	ASSERT_EQ_SIZE(reap_error_count(chain), 2);
	ASSERT_EQ_SIZE(reap_error_count(chain->cause), 1);
	ASSERT_EQ_INT(chain->code, -EIO);
	ASSERT_EQ_STR(chain->msg, "disk sda");
	ASSERT_NOT_NULL(chain->site);
	ASSERT_CONTAINS(chain->site->file, "test_base.c");
	ASSERT_EQ_INT(chain->site->line, raise_line);
	ASSERT_EQ_STR(chain->site->func, "raise_eio");
	ASSERT_EQ_STR(chain->where, "root/job");
	ASSERT_EQ_INT(chain->cause->code, -EINVAL);
	ASSERT_EQ_STR(chain->cause->msg, "bad 7");
	ASSERT_EQ_INT(chain->cause->site->line, fail_line);
	ASSERT_EQ_STR(chain->cause->where, "root/job");
	ASSERT_NULL(chain->cause->cause);

	ASSERT_NOT_NULL(m = open_memstream(&text, &len));
	reap_error_print(chain, m);
	fclose(m);
	ASSERT_CONTAINS(text, "error chain of 2, newest first");
	ASSERT_CONTAINS(text, "EIO (Input/output error): disk sda");
	snprintf(want, sizeof want, "test_base.c:%d in raise_eio()", raise_line);
	ASSERT_CONTAINS(text, want);
	ASSERT_CONTAINS(text, "owner root/job");
	ASSERT_CONTAINS(text, "EINVAL (Invalid argument): bad 7");
	snprintf(want, sizeof want, "test_base.c:%d in ", fail_line);
	ASSERT_CONTAINS(text, want);
	/* Newest first. */
	ASSERT_TRUE(strstr(text, "EIO (") < strstr(text, "EINVAL ("));
	free(text);

	/* The chain is the caller's memory until freed. */
	ASSERT_TRUE(reap_alloc_live() >= 1);
	reap_error_free(chain);
	ASSERT_TRUE(reap_alloc_live() < live);
}

TEST(a_single_error_prints_on_its_own)
{
	reap_scope *s;
	reap_error *chain = NULL;
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_scope_failf(s, -ETIMEDOUT, "no answer in %d s", 5);
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -ETIMEDOUT);
	ASSERT_EQ_SIZE(reap_error_count(chain), 1);
	ASSERT_NOT_NULL(m = open_memstream(&text, &len));
	reap_error_print(chain, m);
	fclose(m);
	ASSERT_CONTAINS(text, "ETIMEDOUT (Connection timed out): no answer in 5 s");
	ASSERT_TRUE(strstr(text, "error chain of") == NULL);
	free(text);
	reap_error_free(chain);

	/* A close without error hands over no chain. */
	ASSERT_OK(reap_scope_open(NULL, &s));
	chain = (reap_error *)&chain;
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), 0);
	ASSERT_NULL(chain);
}

/* "The message is kept in thread-local storage and picked up by the scope
 * whose cleanup returns this code; elsewhere it is ignored." A raisef
 * whose code went elsewhere must not label an unrelated later error. */
static int plain_eio(void *arg, const reap_error *in)
{
	(void)arg;
	(void)in;
	return -EIO;
}

static int stale_helper(void)
{
	return reap_raisef(-EIO, "stale message from another place");
}

TEST(a_raisef_message_that_went_elsewhere_does_not_label_a_later_error)
{
	reap_scope *s;
	reap_error *chain = NULL;

	/* The caller handles this error itself; no scope fails with it. */
	ASSERT_EQ_INT(stale_helper(), -EIO);

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_defer_exit(s, NULL, plain_eio, NULL, NULL));
	ASSERT_EQ_INT(reap_scope_close_err(s, &chain), -EIO);
	ASSERT_EQ_SIZE(reap_error_count(chain), 1);
	if (chain->msg != NULL)
		test_fail(__FILE__, __LINE__,
			  "the cleanup's plain -EIO got the message \"%s\" raised "
			  "at %s:%d by unrelated code", chain->msg,
			  chain->site ? chain->site->file : "?",
			  chain->site ? chain->site->line : 0);
	reap_error_free(chain);
}

/* REAP_WITH_SCOPE: "rc may be NULL: errors then go to the report hook."
 * A lone error at close, with nobody to return it to, must be reported. */
TEST(with_scope_without_rc_reports_a_lone_close_error)
{
	test_reports_clear();
	REAP_WITH_SCOPE(s, NULL, NULL) {
		ASSERT_OK(reap_defer_exit(s, NULL, raise_eio, NULL, NULL));
	}
	ASSERT_CONTAINS(test_reports(), "EIO");
	ASSERT_CONTAINS(test_reports(), "disk sda");
}

/* Blocks reap keeps for reuse (the block cache, the quarantine of closed
 * scopes) came from the allocator in force: a switch must not leave them
 * to be freed later by another allocator. Here the root also holds a
 * chunk, so the switch is refused and nothing changes. */
static size_t freed_by_counting;

static void *c_malloc(void *ctx, size_t n) { (void)ctx; return malloc(n); }
static void *c_realloc(void *ctx, void *p, size_t n) { (void)ctx; return realloc(p, n); }
static void c_free(void *ctx, void *p) { (void)ctx; freed_by_counting++; free(p); }
static void nothing(void *arg) { (void)arg; }

TEST(switching_allocators_is_refused_while_reap_holds_blocks)
{
	reap_allocator counting = {c_malloc, c_realloc, c_free, NULL};
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	for (int i = 0; i < 3000; i++)
		ASSERT_OK(reap_defer(s, nothing, NULL, NULL));
	ASSERT_NOT_NULL(reap_scope_alloc(s, 100));
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	freed_by_counting = 0;
	ASSERT_EQ_INT(reap_set_allocator(&counting), -EBUSY);
	ASSERT_OK(reap_scope_open(NULL, &s)); /* still the old allocator */
	ASSERT_EQ_INT(reap_scope_close(s), 0);
	ASSERT_EQ_SIZE(freed_by_counting, 0);
}
