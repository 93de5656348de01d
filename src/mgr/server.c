/*
 * The manager's server: listeners, one loop task per connection, the
 * connection commands, and the store behind reap__mgr_exec().
 *
 * A connection task owns its connection: it reads into its query buffer
 * (big reads, grown as needed), parses every complete command in it,
 * dispatches each and appends the replies to one reply buffer, and
 * writes that buffer when the input holds no more complete command, so
 * that a pipelined batch costs one read and one write. While replies
 * are pending it waits for both readable and writable, and keeps
 * reading: a client that never reads its replies grows the reply buffer
 * until its limit, and is then closed, as Redis does. The task returns 0
 * whatever happens to its client, so that the group never cancels the
 * other clients because of one.
 *
 * A command the store answers with REAP__MGR_BLOCKED keeps its task
 * waiting on the connection's event, which the store's ready hook sets
 * when a key the command names changes (or any session ends), with the
 * command's deadline; the arguments stay valid meanwhile since
 * nothing is read into the query buffer. The wait wakes every 100 ms to
 * check, with a peek, that the peer is still there.
 *
 * Everything but reap__mgr_server_stop() and the stats runs on the loop
 * thread; the counters others read are relaxed atomics.
 */
#define _GNU_SOURCE
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "../loop/loop_internal.h"
#include "auth.h"
#include "db.h"

/* Busy polling by default (see reap__mgr_server_opts.spin_ns): a client
 * that sends its next request within 50 us of a reply finds the manager
 * awake. */
#define DEFAULT_SPIN_NS 50000ull

#define READ_CHUNK (16 * 1024)
#define BLOCK_POLL_NS (100 * 1000 * 1000ull)
#define EXPIRE_NS (100 * 1000 * 1000ull)
#define REDIS_COMPAT_VERSION "7.0.0"

enum { C_OK = 0, C_CLOSE = 1, C_DROP = 2 };

typedef struct conn conn;

#define WF_SLOTS 16384 /* a power of two */

struct reap__mgr_server {
	reap__mgr_db *db;
	reap__mgr_server_opts o;
	reap__resp_limits lim;
	uint8_t key[256];
	size_t key_len;
	bool has_key;
	uint8_t key_digest[REAP__SHA256_LEN];
	struct reap__hmac_sha256_key hkey;
	int unix_fd, tcp_fd, ctl_fd, sig_fd;
	int port;
	char unix_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char unix_dir[PATH_MAX];
	bool own_dir, has_unix;
	atomic_int stop;
	bool ran;
	reap_group *group;
	conn *conns;           /* every connection */
	conn *blocked;         /* connections waiting in a blocked command */
	/* How many blocked commands name a key hashing to each slot (see
	 * ready_hook): a change to a key no one waits on costs one load. */
	uint32_t wfilter[WF_SLOTS];
	uint64_t next_id;
	uint64_t start_ns;
	_Atomic uint64_t dispatched, accepted, rejected, clients, unauthed;
	_Atomic uint64_t closed_proto, closed_outbuf, closed_handshake;
	_Atomic uint64_t retries;
	uint64_t nblocked;
};

struct conn {
	reap__mgr_server *srv;
	conn *next, *prev;            /* srv->conns */
	conn *bnext, *bprev;          /* srv->blocked */
	int bargc;                    /* while blocked: the command, */
	const reap__resp_arg *bargv;  /* whose keys the ready hook matches */
	int fd;
	bool authed, in_blocked;
	bool idle;                    /* its task waits in conn_serve's wait */
	reap_task *task;
	bool kept;                    /* fd kept with the loop: forget before close */
	pid_t pid;
	reap__mgr_sess *sess;
	reap__resp_req req;
	reap__resp_buf out;
	size_t sent;                  /* bytes of out already written */
	char *q;
	size_t qlen, qpos, qcap;
	reap_event *ev;
	uint64_t start_ns, last_ns, hs_deadline;
	bool has_challenge;
	uint8_t ns[REAP__AUTH_NONCE_LEN];
	char addr[64];
	char lastcmd[32];             /* the last command's name, as sent */
};

static void ctr_add(_Atomic uint64_t *c, int64_t d)
{
	/* counters only: no ordering with anything else */
	atomic_fetch_add_explicit(c, (uint64_t)d, memory_order_relaxed);
}

static uint64_t ctr_get(const _Atomic uint64_t *c)
{
	return atomic_load_explicit((_Atomic uint64_t *)c, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static int err_str(conn *c, const char *s)
{
	return reap__resp_error(&c->out, s, strlen(s));
}

static int errf(conn *c, const char *fmt, ...) REAP_PRINTF(2, 3);
static int errf(conn *c, const char *fmt, ...)
{
	char buf[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	return reap__resp_error(&c->out, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static int ok(conn *c)
{
	return reap__resp_status(&c->out, "OK", 2);
}

static int bulk_str(conn *c, const char *s)
{
	return reap__resp_bulk(&c->out, s, strlen(s));
}

static int arity_err(conn *c, const char *cmd)
{
	return errf(c, "wrong number of arguments for '%s' command", cmd);
}

/* A growable text, for INFO and CLIENT LIST. */
typedef struct text {
	char *p;
	size_t len, cap;
	bool oom;
} text;

static void tf(text *t, const char *fmt, ...) REAP_PRINTF(2, 3);
static void tf(text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->oom)
		return;
	for (;;) {
		size_t room = t->cap - t->len;
		va_start(ap, fmt);
		n = vsnprintf(t->p ? t->p + t->len : NULL, room, fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->oom = true;
			return;
		}
		if ((size_t)n < room) {
			t->len += (size_t)n;
			return;
		}
		size_t ncap = t->cap ? t->cap * 2 : 1024;
		while (ncap - t->len <= (size_t)n)
			ncap *= 2;
		char *np = reap_realloc(t->p, ncap);
		if (np == NULL) {
			t->oom = true;
			return;
		}
		t->p = np;
		t->cap = ncap;
	}
}

/* ------------------------------------------------------------------ */
/* Output                                                               */

/* Write what is pending without waiting. 0, or a negative errno (the
 * peer is gone). */
static int conn_flush(conn *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.data + c->sent, c->out.len - c->sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->sent += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return n < 0 ? -errno : -EPIPE;
	}
	c->out.len = 0;
	c->sent = 0;
	return 0;
}

/* Drop the bytes already written, so that the buffer's limit counts
 * only what is pending. */
static void out_compact(conn *c)
{
	if (c->sent == 0)
		return;
	memmove(c->out.data, c->out.data + c->sent, c->out.len - c->sent);
	c->out.len -= c->sent;
	c->sent = 0;
}

/* Write everything pending, waiting up to 1 s (before a close). */
static void conn_flush_all(conn *c)
{
	uint64_t until = reap_now_ns() + 1000000000ull;
	while (c->sent < c->out.len) {
		if (conn_flush(c) < 0)
			return;
		if (c->sent < c->out.len &&
		    reap_wait_fd(c->fd, REAP_WRITE, until) < 0)
			return;
	}
}

/* ------------------------------------------------------------------ */
/* Authentication                                                       */

static void set_authed(conn *c)
{
	if (c->authed)
		return;
	c->authed = true;
	c->req.authed = true;
	ctr_add(&c->srv->unauthed, -1);
}

static bool password_ok(reap__mgr_server *srv, const reap__resp_arg *pass)
{
	uint8_t d[REAP__SHA256_LEN];

	/* Compare digests: the time depends on neither the key's length
	 * nor where the bytes differ. */
	reap__sha256(pass->p, pass->len, d);
	return reap__ct_equal(d, srv->key_digest, sizeof d) == 1;
}

/* The default user's check, as Redis's ACL with requirepass: the user
 * must be "default"; without a key, any password is accepted for it. */
static bool user_pass_ok(reap__mgr_server *srv, const reap__resp_arg *user,
			 const reap__resp_arg *pass)
{
	bool pass_ok = srv->has_key ? password_ok(srv, pass) : true;
	bool user_ok = user->len == 7 && memcmp(user->p, "default", 7) == 0;
	return pass_ok && user_ok;
}

static const char wrongpass[] =
	"-WRONGPASS invalid username-password pair or user is disabled.";

static int cmd_auth(conn *c, int argc, const reap__resp_arg *argv)
{
	reap__mgr_server *srv = c->srv;

	if (argc < 2)
		return arity_err(c, "auth");
	if (argc > 3)
		return err_str(c, "syntax error");
	if (argc == 2) {
		if (!srv->has_key)
			return err_str(c, "AUTH <password> called without any password "
					  "configured for the default user. Are you sure "
					  "your configuration is correct?");
		if (!password_ok(srv, &argv[1]))
			return err_str(c, wrongpass);
	} else if (!user_pass_ok(srv, &argv[1], &argv[2])) {
		return err_str(c, wrongpass);
	}
	set_authed(c);
	return ok(c);
}

/* Client names: Redis allows '!' to '~' only. */
static bool name_valid(const reap__resp_arg *a)
{
	for (size_t i = 0; i < a->len; i++)
		if (a->p[i] < '!' || a->p[i] > '~')
			return false;
	return true;
}

static int set_name_or_reply(conn *c, const reap__resp_arg *a)
{
	if (!name_valid(a)) {
		int r = err_str(c, "Client names cannot contain spaces, newlines or "
				   "special characters.");
		return r < 0 ? r : 1;
	}
	int r = reap__mgr_sess_set_name(c->sess, a->p, a->len);
	return r < 0 ? r : 0;
}

static int cmd_hello(conn *c, int argc, const reap__resp_arg *argv)
{
	int64_t ver = 0;
	int j = 1, r;
	const reap__resp_arg *user = NULL, *pass = NULL, *name = NULL;

	if (argc >= 2) {
		j = 2;
		if (!reap__resp_parse_ll(argv[1].p, argv[1].len, &ver))
			return err_str(c, "Protocol version is not an integer or out of range");
		if (ver < 2 || ver > 3)
			return err_str(c, "-NOPROTO unsupported protocol version");
	}
	for (; j < argc; j++) {
		int more = argc - 1 - j;
		if (reap__resp_arg_is(&argv[j], "AUTH") && more >= 2) {
			user = &argv[j + 1];
			pass = &argv[j + 2];
			j += 2;
		} else if (reap__resp_arg_is(&argv[j], "SETNAME") &&
			   more >= 1) {
			name = &argv[j + 1];
			j++;
		} else {
			return errf(c, "Syntax error in HELLO option '%.*s'",
				    (int)(argv[j].len > 128 ? 128 : argv[j].len), argv[j].p);
		}
	}
	if (user) {
		if (!user_pass_ok(c->srv, user, pass))
			return err_str(c, wrongpass);
		set_authed(c);
	}
	if (!c->authed)
		return err_str(c, "-NOAUTH HELLO must be called with the client already "
				  "authenticated, otherwise the HELLO AUTH <user> <pass> "
				  "option can be used to authenticate the client and "
				  "select the RESP protocol version at the same time");
	if (name && (r = set_name_or_reply(c, name)) != 0)
		return r < 0 ? r : 0;
	if (ver) {
		reap__mgr_sess_set_proto(c->sess, (int)ver);
		c->out.proto = (int)ver;
	}
	if ((r = reap__resp_map(&c->out, 7)) < 0 ||
	    (r = bulk_str(c, "server")) < 0 || (r = bulk_str(c, "reap")) < 0 ||
	    (r = bulk_str(c, "version")) < 0 ||
	    (r = bulk_str(c, REDIS_COMPAT_VERSION)) < 0 ||
	    (r = bulk_str(c, "proto")) < 0 || (r = reap__resp_int(&c->out, c->out.proto)) < 0 ||
	    (r = bulk_str(c, "id")) < 0 ||
	    (r = reap__resp_int(&c->out, (int64_t)reap__mgr_sess_id(c->sess))) < 0 ||
	    (r = bulk_str(c, "mode")) < 0 || (r = bulk_str(c, "standalone")) < 0 ||
	    (r = bulk_str(c, "role")) < 0 || (r = bulk_str(c, "master")) < 0 ||
	    (r = bulk_str(c, "modules")) < 0 || (r = reap__resp_array(&c->out, 0)) < 0)
		return r;
	return 0;
}

/* REAP.CHALLENGE: a fresh 32-byte server nonce. */
static int cmd_challenge(conn *c, int argc)
{
	int r;

	if (argc != 1)
		return arity_err(c, "reap.challenge");
	if (!c->srv->has_key)
		return err_str(c, "REAP.CHALLENGE called without a key configured on the server");
	if ((r = reap__random_bytes(c->ns, sizeof c->ns)) < 0)
		return err_str(c, "cannot read random bytes");
	c->has_challenge = true;
	return reap__resp_bulk(&c->out, c->ns, sizeof c->ns);
}

/* REAP.PROVE nc proof: the client's proof; the reply is the server's. */
static int cmd_prove(conn *c, int argc, const reap__resp_arg *argv)
{
	uint8_t sp[REAP__AUTH_PROOF_LEN];
	reap__mgr_server *srv = c->srv;
	bool had = c->has_challenge;

	if (argc != 3)
		return arity_err(c, "reap.prove");
	c->has_challenge = false; /* every challenge is single-use */
	if (!had)
		return err_str(c, "REAP.PROVE without a pending REAP.CHALLENGE");
	if (argv[1].len != REAP__AUTH_NONCE_LEN || argv[2].len != REAP__AUTH_PROOF_LEN)
		return err_str(c, wrongpass);
	if (reap__auth_client_verify_k(&srv->hkey, c->ns, (const uint8_t *)argv[1].p,
				       (const uint8_t *)argv[2].p) != 0)
		return err_str(c, wrongpass);
	set_authed(c);
	reap__auth_server_proof_k(&srv->hkey, c->ns, (const uint8_t *)argv[1].p, sp);
	return reap__resp_bulk(&c->out, sp, sizeof sp);
}

/* ------------------------------------------------------------------ */
/* Connection commands                                                  */

static void client_line(text *t, conn *x)
{
	uint64_t now = reap_now_ns();
	char cmd[sizeof x->lastcmd];
	size_t i;

	for (i = 0; x->lastcmd[i]; i++)
		cmd[i] = reap__resp_lc(x->lastcmd[i]);
	cmd[i] = 0;
	tf(t, "id=%llu addr=%s fd=%d name=%s age=%llu idle=%llu flags=%s db=0 "
	      "qbuf=%zu obl=%zu cmd=%s user=default pid=%d resp=%d\n",
	   (unsigned long long)reap__mgr_sess_id(x->sess), x->addr, x->fd,
	   reap__mgr_sess_name(x->sess),
	   (unsigned long long)((now - x->start_ns) / 1000000000ull),
	   (unsigned long long)((now - x->last_ns) / 1000000000ull),
	   x->in_blocked ? "b" : "N", x->qlen - x->qpos, x->out.len - x->sent,
	   cmd[0] ? cmd : "NULL", (int)x->pid, x->out.proto);
}

static int reply_text(conn *c, text *t)
{
	if (t->oom) {
		reap_free(t->p);
		return -ENOMEM;
	}
	int r = reap__resp_verbatim(&c->out, "txt", t->p ? t->p : "", t->len);
	reap_free(t->p);
	return r;
}

/*
 * CLIENT TRACKING ON|OFF [NOLOOP]: Redis 7.0's parsing (options first,
 * a syntax error for unknown ones, then the mode); REDIRECT, BCAST,
 * PREFIX, OPTIN and OPTOUT parse but are refused with ON (OFF ignores
 * its options, as Redis does). In RESP2 tracking is accepted and sends
 * nothing, as Redis without REDIRECT.
 */
static int cmd_tracking(conn *c, int argc, const reap__resp_arg *argv)
{
	static const char *const unsupported[] = {"BCAST", "OPTIN", "OPTOUT"};
	const char *unsup = NULL;
	bool noloop = false;

	if (argc < 3)
		return arity_err(c, "client|tracking");
	for (int j = 3; j < argc; j++) {
		int more = argc - 1 - j;
		const reap__resp_arg *a = &argv[j];
		bool known = false;

		if (reap__resp_arg_is(a, "NOLOOP")) {
			noloop = known = true;
		} else if ((reap__resp_arg_is(a, "REDIRECT") ||
			    reap__resp_arg_is(a, "PREFIX")) && more) {
			if (unsup == NULL)
				unsup = reap__resp_arg_is(a, "PREFIX") ? "PREFIX"
								      : "REDIRECT";
			known = true;
			j++;
		}
		for (size_t k = 0; !known && k < sizeof unsupported / sizeof *unsupported; k++)
			if (reap__resp_arg_is(a, unsupported[k])) {
				if (unsup == NULL)
					unsup = unsupported[k];
				known = true;
			}
		if (!known)
			return err_str(c, "syntax error");
	}
	if (reap__resp_arg_is(&argv[2], "ON")) {
		if (unsup)
			return errf(c, "CLIENT TRACKING %s is not supported by "
				       "reap-manager (only the default mode and NOLOOP)",
				    unsup);
		reap__mgr_sess_track(c->srv->db, c->sess, true, noloop);
	} else if (reap__resp_arg_is(&argv[2], "OFF")) {
		reap__mgr_sess_track(c->srv->db, c->sess, false, false);
	} else {
		return err_str(c, "syntax error");
	}
	return ok(c);
}

static int cmd_client(conn *c, int argc, const reap__resp_arg *argv)
{
	int r;

	if (argc < 2)
		return arity_err(c, "client");
	const reap__resp_arg *sub = &argv[1];
	if (reap__resp_arg_is(sub, "ID")) {
		if (argc != 2)
			return arity_err(c, "client|id");
		return reap__resp_int(&c->out, (int64_t)reap__mgr_sess_id(c->sess));
	}
	if (reap__resp_arg_is(sub, "SETNAME")) {
		if (argc != 3)
			return arity_err(c, "client|setname");
		r = set_name_or_reply(c, &argv[2]);
		if (r != 0)
			return r < 0 ? r : 0;
		return ok(c);
	}
	if (reap__resp_arg_is(sub, "GETNAME")) {
		if (argc != 2)
			return arity_err(c, "client|getname");
		const char *n = reap__mgr_sess_name(c->sess);
		return n[0] ? bulk_str(c, n) : reap__resp_null(&c->out);
	}
	if (reap__resp_arg_is(sub, "LIST")) {
		text t = {0};
		for (conn *x = c->srv->conns; x; x = x->next)
			client_line(&t, x);
		return reply_text(c, &t);
	}
	if (reap__resp_arg_is(sub, "INFO")) {
		text t = {0};
		client_line(&t, c);
		return reply_text(c, &t);
	}
	if (reap__resp_arg_is(sub, "TRACKING"))
		return cmd_tracking(c, argc, argv);
	return errf(c, "unknown subcommand '%.*s'. Try CLIENT HELP.",
		    (int)(sub->len > 128 ? 128 : sub->len), sub->p);
}

static bool section_on(const char *want, const char *name)
{
	return want == NULL || strcasecmp(want, name) == 0 ||
	       strcasecmp(want, "all") == 0 || strcasecmp(want, "default") == 0 ||
	       strcasecmp(want, "everything") == 0;
}

static int cmd_info(conn *c, int argc, const reap__resp_arg *argv)
{
	reap__mgr_server *srv = c->srv;
	reap__mgr_db_stats st;
	text t = {0};
	char want[32];
	const char *w = NULL;
	bool first = true;
	uint64_t now = reap_now_ns();

	if (argc > 2)
		return err_str(c, "syntax error");
	if (argc == 2) {
		size_t n = argv[1].len < sizeof want - 1 ? argv[1].len : sizeof want - 1;
		memcpy(want, argv[1].p, n);
		want[n] = 0;
		w = want;
	}
	reap__mgr_db_stats_get(srv->db, &st);
	if (section_on(w, "server")) {
		struct utsname u;
		if (uname(&u) != 0)
			memset(&u, 0, sizeof u);
		tf(&t, "# Server\r\nredis_version:%s\r\nreap_version:%s\r\n"
		       "redis_mode:standalone\r\nos:%s %s %s\r\narch_bits:%d\r\n"
		       "multiplexing_api:epoll\r\nprocess_id:%d\r\ntcp_port:%d\r\n"
		       "uptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n",
		   REDIS_COMPAT_VERSION, "0.1.0", u.sysname, u.release, u.machine,
		   (int)(sizeof(void *) * 8), (int)getpid(), srv->port,
		   (unsigned long long)((now - srv->start_ns) / 1000000000ull),
		   (unsigned long long)((now - srv->start_ns) / 86400000000000ull));
		first = false;
	}
	if (section_on(w, "clients")) {
		tf(&t, "%s# Clients\r\nconnected_clients:%llu\r\nblocked_clients:%llu\r\n"
		       "unauthenticated_clients:%llu\r\nmaxclients:%u\r\n",
		   first ? "" : "\r\n", (unsigned long long)ctr_get(&srv->clients),
		   (unsigned long long)srv->nblocked,
		   (unsigned long long)ctr_get(&srv->unauthed), srv->o.max_clients);
		first = false;
	}
	if (section_on(w, "stats")) {
		tf(&t, "%s# Stats\r\ntotal_connections_received:%llu\r\n"
		       "total_commands_processed:%llu\r\nrejected_connections:%llu\r\n"
		       "reclaimed_objects:%llu\r\nclosed_protocol_errors:%llu\r\n"
		       "closed_output_limit:%llu\r\nclosed_handshake_timeout:%llu\r\n",
		   first ? "" : "\r\n", (unsigned long long)ctr_get(&srv->accepted),
		   (unsigned long long)ctr_get(&srv->dispatched),
		   (unsigned long long)ctr_get(&srv->rejected),
		   (unsigned long long)st.reclaimed,
		   (unsigned long long)ctr_get(&srv->closed_proto),
		   (unsigned long long)ctr_get(&srv->closed_outbuf),
		   (unsigned long long)ctr_get(&srv->closed_handshake));
		first = false;
	}
	if (section_on(w, "keyspace")) {
		tf(&t, "%s# Keyspace\r\n", first ? "" : "\r\n");
		if (st.keys)
			tf(&t, "db0:keys=%llu,expires=0,avg_ttl=0\r\n",
			   (unsigned long long)st.keys);
	}
	return reply_text(c, &t);
}

/* CONFIG GET: the parameters tools ask for, with a default Redis's
 * values where they apply to the manager. */
static int cmd_config(conn *c, int argc, const reap__resp_arg *argv)
{
	char maxc[24];
	const char *tab[][2] = {
		{"save", ""},          {"appendonly", "no"},
		{"databases", "1"},    {"maxclients", maxc},
		{"maxmemory", "0"},    {"maxmemory-policy", "noeviction"},
	};
	size_t ntab = sizeof tab / sizeof tab[0];
	bool hit[sizeof tab / sizeof tab[0]] = {0};
	size_t nhit = 0;
	int r;

	snprintf(maxc, sizeof maxc, "%u", c->srv->o.max_clients);
	if (argc < 2)
		return arity_err(c, "config");
	const reap__resp_arg *sub = &argv[1];

	if (!reap__resp_arg_is(sub, "GET")) {
		if (reap__resp_arg_is(sub, "SET") ||
		    reap__resp_arg_is(sub, "RESETSTAT") ||
		    reap__resp_arg_is(sub, "REWRITE"))
			return errf(c, "CONFIG %.*s is not supported by reap-manager",
				    (int)argv[1].len, argv[1].p);
		return errf(c, "unknown subcommand '%.*s'. Try CONFIG HELP.",
			    (int)(argv[1].len > 128 ? 128 : argv[1].len), argv[1].p);
	}
	if (argc < 3)
		return arity_err(c, "config|get");
	for (int i = 2; i < argc; i++) {
		char pat[128];
		size_t n = argv[i].len < sizeof pat - 1 ? argv[i].len : sizeof pat - 1;
		memcpy(pat, argv[i].p, n);
		pat[n] = 0;
		for (size_t k = 0; k < ntab; k++)
			if (!hit[k] && fnmatch(pat, tab[k][0], FNM_CASEFOLD) == 0) {
				hit[k] = true;
				nhit++;
			}
	}
	if ((r = reap__resp_map(&c->out, (int64_t)nhit)) < 0)
		return r;
	for (size_t k = 0; k < ntab; k++)
		if (hit[k] && ((r = bulk_str(c, tab[k][0])) < 0 ||
			       (r = bulk_str(c, tab[k][1])) < 0))
			return r;
	return 0;
}

/* COMMAND: reap-manager publishes no command table (yet): empty
 * replies, which redis-cli accepts (it then offers no hints). */
static int cmd_command(conn *c, int argc, const reap__resp_arg *argv)
{
	if (argc == 1)
		return reap__resp_array(&c->out, 0);
	if (reap__resp_arg_is(&argv[1], "DOCS"))
		return reap__resp_map(&c->out, 0);
	if (reap__resp_arg_is(&argv[1], "COUNT"))
		return argc == 2 ? reap__resp_int(&c->out, 0) : arity_err(c, "command|count");
	if (reap__resp_arg_is(&argv[1], "INFO")) {
		int r = reap__resp_array(&c->out, argc - 2);
		for (int i = 2; r == 0 && i < argc; i++)
			r = reap__resp_null_array(&c->out);
		return r;
	}
	if (reap__resp_arg_is(&argv[1], "LIST"))
		return reap__resp_array(&c->out, 0);
	return errf(c, "unknown subcommand '%.*s'. Try COMMAND HELP.",
		    (int)(argv[1].len > 128 ? 128 : argv[1].len), argv[1].p);
}

static int cmd_select(conn *c, int argc, const reap__resp_arg *argv)
{
	int64_t id;

	if (argc != 2)
		return arity_err(c, "select");
	if (!reap__resp_parse_ll(argv[1].p, argv[1].len, &id))
		return err_str(c, "value is not an integer or out of range");
	if (id != 0)
		return err_str(c, "DB index is out of range");
	return ok(c);
}

static void server_stop_now(reap__mgr_server *srv)
{
	reap__mgr_server_stop(srv);
}

/* 1: shut down (no reply); else a reply was written. */
static int cmd_shutdown(conn *c, int argc, const reap__resp_arg *argv)
{
	for (int i = 1; i < argc; i++) {
		const reap__resp_arg *a = &argv[i];

		if (reap__resp_arg_is(a, "ABORT"))
			return err_str(c, "No shutdown in progress.");
		if (!(reap__resp_arg_is(a, "NOSAVE") ||
		      reap__resp_arg_is(a, "SAVE") ||
		      reap__resp_arg_is(a, "NOW") ||
		      reap__resp_arg_is(a, "FORCE")))
			return err_str(c, "syntax error");
	}
	server_stop_now(c->srv);
	return 1;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                             */

/* Does b's blocked command name key? Any argument after the command's
 * name is compared: a timeout that happens to equal the key costs one
 * spurious retry, nothing more. */
static bool names_key(const conn *b, const char *key, size_t klen)
{
	for (int i = 1; i < b->bargc; i++)
		if (b->bargv[i].len == klen && memcmp(b->bargv[i].p, key, klen) == 0)
			return true;
	return false;
}

static uint32_t wf_slot(const char *key, size_t klen)
{
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */

	for (size_t i = 0; i < klen; i++)
		h = (h ^ (unsigned char)key[i]) * 0x100000001b3ull;
	return (uint32_t)(h ^ (h >> 32)) & (WF_SLOTS - 1);
}

/* Count b's command in (d = 1) or out (d = -1) of the filter: every
 * argument that names_key() compares. */
static void wf_count(reap__mgr_server *srv, const conn *b, int d)
{
	for (int i = 1; i < b->bargc; i++)
		srv->wfilter[wf_slot(b->bargv[i].p, b->bargv[i].len)] += (uint32_t)d;
}

/* Retry the blocked commands that the change may let proceed: those
 * that name key, or all (key NULL). A push to one queue wakes the
 * workers blocked on it, not every blocked client; a change to a key
 * that no blocked command names (the filter's slot is 0: no false
 * negatives, since every blocked command is counted) looks at none. */
static void ready_hook(void *ctx, const char *key, size_t klen)
{
	reap__mgr_server *srv = ctx;

	if (key != NULL && srv->wfilter[wf_slot(key, klen)] == 0)
		return;
	for (conn *b = srv->blocked; b; b = b->bnext)
		if (b->ev && (key == NULL || names_key(b, key, klen)))
			reap_event_set(b->ev);
}

/* The store appended an invalidation to a client's reply buffer (rc 0),
 * or could not (rc < 0). A client idle in its wait is woken to write it
 * (its wait asked for input only); one in a blocked command, through its
 * event (a spurious retry, which writes what is pending first). One that
 * missed an invalidation is disconnected: its cache would stay stale. */
static void push_hook(void *ctx, reap__mgr_sess *s, int rc)
{
	conn *c = reap__mgr_sess_ctx(s);

	(void)ctx;
	if (c == NULL)
		return;
	if (rc < 0) {
		if (rc == -ENOBUFS)
			ctr_add(&c->srv->closed_outbuf, 1);
		(void)shutdown(c->fd, SHUT_RDWR);
		return;
	}
	if (c->idle && c->task)
		reap__wake(c->task, REAP_WRITE); /* ends its wait_fd, as a cancel would */
	else if (c->in_blocked && c->ev)
		reap_event_set(c->ev);
}

static void blocked_add(conn *c)
{
	reap__mgr_server *srv = c->srv;
	c->bprev = NULL;
	c->bnext = srv->blocked;
	if (srv->blocked)
		srv->blocked->bprev = c;
	srv->blocked = c;
	c->in_blocked = true;
	srv->nblocked++;
	wf_count(srv, c, 1);
}

static void blocked_del(conn *c)
{
	reap__mgr_server *srv = c->srv;
	if (!c->in_blocked)
		return;
	LIST_UNLINK(srv->blocked, c, bprev, bnext);
	c->in_blocked = false;
	srv->nblocked--;
	wf_count(srv, c, -1);
}

/* Is the peer gone? A peek that reads nothing. */
static bool peer_gone(conn *c)
{
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
	if (n == 0)
		return true;
	return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

/* Wait for a blocked command to proceed or time out; C_OK when its
 * reply is written, C_DROP when the peer left, or a negative errno. */
static int conn_block(conn *c, int argc, const reap__resp_arg *argv,
		      reap__mgr_block *blk)
{
	reap__mgr_server *srv = c->srv;
	int r, ret;

	if (c->ev == NULL && (r = reap_event_create(NULL, &c->ev)) < 0)
		return r;
	reap_event_clear(c->ev);
	c->bargc = argc;
	c->bargv = argv;
	blocked_add(c);
	for (;;) {
		/* the replies before the blocked command go out now */
		if ((r = conn_flush(c)) < 0) {
			ret = C_DROP;
			break;
		}
		uint64_t now = reap_now_ns();
		uint64_t until = blk->deadline_ns;
		if (until == REAP_FOREVER || until > now + BLOCK_POLL_NS)
			until = now + BLOCK_POLL_NS;
		r = reap_event_wait(c->ev, until);
		int timed_out = 0;
		if (r == 0) {
			reap_event_clear(c->ev);
		} else if (r == -ETIMEDOUT) {
			if (blk->deadline_ns != REAP_FOREVER &&
			    reap_now_ns() >= blk->deadline_ns) {
				timed_out = 1;
			} else {
				if (peer_gone(c)) {
					ret = C_DROP;
					break;
				}
				continue;
			}
		} else {
			ret = r; /* -ECANCELED: the server stops */
			break;
		}
		/* A retry, not a new command: counted once, by dispatch(). */
		ctr_add(&srv->retries, 1);
		r = reap__mgr_exec(srv->db, c->sess, argc, argv, timed_out, &c->out, blk);
		if (r != REAP__MGR_BLOCKED) {
			ret = r;
			break;
		}
		if (timed_out) { /* the store must answer at its deadline */
			ret = err_str(c, "blocked command did not time out");
			break;
		}
	}
	blocked_del(c);
	return ret;
}

/* A container command's last name carries its subcommand, as Redis 7
 * shows it in CLIENT LIST ("client|list"). */
static void last_sub(conn *c, int argc, const reap__resp_arg *argv)
{
	size_t cap = sizeof c->lastcmd - 1, n = strlen(c->lastcmd), m;

	if (argc < 2 || n >= cap)
		return;
	m = argv[1].len < cap - n - 1 ? argv[1].len : cap - n - 1;
	c->lastcmd[n++] = '|';
	memcpy(c->lastcmd + n, argv[1].p, m);
	c->lastcmd[n + m] = 0;
}

/* Run one command. C_OK, C_CLOSE (reply, then close), C_DROP (close
 * now), or a negative errno (-ENOMEM, -ENOBUFS: close now). */
static int dispatch(conn *c, int argc, const reap__resp_arg *argv)
{
	reap__mgr_server *srv = c->srv;
	const reap__resp_arg *cmd = &argv[0];
	int r;

	{
		/* as sent: CLIENT LIST lowers it, off the hot path */
		size_t n = cmd->len < sizeof c->lastcmd - 1 ? cmd->len : sizeof c->lastcmd - 1;
		memcpy(c->lastcmd, cmd->p, n);
		c->lastcmd[n] = 0;
	}
	/* The commands allowed before authentication, then the
	 * connection's own; the first letter picks the candidates, so that
	 * the store's commands cost one switch here. */
	char first = cmd->len ? (char)(cmd->p[0] & ~0x20) : 0;

	switch (first) {
	case 'A':
		if (reap__resp_arg_is(cmd, "AUTH"))
			return cmd_auth(c, argc, argv);
		break;
	case 'H':
		if (reap__resp_arg_is(cmd, "HELLO"))
			return cmd_hello(c, argc, argv);
		break;
	case 'Q':
		if (reap__resp_arg_is(cmd, "QUIT")) {
			r = ok(c);
			return r < 0 ? r : C_CLOSE;
		}
		break;
	case 'R':
		if (reap__resp_arg_is(cmd, "REAP.CHALLENGE"))
			return cmd_challenge(c, argc);
		if (reap__resp_arg_is(cmd, "REAP.PROVE"))
			return cmd_prove(c, argc, argv);
		break;
	default:
		break;
	}
	if (!c->authed)
		return err_str(c, "-NOAUTH Authentication required.");

	ctr_add(&srv->dispatched, 1);
	switch (first) {
	case 'C':
		if (reap__resp_arg_is(cmd, "CLIENT")) {
			last_sub(c, argc, argv);
			return cmd_client(c, argc, argv);
		}
		if (reap__resp_arg_is(cmd, "CONFIG")) {
			last_sub(c, argc, argv);
			return cmd_config(c, argc, argv);
		}
		if (reap__resp_arg_is(cmd, "COMMAND")) {
			last_sub(c, argc, argv);
			return cmd_command(c, argc, argv);
		}
		break;
	case 'I':
		if (reap__resp_arg_is(cmd, "INFO"))
			return cmd_info(c, argc, argv);
		break;
	case 'S':
		if (reap__resp_arg_is(cmd, "SELECT"))
			return cmd_select(c, argc, argv);
		if (reap__resp_arg_is(cmd, "SHUTDOWN")) {
			r = cmd_shutdown(c, argc, argv);
			return r == 1 ? C_DROP : r;
		}
		break;
	default:
		break;
	}
	reap__mgr_block blk = {REAP_FOREVER};
	/* The time of the read: exec cannot suspend, so no other
	 * connection runs with it. */
	reap__mgr_db_set_now(srv->db, c->last_ns);
	r = reap__mgr_exec(srv->db, c->sess, argc, argv, 0, &c->out, &blk);
	reap__mgr_db_set_now(srv->db, 0);
	if (r == REAP__MGR_BLOCKED)
		r = conn_block(c, argc, argv, &blk);
	return r;
}

/* Parse and run every complete command in the query buffer. */
static int conn_process(conn *c)
{
	int r;

	out_compact(c);
	while (c->qpos < c->qlen) {
		size_t used = 0;
		r = reap__resp_req_parse(&c->req, c->q + c->qpos, c->qlen - c->qpos, &used);
		if (r < 0)
			return r;
		c->qpos += used;
		if (r == REAP__RESP_MORE)
			break;
		if (r == REAP__RESP_PROTO) {
			ctr_add(&c->srv->closed_proto, 1);
			c->out.limit = 0; /* the error always goes out */
			r = reap__resp_raw(&c->out, c->req.err, c->req.err_len);
			return r < 0 ? r : C_CLOSE;
		}
		r = dispatch(c, c->req.argc, c->req.argv);
		if (r != C_OK)
			return r;
	}
	if (c->qpos == c->qlen) {
		c->qpos = c->qlen = 0;
	} else if (c->qpos > 0) {
		memmove(c->q, c->q + c->qpos, c->qlen - c->qpos);
		c->qlen -= c->qpos;
		c->qpos = 0;
	}
	return C_OK;
}

/* Read what is there. 1: read something, 0: nothing now, C_DROP on end
 * of file or error, -ENOMEM, -E2BIG past the query buffer limit. */
static int conn_read(conn *c)
{
	if (c->qcap - c->qlen < READ_CHUNK) {
		size_t ncap = c->qcap ? c->qcap * 2 : READ_CHUNK * 2;
		while (ncap - c->qlen < READ_CHUNK)
			ncap *= 2;
		if (ncap > c->srv->o.query_limit + READ_CHUNK * 2)
			return -E2BIG;
		char *nq = reap_realloc(c->q, ncap);
		if (nq == NULL)
			return -ENOMEM;
		c->q = nq;
		c->qcap = ncap;
	}
	for (;;) {
		ssize_t n = recv(c->fd, c->q + c->qlen, c->qcap - c->qlen, MSG_DONTWAIT);
		if (n > 0) {
			c->qlen += (size_t)n;
			c->last_ns = reap_now_ns();
			return 1;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return C_DROP;
	}
}

static int conn_serve(conn *c)
{
	int r;

	for (;;) {
		r = conn_process(c);
		if (r == -ENOBUFS)
			ctr_add(&c->srv->closed_outbuf, 1);
		if (r == C_CLOSE) {
			conn_flush_all(c);
			return 0;
		}
		if (r != C_OK)
			return r;
		if ((r = conn_flush(c)) < 0)
			return r;
		unsigned ev = REAP_READ | (c->sent < c->out.len ? REAP_WRITE : 0);
		uint64_t until = c->authed ? REAP_FOREVER : c->hs_deadline;
		c->idle = true;
		r = reap_wait_fd(c->fd, ev, until);
		c->idle = false;
		if (r == -ETIMEDOUT && !c->authed) {
			ctr_add(&c->srv->closed_handshake, 1);
			return r;
		}
		if (r < 0)
			return r;
		if ((r & REAP_WRITE) && (r = conn_flush(c)) < 0)
			return r;
		r = conn_read(c);
		if (r < 0 || r == C_DROP)
			return r;
	}
}

static void conn_free(conn *c)
{
	reap__mgr_server *srv = c->srv;

	blocked_del(c);
	LIST_UNLINK(srv->conns, c, prev, next);
	if (c->sess)
		reap__mgr_sess_close(srv->db, c->sess);
	if (!c->authed)
		ctr_add(&srv->unauthed, -1);
	ctr_add(&srv->clients, -1);
	if (c->kept)
		reap__loop_fd_forget(c->fd);
	close(c->fd);
	reap__resp_req_fini(&c->req);
	reap__resp_buf_fini(&c->out);
	reap_free(c->q);
	reap_free(c);
}

static int conn_task(void *arg, void **result)
{
	conn *c = arg;

	c->task = reap__task_cur();
	/* A persistent interest: no epoll_ctl per request. Without it
	 * (no memory), each wait arms a one-shot, which works as well. */
	c->kept = reap__loop_fd_keep(c->fd) == 0;
	(void)conn_serve(c);
	conn_free(c);
	return 0; /* one client's end is never the group's failure */
}

static void refuse(reap__mgr_server *srv, int fd, const char *msg)
{
	if (msg)
		(void)!send(fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT);
	close(fd);
	ctr_add(&srv->rejected, 1);
}

static void accept_conn(reap__mgr_server *srv, int fd, bool is_unix)
{
	pid_t pid = 0;
	char addr[64] = "?";

	ctr_add(&srv->accepted, 1);
	if (is_unix) {
		struct ucred cr;
		socklen_t len = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) != 0 ||
		    cr.uid != geteuid()) {
			refuse(srv, fd, NULL);
			return;
		}
		pid = cr.pid;
		snprintf(addr, sizeof addr, "%.50s:0", srv->unix_path);
	} else {
		int one = 1;
		struct sockaddr_in sa;
		socklen_t len = sizeof sa;
		char ip[INET_ADDRSTRLEN];
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		if (getpeername(fd, (struct sockaddr *)&sa, &len) == 0 &&
		    inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof ip))
			snprintf(addr, sizeof addr, "%s:%u", ip, ntohs(sa.sin_port));
	}
	if (ctr_get(&srv->clients) >= srv->o.max_clients) {
		refuse(srv, fd, "-ERR max number of clients reached\r\n");
		return;
	}
	if (srv->has_key && ctr_get(&srv->unauthed) >= srv->o.max_unauth) {
		refuse(srv, fd, "-ERR max number of unauthenticated connections reached\r\n");
		return;
	}
	conn *c = reap_calloc(1, sizeof *c);
	if (c == NULL) {
		refuse(srv, fd, NULL);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->pid = pid;
	c->authed = !srv->has_key;
	c->start_ns = c->last_ns = reap_now_ns();
	c->hs_deadline = c->start_ns + srv->o.handshake_ns;
	memcpy(c->addr, addr, sizeof addr);
	if (reap__mgr_sess_open(srv->db, pid, &c->sess) < 0) {
		reap_free(c);
		refuse(srv, fd, NULL);
		return;
	}
	reap__resp_req_init(&c->req, &srv->lim);
	c->req.authed = c->authed;
	reap__resp_buf_init(&c->out, 2, srv->o.out_limit);
	reap__mgr_sess_attach(c->sess, &c->out, c);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	ctr_add(&srv->clients, 1);
	if (!c->authed)
		ctr_add(&srv->unauthed, 1);
	reap_task_opts to = {.name = "mgr-conn"};
	if (reap_task_spawn_opts(srv->group, &to, conn_task, c, NULL) < 0) {
		conn_free(c);
		ctr_add(&srv->rejected, 1);
	}
}

typedef struct listener {
	reap__mgr_server *srv;
	int fd;
	bool is_unix;
} listener;

static int accept_task(void *arg, void **result)
{
	listener *l = arg;

	for (;;) {
		int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd >= 0) {
			accept_conn(l->srv, fd, l->is_unix);
			continue;
		}
		int e = errno, r;
		if (e == EAGAIN || e == EWOULDBLOCK)
			r = reap_wait_fd(l->fd, REAP_READ, REAP_FOREVER);
		else if (e == EINTR || e == ECONNABORTED || e == EPROTO)
			r = 0;
		else /* EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for fds to free */
			r = reap_sleep(10 * 1000 * 1000);
		if (r < 0)
			return 0;
	}
}

static int signal_task(void *arg, void **result)
{
	reap__mgr_server *srv = arg;
	struct signalfd_siginfo si;

	while (reap_wait_fd(srv->sig_fd, REAP_READ, REAP_FOREVER) > 0) {
		if (read(srv->sig_fd, &si, sizeof si) == (ssize_t)sizeof si) {
			reap__mgr_server_stop(srv);
			return 0;
		}
	}
	return 0;
}

static int main_task(void *arg, void **result)
{
	reap__mgr_server *srv = arg;
	listener lu = {srv, srv->unix_fd, true}, lt = {srv, srv->tcp_fd, false};
	int r;

	if ((r = reap_group_open(NULL, &srv->group)) < 0)
		return r;
	if (srv->unix_fd >= 0 &&
	    (r = reap_task_spawn(srv->group, accept_task, &lu, NULL)) < 0)
		goto out;
	if (srv->tcp_fd >= 0 &&
	    (r = reap_task_spawn(srv->group, accept_task, &lt, NULL)) < 0)
		goto out;
	if (srv->sig_fd >= 0 &&
	    (r = reap_task_spawn(srv->group, signal_task, srv, NULL)) < 0)
		goto out;
	while (!atomic_load(&srv->stop)) {
		r = reap_wait_fd(srv->ctl_fd, REAP_READ, reap_now_ns() + EXPIRE_NS);
		if (r > 0) {
			uint64_t v;
			(void)!read(srv->ctl_fd, &v, sizeof v);
		} else if (r == -ETIMEDOUT) {
			reap__mgr_db_expire(srv->db, reap_now_ns());
		} else {
			break;
		}
	}
	r = 0;
out:
	reap_group_cancel(srv->group);
	{
		int rc = reap_group_close(srv->group, NULL);
		if (r == 0 && rc != -ECANCELED)
			r = rc;
	}
	srv->group = NULL;
	return r;
}

/* ------------------------------------------------------------------ */
/* Creation and destruction                                             */

static void server_destroy(void *arg)
{
	reap__mgr_server *srv = arg;

	/* clients of a run that ended are gone; a server never run has none */
	if (srv->unix_fd >= 0)
		close(srv->unix_fd);
	if (srv->tcp_fd >= 0)
		close(srv->tcp_fd);
	if (srv->ctl_fd >= 0)
		close(srv->ctl_fd);
	if (srv->has_unix)
		unlink(srv->unix_path);
	if (srv->own_dir)
		rmdir(srv->unix_dir);
	if (srv->db)
		reap__mgr_db_destroy(srv->db);
	reap__hmac_sha256_key_wipe(&srv->hkey);
	memset(srv->key, 0, sizeof srv->key);
	reap_free(srv);
}

static int dir_private(const char *dir)
{
	struct stat st;
	if (lstat(dir, &st) != 0)
		return reap_raisef(-errno, "socket directory %s: %s", dir, strerror(errno));
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077) != 0)
		return reap_raisef(-EPERM, "socket directory %s must be a directory "
				   "owned by uid %d with mode 0700", dir, (int)geteuid());
	return 0;
}

static int open_unix(reap__mgr_server *srv, const reap__mgr_server_opts *o)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int r, fd;

	if (o->unix_private) {
		const char *tmp = getenv("TMPDIR");
		if (tmp == NULL || tmp[0] == 0)
			tmp = "/tmp";
		if ((size_t)snprintf(srv->unix_dir, sizeof srv->unix_dir,
				     "%s/reap-mgr.XXXXXX", tmp) >= sizeof srv->unix_dir)
			return reap_raisef(-ENAMETOOLONG, "TMPDIR too long");
		if (mkdtemp(srv->unix_dir) == NULL)
			return reap_raisef(-errno, "mkdtemp %s: %s", srv->unix_dir,
					   strerror(errno));
		srv->own_dir = true;
		if ((size_t)snprintf(srv->unix_path, sizeof srv->unix_path, "%s/mgr.sock",
				     srv->unix_dir) >= sizeof srv->unix_path)
			return reap_raisef(-ENAMETOOLONG, "socket path too long");
	} else {
		if (strlen(o->unix_path) >= sizeof srv->unix_path)
			return reap_raisef(-ENAMETOOLONG, "socket path too long: %s",
					   o->unix_path);
		strcpy(srv->unix_path, o->unix_path);
		strcpy(srv->unix_dir, o->unix_path);
		char *slash = strrchr(srv->unix_dir, '/');
		if (slash == NULL)
			strcpy(srv->unix_dir, ".");
		else if (slash == srv->unix_dir)
			slash[1] = 0;
		else
			*slash = 0;
		if (o->unix_mkdir) {
			if (mkdir(srv->unix_dir, 0700) != 0)
				return reap_raisef(-errno, "mkdir %s: %s", srv->unix_dir,
						   strerror(errno));
			srv->own_dir = true;
		}
		if ((r = dir_private(srv->unix_dir)) < 0)
			return r;
	}
	memcpy(sa.sun_path, srv->unix_path, strlen(srv->unix_path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return reap_raisef(-errno, "socket: %s", strerror(errno));
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		r = -errno;
		if (r == -EADDRINUSE) {
			/* a stale socket in our private directory: reuse the
			 * path unless a server answers there */
			struct stat st;
			int t = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
			bool live = t >= 0 && connect(t, (struct sockaddr *)&sa, sizeof sa) == 0;
			if (t >= 0)
				close(t);
			if (!live && lstat(srv->unix_path, &st) == 0 && S_ISSOCK(st.st_mode) &&
			    unlink(srv->unix_path) == 0 &&
			    bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
				r = 0;
		}
		if (r < 0) {
			close(fd);
			return reap_raisef(r, "bind %s: %s", srv->unix_path, strerror(-r));
		}
	}
	srv->has_unix = true;
	(void)chmod(srv->unix_path, 0600);
	if (listen(fd, 511) != 0) {
		r = -errno;
		close(fd);
		return reap_raisef(r, "listen %s: %s", srv->unix_path, strerror(-r));
	}
	srv->unix_fd = fd;
	return 0;
}

static int open_tcp(reap__mgr_server *srv, const char *spec)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char host[64];
	const char *colon = strrchr(spec, ':');
	char *end;
	long port;
	int fd, r, one = 1;

	if (colon == NULL || (size_t)(colon - spec) >= sizeof host)
		return reap_raisef(-EINVAL, "TCP address %s: expected ADDR:PORT", spec);
	memcpy(host, spec, (size_t)(colon - spec));
	host[colon - spec] = 0;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == 0 || *end != 0 || port < 0 || port > 65535 ||
	    inet_pton(AF_INET, host, &sa.sin_addr) != 1)
		return reap_raisef(-EINVAL, "TCP address %s: expected IPV4:PORT", spec);
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return reap_raisef(-errno, "socket: %s", strerror(errno));
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, 511) != 0) {
		r = -errno;
		close(fd);
		return reap_raisef(r, "bind/listen %s: %s", spec, strerror(-r));
	}
	socklen_t len = sizeof sa;
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		srv->port = ntohs(sa.sin_port);
	srv->tcp_fd = fd;
	return 0;
}

int reap__mgr_server_create(reap_scope *s, const reap__mgr_server_opts *opts,
			    reap__mgr_server **out)
{
	reap__mgr_server *srv;
	int r;

	if (opts == NULL || (!opts->unix_private && opts->unix_path == NULL &&
			     opts->tcp == NULL))
		return reap_raisef(-EINVAL, "the manager needs a Unix socket or a TCP address");
	if (opts->tcp && (opts->key == NULL || opts->key_len == 0))
		return reap_raisef(-EINVAL, "TCP requires an authentication key");
	if (opts->key_len > sizeof srv->key)
		return reap_raisef(-EINVAL, "key longer than %zu bytes", sizeof srv->key);
	srv = reap_calloc(1, sizeof *srv);
	if (srv == NULL)
		return -ENOMEM;
	srv->unix_fd = srv->tcp_fd = srv->ctl_fd = srv->sig_fd = -1;
	srv->o = *opts;
	srv->o.unix_path = NULL;
	srv->o.tcp = NULL;
	srv->o.key = NULL;
	srv->o.limits = NULL;
	if (!srv->o.max_unauth)
		srv->o.max_unauth = 16;
	if (!srv->o.handshake_ns)
		srv->o.handshake_ns = 5000000000ull;
	if (!srv->o.out_limit)
		srv->o.out_limit = 64u << 20;
	if (!srv->o.query_limit)
		srv->o.query_limit = 1u << 30;
	if (!srv->o.max_clients)
		srv->o.max_clients = 10000;
	if (opts->limits)
		srv->lim = *opts->limits;
	else
		reap__resp_limits_default(&srv->lim);
	if (opts->key && opts->key_len) {
		memcpy(srv->key, opts->key, opts->key_len);
		srv->key_len = opts->key_len;
		srv->has_key = true;
		reap__sha256(srv->key, srv->key_len, srv->key_digest);
		reap__hmac_sha256_key_init(&srv->hkey, srv->key, srv->key_len);
	}
	srv->start_ns = reap_now_ns();
	if ((r = reap__mgr_db_create(&srv->db)) < 0)
		goto fail;
	reap__mgr_db_set_ready_hook(srv->db, ready_hook, srv);
	reap__mgr_db_set_push_hook(srv->db, push_hook, srv);
	srv->ctl_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (srv->ctl_fd < 0) {
		r = -errno;
		goto fail;
	}
	if ((opts->unix_private || opts->unix_path) && (r = open_unix(srv, opts)) < 0)
		goto fail;
	if (opts->tcp && (r = open_tcp(srv, opts->tcp)) < 0)
		goto fail;
	if ((r = reap_defer(s, server_destroy, srv, NULL)) < 0)
		goto fail;
	*out = srv;
	return 0;
fail:
	server_destroy(srv);
	return r;
}

int reap__mgr_server_run(reap__mgr_server *srv)
{
	reap_scope *s;
	reap_loop *loop;
	sigset_t set, old;
	int r;

	if (srv->ran)
		return -EALREADY;
	srv->ran = true;
	if ((r = reap_scope_open(NULL, &s)) < 0)
		return r;
	loop = reap_loop_current();
	if (loop == NULL) {
		reap_loop_opts lo = {.spin_ns = srv->o.spin_ns};

		if (lo.spin_ns == 0)
			lo.spin_ns = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? DEFAULT_SPIN_NS : 0;
		else if (lo.spin_ns == UINT64_MAX)
			lo.spin_ns = 0;
		if ((r = reap_loop_create_opts(s, &lo, &loop)) < 0)
			goto out;
	}
	if (srv->o.handle_signals) {
		sigemptyset(&set);
		sigaddset(&set, SIGTERM);
		sigaddset(&set, SIGINT);
		pthread_sigmask(SIG_BLOCK, &set, &old);
		srv->sig_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
		if (srv->sig_fd < 0) {
			r = -errno;
			pthread_sigmask(SIG_SETMASK, &old, NULL);
			goto out;
		}
	}
	r = reap_loop_run(loop, main_task, srv, NULL);
	if (srv->sig_fd >= 0) {
		struct signalfd_siginfo si;
		/* consume what came meanwhile: unblocking must not kill us */
		while (read(srv->sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
			;
		close(srv->sig_fd);
		srv->sig_fd = -1;
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
out:;
	int rc = reap_scope_close(s);
	return r < 0 ? r : rc;
}

void reap__mgr_server_stop(reap__mgr_server *srv)
{
	uint64_t one = 1;
	atomic_store(&srv->stop, 1);
	(void)!write(srv->ctl_fd, &one, sizeof one);
}

int reap__mgr_server_port(const reap__mgr_server *srv)
{
	return srv->port;
}

const char *reap__mgr_server_unix_path(const reap__mgr_server *srv)
{
	return srv->has_unix ? srv->unix_path : NULL;
}

const char *reap__mgr_server_unix_dir(const reap__mgr_server *srv)
{
	return srv->has_unix ? srv->unix_dir : NULL;
}

void reap__mgr_server_stats_get(const reap__mgr_server *srv,
				reap__mgr_server_stats *st)
{
	st->dispatched = ctr_get(&srv->dispatched);
	st->accepted = ctr_get(&srv->accepted);
	st->rejected = ctr_get(&srv->rejected);
	st->clients = ctr_get(&srv->clients);
	st->unauthed = ctr_get(&srv->unauthed);
	st->closed_proto = ctr_get(&srv->closed_proto);
	st->closed_outbuf = ctr_get(&srv->closed_outbuf);
	st->closed_handshake = ctr_get(&srv->closed_handshake);
	st->retries = ctr_get(&srv->retries);
}
