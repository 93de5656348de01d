/*
 * Shared values under many processes.
 *
 *   counter: REAP_STRESS_PROCS processes (default 4) each make
 *     REAP_STRESS_INCREMENTS locked increments (default 1,000,000) of one
 *     value: half through reap_shm_add_i64(), half as a plain, non-atomic
 *     read-modify-write under reap_shm_lock(), so that a lock that let two
 *     holders in would lose counts. The totals must be exact.
 *
 *   kill_holders: REAP_STRESS_KILLS times (default 1,000) a child takes
 *     the lock and moves units between the elements of an array whose sum
 *     is fixed, one half-step at a time, until it is SIGKILLed at a random
 *     moment. A worker process contends for the lock all along, and the
 *     test process takes it after each kill. Every death must be reported
 *     once (REAP_SHM_RECOVERED to exactly one locker), every repair run,
 *     and the sum restored before any locker sees the data; the number of
 *     kills that left the data torn is printed.
 *
 * Children use only reap_shm_* calls on inherited handles and _exit().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

/* ------------------------------------------------------------------ */
/* counter                                                              */

static long increments;
static reap_shm *go; /* no lock: [0] starts the race, [1] counts arrivals */

static int incrementer(void *arg)
{
	reap_shm *v = arg;
	volatile int64_t *d = reap_shm_data(v);
	int64_t start = 0;

	reap_shm_atomic_add(go, 1, 1, NULL);
	while (reap_shm_atomic_load(go, 0, &start) == 0 && !start)
		sched_yield();
	for (long i = 0; i < increments; i++) {
		if (i & 1) {
			if (reap_shm_add_i64(v, 0, 1, NULL) != 0)
				return 10;
		} else {
			if (reap_shm_lock(v, REAP_FOREVER) != 0)
				return 11;
			d[1] = d[1] + 1; /* plain: only the lock protects it */
			reap_shm_unlock(v);
		}
	}
	return 0;
}

TEST(stress_shm_counter)
{
	long procs = test_env_long("REAP_STRESS_PROCS", 4, 1, 64);
	reap_scope *s;
	reap_shm *v;
	pid_t pid[64];
	int64_t a, b;
	uint64_t t0 = reap_now_ns();

	increments = test_env_long("REAP_STRESS_INCREMENTS", 1000000, 1, 1000000000);
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_I64, .count = 2,
							.name = "stress-counter"}), &v));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_I64, .count = 2,
							.no_lock = true}), &go));
	for (long i = 0; i < procs; i++)
		pid[i] = test_fork(incrementer, v);
	for (int64_t n = 0; n < procs;)
		ASSERT_OK(reap_shm_atomic_load(go, 1, &n));
	t0 = reap_now_ns();
	ASSERT_OK(reap_shm_atomic_store(go, 0, 1));
	for (long i = 0; i < procs; i++)
		ASSERT_EQ_INT(test_wait(pid[i]), 0);
	ASSERT_OK(reap_shm_get_i64(v, 0, &a));
	ASSERT_OK(reap_shm_get_i64(v, 1, &b));
	ASSERT_EQ_INT(a, procs * (increments / 2));
	ASSERT_EQ_INT(b, procs * ((increments + 1) / 2));
	ASSERT_EQ_INT(a + b, procs * increments);
	printf("counter: %ld processes x %ld locked increments = %lld in %.2f s\n",
	       procs, increments, (long long)(a + b),
	       (double)(reap_now_ns() - t0) / 1e9);
	ASSERT_OK(reap_scope_close(s));
}

/* ------------------------------------------------------------------ */
/* kill_holders                                                         */

#define NEL 8
#define TOTAL (NEL * 1000)

enum {                /* elements of the control value (no lock) */
	C_STOP,       /* the worker stops */
	C_HOLDING,    /* the round whose victim holds the lock */
	C_REPAIRS,    /* repair callbacks run, in any process */
	C_TORN,       /* ... that found the sum broken */
	C_RECOVERED,  /* REAP_SHM_RECOVERED answers, in any process */
	C_BAD,        /* a locker saw the sum broken */
	C_WORKER_OPS, /* the worker's critical sections */
	C_N
};

static reap_shm *ctl;

static int64_t sum(const volatile int64_t *d)
{
	int64_t s = 0;

	for (int i = 0; i < NEL; i++)
		s += d[i];
	return s;
}

static int repair(void *ctx, void *data, size_t count)
{
	volatile int64_t *d = data;
	int64_t s = sum(d);

	(void)ctx;
	if (count != NEL)
		return -EINVAL;
	if (reap_shm_atomic_add(ctl, C_REPAIRS, 1, NULL) != 0)
		return -EIO;
	if (s != TOTAL) {
		/* A half-step: the unit taken from one element did not reach
		 * the other. Put it back. */
		d[0] += TOTAL - s;
		if (reap_shm_atomic_add(ctl, C_TORN, 1, NULL) != 0)
			return -EIO;
	}
	return 0;
}

/* After a lock: count a reported death and check the invariant. */
static int locked(reap_shm *v, int rc)
{
	if (rc == REAP_SHM_RECOVERED)
		reap_shm_atomic_add(ctl, C_RECOVERED, 1, NULL);
	else if (rc != 0)
		return -1;
	if (sum(reap_shm_data(v)) != TOTAL)
		reap_shm_atomic_add(ctl, C_BAD, 1, NULL);
	return 0;
}

static int worker(void *arg)
{
	reap_shm *v = arg;
	volatile int64_t *d = reap_shm_data(v);
	unsigned seed = (unsigned)getpid();
	int64_t stop = 0;

	while (reap_shm_atomic_load(ctl, C_STOP, &stop) == 0 && !stop) {
		unsigned i = rnd(&seed) % NEL, j = rnd(&seed) % NEL;

		if (locked(v, reap_shm_lock(v, REAP_FOREVER)) < 0)
			return 20;
		d[i] -= 1;
		d[j] += 1;
		reap_shm_unlock(v);
		reap_shm_atomic_add(ctl, C_WORKER_OPS, 1, NULL);
	}
	return 0;
}

struct victim {
	reap_shm *v;
	long round;
	unsigned seed;
};

static int victim(void *arg)
{
	struct victim *vc = arg;
	volatile int64_t *d = reap_shm_data(vc->v);

	if (locked(vc->v, reap_shm_lock(vc->v, REAP_FOREVER)) < 0)
		return 30;
	reap_shm_atomic_store(ctl, C_HOLDING, vc->round);
	for (;;) { /* holds the lock until killed */
		unsigned i = rnd(&vc->seed) % NEL, j = rnd(&vc->seed) % NEL;

		d[i] -= 1;
		for (unsigned k = rnd(&vc->seed) % 64; k > 0; k--)
			__asm__ volatile("" ::: "memory");
		d[j] += 1;
	}
}

static void spin_ns(uint64_t ns)
{
	uint64_t end = reap_now_ns() + ns;

	while (reap_now_ns() < end)
		;
}

TEST(stress_shm_kill_holders)
{
	long kills = test_env_long("REAP_STRESS_KILLS", 1000, 1, 10000000);
	reap_scope *s;
	reap_shm *v;
	reap_shm_stats st;
	int64_t c[C_N];
	unsigned seed = 12345;
	uint64_t t0 = reap_now_ns();
	pid_t wpid;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_U64, .count = C_N,
							.no_lock = true,
							.name = "stress-ctl"}), &ctl));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_I64, .count = NEL,
							.name = "stress-kill",
							.repair = repair}), &v));
	for (int i = 0; i < NEL; i++)
		ASSERT_OK(reap_shm_set_i64(v, (size_t)i, TOTAL / NEL));
	wpid = test_fork(worker, v);

	for (long r = 1; r <= kills; r++) {
		struct victim vc = {v, r, rnd(&seed) * 7919u + (unsigned)r};
		int64_t holding = 0;
		pid_t pid = test_fork(victim, &vc);
		int rc;

		while (reap_shm_atomic_load(ctl, C_HOLDING, &holding) == 0 &&
		       holding != r) {
			int status;

			if (waitpid(pid, &status, WNOHANG) == pid)
				test_fail(__FILE__, __LINE__, "round %ld: the victim "
					  "ended (status 0x%x) before holding", r, status);
			usleep(20);
		}
		spin_ns((uint64_t)(rnd(&seed) % 200) * 1000); /* 0-200 us */
		ASSERT_OK(kill(pid, SIGKILL));
		ASSERT_EQ_INT(test_wait(pid), 128 + SIGKILL);

		/* By the time we hold the lock the death has been seen, by us
		 * or by the worker, and repaired. */
		rc = reap_shm_lock(v, REAP_FOREVER);
		ASSERT_TRUE(rc == 0 || rc == REAP_SHM_RECOVERED);
		ASSERT_OK(locked(v, rc));
		ASSERT_EQ_INT(sum(reap_shm_data(v)), TOTAL);
		reap_shm_stats_get(v, &st);
		ASSERT_EQ_INT(st.owner_deaths, r);
		ASSERT_EQ_INT(st.repairs, r);
		ASSERT_FALSE(st.unrecoverable);
		reap_shm_unlock(v);
	}

	ASSERT_OK(reap_shm_atomic_store(ctl, C_STOP, 1));
	ASSERT_EQ_INT(test_wait(wpid), 0);
	for (int i = 0; i < C_N; i++)
		ASSERT_OK(reap_shm_atomic_load(ctl, (size_t)i, &c[i]));
	reap_shm_stats_get(v, &st);
	ASSERT_EQ_INT(st.owner_deaths, kills);
	ASSERT_EQ_INT(st.repairs, kills);
	ASSERT_EQ_INT(c[C_RECOVERED], kills); /* every death reported, once */
	ASSERT_EQ_INT(c[C_REPAIRS], kills);   /* every repair run, once */
	ASSERT_EQ_INT(c[C_BAD], 0);           /* no locker saw it broken */
	if (kills >= 100)
		ASSERT_GT_INT(c[C_TORN], 0);
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	ASSERT_EQ_INT(sum(reap_shm_data(v)), TOTAL);
	reap_shm_unlock(v);
	printf("kill_holders: %ld kills, %lld left the data torn, %lld worker "
	       "sections, %.2f s\n", kills, (long long)c[C_TORN],
	       (long long)c[C_WORKER_OPS], (double)(reap_now_ns() - t0) / 1e9);
	ASSERT_OK(reap_scope_close(s));
}
