/*
 * Managers as scoped processes (reap/mgr.h): start, serve, shut down by
 * the owner's close or explicitly, die cleanly with a SIGKILLed owner,
 * refuse bad input leaving nothing behind. Every test ends with no child
 * left and no fd leak.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include "../runner.h"

static int exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* Connect to "unix:PATH", send req, read the reply (one read). */
static const char *ask(const char *addr, const char *req)
{
	static char buf[512];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ssize_t n;

	ASSERT_GE_INT(fd, 0);
	ASSERT_EQ_INT(strncmp(addr, "unix:", 5), 0);
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", addr + 5);
	ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
	ASSERT_EQ_INT(write(fd, req, strlen(req)), (long long)strlen(req));
	n = read(fd, buf, sizeof buf - 1);
	ASSERT_GE_INT(n, 0);
	buf[n] = '\0';
	close(fd);
	return buf;
}

TEST(start_serve_close)
{
	reap_scope *s;
	reap_mgr *m;
	char dir[256];
	pid_t pid;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	ASSERT_EQ_INT(strncmp(reap_mgr_address(m), "unix:", 5), 0);
	pid = reap_proc_pid(reap_mgr_proc(m));
	ASSERT_EQ_STR(ask(reap_mgr_address(m), "PING\r\n"), "+PONG\r\n");
	ASSERT_EQ_STR(ask(reap_mgr_address(m), "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"),
		      "+OK\r\n");
	ASSERT_EQ_STR(ask(reap_mgr_address(m), "*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"),
		      "$1\r\nv\r\n");
	snprintf(dir, sizeof dir, "%s", reap_mgr_address(m) + 5);
	ASSERT_TRUE(exists(dir));
	ASSERT_OK(reap_scope_close(s));
	/* Shut down by the close: reaped, its socket and directory gone. */
	ASSERT_EQ_INT(kill(pid, 0), -1);
	ASSERT_FALSE(exists(dir));
	ASSERT_FALSE(exists(dirname(dir)));
	TEST_PROCS_END();
}

TEST(shutdown_explicitly)
{
	reap_proc_status st;
	reap_scope *s;
	reap_mgr *m;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, &(reap_mgr_opts){.name = "mine"}, &m));
	ASSERT_OK(reap_mgr_shutdown(m));
	ASSERT_OK(reap_proc_wait(reap_mgr_proc(m), 0, &st));
	/* SIGTERM was handled: a clean exit, not a kill. */
	ASSERT_TRUE(st.exited);
	ASSERT_EQ_INT(st.code, 0);
	ASSERT_FALSE(st.killed);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(tcp_needs_a_key)
{
	static const char key[] = "0123456789abcdef";
	reap_mgr *m = NULL;
	reap_scope *s;
	struct sockaddr_in sa = {.sin_family = AF_INET};
	char buf[128];
	int fd, port;
	ssize_t n;

	TEST_PROCS_BEGIN();
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_INT(reap_mgr_start(s, &(reap_mgr_opts){.tcp = "127.0.0.1:0"}, &m),
		      -EINVAL);
	ASSERT_NULL(m);
	ASSERT_OK(reap_mgr_start(s, &(reap_mgr_opts){.tcp = "127.0.0.1:0", .key = key,
						     .key_len = sizeof key - 1}, &m));
	ASSERT_EQ_INT(strncmp(reap_mgr_address(m), "tcp:127.0.0.1:", 14), 0);
	port = atoi(reap_mgr_address(m) + 14);
	ASSERT_GT_INT(port, 0);
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(0x7f000001);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ASSERT_OK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
	/* Nothing before the key; then everything. */
	ASSERT_EQ_INT(write(fd, "PING\r\n", 6), 6);
	n = read(fd, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = '\0';
	ASSERT_CONTAINS(buf, "NOAUTH");
	snprintf(buf, sizeof buf, "AUTH %s\r\nPING\r\n", key);
	ASSERT_EQ_INT(write(fd, buf, strlen(buf)), (long long)strlen(buf));
	n = 0;
	while (n < 12) {
		ssize_t r = read(fd, buf + n, sizeof buf - 1 - (size_t)n);

		ASSERT_GT_INT(r, 0);
		n += r;
	}
	buf[n] = '\0';
	ASSERT_EQ_STR(buf, "+OK\r\n+PONG\r\n");
	close(fd);
	ASSERT_OK(reap_scope_close(s));
	TEST_PROCS_END();
}

TEST(bad_places_leave_nothing)
{
	char tmpl[] = "/tmp/reap-mgr-test.XXXXXX", path[300];
	reap_mgr *m = NULL;
	reap_scope *s;

	TEST_PROCS_BEGIN();
	ASSERT_NOT_NULL(mkdtemp(tmpl));
	ASSERT_OK(chmod(tmpl, 0755)); /* not private */
	snprintf(path, sizeof path, "%s/mgr.sock", tmpl);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_INT(reap_mgr_start(s, &(reap_mgr_opts){.unix_path = path}, &m),
		      -EPERM);
	ASSERT_EQ_INT(reap_mgr_start(s, &(reap_mgr_opts){.tcp = "127.0.0.1:0",
						     .unix_path = path,
						     .key = "k", .key_len = 1}, &m),
		      -EINVAL);
	ASSERT_EQ_INT(reap_mgr_start(s, &(reap_mgr_opts){.tcp = "not-an-address",
						     .key = "k", .key_len = 1}, &m),
		      -EINVAL);
	ASSERT_NULL(m);
	ASSERT_FALSE(exists(path));
	/* The failed starts left nothing in the owner. */
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_OK(rmdir(tmpl));
	TEST_PROCS_END();
}

/* The owner is SIGKILLed: the manager hears it through its lifeline as
 * SIGTERM, shuts down cleanly (socket directory removed) and exits
 * within a second. We are the subreaper, so the orphan comes to us. */
TEST(owner_killed_manager_goes)
{
	char line[400], dir[300];
	int st;
	pid_t h, mpid;
	FILE *f;
	uint64_t t0;

	TEST_PROCS_BEGIN();
	h = test_owner_start("helper_mgr_owner", &f);
	ASSERT_NOT_NULL(fgets(line, sizeof line, f));
	mpid = (pid_t)atoi(line);
	ASSERT_GT_INT(mpid, 0);
	ASSERT_NOT_NULL(strstr(line, "unix:"));
	snprintf(dir, sizeof dir, "%s", strstr(line, "unix:") + 5);
	dir[strcspn(dir, "\n")] = '\0';
	ASSERT_TRUE(exists(dir));
	snprintf(dir, sizeof dir, "%s", dirname(dir));
	t0 = test_owner_kill(h);
	st = test_wait_adopted(mpid, t0, 1000000000ull);
	/* a clean shutdown, not a kill */
	ASSERT_TRUE(WIFEXITED(st));
	ASSERT_EQ_INT(WEXITSTATUS(st), 0);
	ASSERT_FALSE(exists(dir));
	test_owner_end(f);
	TEST_PROCS_END();
}

static void nop_cleanup(void *arg)
{
	(void)arg;
}

TEST(oom_sweep)
{
	int done = 0, failures = 0;

	TEST_PROCS_BEGIN();
	for (long n = 1; !done && n < 400; n++) {
		reap_scope *s;
		reap_mgr *m = NULL;
		struct test_snap snap;
		int rc;

		ASSERT_OK(reap_scope_open(NULL, &s));
		/* s's cleanup chunk, which a failed start may leave grown. */
		ASSERT_OK(reap_defer(s, nop_cleanup, NULL, NULL));
		snap = test_snap();
		reap_fault_alloc(n);
		rc = reap_mgr_start(s, NULL, &m);
		/* The count is this process's: a failure in the forked
		 * manager (which inherits the armed count) comes back too. */
		test_fault_disarm();
		if (rc == 0) {
			done = 1;
			ASSERT_NOT_NULL(m);
		} else {
			failures++;
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_NULL(m);
			ASSERT_UNCHANGED(snap);
			ASSERT_EQ_INT(waitpid(-1, NULL, WNOHANG), -1);
		}
		ASSERT_OK(reap_scope_close(s));
	}
	ASSERT_TRUE(done);
	ASSERT_GE_INT(failures, 1);
	TEST_PROCS_END();
}
