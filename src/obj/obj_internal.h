/*
 * Internals of the obj layer, shared by obj.c (references, weak
 * references, finalizers), wmap.c, cache.c and gc.c.
 */
#ifndef REAP_OBJ_INTERNAL_H
#define REAP_OBJ_INTERNAL_H

#include "../base/internal.h"

#pragma GCC visibility push(hidden)

enum { O_LIVE = 0x0b1ec7a1u, O_DEAD = 0x0b1ecdeau };

/* In refs: set by the cycle detector on members of a garbage cycle it is
 * about to break. reap_weak_get() fails on a doomed object; the count
 * below the bit goes on as usual. */
#define REAP__DOOMED 0x80000000u
#define REAP__REFS(r) ((r) & ~REAP__DOOMED)

enum {
	OF_REGISTERED = 1u << 0, /* in a ledger registry shard */
	OF_COUNTED = 1u << 1,    /* counted by the ledger at creation */
	OF_TRACKED = 1u << 2     /* in a gc domain's list */
};

struct reap__death;

/* A record in the obj layer's ledger registry, for leak reports: objects,
 * weak references and finalizer handles that are not in any scope. */
enum { REG_OBJ = 1, REG_WEAK, REG_FINAL };
struct reap__oreg {
	struct reap__oreg *prev, *next;
	uint32_t t_ms;  /* creation, ms since start (coarse) */
	uint32_t tid;   /* creating thread's number */
	uint8_t kind;   /* REG_* */
	uint8_t shard;
	uint8_t on;     /* registered */
	uint32_t gen;   /* reap__fork_gen at creation: older is inherited */
};

/* Made in the parent of a fork (this is its child): the parent's, never
 * counted, closed or finalized here. */
static inline int reap__oreg_inherited(const struct reap__oreg *r)
{
	return r->gen != reap__fork_gen;
}

/*
 * The hidden header in front of every object's body. The body starts at
 * (char *)hdr + sizeof(struct reap__obj), aligned for any type.
 */
struct reap__obj {
	/* First cache line: what counting, dying and the cycle detector
	 * touch. */

	/* Strong references | REAP__DOOMED. The object dies when the count
	 * drops to 0; it never rises from 0 (see obj.c). */
	_Atomic uint32_t refs;
	/* Holds on the header's memory: 1 for all the strong references
	 * together, plus one per weak reference. The memory is freed when
	 * it drops to 0. */
	_Atomic uint32_t weak;
	uint32_t magic; /* O_LIVE until death, then O_DEAD */
	uint32_t flags; /* OF_*; written at creation and under locks */
	reap_obj_type *type;
	/* cycle detector (under the domain's lock) */
	reap_gc_domain *domain;
	struct reap__obj *gc_prev, *gc_next;
	intptr_t gc_refs;
	struct reap__death *deaths;    /* newest first; under the stripe lock */

	/* Second: the ledger's record. */
	const reap_site *site;         /* creation */
	const reap_site *release_site; /* the final release, for misuse */
	struct reap__oreg reg;         /* under its shard's lock (obj.c) */
} __attribute__((aligned(16)));

static inline struct reap__obj *reap__hdr(const void *body)
{
	return (struct reap__obj *)((char *)body - sizeof(struct reap__obj));
}
static inline void *reap__body(const struct reap__obj *o)
{
	return (char *)o + sizeof(struct reap__obj);
}

/* The layer's hooks (exit finalizers, leak source, fork): idempotent. */
void reap__obj_layer_init(void);

/* In a forked child: the gc domains forget their tracked objects (the
 * parent's) and their locks are made anew (gc.c). */
void reap__gc_fork_child(void);

/* The stripe lock of an object: guards its death list. */
void reap__obj_lock(const struct reap__obj *o);
void reap__obj_unlock(const struct reap__obj *o);

/* Check that o is a live object (aborts through the misuse hook with
 * both sites otherwise). */
void reap__obj_check(const struct reap__obj *o, const char *what,
		     const reap_site *site);

/*
 * The cycle detector's side of an object's life (gc.c). track links a
 * new object of a type with traverse into domain d (NULL: the default
 * domain); untrack unlinks it when its count reaches 0, before its
 * finalizers run. Both take the domain's lock.
 */
void reap__gc_track(reap_gc_domain *d, struct reap__obj *o);
void reap__gc_untrack(struct reap__obj *o);

/*
 * Keys of the weak-value map and the cache: an integer, or a string
 * (klen counts its terminating NUL; 0 for an integer key), and a hash.
 * reap__mix64 is a bijection of the 64-bit integers, so two integer keys
 * never share a hash (the cache relies on it).
 */
struct reap__okey {
	const char *s;
	uint64_t i;
	uint32_t klen;
	uint64_t hash;
};

static inline uint64_t reap__mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= UINT64_C(0xbf58476d1ce4e5b9);
	x ^= x >> 27;
	x *= UINT64_C(0x94d049bb133111eb);
	x ^= x >> 31;
	return x;
}

static inline struct reap__okey reap__okey_int(uint64_t i)
{
	struct reap__okey k = {NULL, i, 0, reap__mix64(i)};

	return k;
}

static inline struct reap__okey reap__okey_str(const char *s)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325); /* FNV-1a, then mixed */
	size_t n = 0;

	for (; s[n] != '\0'; n++)
		h = (h ^ (unsigned char)s[n]) * UINT64_C(0x100000001b3);
	struct reap__okey k = {s, 0, (uint32_t)(n + 1), reap__mix64(h ^ n)};
	return k;
}

#pragma GCC visibility pop
#endif /* REAP_OBJ_INTERNAL_H */
