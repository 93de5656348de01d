/*
 * 8 clients x 100,000 INCR against one manager: an exact total. Once
 * with redis-benchmark (8 connections, 16 requests in flight on each;
 * without -r its INCR increments the one key "counter:__rand_int__"),
 * once with 8 forked processes, each on its own raw connection, sending
 * INCRs pipelined in batches of 100. Each test ends with the manager shut
 * down by its scope's close, no child left and no fd leaked.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

#define CLIENTS 8
#define PER_CLIENT 100000
#define BATCH 100

/* Connect to "unix:PATH"; -1 on failure (for the forked clients). */
static int dial(const char *addr)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd;

	if (strncmp(addr, "unix:", 5) != 0)
		return -1;
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", addr + 5);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static int put_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* GET key on a fresh connection: the integer it holds, -1 if the reply
 * is not a bulk string of digits. */
static long long get_int(const char *addr, const char *key)
{
	char req[256], buf[128];
	size_t len = 0;
	long long v = -1;
	int fd = dial(addr);

	ASSERT_GE_INT(fd, 0);
	snprintf(req, sizeof req, "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
	ASSERT_EQ_INT(put_all(fd, req, strlen(req)), 0);
	/* "$N\r\n<digits>\r\n": read until the second CRLF */
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof buf - 1 - len);
		char *crlf;

		ASSERT_GT_INT(n, 0);
		len += (size_t)n;
		buf[len] = '\0';
		/* a bulk string has two CRLFs; nil, an error, anything else one */
		if ((crlf = strstr(buf, "\r\n")) != NULL &&
		    (buf[0] != '$' || buf[1] == '-' || strstr(crlf + 2, "\r\n")))
			break;
		ASSERT_LT_INT(len, sizeof buf - 1);
	}
	close(fd);
	if (buf[0] == '$' && buf[1] != '-') {
		char *end, *digits = strstr(buf, "\r\n") + 2;

		v = strtoll(digits, &end, 10);
		if (end == digits || strcmp(end, "\r\n") != 0 ||
		    atoll(buf + 1) != (long long)(end - digits))
			v = -1;
	}
	if (v < 0)
		test_fail(__FILE__, __LINE__, "GET %s: unexpected reply \"%s\"", key, buf);
	return v;
}

TEST(redis_benchmark_8x100000)
{
	char cmd[512];
	reap_scope *s;
	reap_mgr *m;
	int st;

	if (system("command -v redis-benchmark >/dev/null 2>&1") != 0)
		test_skip("redis-benchmark is not installed (apt-get install redis-tools)");
	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	snprintf(cmd, sizeof cmd,
		 "redis-benchmark -s %s -n %d -c %d -P 16 -t incr -q >/dev/null",
		 reap_mgr_address(m) + 5, CLIENTS * PER_CLIENT, CLIENTS);
	st = system(cmd);
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ_INT(WEXITSTATUS(st), 0);
	ASSERT_EQ_INT(get_int(reap_mgr_address(m), "counter:__rand_int__"),
		      CLIENTS * PER_CLIENT);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

/* A forked client: PER_CLIENT INCRs of "total", BATCH per write, each
 * reply checked to be an integer. 0 on success. Plain syscalls only. */
static int incr_client(void *arg)
{
	static const char incr[] = "*2\r\n$4\r\nINCR\r\n$5\r\ntotal\r\n";
	const size_t isz = sizeof incr - 1;
	char req[BATCH * sizeof incr], buf[8192];
	int fd = dial(arg), bad = 0;

	if (fd < 0)
		return 1;
	for (int i = 0; i < BATCH; i++)
		memcpy(req + (size_t)i * isz, incr, isz);
	for (int sent = 0; sent < PER_CLIENT && !bad; sent += BATCH) {
		int replies = 0, at_start = 1;

		if (put_all(fd, req, BATCH * isz) != 0)
			return 2;
		/* BATCH replies ":N\r\n", in any number of reads */
		while (replies < BATCH && !bad) {
			ssize_t n = read(fd, buf, sizeof buf);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				return 3;
			for (ssize_t j = 0; j < n; j++) {
				if (at_start && buf[j] != ':')
					bad = 1;
				at_start = buf[j] == '\n';
				replies += at_start;
			}
		}
		if (replies != BATCH)
			bad = 1;
	}
	close(fd);
	return bad ? 4 : 0;
}

TEST(forked_clients_8x100000)
{
	pid_t pids[CLIENTS];
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	for (int i = 0; i < CLIENTS; i++)
		pids[i] = test_fork(incr_client, (void *)reap_mgr_address(m));
	for (int i = 0; i < CLIENTS; i++)
		ASSERT_EQ_INT(test_wait(pids[i]), 0);
	ASSERT_EQ_INT(get_int(reap_mgr_address(m), "total"), CLIENTS * PER_CLIENT);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}
