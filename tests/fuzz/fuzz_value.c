/*
 * libFuzzer target for the decoder of the client's typed values
 * (src/mgr/value.c): the bytes a manager hands back were written by any
 * client, so they are hostile input. Checks: no crash; a value that
 * decodes encodes again, and that encoding decodes to an equal value
 * (the wire form is canonical); user objects are freed exactly once;
 * nothing of reap's allocator is left live.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reap.h"
#include "mgr/value.h"

#define CHECK(c) do { if (!(c)) abort(); } while (0)

static long objs; /* user objects alive */

static int blob_encode(const void *obj, reap_mgr_buf *out, void *arg)
{
	const size_t *len = obj;

	(void)arg;
	return reap_mgr_buf_append(out, len + 1, *len);
}

static int blob_decode(const void *p, size_t len, void **obj, void *arg)
{
	size_t *b;

	(void)arg;
	if (len > 64)
		return -EINVAL; /* a refusal, to reach that path */
	if ((b = reap_malloc(sizeof *b + len)) == NULL)
		return -ENOMEM;
	*b = len;
	memcpy(b + 1, p, len);
	*obj = b;
	objs++;
	return 0;
}

static void blob_free(void *obj, void *arg)
{
	(void)arg;
	objs--;
	reap_free(obj);
}

static const reap_mgr_codec blob = {"blob", blob_encode, blob_decode, blob_free,
				    NULL};

static const reap_mgr_codec *find(void *ctx, const char *name, size_t len)
{
	(void)ctx;
	return len == 4 && memcmp(name, "blob", 4) == 0 ? &blob : NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t live = reap_alloc_live();
	reap_mgr_value v, w;
	reap_mgr_buf b;
	char err[200];

	if (reap__mgr_decode(data, size, find, NULL, &v, err, sizeof err) == 0) {
		reap__mgr_buf_init(&b);
		CHECK(reap__mgr_encode(&v, &b, err, sizeof err) == 0);
		CHECK(reap__mgr_decode(b.p, b.len, find, NULL, &w, err, sizeof err) == 0);
		CHECK(reap_mgr_value_equal(&v, &w));
		reap_mgr_value_free(&w);
		reap__mgr_buf_fini(&b);
		reap_mgr_value_free(&v);
	} else {
		CHECK(v.type == REAP_MGR_T_NIL);
	}
	CHECK(objs == 0);
	CHECK(reap_alloc_live() == live);
	return 0;
}
