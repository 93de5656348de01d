/*
 * The manager's authentication: SHA-256 (FIPS 180-4), HMAC-SHA256
 * (RFC 2104), a constant-time comparison, the kernel's random bytes, and
 * the mutual challenge-response that reap's own clients run before any
 * command (DESIGN.md, mgr layer). Nothing here is part of the API, and
 * nothing here does I/O except reap__random_bytes() and
 * reap__auth_key_load().
 *
 * The handshake, with K the shared key and || concatenation:
 *
 *     server -> client   Ns                                  32 bytes
 *     client -> server   Nc, HMAC(K, "reap-mgr-v1 client" || Ns || Nc)
 *     server -> client   HMAC(K, "reap-mgr-v1 server" || Nc || Ns)
 *
 * The labels are the 18 ASCII bytes shown, without a terminator. They
 * differ, so a proof made by one side is never valid as the other's: a
 * server cannot be used as an oracle to answer its own challenge, and a
 * client's proof reflected back at it proves nothing. Fresh nonces on
 * both sides make every proof single-use.
 *
 * Every state below lives in caller storage and allocates nothing.
 * Contexts that held key material are wiped when finished.
 */
#ifndef REAP_MGR_AUTH_H
#define REAP_MGR_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "reap.h"

#pragma GCC visibility push(hidden)

#define REAP__SHA256_LEN 32   /* digest bytes */
#define REAP__SHA256_BLOCK 64 /* block bytes */
#define REAP__AUTH_NONCE_LEN 32
#define REAP__AUTH_PROOF_LEN 32

/* ------------------------------------------------------------------ */
/* SHA-256                                                              */

/* A hash in progress: init, update any number of times with any split,
 * final. A context may be copied by value to fork a hash. */
struct reap__sha256 {
	uint32_t h[8];       /* chaining value */
	uint64_t len;        /* bytes absorbed so far */
	uint32_t nbuf;       /* bytes waiting in buf, < 64 */
	uint8_t buf[REAP__SHA256_BLOCK];
};

void reap__sha256_init(struct reap__sha256 *c) REAP_NONNULL(1);
/* Absorb n bytes of p (p may be NULL when n is 0). */
void reap__sha256_update(struct reap__sha256 *c, const void *p, size_t n)
	REAP_NONNULL(1);
/* Write the digest to out and wipe c; c must be re-initialised before
 * reuse. */
void reap__sha256_final(struct reap__sha256 *c, uint8_t out[REAP__SHA256_LEN])
	REAP_NONNULL(1, 2);
/* The digest of n bytes of p, in one call. */
void reap__sha256(const void *p, size_t n, uint8_t out[REAP__SHA256_LEN])
	REAP_NONNULL(3);

/* ------------------------------------------------------------------ */
/* HMAC-SHA256                                                          */

/*
 * A key, prepared once: the hash states after absorbing K^ipad and
 * K^opad (a key longer than a block is hashed first, as RFC 2104 says).
 * A server that checks many handshakes against one key prepares it once
 * and starts each MAC from it, which costs a copy instead of two
 * compressions of the key pads:
 *
 *     struct reap__hmac_sha256_key k;      // once
 *     reap__hmac_sha256_key_init(&k, key, keylen);
 *     struct reap__hmac_sha256 c;          // per message
 *     reap__hmac_sha256_start(&c, &k);
 *     reap__hmac_sha256_update(&c, msg, n);
 *     reap__hmac_sha256_final(&c, mac);
 *
 * A prepared key is as secret as the key: wipe it with
 * reap__hmac_sha256_key_wipe() when done.
 */
struct reap__hmac_sha256_key {
	struct reap__sha256 inner, outer;
};

/* A MAC in progress. Copyable by value, like the hash. */
struct reap__hmac_sha256 {
	struct reap__sha256 inner, outer;
};

void reap__hmac_sha256_key_init(struct reap__hmac_sha256_key *k,
				const void *key, size_t keylen) REAP_NONNULL(1);
void reap__hmac_sha256_key_wipe(struct reap__hmac_sha256_key *k) REAP_NONNULL(1);
/* Start a MAC from a prepared key (borrowed, unchanged: reusable). */
void reap__hmac_sha256_start(struct reap__hmac_sha256 *c,
			     const struct reap__hmac_sha256_key *k) REAP_NONNULL(1, 2);
/* Start a MAC from raw key bytes (prepares the key on the way). */
void reap__hmac_sha256_init(struct reap__hmac_sha256 *c, const void *key,
			    size_t keylen) REAP_NONNULL(1);
void reap__hmac_sha256_update(struct reap__hmac_sha256 *c, const void *p,
			      size_t n) REAP_NONNULL(1);
/* Write the MAC to out and wipe c. */
void reap__hmac_sha256_final(struct reap__hmac_sha256 *c,
			     uint8_t out[REAP__SHA256_LEN]) REAP_NONNULL(1, 2);
/* The MAC of n bytes of p under key, in one call. */
void reap__hmac_sha256(const void *key, size_t keylen, const void *p, size_t n,
		       uint8_t out[REAP__SHA256_LEN]) REAP_NONNULL(5);

/* ------------------------------------------------------------------ */
/* Comparison and randomness                                            */

/*
 * 1 when the n bytes at a and b are equal, else 0 (1 for n == 0), in a
 * time that depends on n only, never on where the bytes differ: for
 * comparing a received MAC with the expected one.
 */
int reap__ct_equal(const void *a, const void *b, size_t n);

/*
 * Fill buf with n bytes from the kernel's CSPRNG (getrandom(2)). Waits,
 * only early in boot, until the kernel's pool is initialised, rather
 * than return weak bytes. Returns 0, or a negative errno with buf's
 * content unspecified (-ENOSYS: neither getrandom(2) nor /dev/urandom
 * is available; -EFAULT, -EIO...). Thread safety: any thread.
 */
REAP_NODISCARD int reap__random_bytes(void *buf, size_t n);

/* ------------------------------------------------------------------ */
/* The challenge-response                                               */

/*
 * The proofs of the handshake above, each from raw key bytes or from a
 * prepared key (the _k forms: a server keeps one prepared key). Nonces
 * are always passed in the order (ns, nc), the server's first, whichever
 * side computes; the functions put them in the order the protocol says.
 *
 * client_proof: what the client sends, HMAC(K, "reap-mgr-v1 client" ||
 * Ns || Nc). server_proof: what the server answers, HMAC(K,
 * "reap-mgr-v1 server" || Nc || Ns).
 *
 * The verify forms recompute the proof and compare it with the received
 * one in constant time: 0 when it matches, -EACCES when not (wrong key,
 * wrong nonce, or the other side's proof). client_verify is the
 * server's check of the client; server_verify is the client's check of
 * the server.
 */
void reap__auth_client_proof(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     uint8_t out[REAP__AUTH_PROOF_LEN]) REAP_NONNULL(3, 4, 5);
void reap__auth_server_proof(const void *key, size_t keylen,
			     const uint8_t ns[REAP__AUTH_NONCE_LEN],
			     const uint8_t nc[REAP__AUTH_NONCE_LEN],
			     uint8_t out[REAP__AUTH_PROOF_LEN]) REAP_NONNULL(3, 4, 5);
REAP_NODISCARD int reap__auth_client_verify(const void *key, size_t keylen,
					    const uint8_t ns[REAP__AUTH_NONCE_LEN],
					    const uint8_t nc[REAP__AUTH_NONCE_LEN],
					    const uint8_t proof[REAP__AUTH_PROOF_LEN])
	REAP_NONNULL(3, 4, 5);
REAP_NODISCARD int reap__auth_server_verify(const void *key, size_t keylen,
					    const uint8_t ns[REAP__AUTH_NONCE_LEN],
					    const uint8_t nc[REAP__AUTH_NONCE_LEN],
					    const uint8_t proof[REAP__AUTH_PROOF_LEN])
	REAP_NONNULL(3, 4, 5);

void reap__auth_client_proof_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       uint8_t out[REAP__AUTH_PROOF_LEN]) REAP_NONNULL(1, 2, 3, 4);
void reap__auth_server_proof_k(const struct reap__hmac_sha256_key *k,
			       const uint8_t ns[REAP__AUTH_NONCE_LEN],
			       const uint8_t nc[REAP__AUTH_NONCE_LEN],
			       uint8_t out[REAP__AUTH_PROOF_LEN]) REAP_NONNULL(1, 2, 3, 4);
REAP_NODISCARD int reap__auth_client_verify_k(const struct reap__hmac_sha256_key *k,
					      const uint8_t ns[REAP__AUTH_NONCE_LEN],
					      const uint8_t nc[REAP__AUTH_NONCE_LEN],
					      const uint8_t proof[REAP__AUTH_PROOF_LEN])
	REAP_NONNULL(1, 2, 3, 4);
REAP_NODISCARD int reap__auth_server_verify_k(const struct reap__hmac_sha256_key *k,
					      const uint8_t ns[REAP__AUTH_NONCE_LEN],
					      const uint8_t nc[REAP__AUTH_NONCE_LEN],
					      const uint8_t proof[REAP__AUTH_PROOF_LEN])
	REAP_NONNULL(1, 2, 3, 4);

/*
 * Read a key file into buf (cap bytes) and set *len. One trailing
 * newline is stripped; the rest, bytes of any value, is the key. The
 * file must be a regular file owned by the effective uid and
 * inaccessible to group and others (mode 0600 or 0400), like an ssh
 * private key.
 *
 * Returns 0, or, with a reason through reap_raisef() and buf wiped and
 * *len untouched: -EPERM (readable by group/others, or another owner),
 * -EINVAL (empty key, or not a regular file), -E2BIG (longer than cap),
 * or open(2)/read(2)'s error (-ENOENT, -EACCES...). Thread safety: any
 * thread.
 */
REAP_NODISCARD int reap__auth_key_load(const char *path, void *buf, size_t cap,
				       size_t *len) REAP_NONNULL(1, 2, 4);

#pragma GCC visibility pop

#endif
