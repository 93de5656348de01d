/*
 * shm: shared values (reap/shm.h). Creation and attachment with bad
 * input, every kind's locked and atomic operations, the lock (relock,
 * timeout), the death of a holder (repair, no repair, a failing repair),
 * passing values over a socket and by fork, closing while holding the
 * lock, and the memory going away once the last holder lets go.
 *
 * Every test runs between ENV_BEGIN and ENV_END, which check that it left
 * no new name in /dev/shm, no child (waited for or zombie) and no fd
 * open. Forked children use only reap_shm_* calls on the handles they
 * inherited (or received), and end with _exit().
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../runner.h"

#define MS 1000000ull
#define SENTINEL ((void *)(uintptr_t)0x5e5e)
/* Options inline: the parentheses keep their commas from the macros. */
#define OPTS(...) (&(reap_shm_opts){__VA_ARGS__})

/* ------------------------------------------------------------------ */
/* What every test checks                                               */

/* The names in /dev/shm, sorted and joined by '/' (malloc'd). */
static char *dev_shm_names(void)
{
	struct dirent **list;
	int n = scandir("/dev/shm", &list, NULL, alphasort);
	size_t len = 1;
	char *s;

	if (n < 0)
		return strdup("");
	for (int i = 0; i < n; i++)
		len += strlen(list[i]->d_name) + 1;
	s = malloc(len);
	ASSERT_NOT_NULL(s);
	s[0] = '\0';
	for (int i = 0; i < n; i++) {
		strcat(s, list[i]->d_name);
		strcat(s, "/");
		free(list[i]);
	}
	free(list);
	return s;
}

struct env {
	int fds;
	char *shm;
};

static struct env env_begin(void)
{
	struct env e = {test_fd_count(), dev_shm_names()};

	return e;
}

static void no_children(void)
{
	int st;
	pid_t r = waitpid(-1, &st, WNOHANG);

	if (r > 0)
		test_fail(__FILE__, __LINE__, "child %d was left to reap", (int)r);
	ASSERT_EQ_INT(r, -1);
	ASSERT_EQ_INT(errno, ECHILD);
}

static void env_end(struct env *e)
{
	char *now = dev_shm_names();

	ASSERT_EQ_STR(now, e->shm);
	free(now);
	free(e->shm);
	no_children();
	ASSERT_EQ_INT(test_fd_count(), e->fds);
}

#define ENV_BEGIN() struct env env_ = env_begin()
#define ENV_END() env_end(&env_)

/* Lines of /proc/<pid>/maps (pid 0: self) that name the memfd of a
 * value called name. */
static int maps_count(pid_t pid, const char *name)
{
	char path[64], needle[128], line[1024];
	FILE *f;
	int n = 0;

	if (pid == 0)
		snprintf(path, sizeof path, "/proc/self/maps");
	else
		snprintf(path, sizeof path, "/proc/%d/maps", (int)pid);
	snprintf(needle, sizeof needle, "/memfd:reap-shm:%s ", name);
	f = fopen(path, "r");
	ASSERT_NOT_NULL(f);
	while (fgets(line, sizeof line, f) != NULL)
		if (strstr(line, needle) != NULL)
			n++;
	fclose(f);
	return n;
}

/* ------------------------------------------------------------------ */
/* Children                                                             */

static void put_byte(int fd, char c)
{
	ASSERT_EQ_INT(write(fd, &c, 1), 1);
}

static char get_byte(int fd)
{
	char c = 0;

	ASSERT_EQ_INT(read(fd, &c, 1), 1);
	return c;
}

/* Pipes between the test and one child: up (child to test), down. */
struct chan {
	int up[2], down[2];
	reap_shm *v;
	int arg;
};

static void chan_open(struct chan *c, reap_shm *v)
{
	ASSERT_OK(pipe2(c->up, O_CLOEXEC));
	ASSERT_OK(pipe2(c->down, O_CLOEXEC));
	c->v = v;
	c->arg = 0;
}

static void chan_close(struct chan *c)
{
	close(c->up[0]);
	close(c->up[1]);
	close(c->down[0]);
	close(c->down[1]);
}

static reap_shm *make(reap_scope *s, reap_shm_kind kind, size_t count,
		      const char *name)
{
	reap_shm *v;

	ASSERT_OK(reap_shm_create(s, OPTS(.kind = kind, .count = count,
						       .name = name), &v));
	return v;
}

/* ------------------------------------------------------------------ */
/* Creation                                                             */

TEST(shm_create_defaults)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v = SENTINEL;
	int fd;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64), &v));
	ASSERT_NE_PTR(v, SENTINEL);
	ASSERT_EQ_INT(reap_shm_kind_of(v), REAP_SHM_I64);
	ASSERT_EQ_SIZE(reap_shm_count(v), 1);
	ASSERT_EQ_INT(*(int64_t *)reap_shm_data(v), 0);
	ASSERT_EQ_SIZE((uintptr_t)reap_shm_data(v) % 64, 0);
	fd = reap_shm_fd(v);
	ASSERT_GE_INT(fd, 0);
	ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	ASSERT_EQ_INT(fcntl(fd, F_GET_SEALS),
		      F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
	ASSERT_EQ_INT(ftruncate(fd, 0), -1); /* a peer cannot shrink it */
	ASSERT_EQ_INT(errno, EPERM);
	ASSERT_EQ_SIZE(reap_ledger_count(), 2); /* the scope and the value */
	/* Options inline, several fields, straight into the macro. */
	ASSERT_OK(reap_shm_create(s, &(reap_shm_opts){.kind = REAP_SHM_I32, .count = 2}, &v));
	ASSERT_EQ_SIZE(reap_shm_count(v), 2);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(fcntl(fd, F_GETFD), -1); /* closed with its scope */
	ENV_END();
}

TEST(shm_create_kinds)
{
	ENV_BEGIN();
	static const size_t sizes[] = {0, 4, 8, 8, 8, 1};
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	for (int k = REAP_SHM_I32; k <= REAP_SHM_BYTES; k++) {
		reap_shm *v = make(s, (reap_shm_kind)k, 5, "kinds");
		unsigned char *d = reap_shm_data(v);
		struct stat st;

		ASSERT_EQ_INT(reap_shm_kind_of(v), k);
		ASSERT_EQ_SIZE(reap_shm_count(v), 5);
		ASSERT_EQ_SIZE((uintptr_t)d % 64, 0);
		for (size_t i = 0; i < 5 * sizes[k]; i++)
			ASSERT_EQ_INT(d[i], 0);
		ASSERT_OK(fstat(reap_shm_fd(v), &st));
		ASSERT_GE_INT(st.st_size, (long long)(5 * sizes[k]));
		memset(d, 0xab, 5 * sizes[k]); /* the whole of it is writable */
	}
	ASSERT_EQ_INT(maps_count(0, "kinds"), 5);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(maps_count(0, "kinds"), 0);
	ENV_END();
}

TEST(shm_create_current_scope_and_names)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *a, *b;

	ASSERT_OK(reap_scope_open(NULL, &s));
	reap_scope *prev = reap_scope_set_current(s);
	ASSERT_OK(reap_shm_create(NULL, OPTS(.kind = REAP_SHM_U64), &a));
	reap_scope_set_current(prev);
	b = make(s, REAP_SHM_I32, 2, "a-name-that-is-rather-long-for-the-header-of-a-value-xyz");
	ASSERT_EQ_INT(maps_count(0, "a-name-that-is-rather-long-for-the-header-of-a-value-xyz"), 1);
	(void)a;
	(void)b;
	ASSERT_EQ_SIZE(reap_ledger_count(), 3);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

TEST(shm_create_bad_input)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v = SENTINEL;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(0), &v), -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = 6), &v), -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = -1), &v), -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64,
							  .count = SIZE_MAX), &v),
		      -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64,
							  .count = SIZE_MAX / 8), &v),
		      -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = REAP_SHM_I32,
							  .count = SIZE_MAX / 4 - 3), &v),
		      -EINVAL);
	ASSERT_EQ_INT(reap_shm_create(s, OPTS(.kind = REAP_SHM_BYTES,
							  .count = SIZE_MAX - 10), &v),
		      -EINVAL);
	ASSERT_EQ_PTR(v, SENTINEL);
	ASSERT_EQ_SIZE(reap_ledger_count(), 1);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* Attachment                                                           */

/* A sealed memfd holding len bytes copied from src (NULL: zeros). */
static int fake_memfd(const void *src, size_t len, int seal)
{
	int fd = memfd_create("fake", MFD_CLOEXEC | MFD_ALLOW_SEALING);

	ASSERT_GE_INT(fd, 0);
	ASSERT_OK(ftruncate(fd, (off_t)len));
	if (src != NULL)
		ASSERT_EQ_INT(pwrite(fd, src, len, 0), (long long)len);
	if (seal)
		ASSERT_OK(fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW));
	return fd;
}

TEST(shm_attach_same_process)
{
	ENV_BEGIN();
	reap_scope *s, *s2;
	reap_shm *v, *w = SENTINEL;
	int64_t x;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_scope_open(NULL, &s2));
	v = make(s, REAP_SHM_I64, 3, "attach");
	ASSERT_OK(reap_shm_set_i64(v, 2, 17));
	ASSERT_OK(reap_shm_attach(s2, reap_shm_fd(v), NULL, NULL, &w));
	ASSERT_NE_PTR(w, SENTINEL);
	ASSERT_NE_INT(reap_shm_fd(w), reap_shm_fd(v)); /* a duplicate */
	ASSERT_NE_PTR(reap_shm_data(w), reap_shm_data(v)); /* a mapping of its own */
	ASSERT_EQ_INT(reap_shm_kind_of(w), REAP_SHM_I64);
	ASSERT_EQ_SIZE(reap_shm_count(w), 3);
	ASSERT_OK(reap_shm_get_i64(w, 2, &x));
	ASSERT_EQ_INT(x, 17);
	ASSERT_OK(reap_shm_add_i64(w, 2, 1, &x));
	ASSERT_EQ_INT(x, 18);
	ASSERT_OK(reap_shm_get_i64(v, 2, &x));
	ASSERT_EQ_INT(x, 18);
	/* One lock behind both handles. */
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	ASSERT_EQ_INT(reap_shm_lock(w, REAP_FOREVER), -EDEADLK);
	reap_shm_unlock(v);
	ASSERT_EQ_INT(maps_count(0, "attach"), 2);
	/* The creator's handle goes first: the attached one still works. */
	ASSERT_OK(reap_scope_close(s));
	ASSERT_OK(reap_shm_add_i64(w, 2, 1, &x));
	ASSERT_EQ_INT(x, 19);
	ASSERT_OK(reap_scope_close(s2));
	ASSERT_EQ_INT(maps_count(0, "attach"), 0);
	ENV_END();
}

TEST(shm_attach_bad_fd)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *w = SENTINEL;
	int p[2], fd, closed;
	size_t size;
	unsigned char *img;
	struct stat st;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 4, "badfd");
	ASSERT_EQ_INT(reap_shm_attach(s, -1, NULL, NULL, &w), -EBADF);
	closed = dup(0);
	close(closed);
	ASSERT_EQ_INT(reap_shm_attach(s, closed, NULL, NULL, &w), -EBADF);
	{
		char path[64];

		snprintf(path, sizeof path, "/proc/self/fd/%d", reap_shm_fd(v));
		fd = open(path, O_RDONLY | O_CLOEXEC); /* the value, read-only */
		ASSERT_GE_INT(fd, 0);
		ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EBADF);
		close(fd);
	}
	ASSERT_OK(pipe2(p, O_CLOEXEC));
	ASSERT_EQ_INT(reap_shm_attach(s, p[0], NULL, NULL, &w), -EINVAL);
	close(p[0]);
	close(p[1]);

	/* A copy of the real thing, as a base for broken ones. */
	ASSERT_OK(fstat(reap_shm_fd(v), &st));
	size = (size_t)st.st_size;
	img = malloc(size);
	ASSERT_NOT_NULL(img);
	ASSERT_EQ_INT(pread(reap_shm_fd(v), img, size, 0), (long long)size);

	fd = fake_memfd(img, size, 0); /* right bytes, size not sealed */
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	fd = fake_memfd(NULL, size, 1); /* zeros of the right size */
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	fd = fake_memfd(img, size - 8, 1); /* one element short */
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	fd = fake_memfd(img, 16, 1); /* shorter than a header */
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	img[0] ^= 1; /* the magic */
	fd = fake_memfd(img, size, 1);
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	img[0] ^= 1;
	img[8] ^= 0x10; /* the layout version */
	fd = fake_memfd(img, size, 1);
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	img[8] ^= 0x10;
	img[12] = 9; /* the kind */
	fd = fake_memfd(img, size, 1);
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	img[12] = REAP_SHM_I32; /* a valid kind that disagrees with the size */
	fd = fake_memfd(img, size, 1);
	ASSERT_EQ_INT(reap_shm_attach(s, fd, NULL, NULL, &w), -EINVAL);
	close(fd);
	ASSERT_EQ_PTR(w, SENTINEL);
	img[12] = REAP_SHM_I64; /* intact again: a valid (copied) value */
	fd = fake_memfd(img, size, 1);
	ASSERT_OK(reap_shm_attach(s, fd, NULL, NULL, &w));
	ASSERT_EQ_SIZE(reap_shm_count(w), 4);
	close(fd);
	free(img);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* Element operations                                                   */

/* Run check on a new value of every integer kind, locked and not
 * (no_lock), of count elements, owned by s. */
static void each_integer_kind(reap_scope *s, size_t count,
			      void (*check)(reap_shm *v, reap_shm_kind k, int nl))
{
	for (int nl = 0; nl <= 1; nl++) {
		for (int k = REAP_SHM_I32; k <= REAP_SHM_U64; k++) {
			reap_shm *v;

			ASSERT_OK(reap_shm_create(s, OPTS(.kind = (reap_shm_kind)k,
							  .count = count,
							  .no_lock = nl), &v));
			check(v, (reap_shm_kind)k, nl);
		}
	}
}

static void check_get_set_add(reap_shm *v, reap_shm_kind k, int nl)
{
	int64_t x = 99;

	ASSERT_OK(reap_shm_get_i64(v, 1, &x));
	ASSERT_EQ_INT(x, 0);
	ASSERT_OK(reap_shm_set_i64(v, 1, -5));
	ASSERT_OK(reap_shm_get_i64(v, 1, &x));
	ASSERT_EQ_INT(x, -5);
	ASSERT_OK(reap_shm_add_i64(v, 1, 7, &x));
	ASSERT_EQ_INT(x, 2);
	ASSERT_OK(reap_shm_add_i64(v, 1, 1, NULL));
	ASSERT_OK(reap_shm_get_i64(v, 1, &x));
	ASSERT_EQ_INT(x, 3);
	ASSERT_OK(reap_shm_get_i64(v, 0, &x));
	ASSERT_EQ_INT(x, 0); /* neighbours untouched */
	ASSERT_OK(reap_shm_get_i64(v, 2, &x));
	ASSERT_EQ_INT(x, 0);
	ASSERT_EQ_INT(reap_shm_get_i64(v, 3, &x), -ERANGE);
	ASSERT_EQ_INT(reap_shm_set_i64(v, SIZE_MAX, 1), -ERANGE);
	ASSERT_EQ_INT(reap_shm_add_i64(v, 3, 1, NULL), -ERANGE);
	ASSERT_EQ_INT(reap_shm_get_f64(v, 0, &(double){0}), -EINVAL);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), nl ? -EINVAL : 0);
	if (!nl)
		reap_shm_unlock(v);
	if (k == REAP_SHM_I32) {
		ASSERT_EQ_INT(((int32_t *)reap_shm_data(v))[1], 3);
		ASSERT_EQ_INT(reap_shm_set_i64(v, 0, INT64_C(1) << 40), -ERANGE);
		ASSERT_EQ_INT(reap_shm_add_i64(v, 0, INT64_C(1) << 40, NULL), -ERANGE);
		ASSERT_OK(reap_shm_set_i64(v, 0, INT32_MAX));
		ASSERT_OK(reap_shm_add_i64(v, 0, 1, &x));
		ASSERT_EQ_INT(x, INT32_MIN); /* wraps as int32_t */
	} else if (k == REAP_SHM_U64) {
		ASSERT_OK(reap_shm_set_i64(v, 0, -1));
		ASSERT_TRUE(((uint64_t *)reap_shm_data(v))[0] == UINT64_MAX);
		ASSERT_OK(reap_shm_add_i64(v, 0, 1, &x));
		ASSERT_EQ_INT(x, 0);
	} else {
		ASSERT_EQ_INT(((int64_t *)reap_shm_data(v))[1], 3);
		ASSERT_OK(reap_shm_set_i64(v, 0, INT64_MAX));
		ASSERT_OK(reap_shm_add_i64(v, 0, 1, &x));
		ASSERT_EQ_INT(x, INT64_MIN);
	}
}

TEST(shm_get_set_add_integer_kinds)
{
	ENV_BEGIN();
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	each_integer_kind(s, 3, check_get_set_add);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

TEST(shm_f64_and_bytes)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *f, *fn, *b;
	double d = 1;

	ASSERT_OK(reap_scope_open(NULL, &s));
	f = make(s, REAP_SHM_F64, 2, NULL);
	ASSERT_OK(reap_shm_get_f64(f, 1, &d));
	ASSERT_TRUE(d == 0.0);
	ASSERT_OK(reap_shm_set_f64(f, 1, 1.25));
	ASSERT_OK(reap_shm_add_f64(f, 1, 0.5, &d));
	ASSERT_TRUE(d == 1.75);
	ASSERT_OK(reap_shm_add_f64(f, 1, 0.25, NULL));
	ASSERT_TRUE(((double *)reap_shm_data(f))[1] == 2.0);
	ASSERT_EQ_INT(reap_shm_get_f64(f, 2, &d), -ERANGE);
	ASSERT_EQ_INT(reap_shm_set_f64(f, 2, 0), -ERANGE);
	ASSERT_EQ_INT(reap_shm_add_f64(f, 2, 0, NULL), -ERANGE);
	ASSERT_EQ_INT(reap_shm_get_i64(f, 0, &(int64_t){0}), -EINVAL);
	ASSERT_EQ_INT(reap_shm_set_i64(f, 0, 1), -EINVAL);
	ASSERT_EQ_INT(reap_shm_add_i64(f, 0, 1, NULL), -EINVAL);

	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_F64,
						       .no_lock = true), &fn));
	ASSERT_EQ_INT(reap_shm_get_f64(fn, 0, &d), -EINVAL);
	ASSERT_EQ_INT(reap_shm_set_f64(fn, 0, 1), -EINVAL);
	ASSERT_EQ_INT(reap_shm_add_f64(fn, 0, 1, &d), -EINVAL);
	ASSERT_EQ_INT(reap_shm_lock(fn, REAP_FOREVER), -EINVAL);

	b = make(s, REAP_SHM_BYTES, 100, "bytes");
	ASSERT_EQ_SIZE(reap_shm_count(b), 100);
	memcpy(reap_shm_data(b), "hello", 6);
	ASSERT_EQ_INT(reap_shm_get_i64(b, 0, &(int64_t){0}), -EINVAL);
	ASSERT_EQ_INT(reap_shm_get_f64(b, 0, &d), -EINVAL);
	ASSERT_OK(reap_shm_lock(b, REAP_FOREVER));
	ASSERT_EQ_STR(reap_shm_data(b), "hello");
	reap_shm_unlock(b);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

static void check_atomics(reap_shm *v, reap_shm_kind k, int nl)
{
	int64_t x = 0, e;

	(void)nl; /* the same with the lock or without */
	ASSERT_OK(reap_shm_atomic_store(v, 1, 40));
	ASSERT_OK(reap_shm_atomic_load(v, 1, &x));
	ASSERT_EQ_INT(x, 40);
	ASSERT_OK(reap_shm_atomic_add(v, 1, 2, &x));
	ASSERT_EQ_INT(x, 40); /* the previous value */
	ASSERT_OK(reap_shm_atomic_add(v, 1, -1, NULL));
	ASSERT_OK(reap_shm_atomic_load(v, 1, &x));
	ASSERT_EQ_INT(x, 41);
	e = 41;
	ASSERT_EQ_INT(reap_shm_atomic_cas(v, 1, &e, 7), 1);
	ASSERT_EQ_INT(e, 41);
	e = 41;
	ASSERT_EQ_INT(reap_shm_atomic_cas(v, 1, &e, 8), 0);
	ASSERT_EQ_INT(e, 7); /* what the element held */
	ASSERT_OK(reap_shm_atomic_load(v, 0, &x));
	ASSERT_EQ_INT(x, 0);
	ASSERT_EQ_INT(reap_shm_atomic_load(v, 2, &x), -ERANGE);
	ASSERT_EQ_INT(reap_shm_atomic_store(v, 2, 1), -ERANGE);
	ASSERT_EQ_INT(reap_shm_atomic_add(v, 2, 1, NULL), -ERANGE);
	ASSERT_EQ_INT(reap_shm_atomic_cas(v, 2, &e, 1), -ERANGE);
	/* Locked and lock-free calls agree. */
	ASSERT_OK(reap_shm_add_i64(v, 1, 3, &x));
	ASSERT_EQ_INT(x, 10);
	if (k == REAP_SHM_I32) {
		ASSERT_EQ_INT(reap_shm_atomic_store(v, 0, INT64_C(1) << 33), -ERANGE);
		ASSERT_EQ_INT(reap_shm_atomic_cas(v, 0, &e, INT64_C(1) << 33), -ERANGE);
		e = INT64_C(1) << 33; /* no I32 equals it */
		ASSERT_EQ_INT(reap_shm_atomic_cas(v, 1, &e, 0), 0);
		ASSERT_EQ_INT(e, 10);
		ASSERT_OK(reap_shm_atomic_store(v, 0, INT32_MIN));
		ASSERT_OK(reap_shm_atomic_add(v, 0, -1, &x));
		ASSERT_EQ_INT(x, INT32_MIN);
		ASSERT_OK(reap_shm_atomic_load(v, 0, &x));
		ASSERT_EQ_INT(x, INT32_MAX);
	}
	if (k == REAP_SHM_U64) {
		e = 0;
		ASSERT_EQ_INT(reap_shm_atomic_cas(v, 0, &e, -2), 1);
		ASSERT_TRUE(((uint64_t *)reap_shm_data(v))[0] == UINT64_MAX - 1);
	}
}

TEST(shm_atomics)
{
	ENV_BEGIN();
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	each_integer_kind(s, 2, check_atomics);
	for (int k = REAP_SHM_F64; k <= REAP_SHM_BYTES; k++) {
		reap_shm *v;
		int64_t x = 0;

		v = make(s, (reap_shm_kind)k, 16, NULL);
		ASSERT_EQ_INT(reap_shm_atomic_load(v, 0, &x), -EINVAL);
		ASSERT_EQ_INT(reap_shm_atomic_store(v, 0, 1), -EINVAL);
		ASSERT_EQ_INT(reap_shm_atomic_add(v, 0, 1, &x), -EINVAL);
		ASSERT_EQ_INT(reap_shm_atomic_cas(v, 0, &x, 1), -EINVAL);
		/* -EINVAL comes before -ERANGE */
		ASSERT_EQ_INT(reap_shm_atomic_load(v, 99, &x), -EINVAL);
	}
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* The lock                                                             */

struct upd {
	reap_shm *v;
	int calls, inner;
	int ret;
};

static int upd_fn(void *ctx, void *data, size_t count)
{
	struct upd *u = ctx;
	int64_t *d = data;

	u->calls++;
	u->inner = reap_shm_lock(u->v, REAP_FOREVER); /* held: -EDEADLK */
	for (size_t i = 0; i < count; i++)
		d[i] += (int64_t)i;
	return u->ret;
}

TEST(shm_update)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *nl;
	struct upd u = {0};
	int64_t x;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 4, NULL);
	u.v = v;
	u.ret = 5;
	ASSERT_EQ_INT(reap_shm_update(v, upd_fn, &u), 5);
	ASSERT_EQ_INT(u.calls, 1);
	ASSERT_EQ_INT(u.inner, -EDEADLK);
	ASSERT_OK(reap_shm_get_i64(v, 3, &x));
	ASSERT_EQ_INT(x, 3);
	u.ret = -EIO; /* the lock goes whatever fn returns */
	ASSERT_EQ_INT(reap_shm_update(v, upd_fn, &u), -EIO);
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64,
						       .no_lock = true), &nl));
	ASSERT_EQ_INT(reap_shm_update(nl, upd_fn, &u), -EINVAL);
	ASSERT_EQ_INT(u.calls, 2);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

TEST(shm_relock_edeadlk)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 1, NULL);
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -EDEADLK);
	ASSERT_EQ_INT(reap_shm_lock(v, reap_now_ns() + 10 * MS), -EDEADLK);
	ASSERT_EQ_INT(reap_shm_lock(v, 1), -EDEADLK); /* a past deadline */
	ASSERT_EQ_INT(reap_shm_add_i64(v, 0, 1, NULL), -EDEADLK);
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_lock(v, reap_now_ns() + 10 * MS));
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_lock(v, 1)); /* free: one try succeeds */
	reap_shm_unlock(v);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

static void unlock_not_held(void *arg)
{
	reap_shm_unlock(arg);
}

TEST(shm_unlock_misuse)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *nl;
	const char *msg;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 1, "misuse");
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64,
						       .no_lock = true), &nl));
	msg = test_expect_misuse(unlock_not_held, v);
	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "does not hold");
	ASSERT_CONTAINS(msg, "misuse");
	ASSERT_CONTAINS(msg, "test_shm.c");
	msg = test_expect_misuse(unlock_not_held, nl);
	ASSERT_NOT_NULL(msg);
	ASSERT_CONTAINS(msg, "has no lock");
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* Holds the lock until told, then lets go and exits. */
static int hold_until_told(void *arg)
{
	struct chan *c = arg;

	if (reap_shm_lock(c->v, REAP_FOREVER) != 0)
		return 10;
	put_byte(c->up[1], 'L');
	get_byte(c->down[0]);
	reap_shm_unlock(c->v);
	return 0;
}

TEST(shm_timed_lock_times_out)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct chan c;
	uint64_t t0, el;
	pid_t pid;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 1, NULL);
	chan_open(&c, v);
	pid = test_fork(hold_until_told, &c);
	ASSERT_EQ_INT(get_byte(c.up[0]), 'L');
	t0 = reap_now_ns();
	ASSERT_EQ_INT(reap_shm_lock(v, t0 + 50 * MS), -ETIMEDOUT);
	el = reap_now_ns() - t0;
	ASSERT_GE_INT(el, 50 * MS);
	ASSERT_LT_INT(el, 5000 * MS);
	ASSERT_EQ_INT(reap_shm_lock(v, 1), -ETIMEDOUT); /* past: one try */
	put_byte(c.down[1], 'G');
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_OK(reap_shm_lock(v, reap_now_ns() + 1000 * MS));
	reap_shm_unlock(v);
	chan_close(&c);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* A holder's death                                                     */

/* The invariant of the values below: element 0 == element 1. */
struct rep {
	int calls;
	int64_t seen0, seen1;
	size_t count;
	int ret;
};

static int repair_fn(void *ctx, void *data, size_t count)
{
	struct rep *r = ctx;
	int64_t *d = data;

	r->calls++;
	r->seen0 = d[0];
	r->seen1 = d[1];
	r->count = count;
	if (r->ret == 0)
		d[1] = d[0];
	return r->ret;
}

/* Takes the lock, tears the data, says so and waits to be killed (or,
 * with arg set, exits holding it). */
static int die_holding(void *arg)
{
	struct chan *c = arg;

	if (reap_shm_lock(c->v, REAP_FOREVER) < 0)
		return 10;
	if (reap_shm_atomic_add(c->v, 0, 1, NULL) < 0)
		return 11;
	put_byte(c->up[1], 'L');
	if (c->arg)
		_exit(0); /* the kernel's robust list releases it too */
	for (;;)
		pause();
}

/* Run die_holding in a child and see it dead: exit status. */
static int kill_holder(reap_shm *v, int exit_itself)
{
	struct chan c;
	pid_t pid;
	int st;

	chan_open(&c, v);
	c.arg = exit_itself;
	pid = test_fork(die_holding, &c);
	ASSERT_EQ_INT(get_byte(c.up[0]), 'L');
	if (!exit_itself)
		ASSERT_OK(kill(pid, SIGKILL));
	st = test_wait(pid);
	chan_close(&c);
	return st;
}

static void check_stats(reap_shm *v, uint64_t deaths, uint64_t repairs,
			bool unrec)
{
	reap_shm_stats st;

	reap_shm_stats_get(v, &st);
	ASSERT_EQ_INT(st.owner_deaths, deaths);
	ASSERT_EQ_INT(st.repairs, repairs);
	ASSERT_EQ_INT(st.unrecoverable, unrec);
}

TEST(shm_owner_death_repaired)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct rep r = {0};
	int64_t x;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64, .count = 2,
						       .repair = repair_fn,
						       .repair_ctx = &r), &v));
	check_stats(v, 0, 0, false);
	ASSERT_EQ_INT(kill_holder(v, 0), 128 + SIGKILL);
	ASSERT_EQ_INT(r.calls, 0); /* nobody has looked yet */
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), REAP_SHM_RECOVERED);
	ASSERT_EQ_INT(r.calls, 1);
	ASSERT_EQ_INT(r.seen0, 1); /* the torn state the holder left */
	ASSERT_EQ_INT(r.seen1, 0);
	ASSERT_EQ_SIZE(r.count, 2);
	check_stats(v, 1, 1, false);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -EDEADLK); /* it is held */
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER)); /* consistent again */
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_get_i64(v, 1, &x));
	ASSERT_EQ_INT(x, 1);

	/* A holder that exits (rather than is killed) is a death too, and
	 * the locked helpers repair and go on. */
	ASSERT_EQ_INT(kill_holder(v, 1), 0);
	ASSERT_OK(reap_shm_add_i64(v, 0, 10, &x));
	ASSERT_EQ_INT(x, 12);
	ASSERT_EQ_INT(r.calls, 2);
	ASSERT_EQ_INT(r.seen0, 2);
	ASSERT_EQ_INT(r.seen1, 1);
	check_stats(v, 2, 2, false);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* Expects -ENOTRECOVERABLE from the lock and every locked helper. */
static int expect_unrecoverable(void *arg)
{
	reap_shm *v = arg;
	reap_shm_stats st;

	if (reap_shm_lock(v, REAP_FOREVER) != -ENOTRECOVERABLE)
		return 20;
	if (reap_shm_lock(v, reap_now_ns() + 100 * MS) != -ENOTRECOVERABLE)
		return 23;
	if (reap_shm_add_i64(v, 0, 1, NULL) != -ENOTRECOVERABLE)
		return 21;
	reap_shm_stats_get(v, &st);
	return st.unrecoverable ? 0 : 22;
}

TEST(shm_owner_death_no_repair)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct rep r = {0};
	int64_t x;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 2, "norepair");
	ASSERT_EQ_INT(kill_holder(v, 0), 128 + SIGKILL);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -ENOTRECOVERABLE);
	check_stats(v, 1, 0, true);
	/* For good: a repair callback set now is never called. */
	reap_shm_set_repair(v, repair_fn, &r);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_lock(v, reap_now_ns() + 10 * MS), -ENOTRECOVERABLE);
	/* One try with a past deadline must leave the lock as it was (a
	 * trylock would leave it held: glibc's flaw, see shm.c). */
	ASSERT_EQ_INT(reap_shm_lock(v, 1), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_get_i64(v, 0, &x), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_set_i64(v, 0, 1), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_add_i64(v, 0, 1, NULL), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_update(v, upd_fn, &(struct upd){0}), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(r.calls, 0);
	/* In another process too. */
	ASSERT_EQ_INT(test_wait(test_fork(expect_unrecoverable, v)), 0);
	/* The lock-free operations still work. */
	ASSERT_OK(reap_shm_atomic_load(v, 0, &x));
	ASSERT_EQ_INT(x, 1);
	check_stats(v, 1, 0, true);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

TEST(shm_owner_death_repair_fails)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *w;
	struct rep r = {.ret = -EIO}, r2 = {0};

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64, .count = 2,
						       .repair = repair_fn,
						       .repair_ctx = &r), &v));
	/* A second handle with a repair that would work: too late. */
	ASSERT_OK(reap_shm_attach(s, reap_shm_fd(v), repair_fn, &r2, &w));
	ASSERT_EQ_INT(kill_holder(v, 0), 128 + SIGKILL);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(r.calls, 1);
	ASSERT_EQ_INT(r.seen0, 1);
	check_stats(v, 1, 0, true);
	ASSERT_EQ_INT(reap_shm_lock(w, REAP_FOREVER), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(reap_shm_lock(v, REAP_FOREVER), -ENOTRECOVERABLE);
	ASSERT_EQ_INT(r.calls, 1);
	ASSERT_EQ_INT(r2.calls, 0);
	check_stats(w, 1, 0, true);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* Finds the death in a child: the child repairs. */
static int lock_expect_recovered(void *arg)
{
	reap_shm *v = arg;

	if (reap_shm_lock(v, REAP_FOREVER) != REAP_SHM_RECOVERED)
		return 30;
	reap_shm_unlock(v);
	return 0;
}

TEST(shm_owner_death_repaired_in_another_process)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct rep r = {0};
	int64_t x, y;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64, .count = 2,
						       .repair = repair_fn,
						       .repair_ctx = &r), &v));
	ASSERT_EQ_INT(kill_holder(v, 0), 128 + SIGKILL);
	ASSERT_EQ_INT(test_wait(test_fork(lock_expect_recovered, v)), 0);
	ASSERT_EQ_INT(r.calls, 0); /* the child's copy of r was called */
	check_stats(v, 1, 1, false);
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	reap_shm_unlock(v);
	ASSERT_OK(reap_shm_get_i64(v, 0, &x));
	ASSERT_OK(reap_shm_get_i64(v, 1, &y));
	ASSERT_EQ_INT(x, y);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* Between processes                                                    */

static int add_many(void *arg)
{
	struct chan *c = arg;

	for (int i = 0; i < 2000; i++) {
		if (reap_shm_add_i64(c->v, 0, 1, NULL) != 0)
			return 40;
		if (reap_shm_atomic_add(c->v, 1, 2, NULL) != 0)
			return 41;
	}
	return 0;
}

static int add_f64_many(void *arg)
{
	for (int i = 0; i < 20000; i++)
		if (reap_shm_add_f64(arg, 0, 0.5, NULL) != 0)
			return 42;
	return 0;
}

TEST(shm_inherited_by_fork)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *nl, *f;
	struct chan a = {.v = NULL}, b;
	pid_t p[4];
	int64_t x;
	double d;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 2, "inherit");
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_U64,
						       .count = 2, .no_lock = true), &nl));
	f = make(s, REAP_SHM_F64, 1, NULL);
	a.v = v;
	b.v = nl;
	p[0] = test_fork(add_many, &a);
	p[1] = test_fork(add_many, &b);
	p[2] = test_fork(add_f64_many, f);
	p[3] = test_fork(add_f64_many, f);
	for (int i = 0; i < 2000; i++) {
		ASSERT_OK(reap_shm_add_i64(v, 0, 1, NULL));
		ASSERT_OK(reap_shm_add_i64(nl, 0, 1, NULL));
	}
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(test_wait(p[i]), 0);
	ASSERT_OK(reap_shm_get_i64(v, 0, &x));
	ASSERT_EQ_INT(x, 4000);
	ASSERT_OK(reap_shm_get_i64(v, 1, &x));
	ASSERT_EQ_INT(x, 4000);
	ASSERT_OK(reap_shm_get_i64(nl, 0, &x));
	ASSERT_EQ_INT(x, 4000);
	ASSERT_OK(reap_shm_atomic_load(nl, 1, &x));
	ASSERT_EQ_INT(x, 4000);
	ASSERT_OK(reap_shm_get_f64(f, 0, &d));
	ASSERT_TRUE(d == 20000.0);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* The child's end of shm_send_recv: receive, change, send back, and
 * send a value of its own. */
static int echo_child(void *arg)
{
	int sock = *(int *)arg, rc;
	reap_scope *s;
	reap_shm *v, *w;

	if (reap_scope_open(NULL, &s) != 0)
		return 49;
	if (reap_shm_recv(s, sock, NULL, NULL, &v) != 0)
		rc = 50;
	else if (reap_shm_add_i64(v, 0, 5, NULL) != 0)
		rc = 51;
	else if (reap_shm_send(sock, v) != 0)
		rc = 52;
	else if (reap_shm_create(s, OPTS(.kind = REAP_SHM_I32, .count = 3,
					 .name = "from-child"), &w) != 0)
		rc = 53;
	else if (reap_shm_set_i64(w, 2, 42) != 0)
		rc = 54;
	else if (reap_shm_send(sock, w) != 0)
		rc = 55;
	else
		rc = 0;
	/* What was sent lives on in the receiver. */
	return reap_scope_close(s) == 0 ? rc : 56;
}

TEST(shm_send_recv)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *back = SENTINEL, *w = SENTINEL;
	int sk[2];
	int64_t x;
	pid_t pid;
	char *rep = NULL;
	size_t len = 0;
	FILE *f;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 2, "sendrecv");
	ASSERT_OK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk));
	pid = test_fork(echo_child, &sk[1]);
	ASSERT_OK(reap_shm_send(sk[0], v));
	ASSERT_OK(reap_shm_recv(s, sk[0], NULL, NULL, &back));
	ASSERT_OK(reap_shm_recv(s, sk[0], NULL, NULL, &w));
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_NE_PTR(back, SENTINEL);
	ASSERT_TRUE(fcntl(reap_shm_fd(back), F_GETFD) & FD_CLOEXEC);
	ASSERT_OK(reap_shm_get_i64(back, 0, &x));
	ASSERT_EQ_INT(x, 5);
	ASSERT_OK(reap_shm_add_i64(back, 0, 1, NULL));
	ASSERT_OK(reap_shm_get_i64(v, 0, &x));
	ASSERT_EQ_INT(x, 6);
	/* The child's own value outlives the child. */
	ASSERT_EQ_INT(reap_shm_kind_of(w), REAP_SHM_I32);
	ASSERT_EQ_SIZE(reap_shm_count(w), 3);
	ASSERT_OK(reap_shm_get_i64(w, 2, &x));
	ASSERT_EQ_INT(x, 42);
	/* Names travel in the header. */
	f = open_memstream(&rep, &len);
	reap_ledger_report(f, REAP_REPORT_TREE);
	fclose(f);
	ASSERT_CONTAINS(rep, "shm i32[3] 'from-child' fd");
	ASSERT_CONTAINS(rep, "shm i64[2] 'sendrecv' fd");
	free(rep);

	/* A message without an fd, and an fd that is no value. */
	ASSERT_EQ_INT(write(sk[1], "x", 1), 1);
	ASSERT_EQ_INT(reap_shm_recv(s, sk[0], NULL, NULL, &w), -EPROTO);
	{
		int p[2], fds;
		char byte = 'p';
		union {
			struct cmsghdr h;
			char buf[CMSG_SPACE(2 * sizeof(int))];
		} cm;
		struct iovec iov = {&byte, 1};
		struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
				     .msg_control = cm.buf,
				     .msg_controllen = sizeof cm.buf};
		struct cmsghdr *c;

		ASSERT_OK(pipe2(p, O_CLOEXEC));
		memset(&cm, 0, sizeof cm);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(2 * sizeof(int));
		memcpy(CMSG_DATA(c), p, sizeof p);
		fds = test_fd_count();
		ASSERT_EQ_INT(sendmsg(sk[1], &msg, 0), 1);
		ASSERT_EQ_INT(reap_shm_recv(s, sk[0], NULL, NULL, &w), -EINVAL);
		ASSERT_EQ_INT(test_fd_count(), fds); /* both received fds closed */
		/* Two fds, the first a value: attached, the other closed. */
		close(p[0]);
		p[0] = reap_shm_fd(v);
		memcpy(CMSG_DATA(c), p, sizeof p);
		ASSERT_EQ_INT(sendmsg(sk[1], &msg, 0), 1);
		ASSERT_OK(reap_shm_recv(s, sk[0], NULL, NULL, &w));
		ASSERT_EQ_INT(test_fd_count(), fds); /* one pipe end less, one value more */
		close(p[1]);
	}
	ASSERT_EQ_INT(reap_shm_recv(s, -1, NULL, NULL, &w), -EBADF);
	ASSERT_EQ_INT(reap_shm_send(-1, v), -EBADF);
	close(sk[1]);
	ASSERT_EQ_INT(reap_shm_recv(s, sk[0], NULL, NULL, &w), -EPROTO); /* EOF */
	ASSERT_EQ_INT(reap_shm_send(sk[0], v), -EPIPE);
	close(sk[0]);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* ------------------------------------------------------------------ */
/* Lifetime                                                             */

TEST(shm_describe)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v, *nl, *anon, *b;
	char *rep = NULL, want[64];
	size_t len = 0;
	FILE *f;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 4, "name");
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_U64,
						       .no_lock = true, .name = "nl"), &nl));
	anon = make(s, REAP_SHM_F64, 1, NULL);
	b = make(s, REAP_SHM_BYTES, 16, "buf");
	f = open_memstream(&rep, &len);
	reap_ledger_report(f, REAP_REPORT_TREE | REAP_REPORT_STATS);
	fclose(f);
	snprintf(want, sizeof want, "shm i64[4] 'name' fd %d", reap_shm_fd(v));
	ASSERT_CONTAINS(rep, want);
	snprintf(want, sizeof want, "shm u64[1] 'nl' fd %d (no lock)", reap_shm_fd(nl));
	ASSERT_CONTAINS(rep, want);
	snprintf(want, sizeof want, "shm f64[1] fd %d", reap_shm_fd(anon));
	ASSERT_CONTAINS(rep, want);
	snprintf(want, sizeof want, "shm bytes[16] 'buf' fd %d", reap_shm_fd(b));
	ASSERT_CONTAINS(rep, want);
	ASSERT_CONTAINS(rep, "test_shm.c");
	free(rep);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

TEST(shm_close_while_holding_keeps_mapping)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	void *data;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 1, "held-at-close");
	data = reap_shm_data(v);
	ASSERT_OK(reap_shm_set_i64(v, 0, 77));
	ASSERT_OK(reap_shm_lock(v, REAP_FOREVER));
	test_reports_clear();
	ASSERT_OK(reap_scope_close(s));
	ASSERT_CONTAINS(test_reports(), "holds its lock");
	ASSERT_CONTAINS(test_reports(), "'held-at-close'");
	ASSERT_CONTAINS(test_reports(), "test_shm.c");
	/* Still mapped (and still locked by this thread): readable. */
	ASSERT_EQ_INT(maps_count(0, "held-at-close"), 1);
	ASSERT_EQ_INT(*(int64_t *)data, 77);
	ENV_END(); /* its fd is closed all the same */
}

static int wait_then_exit(void *arg)
{
	struct chan *c = arg;

	put_byte(c->up[1], 'R');
	get_byte(c->down[0]);
	return reap_shm_atomic_add(c->v, 0, 1, NULL) == 0 ? 0 : 60;
}

TEST(shm_memory_released)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct chan c;
	pid_t pid;

	ASSERT_OK(reap_scope_open(NULL, &s));
	v = make(s, REAP_SHM_I64, 1024, "released");
	chan_open(&c, v);
	pid = test_fork(wait_then_exit, &c);
	ASSERT_EQ_INT(get_byte(c.up[0]), 'R');
	ASSERT_EQ_INT(maps_count(0, "released"), 1);
	ASSERT_EQ_INT(maps_count(pid, "released"), 1);
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(maps_count(0, "released"), 0);
	ASSERT_EQ_INT(maps_count(pid, "released"), 1); /* the child's stays */
	put_byte(c.down[1], 'G');
	ASSERT_EQ_INT(test_wait(pid), 0);
	ASSERT_EQ_INT(maps_count(0, "released"), 0);
	chan_close(&c);
	ENV_END();
}

TEST(shm_set_repair_and_stats)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct rep r1 = {0}, r2 = {0};

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64, .count = 2,
						       .repair = repair_fn,
						       .repair_ctx = &r1), &v));
	reap_shm_set_repair(v, repair_fn, &r2);
	ASSERT_EQ_INT(kill_holder(v, 0), 128 + SIGKILL);
	ASSERT_EQ_INT(reap_shm_update(v, upd_fn, &(struct upd){.v = v}), 0);
	ASSERT_EQ_INT(r1.calls, 0);
	ASSERT_EQ_INT(r2.calls, 1);
	check_stats(v, 1, 1, false);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}

/* Takes the lock, says so, and exits holding it a little later. */
static int exit_holding_later(void *arg)
{
	struct chan *c = arg;

	if (reap_shm_lock(c->v, REAP_FOREVER) != 0)
		return 70;
	put_byte(c->up[1], 'L');
	usleep(50000);
	_exit(0);
}

TEST(shm_timed_lock_sees_death)
{
	ENV_BEGIN();
	reap_scope *s;
	reap_shm *v;
	struct rep r = {0};
	struct chan c;
	pid_t pid;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_shm_create(s, OPTS(.kind = REAP_SHM_I64, .count = 2,
					  .repair = repair_fn, .repair_ctx = &r), &v));
	chan_open(&c, v);
	pid = test_fork(exit_holding_later, &c);
	ASSERT_EQ_INT(get_byte(c.up[0]), 'L');
	/* Waiting with a deadline when the holder dies. */
	ASSERT_EQ_INT(reap_shm_lock(v, reap_now_ns() + 10000 * MS), REAP_SHM_RECOVERED);
	ASSERT_EQ_INT(r.calls, 1);
	reap_shm_unlock(v);
	ASSERT_EQ_INT(test_wait(pid), 0);
	check_stats(v, 1, 1, false);
	chan_close(&c);
	ASSERT_OK(reap_scope_close(s));
	ENV_END();
}
