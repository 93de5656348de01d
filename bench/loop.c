/*
 * bench/loop.c: the event loop, issue 5.
 *
 *   (a)  spawn + join of n trivial tasks, one after the other, inside a
 *        main task run by reap_loop_run(): reap_task_spawn with a handle
 *        then reap_task_join, against asyncio's create_task + await
 *        (bench/py/loop.py, n / 20 tasks per round).
 *   (b)  yield ping-pong between two tasks, n yields in all (n / 2 each):
 *        reap_yield against `await asyncio.sleep(0)`; per switch.
 *   (b2) the raw context switch: reap__ctx_switch (src/loop/ctx.h, an
 *        internal header; the bench links the static library, which holds
 *        the hidden symbol) ping-pong between the thread's context and a
 *        made one, against glibc's swapcontext between two ucontexts;
 *        n switches in all, per switch.
 *   (c)  n zero-length timers fired and re-armed: one task doing
 *        reap_sleep(0) n times, against one uv_timer_t with timeout 0
 *        whose callback re-arms it (uv_timer_start(h, cb, 0, 0)). libuv
 *        fires the re-armed timer again within the same uv__run_timers
 *        pass (its cached loop time does not move), so its side is a
 *        heap insert and remove and a callback per timer; reap's is a
 *        park on the heap, a turn of the loop and two switches.
 *   (d)  echo of 64-byte messages over a socketpair between two tasks,
 *        n / 10 round trips: A writes, waits with reap_wait_fd(REAP_READ)
 *        and reads; B waits, reads and writes back. Against libuv with two
 *        uv_pipe_t opened on another socketpair, uv_read_start / uv_write
 *        callbacks doing the same ping-pong.
 *   (e)  reap_to_thread() round trip of a trivial function, n / 10 in a
 *        row, against uv_queue_work whose after_work callback queues the
 *        next. Both have 4 worker threads (the defaults).
 *
 * One reap loop and one uv_loop_t are made before the rounds and serve
 * every round; each reap round is one reap_loop_run(). Every contender
 * counts what it did and a round that did less stops the benchmark.
 */
#include "bench.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/socket.h>
#include <ucontext.h>
#include <unistd.h>

#include <uv.h>

#include <reap/loop.h>

#include "../src/loop/ctx.h" /* internal: the raw switch of row 5b2 */

#define MSG 64

static void die(const char *what)
{
	fprintf(stderr, "bench_loop: %s\n", what);
	exit(1);
}

static void check(const char *who, size_t got, size_t n)
{
	if (got != n) {
		fprintf(stderr, "bench_loop: %s did %zu of %zu\n", who, got, n);
		exit(1);
	}
}

static reap_loop *rloop;
static uv_loop_t uloop;
static size_t count;

/* Run main_fn(&n) as the main task of one reap_loop_run(). */
static void reap_run(reap_task_fn main_fn, size_t n)
{
	int rc = reap_loop_run(rloop, main_fn, &n, NULL);

	if (rc != 0) {
		fprintf(stderr, "bench_loop: reap_loop_run: %s\n", reap_errname(rc));
		exit(1);
	}
}

/* ------------------------------------------------------------------ */
/* (a) spawn + join                                                     */

static int trivial_task(void *arg, void **result)
{
	(void)arg;
	count++;
	*result = NULL;
	return 0;
}

static int spawn_join_main(void *arg, void **result)
{
	size_t n = *(size_t *)arg;

	(void)result;
	for (size_t i = 0; i < n; i++) {
		reap_task *t;
		int rc = reap_task_spawn(NULL, trivial_task, NULL, &t);

		if (rc < 0)
			return rc;
		if ((rc = reap_task_join(t, NULL)) < 0)
			return rc;
	}
	return 0;
}

static void reap_spawn_join(size_t n)
{
	count = 0;
	reap_run(spawn_join_main, n);
	check("reap spawn + join", count, n);
}

/* ------------------------------------------------------------------ */
/* (b) yield ping-pong                                                  */

static int yielder(void *arg, void **result)
{
	size_t k = *(size_t *)arg;

	(void)result;
	for (size_t i = 0; i < k; i++) {
		int rc = reap_yield();

		if (rc < 0)
			return rc;
		count++;
	}
	return 0;
}

static int yield_main(void *arg, void **result)
{
	size_t n = *(size_t *)arg, half = n / 2, other = n - half;
	reap_task *a, *b;
	int rc;

	(void)result;
	if ((rc = reap_task_spawn(NULL, yielder, &half, &a)) < 0)
		return rc;
	if ((rc = reap_task_spawn(NULL, yielder, &other, &b)) < 0)
		return rc;
	if ((rc = reap_task_join(a, NULL)) < 0)
		return rc;
	return reap_task_join(b, NULL);
}

static void reap_yield_pingpong(size_t n)
{
	count = 0;
	reap_run(yield_main, n);
	check("reap yield", count, n);
}

/* ------------------------------------------------------------------ */
/* (b2) raw context switch                                              */

static struct reap__ctx ctx_self, ctx_co;
static size_t ctx_left;

static void ctx_fn(void *arg)
{
	(void)arg;
	while (ctx_left > 0) {
		count++;
		reap__ctx_switch(&ctx_co, &ctx_self);
	}
}

static void reap_ctx_pingpong(size_t n)
{
	struct reap__stack st;

	if (reap__stack_acquire(&st, 0) != 0)
		die("reap__stack_acquire failed");
	count = 0;
	ctx_self = (struct reap__ctx){0};
	reap__ctx_make(&ctx_co, &st, ctx_fn, NULL);
	/* Each lap is two switches: to the coroutine and back. */
	for (ctx_left = (n + 1) / 2; ctx_left > 0; ctx_left--) {
		reap__ctx_switch(&ctx_self, &ctx_co);
		count++;
	}
	reap__ctx_switch(&ctx_self, &ctx_co); /* lets ctx_fn return */
	if (!reap__ctx_finished(&ctx_co))
		die("the coroutine did not finish");
	reap__ctx_destroy(&ctx_co);
	reap__stack_release(&st);
	check("reap__ctx_switch", count, 2 * ((n + 1) / 2));
}

static ucontext_t uc_self, uc_co;
static char *uc_stack;

static void uc_fn(void)
{
	while (ctx_left > 0) {
		count++;
		if (swapcontext(&uc_co, &uc_self) != 0)
			die("swapcontext failed");
	}
}

static void swapcontext_pingpong(size_t n)
{
	count = 0;
	if (getcontext(&uc_co) != 0)
		die("getcontext failed");
	uc_co.uc_stack.ss_sp = uc_stack;
	uc_co.uc_stack.ss_size = REAP__STACK_DEFAULT;
	uc_co.uc_link = &uc_self;
	makecontext(&uc_co, uc_fn, 0);
	for (ctx_left = (n + 1) / 2; ctx_left > 0; ctx_left--) {
		if (swapcontext(&uc_self, &uc_co) != 0)
			die("swapcontext failed");
		count++;
	}
	if (swapcontext(&uc_self, &uc_co) != 0) /* uc_fn returns to uc_link */
		die("swapcontext failed");
	check("swapcontext", count, 2 * ((n + 1) / 2));
}

/* ------------------------------------------------------------------ */
/* (c) zero-length timers                                               */

static int sleep0_main(void *arg, void **result)
{
	size_t n = *(size_t *)arg;

	(void)result;
	for (size_t i = 0; i < n; i++) {
		int rc = reap_sleep(0);

		if (rc < 0)
			return rc;
		count++;
	}
	return 0;
}

static void reap_timers(size_t n)
{
	count = 0;
	reap_run(sleep0_main, n);
	check("reap sleep(0)", count, n);
}

/* The same with 1-ns sleeps: each a real timer through the heap. */
static int sleep1_main(void *arg, void **result)
{
	size_t n = *(size_t *)arg;

	(void)result;
	for (size_t i = 0; i < n; i++) {
		int rc = reap_sleep(1);

		if (rc < 0)
			return rc;
		count++;
	}
	return 0;
}

static void reap_timers1(size_t n)
{
	count = 0;
	reap_run(sleep1_main, n);
	check("reap sleep(1 ns)", count, n);
}

static uv_timer_t utimer;
static size_t target;

static void utimer_cb(uv_timer_t *h)
{
	if (++count < target && uv_timer_start(h, utimer_cb, 0, 0) != 0)
		die("uv_timer_start failed");
}

static void uv_timers(size_t n)
{
	count = 0;
	target = n;
	if (uv_timer_start(&utimer, utimer_cb, 0, 0) != 0)
		die("uv_timer_start failed");
	if (uv_run(&uloop, UV_RUN_DEFAULT) != 0)
		die("uv_run left work");
	check("libuv timer", count, n);
}

/* ------------------------------------------------------------------ */
/* (d) socketpair echo                                                  */

static int rsock[2];

/* Read exactly MSG bytes from a non-blocking fd, waiting as needed. */
static int read_msg(int fd, char *buf)
{
	size_t got = 0;

	while (got < MSG) {
		ssize_t k = read(fd, buf + got, MSG - got);

		if (k > 0) {
			got += (size_t)k;
			continue;
		}
		if (k == 0)
			return -EPIPE;
		if (errno != EAGAIN)
			return -errno;
		int rc = reap_wait_fd(fd, REAP_READ, REAP_FOREVER);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static int write_msg(int fd, const char *buf)
{
	/* A 64-byte message always fits the empty socket buffer. */
	ssize_t k = write(fd, buf, MSG);

	return k == MSG ? 0 : k < 0 ? -errno : -EIO;
}

static int echo_client(void *arg, void **result)
{
	size_t n = *(size_t *)arg;
	char msg[MSG], buf[MSG];
	int rc;

	(void)result;
	memset(msg, 'x', sizeof msg);
	for (size_t i = 0; i < n; i++) {
		if ((rc = write_msg(rsock[0], msg)) < 0)
			return rc;
		if ((rc = reap_wait_fd(rsock[0], REAP_READ, REAP_FOREVER)) < 0)
			return rc;
		if ((rc = read_msg(rsock[0], buf)) < 0)
			return rc;
		count++;
	}
	return 0;
}

static int echo_server(void *arg, void **result)
{
	size_t n = *(size_t *)arg;
	char buf[MSG];
	int rc;

	(void)result;
	for (size_t i = 0; i < n; i++) {
		if ((rc = reap_wait_fd(rsock[1], REAP_READ, REAP_FOREVER)) < 0)
			return rc;
		if ((rc = read_msg(rsock[1], buf)) < 0)
			return rc;
		if ((rc = write_msg(rsock[1], buf)) < 0)
			return rc;
	}
	return 0;
}

static int echo_main(void *arg, void **result)
{
	reap_task *a, *b;
	int rc, rb;

	(void)result;
	if ((rc = reap_task_spawn(NULL, echo_server, arg, &b)) < 0)
		return rc;
	if ((rc = reap_task_spawn(NULL, echo_client, arg, &a)) < 0)
		return rc;
	rc = reap_task_join(a, NULL);
	rb = reap_task_join(b, NULL);
	return rc < 0 ? rc : rb;
}

static void reap_echo(size_t n)
{
	count = 0;
	reap_run(echo_main, n);
	check("reap echo", count, n);
}

static uv_pipe_t upipe[2];
static uv_write_t uwreq[2];
static int uw_busy[2];
static char umsg[MSG], ubuf[2][MSG];
static size_t ugot[2];

static void uv_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	int side = h == (uv_handle_t *)&upipe[1];

	(void)hint;
	buf->base = ubuf[side] + ugot[side];
	buf->len = MSG - ugot[side];
}

static void uv_wrote(uv_write_t *req, int status)
{
	if (status != 0)
		die("uv_write failed");
	uw_busy[req == &uwreq[1]] = 0;
}

static void uv_send(int side, const char *data)
{
	uv_buf_t b = uv_buf_init((char *)data, MSG);

	if (uw_busy[side])
		die("libuv: a write still in flight");
	uw_busy[side] = 1;
	if (uv_write(&uwreq[side], (uv_stream_t *)&upipe[side], &b, 1, uv_wrote) != 0)
		die("uv_write failed");
}

static void uv_got(uv_stream_t *s, ssize_t k, const uv_buf_t *buf)
{
	int side = s == (uv_stream_t *)&upipe[1];

	(void)buf;
	if (k == 0)
		return; /* EAGAIN */
	if (k < 0)
		die("libuv: read failed");
	if ((ugot[side] += (size_t)k) < MSG)
		return;
	ugot[side] = 0;
	if (side == 1) { /* the server: echo it back */
		uv_send(1, ubuf[1]);
		return;
	}
	if (++count < target) {
		uv_send(0, umsg);
	} else {
		uv_read_stop((uv_stream_t *)&upipe[0]);
		uv_read_stop((uv_stream_t *)&upipe[1]);
	}
}

static void uv_echo(size_t n)
{
	count = 0;
	target = n;
	if (uv_read_start((uv_stream_t *)&upipe[1], uv_alloc, uv_got) != 0 ||
	    uv_read_start((uv_stream_t *)&upipe[0], uv_alloc, uv_got) != 0)
		die("uv_read_start failed");
	uv_send(0, umsg);
	if (uv_run(&uloop, UV_RUN_DEFAULT) != 0)
		die("uv_run left work");
	check("libuv echo", count, n);
}

/* ------------------------------------------------------------------ */
/* (e) offload round trips                                              */

static int trivial_fn(void *arg, void **result)
{
	*result = arg;
	return 0;
}

static int offload_main(void *arg, void **result)
{
	size_t n = *(size_t *)arg;

	(void)result;
	for (size_t i = 0; i < n; i++) {
		void *r;
		int rc = reap_to_thread(trivial_fn, &count, NULL, &r);

		if (rc < 0)
			return rc;
		if (r != &count)
			return -EIO;
		count++;
	}
	return 0;
}

static void reap_offload(size_t n)
{
	count = 0;
	reap_run(offload_main, n);
	check("reap_to_thread", count, n);
}

static uv_work_t uwork;
static volatile size_t uworked;

static void uv_work_fn(uv_work_t *req)
{
	(void)req;
	uworked++; /* one job at a time: no race */
}

static void uv_after_work(uv_work_t *req, int status)
{
	if (status != 0)
		die("uv_queue_work failed");
	if (++count < target && uv_queue_work(&uloop, req, uv_work_fn, uv_after_work) != 0)
		die("uv_queue_work failed");
}

static void uv_offload(size_t n)
{
	count = 0;
	uworked = 0;
	target = n;
	if (uv_queue_work(&uloop, &uwork, uv_work_fn, uv_after_work) != 0)
		die("uv_queue_work failed");
	if (uv_run(&uloop, UV_RUN_DEFAULT) != 0)
		die("uv_run left work");
	check("libuv queue_work", count, n);
	check("libuv work_cb", uworked, n);
}

/* ------------------------------------------------------------------ */

static double python_ns(const char *what, size_t n, int reps)
{
	char cmd[1024];
	FILE *p;
	double ns;

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/loop.py %s %zu %d",
		 BENCH_SOURCE_DIR, what, n, reps);
	p = popen(cmd, "r");
	if (p == NULL || fscanf(p, "%lf", &ns) != 1 || pclose(p) != 0)
		die(cmd);
	return ns;
}

static void socketpair_nb(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		die("socketpair failed");
	for (int i = 0; i < 2; i++)
		if (fcntl(sv[i], F_SETFL, fcntl(sv[i], F_GETFL) | O_NONBLOCK) != 0)
			die("fcntl failed");
}

int main(void)
{
	size_t n = bench_n(), npy = n / 20 ? n / 20 : 1;
	size_t nio = n / 10 ? n / 10 : 1;
	int reps = bench_reps(), usock[2];
	bench_contender a[] = {{.name = "reap", .run = reap_spawn_join}};
	bench_contender b[] = {{.name = "reap", .run = reap_yield_pingpong}};
	bench_contender b2[] = {
		{.name = "reap", .run = reap_ctx_pingpong},
		{.name = "swapcontext", .run = swapcontext_pingpong},
	};
	bench_contender c[] = {
		{.name = "reap", .run = reap_timers},
		{.name = "libuv", .run = uv_timers},
		{.name = "reap 1-ns timer", .run = reap_timers1},
	};
	char note[512];
	bench_contender d[] = {
		{.name = "reap", .run = reap_echo},
		{.name = "libuv", .run = uv_echo},
	};
	bench_contender e[] = {
		{.name = "reap", .run = reap_offload},
		{.name = "libuv", .run = uv_offload},
	};
	bench_contender pya = {.name = "Python asyncio"};
	bench_contender pyb = {.name = "Python asyncio"};

	if (reap_loop_create(NULL, &rloop) < 0)
		die("reap_loop_create failed");
	if (uv_loop_init(&uloop) != 0 || uv_timer_init(&uloop, &utimer) != 0)
		die("uv_loop_init failed");
	if ((uc_stack = malloc(REAP__STACK_DEFAULT)) == NULL)
		die("out of memory");
	socketpair_nb(rsock);
	socketpair_nb(usock);
	memset(umsg, 'x', sizeof umsg);
	for (int i = 0; i < 2; i++)
		if (uv_pipe_init(&uloop, &upipe[i], 0) != 0 ||
		    uv_pipe_open(&upipe[i], usock[i]) != 0)
			die("uv_pipe_open failed");

	bench_group("(a) spawn + join of trivial tasks", a, 1, n, reps);
	fprintf(stderr, "(a) Python asyncio: %zu tasks per round\n", npy);
	pya.ns = python_ns("spawn", npy, reps);
	fprintf(stderr, "  %-20s median %8.1f ns/op\n", pya.name, pya.ns);

	bench_group("(b) yield ping-pong, 2 tasks", b, 1, n, reps);
	fprintf(stderr, "(b) Python asyncio: %zu switches per round\n", npy);
	pyb.ns = python_ns("yield", npy, reps);
	fprintf(stderr, "  %-20s median %8.1f ns/op\n", pyb.name, pyb.ns);

	bench_group("(b2) raw context switch ping-pong", b2, 2, n, reps);
	bench_group("(c) zero-length timer fired and re-armed", c, 3, n, reps);
	bench_group("(d) 64-byte echo over a socketpair", d, 2, nio, reps);
	bench_group("(e) offload round trip of a trivial function", e, 2, nio, reps);

	bench_note("Row 5a: n trivial tasks spawned and joined one after the "
		   "other in a main task of reap_loop_run() (reap_task_spawn "
		   "with a handle, then reap_task_join), against asyncio's "
		   "create_task + await in one event loop (bench/py/loop.py, "
		   "n/20 tasks per round).");
	bench_note("Rows 5b, 5b2: ns per switch. 5b: two tasks calling "
		   "reap_yield() n times in all, against two coroutines "
		   "awaiting asyncio.sleep(0) (n/20 per round). 5b2: the "
		   "internal context switch (reap__ctx_switch, callee-saved "
		   "registers and FP control words) ping-ponging between the "
		   "thread and one coroutine, against glibc's swapcontext "
		   "(which also saves the signal mask with a system call).");
	bench_note("Row 5c: one task calling reap_sleep(0) n times, against "
		   "one uv_timer_t with timeout 0 re-armed by its own callback "
		   "n times. reap_sleep(0) is a yield, as asyncio.sleep(0) is "
		   "(a deadline that has already passed needs no timer); libuv "
		   "runs a timer re-armed with timeout 0 again in the same "
		   "timer pass, with no poll and no clock read in between.");
	snprintf(note, sizeof note, "Row 5c with real timers: a task calling "
		 "reap_sleep(1) (1 ns: a timer through the loop's heap, a clock "
		 "read, a turn of the loop and a switch out and back) costs "
		 "%.1f ns, %.2fx libuv's zero-length timer.", c[2].ns,
		 c[1].ns / c[2].ns);
	bench_note(note);
	bench_note("Rows 5d, 5e: n/10 operations per round. 5d: 64-byte "
		   "echo round trips over a non-blocking AF_UNIX socketpair "
		   "between two tasks (write, reap_wait_fd, read; the other "
		   "side waits, reads, writes back), against two uv_pipe_t "
		   "doing the same with uv_read_start/uv_write callbacks. 5e: "
		   "reap_to_thread() of a trivial function in a row, against "
		   "uv_queue_work whose after_work callback queues the next; "
		   "4 worker threads on each side.");
	bench_row("5a", "spawn + join of a trivial task", &a[0], &pya, ">=50");
	bench_row("5b", "yield ping-pong, per switch", &b[0], &pyb, ">=50");
	bench_row("5b2", "raw context switch", &b2[0], &b2[1], ">=15");
	bench_row("5c", "zero-length timer fired + re-armed", &c[0], &c[1], ">=1.0");
	bench_row("5d", "64-byte echo round trip, socketpair", &d[0], &d[1], ">=1.0");
	bench_row("5e", "offload round trip (to_thread)", &e[0], &e[1], ">=2");

	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&upipe[i], NULL);
	uv_close((uv_handle_t *)&utimer, NULL);
	(void)uv_run(&uloop, UV_RUN_DEFAULT);
	(void)uv_loop_close(&uloop);
	close(rsock[0]);
	close(rsock[1]);
	free(uc_stack);
	return 0;
}
