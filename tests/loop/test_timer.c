/*
 * loop: the timer heap (internal). Order against a reference model,
 * FIFO ties, stale handles, growth under allocation failure, scale.
 */
#include <errno.h>
#include <stdint.h>

#include "../runner.h"
#include "../../src/loop/timer.h"

#define UD(x) ((void *)(uintptr_t)(x))

/* A deterministic generator (xorshift64*). */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545f4914f6cdd1dull;
}

TEST(timer_empty)
{
	struct reap__timers t;
	void *ud = UD(7);

	reap__timers_init(&t);
	ASSERT_EQ_INT(reap__timers_count(&t), 0);
	ASSERT_TRUE(reap__timer_next(&t) == UINT64_MAX);
	ASSERT_EQ_INT(reap__timer_pop_due(&t, UINT64_MAX, &ud), 0);
	ASSERT_EQ_PTR(ud, UD(7));
	ASSERT_EQ_INT(reap__timer_cancel(&t, 0), -ENOENT);
	ASSERT_EQ_INT(reap__timer_cancel(&t, (uint64_t)1 << 32), -ENOENT);
	reap__timers_fini(&t);
	reap__timers_fini(&t); /* fini leaves it empty: again is harmless */
}

TEST(timer_order_and_due)
{
	struct reap__timers t;
	reap__timer_id id;
	void *ud;
	static const uint64_t d[] = {50, 10, 40, 30, 20};

	reap__timers_init(&t);
	for (int i = 0; i < 5; i++)
		ASSERT_OK(reap__timer_add(&t, d[i], UD(d[i]), &id));
	ASSERT_EQ_INT(reap__timer_next(&t), 10);
	ASSERT_EQ_INT(reap__timer_pop_due(&t, 9, &ud), 0);
	ASSERT_EQ_INT(reap__timer_pop_due(&t, 25, &ud), 1);
	ASSERT_EQ_PTR(ud, UD(10));
	ASSERT_EQ_INT(reap__timer_pop_due(&t, 25, &ud), 1);
	ASSERT_EQ_PTR(ud, UD(20));
	ASSERT_EQ_INT(reap__timer_pop_due(&t, 25, &ud), 0);
	ASSERT_EQ_INT(reap__timer_next(&t), 30);
	for (uint64_t want = 30; want <= 50; want += 10) {
		ASSERT_EQ_INT(reap__timer_pop_due(&t, UINT64_MAX, &ud), 1);
		ASSERT_EQ_PTR(ud, UD(want));
	}
	ASSERT_EQ_INT(reap__timers_count(&t), 0);
	reap__timers_fini(&t);
}

TEST(timer_fifo_ties)
{
	struct reap__timers t;
	reap__timer_id id[300];
	void *ud;

	/* Interleave three deadlines, cancel some, add more: within each
	 * deadline, pops follow insertion order. */
	reap__timers_init(&t);
	for (int i = 0; i < 300; i++)
		ASSERT_OK(reap__timer_add(&t, 100 + (uint64_t)(i % 3), UD(i), &id[i]));
	for (int i = 0; i < 300; i += 7)
		ASSERT_OK(reap__timer_cancel(&t, id[i]));
	for (int i = 300; i < 330; i++)
		ASSERT_OK(reap__timer_add(&t, 100 + (uint64_t)(i % 3), UD(i), &id[0]));
	for (int dl = 0; dl < 3; dl++) {
		for (int i = 0; i < 330; i++) {
			if (i % 3 != dl || (i < 300 && i % 7 == 0))
				continue;
			ASSERT_EQ_INT(reap__timer_next(&t), 100 + dl);
			ASSERT_EQ_INT(reap__timer_pop_due(&t, 1000, &ud), 1);
			ASSERT_EQ_PTR(ud, UD(i));
		}
	}
	ASSERT_EQ_INT(reap__timers_count(&t), 0);
	reap__timers_fini(&t);
}

TEST(timer_cancel_head_and_last)
{
	struct reap__timers t;
	reap__timer_id id[8];
	void *ud;

	reap__timers_init(&t);
	for (int i = 0; i < 8; i++)
		ASSERT_OK(reap__timer_add(&t, 10 * (uint64_t)(i + 1), UD(i), &id[i]));
	/* The head: the next one takes its place. */
	ASSERT_OK(reap__timer_cancel(&t, id[0]));
	ASSERT_EQ_INT(reap__timer_next(&t), 20);
	/* The last one added (the heap's last node). */
	ASSERT_OK(reap__timer_cancel(&t, id[7]));
	/* The latest deadline, wherever it sits now. */
	ASSERT_OK(reap__timer_cancel(&t, id[6]));
	/* Stale handles are refused, twice over. */
	ASSERT_EQ_INT(reap__timer_cancel(&t, id[0]), -ENOENT);
	ASSERT_EQ_INT(reap__timer_cancel(&t, id[7]), -ENOENT);
	ASSERT_EQ_INT(reap__timers_count(&t), 5);
	for (int i = 1; i <= 5; i++) {
		ASSERT_EQ_INT(reap__timer_pop_due(&t, UINT64_MAX, &ud), 1);
		ASSERT_EQ_PTR(ud, UD(i));
	}
	/* A popped timer's handle is stale too. */
	ASSERT_EQ_INT(reap__timer_cancel(&t, id[1]), -ENOENT);
	/* A reused slot gives a new handle; the old one stays stale. */
	ASSERT_OK(reap__timer_add(&t, 5, UD(99), &id[0]));
	ASSERT_EQ_INT(reap__timer_cancel(&t, id[1]), -ENOENT);
	ASSERT_EQ_INT(reap__timer_cancel(&t, id[7]), -ENOENT);
	ASSERT_EQ_INT(reap__timers_count(&t), 1);
	/* The only one: head and last at once. */
	ASSERT_OK(reap__timer_cancel(&t, id[0]));
	ASSERT_EQ_INT(reap__timers_count(&t), 0);
	ASSERT_TRUE(reap__timer_next(&t) == UINT64_MAX);
	reap__timers_fini(&t);
}

/* The reference model: pending timers in an array, the earliest found by
 * a linear scan under (deadline, insertion number). */
struct model {
	uint64_t deadline, seq;
	reap__timer_id id;
	int ud;
};

static int model_min(const struct model *m, int n)
{
	int best = -1;

	for (int i = 0; i < n; i++)
		if (best < 0 || m[i].deadline < m[best].deadline ||
		    (m[i].deadline == m[best].deadline && m[i].seq < m[best].seq))
			best = i;
	return best;
}

TEST(timer_random_against_model)
{
	enum { OPS = 60000, MAXN = 2000 };
	static struct model m[MAXN];
	struct reap__timers t;
	uint64_t seq = 0, now = 0;
	int n = 0, next_ud = 0;
	void *ud;

	reap__timers_init(&t);
	for (int op = 0; op < OPS; op++) {
		unsigned r = (unsigned)(rng() % 100);

		if (r < 50 && n < MAXN) {
			/* Narrow deadlines, so that ties are frequent. */
			uint64_t d = now + rng() % 64;

			ASSERT_OK(reap__timer_add(&t, d, UD(next_ud), &m[n].id));
			m[n].deadline = d;
			m[n].seq = seq++;
			m[n].ud = next_ud++;
			n++;
		} else if (r < 75 && n > 0) {
			int i = (int)(rng() % (uint64_t)n);

			ASSERT_OK(reap__timer_cancel(&t, m[i].id));
			ASSERT_EQ_INT(reap__timer_cancel(&t, m[i].id), -ENOENT);
			m[i] = m[--n];
		} else {
			int b;

			now += rng() % 8;
			while ((b = model_min(m, n)) >= 0 && m[b].deadline <= now) {
				ASSERT_EQ_INT(reap__timer_pop_due(&t, now, &ud), 1);
				ASSERT_EQ_PTR(ud, UD(m[b].ud));
				m[b] = m[--n];
			}
			ASSERT_EQ_INT(reap__timer_pop_due(&t, now, &ud), 0);
		}
		ASSERT_EQ_INT(reap__timers_count(&t), n);
		{
			int b = model_min(m, n);

			ASSERT_TRUE(reap__timer_next(&t) == (b < 0 ? UINT64_MAX : m[b].deadline));
		}
	}
	/* Drain in order. */
	for (int b; (b = model_min(m, n)) >= 0; m[b] = m[--n]) {
		ASSERT_EQ_INT(reap__timer_pop_due(&t, UINT64_MAX, &ud), 1);
		ASSERT_EQ_PTR(ud, UD(m[b].ud));
	}
	ASSERT_EQ_INT(reap__timers_count(&t), 0);
	reap__timers_fini(&t);
}

TEST(timer_100k)
{
	enum { N = 100000 };
	static reap__timer_id id[N];
	struct reap__timers t;
	uint64_t last = 0;
	void *ud;
	int popped = 0;

	reap__timers_init(&t);
	for (int i = 0; i < N; i++)
		ASSERT_OK(reap__timer_add(&t, rng() % 1000000, UD(i), &id[i]));
	ASSERT_EQ_INT(reap__timers_count(&t), N);
	/* Cancel every third one; then pop the rest. Neither allocates:
	 * the fault injector, armed throughout, counts nothing. */
	reap_fault_alloc(1);
	for (int i = 0; i < N; i += 3)
		ASSERT_OK(reap__timer_cancel(&t, id[i]));
	ASSERT_EQ_INT(reap__timers_count(&t), N - (N + 2) / 3);
	while (reap__timers_count(&t) > 0) {
		uint64_t d = reap__timer_next(&t);
		int i;

		/* Non-decreasing deadlines; the handle is stale once popped. */
		ASSERT_TRUE(d >= last);
		last = d;
		ASSERT_EQ_INT(reap__timer_pop_due(&t, d, &ud), 1);
		i = (int)(uintptr_t)ud;
		ASSERT_TRUE(i % 3 != 0);
		ASSERT_EQ_INT(reap__timer_cancel(&t, id[i]), -ENOENT);
		popped++;
	}
	ASSERT_EQ_INT(test_fault_disarm(), 0);
	ASSERT_EQ_INT(popped, N - (N + 2) / 3);
	reap__timers_fini(&t);
}

TEST(timer_100k_order)
{
	enum { N = 100000 };
	struct reap__timers t;
	reap__timer_id id;
	void *ud;
	int n = 0;

	reap__timers_init(&t);
	for (int i = 0; i < N; i++)
		ASSERT_OK(reap__timer_add(&t, rng() % 5000, UD(i), &id));
	for (uint64_t now = 0; now < 6000; now += 100) {
		while (reap__timer_pop_due(&t, now, &ud))
			n++;
		ASSERT_TRUE(reap__timer_next(&t) > now);
	}
	ASSERT_EQ_INT(n, N);
	reap__timers_fini(&t);
}

/* Pending timers in pop order, as (udata) values: for checking that a
 * failed call changed nothing, through a copy-free comparison. */
static void check_contents(struct reap__timers *t, int n)
{
	reap__timer_id id;
	void *ud;

	/* Pop all (deadline i has udata i), check, then put them back. */
	for (int i = 0; i < n; i++) {
		ASSERT_EQ_INT(reap__timer_next(t), (uint64_t)i);
		ASSERT_EQ_INT(reap__timer_pop_due(t, UINT64_MAX, &ud), 1);
		ASSERT_EQ_PTR(ud, UD(i));
	}
	ASSERT_EQ_INT(reap__timers_count(t), 0);
	for (int i = 0; i < n; i++)
		ASSERT_OK(reap__timer_add(t, (uint64_t)i, UD(i), &id));
}

TEST(timer_alloc_failure_sweep)
{
	struct reap__timers t;
	int failures = 0;

	/* Arm the next acquisition before every add: an add that needs no
	 * room succeeds without acquiring; one that must grow fails with
	 * nothing changed, then succeeds once disarmed. */
	reap__timers_init(&t);
	for (int i = 0; i < 200; i++) {
		struct test_snap before = test_snap();
		reap__timer_id id = 12345;
		long seen;
		int rc;

		reap_fault_alloc(1);
		rc = reap__timer_add(&t, (uint64_t)i, UD(i), &id);
		seen = test_fault_disarm();
		if (rc == 0) {
			ASSERT_EQ_INT(seen, 0);
			continue;
		}
		failures++;
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_INT(seen, 1);
		ASSERT_EQ_INT(id, 12345); /* untouched */
		ASSERT_UNCHANGED(before);
		ASSERT_EQ_INT(reap__timers_count(&t), i);
		check_contents(&t, i);
		ASSERT_OK(reap__timer_add(&t, (uint64_t)i, UD(i), &id));
	}
	/* 16, 32, 64, 128, 256: the first allocation and four doublings. */
	ASSERT_EQ_INT(failures, 5);
	check_contents(&t, 200);
	reap__timers_fini(&t);

	/* The classic sweep: fail the n-th acquisition of a sequence of adds
	 * and cancels until it runs through. */
	for (int n = 1;; n++) {
		struct test_snap before = test_snap();
		reap__timer_id id[100];
		int rc = 0, i;

		ASSERT_LT_INT(n, 64);
		reap__timers_init(&t);
		reap_fault_alloc(n);
		for (i = 0; i < 100 && rc == 0; i++)
			if ((rc = reap__timer_add(&t, (uint64_t)(i * 7919 % 100), UD(i), &id[i])) == 0 &&
			    i % 5 == 4)
				ASSERT_OK(reap__timer_cancel(&t, id[i - 2]));
		test_fault_disarm();
		if (rc != 0)
			ASSERT_EQ_INT(rc, -ENOMEM);
		reap__timers_fini(&t);
		ASSERT_UNCHANGED(before);
		if (rc == 0)
			break;
	}
}
