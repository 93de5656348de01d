/*
 * Thread-local values whose destructors run.
 *
 * A key takes a slot (0 to MAX_KEYS-1) and the slot's next generation
 * number. Each thread keeps its values in a vector indexed by slot,
 * reached from its reap state, each value tagged with the generation of
 * the key that set it; so reap_tls_peek() is a few loads and a compare,
 * and a value left by a closed key in a reused slot is never mistaken
 * for the new key's.
 *
 * Invariants, all under tls_lock:
 *   - every thread's vector is on the `vecs` list; a vector grows (and
 *     moves) only under the lock, so another thread that holds the lock
 *     may read any vector;
 *   - a value is destroyed by whoever takes it out of its slot with an
 *     atomic exchange: its own thread (at exit, or reap_tls_set) or the
 *     thread closing its key. So no value is destroyed twice;
 *   - a thread that took values out at exit counts them in their keys'
 *     `inflight` while it runs their destructors; closing a key waits for
 *     that count to drop to zero, so no destructor of a key runs after
 *     the key's close has returned.
 * The owning thread reads and writes its own slots without the lock;
 * the fields another thread may change (value, gen) are accessed with
 * relaxed atomics.
 *
 * A thread's vector is memory reap keeps, like its block cache: it is not
 * counted by reap_alloc_live() and is freed when the thread's values are
 * destroyed. After that (the thread's exit hooks have run) the thread's
 * thread-local storage is closed: peek returns NULL and get (with init)
 * and set fail with REAP_ECLOSED.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "thread_internal.h"

#define MAX_KEYS 1024
#define BATCH 32 /* values destroyed per pass over a vector at exit */

enum { K_MAGIC = 0x7150ce11u, K_DEAD = 0x7150dea1u };

struct reap_tls {
	uint32_t magic;
	uint32_t slot, gen;
	reap_tls_init_fn init;
	reap_tls_dtor_fn dtor;
	void *ctx;
	const reap_site *site;
	unsigned inflight; /* destructors running on exiting threads */
	int closing;
};

struct tslot {
	void *value;
	uint32_t gen; /* of the key that set it; 0: empty */
};

struct reap__tls_vec {
	uint32_t cap;
	struct reap__tstate *ts;
	struct reap__tls_vec *prev, *next;
	struct tslot v[];
};

static void key_describe(void *arg, char *buf, size_t len);
static reap_type tls_type = REAP_TYPE_INIT("thread-local key", key_describe);

static pthread_once_t layer_once = PTHREAD_ONCE_INIT;
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tls_cv = PTHREAD_COND_INITIALIZER; /* inflight fell */
static reap_tls *keys[MAX_KEYS];
static uint32_t key_gen[MAX_KEYS];
static uint32_t free_slots[MAX_KEYS], nfree, nslots;
static struct reap__tls_vec *vecs;
static struct reap__tls_vec closed_vec; /* cap 0: storage closed */

static void tls_hook(struct reap__tstate *ts)
{
	reap__tls_thread_exit(ts);
}

static void layer_init(void)
{
	reap__on_thread_exit(tls_hook);
	reap__thread_layer_init();
}

static void check_key(const reap_tls *k, const char *what)
{
	if (unlikely(k->magic != K_MAGIC))
		reap__misuse("%s on %p, which is not an open reap_tls key (its "
			     "owner closed it, or it was never created)", what,
			     (const void *)k);
}

/* ------------------------------------------------------------------ */
/* Keys                                                                 */

static void key_describe(void *arg, char *buf, size_t len)
{
	reap_tls *k = arg;
	size_t n = 0;

	pthread_mutex_lock(&tls_lock);
	for (struct reap__tls_vec *v = vecs; v != NULL; v = v->next)
		if (k->slot < v->cap && RD(v->v[k->slot].gen) == k->gen &&
		    RD(v->v[k->slot].value) != NULL)
			n++;
	pthread_mutex_unlock(&tls_lock);
	snprintf(buf, len, "(slot %u, %zu thread(s) hold a value)", k->slot, n);
}

/*
 * Close a key: every value of it that any thread still holds is
 * destroyed here, on the closing thread, newest thread first; then the
 * close waits for destructors of it that exiting threads are running.
 * Values are taken out one at a time and destroyed with the lock
 * released, so a destructor may use other keys.
 */
static void key_close(void *arg)
{
	reap_tls *k = arg;

	pthread_mutex_lock(&tls_lock);
	k->closing = 1;
restart:
	for (struct reap__tls_vec *v = vecs; v != NULL; v = v->next) {
		struct tslot *sl;
		void *val;

		if (k->slot >= v->cap || RD(v->v[k->slot].gen) != k->gen)
			continue;
		sl = &v->v[k->slot];
		val = __atomic_exchange_n(&sl->value, NULL, __ATOMIC_RELAXED);
		WR(sl->gen, 0u);
		if (val != NULL && k->dtor != NULL) {
			pthread_mutex_unlock(&tls_lock);
			k->dtor(k->ctx, val);
			pthread_mutex_lock(&tls_lock);
			goto restart; /* the list may have changed meanwhile */
		}
	}
	while (k->inflight > 0)
		pthread_cond_wait(&tls_cv, &tls_lock);
	keys[k->slot] = NULL;
	free_slots[nfree++] = k->slot;
	pthread_mutex_unlock(&tls_lock);
	k->magic = K_DEAD;
	reap_free(k);
}

int reap_tls_create_at(reap_scope *s, reap_tls_init_fn init,
		       reap_tls_dtor_fn dtor, void *ctx, reap_tls **out,
		       const reap_site *site)
{
	reap_tls *k;
	uint32_t slot;
	int rc;

	pthread_once(&layer_once, layer_init);
	if ((k = reap_malloc(sizeof *k)) == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&tls_lock);
	if (nfree > 0) {
		slot = free_slots[--nfree];
	} else if (nslots < MAX_KEYS) {
		slot = nslots++;
	} else {
		pthread_mutex_unlock(&tls_lock);
		reap_free(k);
		return -EAGAIN;
	}
	*k = (reap_tls){K_MAGIC, slot, ++key_gen[slot], init, dtor, ctx, site, 0, 0};
	if (k->gen == 0)
		k->gen = ++key_gen[slot]; /* 0 marks an empty slot */
	keys[slot] = k;
	pthread_mutex_unlock(&tls_lock);
	rc = reap_defer_at(s, &tls_type, key_close, k, NULL, site);
	if (rc < 0) {
		pthread_mutex_lock(&tls_lock);
		keys[slot] = NULL;
		free_slots[nfree++] = slot;
		pthread_mutex_unlock(&tls_lock);
		reap_free(k);
		return rc;
	}
	*out = k;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Values                                                               */

void *reap_tls_peek(reap_tls *k)
{
	struct reap__tstate *ts = reap__ts_self;
	struct reap__tls_vec *v;
	uint32_t slot = k->slot;

	if (likely(ts != NULL && (v = ts->tls) != NULL && slot < v->cap &&
		   RD(v->v[slot].gen) == k->gen))
		return RD(v->v[slot].value);
	return NULL;
}

/* Make room for slot in the calling thread's vector. */
static int reserve(struct reap__tstate *ts, uint32_t slot)
{
	struct reap__tls_vec *v = ts->tls, *nv;
	uint32_t cap;

	if (v == &closed_vec)
		return REAP_ECLOSED;
	if (v != NULL && slot < v->cap)
		return 0;
	cap = v != NULL ? v->cap * 2 : 8;
	if (cap < slot + 1)
		cap = slot + 1;
	if (cap > MAX_KEYS)
		cap = MAX_KEYS;
	pthread_mutex_lock(&tls_lock);
	/* Under the lock: another thread may be reading the old vector. */
	nv = reap_realloc(v, sizeof *nv + cap * sizeof nv->v[0]);
	if (nv == NULL) {
		pthread_mutex_unlock(&tls_lock);
		return -ENOMEM;
	}
	if (v == NULL) {
		/* Kept memory, like the block cache: not a live block. */
		reap__alloc_forget(nv);
		nv->cap = 0;
		nv->ts = ts;
		nv->prev = NULL;
		nv->next = vecs;
		if (vecs != NULL)
			vecs->prev = nv;
		vecs = nv;
	} else if (nv != v) {
		if (nv->prev != NULL)
			nv->prev->next = nv;
		else
			vecs = nv;
		if (nv->next != NULL)
			nv->next->prev = nv;
	}
	memset(&nv->v[nv->cap], 0, (cap - nv->cap) * sizeof nv->v[0]);
	nv->cap = cap;
	ts->tls = nv;
	pthread_mutex_unlock(&tls_lock);
	return 0;
}

/* Store value in k's slot (reserved); return the value it replaces. */
static void *store(struct reap__tstate *ts, reap_tls *k, void *value)
{
	struct tslot *sl = &ts->tls->v[k->slot];
	void *old = RD(sl->gen) == k->gen ? RD(sl->value) : NULL;

	WR(sl->value, value);
	WR(sl->gen, value != NULL ? k->gen : 0u);
	return old;
}

static __attribute__((noinline)) int get_slow(reap_tls *k, void **value)
{
	struct reap__tstate *ts = reap__ts();
	void *v = NULL, *old;
	int rc;

	check_key(k, "reap_tls_get");
	if (ts->tls == &closed_vec)
		return REAP_ECLOSED;
	if (k->init == NULL) {
		*value = NULL;
		return 0;
	}
	/* Room first, so that nothing can fail once init has built it. */
	if ((rc = reserve(ts, k->slot)) < 0)
		return rc;
	if ((rc = k->init(k->ctx, &v)) < 0)
		return rc;
	if (ts->tls == &closed_vec || (rc = reserve(ts, k->slot)) < 0) {
		/* init ended the thread's storage or used up the memory:
		 * the value has nowhere to go. */
		if (v != NULL && k->dtor != NULL)
			k->dtor(k->ctx, v);
		return ts->tls == &closed_vec ? REAP_ECLOSED : rc;
	}
	old = store(ts, k, v);
	if (old != NULL && old != v && k->dtor != NULL)
		k->dtor(k->ctx, old); /* init set one itself, then built another */
	*value = v;
	return 0;
}

int reap_tls_get(reap_tls *k, void **value)
{
	void *v = reap_tls_peek(k);

	if (likely(v != NULL)) {
		*value = v;
		return 0;
	}
	return get_slow(k, value);
}

int reap_tls_set(reap_tls *k, void *value)
{
	struct reap__tstate *ts = reap__ts();
	void *old;
	int rc;

	check_key(k, "reap_tls_set");
	if (value == NULL && (ts->tls == NULL || ts->tls == &closed_vec ||
			      k->slot >= ts->tls->cap))
		return ts->tls == &closed_vec ? REAP_ECLOSED : 0;
	if ((rc = reserve(ts, k->slot)) < 0)
		return rc;
	old = store(ts, k, value);
	if (old != NULL && old != value && k->dtor != NULL)
		k->dtor(k->ctx, old);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Thread exit                                                          */

struct taken {
	reap_tls *k;
	void *value;
};

/* Take up to BATCH values out of v, from slot *pos on; count them in
 * their keys' inflight. Caller holds tls_lock. */
static unsigned take_batch(struct reap__tls_vec *v, uint32_t *pos,
			   struct taken *out)
{
	unsigned n = 0;

	for (; *pos < v->cap && n < BATCH; (*pos)++) {
		struct tslot *sl = &v->v[*pos];
		reap_tls *k = keys[*pos];
		void *val;

		if (RD(sl->value) == NULL)
			continue;
		val = __atomic_exchange_n(&sl->value, NULL, __ATOMIC_RELAXED);
		if (val == NULL || k == NULL || RD(sl->gen) != k->gen) {
			WR(sl->gen, 0u);
			continue; /* stale: its key is gone (cannot happen) */
		}
		WR(sl->gen, 0u);
		if (k->dtor == NULL)
			continue;
		k->inflight++;
		out[n].k = k;
		out[n].value = val;
		n++;
	}
	return n;
}

static void report_left(struct reap__tstate *ts, struct reap__tls_vec *v)
{
	struct reap__rbuf rb;
	FILE *m = reap__report_open(&rb);
	size_t n = 0;

	if (m == NULL)
		return;
	fprintf(m, "reap: thread T%u: thread-local values still set after %d "
		   "rounds of destructors (each round set new ones); dropped "
		   "without destruction:\n", ts->num, REAP_TLS_DTOR_ITERATIONS);
	pthread_mutex_lock(&tls_lock);
	for (uint32_t i = 0; i < v->cap; i++) {
		reap_tls *k = keys[i];
		void *val = RD(v->v[i].value);

		if (val == NULL || k == NULL || RD(v->v[i].gen) != k->gen)
			continue;
		fprintf(m, "    value %p of the key created at %s:%d in %s()\n", val,
			k->site->file, k->site->line, k->site->func);
		WR(v->v[i].value, (void *)NULL);
		WR(v->v[i].gen, 0u);
		n++;
	}
	pthread_mutex_unlock(&tls_lock);
	if (n > 0)
		reap__report_send(&rb);
	else
		reap__report_drop(&rb);
}

void reap__tls_thread_exit(struct reap__tstate *ts)
{
	struct reap__tls_vec *v = ts->tls;
	struct taken batch[BATCH];
	int round;

	if (v == &closed_vec)
		return;
	for (round = 0; round < REAP_TLS_DTOR_ITERATIONS && ts->tls != NULL; round++) {
		uint32_t pos = 0;
		unsigned total = 0, n;

		for (;;) {
			pthread_mutex_lock(&tls_lock);
			v = ts->tls; /* a destructor may have grown it */
			n = take_batch(v, &pos, batch);
			pthread_mutex_unlock(&tls_lock);
			if (n == 0 && pos >= v->cap)
				break;
			for (unsigned i = 0; i < n; i++)
				batch[i].k->dtor(batch[i].k->ctx, batch[i].value);
			pthread_mutex_lock(&tls_lock);
			for (unsigned i = 0; i < n; i++)
				if (--batch[i].k->inflight == 0 && batch[i].k->closing)
					pthread_cond_broadcast(&tls_cv);
			pthread_mutex_unlock(&tls_lock);
			total += n;
		}
		if (total == 0)
			break;
	}
	v = ts->tls;
	if (v == NULL) {
		ts->tls = &closed_vec;
		return;
	}
	if (round == REAP_TLS_DTOR_ITERATIONS)
		report_left(ts, v);
	pthread_mutex_lock(&tls_lock);
	LIST_UNLINK(vecs, v, prev, next);
	ts->tls = &closed_vec;
	pthread_mutex_unlock(&tls_lock);
	reap__free_forgotten(v);
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

/*
 * In the child of a fork only the forking thread is left. The vectors of
 * the other threads are forgotten with them. The forking thread's own
 * values are the parent's (a per-thread connection, a buffer that a
 * parent-side cleanup owns): they are dropped, never destroyed, and the
 * next reap_tls_get() in the child builds fresh ones with the key's
 * init. The vectors' memory is kept memory (not counted as live), so
 * nothing to uncount. A destructor of another thread that was running
 * when the fork happened is not running here: no key waits for it.
 */
void reap__tls_fork_child(struct reap__tstate *ts)
{
	struct reap__tls_vec *v = ts->tls;
	size_t n = 0;

	reap__mutex_reset(&tls_lock);
	reap__cond_reset(&tls_cv, NULL);
	for (uint32_t i = 0; i < MAX_KEYS; i++)
		if (keys[i] != NULL)
			keys[i]->inflight = 0;
	if (v != NULL && v != &closed_vec) {
		for (uint32_t i = 0; i < v->cap; i++) {
			reap_tls *k = keys[i];

			if (v->v[i].value != NULL && k != NULL &&
			    v->v[i].gen == k->gen && k->dtor != NULL)
				n++;
		}
	}
	vecs = NULL;
	ts->tls = NULL;
	if (n > 0)
		reap__fork_count_inherited(n);
}

/* ------------------------------------------------------------------ */
/* Reports                                                              */

static size_t print_vec(struct reap__tls_vec *v, FILE *f, const char *prefix)
{
	size_t n = 0;

	for (uint32_t i = 0; i < v->cap; i++) {
		reap_tls *k = keys[i];
		void *val = RD(v->v[i].value);

		if (val == NULL || k == NULL || RD(v->v[i].gen) != k->gen)
			continue;
		fprintf(f, "%svalue %p of the key created at %s:%d in %s()%s\n",
			prefix, val, k->site->file, k->site->line, k->site->func,
			k->dtor ? "" : " (no destructor)");
		n++;
	}
	return n;
}

size_t reap__tls_print_thread(struct reap__tstate *ts, FILE *f,
			      const char *prefix)
{
	size_t n = 0;

	pthread_mutex_lock(&tls_lock);
	for (struct reap__tls_vec *v = vecs; v != NULL; v = v->next)
		if (v->ts == ts)
			n += print_vec(v, f, prefix);
	pthread_mutex_unlock(&tls_lock);
	return n;
}

size_t reap__tls_print_foreign(FILE *f, struct reap__tstate *self)
{
	size_t threads = 0;

	pthread_mutex_lock(&tls_lock);
	for (struct reap__tls_vec *v = vecs; v != NULL; v = v->next) {
		char *text = NULL;
		size_t len = 0, n;
		FILE *m;

		if (v->ts == self || RD(v->ts->thread) != NULL)
			continue;
		if ((m = open_memstream(&text, &len)) == NULL)
			break;
		n = print_vec(v, m, "      ");
		fclose(m);
		if (n > 0) {
			fprintf(f, "reap: thread T%u (not started by reap) is still "
				   "running at exit; its thread-local values will "
				   "never be destroyed:\n%s", v->ts->num, text);
			threads++;
		}
		free(text);
	}
	pthread_mutex_unlock(&tls_lock);
	return threads;
}
