/* SPDX-License-Identifier: MIT */
/* Internal structures of the DHT core, shared by the files of userspace/dht only. */
#ifndef WEFT_DHT_INT_H
#define WEFT_DHT_INT_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/bencode.h"
#include "weft/dht.h"

/* ---- timings (ms) ---- */
#define DHT_GOOD_MS (15 * 60 * 1000ULL)		/* BEP 5: good if heard within 15 min */
#define DHT_REFRESH_MS (15 * 60 * 1000ULL)	/* BEP 5: refresh buckets idle 15 min */
#define DHT_TOKEN_ROTATE_MS (5 * 60 * 1000ULL)	/* BEP 5: secret changes every 5 min */
#define DHT_MAX_FAILS 3				/* unanswered queries in a row -> bad */
#define DHT_ABUSE_REPORT_MS 10000		/* on_abuse at most every 10 s per source */
#define DHT_MAX_LOOKUP_CANDS 64			/* candidates kept per lookup (closest first) */
#define DHT_MAX_RESULT_PEERS 256		/* unique peers collected per get_peers */
#define DHT_MAX_VALUES_IN 128			/* "values" entries parsed from one reply */
#define DHT_MAX_WK_IN 16 /* "wk" entries parsed from one reply */
#define DHT_MAX_VALUES_OUT 50			/* peers sent in one reply (fits 1500-byte MTU) */
#define DHT_TOKEN_LEN 8
#define DHT_IP_VOTES 16	     /* external-address votes kept */
#define DHT_IP_VOTE_QUORUM 3 /* distinct reporters before we trust a vote */
/* A query unanswered after query_timeout_ms is sent once more with a new
 * transaction id (and waits query_timeout_ms again) before the node counts
 * as having failed: one lost datagram on a lossy path must not mark a good
 * node or drop it from a lookup. */
#define DHT_QUERY_ATTEMPTS 2
/* A lookup query to one of the k closest candidates not known to have
 * failed gets one attempt more, its retries half a timeout apart (given up
 * after two timeouts, as any other): those nodes are the lookup's answer
 * (and an announce's or put's store set), and at 5% datagram loss two
 * attempts still lose a live one 1% of the time ((1 - 0.95^2)^2), which
 * is what kept find_node below 99% there (docs/DHT.md, docs/LAB.md). */
#define DHT_QUERY_ATTEMPTS_CLOSE 3
#define DHT_MAX_PKT 1500 /* largest datagram we build (Ethernet MTU payload) */

/* ---- KRPC ---- */
enum krpc_method {
	KRPC_UNKNOWN = 0,
	KRPC_PING,
	KRPC_FIND_NODE,
	KRPC_GET_PEERS,
	KRPC_ANNOUNCE_PEER,
	KRPC_GET,
	KRPC_PUT,
};

struct krpc_msg {
	char y; /* 'q', 'r', 'e' */
	const uint8_t *t;
	size_t tlen;
	enum krpc_method q;
	const uint8_t *id;	  /* 20 bytes (a.id or r.id) */
	const uint8_t *target;	  /* 20 */
	const uint8_t *info_hash; /* 20 */
	int has_port;
	int64_t port;
	int implied_port;
	const uint8_t *token;
	size_t token_len;
	const uint8_t *nodes, *nodes6;
	size_t nodes_len, nodes6_len;
	const uint8_t *values[DHT_MAX_VALUES_IN];
	uint8_t values_len[DHT_MAX_VALUES_IN];
	unsigned int nvalues;
	const uint8_t *wk; /* announce_peer: DHT_WK_LEN bytes, or NULL */
	/* get_peers reply: "wk" entries, compact peer (6 or 18) || DHT_WK_LEN */
	const uint8_t *wks[DHT_MAX_WK_IN];
	uint8_t wks_len[DHT_MAX_WK_IN];
	unsigned int nwks;
	int ro;
	int want4, want6;  /* "want" list present and contains n4 / n6 */
	const uint8_t *ip; /* top-level "ip": our address as seen by the sender */
	size_t ip_len;
	/* BEP 44 */
	const uint8_t *v; /* bencoded value */
	size_t vlen;
	const uint8_t *k;   /* 32 */
	const uint8_t *sig; /* 64 */
	const uint8_t *salt;
	size_t salt_len;
	int has_salt;
	int has_seq, has_cas;
	int64_t seq, cas;
	/* error replies */
	int64_t ecode;
	/* Parse problem of a query: code to answer with and a static message. */
	int err_code;
	const char *err_msg;
};

/* Parse one datagram into m (pointers into buf). Returns 0 on a usable
 * message; -EINVAL when it must be dropped (m->t set and m->err_code set
 * when an error reply should be sent). */
int krpc_parse(struct krpc_msg *m, const uint8_t *buf, size_t len);
const char *krpc_method_name(enum krpc_method q);

/* ---- compact addresses ---- */
int dht_addr_compact(const struct sockaddr *sa, uint8_t *out); /* 6 or 18 bytes, 0 if bad */
int dht_addr_from_compact(const uint8_t *c, size_t len, struct sockaddr_storage *ss,
			  socklen_t *sslen);
int dht_addr_eq(const struct sockaddr *a, const struct sockaddr *b);
int dht_addr_ip(const struct sockaddr *sa, const uint8_t **ip); /* returns ip length */

/* ---- routing table ---- */
struct dht_node {
	uint8_t id[DHT_ID_LEN];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint64_t last_reply; /* last answer to our query */
	uint64_t last_seen;  /* last packet of any kind */
	uint64_t last_ping;  /* last query we sent it */
	uint8_t fails;	     /* unanswered queries in a row */
	uint8_t replied;     /* ever answered us */
	/* A query with ro=1 (BEP 43) came from its id and address since its
	 * last answer to one of our queries: not handed out, not good (so
	 * maintain() pings it), until an answer clears it (dht_rt_ro_hold). */
	uint8_t ro_held;
};

struct dht_bucket {
	struct dht_node nodes[DHT_K];
	struct dht_node repl[DHT_K]; /* replacement cache, newest last */
	uint8_t n, nrepl;
	uint64_t last_changed;
};

#define DHT_MAX_BUCKETS 160
struct dht_table {
	int family;
	unsigned int nb; /* buckets in use; the last one holds our own id */
	struct dht_bucket b[DHT_MAX_BUCKETS];
};

enum rt_event { RT_QUERY = 0, RT_REPLY = 1 };
unsigned int dht_rt_bucket_index(const struct dht_table *t, const uint8_t *self, const uint8_t *id);
/* A node was heard from. Returns 1 when it is (now) in the table, 0 when
 * it went to a replacement cache or was ignored. */
int dht_rt_heard(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		 const struct sockaddr *sa, socklen_t salen, enum rt_event ev, uint64_t now);
/* A query to this node went unanswered. */
void dht_rt_failed(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		   const struct sockaddr *sa);
struct dht_node *dht_rt_find(struct dht_table *t, const uint8_t *self, const uint8_t *id);
/* A query with ro=1 came from this id and address: hold the entry (or the
 * replacement) back until it answers us. Returns 1 when a table entry was
 * held now (0: not in the table, or already held). */
int dht_rt_ro_hold(struct dht_table *t, const uint8_t *self, const uint8_t *id,
		   const struct sockaddr *sa);
/* Up to max nodes closest to target, neither bad nor held (ro_held), closest
 * first; max is capped at DHT_RT_CLOSEST_MAX (a lookup's half of its
 * candidates). Answers to others and our own lookups' start alike: a node
 * that really went read-only answers neither us nor them. */
#define DHT_RT_CLOSEST_MAX (DHT_MAX_LOOKUP_CANDS / 2)
size_t dht_rt_closest(const struct dht_table *t, const uint8_t *target, uint64_t now,
		      const struct dht_node **out, size_t max);
int dht_rt_node_good(const struct dht_node *n, uint64_t now);
int dht_rt_node_bad(const struct dht_node *n);
/* A random id that falls in bucket i. */
void dht_rt_random_in_bucket(const struct dht_table *t, const uint8_t *self, unsigned int i,
			     const uint8_t rnd[DHT_ID_LEN], uint8_t out[DHT_ID_LEN]);
int dht_id_closer(const uint8_t *target, const uint8_t *a, const uint8_t *b); /* a closer than b */

/* ---- tokens ---- */
struct dht_tokens {
	uint8_t secret[2][32]; /* [0] current, [1] previous */
	uint64_t rotated_ms;
};
void dht_token_init(struct dht_tokens *t, const uint8_t fresh[32], uint64_t now);
void dht_token_rotate(struct dht_tokens *t, const uint8_t fresh[32], uint64_t now);
void dht_token_make(const struct dht_tokens *t, int which, const struct sockaddr *sa,
		    uint8_t out[DHT_TOKEN_LEN]);
int dht_token_check(const struct dht_tokens *t, const struct sockaddr *sa, const uint8_t *tok,
		    size_t len);

/* ---- storage ---- */
struct dht_peer {
	struct sockaddr_storage addr;
	uint64_t expires;
	uint8_t *wk; /* the announce's "wk" (DHT_WK_LEN, malloc'd), or NULL: most have none */
};
struct dht_ih {
	uint8_t ih[DHT_ID_LEN];
	struct dht_ih *next;
	struct dht_peer *peers;
	uint32_t npeers, cap;
};
struct dht_item {
	uint8_t target[DHT_ID_LEN];
	struct dht_item *next;
	int mut;
	uint8_t k[DHT_PK_LEN];
	uint8_t sig[DHT_SIG_LEN];
	uint8_t salt[DHT_MAX_SALT];
	size_t salt_len;
	int64_t seq;
	uint8_t v[DHT_MAX_VALUE];
	size_t vlen;
	uint64_t expires;
	uint8_t src[16]; /* source IP (for the per-source cap) */
	uint8_t srclen;
};
#define DHT_STORE_HBUCKETS 1024
struct dht_store {
	struct dht_ih *ih[DHT_STORE_HBUCKETS];
	struct dht_item *it[DHT_STORE_HBUCKETS];
	uint32_t nih, npeers, nitems;
	const struct dht_limits *lim;
};
void dht_store_init(struct dht_store *s, const struct dht_limits *lim);
void dht_store_free(struct dht_store *s);
/* The bytes the store's entries take (their structures and peer arrays as
 * allocated, malloc's own overhead not counted): what the stores add to
 * the heap, a walk of every entry (bounded by the limits). */
uint64_t dht_store_bytes(const struct dht_store *s);
/* Returns 0, -ENOSPC (a cap was hit). */
int dht_store_add_peer(struct dht_store *s, const uint8_t *ih, const struct sockaddr *sa,
		       uint64_t now);
/* The same with the announce's "wk" (DHT_WK_LEN bytes) or NULL; a later
 * announce from the same address replaces it. */
int dht_store_add_peer_wk(struct dht_store *s, const uint8_t *ih, const struct sockaddr *sa,
			  const uint8_t *wk, uint64_t now);
struct dht_ih *dht_store_find_ih(const struct dht_store *s, const uint8_t *ih);
struct dht_item *dht_store_find_item(const struct dht_store *s, const uint8_t *target);
/* Insert or replace (the caller has validated seq/cas/signature). Returns 0 or -ENOSPC. */
int dht_store_put_item(struct dht_store *s, const struct dht_item *src, uint64_t now);
void dht_store_expire(struct dht_store *s, uint64_t now);
unsigned int dht_store_list_int(const struct dht_store *s, uint64_t now, struct dht_stored *out,
				unsigned int max);

/* ---- external address votes (BEP 42) ---- */
struct dht_ipvote {
	uint8_t ip[16];
	uint8_t iplen;
	uint8_t reporter[16]; /* who said so (one vote per reporter IP) */
	uint8_t replen;
};

/* ---- per-source budget ---- */
#define DHT_BUDGET_PROBE 8 /* slots probed per lookup in the budget table */
/* The budget table starts with this many slots and doubles (rehashed) up
 * to budget_sources only when a new source would evict a live one, so a
 * node that meets few sources does not write a page of the full-size table
 * per source (4096 x 40 B = 160 KiB at the default). At the full size it
 * behaves as a fixed table: an unknown source takes the least recently
 * seen of its DHT_BUDGET_PROBE slots. */
#define DHT_BUDGET_START 256
struct dht_budget {
	uint8_t ip[16];
	uint8_t iplen;
	uint32_t tokens_milli; /* token bucket, in 1/1000 query */
	/* What token-proven queries alone spent once tokens_milli ran out
	 * (same rate and burst): the overrun that is reported for a ban.
	 * A forged flood from this address cannot carry our tokens, so it
	 * empties tokens_milli but never this one, and cannot turn the
	 * address's own genuine announces into a ban. */
	uint32_t proven_milli;
	uint64_t last_ms;
	uint64_t last_report;
};

/* ---- transactions and lookups ---- */
struct dht_lookup;

/*
 * Slot arrays of the pending transactions (max_pending) and the lookups
 * (max_lookups) are anonymous mappings, slots taken lowest-first: what is
 * resident follows the peak in use, not the capacity, and every few
 * seconds (maintain) the pages above the highest slot in use and above the
 * first DHT_PEND_KEEP / DHT_LK_KEEP slots are handed back to the kernel
 * (MADV_DONTNEED: they read as zeroes again, a free slot). A pending
 * query still pointing at a lookup slot handed back sees in_use 0 and a
 * generation that does not match, as for any finished lookup.
 */
#define DHT_PEND_KEEP 64 /* pending slots never handed back (14 KiB) */
#define DHT_LK_KEEP 2	 /* lookup slots never handed back (29 KiB) */
void *dht_slots_new(size_t n, size_t size);
void dht_slots_del(void *base, size_t n, size_t size);
/* Hand back the pages of slots [max(hw, keep), *touched) and set *touched
 * to max(hw, keep); the slots there must be free. */
void dht_slots_trim(void *base, size_t size, uint32_t hw, uint32_t keep, uint32_t *touched);

/* The current query timeout: query_timeout_ms before any answer, then
 * srtt + 4 rttvar of answered first attempts, clamped to
 * [query_timeout_min_ms, query_timeout_ms]. */
uint64_t dht_query_timeout(const struct dht *dht);

struct dht_pending {
	uint32_t tid;
	int in_use;
	enum krpc_method q;
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint8_t id[DHT_ID_LEN]; /* expected node id, if known */
	int has_id;
	uint64_t sent_ms;
	struct dht_lookup *lk; /* owner lookup (NULL for table maintenance) */
	uint32_t lk_gen;
	/* Retry (see DHT_QUERY_ATTEMPTS): a copy of the datagram, resent once
	 * with a fresh transaction id patched in at tid_off. A late answer to
	 * the first attempt (old_tid) is still accepted. */
	uint8_t *pkt; /* malloc'd, NULL when the query is not retried */
	uint16_t pktlen, tid_off;
	uint32_t old_tid;
	uint8_t attempt; /* 0: first send, 1: retried */
};

enum cand_state { CAND_NEW = 0, CAND_INFLIGHT, CAND_DONE, CAND_FAILED };

struct dht_cand {
	uint8_t id[DHT_ID_LEN];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	uint8_t state;
	uint8_t hop;
	uint8_t token[32];
	uint8_t token_len;
	uint8_t stored; /* store phase acknowledged */
	uint8_t store_sent;
	uint8_t retrying; /* first attempt timed out, retry in flight (not counted in alpha) */
	int64_t seq;	  /* mutable seq this node returned, -1 none */
};

enum lk_phase { LK_SEARCH = 0, LK_STORE, LK_DONE };

struct dht_lookup {
	int in_use;
	uint32_t gen;
	enum dht_op op;
	enum lk_phase phase;
	uint8_t target[DHT_ID_LEN];
	uint64_t started, deadline;
	dht_done_fn cb;
	dht_done_fn first_cb; /* dht_get_first: called once with the first valid item */
	int stop_first;	      /* dht_get_first's stop: end once first_cb was called */
	int first_given;
	void *arg;
	struct dht_cand cands[DHT_MAX_LOOKUP_CANDS];
	unsigned int ncands;
	unsigned int queried, visited, inflight;
	unsigned int retrying; /* candidates whose retry is in flight */
	int local_hit;	       /* our own storage answered (get_peers / get) */
	/* announce */
	uint16_t port;
	int implied_port;
	int has_wk;
	uint8_t wk[DHT_WK_LEN]; /* announce: sent with every announce_peer */
	uint8_t (*batch)[DHT_ID_LEN]; /* dht_announce_to: the infohashes (malloc'd) */
	size_t nbatch;
	struct dht_wk *wks;	/* get_peers: claims found (DHT_MAX_RESULT_WK) */
	size_t nwks;
	/* peers */
	struct sockaddr_storage *peers;
	size_t npeers;
	/* items */
	int want_mutable;
	uint8_t pk[DHT_PK_LEN];
	uint8_t salt[DHT_MAX_SALT];
	size_t salt_len;
	int cas;
	int presigned;	  /* dht_put_signed: seq and sig given */
	unsigned int held; /* DHT_PUT_REFRESH: k closest already holding it */
	unsigned int put_flags; /* enum dht_put_flags (presigned puts) */
	int has_get_seq;  /* dht_get_since / presigned puts: gets carry seq */
	int64_t get_seq;
	int found;
	uint8_t v[DHT_MAX_VALUE + 8];
	size_t vlen;
	int64_t seq;
	uint8_t sig[DHT_SIG_LEN];
	int64_t max_seen_seq;
	/* ping */
	struct sockaddr_storage ping_addr;
	socklen_t ping_len;
};

struct dht {
	struct dht_opts o;
	struct dht_limits lim;
	/* adaptive query timeout (dht_query_timeout): RFC 6298 estimator */
	int64_t srtt_us, rttvar_us;
	uint64_t rtt_n; /* samples taken */
	uint8_t id[DHT_ID_LEN];
	uint8_t pk[DHT_PK_LEN], sk[DHT_SK_LEN];
	int has_key;
	char version[4];
	uint8_t rng[32];
	uint64_t rng_ctr;
	struct dht_table t4, t6;
	struct dht_tokens tok;
	struct dht_store store;
	struct dht_pending *pend; /* max_pending slots (dht_slots_new) */
	uint64_t *pend_used;	  /* bitmap of pend slots in use; bits past max_pending set */
	uint32_t pend_touched;	  /* slots [0, pend_touched) may be resident */
	uint32_t next_tid;
	struct dht_lookup *lks; /* max_lookups slots (dht_slots_new) */
	uint32_t lk_touched;	/* slots [0, lk_touched) may be resident */
	uint32_t lk_gen;
	struct dht_budget *budget;
	uint32_t budget_mask;	   /* slots - 1 (a power of two, <= budget_sources) */
	uint8_t budget_key[16];	   /* keys the slot hash: sources cannot aim at one slot */
	struct dht_ipvote votes[DHT_IP_VOTES];
	unsigned int nvotes;
	int64_t last_put_seq;
	uint64_t last_expire, last_maint, last_bootstrap;
	int want_bootstrap;
	int want_refresh; /* self-lookup done: refresh the thin buckets (Kademlia 2.3) */
	uint64_t self_gap; /* next periodic self-lookup: 1 min after the first, doubling to 15 */
	struct dht_stats st;
};

/* rng.c: len random bytes from the instance's stream. */
void dht_random(struct dht *dht, void *buf, size_t len);

/* ---- txn.c: transactions and sending ---- */
/* Optional query arguments; NULL / 0 = absent. */
struct krpc_args {
	const uint8_t *target;
	const uint8_t *info_hash;
	const uint8_t *token;
	size_t token_len;
	int port; /* > 0: send port */
	int implied_port;
	const uint8_t *v; /* bencoded */
	size_t vlen;
	const uint8_t *k, *sig, *salt;
	size_t salt_len;
	const uint8_t *wk; /* announce_peer: DHT_WK_LEN bytes */
	int has_seq, has_cas;
	int64_t seq, cas;
};
/* Send a query; registers a pending transaction. Returns 0, -ENOSPC
 * (transaction table full) or the send callback's error. */
int dht_send_query(struct dht *dht, enum krpc_method q, const struct sockaddr *to, socklen_t tolen,
		   const uint8_t *expect_id, struct dht_lookup *lk, const struct krpc_args *a,
		   uint64_t now);
/* The pending transaction m answers (by transaction id, either attempt's,
 * and source address), or NULL. */
struct dht_pending *dht_pend_match(struct dht *dht, const struct krpc_msg *m,
				   const struct sockaddr *from);
/* Free p's slot and its retry copy (p's fields stay readable). */
void dht_pend_release(struct dht *dht, struct dht_pending *p);
/* Resend p's copy with a fresh transaction id, in the same slot. Returns 1
 * when it went out, 0 when the send failed (p is unchanged). */
int dht_pend_retry(struct dht *dht, struct dht_pending *p, uint64_t now);
/* Hand back the pages of transaction slots above the highest in use. */
void dht_pend_trim(struct dht *dht);
/* Send an encoded message; b->err (the message did not fit) or the send
 * callback's result. */
int dht_sendto(struct dht *dht, const struct bencode_buf *b, const struct sockaddr *to,
	       socklen_t tolen);
/* End a message with "1:t<n>:<t>1:v4:<v>1:y1:<y>e"; the transaction id
 * starts 5 bytes after the current length when tlen is 4 ("1:t4:"). */
void dht_put_tail(struct dht *dht, struct bencode_buf *b, const uint8_t *t, size_t tlen,
		  const char *y);
/* The statistics slot of a method. */
enum dht_stat_q dht_stat_q(enum krpc_method q);

/* routing.c: the table of an address family, or NULL. */
struct dht_table *dht_table_for(struct dht *dht, int family);

/* ---- serve.c: the server side ---- */
/* Answer query m (parsed, within budget) from from. */
void dht_serve_query(struct dht *dht, const struct krpc_msg *m, const struct sockaddr *from,
		     socklen_t fromlen, uint64_t now);
/* Send error code with msg (static) in reply to m. */
void dht_send_error(struct dht *dht, const struct krpc_msg *m, int code, const char *msg,
		    const struct sockaddr *to, socklen_t tolen);
/* Take one query from from's budget. Returns 1 when it may be answered;
 * proven (a valid token) lets an overrun reach on_abuse. */
int dht_budget_take(struct dht *dht, const struct sockaddr *from, socklen_t fromlen,
		    uint64_t now, int proven);
/* 1 when m is an announce_peer or put with a token valid for from. */
int dht_query_proven(const struct dht *dht, const struct krpc_msg *m,
		     const struct sockaddr *from);

/* lookup.c */
/* dht_free: finish every lookup in progress with status -ECANCELED. */
void dht_lookup_cancel_all(struct dht *dht);
void dht_lk_reply(struct dht *dht, struct dht_pending *p, const struct krpc_msg *m,
		  const struct sockaddr *from, socklen_t fromlen, uint64_t now);
void dht_lk_fail(struct dht *dht, struct dht_pending *p, uint64_t now);
/* The first attempt of p timed out and was resent: frees its alpha slot. */
void dht_lk_retry(struct dht *dht, struct dht_pending *p, uint64_t now);
/* 1 when p is a search query to one of its lookup's k closest candidates
 * that have not failed (it then gets DHT_QUERY_ATTEMPTS_CLOSE attempts). */
int dht_lk_is_close(struct dht *dht, struct dht_pending *p);
void dht_lk_error(struct dht *dht, struct dht_pending *p, const struct krpc_msg *m, uint64_t now);
void dht_lk_timers(struct dht *dht, uint64_t now, uint64_t *next);
/* Hand back the pages of lookup slots above the highest in use (dht_slots_trim). */
void dht_lk_trim(struct dht *dht);

#endif
