/*
 * Scoped child processes: spawning, stdio, waiting, the close sequence
 * (terminate, grace, kill, reap), dying with the parent, the fork rule
 * and at-fork hooks. Every test also ends with no zombie child, no fd
 * left open and, through the runner, an empty ledger.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../runner.h"

#define OPTS(...) (&(reap_proc_opts){__VA_ARGS__})

/* No child of ours is left, running or zombie. */
static void assert_no_children(void)
{
	int st;
	pid_t r = waitpid(-1, &st, WNOHANG);

	ASSERT_EQ_INT(r, -1);
	ASSERT_EQ_INT(errno, ECHILD);
}

static int fds_at_start;
#define BEGIN() (fds_at_start = test_fd_count())
#define END()                                              \
	do {                                               \
		assert_no_children();                      \
		ASSERT_EQ_INT(test_fd_count(), fds_at_start);  \
	} while (0)

static uint64_t ms(uint64_t n) { return n * 1000000ull; }

static int alive(pid_t pid)
{
	char path[64], buf[256];
	FILE *f;
	char state = '?';

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	if (fgets(buf, sizeof buf, f) != NULL) {
		char *p = strrchr(buf, ')');

		if (p != NULL && p[1] == ' ')
			state = p[2];
	}
	fclose(f);
	return state != 'Z' && state != 'X' && state != '?';
}

/* Spawn with o in a fresh scope, wait for its end, close the scope. */
static reap_proc_status run_to_end(const reap_proc_opts *o)
{
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, o, &p));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_OK(reap_scope_close(s));
	return st;
}

static char *read_all(int fd)
{
	static char buf[4096];
	size_t n = 0;
	ssize_t r;

	while (n < sizeof buf - 1 && (r = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return buf;
}

/* ------------------------------------------------------------------ */

TEST(argv_exit_status)
{
	const char *argv[] = {"sh", "-c", "exit 7", NULL};
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.argv = argv), &p));
	ASSERT_GT_INT(reap_proc_pid(p), 0);
	ASSERT_GE_INT(reap_proc_pidfd(p), 0);
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 7);
	ASSERT_FALSE(st.killed);
	/* A second wait gives the same status; signals now fail cleanly. */
	memset(&st, 0, sizeof st);
	ASSERT_OK(reap_proc_wait(p, 0, &st));
	ASSERT_EQ_INT(st.code, 7);
	ASSERT_EQ_INT(reap_proc_signal(p, SIGTERM), -ESRCH);
	ASSERT_OK(reap_scope_close(s));
	END();
}

static int fn_exit42(reap_scope *root, void *arg)
{
	int fd = *(int *)arg;

	/* The child's reap: an empty root, current, nothing counted. */
	if (root != reap_scope_current() || reap_ledger_count() != 0)
		return 1;
	if (reap_fork_parent() != getppid())
		return 2;
	/* Left in the root: closed by the child's exit sequence (on
	 * purpose, so not a leak to report under the runner's strict
	 * check). */
	if (reap_debug_set("") != 0 || reap_defer_fd(root, fd, NULL) != 0)
		return 3;
	if (write(fd, "x", 1) != 1)
		return 4;
	return 42;
}

TEST(fn_child_runs_with_its_own_root)
{
	int pfd[2];
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p;
	char c;

	BEGIN();
	ASSERT_OK(pipe2(pfd, O_CLOEXEC));
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_exit42, .arg = &pfd[1]),
				  &p));
	close(pfd[1]);
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 42);
	/* The child's root closed its copy of the write end: EOF after x. */
	ASSERT_EQ_INT(read(pfd[0], &c, 1), 1);
	ASSERT_EQ_INT(read(pfd[0], &c, 1), 0);
	close(pfd[0]);
	ASSERT_OK(reap_scope_close(s));
	END();
}

TEST(exec_failure_is_the_spawn_error)
{
	const char *a1[] = {"/nonexistent/prog", NULL};
	const char *a2[] = {"reap-no-such-program-xyz", NULL};
	const char *a3[] = {"/etc/passwd", NULL};
	const char *a4[] = {"true", NULL};
	reap_proc *p = (reap_proc *)&p;

	BEGIN();
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = a1), &p), -ENOENT);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = a2), &p), -ENOENT);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = a3), &p), -EACCES);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = a4,
							       .cwd = "/nonexistent"), &p),
		      -ENOENT);
	ASSERT_EQ_PTR(p, (reap_proc *)&p); /* untouched */
	ASSERT_EQ_SIZE(reap_ledger_count(), 0);
	END();
}

static int fn_nop(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	return 0;
}

TEST(bad_input)
{
	const char *argv[] = {"true", NULL};
	const char *empty[] = {NULL};
	reap_proc *p = NULL;

	BEGIN();
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(0), &p), -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = argv, .fn = fn_nop),
				      &p), -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = empty), &p), -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(
				      .argv = argv,
				      .stdio[1] = {.mode = (reap_stdio_mode)99}), &p),
		      -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(
				      .argv = argv, .stdio[1] = {.mode = REAP_STDIO_FILE}),
				      &p), -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(
				      .argv = argv, .stdio[0] = {.mode = REAP_STDIO_FD,
								 .fd = -1}), &p),
		      -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = argv,
							       .term_signal = 999), &p),
		      -EINVAL);
	ASSERT_EQ_INT(reap_proc_spawn(NULL, OPTS(.argv = argv, .death_signal = -1), &p),
		      -EINVAL);
	ASSERT_NULL(p);
	END();
}

TEST(close_terminates_and_reaps)
{
	const char *argv[] = {"sleep", "100", NULL};
	reap_scope *s;
	reap_proc *p;
	pid_t pid;
	uint64_t t0;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.argv = argv), &p));
	pid = reap_proc_pid(p);
	ASSERT_TRUE(alive(pid));
	ASSERT_EQ_INT(reap_proc_wait(p, reap_now_ns() + ms(50), NULL), -ETIMEDOUT);
	t0 = reap_now_ns();
	ASSERT_OK(reap_scope_close(s));
	/* SIGTERM ended it: no grace period was spent. */
	ASSERT_LT_INT(reap_now_ns() - t0, ms(1500));
	ASSERT_FALSE(alive(pid));
	ASSERT_EQ_INT(kill(pid, 0), -1);
	END();
}

static int fn_ignore_term(reap_scope *root, void *arg)
{
	int fd = *(int *)arg;

	(void)root;
	signal(SIGTERM, SIG_IGN);
	if (write(fd, "r", 1) != 1)
		return 1;
	for (;;)
		pause();
	return 0;
}

TEST(child_ignoring_sigterm_is_killed_after_grace)
{
	int pfd[2];
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p, *q;
	char c;
	uint64_t t0, dt;

	BEGIN();
	ASSERT_OK(pipe2(pfd, O_CLOEXEC));
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_ignore_term,
						       .arg = &pfd[1],
						       .grace_ns = ms(200)), &p));
	ASSERT_EQ_INT(read(pfd[0], &c, 1), 1); /* SIGTERM is ignored now */
	t0 = reap_now_ns();
	ASSERT_OK(reap_proc_stop(p, &st));
	dt = reap_now_ns() - t0;
	ASSERT_GE_INT(dt, ms(190));
	ASSERT_TRUE(st.killed);
	ASSERT_FALSE(st.exited);
	ASSERT_EQ_INT(st.signal, SIGKILL);

	/* The same through the scope's close. */
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_ignore_term,
						       .arg = &pfd[1],
						       .grace_ns = ms(200)), &q));
	ASSERT_EQ_INT(read(pfd[0], &c, 1), 1);
	t0 = reap_now_ns();
	test_reports_clear();
	ASSERT_OK(reap_scope_close(s));
	ASSERT_GE_INT(reap_now_ns() - t0, ms(190));
	/* Its status went with it: the close says what happened. */
	ASSERT_CONTAINS(test_reports(), "killed with SIGKILL");
	ASSERT_CONTAINS(test_reports(), "test_proc.c:");
	close(pfd[0]);
	close(pfd[1]);
	END();
}

TEST(stdio_pipes)
{
	const char *argv[] = {"cat", NULL};
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(
					  .argv = argv,
					  .stdio = {{.mode = REAP_STDIO_PIPE},
						    {.mode = REAP_STDIO_PIPE},
						    {.mode = REAP_STDIO_NULL}}),
				  &p));
	ASSERT_GE_INT(reap_proc_stdio(p, 0), 0);
	ASSERT_GE_INT(reap_proc_stdio(p, 1), 0);
	ASSERT_EQ_INT(reap_proc_stdio(p, 2), -1);
	ASSERT_EQ_INT(reap_proc_stdio(p, 3), -1);
	ASSERT_EQ_INT(write(reap_proc_stdio(p, 0), "hello", 5), 5);
	reap_proc_stdio_close(p, 0); /* EOF: cat ends */
	reap_proc_stdio_close(p, 0); /* twice is harmless */
	ASSERT_EQ_STR(read_all(reap_proc_stdio(p, 1)), "hello");
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 0);
	ASSERT_OK(reap_scope_close(s));
	END();
}

TEST(stdio_file_null_fd_and_cwd)
{
	const char *argv[] = {"sh", "-c", "pwd; echo err >&2; cat", NULL};
	char path[] = "/tmp/reap-proc-XXXXXX";
	int fd, in[2];
	reap_proc_status st;
	reap_proc *p;
	reap_scope *s;
	char buf[256];
	ssize_t n;

	BEGIN();
	fd = mkstemp(path);
	ASSERT_GE_INT(fd, 0);
	close(fd);
	ASSERT_OK(pipe2(in, O_CLOEXEC));
	ASSERT_EQ_INT(write(in[1], "fromfd\n", 7), 7);
	close(in[1]);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(
					  .argv = argv, .cwd = "/",
					  .stdio = {{.mode = REAP_STDIO_FD, .fd = in[0]},
						    {.mode = REAP_STDIO_FILE, .path = path},
						    {.mode = REAP_STDIO_NULL}}),
				  &p));
	close(in[0]);
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_EQ_INT(st.code, 0);
	fd = open(path, O_RDONLY);
	ASSERT_GE_INT(fd, 0);
	n = read(fd, buf, sizeof buf - 1);
	ASSERT_GE_INT(n, 0);
	buf[n] = '\0';
	close(fd);
	unlink(path);
	ASSERT_EQ_STR(buf, "/\nfromfd\n");
	ASSERT_OK(reap_scope_close(s));
	END();
}

TEST(exit_by_signal)
{
	const char *argv[] = {"sh", "-c", "kill -9 $$", NULL};
	reap_proc_status st;

	BEGIN();
	st = run_to_end(OPTS(.argv = argv));
	ASSERT_FALSE(st.exited);
	ASSERT_EQ_INT(st.signal, SIGKILL);
	ASSERT_FALSE(st.killed); /* not reap's doing */
	END();
}

TEST(signal_reaches_the_child)
{
	const char *argv[] = {"sleep", "100", NULL};
	reap_proc_status st;
	reap_proc *p;
	reap_scope *s;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.argv = argv), &p));
	ASSERT_OK(reap_proc_signal(p, SIGUSR1));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_EQ_INT(st.signal, SIGUSR1);
	ASSERT_EQ_INT(reap_proc_signal(p, SIGUSR1), -ESRCH);
	ASSERT_OK(reap_scope_close(s));
	END();
}

/* A program that reaps with waitpid(-1) behind reap's back (or ignores
 * SIGCHLD) takes the status: reap's wait must still end. */
TEST(someone_else_reaped_it)
{
	const char *argv[] = {"true", NULL};
	reap_proc_status st;
	reap_proc *p;
	reap_scope *s;
	struct pollfd pfd;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.argv = argv), &p));
	pfd = (struct pollfd){reap_proc_pidfd(p), POLLIN, 0};
	ASSERT_EQ_INT(poll(&pfd, 1, 5000), 1);
	ASSERT_EQ_INT(waitpid(-1, NULL, 0), reap_proc_pid(p));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_EQ_INT(st.code, -1);
	ASSERT_OK(reap_scope_close(s));
	END();
}

/* ------------------------------------------------------------------ */
/* Dying with the parent                                                */

struct from_thread {
	reap_scope *owner;
	reap_proc *p;
	int rc;
};

static void *spawn_then_exit(void *arg)
{
	struct from_thread *ft = arg;
	const char *argv[] = {"sleep", "100", NULL};

	ft->rc = reap_proc_spawn(ft->owner, OPTS(.argv = argv), &ft->p);
	return NULL;
}

TEST(child_outlives_the_thread_that_spawned_it)
{
	struct from_thread ft = {0};
	reap_thread *t;
	reap_scope *s;
	pid_t pid;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ft.owner = s;
	ASSERT_OK(reap_thread_spawn(NULL, spawn_then_exit, &ft, &t));
	ASSERT_OK(reap_thread_join(t, NULL, NULL));
	ASSERT_OK(ft.rc);
	pid = reap_proc_pid(ft.p);
	/* The spawning thread is gone; PR_SET_PDEATHSIG would have killed a
	 * child it forked. */
	usleep(300000);
	ASSERT_TRUE(alive(pid));
	ASSERT_EQ_INT(reap_proc_wait(ft.p, 0, NULL), -ETIMEDOUT);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_FALSE(alive(pid));
	END();
}

/* The helper spawns children (an argv one and a fn one, from a thread
 * that then exits), prints their pids and waits; we SIGKILL it. As the
 * subreaper, the orphans come to us: each must be dead within 1 s. */
TEST(children_die_when_the_parent_is_killed)
{
	pid_t h, kids[8];
	int nkids = 0, st;
	FILE *f;
	char line[64];
	uint64_t t0;

	BEGIN();
	h = test_owner_start("helper_orphan", &f);
	while (nkids < 8 && fgets(line, sizeof line, f) != NULL) {
		if (strncmp(line, "ready", 5) == 0)
			break;
		kids[nkids++] = (pid_t)atoi(line);
	}
	ASSERT_EQ_INT(nkids, 3);
	for (int i = 0; i < nkids; i++)
		ASSERT_TRUE(alive(kids[i]));
	t0 = test_owner_kill(h);
	for (int i = 0; i < nkids; i++) {
		/* Adopted by us (the subreaper): dead within 1 s. */
		st = test_wait_adopted(kids[i], t0, ms(1000));
		ASSERT_TRUE(WIFSIGNALED(st));
		ASSERT_EQ_INT(WTERMSIG(st), SIGKILL);
	}
	test_owner_end(f);
	END();
}

/* A parent that dies before its fn child has armed the lifeline: the
 * child finds the pipe at end of file and ends as the lifeline's signal
 * would have ended it (SIGKILL), not with some exit status of its own.
 * An at-fork child hook holds the child back until the middle process,
 * its parent, is gone: the hooks run before the child arms. */
static void hold_until_orphaned(void *arg)
{
	pid_t parent = (pid_t)(intptr_t)arg; /* may be gone already */

	for (int i = 0; i < 5000 && getppid() == parent; i++)
		usleep(1000);
}

static int fn_pause(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	for (;;)
		pause();
	return 0;
}

static int spawn_then_die(void *arg)
{
	int fd = *(int *)arg;
	reap_proc *p;
	reap_scope *s;
	pid_t kid;

	if (reap_scope_open(NULL, &s) != 0 ||
	    reap_atfork(s, NULL, NULL, hold_until_orphaned,
			(void *)(intptr_t)getpid(), NULL) != 0 ||
	    reap_proc_spawn(s, OPTS(.fn = fn_pause), &p) != 0)
		return 1;
	kid = reap_proc_pid(p);
	if (write(fd, &kid, sizeof kid) != (ssize_t)sizeof kid)
		return 2;
	raise(SIGKILL); /* the parent's death, before the child armed */
	return 3;
}

TEST(child_of_a_parent_dead_before_arming_is_killed)
{
	int pfd[2], st;
	pid_t mid, kid = -1;
	uint64_t t0;

	BEGIN();
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 1));
	ASSERT_OK(pipe2(pfd, O_CLOEXEC));
	mid = test_fork(spawn_then_die, &pfd[1]);
	close(pfd[1]);
	ASSERT_EQ_INT(read(pfd[0], &kid, sizeof kid), (ssize_t)sizeof kid);
	close(pfd[0]);
	ASSERT_EQ_INT(test_wait(mid), 128 + SIGKILL);
	t0 = reap_now_ns();
	/* Adopted by us: dead within 1 s of its hook letting it go (the hook
	 * polls every millisecond). */
	st = test_wait_adopted(kid, t0, ms(1000));
	ASSERT_TRUE(WIFSIGNALED(st));
	ASSERT_EQ_INT(WTERMSIG(st), SIGKILL);
	ASSERT_OK(prctl(PR_SET_CHILD_SUBREAPER, 0));
	END();
}

/* ------------------------------------------------------------------ */
/* Inside a loop                                                        */

static int ticks;

static int ticker(void *arg, void **res)
{
	(void)arg;
	(void)res;
	for (;;) {
		int rc = reap_sleep(ms(5));

		if (rc < 0)
			return 0;
		ticks++;
	}
}

static int waiter(void *arg, void **res)
{
	const char *argv[] = {"sleep", "0.2", NULL};
	reap_task *t;
	reap_proc *p;
	reap_proc_status st;
	int rc;

	(void)arg;
	(void)res;
	if ((rc = reap_task_spawn(NULL, ticker, NULL, &t)) < 0)
		return rc;
	if ((rc = reap_proc_spawn(NULL, OPTS(.argv = argv), &p)) < 0)
		return rc;
	/* Suspends this task only: the ticker keeps running. */
	if ((rc = reap_proc_wait(p, REAP_FOREVER, &st)) < 0)
		return rc;
	reap_task_cancel(t);
	return st.exited && st.code == 0 ? 0 : -EPROTO;
}

TEST(wait_in_a_task_suspends_only_the_task)
{
	reap_scope *s;
	reap_loop *loop;
	int rc = -1;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, waiter, NULL, NULL));
	ASSERT_GE_INT(ticks, 10);
	rc = reap_scope_close(s);
	ASSERT_OK(rc);
	END();
}

/* A fn child forked inside a task runs on a stack of its own: the
 * task's (64 KiB by default) would not hold this frame. */
static __attribute__((noinline)) int deep(int n)
{
	volatile char buf[1 << 20];

	buf[0] = (char)n;
	buf[sizeof buf - 1] = (char)n;
	return buf[0] + buf[sizeof buf - 1];
}

static int fn_deep_stack(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	return reap_task_self() == NULL && deep(21) == 42 ? 0 : 1;
}

static int spawn_fn_in_task(void *arg, void **res)
{
	reap_proc_status *st = arg;
	reap_proc *p;
	int rc;

	(void)res;
	if ((rc = reap_proc_spawn(NULL, OPTS(.fn = fn_deep_stack), &p)) < 0)
		return rc;
	return reap_proc_wait(p, REAP_FOREVER, st);
}

TEST(fn_child_forked_in_a_task_gets_a_full_stack)
{
	reap_proc_status st = {0};
	reap_scope *s;
	reap_loop *loop;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create(s, &loop));
	ASSERT_OK(reap_loop_run(loop, spawn_fn_in_task, &st, NULL));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 0);
	ASSERT_OK(reap_scope_close(s));
	END();
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

static int *shared;

static void count_cleanup(void *arg)
{
	(void)arg;
	__atomic_add_fetch(&shared[0], 1, __ATOMIC_SEQ_CST);
}

static int fn_close_copied(reap_scope *root, void *arg)
{
	reap_scope *copied = arg;

	(void)root;
	if (reap_fork_inherited() == 0)
		return 1;
	/* Closing the parent's scope here must not run its cleanups. */
	if (reap_scope_close(copied) != 0)
		return 2;
	return shared[0] == 0 ? 0 : 3;
}

TEST(child_cannot_run_the_parents_cleanups)
{
	reap_proc_status st;
	reap_scope *s, *mine;
	reap_proc *p;

	BEGIN();
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(shared != MAP_FAILED);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_open(NULL, &mine));
	ASSERT_OK(reap_defer(mine, count_cleanup, NULL, NULL));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_close_copied, .arg = mine),
				  &p));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 0);
	ASSERT_EQ_INT(shared[0], 0);
	ASSERT_OK(reap_scope_close(mine)); /* the parent's close runs it */
	ASSERT_EQ_INT(shared[0], 1);
	ASSERT_OK(reap_scope_close(s));
	munmap(shared, 4096);
	END();
}

static char order[64];
static int norder;

static void hk_prep1(void *a) { (void)a; order[norder++] = 'p'; order[norder++] = '1'; }
static void hk_prep2(void *a) { (void)a; order[norder++] = 'p'; order[norder++] = '2'; }
static void hk_par1(void *a) { (void)a; order[norder++] = 'P'; order[norder++] = '1'; }
static void hk_par2(void *a) { (void)a; order[norder++] = 'P'; order[norder++] = '2'; }
static void hk_child(void *a)
{
	/* In the child: record what the child saw into shared memory. */
	int k = (int)(intptr_t)a;
	char *buf = (char *)shared;
	size_t n = strlen(buf);

	buf[n] = 'c';
	buf[n + 1] = (char)('0' + k);
}

TEST(atfork_hooks_order_and_unregistration)
{
	reap_scope *s, *h;
	reap_proc *p;
	reap_proc_status st;

	BEGIN();
	shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(shared != MAP_FAILED);
	memset(shared, 0, 4096);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_open(NULL, &h));
	ASSERT_OK(reap_atfork(h, hk_prep1, hk_par1, hk_child, (void *)1, NULL));
	ASSERT_OK(reap_atfork(h, hk_prep2, hk_par2, hk_child, (void *)2, NULL));
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_nop), &p));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	order[norder] = '\0';
	/* prepare newest first, parent and child oldest first. */
	ASSERT_EQ_STR(order, "p2p1P1P2");
	ASSERT_EQ_STR((char *)shared, "c1c2");
	/* Closing their scope unregisters them. */
	ASSERT_OK(reap_scope_close(h));
	norder = 0;
	memset(shared, 0, 4096);
	ASSERT_OK(reap_proc_spawn(s, OPTS(.fn = fn_nop), &p));
	ASSERT_OK(reap_proc_wait(p, REAP_FOREVER, &st));
	ASSERT_EQ_INT(norder, 0);
	ASSERT_EQ_STR((char *)shared, "");
	ASSERT_OK(reap_scope_close(s));
	munmap(shared, 4096);
	END();
}

/* A fn child that spawns its own child: the spawner is made anew there,
 * and the grandchild is the child's to close. */
static int fn_grandparent(reap_scope *root, void *arg)
{
	const char *argv[] = {"sh", "-c", "exit 3", NULL};
	reap_proc_status st;
	reap_scope *s;
	reap_proc *p;
	int rc;

	if (reap_scope_open(root, &s) != 0)
		return 5;
	(void)arg;
	if (reap_proc_spawn(s, OPTS(.argv = argv), &p) != 0)
		rc = 1;
	else if (reap_proc_wait(p, REAP_FOREVER, &st) != 0)
		rc = 2;
	else
		rc = st.code == 3 ? 0 : 4;
	return reap_scope_close(s) != 0 ? 6 : rc;
}

TEST(child_spawns_its_own_children)
{
	reap_proc_status st;

	BEGIN();
	st = run_to_end(OPTS(.fn = fn_grandparent));
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 0);
	END();
}

/* ------------------------------------------------------------------ */
/* Many at once                                                         */

TEST(many_children_one_close)
{
	const char *argv[] = {"sleep", "100", NULL};
	pid_t pids[32];
	reap_scope *s;
	reap_proc *p;

	BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	for (int i = 0; i < 32; i++) {
		ASSERT_OK(reap_proc_spawn(s, OPTS(.argv = argv), &p));
		pids[i] = reap_proc_pid(p);
	}
	ASSERT_EQ_SIZE(reap_ledger_count(), 33);
	ASSERT_OK(reap_scope_close(s));
	for (int i = 0; i < 32; i++)
		ASSERT_FALSE(alive(pids[i]));
	END();
}

/* ------------------------------------------------------------------ */
/* Allocation, pipe and fork failures                                   */

static void nop_cleanup(void *arg)
{
	(void)arg;
}

TEST(oom_sweep)
{
	const char *argv[] = {"cat", NULL};
	reap_proc_opts opts[2] = {
		{.argv = argv, .stdio = {{.mode = REAP_STDIO_PIPE},
					 {.mode = REAP_STDIO_PIPE},
					 {.mode = REAP_STDIO_NULL}}},
		{.fn = fn_nop, .stdio = {{.mode = REAP_STDIO_NULL}}},
	};

	BEGIN();
	for (int k = 0; k < 2; k++) {
		int done = 0, failures = 0;

		for (long n = 1; !done && n < 200; n++) {
			reap_scope *s;
			reap_proc *p = (reap_proc *)&p;
			struct test_snap snap;
			long seen;
			int rc;

			ASSERT_OK(reap_scope_open(NULL, &s));
			/* s's first entry allocates its cleanup chunk, which a
			 * failed spawn may leave grown: made before the count. */
			ASSERT_OK(reap_defer(s, nop_cleanup, NULL, NULL));
			snap = test_snap();
			reap_fault_alloc(n);
			rc = reap_proc_spawn(s, &opts[k], &p);
			seen = test_fault_disarm();
			if (rc == 0) {
				done = 1;
			} else {
				ASSERT_GE_INT(seen, n);
				ASSERT_EQ_INT(rc, -ENOMEM);
				ASSERT_EQ_PTR(p, (reap_proc *)&p);
				ASSERT_UNCHANGED(snap);
				assert_no_children();
				failures++;
			}
			ASSERT_OK(reap_scope_close(s));
		}
		ASSERT_TRUE(done);
		/* The handle and its registration, at the least. */
		ASSERT_GE_INT(failures, 2);
	}
	END();
}

TEST(oom_sweep_atfork)
{
	int done = 0, failures = 0;

	BEGIN();
	for (long n = 1; !done && n < 50; n++) {
		reap_scope *s;
		reap_cleanup *h = (reap_cleanup *)&h;
		struct test_snap snap;
		long seen;
		int rc;

		ASSERT_OK(reap_scope_open(NULL, &s));
		snap = test_snap();
		reap_fault_alloc(n);
		rc = reap_atfork(s, hk_prep1, hk_par1, NULL, NULL, &h);
		seen = test_fault_disarm();
		if (rc == 0) {
			done = 1;
			ASSERT_NE_PTR(h, (reap_cleanup *)&h);
		} else {
			ASSERT_GE_INT(seen, n);
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_EQ_PTR(h, (reap_cleanup *)&h);
			ASSERT_UNCHANGED(snap);
			failures++;
		}
		ASSERT_OK(reap_scope_close(s));
	}
	ASSERT_TRUE(done);
	ASSERT_GE_INT(failures, 1);
	END();
}
