/*
 * The manager's server (internal): listeners on a Unix socket and/or TCP
 * loopback, one loop task per connection, the connection commands
 * (AUTH, HELLO, QUIT, CLIENT, INFO, CONFIG, COMMAND, SELECT, SHUTDOWN,
 * REAP.CHALLENGE, REAP.PROVE), and every other command passed to the
 * store (src/mgr/db.h).
 *
 *     reap__mgr_server_opts o = {0};
 *     o.unix_private = true;                       // /tmp/reap-mgr.XXXXXX/mgr.sock
 *     reap__mgr_server *srv;
 *     if (reap__mgr_server_create(scope, &o, &srv) == 0)
 *             rc = reap__mgr_server_run(srv);      // until SHUTDOWN or stop
 *     reap_scope_close(scope);                     // sockets, directory, store
 *
 * Nothing here is part of the API.
 */
#ifndef REAP_MGR_SERVER_H
#define REAP_MGR_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "reap.h"
#include "resp.h"

#pragma GCC visibility push(hidden)

typedef struct reap__mgr_server reap__mgr_server;

/* Options; zero means the default. At least one listener is required. */
typedef struct reap__mgr_server_opts {
	/* Unix socket. unix_private: create a private 0700 directory with
	 * mkdtemp ($TMPDIR or /tmp, "reap-mgr.XXXXXX") holding "mgr.sock"
	 * (unix_path ignored); it is removed at destroy. Else unix_path:
	 * its parent directory must exist, be a directory owned by us and
	 * inaccessible to group and others (refused with -EPERM otherwise);
	 * unix_mkdir: the parent must not exist and is created 0700 (and
	 * removed at destroy). */
	const char *unix_path;
	bool unix_private;
	bool unix_mkdir;
	/* TCP: "ADDR:PORT" with an IPv4 ADDR (port 0: ephemeral, see
	 * reap__mgr_server_port()). Requires a key (-EINVAL without). */
	const char *tcp;
	/* The key (copied). When set, connections start unauthenticated. */
	const void *key;
	size_t key_len;
	const reap__resp_limits *limits; /* NULL: reap__resp_limits_default */
	unsigned max_unauth;     /* unauthenticated connections; 16 */
	uint64_t handshake_ns;   /* unauthenticated lifetime; 5 s */
	size_t out_limit;        /* pending reply bytes per client; 64 MiB */
	size_t query_limit;      /* query buffer per client; 1 GiB */
	unsigned max_clients;    /* 10000 */
	bool handle_signals;     /* SIGTERM/SIGINT stop the run (signalfd;
				  * the run blocks them on its thread) */
	uint64_t spin_ns;        /* busy polling of the loop the run creates
				  * (reap_loop_opts.spin_ns); 0: 50 us when
				  * more than one CPU is online;
				  * UINT64_MAX: none */
} reap__mgr_server_opts;

/*
 * Create a server: the store, the listening sockets (bound and listening
 * on return), owned by s (NULL: the current scope). Closing s destroys
 * it: every client disconnected (when a run is still going: call
 * reap__mgr_server_stop and wait for the run first), the socket file
 * and the private directory removed, the store freed. Errors: -EINVAL
 * (no listener, TCP without a key, a bad address), -EPERM (the socket's
 * directory is not private), -EADDRINUSE, -ENOMEM, socket(2)/bind(2)
 * errors, each with a reason through reap_raisef(). On failure nothing
 * is left. Thread safety: owner thread of s.
 */
REAP_NODISCARD int reap__mgr_server_create(reap_scope *s,
					   const reap__mgr_server_opts *opts,
					   reap__mgr_server **out);

/*
 * Serve on the calling thread (its reap loop, created if the thread has
 * none) until SHUTDOWN, reap__mgr_server_stop(), or with handle_signals
 * SIGTERM/SIGINT. Every client is disconnected before it returns 0 (or
 * a negative errno: the loop could not start). Once per server. Thread
 * safety: any one thread, not inside a task.
 */
int reap__mgr_server_run(reap__mgr_server *srv);

/* Ask the run to end. Thread safety: any thread, async-signal-safe. */
void reap__mgr_server_stop(reap__mgr_server *srv);

/* The bound TCP port (0 without TCP), the Unix socket path (NULL
 * without), and counters. Thread safety: any thread. */
int reap__mgr_server_port(const reap__mgr_server *srv);
const char *reap__mgr_server_unix_path(const reap__mgr_server *srv);
const char *reap__mgr_server_unix_dir(const reap__mgr_server *srv);

typedef struct reap__mgr_server_stats {
	uint64_t dispatched;  /* commands run past authentication: store
			       * commands and connection commands other
			       * than AUTH/HELLO/QUIT/REAP.CHALLENGE/PROVE */
	uint64_t accepted;    /* connections accepted */
	uint64_t rejected;    /* refused: limits, peer uid */
	uint64_t clients;     /* connected now */
	uint64_t unauthed;    /* of which unauthenticated */
	uint64_t closed_proto, closed_outbuf, closed_handshake;
	uint64_t retries;     /* blocked commands run again after a wake */
} reap__mgr_server_stats;
void reap__mgr_server_stats_get(const reap__mgr_server *srv,
				reap__mgr_server_stats *st);

#pragma GCC visibility pop
#endif /* REAP_MGR_SERVER_H */
