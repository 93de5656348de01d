/*
 * Scopes: the owner tree, deferred cleanups and their close.
 *
 * A scope keeps its cleanups on a stack of chunks. Opening a child scope
 * pushes an entry for it on the parent's stack, so children and cleanups
 * interleave in one order of creation, and close simply pops that stack.
 * An entry is 16 bytes: its argument, its creation time, and a key that
 * names its function, type and call site (site.c); its owner is found
 * from the chunk it lives in (internal.h).
 *
 *   - Close pops one entry at a time and runs it. A cleanup may register
 *     more cleanups (they land on top and run next), cancel or run older
 *     ones (their entries turn dead and are skipped), or close a child
 *     early. Nothing it does can make close skip a live entry or run one
 *     twice, because an entry is marked dead before it runs.
 *   - Dead entries at the top are popped at once, so the common pattern
 *     "defer, then cancel" in a loop does not grow the stack. An emptied
 *     chunk is kept as the one spare; any other is freed under the
 *     ledger's shard lock, because the reporter may be reading it from
 *     another thread while it holds those locks.
 *   - The error in flight is (err, chain): err is authoritative, chain is
 *     its description and may lag behind when memory for a link ran out.
 *
 * Misuse is caught by the magic word: closed scopes keep S_CLOSED and
 * their close site in a per-thread quarantine of the last 64 closed
 * scopes, so a use after close names both sites instead of reading freed
 * memory.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "../base/internal.h"

reap_scope reap__root;
void (*reap__task_close_hook)(struct reap_task *t, int begin);
reap_scope *(*reap__task_scope_hook)(struct reap__tstate *ts);

static const char *sname(const reap_scope *s, char *buf, size_t len)
{
	reap__owner_path(s, buf, len);
	return buf;
}

static REAP_NORETURN void misuse_scope(const reap_scope *s, const char *what,
				       const reap_site *site)
{
	char path[256];

	if (s->magic == S_CLOSED) {
		/* Its name went with its memory; a copy was kept. */
		reap__misuse("%s at %s:%d in %s(): scope %s was created at %s:%d in "
			     "%s() and first closed at %s:%d in %s()",
			     what, site->file, site->line, site->func,
			     s->closed_name[0] ? s->closed_name : "(unnamed)",
			     s->site ? s->site->file : "?", s->site ? s->site->line : 0,
			     s->site ? s->site->func : "?",
			     s->close_site ? s->close_site->file : "?",
			     s->close_site ? s->close_site->line : 0,
			     s->close_site ? s->close_site->func : "?");
	}
	if (s->magic == S_CLOSING || s->magic == S_OPEN) {
		reap__misuse("%s at %s:%d in %s(): scope %s was created at %s:%d "
			     "in %s()%s",
			     what, site->file, site->line, site->func,
			     sname(s, path, sizeof path),
			     s->site ? s->site->file : "(root)",
			     s->site ? s->site->line : 0,
			     s->site ? s->site->func : "-",
			     s->magic == S_CLOSING ? " and is closing" : "");
	}
	reap__misuse("%s at %s:%d in %s(): %p is not a reap scope (freed long "
		     "ago, or never opened)", what, site->file, site->line,
		     site->func, (const void *)s);
}

static inline void check_open(reap_scope *s, const reap_site *site,
			      const char *what)
{
	if (unlikely(s->magic != S_OPEN && s->magic != S_CLOSING))
		misuse_scope(s, what, site);
}

/* ------------------------------------------------------------------ */
/* The cleanup stack                                                    */

/* Chunks grow 1, 4, 16, then stay at 64 segments (29 to 2045 entries). */
static uint32_t chunk_nseg(unsigned nchunks)
{
	return nchunks >= 3 ? 64u : 1u << (2 * nchunks);
}

static struct reap__chunk *chunk_new(reap_scope *owner, uint32_t nseg)
{
	size_t bytes;
	void *base = reap__block_alloc_aligned((size_t)nseg * REAP__SEG, REAP__SEG,
					       &bytes);
	struct reap__chunk *c;

	if (base == NULL)
		return NULL;
	c = (struct reap__chunk *)(((uintptr_t)base + REAP__SEG - 1) &
				   ~(uintptr_t)(REAP__SEG - 1));
	c->self = c;
	c->owner = owner;
	c->prev = NULL;
	c->base = base;
	c->bytes = bytes;
	c->nseg = nseg;
	for (uint32_t i = 1; i < nseg; i++)
		*(struct reap__chunk **)((char *)c + (size_t)i * REAP__SEG) = c;
	return c;
}

void reap__chunk_free(struct reap__chunk *c)
{
	if (c != NULL)
		reap__block_free(c->base, c->bytes);
}

static void free_chunks(struct reap__chunk *c)
{
	while (c != NULL) {
		struct reap__chunk *prev = c->prev;

		reap__chunk_free(c);
		c = prev;
	}
}

/* End of the segment that slot e is in. */
static inline reap_cleanup *seg_end(reap_cleanup *e)
{
	return (reap_cleanup *)(((uintptr_t)e | (REAP__SEG - 1)) + 1);
}

static void set_top(reap_scope *s, reap_cleanup *top, reap_cleanup *limit)
{
	s->limit = limit;
	__atomic_store_n(&s->top, top, __ATOMIC_RELEASE);
}

/* top reached the end of its segment: step into the next segment of the
 * chunk, or into a spare or new chunk. */
static __attribute__((noinline)) int advance(reap_scope *s)
{
	struct reap__chunk *c = s->chunk;

	if (c != NULL && s->limit < reap__chunk_end(c)) {
		set_top(s, s->limit + 1, s->limit + REAP__SEG_SLOTS);
		return 0;
	}
	if ((c = s->spare) != NULL) {
		s->spare = NULL;
		c->owner = s;
	} else {
		if ((c = chunk_new(s, chunk_nseg(s->nchunks))) == NULL)
			return -ENOMEM;
		s->nchunks++;
	}
	WR(c->prev, s->chunk);
	/* Release: a reporter that loads the chunk with acquire sees it
	 * initialized. */
	__atomic_store_n(&s->chunk, c, __ATOMIC_RELEASE);
	set_top(s, reap__chunk_first(c), (reap_cleanup *)c + REAP__SEG_SLOTS);
	return 0;
}

/* The top chunk is empty: step back to the full one below, keeping the
 * empty one as the spare. At most one spare is kept, so a scope's stack
 * never holds much more than its live entries; an older spare is freed
 * under the ledger's lock, since a reporter may still be reading it. */
static void shrink(reap_scope *s)
{
	struct reap__chunk *c = s->chunk, *below = c->prev;

	WR(s->chunk, below);
	if (s->spare != NULL)
		reap__ledger_free_chunk(s, s->spare);
	WR(c->prev, (struct reap__chunk *)NULL);
	s->spare = c;
	set_top(s, reap__chunk_end(below), reap__chunk_end(below));
}

/* The slot below top, stepping over segment headers and empty chunks;
 * NULL when the stack is empty. Does not move top. */
static reap_cleanup *below_top(reap_scope *s)
{
	for (;;) {
		struct reap__chunk *c = s->chunk;
		reap_cleanup *e;

		if (c == NULL)
			return NULL;
		if (s->top == reap__chunk_first(c)) {
			if (c->prev == NULL)
				return NULL;
			shrink(s);
			continue;
		}
		e = s->top - 1;
		if (reap__is_seg_header(e))
			e--;
		return e;
	}
}

/* Pop dead entries off the top. */
static void pop_dead(reap_scope *s)
{
	reap_cleanup *e;

	while ((e = below_top(s)) != NULL && !(RD(e->kf) & F_LIVE))
		set_top(s, e, seg_end(e));
	if (e == NULL && s->spare != NULL) {
		/* Empty: a long-lived scope keeps just one chunk. */
		reap__ledger_free_chunk(s, s->spare);
		s->spare = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Registration                                                         */

static const reap_site unknown_site = {"(unknown)", "?", 0};

/* Push an entry whose key is known. A child scope's entry is not counted:
 * the scope counts itself. */
static inline int push_key(reap_scope *s, struct reap__tstate *ts, uint32_t key,
			   void *arg, unsigned kind, reap_cleanup **h)
{
	reap_cleanup *e;
	unsigned flags = F_LIVE | kind << 2;

	if (unlikely(s->top == s->limit) && advance(s) < 0)
		return -ENOMEM;
	e = s->top;
	WR(e->arg, arg);
	if (reap__ledger_active()) {
		WR(e->t_ms, ts->now_ms);
		if (kind != E_CHILD) {
			flags |= F_COUNTED;
			reap__count_created(ts, reap__keys[key].type_id);
		}
	} else {
		WR(e->t_ms, 0u);
	}
	WR(e->kf, KF(key, flags));
	/* Release: a reporter that sees the new top sees the entry. */
	__atomic_store_n(&s->top, e + 1, __ATOMIC_RELEASE);
	if (h != NULL)
		*h = e;
	return 0;
}

static inline int push(reap_scope *s, struct reap__tstate *ts, reap_type *type,
		       void *fn, void *arg, unsigned kind, reap_cleanup **h,
		       const reap_site *site)
{
	uint32_t key = reap__key(ts, site, fn, type);

	if (unlikely(key == 0))
		return -ENOSPC;
	return push_key(s, ts, key, arg, kind, h);
}

/* The careful path of both defers: every check, any key, a new chunk. It
 * leaves the key in the thread's one-entry cache for the fast path. */
static int defer_slow(reap_scope *s, reap_type *type, void *fn, void *arg,
		      unsigned kind, reap_cleanup **h, const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	uint32_t key;

	if (s == NULL && (s = reap__current(ts)) == NULL)
		return -ENOMEM;
	if (site == NULL)
		site = &unknown_site;
	check_open(s, site, kind == E_EXIT ? "reap_defer_exit" : "reap_defer");
	if (fn == NULL)
		return -EINVAL;
	if (type == NULL)
		type = &reap_type_defer;
	if ((key = reap__key(ts, site, fn, type)) == 0)
		return -ENOSPC;
	ts->last.site = site;
	ts->last.fn = fn;
	ts->last.type = type;
	ts->last.id = key;
	return push_key(s, ts, key, arg, kind, h);
}

/* The slow path entered with six arguments, so that the fast path's call
 * to it is a tail call and the fast path needs no frame. */
static __attribute__((noinline)) int defer_slow_plain(reap_scope *s,
						      reap_type *type, void *fn,
						      void *arg, reap_cleanup **h,
						      const reap_site *site)
{
	return defer_slow(s, type, fn, arg, E_PLAIN, h, site);
}

static __attribute__((noinline)) int defer_slow_exit(reap_scope *s,
						     reap_type *type, void *fn,
						     void *arg, reap_cleanup **h,
						     const reap_site *site)
{
	return defer_slow(s, type, fn, arg, E_EXIT, h, site);
}

/*
 * The fast path: same call site, function and type as the thread's last
 * registration, and an open scope. It calls out only to step to the next
 * segment (every 31 entries), to fold the counters (every 64) or to take
 * the slow path. The
 * thread's last key starts as a sentinel that no caller can pass, so a
 * thread that has not registered yet, or a NULL argument, always takes
 * the slow path.
 */
static inline __attribute__((always_inline)) int
defer_fast(reap_scope *s, reap_type *type, void *fn,
			     void *arg, unsigned kind, reap_cleanup **h,
			     const reap_site *site)
{
	struct reap__tstate *ts = reap__ts_self;
	reap_cleanup *e;
	unsigned flags = F_LIVE | kind << 2;

	if (unlikely(ts == NULL || s == NULL || ts->last.site != site ||
		     ts->last.fn != fn || ts->last.type != type ||
		     s->magic != S_OPEN)) {
		if (kind == E_PLAIN)
			return defer_slow_plain(s, type, fn, arg, h, site);
		return defer_slow_exit(s, type, fn, arg, h, site);
	}
	/* The end of a segment (every 31 entries): step to the next. */
	if (unlikely(s->top == s->limit) && unlikely(advance(s) < 0))
		return -ENOMEM;
	e = s->top;
	WR(e->arg, arg);
	if (reap__ledger_active()) {
		unsigned id = reap__keys[ts->last.id].type_id;

		WR(e->t_ms, ts->now_ms);
		flags |= F_COUNTED;
		reap__count_up(ts, id);
	} else {
		WR(e->t_ms, 0u);
	}
	WR(e->kf, KF(ts->last.id, flags));
	/* Release: a reporter that sees the new top sees the entry. */
	__atomic_store_n(&s->top, e + 1, __ATOMIC_RELEASE);
	if (h != NULL)
		*h = e;
	if (unlikely(ts->pend_ops >= 64))
		return reap__ledger_flush_ok(ts);
	return 0;
}

int reap_defer_at(reap_scope *s, reap_type *type, reap_cleanup_fn fn,
		  void *arg, reap_cleanup **h, const reap_site *site)
{
	return defer_fast(s, type, (void *)fn, arg, E_PLAIN, h, site);
}

int reap_defer_exit_at(reap_scope *s, reap_type *type, reap_exit_fn fn,
		       void *arg, reap_cleanup **h, const reap_site *site)
{
	return defer_fast(s, type, (void *)fn, arg, E_EXIT, h, site);
}

static void check_handle(reap_cleanup *h, const char *what)
{
	uint32_t kf = RD(h->kf);

	if (unlikely(!(kf & F_LIVE))) {
		const reap_site *site = KF_KEY(kf) ? reap__keys[KF_KEY(kf)].site : NULL;

		reap__misuse("%s on a cleanup that already ran, was cancelled or "
			     "moved; it was registered at %s:%d in %s()", what,
			     site ? site->file : "?", site ? site->line : 0,
			     site ? site->func : "?");
	}
}

/* Mark an entry dead and release it in the ledger. */
static inline void retire(struct reap__tstate *ts, reap_cleanup *e, uint32_t kf)
{
	WR(e->kf, kf & ~(uint32_t)F_LIVE);
	if (kf & F_COUNTED)
		reap__count_closed(ts, reap__keys[KF_KEY(kf)].type_id);
}

int reap_cleanup_run(reap_cleanup *h)
{
	struct reap__tstate *ts = reap__ts();
	reap_scope *s;
	uint32_t kf;
	void *arg;
	int rc = 0;

	check_handle(h, "reap_cleanup_run");
	s = reap__chunk_of(h)->owner;
	kf = h->kf;
	arg = h->arg;
	retire(ts, h, kf);
	reap__count_settle(ts);
	pop_dead(s);
	if (F_KIND_OF(kf) == E_PLAIN) {
		((reap_cleanup_fn)reap__keys[KF_KEY(kf)].fn)(arg);
	} else if (F_KIND_OF(kf) == E_EXIT) {
		(void)reap__raise_take(0);
		rc = ((reap_exit_fn)reap__keys[KF_KEY(kf)].fn)(arg, NULL);
		(void)reap__raise_take(rc);
		if (rc > 0)
			rc = 0;
	}
	return rc;
}

void reap_cleanup_cancel(reap_cleanup *h)
{
	struct reap__tstate *ts = reap__ts();
	reap_scope *s;

	check_handle(h, "reap_cleanup_cancel");
	s = reap__chunk_of(h)->owner;
	retire(ts, h, h->kf);
	reap__count_settle(ts);
	pop_dead(s);
}

/* Copy entry e to the top of dst, as the same resource; e turns dead. */
static reap_cleanup *transplant(reap_cleanup *e, reap_scope *dst)
{
	reap_cleanup *n;

	if (unlikely(dst->top == dst->limit) && advance(dst) < 0)
		return NULL;
	n = dst->top;
	WR(n->arg, e->arg);
	WR(n->t_ms, e->t_ms);
	WR(n->kf, e->kf);
	__atomic_store_n(&dst->top, n + 1, __ATOMIC_RELEASE);
	WR(e->kf, e->kf & ~(uint32_t)F_LIVE); /* no ledger change */
	return n;
}

int reap_cleanup_move(reap_cleanup **h, reap_scope *dst)
{
	reap_cleanup *e = *h, *n;
	reap_scope *src;

	check_handle(e, "reap_cleanup_move");
	src = reap__chunk_of(e)->owner;
	check_open(dst, &unknown_site, "reap_cleanup_move");
	if (dst->magic != S_OPEN)
		return REAP_ECLOSED;
	if ((n = transplant(e, dst)) == NULL)
		return -ENOMEM;
	pop_dead(src);
	*h = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Scope memory                                                         */

#define ARENA_BIG 1024

/* The careful path of reap_scope_alloc: any scope state, any size, a new
 * block. */
static __attribute__((noinline)) void *scope_alloc_slow(reap_scope *s, size_t size)
{
	struct reap__arena *a;
	struct reap__block *b;
	void *p;

	if (s == NULL && (s = reap__current(reap__ts())) == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	check_open(s, &unknown_site, "reap_scope_alloc");
	a = &s->arena;
	if (unlikely(size > SIZE_MAX / 2)) {
		errno = ENOMEM;
		return NULL;
	}
	size = size == 0 ? 16 : (size + 15) & ~(size_t)15;
	if ((size_t)(a->end - a->cur) >= size) {
		p = a->cur;
		a->cur += size;
		WR(a->bytes, a->bytes + size);
		return p;
	}
	if (size > ARENA_BIG) {
		/* A block of its own, straight from the allocator: one-off
		 * sizes would only clutter the block cache. */
		if ((b = reap_malloc(sizeof *b + size)) == NULL)
			return NULL;
		b->size = 0;
	} else {
		/* Blocks grow 4, 8, 16, 32, then stay at 64 KiB. */
		size_t cap = a->nblocks >= 4 ? 65536 : (size_t)4096 << a->nblocks;

		if ((b = reap__block_alloc(sizeof *b + cap)) == NULL)
			return NULL;
		b->size = cap;
		a->nblocks++;
		a->cur = (char *)b->data + size;
		a->end = (char *)b->data + cap;
	}
	b->next = a->blocks;
	a->blocks = b;
	WR(a->bytes, a->bytes + size);
	return b->data;
}

void *reap_scope_alloc(reap_scope *s, size_t size)
{
	/* Fast path: an open scope, 1 to ARENA_BIG bytes, room in the block. */
	if (likely(s != NULL && s->magic == S_OPEN && size - 1 < ARENA_BIG)) {
		struct reap__arena *a = &s->arena;
		size_t n = (size + 15) & ~(size_t)15;

		if (likely(n <= (size_t)(a->end - a->cur))) {
			void *p = a->cur;

			a->cur += n;
			WR(a->bytes, a->bytes + n);
			return p;
		}
	}
	return scope_alloc_slow(s, size);
}

char *reap_scope_strdup(reap_scope *s, const char *str)
{
	size_t n = strlen(str) + 1;
	char *p = reap_scope_alloc(s, n);

	if (p != NULL)
		memcpy(p, str, n);
	return p;
}

static void arena_free(struct reap__arena *a)
{
	struct reap__block *b = a->blocks;

	while (b != NULL) {
		struct reap__block *next = b->next;

		if (b->size == 0)
			reap_free(b); /* a block of its own */
		else
			reap__block_free(b, sizeof *b + b->size);
		b = next;
	}
	memset(a, 0, sizeof *a);
}

/* ------------------------------------------------------------------ */
/* Opening                                                              */

static uint64_t next_scope_id(struct reap__tstate *ts)
{
	static atomic_uint_fast64_t ids = 1;

	if (ts->next_id == ts->id_limit) {
		/* Relaxed: ids only need to be unique. */
		ts->next_id = atomic_fetch_add_explicit(&ids, 1024, memory_order_relaxed);
		ts->id_limit = ts->next_id + 1024;
	}
	return ts->next_id++;
}

static void scope_init(reap_scope *s, struct reap__tstate *ts, reap_scope *parent,
		       const reap_site *site)
{
	memset(s, 0, sizeof *s);
	s->magic = S_OPEN;
	s->parent = parent;
	s->site = site;
	s->tid = ts->num;
	s->shard = ts->num;
	s->id = next_scope_id(ts);
	s->gen = reap__fork_gen;
}

/* Record a new scope in the ledger: counted and registered. */
static void scope_track(reap_scope *s, struct reap__tstate *ts)
{
	if (!reap__ledger_active())
		return;
	s->t_ns = reap_now_ns();
	ts->now_ms = s->t_ns > reap__start_ns()
		? (uint32_t)((s->t_ns - reap__start_ns()) / 1000000u) : 0;
	s->flags |= SF_COUNTED;
	reap__count_created(ts, reap__type_id(&reap__type_scope));
	reap__ledger_scope_add(s);
}

int reap_scope_open_at(reap_scope *parent, reap_scope **out,
		       const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	reap_scope *s;
	int rc;

	if (parent == NULL && (parent = reap__current(ts)) == NULL)
		return -ENOMEM;
	if (unlikely(site == NULL))
		site = &unknown_site;
	check_open(parent, site, "reap_scope_open");
	if ((s = reap_malloc(sizeof *s)) == NULL)
		return -ENOMEM;
	scope_init(s, ts, parent, site);
	rc = push(parent, ts, &reap__type_scope, NULL, s, E_CHILD, &s->self, site);
	if (rc < 0) {
		reap_free(s);
		return rc;
	}
	scope_track(s, ts);
	*out = s;
	return 0;
}

static int is_ancestor(const reap_scope *a, const reap_scope *d)
{
	for (const reap_scope *p = d->parent; p != NULL; p = p->parent)
		if (p == a)
			return 1;
	return 0;
}

int reap_scope_move(reap_scope *s, reap_scope *np)
{
	reap_scope *op = s->parent;
	reap_cleanup *n;

	check_open(s, &unknown_site, "reap_scope_move");
	check_open(np, &unknown_site, "reap_scope_move");
	if ((s->flags & SF_ROOT) || np == s || is_ancestor(s, np))
		return -EINVAL;
	if (s->magic != S_OPEN || np->magic != S_OPEN)
		return REAP_ECLOSED;
	if ((n = transplant(s->self, np)) == NULL)
		return -ENOMEM;
	__atomic_store_n(&s->parent, np, __ATOMIC_RELEASE);
	s->self = n;
	pop_dead(op);
	return 0;
}

int reap_scope_pop_all_at(reap_scope *s, reap_scope *parent, reap_scope **out,
			  const reap_site *site)
{
	struct reap__tstate *ts = reap__ts();
	struct reap__chunk *c, *fresh = NULL;
	reap_scope *n;
	uint32_t key;

	if (parent == NULL && (parent = reap__current(ts)) == NULL)
		return -ENOMEM;
	check_open(s, site, "reap_scope_pop_all");
	check_open(parent, site, "reap_scope_pop_all");
	if (s->magic != S_OPEN || parent->magic != S_OPEN)
		return REAP_ECLOSED;
	if (parent != s && is_ancestor(s, parent))
		return -EINVAL;
	if ((key = reap__key(ts, site, NULL, &reap__type_scope)) == 0)
		return -ENOSPC;
	if ((n = reap_malloc(sizeof *n)) == NULL)
		return -ENOMEM;
	/* Make sure the entry for n can be pushed after the transfer, so
	 * that nothing can fail once s has been emptied. */
	if (parent == s) {
		if ((fresh = chunk_new(s, chunk_nseg(0))) == NULL) {
			reap_free(n);
			return -ENOMEM;
		}
	} else if (parent->top == parent->limit && advance(parent) < 0) {
		reap_free(n);
		return -ENOMEM;
	}
	scope_init(n, ts, parent, site);

	/* Register n first: the children re-parented below make it
	 * reachable to a reporter, which must find it whole. */
	scope_track(n, ts);

	/* Transfer the stack, its spare and the memory. n is registered:
	 * its stack is published as the owner's always is. */
	n->limit = s->limit;
	__atomic_store_n(&n->top, s->top, __ATOMIC_RELEASE);
	__atomic_store_n(&n->chunk, s->chunk, __ATOMIC_RELEASE);
	n->spare = s->spare;
	n->nchunks = s->nchunks;
	n->arena.cur = s->arena.cur;
	n->arena.end = s->arena.end;
	n->arena.blocks = s->arena.blocks;
	n->arena.nblocks = s->arena.nblocks;
	WR(n->arena.bytes, s->arena.bytes);
	s->arena.cur = s->arena.end = NULL;
	s->arena.blocks = NULL;
	s->arena.nblocks = 0;
	WR(s->arena.bytes, (size_t)0);
	WR(s->chunk, (struct reap__chunk *)NULL);
	s->spare = NULL;
	s->nchunks = 0;
	set_top(s, NULL, NULL);
	if (n->spare != NULL)
		n->spare->owner = n;
	for (c = n->chunk; c != NULL; c = c->prev) {
		reap_cleanup *end = c == n->chunk ? n->top : reap__chunk_end(c);

		c->owner = n;
		for (reap_cleanup *e = reap__chunk_first(c); e < end; e++) {
			if (reap__is_seg_header(e) || !(e->kf & F_LIVE))
				continue;
			/* Release: a reporter that follows the parent
			 * pointer with acquire finds n initialized. */
			if (F_KIND_OF(e->kf) == E_CHILD)
				__atomic_store_n(&((reap_scope *)e->arg)->parent, n,
						 __ATOMIC_RELEASE);
		}
	}
	if (fresh != NULL) {
		__atomic_store_n(&s->chunk, fresh, __ATOMIC_RELEASE);
		set_top(s, reap__chunk_first(fresh),
			(reap_cleanup *)fresh + REAP__SEG_SLOTS);
		s->nchunks = 1;
	}
	/* Cannot fail: the key and a slot were secured above. */
	(void)push_key(parent, ts, key, n, E_CHILD, &n->self);
	*out = n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Errors in flight                                                     */

void reap_scope_failf_at(reap_scope *s, int code, const reap_site *site,
			 const char *fmt, ...)
{
	char msg[256], path[256];
	reap_error *link;

	check_open(s, site, "reap_scope_fail");
	if (code >= 0)
		return;
	if (fmt != NULL) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
	} else {
		/* `rc = reap_raisef(...)` then failing the scope with rc (as
		 * the block macro does) keeps the message and its site. */
		struct reap__raise *r = reap__raise_take(code);

		if (r != NULL) {
			snprintf(msg, sizeof msg, "%s", r->msg);
			site = r->site;
			fmt = msg;
		}
	}
	reap__owner_path(s, path, sizeof path);
	link = reap__error_new(code, site, fmt ? msg : NULL, path, s->chain);
	if (link != NULL)
		s->chain = link;
	s->err = code;
}

int reap_scope_error(const reap_scope *s)
{
	return s->err;
}

/* Run an exit cleanup with the error in flight, then apply its verdict. */
static void run_exit(reap_scope *s, reap_exit_fn fn, void *arg,
		     const reap_site *site, int *err, reap_error **chain)
{
	reap_error tmp;
	const reap_error *in = *chain;
	struct reap__raise *r;
	int rc;

	if (*err != 0 && (in == NULL || in->code != *err)) {
		/* The link for err could not be allocated: describe it here. */
		tmp = (reap_error){*err, NULL, NULL, NULL, in};
		in = &tmp;
	}
	(void)reap__raise_take(0); /* only a raise made by fn may label rc */
	rc = fn(arg, *err != 0 ? in : NULL);
	r = reap__raise_take(rc);
	if (rc == 0)
		return;
	if (rc == REAP_SUPPRESS) {
		reap_error_free(*chain);
		*chain = NULL;
		*err = 0;
	} else if (rc < 0) {
		char path[256];
		reap_error *link;

		reap__owner_path(s, path, sizeof path);
		link = reap__error_new(rc, r ? r->site : site, r ? r->msg : NULL,
				       path, *chain);
		if (link != NULL)
			*chain = link;
		else
			reap__report("reap: no memory to chain error %s raised by "
				     "the cleanup registered at %s:%d; it is "
				     "returned without its message\n",
				     reap_errname(rc), site->file, site->line);
		*err = rc;
	} else {
		reap__report("reap: cleanup registered at %s:%d returned %d, "
			     "which is neither 0, REAP_SUPPRESS nor an error; "
			     "ignored\n", site->file, site->line, rc);
	}
}

/* ------------------------------------------------------------------ */
/* Closing                                                              */

static void quarantine(struct reap__tstate *ts, reap_scope *s)
{
	reap_scope *old = ts->quarantine[ts->qpos];

	ts->quarantine[ts->qpos] = s;
	ts->qpos = (ts->qpos + 1) % REAP__QUARANTINE;
	reap__alloc_forget(s);
	if (old != NULL)
		reap__free_forgotten(old);
}

void reap__scope_free_quarantine(struct reap__tstate *ts)
{
	for (unsigned i = 0; i < REAP__QUARANTINE; i++) {
		if (ts->quarantine[i] != NULL)
			reap__free_forgotten(ts->quarantine[i]);
		ts->quarantine[i] = NULL;
	}
}

static void report_chain(const reap_site *site, reap_error *chain);

/*
 * Is s an ancestor of c, where c is closing on this thread? The walk
 * stops at the first closing ancestor: that one is on the same stack of
 * closing scopes and is checked in its own turn. So a close nested d
 * deep costs O(d), not O(d^2) per scope.
 */
static int closes_under(const reap_scope *s, const reap_scope *c)
{
	for (const reap_scope *p = c->parent; p != NULL; p = p->parent) {
		if (p == s)
			return 1;
		if (p->magic == S_CLOSING)
			return 0;
	}
	return 0;
}

/* Start closing s: mark it, push it on this thread's stack of closing
 * scopes, and put its own error in flight over the inherited one. */
static void close_begin(struct reap__tstate *ts, reap_scope *s,
			const reap_site *site, int *err, reap_error **chain)
{
	int own = s->err;
	reap_error *own_chain = s->chain;

	s->magic = S_CLOSING;
	s->close_site = site;
	s->closing_next = ts->closing;
	ts->closing = s;
	s->chain = NULL;
	if (own == 0)
		return;
	if (*err != 0 && own_chain != NULL) {
		reap_error *t = own_chain;

		while (t->cause != NULL)
			t = (reap_error *)t->cause;
		t->cause = *chain;
		*chain = own_chain;
	} else if (*err == 0) {
		*chain = own_chain;
	}
	*err = own;
}

/* Finish closing s, whose stack is empty: leave the closing stack and the
 * parent, the ledger, free the memory, and make the chain in flight start
 * with the error in flight. */
static void close_end(struct reap__tstate *ts, reap_scope *s, int *err,
		      reap_error **chain)
{
	reap__count_settle(ts);
	ts->closing = s->closing_next;
	s->closing_next = NULL;
	if (s->self != NULL) {
		/* Closed early: its entry in the parent goes. */
		WR(s->self->kf, s->self->kf & ~(uint32_t)F_LIVE);
		pop_dead(s->parent);
		s->self = NULL;
	}
	if (s->flags & SF_COUNTED)
		reap__count_closed(ts, reap__type_id(&reap__type_scope));
	if (s->flags & SF_REGISTERED)
		reap__ledger_scope_del(s);
	free_chunks(s->chunk);
	reap__chunk_free(s->spare);
	s->chunk = s->spare = NULL;
	set_top(s, NULL, NULL);
	s->nchunks = 0;
	if (s->flags & SF_STATIC) {
		/* A root's name may have been set in its memory, freed next. */
		s->name = s == &reap__root ? "root" : "thread";
	} else if (s->name != NULL) {
		size_t n = strnlen(s->name, sizeof s->closed_name - 1);

		memcpy(s->closed_name, s->name, n);
		s->closed_name[n] = '\0';
		s->name = NULL; /* it lives in the memory freed next */
	}
	arena_free(&s->arena);
	s->err = 0;
	if (unlikely(*err != 0 && (*chain == NULL || (*chain)->code != *err))) {
		/* A link could not be made when err was raised; the chain
		 * handed on must still start with err. */
		reap_error *link = reap__error_new(*err, s->close_site, NULL, NULL,
						   *chain);

		if (link != NULL) {
			*chain = link;
		} else if (*chain != NULL) {
			report_chain(s->close_site, *chain);
			reap_error_free(*chain);
			*chain = NULL;
		}
	}
	if (s->flags & SF_STATIC) {
		/* A root: ready for late users, if any, until its owner ends. */
		s->magic = S_OPEN;
		s->flags &= ~(unsigned)(SF_COUNTED);
	} else {
		s->magic = S_CLOSED;
		quarantine(ts, s);
	}
}

/*
 * Close s and everything under it. Children are closed without recursion,
 * so that no depth of nesting can exhaust the stack: descending into a
 * child only pushes it on the closing stack, which also leads back up.
 * The child takes over the error in flight and hands its result back, so
 * one (err, chain) pair serves the whole walk.
 */
static int close_scope(reap_scope *s, const reap_site *site,
		       reap_error **out_chain, int internal)
{
	struct reap__tstate *ts = reap__ts();
	reap_error *chain = NULL;
	reap_scope *cur = s;
	int err = 0;

	if (unlikely(s->magic != S_OPEN)) {
		if (s->magic == S_CLOSED)
			misuse_scope(s, "double close", site);
		if (s->magic == S_CLOSING)
			misuse_scope(s, "close of a scope that is already closing",
				     site);
		misuse_scope(s, "close", site);
	}
	if (unlikely((s->flags & SF_ROOT) && !internal))
		misuse_scope(s, "close of a root scope by hand (roots close at "
			     "thread and process exit)", site);
	if (unlikely(s->gen != reap__fork_gen)) {
		/* Inherited through fork(): the parent's to close, not ours.
		 * Its cleanups are discarded unrun and its memory (our copy)
		 * is left alone, so that the child cannot close the parent's
		 * resources by closing a copied scope. */
		s->magic = S_CLOSED;
		s->close_site = site;
		*out_chain = NULL;
		return 0;
	}
	for (reap_scope *c = ts->closing; c != NULL; c = c->closing_next) {
		if (closes_under(s, c)) {
			char a[256], b[256];

			reap__misuse("closing %s at %s:%d in %s() from inside the "
				     "close of its descendant %s (created at %s:%d "
				     "in %s()) would run cleanups out of order",
				     sname(s, a, sizeof a), site->file, site->line,
				     site->func, sname(c, b, sizeof b),
				     c->site ? c->site->file : "?",
				     c->site ? c->site->line : 0,
				     c->site ? c->site->func : "?");
		}
	}
	close_begin(ts, s, site, &err, &chain);
	if (ts->task != NULL)
		reap__task_close_hook(ts->task, 1);

	/* Pop and run, newest first. The inner loop walks one segment down;
	 * whenever a cleanup moved the top (it registered, cancelled or ran
	 * entries of this scope), the outer loop finds the new top. */
	for (;;) {
		reap_cleanup *e = below_top(cur);
		struct reap__chunk *c;
		reap_cleanup *lo;

		if (e == NULL) {
			reap_scope *up = cur->closing_next;

			close_end(ts, cur, &err, &chain);
			if (cur == s)
				break;
			cur = up; /* back to the parent that was closing it */
			continue;
		}
		c = cur->chunk;
		lo = (reap_cleanup *)((uintptr_t)e & ~(uintptr_t)(REAP__SEG - 1)) + 1;
		if (lo < reap__chunk_first(c) && e >= reap__chunk_first(c))
			lo = reap__chunk_first(c);
		cur->limit = seg_end(e);
		for (;; e--) {
			const struct reap__key *k;
			uint32_t kf;
			void *arg;

			__atomic_store_n(&cur->top, e, __ATOMIC_RELEASE);
			kf = e->kf;
			if (kf & F_LIVE) {
				arg = e->arg;
				retire(ts, e, kf);
				k = &reap__keys[KF_KEY(kf)];
				if (F_KIND_OF(kf) == E_CHILD) {
					reap_scope *child = arg;

					if (unlikely(child->magic != S_OPEN))
						misuse_scope(child, "close", site);
					child->self = NULL; /* its entry is gone */
					close_begin(ts, child, site, &err, &chain);
					cur = child;
					break;
				}
				if (F_KIND_OF(kf) == E_PLAIN)
					((reap_cleanup_fn)k->fn)(arg);
				else
					run_exit(cur, (reap_exit_fn)k->fn, arg, k->site,
						 &err, &chain);
				if (cur->top != e || cur->chunk != c)
					break;
			}
			if (e == lo)
				break;
		}
	}
	if (ts->task != NULL)
		reap__task_close_hook(ts->task, 0);
	*out_chain = chain;
	return err;
}

static void report_chain(const reap_site *site, reap_error *chain)
{
	struct reap__rbuf rb;
	FILE *m = reap__report_open(&rb);

	if (m == NULL)
		return;
	fprintf(m, "reap: scope %s closed at %s:%d in %s() with %zu error(s) "
		   "that no caller received:\n",
		chain && chain->where ? chain->where : "(unnamed)", site->file,
		site->line, site->func, reap_error_count(chain));
	reap_error_print(chain, m);
	reap__report_send(&rb);
}

int reap_scope_close_err_at(reap_scope *s, reap_error **chain,
			    const reap_site *site)
{
	*chain = NULL;
	return close_scope(s, site, chain, 0);
}

int reap_scope_close_at(reap_scope *s, const reap_site *site)
{
	reap_error *chain = NULL;
	int err = close_scope(s, site, &chain, 0);

	if (unlikely(chain != NULL)) {
		if (chain->cause != NULL)
			report_chain(site, chain);
		reap_error_free(chain);
	}
	return err;
}

void reap__scope_close_root(reap_scope *root)
{
	static const reap_site exit_site = {"(exit)", "exit", 0};
	reap_error *chain = NULL;

	/* Cleanups run at exit may register more; close until none remain. */
	for (int pass = 0; pass < 4; pass++) {
		int err = close_scope(root, &exit_site, &chain, 1);

		if (err != 0 || chain != NULL)
			report_chain(&exit_site, chain);
		reap_error_free(chain);
		chain = NULL;
		if (root->chunk == NULL)
			break;
	}
}

/* ------------------------------------------------------------------ */
/* Names, owners, current scope                                         */

int reap_scope_name(reap_scope *s, const char *fmt, ...)
{
	va_list ap;
	int n;
	char *p;

	check_open(s, REAP_SITE, "reap_scope_name");
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((p = reap_scope_alloc(s, (size_t)n + 1)) == NULL)
		return -ENOMEM;
	va_start(ap, fmt);
	vsnprintf(p, (size_t)n + 1, fmt, ap);
	va_end(ap);
	/* Release: a reporter that loads the name with acquire sees its bytes. */
	__atomic_store_n(&s->name, (const char *)p, __ATOMIC_RELEASE);
	return 0;
}

const char *reap_scope_get_name(const reap_scope *s)
{
	return s->name;
}

reap_scope *reap_scope_parent(const reap_scope *s)
{
	return s->parent;
}

reap_scope *reap_scope_root(void)
{
	reap__init();
	return &reap__root;
}

reap_scope *reap_scope_current(void)
{
	return reap__current(reap__ts());
}

reap_scope *reap_scope_set_current(reap_scope *s)
{
	struct reap__tstate *ts = reap__ts();
	reap_scope *old = reap__current(ts);

	if (s == NULL)
		s = ts->is_main ? &reap__root : &ts->root;
	check_open(s, REAP_SITE, "reap_scope_set_current");
	ts->current = s;
	return old;
}

/* ------------------------------------------------------------------ */
/* The block macro                                                      */

reap_with reap__with_enter(reap_scope *parent, int *rc, const reap_site *site)
{
	reap_with w = {NULL, rc, 0, site};
	int r = reap_scope_open_at(parent, &w.scope, site);

	if (r < 0) {
		w.scope = NULL;
		if (rc != NULL)
			*rc = r;
		else
			reap__report("reap: REAP_WITH_SCOPE at %s:%d in %s(): could "
				     "not open its scope (%s); the block did not "
				     "run\n", site->file, site->line, site->func,
				     reap_errname(r));
	}
	return w;
}

void reap__with_exit(reap_with *w)
{
	reap_error *chain = NULL;
	int final;

	if (w->scope == NULL)
		return;
	if (w->rc != NULL && *w->rc < 0)
		reap_scope_failf_at(w->scope, *w->rc, w->site, NULL);
	final = close_scope(w->scope, w->site, &chain, 0);
	/* With rc, the caller gets the code and a lone error needs no
	 * report; without, every error goes to the report hook. */
	if (chain != NULL && (w->rc == NULL || chain->cause != NULL))
		report_chain(w->site, chain);
	else if (chain == NULL && final < 0 && w->rc == NULL)
		reap__report("reap: scope of the block at %s:%d closed with %s\n",
			     w->site->file, w->site->line, reap_errname(final));
	reap_error_free(chain);
	if (w->rc != NULL && (final < 0 || *w->rc < 0))
		*w->rc = final;
	w->scope = NULL;
}
