/*
 * The tour, part 2: shared objects. A connection cache whose expired and
 * hung-up connections are evicted and closed on sweep, except one still
 * borrowed by a worker, which survives its eviction and is closed when
 * the worker returns it; a weak-value registry of sessions; a finalizer;
 * and a reference cycle reported by the cycle detector, then collected.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "demo.h"

/* ---- connections ---------------------------------------------------- */

struct conn {
	int fd, peer;
	char name[16];
};

static void conn_close(void *obj)
{
	struct conn *c = obj;

	printf("    close: %s (fd %d)\n", c->name, c->fd);
	close(c->fd);
	if (c->peer >= 0)
		close(c->peer);
}

static void conn_describe(void *obj, char *buf, size_t len)
{
	snprintf(buf, len, "%s", ((struct conn *)obj)->name);
}

static reap_obj_type conn_type = {
	.name = "conn", .size = sizeof(struct conn),
	.close = conn_close, .describe = conn_describe,
};

static int conn_open(const char *name, struct conn **out)
{
	struct conn *c;
	int fd[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd) < 0)
		return -errno;
	if ((rc = reap_obj_create(&conn_type, &c)) < 0) {
		close(fd[0]);
		close(fd[1]);
		return rc;
	}
	c->fd = fd[0];
	c->peer = fd[1];
	snprintf(c->name, sizeof c->name, "%s", name);
	*out = c;
	return 0;
}

/* Still usable? Not once the server end has hung up. */
static bool conn_valid(void *value, void *ctx)
{
	(void)ctx;
	return ((struct conn *)value)->peer >= 0;
}

static void hang_up(struct conn *c)
{
	close(c->peer);
	c->peer = -1;
}

/* A clock the demo moves by hand, so that TTLs expire without sleeping. */
static uint64_t fake_now = 1;
static uint64_t demo_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

/* ---- sessions: a weak-value registry ---------------------------------- */

struct session {
	char user[16];
};
static reap_obj_type session_type = {.name = "session",
				     .size = sizeof(struct session)};

static int say_goodbye(void *ctx)
{
	printf("    finalizer: session of %s ended\n", (const char *)ctx);
	return 0;
}

/* ---- a cycle ----------------------------------------------------------- */

struct node {
	struct node *next;
	char name[8];
};

static int node_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	struct node *n = obj;

	return n->next != NULL ? visit(n->next, ctx) : 0;
}

static void node_clear(void *obj)
{
	struct node *n = obj;
	struct node *next = n->next;

	n->next = NULL;
	if (next != NULL)
		reap_release(next);
}

static void node_close(void *obj)
{
	printf("    close: node %s\n", ((struct node *)obj)->name);
}

static reap_obj_type node_type = {
	.name = "node", .size = sizeof(struct node), .close = node_close,
	.traverse = node_traverse, .clear = node_clear,
};

static int cycle_part(void)
{
	struct node *a, *b;
	int rc;

	if ((rc = reap_obj_create(&node_type, &a)) < 0)
		return rc;
	if ((rc = reap_obj_create(&node_type, &b)) < 0) {
		reap_release(a);
		return rc;
	}
	strcpy(a->name, "a");
	strcpy(b->name, "b");
	a->next = b;               /* a holds b: our reference passes to a */
	b->next = reap_acquire(a); /* b holds a */
	reap_release(a);           /* we let go: a and b hold only each other */
	printf("   a and b now hold only each other; nothing will ever release "
	       "them. The ledger\n   reports them, with the lines that created "
	       "them:\n\n");
	reap_ledger_report(stdout, REAP_REPORT_LEAKS);
	printf("\n   reap_gc_collect() finds the group by trial deletion and "
	       "breaks it with clear:\n");
	rc = reap_gc_collect(NULL);
	printf("   collected %d objects; %zu live resources.\n", rc,
	       reap_ledger_count());
	return rc < 0 ? rc : 0;
}

int demo_objects(void)
{
	reap_cache_config cfg = {.max_count = 8, .ttl_ns = 60 * REAP_SEC,
				 .valid = conn_valid};
	struct conn *c[3], *borrowed;
	struct session *alice;
	reap_wmap *sessions;
	reap_cache *cache;
	reap_scope *s;
	reap_cache_stat st;
	int rc;

	reap_set_clock(demo_clock, NULL);
	if ((rc = reap_scope_open(NULL, &s)) < 0)
		return rc;
	if ((rc = reap_scope_name(s, "objects")) < 0 ||
	    (rc = reap_cache_open(s, &cfg, &cache)) < 0 ||
	    (rc = reap_wmap_create(s, &sessions)) < 0)
		goto out;

	printf("   Three connections go into a cache (TTL 60 s, at most 8); the "
	       "cache holds\n   its own reference, ours is dropped at once.\n");
	for (int i = 0; i < 3; i++) {
		char name[16];

		snprintf(name, sizeof name, "db#%d", i + 1);
		if ((rc = conn_open(name, &c[i])) < 0)
			goto out;
		rc = reap_cache_put_str(cache, name, c[i], sizeof *c[i],
					i == 0 ? 5 * REAP_SEC : REAP_CACHE_TTL_DEFAULT);
		reap_release(c[i]);
		if (rc < 0)
			goto out;
	}
	/* A worker borrows db#1 (get = a new reference), the server hangs up
	 * on db#2, and 10 s pass: db#1's 5 s TTL has run out. */
	borrowed = reap_cache_get_str(cache, "db#1");
	hang_up(c[1]);
	fake_now += 10 * REAP_SEC;
	printf("   A worker borrows db#1; the server hangs up on db#2; 10 s pass "
	       "(db#1's TTL is 5 s).\n   Sweep:\n");
	printf("   swept %zu entries. db#2 was closed there and then; db#1 "
	       "is still borrowed:\n", reap_cache_sweep(cache));
	printf("   %u reference, held by the worker. It returns it:\n",
	       borrowed != NULL ? reap_obj_refs(borrowed) : 0);
	if (borrowed != NULL)
		reap_release(borrowed);
	reap_cache_stats(cache, &st);
	printf("   cache: entries %zu, hits %llu, evicted %llu by TTL and %llu "
	       "as invalid.\n\n", st.count, (unsigned long long)st.hits,
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_TTL],
	       (unsigned long long)st.evicted[REAP_CACHE_EVICT_INVALID]);

	printf("   Sessions are found by user in a weak-value map, which never "
	       "keeps one alive.\n");
	if ((rc = reap_obj_create(&session_type, &alice)) < 0)
		goto out;
	strcpy(alice->user, "alice");
	if ((rc = reap_finalize(alice, say_goodbye, "alice", 0, NULL)) < 0 ||
	    (rc = reap_wmap_put_str(sessions, "alice", alice)) < 0) {
		reap_release(alice);
		goto out;
	}
	printf("   registry: %zu session(s). Alice logs out (the last "
	       "reference goes):\n", reap_wmap_count(sessions));
	reap_release(alice);
	printf("   registry: %zu session(s); lookup of alice gives %s.\n\n",
	       reap_wmap_count(sessions),
	       reap_wmap_get_str(sessions, "alice") == NULL ? "nothing" : "?!");

	printf("   The ledger now: the cache and the registry, owned by the "
	       "\"objects\" scope,\n   and the connection still cached:\n\n");
	reap_ledger_report(stdout, REAP_REPORT_TREE);
	printf("\n   Closing the scope closes the cache, which releases db#3:\n");
	rc = reap_scope_close(s);
	s = NULL;
	if (rc < 0)
		return rc;

	printf("\n   A reference cycle:\n");
	rc = cycle_part();
out:
	if (s != NULL) {
		int rc2 = reap_scope_close(s);

		rc = rc < 0 ? rc : rc2;
	}
	reap_set_clock(NULL, NULL);
	return rc;
}
