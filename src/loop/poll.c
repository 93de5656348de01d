/*
 * The poller: the portable part. The backend (one file, chosen below, in
 * the manner of Redis's ae.c) knows the system calls; this part keeps the
 * udata of each fd, validates arguments, and runs the wake protocol.
 *
 * The wake protocol. A wake must be cheap to repeat, safe in a signal
 * handler and from any thread, and never lost. The channel (an eventfd)
 * is registered with the backend for reading, so a blocked wait returns
 * when it becomes readable. wake_pending says a wake was written and not
 * yet drained:
 *
 *   wake:  if (exchange(pending, 1) == 0) write the channel
 *   wait:  on seeing the channel readable: drain it, then exchange(pending, 0)
 *
 * Invariant: each change of pending from 0 to 1 is followed by exactly
 * one write, and that write is drained before pending returns to 0 (the
 * owner drains only what it saw readable, and no other write can be
 * outstanding while pending is 1). So while pending is 1 the channel is
 * readable, or about to be (a waker between its exchange and its write),
 * or the owner is between the drain and the clear, about to return from
 * a wait. A wake that finds pending at 1 is therefore served by a wait
 * that returns after it: wakes coalesce and none is lost. Draining
 * before clearing matters: the other order lets a wake slip its write
 * between the clear and the drain, which would swallow it and leave
 * pending at 1 with the channel empty, and every later wake silent.
 *
 * Both exchanges are acq_rel. Every wake's exchange is a read-modify-
 * write on pending, so the owner's clearing exchange reads from the last
 * of them (or one after its write, drained by a later wait): the waker's
 * writes before its wake happen before what the owner does after the
 * wait returns, whether or not that waker wrote the channel itself.
 *
 * udata is kept in a table indexed by fd (fds are small and dense), so
 * that the backend stores only the fd with each interest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "poll.h"

#include "poll_epoll.h"

/* A wake from a signal handler must not take a lock. */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "atomic_int must be lock-free");

int reap__poll_open(struct reap__poll *p)
{
	struct reap__poll q = {.fd = -1, .wake_rd = -1, .wake_wr = -1};
	int rc;

	if ((rc = backend_open(&q)) < 0)
		return rc;
	atomic_init(&q.wake_pending, 0);
	*p = q;
	return 0;
}

void reap__poll_close(struct reap__poll *p)
{
	backend_close(p);
	reap_free(p->udata);
	p->udata = NULL;
	p->nudata = 0;
	p->fd = p->wake_rd = p->wake_wr = -1;
}

/* Make room for fd in the udata table: doubling, from 64 entries. */
static int grow_udata(struct reap__poll *p, int fd)
{
	size_t n = p->nudata ? (size_t)p->nudata : 64;
	void **u;

	while (n <= (size_t)fd)
		n *= 2;
	if (n > INT_MAX)
		n = (size_t)INT_MAX;
	if ((u = reap_realloc(p->udata, n * sizeof *u)) == NULL)
		return -ENOMEM;
	memset(u + p->nudata, 0, (n - (size_t)p->nudata) * sizeof *u);
	p->udata = u;
	p->nudata = (int)n;
	return 0;
}

int reap__poll_set(struct reap__poll *p, int fd, unsigned events, void *udata)
{
	int rc;

	if (events & ~(unsigned)(REAP__POLL_READ | REAP__POLL_WRITE))
		return -EINVAL;
	if (fd == p->fd || fd == p->wake_rd || fd == p->wake_wr)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	/* Grow first: a failure then changes nothing. */
	if (events != 0 && fd >= p->nudata && (rc = grow_udata(p, fd)) < 0)
		return rc;
	if ((rc = backend_ctl(p, fd, events)) < 0)
		return rc;
	if (fd < p->nudata)
		p->udata[fd] = events ? udata : NULL;
	return 0;
}

int reap__poll_arm(struct reap__poll *p, int fd, unsigned events, void *udata)
{
	int rc;

	if (events == 0 || (events & ~(unsigned)(REAP__POLL_READ | REAP__POLL_WRITE)))
		return -EINVAL;
	if (fd == p->fd || fd == p->wake_rd || fd == p->wake_wr)
		return -EINVAL;
	if (fd < 0)
		return -EBADF;
	if (fd >= p->nudata && (rc = grow_udata(p, fd)) < 0)
		return rc;
	if ((rc = backend_arm(p, fd, events)) < 0)
		return rc;
	p->udata[fd] = udata;
	return 0;
}

int reap__poll_wait(struct reap__poll *p, uint64_t timeout_ns,
		    struct reap__poll_event *out, int cap)
{
	int n, k = 0;

	if (cap <= 0)
		return -EINVAL;
	p->woken = 0;
	n = backend_wait(p, timeout_ns, out, cap < REAP__POLL_BATCH ? cap : REAP__POLL_BATCH);
	if (n < 0)
		return n == -EINTR ? 0 : n;
	for (int i = 0; i < n; i++) {
		if (out[i].fd == p->wake_rd) {
			backend_drain(p);
			/* acq_rel: see the essay above. */
			atomic_exchange_explicit(&p->wake_pending, 0, memory_order_acq_rel);
			p->woken = 1;
			continue;
		}
		out[k].fd = out[i].fd;
		out[k].events = out[i].events;
		out[k].udata = out[i].fd < p->nudata ? p->udata[out[i].fd] : NULL;
		k++;
	}
	return k;
}

void reap__poll_wake(struct reap__poll *p)
{
	int saved = errno;

	/* acq_rel: see the essay above. Lock-free, so signal-safe. */
	if (atomic_exchange_explicit(&p->wake_pending, 1, memory_order_acq_rel) == 0)
		backend_wake(p);
	errno = saved;
}
