/* SPDX-License-Identifier: MIT */
/*
 * Service fabric core: names, error classes, signed service descriptors and
 * the directory cache. Everything here is I/O-free: callers pass the time
 * and the bytes; nothing reads a clock or a socket. The router lives in
 * weft/svc_router.h, the call wire format in weft/svc_msg.h and the local
 * backend forwarder in weft/svc_backend.h. docs/SERVICE.md documents the
 * encodings with test vectors.
 */
#ifndef WEFT_SVC_H
#define WEFT_SVC_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "weft/identity.h"
#include "weft/svc_http.h"

/* ---- error classes (wire values: one byte, never renumbered) ---- */
enum svc_err {
	SVC_OK = 0,
	SVC_ERR_BAD_REQUEST = 1,   /* malformed message, unknown method, bad input */
	SVC_ERR_NOT_FOUND = 2,	   /* no such service on this node */
	SVC_ERR_RATE_LIMITED = 3,  /* peer or service over its calls-per-minute */
	SVC_ERR_TOO_LARGE = 4,	   /* payload over the size cap */
	SVC_ERR_OVERLOADED = 5,	   /* concurrency cap (peer, service or global) */
	SVC_ERR_BACKEND_ERROR = 6, /* handler or local backend failed */
	SVC_ERR_TIMEOUT = 7,	   /* handler or backend did not answer in time */
	SVC_ERR_BANNED = 8,	   /* the peer is banned */
	SVC_ERR_BACKEND_PROTOCOL = 9, /* the backend's answer broke the HTTP/1.1 contract */
	SVC_ERR__COUNT
};

/* "ok", "bad_request", ... ; "unknown" for values outside the enum. */
const char *svc_err_name(unsigned int e);

/* ---- names ---- */
/*
 * Service names: 1..64 bytes of [a-z0-9._-], first byte [a-z0-9]. Lower case
 * only so that one name has one spelling (the DHT key is a hash of it).
 * 64 leaves room for "org.team.thing-v2" style names and keeps a request
 * header small.
 */
#define SVC_NAME_MAX 64
/* Methods: 0..64 bytes of [A-Za-z0-9._/-] (empty = the service's default). */
#define SVC_METHOD_MAX 64

/* 1 if name[0..len) is a valid service name, else 0. */
int svc_name_valid(const uint8_t *name, size_t len);
/* 1 if m[0..len) is a valid method name, else 0. */
int svc_method_valid(const uint8_t *m, size_t len);

/* ---- versions (docs/SERVICE.md, "Versions") ---- */
/*
 * A descriptor's version (its "v" integer) read as MAJOR.MINOR.PATCH:
 * v = MAJOR * 1000000 + MINOR * 1000 + PATCH, MINOR and PATCH 0..999,
 * MAJOR 0..4293, so the signed integer orders like the version and the
 * descriptor encoding is unchanged. A publication without a version is
 * 1.0.0.
 */
#define SVC_VERSION_DEFAULT 1000000u
#define SVC_VERSION_MAJOR_MAX 4293u
/* "1", "1.2" or "1.2.3" (missing parts are 0): 0 or -EINVAL. */
int svc_version_parse(const char *s, size_t len, uint32_t *out);
/* v as "MAJOR.MINOR.PATCH" into buf (at least 16 bytes). */
void svc_version_fmt(uint32_t v, char *buf, size_t cap);
/*
 * A version range: comma-separated constraints that must all hold, each an
 * operator (>=, >, <=, <, =, ==, !=; none means =) then a version as above,
 * spaces allowed around either, e.g. ">=1.2,<2". At most
 * SVC_VRANGE_MAX constraints; "" or "*" matches every version.
 */
#define SVC_VRANGE_MAX 8
struct svc_vrange {
	uint32_t n;
	struct {
		uint8_t op; /* internal */
		uint32_t v;
	} c[SVC_VRANGE_MAX];
};
/* 0 or -EINVAL (syntax, a bad version, too many constraints). */
int svc_vrange_parse(const char *s, struct svc_vrange *out);
/* 1 if v satisfies every constraint of r, else 0. */
int svc_vrange_match(const struct svc_vrange *r, uint32_t v);

/* ---- service id ---- */
/*
 * Service id: the first 20 bytes of
 *   BLAKE3("weft:svc:id:v1" || owner public key (32) || name).
 * 20 bytes so it can be used as a Mainline DHT key; BLAKE3 because weft
 * already carries it, and the domain prefix keeps it apart from every other
 * hash in weft. The same name offered by two owners gives two ids.
 */
#define SVC_ID_LEN 20
void svc_id(uint8_t out[SVC_ID_LEN], const uint8_t owner[IDENTITY_PK_LEN], const char *name,
	    size_t name_len);
/*
 * DHT target under which providers announce a name:
 *   SHA1("weft:svc:" || name) (20 bytes), as in docs/ARCHITECTURE.md.
 * Returns 0 or -EIO (libcrypto failure).
 */
int svc_name_target(uint8_t out[20], const char *name, size_t name_len);
/*
 * DHT target under which a private service (shown only to listed keys)
 * is announced for one listed key:
 *   SHA1("weft:svc:p:" || key (32) || name).
 * Only who knows both the name and the key finds it (docs/SERVICE.md,
 * "Visibility"). Returns 0.
 */
int svc_private_target(uint8_t out[20], const char *name, size_t name_len,
		       const uint8_t key[IDENTITY_PK_LEN]);

/*
 * Provider key claim (docs/SERVICE.md, "Finding a provider behind a
 * filtering NAT"): what a provider attaches to its announce (the DHT's
 * "wk", DHT_WK_LEN bytes) so that a caller who cannot reach the announced
 * address learns the provider's key and dials it by key (node record,
 * relay circuit):
 *   key (32) || t (8, big-endian seconds since the epoch) || sig (64)
 *   sig = Ed25519(key, "weft-svc-claim-v1\n" || target (20) || t (8))
 * target is svc_name_target(name): the claim names the service, not an
 * address, so a replay from elsewhere only points at the true provider.
 */
#define SVC_CLAIM_LEN 104
#define SVC_CLAIM_MAX_AGE_S 3600 /* providers re-announce every 15 min */
#define SVC_CLAIM_SKEW_S 300	 /* as SVC_DESC_DEFAULT_SKEW */
void svc_claim_sign(uint8_t out[SVC_CLAIM_LEN], const struct identity *id,
		    const uint8_t target[20], uint64_t t);
/*
 * Check claim (exactly SVC_CLAIM_LEN bytes) for target at now (seconds):
 * the signature, then now - SVC_CLAIM_MAX_AGE_S <= t <= now +
 * SVC_CLAIM_SKEW_S. Returns 0 and the key in key_out, -EBADMSG (bad
 * signature) or -EKEYEXPIRED (t out of the window).
 */
int svc_claim_verify(const uint8_t claim[SVC_CLAIM_LEN], const uint8_t target[20], uint64_t now,
		     uint8_t key_out[IDENTITY_PK_LEN]);

/* ---- caller assertions ---- */
/*
 * A caller's signed statement about one call (docs/SERVICE.md, "Backend
 * contract"): the provider hands it to an HTTP backend as
 * Weft-Caller-Assertion, and the backend checks it against Weft-Caller
 * without trusting weftd. It travels in the REQUEST (weft/svc_msg.h) as
 *   request id (16) || time (8, big-endian ms since the epoch) || sig (64)
 *   sig = Ed25519(caller key, SVC_ASSERT_DOMAIN || u8 len(service) ||
 *         service || u8 len(method) || method || request id ||
 *         SHA-256(body) || time)
 * SHA-256 rather than BLAKE3 so that a backend in any language checks it
 * with its standard library.
 */
#define SVC_ASSERT_DOMAIN "weft-call-assert-v1\n"
#define SVC_REQ_ID_LEN 16
#define SVC_ASSERT_LEN (SVC_REQ_ID_LEN + 8 + IDENTITY_SIG_LEN)
/* Signed message length: domain (20) + 1 + service + 1 + method + 16 + 32 + 8. */
#define SVC_ASSERT_MSG_MAX (20 + 1 + SVC_NAME_MAX + 1 + SVC_METHOD_MAX + SVC_REQ_ID_LEN + 32 + 8)
/* A backend accepts an assertion whose time is within 300 s of its clock
 * (the documented default, as SVC_DESC_DEFAULT_SKEW). */
#define SVC_ASSERT_SKEW_MS 300000u

/* The signed byte string into out (SVC_ASSERT_MSG_MAX bytes); returns its
 * length, or -EINVAL (bad service or method). */
int svc_assert_message(uint8_t out[SVC_ASSERT_MSG_MAX], const char *service, size_t service_len,
		       const char *method, size_t method_len, const uint8_t req_id[SVC_REQ_ID_LEN],
		       const uint8_t *body, size_t body_len, uint64_t time_ms);
/* Sign: out receives req_id || time || signature. 0 or -EINVAL. */
int svc_assert_sign(uint8_t out[SVC_ASSERT_LEN], const struct identity *id, const char *service,
		    size_t service_len, const char *method, size_t method_len,
		    const uint8_t req_id[SVC_REQ_ID_LEN], const uint8_t *body, size_t body_len,
		    uint64_t time_ms);
/* Check a by key for this call at now_ms (wall clock): 0, -EBADMSG (bad
 * signature, service or method) or -EKEYEXPIRED (time further than
 * skew_ms from now_ms). */
int svc_assert_verify(const uint8_t a[SVC_ASSERT_LEN], const uint8_t key[IDENTITY_PK_LEN],
		      const char *service, size_t service_len, const char *method,
		      size_t method_len, const uint8_t *body, size_t body_len, uint64_t now_ms,
		      uint64_t skew_ms);

/* ---- descriptors ---- */
/* Caps (the decoder rejects anything beyond them with -EMSGSIZE). */
#define SVC_DESC_MAX_LEN 2048	 /* whole encoded descriptor; fits the caps below */
#define SVC_DESC_MAX_ENDPOINTS 8 /* a node rarely has more addresses worth trying */
#define SVC_DESC_ENDPOINT_MAX 47 /* "[ffff:...:ffff]:65535" */
#define SVC_DESC_MAX_META 10	 /* metadata entries */
#define SVC_DESC_META_BYTES 1024 /* sum of key and value lengths of all entries */
#define SVC_DESC_META_KEY_MAX 32 /* key: 1..32 bytes of [a-z0-9._-] */
/* Longest validity window (expires - created): 7 days. A descriptor is
 * re-signed and re-published well before that; longer windows would let a
 * stolen descriptor outlive a key rotation by too much. */
#define SVC_DESC_MAX_LIFETIME (7u * 24 * 3600)
/* Default clock skew accepted for "created" in the future: 300 s, the value
 * Kerberos uses; NTP-less hosts are usually within a minute or two. */
#define SVC_DESC_DEFAULT_SKEW 300
/* Signature domain: the Ed25519 signature covers this string followed by
 * the encoded body ("d" value); see docs/SERVICE.md. */
#define SVC_DESC_SIG_DOMAIN "weft-svc-desc-v1\n"

struct svc_meta {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *val;
	size_t val_len;
};

/*
 * A descriptor in memory. Pointers borrow: from the caller for
 * svc_desc_sign(), from the decoded buffer for svc_desc_decode() /
 * svc_desc_verify() (the buffer must outlive the struct).
 * Endpoints are canonical "a.b.c.d:port" / "[v6]:port" strings.
 */
struct svc_desc {
	const char *name;
	size_t name_len;
	uint32_t version;
	uint8_t owner[IDENTITY_PK_LEN];
	uint32_t n_endpoints;
	const char *endpoints[SVC_DESC_MAX_ENDPOINTS];
	size_t endpoint_lens[SVC_DESC_MAX_ENDPOINTS];
	uint32_t n_meta;
	struct svc_meta meta[SVC_DESC_MAX_META]; /* sorted by key, unique */
	uint64_t created;			 /* wall clock, seconds since the epoch */
	uint64_t expires;			 /* wall clock, > created */
	uint8_t sig[IDENTITY_SIG_LEN];
};

/*
 * Encode d (owner taken from id, meta sorted by the caller or not: the
 * encoder sorts a copy) and sign it with id. Writes the canonical encoding
 * into out[0..cap) and its length into *out_len; d->owner and d->sig are
 * filled in. Errors: -EINVAL (bad name, endpoint, meta key, duplicate key,
 * expires <= created, lifetime over the cap), -EMSGSIZE (a cap exceeded),
 * -ENOBUFS (cap too small; SVC_DESC_MAX_LEN is always enough).
 */
int svc_desc_sign(struct svc_desc *d, const struct identity *id, uint8_t *out, size_t cap,
		  size_t *out_len);

/*
 * Strict decode without any signature or time check (used by the verifier
 * and the fuzz target). d borrows from buf. Errors: -EMSGSIZE (len over
 * SVC_DESC_MAX_LEN or a field over its cap), -EINVAL (not the canonical
 * encoding: syntax, unsorted or duplicate keys, unknown or missing keys,
 * wrong types, non-canonical endpoint or integer, bad name).
 */
int svc_desc_decode(struct svc_desc *d, const uint8_t *buf, size_t len);

/* Ban check: return nonzero if owner is banned. */
typedef int (*svc_ban_check_fn)(void *ctx, const uint8_t owner[IDENTITY_PK_LEN]);

/* Distinct verification errors (negative errno values). */
#define SVC_DESC_E_MALFORMED (-EINVAL)	  /* not a canonical descriptor */
#define SVC_DESC_E_OVERSIZED (-EMSGSIZE)  /* length or a field over a cap */
#define SVC_DESC_E_SIGNATURE (-EBADMSG)	  /* signature does not verify */
#define SVC_DESC_E_OWNER (-EPERM)	  /* owner != TLS peer key */
#define SVC_DESC_E_EXPIRED (-EKEYEXPIRED) /* now >= expires */
#define SVC_DESC_E_FUTURE (-ERANGE)	  /* created > now + skew */
#define SVC_DESC_E_BANNED (-EACCES)	  /* ban callback said so */

/*
 * Full check of a descriptor fetched from a peer, in this order: size and
 * encoding, signature, owner == tls_peer_pk, time window, ban.
 *   buf/len      the descriptor bytes as received
 *   tls_peer_pk  the key the peer proved in the QUIC handshake (NULL: skip
 *                the owner check, for descriptors from a trusted store)
 *   now          wall clock, seconds since the epoch
 *   max_skew     seconds "created" may lie in the future (SVC_DESC_DEFAULT_SKEW)
 *   ban, ban_ctx optional ban check on the owner key
 *   out          optional: receives the decoded descriptor (borrows buf)
 * Returns 0 or one of the SVC_DESC_E_* values above.
 */
int svc_desc_verify(const uint8_t *buf, size_t len, const uint8_t *tls_peer_pk, uint64_t now,
		    uint64_t max_skew, svc_ban_check_fn ban, void *ban_ctx, struct svc_desc *out);

/* ---- directory cache ---- */
struct svc_dir;

/* Defaults, each overridable in svc_dir_opts (0 = default). */
/* 1024 names: a node talks to a handful of services; 1024 bounds memory
 * (1024 names * 20 results * 672 B + name entries = about 14 MB worst case)
 * under a discovery flood. */
#define SVC_DIR_DEFAULT_NAMES 1024
/* 20 results per name, as the issue asks: enough to fail over, few enough
 * to fetch every descriptor. */
#define SVC_DIR_DEFAULT_RESULTS 20
/* 60 s TTL: short enough that a withdrawn provider stops being used soon,
 * long enough that a busy caller does one DHT lookup per minute. */
#define SVC_DIR_DEFAULT_TTL_MS 60000u

struct svc_dir_opts {
	uint32_t max_names;   /* default SVC_DIR_DEFAULT_NAMES */
	uint32_t max_results; /* per name, default SVC_DIR_DEFAULT_RESULTS (<= 64) */
	uint64_t ttl_ms;      /* default SVC_DIR_DEFAULT_TTL_MS */
	uint64_t seed;	      /* hash key; 0 = random (tests fix it) */
};

/* One cached result: a copy, independent of the caller's buffers. */
struct svc_dir_result {
	uint8_t id[SVC_ID_LEN];
	uint8_t owner[IDENTITY_PK_LEN];
	char name[SVC_NAME_MAX + 1];
	uint32_t version;
	uint32_t n_endpoints;
	char endpoints[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1];
	uint64_t desc_expires; /* wall clock seconds, from the descriptor */
	int32_t reputation;    /* higher is better */
	uint32_t rtt_us;       /* lower is better */
	uint64_t expires_ms;   /* cache expiry, caller's monotonic clock */
	/* The provider's HTTP publish options, from its signed metadata
	 * (SVC_HTTP_META_*): enum svc_http_flags, and the one web origin
	 * allowed to read the service through the gateway ("" = none). */
	uint32_t http_flags;
	char http_cors[SVC_HTTP_CORS_MAX + 1];
	/* This node's lasting record of the provider (weft/svc_rep.h), filled
	 * by the fabric when it orders results (0 from the cache alone):
	 * decayed call counts, latency EWMA of its answers (0: none yet),
	 * and 1 while it is marked dead (unreachable). */
	uint32_t calls_ok, calls_failed;
	uint32_t lat_us;
	uint32_t dead;
};

/* 0, -EINVAL (max_results 0 or > 64) or -ENOMEM. */
int svc_dir_new(struct svc_dir **out, const struct svc_dir_opts *opts);
/* NULL-safe. */
void svc_dir_free(struct svc_dir *dir);

/*
 * Feed one VERIFIED descriptor (svc_desc_verify() returned 0) with the
 * provider's reputation and measured RTT. now_ms: caller's monotonic clock.
 * A result with the same service id replaces the old one. When the name
 * already holds max_results, the worst result (lowest reputation, then
 * highest RTT) is dropped if the new one is better, else the new one is not
 * kept (returns -ENOSPC). A new name past max_names evicts the least
 * recently used name. Returns 0, -EINVAL (bad descriptor), -ENOSPC or -ENOMEM.
 */
int svc_dir_add(struct svc_dir *dir, const struct svc_desc *d, int32_t reputation, uint32_t rtt_us,
		uint64_t now_ms);

/*
 * Results for a name, best first (reputation descending, then RTT
 * ascending, then id), at most max results (and at most max_results).
 * Expired results are dropped first. Returns the count copied into out
 * (0 = nothing cached: do a DHT lookup), or -EINVAL (bad name).
 */
int svc_dir_find(struct svc_dir *dir, const char *name, size_t name_len, uint64_t now_ms,
		 struct svc_dir_result *out, size_t max);

/* Find by service id. 0 (copied into *out), -ENOENT (absent or expired). */
int svc_dir_find_id(struct svc_dir *dir, const uint8_t id[SVC_ID_LEN], uint64_t now_ms,
		    struct svc_dir_result *out);

/* Drop every expired entry; returns how many results were dropped. */
int svc_dir_expire(struct svc_dir *dir, uint64_t now_ms);
/* Names / results currently held. */
size_t svc_dir_names(const struct svc_dir *dir);
size_t svc_dir_results(const struct svc_dir *dir);
/* Earliest cache expiry (caller's clock), UINT64_MAX if empty: the next
 * time svc_dir_expire() has work. */
uint64_t svc_dir_next_expiry(const struct svc_dir *dir);

#endif
