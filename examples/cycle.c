/*
 * A reference cycle, reported and then collected: Python's gc module
 * with DEBUG_UNCOLLECTABLE, done with reap's cycle detector.
 *
 * Python:
 *
 *     class Session: ...                 # holds its connection
 *     class Conn: ...                    # points back at its session
 *     s = Session(); s.conn = Conn(); s.conn.session = s
 *     del s                              # a cycle: refcounts never reach 0
 *     gc.set_debug(gc.DEBUG_UNCOLLECTABLE)
 *     gc.collect()                       # breaks it; __del__s run
 *
 * C with reap, below. A session and its connection point at each other.
 * First neither type has clear, so the detector cannot break the cycle: it reports it (type and creation site of each member) and
 * lists it in reap_gc_garbage(). We break it by hand there. Then, with a
 * type that has clear, the detector breaks the cycle itself and the
 * usual close runs.
 */
#include <stdio.h>

#include "reap.h"

struct session {
	void *conn;
	const char *user;
};

struct conn {
	void *session; /* back reference: the cycle */
	int fd;
};

static int visit1(void *ref, reap_visit_fn visit, void *ctx)
{
	return ref != NULL ? visit(ref, ctx) : 0;
}

static void drop(void **field)
{
	void *p = *field;

	*field = NULL;
	if (p != NULL)
		reap_release(p);
}

static int session_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	return visit1(((struct session *)obj)->conn, visit, ctx);
}
static void session_clear(void *obj) { drop(&((struct session *)obj)->conn); }
static void session_close(void *obj)
{
	struct session *s = obj;

	printf("  close session of %s\n", s->user);
	drop(&s->conn);
}

static int conn_traverse(void *obj, reap_visit_fn visit, void *ctx)
{
	return visit1(((struct conn *)obj)->session, visit, ctx);
}
static void conn_clear(void *obj) { drop(&((struct conn *)obj)->session); }
static void conn_close(void *obj)
{
	struct conn *c = obj;

	printf("  close conn fd %d\n", c->fd);
	drop(&c->session);
}

static reap_obj_type session_type = {.name = "session",
	.size = sizeof(struct session), .close = session_close,
	.traverse = session_traverse, .clear = session_clear};
/* The first version: traverse but no clear. */
static reap_obj_type session_noclear_type = {.name = "session",
	.size = sizeof(struct session), .close = session_close,
	.traverse = session_traverse};
static reap_obj_type conn_noclear_type = {.name = "conn",
	.size = sizeof(struct conn), .close = conn_close,
	.traverse = conn_traverse};
static reap_obj_type conn_type = {.name = "conn", .size = sizeof(struct conn),
	.close = conn_close, .traverse = conn_traverse, .clear = conn_clear};

/* A session and its connection, pointing at each other; the caller
 * gets nothing back: the pair is garbage at once. */
static int make_pair(const char *user, reap_obj_type *ctype,
		     reap_obj_type *stype, int fd)
{
	struct session *s;
	struct conn *c;
	int rc;

	if ((rc = reap_obj_create(stype, &s)) < 0)
		return rc;
	if ((rc = reap_obj_create(ctype, &c)) < 0) {
		reap_release(s);
		return rc;
	}
	s->user = user;
	c->fd = fd;
	/* Changing references inside tracked objects: under the domain lock,
	 * in case a collection runs on another thread. */
	reap_gc_lock(NULL);
	s->conn = c;                  /* our reference to c, handed over */
	c->session = reap_acquire(s); /* the back reference */
	reap_gc_unlock(NULL);
	reap_release(s);
	return 0;
}

int main(void)
{
	reap_gc_item g[4];
	size_t n;
	int rc;

	/* As REAP_DEBUG=gc:uncollectable would. */
	if ((rc = reap_debug_set("gc:uncollectable")) < 0)
		return 1;

	printf("1. a cycle of types without clear:\n");
	if ((rc = make_pair("alice", &conn_noclear_type, &session_noclear_type, 7)) < 0)
		return 1;
	rc = reap_gc_collect(NULL); /* reports it (stderr) */
	printf("  collected %d\n", rc);
	n = reap_gc_garbage(NULL, g, 4);
	printf("  gc.garbage: %zu object(s)\n", n);
	for (size_t i = 0; i < n && i < 4; i++)
		printf("    %s created at line %d (group %u%s)\n", g[i].type->name,
		       g[i].site->line, g[i].group, g[i].no_clear ? ", no clear" : "");
	/* Break it by hand: the session lets its connection go. */
	for (size_t i = 0; i < n && i < 4; i++) {
		if (reap_obj_type_of(g[i].obj) == &session_noclear_type) {
			struct session *s = g[i].obj;
			void *c;

			reap_gc_lock(NULL);
			c = s->conn;
			s->conn = NULL;
			reap_gc_unlock(NULL);
			reap_release(c); /* the conn dies, and the session's
					    last references go with it */
		}
	}
	for (size_t i = 0; i < n && i < 4; i++)
		reap_release(g[i].obj);

	printf("2. the same cycle, with clear (one would do):\n");
	if ((rc = make_pair("bob", &conn_type, &session_type, 8)) < 0)
		return 1;
	if ((rc = reap_debug_set("gc")) < 0) /* statistics per collection */
		return 1;
	rc = reap_gc_collect(NULL);
	printf("  collected %d\n", rc);
	return rc == 2 ? 0 : 1;
}
