/*
 * The poller: readiness of file descriptors, and a wake-up channel, for
 * the event loop. Internal; nothing here is part of the API. One backend
 * sits behind it (epoll on Linux, see poll_epoll.h), chosen at compile
 * time by poll.c; see poll.c for the wake protocol.
 *
 *     struct reap__poll p;
 *     struct reap__poll_event ev[64];
 *     if (reap__poll_open(&p) == 0) {
 *         reap__poll_set(&p, fd, REAP__POLL_READ, conn);
 *         int n = reap__poll_wait(&p, 10 * 1000000, ev, 64); // 10 ms
 *         ...
 *         reap__poll_close(&p);
 *     }
 *
 * Interest is level-triggered: an fd stays ready, and is reported by every
 * wait, until what made it ready is consumed or its interest removed.
 *
 * Thread safety: reap__poll_wake() from any thread, and from signal
 * handlers; everything else from the thread that owns the poller (the
 * loop thread).
 */
#ifndef REAP_LOOP_POLL_H
#define REAP_LOOP_POLL_H

#include <stdatomic.h>
#include <stdint.h>

#include "../base/internal.h"

#pragma GCC visibility push(hidden)

/* Interest and readiness bits. ERROR and HUP are always reported, never
 * asked for. HUP: the peer hung up (at least its writing side); reads
 * return end of file once the buffered data is consumed. */
enum {
	REAP__POLL_READ = 1u << 0,
	REAP__POLL_WRITE = 1u << 1,
	REAP__POLL_ERROR = 1u << 2,
	REAP__POLL_HUP = 1u << 3
};

/* A timeout of reap__poll_wait() that never expires. */
#define REAP__POLL_FOREVER UINT64_MAX

/* At most this many events come back from one wait. */
#define REAP__POLL_BATCH 64

struct reap__poll_event {
	int fd;
	unsigned events; /* REAP__POLL_* */
	void *udata;     /* as given to reap__poll_set() */
};

/* Caller storage; valid between reap__poll_open() and reap__poll_close(). */
struct reap__poll {
	int fd;              /* the backend's pollable fd (epoll) */
	int wake_rd, wake_wr; /* the wake channel's ends (one eventfd on Linux) */
	atomic_int wake_pending; /* a wake written and not yet drained */
	int woken;           /* the last wait drained a wake */
	void **udata;        /* udata by fd, [0, nudata) */
	int nudata;
};

/*
 * Open the poller: the backend's fd and the wake channel, both
 * close-on-exec; each is one fallible acquisition for the fault injector
 * (an injected failure gives -EMFILE). Returns 0, or a negative errno
 * (-EMFILE, -ENFILE, -ENOMEM) with nothing acquired and *p untouched.
 */
int reap__poll_open(struct reap__poll *p);

/* Close what open acquired. Registered fds are not closed, only
 * forgotten. No reap__poll_wake() may be running or come later. */
void reap__poll_close(struct reap__poll *p);

/* The fd that becomes readable when a wait would return events (a
 * wake included), so that the loop can be embedded in another one. Any
 * thread. */
static inline int reap__poll_fd(const struct reap__poll *p)
{
	return p->fd;
}

/*
 * Set the interest in fd to events (REAP__POLL_READ and/or WRITE) with
 * udata, adding fd or replacing what was set for it before; events 0
 * removes it. Returns 0, or: -ENOENT (removing an fd not registered),
 * -EBADF (fd is not open), -EPERM (fd cannot be polled, e.g. a regular
 * file), -EINVAL (fd is the poller's own, or events has other bits),
 * -ENOMEM (the table of udata could not grow: nothing changed). A closed
 * fd leaves the interest set by itself once no duplicate of it remains
 * open; close or remove it before its number can be reused.
 */
int reap__poll_set(struct reap__poll *p, int fd, unsigned events, void *udata);

/*
 * Arm a one-shot interest in fd: the next wait that finds fd ready for
 * events reports it once, with udata, and the interest is then disarmed
 * (it stays known to the backend, so re-arming costs one call). Arming
 * replaces any interest set for fd before. A closed fd leaves by itself;
 * re-arming after its number was reused is safe. Returns 0 or the errors
 * of reap__poll_set() (events must not be 0).
 */
int reap__poll_arm(struct reap__poll *p, int fd, unsigned events, void *udata);

/*
 * Wait up to timeout_ns (0: do not block; REAP__POLL_FOREVER: until an
 * event or a wake) and store up to cap (> 0) ready fds in out, at most
 * REAP__POLL_BATCH. Returns how many, 0 when the time ran out, a wake
 * came or a signal interrupted the wait, or a negative errno (-EINVAL
 * for cap <= 0). The timeout is rounded up to the backend's resolution
 * (a millisecond for epoll), never down. p->woken tells whether this
 * wait consumed a wake.
 */
int reap__poll_wait(struct reap__poll *p, uint64_t timeout_ns,
		    struct reap__poll_event *out, int cap);

/*
 * Make the current wait return, or the next one if none is blocked.
 * Wakes that arrive before a wait drains them coalesce into one. Any
 * thread; async-signal-safe (errno is preserved). The caller's writes
 * before the wake are visible to the owner thread after the wait that
 * consumes it returns.
 */
void reap__poll_wake(struct reap__poll *p);

#pragma GCC visibility pop
#endif /* REAP_LOOP_POLL_H */
