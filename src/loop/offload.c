/*
 * reap_to_thread(): a blocking call run on one of the loop's workers (a
 * reap_pool owned by the loop's scope, made on first use) while the
 * calling task waits.
 *
 * The record of a call lives on the waiting task's stack: the task does
 * not return from reap_to_thread() before the worker is done with it,
 * even when cancelled (it then waits shielded), so nothing the worker
 * touches can go away under it. The worker runs the function, then hands
 * the record back on the loop's `done` stack (a lock-free push) and wakes
 * the loop, unless the loop is spinning on that stack (turn() in loop.c
 * spins briefly before sleeping while calls are out): the loop stores
 * spinning = 0 and then reads done; the worker pushes and then reads
 * spinning; both sequentially consistent, so at least one of them sees
 * the other and no hand-back is left unseen. After the push the worker
 * touches only the loop (which cannot close while a call is out).
 */
#define _GNU_SOURCE
#include <errno.h>

#include "loop_internal.h"

struct reap__offload {
	struct reap__offload *next;
	reap_task *task;
	reap_loop *loop;
	reap_task_fn fn;
	void *arg;
	void *result;
	int rc;
	int done;
};

static int offload_job(void *arg, void *state, void **result)
{
	struct reap__offload *o = arg;
	reap_loop *loop = o->loop;
	struct reap__offload *head;

	(void)state;
	(void)result;
	o->rc = o->fn(o->arg, &o->result);
	head = atomic_load_explicit(&loop->done, memory_order_relaxed);
	do
		o->next = head;
	while (!atomic_compare_exchange_weak_explicit(&loop->done, &head, o,
						      memory_order_seq_cst,
						      memory_order_relaxed));
	/* o may be gone from here on. */
	if (!atomic_load_explicit(&loop->spinning, memory_order_seq_cst))
		reap__poll_wake(&loop->poll);
	return 0;
}

void reap__offload_reap(reap_loop *loop)
{
	struct reap__offload *o = atomic_exchange_explicit(&loop->done, NULL,
							   memory_order_acquire);

	while (o != NULL) {
		struct reap__offload *next = o->next;

		o->done = 1;
		loop->offloads--;
		reap__wake(o->task, 0);
		o = next;
	}
}

static int start_pool(reap_loop *loop)
{
	reap_pool_opts po = {.name = "to_thread", .on_close = REAP_POOL_CANCEL};

	return reap_pool_create_at(loop->scope, &po, loop->opts.workers, NULL,
				   NULL, NULL, &loop->pool, REAP_SITE);
}

int reap_to_thread_at(reap_task_fn fn, void *arg, void (*drop)(void *result),
		      void **result, const reap_site *site)
{
	reap_task *t = reap__task_cur();
	struct reap__offload o = {0};
	reap_future *f;
	reap_loop *loop;
	int rc;

	if (t == NULL)
		return reap_raisef_at(site, -EPERM, "reap_to_thread() outside a "
				      "task: call fn directly");
	loop = t->loop;
	if (result != NULL)
		*result = NULL;
	if (t->cancelled && t->shield == 0)
		return -ECANCELED;
	if (loop->pool == NULL && (rc = start_pool(loop)) < 0)
		return rc;
	o.task = t;
	o.loop = loop;
	o.fn = fn;
	o.arg = arg;
	if ((rc = reap_pool_submit_at(loop->pool, offload_job, &o, &f, site)) < 0)
		return rc;
	loop->offloads++;
	loop->stats.offloaded++;
	rc = reap__park(t, REAP_FOREVER, "to_thread", site);
	if (!o.done) {
		/* Cancelled, or a region fired: tell the worker, then wait
		 * for it, shielded, unless the job never started. */
		if (reap_future_cancel(f) == 0) {
			loop->offloads--;
		} else {
			t->shield++;
			while (!o.done)
				(void)reap__park(t, REAP_FOREVER, "to_thread (cancelled)",
						 site);
			t->shield--;
			if (drop != NULL && o.result != NULL)
				drop(o.result);
		}
		reap_future_release(f);
		return rc < 0 ? rc : -ECANCELED;
	}
	reap_future_release(f);
	if (rc < 0) {
		/* Woken by the hand-back, then cancelled before running:
		 * the call completed; its outcome wins (no data lost). */
	}
	if (result != NULL)
		*result = o.result;
	else if (drop != NULL && o.result != NULL)
		drop(o.result);
	return o.rc;
}
