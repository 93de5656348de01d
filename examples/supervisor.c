/*
 * A supervisor with worker processes, shared counters and a shared
 * ledger whose lock survives a worker killed while holding it.
 *
 * Python (multiprocessing):
 *
 *     counts = Array('q', 4)              # one slot per worker, locked
 *     done = Value('q', 0, lock=False)    # no lock: atomics only
 *     ledger = Array('q', 5)              # a, b and a journal
 *     def worker(i, k):
 *         for _ in range(k):
 *             with ledger.get_lock():
 *                 transfer(ledger, x)     # a -= x; b += x
 *             with counts.get_lock():
 *                 counts[i] += 1
 *     ps = [Process(target=worker, args=(i, K), daemon=True) for i in range(4)]
 *     for p in ps: p.start()
 *     ps[0].kill(); ps[0].join()          # while it holds ledger's lock:
 *                                         # every other worker hangs for ever
 *
 * C with reap, below. Python has no answer to the last line: a process
 * killed inside `with lock:` leaves the lock taken, and the others wait
 * on it for ever. reap's shared values carry a robust process-shared
 * mutex instead. When its holder dies, the next locker gets the lock
 * with REAP_SHM_RECOVERED, after the value's repair callback has put the
 * data right; here the repair rolls the interrupted transfer forward
 * from its journal, so the invariant a + b == TOTAL holds again.
 *
 * Worker 0 is the victim, made deterministic: it takes the ledger's lock,
 * debits a, tells the supervisor through a pipe and pauses; the
 * supervisor SIGKILLs it (reap_proc_signal) and reaps it (reap_proc_wait).
 * The other workers, blocked on the lock meanwhile, carry on. At the end
 * the supervisor checks the invariant, the counters, the lock's statistics,
 * and after closing its scope that nothing is left: no child, zombie or
 * running; no shared mapping; nothing created under /dev/shm (the values
 * are memfds: anonymous, freed with their last user).
 *
 *     example-supervisor          the run above; exits 1 if a check fails
 *     example-supervisor --hold   start 4 idle workers, print "worker <pid>"
 *                                 for each, then "ready", and wait to be
 *                                 killed (examples/orphan_check.sh kills
 *                                 it with SIGKILL: the workers must die too)
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "reap.h"

#define NWORKERS 4
#define K 2000           /* transfers per surviving worker */
#define VICTIM_DONE 100  /* transfers the victim completes before dying */
#define TOTAL 1000000    /* a + b, always (outside a transfer) */
#define MS (REAP_SEC / 1000)

/* The ledger: two accounts and a redo journal. A transfer first writes
 * the balances it will leave (A_TO, B_TO), then PENDING (the amount,
 * never 0) to say that the journal is valid; then it updates a and b and
 * clears PENDING. Whatever point a holder dies at, the repair can finish
 * its work: with PENDING set, a and b become A_TO and B_TO (roll forward;
 * doing it twice is harmless, so a repairer that dies too is fine). */
enum { A, B, PENDING, A_TO, B_TO, NLEDGER };

static reap_shm *counts; /* I64[NWORKERS], locked: transfers per worker */
static reap_shm *ledger; /* I64[NLEDGER], locked, with a repair */
static reap_shm *done;   /* I64, no lock: transfers of all, atomically */
static int victim_fd = -1; /* the victim's end of the "I hold it" pipe */

/* SIGKILL can land between any two statements: keep the compiler from
 * reordering the ledger's stores, so that the journal is written before
 * the balances (a signal fence is a compiler barrier; the kernel's futex
 * handling at the holder's death orders them for the next locker). */
#define STEP() atomic_signal_fence(memory_order_seq_cst)

/* The repair callback, run under the lock by whoever locks first after a
 * holder died (a worker here). Roll forward from the journal. */
static int repair_ledger(void *ctx, void *data, size_t count)
{
	int64_t *l = data;

	(void)ctx;
	if (count != NLEDGER)
		return -EINVAL;
	if (l[PENDING] != 0) {
		printf("  repair (pid %d): transfer of %lld interrupted at a=%lld "
		       "b=%lld; rolled forward to a=%lld b=%lld\n", (int)getpid(),
		       (long long)l[PENDING], (long long)l[A], (long long)l[B],
		       (long long)l[A_TO], (long long)l[B_TO]);
		l[A] = l[A_TO];
		l[B] = l[B_TO];
		STEP();
		l[PENDING] = 0;
	}
	/* Unrepairable data would make the value -ENOTRECOVERABLE for all. */
	return l[A] + l[B] == TOTAL ? 0 : -EPROTO;
}

/* The counts' repair: nothing to do. Each reap_shm_add_i64() is a single
 * store under the lock, so a holder killed inside one leaves every slot
 * whole; without a repair, though, its death would make the value
 * unrecoverable for everyone. */
static int counts_ok(void *ctx, void *data, size_t count)
{
	(void)ctx;
	(void)data;
	(void)count;
	return 0;
}

/* Lock the ledger; say so when this worker is the one that found the
 * previous holder dead. */
static int lock_ledger(int id)
{
	int rc = reap_shm_lock(ledger, REAP_FOREVER);

	if (rc == REAP_SHM_RECOVERED) {
		int64_t *l = reap_shm_data(ledger);

		printf("  worker %d (pid %d) got REAP_SHM_RECOVERED: the holder "
		       "died, the repair ran; a + b = %lld\n", id, (int)getpid(),
		       (long long)(l[A] + l[B]));
	}
	return rc < 0 ? rc : 0;
}

/* Move x from a to b (x < 0 moves the other way). Call with the lock. */
static void transfer_begin(int64_t *l, int64_t x)
{
	l[A_TO] = l[A] - x;
	l[B_TO] = l[B] + x;
	STEP();
	l[PENDING] = x; /* the journal is valid from here on */
	STEP();
	l[A] = l[A_TO];
	STEP();
}

static void transfer_end(int64_t *l)
{
	l[B] = l[B_TO];
	STEP();
	l[PENDING] = 0;
}

static int transfer(int id, int64_t x)
{
	int64_t *l = reap_shm_data(ledger);
	int rc;

	if ((rc = lock_ledger(id)) < 0)
		return rc;
	transfer_begin(l, x);
	transfer_end(l);
	reap_shm_unlock(ledger);
	/* Two kinds of counter: one locked step on this worker's slot, and
	 * one lock-free atomic add on a value without a lock. */
	if ((rc = reap_shm_add_i64(counts, (size_t)id, 1, NULL)) < 0 ||
	    (rc = reap_shm_atomic_add(done, 0, 1, NULL)) < 0)
		return rc;
	return 0;
}

/* A worker: a fn child, a fork of the supervisor. It sees the values at
 * the same addresses; it inherited the supervisor's handles, but they are
 * not its own (closing a copied scope would not unmap anything). */
static int worker(reap_scope *root, void *arg)
{
	int id = (int)(intptr_t)arg, rc;

	(void)root;
	for (int i = 0; i < K; i++)
		if ((rc = transfer(id, (i & 1 ? 1 : -1) * (1 + (i + id) % 5))) < 0)
			return rc;
	return 0;
}

static int victim(reap_scope *root, void *arg)
{
	int64_t *l = reap_shm_data(ledger);
	int rc;

	(void)root;
	(void)arg;
	for (int i = 0; i < VICTIM_DONE; i++)
		if ((rc = transfer(0, 5)) < 0)
			return rc;
	if ((rc = lock_ledger(0)) < 0)
		return rc;
	transfer_begin(l, 250); /* a is debited, b not yet credited */
	printf("  worker 0 (pid %d): holds the lock mid-transfer: a=%lld "
	       "b=%lld pending=%lld\n", (int)getpid(), (long long)l[A],
	       (long long)l[B], (long long)l[PENDING]);
	if (write(victim_fd, "h", 1) != 1)
		return -errno;
	for (;;)
		pause(); /* until the SIGKILL */
	return 0;
}

static int idle_worker(reap_scope *root, void *arg)
{
	(void)root;
	(void)arg;
	for (;;)
		pause();
	return 0;
}

/* ---- the checks ------------------------------------------------------ */

static int failures;

static void check(int ok, const char *what)
{
	printf("  [%s] %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failures++;
}

/* Lines of /proc/self/maps naming needle. */
static int maps_lines(const char *needle)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

/* The names under /dev/shm, one per line, in buf. */
static void dev_shm_names(char *buf, size_t cap)
{
	DIR *d = opendir("/dev/shm");
	struct dirent *e;
	size_t n = 0;

	buf[0] = '\0';
	if (d == NULL)
		return;
	while ((e = readdir(d)) != NULL) {
		int w;

		if (e->d_name[0] == '.')
			continue;
		w = snprintf(buf + n, cap - n, "%s\n", e->d_name);
		if (w < 0 || (size_t)w >= cap - n)
			break;
		n += (size_t)w;
	}
	closedir(d);
}

/* Names in after that were not in before. */
static int new_names(const char *before, const char *after)
{
	char name[300];
	int n = 0;

	for (const char *p = after; *p != '\0';) {
		size_t len = strcspn(p, "\n");

		snprintf(name, sizeof name, "\n%.*s\n", (int)len, p);
		if (strncmp(before, name + 1, len + 1) != 0 && strstr(before, name) == NULL) {
			printf("  new in /dev/shm: %.*s\n", (int)len, p);
			n++;
		}
		p += len + (p[len] == '\n');
	}
	return n;
}

static void print_status(const char *who, const reap_proc_status *st)
{
	if (st->exited)
		printf("  %s: exited with %d\n", who, st->code);
	else
		printf("  %s: killed by signal %d (%s)%s\n", who, st->signal,
		       strsignal(st->signal),
		       st->killed ? ", sent by reap after the grace period" : "");
}

/* ---- the supervisor -------------------------------------------------- */

static int supervise(reap_scope *s)
{
	reap_proc *w[NWORKERS];
	reap_proc_status st;
	reap_shm_stats ls, cs;
	int64_t *l, n, all;
	int pfd[2], rc;
	char c;

	printf("1. Shared values (memfds): counts i64[%d], ledger i64[%d] with "
	       "a repair, done (no lock).\n", NWORKERS, NLEDGER);
	if ((rc = reap_shm_create(s, &(reap_shm_opts){.kind = REAP_SHM_I64,
						      .count = NWORKERS,
						      .name = "counts",
						      .repair = counts_ok},
				  &counts)) < 0 ||
	    (rc = reap_shm_create(s, &(reap_shm_opts){.kind = REAP_SHM_I64,
						      .count = NLEDGER,
						      .name = "ledger",
						      .repair = repair_ledger},
				  &ledger)) < 0 ||
	    (rc = reap_shm_create(s, &(reap_shm_opts){.kind = REAP_SHM_I64,
						      .no_lock = true,
						      .name = "done"}, &done)) < 0)
		return rc;
	l = reap_shm_data(ledger);
	l[A] = TOTAL; /* nobody else maps it yet: no lock needed */
	printf("  mapped: %d memfd mapping(s) in /proc/self/maps, %d from "
	       "/dev/shm\n", maps_lines("/memfd:reap-shm"), maps_lines("/dev/shm/"));

	printf("2. Worker 0 (the victim) does %d transfers, then stops holding "
	       "the lock.\n", VICTIM_DONE);
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	if ((rc = reap_defer_fd(s, pfd[0], NULL)) < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return rc;
	}
	victim_fd = pfd[1];
	rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = victim, .name = "worker 0"},
			     &w[0]);
	close(pfd[1]); /* the victim has its copy: EOF if it dies early */
	if (rc < 0)
		return rc;
	if (read(pfd[0], &c, 1) != 1)
		return -EPIPE;

	printf("3. Workers 1-3 start %d transfers each; they queue on the lock.\n", K);
	for (int i = 1; i < NWORKERS; i++) {
		char name[24];

		snprintf(name, sizeof name, "worker %d", i);
		if ((rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = worker,
							      .arg = (void *)(intptr_t)i,
							      .name = name},
					  &w[i])) < 0)
			return rc;
	}
	(void)reap_sleep(20 * MS); /* let them reach the lock (not needed for the result) */

	printf("4. SIGKILL worker 0 while it holds the lock.\n");
	if ((rc = reap_proc_signal(w[0], SIGKILL)) < 0 ||
	    (rc = reap_proc_wait(w[0], REAP_FOREVER, &st)) < 0)
		return rc;
	print_status("worker 0", &st);
	check(!st.exited && st.signal == SIGKILL, "worker 0 died of SIGKILL");

	for (int i = 1; i < NWORKERS; i++) {
		char who[24];

		if ((rc = reap_proc_wait(w[i], reap_now_ns() + 20 * REAP_SEC, &st)) < 0)
			return rc;
		snprintf(who, sizeof who, "worker %d", i);
		print_status(who, &st);
		check(st.exited && st.code == 0, "it finished its transfers");
	}

	printf("5. The checks.\n");
	if ((rc = reap_shm_lock(ledger, reap_now_ns() + REAP_SEC)) < 0)
		return rc;
	printf("  ledger: a=%lld b=%lld pending=%lld\n", (long long)l[A],
	       (long long)l[B], (long long)l[PENDING]);
	check(l[A] + l[B] == TOTAL && l[PENDING] == 0,
	      "the invariant holds: a + b == TOTAL, no transfer pending");
	reap_shm_unlock(ledger);
	for (int i = 0; i < NWORKERS; i++) {
		char what[64];

		if ((rc = reap_shm_get_i64(counts, (size_t)i, &n)) < 0)
			return rc;
		snprintf(what, sizeof what, "counts[%d] == %d (it is %lld)", i,
			 i == 0 ? VICTIM_DONE : K, (long long)n);
		check(n == (i == 0 ? VICTIM_DONE : K), what);
	}
	if ((rc = reap_shm_atomic_load(done, 0, &all)) < 0)
		return rc;
	check(all == (NWORKERS - 1) * K + VICTIM_DONE,
	      "done (atomic, no lock) == every completed transfer");
	reap_shm_stats_get(ledger, &ls);
	reap_shm_stats_get(counts, &cs);
	printf("  ledger's lock: %llu owner death(s), %llu repair(s)%s\n",
	       (unsigned long long)ls.owner_deaths, (unsigned long long)ls.repairs,
	       ls.unrecoverable ? ", unrecoverable" : "");
	check(ls.owner_deaths == 1 && ls.repairs == 1 && !ls.unrecoverable,
	      "1 owner death, 1 repair");
	check(cs.owner_deaths == 0, "the counts' lock was never held by the victim");
	return 0;
}

static int hold(void)
{
	reap_scope *s;
	reap_proc *p;
	int rc;

	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return rc;
	for (int i = 0; i < NWORKERS; i++) {
		if ((rc = reap_proc_spawn(s, &(reap_proc_opts){.fn = idle_worker},
					  &p)) < 0) {
			(void)reap_scope_close(s);
			return rc;
		}
		printf("worker %d\n", (int)reap_proc_pid(p));
	}
	printf("ready\n");
	fflush(stdout);
	for (;;)
		pause(); /* until killed; the workers die with us */
	return 0;
}

int main(int argc, char **argv)
{
	static char shm_before[8192], shm_after[8192];
	uint64_t t0 = reap_now_ns();
	reap_scope *s;
	pid_t r;
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc > 1 && strcmp(argv[1], "--hold") == 0) {
		rc = hold();
		fprintf(stderr, "supervisor --hold: %s\n", reap_strerror(rc));
		return 1;
	}
	dev_shm_names(shm_before, sizeof shm_before);
	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return 1;
	rc = supervise(s);
	if (rc < 0)
		printf("  error: %s (%s)\n", reap_errname(rc), reap_strerror(rc));

	printf("6. Close the supervisor's scope: workers (all ended) reaped, "
	       "values unmapped.\n");
	if (reap_scope_close(s) < 0 && rc == 0)
		rc = -EIO;
	r = waitpid(-1, NULL, WNOHANG);
	check(r == -1 && errno == ECHILD, "no child process left (waitpid: ECHILD)");
	check(maps_lines("/memfd:reap-shm") == 0, "no shared mapping left in "
	      "/proc/self/maps");
	dev_shm_names(shm_after, sizeof shm_after);
	check(new_names(shm_before, shm_after) == 0, "nothing created in /dev/shm");

	printf("7. Done in %llu ms: %s\n",
	       (unsigned long long)((reap_now_ns() - t0) / MS),
	       rc < 0 ? reap_errname(rc) : failures ? "a check FAILED" : "all checks passed");
	return rc < 0 || failures ? 1 : 0;
}
