/*
 * Timers for the event loop: a min-heap of deadlines with stable handles.
 * Internal; nothing here is part of the API. Deadlines are nanoseconds on
 * reap_now_ns()'s clock; the heap only compares them, it never reads the
 * clock. See timer.c for the invariants.
 *
 *     struct reap__timers t;
 *     reap__timer_id id;
 *     void *ud;
 *     reap__timers_init(&t);
 *     if (reap__timer_add(&t, reap_now_ns() + 1000000, task, &id) == 0) {
 *         ...
 *         while (reap__timer_pop_due(&t, reap_now_ns(), &ud))
 *             fire(ud);
 *     }
 *     reap__timers_fini(&t);
 *
 * Order: timers come due in deadline order; timers with the same deadline
 * in the order they were added (a guarantee, tested).
 *
 * Thread safety: none; one owner thread (the loop's).
 */
#ifndef REAP_LOOP_TIMER_H
#define REAP_LOOP_TIMER_H

#include <stdint.h>

#include "../base/internal.h"

#pragma GCC visibility push(hidden)

/* A timer's handle: stays valid until the timer is popped or cancelled,
 * and is recognised as stale afterwards. 0 is never a handle. */
typedef uint64_t reap__timer_id;

struct reap__timer_node; /* in timer.c */
struct reap__timer_slot;

/* Caller storage. */
struct reap__timers {
	struct reap__timer_node *heap; /* one block: heap[cap], then slots[cap] */
	struct reap__timer_slot *slots;
	uint32_t count; /* timers pending: heap[0, count) */
	uint32_t cap;
	uint32_t hw;    /* slots ever used: [0, hw) */
	uint32_t free;  /* first free slot below hw, UINT32_MAX if none */
	uint64_t seq;   /* insertion counter: the tie-breaker */
};

/* Prepare an empty set of timers. Allocates nothing; cannot fail. */
void reap__timers_init(struct reap__timers *t);

/* Free the storage. Pending timers are dropped, their udata untouched. */
void reap__timers_fini(struct reap__timers *t);

/*
 * Add a timer due at deadline with udata, and store its handle in *id.
 * Returns 0, or -ENOMEM (the storage could not grow through
 * reap_realloc(): nothing changed, *id untouched). O(log n) amortised.
 */
int reap__timer_add(struct reap__timers *t, uint64_t deadline, void *udata,
		    reap__timer_id *id);

/* Cancel a pending timer. Returns 0, or -ENOENT if id is not pending
 * (popped, cancelled, or never a handle). O(log n); allocates nothing. */
int reap__timer_cancel(struct reap__timers *t, reap__timer_id id);

/* The earliest pending deadline, or UINT64_MAX if none is pending (a
 * timer may be due at UINT64_MAX too: reap__timers_count() tells). */
uint64_t reap__timer_next(const struct reap__timers *t);

/*
 * If the earliest timer is due (deadline <= now), remove it, store its
 * udata in *udata and return 1; else return 0. O(log n); allocates
 * nothing.
 */
int reap__timer_pop_due(struct reap__timers *t, uint64_t now, void **udata);

/* Timers pending. */
static inline uint32_t reap__timers_count(const struct reap__timers *t)
{
	return t->count;
}

#pragma GCC visibility pop
#endif /* REAP_LOOP_TIMER_H */
