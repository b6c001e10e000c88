// SPDX-License-Identifier: MIT
/*
 * Group records (docs/PRIVATE.md section 6): a group's seed of one epoch
 * wrapped for each member's node key, signed by the owner's node key.
 *
 * Encoding (little endian):
 *   version (1) | group id (32) | group pk (32) | epoch (u64) | owner pk (32) | epk (32) |
 *   n (u16) | n x entry (56) | signature (64)
 * signature = Ed25519(owner, "weft-group-v1" || every byte before it).
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "seal_int.h"
#include "weft/seal.h"

static const char GROUP_LABEL[] = "weft-group-v1";
#define LABEL_LEN (sizeof(GROUP_LABEL) - 1)
#define OFF_ID 1u
#define OFF_GPK (OFF_ID + SEAL_GROUP_ID_LEN)
#define OFF_EPOCH (OFF_GPK + 32u)
#define OFF_OWNER (OFF_EPOCH + 8u)
#define OFF_EPK (OFF_OWNER + 32u)
#define OFF_N (OFF_EPK + 32u)
_Static_assert(OFF_N + 2u == SEAL_GROUP_FIXED_LEN, "group record layout");

int seal_group_keys(const uint8_t seed[SEAL_KEY_LEN], uint8_t group_pk[SEAL_ED_PK_LEN],
		    uint8_t x_pk[SEAL_X_PK_LEN], uint8_t x_sk[SEAL_X_SK_LEN])
{
	uint8_t pk[SEAL_ED_PK_LEN], sk[SEAL_ED_SK_LEN];
	int err;

	crypto_sign_seed_keypair(pk, sk, seed);
	err = seal_x25519_from_ed25519_sk(sk, x_sk);
	if (!err)
		err = seal_x25519_from_ed25519_pk(pk, x_pk);
	if (!err)
		memcpy(group_pk, pk, sizeof(pk));
	sodium_memzero(sk, sizeof(sk));
	return err;
}

/* "weft-group-v1" || body, the signed message (body <= max minus sig). */
static size_t signed_msg(uint8_t *msg, const uint8_t *body, size_t body_len)
{
	memcpy(msg, GROUP_LABEL, LABEL_LEN);
	memcpy(msg + LABEL_LEN, body, body_len);
	return LABEL_LEN + body_len;
}

int seal_group_seal_det(const uint8_t owner_sk[SEAL_ED_SK_LEN],
			const uint8_t group_id[SEAL_GROUP_ID_LEN], const uint8_t seed[SEAL_KEY_LEN],
			uint64_t epoch, const uint8_t (*members)[SEAL_ED_PK_LEN], size_t n,
			const uint8_t esk[SEAL_X_SK_LEN], uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t xs[SEAL_MAX_RECIPIENTS][SEAL_X_PK_LEN];
	uint8_t msg[LABEL_LEN + SEAL_GROUP_MAX_LEN];
	uint8_t gpk[SEAL_ED_PK_LEN], gx_pk[SEAL_X_PK_LEN], gx_sk[SEAL_X_SK_LEN];
	uint8_t opk[SEAL_ED_PK_LEN], osk[SEAL_ED_SK_LEN];
	size_t body, mlen;
	int err;

	*out_len = 0;
	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	if (n == 0)
		return -EINVAL;
	body = SEAL_GROUP_FIXED_LEN + n * SEAL_ENTRY_LEN;
	if (cap < body + SEAL_SIG_LEN)
		return -ENOSPC;
	/* An owner key whose halves disagree would sign for another key. */
	crypto_sign_seed_keypair(opk, osk, owner_sk);
	sodium_memzero(osk, sizeof(osk));
	if (sodium_memcmp(opk, owner_sk + 32, sizeof(opk)) != 0)
		return -EINVAL;
	err = seal_group_keys(seed, gpk, gx_pk, gx_sk);
	sodium_memzero(gx_sk, sizeof(gx_sk));
	if (err)
		return err;
	for (size_t i = 0; i < n; i++) {
		if (seal_x25519_from_ed25519_pk(members[i], xs[i]) != 0)
			return -EINVAL;
	}
	err = seal_wrap_det(seed, (const uint8_t(*)[SEAL_X_PK_LEN])xs, n, esk, out + OFF_EPK,
			    out + SEAL_GROUP_FIXED_LEN);
	if (err)
		return err;
	out[0] = SEAL_GROUP_VERSION;
	memcpy(out + OFF_ID, group_id, SEAL_GROUP_ID_LEN);
	memcpy(out + OFF_GPK, gpk, 32);
	seal_put_le(out + OFF_EPOCH, epoch, 8);
	memcpy(out + OFF_OWNER, opk, 32);
	/* epk at OFF_EPK, written by the wrap */
	seal_put_le(out + OFF_N, n, 2);
	mlen = signed_msg(msg, out, body);
	crypto_sign_detached(out + body, NULL, msg, mlen, owner_sk);
	*out_len = body + SEAL_SIG_LEN;
	return 0;
}

int seal_group_seal(const uint8_t owner_sk[SEAL_ED_SK_LEN],
		    const uint8_t group_id[SEAL_GROUP_ID_LEN], const uint8_t seed[SEAL_KEY_LEN],
		    uint64_t epoch, const uint8_t (*members)[SEAL_ED_PK_LEN], size_t n,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	uint8_t esk[SEAL_X_SK_LEN];
	int err;

	*out_len = 0;
	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	randombytes_buf(esk, sizeof(esk));
	err = seal_group_seal_det(owner_sk, group_id, seed, epoch, members, n, esk, out, cap,
				  out_len);
	sodium_memzero(esk, sizeof(esk));
	return err;
}

int seal_group_parse(struct seal_group_record *r, const uint8_t *buf, size_t len)
{
	uint64_t n;

	memset(r, 0, sizeof(*r));
	if (len < SEAL_GROUP_FIXED_LEN + SEAL_SIG_LEN || buf[0] != SEAL_GROUP_VERSION)
		return -EBADMSG;
	n = seal_get_le(buf + OFF_N, 2);
	if (n > SEAL_MAX_RECIPIENTS)
		return -E2BIG;
	if (n == 0 || len != SEAL_GROUP_FIXED_LEN + n * SEAL_ENTRY_LEN + SEAL_SIG_LEN)
		return -EBADMSG;
	memcpy(r->group_id, buf + OFF_ID, SEAL_GROUP_ID_LEN);
	memcpy(r->group_pk, buf + OFF_GPK, 32);
	r->epoch = seal_get_le(buf + OFF_EPOCH, 8);
	memcpy(r->owner_pk, buf + OFF_OWNER, 32);
	memcpy(r->epk, buf + OFF_EPK, 32);
	r->nmembers = (uint32_t)n;
	r->entries = buf + SEAL_GROUP_FIXED_LEN;
	memcpy(r->sig, buf + len - SEAL_SIG_LEN, SEAL_SIG_LEN);
	return 0;
}

int seal_group_decode(struct seal_group_record *r, const uint8_t *buf, size_t len,
		      const uint8_t expected_owner[SEAL_ED_PK_LEN])
{
	uint8_t msg[LABEL_LEN + SEAL_GROUP_MAX_LEN];
	size_t mlen;
	int err;

	err = seal_group_parse(r, buf, len);
	if (err)
		return err;
	mlen = signed_msg(msg, buf, len - SEAL_SIG_LEN);
	if (crypto_sign_verify_detached(r->sig, msg, mlen, r->owner_pk) != 0)
		err = -EPERM;
	else if (expected_owner && sodium_memcmp(expected_owner, r->owner_pk, SEAL_ED_PK_LEN) != 0)
		err = -EPERM;
	if (err)
		memset(r, 0, sizeof(*r));
	return err;
}

int seal_group_open(const struct seal_group_record *r, const uint8_t my_ed_sk[SEAL_ED_SK_LEN],
		    uint8_t seed_out[SEAL_KEY_LEN])
{
	uint8_t x_sk[SEAL_X_SK_LEN], x_pk[SEAL_X_PK_LEN];
	uint8_t gpk[SEAL_ED_PK_LEN], gx_pk[SEAL_X_PK_LEN], gx_sk[SEAL_X_SK_LEN];
	int err;

	err = seal_x25519_from_ed25519_sk(my_ed_sk, x_sk);
	if (!err)
		err = seal_x25519_from_ed25519_pk(my_ed_sk + 32, x_pk);
	if (!err)
		err = seal_unwrap(x_sk, x_pk, r->epk, r->entries, r->nmembers, seed_out);
	/* The seed must be the group's: a member cannot be handed another
	 * group's secret under this group's name. */
	if (!err && (seal_group_keys(seed_out, gpk, gx_pk, gx_sk) != 0 ||
		     sodium_memcmp(gpk, r->group_pk, sizeof(gpk)) != 0))
		err = -EBADMSG;
	if (err)
		sodium_memzero(seed_out, SEAL_KEY_LEN);
	sodium_memzero(x_sk, sizeof(x_sk));
	sodium_memzero(gx_sk, sizeof(gx_sk));
	return err;
}
