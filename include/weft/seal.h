/* SPDX-License-Identifier: MIT */
/*
 * Private content, the crypto core (issue 28; the spec is docs/PRIVATE.md,
 * the test vectors docs/PROTOCOL.md "Private content (seal)").
 *
 * No I/O and no allocation: value types, caller buffers, libsodium only.
 *
 *  - keys: Ed25519 node keys converted to X25519 (libsodium's conversion);
 *  - items: a random content key per share version, an item key per item
 *    index (crypto_kdf), each item cut into segments that encrypt
 *    (XChaCha20-Poly1305) to exactly one 256 KiB content chunk, so a host
 *    verifies (BLAKE3 CV over ciphertext) and serves chunks it cannot read;
 *  - wrapping: the content key wrapped for up to SEAL_MAX_RECIPIENTS X25519
 *    keys with one ephemeral key pair; entries carry a hint, not a name;
 *  - sealed metadata: the real item list (path, media type, size);
 *  - group records: a group seed wrapped for each member's node key,
 *    signed by the owner.
 *
 * Integers in every seal encoding are little endian.
 */
#ifndef WEFT_SEAL_H
#define WEFT_SEAL_H

#include <stddef.h>
#include <stdint.h>

#define SEAL_KEY_LEN 32u   /* content key, item key, group seed */
#define SEAL_X_PK_LEN 32u  /* X25519 public key */
#define SEAL_X_SK_LEN 32u  /* X25519 secret key */
#define SEAL_ED_PK_LEN 32u /* Ed25519 public key (a node key) */
#define SEAL_ED_SK_LEN 64u /* Ed25519 secret key, libsodium form: seed || pk */
#define SEAL_SIG_LEN 64u
#define SEAL_TAG_LEN 16u
/* A ciphertext segment is one content chunk (B3TREE_CHUNK_LEN, 256 KiB). */
#define SEAL_SEG_LEN (256u * 1024u)
#define SEAL_SEG_PLAIN (SEAL_SEG_LEN - SEAL_TAG_LEN)
/* Largest plaintext item: the one whose ciphertext is INT64_MAX bytes (the
 * manifest's size bound), 2^45 segments of which the last holds 2^18 - 17
 * bytes. */
#define SEAL_MAX_PLAIN (INT64_MAX - (INT64_MAX / SEAL_SEG_LEN + 1) * SEAL_TAG_LEN)

/* Wrapped key entry: hint (8) || AEAD(content key) (32 + 16). */
#define SEAL_HINT_LEN 8u
#define SEAL_ENTRY_LEN 56u
/* Recipients per wrap (the design's ~500 per object; past it, a group).
 * 500 entries are 28,000 bytes of manifest and ~500 X25519 operations. */
#define SEAL_MAX_RECIPIENTS 500u

/* Sealed metadata bounds (the manifest's own: MANIFEST_MAX_*). */
#define SEAL_META_MAX_ITEMS 4096u
#define SEAL_META_MAX_PATH 1024u
#define SEAL_META_MAX_TYPE 127u
/* The whole encoding: 1 MiB, so sealed metadata fits in a manifest. */
#define SEAL_META_MAX_LEN (1u << 20)
#define SEAL_META_NONCE_LEN 24u
/* Sealed = nonce || ciphertext of the encoding || tag. */
#define SEAL_META_OVERHEAD (SEAL_META_NONCE_LEN + SEAL_TAG_LEN)
/* crypto_kdf subkey id of the metadata key: no item may use it. */
#define SEAL_META_SUBKEY 0xFFFFFFFFu

/* Group record: version 1, fixed part 139 bytes + 56 per member + 64 sig. */
#define SEAL_GROUP_VERSION 1u
#define SEAL_GROUP_ID_LEN 32u
#define SEAL_GROUP_FIXED_LEN (1u + SEAL_GROUP_ID_LEN + 32u + 8u + 32u + 32u + 2u)
#define SEAL_GROUP_MAX_LEN                                                                         \
	(SEAL_GROUP_FIXED_LEN + SEAL_MAX_RECIPIENTS * SEAL_ENTRY_LEN + SEAL_SIG_LEN)

/* ---- keys ---- */

/*
 * X25519 public key of an Ed25519 public key. Returns 0, or -EINVAL for a
 * key that is not a valid Ed25519 point (libsodium refuses it).
 */
int seal_x25519_from_ed25519_pk(const uint8_t ed_pk[SEAL_ED_PK_LEN], uint8_t x_pk[SEAL_X_PK_LEN]);
/*
 * X25519 secret key of an Ed25519 secret key (seed || pk). Returns 0, or
 * -EINVAL when the conversion fails or the key's public half is not the
 * seed's (an inconsistent key would wrap for one key and open with another).
 */
int seal_x25519_from_ed25519_sk(const uint8_t ed_sk[SEAL_ED_SK_LEN], uint8_t x_sk[SEAL_X_SK_LEN]);
/* A new random content key (one per share version). */
void seal_content_key_new(uint8_t key[SEAL_KEY_LEN]);

/* ---- items ---- */

/*
 * Ciphertext size of an item of plain_size bytes: plain + 16 per segment,
 * at least one segment (the empty item is 16 bytes). -EINVAL when
 * plain_size > SEAL_MAX_PLAIN.
 */
int64_t seal_cipher_size(uint64_t plain_size);
/*
 * Plaintext size of a ciphertext blob of cipher_size bytes, or -EINVAL for
 * a size no plaintext encrypts to (under 16 bytes, a last segment of 16
 * bytes or less after full ones, above INT64_MAX).
 */
int64_t seal_plain_size(uint64_t cipher_size);
/* Number of segments (= content chunks) of an item of plain_size bytes. */
uint64_t seal_nsegs(uint64_t plain_size);
/*
 * Item key of item `index` of a share: crypto_kdf subkey `index`, context
 * "weftitem". Returns 0, or -EINVAL for index SEAL_META_SUBKEY (the
 * metadata key's).
 */
int seal_item_key(const uint8_t content_key[SEAL_KEY_LEN], uint32_t index,
		  uint8_t out[SEAL_KEY_LEN]);
/*
 * Segment j of an item of plain_total bytes: len plaintext bytes in, len + 16
 * ciphertext bytes out (out may equal in). is_final: 1 for the item's last
 * segment. Every segment but the last holds SEAL_SEG_PLAIN bytes; only the
 * single segment of the empty item is empty. The nonce binds j and is_final,
 * the AAD binds plain_total, so segments cannot be reordered, moved between
 * items of other sizes, or dropped from the end.
 * Returns 0, or -EINVAL (a length the scheme never produces).
 */
int seal_seg_encrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out);
/*
 * Opposite of seal_seg_encrypt: len ciphertext bytes (16..SEAL_SEG_LEN) in,
 * len - 16 out. Returns 0, -EINVAL (impossible length), -EBADMSG (the chunk
 * was changed, or belongs to another index, item, size or position).
 */
int seal_seg_decrypt(const uint8_t item_key[SEAL_KEY_LEN], uint64_t plain_total, uint64_t j,
		     int is_final, const uint8_t *in, size_t len, uint8_t *out);

/*
 * A whole item, one segment per call, in order (value type; no allocation).
 * seal_stream_init, then seal_stream_next_len() tells the input length the
 * next call takes (plaintext when encrypting, ciphertext when decrypting),
 * then seal_stream_encrypt or _decrypt once per segment, then
 * seal_stream_final. Decryption checks every segment: a changed one is
 * -EBADMSG at once, a missing tail is -EBADMSG at seal_stream_final.
 */
struct seal_stream {
	uint8_t key[SEAL_KEY_LEN];
	uint64_t total; /* plaintext bytes of the item */
	uint64_t nsegs;
	uint64_t next; /* next segment index */
};
/* Returns 0, or -EINVAL (plain_total > SEAL_MAX_PLAIN). */
int seal_stream_init(struct seal_stream *s, const uint8_t item_key[SEAL_KEY_LEN],
		     uint64_t plain_total);
/* Plaintext bytes of the next segment; 0 also when done (see seal_stream_done). */
size_t seal_stream_next_len(const struct seal_stream *s);
int seal_stream_done(const struct seal_stream *s);
/*
 * Encrypt the next segment: len must be seal_stream_next_len(s); writes
 * len + 16 bytes. Returns 0, -EINVAL (wrong length), -ENOSPC (all segments
 * done).
 */
int seal_stream_encrypt(struct seal_stream *s, const uint8_t *in, size_t len, uint8_t *out);
/*
 * Decrypt the next segment: len must be seal_stream_next_len(s) + 16;
 * writes len - 16 bytes. Returns 0, -EINVAL (wrong length: a truncated or
 * padded chunk), -ENOSPC (all segments done: bytes past the end), -EBADMSG.
 */
int seal_stream_decrypt(struct seal_stream *s, const uint8_t *in, size_t len, uint8_t *out);
/* 0 when every segment went through, else -EBADMSG (truncated item). Wipes
 * the key either way. */
int seal_stream_final(struct seal_stream *s);

/* ---- wrapping the content key ---- */

/*
 * Wrap key (content key or group seed) for n X25519 public keys with a new
 * ephemeral key pair: epk_out (32) is stored once, entries_out receives
 * n * SEAL_ENTRY_LEN bytes, sorted by hint (so the order says nothing of
 * the recipients' and the encoding is canonical). The ephemeral secret is
 * wiped before return.
 * Returns 0; -E2BIG (n > SEAL_MAX_RECIPIENTS, checked before any crypto);
 * -EINVAL (n == 0, a low-order recipient key, or a recipient listed twice).
 */
int seal_wrap(const uint8_t key[SEAL_KEY_LEN], const uint8_t (*recipients)[SEAL_X_PK_LEN], size_t n,
	      uint8_t epk_out[SEAL_X_PK_LEN], uint8_t *entries_out);
/* seal_wrap with the ephemeral secret given (test vectors, never the node). */
int seal_wrap_det(const uint8_t key[SEAL_KEY_LEN], const uint8_t (*recipients)[SEAL_X_PK_LEN],
		  size_t n, const uint8_t esk[SEAL_X_SK_LEN], uint8_t epk_out[SEAL_X_PK_LEN],
		  uint8_t *entries_out);
/*
 * Open the entry wrapped for (my_sk, my_pk) among n entries under epk.
 * Returns 0 with key_out set; -E2BIG (n > SEAL_MAX_RECIPIENTS, before any
 * crypto); -EINVAL (epk of low order); -ENOENT (no entry carries our hint:
 * not a recipient); -EBADMSG (an entry with our hint fails to open).
 */
int seal_unwrap(const uint8_t my_sk[SEAL_X_SK_LEN], const uint8_t my_pk[SEAL_X_PK_LEN],
		const uint8_t epk[SEAL_X_PK_LEN], const uint8_t *entries, size_t n,
		uint8_t key_out[SEAL_KEY_LEN]);

/* ---- sealed metadata ---- */

/* One item of a private share; item i describes item index i. The pointers
 * are the caller's (encrypt) or point into the caller's plaintext buffer
 * (decrypt): no NUL terminator. */
struct seal_meta_item {
	const uint8_t *path; /* 1..SEAL_META_MAX_PATH bytes, no NUL */
	size_t path_len;
	const uint8_t *type; /* 0..SEAL_META_MAX_TYPE bytes, no NUL */
	size_t type_len;
	uint64_t size; /* plaintext bytes, <= SEAL_MAX_PLAIN */
};

/*
 * Encode n items (format in docs/PRIVATE.md) into out (cap bytes); *out_len
 * = bytes written, or the bytes needed on -ENOSPC. Returns 0, -ENOSPC,
 * -EINVAL (a field out of bounds), -E2BIG (n or the encoding too large).
 */
int seal_meta_encode(const struct seal_meta_item *items, uint32_t n, uint8_t *out, size_t cap,
		     size_t *out_len);
/*
 * Decode an encoding of exactly len bytes into items (cap entries); item
 * pointers point into buf. Returns 0 with *n_out set; -EBADMSG (malformed:
 * lengths past the end, bounds, NUL bytes, trailing bytes, bad version);
 * -ENOSPC (more items than cap).
 */
int seal_meta_decode(const uint8_t *buf, size_t len, struct seal_meta_item *items, uint32_t cap,
		     uint32_t *n_out);
/*
 * Seal: nonce (24, random) || XChaCha20-Poly1305 of the encoding under the
 * metadata key (crypto_kdf subkey SEAL_META_SUBKEY, context "weftmeta").
 * out needs encoded length + SEAL_META_OVERHEAD; errors as
 * seal_meta_encode.
 */
int seal_meta_encrypt(const uint8_t content_key[SEAL_KEY_LEN], const struct seal_meta_item *items,
		      uint32_t n, uint8_t *out, size_t cap, size_t *out_len);
int seal_meta_encrypt_det(const uint8_t content_key[SEAL_KEY_LEN],
			  const struct seal_meta_item *items, uint32_t n,
			  const uint8_t nonce[SEAL_META_NONCE_LEN], uint8_t *out, size_t cap,
			  size_t *out_len);
/*
 * Open sealed metadata of len bytes: the plaintext goes to plain (cap at
 * least len - SEAL_META_OVERHEAD), then it is decoded into items as
 * seal_meta_decode (pointers into plain). Returns 0; -EBADMSG (too short,
 * too long, fails to open, malformed); -ENOSPC.
 */
int seal_meta_decrypt(const uint8_t content_key[SEAL_KEY_LEN], const uint8_t *in, size_t len,
		      uint8_t *plain, size_t plain_cap, struct seal_meta_item *items,
		      uint32_t items_cap, uint32_t *n_out);

/* ---- groups ---- */

/* Group keys from a group seed: its Ed25519 public key (the group's id)
 * and the X25519 pair posts wrap for. Returns 0 or -EINVAL. */
int seal_group_keys(const uint8_t seed[SEAL_KEY_LEN], uint8_t group_pk[SEAL_ED_PK_LEN],
		    uint8_t x_pk[SEAL_X_PK_LEN], uint8_t x_sk[SEAL_X_SK_LEN]);

/*
 * A decoded group record: entries points into the buffer it was decoded
 * from (nmembers * SEAL_ENTRY_LEN bytes). group_id is the group's name for
 * its whole life (chosen by the owner's layer, e.g. a hash of owner key and
 * group name); group_pk is this epoch's key and changes at each rotation.
 */
struct seal_group_record {
	uint8_t group_id[SEAL_GROUP_ID_LEN];
	uint8_t group_pk[SEAL_ED_PK_LEN];
	uint64_t epoch;
	uint8_t owner_pk[SEAL_ED_PK_LEN];
	uint8_t epk[SEAL_X_PK_LEN];
	uint32_t nmembers;
	const uint8_t *entries;
	uint8_t sig[SEAL_SIG_LEN];
};

/*
 * Build and sign a group record of group_id: the group seed of this epoch wrapped for
 * each member's Ed25519 node key (converted to X25519), signed by the
 * owner's node key over "weft-group-v1" || record without its signature.
 * Rotation (a member removed) is a new seed, epoch + 1 and this call for the
 * remaining members: one X25519 per member. out needs
 * SEAL_GROUP_FIXED_LEN + 56 n + 64 bytes; *out_len = bytes written.
 * Returns 0; -E2BIG (n > SEAL_MAX_RECIPIENTS, before any crypto); -EINVAL
 * (n == 0, an invalid or repeated member key, an inconsistent owner key);
 * -ENOSPC.
 */
int seal_group_seal(const uint8_t owner_sk[SEAL_ED_SK_LEN],
		    const uint8_t group_id[SEAL_GROUP_ID_LEN], const uint8_t seed[SEAL_KEY_LEN],
		    uint64_t epoch, const uint8_t (*members)[SEAL_ED_PK_LEN], size_t n,
		    uint8_t *out, size_t cap, size_t *out_len);
int seal_group_seal_det(const uint8_t owner_sk[SEAL_ED_SK_LEN],
			const uint8_t group_id[SEAL_GROUP_ID_LEN], const uint8_t seed[SEAL_KEY_LEN],
			uint64_t epoch, const uint8_t (*members)[SEAL_ED_PK_LEN], size_t n,
			const uint8_t esk[SEAL_X_SK_LEN], uint8_t *out, size_t cap,
			size_t *out_len);
/*
 * Parse the structure only (no signature check; fuzzing, tools). Returns 0;
 * -EBADMSG (malformed: length, version, trailing bytes, no members); -E2BIG
 * (more than SEAL_MAX_RECIPIENTS members).
 */
int seal_group_parse(struct seal_group_record *r, const uint8_t *buf, size_t len);
/*
 * Parse and verify: the signature must be the owner's the record names, and
 * that owner must be expected_owner when it is not NULL (the owner a
 * fetcher pinned for the group). Returns 0; parse's errors; -EPERM (signed
 * by another key, or bytes changed after signing, or not the pinned owner).
 */
int seal_group_decode(struct seal_group_record *r, const uint8_t *buf, size_t len,
		      const uint8_t expected_owner[SEAL_ED_PK_LEN]);
/*
 * Open a decoded record with our node key: the group seed of its epoch.
 * Returns 0; -ENOENT (not a member of this epoch); -EBADMSG (an entry for
 * us fails to open, or the seed is not the group's key); -EINVAL (our key
 * or the record's epk is unusable).
 */
int seal_group_open(const struct seal_group_record *r, const uint8_t my_ed_sk[SEAL_ED_SK_LEN],
		    uint8_t seed_out[SEAL_KEY_LEN]);

#endif
