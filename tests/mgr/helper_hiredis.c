/*
 * hiredis against a manager (tests/mgr/test_server.c runs it):
 *     helper_hiredis SOCKET
 * synchronous commands, then a pipeline of 1000 commands with exact
 * replies. Exit 0 when every reply is right, 1 with a message, 77 when
 * built without hiredis.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(REAP_HAVE_HIREDIS) && __has_include(<hiredis/hiredis.h>)
#include <hiredis/hiredis.h>

#define FAIL(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(1); } while (0)

static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL)
		FAIL("command %s: %s", fmt, c->errstr);
	return r;
}

static void expect_status(redisContext *c, const char *want, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	redisReply *r = redisvCommand(c, fmt, ap);
	va_end(ap);
	if (r == NULL || r->type != REDIS_REPLY_STATUS || strcmp(r->str, want) != 0)
		FAIL("%s: expected status %s, got type %d %s", fmt, want, r ? r->type : -1,
		     r && r->str ? r->str : "");
	freeReplyObject(r);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		FAIL("usage: helper_hiredis SOCKET");
	redisContext *c = redisConnectUnix(argv[1]);
	if (c == NULL || c->err)
		FAIL("connect: %s", c ? c->errstr : "oom");
	redisReply *r;
	expect_status(c, "PONG", "PING");
	expect_status(c, "OK", "SET %s %b", "hkey", "v\0x", (size_t)3);
	r = cmd(c, "GET hkey");
	if (r->type != REDIS_REPLY_STRING || r->len != 3 || memcmp(r->str, "v\0x", 3))
		FAIL("GET: bad reply");
	freeReplyObject(r);
	r = cmd(c, "INCR hcount");
	if (r->type != REDIS_REPLY_INTEGER || r->integer != 1)
		FAIL("INCR: bad reply");
	freeReplyObject(r);
	r = cmd(c, "HSET hh a 1 b 2");
	if (r->type != REDIS_REPLY_INTEGER || r->integer != 2)
		FAIL("HSET: bad reply");
	freeReplyObject(r);
	r = cmd(c, "HGETALL hh");
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4)
		FAIL("HGETALL: bad reply type %d", r->type);
	freeReplyObject(r);
	r = cmd(c, "GET nosuch");
	if (r->type != REDIS_REPLY_NIL)
		FAIL("GET nosuch: not nil");
	freeReplyObject(r);
	r = cmd(c, "LPOP hh");
	if (r->type != REDIS_REPLY_ERROR || strncmp(r->str, "WRONGTYPE", 9) != 0)
		FAIL("LPOP on a hash: %s", r->str ? r->str : "?");
	freeReplyObject(r);

	/* pipeline: 1000 commands, one flush, exact replies */
	for (int i = 0; i < 1000; i++) {
		switch (i % 4) {
		case 0: redisAppendCommand(c, "SET p:%d %d", i, i); break;
		case 1: redisAppendCommand(c, "INCR pc"); break;
		case 2: redisAppendCommand(c, "GET p:%d", i - 2); break;
		default: redisAppendCommand(c, "RPUSH pl %d", i); break;
		}
	}
	for (int i = 0; i < 1000; i++) {
		if (redisGetReply(c, (void **)&r) != REDIS_OK)
			FAIL("pipeline reply %d: %s", i, c->errstr);
		char buf[32];
		switch (i % 4) {
		case 0:
			if (r->type != REDIS_REPLY_STATUS || strcmp(r->str, "OK"))
				FAIL("pipeline %d: SET", i);
			break;
		case 1:
			if (r->type != REDIS_REPLY_INTEGER || r->integer != i / 4 + 1)
				FAIL("pipeline %d: INCR %lld", i, r->integer);
			break;
		case 2:
			snprintf(buf, sizeof buf, "%d", i - 2);
			if (r->type != REDIS_REPLY_STRING || strcmp(r->str, buf))
				FAIL("pipeline %d: GET", i);
			break;
		default:
			if (r->type != REDIS_REPLY_INTEGER || r->integer != i / 4 + 1)
				FAIL("pipeline %d: RPUSH %lld", i, r->integer);
		}
		freeReplyObject(r);
	}
	r = cmd(c, "LRANGE pl 0 -1");
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 250 ||
	    strcmp(r->element[249]->str, "999"))
		FAIL("LRANGE after pipeline");
	freeReplyObject(r);
	redisFree(c);
	printf("hiredis ok\n");
	return 0;
}
#else
int main(void)
{
	printf("built without hiredis\n");
	return 77;
}
#endif
