/*
 * libFuzzer target for the RESP decoders: the server's request parser
 * (fed in two parts split at a point taken from the data, as a server's
 * query buffer would receive it) and the client's reply parser. Checks:
 * no crash, consumed <= size, arguments inside the buffer or the parser's
 * scratch, every value freed, nothing of reap's allocator left live.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reap.h"
#include "mgr/resp.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static void requests(const uint8_t *data, size_t size, size_t split, bool authed)
{
	reap__resp_req r;
	reap__resp_limits lim;
	char *q = malloc(size + 1);
	size_t qlen = 0, fed = 0;

	CHECK(q != NULL);
	reap__resp_limits_default(&lim);
	lim.max_inline = lim.max_header = 1024; /* small, so fuzzing reaches them */
	reap__resp_req_init(&r, &lim);
	r.authed = authed;
	for (;;) {
		size_t used;
		int rc = reap__resp_req_parse(&r, q, qlen, &used);

		CHECK(used <= qlen);
		if (rc == REAP__RESP_CMD) {
			CHECK(r.argc >= 1);
			for (int i = 0; i < r.argc; i++) {
				const char *p = r.argv[i].p;
				bool in_q = p >= q && p + r.argv[i].len <= q + qlen;
				bool in_s = r.scratch && p >= r.scratch &&
					    p + r.argv[i].len <= r.scratch + r.scratch_cap;

				CHECK(in_q || in_s);
			}
			CHECK(used > 0);
		} else if (rc == REAP__RESP_PROTO) {
			CHECK(r.err_len > 2 && r.err[0] == '-');
			CHECK(memcmp(r.err + r.err_len - 2, "\r\n", 2) == 0);
			break;
		} else {
			CHECK(rc == REAP__RESP_MORE);
		}
		memmove(q, q + used, qlen - used);
		qlen -= used;
		if (rc == REAP__RESP_CMD)
			continue;
		if (fed == size)
			break;
		size_t k = fed < split ? split - fed : size - fed;
		memcpy(q + qlen, data + fed, k);
		qlen += k;
		fed += k;
	}
	reap__resp_req_fini(&r);
	free(q);
}

static void replies(const uint8_t *data, size_t size)
{
	reap__resp_reader r;
	reap__resp_rlimits lim;
	size_t off = 0;

	reap__resp_rlimits_default(&lim);
	lim.max_depth = 16;
	reap__resp_reader_init(&r, &lim);
	for (;;) {
		reap__resp_value *v = NULL;
		size_t used;
		int rc = reap__resp_reader_parse(&r, (const char *)data + off, size - off, &used, &v);

		CHECK(used <= size - off);
		off += used;
		if (rc != REAP__RESP_VALUE) {
			CHECK(v == NULL);
			CHECK(rc == REAP__RESP_MORE || rc == REAP__RESP_PROTO);
			break;
		}
		CHECK(v != NULL && used > 0);
		reap__resp_value_free(v);
	}
	reap__resp_reader_fini(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t live = reap_alloc_live();
	size_t split = size ? (size_t)data[0] * 257 % (size + 1) : 0;

	requests(data, size, split, true);
	requests(data, size, size / 2, false);
	replies(data, size);
	CHECK(reap_alloc_live() == live);
	return 0;
}
