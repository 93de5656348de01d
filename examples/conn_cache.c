/*
 * A connection cache, and a weak-value registry of sessions.
 *
 * Connections are reference-counted objects wrapping one end of a
 * socketpair (the other end plays the server). They live in a reap cache
 * with a TTL and a validity check (has the server hung up?). A sweep
 * evicts the expired and the dead ones: a connection that only the cache
 * held is closed there and then, while one still borrowed by a worker,
 * or by a session, survives its eviction and is closed by whoever drops
 * the last reference. Sessions are found by user name in a weak-value
 * map, which never keeps a session alive: a session that ends leaves the
 * registry by itself.
 *
 * Python would write the registry as a WeakValueDictionary and the cache
 * by hand; here nothing is closed under a user, and the ledger can say
 * at any moment what is open and who made it. Time is moved by hand
 * (reap_set_clock), so the example never sleeps.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "reap.h"

/* ------------------------------------------------------------------ */
/* Connections                                                          */

struct conn {
	int fd;     /* ours */
	int server; /* the peer, -1 once it hung up */
	char name[24];
};

static void conn_close(void *obj)
{
	struct conn *c = obj;

	printf("    [close] %s (fd %d)\n", c->name, c->fd);
	close(c->fd);
	if (c->server >= 0)
		close(c->server);
}

static void conn_describe(void *obj, char *buf, size_t len)
{
	struct conn *c = obj;

	snprintf(buf, len, "%s fd %d", c->name, c->fd);
}

static reap_obj_type conn_type = {.name = "conn", .size = sizeof(struct conn),
				  .close = conn_close, .describe = conn_describe};

static int conn_open(const char *name, struct conn **out)
{
	struct conn *c;
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	if ((rc = reap_obj_create(&conn_type, &c)) < 0) {
		close(sv[0]);
		close(sv[1]);
		return rc;
	}
	c->fd = sv[0];
	c->server = sv[1];
	snprintf(c->name, sizeof c->name, "%s", name);
	*out = c;
	return 0;
}

/* The validity check: a peer that hung up makes recv() return 0. */
static bool conn_usable(void *value, void *ctx)
{
	struct conn *c = value;
	char b;
	ssize_t n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);

	(void)ctx;
	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
}

/* ------------------------------------------------------------------ */
/* Sessions                                                             */

struct session {
	char user[16];
	struct conn *conn; /* a reference of the session's own */
};

static void session_close(void *obj)
{
	struct session *s = obj;

	printf("    [end] session of %s\n", s->user);
	if (s->conn != NULL)
		reap_release(s->conn);
}

static reap_obj_type session_type = {
	.name = "session", .size = sizeof(struct session), .close = session_close};

/* ------------------------------------------------------------------ */
/* A worker that borrows a connection                                   */

struct worker {
	reap_cache *cache;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state; /* 0 start, 1 borrowed, 2 may return, 3 done */
};

static void worker_wait(struct worker *w, int state)
{
	pthread_mutex_lock(&w->lock);
	while (w->state < state)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

static void worker_set(struct worker *w, int state)
{
	pthread_mutex_lock(&w->lock);
	w->state = state;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct conn *c = reap_cache_get_str(w->cache, "db-2");

	if (c == NULL) {
		worker_set(w, 3);
		return NULL;
	}
	printf("  worker: borrowed %s\n", c->name);
	worker_set(w, 1);
	worker_wait(w, 2);
	/* Evicted meanwhile, but not closed under us: still usable. */
	if (write(c->fd, "q", 1) == 1)
		printf("  worker: %s still works after its eviction; returning it\n",
		       c->name);
	reap_release(c); /* the last reference: closed here */
	worker_set(w, 3);
	return NULL;
}

/* ------------------------------------------------------------------ */

static uint64_t now_ns = 1;
static uint64_t clock_fn(void *ctx)
{
	(void)ctx;
	return __atomic_load_n(&now_ns, __ATOMIC_RELAXED);
}

static void print_stats(reap_cache *c)
{
	reap_cache_stat st;

	reap_cache_stats(c, &st);
	printf("  cache: %zu entries; %llu hits, %llu misses; evicted %llu by "
	       "capacity, %llu by TTL, %llu invalid, %llu by hand\n",
	       st.count, (unsigned long long)st.hits, (unsigned long long)st.misses,
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_CAPACITY],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_TTL],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_INVALID],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_EXPLICIT]);
}

#define CHECK(expr)                                                         \
	do {                                                                \
		int rc_ = (expr);                                           \
		if (rc_ < 0) {                                              \
			fprintf(stderr, "%s: %s\n", #expr, reap_strerror(rc_)); \
			exit(1);                                            \
		}                                                           \
	} while (0)

static struct session *login(reap_wmap *registry, reap_cache *cache,
			     const char *user, const char *db)
{
	struct session *s;

	CHECK(reap_obj_create(&session_type, &s));
	snprintf(s->user, sizeof s->user, "%s", user);
	s->conn = reap_cache_get_str(cache, db); /* NULL: none cached */
	CHECK(reap_wmap_put_str(registry, user, s));
	printf("  %s logs in, using %s\n", user, s->conn ? s->conn->name : "-");
	return s;
}

int main(void)
{
	reap_cache_config cfg = {.max_count = 4, .ttl_ns = 30 * REAP_SEC,
				 .valid = conn_usable, .shards = 1};
	struct worker w = {.lock = PTHREAD_MUTEX_INITIALIZER,
			   .cond = PTHREAD_COND_INITIALIZER};
	reap_scope *app;
	reap_cache *cache;
	reap_wmap *registry;
	struct session *alice, *bob, *found;
	struct conn *db3 = NULL;
	pthread_t t;

	reap_set_clock(clock_fn, NULL);
	CHECK(reap_scope_open(NULL, &app));
	CHECK(reap_scope_name(app, "app"));
	CHECK(reap_cache_open(app, &cfg, &cache));
	CHECK(reap_wmap_create(app, &registry));
	w.cache = cache;

	printf("1. four connections into the cache (db-3 and db-4 without TTL)\n");
	for (int i = 1; i <= 4; i++) {
		char name[16];
		struct conn *c = NULL;

		snprintf(name, sizeof name, "db-%d", i);
		CHECK(conn_open(name, &c));
		CHECK(reap_cache_put_str(cache, name, c, 1,
					 i >= 3 ? REAP_CACHE_TTL_NONE
						: REAP_CACHE_TTL_DEFAULT));
		if (i == 3)
			db3 = c; /* keep ours a moment, to hang up its server */
		else
			reap_release(c); /* the cache's reference is the only one */
	}

	printf("2. sessions log in; a worker borrows db-2\n");
	alice = login(registry, cache, "alice", "db-1");
	bob = login(registry, cache, "bob", "");
	CHECK(pthread_create(&t, NULL, worker_main, &w) == 0 ? 0 : -EAGAIN);
	worker_wait(&w, 1);
	reap_ledger_report(stdout, REAP_REPORT_TREE | REAP_REPORT_STATS);

	printf("3. db-3's server hangs up; 40 s pass; sweep\n");
	close(db3->server);
	db3->server = -1;
	reap_release(db3);
	__atomic_add_fetch(&now_ns, 40 * REAP_SEC, __ATOMIC_RELAXED);
	printf("  sweep evicted %zu\n", reap_cache_sweep(cache));
	/* db-1 (alice's) and db-2 (the worker's) were evicted, not closed;
	 * db-3 was closed; db-4 stays. */
	print_stats(cache);

	printf("4. the worker returns db-2\n");
	worker_set(&w, 2);
	worker_wait(&w, 3);
	pthread_join(t, NULL);

	printf("5. bob logs out; the registry forgets him by itself\n");
	reap_release(bob);
	found = reap_wmap_get_str(registry, "bob");
	printf("  registry: %zu session(s); bob %s\n", reap_wmap_count(registry),
	       found ? "found" : "gone");
	if (found != NULL)
		return 1;
	found = reap_wmap_get_str(registry, "alice");
	if (found == NULL)
		return 1;
	printf("  alice still there, on %s\n", found->conn->name);
	reap_release(found);

	printf("6. alice logs out: her connection, evicted at step 3, closes now\n");
	reap_release(alice);
	printf("  registry: %zu session(s)\n", reap_wmap_count(registry));
	reap_ledger_report(stdout, REAP_REPORT_TREE);

	printf("7. the app closes: the cache releases db-4\n");
	CHECK(reap_scope_close(app));
	printf("  open resources: %zu\n", reap_ledger_count());
	reap_set_clock(NULL, NULL);
	return reap_ledger_count() == 0 ? 0 : 1;
}
