/* SPDX-License-Identifier: MIT */
/*
 * The mesh message layer (issue 32; the design is docs/MESH.md, the wire
 * format and test vectors docs/PROTOCOL.md "Mesh messages").
 *
 * The core, without I/O (the store writes LMDB through userspace/store):
 *
 *  - envelopes: a mesh envelope IS a community gossip envelope
 *    (include/weft/comm.h, kind MESH_GOSSIP_KIND): one Ed25519 signature
 *    over everything but the hop count, one envelope id, the gossip core's
 *    dedup, hop limit and per-origin rate; its payload is the mesh header
 *    (version, type, service id, reference, body, endorsements);
 *  - a strict parser that says why it refuses (enum mesh_drop), counted by
 *    the caller;
 *  - the filter language of queries (`field=value`, `field<value`,
 *    `field>=value`, `field^=prefix`, ... combined with `,`);
 *  - the per-service store (LMDB, caps per service and per provider, GC,
 *    Update/Revoke by the same provider with a newer timestamp only);
 *  - endorsements and verification levels, with the operator's trusted
 *    endorsers;
 *  - the relay's checks: per-type hop caps a node may lower, rate per
 *    provider key and type, the gossip core's dedup.
 *
 * Integers are little endian. Functions return 0 or a negative errno.
 */
#ifndef WEFT_MESH_H
#define WEFT_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "weft/comm.h"

struct store;

/* The community gossip kind of every mesh envelope (community records use 1). */
#define MESH_GOSSIP_KIND 2u
#define MESH_VERSION 1u

enum mesh_type {
	MESH_ANNOUNCE = 1,
	MESH_QUERY = 2,
	MESH_RESPONSE = 3,
	MESH_RESERVE = 4,
	MESH_CONFIRM = 5,
	MESH_CANCEL = 6,
	MESH_UPDATE = 7,
	MESH_REVOKE = 8,
};
#define MESH_TYPE_MAX 8u

enum mesh_level {
	MESH_LEVEL_NONE = 0,
	MESH_LEVEL_ENDORSED = 1,
	MESH_LEVEL_REGISTRY = 2,
	MESH_LEVEL_CREDENTIAL = 3,
};

#define MESH_ID_LEN COMM_ENV_ID_LEN
#define MESH_PK_LEN COMM_PK_LEN

/*
 * The mesh payload (the gossip envelope's payload):
 *   ver (1, =1) | type (1) | service id (u32) | ref (32) | body length (u16) |
 *   body | endorsements (u8, n) | n x endorsement (MESH_ENDORSE_LEN)
 * Caps on the body by type (MESH_BODY_*): every envelope, Response
 * included (it carries one announce envelope), fits the gossip payload.
 */
#define MESH_HDR_LEN (1u + 1u + 4u + MESH_ID_LEN + 2u)
#define MESH_ENDORSE_LEN (1u + 1u + 4u + MESH_PK_LEN + 8u + MESH_PK_LEN + COMM_SIG_LEN)
#define MESH_ENDORSE_MAX 2u  /* endorsements an announce may carry */
#define MESH_BODY_ANNOUNCE 512u /* Announce, Update: a flat bencode dictionary */
#define MESH_BODY_QUERY 256u    /* Query: d1:f<filter>1:ni<max>ee */
#define MESH_BODY_SEALED 900u   /* Reserve, Confirm, Cancel: a sealed box */
/* Response: one announce envelope. */
#define MESH_ANNOUNCE_ENV_MAX                                                                \
	(COMM_ENV_HDR_LEN + MESH_HDR_LEN + MESH_BODY_ANNOUNCE + 1u +                         \
	 MESH_ENDORSE_MAX * MESH_ENDORSE_LEN + COMM_SIG_LEN)
#define MESH_BODY_RESPONSE MESH_ANNOUNCE_ENV_MAX
_Static_assert(MESH_HDR_LEN + MESH_BODY_RESPONSE + 1u <= COMM_ENV_MAX_PAYLOAD,
	       "a Response carries one announce envelope");
#define MESH_ENV_MAX COMM_ENV_MAX_LEN
/* Application fields of an Announce body. */
#define MESH_FIELDS_MAX 32u
#define MESH_FIELD_NAME_MAX 32u  /* [a-z0-9_], 1..32 bytes */
#define MESH_FIELD_VALUE_MAX 256u /* a string value */
#define MESH_QUERY_RESULTS_MAX 64u

/* Why an envelope is dropped. Each has a counter at the caller. */
enum mesh_drop {
	MESH_DROP_MALFORMED = 0, /* any malformed byte, a body not of its type */
	MESH_DROP_TOO_BIG,       /* payload or body over its cap */
	MESH_DROP_BAD_SIG,       /* well formed, signature does not verify */
	MESH_DROP_FUTURE,        /* timestamp ahead of our clock past the skew */
	MESH_DROP_EXPIRED,       /* timestamp + ttl <= now */
	MESH_DROP_TTL,           /* ttl longer than the type allows */
	MESH_DROP_HOP_LIMIT,     /* hops past the envelope's max or our cap for its type */
	MESH_DROP_DUPLICATE,     /* id seen */
	MESH_DROP_RATE,          /* provider key over its rate for the type, or the type's */
	MESH_DROP_LEVEL,         /* below the endorsement level we require */
	MESH_DROP_N
};
/* "malformed", "too_big", ... (metric labels). */
const char *mesh_drop_name(enum mesh_drop d);
const char *mesh_type_name(unsigned int type); /* "announce", ...; NULL if unknown */
int mesh_type_parse(const char *name);         /* the reverse, or -EINVAL */

struct mesh_endorse {
	uint8_t level; /* enum mesh_level, 1..3 */
	uint32_t service;
	uint8_t provider[MESH_PK_LEN];
	uint64_t expires_ms;
	uint8_t endorser[MESH_PK_LEN];
};

struct mesh_env {
	struct comm_env g; /* the gossip envelope: hops, ts, ttl, origin (the provider), id */
	uint8_t type;      /* enum mesh_type */
	uint32_t service;
	uint8_t ref[MESH_ID_LEN]; /* zeros for Announce and Query */
	const uint8_t *body;      /* into the parsed buffer */
	uint16_t body_len;
	uint8_t n_endorse;
	struct mesh_endorse endorse[MESH_ENDORSE_MAX]; /* signatures checked */
};

/* What the application gives to build an envelope. */
struct mesh_msg {
	uint8_t type;
	uint32_t service;
	const uint8_t *ref; /* MESH_ID_LEN bytes, or NULL for zeros */
	const uint8_t *body;
	size_t body_len;
	const uint8_t *endorse; /* n_endorse x MESH_ENDORSE_LEN signed endorsements */
	uint8_t n_endorse;
	uint8_t max_hops;
	uint32_t ttl_s;
	uint64_t ts_ms;
};

/*
 * Build and sign an envelope (hops = 1) with sk (the provider's key, or a
 * one-time key for a Query). The body is checked as the parser would
 * (mesh_env_parse): -EINVAL for a body not of its type, a bad type, a
 * missing or unexpected ref, endorsements on a type that takes none;
 * -E2BIG over a cap; -ENOSPC when cap is short.
 */
int mesh_env_build(const uint8_t sk[COMM_SK_LEN], const struct mesh_msg *m, uint8_t *out,
		   size_t cap, size_t *out_len);
/*
 * Strict parse and verify (no clock, no state): 0, or -EBADMSG with *why
 * (MALFORMED, TOO_BIG, BAD_SIG). Endorsements are checked for their
 * signature and that they name this provider and service (an envelope with
 * any other is malformed); whether they are trusted is mesh_level's.
 */
int mesh_env_parse(const uint8_t *buf, size_t len, struct mesh_env *out, enum mesh_drop *why);

/* Per-type limits a node applies (docs/MESH.md "Limits"; zeros: defaults). */
struct mesh_limits {
	uint8_t max_hops[MESH_TYPE_MAX + 1];   /* our cap by type; lower only */
	uint32_t max_ttl_s[MESH_TYPE_MAX + 1]; /* longest ttl by type */
	uint32_t future_ms;                    /* clock skew allowed, default 60 s */
};
void mesh_limits_default(struct mesh_limits *l);
/*
 * The checks that need a clock: hops against min(the envelope's, ours for
 * its type), future timestamp, expired, ttl over the type's. 0 or
 * -ETIME / -ELOOP with *why.
 */
int mesh_env_check(const struct mesh_env *e, const struct mesh_limits *l, uint64_t now_ms,
		   enum mesh_drop *why);

/* ---- Announce bodies: a flat bencode dictionary ---- */

/* One field of an Announce body. */
struct mesh_field {
	const char *name; /* not NUL-terminated */
	size_t name_len;
	int is_int;
	int64_t i;
	const uint8_t *s;
	size_t slen;
};
/* Check an Announce body: a strict bencode dictionary (sorted, unique
 * keys) of at most MESH_FIELDS_MAX fields, names [a-z0-9_] 1..32 bytes,
 * values integers or strings of at most MESH_FIELD_VALUE_MAX bytes.
 * 0 or -EBADMSG. fields (may be NULL) receives them, *n their number. */
int mesh_body_fields(const uint8_t *body, size_t len, struct mesh_field *fields, size_t *n);

/* An Announce body from a JSON object (what `--data JSON` gives): keys as
 * field names, values integers or strings (UTF-8); keys sorted bytewise.
 * -EINVAL for anything else (not an object, a float, a boolean, null, a
 * nested value, a bad name, a string over MESH_FIELD_VALUE_MAX, more than
 * MESH_FIELDS_MAX keys, a duplicate key), -E2BIG over MESH_BODY_ANNOUNCE,
 * -ENOSPC when cap is short. */
int mesh_body_from_json(const char *json, size_t len, uint8_t *out, size_t cap, size_t *out_len);
/* The reverse, compact with sorted keys, malloc'd into *out (free()).
 * -EBADMSG for an invalid body, -EILSEQ for a string that is not UTF-8,
 * -ENOMEM. */
int mesh_body_to_json(const uint8_t *body, size_t len, char **out);

/* ---- Query bodies ---- */

/* d1:f<filter>1:ni<max results>ee: 0 or -EBADMSG (the filter must parse). */
int mesh_query_body(const char *filter, uint32_t max, uint8_t *out, size_t cap, size_t *out_len);
int mesh_query_parse(const uint8_t *body, size_t len, const char **filter, size_t *flen,
		     uint32_t *max);

/* ---- the filter language ---- */

/*
 * clause(,clause)*: every clause must hold. clause = field op value, op one
 * of = != < <= > >= ^= (prefix). With an integer field the value must be a
 * canonical integer (compared numerically, ^= never holds); with a string
 * field the value's bytes compare bytewise (^=: the field starts with
 * them). A missing field, or an integer field with a value that is not an
 * integer, does not match.
 * Limits (the cost of one match is at most MESH_FILTER_CLAUSES lookups in
 * a body of MESH_FIELDS_MAX fields): filter <= MESH_FILTER_MAX bytes, at
 * most MESH_FILTER_CLAUSES clauses, names as fields', values <=
 * MESH_FILTER_VALUE_MAX bytes without ','. An empty filter matches all.
 */
#define MESH_FILTER_MAX 200u
#define MESH_FILTER_CLAUSES 8u
#define MESH_FILTER_VALUE_MAX 128u

enum mesh_op { MESH_OP_EQ = 1, MESH_OP_NE, MESH_OP_LT, MESH_OP_LE, MESH_OP_GT, MESH_OP_GE, MESH_OP_PREFIX };

struct mesh_clause {
	char name[MESH_FIELD_NAME_MAX + 1];
	size_t name_len;
	uint8_t op; /* enum mesh_op */
	uint8_t val[MESH_FILTER_VALUE_MAX];
	size_t vlen;
	int is_int;
	int64_t i;
};

struct mesh_filter {
	unsigned int n;
	struct mesh_clause c[MESH_FILTER_CLAUSES];
};

/* 0 or -EINVAL (syntax), -E2BIG (a limit). */
int mesh_filter_parse(const char *s, size_t len, struct mesh_filter *out);
/* 1 when the Announce body matches, 0 when not (or not a valid body). */
int mesh_filter_match(const struct mesh_filter *f, const uint8_t *body, size_t len);

/* ---- endorsements ---- */

/*
 * ver (1, =1) | level (1, 1..3) | service id (u32) | provider (32) |
 * expires (u64 ms) | endorser (32) | sig (64),
 * sig = Ed25519(endorser, "weft-mesh-endorse-v1" || the bytes before it).
 */
int mesh_endorse_sign(const uint8_t endorser_sk[COMM_SK_LEN], uint8_t level, uint32_t service,
		      const uint8_t provider[MESH_PK_LEN], uint64_t expires_ms,
		      uint8_t out[MESH_ENDORSE_LEN]);
/* -EBADMSG (malformed, bad signature). */
int mesh_endorse_parse(const uint8_t buf[MESH_ENDORSE_LEN], struct mesh_endorse *out);

/* The operator's trusted endorsers: each with the highest level it may grant. */
#define MESH_TRUST_MAX 64u
struct mesh_trust {
	unsigned int n;
	struct {
		uint8_t pk[MESH_PK_LEN];
		uint8_t max_level;
	} e[MESH_TRUST_MAX];
};
/* Parse one config entry "HEX64:LEVEL" (LEVEL endorsed|registry|credential)
 * and add it: 0, -EINVAL, -ENOSPC. */
int mesh_trust_add(struct mesh_trust *t, const char *entry);
const char *mesh_level_name(unsigned int level);
int mesh_level_parse(const char *name); /* "none".. or -EINVAL */
/* The level of an envelope's provider for its service at now: the highest
 * of its unexpired endorsements by trusted endorsers, each capped at the
 * endorser's max level; MESH_LEVEL_NONE without any. */
unsigned int mesh_level(const struct mesh_trust *t, const struct mesh_env *e, uint64_t now_ms);

/* ---- the relay's state: dedup, rates, hop caps ---- */

struct mesh_relay_opts {
	struct mesh_limits limits;    /* zeros: defaults */
	struct comm_gossip_opts gossip; /* dedup_max, dedup_ms (zeros: the gossip core's); its rate is unused */
	uint32_t type_rate_per_s;     /* per provider key and type, default 2/s */
	uint32_t type_burst;          /* default 10 */
	uint32_t type_total_per_s;    /* all providers, per type, default 200/s */
	uint32_t keys_max;            /* (provider, type) buckets, default 4096 */
	uint8_t min_level;            /* announces below it are dropped (LEVEL), default none */
	const struct mesh_trust *trust; /* may be NULL: nobody trusted */
};

struct mesh_relay_stats {
	uint64_t accepted;
	uint64_t drop[MESH_DROP_N];
	uint64_t by_type[MESH_TYPE_MAX + 1]; /* accepted by type */
	uint64_t reforward; /* duplicates over a shorter path, forwarded again */
};

struct mesh_relay;
int mesh_relay_new(struct mesh_relay **out, const struct mesh_relay_opts *opts);
void mesh_relay_free(struct mesh_relay *r);
/*
 * One envelope received: parse, verify, check (mesh_env_check), the
 * endorsement level of announces, dedup and per-origin rate (the gossip
 * core), the rate per (provider, type) and per type. 0 and *out when
 * taken; else -EBADMSG, -ETIME, -ELOOP, -EALREADY, -EBUSY, -EACCES with
 * the reason counted (and in *why when not NULL). 1: a duplicate that
 * came over fewer hops than the first copy: forward it again (its hop
 * count reaches further), take nothing else of it.
 */
int mesh_relay_input(struct mesh_relay *r, const uint8_t *buf, size_t len, uint64_t now_ms,
		     struct mesh_env *out, enum mesh_drop *why);
/* Our own envelope, so that it comes back as a duplicate. */
void mesh_relay_note(struct mesh_relay *r, const uint8_t id[MESH_ID_LEN], uint64_t now_ms);
/* Copy with hops + 1 for forwarding: -ELOOP when past the envelope's max
 * or our cap for its type (never forwarded). */
int mesh_relay_forward(struct mesh_relay *r, const uint8_t *buf, size_t len, uint8_t *out,
		       size_t cap);
void mesh_relay_stats(const struct mesh_relay *r, struct mesh_relay_stats *out);

/* ---- the per-service store ---- */

struct mesh_store_opts {
	uint32_t per_service;  /* announces per service id, default 4096 */
	uint32_t per_provider; /* per provider key and service id, default 64 */
	uint32_t services_max; /* service ids held, default 64, at most MESH_SERVICES_CAP */
	uint8_t min_level;     /* announces below it are refused, default none */
	const struct mesh_trust *trust; /* may be NULL */
	const uint32_t *services; /* the service ids served; NULL: every one */
	unsigned int n_services;
};

#define MESH_SERVICES_CAP 1024u

struct mesh_store_stats {
	uint64_t added, updated, revoked, evicted, expired;
	uint64_t stale, not_owner, unknown, full, level, bad;
	uint64_t held; /* announces held now (tombstones excluded) */
	uint64_t index_bytes; /* the in-memory index's allocation */
};

struct mesh_store;
/* Open over the node's store (databases "mesh_announces"); the held
 * announces are loaded and the expired dropped. -EIO, -ENOMEM. */
int mesh_store_new(struct mesh_store **out, struct store *st, const struct mesh_store_opts *opts,
		   uint64_t now_ms);
void mesh_store_free(struct mesh_store *s);
/*
 * Take a parsed and checked Announce, Update or Revoke:
 *   0 added (Announce), 1 replaced (Update), 2 revoked;
 *   -EALREADY held already, or not newer than what is held (stale);
 *   -EPERM an Update or Revoke by another key than the announce's (not_owner);
 *   -ENOENT an Update or Revoke of an announce not held (unknown);
 *   -ENOSPC at a cap, with nothing that gives way (full; docs/MESH.md
 *           "Eviction");
 *   -EACCES below min_level; -EXDEV a service not served;
 *   -EINVAL another type; -EIO.
 * Each refusal is counted. buf/len are the whole envelope's bytes.
 */
int mesh_store_put(struct mesh_store *s, const struct mesh_env *e, const uint8_t *buf, size_t len,
		   uint64_t now_ms);
/* Would mesh_store_put take it (same checks, nothing written)? 0 or its error. */
int mesh_store_would_take(const struct mesh_store *s, const struct mesh_env *e, uint64_t now_ms);
/* Drop expired announces and tombstones: the number dropped, or -EIO. */
int mesh_store_gc(struct mesh_store *s, uint64_t now_ms);
/*
 * The held, unexpired announces of service that match f (NULL: all) at
 * level >= min_level, at most max: fn(arg, envelope bytes, len) for each
 * (the Announce or its latest Update, as signed by the provider).
 * Returns the number given, or -EIO. At most per_service are examined.
 */
typedef void (*mesh_store_fn)(void *arg, const uint8_t *env, size_t len);
int mesh_store_query(struct mesh_store *s, uint32_t service, const struct mesh_filter *f,
		     uint8_t min_level, uint32_t max, uint64_t now_ms, mesh_store_fn fn, void *arg);
/* The current envelope of announce id (any service): copies it to out.
 * -ENOENT, -ENOSPC, -EIO. */
int mesh_store_get(struct mesh_store *s, const uint8_t id[MESH_ID_LEN], uint8_t *out, size_t cap,
		   size_t *out_len);
void mesh_store_stats(const struct mesh_store *s, struct mesh_store_stats *out);

/* ---- the reverse path of queries ---- */

/*
 * A Query carries no consumer identity: each relay remembers from which
 * neighbour (an opaque token of the caller's: a peer index, a connection)
 * it heard a query id, and a Response to that id goes back to that
 * neighbour only, at most as many as the Query asked for. Bounded: at
 * most max entries (default 1024); a full table gives the entry that
 * expires first to the newcomer.
 */
#define MESH_PATH_LOCAL UINT64_MAX /* the token of a query we asked ourselves */
struct mesh_path;
int mesh_path_new(struct mesh_path **out, uint32_t max);
void mesh_path_free(struct mesh_path *p);
/* Remember query id from token until expires_ms, for up to answers
 * distinct announces (at most MESH_QUERY_RESULTS_MAX): 0, or -EALREADY
 * when the id is held. */
int mesh_path_add(struct mesh_path *p, const uint8_t id[MESH_ID_LEN], uint64_t token,
		  uint32_t answers, uint64_t expires_ms);
/* Where a Response to id carrying announce (its id) goes: 0 and *token;
 * -ENOENT (unknown or expired), -EALREADY (a Response with that announce
 * went back already: every store reached may hold it), -EDQUOT (as many
 * distinct announces as the Query asked went back). */
int mesh_path_take(struct mesh_path *p, const uint8_t id[MESH_ID_LEN],
		   const uint8_t announce[MESH_ID_LEN], uint64_t now_ms, uint64_t *token);

/* ---- reservation boxes ---- */

/* A Reserve, Confirm or Cancel body: crypto_box_seal to the X25519 form of
 * an Ed25519 key (the provider's, or the Reserve's one-time key). cap >=
 * len + MESH_BOX_OVERHEAD; -E2BIG past MESH_BODY_SEALED, -EINVAL for a key
 * that does not convert. */
#define MESH_BOX_OVERHEAD 48u
int mesh_box_seal(const uint8_t to_pk[MESH_PK_LEN], const uint8_t *plain, size_t len, uint8_t *out,
		  size_t cap, size_t *out_len);
/* Open with our Ed25519 secret key: -EBADMSG when it is not for us or was
 * changed. */
int mesh_box_open(const uint8_t sk[COMM_SK_LEN], const uint8_t *box, size_t len, uint8_t *out,
		  size_t cap, size_t *out_len);

/* ---- one node's mesh logic, without I/O ---- */

/*
 * What a node does with an envelope from a neighbour (docs/MESH.md
 * "A node"): the relay's checks; an Announce, Update or Revoke is stored
 * and forwarded only when the store takes it (never forwarded what it
 * would not store); a Query is remembered on the reverse path, answered
 * from the store with Responses back to the neighbour it came from, and
 * forwarded; a Response goes back along the reverse path (or is ours);
 * Reserve, Confirm and Cancel travel one link (routed by key by the
 * caller) and are handed to the application. Neighbours are the caller's
 * tokens (a peer index, a connection): the core never learns addresses.
 */
struct mesh_peer_io {
	/* Send env to the neighbour token. */
	void (*send)(void *arg, uint64_t token, const uint8_t *env, size_t len);
	/* An envelope for us: a Response to our Query, a Reserve, Confirm or
	 * Cancel. */
	void (*deliver)(void *arg, const struct mesh_env *e, const uint8_t *env, size_t len);
	void *arg;
};

struct mesh_peer_opts {
	struct mesh_relay_opts relay;
	struct mesh_store *store;  /* may be NULL: a relay that stores nothing */
	const uint8_t *sk;         /* the node key (COMM_SK_LEN): signs Responses */
	uint32_t fanout;           /* neighbours an envelope is forwarded to, default 4 */
	uint32_t paths_max;        /* reverse-path entries, default 1024 */
	struct mesh_peer_io io;
};

struct mesh_peer_stats {
	uint64_t stored, forwarded, answered, routed_back, unroutable, dup_answers, delivered,
		not_stored;
};

struct mesh_peer;
int mesh_peer_new(struct mesh_peer **out, const struct mesh_peer_opts *opts);
void mesh_peer_free(struct mesh_peer *p);
/*
 * One envelope from neighbour `from` (MESH_PATH_LOCAL: our own, sent
 * first through here: stored if ours to store, remembered, forwarded).
 * neigh: the tokens of the neighbours now reachable (from among them or
 * not). rnd: a random word for the fan-out pick. 0 when taken, else the
 * relay's error (counted).
 */
int mesh_peer_input(struct mesh_peer *p, const uint8_t *buf, size_t len, uint64_t from,
		    const uint64_t *neigh, size_t n_neigh, uint64_t rnd, uint64_t now_ms);
void mesh_peer_stats(const struct mesh_peer *p, struct mesh_peer_stats *out);
void mesh_peer_relay_stats(const struct mesh_peer *p, struct mesh_relay_stats *out);

/* ---- the node's reservations (the inbox) ---- */

/*
 * A Reserve this node received (as the provider) or sent (as the
 * consumer), with its answer. Kept in the node's LMDB (database
 * "mesh_inbox", key the Reserve's envelope id), at most max entries,
 * each until its expiry (docs/MESH.md "Reservations on a node").
 */
enum mesh_rsv_role { MESH_RSV_RECEIVED = 1, MESH_RSV_SENT = 2 };
enum mesh_rsv_state { MESH_RSV_PENDING = 0, MESH_RSV_CONFIRMED = 1, MESH_RSV_CANCELLED = 2 };
#define MESH_INBOX_DEF_MAX 1024u
struct mesh_rsv {
	uint8_t id[MESH_ID_LEN]; /* the Reserve's envelope id */
	uint8_t role, state;
	uint32_t service;
	uint8_t ref[MESH_ID_LEN];  /* the announce reserved */
	/* the other node's key: the consumer's (received), the provider's (sent) */
	uint8_t peer[MESH_PK_LEN];
	uint64_t ts_ms, expires_ms, answer_ms; /* answer_ms 0 while pending */
	/* The Reserve's one-time key: its secret (seed || pk) when sent by
	 * us, 32 zeros || its public key when received. */
	uint8_t otk[COMM_SK_LEN];
	uint16_t data_len, answer_len;
	uint8_t data[MESH_BODY_ANNOUNCE];   /* the reservation's data (an Announce-style body) */
	uint8_t answer[MESH_BODY_ANNOUNCE]; /* the Confirm's or Cancel's data */
};
#define MESH_RSV_HDR (3u + 4u + MESH_ID_LEN + MESH_PK_LEN + 24u + COMM_SK_LEN + 2u)
#define MESH_RSV_REC_MAX (MESH_RSV_HDR + 2u + 2u * MESH_BODY_ANNOUNCE)
/* The stored record (id not included): 0, -EINVAL, -ENOSPC. */
int mesh_rsv_encode(const struct mesh_rsv *r, uint8_t *out, size_t cap, size_t *len);
/* Strict: every length inside the record, bodies valid, a pending entry
 * without an answer time. 0 or -EBADMSG (r->id untouched). */
int mesh_rsv_decode(const uint8_t *v, size_t len, struct mesh_rsv *r);

struct mesh_inbox;
/* Open (max 0: MESH_INBOX_DEF_MAX); damaged and expired entries are
 * deleted. -EIO, -ENOMEM. */
int mesh_inbox_new(struct mesh_inbox **out, struct store *st, uint32_t max, uint64_t now_ms);
void mesh_inbox_free(struct mesh_inbox *ib);
/* Durable before it returns 0. replace 0: a new entry (-EALREADY held,
 * -EDQUOT at max); 1: a held one (-ENOENT). -EINVAL, store errors. */
int mesh_inbox_put(struct mesh_inbox *ib, const struct mesh_rsv *r, int replace);
int mesh_inbox_get(struct mesh_inbox *ib, const uint8_t id[MESH_ID_LEN], struct mesh_rsv *out);
int mesh_inbox_del(struct mesh_inbox *ib, const uint8_t id[MESH_ID_LEN]);
/* Each entry in id order (expired ones not yet collected included); fn
 * returns nonzero to stop. */
typedef int (*mesh_inbox_fn)(void *arg, const struct mesh_rsv *r);
int mesh_inbox_each(struct mesh_inbox *ib, mesh_inbox_fn fn, void *arg);
/* Delete the expired: the number deleted or -errno. */
int mesh_inbox_gc(struct mesh_inbox *ib, uint64_t now_ms);
uint32_t mesh_inbox_count(const struct mesh_inbox *ib);

#endif
