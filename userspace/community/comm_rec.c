// SPDX-License-Identifier: MIT
/*
 * Community keys, records and sealing (docs/COMMUNITY.md, wire formats in
 * docs/PROTOCOL.md "Communities"). No I/O, libsodium only.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "weft/comm.h"

static const char MASTER_LABEL[] = "weft-comm-v1";
static const char ADMIT_LABEL[] = "weft-comm-admit-v1";
static const char REC_LABEL[] = "weft-comm-rec-v1";
static const char BOX_LABEL[] = "weft-comm-box-v1";
#define LEN(s) (sizeof(s) - 1)

/* crypto_kdf subkey ids and contexts (8 bytes each). */
#define SUB_REC 1u
#define SUB_DHT 2u
static const char CTX_REC[] = "wcommrec";
static const char CTX_DHT[] = "wcommdht";

#define OFF_TYPE 1u
#define OFF_ID 2u
#define OFF_MEMBER (OFF_ID + COMM_ID_LEN)
#define OFF_SEQ (OFF_MEMBER + COMM_PK_LEN)
#define OFF_FLAGS (OFF_SEQ + 8u)
_Static_assert(OFF_FLAGS + 1u == COMM_REC_HDR_LEN, "record header layout");

int comm_id_closed(const uint8_t id[COMM_ID_LEN])
{
	return (id[0] & COMM_ID_CLOSED) != 0;
}

void comm_create(int closed, uint8_t id[COMM_ID_LEN], uint8_t pk[COMM_PK_LEN],
		 uint8_t sk[COMM_SK_LEN])
{
	crypto_sign_keypair(pk, sk);
	randombytes_buf(id, COMM_ID_LEN);
	id[0] = (uint8_t)((id[0] & ~COMM_ID_CLOSED) | (closed ? COMM_ID_CLOSED : 0));
}

void comm_keys_derive(const uint8_t id[COMM_ID_LEN], const uint8_t pk[COMM_PK_LEN],
		      struct comm_keys *out)
{
	uint8_t master[crypto_kdf_KEYBYTES];
	crypto_generichash_state st;

	/* master = BLAKE2b-256(key = community pk, "weft-comm-v1" || id) */
	crypto_generichash_init(&st, pk, COMM_PK_LEN, sizeof(master));
	crypto_generichash_update(&st, (const uint8_t *)MASTER_LABEL, LEN(MASTER_LABEL));
	crypto_generichash_update(&st, id, COMM_ID_LEN);
	crypto_generichash_final(&st, master, sizeof(master));
	crypto_kdf_derive_from_key(out->rec_key, sizeof(out->rec_key), SUB_REC, CTX_REC, master);
	crypto_kdf_derive_from_key(out->dht_key, sizeof(out->dht_key), SUB_DHT, CTX_DHT, master);
	sodium_memzero(master, sizeof(master));
}

/* An Ed25519 secret key whose public half is the key its seed makes. */
static int sk_consistent(const uint8_t sk[COMM_SK_LEN])
{
	uint8_t pk[COMM_PK_LEN], tsk[COMM_SK_LEN];

	crypto_sign_seed_keypair(pk, tsk, sk);
	sodium_memzero(tsk, sizeof(tsk));
	return sodium_memcmp(pk, sk + 32, COMM_PK_LEN) == 0;
}

static size_t admit_msg(uint8_t *m, const uint8_t *id, const uint8_t *member)
{
	memcpy(m, ADMIT_LABEL, LEN(ADMIT_LABEL));
	memcpy(m + LEN(ADMIT_LABEL), id, COMM_ID_LEN);
	memcpy(m + LEN(ADMIT_LABEL) + COMM_ID_LEN, member, COMM_PK_LEN);
	return LEN(ADMIT_LABEL) + COMM_ID_LEN + COMM_PK_LEN;
}

int comm_admit(const uint8_t comm_sk[COMM_SK_LEN], const uint8_t id[COMM_ID_LEN],
	       const uint8_t member_pk[COMM_PK_LEN], uint8_t sig[COMM_SIG_LEN])
{
	uint8_t m[LEN(ADMIT_LABEL) + COMM_ID_LEN + COMM_PK_LEN];

	if (!sk_consistent(comm_sk))
		return -EINVAL;
	crypto_sign_detached(sig, NULL, m, admit_msg(m, id, member_pk), comm_sk);
	return 0;
}

int comm_admit_verify(const uint8_t comm_pk[COMM_PK_LEN], const uint8_t id[COMM_ID_LEN],
		      const uint8_t member_pk[COMM_PK_LEN], const uint8_t sig[COMM_SIG_LEN])
{
	uint8_t m[LEN(ADMIT_LABEL) + COMM_ID_LEN + COMM_PK_LEN];

	if (crypto_sign_verify_detached(sig, m, admit_msg(m, id, member_pk), comm_pk) != 0)
		return -EACCES;
	return 0;
}

static void put_u64(uint8_t *p, uint64_t v)
{
	for (unsigned int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The signed message: label || body; returns its length. */
static size_t rec_msg(uint8_t *m, const uint8_t *body, size_t len)
{
	memcpy(m, REC_LABEL, LEN(REC_LABEL));
	memcpy(m + LEN(REC_LABEL), body, len);
	return LEN(REC_LABEL) + len;
}

static int name_ok(const char *name, size_t len)
{
	return len > 0 && len <= COMM_NAME_MAX && memchr(name, 0, len) == NULL;
}

int comm_rec_sign(const struct comm_rec *r, const uint8_t member_sk[COMM_SK_LEN], uint8_t *out,
		  size_t cap, size_t *out_len)
{
	uint8_t m[LEN(REC_LABEL) + COMM_REC_MAX_LEN];
	size_t body;

	*out_len = 0;
	if (r->type == COMM_REC_MEMBER)
		body = COMM_REC_HDR_LEN + COMM_SIG_LEN;
	else if (r->type == COMM_REC_SHARE && name_ok(r->name, r->name_len))
		body = COMM_REC_HDR_LEN + COMM_PK_LEN + 1u + r->name_len;
	else
		return -EINVAL;
	if (!sk_consistent(member_sk) || memcmp(member_sk + 32, r->member, COMM_PK_LEN) != 0)
		return -EINVAL;
	if (cap < body + COMM_SIG_LEN)
		return -ENOSPC;
	out[0] = 1;
	out[OFF_TYPE] = r->type;
	memcpy(out + OFF_ID, r->id, COMM_ID_LEN);
	memcpy(out + OFF_MEMBER, r->member, COMM_PK_LEN);
	put_u64(out + OFF_SEQ, r->seq);
	out[OFF_FLAGS] = r->flags;
	if (r->type == COMM_REC_MEMBER) {
		memcpy(out + COMM_REC_HDR_LEN, r->admit, COMM_SIG_LEN);
	} else {
		memcpy(out + COMM_REC_HDR_LEN, r->head, COMM_PK_LEN);
		out[COMM_REC_HDR_LEN + COMM_PK_LEN] = r->name_len;
		memcpy(out + COMM_REC_HDR_LEN + COMM_PK_LEN + 1u, r->name, r->name_len);
	}
	crypto_sign_detached(out + body, NULL, m, rec_msg(m, out, body), member_sk);
	*out_len = body + COMM_SIG_LEN;
	return 0;
}

int comm_rec_parse(const uint8_t *buf, size_t len, const uint8_t id[COMM_ID_LEN],
		   const uint8_t comm_pk[COMM_PK_LEN], struct comm_rec *out)
{
	uint8_t m[LEN(REC_LABEL) + COMM_REC_MAX_LEN];
	size_t body;

	memset(out, 0, sizeof(*out));
	if (len < COMM_REC_HDR_LEN + COMM_SIG_LEN || len > COMM_REC_MAX_LEN || buf[0] != 1)
		return -EBADMSG;
	out->type = buf[OFF_TYPE];
	out->flags = buf[OFF_FLAGS];
	if (out->flags & ~(unsigned int)COMM_REC_GONE)
		return -EBADMSG;
	body = len - COMM_SIG_LEN;
	if (out->type == COMM_REC_MEMBER) {
		if (len != COMM_REC_MEMBER_LEN)
			return -EBADMSG;
		memcpy(out->admit, buf + COMM_REC_HDR_LEN, COMM_SIG_LEN);
	} else if (out->type == COMM_REC_SHARE) {
		if (body < COMM_REC_HDR_LEN + COMM_PK_LEN + 1u)
			return -EBADMSG;
		memcpy(out->head, buf + COMM_REC_HDR_LEN, COMM_PK_LEN);
		out->name_len = buf[COMM_REC_HDR_LEN + COMM_PK_LEN];
		if (body != COMM_REC_HDR_LEN + COMM_PK_LEN + 1u + out->name_len)
			return -EBADMSG;
		memcpy(out->name, buf + COMM_REC_HDR_LEN + COMM_PK_LEN + 1u, out->name_len);
		if (!name_ok(out->name, out->name_len))
			return -EBADMSG;
	} else {
		return -EBADMSG;
	}
	memcpy(out->id, buf + OFF_ID, COMM_ID_LEN);
	memcpy(out->member, buf + OFF_MEMBER, COMM_PK_LEN);
	out->seq = get_u64(buf + OFF_SEQ);
	if (crypto_sign_verify_detached(buf + body, m, rec_msg(m, buf, body), out->member) != 0)
		return -EBADMSG;
	if (memcmp(out->id, id, COMM_ID_LEN) != 0)
		return -EXDEV;
	if (out->type == COMM_REC_MEMBER && comm_id_closed(id) && !(out->flags & COMM_REC_GONE))
		return comm_admit_verify(comm_pk, id, out->member, out->admit);
	return 0;
}

static void box_ad(uint8_t *ad, const uint8_t *id)
{
	memcpy(ad, BOX_LABEL, LEN(BOX_LABEL));
	memcpy(ad + LEN(BOX_LABEL), id, COMM_ID_LEN);
}

int comm_seal_det(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN],
		  const uint8_t nonce[COMM_NONCE_LEN], const uint8_t *plain, size_t len,
		  uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t ad[LEN(BOX_LABEL) + COMM_ID_LEN];
	unsigned long long clen;

	*out_len = 0;
	if (len > cap || cap - len < COMM_SEAL_OVERHEAD)
		return -ENOSPC;
	box_ad(ad, id);
	memmove(out + COMM_NONCE_LEN, plain, len);
	memcpy(out, nonce, COMM_NONCE_LEN);
	crypto_aead_xchacha20poly1305_ietf_encrypt(out + COMM_NONCE_LEN, &clen,
						   out + COMM_NONCE_LEN, len, ad, sizeof(ad),
						   NULL, out, k->rec_key);
	*out_len = COMM_NONCE_LEN + (size_t)clen;
	return 0;
}

int comm_seal(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN], const uint8_t *plain,
	      size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t nonce[COMM_NONCE_LEN];

	randombytes_buf(nonce, sizeof(nonce));
	return comm_seal_det(k, id, nonce, plain, len, out, cap, out_len);
}

int comm_open(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN], const uint8_t *box,
	      size_t len, uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t ad[LEN(BOX_LABEL) + COMM_ID_LEN];
	unsigned long long plen;

	*out_len = 0;
	if (len < COMM_SEAL_OVERHEAD)
		return -EBADMSG;
	if (cap < len - COMM_SEAL_OVERHEAD)
		return -ENOSPC;
	box_ad(ad, id);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &plen, NULL, box + COMM_NONCE_LEN,
						       len - COMM_NONCE_LEN, ad, sizeof(ad), box,
						       k->rec_key) != 0)
		return -EBADMSG;
	*out_len = (size_t)plen;
	return 0;
}
