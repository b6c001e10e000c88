// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for weft's AES-GCM (userspace/quic/gcm.h, docs/QUIC.md
 * "AES-GCM on wide vectors"), differential: the input's first byte picks
 * the key size and the length of the AAD, the rest is AAD then payload.
 * Each width this CPU runs opens the payload as a packet (a forgery: every
 * width refuses it and writes nothing) and seals it; the sealed bytes are
 * GnuTLS's for the same key, nonce and AAD, open back to the payload at
 * every width, and refuse one flipped bit.
 *   make fuzz && build/fuzz/fuzz_quic_gcm -max_len=20000 corpus/
 */
#include <errno.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quic/gcm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_IN 20000

static uint8_t ref[MAX_IN + QUIC_GCM_TAG_LEN], out[MAX_IN + QUIC_GCM_TAG_LEN],
    back[MAX_IN + QUIC_GCM_TAG_LEN];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t key[32] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
					0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c,
					0x76, 0x2e, 0x71, 0x60, 0xf3, 0x8b, 0x4d, 0xa5,
					0x6a, 0x78, 0x4d, 0x08, 0xa2, 0x8c, 0x3b, 0xc0};
	static const uint8_t nonce[QUIC_GCM_NONCE_LEN] = {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 1, 2};
	enum quic_gcm_impl best = quic_gcm_impl_best(), w;
	const uint8_t *aad, *pt;
	size_t kl, al, pl, ol, flip;
	gnutls_datum_t kd;
	gnutls_aead_cipher_hd_t hd;

	if (size < 1 || size > MAX_IN || best == QUIC_GCM_NONE)
		return 0;
	kl = data[0] & 0x80 ? 32 : 16;
	al = data[0] & 0x7f;
	if (al > size - 1)
		al = size - 1;
	aad = data + 1;
	pt = aad + al;
	pl = size - 1 - al;
	kd.data = (unsigned char *)key;
	kd.size = (unsigned int)kl;
	if (gnutls_aead_cipher_init(
		&hd, kl == 16 ? GNUTLS_CIPHER_AES_128_GCM : GNUTLS_CIPHER_AES_256_GCM, &kd) < 0)
		abort();
	ol = pl + QUIC_GCM_TAG_LEN;
	if (gnutls_aead_cipher_encrypt(hd, nonce, sizeof(nonce), aad, al, QUIC_GCM_TAG_LEN, pt, pl,
				       ref, &ol) < 0 ||
	    ol != pl + QUIC_GCM_TAG_LEN)
		abort();
	gnutls_aead_cipher_deinit(hd);
	flip = (size * 131 + data[0]) % (pl + QUIC_GCM_TAG_LEN);
	for (w = QUIC_GCM_AESNI; w <= best; w++) {
		struct quic_gcm_key *k;

		if (quic_gcm_key_new(&k, key, kl, w))
			abort();
		/* The payload as a packet: a forgery, refused, nothing written. */
		memset(back, 0xa5, pl + 1);
		if (pl >= QUIC_GCM_TAG_LEN) {
			if (quic_gcm_open(k, back, nonce, aad, al, pt, pl) != -EBADMSG)
				abort();
			for (size_t i = 0; i < pl + 1; i++)
				if (back[i] != 0xa5)
					abort();
		} else if (quic_gcm_open(k, back, nonce, aad, al, pt, pl) != -EBADMSG) {
			abort();
		}
		quic_gcm_seal(k, out, nonce, aad, al, pt, pl);
		if (memcmp(out, ref, pl + QUIC_GCM_TAG_LEN))
			abort();
		if (quic_gcm_open(k, back, nonce, aad, al, out, pl + QUIC_GCM_TAG_LEN) ||
		    memcmp(back, pt, pl))
			abort();
		out[flip] ^= 0x10;
		if (quic_gcm_open(k, back, nonce, aad, al, out, pl + QUIC_GCM_TAG_LEN) != -EBADMSG)
			abort();
		quic_gcm_key_free(k);
	}
	return 0;
}
