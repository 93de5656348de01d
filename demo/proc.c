/*
 * The tour, part 5: processes. A scoped child process whose output comes
 * back through a pipe; a fn child (a fork) with its own root scope; a
 * child that ignores SIGTERM, killed after its grace period; a shared
 * counter that three children increment with an exact total; and a lock
 * holder killed in the middle of an update, whose successor finds the
 * data repaired.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

#define MS (REAP_SEC / 1000)
#define OPTS(...) (&(reap_proc_opts){__VA_ARGS__})

static void print_status(const char *who, const reap_proc_status *st)
{
	if (st->exited)
		printf("    %s: exited with %d\n", who, st->code);
	else
		printf("    %s: ended by signal %d (%s)%s\n", who, st->signal,
		       strsignal(st->signal),
		       st->killed ? ";\n      killed: reap sent SIGKILL when "
				    "the grace period ran out" : "");
}

/* ---- a: a program, its stdout through a pipe ------------------------ */

static int run_argv(reap_scope *s)
{
	const char *argv[] = {"sh", "-c", "echo \"hello from pid $$\"", NULL};
	reap_proc_status st;
	reap_proc *p;
	char buf[128];
	size_t n = 0;
	ssize_t r;
	int rc;

	if ((rc = reap_proc_spawn(s, OPTS(.argv = argv,
					  .stdio[1] = {.mode = REAP_STDIO_PIPE}),
				  &p)) < 0)
		return rc;
	while (n < sizeof buf - 1 &&
	       (r = read(reap_proc_stdio(p, 1), buf + n, sizeof buf - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	printf("    spawned `sh -c ...` as pid %d; read from its stdout: \"%s\"\n",
	       (int)reap_proc_pid(p), buf);
	if ((rc = reap_proc_wait(p, REAP_FOREVER, &st)) < 0)
		return rc;
	print_status("sh", &st);
	return 0;
}

/* ---- b: a fn child, with a root scope of its own -------------------- */

static void child_cleanup(void *arg)
{
	printf("    child %d: %s\n", (int)getpid(), (const char *)arg);
}

static int child_main(reap_scope *root, void *arg)
{
	int rc = 0;

	(void)arg;
	printf("    child %d (parent %d): root scope current: %s; live resources "
	       "of its own: %zu;\n      inherited from the parent, never closed "
	       "or reported here: %zu\n", (int)getpid(), (int)reap_fork_parent(),
	       root == reap_scope_current() ? "yes" : "no", reap_ledger_count(),
	       reap_fork_inherited());
	/* What the child opens, it closes, like any other code: what fn
	 * left in root would be closed at its return, but reported as a
	 * leak under REAP_DEBUG=leaks. */
	REAP_WITH_SCOPE(s, root, &rc) {
		rc = reap_defer(s, child_cleanup, "its own cleanup runs, in the child",
				NULL);
	}
	return rc < 0 ? rc : 7;
}

static int run_fn(reap_scope *s)
{
	reap_proc_status st;
	reap_proc *p;
	int rc;

	if ((rc = reap_proc_spawn(s, OPTS(.fn = child_main, .name = "child_main"),
				  &p)) < 0 ||
	    (rc = reap_proc_wait(p, REAP_FOREVER, &st)) < 0)
		return rc;
	print_status("child_main", &st);
	return st.exited && st.code == 7 ? 0 : -EPROTO;
}

/* ---- c: a child that ignores SIGTERM -------------------------------- */

static int stubborn(reap_scope *root, void *arg)
{
	int fd = *(int *)arg;

	(void)root;
	signal(SIGTERM, SIG_IGN);
	if (write(fd, "r", 1) != 1) /* ready: SIGTERM is ignored now */
		return 1;
	for (;;)
		pause();
	return 0;
}

static int run_stubborn(reap_scope *parent)
{
	const uint64_t grace = 60 * MS;
	reap_proc_status st;
	reap_proc *p;
	uint64_t t0;
	pid_t pid = 0;
	int pfd[2], rc = 0;
	char c;

	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = reap_defer_fd(parent, pfd[0], NULL)) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	if ((rc = reap_defer_fd(parent, pfd[1], NULL)) < 0) {
		close(pfd[1]);
		return rc;
	}
	/* reap_proc_stop() is the close sequence run now, with its status. */
	if ((rc = reap_proc_spawn(parent, OPTS(.fn = stubborn, .arg = &pfd[1],
					       .name = "stubborn",
					       .grace_ns = grace), &p)) < 0)
		return rc;
	if (read(pfd[0], &c, 1) != 1)
		return -EPIPE;
	t0 = reap_now_ns();
	(void)reap_proc_stop(p, &st);
	printf("    reap_proc_stop(): SIGTERM, %llu ms of grace, then:\n",
	       (unsigned long long)((reap_now_ns() - t0) / MS));
	print_status("stubborn", &st);
	if (!st.killed)
		return -EPROTO;

	/* The same sequence, run by the close of the owning scope. */
	REAP_WITH_SCOPE(s, parent, &rc) {
		if ((rc = reap_proc_spawn(s, OPTS(.fn = stubborn, .arg = &pfd[1],
						  .name = "stubborn#2",
						  .grace_ns = grace), &p)) < 0)
			break;
		pid = reap_proc_pid(p);
		if (read(pfd[0], &c, 1) != 1)
			rc = -EPIPE;
		t0 = reap_now_ns();
	}
	if (rc < 0)
		return rc;
	printf("    stubborn#2 (pid %d), owned by a block: leaving the block "
	       "took %llu ms\n      (SIGTERM ignored, SIGKILL after the grace "
	       "period, reaped: %s)\n", (int)pid,
	       (unsigned long long)((reap_now_ns() - t0) / MS),
	       kill(pid, 0) < 0 && errno == ESRCH ? "no such process now" : "STILL THERE");
	return 0;
}

/* ---- d: a shared counter -------------------------------------------- */

#define ROUNDS 10000

static int bump(reap_scope *root, void *arg)
{
	reap_shm *counter = arg;
	int rc;

	(void)root;
	for (int i = 0; i < ROUNDS; i++)
		if ((rc = reap_shm_add_i64(counter, 0, 1, NULL)) < 0)
			return rc; /* v.value += 1, under v's lock */
	return 0;
}

static int run_counter(reap_scope *parent)
{
	reap_shm *counter;
	int64_t total = 0;
	uint64_t t0 = reap_now_ns();
	int rc = 0;

	if ((rc = reap_shm_create(parent, &(reap_shm_opts){.kind = REAP_SHM_I64,
							   .name = "counter"},
				  &counter)) < 0)
		return rc;
	REAP_WITH_SCOPE(s, parent, &rc) {
		reap_proc *p[3];
		reap_proc_status st;

		for (int i = 0; i < 3 && rc == 0; i++)
			rc = reap_proc_spawn(s, OPTS(.fn = bump, .arg = counter), &p[i]);
		for (int i = 0; i < 3 && rc == 0; i++)
			if ((rc = reap_proc_wait(p[i], REAP_FOREVER, &st)) == 0 &&
			    !(st.exited && st.code == 0))
				rc = -EPROTO;
	}
	if (rc < 0 || (rc = reap_shm_get_i64(counter, 0, &total)) < 0)
		return rc;
	printf("    3 children x %d locked increments: %lld (%s), in %llu ms\n",
	       ROUNDS, (long long)total, total == 3 * ROUNDS ? "exact" : "WRONG",
	       (unsigned long long)((reap_now_ns() - t0) / MS));
	return total == 3 * ROUNDS ? 0 : -EPROTO;
}

/* ---- e: a lock holder killed mid-update ----------------------------- */

/* Two accounts whose sum is always 100, and a journal: the amount in
 * flight. A transfer sets pending, debits a, credits b, clears pending. */
enum { A, B, PENDING };

static int repair(void *ctx, void *data, size_t count)
{
	int64_t *l = data;

	(void)ctx;
	(void)count;
	printf("    repair, under the lock: a=%lld b=%lld pending=%lld; ",
	       (long long)l[A], (long long)l[B], (long long)l[PENDING]);
	if (l[PENDING] != 0) {
		/* a is written first: it says how far the transfer got. */
		l[B] = 100 - l[A];
		l[PENDING] = 0;
	}
	printf("now a=%lld b=%lld\n", (long long)l[A], (long long)l[B]);
	return l[A] + l[B] == 100 ? 0 : -EPROTO;
}

struct holder {
	reap_shm *v;
	int fd;
};

static int dies_holding(reap_scope *root, void *arg)
{
	struct holder *h = arg;
	int64_t *l = reap_shm_data(h->v);

	(void)root;
	if (reap_shm_lock(h->v, REAP_FOREVER) < 0)
		return 1;
	l[PENDING] = 30;
	l[A] -= 30; /* and then it is killed: b is never credited */
	if (write(h->fd, "h", 1) != 1)
		return 1;
	for (;;)
		pause();
	return 0;
}

static int run_repair(reap_scope *parent)
{
	struct holder h;
	reap_shm_stats stats;
	reap_proc_status st;
	reap_proc *p;
	int64_t *l;
	int pfd[2], rc;
	char c;

	if ((rc = reap_shm_create(parent, &(reap_shm_opts){.kind = REAP_SHM_I64,
							   .count = 3,
							   .name = "accounts",
							   .repair = repair},
				  &h.v)) < 0)
		return rc;
	l = reap_shm_data(h.v);
	l[A] = 100;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = reap_defer_fd(parent, pfd[0], NULL)) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	h.fd = pfd[1];
	rc = reap_proc_spawn(parent, OPTS(.fn = dies_holding, .arg = &h), &p);
	close(pfd[1]); /* the child has its copy */
	if (rc < 0)
		return rc;
	if (read(pfd[0], &c, 1) != 1)
		return -EPIPE;
	printf("    the child holds the lock, a debited, b not yet credited: "
	       "a + b = %lld\n", (long long)(l[A] + l[B]));
	if ((rc = reap_proc_signal(p, SIGKILL)) < 0 ||
	    (rc = reap_proc_wait(p, REAP_FOREVER, &st)) < 0)
		return rc;
	print_status("the holder", &st);
	/* The next locker (us) gets the lock, repaired. */
	if ((rc = reap_shm_lock(h.v, reap_now_ns() + REAP_SEC)) < 0)
		return rc;
	printf("    reap_shm_lock() returned %s; a + b = %lld\n",
	       rc == REAP_SHM_RECOVERED ? "REAP_SHM_RECOVERED" : "0",
	       (long long)(l[A] + l[B]));
	reap_shm_unlock(h.v);
	reap_shm_stats_get(h.v, &stats);
	printf("    the lock's record: %llu owner death, %llu repair\n",
	       (unsigned long long)stats.owner_deaths,
	       (unsigned long long)stats.repairs);
	return rc == REAP_SHM_RECOVERED ? 0 : -EPROTO;
}

int demo_proc(void)
{
	int rc = 0;

	REAP_WITH_SCOPE(s, NULL, &rc) {
		if ((rc = reap_scope_name(s, "proc")) < 0)
			break;
		printf("   a. A program as a scoped child, its stdout a pipe:\n");
		if ((rc = run_argv(s)) < 0)
			break;
		printf("\n   b. A function in a forked child, with a root scope "
		       "of its own:\n");
		if ((rc = run_fn(s)) < 0)
			break;
		printf("\n   c. A child that ignores SIGTERM (grace period 60 ms):\n");
		if ((rc = run_stubborn(s)) < 0)
			break;
		printf("\n   d. A shared counter (memfd, robust lock), "
		       "incremented by three children:\n");
		if ((rc = run_counter(s)) < 0)
			break;
		printf("\n   e. A child killed while it holds the lock, "
		       "mid-update:\n");
		rc = run_repair(s);
	} /* children reaped, values unmapped, fds closed */
	return rc;
}
