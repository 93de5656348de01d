/*
 * Typed values of the manager's client: their wire form (internal).
 *
 * A value travels as one RESP bulk string. Plain strings (not starting
 * with 0xff) read back as an int when they are the canonical decimal
 * form of an int64 (Redis's string2ll), as a double when they are the
 * canonical form this file writes for one, and as bytes otherwise.
 * Everything else is tagged, 0xff then a kind byte:
 *
 *     0xff 'b' raw...                bytes that would read back otherwise
 *     0xff 'n'                       nil
 *     0xff 'A' n (elem)*n            an array; elem = len bytes
 *     0xff 'M' n (elem)*2n           a map of n pairs
 *     0xff 'U' len name payload...   a user type's object
 *
 * n and len are unsigned LEB128 varints (at most 10 bytes). The decoder
 * checks every length against the bytes left, so a hostile string costs
 * at most its own size, and builds plain values only.
 */
#ifndef REAP_MGR_VALUE_H
#define REAP_MGR_VALUE_H

#include "reap.h"

#pragma GCC visibility push(hidden)

#define REAP__MGR_BUF_MAX ((size_t)512 << 20)
#define REAP__MGR_DEPTH_MAX 32

struct reap_mgr_buf {
	char *p;
	size_t len, cap;
};

void reap__mgr_buf_init(reap_mgr_buf *b);
void reap__mgr_buf_fini(reap_mgr_buf *b);
/* Make room for n more bytes: 0, -ENOMEM, -E2BIG. */
int reap__mgr_buf_reserve(reap_mgr_buf *b, size_t n);

/*
 * The tagged form of arrays and maps, for the client's own builders of
 * values (raw replies, HGETALL) as for the encoder: put_agg writes the
 * header of n elements (of n pairs for a map); each element is then
 * elem_begin, its bytes appended, elem_end. elem_begin reserves room
 * for the length and returns where the element starts (0, -ENOMEM,
 * -E2BIG); elem_end writes the length there and moves the bytes down
 * over the room it did not use.
 */
int reap__mgr_put_agg(reap_mgr_buf *b, bool map, size_t n);
int reap__mgr_elem_begin(reap_mgr_buf *b, size_t *at);
void reap__mgr_elem_end(reap_mgr_buf *b, size_t at);

/* Finds a codec by its name for the decoder; NULL: none. */
typedef const reap_mgr_codec *(*reap__mgr_codec_find)(void *ctx, const char *name,
						      size_t len);

/*
 * Append v's wire form to b. Returns 0, -EINVAL with a message in
 * err (what cannot be encoded, and where: "element 3 of the array: ..."),
 * -ENOMEM or -E2BIG. On failure b->len is as it was.
 */
int reap__mgr_encode(const reap_mgr_value *v, reap_mgr_buf *b, char *err,
		     size_t errlen);

/*
 * Decode p[0, n) into *out (which the caller frees with
 * reap_mgr_value_free()). Returns 0, -EPROTO with a message (malformed,
 * or a user type without a codec, or one its decoder refused), or
 * -ENOMEM. *out is nil on failure.
 */
int reap__mgr_decode(const void *p, size_t n, reap__mgr_codec_find find,
		     void *ctx, reap_mgr_value *out, char *err, size_t errlen);

/* The canonical form of a double (at most 32 bytes, no NUL). */
size_t reap__mgr_d2s(char *buf, double d);

#pragma GCC visibility pop
#endif /* REAP_MGR_VALUE_H */
