/* SPDX-License-Identifier: MIT */
/*
 * Mailboxes (issue 34): always-on nodes ("anchors": relay and seed hosts)
 * hold sealed messages for peers that are offline and hand them over when
 * those peers check in. Design, limits and defaults: docs/MAILBOX.md; wire
 * formats and vectors: docs/PROTOCOL.md, "Mailbox".
 *
 *  - mbox_seal_* / mbox_open: a message sealed to the recipient's node key
 *    (Ed25519 -> X25519, the key wrapped with seal_wrap), signed inside by
 *    the sender. No I/O.
 *  - mbox_req_* / mbox_resp_*: the protocol core of stream type 0x50
 *    (PUT, FETCH, ACK and their answers) without I/O: encoders and strict
 *    parsers over (buf, len).
 *  - mbox_rate_*: the per-sender rate and score table. No I/O, no clock.
 *  - mbox_store_*: the anchor's messages and the node's inbox in LMDB,
 *    with the quotas; every accepted message is committed before the
 *    caller acknowledges it.
 *  - mbox_node_*: the glue on quic_node: the anchor serving, msg send,
 *    the fetcher, the control routes.
 */
#ifndef WEFT_MAILBOX_H
#define WEFT_MAILBOX_H

#include <stddef.h>
#include <stdint.h>

#define MBOX_KEY_LEN 32u
#define MBOX_ID_LEN 16u	      /* message id: BLAKE2b-128 of the sealed message */
#define MBOX_MAX_BODY 65536u  /* plaintext bytes of one message */
#define MBOX_SEAL_VERSION 1u
/* Sealed: version (1) | epk (32) | wrapped key entry (56) | AEAD(inner) where
 * inner = sender (32) | sig (64) | ts (8, LE) | body; tag 16. */
#define MBOX_SEAL_HDR (1u + 32u + 56u)
#define MBOX_INNER_HDR (32u + 64u + 8u)
#define MBOX_SEAL_OVERHEAD (MBOX_SEAL_HDR + MBOX_INNER_HDR + 16u)
#define MBOX_MAX_SEALED (MBOX_MAX_BODY + MBOX_SEAL_OVERHEAD)

/* ------------------------------------------------------------ sealing */

/*
 * Seal body (len <= MBOX_MAX_BODY) from the sender (Ed25519 secret key,
 * seed || pk) to the recipient's node key, written ts (unix seconds) into
 * out (len + MBOX_SEAL_OVERHEAD bytes). The sender signs "weft-msg-v1" ||
 * recipient || ts || body, so the recipient knows who wrote it and that it
 * was written for it; the anchor sees only ciphertext. Returns the sealed
 * length, -EINVAL (a key that does not convert, len too large), -ENOSPC.
 */
int mbox_seal(const uint8_t sender_sk[64], const uint8_t recipient[MBOX_KEY_LEN], uint64_t ts,
	      const uint8_t *body, size_t len, uint8_t *out, size_t cap);
/* The same with the ephemeral X25519 secret and the message key given
 * (test vectors only: a key used twice would break the zero nonce). */
int mbox_seal_det(const uint8_t sender_sk[64], const uint8_t recipient[MBOX_KEY_LEN], uint64_t ts,
		  const uint8_t *body, size_t len, const uint8_t esk[32], const uint8_t key[32],
		  uint8_t *out, size_t cap);

struct mbox_opened {
	uint8_t sender[MBOX_KEY_LEN];
	uint64_t ts;
	const uint8_t *body; /* points into the caller's plain buffer */
	size_t len;
};
/*
 * Open a sealed message with our node's secret key: plain (cap at least
 * len) receives the inner part. Returns 0 with *m set; -EBADMSG (malformed,
 * not for us, changed, or the signature is not the named sender's).
 */
int mbox_open(const uint8_t my_sk[64], const uint8_t *sealed, size_t len, uint8_t *plain,
	      size_t cap, struct mbox_opened *m);
/* The same, for a message that must come from sender (a direct delivery:
 * the connection's key): 0, -EBADMSG (does not open, or another sender's),
 * -ENOMEM. The plaintext is wiped. */
int mbox_open_from(const uint8_t my_sk[64], const uint8_t *sealed, size_t len,
		   const uint8_t sender[MBOX_KEY_LEN]);
/* The id of a sealed message: BLAKE2b-128 of its bytes (the same message
 * left at two anchors has one id: the inbox keeps it once). */
void mbox_msg_id(const uint8_t *sealed, size_t len, uint8_t id[MBOX_ID_LEN]);

/* ------------------------------------------------------------ wire (stream 0x50) */

#define MBOX_ST 0x50 /* QUIC stream type; 0x50-0x5f belong to the mailbox */
/* A stream carries one request, then one answer, each framed
 * type (1) | body length (4, big endian) | body. */
#define MBOX_FRAME_HDR 5u
enum mbox_type {
	MBOX_T_PUT = 0x01,   /* recipient (32) | ttl_s (4) | sealed message */
	MBOX_T_FETCH = 0x02, /* max messages (2) */
	MBOX_T_ACK = 0x03,   /* count (2) | count x id (16) */
	MBOX_T_RESULT = 0x81, /* status (1) | id (16): PUT's and ACK's answer */
	MBOX_T_LIST = 0x82,   /* status (1) | more (1) | count (2) | count x
				 (id (16) | sender (32) | ts (8) | len (4) | sealed) */
};
enum mbox_status {
	MBOX_OK = 0,
	MBOX_E_FULL = 1,	/* mailbox_full: the recipient's or the anchor's quota */
	MBOX_E_RATE = 2,	/* rate_limited: the sender is over its rate or banned by its score */
	MBOX_E_TOO_LARGE = 3,	/* too_large: over mailbox.max_message */
	MBOX_E_MALFORMED = 4,	/* malformed */
	MBOX_E_DISABLED = 5,	/* no_mailbox: this node offers none */
	MBOX_E_UNAVAILABLE = 6, /* unavailable: the disk did not take it */
	MBOX_E_MAX
};
/* "ok", "mailbox_full", "rate_limited", "too_large", "malformed",
 * "no_mailbox", "unavailable", or "unknown". */
const char *mbox_status_name(unsigned int st);

#define MBOX_FETCH_MAX 64u		/* messages in one LIST */
#define MBOX_LIST_MAX_BYTES (1u << 20) /* sealed bytes in one LIST (at least one message) */
#define MBOX_ACK_MAX 256u
/* The largest request (a PUT of the largest message) and answer (a LIST). */
#define MBOX_REQ_MAX (MBOX_FRAME_HDR + 36u + MBOX_MAX_SEALED)
#define MBOX_LIST_ENTRY_HDR (16u + 32u + 8u + 4u)
#define MBOX_RESP_MAX (MBOX_FRAME_HDR + 4u + MBOX_LIST_MAX_BYTES + MBOX_MAX_SEALED +                 \
		       MBOX_FETCH_MAX * MBOX_LIST_ENTRY_HDR)

struct mbox_req {
	uint8_t type;
	/* PUT */
	uint8_t recipient[MBOX_KEY_LEN];
	uint32_t ttl_s;
	const uint8_t *sealed; /* into the parsed buffer */
	size_t sealed_len;
	/* FETCH */
	uint16_t max;
	/* ACK */
	uint16_t nids;
	const uint8_t *ids; /* nids x MBOX_ID_LEN, into the parsed buffer */
};
/* Encode a request into out (cap). Returns the length, -EINVAL, -ENOSPC. */
int mbox_req_encode(const struct mbox_req *r, uint8_t *out, size_t cap);
/*
 * How many bytes the frame starting at buf needs in all, from its header
 * (5 bytes) alone: the reader refuses a frame longer than max before
 * reading its body. Returns the total, 0 when fewer than 5 bytes are
 * there, -EBADMSG (unknown type, a length the type never has or over max).
 */
long mbox_frame_need(const uint8_t *buf, size_t len, size_t max);
/* Parse exactly one request of len bytes. Returns 0, -EBADMSG. */
int mbox_req_parse(const uint8_t *buf, size_t len, struct mbox_req *r);

struct mbox_item {
	uint8_t id[MBOX_ID_LEN];
	uint8_t sender[MBOX_KEY_LEN];
	uint64_t ts; /* when the anchor took it (unix seconds) */
	const uint8_t *sealed;
	size_t len;
};
/* RESULT: status and id. Returns the length, -ENOSPC. */
int mbox_result_encode(uint8_t status, const uint8_t id[MBOX_ID_LEN], uint8_t *out, size_t cap);
int mbox_result_parse(const uint8_t *buf, size_t len, uint8_t *status, uint8_t id[MBOX_ID_LEN]);
/* LIST, built in place: mbox_list_begin, mbox_list_add per item (-ENOSPC
 * when it does not fit), mbox_list_end sets count and more. */
struct mbox_list_w {
	uint8_t *out;
	size_t cap, len;
	uint16_t n;
};
void mbox_list_begin(struct mbox_list_w *w, uint8_t *out, size_t cap);
int mbox_list_add(struct mbox_list_w *w, const struct mbox_item *it);
int mbox_list_end(struct mbox_list_w *w, uint8_t status, int more);
/* Parse a LIST: items (cap) point into buf. Returns 0, -EBADMSG, -ENOSPC. */
int mbox_list_parse(const uint8_t *buf, size_t len, uint8_t *status, int *more,
		    struct mbox_item *items, unsigned int cap, unsigned int *n);

/* ------------------------------------------------------------ sender rate and score */

/*
 * Each sender key has a token bucket (rate per minute, burst) and a score:
 * +1 for each refused or malformed message, halved every
 * MBOX_SCORE_HALF_S; a sender at MBOX_SCORE_BAN or more is refused
 * (rate_limited) until it decays below. Bounded table (MBOX_RATE_SLOTS,
 * the least recently seen replaced). Not thread-safe.
 */
#define MBOX_RATE_SLOTS 4096u
#define MBOX_SCORE_HALF_S 600u
#define MBOX_SCORE_BAN 32u
struct mbox_rate;
int mbox_rate_new(struct mbox_rate **out, uint32_t per_min, uint32_t burst);
void mbox_rate_free(struct mbox_rate *r);
/* 1: the sender may send one message now (a token taken); 0: refused. */
int mbox_rate_take(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN], uint64_t now_ms);
/* One refusal or malformed request counted against sender. */
void mbox_rate_strike(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN], uint64_t now_ms);
/* The sender's score now (0 when unknown). */
unsigned int mbox_rate_score(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN],
			     uint64_t now_ms);
/* Senders tracked, and up to max of the highest scores (key, score). */
struct mbox_score {
	uint8_t key[MBOX_KEY_LEN];
	unsigned int score;
	uint64_t refused;
};
unsigned int mbox_rate_top(struct mbox_rate *r, uint64_t now_ms, struct mbox_score *out,
			   unsigned int max, unsigned int *tracked);

/* ------------------------------------------------------------ store */

/* Defaults (docs/CONFIG.md, mailbox.*). */
#define MBOX_DEF_PER_RCPT_MSGS 256u
#define MBOX_DEF_PER_RCPT_BYTES (4u << 20)
#define MBOX_DEF_TOTAL_MSGS 100000u
#define MBOX_DEF_TOTAL_BYTES (256ull << 20)
#define MBOX_DEF_MAX_AGE_S (7u * 86400u)
#define MBOX_DEF_RATE_PER_MIN 30u
#define MBOX_DEF_RATE_BURST 30u
#define MBOX_DEF_FETCH_S 60u
#define MBOX_DEF_INBOX_MAX 10000u

struct mbox_limits {
	uint32_t per_rcpt_msgs, per_rcpt_bytes;
	uint32_t total_msgs;
	uint64_t total_bytes;
	uint32_t max_age_s;
	uint32_t inbox_max;
};

struct store;
struct mbox_store;
/*
 * Open the anchor's messages (database "mbox_msgs") and the inbox
 * ("mbox_inbox") in st; the quota counters are rebuilt by one scan.
 * Returns 0, -ENOMEM, or the store's errors.
 */
int mbox_store_new(struct mbox_store **out, struct store *st, const struct mbox_limits *lim);
void mbox_store_free(struct mbox_store *ms);
/*
 * Keep sealed (len bytes) from sender for recipient until now + ttl_s
 * (ttl_s 0 or over max_age_s: max_age_s), committed to disk before it
 * returns 0 (the caller acknowledges only then). id gets the message id.
 * Returns 0 (also for a message already held: nothing changes), -EDQUOT
 * (the recipient's or the anchor's quota: mailbox_full), -E2BIG,
 * -ETIMEDOUT / -EIO / -ENOSPC (not on disk). Thread-safe.
 */
int mbox_store_put(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t sender[MBOX_KEY_LEN], const uint8_t *sealed, size_t len,
		   uint32_t ttl_s, uint64_t now_s, uint8_t id[MBOX_ID_LEN]);
/* The recipient's live messages into a LIST (w), at most max; *more is set
 * when some did not fit. Returns the count or -errno. */
int mbox_store_list(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN], unsigned int max,
		    uint64_t now_s, struct mbox_list_w *w, int *more);
/* Delete the recipient's messages ids (n), durably. Unknown ids (taken
 * already, expired, another recipient's) are ignored. Returns the count
 * deleted or -errno. */
int mbox_store_ack(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t *ids, unsigned int n);
/* Drop messages past their expiry. Returns the count. */
int mbox_store_expire(struct mbox_store *ms, uint64_t now_s);

struct mbox_store_stats {
	uint64_t msgs, bytes, recipients;
	uint64_t inbox;
	uint64_t put_total, dup_total, full_total, acked_total, expired_total;
};
void mbox_store_stats(struct mbox_store *ms, struct mbox_store_stats *out);

/* ---- the inbox (messages for this node, still sealed) ---- */

/* Keep a message taken from an anchor (or delivered directly) durably.
 * Returns 0 (also for one already there), -EDQUOT (inbox_max), -errno. */
int mbox_inbox_put(struct mbox_store *ms, const uint8_t sender[MBOX_KEY_LEN], uint64_t ts,
		   const uint8_t *sealed, size_t len, uint8_t id[MBOX_ID_LEN]);
struct mbox_inbox_entry {
	uint8_t id[MBOX_ID_LEN];
	uint8_t sender[MBOX_KEY_LEN]; /* as the anchor or the connection said; read checks it */
	uint64_t ts;		      /* when it arrived here */
	uint32_t len;		      /* sealed bytes */
};
typedef int (*mbox_inbox_fn)(void *arg, const struct mbox_inbox_entry *e);
/* Each inbox entry in id order; fn returns nonzero to stop. */
int mbox_inbox_each(struct mbox_store *ms, mbox_inbox_fn fn, void *arg);
/* A copy of the sealed message id (malloc'd, *len). -ENOENT. */
int mbox_inbox_get(struct mbox_store *ms, const uint8_t id[MBOX_ID_LEN],
		   struct mbox_inbox_entry *e, uint8_t **sealed);
/* Delete it durably. 0, -ENOENT, -errno. */
int mbox_inbox_del(struct mbox_store *ms, const uint8_t id[MBOX_ID_LEN]);

/* ------------------------------------------------------------ node glue */

#define MBOX_MAX_ANCHORS 4u /* anchors listed in a node record (CONN_REC_MAX_ANCHORS) */
#define MBOX_COPIES 2u	    /* anchors a message is left at */
#define MBOX_DEF_DIRECT_MS 5000u /* msg send: the direct attempt's budget */
#define MBOX_DEF_ANCHOR_MS 10000u /* one anchor's exchange */
#define MBOX_MAX_PENDING 256u	  /* anchor: requests being received or served at once */
#define MBOX_DHT_NAME "weft:mailbox"

struct engine;
struct ctl;
struct quic_node;
struct conn_node;
struct dhtnode;
struct identity;
struct mbox_node;

struct mbox_node_opts {
	struct quic_node *quic;	   /* required */
	struct store *store;	   /* required */
	const struct identity *id; /* required: seals, opens and signs */
	struct ctl *ctl;	   /* optional: /v1/msg/... and /v1/mailbox/... */
	struct conn_node *conn;	   /* optional: resolve recipients, publish our anchors */
	struct dhtnode *dht;	   /* optional: mailbox hosts announce and are found */
	uint16_t quic_port;	   /* announced by a mailbox host */
	int enabled;		   /* offer a mailbox (serve PUT/FETCH/ACK for others) */
	struct mbox_limits lim;	   /* 0 fields: defaults */
	uint32_t rate_per_min, rate_burst;
	uint32_t fetch_s;	   /* fetch from our anchors this often; 0: default */
	/* mailbox.anchors: "KEY@ADDR:PORT" entries (at most 4). */
	char anchors[MBOX_MAX_ANCHORS][128];
	unsigned int nanchors;
	/* Mailbox hosts we hold a relay reservation with: filled by the
	 * caller's hook when mailbox.anchors is empty (any thread, may block
	 * briefly); returns the count written. NULL: none. */
	unsigned int (*relay_anchors)(void *arg, uint8_t (*keys)[MBOX_KEY_LEN],
				      char (*targets)[128], unsigned int max);
	void *relay_anchors_arg;
};

/*
 * Create the mailbox node: registers stream type MBOX_ST on the QUIC node
 * (before the engine starts), the routes when ctl is set. Returns 0,
 * -EINVAL, -EEXIST, -ENOMEM.
 */
int mbox_node_new(struct mbox_node **out, const struct mbox_node_opts *o);
/* After the engine started: the fetcher thread (first fetch at once). */
int mbox_node_start(struct mbox_node *mn);
/*
 * Send body to recipient as msg send does (sealed; directly when it
 * answers, dialled by key, else left at its anchors), for a module above
 * the mailbox (the mesh's reservations). Blocks: up to the direct budget
 * plus one anchor's per copy. 0 (*direct: reached the recipient itself),
 * -ENOENT (offline without anchors), -EHOSTUNREACH, -E2BIG, -errno.
 */
int mbox_node_send(struct mbox_node *mn, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t *body, size_t len, uint32_t ttl_s, int *direct);
/*
 * Messages whose body starts with tag (at most 16 bytes) are for a module
 * above (the mesh): once a message is in the inbox (delivered directly or
 * fetched), fn(arg, sender, the body after the tag) is called on the
 * mailbox's thread; when it returns 0 (it took the message durably, or
 * refused it for good) the message leaves the inbox, else it stays there.
 * The inbox is searched for such messages at once (kept before a crash).
 * One taker; set before mbox_node_start. 0, -EINVAL, -EEXIST.
 */
typedef int (*mbox_take_fn)(void *arg, const uint8_t sender[MBOX_KEY_LEN], const uint8_t *body,
			    size_t len);
int mbox_node_take(struct mbox_node *mn, const char *tag, mbox_take_fn fn, void *arg);
/* Stop the fetcher and the worker; memory goes back with the QUIC node's
 * release of the stream type. Call after engine_stop(). NULL-safe. */
void mbox_node_free(struct mbox_node *mn);

#endif
