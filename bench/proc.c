/*
 * bench/proc.c: child processes, issue 6 (c).
 *
 *   (c) spawn + exit + reap of n / 1000 children (1000 at the default
 *       BENCH_N), one after the other: reap_proc_spawn of a function
 *       child that returns at once, then reap_proc_wait; against bare
 *       fork() + _exit(0) + waitpid(), and against Python's
 *       multiprocessing.Process start + join with the fork context
 *       (bench/py/proc.py). reap's child runs reap's exit sequence (its
 *       root scope closes) before _exit; its parent forks through the
 *       spawner thread, opens a pidfd and reaps through it.
 *
 * The reap children of a round are owned by one scope, closed at the end
 * of the round (each is reaped already; the close frees the records).
 */
#include "bench.h"

#include <errno.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include <reap.h>

static int child_fn(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	return 0;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_proc: %s: %s\n", what, reap_errname(rc));
	exit(1);
}

static void reap_spawn(size_t n)
{
	reap_scope *s;
	int rc;

	if ((rc = reap_scope_open(NULL, &s)) < 0)
		die("reap_scope_open", rc);
	for (size_t i = 0; i < n; i++) {
		reap_proc *p;
		reap_proc_status st;

		if ((rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = child_fn}, &p)) < 0)
			die("reap_proc_spawn", rc);
		if ((rc = reap_proc_wait(p, REAP_FOREVER, &st)) < 0)
			die("reap_proc_wait", rc);
		if (!st.exited || st.code != 0)
			die("child status", -EPROTO);
	}
	if ((rc = reap_scope_close(s)) < 0)
		die("reap_scope_close", rc);
}

static void bare_fork(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int st;
		pid_t pid = fork();

		if (pid < 0)
			die("fork", -errno);
		if (pid == 0)
			_exit(0);
		if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
			die("waitpid", -EPROTO);
	}
}

static double python_ns(size_t n, int reps)
{
	char cmd[1024], line[64];
	FILE *p;
	double ns;

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/proc.py %zu %d",
		 BENCH_SOURCE_DIR, n, reps);
	if ((p = popen(cmd, "r")) == NULL || fgets(line, sizeof line, p) == NULL)
		die("python3", -EIO);
	if (pclose(p) != 0 || (ns = atof(line)) <= 0)
		die("python3 result", -EIO);
	return ns;
}

int main(void)
{
	size_t n = bench_n() / 1000;
	int reps = bench_reps();
	bench_contender c[] = {{.name = "reap", .run = reap_spawn},
			       {.name = "fork+waitpid", .run = bare_fork}};
	bench_contender py = {.name = "mp.Process"};

	if (n < 20)
		n = 20;
	bench_group("(c) spawn + exit + reap", c, 2, n, reps);
	fprintf(stderr, "(c) Python multiprocessing, %zu processes x %d rounds\n",
		n, reps > 5 ? 5 : reps);
	py.ns = python_ns(n, reps > 5 ? 5 : reps);
	fprintf(stderr, "  %-20s median %8.1f ns/op\n", py.name, py.ns);
	bench_note("6c: spawn, exit and reap of one child that does nothing, one "
		   "after the other (1000 per round): reap_proc_spawn of a function "
		   "child + reap_proc_wait, against bare fork/_exit/waitpid (target: "
		   "within 1.3x, so ratio >= 0.77) and multiprocessing.Process "
		   "start/join (fork context).");
	bench_row("6c1", "spawn+exit+reap a child", &c[0], &c[1], ">=0.77");
	bench_row("6c2", "spawn+exit+reap a child", &c[0], &py, ">=2");
	return 0;
}
