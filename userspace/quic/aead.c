/* SPDX-License-Identifier: MIT */
/*
 * 1-RTT packet protection on weft's AES-GCM (gcm.h; docs/QUIC.md "AES-GCM
 * on wide vectors"). ngtcp2's GnuTLS glue installs every key through
 * GnuTLS's secret function; an endpoint with ep->gcm replaces that
 * function with quic_aead_secret_cb, which derives the 1-RTT keys of an
 * AES-GCM suite itself (RFC 9001 5.1: "quic key" and "quic iv" from the
 * traffic secret) and installs a gcm.h key as the packets' AEAD context.
 * Every other key (Initial, Handshake, other suites, other versions) and
 * header protection go through ngtcp2's own functions, unchanged.
 *
 * A context is ours when one of its handle's two low bits is set: bit 0
 * on a gcm.h key (64-byte aligned), bit 1 on a next-phase key (struct
 * aead_next, malloc's 16-byte alignment); GnuTLS's handles are heap
 * pointers (both clear). So the callbacks tell them apart without a
 * table, per packet, and every handle reaches the right free.
 *
 * The next-phase keys ngtcp2 derives ahead (RFC 9001 6; used only after
 * a key update, which most connections never see) are kept as their AES
 * key until first used, and expanded (round keys, H's powers: 1,832
 * bytes) then: an idle connection holds two gcm.h keys, not four.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2_crypto.h>
#include <ngtcp2/ngtcp2_crypto_gnutls.h>

#include "quic/gcm.h"
#include "quic/quic_int.h"

#define TAG_KEY 1u
#define TAG_NEXT 2u
#define TAG_MASK 3u

/* A next-phase key: the AES key until its first use, then the gcm.h key. */
struct aead_next {
	struct quic_gcm_key *k;
	uint8_t key[32];
	uint8_t keylen, impl;
};

static _Atomic uint64_t keys_made; /* quic_aead_keys_made */

uint64_t quic_aead_keys_made(void)
{
	return atomic_load(&keys_made);
}

static void *gcm_handle(struct quic_gcm_key *k)
{
	return (void *)((uintptr_t)k | TAG_KEY);
}

/* The gcm.h key behind handle h, *ours set when it is weft's: NULL with
 * *ours clear for GnuTLS's; a next-phase key is expanded on its first use
 * (NULL with *ours set if that fails: tried again on the next packet). */
static struct quic_gcm_key *gcm_of(const void *h, int *ours)
{
	uintptr_t v = (uintptr_t)h;
	struct aead_next *n;
	struct quic_gcm_key *k;

	*ours = (v & TAG_MASK) != 0;
	if (v & TAG_KEY)
		return (struct quic_gcm_key *)(v & ~(uintptr_t)TAG_MASK);
	if (!(v & TAG_NEXT))
		return NULL;
	n = (struct aead_next *)(v & ~(uintptr_t)TAG_MASK);
	if (!n->k && quic_gcm_key_new(&k, n->key, n->keylen, (enum quic_gcm_impl)n->impl) == 0) {
		n->k = k;
		explicit_bzero(n->key, sizeof(n->key));
		atomic_fetch_add(&keys_made, 1);
	}
	return n->k;
}

/* Frees a next-phase handle (NULL: a no-op), its key wiped. */
static void next_free(void *h)
{
	struct aead_next *n = (struct aead_next *)((uintptr_t)h & ~(uintptr_t)TAG_MASK);

	if (!n)
		return;
	quic_gcm_key_free(n->k);
	explicit_bzero(n, sizeof(*n));
	free(n);
}

/* A next-phase handle for an AES key of keylen bytes (at most 32). */
static void *next_new(const uint8_t *key, size_t keylen, int impl)
{
	struct aead_next *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	memcpy(n->key, key, keylen);
	n->keylen = (uint8_t)keylen;
	n->impl = (uint8_t)impl;
	return (void *)((uintptr_t)n | TAG_NEXT);
}

/* quic_aead's GnuTLS and widths in gcm.h's order: GnuTLS at 0 (where
 * gcm.h has QUIC_GCM_NONE), each width at its enum quic_gcm_impl. */
_Static_assert(QUIC_AEAD_AESNI - QUIC_AEAD_GNUTLS == QUIC_GCM_AESNI &&
		   QUIC_AEAD_VAES256 - QUIC_AEAD_GNUTLS == QUIC_GCM_VAES256 &&
		   QUIC_AEAD_VAES512 - QUIC_AEAD_GNUTLS == QUIC_GCM_VAES512,
	       "quic_aead's widths follow enum quic_gcm_impl");

static int aead_width(enum quic_aead a)
{
	return (int)a - QUIC_AEAD_GNUTLS;
}

static enum quic_aead width_aead(int w)
{
	return (enum quic_aead)(QUIC_AEAD_GNUTLS + w);
}

/* auto's measurement: a QUIC packet's worth (1,420 bytes, the AAD of a
 * short header) sealed CAL_BATCH times a round, CAL_ROUNDS rounds with
 * the candidates alternating, each one's best round in CPU time of this
 * thread (preemption and a busy sibling do not count against it). */
#define CAL_LEN 1420
#define CAL_AAD 22
#define CAL_BATCH 32
#define CAL_ROUNDS 7

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define CAL_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define CAL_SANITIZED 1
#endif
#endif
#ifndef CAL_SANITIZED
#define CAL_SANITIZED 0
#endif

static pthread_once_t cal_once = PTHREAD_ONCE_INIT;
static struct quic_aead_auto cal; /* written once under cal_once */

static uint64_t thread_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

enum quic_aead quic_aead_pick(const unsigned int ns[4])
{
	unsigned int i, best = 0;

	for (i = 1; i < 4; i++)
		if (ns[i] && (!best || ns[i] < ns[best]))
			best = i;
	if (!best || (ns[0] && (uint64_t)ns[best] * 10 > (uint64_t)ns[0] * 9))
		return QUIC_AEAD_GNUTLS;
	return width_aead((int)best);
}

static void calibrate(void)
{
	static const uint8_t key[16] = {0x2b, 0x7e, 0x15, 0x16};
	static const uint8_t nonce[QUIC_GCM_NONCE_LEN] = {7};
	gnutls_datum_t kd = {(unsigned char *)key, sizeof(key)};
	gnutls_aead_cipher_hd_t hd = NULL;
	struct quic_gcm_key *k[4] = {NULL};
	uint8_t in[CAL_LEN], out[CAL_LEN + QUIC_GCM_TAG_LEN], aad[CAL_AAD] = {0x40};
	uint64_t best[4] = {0};
	enum quic_gcm_impl top = quic_gcm_impl_best();
	unsigned int i, r, b;

	memset(in, 0xa5, sizeof(in));
	if (gnutls_aead_cipher_init(&hd, GNUTLS_CIPHER_AES_128_GCM, &kd) < 0)
		hd = NULL;
	for (i = QUIC_GCM_AESNI; i <= (unsigned int)top; i++)
		if (quic_gcm_key_new(&k[i], key, sizeof(key), (enum quic_gcm_impl)i))
			k[i] = NULL;
	/* Round 0 warms each up (code, key, the powers of H) untimed. */
	for (r = 0; r <= CAL_ROUNDS; r++)
		for (i = 0; i < 4; i++) {
			uint64_t t0, dt;
			size_t olen;

			if (i ? !k[i] : !hd)
				continue;
			t0 = thread_ns();
			for (b = 0; b < CAL_BATCH; b++) {
				if (!i) {
					olen = sizeof(out);
					if (gnutls_aead_cipher_encrypt(
						hd, nonce, sizeof(nonce), aad, sizeof(aad),
						QUIC_GCM_TAG_LEN, in, sizeof(in), out, &olen) < 0)
						break;
				} else {
					quic_gcm_seal(k[i], out, nonce, aad, sizeof(aad), in,
						      sizeof(in));
				}
			}
			dt = thread_ns() - t0;
			if (b < CAL_BATCH) { /* GnuTLS refused: not a candidate */
				gnutls_aead_cipher_deinit(hd);
				hd = NULL;
				best[0] = 0;
				continue;
			}
			if (r && (!best[i] || dt < best[i]))
				best[i] = dt ? dt : 1;
		}
	for (i = 0; i < 4; i++)
		cal.ns[i] = (unsigned int)((best[i] + CAL_BATCH / 2) / CAL_BATCH);
	for (i = 0; i < 4; i++)
		if (best[i] && !cal.ns[i])
			cal.ns[i] = 1;
	cal.pick = quic_aead_pick(cal.ns);
	cal.sanitized = CAL_SANITIZED;
	if (CAL_SANITIZED)
		cal.pick = width_aead((int)top); /* QUIC_GCM_NONE: GnuTLS */
	if (hd)
		gnutls_aead_cipher_deinit(hd);
	for (i = 0; i < 4; i++)
		quic_gcm_key_free(k[i]);
}

void quic_aead_auto(struct quic_aead_auto *out)
{
	pthread_once(&cal_once, calibrate);
	*out = cal;
}

int quic_aead_resolve(enum quic_aead a, int *gcm)
{
	enum quic_gcm_impl best = quic_gcm_impl_best();
	struct quic_aead_auto au;

	switch (a) {
	case QUIC_AEAD_AUTO:
		quic_aead_auto(&au);
		*gcm = aead_width(au.pick);
		return 0;
	case QUIC_AEAD_GNUTLS:
		*gcm = 0;
		return 0;
	case QUIC_AEAD_AESNI:
	case QUIC_AEAD_VAES256:
	case QUIC_AEAD_VAES512:
		*gcm = aead_width(a);
		return *gcm > (int)best ? -EOPNOTSUPP : 0;
	}
	return -EINVAL;
}

enum quic_aead quic_aead_parse(const char *name)
{
	enum quic_gcm_impl i;

	if (!strcmp(name, "gnutls"))
		return QUIC_AEAD_GNUTLS;
	/* the widths by gcm.h's names for them */
	for (i = QUIC_GCM_AESNI; i <= QUIC_GCM_VAES512; i++)
		if (!strcmp(name, quic_gcm_impl_name(i)))
			return width_aead((int)i);
	return QUIC_AEAD_AUTO;
}

const char *quic_aead_name(enum quic_aead a)
{
	switch (a) {
	case QUIC_AEAD_AUTO:
		return "auto";
	case QUIC_AEAD_GNUTLS:
		return "gnutls";
	case QUIC_AEAD_AESNI:
	case QUIC_AEAD_VAES256:
	case QUIC_AEAD_VAES512:
		return quic_gcm_impl_name((enum quic_gcm_impl)aead_width(a));
	}
	return "?";
}

const char *quic_aead_widest(void)
{
	return quic_gcm_impl_name(quic_gcm_impl_best());
}

const char *quic_ep_aead(const struct quic_ep *ep)
{
	return ep->gcm ? quic_gcm_impl_name((enum quic_gcm_impl)ep->gcm)
		       : quic_aead_name(QUIC_AEAD_GNUTLS);
}

/* The negotiated suite's context, set from the session on first use (as
 * ngtcp2's derive_and_install functions do); NULL unless it is AES-GCM
 * in QUIC version 1, whose labels these are. */
static const ngtcp2_crypto_ctx *gcm_ctx(ngtcp2_conn *conn, gnutls_session_t tls)
{
	const ngtcp2_crypto_ctx *ctx = ngtcp2_conn_get_crypto_ctx(conn);
	gnutls_cipher_algorithm_t cipher;
	ngtcp2_crypto_ctx cctx;

	if (!ctx->aead.native_handle) {
		ngtcp2_crypto_ctx_tls(&cctx, tls);
		ngtcp2_conn_set_crypto_ctx(conn, &cctx);
		ctx = ngtcp2_conn_get_crypto_ctx(conn);
	}
	cipher = (gnutls_cipher_algorithm_t)(intptr_t)ctx->aead.native_handle;
	if ((cipher != GNUTLS_CIPHER_AES_128_GCM && cipher != GNUTLS_CIPHER_AES_256_GCM) ||
	    ngtcp2_conn_get_negotiated_version(conn) != NGTCP2_PROTO_VER_V1 ||
	    ngtcp2_crypto_packet_protection_ivlen(&ctx->aead) != QUIC_GCM_NONCE_LEN)
		return NULL;
	return ctx;
}

/* A packet protection key (32 bytes of room, keylen used) and IV from a
 * traffic secret; hp_key too when not NULL. 0 or -EINVAL / -EPROTO. */
static int derive(const ngtcp2_crypto_ctx *ctx, const uint8_t *secret, size_t secretlen,
		  uint8_t *key, uint8_t *iv, uint8_t *hp_key)
{
	static const uint8_t key_label[] = "quic key", iv_label[] = "quic iv",
			     hp_label[] = "quic hp";
	size_t keylen = ngtcp2_crypto_aead_keylen(&ctx->aead);

	if (keylen > 32)
		return -EINVAL;
	if (ngtcp2_crypto_hkdf_expand_label(key, keylen, &ctx->md, secret, secretlen, key_label,
					    sizeof(key_label) - 1) ||
	    ngtcp2_crypto_hkdf_expand_label(iv, QUIC_GCM_NONCE_LEN, &ctx->md, secret, secretlen,
					    iv_label, sizeof(iv_label) - 1) ||
	    (hp_key && ngtcp2_crypto_hkdf_expand_label(hp_key, keylen, &ctx->md, secret, secretlen,
						       hp_label, sizeof(hp_label) - 1)))
		return -EPROTO;
	return 0;
}

/* Install one direction's 1-RTT keys on gcm.h: 0, or -1 (GnuTLS's failure). */
static int install(struct quic_conn *c, const ngtcp2_crypto_ctx *ctx, int rx, const uint8_t *secret,
		   size_t secretlen)
{
	size_t keylen = ngtcp2_crypto_aead_keylen(&ctx->aead);
	ngtcp2_crypto_aead_ctx aead_ctx = {0};
	ngtcp2_crypto_cipher_ctx hp_ctx = {0};
	uint8_t iv[QUIC_GCM_NONCE_LEN], hp_key[32], key[32];
	gnutls_datum_t hd = {hp_key, (unsigned int)keylen};
	gnutls_cipher_hd_t hp = NULL;
	struct quic_gcm_key *k = NULL;
	int rv = -1;

	if (derive(ctx, secret, secretlen, key, iv, hp_key) ||
	    quic_gcm_key_new(&k, key, keylen, (enum quic_gcm_impl)c->ep->gcm)) {
		k = NULL;
		goto out;
	}
	/* Header protection: GnuTLS, as ngtcp2's hp_mask callback expects. */
	if (gnutls_cipher_init(&hp, (gnutls_cipher_algorithm_t)(intptr_t)ctx->hp.native_handle, &hd,
			       NULL) < 0) {
		hp = NULL;
		goto out;
	}
	aead_ctx.native_handle = gcm_handle(k);
	hp_ctx.native_handle = hp;
	atomic_fetch_add(&keys_made, 1);
	if ((rx ? ngtcp2_conn_install_rx_key : ngtcp2_conn_install_tx_key)(
		c->conn, secret, secretlen, &aead_ctx, iv, sizeof(iv), &hp_ctx))
		goto out;
	k = NULL;
	hp = NULL;
	rv = 0;
out:
	quic_gcm_key_free(k);
	if (hp)
		gnutls_cipher_deinit(hp);
	explicit_bzero(key, sizeof(key));
	explicit_bzero(hp_key, sizeof(hp_key));
	explicit_bzero(iv, sizeof(iv));
	return rv;
}

int quic_aead_secret_cb(gnutls_session_t session, gnutls_record_encryption_level_t level,
			const void *rx_secret, const void *tx_secret, size_t secretlen)
{
	ngtcp2_crypto_conn_ref *ref = gnutls_session_get_ptr(session);
	struct quic_conn *c = ref->user_data;
	ngtcp2_crypto_level lv = ngtcp2_crypto_gnutls_from_gnutls_record_encryption_level(level);
	const ngtcp2_crypto_ctx *ctx = NULL;

	if (lv == NGTCP2_CRYPTO_LEVEL_APPLICATION && c->ep->gcm)
		ctx = gcm_ctx(c->conn, session);
	if (!ctx) {
		/* ngtcp2's own secret function, line for line. */
		if (rx_secret && ngtcp2_crypto_derive_and_install_rx_key(c->conn, NULL, NULL, NULL,
									 lv, rx_secret, secretlen))
			return -1;
		if (tx_secret && ngtcp2_crypto_derive_and_install_tx_key(c->conn, NULL, NULL, NULL,
									 lv, tx_secret, secretlen))
			return -1;
		return 0;
	}
	if (rx_secret && install(c, ctx, 1, rx_secret, secretlen))
		return -1;
	if (tx_secret && install(c, ctx, 0, tx_secret, secretlen))
		return -1;
	return 0;
}

int quic_aead_encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			 const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
			 size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
			 const uint8_t *aad, size_t aadlen)
{
	int ours;
	struct quic_gcm_key *k = gcm_of(aead_ctx->native_handle, &ours);

	if (!ours)
		return ngtcp2_crypto_encrypt_cb(dest, aead, aead_ctx, plaintext, plaintextlen,
						nonce, noncelen, aad, aadlen);
	if (!k || noncelen != QUIC_GCM_NONCE_LEN)
		return NGTCP2_ERR_CALLBACK_FAILURE;
	quic_gcm_seal(k, dest, nonce, aad, aadlen, plaintext, plaintextlen);
	return 0;
}

int quic_aead_decrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			 const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
			 size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
			 const uint8_t *aad, size_t aadlen)
{
	int ours;
	struct quic_gcm_key *k = gcm_of(aead_ctx->native_handle, &ours);

	if (!ours)
		return ngtcp2_crypto_decrypt_cb(dest, aead, aead_ctx, ciphertext, ciphertextlen,
						nonce, noncelen, aad, aadlen);
	if (!k || noncelen != QUIC_GCM_NONCE_LEN ||
	    quic_gcm_open(k, dest, nonce, aad, aadlen, ciphertext, ciphertextlen))
		return NGTCP2_ERR_DECRYPT;
	return 0;
}

int quic_aead_update_key_cb(ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
			    ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
			    ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
			    const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
			    size_t secretlen, void *user_data)
{
	static const uint8_t ku_label[] = "quic ku";
	struct quic_conn *c = user_data;
	const ngtcp2_crypto_ctx *ctx = c->ep->gcm ? gcm_ctx(conn, c->tls) : NULL;
	size_t keylen = ctx ? ngtcp2_crypto_aead_keylen(&ctx->aead) : 0;
	uint8_t rkey[32], tkey[32];
	void *rn = NULL, *tn = NULL;
	int rv = NGTCP2_ERR_CALLBACK_FAILURE;

	if (!ctx) {
		if (ngtcp2_crypto_update_key_cb(conn, rx_secret, tx_secret, rx_aead_ctx, rx_iv,
						tx_aead_ctx, tx_iv, current_rx_secret,
						current_tx_secret, secretlen, user_data))
			return NGTCP2_ERR_CALLBACK_FAILURE;
		c->ep->st.next_keys++;
		return 0;
	}
	/* RFC 9001 6.1: the next secrets by "quic ku", their keys and IVs
	 * as for the first 1-RTT ones; header protection keys do not change. */
	if (ngtcp2_crypto_hkdf_expand_label(rx_secret, secretlen, &ctx->md, current_rx_secret,
					    secretlen, ku_label, sizeof(ku_label) - 1) ||
	    ngtcp2_crypto_hkdf_expand_label(tx_secret, secretlen, &ctx->md, current_tx_secret,
					    secretlen, ku_label, sizeof(ku_label) - 1) ||
	    derive(ctx, rx_secret, secretlen, rkey, rx_iv, NULL) ||
	    derive(ctx, tx_secret, secretlen, tkey, tx_iv, NULL))
		goto out;
	/* expanded when first used (most connections never update keys) */
	rn = next_new(rkey, keylen, c->ep->gcm);
	tn = next_new(tkey, keylen, c->ep->gcm);
	if (!rn || !tn) {
		next_free(rn);
		next_free(tn);
		goto out;
	}
	rx_aead_ctx->native_handle = rn;
	tx_aead_ctx->native_handle = tn;
	c->ep->st.next_keys++;
	rv = 0;
out:
	explicit_bzero(rkey, sizeof(rkey));
	explicit_bzero(tkey, sizeof(tkey));
	return rv;
}

void quic_aead_delete_cb(ngtcp2_conn *conn, ngtcp2_crypto_aead_ctx *aead_ctx, void *user_data)
{
	uintptr_t v = (uintptr_t)aead_ctx->native_handle;

	if (!(v & TAG_MASK)) {
		ngtcp2_crypto_delete_crypto_aead_ctx_cb(conn, aead_ctx, user_data);
		return;
	}
	if (v & TAG_KEY)
		quic_gcm_key_free((struct quic_gcm_key *)(v & ~(uintptr_t)TAG_MASK));
	else
		next_free(aead_ctx->native_handle);
	aead_ctx->native_handle = NULL;
}
