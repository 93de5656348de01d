/*
 * Typed values of the manager's client: encoding, decoding and the
 * value API (see value.h for the wire form).
 *
 * A decoded value lives in one block: the value nodes of its arrays and
 * maps first, then the bytes of its strings, each NUL-terminated. The
 * decoder measures the string in a first pass and fills the block in a
 * second, so a decode costs one allocation whatever its shape (plus one
 * per user object, made by its codec). The top value's mem_ points to
 * the block.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../base/internal.h"
#include "resp.h"
#include "value.h"

#define TAG 0xff

static void fail(char *err, size_t errlen, const char *fmt, ...) REAP_PRINTF(3, 4);
static void fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Buffers                                                              */

void reap__mgr_buf_init(reap_mgr_buf *b)
{
	b->p = NULL;
	b->len = b->cap = 0;
}

void reap__mgr_buf_fini(reap_mgr_buf *b)
{
	reap_free(b->p);
	reap__mgr_buf_init(b);
}

int reap__mgr_buf_reserve(reap_mgr_buf *b, size_t n)
{
	size_t cap;
	char *p;

	if (n <= b->cap - b->len)
		return 0;
	if (n > REAP__MGR_BUF_MAX || b->len > REAP__MGR_BUF_MAX - n)
		return -E2BIG;
	cap = b->cap ? b->cap : 64;
	while (cap - b->len < n)
		cap *= 2;
	if ((p = reap_realloc(b->p, cap)) == NULL)
		return -ENOMEM;
	b->p = p;
	b->cap = cap;
	return 0;
}

int reap_mgr_buf_append(reap_mgr_buf *b, const void *p, size_t n)
{
	int rc;

	if (n == 0)
		return 0;
	if (p == NULL)
		return -EINVAL;
	if ((rc = reap__mgr_buf_reserve(b, n)) < 0)
		return rc;
	memcpy(b->p + b->len, p, n);
	b->len += n;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Scalars                                                              */

size_t reap__mgr_d2s(char *buf, double d)
{
	int prec, n = 0;

	if (isnan(d)) {
		memcpy(buf, "nan", 3);
		return 3;
	}
	if (isinf(d)) {
		memcpy(buf, d < 0 ? "-inf" : "inf", d < 0 ? 4 : 3);
		return d < 0 ? 4 : 3;
	}
	for (prec = 15; prec <= 17; prec++) {
		n = snprintf(buf, 32, "%.*g", prec, d);
		if (prec == 17 || strtod(buf, NULL) == d)
			break;
	}
	if (strpbrk(buf, ".e") == NULL) {
		memcpy(buf + n, ".0", 2);
		n += 2;
	}
	return (size_t)n;
}

/* Is p[0, n) the canonical form of a double? */
static bool parse_double(const char *p, size_t n, double *out)
{
	char tmp[40], canon[32];
	size_t i;
	double d;

	if (n < 3 || n > 32)
		return false;
	for (i = 0; i < n; i++)
		if (strchr("0123456789.-+einfa", p[i]) == NULL || p[i] == '\0')
			return false;
	memcpy(tmp, p, n);
	tmp[n] = '\0';
	d = strtod(tmp, NULL);
	if (reap__mgr_d2s(canon, d) != n || memcmp(canon, p, n) != 0)
		return false;
	*out = d;
	return true;
}

/* What a plain string reads back as. */
static reap_mgr_type plain_type(const char *p, size_t n, int64_t *i, double *d)
{
	if (n == 0 || n > 32)
		return REAP_MGR_T_BYTES;
	if (reap__resp_parse_ll(p, n, i))
		return REAP_MGR_T_INT;
	if (parse_double(p, n, d))
		return REAP_MGR_T_DOUBLE;
	return REAP_MGR_T_BYTES;
}

/* ------------------------------------------------------------------ */
/* Encoding                                                             */

static size_t varint_put(unsigned char *p, uint64_t v)
{
	size_t n = 0;

	while (v >= 0x80) {
		p[n++] = (unsigned char)(v | 0x80);
		v >>= 7;
	}
	p[n++] = (unsigned char)v;
	return n;
}

/* Varints take at most this many bytes. */
#define VARINT_MAX 10

int reap__mgr_put_agg(reap_mgr_buf *b, bool map, size_t n)
{
	unsigned char hdr[2 + VARINT_MAX];

	hdr[0] = TAG;
	hdr[1] = map ? 'M' : 'A';
	return reap_mgr_buf_append(b, hdr, 2 + varint_put(hdr + 2, n));
}

int reap__mgr_elem_begin(reap_mgr_buf *b, size_t *at)
{
	int rc = reap__mgr_buf_reserve(b, VARINT_MAX);

	if (rc < 0)
		return rc;
	*at = b->len;
	b->len += VARINT_MAX;
	return 0;
}

void reap__mgr_elem_end(reap_mgr_buf *b, size_t at)
{
	size_t len = b->len - at - VARINT_MAX;
	size_t k = varint_put((unsigned char *)b->p + at, len);

	memmove(b->p + at + k, b->p + at + VARINT_MAX, len);
	b->len = at + k + len;
}

static int encode(const reap_mgr_value *v, reap_mgr_buf *b, int depth,
		  char *err, size_t errlen);

/* One element of an array or map: its length, then its encoding. */
static int encode_elem(const reap_mgr_value *v, reap_mgr_buf *b, int depth,
		       char *err, size_t errlen)
{
	size_t at;
	int rc;

	if ((rc = reap__mgr_elem_begin(b, &at)) < 0)
		return rc;
	if ((rc = encode(v, b, depth, err, errlen)) < 0) {
		b->len = at;
		return rc;
	}
	reap__mgr_elem_end(b, at);
	return 0;
}

static int encode(const reap_mgr_value *v, reap_mgr_buf *b, int depth,
		  char *err, size_t errlen)
{
	unsigned char hdr[2 + VARINT_MAX];
	size_t at = b->len, i, n, k;
	char num[32];
	int64_t ii;
	double dd;
	int rc = 0;

	switch (v->type) {
	case REAP_MGR_T_NIL:
		hdr[0] = TAG;
		hdr[1] = 'n';
		return reap_mgr_buf_append(b, hdr, 2);
	case REAP_MGR_T_INT:
		return reap_mgr_buf_append(b, num, reap__resp_ll2str(num, v->i));
	case REAP_MGR_T_DOUBLE:
		return reap_mgr_buf_append(b, num, reap__mgr_d2s(num, v->d));
	case REAP_MGR_T_BYTES:
		if (v->bytes.p == NULL && v->bytes.len != 0) {
			fail(err, errlen, "bytes with a NULL pointer and length %zu",
			     v->bytes.len);
			return -EINVAL;
		}
		n = v->bytes.len;
		if (n > 0 && ((const unsigned char *)v->bytes.p)[0] == TAG)
			goto tagged;
		if (plain_type(v->bytes.p, n, &ii, &dd) != REAP_MGR_T_BYTES)
			goto tagged;
		return reap_mgr_buf_append(b, v->bytes.p, n);
	tagged:
		hdr[0] = TAG;
		hdr[1] = 'b';
		if ((rc = reap__mgr_buf_reserve(b, n + 2)) < 0)
			return rc;
		(void)reap_mgr_buf_append(b, hdr, 2);
		(void)reap_mgr_buf_append(b, v->bytes.p, n);
		return 0;
	case REAP_MGR_T_ARRAY:
	case REAP_MGR_T_MAP:
		if (depth >= REAP__MGR_DEPTH_MAX) {
			fail(err, errlen, "values nested deeper than %d",
			     REAP__MGR_DEPTH_MAX);
			return -EINVAL;
		}
		n = v->array.n;
		if (v->type == REAP_MGR_T_MAP && n > SIZE_MAX / 2) {
			fail(err, errlen, "a map of %zu pairs", n);
			return -EINVAL;
		}
		if (n > 0 && v->array.v == NULL) {
			fail(err, errlen, "an %s of %zu with a NULL pointer",
			     v->type == REAP_MGR_T_MAP ? "map" : "array", n);
			return -EINVAL;
		}
		if ((rc = reap__mgr_put_agg(b, v->type == REAP_MGR_T_MAP, n)) < 0)
			return rc;
		if (v->type == REAP_MGR_T_MAP)
			n *= 2;
		for (i = 0; i < n; i++) {
			rc = encode_elem(&v->array.v[i], b, depth + 1, err, errlen);
			if (rc == -EINVAL && errlen > 0) {
				char inner[200];

				snprintf(inner, sizeof inner, "%s", err);
				if (v->type == REAP_MGR_T_MAP)
					fail(err, errlen, "%s, in %s %zu of a map", inner,
					     i % 2 ? "value" : "key", i / 2);
				else
					fail(err, errlen, "%s, in element %zu of an array",
					     inner, i);
			}
			if (rc < 0)
				break;
		}
		break;
	case REAP_MGR_T_USER: {
		const reap_mgr_codec *c = v->user.codec;
		size_t nl;

		if (c == NULL || c->name == NULL || c->encode == NULL) {
			fail(err, errlen, "a user value without a codec (or "
			     "without its name or encoder)");
			return -EINVAL;
		}
		nl = strlen(c->name);
		if (nl == 0 || nl > 64) {
			fail(err, errlen, "a codec name of %zu bytes (1 to 64)", nl);
			return -EINVAL;
		}
		hdr[0] = TAG;
		hdr[1] = 'U';
		k = 2 + varint_put(hdr + 2, nl);
		if ((rc = reap_mgr_buf_append(b, hdr, k)) < 0 ||
		    (rc = reap_mgr_buf_append(b, c->name, nl)) < 0)
			break;
		rc = c->encode(v->user.obj, b, c->arg);
		if (rc == -EINVAL || (rc < 0 && rc != -ENOMEM && rc != -E2BIG)) {
			fail(err, errlen, "codec '%s' could not encode its object "
			     "(%s)", c->name, reap_errname(rc));
			rc = -EINVAL;
		}
		break;
	}
	case REAP_MGR_T_ERROR:
		if (v->bytes.p == NULL)
			fail(err, errlen, "a NULL string");
		else
			fail(err, errlen, "an error reply is not a value");
		return -EINVAL;
	default:
		fail(err, errlen, "unknown value type %d", (int)v->type);
		return -EINVAL;
	}
	if (rc < 0)
		b->len = at;
	return rc;
}

int reap__mgr_encode(const reap_mgr_value *v, reap_mgr_buf *b, char *err,
		     size_t errlen)
{
	int rc = encode(v, b, 0, err, errlen);

	if (rc == -ENOMEM)
		fail(err, errlen, "out of memory encoding a value");
	else if (rc == -E2BIG)
		fail(err, errlen, "a value over %zu bytes", REAP__MGR_BUF_MAX);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Decoding                                                             */

typedef struct dec {
	reap__mgr_codec_find find;
	void *ctx;
	char *err;
	size_t errlen;
	/* pass 1 sums, pass 2 cursors */
	size_t nodes, bytes;
	reap_mgr_value *node;
	char *byte;
} dec;

static bool varint_get(const unsigned char **p, const unsigned char *end,
		       uint64_t *out)
{
	uint64_t v = 0;
	int shift = 0;

	while (*p < end && shift < 64) {
		unsigned char c = *(*p)++;

		v |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			*out = v;
			return true;
		}
		shift += 7;
	}
	return false;
}

/* Pass 1: check p[0, n) and count the nodes and bytes it needs (besides
 * the node it fills itself). */
static int measure(dec *d, const unsigned char *p, size_t n, int depth)
{
	const unsigned char *end;
	uint64_t cnt = 0, len = 0, i;
	unsigned char kind;
	int rc;

	if (n == 0 || p[0] != TAG) {
		d->bytes += n + 1;
		return 0;
	}
	end = p + n;
	if (n < 2)
		goto bad;
	kind = p[1];
	switch (kind) {
	case 'b':
		d->bytes += n - 2 + 1;
		return 0;
	case 'n':
		if (n != 2)
			goto bad;
		return 0;
	case 'A':
	case 'M':
		if (depth >= REAP__MGR_DEPTH_MAX) {
			fail(d->err, d->errlen, "value nested deeper than %d",
			     REAP__MGR_DEPTH_MAX);
			return -EPROTO;
		}
		p += 2;
		/* Each element takes at least its length byte. */
		if (!varint_get(&p, end, &cnt) || cnt > (uint64_t)(end - p) ||
		    (kind == 'M' && cnt > (uint64_t)(end - p) / 2))
			goto bad;
		if (kind == 'M')
			cnt *= 2;
		d->nodes += cnt;
		for (i = 0; i < cnt; i++) {
			if (!varint_get(&p, end, &len) || len > (uint64_t)(end - p))
				goto bad;
			if ((rc = measure(d, p, (size_t)len, depth + 1)) < 0)
				return rc;
			p += len;
		}
		if (p != end)
			goto bad;
		return 0;
	case 'U':
		p += 2;
		if (!varint_get(&p, end, &len) || len == 0 || len > 64 ||
		    len > (uint64_t)(end - p))
			goto bad;
		return 0;
	default:
		goto bad;
	}
bad:
	fail(d->err, d->errlen, "malformed value");
	return -EPROTO;
}

static void put_bytes(dec *d, reap_mgr_value *v, const void *p, size_t n)
{
	if (n > 0)
		memcpy(d->byte, p, n);
	d->byte[n] = '\0';
	v->type = REAP_MGR_T_BYTES;
	v->bytes.p = d->byte;
	v->bytes.len = n;
	d->byte += n + 1;
}

/* Pass 2: fill v from p[0, n), which pass 1 checked. */
static int fill(dec *d, const unsigned char *p, size_t n, reap_mgr_value *v)
{
	const unsigned char *end;
	uint64_t cnt = 0, len = 0, i;
	const reap_mgr_codec *c;
	unsigned char kind;
	int rc;

	if (n == 0 || p[0] != TAG) {
		v->type = plain_type((const char *)p, n, &v->i, &v->d);
		if (v->type == REAP_MGR_T_BYTES)
			put_bytes(d, v, p, n);
		return 0;
	}
	end = p + n;
	kind = p[1];
	switch (kind) {
	case 'b':
		put_bytes(d, v, p + 2, n - 2);
		return 0;
	case 'n':
		v->type = REAP_MGR_T_NIL;
		return 0;
	case 'A':
	case 'M':
		p += 2;
		(void)varint_get(&p, end, &cnt);
		v->type = kind == 'M' ? REAP_MGR_T_MAP : REAP_MGR_T_ARRAY;
		v->array.n = (size_t)cnt;
		v->array.v = d->node;
		if (kind == 'M')
			cnt *= 2;
		{
			reap_mgr_value *e = d->node;

			if (cnt > 0)
				d->node += cnt;
			for (i = 0; i < cnt; i++) {
				(void)varint_get(&p, end, &len);
				if ((rc = fill(d, p, (size_t)len, &e[i])) < 0)
					return rc;
				p += len;
			}
		}
		return 0;
	default: /* 'U' */
		p += 2;
		(void)varint_get(&p, end, &len);
		c = d->find != NULL ? d->find(d->ctx, (const char *)p, (size_t)len) : NULL;
		if (c == NULL || c->decode == NULL) {
			fail(d->err, d->errlen, "no codec registered for user type "
			     "'%.*s'", (int)len, (const char *)p);
			return -EPROTO;
		}
		p += len;
		rc = c->decode(p, (size_t)(end - p), &v->user.obj, c->arg);
		if (rc < 0) {
			if (rc == -ENOMEM)
				return rc;
			fail(d->err, d->errlen, "codec '%s' refused its bytes (%s)",
			     c->name, reap_errname(rc));
			return -EPROTO;
		}
		v->type = REAP_MGR_T_USER;
		v->user.codec = c;
		return 0;
	}
}

/* mem_ of a decoded value that owns user objects but no block. */
static char owned_only;

/* Free the user objects under v (decoded ones only). */
static void free_users(reap_mgr_value *v)
{
	size_t i, n;

	switch (v->type) {
	case REAP_MGR_T_USER:
		if (v->user.codec->free != NULL)
			v->user.codec->free(v->user.obj, v->user.codec->arg);
		break;
	case REAP_MGR_T_ARRAY:
	case REAP_MGR_T_MAP:
		n = v->type == REAP_MGR_T_MAP ? v->array.n * 2 : v->array.n;
		for (i = 0; i < n; i++)
			free_users((reap_mgr_value *)&v->array.v[i]);
		break;
	default:
		break;
	}
}

int reap__mgr_decode(const void *p, size_t n, reap__mgr_codec_find find,
		     void *ctx, reap_mgr_value *out, char *err, size_t errlen)
{
	dec d = {.find = find, .ctx = ctx, .err = err, .errlen = errlen};
	reap_mgr_value v = {.type = REAP_MGR_T_NIL};
	size_t size;
	char *mem = NULL;
	int rc;

	*out = v;
	if (n == 0 || ((const unsigned char *)p)[0] != TAG) {
		/* A plain string: an int or a double needs no block, bytes
		 * one of n + 1. */
		v.type = plain_type(p, n, &v.i, &v.d);
		if (v.type == REAP_MGR_T_BYTES) {
			if ((mem = reap_malloc(n + 1)) == NULL) {
				fail(err, errlen, "out of memory decoding a value");
				return -ENOMEM;
			}
			d.byte = mem;
			put_bytes(&d, &v, p, n);
			v.mem_ = mem;
		}
		*out = v;
		return 0;
	}
	if ((rc = measure(&d, p, n, 0)) < 0)
		return rc;
	/* nil and a user object need no block */
	size = d.nodes * sizeof(reap_mgr_value) + d.bytes;
	if (size > 0) {
		if ((mem = reap_malloc(size)) == NULL) {
			fail(err, errlen, "out of memory decoding a value");
			return -ENOMEM;
		}
		memset(mem, 0, d.nodes * sizeof(reap_mgr_value));
	}
	d.node = (reap_mgr_value *)(void *)mem;
	d.byte = mem != NULL ? mem + d.nodes * sizeof(reap_mgr_value) : NULL;
	if ((rc = fill(&d, p, n, &v)) < 0) {
		free_users(&v);
		reap_free(mem);
		if (rc == -ENOMEM)
			fail(err, errlen, "out of memory decoding a value");
		return rc;
	}
	if (mem != NULL)
		v.mem_ = mem;
	else if (v.type == REAP_MGR_T_USER)
		v.mem_ = &owned_only;
	*out = v;
	return 0;
}

/* ------------------------------------------------------------------ */
/* The value API                                                        */

void reap_mgr_value_free(reap_mgr_value *v)
{
	if (v->mem_ != NULL) {
		free_users(v);
		if (v->mem_ != &owned_only)
			reap_free(v->mem_);
	}
	memset(v, 0, sizeof *v);
	v->type = REAP_MGR_T_NIL;
}

int reap_mgr_value_i64(const reap_mgr_value *v, int64_t *out)
{
	switch (v->type) {
	case REAP_MGR_T_INT:
		*out = v->i;
		return 0;
	case REAP_MGR_T_BYTES:
		return v->bytes.p != NULL &&
			       reap__resp_parse_ll(v->bytes.p, v->bytes.len, out)
			       ? 0
			       : -EINVAL;
	default:
		return -EINVAL;
	}
}

int reap_mgr_value_f64(const reap_mgr_value *v, double *out)
{
	char tmp[64], *end;
	double d;

	switch (v->type) {
	case REAP_MGR_T_DOUBLE:
		*out = v->d;
		return 0;
	case REAP_MGR_T_INT:
		*out = (double)v->i;
		return 0;
	case REAP_MGR_T_BYTES:
		if (v->bytes.p == NULL || v->bytes.len == 0 ||
		    v->bytes.len >= sizeof tmp)
			return -EINVAL;
		memcpy(tmp, v->bytes.p, v->bytes.len);
		tmp[v->bytes.len] = '\0';
		if (memchr(tmp, '\0', v->bytes.len) != NULL || tmp[0] == ' ')
			return -EINVAL;
		errno = 0;
		d = strtod(tmp, &end);
		if (*end != '\0' || errno == ERANGE)
			return -EINVAL;
		*out = d;
		return 0;
	default:
		return -EINVAL;
	}
}

bool reap_mgr_value_equal(const reap_mgr_value *a, const reap_mgr_value *b)
{
	size_t i, n;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case REAP_MGR_T_NIL:
		return true;
	case REAP_MGR_T_INT:
		return a->i == b->i;
	case REAP_MGR_T_DOUBLE:
		return a->d == b->d || (isnan(a->d) && isnan(b->d));
	case REAP_MGR_T_BYTES:
	case REAP_MGR_T_ERROR:
		return a->bytes.len == b->bytes.len &&
		       (a->bytes.len == 0 ||
			memcmp(a->bytes.p, b->bytes.p, a->bytes.len) == 0);
	case REAP_MGR_T_ARRAY:
	case REAP_MGR_T_MAP:
		if (a->array.n != b->array.n)
			return false;
		n = a->type == REAP_MGR_T_MAP ? a->array.n * 2 : a->array.n;
		for (i = 0; i < n; i++)
			if (!reap_mgr_value_equal(&a->array.v[i], &b->array.v[i]))
				return false;
		return true;
	case REAP_MGR_T_USER: {
		reap_mgr_buf x, y;
		bool eq;

		if (a->user.codec != b->user.codec &&
		    (a->user.codec == NULL || b->user.codec == NULL ||
		     strcmp(a->user.codec->name, b->user.codec->name) != 0))
			return false;
		reap__mgr_buf_init(&x);
		reap__mgr_buf_init(&y);
		eq = reap__mgr_encode(a, &x, NULL, 0) == 0 &&
		     reap__mgr_encode(b, &y, NULL, 0) == 0 && x.len == y.len &&
		     (x.len == 0 || memcmp(x.p, y.p, x.len) == 0);
		reap__mgr_buf_fini(&x);
		reap__mgr_buf_fini(&y);
		return eq;
	}
	}
	return false;
}
