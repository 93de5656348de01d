/*
 * The event loop: loops, tasks, task groups, cancellation, shields and
 * deadline regions, and the pending-task report.
 *
 * One loop per thread. The scheduler (turn()) runs on the thread's own
 * stack (loop->sched) and every task on a stack of its own. A turn runs
 * the tasks ready when it began and up to TURN_EXTRA more; within that
 * budget a task that suspends or ends hands the thread straight to the
 * next ready task (switch_away(), the end of task_main()), one switch
 * instead of two through the scheduler. Every hand-over goes through
 * leave() and enter(), which swap the per-task thread state (current
 * scope, stack of closing scopes, errno). A task that ended cannot give
 * its own stack back while it runs on it: it leaves itself in
 * loop->zombie, and whatever context runs next buries it first thing
 * (bury(): after each switch returns, and at the start of a new task).
 *
 * A wait. The waiting task links itself where its waker will find it
 * (a channel's queue, the fd table, a join), then park()s: park() checks
 * for a cancellation or a fired deadline first, arms one timer for the
 * nearest of the wait's own deadline and the deadline regions that apply,
 * and switches to the scheduler. Whoever ends the wait calls wake(),
 * which makes the task ready with a result, only if it is still waiting:
 * so the first of the event, the timer and a cancellation wins, and a
 * waker that served the task (moved an item, gave a permit) marks that in
 * the waiter before waking it, so that the task keeps what it was given
 * even if a cancellation follows before it runs.
 *
 * What applies. A cancellation applies when the task is not shielded. A
 * deadline region applies when it was begun at the task's current shield
 * depth: regions outside a shield are held back inside it, regions
 * opened inside still fire. A scope closing in a task raises the shield
 * depth for the whole close (reap__task_close_hook), so cleanups run to
 * the end; the loop's cleanup limit is a region begun inside that shield.
 *
 * Ends. A task's function returns into task_main(), which closes the
 * task's scope in the task (cleanups may suspend), records the outcome,
 * wakes the joiner or the group's closer (task_done()) and hands the
 * thread on; the next context buries it, freeing a detached task that
 * did not fail. A group's close waits until none of its tasks is
 * alive, reaps the ones nobody joined and closes its scope.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop_internal.h"

reap_type reap_type_async_close = REAP_TYPE_INIT("async close", NULL);
static reap_type loop_type = REAP_TYPE_INIT("loop", NULL);
static reap_type group_type = REAP_TYPE_INIT("task group", NULL);

static __thread reap_loop *this_loop;

static void close_hook(reap_task *t, int begin);
static void task_free(reap_task *t);
static reap_scope *task_scope(struct reap__tstate *ts);
static void report_unretrieved(const reap_error *chain, const char *what);
static void group_reap(reap_group *g, int only_detached);

reap_loop *reap__loop_of_thread(void)
{
	return this_loop;
}

reap_loop *reap_loop_current(void)
{
	return this_loop;
}

reap_task *reap_task_self(void)
{
	return reap__task_cur();
}

/* "task#<num>" into name, without the cost of printf. */
static void number_name(char *name, uint64_t num)
{
	char digits[21];
	int n = 0;

	do
		digits[n++] = (char)('0' + num % 10);
	while ((num /= 10) != 0 && n < 16);
	memcpy(name, "task#", 5);
	for (int i = 0; i < n; i++)
		name[5 + i] = digits[n - 1 - i];
	name[5 + n] = '\0';
}

/* A task's name, made on first use: most tasks are never named. */
const char *reap__task_name(reap_task *t)
{
	if (t->name[0] == '\0')
		number_name(t->name, t->num);
	return t->name;
}

const char *reap_task_name(const reap_task *t)
{
	return reap__task_name((reap_task *)t); /* the name is a cache */
}

/* ------------------------------------------------------------------ */
/* The ready queue and the scheduler                                    */

static void rq_push(reap_loop *loop, reap_task *t)
{
	t->rnext = NULL;
	if (loop->rtail)
		loop->rtail->rnext = t;
	else
		loop->rhead = t;
	loop->rtail = t;
	loop->nready++;
}

static reap_task *rq_pop(reap_loop *loop)
{
	reap_task *t = loop->rhead;

	if (t == NULL)
		return NULL;
	loop->rhead = t->rnext;
	if (loop->rhead == NULL)
		loop->rtail = NULL;
	loop->nready--;
	return t;
}

void reap__wake(reap_task *t, int rc)
{
	reap_loop *loop = t->loop;

	if (t->state != T_WAITING)
		return;
	if (t->timer != 0) {
		reap__timer_cancel(&loop->timers, t->timer);
		t->timer = 0;
	}
	t->wake_rc = rc;
	t->state = T_READY;
	rq_push(loop, t);
}

static void task_done(reap_loop *loop, reap_task *t);
static void bury(reap_loop *loop);

/* Steps a turn may run beyond the tasks that were ready when it began. */
#define TURN_EXTRA 64

/* A new step begins, for the blocking detector (blocking.c). */
static inline void new_step(reap_loop *loop)
{
	if (unlikely(loop->detect))
		atomic_fetch_add_explicit(&loop->step_seq, 1, memory_order_relaxed);
}

/* Load t's thread state (current scope, closing scopes, errno) and make
 * it the running task. */
static inline void enter(reap_loop *loop, struct reap__tstate *ts, reap_task *t)
{
	ts->current = t->cur;
	ts->closing = t->closing;
	*loop->errp = t->err_no;
	ts->task = t;
	loop->cur = t;
	t->state = T_RUNNING;
	loop->stats.switches++;
	if (unlikely(loop->detect)) {
		/* What the watchdog names if this step blocks. */
		reap__spin_lock(&loop->step_lock);
		memcpy(loop->step_name, reap__task_name(t), sizeof loop->step_name);
		loop->step_site = t->site;
		reap__spin_unlock(&loop->step_lock);
		new_step(loop);
		atomic_store_explicit(&loop->in_step, 1, memory_order_release);
	}
}

/* Save the running task's thread state into it. */
static inline void leave(struct reap__tstate *ts, reap_task *t)
{
	t->cur = ts->current;
	t->closing = ts->closing;
	t->err_no = *t->loop->errp;
}

/*
 * Run t, and whatever it hands the thread to directly (switch_away),
 * until control comes back to the scheduler; then handle the task that
 * gave it back (it suspended or ended).
 */
static void resume(reap_loop *loop, reap_task *t)
{
	struct reap__tstate *ts = loop->ts;
	reap_scope *cur = ts->current, *closing = ts->closing;
	int saved = *loop->errp;

	enter(loop, ts, t);
	reap__ctx_switch(&loop->sched, &t->ctx);
	if (unlikely(loop->detect))
		atomic_store_explicit(&loop->in_step, 0, memory_order_release);
	t = loop->cur;
	leave(ts, t);
	ts->task = NULL;
	loop->cur = NULL;
	ts->current = cur;
	ts->closing = closing;
	*loop->errp = saved;
	bury(loop);
}

/*
 * The running task t suspends (its state says how): hand the thread to
 * the next ready task directly while this turn's budget lasts (one
 * switch instead of two through the scheduler), else to the scheduler.
 */
static void switch_away(reap_loop *loop, reap_task *t)
{
	reap_task *n;

	if (loop->budget > 0 && (n = rq_pop(loop)) != NULL) {
		struct reap__tstate *ts = loop->ts;

		loop->budget--;
		if (n == t) { /* it yielded to itself: a new step */
			t->state = T_RUNNING;
			new_step(loop);
			return;
		}
		leave(ts, t);
		enter(loop, ts, n);
		reap__ctx_switch(&t->ctx, &n->ctx);
		bury(loop); /* whoever resumed us entered us */
		return;
	}
	reap__ctx_switch(&t->ctx, &loop->sched);
	bury(loop);
}

/* Hand the finished offloads back to their tasks. */
static void take_offloads(reap_loop *loop)
{
	if (atomic_load_explicit(&loop->done, memory_order_relaxed) != NULL)
		reap__offload_reap(loop);
}

/* Wake the tasks whose fds are ready. */
static void dispatch(reap_loop *loop, struct reap__poll_event *ev, int n)
{
	for (int i = 0; i < n; i++) {
		int fd = ev[i].fd;
		reap_task *t = fd < loop->nfdw ? loop->fdw[fd] : NULL;
		unsigned r = 0;

		if (t == NULL || t->state != T_WAITING || t->wait_fd != fd) {
			/* A one-shot left armed by a wait that ended, which
			 * disarmed itself; or a kept fd, whose level-triggered
			 * interest would report it on every poll: off until
			 * the next wait. */
			if (fd < loop->nfdw && (loop->fdk[fd] & FDK_KEPT)) {
				(void)reap__poll_set(&loop->poll, fd, 0, NULL);
				loop->fdk[fd] = FDK_KEPT;
			}
			continue;
		}
		if (ev[i].events & REAP__POLL_READ)
			r |= REAP_READ;
		if (ev[i].events & REAP__POLL_WRITE)
			r |= REAP_WRITE;
		if (ev[i].events & (REAP__POLL_ERROR | REAP__POLL_HUP))
			r |= REAP_READ | REAP_WRITE;
		reap__wake(t, (int)r);
	}
}

/* Can anything wake a task, other than a task? */
static int can_progress(reap_loop *loop)
{
	return loop->nready > 0 || reap__timers_count(&loop->timers) > 0 ||
	       loop->fd_waits > 0 || loop->offloads > 0;
}

/*
 * Offloaded calls are out and nothing else is ready: wait for a hand-back
 * by spinning a little before sleeping, since the wake costs a system
 * call on both sides (see offload.c). The spin adapts: it doubles (up to
 * SPIN_MAX) when a hand-back came during it, halves (down to SPIN_MIN)
 * when none did, and is 0 on a single CPU, where spinning only delays
 * the worker. Returns whether a hand-back is there.
 */
#define SPIN_MAX 2048
#define SPIN_MIN 32
static int spin_for_offloads(reap_loop *loop)
{
	int hit = 0;

	atomic_store(&loop->spinning, 1);
	for (unsigned i = 0; i < loop->spin; i++) {
		if (atomic_load_explicit(&loop->done, memory_order_acquire)) {
			hit = 1;
			break;
		}
		reap__cpu_relax();
	}
	atomic_store(&loop->spinning, 0);
	if (!hit && atomic_load(&loop->done) != NULL)
		hit = 1;
	if (hit)
		loop->spin = loop->spin * 2 > SPIN_MAX ? SPIN_MAX : loop->spin * 2;
	else
		loop->spin = loop->spin / 2 < SPIN_MIN ? SPIN_MIN : loop->spin / 2;
	return hit;
}

/* Busy polling (opts.spin_ns): poll without sleeping until an event
 * comes or the time is up, no longer than *timeout (the next timer's
 * due time: a spin must not make a timer late), which then loses the
 * time spun. Returns the events taken, or 0. The budget is CPU time,
 * measured on the real clock: a test's clock hook that stands still
 * must not turn it into a spin for ever. */
static int spin_poll(reap_loop *loop, struct reap__poll_event *ev,
		     uint64_t *timeout)
{
	uint64_t spin = loop->opts.spin_ns < *timeout ? loop->opts.spin_ns : *timeout;
	uint64_t start = reap__mono_ns(), now;
	int k;

	do {
		k = reap__poll_wait(&loop->poll, 0, ev, REAP__POLL_BATCH);
		if (k != 0)
			return k < 0 ? 0 : k;
		now = reap__mono_ns();
	} while (now - start < spin);
	if (*timeout != REAP__POLL_FOREVER)
		*timeout = *timeout > now - start ? *timeout - (now - start) : 0;
	return 0;
}

/*
 * One turn: run the tasks that are ready now (not those they make
 * ready), then take finished offloads, poll (blocking up to the next
 * timer when block and nothing is ready) and fire due timers.
 */
static void turn(reap_loop *loop, int block)
{
	struct reap__poll_event ev[REAP__POLL_BATCH];
	uint64_t timeout = 0, now = 0;
	reap_task *t;
	int k;

	loop->now_ms = reap__now_ms();
	loop->turns++;
	/* Run the tasks ready now, and up to TURN_EXTRA of those they make
	 * ready (a spawned task, a woken joiner), before I/O is looked at
	 * again: a task that yields in a loop cannot starve the others. */
	loop->budget = loop->nready + TURN_EXTRA;
	while (loop->budget > 0 && (t = rq_pop(loop)) != NULL) {
		loop->budget--;
		resume(loop, t);
	}
	loop->budget = 0;
	take_offloads(loop);
	if (block && loop->nready == 0 && !atomic_load(&loop->stop) &&
	    loop->live > 0 &&
	    (can_progress(loop) || loop->block_until != REAP_FOREVER)) {
		uint64_t next = reap__timers_count(&loop->timers) > 0
			? reap__timer_next(&loop->timers) : REAP_FOREVER;

		if (loop->block_until < next)
			next = loop->block_until;
		if (next == REAP_FOREVER) {
			timeout = REAP__POLL_FOREVER;
		} else {
			now = reap_now_ns();
			timeout = next > now ? next - now : 0;
		}
		if (timeout != 0 && loop->offloads > 0 && loop->spin > 0)
			timeout = spin_for_offloads(loop) ? 0 : timeout;
	}
	/* Poll when blocking, and while tasks are ready only if some wait
	 * on fds, every few turns: the stop flag and the offloads' hand-back
	 * are read without it, so a loop of ready tasks makes no system
	 * call. */
	if (timeout != 0 || !block || (loop->fd_waits > 0 &&
			     (loop->nready == 0 || ++loop->skipped >= 4))) {
		loop->skipped = 0;
		if (timeout != 0)
			now = 0; /* it may block: read the clock again after */
		k = 0;
		if (timeout != 0 && loop->fd_waits > 0 && loop->opts.spin_ns > 0)
			k = spin_poll(loop, ev, &timeout);
		if (k == 0)
			k = reap__poll_wait(&loop->poll, timeout, ev, REAP__POLL_BATCH);
		if (k > 0)
			dispatch(loop, ev, k);
		take_offloads(loop);
	}
	if (reap__timers_count(&loop->timers) > 0) {
		void *ud;

		if (now == 0)
			now = reap_now_ns();
		while (reap__timer_pop_due(&loop->timers, now, &ud)) {
			t = ud;
			t->timer = 0;
			reap__wake(t, W_TIMER);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Parking, cancellation and deadline regions                           */

/* Regions that apply: begun at the task's shield depth (see the top). */
static int interrupted(reap_task *t)
{
	uint64_t now = 0;
	int rc = 0;

	if (t->cancelled && t->shield == 0)
		return -ECANCELED;
	for (reap_deadline *d = t->dl; d != NULL && d->shield == t->shield; d = d->outer) {
		if (!d->fired) {
			if (d->at == REAP_FOREVER)
				continue;
			if (now == 0)
				now = reap_now_ns();
			if (d->at > now)
				continue;
			d->fired = 1;
		}
		rc = -ETIMEDOUT;
	}
	return rc;
}

static void report_stuck_cleanup(reap_task *t);

int reap__park(reap_task *t, uint64_t deadline, const char *what,
	       const reap_site *site)
{
	reap_loop *loop = t->loop;
	uint64_t at = deadline;
	int rc, own = 1;

	if ((rc = interrupted(t)) != 0)
		return rc;
	for (reap_deadline *d = t->dl; d != NULL && d->shield == t->shield; d = d->outer) {
		if (d->at <= at) {
			at = d->at;
			own = 0;
		}
	}
	if (at != REAP_FOREVER) {
		if ((rc = reap__timer_add(&loop->timers, at, t, &t->timer)) < 0)
			return rc;
	}
	t->wait_what = what;
	t->wait_site = site;
	t->state = T_WAITING;
	switch_away(loop, t);
	rc = t->wake_rc;
	if (rc == W_TIMER) {
		if (own) {
			rc = W_OWN;
		} else {
			(void)interrupted(t); /* marks the regions that fired */
			if (t->closes > 0 && t->cleanup_dl.fired &&
			    !t->cleanup_reported)
				report_stuck_cleanup(t);
			rc = -ETIMEDOUT;
		}
	}
	t->wait_what = NULL;
	return rc;
}

void reap_shield_begin(void)
{
	reap_task *t = reap__task_cur();

	if (t != NULL)
		t->shield++;
}

int reap_shield_end(void)
{
	reap_task *t = reap__task_cur();

	if (t == NULL)
		return 0;
	if (t->shield == 0)
		reap__misuse("reap_shield_end() without reap_shield_begin() in "
			     "task \"%s\"", reap__task_name(t));
	t->shield--;
	return t->cancelled ? -ECANCELED : 0;
}

void reap_deadline_begin(reap_deadline *d, uint64_t deadline_ns)
{
	reap_task *t = reap__task_cur();

	d->at = deadline_ns;
	d->fired = 0;
	d->outer = NULL;
	d->shield = 0;
	if (t == NULL)
		return;
	d->outer = t->dl;
	d->shield = t->shield;
	t->dl = d;
}

int reap_deadline_end(reap_deadline *d)
{
	reap_task *t = reap__task_cur();

	if (t == NULL)
		return 0;
	if (t->dl != d)
		reap__misuse("reap_deadline_end() of a region that is not the "
			     "innermost one of task \"%s\" (regions nest)", reap__task_name(t));
	t->dl = d->outer;
	return d->fired ? -ETIMEDOUT : 0;
}

/* A scope close inside task t begins or ends: shield it, and put the
 * loop's cleanup limit on the outermost close. */
static void close_hook(reap_task *t, int begin)
{
	reap_loop *loop = t->loop;

	if (begin) {
		t->shield++;
		if (t->closes++ == 0 && loop->opts.cleanup_limit_ns != 0) {
			reap_deadline_begin(&t->cleanup_dl,
					    reap_now_ns() + loop->opts.cleanup_limit_ns);
			t->cleanup_reported = 0;
		}
	} else {
		if (--t->closes == 0 && loop->opts.cleanup_limit_ns != 0 &&
		    t->dl == &t->cleanup_dl)
			(void)reap_deadline_end(&t->cleanup_dl);
		t->shield--;
	}
}

static void report_stuck_cleanup(reap_task *t)
{
	char site[256], wsite[256];

	t->cleanup_reported = 1;
	reap__report("reap: a scope close in task \"%s\" (spawned at %s) has run "
		     "longer than the loop's cleanup limit of %llu ms; its wait "
		     "in %s at %s is ended with ETIMEDOUT so that the cleanup "
		     "can give up (it is not abandoned: it still runs to its "
		     "end)\n",
		     reap__task_name(t), reap__site_str(t->site, site, sizeof site),
		     (unsigned long long)(t->loop->opts.cleanup_limit_ns / 1000000u),
		     t->wait_what ? t->wait_what : "a wait",
		     reap__site_str(t->wait_site, wsite, sizeof wsite));
}

void reap_task_cancel(reap_task *t)
{
	if (t->magic != TASK_MAGIC)
		reap__misuse("reap_task_cancel() of a task that was joined or "
			     "freed");
	if (t->state == T_DONE || t->cancelled)
		return;
	t->cancelled = 1;
	t->loop->stats.cancelled++;
	if (t->state == T_WAITING && t->shield == 0)
		reap__wake(t, -ECANCELED);
}

/* ------------------------------------------------------------------ */
/* Loops                                                                */

static int loop_exit(void *arg, const reap_error *inflight);

/*
 * Fork. The child has one thread, the forking one, and none of the
 * parent's loops runs there: not the other threads' (gone), and not the
 * forking thread's own either (the child must not use a loop or a task
 * it inherited; base has already taken the thread out of any task). So
 * the thread has no loop any more and may create one, even when the fork
 * happened inside a task, on that task's stack. The blocking detector
 * forgets its watchdog and the loops it watched, and the stack cache its
 * count of stacks that the child does not own.
 */
static void fork_child(struct reap__tstate *ts)
{
	(void)ts;
	this_loop = NULL;
	reap__blocking_fork_child();
	reap__stack_fork_child();
}

/* The scope layer's hooks into tasks, and the layer's fork hook: set
 * once, before any loop exists. */
static pthread_once_t hooks_once = PTHREAD_ONCE_INIT;
static void set_hooks(void)
{
	reap__task_close_hook = close_hook;
	reap__task_scope_hook = task_scope;
	reap__on_fork(REAP__FORK_LAYER, NULL, NULL, fork_child);
}

int reap_loop_create_at(reap_scope *s, const reap_loop_opts *opts,
			reap_loop **out, const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	reap_loop_opts o = {0};
	reap_loop *loop;
	int rc;

	if (opts != NULL)
		o = *opts;
	if (this_loop != NULL) {
		char buf[256];

		return reap_raisef_at(site, -EBUSY, "this thread has a loop "
				      "already, created at %s",
				      reap__site_str(this_loop->site, buf, sizeof buf));
	}
	if (o.stack_size > ((size_t)1 << 30) || o.workers > 1024)
		return reap_raisef_at(site, -EINVAL, "loop options out of range "
				      "(stack_size up to 1 GiB, workers up to 1024)");
	if (o.workers == 0)
		o.workers = 4;
	if (o.blocking_ns == 0)
		o.blocking_ns = 100 * 1000000ull;
	if (s == NULL && (s = reap__current(ts)) == NULL)
		return -ENOMEM;
	pthread_once(&hooks_once, set_hooks);
	if ((loop = reap_calloc(1, sizeof *loop)) == NULL)
		return -ENOMEM;
	loop->magic = LOOP_MAGIC;
	loop->ts = ts;
	loop->thread = pthread_self();
	loop->errp = &errno; /* this thread's, for good */
	loop->ostid = ts->ostid;
	loop->owner = s;
	loop->site = site;
	loop->opts = o;
	atomic_init(&loop->stop, 0);
	atomic_init(&loop->done, NULL);
	atomic_init(&loop->spinning, 0);
	loop->spin = sysconf(_SC_NPROCESSORS_ONLN) > 1 ? SPIN_MAX : 0;
	loop->block_until = REAP_FOREVER;
	reap__timers_init(&loop->timers);
	if ((rc = reap__poll_open(&loop->poll)) < 0)
		goto fail_free;
	if ((rc = reap_scope_open_at(s, &loop->scope, site)) < 0)
		goto fail_poll;
	if ((rc = reap_scope_name(loop->scope, "loop")) < 0)
		goto fail_scope;
	/* The root group, in the loop's scope. */
	this_loop = loop; /* reap_group_open needs it */
	if ((rc = reap_group_open_at(loop->scope, &loop->root, site)) < 0)
		goto fail_scope;
	loop->root->is_root = 1;
	if ((rc = reap_defer_exit_at(s, &loop_type, loop_exit, loop, &loop->h,
				     site)) < 0)
		goto fail_scope;
	loop->detect = o.detect_blocking ||
		       (reap_debug_flags() & REAP_DEBUG_BLOCKING) != 0;
	if (loop->detect)
		reap__blocking_start(loop);
	*out = loop;
	return 0;

fail_scope:
	this_loop = NULL;
	(void)reap_scope_close(loop->scope); /* closes the root group too */
fail_poll:
	reap__poll_close(&loop->poll);
fail_free:
	reap__timers_fini(&loop->timers);
	reap_free(loop);
	return rc;
}

static int check_loop(reap_loop *loop, const char *what)
{
	if (loop->magic != LOOP_MAGIC)
		reap__misuse("%s() of something that is not a loop", what);
	if (loop->closed)
		return REAP_ECLOSED;
	if (!pthread_equal(loop->thread, pthread_self()))
		return reap_raisef(-EPERM, "%s() off the loop's thread", what);
	if (loop->cur != NULL || loop->running)
		return reap_raisef(-EBUSY, "%s() from one of the loop's tasks or "
				   "while it runs", what);
	return 0;
}

static size_t report_tasks(reap_loop *loop, FILE *f, const char *head);

/* Report the tasks still alive, cancel them and run them to their end.
 * A task that nothing can wake, even cancelled (it waits, shielded, on
 * another task that waits too), has its wait ended with ECANCELED, with
 * a report: a loop never closes with a task alive. */
static void drain(reap_loop *loop, const char *why)
{
	struct reap__rbuf rb;
	FILE *m;

	if (loop->live == 0)
		return;
	if ((m = reap__report_open(&rb)) != NULL) {
		report_tasks(loop, m, why);
		reap__report_send(&rb);
	}
	loop->draining = 1;
	for (reap_task *t = loop->ahead; t != NULL; t = t->anext)
		reap_task_cancel(t);
	while (loop->live > 0) {
		turn(loop, 1);
		if (loop->live > 0 && !can_progress(loop)) {
			for (reap_task *t = loop->ahead; t != NULL; t = t->anext) {
				if (t->state != T_WAITING)
					continue;
				reap__report("reap: task \"%s\" waits, shielded, in %s "
					     "with nothing left that could wake it; "
					     "its wait is ended with ECANCELED so "
					     "that the loop can close\n", reap__task_name(t),
					     t->wait_what ? t->wait_what : "a wait");
				reap__wake(t, -ECANCELED);
			}
		}
	}
	loop->draining = 0;
}

/* Failures of the root group's tasks that no join retrieved (asyncio's
 * "Task exception was never retrieved"): reported when a run ends. */
static void report_root_failures(reap_loop *loop)
{
	reap_group *g = loop->root;

	if (g == NULL)
		return;
	group_reap(g, 1);
	if (g->chain == NULL)
		return;
	report_unretrieved(g->chain, "a loop run ended");
	reap_error_free(g->chain);
	g->chain = NULL;
	g->first = 0;
}

int reap_loop_run_at(reap_loop *loop, reap_task_fn main, void *arg,
		     void **result, const reap_site *site)
{
	reap_task *t;
	int rc;

	if ((rc = check_loop(loop, "reap_loop_run")) < 0)
		return rc;
	if ((rc = reap_task_spawn_at(loop->root, &(reap_task_opts){.name = "main"},
				     main, arg, &t, site)) < 0)
		return rc;
	loop->running = 1;
	while (loop->live > 0) {
		if (atomic_load(&loop->stop)) {
			drain(loop, "reap_loop_stop() was called");
			break;
		}
		turn(loop, 1);
		if (loop->live > 0 && !can_progress(loop)) {
			drain(loop, "no task can run again (each waits on another "
				    "task or on a primitive that no one will "
				    "signal)");
			break;
		}
	}
	loop->running = 0;
	atomic_store(&loop->stop, 0);
	report_root_failures(loop);
	if (t->state != T_DONE)
		return -EDEADLK; /* cannot happen: drain ends every task */
	return reap_task_join_until_at(t, result, REAP_FOREVER, site);
}

void reap_loop_stop(reap_loop *loop)
{
	atomic_store(&loop->stop, 1);
	reap__poll_wake(&loop->poll);
}

int reap_loop_fd(const reap_loop *loop)
{
	return reap__poll_fd(&loop->poll);
}

uint64_t reap_loop_timeout(reap_loop *loop)
{
	uint64_t next, now;

	if (loop->nready > 0 || atomic_load(&loop->done) != NULL)
		return 0;
	if (reap__timers_count(&loop->timers) == 0)
		return REAP_FOREVER;
	next = reap__timer_next(&loop->timers);
	now = reap_now_ns();
	return next > now ? next - now : 0;
}

int reap_loop_step(reap_loop *loop)
{
	int rc;

	if ((rc = check_loop(loop, "reap_loop_step")) < 0)
		return rc;
	loop->running = 1;
	turn(loop, 0);
	loop->running = 0;
	return (int)loop->live;
}

static void group_finish(reap_group *g, int *first, reap_error **chain);

static int loop_shut(reap_loop *loop)
{
	int first = 0;
	reap_error *chain = NULL;

	drain(loop, "the loop is closing");
	reap__blocking_stop(loop);
	if (loop->root != NULL) {
		reap_cleanup_cancel(loop->root->h);
		group_finish(loop->root, &first, &chain);
		loop->root = NULL;
		report_unretrieved(chain, "the loop closed");
		reap_error_free(chain);
	}
	/* The workers and whatever else the loop's scope holds. */
	(void)reap_scope_close(loop->scope);
	reap__poll_close(&loop->poll);
	reap__timers_fini(&loop->timers);
	reap_free(loop->fdw);
	loop->fdw = NULL;
	reap_free(loop->fdk);
	loop->fdk = NULL;
	loop->closed = 1;
	if (this_loop == loop)
		this_loop = NULL;
	return 0;
}

int reap_loop_close(reap_loop *loop)
{
	int rc;

	if ((rc = check_loop(loop, "reap_loop_close")) < 0)
		return rc;
	return loop_shut(loop);
}

static int loop_exit(void *arg, const reap_error *inflight)
{
	reap_loop *loop = arg;

	(void)inflight;
	if (!loop->closed) {
		if (loop->cur != NULL || loop->running)
			reap__misuse("the owner of a loop (created at %s:%d) closes "
				     "from inside the loop's own run",
				     loop->site->file, loop->site->line);
		loop_shut(loop);
	}
	loop->magic = DEAD_MAGIC;
	reap_free(loop);
	return 0;
}

void reap_loop_stats_get(const reap_loop *loop, reap_loop_stats *st)
{
	*st = loop->stats;
	st->steps_blocking = __atomic_load_n(&loop->stats.steps_blocking,
					     __ATOMIC_RELAXED);
	st->live = loop->live;
}

/* ------------------------------------------------------------------ */
/* Groups                                                               */

static reap_loop *loop_here(const reap_site *site, const char *what, int *rc)
{
	reap_loop *loop = this_loop;

	if (loop == NULL || loop->closed) {
		*rc = reap_raisef_at(site, -EPERM, "%s: no open loop on this "
				     "thread (create one with reap_loop_create())",
				     what);
		return NULL;
	}
	return loop;
}

static int group_exit(void *arg, const reap_error *inflight);

int reap_group_open_at(reap_scope *s, reap_group **out, const reap_site *site)
{
	reap_loop *loop;
	reap_group *g;
	int rc = 0;

	if ((loop = loop_here(site, "reap_group_open", &rc)) == NULL)
		return rc;
	if (s == NULL && (s = reap__current(reap__ts())) == NULL)
		return -ENOMEM;
	if ((g = reap_calloc(1, sizeof *g)) == NULL)
		return -ENOMEM;
	g->magic = GROUP_MAGIC;
	g->loop = loop;
	g->site = site;
	if ((rc = reap_scope_open_at(s, &g->scope, site)) < 0)
		goto fail;
	if ((rc = reap_scope_name(g->scope, "group")) < 0 ||
	    (rc = reap_defer_exit_at(s, &group_type, group_exit, g, &g->h, site)) < 0) {
		(void)reap_scope_close(g->scope);
		goto fail;
	}
	*out = g;
	return 0;
fail:
	reap_free(g);
	return rc;
}

void reap_group_cancel(reap_group *g)
{
	if (g->magic != GROUP_MAGIC)
		reap__misuse("reap_group_cancel() of a closed group");
	g->cancelled = 1;
	for (reap_task *t = g->head; t != NULL; t = t->gnext)
		reap_task_cancel(t);
}

/* Whether t's outcome is a failure (its own cancellation is not). */
static int task_failed(const reap_task *t)
{
	return t->rc < 0 && !(t->rc == -ECANCELED && t->cancelled);
}

/* Put t's failure at the head of g's chain: chains are newest first. */
static void group_record(reap_group *g, reap_task *t)
{
	reap_error *e = t->chain, *tail;

	t->chain = NULL;
	if (g->first == 0)
		g->first = t->rc; /* records come oldest first */
	if (e == NULL) {
		char msg[64];

		snprintf(msg, sizeof msg, "task \"%s\" failed", reap__task_name(t));
		if ((e = reap__error_new(t->rc, t->site, msg, NULL, NULL)) == NULL)
			return;
	}
	for (tail = e; tail->cause != NULL; tail = (reap_error *)tail->cause)
		;
	tail->cause = g->chain;
	g->chain = e;
}

static void group_unlink(reap_group *g, reap_task *t);

/*
 * Reap g's ended tasks that no join will retrieve (all of them, or only
 * the detached ones): their failures go into g's chain in the order they
 * happened (fail_seq), whatever the order of spawning; the others are
 * just freed.
 */
static void group_reap(reap_group *g, int only_detached)
{
	for (;;) {
		reap_task *pick = NULL;

		for (reap_task *t = g->head; t != NULL; t = t->gnext) {
			if (t->state != T_DONE || (only_detached && !t->detached))
				continue;
			if (t->fail_seq == 0) {
				pick = t;
				break;
			}
			if (pick == NULL || t->fail_seq < pick->fail_seq)
				pick = t;
		}
		if (pick == NULL)
			break;
		group_unlink(g, pick);
		if (pick->fail_seq != 0)
			group_record(g, pick);
		task_free(pick);
	}
}

static void group_unlink(reap_group *g, reap_task *t)
{
	DLIST_UNLINK(g->head, g->tail, t, gprev, gnext);
}

/* Wait until no task of g is alive: in a task, parked (a cancellation
 * cancels the children and the wait goes on); outside, running the loop. */
static void group_wait(reap_group *g)
{
	reap_loop *loop = g->loop;
	reap_task *self = reap__task_cur();

	if (self == NULL) {
		int was = loop->running;

		loop->running = 1;
		while (g->live > 0) {
			turn(loop, 1);
			if (g->live > 0 && !can_progress(loop)) {
				reap_group_cancel(g);
				drain(loop, "a task group closing outside any task "
					    "waits for tasks that nothing can wake");
			}
		}
		loop->running = was;
		return;
	}
	while (g->live > 0) {
		int rc;

		g->closer = self;
		rc = reap__park(self, REAP_FOREVER, "group close", g->site);
		g->closer = NULL;
		if (rc < 0) {
			reap_group_cancel(g);
			self->shield++; /* go on waiting, uninterrupted */
			while (g->live > 0) {
				g->closer = self;
				(void)reap__park(self, REAP_FOREVER, "group close",
						 g->site);
				g->closer = NULL;
			}
			self->shield--;
		}
	}
}

/* Wait for g's tasks, reap the ones nobody joined, close g's scope and
 * free g. The failures go to *first and *chain. */
static void group_finish(reap_group *g, int *first, reap_error **chain)
{
	g->closing = 1;
	group_wait(g);
	group_reap(g, 0);
	(void)reap_scope_close(g->scope);
	*first = g->first;
	*chain = g->chain;
	g->magic = DEAD_MAGIC;
	reap_free(g);
}

static void report_unretrieved(const reap_error *chain, const char *what)
{
	struct reap__rbuf rb;
	FILE *m;

	if (chain == NULL || (m = reap__report_open(&rb)) == NULL)
		return;
	fprintf(m, "reap: %s; %zu task failure(s) never retrieved:\n", what,
		reap_error_count(chain));
	reap_error_print(chain, m);
	reap__report_send(&rb);
}

int reap_group_close(reap_group *g, reap_error **chain)
{
	reap_task *self = reap__task_cur();
	reap_error *c = NULL;
	int first;

	if (g->magic != GROUP_MAGIC)
		reap__misuse("reap_group_close() of a group already closed");
	if (self != NULL && self->group == g)
		return reap_raisef(-EDEADLK, "reap_group_close() from task \"%s\", "
				   "a child of the group: it would wait for "
				   "itself", reap__task_name(self));
	if (g->is_root)
		return reap_raisef(-EINVAL, "the loop's root group closes with "
				   "the loop");
	reap_cleanup_cancel(g->h);
	group_finish(g, &first, &c);
	if (first == 0 && self != NULL && self->cancelled && self->shield == 0)
		first = -ECANCELED; /* the closer's own cancellation, as TaskGroup */
	if (chain != NULL)
		*chain = c;
	else {
		if (c != NULL && c->cause != NULL)
			report_unretrieved(c->cause, "reap_group_close() without a "
						     "chain returned the first failure only");
		reap_error_free(c);
	}
	return first;
}

static int group_exit(void *arg, const reap_error *inflight)
{
	reap_group *g = arg;
	reap_error *chain = NULL;
	int first;

	if (inflight != NULL)
		reap_group_cancel(g);
	if (g->is_root) {
		/* Only when the loop's scope closes without the loop: the
		 * loop closes first (it is older), so this is a loop that
		 * failed half-way through its creation. */
		g->loop->root = NULL;
	}
	group_finish(g, &first, &chain);
	if (first < 0) {
		int n = (int)reap_error_count(chain);

		if (n > 1)
			report_unretrieved(chain->cause, "a task group closed by its "
							 "owner returned the first failure");
		first = reap_raisef_at(g->site, first, "task group: %d task(s) "
				       "failed; first: %s", n,
				       chain && chain->msg ? chain->msg : reap_errname(first));
	}
	reap_error_free(chain);
	return first;
}

/* ------------------------------------------------------------------ */
/* Tasks                                                                */

static void task_main(void *arg)
{
	reap_task *t = arg;
	reap_loop *loop = t->loop;
	reap_error *chain = NULL;
	reap_task *n;
	int rc;

	bury(t->loop); /* the task that ended just before this one started */
	rc = t->fn(t->arg, &t->result);
	if (rc < 0) {
		struct reap__raise *r = reap__raise_take(rc);

		if (t->scope != NULL) {
			/* The failure is in flight while the task's cleanups
			 * run (they see it, as __exit__ does), and comes back
			 * with their own errors chained over it. */
			reap_scope_failf_at(t->scope, rc, r ? r->site : t->site,
					    r ? "%s" : NULL, r ? r->msg : "");
		} else {
			t->chain = reap__error_new(rc, r ? r->site : t->site,
						   r ? r->msg : NULL, reap__task_name(t), NULL);
		}
	}
	/* The task's scope closes here, in the task: cleanups may suspend. */
	if (t->scope != NULL) {
		int crc = reap_scope_close_err(t->scope, &chain);

		t->scope = NULL;
		if (crc < 0) {
			rc = rc < 0 ? rc : crc;
			t->chain = chain;
		} else {
			reap_error_free(chain);
		}
	}
	t->rc = rc;
	task_done(loop, t);
	/* The end goes straight to the next ready task while the turn's
	 * budget lasts, else to the scheduler; never back to whoever last
	 * handed the thread to this one. Whichever runs next gives this
	 * stack back first thing (bury()). */
	loop->zombie = t;
	if (loop->budget > 0 && (n = rq_pop(loop)) != NULL) {
		loop->budget--;
		leave(loop->ts, t);
		enter(loop, loop->ts, n);
		t->ctx.resumer = &n->ctx;
	} else {
		t->ctx.resumer = &loop->sched;
	}
}

/* Make the running task's scope, on first use (reap__current()). */
static reap_scope *task_scope(struct reap__tstate *ts)
{
	reap_task *t = ts->task;
	reap_scope *s;

	if (t->scope != NULL) /* set_current(NULL) was never allowed */
		return t->scope;
	if (reap_scope_open_at(t->group->scope, &s, t->site) < 0)
		return NULL;
	/* The scope's name is the task's (which outlives the scope): read
	 * by reporters on other threads, so stored as they load it. */
	WR(s->name, reap__task_name(t));
	t->scope = s;
	ts->current = s;
	return s;
}

static void task_unlink_all(reap_loop *loop, reap_task *t)
{
	DLIST_UNLINK(loop->ahead, loop->atail, t, aprev, anext);
}

/* Scheduler side of a task's end (its context finished). */
/* A task's end, on its own stack still: everything but giving that
 * stack back (bury()). */
static void task_done(reap_loop *loop, reap_task *t)
{
	reap_group *g = t->group;

	t->state = T_DONE;
	task_unlink_all(loop, t);
	loop->live--;
	g->live--;
	loop->stats.ended++;
	if (task_failed(t)) {
		loop->stats.failed++;
		t->fail_seq = ++g->nfail;
		if (!g->is_root && !g->cancelled) {
			reap_group_cancel(g);
		}
	}
	if (t->joiner != NULL)
		reap__wake(t->joiner, 0);
	if (g->live == 0 && g->closer != NULL)
		reap__wake(g->closer, 0);
}

/* First thing after a switch: the task that ended and switched here
 * gives its stack and context back, and is freed if detached and it did
 * not fail (a detached failure waits for its group, group_reap()). */
static void bury(reap_loop *loop)
{
	reap_task *t = loop->zombie;

	if (likely(t == NULL))
		return;
	loop->zombie = NULL;
	reap__ctx_destroy(&t->ctx);
	reap__stack_release(&t->stack);
	if (t->detached && t->fail_seq == 0) {
		group_unlink(t->group, t);
		task_free(t);
	}
}

static void task_free(reap_task *t)
{
	reap_error_free(t->chain);
	t->magic = DEAD_MAGIC;
	reap__block_free(t, sizeof *t);
}

int reap_task_spawn_at(reap_group *g, const reap_task_opts *opts,
		       reap_task_fn fn, void *arg, reap_task **out,
		       const reap_site *site)
{
	reap_loop *loop;
	reap_task *t;
	size_t stack;
	int rc = 0;

	if (g == NULL) {
		if ((loop = loop_here(site, "reap_task_spawn", &rc)) == NULL)
			return rc;
		g = loop->root;
	} else {
		if (g->magic != GROUP_MAGIC)
			reap__misuse("reap_task_spawn() at %s:%d into a group that "
				     "was closed and freed", site->file, site->line);
		loop = g->loop;
		if (!pthread_equal(loop->thread, pthread_self()))
			return reap_raisef_at(site, -EPERM, "reap_task_spawn() "
					      "off the loop's thread");
	}
	if (g->closing || loop->closed)
		return reap_raisef_at(site, REAP_ECLOSED, "reap_task_spawn() into "
				      "a task group that is closing or closed "
				      "(opened at %s:%d); nothing runs",
				      g->site->file, g->site->line);
	if ((t = reap__block_alloc(sizeof *t)) == NULL)
		return -ENOMEM;
	t->name[0] = '\0';
	stack = opts && opts->stack_size ? opts->stack_size : loop->opts.stack_size;
	if ((rc = reap__stack_acquire(&t->stack, stack)) < 0)
		goto fail_t;
	if (opts && opts->name)
		snprintf(t->name, sizeof t->name, "%s", opts->name);
	/* Every field before `made`, one by one: a memset of the whole
	 * prefix costs more than the stores (rep stos starts slowly). */
	t->magic = TASK_MAGIC;
	t->state = T_READY;
	t->detached = out == NULL;
	t->cancelled = 0;
	t->loop = loop;
	t->group = g;
	t->scope = t->cur = t->closing = NULL;
	t->err_no = 0;
	t->rc = 0;
	t->fn = fn;
	t->arg = arg;
	t->result = NULL;
	t->chain = NULL;
	t->fail_seq = 0;
	t->site = site;
	t->num = ++loop->next_num;
	t->t0_ms = loop->now_ms;
	t->cleanup_reported = 0;
	t->rnext = NULL;
	t->wait_what = NULL;
	t->wait_site = NULL;
	t->wait_fd = -1;
	t->wake_rc = 0;
	t->timer = 0;
	t->joiner = NULL;
	t->shield = t->closes = 0;
	t->dl = NULL;
	reap__ctx_make(&t->ctx, &t->stack, task_main, t);
	/* Link: the group's list, the loop's list, the ready queue. */
	DLIST_APPEND(g->head, g->tail, t, gprev, gnext);
	g->live++;
	DLIST_APPEND(loop->ahead, loop->atail, t, aprev, anext);
	loop->live++;
	loop->stats.spawned++;
	rq_push(loop, t);
	if (g->cancelled || loop->draining)
		reap_task_cancel(t); /* it starts cancelled */
	if (out != NULL)
		*out = t;
	return 0;

fail_t:
	reap__block_free(t, sizeof *t);
	return rc;
}

int reap_task_join_until_at(reap_task *t, void **result, uint64_t deadline_ns,
			    const reap_site *site)
{
	reap_task *self = reap__task_cur();
	reap_loop *loop;
	int rc;

	if (t->magic != TASK_MAGIC)
		reap__misuse("reap_task_join() at %s:%d of a task that was "
			     "joined already or freed", site->file, site->line);
	loop = t->loop;
	if (t->detached)
		return reap_raisef_at(site, -EINVAL, "reap_task_join(): task \"%s\" "
				      "was spawned without a handle", reap__task_name(t));
	if (t == self)
		return reap_raisef_at(site, -EDEADLK, "task \"%s\" joins itself",
				      reap__task_name(t));
	if (t->joiner != NULL)
		return reap_raisef_at(site, -EBUSY, "task \"%s\" has a joiner "
				      "already", reap__task_name(t));
	if (self == NULL) {
		int was = loop->running;

		if (!pthread_equal(loop->thread, pthread_self()))
			return reap_raisef_at(site, -EPERM, "reap_task_join() off "
					      "the loop's thread");
		loop->running = 1;
		while (t->state != T_DONE) {
			if (deadline_ns != REAP_FOREVER && reap_now_ns() >= deadline_ns) {
				loop->running = was;
				loop->block_until = REAP_FOREVER;
				return -ETIMEDOUT;
			}
			loop->block_until = deadline_ns; /* turn() blocks no longer */
			turn(loop, 1);
			if (t->state != T_DONE && !can_progress(loop) &&
			    deadline_ns == REAP_FOREVER)
				drain(loop, "a join outside any task waits for a "
					    "task that nothing can wake");
		}
		loop->block_until = REAP_FOREVER;
		loop->running = was;
	} else {
		while (t->state != T_DONE) {
			t->joiner = self;
			rc = reap__park(self, deadline_ns, "join", site);
			t->joiner = NULL;
			if (rc == W_OWN)
				return -ETIMEDOUT;
			if (rc < 0)
				return rc;
		}
	}
	rc = t->rc;
	if (result != NULL)
		*result = t->result;
	group_unlink(t->group, t);
	task_free(t);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Sleep, yield, fds                                                    */

int reap_sleep_at(uint64_t ns, const reap_site *site)
{
	reap_task *t = reap__task_cur();
	uint64_t at;
	int rc;

	if (t == NULL)
		return reap_cancel_sleep(NULL, ns);
	if (ns == 0)
		return reap_yield_at(site); /* as asyncio.sleep(0): no timer */
	at = reap_now_ns();
	at = reap__add_sat(at, ns);
	rc = reap__park(t, at, "sleep", site);
	return rc == W_OWN ? 0 : rc;
}

int reap_yield_at(const reap_site *site)
{
	reap_task *t = reap__task_cur();
	int rc;

	if (t == NULL)
		return 0;
	if ((rc = interrupted(t)) != 0)
		return rc;
	if (t->loop->nready == 0 && t->loop->budget > 0) {
		/* Nobody else is ready: the turn goes on with this task,
		 * in a new step as far as the detector is concerned. */
		t->loop->budget--;
		new_step(t->loop);
		return 0;
	}
	t->wait_what = "yield";
	t->wait_site = site;
	t->state = T_READY;
	rq_push(t->loop, t);
	switch_away(t->loop, t);
	t->wait_what = NULL;
	return interrupted(t); /* a cancellation that came meanwhile */
}

_Static_assert((unsigned)REAP_READ == (unsigned)REAP__POLL_READ &&
	       (unsigned)REAP_WRITE == (unsigned)REAP__POLL_WRITE,
	       "reap_wait_fd()'s events are the poller's");

/* Make room for fd in fdw and fdk. A failure leaves nfdw as it was (fdw
 * may have grown already: harmless). */
static int grow_fdw(reap_loop *loop, int fd)
{
	int n = loop->nfdw ? loop->nfdw : 64;
	reap_task **w;
	unsigned char *k;

	while (n <= fd)
		n *= 2;
	if ((w = reap_realloc(loop->fdw, (size_t)n * sizeof *w)) == NULL)
		return -ENOMEM;
	loop->fdw = w;
	if ((k = reap_realloc(loop->fdk, (size_t)n)) == NULL)
		return -ENOMEM;
	loop->fdk = k;
	memset(w + loop->nfdw, 0, (size_t)(n - loop->nfdw) * sizeof *w);
	memset(k + loop->nfdw, 0, (size_t)(n - loop->nfdw));
	loop->nfdw = n;
	return 0;
}

int reap__loop_fd_keep(int fd)
{
	reap_task *t = reap__task_cur();
	reap_loop *loop;
	int rc;

	if (t == NULL || fd < 0)
		return -EINVAL;
	loop = t->loop;
	if (fd == loop->poll.fd || fd == loop->poll.wake_rd || fd == loop->poll.wake_wr)
		return -EINVAL;
	if (fd >= loop->nfdw && (rc = grow_fdw(loop, fd)) < 0)
		return rc;
	/* Interest unknown (0) if not kept yet: a one-shot may be left from
	 * an earlier wait; the first wait replaces it. */
	loop->fdk[fd] |= FDK_KEPT;
	return 0;
}

void reap__loop_fd_forget(int fd)
{
	reap_task *t = reap__task_cur();
	reap_loop *loop;
	unsigned on;

	if (t == NULL || fd < 0 || fd >= t->loop->nfdw)
		return;
	loop = t->loop;
	if (!(loop->fdk[fd] & FDK_KEPT))
		return;
	on = loop->fdk[fd] & ~FDK_KEPT;
	loop->fdk[fd] = 0;
	if (on == 0)
		return;
	/* A task waiting meanwhile is woken by a one-shot, as if fd had
	 * never been kept; otherwise nothing is left registered. */
	if (loop->fdw[fd] == NULL ||
	    reap__poll_arm(&loop->poll, fd, on, NULL) < 0)
		(void)reap__poll_set(&loop->poll, fd, 0, NULL);
}

int reap_wait_fd_at(int fd, unsigned events, uint64_t deadline_ns,
		    const reap_site *site)
{
	reap_task *t = reap__task_cur();
	reap_loop *loop;
	int rc;

	if (events == 0 || (events & ~(unsigned)(REAP_READ | REAP_WRITE)))
		return reap_raisef_at(site, -EINVAL, "reap_wait_fd(): events must "
				      "be REAP_READ and/or REAP_WRITE");
	if (fd < 0)
		return -EBADF;
	if (t == NULL) {
		short pe = (short)((events & REAP_READ ? POLLIN : 0) |
				   (events & REAP_WRITE ? POLLOUT : 0));

		rc = reap_cancel_wait_fd(NULL, fd, pe, deadline_ns);
		if (rc <= 0)
			return rc == 0 ? -ETIMEDOUT : rc;
		if (rc & POLLNVAL)
			return -EBADF;
		return (rc & (POLLIN | POLLERR | POLLHUP) ? REAP_READ : 0) |
		       (rc & (POLLOUT | POLLERR | POLLHUP) ? REAP_WRITE : 0);
	}
	loop = t->loop;
	if ((rc = interrupted(t)) != 0)
		return rc;
	if (fd >= loop->nfdw && (rc = grow_fdw(loop, fd)) < 0)
		return rc;
	if (loop->fdw[fd] != NULL && loop->fdw[fd] != t)
		return reap_raisef_at(site, -EEXIST, "reap_wait_fd(): task \"%s\" "
				      "waits on fd %d already", loop->fdw[fd]->name,
				      fd);
	if (loop->fdk[fd] & FDK_KEPT) {
		/* Left on after the wait: see reap__loop_fd_keep(). */
		if ((loop->fdk[fd] & ~FDK_KEPT) != events) {
			if ((rc = reap__poll_set(&loop->poll, fd, events, NULL)) < 0) {
				loop->fdk[fd] = FDK_KEPT;
				return rc;
			}
			loop->fdk[fd] = (unsigned char)(FDK_KEPT | events);
		}
	} else if ((rc = reap__poll_arm(&loop->poll, fd, events, NULL)) < 0) {
		return rc;
	}
	loop->fdw[fd] = t;
	t->wait_fd = fd;
	loop->fd_waits++;
	rc = reap__park(t, deadline_ns, events & REAP_WRITE ? "fd (write)" : "fd (read)",
			site);
	loop->fd_waits--;
	loop->fdw[fd] = NULL;
	t->wait_fd = -1;
	if (rc == W_OWN)
		return -ETIMEDOUT;
	if (rc > 0)
		rc &= (int)events;
	return rc == 0 ? (int)events : rc;
}

/* ------------------------------------------------------------------ */
/* Asynchronous close                                                   */

int reap_defer_async_at(reap_scope *s, reap_type *type, reap_aclose_fn fn,
			void *arg, reap_cleanup **h, const reap_site *site)
{
	return reap_defer_exit_at(s, type ? type : &reap_type_async_close, fn,
				  arg, h, site);
}

/* ------------------------------------------------------------------ */
/* Introspection                                                        */

/* The live entries of s, newest first. */
static size_t scope_entries(const reap_scope *s, FILE *f, int depth)
{
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (struct reap__chunk *c = s->chunk; c != NULL; c = c->prev) {
		reap_cleanup *end = c == s->chunk ? s->top : reap__chunk_end(c);

		for (reap_cleanup *e = end; e-- > reap__chunk_first(c);) {
			struct reap__key *k;
			char site[256], desc[64] = "";

			if (reap__is_seg_header(e) || !(e->kf & F_LIVE))
				continue;
			n++;
			if (f == NULL)
				continue;
			k = &reap__keys[KF_KEY(e->kf)];
			if (F_KIND_OF(e->kf) == E_CHILD) {
				const reap_scope *cs = e->arg;

				fprintf(f, "%*s- scope%s%s%s, opened at %s\n", depth * 2 + 6, "",
					cs->name ? " \"" : "", cs->name ? cs->name : "",
					cs->name ? "\"" : "",
					reap__site_str(cs->site, site, sizeof site));
				if (depth < 3)
					scope_entries(cs, f, depth + 1);
				continue;
			}
			if (k->type && k->type->describe)
				k->type->describe(e->arg, desc, sizeof desc);
			fprintf(f, "%*s- %s%s%s, created at %s\n", depth * 2 + 6, "",
				k->type ? k->type->name : "resource", desc[0] ? " " : "",
				desc, reap__site_str(k->site, site, sizeof site));
		}
	}
	return n;
}

/* Scans a stack that holds live frames: ASan's redzones there are not
 * errors of ours. */
__attribute__((no_sanitize_address))
static size_t stack_used(const reap_task *t)
{
	const uint64_t *p = (const uint64_t *)(const void *)t->stack.lo;
	const uint64_t *end = (const uint64_t *)(const void *)(t->stack.lo + t->stack.size);

	if (t->state == T_DONE || t->stack.lo == NULL)
		return 0;
	while (p < end && *p == 0)
		p++;
	return (size_t)((const char *)end - (const char *)p);
}

size_t reap_loop_tasks(reap_loop *loop, reap_task_info *out, size_t cap)
{
	uint32_t now_ms = reap__now_ms();
	size_t n = 0;

	for (reap_task *t = loop->ahead; t != NULL; t = t->anext, n++) {
		reap_task_info *i;

		if (n >= cap)
			continue;
		i = &out[n];
		memset(i, 0, sizeof *i);
		i->task = t;
		memcpy(i->name, reap__task_name(t), sizeof i->name);
		i->state = (reap_task_state)t->state;
		i->site = t->site;
		i->wait_site = t->state == T_WAITING ? t->wait_site : NULL;
		i->wait_what = t->state == T_WAITING ? t->wait_what : NULL;
		i->age_ns = (uint64_t)(now_ms - t->t0_ms) * 1000000u;
		i->resources = scope_entries(t->scope, NULL, 0);
		i->stack_size = t->stack.size;
		i->stack_used = stack_used(t);
		i->cancelled = t->cancelled;
	}
	return n;
}

static const char *state_name(int s)
{
	static const char *names[] = {"ready", "running", "waiting", "done"};

	return names[s & 3];
}

static size_t report_tasks(reap_loop *loop, FILE *f, const char *why)
{
	uint32_t now_ms = reap__now_ms();
	size_t n = 0;
	char site[256];

	if (why != NULL)
		fprintf(f, "reap: %u task(s) still pending in the loop created at "
			   "%s (%s); they are cancelled and run to their end:\n",
			loop->live, reap__site_str(loop->site, site, sizeof site), why);
	for (reap_task *t = loop->ahead; t != NULL; t = t->anext, n++) {
		uint64_t age = (uint64_t)(now_ms - t->t0_ms) * 1000000u;

		fprintf(f, "  task \"%s\" (%s%s), spawned at %s, age %llu ms\n",
			reap__task_name(t), state_name(t->state), t->cancelled ? ", cancelled" : "",
			reap__site_str(t->site, site, sizeof site),
			(unsigned long long)(age / 1000000u));
		if (t->state == T_WAITING)
			fprintf(f, "    waits in %s at %s\n",
				t->wait_what ? t->wait_what : "a wait",
				reap__site_str(t->wait_site, site, sizeof site));
		if (scope_entries(t->scope, NULL, 0) > 0) {
			fprintf(f, "    it holds:\n");
			scope_entries(t->scope, f, 0);
		}
	}
	return n;
}

size_t reap_loop_report(reap_loop *loop, FILE *f)
{
	return report_tasks(loop, f, NULL);
}
