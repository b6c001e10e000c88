// SPDX-License-Identifier: MIT
/*
 * A message sealed to a node key (docs/MAILBOX.md, "Sealing"; vectors in
 * docs/PROTOCOL.md, "Mailbox"): a random message key wrapped for the
 * recipient's X25519 key with seal_wrap (one recipient), the inner part
 * (sender, its signature, time, body) under XChaCha20-Poly1305 with that
 * key. The key is used once, so the nonce is zero; the header is the AAD.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mailbox.h"
#include "weft/seal.h"

#define SIG_CTX "weft-msg-v1"
#define SIG_CTX_LEN 11u

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The signed bytes: context || recipient || ts || body, streamed. */
static void sig_state(crypto_sign_state *st, const uint8_t recipient[MBOX_KEY_LEN],
		      const uint8_t ts_le[8], const uint8_t *body, size_t len)
{
	crypto_sign_init(st);
	crypto_sign_update(st, (const uint8_t *)SIG_CTX, SIG_CTX_LEN);
	crypto_sign_update(st, recipient, MBOX_KEY_LEN);
	crypto_sign_update(st, ts_le, 8);
	crypto_sign_update(st, body, len);
}

static int do_seal(const uint8_t sender_sk[64], const uint8_t recipient[MBOX_KEY_LEN], uint64_t ts,
		   const uint8_t *body, size_t len, const uint8_t *esk, const uint8_t *mkey,
		   uint8_t *out, size_t cap)
{
	uint8_t x_pk[1][SEAL_X_PK_LEN], key[SEAL_KEY_LEN], nonce[24] = { 0 };
	uint8_t *inner;
	crypto_sign_state st;
	size_t total = len + MBOX_SEAL_OVERHEAD;
	int err;

	if (!sender_sk || !recipient || (!body && len) || !out || len > MBOX_MAX_BODY)
		return -EINVAL;
	if (cap < total)
		return -ENOSPC;
	if (seal_x25519_from_ed25519_pk(recipient, x_pk[0]))
		return -EINVAL;
	if (mkey)
		memcpy(key, mkey, SEAL_KEY_LEN);
	else
		seal_content_key_new(key);
	out[0] = MBOX_SEAL_VERSION;
	err = esk ? seal_wrap_det(key, x_pk, 1, esk, out + 1, out + 33)
		  : seal_wrap(key, x_pk, 1, out + 1, out + 33);
	if (err)
		goto out;
	inner = out + MBOX_SEAL_HDR;
	memcpy(inner, sender_sk + 32, 32);
	le64(inner + 96, ts);
	if (len)
		memmove(inner + MBOX_INNER_HDR, body, len);
	sig_state(&st, recipient, inner + 96, inner + MBOX_INNER_HDR, len);
	crypto_sign_final_create(&st, inner + 32, NULL, sender_sk);
	crypto_aead_xchacha20poly1305_ietf_encrypt(inner, NULL, inner, MBOX_INNER_HDR + len, out,
						   MBOX_SEAL_HDR, NULL, nonce, key);
	err = (int)total;
out:
	sodium_memzero(key, sizeof(key));
	return err;
}

int mbox_seal(const uint8_t sender_sk[64], const uint8_t recipient[MBOX_KEY_LEN], uint64_t ts,
	      const uint8_t *body, size_t len, uint8_t *out, size_t cap)
{
	return do_seal(sender_sk, recipient, ts, body, len, NULL, NULL, out, cap);
}

int mbox_seal_det(const uint8_t sender_sk[64], const uint8_t recipient[MBOX_KEY_LEN], uint64_t ts,
		  const uint8_t *body, size_t len, const uint8_t esk[32], const uint8_t key[32],
		  uint8_t *out, size_t cap)
{
	if (!esk || !key)
		return -EINVAL;
	return do_seal(sender_sk, recipient, ts, body, len, esk, key, out, cap);
}

int mbox_open(const uint8_t my_sk[64], const uint8_t *sealed, size_t len, uint8_t *plain,
	      size_t cap, struct mbox_opened *m)
{
	uint8_t x_sk[SEAL_X_SK_LEN], x_pk[SEAL_X_PK_LEN], key[SEAL_KEY_LEN], nonce[24] = { 0 };
	unsigned long long plen;
	crypto_sign_state st;
	int err = -EBADMSG;

	if (!my_sk || !sealed || !plain || !m || len < MBOX_SEAL_OVERHEAD ||
	    len > MBOX_MAX_SEALED || sealed[0] != MBOX_SEAL_VERSION || cap < len)
		return -EBADMSG;
	if (seal_x25519_from_ed25519_sk(my_sk, x_sk) || crypto_scalarmult_base(x_pk, x_sk))
		goto out;
	if (seal_unwrap(x_sk, x_pk, sealed + 1, sealed + 33, 1, key))
		goto out;
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL, sealed + MBOX_SEAL_HDR,
						       len - MBOX_SEAL_HDR, sealed, MBOX_SEAL_HDR,
						       nonce, key))
		goto out;
	memcpy(m->sender, plain, 32);
	m->ts = get_le64(plain + 96);
	m->body = plain + MBOX_INNER_HDR;
	m->len = (size_t)plen - MBOX_INNER_HDR;
	sig_state(&st, my_sk + 32, plain + 96, m->body, m->len);
	if (crypto_sign_final_verify(&st, plain + 32, m->sender))
		goto out;
	err = 0;
out:
	sodium_memzero(x_sk, sizeof(x_sk));
	sodium_memzero(key, sizeof(key));
	return err;
}

int mbox_open_from(const uint8_t my_sk[64], const uint8_t *sealed, size_t len,
		   const uint8_t sender[MBOX_KEY_LEN])
{
	struct mbox_opened m;
	uint8_t *plain;
	int err;

	if (!sender || len > MBOX_MAX_SEALED)
		return -EBADMSG;
	plain = malloc(len ? len : 1);
	if (!plain)
		return -ENOMEM;
	err = mbox_open(my_sk, sealed, len, plain, len, &m);
	if (!err && sodium_memcmp(m.sender, sender, MBOX_KEY_LEN))
		err = -EBADMSG;
	sodium_memzero(plain, len);
	free(plain);
	return err;
}

void mbox_msg_id(const uint8_t *sealed, size_t len, uint8_t id[MBOX_ID_LEN])
{
	crypto_generichash(id, MBOX_ID_LEN, sealed, len, NULL, 0);
}
