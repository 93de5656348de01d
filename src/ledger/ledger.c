/*
 * The ledger: counters per resource type, the registry of live scopes,
 * and the reports.
 *
 * Counting takes no lock and no atomic read-modify-write on the hot path.
 * Each thread counts into its own pending table (written only by that
 * thread, read by others with relaxed loads) and folds it into the
 * process totals every 64 operations, when it exits, and before it reads
 * a count. Folds take one mutex, so that each sees the totals whole. A
 * reader adds the totals and every thread's pending counts, so a count is
 * exact whenever no thread is counting at the same moment.
 *
 * `peak` comes from folds only. A thread keeps the highest and lowest
 * balance (created - closed) of its pending table since its last fold.
 * The fold adds its high to the live total it starts from and to the
 * other threads' lows: a live count that really occurred, provided no
 * other thread folded since the high (a fold sequence number tells;
 * otherwise that high is dropped). So the peak is exact for one thread
 * and never above the truth for several.
 *
 * Scopes are registered in 16 shards, picked by the creating thread's
 * number, each with its own mutex, so threads rarely share a lock. A
 * report takes every shard lock: while it runs no registered scope can
 * finish closing (closing unregisters under the shard lock before any
 * memory is freed), so every scope pointer it follows is alive. Entries
 * inside scopes change under it; it reads them with relaxed loads, trusts
 * a child pointer only if it is a registered scope, and calls a type's
 * describe() only on the owner thread's own scopes.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/internal.h"

reap_type reap__type_scope = REAP_TYPE_INIT("scope", NULL);
atomic_bool reap__ledger_on = true;

/* ------------------------------------------------------------------ */
/* Types and counters                                                   */

#define OTHER_ID (REAP__MAX_TYPES - 1) /* shared by types past the limit */
static reap_type type_other = REAP_TYPE_INIT("(other)", NULL);
static pthread_mutex_t types_lock = PTHREAD_MUTEX_INITIALIZER;
static reap_type *types[REAP__MAX_TYPES];
static unsigned ntypes; /* ids 1..ntypes are in use */

static struct {
	atomic_uint_least64_t created, closed, peak;
} totals[REAP__MAX_TYPES];

void reap__type_register(reap_type *t)
{
	pthread_mutex_lock(&types_lock);
	if (__atomic_load_n(&t->id, __ATOMIC_RELAXED) == 0) {
		unsigned id;

		if (ntypes + 1 < OTHER_ID) {
			id = ntypes + 1;
			__atomic_store_n(&types[id], t, __ATOMIC_RELEASE);
			__atomic_store_n(&ntypes, id, __ATOMIC_RELEASE);
		} else {
			id = OTHER_ID;
			__atomic_store_n(&types[id], &type_other, __ATOMIC_RELEASE);
		}
		/* Release: a thread that sees the id sees types[id]. */
		__atomic_store_n(&t->id, id, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&types_lock);
}

reap_type *reap__type_by_id(unsigned id)
{
	reap_type *t = NULL;

	if (id != 0 && id < REAP__MAX_TYPES)
		t = __atomic_load_n(&types[id], __ATOMIC_ACQUIRE);
	return t;
}

static void raise_peak(unsigned id, uint64_t live)
{
	uint64_t peak = atomic_load_explicit(&totals[id].peak, memory_order_relaxed);

	/* Relaxed CAS: peak is a statistic; only its maximum matters. */
	while (live > peak &&
	       !atomic_compare_exchange_weak_explicit(&totals[id].peak, &peak, live,
						      memory_order_relaxed,
						      memory_order_relaxed))
		;
}

/* Bumped by every fold: a pending high mark taken at the current value
 * is relative to the totals as they are now. */
atomic_uint reap__fold_seq;

/* Thread states, and the lock that serializes folds and reads. */
static pthread_mutex_t threads_lock = PTHREAD_MUTEX_INITIALIZER;
static struct reap__tstate *threads;

/* The sum of the other threads' lowest pending balances of type id since
 * their last folds: how far their unfolded releases can have taken the
 * live count below the totals. Caller holds threads_lock. */
static int64_t others_low(const struct reap__tstate *self, unsigned id)
{
	int64_t low = 0;

	for (struct reap__tstate *t = threads; t != NULL; t = t->next)
		if (t != self)
			low += RD(t->pend[id].low);
	return low;
}

void reap__ledger_flush(struct reap__tstate *ts)
{
	unsigned n = __atomic_load_n(&ntypes, __ATOMIC_RELAXED);
	unsigned seq;

	/* Folds are serialized (one per 64 counts of a thread), so that
	 * each sees the totals whole and the sequence number moves once per
	 * fold. */
	pthread_mutex_lock(&threads_lock);
	seq = atomic_load_explicit(&reap__fold_seq, memory_order_relaxed);

	if (__atomic_load_n(&types[OTHER_ID], __ATOMIC_RELAXED) != NULL)
		n = OTHER_ID;
	ts->now_ms = reap__now_ms();
	for (unsigned id = 1; id <= n; id++) {
		int32_t c = ts->pend[id].created, d = ts->pend[id].closed;
		int32_t high = ts->pend[id].high;
		uint64_t cr, cl;

		if (c == 0 && d == 0)
			continue;
		/* Relaxed: the totals are counters; readers tolerate a
		 * fold in progress (see the essay above). */
		cr = atomic_fetch_add_explicit(&totals[id].created, (uint64_t)c,
					       memory_order_relaxed);
		cl = atomic_fetch_add_explicit(&totals[id].closed, (uint64_t)d,
					       memory_order_relaxed);
		/* The live count when this thread reached its highest balance
		 * since its last fold was: the totals (unchanged since, if no
		 * other thread folded: the sequence number tells), plus that
		 * balance, plus the other threads' pending balances then, each
		 * at least their lowest since their own last fold. So this is
		 * a peak that really happened, exact for one thread. */
		if (high > 0 && ts->pend[id].hseq == seq) {
			int64_t live = (int64_t)(cr - cl) + high + others_low(ts, id);

			if (live > 0)
				raise_peak(id, (uint64_t)live);
		}
		WR(ts->pend[id].created, 0);
		WR(ts->pend[id].closed, 0);
		WR(ts->pend[id].high, 0);
		WR(ts->pend[id].low, 0);
	}
	atomic_fetch_add_explicit(&reap__fold_seq, 1, memory_order_relaxed);
	pthread_mutex_unlock(&threads_lock);
	ts->pend_ops = 0;
}

int reap__ledger_flush_ok(struct reap__tstate *ts)
{
	reap__ledger_flush(ts);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Threads                                                              */

void reap__ledger_thread_attach(struct reap__tstate *ts)
{
	pthread_mutex_lock(&threads_lock);
	ts->prev = NULL;
	ts->next = threads;
	if (threads != NULL)
		threads->prev = ts;
	threads = ts;
	pthread_mutex_unlock(&threads_lock);
}

void reap__ledger_threads_alloc(long *sum, int held)
{
	long n;

	pthread_mutex_lock(&threads_lock);
	n = reap__alloc_total(held);
	for (struct reap__tstate *t = threads; t != NULL; t = t->next)
		n += held ? RD(t->alloc_held) : RD(t->alloc_live);
	pthread_mutex_unlock(&threads_lock);
	*sum = n;
}

void reap__ledger_thread_detach(struct reap__tstate *ts)
{
	reap__ledger_flush(ts); /* nothing counts on this thread after it */
	pthread_mutex_lock(&threads_lock);
	reap__alloc_fold(ts);
	LIST_UNLINK(threads, ts, prev, next);
	pthread_mutex_unlock(&threads_lock);
}

/* Sum the counters of type id: totals plus every thread's pending. The
 * sum can catch another thread mid-fold, so it never raises the peak. */
static void sum_type(unsigned id, uint64_t *created, uint64_t *closed)
{
	uint64_t c = atomic_load_explicit(&totals[id].created, memory_order_relaxed);
	uint64_t d = atomic_load_explicit(&totals[id].closed, memory_order_relaxed);
	for (struct reap__tstate *t = threads; t != NULL; t = t->next) {
		c += (uint64_t)(int64_t)RD(t->pend[id].created);
		d += (uint64_t)(int64_t)RD(t->pend[id].closed);
	}
	*created = c;
	*closed = d;
}

static unsigned types_in_use(void)
{
	unsigned n;

	pthread_mutex_lock(&types_lock);
	n = types[OTHER_ID] != NULL ? OTHER_ID : ntypes;
	pthread_mutex_unlock(&types_lock);
	return n;
}

size_t reap_ledger_count(void)
{
	unsigned n = types_in_use();
	uint64_t live = 0;

	reap__ledger_flush(reap__ts());
	pthread_mutex_lock(&threads_lock);
	for (unsigned id = 1; id <= n; id++) {
		uint64_t c, d;

		sum_type(id, &c, &d);
		if (c > d)
			live += c - d;
	}
	pthread_mutex_unlock(&threads_lock);
	return (size_t)live;
}

static void fill_stat(unsigned id, reap_ledger_stat *st)
{
	uint64_t c, d;

	sum_type(id, &c, &d);
	st->created += c;
	st->closed += d;
	st->live = st->created > st->closed ? st->created - st->closed : 0;
	st->peak += atomic_load_explicit(&totals[id].peak, memory_order_relaxed);
}

int reap_ledger_stats(const char *name, reap_ledger_stat *out)
{
	unsigned n = types_in_use();
	int found = 0;

	memset(out, 0, sizeof *out);
	reap__ledger_flush(reap__ts());
	pthread_mutex_lock(&threads_lock);
	for (unsigned id = 1; id <= n; id++) {
		reap_type *t = reap__type_by_id(id);

		if (t == NULL || strcmp(t->name, name) != 0)
			continue;
		out->name = t->name;
		fill_stat(id, out);
		found = 1;
	}
	pthread_mutex_unlock(&threads_lock);
	return found ? 0 : -ENOENT;
}

size_t reap_ledger_stats_all(reap_ledger_stat *out, size_t cap)
{
	unsigned n = types_in_use();
	size_t k = 0;

	reap__ledger_flush(reap__ts());
	pthread_mutex_lock(&threads_lock);
	for (unsigned id = 1; id <= n; id++) {
		reap_type *t = reap__type_by_id(id);

		if (t == NULL)
			continue;
		if (k < cap) {
			memset(&out[k], 0, sizeof out[k]);
			out[k].name = t->name;
			fill_stat(id, &out[k]);
		}
		k++;
	}
	pthread_mutex_unlock(&threads_lock);
	return k;
}

void reap_ledger_enable(bool on)
{
#if REAP_WITH_LEDGER
	atomic_store_explicit(&reap__ledger_on, on, memory_order_relaxed);
#else
	(void)on;
#endif
}

bool reap_ledger_enabled(void)
{
	return reap__ledger_active();
}

bool reap_ledger_compiled(void)
{
	return REAP_WITH_LEDGER;
}

/* ------------------------------------------------------------------ */
/* The scope registry                                                   */

#define NSHARDS 16
static struct {
	pthread_mutex_t lock;
	reap_scope *head;
} shards[NSHARDS] = {
#define S {PTHREAD_MUTEX_INITIALIZER, NULL}
	S, S, S, S, S, S, S, S, S, S, S, S, S, S, S, S
#undef S
};

void reap__ledger_scope_add(reap_scope *s)
{
	unsigned k = s->shard % NSHARDS;

	pthread_mutex_lock(&shards[k].lock);
	s->reg_prev = NULL;
	s->reg_next = shards[k].head;
	if (s->reg_next != NULL)
		s->reg_next->reg_prev = s;
	shards[k].head = s;
	s->flags |= SF_REGISTERED;
	pthread_mutex_unlock(&shards[k].lock);
}

void reap__ledger_scope_del(reap_scope *s)
{
	unsigned k = s->shard % NSHARDS;

	pthread_mutex_lock(&shards[k].lock);
	LIST_UNLINK(shards[k].head, s, reg_prev, reg_next);
	s->flags &= ~(unsigned)SF_REGISTERED;
	pthread_mutex_unlock(&shards[k].lock);
}

/* Free a chunk a reporter may be reading: under the scope's shard lock,
 * which every report holds throughout. */
void reap__ledger_free_chunk(reap_scope *s, struct reap__chunk *chunk)
{
	unsigned k = s->shard % NSHARDS;

	if (!(s->flags & SF_REGISTERED)) {
		reap__chunk_free(chunk);
		return;
	}
	pthread_mutex_lock(&shards[k].lock);
	reap__chunk_free(chunk);
	pthread_mutex_unlock(&shards[k].lock);
}

/* "root/server/conn#12": names up the owner chain; unnamed scopes show
 * as scope#<id>, thread roots as T<n>. */
/* A thread root's name, if the thread layer gave it one other than the
 * default ("thread", or "T<n>", which says no more than the number). */
static int named_thread(const reap_scope *root, const char *name)
{
	char tn[16];

	if (name == NULL || strcmp(name, "thread") == 0)
		return 0;
	snprintf(tn, sizeof tn, "T%u", root->tid);
	return strcmp(name, tn) != 0;
}

void reap__owner_path(const reap_scope *s, char *buf, size_t len)
{
	const reap_scope *chain[32];
	size_t n = 0, off = 0;

	for (const reap_scope *p = s; p != NULL && n < 32;
	     p = __atomic_load_n(&p->parent, __ATOMIC_ACQUIRE))
		chain[n++] = p;
	buf[0] = '\0';
	if (n == 32)
		off += (size_t)snprintf(buf, len, ".../");
	while (n-- > 0 && off < len) {
		const reap_scope *p = chain[n];
		const char *name = __atomic_load_n(&p->name, __ATOMIC_ACQUIRE);
		int w;

		if ((p->flags & SF_ROOT) && p != &reap__root && named_thread(p, name))
			w = snprintf(buf + off, len - off, "T%u[%s]", p->tid, name);
		else if ((p->flags & SF_ROOT) && p != &reap__root)
			w = snprintf(buf + off, len - off, "T%u", p->tid);
		else if (name != NULL)
			w = snprintf(buf + off, len - off, "%s", name);
		else
			w = snprintf(buf + off, len - off, "scope#%llu",
				     (unsigned long long)p->id);
		if (w < 0)
			break;
		off += (size_t)w;
		if (n > 0 && off + 1 < len)
			buf[off++] = '/', buf[off] = '\0';
	}
	if (off >= len && len > 4)
		memcpy(buf + len - 4, "...", 4);
}

/* ------------------------------------------------------------------ */
/* Reports                                                              */

struct report {
	FILE *f;
	unsigned flags;
	reap_scope **scopes; /* registered scopes, sorted */
	size_t nscopes;
	uint32_t now_ms;
	uint64_t now_ns;
	uint32_t self_tid;
	int depth; /* of the scope being drawn in the tree */
	size_t count;
	size_t per_type[REAP__MAX_TYPES];
};

static int cmp_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)*(reap_scope *const *)a;
	uintptr_t y = (uintptr_t)*(reap_scope *const *)b;

	return x < y ? -1 : x > y;
}

static int registered(struct report *r, reap_scope *s)
{
	return bsearch(&s, r->scopes, r->nscopes, sizeof s, cmp_ptr) != NULL;
}

static void print_age_ms(FILE *f, uint32_t now, uint32_t then)
{
	uint32_t d = now > then ? now - then : 0;

	fprintf(f, "%u.%03us", d / 1000, d % 1000);
}

/* Collect the live entries of s, oldest first, into *out (to be freed
 * with reap_free); return how many. */
static size_t live_entries(reap_scope *s, reap_cleanup ***out)
{
	struct reap__chunk *chunks[64], *c;
	reap_cleanup *top = __atomic_load_n(&s->top, __ATOMIC_ACQUIRE);
	size_t nc = 0, n = 0, cap = 64;
	reap_cleanup **v = reap_malloc(cap * sizeof *v);

	*out = NULL;
	if (v == NULL)
		return 0;
	for (c = __atomic_load_n(&s->chunk, __ATOMIC_ACQUIRE); c != NULL && nc < 64;
	     c = RD(c->prev))
		chunks[nc++] = c;
	while (nc-- > 0) {
		c = chunks[nc];
		reap_cleanup *first = reap__chunk_first(c), *last = reap__chunk_end(c);
		reap_cleanup *end = c == RD(s->chunk) ? top : last;

		if (end < first || end > last)
			end = first; /* the top moved under us */
		for (reap_cleanup *e = first; e < end; e++) {
			if (reap__is_seg_header(e) || !(RD(e->kf) & F_LIVE))
				continue;
			if (n == cap) {
				reap_cleanup **nv = reap_realloc(v, 2 * cap * sizeof *v);

				if (nv == NULL)
					break;
				v = nv;
				cap *= 2;
			}
			v[n++] = e;
		}
	}
	*out = v;
	return n;
}

/* The key of an entry, checked: a report may read an entry mid-write. */
static const struct reap__key *entry_key(reap_cleanup *e)
{
	uint32_t id = KF_KEY(RD(e->kf));

	return id > 0 && id < REAP__MAX_KEYS && reap__keys[id].site != NULL
		? &reap__keys[id] : NULL;
}

static void describe(struct report *r, reap_scope *s, reap_cleanup *e,
		     reap_type *t, char *buf, size_t len)
{
	buf[0] = '\0';
	if (t != NULL && t->describe != NULL && s->tid == r->self_tid)
		t->describe(RD(e->arg), buf, len);
}

#define TREE_DEPTH 100 /* deepest nesting the tree draws */

static void tree_scope(struct report *r, reap_scope *s, const char *prefix);

static void tree_entry(struct report *r, reap_scope *s, reap_cleanup *e,
		       const char *prefix, int last)
{
	unsigned flags = KF_FLAGS(RD(e->kf));
	const struct reap__key *k = entry_key(e);
	char desc[128], sub[512];

	snprintf(sub, sizeof sub, "%s%s", prefix, last ? "    " : "|   ");
	fprintf(r->f, "%s%s", prefix, last ? "`-- " : "|-- ");
	if (F_KIND_OF(flags) == E_CHILD) {
		reap_scope *c = RD(e->arg);

		if (registered(r, c) && __atomic_load_n(&c->parent, __ATOMIC_ACQUIRE) == s) {
			/* Bounded depth: the report must not exhaust the
			 * reporting thread's stack on a pathological tree. */
			if (r->depth >= TREE_DEPTH) {
				fprintf(r->f, "... (scopes nested deeper than %d levels "
					      "not shown)\n", TREE_DEPTH);
				return;
			}
			r->depth++;
			tree_scope(r, c, sub);
			r->depth--;
			return;
		}
		fprintf(r->f, "scope (opened while the ledger was off)\n");
		return;
	}
	if (!(flags & F_COUNTED)) {
		fprintf(r->f, "cleanup (registered while the ledger was off)\n");
		return;
	}
	reap_type *t = k ? k->type : NULL;

	describe(r, s, e, t, desc, sizeof desc);
	fprintf(r->f, "%s%s%s  created at ", t ? t->name : "?", desc[0] ? " " : "",
		desc);
	reap__site_print(r->f, k ? k->site : NULL);
	fprintf(r->f, "  T%u  age ", (unsigned)s->tid);
	print_age_ms(r->f, r->now_ms, RD(e->t_ms));
	fputc('\n', r->f);
	r->count++;
}

static void tree_scope(struct report *r, reap_scope *s, const char *prefix)
{
	reap_cleanup **v;
	size_t n = live_entries(s, &v);
	char path[256];
	const char *name = __atomic_load_n(&s->name, __ATOMIC_ACQUIRE);

	if (s->flags & SF_ROOT) {
		if (s == &reap__root)
			fprintf(r->f, "root  (process root scope)\n");
		else if (named_thread(s, name))
			fprintf(r->f, "T%u[%s]  (root scope of thread T%u \"%s\")\n",
				s->tid, name, s->tid, name);
		else
			fprintf(r->f, "T%u  (root scope of thread T%u)\n", s->tid, s->tid);
	} else {
		uint64_t age = r->now_ns > s->t_ns ? r->now_ns - s->t_ns : 0;

		reap__owner_path(s, path, sizeof path);
		if (name != NULL)
			fprintf(r->f, "%s  scope", name);
		else
			fprintf(r->f, "scope#%llu", (unsigned long long)s->id);
		fprintf(r->f, "  created at ");
		reap__site_print(r->f, s->site);
		fprintf(r->f, "  T%u  age %llu.%03llus", s->tid,
			(unsigned long long)(age / 1000000000u),
			(unsigned long long)(age / 1000000u % 1000u));
		if (RD(s->arena.bytes) > 0)
			fprintf(r->f, "  memory %zu bytes", RD(s->arena.bytes));
		fputc('\n', r->f);
		r->count++;
	}
	for (size_t i = 0; i < n; i++)
		tree_entry(r, s, v[i], prefix, i + 1 == n);
	reap_free(v);
}

void reap__leak_print(FILE *f, const char *what, const char *desc,
		      uint64_t age_ms, uint32_t tid, const reap_site *site,
		      const char *owner)
{
	fprintf(f, "Open %s%s%s, %llu.%03llus old, created by thread T%u at:\n",
		what, desc[0] ? " " : "", desc, (unsigned long long)(age_ms / 1000),
		(unsigned long long)(age_ms % 1000), tid);
	fprintf(f, "    #0 ");
	reap__site_print(f, site);
	fprintf(f, "\n    owner: %s\n\n", owner);
}

static void leak_header(struct report *r, const char *what, const char *desc,
			uint64_t age_ms, uint32_t tid, const reap_site *site,
			const char *path)
{
	reap__leak_print(r->f, what, desc, age_ms, tid, site, path);
}

static pthread_mutex_t sources_lock = PTHREAD_MUTEX_INITIALIZER;
static reap__leak_source sources[8];
static atomic_uint nsources;

void reap__ledger_add_source(reap__leak_source fn)
{
	unsigned n;

	pthread_mutex_lock(&sources_lock);
	n = atomic_load_explicit(&nsources, memory_order_relaxed);
	if (n < 8) {
		sources[n] = fn;
		/* Release: a reporter that sees the count sees the slot. */
		atomic_store_explicit(&nsources, n + 1, memory_order_release);
	}
	pthread_mutex_unlock(&sources_lock);
}

static void leaks_scope(struct report *r, reap_scope *s)
{
	reap_cleanup **v;
	size_t n = live_entries(s, &v);
	char path[256], desc[160];

	if (!(s->flags & SF_ROOT) && (s->flags & SF_COUNTED)) {
		const char *name = __atomic_load_n(&s->name, __ATOMIC_ACQUIRE);
		size_t mem = RD(s->arena.bytes);
		uint64_t age = r->now_ns > s->t_ns ? r->now_ns - s->t_ns : 0;

		reap_scope *p = __atomic_load_n(&s->parent, __ATOMIC_ACQUIRE);

		if (p != NULL)
			reap__owner_path(p, path, sizeof path);
		else
			snprintf(path, sizeof path, "(none)");
		snprintf(desc, sizeof desc, "%s%s%s(%zu bytes of memory)",
			 name ? "\"" : "", name ? name : "", name ? "\" " : "", mem);
		leak_header(r, "scope", desc, age / 1000000u, s->tid, s->site, path);
		r->count++;
		r->per_type[reap__type_id(&reap__type_scope)]++;
	}
	reap__owner_path(s, path, sizeof path);
	for (size_t i = 0; i < n; i++) {
		reap_cleanup *e = v[i];
		unsigned flags = KF_FLAGS(RD(e->kf));
		uint32_t t_ms = RD(e->t_ms);
		const struct reap__key *k = entry_key(e);

		if (F_KIND_OF(flags) == E_CHILD || !(flags & F_COUNTED) || k == NULL)
			continue;
		describe(r, s, e, k->type, desc, sizeof desc);
		leak_header(r, k->type->name, desc,
			    r->now_ms > t_ms ? r->now_ms - t_ms : 0, s->tid,
			    k->site, path);
		r->count++;
		r->per_type[k->type_id]++;
	}
	reap_free(v);
}

size_t reap_ledger_report(FILE *f, unsigned flags)
{
	struct report *r = reap_calloc(1, sizeof *r);
	size_t cap = 256, count, printed = 0;

	if (r == NULL)
		return 0;
	r->f = f;
	r->flags = flags;
	r->self_tid = reap__ts()->num;
	r->now_ms = reap__now_ms();
	r->now_ns = reap_now_ns();
	if (!REAP_WITH_LEDGER) {
		fprintf(f, "reap: the ledger was compiled out (REAP_LEDGER=OFF)\n");
		reap_free(r);
		return 0;
	}
	r->scopes = reap_malloc(cap * sizeof *r->scopes);
	for (int k = 0; k < NSHARDS; k++)
		pthread_mutex_lock(&shards[k].lock);
	for (int k = 0; k < NSHARDS && r->scopes != NULL; k++) {
		for (reap_scope *s = shards[k].head; s != NULL; s = s->reg_next) {
			if (r->nscopes == cap) {
				reap_scope **nv = reap_realloc(r->scopes, 2 * cap * sizeof *nv);

				if (nv == NULL)
					break;
				r->scopes = nv;
				cap *= 2;
			}
			r->scopes[r->nscopes++] = s;
		}
	}
	if (r->scopes == NULL) {
		fprintf(f, "reap: no memory for a ledger report\n");
	} else {
		qsort(r->scopes, r->nscopes, sizeof *r->scopes, cmp_ptr);
		if (flags & REAP_REPORT_TREE) {
			fprintf(f, "reap ledger: owner tree\n");
			for (size_t i = 0; i < r->nscopes; i++)
				if (r->scopes[i]->flags & SF_ROOT)
					tree_scope(r, r->scopes[i], "");
			/* Scopes whose owner was opened while the ledger was
			 * off cannot be reached from a root: show each such
			 * subtree on its own, under its owner path. */
			for (size_t i = 0; i < r->nscopes; i++) {
				reap_scope *s = r->scopes[i];
				reap_scope *p = __atomic_load_n(&s->parent, __ATOMIC_ACQUIRE);
				char path[256];

				if ((s->flags & SF_ROOT) || p == NULL || registered(r, p))
					continue;
				reap__owner_path(p, path, sizeof path);
				fprintf(f, "%s  (owner opened while the ledger was off)\n",
					path);
				fprintf(f, "`-- ");
				tree_scope(r, s, "    ");
			}
		}
		if (flags & REAP_REPORT_LEAKS) {
			/* The tree, if drawn, counted the same live set. */
			printed = r->count;
			r->count = 0;
			fprintf(f, "=================================================="
				   "===============\n");
			fprintf(f, "==%d==ERROR: reap: resources still open\n\n",
				(int)getpid());
			for (size_t i = 0; i < r->nscopes; i++)
				leaks_scope(r, r->scopes[i]);
			/* Acquire: pairs with the registration's store. */
			for (unsigned i = 0, n = atomic_load_explicit(
					&nsources, memory_order_acquire); i < n; i++)
				r->count += sources[i](f, r->per_type);
			fprintf(f, "SUMMARY: reap: %zu open resource(s)", r->count);
			for (unsigned id = 1; id < REAP__MAX_TYPES; id++) {
				reap_type *t = reap__type_by_id(id);

				if (r->per_type[id] > 0 && t != NULL)
					fprintf(f, ", %zu %s", r->per_type[id], t->name);
			}
			fprintf(f, ".\n");
		}
	}
	for (int k = NSHARDS - 1; k >= 0; k--)
		pthread_mutex_unlock(&shards[k].lock);
	if (flags & REAP_REPORT_STATS) {
		reap_ledger_stat st[REAP__MAX_TYPES];
		size_t n = reap_ledger_stats_all(st, REAP__MAX_TYPES);

		fprintf(f, "%-12s %10s %10s %10s %10s\n", "type", "created",
			"closed", "live", "peak");
		for (size_t i = 0; i < n && i < REAP__MAX_TYPES; i++)
			fprintf(f, "%-12s %10llu %10llu %10llu %10llu\n", st[i].name,
				(unsigned long long)st[i].created,
				(unsigned long long)st[i].closed,
				(unsigned long long)st[i].live,
				(unsigned long long)st[i].peak);
	}
	count = r->count > printed ? r->count : printed;
	reap_free(r->scopes);
	reap_free(r);
	return count;
}

size_t reap_ledger_check(FILE *f)
{
	size_t n = reap_ledger_count();

	if (n == 0)
		return 0;
	reap_ledger_report(f, REAP_REPORT_LEAKS);
	return n;
}

/* ------------------------------------------------------------------ */
/* Fork                                                                 */

/* In a forked child: the other threads are gone, and what was live is
 * the parent's. Locks are made anew (their holders may have been other
 * threads), the counts start from zero, the registries hold only this
 * thread and, later, the child's own scopes. */
size_t reap__ledger_fork_child(struct reap__tstate *ts)
{
	uint64_t live = 0;

	reap__mutex_reset(&types_lock);
	reap__mutex_reset(&threads_lock);
	reap__mutex_reset(&sources_lock);
	/* Written only where not already so: see reap__mutex_reset(). */
	for (unsigned k = 0; k < NSHARDS; k++) {
		reap__mutex_reset(&shards[k].lock);
		if (shards[k].head != NULL)
			shards[k].head = NULL;
	}
	for (unsigned id = 1; id < REAP__MAX_TYPES; id++) {
		uint64_t c, d;

		sum_type(id, &c, &d);
		if (c > d)
			live += c - d;
		if (c != 0 || d != 0 ||
		    atomic_load_explicit(&totals[id].peak, memory_order_relaxed) != 0) {
			atomic_store_explicit(&totals[id].created, 0, memory_order_relaxed);
			atomic_store_explicit(&totals[id].closed, 0, memory_order_relaxed);
			atomic_store_explicit(&totals[id].peak, 0, memory_order_relaxed);
		}
		if (ts != NULL && (ts->pend[id].created | ts->pend[id].closed |
				   ts->pend[id].high | ts->pend[id].low) != 0)
			memset(&ts->pend[id], 0, sizeof ts->pend[id]);
	}
	threads = NULL;
	if (ts != NULL) {
		ts->pend_ops = 0;
		ts->prev = ts->next = NULL;
		threads = ts;
	}
	return (size_t)live;
}

