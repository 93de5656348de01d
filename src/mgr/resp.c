/*
 * The RESP codec: requests in (server), replies out (both), replies in
 * (client).
 *
 * Invariants.
 *
 * "Need more" is exact and cheap. The request parser keeps, for the
 * command it is in, how many bytes it has parsed (pos) and how far into
 * the current line it has already searched for the terminator (scan).
 * Given the same bytes again with more appended, it resumes there: a
 * header line is searched once, a bulk payload is never scanned at all
 * (its declared length says where it ends), and nothing is copied. The
 * arguments are kept as offsets from the command's first byte while it is
 * incomplete, and turned into pointers into the caller's buffer only when
 * the command is whole, so the caller may move or grow its buffer between
 * calls. The reply parser turns each complete element into a value at
 * once and reports those bytes as consumed; only an element still
 * incomplete (a bulk whose payload has not all arrived) is looked at
 * again, and then only its header.
 *
 * Limits are checked where Redis checks them and in Redis's order, before
 * anything is allocated for the declared size: a count or length is first
 * parsed with an explicit digit loop that refuses an empty field, a '+',
 * a space, a leading zero and anything that does not fit in int64_t, then
 * compared with the absolute limit, then with the pre-authentication one.
 * Storage never follows a declared count blindly: argv starts at
 * min(count, 1024) and grows, an aggregate's elements start at 4 and
 * double, so a short hostile header cannot make us allocate much. The
 * line limits (64 KB) bound how long we wait for a terminator. In the
 * reply parser the nesting depth, the per-aggregate count, the length of
 * one string and the bytes of one reply are all bounded.
 *
 * Errors. A protocol error leaves the parser dead, with the exact reply
 * Redis sends (for requests) in ->err. -ENOMEM leaves the parser in the
 * state it had before the failing step: the call may be retried with the
 * same bytes. Encoder appends are all-or-nothing.
 *
 * Where we follow Redis to the letter (because replies must be
 * byte-identical): a header line's terminator is found by the '\r' alone
 * and the next byte is skipped unchecked, a bulk's trailing two bytes are
 * skipped unchecked, a NUL before the terminator hides it (Redis uses
 * strchr), empty commands (*0, *-1, blank inline lines) are skipped.
 */
#define _GNU_SOURCE
#include "resp.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

enum { ST_START, ST_INLINE, ST_MBULK };
#define SKIP 3 /* internal: an empty command was consumed */

/* ------------------------------------------------------------------ */
/* Numbers                                                              */

/* Redis's string2ll rules: "0", or an optional '-' then a digit 1-9 then
 * digits; nothing else, and no overflow. */
bool reap__resp_parse_ll(const char *p, size_t n, int64_t *out)
{
	uint64_t v;
	size_t i;
	bool neg;

	if (n == 0 || n > 20)
		return false;
	if (n == 1 && p[0] == '0') {
		*out = 0;
		return true;
	}
	neg = p[0] == '-';
	i = neg;
	if (i == n || p[i] < '1' || p[i] > '9')
		return false;
	v = (uint64_t)(p[i++] - '0');
	for (; i < n; i++) {
		unsigned d = (unsigned)(unsigned char)p[i] - '0';

		if (d > 9 || v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	if (neg) {
		if (v > (uint64_t)INT64_MAX + 1)
			return false;
		*out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > (uint64_t)INT64_MAX)
			return false;
		*out = (int64_t)v;
	}
	return true;
}

static const char digits2[201] =
	"0001020304050607080910111213141516171819"
	"2021222324252627282930313233343536373839"
	"4041424344454647484950515253545556575859"
	"6061626364656667686970717273747576777879"
	"8081828384858687888990919293949596979899";

size_t reap__resp_ll2str(char *buf, int64_t sv)
{
	char tmp[24], *e = tmp + sizeof(tmp), *q = e;
	uint64_t v = sv < 0 ? 0 - (uint64_t)sv : (uint64_t)sv;
	size_t n;

	while (v >= 100) {
		unsigned i = (unsigned)(v % 100) * 2;

		v /= 100;
		*--q = digits2[i + 1];
		*--q = digits2[i];
	}
	if (v >= 10) {
		*--q = digits2[v * 2 + 1];
		*--q = digits2[v * 2];
	} else {
		*--q = (char)('0' + v);
	}
	if (sv < 0)
		*--q = '-';
	n = (size_t)(e - q);
	memcpy(buf, q, n);
	return n;
}

/*
 * Redis 7.2+'s d2string: nan, inf, -inf, 0, -0; integral values within
 * +-LLONG_MAX/2 as integers; else the shortest digits that read back as
 * the same double (Redis uses grisu2), laid out as its fpconv_dtoa does:
 * plain when the exponent is small, else d.ddde+X with no exponent
 * padding. Cold path (doubles are rare in replies), so snprintf is used
 * to find the digits.
 */
size_t reap__resp_d2str(char *buf, double d)
{
	char tmp[40], dig[20];
	int nd = 0, e10, K, ex, prec;
	size_t o = 0;
	const char *t;

	if (isnan(d)) {
		memcpy(buf, "nan", 3);
		return 3;
	}
	if (isinf(d)) {
		if (d < 0) {
			memcpy(buf, "-inf", 4);
			return 4;
		}
		memcpy(buf, "inf", 3);
		return 3;
	}
	if (d == 0) {
		if (signbit(d)) {
			memcpy(buf, "-0", 2);
			return 2;
		}
		buf[0] = '0';
		return 1;
	}
	if (d >= -(double)(LLONG_MAX / 2) && d <= (double)(LLONG_MAX / 2)) {
		long long ll = (long long)d;

		if ((double)ll == d)
			return reap__resp_ll2str(buf, ll);
	}
	/* Below DBL_MIN (subnormals) fewer digits may already read back. */
	for (prec = fabs(d) < 2.2250738585072014e-308 ? 1 : 15; prec < 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	if (prec == 17)
		snprintf(tmp, sizeof(tmp), "%.16e", d);
	t = tmp;
	if (*t == '-') {
		buf[o++] = '-';
		t++;
	}
	for (; *t != 'e'; t++)
		if (*t != '.')
			dig[nd++] = *t;
	e10 = atoi(t + 1);
	while (nd > 1 && dig[nd - 1] == '0')
		nd--;
	K = e10 - nd + 1; /* value = digits * 10^K */
	ex = abs(K + nd - 1);
	if (K >= 0 && ex < nd + 7) {
		memcpy(buf + o, dig, (size_t)nd);
		memset(buf + o + nd, '0', (size_t)K);
		return o + (size_t)nd + (size_t)K;
	}
	if (K < 0 && (K > -7 || ex < 4)) {
		int off = nd + K;

		if (off <= 0) {
			buf[o++] = '0';
			buf[o++] = '.';
			memset(buf + o, '0', (size_t)-off);
			o += (size_t)-off;
			memcpy(buf + o, dig, (size_t)nd);
			return o + (size_t)nd;
		}
		memcpy(buf + o, dig, (size_t)off);
		buf[o + (size_t)off] = '.';
		memcpy(buf + o + (size_t)off + 1, dig + off, (size_t)(nd - off));
		return o + (size_t)nd + 1;
	}
	buf[o++] = dig[0];
	if (nd > 1) {
		buf[o++] = '.';
		memcpy(buf + o, dig + 1, (size_t)(nd - 1));
		o += (size_t)(nd - 1);
	}
	buf[o++] = 'e';
	buf[o++] = e10 < 0 ? '-' : '+';
	if (ex > 99)
		buf[o++] = (char)('0' + ex / 100);
	if (ex > 9)
		buf[o++] = (char)('0' + ex / 10 % 10);
	buf[o++] = (char)('0' + ex % 10);
	return o;
}

/* ------------------------------------------------------------------ */
/* Request parser                                                       */

void reap__resp_limits_default(reap__resp_limits *lim)
{
	lim->max_bulk = 512LL * 1024 * 1024;
	lim->max_multibulk = 1024 * 1024;
	lim->max_inline = 64 * 1024;
	lim->max_header = 64 * 1024;
	lim->preauth_multibulk = 10;
	lim->preauth_bulk = 16384;
}

void reap__resp_req_init(reap__resp_req *r, const reap__resp_limits *lim)
{
	memset(r, 0, sizeof(*r));
	if (lim)
		r->lim = *lim;
	else
		reap__resp_limits_default(&r->lim);
	r->bulk = -1;
	r->mbulk = -1;
}

void reap__resp_req_fini(reap__resp_req *r)
{
	reap_free(r->argv);
	reap_free(r->scratch);
	r->argv = NULL;
	r->scratch = NULL;
	r->argv_cap = r->scratch_cap = 0;
	r->argc = 0;
}

#define PERR(s) "-ERR Protocol error: " s "\r\n"

static int proto(reap__resp_req *r, const char *msg)
{
	r->err = msg;
	r->err_len = strlen(msg);
	return REAP__RESP_PROTO;
}

/* "expected '$', got 'c'" formatted as Redis does: \r and \n become
 * spaces, and a NUL cuts the message (sds concatenation stops there). */
static int proto_expected(reap__resp_req *r, char c)
{
	static const char head[] = "-ERR Protocol error: expected '$', got '";
	size_t n = sizeof(head) - 1;

	memcpy(r->errbuf, head, n);
	if (c != '\0') {
		r->errbuf[n++] = c == '\r' || c == '\n' ? ' ' : c;
		r->errbuf[n++] = '\'';
	}
	r->errbuf[n++] = '\r';
	r->errbuf[n++] = '\n';
	r->errbuf[n] = '\0';
	r->err = r->errbuf;
	r->err_len = n;
	return REAP__RESP_PROTO;
}

static int argv_reserve(reap__resp_req *r, size_t want)
{
	reap__resp_arg *a;

	if (likely(want <= r->argv_cap))
		return 0;
	a = reap_realloc(r->argv, want * sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	r->argv = a;
	r->argv_cap = want;
	return 0;
}

/* Room for one more argument, growing by doubling up to the declared
 * count (cap) when there is one. */
static int argv_grow(reap__resp_req *r, size_t cap)
{
	size_t want = r->argv_cap ? r->argv_cap * 2 : 16;

	if (cap && want > cap)
		want = cap;
	return argv_reserve(r, want);
}

/* Where a header line of p[0, n) ends: the offset of its '\r' (Redis
 * finds it with strchr, so a NUL before it hides it), or n if not found;
 * the search resumes at r->scan. */
static size_t find_cr(reap__resp_req *r, const char *p, size_t n)
{
	const char *cr = memchr(p + r->scan, '\r', n - r->scan);

	if (cr == NULL || memchr(p, '\0', (size_t)(cr - p)) != NULL) {
		r->scan = n;
		return n;
	}
	return (size_t)(cr - p);
}

/*
 * The common header, "*N\r" or "$N\r" with N from 1 to 10^17 written
 * without a leading zero, whole (with the byte after its '\r') at the
 * start of q[0, m): the index of its '\r', with N in *ll. 0 sends every
 * other case (a partial line, zero, a sign, a leading zero, too many
 * digits) down the general path, which gives the errors.
 */
static size_t fast_len(const char *q, size_t m, int64_t *ll)
{
	uint64_t v;
	size_t i;

	if (m < 4 || q[1] < '1' || q[1] > '9')
		return 0;
	v = (uint64_t)(q[1] - '0');
	for (i = 2; i < m && i < 18; i++) {
		unsigned d = (unsigned)(unsigned char)q[i] - '0';

		if (d > 9)
			break;
		v = v * 10 + d;
	}
	if (i + 2 > m || q[i] != '\r')
		return 0;
	*ll = (int64_t)v;
	return i;
}

static int parse_mbulk(reap__resp_req *r, const char *p, size_t n)
{
	int64_t ll;
	size_t at;

	if (r->mbulk < 0) {
		if (r->scan != 0 || (at = fast_len(p, n, &ll)) == 0) {
			at = find_cr(r, p, n);
			if (at == n) {
				if (n > r->lim.max_header)
					return proto(r, PERR("too big mbulk count string"));
				return REAP__RESP_MORE;
			}
			if (at + 2 > n) { /* the byte after '\r' */
				r->scan = at;
				return REAP__RESP_MORE;
			}
			if (!reap__resp_parse_ll(p + 1, at - 1, &ll))
				return proto(r, PERR("invalid multibulk length"));
		}
		if (ll > r->lim.max_multibulk)
			return proto(r, PERR("invalid multibulk length"));
		if (!r->authed && ll > r->lim.preauth_multibulk)
			return proto(r, PERR("unauthenticated multibulk length"));
		if (ll <= 0) {
			r->pos = at + 2;
			return SKIP;
		}
		if (argv_reserve(r, ll < 1024 ? (size_t)ll : 1024) < 0)
			return -ENOMEM;
		r->pos = at + 2;
		r->scan = 0;
		r->mbulk = ll;
		r->bulk = -1;
		r->argc = 0;
	}
	while (r->argc < r->mbulk) {
		const char *q = p + r->pos;
		size_t m = n - r->pos;

		if (r->bulk < 0) {
			if (r->scan != 0 || q[0] != '$' ||
			    (at = fast_len(q, m, &ll)) == 0) {
				at = find_cr(r, q, m);
				if (at == m) {
					if (m > r->lim.max_header)
						return proto(r, PERR("too big bulk count string"));
					return REAP__RESP_MORE;
				}
				if (at + 2 > m) {
					r->scan = at;
					return REAP__RESP_MORE;
				}
				if (q[0] != '$')
					return proto_expected(r, q[0]);
				if (!reap__resp_parse_ll(q + 1, at - 1, &ll) || ll < 0)
					return proto(r, PERR("invalid bulk length"));
			}
			if (ll > r->lim.max_bulk)
				return proto(r, PERR("invalid bulk length"));
			if (!r->authed && ll > r->lim.preauth_bulk)
				return proto(r, PERR("unauthenticated bulk length"));
			r->pos += at + 2;
			r->scan = 0;
			r->bulk = ll;
			m -= at + 2;
		}
		/* The payload and the two bytes after it, which Redis skips
		 * without looking. */
		if ((uint64_t)m < (uint64_t)r->bulk + 2)
			return REAP__RESP_MORE;
		if ((size_t)r->argc == r->argv_cap &&
		    argv_grow(r, (size_t)r->mbulk) < 0)
			return -ENOMEM;
		/* An offset for now: the buffer may move before the end. */
		r->argv[r->argc].p = (const char *)(uintptr_t)r->pos;
		r->argv[r->argc].len = (size_t)r->bulk;
		r->argc++;
		r->pos += (size_t)r->bulk + 2;
		r->bulk = -1;
	}
	for (int i = 0; i < r->argc; i++)
		r->argv[i].p = p + (uintptr_t)r->argv[i].p;
	return REAP__RESP_CMD;
}

static bool is_space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

static bool tok_end(char c)
{
	return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int add_arg(reap__resp_req *r, const char *p, size_t len)
{
	if ((size_t)r->argc == r->argv_cap && argv_grow(r, 0) < 0)
		return -ENOMEM;
	r->argv[r->argc].p = p;
	r->argv[r->argc].len = len;
	r->argc++;
	return 0;
}

/*
 * Split an inline line as Redis's sdssplitargs does: blanks (isspace)
 * separate arguments; an unquoted argument ends at ' ', \t, \r or \n; a
 * double-quoted part takes \n \r \t \b \a \xHH and \<c> escapes, a
 * single-quoted part only \'; a closing quote must be followed by a blank
 * or the end; an unclosed quote is an error. Plain arguments point into
 * the line; the others are decoded into r->scratch, sized for the line
 * first so that pointers into it stay valid.
 */
static int split_inline(reap__resp_req *r, const char *s, size_t n)
{
	size_t i = 0, sc = 0;

	if (n > r->scratch_cap) {
		char *ns = reap_realloc(r->scratch, n);

		if (ns == NULL)
			return -ENOMEM;
		r->scratch = ns;
		r->scratch_cap = n;
	}
	r->argc = 0;
	for (;;) {
		size_t t;
		char *d;
		size_t dl;

		while (i < n && is_space(s[i]))
			i++;
		if (i == n)
			return 0;
		t = i;
		while (t < n && !tok_end(s[t]) && s[t] != '"' && s[t] != '\'')
			t++;
		if (t == n || tok_end(s[t])) {
			if (add_arg(r, s + i, t - i) < 0)
				return -ENOMEM;
			i = t;
			continue;
		}
		d = r->scratch + sc;
		dl = t - i;
		memcpy(d, s + i, dl);
		i = t + 1;
		if (s[t] == '"') {
			for (;;) {
				int h, l;

				if (i == n)
					return proto(r, PERR("unbalanced quotes in request"));
				if (s[i] == '\\' && i + 3 < n &&
				    s[i + 1] == 'x' && (h = hexval(s[i + 2])) >= 0 &&
				    (l = hexval(s[i + 3])) >= 0) {
					d[dl++] = (char)(h * 16 + l);
					i += 4;
				} else if (s[i] == '\\' && i + 1 < n) {
					char c = s[i + 1];

					switch (c) {
					case 'n': c = '\n'; break;
					case 'r': c = '\r'; break;
					case 't': c = '\t'; break;
					case 'b': c = '\b'; break;
					case 'a': c = '\a'; break;
					default: break;
					}
					d[dl++] = c;
					i += 2;
				} else if (s[i] == '"') {
					if (i + 1 < n && !is_space(s[i + 1]))
						return proto(r, PERR("unbalanced quotes in request"));
					i++;
					break;
				} else {
					d[dl++] = s[i++];
				}
			}
		} else {
			for (;;) {
				if (i == n)
					return proto(r, PERR("unbalanced quotes in request"));
				if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\'') {
					d[dl++] = '\'';
					i += 2;
				} else if (s[i] == '\'') {
					if (i + 1 < n && !is_space(s[i + 1]))
						return proto(r, PERR("unbalanced quotes in request"));
					i++;
					break;
				} else {
					d[dl++] = s[i++];
				}
			}
		}
		if (add_arg(r, d, dl) < 0)
			return -ENOMEM;
		sc += dl;
	}
}

static int parse_inline(reap__resp_req *r, const char *p, size_t n)
{
	const char *nl = memchr(p + r->scan, '\n', n - r->scan);
	size_t end;
	int rc;

	/* Redis searches with strchr: a NUL before the '\n' hides it. */
	if (nl == NULL || memchr(p, '\0', (size_t)(nl - p)) != NULL) {
		/* over the limit, unless the last byte is a '\r' that the
		 * '\n' still to come would strip */
		if (n > r->lim.max_inline &&
		    !(n == r->lim.max_inline + 1 && p[n - 1] == '\r' && nl == NULL))
			return proto(r, PERR("too big inline request"));
		r->scan = n;
		return REAP__RESP_MORE;
	}
	end = (size_t)(nl - p);
	if (end > 0 && p[end - 1] == '\r')
		end--;
	/* Redis only checks while the '\n' has not arrived, which makes the
	 * outcome depend on how the line was split into reads; refusing
	 * every line over the limit is the deterministic form of it. */
	if (end > r->lim.max_inline)
		return proto(r, PERR("too big inline request"));
	rc = split_inline(r, p, end);
	if (rc != 0)
		return rc;
	r->pos = (size_t)(nl - p) + 1;
	if (r->argc == 0)
		return SKIP;
	/* Redis leaves inline requests to the 64 KB line limit; we hold
	 * them to the pre-authentication limits too. */
	if (!r->authed) {
		if (r->argc > r->lim.preauth_multibulk)
			return proto(r, PERR("unauthenticated multibulk length"));
		for (int i = 0; i < r->argc; i++)
			if ((int64_t)r->argv[i].len > r->lim.preauth_bulk)
				return proto(r, PERR("unauthenticated bulk length"));
	}
	return REAP__RESP_CMD;
}

int reap__resp_req_parse(reap__resp_req *r, const char *buf, size_t len,
			 size_t *consumed)
{
	size_t base = 0;
	int rc;

	*consumed = 0;
	if (r->err)
		return REAP__RESP_PROTO;
	for (;;) {
		size_t n = len - base;
		const char *p;

		if (n == 0 && (r->state == ST_START || buf == NULL)) {
			*consumed = base;
			return REAP__RESP_MORE;
		}
		p = buf + base;
		if (r->state == ST_START) {
			r->state = p[0] == '*' ? ST_MBULK : ST_INLINE;
			r->pos = r->scan = 0;
			r->mbulk = r->bulk = -1;
			r->argc = 0;
		}
		if (unlikely(r->scan > n)) /* the caller broke the contract */
			r->scan = 0;
		rc = r->state == ST_MBULK ? parse_mbulk(r, p, n)
					  : parse_inline(r, p, n);
		switch (rc) {
		case SKIP:
			base += r->pos;
			r->state = ST_START;
			continue;
		case REAP__RESP_CMD:
			*consumed = base + r->pos;
			r->state = ST_START;
			return rc;
		case REAP__RESP_PROTO:
			r->argc = 0;
			return rc;
		default: /* MORE, -ENOMEM */
			*consumed = base;
			return rc;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Reply encoder                                                        */

void reap__resp_buf_init(reap__resp_buf *b, int proto_, size_t limit)
{
	b->data = NULL;
	b->len = b->cap = 0;
	b->limit = limit;
	b->proto = proto_;
}

void reap__resp_buf_fini(reap__resp_buf *b)
{
	reap_free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}

static int grow(reap__resp_buf *b, size_t n)
{
	size_t cap;
	char *d;

	if (b->limit && (b->len > b->limit || n > b->limit - b->len))
		return -ENOBUFS;
	if (n > SIZE_MAX / 2 - b->len)
		return -ENOMEM;
	cap = b->cap ? b->cap * 2 : 256;
	if (cap < b->len + n)
		cap = b->len + n;
	d = reap_realloc(b->data, cap);
	if (d == NULL)
		return -ENOMEM;
	b->data = d;
	b->cap = cap;
	return 0;
}

/* Room for n more bytes; the limit applies even when the capacity is
 * there already. */
static inline int reserve(reap__resp_buf *b, size_t n)
{
	if (likely(n <= b->cap - b->len) &&
	    (b->limit == 0 || b->len + n <= b->limit))
		return 0;
	return grow(b, n);
}

int reap__resp_reserve(reap__resp_buf *b, size_t n)
{
	return reserve(b, n);
}

int reap__resp_raw(reap__resp_buf *b, const void *p, size_t n)
{
	int rc = reserve(b, n);

	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* "<t><n>\r\n" */
static int header(reap__resp_buf *b, char t, int64_t n)
{
	char s[24];
	size_t k;
	int rc;

	s[0] = t;
	k = 1 + reap__resp_ll2str(s + 1, n);
	s[k++] = '\r';
	s[k++] = '\n';
	rc = reserve(b, k);
	if (rc < 0)
		return rc;
	memcpy(b->data + b->len, s, k);
	b->len += k;
	return 0;
}

/* "<t><s>\r\n" with \r and \n in s turned into spaces (they would end
 * the line early: that is how protocol is injected). */
static int line(reap__resp_buf *b, const char *pre, size_t pn, const char *s,
		size_t n)
{
	int rc;
	char *o;

	if (n > SIZE_MAX - 16)
		return -ENOMEM;
	rc = reserve(b, pn + n + 2);
	if (rc < 0)
		return rc;
	o = b->data + b->len;
	memcpy(o, pre, pn);
	memcpy(o + pn, s, n);
	for (size_t i = 0; i < n; i++)
		if (o[pn + i] == '\r' || o[pn + i] == '\n')
			o[pn + i] = ' ';
	o[pn + n] = '\r';
	o[pn + n + 1] = '\n';
	b->len += pn + n + 2;
	return 0;
}

int reap__resp_status(reap__resp_buf *b, const char *s, size_t n)
{
	return line(b, "+", 1, s, n);
}

int reap__resp_error(reap__resp_buf *b, const char *s, size_t n)
{
	if (n == 0 || s[0] != '-')
		return line(b, "-ERR ", 5, s, n);
	return line(b, "", 0, s, n);
}

int reap__resp_int(reap__resp_buf *b, int64_t v)
{
	return header(b, ':', v);
}

/* "<t><n>\r\n<pre><p>\r\n" */
static int blob(reap__resp_buf *b, char t, const char *pre, size_t pn,
		const void *p, size_t n)
{
	int rc;
	char *o;

	char h[24];
	size_t k;

	if (n > SIZE_MAX / 2)
		return -ENOMEM;
	h[0] = t;
	k = 1 + reap__resp_ll2str(h + 1, (int64_t)(pn + n));
	h[k++] = '\r';
	h[k++] = '\n';
	rc = reserve(b, k + pn + n + 2);
	if (rc < 0)
		return rc;
	o = b->data + b->len;
	memcpy(o, h, k);
	o += k;
	memcpy(o, pre, pn);
	o += pn;
	if (n)
		memcpy(o, p, n);
	o += n;
	*o++ = '\r';
	*o++ = '\n';
	b->len = (size_t)(o - b->data);
	return 0;
}

int reap__resp_bulk(reap__resp_buf *b, const void *p, size_t n)
{
	return blob(b, '$', "", 0, p, n);
}

int reap__resp_null(reap__resp_buf *b)
{
	if (b->proto >= 3)
		return reap__resp_raw(b, "_\r\n", 3);
	return reap__resp_raw(b, "$-1\r\n", 5);
}

int reap__resp_null_array(reap__resp_buf *b)
{
	if (b->proto >= 3)
		return reap__resp_raw(b, "_\r\n", 3);
	return reap__resp_raw(b, "*-1\r\n", 5);
}

int reap__resp_array(reap__resp_buf *b, int64_t n)
{
	return header(b, '*', n);
}

int reap__resp_map(reap__resp_buf *b, int64_t pairs)
{
	if (b->proto >= 3)
		return header(b, '%', pairs);
	if (pairs > INT64_MAX / 2 || pairs < 0)
		return -EINVAL;
	return header(b, '*', pairs * 2);
}

int reap__resp_set(reap__resp_buf *b, int64_t n)
{
	return header(b, b->proto >= 3 ? '~' : '*', n);
}

int reap__resp_push(reap__resp_buf *b, int64_t n)
{
	return header(b, b->proto >= 3 ? '>' : '*', n);
}

int reap__resp_attr(reap__resp_buf *b, int64_t pairs)
{
	if (b->proto < 3)
		return -EINVAL;
	return header(b, '|', pairs);
}

int reap__resp_double(reap__resp_buf *b, double d)
{
	char s[48];
	size_t n = reap__resp_d2str(s, d);

	if (b->proto >= 3)
		return line(b, ",", 1, s, n);
	return blob(b, '$', "", 0, s, n);
}

int reap__resp_bool(reap__resp_buf *b, bool v)
{
	if (b->proto >= 3)
		return reap__resp_raw(b, v ? "#t\r\n" : "#f\r\n", 4);
	return reap__resp_raw(b, v ? ":1\r\n" : ":0\r\n", 4);
}

int reap__resp_verbatim(reap__resp_buf *b, const char *fmt, const void *p,
			size_t n)
{
	char pre[4];

	if (b->proto < 3)
		return blob(b, '$', "", 0, p, n);
	memcpy(pre, fmt, 3);
	pre[3] = ':';
	return blob(b, '=', pre, 4, p, n);
}

int reap__resp_bignum(reap__resp_buf *b, const char *p, size_t n)
{
	if (b->proto < 3)
		return blob(b, '$', "", 0, p, n);
	return line(b, "(", 1, p, n);
}

/* ------------------------------------------------------------------ */
/* Reply parser                                                         */

struct reap__resp_frame {
	reap__resp_value *v; /* the aggregate being filled */
	size_t need;         /* its element count */
	size_t cap;          /* its allocated elements */
};

void reap__resp_rlimits_default(reap__resp_rlimits *lim)
{
	lim->max_depth = 64;
	lim->max_elems = 1 << 24;
	lim->max_bulk = 512LL * 1024 * 1024;
	lim->max_line = 64 * 1024;
	lim->max_total = (size_t)1 << 30;
}

void reap__resp_reader_init(reap__resp_reader *r, const reap__resp_rlimits *lim)
{
	memset(r, 0, sizeof(*r));
	if (lim)
		r->lim = *lim;
	else
		reap__resp_rlimits_default(&r->lim);
}

static void value_clear(reap__resp_value *v)
{
	switch (v->type) {
	case REAP__RESP_STRING:
	case REAP__RESP_STATUS:
	case REAP__RESP_ERROR:
	case REAP__RESP_VERBATIM:
	case REAP__RESP_BIGNUM:
		reap_free(v->str.p);
		break;
	case REAP__RESP_ARRAY:
	case REAP__RESP_SET:
	case REAP__RESP_PUSH:
	case REAP__RESP_MAP:
	case REAP__RESP_ATTR:
		for (size_t i = 0; i < v->agg.n; i++)
			value_clear(&v->agg.v[i]);
		reap_free(v->agg.v);
		break;
	default:
		break;
	}
}

void reap__resp_value_free(reap__resp_value *v)
{
	if (v == NULL)
		return;
	value_clear(v);
	reap_free(v);
}

static void reader_reset(reap__resp_reader *r)
{
	reap__resp_value_free(r->root);
	r->root = NULL;
	r->depth = 0;
	r->total = 0;
	r->scan = 0;
}

void reap__resp_reader_fini(reap__resp_reader *r)
{
	reader_reset(r);
	reap_free(r->stack);
	r->stack = NULL;
}

static int rproto(reap__resp_reader *r, const char *msg)
{
	reader_reset(r);
	r->dead = true;
	r->err = msg;
	return REAP__RESP_PROTO;
}

static bool is_agg(reap__resp_type t)
{
	return t >= REAP__RESP_ARRAY;
}

/* The slot the next value goes to: the root, or the next element of the
 * innermost aggregate (grown by doubling up to its declared count). The
 * slot is not counted until the caller fills it. */
static reap__resp_value *next_slot(reap__resp_reader *r)
{
	struct reap__resp_frame *f;

	if (r->depth == 0) {
		if (r->root == NULL)
			r->root = reap_malloc(sizeof(*r->root));
		return r->root;
	}
	f = &r->stack[r->depth - 1];
	if (f->v->agg.n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 4;
		reap__resp_value *a;

		if (cap > f->need)
			cap = f->need;
		a = reap_realloc(f->v->agg.v, cap * sizeof(*a));
		if (a == NULL)
			return NULL;
		f->v->agg.v = a;
		f->cap = cap;
	}
	return &f->v->agg.v[f->v->agg.n];
}

static char *dup_bytes(const char *p, size_t n)
{
	char *s = reap_malloc(n + 1);

	if (s) {
		memcpy(s, p, n);
		s[n] = '\0';
	}
	return s;
}

static bool valid_bignum(const char *s, size_t n)
{
	size_t i = n && s[0] == '-';

	if (i == n)
		return false;
	for (; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

static bool parse_double(const char *s, size_t n, double *out)
{
	char tmp[64], *end;

	if (n == 0 || n >= sizeof(tmp) || is_space(s[0]))
		return false;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	*out = strtod(tmp, &end);
	return end == tmp + n;
}

int reap__resp_reader_parse(reap__resp_reader *r, const char *buf, size_t len,
			    size_t *consumed, reap__resp_value **out)
{
	size_t pos = 0;

	*consumed = 0;
	*out = NULL;
	if (r->dead)
		return REAP__RESP_PROTO;
	if (r->stack == NULL) {
		r->stack = reap_malloc((r->lim.max_depth + 1) * sizeof(*r->stack));
		if (r->stack == NULL)
			return -ENOMEM;
	}
	for (;;) {
		const char *p, *s, *cr;
		size_t n = len - pos, at, sl, used, count = 0;
		reap__resp_value v, *slot;
		int64_t ll;

		if (n == 0)
			break;
		p = buf + pos;
		if (unlikely(r->scan > n))
			r->scan = 0;
		cr = memchr(p + r->scan, '\r', n - r->scan);
		if (cr == NULL) {
			if (n - 1 > r->lim.max_line)
				return rproto(r, "line too long");
			r->scan = n;
			break;
		}
		at = (size_t)(cr - p);
		if (at + 1 >= n) {
			r->scan = at;
			break;
		}
		if (p[at + 1] != '\n')
			return rproto(r, "expected CRLF");
		s = p + 1;
		sl = at - (at > 0);
		if (at == 0 || sl > r->lim.max_line)
			return rproto(r, at == 0 ? "unknown type byte" : "line too long");
		used = at + 2;
		memset(&v, 0, sizeof(v));
		switch (p[0]) {
		case '+':
		case '-':
		case '(':
			if (p[0] == '(' && !valid_bignum(s, sl))
				return rproto(r, "invalid big number");
			v.type = p[0] == '+' ? REAP__RESP_STATUS
			       : p[0] == '-' ? REAP__RESP_ERROR : REAP__RESP_BIGNUM;
			v.str.len = sl;
			break;
		case ':':
			if (!reap__resp_parse_ll(s, sl, &v.i))
				return rproto(r, "invalid integer");
			v.type = REAP__RESP_INT;
			break;
		case ',':
			if (!parse_double(s, sl, &v.d))
				return rproto(r, "invalid double");
			v.type = REAP__RESP_DOUBLE;
			break;
		case '#':
			if (sl != 1 || (s[0] != 't' && s[0] != 'f'))
				return rproto(r, "invalid boolean");
			v.type = REAP__RESP_BOOL;
			v.b = s[0] == 't';
			break;
		case '_':
			if (sl != 0)
				return rproto(r, "invalid null");
			v.type = REAP__RESP_NIL;
			break;
		case '$':
		case '!':
		case '=':
			if (!reap__resp_parse_ll(s, sl, &ll) || ll < -1 ||
			    (ll == -1 && p[0] != '$'))
				return rproto(r, "invalid bulk length");
			if (ll == -1) {
				v.type = REAP__RESP_NIL;
				break;
			}
			if (ll > r->lim.max_bulk)
				return rproto(r, "bulk too long");
			if ((uint64_t)(n - used) < (uint64_t)ll + 2) {
				if (r->total + used + (size_t)ll + 2 > r->lim.max_total)
					return rproto(r, "reply too big");
				r->scan = at;
				goto more;
			}
			if (p[used + (size_t)ll] != '\r' || p[used + (size_t)ll + 1] != '\n')
				return rproto(r, "expected CRLF");
			s = p + used;
			sl = (size_t)ll;
			used += (size_t)ll + 2;
			v.type = p[0] == '$' ? REAP__RESP_STRING
			       : p[0] == '!' ? REAP__RESP_ERROR : REAP__RESP_VERBATIM;
			if (p[0] == '=') {
				if (sl < 4 || s[3] != ':')
					return rproto(r, "invalid verbatim string");
				memcpy(v.str.fmt, s, 3);
				s += 4;
				sl -= 4;
			}
			v.str.len = sl;
			break;
		case '*':
		case '~':
		case '>':
		case '%':
		case '|':
			if (!reap__resp_parse_ll(s, sl, &ll) || ll < -1 ||
			    (ll == -1 && p[0] != '*'))
				return rproto(r, "invalid aggregate length");
			if (ll == -1) {
				v.type = REAP__RESP_NIL;
				break;
			}
			v.type = p[0] == '*' ? REAP__RESP_ARRAY
			       : p[0] == '~' ? REAP__RESP_SET
			       : p[0] == '>' ? REAP__RESP_PUSH
			       : p[0] == '%' ? REAP__RESP_MAP : REAP__RESP_ATTR;
			if (v.type >= REAP__RESP_MAP) {
				if (ll > r->lim.max_elems / 2)
					return rproto(r, "too many elements");
				count = (size_t)ll * 2 + (v.type == REAP__RESP_ATTR);
			} else {
				if (ll > r->lim.max_elems)
					return rproto(r, "too many elements");
				count = (size_t)ll;
			}
			if (count > 0 && r->depth >= r->lim.max_depth)
				return rproto(r, "nesting too deep");
			break;
		default:
			return rproto(r, "unknown type byte");
		}
		if (used > r->lim.max_total - r->total)
			return rproto(r, "reply too big");
		if (!is_agg(v.type) && v.type >= REAP__RESP_STRING) {
			v.str.p = dup_bytes(s, v.str.len);
			if (v.str.p == NULL)
				goto nomem;
		}
		slot = next_slot(r);
		if (slot == NULL) {
			if (!is_agg(v.type))
				value_clear(&v);
			goto nomem;
		}
		*slot = v;
		if (r->depth > 0)
			r->stack[r->depth - 1].v->agg.n++;
		if (count > 0) {
			struct reap__resp_frame *f = &r->stack[r->depth++];

			f->v = slot;
			f->need = count;
			f->cap = 0;
		}
		pos += used;
		r->total += used;
		r->scan = 0;
		while (r->depth > 0 &&
		       r->stack[r->depth - 1].v->agg.n == r->stack[r->depth - 1].need)
			r->depth--;
		if (r->depth == 0) {
			*out = r->root;
			r->root = NULL;
			r->total = 0;
			*consumed = pos;
			return REAP__RESP_VALUE;
		}
	}
more:
	*consumed = pos;
	return REAP__RESP_MORE;
nomem:
	/* What was parsed before stays parsed: the caller drops it. */
	*consumed = pos;
	return -ENOMEM;
}
