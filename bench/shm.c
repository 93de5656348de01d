/*
 * bench/shm.c: shared values, issue 6 (a) and (b).
 *
 *   (a) locked increments of one shared int64: reap_shm_add_i64 on a
 *       value with its robust process-shared lock (one locked
 *       read-modify-write per call), n in all, from 1 process and from 2
 *       processes (reap_proc_spawn'd function children, n / 2 each);
 *       against Python's multiprocessing.Value('q', lock=True) with
 *       `with v.get_lock(): v.value += 1` (bench/py/shm.py).
 *   (b) the same without a lock: reap_shm_atomic_add on a no_lock value,
 *       against Value('q', lock=False) guarded by its own
 *       multiprocessing.Lock, from 1 and from 2 processes.
 *
 * Python runs n / 20 increments per round. Every round checks the total:
 * a lost increment stops the benchmark.
 */
#include "bench.h"

#include <errno.h>
#include <stdint.h>

#include <reap.h>

static reap_shm *locked_v, *atomic_v;

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_shm: %s: %s\n", what, reap_errname(rc));
	exit(1);
}

struct job {
	reap_shm *v;
	size_t n;
	int atomic;
};

static int incr(reap_scope *root, void *arg)
{
	struct job *j = arg;

	(void)root;
	for (size_t i = 0; i < j->n; i++) {
		int rc = j->atomic ? reap_shm_atomic_add(j->v, 0, 1, NULL)
				   : reap_shm_add_i64(j->v, 0, 1, NULL);

		if (rc < 0)
			return 1;
	}
	return 0;
}

static void run(reap_shm *v, size_t n, int procs, int atomic)
{
	struct job j = {v, n / (size_t)procs, atomic};
	int64_t total;
	int rc;

	if ((rc = reap_shm_atomic_store(v, 0, 0)) < 0)
		die("store", rc);
	if (procs == 1) {
		if (incr(NULL, &j) != 0)
			die("increment", -EIO);
	} else {
		reap_scope *s;
		reap_proc *p[2];
		reap_proc_status st;

		if ((rc = reap_scope_open(NULL, &s)) < 0)
			die("scope", rc);
		for (int i = 0; i < procs; i++)
			if ((rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = incr, .arg = &j},
						  &p[i])) < 0)
				die("spawn", rc);
		for (int i = 0; i < procs; i++)
			if ((rc = reap_proc_wait(p[i], REAP_FOREVER, &st)) < 0 ||
			    !st.exited || st.code != 0)
				die("child", rc < 0 ? rc : -EIO);
		if ((rc = reap_scope_close(s)) < 0)
			die("close", rc);
	}
	if ((rc = reap_shm_atomic_load(v, 0, &total)) < 0)
		die("load", rc);
	if ((size_t)total != j.n * (size_t)procs) {
		fprintf(stderr, "bench_shm: lost increments: %lld of %zu\n",
			(long long)total, j.n * (size_t)procs);
		exit(1);
	}
}

static void locked_1(size_t n) { run(locked_v, n, 1, 0); }
static void locked_2(size_t n) { run(locked_v, n, 2, 0); }
static void atomic_1(size_t n) { run(atomic_v, n, 1, 1); }
static void atomic_2(size_t n) { run(atomic_v, n, 2, 1); }

int main(void)
{
	size_t n = bench_n();
	int reps = bench_reps();
	bench_contender a1[] = {{.name = "reap", .run = locked_1}};
	bench_contender a2[] = {{.name = "reap", .run = locked_2}};
	bench_contender b1[] = {{.name = "reap", .run = atomic_1}};
	bench_contender b2[] = {{.name = "reap", .run = atomic_2}};
	bench_contender py[4] = {{.name = "mp.Value"}, {.name = "mp.Value"},
				 {.name = "Value+Lock"}, {.name = "Value+Lock"}};
	char cmd[1024], line[256];
	FILE *p;
	int rc;

	if ((rc = reap_shm_create(NULL, &(reap_shm_opts){.kind = REAP_SHM_I64,
							 .name = "bench"},
				  &locked_v)) < 0 ||
	    (rc = reap_shm_create(NULL, &(reap_shm_opts){.kind = REAP_SHM_I64,
							 .no_lock = true},
				  &atomic_v)) < 0)
		die("reap_shm_create", rc);
	bench_group("(a) locked increments, 1 process", a1, 1, n, reps);
	bench_group("(a) locked increments, 2 processes", a2, 1, n, reps);
	bench_group("(b) atomic increments, 1 process", b1, 1, n, reps);
	bench_group("(b) atomic increments, 2 processes", b2, 1, n, reps);

	snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s/py/shm.py %zu %d",
		 BENCH_SOURCE_DIR, n / 20, reps > 5 ? 5 : reps);
	if ((p = popen(cmd, "r")) == NULL || fgets(line, sizeof line, p) == NULL ||
	    pclose(p) != 0 ||
	    sscanf(line, "%lf %lf %lf %lf", &py[0].ns, &py[1].ns, &py[2].ns,
		   &py[3].ns) != 4)
		die("python3 bench/py/shm.py", -EIO);
	for (int i = 0; i < 4; i++)
		fprintf(stderr, "  python %-13s median %8.1f ns/op\n", py[i].name, py[i].ns);

	bench_note("6a/6b: increments of one shared int64 from 1 process and "
		   "from 2 processes (n/2 each): reap_shm_add_i64 under the value's "
		   "robust lock against multiprocessing.Value(lock=True) with "
		   "`with v.get_lock(): v.value += 1`; reap_shm_atomic_add on a "
		   "value without a lock against Value(lock=False) guarded by its "
		   "own multiprocessing.Lock.");
	bench_row("6a1", "locked incr, 1 process", &a1[0], &py[0], ">=20");
	bench_row("6a2", "locked incr, 2 processes", &a2[0], &py[1], ">=20");
	bench_row("6b1", "atomic incr, 1 process", &b1[0], &py[2], ">=50");
	bench_row("6b2", "atomic incr, 2 processes", &b2[0], &py[3], ">=50");
	return 0;
}
