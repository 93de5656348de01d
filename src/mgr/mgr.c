/*
 * Starting and stopping managers (reap/mgr.h).
 *
 * A manager is a function child (reap/proc.h) running the server
 * (server.c) on its own loop. Its lifeline is armed with SIGTERM, not
 * SIGKILL, so that the death of its owner, however it comes, lets it do
 * what a shutdown does: disconnect its clients, remove its socket and
 * its private directory, exit. SIGTERM is blocked from the child's first
 * instruction on and read by the server's signalfd, so a death that
 * comes before the server is up is acted on as soon as it is.
 *
 * Readiness. The child reports on a close-on-exec pipe, once, either its
 * address ("unix:PATH" or "tcp:ADDR:PORT") or the negative errno of its
 * failure; the parent waits for that line with a deadline. Everything
 * of one manager lives in a scope of its own, a child of the owner's, so
 * that a failed start closes that scope and leaves nothing, and the
 * manager shows in the ledger as a scope named after it holding its
 * process.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/internal.h"
#include "server.h"

#define DEFAULT_GRACE_NS 5000000000ull
#define DEFAULT_START_NS 5000000000ull
#define ADDR_MAX 256

struct reap_mgr {
	reap_scope *scope; /* ours: holds the process */
	reap_proc *proc;
	char addr[ADDR_MAX];
};

struct child_args {
	const reap_mgr_opts *o;
	int ready[2];
};

/* In the manager: tell the parent where we listen, or why we do not. */
static void report(int fd, const char *line)
{
	size_t n = strlen(line);
	ssize_t w;

	while ((w = write(fd, line, n)) < 0 && errno == EINTR)
		;
	(void)w;
	close(fd);
}

static int manager_main(reap_scope *root, void *arg)
{
	struct child_args *a = arg;
	const reap_mgr_opts *o = a->o;
	reap__mgr_server_opts so = {0};
	reap__mgr_server *srv;
	reap_scope *ss;
	char line[ADDR_MAX + 8];
	sigset_t set;
	int rc;

	/* Before anything exists to clean up: from now on a SIGTERM (the
	 * owner's death, a shutdown) waits for the server's signalfd. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	close(a->ready[0]);

	so.unix_path = o->unix_path;
	so.unix_private = o->unix_path == NULL && o->tcp == NULL;
	so.tcp = o->tcp;
	so.key = o->key;
	so.key_len = o->key_len;
	so.handle_signals = true;
	so.spin_ns = o->spin_ns;
	/* The server lives in a scope closed before the child exits, so
	 * that nothing is left in its root to report. */
	if ((rc = reap_scope_open(root, &ss)) < 0 ||
	    (rc = reap__mgr_server_create(ss, &so, &srv)) < 0) {
		snprintf(line, sizeof line, "%d\n", rc);
		report(a->ready[1], line);
		return 1;
	}
	if (o->tcp != NULL) {
		const char *colon = strrchr(o->tcp, ':');
		int hl = colon ? (int)(colon - o->tcp) : (int)strlen(o->tcp);

		snprintf(line, sizeof line, "tcp:%.*s:%d\n", hl, o->tcp,
			 reap__mgr_server_port(srv));
	} else {
		snprintf(line, sizeof line, "unix:%s\n", reap__mgr_server_unix_path(srv));
	}
	report(a->ready[1], line);
	rc = reap__mgr_server_run(srv);
	/* Its sockets and its directory go now. */
	if (reap_scope_close(ss) < 0 && rc == 0)
		rc = -EIO;
	return rc < 0 ? 1 : 0;
}

/* Read the child's one line, until deadline: 0 with the address in buf,
 * the child's error, or -ETIMEDOUT / -EPROTO. */
static int read_ready(int fd, uint64_t deadline, char *buf, size_t cap)
{
	size_t n = 0;

	for (;;) {
		ssize_t r;
		int rc = reap_wait_fd(fd, REAP_READ, deadline);

		if (rc < 0)
			return rc;
		r = read(fd, buf + n, cap - 1 - n);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		n += (size_t)r;
		buf[n] = '\0';
		if (r == 0 || memchr(buf, '\n', n) != NULL || n == cap - 1)
			break;
	}
	if (n == 0 || buf[n - 1] != '\n')
		return -EPROTO; /* it died before saying anything */
	buf[n - 1] = '\0';
	if (buf[0] == '-') {
		long e = strtol(buf, NULL, 10);

		return e < 0 && e > -4096 ? (int)e : -EPROTO;
	}
	return 0;
}

int reap_mgr_start_at(reap_scope *s, const reap_mgr_opts *opts, reap_mgr **out,
		      const reap_site *site)
{
	static const reap_mgr_opts defaults;
	const reap_mgr_opts *o = opts != NULL ? opts : &defaults;
	struct child_args a = {.o = o, .ready = {-1, -1}};
	char line[ADDR_MAX + 8];
	reap_scope *ms;
	reap_mgr *m;
	uint64_t start_ns = o->start_ns ? o->start_ns : DEFAULT_START_NS;
	int rc;

	if (o->tcp != NULL && (o->key == NULL || o->key_len == 0))
		return reap_raisef(-EINVAL, "a manager on TCP needs a key");
	if (o->tcp != NULL && o->unix_path != NULL)
		return reap_raisef(-EINVAL, "a manager listens on a Unix socket or "
				   "on TCP, not both");
	if ((rc = reap_scope_open_at(s, &ms, site)) < 0)
		return rc;
	if ((rc = reap_scope_name(ms, "%s", o->name ? o->name : "manager")) < 0)
		goto fail;
	if ((m = reap_scope_alloc(ms, sizeof *m)) == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	memset(m, 0, sizeof *m);
	m->scope = ms;
	if (reap__fault_point()) {
		rc = -ENOMEM;
		goto fail;
	}
	if (pipe2(a.ready, O_CLOEXEC) != 0) {
		rc = -errno;
		goto fail;
	}
	rc = reap_proc_spawn_at(ms, &(reap_proc_opts){
					.fn = manager_main, .arg = &a,
					.name = o->name ? o->name : "manager",
					.term_signal = SIGTERM,
					.death_signal = SIGTERM,
					.grace_ns = o->grace_ns ? o->grace_ns
						    : DEFAULT_GRACE_NS},
				&m->proc, site);
	close(a.ready[1]);
	if (rc < 0)
		goto fail_pipe;
	rc = read_ready(a.ready[0], reap_now_ns() + start_ns, line, sizeof line);
	close(a.ready[0]);
	if (rc < 0)
		goto fail; /* the scope's close stops and reaps the child */
	if (strlen(line) >= sizeof m->addr) {
		rc = -ENAMETOOLONG;
		goto fail;
	}
	memcpy(m->addr, line, strlen(line) + 1);
	*out = m;
	return 0;

fail_pipe:
	close(a.ready[0]);
fail:
	(void)reap_scope_close(ms);
	return rc;
}

const char *reap_mgr_address(const reap_mgr *m)
{
	return m->addr;
}

reap_proc *reap_mgr_proc(reap_mgr *m)
{
	return m->proc;
}

int reap_mgr_shutdown(reap_mgr *m)
{
	return reap_proc_stop(m->proc, NULL);
}
