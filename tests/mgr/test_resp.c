/*
 * The RESP codec: requests (multibulk and inline, whole, byte by byte and
 * in random splits), every limit at N and N+1, overflow of declared
 * lengths, the malformed-protocol cases of Redis's tests/unit/protocol.tcl,
 * the encoder's exact bytes in RESP2 and RESP3, round trips through the
 * reply parser, its limits, and allocation-failure sweeps.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdint.h>

#include "../runner.h"
#include "../../src/mgr/resp.h"

/* ------------------------------------------------------------------ */
/* Requests                                                             */

static void describe_cmd(const reap__resp_req *r, char *out, size_t cap)
{
	size_t o = strlen(out);

	if (o && o + 1 < cap)
		out[o++] = '|';
	for (int i = 0; i < r->argc; i++) {
		if (i && o + 1 < cap)
			out[o++] = ' ';
		for (size_t j = 0; j < r->argv[i].len && o + 5 < cap; j++) {
			unsigned char c = (unsigned char)r->argv[i].p[j];

			if (c >= 0x20 && c < 0x7f && c != '\\')
				out[o++] = (char)c;
			else
				o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
		}
	}
	out[o] = '\0';
}

/*
 * Feed data[0, len) to a fresh parser in chunks (step 0: all at once;
 * step 1: byte by byte; else random sizes from seed), keeping a query
 * buffer the way a server does. Returns a description of the commands
 * parsed, "|"-separated, then "#ERR <reply>" or "#MORE".
 */
static const char *run_req(const char *data, size_t len, int step, unsigned seed,
			   const reap__resp_limits *lim, bool authed)
{
	static char out[1 << 18];
	reap__resp_req r;
	char *q = malloc(len + 1);
	size_t qlen = 0, fed = 0;

	ASSERT_NOT_NULL(q);
	out[0] = '\0';
	reap__resp_req_init(&r, lim);
	r.authed = authed;
	for (;;) {
		size_t used;
		int rc = reap__resp_req_parse(&r, q, qlen, &used);

		ASSERT_LE_INT(used, qlen);
		if (rc == REAP__RESP_CMD) {
			ASSERT_GE_INT(r.argc, 1);
			for (int i = 0; i < r.argc; i++)
				if (r.scratch == NULL || r.argv[i].p < r.scratch ||
				    r.argv[i].p >= r.scratch + r.scratch_cap) {
					ASSERT_TRUE(r.argv[i].p >= q);
					ASSERT_TRUE(r.argv[i].p + r.argv[i].len <= q + qlen);
				}
			describe_cmd(&r, out, sizeof(out));
		} else if (rc == REAP__RESP_PROTO) {
			size_t o = strlen(out);

			ASSERT_EQ_SIZE(strlen(r.err), r.err_len);
			snprintf(out + o, sizeof(out) - o, "#ERR %.*s",
				 (int)(r.err_len - 2), r.err);
			break;
		} else {
			ASSERT_EQ_INT(rc, REAP__RESP_MORE);
		}
		memmove(q, q + used, qlen - used);
		qlen -= used;
		if (rc == REAP__RESP_CMD)
			continue;
		if (fed == len) {
			size_t o = strlen(out);

			snprintf(out + o, sizeof(out) - o, "#MORE");
			break;
		}
		{
			size_t k = step == 0 ? len - fed : step == 1 ? 1
				 : 1 + (size_t)(rand_r(&seed) % 7);

			if (k > len - fed)
				k = len - fed;
			memcpy(q + qlen, data + fed, k);
			qlen += k;
			fed += k;
		}
	}
	reap__resp_req_fini(&r);
	free(q);
	return out;
}

/* The same outcome however the input is split. */
static void check_req_lim(const char *data, size_t len, const char *want,
			  const reap__resp_limits *lim, bool authed)
{
	char whole[1 << 12];

	snprintf(whole, sizeof(whole), "%s", run_req(data, len, 0, 0, lim, authed));
	ASSERT_EQ_STR(whole, want);
	/* Byte-by-byte and random splits of inputs past 70 KB (the limit
	 * tests at 64 KB + 1) would cost seconds each under the sanitizers
	 * and test nothing the smaller inputs do not: the split logic is
	 * the same, and those are fed whole above. */
	if (len > 70000)
		return;
	ASSERT_EQ_STR(run_req(data, len, 1, 0, lim, authed), want);
	for (unsigned seed = 1; seed <= 20; seed++)
		ASSERT_EQ_STR(run_req(data, len, 2, seed, lim, authed), want);
}

#define CHECK_REQ(lit, want) check_req_lim(lit, sizeof(lit) - 1, want, NULL, true)
#define CHECK_REQ_UNAUTH(lit, want)                                         \
	check_req_lim(lit, sizeof(lit) - 1, want, NULL, false)

TEST(req_multibulk)
{
	static const char in[] = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
	reap__resp_req r;
	size_t used;

	reap__resp_req_init(&r, NULL);
	r.authed = true;
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in, sizeof(in) - 1, &used),
		      REAP__RESP_CMD);
	ASSERT_EQ_SIZE(used, sizeof(in) - 1);
	ASSERT_EQ_INT(r.argc, 3);
	/* zero copy: the arguments point into the input */
	ASSERT_EQ_PTR(r.argv[0].p, in + 8);
	ASSERT_EQ_PTR(r.argv[2].p, in + 24);
	ASSERT_EQ_SIZE(r.argv[2].len, 5);
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in + used, 0, &used), REAP__RESP_MORE);
	ASSERT_EQ_SIZE(used, 0);
	reap__resp_req_fini(&r);

	CHECK_REQ("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n", "SET k hello#MORE");
	CHECK_REQ("*1\r\n$0\r\n\r\n", "#MORE"); /* one empty argument */
	CHECK_REQ("*2\r\n$3\r\na\r\n\r\n$1\r\nb\r\n", "a\\x0d\\x0a b#MORE");
	CHECK_REQ("*1\r\n$4\r\nPI", "#MORE");
}

TEST(req_resume_without_rescan)
{
	static const char in[] = "*2\r\n$4\r\nECHO\r\n$10\r\n0123456789\r\n";
	reap__resp_req r;
	size_t used;

	reap__resp_req_init(&r, NULL);
	r.authed = true;
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in, 20, &used), REAP__RESP_MORE);
	ASSERT_EQ_SIZE(used, 0);
	ASSERT_EQ_SIZE(r.pos, 19);  /* both headers and ECHO parsed */
	ASSERT_EQ_INT(r.argc, 1);
	ASSERT_EQ_INT(r.bulk, 10);  /* the payload is waited for, not scanned */
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in, 30, &used), REAP__RESP_MORE);
	ASSERT_EQ_SIZE(r.pos, 19);
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in, sizeof(in) - 1, &used), REAP__RESP_CMD);
	ASSERT_EQ_SIZE(used, sizeof(in) - 1);
	ASSERT_EQ_SIZE(r.argv[1].len, 10);
	ASSERT_EQ_INT(memcmp(r.argv[1].p, "0123456789", 10), 0);
	reap__resp_req_fini(&r);
}

TEST(req_pipelined)
{
	CHECK_REQ("*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\n\r\nPING\r\n  \r\n"
		  "*2\r\n$3\r\nGET\r\n$1\r\nk\r\nECHO x\n*1\r\n$4\r\nQUIT\r\n",
		  "PING|PING|GET k|ECHO x|QUIT#MORE");
	CHECK_REQ("*1\r\n$4\r\nPING\r\n*1\r\n+oops\r\n", "PING#ERR -ERR Protocol error: expected '$', got '+'");
}

TEST(req_inline_quoting)
{
	CHECK_REQ("set \"a b\" 'c d'\r\n", "set a b c d#MORE");
	CHECK_REQ("set \"a b\" 'c d'\r\n", "set a b c d#MORE");
	CHECK_REQ("\"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"\\z\"\n",
		  "AJ\\x0a\\x0d\\x09\\x08\\x07\\x5c\"z#MORE");
	CHECK_REQ("'it\\'s' 'a\\b'\n", "it's a\\x5cb#MORE");
	CHECK_REQ("a\"b c\" d\n", "ab c d#MORE");
	CHECK_REQ("\"\" x\n", " x#MORE");
	CHECK_REQ("\"\\xZZ\\x4\"\n", "xZZx4#MORE");
	CHECK_REQ("a\vb \v c\n", "a\\x0bb c#MORE");
	CHECK_REQ("  ping  \r\n", "ping#MORE");
	CHECK_REQ("a\r\r\n", "a#MORE");
	CHECK_REQ("\"foo\"bar\n", "#ERR -ERR Protocol error: unbalanced quotes in request");
	CHECK_REQ("\"foo\n", "#ERR -ERR Protocol error: unbalanced quotes in request");
	CHECK_REQ("'foo\n", "#ERR -ERR Protocol error: unbalanced quotes in request");
	CHECK_REQ("'foo'x\n", "#ERR -ERR Protocol error: unbalanced quotes in request");
	CHECK_REQ("\"ab\\\"\n", "#ERR -ERR Protocol error: unbalanced quotes in request");
	CHECK_REQ("\"a\" 'b'\t\"c\"\r\n", "a b c#MORE");
}

TEST(req_redis_protocol_tcl)
{
	/* tests/unit/protocol.tcl, each case as written there. */
	CHECK_REQ("\r\nPING\r\n", "PING#MORE");            /* empty query */
	CHECK_REQ("*-10\r\nPING\r\n", "PING#MORE");         /* negative mbulk */
	CHECK_REQ("*20000000\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*3000000000\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\nfooz\r\n",
		  "#ERR -ERR Protocol error: expected '$', got 'f'");
	CHECK_REQ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$-10\r\n",
		  "#ERR -ERR Protocol error: invalid bulk length");
	CHECK_REQ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$2000000000\r\n",
		  "#ERR -ERR Protocol error: invalid bulk length");
	CHECK_REQ("*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$blabla\r\n",
		  "#ERR -ERR Protocol error: invalid bulk length");
	CHECK_REQ("*1\r\nfoo\r\n", "#ERR -ERR Protocol error: expected '$', got 'f'");
	CHECK_REQ("set \"\"\"test-key\"\"\" test-value\r\nping\r\n",
		  "#ERR -ERR Protocol error: unbalanced quotes in request");
	/* The desync regressions: a first byte, then 1 KB lines with no
	 * terminator Redis can see, until the line limit trips. */
	{
		static const char *seq[] = {"\x00", "*\x00", "$\x00"};
		static const char *want[] = {
			"#ERR -ERR Protocol error: too big inline request",
			"#ERR -ERR Protocol error: too big mbulk count string",
			"#ERR -ERR Protocol error: too big inline request"};
		size_t n = 1 + 70 * 1025;
		char *buf = malloc(n);

		ASSERT_NOT_NULL(buf);
		for (int s = 0; s < 3; s++) {
			size_t k = s == 0 ? 1 : 2;

			memcpy(buf, seq[s], k);
			for (size_t i = k; i < n; i++)
				buf[i] = (i - k) % 1025 == 1024 ? '\n' : 'A';
			check_req_lim(buf, n, want[s], NULL, true);
		}
		free(buf);
	}
}

TEST(req_overflow_and_malformed_lengths)
{
	CHECK_REQ("*99999999999999999999\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*9223372036854775807\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*9223372036854775808\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*-9223372036854775808\r\nPING\r\n", "PING#MORE");
	CHECK_REQ("*-9223372036854775809\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*+1\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("* 1\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*01\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*-0\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*1x\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	static const char *bad_bulk[] = {"$-5", "$abc", "$+5", "$ 5", "$05", "$",
					 "$-0", "$-1", "$99999999999999999999",
					 "$9223372036854775807", "$5 "};
	for (size_t i = 0; i < sizeof(bad_bulk) / sizeof(*bad_bulk); i++) {
		char in[64];
		int n = snprintf(in, sizeof(in), "*1\r\n%s\r\n", bad_bulk[i]);

		check_req_lim(in, (size_t)n, "#ERR -ERR Protocol error: invalid bulk length",
			      NULL, true);
	}
	/* \r and \n in "got '%c'" become spaces, as Redis's error format does */
	CHECK_REQ("*1\r\n\r\n", "#ERR -ERR Protocol error: expected '$', got ' '");
	CHECK_REQ("*1\r\n\n\r\n", "#ERR -ERR Protocol error: expected '$', got ' '");
}

TEST(req_redis_leniency)
{
	/* What Redis lets through, so must we (replies are byte-identical). */
	CHECK_REQ("*1\r\n$4\r\nPINGxy*1\r\n$4\r\nPING\r\n", "PING|PING#MORE");
	CHECK_REQ("*1\rX$4\rYPING\r\n", "PING#MORE");
	/* a NUL before the terminator hides it (strchr): wait for more */
	CHECK_REQ("*1\x00\r\n$4\r\nPING\r\n", "#MORE");
	CHECK_REQ("PING\x00\r\n", "#MORE");
}

static char *repeat(char c, size_t n, const char *pre, const char *post, size_t *len)
{
	size_t a = strlen(pre), b = strlen(post);
	char *s = malloc(a + n + b + 1);

	ASSERT_NOT_NULL(s);
	memcpy(s, pre, a);
	memset(s + a, c, n);
	memcpy(s + a + n, post, b + 1);
	*len = a + n + b;
	return s;
}

/* check_req_lim() on repeat()'s string, with the default limits. */
static void check_repeat(char c, size_t n, const char *pre, const char *post,
			 const char *want)
{
	size_t len;
	char *s = repeat(c, n, pre, post, &len);

	check_req_lim(s, len, want, NULL, true);
	free(s);
}

TEST(req_limit_inline)
{
	size_t len;
	char *s;

	s = repeat('a', 65536, "", "\r\n", &len); /* N: accepted */
	ASSERT_EQ_SIZE(strlen(run_req(s, len, 0, 0, NULL, true)), 65536 + 5);
	free(s);
	/* N+1 */
	check_repeat('a', 65537, "", "\r\n", "#ERR -ERR Protocol error: too big inline request");
	/* no newline yet: N waits */
	check_repeat('a', 65536, "", "", "#MORE");
	check_repeat('a', 65537, "", "", "#ERR -ERR Protocol error: too big inline request");
	/* a smaller configured limit, checked split every way */
	reap__resp_limits lim;

	reap__resp_limits_default(&lim);
	lim.max_inline = 8;
	check_req_lim("12345678\r\n", 10, "12345678#MORE", &lim, true);
	check_req_lim("123456789\r\n", 11, "#ERR -ERR Protocol error: too big inline request", &lim, true);
	check_req_lim("12345678", 8, "#MORE", &lim, true);
	check_req_lim("12345678\r", 9, "#MORE", &lim, true); /* the \r may end it */
	check_req_lim("123456789", 9, "#ERR -ERR Protocol error: too big inline request", &lim, true);
}

TEST(req_limit_headers)
{
	/* "*" and no '\r': 65536 bytes pending wait, 65537 fail */
	check_repeat('1', 65535, "*", "", "#MORE");
	check_repeat('1', 65536, "*", "", "#ERR -ERR Protocol error: too big mbulk count string");
	check_repeat('1', 65535, "*1\r\n$", "", "#MORE");
	check_repeat('1', 65536, "*1\r\n$", "", "#ERR -ERR Protocol error: too big bulk count string");

	reap__resp_limits lim;

	reap__resp_limits_default(&lim);
	lim.max_header = 4;
	check_req_lim("*123", 4, "#MORE", &lim, true);
	check_req_lim("*1234", 5, "#ERR -ERR Protocol error: too big mbulk count string", &lim, true);
	check_req_lim("*1\r\n$123", 8, "#MORE", &lim, true);
	check_req_lim("*1\r\n$1234", 9, "#ERR -ERR Protocol error: too big bulk count string", &lim, true);
}

TEST(req_limit_counts)
{
	/* defaults: 1024*1024 arguments, 512 MB per argument */
	CHECK_REQ("*1048576\r\n", "#MORE");
	CHECK_REQ("*1048577\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ("*1\r\n$536870912\r\n", "#MORE");
	CHECK_REQ("*1\r\n$536870913\r\n", "#ERR -ERR Protocol error: invalid bulk length");

	reap__resp_limits lim;

	reap__resp_limits_default(&lim);
	lim.max_multibulk = 2;
	lim.max_bulk = 3;
	check_req_lim("*2\r\n$3\r\nabc\r\n$0\r\n\r\n", 20, "abc #MORE", &lim, true);
	check_req_lim("*3\r\n", 4, "#ERR -ERR Protocol error: invalid multibulk length", &lim, true);
	check_req_lim("*1\r\n$4\r\nabcd\r\n", 14, "#ERR -ERR Protocol error: invalid bulk length", &lim, true);
}

TEST(req_limit_preauth)
{
	CHECK_REQ_UNAUTH("*10\r\n", "#MORE");
	CHECK_REQ_UNAUTH("*11\r\n", "#ERR -ERR Protocol error: unauthenticated multibulk length");
	CHECK_REQ_UNAUTH("*1\r\n$16384\r\n", "#MORE");
	CHECK_REQ_UNAUTH("*1\r\n$16385\r\n", "#ERR -ERR Protocol error: unauthenticated bulk length");
	/* Redis's order: the absolute limit first */
	CHECK_REQ_UNAUTH("*3000000000\r\n", "#ERR -ERR Protocol error: invalid multibulk length");
	CHECK_REQ_UNAUTH("*1\r\n$600000000\r\n", "#ERR -ERR Protocol error: invalid bulk length");
	/* inline requests are held to the same limits before auth */
	CHECK_REQ_UNAUTH("a b c d e f g h i j\r\n", "a b c d e f g h i j#MORE");
	CHECK_REQ_UNAUTH("a b c d e f g h i j k\r\n",
			 "#ERR -ERR Protocol error: unauthenticated multibulk length");

	/* authenticating between commands lifts the limits */
	static const char in[] = "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n*1\r\n$20000\r\n";
	reap__resp_req r;
	size_t used;

	reap__resp_req_init(&r, NULL);
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in, sizeof(in) - 1, &used), REAP__RESP_CMD);
	r.authed = true;
	ASSERT_EQ_INT(reap__resp_req_parse(&r, in + used, sizeof(in) - 1 - used, &used),
		      REAP__RESP_MORE);
	reap__resp_req_fini(&r);
}

TEST(req_dead_after_error)
{
	reap__resp_req r;
	size_t used;

	reap__resp_req_init(&r, NULL);
	ASSERT_EQ_INT(reap__resp_req_parse(&r, "*x\r\n", 4, &used), REAP__RESP_PROTO);
	ASSERT_EQ_INT(reap__resp_req_parse(&r, "PING\r\n", 6, &used), REAP__RESP_PROTO);
	ASSERT_EQ_STR(r.err, "-ERR Protocol error: invalid multibulk length\r\n");
	reap__resp_req_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Encoder                                                              */

#define ASSERT_BYTES(b, lit)                                                \
	do {                                                                \
		ASSERT_EQ_SIZE((b)->len, sizeof(lit) - 1);                  \
		if (memcmp((b)->data, lit, sizeof(lit) - 1) != 0)           \
			test_fail(__FILE__, __LINE__, "bytes: %.*s vs %s",  \
				  (int)(b)->len, (b)->data, lit);           \
	} while (0)

/* Every reply type, as the same calls would encode it for a connection
 * of protocol proto. */
static void encode_all(reap__resp_buf *b)
{
	ASSERT_OK(reap__resp_array(b, 18));
	ASSERT_OK(reap__resp_status(b, "OK", 2));
	ASSERT_OK(reap__resp_error(b, "bad\r\nthing", 10));
	ASSERT_OK(reap__resp_error(b, "-WRONGTYPE no", 13));
	ASSERT_OK(reap__resp_int(b, 42));
	ASSERT_OK(reap__resp_int(b, INT64_MIN));
	ASSERT_OK(reap__resp_bulk(b, "hello", 5));
	ASSERT_OK(reap__resp_bulk(b, "", 0));
	ASSERT_OK(reap__resp_null(b));
	ASSERT_OK(reap__resp_null_array(b));
	ASSERT_OK(reap__resp_map(b, 1));
	ASSERT_OK(reap__resp_status(b, "a", 1));
	ASSERT_OK(reap__resp_int(b, 1));
	ASSERT_OK(reap__resp_set(b, 2));
	ASSERT_OK(reap__resp_bulk(b, "a", 1));
	ASSERT_OK(reap__resp_bulk(b, "b", 1));
	ASSERT_OK(reap__resp_double(b, 3.14));
	ASSERT_OK(reap__resp_double(b, INFINITY));
	ASSERT_OK(reap__resp_bool(b, true));
	ASSERT_OK(reap__resp_bool(b, false));
	ASSERT_OK(reap__resp_verbatim(b, "txt", "Some string", 11));
	ASSERT_OK(reap__resp_bignum(b, "1234567999999999999999999999999999999", 37));
	ASSERT_OK(reap__resp_push(b, 1));
	ASSERT_OK(reap__resp_bulk(b, "m", 1));
}

static const char want2[] =
	"*18\r\n+OK\r\n-ERR bad  thing\r\n-WRONGTYPE no\r\n:42\r\n"
	":-9223372036854775808\r\n$5\r\nhello\r\n$0\r\n\r\n$-1\r\n*-1\r\n"
	"*2\r\n+a\r\n:1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n$4\r\n3.14\r\n$3\r\ninf\r\n"
	":1\r\n:0\r\n$11\r\nSome string\r\n"
	"$37\r\n1234567999999999999999999999999999999\r\n*1\r\n$1\r\nm\r\n";
static const char want3[] =
	"*18\r\n+OK\r\n-ERR bad  thing\r\n-WRONGTYPE no\r\n:42\r\n"
	":-9223372036854775808\r\n$5\r\nhello\r\n$0\r\n\r\n_\r\n_\r\n"
	"%1\r\n+a\r\n:1\r\n~2\r\n$1\r\na\r\n$1\r\nb\r\n,3.14\r\n,inf\r\n"
	"#t\r\n#f\r\n=15\r\ntxt:Some string\r\n"
	"(1234567999999999999999999999999999999\r\n>1\r\n$1\r\nm\r\n";

TEST(enc_resp2_bytes)
{
	reap__resp_buf b;

	reap__resp_buf_init(&b, 2, 0);
	encode_all(&b);
	ASSERT_BYTES(&b, want2);
	ASSERT_EQ_INT(reap__resp_attr(&b, 1), -EINVAL);
	ASSERT_BYTES(&b, want2);
	reap__resp_buf_fini(&b);
}

TEST(enc_resp3_bytes)
{
	reap__resp_buf b;

	reap__resp_buf_init(&b, 3, 0);
	encode_all(&b);
	ASSERT_BYTES(&b, want3);
	b.len = 0;
	ASSERT_OK(reap__resp_attr(&b, 1));
	ASSERT_BYTES(&b, "|1\r\n");
	b.len = 0;
	ASSERT_OK(reap__resp_array(&b, 2));
	ASSERT_OK(reap__resp_bulk(&b, "a", 1));
	ASSERT_OK(reap__resp_bulk(&b, "b", 1));
	ASSERT_BYTES(&b, "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
	reap__resp_buf_fini(&b);
}

static void check_d(double d, const char *want)
{
	char s[48];
	size_t n = reap__resp_d2str(s, d);

	s[n] = '\0';
	ASSERT_EQ_STR(s, want);
}

TEST(enc_double_format)
{
	check_d(3.14, "3.14");
	check_d(1.0, "1");
	check_d(-2.0, "-2");
	check_d(0.0, "0");
	check_d(-0.0, "-0");
	check_d(0.1, "0.1");
	check_d(1.0 / 3, "0.3333333333333333");
	check_d(INFINITY, "inf");
	check_d(-INFINITY, "-inf");
	check_d(NAN, "nan");
	check_d(1e300, "1e+300");
	check_d(1.5e-7, "1.5e-7");
	check_d(0.0001, "0.0001");
	check_d(123.456, "123.456");
	check_d(12345.6789012, "1.23456789012e+4"); /* fpconv's layout */
	check_d(1e19, "1e+19");
	check_d(4611686018427387904.0, "4611686018427387904");
	check_d(-1.7976931348623157e308, "-1.7976931348623157e+308");
	check_d(5e-324, "5e-324");
	/* every output reads back as the same double */
	unsigned seed = 7;
	for (int i = 0; i < 20000; i++) {
		uint64_t bits = ((uint64_t)rand_r(&seed) << 42) ^
				((uint64_t)rand_r(&seed) << 21) ^ (uint64_t)rand_r(&seed);
		double d;
		char s[48];
		size_t n;

		memcpy(&d, &bits, sizeof(d));
		if (!isfinite(d))
			continue;
		n = reap__resp_d2str(s, d);
		ASSERT_LT_INT(n, 32);
		s[n] = '\0';
		if (strtod(s, NULL) != d)
			test_fail(__FILE__, __LINE__, "%s does not read back as %.17g", s, d);
	}
}

TEST(enc_ll2str)
{
	static const int64_t v[] = {0, 1, -1, 9, 10, 99, 100, -100, 12345678901LL,
				    INT64_MAX, INT64_MIN, INT64_MIN + 1};
	char s[32], w[32];

	for (size_t i = 0; i < sizeof(v) / sizeof(*v); i++) {
		size_t n = reap__resp_ll2str(s, v[i]);

		s[n] = '\0';
		snprintf(w, sizeof(w), "%" PRId64, v[i]);
		ASSERT_EQ_STR(s, w);
	}
	unsigned seed = 3;
	for (int i = 0; i < 100000; i++) {
		int64_t x = (int64_t)(((uint64_t)rand_r(&seed) << 33) ^
				      ((uint64_t)rand_r(&seed) << 11) ^ (uint64_t)rand_r(&seed));
		size_t n = reap__resp_ll2str(s, x >> (i % 60));

		s[n] = '\0';
		snprintf(w, sizeof(w), "%" PRId64, x >> (i % 60));
		ASSERT_EQ_STR(s, w);
	}
}

TEST(enc_output_limit)
{
	reap__resp_buf b;

	reap__resp_buf_init(&b, 2, 16);
	ASSERT_OK(reap__resp_bulk(&b, "hello", 5));   /* 11 bytes */
	ASSERT_OK(reap__resp_int(&b, 12));            /* 16: exactly the limit */
	ASSERT_EQ_SIZE(b.len, 16);
	ASSERT_EQ_INT(reap__resp_raw(&b, "x", 1), -ENOBUFS);
	ASSERT_EQ_INT(reap__resp_status(&b, "OK", 2), -ENOBUFS);
	ASSERT_EQ_INT(reap__resp_null(&b), -ENOBUFS);
	ASSERT_EQ_SIZE(b.len, 16);
	ASSERT_BYTES(&b, "$5\r\nhello\r\n:12\r\n");
	b.len = 10;
	ASSERT_EQ_INT(reap__resp_bulk(&b, "abc", 3), -ENOBUFS); /* 9 > 6: nothing */
	ASSERT_EQ_SIZE(b.len, 10);
	reap__resp_buf_fini(&b);
}

/* ------------------------------------------------------------------ */
/* Reply parser                                                         */

/* Parse a whole reply from bytes given in chunks (step as in run_req). */
static int read_reply(const char *data, size_t len, int step, unsigned seed,
		      const reap__resp_rlimits *lim, reap__resp_value **out,
		      const char **err)
{
	reap__resp_reader r;
	char *q = malloc(len + 1);
	size_t qlen = 0, fed = 0;
	int rc;

	ASSERT_NOT_NULL(q);
	reap__resp_reader_init(&r, lim);
	for (;;) {
		size_t used;

		rc = reap__resp_reader_parse(&r, q, qlen, &used, out);
		ASSERT_LE_INT(used, qlen);
		memmove(q, q + used, qlen - used);
		qlen -= used;
		if (rc != REAP__RESP_MORE || fed == len)
			break;
		size_t k = step == 0 ? len - fed : step == 1 ? 1
			 : 1 + (size_t)(rand_r(&seed) % 5);
		if (k > len - fed)
			k = len - fed;
		memcpy(q + qlen, data + fed, k);
		qlen += k;
		fed += k;
	}
	if (rc == REAP__RESP_VALUE)
		ASSERT_EQ_SIZE(qlen, 0);
	*err = r.err;
	reap__resp_reader_fini(&r);
	free(q);
	return rc;
}

/* A value tree as text, to compare trees in one assertion. */
static void show(const reap__resp_value *v, char *o, size_t cap)
{
	size_t n = strlen(o);

	switch (v->type) {
	case REAP__RESP_NIL: snprintf(o + n, cap - n, "nil"); break;
	case REAP__RESP_INT: snprintf(o + n, cap - n, "%" PRId64, v->i); break;
	case REAP__RESP_DOUBLE: snprintf(o + n, cap - n, "d%.17g", v->d); break;
	case REAP__RESP_BOOL: snprintf(o + n, cap - n, v->b ? "true" : "false"); break;
	case REAP__RESP_STRING: snprintf(o + n, cap - n, "\"%s\"", v->str.p); break;
	case REAP__RESP_STATUS: snprintf(o + n, cap - n, "+%s", v->str.p); break;
	case REAP__RESP_ERROR: snprintf(o + n, cap - n, "!%s", v->str.p); break;
	case REAP__RESP_VERBATIM: snprintf(o + n, cap - n, "=%s:%s", v->str.fmt, v->str.p); break;
	case REAP__RESP_BIGNUM: snprintf(o + n, cap - n, "(%s", v->str.p); break;
	default: {
		static const char open[] = "[~>{|";

		snprintf(o + n, cap - n, "%c", open[v->type - REAP__RESP_ARRAY]);
		for (size_t i = 0; i < v->agg.n; i++) {
			if (i)
				strncat(o, " ", cap - strlen(o) - 1);
			show(&v->agg.v[i], o, cap);
		}
		strncat(o, "]", cap - strlen(o) - 1);
	}
	}
}

static const char *reply_text(const char *data, size_t len, const reap__resp_rlimits *lim)
{
	static char o[1 << 14];
	reap__resp_value *v;
	const char *err;
	int rc = read_reply(data, len, 0, 0, lim, &v, &err);

	o[0] = '\0';
	if (rc == REAP__RESP_PROTO) {
		snprintf(o, sizeof(o), "#ERR %s", err);
		return o;
	}
	if (rc == REAP__RESP_MORE)
		return "#MORE";
	ASSERT_EQ_INT(rc, REAP__RESP_VALUE);
	show(v, o, sizeof(o));
	reap__resp_value_free(v);
	/* the same tree however the bytes arrive */
	{
		char whole[1 << 14];

		snprintf(whole, sizeof(whole), "%s", o);
		for (unsigned seed = 0; seed < 12; seed++) {
			ASSERT_EQ_INT(read_reply(data, len, seed == 0 ? 1 : 2, seed, lim,
						 &v, &err), REAP__RESP_VALUE);
			o[0] = '\0';
			show(v, o, sizeof(o));
			reap__resp_value_free(v);
			ASSERT_EQ_STR(o, whole);
		}
	}
	return o;
}

TEST(roundtrip_resp2_and_resp3)
{
	reap__resp_buf b;
	size_t first;

	reap__resp_buf_init(&b, 2, 0);
	encode_all(&b);
	ASSERT_EQ_STR(reply_text(b.data, b.len, NULL),
		      "[+OK !ERR bad  thing !WRONGTYPE no 42 -9223372036854775808 \"hello\" \"\" "
		      "nil nil [+a 1] [\"a\" \"b\"] \"3.14\" \"inf\" 1 0 \"Some string\" "
		      "\"1234567999999999999999999999999999999\" [\"m\"]]");
	reap__resp_buf_fini(&b);
	reap__resp_buf_init(&b, 3, 0);
	encode_all(&b);
	first = b.len;
	ASSERT_OK(reap__resp_attr(&b, 1));
	ASSERT_OK(reap__resp_bulk(&b, "key", 3));
	ASSERT_OK(reap__resp_double(&b, -0.5));
	ASSERT_OK(reap__resp_bulk(&b, "v", 1));
	ASSERT_EQ_STR(reply_text(b.data, first, NULL),
		      "[+OK !ERR bad  thing !WRONGTYPE no 42 -9223372036854775808 \"hello\" \"\" "
		      "nil nil {+a 1] ~\"a\" \"b\"] d3.1400000000000001 dinf true false "
		      "=txt:Some string (1234567999999999999999999999999999999 >\"m\"]]");
	/* the attribute is a value of its own, after the first */
	{
		reap__resp_reader r;
		reap__resp_value *v;
		size_t used;
		char o[256] = "";

		reap__resp_reader_init(&r, NULL);
		ASSERT_EQ_INT(reap__resp_reader_parse(&r, b.data, b.len, &used, &v),
			      REAP__RESP_VALUE);
		reap__resp_value_free(v);
		ASSERT_EQ_INT(reap__resp_reader_parse(&r, b.data + used, b.len - used,
						      &used, &v), REAP__RESP_VALUE);
		show(v, o, sizeof(o));
		ASSERT_EQ_STR(o, "|\"key\" d-0.5 \"v\"]");
		reap__resp_value_free(v);
		reap__resp_reader_fini(&r);
	}
	reap__resp_buf_fini(&b);
}

#define REPLY(lit) reply_text(lit, sizeof(lit) - 1, NULL)

TEST(reply_types)
{
	ASSERT_EQ_STR(REPLY(":42\r\n"), "42");
	ASSERT_EQ_STR(REPLY("$5\r\nhello\r\n"), "\"hello\"");
	ASSERT_EQ_STR(REPLY("$-1\r\n"), "nil");
	ASSERT_EQ_STR(REPLY("*-1\r\n"), "nil");
	ASSERT_EQ_STR(REPLY("_\r\n"), "nil");
	ASSERT_EQ_STR(REPLY("*0\r\n"), "[]");
	ASSERT_EQ_STR(REPLY("%1\r\n+a\r\n:1\r\n"), "{+a 1]");
	ASSERT_EQ_STR(REPLY(",3.14\r\n"), "d3.1400000000000001");
	ASSERT_EQ_STR(REPLY(",-inf\r\n"), "d-inf");
	ASSERT_EQ_STR(REPLY(",nan\r\n"), "dnan");
	ASSERT_EQ_STR(REPLY("!3\r\nbad\r\n"), "!bad");
	ASSERT_EQ_STR(REPLY("=8\r\nmkd:a\r\nb\r\n"), "=mkd:a\r\nb");
	ASSERT_EQ_STR(REPLY("(-12\r\n"), "(-12");
	ASSERT_EQ_STR(REPLY("*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n"), "[|+k +v 1] 2]");
	ASSERT_EQ_STR(REPLY("*3\r\n*1\r\n*0\r\n$0\r\n\r\n~1\r\n#f\r\n"), "[[[]] \"\" ~false]]");
	/* a bulk with \r\n in it */
	ASSERT_EQ_STR(REPLY("$4\r\n\r\n\r\n\r\n"), "\"\r\n\r\n\"");
}

TEST(reply_truncated_and_garbage)
{
	static const char full[] = "*3\r\n$5\r\nhello\r\n%1\r\n+a\r\n,1.5\r\n:7\r\n";

	for (size_t n = 0; n < sizeof(full) - 1; n++)
		ASSERT_EQ_STR(reply_text(full, n, NULL), "#MORE");
	ASSERT_EQ_STR(REPLY("X\r\n"), "#ERR unknown type byte");
	ASSERT_EQ_STR(REPLY("\r\n"), "#ERR unknown type byte");
	ASSERT_EQ_STR(REPLY("*2\r\n:1\r\n?x\r\n"), "#ERR unknown type byte");
	ASSERT_EQ_STR(REPLY(":1\rx"), "#ERR expected CRLF");
	ASSERT_EQ_STR(REPLY("$3\r\nabcde"), "#ERR expected CRLF");
	ASSERT_EQ_STR(REPLY(":abc\r\n"), "#ERR invalid integer");
	ASSERT_EQ_STR(REPLY(":99999999999999999999\r\n"), "#ERR invalid integer");
	ASSERT_EQ_STR(REPLY("$-2\r\n"), "#ERR invalid bulk length");
	ASSERT_EQ_STR(REPLY("$99999999999999999999\r\n"), "#ERR invalid bulk length");
	ASSERT_EQ_STR(REPLY("*-2\r\n"), "#ERR invalid aggregate length");
	ASSERT_EQ_STR(REPLY("%-1\r\n"), "#ERR invalid aggregate length");
	ASSERT_EQ_STR(REPLY("#x\r\n"), "#ERR invalid boolean");
	ASSERT_EQ_STR(REPLY("_x\r\n"), "#ERR invalid null");
	ASSERT_EQ_STR(REPLY(",1.5x\r\n"), "#ERR invalid double");
	ASSERT_EQ_STR(REPLY(", 1\r\n"), "#ERR invalid double");
	ASSERT_EQ_STR(REPLY("(12a\r\n"), "#ERR invalid big number");
	ASSERT_EQ_STR(REPLY("=3\r\ntxt\r\n"), "#ERR invalid verbatim string");
	ASSERT_EQ_STR(REPLY("=5\r\ntxtxy\r\n"), "#ERR invalid verbatim string");
}

static char *nested(size_t depth, size_t *len)
{
	char *s = malloc(depth * 4 + 8);

	ASSERT_NOT_NULL(s);
	for (size_t i = 0; i < depth; i++)
		memcpy(s + i * 4, "*1\r\n", 4);
	memcpy(s + depth * 4, ":1\r\n", 5);
	*len = depth * 4 + 4;
	return s;
}

/* The reply read with the default limits but one, whole string literal. */
#define LIMITED(field, n, in, want)                                         \
	do {                                                                \
		reap__resp_rlimits l_;                                      \
		reap__resp_rlimits_default(&l_);                            \
		l_.field = (n);                                             \
		ASSERT_EQ_STR(reply_text(in, sizeof(in) - 1, &l_), want);   \
	} while (0)

TEST(reply_limits)
{
	size_t len;
	char *s;

	s = nested(64, &len);
	ASSERT_EQ_INT(strncmp(reply_text(s, len, NULL), "[[[[", 4), 0);
	free(s);
	s = nested(65, &len);
	ASSERT_EQ_STR(reply_text(s, len, NULL), "#ERR nesting too deep");
	free(s);

	LIMITED(max_depth, 2, "*1\r\n%1\r\n:1\r\n:2\r\n", "[{1 2]]");
	LIMITED(max_depth, 2, "*1\r\n*1\r\n*1\r\n:1\r\n", "#ERR nesting too deep");
	LIMITED(max_depth, 2, "*1\r\n*1\r\n*0\r\n", "[[[]]]"); /* empty: no frame */

	LIMITED(max_elems, 4, "*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", "[1 2 3 4]");
	LIMITED(max_elems, 4, "*5\r\n", "#ERR too many elements");
	LIMITED(max_elems, 4, "%2\r\n", "#MORE");
	LIMITED(max_elems, 4, "%3\r\n", "#ERR too many elements");

	LIMITED(max_bulk, 3, "$3\r\nabc\r\n", "\"abc\"");
	LIMITED(max_bulk, 3, "$4\r\n", "#ERR bulk too long");

	LIMITED(max_line, 3, "+abc\r\n", "+abc");
	LIMITED(max_line, 3, "+abcd\r\n", "#ERR line too long");
	LIMITED(max_line, 3, "+abc", "#MORE");
	LIMITED(max_line, 3, "+abcd", "#ERR line too long");

	LIMITED(max_total, 12, "*2\r\n:1\r\n:2\r\n", "[1 2]");
	LIMITED(max_total, 12, "*2\r\n:1\r\n:22\r\n", "#ERR reply too big");
	LIMITED(max_total, 12, "$9\r\n", "#ERR reply too big");
}

TEST(reply_pipelined_values)
{
	static const char in[] = ":1\r\n+OK\r\n*1\r\n$1\r\nx\r\n";
	reap__resp_reader r;
	reap__resp_value *v;
	size_t off = 0, used;
	int n = 0;

	reap__resp_reader_init(&r, NULL);
	while (reap__resp_reader_parse(&r, in + off, sizeof(in) - 1 - off, &used, &v) ==
	       REAP__RESP_VALUE) {
		off += used;
		n++;
		reap__resp_value_free(v);
	}
	ASSERT_EQ_INT(n, 3);
	ASSERT_EQ_SIZE(off, sizeof(in) - 1);
	reap__resp_reader_fini(&r);
}

/* ------------------------------------------------------------------ */
/* Allocation failures                                                  */

#define MAX_N 2000

TEST(oom_request)
{
	/* 3000 arguments: argv starts at 1024 and grows twice */
	size_t cap = 3000 * 12 + 64, len = 0;
	char *in = malloc(cap);
	int enomem = 0;

	ASSERT_NOT_NULL(in);
	len += (size_t)sprintf(in, "*3000\r\n");
	for (int i = 0; i < 3000; i++)
		len += (size_t)sprintf(in + len, "$1\r\n%c\r\n", 'a' + i % 26);
	for (int which = 0; which < 2; which++) {
		static const char inl[] = "SET \"a b\" 'c' d e f g h i j k l m n o p q r s\r\n";
		const char *data = which ? inl : in;
		size_t dlen = which ? sizeof(inl) - 1 : len;

		for (int n = 1;; n++) {
			reap__resp_req r;
			struct test_snap before = test_snap();
			size_t used;
			int rc;

			ASSERT_LT_INT(n, MAX_N);
			reap__resp_req_init(&r, NULL);
			r.authed = true;
			reap_fault_alloc(n);
			rc = reap__resp_req_parse(&r, data, dlen, &used);
			test_fault_disarm();
			if (rc == -ENOMEM) {
				enomem++;
				/* retrying the same bytes succeeds */
				ASSERT_EQ_INT(reap__resp_req_parse(&r, data, dlen, &used),
					      REAP__RESP_CMD);
				ASSERT_EQ_INT(r.argc, which ? 19 : 3000);
				reap__resp_req_fini(&r);
				ASSERT_UNCHANGED(before);
				continue;
			}
			ASSERT_EQ_INT(rc, REAP__RESP_CMD);
			ASSERT_EQ_SIZE(used, dlen);
			ASSERT_EQ_INT(r.argc, which ? 19 : 3000);
			reap__resp_req_fini(&r);
			ASSERT_UNCHANGED(before);
			break;
		}
	}
	ASSERT_GE_INT(enomem, 3);
	free(in);
}

TEST(oom_reply)
{
	/* deep and wide: 40 levels, each with a map, a string and 9 ints */
	size_t cap = 40 * 128 + 16, len = 0;
	char *in = malloc(cap);
	int enomem = 0;

	ASSERT_NOT_NULL(in);
	for (int i = 0; i < 40; i++)
		len += (size_t)sprintf(in + len,
				       "*12\r\n%%1\r\n+k\r\n$2\r\nvv\r\n$3\r\nabc\r\n"
				       ":1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n:8\r\n:9\r\n");
	len += (size_t)sprintf(in + len, "_\r\n");
	for (int n = 1;; n++) {
		reap__resp_reader r;
		reap__resp_value *v = NULL;
		struct test_snap before = test_snap();
		size_t used;
		int rc;

		ASSERT_LT_INT(n, MAX_N);
		reap__resp_reader_init(&r, NULL);
		reap_fault_alloc(n);
		rc = reap__resp_reader_parse(&r, in, len, &used, &v);
		test_fault_disarm();
		if (rc == -ENOMEM) {
			enomem++;
			ASSERT_NULL(v);
			ASSERT_LE_INT(used, len);
			reap__resp_reader_fini(&r);
			ASSERT_UNCHANGED(before);
			continue;
		}
		ASSERT_EQ_INT(rc, REAP__RESP_VALUE);
		ASSERT_EQ_SIZE(used, len);
		ASSERT_EQ_INT(v->type, REAP__RESP_ARRAY);
		ASSERT_EQ_SIZE(v->agg.n, 12);
		reap__resp_value_free(v);
		reap__resp_reader_fini(&r);
		ASSERT_UNCHANGED(before);
		break;
	}
	ASSERT_GE_INT(enomem, 40);
	/* a failure mid-way can be resumed: retry after every -ENOMEM */
	{
		reap__resp_reader r;
		reap__resp_value *v = NULL;
		size_t off = 0, used;
		int rc, fails = 0;

		reap__resp_reader_init(&r, NULL);
		for (int n = 1;; n++) {
			reap_fault_alloc(n % 3 + 1);
			rc = reap__resp_reader_parse(&r, in + off, len - off, &used, &v);
			test_fault_disarm();
			off += used;
			if (rc != -ENOMEM)
				break;
			fails++;
		}
		ASSERT_EQ_INT(rc, REAP__RESP_VALUE);
		ASSERT_EQ_SIZE(off, len);
		ASSERT_GT_INT(fails, 10);
		reap__resp_value_free(v);
		reap__resp_reader_fini(&r);
	}
	free(in);
}

TEST(oom_encode)
{
	int enomem = 0;

	for (int n = 1;; n++) {
		reap__resp_buf b;
		struct test_snap before = test_snap();
		int rc = 0;

		ASSERT_LT_INT(n, MAX_N);
		reap__resp_buf_init(&b, 3, 0);
		reap_fault_alloc(n);
		for (int i = 0; i < 2000 && rc == 0; i++) {
			size_t was = b.len;

			rc = reap__resp_bulk(&b, "0123456789abcdef", 16);
			if (rc == 0) {
				was = b.len;
				rc = reap__resp_map(&b, i);
			}
			if (rc < 0) /* the failed item left nothing */
				ASSERT_EQ_SIZE(b.len, was);
		}
		test_fault_disarm();
		if (rc == -ENOMEM) {
			enomem++;
			reap__resp_buf_fini(&b);
			ASSERT_UNCHANGED(before);
			continue;
		}
		ASSERT_OK(rc);
		ASSERT_GT_INT(b.len, 2000 * 22);
		reap__resp_buf_fini(&b);
		ASSERT_UNCHANGED(before);
		break;
	}
	ASSERT_GE_INT(enomem, 5);
}
