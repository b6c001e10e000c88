/* SPDX-License-Identifier: MIT */
/*
 * AES-GCM for QUIC's 1-RTT packets (docs/QUIC.md "AES-GCM on wide
 * vectors"): AES-128-GCM and AES-256-GCM with a 12-byte nonce and a
 * 16-byte tag (RFC 5116's AEAD_AES_128_GCM / AEAD_AES_256_GCM, what TLS 1.3
 * and RFC 9001 use), on AES-NI and PCLMULQDQ, 128 bits at a time, or on
 * VAES and VPCLMULQDQ, 256 or 512 bits at a time (2 or 4 blocks an
 * instruction). Debian 12's GnuTLS and libcrypto encrypt 128 bits at a
 * time; a packet's worth of blocks on 512-bit registers is what took the
 * AEAD's share of a bulk transfer down. No I/O, no global mutable state,
 * no allocation but gcm_key_new's.
 *
 * Trust: the tag is computed over the AAD and the ciphertext and compared
 * in constant time before any byte is decrypted, so a forged packet
 * yields no plaintext; the key schedule and the hash key's powers are
 * wiped on gcm_key_free. AES-NI and carry-less multiplication take the
 * same time for every key and input.
 */
#ifndef WEFT_QUIC_GCM_H
#define WEFT_QUIC_GCM_H

#include <stddef.h>
#include <stdint.h>

#define GCM_NONCE_LEN 12
#define GCM_TAG_LEN 16

/* Implementations, narrowest first. */
enum gcm_impl {
	GCM_IMPL_NONE = 0, /* this CPU has no AES-NI and PCLMULQDQ */
	GCM_IMPL_AESNI = 1, /* AES-NI + PCLMULQDQ, 128-bit registers */
	GCM_IMPL_VAES256 = 2, /* AVX2 + VAES + VPCLMULQDQ, 256-bit */
	GCM_IMPL_VAES512 = 3, /* AVX-512 (F, BW, VL) + VAES + VPCLMULQDQ */
};

struct gcm_key;

/* The widest implementation this CPU (and its kernel's saved state) runs. */
enum gcm_impl gcm_impl_best(void);

/* "aesni", "vaes256", "vaes512" or "none". */
const char *gcm_impl_name(enum gcm_impl impl);

/*
 * Expands a 16-byte (AES-128) or 32-byte (AES-256) key for impl (at most
 * gcm_impl_best()) into *out, freed with gcm_key_free. Returns 0,
 * -EINVAL (key length, impl out of range), -EOPNOTSUPP (impl not on this
 * CPU) or -ENOMEM.
 */
int gcm_key_new(struct gcm_key **out, const uint8_t *key, size_t keylen, enum gcm_impl impl);

/* Wipes and frees k; NULL is a no-op. */
void gcm_key_free(struct gcm_key *k);

enum gcm_impl gcm_key_impl(const struct gcm_key *k);

/*
 * Encrypts len bytes of src into dst and appends the tag: dst has room
 * for len + GCM_TAG_LEN bytes; dst may be src (in place), no other
 * overlap. aad (aadlen bytes) is authenticated, not encrypted.
 */
void gcm_seal(const struct gcm_key *k, uint8_t *dst, const uint8_t nonce[GCM_NONCE_LEN],
	      const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t len);

/*
 * Checks the tag of srclen bytes of src (ciphertext then the tag) against
 * aad, then decrypts the srclen - GCM_TAG_LEN bytes into dst (dst may be
 * src). Returns 0, or -EBADMSG (short input, wrong tag) with nothing
 * written to dst.
 */
int gcm_open(const struct gcm_key *k, uint8_t *dst, const uint8_t nonce[GCM_NONCE_LEN],
	     const uint8_t *aad, size_t aadlen, const uint8_t *src, size_t srclen);

#endif
