/*
 * The allocation-failure sweep of the shm layer: reap_shm_create (with
 * and without a lock, into a scope whose cleanup stack exists or not),
 * reap_shm_attach and reap_shm_recv are called with their 1st, 2nd, ...
 * fallible acquisition failing (the handle's allocation, the scope's
 * registration, memfd_create, ftruncate, the fd's duplicate, mmap) until
 * they succeed. A failed call must return -ENOMEM, leave *out untouched,
 * and leave the ledger count, reap_alloc_live(), the open fds and the
 * process's mappings as they were.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../runner.h"

#define MAX_N 64
#define SENTINEL ((void *)(uintptr_t)0x5e5e)

static void noop_cleanup(void *arg)
{
	(void)arg;
}

/* Mappings of values' memfds in this process. */
static int count_maps(void)
{
	char line[1024];
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0;

	ASSERT_NOT_NULL(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, "/memfd:reap-shm") != NULL)
			n++;
	fclose(f);
	return n;
}

enum op { OP_CREATE, OP_ATTACH, OP_RECV };

/* Sweep one call; src is the value attached or sent (OP_ATTACH/RECV).
 * Returns the number of failures seen. */
static int sweep(enum op op, const reap_shm_opts *o, int prefill, reap_shm *src)
{
	int failures = 0;

	for (int n = 1;; n++) {
		reap_scope *s;
		reap_shm *v = SENTINEL;
		struct test_snap before;
		int rc, fds, maps, sk[2] = {-1, -1};
		long seen;

		ASSERT_LT_INT(n, MAX_N);
		ASSERT_OK(reap_scope_open(NULL, &s));
		if (prefill)
			ASSERT_OK(reap_defer(s, noop_cleanup, NULL, NULL));
		if (op == OP_RECV) {
			ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk));
			ASSERT_OK(reap_shm_send(sk[1], src));
		}
		before = test_snap();
		fds = test_fd_count();
		maps = count_maps();
		reap_fault_alloc(n);
		if (op == OP_CREATE)
			rc = reap_shm_create(s, o, &v);
		else if (op == OP_ATTACH)
			rc = reap_shm_attach(s, reap_shm_fd(src), NULL, NULL, &v);
		else
			rc = reap_shm_recv(s, sk[0], NULL, NULL, &v);
		seen = test_fault_disarm();
		if (rc == 0) {
			int64_t x;

			ASSERT_NE_PTR(v, SENTINEL);
			ASSERT_EQ_INT(test_fd_count(), fds + 1);
			ASSERT_EQ_INT(count_maps(), maps + 1);
			if (reap_shm_kind_of(v) == REAP_SHM_I64) {
				ASSERT_OK(reap_shm_add_i64(v, 0, 1, NULL));
				ASSERT_OK(reap_shm_get_i64(v, 0, &x));
				ASSERT_GE_INT(x, 1);
			}
			ASSERT_OK(reap_scope_close(s));
			ASSERT_EQ_INT(test_fd_count(), fds);
			ASSERT_EQ_INT(count_maps(), maps);
			if (sk[0] >= 0) {
				close(sk[0]);
				close(sk[1]);
			}
			break;
		}
		ASSERT_GE_INT(seen, n);
		if (rc != -ENOMEM)
			test_fail(__FILE__, __LINE__, "n=%d: returned %d (%s)", n, rc,
				  reap_errname(rc));
		failures++;
		ASSERT_EQ_PTR(v, SENTINEL);
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(test_fd_count(), fds); /* a received fd is closed too */
		ASSERT_EQ_INT(count_maps(), maps);
		ASSERT_OK(reap_scope_close(s));
		if (sk[0] >= 0) {
			close(sk[0]);
			close(sk[1]);
		}
	}
	return failures;
}

TEST(oom_shm_create)
{
	reap_shm_opts o = {.kind = REAP_SHM_I64, .count = 8, .name = "oom"};
	int fds = test_fd_count();

	/* memfd, ftruncate, mmap, the handle, the scope's first chunk */
	ASSERT_GE_INT(sweep(OP_CREATE, &o, 0, NULL), 5);
	ASSERT_GE_INT(sweep(OP_CREATE, &o, 1, NULL), 4);
	ASSERT_EQ_INT(test_fd_count(), fds);
}

TEST(oom_shm_create_no_lock)
{
	reap_shm_opts o = {.kind = REAP_SHM_BYTES, .count = 100, .no_lock = true};

	ASSERT_GE_INT(sweep(OP_CREATE, &o, 0, NULL), 5);
	ASSERT_GE_INT(sweep(OP_CREATE, &o, 1, NULL), 4);
}

TEST(oom_shm_attach)
{
	reap_scope *s;
	reap_shm *v;
	int fds = test_fd_count();

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_I64}), &v));
	/* dup, mmap, the handle, the scope's first chunk */
	ASSERT_GE_INT(sweep(OP_ATTACH, NULL, 0, v), 4);
	ASSERT_GE_INT(sweep(OP_ATTACH, NULL, 1, v), 3);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(test_fd_count(), fds);
}

TEST(oom_shm_recv)
{
	reap_scope *s;
	reap_shm *v;
	int fds = test_fd_count();

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, (&(reap_shm_opts){.kind = REAP_SHM_I64,
							.name = "oom-recv"}), &v));
	/* mmap, the handle, the scope's first chunk */
	ASSERT_GE_INT(sweep(OP_RECV, NULL, 0, v), 3);
	ASSERT_GE_INT(sweep(OP_RECV, NULL, 1, v), 2);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(test_fd_count(), fds);
}
