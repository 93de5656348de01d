/*
 * The manager's server against independent clients: redis-cli,
 * redis-benchmark, hiredis (tests/mgr/helper_hiredis.c), raw sockets,
 * and byte-for-byte against a real redis-server. Each test starts a
 * server on a thread (or the daemon as a process), on a Unix socket in a
 * private directory or on TCP loopback, stops it, and checks that no fd
 * leaked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"
#include "../../src/mgr/resp.h"
#include "../../src/mgr/auth.h"
#include "../../src/mgr/server.h"

/* ------------------------------------------------------------------ */
/* A server on a thread                                                 */

typedef struct running {
	reap_scope *scope;
	reap__mgr_server *srv;
	reap_thread *thread;
	int fds_before;
	char path[256];
} running;

static void *server_thread(void *arg)
{
	running *r = arg;
	int rc = reap__mgr_server_run(r->srv);
	return (void *)(intptr_t)rc;
}

static void start(running *r, reap__mgr_server_opts *o)
{
	memset(r, 0, sizeof *r);
	r->fds_before = test_fd_count();
	ASSERT_OK(reap_scope_open(NULL, &r->scope));
	if (!o->unix_path && !o->tcp)
		o->unix_private = true;
	ASSERT_OK(reap__mgr_server_create(r->scope, o, &r->srv));
	if (reap__mgr_server_unix_path(r->srv))
		snprintf(r->path, sizeof r->path, "%s", reap__mgr_server_unix_path(r->srv));
	ASSERT_OK(reap_thread_spawn(r->scope, server_thread, r, &r->thread));
}

static void stop(running *r)
{
	void *res;
	char dir[256] = "";
	if (reap__mgr_server_unix_dir(r->srv))
		snprintf(dir, sizeof dir, "%s", reap__mgr_server_unix_dir(r->srv));
	reap__mgr_server_stop(r->srv);
	ASSERT_OK(reap_thread_join(r->thread, &res, NULL));
	ASSERT_EQ_INT((intptr_t)res, 0);
	ASSERT_OK(reap_scope_close(r->scope));
	if (dir[0]) {
		struct stat st;
		ASSERT_TRUE(stat(dir, &st) != 0 && errno == ENOENT);
	}
	ASSERT_EQ_INT(test_fd_count(), r->fds_before);
}

static bool have(const char *prog)
{
	char cmd[128];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* Run a shell command, return its stdout+stderr (malloc'd) and status. */
static char *sh(int *status, const char *fmt, ...) REAP_PRINTF(2, 3);
static char *sh(int *status, const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof cmd, fmt, ap);
	va_end(ap);
	char full[4200];
	snprintf(full, sizeof full, "(%s) 2>&1", cmd);
	FILE *f = popen(full, "r");
	ASSERT_NOT_NULL(f);
	size_t cap = 4096, len = 0;
	char *out = malloc(cap);
	size_t n;
	while ((n = fread(out + len, 1, cap - len - 1, f)) > 0) {
		len += n;
		if (cap - len < 2) {
			cap *= 2;
			out = realloc(out, cap);
		}
	}
	out[len] = 0;
	int st = pclose(f);
	/* kept reachable in a ring, freed on reuse */
	static char *ring[16];
	static unsigned ri;
	free(ring[ri % 16]);
	ring[ri++ % 16] = out;
	if (status)
		*status = WIFEXITED(st) ? WEXITSTATUS(st) : 128;
	return out;
}

#define CLI(r, ...) sh(NULL, "redis-cli -s %s " __VA_ARGS__)

static void expect_out(const char *got, const char *want)
{
	ASSERT_EQ_STR(got, want);
}

/* ------------------------------------------------------------------ */
/* Raw sockets                                                          */

static int dial(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_TRUE(fd >= 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	ASSERT_EQ_INT(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	return fd;
}

static void put(int fd, const void *p, size_t n)
{
	const char *c = p;
	while (n) {
		ssize_t k = send(fd, c, n, MSG_NOSIGNAL);
		ASSERT_TRUE(k > 0);
		c += k;
		n -= (size_t)k;
	}
}

static void puts_(int fd, const char *s)
{
	put(fd, s, strlen(s));
}

/* Wait up to ms for input on fd and append it to buf (cap bytes, one
 * kept for a NUL) at *len: 1 if some came, 0 on timeout, -1 at end of
 * file or on error. */
static int recv_more(int fd, char *buf, size_t cap, size_t *len, int ms)
{
	struct pollfd p = {fd, POLLIN, 0};
	if (poll(&p, 1, ms) <= 0)
		return 0;
	ssize_t n = recv(fd, buf + *len, cap - *len - 1, 0);
	if (n <= 0)
		return -1;
	*len += (size_t)n;
	return 1;
}

/* A command as a RESP array, words split on spaces. */
static void send_cmd(int fd, const char *line)
{
	char req[1024], words[512], *save = NULL;
	int nw = 0, len;
	char *parts[32];
	snprintf(words, sizeof words, "%s", line);
	for (char *w = strtok_r(words, " ", &save); w; w = strtok_r(NULL, " ", &save))
		parts[nw++] = w;
	len = snprintf(req, sizeof req, "*%d\r\n", nw);
	for (int k = 0; k < nw; k++)
		len += snprintf(req + len, sizeof req - (size_t)len, "$%zu\r\n%s\r\n",
				strlen(parts[k]), parts[k]);
	put(fd, req, (size_t)len);
}

/* Read one complete reply (per reap's reply parser) and return its raw
 * bytes; "" on end of file; "TIMEOUT" after ms. */
static char *reply(int fd, int ms, size_t *lenp)
{
	static char buf[1 << 16];
	size_t len = 0;
	for (;;) {
		if (len) {
			reap__resp_reader rd;
			reap__resp_value *v = NULL;
			size_t used = 0;
			reap__resp_reader_init(&rd, NULL);
			int r = reap__resp_reader_parse(&rd, buf, len, &used, &v);
			/* the reader keeps state across MORE: parse whole */
			reap__resp_value_free(v);
			reap__resp_reader_fini(&rd);
			if (r == REAP__RESP_VALUE)
				break;
			ASSERT_TRUE(r != REAP__RESP_PROTO);
		}
		int got = recv_more(fd, buf, sizeof buf, &len, ms);
		if (got == 0) {
			strcpy(buf, "TIMEOUT");
			len = 7;
		}
		if (got <= 0)
			break;
	}
	buf[len] = 0;
	if (lenp)
		*lenp = len;
	return buf;
}

/* Wait for the peer to close (true) within ms. */
static bool closed_within(int fd, int ms)
{
	char b[4096];
	uint64_t until = reap_now_ns() + (uint64_t)ms * 1000000;
	while (reap_now_ns() < until) {
		struct pollfd p = {fd, POLLIN, 0};
		if (poll(&p, 1, 50) > 0) {
			ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
			if (n == 0 || (n < 0 && errno == ECONNRESET))
				return true;
		}
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* redis-cli                                                            */

TEST(redis_cli_basic)
{
	if (!have("redis-cli"))
		test_skip("redis-cli is not installed (apt-get install redis-tools)");
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	expect_out(CLI(r, "PING", r.path), "PONG\n");
	expect_out(CLI(r, "SET k hello", r.path), "OK\n");
	expect_out(CLI(r, "GET k", r.path), "hello\n");
	expect_out(CLI(r, "INCR n", r.path), "1\n");
	expect_out(CLI(r, "INCR n", r.path), "2\n");
	expect_out(CLI(r, "HSET h a 1 b 2", r.path), "2\n");
	/* field order is checked byte for byte by conformance_redis_server */
	char *hg = CLI(r, "HGETALL h", r.path);
	ASSERT_TRUE(strcmp(hg, "a\n1\nb\n2\n") == 0 || strcmp(hg, "b\n2\na\n1\n") == 0);
	/* a RESP3 map: redis-cli prints "key value" lines for maps */
	hg = CLI(r, "-3 HGETALL h", r.path);
	ASSERT_TRUE(strcmp(hg, "a 1\nb 2\n") == 0 || strcmp(hg, "b 2\na 1\n") == 0);
	expect_out(CLI(r, "LPUSH l x y z", r.path), "3\n");
	expect_out(CLI(r, "LRANGE l 0 -1", r.path), "z\ny\nx\n");
	expect_out(CLI(r, "GET nokey", r.path), "\n");
	/* many commands on stdin, and --pipe */
	char *out = sh(NULL, "for i in $(seq 1 200); do echo INCR piped; done | "
			     "redis-cli -s %s | tail -1", r.path);
	expect_out(out, "200\n");
	out = sh(NULL, "for i in $(seq 1 1000); do printf 'SET p%%d %%d\\r\\n' $i $i; done | "
		       "redis-cli -s %s --pipe", r.path);
	ASSERT_CONTAINS(out, "errors: 0, replies: 1000");
	expect_out(CLI(r, "GET p777", r.path), "777\n");
	/* interactive-style start: COMMAND DOCS is answered */
	expect_out(CLI(r, "COMMAND DOCS", r.path), "\n");
	out = CLI(r, "INFO server", r.path);
	ASSERT_CONTAINS(out, "redis_version:");
	stop(&r);
}

TEST(redis_cli_auth)
{
	if (!have("redis-cli"))
		test_skip("redis-cli is not installed (apt-get install redis-tools)");
	running r;
	reap__mgr_server_opts o = {0};
	o.key = "s3cret-key";
	o.key_len = strlen(o.key);
	start(&r, &o);
	char *out = CLI(r, "--no-auth-warning -a wrong PING", r.path);
	ASSERT_CONTAINS(out, "WRONGPASS invalid username-password pair or user is disabled.");
	out = CLI(r, "--no-auth-warning -a wrong SET x y", r.path);
	ASSERT_CONTAINS(out, "WRONGPASS");
	out = CLI(r, "SET x y", r.path);
	ASSERT_CONTAINS(out, "NOAUTH Authentication required.");
	reap__mgr_server_stats st;
	reap__mgr_server_stats_get(r.srv, &st);
	ASSERT_EQ_INT(st.dispatched, 0);
	expect_out(CLI(r, "--no-auth-warning -a s3cret-key PING", r.path), "PONG\n");
	expect_out(CLI(r, "--no-auth-warning --pass s3cret-key SET x y", r.path), "OK\n");
	expect_out(CLI(r, "--no-auth-warning --user default --pass s3cret-key GET x", r.path),
		   "y\n");
	reap__mgr_server_stats_get(r.srv, &st);
	ASSERT_GT_INT(st.dispatched, 0);
	stop(&r);
}

/* reap's own challenge-response, on a raw socket */
TEST(challenge_response)
{
	running r;
	reap__mgr_server_opts o = {0};
	const char key[] = "the key";
	o.key = key;
	o.key_len = strlen(key);
	start(&r, &o);
	int fd = dial(r.path);
	size_t n;
	char *rep = reply((puts_(fd, "*1\r\n$14\r\nREAP.CHALLENGE\r\n"), fd), 2000, &n);
	ASSERT_EQ_SIZE(n, 5 + 32 + 2);
	uint8_t ns[32], nc[32], proof[32], sp[32];
	memcpy(ns, rep + 5, 32);
	memset(nc, 7, sizeof nc);
	/* a wrong proof first: refused, nothing dispatched */
	reap__auth_client_proof("bad", 3, ns, nc, proof);
	char req[200];
	int m = snprintf(req, sizeof req, "*3\r\n$10\r\nREAP.PROVE\r\n$32\r\n");
	memcpy(req + m, nc, 32);
	memcpy(req + m + 32, "\r\n$32\r\n", 7);
	memcpy(req + m + 39, proof, 32);
	memcpy(req + m + 71, "\r\n", 2);
	put(fd, req, (size_t)m + 73);
	ASSERT_EQ_STR(reply(fd, 2000, NULL),
		      "-WRONGPASS invalid username-password pair or user is disabled.\r\n");
	/* the challenge was single-use */
	put(fd, req, (size_t)m + 73);
	ASSERT_CONTAINS(reply(fd, 2000, NULL), "without a pending REAP.CHALLENGE");
	rep = reply((puts_(fd, "*1\r\n$14\r\nREAP.CHALLENGE\r\n"), fd), 2000, &n);
	memcpy(ns, rep + 5, 32);
	reap__auth_client_proof(key, strlen(key), ns, nc, proof);
	memcpy(req + m + 39, proof, 32);
	put(fd, req, (size_t)m + 73);
	rep = reply(fd, 2000, &n);
	ASSERT_EQ_SIZE(n, 5 + 32 + 2);
	memcpy(sp, rep + 5, 32);
	ASSERT_OK(reap__auth_server_verify(key, strlen(key), ns, nc, sp));
	ASSERT_EQ_STR(reply((puts_(fd, "PING\r\n"), fd), 2000, NULL), "+PONG\r\n");
	close(fd);
	stop(&r);
}

/* ------------------------------------------------------------------ */
/* hiredis and redis-benchmark                                          */

TEST(hiredis)
{
	char prog[512];
	snprintf(prog, sizeof prog, "%s/helper_hiredis", test_bindir());
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int status;
	char *out = sh(&status, "%s %s", prog, r.path);
	stop(&r);
	if (status == 77)
		test_skip("helper_hiredis was built without hiredis (apt-get install libhiredis-dev)");
	ASSERT_EQ_STR(out, "hiredis ok\n");
	ASSERT_EQ_INT(status, 0);
}

TEST(redis_benchmark)
{
	if (!have("redis-benchmark"))
		test_skip("redis-benchmark is not installed (apt-get install redis-tools)");
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int status;
	char *out = sh(&status, "redis-benchmark -s %s -n 20000 -c 8 -P 16 "
				"-t ping,set,get,incr,lpush,lpop,hset,mset -q", r.path);
	printf("%s", out);
	ASSERT_EQ_INT(status, 0);
	ASSERT_TRUE(strstr(out, "ERR") == NULL && strstr(out, "rror") == NULL);
	const char *want[] = {"PING_INLINE", "PING_MBULK", "SET", "GET", "INCR",
			      "LPUSH", "LPOP", "HSET", "MSET (10 keys)"};
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		char k[64];
		snprintf(k, sizeof k, "%s: ", want[i]);
		ASSERT_CONTAINS(out, k);
	}
	stop(&r);
}

/* ------------------------------------------------------------------ */
/* Byte-exact conformance against redis-server                          */

static const char *const conf_cmds[] = {
	"PING", "PING hello", "ECHO hi", "SET k v", "GET k", "GET nokey",
	"SET k v NX", "SET k v2 XX", "GET k", "INCR n", "INCRBY n 10", "DECR n",
	"INCR k", "INCRBYFLOAT f 1.5", "GET f", "MSET a 1 b 2", "MGET a b nokey",
	"DEL a b nokey", "EXISTS k nokey", "HSET h f1 v1 f2 v2", "HGET h f1",
	"HGETALL h", "HMGET h f1 nof", "HLEN h", "HINCRBY h cnt 5", "HDEL h f1",
	"LPUSH l a b c", "RPUSH l d", "LRANGE l 0 -1", "LLEN l", "LPOP l", "RPOP l",
	"LPOP nokey", "GET h", "LPUSH k x", "GET", "NOSUCHCMD a", "SELECT 0",
	"SELECT x", "CLIENT GETNAME", "CLIENT SETNAME n1", "CLIENT GETNAME",
	"CLIENT SETNAME a b", "CLIENT FOO", "CONFIG GET save", "CONFIG GET appendonly",
	"EXPIRE k 100", "TTL k", "PTTL nokey", "DBSIZE", "SET k v EX 0",
	"AUTH x", "AUTH a b c", "HELLO 4", "HELLO x", "HELLO 3 FOO",
	"!HELLO 3", "HGETALL h", "CONFIG GET save", "GET nokey", "LRANGE l 0 -1",
	"PING", "HMGET h f2 nof", "INCRBYFLOAT f 0.25", "EXISTS k", "DEL k",
	"CLIENT GETNAME", "!SELECT 1", "MGET a nokey", "HGETALL nokey", "QUIT",
};

static bool start_redis(const char *dir, char *sock, size_t cap, pid_t *pid)
{
	snprintf(sock, cap, "%s/redis.sock", dir);
	*pid = fork();
	if (*pid == 0) {
		int dn = open("/dev/null", O_WRONLY);
		dup2(dn, 1);
		dup2(dn, 2);
		execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
		       "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
		       "--dir", dir, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		struct stat st;
		if (stat(sock, &st) == 0)
			return true;
		usleep(20000);
	}
	return false;
}

/* A reap server on a thread and a redis-server beside it, on a socket in
 * a private directory; the test is skipped without redis-server. */
typedef struct pair {
	running r;
	char dir[32];
	char sock[300];
	pid_t pid;
} pair;

static void pair_start(pair *p)
{
	if (!have("redis-server"))
		test_skip("redis-server is not installed (apt-get install redis-server)");
	reap__mgr_server_opts o = {0};
	start(&p->r, &o);
	snprintf(p->dir, sizeof p->dir, "/tmp/reap-redis.XXXXXX");
	ASSERT_NOT_NULL(mkdtemp(p->dir));
	ASSERT_TRUE(start_redis(p->dir, p->sock, sizeof p->sock, &p->pid));
}

static void pair_stop(pair *p)
{
	kill(p->pid, SIGKILL);
	waitpid(p->pid, NULL, 0);
	char rm[400];
	snprintf(rm, sizeof rm, "rm -rf %s", p->dir);
	ASSERT_EQ_INT(system(rm), 0);
	stop(&p->r);
}

TEST(conformance_redis_server)
{
	pair p;
	pair_start(&p);
	int a = dial(p.r.path), b = dial(p.sock);
	size_t na, nb, diffs = 0;
	for (size_t i = 0; i < sizeof conf_cmds / sizeof conf_cmds[0]; i++) {
		const char *c = conf_cmds[i];
		bool cmp = c[0] != '!';
		if (!cmp)
			c++;
		send_cmd(a, c);
		send_cmd(b, c);
		char ra[8192];
		char *x = reply(a, 3000, &na);
		memcpy(ra, x, na + 1);
		char *y = reply(b, 3000, &nb);
		if (cmp && (na != nb || memcmp(ra, y, na) != 0)) {
			fprintf(stderr, "DIFF %s\n  reap:  %s\n  redis: %s\n", c, ra, y);
			diffs++;
		}
	}
	/* the inline form, and a protocol error (closes the connection) */
	close(a);
	close(b);
	const char *raw[] = {"PING\r\n", "*1\r\n$4\r\nPING\r\n", "ECHO \"a b\"\r\n",
			     "*2\r\n$3\r\nGET\r\n$x\r\n", "*x\r\n", "$3\r\nfoo\r\n"};
	for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
		a = dial(p.r.path);
		b = dial(p.sock);
		puts_(a, raw[i]);
		puts_(b, raw[i]);
		char ra[8192];
		char *x = reply(a, 3000, &na);
		memcpy(ra, x, na + 1);
		char *y = reply(b, 3000, &nb);
		if (na != nb || memcmp(ra, y, na) != 0) {
			fprintf(stderr, "DIFF raw %zu\n  reap:  %s\n  redis: %s\n", i, ra, y);
			diffs++;
		}
		close(a);
		close(b);
	}
	pair_stop(&p);
	ASSERT_EQ_SIZE(diffs, 0);
}

/* ------------------------------------------------------------------ */
/* Limits                                                               */

TEST(limit_bulk_closes_only_that_client)
{
	running r;
	reap__resp_limits lim;
	reap__resp_limits_default(&lim);
	lim.max_bulk = 1024;
	reap__mgr_server_opts o = {0};
	o.limits = &lim;
	start(&r, &o);
	int good = dial(r.path), bad = dial(r.path);
	ASSERT_EQ_STR(reply((puts_(good, "PING\r\n"), good), 2000, NULL), "+PONG\r\n");
	puts_(bad, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1025\r\n");
	ASSERT_EQ_STR(reply(bad, 2000, NULL), "-ERR Protocol error: invalid bulk length\r\n");
	ASSERT_TRUE(closed_within(bad, 2000));
	ASSERT_EQ_STR(reply((puts_(good, "PING\r\n"), good), 2000, NULL), "+PONG\r\n");
	/* at the limit: accepted */
	char req[1200];
	int n = snprintf(req, sizeof req, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1024\r\n");
	memset(req + n, 'x', 1024);
	memcpy(req + n + 1024, "\r\n", 2);
	put(good, req, (size_t)n + 1026);
	ASSERT_EQ_STR(reply(good, 2000, NULL), "+OK\r\n");
	close(good);
	close(bad);
	stop(&r);
}

TEST(limit_unauthenticated)
{
	running r;
	reap__mgr_server_opts o = {0};
	o.key = "k";
	o.key_len = 1;
	o.max_unauth = 3;
	o.handshake_ns = 400 * 1000 * 1000ull;
	start(&r, &o);
	int fds[4];
	for (int i = 0; i < 3; i++) {
		fds[i] = dial(r.path);
		ASSERT_EQ_STR(reply((puts_(fds[i], "PING\r\n"), fds[i]), 2000, NULL),
			      "-NOAUTH Authentication required.\r\n");
	}
	/* N+1: refused */
	fds[3] = dial(r.path);
	ASSERT_CONTAINS(reply(fds[3], 2000, NULL), "unauthenticated");
	ASSERT_TRUE(closed_within(fds[3], 1000));
	close(fds[3]);
	/* one authenticates and stays past the handshake limit */
	ASSERT_EQ_STR(reply((puts_(fds[0], "AUTH k\r\n"), fds[0]), 2000, NULL), "+OK\r\n");
	/* the idle unauthenticated ones are closed after 400 ms */
	ASSERT_TRUE(closed_within(fds[1], 3000));
	ASSERT_TRUE(closed_within(fds[2], 3000));
	ASSERT_EQ_STR(reply((puts_(fds[0], "PING\r\n"), fds[0]), 2000, NULL), "+PONG\r\n");
	reap__mgr_server_stats st;
	reap__mgr_server_stats_get(r.srv, &st);
	ASSERT_EQ_INT(st.closed_handshake, 2);
	ASSERT_EQ_INT(st.rejected, 1);
	for (int i = 0; i < 3; i++)
		close(fds[i]);
	/* pre-auth argument limits: 11 arguments before AUTH */
	int f = dial(r.path);
	puts_(f, "*11\r\n");
	ASSERT_CONTAINS(reply(f, 2000, NULL), "-ERR Protocol error");
	ASSERT_TRUE(closed_within(f, 2000));
	close(f);
	stop(&r);
}

TEST(limit_output_buffer)
{
	running r;
	reap__mgr_server_opts o = {0};
	o.out_limit = 256 * 1024;
	start(&r, &o);
	int other = dial(r.path), slow = dial(r.path);
	char val[8192];
	memset(val, 'v', sizeof val);
	char req[8300];
	int n = snprintf(req, sizeof req, "*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%zu\r\n", sizeof val);
	memcpy(req + n, val, sizeof val);
	memcpy(req + n + sizeof val, "\r\n", 2);
	put(other, req, (size_t)n + sizeof val + 2);
	ASSERT_EQ_STR(reply(other, 2000, NULL), "+OK\r\n");
	/* the slow client sends GETs and never reads: 8 KiB replies pile up */
	int fl = fcntl(slow, F_GETFL);
	fcntl(slow, F_SETFL, fl | O_NONBLOCK);
	const char get[] = "*2\r\n$3\r\nGET\r\n$3\r\nbig\r\n";
	bool closed = false;
	uint64_t until = reap_now_ns() + 10000000000ull;
	while (!closed && reap_now_ns() < until) {
		ssize_t k = send(slow, get, sizeof get - 1, MSG_NOSIGNAL);
		if (k < 0 && errno != EAGAIN)
			closed = true;
		else if (k < 0)
			usleep(1000);
		reap__mgr_server_stats st;
		reap__mgr_server_stats_get(r.srv, &st);
		if (st.closed_outbuf == 1)
			closed = true;
	}
	ASSERT_TRUE(closed);
	{
		/* Closed for its output buffer, not for anything else. */
		reap__mgr_server_stats st;

		for (int i = 0; i < 2000; i++) {
			reap__mgr_server_stats_get(r.srv, &st);
			if (st.closed_outbuf == 1)
				break;
			usleep(1000);
		}
		ASSERT_EQ_INT(st.closed_outbuf, 1);
	}
	ASSERT_EQ_STR(reply((puts_(other, "PING\r\n"), other), 2000, NULL), "+PONG\r\n");
	close(slow);
	close(other);
	stop(&r);
}

/* A blocked BLPOP: served by a push from another client; a client that
 * disconnects while blocked is cleaned up. */
TEST(blocked_commands)
{
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int a = dial(r.path), b = dial(r.path), c = dial(r.path);
	puts_(a, "*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
	puts_(c, "*3\r\n$5\r\nBLPOP\r\n$2\r\nq2\r\n$1\r\n0\r\n");
	ASSERT_EQ_STR(reply(a, 200, NULL), "TIMEOUT");
	close(c); /* gone while blocked */
	ASSERT_EQ_STR(reply((puts_(b, "RPUSH q x\r\n"), b), 2000, NULL), ":1\r\n");
	ASSERT_EQ_STR(reply(a, 2000, NULL), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
	/* a deadline */
	puts_(a, "*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$3\r\n0.2\r\n");
	ASSERT_EQ_STR(reply(a, 3000, NULL), "*-1\r\n");
	usleep(300000);
	reap__mgr_server_stats st;
	reap__mgr_server_stats_get(r.srv, &st);
	ASSERT_EQ_INT(st.clients, 2);
	/* Only the commands that name the key are run again: pushes to
	 * another list wake nobody, and one to q wakes a, not d. */
	uint64_t retries = st.retries;
	int d = dial(r.path);
	puts_(a, "*3\r\n$5\r\nBLPOP\r\n$1\r\nq\r\n$1\r\n0\r\n");
	puts_(d, "*3\r\n$5\r\nBLPOP\r\n$2\r\nq3\r\n$1\r\n0\r\n");
	ASSERT_EQ_STR(reply(a, 200, NULL), "TIMEOUT");
	ASSERT_EQ_STR(reply(d, 10, NULL), "TIMEOUT");
	for (int i = 1; i <= 20; i++) {
		char want[16];

		snprintf(want, sizeof want, ":%d\r\n", i);
		ASSERT_EQ_STR(reply((puts_(b, "RPUSH other x\r\n"), b), 2000, NULL), want);
	}
	ASSERT_EQ_STR(reply((puts_(b, "RPUSH q y\r\n"), b), 2000, NULL), ":1\r\n");
	ASSERT_EQ_STR(reply(a, 2000, NULL), "*2\r\n$1\r\nq\r\n$1\r\ny\r\n");
	reap__mgr_server_stats_get(r.srv, &st);
	ASSERT_EQ_INT(st.retries, retries + 1);
	close(d);
	close(a);
	close(b);
	stop(&r);
}

TEST(shutdown_command)
{
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int a = dial(r.path), b = dial(r.path);
	ASSERT_EQ_STR(reply((puts_(a, "SHUTDOWN FOO\r\n"), a), 2000, NULL), "-ERR syntax error\r\n");
	puts_(a, "SHUTDOWN NOSAVE\r\n");
	ASSERT_EQ_STR(reply(a, 3000, NULL), "");
	ASSERT_TRUE(closed_within(b, 3000));
	void *res;
	ASSERT_OK(reap_thread_join(r.thread, &res, NULL));
	close(a);
	close(b);
	char dir[256];
	snprintf(dir, sizeof dir, "%s", reap__mgr_server_unix_dir(r.srv));
	ASSERT_OK(reap_scope_close(r.scope));
	struct stat st;
	ASSERT_TRUE(stat(dir, &st) != 0);
	ASSERT_EQ_INT(test_fd_count(), r.fds_before);
}

TEST(refuses_public_directory)
{
	reap_scope *s;
	reap__mgr_server *srv;
	char dir[] = "/tmp/reap-pub.XXXXXX", path[300];
	ASSERT_NOT_NULL(mkdtemp(dir));
	chmod(dir, 0755);
	snprintf(path, sizeof path, "%s/m.sock", dir);
	ASSERT_OK(reap_scope_open(NULL, &s));
	reap__mgr_server_opts o = {0};
	o.unix_path = path;
	ASSERT_EQ_INT(reap__mgr_server_create(s, &o, &srv), -EPERM);
	reap__mgr_server_opts t = {0};
	t.tcp = "127.0.0.1:0";
	ASSERT_EQ_INT(reap__mgr_server_create(s, &t, &srv), -EINVAL);
	ASSERT_OK(reap_scope_close(s));
	rmdir(dir);
}

/* ------------------------------------------------------------------ */
/* The daemon                                                           */

TEST(daemon_unix_and_tcp)
{
	if (!have("redis-cli"))
		test_skip("redis-cli is not installed (apt-get install redis-tools)");
	char prog[512], dir[] = "/tmp/reap-d.XXXXXX", sock[300], keyf[300];
	snprintf(prog, sizeof prog, "%s/../reap-manager", test_bindir());
	if (access(prog, X_OK) != 0)
		test_skip("reap-manager not built (REAP_EXAMPLES=OFF)");
	ASSERT_NOT_NULL(mkdtemp(dir));
	snprintf(sock, sizeof sock, "%s/run/mgr.sock", dir);
	snprintf(keyf, sizeof keyf, "%s/key", dir);
	int kf = open(keyf, O_WRONLY | O_CREAT | O_EXCL, 0600);
	ASSERT_TRUE(kf >= 0);
	ASSERT_EQ_INT(write(kf, "daemonkey\n", 10), 10);
	close(kf);

	/* Unix: the daemon creates run/ 0700 and removes it on SIGTERM */
	pid_t pid = fork();
	if (pid == 0) {
		execl(prog, prog, "--unix", sock, (char *)NULL);
		_exit(127);
	}
	struct stat st;
	for (int i = 0; i < 200 && stat(sock, &st) != 0; i++)
		usleep(10000);
	expect_out(sh(NULL, "redis-cli -s %s SET dk dv", sock), "OK\n");
	expect_out(sh(NULL, "redis-cli -s %s GET dk", sock), "dv\n");
	int idle = dial(sock);
	kill(pid, SIGTERM);
	int status;
	ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ_INT(WEXITSTATUS(status), 0);
	ASSERT_TRUE(closed_within(idle, 1000));
	close(idle);
	char run[320];
	snprintf(run, sizeof run, "%s/run", dir);
	ASSERT_TRUE(stat(run, &st) != 0 && errno == ENOENT);

	/* TCP with a key file, ephemeral port printed */
	int pfd[2];
	ASSERT_EQ_INT(pipe(pfd), 0);
	pid = fork();
	if (pid == 0) {
		dup2(pfd[1], 1);
		close(pfd[0]);
		execl(prog, prog, "--tcp", "127.0.0.1:0", "--key-file", keyf, "--print-port",
		      (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	char pbuf[32] = "";
	ssize_t k = read(pfd[0], pbuf, sizeof pbuf - 1);
	ASSERT_GT_INT(k, 0);
	pbuf[k] = 0;
	int port = atoi(pbuf);
	ASSERT_GT_INT(port, 0);
	char *out = sh(NULL, "redis-cli -p %d PING", port);
	ASSERT_CONTAINS(out, "NOAUTH");
	expect_out(sh(NULL, "redis-cli --no-auth-warning -p %d -a daemonkey INCR t", port), "1\n");
	out = sh(NULL, "redis-cli --no-auth-warning -p %d -a nope INCR t", port);
	ASSERT_CONTAINS(out, "WRONGPASS");
	kill(pid, SIGTERM);
	ASSERT_EQ_INT(waitpid(pid, &status, 0), pid);
	ASSERT_TRUE(WIFEXITED(status));
	ASSERT_EQ_INT(WEXITSTATUS(status), 0);
	close(pfd[0]);
	/* TCP without a key file is refused */
	out = sh(&status, "%s --tcp 127.0.0.1:0", prog);
	ASSERT_NE_INT(status, 0);
	char rm[400];
	snprintf(rm, sizeof rm, "rm -rf %s", dir);
	ASSERT_EQ_INT(system(rm), 0);
}

/* ------------------------------------------------------------------ */
/* Barriers and CLIENT TRACKING over sockets                            */

/* Everything that arrives within ms of quiet (at most 1 s in all). */
static char *drain(int fd, int ms)
{
	static char buf[8192];
	size_t len = 0;
	uint64_t until = reap_now_ns() + 1000000000ull;
	while (reap_now_ns() < until && recv_more(fd, buf, sizeof buf, &len, ms) > 0)
		;
	buf[len] = 0;
	return buf;
}

/* Send PING and return what came before its +PONG: whatever the
 * connection was sent meanwhile, with no timing guesses. */
static char *until_pong(int fd)
{
	static char buf[8192];
	size_t len = 0;
	put(fd, "*1\r\n$4\r\nPING\r\n", 14);
	while (len < 7 || memcmp(buf + len - 7, "+PONG\r\n", 7) != 0) {
		int got = recv_more(fd, buf, sizeof buf, &len, 3000);
		if (got <= 0)
			return strcpy(buf, got == 0 ? "TIMEOUT" : "EOF");
	}
	buf[len - 7] = 0;
	return buf;
}

static const char *cmd_reply(int fd, const char *line)
{
	send_cmd(fd, line);
	return reply(fd, 3000, NULL);
}

/* Three connections meet at a barrier: each gets its own index; one that
 * disconnects while waiting is withdrawn. */
TEST(barrier_over_sockets)
{
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int a = dial(r.path), b = dial(r.path), c = dial(r.path);
	ASSERT_EQ_STR(cmd_reply(a, "REAP.CREATE barrier B persistent 3"), "+OK\r\n");
	for (int round = 0; round < 2; round++) {
		bool seen[3] = {false};
		send_cmd(a, "REAP.BARRIER B");
		send_cmd(b, "REAP.BARRIER B 10");
		ASSERT_EQ_STR(reply(a, 200, NULL), "TIMEOUT");
		ASSERT_EQ_STR(reply(b, 10, NULL), "TIMEOUT");
		ASSERT_EQ_STR(cmd_reply(c, "REAP.BARRIER B"), ":2\r\n");
		int fds[2] = {a, b};
		for (int i = 0; i < 2; i++) {
			char *x = reply(fds[i], 3000, NULL);
			ASSERT_TRUE(strcmp(x, ":0\r\n") == 0 || strcmp(x, ":1\r\n") == 0);
			ASSERT_FALSE(seen[x[1] - '0']);
			seen[x[1] - '0'] = true;
		}
	}
	/* a waiter that disconnects is withdrawn */
	ASSERT_EQ_STR(cmd_reply(a, "REAP.CREATE barrier P persistent 2"), "+OK\r\n");
	int d = dial(r.path);
	send_cmd(d, "REAP.BARRIER P");
	ASSERT_EQ_STR(reply(d, 100, NULL), "TIMEOUT");
	close(d);
	usleep(400000); /* the server notices within 100 ms */
	ASSERT_CONTAINS(cmd_reply(a, "REAP.OBJECTS"), "$5\r\nstate\r\n:0\r\n");
	ASSERT_EQ_STR(cmd_reply(b, "REAP.BARRIER P 0.2"), "$-1\r\n"); /* alone */
	send_cmd(b, "REAP.BARRIER P");
	ASSERT_EQ_STR(cmd_reply(c, "REAP.BARRIER P"), ":1\r\n");
	ASSERT_EQ_STR(reply(b, 3000, NULL), ":0\r\n");
	close(a);
	close(b);
	close(c);
	stop(&r);
}

#define PUSH_K ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n"

/* Invalidations reach a connection that sits idle, waiting for input;
 * once per read; not after OFF; not in RESP2. */
/* CLIENT LIST names a container command with its subcommand, as Redis 7
 * does: "cmd=client|list" for the caller, "cmd=config|get" for a client
 * whose last command was CONFIG GET; a plain command by its name. */
TEST(client_list_names_subcommands)
{
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int a = dial(r.path), b = dial(r.path);
	ASSERT_CONTAINS(cmd_reply(a, "CONFIG GET save"), "save");
	ASSERT_CONTAINS(cmd_reply(b, "CLIENT LIST"), "cmd=config|get ");
	ASSERT_CONTAINS(cmd_reply(b, "CLIENT LIST"), "cmd=client|list ");
	ASSERT_EQ_STR(cmd_reply(a, "PING"), "+PONG\r\n");
	ASSERT_CONTAINS(cmd_reply(b, "CLIENT LIST"), "cmd=ping ");
	close(a);
	close(b);
	stop(&r);
}

TEST(tracking_push_to_idle_client)
{
	running r;
	reap__mgr_server_opts o = {0};
	start(&r, &o);
	int a = dial(r.path), w = dial(r.path), r2 = dial(r.path);
	ASSERT_CONTAINS(cmd_reply(a, "HELLO 3"), "proto");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING"),
		      "-ERR wrong number of arguments for 'client|tracking' command\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING MAYBE"), "-ERR syntax error\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING ON FOO"), "-ERR syntax error\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING ON REDIRECT"), "-ERR syntax error\r\n");
	ASSERT_CONTAINS(cmd_reply(a, "CLIENT TRACKING ON BCAST"),
			"-ERR CLIENT TRACKING BCAST is not supported");
	ASSERT_CONTAINS(cmd_reply(a, "CLIENT TRACKING ON PREFIX p"),
			"-ERR CLIENT TRACKING PREFIX is not supported");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING OFF BCAST"), "+OK\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING on"), "+OK\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "_\r\n");
	ASSERT_EQ_STR(cmd_reply(w, "SET k 1"), "+OK\r\n");
	ASSERT_EQ_STR(drain(a, 200), PUSH_K); /* a sent nothing meanwhile */
	ASSERT_EQ_STR(cmd_reply(w, "SET k 2"), "+OK\r\n");
	ASSERT_EQ_STR(drain(a, 200), "");
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "$1\r\n2\r\n");
	ASSERT_EQ_STR(cmd_reply(w, "DEL k"), ":1\r\n");
	ASSERT_EQ_STR(drain(a, 200), PUSH_K);
	/* its own write: the reply, then the push */
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "_\r\n");
	send_cmd(a, "SET k 3");
	ASSERT_EQ_STR(drain(a, 200), "+OK\r\n" PUSH_K);
	/* while blocked in another command, the push comes first */
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "$1\r\n3\r\n");
	send_cmd(a, "BLPOP q 0");
	ASSERT_EQ_STR(cmd_reply(w, "INCR k"), ":4\r\n");
	ASSERT_EQ_STR(drain(a, 200), PUSH_K);
	ASSERT_EQ_STR(cmd_reply(w, "RPUSH q x"), ":1\r\n");
	ASSERT_EQ_STR(drain(a, 200), "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
	/* RESP2: accepted, nothing sent */
	ASSERT_EQ_STR(cmd_reply(r2, "CLIENT TRACKING ON"), "+OK\r\n");
	ASSERT_EQ_STR(cmd_reply(r2, "GET k"), "$1\r\n4\r\n");
	/* OFF */
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "$1\r\n4\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING OFF"), "+OK\r\n");
	ASSERT_EQ_STR(cmd_reply(w, "SET k 5"), "+OK\r\n");
	ASSERT_EQ_STR(drain(a, 200), "");
	ASSERT_EQ_STR(drain(r2, 10), "");
	/* a tracking client that leaves: nothing retained, nothing sent */
	ASSERT_EQ_STR(cmd_reply(a, "CLIENT TRACKING ON NOLOOP"), "+OK\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "$1\r\n5\r\n");
	ASSERT_EQ_STR(cmd_reply(a, "SET k 6"), "+OK\r\n"); /* NOLOOP */
	ASSERT_EQ_STR(drain(a, 100), "");
	ASSERT_EQ_STR(cmd_reply(a, "GET k"), "$1\r\n6\r\n");
	close(a);
	usleep(100000);
	ASSERT_EQ_STR(cmd_reply(w, "SET k 7"), "+OK\r\n");
	close(w);
	close(r2);
	stop(&r);
}

/* The invalidation pushes and the CLIENT TRACKING replies, byte for byte
 * against redis-server. */
TEST(tracking_conformance_redis_server)
{
	pair p;
	pair_start(&p);
	/* who: 'a' tracks (RESP3), 'w' writes, '2' tracks in RESP2; a
	 * leading '!' runs without comparing */
	static const char *const script[] = {
		"a!HELLO 3", "aCLIENT TRACKING ON", "aGET k", "wSET k v",
		"aGET k", "wSET k v2", "wDEL k", "aMGET k k2", "wMSET k2 1 k 2",
		"aHGET h f", "wHSET h f v", "aHGETALL h", "wHDEL h nope",
		"wHDEL h f", "aLLEN l", "wRPUSH l x", "aLRANGE l 0 -1", "wLPOP l",
		"aEXISTS e", "wSET e 1", "aTTL e", "wEXPIRE e 100", "aGET e",
		"aSET e 2", "aGET e", "aDEL e", "aGET e", "wSET e 1 PX 1",
		"!w", "wGET e", "aGET nokey", "aFLUSHALL", "wFLUSHALL",
		"aCLIENT TRACKING ON NOLOOP", "aGET k", "aSET k 1", "aFLUSHALL",
		"aCLIENT TRACKING MAYBE", "aCLIENT TRACKING ON FOO",
		"aCLIENT TRACKING", "aCLIENT TRACKING OFF", "aGET k", "wSET k 2",
		"2CLIENT TRACKING ON", "2GET k", "wSET k 3", "2SET k 4",
		"aCLIENT TRACKING ON", "aGET longer-key-name-here",
		"wSET longer-key-name-here x",
		/* OFF keeps what was read: ON again, and a change to it is
		 * still pushed; changed while OFF, it is forgotten */
		"aGET k5", "aGET k6", "aCLIENT TRACKING OFF", "wSET k6 x",
		"aCLIENT TRACKING ON", "wSET k5 x", "wSET k6 y",
		"aGET k7", "aCLIENT TRACKING OFF", "aCLIENT TRACKING ON NOLOOP",
		"aSET k7 1", "wSET k7 2", "aGET k8", "aCLIENT TRACKING OFF",
		"wFLUSHALL", "aCLIENT TRACKING ON", "wSET k8 1",
	};
	int fa[3] = {dial(p.r.path), dial(p.r.path), dial(p.r.path)};
	int fb[3] = {dial(p.sock), dial(p.sock), dial(p.sock)};
	size_t diffs = 0;
	for (size_t i = 0; i < sizeof script / sizeof script[0]; i++) {
		const char *s = script[i];
		bool cmp = true;
		if (s[0] == '!') { /* a pause, for the PX to pass */
			usleep(50000);
			continue;
		}
		int who = s[0] == 'a' ? 0 : s[0] == 'w' ? 1 : 2;
		s++;
		if (s[0] == '!') {
			cmp = false;
			s++;
		}
		send_cmd(fa[who], s);
		send_cmd(fb[who], s);
		/* what every connection got: the reply and any push */
		for (int k = 0; k < 3; k++) {
			char got[8192];
			snprintf(got, sizeof got, "%s", until_pong(fa[k]));
			char *want = until_pong(fb[k]);
			if (cmp && strcmp(got, want) != 0) {
				fprintf(stderr, "DIFF %s (conn %d)\n  reap:  %s\n  redis: %s\n",
					s, k, got, want);
				diffs++;
			}
		}
	}
	for (int k = 0; k < 3; k++) {
		close(fa[k]);
		close(fb[k]);
	}
	pair_stop(&p);
	ASSERT_EQ_SIZE(diffs, 0);
}
