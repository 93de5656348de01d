/* The manager's authentication: SHA-256, HMAC-SHA256, constant-time
 * comparison, random bytes, the challenge-response and key files. See
 * auth.h for the protocol. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"

/* Erase secrets in a way the compiler may not drop as a dead store. */
#define wipe(p, n) explicit_bzero((p), (n))

/* ------------------------------------------------------------------ */
/* SHA-256 (FIPS 180-4, section 6.2)                                    */

static const uint32_t K[64] = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1,
	0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
	0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
	0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
	0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
	0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/* Byte-order independent loads and stores; compilers turn these into
 * one load and a byte swap where that is what they mean. */
static inline uint32_t load_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static inline void store_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))
#define BS0(x) (ROR(x, 2) ^ ROR(x, 13) ^ ROR(x, 22))
#define BS1(x) (ROR(x, 6) ^ ROR(x, 11) ^ ROR(x, 25))
#define SS0(x) (ROR(x, 7) ^ ROR(x, 18) ^ ((x) >> 3))
#define SS1(x) (ROR(x, 17) ^ ROR(x, 19) ^ ((x) >> 10))
#define CH(x, y, z) ((z) ^ ((x) & ((y) ^ (z))))
#define MAJ(x, y, z) (((x) & (y)) | ((z) & ((x) | (y))))

/* The message schedule kept as a ring of 16 words: W(i) for the first 16
 * rounds loads the block, later ones compute W[i] in place of W[i-16]. */
#define WLOAD(i) (w[i] = load_be32(p + 4 * (i)))
#define WNEXT(i)                                                           \
	(w[(i) & 15] += SS1(w[((i) - 2) & 15]) + w[((i) - 7) & 15] +       \
			SS0(w[((i) - 15) & 15]))

/* One round. The eight working variables rotate by renaming, not by
 * moves: round i+1 is called with the names shifted by one. */
#define RND(a, b, c, d, e, f, g, h, i, W)                                  \
	do {                                                               \
		uint32_t t1_ = h + BS1(e) + CH(e, f, g) + K[i] + W(i);     \
		d += t1_;                                                  \
		h = t1_ + BS0(a) + MAJ(a, b, c);                           \
	} while (0)

#define RND8(i, W)                                                         \
	do {                                                               \
		RND(a, b, c, d, e, f, g, h, (i) + 0, W);                   \
		RND(h, a, b, c, d, e, f, g, (i) + 1, W);                   \
		RND(g, h, a, b, c, d, e, f, (i) + 2, W);                   \
		RND(f, g, h, a, b, c, d, e, (i) + 3, W);                   \
		RND(e, f, g, h, a, b, c, d, (i) + 4, W);                   \
		RND(d, e, f, g, h, a, b, c, (i) + 5, W);                   \
		RND(c, d, e, f, g, h, a, b, (i) + 6, W);                   \
		RND(b, c, d, e, f, g, h, a, (i) + 7, W);                   \
	} while (0)

/* Compress nblocks 64-byte blocks at p into the chaining value s. */
static void compress(uint32_t s[8], const uint8_t *p, size_t nblocks)
{
	uint32_t w[16];

	for (; nblocks > 0; nblocks--, p += REAP__SHA256_BLOCK) {
		uint32_t a = s[0], b = s[1], c = s[2], d = s[3];
		uint32_t e = s[4], f = s[5], g = s[6], h = s[7];

		RND8(0, WLOAD);
		RND8(8, WLOAD);
		RND8(16, WNEXT);
		RND8(24, WNEXT);
		RND8(32, WNEXT);
		RND8(40, WNEXT);
		RND8(48, WNEXT);
		RND8(56, WNEXT);
		s[0] += a;
		s[1] += b;
		s[2] += c;
		s[3] += d;
		s[4] += e;
		s[5] += f;
		s[6] += g;
		s[7] += h;
	}
	wipe(w, sizeof w);
}

void reap__sha256_init(struct reap__sha256 *c)
{
	static const uint32_t iv[8] = {
		0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
		0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
	};

	memcpy(c->h, iv, sizeof iv);
	c->len = 0;
	c->nbuf = 0;
}

void reap__sha256_update(struct reap__sha256 *c, const void *data, size_t n)
{
	const uint8_t *p = data;

	if (n == 0)
		return;
	c->len += n;
	if (c->nbuf > 0) {
		size_t k = REAP__SHA256_BLOCK - c->nbuf;

		if (k > n)
			k = n;
		memcpy(c->buf + c->nbuf, p, k);
		c->nbuf += (uint32_t)k;
		p += k;
		n -= k;
		if (c->nbuf < REAP__SHA256_BLOCK)
			return;
		compress(c->h, c->buf, 1);
		c->nbuf = 0;
	}
	if (n >= REAP__SHA256_BLOCK) {
		compress(c->h, p, n / REAP__SHA256_BLOCK);
		p += n & ~(size_t)(REAP__SHA256_BLOCK - 1);
		n &= REAP__SHA256_BLOCK - 1;
	}
	if (n > 0) {
		memcpy(c->buf, p, n);
		c->nbuf = (uint32_t)n;
	}
}

void reap__sha256_final(struct reap__sha256 *c, uint8_t out[REAP__SHA256_LEN])
{
	uint64_t bits = c->len * 8;
	uint32_t n = c->nbuf;

	/* Padding (5.1.1): a 1 bit, zeros up to 56 mod 64, the length in
	 * bits as a 64-bit big-endian number. */
	c->buf[n++] = 0x80;
	if (n > REAP__SHA256_BLOCK - 8) {
		memset(c->buf + n, 0, REAP__SHA256_BLOCK - n);
		compress(c->h, c->buf, 1);
		n = 0;
	}
	memset(c->buf + n, 0, REAP__SHA256_BLOCK - 8 - n);
	store_be32(c->buf + 56, (uint32_t)(bits >> 32));
	store_be32(c->buf + 60, (uint32_t)bits);
	compress(c->h, c->buf, 1);
	for (int i = 0; i < 8; i++)
		store_be32(out + 4 * i, c->h[i]);
	wipe(c, sizeof *c);
}

void reap__sha256(const void *p, size_t n, uint8_t out[REAP__SHA256_LEN])
{
	struct reap__sha256 c;

	reap__sha256_init(&c);
	reap__sha256_update(&c, p, n);
	reap__sha256_final(&c, out);
}

/* ------------------------------------------------------------------ */
/* HMAC-SHA256 (RFC 2104)                                               */

void reap__hmac_sha256_key_init(struct reap__hmac_sha256_key *k,
				const void *key, size_t keylen)
{
	uint8_t kb[REAP__SHA256_BLOCK] = {0}, pad[REAP__SHA256_BLOCK];

	if (keylen > REAP__SHA256_BLOCK)
		reap__sha256(key, keylen, kb);
	else if (keylen > 0)
		memcpy(kb, key, keylen);
	for (int i = 0; i < REAP__SHA256_BLOCK; i++)
		pad[i] = kb[i] ^ 0x36;
	reap__sha256_init(&k->inner);
	reap__sha256_update(&k->inner, pad, sizeof pad);
	for (int i = 0; i < REAP__SHA256_BLOCK; i++)
		pad[i] = kb[i] ^ 0x5c;
	reap__sha256_init(&k->outer);
	reap__sha256_update(&k->outer, pad, sizeof pad);
	wipe(kb, sizeof kb);
	wipe(pad, sizeof pad);
}

void reap__hmac_sha256_key_wipe(struct reap__hmac_sha256_key *k)
{
	wipe(k, sizeof *k);
}

void reap__hmac_sha256_start(struct reap__hmac_sha256 *c,
			     const struct reap__hmac_sha256_key *k)
{
	c->inner = k->inner;
	c->outer = k->outer;
}

void reap__hmac_sha256_init(struct reap__hmac_sha256 *c, const void *key,
			    size_t keylen)
{
	struct reap__hmac_sha256_key k;

	reap__hmac_sha256_key_init(&k, key, keylen);
	reap__hmac_sha256_start(c, &k);
	wipe(&k, sizeof k);
}

void reap__hmac_sha256_update(struct reap__hmac_sha256 *c, const void *p,
			      size_t n)
{
	reap__sha256_update(&c->inner, p, n);
}

void reap__hmac_sha256_final(struct reap__hmac_sha256 *c,
			     uint8_t out[REAP__SHA256_LEN])
{
	uint8_t ih[REAP__SHA256_LEN];

	reap__sha256_final(&c->inner, ih);
	reap__sha256_update(&c->outer, ih, sizeof ih);
	reap__sha256_final(&c->outer, out);
	wipe(ih, sizeof ih);
}

void reap__hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
		       uint8_t out[REAP__SHA256_LEN])
{
	struct reap__hmac_sha256 c;

	reap__hmac_sha256_init(&c, key, keylen);
	reap__hmac_sha256_update(&c, p, n);
	reap__hmac_sha256_final(&c, out);
}

/* ------------------------------------------------------------------ */
/* Comparison                                                           */

int reap__ct_equal(const void *a, const void *b, size_t n)
{
	const uint8_t *x = a, *y = b;
	/*
	 * Every byte is visited and folded into one accumulator; there is
	 * no branch on the data, so the time taken says nothing about where
	 * the first difference lies (with memcmp it would, and a forger
	 * could find a MAC byte by byte). The accumulator is volatile so
	 * that the compiler cannot notice that the result is settled once
	 * it is non-zero and leave the loop early, or turn it into memcmp.
	 */
	volatile uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	/* 1 iff d == 0, without a branch: d - 1 underflows only for 0. */
	return (int)((((uint32_t)d - 1) >> 8) & 1);
}

/* ------------------------------------------------------------------ */
/* Random bytes                                                         */

/* Without getrandom(2) (a kernel before 3.17, or a seccomp filter that
 * refuses it): wait until /dev/random is readable, which happens once the
 * kernel's pool is initialised, then read /dev/urandom, which is then as
 * good as getrandom(). */
static int random_from_dev(uint8_t *p, size_t n)
{
	struct pollfd pfd = {.events = POLLIN};
	int fd, rc = 0;

	pfd.fd = open("/dev/random", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (pfd.fd < 0)
		return errno == ENOENT ? -ENOSYS : -errno;
	while ((rc = poll(&pfd, 1, -1)) < 0 && errno == EINTR)
		;
	rc = rc < 0 ? -errno : 0;
	close(pfd.fd);
	if (rc < 0)
		return rc;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT ? -ENOSYS : -errno;
	while (n > 0) {
		ssize_t r = read(fd, p, n);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			rc = r < 0 ? -errno : -EIO;
			break;
		}
		p += r;
		n -= (size_t)r;
	}
	close(fd);
	return rc;
}

int reap__random_bytes(void *buf, size_t n)
{
	uint8_t *p = buf;
	/*
	 * Try without blocking first: getrandom() fails with EAGAIN, rather
	 * than return anything weak, only while the pool is uninitialised
	 * early in boot. Then wait for it (flags 0): waiting is right, weak
	 * randomness never is. A read can be short (an interrupted large
	 * request) or fail with EINTR; both are resumed.
	 */
	unsigned flags = GRND_NONBLOCK;

	while (n > 0) {
		ssize_t r = getrandom(p, n, flags);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && flags != 0) {
				flags = 0;
				continue;
			}
			if (errno == ENOSYS)
				return random_from_dev(p, n);
			return -errno;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* ------------------------------------------------------------------ */
/* The challenge-response                                               */

/* 18 bytes each, no terminator; equal lengths, so that the fields after
 * them always sit at the same offsets. */
static const char label_client[] = "reap-mgr-v1 client";
static const char label_server[] = "reap-mgr-v1 server";
_Static_assert(sizeof label_client == sizeof label_server, "label lengths");

static void proof(const struct reap__hmac_sha256_key *k, const char *label,
		  const uint8_t *first, const uint8_t *second, uint8_t *out)
{
	struct reap__hmac_sha256 c;

	reap__hmac_sha256_start(&c, k);
	reap__hmac_sha256_update(&c, label, sizeof label_client - 1);
	reap__hmac_sha256_update(&c, first, REAP__AUTH_NONCE_LEN);
	reap__hmac_sha256_update(&c, second, REAP__AUTH_NONCE_LEN);
	reap__hmac_sha256_final(&c, out);
}

static int verify(const struct reap__hmac_sha256_key *k, const char *label,
		  const uint8_t *first, const uint8_t *second,
		  const uint8_t *got)
{
	uint8_t want[REAP__AUTH_PROOF_LEN];
	int eq;

	proof(k, label, first, second, want);
	eq = reap__ct_equal(want, got, sizeof want);
	wipe(want, sizeof want);
	return eq ? 0 : -EACCES;
}

void reap__auth_client_proof_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       uint8_t out[REAP__AUTH_PROOF_LEN])
{
	proof(k, label_client, ns, nc, out);
}

void reap__auth_server_proof_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       uint8_t out[REAP__AUTH_PROOF_LEN])
{
	proof(k, label_server, nc, ns, out);
}

int reap__auth_client_verify_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       const uint8_t proof_[REAP__AUTH_PROOF_LEN])
{
	return verify(k, label_client, ns, nc, proof_);
}

int reap__auth_server_verify_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       const uint8_t proof_[REAP__AUTH_PROOF_LEN])
{
	return verify(k, label_server, nc, ns, proof_);
}

/* The raw-key forms: prepare the key, run the _k form, wipe the key. */
#define WITH_KEY(key, keylen, call)                                        \
	do {                                                               \
		struct reap__hmac_sha256_key k_;                           \
		reap__hmac_sha256_key_init(&k_, key, keylen);              \
		call;                                                      \
		reap__hmac_sha256_key_wipe(&k_);                           \
	} while (0)

void reap__auth_client_proof(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     uint8_t out[REAP__AUTH_PROOF_LEN])
{
	WITH_KEY(key, keylen, reap__auth_client_proof_k(&k_, ns, nc, out));
}

void reap__auth_server_proof(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     uint8_t out[REAP__AUTH_PROOF_LEN])
{
	WITH_KEY(key, keylen, reap__auth_server_proof_k(&k_, ns, nc, out));
}

int reap__auth_client_verify(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     const uint8_t proof_[REAP__AUTH_PROOF_LEN])
{
	int rc;

	WITH_KEY(key, keylen, rc = reap__auth_client_verify_k(&k_, ns, nc, proof_));
	return rc;
}

int reap__auth_server_verify(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     const uint8_t proof_[REAP__AUTH_PROOF_LEN])
{
	int rc;

	WITH_KEY(key, keylen, rc = reap__auth_server_verify_k(&k_, ns, nc, proof_));
	return rc;
}

/* ------------------------------------------------------------------ */
/* Key files                                                            */

/* read(2) until n bytes or end of file; the count, or a negative errno. */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = read(fd, p + got, n - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

int reap__auth_key_load(const char *path, void *buf, size_t cap, size_t *len)
{
	uint8_t *b = buf, extra[2];
	struct stat st;
	ssize_t n, more;
	size_t klen;
	int fd, rc;

	/* O_NONBLOCK: a FIFO in place of the file must not hang the open;
	 * it is refused below. The checks are made on the open file, not
	 * the path, so that the file cannot be swapped between them. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
		return reap_raisef(rc, "auth key file %s: cannot open", path);
	}
	if (fstat(fd, &st) != 0) {
		rc = reap_raisef(-errno, "auth key file %s: cannot stat", path);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = reap_raisef(-EINVAL, "auth key file %s: not a regular file",
				 path);
		goto out;
	}
	if (st.st_uid != geteuid()) {
		rc = reap_raisef(-EPERM, "auth key file %s: owned by uid %u, "
				 "not by this process's uid %u", path,
				 (unsigned)st.st_uid, (unsigned)geteuid());
		goto out;
	}
	if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		rc = reap_raisef(-EPERM, "auth key file %s: mode %04o gives "
				 "access to group or others (chmod 600 it)",
				 path, (unsigned)(st.st_mode & 07777));
		goto out;
	}

	/* Up to cap bytes into buf, then up to two more aside: the file may
	 * hold cap bytes and a newline, and no more. */
	n = read_full(fd, b, cap);
	if (n < 0) {
		rc = reap_raisef((int)n, "auth key file %s: read failed", path);
		goto wipe_out;
	}
	klen = (size_t)n;
	more = 0;
	if (klen == cap) {
		more = read_full(fd, extra, sizeof extra);
		if (more < 0) {
			rc = reap_raisef((int)more, "auth key file %s: read "
					 "failed", path);
			goto wipe_out;
		}
	}
	if (more > 1 || (more == 1 && extra[0] != '\n')) {
		rc = reap_raisef(-E2BIG, "auth key file %s: key longer than "
				 "%zu bytes", path, cap);
		goto wipe_out;
	}
	if (more == 0 && klen > 0 && b[klen - 1] == '\n')
		klen--;
	if (klen == 0) {
		rc = reap_raisef(-EINVAL, "auth key file %s: empty key", path);
		goto wipe_out;
	}
	*len = klen;
	rc = 0;
	goto out;

wipe_out:
	wipe(b, cap);
out:
	wipe(extra, sizeof extra);
	close(fd);
	return rc;
}
