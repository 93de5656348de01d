/*
 * The event loop's internals, shared by loop.c (loops, tasks, groups,
 * cancellation), sync.c (channels, events, semaphores), offload.c
 * (reap_to_thread) and blocking.c (the detector). Nothing here is part of
 * the API.
 */
#ifndef REAP_LOOP_INTERNAL_H
#define REAP_LOOP_INTERNAL_H

#include "../base/internal.h"
#include "ctx.h"
#include "poll.h"
#include "timer.h"

#pragma GCC visibility push(hidden)

#define LOOP_MAGIC 0x100b100bu
#define TASK_MAGIC 0x7a5c7a5cu
#define GROUP_MAGIC 0x6a0b6a0bu
#define DEAD_MAGIC 0xdeadbeefu

/* loop->fdk[fd]: fd is kept (reap__loop_fd_keep()), with the level-
 * triggered interest it has on in the low bits (REAP_READ | REAP_WRITE;
 * 0 when off, or unknown just after the keep). */
#define FDK_KEPT 0x80u

/* A task's state, as reap_task_state. */
enum { T_READY = 0, T_RUNNING = 1, T_WAITING = 2, T_DONE = 3 };

/* What a parked task was woken with, besides 0, -errno and an fd's
 * readiness (REAP_READ | REAP_WRITE): above those bits. */
#define W_TIMER (1 << 20) /* its timer fired (park() resolves it) */
#define W_OWN (1 << 21)   /* park(): the wait's own deadline passed */

/* A task waiting in a queue of a channel, event, semaphore or group. */
struct reap__waiter {
	struct reap__waiter *prev, *next;
	struct reap_task *task;
	void *item; /* a channel's item, either way */
	int done;   /* served: the item moved, the permit was given */
};
struct reap__waitq {
	struct reap__waiter *head, *tail;
};

struct reap_task {
	/* Cleared at spawn, up to `made`. */
	uint32_t magic;
	uint8_t state;     /* T_* */
	uint8_t detached;  /* no handle: reaped when it ends */
	uint8_t cancelled; /* sticky */
	reap_loop *loop;
	reap_group *group;
	reap_scope *scope;            /* its own, under the group's, made on first use */
	reap_scope *cur, *closing;    /* its thread state while switched out */
	int err_no;
	int rc;
	reap_task_fn fn;
	void *arg;
	void *result;
	reap_error *chain;            /* its failure, when it failed */
	uint64_t fail_seq;            /* its failure's rank in its group, 0: none */
	const reap_site *site;
	uint64_t num;
	uint32_t t0_ms;   /* spawned, ms on reap's clock */
	int cleanup_reported;
	struct reap_task *rnext;          /* ready queue */
	struct reap_task *gprev, *gnext;  /* group's tasks */
	struct reap_task *aprev, *anext;  /* loop's tasks, oldest first */
	/* waiting */
	const char *wait_what;
	const reap_site *wait_site;
	int wait_fd;
	int wake_rc;
	reap__timer_id timer;
	struct reap_task *joiner;
	/* cancellation */
	unsigned shield;
	unsigned closes;            /* scope closes under way in the task */
	reap_deadline *dl;          /* innermost deadline region */

	/* Set when used, not cleared. */
	char made[0];
	char name[24];              /* "" until asked: see task_name() */
	struct reap__ctx ctx;
	struct reap__stack stack;
	reap_deadline cleanup_dl;   /* the loop's cleanup limit, while closing */
};

struct reap_group {
	uint32_t magic;
	uint8_t closing, cancelled, is_root;
	reap_loop *loop;
	reap_scope *scope;  /* the tasks' scopes live under it */
	reap_cleanup *h;    /* our entry in the owner */
	struct reap_task *head, *tail; /* tasks not yet reaped */
	unsigned live;      /* of them, not yet ended */
	struct reap_task *closer;      /* a task waiting in close */
	int first;          /* first failure */
	uint64_t nfail;     /* failures so far */
	reap_error *chain;  /* failures nobody joined, newest first */
	const reap_site *site;
};

struct reap__offload; /* offload.c */

struct reap_loop {
	uint32_t magic;
	int closed;
	int running;       /* in reap_loop_run() or a step */
	int draining;      /* cancelling what was left */
	atomic_int stop;   /* reap_loop_stop() */
	struct reap__tstate *ts;
	int *errp;         /* the loop thread's errno */
	pthread_t thread;
	reap_scope *owner;
	reap_scope *scope; /* internal: root group, workers */
	reap_cleanup *h;
	const reap_site *site;
	reap_loop_opts opts;

	struct reap__poll poll;
	struct reap__timers timers;
	struct reap__ctx sched;
	reap_task *cur;
	reap_task *zombie; /* ended, its stack not yet given back: bury() */
	reap_task *rhead, *rtail; /* ready queue */
	unsigned nready;
	unsigned budget;   /* tasks this turn may still run */
	reap_task *ahead, *atail; /* live tasks, oldest first */
	unsigned live;
	reap_group *root;
	uint64_t next_num;

	unsigned skipped;  /* turns without a poll while tasks were ready */
	uint64_t turns;    /* turns so far (the tests watch for spinning) */
	uint32_t now_ms;   /* reap__now_ms() at the start of the turn */
	uint64_t block_until; /* turn() blocks no later (a join's deadline) */
	reap_task **fdw;   /* the task waiting on each fd */
	unsigned char *fdk; /* each fd's registration: FDK_KEPT | interest on */
	int nfdw;          /* of both */
	unsigned fd_waits;

	/* reap_to_thread() */
	reap_pool *pool;
	unsigned offloads; /* calls under way */
	_Atomic(struct reap__offload *) done; /* finished, to hand back */
	atomic_int spinning; /* the loop polls done without sleeping */
	unsigned spin;       /* how long it may: see spin_for_offloads() */

	reap_loop_stats stats;

	/* blocking detector */
	int detect;
	atomic_ulong step_seq;
	atomic_int in_step;
	atomic_int step_lock;      /* step_name and step_site */
	char step_name[24];
	const reap_site *step_site;
	uint64_t blocking_ns;
	struct reap_loop *wd_next; /* watchdog's registry and its view: */
	unsigned long wd_seq;      /* the step it saw last */
	uint64_t wd_held, wd_period; /* how long it has seen it run */
	int wd_reported;
	void *bt[32];              /* sampled stack */
	atomic_int bt_n;           /* -1 requested, >= 0 taken */
	int ostid;
};

/* loop.c */
const char *reap__task_name(reap_task *t);
int reap__park(reap_task *t, uint64_t deadline, const char *what,
	       const reap_site *site);
void reap__wake(reap_task *t, int rc);
reap_loop *reap__loop_of_thread(void);

/*
 * A kept fd: a persistent, level-triggered registration with the calling
 * task's loop, for an fd whose owner promises to forget it before closing
 * it. reap_wait_fd() on a kept fd leaves its interest enabled when the
 * wait ends, so that the next wait for the same events costs no system
 * call; the loop disables it (one call) if the fd becomes ready while no
 * task waits on it, and the next wait enables it again. Cancellation,
 * deadlines and -EEXIST are those of any wait. Not-kept fds are armed
 * one-shot on each wait, as before.
 *
 * reap__loop_fd_keep(): 0 (kept already: 0 too), or -EINVAL (not in a
 * task, fd < 0, or the poller's own), -ENOMEM (nothing changed).
 * reap__loop_fd_forget(): removes the interest; must come before close(fd)
 * and from a task of the same loop; a task still waiting on fd keeps its
 * wait (as a one-shot). Closing a kept fd unforgotten is a bug: a later
 * fd of the same number could wait for ever.
 * Thread safety: a task of the loop.
 */
int reap__loop_fd_keep(int fd);
void reap__loop_fd_forget(int fd);

static inline reap_task *reap__task_cur(void)
{
	struct reap__tstate *ts = reap__ts_self;

	return ts != NULL ? ts->task : NULL;
}

static inline void reap__waitq_push(struct reap__waitq *q, struct reap__waiter *w)
{
	DLIST_APPEND(q->head, q->tail, w, prev, next);
}
static inline void reap__waitq_del(struct reap__waitq *q, struct reap__waiter *w)
{
	DLIST_UNLINK(q->head, q->tail, w, prev, next);
}

/* offload.c */
void reap__offload_reap(reap_loop *loop);

/* blocking.c */
void reap__blocking_start(reap_loop *loop);
void reap__blocking_stop(reap_loop *loop);
/* In a forked child: no watchdog, no loop watched. */
void reap__blocking_fork_child(void);

#pragma GCC visibility pop
#endif
