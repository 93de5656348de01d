/*
 * A multi-process job through a manager: workers share a queue of jobs,
 * a dict of results, counters and a lock, and one of them is SIGKILLed
 * in the middle, holding the lock.
 *
 * Python (multiprocessing):
 *
 *     with Manager() as m:
 *         jobs, results = m.Queue(), m.dict()
 *         done, lock = m.Value('q', 0), m.Lock()
 *         for j in range(1, N + 1): jobs.put(j)     # one round trip each
 *         ps = [Process(target=work, args=(jobs, results, done, lock))
 *               for _ in range(4)]
 *         ...
 *         ps[0].kill()    # holding `lock`: the others wait for ever, and
 *                         # whatever it created in the manager stays there
 *
 * C with reap, below. The manager is a child of this process, owned by
 * its scope; the workers are fn children (reap/proc.h), each with its own
 * client. The jobs go out 100 per round trip (a batch); each result is
 * one HSET plus one INCRBY, sent together. Worker 0 takes the lock,
 * says so through an event, and is SIGKILLed by the parent: the manager
 * releases the lock at once (the next holder is told the previous one
 * died), and deletes worker 0's session objects. A job it had taken and
 * not finished is found missing from the results and done again, so the
 * totals come out exact. Results are idempotent (HSET of job j), so a
 * job done twice counts once.
 *
 * Killing this process instead removes the manager and the workers too:
 * each is a reap child with a lifeline (see examples/orphan_check.sh, run
 * with example-mgr_job).
 *
 *     example-mgr_job          the run above; exits 1 if a check fails
 *     example-mgr_job --hold   start the manager and 3 idle workers, print
 *                              "worker <pid>" for each process and "dir
 *                              <path>" for the manager's socket directory,
 *                              then "ready", and wait to be killed
 */
#define _GNU_SOURCE
#include <reap.h>

#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N 2000      /* jobs */
#define WORKERS 4
#define BATCH 100
#define SEC 1000000000ull

static const char *addr; /* the manager's, for the workers */

#define CHECK(expr)                                                          \
	do {                                                                 \
		int rc_ = (expr);                                            \
		if (rc_ < 0) {                                               \
			fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, \
				#expr, reap_strerror(rc_));                  \
			exit(1);                                             \
		}                                                            \
	} while (0)

/* The objects the parent and the workers share, each a proxy in s:
 * opening one creates it in the manager or takes a hold on it. */
struct shared {
	reap_mgr_queue *jobs;
	reap_mgr_dict *results;
	reap_mgr_counter *done, *died;
	reap_mgr_lock *lock;
	reap_mgr_event *holding;
};

static void open_shared(reap_scope *s, reap_mgr_client *c, struct shared *sh)
{
	CHECK(reap_mgr_queue_open(s, c, "jobs", NULL, &sh->jobs));
	CHECK(reap_mgr_dict_open(s, c, "results", NULL, &sh->results));
	CHECK(reap_mgr_counter_open(s, c, "done", NULL, &sh->done));
	CHECK(reap_mgr_counter_open(s, c, "owner-died", NULL, &sh->died));
	CHECK(reap_mgr_lock_open(s, c, "lock", NULL, &sh->lock));
	CHECK(reap_mgr_event_open(s, c, "holding", NULL, &sh->holding));
}

/* A worker: jobs from the queue until it stays empty for 300 ms. */
static int work(reap_scope *s, void *arg)
{
	int id = (int)(intptr_t)arg, rc;
	reap_mgr_client *c;
	reap_mgr_dict *mine;
	struct shared sh;
	char name[32];

	snprintf(name, sizeof name, "worker-%d", id);
	CHECK(reap_mgr_connect(s, addr, &(reap_mgr_client_opts){.name = name}, &c));
	open_shared(s, c, &sh);
	/* Scratch space that lives as long as this worker's session. */
	snprintf(name, sizeof name, "scratch-%d", id);
	CHECK(reap_mgr_dict_open(s, c, name, &(reap_mgr_obj_opts){
			.lifetime = REAP_MGR_SESSION}, &mine));
	for (int k = 0;; k++) {
		reap_mgr_value job;
		char field[24];
		int64_t j;

		rc = reap_mgr_queue_get(sh.jobs, &job, reap_now_ns() + SEC / 10 * 3);
		if (rc == -ETIMEDOUT)
			return 0;
		CHECK(rc);
		CHECK(reap_mgr_value_i64(&job, &j));
		snprintf(field, sizeof field, "%lld", (long long)j);
		/* The result and the count, in one round trip. */
		reap_mgr_batch_begin(c);
		CHECK(reap_mgr_dict_set(sh.results, field, reap_mgr_int(j * j)));
		CHECK(reap_mgr_counter_add(sh.done, 1, NULL));
		CHECK(reap_mgr_dict_set(mine, "last", reap_mgr_int(j)));
		CHECK(reap_mgr_batch_exec(c, NULL));
		/* Every 50 jobs, a step under the lock. */
		if (k % 50 == 49) {
			rc = reap_mgr_lock_acquire(sh.lock, REAP_FOREVER);
			CHECK(rc);
			if (rc == REAP_MGR_OWNERDIED)
				CHECK(reap_mgr_counter_add(sh.died, 1, NULL));
			if (id == 0) {
				/* the victim: say so, and wait to be killed */
				CHECK(reap_mgr_event_set(sh.holding));
				pause();
			}
			CHECK(reap_mgr_lock_release(sh.lock));
		}
	}
}

/* The child's function: the work in a scope of its own, closed before
 * the child exits (anything left in the root would be reported). */
static int worker(reap_scope *root, void *arg)
{
	reap_scope *s;
	int rc;

	CHECK(reap_scope_open(root, &s));
	rc = work(s, arg);
	CHECK(reap_scope_close(s));
	return rc;
}

/* --hold: idle workers and a manager, for orphan_check.sh. */
static int idle(reap_scope *s, void *arg)
{
	reap_mgr_client *c;

	(void)arg;
	CHECK(reap_mgr_connect(s, addr, NULL, &c));
	pause();
	return 0;
}

static int hold(reap_scope *s)
{
	reap_mgr *m;
	char dir[256];

	CHECK(reap_mgr_start(s, NULL, &m));
	addr = reap_mgr_address(m);
	printf("worker %d\n", (int)reap_proc_pid(reap_mgr_proc(m)));
	for (int i = 0; i < 3; i++) {
		reap_proc *p;

		CHECK(reap_proc_spawn(s, &(reap_proc_opts){.fn = idle}, &p));
		printf("worker %d\n", (int)reap_proc_pid(p));
	}
	snprintf(dir, sizeof dir, "%s", addr + 5);
	printf("dir %s\nready\n", dirname(dir));
	fflush(stdout);
	pause();
	return 0;
}

int main(int argc, char **argv)
{
	reap_proc *w[WORKERS];
	reap_mgr_client *c;
	struct shared sh;
	reap_mgr_value items;
	reap_scope *s;
	reap_mgr *m;
	int64_t ndone, ndied, sum = 0, want = 0, redone = 0, here = 0;
	reap_proc_status st;
	int fails = 0, rc;

	CHECK(reap_scope_open(NULL, &s));
	if (argc > 1 && strcmp(argv[1], "--hold") == 0)
		return hold(s);
	CHECK(reap_mgr_start(s, NULL, &m));
	addr = reap_mgr_address(m);
	CHECK(reap_mgr_connect(s, addr, &(reap_mgr_client_opts){.name = "parent"}, &c));
	open_shared(s, c, &sh);
	for (int j = 1; j <= N; j += BATCH) {
		reap_mgr_batch_begin(c);
		for (int k = j; k < j + BATCH && k <= N; k++)
			CHECK(reap_mgr_queue_put(sh.jobs, reap_mgr_int(k)));
		CHECK(reap_mgr_batch_exec(c, NULL));
	}
	for (int i = 0; i < WORKERS; i++)
		CHECK(reap_proc_spawn(s, &(reap_proc_opts){.fn = worker,
				.arg = (void *)(intptr_t)i}, &w[i]));
	/* Worker 0 holds the lock: kill it there. */
	CHECK(reap_mgr_event_wait(sh.holding, reap_now_ns() + 30 * SEC));
	CHECK(reap_proc_signal(w[0], SIGKILL));
	CHECK(reap_proc_wait(w[0], REAP_FOREVER, &st));
	printf("worker 0 killed holding the lock (%s)\n",
	       st.signal == SIGKILL ? "SIGKILL" : "?");
	for (int i = 1; i < WORKERS; i++) {
		CHECK(reap_proc_wait(w[i], REAP_FOREVER, &st));
		if (!st.exited || st.code != 0) {
			fprintf(stderr, "worker %d failed (code %d, signal %d)\n", i,
				st.code, st.signal);
			fails++;
		}
	}
	/* A job worker 0 took and did not finish is not in the results:
	 * do it here. */
	for (int64_t j = 1; j <= N; j++) {
		reap_mgr_value v;
		char field[24];

		snprintf(field, sizeof field, "%lld", (long long)j);
		if (reap_mgr_dict_get(sh.results, field, &v) == -ENOENT) {
			CHECK(reap_mgr_dict_set(sh.results, field, reap_mgr_int(j * j)));
			CHECK(reap_mgr_counter_add(sh.done, 1, NULL));
			redone++;
		}
		reap_mgr_value_free(&v);
		want += j * j;
	}
	CHECK(reap_mgr_dict_items(sh.results, &items));
	for (size_t i = 0; i < items.array.n; i++)
		sum += items.array.v[2 * i + 1].i;
	/* The lock's next holder is told, once. Usually a worker; but the
	 * others may have run out of jobs before their next step under the
	 * lock, and then this process is the next holder. */
	rc = reap_mgr_lock_acquire(sh.lock, reap_now_ns() + 5 * SEC);
	CHECK(rc);
	here = rc == REAP_MGR_OWNERDIED;
	CHECK(reap_mgr_lock_release(sh.lock));
	CHECK(reap_mgr_counter_get(sh.done, &ndone));
	CHECK(reap_mgr_counter_get(sh.died, &ndied));
	printf("%zu results, sum %lld (want %lld), %lld redone by the parent\n",
	       items.array.n, (long long)sum, (long long)want, (long long)redone);
	printf("done counter %lld for %d jobs\n", (long long)ndone, N);
	printf("the next holder of the lock was told its holder died: %lld time(s) (%s)\n",
	       (long long)(ndied + here), here ? "this process, after the workers" : "a worker");
	if (items.array.n != N || sum != want || ndone != N || ndied + here != 1)
		fails++;
	reap_mgr_value_free(&items);
	/* Worker 0's session objects went with it. */
	{
		reap_mgr_value r;

		CHECK(reap_mgr_command(c, &r, 2, (const char *[]){"EXISTS", "scratch-0"},
				       NULL));
		printf("worker 0's session dict: %s\n", r.i == 0 ? "reclaimed" : "STILL THERE");
		fails += r.i != 0;
		reap_mgr_value_free(&r);
	}
	CHECK(reap_scope_close(s)); /* the manager shuts down */
	puts(fails ? "FAILED" : "all checks passed");
	return fails ? 1 : 0;
}
