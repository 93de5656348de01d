/*
 * Cleanup keys: the (call site, function, type) of a registration,
 * interned into a small id so that a registered cleanup takes 16 bytes.
 *
 * A call site nearly always registers the same function with the same
 * type, so each thread keeps a direct-mapped cache of 64 recent triples;
 * a hit costs three compares. A miss takes the global table's mutex and
 * looks the triple up in an open-addressed hash of ids, adding it if new.
 * Key records are written once, before their id is handed out under the
 * mutex, and never change or move; any thread that has an id (from the
 * mutex, or from an entry published by a release store) may read its
 * record without a lock. The table is static: nothing is allocated, and
 * a program gets up to 65535 distinct triples.
 */
#include <string.h>

#include "internal.h"

struct reap__key reap__keys[REAP__MAX_KEYS];

#define HASH_SLOTS (2 * REAP__MAX_KEYS)
static uint32_t hash_ids[HASH_SLOTS]; /* 0: empty */
static uint32_t nkeys;
static pthread_mutex_t keys_lock = PTHREAD_MUTEX_INITIALIZER;

static unsigned triple_hash(const reap_site *site, void *fn, reap_type *type)
{
	uint64_t h = (uintptr_t)site * 0x9e3779b97f4a7c15u;

	h ^= (uintptr_t)fn * 0xc2b2ae3d27d4eb4fu;
	h ^= (uintptr_t)type * 0x165667b19e3779f9u;
	return (unsigned)(h >> 40);
}

uint32_t reap__key_slow(struct reap__tstate *ts, const reap_site *site,
			void *fn, reap_type *type)
{
	unsigned i = triple_hash(site, fn, type) % HASH_SLOTS;
	unsigned type_id = reap__type_id(type);
	uint32_t id = 0;

	pthread_mutex_lock(&keys_lock);
	for (;; i = (i + 1) % HASH_SLOTS) {
		uint32_t k = hash_ids[i];

		if (k == 0) {
			if (nkeys + 1 >= REAP__MAX_KEYS)
				break; /* full: id stays 0 */
			id = ++nkeys;
			reap__keys[id] = (struct reap__key){site, fn, type, type_id};
			hash_ids[i] = id;
			break;
		}
		if (reap__keys[k].site == site && reap__keys[k].fn == fn &&
		    reap__keys[k].type == type) {
			id = k;
			break;
		}
	}
	pthread_mutex_unlock(&keys_lock);
	if (id != 0) {
		struct reap__kcache *c = &ts->kcache[reap__kcache_slot(site, fn, type)];

		c->site = site;
		c->fn = fn;
		c->type = type;
		c->id = id;
	}
	return id;
}

const char *reap__site_str(const reap_site *s, char *buf, size_t len)
{
	if (s == NULL)
		snprintf(buf, len, "(unknown site)");
	else
		snprintf(buf, len, "%s:%d in %s()", s->file, s->line, s->func);
	return buf;
}

void reap__site_print(FILE *f, const reap_site *s)
{
	char buf[512];

	fputs(reap__site_str(s, buf, sizeof buf), f);
}

/* In a forked child: the lock's holder may have been another thread. A
 * key it was adding is published only by its hash slot, last. */
void reap__keys_fork_child(void)
{
	reap__mutex_reset(&keys_lock);
}
