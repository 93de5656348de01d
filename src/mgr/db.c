/*
 * The manager's object store: the keyspace, the sessions, and the
 * commands that exec answers (db.h is the contract).
 *
 * Lifetimes, and what reclaim guarantees.
 *
 * Every object has an owner rule, fixed at creation:
 *   - persistent: nobody owns it; it lives until DEL, FLUSHALL, expiry,
 *     or the end of the store. Keys made by the Redis commands (SET,
 *     HSET, LPUSH, INCR, ...) are persistent, as in Redis.
 *   - session: owned by the session that created it (o->owner); deleted
 *     when that session closes.
 *   - shared: held by sessions (o->holds, a count per session; creation
 *     takes the creator's first hold); deleted when the sum of holds
 *     falls to zero, by REAP.RELEASE or by the close of the last holder.
 * Besides owning and holding, a session can be tied to an object by
 * holding its lock (o->u.lock.owner) or some of its semaphore permits
 * (o->u.sem.h). Each of these references counts one in the session's
 * `ties`: ties == the number of (object, role) pairs naming the session.
 *
 * Invariants.
 *   1. Every pointer from an object to a session is counted in that
 *      session's ties, and is removed (and uncounted) before either side
 *      is freed: obj_destroy() unties every session the object names.
 *   2. sess_close() visits the keyspace while the session still has ties
 *      and resolves each: session objects are destroyed, holds dropped
 *      (shared objects at zero destroyed), locks and permits given back
 *      with the owner-died mark set, so that the next acquirer is told
 *      (+OWNERDIED, once). When it ends, ties == 0: a closed session
 *      leaves nothing behind, and no object points at freed memory.
 *      A session with no ties (every redis-benchmark connection) closes
 *      in O(1) without visiting the keyspace.
 *   3. A value written by SET / MSET / INCR onto an existing key keeps
 *      the object (its lifetime, owner, holds and creator) and replaces
 *      its payload; this is how a client writes a REAP.CREATE'd value.
 *      A lock or semaphore so replaced first gives back what it held.
 *   4. Lists and hashes made by Redis commands vanish when emptied, as in
 *      Redis; those made by REAP.CREATE stay until their lifetime ends.
 *   5. Every command either fails (-ENOMEM, -ENOBUFS) with no effect, or
 *      succeeds whole: what can fail (allocations, reply space) is done
 *      first, and the commit that follows cannot fail. Replies that carry
 *      data are written before the commit that removes the data (LPOP);
 *      replies written after the commit have their room reserved first.
 *   6. FLUSHALL deletes everything, reap's objects included, as Redis
 *      deletes every key; holders and lock owners are untied.
 *
 * Blocking commands (BLPOP, BRPOP, REAP.LOCK, REAP.ACQUIRE, REAP.WAIT,
 * REAP.BARRIER) return REAP__MGR_BLOCKED; the session remembers the
 * deadline of its first attempt, so that retries (woken by the ready
 * hook) keep it. The hook is called only while some session is blocked.
 * A barrier's waiters are tied to it (o->u.bar.w, counted in ties like
 * holds), so that a close withdraws its arrival and a deletion unties.
 *
 * reap's own commands (Redis has none of these):
 *
 *   REAP.CREATE type key lifetime [arg] [SITE where]
 *                          +OK; type: value [init],
 *                          counter [init], dict, namespace, list, queue,
 *                          lock, semaphore N (N >= 0), event, barrier N
 *                          (N >= 1 parties); lifetime: session | shared
 *                          | persistent. "-ERR key already exists" if
 *                          the key is live; a bad N: "-ERR value is not
 *                          an integer or out of range". A namespace is a
 *                          hash (the H* commands, TYPE "hash") that
 *                          REAP.OBJECTS calls "namespace"; like a dict
 *                          it stays when emptied. SITE: where the
 *                          creator made it ("file:line in func", kept
 *                          up to 256 bytes), shown by REAP.OBJECTS.
 *   REAP.HOLD key [kind]   shared objects: take a hold; :holds (total);
 *                          with kind, WRONGTYPE unless the key is one
 *   REAP.RELEASE key       drop a hold; :holds left (0: deleted)
 *   REAP.LOCK key [timeout]     +OK, or +OWNERDIED when the previous
 *                          holder closed while holding (told once);
 *                          blocks; null ($-1 / _) on timeout
 *   REAP.UNLOCK key        +OK, or "-ERR lock not held by this session"
 *   REAP.ACQUIRE key [timeout]  one semaphore permit; as REAP.LOCK
 *   REAP.RELEASESEM key    give one permit back; +OK
 *   REAP.SET key           set an event (wakes its waiters); +OK
 *   REAP.CLEAR key         clear an event; +OK
 *   REAP.WAIT key [timeout]     +OK once the event is set; blocks;
 *                          null on timeout
 *   REAP.BARRIER key [timeout]  blocks until N sessions have arrived in
 *                          this generation, then each of the N gets
 *                          :index (its arrival order, 0..N-1) and the
 *                          next generation begins; null on timeout (the
 *                          arrival withdrawn, as when the session
 *                          closes); "-ERR no such key" if the barrier
 *                          is deleted under its waiters
 *   REAP.OBJECTS           one map per object: key, type, lifetime,
 *                          owner, owner-pid, owner-name, holders,
 *                          holder-sessions, creator, creator-pid,
 *                          creator-name, creator-cmd, creator-site,
 *                          age-ms, ttl-ms,
 *                          state (a lock's holder session, 0 if free; a
 *                          semaphore's free permits; an event's flag;
 *                          a barrier's arrivals in the current
 *                          generation; else the size: bytes, fields,
 *                          elements)
 *   REAP.SESSIONS          one map per session: id, pid, name, proto, ties
 * Timeouts are seconds as a double, as BLPOP's; 0 or none waits forever.
 * Missing keys: "-ERR no such key"; wrong kinds: the WRONGTYPE error.
 *
 * CLIENT TRACKING ON|OFF [NOLOOP] (parsed by the server, kept here):
 * Redis 7.0's default mode, see "Client-side caching" below; in RESP3
 * each invalidation is ">2 $10 invalidate *1 $<len> <key>", FLUSHALL's
 * ">2 $10 invalidate _".
 *
 * Hashes list their fields in insertion order (as Redis's listpack
 * hashes do, which is every hash of up to 128 short fields); past that
 * Redis switches to its hashtable's order, which no one can reproduce.
 *
 * Not done (yet): EXAT/PXAT/GETEX, HINCRBYFLOAT, OBJECT; tables never
 * shrink (FLUSHALL keeps the keyspace's slots); active expiry scans the
 * whole keyspace (skipped while no key has a TTL).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../base/internal.h"
#include "../obj/obj_internal.h"
#include "db.h"

#define NS_PER_MS 1000000ull

/* ------------------------------------------------------------------ */
/* Types                                                                */

enum { T_STRING, T_HASH, T_LIST, T_LOCK, T_SEM, T_EVENT, T_BARRIER };
enum { L_PERSISTENT, L_SESSION, L_SHARED };

static const char *const type_name[] = {"string", "hash", "list",
					"lock", "semaphore", "event",
					"barrier"};
static const char *const life_name[] = {"persistent", "session", "shared"};

/* The head of every entry of a table: the key is stored after it. */
struct node {
	uint64_t h;
	const char *key;
	size_t klen;
};

/* Open addressing, linear probing, deletion by backward shift (no
 * tombstones). Load at most 3/4. Each slot keeps the entry's hash, so
 * that a probe touches no entry but the one that matches. */
struct slot {
	uint64_t h;
	struct node *e;
};

struct tab {
	struct slot *slot;
	size_t mask; /* capacity - 1; slot == NULL: capacity 0 */
	size_t n;
};

struct hold {
	reap__mgr_sess *s;
	uint64_t n;
};

/* A hash field: key then value, inline. */
struct hent {
	struct node nd;
	char *val;
	size_t vlen;
	size_t pos; /* in hmap.ev */
};

/* A hash object: an index of the fields plus the fields in insertion
 * order, with the holes deletions leave (closed up once they are more
 * than half), so that HGETALL lists fields in the order Redis's small
 * hashes (listpacks) keep: insertion order, an update keeping its place. */
struct hmap {
	struct tab t;
	struct hent **ev;
	size_t en, ecap; /* en: slots used, holes included */
};

struct lel {
	char *p;
	size_t n;
};

/* A ring buffer: capacity a power of two. */
struct deque {
	struct lel *v;
	size_t cap, head, n;
};

struct holds {
	struct hold *v;
	uint32_t n, cap;
};

struct obj {
	struct node nd; /* key inline after the struct */
	uint8_t type, life;
	bool reapmade;           /* by REAP.CREATE (not since overwritten) */
	const char *kind;        /* as REAP.CREATE named it, or type_name */
	reap__mgr_sess *owner;   /* session lifetime */
	struct holds holds;      /* shared lifetime */
	uint64_t holdsum;
	uint64_t expire_ns;      /* 0: none */
	uint64_t ctime_ns;
	uint64_t csid;
	pid_t cpid;
	char *cname;             /* inline after the key */
	char *csite;             /* inline after cname: REAP.CREATE ... SITE */
	char ccmd[24];
	union {
		struct {
			char *p;
			size_t len, cap;
		} str;
		struct hmap hash;
		struct deque list;
		struct {
			reap__mgr_sess *owner;
			bool died;
		} lock;
		struct {
			int64_t avail, total;
			struct holds h;
			bool died;
		} sem;
		struct {
			bool set;
		} ev;
		struct {
			int64_t parties;
			struct holds w; /* arrived, in arrival order (n unused) */
			uint64_t gen;   /* generations released */
		} bar;
	} u;
};

/* Client-side caching. A tracked key is a tkey in db->track; each session
 * that read it since its last invalidation is linked to it by one tlink,
 * which is on two lists: the key's sessions and the session's keys, so
 * that an invalidation and a session's end each cost what they touch. */
struct tkey;

struct tlink {
	struct tkey *k;
	reap__mgr_sess *s;
	struct tlink *knext, *kprev; /* k->links */
	struct tlink *snext, *sprev; /* s->tl */
};

struct tkey {
	struct node nd;      /* key inline after the struct */
	struct tlink *links; /* NULL once out of the table */
	struct tkey *pnext;  /* db->pend */
};

struct reap__mgr_sess {
	uint64_t id;
	pid_t pid;
	int proto;
	char *name;
	size_t idx;       /* in db->sv */
	uint64_t ties;    /* see the essay */
	bool blocked;
	uint64_t deadline;
	bool bar_done;      /* a barrier released this blocked session */
	int64_t bar_idx;    /* its arrival index, replied on the retry */
	bool tracking, noloop;
	struct tlink *tl;   /* keys it tracks */
	reap__resp_buf *pout; /* where pushes to it go (attach) */
	void *ctx;
};

struct reap__mgr_db {
	struct tab keys;
	uint64_t seed;
	uint64_t now_hint; /* reap__mgr_db_set_now(); 0: read the clock */
	reap__mgr_sess **sv;
	size_t nsess, capsess;
	uint64_t next_id;
	uint64_t commands, reclaimed;
	size_t nexpires;  /* objects with a TTL */
	size_t nblocked;  /* sessions whose command is blocked */
	void (*ready)(void *ctx, const char *key, size_t klen);
	void *ready_ctx;
	struct tab track;     /* tkeys; empty (no slots) while none */
	size_t ntracking;     /* sessions with tracking on */
	reap__mgr_sess *cur;  /* the session whose command runs */
	struct tkey *pend;    /* cur's own invalidations, sent after its reply */
	struct tkey **pend_last;
	bool pend_flush;
	void (*push)(void *ctx, reap__mgr_sess *s, int rc);
	void *push_ctx;
};

/* ------------------------------------------------------------------ */
/* Hashing and tables                                                   */

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static uint64_t hash_bytes(uint64_t seed, const char *p, size_t n)
{
	uint64_t h = seed ^ ((uint64_t)n * 0x9e3779b97f4a7c15ull), w;

	while (n >= 8) {
		memcpy(&w, p, 8);
		h ^= w * 0xbf58476d1ce4e5b9ull;
		h = rotl64(h, 29) * 0x94d049bb133111ebull;
		p += 8;
		n -= 8;
	}
	if (n) {
		/* the tail byte by byte: a memcpy of a variable size is a
		 * call, and keys are short */
		w = 0;
		for (size_t i = 0; i < n; i++)
			w |= (uint64_t)(unsigned char)p[i] << (8 * i);
		h ^= w * 0xbf58476d1ce4e5b9ull;
		h = rotl64(h, 29) * 0x94d049bb133111ebull;
	}
	return reap__mix64(h); /* the finalizer the object keys use */
}

static struct slot *tab_find(const struct tab *t, const char *k, size_t n,
			     uint64_t h)
{
	size_t i;

	if (t->slot == NULL)
		return NULL;
	for (i = h & t->mask; t->slot[i].e; i = (i + 1) & t->mask) {
		struct slot *sl = &t->slot[i];

		if (sl->h == h && sl->e->klen == n &&
		    memcmp(sl->e->key, k, n) == 0)
			return sl;
	}
	return NULL;
}

/* Room for extra more entries. -ENOMEM leaves t as it was. */
static int tab_reserve(struct tab *t, size_t extra)
{
	size_t cap = t->slot ? t->mask + 1 : 0, ncap, need = t->n + extra;
	struct slot *ns;

	if (need <= cap / 4 * 3)
		return 0;
	for (ncap = cap ? cap * 2 : 8; need > ncap / 4 * 3; ncap *= 2)
		;
	ns = reap_calloc(ncap, sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < cap; i++) {
		size_t j;

		if (t->slot[i].e == NULL)
			continue;
		for (j = t->slot[i].h & (ncap - 1); ns[j].e; j = (j + 1) & (ncap - 1))
			;
		ns[j] = t->slot[i];
	}
	reap_free(t->slot);
	t->slot = ns;
	t->mask = ncap - 1;
	return 0;
}

/* After tab_reserve(t, 1); e's key is not in t. */
static void tab_insert(struct tab *t, struct node *e)
{
	size_t i;

	for (i = e->h & t->mask; t->slot[i].e; i = (i + 1) & t->mask)
		;
	t->slot[i].h = e->h;
	t->slot[i].e = e;
	t->n++;
}

/* Remove slot i; later entries of its cluster shift back, so that a
 * scan that removes at i must look at i again. */
static void tab_remove(struct tab *t, size_t i)
{
	size_t j = i;

	t->slot[i].e = NULL;
	t->n--;
	for (;;) {
		size_t k;

		j = (j + 1) & t->mask;
		if (t->slot[j].e == NULL)
			return;
		k = t->slot[j].h & t->mask;
		/* leave it if its home lies cyclically in (i, j] */
		if (i <= j ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		t->slot[i] = t->slot[j];
		t->slot[j].e = NULL;
		i = j;
	}
}

static size_t tab_index(const struct tab *t, const struct slot *slot)
{
	return (size_t)(slot - t->slot);
}

/* ------------------------------------------------------------------ */
/* Small helpers                                                        */

static void *dup_bytes(const void *p, size_t n)
{
	char *d = reap_malloc(n ? n : 1);

	if (d != NULL && n)
		memcpy(d, p, n);
	return d;
}

/* A deadline a + b that stays a deadline: REAP_FOREVER means none. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	uint64_t t = reap__add_sat(a, b);

	return t == REAP_FOREVER ? REAP_FOREVER - 1 : t;
}

#define MAX_LD_CHARS (5 * 1024)

/* Redis's string2ld: strtold over the whole string, no leading space,
 * no NaN, no overflow. */
static bool str2ld(const char *p, size_t n, long double *out)
{
	char buf[MAX_LD_CHARS];
	char *end;
	long double v;

	if (n == 0 || n >= sizeof(buf))
		return false;
	memcpy(buf, p, n);
	buf[n] = '\0';
	errno = 0;
	v = strtold(buf, &end);
	if (isspace((unsigned char)buf[0]) || *end != '\0' ||
	    (errno == ERANGE && (v == HUGE_VALL || v == -HUGE_VALL ||
				 fpclassify(v) == FP_ZERO)) ||
	    isnan(v))
		return false;
	*out = v;
	return true;
}

/* Redis's ld2string in its "human" mode (INCRBYFLOAT): %.17Lf with the
 * trailing zeros (and a bare point) removed, "-0" written "0". */
static size_t ld2str(char *buf, size_t cap, long double v)
{
	int l = snprintf(buf, cap, "%.17Lf", v);
	size_t n;

	if (l < 0 || (size_t)l >= cap)
		return 0;
	n = (size_t)l;
	if (memchr(buf, '.', n) != NULL) {
		while (buf[n - 1] == '0')
			n--;
		if (buf[n - 1] == '.')
			n--;
	}
	if (n == 2 && buf[0] == '-' && buf[1] == '0') {
		buf[0] = '0';
		n = 1;
	}
	return n;
}

#define SMALL_REPLY 24 /* ":" 20 digits "\r\n", "+OWNERDIED\r\n" */

#define TRY(x)                                                              \
	do {                                                                \
		int rc_ = (x);                                              \
		if (rc_ != 0)                                               \
			return rc_;                                         \
	} while (0)

/* ------------------------------------------------------------------ */
/* Sessions, ties, wakeups                                              */

/* key: what changed, or NULL for anything (see the ready hook). */
static void wake(reap__mgr_db *db, const char *key, size_t klen)
{
	if (db->nblocked && db->ready)
		db->ready(db->ready_ctx, key, klen);
}

static void wake_obj(reap__mgr_db *db, const struct obj *o)
{
	wake(db, o->nd.key, o->nd.klen);
}

static struct hold *holds_find(struct holds *hs, const reap__mgr_sess *s)
{
	for (uint32_t i = 0; i < hs->n; i++)
		if (hs->v[i].s == s)
			return &hs->v[i];
	return NULL;
}

/* Room for one more entry. -ENOMEM leaves hs as it was. */
static int holds_reserve(struct holds *hs)
{
	struct hold *v;
	uint32_t cap;

	if (hs->n < hs->cap)
		return 0;
	cap = hs->cap ? hs->cap * 2 : 2;
	v = reap_realloc(hs->v, cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	hs->v = v;
	hs->cap = cap;
	return 0;
}

static void holds_remove(struct holds *hs, struct hold *h)
{
	h->s->ties--;
	*h = hs->v[--hs->n];
}

/* ------------------------------------------------------------------ */
/* Client-side caching (CLIENT TRACKING, default mode)                  */

/*
 * As Redis 7.0's tracking.c: a read-only command remembers its keys for
 * a tracking session; the first change to such a key (a write, DEL,
 * expiry, reclaim) sends each session that remembered it one push,
 *
 *     >2 $10 invalidate *1 $<len> <key>          (FLUSHALL: >2 ... _)
 *
 * and forgets the key for all of them until read again. Sessions in
 * RESP2 get nothing (Redis sends RESP2 clients nothing without REDIRECT),
 * but their keys are forgotten all the same. The session running the
 * command gets its own invalidations after its reply (db->pend), or
 * none with NOLOOP (FLUSHALL's excepted, as in Redis). A push that
 * cannot be written (memory, the reply buffer's limit) is reported
 * through the push hook, which closes that client: a cache that missed
 * an invalidation must not go on. While the table is empty the write
 * path only tests db->track.n. TRACKING OFF keeps the session's keys,
 * as Redis does: changed while it is off, a key is forgotten unsaid;
 * turned on again first, the session gets the push.
 */

/* Push x at the head of a list kept as a head pointer (LIST_UNLINK's). */
#define LIST_PUSH(head, x, p, n)              \
	do {                                  \
		(x)->p = NULL;                \
		(x)->n = (head);              \
		if ((x)->n != NULL)           \
			(x)->n->p = (x);      \
		(head) = (x);                 \
	} while (0)

static void tkey_remove(reap__mgr_db *db, struct tkey *k)
{
	struct slot *sl = tab_find(&db->track, k->nd.key, k->nd.klen, k->nd.h);

	tab_remove(&db->track, tab_index(&db->track, sl));
	if (db->track.n == 0) { /* no slots while nothing is tracked */
		reap_free(db->track.slot);
		memset(&db->track, 0, sizeof(db->track));
	}
}

/* Unlink l from its key and its session, and free it; a key left with
 * no session leaves the table. */
static void tlink_drop(reap__mgr_db *db, struct tlink *l)
{
	struct tkey *k = l->k;

	LIST_UNLINK(k->links, l, kprev, knext);
	LIST_UNLINK(l->s->tl, l, sprev, snext);
	reap_free(l);
	if (k->links == NULL) {
		tkey_remove(db, k);
		reap_free(k);
	}
}

static void track_drop_sess(reap__mgr_db *db, reap__mgr_sess *s)
{
	while (s->tl)
		tlink_drop(db, s->tl);
}

/* Append the invalidation push for key (NULL: all keys) to b, whole or
 * not at all. */
static int push_write(reap__resp_buf *b, const char *key, size_t klen)
{
	TRY(reap__resp_reserve(b, klen + 64));
	TRY(reap__resp_push(b, 2));
	TRY(reap__resp_bulk(b, "invalidate", 10));
	if (key == NULL)
		return reap__resp_null(b);
	TRY(reap__resp_array(b, 1));
	return reap__resp_bulk(b, key, klen);
}

/* Send s (not the running session) its push now. */
static void push_to(reap__mgr_db *db, reap__mgr_sess *s, const char *key,
		    size_t klen)
{
	int rc;

	if (s->proto < 3 || s->pout == NULL)
		return;
	rc = push_write(s->pout, key, klen);
	if (db->push)
		db->push(db->push_ctx, s, rc);
}

/* Key (hash h) changed: tell whoever tracks it, and forget it. */
static void invalidate(reap__mgr_db *db, const char *key, size_t klen,
		       uint64_t h)
{
	struct slot *sl = tab_find(&db->track, key, klen, h);
	struct tkey *k;
	struct tlink *l;
	bool self = false;

	if (sl == NULL)
		return;
	k = (struct tkey *)sl->e;
	tkey_remove(db, k);
	while ((l = k->links) != NULL) {
		reap__mgr_sess *s = l->s;

		LIST_UNLINK(k->links, l, kprev, knext);
		LIST_UNLINK(s->tl, l, sprev, snext);
		reap_free(l);
		if (!s->tracking)
			continue; /* read before an OFF: forgotten, unsaid */
		if (s != db->cur)
			push_to(db, s, k->nd.key, k->nd.klen);
		else if (!s->noloop)
			self = true;
	}
	if (!self) {
		reap_free(k);
		return;
	}
	k->pnext = NULL;
	*db->pend_last = k;
	db->pend_last = &k->pnext;
}

/* An object's value or state changed (costs a test while no key is
 * tracked). */
static inline void touch(reap__mgr_db *db, const struct obj *o)
{
	if (db->track.n)
		invalidate(db, o->nd.key, o->nd.klen, o->nd.h);
}

/* FLUSHALL: every tracking session gets the push with a null; the table
 * empties (of the keys read before an OFF too). */
static void track_flush(reap__mgr_db *db)
{
	for (size_t i = 0; (db->ntracking || db->track.n) && i < db->nsess; i++) {
		reap__mgr_sess *s = db->sv[i];

		track_drop_sess(db, s);
		if (!s->tracking)
			continue;
		if (s == db->cur)
			db->pend_flush = true;
		else
			push_to(db, s, NULL, 0);
	}
}

/* After cur's reply: its own invalidations, in the order they came. */
static void push_pending(reap__mgr_db *db, reap__mgr_sess *s,
			 reap__resp_buf *out)
{
	int rc = 0;

	while (db->pend) {
		struct tkey *k = db->pend;

		db->pend = k->pnext;
		if (rc == 0 && s->proto >= 3)
			rc = push_write(out, k->nd.key, k->nd.klen);
		reap_free(k);
	}
	db->pend_last = &db->pend;
	if (db->pend_flush && rc == 0 && s->proto >= 3)
		rc = push_write(out, NULL, 0);
	db->pend_flush = false;
	if (rc != 0 && db->push)
		db->push(db->push_ctx, s, rc);
}

/* Remember argv[first..last] for s. -ENOMEM: nothing remembered. */
static int track_keys(reap__mgr_db *db, reap__mgr_sess *s, int first,
		      int last, const reap__resp_arg *argv)
{
	struct tlink *mark = s->tl;

	for (int i = first; i <= last; i++) {
		const reap__resp_arg *a = &argv[i];
		uint64_t h = hash_bytes(db->seed, a->p, a->len);
		struct slot *sl = tab_find(&db->track, a->p, a->len, h);
		struct tkey *k = NULL;
		struct tlink *l;

		if (sl) {
			k = (struct tkey *)sl->e;
			for (l = k->links; l && l->s != s; l = l->knext)
				;
			if (l)
				continue;
		}
		l = reap_calloc(1, sizeof(*l));
		if (l == NULL)
			goto fail;
		if (k == NULL) {
			char *kp;

			if (a->len > SIZE_MAX - sizeof(*k) - 1 ||
			    (k = reap_malloc(sizeof(*k) + a->len + 1)) == NULL ||
			    tab_reserve(&db->track, 1) != 0) {
				reap_free(k);
				reap_free(l);
				goto fail;
			}
			kp = (char *)(k + 1);
			memcpy(kp, a->p, a->len);
			kp[a->len] = '\0';
			k->nd.key = kp;
			k->nd.klen = a->len;
			k->nd.h = h;
			k->links = NULL;
			k->pnext = NULL;
			tab_insert(&db->track, &k->nd);
		}
		l->k = k;
		l->s = s;
		LIST_PUSH(k->links, l, kprev, knext);
		LIST_PUSH(s->tl, l, sprev, snext);
	}
	return 0;
fail:
	while (s->tl != mark)
		tlink_drop(db, s->tl);
	if (db->track.n == 0 && db->track.slot) { /* a first table */
		reap_free(db->track.slot);
		memset(&db->track, 0, sizeof(db->track));
	}
	return -ENOMEM;
}

/* ------------------------------------------------------------------ */
/* Objects                                                              */

static void hash_free(struct hmap *m)
{
	for (size_t i = 0; i < m->en; i++)
		reap_free(m->ev[i]);
	reap_free(m->ev);
	reap_free(m->t.slot);
	memset(m, 0, sizeof(*m));
}

/* Room for extra more fields. -ENOMEM: nothing visible changed. */
static int hash_reserve(struct hmap *m, size_t extra)
{
	size_t cap;
	struct hent **v;

	if (tab_reserve(&m->t, extra) != 0)
		return -ENOMEM;
	if (m->ecap - m->en >= extra)
		return 0;
	if (extra > SIZE_MAX / 4 / sizeof(*v) - m->en)
		return -ENOMEM;
	for (cap = m->ecap ? m->ecap * 2 : 4; cap - m->en < extra; cap *= 2)
		;
	v = reap_realloc(m->ev, cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	m->ev = v;
	m->ecap = cap;
	return 0;
}

/* After a failed command: give back what a first reservation made. */
static void hash_unreserve_empty(struct hmap *m)
{
	if (m->t.n == 0)
		hash_free(m);
}

/* Remove the field at sl, closing up the order array when holes pass
 * half of it. */
static void hash_del(struct hmap *m, struct slot *sl)
{
	struct hent *e = (struct hent *)sl->e;

	m->ev[e->pos] = NULL;
	tab_remove(&m->t, tab_index(&m->t, sl));
	reap_free(e);
	if (m->t.n == 0) {
		m->en = 0;
	} else if (m->en > 8 && m->en - m->t.n > m->en / 2) {
		size_t j = 0;

		for (size_t i = 0; i < m->en; i++)
			if (m->ev[i]) {
				m->ev[j] = m->ev[i];
				m->ev[j]->pos = j;
				j++;
			}
		m->en = j;
	}
}

static void list_free(struct deque *d)
{
	for (size_t i = 0; i < d->n; i++)
		reap_free(d->v[(d->head + i) & (d->cap - 1)].p);
	reap_free(d->v);
	memset(d, 0, sizeof(*d));
}

/* Free the payload, untying the sessions it names. */
static void payload_free(reap__mgr_db *db, struct obj *o)
{
	switch (o->type) {
	case T_STRING:
		reap_free(o->u.str.p);
		break;
	case T_HASH:
		hash_free(&o->u.hash);
		break;
	case T_LIST:
		list_free(&o->u.list);
		break;
	case T_LOCK:
		if (o->u.lock.owner)
			o->u.lock.owner->ties--;
		wake_obj(db, o);
		break;
	case T_SEM:
		for (uint32_t i = 0; i < o->u.sem.h.n; i++)
			o->u.sem.h.v[i].s->ties--;
		reap_free(o->u.sem.h.v);
		wake_obj(db, o);
		break;
	case T_EVENT:
		wake_obj(db, o);
		break;
	case T_BARRIER:
		for (uint32_t i = 0; i < o->u.bar.w.n; i++)
			o->u.bar.w.v[i].s->ties--;
		reap_free(o->u.bar.w.v);
		wake_obj(db, o); /* the waiters' retries find it gone */
		break;
	}
	memset(&o->u, 0, sizeof(o->u));
}

static void set_expire(reap__mgr_db *db, struct obj *o, uint64_t ns)
{
	db->nexpires += (ns != 0) - (o->expire_ns != 0);
	o->expire_ns = ns;
}

/* Free o (already out of the table), untying every session. */
static void obj_destroy(reap__mgr_db *db, struct obj *o)
{
	if (o->owner)
		o->owner->ties--;
	for (uint32_t i = 0; i < o->holds.n; i++)
		o->holds.v[i].s->ties--;
	reap_free(o->holds.v);
	set_expire(db, o, 0);
	payload_free(db, o);
	reap_free(o);
}

static void obj_delete_at(reap__mgr_db *db, size_t i)
{
	struct obj *o = (struct obj *)db->keys.slot[i].e;

	tab_remove(&db->keys, i);
	touch(db, o);
	obj_destroy(db, o);
}

/* A new object for key, made by session s running command cmd; not in
 * the table yet. NULL on -ENOMEM. */
/* The longest creator site kept (REAP.CREATE ... SITE). */
#define SITE_MAX 256

static struct obj *obj_new(reap__mgr_db *db, reap__mgr_sess *s,
			   const reap__resp_arg *cmd, const reap__resp_arg *key,
			   int type, uint64_t now, const reap__resp_arg *site)
{
	const char *nm = reap__mgr_sess_name(s);
	size_t nl = strlen(nm), i;
	size_t sl = site != NULL ? (site->len < SITE_MAX ? site->len : SITE_MAX) : 0;
	struct obj *o;
	char *k;

	if (key->len > SIZE_MAX - sizeof(*o) - nl - sl - 3)
		return NULL;
	o = reap_malloc(sizeof(*o) + key->len + 1 + nl + 1 + sl + 1);
	if (o == NULL)
		return NULL;
	memset(o, 0, sizeof(*o));
	k = (char *)(o + 1);
	memcpy(k, key->p, key->len);
	k[key->len] = '\0';
	o->nd.key = k;
	o->nd.klen = key->len;
	o->nd.h = hash_bytes(db->seed, key->p, key->len);
	o->cname = k + key->len + 1;
	memcpy(o->cname, nm, nl + 1);
	o->csite = o->cname + nl + 1;
	if (sl > 0)
		memcpy(o->csite, site->p, sl);
	o->csite[sl] = '\0';
	o->type = (uint8_t)type;
	o->life = L_PERSISTENT;
	o->kind = type_name[type];
	o->ctime_ns = now;
	o->csid = s->id;
	o->cpid = s->pid;
	for (i = 0; i < cmd->len && i < sizeof(o->ccmd) - 1; i++)
		o->ccmd[i] = (char)toupper((unsigned char)cmd->p[i]);
	o->ccmd[i] = '\0';
	return o;
}

/* ------------------------------------------------------------------ */
/* Command context                                                      */

struct cmd;

typedef struct cx {
	reap__mgr_db *db;
	reap__mgr_sess *s;
	int argc;
	const reap__resp_arg *argv;
	reap__resp_buf *out;
	int timed_out;
	reap__mgr_block *blk;
	uint64_t now;
	const struct cmd *cmd;
} cx;

struct cmd {
	const char *name; /* lower case, as Redis names it in errors */
	size_t len;
	int arity;        /* Redis's: n exact, -n at least n */
	int (*fn)(cx *c);
	int8_t kfirst;    /* a read-only command's keys for CLIENT TRACKING: */
	int8_t klast;     /* argv[kfirst..klast] (-1: the last); 0: none */
};

static int err(cx *c, const char *msg)
{
	return reap__resp_error(c->out, msg, strlen(msg));
}

static const char WRONGTYPE[] =
	"-WRONGTYPE Operation against a key holding the wrong kind of value";
static const char NOTINT[] = "value is not an integer or out of range";
static const char NOTFLOAT[] = "value is not a valid float";
static const char OVERFLOW[] = "increment or decrement would overflow";
static const char SYNTAX[] = "syntax error";
static const char NOKEY[] = "no such key";

static int err_arity(cx *c)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf),
			 "wrong number of arguments for '%s' command",
			 c->cmd->name);

	return reap__resp_error(c->out, buf, (size_t)n);
}

static int err_expire(cx *c)
{
	char buf[128];
	int n = snprintf(buf, sizeof(buf), "invalid expire time in '%s' command",
			 c->cmd->name);

	return reap__resp_error(c->out, buf, (size_t)n);
}

/* Find key, deleting it first if its time has passed (lazy expiry). */
static struct obj *lookup(cx *c, const reap__resp_arg *key)
{
	uint64_t h = hash_bytes(c->db->seed, key->p, key->len);
	struct slot *sl = tab_find(&c->db->keys, key->p, key->len, h);
	struct obj *o;

	if (sl == NULL)
		return NULL;
	o = (struct obj *)sl->e;
	if (o->expire_ns && c->now > o->expire_ns) {
		obj_delete_at(c->db, tab_index(&c->db->keys, sl));
		return NULL;
	}
	return o;
}

static void delete_obj(reap__mgr_db *db, struct obj *o)
{
	struct slot *sl = tab_find(&db->keys, o->nd.key, o->nd.klen, o->nd.h);

	obj_delete_at(db, tab_index(&db->keys, sl));
}

/* Timeout in seconds (a double) into ms, as Redis's
 * getTimeoutFromObjectOrReply. Returns 1 after writing an error reply,
 * 0 with *ms set, or a negative errno. */
static int parse_timeout(cx *c, const reap__resp_arg *a, long long *ms,
			 int *rc)
{
	long double v;

	*rc = 0;
	if (!str2ld(a->p, a->len, &v)) {
		*rc = err(c, "timeout is not a float or out of range");
		return 1;
	}
	v *= 1000.0L;
	if (v > (long double)LLONG_MAX) {
		*rc = err(c, "timeout is out of range");
		return 1;
	}
	*ms = (long long)v; /* ceil, without libm: truncation, then up */
	if ((long double)*ms < v)
		(*ms)++;
	if (*ms < 0) {
		*rc = err(c, "timeout is negative");
		return 1;
	}
	return 0;
}

static int block(cx *c, long long ms)
{
	reap__mgr_sess *s = c->s;

	if (!s->blocked) {
		s->blocked = true;
		c->db->nblocked++;
		s->deadline = ms == 0 ? REAP_FOREVER
				      : add_sat(c->now, (uint64_t)ms * NS_PER_MS);
	}
	c->blk->deadline_ns = s->deadline;
	return REAP__MGR_BLOCKED;
}

static bool timed_out(const cx *c)
{
	const reap__mgr_sess *s = c->s;

	return c->timed_out || (s->blocked && s->deadline != REAP_FOREVER &&
				c->now >= s->deadline);
}

/* ------------------------------------------------------------------ */
/* Connection-level and keyspace commands                               */

static int cmd_ping(cx *c)
{
	if (c->argc > 2)
		return err_arity(c);
	if (c->argc == 1)
		return reap__resp_status(c->out, "PONG", 4);
	return reap__resp_bulk(c->out, c->argv[1].p, c->argv[1].len);
}

static int cmd_echo(cx *c)
{
	return reap__resp_bulk(c->out, c->argv[1].p, c->argv[1].len);
}

static int cmd_del(cx *c)
{
	int64_t n = 0;

	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	for (int i = 1; i < c->argc; i++) {
		struct obj *o = lookup(c, &c->argv[i]);

		if (o) {
			delete_obj(c->db, o);
			n++;
		}
	}
	return reap__resp_int(c->out, n);
}

static int cmd_exists(cx *c)
{
	int64_t n = 0;

	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	for (int i = 1; i < c->argc; i++)
		n += lookup(c, &c->argv[i]) != NULL;
	return reap__resp_int(c->out, n);
}

static int cmd_dbsize(cx *c)
{
	return reap__resp_int(c->out, (int64_t)c->db->keys.n);
}

/* Destroy every object; the table keeps its slots (so that a later
 * failed command cannot leave a first table allocated). */
static void flush_all(reap__mgr_db *db)
{
	struct tab *t = &db->keys;

	for (size_t i = 0; t->slot && i <= t->mask; i++) {
		if (t->slot[i].e)
			obj_destroy(db, (struct obj *)t->slot[i].e);
		t->slot[i].e = NULL;
	}
	t->n = 0;
}

static int cmd_flushall(cx *c)
{
	if (c->argc > 2 ||
	    (c->argc == 2 && !reap__resp_arg_is(&c->argv[1], "sync") &&
	     !reap__resp_arg_is(&c->argv[1], "async")))
		return err(c, SYNTAX);
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	track_flush(c->db);
	flush_all(c->db);
	return reap__resp_status(c->out, "OK", 2);
}

static int cmd_type(cx *c)
{
	struct obj *o = lookup(c, &c->argv[1]);
	const char *t = o ? type_name[o->type] : "none";

	return reap__resp_status(c->out, t, strlen(t));
}

/* EXPIRE / PEXPIRE, Redis 7's expireGenericCommand. */
static int expire_generic(cx *c, bool secs)
{
	enum { NX = 1, XX = 2, GT = 4, LT = 8 };
	int flags = 0;
	int64_t when;
	struct obj *o;
	uint64_t ns;

	for (int i = 3; i < c->argc; i++) {
		const reap__resp_arg *a = &c->argv[i];

		if (reap__resp_arg_is(a, "nx"))
			flags |= NX;
		else if (reap__resp_arg_is(a, "xx"))
			flags |= XX;
		else if (reap__resp_arg_is(a, "gt"))
			flags |= GT;
		else if (reap__resp_arg_is(a, "lt"))
			flags |= LT;
		else {
			char buf[160];
			int n = snprintf(buf, sizeof(buf), "Unsupported option %.*s",
					 (int)(a->len > 128 ? 128 : a->len), a->p);

			return reap__resp_error(c->out, buf, (size_t)n);
		}
	}
	if ((flags & NX) && (flags & (XX | GT | LT)))
		return err(c, "NX and XX, GT or LT options at the same time "
			      "are not compatible");
	if ((flags & GT) && (flags & LT))
		return err(c, "GT and LT options at the same time are not "
			      "compatible");
	if (!reap__resp_parse_ll(c->argv[2].p, c->argv[2].len, &when))
		return err(c, NOTINT);
	if (secs) {
		if (when > INT64_MAX / 1000 || when < INT64_MIN / 1000)
			return err_expire(c);
		when *= 1000;
	}
	/* Redis adds the wall-clock ms; ours is the monotonic clock in ns,
	 * so the overflow check is on the relative amount. */
	if (when > 0 && (uint64_t)when > (REAP_FOREVER - 1 - c->now) / NS_PER_MS)
		return err_expire(c);
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	o = lookup(c, &c->argv[1]);
	if (o == NULL)
		return reap__resp_int(c->out, 0);
	ns = when <= 0 ? 0 : c->now + (uint64_t)when * NS_PER_MS;
	if (flags) {
		if ((flags & NX) && o->expire_ns)
			return reap__resp_int(c->out, 0);
		if ((flags & XX) && !o->expire_ns)
			return reap__resp_int(c->out, 0);
		if ((flags & GT) && (!o->expire_ns || when <= 0 ||
				     ns <= o->expire_ns))
			return reap__resp_int(c->out, 0);
		if ((flags & LT) && o->expire_ns && when > 0 &&
		    ns >= o->expire_ns)
			return reap__resp_int(c->out, 0);
	}
	if (when <= 0) {
		delete_obj(c->db, o);
	} else {
		set_expire(c->db, o, ns);
		touch(c->db, o);
	}
	return reap__resp_int(c->out, 1);
}

static int cmd_expire(cx *c)
{
	return expire_generic(c, true);
}

static int cmd_pexpire(cx *c)
{
	return expire_generic(c, false);
}

static int ttl_generic(cx *c, bool ms)
{
	struct obj *o = lookup(c, &c->argv[1]);
	uint64_t left;

	if (o == NULL)
		return reap__resp_int(c->out, -2);
	if (o->expire_ns == 0)
		return reap__resp_int(c->out, -1);
	left = o->expire_ns > c->now ? o->expire_ns - c->now : 0;
	left = (left + NS_PER_MS - 1) / NS_PER_MS; /* ms, rounded up */
	return reap__resp_int(c->out, (int64_t)(ms ? left : (left + 500) / 1000));
}

static int cmd_ttl(cx *c)
{
	return ttl_generic(c, false);
}

static int cmd_pttl(cx *c)
{
	return ttl_generic(c, true);
}

/* ------------------------------------------------------------------ */
/* Strings                                                              */

static int reply_str(cx *c, const struct obj *o)
{
	return reap__resp_bulk(c->out, o->u.str.p, o->u.str.len);
}

/* Replace o's payload by the string buffer p (taken). */
static void commit_string(reap__mgr_db *db, struct obj *o, char *p, size_t n,
			  size_t cap)
{
	if (o->type != T_STRING) {
		payload_free(db, o);
		o->type = T_STRING;
		o->kind = type_name[T_STRING];
		o->reapmade = false; /* plain data now */
	} else {
		reap_free(o->u.str.p);
	}
	o->u.str.p = p;
	o->u.str.len = n;
	o->u.str.cap = cap;
}

/* Write value (n bytes) into key, making a persistent string if the key
 * is missing. reply is called after everything that can fail is ready
 * and before the commit. keepttl: leave the TTL; else set it to exp_ns
 * (0: none). */
static int store_string(cx *c, const reap__resp_arg *key, struct obj *o,
			const char *val, size_t n, uint64_t exp_ns, bool keepttl,
			int (*reply)(cx *c, void *arg), void *arg)
{
	struct obj *no = NULL;
	char *p = NULL;
	size_t cap = n;
	bool inplace = o && o->type == T_STRING && o->u.str.cap >= n && n;
	int rc;

	if (!inplace && n) {
		p = dup_bytes(val, n);
		if (p == NULL)
			return -ENOMEM;
	}
	if (o == NULL) {
		no = obj_new(c->db, c->s, &c->argv[0], key, T_STRING, c->now, NULL);
		if (no == NULL || tab_reserve(&c->db->keys, 1) != 0) {
			reap_free(no);
			reap_free(p);
			return -ENOMEM;
		}
	}
	rc = reply(c, arg);
	if (rc != 0) {
		reap_free(no);
		reap_free(p);
		return rc;
	}
	if (no) {
		no->u.str.p = p;
		no->u.str.len = n;
		no->u.str.cap = cap;
		tab_insert(&c->db->keys, &no->nd);
		o = no;
	} else if (inplace) {
		memcpy(o->u.str.p, val, n);
		o->u.str.len = n;
	} else {
		commit_string(c->db, o, p, n, cap);
	}
	if (!keepttl)
		set_expire(c->db, o, exp_ns);
	touch(c->db, o);
	return 0;
}

static int cmd_get(cx *c)
{
	struct obj *o = lookup(c, &c->argv[1]);

	if (o == NULL)
		return reap__resp_null(c->out);
	if (o->type != T_STRING)
		return err(c, WRONGTYPE);
	return reply_str(c, o);
}

static int reply_ok(cx *c, void *arg)
{
	(void)arg;
	return reap__resp_status(c->out, "OK", 2);
}

static int reply_old(cx *c, void *arg)
{
	const struct obj *o = arg;

	return o ? reply_str(c, o) : reap__resp_null(c->out);
}

/* SET key value [NX|XX] [GET] [EX s|PX ms|KEEPTTL], Redis 7's parsing
 * (parseExtendedStringArgumentsOrReply); EXAT/PXAT are not supported. */
static int cmd_set(cx *c)
{
	enum { NX = 1, XX = 2, GET = 4, KEEPTTL = 8, EX = 16, PX = 32 };
	int flags = 0;
	const reap__resp_arg *exp = NULL;
	uint64_t exp_ns = 0;
	struct obj *o;

	for (int j = 3; j < c->argc; j++) {
		const reap__resp_arg *a = &c->argv[j];
		bool next = j < c->argc - 1;

		if (reap__resp_arg_is(a, "nx") && !(flags & XX))
			flags |= NX;
		else if (reap__resp_arg_is(a, "xx") && !(flags & NX))
			flags |= XX;
		else if (reap__resp_arg_is(a, "get"))
			flags |= GET;
		else if (reap__resp_arg_is(a, "keepttl") &&
			 !(flags & (EX | PX)))
			flags |= KEEPTTL;
		else if (reap__resp_arg_is(a, "ex") &&
			 !(flags & (KEEPTTL | PX)) && next) {
			flags |= EX;
			exp = &c->argv[++j];
		} else if (reap__resp_arg_is(a, "px") &&
			   !(flags & (KEEPTTL | EX)) && next) {
			flags |= PX;
			exp = &c->argv[++j];
		} else {
			return err(c, SYNTAX);
		}
	}
	if (exp) {
		int64_t v;

		if (!reap__resp_parse_ll(exp->p, exp->len, &v))
			return err(c, NOTINT);
		if (v <= 0 || ((flags & EX) && v > INT64_MAX / 1000))
			return err_expire(c);
		if (flags & EX)
			v *= 1000;
		if ((uint64_t)v > (REAP_FOREVER - 1 - c->now) / NS_PER_MS)
			return err_expire(c);
		exp_ns = c->now + (uint64_t)v * NS_PER_MS;
	}
	o = lookup(c, &c->argv[1]);
	if ((flags & GET) && o && o->type != T_STRING)
		return err(c, WRONGTYPE);
	if (((flags & NX) && o) || ((flags & XX) && !o))
		return (flags & GET) ? reply_old(c, o) : reap__resp_null(c->out);
	if (flags & GET) {
		/* the old value is replied before the commit replaces it */
		return store_string(c, &c->argv[1], o, c->argv[2].p, c->argv[2].len,
				    exp_ns, flags & KEEPTTL, reply_old, o);
	}
	return store_string(c, &c->argv[1], o, c->argv[2].p, c->argv[2].len,
			    exp_ns, flags & KEEPTTL, reply_ok, NULL);
}

static int cmd_mget(cx *c)
{
	TRY(reap__resp_array(c->out, c->argc - 1));
	for (int i = 1; i < c->argc; i++) {
		struct obj *o = lookup(c, &c->argv[i]);

		if (o && o->type == T_STRING)
			TRY(reply_str(c, o));
		else
			TRY(reap__resp_null(c->out));
	}
	return 0;
}

/* MSET: every value and every new object is made first, then all are
 * stored. A key named twice gets the last value, as in Redis. */
static int cmd_mset(cx *c)
{
	int np = (c->argc - 1) / 2, rc = -ENOMEM, k;
	struct prep {
		char *p;
		struct obj *no;
	} *pv;

	if (c->argc % 2 == 0)
		return err_arity(c);
	pv = reap_calloc((size_t)np, sizeof(*pv));
	if (pv == NULL)
		return -ENOMEM;
	for (k = 0; k < np; k++) {
		const reap__resp_arg *key = &c->argv[1 + 2 * k];
		const reap__resp_arg *val = &c->argv[2 + 2 * k];

		if (val->len && (pv[k].p = dup_bytes(val->p, val->len)) == NULL)
			goto fail;
		if (lookup(c, key) == NULL) {
			pv[k].no = obj_new(c->db, c->s, &c->argv[0], key, T_STRING,
					   c->now, NULL);
			if (pv[k].no == NULL)
				goto fail;
		}
	}
	if (tab_reserve(&c->db->keys, (size_t)np) != 0)
		goto fail;
	if ((rc = reap__resp_status(c->out, "OK", 2)) != 0)
		goto fail;
	for (k = 0; k < np; k++) {
		const reap__resp_arg *key = &c->argv[1 + 2 * k];
		const reap__resp_arg *val = &c->argv[2 + 2 * k];
		uint64_t h = hash_bytes(c->db->seed, key->p, key->len);
		struct slot *sl = tab_find(&c->db->keys, key->p, key->len, h);
		struct obj *o;

		if (sl) {
			o = (struct obj *)sl->e;
			reap_free(pv[k].no);
			commit_string(c->db, o, pv[k].p, val->len, val->len);
		} else {
			o = pv[k].no;
			o->u.str.p = pv[k].p;
			o->u.str.len = o->u.str.cap = val->len;
			tab_insert(&c->db->keys, &o->nd);
		}
		set_expire(c->db, o, 0);
		touch(c->db, o);
	}
	reap_free(pv);
	return 0;
fail:
	for (k = 0; k < np; k++) {
		reap_free(pv[k].p);
		reap_free(pv[k].no);
	}
	reap_free(pv);
	return rc;
}

static int reply_int_arg(cx *c, void *arg)
{
	return reap__resp_int(c->out, *(int64_t *)arg);
}

/* INCR, DECR, INCRBY, DECRBY: Redis's incrDecrCommand. */
static int incr_generic(cx *c, int64_t incr)
{
	struct obj *o = lookup(c, &c->argv[1]);
	int64_t v = 0;
	char buf[24];
	size_t n;

	if (o && o->type != T_STRING)
		return err(c, WRONGTYPE);
	if (o && !reap__resp_parse_ll(o->u.str.p, o->u.str.len, &v))
		return err(c, NOTINT);
	if ((incr < 0 && v < 0 && incr < INT64_MIN - v) ||
	    (incr > 0 && v > 0 && incr > INT64_MAX - v))
		return err(c, OVERFLOW);
	v += incr;
	n = reap__resp_ll2str(buf, v);
	return store_string(c, &c->argv[1], o, buf, n, o ? o->expire_ns : 0,
			    true, reply_int_arg, &v);
}

static int cmd_incr(cx *c)
{
	return incr_generic(c, 1);
}

static int cmd_decr(cx *c)
{
	return incr_generic(c, -1);
}

static int cmd_incrby(cx *c)
{
	int64_t incr;

	if (!reap__resp_parse_ll(c->argv[2].p, c->argv[2].len, &incr))
		return err(c, NOTINT);
	return incr_generic(c, incr);
}

static int cmd_decrby(cx *c)
{
	int64_t incr;

	if (!reap__resp_parse_ll(c->argv[2].p, c->argv[2].len, &incr))
		return err(c, NOTINT);
	if (incr == INT64_MIN)
		return err(c, "decrement would overflow");
	return incr_generic(c, -incr);
}

struct bytes {
	const char *p;
	size_t n;
};

static int reply_bulk_arg(cx *c, void *arg)
{
	const struct bytes *b = arg;

	return reap__resp_bulk(c->out, b->p, b->n);
}

static int cmd_incrbyfloat(cx *c)
{
	struct obj *o = lookup(c, &c->argv[1]);
	long double v = 0, incr;
	char buf[MAX_LD_CHARS];
	struct bytes b;

	if (o && o->type != T_STRING)
		return err(c, WRONGTYPE);
	if ((o && !str2ld(o->u.str.p, o->u.str.len, &v)) ||
	    !str2ld(c->argv[2].p, c->argv[2].len, &incr))
		return err(c, NOTFLOAT);
	v += incr;
	if (isnan(v) || isinf(v))
		return err(c, "increment would produce NaN or Infinity");
	b.p = buf;
	b.n = ld2str(buf, sizeof(buf), v);
	return store_string(c, &c->argv[1], o, buf, b.n, 0, true,
			    reply_bulk_arg, &b);
}

/* ------------------------------------------------------------------ */
/* Hashes                                                               */

static struct hent *hent_new(reap__mgr_db *db, const reap__resp_arg *f,
			     const char *v, size_t vn)
{
	struct hent *e;
	char *k;

	if (f->len > SIZE_MAX / 2 - sizeof(*e) || vn > SIZE_MAX / 2)
		return NULL;
	e = reap_malloc(sizeof(*e) + f->len + vn + 1);
	if (e == NULL)
		return NULL;
	k = (char *)(e + 1);
	memcpy(k, f->p, f->len);
	e->nd.key = k;
	e->nd.klen = f->len;
	e->nd.h = hash_bytes(db->seed, f->p, f->len);
	e->val = k + f->len;
	memcpy(e->val, v, vn);
	e->val[vn] = '\0';
	e->vlen = vn;
	return e;
}

static struct hent *hash_get(reap__mgr_db *db, const struct obj *o,
			     const reap__resp_arg *f)
{
	struct slot *sl = tab_find(&o->u.hash.t, f->p, f->len,
				    hash_bytes(db->seed, f->p, f->len));

	return sl ? (struct hent *)sl->e : NULL;
}

/* Store e (taken) in m, replacing a field of the same name in its
 * place. Returns 1 if the field is new. After hash_reserve(m, 1). */
static int hash_put(struct hmap *m, struct hent *e)
{
	struct slot *sl = tab_find(&m->t, e->nd.key, e->nd.klen, e->nd.h);

	if (sl) {
		struct hent *old = (struct hent *)sl->e;

		e->pos = old->pos;
		m->ev[e->pos] = e;
		sl->e = &e->nd;
		reap_free(old);
		return 0;
	}
	e->pos = m->en;
	m->ev[m->en++] = e;
	tab_insert(&m->t, &e->nd);
	return 1;
}

/* Look a hash up for writing: NULL with *rc = 0 if missing, NULL with
 * an error reply written if it has another type. */
static struct obj *lookup_type(cx *c, const reap__resp_arg *key, int type,
			       int *rc)
{
	struct obj *o = lookup(c, key);

	*rc = 0;
	if (o && o->type != type) {
		*rc = err(c, WRONGTYPE);
		if (*rc == 0)
			*rc = 1;
		return NULL;
	}
	return o;
}

#define WRONG(rc) ((rc) == 1 ? 0 : (rc))

static int cmd_hset(cx *c)
{
	int np = (c->argc - 2) / 2, rc, k;
	struct obj *o, *no = NULL;
	struct hent **ev;
	struct hmap *t;
	int64_t added = 0;

	if (c->argc % 2 == 1)
		return err_arity(c);
	o = lookup_type(c, &c->argv[1], T_HASH, &rc);
	if (rc)
		return WRONG(rc);
	if (o == NULL) {
		no = obj_new(c->db, c->s, &c->argv[0], &c->argv[1], T_HASH, c->now, NULL);
		if (no == NULL)
			return -ENOMEM;
		if (tab_reserve(&c->db->keys, 1) != 0) {
			reap_free(no);
			return -ENOMEM;
		}
	}
	t = no ? &no->u.hash : &o->u.hash;
	ev = reap_calloc((size_t)np, sizeof(*ev));
	rc = -ENOMEM;
	if (ev == NULL)
		goto fail;
	for (k = 0; k < np; k++) {
		const reap__resp_arg *v = &c->argv[3 + 2 * k];

		ev[k] = hent_new(c->db, &c->argv[2 + 2 * k], v->p, v->len);
		if (ev[k] == NULL)
			goto fail;
	}
	if (hash_reserve(t, (size_t)np) != 0)
		goto fail;
	if ((rc = reap__resp_reserve(c->out, SMALL_REPLY)) != 0)
		goto fail;
	for (k = 0; k < np; k++)
		added += hash_put(t, ev[k]);
	reap_free(ev);
	if (no)
		tab_insert(&c->db->keys, &no->nd);
	touch(c->db, no ? no : o);
	return reap__resp_int(c->out, added);
fail:
	for (k = 0; ev && k < np; k++)
		reap_free(ev[k]);
	reap_free(ev);
	hash_unreserve_empty(t);
	if (no) {
		hash_free(&no->u.hash);
		reap_free(no);
	}
	return rc;
}

static int cmd_hget(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_HASH, &rc);
	struct hent *e;

	if (rc)
		return WRONG(rc);
	if (o == NULL || (e = hash_get(c->db, o, &c->argv[2])) == NULL)
		return reap__resp_null(c->out);
	return reap__resp_bulk(c->out, e->val, e->vlen);
}

static int cmd_hmget(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_HASH, &rc);

	if (rc)
		return WRONG(rc);
	TRY(reap__resp_array(c->out, c->argc - 2));
	for (int i = 2; i < c->argc; i++) {
		struct hent *e = o ? hash_get(c->db, o, &c->argv[i]) : NULL;

		if (e)
			TRY(reap__resp_bulk(c->out, e->val, e->vlen));
		else
			TRY(reap__resp_null(c->out));
	}
	return 0;
}

static int cmd_hdel(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_HASH, &rc);
	int64_t n = 0;

	if (rc)
		return WRONG(rc);
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	for (int i = 2; o && i < c->argc; i++) {
		const reap__resp_arg *f = &c->argv[i];
		struct slot *sl = tab_find(&o->u.hash.t, f->p, f->len,
					    hash_bytes(c->db->seed, f->p, f->len));

		if (sl) {
			hash_del(&o->u.hash, sl);
			n++;
		}
	}
	if (n)
		touch(c->db, o);
	if (o && o->u.hash.t.n == 0 && !o->reapmade)
		delete_obj(c->db, o);
	return reap__resp_int(c->out, n);
}

static int cmd_hlen(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_HASH, &rc);

	if (rc)
		return WRONG(rc);
	return reap__resp_int(c->out, o ? (int64_t)o->u.hash.t.n : 0);
}

static int cmd_hgetall(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_HASH, &rc);
	const struct hmap *m;

	if (rc)
		return WRONG(rc);
	if (o == NULL)
		return reap__resp_map(c->out, 0);
	m = &o->u.hash;
	TRY(reap__resp_map(c->out, (int64_t)m->t.n));
	for (size_t i = 0; i < m->en; i++) {
		const struct hent *e = m->ev[i];

		if (e == NULL)
			continue;
		TRY(reap__resp_bulk(c->out, e->nd.key, e->nd.klen));
		TRY(reap__resp_bulk(c->out, e->val, e->vlen));
	}
	return 0;
}

static int cmd_hincrby(cx *c)
{
	int64_t incr, v = 0;
	struct obj *o, *no = NULL;
	struct hent *e, *ne;
	char buf[24];
	size_t n;
	int rc;

	if (!reap__resp_parse_ll(c->argv[3].p, c->argv[3].len, &incr))
		return err(c, NOTINT);
	o = lookup_type(c, &c->argv[1], T_HASH, &rc);
	if (rc)
		return WRONG(rc);
	e = o ? hash_get(c->db, o, &c->argv[2]) : NULL;
	if (e && !reap__resp_parse_ll(e->val, e->vlen, &v))
		return err(c, "hash value is not an integer");
	if ((incr < 0 && v < 0 && incr < INT64_MIN - v) ||
	    (incr > 0 && v > 0 && incr > INT64_MAX - v))
		return err(c, OVERFLOW);
	v += incr;
	n = reap__resp_ll2str(buf, v);
	if (o == NULL) {
		no = obj_new(c->db, c->s, &c->argv[0], &c->argv[1], T_HASH, c->now, NULL);
		if (no == NULL)
			return -ENOMEM;
		if (tab_reserve(&c->db->keys, 1) != 0) {
			reap_free(no);
			return -ENOMEM;
		}
		o = no;
	}
	ne = hent_new(c->db, &c->argv[2], buf, n);
	rc = -ENOMEM;
	if (ne == NULL || hash_reserve(&o->u.hash, 1) != 0 ||
	    (rc = reap__resp_int(c->out, v)) != 0) {
		reap_free(ne);
		hash_unreserve_empty(&o->u.hash);
		if (no) {
			hash_free(&no->u.hash);
			reap_free(no);
		}
		return rc;
	}
	hash_put(&o->u.hash, ne);
	if (no)
		tab_insert(&c->db->keys, &no->nd);
	touch(c->db, o);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Lists                                                                */

static inline struct lel *dq_at(const struct deque *d, size_t i)
{
	return &d->v[(d->head + i) & (d->cap - 1)];
}

/* Room for extra more elements. -ENOMEM leaves d as it was. */
static int dq_reserve(struct deque *d, size_t extra)
{
	size_t cap;
	struct lel *v;

	if (d->cap - d->n >= extra)
		return 0;
	if (extra > SIZE_MAX / 4 / sizeof(*v) - d->n)
		return -ENOMEM;
	for (cap = d->cap ? d->cap * 2 : 8; cap - d->n < extra; cap *= 2)
		;
	v = reap_malloc(cap * sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < d->n; i++)
		v[i] = *dq_at(d, i);
	reap_free(d->v);
	d->v = v;
	d->cap = cap;
	d->head = 0;
	return 0;
}

/* Where the i-th element of a push goes, before the push is committed. */
static struct lel *push_slot(const struct deque *d, bool left, size_t i)
{
	if (left)
		return &d->v[(d->head - 1 - i) & (d->cap - 1)];
	return dq_at(d, d->n + i);
}

static void list_after_pop(reap__mgr_db *db, struct obj *o)
{
	if (o->u.list.n == 0 && !o->reapmade)
		delete_obj(db, o);
}

static int push_generic(cx *c, bool left)
{
	size_t n = (size_t)c->argc - 2, i;
	struct obj *o, *no = NULL;
	struct deque *d;
	int rc;

	o = lookup_type(c, &c->argv[1], T_LIST, &rc);
	if (rc)
		return WRONG(rc);
	if (o == NULL) {
		no = obj_new(c->db, c->s, &c->argv[0], &c->argv[1], T_LIST, c->now, NULL);
		if (no == NULL)
			return -ENOMEM;
		if (tab_reserve(&c->db->keys, 1) != 0) {
			reap_free(no);
			return -ENOMEM;
		}
		o = no;
	}
	d = &o->u.list;
	rc = -ENOMEM;
	if (dq_reserve(d, n) != 0)
		goto fail;
	/* The copies go straight into the free slots where they will live:
	 * before the head (last argument first) or past the tail. */
	for (i = 0; i < n; i++) {
		const reap__resp_arg *a = &c->argv[2 + i];
		struct lel *e = push_slot(d, left, i);

		e->n = a->len;
		if ((e->p = dup_bytes(a->p, a->len)) == NULL)
			goto fail_copies;
	}
	if ((rc = reap__resp_reserve(c->out, SMALL_REPLY)) != 0)
		goto fail_copies;
	if (left)
		d->head = (d->head - n) & (d->cap - 1);
	d->n += n;
	if (no)
		tab_insert(&c->db->keys, &no->nd);
	touch(c->db, o);
	wake(c->db, c->argv[1].p, c->argv[1].len);
	return reap__resp_int(c->out, (int64_t)d->n);
fail_copies:
	while (i-- > 0)
		reap_free(push_slot(d, left, i)->p);
fail:
	if (d->n == 0) { /* give back a first ring */
		reap_free(d->v);
		memset(d, 0, sizeof(*d));
	}
	reap_free(no);
	return rc;
}

static int cmd_lpush(cx *c)
{
	return push_generic(c, true);
}

static int cmd_rpush(cx *c)
{
	return push_generic(c, false);
}

static int pop_generic(cx *c, bool left)
{
	int64_t count = 1;
	bool hascount = false;
	struct obj *o;
	struct deque *d;
	int rc;

	if (c->argc > 3)
		return err_arity(c);
	if (c->argc == 3) {
		if (!reap__resp_parse_ll(c->argv[2].p, c->argv[2].len, &count) ||
		    count < 0)
			return err(c, "value is out of range, must be positive");
		hascount = true;
	}
	o = lookup(c, &c->argv[1]);
	if (o == NULL)
		return hascount ? reap__resp_null_array(c->out)
				: reap__resp_null(c->out);
	if (o->type != T_LIST)
		return err(c, WRONGTYPE);
	d = &o->u.list;
	if (hascount && count == 0)
		return reap__resp_array(c->out, 0);
	if ((uint64_t)count > d->n)
		count = (int64_t)d->n;
	if (d->n == 0) /* a REAP.CREATE'd list, empty */
		return hascount ? reap__resp_null_array(c->out)
				: reap__resp_null(c->out);
	if (hascount)
		TRY(reap__resp_array(c->out, count));
	for (int64_t i = 0; i < count; i++) {
		struct lel *e = dq_at(d, left ? (size_t)i : d->n - 1 - (size_t)i);

		if ((rc = reap__resp_bulk(c->out, e->p, e->n)) != 0)
			return rc;
	}
	for (int64_t i = 0; i < count; i++) {
		if (left) {
			reap_free(dq_at(d, 0)->p);
			d->head = (d->head + 1) & (d->cap - 1);
		} else {
			reap_free(dq_at(d, d->n - 1)->p);
		}
		d->n--;
	}
	touch(c->db, o);
	list_after_pop(c->db, o);
	return 0;
}

static int cmd_lpop(cx *c)
{
	return pop_generic(c, true);
}

static int cmd_rpop(cx *c)
{
	return pop_generic(c, false);
}

static int cmd_llen(cx *c)
{
	int rc;
	struct obj *o = lookup_type(c, &c->argv[1], T_LIST, &rc);

	if (rc)
		return WRONG(rc);
	return reap__resp_int(c->out, o ? (int64_t)o->u.list.n : 0);
}

static int cmd_lrange(cx *c)
{
	int64_t start, end, len;
	struct obj *o;
	int rc;

	if (!reap__resp_parse_ll(c->argv[2].p, c->argv[2].len, &start) ||
	    !reap__resp_parse_ll(c->argv[3].p, c->argv[3].len, &end))
		return err(c, NOTINT);
	o = lookup_type(c, &c->argv[1], T_LIST, &rc);
	if (rc)
		return WRONG(rc);
	if (o == NULL)
		return reap__resp_array(c->out, 0);
	len = (int64_t)o->u.list.n;
	if (start < 0)
		start = len + start;
	if (end < 0)
		end = len + end;
	if (start < 0)
		start = 0;
	if (start > end || start >= len)
		return reap__resp_array(c->out, 0);
	if (end >= len)
		end = len - 1;
	TRY(reap__resp_array(c->out, end - start + 1));
	for (int64_t i = start; i <= end; i++) {
		struct lel *e = dq_at(&o->u.list, (size_t)i);

		TRY(reap__resp_bulk(c->out, e->p, e->n));
	}
	return 0;
}

/* BLPOP / BRPOP key [key ...] timeout */
static int bpop_generic(cx *c, bool left)
{
	long long ms;
	int rc;

	if (parse_timeout(c, &c->argv[c->argc - 1], &ms, &rc))
		return rc;
	for (int i = 1; i < c->argc - 1; i++) {
		struct obj *o = lookup(c, &c->argv[i]);
		struct deque *d;
		struct lel *e;

		if (o == NULL)
			continue;
		if (o->type != T_LIST)
			return err(c, WRONGTYPE);
		d = &o->u.list;
		if (d->n == 0)
			continue;
		e = dq_at(d, left ? 0 : d->n - 1);
		TRY(reap__resp_array(c->out, 2));
		TRY(reap__resp_bulk(c->out, c->argv[i].p, c->argv[i].len));
		TRY(reap__resp_bulk(c->out, e->p, e->n));
		reap_free(e->p);
		if (left)
			d->head = (d->head + 1) & (d->cap - 1);
		d->n--;
		touch(c->db, o);
		list_after_pop(c->db, o);
		return 0;
	}
	if (timed_out(c))
		return reap__resp_null_array(c->out);
	return block(c, ms);
}

static int cmd_blpop(cx *c)
{
	return bpop_generic(c, true);
}

static int cmd_brpop(cx *c)
{
	return bpop_generic(c, false);
}

/* ------------------------------------------------------------------ */
/* reap's own commands                                                  */

static int err_lookup(cx *c, const reap__resp_arg *key, int type,
		      struct obj **out)
{
	struct obj *o = lookup(c, key);
	int rc;

	*out = NULL;
	if (o == NULL)
		rc = err(c, NOKEY);
	else if (type >= 0 && o->type != type)
		rc = err(c, WRONGTYPE);
	else {
		*out = o;
		return 0;
	}
	return rc ? rc : 1;
}

static const struct {
	const char *name;
	int type;
	int extra; /* 0 none, 1 optional string, 2 optional int, 3 int */
	int min;   /* of the int when extra is 3 */
} kinds[] = {
	{"value", T_STRING, 1, 0},  {"counter", T_STRING, 2, 0},
	{"dict", T_HASH, 0, 0},     {"namespace", T_HASH, 0, 0},
	{"list", T_LIST, 0, 0},     {"queue", T_LIST, 0, 0},
	{"lock", T_LOCK, 0, 0},     {"semaphore", T_SEM, 3, 0},
	{"event", T_EVENT, 0, 0},   {"barrier", T_BARRIER, 3, 1},
};

/* The index in kinds[] of a REAP.CREATE type name, or -1. */
static int kind_index(const reap__resp_arg *a)
{
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (reap__resp_arg_is(a, kinds[i].name))
			return (int)i;
	return -1;
}

static int cmd_reap_create(cx *c)
{
	int ki, life = -1, rc, argc = c->argc;
	const reap__resp_arg *arg, *site = NULL;
	int64_t iv = 0;
	struct obj *o;
	char *p = NULL;
	size_t n = 0;

	/* A trailing "SITE where" names the creator's source line. */
	if (argc >= 6 && reap__resp_arg_is(&c->argv[argc - 2], "site")) {
		site = &c->argv[argc - 1];
		argc -= 2;
	}
	arg = argc > 4 ? &c->argv[4] : NULL;

	ki = kind_index(&c->argv[1]);
	for (int i = 0; i < 3; i++)
		if (reap__resp_arg_is(&c->argv[3], life_name[i]))
			life = i;
	if (ki < 0)
		return err(c, "unknown object type");
	if (life < 0)
		return err(c, "unknown lifetime");
	if (argc > 5 || (arg && kinds[ki].extra == 0) ||
	    (!arg && kinds[ki].extra == 3))
		return err(c, SYNTAX);
	if (arg && kinds[ki].extra >= 2 &&
	    (!reap__resp_parse_ll(arg->p, arg->len, &iv) ||
	     (kinds[ki].extra == 3 && iv < kinds[ki].min)))
		return err(c, NOTINT);
	if (lookup(c, &c->argv[2]))
		return err(c, "key already exists");
	if (kinds[ki].type == T_STRING) {
		char buf[24];
		const char *src = arg ? arg->p : buf;

		n = arg ? arg->len : 0;
		if (kinds[ki].extra == 2 && !arg) {
			n = reap__resp_ll2str(buf, 0);
			src = buf;
		}
		if (n && (p = dup_bytes(src, n)) == NULL)
			return -ENOMEM;
	}
	o = obj_new(c->db, c->s, &c->argv[0], &c->argv[2], kinds[ki].type,
		    c->now, site);
	rc = -ENOMEM;
	if (o == NULL)
		goto fail;
	if (life == L_SHARED && holds_reserve(&o->holds) != 0)
		goto fail;
	if (tab_reserve(&c->db->keys, 1) != 0)
		goto fail;
	if ((rc = reap__resp_status(c->out, "OK", 2)) != 0)
		goto fail;
	o->life = (uint8_t)life;
	o->reapmade = true;
	o->kind = kinds[ki].name;
	if (kinds[ki].type == T_STRING) {
		o->u.str.p = p;
		o->u.str.len = o->u.str.cap = n;
	} else if (kinds[ki].type == T_SEM) {
		o->u.sem.avail = o->u.sem.total = iv;
	} else if (kinds[ki].type == T_BARRIER) {
		o->u.bar.parties = iv;
	}
	if (life == L_SESSION) {
		o->owner = c->s;
		c->s->ties++;
	} else if (life == L_SHARED) {
		o->holds.v[0].s = c->s;
		o->holds.v[0].n = 1;
		o->holds.n = 1;
		o->holdsum = 1;
		c->s->ties++;
	}
	tab_insert(&c->db->keys, &o->nd);
	touch(c->db, o);
	return 0;
fail:
	if (o)
		reap_free(o->holds.v);
	reap_free(o);
	reap_free(p);
	return rc;
}

/* Whether o can be used as an object of kinds[ki]: made as one, or made
 * by plain Redis commands with the same representation (a hash from
 * HSET opens as a dict or a namespace; a dict made as a dict does not
 * open as a namespace, nor a var as a counter). */
static bool kind_fits(const struct obj *o, int ki)
{
	if (o->type != kinds[ki].type)
		return false;
	return !o->reapmade || strcmp(o->kind, kinds[ki].name) == 0;
}

/* REAP.HOLD key [kind]: with kind, the object must be one (kind_fits),
 * checked with the hold in one step. */
static int cmd_reap_hold(cx *c)
{
	struct obj *o;
	struct hold *h;
	int ki = -1, rc;

	if (c->argc > 3)
		return err_arity(c);
	if (c->argc == 3 && (ki = kind_index(&c->argv[2])) < 0)
		return err(c, "unknown object type");
	if ((rc = err_lookup(c, &c->argv[1], -1, &o)))
		return WRONG(rc);
	if (ki >= 0 && !kind_fits(o, ki)) {
		char m[96];

		snprintf(m, sizeof m, "-WRONGTYPE the key holds a %s, not a %s",
			 o->kind, kinds[ki].name);
		return err(c, m);
	}
	if (o->life != L_SHARED)
		return err(c, "object is not shared");
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	if ((h = holds_find(&o->holds, c->s)) == NULL) {
		TRY(holds_reserve(&o->holds));
		h = &o->holds.v[o->holds.n++];
		h->s = c->s;
		h->n = 0;
		c->s->ties++;
	}
	h->n++;
	o->holdsum++;
	return reap__resp_int(c->out, (int64_t)o->holdsum);
}

static int cmd_reap_release(cx *c)
{
	struct obj *o;
	struct hold *h;
	uint64_t left;
	int rc = err_lookup(c, &c->argv[1], -1, &o);

	if (rc)
		return WRONG(rc);
	if (o->life != L_SHARED)
		return err(c, "object is not shared");
	if ((h = holds_find(&o->holds, c->s)) == NULL)
		return err(c, "object not held by this session");
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	if (--h->n == 0)
		holds_remove(&o->holds, h);
	left = --o->holdsum;
	if (left == 0)
		delete_obj(c->db, o);
	return reap__resp_int(c->out, (int64_t)left);
}

/* The optional timeout of REAP.LOCK / ACQUIRE / WAIT. */
static int opt_timeout(cx *c, long long *ms, int *rc)
{
	*ms = 0;
	*rc = 0;
	if (c->argc > 3) {
		*rc = err(c, SYNTAX);
		return 1;
	}
	if (c->argc == 3)
		return parse_timeout(c, &c->argv[2], ms, rc);
	return 0;
}

/* The start of REAP.LOCK / ACQUIRE / WAIT key [timeout]: the timeout,
 * then the key's object of the given type. 1 when the command is done
 * (*rc is its result: an error reply was written, or a negative errno),
 * 0 with *ms and *o set. */
static int open_blocking(cx *c, int type, long long *ms, struct obj **o,
			 int *rc)
{
	if (opt_timeout(c, ms, rc))
		return 1;
	*rc = err_lookup(c, &c->argv[1], type, o);
	if (*rc) {
		*rc = WRONG(*rc);
		return 1;
	}
	return 0;
}

/* Not available yet: block, or past the deadline reply nil. */
static int block_or_nil(cx *c, long long ms)
{
	if (timed_out(c))
		return reap__resp_null(c->out);
	return block(c, ms);
}

static int reply_acquired(cx *c, bool *died)
{
	bool d = *died;

	*died = false;
	return d ? reap__resp_status(c->out, "OWNERDIED", 9)
		 : reap__resp_status(c->out, "OK", 2);
}

static int cmd_reap_lock(cx *c)
{
	long long ms;
	struct obj *o;
	int rc;

	if (open_blocking(c, T_LOCK, &ms, &o, &rc))
		return rc;
	if (o->u.lock.owner == c->s)
		return err(c, "lock already held by this session");
	if (o->u.lock.owner == NULL) {
		TRY(reap__resp_reserve(c->out, SMALL_REPLY));
		o->u.lock.owner = c->s;
		c->s->ties++;
		touch(c->db, o);
		return reply_acquired(c, &o->u.lock.died);
	}
	return block_or_nil(c, ms);
}

static int cmd_reap_unlock(cx *c)
{
	struct obj *o;
	int rc = err_lookup(c, &c->argv[1], T_LOCK, &o);

	if (rc)
		return WRONG(rc);
	if (o->u.lock.owner != c->s)
		return err(c, "lock not held by this session");
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	o->u.lock.owner = NULL;
	c->s->ties--;
	touch(c->db, o);
	wake_obj(c->db, o);
	return reap__resp_status(c->out, "OK", 2);
}

static int cmd_reap_acquire(cx *c)
{
	long long ms;
	struct obj *o;
	struct hold *h;
	int rc;

	if (open_blocking(c, T_SEM, &ms, &o, &rc))
		return rc;
	if (o->u.sem.avail > 0) {
		TRY(reap__resp_reserve(c->out, SMALL_REPLY));
		if ((h = holds_find(&o->u.sem.h, c->s)) == NULL) {
			TRY(holds_reserve(&o->u.sem.h));
			h = &o->u.sem.h.v[o->u.sem.h.n++];
			h->s = c->s;
			h->n = 0;
			c->s->ties++;
		}
		h->n++;
		o->u.sem.avail--;
		touch(c->db, o);
		return reply_acquired(c, &o->u.sem.died);
	}
	return block_or_nil(c, ms);
}

static int cmd_reap_releasesem(cx *c)
{
	struct obj *o;
	struct hold *h;
	int rc = err_lookup(c, &c->argv[1], T_SEM, &o);

	if (rc)
		return WRONG(rc);
	if ((h = holds_find(&o->u.sem.h, c->s)) == NULL)
		return err(c, "semaphore not held by this session");
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	if (--h->n == 0)
		holds_remove(&o->u.sem.h, h);
	o->u.sem.avail++;
	touch(c->db, o);
	wake_obj(c->db, o);
	return reap__resp_status(c->out, "OK", 2);
}

static int event_set(cx *c, bool v)
{
	struct obj *o;
	int rc = err_lookup(c, &c->argv[1], T_EVENT, &o);

	if (rc)
		return WRONG(rc);
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	o->u.ev.set = v;
	touch(c->db, o);
	if (v)
		wake_obj(c->db, o);
	return reap__resp_status(c->out, "OK", 2);
}

static int cmd_reap_set(cx *c)
{
	return event_set(c, true);
}

static int cmd_reap_clear(cx *c)
{
	return event_set(c, false);
}

static int cmd_reap_wait(cx *c)
{
	long long ms;
	struct obj *o;
	int rc;

	if (open_blocking(c, T_EVENT, &ms, &o, &rc))
		return rc;
	if (o->u.ev.set)
		return reap__resp_status(c->out, "OK", 2);
	return block_or_nil(c, ms);
}

/* Withdraw the i-th arrival, keeping the others' order. */
static void bar_withdraw(struct obj *o, uint32_t i)
{
	struct holds *w = &o->u.bar.w;

	w->v[i].s->ties--;
	memmove(&w->v[i], &w->v[i + 1], (w->n - i - 1) * sizeof(w->v[0]));
	w->n--;
}

/*
 * REAP.BARRIER key [timeout]. A blocked command is run again when woken,
 * so an arrival is remembered where the retry finds it: the waiting
 * session is on the barrier's list (tied to it), and when the last
 * party arrives each waiter is taken off and given its index in the
 * session (bar_done), which its retry replies even if the barrier was
 * deleted since. A timeout or the session's end withdraws the arrival.
 */
static int cmd_reap_barrier(cx *c)
{
	reap__mgr_sess *s = c->s;
	long long ms;
	struct obj *o;
	struct holds *w;
	uint32_t i;
	int rc;

	if (opt_timeout(c, &ms, &rc))
		return rc;
	if (s->bar_done) { /* released while blocked: the retry */
		TRY(reap__resp_int(c->out, s->bar_idx));
		s->bar_done = false;
		return 0;
	}
	rc = err_lookup(c, &c->argv[1], T_BARRIER, &o);
	if (rc)
		return WRONG(rc);
	w = &o->u.bar.w;
	for (i = 0; i < w->n && w->v[i].s != s; i++)
		;
	if (i < w->n) { /* arrived earlier, still waiting */
		if (!timed_out(c))
			return block(c, ms);
		TRY(reap__resp_reserve(c->out, SMALL_REPLY));
		bar_withdraw(o, i);
		touch(c->db, o);
		return reap__resp_null(c->out);
	}
	if (timed_out(c)) /* a retry that finds its arrival gone */
		return reap__resp_null(c->out);
	if ((int64_t)w->n + 1 < o->u.bar.parties) {
		TRY(holds_reserve(w));
		w->v[w->n].s = s;
		w->v[w->n++].n = 0;
		s->ties++;
		touch(c->db, o);
		return block(c, ms);
	}
	/* the last party: release this generation, start the next */
	TRY(reap__resp_reserve(c->out, SMALL_REPLY));
	for (i = 0; i < w->n; i++) {
		w->v[i].s->bar_done = true;
		w->v[i].s->bar_idx = i;
		w->v[i].s->ties--;
	}
	i = w->n;
	w->n = 0;
	o->u.bar.gen++;
	touch(c->db, o);
	wake_obj(c->db, o);
	return reap__resp_int(c->out, i);
}

static int kv_str(reap__resp_buf *b, const char *k, const char *v, size_t n)
{
	TRY(reap__resp_bulk(b, k, strlen(k)));
	return reap__resp_bulk(b, v, n);
}

static int kv_int(reap__resp_buf *b, const char *k, int64_t v)
{
	TRY(reap__resp_bulk(b, k, strlen(k)));
	return reap__resp_int(b, v);
}

/* REAP.OBJECTS's "state": a lock's holder (session id, 0: free), a
 * semaphore's free permits, an event's flag, a barrier's arrivals in
 * the current generation, else the size. */
static int64_t obj_state(const struct obj *o)
{
	switch (o->type) {
	case T_STRING:
		return (int64_t)o->u.str.len;
	case T_HASH:
		return (int64_t)o->u.hash.t.n;
	case T_LIST:
		return (int64_t)o->u.list.n;
	case T_LOCK:
		return o->u.lock.owner ? (int64_t)o->u.lock.owner->id : 0;
	case T_SEM:
		return o->u.sem.avail;
	case T_BARRIER:
		return o->u.bar.w.n;
	default:
		return o->u.ev.set;
	}
}

static int cmd_reap_objects(cx *c)
{
	const struct tab *t = &c->db->keys;
	reap__resp_buf *b = c->out;
	int64_t n = 0;

	for (size_t i = 0; t->slot && i <= t->mask; i++) {
		const struct obj *o = (const struct obj *)t->slot[i].e;

		n += o && !(o->expire_ns && c->now > o->expire_ns);
	}
	TRY(reap__resp_array(b, n));
	for (size_t i = 0; t->slot && i <= t->mask; i++) {
		const struct obj *o = (const struct obj *)t->slot[i].e;
		const reap__mgr_sess *ow;
		const char *on;

		if (o == NULL || (o->expire_ns && c->now > o->expire_ns))
			continue;
		ow = o->owner;
		on = ow ? reap__mgr_sess_name(ow) : "";
		TRY(reap__resp_map(b, 16));
		TRY(kv_str(b, "key", o->nd.key, o->nd.klen));
		TRY(kv_str(b, "type", o->kind, strlen(o->kind)));
		TRY(kv_str(b, "lifetime", life_name[o->life],
			   strlen(life_name[o->life])));
		TRY(kv_int(b, "owner", ow ? (int64_t)ow->id : 0));
		TRY(kv_int(b, "owner-pid", ow ? ow->pid : 0));
		TRY(kv_str(b, "owner-name", on, strlen(on)));
		TRY(kv_int(b, "holders", (int64_t)o->holdsum));
		TRY(kv_int(b, "holder-sessions", o->holds.n));
		TRY(kv_int(b, "creator", (int64_t)o->csid));
		TRY(kv_int(b, "creator-pid", o->cpid));
		TRY(kv_str(b, "creator-name", o->cname, strlen(o->cname)));
		TRY(kv_str(b, "creator-cmd", o->ccmd, strlen(o->ccmd)));
		TRY(kv_str(b, "creator-site", o->csite, strlen(o->csite)));
		TRY(kv_int(b, "age-ms",
			   (int64_t)((c->now - o->ctime_ns) / NS_PER_MS)));
		TRY(kv_int(b, "ttl-ms",
			   o->expire_ns ? (int64_t)((o->expire_ns - c->now) /
						    NS_PER_MS)
					: -1));
		TRY(kv_int(b, "state", obj_state(o)));
	}
	return 0;
}

static int cmd_reap_sessions(cx *c)
{
	reap__resp_buf *b = c->out;

	TRY(reap__resp_array(b, (int64_t)c->db->nsess));
	for (size_t i = 0; i < c->db->nsess; i++) {
		const reap__mgr_sess *s = c->db->sv[i];
		const char *nm = reap__mgr_sess_name(s);

		TRY(reap__resp_map(b, 5));
		TRY(kv_int(b, "id", (int64_t)s->id));
		TRY(kv_int(b, "pid", s->pid));
		TRY(kv_str(b, "name", nm, strlen(nm)));
		TRY(kv_int(b, "proto", s->proto));
		TRY(kv_int(b, "ties", (int64_t)s->ties));
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* Dispatch                                                             */

#define C(name, arity, fn) {name, sizeof(name) - 1, arity, fn, 0, 0}
/* read-only, with keys (tracked) */
#define R(name, arity, fn, kf, kl) {name, sizeof(name) - 1, arity, fn, kf, kl}

/* The hot commands first. */
static const struct cmd cmds[] = {
	R("get", 2, cmd_get, 1, 1),
	C("set", -3, cmd_set),
	C("incr", 2, cmd_incr),
	C("ping", -1, cmd_ping),
	C("lpush", -3, cmd_lpush),
	C("rpush", -3, cmd_rpush),
	C("lpop", -2, cmd_lpop),
	C("rpop", -2, cmd_rpop),
	C("hset", -4, cmd_hset),
	C("mset", -3, cmd_mset),
	R("hget", 3, cmd_hget, 1, 1),
	R("mget", -2, cmd_mget, 1, -1),
	C("echo", 2, cmd_echo),
	C("del", -2, cmd_del),
	R("exists", -2, cmd_exists, 1, -1),
	C("decr", 2, cmd_decr),
	C("incrby", 3, cmd_incrby),
	C("decrby", 3, cmd_decrby),
	C("incrbyfloat", 3, cmd_incrbyfloat),
	C("expire", -3, cmd_expire),
	C("pexpire", -3, cmd_pexpire),
	R("ttl", 2, cmd_ttl, 1, 1),
	R("pttl", 2, cmd_pttl, 1, 1),
	C("hdel", -3, cmd_hdel),
	R("hlen", 2, cmd_hlen, 1, 1),
	R("hgetall", 2, cmd_hgetall, 1, 1),
	R("hmget", -3, cmd_hmget, 1, 1),
	C("hincrby", 4, cmd_hincrby),
	R("llen", 2, cmd_llen, 1, 1),
	R("lrange", 4, cmd_lrange, 1, 1),
	C("blpop", -3, cmd_blpop),
	C("brpop", -3, cmd_brpop),
	C("dbsize", 1, cmd_dbsize),
	C("flushall", -1, cmd_flushall),
	R("type", 2, cmd_type, 1, 1),
	C("reap.create", -4, cmd_reap_create),
	C("reap.hold", -2, cmd_reap_hold),
	C("reap.release", 2, cmd_reap_release),
	C("reap.lock", -2, cmd_reap_lock),
	C("reap.unlock", 2, cmd_reap_unlock),
	C("reap.acquire", -2, cmd_reap_acquire),
	C("reap.releasesem", 2, cmd_reap_releasesem),
	C("reap.set", 2, cmd_reap_set),
	C("reap.clear", 2, cmd_reap_clear),
	C("reap.wait", -2, cmd_reap_wait),
	C("reap.barrier", -2, cmd_reap_barrier),
	C("reap.objects", 1, cmd_reap_objects),
	C("reap.sessions", 1, cmd_reap_sessions),
};
#undef C
#undef R

static const struct cmd *cmd_find(const reap__resp_arg *a)
{
	for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		const char *nm = cmds[i].name;
		size_t j;

		if (a->len != cmds[i].len)
			continue;
		for (j = 0; j < a->len; j++)
			if (reap__resp_lc(a->p[j]) != nm[j])
				break;
		if (j == a->len)
			return &cmds[i];
	}
	return NULL;
}

/* Redis 7.2's reply to an unknown command: the name (at most 128 bytes),
 * then each argument quoted and followed by a space while the list is
 * shorter than 128 bytes, each cut to what is left of those 128. */
static int err_unknown(cx *c)
{
	char buf[512], args[256];
	size_t al = 0;
	int n;

	for (int i = 1; i < c->argc && al < 128; i++) {
		size_t room = 128 - al, m = c->argv[i].len;

		if (m > room)
			m = room;
		m = strnlen(c->argv[i].p, m); /* Redis prints C strings */
		args[al++] = '\'';
		memcpy(args + al, c->argv[i].p, m);
		al += m;
		args[al++] = '\'';
		args[al++] = ' ';
	}
	n = snprintf(buf, sizeof(buf),
		     "unknown command '%.*s', with args beginning with: %.*s",
		     (int)(c->argv[0].len > 128 ? 128 : c->argv[0].len),
		     c->argv[0].p, (int)al, args);
	return reap__resp_error(c->out, buf, (size_t)n);
}

int reap__mgr_exec(reap__mgr_db *db, reap__mgr_sess *s, int argc,
		   const reap__resp_arg *argv, int timed_out_,
		   reap__resp_buf *out, reap__mgr_block *blk)
{
	cx c = {db, s, argc, argv, out, timed_out_, blk, 0, NULL};
	size_t start = out->len;
	bool ran = false;
	int rc;

	if (argc < 1)
		return 0;
	c.now = db->now_hint ? db->now_hint : reap_now_ns();
	c.cmd = cmd_find(&argv[0]);
	db->cur = s;
	if (c.cmd == NULL) {
		rc = err_unknown(&c);
	} else if ((c.cmd->arity > 0 && argc != c.cmd->arity) ||
		   argc < -c.cmd->arity) {
		rc = err_arity(&c);
	} else {
		rc = c.cmd->fn(&c);
		ran = true;
	}
	/* a read remembers its keys once it succeeded, as Redis's call()
	 * does after the command; failing, it has no effect */
	if (rc == 0 && ran && c.cmd->kfirst && s->tracking &&
	    track_keys(db, s, c.cmd->kfirst,
		       c.cmd->klast < 0 ? argc + c.cmd->klast : c.cmd->klast,
		       argv) != 0)
		rc = -ENOMEM;
	if (rc == REAP__MGR_BLOCKED) {
		out->len = start;
	} else {
		if (s->blocked) {
			s->blocked = false;
			db->nblocked--;
		}
		if (rc < 0) {
			out->len = start;
		} else {
			db->commands++;
			s->bar_done = false;
		}
	}
	if (db->pend || db->pend_flush)
		push_pending(db, s, out);
	db->cur = NULL;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Store and sessions                                                   */

void reap__mgr_db_set_now(reap__mgr_db *db, uint64_t now_ns)
{
	db->now_hint = now_ns;
}

int reap__mgr_db_create(reap__mgr_db **out)
{
	reap__mgr_db *db = reap_calloc(1, sizeof(*db));

	if (db == NULL)
		return -ENOMEM;
	db->seed = hash_bytes((uint64_t)(uintptr_t)db ^ reap_now_ns(),
			      (const char *)&db, sizeof(db)) ^
		   ((uint64_t)getpid() << 32);
	db->next_id = 1;
	db->pend_last = &db->pend;
	if (tab_reserve(&db->keys, 1) != 0) {
		reap_free(db);
		return -ENOMEM;
	}
	*out = db;
	return 0;
}

void reap__mgr_db_destroy(reap__mgr_db *db)
{
	if (db == NULL)
		return;
	db->ready = NULL;
	db->push = NULL;
	for (size_t i = 0; i < db->nsess; i++)
		track_drop_sess(db, db->sv[i]);
	flush_all(db);
	reap_free(db->keys.slot);
	reap_free(db->track.slot);
	for (size_t i = 0; i < db->nsess; i++) {
		reap_free(db->sv[i]->name);
		reap_free(db->sv[i]);
	}
	reap_free(db->sv);
	reap_free(db);
}

int reap__mgr_sess_open(reap__mgr_db *db, pid_t pid, reap__mgr_sess **out)
{
	reap__mgr_sess *s = reap_calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	if (db->nsess == db->capsess) {
		size_t cap = db->capsess ? db->capsess * 2 : 16;
		reap__mgr_sess **v = reap_realloc(db->sv, cap * sizeof(*v));

		if (v == NULL) {
			reap_free(s);
			return -ENOMEM;
		}
		db->sv = v;
		db->capsess = cap;
	}
	s->id = db->next_id++;
	s->pid = pid;
	s->proto = 2;
	s->idx = db->nsess;
	db->sv[db->nsess++] = s;
	*out = s;
	return 0;
}

void reap__mgr_sess_close(reap__mgr_db *db, reap__mgr_sess *s)
{
	struct tab *t = &db->keys;
	bool woke = false;

	if (s->blocked) {
		s->blocked = false;
		db->nblocked--;
	}
	track_drop_sess(db, s); /* first: nothing below is pushed to s */
	if (s->tracking) {
		s->tracking = false;
		db->ntracking--;
	}
	db->sv[s->idx] = db->sv[--db->nsess];
	db->sv[s->idx]->idx = s->idx;
	/* Invariant 2 of the essay: visit while s has ties. A removal at i
	 * shifts later entries back into i, so i is looked at again; an
	 * entry may be visited twice (wrap-around), which is harmless since
	 * a resolved entry no longer names s. */
	for (size_t i = 0; s->ties && t->slot && i <= t->mask;) {
		struct obj *o = (struct obj *)t->slot[i].e;
		struct hold *h;
		bool del = false;

		if (o == NULL) {
			i++;
			continue;
		}
		if (o->owner == s) {
			del = true;
		} else if ((h = holds_find(&o->holds, s)) != NULL) {
			o->holdsum -= h->n;
			holds_remove(&o->holds, h);
			del = o->holdsum == 0;
		}
		if (!del && o->type == T_LOCK && o->u.lock.owner == s) {
			o->u.lock.owner = NULL;
			o->u.lock.died = true;
			s->ties--;
			touch(db, o);
			woke = true;
		}
		if (!del && o->type == T_SEM &&
		    (h = holds_find(&o->u.sem.h, s)) != NULL) {
			o->u.sem.avail += (int64_t)h->n;
			o->u.sem.died = true;
			holds_remove(&o->u.sem.h, h);
			touch(db, o);
			woke = true;
		}
		if (!del && o->type == T_BARRIER) { /* withdraw its arrival */
			struct holds *w = &o->u.bar.w;

			for (uint32_t j = 0; j < w->n; j++)
				if (w->v[j].s == s) {
					bar_withdraw(o, j);
					touch(db, o);
					break;
				}
		}
		if (del) {
			obj_delete_at(db, i);
			db->reclaimed++;
		} else {
			i++;
		}
	}
	reap_free(s->name);
	reap_free(s);
	if (woke)
		wake(db, NULL, 0);
}

void reap__mgr_sess_track(reap__mgr_db *db, reap__mgr_sess *s, bool on,
			  bool noloop)
{
	if (on) {
		db->ntracking += !s->tracking;
		s->tracking = true;
		s->noloop = noloop;
		return;
	}
	/* What it read stays in the table, as in Redis: a change while it
	 * is off forgets the key without a push; ON again before any
	 * change, and the change is pushed. */
	if (!s->tracking)
		return;
	s->tracking = false;
	s->noloop = false;
	db->ntracking--;
}

bool reap__mgr_sess_tracking(const reap__mgr_sess *s)
{
	return s->tracking;
}

void reap__mgr_sess_attach(reap__mgr_sess *s, reap__resp_buf *out, void *ctx)
{
	s->pout = out;
	s->ctx = ctx;
}

void *reap__mgr_sess_ctx(const reap__mgr_sess *s)
{
	return s->ctx;
}

void reap__mgr_db_set_push_hook(reap__mgr_db *db,
				void (*fn)(void *ctx, reap__mgr_sess *s, int rc),
				void *ctx)
{
	db->push = fn;
	db->push_ctx = ctx;
}

uint64_t reap__mgr_sess_id(const reap__mgr_sess *s)
{
	return s->id;
}

pid_t reap__mgr_sess_pid(const reap__mgr_sess *s)
{
	return s->pid;
}

int reap__mgr_sess_proto(const reap__mgr_sess *s)
{
	return s->proto;
}

void reap__mgr_sess_set_proto(reap__mgr_sess *s, int proto)
{
	s->proto = proto;
}

const char *reap__mgr_sess_name(const reap__mgr_sess *s)
{
	return s->name ? s->name : "";
}

int reap__mgr_sess_set_name(reap__mgr_sess *s, const char *name, size_t len)
{
	char *p = NULL;

	if (len) {
		if (len == SIZE_MAX || (p = reap_malloc(len + 1)) == NULL)
			return -ENOMEM;
		memcpy(p, name, len);
		p[len] = '\0';
	}
	reap_free(s->name);
	s->name = p;
	return 0;
}

void reap__mgr_db_set_ready_hook(reap__mgr_db *db,
				 void (*fn)(void *ctx, const char *key, size_t klen),
				 void *ctx)
{
	db->ready = fn;
	db->ready_ctx = ctx;
}

void reap__mgr_db_stats_get(const reap__mgr_db *db, reap__mgr_db_stats *st)
{
	st->keys = db->keys.n;
	st->sessions = db->nsess;
	st->commands = db->commands;
	st->reclaimed = db->reclaimed;
}

size_t reap__mgr_db_expire(reap__mgr_db *db, uint64_t now_ns)
{
	struct tab *t = &db->keys;
	size_t n = 0;

	for (size_t i = 0; db->nexpires && t->slot && i <= t->mask;) {
		struct obj *o = (struct obj *)t->slot[i].e;

		if (o && o->expire_ns && now_ns > o->expire_ns) {
			obj_delete_at(db, i);
			n++;
		} else {
			i++;
		}
	}
	return n;
}
