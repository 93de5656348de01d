/*
 * loop: the event loop's API (reap/loop.h). Runs, spawns and joins,
 * cancellation at every suspension point, shields, deadline regions,
 * group failure semantics, asynchronous close, the pending-task report,
 * stop and embedding, the blocking detector, reap_to_thread(), channels,
 * events and semaphores, introspection, and bad input.
 *
 * Every test opens a scope, creates its loop in it and closes the scope
 * before it returns, so that the runner's end-of-test check (no live
 * resource, no live block) covers the loop too.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sys/resource.h>

#include "../runner.h"
#include "../../src/loop/ctx.h"
#include "../../src/loop/loop_internal.h"

#define MS 1000000ull

static reap_scope *T_scope;
static reap_loop *T_loop;

static void open_loop(const reap_loop_opts *o)
{
	ASSERT_OK(reap_scope_open(NULL, &T_scope));
	if (o != NULL)
		ASSERT_OK(reap_loop_create_opts(T_scope, o, &T_loop));
	else
		ASSERT_OK(reap_loop_create(T_scope, &T_loop));
	ASSERT_EQ_PTR(reap_loop_current(), T_loop);
}

static void close_loop(void)
{
	ASSERT_OK(reap_scope_close(T_scope));
	T_scope = NULL;
	T_loop = NULL;
	ASSERT_NULL(reap_loop_current());
	/* Every task gave its stack back: none is left mapped once this
	 * thread's cache is emptied. */
	reap__stack_cache_drain();
	ASSERT_EQ_INT(reap__stack_mapped(), 0);
}

static int run_main(reap_task_fn fn, void *arg)
{
	return reap_loop_run(T_loop, fn, arg, NULL);
}

/* A test that runs main in a fresh loop and closes it. */
#define LOOP_TEST(name, main)                                               \
	TEST(name)                                                          \
	{                                                                   \
		open_loop(NULL);                                            \
		ASSERT_OK(run_main(main, NULL));                            \
		close_loop();                                               \
	}

static uint64_t ms_since(uint64_t t0)
{
	return (reap_now_ns() - t0) / MS;
}

/* ------------------------------------------------------------------ */
/* Run basics                                                           */

static int main_result(void *arg, void **result)
{
	*result = arg;
	return -EIO;
}

static int main_ok(void *arg, void **result)
{
	(void)result;
	*(int *)arg += 1;
	return 0;
}

TEST(loop_run_returns_main_outcome_and_result)
{
	int x = 0;
	void *res = NULL;

	open_loop(NULL);
	ASSERT_EQ_INT(reap_loop_run(T_loop, main_result, &x, &res), -EIO);
	ASSERT_EQ_PTR(res, &x);
	/* The loop runs again. */
	ASSERT_EQ_INT(reap_loop_run(T_loop, main_ok, &x, NULL), 0);
	ASSERT_EQ_INT(x, 1);
	close_loop();
}

TEST(loop_second_on_thread_is_ebusy)
{
	reap_loop *other = (reap_loop *)(uintptr_t)0x77;
	reap_scope *s2;

	open_loop(NULL);
	ASSERT_OK(reap_scope_open(NULL, &s2));
	ASSERT_EQ_INT(reap_loop_create(s2, &other), -EBUSY);
	ASSERT_EQ_PTR(other, (reap_loop *)(uintptr_t)0x77);
	ASSERT_OK(reap_scope_close(s2));
	close_loop();
	/* A bad option: nothing is made. */
	ASSERT_OK(reap_scope_open(NULL, &s2));
	ASSERT_EQ_INT(reap_loop_create_opts(s2, &(reap_loop_opts){.stack_size = (size_t)4 << 30},
					    &other), -EINVAL);
	ASSERT_EQ_PTR(other, (reap_loop *)(uintptr_t)0x77);
	ASSERT_NULL(reap_loop_current());
	ASSERT_OK(reap_scope_close(s2));
	/* Once the first is gone, a new one may be created. */
	open_loop(NULL);
	close_loop();
}

static int run_from_task(void *arg, void **result)
{
	(void)arg;
	(void)result;
	ASSERT_EQ_INT(reap_loop_run(T_loop, main_ok, arg, NULL), -EBUSY);
	ASSERT_EQ_INT(reap_loop_step(T_loop), -EBUSY);
	ASSERT_EQ_INT(reap_loop_close(T_loop), -EBUSY);
	return 0;
}

TEST(loop_run_from_task_is_ebusy_and_closed_loop_is_eclosed)
{
	int x = 0;

	open_loop(NULL);
	ASSERT_OK(run_main(run_from_task, &x));
	ASSERT_EQ_INT(x, 0);
	ASSERT_OK(reap_loop_close(T_loop));
	ASSERT_EQ_INT(reap_loop_close(T_loop), REAP_ECLOSED);
	ASSERT_EQ_INT(reap_loop_run(T_loop, main_ok, &x, NULL), REAP_ECLOSED);
	ASSERT_EQ_INT(x, 0);
	close_loop();
}

struct order {
	int log[64];
	int n;
};

struct ord_arg {
	struct order *o;
	int id;
};

static int log_id(void *arg, void **result)
{
	struct ord_arg *a = arg;

	(void)result;
	a->o->log[a->o->n++] = a->id;
	return 0;
}

static int main_fifo(void *arg, void **result)
{
	struct order *o = arg;
	struct ord_arg a[6];
	reap_group *g;

	(void)result;
	ASSERT_OK(reap_group_open(NULL, &g));
	for (int i = 0; i < 6; i++) {
		a[i] = (struct ord_arg){o, i + 1};
		ASSERT_OK(reap_task_spawn(g, log_id, &a[i], NULL));
	}
	ASSERT_EQ_INT(o->n, 0); /* queued, not run */
	ASSERT_OK(reap_yield());
	/* All ran before the yielding task came back, in spawn order. */
	ASSERT_EQ_INT(o->n, 6);
	o->log[o->n++] = 100;
	return reap_group_close(g, NULL);
}

TEST(loop_spawn_runs_fifo)
{
	struct order o = {{0}, 0};

	open_loop(NULL);
	ASSERT_OK(run_main(main_fifo, &o));
	ASSERT_EQ_INT(o.n, 7);
	for (int i = 0; i < 6; i++)
		ASSERT_EQ_INT(o.log[i], i + 1);
	ASSERT_EQ_INT(o.log[6], 100);
	close_loop();
}

static int child_result(void *arg, void **result)
{
	ASSERT_OK(reap_sleep(2 * MS));
	*result = arg;
	return (int)(intptr_t)arg == 1 ? -EPIPE : 0;
}

static int main_join(void *arg, void **result)
{
	reap_task *a, *b;
	void *r = NULL;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, child_result, (void *)(intptr_t)1, &a));
	ASSERT_OK(reap_task_spawn(NULL, child_result, (void *)(intptr_t)2, &b));
	ASSERT_EQ_INT(reap_task_join(a, &r), -EPIPE);
	ASSERT_EQ_PTR(r, (void *)(intptr_t)1);
	ASSERT_OK(reap_sleep(10 * MS)); /* b is done by now: joined ended */
	ASSERT_EQ_INT(reap_task_join(b, &r), 0);
	ASSERT_EQ_PTR(r, (void *)(intptr_t)2);
	/* Join itself. */
	ASSERT_EQ_INT(reap_task_join(reap_task_self(), NULL), -EDEADLK);
	return 0;
}

TEST(loop_join_returns_outcome_and_result)
{
	open_loop(NULL);
	test_reports_clear();
	ASSERT_OK(run_main(main_join, NULL));
	/* The failure was retrieved by the join: nobody reports it. */
	ASSERT_TRUE(strstr(test_reports(), "EPIPE") == NULL);
	close_loop();
}

static atomic_int counter;

static int detached_child(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_sleep((uint64_t)(intptr_t)arg * MS));
	counter++;
	return (intptr_t)arg == 3 ? -EIO : 0;
}

static int main_detached(void *arg, void **result)
{
	reap_group *g;
	reap_error *chain = NULL;
	int rc;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_group_open(NULL, &g));
	ASSERT_OK(reap_task_spawn(g, detached_child, (void *)(intptr_t)1, NULL));
	ASSERT_OK(reap_task_spawn(g, detached_child, (void *)(intptr_t)2, NULL));
	ASSERT_OK(reap_task_spawn(g, detached_child, (void *)(intptr_t)3, NULL));
	rc = reap_group_close(g, &chain);
	ASSERT_EQ_INT(counter, 3); /* waited for all */
	ASSERT_EQ_INT(rc, -EIO);   /* the detached failure was collected */
	ASSERT_EQ_SIZE(reap_error_count(chain), 1);
	ASSERT_EQ_INT(chain->code, -EIO);
	reap_error_free(chain);
	return 0;
}

TEST(loop_detached_tasks_are_waited_for_and_collected)
{
	counter = 0;
	open_loop(NULL);
	ASSERT_OK(run_main(main_detached, NULL));
	close_loop();
}

struct closed_arg {
	reap_group *g;
	int rc;
};

static int spawn_into_closing(void *arg, void **result)
{
	struct closed_arg *c = arg;
	reap_task *t = (reap_task *)(uintptr_t)0x55;

	(void)result;
	ASSERT_OK(reap_sleep(5 * MS)); /* the owner is in close by now */
	c->rc = reap_task_spawn(c->g, main_ok, &counter, &t);
	ASSERT_EQ_PTR(t, (reap_task *)(uintptr_t)0x55);
	return 0;
}

static int main_closed_group(void *arg, void **result)
{
	struct closed_arg *c = arg;

	(void)result;
	ASSERT_OK(reap_group_open(NULL, &c->g));
	ASSERT_OK(reap_task_spawn(c->g, spawn_into_closing, c, NULL));
	ASSERT_OK(reap_group_close(c->g, NULL));
	ASSERT_OK(reap_sleep(5 * MS));
	return 0;
}

TEST(loop_spawn_into_closing_group_is_eclosed)
{
	struct closed_arg c = {NULL, 1};

	counter = 0;
	open_loop(NULL);
	ASSERT_OK(run_main(main_closed_group, &c));
	ASSERT_EQ_INT(c.rc, REAP_ECLOSED);
	ASSERT_EQ_INT(counter, 0); /* nothing ran */
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Cancellation at every suspension point                               */

enum {
	K_SLEEP,
	K_YIELD,
	K_FD,
	K_SEND,
	K_RECV,
	K_EVENT,
	K_SEM,
	K_JOIN,
	K_TO_THREAD,
	K_GROUP_CLOSE,
	K_COUNT
};

static const char *kind_name[K_COUNT] = {"sleep", "yield", "fd", "send", "recv",
					 "event", "sem", "join", "to_thread",
					 "group close"};

struct victim {
	int kind;
	int pre; /* cancelled before it reaches the suspension */
	reap_chan *ch;
	reap_event *ev;
	reap_sem *sem;
	int fd;
	reap_task *other; /* joined by K_JOIN */
	atomic_int started, saw_cancel;
	int reached, rc, child_rc;
	int after; /* the suspension after it */
	int yields, yields_at_cancel;
};

static int sleep_forever_ish(void *arg, void **result)
{
	int *rc = arg;

	(void)result;
	*rc = reap_sleep(10000 * MS);
	return *rc;
}

static int job_until_cancelled(void *arg, void **result)
{
	struct victim *v = arg;
	uint64_t t0 = reap_now_ns();

	(void)result;
	v->started = 1;
	while (!reap_job_cancelled() && reap_now_ns() - t0 < 5000 * MS)
		usleep(500);
	v->saw_cancel = reap_job_cancelled();
	return 0;
}

static int victim_fn(void *arg, void **result)
{
	struct victim *v = arg;
	reap_group *g;

	(void)result;
	v->reached = 1;
	switch (v->kind) {
	case K_SLEEP:
		v->rc = reap_sleep(10000 * MS);
		break;
	case K_YIELD:
		/* Yield until cancelled: main cancels while we are queued,
		 * so the yield under way must be the one to say so. */
		while ((v->rc = reap_yield()) == 0 && v->yields < 1000000)
			v->yields++;
		break;
	case K_FD:
		v->rc = reap_wait_fd(v->fd, REAP_READ, REAP_FOREVER);
		break;
	case K_SEND:
		v->rc = reap_chan_send(v->ch, v, REAP_FOREVER);
		break;
	case K_RECV: {
		void *item = NULL;

		v->rc = reap_chan_recv(v->ch, &item, REAP_FOREVER);
		ASSERT_NULL(item);
		break;
	}
	case K_EVENT:
		v->rc = reap_event_wait(v->ev, REAP_FOREVER);
		break;
	case K_SEM:
		v->rc = reap_sem_acquire(v->sem, REAP_FOREVER);
		break;
	case K_JOIN:
		v->rc = reap_task_join(v->other, NULL);
		break;
	case K_TO_THREAD:
		v->rc = reap_to_thread(job_until_cancelled, v, NULL, NULL);
		break;
	case K_GROUP_CLOSE:
		ASSERT_OK(reap_group_open(NULL, &g));
		ASSERT_OK(reap_task_spawn(g, sleep_forever_ish, &v->child_rc, NULL));
		v->rc = reap_group_close(g, NULL);
		break;
	}
	v->after = reap_sleep(1 * MS);
	return v->rc;
}

static int main_cancel_kind(void *arg, void **result)
{
	struct victim *v = arg;
	reap_task *t;
	int p[2] = {-1, -1}, other_rc = 0;
	int rc;

	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 0, &v->ch));
	ASSERT_OK(reap_event_create(NULL, &v->ev));
	ASSERT_OK(reap_sem_create(NULL, 0, &v->sem));
	ASSERT_EQ_INT(pipe(p), 0);
	v->fd = p[0];
	ASSERT_OK(reap_task_spawn(NULL, sleep_forever_ish, &other_rc, &v->other));
	ASSERT_OK(reap_task_spawn(NULL, victim_fn, v, &t));
	if (v->pre) {
		reap_task_cancel(t);
	} else {
		/* Let it reach its wait (to_thread: until the worker runs). */
		ASSERT_OK(reap_sleep(5 * MS));
		for (int i = 0; i < 5000 && v->kind == K_TO_THREAD && !v->started; i++)
			ASSERT_OK(reap_sleep(1 * MS));
		ASSERT_TRUE(v->reached);
		v->yields_at_cancel = v->yields;
		reap_task_cancel(t);
	}
	rc = reap_task_join(t, NULL);
	ASSERT_TRUE(v->reached);
	if (rc != -ECANCELED || v->rc != -ECANCELED)
		test_fail(__FILE__, __LINE__, "%s (cancelled %s): the suspension "
			  "returned %d (%s), the task %d", kind_name[v->kind],
			  v->pre ? "before" : "while waiting", v->rc,
			  reap_errname(v->rc), rc);
	ASSERT_EQ_INT(v->after, -ECANCELED); /* sticky */
	if (v->kind == K_YIELD)
		ASSERT_EQ_INT(v->yields, v->yields_at_cancel);
	if (v->kind == K_TO_THREAD && !v->pre)
		ASSERT_TRUE(v->saw_cancel);
	if (v->kind == K_TO_THREAD && v->pre)
		ASSERT_FALSE(v->started); /* never ran */
	if (v->kind == K_GROUP_CLOSE)
		ASSERT_EQ_INT(v->child_rc, -ECANCELED);
	/* The joined task is still joinable after its joiner was cancelled. */
	reap_task_cancel(v->other);
	ASSERT_EQ_INT(reap_task_join(v->other, NULL), -ECANCELED);
	ASSERT_EQ_INT(other_rc, -ECANCELED);
	close(p[0]);
	close(p[1]);
	return 0;
}

static void cancel_kind(int kind, int pre)
{
	struct victim v;

	memset(&v, 0, sizeof v);
	v.kind = kind;
	v.pre = pre;
	v.rc = 12345;
	open_loop(NULL);
	ASSERT_OK(run_main(main_cancel_kind, &v));
	close_loop();
}

TEST(loop_cancel_while_waiting_in_sleep) { cancel_kind(K_SLEEP, 0); }
TEST(loop_cancel_before_sleep) { cancel_kind(K_SLEEP, 1); }
TEST(loop_cancel_while_waiting_in_yield) { cancel_kind(K_YIELD, 0); }
TEST(loop_cancel_before_yield) { cancel_kind(K_YIELD, 1); }
TEST(loop_cancel_while_waiting_in_wait_fd) { cancel_kind(K_FD, 0); }
TEST(loop_cancel_before_wait_fd) { cancel_kind(K_FD, 1); }
TEST(loop_cancel_while_waiting_in_chan_send) { cancel_kind(K_SEND, 0); }
TEST(loop_cancel_before_chan_send) { cancel_kind(K_SEND, 1); }
TEST(loop_cancel_while_waiting_in_chan_recv) { cancel_kind(K_RECV, 0); }
TEST(loop_cancel_before_chan_recv) { cancel_kind(K_RECV, 1); }
TEST(loop_cancel_while_waiting_in_event_wait) { cancel_kind(K_EVENT, 0); }
TEST(loop_cancel_before_event_wait) { cancel_kind(K_EVENT, 1); }
TEST(loop_cancel_while_waiting_in_sem_acquire) { cancel_kind(K_SEM, 0); }
TEST(loop_cancel_before_sem_acquire) { cancel_kind(K_SEM, 1); }
TEST(loop_cancel_while_waiting_in_task_join) { cancel_kind(K_JOIN, 0); }
TEST(loop_cancel_before_task_join) { cancel_kind(K_JOIN, 1); }
TEST(loop_cancel_while_waiting_in_to_thread) { cancel_kind(K_TO_THREAD, 0); }
TEST(loop_cancel_before_to_thread) { cancel_kind(K_TO_THREAD, 1); }
TEST(loop_cancel_while_waiting_in_group_close) { cancel_kind(K_GROUP_CLOSE, 0); }
TEST(loop_cancel_before_group_close) { cancel_kind(K_GROUP_CLOSE, 1); }

/* ------------------------------------------------------------------ */
/* Shields                                                              */

struct shielded {
	int sleeps[3];
	int end_rc, after;
	uint64_t took_ms;
};

static int shielded_fn(void *arg, void **result)
{
	struct shielded *s = arg;
	uint64_t t0 = reap_now_ns();

	(void)result;
	reap_shield_begin();
	for (int i = 0; i < 3; i++)
		s->sleeps[i] = reap_sleep(10 * MS);
	s->took_ms = ms_since(t0);
	s->end_rc = reap_shield_end();
	s->after = reap_sleep(1000 * MS);
	return s->after;
}

static int main_shield(void *arg, void **result)
{
	struct shielded *s = arg;
	int repeated = s->end_rc;
	reap_task *t;

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, shielded_fn, s, &t));
	ASSERT_OK(reap_sleep(3 * MS));
	reap_task_cancel(t);
	if (repeated) {
		for (int i = 0; i < 4; i++) {
			ASSERT_OK(reap_sleep(4 * MS));
			reap_task_cancel(t);
		}
	}
	ASSERT_EQ_INT(reap_task_join(t, NULL), -ECANCELED);
	return 0;
}

static void shield_test(int repeated)
{
	struct shielded s;

	memset(&s, 0, sizeof s);
	s.end_rc = repeated;
	open_loop(NULL);
	ASSERT_OK(run_main(main_shield, &s));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(s.sleeps[i], 0);
	ASSERT_GE_INT(s.took_ms, 29);
	ASSERT_EQ_INT(s.end_rc, -ECANCELED);
	ASSERT_EQ_INT(s.after, -ECANCELED);
	close_loop();
}

TEST(loop_shield_holds_one_cancel) { shield_test(0); }
TEST(loop_shield_holds_repeated_cancels) { shield_test(1); }

/* ------------------------------------------------------------------ */
/* Deadline regions                                                     */

struct dl_case {
	int which; /* 0 inner fires, 1 outer fires, 2 external cancel */
	int wait_rc, inner_end, outer_end, between;
	uint64_t took_ms;
};

static int dl_fn(void *arg, void **result)
{
	struct dl_case *c = arg;
	reap_deadline outer, inner;
	uint64_t now = reap_now_ns(), t0 = now;

	(void)result;
	reap_deadline_begin(&outer, c->which == 1 ? now + 20 * MS : now + 5000 * MS);
	reap_deadline_begin(&inner, c->which == 0 ? now + 20 * MS : now + 4000 * MS);
	c->wait_rc = reap_sleep(10000 * MS);
	c->took_ms = ms_since(t0);
	c->inner_end = reap_deadline_end(&inner);
	c->between = reap_sleep(1 * MS);
	c->outer_end = reap_deadline_end(&outer);
	return 0;
}

static int main_dl(void *arg, void **result)
{
	struct dl_case *c = arg;
	reap_task *t;

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, dl_fn, c, &t));
	if (c->which == 2) {
		ASSERT_OK(reap_sleep(10 * MS));
		reap_task_cancel(t);
	}
	ASSERT_OK(reap_task_join(t, NULL));
	return 0;
}

TEST(loop_deadline_inner_fires)
{
	struct dl_case c = {.which = 0};

	open_loop(NULL);
	ASSERT_OK(run_main(main_dl, &c));
	ASSERT_EQ_INT(c.wait_rc, -ETIMEDOUT);
	ASSERT_GE_INT(c.took_ms, 19);
	ASSERT_LT_INT(c.took_ms, 3000);
	ASSERT_EQ_INT(c.inner_end, -ETIMEDOUT);
	ASSERT_EQ_INT(c.between, 0); /* the outer region has not fired */
	ASSERT_EQ_INT(c.outer_end, 0);
	close_loop();
}

TEST(loop_deadline_outer_fires_inside_inner)
{
	struct dl_case c = {.which = 1};

	open_loop(NULL);
	ASSERT_OK(run_main(main_dl, &c));
	ASSERT_EQ_INT(c.wait_rc, -ETIMEDOUT);
	ASSERT_GE_INT(c.took_ms, 19);
	ASSERT_LT_INT(c.took_ms, 3000);
	ASSERT_EQ_INT(c.inner_end, 0);
	ASSERT_EQ_INT(c.between, -ETIMEDOUT); /* still inside the fired outer */
	ASSERT_EQ_INT(c.outer_end, -ETIMEDOUT);
	close_loop();
}

TEST(loop_deadline_external_cancel_inside_both)
{
	struct dl_case c = {.which = 2};

	open_loop(NULL);
	ASSERT_OK(run_main(main_dl, &c));
	ASSERT_EQ_INT(c.wait_rc, -ECANCELED);
	ASSERT_LT_INT(c.took_ms, 3000);
	ASSERT_EQ_INT(c.inner_end, 0);
	ASSERT_EQ_INT(c.outer_end, 0);
	ASSERT_EQ_INT(c.between, -ECANCELED);
	close_loop();
}

struct dl_shield {
	int in_shield, end_shield, after, end_region;
	int inner_wait, inner_end;
	uint64_t took_ms;
};

static int dl_shield_fn(void *arg, void **result)
{
	struct dl_shield *c = arg;
	reap_deadline outer, inner;
	uint64_t t0 = reap_now_ns();

	(void)result;
	reap_deadline_begin(&outer, t0 + 15 * MS);
	reap_shield_begin();
	c->in_shield = reap_sleep(40 * MS); /* the region is held back */
	c->took_ms = ms_since(t0);
	/* A region opened inside the shield still fires. */
	reap_deadline_begin(&inner, reap_now_ns() + 10 * MS);
	c->inner_wait = reap_sleep(5000 * MS);
	c->inner_end = reap_deadline_end(&inner);
	c->end_shield = reap_shield_end();
	c->after = reap_sleep(5000 * MS); /* the held region fires at once */
	c->end_region = reap_deadline_end(&outer);
	return 0;
}

TEST(loop_deadline_outside_shield_is_held_back)
{
	struct dl_shield c;
	uint64_t t0;

	memset(&c, 0, sizeof c);
	open_loop(NULL);
	t0 = reap_now_ns();
	ASSERT_OK(run_main(dl_shield_fn, &c));
	ASSERT_LT_INT(ms_since(t0), 3000);
	ASSERT_EQ_INT(c.in_shield, 0);
	ASSERT_GE_INT(c.took_ms, 39);
	ASSERT_EQ_INT(c.inner_wait, -ETIMEDOUT);
	ASSERT_EQ_INT(c.inner_end, -ETIMEDOUT);
	ASSERT_EQ_INT(c.end_shield, 0);
	ASSERT_EQ_INT(c.after, -ETIMEDOUT);
	ASSERT_EQ_INT(c.end_region, -ETIMEDOUT);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Group failure semantics                                              */

struct sib {
	int delay_ms;   /* fail after this long; 0: sleep until cancelled */
	int fail_code;  /* what it returns when it fails */
	int on_cancel;  /* what it returns once cancelled (0: the rc) */
	int rc;         /* what its wait returned */
};

static int sibling(void *arg, void **result)
{
	struct sib *s = arg;

	(void)result;
	if (s->delay_ms > 0) {
		s->rc = reap_sleep((uint64_t)s->delay_ms * MS);
		return s->rc == 0 ? s->fail_code : s->rc;
	}
	s->rc = reap_sleep(10000 * MS);
	if (s->rc == -ECANCELED && s->on_cancel)
		return s->on_cancel;
	return s->rc;
}

struct grp_case {
	struct sib sibs[4];
	int n;
	int cancel_group; /* main cancels the group after 5 ms */
	int close_rc;
	size_t chain_n;
	int codes[4];
	int late_rc; /* a spawn after the cancel: its first sleep */
};

static int late_child(void *arg, void **result)
{
	int *rc = arg;

	(void)result;
	*rc = reap_sleep(1000 * MS);
	return *rc;
}

static int main_group(void *arg, void **result)
{
	struct grp_case *c = arg;
	reap_error *chain = NULL;
	reap_group *g;

	(void)result;
	ASSERT_OK(reap_group_open(NULL, &g));
	for (int i = 0; i < c->n; i++)
		ASSERT_OK(reap_task_spawn(g, sibling, &c->sibs[i], NULL));
	if (c->cancel_group) {
		ASSERT_OK(reap_sleep(5 * MS));
		reap_group_cancel(g);
		c->late_rc = 1;
		ASSERT_OK(reap_task_spawn(g, late_child, &c->late_rc, NULL));
	}
	c->close_rc = reap_group_close(g, &chain);
	c->chain_n = reap_error_count(chain);
	{
		const reap_error *e = chain;

		for (int i = 0; i < 4 && e != NULL; i++, e = e->cause)
			c->codes[i] = e->code;
	}
	reap_error_free(chain);
	return 0;
}

TEST(loop_group_first_failure_cancels_siblings)
{
	struct grp_case c;

	memset(&c, 0, sizeof c);
	c.n = 3;
	c.sibs[0] = (struct sib){.delay_ms = 5, .fail_code = -EIO};
	open_loop(NULL);
	ASSERT_OK(run_main(main_group, &c));
	ASSERT_EQ_INT(c.close_rc, -EIO);
	ASSERT_EQ_INT(c.sibs[1].rc, -ECANCELED);
	ASSERT_EQ_INT(c.sibs[2].rc, -ECANCELED);
	/* The siblings' -ECANCELED are not failures. */
	ASSERT_EQ_SIZE(c.chain_n, 1);
	ASSERT_EQ_INT(c.codes[0], -EIO);
	close_loop();
}

TEST(loop_group_chain_holds_every_failure)
{
	struct grp_case c;

	memset(&c, 0, sizeof c);
	c.n = 4;
	c.sibs[0] = (struct sib){.delay_ms = 5, .fail_code = -EIO};
	c.sibs[1] = (struct sib){.on_cancel = -EPIPE};   /* fails on its way out */
	c.sibs[2] = (struct sib){0};                      /* just cancelled */
	c.sibs[3] = (struct sib){.on_cancel = -ENOSPC};
	open_loop(NULL);
	test_reports_clear();
	ASSERT_OK(run_main(main_group, &c));
	/* The close returns the first failure; the chain holds them all,
	 * newest first (loop.h), so the first failure is the last link. */
	ASSERT_EQ_INT(c.close_rc, -EIO);
	ASSERT_EQ_SIZE(c.chain_n, 3);
	ASSERT_EQ_INT(c.codes[2], -EIO);
	ASSERT_TRUE((c.codes[0] == -EPIPE && c.codes[1] == -ENOSPC) ||
		    (c.codes[0] == -ENOSPC && c.codes[1] == -EPIPE));
	ASSERT_EQ_INT(c.sibs[2].rc, -ECANCELED);
	close_loop();
}

TEST(loop_group_cancel_is_not_a_failure)
{
	struct grp_case c;

	memset(&c, 0, sizeof c);
	c.n = 3;
	c.cancel_group = 1;
	open_loop(NULL);
	ASSERT_OK(run_main(main_group, &c));
	ASSERT_EQ_INT(c.close_rc, 0);
	ASSERT_EQ_SIZE(c.chain_n, 0);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(c.sibs[i].rc, -ECANCELED);
	/* A spawn after the cancel starts cancelled. */
	ASSERT_EQ_INT(c.late_rc, -ECANCELED);
	close_loop();
}

struct owner_case {
	int rcs[3];
	int close_rc;
	uint64_t took_ms;
};

static int main_owner_inflight(void *arg, void **result)
{
	struct owner_case *c = arg;
	reap_scope *s;
	reap_group *g;
	uint64_t t0;

	(void)result;
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_group_open(s, &g));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(reap_task_spawn(g, sleep_forever_ish, &c->rcs[i], NULL));
	ASSERT_OK(reap_sleep(2 * MS));
	t0 = reap_now_ns();
	reap_scope_fail(s, -EIO);
	c->close_rc = reap_scope_close(s);
	c->took_ms = ms_since(t0);
	return 0;
}

TEST(loop_group_owner_closing_with_error_cancels_children)
{
	struct owner_case c;

	memset(&c, 0, sizeof c);
	open_loop(NULL);
	ASSERT_OK(run_main(main_owner_inflight, &c));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(c.rcs[i], -ECANCELED);
	ASSERT_EQ_INT(c.close_rc, -EIO);
	ASSERT_LT_INT(c.took_ms, 3000);
	close_loop();
}

/* loop.h: "A task's failure carries its cleanups' errors chained over it
 * (they ran with the failure in flight)" and "An owner that closes with
 * an error in flight cancels the children": a group in the scope of a
 * task that returns a failure has its children cancelled at once. */
static int failing_owner(void *arg, void **result)
{
	struct owner_case *c = arg;
	reap_group *g;

	(void)result;
	ASSERT_OK(reap_group_open(NULL, &g)); /* the task's scope owns it */
	for (int i = 0; i < 3; i++)
		ASSERT_OK(reap_task_spawn(g, sleep_forever_ish, &c->rcs[i], NULL));
	ASSERT_OK(reap_sleep(2 * MS));
	return -EIO;
}

static int main_failing_owner(void *arg, void **result)
{
	struct owner_case *c = arg;
	reap_task *t;
	uint64_t t0 = reap_now_ns();

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, failing_owner, c, &t));
	c->close_rc = reap_task_join(t, NULL);
	c->took_ms = ms_since(t0);
	return 0;
}

TEST(loop_group_in_failing_task_scope_cancels_children)
{
	struct owner_case c;

	memset(&c, 0, sizeof c);
	open_loop(NULL);
	ASSERT_OK(run_main(main_failing_owner, &c));
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(c.rcs[i], -ECANCELED);
	ASSERT_EQ_INT(c.close_rc, -EIO); /* its outcome: what it returned */
	ASSERT_LT_INT(c.took_ms, 3000);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Asynchronous close                                                   */

struct aclose {
	struct order o;
	int id;
	int sleeps_ms;
	int rcs[8];
	int nrc;
	uint64_t took_ms;
	struct acl_entry {
		struct aclose *a;
		int id;
	} e[4];
};

static void plain_cleanup(void *arg)
{
	struct acl_entry *e = arg;

	e->a->o.log[e->a->o.n++] = e->id;
}

static int async_cleanup(void *arg, const reap_error *inflight)
{
	struct acl_entry *e = arg;
	struct aclose *a = e->a;

	(void)inflight;
	for (int i = 0; i < a->sleeps_ms / 5; i++)
		a->rcs[a->nrc++ % 8] = reap_sleep(5 * MS);
	a->o.log[a->o.n++] = e->id;
	return 0;
}

static int aclose_task(void *arg, void **result)
{
	struct aclose *a = arg;
	struct acl_entry *e = a->e;

	(void)result;
	for (int i = 0; i < 4; i++) {
		e[i] = (struct acl_entry){a, i + 1};
		if (i % 2 == 0)
			ASSERT_OK(reap_defer(NULL, plain_cleanup, &e[i], NULL));
		else
			ASSERT_OK(reap_defer_async(NULL, NULL, async_cleanup, &e[i],
						   NULL));
	}
	return reap_sleep(a->id ? 10000 * MS : 0);
}

static int main_aclose(void *arg, void **result)
{
	struct aclose *a = arg;
	reap_task *t;
	uint64_t t0 = reap_now_ns();
	int rc;

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, aclose_task, a, &t));
	if (a->id) { /* cancel it, then again while it closes */
		ASSERT_OK(reap_sleep(3 * MS));
		reap_task_cancel(t);
		ASSERT_OK(reap_sleep(7 * MS));
		reap_task_cancel(t);
	}
	rc = reap_task_join(t, NULL);
	a->took_ms = ms_since(t0);
	return rc;
}

static void aclose_test(int cancelled)
{
	struct aclose a;

	memset(&a, 0, sizeof a);
	a.id = cancelled;
	a.sleeps_ms = 15;
	open_loop(NULL);
	ASSERT_EQ_INT(run_main(main_aclose, &a), cancelled ? -ECANCELED : 0);
	ASSERT_EQ_INT(a.o.n, 4);
	ASSERT_EQ_INT(a.o.log[0], 4);
	ASSERT_EQ_INT(a.o.log[1], 3);
	ASSERT_EQ_INT(a.o.log[2], 2);
	ASSERT_EQ_INT(a.o.log[3], 1);
	ASSERT_EQ_INT(a.nrc, 6);
	for (int i = 0; i < 6; i++)
		ASSERT_EQ_INT(a.rcs[i], 0); /* not cut short */
	ASSERT_GE_INT(a.took_ms, 29);
	close_loop();
}

TEST(loop_aclose_lifo_with_plain_cleanups) { aclose_test(0); }
TEST(loop_aclose_not_cut_short_by_cancels) { aclose_test(1); }

struct stuck {
	int rc;
	uint64_t took_ms;
};

static int stuck_cleanup(void *arg, const reap_error *inflight)
{
	struct stuck *s = arg;
	uint64_t t0 = reap_now_ns();

	(void)inflight;
	s->rc = reap_sleep(10000 * MS);
	s->took_ms = ms_since(t0);
	return 0;
}

static int stuck_task(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_defer_async(NULL, NULL, stuck_cleanup, arg, NULL));
	return 0;
}

static int main_stuck(void *arg, void **result)
{
	reap_task *t;

	(void)result;
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "closer"},
				       stuck_task, arg, &t));
	return reap_task_join(t, NULL);
}

TEST(loop_aclose_cleanup_limit_reports_stuck_cleanup)
{
	reap_loop_opts o = {.cleanup_limit_ns = 50 * MS};
	struct stuck s = {1, 0};

	open_loop(&o);
	test_reports_clear();
	ASSERT_OK(run_main(main_stuck, &s));
	ASSERT_EQ_INT(s.rc, -ETIMEDOUT);
	ASSERT_GE_INT(s.took_ms, 45);
	ASSERT_LT_INT(s.took_ms, 3000);
	ASSERT_CONTAINS(test_reports(), "closer");
	ASSERT_CONTAINS(test_reports(), "cleanup limit");
	ASSERT_CONTAINS(test_reports(), "sleep"); /* what it waited in */
	close_loop();
}

/* A scope that closes outside any task runs its asynchronous cleanups
 * with the blocking forms of the suspension points. */
static int aclose_outside(void *arg, const reap_error *inflight)
{
	int *rc = arg;

	(void)inflight;
	ASSERT_NULL(reap_task_self());
	*rc = reap_sleep(5 * MS);
	return 0;
}

TEST(loop_aclose_outside_task_blocks)
{
	reap_scope *s;
	int rc = 1;
	uint64_t t0;

	open_loop(NULL);
	ASSERT_OK(reap_scope_open(T_scope, &s));
	ASSERT_OK(reap_defer_async(s, NULL, aclose_outside, &rc, NULL));
	t0 = reap_now_ns();
	ASSERT_OK(reap_scope_close(s));
	ASSERT_EQ_INT(rc, 0);
	ASSERT_GE_INT(ms_since(t0), 4);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* The pending-task report                                              */

struct pending {
	reap_chan *ch;
	int rc;
	int cleaned;
};

static void pending_cleanup(void *arg)
{
	((struct pending *)arg)->cleaned++;
}

static int pending_task(void *arg, void **result)
{
	struct pending *p = arg;
	reap_event *e;
	void *item = NULL;

	(void)result;
	ASSERT_OK(reap_event_create(NULL, &e)); /* what its scope holds */
	ASSERT_OK(reap_defer(NULL, pending_cleanup, p, NULL));
	p->rc = reap_chan_recv(p->ch, &item, REAP_FOREVER);
	return p->rc;
}

static int main_pending(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "forgotten"},
				       pending_task, arg, NULL));
	return 0;
}

TEST(loop_pending_task_report)
{
	struct pending p = {NULL, 1, 0};
	uint64_t t0;
	const char *r;

	open_loop(NULL);
	/* The channel outlives main's scope: it is the test's. */
	ASSERT_OK(reap_chan_create(T_scope, 1, &p.ch));
	test_reports_clear();
	t0 = reap_now_ns();
	ASSERT_OK(run_main(main_pending, &p));
	ASSERT_LT_INT(ms_since(t0), 3000);
	r = test_reports();
	ASSERT_CONTAINS(r, "forgotten");
	ASSERT_CONTAINS(r, "tests/loop/test_loop.c");
	ASSERT_CONTAINS(r, "channel receive");
	ASSERT_CONTAINS(r, "it holds");
	ASSERT_CONTAINS(r, "- event, created at");
	ASSERT_EQ_INT(p.rc, -ECANCELED);
	ASSERT_EQ_INT(p.cleaned, 1);
	close_loop();
}

static int main_leaves_task(void *arg, void **result)
{
	(void)result;
	(void)arg;
	return 0;
}

TEST(loop_close_cancels_and_reports_live_tasks)
{
	struct pending p = {NULL, 1, 0};

	open_loop(NULL);
	ASSERT_OK(reap_chan_create(T_scope, 0, &p.ch));
	ASSERT_OK(run_main(main_leaves_task, NULL));
	/* Spawned outside a run, never run: the close must end it. */
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "orphan"},
				       pending_task, &p, NULL));
	test_reports_clear();
	ASSERT_OK(reap_loop_close(T_loop));
	ASSERT_CONTAINS(test_reports(), "orphan");
	ASSERT_EQ_INT(p.cleaned, 1);
	close_loop();
}

/* A task that its cleanup spawns while the loop drains (close or stop)
 * is refused or cancelled too: the drain must not wait 10 s for it. */
struct late {
	int spawn_rc, late_rc;
	uint64_t late_ms;
};

static int late_sleeper(void *arg, void **result)
{
	struct late *l = arg;
	uint64_t t0 = reap_now_ns();

	(void)result;
	l->late_rc = reap_sleep(10000 * MS);
	l->late_ms = ms_since(t0);
	return l->late_rc;
}

static int spawn_in_cleanup(void *arg, const reap_error *inflight)
{
	struct late *l = arg;

	(void)inflight;
	l->spawn_rc = reap_task_spawn(NULL, late_sleeper, l, NULL);
	return 0;
}

static int drained_task(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_defer_async(NULL, NULL, spawn_in_cleanup, arg, NULL));
	return reap_sleep(10000 * MS);
}

static void check_late(const struct late *l)
{
	if (l->spawn_rc == 0) {
		ASSERT_EQ_INT(l->late_rc, -ECANCELED);
		ASSERT_LT_INT(l->late_ms, 3000);
	} else {
		ASSERT_EQ_INT(l->spawn_rc, REAP_ECLOSED);
	}
}

TEST(loop_close_ends_tasks_spawned_while_draining)
{
	struct late l = {1, 1, 0};
	uint64_t t0;

	open_loop(NULL);
	ASSERT_OK(reap_task_spawn(NULL, drained_task, &l, NULL));
	ASSERT_EQ_INT(reap_loop_step(T_loop), 1); /* it runs, and sleeps */
	t0 = reap_now_ns();
	ASSERT_OK(reap_loop_close(T_loop));
	ASSERT_LT_INT(ms_since(t0), 3000);
	check_late(&l);
	close_loop();
}

static void *stop_soon(void *arg)
{
	usleep(20 * 1000);
	reap_loop_stop(arg);
	return NULL;
}

static int main_drained(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, drained_task, arg, NULL));
	return reap_sleep(10000 * MS);
}

TEST(loop_stop_ends_tasks_spawned_while_draining)
{
	struct late l = {1, 1, 0};
	pthread_t th;
	uint64_t t0;

	open_loop(NULL);
	t0 = reap_now_ns();
	ASSERT_EQ_INT(pthread_create(&th, NULL, stop_soon, T_loop), 0);
	ASSERT_EQ_INT(run_main(main_drained, &l), -ECANCELED);
	ASSERT_EQ_INT(pthread_join(th, NULL), 0);
	ASSERT_LT_INT(ms_since(t0), 3000);
	check_late(&l);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Stop and embedding                                                   */

static void *stopper(void *arg)
{
	usleep(50 * 1000);
	reap_loop_stop(arg);
	return NULL;
}

static int main_sleeps(void *arg, void **result)
{
	int *rc = arg;

	(void)result;
	*rc = reap_sleep(10000 * MS);
	return *rc;
}

TEST(loop_stop_from_another_thread)
{
	pthread_t th;
	int rc = 1;
	uint64_t t0;

	open_loop(NULL);
	test_reports_clear();
	t0 = reap_now_ns();
	ASSERT_EQ_INT(pthread_create(&th, NULL, stopper, T_loop), 0);
	ASSERT_EQ_INT(run_main(main_sleeps, &rc), -ECANCELED);
	ASSERT_EQ_INT(pthread_join(th, NULL), 0);
	ASSERT_LT_INT(ms_since(t0), 5000);
	ASSERT_GE_INT(ms_since(t0), 45);
	ASSERT_EQ_INT(rc, -ECANCELED);
	ASSERT_CONTAINS(test_reports(), "reap_loop_stop");
	close_loop();
}

/* "Make the current or next reap_loop_run() end": a stop before the run
 * ends the next run. */
TEST(loop_stop_before_run_ends_next_run)
{
	int rc = 1;
	uint64_t t0;

	open_loop(NULL);
	test_reports_clear();
	reap_loop_stop(T_loop);
	t0 = reap_now_ns();
	ASSERT_EQ_INT(run_main(main_sleeps, &rc), -ECANCELED);
	ASSERT_LT_INT(ms_since(t0), 5000);
	ASSERT_EQ_INT(rc, -ECANCELED);
	/* Spent: the run after it is not stopped. */
	ASSERT_OK(run_main(main_ok, &rc));
	close_loop();
}

static int main_join_deadline(void *arg, void **result)
{
	reap_task *t;
	int rc = 1;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, sleep_forever_ish, &rc, &t));
	ASSERT_EQ_INT(reap_task_join_until(t, NULL, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	ASSERT_EQ_INT(rc, 1); /* still running, still joinable */
	{
		/* A region that fires around the join: the same. */
		reap_deadline d;

		reap_deadline_begin(&d, reap_now_ns() + 5 * MS);
		ASSERT_EQ_INT(reap_task_join(t, NULL), -ETIMEDOUT);
		ASSERT_EQ_INT(reap_yield(), -ETIMEDOUT); /* the region fired */
		ASSERT_EQ_INT(reap_deadline_end(&d), -ETIMEDOUT);
		ASSERT_OK(reap_yield());
	}
	ASSERT_EQ_INT(rc, 1);
	reap_task_cancel(t);
	ASSERT_EQ_INT(reap_task_join(t, NULL), -ECANCELED);
	ASSERT_EQ_INT(rc, -ECANCELED);
	return 0;
}

LOOP_TEST(loop_join_deadline_leaves_task_joinable, main_join_deadline)

struct embed {
	int fd;
	int sleep_rc, fd_rc;
	int done;
};

static int embedded_task(void *arg, void **result)
{
	struct embed *e = arg;

	(void)result;
	e->sleep_rc = reap_sleep(20 * MS);
	e->fd_rc = reap_wait_fd(e->fd, REAP_READ, REAP_FOREVER);
	e->done = 1;
	return 0;
}

TEST(loop_embedding_step_fd_timeout)
{
	struct embed e = {0, 1, 1, 0};
	int p[2], n, steps = 0, wrote = 0;
	uint64_t t0;

	open_loop(NULL);
	ASSERT_EQ_INT(pipe(p), 0);
	e.fd = p[0];
	ASSERT_OK(reap_task_spawn(NULL, embedded_task, &e, NULL));
	ASSERT_EQ_SIZE(reap_loop_timeout(T_loop), 0); /* a task is ready */
	ASSERT_GE_INT(reap_loop_fd(T_loop), 0);
	t0 = reap_now_ns();
	while ((n = reap_loop_step(T_loop)) > 0) {
		uint64_t to = reap_loop_timeout(T_loop);
		struct pollfd pfd = {reap_loop_fd(T_loop), POLLIN, 0};
		int ms = to == REAP_FOREVER ? 2000 : (int)((to + MS - 1) / MS);

		ASSERT_EQ_INT(n, 1);
		ASSERT_LT_INT(++steps, 1000);
		ASSERT_LT_INT(ms_since(t0), 5000);
		if (e.sleep_rc == 0 && !wrote && to == REAP_FOREVER) {
			/* The task waits on the pipe now: nothing is due and the
			 * fd is quiet until we write. */
			ASSERT_EQ_INT(poll(&pfd, 1, 0), 0);
			ASSERT_EQ_INT(write(p[1], "x", 1), 1);
			wrote = 1;
		}
		ASSERT_GE_INT(poll(&pfd, 1, ms), 0);
	}
	ASSERT_EQ_INT(n, 0);
	ASSERT_TRUE(e.done);
	ASSERT_EQ_INT(e.sleep_rc, 0);
	ASSERT_EQ_INT(e.fd_rc, REAP_READ);
	ASSERT_TRUE(wrote);
	ASSERT_GE_INT(ms_since(t0), 19);
	close(p[0]);
	close(p[1]);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* The blocking detector                                                */

static int spinner(void *arg, void **result)
{
	uint64_t t0 = reap_now_ns();

	(void)arg;
	(void)result;
	while (reap_now_ns() - t0 < 200 * MS)
		;
	return 0;
}

static int main_spin(void *arg, void **result)
{
	reap_task *t;

	(void)result;
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "spinner"},
				       (reap_task_fn)arg, NULL, &t));
	return reap_task_join(t, NULL);
}

TEST(loop_blocking_detector_reports_spinning_task)
{
	reap_loop_opts o = {.detect_blocking = true, .blocking_ns = 50 * MS};
	reap_loop_stats st;

	open_loop(&o);
	test_reports_clear();
	ASSERT_OK(run_main(main_spin, (void *)spinner));
	reap_loop_stats_get(T_loop, &st);
	close_loop(); /* joins the watchdog, which wrote the report */
	ASSERT_GE_INT(st.steps_blocking, 1);
	ASSERT_CONTAINS(test_reports(), "spinner");
	ASSERT_CONTAINS(test_reports(), "blocking");
}

static int fast_yielder(void *arg, void **result)
{
	uint64_t t0 = reap_now_ns();

	(void)arg;
	(void)result;
	while (reap_now_ns() - t0 < 300 * MS) {
		uint64_t t1 = reap_now_ns();

		while (reap_now_ns() - t1 < 1 * MS)
			;
		ASSERT_OK(reap_yield());
	}
	return 0;
}

TEST(loop_blocking_detector_quiet_for_fast_steps)
{
	reap_loop_opts o = {.detect_blocking = true, .blocking_ns = 50 * MS};
	reap_loop_stats st;

	open_loop(&o);
	test_reports_clear();
	ASSERT_OK(run_main(main_spin, (void *)fast_yielder));
	reap_loop_stats_get(T_loop, &st);
	close_loop();
	ASSERT_EQ_INT(st.steps_blocking, 0);
	ASSERT_TRUE(strstr(test_reports(), "blocking") == NULL);
}

static int usleeper(void *arg, void **result)
{
	(void)arg;
	(void)result;
	usleep(1000);
	return 0;
}

TEST(loop_blocking_detector_reports_usleep)
{
	reap_loop_opts o = {.detect_blocking = true, .blocking_ns = 50 * MS};

	open_loop(&o);
	test_reports_clear();
	ASSERT_OK(run_main(main_spin, (void *)usleeper));
	close_loop();
	ASSERT_CONTAINS(test_reports(), "spinner");
	ASSERT_CONTAINS(test_reports(), "usleep");
	ASSERT_CONTAINS(test_reports(), "blocking");
}

/* ------------------------------------------------------------------ */
/* reap_to_thread                                                       */

struct offl {
	int in;
	pthread_t caller;
	atomic_int started, saw_cancel, other_thread;
	void *made;
	int rc;
};

static int offl_square(void *arg, void **result)
{
	struct offl *o = arg;

	o->other_thread = !pthread_equal(o->caller, pthread_self());
	*result = (void *)(intptr_t)(o->in * o->in);
	return 0;
}

static int main_offl(void *arg, void **result)
{
	struct offl local = {.in = 12}; /* on the task's stack */
	void *res = NULL;

	(void)arg;
	(void)result;
	local.caller = pthread_self();
	ASSERT_OK(reap_to_thread(offl_square, &local, NULL, &res));
	ASSERT_EQ_PTR(res, (void *)(intptr_t)144);
	ASSERT_TRUE(local.other_thread);
	return 0;
}

TEST(loop_to_thread_result)
{
	reap_loop_stats st;

	open_loop(NULL);
	ASSERT_OK(run_main(main_offl, NULL));
	reap_loop_stats_get(T_loop, &st);
	ASSERT_EQ_INT(st.offloaded, 1);
	close_loop();
}

static atomic_int dropped;
static void *dropped_ptr;

static void drop_result(void *r)
{
	dropped++;
	dropped_ptr = r;
	reap_free(r);
}

static int offl_slow(void *arg, void **result)
{
	struct offl *o = arg;
	uint64_t t0 = reap_now_ns();

	o->started = 1;
	while (!reap_job_cancelled() && reap_now_ns() - t0 < 5000 * MS)
		usleep(500);
	o->saw_cancel = reap_job_cancelled();
	usleep(10 * 1000); /* the task waits for this, shielded */
	o->made = reap_malloc(32);
	*result = o->made;
	return 0;
}

static int offl_victim(void *arg, void **result)
{
	struct offl *o = arg;
	void *res = (void *)(uintptr_t)0x1;

	(void)result;
	o->rc = reap_to_thread(offl_slow, o, drop_result, &res);
	ASSERT_TRUE(res == NULL || res == (void *)(uintptr_t)0x1);
	return o->rc;
}

static int main_offl_cancel(void *arg, void **result)
{
	struct offl *o = arg;
	reap_task *t;

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, offl_victim, o, &t));
	for (int i = 0; i < 5000 && !o->started; i++)
		ASSERT_OK(reap_sleep(1 * MS));
	ASSERT_TRUE(o->started);
	reap_task_cancel(t);
	ASSERT_EQ_INT(reap_task_join(t, NULL), -ECANCELED);
	return 0;
}

TEST(loop_to_thread_cancelled_drops_result)
{
	struct offl o;

	memset(&o, 0, sizeof o);
	dropped = 0;
	dropped_ptr = NULL;
	open_loop(NULL);
	ASSERT_OK(run_main(main_offl_cancel, &o));
	ASSERT_EQ_INT(o.rc, -ECANCELED);
	ASSERT_TRUE(o.saw_cancel);
	ASSERT_EQ_INT(dropped, 1);
	ASSERT_NOT_NULL(o.made);
	ASSERT_EQ_PTR(dropped_ptr, o.made);
	close_loop();
}

static int main_offl_region(void *arg, void **result)
{
	struct offl *o = arg;
	reap_deadline d;
	void *res = (void *)(uintptr_t)0x1;

	struct offl warm = {.in = 3, .caller = pthread_self()};
	void *sq = NULL;

	(void)result;
	/* The first call starts the workers; under an emulator that can
	 * take longer than the region below. */
	ASSERT_OK(reap_to_thread(offl_square, &warm, NULL, &sq));
	ASSERT_EQ_PTR(sq, (void *)(intptr_t)9);
	reap_deadline_begin(&d, reap_now_ns() + 100 * MS);
	o->rc = reap_to_thread(offl_slow, o, drop_result, &res);
	ASSERT_EQ_INT(reap_deadline_end(&d), -ETIMEDOUT);
	ASSERT_NULL(res);
	ASSERT_OK(reap_yield()); /* not cancelled: only the region fired */
	return 0;
}

TEST(loop_to_thread_region_fires_drops_result)
{
	struct offl o;

	memset(&o, 0, sizeof o);
	dropped = 0;
	dropped_ptr = NULL;
	open_loop(NULL);
	ASSERT_OK(run_main(main_offl_region, &o));
	ASSERT_EQ_INT(o.rc, -ETIMEDOUT);
	ASSERT_TRUE(o.started);
	ASSERT_TRUE(o.saw_cancel);
	ASSERT_EQ_INT(dropped, 1);
	ASSERT_EQ_PTR(dropped_ptr, o.made);
	close_loop();
}

TEST(loop_to_thread_outside_task_is_eperm)
{
	struct offl o = {.in = 2};

	ASSERT_EQ_INT(reap_to_thread(offl_square, &o, NULL, NULL), -EPERM);
	open_loop(NULL);
	ASSERT_EQ_INT(reap_to_thread(offl_square, &o, NULL, NULL), -EPERM);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Channels, events, semaphores                                         */

struct chq {
	reap_chan *ch;
	struct order o;
	int rcs[16];
	int n;
	uint64_t sent_at_ms, t0;
};

static int producer(void *arg, void **result)
{
	struct chq *q = arg;

	(void)result;
	for (int i = 1; i <= 4; i++) {
		int rc = reap_chan_send(q->ch, (void *)(intptr_t)i, REAP_FOREVER);

		q->rcs[q->n++] = rc;
		q->o.log[q->o.n++] = i; /* sent */
	}
	q->sent_at_ms = ms_since(q->t0);
	return 0;
}

static int main_buffered(void *arg, void **result)
{
	struct chq *q = arg;
	reap_task *t;
	void *item;

	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 2, &q->ch));
	q->t0 = reap_now_ns();
	ASSERT_OK(reap_task_spawn(NULL, producer, q, &t));
	ASSERT_OK(reap_sleep(10 * MS));
	/* Two went into the buffer, the third waits. */
	ASSERT_EQ_INT(q->o.n, 2);
	ASSERT_EQ_SIZE(reap_chan_len(q->ch), 2);
	for (int i = 1; i <= 4; i++) {
		ASSERT_OK(reap_chan_recv(q->ch, &item, REAP_FOREVER));
		ASSERT_EQ_PTR(item, (void *)(intptr_t)i);
	}
	ASSERT_OK(reap_task_join(t, NULL));
	ASSERT_EQ_INT(q->o.n, 4);
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(q->rcs[i], 0);
	/* Deadlines: an empty channel times out. */
	ASSERT_EQ_INT(reap_chan_recv(q->ch, &item, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	return 0;
}

TEST(loop_chan_buffered)
{
	struct chq q;

	memset(&q, 0, sizeof q);
	open_loop(NULL);
	ASSERT_OK(run_main(main_buffered, &q));
	close_loop();
}

static int main_rendezvous(void *arg, void **result)
{
	struct chq *q = arg;
	reap_task *t;
	void *item;

	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 0, &q->ch));
	q->t0 = reap_now_ns();
	ASSERT_OK(reap_task_spawn(NULL, producer, q, &t));
	ASSERT_OK(reap_sleep(20 * MS));
	ASSERT_EQ_INT(q->o.n, 0); /* nothing sent without a receiver */
	ASSERT_EQ_SIZE(reap_chan_len(q->ch), 0);
	for (int i = 1; i <= 4; i++) {
		ASSERT_OK(reap_chan_recv(q->ch, &item, REAP_FOREVER));
		ASSERT_EQ_PTR(item, (void *)(intptr_t)i);
	}
	ASSERT_OK(reap_task_join(t, NULL));
	ASSERT_GE_INT(q->sent_at_ms, 19);
	/* A send with a deadline and no receiver times out; the item was
	 * not taken. */
	ASSERT_EQ_INT(reap_chan_send(q->ch, q, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	ASSERT_EQ_INT(reap_chan_recv(q->ch, &item, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	return 0;
}

TEST(loop_chan_rendezvous)
{
	struct chq q;

	memset(&q, 0, sizeof q);
	open_loop(NULL);
	ASSERT_OK(run_main(main_rendezvous, &q));
	close_loop();
}

struct closer {
	reap_chan *ch;
	int send_rc, recv_rc;
};

static int blocked_sender(void *arg, void **result)
{
	struct closer *c = arg;

	(void)result;
	c->send_rc = reap_chan_send(c->ch, (void *)(intptr_t)99, REAP_FOREVER);
	return 0;
}

static int blocked_receiver(void *arg, void **result)
{
	struct closer *c = arg;
	void *item = NULL;

	(void)result;
	c->recv_rc = reap_chan_recv(c->ch, &item, REAP_FOREVER);
	return 0;
}

static int main_chan_close(void *arg, void **result)
{
	struct closer c1 = {0}, c2 = {0};
	reap_task *s, *r;
	void *item;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 2, &c1.ch));
	ASSERT_OK(reap_chan_send(c1.ch, (void *)(intptr_t)1, REAP_FOREVER));
	ASSERT_OK(reap_chan_send(c1.ch, (void *)(intptr_t)2, REAP_FOREVER));
	ASSERT_OK(reap_task_spawn(NULL, blocked_sender, &c1, &s));
	ASSERT_OK(reap_sleep(5 * MS));
	reap_chan_close(c1.ch);
	reap_chan_close(c1.ch); /* idempotent */
	ASSERT_OK(reap_task_join(s, NULL));
	ASSERT_EQ_INT(c1.send_rc, REAP_ECLOSED);
	ASSERT_EQ_INT(reap_chan_send(c1.ch, NULL, REAP_FOREVER), REAP_ECLOSED);
	/* Receivers drain what is buffered, then get REAP_ECLOSED. */
	ASSERT_OK(reap_chan_recv(c1.ch, &item, REAP_FOREVER));
	ASSERT_EQ_PTR(item, (void *)(intptr_t)1);
	ASSERT_OK(reap_chan_recv(c1.ch, &item, REAP_FOREVER));
	ASSERT_EQ_PTR(item, (void *)(intptr_t)2);
	ASSERT_EQ_INT(reap_chan_recv(c1.ch, &item, REAP_FOREVER), REAP_ECLOSED);

	/* A receiver waiting on an empty channel is woken by the close. */
	ASSERT_OK(reap_chan_create(NULL, 0, &c2.ch));
	ASSERT_OK(reap_task_spawn(NULL, blocked_receiver, &c2, &r));
	ASSERT_OK(reap_sleep(5 * MS));
	reap_chan_close(c2.ch);
	ASSERT_OK(reap_task_join(r, NULL));
	ASSERT_EQ_INT(c2.recv_rc, REAP_ECLOSED);
	return 0;
}

LOOP_TEST(loop_chan_close, main_chan_close)

struct served {
	reap_chan *ch;
	void *item;
	int rc, after;
};

static int served_receiver(void *arg, void **result)
{
	struct served *s = arg;

	(void)result;
	s->rc = reap_chan_recv(s->ch, &s->item, REAP_FOREVER);
	s->after = reap_yield();
	return 0;
}

static int main_served_then_cancelled(void *arg, void **result)
{
	struct served s = {0};
	reap_task *t;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 0, &s.ch));
	ASSERT_OK(reap_task_spawn(NULL, served_receiver, &s, &t));
	ASSERT_OK(reap_sleep(3 * MS));
	/* The send hands the item over, then the cancel comes: the item is
	 * delivered (no data lost), the next suspension says cancelled. */
	ASSERT_OK(reap_chan_send(s.ch, (void *)(intptr_t)42, REAP_FOREVER));
	reap_task_cancel(t);
	ASSERT_OK(reap_task_join(t, NULL));
	ASSERT_EQ_INT(s.rc, 0);
	ASSERT_EQ_PTR(s.item, (void *)(intptr_t)42);
	ASSERT_EQ_INT(s.after, -ECANCELED);
	return 0;
}

LOOP_TEST(loop_chan_served_item_survives_cancel, main_served_then_cancelled)

struct evw {
	reap_event *e;
	int rcs[3];
	int woke;
};

static int event_waiter(void *arg, void **result)
{
	struct evw *w = arg;
	int rc = reap_event_wait(w->e, REAP_FOREVER);

	(void)result;
	w->rcs[w->woke++] = rc;
	return rc;
}

static int main_event(void *arg, void **result)
{
	struct evw w = {0};
	reap_group *g;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_event_create(NULL, &w.e));
	ASSERT_FALSE(reap_event_is_set(w.e));
	ASSERT_OK(reap_group_open(NULL, &g));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(reap_task_spawn(g, event_waiter, &w, NULL));
	ASSERT_OK(reap_sleep(5 * MS));
	ASSERT_EQ_INT(w.woke, 0);
	reap_event_set(w.e);
	ASSERT_TRUE(reap_event_is_set(w.e));
	ASSERT_OK(reap_group_close(g, NULL));
	ASSERT_EQ_INT(w.woke, 3);
	for (int i = 0; i < 3; i++)
		ASSERT_EQ_INT(w.rcs[i], 0);
	ASSERT_OK(reap_event_wait(w.e, REAP_FOREVER)); /* set: at once */
	reap_event_clear(w.e);
	ASSERT_FALSE(reap_event_is_set(w.e));
	ASSERT_EQ_INT(reap_event_wait(w.e, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	return 0;
}

LOOP_TEST(loop_event, main_event)

struct semw {
	reap_sem *s;
	struct order o;
};

struct sem_arg {
	struct semw *w;
	int id;
};

static int sem_waiter(void *arg, void **result)
{
	struct sem_arg *a = arg;
	int rc = reap_sem_acquire(a->w->s, REAP_FOREVER);

	(void)result;
	if (rc == 0)
		a->w->o.log[a->w->o.n++] = a->id;
	return rc;
}

static int main_sem(void *arg, void **result)
{
	struct semw w;
	struct sem_arg a[4];
	reap_group *g;

	(void)arg;
	(void)result;
	memset(&w, 0, sizeof w);
	ASSERT_OK(reap_sem_create(NULL, 1, &w.s));
	ASSERT_OK(reap_sem_acquire(w.s, REAP_FOREVER)); /* the one permit */
	ASSERT_EQ_INT(reap_sem_acquire(w.s, reap_now_ns() + 3 * MS), -ETIMEDOUT);
	ASSERT_OK(reap_group_open(NULL, &g));
	for (int i = 0; i < 4; i++) {
		a[i] = (struct sem_arg){&w, i + 1};
		ASSERT_OK(reap_task_spawn(g, sem_waiter, &a[i], NULL));
		ASSERT_OK(reap_yield()); /* queue them in spawn order */
	}
	ASSERT_EQ_INT(w.o.n, 0);
	for (int i = 0; i < 4; i++) {
		reap_sem_release(w.s);
		ASSERT_OK(reap_sleep(1 * MS));
		ASSERT_EQ_INT(w.o.n, i + 1);
	}
	ASSERT_OK(reap_group_close(g, NULL));
	for (int i = 0; i < 4; i++)
		ASSERT_EQ_INT(w.o.log[i], i + 1); /* first come, first served */
	return 0;
}

LOOP_TEST(loop_sem_fifo, main_sem)

/* A waiter cancelled while it waits leaves the queue; a permit released
 * meanwhile must go to the next acquirer, not be stuck behind it. */
static int main_sem_cancelled_waiter(void *arg, void **result)
{
	struct semw w;
	struct sem_arg a = {&w, 1};
	reap_task *t;
	int rc;

	(void)arg;
	(void)result;
	memset(&w, 0, sizeof w);
	ASSERT_OK(reap_sem_create(NULL, 0, &w.s));
	ASSERT_OK(reap_task_spawn(NULL, sem_waiter, &a, &t));
	ASSERT_OK(reap_sleep(2 * MS)); /* it waits */
	reap_task_cancel(t);           /* ready, not yet run */
	reap_sem_release(w.s);         /* no waiter still waits: count 1 */
	rc = reap_sem_acquire(w.s, reap_now_ns() + 500 * MS);
	ASSERT_EQ_INT(rc, 0);
	ASSERT_EQ_INT(reap_task_join(t, NULL), -ECANCELED);
	return 0;
}

LOOP_TEST(loop_sem_permit_not_stuck_behind_cancelled_waiter, main_sem_cancelled_waiter)

/* The event came first: a permit given, an item taken, then the cancel;
 * the waiter keeps what it was given. */
struct first {
	reap_sem *sem;
	reap_chan *ch;
	int acq_rc, send_rc, after;
};

static int first_acquirer(void *arg, void **result)
{
	struct first *f = arg;

	(void)result;
	f->acq_rc = reap_sem_acquire(f->sem, REAP_FOREVER);
	f->after = reap_yield();
	return 0;
}

static int first_sender(void *arg, void **result)
{
	struct first *f = arg;

	(void)result;
	f->send_rc = reap_chan_send(f->ch, (void *)(intptr_t)5, REAP_FOREVER);
	return 0;
}

static int main_event_first(void *arg, void **result)
{
	struct first f = {0};
	reap_task *a, *b;
	void *item = NULL;

	(void)arg;
	(void)result;
	f.acq_rc = f.send_rc = f.after = 1;
	ASSERT_OK(reap_sem_create(NULL, 0, &f.sem));
	ASSERT_OK(reap_chan_create(NULL, 0, &f.ch));
	ASSERT_OK(reap_task_spawn(NULL, first_acquirer, &f, &a));
	ASSERT_OK(reap_task_spawn(NULL, first_sender, &f, &b));
	ASSERT_OK(reap_sleep(3 * MS));
	reap_sem_release(f.sem);  /* the permit goes to a */
	reap_task_cancel(a);
	ASSERT_OK(reap_chan_recv(f.ch, &item, REAP_FOREVER)); /* b's item taken */
	ASSERT_EQ_PTR(item, (void *)(intptr_t)5);
	reap_task_cancel(b);
	ASSERT_OK(reap_task_join(a, NULL));
	ASSERT_OK(reap_task_join(b, NULL));
	ASSERT_EQ_INT(f.acq_rc, 0);
	ASSERT_EQ_INT(f.after, -ECANCELED);
	ASSERT_EQ_INT(f.send_rc, 0);
	/* The permit was a's: none is left. */
	ASSERT_EQ_INT(reap_sem_acquire(f.sem, reap_now_ns() + 2 * MS), -ETIMEDOUT);
	return 0;
}

LOOP_TEST(loop_event_before_cancel_wins, main_event_first)

/* Outside any task, a join and a group close run the loop. */
static int short_sleeper(void *arg, void **result)
{
	(void)result;
	ASSERT_OK(reap_sleep(5 * MS));
	*(int *)arg += 1;
	return 0;
}

TEST(loop_join_and_group_close_outside_tasks_run_the_loop)
{
	reap_task *t;
	reap_group *g;
	int n = 0;
	void *r = &n;

	open_loop(NULL);
	ASSERT_OK(reap_task_spawn(NULL, short_sleeper, &n, &t));
	ASSERT_OK(reap_task_join(t, &r));
	ASSERT_EQ_INT(n, 1);
	ASSERT_NULL(r);
	ASSERT_OK(reap_group_open(T_scope, &g));
	for (int i = 0; i < 3; i++)
		ASSERT_OK(reap_task_spawn(g, short_sleeper, &n, NULL));
	ASSERT_OK(reap_group_close(g, NULL));
	ASSERT_EQ_INT(n, 4);
	close_loop();
}

/* A main that can never be woken is cancelled: the run returns
 * -ECANCELED. */
static int main_waits_forever(void *arg, void **result)
{
	reap_event *e;
	int *rc = arg;

	(void)result;
	ASSERT_OK(reap_event_create(NULL, &e));
	*rc = reap_event_wait(e, REAP_FOREVER);
	return *rc;
}

TEST(loop_run_of_deadlocked_main_is_ecanceled)
{
	int rc = 1;

	open_loop(NULL);
	test_reports_clear();
	ASSERT_EQ_INT(run_main(main_waits_forever, &rc), -ECANCELED);
	ASSERT_EQ_INT(rc, -ECANCELED);
	ASSERT_CONTAINS(test_reports(), "event wait");
	ASSERT_CONTAINS(test_reports(), "main");
	close_loop();
}

/* The cancellation came first, then the channel closed before the
 * cancelled receiver ran: the first wins, the receive says -ECANCELED. */
static int main_cancel_then_close(void *arg, void **result)
{
	struct closer c = {0};
	reap_task *r;

	(void)arg;
	(void)result;
	c.recv_rc = 1;
	ASSERT_OK(reap_chan_create(NULL, 0, &c.ch));
	ASSERT_OK(reap_task_spawn(NULL, blocked_receiver, &c, &r));
	ASSERT_OK(reap_sleep(3 * MS));
	reap_task_cancel(r);
	reap_chan_close(c.ch);
	ASSERT_OK(reap_task_join(r, NULL));
	ASSERT_EQ_INT(c.recv_rc, -ECANCELED);
	return 0;
}

LOOP_TEST(loop_chan_cancel_before_close_wins, main_cancel_then_close)

/* ------------------------------------------------------------------ */
/* Introspection                                                        */

static int intro_recv(void *arg, void **result)
{
	void *item;

	(void)result;
	return reap_chan_recv(arg, &item, REAP_FOREVER);
}

static int main_intro(void *arg, void **result)
{
	reap_task_info info[8];
	reap_task *a, *b;
	reap_chan *ch;
	size_t n;
	int rc_a = 0;
	char *text = NULL;
	size_t len = 0;
	FILE *m;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_chan_create(NULL, 0, &ch));
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "sleeper"},
				       sleep_forever_ish, &rc_a, &a));
	ASSERT_OK(reap_task_spawn_opts(NULL, &(reap_task_opts){.name = "receiver"},
				       intro_recv, ch, &b));
	ASSERT_OK(reap_sleep(2 * MS));
	n = reap_loop_tasks(T_loop, info, 8);
	ASSERT_EQ_SIZE(n, 3);
	ASSERT_EQ_SIZE(reap_loop_tasks(T_loop, info, 1), 3); /* may exceed cap */
	n = reap_loop_tasks(T_loop, info, 8);
	ASSERT_EQ_STR(info[0].name, "main");
	ASSERT_EQ_INT(info[0].state, REAP_TASK_RUNNING);
	ASSERT_EQ_PTR(info[1].task, a);
	ASSERT_EQ_STR(info[1].name, "sleeper");
	ASSERT_EQ_INT(info[1].state, REAP_TASK_WAITING);
	ASSERT_EQ_STR(info[1].wait_what, "sleep");
	ASSERT_NOT_NULL(info[1].wait_site);
	ASSERT_EQ_PTR(info[2].task, b);
	ASSERT_EQ_STR(info[2].wait_what, "channel receive");
	for (size_t i = 0; i < n; i++) {
		ASSERT_NOT_NULL(info[i].site);
		ASSERT_CONTAINS(info[i].site->file, "test_loop.c");
		ASSERT_GT_INT(info[i].stack_used, 0);
		ASSERT_GE_INT(info[i].stack_size, 16 * 1024);
		ASSERT_LT_INT(info[i].stack_used, info[i].stack_size);
		ASSERT_FALSE(info[i].cancelled);
	}
	m = open_memstream(&text, &len);
	ASSERT_NOT_NULL(m);
	ASSERT_EQ_SIZE(reap_loop_report(T_loop, m), 3);
	fclose(m);
	ASSERT_CONTAINS(text, "sleeper");
	ASSERT_CONTAINS(text, "channel receive");
	free(text);
	reap_task_cancel(a);
	reap_task_cancel(b);
	n = reap_loop_tasks(T_loop, info, 8);
	ASSERT_TRUE(info[1].cancelled);
	ASSERT_EQ_INT(info[1].state, REAP_TASK_READY); /* woken by the cancel */
	ASSERT_EQ_INT(reap_task_join(a, NULL), -ECANCELED);
	ASSERT_EQ_INT(reap_task_join(b, NULL), -ECANCELED);
	ASSERT_EQ_SIZE(reap_loop_tasks(T_loop, info, 8), 1);
	return 0;
}

LOOP_TEST(loop_tasks_introspection, main_intro)

/* ------------------------------------------------------------------ */
/* Misuse and bad input                                                 */

struct fdw {
	int fd;
	int rc;
};

static int fd_waiter(void *arg, void **result)
{
	struct fdw *w = arg;

	(void)result;
	w->rc = reap_wait_fd(w->fd, REAP_READ, reap_now_ns() + 2000 * MS);
	return 0;
}

static int main_bad_fd(void *arg, void **result)
{
	int p[2], closed_fd, f;
	struct fdw w1, w2;
	reap_task *t1, *t2;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(reap_wait_fd(-1, REAP_READ, REAP_FOREVER), -EBADF);
	ASSERT_EQ_INT(pipe(p), 0);
	closed_fd = dup(p[0]);
	ASSERT_GE_INT(closed_fd, 0);
	close(closed_fd);
	ASSERT_EQ_INT(reap_wait_fd(closed_fd, REAP_READ, REAP_FOREVER), -EBADF);
	ASSERT_EQ_INT(reap_wait_fd(p[0], 0, REAP_FOREVER), -EINVAL);
	ASSERT_EQ_INT(reap_wait_fd(p[0], 8, REAP_FOREVER), -EINVAL);
	/* A regular file cannot be polled. */
	f = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
	ASSERT_GE_INT(f, 0);
	ASSERT_EQ_INT(reap_wait_fd(f, REAP_READ, REAP_FOREVER), -EPERM);
	close(f);
	/* Two tasks on one fd. */
	w1 = (struct fdw){p[0], 1};
	w2 = (struct fdw){p[0], 1};
	ASSERT_OK(reap_task_spawn(NULL, fd_waiter, &w1, &t1));
	ASSERT_OK(reap_sleep(2 * MS));
	ASSERT_OK(reap_task_spawn(NULL, fd_waiter, &w2, &t2));
	ASSERT_OK(reap_task_join(t2, NULL));
	ASSERT_EQ_INT(w2.rc, -EEXIST);
	reap_task_cancel(t1);
	ASSERT_OK(reap_task_join(t1, NULL));
	ASSERT_EQ_INT(w1.rc, -ECANCELED);
	/* The fd is free again: a wait with a deadline times out. */
	ASSERT_EQ_INT(reap_wait_fd(p[0], REAP_READ, reap_now_ns() + 3 * MS), -ETIMEDOUT);
	close(p[0]);
	close(p[1]);
	return 0;
}

static int main_fd_ready(void *arg, void **result)
{
	int p[2];
	struct fdw w;
	reap_task *t;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(pipe(p), 0);
	/* Write readiness of an empty pipe: at once. */
	ASSERT_EQ_INT(reap_wait_fd(p[1], REAP_WRITE, reap_now_ns() + 1000 * MS),
		      REAP_WRITE);
	/* Read readiness once something is written, while it waits. */
	w = (struct fdw){p[0], 1};
	ASSERT_OK(reap_task_spawn(NULL, fd_waiter, &w, &t));
	ASSERT_OK(reap_sleep(3 * MS));
	ASSERT_EQ_INT(write(p[1], "y", 1), 1);
	ASSERT_OK(reap_task_join(t, NULL));
	ASSERT_EQ_INT(w.rc, REAP_READ);
	/* Ready already: at once; both bits asked, the ready ones come back. */
	ASSERT_EQ_INT(reap_wait_fd(p[0], REAP_READ, REAP_FOREVER), REAP_READ);
	ASSERT_EQ_INT(reap_wait_fd(p[0], REAP_READ | REAP_WRITE, REAP_FOREVER),
		      REAP_READ);
	close(p[0]);
	close(p[1]);
	return 0;
}

LOOP_TEST(loop_wait_fd_readiness, main_fd_ready)

LOOP_TEST(loop_wait_fd_bad_input, main_bad_fd)

struct xthread {
	reap_chan *ch;
	reap_event *ev;
	reap_sem *sem;
	reap_loop *loop;
	int send_rc, recv_rc, ev_rc, sem_rc, run_rc, step_rc;
};

static void *off_thread(void *arg)
{
	struct xthread *x = arg;
	void *item;

	x->send_rc = reap_chan_send(x->ch, NULL, REAP_FOREVER);
	x->recv_rc = reap_chan_recv(x->ch, &item, REAP_FOREVER);
	x->ev_rc = reap_event_wait(x->ev, REAP_FOREVER);
	x->sem_rc = reap_sem_acquire(x->sem, REAP_FOREVER);
	x->run_rc = reap_loop_run(x->loop, main_ok, NULL, NULL);
	x->step_rc = reap_loop_step(x->loop);
	return NULL;
}

TEST(loop_primitives_from_another_thread_are_eperm)
{
	struct xthread x;
	pthread_t th;

	memset(&x, 0, sizeof x);
	open_loop(NULL);
	ASSERT_OK(reap_chan_create(T_scope, 4, &x.ch));
	ASSERT_OK(reap_event_create(T_scope, &x.ev));
	ASSERT_OK(reap_sem_create(T_scope, 4, &x.sem));
	x.loop = T_loop;
	ASSERT_EQ_INT(pthread_create(&th, NULL, off_thread, &x), 0);
	ASSERT_EQ_INT(pthread_join(th, NULL), 0);
	ASSERT_EQ_INT(x.send_rc, -EPERM);
	ASSERT_EQ_INT(x.recv_rc, -EPERM);
	ASSERT_EQ_INT(x.ev_rc, -EPERM);
	ASSERT_EQ_INT(x.sem_rc, -EPERM);
	ASSERT_EQ_INT(x.run_rc, -EPERM);
	ASSERT_EQ_INT(x.step_rc, -EPERM);
	ASSERT_EQ_SIZE(reap_chan_len(x.ch), 0);
	close_loop();
}

static int child_closes_own_group(void *arg, void **result)
{
	reap_group **g = arg;

	(void)result;
	return reap_group_close(*g, NULL);
}

static int main_group_misuse(void *arg, void **result)
{
	reap_group *g;
	reap_task *t;

	(void)arg;
	(void)result;
	ASSERT_OK(reap_group_open(NULL, &g));
	ASSERT_OK(reap_task_spawn(g, child_closes_own_group, &g, &t));
	ASSERT_EQ_INT(reap_task_join(t, NULL), -EDEADLK);
	return reap_group_close(g, NULL);
}

LOOP_TEST(loop_group_close_from_child_is_edeadlk, main_group_misuse)

TEST(loop_group_without_loop_is_eperm)
{
	reap_group *g = (reap_group *)(uintptr_t)0x99;
	reap_chan *ch = (reap_chan *)(uintptr_t)0x99;
	reap_task *t;

	ASSERT_EQ_INT(reap_group_open(NULL, &g), -EPERM);
	ASSERT_EQ_PTR(g, (reap_group *)(uintptr_t)0x99);
	ASSERT_EQ_INT(reap_chan_create(NULL, 1, &ch), -EPERM);
	ASSERT_EQ_INT(reap_task_spawn(NULL, main_ok, NULL, &t), -EPERM);
	open_loop(NULL);
	ASSERT_EQ_INT(reap_chan_create(T_scope, ((size_t)1 << 24) + 1, &ch), -EINVAL);
	close_loop();
}

/* Outside any task, the blocking forms serve. */
TEST(loop_suspension_points_outside_tasks_block)
{
	uint64_t t0 = reap_now_ns();
	int p[2];

	ASSERT_OK(reap_sleep(5 * MS));
	ASSERT_GE_INT(ms_since(t0), 4);
	ASSERT_OK(reap_yield());
	ASSERT_EQ_INT(pipe(p), 0);
	ASSERT_EQ_INT(reap_wait_fd(p[0], REAP_READ, reap_now_ns() + 5 * MS), -ETIMEDOUT);
	ASSERT_EQ_INT(write(p[1], "z", 1), 1);
	ASSERT_EQ_INT(reap_wait_fd(p[0], REAP_READ, REAP_FOREVER), REAP_READ);
	close(p[0]);
	close(p[1]);
}

/* ------------------------------------------------------------------ */
/* A join outside any task, with a deadline                            */

static int sleeps_forever(void *arg, void **result)
{
	(void)arg;
	(void)result;
	return reap_sleep(REAP_FOREVER);
}

TEST(loop_join_outside_task_deadline_times_out_and_stays_joinable)
{
	reap_task *t;
	uint64_t t0;

	open_loop(NULL);
	ASSERT_OK(reap_task_spawn(NULL, sleeps_forever, NULL, &t));
	t0 = reap_now_ns();
	/* Nothing but the deadline can end this wait: it must neither
	 * drain the task nor overshoot by much. */
	ASSERT_EQ_INT(reap_task_join_until(t, NULL, t0 + 50 * MS), -ETIMEDOUT);
	ASSERT_TRUE(reap_now_ns() - t0 >= 50 * MS);
	ASSERT_TRUE(reap_now_ns() - t0 < 2000 * MS);
	reap_task_cancel(t);
	ASSERT_EQ_INT(reap_task_join(t, NULL), -ECANCELED);
	close_loop();
}

/* ------------------------------------------------------------------ */
/* Kept fds (reap__loop_fd_keep)                                        */

static int sock_pair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
}

/* Read exactly n bytes from a kept fd, waiting when it is empty. */
static void kept_read(int fd, void *buf, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, (char *)buf + got, n - got);

		if (r > 0) {
			got += (size_t)r;
			continue;
		}
		ASSERT_TRUE(r < 0 && errno == EAGAIN);
		ASSERT_EQ_INT(reap_wait_fd(fd, REAP_READ, reap_now_ns() + 5000 * MS), REAP_READ);
	}
}

static int echo_server(void *arg, void **result)
{
	int fd = *(int *)arg;

	(void)result;
	ASSERT_OK(reap__loop_fd_keep(fd));
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t x, y;

		kept_read(fd, &x, sizeof x);
		ASSERT_EQ_INT(x, i);
		y = x * 2 + 1;
		ASSERT_EQ_INT(write(fd, &y, sizeof y), (long long)sizeof y);
	}
	reap__loop_fd_forget(fd);
	return 0;
}

static int main_kept_round_trips(void *arg, void **result)
{
	int sv[2];
	reap_task *t;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(sock_pair(sv), 0);
	ASSERT_OK(reap_task_spawn(NULL, echo_server, &sv[1], &t));
	ASSERT_OK(reap__loop_fd_keep(sv[0]));
	ASSERT_OK(reap__loop_fd_keep(sv[0])); /* twice: no change */
	for (uint32_t i = 0; i < 1000; i++) {
		uint32_t y;

		ASSERT_EQ_INT(write(sv[0], &i, sizeof i), (long long)sizeof i);
		kept_read(sv[0], &y, sizeof y);
		ASSERT_EQ_INT(y, i * 2 + 1);
	}
	ASSERT_OK(reap_task_join(t, NULL));
	reap__loop_fd_forget(sv[0]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

LOOP_TEST(loop_kept_fd_round_trips, main_kept_round_trips)

static int write_later(void *arg, void **result)
{
	int fd = *(int *)arg;

	(void)result;
	ASSERT_OK(reap_sleep(5 * MS));
	ASSERT_EQ_INT(write(fd, "x", 1), 1);
	return 0;
}

/* A task writes 'x' to sv[1] in 5 ms; wait for it on sv[0] (within
 * deadline_ns, REAP_FOREVER for none) and read it. */
static void wait_written(int sv[2], uint64_t deadline_ns)
{
	reap_task *t;
	char c = 0;

	ASSERT_OK(reap_task_spawn(NULL, write_later, &sv[1], &t));
	ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_READ, deadline_ns), REAP_READ);
	ASSERT_OK(reap_task_join(t, NULL));
	ASSERT_EQ_INT(read(sv[0], &c, 1), 1);
	ASSERT_EQ_INT(c, 'x');
}

/* Sleep 50 ms while fd is ready and nobody waits on it: the loop must
 * not spin (a level-triggered interest left on would report it on every
 * poll). Then the next wait returns at once. */
static void kept_idle_then_wait(int fd)
{
	uint64_t turns0 = T_loop->turns, t0;
	char c;

	ASSERT_OK(reap_sleep(50 * MS));
	ASSERT_LT_INT(T_loop->turns - turns0, 20);
	t0 = reap_now_ns();
	ASSERT_EQ_INT(reap_wait_fd(fd, REAP_READ, REAP_FOREVER), REAP_READ);
	ASSERT_LT_INT(ms_since(t0), 20);
	ASSERT_EQ_INT(read(fd, &c, 1), 1);
	ASSERT_EQ_INT(c, 'x');
}

static int main_kept_busy(void *arg, void **result)
{
	int sv[2];
	reap_task *t;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(sock_pair(sv), 0);
	ASSERT_OK(reap__loop_fd_keep(sv[0]));
	/* One round, so that the interest is on. */
	wait_written(sv, REAP_FOREVER);
	/* The next byte arrives while this task sleeps. */
	ASSERT_OK(reap_task_spawn(NULL, write_later, &sv[1], &t));
	kept_idle_then_wait(sv[0]);
	ASSERT_OK(reap_task_join(t, NULL));
	/* Again, now that the loop turned the interest off and on. */
	ASSERT_OK(reap_task_spawn(NULL, write_later, &sv[1], &t));
	kept_idle_then_wait(sv[0]);
	ASSERT_OK(reap_task_join(t, NULL));
	reap__loop_fd_forget(sv[0]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

LOOP_TEST(loop_kept_fd_ready_while_busy_does_not_spin, main_kept_busy)

static int kept_waiter(void *arg, void **result)
{
	struct fdw *w = arg;

	(void)result;
	w->rc = reap_wait_fd(w->fd, REAP_READ, REAP_FOREVER);
	return 0;
}

static int main_kept_cancel_deadline(void *arg, void **result)
{
	int sv[2];
	struct fdw w1, w2;
	reap_task *t1, *t2;
	uint64_t t0;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(sock_pair(sv), 0);
	ASSERT_OK(reap__loop_fd_keep(sv[0]));
	/* Cancelled while waiting; a second waiter meanwhile is -EEXIST. */
	w1 = (struct fdw){sv[0], 1};
	w2 = (struct fdw){sv[0], 1};
	ASSERT_OK(reap_task_spawn(NULL, kept_waiter, &w1, &t1));
	ASSERT_OK(reap_sleep(2 * MS));
	ASSERT_OK(reap_task_spawn(NULL, kept_waiter, &w2, &t2));
	ASSERT_OK(reap_task_join(t2, NULL));
	ASSERT_EQ_INT(w2.rc, -EEXIST);
	reap_task_cancel(t1);
	ASSERT_OK(reap_task_join(t1, NULL));
	ASSERT_EQ_INT(w1.rc, -ECANCELED);
	/* A deadline. */
	t0 = reap_now_ns();
	ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_READ, t0 + 10 * MS), -ETIMEDOUT);
	ASSERT_GE_INT(reap_now_ns() - t0, 10 * MS);
	/* Within a deadline region. */
	{
		reap_deadline d;

		reap_deadline_begin(&d, reap_now_ns() + 5 * MS);
		ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_READ, REAP_FOREVER), -ETIMEDOUT);
		ASSERT_EQ_INT(reap_deadline_end(&d), -ETIMEDOUT);
	}
	/* The interest those waits left on does not make the loop spin
	 * once data comes, and the next wait sees it. */
	ASSERT_OK(reap_task_spawn(NULL, write_later, &sv[1], &t1));
	kept_idle_then_wait(sv[0]);
	ASSERT_OK(reap_task_join(t1, NULL));
	/* Waiting for writing, then reading again: the interest changes. */
	ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_WRITE, REAP_FOREVER), REAP_WRITE);
	ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_READ, reap_now_ns() + 3 * MS), -ETIMEDOUT);
	reap__loop_fd_forget(sv[0]);
	close(sv[0]);
	close(sv[1]);
	return 0;
}

LOOP_TEST(loop_kept_fd_cancel_and_deadline, main_kept_cancel_deadline)

static int main_kept_reuse(void *arg, void **result)
{
	int sv[2], nv[2], old;
	char c;

	(void)arg;
	(void)result;
	ASSERT_EQ_INT(sock_pair(sv), 0);
	ASSERT_OK(reap__loop_fd_keep(sv[0]));
	ASSERT_EQ_INT(write(sv[1], "x", 1), 1);
	ASSERT_EQ_INT(reap_wait_fd(sv[0], REAP_READ, REAP_FOREVER), REAP_READ);
	ASSERT_EQ_INT(read(sv[0], &c, 1), 1);
	old = sv[0];
	reap__loop_fd_forget(sv[0]);
	close(sv[0]);
	close(sv[1]);
	/* The number comes back for a new socket, unkept: one-shot waits. */
	ASSERT_EQ_INT(sock_pair(nv), 0);
	ASSERT_EQ_INT(nv[0], old);
	wait_written(nv, reap_now_ns() + 2000 * MS);
	/* Kept again. */
	ASSERT_OK(reap__loop_fd_keep(nv[0]));
	wait_written(nv, reap_now_ns() + 2000 * MS);
	reap__loop_fd_forget(nv[0]);
	close(nv[0]);
	close(nv[1]);
	/* And a third time, kept from the start. */
	ASSERT_EQ_INT(sock_pair(nv), 0);
	ASSERT_EQ_INT(nv[0], old);
	ASSERT_OK(reap__loop_fd_keep(nv[0]));
	wait_written(nv, reap_now_ns() + 2000 * MS);
	reap__loop_fd_forget(nv[0]);
	close(nv[0]);
	close(nv[1]);
	return 0;
}

LOOP_TEST(loop_kept_fd_forget_close_reuse, main_kept_reuse)

static int main_kept_bad(void *arg, void **result)
{
	(void)arg;
	(void)result;
	ASSERT_EQ_INT(reap__loop_fd_keep(-1), -EINVAL);
	ASSERT_EQ_INT(reap__loop_fd_keep(T_loop->poll.fd), -EINVAL);
	reap__loop_fd_forget(-1);
	reap__loop_fd_forget(1000000); /* never kept: nothing */
	return 0;
}

TEST(loop_kept_fd_bad_input)
{
	int sv[2];

	ASSERT_EQ_INT(sock_pair(sv), 0);
	ASSERT_EQ_INT(reap__loop_fd_keep(sv[0]), -EINVAL); /* no task */
	reap__loop_fd_forget(sv[0]);
	open_loop(NULL);
	ASSERT_EQ_INT(reap__loop_fd_keep(sv[0]), -EINVAL); /* a loop, no task */
	ASSERT_OK(run_main(main_kept_bad, NULL));
	close_loop();
	close(sv[0]);
	close(sv[1]);
}

/* Busy polling (reap_loop_opts.spin_ns): a task's fd wait whose event
 * comes within the spin is taken without the loop thread sleeping; the
 * same wait without spin sleeps. Counted with the thread's voluntary
 * context switches. */
struct spin_arg {
	int fd[2];
	long nvcsw;
	int rc;
};

static void *write_soon(void *arg)
{
	struct spin_arg *a = arg;

	usleep(2000);
	if (write(a->fd[1], "x", 1) != 1)
		abort();
	return NULL;
}

static int spin_main(void *arg, void **result)
{
	struct spin_arg *a = arg;
	struct rusage r0, r1;
	pthread_t t;
	char b;

	(void)result;
	ASSERT_EQ_INT(pthread_create(&t, NULL, write_soon, a), 0);
	getrusage(RUSAGE_THREAD, &r0);
	a->rc = reap_wait_fd(a->fd[0], REAP_READ, reap_now_ns() + 5000 * MS);
	getrusage(RUSAGE_THREAD, &r1);
	a->nvcsw = r1.ru_nvcsw - r0.ru_nvcsw;
	ASSERT_EQ_INT(read(a->fd[0], &b, 1), 1);
	ASSERT_EQ_INT(pthread_join(t, NULL), 0);
	return 0;
}

/* One wait in a fresh loop spinning spin_ns: the voluntary switches. */
static long spin_once(struct spin_arg *a, uint64_t spin_ns)
{
	reap_loop *loop;
	reap_scope *s;

	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create_opts(s, &(reap_loop_opts){.spin_ns = spin_ns},
					&loop));
	ASSERT_OK(reap_loop_run(loop, spin_main, a, NULL));
	ASSERT_EQ_INT(a->rc, REAP_READ);
	ASSERT_OK(reap_scope_close(s));
	return a->nvcsw;
}

TEST(loop_spin_takes_events_without_sleeping)
{
	struct spin_arg a;
	long slept = 0, spun = 0;

	ASSERT_OK(pipe2(a.fd, O_CLOEXEC));
	/* a few tries: a preempted writer can outlast a spin now and then */
	for (int i = 0; i < 3; i++) {
		slept += spin_once(&a, 0) > 0;
		spun += spin_once(&a, 500 * MS) == 0;
	}
	ASSERT_GE_INT(slept, 2);
	ASSERT_GE_INT(spun, 2);
	close(a.fd[0]);
	close(a.fd[1]);
}

/* A busy-polling loop still honours its timers: a sleep shorter than the
 * spin ends on time, not when the spin runs out. (An fd wait of another
 * task makes the loop spin at all.) */
static int wait_forever(void *arg, void **result)
{
	(void)result;
	return reap_wait_fd(*(int *)arg, REAP_READ, REAP_FOREVER);
}

static int spin_sleep_main(void *arg, void **result)
{
	int *fd = arg;
	reap_task *w;
	uint64_t t0, late = 0;

	(void)result;
	ASSERT_OK(reap_task_spawn(NULL, wait_forever, fd, &w));
	ASSERT_OK(reap_sleep(MS)); /* w is waiting now */
	for (int i = 0; i < 3; i++) {
		t0 = reap_now_ns();
		ASSERT_OK(reap_sleep(10 * MS));
		if (reap_now_ns() - t0 > late)
			late = reap_now_ns() - t0;
	}
	/* With a 10 s spin, a sleep that waited for the spin would take
	 * 10 s; 1 s is room for any scheduling delay. */
	ASSERT_LT_INT(late, 1000 * MS);
	reap_task_cancel(w);
	ASSERT_EQ_INT(reap_task_join(w, NULL), -ECANCELED);
	return 0;
}

TEST(loop_spin_keeps_timers_on_time)
{
	reap_loop *loop;
	reap_scope *s;
	int fd[2];

	ASSERT_OK(pipe2(fd, O_CLOEXEC));
	ASSERT_OK(reap_scope_open(NULL, &s));
	ASSERT_OK(reap_loop_create_opts(s, &(reap_loop_opts){.spin_ns = 10000 * MS},
					&loop));
	ASSERT_OK(reap_loop_run(loop, spin_sleep_main, fd, NULL));
	ASSERT_OK(reap_scope_close(s));
	close(fd[0]);
	close(fd[1]);
}
