/*
 * reap/shm.h: typed values and arrays in memory shared between
 * processes (the C form of multiprocessing.Value and Array), with a
 * process-shared robust lock that survives the death of its holder.
 *
 * A shared value is anonymous memory (memfd_create): nothing is ever
 * created under /dev/shm or on disk, so a crash cannot leave a segment
 * behind; the kernel frees the memory when the last process that maps it
 * or holds its fd lets go. It reaches other processes by inheritance
 * (fork, or an fd kept open across exec) or over a Unix socket
 * (reap_shm_send / reap_shm_recv, SCM_RIGHTS).
 *
 *     reap_shm *v;
 *     int rc = reap_shm_create(s, &(reap_shm_opts){.kind = REAP_SHM_I64}, &v);
 *     rc = reap_shm_add_i64(v, 0, 1, NULL);   // locked v += 1, atomic as a whole
 *
 * Locking. A value created with a lock (the default) carries a
 * process-shared robust mutex. If a process dies holding it, the next
 * locker is told so: it gets REAP_SHM_RECOVERED (a positive code: the
 * lock IS held) after the value's repair callback, run under the lock,
 * has restored the invariant. Without a repair callback, or when it
 * fails, the data cannot be trusted: the lock is released unrepaired and
 * it and every later lock attempt, in every process, get
 * -ENOTRECOVERABLE instead of hanging. A value created with no_lock has
 * no mutex; it offers the atomic operations only (and the locked calls
 * give -EINVAL).
 *
 * Lifetime. The mapping stays mapped until the owning scope closes.
 * Closing it while the calling process holds the lock is misuse: the
 * lock is released through the robust-list protocol only at death, so
 * unmapping a held robust mutex could let the kernel write into whatever
 * is mapped at that address later (a known glibc/musl hazard); reap then
 * reports it and keeps the mapping (never unmaps a held lock).
 *
 * After fork() a child sees the parent's values at the same addresses;
 * the parent's handles are inherited (see reap/proc.h), so the child
 * never unmaps them by closing a copied scope.
 */
#ifndef REAP_SHM_H
#define REAP_SHM_H

#include <stdint.h>

#include "scope.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_shm reap_shm;

/* Element types. */
typedef enum reap_shm_kind {
	REAP_SHM_I32 = 1, /* int32_t */
	REAP_SHM_I64,     /* int64_t */
	REAP_SHM_U64,     /* uint64_t */
	REAP_SHM_F64,     /* double */
	REAP_SHM_BYTES    /* raw bytes; count is the length */
} reap_shm_kind;

/* reap_shm_lock()'s answer when the previous holder died holding the
 * lock and the repair callback restored the data: the lock is held. */
#define REAP_SHM_RECOVERED 1

/*
 * A repair callback: called under the lock, in the process that finds
 * the lock's previous holder dead, with the value's data and element
 * count. Return 0 when the invariant holds again, a negative errno when
 * it cannot be restored (the value then becomes unrecoverable).
 */
typedef int (*reap_shm_repair_fn)(void *ctx, void *data, size_t count);

/* Options of reap_shm_create(); zero means the default. */
typedef struct reap_shm_opts {
	reap_shm_kind kind;  /* required */
	size_t count;        /* elements (bytes for REAP_SHM_BYTES); 0 means 1 */
	bool no_lock;        /* no mutex: atomic operations only */
	const char *name;    /* for reports and /proc/<pid>/maps (copied) */
	reap_shm_repair_fn repair; /* this process's repair callback */
	void *repair_ctx;
} reap_shm_opts;

/*
 * Create a shared value of o->count elements of o->kind, zero-filled,
 * owned by s (NULL: the current scope).
 * Errors: -EINVAL (no or unknown kind, a size that overflows),
 * -ENOMEM (allocation, memfd or mapping refused, or fault injection),
 * -EMFILE/-ENFILE. On failure nothing is left open and *out is
 * untouched. Ownership: s owns the value; closing s unmaps it and closes
 * its fd. Thread safety: owner thread of s.
 */
/* (opts, out) pass through as written, so that a compound literal with
 * commas, &(reap_shm_opts){.kind = ..., .count = ...}, works in place.) */
#define reap_shm_create(s, ...) reap_shm_create_at((s), __VA_ARGS__, REAP_SITE)
REAP_API REAP_NODISCARD int reap_shm_create_at(reap_scope *s,
					       const reap_shm_opts *o,
					       reap_shm **out,
					       const reap_site *site)
	REAP_NONNULL(2, 3, 4);

/*
 * Map a value another process created, from its fd (received over a
 * socket, or inherited). The fd is duplicated: the caller keeps its own.
 * repair and repair_ctx set this process's repair callback (NULL: none).
 * Errors: -EBADF (not an open fd), -EINVAL (not a reap shared value: wrong
 * size, magic or layout version), -ENOMEM, -EMFILE. Ownership: s owns the
 * new handle; fd is borrowed. Thread safety: owner thread of s.
 */
#define reap_shm_attach(s, fd, repair, ctx, out) \
	reap_shm_attach_at((s), (fd), (repair), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_shm_attach_at(reap_scope *s, int fd,
					       reap_shm_repair_fn repair,
					       void *ctx, reap_shm **out,
					       const reap_site *site)
	REAP_NONNULL(5, 6);

/* Send v's fd over the connected Unix socket sock (one byte of data
 * with SCM_RIGHTS). Errors: those of sendmsg(), negated. Ownership:
 * borrows v. Thread safety: any thread. */
REAP_API REAP_NODISCARD int reap_shm_send(int sock, const reap_shm *v)
	REAP_NONNULL(2);

/* Receive a value sent by reap_shm_send() and attach it, owned by s.
 * Errors: those of recvmsg() negated, -EPROTO (no fd came), and those of
 * reap_shm_attach(). Ownership: s owns *out. Thread safety: owner thread
 * of s. */
#define reap_shm_recv(s, sock, repair, ctx, out) \
	reap_shm_recv_at((s), (sock), (repair), (ctx), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_shm_recv_at(reap_scope *s, int sock,
					     reap_shm_repair_fn repair,
					     void *ctx, reap_shm **out,
					     const reap_site *site)
	REAP_NONNULL(5, 6);

/* The memfd behind v (close-on-exec; clear FD_CLOEXEC to pass it across
 * exec). Ownership: v owns it; do not close it. Thread safety: any
 * thread. */
REAP_API int reap_shm_fd(const reap_shm *v) REAP_NONNULL(1);

/* The elements, their kind and count. Ownership: the memory is v's,
 * valid until v's owner closes. Thread safety: any thread; access to the
 * data is the caller's to serialize (reap_shm_lock or atomics). */
REAP_API void *reap_shm_data(const reap_shm *v) REAP_NONNULL(1);
REAP_API reap_shm_kind reap_shm_kind_of(const reap_shm *v) REAP_NONNULL(1);
REAP_API size_t reap_shm_count(const reap_shm *v) REAP_NONNULL(1);

/*
 * Take v's lock; at deadline_ns (absolute, reap_now_ns()'s clock;
 * REAP_FOREVER: none; one already past, such as 0: try once) give up
 * with -ETIMEDOUT. Returns 0, or
 * REAP_SHM_RECOVERED: the previous holder died holding the lock and the
 * repair callback restored the data (the lock is held either way).
 * Errors (the lock is not held): -ENOTRECOVERABLE (a holder died and the
 * data could not be repaired, now or before), -EDEADLK (this thread
 * holds it already), -ETIMEDOUT, -EINVAL (a value without a lock).
 * Ownership: borrows v. Thread safety: any thread of any process mapping
 * v.
 */
REAP_API int reap_shm_lock(reap_shm *v, uint64_t deadline_ns) REAP_NONNULL(1);

/* Release v's lock. Releasing a lock the calling thread does not hold,
 * or through another handle than the one that took it, is misuse. Ownership: borrows v. Thread safety: the holding thread. */
REAP_API void reap_shm_unlock(reap_shm *v) REAP_NONNULL(1);

/* Replace this process's repair callback of v. Ownership: borrows ctx
 * until replaced. Thread safety: owner thread of v's scope. */
REAP_API void reap_shm_set_repair(reap_shm *v, reap_shm_repair_fn fn,
				  void *ctx) REAP_NONNULL(1);

/* Deaths of lock holders seen and repairs that succeeded, over every
 * process, since v was created. Ownership: borrows v; *st is the
 * caller's. Thread safety: any thread. */
typedef struct reap_shm_stats {
	uint64_t owner_deaths;
	uint64_t repairs;
	bool unrecoverable;
} reap_shm_stats;
REAP_API void reap_shm_stats_get(const reap_shm *v, reap_shm_stats *st)
	REAP_NONNULL(1, 2);

/* ------------------------------------------------------------------ */
/* Read-modify-write helpers                                             */

/*
 * Element i of an integer value (I32, I64, U64; converted through
 * int64_t): read, write and add delta, returning the new value in *out
 * (may be NULL). On a locked value each is one locked step, so that
 * `v += 1` from many processes loses nothing; on a value without a lock
 * each is one atomic operation. A dead previous holder is handled as in
 * reap_shm_lock() (repair, then the call goes on and returns 0).
 * Errors: -EINVAL (not an integer kind), -ERANGE (i out of range, or
 * an I32 element asked to hold a value outside int32_t; a sum that
 * overflows wraps), -ENOTRECOVERABLE. Ownership: borrows v. Thread safety: any thread of
 * any process.
 */
REAP_API int reap_shm_get_i64(reap_shm *v, size_t i, int64_t *out)
	REAP_NONNULL(1, 3);
REAP_API int reap_shm_set_i64(reap_shm *v, size_t i, int64_t x) REAP_NONNULL(1);
REAP_API int reap_shm_add_i64(reap_shm *v, size_t i, int64_t delta,
			      int64_t *out) REAP_NONNULL(1);

/* The same for F64 elements (a locked value only: -EINVAL without a
 * lock, since double has no atomic add). Ownership: borrows v. Thread
 * safety: any thread of any process. */
REAP_API int reap_shm_get_f64(reap_shm *v, size_t i, double *out)
	REAP_NONNULL(1, 3);
REAP_API int reap_shm_set_f64(reap_shm *v, size_t i, double x) REAP_NONNULL(1);
REAP_API int reap_shm_add_f64(reap_shm *v, size_t i, double delta, double *out)
	REAP_NONNULL(1);

/*
 * Run fn(ctx, data, count) under v's lock and return what it returns
 * (the lock is released whatever it returns). Errors: those of
 * reap_shm_lock(). Ownership: borrows v and ctx. Thread safety: any
 * thread of any process.
 */
REAP_API int reap_shm_update(reap_shm *v,
			     int (*fn)(void *ctx, void *data, size_t count),
			     void *ctx) REAP_NONNULL(1, 2);

/* ------------------------------------------------------------------ */
/* Atomic operations (any integer value, with or without a lock)         */

/*
 * Sequentially consistent operations on integer element i, never
 * taking the lock: load, store, add (returning the previous value in
 * *old, which may be NULL) and compare-exchange (returns 1 and stores
 * desired when element i equals *expected; else returns 0 and writes
 * the element's value into *expected). Errors: -EINVAL (not an integer
 * kind), -ERANGE (i out of range). Ownership: borrows v. Thread safety:
 * any thread of any process; lock-free.
 */
REAP_API int reap_shm_atomic_load(reap_shm *v, size_t i, int64_t *out)
	REAP_NONNULL(1, 3);
REAP_API int reap_shm_atomic_store(reap_shm *v, size_t i, int64_t x)
	REAP_NONNULL(1);
REAP_API int reap_shm_atomic_add(reap_shm *v, size_t i, int64_t delta,
				 int64_t *old) REAP_NONNULL(1);
REAP_API int reap_shm_atomic_cas(reap_shm *v, size_t i, int64_t *expected,
				 int64_t desired) REAP_NONNULL(1, 3);

#ifdef __cplusplus
}
#endif
#endif /* REAP_SHM_H */
