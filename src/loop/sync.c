/*
 * Channels, events and semaphores between the tasks of one loop.
 *
 * Each keeps queues of waiters (struct reap__waiter, on the waiting
 * task's stack). A waker serves only a waiter whose task still waits (a
 * task that a cancellation or a timer made ready first is skipped; it
 * unlinks itself when it runs), unlinks it, marks it served (done = 1)
 * and wakes it: so an item handed over or a permit given is never lost,
 * and a cancellation that came first wins. Closing a channel or its
 * owner's scope unlinks every waiter, with done = -1 (it gets
 * REAP_ECLOSED) or -2 when something else woke it first (it keeps that
 * outcome), so that no waiter touches the object once it is gone.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "loop_internal.h"

#define CHAN_MAGIC 0xc4a0c4a0u
#define EVENT_MAGIC 0xe7e0e7e0u
#define SEM_MAGIC 0x5e305e30u

static reap_type chan_type = REAP_TYPE_INIT("channel", NULL);
static reap_type event_type = REAP_TYPE_INIT("event", NULL);
static reap_type sem_type = REAP_TYPE_INIT("semaphore", NULL);

struct reap_chan {
	uint32_t magic;
	int closed;
	reap_loop *loop;
	void **buf;
	size_t cap, head, len;
	struct reap__waitq senders, receivers;
};

struct reap_event {
	uint32_t magic;
	int set;
	reap_loop *loop;
	struct reap__waitq waiters;
};

struct reap_sem {
	uint32_t magic;
	unsigned count;
	reap_loop *loop;
	struct reap__waitq waiters;
};

/* The first waiter whose task still waits, unlinked; NULL if none. */
static struct reap__waiter *take_waiter(struct reap__waitq *q)
{
	for (struct reap__waiter *w = q->head; w != NULL; w = w->next) {
		if (w->task->state == T_WAITING) {
			reap__waitq_del(q, w);
			return w;
		}
	}
	return NULL;
}

/* Whether a waiter of q still waits (cancelled ones stay linked until
 * their task runs, and must not hold a permit back). */
static int live_waiter(const struct reap__waitq *q)
{
	for (const struct reap__waiter *w = q->head; w != NULL; w = w->next)
		if (w->task->state == T_WAITING)
			return 1;
	return 0;
}

static void serve(struct reap__waiter *w)
{
	w->done = 1;
	reap__wake(w->task, 0);
}

/* Unlink and wake every waiter of q with done = -1. */
static void close_all(struct reap__waitq *q)
{
	struct reap__waiter *w;

	while ((w = q->head) != NULL) {
		reap__waitq_del(q, w);
		/* One that a cancellation or a timer woke first keeps that
		 * outcome: it is only unlinked (-2). */
		w->done = w->task->state == T_WAITING ? -1 : -2;
		reap__wake(w->task, 0);
	}
}

/* The calling task, checked against the object's loop; NULL outside a
 * task (the caller then must not wait). */
static reap_task *task_for(reap_loop *loop, const char *what, int *rc)
{
	reap_task *t = reap__task_cur();

	*rc = 0;
	if (t == NULL) {
		if (reap__loop_of_thread() != loop)
			*rc = reap_raisef(-EPERM, "%s off its loop's thread", what);
		return NULL;
	}
	if (t->loop != loop)
		*rc = reap_raisef(-EPERM, "%s from a task of another loop", what);
	return t;
}

/* Park t as w in q; returns the wait's outcome. */
static int wait_in(struct reap__waitq *q, struct reap__waiter *w, reap_task *t,
		   uint64_t deadline, const char *what, const reap_site *site)
{
	int rc;

	w->task = t;
	w->done = 0;
	reap__waitq_push(q, w);
	rc = reap__park(t, deadline, what, site);
	if (w->done == 1)
		return 0; /* served: what it was given is kept */
	if (w->done == -1)
		return REAP_ECLOSED;
	if (w->done == 0)
		reap__waitq_del(q, w);
	if (rc == W_OWN)
		return -ETIMEDOUT;
	return rc < 0 ? rc : -EINTR; /* rc 0 unserved cannot happen */
}

static reap_loop *loop_for_create(const reap_site *site, int *rc)
{
	reap_loop *loop = reap__loop_of_thread();

	if (loop == NULL)
		*rc = reap_raisef_at(site, -EPERM, "no loop on this thread "
				     "(create one with reap_loop_create())");
	return loop;
}

/* ------------------------------------------------------------------ */
/* Channels                                                             */

static void chan_free(void *arg)
{
	reap_chan *ch = arg;

	reap_chan_close(ch);
	ch->magic = DEAD_MAGIC;
	reap_free(ch->buf);
	reap_free(ch);
}

int reap_chan_create_at(reap_scope *s, size_t cap, reap_chan **out,
			const reap_site *site)
{
	reap_loop *loop;
	reap_chan *ch;
	int rc = 0;

	if (cap > ((size_t)1 << 24))
		return reap_raisef_at(site, -EINVAL, "reap_chan_create(): capacity "
				      "%zu above 1<<24", cap);
	if ((loop = loop_for_create(site, &rc)) == NULL)
		return rc;
	if ((ch = reap_calloc(1, sizeof *ch)) == NULL)
		return -ENOMEM;
	if (cap > 0 && (ch->buf = reap_malloc(cap * sizeof *ch->buf)) == NULL) {
		reap_free(ch);
		return -ENOMEM;
	}
	ch->magic = CHAN_MAGIC;
	ch->loop = loop;
	ch->cap = cap;
	if ((rc = reap_defer_at(s, &chan_type, chan_free, ch, NULL, site)) < 0) {
		reap_free(ch->buf);
		reap_free(ch);
		return rc;
	}
	*out = ch;
	return 0;
}

static void check_chan(const reap_chan *ch, const char *what)
{
	if (ch->magic != CHAN_MAGIC)
		reap__misuse("%s() of a channel that was freed", what);
}

int reap_chan_send_at(reap_chan *ch, void *item, uint64_t deadline_ns,
		      const reap_site *site)
{
	struct reap__waiter w = {0}, *r;
	reap_task *t;
	int rc;

	check_chan(ch, "reap_chan_send");
	t = task_for(ch->loop, "reap_chan_send()", &rc);
	if (rc < 0)
		return rc;
	if (t != NULL && t->cancelled && t->shield == 0)
		return -ECANCELED;
	if (ch->closed)
		return REAP_ECLOSED;
	if ((r = take_waiter(&ch->receivers)) != NULL) {
		r->item = item;
		serve(r);
		return 0;
	}
	if (ch->len < ch->cap) {
		ch->buf[(ch->head + ch->len) % ch->cap] = item;
		ch->len++;
		return 0;
	}
	if (t == NULL)
		return -EAGAIN;
	w.item = item;
	return wait_in(&ch->senders, &w, t, deadline_ns, "channel send", site);
}

int reap_chan_recv_at(reap_chan *ch, void **item, uint64_t deadline_ns,
		      const reap_site *site)
{
	struct reap__waiter w = {0}, *s;
	reap_task *t;
	int rc;

	check_chan(ch, "reap_chan_recv");
	t = task_for(ch->loop, "reap_chan_recv()", &rc);
	if (rc < 0)
		return rc;
	if (t != NULL && t->cancelled && t->shield == 0)
		return -ECANCELED;
	if (ch->len > 0) {
		*item = ch->buf[ch->head];
		ch->head = (ch->head + 1) % ch->cap;
		ch->len--;
		if ((s = take_waiter(&ch->senders)) != NULL) {
			ch->buf[(ch->head + ch->len) % ch->cap] = s->item;
			ch->len++;
			serve(s);
		}
		return 0;
	}
	if ((s = take_waiter(&ch->senders)) != NULL) {
		*item = s->item;
		serve(s);
		return 0;
	}
	if (ch->closed)
		return REAP_ECLOSED;
	if (t == NULL)
		return -EAGAIN;
	rc = wait_in(&ch->receivers, &w, t, deadline_ns, "channel receive", site);
	if (rc == 0)
		*item = w.item;
	return rc;
}

void reap_chan_close(reap_chan *ch)
{
	check_chan(ch, "reap_chan_close");
	if (ch->closed)
		return;
	ch->closed = 1;
	close_all(&ch->senders);
	close_all(&ch->receivers);
}

size_t reap_chan_len(const reap_chan *ch)
{
	check_chan(ch, "reap_chan_len");
	return ch->len;
}

/* ------------------------------------------------------------------ */
/* Events                                                               */

static void event_free(void *arg)
{
	reap_event *e = arg;

	close_all(&e->waiters);
	e->magic = DEAD_MAGIC;
	reap_free(e);
}

int reap_event_create_at(reap_scope *s, reap_event **out, const reap_site *site)
{
	reap_loop *loop;
	reap_event *e;
	int rc = 0;

	if ((loop = loop_for_create(site, &rc)) == NULL)
		return rc;
	if ((e = reap_calloc(1, sizeof *e)) == NULL)
		return -ENOMEM;
	e->magic = EVENT_MAGIC;
	e->loop = loop;
	if ((rc = reap_defer_at(s, &event_type, event_free, e, NULL, site)) < 0) {
		reap_free(e);
		return rc;
	}
	*out = e;
	return 0;
}

static void check_event(const reap_event *e, const char *what)
{
	if (e->magic != EVENT_MAGIC)
		reap__misuse("%s() of an event that was freed", what);
}

void reap_event_set(reap_event *e)
{
	struct reap__waiter *w;

	check_event(e, "reap_event_set");
	e->set = 1;
	while ((w = take_waiter(&e->waiters)) != NULL)
		serve(w);
}

void reap_event_clear(reap_event *e)
{
	check_event(e, "reap_event_clear");
	e->set = 0;
}

bool reap_event_is_set(const reap_event *e)
{
	check_event(e, "reap_event_is_set");
	return e->set != 0;
}

int reap_event_wait_at(reap_event *e, uint64_t deadline_ns, const reap_site *site)
{
	struct reap__waiter w = {0};
	reap_task *t;
	int rc;

	check_event(e, "reap_event_wait");
	t = task_for(e->loop, "reap_event_wait()", &rc);
	if (rc < 0)
		return rc;
	if (t != NULL && t->cancelled && t->shield == 0)
		return -ECANCELED;
	if (e->set)
		return 0;
	if (t == NULL)
		return -EAGAIN;
	return wait_in(&e->waiters, &w, t, deadline_ns, "event wait", site);
}

/* ------------------------------------------------------------------ */
/* Semaphores                                                           */

static void sem_free(void *arg)
{
	reap_sem *s = arg;

	close_all(&s->waiters);
	s->magic = DEAD_MAGIC;
	reap_free(s);
}

int reap_sem_create_at(reap_scope *sc, unsigned n, reap_sem **out,
		       const reap_site *site)
{
	reap_loop *loop;
	reap_sem *s;
	int rc = 0;

	if ((loop = loop_for_create(site, &rc)) == NULL)
		return rc;
	if ((s = reap_calloc(1, sizeof *s)) == NULL)
		return -ENOMEM;
	s->magic = SEM_MAGIC;
	s->loop = loop;
	s->count = n;
	if ((rc = reap_defer_at(sc, &sem_type, sem_free, s, NULL, site)) < 0) {
		reap_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

static void check_sem(const reap_sem *s, const char *what)
{
	if (s->magic != SEM_MAGIC)
		reap__misuse("%s() of a semaphore that was freed", what);
}

int reap_sem_acquire_at(reap_sem *s, uint64_t deadline_ns, const reap_site *site)
{
	struct reap__waiter w = {0};
	reap_task *t;
	int rc;

	check_sem(s, "reap_sem_acquire");
	t = task_for(s->loop, "reap_sem_acquire()", &rc);
	if (rc < 0)
		return rc;
	if (t != NULL && t->cancelled && t->shield == 0)
		return -ECANCELED;
	if (s->count > 0 && !live_waiter(&s->waiters)) {
		s->count--;
		return 0;
	}
	if (t == NULL)
		return -EAGAIN;
	return wait_in(&s->waiters, &w, t, deadline_ns, "semaphore", site);
}

void reap_sem_release(reap_sem *s)
{
	struct reap__waiter *w;

	check_sem(s, "reap_sem_release");
	if ((w = take_waiter(&s->waiters)) != NULL)
		serve(w); /* the permit goes to it directly */
	else
		s->count++;
}
