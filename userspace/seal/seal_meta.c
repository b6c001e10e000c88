// SPDX-License-Identifier: MIT
/*
 * Sealed metadata (docs/PRIVATE.md section 5): the real item list of a
 * private share, a bounded length-prefixed encoding sealed with
 * XChaCha20-Poly1305 under a key derived from the content key.
 *
 * Encoding (little endian):
 *   version (1) = 1 | count (u32) |
 *   count x { path_len (u16) | path | type_len (u8) | type | size (u64) }
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "seal_int.h"
#include "weft/seal.h"

#define META_VERSION 1u
#define META_HEAD 5u	    /* version + count */
#define META_ITEM_FIXED 11u /* path_len + type_len + size */

static const char META_CTX[crypto_kdf_CONTEXTBYTES] = {'w', 'e', 'f', 't', 'm', 'e', 't', 'a'};

static int item_ok(const uint8_t *path, size_t path_len, const uint8_t *type, size_t type_len,
		   uint64_t size)
{
	if (path_len == 0 || path_len > SEAL_META_MAX_PATH || type_len > SEAL_META_MAX_TYPE)
		return 0;
	if (memchr(path, 0, path_len) || (type_len && memchr(type, 0, type_len)))
		return 0;
	return size <= SEAL_MAX_PLAIN;
}

int seal_meta_encode(const struct seal_meta_item *items, uint32_t n, uint8_t *out, size_t cap,
		     size_t *out_len)
{
	size_t need = META_HEAD, off;

	*out_len = 0;
	if (n > SEAL_META_MAX_ITEMS)
		return -E2BIG;
	for (uint32_t i = 0; i < n; i++) {
		const struct seal_meta_item *it = &items[i];

		if (!item_ok(it->path, it->path_len, it->type, it->type_len, it->size))
			return -EINVAL;
		need += META_ITEM_FIXED + it->path_len + it->type_len;
	}
	if (need > SEAL_META_MAX_LEN)
		return -E2BIG;
	*out_len = need;
	if (need > cap)
		return -ENOSPC;
	out[0] = META_VERSION;
	seal_put_le(out + 1, n, 4);
	off = META_HEAD;
	for (uint32_t i = 0; i < n; i++) {
		const struct seal_meta_item *it = &items[i];

		seal_put_le(out + off, it->path_len, 2);
		memcpy(out + off + 2, it->path, it->path_len);
		off += 2 + it->path_len;
		out[off] = (uint8_t)it->type_len;
		if (it->type_len)
			memcpy(out + off + 1, it->type, it->type_len);
		off += 1 + it->type_len;
		seal_put_le(out + off, it->size, 8);
		off += 8;
	}
	return 0;
}

int seal_meta_decode(const uint8_t *buf, size_t len, struct seal_meta_item *items, uint32_t cap,
		     uint32_t *n_out)
{
	size_t off = META_HEAD;
	uint32_t n;

	*n_out = 0;
	if (len < META_HEAD || len > SEAL_META_MAX_LEN || buf[0] != META_VERSION)
		return -EBADMSG;
	n = (uint32_t)seal_get_le(buf + 1, 4);
	if (n > SEAL_META_MAX_ITEMS)
		return -EBADMSG;
	/* Every item takes at least 12 bytes: refuse a count the length cannot hold
	 * before looking at any item. */
	if ((uint64_t)n * (META_ITEM_FIXED + 1) > len - META_HEAD)
		return -EBADMSG;
	if (n > cap)
		return -ENOSPC;
	for (uint32_t i = 0; i < n; i++) {
		struct seal_meta_item *it = &items[i];

		if (len - off < 2)
			return -EBADMSG;
		it->path_len = (size_t)seal_get_le(buf + off, 2);
		off += 2;
		if (len - off < it->path_len + 1)
			return -EBADMSG;
		it->path = buf + off;
		off += it->path_len;
		it->type_len = buf[off++];
		if (len - off < it->type_len + 8)
			return -EBADMSG;
		it->type = buf + off;
		off += it->type_len;
		it->size = seal_get_le(buf + off, 8);
		off += 8;
		if (!item_ok(it->path, it->path_len, it->type, it->type_len, it->size))
			return -EBADMSG;
	}
	if (off != len)
		return -EBADMSG;
	*n_out = n;
	return 0;
}

static void meta_key(const uint8_t content_key[SEAL_KEY_LEN], uint8_t key[SEAL_KEY_LEN])
{
	crypto_kdf_derive_from_key(key, SEAL_KEY_LEN, SEAL_META_SUBKEY, META_CTX, content_key);
}

int seal_meta_encrypt_det(const uint8_t content_key[SEAL_KEY_LEN],
			  const struct seal_meta_item *items, uint32_t n,
			  const uint8_t nonce[SEAL_META_NONCE_LEN], uint8_t *out, size_t cap,
			  size_t *out_len)
{
	uint8_t key[SEAL_KEY_LEN];
	size_t plain_len;
	int err;

	/* Size and bounds first (out untouched), then encode after the nonce
	 * and encrypt in place. */
	err = seal_meta_encode(items, n, NULL, 0, &plain_len);
	*out_len = plain_len ? plain_len + SEAL_META_OVERHEAD : 0;
	if (err != -ENOSPC)
		return err;
	if (cap < *out_len)
		return -ENOSPC;
	err = seal_meta_encode(items, n, out + SEAL_META_NONCE_LEN, plain_len, &plain_len);
	if (err)
		return err;
	memcpy(out, nonce, SEAL_META_NONCE_LEN);
	meta_key(content_key, key);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + SEAL_META_NONCE_LEN, NULL,
						   out + SEAL_META_NONCE_LEN, plain_len, NULL, 0,
						   NULL, nonce, key);
	sodium_memzero(key, sizeof(key));
	return 0;
}

int seal_meta_encrypt(const uint8_t content_key[SEAL_KEY_LEN], const struct seal_meta_item *items,
		      uint32_t n, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t nonce[SEAL_META_NONCE_LEN];

	randombytes_buf(nonce, sizeof(nonce));
	return seal_meta_encrypt_det(content_key, items, n, nonce, out, cap, out_len);
}

int seal_meta_decrypt(const uint8_t content_key[SEAL_KEY_LEN], const uint8_t *in, size_t len,
		      uint8_t *plain, size_t plain_cap, struct seal_meta_item *items,
		      uint32_t items_cap, uint32_t *n_out)
{
	uint8_t key[SEAL_KEY_LEN];
	size_t plain_len;
	int rc;

	*n_out = 0;
	if (len < SEAL_META_OVERHEAD || len - SEAL_META_OVERHEAD > SEAL_META_MAX_LEN)
		return -EBADMSG;
	plain_len = len - SEAL_META_OVERHEAD;
	if (plain_len > plain_cap)
		return -ENOSPC;
	meta_key(content_key, key);
	rc =
	    crypto_aead_xchacha20poly1305_ietf_decrypt(plain, NULL, NULL, in + SEAL_META_NONCE_LEN,
						       len - SEAL_META_NONCE_LEN, NULL, 0, in, key);
	sodium_memzero(key, sizeof(key));
	if (rc != 0)
		return -EBADMSG;
	return seal_meta_decode(plain, plain_len, items, items_cap, n_out);
}
