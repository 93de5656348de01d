/*
 * The tour, part 8: the manager. A manager process owned by a scope;
 * three worker processes with their own clients sharing a dict, a
 * counter and a lock (batched: one round trip per job); one worker
 * SIGKILLed while it holds the lock, its successor told so; its session
 * objects reclaimed; the manager's object listing; and the manager gone
 * with its scope.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo.h"

#define MS (REAP_SEC / 1000)
#define JOBS 300

static const char *addr;

/* What the demo and its workers share: a client named name, and a proxy
 * of each shared object, all in s. */
struct shared {
	reap_mgr_client *c;
	reap_mgr_dict *results;
	reap_mgr_counter *done, *died;
	reap_mgr_lock *lock;
	reap_mgr_event *holding;
};

static int connect_shared(reap_scope *s, const char *name, struct shared *sh)
{
	int rc;

	if ((rc = reap_mgr_connect(s, addr, &(reap_mgr_client_opts){.name = name},
				   &sh->c)) < 0 ||
	    (rc = reap_mgr_dict_open(s, sh->c, "results", NULL, &sh->results)) < 0 ||
	    (rc = reap_mgr_counter_open(s, sh->c, "done", NULL, &sh->done)) < 0 ||
	    (rc = reap_mgr_counter_open(s, sh->c, "owner-died", NULL, &sh->died)) < 0 ||
	    (rc = reap_mgr_lock_open(s, sh->c, "lock", NULL, &sh->lock)) < 0)
		return rc;
	return reap_mgr_event_open(s, sh->c, "holding", NULL, &sh->holding);
}

/* A worker: JOBS/3 jobs, each one batch (result, count); every 25 jobs
 * a step under the lock. Worker 0 stops under the lock and waits to be
 * killed. */
static int work(reap_scope *s, int id)
{
	reap_mgr_dict *scratch;
	struct shared sh;
	char name[32];
	int rc;

	snprintf(name, sizeof name, "worker-%d", id);
	if ((rc = connect_shared(s, name, &sh)) < 0)
		return rc;
	snprintf(name, sizeof name, "scratch-%d", id);
	if ((rc = reap_mgr_dict_open(s, sh.c, name, &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_SESSION}, &scratch)) < 0)
		return rc;
	for (int j = id; j < JOBS; j += 3) {
		char field[16];

		snprintf(field, sizeof field, "%d", j);
		reap_mgr_batch_begin(sh.c);
		(void)reap_mgr_dict_set(sh.results, field, reap_mgr_int((int64_t)j * j));
		(void)reap_mgr_counter_add(sh.done, 1, NULL);
		(void)reap_mgr_dict_set(scratch, "last", reap_mgr_int(j));
		if ((rc = reap_mgr_batch_exec(sh.c, NULL)) < 0)
			return rc;
		if (j / 3 % 25 == 24) {
			if ((rc = reap_mgr_lock_acquire(sh.lock, REAP_FOREVER)) < 0)
				return rc;
			if (rc == REAP_MGR_OWNERDIED) {
				printf("    worker %d got the lock with OWNERDIED: its last "
				       "holder died holding it\n", id);
				(void)reap_mgr_counter_add(sh.died, 1, NULL);
			}
			if (id == 0) {
				(void)reap_mgr_event_set(sh.holding);
				pause(); /* killed here */
			}
			if ((rc = reap_mgr_lock_release(sh.lock)) < 0)
				return rc;
		}
	}
	return 0;
}

static int worker(reap_scope *root, void *arg)
{
	reap_scope *s;
	int rc;

	if (reap_scope_open(root, &s) < 0)
		return 1;
	rc = work(s, (int)(intptr_t)arg);
	reap_scope_close(s);
	if (rc < 0)
		fprintf(stderr, "    worker %d: %s\n", (int)(intptr_t)arg,
			reap_strerror(rc));
	return rc < 0;
}

static int run(reap_scope *s)
{
	reap_mgr *m;
	struct shared sh;
	reap_mgr_value v;
	reap_proc *w[3];
	reap_proc_status st;
	int64_t ndone = 0, ndied = 0, here = 0;
	size_t n = 0;
	int rc;

	if ((rc = reap_mgr_start(s, NULL, &m)) < 0)
		return rc;
	addr = reap_mgr_address(m);
	printf("    manager pid %d listening at %s\n", (int)reap_proc_pid(reap_mgr_proc(m)),
	       addr);
	if ((rc = connect_shared(s, "demo", &sh)) < 0)
		return rc;
	/* Values are typed, and what cannot be encoded fails at the call. */
	rc = reap_mgr_dict_set(sh.results, "bad", reap_mgr_str(NULL));
	printf("    storing a NULL string: %s (\"%s\"), nothing sent\n", reap_errname(rc),
	       reap_mgr_client_error(sh.c));
	for (int i = 0; i < 3; i++)
		if ((rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = worker,
					  .arg = (void *)(intptr_t)i, .name = "worker"},
					  &w[i])) < 0)
			return rc;
	if ((rc = reap_mgr_event_wait(sh.holding, reap_now_ns() + 30 * REAP_SEC)) < 0)
		return rc;
	(void)reap_proc_signal(w[0], SIGKILL);
	(void)reap_proc_wait(w[0], REAP_FOREVER, &st);
	printf("    worker 0 (pid %d) SIGKILLed while holding the lock\n",
	       (int)reap_proc_pid(w[0]));
	for (int i = 1; i < 3; i++)
		if ((rc = reap_proc_wait(w[i], REAP_FOREVER, &st)) < 0 || !st.exited ||
		    st.code != 0)
			return rc < 0 ? rc : -EIO;
	/* The others may have finished before their next step under the
	 * lock: then this process is its next holder, and is told. */
	if ((rc = reap_mgr_lock_acquire(sh.lock, reap_now_ns() + 5 * REAP_SEC)) < 0)
		return rc;
	if (rc == REAP_MGR_OWNERDIED) {
		printf("    this process got the lock with OWNERDIED: no worker "
		       "took it after worker 0\n");
		here = 1;
	}
	if ((rc = reap_mgr_lock_release(sh.lock)) < 0)
		return rc;
	if ((rc = reap_mgr_dict_len(sh.results, &n)) < 0 ||
	    (rc = reap_mgr_counter_get(sh.done, &ndone)) < 0 ||
	    (rc = reap_mgr_counter_get(sh.died, &ndied)) < 0)
		return rc;
	printf("    results: %zu entries (worker 0's other %zu jobs went with it), "
	       "done counter %lld,\n    owner-died told %lld time(s)\n", n,
	       (size_t)JOBS - n, (long long)ndone, (long long)(ndied + here));
	rc = reap_mgr_command(sh.c, &v, 2, (const char *[]){"EXISTS", "scratch-0"}, NULL);
	if (rc < 0)
		return rc;
	printf("    worker 0's session dict scratch-0: %s\n",
	       v.i == 0 ? "reclaimed with its connection" : "still there");
	reap_mgr_value_free(&v);
	rc = reap_mgr_command(sh.c, &v, 1, (const char *[]){"REAP.OBJECTS"}, NULL);
	if (rc < 0)
		return rc;
	printf("    REAP.OBJECTS lists %zu objects; the first:", v.array.n);
	if (v.array.n > 0 && v.array.v[0].type == REAP_MGR_T_ARRAY) {
		const reap_mgr_value *o = &v.array.v[0];

		for (size_t i = 0; i + 1 < o->array.n; i += 2) {
			const char *k = o->array.v[i].bytes.p;

			if (strcmp(k, "key") != 0 && strcmp(k, "type") != 0 &&
			    strcmp(k, "lifetime") != 0 && strcmp(k, "holders") != 0 &&
			    strcmp(k, "creator") != 0 && strcmp(k, "creator-name") != 0)
				continue;
			if (o->array.v[i + 1].type == REAP_MGR_T_BYTES)
				printf(" %s=%s", (const char *)o->array.v[i].bytes.p,
				       (const char *)o->array.v[i + 1].bytes.p);
			else if (o->array.v[i + 1].type == REAP_MGR_T_INT)
				printf(" %s=%lld", (const char *)o->array.v[i].bytes.p,
				       (long long)o->array.v[i + 1].i);
		}
	}
	printf("\n");
	reap_mgr_value_free(&v);
	return 0;
}

int demo_mgr(void)
{
	reap_scope *s;
	char dir[256];
	struct stat sb;
	int rc;

	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return rc;
	rc = run(s);
	/* Find the manager's directory before it goes. */
	dir[0] = '\0';
	if (addr != NULL) {
		char *slash;

		snprintf(dir, sizeof dir, "%s", addr + 5);
		if ((slash = strrchr(dir, '/')) != NULL)
			*slash = '\0';
	}
	reap_scope_close(s);
	printf("    scope closed: the manager shut down, its directory %s\n",
	       dir[0] && stat(dir, &sb) != 0 ? "is gone" : "IS STILL THERE");
	return rc;
}
