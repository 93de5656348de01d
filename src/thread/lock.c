/*
 * reap_mutex, REAP_WITH_LOCK, and the lock-order checker.
 *
 * Without REAP_DEBUG=locks a reap_mutex is a pthread mutex and nothing
 * more: lock and unlock test one flag.
 *
 * With it, each thread keeps the stack of reap mutexes it holds (with
 * the site where it took each), and the process keeps a graph of the
 * order in which mutexes were taken: an edge A -> B means that some
 * thread took B while holding A, and remembers both sites. Before a
 * thread blocks on B while holding A, the checker adds A -> B; if B
 * already reaches A through the graph, the two orders can deadlock (one
 * thread holding A waits for B while another holding B waits for A),
 * and the inversion is reported with the sites of both acquisitions on
 * each side. The check runs before the thread blocks, so an inversion
 * that does deadlock is reported first.
 *
 * Reports go to the report hook and the program goes on: an inversion
 * is a deadlock that may happen, not one that did, and a debug switch
 * should not change what a correct run does. Each new edge is checked
 * once, so each inversion is reported once.
 *
 * Limits: MAX_LOCKS mutexes get an identity (later ones are not
 * checked); a thread's stack holds MAX_HELD mutexes (deeper ones are not
 * checked). The graph is global and guarded by one mutex: the checker is
 * for debugging, not for production speed.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include "thread_internal.h"

#define MAX_LOCKS 1024
#define MAX_HELD 32
#define EDGE_SLOTS 16384 /* the sites of the first MAX edges */

struct held {
	reap_mutex *m;
	unsigned id;
	const reap_site *site;
};

static __thread struct held held[MAX_HELD];
static __thread unsigned nheld;

static pthread_mutex_t graph_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_uint next_id = 1;
static const char *names[MAX_LOCKS];
static uint64_t adj[MAX_LOCKS][MAX_LOCKS / 64];  /* edges from -> to */
static uint64_t seen[MAX_LOCKS / 64];            /* search scratch */
static unsigned parent[MAX_LOCKS];               /* search scratch */
static struct edge {
	unsigned from, to;
	const reap_site *from_site, *to_site;
} edges[EDGE_SLOTS];

static const reap_site unknown_site = {"(unknown)", "?", 0};

/*
 * Fork. In the child, graph_lock is made anew (another thread may have
 * held it); the graph is kept: the orders it learnt are still true of
 * the program. The held stack is per thread: the other threads' are
 * gone with them, and the forking thread's is kept, since that thread
 * still holds those mutexes in the child (their copies are locked) and
 * will unlock them there.
 */
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void fork_child(struct reap__tstate *ts)
{
	(void)ts;
	reap__mutex_reset(&graph_lock);
}

static void fork_init(void)
{
	reap__on_fork(REAP__FORK_LAYER, NULL, NULL, fork_child);
}

/* ------------------------------------------------------------------ */
/* The graph (under graph_lock)                                         */

static int has_edge(unsigned a, unsigned b)
{
	return (adj[a][b / 64] >> (b % 64)) & 1;
}

static struct edge *edge_slot(unsigned a, unsigned b)
{
	unsigned h = (a * 2654435761u ^ b * 40503u) % EDGE_SLOTS;

	for (unsigned i = 0; i < EDGE_SLOTS; i++, h = (h + 1) % EDGE_SLOTS) {
		struct edge *e = &edges[h];

		if (e->from == 0 || (e->from == a && e->to == b))
			return e;
	}
	return NULL;
}

static void add_edge(unsigned a, unsigned b, const reap_site *sa,
		     const reap_site *sb)
{
	struct edge *e = edge_slot(a, b);

	adj[a][b / 64] |= (uint64_t)1 << (b % 64);
	if (e != NULL && e->from == 0)
		*e = (struct edge){a, b, sa, sb};
}

/* Does a reach b? Fills parent[] along the path found. */
static int reaches(unsigned a, unsigned b)
{
	unsigned stack[MAX_LOCKS], sp = 0, top = atomic_load(&next_id);

	memset(seen, 0, sizeof seen);
	seen[a / 64] |= (uint64_t)1 << (a % 64);
	stack[sp++] = a;
	while (sp > 0) {
		unsigned x = stack[--sp];

		for (unsigned y = 1; y < top && y < MAX_LOCKS; y++) {
			if (!has_edge(x, y) || ((seen[y / 64] >> (y % 64)) & 1))
				continue;
			seen[y / 64] |= (uint64_t)1 << (y % 64);
			parent[y] = x;
			if (y == b)
				return 1;
			stack[sp++] = y;
		}
	}
	return 0;
}

static const char *lname(unsigned id)
{
	return names[id] != NULL ? names[id] : "(unnamed)";
}

/* Report that taking `to` at site while holding h inverts the order
 * the graph already has from `to` back to h->id (path in parent[]). */
static void report_inversion(const struct held *h, unsigned to,
			     const reap_site *site)
{
	struct reap__rbuf rb;
	FILE *m = reap__report_open(&rb);
	unsigned path[MAX_LOCKS], n = 0;

	if (m == NULL)
		return;
	for (unsigned x = h->id; x != to && n < MAX_LOCKS; x = parent[x])
		path[n++] = x;
	fprintf(m, "reap: lock-order inversion: thread T%u takes \"%s\" at ",
		reap__ts()->num, lname(to));
	reap__site_print(m, site);
	fprintf(m, "\n    while holding \"%s\", taken at ", lname(h->id));
	reap__site_print(m, h->site);
	fprintf(m, "\n    but the opposite order was seen before:\n");
	/* The path to -> ... -> h->id, edge by edge. */
	for (unsigned i = n, from = to; i-- > 0; from = path[i]) {
		struct edge *e = edge_slot(from, path[i]);

		fprintf(m, "    \"%s\" was held (taken at ", lname(from));
		reap__site_print(m, e && e->from ? e->from_site : NULL);
		fprintf(m, ") while \"%s\" was taken at ", lname(path[i]));
		reap__site_print(m, e && e->from ? e->to_site : NULL);
		fprintf(m, "\n");
	}
	fprintf(m, "    two threads taking them in these orders at once can "
		   "deadlock\n");
	reap__report_send(&rb);
}

static unsigned lock_id(reap_mutex *m)
{
	unsigned id = __atomic_load_n(&m->id, __ATOMIC_ACQUIRE);

	if (likely(id != 0))
		return id < MAX_LOCKS ? id : 0;
	/* graph_lock is used only by mutexes that have an id. */
	pthread_once(&fork_once, fork_init);
	pthread_mutex_lock(&graph_lock);
	if ((id = m->id) == 0) {
		id = atomic_fetch_add(&next_id, 1);
		if (id < MAX_LOCKS)
			names[id] = m->name;
		/* Release: a thread that sees the id sees its name. */
		__atomic_store_n(&m->id, id, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&graph_lock);
	return id < MAX_LOCKS ? id : 0;
}

/* The order check before blocking on m. */
static void check_order(unsigned id, const reap_site *site)
{
	pthread_mutex_lock(&graph_lock);
	for (unsigned i = 0; i < nheld && i < MAX_HELD; i++) {
		const struct held *h = &held[i];

		if (h->id == 0 || h->id == id || has_edge(h->id, id))
			continue;
		if (reaches(id, h->id))
			report_inversion(h, id, site);
		add_edge(h->id, id, h->site, site);
	}
	pthread_mutex_unlock(&graph_lock);
}

static void push_held(reap_mutex *m, unsigned id, const reap_site *site)
{
	if (nheld < MAX_HELD)
		held[nheld] = (struct held){m, id, site};
	nheld++;
}

/* ------------------------------------------------------------------ */
/* The API                                                              */

void reap_mutex_init(reap_mutex *m, const char *name)
{
	pthread_mutex_init(&m->m, NULL);
	m->name = name;
	m->id = 0;
}

void reap_mutex_destroy(reap_mutex *m)
{
	pthread_mutex_destroy(&m->m);
}

void reap_mutex_lock_at(reap_mutex *m, const reap_site *site)
{
	if (unlikely(reap__debug & REAP_DEBUG_LOCKS)) {
		unsigned id = lock_id(m);

		if (site == NULL)
			site = &unknown_site;
		if (id != 0 && nheld > 0)
			check_order(id, site);
		pthread_mutex_lock(&m->m);
		push_held(m, id, site);
		return;
	}
	pthread_mutex_lock(&m->m);
}

int reap_mutex_trylock_at(reap_mutex *m, const reap_site *site)
{
	if (pthread_mutex_trylock(&m->m) != 0)
		return -EBUSY;
	/* A try cannot deadlock: it adds no order, but what is taken while
	 * it is held does. */
	if (unlikely(reap__debug & REAP_DEBUG_LOCKS))
		push_held(m, lock_id(m), site ? site : &unknown_site);
	return 0;
}

void reap_mutex_unlock(reap_mutex *m)
{
	if (nheld > 0) {
		unsigned stored = nheld < MAX_HELD ? nheld : MAX_HELD, i = stored;

		/* Usually the newest; any order is allowed. */
		while (i-- > 0)
			if (held[i].m == m)
				break;
		if (i < stored) {
			memmove(&held[i], &held[i + 1], (stored - i - 1) * sizeof held[0]);
			nheld--;
		} else if (nheld > MAX_HELD) {
			nheld--; /* one of those too deep to be recorded */
		}
	}
	pthread_mutex_unlock(&m->m);
}

reap_lock_guard reap__lock_enter(reap_mutex *m, const reap_site *site)
{
	reap_lock_guard g = {m, 0};

	reap_mutex_lock_at(m, site);
	return g;
}

void reap__lock_exit(reap_lock_guard *g)
{
	if (g->m != NULL)
		reap_mutex_unlock(g->m);
	g->m = NULL;
}
