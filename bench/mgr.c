/*
 * bench/mgr.c: the manager against redis-server, issue 7 (a).
 *
 *   (a) redis-benchmark (Debian's redis-tools) against reap-manager and
 *       against redis-server (Debian's), over the same socket type: a
 *       Unix socket in a private directory, and TCP on 127.0.0.1. For
 *       each socket type, -c 1 and -c 8, -P 1 and -P 16, the commands
 *       PING (multibulk), SET, GET, INCR, LPUSH, LPOP, HSET and MSET.
 *
 *   7a9: RPUSH at -c 1 -P 1 over the Unix socket while PARKED other
 *       clients are blocked in BLPOP, each on a key of its own: what a
 *       change costs the clients it does not concern (a worker pool
 *       waiting on per-worker queues).
 *
 * Both servers start once, with the same key (reap-manager's key file,
 * redis-server's requirepass), so every connection of either does AUTH;
 * redis-server saves nothing to disk. Each measurement is one
 * redis-benchmark run of one command; the two servers take turns (reap,
 * redis, reap, redis, ...), three runs each, and a side's result is the
 * median of its runs, in requests per second. A row is one (socket, -c,
 * -P) combination: the geometric mean over the eight commands, as ns per
 * request, so that ratio = peer / reap = reap rps / redis rps. The
 * per-command table goes to stderr, and a NOTE names the commands below
 * parity.
 *
 * Nothing is left running on any way out: the servers die with this
 * process (PR_SET_PDEATHSIG), and exit, a fatal error or SIGINT/SIGTERM
 * stop them and remove the directory.
 *
 * BENCH_N scales the requests per run (the default 1000000 gives 10000
 * per run at -P 1 and 200000 at -P 16; with -c 8, 40000 and 300000).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#ifndef BENCH_REAP_MANAGER
#error "bench/CMakeLists.txt defines BENCH_REAP_MANAGER, the daemon's path"
#endif

#define RUNS 3
#define NCMD 8

static const struct {
	const char *t;    /* redis-benchmark -t */
	const char *name; /* in the tables */
} cmds[NCMD] = {
	{"ping_mbulk", "PING"}, {"set", "SET"},     {"get", "GET"},
	{"incr", "INCR"},       {"lpush", "LPUSH"}, {"lpop", "LPOP"},
	{"hset", "HSET"},       {"mset", "MSET"},
};

/* What cleanup() undoes; plain globals, read by a signal handler. */
static char dir[64];
static char key_path[96], reap_sock[96], redis_sock[96];
static char key[33];
static volatile pid_t reap_pid, redis_pid;
static int reap_port, redis_port;

static void stop(volatile pid_t *pidp)
{
	pid_t pid = *pidp;

	if (pid <= 0)
		return;
	*pidp = 0;
	kill(pid, SIGTERM);
	/* up to 2 s for a clean exit, then SIGKILL */
	for (int i = 0; i < 200; i++) {
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return;
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* Stop both servers, remove the directory. Async-signal-safe. */
static void cleanup(void)
{
	stop(&reap_pid);
	stop(&redis_pid);
	if (dir[0]) {
		unlink(key_path);
		unlink(reap_sock);
		unlink(redis_sock);
		rmdir(dir);
		dir[0] = '\0';
	}
}

static void on_signal(int sig)
{
	cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "bench_mgr: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1); /* cleanup() runs at exit */
}

/* Fork and exec argv with stdout to out_fd (-1: /dev/null); the child
 * dies with us. */
static pid_t spawn(char *const argv[], int out_fd)
{
	pid_t parent = getpid(), pid = fork();

	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
			_exit(127);
		dup2(out_fd >= 0 ? out_fd : null, 1);
		execvp(argv[0], argv);
		_exit(127);
	}
	return pid;
}

/* Whether something accepts connections at the Unix path or TCP port. */
static int can_connect(const char *path, int port)
{
	int fd, ok;

	if (path) {
		struct sockaddr_un sa = {.sun_family = AF_UNIX};

		snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
		fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	} else {
		struct sockaddr_in sa = {.sin_family = AF_INET,
					 .sin_port = htons((uint16_t)port),
					 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};

		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
	}
	if (fd >= 0)
		close(fd);
	return ok;
}

static void wait_up(const char *what, const char *path, int port)
{
	for (int i = 0; i < 500; i++) {
		if (can_connect(path, port))
			return;
		nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
	}
	die("%s did not come up within 5 s", what);
}

/* A free TCP port on 127.0.0.1 (for redis-server, which cannot pick
 * one itself and say which). */
static int free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
		die("free port: %s", strerror(errno));
	close(fd);
	return ntohs(sa.sin_port);
}

static void make_key(void)
{
	unsigned char raw[16];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

	if (fd < 0 || read(fd, raw, sizeof raw) != (ssize_t)sizeof raw)
		die("/dev/urandom: %s", strerror(errno));
	close(fd);
	for (size_t i = 0; i < sizeof raw; i++)
		snprintf(key + 2 * i, 3, "%02x", raw[i]);
	fd = open(key_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, key, 32) != 32 || write(fd, "\n", 1) != 1 ||
	    close(fd) != 0)
		die("key file: %s", strerror(errno));
}

static void start_servers(void)
{
	char tcp[32], port[16], line[32];
	int pfd[2];
	FILE *f;

	snprintf(dir, sizeof dir, "%s", "/tmp/reap-bench-mgr.XXXXXX");
	if (mkdtemp(dir) == NULL) {
		dir[0] = '\0';
		die("mkdtemp: %s", strerror(errno));
	}
	snprintf(key_path, sizeof key_path, "%s/key", dir);
	snprintf(reap_sock, sizeof reap_sock, "%s/reap.sock", dir);
	snprintf(redis_sock, sizeof redis_sock, "%s/redis.sock", dir);
	make_key();

	/* reap-manager: both sockets, the key; it prints its port once it
	 * listens. */
	if (pipe2(pfd, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	reap_pid = spawn((char *[]){BENCH_REAP_MANAGER, "--unix", reap_sock,
				    "--tcp", "127.0.0.1:0", "--key-file",
				    key_path, "--print-port", NULL},
			 pfd[1]);
	close(pfd[1]);
	if ((f = fdopen(pfd[0], "r")) == NULL || fgets(line, sizeof line, f) == NULL)
		die("%s did not print its port", BENCH_REAP_MANAGER);
	fclose(f);
	reap_port = atoi(line);
	wait_up("reap-manager", reap_sock, 0);
	wait_up("reap-manager", NULL, reap_port);

	/* redis-server: the same sockets and key, nothing saved to disk. */
	redis_port = free_port();
	snprintf(port, sizeof port, "%d", redis_port);
	snprintf(tcp, sizeof tcp, "%s", "127.0.0.1");
	redis_pid = spawn((char *[]){"redis-server", "--port", port, "--bind", tcp,
				     "--unixsocket", redis_sock,
				     "--unixsocketperm", "700", "--requirepass",
				     key, "--save", "", "--appendonly", "no",
				     "--dir", dir, "--daemonize", "no",
				     "--logfile", "", NULL},
			  -1);
	wait_up("redis-server", redis_sock, 0);
	wait_up("redis-server", NULL, redis_port);
}

/* One redis-benchmark run of one command: requests per second. t is a
 * -t name, or "cmd:ARGS" for a command of its own. */
static double run_once(int tcp, int port, const char *sock, int c, int p,
		       size_t n, const char *t)
{
	char cmd[512], where[128], out[4096];
	size_t len = 0, got;
	double rps = 0;
	FILE *f;

	if (tcp)
		snprintf(where, sizeof where, "-h 127.0.0.1 -p %d", port);
	else
		snprintf(where, sizeof where, "-s %s", sock);
	if (strncmp(t, "cmd:", 4) == 0)
		snprintf(cmd, sizeof cmd,
			 "redis-benchmark %s -a %s -n %zu -c %d -P %d --csv %s 2>&1",
			 where, key, n, c, p, t + 4);
	else
		snprintf(cmd, sizeof cmd,
			 "redis-benchmark %s -a %s -n %zu -c %d -P %d -t %s --csv 2>&1",
			 where, key, n, c, p, t);
	if ((f = popen(cmd, "r")) == NULL)
		die("popen: %s", strerror(errno));
	while (len < sizeof out - 1 &&
	       (got = fread(out + len, 1, sizeof out - 1 - len, f)) > 0)
		len += got;
	out[len] = '\0';
	if (pclose(f) != 0 || strstr(out, "rror") || strstr(out, "ERR"))
		die("redis-benchmark failed:\n%s", out);
	/* "test","rps",...  then  "SET","123456.78",... */
	for (char *l = out, *q; l != NULL; l = (q = strchr(l, '\n')) ? q + 1 : NULL) {
		if (l[0] == '"' && strncmp(l, "\"test\"", 6) != 0) {
			if ((q = strstr(l, "\",\"")) != NULL)
				rps = atof(q + 3);
			break;
		}
	}
	if (!(rps > 0))
		die("no requests per second in:\n%s", out);
	return rps;
}

static double median3(double *v)
{
	return bench_median(v, RUNS);
}

#define PARKED 1000

/* Connect n clients to sock, each authenticated (one at a time: the
 * servers limit unauthenticated connections) and then blocked in BLPOP
 * on a key of its own; their descriptors go to fds. */
static void park(const char *sock, int *fds, int n)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	char req[256], ok[8];

	snprintf(a.sun_path, sizeof a.sun_path, "%s", sock);
	for (int i = 0; i < n; i++) {
		char k[32];
		int kl = snprintf(k, sizeof k, "park:%d", i), len;
		size_t got = 0;
		ssize_t r;

		len = snprintf(req, sizeof req,
			       "*2\r\n$4\r\nAUTH\r\n$%zu\r\n%s\r\n"
			       "*3\r\n$5\r\nBLPOP\r\n$%d\r\n%s\r\n$1\r\n0\r\n",
			       strlen(key), key, kl, k);
		if ((fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
		    connect(fds[i], (struct sockaddr *)&a, sizeof a) != 0 ||
		    write(fds[i], req, (size_t)len) != len)
			die("parking client %d on %s: %s", i, sock, strerror(errno));
		while (got < 5 && (r = read(fds[i], ok + got, 5 - got)) > 0)
			got += (size_t)r;
		if (got != 5 || memcmp(ok, "+OK\r\n", 5) != 0)
			die("parking client %d on %s: AUTH failed", i, sock);
	}
}

int main(void)
{
	size_t base = bench_n();
	static const int cs[2] = {1, 8}, ps[2] = {1, 16};
	char note[4096] = "7a commands below parity (reap rps / redis rps < 1):";
	size_t nl = strlen(note);
	int row = 0, any_below = 0;

	if (atexit(cleanup) != 0)
		die("atexit");
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	start_servers();
	fprintf(stderr, "(a) redis-benchmark: reap-manager (%s) vs redis-server, "
			"%d runs each, interleaved\n",
		BENCH_REAP_MANAGER, RUNS);
	fprintf(stderr, "%-4s %-5s %-3s %-3s %-6s %7s %12s %12s %7s\n", "row",
		"sock", "-c", "-P", "cmd", "n", "reap rps", "redis rps", "ratio");

	for (int tcp = 0; tcp < 2; tcp++) {
		for (int ci = 0; ci < 2; ci++) {
			for (int pi = 0; pi < 2; pi++) {
				int c = cs[ci], p = ps[pi];
				size_t n = p == 1 ? base / 100 : base / 5;
				double lr = 0, ld = 0;
				char id[8], what[160], below[512] = "";
				bench_contender reap = {.name = "reap"};
				bench_contender redis = {.name = "redis-server"};

				/* -c 8 -P 1 runs are the shortest for their
				 * rate, and were the noisiest: four times as
				 * many requests there. */
				if (c > 1)
					n = p == 1 ? n * 4 : n + n / 2;
				if (n < 100)
					n = 100;
				snprintf(id, sizeof id, "7a%d", ++row);
				for (int k = 0; k < NCMD; k++) {
					double a[RUNS], b[RUNS], ra, rb;

					for (int r = 0; r < RUNS; r++) {
						a[r] = run_once(tcp, reap_port, reap_sock,
								c, p, n, cmds[k].t);
						b[r] = run_once(tcp, redis_port, redis_sock,
								c, p, n, cmds[k].t);
					}
					ra = median3(a);
					rb = median3(b);
					lr += log(1e9 / ra);
					ld += log(1e9 / rb);
					fprintf(stderr,
						"%-4s %-5s %-3d %-3d %-6s %7zu %12.0f %12.0f %7.2f\n",
						id, tcp ? "tcp" : "unix", c, p, cmds[k].name,
						n, ra, rb, ra / rb);
					if (ra < rb) {
						size_t bl = strlen(below);
						snprintf(below + bl, sizeof below - bl,
							 "%s%s %.2f", bl ? ", " : "",
							 cmds[k].name, ra / rb);
					}
				}
				reap.ns = exp(lr / NCMD);
				redis.ns = exp(ld / NCMD);
				snprintf(what, sizeof what,
					 "redis-benchmark, %s, -c %d -P %d: geomean of "
					 "8 commands, ns/request",
					 tcp ? "TCP loopback" : "Unix socket", c, p);
				bench_row(id, what, &reap, &redis, ">=1");
				if (below[0]) {
					any_below = 1;
					nl += (size_t)snprintf(note + nl, sizeof note - nl,
							       " %s (%s -c %d -P %d): %s;", id,
							       tcp ? "tcp" : "unix", c, p, below);
					if (nl >= sizeof note)
						nl = sizeof note - 1;
				}
			}
		}
	}
	{
		static int pr[PARKED], pd[PARKED];
		bench_contender reap = {.name = "reap"};
		bench_contender redis = {.name = "redis-server"};
		size_t n = base / 20 < 1000 ? 1000 : base / 20;
		double a[RUNS], b[RUNS];

		park(reap_sock, pr, PARKED);
		park(redis_sock, pd, PARKED);
		for (int r = 0; r < RUNS; r++) {
			a[r] = run_once(0, 0, reap_sock, 1, 1, n, "cmd:RPUSH jobs x");
			b[r] = run_once(0, 0, redis_sock, 1, 1, n, "cmd:RPUSH jobs x");
		}
		reap.ns = 1e9 / median3(a);
		redis.ns = 1e9 / median3(b);
		fprintf(stderr, "7a9  unix  1   1   RPUSH  %7zu %12.0f %12.0f %7.2f"
				" (%d clients blocked on other keys)\n",
			n, median3(a), median3(b), median3(a) / median3(b), PARKED);
		bench_row("7a9", "RPUSH, Unix socket, -c 1 -P 1, while 1000 other "
				 "clients wait in BLPOP on keys of their own",
			  &reap, &redis, ">=1");
		for (int i = 0; i < PARKED; i++) {
			close(pr[i]);
			close(pd[i]);
		}
	}
	cleanup();
	bench_note("7a: redis-benchmark against reap-manager and against "
		   "redis-server (Debian), both started once with the same key "
		   "(every connection does AUTH; redis-server saves nothing), "
		   "over the same socket type: Unix socket (7a1-7a4) and TCP "
		   "loopback (7a5-7a8), -c 1/8, -P 1/16, commands PING (multibulk), "
		   "SET, GET, INCR, LPUSH, LPOP, HSET, MSET (10 keys); each "
		   "command the median of 3 runs per server, taken in turns; a "
		   "row is the geometric mean over the 8 commands, so ratio = "
		   "reap rps / redis rps (target: at least as fast on every row). "
		   "7a9: RPUSH (redis-benchmark, Unix socket, -c 1 -P 1) while "
		   "1000 other clients, connected first, wait in BLPOP on keys "
		   "of their own; median of 3 runs per server, in turns.");
	if (!any_below)
		snprintf(note + nl, sizeof note - nl, " none.");
	else if (note[nl - 1] == ';')
		note[nl - 1] = '.';
	bench_note(note);
	return 0;
}
