/*
 * Cancellation tokens and the waits that a request interrupts.
 *
 * A request sets `requested` (one way, never cleared), then, under the
 * token's lock, wakes every kind of wait:
 *
 *   - sleeps wait on the token's own condition variable under its lock,
 *     and check the flag under that lock before each wait: a request
 *     either comes before the check or finds the sleeper waiting;
 *   - fd waits poll the token's eventfd beside the fd. The eventfd is
 *     made under the lock by the first fd wait, which checks the flag
 *     after making it; a request writes it if it exists. Once written it
 *     stays readable, so every later fd wait returns at once;
 *   - condition waits on the caller's (cv, m) register on the token's
 *     list, then check the flag, then wait, all with m held. The request
 *     broadcasts each listed cv holding its m when it can take it
 *     (trylock, retried briefly): with m held no waiter can be between
 *     its check and its wait, so none misses the wake. When m stays busy
 *     the request broadcasts without it. That is enough when another
 *     thread holds m (the requester itself, say): a waiter is then
 *     either inside pthread_cond_wait, and woken, or blocked on m, and
 *     checks the flag once it has it. The one waiter that could miss the
 *     wake is one that holds m itself, stopped between its check and its
 *     wait all through the retries; waits are made in slices of
 *     WAIT_SLICE_NS that re-check the flag, so it still returns, late.
 *     The slice is long (idle waiters wake once a second) because that
 *     case needs the waiter preempted for the whole of the retries.
 *
 * A token is shared by reference count: a token made by
 * reap_cancel_create() is held by its scope and by each thread spawned
 * with it; a thread's own token lives inside the thread's record and
 * frees that record when the last reference goes.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "thread_internal.h"

#define WAIT_SLICE_NS 1000000000ull /* 1 s: see the essay above */

static void token_describe(void *arg, char *buf, size_t len);
static reap_type cancel_type = REAP_TYPE_INIT("cancel token", token_describe);

struct reap__cwait {
	pthread_cond_t *cv;
	pthread_mutex_t *m;
	struct reap__cwait *prev, *next;
};

void reap__cancel_init(reap_cancel *c, const reap_site *site, int embedded)
{
	pthread_condattr_t ca;

	atomic_init(&c->requested, 0);
	atomic_init(&c->refs, 1);
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->efd = -1;
	c->waiters = NULL;
	c->site = site;
	c->embedded = embedded;
}

void reap__cancel_ref(reap_cancel *c)
{
	/* Relaxed: taking a reference needs one already held. */
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void reap__cancel_unref(reap_cancel *c)
{
	/* Acq_rel: the last holder must see every other holder's writes
	 * before it destroys the token. */
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cv);
	if (c->efd >= 0)
		close(c->efd);
	if (c->embedded)
		/* The record of a reap thread: it goes with its last token
		 * reference. */
		reap_free((char *)c - offsetof(struct reap_thread, own));
	else
		reap_free(c);
}

static void token_close(void *arg)
{
	reap__cancel_unref(arg);
}

static void token_describe(void *arg, char *buf, size_t len)
{
	reap_cancel *c = arg;

	snprintf(buf, len, "%s", atomic_load_explicit(&c->requested,
						      memory_order_relaxed)
					 ? "(cancelled)" : "(not cancelled)");
}

int reap_cancel_create_at(reap_scope *s, reap_cancel **out,
			  const reap_site *site)
{
	reap_cancel *c;
	int rc;

	if ((c = reap_malloc(sizeof *c)) == NULL)
		return -ENOMEM;
	reap__cancel_init(c, site, 0);
	rc = reap_defer_at(s, &cancel_type, token_close, c, NULL, site);
	if (rc < 0) {
		reap__cancel_unref(c);
		return rc;
	}
	*out = c;
	return 0;
}

/* Wake the condition waits listed on c. Called with c->lock held. */
static void wake_cond_waiters(reap_cancel *c)
{
	for (struct reap__cwait *w = c->waiters; w != NULL; w = w->next) {
		int tries = 0;

		for (;;) {
			if (pthread_mutex_trylock(w->m) == 0) {
				pthread_cond_broadcast(w->cv);
				pthread_mutex_unlock(w->m);
				break;
			}
			pthread_cond_broadcast(w->cv);
			if (++tries == 64)
				break; /* the slices of the wait take over */
			sched_yield();
		}
	}
}

void reap_cancel_request(reap_cancel *c)
{
	/* Seq_cst exchange: the flag is set before the lock below is taken,
	 * so a waiter that takes the lock after us sees it. */
	if (atomic_exchange(&c->requested, 1) != 0)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->efd >= 0) {
		uint64_t one = 1;

		if (write(c->efd, &one, sizeof one) < 0) {
			/* Cannot fail: the counter is far from its limit. */
		}
	}
	pthread_cond_broadcast(&c->cv);
	wake_cond_waiters(c);
	pthread_mutex_unlock(&c->lock);
}

reap_cancel *reap_cancel_self(void)
{
	struct reap__tstate *ts = reap__ts_self;

	return ts != NULL && ts->thread != NULL ? reap__thread_of(ts)->cancel : NULL;
}

bool reap_cancel_requested(const reap_cancel *c)
{
	if (c == NULL && (c = reap_cancel_self()) == NULL)
		return false;
	/* Acquire: what the requester wrote before requesting is visible
	 * to the thread that sees the request. */
	return atomic_load_explicit(&c->requested, memory_order_acquire) != 0;
}

/* ------------------------------------------------------------------ */
/* Waits                                                                */

/* Nanoseconds left until deadline (on reap's clock); UINT64_MAX for none. */
static uint64_t remaining(uint64_t deadline)
{
	uint64_t now;

	if (deadline == REAP_FOREVER)
		return UINT64_MAX;
	now = reap_now_ns();
	return deadline > now ? deadline - now : 0;
}

static int is_cancelled(const reap_cancel *c)
{
	return c != NULL && atomic_load_explicit(&c->requested, memory_order_acquire);
}

int reap_cancel_sleep(reap_cancel *c, uint64_t ns)
{
	uint64_t now = reap__mono_ns(), end = reap__add_sat(now, ns);
	int rc = 0;

	if (c == NULL)
		c = reap_cancel_self();
	if (is_cancelled(c))
		return -ECANCELED;
	if (c == NULL) {
		struct timespec t = reap__timespec(end);

		if (end == UINT64_MAX)
			for (;;)
				pause();
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
			;
		return 0;
	}
	pthread_mutex_lock(&c->lock);
	for (;;) {
		if (atomic_load_explicit(&c->requested, memory_order_relaxed)) {
			rc = -ECANCELED;
			break;
		}
		if (end == UINT64_MAX) {
			pthread_cond_wait(&c->cv, &c->lock);
		} else {
			struct timespec t = reap__timespec(end);

			if (reap__mono_ns() >= end ||
			    pthread_cond_timedwait(&c->cv, &c->lock, &t) == ETIMEDOUT) {
				rc = atomic_load_explicit(&c->requested,
							  memory_order_relaxed)
					? -ECANCELED : 0;
				break;
			}
		}
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int reap_cancel_cond_wait(reap_cancel *c, pthread_cond_t *cv,
			  pthread_mutex_t *m, uint64_t deadline_ns)
{
	struct reap__cwait w = {cv, m, NULL, NULL};
	int rc = 0;

	if (c == NULL)
		c = reap_cancel_self();
	if (is_cancelled(c))
		return -ECANCELED;
	if (c != NULL) {
		pthread_mutex_lock(&c->lock);
		w.next = c->waiters;
		if (w.next != NULL)
			w.next->prev = &w;
		c->waiters = &w;
		pthread_mutex_unlock(&c->lock);
	}
	for (;;) {
		uint64_t left = remaining(deadline_ns), slice;
		struct timespec t;
		int r;

		/* After registering: a request from now on wakes us. */
		if (is_cancelled(c)) {
			rc = -ECANCELED;
			break;
		}
		if (left == 0) {
			rc = -ETIMEDOUT;
			break;
		}
		slice = c != NULL && left > WAIT_SLICE_NS ? WAIT_SLICE_NS : left;
		if (slice == UINT64_MAX) {
			r = pthread_cond_wait(cv, m);
		} else {
			t = reap__timespec(reap__mono_ns() + slice);
			r = pthread_cond_clockwait(cv, m, CLOCK_MONOTONIC, &t);
		}
		if (r != ETIMEDOUT) {
			rc = is_cancelled(c) ? -ECANCELED : 0;
			break;
		}
	}
	if (c != NULL) {
		pthread_mutex_lock(&c->lock);
		if (w.prev != NULL)
			w.prev->next = w.next;
		else
			c->waiters = w.next;
		if (w.next != NULL)
			w.next->prev = w.prev;
		pthread_mutex_unlock(&c->lock);
	}
	return rc;
}

int reap_cancel_wait_fd(reap_cancel *c, int fd, short events,
			uint64_t deadline_ns)
{
	struct pollfd p[2];
	nfds_t n = 1;

	if (c == NULL)
		c = reap_cancel_self();
	if (is_cancelled(c))
		return -ECANCELED;
	if (fd < 0)
		return -EBADF;
	p[0] = (struct pollfd){fd, events, 0};
	if (c != NULL) {
		int efd;

		pthread_mutex_lock(&c->lock);
		if (c->efd < 0)
			c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		efd = c->efd;
		pthread_mutex_unlock(&c->lock);
		if (efd < 0)
			return -errno;
		if (is_cancelled(c))
			return -ECANCELED;
		p[1] = (struct pollfd){efd, POLLIN, 0};
		n = 2;
	}
	for (;;) {
		uint64_t left = remaining(deadline_ns);
		struct timespec t = reap__timespec(left);
		int r = ppoll(p, n, left == UINT64_MAX ? NULL : &t, NULL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 2 && p[1].revents != 0)
			return -ECANCELED;
		if (p[0].revents & POLLNVAL)
			return -EBADF;
		if (p[0].revents != 0)
			return p[0].revents;
		if (r == 0 && remaining(deadline_ns) == 0)
			return -ETIMEDOUT;
	}
}
