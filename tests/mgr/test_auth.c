/* mgr auth: SHA-256 against FIPS 180-4 / NIST vectors, HMAC-SHA256
 * against RFC 4231, the constant-time comparison, random bytes, the
 * mutual challenge-response and key files. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../runner.h"
#include "../../src/base/internal.h"
#include "../../src/mgr/auth.h"

/* ------------------------------------------------------------------ */
/* Helpers                                                              */

static void unhex(const char *hex, uint8_t *out, size_t n)
{
	ASSERT_EQ_SIZE(strlen(hex), 2 * n);
	for (size_t i = 0; i < n; i++) {
		unsigned v;

		ASSERT_EQ_INT(sscanf(hex + 2 * i, "%2x", &v), 1);
		out[i] = (uint8_t)v;
	}
}

static const char *tohex(const uint8_t *p, size_t n, char *buf)
{
	for (size_t i = 0; i < n; i++)
		sprintf(buf + 2 * i, "%02x", p[i]);
	buf[2 * n] = '\0';
	return buf;
}

/* got (n bytes) must print as the hex string want. */
#define ASSERT_HEX(got, n, want)                                            \
	do {                                                                \
		char hb_[2 * 64 + 1];                                       \
		ASSERT_EQ_STR(tohex((got), (n), hb_), (want));              \
	} while (0)

/* A small deterministic generator (xorshift64) for chunk sizes and test
 * data: a failure reproduces on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rng(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void sha_hex(const void *p, size_t n, const char *want)
{
	uint8_t d[REAP__SHA256_LEN];

	reap__sha256(p, n, d);
	ASSERT_HEX(d, sizeof d, want);
}

/* ------------------------------------------------------------------ */
/* SHA-256                                                              */

static const char msg448[] =
	"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
static const char msg896[] =
	"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
	"ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";

TEST(sha256_fips_vectors)
{
	sha_hex("", 0,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha_hex(NULL, 0,
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	sha_hex("abc", 3,
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	ASSERT_EQ_SIZE(strlen(msg448) * 8, 448);
	sha_hex(msg448, strlen(msg448),
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	ASSERT_EQ_SIZE(strlen(msg896) * 8, 896);
	sha_hex(msg896, strlen(msg896),
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(sha256_million_a_in_uneven_chunks)
{
	static const char want[] =
		"cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
	static uint8_t a[1000000];
	/* Sizes that straddle block boundaries every way: 1, 63, 64, 65,
	 * 127, 1000, and a prime. */
	static const size_t steps[] = {1, 63, 64, 65, 127, 1000, 4093, 0};
	struct reap__sha256 c;
	uint8_t d[REAP__SHA256_LEN];

	memset(a, 'a', sizeof a);
	sha_hex(a, sizeof a, want);

	reap__sha256_init(&c);
	for (size_t off = 0, i = 0; off < sizeof a; i++) {
		size_t k = steps[i % 8];

		if (k > sizeof a - off)
			k = sizeof a - off;
		reap__sha256_update(&c, a + off, k); /* k == 0 too */
		off += k;
	}
	reap__sha256_final(&c, d);
	ASSERT_HEX(d, sizeof d, want);

	/* One byte at a time. */
	reap__sha256_init(&c);
	for (size_t off = 0; off < sizeof a; off++)
		reap__sha256_update(&c, "a", 1);
	reap__sha256_final(&c, d);
	ASSERT_HEX(d, sizeof d, want);
}

TEST(sha256_streaming_random_splits_equal_one_shot)
{
	static uint8_t buf[5000];
	uint8_t one[REAP__SHA256_LEN], split[REAP__SHA256_LEN];

	for (size_t i = 0; i < sizeof buf; i++)
		buf[i] = (uint8_t)rng();
	/* Every length up to a few blocks (all the padding cases: 55, 56,
	 * 63, 64 bytes in the last block), then random long ones. */
	for (int trial = 0; trial < 600; trial++) {
		size_t len = trial < 300 ? (size_t)trial : rng() % sizeof buf;
		struct reap__sha256 c, fork;

		reap__sha256(buf, len, one);
		reap__sha256_init(&c);
		for (size_t off = 0; off < len;) {
			size_t k = rng() % 150;

			if (k > len - off)
				k = len - off;
			reap__sha256_update(&c, buf + off, k);
			off += k;
		}
		/* A copied context forks the hash. */
		fork = c;
		reap__sha256_final(&c, split);
		if (memcmp(one, split, sizeof one) != 0)
			test_fail(__FILE__, __LINE__, "length %zu: split differs", len);
		reap__sha256_final(&fork, split);
		ASSERT_TRUE(memcmp(one, split, sizeof one) == 0);
	}
}

/* ------------------------------------------------------------------ */
/* HMAC-SHA256: RFC 4231, section 4                                     */

struct rfc4231 {
	const char *key_hex; /* or NULL: key is keylen bytes of keybyte */
	uint8_t keybyte;
	size_t keylen;
	const char *data;   /* text, or NULL: data is datalen bytes of databyte */
	uint8_t databyte;
	size_t datalen;
	const char *mac;    /* hex; 32 chars for the truncated case */
};

static const struct rfc4231 rfc4231[] = {
	/* 1 */
	{NULL, 0x0b, 20, "Hi There", 0, 0,
	 "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
	/* 2: a key shorter than the MAC */
	{"4a656665", 0, 4, "what do ya want for nothing?", 0, 0,
	 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
	/* 3 */
	{NULL, 0xaa, 20, NULL, 0xdd, 50,
	 "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"},
	/* 4 */
	{"0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 25, NULL,
	 0xcd, 50,
	 "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"},
	/* 5: truncated to 128 bits */
	{NULL, 0x0c, 20, "Test With Truncation", 0, 0,
	 "a3b6167473100ee06e0c796c2955552b"},
	/* 6: a key longer than a block, hashed first */
	{NULL, 0xaa, 131, "Test Using Larger Than Block-Size Key - Hash Key First",
	 0, 0, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
	/* 7: and data longer than a block */
	{NULL, 0xaa, 131,
	 "This is a test using a larger than block-size key and a larger "
	 "than block-size data. The key needs to be hashed before being "
	 "used by the HMAC algorithm.",
	 0, 0, "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"},
};

/* Case i's key and data into key/data; their lengths out. */
static void rfc4231_case(size_t i, uint8_t *key, size_t *keylen,
			 uint8_t *data, size_t *datalen)
{
	const struct rfc4231 *t = &rfc4231[i];

	*keylen = t->keylen;
	if (t->key_hex != NULL)
		unhex(t->key_hex, key, t->keylen);
	else
		memset(key, t->keybyte, t->keylen);
	if (t->data != NULL) {
		*datalen = strlen(t->data);
		memcpy(data, t->data, *datalen);
	} else {
		*datalen = t->datalen;
		memset(data, t->databyte, t->datalen);
	}
}

TEST(hmac_sha256_rfc4231_cases)
{
	ASSERT_EQ_SIZE(sizeof rfc4231 / sizeof rfc4231[0], 7);
	for (size_t i = 0; i < 7; i++) {
		uint8_t key[131], data[200], mac[REAP__SHA256_LEN];
		size_t keylen, datalen, n = strlen(rfc4231[i].mac) / 2;
		struct reap__hmac_sha256 c;

		rfc4231_case(i, key, &keylen, data, &datalen);
		ASSERT_EQ_SIZE(n, i == 4 ? 16 : 32);

		/* One shot. */
		reap__hmac_sha256(key, keylen, data, datalen, mac);
		ASSERT_HEX(mac, n, rfc4231[i].mac);

		/* Streaming, a byte at a time and in two halves. */
		memset(mac, 0, sizeof mac);
		reap__hmac_sha256_init(&c, key, keylen);
		for (size_t j = 0; j < datalen; j++)
			reap__hmac_sha256_update(&c, data + j, 1);
		reap__hmac_sha256_final(&c, mac);
		ASSERT_HEX(mac, n, rfc4231[i].mac);

		memset(mac, 0, sizeof mac);
		reap__hmac_sha256_init(&c, key, keylen);
		reap__hmac_sha256_update(&c, data, datalen / 2);
		reap__hmac_sha256_update(&c, data + datalen / 2,
					 datalen - datalen / 2);
		reap__hmac_sha256_final(&c, mac);
		ASSERT_HEX(mac, n, rfc4231[i].mac);
	}
}

TEST(hmac_sha256_long_key_is_its_hash)
{
	/* RFC 2104: a key longer than a block is replaced by its hash; one
	 * of exactly a block is used as is. */
	uint8_t key[131], hk[REAP__SHA256_LEN], a[32], b[32];

	memset(key, 0xaa, sizeof key);
	reap__sha256(key, sizeof key, hk);
	reap__hmac_sha256(key, sizeof key, "m", 1, a);
	reap__hmac_sha256(hk, sizeof hk, "m", 1, b);
	ASSERT_TRUE(memcmp(a, b, 32) == 0);

	reap__hmac_sha256(key, 64, "m", 1, a);
	reap__sha256(key, 64, hk);
	reap__hmac_sha256(hk, sizeof hk, "m", 1, b);
	ASSERT_FALSE(memcmp(a, b, 32) == 0);
}

TEST(hmac_sha256_prepared_key_reuse)
{
	for (size_t i = 0; i < 7; i++) {
		uint8_t key[131], data[200], once[32], mac[32];
		size_t keylen, datalen, n = strlen(rfc4231[i].mac) / 2;
		struct reap__hmac_sha256_key k, copy;

		rfc4231_case(i, key, &keylen, data, &datalen);
		reap__hmac_sha256(key, keylen, data, datalen, once);
		reap__hmac_sha256_key_init(&k, key, keylen);
		copy = k;
		/* Many MACs from one prepared key: each identical, and the
		 * prepared key never changes. */
		for (int round = 0; round < 5; round++) {
			struct reap__hmac_sha256 c;

			memset(mac, 0, sizeof mac);
			reap__hmac_sha256_start(&c, &k);
			reap__hmac_sha256_update(&c, data, datalen);
			reap__hmac_sha256_final(&c, mac);
			ASSERT_TRUE(memcmp(mac, once, 32) == 0);
			ASSERT_HEX(mac, n, rfc4231[i].mac);
			ASSERT_TRUE(memcmp(&k, &copy, sizeof k) == 0);
		}
		/* Interleaved MACs from one key do not disturb each other. */
		{
			struct reap__hmac_sha256 c1, c2;
			uint8_t m1[32], m2[32], w2[32];

			reap__hmac_sha256_start(&c1, &k);
			reap__hmac_sha256_start(&c2, &k);
			reap__hmac_sha256_update(&c1, data, datalen);
			reap__hmac_sha256_update(&c2, "other", 5);
			reap__hmac_sha256_final(&c2, m2);
			reap__hmac_sha256_final(&c1, m1);
			reap__hmac_sha256(key, keylen, "other", 5, w2);
			ASSERT_TRUE(memcmp(m1, once, 32) == 0);
			ASSERT_TRUE(memcmp(m2, w2, 32) == 0);
		}
		reap__hmac_sha256_key_wipe(&k);
		ASSERT_FALSE(memcmp(&k, &copy, sizeof k) == 0);
	}
}

/* ------------------------------------------------------------------ */
/* Constant-time comparison                                             */

TEST(ct_equal_results)
{
	uint8_t a[100], b[100];

	for (size_t i = 0; i < sizeof a; i++)
		a[i] = b[i] = (uint8_t)(i * 7 + 1);
	ASSERT_EQ_INT(reap__ct_equal(a, b, sizeof a), 1);
	ASSERT_EQ_INT(reap__ct_equal(a, a, sizeof a), 1);
	ASSERT_EQ_INT(reap__ct_equal(a, b, 0), 1);
	ASSERT_EQ_INT(reap__ct_equal(NULL, NULL, 0), 1);

	/* A difference at the first, a middle, and the last byte; every
	 * single-bit difference in one byte (the result must not depend on
	 * which bit, e.g. 0x80 or 0x01). */
	const size_t at[] = {0, 50, 99};
	for (size_t j = 0; j < 3; j++) {
		for (int bit = 0; bit < 8; bit++) {
			b[at[j]] ^= (uint8_t)(1u << bit);
			ASSERT_EQ_INT(reap__ct_equal(a, b, sizeof a), 0);
			ASSERT_EQ_INT(reap__ct_equal(b, a, sizeof a), 0);
			b[at[j]] ^= (uint8_t)(1u << bit);
		}
		b[at[j]] ^= 0xff;
		ASSERT_EQ_INT(reap__ct_equal(a, b, sizeof a), 0);
		/* Only the first at[j] bytes compared: equal. */
		ASSERT_EQ_INT(reap__ct_equal(a, b, at[j]), 1);
		b[at[j]] ^= 0xff;
	}
	ASSERT_EQ_INT(reap__ct_equal(a, b, sizeof a), 1);
}

/* ------------------------------------------------------------------ */
/* Random bytes                                                         */

TEST(random_bytes_fill_and_differ)
{
	uint8_t x[64], y[64];
	static uint8_t big[1 << 20];
	size_t zeros[256] = {0};

	ASSERT_OK(reap__random_bytes(x, sizeof x));
	ASSERT_OK(reap__random_bytes(y, sizeof y));
	ASSERT_FALSE(memcmp(x, y, sizeof x) == 0);
	ASSERT_OK(reap__random_bytes(x, 0));

	/* The whole buffer is written: start from a pattern, and no
	 * 64-byte stretch may survive (a chance of 2^-512 per stretch). */
	memset(big, 0x5a, sizeof big);
	ASSERT_OK(reap__random_bytes(big, sizeof big));
	for (size_t off = 0; off < sizeof big; off += 64) {
		size_t same = 0;

		for (size_t i = 0; i < 64; i++)
			same += big[off + i] == 0x5a;
		if (same == 64)
			test_fail(__FILE__, __LINE__, "bytes %zu..%zu not written",
				  off, off + 63);
	}
	/* Every byte value occurs about 4096 times in 1 MiB; a generator
	 * stuck on a few values would not pass this. */
	for (size_t i = 0; i < sizeof big; i++)
		zeros[big[i]]++;
	for (size_t v = 0; v < 256; v++) {
		ASSERT_GT_INT((long long)zeros[v], 3000);
		ASSERT_LT_INT((long long)zeros[v], 5200);
	}
	/* The last byte, when the buffer is odd-sized: filled too. */
	for (int t = 0, seen = 0; t < 64 && !seen; t++) {
		uint8_t odd[33];

		odd[32] = 0;
		ASSERT_OK(reap__random_bytes(odd, sizeof odd));
		seen = odd[32] != 0;
		if (t == 63)
			ASSERT_TRUE(seen);
	}
}

/* ------------------------------------------------------------------ */
/* The challenge-response                                               */

struct exchange {
	uint8_t ns[32], nc[32], cproof[32], sproof[32];
};

/* A whole handshake between a client holding ck and a server holding
 * sk; the two checks' results in *server_rc (of the client's proof) and
 * *client_rc (of the server's proof, run even if the server refused, to
 * test each side alone). */
static void handshake(const char *ck, const char *sk, struct exchange *x,
		      int *server_rc, int *client_rc)
{
	ASSERT_OK(reap__random_bytes(x->ns, 32));
	ASSERT_OK(reap__random_bytes(x->nc, 32));
	reap__auth_client_proof(ck, strlen(ck), x->ns, x->nc, x->cproof);
	*server_rc = reap__auth_client_verify(sk, strlen(sk), x->ns, x->nc,
					      x->cproof);
	reap__auth_server_proof(sk, strlen(sk), x->ns, x->nc, x->sproof);
	*client_rc = reap__auth_server_verify(ck, strlen(ck), x->ns, x->nc,
					      x->sproof);
}

static const char key[] = "correct horse battery staple";

TEST(auth_correct_exchange_verifies_both_ways)
{
	struct exchange x;
	int s, c;

	handshake(key, key, &x, &s, &c);
	ASSERT_EQ_INT(s, 0);
	ASSERT_EQ_INT(c, 0);
	ASSERT_FALSE(memcmp(x.cproof, x.sproof, 32) == 0);

	/* The proofs are the HMACs the protocol defines. */
	{
		uint8_t msg[18 + 64], mac[32];

		memcpy(msg, "reap-mgr-v1 client", 18);
		memcpy(msg + 18, x.ns, 32);
		memcpy(msg + 50, x.nc, 32);
		reap__hmac_sha256(key, strlen(key), msg, sizeof msg, mac);
		ASSERT_TRUE(memcmp(mac, x.cproof, 32) == 0);
		memcpy(msg, "reap-mgr-v1 server", 18);
		memcpy(msg + 18, x.nc, 32);
		memcpy(msg + 50, x.ns, 32);
		reap__hmac_sha256(key, strlen(key), msg, sizeof msg, mac);
		ASSERT_TRUE(memcmp(mac, x.sproof, 32) == 0);
	}

	/* A server with a prepared key agrees, handshake after handshake. */
	{
		struct reap__hmac_sha256_key k;

		reap__hmac_sha256_key_init(&k, key, strlen(key));
		for (int i = 0; i < 10; i++) {
			uint8_t p[32];

			handshake(key, key, &x, &s, &c);
			ASSERT_EQ_INT(reap__auth_client_verify_k(&k, x.ns, x.nc,
								 x.cproof), 0);
			reap__auth_server_proof_k(&k, x.ns, x.nc, p);
			ASSERT_TRUE(memcmp(p, x.sproof, 32) == 0);
			reap__auth_client_proof_k(&k, x.ns, x.nc, p);
			ASSERT_TRUE(memcmp(p, x.cproof, 32) == 0);
			ASSERT_EQ_INT(reap__auth_server_verify_k(&k, x.ns, x.nc,
								 x.sproof), 0);
		}
		reap__hmac_sha256_key_wipe(&k);
	}
}

TEST(auth_wrong_key_fails_both_ways)
{
	struct exchange x;
	int s, c;

	handshake(key, "correct horse battery stapler", &x, &s, &c);
	ASSERT_EQ_INT(s, -EACCES);
	ASSERT_EQ_INT(c, -EACCES);
	handshake("correct horse battery staplf", key, &x, &s, &c);
	ASSERT_EQ_INT(s, -EACCES);
	ASSERT_EQ_INT(c, -EACCES);
	/* A key that is a prefix of the right one. */
	handshake("correct horse", key, &x, &s, &c);
	ASSERT_EQ_INT(s, -EACCES);
	ASSERT_EQ_INT(c, -EACCES);
}

TEST(auth_proofs_are_not_interchangeable)
{
	struct exchange x;
	int s, c;

	handshake(key, key, &x, &s, &c);
	ASSERT_EQ_INT(s, 0);
	ASSERT_EQ_INT(c, 0);
	/* The server's proof offered as a client's, and back. */
	ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.ns, x.nc,
					       x.sproof), -EACCES);
	ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.ns, x.nc,
					       x.cproof), -EACCES);
	/* Nor with the nonces swapped: the server's proof over (Nc, Ns) is
	 * not the client's proof over (Ns', Nc') with Ns' = Nc, Nc' = Ns,
	 * because the labels differ. */
	ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.nc, x.ns,
					       x.sproof), -EACCES);
	ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.nc, x.ns,
					       x.cproof), -EACCES);
	/* A reflected challenge: a client's own proof, even when an attacker
	 * echoes the client's nonce as the server's, is no server proof. */
	{
		uint8_t p[32];

		reap__auth_client_proof(key, strlen(key), x.nc, x.nc, p);
		ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.nc,
						       x.nc, p), -EACCES);
	}
}

TEST(auth_one_bit_of_either_nonce_fails)
{
	struct exchange x;
	int s, c;

	handshake(key, key, &x, &s, &c);
	ASSERT_EQ_INT(s, 0);
	ASSERT_EQ_INT(c, 0);
	for (size_t byte = 0; byte < 32; byte++) {
		for (int bit = 0; bit < 8; bit += 7) {
			uint8_t m = (uint8_t)(1u << bit);

			x.ns[byte] ^= m;
			ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.ns,
							       x.nc, x.cproof), -EACCES);
			ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.ns,
							       x.nc, x.sproof), -EACCES);
			x.ns[byte] ^= m;
			x.nc[byte] ^= m;
			ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.ns,
							       x.nc, x.cproof), -EACCES);
			ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.ns,
							       x.nc, x.sproof), -EACCES);
			x.nc[byte] ^= m;
			/* And a bit of the proof itself. */
			x.cproof[byte] ^= m;
			ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.ns,
							       x.nc, x.cproof), -EACCES);
			x.cproof[byte] ^= m;
		}
	}
	ASSERT_EQ_INT(reap__auth_client_verify(key, strlen(key), x.ns, x.nc,
					       x.cproof), 0);
	ASSERT_EQ_INT(reap__auth_server_verify(key, strlen(key), x.ns, x.nc,
					       x.sproof), 0);
}

/* ------------------------------------------------------------------ */
/* Key files                                                            */

/* A file in a fresh temporary directory with the given content and
 * mode; its path into path (64 bytes). */
static void key_file(char *path, const void *content, size_t n, mode_t mode)
{
	int fd;

	strcpy(path, "/tmp/reap-auth-XXXXXX");
	fd = mkstemp(path);
	ASSERT_GE_INT(fd, 0);
	ASSERT_EQ_INT(write(fd, content, n), (long long)n);
	ASSERT_EQ_INT(fchmod(fd, mode), 0);
	ASSERT_EQ_INT(close(fd), 0);
}

/* Load path with capacity cap; the result, and the key in out/len. */
static int load(const char *path, size_t cap, uint8_t *out, size_t *len)
{
	return reap__auth_key_load(path, out, cap, len);
}

/* The reason attached to the last failure. */
static const char *reason(int code)
{
	struct reap__raise *r = reap__raise_take(code);

	return r != NULL ? r->msg : "(no reason)";
}

TEST(key_load_accepts_private_file_and_strips_one_newline)
{
	char path[64];
	uint8_t buf[64];
	size_t len = 999;

	key_file(path, "s3cret\n", 7, 0600);
	ASSERT_OK(load(path, sizeof buf, buf, &len));
	ASSERT_EQ_SIZE(len, 6);
	ASSERT_TRUE(memcmp(buf, "s3cret", 6) == 0);
	unlink(path);

	/* No newline: kept whole. Read-only 0400 is fine too. */
	key_file(path, "s3cret", 6, 0400);
	ASSERT_OK(load(path, sizeof buf, buf, &len));
	ASSERT_EQ_SIZE(len, 6);
	ASSERT_TRUE(memcmp(buf, "s3cret", 6) == 0);
	unlink(path);

	/* Only one newline is stripped; other bytes (a NUL, a CR) are key. */
	key_file(path, "a\0b\r\n\n", 6, 0600);
	ASSERT_OK(load(path, sizeof buf, buf, &len));
	ASSERT_EQ_SIZE(len, 5);
	ASSERT_TRUE(memcmp(buf, "a\0b\r\n", 5) == 0);
	unlink(path);

	/* Exactly cap bytes, with and without the newline. */
	key_file(path, "0123456789abcdef\n", 17, 0600);
	ASSERT_OK(load(path, 16, buf, &len));
	ASSERT_EQ_SIZE(len, 16);
	ASSERT_TRUE(memcmp(buf, "0123456789abcdef", 16) == 0);
	unlink(path);
	key_file(path, "0123456789abcdef", 16, 0600);
	ASSERT_OK(load(path, 16, buf, &len));
	ASSERT_EQ_SIZE(len, 16);
	unlink(path);
}

TEST(key_load_refuses_group_or_world_access)
{
	static const mode_t modes[] = {0644, 0640, 0604, 0610, 0601, 0660};
	char path[64];
	uint8_t buf[64];

	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
		size_t len = 999;

		key_file(path, "s3cret\n", 7, modes[i]);
		memset(buf, 0, sizeof buf);
		ASSERT_EQ_INT(load(path, sizeof buf, buf, &len), -EPERM);
		ASSERT_CONTAINS(reason(-EPERM), "group or others");
		ASSERT_EQ_SIZE(len, 999);
		unlink(path);
	}
	/* The reason names the file and its mode. */
	key_file(path, "s3cret\n", 7, 0644);
	{
		size_t len;
		const char *r;

		ASSERT_EQ_INT(load(path, sizeof buf, buf, &len), -EPERM);
		r = reason(-EPERM);
		ASSERT_CONTAINS(r, path);
		ASSERT_CONTAINS(r, "0644");
	}
	unlink(path);
}

TEST(key_load_refuses_a_file_of_another_owner)
{
	char path[64];
	uint8_t buf[64];
	size_t len = 999;

	if (geteuid() != 0)
		test_skip("needs root to give a file to another uid");
	key_file(path, "s3cret\n", 7, 0600);
	ASSERT_EQ_INT(chown(path, 12345, 12345), 0);
	ASSERT_EQ_INT(load(path, sizeof buf, buf, &len), -EPERM);
	ASSERT_CONTAINS(reason(-EPERM), "owned by uid 12345");
	ASSERT_EQ_SIZE(len, 999);
	unlink(path);
}

TEST(key_load_errors)
{
	char path[64];
	uint8_t buf[16];
	size_t len = 999;

	/* Missing. */
	ASSERT_EQ_INT(load("/nonexistent/reap-key", sizeof buf, buf, &len),
		      -ENOENT);
	ASSERT_CONTAINS(reason(-ENOENT), "/nonexistent/reap-key");

	/* Empty, and a lone newline. */
	key_file(path, "", 0, 0600);
	ASSERT_EQ_INT(load(path, sizeof buf, buf, &len), -EINVAL);
	ASSERT_CONTAINS(reason(-EINVAL), "empty");
	unlink(path);
	key_file(path, "\n", 1, 0600);
	ASSERT_EQ_INT(load(path, sizeof buf, buf, &len), -EINVAL);
	unlink(path);

	/* Longer than cap: by one byte, by a newline and a byte, by more;
	 * buf is wiped of what was read. */
	key_file(path, "0123456789abcdefg", 17, 0600);
	ASSERT_EQ_INT(load(path, 16, buf, &len), -E2BIG);
	ASSERT_CONTAINS(reason(-E2BIG), "16 bytes");
	for (size_t i = 0; i < 16; i++)
		ASSERT_EQ_INT(buf[i], 0);
	unlink(path);
	key_file(path, "0123456789abcdef\nx", 18, 0600);
	ASSERT_EQ_INT(load(path, 16, buf, &len), -E2BIG);
	unlink(path);
	key_file(path, "0123456789abcdef\n\n", 18, 0600);
	ASSERT_EQ_INT(load(path, 16, buf, &len), -E2BIG);
	unlink(path);

	/* Not a regular file. */
	ASSERT_EQ_INT(load("/tmp", sizeof buf, buf, &len), -EINVAL);
	ASSERT_EQ_SIZE(len, 999);
}
