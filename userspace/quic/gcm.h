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
 * no allocation but quic_gcm_key_new's.
 *
 * Trust: the tag is computed over the AAD and the ciphertext and compared
 * in constant time before any byte is decrypted, so a forged packet
 * yields no plaintext; the key schedule and the hash key's powers are
 * wiped on quic_gcm_key_free. AES-NI and carry-less multiplication take the
 * same time for every key and input.
 */
#ifndef WEFT_QUIC_GCM_H
#define WEFT_QUIC_GCM_H

#include <stddef.h>
#include <stdint.h>

#define QUIC_GCM_NONCE_LEN 12
#define QUIC_GCM_TAG_LEN 16

/* Implementations, narrowest first. */
enum quic_gcm_impl {
	QUIC_GCM_NONE = 0,    /* this CPU has no AES-NI and PCLMULQDQ */
	QUIC_GCM_AESNI = 1,   /* AES-NI + PCLMULQDQ, 128-bit registers */
	QUIC_GCM_VAES256 = 2, /* AVX2 + VAES + VPCLMULQDQ, 256-bit */
	QUIC_GCM_VAES512 = 3, /* AVX-512 (F, BW, VL) + VAES + VPCLMULQDQ */
};

struct quic_gcm_key;

/* The widest implementation this CPU (and its kernel's saved state) runs. */
enum quic_gcm_impl quic_gcm_impl_best(void);

/* "aesni", "vaes256", "vaes512" or "none". */
const char *quic_gcm_impl_name(enum quic_gcm_impl impl);

/*
 * Expands a 16-byte (AES-128) or 32-byte (AES-256) key for impl (at most
 * quic_gcm_impl_best()) into *out, freed with quic_gcm_key_free. Returns 0,
 * -EINVAL (key length, impl out of range), -EOPNOTSUPP (impl not on this
 * CPU) or -ENOMEM.
 */
int quic_gcm_key_new(struct quic_gcm_key **out, const uint8_t *key, size_t keylen,
		     enum quic_gcm_impl impl);

/* Wipes and frees k; NULL is a no-op. */
void quic_gcm_key_free(struct quic_gcm_key *k);

enum quic_gcm_impl quic_gcm_key_impl(const struct quic_gcm_key *k);

/*
 * Encrypts len bytes of src into dst and appends the tag: dst has room
 * for len + QUIC_GCM_TAG_LEN bytes; dst may be src (in place), no other
 * overlap. aad (aadlen bytes) is authenticated, not encrypted.
 */
void quic_gcm_seal(const struct quic_gcm_key *k, uint8_t *dst,
		   const uint8_t nonce[QUIC_GCM_NONCE_LEN], const uint8_t *aad, size_t aadlen,
		   const uint8_t *src, size_t len);

/*
 * Checks the tag of srclen bytes of src (ciphertext then the tag) against
 * aad, then decrypts the srclen - QUIC_GCM_TAG_LEN bytes into dst (dst may be
 * src). Returns 0, or -EBADMSG (short input, wrong tag) with nothing
 * written to dst.
 */
int quic_gcm_open(const struct quic_gcm_key *k, uint8_t *dst,
		  const uint8_t nonce[QUIC_GCM_NONCE_LEN], const uint8_t *aad, size_t aadlen,
		  const uint8_t *src, size_t srclen);

#endif
