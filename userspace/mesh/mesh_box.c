// SPDX-License-Identifier: MIT
/*
 * Reservation boxes (docs/MESH.md "Reservations"): a Reserve is sealed to
 * the provider's node key, a Confirm or Cancel to the Reserve's one-time
 * key, as crypto_box_seal to the X25519 form of the Ed25519 key (the seal
 * module's conversion). Relays and mailbox anchors carry bytes they cannot
 * open.
 */
#include <errno.h>
#include <sodium.h>

#include "weft/mesh.h"
#include "weft/seal.h"

int mesh_box_seal(const uint8_t to_pk[MESH_PK_LEN], const uint8_t *plain, size_t len, uint8_t *out,
		  size_t cap, size_t *out_len)
{
	uint8_t x[SEAL_X_PK_LEN];

	*out_len = 0;
	if (len + MESH_BOX_OVERHEAD > MESH_BODY_SEALED)
		return -E2BIG;
	if (cap < len + MESH_BOX_OVERHEAD)
		return -ENOSPC;
	if (seal_x25519_from_ed25519_pk(to_pk, x) != 0)
		return -EINVAL;
	if (crypto_box_seal(out, plain, len, x) != 0)
		return -EINVAL;
	*out_len = len + MESH_BOX_OVERHEAD;
	return 0;
}

int mesh_box_open(const uint8_t sk[COMM_SK_LEN], const uint8_t *box, size_t len, uint8_t *out,
		  size_t cap, size_t *out_len)
{
	uint8_t xs[SEAL_X_SK_LEN], xp[SEAL_X_PK_LEN];
	int err = 0;

	*out_len = 0;
	if (len < MESH_BOX_OVERHEAD || len - MESH_BOX_OVERHEAD > cap)
		return -EBADMSG;
	if (seal_x25519_from_ed25519_sk(sk, xs) != 0 || seal_x25519_from_ed25519_pk(sk + 32, xp) != 0)
		return -EBADMSG;
	if (crypto_box_seal_open(out, box, len, xp, xs) != 0)
		err = -EBADMSG;
	sodium_memzero(xs, sizeof(xs));
	if (!err)
		*out_len = len - MESH_BOX_OVERHEAD;
	return err;
}
