/*
 * loop: the poller (internal). Readiness, hangup, the edge cases of
 * setting interest, the wake channel (before a wait, coalesced, from
 * threads and from a signal handler), timeouts, embedding, and failure
 * sweeps. Every test closes what it opens; fd counts are checked.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../runner.h"
#include "../../src/loop/poll.h"

#define MS 1000000ull

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* One wait that must not block. */
static int poll_now(struct reap__poll *p, struct reap__poll_event *ev, int cap)
{
	int n = reap__poll_wait(p, 0, ev, cap);

	ASSERT_GE_INT(n, 0);
	return n;
}

static void write_byte(int fd)
{
	ASSERT_EQ_INT(write(fd, "x", 1), 1);
}

/* ------------------------------------------------------------------ */

TEST(poll_open_close_no_fd_left)
{
	int before = test_fd_count();

	for (int i = 0; i < 20; i++) {
		struct reap__poll p;
		int fds[2];

		ASSERT_OK(reap__poll_open(&p));
		ASSERT_GE_INT(reap__poll_fd(&p), 0);
		ASSERT_TRUE(fcntl(reap__poll_fd(&p), F_GETFD) & FD_CLOEXEC);
		ASSERT_TRUE(fcntl(p.wake_rd, F_GETFD) & FD_CLOEXEC);
		ASSERT_OK(pipe(fds));
		ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
		reap__poll_close(&p);
		close(fds[0]);
		close(fds[1]);
	}
	ASSERT_EQ_INT(test_fd_count(), before);
}

TEST(poll_pipe_read_write)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int fds[2], before = test_fd_count();
	char c;

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, &fds[0]));
	ASSERT_OK(reap__poll_set(&p, fds[1], REAP__POLL_WRITE, &fds[1]));

	/* Empty pipe: only the write end is ready. */
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].fd, fds[1]);
	ASSERT_EQ_INT(ev[0].events, REAP__POLL_WRITE);
	ASSERT_EQ_PTR(ev[0].udata, &fds[1]);

	/* Stop asking for the write end; data makes the read end ready,
	 * and it stays ready (level-triggered) until consumed. */
	ASSERT_OK(reap__poll_set(&p, fds[1], 0, NULL));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	write_byte(fds[1]);
	for (int i = 0; i < 2; i++) {
		ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
		ASSERT_EQ_INT(ev[0].fd, fds[0]);
		ASSERT_EQ_INT(ev[0].events, REAP__POLL_READ);
		ASSERT_EQ_PTR(ev[0].udata, &fds[0]);
	}
	ASSERT_EQ_INT(read(fds[0], &c, 1), 1);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	ASSERT_FALSE(p.woken);

	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
	ASSERT_EQ_INT(test_fd_count(), before);
}

TEST(poll_socketpair_read_and_write)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int sv[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	ASSERT_OK(reap__poll_set(&p, sv[0], REAP__POLL_READ | REAP__POLL_WRITE, &sv[0]));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].events, REAP__POLL_WRITE);
	write_byte(sv[1]);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].fd, sv[0]);
	ASSERT_EQ_INT(ev[0].events, REAP__POLL_READ | REAP__POLL_WRITE);
	ASSERT_EQ_PTR(ev[0].udata, &sv[0]);

	/* Fill the send buffer: the write side stops being ready. */
	ASSERT_OK(fcntl(sv[0], F_SETFL, O_NONBLOCK));
	{
		static char buf[65536];

		while (write(sv[0], buf, sizeof buf) > 0)
			;
		ASSERT_EQ_INT(errno, EAGAIN);
	}
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].events, REAP__POLL_READ);

	close(sv[0]);
	close(sv[1]);
	reap__poll_close(&p);
}

TEST(poll_hangup_pipe)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int fds[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	close(fds[1]);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].fd, fds[0]);
	ASSERT_TRUE(ev[0].events & REAP__POLL_HUP);
	close(fds[0]);
	reap__poll_close(&p);
}

TEST(poll_hangup_socket)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int sv[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv));
	/* Half close: the peer shuts down its writing side. */
	ASSERT_OK(reap__poll_set(&p, sv[0], REAP__POLL_READ, NULL));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	ASSERT_OK(shutdown(sv[1], SHUT_WR));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_INT(ev[0].events & (REAP__POLL_READ | REAP__POLL_HUP),
		      REAP__POLL_READ | REAP__POLL_HUP);
	/* Full close, seen by a writer only: hangup and error are reported
	 * though never asked for. */
	ASSERT_OK(reap__poll_set(&p, sv[0], REAP__POLL_WRITE, NULL));
	close(sv[1]);
	signal(SIGPIPE, SIG_IGN);
	ASSERT_EQ_INT(write(sv[0], "x", 1), -1);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_TRUE(ev[0].events & REAP__POLL_HUP);
	close(sv[0]);
	reap__poll_close(&p);
}

TEST(poll_set_twice_replaces)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int fds[2], a, b;

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	write_byte(fds[1]);
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, &a));
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, &b));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_PTR(ev[0].udata, &b);
	/* Replaced by an interest the fd does not meet: nothing. */
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_WRITE, &a));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, &a));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_EQ_PTR(ev[0].udata, &a);
	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
}

TEST(poll_remove)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int fds[2], other[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	ASSERT_OK(pipe(other));
	/* Never registered, below and above the udata table's size. */
	ASSERT_EQ_INT(reap__poll_set(&p, other[0], 0, NULL), -ENOENT);
	write_byte(fds[1]);
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	ASSERT_EQ_INT(reap__poll_set(&p, other[0], 0, NULL), -ENOENT);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	ASSERT_OK(reap__poll_set(&p, fds[0], 0, NULL));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	/* Removed already. */
	ASSERT_EQ_INT(reap__poll_set(&p, fds[0], 0, NULL), -ENOENT);
	/* And added again. */
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	close(fds[0]);
	close(fds[1]);
	close(other[0]);
	close(other[1]);
	reap__poll_close(&p);
}

TEST(poll_bad_arguments)
{
	struct reap__poll p;
	struct reap__poll_event ev[1];
	int fds[2], file;
	char path[] = "/tmp/reap-poll-XXXXXX";

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	close(fds[1]);
	/* A closed fd, and one that never was. */
	ASSERT_EQ_INT(reap__poll_set(&p, fds[1], REAP__POLL_READ, NULL), -EBADF);
	ASSERT_EQ_INT(reap__poll_set(&p, fds[1], 0, NULL), -EBADF);
	ASSERT_EQ_INT(reap__poll_set(&p, -1, REAP__POLL_READ, NULL), -EBADF);
	/* The poller's own fds. */
	ASSERT_EQ_INT(reap__poll_set(&p, reap__poll_fd(&p), REAP__POLL_READ, NULL), -EINVAL);
	ASSERT_EQ_INT(reap__poll_set(&p, p.wake_rd, REAP__POLL_READ, NULL), -EINVAL);
	ASSERT_EQ_INT(reap__poll_set(&p, p.wake_rd, 0, NULL), -EINVAL);
	/* Bits that cannot be asked for. */
	ASSERT_EQ_INT(reap__poll_set(&p, fds[0], REAP__POLL_HUP, NULL), -EINVAL);
	ASSERT_EQ_INT(reap__poll_set(&p, fds[0], 1u << 20, NULL), -EINVAL);
	/* A regular file cannot be polled. */
	file = mkstemp(path);
	ASSERT_GE_INT(file, 0);
	unlink(path);
	ASSERT_EQ_INT(reap__poll_set(&p, file, REAP__POLL_READ, NULL), -EPERM);
	close(file);
	/* No room for events. */
	ASSERT_EQ_INT(reap__poll_wait(&p, 0, ev, 0), -EINVAL);
	close(fds[0]);
	reap__poll_close(&p);
}

TEST(poll_closed_fd_leaves)
{
	struct reap__poll p;
	struct reap__poll_event ev[8];
	int fds[2], before = test_fd_count();

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	write_byte(fds[1]);
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 1);
	/* Closing the only copy removes the interest with it. */
	close(fds[0]);
	ASSERT_EQ_INT(poll_now(&p, ev, 8), 0);
	ASSERT_EQ_INT(reap__poll_set(&p, fds[0], 0, NULL), -EBADF);
	close(fds[1]);
	reap__poll_close(&p);
	ASSERT_EQ_INT(test_fd_count(), before);
}

TEST(poll_many_fds_batches)
{
	enum { N = 100 };
	struct reap__poll p;
	struct reap__poll_event ev[2 * REAP__POLL_BATCH];
	int fds[N][2], seen[N] = {0}, total = 0, before = test_fd_count();

	ASSERT_OK(reap__poll_open(&p));
	for (int i = 0; i < N; i++) {
		ASSERT_OK(pipe(fds[i]));
		write_byte(fds[i][1]);
		ASSERT_OK(reap__poll_set(&p, fds[i][0], REAP__POLL_READ, &seen[i]));
	}
	ASSERT_EQ_INT(poll_now(&p, ev, 10), 10);
	/* At most a batch, however large the room. */
	for (int round = 0; round < 2; round++) {
		int n = poll_now(&p, ev, 2 * REAP__POLL_BATCH);

		ASSERT_GE_INT(n, 1);
		ASSERT_LE_INT(n, REAP__POLL_BATCH);
		for (int i = 0; i < n; i++) {
			int *s = ev[i].udata;

			ASSERT_EQ_INT(ev[i].fd, fds[s - seen][0]);
			if ((*s)++ == 0)
				total++;
		}
	}
	/* Ready fds are served in turn: two full batches reach all. */
	ASSERT_EQ_INT(total, N);
	for (int i = 0; i < N; i++) {
		close(fds[i][0]);
		close(fds[i][1]);
	}
	reap__poll_close(&p);
	ASSERT_EQ_INT(test_fd_count(), before);
}

/* ------------------------------------------------------------------ */
/* Timeouts                                                            */

TEST(poll_timeout_respected)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	uint64_t t0, dt;
	int fds[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	t0 = mono_ns();
	ASSERT_EQ_INT(reap__poll_wait(&p, 20 * MS, ev, 4), 0);
	dt = mono_ns() - t0;
	ASSERT_GE_INT(dt, 20 * MS);
	ASSERT_LT_INT(dt, 10000 * MS);
	ASSERT_FALSE(p.woken);
	/* Less than the backend's resolution is rounded up, never to 0. */
	t0 = mono_ns();
	ASSERT_EQ_INT(reap__poll_wait(&p, 1500 * 1000, ev, 4), 0);
	ASSERT_GE_INT(mono_ns() - t0, 1500 * 1000);
	/* A ready fd ends a long wait at once. */
	write_byte(fds[1]);
	t0 = mono_ns();
	ASSERT_EQ_INT(reap__poll_wait(&p, 60000 * MS, ev, 4), 1);
	ASSERT_LT_INT(mono_ns() - t0, 10000 * MS);
	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
}

/* ------------------------------------------------------------------ */
/* Wakes                                                               */

TEST(poll_wake_before_wait)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];

	ASSERT_OK(reap__poll_open(&p));
	reap__poll_wake(&p);
	/* Would block forever if the wake were lost. */
	ASSERT_EQ_INT(reap__poll_wait(&p, REAP__POLL_FOREVER, ev, 4), 0);
	ASSERT_TRUE(p.woken);
	ASSERT_EQ_INT(poll_now(&p, ev, 4), 0);
	ASSERT_FALSE(p.woken);
	reap__poll_close(&p);
}

TEST(poll_wake_coalesced)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	int fds[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 5; i++)
			reap__poll_wake(&p);
		ASSERT_EQ_INT(poll_now(&p, ev, 4), 0);
		ASSERT_TRUE(p.woken);
		/* Five wakes, one wait served. */
		ASSERT_EQ_INT(poll_now(&p, ev, 4), 0);
		ASSERT_FALSE(p.woken);
	}
	/* A wake with an fd ready: both come back, the wake not as an fd. */
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, &fds[0]));
	write_byte(fds[1]);
	reap__poll_wake(&p);
	ASSERT_EQ_INT(poll_now(&p, ev, 4), 1);
	ASSERT_EQ_PTR(ev[0].udata, &fds[0]);
	ASSERT_TRUE(p.woken);
	/* The wake's slot may crowd out an fd when the room is one event;
	 * the fd comes with the next wait. */
	reap__poll_wake(&p);
	{
		int n1 = poll_now(&p, ev, 1), w1 = p.woken;
		int n2 = poll_now(&p, ev, 1), w2 = p.woken;

		ASSERT_EQ_INT(w1 + w2, 1);
		ASSERT_GE_INT(n1 + n2, 1);
	}
	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
}

struct waker {
	struct reap__poll *p;
	int delay_ms;
	int payload; /* written before the wake, read after the wait */
};

static void *wake_later(void *arg)
{
	struct waker *w = arg;
	struct timespec ts = {0, (long)w->delay_ms * 1000000L};

	nanosleep(&ts, NULL);
	w->payload = 42;
	reap__poll_wake(w->p);
	return NULL;
}

TEST(poll_wake_from_thread)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	struct waker w = {&p, 50, 0};
	pthread_t th;
	uint64_t t0, dt;

	ASSERT_OK(reap__poll_open(&p));
	t0 = mono_ns();
	ASSERT_OK(pthread_create(&th, NULL, wake_later, &w));
	/* A minute's timeout: only the wake can end it in time. */
	ASSERT_EQ_INT(reap__poll_wait(&p, 60000 * MS, ev, 4), 0);
	dt = mono_ns() - t0;
	ASSERT_TRUE(p.woken);
	/* The waker's write is visible (checked by TSan too). */
	ASSERT_EQ_INT(w.payload, 42);
	ASSERT_LT_INT(dt, 30000 * MS);
	ASSERT_OK(pthread_join(th, NULL));
	reap__poll_close(&p);
}

struct storm {
	struct reap__poll *p;
	atomic_long *count;
	long n;
};

static void *wake_storm(void *arg)
{
	struct storm *s = arg;

	for (long i = 0; i < s->n; i++) {
		/* Relaxed: the wake's exchange orders it before the wait's
		 * return. */
		atomic_fetch_add_explicit(s->count, 1, memory_order_relaxed);
		reap__poll_wake(s->p);
	}
	return NULL;
}

TEST(poll_wake_storm_none_lost)
{
	enum { T = 4 };
	long n = test_env_long("REAP_TEST_ITERS", 20000, 1, 100000000);
	struct reap__poll p;
	struct reap__poll_event ev[4];
	struct storm s[T];
	pthread_t th[T];
	atomic_long count = 0;
	long waits = 0;

	ASSERT_OK(reap__poll_open(&p));
	for (int i = 0; i < T; i++) {
		s[i] = (struct storm){&p, &count, n};
		ASSERT_OK(pthread_create(&th[i], NULL, wake_storm, &s[i]));
	}
	/* Each count is followed by a wake; were the last one lost, this
	 * would block until ctest's time limit. */
	while (atomic_load_explicit(&count, memory_order_relaxed) < T * n) {
		ASSERT_GE_INT(reap__poll_wait(&p, REAP__POLL_FOREVER, ev, 4), 0);
		waits++;
	}
	for (int i = 0; i < T; i++)
		ASSERT_OK(pthread_join(th[i], NULL));
	ASSERT_GE_INT(waits, 1);
	ASSERT_LE_INT(waits, T * n);
	reap__poll_close(&p);
}

static struct reap__poll *sig_poll;
static void on_sigusr1(int sig)
{
	int saved = errno;

	(void)sig;
	errno = 12345; /* the wake must not clobber errno */
	reap__poll_wake(sig_poll);
	if (errno != 12345)
		abort();
	errno = saved;
}

TEST(poll_wake_from_signal_handler)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	struct sigaction sa = {.sa_handler = on_sigusr1}, old;

	ASSERT_OK(reap__poll_open(&p));
	sig_poll = &p;
	ASSERT_OK(sigaction(SIGUSR1, &sa, &old));
	errno = 0;
	ASSERT_OK(raise(SIGUSR1));
	ASSERT_EQ_INT(errno, 0);
	ASSERT_EQ_INT(reap__poll_wait(&p, REAP__POLL_FOREVER, ev, 4), 0);
	ASSERT_TRUE(p.woken);
	ASSERT_OK(sigaction(SIGUSR1, &old, NULL));
	reap__poll_close(&p);
}

static void on_sigusr2(int sig)
{
	(void)sig;
}

struct kicker {
	pthread_t target;
	atomic_int done;
};

static void *kick(void *arg)
{
	struct kicker *k = arg;

	/* Until the wait has returned: the first signal may come before
	 * the wait blocks. */
	while (!atomic_load(&k->done)) {
		struct timespec ts = {0, 10 * 1000000L};

		nanosleep(&ts, NULL);
		pthread_kill(k->target, SIGUSR2);
	}
	return NULL;
}

TEST(poll_signal_interrupts_wait)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	struct sigaction sa = {.sa_handler = on_sigusr2}, old; /* no SA_RESTART */
	struct kicker k = {.target = pthread_self()};
	pthread_t th;

	atomic_init(&k.done, 0);
	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(sigaction(SIGUSR2, &sa, &old));
	ASSERT_OK(pthread_create(&th, NULL, kick, &k));
	/* EINTR is no error: 0 events, no wake. */
	ASSERT_EQ_INT(reap__poll_wait(&p, REAP__POLL_FOREVER, ev, 4), 0);
	ASSERT_FALSE(p.woken);
	atomic_store(&k.done, 1);
	ASSERT_OK(pthread_join(th, NULL));
	ASSERT_OK(sigaction(SIGUSR2, &old, NULL));
	reap__poll_close(&p);
}

/* ------------------------------------------------------------------ */

TEST(poll_fd_embeds)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	struct pollfd outer;
	int fds[2];

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	outer = (struct pollfd){.fd = reap__poll_fd(&p), .events = POLLIN};
	ASSERT_EQ_INT(poll(&outer, 1, 0), 0);
	/* A ready fd inside makes the poller's fd readable outside. */
	write_byte(fds[1]);
	ASSERT_EQ_INT(poll(&outer, 1, 0), 1);
	ASSERT_EQ_INT(poll_now(&p, ev, 4), 1);
	ASSERT_OK(reap__poll_set(&p, fds[0], 0, NULL));
	ASSERT_EQ_INT(poll(&outer, 1, 0), 0);
	/* So does a wake. */
	reap__poll_wake(&p);
	ASSERT_EQ_INT(poll(&outer, 1, 0), 1);
	ASSERT_EQ_INT(poll_now(&p, ev, 4), 0);
	ASSERT_TRUE(p.woken);
	ASSERT_EQ_INT(poll(&outer, 1, 0), 0);
	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
}

/* ------------------------------------------------------------------ */
/* Failure sweeps                                                      */

TEST(poll_open_failure_sweep)
{
	int failed = 0;

	for (int n = 1;; n++) {
		struct reap__poll p = {.fd = -7};
		struct test_snap before = test_snap();
		int fds = test_fd_count();
		long seen;
		int rc;

		ASSERT_LT_INT(n, 16);
		reap_fault_alloc(n);
		rc = reap__poll_open(&p);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(test_fd_count(), fds + 2);
			reap__poll_close(&p);
			ASSERT_EQ_INT(test_fd_count(), fds);
			break;
		}
		failed++;
		ASSERT_EQ_INT(rc, -EMFILE);
		ASSERT_GE_INT(seen, n);
		ASSERT_EQ_INT(p.fd, -7); /* untouched */
		ASSERT_EQ_INT(test_fd_count(), fds);
		ASSERT_UNCHANGED(before);
	}
	/* The epoll fd and the eventfd. */
	ASSERT_EQ_INT(failed, 2);
}

TEST(poll_set_alloc_failure)
{
	struct reap__poll p;
	struct reap__poll_event ev[4];
	int fds[2], high, failed = 0;

	ASSERT_OK(reap__poll_open(&p));
	ASSERT_OK(pipe(fds));
	write_byte(fds[1]);
	high = fcntl(fds[0], F_DUPFD_CLOEXEC, 300);
	ASSERT_GE_INT(high, 300);
	/* The first set allocates the table; the high fd grows it. */
	for (int k = 0; k < 2; k++) {
		int fd = k ? high : fds[0];

		for (int n = 1;; n++) {
			struct test_snap before = test_snap();
			int rc;

			ASSERT_LT_INT(n, 8);
			reap_fault_alloc(n);
			rc = reap__poll_set(&p, fd, REAP__POLL_READ, &fds[k]);
			test_fault_disarm();
			if (rc == 0)
				break;
			failed++;
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_UNCHANGED(before);
			/* Not registered: the ready fd is not reported. */
			ASSERT_EQ_INT(poll_now(&p, ev, 4), k);
			ASSERT_EQ_INT(reap__poll_set(&p, fd, 0, NULL), -ENOENT);
		}
	}
	ASSERT_EQ_INT(failed, 2);
	ASSERT_EQ_INT(poll_now(&p, ev, 4), 2);
	ASSERT_EQ_PTR(ev[0].fd == high ? ev[0].udata : ev[1].udata, &fds[1]);
	/* Removing and re-adding below the table's size allocates nothing. */
	ASSERT_OK(reap__poll_set(&p, fds[0], 0, NULL));
	reap_fault_alloc(1);
	ASSERT_OK(reap__poll_set(&p, fds[0], REAP__POLL_READ, NULL));
	ASSERT_EQ_INT(test_fault_disarm(), 0);
	close(high);
	close(fds[0]);
	close(fds[1]);
	reap__poll_close(&p);
}
