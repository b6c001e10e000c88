// SPDX-License-Identifier: MIT
/*
 * Item encryption (docs/PRIVATE.md section 3): item keys, sizes, segments
 * that encrypt to exactly one content chunk each, and the streaming helper.
 */
#include <dlfcn.h>
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
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

/*
 * libcrypto, loaded on first use (dlopen) rather than linked: linked, its
 * relocations and start-up cost every weftd ~1.4 MiB of resident memory
 * (404 KiB of it anonymous) whether it ever seals or not (docs/BENCH.md,
 * "Idle weftd on main"); only a sealed add or open uses it. Without it
 * (not installed, a symbol missing) libsodium's XChaCha20-Poly1305 does
 * the same, byte for byte, at half the speed.
 */
static struct {
	EVP_CIPHER_CTX *(*ctx_new)(void);
	void (*ctx_free)(EVP_CIPHER_CTX *);
	int (*ctx_ctrl)(EVP_CIPHER_CTX *, int, int, void *);
	const EVP_CIPHER *(*chacha)(void);
	int (*init)(EVP_CIPHER_CTX *, const EVP_CIPHER *, ENGINE *, const unsigned char *,
		    const unsigned char *, int);
	int (*update)(EVP_CIPHER_CTX *, unsigned char *, int *, const unsigned char *, int);
	int (*final)(EVP_CIPHER_CTX *, unsigned char *, int *);
	int ok;
} evp;
static pthread_once_t evp_once = PTHREAD_ONCE_INIT;

static void evp_load(void)
{
	void *h = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);

	if (!h)
		return;
	*(void **)&evp.ctx_new = dlsym(h, "EVP_CIPHER_CTX_new");
	*(void **)&evp.ctx_free = dlsym(h, "EVP_CIPHER_CTX_free");
	*(void **)&evp.ctx_ctrl = dlsym(h, "EVP_CIPHER_CTX_ctrl");
	*(void **)&evp.chacha = dlsym(h, "EVP_chacha20_poly1305");
	*(void **)&evp.init = dlsym(h, "EVP_CipherInit_ex");
	*(void **)&evp.update = dlsym(h, "EVP_CipherUpdate");
	*(void **)&evp.final = dlsym(h, "EVP_CipherFinal_ex");
	evp.ok = evp.ctx_new && evp.ctx_free && evp.ctx_ctrl && evp.chacha && evp.init &&
		 evp.update && evp.final;
	/* h stays open for the process's life: the pointers above live in it */
}

int seal_have_libcrypto(void)
{
	pthread_once(&evp_once, evp_load);
	return evp.ok;
}

/* The same AEAD from libsodium (its construction: HChaCha20 subkey, then
 * ChaCha20-Poly1305-IETF with nonce 4 zero bytes || the nonce's last 8). */
static int xchacha_sodium(int enc, const uint8_t key[SEAL_KEY_LEN], const uint8_t nonce[24],
			  const uint8_t aad[8], const uint8_t *in, size_t len, uint8_t *out)
{
	if (enc) {
		crypto_aead_xchacha20poly1305_ietf_encrypt(out, NULL, in, len, aad, 8, NULL, nonce,
							   key);
		return 0;
	}
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, NULL, NULL, in, len, aad, 8, nonce,
						       key)) {
		sodium_memzero(out, len - SEAL_TAG_LEN);
		return -EBADMSG;
	}
	return 0;
}

/*
 * XChaCha20-Poly1305-IETF of a segment, byte for byte libsodium's
 * crypto_aead_xchacha20poly1305_ietf (the vectors of test_seal_vectors
 * check it): the subkey is HChaCha20 of the nonce's first 16 bytes
 * (libsodium's crypto_core_hchacha20), then ChaCha20-Poly1305-IETF under
 * it with nonce 4 zero bytes || the nonce's last 8, from libcrypto (loaded
 * on first use, above; libsodium without it), whose
 * AVX-512 code runs it twice as fast as libsodium's on the development VM
 * (bench_seal: 2,555 against 1,269 MiB/s; docs/PRIVATE.md "Figures"), the
 * difference between a sealed add that keeps up with a plain one and one
 * that does not (bench/private.sh). enc: in (len) ->
 * out (len + tag); else in (len, the tag last) -> out (len - tag), and a
 * tag that does not match is -EBADMSG with out wiped (libcrypto decrypts
 * before it checks). out may equal in.
 */
int seal_xchacha(int enc, int sodium, const uint8_t key[SEAL_KEY_LEN], const uint8_t nonce[24],
		 const uint8_t aad[8], const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t sub[32], iv[12] = {0}, tag[SEAL_TAG_LEN];
	size_t mlen = enc ? len : len - SEAL_TAG_LEN;
	EVP_CIPHER_CTX *c;
	int n, ok;

	pthread_once(&evp_once, evp_load);
	if (sodium || !evp.ok)
		return xchacha_sodium(enc, key, nonce, aad, in, len, out);
	c = evp.ctx_new();
	if (!c)
		return -ENOMEM;
	crypto_core_hchacha20(sub, nonce, key, NULL);
	memcpy(iv + 4, nonce + 16, 8);
	if (!enc)
		memcpy(tag, in + mlen, SEAL_TAG_LEN);
	ok = evp.init(c, evp.chacha(), NULL, NULL, NULL, enc) &&
	     evp.ctx_ctrl(c, EVP_CTRL_AEAD_SET_IVLEN, sizeof(iv), NULL) &&
	     evp.init(c, NULL, NULL, sub, iv, enc) &&
	     evp.update(c, NULL, &n, aad, 8) &&
	     (!mlen || evp.update(c, out, &n, in, (int)mlen)) &&
	     (enc || evp.ctx_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SEAL_TAG_LEN, tag)) &&
	     evp.final(c, out + mlen, &n) &&
	     (!enc || evp.ctx_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SEAL_TAG_LEN, out + mlen));
	evp.ctx_free(c);
	sodium_memzero(sub, sizeof(sub));
	if (ok)
		return 0;
	if (!enc)
		sodium_memzero(out, mlen);
	return enc ? -EIO : -EBADMSG;
}

int seal_seg_encrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[24], aad[8];

	if (!seg_len_ok(j, is_final, len))
		return -EINVAL;
	seg_nonce(j, is_final, nonce, aad, plain_total);
	return seal_xchacha(1, 0, item_key, nonce, aad, in, len, out);
}

int seal_seg_decrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out)
{
	uint8_t nonce[24], aad[8];

	if (len < SEAL_TAG_LEN || !seg_len_ok(j, is_final, len - SEAL_TAG_LEN))
		return -EINVAL;
	seg_nonce(j, is_final, nonce, aad, plain_total);
	return seal_xchacha(0, 0, item_key, nonce, aad, in, len, out);
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
