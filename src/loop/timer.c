/*
 * Timers: a binary min-heap of deadlines with stable handles.
 *
 * Two arrays live in one block: the heap, nodes of (deadline, seq, slot),
 * and the slots, one per pending timer, holding its udata and its node's
 * position in the heap. Handles name slots, which do not move, while
 * nodes move with every sift; each move writes the new position back
 * into the node's slot. Invariants, between calls:
 *
 *  1. heap[0, count) is a min-heap under the order (deadline, seq).
 *  2. For every i < count, slots[heap[i].slot].pos == i, and that slot's
 *     generation is odd (pending). A slot below hw that is not pending
 *     has an even generation and is on the free list, linked through pos.
 *  3. seq is unique per timer and grows with each add, so the order is
 *     total: equal deadlines come out in insertion order (FIFO), and the
 *     order of pops does not depend on the heap's shape.
 *
 * A handle is (generation << 32 | slot). The generation is bumped when a
 * slot is taken and when it is freed, so a handle kept after its timer
 * fired or was cancelled no longer matches and is refused; it could match
 * again only after 2^31 reuses of the same slot.
 *
 * Memory. count == cap is the only case where add needs room: otherwise a
 * slot is free (below hw on the free list, or at hw) and a node is free at
 * count. Growth doubles the block with one reap_realloc() and then moves
 * the slots up to their new offset, so a failed growth leaves everything
 * as it was. Pop and cancel only shrink count and allocate nothing.
 */
#include <errno.h>
#include <string.h>

#include "timer.h"

struct reap__timer_node {
	uint64_t deadline;
	uint64_t seq;
	uint32_t slot;
};

struct reap__timer_slot {
	void *udata;
	uint32_t pos; /* heap index when pending; next free slot when free */
	uint32_t gen; /* odd when pending */
};

#define NONE UINT32_MAX
#define CAP_MIN 16u
#define CAP_MAX (1u << 30)

static int before(const struct reap__timer_node *a, const struct reap__timer_node *b)
{
	return a->deadline < b->deadline ||
	       (a->deadline == b->deadline && a->seq < b->seq);
}

/* Put node n at position i, upholding invariant 2 for it. */
static void place(struct reap__timers *t, uint32_t i, const struct reap__timer_node *n)
{
	t->heap[i] = *n;
	t->slots[n->slot].pos = i;
}

/* Move n up from the hole at i to where it belongs. */
static void sift_up(struct reap__timers *t, uint32_t i, struct reap__timer_node n)
{
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;

		if (!before(&n, &t->heap[parent]))
			break;
		place(t, i, &t->heap[parent]);
		i = parent;
	}
	place(t, i, &n);
}

/* Move n down from the hole at i to where it belongs. */
static void sift_down(struct reap__timers *t, uint32_t i, struct reap__timer_node n)
{
	for (;;) {
		uint32_t c = 2 * i + 1;

		if (c >= t->count)
			break;
		if (c + 1 < t->count && before(&t->heap[c + 1], &t->heap[c]))
			c++;
		if (!before(&t->heap[c], &n))
			break;
		place(t, i, &t->heap[c]);
		i = c;
	}
	place(t, i, &n);
}

/* Remove the node at i: the last node fills the hole. */
static void remove_at(struct reap__timers *t, uint32_t i)
{
	struct reap__timer_slot *s = &t->slots[t->heap[i].slot];
	struct reap__timer_node last;

	s->gen++;
	s->udata = NULL;
	s->pos = t->free;
	t->free = (uint32_t)(s - t->slots);
	last = t->heap[--t->count];
	if (i == t->count)
		return;
	if (i > 0 && before(&last, &t->heap[(i - 1) / 2]))
		sift_up(t, i, last);
	else
		sift_down(t, i, last);
}

void reap__timers_init(struct reap__timers *t)
{
	*t = (struct reap__timers){.free = NONE};
}

void reap__timers_fini(struct reap__timers *t)
{
	reap_free(t->heap);
	reap__timers_init(t);
}

/* Double the block; on failure nothing changes. */
static int grow(struct reap__timers *t)
{
	uint32_t cap = t->cap ? 2 * t->cap : CAP_MIN;
	size_t node = sizeof(struct reap__timer_node), slot = sizeof(struct reap__timer_slot);
	char *b;

	if (t->cap >= CAP_MAX)
		return -ENOMEM;
	if ((b = reap_realloc(t->heap, (size_t)cap * (node + slot))) == NULL)
		return -ENOMEM;
	/* The slots follow heap[cap]: move them up to follow the new cap. */
	memmove(b + (size_t)cap * node, b + (size_t)t->cap * node, (size_t)t->hw * slot);
	t->heap = (struct reap__timer_node *)b;
	t->slots = (struct reap__timer_slot *)(b + (size_t)cap * node);
	t->cap = cap;
	return 0;
}

int reap__timer_add(struct reap__timers *t, uint64_t deadline, void *udata,
		    reap__timer_id *id)
{
	struct reap__timer_slot *s;
	uint32_t k;
	int rc;

	if (t->count == t->cap && (rc = grow(t)) < 0)
		return rc;
	if (t->free != NONE) {
		k = t->free;
		t->free = t->slots[k].pos;
	} else {
		k = t->hw++;
		t->slots[k].gen = 0;
	}
	s = &t->slots[k];
	s->gen++;
	s->udata = udata;
	t->count++;
	sift_up(t, t->count - 1,
		(struct reap__timer_node){.deadline = deadline, .seq = t->seq++, .slot = k});
	*id = (uint64_t)s->gen << 32 | k;
	return 0;
}

int reap__timer_cancel(struct reap__timers *t, reap__timer_id id)
{
	uint32_t k = (uint32_t)id, gen = (uint32_t)(id >> 32);

	if (k >= t->hw || !(gen & 1) || t->slots[k].gen != gen)
		return -ENOENT;
	remove_at(t, t->slots[k].pos);
	return 0;
}

uint64_t reap__timer_next(const struct reap__timers *t)
{
	return t->count ? t->heap[0].deadline : UINT64_MAX;
}

int reap__timer_pop_due(struct reap__timers *t, uint64_t now, void **udata)
{
	if (t->count == 0 || t->heap[0].deadline > now)
		return 0;
	*udata = t->slots[t->heap[0].slot].udata;
	remove_at(t, 0);
	return 1;
}
