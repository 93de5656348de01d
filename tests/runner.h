/*
 * A small test runner in the manner of libuv's: each test runs in its own
 * process under a time limit, assertions are typed and print both sides,
 * and every test ends with the runner checking that the ledger holds no
 * live resource and that every block from reap's allocator was freed.
 *
 *     TEST(scope_lifo) { ... ASSERT_EQ_INT(order[0], 3); }
 *
 * `prog` runs every test, each in a forked child; `prog NAME` runs one in
 * this process (ctest does that, one test per entry); `prog --list`.
 */
#ifndef REAP_TEST_RUNNER_H
#define REAP_TEST_RUNNER_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>

#include "reap.h"

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);

#define TEST(name)                                                          \
	static void test_##name(void);                                      \
	__attribute__((constructor)) static void test_reg_##name(void)      \
	{                                                                   \
		test_register(#name, test_##name, __FILE__);                \
	}                                                                   \
	static void test_##name(void)

void test_fail(const char *file, int line, const char *fmt, ...)
	__attribute__((noreturn, format(printf, 3, 4)));

#define ASSERT_TRUE(c)                                                      \
	do {                                                                \
		if (!(c))                                                   \
			test_fail(__FILE__, __LINE__, "expected true: %s", #c); \
	} while (0)

#define ASSERT_FALSE(c)                                                     \
	do {                                                                \
		if (c)                                                      \
			test_fail(__FILE__, __LINE__, "expected false: %s", #c); \
	} while (0)

#define ASSERT_CMP_(a, op, b, T, fmt)                                       \
	do {                                                                \
		T a_ = (a);                                                 \
		T b_ = (b);                                                 \
		if (!(a_ op b_))                                            \
			test_fail(__FILE__, __LINE__,                       \
				  "%s %s %s: " fmt " vs " fmt, #a, #op, #b, \
				  a_, b_);                                  \
	} while (0)

#define ASSERT_EQ_INT(a, b) ASSERT_CMP_(a, ==, b, long long, "%lld")
#define ASSERT_NE_INT(a, b) ASSERT_CMP_(a, !=, b, long long, "%lld")
#define ASSERT_LT_INT(a, b) ASSERT_CMP_(a, <, b, long long, "%lld")
#define ASSERT_LE_INT(a, b) ASSERT_CMP_(a, <=, b, long long, "%lld")
#define ASSERT_GT_INT(a, b) ASSERT_CMP_(a, >, b, long long, "%lld")
#define ASSERT_GE_INT(a, b) ASSERT_CMP_(a, >=, b, long long, "%lld")
#define ASSERT_EQ_SIZE(a, b) ASSERT_CMP_(a, ==, b, unsigned long long, "%llu")
#define ASSERT_EQ_PTR(a, b) ASSERT_CMP_(a, ==, b, const void *, "%p")
#define ASSERT_NE_PTR(a, b) ASSERT_CMP_(a, !=, b, const void *, "%p")
#define ASSERT_NULL(a) ASSERT_EQ_PTR(a, NULL)
#define ASSERT_NOT_NULL(a) ASSERT_NE_PTR(a, NULL)

/* An int return that must be 0; prints the code's name on failure. */
#define ASSERT_OK(expr)                                                     \
	do {                                                                \
		int rc_ = (expr);                                           \
		if (rc_ != 0)                                               \
			test_fail(__FILE__, __LINE__, "%s returned %d (%s: %s)", \
				  #expr, rc_, reap_errname(rc_),            \
				  reap_strerror(rc_));                      \
	} while (0)

#define ASSERT_EQ_STR(a, b)                                                 \
	do {                                                                \
		const char *a_ = (a), *b_ = (b);                            \
		if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)        \
			test_fail(__FILE__, __LINE__, "%s == %s: \"%s\" vs \"%s\"", \
				  #a, #b, a_ ? a_ : "(null)", b_ ? b_ : "(null)"); \
	} while (0)

#define ASSERT_CONTAINS(hay, needle)                                        \
	do {                                                                \
		const char *h_ = (hay), *n_ = (needle);                     \
		if (h_ == NULL || strstr(h_, n_) == NULL)                   \
			test_fail(__FILE__, __LINE__,                       \
				  "%s does not contain \"%s\":\n---\n%s\n---", \
				  #hay, n_, h_ ? h_ : "(null)");             \
	} while (0)

/* Skip the current test, saying why. */
void test_skip(const char *why) __attribute__((noreturn));

/*
 * Run fn(arg) in a forked child whose misuse hook records the message.
 * Returns the message (static buffer) if the child hit misuse, or NULL if
 * fn returned normally.
 */
const char *test_expect_misuse(void (*fn)(void *), void *arg);

/*
 * Run a program (argv[0] is a path) with extra environment entries
 * (NULL-terminated "K=V" list, may be NULL), capture its stdout+stderr
 * into a malloc'd string and return its wait status.
 */
int test_run(char *const argv[], char *const env[], char **output);

/* Directory of the running test binary, for finding helper programs. */
const char *test_bindir(void);

/* Capture everything the report hook receives while the test runs. */
const char *test_reports(void);
void test_reports_clear(void);

/* The baseline of reap_alloc_live() at the start of the test. */
extern size_t test_alloc_base;

/* An integer test parameter from the environment (stress tests: thread
 * and iteration counts), dflt if unset; a value outside [lo, hi] fails
 * the test. */
long test_env_long(const char *name, long dflt, long lo, long hi);

/*
 * Allocation-failure sweeps. test_snap() takes what a failed call must
 * leave unchanged (live resources, live blocks), ASSERT_UNCHANGED checks
 * it; test_fault_disarm() stops injecting and returns how many
 * acquisitions were counted since the arming, so that a failure can be
 * pinned on the call.
 */
struct test_snap {
	size_t count, live;
};
struct test_snap test_snap(void);
long test_fault_disarm(void);
#define ASSERT_UNCHANGED(before)                                            \
	do {                                                                \
		ASSERT_EQ_SIZE(reap_ledger_count(), (before).count);        \
		ASSERT_EQ_SIZE(reap_alloc_live(), (before).live);           \
	} while (0)

/* Descriptors open in this process (for tests that check none leaks). */
int test_fd_count(void);

/* For tests that start processes: TEST_PROCS_BEGIN() notes the open
 * descriptors; TEST_PROCS_END() asserts that no child is left to reap
 * and that no descriptor leaked. */
extern int test_fds_at_start;
#define TEST_PROCS_BEGIN() (test_fds_at_start = test_fd_count())
#define TEST_PROCS_END()                                                    \
	do {                                                                \
		ASSERT_EQ_INT(waitpid(-1, NULL, WNOHANG), -1);              \
		ASSERT_EQ_INT(test_fd_count(), test_fds_at_start);          \
	} while (0)

/* Fork a child that runs fn(arg) and _exit()s with its result, or with
 * TEST_CHILD_LEAKED (after printing its ledger) if fn returned with any
 * live resource in the child's ledger; wait for one, returning its exit
 * status (128 + the signal when killed). */
#define TEST_CHILD_LEAKED 98
pid_t test_fork(int (*fn)(void *), void *arg);
int test_wait(pid_t pid);

/*
 * The SIGKILLed-owner pattern. test_owner_start() makes this process a
 * child subreaper and runs the helper program bindir/name with its
 * stdout on a pipe, read through *out. test_owner_kill() SIGKILLs and
 * reaps it, returning the time it did so; test_wait_adopted() waits for
 * an orphan that came to us and returns its wait status, failing the
 * test if it is not gone within limit_ns of that time; test_owner_end()
 * closes *out and stops being the subreaper.
 */
pid_t test_owner_start(const char *name, FILE **out);
uint64_t test_owner_kill(pid_t owner);
int test_wait_adopted(pid_t pid, uint64_t since_ns, uint64_t limit_ns);
void test_owner_end(FILE *out);

#endif
