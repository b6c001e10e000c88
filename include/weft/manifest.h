/* SPDX-License-Identifier: MIT */
/*
 * Signed share manifests.
 *
 * A share is a list of items (path, content id, size, media type) published
 * by an Ed25519 key under a name, with a sequence number (a higher one
 * supersedes), a visibility (public: announced in the DHT; private: only
 * reachable by share id) and a creation time, signed by the publisher.
 *
 * Share id = first 20 bytes of BLAKE3 derive_key(context "weft share id v1",
 * material pk || name): stable across versions of a share, bound to the key,
 * and 20 bytes so it is a DHT target as is.
 *
 * Encoding: canonical bencode (sorted keys, no extra keys, items sorted by
 * path bytes, unique paths); the signature covers the string
 * "weft-manifest-v1" followed by the encoding of the dictionary without its
 * "sig" key. The decoder accepts exactly the bytes the encoder produces for
 * the decoded value, so one manifest has one encoding. docs/CONTENT.md has
 * the layout and test vectors.
 */
#ifndef WEFT_MANIFEST_H
#define WEFT_MANIFEST_H

#include <stddef.h>
#include <stdint.h>

#include "weft/identity.h"

/* Bounds (decoder and builder alike). */
/* Items per manifest: 4096, enough for a folder tree; bigger sets are split
 * into several shares. */
#define MANIFEST_MAX_ITEMS 4096u
/* Path bytes (UTF-8): 1024, like common PATH_MAX halves; one component at
 * most 255 bytes (NAME_MAX of Linux file systems). */
#define MANIFEST_MAX_PATH 1024u
#define MANIFEST_MAX_COMPONENT 255u
/* Share name bytes (UTF-8): 64. */
#define MANIFEST_MAX_NAME 64u
/* Media type bytes ("type/subtype", RFC 6838 restricted names): 127. */
#define MANIFEST_MAX_TYPE 127u
/* Encoded manifest: 1 MiB, so a whole manifest fits one bounded QUIC
 * stream read. */
#define MANIFEST_MAX_SIZE (1u << 20)
#define MANIFEST_SHARE_ID_LEN 20u
#define MANIFEST_VERSION 1
/* Sealed shares: wrapped keys (docs/PRIVATE.md): 500 entries of 56 bytes
 * (seal's SEAL_MAX_RECIPIENTS, SEAL_ENTRY_LEN), checked before any crypto;
 * sealed metadata at most 1 MiB + its 40-byte overhead (the whole manifest
 * is still bounded by MANIFEST_MAX_SIZE). */
#define MANIFEST_MAX_KEYS 500u
#define MANIFEST_KEY_LEN 56u
#define MANIFEST_MAX_META ((1u << 20) + 40u)
#define MANIFEST_SEALED_TYPE "application/octet-stream"

enum manifest_visibility {
	MANIFEST_PUBLIC = 0,  /* announced in the DHT */
	MANIFEST_PRIVATE = 1, /* not announced; reachable only by share id */
};

struct manifest_item {
	char *path;      /* NUL-terminated, validated (see manifest_path_valid) */
	uint8_t id[32];  /* content id (BLAKE3) */
	uint64_t size;   /* bytes, at most INT64_MAX */
	char *type;      /* media type, NUL-terminated */
};

/*
 * Value type. manifest_init() before use, manifest_free() after (frees the
 * items). Fields may be set directly before signing; items only through
 * manifest_add_item().
 */
struct manifest {
	uint8_t pk[IDENTITY_PK_LEN];        /* publisher (set by sign) */
	uint8_t share_id[MANIFEST_SHARE_ID_LEN]; /* set by sign / decode */
	char name[MANIFEST_MAX_NAME + 1];   /* share name, NUL-terminated */
	uint64_t seq;                       /* sequence number, <= INT64_MAX */
	uint64_t created;                   /* seconds since the epoch, <= INT64_MAX */
	uint32_t visibility;                /* enum manifest_visibility */
	struct manifest_item *items;
	uint32_t nitems;
	uint32_t cap;
	uint8_t sig[IDENTITY_SIG_LEN];      /* set by sign / decode */
	int is_signed;
	/* Predecessor link (optional): the version this one replaces, as
	 * manifest_digest() of its encoding and its seq (< seq, so a chain
	 * of links can never loop). has_prev 0: the first version. */
	int has_prev;
	uint64_t prev_seq;
	uint8_t prev[32];
	/* Sealed (a private share encrypted to its recipients, docs/PRIVATE.md
	 * "Sealed shares"): the wrap's ephemeral X25519 key, nkeys wrapped
	 * content keys (SEAL_ENTRY_LEN bytes each, sorted by hint) and the
	 * sealed metadata (the real paths, types and sizes). Items are then the
	 * ciphertext blobs, path = the item's index in 4 digits ("0000"..),
	 * type application/octet-stream. sealed 0: none of these (set with
	 * manifest_set_sealed, freed by manifest_free). */
	/* Withdrawal (optional, "wd"): every version of this share with a seq
	 * below it is withdrawn by its publisher (a re-encryption's signed
	 * delete, docs/PRIVATE.md "Revocation"): hosts that honour it stop
	 * serving those versions' items and drop them unless pinned.
	 * 0: none; else 1..seq. */
	uint64_t withdraw;
	int sealed;
	uint8_t epk[32];
	uint8_t *keys;
	uint32_t nkeys;
	uint8_t *meta;
	uint32_t meta_len;
};

void manifest_init(struct manifest *m);
/* Free the items and reset to the manifest_init() state; NULL-safe. */
void manifest_free(struct manifest *m);

/* Seal fields (copied): 1..MANIFEST_MAX_KEYS entries of MANIFEST_KEY_LEN
 * bytes, meta 1..MANIFEST_MAX_META bytes; makes m private. Clears the
 * signature. 0, -EINVAL, -E2BIG (over a cap: checked first) or -ENOMEM. */
int manifest_set_sealed(struct manifest *m, const uint8_t epk[32], const uint8_t *keys,
			uint32_t nkeys, const uint8_t *meta, size_t meta_len);
/* The placeholder path of item index i of a sealed manifest ("0000".."4095")
 * into buf (at least 5 bytes). */
void manifest_sealed_path(uint32_t i, char buf[5]);

/* Set the share name (1..64 bytes of UTF-8, no control characters).
 * Returns 0 or -EINVAL. */
int manifest_set_name(struct manifest *m, const char *name, size_t len);

/*
 * Validate a relative path: 1..MANIFEST_MAX_PATH bytes, valid UTF-8
 * (shortest form, no surrogates), no NUL or other control character, no
 * backslash, '/'-separated components each 1..255 bytes, none "." or "..",
 * no leading or trailing '/'. Returns 1 if valid, 0 if not.
 */
int manifest_path_valid(const char *path, size_t len);
/* Media type "type/subtype" of RFC 6838 restricted-name characters,
 * 3..127 bytes. Returns 1 if valid, 0 if not. */
int manifest_type_valid(const char *type, size_t len);

/*
 * Append an item (path and type are copied). Clears the signature.
 * Errors: -EINVAL bad path, type or size; -EEXIST path already present;
 * -E2BIG MANIFEST_MAX_ITEMS reached; -ENOMEM.
 */
int manifest_add_item(struct manifest *m, const char *path, size_t path_len,
		      const uint8_t id[32], uint64_t size, const char *type);

/* share id of (pk, name). Returns 0 or -EINVAL (name too long). */
int manifest_share_id(const uint8_t pk[IDENTITY_PK_LEN], const char *name, size_t name_len,
		      uint8_t out[MANIFEST_SHARE_ID_LEN]);

/*
 * Sign with idn: sets pk and share_id, sorts the items by path, signs.
 * Errors: -EINVAL (no name, bad field), -E2BIG (encoding over
 * MANIFEST_MAX_SIZE), -ENOMEM.
 */
int manifest_sign(struct manifest *m, const struct identity *idn);

/*
 * Canonical encoding of a signed manifest into buf (cap bytes); *len gets
 * its length. Errors: -EINVAL (not signed), -ENOBUFS (cap too small),
 * -E2BIG (over MANIFEST_MAX_SIZE).
 */
int manifest_encode(const struct manifest *m, uint8_t *buf, size_t cap, size_t *len);

/*
 * Decode and verify buf[0..len) into m (initialised or freed by the caller;
 * filled on success, left in the init state on failure). Rejects anything
 * not byte-identical to the canonical encoding, any bound exceeded, a share
 * id that does not derive from pk and name, and a bad signature.
 * Errors: -EINVAL malformed or non-canonical; -ELOOP a predecessor link
 * at or after its own seq (a loop); -E2BIG over a bound;
 * -EBADMSG signature does not verify; -ENOMEM.
 */
int manifest_decode(struct manifest *m, const uint8_t *buf, size_t len);

/*
 * 1 if a supersedes b (same share id, higher sequence number), 0 if not,
 * -EINVAL if they are different shares.
 */
/* BLAKE3 of a manifest's full encoding (out: 32 bytes): what a later
 * version's predecessor link and a share head's "mh" name. 0, -EINVAL,
 * -ENOMEM or manifest_encode's errors. */
int manifest_digest(const struct manifest *m, uint8_t out[32]);
/* Link m (not yet signed) to its predecessor prev (signed, same share):
 * m->prev = manifest_digest(prev), m->prev_seq = prev->seq. 0 or -errno. */
int manifest_link_prev(struct manifest *m, const struct manifest *prev);

int manifest_supersedes(const struct manifest *a, const struct manifest *b);

/* 1 when the share and its blobs are announced in the DHT: public shares,
 * and sealed ones (their blobs are ciphertext any host may seed); 0 for an
 * unsealed private share (reachable by share id alone). */
static inline int manifest_announced(const struct manifest *m)
{
	return m->visibility == MANIFEST_PUBLIC || m->sealed;
}

#endif
