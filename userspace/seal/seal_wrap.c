// SPDX-License-Identifier: MIT
/*
 * Keys and wrapping (docs/PRIVATE.md sections 1 and 4): Ed25519 -> X25519,
 * the content key, and the content key wrapped for each recipient under one
 * ephemeral X25519 key pair.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/seal.h"

static const char WRAP_LABEL[] = "weft-wrap-v1";
static const uint8_t ZERO_NONCE[crypto_aead_chacha20poly1305_ietf_NPUBBYTES];

_Static_assert(SEAL_ENTRY_LEN ==
		   SEAL_HINT_LEN + SEAL_KEY_LEN + crypto_aead_chacha20poly1305_ietf_ABYTES,
	       "entry layout");

int seal_x25519_from_ed25519_pk(const uint8_t ed_pk[SEAL_ED_PK_LEN], uint8_t x_pk[SEAL_X_PK_LEN])
{
	return crypto_sign_ed25519_pk_to_curve25519(x_pk, ed_pk) == 0 ? 0 : -EINVAL;
}

int seal_x25519_from_ed25519_sk(const uint8_t ed_sk[SEAL_ED_SK_LEN], uint8_t x_sk[SEAL_X_SK_LEN])
{
	uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	int err = -EINVAL;

	/* libsodium converts the seed half only; check the public half is
	 * the seed's, else we would open with a key nobody wraps for. */
	crypto_sign_seed_keypair(pk, sk, ed_sk);
	if (sodium_memcmp(pk, ed_sk + 32, sizeof(pk)) != 0)
		goto out;
	if (crypto_sign_ed25519_sk_to_curve25519(x_sk, ed_sk) != 0)
		goto out;
	err = 0;
out:
	sodium_memzero(sk, sizeof(sk));
	return err;
}

void seal_content_key_new(uint8_t key[SEAL_KEY_LEN])
{
	randombytes_buf(key, SEAL_KEY_LEN);
}

/* hint (8) || wrap key (32) = BLAKE2b-320("weft-wrap-v1" || ss || epk || R). */
static void wrap_derive(const uint8_t ss[32], const uint8_t epk[32], const uint8_t r[32],
			uint8_t out[SEAL_HINT_LEN + SEAL_KEY_LEN])
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, SEAL_HINT_LEN + SEAL_KEY_LEN);
	crypto_generichash_update(&st, (const uint8_t *)WRAP_LABEL, sizeof(WRAP_LABEL) - 1);
	crypto_generichash_update(&st, ss, 32);
	crypto_generichash_update(&st, epk, 32);
	crypto_generichash_update(&st, r, 32);
	crypto_generichash_final(&st, out, SEAL_HINT_LEN + SEAL_KEY_LEN);
	sodium_memzero(&st, sizeof(st));
}

static int cmp_entry(const void *a, const void *b)
{
	return memcmp(a, b, SEAL_HINT_LEN);
}

/* One entry: hint || ChaCha20-Poly1305(wrap key, zero nonce, AAD epk). */
static int wrap_one(const uint8_t key[SEAL_KEY_LEN], const uint8_t esk[32], const uint8_t epk[32],
		    const uint8_t r[32], uint8_t entry[SEAL_ENTRY_LEN])
{
	uint8_t ss[32], d[SEAL_HINT_LEN + SEAL_KEY_LEN];
	int err = -EINVAL;

	/* libsodium refuses an all-zero shared secret (low-order R). */
	if (crypto_scalarmult(ss, esk, r) != 0)
		goto out;
	wrap_derive(ss, epk, r, d);
	memcpy(entry, d, SEAL_HINT_LEN);
	/* The wrap key is used once (fresh ephemeral key, one recipient):
	 * a fixed nonce is safe. */
	crypto_aead_chacha20poly1305_ietf_encrypt(entry + SEAL_HINT_LEN, NULL, key, SEAL_KEY_LEN,
						  epk, 32, NULL, ZERO_NONCE, d + SEAL_HINT_LEN);
	err = 0;
out:
	sodium_memzero(ss, sizeof(ss));
	sodium_memzero(d, sizeof(d));
	return err;
}

int seal_wrap_det(const uint8_t key[SEAL_KEY_LEN], const uint8_t (*recipients)[SEAL_X_PK_LEN],
		  size_t n, const uint8_t esk[SEAL_X_SK_LEN], uint8_t epk_out[SEAL_X_PK_LEN],
		  uint8_t *entries_out)
{
	int err;

	/* The cap before any crypto: a hostile list costs nothing. */
	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	if (n == 0)
		return -EINVAL;
	if (crypto_scalarmult_base(epk_out, esk) != 0)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		err = wrap_one(key, esk, epk_out, recipients[i], entries_out + i * SEAL_ENTRY_LEN);
		if (err)
			goto fail;
	}
	/* Sorted by hint: the order is a function of hints that look random
	 * to anyone without a recipient's key, and one list has one encoding. */
	qsort(entries_out, n, SEAL_ENTRY_LEN, cmp_entry);
	for (size_t i = 1; i < n; i++) {
		if (memcmp(entries_out + (i - 1) * SEAL_ENTRY_LEN, entries_out + i * SEAL_ENTRY_LEN,
			   SEAL_HINT_LEN) == 0) {
			err = -EINVAL; /* the same recipient twice */
			goto fail;
		}
	}
	return 0;
fail:
	sodium_memzero(entries_out, n * SEAL_ENTRY_LEN);
	return err;
}

int seal_wrap(const uint8_t key[SEAL_KEY_LEN], const uint8_t (*recipients)[SEAL_X_PK_LEN], size_t n,
	      uint8_t epk_out[SEAL_X_PK_LEN], uint8_t *entries_out)
{
	uint8_t esk[SEAL_X_SK_LEN];
	int err;

	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	randombytes_buf(esk, sizeof(esk));
	err = seal_wrap_det(key, recipients, n, esk, epk_out, entries_out);
	sodium_memzero(esk, sizeof(esk));
	return err;
}

int seal_unwrap(const uint8_t my_sk[SEAL_X_SK_LEN], const uint8_t my_pk[SEAL_X_PK_LEN],
		const uint8_t epk[SEAL_X_PK_LEN], const uint8_t *entries, size_t n,
		uint8_t key_out[SEAL_KEY_LEN])
{
	uint8_t ss[32], d[SEAL_HINT_LEN + SEAL_KEY_LEN];
	int err = -ENOENT;

	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	if (crypto_scalarmult(ss, my_sk, epk) != 0)
		return -EINVAL;
	wrap_derive(ss, epk, my_pk, d);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *e = entries + i * SEAL_ENTRY_LEN;

		if (memcmp(e, d, SEAL_HINT_LEN) != 0)
			continue;
		if (crypto_aead_chacha20poly1305_ietf_decrypt(
			key_out, NULL, NULL, e + SEAL_HINT_LEN, SEAL_ENTRY_LEN - SEAL_HINT_LEN, epk,
			32, ZERO_NONCE, d + SEAL_HINT_LEN) == 0) {
			err = 0;
			break;
		}
		/* A hint collision (2^-64) or a forged entry: keep looking,
		 * and say so if nothing else opens. */
		err = -EBADMSG;
	}
	sodium_memzero(ss, sizeof(ss));
	sodium_memzero(d, sizeof(d));
	return err;
}
