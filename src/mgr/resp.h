/*
 * The RESP codec of the manager: the server's request parser, the reply
 * encoder shared by server and client, and the client's reply parser.
 * Internal to the mgr layer; nothing here is part of the API.
 *
 * Buffer contract of both parsers: each call is given the bytes not yet
 * consumed (the same bytes as the call before, with more appended), and
 * reports in *consumed how many the caller must drop before the next call.
 * Results are >= 0 (REAP__RESP_MORE, _CMD / _VALUE, _PROTO) or -ENOMEM; a
 * failed allocation leaves the parser as it was, so the call may be
 * retried. After _PROTO the parser is dead: send the error, then close.
 * Thread safety: a parser or buffer belongs to one thread at a time.
 */
#ifndef REAP_MGR_RESP_H
#define REAP_MGR_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "reap.h"

#pragma GCC visibility push(hidden)

enum {
	REAP__RESP_MORE = 0,  /* need more bytes */
	REAP__RESP_CMD = 1,   /* a command is ready (request parser) */
	REAP__RESP_VALUE = 1, /* a value is ready (reply parser) */
	REAP__RESP_PROTO = 2, /* protocol error: see ->err */
};

/* ------------------------------------------------------------------ */
/* Request parser (server side)                                         */

/*
 * Limits on what a client may send; reap__resp_limits_default() fills in
 * Redis's defaults. The preauth_* limits apply while the connection is not
 * authenticated (reap__resp_req.authed false), as in Redis 7.2+.
 */
typedef struct reap__resp_limits {
	int64_t max_bulk;          /* proto-max-bulk-len, 512 MB */
	int64_t max_multibulk;     /* 1024*1024 arguments */
	size_t max_inline;         /* 64 KB inline line */
	size_t max_header;         /* 64 KB "*N" / "$N" line */
	int64_t preauth_multibulk; /* 10 */
	int64_t preauth_bulk;      /* 16384 */
} reap__resp_limits;

void reap__resp_limits_default(reap__resp_limits *lim);

/* One argument: points into the caller's buffer, or into the parser's own
 * scratch for inline arguments that held quotes or escapes. Valid until
 * the next call on the parser. */
typedef struct reap__resp_arg {
	const char *p;
	size_t len;
} reap__resp_arg;

/* ASCII lower case, as Redis's strcasecmp on names (no locale). */
static inline char reap__resp_lc(char c)
{
	return c >= 'A' && c <= 'Z' ? (char)(c + ('a' - 'A')) : c;
}

/* Is the argument the literal s, ignoring ASCII case (either side)? */
static inline bool reap__resp_arg_is(const reap__resp_arg *a, const char *s)
{
	size_t n = strlen(s);

	if (a->len != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (reap__resp_lc(a->p[i]) != reap__resp_lc(s[i]))
			return false;
	return true;
}

typedef struct reap__resp_req {
	reap__resp_limits lim;
	bool authed;            /* set by the caller after AUTH/HELLO */
	/* the command, after _CMD */
	int argc;
	reap__resp_arg *argv;
	/* the reply to send, after _PROTO: "-ERR Protocol error: ...\r\n" */
	const char *err;
	size_t err_len;
	/* private */
	int state;              /* 0 start, 1 inline, 2 multibulk */
	size_t pos;             /* bytes of the command already parsed */
	size_t scan;            /* line bytes already searched for '\r'/'\n' */
	int64_t mbulk;          /* arguments still expected */
	int64_t bulk;           /* length of the pending argument, -1 none */
	size_t argv_cap;
	char *scratch;
	size_t scratch_cap;
	char errbuf[96];
} reap__resp_req;

/* Ownership: lim is copied (NULL: the defaults); the parser owns its
 * argv and scratch until reap__resp_req_fini. */
void reap__resp_req_init(reap__resp_req *r, const reap__resp_limits *lim);
void reap__resp_req_fini(reap__resp_req *r);

/*
 * Parse one command from buf[0, len). Returns REAP__RESP_CMD with r->argc,
 * r->argv set (argc >= 1); REAP__RESP_MORE; REAP__RESP_PROTO with r->err
 * set; or -ENOMEM. In every case *consumed is what the caller drops (the
 * command, empty commands skipped before it; on MORE only skipped empty
 * commands; 0 on an error). Borrows buf; argv points into it.
 */
REAP_NODISCARD int reap__resp_req_parse(reap__resp_req *r, const char *buf,
					size_t len, size_t *consumed);

/* ------------------------------------------------------------------ */
/* Reply encoder                                                        */

typedef struct reap__resp_buf {
	char *data;
	size_t len, cap;
	size_t limit;   /* appends beyond it fail with -ENOBUFS; 0: none */
	int proto;      /* 2 or 3 */
} reap__resp_buf;

/* Ownership: the buffer owns data until fini (or until the caller takes
 * it and zeroes the fields). */
void reap__resp_buf_init(reap__resp_buf *b, int proto, size_t limit);
void reap__resp_buf_fini(reap__resp_buf *b);

/*
 * Each append writes the whole item or nothing: 0, -ENOMEM, or -ENOBUFS
 * past the limit. The RESP2 forms are Redis's: null is $-1, null_array is
 * *-1, a map is a flat array of 2n, a set or push an array, a boolean the
 * integer 1 or 0, a double and a big number bulk strings, a verbatim
 * string a plain bulk string. attr is RESP3 only (-EINVAL under RESP2:
 * Redis omits attributes there, so callers skip them).
 */
REAP_NODISCARD int reap__resp_raw(reap__resp_buf *b, const void *p, size_t n);
/* "+s": \r and \n in s become spaces. */
REAP_NODISCARD int reap__resp_status(reap__resp_buf *b, const char *s, size_t n);
/* "-ERR s" or, when s starts with '-', "s" (Redis's addReplyError); \r
 * and \n become spaces. */
REAP_NODISCARD int reap__resp_error(reap__resp_buf *b, const char *s, size_t n);
REAP_NODISCARD int reap__resp_int(reap__resp_buf *b, int64_t v);
REAP_NODISCARD int reap__resp_bulk(reap__resp_buf *b, const void *p, size_t n);
REAP_NODISCARD int reap__resp_null(reap__resp_buf *b);
REAP_NODISCARD int reap__resp_null_array(reap__resp_buf *b);
REAP_NODISCARD int reap__resp_array(reap__resp_buf *b, int64_t n);
REAP_NODISCARD int reap__resp_map(reap__resp_buf *b, int64_t pairs);
REAP_NODISCARD int reap__resp_set(reap__resp_buf *b, int64_t n);
REAP_NODISCARD int reap__resp_push(reap__resp_buf *b, int64_t n);
REAP_NODISCARD int reap__resp_attr(reap__resp_buf *b, int64_t pairs);
REAP_NODISCARD int reap__resp_double(reap__resp_buf *b, double d);
REAP_NODISCARD int reap__resp_bool(reap__resp_buf *b, bool v);
/* fmt is three bytes, such as "txt". */
REAP_NODISCARD int reap__resp_verbatim(reap__resp_buf *b, const char *fmt,
				       const void *p, size_t n);
REAP_NODISCARD int reap__resp_bignum(reap__resp_buf *b, const char *p, size_t n);

/* Make room for n more bytes (the limit applies), so that appends of at
 * most n bytes after it cannot fail: 0, -ENOMEM or -ENOBUFS. */
REAP_NODISCARD int reap__resp_reserve(reap__resp_buf *b, size_t n);

/* Decimal forms, written without snprintf; buf holds at least 24 bytes
 * (ll2str) or 32 (d2str). Returns the length written (no NUL). */
size_t reap__resp_ll2str(char *buf, int64_t v);
size_t reap__resp_d2str(char *buf, double d);
/* Redis's string2ll, the one parser of integers in requests and replies:
 * the whole of p[0, n), "0" or an optional '-' then no leading zero
 * ("-0" is refused), within int64; *out is untouched on false. */
bool reap__resp_parse_ll(const char *p, size_t n, int64_t *out);

/* ------------------------------------------------------------------ */
/* Reply parser (client side)                                           */

typedef enum reap__resp_type {
	REAP__RESP_NIL,      /* $-1, *-1, _ */
	REAP__RESP_INT,      /* : */
	REAP__RESP_DOUBLE,   /* , */
	REAP__RESP_BOOL,     /* # */
	REAP__RESP_STRING,   /* $ */
	REAP__RESP_STATUS,   /* + */
	REAP__RESP_ERROR,    /* - and ! */
	REAP__RESP_VERBATIM, /* = (str.fmt holds the format) */
	REAP__RESP_BIGNUM,   /* ( */
	REAP__RESP_ARRAY,    /* * */
	REAP__RESP_SET,      /* ~ */
	REAP__RESP_PUSH,     /* > */
	REAP__RESP_MAP,      /* %: agg.n is 2 * pairs, keys and values alternate */
	REAP__RESP_ATTR,     /* |: agg.n is 2 * pairs + 1; the last element is
			      * the value the attribute annotates */
} reap__resp_type;

typedef struct reap__resp_value reap__resp_value;
struct reap__resp_value {
	reap__resp_type type;
	union {
		int64_t i;
		double d;
		bool b;
		struct {
			char *p;        /* owned, NUL-terminated */
			size_t len;
			char fmt[4];    /* verbatim only */
		} str;
		struct {
			reap__resp_value *v; /* owned array */
			size_t n;
		} agg;
	};
};

typedef struct reap__resp_rlimits {
	size_t max_depth;  /* nesting of aggregates, 64 */
	int64_t max_elems; /* elements of one aggregate, 1 << 24 */
	int64_t max_bulk;  /* one string, 512 MB */
	size_t max_line;   /* one simple line, 64 KB */
	size_t max_total;  /* bytes of one reply, 1 GB */
} reap__resp_rlimits;

void reap__resp_rlimits_default(reap__resp_rlimits *lim);

struct reap__resp_frame;

typedef struct reap__resp_reader {
	reap__resp_rlimits lim;
	const char *err;        /* after _PROTO */
	/* private */
	reap__resp_value *root;
	struct reap__resp_frame *stack;
	size_t depth;
	size_t scan;
	size_t total;
	bool dead;
} reap__resp_reader;

/* Ownership: lim is copied (NULL: the defaults). */
void reap__resp_reader_init(reap__resp_reader *r, const reap__resp_rlimits *lim);
void reap__resp_reader_fini(reap__resp_reader *r);

/*
 * Parse one reply from buf[0, len). Returns REAP__RESP_VALUE with *out set
 * (the caller owns it and frees it with reap__resp_value_free);
 * REAP__RESP_MORE (the part already parsed is kept); REAP__RESP_PROTO
 * with r->err set; or -ENOMEM. *consumed is what the caller drops: the
 * elements already turned into values, on MORE too. Borrows buf.
 */
REAP_NODISCARD int reap__resp_reader_parse(reap__resp_reader *r, const char *buf,
					   size_t len, size_t *consumed,
					   reap__resp_value **out);

/* Takes v (NULL is allowed) and everything under it. */
void reap__resp_value_free(reap__resp_value *v);

#pragma GCC visibility pop

#endif
