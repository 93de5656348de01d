/*
 * A dead client's objects, holds, locks and waits are reclaimed: clients
 * in random states (holding a shared dict, owning session objects,
 * holding the lock and a semaphore permit, blocked in BLPOP or on the
 * lock) are SIGKILLed at random moments, 200 times by default
 * (REAP_MGR_KILLS). Afterwards only the observer's session and objects
 * are left, the lock and the permits are free, and the shared dict has
 * one holder.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

static const char *addr;
/* Shared with the victims: how many had their session dict open. */
static int *owning;

/* A victim: connect, then take resources in a random order, forever. */
static int victim(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	reap_mgr_client *c;
	reap_mgr_dict *d, *own;
	reap_mgr_list *l;
	reap_mgr_lock *lk;
	reap_mgr_sem *sem;
	reap_mgr_queue *q;
	reap_mgr_value v;
	char name[32];

	if (reap_mgr_connect(NULL, addr, NULL, &c) < 0)
		return 1;
	snprintf(name, sizeof name, "own%u", seed);
	if (reap_mgr_dict_open(NULL, c, "shared", NULL, &d) < 0 ||
	    reap_mgr_dict_open(NULL, c, name, &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_SESSION}, &own) < 0)
		return 2;
	/* own is open: its reclaim is owed once this victim dies. */
	__atomic_add_fetch(owning, 1, __ATOMIC_SEQ_CST);
	if (reap_mgr_list_open(NULL, c, "scratch", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_SHARED}, &l) < 0 ||
	    reap_mgr_lock_open(NULL, c, "L", NULL, &lk) < 0 ||
	    reap_mgr_sem_open(NULL, c, "S", &(reap_mgr_obj_opts){.n = 3}, &sem) < 0 ||
	    reap_mgr_queue_open(NULL, c, "Q", NULL, &q) < 0)
		return 2;
	for (unsigned i = 0;; i++) {
		switch (rand_r(&seed) % 6) {
		case 0:
			(void)reap_mgr_dict_set(own, "k", reap_mgr_int(i));
			(void)reap_mgr_dict_set(d, name, reap_mgr_int(i));
			break;
		case 1:
			if (reap_mgr_lock_acquire(lk, REAP_FOREVER) >= 0) {
				usleep(rand_r(&seed) % 500);
				(void)reap_mgr_lock_release(lk);
			}
			break;
		case 2:
			(void)reap_mgr_sem_acquire(sem, REAP_FOREVER);
			break;
		case 3:
			(void)reap_mgr_queue_get(q, &v, REAP_FOREVER);
			break;
		case 4:
			(void)reap_mgr_list_append(l, reap_mgr_int(i));
			break;
		default:
			(void)reap_mgr_lock_acquire(lk, REAP_FOREVER); /* and keep it */
			break;
		}
	}
}

static long long count_of(reap_mgr_client *c, const char *cmd)
{
	reap_mgr_value r;
	long long n;

	ASSERT_OK(reap_mgr_command(c, &r, 1, &cmd, NULL));
	ASSERT_TRUE(r.type == REAP_MGR_T_ARRAY || r.type == REAP_MGR_T_INT);
	n = r.type == REAP_MGR_T_INT ? r.i : (long long)r.array.n;
	reap_mgr_value_free(&r);
	return n;
}

TEST(random_client_kills_leave_nothing)
{
	long kills = test_env_long("REAP_MGR_KILLS", 200, 1, 100000);
	unsigned seed = (unsigned)getpid();
	reap_mgr_client *c;
	reap_mgr_dict *d;
	reap_mgr_lock *lk;
	reap_mgr_sem *sem;
	reap_mgr_queue *q;
	reap_mgr *m;
	reap_scope *s;
	reap_mgr_value r;
	int fds = test_fd_count(), rc, ok;

	owning = mmap(NULL, sizeof *owning, PROT_READ | PROT_WRITE,
		      MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_TRUE(owning != MAP_FAILED);
	*owning = 0;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_mgr_start(s, NULL, &m));
	addr = reap_mgr_address(m);
	ASSERT_OK(reap_mgr_connect(s, addr, &(reap_mgr_client_opts){.name = "observer"}, &c));
	ASSERT_OK(reap_mgr_dict_open(s, c, "shared", NULL, &d));
	ASSERT_OK(reap_mgr_lock_open(s, c, "L", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_PERSISTENT}, &lk));
	ASSERT_OK(reap_mgr_sem_open(s, c, "S", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_PERSISTENT, .n = 3}, &sem));
	ASSERT_OK(reap_mgr_queue_open(s, c, "Q", &(reap_mgr_obj_opts){
				.lifetime = REAP_MGR_PERSISTENT}, &q));
	for (long i = 0; i < kills; i++) {
		pid_t pid = test_fork(victim, (void *)(uintptr_t)(seed + (unsigned)i));

		usleep(1000 + rand_r(&seed) % 5000);
		ASSERT_OK(kill(pid, SIGKILL));
		rc = test_wait(pid);
		/* killed, or done early with an error (which is a failure) */
		ASSERT_EQ_INT(rc, 128 + SIGKILL);
	}
	/* Reclaim is at disconnect: wait for the last ones to be noticed. */
	for (int i = 0; i < 200 && count_of(c, "REAP.SESSIONS") != 1; i++)
		usleep(10000);
	ASSERT_EQ_INT(count_of(c, "REAP.SESSIONS"), 1);
	ASSERT_EQ_INT(count_of(c, "DBSIZE"), 4); /* shared, L, S, Q */
	rc = reap_mgr_lock_acquire(lk, 0);
	ASSERT_TRUE(rc == 0 || rc == REAP_MGR_OWNERDIED);
	for (int i = 0; i < 3; i++)
		ASSERT_GE_INT(reap_mgr_sem_acquire(sem, 0), 0);
	ASSERT_EQ_INT(reap_mgr_sem_acquire(sem, 0), -ETIMEDOUT);
	/* The shared dict: our hold only (its closing deletes it). */
	ASSERT_OK(reap_mgr_command(c, &r, 2, (const char *[]){"REAP.RELEASE", "shared"},
				   NULL));
	ASSERT_EQ_INT(r.type, REAP_MGR_T_INT);
	ok = r.i == 0;
	reap_mgr_value_free(&r);
	ASSERT_TRUE(ok);
	ASSERT_OK(reap_mgr_command(c, &r, 1, (const char *[]){"INFO"}, NULL));
	{
		const char *p = strstr(r.bytes.p, "reclaimed_objects:");
		long long reclaimed;

		ASSERT_NOT_NULL(p);
		reclaimed = atoll(p + 18);
		reap_mgr_value_free(&r);
		/* Every victim that got as far as its session dict had it
		 * reclaimed (how many did depends on the machine's load,
		 * but some must have, or the test reclaimed nothing). */
		printf("%ld kills, %d with a session dict, %lld objects reclaimed\n",
		       kills, *owning, reclaimed);
		ASSERT_GT_INT(*owning, 0);
		ASSERT_GE_INT(reclaimed, *owning);
	}
	/* the dict's proxy would release a hold we already gave back */
	reap_mgr_disconnect(c);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(waitpid(-1, NULL, WNOHANG), -1);
	ASSERT_EQ_INT(test_fd_count(), fds);
	munmap(owning, sizeof *owning);
}
