/* The test runner; see runner.h. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdarg.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner.h"

#define MAX_TESTS 512
#define TIMEOUT_S 60

static struct {
	const char *name, *file;
	test_fn fn;
} tests[MAX_TESTS];
static int ntests;
static const char *current;
size_t test_alloc_base;

void test_register(const char *name, test_fn fn, const char *file)
{
	if (ntests == MAX_TESTS) {
		fprintf(stderr, "runner: too many tests\n");
		exit(2);
	}
	tests[ntests].name = name;
	tests[ntests].file = file;
	tests[ntests++].fn = fn;
}

void test_fail(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL %s at %s:%d: ", current ? current : "?", file, line);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	_exit(1);
}

void test_skip(const char *why)
{
	printf("SKIP %s: %s\n", current, why);
	fflush(stdout);
	_exit(77);
}

static char *reports;
static size_t reports_len;

static pid_t test_pid;

static void capture_report(const char *text, void *ctx)
{
	size_t n = strlen(text);
	char *p;

	(void)ctx;
	/* A forked child's reports (its leak report at exit above all)
	 * would die with its copy of the buffer: they go to stderr too. */
	if (getpid() != test_pid)
		fputs(text, stderr);
	p = realloc(reports, reports_len + n + 1);
	if (p == NULL)
		return;
	memcpy(p + reports_len, text, n + 1);
	reports = p;
	reports_len += n;
}

const char *test_reports(void) { return reports ? reports : ""; }

void test_reports_clear(void)
{
	free(reports);
	reports = NULL;
	reports_len = 0;
}

/* Run one test in this process, then the checks every test ends with. */
static int run_here(int i)
{
	size_t live;

	current = tests[i].name;
	test_pid = getpid();
	reap_set_report_hook(capture_report, NULL);
	/* Strict leak checks at exit, unless the environment asks for
	 * something else: a child of reap_proc_spawn's function path (or
	 * any child that calls exit()) that leaves a resource open exits
	 * with REAP_LEAK_EXIT_CODE, which the test sees as its status. */
	if (getenv("REAP_DEBUG") == NULL && reap_debug_set("leaks:strict") != 0)
		return 1;
	{
		/* The process root keeps the first chunk of its cleanup
		 * stack once it has one; make it exist before the baseline. */
		reap_scope *warm;

		if (reap_scope_open(NULL, &warm) == 0)
			reap_scope_close(warm);
	}
	test_alloc_base = reap_alloc_live();
	alarm(TIMEOUT_S);
	tests[i].fn();
	alarm(0);
	reap_fault_alloc(0);
	if ((live = reap_ledger_count()) != 0) {
		fprintf(stderr, "FAIL %s: the ledger holds %zu live resource(s) at "
				"the end of the test:\n", current, live);
		reap_ledger_report(stderr, REAP_REPORT_TREE | REAP_REPORT_STATS);
		return 1;
	}
	if (reap_alloc_live() != test_alloc_base) {
		fprintf(stderr, "FAIL %s: %zu block(s) from reap's allocator at the "
				"start, %zu at the end\n", current, test_alloc_base,
			reap_alloc_live());
		return 1;
	}
	printf("ok %s\n", current);
	fflush(stdout);
	return 0;
}

static int run_forked(int i)
{
	pid_t pid;
	int st;

	fflush(NULL);
	if ((pid = fork()) < 0)
		return 1;
	if (pid == 0)
		_exit(run_here(i));
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	fprintf(stderr, "FAIL %s: killed by signal %d%s\n", tests[i].name,
		WTERMSIG(st), WTERMSIG(st) == SIGALRM ? " (time limit)" : "");
	return 1;
}

static char bindir[4096];

const char *test_bindir(void) { return bindir; }

int main(int argc, char **argv)
{
	int failed = 0, passed = 0, skipped = 0;
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);

	if (n > 0) {
		self[n] = '\0';
		snprintf(bindir, sizeof bindir, "%s", dirname(self));
	}
	if (argc > 1 && strcmp(argv[1], "--list") == 0) {
		for (int i = 0; i < ntests; i++)
			printf("%s\n", tests[i].name);
		return 0;
	}
	if (argc > 1) {
		for (int i = 0; i < ntests; i++)
			if (strcmp(tests[i].name, argv[1]) == 0)
				return run_here(i);
		fprintf(stderr, "runner: no test named %s\n", argv[1]);
		return 2;
	}
	for (int i = 0; i < ntests; i++) {
		int rc = run_forked(i);

		if (rc == 0)
			passed++;
		else if (rc == 77)
			skipped++;
		else
			failed++;
	}
	printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
	return failed ? 1 : 0;
}

/* ------------------------------------------------------------------ */

static int misuse_pipe = -1;

static void misuse_to_pipe(const char *msg, void *ctx)
{
	(void)ctx;
	if (write(misuse_pipe, msg, strlen(msg)) < 0) {
		/* nothing to do: the parent sees an empty message */
	}
	_exit(99);
}

const char *test_expect_misuse(void (*fn)(void *), void *arg)
{
	static char msg[2048];
	int p[2], st;
	pid_t pid;
	ssize_t n, off = 0;

	if (pipe(p) < 0)
		test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) == 0) {
		close(p[0]);
		misuse_pipe = p[1];
		reap_set_misuse_hook(misuse_to_pipe, NULL);
		fn(arg);
		_exit(0);
	}
	close(p[1]);
	while ((n = read(p[0], msg + off, sizeof msg - 1 - (size_t)off)) > 0)
		off += n;
	msg[off] = '\0';
	close(p[0]);
	waitpid(pid, &st, 0);
	if (WIFEXITED(st) && WEXITSTATUS(st) == 99)
		return msg;
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
		return NULL;
	test_fail(__FILE__, __LINE__, "misuse child ended with status 0x%x", st);
}

int test_run(char *const argv[], char *const env[], char **output)
{
	int p[2], st;
	pid_t pid;
	char *buf = NULL;
	size_t len = 0, cap = 0;
	char tmp[4096];
	ssize_t n;

	if (pipe(p) < 0)
		test_fail(__FILE__, __LINE__, "pipe: %s", strerror(errno));
	fflush(NULL);
	if ((pid = fork()) == 0) {
		dup2(p[1], 1);
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		for (int i = 0; env && env[i]; i++)
			putenv(env[i]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(p[1]);
	while ((n = read(p[0], tmp, sizeof tmp)) > 0) {
		if (len + (size_t)n + 1 > cap) {
			cap = (len + (size_t)n + 1) * 2;
			buf = realloc(buf, cap);
		}
		memcpy(buf + len, tmp, (size_t)n);
		len += (size_t)n;
	}
	close(p[0]);
	if (buf == NULL)
		buf = calloc(1, 1);
	else
		buf[len] = '\0';
	waitpid(pid, &st, 0);
	*output = buf;
	return st;
}

long test_env_long(const char *name, long dflt, long lo, long hi)
{
	const char *v = getenv(name);
	char *end;
	long n;

	if (v == NULL || *v == '\0')
		return dflt;
	n = strtol(v, &end, 10);
	if (*end != '\0' || n < lo || n > hi)
		test_fail(__FILE__, __LINE__, "%s=%s: want an integer in [%ld, %ld]",
			  name, v, lo, hi);
	return n;
}

struct test_snap test_snap(void)
{
	struct test_snap s = {reap_ledger_count(), reap_alloc_live()};

	return s;
}

long test_fault_disarm(void)
{
	long seen = reap_fault_count();

	reap_fault_alloc(0);
	return seen;
}

int test_fds_at_start;

int test_fd_count(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ASSERT_NOT_NULL(d);
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory's own */
}

pid_t test_fork(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(NULL);
	pid = fork();
	ASSERT_GE_INT(pid, 0);
	if (pid == 0) {
		int rc = fn(arg);
		size_t live = reap_ledger_count();

		/* _exit() runs no check of its own: a child that returns
		 * must have closed what it made (the inherited is not in
		 * its ledger). */
		if (live != 0) {
			fprintf(stderr, "FAIL %s: a forked child returned %d with "
					"%zu live resource(s) in its ledger:\n",
				current ? current : "?", rc, live);
			reap_ledger_report(stderr, REAP_REPORT_TREE | REAP_REPORT_STATS);
			fflush(stderr);
			_exit(TEST_CHILD_LEAKED);
		}
		_exit(rc);
	}
	return pid;
}

int test_wait(pid_t pid)
{
	int st;

	while (waitpid(pid, &st, 0) < 0)
		ASSERT_EQ_INT(errno, EINTR);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

pid_t test_owner_start(const char *name, FILE **out)
{
	char helper[4096 + 64];
	int p[2];
	pid_t h;

	snprintf(helper, sizeof helper, "%s/%s", bindir, name);
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_OK(pipe2(p, O_CLOEXEC));
	fflush(NULL);
	h = fork();
	ASSERT_GE_INT(h, 0);
	if (h == 0) {
		dup2(p[1], 1);
		execl(helper, helper, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = fdopen(p[0], "r");
	ASSERT_NOT_NULL(*out);
	return h;
}

uint64_t test_owner_kill(pid_t owner)
{
	uint64_t t0 = reap_now_ns();
	int st;

	ASSERT_OK(kill(owner, SIGKILL));
	ASSERT_EQ_INT(waitpid(owner, &st, 0), owner);
	ASSERT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	return t0;
}

int test_wait_adopted(pid_t pid, uint64_t since_ns, uint64_t limit_ns)
{
	int st;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			return st;
		ASSERT_EQ_INT(r, 0);
		ASSERT_LT_INT(reap_now_ns() - since_ns, limit_ns);
		usleep(2000);
	}
}

void test_owner_end(FILE *out)
{
	fclose(out);
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 0));
}
