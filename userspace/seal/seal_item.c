// SPDX-License-Identifier: MIT
/*
 * Item encryption (docs/PRIVATE.md section 3): item keys, sizes, segments
 * that encrypt to exactly one content chunk each, and the streaming helper.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "seal_int.h"
#include "weft/seal.h"

static const char ITEM_CTX[crypto_kdf_CONTEXTBYTES] = {'w', 'e', 'f', 't', 'i', 't', 'e', 'm'};

_Static_assert(SEAL_TAG_LEN == crypto_aead_xchacha20poly1305_ietf_ABYTES, "tag");
_Static_assert(SEAL_KEY_LEN == crypto_kdf_KEYBYTES, "kdf key");
/* SEAL_MAX_PLAIN's last segment is partial and not empty. */
_Static_assert(INT64_MAX % SEAL_SEG_LEN > SEAL_TAG_LEN, "largest item");
_Static_assert(SEAL_META_NONCE_LEN == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, "nonce");

void seal_put_le(uint8_t *p, uint64_t v, unsigned int bytes)
{
	for (unsigned int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t seal_get_le(const uint8_t *p, unsigned int bytes)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

uint64_t seal_nsegs(uint64_t plain_size)
{
	return plain_size == 0 ? 1 : (plain_size - 1) / SEAL_SEG_PLAIN + 1;
}

int64_t seal_cipher_size(uint64_t plain_size)
{
	if (plain_size > SEAL_MAX_PLAIN)
		return -EINVAL;
	return (int64_t)(plain_size + SEAL_TAG_LEN * seal_nsegs(plain_size));
}

int64_t seal_plain_size(uint64_t cipher_size)
{
	uint64_t nsegs, last;

	if (cipher_size < SEAL_TAG_LEN || cipher_size > INT64_MAX)
		return -EINVAL;
	nsegs = (cipher_size - 1) / SEAL_SEG_LEN + 1;
	last = cipher_size - (nsegs - 1) * SEAL_SEG_LEN;
	/* Only the empty item has an empty segment, and it is the only one. */
	if (nsegs > 1 && last <= SEAL_TAG_LEN)
		return -EINVAL;
	return (int64_t)(cipher_size - SEAL_TAG_LEN * nsegs);
}

int seal_item_key(const uint8_t content_key[SEAL_KEY_LEN], uint32_t index,
		  uint8_t out[SEAL_KEY_LEN])
{
	if (index == SEAL_META_SUBKEY)
		return -EINVAL;
	return crypto_kdf_derive_from_key(out, SEAL_KEY_LEN, index, ITEM_CTX, content_key) == 0
		   ? 0
		   : -EINVAL;
}

/* nonce = "wseg" || j (u64 LE) || final (1) || 11 zero bytes;
 * AAD = plain_total (u64 LE). */
static void seg_nonce(uint64_t j, int is_final, uint8_t nonce[24], uint8_t aad[8],
		      uint64_t plain_total)
{
	memset(nonce, 0, 24);
	memcpy(nonce, "wseg", 4);
	seal_put_le(nonce + 4, j, 8);
	nonce[12] = is_final ? 1 : 0;
	seal_put_le(aad, plain_total, 8);
}

/* A plaintext segment length the scheme produces: full unless final; empty
 * only as the first and final (the empty item). */
static int seg_len_ok(uint64_t j, int is_final, size_t len)
{
	if (len > SEAL_SEG_PLAIN)
		return 0;
	if (!is_final)
		return len == SEAL_SEG_PLAIN;
	return len > 0 || j == 0;
}

int seal_seg_encrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[24], aad[8];

	if (!seg_len_ok(j, is_final, len))
		return -EINVAL;
	seg_nonce(j, is_final, nonce, aad, plain_total);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, in, len, aad, sizeof(aad), NULL,
						   nonce, item_key);
	return 0;
}

int seal_seg_decrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[24], aad[8];

	if (len < SEAL_TAG_LEN || !seg_len_ok(j, is_final, len - SEAL_TAG_LEN))
		return -EINVAL;
	seg_nonce(j, is_final, nonce, aad, plain_total);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, aad, sizeof(aad),
						       nonce, item_key) != 0)
		return -EBADMSG;
	return 0;
}

int seal_stream_init(struct seal_stream *s, const uint8_t item_key[SEAL_KEY_LEN],
		     uint64_t plain_total)
{
	if (plain_total > SEAL_MAX_PLAIN)
		return -EINVAL;
	memcpy(s->key, item_key, SEAL_KEY_LEN);
	s->total = plain_total;
	s->nsegs = seal_nsegs(plain_total);
	s->next = 0;
	return 0;
}

int seal_stream_done(const struct seal_stream *s)
{
	return s->next >= s->nsegs;
}

size_t seal_stream_next_len(const struct seal_stream *s)
{
	if (seal_stream_done(s))
		return 0;
	if (s->next + 1 < s->nsegs)
		return SEAL_SEG_PLAIN;
	return (size_t)(s->total - s->next * SEAL_SEG_PLAIN);
}

int seal_stream_encrypt(struct seal_stream *s, const uint8_t *in, size_t len, uint8_t *out)
{
	int err;

	if (seal_stream_done(s))
		return -ENOSPC;
	if (len != seal_stream_next_len(s))
		return -EINVAL;
	err = seal_seg_encrypt(s->key, s->total, s->next, s->next + 1 == s->nsegs, in, len, out);
	if (!err)
		s->next++;
	return err;
}

int seal_stream_decrypt(struct seal_stream *s, const uint8_t *in, size_t len, uint8_t *out)
{
	int err;

	if (seal_stream_done(s))
		return -ENOSPC;
	if (len != seal_stream_next_len(s) + SEAL_TAG_LEN)
		return -EINVAL;
	err = seal_seg_decrypt(s->key, s->total, s->next, s->next + 1 == s->nsegs, in, len, out);
	if (!err)
		s->next++;
	return err;
}

int seal_stream_final(struct seal_stream *s)
{
	int done = seal_stream_done(s);

	sodium_memzero(s->key, sizeof(s->key));
	return done ? 0 : -EBADMSG;
}
