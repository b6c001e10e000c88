// SPDX-License-Identifier: MIT
/* BEP 44 helpers: signing buffer, targets, Ed25519 sign/verify. */
#include <errno.h>
#include <inttypes.h>
#include <nettle/sha1.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "dht/dht_int.h"

int dht_bep44_sigbuf(uint8_t *out, size_t cap, const uint8_t *salt, size_t salt_len, int64_t seq,
		     const uint8_t *v, size_t vlen)
{
	struct bencode_buf b;

	bencode_buf_init(&b, out, cap);
	if (salt_len) {
		bencode_put_cstr(&b, "salt");
		bencode_put_str(&b, salt, salt_len);
	}
	bencode_put_cstr(&b, "seq");
	bencode_put_int(&b, seq);
	bencode_put_cstr(&b, "v");
	bencode_put_raw(&b, v, vlen);
	return b.err ? b.err : (int)b.len;
}

/* SHA-1 of a || b with nettle (GnuTLS's own hash library, already loaded
 * by weftd: no allocation, no failure; OpenSSL's libcrypto cost 3.4 MiB of
 * resident memory per process for this one hash, docs/OPERATIONS.md). */
static void sha1_2(uint8_t out[DHT_ID_LEN], const uint8_t *a, size_t alen, const uint8_t *b,
		   size_t blen)
{
	struct sha1_ctx c;

	sha1_init(&c);
	sha1_update(&c, alen, a);
	if (blen)
		sha1_update(&c, blen, b);
	sha1_digest(&c, DHT_ID_LEN, out);
}

void dht_bep44_target_mutable(uint8_t out[DHT_ID_LEN], const uint8_t pk[DHT_PK_LEN],
			      const uint8_t *salt, size_t salt_len)
{
	sha1_2(out, pk, DHT_PK_LEN, salt, salt_len);
}

void dht_bep44_target_immutable(uint8_t out[DHT_ID_LEN], const uint8_t *v, size_t vlen)
{
	sha1_2(out, v, vlen, NULL, 0);
}

/* signing buffer bound: salt (64) + value (1000) + framing */
#define SIGBUF_CAP (DHT_MAX_VALUE + DHT_MAX_SALT + 64)

int dht_bep44_verify(const uint8_t pk[DHT_PK_LEN], const uint8_t sig[DHT_SIG_LEN],
		     const uint8_t *salt, size_t salt_len, int64_t seq, const uint8_t *v,
		     size_t vlen)
{
	uint8_t buf[SIGBUF_CAP];
	int n;

	if (vlen > DHT_MAX_VALUE || salt_len > DHT_MAX_SALT)
		return -EBADMSG;
	n = dht_bep44_sigbuf(buf, sizeof(buf), salt, salt_len, seq, v, vlen);
	if (n < 0)
		return -EBADMSG;
	if (crypto_sign_verify_detached(sig, buf, (unsigned long long)n, pk) != 0)
		return -EBADMSG;
	return 0;
}

int dht_bep44_sign(uint8_t sig[DHT_SIG_LEN], const uint8_t sk[DHT_SK_LEN], const uint8_t *salt,
		   size_t salt_len, int64_t seq, const uint8_t *v, size_t vlen)
{
	uint8_t buf[SIGBUF_CAP];
	int n;

	if (vlen > DHT_MAX_VALUE || salt_len > DHT_MAX_SALT)
		return -EINVAL;
	n = dht_bep44_sigbuf(buf, sizeof(buf), salt, salt_len, seq, v, vlen);
	if (n < 0)
		return -EINVAL;
	if (crypto_sign_detached(sig, NULL, buf, (unsigned long long)n, sk) != 0)
		return -EINVAL;
	return 0;
}

/*
 * Ed25519 with an expanded key (a || prefix), RFC 8032 section 5.1.6 steps
 * 2-5 with libsodium's scalar primitives: r = H(prefix || M) mod L,
 * R = rB, k = H(R || A || M) mod L, S = r + k a mod L.
 */
int dht_bep44_sign_expanded(uint8_t sig[DHT_SIG_LEN], const uint8_t esk[64],
			    const uint8_t pk[DHT_PK_LEN], const uint8_t *salt, size_t salt_len,
			    int64_t seq, const uint8_t *v, size_t vlen)
{
	uint8_t buf[SIGBUF_CAP], h[64], r[32], k[32], a64[64], a[32], ka[32];
	crypto_hash_sha512_state st;
	int n;

	if (vlen > DHT_MAX_VALUE || salt_len > DHT_MAX_SALT)
		return -EINVAL;
	n = dht_bep44_sigbuf(buf, sizeof(buf), salt, salt_len, seq, v, vlen);
	if (n < 0)
		return -EINVAL;
	crypto_hash_sha512_init(&st);
	crypto_hash_sha512_update(&st, esk + 32, 32);
	crypto_hash_sha512_update(&st, buf, (unsigned long long)n);
	crypto_hash_sha512_final(&st, h);
	crypto_core_ed25519_scalar_reduce(r, h);
	if (crypto_scalarmult_ed25519_base_noclamp(sig, r) != 0)
		return -EINVAL;
	crypto_hash_sha512_init(&st);
	crypto_hash_sha512_update(&st, sig, 32);
	crypto_hash_sha512_update(&st, pk, 32);
	crypto_hash_sha512_update(&st, buf, (unsigned long long)n);
	crypto_hash_sha512_final(&st, h);
	crypto_core_ed25519_scalar_reduce(k, h);
	memset(a64, 0, sizeof(a64));
	memcpy(a64, esk, 32);
	crypto_core_ed25519_scalar_reduce(a, a64);
	crypto_core_ed25519_scalar_mul(ka, k, a);
	crypto_core_ed25519_scalar_add(sig + 32, r, ka);
	sodium_memzero(a, sizeof(a));
	sodium_memzero(a64, sizeof(a64));
	return 0;
}
