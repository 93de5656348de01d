/*
 * Shared values: typed elements in a memfd mapped MAP_SHARED by every
 * process that holds the value, with a process-shared robust mutex in
 * the segment's header.
 *
 * Robust-lock recovery rests on these invariants.
 *
 *   1. The kernel's robust list. glibc registers with the kernel, per
 *      thread (set_robust_list), the head of a list threaded through the
 *      robust mutexes that thread holds; the links live inside the
 *      mutexes themselves, here inside the shared segment. When a thread
 *      dies (its process killed, say), the kernel walks that list in the
 *      dead thread's address space, sets FUTEX_OWNER_DIED in each
 *      mutex's futex word and wakes one waiter. The next locker gets
 *      EOWNERDEAD with the lock held, in whatever process it runs.
 *
 *   2. A held mutex is never unmapped. The list walk reads and writes
 *      the mutexes at the addresses they had when they were locked. If a
 *      held mutex's mapping went away and something else were mapped
 *      there later, the walk at the thread's death would write into that
 *      other object (or stop at an unmapped entry and skip the rest of
 *      the list, leaving other mutexes locked for ever). So closing a
 *      value whose lock this process holds (held > 0 below) reports and
 *      keeps the mapping; only the fd and the handle go. `held` is
 *      written only by the thread holding the mutex, under it: set after
 *      the lock succeeds, cleared just before the unlock, so plain
 *      (relaxed) stores suffice and the hot path pays no atomic
 *      read-modify-write for it. A close racing with a lock or unlock on
 *      another thread of this process is misuse in any case (a use after
 *      close), as for every resource.
 *
 *   3. Repair runs before consistent. EOWNERDEAD hands over the lock
 *      with the data in whatever state the dead holder left it. Until
 *      pthread_mutex_consistent() is called the mutex stays in the
 *      owner-died state: if the repairer dies too, the next locker gets
 *      EOWNERDEAD again and repairs from scratch. Marking it consistent
 *      first would let a death in mid-repair pass as a clean unlock.
 *      When there is no repair callback, or it fails, the lock is
 *      released without consistent(): glibc then makes the mutex
 *      permanently ENOTRECOVERABLE, for every process, and the header's
 *      `unrecoverable` flag records why for reap_shm_stats_get().
 *
 * The header is written once by the creator before the fd leaves it, and
 * only its counters change after that; an attacher validates the header
 * it reads (magic, layout version, kind, sizes) against the sealed size
 * of the fd, and from then on uses its own copies of kind and count, so
 * a peer scribbling on the header cannot make it index out of the
 * mapping. The seals (no shrink, no grow) keep the size the mapping was
 * validated against: a peer cannot truncate the segment under the others.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "../base/internal.h"

#if defined(__SANITIZE_THREAD__)
#define SHM_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHM_TSAN 1
#endif
#endif
#ifdef SHM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#define SHM_MAGIC 0x316d687370616572ull /* "reapshm1" */
#define SHM_VERSION 1u
#define SHM_ALIGN 64u
#define SHM_HDR_NAME 48
#define SHM_MEMFD_NAME_MAX 249 /* MFD_NAME_MAX_LEN, without "memfd:" */

enum { HF_LOCK = 1u << 0 };

/* The segment's header: offset 0 of the memfd. */
struct shm_hdr {
	uint64_t magic;
	uint32_t version;
	uint32_t kind;
	uint64_t count;
	uint32_t elem;
	uint32_t flags;       /* HF_* */
	uint64_t data_off;    /* multiple of SHM_ALIGN */
	uint32_t hdr_size;    /* sizeof(struct shm_hdr) of the creator */
	uint32_t mutex_size;  /* sizeof(pthread_mutex_t) of the creator */
	uint64_t owner_deaths; /* __atomic */
	uint64_t repairs;      /* __atomic */
	uint32_t unrecoverable; /* __atomic */
	uint32_t pad;
	char name[SHM_HDR_NAME];
	pthread_mutex_t lock;  /* when HF_LOCK */
};

#define SHM_DATA_OFF \
	((sizeof(struct shm_hdr) + SHM_ALIGN - 1) / SHM_ALIGN * SHM_ALIGN)

/* A process's handle of a value. */
struct reap_shm {
	struct shm_hdr *hdr; /* the mapping */
	unsigned char *data;
	size_t map_len;
	size_t count;
	size_t elem;
	int fd;
	reap_shm_kind kind;
	bool has_lock;
	int held; /* 1 while a thread of this process holds the lock via v;
		   * written by that thread only, relaxed */
	reap_shm_repair_fn repair;
	void *repair_ctx;
	const reap_site *site;
	char name[]; /* "" when none was given */
};

static void shm_describe(void *arg, char *buf, size_t len);
static reap_type shm_type = REAP_TYPE_INIT("shm", shm_describe);

static const char *const kind_names[] = {
	[REAP_SHM_I32] = "i32", [REAP_SHM_I64] = "i64", [REAP_SHM_U64] = "u64",
	[REAP_SHM_F64] = "f64", [REAP_SHM_BYTES] = "bytes",
};

/* The element size of a kind; 0 for an unknown one. */
static size_t elem_size(unsigned kind)
{
	switch (kind) {
	case REAP_SHM_I32:
		return 4;
	case REAP_SHM_I64:
	case REAP_SHM_U64:
	case REAP_SHM_F64:
		return 8;
	case REAP_SHM_BYTES:
		return 1;
	default:
		return 0;
	}
}

/* The segment's size for count elements of elem bytes; 0 when it
 * overflows (or exceeds what off_t and mmap can take). */
static size_t segment_size(size_t count, size_t elem)
{
	size_t bytes, total;

	if (__builtin_mul_overflow(count, elem, &bytes) ||
	    __builtin_add_overflow(bytes, (size_t)SHM_DATA_OFF, &total) ||
	    total > (size_t)PTRDIFF_MAX)
		return 0;
	return total;
}

static void shm_describe(void *arg, char *buf, size_t len)
{
	reap_shm *v = arg;

	snprintf(buf, len, "shm %s[%zu]%s%s%s fd %d%s", kind_names[v->kind],
		 v->count, v->name[0] ? " '" : "", v->name, v->name[0] ? "'" : "",
		 v->fd, v->has_lock ? "" : " (no lock)");
}

static void shm_close(void *arg)
{
	reap_shm *v = arg;
	char where[256];

	/* Relaxed: see invariant 2; a concurrent locker would be misuse. */
	if (__atomic_load_n(&v->held, __ATOMIC_RELAXED) != 0) {
		reap__report("reap: shm %s[%zu] '%s' created at %s is closed while "
			     "this process holds its lock: its mapping at %p is "
			     "kept (a held robust mutex is never unmapped)\n",
			     kind_names[v->kind], v->count, v->name,
			     reap__site_str(v->site, where, sizeof where),
			     (void *)v->hdr);
	} else {
		munmap(v->hdr, v->map_len);
	}
	close(v->fd);
	reap_free(v);
}

/* A new handle of the mapping map (map_len bytes) of fd, registered in
 * s, described by h (the mapping's header, or a checked copy of it).
 * Takes nothing on failure. */
static int shm_register(reap_scope *s, struct shm_hdr *map,
			const struct shm_hdr *h, size_t map_len, int fd,
			reap_shm_repair_fn repair, void *ctx, const char *name,
			reap_shm **out, const reap_site *site)
{
	size_t nlen = name != NULL ? strlen(name) : 0;
	reap_shm *v;
	int rc;

	if ((v = reap_malloc(sizeof *v + nlen + 1)) == NULL)
		return -ENOMEM;
	v->hdr = map;
	v->data = (unsigned char *)map + h->data_off;
	v->map_len = map_len;
	v->count = (size_t)h->count;
	v->elem = h->elem;
	v->fd = fd;
	v->kind = (reap_shm_kind)h->kind;
	v->has_lock = (h->flags & HF_LOCK) != 0;
	v->held = 0;
	v->repair = repair;
	v->repair_ctx = ctx;
	v->site = site;
	memcpy(v->name, nlen ? name : "", nlen + 1);
	rc = reap_defer_at(s, &shm_type, shm_close, v, NULL, site);
	if (rc < 0) {
		reap_free(v);
		return rc;
	}
	*out = v;
	return 0;
}

static int init_mutex(pthread_mutex_t *m)
{
	pthread_mutexattr_t a;
	int r;

	if ((r = pthread_mutexattr_init(&a)) != 0)
		return -r;
	if ((r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED)) != 0 ||
	    (r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (r = pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK)) != 0 ||
	    (r = pthread_mutex_init(m, &a)) != 0) {
		pthread_mutexattr_destroy(&a);
		return -r;
	}
	pthread_mutexattr_destroy(&a);
	return 0;
}

int reap_shm_create_at(reap_scope *s, const reap_shm_opts *o, reap_shm **out,
		       const reap_site *site)
{
	char mname[SHM_MEMFD_NAME_MAX + 1];
	size_t count = o->count ? o->count : 1, elem = elem_size(o->kind), total;
	struct shm_hdr *hdr;
	int fd, rc;

	if (elem == 0 || (total = segment_size(count, elem)) == 0)
		return -EINVAL;
	snprintf(mname, sizeof mname, "reap-shm%s%s", o->name ? ":" : "",
		 o->name ? o->name : "");

	if (reap__fault_point())
		return -ENOMEM;
	if ((fd = memfd_create(mname, MFD_CLOEXEC | MFD_ALLOW_SEALING)) < 0)
		return -errno;
	if (reap__fault_point()) {
		rc = -ENOMEM;
		goto fail_fd;
	}
	if (ftruncate(fd, (off_t)total) < 0) {
		rc = errno == EFBIG || errno == EINVAL ? -EINVAL : -ENOMEM;
		goto fail_fd;
	}
	/* No peer may resize it under the others' mappings. */
	if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
		rc = -errno;
		goto fail_fd;
	}
	if (reap__fault_point()) {
		rc = -ENOMEM;
		goto fail_fd;
	}
	hdr = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (hdr == MAP_FAILED) {
		rc = -ENOMEM;
		goto fail_fd;
	}
	/* The memfd is zero-filled: only the header needs writing. */
	hdr->magic = SHM_MAGIC;
	hdr->version = SHM_VERSION;
	hdr->kind = (uint32_t)o->kind;
	hdr->count = count;
	hdr->elem = (uint32_t)elem;
	hdr->flags = o->no_lock ? 0 : HF_LOCK;
	hdr->data_off = SHM_DATA_OFF;
	hdr->hdr_size = (uint32_t)sizeof *hdr;
	hdr->mutex_size = (uint32_t)sizeof(pthread_mutex_t);
	if (o->name != NULL)
		snprintf(hdr->name, sizeof hdr->name, "%s", o->name);
	if (!o->no_lock && (rc = init_mutex(&hdr->lock)) < 0)
		goto fail_map;
	rc = shm_register(s, hdr, hdr, total, fd, o->repair, o->repair_ctx,
			  o->name, out, site);
	if (rc < 0)
		goto fail_mutex;
	return 0;

fail_mutex:
	if (!o->no_lock)
		pthread_mutex_destroy(&hdr->lock);
fail_map:
	munmap(hdr, total);
fail_fd:
	close(fd);
	return rc;
}

/* Read and check the header of fd: 0 and the segment's size in *total,
 * or -EBADF / -EINVAL. */
static int check_fd(int fd, struct shm_hdr *h, size_t *total)
{
	struct stat st;
	int seals;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	seals = fcntl(fd, F_GET_SEALS);
	if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) !=
				 (F_SEAL_SHRINK | F_SEAL_GROW))
		return -EINVAL; /* not a sealed memfd: its size could change */
	if ((uint64_t)st.st_size < sizeof *h ||
	    pread(fd, h, sizeof *h, 0) != (ssize_t)sizeof *h)
		return -EINVAL;
	if (h->magic != SHM_MAGIC || h->version != SHM_VERSION ||
	    h->hdr_size != sizeof *h || h->mutex_size != sizeof(pthread_mutex_t) ||
	    h->data_off != SHM_DATA_OFF || h->count == 0 ||
	    h->count > SIZE_MAX || elem_size(h->kind) == 0 ||
	    h->elem != elem_size(h->kind) || (h->flags & ~(uint32_t)HF_LOCK) != 0 ||
	    memchr(h->name, '\0', sizeof h->name) == NULL)
		return -EINVAL;
	*total = segment_size((size_t)h->count, h->elem);
	if (*total == 0 || (uint64_t)st.st_size != *total)
		return -EINVAL;
	return 0;
}

/* Attach fd; with take, fd becomes the handle's on success (the caller
 * closes it on failure), else it is duplicated. */
static int attach_fd(reap_scope *s, int fd, int take, reap_shm_repair_fn repair,
		     void *ctx, reap_shm **out, const reap_site *site)
{
	struct shm_hdr h, *hdr;
	size_t total;
	int rc, nfd = fd;

	if ((rc = check_fd(fd, &h, &total)) < 0)
		return rc;
	if (!take) {
		if (reap__fault_point())
			return -ENOMEM;
		if ((nfd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
			return -errno;
	}
	if (reap__fault_point()) {
		rc = -ENOMEM;
		goto fail_fd;
	}
	hdr = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_SHARED, nfd, 0);
	if (hdr == MAP_FAILED) {
		/* EACCES: fd is not open for reading and writing. */
		rc = errno == EACCES ? -EBADF : -ENOMEM;
		goto fail_fd;
	}
	/* Kind, count and offset come from the checked copy, whatever a peer
	 * writes into the header since. */
	rc = shm_register(s, hdr, &h, total, nfd, repair, ctx, h.name, out, site);
	if (rc < 0)
		goto fail_map;
	return 0;

fail_map:
	munmap(hdr, total);
fail_fd:
	if (!take)
		close(nfd);
	return rc;
}

int reap_shm_attach_at(reap_scope *s, int fd, reap_shm_repair_fn repair,
		       void *ctx, reap_shm **out, const reap_site *site)
{
	return attach_fd(s, fd, 0, repair, ctx, out, site);
}

/* ------------------------------------------------------------------ */
/* Passing over a Unix socket                                           */

int reap_shm_send(int sock, const reap_shm *v)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	char byte = 'v';
	struct iovec iov = {&byte, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof cm.buf};
	struct cmsghdr *c;
	ssize_t n;

	memset(&cm, 0, sizeof cm);
	c = CMSG_FIRSTHDR(&msg);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &v->fd, sizeof(int));
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : 0;
}

#define RECV_MAX_FDS 8 /* fds beyond the first are closed; more are dropped */

int reap_shm_recv_at(reap_scope *s, int sock, reap_shm_repair_fn repair,
		     void *ctx, reap_shm **out, const reap_site *site)
{
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int) * RECV_MAX_FDS)];
	} cm;
	char byte;
	struct iovec iov = {&byte, 1};
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1,
			     .msg_control = cm.buf, .msg_controllen = sizeof cm.buf};
	int fd = -1, rc;
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL;
	     c = CMSG_NXTHDR(&msg, c)) {
		size_t nfds;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < nfds; i++) {
			int x;

			memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
			if (fd < 0)
				fd = x;
			else
				close(x); /* one value per message */
		}
	}
	if (fd < 0)
		return -EPROTO;
	if (n != 1 || (msg.msg_flags & MSG_CTRUNC)) {
		rc = -EPROTO;
		goto fail;
	}
	if ((rc = attach_fd(s, fd, 1, repair, ctx, out, site)) < 0)
		goto fail;
	return 0;

fail:
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Accessors                                                            */

int reap_shm_fd(const reap_shm *v) { return v->fd; }
void *reap_shm_data(const reap_shm *v) { return v->data; }
reap_shm_kind reap_shm_kind_of(const reap_shm *v) { return v->kind; }
size_t reap_shm_count(const reap_shm *v) { return v->count; }

void reap_shm_set_repair(reap_shm *v, reap_shm_repair_fn fn, void *ctx)
{
	v->repair = fn;
	v->repair_ctx = ctx;
}

void reap_shm_stats_get(const reap_shm *v, reap_shm_stats *st)
{
	/* Seq_cst: counters other processes bump; a reader that holds the
	 * lock sees every death handled before it got the lock. */
	st->owner_deaths = __atomic_load_n(&v->hdr->owner_deaths, __ATOMIC_SEQ_CST);
	st->repairs = __atomic_load_n(&v->hdr->repairs, __ATOMIC_SEQ_CST);
	st->unrecoverable = __atomic_load_n(&v->hdr->unrecoverable, __ATOMIC_SEQ_CST) != 0;
}

/* ------------------------------------------------------------------ */
/* The lock                                                             */

/*
 * One attempt at m bounded by an absolute CLOCK_MONOTONIC time; 0 means
 * a time already past, so one try. Never pthread_mutex_trylock(): on a
 * robust mutex made unrecoverable, glibc's trylock (2.36 at least)
 * answers ENOTRECOVERABLE but leaves the lock word holding the caller's
 * tid, so that every later locker gets EDEADLK (this thread) or waits
 * for ever (any other). The timed lock with a past deadline tries once
 * without that flaw.
 */
#ifdef SHM_TSAN
/* ThreadSanitizer intercepts pthread_mutex_timedlock but neither
 * pthread_mutex_clocklock nor timedlock's EOWNERDEAD (the lock is held
 * then): tell it about that one, or the unlock after a repair looks
 * wrong. The deadline goes over to CLOCK_REALTIME. */
static int lock_until_mono(pthread_mutex_t *m, uint64_t mono_deadline)
{
	struct timespec rt = {0, 0};
	int r;

	if (mono_deadline != 0) {
		uint64_t now = reap__mono_ns();
		uint64_t left = mono_deadline > now ? mono_deadline - now : 0;

		clock_gettime(CLOCK_REALTIME, &rt);
		rt = reap__timespec(reap__add_sat((uint64_t)rt.tv_sec * 1000000000u +
						    (uint64_t)rt.tv_nsec, left));
	}
	r = pthread_mutex_timedlock(m, &rt);
	if (r == EOWNERDEAD) {
		__tsan_mutex_pre_lock(m, __tsan_mutex_try_lock);
		__tsan_mutex_post_lock(m, __tsan_mutex_try_lock, 0);
	}
	return r;
}
#else
static int lock_until_mono(pthread_mutex_t *m, uint64_t mono_deadline)
{
	struct timespec t = reap__timespec(mono_deadline);

	return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &t);
}
#endif

/* pthread's answer to locking m by deadline (reap_now_ns()'s clock;
 * REAP_FOREVER: none), with a deadline already past meaning one try. */
static int lock_by(pthread_mutex_t *m, uint64_t deadline)
{
	uint64_t now;

	if (deadline == REAP_FOREVER)
		return pthread_mutex_lock(m);
	now = reap_now_ns();
	if (deadline <= now)
		return lock_until_mono(m, 0);
	return lock_until_mono(m, reap__add_sat(reap__mono_ns(), deadline - now));
}

int reap_shm_lock(reap_shm *v, uint64_t deadline_ns)
{
	struct shm_hdr *h = v->hdr;
	int r;

	if (!v->has_lock)
		return -EINVAL;
	r = lock_by(&h->lock, deadline_ns);
	if (r == 0) {
		/* Relaxed: written under the mutex by its holder (invariant 2). */
		__atomic_store_n(&v->held, 1, __ATOMIC_RELAXED);
		return 0;
	}
	if (r == EOWNERDEAD) {
		reap_shm_repair_fn fn = v->repair;

		/* Seq_cst (and the same below): counters shared by every
		 * process, read by reap_shm_stats_get() without the lock. */
		__atomic_add_fetch(&h->owner_deaths, 1, __ATOMIC_SEQ_CST);
		/* Relaxed: held while we hold it, repair included. */
		__atomic_store_n(&v->held, 1, __ATOMIC_RELAXED);
		/* Repair before consistent: invariant 3. */
		if (fn != NULL && fn(v->repair_ctx, v->data, v->count) == 0 &&
		    pthread_mutex_consistent(&h->lock) == 0) {
			__atomic_add_fetch(&h->repairs, 1, __ATOMIC_SEQ_CST);
			return REAP_SHM_RECOVERED;
		}
		/* Seq_cst: set before the unlock that turns the mutex
		 * unrecoverable, so whoever sees that sees the flag. */
		__atomic_store_n(&h->unrecoverable, 1, __ATOMIC_SEQ_CST);
		/* Relaxed: cleared under the mutex, before its unlock. */
		__atomic_store_n(&v->held, 0, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&h->lock);
		return -ENOTRECOVERABLE;
	}
	if (r == ENOTRECOVERABLE)
		/* Seq_cst: see above. reap sets the flag before the unlock
		 * that causes this; a mutex given up outside reap lacks it. */
		__atomic_store_n(&h->unrecoverable, 1, __ATOMIC_SEQ_CST);
	return -r;
}

void reap_shm_unlock(reap_shm *v)
{
	char where[256];
	int r;

	if (!v->has_lock)
		reap__misuse("reap_shm_unlock() of shm '%s' created at %s, which "
			     "has no lock", v->name,
			     reap__site_str(v->site, where, sizeof where));
	/* Relaxed: written by the holder only. Zero means no thread of
	 * this process locked it through v (a lock taken through another
	 * handle must be released through that one, which tracks it). */
	if (__atomic_load_n(&v->held, __ATOMIC_RELAXED) == 0) {
		r = EPERM;
	} else {
		/* Cleared under the mutex, just before the unlock. */
		__atomic_store_n(&v->held, 0, __ATOMIC_RELAXED);
		if ((r = pthread_mutex_unlock(&v->hdr->lock)) != 0)
			__atomic_store_n(&v->held, 1, __ATOMIC_RELAXED);
	}
	if (r != 0)
		reap__misuse("reap_shm_unlock() of shm '%s' created at %s by a "
			     "thread that does not hold its lock (%s)", v->name,
			     reap__site_str(v->site, where, sizeof where),
			     strerror(r));
}

/* Lock for one read-modify-write: a repaired death counts as success. */
static int lock_rmw(reap_shm *v)
{
	int rc = reap_shm_lock(v, REAP_FOREVER);

	return rc < 0 ? rc : 0;
}

int reap_shm_update(reap_shm *v, int (*fn)(void *ctx, void *data, size_t count),
		    void *ctx)
{
	int rc = lock_rmw(v);

	if (rc < 0)
		return rc;
	rc = fn(ctx, v->data, v->count);
	reap_shm_unlock(v);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Elements                                                             */

/* 0 when element i of v is an integer one, else -EINVAL or -ERANGE. */
static int int_elem(const reap_shm *v, size_t i)
{
	if (v->kind != REAP_SHM_I32 && v->kind != REAP_SHM_I64 &&
	    v->kind != REAP_SHM_U64)
		return -EINVAL;
	return i < v->count ? 0 : -ERANGE;
}

/* An I32 element holds only what fits; the wider kinds hold any int64_t
 * (U64 through its two's complement bits). */
static int fits(const reap_shm *v, int64_t x)
{
	return v->kind != REAP_SHM_I32 || (x >= INT32_MIN && x <= INT32_MAX);
}

static int64_t el_load(const reap_shm *v, size_t i)
{
	void *p = v->data + i * v->elem;

	/* Seq_cst, in all three: other processes touch the element with
	 * lock-free atomics; one total order of those is the contract. */
	if (v->kind == REAP_SHM_I32)
		return __atomic_load_n((int32_t *)p, __ATOMIC_SEQ_CST);
	if (v->kind == REAP_SHM_I64)
		return __atomic_load_n((int64_t *)p, __ATOMIC_SEQ_CST);
	return (int64_t)__atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
}

static void el_store(const reap_shm *v, size_t i, int64_t x)
{
	void *p = v->data + i * v->elem;

	/* Seq_cst: as in el_load(). */
	if (v->kind == REAP_SHM_I32)
		__atomic_store_n((int32_t *)p, (int32_t)x, __ATOMIC_SEQ_CST);
	else if (v->kind == REAP_SHM_I64)
		__atomic_store_n((int64_t *)p, x, __ATOMIC_SEQ_CST);
	else
		__atomic_store_n((uint64_t *)p, (uint64_t)x, __ATOMIC_SEQ_CST);
}

/* Add delta (wrapping), returning the previous value. */
static int64_t el_add(const reap_shm *v, size_t i, int64_t delta)
{
	void *p = v->data + i * v->elem;

	/* Seq_cst: as in el_load(); one RMW so that concurrent lock-free
	 * adders lose nothing either. */
	if (v->kind == REAP_SHM_I32)
		return __atomic_fetch_add((int32_t *)p, (int32_t)delta, __ATOMIC_SEQ_CST);
	/* I64 and U64 alike: two's complement addition. */
	return (int64_t)__atomic_fetch_add((uint64_t *)p, (uint64_t)delta,
					   __ATOMIC_SEQ_CST);
}

static int el_cas(const reap_shm *v, size_t i, int64_t *expected, int64_t desired)
{
	void *p = v->data + i * v->elem;

	/* Seq_cst on success and failure: as in el_load(); the failure
	 * load gives the caller the value to retry from. */
	if (v->kind == REAP_SHM_I32) {
		int32_t e = (int32_t)*expected;
		int ok = __atomic_compare_exchange_n((int32_t *)p, &e, (int32_t)desired,
						     false, __ATOMIC_SEQ_CST,
						     __ATOMIC_SEQ_CST);
		*expected = e;
		return ok;
	} else {
		uint64_t e = (uint64_t)*expected;
		int ok = __atomic_compare_exchange_n((uint64_t *)p, &e, (uint64_t)desired,
						     false, __ATOMIC_SEQ_CST,
						     __ATOMIC_SEQ_CST);
		*expected = (int64_t)e;
		return ok;
	}
}

/* An I32 result of an add: the wrapped 32-bit sum, sign-extended. */
static int64_t sum_as(const reap_shm *v, int64_t old, int64_t delta)
{
	uint64_t s = (uint64_t)old + (uint64_t)delta;

	return v->kind == REAP_SHM_I32 ? (int32_t)(uint32_t)s : (int64_t)s;
}

int reap_shm_atomic_load(reap_shm *v, size_t i, int64_t *out)
{
	int rc = int_elem(v, i);

	if (rc < 0)
		return rc;
	*out = el_load(v, i);
	return 0;
}

int reap_shm_atomic_store(reap_shm *v, size_t i, int64_t x)
{
	int rc = int_elem(v, i);

	if (rc < 0)
		return rc;
	if (!fits(v, x))
		return -ERANGE;
	el_store(v, i, x);
	return 0;
}

int reap_shm_atomic_add(reap_shm *v, size_t i, int64_t delta, int64_t *old)
{
	int rc = int_elem(v, i);
	int64_t o;

	if (rc < 0)
		return rc;
	if (!fits(v, delta))
		return -ERANGE;
	o = el_add(v, i, delta);
	if (old != NULL)
		*old = o;
	return 0;
}

int reap_shm_atomic_cas(reap_shm *v, size_t i, int64_t *expected, int64_t desired)
{
	int rc = int_elem(v, i);

	if (rc < 0)
		return rc;
	if (!fits(v, desired))
		return -ERANGE;
	if (!fits(v, *expected)) {
		/* No I32 element can equal it: fail as a compare would. */
		*expected = el_load(v, i);
		return 0;
	}
	return el_cas(v, i, expected, desired);
}

int reap_shm_get_i64(reap_shm *v, size_t i, int64_t *out)
{
	int rc = int_elem(v, i);

	if (rc < 0)
		return rc;
	if (v->has_lock && (rc = lock_rmw(v)) < 0)
		return rc;
	*out = el_load(v, i);
	if (v->has_lock)
		reap_shm_unlock(v);
	return 0;
}

int reap_shm_set_i64(reap_shm *v, size_t i, int64_t x)
{
	int rc = int_elem(v, i);

	if (rc < 0)
		return rc;
	if (!fits(v, x))
		return -ERANGE;
	if (v->has_lock && (rc = lock_rmw(v)) < 0)
		return rc;
	el_store(v, i, x);
	if (v->has_lock)
		reap_shm_unlock(v);
	return 0;
}

int reap_shm_add_i64(reap_shm *v, size_t i, int64_t delta, int64_t *out)
{
	int rc = int_elem(v, i);
	int64_t old;

	if (rc < 0)
		return rc;
	if (!fits(v, delta))
		return -ERANGE;
	if (v->has_lock && (rc = lock_rmw(v)) < 0)
		return rc;
	old = el_add(v, i, delta);
	if (v->has_lock)
		reap_shm_unlock(v);
	if (out != NULL)
		*out = sum_as(v, old, delta);
	return 0;
}

/* 0 when element i of v is a locked F64 one, else -EINVAL or -ERANGE. */
static int f64_elem(const reap_shm *v, size_t i)
{
	if (v->kind != REAP_SHM_F64 || !v->has_lock)
		return -EINVAL;
	return i < v->count ? 0 : -ERANGE;
}

int reap_shm_get_f64(reap_shm *v, size_t i, double *out)
{
	int rc = f64_elem(v, i);

	if (rc < 0 || (rc = lock_rmw(v)) < 0)
		return rc;
	*out = ((double *)v->data)[i];
	reap_shm_unlock(v);
	return 0;
}

int reap_shm_set_f64(reap_shm *v, size_t i, double x)
{
	int rc = f64_elem(v, i);

	if (rc < 0 || (rc = lock_rmw(v)) < 0)
		return rc;
	((double *)v->data)[i] = x;
	reap_shm_unlock(v);
	return 0;
}

int reap_shm_add_f64(reap_shm *v, size_t i, double delta, double *out)
{
	int rc = f64_elem(v, i);
	double x;

	if (rc < 0 || (rc = lock_rmw(v)) < 0)
		return rc;
	x = ((double *)v->data)[i] += delta;
	reap_shm_unlock(v);
	if (out != NULL)
		*out = x;
	return 0;
}
