/*
 * Scoped child processes.
 *
 * Dying with the parent. PR_SET_PDEATHSIG ties a child to the *thread*
 * that forked it, not to the process: a child forked by a short-lived
 * thread would be killed when that thread ends, and one forked by a
 * long-lived thread would need every spawn handed over to it. reap uses
 * a lifeline instead, which belongs to the process: each child gets the
 * read end of a pipe whose only write end the parent process holds
 * (close-on-exec, and closed in every other child by the at-fork hook
 * below). The child makes the read end signal-driven (O_ASYNC, F_SETOWN
 * itself, F_SETSIG SIGKILL): when the parent process ends, however it
 * ends, the kernel closes the write end, and end-of-file on the pipe
 * sends the child SIGKILL. The race between fork and arming is closed by
 * polling the pipe once armed: a parent that died in between has already
 * left it at end of file, and the child kills itself with SIGKILL (with
 * another death signal, it exits with 127). The lifeline survives
 * exec as one extra descriptor of the program (never 0-2), so an argv
 * child is covered too, as long as it does not close that descriptor.
 *
 * Holding a child. Right after fork() the parent opens a pidfd for the
 * child. Until the child is reaped its pid cannot be recycled, and reap
 * reaps only through waitid(P_PIDFD), so the pidfd always names our
 * child; signals go through pidfd_send_signal(). A program whose
 * SIGCHLD handler reaps with waitpid(-1) (or that ignores SIGCHLD) can
 * take the status from us: the wait then reports ECHILD as an unknown
 * status, never a hang.
 *
 * The exec path. An argv child runs only async-signal-safe calls
 * between fork and exec: the program's path is resolved in the parent,
 * redirections are prepared there, and a close-on-exec pipe carries an
 * exec failure's errno back, so that spawn itself fails with -ENOENT
 * and no child is left.
 *
 * The function path. A fn child is a fork of the whole process. base's
 * at-fork handler has already reset reap in it (one thread, an empty
 * root); the fn runs with that root as its scope (on a fresh stack if
 * the fork happened in a loop task, whose own stack is small), then the
 * child runs reap's exit sequence and _exit()s, so the parent's atexit
 * handlers never run twice. stdio is flushed before the fork, so that no
 * buffered output is written by both.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio_ext.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../base/internal.h"
#include "../loop/ctx.h"

#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef P_PIDFD
#define P_PIDFD 3
#endif

#define DEFAULT_GRACE_NS 2000000000ull
#define FN_STACK (8u << 20) /* a fn child forked in a task runs on this */

extern char **environ;

struct reap_proc {
	pid_t pid;
	int pidfd;
	int pipes[3];     /* the parent's ends, or -1 */
	int life;         /* the lifeline's write end, or -1 (detached) */
	int reaped;
	reap_proc_status st;
	int term_signal;
	uint64_t grace_ns;
	reap_cleanup *h;
	const reap_site *site;
	struct reap_proc *prev, *next; /* live children, under reg_lock */
	int registered;
	char name[32];
};

static void proc_describe(void *arg, char *buf, size_t len);
static reap_type proc_type = REAP_TYPE_INIT("process", proc_describe);

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reap_proc *reg_head;

static void proc_describe(void *arg, char *buf, size_t len)
{
	reap_proc *p = arg;

	snprintf(buf, len, "pid %d '%s'%s", (int)p->pid, p->name,
		 p->reaped ? " (ended)" : "");
}

/* ------------------------------------------------------------------ */
/* Forking                                                              */

struct request {
	const reap_proc_opts *o;
	const char *path;     /* argv: the resolved program */
	int child_fds[3];     /* what becomes 0, 1, 2 in the child, or -1 */
	int parent_fds[3];    /* the parent's pipe ends: closed in the child */
	int errpipe[2];       /* argv: exec failure report */
	int life[2];          /* the lifeline, or -1 (detached) */
	int in_task;          /* forked in a loop task: fn gets a new stack */
	pid_t parent;
};

static REAP_NORETURN void child_fail(int fd, int err)
{
	if (fd >= 0) {
		ssize_t w = write(fd, &err, sizeof err);

		(void)w;
	}
	_exit(127);
}

/* In the child: hold on to the lifeline (see above). */
static void arm_lifeline(struct request *r, int efd)
{
	int sig = r->o->death_signal ? r->o->death_signal : SIGKILL;
	struct pollfd pfd;
	int lf = r->life[0];

	/* Only the read end is ours: this child's copy of the write end
	 * was closed by the at-fork hook, with every other proc's. The
	 * read end moves off the standard streams. */
	if (lf <= 2) {
		if ((lf = fcntl(lf, F_DUPFD_CLOEXEC, 3)) < 0)
			child_fail(efd, errno);
		close(r->life[0]);
	}
	if (fcntl(lf, F_SETOWN, getpid()) != 0 ||
	    fcntl(lf, F_SETSIG, sig) != 0 ||
	    fcntl(lf, F_SETFL, O_ASYNC) != 0)
		child_fail(efd, errno);
	/* The parent may have died before O_ASYNC was set: then the pipe is
	 * at end of file already, and no signal will come. The child ends
	 * as the signal would have ended it, so that whoever reaps it sees
	 * one outcome of the parent's death, however early it came. (A
	 * signal of the program's choice is meant for its handler, not yet
	 * installed here, and there is nothing to clean up: exit instead.) */
	pfd = (struct pollfd){lf, POLLIN, 0};
	if (poll(&pfd, 1, 0) != 0 || getppid() != r->parent) {
		if (sig == SIGKILL)
			kill(getpid(), SIGKILL);
		_exit(127);
	}
	/* An exec'd program keeps it. */
	if (r->o->argv != NULL && fcntl(lf, F_SETFD, 0) != 0)
		child_fail(efd, errno);
}

/* In the child, before exec or fn: async-signal-safe calls only. */
static void child_setup(struct request *r)
{
	const reap_proc_opts *o = r->o;
	int efd = o->argv != NULL ? r->errpipe[1] : -1;

	/* Close-on-exec closes these only at exec; a fn child holding the
	 * write end of its own stdin would never see end of file. */
	for (int i = 0; i < 3; i++)
		if (r->parent_fds[i] >= 0)
			close(r->parent_fds[i]);
	if (efd < 0 && r->errpipe[0] >= 0)
		close(r->errpipe[0]);
	if (r->life[0] >= 0)
		arm_lifeline(r, efd);
	for (int i = 0; i < 3; i++) {
		const reap_stdio *sd = &o->stdio[i];
		int fd = r->child_fds[i];

		if (sd->mode == REAP_STDIO_FILE) {
			int fl = sd->flags != 0 ? sd->flags
				 : i == 0 ? O_RDONLY : O_WRONLY | O_CREAT | O_TRUNC;

			if ((fd = open(sd->path, fl | O_CLOEXEC, 0644)) < 0)
				child_fail(efd, errno);
		}
		if (fd < 0)
			continue;
		if (fd == i) {
			if (fcntl(i, F_SETFD, 0) != 0) /* keep it across exec */
				child_fail(efd, errno);
		} else if (dup2(fd, i) < 0) {
			child_fail(efd, errno);
		}
	}
	if (o->cwd != NULL && chdir(o->cwd) != 0)
		child_fail(efd, errno);
}

struct fn_run {
	struct request *r;
	int code;
	struct reap__ctx self, co;
};

static void fn_trampoline(void *arg)
{
	struct fn_run *f = arg;

	f->code = f->r->o->fn(reap_scope_root(), f->r->o->arg);
	reap__ctx_switch(&f->co, &f->self);
}

static REAP_NORETURN void child_run(struct request *r)
{
	const reap_proc_opts *o = r->o;
	struct fn_run f = {.r = r};
	struct reap__stack st;
	int status;

	child_setup(r);
	if (o->argv != NULL) {
		execve(r->path, (char *const *)o->argv,
		       (char *const *)(o->envp != NULL ? o->envp
				       : (const char *const *)environ));
		child_fail(r->errpipe[1], errno);
	}
	/* base's at-fork handler made this thread the child's main thread,
	 * with an empty process root as its current scope. */
	if (!r->in_task) {
		f.code = o->fn(reap_scope_root(), o->arg);
	} else if (reap__stack_acquire(&st, FN_STACK) == 0) {
		reap__ctx_make(&f.co, &st, fn_trampoline, &f);
		reap__ctx_switch(&f.self, &f.co);
		reap__ctx_destroy(&f.co);
		reap__stack_release(&st);
	} else {
		f.code = -ENOMEM;
	}
	if (f.code < 0) {
		fprintf(stderr, "reap: child %d: %s (%s)\n", (int)getpid(),
			reap_errname(f.code), reap_strerror(f.code));
		f.code = 255;
	}
	status = reap__exit_sequence();
	/* Only the standard streams: the program's other FILEs may hold
	 * the parent's unwritten data, which is the parent's to write. */
	if (__fpending(stdout) > 0)
		fflush(stdout);
	if (__fpending(stderr) > 0)
		fflush(stderr);
	_exit(status != 0 ? status : f.code & 0xff);
}

/* Fork the child of r and hold it by a pidfd: p's pid and pidfd, or a
 * negative errno with no child left. */
static int fork_child(struct request *r, reap_proc *p)
{
	pid_t pid;
	int e;

	if (reap__fault_point())
		return -ENOMEM;
	pid = fork();
	if (pid < 0)
		return errno == ENOMEM ? -ENOMEM : -EAGAIN;
	if (pid == 0)
		child_run(r);
	/* pidfd_open() makes it close-on-exec. */
	p->pidfd = reap__fault_point() ? (errno = ENOMEM, -1)
		   : (int)syscall(SYS_pidfd_open, pid, 0);
	if (p->pidfd >= 0) {
		p->pid = pid;
		return 0;
	}
	e = errno;
	/* Without a pidfd we cannot hold it: it must not stay. */
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
	return e == EMFILE || e == ENFILE ? -e : -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Spawning                                                             */

/* The program argv0 names: itself if it has a '/', else the first
 * executable match in PATH, into buf. */
static int resolve(const char *argv0, const char *const *envp, char *buf,
		   size_t len)
{
	const char *path = NULL, *p;
	int err = -ENOENT;

	if (*argv0 == '\0')
		return -ENOENT;
	if (strchr(argv0, '/') != NULL) {
		if (strlen(argv0) >= len)
			return -ENAMETOOLONG;
		strcpy(buf, argv0);
		return 0;
	}
	if (envp != NULL) {
		for (const char *const *e = envp; *e != NULL; e++)
			if (strncmp(*e, "PATH=", 5) == 0)
				path = *e + 5;
	} else {
		path = getenv("PATH");
	}
	if (path == NULL)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path;; p++) {
		const char *end = strchrnul(p, ':');
		size_t dl = (size_t)(end - p);

		if (dl + 1 + strlen(argv0) < len) {
			if (dl == 0)
				snprintf(buf, len, "%s", argv0);
			else
				snprintf(buf, len, "%.*s/%s", (int)dl, p, argv0);
			if (access(buf, X_OK) == 0)
				return 0;
			if (errno == EACCES)
				err = -EACCES;
		}
		p = end;
		if (*p == '\0')
			break;
	}
	return err;
}

static void close_fd(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static int make_pipe(int fds[2])
{
	if (reap__fault_point())
		return -ENOMEM;
	if (pipe2(fds, O_CLOEXEC) != 0)
		return errno == EMFILE || errno == ENFILE ? -errno : -ENOMEM;
	return 0;
}

static int proc_close(void *arg, const reap_error *inflight);

static void reg_add(reap_proc *p)
{
	pthread_mutex_lock(&reg_lock);
	p->prev = NULL;
	p->next = reg_head;
	if (reg_head != NULL)
		reg_head->prev = p;
	reg_head = p;
	p->registered = 1;
	pthread_mutex_unlock(&reg_lock);
}

static void reg_del(reap_proc *p)
{
	if (!p->registered)
		return;
	pthread_mutex_lock(&reg_lock);
	LIST_UNLINK(reg_head, p, prev, next);
	p->registered = 0;
	pthread_mutex_unlock(&reg_lock);
}

static void on_fork_child(struct reap__tstate *ts);
static void on_fork_prepare(void);
static void on_fork_parent(void);

static pthread_once_t layer_once = PTHREAD_ONCE_INIT;
static void layer_init(void)
{
	reap__on_fork(REAP__FORK_LAYER, on_fork_prepare, on_fork_parent,
		      on_fork_child);
}

int reap_proc_spawn_at(reap_scope *s, const reap_proc_opts *o, reap_proc **out,
		       const reap_site *site)
{
	struct request r;
	char path[PATH_MAX];
	int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
	reap_proc *p;
	int rc, err = 0;
	ssize_t n;

	if ((o->argv == NULL) == (o->fn == NULL))
		return -EINVAL;
	if (o->argv != NULL && o->argv[0] == NULL)
		return -EINVAL;
	for (int i = 0; i < 3; i++) {
		const reap_stdio *sd = &o->stdio[i];

		if ((unsigned)sd->mode > REAP_STDIO_FD ||
		    (sd->mode == REAP_STDIO_FILE && sd->path == NULL) ||
		    (sd->mode == REAP_STDIO_FD && sd->fd < 0))
			return -EINVAL;
	}
	if (o->term_signal < 0 || o->term_signal >= NSIG ||
	    o->death_signal < 0 || o->death_signal >= NSIG)
		return -EINVAL;
	pthread_once(&layer_once, layer_init);
	if (o->argv != NULL && (rc = resolve(o->argv[0], o->envp, path, sizeof path)) < 0)
		return rc;

	if ((p = reap_calloc(1, sizeof *p)) == NULL)
		return -ENOMEM;
	p->pid = -1;
	p->pidfd = -1;
	p->life = -1;
	p->pipes[0] = p->pipes[1] = p->pipes[2] = -1;
	p->term_signal = o->term_signal != 0 ? o->term_signal : SIGTERM;
	p->grace_ns = o->grace_ns != 0 ? o->grace_ns : DEFAULT_GRACE_NS;
	p->site = site;
	/* Not snprintf(): its deep frame touches a stack page of its own. */
	strncpy(p->name, o->name != NULL ? o->name : o->argv != NULL ? o->argv[0]
		: "fn", sizeof p->name - 1);

	/* Registered first, so that a child, once forked, is always owned:
	 * nothing after the fork can fail. */
	if ((rc = reap_defer_exit_at(s, &proc_type, proc_close, p, &p->h, site)) < 0)
		goto fail_free;

	memset(&r, 0, sizeof r);
	r.o = o;
	r.path = path;
	r.errpipe[0] = r.errpipe[1] = -1;
	r.life[0] = r.life[1] = -1;
	for (int i = 0; i < 3; i++) {
		const reap_stdio *sd = &o->stdio[i];

		r.child_fds[i] = r.parent_fds[i] = -1;
		if (sd->mode == REAP_STDIO_PIPE) {
			if ((rc = make_pipe(fds[i])) < 0)
				goto fail_fds;
			/* stdin: the child reads fds[0][0]; else it writes. */
			r.child_fds[i] = i == 0 ? fds[i][0] : fds[i][1];
			r.parent_fds[i] = i == 0 ? fds[i][1] : fds[i][0];
		} else if (sd->mode == REAP_STDIO_NULL) {
			if (reap__fault_point()) {
				rc = -ENOMEM;
				goto fail_fds;
			}
			if ((fds[i][0] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY)
					      | O_CLOEXEC)) < 0) {
				rc = -errno;
				goto fail_fds;
			}
			r.child_fds[i] = fds[i][0];
		} else if (sd->mode == REAP_STDIO_FD) {
			r.child_fds[i] = sd->fd;
		}
	}
	if (o->argv != NULL && (rc = make_pipe(r.errpipe)) < 0)
		goto fail_fds;
	if (!o->detach) {
		if ((rc = make_pipe(r.life)) < 0)
			goto fail_fds;
		/* Registered before the fork, so that every other child
		 * forked from now on closes its copy of the write end. */
		p->life = r.life[1];
		reg_add(p);
	}
	r.parent = getpid();
	r.in_task = reap__ts()->task != NULL;
	/* Output buffered in stdout would otherwise be written by both
	 * processes (a fn child flushes the standard streams at its exit).
	 * __fpending() only reads: a flush that has nothing to do would
	 * still take the stream's lock, a write to a page that the fork
	 * has just made copy-on-write. */
	if (__fpending(stdout) > 0)
		fflush(stdout);
	if (__fpending(stderr) > 0)
		fflush(stderr);
	rc = fork_child(&r, p);
	close_fd(&r.life[0]);
	if (rc < 0)
		goto fail_fds;

	/* The child has its copies; the parent keeps only its own ends. */
	for (int i = 0; i < 3; i++) {
		if (o->stdio[i].mode == REAP_STDIO_PIPE) {
			p->pipes[i] = i == 0 ? fds[i][1] : fds[i][0];
			close_fd(i == 0 ? &fds[i][0] : &fds[i][1]);
		} else {
			close_fd(&fds[i][0]);
		}
	}
	if (o->argv != NULL) {
		close_fd(&r.errpipe[1]);
		/* EOF: the exec happened; an errno: it did not. */
		while ((n = read(r.errpipe[0], &err, sizeof err)) < 0 && errno == EINTR)
			;
		close_fd(&r.errpipe[0]);
		if (n == (ssize_t)sizeof err) {
			siginfo_t si;

			while (syscall(SYS_waitid, P_PIDFD, p->pidfd, &si, WEXITED, NULL) < 0 &&
			       errno == EINTR)
				;
			close(p->pidfd);
			for (int i = 0; i < 3; i++)
				close_fd(&p->pipes[i]);
			rc = -err;
			goto fail_cancel;
		}
	}
	if (p->life < 0)
		reg_add(p);
	*out = p;
	return 0;

fail_fds:
	for (int i = 0; i < 3; i++) {
		close_fd(&fds[i][0]);
		close_fd(&fds[i][1]);
	}
	close_fd(&r.errpipe[0]);
	close_fd(&r.errpipe[1]);
fail_cancel:
	if (p->life >= 0) {
		reg_del(p);
		close_fd(&p->life);
	}
	reap_cleanup_cancel(p->h);
fail_free:
	reap_free(p);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Waiting, stopping, closing                                           */

static void decode(const siginfo_t *si, reap_proc_status *st)
{
	int killed = st->killed;

	memset(st, 0, sizeof *st);
	st->killed = killed;
	switch (si->si_code) {
	case CLD_EXITED:
		st->exited = true;
		st->code = si->si_status;
		break;
	case CLD_DUMPED:
		st->core = true;
		/* fall through */
	default:
		st->signal = si->si_status;
		break;
	}
}

/* p has been reaped: what held it goes now, not at its owner's close, so
 * that a scope holding many ended children does not hand their
 * descriptors to every later fork. Its stdio pipes stay, for reading. */
static void reaped(reap_proc *p)
{
	p->reaped = 1;
	reg_del(p);
	close_fd(&p->pidfd);
	close_fd(&p->life); /* the child is gone: no one to kill */
}

/* Reap p if it has ended; 1 when reaped (now or before), 0 if not yet. */
static int try_reap(reap_proc *p)
{
	siginfo_t si;

	if (p->reaped)
		return 1;
	memset(&si, 0, sizeof si);
	if (syscall(SYS_waitid, P_PIDFD, p->pidfd, &si, WEXITED | WNOHANG, NULL) < 0) {
		if (errno == EINTR)
			return 0;
		/* ECHILD: someone else (a waitpid(-1), SIGCHLD ignored) took
		 * the status; the child is gone and its status unknown. */
		p->st.code = -1;
		reaped(p);
		return 1;
	}
	if (si.si_pid == 0)
		return 0;
	decode(&si, &p->st);
	reaped(p);
	return 1;
}

/* Wait until p has ended or the deadline passes: 0, -ETIMEDOUT or
 * -ECANCELED. */
static int wait_end(reap_proc *p, uint64_t deadline)
{
	for (;;) {
		int rc;

		if (try_reap(p))
			return 0;
		if (deadline != REAP_FOREVER && reap_now_ns() >= deadline)
			return -ETIMEDOUT;
		rc = reap_wait_fd(p->pidfd, REAP_READ, deadline);
		if (rc < 0 && rc != -EINTR) {
			if (try_reap(p))
				return 0;
			return rc;
		}
	}
}

int reap_proc_wait(reap_proc *p, uint64_t deadline_ns, reap_proc_status *st)
{
	int rc = wait_end(p, deadline_ns);

	if (rc == 0 && st != NULL)
		*st = p->st;
	return rc;
}

int reap_proc_signal(reap_proc *p, int sig)
{
	if (p->reaped || p->pidfd < 0)
		return -ESRCH;
	if (syscall(SYS_pidfd_send_signal, p->pidfd, sig, NULL, 0) != 0)
		return -errno;
	return 0;
}

/* Terminate, grace, kill, reap. Returns -ECANCELED if the grace wait was
 * cancelled (the child was then killed and reaped all the same). */
static int stop(reap_proc *p)
{
	int rc = 0;

	if (try_reap(p))
		return 0;
	(void)reap_proc_signal(p, p->term_signal);
	rc = wait_end(p, reap__add_sat(reap_now_ns(), p->grace_ns));
	if (rc == 0)
		return 0;
	p->st.killed = true;
	(void)reap_proc_signal(p, SIGKILL);
	/* SIGKILL cannot be refused: the child ends at once, so this wait
	 * is short, and it is not cut short by a cancellation. */
	while (!try_reap(p)) {
		struct pollfd pfd = {p->pidfd, POLLIN, 0};

		(void)poll(&pfd, 1, 100);
	}
	return rc == -ECANCELED ? -ECANCELED : 0;
}

int reap_proc_stop(reap_proc *p, reap_proc_status *st)
{
	int rc = stop(p);

	if (st != NULL)
		*st = p->st;
	return rc;
}

static int proc_close(void *arg, const reap_error *inflight)
{
	reap_proc *p = arg;

	(void)inflight;
	if (!p->reaped) {
		(void)stop(p);
		if (p->st.killed) {
			char site[256];

			/* Its status dies with the record: say what happened. */
			reap__report("reap: child %d '%s' (spawned at %s) was still "
				     "running %.1f s after %s; killed with SIGKILL\n",
				     (int)p->pid, p->name,
				     reap__site_str(p->site, site, sizeof site),
				     (double)p->grace_ns / 1e9, strsignal(p->term_signal));
		}
	}
	for (int i = 0; i < 3; i++)
		close_fd(&p->pipes[i]);
	reap_free(p);
	return 0;
}

pid_t reap_proc_pid(const reap_proc *p)
{
	return p->pid;
}

int reap_proc_pidfd(const reap_proc *p)
{
	return p->pidfd;
}

int reap_proc_stdio(const reap_proc *p, int which)
{
	return which >= 0 && which < 3 ? p->pipes[which] : -1;
}

void reap_proc_stdio_close(reap_proc *p, int which)
{
	if (which >= 0 && which < 3)
		close_fd(&p->pipes[which]);
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

/*
 * The child of any fork: the parent's children are not ours. Their
 * lifelines, pidfds and pipe ends are closed (a copy of the parent's
 * write end of a child's stdin would keep that child from ever seeing
 * end of file; a copy of a lifeline would keep the child alive after
 * the parent's death); their records stay, inherited.
 */
static void on_fork_child(struct reap__tstate *ts)
{
	(void)ts;
	reap__mutex_reset(&reg_lock);
	for (reap_proc *p = reg_head; p != NULL; p = p->next) {
		/* The lifeline's write end first: held here, it would keep
		 * the parent's child alive after the parent's death. */
		close_fd(&p->life);
		close_fd(&p->pidfd);
		for (int i = 0; i < 3; i++)
			close_fd(&p->pipes[i]);
		p->reaped = 1;
	}
	reg_head = NULL;
}

/* The registry is walked in the child: no fork may catch it half-way. */
static void on_fork_prepare(void)
{
	pthread_mutex_lock(&reg_lock);
}

static void on_fork_parent(void)
{
	pthread_mutex_unlock(&reg_lock);
}

/* At-fork hooks of users: a list under at_lock, held from prepare to
 * parent (and made anew in the child), so that no registration is
 * half-done at the fork. */
struct atfork {
	reap_fork_fn prepare, parent, child;
	void *arg;
	struct atfork *prev, *next; /* oldest first */
};
static pthread_mutex_t at_lock = PTHREAD_MUTEX_INITIALIZER;
static struct atfork *at_head, *at_tail;
static reap_type atfork_type = REAP_TYPE_INIT("at-fork hooks", NULL);

static void user_prepare(void)
{
	pthread_mutex_lock(&at_lock);
	for (struct atfork *a = at_tail; a != NULL; a = a->prev)
		if (a->prepare != NULL)
			a->prepare(a->arg);
}

static void user_parent(void)
{
	for (struct atfork *a = at_head; a != NULL; a = a->next)
		if (a->parent != NULL)
			a->parent(a->arg);
	pthread_mutex_unlock(&at_lock);
}

static void user_child(struct reap__tstate *ts)
{
	(void)ts;
	reap__mutex_reset(&at_lock);
	for (struct atfork *a = at_head; a != NULL; a = a->next)
		if (a->child != NULL)
			a->child(a->arg);
}

static void atfork_close(void *arg)
{
	struct atfork *a = arg;

	pthread_mutex_lock(&at_lock);
	DLIST_UNLINK(at_head, at_tail, a, prev, next);
	pthread_mutex_unlock(&at_lock);
	reap_free(a);
}

/* The users' phase of base's fork hooks: around every layer's. */
static pthread_once_t at_once = PTHREAD_ONCE_INIT;
static void at_init(void)
{
	reap__on_fork(REAP__FORK_USER, user_prepare, user_parent, user_child);
}

int reap_atfork_at(reap_scope *s, reap_fork_fn prepare, reap_fork_fn parent,
		   reap_fork_fn child, void *arg, reap_cleanup **h,
		   const reap_site *site)
{
	struct atfork *a;
	int rc;

	pthread_once(&at_once, at_init);
	if ((a = reap_calloc(1, sizeof *a)) == NULL)
		return -ENOMEM;
	a->prepare = prepare;
	a->parent = parent;
	a->child = child;
	a->arg = arg;
	if ((rc = reap_defer_at(s, &atfork_type, atfork_close, a, h, site)) < 0) {
		reap_free(a);
		return rc;
	}
	pthread_mutex_lock(&at_lock);
	DLIST_APPEND(at_head, at_tail, a, prev, next);
	pthread_mutex_unlock(&at_lock);
	return 0;
}
