/*
 * reap/mgr.h: the manager, a server process that hosts shared objects
 * for many processes (the C form of multiprocessing.Manager), owned by a
 * scope, dying with its owner, and speaking RESP so that redis-cli,
 * redis-benchmark and hiredis work against it.
 *
 *     reap_mgr *m;
 *     int rc = reap_mgr_start(s, NULL, &m);    // a private Unix socket
 *     printf("%s\n", reap_mgr_address(m));     // unix:/tmp/reap-mgr.X/mgr.sock
 *     ...                                      // clients connect there
 *     reap_scope_close(s);                     // the manager shuts down
 *
 * The manager is a child process of the caller (reap/proc.h): closing its
 * owner's scope, or reap_mgr_shutdown(), stops it; if the owner process
 * dies, even by SIGKILL, the manager is told at once (through its
 * lifeline, as SIGTERM), disconnects its clients, removes its socket and
 * its private directory, and exits. Clients' objects follow the lifetime
 * rules of the store: session objects go with their client, shared ones
 * with their last holder, persistent ones with the manager.
 *
 * The second part is the typed C client: a connection owned by a scope
 * (reap_mgr_connect), typed values that fail at the call when they
 * cannot be encoded, proxies of shared objects that are resources of
 * the caller's scopes (dict, list, queue, counter, var, lock, sem,
 * event, barrier, namespace), batching and pipelining, and an optional
 * client-side cache that the manager invalidates. The standalone daemon
 * is `reap-manager`; docs/manager.md has the whole picture.
 *
 *     reap_mgr_client *c;
 *     reap_mgr_dict *d;
 *     reap_mgr_value v;
 *     rc = reap_mgr_connect(s, reap_mgr_address(m), NULL, &c);
 *     rc = reap_mgr_dict_open(s, c, "totals", NULL, &d);
 *     rc = reap_mgr_dict_set(d, "done", reap_mgr_int(3));
 *     rc = reap_mgr_dict_get(d, "done", &v);   // v.type REAP_MGR_T_INT
 *     reap_mgr_value_free(&v);
 */
#ifndef REAP_MGR_H
#define REAP_MGR_H

#include "proc.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct reap_mgr reap_mgr;

/* Options of reap_mgr_start(); zero (or NULL options) means the default. */
typedef struct reap_mgr_opts {
	/* Where to listen. Default: a Unix socket in a fresh private
	 * directory (0700, under $TMPDIR or /tmp). unix_path: that socket
	 * instead, whose parent directory must be ours and private. tcp:
	 * "127.0.0.1:PORT" (0: any free port) instead; needs a key. */
	const char *unix_path;
	const char *tcp;
	/* The authentication key (copied); NULL: none (Unix sockets only,
	 * where the peer's uid is checked in any case). */
	const void *key;
	size_t key_len;
	const char *name;      /* for reports; default "manager" */
	uint64_t grace_ns;     /* at shutdown, before SIGKILL; default 5 s */
	uint64_t start_ns;     /* how long to wait for it to listen; 5 s */
	/* Busy polling: after serving, the manager polls without sleeping
	 * for this long, so that a client's next request within it is
	 * taken without a wake-up (lower latency, at the cost of CPU while
	 * clients are active; none while idle). Default (0): 50 us when more
	 * than one CPU is online; REAP_MGR_NO_SPIN: never. */
	uint64_t spin_ns;
} reap_mgr_opts;

/* A spin_ns of reap_mgr_opts and reap_mgr_client_opts: no busy polling. */
#define REAP_MGR_NO_SPIN UINT64_MAX

/*
 * Start a manager process owned by s (NULL: the current scope) and
 * return once it listens.
 * Errors: -EINVAL (tcp without a key, a bad address), -EPERM (unix_path
 * in a directory that is not private), -EADDRINUSE, -ETIMEDOUT (it did
 * not come up within start_ns), -ENOMEM, and those of reap_proc_spawn().
 * On failure no process or file is left and *out is untouched.
 * Ownership: s owns the manager; closing s shuts it down (its clients
 * are disconnected) and reaps it. Thread safety: owner thread of s.
 */
#define reap_mgr_start(s, ...) reap_mgr_start_at((s), __VA_ARGS__, REAP_SITE)
REAP_API REAP_NODISCARD int reap_mgr_start_at(reap_scope *s,
					      const reap_mgr_opts *opts,
					      reap_mgr **out,
					      const reap_site *site)
	REAP_NONNULL(3, 4);

/* Where clients connect: "unix:PATH" or "tcp:127.0.0.1:PORT". Ownership:
 * m's string, valid until m's owner closes. Thread safety: any thread. */
REAP_API const char *reap_mgr_address(const reap_mgr *m) REAP_NONNULL(1);

/* The manager's process. Ownership: m's, closed with m; do not close
 * it. Thread safety: any thread. */
REAP_API reap_proc *reap_mgr_proc(reap_mgr *m) REAP_NONNULL(1);

/*
 * Shut the manager down now, as its owner's close would: SIGTERM (it
 * disconnects every client and removes its socket), the grace period,
 * SIGKILL if need be, reaped. Returns 0, or -ECANCELED if the calling
 * task was cancelled meanwhile (the manager is then killed).
 * Ownership: borrows m, which stays owned by its scope until that
 * closes. Thread safety: owner thread of
 * m's scope.
 */
REAP_API int reap_mgr_shutdown(reap_mgr *m) REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Values                                                               */

/*
 * A typed value: what the client stores and what it reads back, with
 * its type kept. On the wire an int is its decimal form and a double its
 * shortest round-trip form (so INCR, HINCRBY, INCRBYFLOAT and redis-cli
 * see plain numbers); bytes are sent as they are, unless they would
 * read back as a number or start with the byte 0xff, in which case they
 * carry a two-byte prefix; nil, arrays, maps and user types have a
 * tagged binary form starting with 0xff. Reading a string that another
 * program stored gives an int or a double when it is the canonical form
 * of one, bytes otherwise.
 */
typedef enum reap_mgr_type {
	REAP_MGR_T_NIL,
	REAP_MGR_T_INT,    /* .i */
	REAP_MGR_T_DOUBLE, /* .d */
	REAP_MGR_T_BYTES,  /* .bytes (NUL-terminated when decoded) */
	REAP_MGR_T_ARRAY,  /* .array: n elements */
	REAP_MGR_T_MAP,    /* .array: n pairs, v[2k] the key, v[2k+1] the value */
	REAP_MGR_T_USER,   /* .user: an object of a registered codec */
	REAP_MGR_T_ERROR,  /* .bytes: an error reply (reap_mgr_command and
			    * batches only; never encodable) */
} reap_mgr_type;

typedef struct reap_mgr_codec reap_mgr_codec;
typedef struct reap_mgr_value reap_mgr_value;

struct reap_mgr_value {
	reap_mgr_type type;
	union {
		int64_t i;
		double d;
		struct {
			const void *p;
			size_t len;
		} bytes;
		struct {
			const reap_mgr_value *v;
			size_t n;
		} array;
		struct {
			const reap_mgr_codec *codec;
			void *obj;
		} user;
	};
	void *mem_; /* private: the memory of a decoded value */
};

/* Constructors of values to send; they borrow what they point to. */
static inline reap_mgr_value reap_mgr_nil(void)
{
	reap_mgr_value v = {.type = REAP_MGR_T_NIL};
	return v;
}
static inline reap_mgr_value reap_mgr_int(int64_t i)
{
	reap_mgr_value v = {.type = REAP_MGR_T_INT, .i = i};
	return v;
}
static inline reap_mgr_value reap_mgr_double(double d)
{
	reap_mgr_value v = {.type = REAP_MGR_T_DOUBLE, .d = d};
	return v;
}
static inline reap_mgr_value reap_mgr_bytes(const void *p, size_t len)
{
	reap_mgr_value v = {.type = REAP_MGR_T_BYTES, .bytes = {p, len}};
	return v;
}
/* A C string's bytes (without the NUL); s NULL gives a value that fails
 * to encode with -EINVAL. */
static inline reap_mgr_value reap_mgr_str(const char *s)
{
	reap_mgr_value v = {.type = REAP_MGR_T_BYTES,
			    .bytes = {s, s != NULL ? __builtin_strlen(s) : 0}};
	if (s == NULL)
		v.type = REAP_MGR_T_ERROR;
	return v;
}
static inline reap_mgr_value reap_mgr_array(const reap_mgr_value *e, size_t n)
{
	reap_mgr_value v = {.type = REAP_MGR_T_ARRAY, .array = {e, n}};
	return v;
}
/* pairs key/value pairs in e[0, 2 * pairs). */
static inline reap_mgr_value reap_mgr_map(const reap_mgr_value *e, size_t pairs)
{
	reap_mgr_value v = {.type = REAP_MGR_T_MAP, .array = {e, pairs}};
	return v;
}
static inline reap_mgr_value reap_mgr_user(const reap_mgr_codec *codec,
					   void *obj)
{
	reap_mgr_value v = {.type = REAP_MGR_T_USER, .user = {codec, obj}};
	return v;
}

/*
 * Free what a decoded value owns (its elements, its bytes, its user
 * objects through their codec's free) and make it nil. A value built
 * with the constructors above owns nothing: freeing it only makes it
 * nil. Ownership: takes *v's contents, not v. Thread safety: v's.
 */
REAP_API void reap_mgr_value_free(reap_mgr_value *v) REAP_NONNULL(1);

/* Read a value as an int64: an int, or bytes holding a decimal integer.
 * -EINVAL otherwise (*out untouched). Ownership: borrows v.
 * Thread safety: any thread. */
REAP_API int reap_mgr_value_i64(const reap_mgr_value *v, int64_t *out)
	REAP_NONNULL(1, 2);
/* Read a value as a double: a double, an int, or bytes holding a
 * number. -EINVAL otherwise (*out untouched). Ownership: borrows v.
 * Thread safety: any thread. */
REAP_API int reap_mgr_value_f64(const reap_mgr_value *v, double *out)
	REAP_NONNULL(1, 2);
/* Do two values hold the same thing (types, then contents; user objects
 * by their encodings)? Ownership: borrows a and b. Thread safety: any
 * thread (user objects: as safe as their codecs' encoders). */
REAP_API bool reap_mgr_value_equal(const reap_mgr_value *a,
				   const reap_mgr_value *b) REAP_NONNULL(1, 2);

/* The builder a codec's encoder writes into. */
typedef struct reap_mgr_buf reap_mgr_buf;
/* Append n bytes: 0, -EINVAL (p NULL with n > 0), -ENOMEM, or -E2BIG
 * past 512 MB. Ownership: borrows b (the encoder's, during its call)
 * and p (copied). Thread safety: the encoder's caller's. */
REAP_API int reap_mgr_buf_append(reap_mgr_buf *b, const void *p, size_t n)
	REAP_NONNULL(1);

/*
 * A user type: its name (1 to 64 bytes, the same in every process that
 * reads it), an encoder and a decoder. encode writes obj's bytes with
 * reap_mgr_buf_append() and returns 0, or -EINVAL for an object it
 * cannot encode (the call that sent it then fails with -EINVAL, and
 * sends nothing). decode makes an object from bytes (0, -EINVAL for
 * bytes it refuses, -ENOMEM); free releases one. arg is passed to all
 * three.
 */
struct reap_mgr_codec {
	const char *name;
	int (*encode)(const void *obj, reap_mgr_buf *out, void *arg);
	int (*decode)(const void *p, size_t len, void **obj, void *arg);
	void (*free)(void *obj, void *arg);
	void *arg;
};

/* ------------------------------------------------------------------ */
/* Connecting                                                           */

typedef struct reap_mgr_client reap_mgr_client;

/* Options of reap_mgr_connect(); zero (or NULL options) means the
 * default. */
typedef struct reap_mgr_client_opts {
	/* The manager's key (copied); NULL: none, allowed on Unix sockets
	 * whose manager has none. With a key the client and the manager
	 * prove to each other that they hold it (HMAC-SHA256 challenge). */
	const void *key;
	size_t key_len;
	const char *name;     /* CLIENT SETNAME, shown by REAP.OBJECTS */
	uint64_t timeout_ns;  /* how long a reply may take; default 10 s
			       * (blocking calls add their own deadline) */
	/* The client-side cache: reads of dicts, vars and namespaces are
	 * served locally once read, until the manager says the key changed
	 * (RESP3 push, CLIENT TRACKING) or at the latest cache_sync_ns
	 * after the cache was last emptied (default 1 s). */
	bool cache;
	uint64_t cache_sync_ns;
	size_t cache_max;     /* entries; default 65536 */
	/* Busy polling: after sending, a call polls for its reply without
	 * sleeping for this long before it sleeps (a plain thread only; a
	 * loop task never spins). Default (0): 20 us when more than one CPU
	 * is online; REAP_MGR_NO_SPIN: never. */
	uint64_t spin_ns;
} reap_mgr_client_opts;

/*
 * Connect to a manager at addr ("unix:PATH", "tcp:HOST:PORT", or a path
 * starting with '/'), authenticate, and return the client.
 * Errors: -EINVAL (a bad address or option), -ECONNREFUSED, -ENOENT (no
 * such socket), -EACCES (a wrong key: the manager refused the proof, or
 * the manager could not prove that it holds the key), -ETIMEDOUT,
 * -EPROTO (not a manager), -ENOMEM. On failure nothing is left and *out
 * is untouched; the reason is in the message attached with
 * reap_raisef().
 * Ownership: s (NULL: the current scope) owns the client; closing s
 * disconnects it, and the manager reclaims what its session owned and
 * held. Proxies opened through it keep its memory alive until they
 * close, but not its connection.
 * Thread safety: a client and its proxies are used by one thread (or
 * task) at a time; in a loop task a call waits by suspending the task.
 */
#define reap_mgr_connect(s, addr, ...) \
	reap_mgr_connect_at((s), (addr), __VA_ARGS__, REAP_SITE)
REAP_API REAP_NODISCARD int reap_mgr_connect_at(reap_scope *s, const char *addr,
						const reap_mgr_client_opts *opts,
						reap_mgr_client **out,
						const reap_site *site)
	REAP_NONNULL(2, 4, 5);

/* The message of the client's last failed call ("" if none): what the
 * manager answered, or why the connection failed. Ownership: c's, valid
 * until its next call. Thread safety: c's. */
REAP_API const char *reap_mgr_client_error(const reap_mgr_client *c)
	REAP_NONNULL(1);

/* The session id the manager gave this client (CLIENT ID). Ownership:
 * borrows c. Thread safety: any thread (it never changes). */
REAP_API uint64_t reap_mgr_client_id(const reap_mgr_client *c) REAP_NONNULL(1);

/*
 * Drop the connection now, as a crash would (the manager reclaims the
 * session); later calls fail with -ENOTCONN, and pending batched calls
 * fail. Ownership: borrows c, which stays owned by its scope. Thread
 * safety: c's.
 */
REAP_API void reap_mgr_disconnect(reap_mgr_client *c) REAP_NONNULL(1);

/* Register a user type's codec on c, for decoding values of its name.
 * Errors: -EEXIST (a name already there), -EINVAL (a name not of 1 to
 * 64 bytes, or no encoder or decoder), -ENOMEM. Ownership: borrows c
 * and the codec, which must outlive c. Thread safety: c's. */
REAP_API int reap_mgr_codec_add(reap_mgr_client *c, const reap_mgr_codec *codec)
	REAP_NONNULL(1, 2);

/*
 * Send any command and read its reply, decoded: integers as INT, bulk
 * and status strings as BYTES (not decoded further), nil as NIL,
 * arrays, sets and pushes as ARRAY, maps as MAP, doubles as DOUBLE,
 * booleans as INT, and an error reply as ERROR (returning 0: the call
 * worked). lens NULL: the arguments are C strings.
 * Errors: -EINVAL (argc < 1, a NULL argument), -ENOTCONN, -ECONNRESET
 * (the manager went away), -ETIMEDOUT, -EPROTO, -ENOMEM, -E2BIG (a
 * request over 512 MB). Ownership: borrows c and the arguments; the
 * caller frees *reply with reap_mgr_value_free(). Thread safety: c's.
 */
REAP_API int reap_mgr_command(reap_mgr_client *c, reap_mgr_value *reply,
			      int argc, const char *const *argv,
			      const size_t *lens) REAP_NONNULL(1, 2, 4);

/* Delete a key whatever its type or lifetime (DEL): 0, -ENOENT, or the
 * errors of reap_mgr_command(). Ownership: borrows c and key. Thread
 * safety: c's. */
REAP_API int reap_mgr_delete(reap_mgr_client *c, const char *key)
	REAP_NONNULL(1, 2);

/* MGET / MSET on plain keys (values set with SET). mget gives NIL for a
 * missing key. Errors: those of reap_mgr_command(), and -EINVAL for a
 * value that cannot be encoded (mset). Ownership: borrows c, keys and
 * vals; the caller frees each out[i] with reap_mgr_value_free().
 * Thread safety: c's. */
REAP_API int reap_mgr_mget(reap_mgr_client *c, size_t n,
			   const char *const *keys, reap_mgr_value *out)
	REAP_NONNULL(1, 3, 4);
REAP_API int reap_mgr_mset(reap_mgr_client *c, size_t n,
			   const char *const *keys, const reap_mgr_value *vals)
	REAP_NONNULL(1, 3, 4);

/* ------------------------------------------------------------------ */
/* Batches and pipelining                                               */

/*
 * Between reap_mgr_batch_begin() and reap_mgr_batch_exec(), the calls
 * on c and its proxies are queued instead of sent, and return 0 at once
 * (or their encoding error, -EINVAL, with nothing queued). exec sends
 * them in one write and reads every reply: the out parameters of the
 * queued calls are filled in then, so they must stay valid until exec
 * returns. A read of a missing key gives NIL rather than -ENOENT. exec
 * returns 0, or the first call's error, and stores how many calls
 * failed in *failed (if not NULL).
 *
 * reap_mgr_batch_send() sends the queue without waiting, so that more
 * batches can be in flight; reap_mgr_batch_wait() reads the replies of
 * every batch sent. A call made outside a batch while replies are
 * pending waits for them first, in order. Opening and closing a proxy
 * are never queued: they run at once, after what is queued before them.
 * Errors of exec/wait: those of reap_mgr_command(). Ownership: borrows
 * c; the out parameters of queued calls are borrowed until exec or wait
 * returns. Thread safety: c's.
 */
REAP_API void reap_mgr_batch_begin(reap_mgr_client *c) REAP_NONNULL(1);
REAP_API int reap_mgr_batch_exec(reap_mgr_client *c, size_t *failed)
	REAP_NONNULL(1);
REAP_API int reap_mgr_batch_send(reap_mgr_client *c) REAP_NONNULL(1);
REAP_API int reap_mgr_batch_wait(reap_mgr_client *c, size_t *failed)
	REAP_NONNULL(1);

/* ------------------------------------------------------------------ */
/* Proxies of shared objects                                            */

/* Lifetimes of objects in the manager (see docs/manager.md). */
typedef enum reap_mgr_lifetime {
	REAP_MGR_SHARED = 0, /* held by each proxy; gone with the last */
	REAP_MGR_SESSION,    /* gone when the creating client disconnects */
	REAP_MGR_PERSISTENT, /* until deleted or the manager stops */
} reap_mgr_lifetime;

/* Flags of reap_mgr_obj_opts. */
#define REAP_MGR_EXCL 1u     /* fail with -EEXIST if the object exists */
#define REAP_MGR_NOCREATE 2u /* fail with -ENOENT if it does not */

/* Options of the open calls; zero (or NULL) means the default: open the
 * object if it exists, create it otherwise, shared. */
typedef struct reap_mgr_obj_opts {
	reap_mgr_lifetime lifetime; /* when created */
	unsigned flags;
	int64_t init; /* a new counter's value */
	unsigned n;   /* a new semaphore's permits (default 1), a new
		       * barrier's parties (required) */
} reap_mgr_obj_opts;

typedef struct reap_mgr_dict reap_mgr_dict;
typedef struct reap_mgr_list reap_mgr_list;
typedef struct reap_mgr_queue reap_mgr_queue;
typedef struct reap_mgr_counter reap_mgr_counter;
typedef struct reap_mgr_var reap_mgr_var;
typedef struct reap_mgr_lock reap_mgr_lock;
typedef struct reap_mgr_sem reap_mgr_sem;
typedef struct reap_mgr_event reap_mgr_event;
typedef struct reap_mgr_barrier reap_mgr_barrier;
typedef struct reap_mgr_ns reap_mgr_ns;

/*
 * Open (or create) the object named key in the manager and return a
 * proxy owned by s (NULL: the current scope). Opening a shared object
 * takes a hold on it; closing the proxy releases the hold.
 * Errors: -EEXIST (REAP_MGR_EXCL), -ENOENT (REAP_MGR_NOCREATE),
 * -EMEDIUMTYPE (the key exists as another kind: a dict is not a
 * namespace, a list not a queue, a var not a counter), -EINVAL (a bad key
 * or option), the connection's errors, -ENOMEM. Nothing is left on
 * failure. Ownership: s owns the proxy; the client must stay open while
 * the proxy is used (after the client closes, calls fail with -ENOTCONN
 * and closing the proxy does nothing more). Thread safety: c's.
 */
#define REAP__MGR_OPEN(T)                                                       \
	REAP_API REAP_NODISCARD int reap_mgr_##T##_open_at(                      \
		reap_scope *s, reap_mgr_client *c, const char *key,              \
		const reap_mgr_obj_opts *opts, reap_mgr_##T **out,               \
		const reap_site *site) REAP_NONNULL(2, 3, 5, 6)
REAP__MGR_OPEN(dict);
REAP__MGR_OPEN(list);
REAP__MGR_OPEN(queue);
REAP__MGR_OPEN(counter);
REAP__MGR_OPEN(var);
REAP__MGR_OPEN(lock);
REAP__MGR_OPEN(sem);
REAP__MGR_OPEN(event);
REAP__MGR_OPEN(barrier);
REAP__MGR_OPEN(ns);
#undef REAP__MGR_OPEN
#define reap_mgr_dict_open(s, c, key, ...) \
	reap_mgr_dict_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_list_open(s, c, key, ...) \
	reap_mgr_list_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_queue_open(s, c, key, ...) \
	reap_mgr_queue_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_counter_open(s, c, key, ...) \
	reap_mgr_counter_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_var_open(s, c, key, ...) \
	reap_mgr_var_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_lock_open(s, c, key, ...) \
	reap_mgr_lock_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_sem_open(s, c, key, ...) \
	reap_mgr_sem_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_event_open(s, c, key, ...) \
	reap_mgr_event_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_barrier_open(s, c, key, ...) \
	reap_mgr_barrier_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)
#define reap_mgr_ns_open(s, c, key, ...) \
	reap_mgr_ns_open_at((s), (c), (key), __VA_ARGS__, REAP_SITE)

/*
 * Calls on proxies. All return 0 or a negative errno; the connection's
 * errors (-ENOTCONN, -ECONNRESET, -ETIMEDOUT, -EPROTO), -ENOMEM, and
 * -EINVAL for a value that cannot be encoded (with a message naming
 * what is wrong, see reap_mgr_client_error()) or -E2BIG for one over
 * 512 MB apply to all. Ownership: they borrow the proxy and what the
 * values sent point to (encoded before the call returns); values read
 * are the caller's to free with reap_mgr_value_free(). Thread safety:
 * the client's (one thread or task at a time).
 */

/* Dicts (hashes): fields are C strings. get and del give -ENOENT for a
 * missing field; mget gives NIL for one. items gives a MAP. */
REAP_API int reap_mgr_dict_set(reap_mgr_dict *d, const char *field,
			       reap_mgr_value v) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_dict_get(reap_mgr_dict *d, const char *field,
			       reap_mgr_value *out) REAP_NONNULL(1, 2, 3);
REAP_API int reap_mgr_dict_del(reap_mgr_dict *d, const char *field)
	REAP_NONNULL(1, 2);
REAP_API int reap_mgr_dict_len(reap_mgr_dict *d, size_t *n) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_dict_items(reap_mgr_dict *d, reap_mgr_value *out)
	REAP_NONNULL(1, 2);
/* HINCRBY: the field must hold an int (or be missing: 0). */
REAP_API int reap_mgr_dict_incr(reap_mgr_dict *d, const char *field,
				int64_t delta, int64_t *now) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_dict_mset(reap_mgr_dict *d, size_t n,
				const char *const *fields,
				const reap_mgr_value *vals) REAP_NONNULL(1, 3, 4);
REAP_API int reap_mgr_dict_mget(reap_mgr_dict *d, size_t n,
				const char *const *fields, reap_mgr_value *out)
	REAP_NONNULL(1, 3, 4);

/* Lists: append at the end; pop from the end or the front (-ENOENT when
 * empty); range as LRANGE (negative indices count from the end). */
REAP_API int reap_mgr_list_append(reap_mgr_list *l, reap_mgr_value v)
	REAP_NONNULL(1);
REAP_API int reap_mgr_list_pop(reap_mgr_list *l, reap_mgr_value *out)
	REAP_NONNULL(1, 2);
REAP_API int reap_mgr_list_shift(reap_mgr_list *l, reap_mgr_value *out)
	REAP_NONNULL(1, 2);
REAP_API int reap_mgr_list_len(reap_mgr_list *l, size_t *n) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_list_range(reap_mgr_list *l, int64_t start, int64_t stop,
				 reap_mgr_value *out) REAP_NONNULL(1, 4);

/* Queues (FIFO): get waits until an item comes or the deadline
 * (absolute, reap_now_ns(); REAP_FOREVER: none; a past one: try once):
 * -ETIMEDOUT then. */
REAP_API int reap_mgr_queue_put(reap_mgr_queue *q, reap_mgr_value v)
	REAP_NONNULL(1);
REAP_API int reap_mgr_queue_get(reap_mgr_queue *q, reap_mgr_value *out,
				uint64_t deadline_ns) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_queue_len(reap_mgr_queue *q, size_t *n) REAP_NONNULL(1, 2);

/* Counters: add returns the new value (NULL: not wanted); get gives
 * -EINVAL if the key no longer holds an int. */
REAP_API int reap_mgr_counter_add(reap_mgr_counter *k, int64_t delta,
				  int64_t *now) REAP_NONNULL(1);
REAP_API int reap_mgr_counter_get(reap_mgr_counter *k, int64_t *now)
	REAP_NONNULL(1, 2);
REAP_API int reap_mgr_counter_set(reap_mgr_counter *k, int64_t v)
	REAP_NONNULL(1);

/* Vars: one value of any type (multiprocessing.Value). get gives NIL
 * before the first set. */
REAP_API int reap_mgr_var_set(reap_mgr_var *x, reap_mgr_value v) REAP_NONNULL(1);
REAP_API int reap_mgr_var_get(reap_mgr_var *x, reap_mgr_value *out)
	REAP_NONNULL(1, 2);

/* The result of an acquire whose previous holder died holding it: the
 * lock is now the caller's, and the data it guarded may be torn. */
#define REAP_MGR_OWNERDIED 1

/* Locks (not reentrant) and semaphores: acquire returns 0 or
 * REAP_MGR_OWNERDIED when it got it, -ETIMEDOUT at the deadline;
 * release gives -EPERM when this client does not hold it. */
REAP_API int reap_mgr_lock_acquire(reap_mgr_lock *l, uint64_t deadline_ns)
	REAP_NONNULL(1);
REAP_API int reap_mgr_lock_release(reap_mgr_lock *l) REAP_NONNULL(1);
REAP_API int reap_mgr_sem_acquire(reap_mgr_sem *m, uint64_t deadline_ns)
	REAP_NONNULL(1);
REAP_API int reap_mgr_sem_release(reap_mgr_sem *m) REAP_NONNULL(1);

/* Events (multiprocessing.Event): wait returns 0 once set, -ETIMEDOUT
 * at the deadline. */
REAP_API int reap_mgr_event_set(reap_mgr_event *e) REAP_NONNULL(1);
REAP_API int reap_mgr_event_clear(reap_mgr_event *e) REAP_NONNULL(1);
REAP_API int reap_mgr_event_wait(reap_mgr_event *e, uint64_t deadline_ns)
	REAP_NONNULL(1);

/* Barriers: wait until the barrier's n parties have arrived; *index
 * (may be NULL) gets this arrival's rank, 0 to n-1. -ETIMEDOUT at the
 * deadline (the arrival is withdrawn). */
REAP_API int reap_mgr_barrier_wait(reap_mgr_barrier *b, uint64_t deadline_ns,
				   unsigned *index) REAP_NONNULL(1);

/* Namespaces (multiprocessing.Namespace): named values. get and del give
 * -ENOENT for a missing name. */
REAP_API int reap_mgr_ns_set(reap_mgr_ns *ns, const char *name,
			     reap_mgr_value v) REAP_NONNULL(1, 2);
REAP_API int reap_mgr_ns_get(reap_mgr_ns *ns, const char *name,
			     reap_mgr_value *out) REAP_NONNULL(1, 2, 3);
REAP_API int reap_mgr_ns_del(reap_mgr_ns *ns, const char *name)
	REAP_NONNULL(1, 2);

#ifdef __cplusplus
}
#endif
#endif /* REAP_MGR_H */
