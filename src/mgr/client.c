/*
 * The manager's C client: a connection owned by a scope, typed proxies,
 * batches and pipelining, and the client-side cache.
 *
 * Every call is a request queued on the connection: its RESP bytes go
 * to c->out and a pending entry (what to do with the reply, where to
 * put it) to the FIFO c->q. Outside a batch the call then pumps the
 * connection until its own entry completes, which completes every entry
 * before it first, in order: that is how pipelined batches and plain
 * calls mix. Inside a batch the call returns at once.
 *
 * Any failure of the connection itself (the manager went away, a reply
 * that does not parse, a reply that did not come in time, a cancelled
 * wait) kills it: the socket is closed at once, so that the manager
 * reclaims the session, every pending entry fails, and later calls get
 * -ENOTCONN. A stream whose replies can no longer be matched to their
 * requests is never reused.
 *
 * Waiting: in a loop task, reap_wait_fd() (the task suspends); in a
 * plain thread, a blocking recv() bounded by SO_RCVTIMEO, so that an
 * unbatched round trip costs two system calls, like a bare one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../base/internal.h"
#include "auth.h"
#include "resp.h"
#include "value.h"

#define DEFAULT_TIMEOUT_NS 10000000000ull
#define DEFAULT_SPIN_NS 20000ull
#define DEFAULT_SYNC_NS 1000000000ull
#define DEFAULT_CACHE_MAX 65536
#define RECV_TICK_MS 50
#define IN_CHUNK 16384

/* What to do with a reply. */
enum kind {
	K_OK,      /* any non-error reply: 0 */
	K_INT,     /* integer into *(int64_t *)out (out may be NULL) */
	K_LEN,     /* integer into *(size_t *)out */
	K_DEL,     /* integer: 1 -> 0, 0 -> -ENOENT */
	K_GET,     /* bulk decoded into *(value *)out; nil -> NIL, -ENOENT */
	K_GETNIL,  /* as K_GET, but nil is NIL and 0 */
	K_GETINT,  /* bulk holding an int into *(int64_t *)out; else -EINVAL */
	K_MGET,    /* array of bulks into out[0, n); nil -> NIL */
	K_MAP,     /* field/value pairs into a MAP value */
	K_ARRAY,   /* array of bulks into an ARRAY value */
	K_BPOP,    /* [key, value] into *(value *)out; nil -> -ETIMEDOUT */
	K_ACQ,     /* +OK 0, +OWNERDIED REAP_MGR_OWNERDIED, nil -ETIMEDOUT */
	K_INDEX,   /* integer into *(unsigned *)out; nil -> -ETIMEDOUT */
	K_RAW,     /* the reply as a value (errors too) */
	K_CREATE,  /* +OK 0; "key already exists" -EEXIST */
	K_HOLD,    /* integer 0; "not shared" 1 (no hold taken) */
};

typedef struct obj obj;

typedef struct pend {
	uint8_t kind;
	bool batch;       /* queued in a batch: counted there */
	void *out;
	size_t n;         /* K_MGET */
	/* The cache entry to fill from the reply: (co's key, cf[0, cflen)),
	 * or co NULL. Borrowed: only a call made outside a batch with
	 * nothing pending fills the cache, and such a call returns only
	 * once its entry is complete (or failed with the connection). */
	const obj *co;
	const char *cf;
	size_t cflen;
} pend;

typedef struct centry centry;
typedef struct ckey ckey;

/* A cached reply: the wire bytes of a value, under (object key, field),
 * whose cache key is the object key, a NUL, then the field. */
struct centry {
	centry *next;       /* hash chain */
	centry *knext, **kprev; /* entries of the same object key */
	uint64_t h;
	size_t cklen, vlen;
	char data[];        /* cache key, then the value */
};

/* An object key with cached entries. */
struct ckey {
	ckey *next;
	uint64_t h;
	centry *list;
	size_t len;
	char key[];
};

struct reap_mgr_client {
	int fd;               /* -1 once dead */
	int refs;             /* the client's own, plus one per proxy */
	bool batching;
	uint64_t id;
	uint64_t timeout_ns;
	uint64_t spin_ns;     /* busy polling for a reply; 0: none */
	uint32_t fork_gen;    /* reap__fork_gen at connect: a client is its
			       * process's, never a forked child's */
	char err[256];

	reap_mgr_buf out;     /* requests not yet sent */
	size_t out_off;
	char *in;             /* replies not yet parsed: in[in_off, in_len) */
	size_t in_off, in_len, in_cap;
	reap__resp_reader rd;

	pend *q;              /* ring of pending entries */
	size_t qhead, qlen, qcap;
	uint64_t seq_queued, seq_done;
	uint64_t sync_seq;    /* the entry a plain call waits for */
	int sync_rc;
	size_t batch_failed;
	int batch_rc;
	uint64_t op_deadline; /* the latest deadline of a blocking call
			       * pending, 0 if none (REAP_FOREVER: one
			       * waits for ever) */

	reap_mgr_buf scratch; /* value encodings */
	struct codec_ent {
		const reap_mgr_codec *codec;
		size_t nlen;
	} *codecs;
	size_t ncodecs;

	/* the cache */
	bool cache;
	uint64_t sync_ns, cache_epoch;
	size_t cache_max, ncached;
	centry **ctab;        /* cache_max buckets, rounded to 2^k */
	ckey **ktab;
	size_t tabmask;
};

/* The proxies: one layout, ten types. */
struct obj {
	reap_mgr_client *c;
	const char *kind;     /* REAP.CREATE's type: "dict", "queue", ... */
	uint8_t life;
	bool held;            /* we hold a shared object */
	size_t klen;
	char key[];
};

struct reap_mgr_dict { obj o; };
struct reap_mgr_list { obj o; };
struct reap_mgr_queue { obj o; };
struct reap_mgr_counter { obj o; };
struct reap_mgr_var { obj o; };
struct reap_mgr_lock { obj o; };
struct reap_mgr_sem { obj o; };
struct reap_mgr_event { obj o; };
struct reap_mgr_barrier { obj o; };
struct reap_mgr_ns { obj o; };

static void seterr(reap_mgr_client *c, const char *fmt, ...) REAP_PRINTF(2, 3);
static void seterr(reap_mgr_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* The cache                                                            */

#define FNV_OFFSET 0xcbf29ce484222325ull

static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *s = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ s[i]) * 0x100000001b3ull;
	return h;
}

/* An object key's hash. */
static uint64_t hash(const void *p, size_t n)
{
	uint64_t h = fnv(FNV_OFFSET, p, n);

	return h ^ (h >> 29);
}

/* The hash of the cache key of (key, field), without building it. */
static uint64_t ck_hash(const char *key, size_t klen, const char *f, size_t flen)
{
	uint64_t h = fnv(fnv(fnv(FNV_OFFSET, key, klen), "", 1), f, flen);

	return h ^ (h >> 29);
}

static void cache_drop_key(reap_mgr_client *c, const char *key, size_t len)
{
	uint64_t h = hash(key, len);
	ckey **kp = &c->ktab[h & c->tabmask], *k;

	for (; (k = *kp) != NULL; kp = &k->next) {
		if (k->h != h || k->len != len || memcmp(k->key, key, len) != 0)
			continue;
		while (k->list != NULL) {
			centry *e = k->list, **ep;

			k->list = e->knext;
			for (ep = &c->ctab[e->h & c->tabmask]; *ep != e; ep = &(*ep)->next)
				;
			*ep = e->next;
			reap_free(e);
			c->ncached--;
		}
		*kp = k->next;
		reap_free(k);
		return;
	}
}

static void cache_clear(reap_mgr_client *c)
{
	if (c->ctab == NULL || c->ktab == NULL)
		return;
	for (size_t i = 0; i <= c->tabmask; i++) {
		centry *e, *en;
		ckey *k, *kn;

		for (e = c->ctab[i]; e != NULL; e = en) {
			en = e->next;
			reap_free(e);
		}
		for (k = c->ktab[i]; k != NULL; k = kn) {
			kn = k->next;
			reap_free(k);
		}
		c->ctab[i] = NULL;
		c->ktab[i] = NULL;
	}
	c->ncached = 0;
}

/* The entry of (key, field) whose cache key hashes to h, or NULL. */
static centry *cache_find(reap_mgr_client *c, uint64_t h, const char *key,
			  size_t klen, const char *f, size_t flen)
{
	for (centry *e = c->ctab[h & c->tabmask]; e != NULL; e = e->next)
		if (e->h == h && e->cklen == klen + 1 + flen &&
		    memcmp(e->data, key, klen) == 0 && e->data[klen] == '\0' &&
		    memcmp(e->data + klen + 1, f, flen) == 0)
			return e;
	return NULL;
}

/* Remember the value bytes v under (key, field). Best effort: a failed
 * allocation caches nothing. */
static void cache_put(reap_mgr_client *c, const char *key, size_t klen,
		      const char *f, size_t flen, const char *v, size_t vlen)
{
	uint64_t h = ck_hash(key, klen, f, flen), kh = hash(key, klen);
	size_t cklen = klen + 1 + flen;
	ckey *k;
	centry *e;

	if (c->ncached >= c->cache_max)
		cache_clear(c);
	if (cache_find(c, h, key, klen, f, flen) != NULL)
		return;
	for (k = c->ktab[kh & c->tabmask]; k != NULL; k = k->next)
		if (k->h == kh && k->len == klen && memcmp(k->key, key, klen) == 0)
			break;
	if (k == NULL) {
		if ((k = reap_malloc(sizeof *k + klen)) == NULL)
			return;
		k->h = kh;
		k->len = klen;
		k->list = NULL;
		memcpy(k->key, key, klen);
		k->next = c->ktab[kh & c->tabmask];
		c->ktab[kh & c->tabmask] = k;
	}
	if ((e = reap_malloc(sizeof *e + cklen + vlen)) == NULL)
		return;
	e->h = h;
	e->cklen = cklen;
	e->vlen = vlen;
	memcpy(e->data, key, klen);
	e->data[klen] = '\0';
	memcpy(e->data + klen + 1, f, flen);
	memcpy(e->data + cklen, v, vlen);
	e->next = c->ctab[h & c->tabmask];
	c->ctab[h & c->tabmask] = e;
	e->knext = k->list;
	k->list = e;
	c->ncached++;
}

/* A push from the manager: ["invalidate", [keys]] or ["invalidate", nil]. */
static void handle_push(reap_mgr_client *c, const reap__resp_value *v)
{
	const reap__resp_value *what;

	if (v->agg.n < 2 || v->agg.v[0].type != REAP__RESP_STRING ||
	    strcmp(v->agg.v[0].str.p, "invalidate") != 0 || !c->cache)
		return;
	what = &v->agg.v[1];
	if (what->type == REAP__RESP_NIL) {
		cache_clear(c);
		return;
	}
	if (what->type != REAP__RESP_ARRAY)
		return;
	for (size_t i = 0; i < what->agg.n; i++)
		if (what->agg.v[i].type == REAP__RESP_STRING)
			cache_drop_key(c, what->agg.v[i].str.p, what->agg.v[i].str.len);
}

/* ------------------------------------------------------------------ */
/* Connection state                                                     */

static void unref(reap_mgr_client *c);

/* Error replies to errno values. */
static int map_error(reap_mgr_client *c, const reap__resp_value *v)
{
	const char *m = v->str.p;

	seterr(c, "the manager answered: %s", m);
	if (strncmp(m, "WRONGTYPE", 9) == 0)
		return -EMEDIUMTYPE;
	if (strncmp(m, "NOAUTH", 6) == 0 || strncmp(m, "WRONGPASS", 9) == 0)
		return -EACCES;
	if (strstr(m, "no such key") != NULL)
		return -ENOENT;
	if (strstr(m, "already exists") != NULL)
		return -EEXIST;
	if (strstr(m, "not held") != NULL)
		return -EPERM;
	if (strstr(m, "overflow") != NULL || strstr(m, "out of range") != NULL)
		return -ERANGE;
	if (strstr(m, "not an integer") != NULL || strstr(m, "not a valid") != NULL ||
	    strstr(m, "syntax") != NULL || strstr(m, "wrong number") != NULL)
		return -EINVAL;
	return -EREMOTEIO;
}

/* A completed entry's result goes to its caller, or to its batch. */
static void account(reap_mgr_client *c, const pend *p, int rc)
{
	uint64_t seq = c->seq_done++;

	if (seq == c->sync_seq)
		c->sync_rc = rc;
	if (p->batch && rc < 0) {
		c->batch_failed++;
		if (c->batch_rc == 0)
			c->batch_rc = rc;
	}
}

static void pend_pop(reap_mgr_client *c, int rc)
{
	pend *p = &c->q[c->qhead];

	account(c, p, rc);
	c->qhead = (c->qhead + 1) & (c->qcap - 1);
	c->qlen--;
	if (c->qlen == 0)
		c->op_deadline = 0;
}

/* The connection is lost: close it, fail everything pending. */
static int kill_conn(reap_mgr_client *c, int rc, const char *why)
{
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	if (why != NULL)
		seterr(c, "connection to the manager lost: %s", why);
	while (c->qlen > 0)
		pend_pop(c, rc);
	c->out.len = c->out_off = 0;
	c->in_off = c->in_len = 0;
	c->batching = false;
	cache_clear(c);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Replies                                                              */

static const reap_mgr_codec *find_codec(void *ctx, const char *name, size_t len)
{
	reap_mgr_client *c = ctx;

	for (size_t i = 0; i < c->ncodecs; i++)
		if (c->codecs[i].nlen == len &&
		    memcmp(c->codecs[i].codec->name, name, len) == 0)
			return c->codecs[i].codec;
	return NULL;
}

static int decode(reap_mgr_client *c, const void *p, size_t n, reap_mgr_value *out)
{
	char msg[200];
	int rc = reap__mgr_decode(p, n, find_codec, c, out, msg, sizeof msg);

	if (rc < 0)
		seterr(c, "%s", msg);
	return rc;
}

/* A server reply as a client value (K_RAW): the whole tree, through a
 * tagged encoding so that it lands in one block. */
static int raw_encode(const reap__resp_value *v, reap_mgr_buf *b)
{
	reap_mgr_value x;
	char tmp[2] = {(char)0xff, 'b'};
	int rc;

	switch (v->type) {
	case REAP__RESP_NIL:
		x = reap_mgr_nil();
		return reap__mgr_encode(&x, b, NULL, 0);
	case REAP__RESP_INT:
		x = reap_mgr_int(v->i);
		return reap__mgr_encode(&x, b, NULL, 0);
	case REAP__RESP_BOOL:
		x = reap_mgr_int(v->b);
		return reap__mgr_encode(&x, b, NULL, 0);
	case REAP__RESP_DOUBLE:
		x = reap_mgr_double(v->d);
		return reap__mgr_encode(&x, b, NULL, 0);
	case REAP__RESP_STRING:
	case REAP__RESP_STATUS:
	case REAP__RESP_VERBATIM:
	case REAP__RESP_BIGNUM:
	case REAP__RESP_ERROR:
		/* always tagged: raw replies are not decoded further */
		if ((rc = reap_mgr_buf_append(b, tmp, 2)) < 0)
			return rc;
		return reap_mgr_buf_append(b, v->str.p, v->str.len);
	default: {
		bool map = v->type == REAP__RESP_MAP;
		size_t n = map ? v->agg.n / 2 : v->agg.n, at;

		if (v->type == REAP__RESP_ATTR)
			return raw_encode(&v->agg.v[v->agg.n - 1], b);
		if ((rc = reap__mgr_put_agg(b, map, n)) < 0)
			return rc;
		for (size_t i = 0; i < (map ? n * 2 : n); i++) {
			if ((rc = reap__mgr_elem_begin(b, &at)) < 0 ||
			    (rc = raw_encode(&v->agg.v[i], b)) < 0)
				return rc;
			reap__mgr_elem_end(b, at);
		}
		return 0;
	}
	}
}

static int raw_value(reap_mgr_client *c, const reap__resp_value *v,
		     reap_mgr_value *out)
{
	int rc;

	c->scratch.len = 0;
	if ((rc = raw_encode(v, &c->scratch)) < 0)
		return rc;
	if ((rc = decode(c, c->scratch.p, c->scratch.len, out)) < 0)
		return rc;
	if (v->type == REAP__RESP_ERROR)
		out->type = REAP_MGR_T_ERROR;
	return 0;
}

/* Field/value pairs (RESP2 flat array or RESP3 map) or plain elements,
 * as one MAP or ARRAY value: fields stay bytes, values are decoded. */
static int agg_value(reap_mgr_client *c, const reap__resp_value *v, bool map,
		     reap_mgr_value *out)
{
	reap_mgr_buf *b = &c->scratch;
	size_t n = v->agg.n, at;
	int rc;

	if (map && (n % 2) != 0)
		return -EPROTO;
	b->len = 0;
	if ((rc = reap__mgr_put_agg(b, map, map ? n / 2 : n)) < 0)
		return rc;
	for (size_t i = 0; i < n; i++) {
		const reap__resp_value *e = &v->agg.v[i];

		if (e->type != REAP__RESP_STRING && e->type != REAP__RESP_NIL)
			return -EPROTO;
		if ((rc = reap__mgr_elem_begin(b, &at)) < 0)
			return rc;
		if (map && i % 2 == 0) {
			reap_mgr_value f = reap_mgr_bytes(e->str.p, e->str.len);

			rc = reap__mgr_encode(&f, b, NULL, 0);
		} else if (e->type == REAP__RESP_NIL) {
			reap_mgr_value f = reap_mgr_nil();

			rc = reap__mgr_encode(&f, b, NULL, 0);
		} else {
			rc = reap_mgr_buf_append(b, e->str.p, e->str.len);
		}
		if (rc < 0)
			return rc;
		reap__mgr_elem_end(b, at);
	}
	return decode(c, b->p, b->len, out);
}

/* Complete the head entry with reply v. Returns the entry's result;
 * a reply of the wrong shape is -EPROTO (the stream stays usable: the
 * reply was whole). */
static int complete(reap_mgr_client *c, const reap__resp_value *v)
{
	pend *p = &c->q[c->qhead];
	reap_mgr_value *val = p->out;
	int rc = 0;

	if (v->type == REAP__RESP_ERROR && p->kind != K_RAW) {
		rc = map_error(c, v);
		if (p->kind == K_HOLD && strstr(v->str.p, "not shared") != NULL)
			rc = 1;
		return rc;
	}
	switch (p->kind) {
	case K_OK:
	case K_CREATE:
		return 0;
	case K_HOLD:
		return v->type == REAP__RESP_INT ? 0 : -EPROTO;
	case K_INT:
		if (v->type != REAP__RESP_INT)
			return -EPROTO;
		if (p->out != NULL)
			*(int64_t *)p->out = v->i;
		return 0;
	case K_LEN:
		if (v->type != REAP__RESP_INT || v->i < 0)
			return -EPROTO;
		*(size_t *)p->out = (size_t)v->i;
		return 0;
	case K_DEL:
		if (v->type != REAP__RESP_INT)
			return -EPROTO;
		return v->i > 0 ? 0 : -ENOENT;
	case K_GET:
	case K_GETNIL:
		if (v->type == REAP__RESP_NIL)
			return p->kind == K_GET && !p->batch ? -ENOENT : 0;
		if (v->type != REAP__RESP_STRING)
			return -EPROTO;
		if ((rc = decode(c, v->str.p, v->str.len, val)) == 0 && p->co != NULL)
			cache_put(c, p->co->key, p->co->klen, p->cf, p->cflen, v->str.p,
				  v->str.len);
		return rc;
	case K_GETINT: {
		reap_mgr_value x;

		if (v->type == REAP__RESP_NIL)
			return -EINVAL;
		if (v->type != REAP__RESP_STRING)
			return -EPROTO;
		if ((rc = decode(c, v->str.p, v->str.len, &x)) < 0)
			return rc;
		rc = reap_mgr_value_i64(&x, p->out);
		reap_mgr_value_free(&x);
		return rc;
	}
	case K_MGET:
		if (v->type != REAP__RESP_ARRAY || v->agg.n != p->n)
			return -EPROTO;
		for (size_t i = 0; i < p->n; i++) {
			const reap__resp_value *e = &v->agg.v[i];

			if (e->type == REAP__RESP_NIL)
				continue;
			if (e->type != REAP__RESP_STRING) {
				rc = -EPROTO;
				break;
			}
			if ((rc = decode(c, e->str.p, e->str.len, &val[i])) < 0)
				break;
		}
		if (rc < 0)
			for (size_t i = 0; i < p->n; i++)
				reap_mgr_value_free(&val[i]);
		return rc;
	case K_MAP:
		if (v->type != REAP__RESP_ARRAY && v->type != REAP__RESP_MAP)
			return -EPROTO;
		return agg_value(c, v, true, val);
	case K_ARRAY:
		if (v->type != REAP__RESP_ARRAY)
			return -EPROTO;
		return agg_value(c, v, false, val);
	case K_BPOP:
		if (v->type == REAP__RESP_NIL)
			return -ETIMEDOUT;
		if (v->type != REAP__RESP_ARRAY || v->agg.n != 2 ||
		    v->agg.v[1].type != REAP__RESP_STRING)
			return -EPROTO;
		return decode(c, v->agg.v[1].str.p, v->agg.v[1].str.len, val);
	case K_ACQ:
		if (v->type == REAP__RESP_NIL)
			return -ETIMEDOUT;
		if (v->type != REAP__RESP_STATUS)
			return -EPROTO;
		return v->str.len == 9 && memcmp(v->str.p, "OWNERDIED", 9) == 0
			       ? REAP_MGR_OWNERDIED
			       : 0;
	case K_INDEX:
		if (v->type == REAP__RESP_NIL)
			return -ETIMEDOUT;
		if (v->type != REAP__RESP_INT || v->i < 0)
			return -EPROTO;
		if (p->out != NULL)
			*(unsigned *)p->out = (unsigned)v->i;
		return 0;
	case K_RAW:
		return raw_value(c, v, val);
	}
	return -EPROTO;
}

/*
 * The common replies (+status, :integer, $bulk, $-1) when whole at
 * p[0, n), read in place: their length, with *v filled (its string
 * pointing into p, not NUL-terminated), or 0 for the general reader
 * (anything else, a reply not yet whole, or a malformed one).
 */
static size_t fast_reply(const reap_mgr_client *c, const char *p, size_t n,
			 reap__resp_value *v)
{
	const char *cr;
	size_t at, end;
	int64_t ll;

	if (n < 4 || (p[0] != '+' && p[0] != ':' && p[0] != '$'))
		return 0;
	if ((cr = memchr(p, '\r', n < 64 ? n : 64)) == NULL)
		return 0;
	at = (size_t)(cr - p);
	if (at < 2 || at + 1 >= n || p[at + 1] != '\n')
		return 0;
	memset(v, 0, sizeof *v);
	switch (p[0]) {
	case '+':
		v->type = REAP__RESP_STATUS;
		v->str.p = (char *)p + 1;
		v->str.len = at - 1;
		return at + 2;
	case ':':
		if (!reap__resp_parse_ll(p + 1, at - 1, &ll))
			return 0;
		v->type = REAP__RESP_INT;
		v->i = ll;
		return at + 2;
	default:
		if (at == 3 && p[1] == '-' && p[2] == '1') {
			v->type = REAP__RESP_NIL;
			return 5;
		}
		if (!reap__resp_parse_ll(p + 1, at - 1, &ll) || ll < 0 ||
		    ll > c->rd.lim.max_bulk || (uint64_t)ll > n - at - 2)
			return 0;
		end = at + 2 + (size_t)ll;
		if (n - end < 2 || p[end] != '\r' || p[end + 1] != '\n')
			return 0;
		v->type = REAP__RESP_STRING;
		v->str.p = (char *)p + at + 2;
		v->str.len = (size_t)ll;
		return end + 2;
	}
}

/* Parse and complete every whole reply in the input buffer. */
static int parse_replies(reap_mgr_client *c)
{
	while (c->in_off < c->in_len) {
		reap__resp_value *v = NULL, fv;
		size_t used = 0;
		int rc;

		if (c->qlen > 0 && c->rd.root == NULL && c->rd.scan == 0 &&
		    (used = fast_reply(c, c->in + c->in_off, c->in_len - c->in_off,
				       &fv)) > 0) {
			c->in_off += used;
			rc = complete(c, &fv);
			if (rc == -EPROTO && c->err[0] == '\0')
				seterr(c, "unexpected reply");
			pend_pop(c, rc);
			continue;
		}
		rc = reap__resp_reader_parse(&c->rd, c->in + c->in_off,
					     c->in_len - c->in_off, &used, &v);

		c->in_off += used;
		if (rc == REAP__RESP_MORE)
			break;
		if (rc == -ENOMEM)
			return kill_conn(c, -ENOMEM, "out of memory reading a reply");
		if (rc != REAP__RESP_VALUE)
			return kill_conn(c, -EPROTO, c->rd.err);
		if (v->type == REAP__RESP_PUSH) {
			handle_push(c, v);
		} else if (c->qlen == 0) {
			reap__resp_value_free(v);
			return kill_conn(c, -EPROTO, "a reply to no request");
		} else {
			rc = complete(c, v);
			if (rc == -EPROTO && c->err[0] == '\0')
				seterr(c, "unexpected reply");
			pend_pop(c, rc);
		}
		reap__resp_value_free(v);
	}
	if (c->in_off == c->in_len)
		c->in_off = c->in_len = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* I/O                                                                  */

static int wait_io(reap_mgr_client *c, unsigned ev, uint64_t deadline)
{
	struct pollfd pfd;
	uint64_t now;
	int ms, r;

	if (reap_task_self() != NULL)
		return reap_wait_fd(c->fd, ev, deadline);
	pfd.fd = c->fd;
	pfd.events = (short)(((ev & REAP_READ) ? POLLIN : 0) |
			     ((ev & REAP_WRITE) ? POLLOUT : 0));
	now = reap_now_ns();
	if (deadline != REAP_FOREVER && now >= deadline)
		return -ETIMEDOUT;
	ms = deadline == REAP_FOREVER || deadline - now > 1000000000ull
		     ? 1000
		     : (int)((deadline - now + 999999) / 1000000);
	r = poll(&pfd, 1, ms);
	if (r < 0 && errno != EINTR)
		return -errno;
	return 0;
}

/* Room for at least IN_CHUNK / 2 more bytes in c->in, the bytes
 * parsed dropped first: 0 or -ENOMEM. */
static int in_room(reap_mgr_client *c)
{
	size_t live = c->in_len - c->in_off, cap = c->in_cap;
	char *p;

	if (cap - c->in_len >= IN_CHUNK / 2)
		return 0;
	if (c->in_off > 0) {
		memmove(c->in, c->in + c->in_off, live);
		c->in_off = 0;
		c->in_len = live;
	}
	if (cap - live < IN_CHUNK / 2) {
		cap = cap ? cap * 2 : IN_CHUNK;
		if ((p = reap_realloc(c->in, cap)) == NULL)
			return -ENOMEM;
		c->in = p;
		c->in_cap = cap;
	}
	return 0;
}

/* Busy polling for a reply (opts.spin_ns): recv without waiting until
 * bytes come or the time is up; the result of the last recv. */
static ssize_t spin_recv(reap_mgr_client *c)
{
	uint64_t until = reap__add_sat(reap__mono_ns(), c->spin_ns);
	ssize_t n;

	do
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
	while (n < 0 && errno == EAGAIN && reap__mono_ns() < until);
	return n;
}

/*
 * Send what is queued and read replies until entry `until` completes
 * (UINT64_MAX: until everything queued is sent; `all`: until nothing is
 * pending), or the deadline. Returns 0, or the connection's error (it
 * is dead then).
 */
static int pump(reap_mgr_client *c, uint64_t until, bool all, uint64_t deadline)
{
	bool task = reap_task_self() != NULL;
	int rc;

	for (;;) {
		bool want_write = false;
		ssize_t n;

		if (c->fd < 0)
			return -ENOTCONN;
		if ((rc = parse_replies(c)) < 0)
			return rc;
		while (c->out_off < c->out.len) {
			n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n > 0) {
				c->out_off += (size_t)n;
				continue;
			}
			if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
				want_write = true;
				break;
			}
			if (n < 0 && errno == EINTR)
				continue;
			return kill_conn(c, -ECONNRESET, strerror(errno));
		}
		if (c->out_off == c->out.len)
			c->out.len = c->out_off = 0;
		if (all ? c->qlen == 0
			: until == UINT64_MAX ? c->out.len == 0 : c->seq_done > until)
			return 0;
		if (in_room(c) < 0)
			return kill_conn(c, -ENOMEM, "out of memory");
		n = -1;
		if (!task && !want_write && c->spin_ns > 0)
			n = spin_recv(c);
		if (n < 0)
			n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len,
				 task || want_write ? MSG_DONTWAIT : 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			return kill_conn(c, -ECONNRESET, "the manager closed the connection");
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return kill_conn(c, -ECONNRESET, strerror(errno));
		if (deadline != REAP_FOREVER && reap_now_ns() >= deadline)
			return kill_conn(c, -ETIMEDOUT, "no reply in time");
		if (task || want_write) {
			rc = wait_io(c, REAP_READ | (want_write ? REAP_WRITE : 0), deadline);
			if (rc == -ETIMEDOUT)
				return kill_conn(c, -ETIMEDOUT, "no reply in time");
			if (rc < 0)
				return kill_conn(c, rc, "the wait was interrupted");
		}
	}
}

/* How long the replies now pending may take: the timeout, from now or
 * from the latest deadline of a blocking call among them. */
static uint64_t reply_deadline(reap_mgr_client *c)
{
	uint64_t now = reap_now_ns();

	if (c->op_deadline == REAP_FOREVER)
		return REAP_FOREVER;
	return reap__add_sat(c->op_deadline > now ? c->op_deadline : now,
			     c->timeout_ns);
}

/* ------------------------------------------------------------------ */
/* Requests                                                             */

static int out_hdr(reap_mgr_client *c, char t, size_t n)
{
	char num[24];
	size_t k = reap__resp_ll2str(num + 1, (int64_t)n);
	int rc;

	num[0] = t;
	if ((rc = reap__mgr_buf_reserve(&c->out, k + 3)) < 0)
		return rc;
	memcpy(c->out.p + c->out.len, num, k + 1);
	memcpy(c->out.p + c->out.len + k + 1, "\r\n", 2);
	c->out.len += k + 3;
	return 0;
}

static int out_bulk(reap_mgr_client *c, const void *p, size_t n)
{
	int rc;

	if ((rc = out_hdr(c, '$', n)) < 0 ||
	    (rc = reap__mgr_buf_reserve(&c->out, n + 2)) < 0)
		return rc;
	if (n > 0)
		memcpy(c->out.p + c->out.len, p, n);
	memcpy(c->out.p + c->out.len + n, "\r\n", 2);
	c->out.len += n + 2;
	return 0;
}

static int out_str(reap_mgr_client *c, const char *s)
{
	return out_bulk(c, s, strlen(s));
}

static int out_int(reap_mgr_client *c, int64_t v)
{
	char num[24];

	return out_bulk(c, num, reap__resp_ll2str(num, v));
}

/* A value's wire form as one argument. */
static int out_value(reap_mgr_client *c, const reap_mgr_value *v)
{
	char msg[200];
	int rc;

	/* The common scalars straight into the request. */
	if (v->type == REAP_MGR_T_INT)
		return out_int(c, v->i);
	c->scratch.len = 0;
	if ((rc = reap__mgr_encode(v, &c->scratch, msg, sizeof msg)) < 0) {
		seterr(c, "cannot send this value: %s", msg);
		return rc;
	}
	return out_bulk(c, c->scratch.p, c->scratch.len);
}

/* Begin a call: checks the connection; returns the length of c->out to
 * roll back to if building the request fails. */
static int begin(reap_mgr_client *c, size_t *mark)
{
	if (c->fork_gen != reap__fork_gen) {
		/* Its socket is shared with the parent, whose requests and
		 * replies would interleave with ours: never touch it. */
		seterr(c, "this client was inherited across fork(); connect a "
		       "client of this process's own");
		return -ENOTCONN;
	}
	if (c->fd < 0) {
		/* keep the reason the connection went, if there is one */
		if (c->err[0] == '\0')
			seterr(c, "not connected");
		return -ENOTCONN;
	}
	c->err[0] = '\0';
	*mark = c->out.len;
	return 0;
}

/* Start a request: the connection is checked, "*argc" and the command
 * name are written. */
static int req(reap_mgr_client *c, size_t *mark, size_t argc, const char *name,
	       size_t nlen)
{
	int rc;

	if ((rc = begin(c, mark)) < 0)
		return rc;
	if ((rc = out_hdr(c, '*', argc)) < 0 || (rc = out_bulk(c, name, nlen)) < 0) {
		c->out.len = *mark;
		return rc;
	}
	return 0;
}

#define REQ(c, mark, argc, lit) req((c), (mark), (argc), lit, sizeof(lit) - 1)

static int q_reserve(reap_mgr_client *c)
{
	pend *q;
	size_t cap;

	if (c->qlen < c->qcap)
		return 0;
	cap = c->qcap ? c->qcap * 2 : 16;
	if ((q = reap_malloc(cap * sizeof *q)) == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < c->qlen; i++)
		q[i] = c->q[(c->qhead + i) & (c->qcap - 1)];
	reap_free(c->q);
	c->q = q;
	c->qhead = 0;
	c->qcap = cap;
	return 0;
}

/*
 * Finish a call whose request is in c->out from mark on: queue its
 * entry, then (outside a batch) wait for its reply. co NULL, or the
 * cache entry (co, cf[0, cflen)) to fill from the reply (borrowed, see
 * pend). op_deadline: a blocking command's own deadline (the reply may
 * take that long, plus the timeout), or 0.
 */
static int finish(reap_mgr_client *c, size_t mark, int build_rc, enum kind kind,
		  void *out, size_t n, const obj *co, const char *cf,
		  size_t cflen, uint64_t op_deadline)
{
	uint64_t seq;
	pend *p;
	int rc;

	if (build_rc == 0)
		build_rc = q_reserve(c);
	if (build_rc < 0) {
		c->out.len = mark;
		if (build_rc == -ENOMEM && c->err[0] == '\0')
			seterr(c, "out of memory");
		return build_rc;
	}
	p = &c->q[(c->qhead + c->qlen) & (c->qcap - 1)];
	p->kind = (uint8_t)kind;
	p->batch = c->batching;
	p->out = out;
	p->n = n;
	p->co = co;
	p->cf = cf;
	p->cflen = cflen;
	c->qlen++;
	seq = c->seq_queued++;
	if (op_deadline > c->op_deadline)
		c->op_deadline = op_deadline;
	if (c->batching)
		return 0;
	c->sync_seq = seq;
	c->sync_rc = 0;
	rc = pump(c, seq, false, reply_deadline(c));
	c->sync_seq = UINT64_MAX;
	if (rc < 0 && c->seq_done <= seq)
		return rc;
	return c->sync_rc;
}

/* ------------------------------------------------------------------ */
/* Connecting                                                           */

static reap_type client_type;
static reap_type proxy_type;

static void client_free(reap_mgr_client *c)
{
	reap__mgr_buf_fini(&c->out);
	reap__mgr_buf_fini(&c->scratch);
	reap_free(c->in);
	reap__resp_reader_fini(&c->rd);
	reap_free(c->q);
	reap_free(c->codecs);
	cache_clear(c);
	reap_free(c->ctab);
	reap_free(c->ktab);
	reap_free(c);
}

static void unref(reap_mgr_client *c)
{
	if (--c->refs == 0)
		client_free(c);
}

static void client_close(void *arg)
{
	reap_mgr_client *c = arg;

	kill_conn(c, -ENOTCONN, NULL);
	seterr(c, "the client is closed");
	unref(c);
}

static void client_describe(void *arg, char *buf, size_t len)
{
	reap_mgr_client *c = arg;

	snprintf(buf, len, "mgr client session %llu%s", (unsigned long long)c->id,
		 c->fd < 0 ? " (disconnected)" : "");
}

static reap_type client_type = REAP_TYPE_INIT("mgr client", client_describe);

/* "unix:PATH", "/PATH", "tcp:HOST:PORT": a connected socket or an error. */
static int dial(const char *addr, uint64_t deadline, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sl;
	int fd, rc, one = 1;

	memset(&ss, 0, sizeof ss);
	if (strncmp(addr, "unix:", 5) == 0 || addr[0] == '/') {
		struct sockaddr_un *un = (struct sockaddr_un *)&ss;
		const char *path = addr[0] == '/' ? addr : addr + 5;

		if (strlen(path) == 0 || strlen(path) >= sizeof un->sun_path) {
			snprintf(err, errlen, "bad Unix socket path '%s'", path);
			return -EINVAL;
		}
		un->sun_family = AF_UNIX;
		strcpy(un->sun_path, path);
		sl = sizeof *un;
	} else if (strncmp(addr, "tcp:", 4) == 0) {
		struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai;
		char host[256];
		const char *colon = strrchr(addr + 4, ':');
		size_t hl;

		if (colon == NULL || (hl = (size_t)(colon - (addr + 4))) == 0 ||
		    hl >= sizeof host || colon[1] == '\0') {
			snprintf(err, errlen, "bad TCP address '%s' (tcp:HOST:PORT)", addr);
			return -EINVAL;
		}
		memcpy(host, addr + 4, hl);
		host[hl] = '\0';
		hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
		if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
			snprintf(err, errlen, "bad TCP address '%s' (numeric host "
				 "and port)", addr);
			return -EINVAL;
		}
		memcpy(&ss, ai->ai_addr, ai->ai_addrlen);
		sl = ai->ai_addrlen;
		freeaddrinfo(ai);
	} else {
		snprintf(err, errlen, "bad address '%s' (unix:PATH or tcp:HOST:PORT)",
			 addr);
		return -EINVAL;
	}
	if (reap__fault_point())
		return -ENOMEM;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return rc;
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) != 0) {
		if (errno != EINPROGRESS && errno != EAGAIN) {
			rc = -errno;
			snprintf(err, errlen, "connect to %s: %s", addr, strerror(errno));
			close(fd);
			return rc;
		}
		for (;;) {
			struct pollfd pfd = {.fd = fd, .events = POLLOUT};
			socklen_t el = sizeof rc;

			if (reap_task_self() != NULL) {
				rc = reap_wait_fd(fd, REAP_WRITE, deadline);
			} else {
				uint64_t now = reap_now_ns();

				rc = now >= deadline ? -ETIMEDOUT
						     : poll(&pfd, 1, (int)((deadline - now) / 1000000 + 1)) < 0 && errno != EINTR ? -errno : 0;
			}
			if (rc < 0) {
				snprintf(err, errlen, "connect to %s: %s", addr,
					 reap_strerror(rc));
				close(fd);
				return rc;
			}
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &rc, &el) == 0 && rc != 0) {
				snprintf(err, errlen, "connect to %s: %s", addr, strerror(rc));
				close(fd);
				return -rc;
			}
			pfd.revents = 0;
			if (poll(&pfd, 1, 0) == 1)
				break;
		}
	}
	/* Back to blocking: nonblocking calls say so with MSG_DONTWAIT, and
	 * a plain thread's blocking recv is bounded by SO_RCVTIMEO. */
	{
		struct timeval tv = {0, RECV_TICK_MS * 1000};

		(void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
		if (ss.ss_family != AF_UNIX)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	}
	return fd;
}

static int handshake(reap_mgr_client *c, const reap_mgr_client_opts *o)
{
	reap_mgr_value r = {0};
	int rc;

	if (o->key != NULL && o->key_len > 0) {
		uint8_t ns[REAP__AUTH_NONCE_LEN], nc[REAP__AUTH_NONCE_LEN];
		uint8_t proof[REAP__AUTH_PROOF_LEN];
		const char *a1[] = {"REAP.CHALLENGE"};
		const char *a2[] = {"REAP.PROVE", (const char *)nc, (const char *)proof};
		size_t l2[] = {10, sizeof nc, sizeof proof};

		if ((rc = reap_mgr_command(c, &r, 1, a1, NULL)) < 0)
			return rc;
		if (r.type != REAP_MGR_T_BYTES || r.bytes.len != sizeof ns) {
			seterr(c, "the server did not give a challenge: %s",
				r.type == REAP_MGR_T_ERROR ? (const char *)r.bytes.p
							    : "not a manager");
			reap_mgr_value_free(&r);
			return -EPROTO;
		}
		memcpy(ns, r.bytes.p, sizeof ns);
		reap_mgr_value_free(&r);
		if ((rc = reap__random_bytes(nc, sizeof nc)) < 0) {
			seterr(c, "cannot read random bytes");
			return rc;
		}
		reap__auth_client_proof(o->key, o->key_len, ns, nc, proof);
		if ((rc = reap_mgr_command(c, &r, 3, a2, l2)) < 0)
			return rc;
		if (r.type == REAP_MGR_T_ERROR) {
			seterr(c, "the manager refused the key: %s",
			       (const char *)r.bytes.p);
			reap_mgr_value_free(&r);
			return -EACCES;
		}
		rc = r.type == REAP_MGR_T_BYTES && r.bytes.len == REAP__AUTH_PROOF_LEN
			     ? reap__auth_server_verify(o->key, o->key_len, ns, nc,
							r.bytes.p)
			     : -EACCES;
		reap_mgr_value_free(&r);
		if (rc < 0) {
			seterr(c, "the manager could not prove that it holds the key");
			return -EACCES;
		}
	}
	if (o->cache) {
		const char *h[] = {"HELLO", "3"};
		const char *t[] = {"CLIENT", "TRACKING", "ON"};

		if ((rc = reap_mgr_command(c, &r, 2, h, NULL)) < 0)
			return rc;
		rc = r.type == REAP_MGR_T_ERROR ? -EPROTO : 0;
		if (rc < 0)
			seterr(c, "HELLO 3 refused: %s", (const char *)r.bytes.p);
		reap_mgr_value_free(&r);
		if (rc < 0)
			return rc;
		if ((rc = reap_mgr_command(c, &r, 3, t, NULL)) < 0)
			return rc;
		rc = r.type == REAP_MGR_T_ERROR ? -EPROTO : 0;
		if (rc < 0)
			seterr(c, "CLIENT TRACKING refused: %s", (const char *)r.bytes.p);
		reap_mgr_value_free(&r);
		if (rc < 0)
			return rc;
	}
	if (o->name != NULL) {
		const char *n[] = {"CLIENT", "SETNAME", o->name};

		if ((rc = reap_mgr_command(c, &r, 3, n, NULL)) < 0)
			return rc;
		rc = r.type == REAP_MGR_T_ERROR ? -EINVAL : 0;
		if (rc < 0)
			seterr(c, "bad client name: %s", (const char *)r.bytes.p);
		reap_mgr_value_free(&r);
		if (rc < 0)
			return rc;
	}
	{
		const char *id[] = {"CLIENT", "ID"};

		if ((rc = reap_mgr_command(c, &r, 2, id, NULL)) < 0)
			return rc;
		if (r.type == REAP_MGR_T_INT)
			c->id = (uint64_t)r.i;
		else if (r.type == REAP_MGR_T_ERROR)
			rc = strncmp(r.bytes.p, "NOAUTH", 6) == 0 ? -EACCES : -EPROTO;
		else
			rc = -EPROTO;
		if (rc < 0)
			seterr(c, "%s", r.type == REAP_MGR_T_ERROR
					       ? (const char *)r.bytes.p
					       : "not a manager: CLIENT ID gave no id");
		reap_mgr_value_free(&r);
		if (rc < 0)
			return rc;
	}
	return 0;
}

int reap_mgr_connect_at(reap_scope *s, const char *addr,
			const reap_mgr_client_opts *opts, reap_mgr_client **out,
			const reap_site *site)
{
	static const reap_mgr_client_opts defaults;
	const reap_mgr_client_opts *o = opts != NULL ? opts : &defaults;
	reap_mgr_client *c;
	char err[300];
	size_t buckets;
	int rc;

	if (o->key == NULL && o->key_len != 0)
		return reap_raisef(-EINVAL, "a key length without a key");
	if ((c = reap_calloc(1, sizeof *c)) == NULL)
		return -ENOMEM;
	c->fd = -1;
	c->refs = 1;
	c->sync_seq = UINT64_MAX;
	c->timeout_ns = o->timeout_ns ? o->timeout_ns : DEFAULT_TIMEOUT_NS;
	c->spin_ns = o->spin_ns == 0 ? (sysconf(_SC_NPROCESSORS_ONLN) > 1
						? DEFAULT_SPIN_NS : 0)
		     : o->spin_ns == REAP_MGR_NO_SPIN ? 0 : o->spin_ns;
	reap__resp_reader_init(&c->rd, NULL);
	reap__mgr_buf_init(&c->out);
	reap__mgr_buf_init(&c->scratch);
	c->cache = o->cache;
	c->sync_ns = o->cache_sync_ns ? o->cache_sync_ns : DEFAULT_SYNC_NS;
	c->cache_max = o->cache_max ? o->cache_max : DEFAULT_CACHE_MAX;
	if (c->cache) {
		for (buckets = 64; buckets < c->cache_max && buckets < (1u << 20);)
			buckets *= 2;
		c->ctab = reap_calloc(buckets, sizeof *c->ctab);
		c->ktab = reap_calloc(buckets, sizeof *c->ktab);
		c->tabmask = buckets - 1;
		if (c->ctab == NULL || c->ktab == NULL) {
			client_free(c);
			return -ENOMEM;
		}
		c->cache_epoch = reap_now_ns();
	}
	rc = dial(addr, reap__add_sat(reap_now_ns(), c->timeout_ns), err, sizeof err);
	if (rc < 0) {
		client_free(c);
		return reap_raisef(rc, "%s", err);
	}
	c->fd = rc;
	c->fork_gen = reap__fork_gen;
	if ((rc = handshake(c, o)) < 0) {
		snprintf(err, sizeof err, "%s", c->err);
		if (c->fd >= 0)
			close(c->fd);
		client_free(c);
		return reap_raisef(rc, "%s", err);
	}
	if ((rc = reap_defer_at(s, &client_type, client_close, c, NULL, site)) < 0) {
		close(c->fd);
		client_free(c);
		return rc;
	}
	*out = c;
	return 0;
}

const char *reap_mgr_client_error(const reap_mgr_client *c)
{
	return c->err;
}

uint64_t reap_mgr_client_id(const reap_mgr_client *c)
{
	return c->id;
}

void reap_mgr_disconnect(reap_mgr_client *c)
{
	kill_conn(c, -ENOTCONN, "disconnected by reap_mgr_disconnect()");
}

int reap_mgr_codec_add(reap_mgr_client *c, const reap_mgr_codec *codec)
{
	struct codec_ent *v;
	size_t nl = codec->name != NULL ? strlen(codec->name) : 0;

	if (nl == 0 || nl > 64 || codec->encode == NULL || codec->decode == NULL) {
		seterr(c, "a codec needs a name of 1 to 64 bytes, an encoder "
		       "and a decoder");
		return -EINVAL;
	}
	if (find_codec(c, codec->name, nl) != NULL) {
		seterr(c, "codec '%s' is already registered", codec->name);
		return -EEXIST;
	}
	if ((v = reap_realloc(c->codecs, (c->ncodecs + 1) * sizeof *v)) == NULL)
		return -ENOMEM;
	v[c->ncodecs].codec = codec;
	v[c->ncodecs++].nlen = nl;
	c->codecs = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Generic calls                                                        */

int reap_mgr_command(reap_mgr_client *c, reap_mgr_value *reply, int argc,
		     const char *const *argv, const size_t *lens)
{
	size_t mark;
	int rc, brc = 0;

	*reply = reap_mgr_nil();
	if (argc < 1) {
		seterr(c, "a command needs at least its name");
		return -EINVAL;
	}
	if ((rc = begin(c, &mark)) < 0)
		return rc;
	brc = out_hdr(c, '*', (size_t)argc);
	for (int i = 0; i < argc && brc == 0; i++) {
		if (argv[i] == NULL) {
			seterr(c, "argument %d is NULL", i);
			brc = -EINVAL;
		} else {
			brc = out_bulk(c, argv[i], lens ? lens[i] : strlen(argv[i]));
		}
	}
	return finish(c, mark, brc, K_RAW, reply, 0, NULL, NULL, 0, 0);
}

int reap_mgr_delete(reap_mgr_client *c, const char *key)
{
	size_t mark;
	int rc;

	if ((rc = REQ(c, &mark, 2, "DEL")) < 0)
		return rc;
	rc = out_str(c, key);
	return finish(c, mark, rc, K_DEL, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_mget(reap_mgr_client *c, size_t n, const char *const *keys,
		  reap_mgr_value *out)
{
	size_t mark;
	int rc;

	for (size_t i = 0; i < n; i++)
		out[i] = reap_mgr_nil();
	if (n == 0)
		return 0;
	if ((rc = REQ(c, &mark, n + 1, "MGET")) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = out_str(c, keys[i]);
	return finish(c, mark, rc, K_MGET, out, n, NULL, NULL, 0, 0);
}

int reap_mgr_mset(reap_mgr_client *c, size_t n, const char *const *keys,
		  const reap_mgr_value *vals)
{
	size_t mark;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = REQ(c, &mark, 2 * n + 1, "MSET")) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		if ((rc = out_str(c, keys[i])) == 0)
			rc = out_value(c, &vals[i]);
	return finish(c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

/* ------------------------------------------------------------------ */
/* Batches                                                              */

void reap_mgr_batch_begin(reap_mgr_client *c)
{
	c->batching = c->fd >= 0;
}

int reap_mgr_batch_send(reap_mgr_client *c)
{
	c->batching = false;
	if (c->fd < 0 || c->fork_gen != reap__fork_gen)
		return -ENOTCONN;
	return pump(c, UINT64_MAX, false, reply_deadline(c));
}

int reap_mgr_batch_wait(reap_mgr_client *c, size_t *failed)
{
	int rc;

	c->batching = false;
	rc = c->fd >= 0 && c->fork_gen == reap__fork_gen
		     ? pump(c, 0, true, reply_deadline(c))
			: -ENOTCONN;
	if (failed != NULL)
		*failed = c->batch_failed;
	if (rc == 0)
		rc = c->batch_rc;
	c->batch_failed = 0;
	c->batch_rc = 0;
	return rc;
}

int reap_mgr_batch_exec(reap_mgr_client *c, size_t *failed)
{
	return reap_mgr_batch_wait(c, failed);
}

/* ------------------------------------------------------------------ */
/* Proxies                                                              */

static const char *const life_names[] = {"shared", "session", "persistent"};

static void proxy_describe(void *arg, char *buf, size_t len)
{
	obj *o = arg;

	snprintf(buf, len, "mgr %s '%.*s' (%s)", o->kind,
		 (int)(o->klen > 64 ? 64 : o->klen), o->key, life_names[o->life]);
}

static reap_type proxy_type = REAP_TYPE_INIT("mgr proxy", proxy_describe);

static int proxy_close(void *arg, const reap_error *inflight)
{
	obj *o = arg;
	reap_mgr_client *c = o->c;
	int rc = 0;

	(void)inflight;
	if (o->held && c->fd >= 0) {
		bool was = c->batching;
		size_t mark;

		c->batching = false;
		rc = REQ(c, &mark, 2, "REAP.RELEASE");
		if (rc == 0) {
			rc = out_bulk(c, o->key, o->klen);
			rc = finish(c, mark, rc, K_INT, NULL, 0, NULL, NULL, 0, 0);
		}
		c->batching = was && c->fd >= 0;
		/* A lost connection took the hold with it. */
		if (rc == -ENOTCONN || rc == -ECONNRESET || rc == -ETIMEDOUT)
			rc = 0;
		else if (rc < 0)
			rc = reap_raisef(rc, "releasing '%s': %s", o->key, c->err);
	}
	unref(c);
	reap_free(o);
	return rc;
}

static int open_obj(reap_scope *s, reap_mgr_client *c, const char *key,
		    const reap_mgr_obj_opts *opts, const char *ctype,
		    const char *arg, size_t arglen,
		    void **out, const reap_site *site)
{
	static const reap_mgr_obj_opts defaults;
	const reap_mgr_obj_opts *op = opts != NULL ? opts : &defaults;
	size_t klen = strlen(key), mark;
	reap_cleanup *h;
	char where[256];
	bool was = c->batching;
	obj *o;
	int rc = 0, wl;

	if ((unsigned)op->lifetime > REAP_MGR_PERSISTENT || klen == 0 ||
	    (op->flags & ~(REAP_MGR_EXCL | REAP_MGR_NOCREATE)) != 0 ||
	    (op->flags & REAP_MGR_EXCL && op->flags & REAP_MGR_NOCREATE)) {
		seterr(c, klen == 0 ? "an empty key" : "bad options");
		return reap_raisef(-EINVAL, "%s", c->err);
	}
	if ((rc = begin(c, &mark)) < 0)
		return rc;
	wl = snprintf(where, sizeof where, "%s:%d in %s()", site->file, site->line,
		      site->func);
	if (wl < 0 || (size_t)wl >= sizeof where)
		wl = wl < 0 ? 0 : (int)sizeof where - 1;
	if ((o = reap_malloc(sizeof *o + klen + 1)) == NULL)
		return -ENOMEM;
	o->c = c;
	o->kind = ctype;
	o->life = (uint8_t)op->lifetime;
	o->held = false;
	o->klen = klen;
	memcpy(o->key, key, klen + 1);
	if ((rc = reap_defer_exit_at(s, &proxy_type, proxy_close, o, &h, site)) < 0) {
		reap_free(o);
		return rc;
	}
	c->refs++;
	/* Not batched, as closing is not: the open needs its answers now
	 * (what is queued before it is sent first). */
	c->batching = false;
	for (int attempt = 0; attempt < 8; attempt++) {
		if (!(op->flags & REAP_MGR_NOCREATE)) {
			const char *ln = life_names[op->lifetime];

			rc = REQ(c, &mark, (arg != NULL ? 5 : 4) + 2, "REAP.CREATE");
			if (rc < 0)
				goto fail;
			if ((rc = out_str(c, ctype)) == 0 &&
			    (rc = out_bulk(c, key, klen)) == 0 &&
			    (rc = out_str(c, ln)) == 0 && arg != NULL)
				rc = out_bulk(c, arg, arglen);
			/* where the caller made it, for REAP.OBJECTS */
			if (rc == 0 && (rc = out_bulk(c, "SITE", 4)) == 0)
				rc = out_bulk(c, where, (size_t)wl);
			rc = finish(c, mark, rc, K_CREATE, NULL, 0, NULL, NULL, 0, 0);
			if (rc == 0) {
				o->held = op->lifetime == REAP_MGR_SHARED;
				goto done;
			}
			if (rc != -EEXIST)
				goto fail;
			if (op->flags & REAP_MGR_EXCL) {
				seterr(c, "'%s' already exists", key);
				goto fail;
			}
		}
		/* It exists (or should): hold it as the kind asked for; the
		 * manager checks the kind and takes the hold in one step. */
		if ((rc = REQ(c, &mark, 3, "REAP.HOLD")) < 0)
			goto fail;
		if ((rc = out_bulk(c, key, klen)) == 0)
			rc = out_str(c, ctype);
		rc = finish(c, mark, rc, K_HOLD, NULL, 0, NULL, NULL, 0, 0);
		if (rc == 0 || rc == 1) {
			/* 1: not a shared object, nothing to hold */
			o->held = rc == 0;
			rc = 0;
			goto done;
		}
		if (rc == -EMEDIUMTYPE) {
			const char *m = strstr(c->err, "holds a ");
			char why[96];

			snprintf(why, sizeof why, "%s", m != NULL ? m : "is of another kind");
			seterr(c, "'%s' %s", key, why);
			goto fail;
		}
		if (rc != -ENOENT)
			goto fail;
		if (op->flags & REAP_MGR_NOCREATE) {
			seterr(c, "no object '%s'", key);
			goto fail;
		}
	}
	seterr(c, "'%s' kept changing while being opened", key);
	rc = -EAGAIN;
fail:
	c->batching = was && c->fd >= 0;
	reap_cleanup_cancel(h);
	unref(c);
	reap_free(o);
	return reap_raisef(rc, "opening '%s': %s", key, c->err);
done:
	c->batching = was && c->fd >= 0;
	*out = o;
	return 0;
}

#define OPEN_FN(T, ctype)                                                      \
	int reap_mgr_##T##_open_at(reap_scope *s, reap_mgr_client *c,          \
				   const char *key, const reap_mgr_obj_opts *opts, \
				   reap_mgr_##T **out, const reap_site *site)  \
	{                                                                      \
		return open_obj(s, c, key, opts, ctype, NULL, 0, (void **)out, \
				site);                                         \
	}
OPEN_FN(dict, "dict")
OPEN_FN(list, "list")
OPEN_FN(queue, "queue")
OPEN_FN(lock, "lock")
OPEN_FN(event, "event")
OPEN_FN(ns, "namespace")
#undef OPEN_FN

int reap_mgr_counter_open_at(reap_scope *s, reap_mgr_client *c, const char *key,
			     const reap_mgr_obj_opts *opts, reap_mgr_counter **out,
			     const reap_site *site)
{
	char num[24];
	size_t n = reap__resp_ll2str(num, opts != NULL ? opts->init : 0);

	return open_obj(s, c, key, opts, "counter", num, n, (void **)out,
			site);
}

int reap_mgr_var_open_at(reap_scope *s, reap_mgr_client *c, const char *key,
			 const reap_mgr_obj_opts *opts, reap_mgr_var **out,
			 const reap_site *site)
{
	static const char nil[2] = {(char)0xff, 'n'};

	return open_obj(s, c, key, opts, "value", nil, 2, (void **)out,
			site);
}

int reap_mgr_sem_open_at(reap_scope *s, reap_mgr_client *c, const char *key,
			 const reap_mgr_obj_opts *opts, reap_mgr_sem **out,
			 const reap_site *site)
{
	char num[24];
	size_t n = reap__resp_ll2str(num, opts != NULL && opts->n ? opts->n : 1);

	return open_obj(s, c, key, opts, "semaphore", num, n,
			(void **)out, site);
}

int reap_mgr_barrier_open_at(reap_scope *s, reap_mgr_client *c, const char *key,
			     const reap_mgr_obj_opts *opts, reap_mgr_barrier **out,
			     const reap_site *site)
{
	char num[24];
	size_t n;

	if ((opts == NULL || opts->n == 0) &&
	    !(opts != NULL && (opts->flags & REAP_MGR_NOCREATE))) {
		seterr(c, "a barrier needs its number of parties (opts.n)");
		return reap_raisef(-EINVAL, "%s", c->err);
	}
	n = reap__resp_ll2str(num, opts->n);
	return open_obj(s, c, key, opts, "barrier", num, n, (void **)out,
			site);
}

/* ------------------------------------------------------------------ */
/* Calls on proxies                                                     */

/* A simple command on o's key: NAME key [extra args written by the
 * caller after]. */
static int key_req(obj *o, size_t *mark, size_t argc, const char *name)
{
	int rc = req(o->c, mark, argc, name, strlen(name));

	if (rc == 0 && (rc = out_bulk(o->c, o->key, o->klen)) < 0)
		o->c->out.len = *mark;
	return rc;
}

/* NAME key, reply kind k into out. */
static int key_call(obj *o, const char *name, enum kind k, void *out,
		    uint64_t op_deadline)
{
	size_t mark;
	int rc = key_req(o, &mark, 2, name);

	if (rc < 0)
		return rc;
	return finish(o->c, mark, 0, k, out, 0, NULL, NULL, 0, op_deadline);
}

/* Take in the pushes that arrived, without waiting. */
static void drain_pushes(reap_mgr_client *c)
{
	for (;;) {
		ssize_t n;

		if (in_room(c) < 0) {
			/* invalidations may be missed: trust nothing */
			cache_clear(c);
			return;
		}
		n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
			continue;
		}
		if (n == 0)
			kill_conn(c, -ECONNRESET, "the manager closed the connection");
		break;
	}
	if (c->fd >= 0)
		(void)parse_replies(c);
}

/* A cached read of (o, field[0, flen)): 1 and *out on a hit, 0 on a
 * miss, with *fill true when the reply is to be cached. */
static int cache_get(obj *o, const char *field, size_t flen, reap_mgr_value *out,
		     bool *fill)
{
	reap_mgr_client *c = o->c;
	centry *e;
	uint64_t now;

	*fill = false;
	if (!c->cache || c->batching || c->qlen > 0 || c->fd < 0 ||
	    c->fork_gen != reap__fork_gen)
		return 0;
	now = reap_now_ns();
	if (now - c->cache_epoch >= c->sync_ns) {
		cache_clear(c);
		c->cache_epoch = now;
	}
	drain_pushes(c);
	if (c->fd < 0)
		return 0;
	e = cache_find(c, ck_hash(o->key, o->klen, field, flen), o->key, o->klen,
		       field, flen);
	if (e == NULL) {
		*fill = true;
		return 0;
	}
	return decode(c, e->data + e->cklen, e->vlen, out) == 0 ? 1 : 0;
}

/* A write to o: our own copy goes at once (the push follows). */
static void cache_wrote(obj *o)
{
	if (o->c->cache)
		cache_drop_key(o->c, o->key, o->klen);
}

/* HGET-like read of field in o. */
static int field_get(obj *o, const char *cmd, const char *field,
		     reap_mgr_value *out, enum kind k)
{
	size_t mark, flen = field != NULL ? strlen(field) : 0;
	const char *f = field != NULL ? field : "";
	bool fill;
	int rc;

	*out = reap_mgr_nil();
	if (cache_get(o, f, flen, out, &fill) == 1)
		return 0;
	if ((rc = key_req(o, &mark, field != NULL ? 3 : 2, cmd)) < 0)
		return rc;
	if (field != NULL)
		rc = out_bulk(o->c, field, flen);
	return finish(o->c, mark, rc, k, out, 0, fill ? o : NULL, f, flen, 0);
}

static int field_set(obj *o, const char *field, const reap_mgr_value *v)
{
	size_t mark;
	int rc = key_req(o, &mark, 4, "HSET");

	if (rc < 0)
		return rc;
	if ((rc = out_str(o->c, field)) == 0)
		rc = out_value(o->c, v);
	cache_wrote(o);
	return finish(o->c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

static int field_del(obj *o, const char *field)
{
	size_t mark;
	int rc = key_req(o, &mark, 3, "HDEL");

	if (rc < 0)
		return rc;
	rc = out_str(o->c, field);
	cache_wrote(o);
	return finish(o->c, mark, rc, K_DEL, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_dict_set(reap_mgr_dict *d, const char *field, reap_mgr_value v)
{
	return field_set(&d->o, field, &v);
}

int reap_mgr_dict_get(reap_mgr_dict *d, const char *field, reap_mgr_value *out)
{
	return field_get(&d->o, "HGET", field, out, K_GET);
}

int reap_mgr_dict_del(reap_mgr_dict *d, const char *field)
{
	return field_del(&d->o, field);
}

int reap_mgr_dict_len(reap_mgr_dict *d, size_t *n)
{
	return key_call(&d->o, "HLEN", K_LEN, n, 0);
}

int reap_mgr_dict_items(reap_mgr_dict *d, reap_mgr_value *out)
{
	*out = reap_mgr_nil();
	return key_call(&d->o, "HGETALL", K_MAP, out, 0);
}

int reap_mgr_dict_incr(reap_mgr_dict *d, const char *field, int64_t delta,
		       int64_t *now)
{
	size_t mark;
	int rc = key_req(&d->o, &mark, 4, "HINCRBY");

	if (rc < 0)
		return rc;
	if ((rc = out_str(d->o.c, field)) == 0)
		rc = out_int(d->o.c, delta);
	cache_wrote(&d->o);
	return finish(d->o.c, mark, rc, K_INT, now, 0, NULL, NULL, 0, 0);
}

int reap_mgr_dict_mset(reap_mgr_dict *d, size_t n, const char *const *fields,
		       const reap_mgr_value *vals)
{
	size_t mark;
	int rc;

	if (n == 0)
		return 0;
	if ((rc = key_req(&d->o, &mark, 2 + 2 * n, "HSET")) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		if ((rc = out_str(d->o.c, fields[i])) == 0)
			rc = out_value(d->o.c, &vals[i]);
	cache_wrote(&d->o);
	return finish(d->o.c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_dict_mget(reap_mgr_dict *d, size_t n, const char *const *fields,
		       reap_mgr_value *out)
{
	size_t mark;
	int rc;

	for (size_t i = 0; i < n; i++)
		out[i] = reap_mgr_nil();
	if (n == 0)
		return 0;
	if ((rc = key_req(&d->o, &mark, 2 + n, "HMGET")) < 0)
		return rc;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = out_str(d->o.c, fields[i]);
	return finish(d->o.c, mark, rc, K_MGET, out, n, NULL, NULL, 0, 0);
}

/* Lists and queues */

static int push(obj *o, const reap_mgr_value *v)
{
	size_t mark;
	int rc = key_req(o, &mark, 3, "RPUSH");

	if (rc < 0)
		return rc;
	rc = out_value(o->c, v);
	return finish(o->c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_list_append(reap_mgr_list *l, reap_mgr_value v)
{
	return push(&l->o, &v);
}

int reap_mgr_list_pop(reap_mgr_list *l, reap_mgr_value *out)
{
	*out = reap_mgr_nil();
	return key_call(&l->o, "RPOP", K_GET, out, 0);
}

int reap_mgr_list_shift(reap_mgr_list *l, reap_mgr_value *out)
{
	*out = reap_mgr_nil();
	return key_call(&l->o, "LPOP", K_GET, out, 0);
}

int reap_mgr_list_len(reap_mgr_list *l, size_t *n)
{
	return key_call(&l->o, "LLEN", K_LEN, n, 0);
}

int reap_mgr_list_range(reap_mgr_list *l, int64_t start, int64_t stop,
			reap_mgr_value *out)
{
	size_t mark;
	int rc;

	*out = reap_mgr_nil();
	if ((rc = key_req(&l->o, &mark, 4, "LRANGE")) < 0)
		return rc;
	if ((rc = out_int(l->o.c, start)) == 0)
		rc = out_int(l->o.c, stop);
	return finish(l->o.c, mark, rc, K_ARRAY, out, 0, NULL, NULL, 0, 0);
}

int reap_mgr_queue_put(reap_mgr_queue *q, reap_mgr_value v)
{
	return push(&q->o, &v);
}

/* A blocking command's timeout argument, in seconds, for a deadline:
 * "0" waits forever in Redis, so a past deadline is a try (not sent
 * here), and the rest is rounded up to the millisecond. */
static int out_timeout(reap_mgr_client *c, uint64_t deadline)
{
	uint64_t now = reap_now_ns(), ms;
	char num[40];
	int n;

	if (deadline == REAP_FOREVER)
		return out_bulk(c, "0", 1);
	ms = deadline > now ? (deadline - now + 999999) / 1000000 : 1;
	n = snprintf(num, sizeof num, "%llu.%03llu", (unsigned long long)(ms / 1000),
		     (unsigned long long)(ms % 1000));
	return out_bulk(c, num, (size_t)n);
}

int reap_mgr_queue_get(reap_mgr_queue *q, reap_mgr_value *out, uint64_t deadline)
{
	size_t mark;
	int rc;

	*out = reap_mgr_nil();
	if (deadline != REAP_FOREVER && deadline <= reap_now_ns()) {
		rc = key_call(&q->o, "LPOP", K_GET, out, 0);
		return rc == -ENOENT ? -ETIMEDOUT : rc;
	}
	if ((rc = key_req(&q->o, &mark, 3, "BLPOP")) < 0)
		return rc;
	rc = out_timeout(q->o.c, deadline);
	return finish(q->o.c, mark, rc, K_BPOP, out, 0, NULL, NULL, 0, deadline);
}

int reap_mgr_queue_len(reap_mgr_queue *q, size_t *n)
{
	return key_call(&q->o, "LLEN", K_LEN, n, 0);
}

/* Counters and vars */

int reap_mgr_counter_add(reap_mgr_counter *k, int64_t delta, int64_t *now)
{
	size_t mark;
	int rc = key_req(&k->o, &mark, 3, "INCRBY");

	if (rc < 0)
		return rc;
	rc = out_int(k->o.c, delta);
	return finish(k->o.c, mark, rc, K_INT, now, 0, NULL, NULL, 0, 0);
}

int reap_mgr_counter_get(reap_mgr_counter *k, int64_t *now)
{
	int rc = key_call(&k->o, "GET", K_GETINT, now, 0);

	if (rc == -EINVAL && k->o.c->err[0] == '\0')
		seterr(k->o.c, "'%s' does not hold an integer", k->o.key);
	return rc;
}

int reap_mgr_counter_set(reap_mgr_counter *k, int64_t v)
{
	size_t mark;
	int rc = key_req(&k->o, &mark, 3, "SET");

	if (rc < 0)
		return rc;
	rc = out_int(k->o.c, v);
	return finish(k->o.c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_var_set(reap_mgr_var *x, reap_mgr_value v)
{
	size_t mark;
	int rc = key_req(&x->o, &mark, 3, "SET");

	if (rc < 0)
		return rc;
	rc = out_value(x->o.c, &v);
	cache_wrote(&x->o);
	return finish(x->o.c, mark, rc, K_OK, NULL, 0, NULL, NULL, 0, 0);
}

int reap_mgr_var_get(reap_mgr_var *x, reap_mgr_value *out)
{
	return field_get(&x->o, "GET", NULL, out, K_GETNIL);
}

/* Locks, semaphores, events, barriers */

static int blocking(obj *o, const char *cmd, enum kind k, void *out,
		    uint64_t deadline)
{
	size_t mark;
	int rc;

	if ((rc = key_req(o, &mark, 3, cmd)) < 0)
		return rc;
	rc = out_timeout(o->c, deadline);
	return finish(o->c, mark, rc, k, out, 0, NULL, NULL, 0, deadline);
}

int reap_mgr_lock_acquire(reap_mgr_lock *l, uint64_t deadline)
{
	return blocking(&l->o, "REAP.LOCK", K_ACQ, NULL, deadline);
}

int reap_mgr_lock_release(reap_mgr_lock *l)
{
	return key_call(&l->o, "REAP.UNLOCK", K_OK, NULL, 0);
}

int reap_mgr_sem_acquire(reap_mgr_sem *m, uint64_t deadline)
{
	return blocking(&m->o, "REAP.ACQUIRE", K_ACQ, NULL, deadline);
}

int reap_mgr_sem_release(reap_mgr_sem *m)
{
	return key_call(&m->o, "REAP.RELEASESEM", K_OK, NULL, 0);
}

int reap_mgr_event_set(reap_mgr_event *e)
{
	return key_call(&e->o, "REAP.SET", K_OK, NULL, 0);
}

int reap_mgr_event_clear(reap_mgr_event *e)
{
	return key_call(&e->o, "REAP.CLEAR", K_OK, NULL, 0);
}

int reap_mgr_event_wait(reap_mgr_event *e, uint64_t deadline)
{
	return blocking(&e->o, "REAP.WAIT", K_ACQ, NULL, deadline);
}

int reap_mgr_barrier_wait(reap_mgr_barrier *b, uint64_t deadline, unsigned *index)
{
	return blocking(&b->o, "REAP.BARRIER", K_INDEX, index, deadline);
}

/* Namespaces */

int reap_mgr_ns_set(reap_mgr_ns *ns, const char *name, reap_mgr_value v)
{
	return field_set(&ns->o, name, &v);
}

int reap_mgr_ns_get(reap_mgr_ns *ns, const char *name, reap_mgr_value *out)
{
	return field_get(&ns->o, "HGET", name, out, K_GET);
}

int reap_mgr_ns_del(reap_mgr_ns *ns, const char *name)
{
	return field_del(&ns->o, name);
}
