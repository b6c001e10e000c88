/* SPDX-License-Identifier: MIT */
/*
 * Communities (issue 34; the design is docs/COMMUNITY.md, the wire formats
 * and test vectors docs/PROTOCOL.md "Communities").
 *
 * The core, without I/O and without allocation except the gossip state:
 *
 *  - keys: a community is an Ed25519 key pair and a 16-byte id; what its
 *    members share is the id and the public key. From them come two keys
 *    of unrelated derivations: the record key (XChaCha20-Poly1305, seals
 *    every record and gossip payload) and the DHT key (20 bytes, where
 *    members announce themselves), so the DHT key reveals nothing;
 *  - records: a member record (signed by the member; in a closed
 *    community it also carries the community key's admission of that
 *    member) and a share record (a BEP 46 head bound to the community,
 *    signed by the member);
 *  - sealing: records are sealed to the record key before they leave the
 *    node, so a node without the community key reads nothing;
 *  - gossip: a generic signed envelope with a hop count outside the
 *    signature and a hop limit inside it, deduplicated by envelope id,
 *    rate-limited per origin key, forwarded to a bounded fan-out. Issue 32
 *    (the mesh message layer) carries its envelopes on the same piece.
 *
 * Integers in every encoding are little endian. Functions return 0 or a
 * negative errno.
 */
#ifndef WEFT_COMM_H
#define WEFT_COMM_H

#include <stddef.h>
#include <stdint.h>

#define COMM_ID_LEN 16u
#define COMM_PK_LEN 32u
#define COMM_SK_LEN 64u /* libsodium form: seed || pk */
#define COMM_SIG_LEN 64u
#define COMM_KEY_LEN 32u
#define COMM_DHT_KEY_LEN 20u
/* Bit 0 of the id's first byte: the community is closed (members need an
 * admission signed by the community key). Part of the id, so every holder
 * of the id knows the rule without asking anyone. */
#define COMM_ID_CLOSED 0x01u
#define COMM_NAME_MAX 64u /* a share's name (BEP 44's salt limit) */

/* ---- keys ---- */

struct comm_keys {
	uint8_t rec_key[COMM_KEY_LEN];      /* seals records */
	uint8_t dht_key[COMM_DHT_KEY_LEN];  /* get_peers/announce_peer target */
};

/* A new community: random seed, key pair, id (closed sets COMM_ID_CLOSED).
 * sk receives seed || pk. */
void comm_create(int closed, uint8_t id[COMM_ID_LEN], uint8_t pk[COMM_PK_LEN],
		 uint8_t sk[COMM_SK_LEN]);
/* Derive the record and DHT keys from id and pk (docs/COMMUNITY.md). */
void comm_keys_derive(const uint8_t id[COMM_ID_LEN], const uint8_t pk[COMM_PK_LEN],
		      struct comm_keys *out);
/* 1 when the id names a closed community. */
int comm_id_closed(const uint8_t id[COMM_ID_LEN]);

/* Admission of member_pk to a closed community: Ed25519 by the community
 * key over "weft-comm-admit-v1" || id || member pk. -EINVAL when the
 * community key's halves disagree. */
int comm_admit(const uint8_t comm_sk[COMM_SK_LEN], const uint8_t id[COMM_ID_LEN],
	       const uint8_t member_pk[COMM_PK_LEN], uint8_t sig[COMM_SIG_LEN]);
/* 0 when sig admits member_pk, else -EACCES. */
int comm_admit_verify(const uint8_t comm_pk[COMM_PK_LEN], const uint8_t id[COMM_ID_LEN],
		      const uint8_t member_pk[COMM_PK_LEN], const uint8_t sig[COMM_SIG_LEN]);

/* ---- records ---- */

enum comm_rec_type {
	COMM_REC_MEMBER = 1,
	COMM_REC_SHARE = 2,
};

enum comm_rec_flags {
	COMM_REC_GONE = 1U << 0, /* member left / share withdrawn */
};

/*
 * Encoding: ver (1, =1) | type (1) | id (16) | member pk (32) | seq (u64) |
 * flags (1) | body | signature (64), body =
 *   member: admission (64; zeros in an open community)
 *   share:  head key (32) | name length (1) | name (1..64)
 * signature = Ed25519(member, "weft-comm-rec-v1" || every byte before it).
 */
#define COMM_REC_HDR_LEN (1u + 1u + COMM_ID_LEN + COMM_PK_LEN + 8u + 1u)
#define COMM_REC_MEMBER_LEN (COMM_REC_HDR_LEN + COMM_SIG_LEN + COMM_SIG_LEN)
#define COMM_REC_MAX_LEN (COMM_REC_HDR_LEN + COMM_PK_LEN + 1u + COMM_NAME_MAX + COMM_SIG_LEN)

struct comm_rec {
	uint8_t type;
	uint8_t flags;
	uint8_t id[COMM_ID_LEN];
	uint8_t member[COMM_PK_LEN];
	uint64_t seq;
	uint8_t admit[COMM_SIG_LEN]; /* member records */
	uint8_t head[COMM_PK_LEN];   /* share records */
	uint8_t name_len;
	char name[COMM_NAME_MAX + 1]; /* NUL-terminated */
};

/* Encode and sign r with member_sk (whose public half must be r->member:
 * -EINVAL otherwise). -ENOSPC when cap is short, -EINVAL on a bad name
 * (empty, over COMM_NAME_MAX, a NUL) or type. */
int comm_rec_sign(const struct comm_rec *r, const uint8_t member_sk[COMM_SK_LEN], uint8_t *out,
		  size_t cap, size_t *out_len);
/* Parse and verify one record of community (id, comm_pk): -EBADMSG on any
 * malformed byte or a bad signature (a record signed by another key),
 * -EXDEV for a record of another community, -EACCES for a member record
 * of a closed community without a valid admission. */
int comm_rec_parse(const uint8_t *buf, size_t len, const uint8_t id[COMM_ID_LEN],
		   const uint8_t comm_pk[COMM_PK_LEN], struct comm_rec *out);

/* ---- sealing ---- */

#define COMM_NONCE_LEN 24u
#define COMM_TAG_LEN 16u
#define COMM_SEAL_OVERHEAD (COMM_NONCE_LEN + COMM_TAG_LEN)

/* nonce (24, random) || XChaCha20-Poly1305(rec_key, plain; ad =
 * "weft-comm-box-v1" || id). comm_seal_det takes the nonce (test vectors). */
int comm_seal(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN], const uint8_t *plain,
	      size_t len, uint8_t *out, size_t cap, size_t *out_len);
int comm_seal_det(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN],
		  const uint8_t nonce[COMM_NONCE_LEN], const uint8_t *plain, size_t len,
		  uint8_t *out, size_t cap, size_t *out_len);
/* -EBADMSG when it does not open (another community, changed bytes). */
int comm_open(const struct comm_keys *k, const uint8_t id[COMM_ID_LEN], const uint8_t *box,
	      size_t len, uint8_t *out, size_t cap, size_t *out_len);

/* ---- gossip envelopes ---- */

/*
 * ver (1, =1) | hops (1) | max hops (1) | kind (u32) | timestamp (u64, ms
 * since the epoch) | ttl (u32, s) | origin key (32) | payload length (u16) |
 * payload | signature (64)
 * signature = Ed25519(origin, "weft-gossip-v1" || the bytes before it with
 * hops set to 0): a forwarder raises hops without breaking it.
 * Envelope id = BLAKE2b-256 of the same signed message: the same envelope
 * seen again (at any hop count) is a duplicate.
 */
#define COMM_ENV_HDR_LEN (1u + 1u + 1u + 4u + 8u + 4u + COMM_PK_LEN + 2u)
#define COMM_ENV_MAX_PAYLOAD 1024u
#define COMM_ENV_MAX_LEN (COMM_ENV_HDR_LEN + COMM_ENV_MAX_PAYLOAD + COMM_SIG_LEN)
#define COMM_ENV_ID_LEN 32u
#define COMM_HOPS_MAX 16u /* no envelope may ask for more */

struct comm_env {
	uint8_t hops, max_hops;
	uint32_t kind;
	uint64_t ts_ms;
	uint32_t ttl_s;
	uint8_t origin[COMM_PK_LEN];
	uint16_t payload_len;
	const uint8_t *payload; /* points into the parsed buffer */
	uint8_t id[COMM_ENV_ID_LEN];
};

/* Build a signed envelope with hops = 1 (the first link). -EINVAL on
 * max_hops 0 or past COMM_HOPS_MAX, a key whose halves disagree; -E2BIG
 * past COMM_ENV_MAX_PAYLOAD; -ENOSPC when cap is short. */
int comm_env_build(const uint8_t origin_sk[COMM_SK_LEN], uint32_t kind, uint8_t max_hops,
		   uint64_t ts_ms, uint32_t ttl_s, const uint8_t *payload, size_t payload_len,
		   uint8_t *out, size_t cap, size_t *out_len);
/* Strict parse and signature check: -EBADMSG (malformed, bad signature). */
int comm_env_parse(const uint8_t *buf, size_t len, struct comm_env *out);

struct comm_gossip_opts {
	uint32_t dedup_max;     /* envelope ids remembered (default 4096) */
	uint32_t dedup_ms;      /* how long (default 600,000) */
	uint32_t origins_max;   /* origins rate-limited at once (default 1024) */
	uint32_t rate_per_s;    /* envelopes per origin per second (default 10) */
	uint32_t burst;         /* and its burst (default 20) */
	uint8_t max_hops;       /* our own cap, may lower an envelope's (default 6) */
	uint32_t future_ms;     /* clock skew allowed (default 60,000) */
};

struct comm_gossip_stats {
	uint64_t accepted, duplicate, hop_limit, bad, rate_limited, expired, forwarded;
};

struct comm_gossip;

/* Opaque state of one gossip domain (a community). Defaults for zeros. */
int comm_gossip_new(struct comm_gossip **out, const struct comm_gossip_opts *opts);
void comm_gossip_free(struct comm_gossip *g);

/* One envelope received at now_ms: parse, verify, check hops, time, rate
 * and duplicates; on 0 it is new and *out describes it (payload points into
 * buf). Errors, each counted: -EBADMSG, -ELOOP (hops past its max or ours),
 * -ETIME (expired or from the future), -EBUSY (origin over its rate),
 * -EALREADY (seen). Our own envelopes go through comm_gossip_note first so
 * that they come back as duplicates. */
int comm_gossip_input(struct comm_gossip *g, const uint8_t *buf, size_t len, uint64_t now_ms,
		      struct comm_env *out);
/* Remember an envelope id as seen (our own, before sending). */
void comm_gossip_note(struct comm_gossip *g, const uint8_t id[COMM_ENV_ID_LEN], uint64_t now_ms);
/* Copy of buf (an accepted envelope) with hops + 1 for forwarding:
 * -ELOOP when that is past the envelope's max or ours (never forwarded). */
int comm_gossip_forward(struct comm_gossip *g, const uint8_t *buf, size_t len, uint8_t *out,
			size_t cap);
/* Choose up to fanout of n peers at random (rnd: a random word per call),
 * never index skip (the sender; pass n to skip none). Writes the chosen
 * indexes to idx and returns how many. */
size_t comm_gossip_pick(size_t n, size_t skip, size_t fanout, uint64_t rnd, size_t *idx);
void comm_gossip_stats(const struct comm_gossip *g, struct comm_gossip_stats *out);

/* ---- the index: one community's member and share records ---- */

/*
 * What members and seed hosts keep and serve, bounded (docs/COMMUNITY.md
 * "Index"). Records are kept as signed; a newer seq of the same member
 * (and share name) replaces an older one; GONE records stay as tombstones
 * so an older record cannot come back.
 *
 * A page on the wire: ver (1, =1) | type (1) | page (u32) | total (u32) |
 * n (u16, <= COMM_PAGE_RECS) | n x (length (u16) | box), each box a record
 * sealed to the record key (comm_seal).
 */
#define COMM_PAGE_RECS 16u
#define COMM_PAGE_HDR_LEN 12u
#define COMM_PAGE_MAX_LEN                                                                    \
	(COMM_PAGE_HDR_LEN + COMM_PAGE_RECS * (2u + COMM_SEAL_OVERHEAD + COMM_REC_MAX_LEN))

struct comm_index_opts {
	uint32_t members_max;       /* default 1024 */
	uint32_t shares_max;        /* all members' shares, default 4096 */
	uint32_t shares_per_member; /* default 64 */
};

struct comm_index_stats {
	uint64_t added, replaced, stale, full, not_member, bad, foreign, bad_page;
};

struct comm_index;

int comm_index_new(struct comm_index **out, const uint8_t id[COMM_ID_LEN],
		   const uint8_t pk[COMM_PK_LEN], const struct comm_index_opts *opts);
void comm_index_free(struct comm_index *x);
/* One signed record: 0 added, 1 replaced an older one; -EALREADY for a
 * record not newer than the one held (stale), -ENOSPC past a cap (full),
 * -EPERM for a share of a key that is not a present member, and
 * comm_rec_parse's errors. Each refusal is counted. */
int comm_index_add(struct comm_index *x, const uint8_t *rec, size_t len);
/* Counts of records held by type (tombstones included). */
size_t comm_index_count(const struct comm_index *x, enum comm_rec_type type);
/* The i-th record of type (insertion order): 0, or -ENOENT past the end. */
int comm_index_get(const struct comm_index *x, enum comm_rec_type type, size_t i,
		   struct comm_rec *out);
/* Whether member is present (held and not GONE). */
int comm_index_is_member(const struct comm_index *x, const uint8_t member[COMM_PK_LEN]);
/* Encode page `page` of type's records, sealed. -ENOENT past the last
 * page (page 0 of an empty index is an empty page), -ENOSPC short cap. */
int comm_index_page(const struct comm_index *x, enum comm_rec_type type, uint32_t page,
		    uint8_t *out, size_t cap, size_t *out_len);
/* Take in a page from another holder: *added gets the number of records
 * added or replaced, *total the holder's total of that type. -EBADMSG for a
 * malformed page, -E2BIG for one over COMM_PAGE_RECS (both counted as
 * bad_page, nothing taken); a record in it that does not open (foreign) or
 * is refused by comm_index_add is counted and skipped. */
int comm_index_ingest(struct comm_index *x, const uint8_t *buf, size_t len, size_t *added,
		      uint32_t *total);
/* The same, calling taken(arg, record, len) for each record added or
 * replaced (the signed record, plain): the caller persists them. */
typedef void (*comm_index_taken_fn)(void *arg, const uint8_t *rec, size_t len);
int comm_index_ingest_cb(struct comm_index *x, const uint8_t *buf, size_t len,
			 comm_index_taken_fn taken, void *arg, size_t *added, uint32_t *total);
void comm_index_stats(const struct comm_index *x, struct comm_index_stats *out);

#endif
