/*
 * The manager's object store and command execution (internal).
 *
 * The store is single-threaded: the manager's loop thread owns it, and
 * every call below runs there. Commands arrive already parsed
 * (src/mgr/resp.h) and their replies are appended to a reply buffer in
 * the connection's protocol (RESP2 or RESP3), byte for byte what Redis
 * would send for the commands the two share.
 *
 * Sessions. Each connection is a session: an id (CLIENT ID), the peer's
 * pid when known (Unix sockets: SO_PEERCRED), a name (CLIENT SETNAME)
 * and its protocol version. Closing a session reclaims what it owned and
 * held, at once (see reap__mgr_sess_close()).
 *
 * Lifetimes. Every object has one:
 *   - session: deleted when its creating session closes;
 *   - shared: reference-counted by holds; deleted when the last holder
 *     releases it or closes (creation takes the first hold);
 *   - persistent: until deleted, or until the manager shuts down.
 * Keys created by the commands shared with Redis (SET, HSET, LPUSH, ...)
 * are persistent, as in Redis; reap's own commands (REAP.*) choose.
 */
#ifndef REAP_MGR_DB_H
#define REAP_MGR_DB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "resp.h"

#pragma GCC visibility push(hidden)

typedef struct reap__mgr_db reap__mgr_db;
typedef struct reap__mgr_sess reap__mgr_sess;

/* Create and destroy a store. destroy frees every object and session
 * (sessions must have been closed by the server first). -ENOMEM. */
int reap__mgr_db_create(reap__mgr_db **out);
void reap__mgr_db_destroy(reap__mgr_db *db);

/* Open a session for a new connection (pid 0: unknown). -ENOMEM. */
int reap__mgr_sess_open(reap__mgr_db *db, pid_t pid, reap__mgr_sess **out);

/*
 * Close a session: its session-lifetime objects are deleted, its holds
 * released (shared objects whose count falls to zero are deleted), the
 * locks and semaphore permits it held are released, and the next
 * acquirer of such a lock is told its previous holder died (as a robust
 * mutex does). Blocked commands of other sessions that this unblocks
 * are woken through the ready hook. Never fails.
 */
void reap__mgr_sess_close(reap__mgr_db *db, reap__mgr_sess *s);

uint64_t reap__mgr_sess_id(const reap__mgr_sess *s);
pid_t reap__mgr_sess_pid(const reap__mgr_sess *s);
int reap__mgr_sess_proto(const reap__mgr_sess *s);        /* 2 (default) or 3 */
void reap__mgr_sess_set_proto(reap__mgr_sess *s, int proto); /* HELLO */
const char *reap__mgr_sess_name(const reap__mgr_sess *s); /* "" if none */
int reap__mgr_sess_set_name(reap__mgr_sess *s, const char *name, size_t len);

/*
 * Commands that belong to the connection, not the store, are the
 * server's (src/mgr/server.c): AUTH, HELLO, QUIT, CLIENT, INFO, CONFIG,
 * COMMAND, SHUTDOWN. The server handles them before calling exec; exec
 * answers every other command, including PING and ECHO, and replies
 * "unknown command" for what neither knows.
 */

/* Outcome of reap__mgr_exec() besides 0 (reply written). */
enum {
	REAP__MGR_BLOCKED = 1 /* nothing written: call again when woken or
			       * at the deadline (see reap__mgr_block) */
};

/* What a blocked command waits for. */
typedef struct reap__mgr_block {
	uint64_t deadline_ns; /* absolute, reap_now_ns(); REAP_FOREVER: none */
} reap__mgr_block;

/*
 * Run one command for session s and append its reply to out (whose
 * proto is the session's). Returns 0, REAP__MGR_BLOCKED (with *blk
 * filled: the server retries the same command when the ready hook fires
 * or at blk->deadline_ns, passing timed_out = 1 then, so that the
 * command writes its timeout reply), or -ENOMEM / -ENOBUFS (the reply
 * buffer refused; the command had no effect). Unknown commands, wrong arity, wrong types and bad arguments
 * are replies (Redis's error text), not failures.
 */
int reap__mgr_exec(reap__mgr_db *db, reap__mgr_sess *s, int argc,
		   const reap__resp_arg *argv, int timed_out,
		   reap__resp_buf *out, reap__mgr_block *blk);

/* The time of the commands exec runs next (reap_now_ns(), such as when
 * their bytes were read): one clock read per read instead of one per
 * command. 0: exec reads the clock itself. Blocked retries must run
 * with 0. */
void reap__mgr_db_set_now(reap__mgr_db *db, uint64_t now_ns);

/* Called (from inside exec or sess_close) whenever a change may let a
 * blocked command proceed: with the key that changed (a push to a list,
 * a lock released, an event set, a barrier full, a lock, semaphore,
 * event or barrier deleted), so that only the commands that name it are
 * retried; with key NULL when any may proceed (a session closed, which
 * can release many). */
void reap__mgr_db_set_ready_hook(reap__mgr_db *db,
				 void (*fn)(void *ctx, const char *key, size_t klen),
				 void *ctx);

/*
 * Client-side caching, as Redis 7.0's CLIENT TRACKING in its default
 * mode. While a session tracks, the keys its read-only commands name
 * (GET, MGET, EXISTS, TTL, PTTL, TYPE, HGET, HMGET, HGETALL, HLEN, LLEN,
 * LRANGE) are remembered; the first change to such a key by any session
 * (a write, DEL, EXPIRE, expiry, reclaim, REAP.* state changes) sends it
 * one RESP3 push "invalidate" [key] and forgets the key for it until it
 * reads it again; FLUSHALL sends "invalidate" null to every tracking
 * session. Sessions in RESP2 are sent nothing (as in Redis without
 * REDIRECT). noloop: no push for the session's own changes (FLUSHALL's
 * excepted). The running session's pushes follow its reply in exec's
 * out; other sessions' are appended to the buffer given to
 * reap__mgr_sess_attach() (none attached: nothing is sent), and the push
 * hook is called with 0 (appended: flush it) or a negative errno (the
 * buffer refused it: the session missed an invalidation, close it).
 * Turning tracking off, or closing the session, forgets its keys.
 */
void reap__mgr_sess_track(reap__mgr_db *db, reap__mgr_sess *s, bool on,
			  bool noloop);
bool reap__mgr_sess_tracking(const reap__mgr_sess *s);
/* Where pushes to s go (borrowed until the session closes), and a
 * pointer for the caller's use. */
void reap__mgr_sess_attach(reap__mgr_sess *s, reap__resp_buf *out, void *ctx);
void *reap__mgr_sess_ctx(const reap__mgr_sess *s);
void reap__mgr_db_set_push_hook(reap__mgr_db *db,
				void (*fn)(void *ctx, reap__mgr_sess *s, int rc),
				void *ctx);

/* Counters for INFO and for tests: keys, sessions, commands executed. */
typedef struct reap__mgr_db_stats {
	uint64_t keys, sessions, commands, reclaimed;
} reap__mgr_db_stats;
void reap__mgr_db_stats_get(const reap__mgr_db *db, reap__mgr_db_stats *st);

/* Expire keys whose time has passed (also done lazily on access); the
 * server calls it periodically. Returns how many went. */
size_t reap__mgr_db_expire(reap__mgr_db *db, uint64_t now_ns);

#pragma GCC visibility pop
#endif /* REAP_MGR_DB_H */
