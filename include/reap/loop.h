/*
 * reap/loop.h: an event loop per thread, with tasks (stackful
 * coroutines), task groups, asynchronous close, cancellation, shields,
 * deadlines, offload of blocking calls, a detector of steps that block
 * the loop, and a report of the tasks still pending when a run ends.
 *
 *     static int handle(void *arg, void **result) {
 *             int fd = (int)(intptr_t)arg;
 *             char buf[512];
 *             int rc;
 *             while ((rc = reap_wait_fd(fd, REAP_READ, REAP_FOREVER)) >= 0) {
 *                     ssize_t n = read(fd, buf, sizeof buf);  // ready: no wait
 *                     if (n <= 0) break;
 *                     ...
 *             }
 *             return rc < 0 ? rc : 0;  // -ECANCELED when cancelled
 *     }
 *     static int main_task(void *arg, void **result) {
 *             reap_group *g;
 *             int rc = reap_group_open(NULL, &g);      // the task's scope owns g
 *             ...reap_task_spawn(g, handle, conn, NULL)...
 *             return reap_group_close(g, NULL);        // waits for every child
 *     }
 *     reap_loop *loop;
 *     if (reap_loop_create(NULL, &loop) == 0)
 *             rc = reap_loop_run(loop, main_task, NULL, NULL);
 *
 * The rules, which docs/async.md maps onto asyncio's idioms:
 *
 * - One loop per thread; tasks run only on it, one at a time, and switch
 *   only at suspension points (the reap_* calls below that take a
 *   deadline, and reap_yield()). Between two suspension points a task
 *   has the thread to itself: no locks are needed among tasks.
 * - Each task has its own scope (its current scope while it runs), errno
 *   and cancellation state; its scope closes when its function returns,
 *   inside the task, so cleanups registered there may suspend.
 * - Cancellation is delivered at suspension points and is sticky: once a
 *   task is cancelled, every suspension returns -ECANCELED (at once, or
 *   when the wait was already under way) until the task ends. A fired
 *   deadline makes the suspensions inside its region return -ETIMEDOUT.
 * - Shielded regions hold cancellation and outer deadlines back until
 *   they end. A scope that closes inside a task is always shielded, so
 *   cleanups are never cut short; the loop's cleanup limit reports a
 *   stuck one and times out its suspensions instead of hanging forever.
 * - Deadlines are absolute nanoseconds on reap_now_ns()'s clock;
 *   REAP_FOREVER (reap/base.h) means none.
 *
 * Outside any task (on the loop's thread before or after a run, or on
 * another thread), the suspension points that can be served without a
 * loop block the calling thread instead: reap_sleep(), reap_wait_fd(),
 * reap_yield(). The task primitives (channels, events, semaphores,
 * joins) belong to one loop and may be used only from its tasks.
 */
#ifndef REAP_LOOP_H
#define REAP_LOOP_H

#include "thread.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_loop reap_loop;
typedef struct reap_task reap_task;
typedef struct reap_group reap_group;

/* A task's function: returns 0 or a negative errno (the task's outcome),
 * and may store a result in *result (NULL beforehand). */
typedef int (*reap_task_fn)(void *arg, void **result);

/* ------------------------------------------------------------------ */
/* Loops                                                                */

/* Options for reap_loop_create_opts(); zero means the default. */
typedef struct reap_loop_opts {
	size_t stack_size;        /* usable stack per task; 64 KiB, at least 16 KiB */
	unsigned workers;         /* reap_to_thread() workers, made on first use; 4 */
	uint64_t cleanup_limit_ns; /* a scope close in a task taking longer is
				   * reported and its suspensions time out;
				   * 0: no limit */
	uint64_t blocking_ns;     /* threshold of the blocking detector; 100 ms */
	bool detect_blocking;     /* detector on without REAP_DEBUG=blocking;
				   * it samples the loop thread's stack with
				   * a signal (SIGRTMIN+6), which interrupts a
				   * blocking poll(2) or select(2) of the
				   * step it reports (EINTR). sleep(),
				   * usleep() and nanosleep() called in a
				   * task are reported at once when reap is
				   * linked statically (libreap.a defines
				   * them; libreap.so exports only reap_*),
				   * else when they exceed the threshold */
	uint64_t spin_ns;         /* busy polling: before sleeping in the
				   * poller while tasks wait on fds, poll
				   * without sleeping for up to this long, so
				   * that a reply arriving meanwhile costs no
				   * sleep and wake-up (lower latency, more
				   * CPU); never past the next timer's due
				   * time; 0: never */
} reap_loop_opts;

/*
 * Create the calling thread's loop, owned by s (NULL: the current scope).
 * Errors: -EBUSY (this thread has a loop already; the message names where
 * it was created), -EINVAL (a bad option), -ENOMEM, -EMFILE/-ENFILE (the
 * poller's fds). On failure nothing is left and *out is untouched.
 * Ownership: s owns the loop; closing s closes it as reap_loop_close()
 * does. Thread safety: the loop belongs to the calling thread.
 */
#define reap_loop_create(s, out) reap_loop_create_at((s), NULL, (out), REAP_SITE)
#define reap_loop_create_opts(s, opts, out) \
	reap_loop_create_at((s), (opts), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_loop_create_at(reap_scope *s,
						const reap_loop_opts *opts,
						reap_loop **out,
						const reap_site *site)
	REAP_NONNULL(3, 4);

/*
 * Run main(arg, &result) as a task in the loop's root group, and the loop
 * until that task and every other task of the loop are done (asyncio.run).
 * Returns main's outcome, with its result in *result (result may be NULL).
 *
 * The run also ends early when no task can ever run again (every task
 * waits on a channel, event, semaphore or join of this loop, with no
 * timer, fd or offloaded call that could wake one), or when
 * reap_loop_stop() was called. Then the tasks still pending are reported
 * (creation site, what each waits on and where, what its scope holds),
 * cancelled, and run until they end; the run returns main's outcome, or
 * -ECANCELED if main had to be cancelled too, or -EDEADLK when main never
 * ended. A main task that fails does not stop its siblings: they are
 * waited for (put them in a group of main's to tie their fates).
 *
 * Errors: REAP_ECLOSED (the loop is closed), -EBUSY (called from one of
 * its tasks, or while it runs), -EPERM (not the loop's thread), -ENOMEM
 * and the spawn errors for main (nothing ran).
 * Ownership: borrows loop and arg; *result is main's. Thread safety: the
 * loop's thread.
 */
#define reap_loop_run(loop, main, arg, result) \
	reap_loop_run_at((loop), (main), (arg), (result), REAP_SITE)
REAP_API int reap_loop_run_at(reap_loop *loop, reap_task_fn main, void *arg,
			      void **result, const reap_site *site)
	REAP_NONNULL(1, 2, 5);

/* Make the current or next reap_loop_run() end (see above). Ownership:
 * borrows loop. Thread safety: any thread, and async-signal-safe. */
REAP_API void reap_loop_stop(reap_loop *loop) REAP_NONNULL(1);

/*
 * Close the loop now: tasks still alive are reported as pending,
 * cancelled and run until they end; then the offload workers are joined
 * and the loop freed. Returns 0, REAP_ECLOSED if it was closed already,
 * or -EBUSY from one of its own tasks or during a run (nothing happens).
 * Ownership: the handle stays valid, closed, until its owner closes.
 * Thread safety: the loop's thread.
 */
REAP_API int reap_loop_close(reap_loop *loop) REAP_NONNULL(1);

/* The calling thread's loop, or NULL. Ownership: borrowed, owned by its
 * scope. Thread safety: any thread. */
REAP_API reap_loop *reap_loop_current(void);

/*
 * Embedding in another loop. reap_loop_fd() is a pollable fd (epoll)
 * that becomes readable when the loop has I/O or a wake-up to handle;
 * reap_loop_timeout() is how long the host may wait before the next
 * step (0: work is ready; REAP_FOREVER: no timer); reap_loop_step() runs
 * what is ready without blocking and returns the number of tasks still
 * alive (0: none), or a negative errno (REAP_ECLOSED, -EBUSY when called
 * from a task or inside a run, -EPERM off the loop's thread). Tasks are
 * started with reap_task_spawn(NULL, ...) into the root group. Ownership:
 * borrow the loop. Thread safety: the loop's thread (fd: any thread).
 */
REAP_API int reap_loop_fd(const reap_loop *loop) REAP_NONNULL(1);
REAP_API uint64_t reap_loop_timeout(reap_loop *loop) REAP_NONNULL(1);
REAP_API int reap_loop_step(reap_loop *loop) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Task groups                                                          */

/*
 * Open a task group owned by s (NULL: the current scope) on the calling
 * thread's loop. Closing the group (reap_group_close(), or its owner's
 * close) waits for every child task. The first child that fails (any
 * negative outcome other than the -ECANCELED of the task's own
 * cancellation) cancels its siblings at once; the failures nobody joined
 * come back chained in the order they happened (newest first, as every
 * reap chain), and the group's close returns the first of them. A task's
 * failure carries its cleanups' errors chained over it (they ran with the
 * failure in flight). An owner that closes with an error in flight
 * cancels the children before waiting, as a Trio nursery does.
 *
 * Errors: -EPERM (no loop on this thread), -ENOMEM. Ownership: s owns
 * the group; each child task's scope lives under the group. Thread
 * safety: the loop's thread.
 */
#define reap_group_open(s, out) reap_group_open_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_group_open_at(reap_scope *s, reap_group **out,
					       const reap_site *site)
	REAP_NONNULL(2, 3);

/*
 * Close the group: no more spawns (they fail with REAP_ECLOSED), wait
 * for every child, then free the group. In a task this suspends; a
 * cancellation of the waiting task cancels the children and goes on
 * waiting (a group never outlives its close). Outside a task it runs the
 * loop until the children end. Returns 0 or the first failure (or
 * -ECANCELED when none failed but the closing task is cancelled), with the
 * whole chain in *chain when chain is not NULL (free it with
 * reap_error_free()); without chain, the failures other than the
 * first are reported. Ownership: takes g (the handle is dead after the call).
 * Thread safety: the loop's thread; not from a child of g (-EDEADLK).
 */
REAP_API int reap_group_close(reap_group *g, reap_error **chain)
	REAP_NONNULL(1);

/* Cancel every child, present and future spawns included (they start
 * cancelled). Ownership: borrows g. Thread safety: the loop's thread. */
REAP_API void reap_group_cancel(reap_group *g) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Tasks                                                                */

/* Options for reap_task_spawn_opts(); zero means the default. */
typedef struct reap_task_opts {
	const char *name;  /* for reports (copied, 23 bytes kept) */
	size_t stack_size; /* the loop's by default */
} reap_task_opts;

/*
 * Start fn(arg, &result) as a task of group g (NULL: the loop's root
 * group). The task is queued; it first runs at the caller's next
 * suspension (or the loop's next step). With out not NULL the caller
 * gets a handle and must join the task (or leave that to the group's
 * close); with out NULL the task is detached: the group still waits for
 * it and collects its failure.
 *
 * A task spawned while the loop drains (its close, a stop, a deadlock:
 * see reap_loop_run()) starts cancelled.
 *
 * Errors: REAP_ECLOSED (g is closing or closed: nothing runs), -EPERM (no
 * loop on this thread), -ENOMEM (the task, its stack or its scope).
 * Ownership: g owns the task; *out is borrowed until joined or until g
 * closes. arg is borrowed until the task ends. Thread safety: the loop's
 * thread.
 */
#define reap_task_spawn(g, fn, arg, out) \
	reap_task_spawn_at((g), NULL, (fn), (arg), (out), REAP_SITE)
#define reap_task_spawn_opts(g, opts, fn, arg, out) \
	reap_task_spawn_at((g), (opts), (fn), (arg), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_task_spawn_at(reap_group *g,
					       const reap_task_opts *opts,
					       reap_task_fn fn, void *arg,
					       reap_task **out,
					       const reap_site *site)
	REAP_NONNULL(3, 6);

/*
 * Wait for t to end and return its outcome, with its result in *result
 * (may be NULL); the handle is dead afterwards. A task that failed has
 * its failure retrieved by the join (the group does not report it
 * again). -ETIMEDOUT (its deadline, or a region's) or -ECANCELED: the
 * wait ended first and t is still joinable. A task cancelled while its
 * scope closes still finishes the close; its outcome is what its
 * function returned. -EDEADLK: t is the caller.
 * Outside a task it runs the loop until t ends. Ownership: takes t on
 * success. Thread safety: the loop's thread, one joiner per task.
 */
#define reap_task_join(t, result) \
	reap_task_join_until_at((t), (result), REAP_FOREVER, REAP_SITE)
#define reap_task_join_until(t, result, deadline) \
	reap_task_join_until_at((t), (result), (deadline), REAP_SITE)
REAP_API int reap_task_join_until_at(reap_task *t, void **result,
				     uint64_t deadline_ns,
				     const reap_site *site) REAP_NONNULL(1, 4);

/* Cancel t (see the rules at the top); a no-op once it ended. Ownership:
 * borrows t. Thread safety: the loop's thread. */
REAP_API void reap_task_cancel(reap_task *t) REAP_NONNULL(1);

/* The running task, or NULL outside tasks. Ownership: borrowed, owned
 * by its group. Thread safety: any thread (about itself). */
REAP_API reap_task *reap_task_self(void);

/* The task's name ("task#<n>" unless named). Ownership: borrowed, valid
 * while the handle is. Thread safety: the loop's thread. */
REAP_API const char *reap_task_name(const reap_task *t) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Suspension points                                                    */

/* Readiness bits of reap_wait_fd(). */
enum { REAP_READ = 1u << 0, REAP_WRITE = 1u << 1 };

/*
 * Each returns 0 (or a positive value where said) when what it waits for
 * happened; -ETIMEDOUT when its own deadline passed or a deadline region
 * around it fired; -ECANCELED when the task is cancelled. The outcome
 * of a race between the event and a cancellation is the event's if the
 * event came first: no data is lost (a received item is delivered, a
 * sent one was taken).
 *
 * Ownership: every argument is borrowed for the call. Thread safety: a
 * task of the loop (or, where said, any thread outside tasks).
 */

/* Sleep ns nanoseconds (asyncio.sleep). reap_sleep(0) is reap_yield(),
 * as asyncio.sleep(0) is: no timer. Outside a task: blocks. */
#define reap_sleep(ns) reap_sleep_at((ns), REAP_SITE)
REAP_API int reap_sleep_at(uint64_t ns, const reap_site *site);

/* Let the other ready tasks run, then resume (asyncio.sleep(0)). Returns
 * 0 or -ECANCELED (-ETIMEDOUT of a fired region). Outside a task: 0. */
#define reap_yield() reap_yield_at(REAP_SITE)
REAP_API int reap_yield_at(const reap_site *site);

/*
 * Wait until fd is ready for events (REAP_READ and/or REAP_WRITE).
 * Returns the ready bits (> 0; REAP_READ also on end of file, errors and
 * hang-up, so that the read tells), or -EBADF / -EPERM (fd cannot be
 * polled) / -EINVAL / -EEXIST (another task waits on fd) / -ENOMEM, or
 * the codes above. Outside a task: poll(2).
 */
#define reap_wait_fd(fd, events, deadline) \
	reap_wait_fd_at((fd), (events), (deadline), REAP_SITE)
REAP_API int reap_wait_fd_at(int fd, unsigned events, uint64_t deadline_ns,
			     const reap_site *site);

/*
 * Run fn(arg, &result) on one of the loop's worker threads and wait for
 * it (asyncio.to_thread). Returns fn's outcome with its result in
 * *result. If the task is cancelled (or a deadline fires) meanwhile, the
 * worker is told (reap_job_cancelled() turns true) and the task waits,
 * shielded, until fn has returned, so that arg may live on the task's
 * stack; then drop (if not NULL) receives the discarded result and the
 * call returns -ECANCELED or -ETIMEDOUT. Errors: -ENOMEM, -EAGAIN (the
 * workers could not start), -EPERM outside a task. Ownership: borrows
 * arg until fn returns; *result is the caller's. Thread safety: a task.
 */
#define reap_to_thread(fn, arg, drop, result) \
	reap_to_thread_at((fn), (arg), (drop), (result), REAP_SITE)
REAP_API int reap_to_thread_at(reap_task_fn fn, void *arg,
			       void (*drop)(void *result), void **result,
			       const reap_site *site) REAP_NONNULL(1, 5);

/* ------------------------------------------------------------------ */
/* Cancellation: shields and deadline regions                           */

/* Hold cancellation and the deadlines of enclosing regions back until
 * the matching reap_shield_end(); regions opened inside still fire.
 * Nestable. Outside a task: no effect. Ownership: nothing is taken.
 * Thread safety: the task. */
REAP_API void reap_shield_begin(void);
/* End the innermost shield. Returns -ECANCELED if the task is cancelled
 * (before or during the shield: the next suspension outside any shield
 * will say so), else 0. Ownership: nothing is taken. Thread safety: the
 * task. */
REAP_API int reap_shield_end(void);

/*
 * A deadline region (asyncio.timeout, Trio's move_on_after): suspensions
 * inside it return -ETIMEDOUT once deadline_ns has passed. The region's
 * storage is the caller's (usually on its stack) and regions nest LIFO.
 * reap_deadline_end() returns -ETIMEDOUT if this region fired, so that
 * the code that opened it can tell its own timeout from an outer one or
 * from a cancellation (which it leaves alone), else 0. Outside a task
 * the region has no effect. Ownership: d is the caller's and must stay
 * valid until reap_deadline_end(). Thread safety: the task.
 */
typedef struct reap_deadline {
	struct reap_deadline *outer; /* private */
	uint64_t at;
	unsigned shield; /* shield depth at begin */
	int fired;
} reap_deadline;
REAP_API void reap_deadline_begin(reap_deadline *d, uint64_t deadline_ns)
	REAP_NONNULL(1);
REAP_API int reap_deadline_end(reap_deadline *d) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Asynchronous close                                                   */

/*
 * Register an asynchronous cleanup in s (NULL: the current scope): like
 * reap_defer_exit(), but fn may suspend (await a flush, a goodbye, a
 * worker). When s closes inside a task, fn runs there, in LIFO order
 * with the other cleanups, shielded, under the loop's cleanup limit.
 * When s closes outside a task, fn runs with the thread-blocking forms
 * of the suspension points (reap_sleep(), reap_wait_fd()).
 * Errors: -ENOMEM. Ownership and thread safety as reap_defer_exit().
 */
typedef int (*reap_aclose_fn)(void *arg, const reap_error *inflight);
REAP_API extern reap_type reap_type_async_close; /* "async close", the default */
#define reap_defer_async(s, type, fn, arg, h) \
	reap_defer_async_at((s), (type), (fn), (arg), (h), REAP_SITE)
REAP_API REAP_NODISCARD int reap_defer_async_at(reap_scope *s, reap_type *type,
						reap_aclose_fn fn, void *arg,
						reap_cleanup **h,
						const reap_site *site);

/* ------------------------------------------------------------------ */
/* Channels, events and semaphores between the tasks of one loop        */

typedef struct reap_chan reap_chan;
typedef struct reap_event reap_event;
typedef struct reap_sem reap_sem;

/*
 * A channel of pointers holding up to cap items (0: a rendezvous, each
 * send waits for its receiver). Errors: -EINVAL (cap above 1<<24),
 * -EPERM (no loop on this thread), -ENOMEM. Ownership: s owns it
 * (NULL: the current scope); items are the users'. Thread safety: the
 * loop's tasks.
 */
#define reap_chan_create(s, cap, out) reap_chan_create_at((s), (cap), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_chan_create_at(reap_scope *s, size_t cap,
						reap_chan **out,
						const reap_site *site)
	REAP_NONNULL(3, 4);
/* Send item. REAP_ECLOSED once the channel was closed (the item was not
 * taken). Outside a task: succeeds only without waiting, else -EAGAIN.
 * Ownership: item passes to the receiver when taken. Thread safety: the
 * loop's thread. */
#define reap_chan_send(ch, item, deadline) \
	reap_chan_send_at((ch), (item), (deadline), REAP_SITE)
REAP_API int reap_chan_send_at(reap_chan *ch, void *item, uint64_t deadline_ns,
			       const reap_site *site) REAP_NONNULL(1, 4);
/* Receive into *item. REAP_ECLOSED once the channel is closed and empty.
 * Outside a task: succeeds only without waiting, else -EAGAIN.
 * Ownership: *item is the receiver's. Thread safety: the loop's thread. */
#define reap_chan_recv(ch, item, deadline) \
	reap_chan_recv_at((ch), (item), (deadline), REAP_SITE)
REAP_API int reap_chan_recv_at(reap_chan *ch, void **item, uint64_t deadline_ns,
			       const reap_site *site) REAP_NONNULL(1, 2, 4);
/* Close for sending: waiting senders get REAP_ECLOSED, receivers drain
 * what is buffered, then get REAP_ECLOSED. Idempotent. The channel stays
 * allocated until its owner closes. Ownership: borrows ch. Thread
 * safety: the loop's thread. */
REAP_API void reap_chan_close(reap_chan *ch) REAP_NONNULL(1);
/* Items buffered now. Ownership: borrows ch. Thread safety: the loop's
 * thread. */
REAP_API size_t reap_chan_len(const reap_chan *ch) REAP_NONNULL(1);

/* An event (asyncio.Event): set wakes every waiter; waits on a set event
 * return at once until it is cleared. Errors, ownership, thread safety as
 * channels; outside a task, a wait that would block returns -EAGAIN.
 * set, clear, is_set: Ownership: borrow e. Thread safety: the loop's
 * thread. */
#define reap_event_create(s, out) reap_event_create_at((s), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_event_create_at(reap_scope *s,
						 reap_event **out,
						 const reap_site *site)
	REAP_NONNULL(2, 3);
REAP_API void reap_event_set(reap_event *e) REAP_NONNULL(1);
REAP_API void reap_event_clear(reap_event *e) REAP_NONNULL(1);
REAP_API bool reap_event_is_set(const reap_event *e) REAP_NONNULL(1);
#define reap_event_wait(e, deadline) reap_event_wait_at((e), (deadline), REAP_SITE)
REAP_API int reap_event_wait_at(reap_event *e, uint64_t deadline_ns,
				const reap_site *site) REAP_NONNULL(1, 3);

/* A counting semaphore with n initial permits; waiters are served first
 * come, first served. Errors, ownership, thread safety as channels;
 * outside a task, an acquire that would block returns -EAGAIN. release:
 * Ownership: borrows sem. Thread safety: the loop's thread. */
#define reap_sem_create(s, n, out) reap_sem_create_at((s), (n), (out), REAP_SITE)
REAP_API REAP_NODISCARD int reap_sem_create_at(reap_scope *s, unsigned n,
					       reap_sem **out,
					       const reap_site *site)
	REAP_NONNULL(3, 4);
#define reap_sem_acquire(sem, deadline) \
	reap_sem_acquire_at((sem), (deadline), REAP_SITE)
REAP_API int reap_sem_acquire_at(reap_sem *sem, uint64_t deadline_ns,
				 const reap_site *site) REAP_NONNULL(1, 3);
REAP_API void reap_sem_release(reap_sem *sem) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Introspection                                                        */

typedef enum reap_task_state {
	REAP_TASK_READY = 0,   /* queued to run */
	REAP_TASK_RUNNING = 1, /* the caller itself */
	REAP_TASK_WAITING = 2, /* suspended in a wait */
	REAP_TASK_DONE = 3     /* ended, not yet joined */
} reap_task_state;

typedef struct reap_task_info {
	const reap_task *task;
	char name[24];
	reap_task_state state;
	const reap_site *site;      /* where it was spawned */
	const reap_site *wait_site; /* where it waits (state WAITING) */
	const char *wait_what;      /* "sleep", "fd (read)", "channel receive",
				     * "event wait", "semaphore", "join",
				     * "group close", "to_thread", ... (static) */
	uint64_t age_ns;            /* since it was spawned */
	size_t resources;           /* live entries of its scope */
	size_t stack_size;          /* usable bytes */
	size_t stack_used;          /* high-water mark, bytes, of the stack it
				     * runs on since that stack was mapped
				     * (stacks are reused: an upper bound) */
	bool cancelled;
} reap_task_info;

/*
 * Fill out[0, cap) with the live tasks of the loop (oldest first) and
 * return how many there are (may exceed cap). The stack high-water mark
 * is the lowest word that is no longer zero, as the stack was mapped.
 * Ownership: out is the caller's. Thread safety: the
 * loop's thread.
 */
REAP_API size_t reap_loop_tasks(reap_loop *loop, reap_task_info *out,
				size_t cap) REAP_NONNULL(1);

/* Print the live tasks, what each waits on and what its scope holds,
 * the format of the pending-task report. Returns how many. Ownership:
 * borrows loop and f. Thread safety: the loop's thread. */
REAP_API size_t reap_loop_report(reap_loop *loop, FILE *f) REAP_NONNULL(1, 2);

/* Statistics of a loop since its creation. Ownership: st is the
 * caller's. Thread safety: the loop's thread. */
typedef struct reap_loop_stats {
	uint64_t spawned, ended, failed, cancelled; /* tasks */
	uint64_t switches;        /* context switches into tasks */
	uint64_t steps_blocking;  /* steps the detector reported */
	uint64_t offloaded;       /* reap_to_thread() calls */
	unsigned live;            /* tasks alive now */
} reap_loop_stats;
REAP_API void reap_loop_stats_get(const reap_loop *loop, reap_loop_stats *st)
	REAP_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif
#endif /* REAP_LOOP_H */
