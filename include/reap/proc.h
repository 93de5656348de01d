/*
 * reap/proc.h: child processes owned by scopes, that never outlive their
 * parent, and what reap guarantees across fork().
 *
 * A child is a resource of the scope that spawned it, held through a
 * pidfd. Closing the scope sends the child its termination signal
 * (SIGTERM), waits its grace period, sends SIGKILL if it is still there,
 * and reaps it: no zombie is left, and nothing depends on SIGCHLD, which
 * stays the program's.
 *
 *     reap_proc *p;
 *     const char *argv[] = {"sleep", "10", NULL};
 *     int rc = reap_proc_spawn(s, &(reap_proc_opts){.argv = argv}, &p);
 *     ...
 *     reap_scope_close(s);  // SIGTERM, grace, SIGKILL, reaped
 *
 * Dying with the parent. Every child dies with its parent *process*, even
 * when the parent is killed with SIGKILL, within milliseconds, and does
 * not die when the thread that spawned it exits. Each child holds the
 * read end of a lifeline, a pipe whose write end only the parent process
 * holds, armed to send the child SIGKILL at end of file: the kernel
 * closes the write end when the parent process ends, however it ends
 * (PR_SET_PDEATHSIG would follow the forking thread instead). A parent
 * that dies between the fork and the arming is caught by a check once
 * armed. An argv child keeps the lifeline as one extra descriptor (3 or
 * above, close-on-exec cleared); a program that closes every descriptor
 * it did not open gives the guarantee up. opts.detach turns it off.
 *
 * Fork. A child made by fork() (reap's or the program's own) starts with
 * a consistent reap: one thread, its locks free, an empty process root
 * scope as its current scope, an empty ledger. What it inherited from
 * the parent (scopes, objects, threads, loops, children) is not its own:
 * it is never reported as the child's leak, and closing a copied scope
 * in the child discards its cleanups without running them, so a child
 * cannot close the parent's connections, kill the parent's children or
 * delete its files. At-fork hooks (reap_atfork) are how a resource
 * prepares for fork and fixes itself up in the child.
 *
 * Which calls are safe in a child before exec: after fork() from a
 * threaded parent, all of reap (its state is reset as above) and
 * whatever else the C library allows (glibc keeps malloc usable);
 * reap_proc_spawn's own argv path runs only async-signal-safe calls
 * between fork and exec. A child must not use a loop, a thread, a pool
 * or a task it inherited.
 */
#ifndef REAP_PROC_H
#define REAP_PROC_H

#include <sys/types.h>

#include "loop.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_proc reap_proc;

/* Where a standard stream of the child goes. */
typedef enum reap_stdio_mode {
	REAP_STDIO_INHERIT = 0, /* the parent's */
	REAP_STDIO_NULL,        /* /dev/null */
	REAP_STDIO_PIPE,        /* a pipe; the parent's end: reap_proc_stdio() */
	REAP_STDIO_FILE,        /* path, opened in the child (flags, 0644) */
	REAP_STDIO_FD           /* a copy of fd */
} reap_stdio_mode;

typedef struct reap_stdio {
	reap_stdio_mode mode;
	const char *path; /* REAP_STDIO_FILE */
	int flags;        /* REAP_STDIO_FILE: open flags; 0 means O_RDONLY
			   * for stdin, O_WRONLY|O_CREAT|O_TRUNC otherwise */
	int fd;           /* REAP_STDIO_FD */
} reap_stdio;

/*
 * The function a forked child runs (opts.fn). root is the child's
 * process root scope, empty and current; what fn leaves in it is closed
 * when fn returns, and reported first under REAP_DEBUG=leaks. The child
 * then exits with fn's result (0-255; a negative errno exits with 255
 * after printing its name), without running the parent's atexit
 * handlers, and with stdio flushed. As at any process exit, under
 * REAP_DEBUG=leaks:strict a leftover in root makes the exit status
 * REAP_LEAK_EXIT_CODE instead.
 */
typedef int (*reap_proc_fn)(reap_scope *root, void *arg);

/* Options of reap_proc_spawn(); zero means the default. Exactly one of
 * argv and fn. */
typedef struct reap_proc_opts {
	const char *const *argv;  /* program and arguments; argv[0] is looked
				   * up in PATH unless it has a '/' */
	const char *const *envp;  /* NULL: the parent's environment */
	reap_proc_fn fn;          /* or: run fn(root, arg) in a forked child */
	void *arg;
	const char *cwd;          /* NULL: the parent's */
	reap_stdio stdio[3];      /* stdin, stdout, stderr */
	const char *name;         /* for reports (copied); default argv[0] or
				   * "fn" */
	int term_signal;          /* sent at close; default SIGTERM */
	uint64_t grace_ns;        /* before SIGKILL; default 2 s */
	int death_signal;         /* what the lifeline sends when the parent
				   * process dies; default SIGKILL. A child
				   * that must clean up (remove its files)
				   * asks for SIGTERM and handles it */
	bool detach;              /* do not die when the parent process dies
				   * (the owner's close still stops it: a
				   * child that must outlive its owner is
				   * moved to a scope that lives long enough,
				   * or is not spawned through reap) */
} reap_proc_opts;

/*
 * Start a child process owned by s (NULL: the current scope).
 *
 * With argv, an exec failure in the child (no such program, not
 * executable) is the spawn's error: the child never appears. With fn,
 * the child is a fork of the calling process running fn (see
 * reap_proc_fn): inside it only the calling thread exists. Spawned
 * from a loop task, fn runs on a fresh 8 MiB stack, not the task's.
 *
 * Errors: -EINVAL (neither or both of argv and fn, an empty argv, a bad
 * stdio mode), -ENOMEM (allocation, or fault injection at any
 * acquisition: memory, a pipe, the fork), -EAGAIN (the system refused
 * the fork), -EMFILE, and from argv children the exec's error (-ENOENT,
 * -EACCES, ...) or that of a redirection (opening stdio[i].path, cwd).
 * On failure no process is left running or unreaped, no fd stays open
 * and *out is untouched.
 * Closing s stops the children it holds one after the other, newest
 * first, each with its own grace period. A child that had to be killed
 * with SIGKILL is reported (name, spawn site, grace period), since its
 * status goes with its record; call reap_proc_stop() or reap_proc_wait()
 * before the close to have the status.
 *
 * Ownership: s owns the child; closing s terminates and reaps it (see
 * above); *out is borrowed until then. Thread safety: owner thread of s.
 */
/* (opts, out) pass through as written, so that a compound literal with
 * commas, &(reap_proc_opts){.argv = ..., .cwd = ...}, works in place.) */
#define reap_proc_spawn(s, ...) reap_proc_spawn_at((s), __VA_ARGS__, REAP_SITE)
REAP_API REAP_NODISCARD int reap_proc_spawn_at(reap_scope *s,
					       const reap_proc_opts *opts,
					       reap_proc **out,
					       const reap_site *site)
	REAP_NONNULL(2, 3, 4);

/* How a child ended. */
typedef struct reap_proc_status {
	bool exited;   /* exit() or return: code is valid */
	int code;      /* exit status */
	int signal;    /* killed by this signal (exited false) */
	bool core;     /* and dumped core */
	bool killed;   /* reap sent the SIGKILL (the grace period ran out) */
} reap_proc_status;

/*
 * Wait for p to end, until deadline_ns (absolute, reap_now_ns()'s clock;
 * REAP_FOREVER: no deadline; one already past, such as 0: do not wait),
 * and reap it; its status goes to *st (may
 * be NULL). Inside a loop task the wait suspends the task; elsewhere it
 * blocks the thread. Waiting for a child already reaped returns its
 * status again. If the program reaped the child behind reap's back (a
 * waitpid(-1), SIGCHLD ignored), the status is unknown: exited false,
 * signal 0, code -1. Errors: -ETIMEDOUT (still running), -ECANCELED (the task
 * was cancelled). Ownership: borrows p; p stays owned by its scope.
 * Thread safety: owner thread of p's scope.
 */
REAP_API int reap_proc_wait(reap_proc *p, uint64_t deadline_ns,
			    reap_proc_status *st) REAP_NONNULL(1);

/*
 * Stop p now as its owner's close would: the termination signal, the
 * grace period, SIGKILL, reaped; *st (may be NULL) says how it ended.
 * Returns 0, or -ECANCELED if the calling task was cancelled during the
 * grace period (p is then killed at once and reaped). Ownership:
 * borrows p, which stays owned by its scope until that closes. Thread
 * safety: owner thread of p's scope.
 */
REAP_API int reap_proc_stop(reap_proc *p, reap_proc_status *st) REAP_NONNULL(1);

/* Send sig to p, unless it has been reaped (then -ESRCH: a pidfd never
 * reaches a recycled pid). Ownership: borrows p. Thread safety: owner
 * thread of p's scope; another thread only while no wait, stop or close
 * of p can run on the owner thread (reaping p closes its pidfd, whose
 * number a later open may reuse). */
REAP_API int reap_proc_signal(reap_proc *p, int sig) REAP_NONNULL(1);

/* p's pid, its pidfd (p keeps it; do not close it; poll it for
 * readability to learn that p has ended; -1 once p is reaped, when reap
 * closes it, and its lifeline, at once), and the parent's end of a
 * REAP_STDIO_PIPE stream (which: 0-2; -1 if that stream is no pipe).
 * Ownership: borrows p; the pidfd and pipe ends are p's and close with
 * it; they are close-on-exec and blocking. Thread safety: any thread
 * while p's owner is open (the pidfd and pipe ends as for
 * reap_proc_signal(): reaping and reap_proc_stdio_close() close them). */
REAP_API pid_t reap_proc_pid(const reap_proc *p) REAP_NONNULL(1);
REAP_API int reap_proc_pidfd(const reap_proc *p) REAP_NONNULL(1);
REAP_API int reap_proc_stdio(const reap_proc *p, int which) REAP_NONNULL(1);

/* Close the parent's end of p's stream which now (the way to send end
 * of file to a child's stdin); a no-op if it is no pipe or is closed.
 * Ownership: borrows p; the fd it closed was p's. Thread safety: owner
 * thread of p's scope. */
REAP_API void reap_proc_stdio_close(reap_proc *p, int which) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Fork                                                                  */

/*
 * At-fork hooks for a resource, like pthread_atfork() but owned by a
 * scope: prepare(arg) runs in the parent before any fork (reap's or the
 * program's), newest hook first; parent(arg) after it in the parent and
 * child(arg) in the child, oldest first (Python's register_at_fork, APR's
 * child cleanups). Hooks run while reap's own state is consistent, and
 * child hooks run after the child's reap state is reset. Any of the
 * three may be NULL.
 * Errors: -ENOMEM. Ownership: s owns the registration; closing s
 * unregisters it. Thread safety: owner thread of s; the hooks run on the
 * forking thread.
 */
typedef void (*reap_fork_fn)(void *arg);
#define reap_atfork(s, prepare, parent, child, arg, h) \
	reap_atfork_at((s), (prepare), (parent), (child), (arg), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_atfork_at(reap_scope *s, reap_fork_fn prepare,
					   reap_fork_fn parent, reap_fork_fn child,
					   void *arg, reap_cleanup **h,
					   const reap_site *site)
	REAP_NONNULL(7);

/* In a child made by fork(): the parent's pid as it was at the fork,
 * and how many of its resources (scopes and cleanups in them, objects)
 * the child inherited and will not close. 0 and 0 in a process that
 * was not forked from a reap process. Ownership: nothing is taken or
 * returned. Thread safety: any thread. */
REAP_API pid_t reap_fork_parent(void);
REAP_API size_t reap_fork_inherited(void);

#ifdef __cplusplus
}
#endif
#endif /* REAP_PROC_H */
