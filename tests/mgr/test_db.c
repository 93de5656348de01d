/*
 * mgr/db: the object store and command execution (src/mgr/db.h). Every
 * reply is checked byte for byte, in RESP2 and RESP3, against what
 * Redis 7 sends; then expiry on a fake clock, blocking pops and reap's
 * blocking commands through the ready hook, every lifetime rule, reclaim
 * of closed sessions, introspection, and allocation-failure sweeps.
 *
 * Each test makes its own store (db_begin) and destroys it (db_end), so
 * that the runner's check of reap's allocations holds.
 */
#include <errno.h>
#include <stdint.h>

#include "../runner.h"
#include "../../src/mgr/db.h"

#define NS 1000000000ull
#define MS 1000000ull

static reap__mgr_db *db;
static int ready_calls;
static char reply[1 << 16];
static int last_rc;
static reap__mgr_block last_blk;

static char ready_key[64]; /* the last call's key; "*" for NULL */

static void on_ready(void *ctx, const char *key, size_t klen)
{
	(void)ctx;
	ready_calls++;
	if (key == NULL)
		snprintf(ready_key, sizeof ready_key, "*");
	else
		snprintf(ready_key, sizeof ready_key, "%.*s", (int)klen, key);
}

static void db_begin(void)
{
	ASSERT_OK(reap__mgr_db_create(&db));
	reap__mgr_db_set_ready_hook(db, on_ready, NULL);
	ready_calls = 0;
}

static void db_end(void)
{
	reap__mgr_db_destroy(db);
	db = NULL;
	reap_set_clock(NULL, NULL);
}

static reap__mgr_sess *sess(int proto)
{
	reap__mgr_sess *s;

	ASSERT_OK(reap__mgr_sess_open(db, 1234, &s));
	reap__mgr_sess_set_proto(s, proto);
	return s;
}

/* Run argv in session s; the reply (NUL-terminated) lands in `reply`. */
static const char *xv(reap__mgr_sess *s, int timed_out, int argc,
		      const reap__resp_arg *argv)
{
	reap__resp_buf b;

	reap__resp_buf_init(&b, reap__mgr_sess_proto(s), 0);
	last_blk.deadline_ns = 0;
	last_rc = reap__mgr_exec(db, s, argc, argv, timed_out, &b, &last_blk);
	ASSERT_TRUE(b.len < sizeof(reply));
	if (b.len)
		memcpy(reply, b.data, b.len);
	reply[b.len] = '\0';
	reap__resp_buf_fini(&b);
	return reply;
}

/* A command line split at spaces: argv points into copy. */
typedef struct cmdline {
	char copy[4096];
	reap__resp_arg argv[64];
	int argc;
} cmdline;

static void split(cmdline *c, const char *line)
{
	ASSERT_TRUE(strlen(line) < sizeof(c->copy));
	strcpy(c->copy, line);
	c->argc = 0;
	for (char *p = strtok(c->copy, " "); p; p = strtok(NULL, " ")) {
		ASSERT_TRUE(c->argc < 64);
		c->argv[c->argc].p = p;
		c->argv[c->argc++].len = strlen(p);
	}
}

/* Run a command line split at spaces. */
static const char *xt(reap__mgr_sess *s, int timed_out, const char *line)
{
	static cmdline c;

	split(&c, line);
	return xv(s, timed_out, c.argc, c.argv);
}

static const char *x(reap__mgr_sess *s, const char *line)
{
	return xt(s, 0, line);
}

#define EXPECT(s, line, want) ASSERT_EQ_STR(x(s, line), want)

static uint64_t fake_t;

static uint64_t fake_now(void *ctx)
{
	return *(uint64_t *)ctx;
}

static void fake_clock(void)
{
	fake_t = 1000 * NS;
	reap_set_clock(fake_now, &fake_t);
}

static uint64_t nkeys(void)
{
	reap__mgr_db_stats st;

	reap__mgr_db_stats_get(db, &st);
	return st.keys;
}

/* ------------------------------------------------------------------ */
/* Generic commands and errors                                          */

TEST(ping_echo_unknown_arity)
{
	db_begin();
	reap__mgr_sess *s2 = sess(2), *s3 = sess(3);

	EXPECT(s2, "PING", "+PONG\r\n");
	EXPECT(s3, "ping", "+PONG\r\n");
	EXPECT(s2, "PING hello", "$5\r\nhello\r\n");
	EXPECT(s2, "PING a b", "-ERR wrong number of arguments for 'ping' command\r\n");
	EXPECT(s2, "ECHO hi", "$2\r\nhi\r\n");
	EXPECT(s3, "EcHo hi", "$2\r\nhi\r\n");
	EXPECT(s2, "ECHO", "-ERR wrong number of arguments for 'echo' command\r\n");
	EXPECT(s2, "GET", "-ERR wrong number of arguments for 'get' command\r\n");
	EXPECT(s2, "GET a b", "-ERR wrong number of arguments for 'get' command\r\n");
	EXPECT(s2, "HSET h f", "-ERR wrong number of arguments for 'hset' command\r\n");
	EXPECT(s2, "HSET h f v g", "-ERR wrong number of arguments for 'hset' command\r\n");
	EXPECT(s2, "MSET a 1 b", "-ERR wrong number of arguments for 'mset' command\r\n");
	EXPECT(s2, "LPOP l 1 2", "-ERR wrong number of arguments for 'lpop' command\r\n");
	EXPECT(s2, "REAP.HOLD", "-ERR wrong number of arguments for 'reap.hold' command\r\n");
	EXPECT(s2, "FOO", "-ERR unknown command 'FOO', with args beginning with: \r\n");
	EXPECT(s3, "FOO bar baz",
	       "-ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' \r\n");
	/* the argument list stops once it reaches 128 bytes */
	{
		char line[400], want[600];
		char a100[101], b100[101];

		memset(a100, 'a', 100);
		a100[100] = '\0';
		memset(b100, 'b', 100);
		b100[100] = '\0';
		snprintf(line, sizeof(line), "nope %s %s c", a100, b100);
		/* "'a*100' " is 103 bytes; then 25 of b's are left */
		snprintf(want, sizeof(want),
			 "-ERR unknown command 'nope', with args beginning with: "
			 "'%s' '%.25s' \r\n", a100, b100);
		EXPECT(s2, line, want);
	}
	/* \r and \n in an error become spaces */
	{
		reap__resp_arg a[2] = {{"x\r\ny", 4}, {"q\n", 2}};

		ASSERT_EQ_STR(xv(s2, 0, 2, a),
			      "-ERR unknown command 'x  y', with args beginning "
			      "with: 'q ' \r\n");
	}
	reap__mgr_sess_close(db, s2);
	reap__mgr_sess_close(db, s3);
	db_end();
}

TEST(strings_get_set_del_exists)
{
	db_begin();
	reap__mgr_sess *s2 = sess(2), *s3 = sess(3);

	EXPECT(s2, "GET k", "$-1\r\n");
	EXPECT(s3, "GET k", "_\r\n");
	EXPECT(s2, "SET k v", "+OK\r\n");
	EXPECT(s3, "GET k", "$1\r\nv\r\n");
	EXPECT(s2, "SET k longer", "+OK\r\n");
	EXPECT(s2, "GET k", "$6\r\nlonger\r\n");
	EXPECT(s2, "SET k ab", "+OK\r\n"); /* in place */
	EXPECT(s2, "GET k", "$2\r\nab\r\n");
	{
		reap__resp_arg a[3] = {{"SET", 3}, {"e", 1}, {"", 0}};
		reap__resp_arg g[2] = {{"GET", 3}, {"e", 1}};

		ASSERT_EQ_STR(xv(s2, 0, 3, a), "+OK\r\n");
		ASSERT_EQ_STR(xv(s2, 0, 2, g), "$0\r\n\r\n");
	}
	EXPECT(s2, "EXISTS k k nope e", ":3\r\n");
	EXPECT(s2, "DEL k k nope", ":1\r\n");
	EXPECT(s2, "EXISTS k", ":0\r\n");
	EXPECT(s2, "DBSIZE", ":1\r\n");
	EXPECT(s2, "TYPE e", "+string\r\n");
	EXPECT(s2, "TYPE zz", "+none\r\n");
	EXPECT(s2, "HSET h f v", ":1\r\n");
	EXPECT(s2, "TYPE h", "+hash\r\n");
	EXPECT(s2, "GET h",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s3, "GET h",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s2, "MSET a 1 b 2 a 3", "+OK\r\n");
	EXPECT(s2, "MGET a b nope h", "*4\r\n$1\r\n3\r\n$1\r\n2\r\n$-1\r\n$-1\r\n");
	EXPECT(s3, "MGET a nope", "*2\r\n$1\r\n3\r\n_\r\n");
	EXPECT(s2, "FLUSHALL x", "-ERR syntax error\r\n");
	EXPECT(s2, "FLUSHALL ASYNC", "+OK\r\n");
	EXPECT(s2, "DBSIZE", ":0\r\n");
	reap__mgr_sess_close(db, s2);
	reap__mgr_sess_close(db, s3);
	db_end();
}

TEST(set_options)
{
	db_begin();
	reap__mgr_sess *s = sess(2), *s3 = sess(3);

	EXPECT(s, "SET k v NX XX", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v XX NX", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v EX", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v EX 10 PX 100", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v KEEPTTL EX 10", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v BOGUS", "-ERR syntax error\r\n");
	EXPECT(s, "SET k v EX 0", "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(s, "SET k v PX -5", "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(s, "SET k v EX 9223372036854775807",
	       "-ERR invalid expire time in 'set' command\r\n");
	EXPECT(s, "SET k v EX ten", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "DBSIZE", ":0\r\n");
	EXPECT(s, "SET k v XX", "$-1\r\n");
	EXPECT(s3, "SET k v XX", "_\r\n");
	EXPECT(s, "SET k v XX GET", "$-1\r\n");
	EXPECT(s, "EXISTS k", ":0\r\n");
	EXPECT(s, "SET k v NX", "+OK\r\n");
	EXPECT(s, "SET k w NX", "$-1\r\n");
	EXPECT(s, "SET k w nx get", "$1\r\nv\r\n"); /* not set: old value */
	EXPECT(s, "GET k", "$1\r\nv\r\n");
	EXPECT(s, "SET k w XX GET", "$1\r\nv\r\n");
	EXPECT(s, "GET k", "$1\r\nw\r\n");
	EXPECT(s, "SET n x GET", "$-1\r\n");
	EXPECT(s3, "SET n2 x GET", "_\r\n");
	EXPECT(s, "GET n", "$1\r\nx\r\n");
	EXPECT(s, "LPUSH l a", ":1\r\n");
	EXPECT(s, "SET l x GET",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "SET l x", "+OK\r\n"); /* SET overwrites any type */
	EXPECT(s, "TYPE l", "+string\r\n");
	reap__mgr_sess_close(db, s);
	reap__mgr_sess_close(db, s3);
	db_end();
}

TEST(incr_family)
{
	db_begin();
	reap__mgr_sess *s = sess(2);

	EXPECT(s, "INCR c", ":1\r\n");
	EXPECT(s, "INCRBY c 41", ":42\r\n");
	EXPECT(s, "DECR c", ":41\r\n");
	EXPECT(s, "DECRBY c 50", ":-9\r\n");
	EXPECT(s, "DECR nope", ":-1\r\n");
	EXPECT(s, "SET c 10", "+OK\r\n");
	EXPECT(s, "INCR c", ":11\r\n");
	EXPECT(s, "GET c", "$2\r\n11\r\n");
	EXPECT(s, "SET c abc", "+OK\r\n");
	EXPECT(s, "INCR c", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "SET c 010", "+OK\r\n");
	EXPECT(s, "INCR c", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "SET c +1", "+OK\r\n");
	EXPECT(s, "INCR c", "-ERR value is not an integer or out of range\r\n");
	{
		reap__resp_arg a[3] = {{"SET", 3}, {"c", 1}, {" 1", 2}};
		reap__resp_arg i[2] = {{"INCR", 4}, {"c", 1}};

		ASSERT_EQ_STR(xv(s, 0, 3, a), "+OK\r\n");
		ASSERT_EQ_STR(xv(s, 0, 2, i),
			      "-ERR value is not an integer or out of range\r\n");
	}
	EXPECT(s, "INCRBY c x", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "INCRBY c 1.5", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "SET m 9223372036854775807", "+OK\r\n");
	EXPECT(s, "INCR m", "-ERR increment or decrement would overflow\r\n");
	EXPECT(s, "INCRBY m 0", ":9223372036854775807\r\n");
	EXPECT(s, "SET m -9223372036854775808", "+OK\r\n");
	EXPECT(s, "DECR m", "-ERR increment or decrement would overflow\r\n");
	EXPECT(s, "INCRBY m -1", "-ERR increment or decrement would overflow\r\n");
	EXPECT(s, "DECRBY m -9223372036854775808", "-ERR decrement would overflow\r\n");
	EXPECT(s, "INCRBY m 9223372036854775807", ":-1\r\n");
	EXPECT(s, "INCRBY m 9223372036854775808",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "HSET h f 1", ":1\r\n");
	EXPECT(s, "INCR h",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "INCR", "-ERR wrong number of arguments for 'incr' command\r\n");
	/* an INCR keeps the TTL (Redis overwrites the value in place) */
	reap__mgr_sess_close(db, s);
	db_end();
}

TEST(incrbyfloat_format)
{
	db_begin();
	reap__mgr_sess *s = sess(2), *s3 = sess(3);

	EXPECT(s, "SET f 10.50", "+OK\r\n");
	EXPECT(s, "INCRBYFLOAT f 0.1", "$4\r\n10.6\r\n");
	EXPECT(s, "INCRBYFLOAT f -5", "$3\r\n5.6\r\n");
	EXPECT(s3, "INCRBYFLOAT f -5", "$3\r\n0.6\r\n"); /* a bulk in RESP3 too */
	EXPECT(s, "SET e 5.0e3", "+OK\r\n");
	EXPECT(s, "INCRBYFLOAT e 2.0e2", "$4\r\n5200\r\n");
	EXPECT(s, "INCRBYFLOAT new 3.0e3", "$4\r\n3000\r\n");
	EXPECT(s, "INCRBYFLOAT z 0", "$1\r\n0\r\n");
	EXPECT(s, "INCRBYFLOAT z -0.0", "$1\r\n0\r\n");
	EXPECT(s, "INCRBYFLOAT y 1e-5", "$7\r\n0.00001\r\n");
	EXPECT(s, "INCRBYFLOAT w 1.5", "$3\r\n1.5\r\n");
	EXPECT(s, "INCRBYFLOAT w -3", "$4\r\n-1.5\r\n");
	EXPECT(s, "INCRBYFLOAT f abc", "-ERR value is not a valid float\r\n");
	EXPECT(s, "SET t abc", "+OK\r\n");
	EXPECT(s, "INCRBYFLOAT t 1", "-ERR value is not a valid float\r\n");
	EXPECT(s, "INCRBYFLOAT f nan", "-ERR value is not a valid float\r\n");
	EXPECT(s, "INCRBYFLOAT f inf",
	       "-ERR increment would produce NaN or Infinity\r\n");
	EXPECT(s, "GET f", "$3\r\n0.6\r\n");
	EXPECT(s, "INCR f", "-ERR value is not an integer or out of range\r\n");
	reap__mgr_sess_close(db, s);
	reap__mgr_sess_close(db, s3);
	db_end();
}

/* ------------------------------------------------------------------ */
/* Expiry                                                               */

TEST(expiry_ttl_lazy_active)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *s = sess(2);

	EXPECT(s, "TTL k", ":-2\r\n");
	EXPECT(s, "PTTL k", ":-2\r\n");
	EXPECT(s, "SET k v", "+OK\r\n");
	EXPECT(s, "TTL k", ":-1\r\n");
	EXPECT(s, "PTTL k", ":-1\r\n");
	EXPECT(s, "EXPIRE k 10", ":1\r\n");
	EXPECT(s, "TTL k", ":10\r\n");
	EXPECT(s, "PTTL k", ":10000\r\n");
	fake_t += 2400 * MS;
	EXPECT(s, "TTL k", ":8\r\n"); /* 7.6 s rounds to 8, as in Redis */
	EXPECT(s, "PTTL k", ":7600\r\n");
	fake_t += 7600 * MS;
	EXPECT(s, "GET k", "$1\r\nv\r\n"); /* at the instant: still there */
	fake_t += 1;
	EXPECT(s, "GET k", "$-1\r\n"); /* lazily gone */
	EXPECT(s, "DBSIZE", ":0\r\n");
	EXPECT(s, "EXPIRE nope 10", ":0\r\n");
	EXPECT(s, "EXPIRE k x", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "EXPIRE k 10 XY", "-ERR Unsupported option XY\r\n");
	EXPECT(s, "EXPIRE k 10 NX XX",
	       "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n");
	EXPECT(s, "EXPIRE k 10 GT LT",
	       "-ERR GT and LT options at the same time are not compatible\r\n");
	EXPECT(s, "EXPIRE k 9223372036854775807",
	       "-ERR invalid expire time in 'expire' command\r\n");
	EXPECT(s, "PEXPIRE k 9223372036854775807",
	       "-ERR invalid expire time in 'pexpire' command\r\n");
	/* SET EX / PX, and SET without KEEPTTL clears the TTL */
	EXPECT(s, "SET a 1 EX 100", "+OK\r\n");
	EXPECT(s, "PTTL a", ":100000\r\n");
	EXPECT(s, "SET a 2 PX 1500 KEEPTTL", "-ERR syntax error\r\n");
	EXPECT(s, "SET a 2 PX 1500", "+OK\r\n");
	EXPECT(s, "PTTL a", ":1500\r\n");
	EXPECT(s, "TTL a", ":2\r\n");
	EXPECT(s, "INCR a", ":3\r\n");
	EXPECT(s, "PTTL a", ":1500\r\n"); /* INCR keeps it */
	EXPECT(s, "SET a 4 KEEPTTL", "+OK\r\n");
	EXPECT(s, "PTTL a", ":1500\r\n");
	EXPECT(s, "SET a 5", "+OK\r\n");
	EXPECT(s, "TTL a", ":-1\r\n");
	/* NX XX GT LT */
	EXPECT(s, "EXPIRE a 100 XX", ":0\r\n");
	EXPECT(s, "EXPIRE a 100 GT", ":0\r\n"); /* no TTL is infinite */
	EXPECT(s, "EXPIRE a 100 NX", ":1\r\n");
	EXPECT(s, "EXPIRE a 200 NX", ":0\r\n");
	EXPECT(s, "EXPIRE a 50 GT", ":0\r\n");
	EXPECT(s, "EXPIRE a 150 GT", ":1\r\n");
	EXPECT(s, "EXPIRE a 200 LT", ":0\r\n");
	EXPECT(s, "PEXPIRE a 20000 LT", ":1\r\n");
	EXPECT(s, "PTTL a", ":20000\r\n");
	/* a past time deletes */
	EXPECT(s, "EXPIRE a -1", ":1\r\n");
	EXPECT(s, "EXISTS a", ":0\r\n");
	/* active expiry */
	EXPECT(s, "SET x 1 PX 100", "+OK\r\n");
	EXPECT(s, "SET y 1 PX 300", "+OK\r\n");
	EXPECT(s, "SET z 1", "+OK\r\n");
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, reap_now_ns()), 0);
	fake_t += 200 * MS;
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, reap_now_ns()), 1);
	ASSERT_EQ_SIZE(nkeys(), 2);
	fake_t += 200 * MS;
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, reap_now_ns()), 1);
	ASSERT_EQ_SIZE(nkeys(), 1);
	EXPECT(s, "GET z", "$1\r\n1\r\n");
	reap__mgr_sess_close(db, s);
	db_end();
}

TEST(expiry_active_many)
{
	char line[64];

	fake_clock();
	db_begin();
	reap__mgr_sess *s = sess(2);

	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "SET k%d v PX %d", i, 1 + i % 2 * 1000);
		EXPECT(s, line, "+OK\r\n");
	}
	fake_t += 10 * MS;
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, reap_now_ns()), 500);
	ASSERT_EQ_SIZE(nkeys(), 500);
	for (int i = 0; i < 1000; i++) {
		snprintf(line, sizeof(line), "EXISTS k%d", i);
		EXPECT(s, line, i % 2 ? ":1\r\n" : ":0\r\n");
	}
	reap__mgr_sess_close(db, s);
	db_end();
}

/* ------------------------------------------------------------------ */
/* Hashes and lists                                                     */

TEST(hashes)
{
	db_begin();
	reap__mgr_sess *s = sess(2), *s3 = sess(3);

	EXPECT(s, "HSET h f1 v1 f2 v2", ":2\r\n");
	EXPECT(s, "HSET h f1 x f3 y f3 z", ":1\r\n");
	EXPECT(s, "HGET h f1", "$1\r\nx\r\n");
	EXPECT(s, "HGET h f3", "$1\r\nz\r\n");
	EXPECT(s, "HGET h no", "$-1\r\n");
	EXPECT(s3, "HGET h no", "_\r\n");
	EXPECT(s, "HGET nokey f", "$-1\r\n");
	EXPECT(s, "HLEN h", ":3\r\n");
	EXPECT(s, "HLEN nokey", ":0\r\n");
	EXPECT(s, "HMGET h f1 no f2", "*3\r\n$1\r\nx\r\n$-1\r\n$2\r\nv2\r\n");
	EXPECT(s3, "HMGET nokey a", "*1\r\n_\r\n");
	EXPECT(s, "HDEL h f1 f1 no", ":1\r\n");
	EXPECT(s, "HDEL nokey f", ":0\r\n");
	EXPECT(s, "HDEL h f2", ":1\r\n");
	EXPECT(s, "HGETALL h", "*2\r\n$2\r\nf3\r\n$1\r\nz\r\n");
	EXPECT(s3, "HGETALL h", "%1\r\n$2\r\nf3\r\n$1\r\nz\r\n");
	EXPECT(s, "HGETALL nokey", "*0\r\n");
	EXPECT(s3, "HGETALL nokey", "%0\r\n");
	EXPECT(s, "HDEL h f3", ":1\r\n");
	EXPECT(s, "EXISTS h", ":0\r\n"); /* emptied: gone, as in Redis */
	EXPECT(s, "HINCRBY h n 5", ":5\r\n");
	EXPECT(s, "HINCRBY h n -7", ":-2\r\n");
	EXPECT(s, "HINCRBY h n x", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "HSET h s abc", ":1\r\n");
	EXPECT(s, "HINCRBY h s 1", "-ERR hash value is not an integer\r\n");
	EXPECT(s, "HSET h m 9223372036854775807", ":1\r\n");
	EXPECT(s, "HINCRBY h m 1", "-ERR increment or decrement would overflow\r\n");
	EXPECT(s, "SET str v", "+OK\r\n");
	EXPECT(s, "HSET str a b",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "HGETALL str",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "HINCRBY str a 1",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	/* many fields: rehashing keeps every one */
	{
		char line[64], want[64];

		for (int i = 0; i < 500; i++) {
			snprintf(line, sizeof(line), "HSET big f%d %d", i, i);
			EXPECT(s, line, ":1\r\n");
		}
		for (int i = 0; i < 500; i += 7) {
			snprintf(line, sizeof(line), "HGET big f%d", i);
			snprintf(want, sizeof(want), "$%d\r\n%d\r\n",
				 (int)strlen(line + 10), i);
			EXPECT(s, line, want);
		}
		EXPECT(s, "HLEN big", ":500\r\n");
		ASSERT_EQ_INT(strncmp(x(s3, "HGETALL big"), "%500\r\n", 6), 0);
		ASSERT_EQ_INT(strncmp(x(s, "HGETALL big"), "*1000\r\n", 7), 0);
	}
	reap__mgr_sess_close(db, s);
	reap__mgr_sess_close(db, s3);
	db_end();
}

TEST(lists)
{
	db_begin();
	reap__mgr_sess *s = sess(2), *s3 = sess(3);

	EXPECT(s, "LPUSH l a b c", ":3\r\n");
	EXPECT(s, "LRANGE l 0 -1", "*3\r\n$1\r\nc\r\n$1\r\nb\r\n$1\r\na\r\n");
	EXPECT(s, "RPUSH l d e", ":5\r\n");
	EXPECT(s, "LLEN l", ":5\r\n");
	EXPECT(s, "LRANGE l -2 -1", "*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
	EXPECT(s, "LRANGE l -100 0", "*1\r\n$1\r\nc\r\n");
	EXPECT(s, "LRANGE l 3 100", "*2\r\n$1\r\nd\r\n$1\r\ne\r\n");
	EXPECT(s, "LRANGE l 5 10", "*0\r\n");
	EXPECT(s, "LRANGE l 2 1", "*0\r\n");
	EXPECT(s, "LRANGE l -1 -2", "*0\r\n");
	EXPECT(s, "LRANGE l x 1", "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "LRANGE nokey 0 -1", "*0\r\n");
	EXPECT(s, "LLEN nokey", ":0\r\n");
	EXPECT(s, "LPOP l", "$1\r\nc\r\n");
	EXPECT(s, "RPOP l", "$1\r\ne\r\n");
	EXPECT(s, "LPOP l 0", "*0\r\n");
	EXPECT(s, "LPOP l -1", "-ERR value is out of range, must be positive\r\n");
	EXPECT(s, "LPOP l x", "-ERR value is out of range, must be positive\r\n");
	EXPECT(s, "RPOP l 2", "*2\r\n$1\r\nd\r\n$1\r\na\r\n");
	EXPECT(s, "LPOP l 5", "*1\r\n$1\r\nb\r\n");
	EXPECT(s, "EXISTS l", ":0\r\n");
	EXPECT(s, "LPOP l", "$-1\r\n");
	EXPECT(s3, "LPOP l", "_\r\n");
	EXPECT(s, "LPOP l 2", "*-1\r\n");
	EXPECT(s3, "RPOP l 2", "_\r\n");
	EXPECT(s, "SET str v", "+OK\r\n");
	EXPECT(s, "LPUSH str a",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "LPOP str",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(s, "LRANGE str 0 1",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	/* the ring wraps: push and pop at both ends many times */
	{
		char line[64], want[64];

		for (int i = 0; i < 100; i++) {
			snprintf(line, sizeof(line), "%s q %d", i % 2 ? "LPUSH" : "RPUSH", i);
			x(s, line);
			if (i % 3 == 0)
				x(s, "LPOP q");
		}
		EXPECT(s, "LLEN q", ":66\r\n");
		/* the same moves on a Python deque leave 97 ... 98 */
		EXPECT(s, "LRANGE q 0 0", "*1\r\n$2\r\n97\r\n");
		EXPECT(s, "LRANGE q -1 -1", "*1\r\n$2\r\n98\r\n");
		for (int i = 0; i < 66; i++)
			x(s, "RPOP q");
		EXPECT(s, "EXISTS q", ":0\r\n");
		(void)want;
	}
	reap__mgr_sess_close(db, s);
	reap__mgr_sess_close(db, s3);
	db_end();
}

TEST(blpop_ready_retry_timeout)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2), *c3 = sess(3);

	EXPECT(a, "BLPOP q 0", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	ASSERT_EQ_SIZE(last_blk.deadline_ns, REAP_FOREVER);
	ASSERT_EQ_INT(ready_calls, 0);
	EXPECT(b, "SET other 1", "+OK\r\n");
	ASSERT_EQ_INT(ready_calls, 0);
	EXPECT(b, "RPUSH q x y", ":2\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	ASSERT_EQ_STR(ready_key, "q"); /* only the commands naming q retry */
	EXPECT(a, "BLPOP q 0", "*2\r\n$1\r\nq\r\n$1\r\nx\r\n");
	ASSERT_EQ_INT(last_rc, 0);
	EXPECT(a, "BRPOP none q 0", "*2\r\n$1\r\nq\r\n$1\r\ny\r\n");
	EXPECT(a, "EXISTS q", ":0\r\n");
	/* no one blocked: no hook */
	EXPECT(b, "RPUSH z x", ":1\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	/* the timeout: the deadline is kept across retries */
	EXPECT(a, "BLPOP q 1.5", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 1500 * MS);
	fake_t += 1000 * MS;
	EXPECT(a, "BLPOP q 1.5", ""); /* a spurious wake */
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 500 * MS);
	fake_t += 500 * MS;
	ASSERT_EQ_STR(xt(a, 1, "BLPOP q 1.5"), "*-1\r\n");
	ASSERT_EQ_INT(last_rc, 0);
	ASSERT_EQ_STR(xt(c3, 0, "BLPOP q 0.001"), "");
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 1 * MS);
	ASSERT_EQ_STR(xt(c3, 1, "BLPOP q 0.001"), "_\r\n");
	/* errors */
	EXPECT(a, "BLPOP q abc", "-ERR timeout is not a float or out of range\r\n");
	EXPECT(a, "BLPOP q -1", "-ERR timeout is negative\r\n");
	EXPECT(a, "BLPOP q", "-ERR wrong number of arguments for 'blpop' command\r\n");
	EXPECT(a, "SET s v", "+OK\r\n");
	EXPECT(a, "BLPOP s 0",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	/* a blocked session that closes is forgotten */
	EXPECT(a, "BLPOP q 0", "");
	reap__mgr_sess_close(db, a);
	EXPECT(b, "LPUSH q 1", ":1\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	reap__mgr_sess_close(db, b);
	reap__mgr_sess_close(db, c3);
	db_end();
}

/* ------------------------------------------------------------------ */
/* Lifetimes                                                            */

static uint64_t reclaimed(void)
{
	reap__mgr_db_stats st;

	reap__mgr_db_stats_get(db, &st);
	return st.reclaimed;
}

TEST(reap_create_errors)
{
	db_begin();
	reap__mgr_sess *s = sess(2);

	EXPECT(s, "REAP.CREATE widget k session", "-ERR unknown object type\r\n");
	EXPECT(s, "REAP.CREATE value k forever", "-ERR unknown lifetime\r\n");
	EXPECT(s, "REAP.CREATE dict k session extra", "-ERR syntax error\r\n");
	EXPECT(s, "REAP.CREATE semaphore k session", "-ERR syntax error\r\n");
	EXPECT(s, "REAP.CREATE semaphore k session -1",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "REAP.CREATE counter k session x",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(s, "REAP.CREATE value k session a b",
	       "-ERR syntax error\r\n");
	EXPECT(s, "REAP.CREATE value k",
	       "-ERR wrong number of arguments for 'reap.create' command\r\n");
	EXPECT(s, "DBSIZE", ":0\r\n");
	EXPECT(s, "REAP.CREATE value k session", "+OK\r\n");
	EXPECT(s, "GET k", "$0\r\n\r\n");
	EXPECT(s, "REAP.CREATE value k session", "-ERR key already exists\r\n");
	EXPECT(s, "REAP.CREATE counter c persistent 7", "+OK\r\n");
	EXPECT(s, "INCR c", ":8\r\n");
	EXPECT(s, "REAP.CREATE counter c0 persistent", "+OK\r\n");
	EXPECT(s, "GET c0", "$1\r\n0\r\n");
	EXPECT(s, "REAP.CREATE value v persistent hello", "+OK\r\n");
	EXPECT(s, "GET v", "$5\r\nhello\r\n");
	EXPECT(s, "REAP.CREATE queue q persistent", "+OK\r\n");
	EXPECT(s, "TYPE q", "+list\r\n");
	EXPECT(s, "RPUSH q a", ":1\r\n");
	EXPECT(s, "LPOP q", "$1\r\na\r\n");
	EXPECT(s, "EXISTS q", ":1\r\n"); /* REAP.CREATE'd: stays when empty */
	EXPECT(s, "LPOP q", "$-1\r\n");
	EXPECT(s, "REAP.HOLD q", "-ERR object is not shared\r\n");
	EXPECT(s, "REAP.HOLD nope", "-ERR no such key\r\n");
	/* With a kind: checked before anything else, kinds that share a
	 * representation apart; plain data fits any kind of its own. */
	EXPECT(s, "REAP.HOLD q list",
	       "-WRONGTYPE the key holds a queue, not a list\r\n");
	EXPECT(s, "REAP.HOLD q queue", "-ERR object is not shared\r\n");
	EXPECT(s, "REAP.HOLD c value",
	       "-WRONGTYPE the key holds a counter, not a value\r\n");
	EXPECT(s, "REAP.HOLD q bogus", "-ERR unknown object type\r\n");
	EXPECT(s, "REAP.HOLD q queue x",
	       "-ERR wrong number of arguments for 'reap.hold' command\r\n");
	EXPECT(s, "REAP.CREATE dict sd shared", "+OK\r\n");
	EXPECT(s, "REAP.HOLD sd namespace",
	       "-WRONGTYPE the key holds a dict, not a namespace\r\n");
	EXPECT(s, "REAP.HOLD sd dict", ":2\r\n");
	EXPECT(s, "HSET plain f v", ":1\r\n");
	EXPECT(s, "REAP.HOLD plain namespace", "-ERR object is not shared\r\n");
	EXPECT(s, "REAP.HOLD plain list",
	       "-WRONGTYPE the key holds a hash, not a list\r\n");
	/* overwritten by SET: plain data, whatever it was made as */
	EXPECT(s, "SET sd 5", "+OK\r\n");
	EXPECT(s, "REAP.HOLD sd dict",
	       "-WRONGTYPE the key holds a string, not a dict\r\n");
	EXPECT(s, "REAP.HOLD sd counter", ":3\r\n");
	EXPECT(s, "REAP.HOLD c counter", "-ERR object is not shared\r\n");
	EXPECT(s, "REAP.LOCK q",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	reap__mgr_sess_close(db, s);
	db_end();
}

TEST(lifetime_session)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2);

	EXPECT(a, "REAP.CREATE dict d session", "+OK\r\n");
	EXPECT(a, "HSET d f v", ":1\r\n");
	EXPECT(b, "HGET d f", "$1\r\nv\r\n");
	EXPECT(a, "REAP.CREATE value v session x", "+OK\r\n");
	EXPECT(b, "SET v y", "+OK\r\n"); /* SET keeps the object's lifetime */
	EXPECT(a, "SET p 1", "+OK\r\n");
	EXPECT(b, "DBSIZE", ":3\r\n");
	reap__mgr_sess_close(db, a);
	EXPECT(b, "DBSIZE", ":1\r\n");
	EXPECT(b, "EXISTS d v p", ":1\r\n");
	ASSERT_EQ_SIZE(reclaimed(), 2);
	reap__mgr_sess_close(db, b);
	db_end();
}

TEST(lifetime_shared)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2), *c = sess(2);

	EXPECT(a, "REAP.CREATE list l shared", "+OK\r\n");
	EXPECT(b, "REAP.HOLD l", ":2\r\n");
	EXPECT(b, "REAP.HOLD l", ":3\r\n");
	EXPECT(c, "REAP.RELEASE l", "-ERR object not held by this session\r\n");
	EXPECT(a, "REAP.RELEASE l", ":2\r\n");
	EXPECT(a, "REAP.RELEASE l", "-ERR object not held by this session\r\n");
	EXPECT(b, "REAP.RELEASE l", ":1\r\n");
	EXPECT(b, "REAP.RELEASE l", ":0\r\n"); /* the last: deleted */
	EXPECT(b, "EXISTS l", ":0\r\n");
	/* the last holder closing deletes it */
	EXPECT(a, "REAP.CREATE event e shared", "+OK\r\n");
	EXPECT(b, "REAP.HOLD e", ":2\r\n");
	reap__mgr_sess_close(db, a);
	EXPECT(c, "EXISTS e", ":1\r\n");
	ASSERT_EQ_SIZE(reclaimed(), 0);
	reap__mgr_sess_close(db, b);
	EXPECT(c, "EXISTS e", ":0\r\n");
	ASSERT_EQ_SIZE(reclaimed(), 1);
	reap__mgr_sess_close(db, c);
	db_end();
}

TEST(lifetime_persistent)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2);

	EXPECT(a, "REAP.CREATE counter n persistent", "+OK\r\n");
	EXPECT(a, "REAP.CREATE lock L persistent", "+OK\r\n");
	EXPECT(a, "LPUSH redis x", ":1\r\n");
	reap__mgr_sess_close(db, a);
	EXPECT(b, "EXISTS n L redis", ":3\r\n");
	EXPECT(b, "DEL n", ":1\r\n");
	reap__mgr_sess_close(db, b);
	ASSERT_EQ_SIZE(nkeys(), 2);
	ASSERT_EQ_SIZE(reclaimed(), 0);
	db_end();
}

TEST(lock_owner_died)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2), *c = sess(3);

	EXPECT(a, "REAP.CREATE lock L persistent", "+OK\r\n");
	EXPECT(a, "REAP.LOCK L", "+OK\r\n");
	EXPECT(a, "REAP.LOCK L", "-ERR lock already held by this session\r\n");
	EXPECT(b, "REAP.UNLOCK L", "-ERR lock not held by this session\r\n");
	EXPECT(b, "REAP.LOCK L 2", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 2 * NS);
	ASSERT_EQ_STR(xt(b, 1, "REAP.LOCK L 2"), "$-1\r\n");
	ASSERT_EQ_STR(xt(c, 0, "REAP.LOCK L"), "");
	ASSERT_EQ_SIZE(last_blk.deadline_ns, REAP_FOREVER);
	EXPECT(a, "REAP.UNLOCK L", "+OK\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	ASSERT_EQ_STR(ready_key, "L");
	ASSERT_EQ_STR(xt(c, 0, "REAP.LOCK L"), "+OK\r\n");
	/* c dies holding it: the next locker learns it, once */
	EXPECT(a, "REAP.LOCK L", "");
	reap__mgr_sess_close(db, c);
	ASSERT_EQ_INT(ready_calls, 2);
	ASSERT_EQ_STR(ready_key, "*"); /* a session's end may free anything */
	EXPECT(a, "REAP.LOCK L", "+OWNERDIED\r\n");
	EXPECT(a, "REAP.UNLOCK L", "+OK\r\n");
	EXPECT(b, "REAP.LOCK L", "+OK\r\n");
	EXPECT(b, "REAP.UNLOCK L", "+OK\r\n");
	EXPECT(b, "REAP.LOCK L x", "-ERR timeout is not a float or out of range\r\n");
	EXPECT(b, "REAP.LOCK L 1 2", "-ERR syntax error\r\n");
	EXPECT(b, "REAP.LOCK nope", "-ERR no such key\r\n");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, b);
	db_end();
}

TEST(semaphore_and_event)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2);

	EXPECT(a, "REAP.CREATE semaphore S persistent 2", "+OK\r\n");
	EXPECT(a, "REAP.ACQUIRE S", "+OK\r\n");
	EXPECT(b, "REAP.ACQUIRE S", "+OK\r\n");
	EXPECT(a, "REAP.ACQUIRE S", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	EXPECT(b, "REAP.RELEASESEM S", "+OK\r\n");
	EXPECT(b, "REAP.RELEASESEM S", "-ERR semaphore not held by this session\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	ASSERT_EQ_STR(ready_key, "S");
	EXPECT(a, "REAP.ACQUIRE S", "+OK\r\n");
	EXPECT(b, "REAP.ACQUIRE S", "");
	reap__mgr_sess_close(db, a); /* gives back 2 permits, marks died */
	ASSERT_EQ_INT(ready_calls, 2);
	EXPECT(b, "REAP.ACQUIRE S", "+OWNERDIED\r\n");
	EXPECT(b, "REAP.ACQUIRE S", "+OK\r\n");
	a = sess(2);
	EXPECT(a, "REAP.CREATE event E session", "+OK\r\n");
	EXPECT(b, "REAP.WAIT E", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	ASSERT_EQ_STR(xt(b, 1, "REAP.WAIT E"), "$-1\r\n");
	EXPECT(b, "REAP.WAIT E 0", "");
	EXPECT(a, "REAP.SET E", "+OK\r\n");
	ASSERT_EQ_INT(ready_calls, 3);
	ASSERT_EQ_STR(ready_key, "E");
	EXPECT(b, "REAP.WAIT E 0", "+OK\r\n");
	EXPECT(a, "REAP.CLEAR E", "+OK\r\n");
	EXPECT(b, "REAP.WAIT E", "");
	reap__mgr_sess_close(db, a); /* E deleted: the waiter is woken */
	ASSERT_EQ_INT(ready_calls, 4);
	EXPECT(b, "REAP.WAIT E", "-ERR no such key\r\n");
	reap__mgr_sess_close(db, b);
	db_end();
}

TEST(sessions_200_reclaimed)
{
	reap__mgr_sess *v[200], *keep;
	char line[128];

	db_begin();
	keep = sess(2);
	EXPECT(keep, "REAP.CREATE lock L persistent", "+OK\r\n");
	EXPECT(keep, "REAP.CREATE semaphore S persistent 1000", "+OK\r\n");
	EXPECT(keep, "REAP.CREATE dict shared:0 shared", "+OK\r\n");
	for (int i = 0; i < 200; i++) {
		v[i] = sess(i % 2 ? 3 : 2);
		snprintf(line, sizeof(line), "REAP.CREATE value s:%d session x", i);
		EXPECT(v[i], line, "+OK\r\n");
		snprintf(line, sizeof(line), "REAP.CREATE list q:%d shared", i);
		EXPECT(v[i], line, "+OK\r\n");
		snprintf(line, sizeof(line), "REAP.HOLD q:%d", i ? i - 1 : 199);
		x(v[i], line);
		snprintf(line, sizeof(line), ":%d\r\n", i + 2);
		EXPECT(v[i], "REAP.HOLD shared:0", line);
		EXPECT(v[i], "REAP.ACQUIRE S", "+OK\r\n");
	}
	EXPECT(v[7], "REAP.LOCK L", "+OK\r\n");
	ASSERT_EQ_SIZE(nkeys(), 3 + 400);
	for (int i = 0; i < 200; i++)
		reap__mgr_sess_close(db, v[(i * 37) % 200]);
	ASSERT_EQ_SIZE(nkeys(), 3);
	ASSERT_EQ_SIZE(reclaimed(), 400);
	EXPECT(keep, "REAP.LOCK L", "+OWNERDIED\r\n");
	EXPECT(keep, "REAP.SESSIONS", "*1\r\n*10\r\n$2\r\nid\r\n:1\r\n$3\r\npid\r\n"
				      ":1234\r\n$4\r\nname\r\n$0\r\n\r\n$5\r\nproto\r\n"
				      ":2\r\n$4\r\nties\r\n:2\r\n");
	EXPECT(keep, "REAP.RELEASE shared:0", ":0\r\n");
	ASSERT_EQ_SIZE(nkeys(), 2);
	reap__mgr_sess_close(db, keep);
	ASSERT_EQ_SIZE(nkeys(), 2);
	db_end();
}

TEST(introspection)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(3), *b = sess(2);

	ASSERT_OK(reap__mgr_sess_set_name(a, "worker", 6));
	ASSERT_EQ_STR(reap__mgr_sess_name(a), "worker");
	ASSERT_EQ_STR(reap__mgr_sess_name(b), "");
	ASSERT_EQ_INT(reap__mgr_sess_id(a), 1);
	ASSERT_EQ_INT(reap__mgr_sess_id(b), 2);
	ASSERT_EQ_INT(reap__mgr_sess_pid(a), 1234);
	EXPECT(a, "reap.create value K session", "+OK\r\n");
	fake_t += 1500 * MS;
	EXPECT(b, "REAP.OBJECTS",
	       "*1\r\n*32\r\n"
	       "$3\r\nkey\r\n$1\r\nK\r\n"
	       "$4\r\ntype\r\n$5\r\nvalue\r\n"
	       "$8\r\nlifetime\r\n$7\r\nsession\r\n"
	       "$5\r\nowner\r\n:1\r\n"
	       "$9\r\nowner-pid\r\n:1234\r\n"
	       "$10\r\nowner-name\r\n$6\r\nworker\r\n"
	       "$7\r\nholders\r\n:0\r\n"
	       "$15\r\nholder-sessions\r\n:0\r\n"
	       "$7\r\ncreator\r\n:1\r\n"
	       "$11\r\ncreator-pid\r\n:1234\r\n"
	       "$12\r\ncreator-name\r\n$6\r\nworker\r\n"
	       "$11\r\ncreator-cmd\r\n$11\r\nREAP.CREATE\r\n"
	       "$12\r\ncreator-site\r\n$0\r\n\r\n"
	       "$6\r\nage-ms\r\n:1500\r\n"
	       "$6\r\nttl-ms\r\n:-1\r\n"
	       "$5\r\nstate\r\n:0\r\n");
	EXPECT(a, "DEL K", ":1\r\n");
	EXPECT(b, "SET P v", "+OK\r\n");
	ASSERT_CONTAINS(x(a, "REAP.OBJECTS"), "*1\r\n%16\r\n$3\r\nkey\r\n$1\r\nP\r\n"
					      "$4\r\ntype\r\n$6\r\nstring\r\n"
					      "$8\r\nlifetime\r\n$10\r\npersistent\r\n"
					      "$5\r\nowner\r\n:0\r\n");
	ASSERT_CONTAINS(reply, "$7\r\ncreator\r\n:2\r\n");
	ASSERT_CONTAINS(reply, "$11\r\ncreator-cmd\r\n$3\r\nSET\r\n");
	reap__mgr_sess_close(db, a);
	/* the creator's name is a copy: it outlives the session */
	ASSERT_CONTAINS(x(b, "REAP.OBJECTS"), "$7\r\ncreator\r\n:2\r\n");
	reap__mgr_sess_close(db, b);
	db_end();
}

TEST(stats)
{
	reap__mgr_db_stats st;

	db_begin();
	reap__mgr_sess *a = sess(2);

	x(a, "SET a 1");
	x(a, "GET a");
	x(a, "NOPE");
	reap__mgr_db_stats_get(db, &st);
	ASSERT_EQ_SIZE(st.keys, 1);
	ASSERT_EQ_SIZE(st.sessions, 1);
	ASSERT_EQ_SIZE(st.commands, 3);
	reap__mgr_sess_close(db, a);
	reap__mgr_db_stats_get(db, &st);
	ASSERT_EQ_SIZE(st.sessions, 0);
	db_end();
}

TEST(many_keys)
{
	char line[64], want[64];

	db_begin();
	reap__mgr_sess *a = sess(2);

	for (int i = 0; i < 20000; i++) {
		snprintf(line, sizeof(line), "SET key:%d %d", i, i);
		EXPECT(a, line, "+OK\r\n");
	}
	for (int i = 0; i < 20000; i += 2) {
		snprintf(line, sizeof(line), "DEL key:%d", i);
		EXPECT(a, line, ":1\r\n");
	}
	EXPECT(a, "DBSIZE", ":10000\r\n");
	for (int i = 0; i < 20000; i++) {
		snprintf(line, sizeof(line), "GET key:%d", i);
		if (i % 2)
			snprintf(want, sizeof(want), "$%d\r\n%d\r\n",
				 (int)strlen(line + 8), i);
		else
			snprintf(want, sizeof(want), "$-1\r\n");
		EXPECT(a, line, want);
	}
	reap__mgr_sess_close(db, a);
	db_end();
}

/* ------------------------------------------------------------------ */
/* Allocation-failure sweeps                                            */

/* Run line in s with the n-th allocation failing, for n = 1, 2, ...,
 * until it returns `done` (0, or REAP__MGR_BLOCKED for a command that
 * waits). Each failure must be -ENOMEM with no reply written and no
 * block leaked or kept; then after(ctx), if given, checks the rest.
 * Returns how many failures were seen. */
static int sweep_until(reap__mgr_sess *s, const char *line, int done,
		       void (*after)(void *ctx), void *ctx)
{
	cmdline c;
	int fails = 0;

	split(&c, line);
	for (long n = 1;; n++) {
		struct test_snap snap = test_snap();
		reap__resp_buf b;
		int rc;

		reap__resp_buf_init(&b, reap__mgr_sess_proto(s), 0);
		reap_fault_alloc(n);
		rc = reap__mgr_exec(db, s, c.argc, c.argv, 0, &b, &last_blk);
		test_fault_disarm();
		if (rc == done) {
			reap__resp_buf_fini(&b);
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_EQ_SIZE(b.len, 0);
		reap__resp_buf_fini(&b);
		if (reap_alloc_live() != snap.live)
			test_fail(__FILE__, __LINE__, "%s, allocation %ld failed: "
				  "%zu blocks live, %zu before", line, n,
				  reap_alloc_live(), snap.live);
		ASSERT_UNCHANGED(snap);
		if (after)
			after(ctx);
		fails++;
		ASSERT_TRUE(n < 1000);
	}
	return fails;
}

/* What a failed line must leave as it was: check's reply in s. */
struct unchanged {
	reap__mgr_sess *s;
	const char *check;
	char before[4096];
};

static void check_unchanged(void *ctx)
{
	struct unchanged *u = ctx;

	ASSERT_EQ_STR(x(u->s, u->check), u->before);
}

/* Sweep line (see sweep_until) to success; after each failure `check`
 * (a read-only command) answers as before, and after the success it
 * does not. */
static int sweep(reap__mgr_sess *s, const char *line, const char *check)
{
	static struct unchanged u;
	int fails;

	u.s = s;
	u.check = check;
	strcpy(u.before, x(s, check));
	fails = sweep_until(s, line, 0, check_unchanged, &u);
	ASSERT_TRUE(strcmp(x(s, check), u.before) != 0);
	return fails;
}

TEST(oom_sweep_commands)
{
	fake_clock(); /* REAP.OBJECTS's ages stand still */
	db_begin();
	reap__mgr_sess *s = sess(2);

	ASSERT_GT_INT(sweep(s, "SET k v", "GET k"), 0);
	ASSERT_GT_INT(sweep(s, "SET k longer-value", "GET k"), 0);
	ASSERT_GT_INT(sweep(s, "SET k w GET", "GET k"), 0);
	ASSERT_GT_INT(sweep(s, "MSET k a m b n c", "MGET k m n"), 0);
	ASSERT_GT_INT(sweep(s, "INCR ctr", "GET ctr"), 0);
	ASSERT_GT_INT(sweep(s, "INCRBYFLOAT ctr 0.5", "GET ctr"), 0);
	ASSERT_GT_INT(sweep(s, "HSET h f v g w", "HGETALL h"), 0);
	ASSERT_GT_INT(sweep(s, "HSET h f x z y", "HMGET h f g z"), 0);
	ASSERT_GT_INT(sweep(s, "HINCRBY h n 3", "HGET h n"), 0);
	ASSERT_GT_INT(sweep(s, "LPUSH l a b c", "LRANGE l 0 -1"), 0);
	ASSERT_GT_INT(sweep(s, "RPUSH l d e f g h i j k l m", "LRANGE l 0 -1"), 0);
	ASSERT_GT_INT(sweep(s, "LPUSH l x y z", "LRANGE l 0 -1"), 0);
	/* (REAP.OBJECTS lists in table order, which a rehash changes) */
	ASSERT_GT_INT(sweep(s, "REAP.CREATE lock L session", "EXISTS L"), 0);
	ASSERT_GT_INT(sweep(s, "REAP.CREATE value V shared init", "GET V"), 0);
	ASSERT_GT_INT(sweep(s, "REAP.CREATE semaphore S persistent 3",
			    "EXISTS S"), 0);
	ASSERT_GT_INT(sweep(s, "REAP.CREATE dict D session", "EXISTS D"), 0);
	ASSERT_GT_INT(sweep(s, "HSET D a b", "HGETALL D"), 0);
	ASSERT_GT_INT(sweep(s, "REAP.CREATE queue Q session", "EXISTS Q"), 0);
	ASSERT_GT_INT(sweep(s, "LPUSH Q a", "LRANGE Q 0 -1"), 0);
	{
		reap__mgr_sess *t = sess(2);

		reap__mgr_sess *u = sess(2);

		/* the reply buffer's allocation, then for the third
		 * holder the growth of the holds array too */
		ASSERT_EQ_INT(sweep(t, "REAP.HOLD V", "REAP.OBJECTS"), 1);
		ASSERT_EQ_INT(sweep(u, "REAP.HOLD V", "REAP.OBJECTS"), 2);
		reap__mgr_sess_close(db, u);
		ASSERT_GT_INT(sweep(t, "REAP.ACQUIRE S", "REAP.OBJECTS"), 0);
		reap__mgr_sess_close(db, t);
	}
	reap__mgr_sess_close(db, s);
	db_end();
}

TEST(oom_sweep_sess_and_db)
{
	reap__mgr_sess *v[40];
	int fails = 0;

	for (long n = 1;; n++) {
		struct test_snap snap = test_snap();
		reap__mgr_db *d = NULL;
		int rc;

		reap_fault_alloc(n);
		rc = reap__mgr_db_create(&d);
		test_fault_disarm();
		if (rc == 0) {
			db = d;
			break;
		}
		ASSERT_EQ_INT(rc, -ENOMEM);
		ASSERT_NULL(d);
		ASSERT_UNCHANGED(snap);
		fails++;
	}
	ASSERT_GT_INT(fails, 0);
	fails = 0;
	/* 40 sessions: the session array grows on the way */
	for (int i = 0; i < 40; i++) {
		for (long n = 1;; n++) {
			struct test_snap snap = test_snap();
			reap__mgr_db_stats st;
			reap__mgr_sess *s = NULL;
			int rc;

			reap_fault_alloc(n);
			rc = reap__mgr_sess_open(db, 0, &s);
			test_fault_disarm();
			if (rc == 0) {
				v[i] = s;
				break;
			}
			ASSERT_EQ_INT(rc, -ENOMEM);
			ASSERT_NULL(s);
			ASSERT_UNCHANGED(snap);
			reap__mgr_db_stats_get(db, &st);
			ASSERT_EQ_SIZE(st.sessions, (size_t)i);
			fails++;
		}
	}
	ASSERT_GT_INT(fails, 40);
	/* set_name: all or nothing */
	ASSERT_OK(reap__mgr_sess_set_name(v[0], "old", 3));
	reap_fault_alloc(1);
	ASSERT_EQ_INT(reap__mgr_sess_set_name(v[0], "new", 3), -ENOMEM);
	test_fault_disarm();
	ASSERT_EQ_STR(reap__mgr_sess_name(v[0]), "old");
	for (int i = 0; i < 40; i++)
		reap__mgr_sess_close(db, v[i]);
	db_end();
}

/* A reply buffer at its limit refuses: -ENOBUFS, and no effect. */
TEST(reply_limit_no_effect)
{
	db_begin();
	reap__mgr_sess *s = sess(2);
	reap__resp_buf b;
	reap__resp_arg pop[2] = {{"LPOP", 4}, {"l", 1}};
	reap__resp_arg set[3] = {{"SET", 3}, {"k", 1}, {"v", 1}};

	EXPECT(s, "RPUSH l aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", ":1\r\n");
	reap__resp_buf_init(&b, 2, 8);
	ASSERT_EQ_INT(reap__mgr_exec(db, s, 2, pop, 0, &b, &last_blk), -ENOBUFS);
	ASSERT_EQ_INT(reap__mgr_exec(db, s, 3, set, 0, &b, &last_blk), 0);
	ASSERT_EQ_SIZE(b.len, 5);
	ASSERT_EQ_INT(reap__mgr_exec(db, s, 3, set, 0, &b, &last_blk), -ENOBUFS);
	ASSERT_EQ_SIZE(b.len, 5);
	reap__resp_buf_fini(&b);
	EXPECT(s, "LLEN l", ":1\r\n");
	reap__mgr_sess_close(db, s);
	db_end();
}

/* Deleting, overwriting, flushing or expiring an object that names a
 * session unties it: the session's ties fall back, and closing it later
 * touches nothing freed (ASan would see it). */
TEST(untie_on_delete_overwrite_flush_expiry)
{
	static const char ties0[] = "$4\r\nties\r\n:0\r\n";

	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2);

	EXPECT(b, "REAP.CREATE lock L persistent", "+OK\r\n");
	EXPECT(a, "REAP.LOCK L", "+OK\r\n");
	EXPECT(b, "REAP.LOCK L", "");
	EXPECT(a, "DEL L", ":1\r\n"); /* the waiter is woken, finds nothing */
	ASSERT_EQ_INT(ready_calls, 1);
	ASSERT_EQ_STR(ready_key, "L");
	EXPECT(b, "REAP.LOCK L", "-ERR no such key\r\n");
	ASSERT_CONTAINS(x(a, "REAP.SESSIONS"), ties0);
	ASSERT_FALSE(strstr(reply, ":1\r\n$4\r\nties") != NULL);
	EXPECT(b, "REAP.CREATE semaphore S persistent 1", "+OK\r\n");
	EXPECT(a, "REAP.ACQUIRE S", "+OK\r\n");
	EXPECT(b, "SET S plain", "+OK\r\n"); /* SET replaces the semaphore */
	EXPECT(b, "TYPE S", "+string\r\n");
	EXPECT(a, "REAP.RELEASESEM S",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(a, "REAP.CREATE dict D session", "+OK\r\n");
	EXPECT(a, "REAP.CREATE list Q shared", "+OK\r\n");
	EXPECT(b, "REAP.HOLD Q", ":2\r\n");
	EXPECT(b, "FLUSHALL", "+OK\r\n");
	EXPECT(a, "REAP.CREATE value V session", "+OK\r\n");
	EXPECT(a, "PEXPIRE V 10", ":1\r\n");
	fake_t += 11 * MS;
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, reap_now_ns()), 1);
	/* both sessions are free of ties */
	x(a, "REAP.SESSIONS");
	ASSERT_CONTAINS(reply, ties0);
	ASSERT_CONTAINS(strstr(reply, ties0) + 1, ties0);
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, b);
	ASSERT_EQ_SIZE(reclaimed(), 0);
	db_end();
}

TEST(unknown_command_nul_in_args)
{
	db_begin();
	reap__mgr_sess *s = sess(2);
	reap__resp_arg a[3] = {{"zz\0q", 4}, {"a\0b", 3}, {"c", 1}};

	/* Redis formats the name and each argument as C strings */
	ASSERT_EQ_STR(xv(s, 0, 3, a), "-ERR unknown command 'zz', with args "
				      "beginning with: 'a' 'c' \r\n");
	reap__mgr_sess_close(db, s);
	db_end();
}

/* HGETALL lists fields as Redis's small hashes do (checked against
 * redis-server 7.0): insertion order, an update in place, a deleted
 * field's place closed up; also after enough deletions to compact. */
TEST(hash_order_as_redis)
{
	char line[64];
	static const char want[] =
		"*28\r\n$2\r\nf1\r\n$1\r\n1\r\n$2\r\nf2\r\n$1\r\n2\r\n$2\r\nf4\r\n"
		"$1\r\n4\r\n$2\r\nf5\r\n$1\r\nx\r\n$2\r\nf7\r\n$1\r\n7\r\n$2\r\nf8\r\n"
		"$1\r\n8\r\n$3\r\nf10\r\n$2\r\n10\r\n$3\r\nf11\r\n$2\r\n11\r\n$3\r\n"
		"f13\r\n$2\r\n13\r\n$3\r\nf14\r\n$2\r\n14\r\n$3\r\nf16\r\n$2\r\n16\r\n"
		"$3\r\nf17\r\n$2\r\n17\r\n$3\r\nf19\r\n$2\r\n19\r\n$3\r\nnew\r\n$1\r\n"
		"y\r\n";

	db_begin();
	reap__mgr_sess *s = sess(2), *s3 = sess(3);

	EXPECT(s, "HSET h a 1 b 2 c 3", ":3\r\n");
	EXPECT(s, "HSET h a 9", ":0\r\n");
	EXPECT(s, "HDEL h b", ":1\r\n");
	EXPECT(s, "HSET h b 5 d 6", ":2\r\n");
	EXPECT(s, "HGETALL h", "*8\r\n$1\r\na\r\n$1\r\n9\r\n$1\r\nc\r\n$1\r\n3\r\n"
			       "$1\r\nb\r\n$1\r\n5\r\n$1\r\nd\r\n$1\r\n6\r\n");
	EXPECT(s3, "HGETALL h", "%4\r\n$1\r\na\r\n$1\r\n9\r\n$1\r\nc\r\n$1\r\n3\r\n"
				"$1\r\nb\r\n$1\r\n5\r\n$1\r\nd\r\n$1\r\n6\r\n");
	for (int i = 0; i < 20; i++) {
		snprintf(line, sizeof(line), "HSET g f%d %d", i, i);
		EXPECT(s, line, ":1\r\n");
	}
	for (int i = 0; i < 20; i += 3) {
		snprintf(line, sizeof(line), "HDEL g f%d", i);
		EXPECT(s, line, ":1\r\n");
	}
	EXPECT(s, "HSET g f5 x new y", ":1\r\n");
	EXPECT(s, "HGETALL g", want);
	/* delete most: the order array closes up, the order stays */
	for (int i = 1; i < 17; i++) {
		snprintf(line, sizeof(line), "HDEL g f%d", i);
		x(s, line);
	}
	EXPECT(s, "HGETALL g", "*6\r\n$3\r\nf17\r\n$2\r\n17\r\n$3\r\nf19\r\n$2\r\n19\r\n"
			       "$3\r\nnew\r\n$1\r\ny\r\n");
	EXPECT(s, "HSET g z 1", ":1\r\n");
	EXPECT(s, "HGET g f19", "$2\r\n19\r\n");
	ASSERT_CONTAINS(x(s, "HGETALL g"), "$3\r\nnew\r\n$1\r\ny\r\n$1\r\nz\r\n$1\r\n1\r\n");
	reap__mgr_sess_close(db, s);
	reap__mgr_sess_close(db, s3);
	db_end();
}

/* ------------------------------------------------------------------ */
/* Barriers and namespaces                                              */

/* The barrier arrivals of a generation: n sessions in turn; all but the
 * last block; the last gets :n-1 and wakes the others, whose retries
 * each get their own index, once. */
static void barrier_round(reap__mgr_sess **v, int n, const char *cmd)
{
	bool seen[8] = {false};
	int before = ready_calls;

	for (int i = 0; i < n - 1; i++) {
		ASSERT_EQ_STR(x(v[i], cmd), "");
		ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
		ASSERT_EQ_INT(ready_calls, before); /* nobody can proceed yet */
	}
	ASSERT_EQ_STR(x(v[n - 1], cmd), n == 3 ? ":2\r\n" : ":1\r\n");
	ASSERT_EQ_INT(last_rc, 0);
	ASSERT_EQ_INT(ready_calls, before + (n > 1));
	seen[n - 1] = true;
	for (int i = 0; i < n - 1; i++) {
		long long idx;

		x(v[i], cmd);
		ASSERT_EQ_INT(last_rc, 0);
		ASSERT_TRUE(reply[0] == ':');
		idx = strtoll(reply + 1, NULL, 10);
		ASSERT_TRUE(idx >= 0 && idx < n);
		ASSERT_FALSE(seen[idx]);
		seen[idx] = true;
	}
	for (int i = 0; i < n; i++)
		ASSERT_TRUE(seen[i]);
}

TEST(barrier_three_sessions)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2), *c = sess(3);
	reap__mgr_sess *v[3] = {a, b, c}, *w[3] = {c, a, b};

	EXPECT(a, "REAP.CREATE barrier X session 0",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(a, "REAP.CREATE barrier X session -2",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(a, "REAP.CREATE barrier X session two",
	       "-ERR value is not an integer or out of range\r\n");
	EXPECT(a, "REAP.CREATE barrier X session", "-ERR syntax error\r\n");
	EXPECT(a, "REAP.CREATE barrier B persistent 3", "+OK\r\n");
	EXPECT(a, "TYPE B", "+barrier\r\n");
	EXPECT(a, "REAP.BARRIER nope", "-ERR no such key\r\n");
	EXPECT(a, "REAP.BARRIER B x",
	       "-ERR timeout is not a float or out of range\r\n");
	EXPECT(a, "REAP.BARRIER B 1 2", "-ERR syntax error\r\n");
	EXPECT(a, "SET s v", "+OK\r\n");
	EXPECT(a, "REAP.BARRIER s",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(a, "REAP.BARRIER B", "");
	ASSERT_EQ_SIZE(last_blk.deadline_ns, REAP_FOREVER);
	ASSERT_CONTAINS(x(b, "REAP.OBJECTS"), "$7\r\nbarrier\r\n");
	ASSERT_CONTAINS(reply, "$5\r\nstate\r\n:1\r\n");
	/* a spurious retry is not a second arrival */
	EXPECT(a, "REAP.BARRIER B", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	EXPECT(b, "REAP.BARRIER B", "");
	/* (a blocked session runs nothing else: c asks) */
	ASSERT_CONTAINS(x(c, "REAP.OBJECTS"), "$5\r\nstate\r\n:2\r\n");
	EXPECT(c, "REAP.BARRIER B", ":2\r\n");
	ASSERT_EQ_INT(ready_calls, 1);
	ASSERT_EQ_STR(ready_key, "B");
	ASSERT_CONTAINS(x(c, "REAP.OBJECTS"), "$5\r\nstate\r\n:0\r\n");
	/* the waiters' retries: their arrival order, each once */
	EXPECT(a, "REAP.BARRIER B", ":0\r\n");
	EXPECT(b, "REAP.BARRIER B", ":1\r\n");
	/* the next generations, in other orders */
	barrier_round(w, 3, "REAP.BARRIER B");
	barrier_round(v, 3, "REAP.BARRIER B 5");
	/* one party: never waits */
	EXPECT(a, "REAP.CREATE barrier one session 1", "+OK\r\n");
	EXPECT(b, "REAP.BARRIER one", ":0\r\n");
	EXPECT(b, "REAP.BARRIER one", ":0\r\n");
	/* the waiters are tied to it: REAP.SESSIONS counts them */
	EXPECT(a, "REAP.BARRIER B", "");
	ASSERT_CONTAINS(x(b, "REAP.SESSIONS"), "$4\r\nties\r\n:2\r\n"); /* a: one, B */
	reap__mgr_sess_close(db, c);
	reap__mgr_sess_close(db, b);
	reap__mgr_sess_close(db, a); /* withdraws, then deletes "one" */
	ASSERT_EQ_SIZE(nkeys(), 2);
	db_end();
}

TEST(barrier_timeout_withdraws)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(3), *c = sess(2);

	EXPECT(a, "REAP.CREATE barrier B session 2", "+OK\r\n");
	EXPECT(a, "REAP.BARRIER B 1.5", "");
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 1500 * MS);
	fake_t += 1000 * MS;
	EXPECT(a, "REAP.BARRIER B 1.5", ""); /* spurious: the deadline kept */
	ASSERT_EQ_SIZE(last_blk.deadline_ns, fake_t + 500 * MS);
	fake_t += 500 * MS;
	ASSERT_EQ_STR(xt(a, 1, "REAP.BARRIER B 1.5"), "$-1\r\n");
	ASSERT_EQ_INT(last_rc, 0);
	ASSERT_CONTAINS(x(c, "REAP.OBJECTS"), "$5\r\nstate\r\n:0\r\n");
	/* withdrawn: b's arrival is the first again, not the last */
	EXPECT(b, "REAP.BARRIER B 0.25", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	fake_t += 250 * MS;
	/* timed out on its own clock (no timed_out flag): RESP3 null */
	EXPECT(b, "REAP.BARRIER B 0.25", "_\r\n");
	EXPECT(b, "REAP.BARRIER B", "");
	EXPECT(c, "REAP.BARRIER B", ":1\r\n");
	EXPECT(b, "REAP.BARRIER B", ":0\r\n");
	/* a waiter released at its deadline gets its index, not null */
	EXPECT(a, "REAP.BARRIER B 1", "");
	EXPECT(c, "REAP.BARRIER B", ":1\r\n");
	fake_t += 2 * NS;
	ASSERT_EQ_STR(xt(a, 1, "REAP.BARRIER B 1"), ":0\r\n");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, b);
	reap__mgr_sess_close(db, c);
	db_end();
}

TEST(barrier_waiter_dies_or_deleted)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(2), *c = sess(2), *d = sess(2);

	EXPECT(d, "REAP.CREATE barrier B persistent 2", "+OK\r\n");
	EXPECT(a, "REAP.BARRIER B", "");
	reap__mgr_sess_close(db, a); /* dies waiting: withdrawn */
	ASSERT_CONTAINS(x(d, "REAP.OBJECTS"), "$5\r\nstate\r\n:0\r\n");
	EXPECT(b, "REAP.BARRIER B", "");
	ASSERT_EQ_INT(last_rc, REAP__MGR_BLOCKED);
	EXPECT(c, "REAP.BARRIER B", ":1\r\n");
	EXPECT(b, "REAP.BARRIER B", ":0\r\n");
	/* deleted under a waiter: its retry finds no key, as a lock's */
	EXPECT(b, "REAP.BARRIER B", "");
	int rc0 = ready_calls;
	EXPECT(d, "DEL B", ":1\r\n");
	ASSERT_EQ_INT(ready_calls, rc0 + 1);
	EXPECT(b, "REAP.BARRIER B", "-ERR no such key\r\n");
	ASSERT_CONTAINS(x(b, "REAP.SESSIONS"), "$4\r\nties\r\n:0\r\n");
	/* overwritten by SET: WRONGTYPE, and untied */
	EXPECT(d, "REAP.CREATE barrier B2 session 3", "+OK\r\n");
	EXPECT(b, "REAP.BARRIER B2", "");
	EXPECT(c, "SET B2 v", "+OK\r\n");
	EXPECT(b, "REAP.BARRIER B2",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	/* the session that owns it closes under a waiter */
	EXPECT(d, "REAP.CREATE barrier B3 session 2", "+OK\r\n");
	EXPECT(b, "REAP.BARRIER B3", "");
	reap__mgr_sess_close(db, d);
	EXPECT(b, "REAP.BARRIER B3", "-ERR no such key\r\n");
	reap__mgr_sess_close(db, b);
	reap__mgr_sess_close(db, c);
	db_end();
}

TEST(namespace_basics)
{
	db_begin();
	reap__mgr_sess *a = sess(2), *b = sess(3);

	EXPECT(a, "REAP.CREATE namespace ns session", "+OK\r\n");
	EXPECT(a, "REAP.CREATE namespace ns session", "-ERR key already exists\r\n");
	EXPECT(a, "REAP.CREATE namespace ns2 session x", "-ERR syntax error\r\n");
	EXPECT(a, "TYPE ns", "+hash\r\n");
	EXPECT(a, "HLEN ns", ":0\r\n");
	EXPECT(a, "HGETALL ns", "*0\r\n");
	EXPECT(b, "HSET ns a 1 b 2", ":2\r\n");
	EXPECT(a, "HGET ns a", "$1\r\n1\r\n");
	EXPECT(a, "HMGET ns b nope", "*2\r\n$1\r\n2\r\n$-1\r\n");
	EXPECT(a, "HINCRBY ns n 5", ":5\r\n");
	EXPECT(a, "HLEN ns", ":3\r\n");
	EXPECT(b, "HGETALL ns",
	       "%3\r\n$1\r\na\r\n$1\r\n1\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nn\r\n$1\r\n5\r\n");
	EXPECT(a, "GET ns",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	ASSERT_CONTAINS(x(a, "REAP.OBJECTS"), "$4\r\ntype\r\n$9\r\nnamespace\r\n");
	ASSERT_CONTAINS(reply, "$5\r\nstate\r\n:3\r\n");
	EXPECT(b, "HDEL ns a b n nope", ":3\r\n");
	EXPECT(a, "EXISTS ns", ":1\r\n"); /* stays when emptied */
	ASSERT_CONTAINS(x(a, "REAP.OBJECTS"), "$9\r\nnamespace\r\n");
	/* a dict made by HSET is a plain hash */
	EXPECT(a, "HSET plain f v", ":1\r\n");
	EXPECT(a, "DEL plain", ":1\r\n");
	reap__mgr_sess_close(db, a); /* session lifetime: reclaimed */
	EXPECT(b, "EXISTS ns", ":0\r\n");
	reap__mgr_sess_close(db, b);
	db_end();
}

/* REAP.CREATE ... SITE where: the creator's source line, shown by
 * REAP.OBJECTS; only a trailing pair counts. */
TEST(create_with_site)
{
	db_begin();
	reap__mgr_sess *a = sess(2);

	EXPECT(a, "REAP.CREATE dict d shared SITE app.c:12", "+OK\r\n");
	ASSERT_CONTAINS(x(a, "REAP.OBJECTS"),
			"$12\r\ncreator-site\r\n$8\r\napp.c:12\r\n");
	/* with the optional argument */
	EXPECT(a, "REAP.CREATE counter k persistent 5 SITE w.c:1", "+OK\r\n");
	EXPECT(a, "GET k", "$1\r\n5\r\n");
	/* a value "SITE" is a value, not a site */
	EXPECT(a, "REAP.CREATE value v persistent SITE", "+OK\r\n");
	EXPECT(a, "GET v", "$4\r\nSITE\r\n");
	EXPECT(a, "REAP.CREATE dict e shared SITE", "-ERR syntax error\r\n");
	EXPECT(a, "REAP.CREATE dict e shared x SITE y", "-ERR syntax error\r\n");
	/* none given: empty */
	EXPECT(a, "DEL d k v", ":3\r\n");
	EXPECT(a, "REAP.CREATE list l persistent", "+OK\r\n");
	ASSERT_CONTAINS(x(a, "REAP.OBJECTS"), "$12\r\ncreator-site\r\n$0\r\n\r\n");
	reap__mgr_sess_close(db, a);
	db_end();
}

/* No one waits at barrier B, as s sees it. */
static void barrier_empty(void *s)
{
	ASSERT_CONTAINS(x(s, "REAP.OBJECTS"), "$5\r\nstate\r\n:0\r\n");
}

TEST(oom_sweep_barrier_namespace)
{
	fake_clock();
	db_begin();
	reap__mgr_sess *s = sess(2), *t = sess(2), *u = sess(2);
	int fails = 0;

	ASSERT_GT_INT(sweep(s, "REAP.CREATE barrier B session 3", "EXISTS B"), 0);
	ASSERT_GT_INT(sweep(s, "REAP.CREATE namespace N session", "EXISTS N"), 0);
	ASSERT_GT_INT(sweep(s, "HSET N f v", "HGETALL N"), 0);
	/* an arrival (blocks) grows the waiters' array: all or nothing */
	fails = sweep_until(t, "REAP.BARRIER B", REAP__MGR_BLOCKED,
			    barrier_empty, s);
	ASSERT_GT_INT(fails, 0);
	ASSERT_LT_INT(fails, 100);
	ASSERT_CONTAINS(x(s, "REAP.OBJECTS"), "$5\r\nstate\r\n:1\r\n");
	EXPECT(u, "REAP.BARRIER B", "");
	/* the release: its reply's room first */
	ASSERT_EQ_INT(sweep(s, "REAP.BARRIER B", "REAP.OBJECTS"), 1);
	EXPECT(t, "REAP.BARRIER B", ":0\r\n");
	EXPECT(u, "REAP.BARRIER B", ":1\r\n");
	reap__mgr_sess_close(db, u);
	reap__mgr_sess_close(db, t);
	reap__mgr_sess_close(db, s);
	db_end();
}

/* ------------------------------------------------------------------ */
/* CLIENT TRACKING                                                      */

static int push_calls, push_rc;

static void on_push(void *ctx, reap__mgr_sess *s, int rc)
{
	(void)ctx;
	(void)s;
	push_calls++;
	push_rc = rc;
}

/* What was pushed into b since the last call (b emptied). */
static const char *pushed(reap__resp_buf *b)
{
	static char t[4096];

	if (b == NULL)
		return t;
	ASSERT_TRUE(b->len < sizeof(t));
	if (b->len)
		memcpy(t, b->data, b->len);
	t[b->len] = '\0';
	b->len = 0;
	return t;
}

/* The last text pushed() returned. */
static const char *reply_of_push(void)
{
	return pushed(NULL);
}

#define INV(k) ">2\r\n$10\r\ninvalidate\r\n*1\r\n$" #k "\r\n"

/* A tracking RESP3 session whose pushes land in *pb. */
static reap__mgr_sess *tracker(reap__resp_buf *pb, bool noloop)
{
	reap__mgr_sess *s = sess(3);

	reap__resp_buf_init(pb, 3, 0);
	reap__mgr_sess_attach(s, pb, pb);
	reap__mgr_sess_track(db, s, true, noloop);
	ASSERT_TRUE(reap__mgr_sess_tracking(s));
	ASSERT_EQ_PTR(reap__mgr_sess_ctx(s), pb);
	return s;
}

TEST(tracking_invalidate_once)
{
	reap__resp_buf pa, pw;

	db_begin();
	reap__mgr_db_set_push_hook(db, on_push, NULL);
	push_calls = 0;
	reap__mgr_sess *a = tracker(&pa, false), *w = sess(2);

	reap__resp_buf_init(&pw, 2, 0);
	reap__mgr_sess_attach(w, &pw, NULL); /* w does not track: nothing */
	EXPECT(a, "GET k", "_\r\n");
	EXPECT(w, "SET k 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n");
	ASSERT_EQ_INT(push_calls, 1);
	ASSERT_EQ_INT(push_rc, 0);
	/* forgotten until read again */
	EXPECT(w, "SET k 2", "+OK\r\n");
	EXPECT(w, "DEL k", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	ASSERT_EQ_INT(push_calls, 1);
	ASSERT_EQ_STR(pushed(&pw), "");
	/* reading twice is remembering once */
	EXPECT(a, "GET k", "_\r\n");
	EXPECT(a, "EXISTS k k", ":0\r\n");
	EXPECT(w, "INCR k", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "k\r\n");
	/* every read command, and its keys, in the order they change */
	EXPECT(w, "HSET h f v", ":1\r\n");
	EXPECT(w, "RPUSH l a", ":1\r\n");
	EXPECT(a, "MGET m1 m2", "*2\r\n_\r\n_\r\n");
	EXPECT(a, "HGET h f", "$1\r\nv\r\n");
	EXPECT(a, "LLEN l", ":1\r\n");
	EXPECT(w, "MSET m2 1 m1 2", "+OK\r\n");
	EXPECT(w, "HDEL h nope", ":0\r\n"); /* no change: no push */
	ASSERT_EQ_STR(pushed(&pa), INV(2) "m2\r\n" INV(2) "m1\r\n");
	EXPECT(w, "HDEL h f", ":1\r\n");
	EXPECT(w, "LPOP l", "$1\r\na\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "h\r\n" INV(1) "l\r\n");
	EXPECT(w, "HSET h f v", ":1\r\n");
	EXPECT(w, "RPUSH l a b", ":2\r\n");
	EXPECT(a, "HMGET h f", "*1\r\n$1\r\nv\r\n");
	EXPECT(a, "LRANGE l 0 0", "*1\r\n$1\r\na\r\n");
	EXPECT(a, "TTL x", ":-2\r\n");
	EXPECT(a, "PTTL y", ":-2\r\n");
	EXPECT(a, "TYPE z", "+none\r\n");
	EXPECT(a, "HLEN g", ":0\r\n");
	EXPECT(w, "HINCRBY h n 1", ":1\r\n");
	EXPECT(w, "RPOP l", "$1\r\nb\r\n");
	EXPECT(w, "SET x 1", "+OK\r\n");
	EXPECT(w, "SET y 1", "+OK\r\n");
	EXPECT(w, "LPUSH z 1", ":1\r\n");
	EXPECT(w, "HSET g a b", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "h\r\n" INV(1) "l\r\n" INV(1) "x\r\n"
				   INV(1) "y\r\n" INV(1) "z\r\n" INV(1) "g\r\n");
	EXPECT(a, "HGETALL h", "%2\r\n$1\r\nf\r\n$1\r\nv\r\n$1\r\nn\r\n$1\r\n1\r\n");
	EXPECT(w, "HSET h f v2", ":0\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "h\r\n");
	/* a read that fails by type still names its key, as in Redis */
	EXPECT(a, "GET h",
	       "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n");
	EXPECT(w, "DEL h", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "h\r\n");
	/* writes do not remember; arity errors do not */
	EXPECT(a, "INCR c", ":1\r\n");
	EXPECT(a, "GET c d", "-ERR wrong number of arguments for 'get' command\r\n");
	EXPECT(w, "INCR c", ":2\r\n");
	EXPECT(w, "SET d 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	/* its own change: the push follows its reply */
	EXPECT(a, "GET k", "$1\r\n1\r\n");
	EXPECT(a, "SET k 5", "+OK\r\n" INV(1) "k\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, w);
	reap__resp_buf_fini(&pa);
	reap__resp_buf_fini(&pw);
	db_end();
}

TEST(tracking_delete_expire_reclaim_flush)
{
	reap__resp_buf pa, pn;

	fake_clock();
	db_begin();
	reap__mgr_sess *a = tracker(&pa, false), *n = tracker(&pn, true);
	reap__mgr_sess *w = sess(2);

	/* EXPIRE changes the key */
	EXPECT(w, "SET e 1", "+OK\r\n");
	EXPECT(a, "GET e", "$1\r\n1\r\n");
	EXPECT(w, "EXPIRE e 10", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "e\r\n");
	EXPECT(w, "EXPIRE nope 10", ":0\r\n");
	/* active expiry */
	EXPECT(a, "GET e", "$1\r\n1\r\n");
	fake_t += 11 * NS;
	ASSERT_EQ_SIZE(reap__mgr_db_expire(db, fake_t), 1);
	ASSERT_EQ_STR(pushed(&pa), INV(1) "e\r\n");
	/* lazy expiry, by another's read */
	EXPECT(w, "SET e 1 PX 100", "+OK\r\n");
	EXPECT(a, "TTL e", ":0\r\n");
	fake_t += 200 * MS;
	EXPECT(w, "GET e", "$-1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "e\r\n");
	/* lazy expiry by its own read: the push after the reply, and the
	 * key remembered again */
	EXPECT(w, "SET e 1 PX 100", "+OK\r\n");
	EXPECT(a, "GET e", "$1\r\n1\r\n");
	fake_t += 200 * MS;
	EXPECT(a, "GET e", "_\r\n" INV(1) "e\r\n");
	EXPECT(w, "SET e 2", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "e\r\n");
	/* reclaim: a session object whose session closes */
	reap__mgr_sess *o = sess(2);
	EXPECT(o, "REAP.CREATE value v session x", "+OK\r\n");
	EXPECT(o, "REAP.CREATE value sh shared x", "+OK\r\n");
	EXPECT(a, "MGET v sh", "*2\r\n$1\r\nx\r\n$1\r\nx\r\n");
	EXPECT(n, "GET v", "$1\r\nx\r\n");
	reap__mgr_sess_close(db, o);
	/* (in the keyspace's order) */
	pushed(&pa);
	ASSERT_TRUE(strcmp(reply_of_push(), INV(1) "v\r\n" INV(2) "sh\r\n") == 0 ||
		    strcmp(reply_of_push(), INV(2) "sh\r\n" INV(1) "v\r\n") == 0);
	ASSERT_EQ_STR(pushed(&pn), INV(1) "v\r\n");
	/* REAP.CREATE makes a key a read found missing */
	EXPECT(a, "GET r", "_\r\n");
	EXPECT(w, "REAP.CREATE value r shared", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "r\r\n");
	EXPECT(a, "GET r", "$0\r\n\r\n");
	EXPECT(w, "REAP.RELEASE r", ":0\r\n"); /* deleted */
	ASSERT_EQ_STR(pushed(&pa), INV(1) "r\r\n");
	/* NOLOOP: not told of its own changes; others are */
	EXPECT(n, "GET q", "_\r\n");
	EXPECT(a, "GET q", "_\r\n");
	EXPECT(n, "SET q 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pn), "");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "q\r\n");
	EXPECT(n, "GET q", "$1\r\n1\r\n");
	EXPECT(w, "SET q 2", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pn), INV(1) "q\r\n");
	/* FLUSHALL: a null to every tracking session, the runner (even
	 * with NOLOOP) after its reply; the keys are all forgotten */
	EXPECT(a, "GET k1", "_\r\n");
	EXPECT(n, "FLUSHALL", "+OK\r\n>2\r\n$10\r\ninvalidate\r\n_\r\n");
	ASSERT_EQ_STR(pushed(&pa), ">2\r\n$10\r\ninvalidate\r\n_\r\n");
	EXPECT(w, "SET k1 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, n);
	reap__mgr_sess_close(db, w);
	reap__resp_buf_fini(&pa);
	reap__resp_buf_fini(&pn);
	db_end();
}

TEST(tracking_off_resp2_overflow_close)
{
	reap__resp_buf pa, p2, small;

	db_begin();
	reap__mgr_db_set_push_hook(db, on_push, NULL);
	push_calls = 0;
	reap__mgr_sess *a = tracker(&pa, false), *w = sess(2);

	/* OFF: no more pushes, and the keys are forgotten */
	EXPECT(a, "GET k", "_\r\n");
	reap__mgr_sess_track(db, a, false, false);
	ASSERT_FALSE(reap__mgr_sess_tracking(a));
	EXPECT(w, "SET k 1", "+OK\r\n");
	reap__mgr_sess_track(db, a, true, false);
	EXPECT(w, "SET k 2", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	ASSERT_EQ_INT(push_calls, 0);
	/* RESP2: tracked, but nothing sent (Redis without REDIRECT) */
	reap__mgr_sess *r2 = sess(2);
	reap__resp_buf_init(&p2, 2, 0);
	reap__mgr_sess_attach(r2, &p2, NULL);
	reap__mgr_sess_track(db, r2, true, false);
	EXPECT(r2, "GET k", "$1\r\n2\r\n");
	EXPECT(r2, "SET k 3", "+OK\r\n");
	EXPECT(w, "SET k 4", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&p2), "");
	ASSERT_EQ_INT(push_calls, 0);
	/* a push the buffer refuses is reported, for the client's close */
	reap__mgr_sess *t = sess(3);
	reap__resp_buf_init(&small, 3, 16);
	reap__mgr_sess_attach(t, &small, NULL);
	reap__mgr_sess_track(db, t, true, false);
	EXPECT(t, "GET a-rather-long-key-name", "_\r\n");
	EXPECT(w, "SET a-rather-long-key-name 1", "+OK\r\n");
	ASSERT_EQ_INT(push_calls, 1);
	ASSERT_EQ_INT(push_rc, -ENOBUFS);
	ASSERT_EQ_SIZE(small.len, 0);
	/* sessions that close while tracking leave nothing behind (the
	 * runner's check of allocations), and are sent nothing after */
	EXPECT(a, "MGET k x y", "*3\r\n$1\r\n4\r\n_\r\n_\r\n");
	EXPECT(t, "GET x", "_\r\n");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, t);
	EXPECT(w, "MSET k 1 x 1 y 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), "");
	ASSERT_EQ_INT(push_calls, 1);
	/* one still tracking when the store goes */
	EXPECT(r2, "GET z", "$-1\r\n");
	reap__mgr_sess_close(db, w);
	reap__resp_buf_fini(&pa);
	reap__resp_buf_fini(&small);
	db_end(); /* r2 is freed with the store */
	reap__resp_buf_fini(&p2);
}

TEST(oom_sweep_tracking)
{
	reap__resp_buf pa;
	int fails = 0;

	db_begin();
	reap__mgr_sess *a = tracker(&pa, false), *w = sess(2);

	EXPECT(a, "GET b", "_\r\n"); /* one key there already */
	fails = sweep_until(a, "MGET a b c a", 0, NULL, NULL);
	ASSERT_GT_INT(fails, 3);
	ASSERT_LT_INT(fails, 100);
	EXPECT(w, "MSET c 1 b 1 a 1", "+OK\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "c\r\n" INV(1) "b\r\n" INV(1) "a\r\n");
	/* the first table of tracked keys, under failure too */
	ASSERT_GT_INT(sweep_until(a, "GET a", 0, NULL, NULL), 2);
	EXPECT(w, "DEL a", ":1\r\n");
	ASSERT_EQ_STR(pushed(&pa), INV(1) "a\r\n");
	reap__mgr_sess_close(db, a);
	reap__mgr_sess_close(db, w);
	reap__resp_buf_fini(&pa);
	db_end();
}
