/*
 * bench/mgr_client.c: the manager's C client, issue 7 (b) and (c).
 *
 *   (b) a dict in a manager of this process, through the C client
 *       (reap_mgr_connect, reap_mgr_dict_open; client cache off, so that
 *       every get goes to the manager), against a dict proxy of Python's
 *       multiprocessing.Manager (bench/py/mgr.py). A round is n / 100
 *       operations on 16 keys k0..k15 (10000 at the default BENCH_N):
 *       the first half sets, the second half gets.
 *       7b1: one operation per round trip (reap_mgr_dict_set/get; d[k]).
 *       7b2: 16 operations per round trip: reap_mgr_batch_begin, 16 sets
 *       or 16 gets, reap_mgr_batch_exec. Python's dict proxy has no call
 *       that gets several named keys, so its sets go 16 to a round trip
 *       (d.update() of 16 items) and its gets one to a round trip (d[k]);
 *       stderr also shows Python with its gets 16 to a round trip
 *       through d.copy(), which returns the whole dict and so reads the
 *       16 values only because the dict holds nothing else.
 *       7b3: 7b1's reap against a bare round trip: a forked process
 *       that echoes what it reads over a Unix socketpair, blocking
 *       write + read of a 43-byte request (7b1's longest HSET).
 *   (c) 7c: reap_mgr_start + reap_mgr_shutdown + the owning scope's
 *       close, n / 100000 times a round (10 at the default), against
 *       multiprocessing.Manager() + shutdown().
 *
 * Every contender takes turns with the others within each round
 * (bench_group), Python's too: bench/py/mgr.py runs beside this program
 * for the whole run and does one round each time it is asked, on a pipe
 * (the pipe's round trip, some microseconds a round, is counted in its
 * time: under 1 ns per operation of (b)).
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <reap.h>

#define BATCH 16
#define REQ_LEN 43

static const char *const keys[BATCH] = {
	"k0", "k1", "k2",  "k3",  "k4",  "k5",  "k6",  "k7",
	"k8", "k9", "k10", "k11", "k12", "k13", "k14", "k15",
};

static reap_mgr_client *client;
static reap_mgr_dict *dict;
static int echo_fd = -1;
static pid_t echo_pid;

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_mgr_client: %s: %s", what, reap_errname(rc));
	if (client != NULL && reap_mgr_client_error(client)[0] != '\0')
		fprintf(stderr, " (%s)", reap_mgr_client_error(client));
	fprintf(stderr, "\n");
	exit(1);
}

/* --- (b) ------------------------------------------------------------- */

static void reap_unbatched(size_t n)
{
	size_t sets = n / 2;
	int rc;

	for (size_t i = 0; i < sets; i++) {
		rc = reap_mgr_dict_set(dict, keys[i % BATCH],
				       reap_mgr_int((int64_t)i));
		if (rc < 0)
			die("reap_mgr_dict_set", rc);
	}
	for (size_t i = 0; i < n - sets; i++) {
		reap_mgr_value v;

		if ((rc = reap_mgr_dict_get(dict, keys[i % BATCH], &v)) < 0)
			die("reap_mgr_dict_get", rc);
		if (v.type != REAP_MGR_T_INT)
			die("reap_mgr_dict_get: not an int", -EPROTO);
		reap_mgr_value_free(&v);
	}
}

/* n is a multiple of 2 * BATCH (main sees to it). */
static void reap_batched(size_t n)
{
	size_t sets = n / 2, failed;
	reap_mgr_value v[BATCH];
	int rc;

	for (size_t i = 0; i < sets; i += BATCH) {
		reap_mgr_batch_begin(client);
		for (size_t j = 0; j < BATCH; j++) {
			rc = reap_mgr_dict_set(dict, keys[j],
					       reap_mgr_int((int64_t)(i + j)));
			if (rc < 0)
				die("reap_mgr_dict_set (queued)", rc);
		}
		if ((rc = reap_mgr_batch_exec(client, &failed)) < 0 || failed)
			die("reap_mgr_batch_exec (sets)", rc < 0 ? rc : -EPROTO);
	}
	for (size_t i = 0; i < n - sets; i += BATCH) {
		reap_mgr_batch_begin(client);
		for (size_t j = 0; j < BATCH; j++) {
			if ((rc = reap_mgr_dict_get(dict, keys[j], &v[j])) < 0)
				die("reap_mgr_dict_get (queued)", rc);
		}
		if ((rc = reap_mgr_batch_exec(client, &failed)) < 0 || failed)
			die("reap_mgr_batch_exec (gets)", rc < 0 ? rc : -EPROTO);
		for (size_t j = 0; j < BATCH; j++) {
			if (v[j].type != REAP_MGR_T_INT)
				die("batched get: not an int", -EPROTO);
			reap_mgr_value_free(&v[j]);
		}
	}
}

/* The echo process: reads and writes back until end of file. */
static void echo_serve(int fd)
{
	char buf[512];
	ssize_t got;

	while ((got = read(fd, buf, sizeof buf)) > 0) {
		for (ssize_t off = 0, put; off < got; off += put) {
			if ((put = write(fd, buf + off, (size_t)(got - off))) <= 0)
				_exit(1);
		}
	}
	_exit(got == 0 ? 0 : 1);
}

static void echo_start(void)
{
	pid_t parent = getpid();
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair", -errno);
	if ((echo_pid = fork()) < 0)
		die("fork", -errno);
	if (echo_pid == 0) {
		close(sv[0]);
		if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
			_exit(1);
		echo_serve(sv[1]);
	}
	close(sv[1]);
	echo_fd = sv[0];
}

static void echo_stop(void)
{
	int st;

	close(echo_fd);
	if (waitpid(echo_pid, &st, 0) != echo_pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		die("echo process", -EPROTO);
}

static void bare_round_trip(size_t n)
{
	/* an HSET of 7b1 as it goes on the wire: the same size */
	static const char req[REQ_LEN + 1] =
		"*4\r\n$4\r\nHSET\r\n$5\r\nbench\r\n$2\r\nk7\r\n$4\r\n1234\r\n";
	char buf[REQ_LEN];

	for (size_t i = 0; i < n; i++) {
		size_t got = 0;

		if (write(echo_fd, req, REQ_LEN) != REQ_LEN)
			die("write", -errno);
		while (got < REQ_LEN) {
			ssize_t r = read(echo_fd, buf + got, REQ_LEN - got);

			if (r <= 0)
				die("read", r < 0 ? -errno : -ECONNRESET);
			got += (size_t)r;
		}
	}
}

/* --- (c) ------------------------------------------------------------- */

static void reap_start_stop(size_t n)
{
	for (size_t i = 0; i < n; i++) {
		reap_scope *s;
		reap_mgr *m;
		int rc;

		if ((rc = reap_scope_open(NULL, &s)) < 0)
			die("reap_scope_open", rc);
		if ((rc = reap_mgr_start(s, NULL, &m)) < 0)
			die("reap_mgr_start", rc);
		if ((rc = reap_mgr_shutdown(m)) < 0)
			die("reap_mgr_shutdown", rc);
		if ((rc = reap_scope_close(s)) < 0)
			die("reap_scope_close", rc);
	}
}

/* --- Python ---------------------------------------------------------- */

/* bench/py/mgr.py, running beside us: a round on request. */
static FILE *py_in, *py_out;
static pid_t py_pid;

static void py_start(void)
{
	pid_t parent = getpid();
	int in[2], out[2];

	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0)
		die("pipe", -errno);
	if ((py_pid = fork()) < 0)
		die("fork", -errno);
	if (py_pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent ||
		    dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		execl("/usr/bin/python3", "python3", BENCH_SOURCE_DIR "/py/mgr.py",
		      (char *)NULL);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	if ((py_in = fdopen(in[1], "w")) == NULL ||
	    (py_out = fdopen(out[0], "r")) == NULL)
		die("fdopen", -errno);
}

static void py_round(const char *mode, size_t n)
{
	char line[16];

	if (fprintf(py_in, "%s %zu\n", mode, n) < 0 || fflush(py_in) != 0 ||
	    fgets(line, sizeof line, py_out) == NULL || strcmp(line, "ok\n") != 0)
		die("python3 bench/py/mgr.py", -EIO);
}

static void py_stop(void)
{
	int st;

	fclose(py_in);
	fclose(py_out);
	if (waitpid(py_pid, &st, 0) != py_pid || !WIFEXITED(st) ||
	    WEXITSTATUS(st) != 0)
		die("python3 bench/py/mgr.py exit", -EPROTO);
}

static void py_dict(size_t n)
{
	py_round("dict", n);
}

static void py_batch(size_t n)
{
	py_round("batch", n);
}

static void py_copy(size_t n)
{
	py_round("copy", n);
}

static void py_start_stop(size_t n)
{
	py_round("start", n);
}

int main(void)
{
	size_t n = bench_n() / 100, nc = bench_n() / 100000;
	int reps = bench_reps();
	bench_contender b[] = {
		{.name = "reap", .run = reap_unbatched},
		{.name = "reap batch 16", .run = reap_batched},
		{.name = "bare round trip", .run = bare_round_trip},
		{.name = "mp.Manager dict", .run = py_dict},
		{.name = "mp dict, batch", .run = py_batch},
		{.name = "mp dict, copy()", .run = py_copy},
	};
	bench_contender c[] = {{.name = "reap", .run = reap_start_stop},
			       {.name = "mp.Manager", .run = py_start_stop}};
	reap_scope *s;
	reap_mgr *m;
	int rc;

	n -= n % (2 * BATCH);
	if (n < 2 * BATCH)
		n = 2 * BATCH;
	if (nc < 5)
		nc = 5;

	/* Python and the echo process first, then one manager, one client,
	 * one dict for every round of (b). */
	py_start();
	echo_start();
	if ((rc = reap_scope_open(NULL, &s)) < 0)
		die("reap_scope_open", rc);
	if ((rc = reap_mgr_start(s, NULL, &m)) < 0)
		die("reap_mgr_start", rc);
	if ((rc = reap_mgr_connect(s, reap_mgr_address(m), NULL, &client)) < 0)
		die("reap_mgr_connect", rc);
	if ((rc = reap_mgr_dict_open(s, client, "bench", NULL, &dict)) < 0)
		die("reap_mgr_dict_open", rc);
	bench_group("(b) dict set/get through a manager", b, 6, n, reps);
	fprintf(stderr, "  reap batch 16 against Python's gets through d.copy(): "
			"%.2fx\n", b[5].ns / b[1].ns);
	if ((rc = reap_scope_close(s)) < 0)
		die("reap_scope_close", rc);
	client = NULL;
	echo_stop();

	bench_group("(c) manager start + shutdown", c, 2, nc, reps);
	py_stop();

	bench_note("7b: a dict in a manager, through reap's C client (cache off) "
		   "and through a dict proxy of Python's multiprocessing.Manager: "
		   "half sets, half gets of int values on 16 keys, 10000 "
		   "operations a round, ns per operation; 7b1 one operation per "
		   "round trip (target: 2.5x Python), 7b2 16 per round trip with "
		   "reap_mgr_batch_begin/exec (target: 30x), where Python's sets "
		   "are d.update() of 16 items and its gets d[k] one at a time "
		   "(a dict proxy cannot get several named keys in one call); 7b3 "
		   "7b1's reap against a bare round trip of a 43-byte request "
		   "echoed by another process over a Unix socketpair (target: "
		   "within 1.3x, so ratio >= 0.77).");
	bench_note("7c: a manager's start and shutdown: reap_mgr_start + "
		   "reap_mgr_shutdown + closing the owning scope, against "
		   "multiprocessing.Manager() + shutdown() (target: 5x).");
	bench_row("7b1", "dict set/get, 1 per round trip", &b[0], &b[3], ">=2.5");
	bench_row("7b2", "dict set/get, 16 per round trip", &b[1], &b[4], ">=30");
	bench_row("7b3", "dict set/get against a bare round trip", &b[0], &b[2],
		  ">=0.77");
	bench_row("7c", "manager start + shutdown", &c[0], &c[1], ">=5");
	return 0;
}
