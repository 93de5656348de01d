/*
 * reap/mgr.h: the manager, a server process that hosts shared objects
 * for many processes (the C form of multiprocessing.Manager), owned by a
 * scope, dying with its owner, and speaking RESP so that redis-cli,
 * redis-benchmark and hiredis work against it.
 *
 *     reap_mgr *m;
 *     int rc = reap_mgr_start(s, NULL, &m);    // a private Unix socket
 *     printf("%s\n", reap_mgr_address(m));     // unix:/tmp/reap-mgr.X/mgr.sock
 *     ...                                      // clients connect there
 *     reap_scope_close(s);                     // the manager shuts down
 *
 * The manager is a child process of the caller (reap/proc.h): closing its
 * owner's scope, or reap_mgr_shutdown(), stops it; if the owner process
 * dies, even by SIGKILL, the manager is told at once (through its
 * lifeline, as SIGTERM), disconnects its clients, removes its socket and
 * its private directory, and exits. Clients' objects follow the lifetime
 * rules of the store: session objects go with their client, shared ones
 * with their last holder, persistent ones with the manager.
 *
 * This first part of the API starts and stops managers; the standalone
 * daemon is `reap-manager`. The typed C client comes next.
 */
#ifndef REAP_MGR_H
#define REAP_MGR_H

#include "proc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_mgr reap_mgr;

/* Options of reap_mgr_start(); zero (or NULL options) means the default. */
typedef struct reap_mgr_opts {
	/* Where to listen. Default: a Unix socket in a fresh private
	 * directory (0700, under $TMPDIR or /tmp). unix_path: that socket
	 * instead, whose parent directory must be ours and private. tcp:
	 * "127.0.0.1:PORT" (0: any free port) instead; needs a key. */
	const char *unix_path;
	const char *tcp;
	/* The authentication key (copied); NULL: none (Unix sockets only,
	 * where the peer's uid is checked in any case). */
	const void *key;
	size_t key_len;
	const char *name;      /* for reports; default "manager" */
	uint64_t grace_ns;     /* at shutdown, before SIGKILL; default 5 s */
	uint64_t start_ns;     /* how long to wait for it to listen; 5 s */
} reap_mgr_opts;

/*
 * Start a manager process owned by s (NULL: the current scope) and
 * return once it listens.
 * Errors: -EINVAL (tcp without a key, a bad address), -EPERM (unix_path
 * in a directory that is not private), -EADDRINUSE, -ETIMEDOUT (it did
 * not come up within start_ns), -ENOMEM, and those of reap_proc_spawn().
 * On failure no process or file is left and *out is untouched.
 * Ownership: s owns the manager; closing s shuts it down (its clients
 * are disconnected) and reaps it. Thread safety: owner thread of s.
 */
#define reap_mgr_start(s, ...) reap_mgr_start_at((s), __VA_ARGS__, REAP_SITE)
REAP_API REAP_NODISCARD int reap_mgr_start_at(reap_scope *s,
					      const reap_mgr_opts *opts,
					      reap_mgr **out,
					      const reap_site *site)
	REAP_NONNULL(3, 4);

/* Where clients connect: "unix:PATH" or "tcp:127.0.0.1:PORT". Ownership:
 * m's string, valid until m's owner closes. Thread safety: any thread. */
REAP_API const char *reap_mgr_address(const reap_mgr *m) REAP_NONNULL(1);

/* The manager's process. Ownership: m's, closed with m; do not close
 * it. Thread safety: any thread. */
REAP_API reap_proc *reap_mgr_proc(reap_mgr *m) REAP_NONNULL(1);

/*
 * Shut the manager down now, as its owner's close would: SIGTERM (it
 * disconnects every client and removes its socket), the grace period,
 * SIGKILL if need be, reaped. Returns 0, or -ECANCELED if the calling
 * task was cancelled meanwhile (the manager is then killed).
 * Ownership: borrows m, which stays owned by its scope until that
 * closes. Thread safety: owner thread of
 * m's scope.
 */
REAP_API int reap_mgr_shutdown(reap_mgr *m) REAP_NONNULL(1);

#ifdef __cplusplus
}
#endif
#endif /* REAP_MGR_H */
