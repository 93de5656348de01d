/*
 * The poller's Linux backend: epoll for readiness, an eventfd for the
 * wake channel. Included by poll.c only, which holds the portable part;
 * this file defines the backend's static interface:
 *
 *   backend_open(p)      p->fd, p->wake_rd, p->wake_wr, the wake channel
 *                        registered for reading; -errno, nothing kept
 *   backend_close(p)
 *   backend_ctl(p, fd, events)   add or modify (events != 0), remove (0)
 *   backend_wait(p, ns, out, n)  ready fds as (fd, REAP__POLL_* bits), or
 *                                -errno (-EINTR included)
 *   backend_wake(p)      make wake_rd readable; async-signal-safe
 *   backend_drain(p)     make it unreadable again
 */
#include <sys/epoll.h>
#include <sys/eventfd.h>

static int backend_open(struct reap__poll *p)
{
	struct epoll_event ev = {.events = EPOLLIN};
	int ep, efd, rc;

	/* Each fd is an acquisition for the fault injector. */
	if (reap__fault_point())
		return -EMFILE;
	if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -errno;
	if (reap__fault_point()) {
		rc = -EMFILE;
		goto fail_ep;
	}
	if ((efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
		rc = -errno;
		goto fail_ep;
	}
	ev.data.fd = efd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) < 0) {
		rc = -errno;
		goto fail_efd;
	}
	p->fd = ep;
	p->wake_rd = p->wake_wr = efd;
	return 0;

fail_efd:
	close(efd);
fail_ep:
	close(ep);
	return rc;
}

static void backend_close(struct reap__poll *p)
{
	close(p->wake_rd);
	close(p->fd);
}

static int backend_ctl(struct reap__poll *p, int fd, unsigned events)
{
	struct epoll_event ev = {0};

	if (events == 0)
		return epoll_ctl(p->fd, EPOLL_CTL_DEL, fd, &ev) < 0 ? -errno : 0;
	if (events & REAP__POLL_READ)
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (events & REAP__POLL_WRITE)
		ev.events |= EPOLLOUT;
	ev.data.fd = fd;
	if (epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	return epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev) < 0 ? -errno : 0;
}

/* One-shot interest: re-arm a known fd with MOD, add it when epoll does
 * not know it (first use, or the fd was closed and its number reused). */
static int backend_arm(struct reap__poll *p, int fd, unsigned events)
{
	struct epoll_event ev = {.events = EPOLLONESHOT};

	if (events & REAP__POLL_READ)
		ev.events |= EPOLLIN | EPOLLRDHUP;
	if (events & REAP__POLL_WRITE)
		ev.events |= EPOLLOUT;
	ev.data.fd = fd;
	if (epoll_ctl(p->fd, EPOLL_CTL_MOD, fd, &ev) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;
	return epoll_ctl(p->fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int backend_wait(struct reap__poll *p, uint64_t timeout_ns,
			struct reap__poll_event *out, int cap)
{
	struct epoll_event ev[REAP__POLL_BATCH];
	int ms, n;

	/* Milliseconds, rounded up so that a wait never ends early. */
	if (timeout_ns == REAP__POLL_FOREVER)
		ms = -1;
	else if (timeout_ns / 1000000 >= INT_MAX)
		ms = INT_MAX;
	else
		ms = (int)((timeout_ns + 999999) / 1000000);
	n = epoll_wait(p->fd, ev, cap, ms);
	if (n < 0)
		return -errno;
	for (int i = 0; i < n; i++) {
		uint32_t e = ev[i].events;

		out[i].fd = ev[i].data.fd;
		out[i].events = (e & EPOLLIN ? REAP__POLL_READ : 0) |
				(e & EPOLLOUT ? REAP__POLL_WRITE : 0) |
				(e & EPOLLERR ? REAP__POLL_ERROR : 0) |
				(e & (EPOLLHUP | EPOLLRDHUP) ? REAP__POLL_HUP : 0);
	}
	return n;
}

static void backend_wake(struct reap__poll *p)
{
	uint64_t one = 1;
	ssize_t rc;

	/* Can fail only with EAGAIN, when the counter is about to overflow:
	 * it is then readable already. */
	rc = write(p->wake_wr, &one, sizeof one);
	(void)rc;
}

static void backend_drain(struct reap__poll *p)
{
	uint64_t count;
	ssize_t rc;

	/* One read resets the counter; EAGAIN if it was zero. */
	rc = read(p->wake_rd, &count, sizeof count);
	(void)rc;
}
