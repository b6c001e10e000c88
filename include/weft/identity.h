/* SPDX-License-Identifier: MIT */
/*
 * Node identity: an Ed25519 key pair (libsodium). The private key lives in
 * <state>/node.key: exactly 32 bytes (the seed), mode 0600, owned by the
 * running user. The node's mesh id is its public key.
 */
#ifndef WEFT_IDENTITY_H
#define WEFT_IDENTITY_H

#include <stdint.h>

#define IDENTITY_PK_LEN 32
#define IDENTITY_SK_LEN 64 /* libsodium form: seed || public key */
#define IDENTITY_SEED_LEN 32
#define IDENTITY_SIG_LEN 64

struct identity {
	uint8_t pk[IDENTITY_PK_LEN];
	uint8_t sk[IDENTITY_SK_LEN];
};

/*
 * Load <dir>/node.key, or create it (atomically: temp file, fsync, rename)
 * when absent and create is nonzero.
 * Errors: -ENOENT (absent and !create), -EPERM (file readable or writable by
 * group/others: refuse, like ssh), -EBADMSG (wrong size), -errno from I/O.
 * *created is set to 1 when a new key was generated.
 */
int identity_load(struct identity *id, const char *dir, int create, int *created);
/* Derive from a 32-byte seed (tests, tools). */
void identity_from_seed(struct identity *id, const uint8_t seed[IDENTITY_SEED_LEN]);
/* Wipe the secret key from memory. */
void identity_wipe(struct identity *id);

void identity_sign(const struct identity *id, const uint8_t *msg, uint64_t len,
		   uint8_t sig[IDENTITY_SIG_LEN]);
/* Returns 0 if the signature verifies, -EBADMSG otherwise. */
int identity_verify(const uint8_t pk[IDENTITY_PK_LEN], const uint8_t *msg, uint64_t len,
		    const uint8_t sig[IDENTITY_SIG_LEN]);

#endif
