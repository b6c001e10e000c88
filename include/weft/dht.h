/* SPDX-License-Identifier: MIT */
/*
 * Mainline DHT core (BEP 5, 42, 43, 44). No I/O: the caller feeds datagrams
 * with dht_input() and drives timers with dht_periodic(); packets leave
 * through the send callback given in dht_opts. Randomness comes from the
 * rand callback or a per-instance generator seeded from opts.seed, so tests
 * are reproducible. There is no global state: many instances can live in
 * one process.
 *
 * Threading: a struct dht is not thread-safe; one thread owns it (see
 * struct dht_svc in docs/DHT.md for the locked wrapper the control API uses).
 *
 * Callbacks (send, done, on_abuse) run inside dht_input/dht_periodic/the
 * starting call. A done callback may start new operations but must not
 * call dht_free().
 */
#ifndef WEFT_DHT_H
#define WEFT_DHT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define DHT_ID_LEN 20
#define DHT_K 8		   /* bucket size (BEP 5) */
#define DHT_ALPHA 3	   /* parallel queries per lookup */
#define DHT_MAX_VALUE 1000 /* BEP 44: bencoded v at most 1000 bytes */
#define DHT_MAX_SALT 64	   /* BEP 44 */
#define DHT_PEER_TTL_MS (30 * 60 * 1000ULL)	/* peers expire after 30 min */
#define DHT_ITEM_TTL_MS (2 * 60 * 60 * 1000ULL) /* BEP 44: items live 2 h unless re-put */
#define DHT_PK_LEN 32
#define DHT_SK_LEN 64 /* libsodium form: seed || public key */
#define DHT_SIG_LEN 64
/*
 * weft's extension to BEP 5 (docs/DHT.md, "Key claims on announces"): an
 * announce_peer may carry "wk", an opaque value of exactly DHT_WK_LEN
 * bytes the announcer attaches (weft: a service provider's signed key
 * claim, docs/SERVICE.md). A node stores it with the peer and returns it
 * in get_peers replies next to "values". The DHT never reads it: whoever
 * uses it checks it.
 */
#define DHT_WK_LEN 104
#define DHT_MAX_WK_OUT 4     /* "wk" entries in one get_peers reply (4 x 122 bytes at most) */
#define DHT_MAX_RESULT_WK 32 /* claims collected by one lookup */

struct dht_wk {
	struct sockaddr_storage addr; /* the peer (address and port) it came with */
	uint8_t v[DHT_WK_LEN];
};

/* KRPC error codes (BEP 5, BEP 44). */
enum dht_krpc_error {
	DHT_ERR_GENERIC = 201,
	DHT_ERR_SERVER = 202,
	DHT_ERR_PROTOCOL = 203,
	DHT_ERR_METHOD = 204,
	DHT_ERR_V_TOO_BIG = 205,
	DHT_ERR_BAD_SIG = 206,
	DHT_ERR_SALT_TOO_BIG = 207,
	DHT_ERR_CAS = 301,
	DHT_ERR_SEQ = 302,
};

/* Kinds of address evidence (on_evidence); the values match enum
 * guard_evidence in include/weft/guard.h. */
enum dht_evidence {
	DHT_EV_REPLY = 1, /* answered our query with our transaction id */
	DHT_EV_TOKEN = 2, /* a query carried a valid token (token round trip) */
};

enum dht_flags {
	DHT_F_READ_ONLY = 1U << 0,     /* BEP 43: send ro=1, answer no queries */
	DHT_F_ENFORCE_BEP42 = 1U << 1, /* keep only BEP 42-valid ids (non-local IPs) in the table */
	DHT_F_DERIVE_ID = 1U << 2,     /* re-derive our id from the voted external IP (BEP 42) */
	DHT_F_NO_IPV6 = 1U << 3,       /* do not ask for / answer with nodes6 */
	/* BEP 32: the caller can send to both IPv4 and IPv6 (it owns a socket
	 * of each family), so find_node / get_peers / get queries carry
	 * want=["n4","n6"] and the answers fill both routing tables, whichever
	 * family the query went over. Ignored with DHT_F_NO_IPV6. */
	DHT_F_DUAL_STACK = 1U << 4,
};

struct dht_limits {
	/* 0 in any field selects the default shown. */
	uint32_t max_infohashes;     /* 4096: distinct infohashes with stored peers */
	uint32_t max_peers_per_hash; /* 128: BEP 5 answers carry ~50; 128 keeps churn headroom */
	uint32_t max_peers;	     /* 32768: global stored peers (~1 MiB) */
	uint32_t max_items;	     /* 4096: BEP 44 items (<= ~4.5 MiB of values) */
	uint32_t max_items_per_src;  /* 64: items stored for one source IP */
	uint32_t max_lookups;	     /* 64: concurrent operations */
	uint32_t max_pending;	     /* 1024: outstanding transactions */
	uint32_t budget_rate;	     /* 50: queries per second allowed per source IP */
	uint32_t budget_burst;	     /* 200: bucket depth of the per-source budget */
	/* 4096: sources tracked by the budget table, a keyed hash table with
	 * 8-slot probing; a new source evicts the least recently seen of its
	 * 8 slots, so the lookup is O(1) and a flood of sources costs only
	 * their own slots' history. Rounded up to a power of two. */
	uint32_t budget_sources;
	/* 2000: a query unanswered after this long is resent once with a new
	 * transaction id; unanswered again after as long, the node is skipped
	 * by the lookup and counted as failed (BEP 5 "bad" after 3 failures).
	 * While the retry is out the lookup already queries the next
	 * candidate, so a dead node costs the lookup no more than one timeout
	 * of parallelism. A late answer to the first attempt still counts. */
	uint32_t query_timeout_ms;
	/* 500: the floor of the adaptive query timeout. The timeout follows
	 * the round trips measured on answers to our first attempts (RFC
	 * 6298's estimator: srtt + 4 rttvar), between this floor and
	 * query_timeout_ms (the cap, and the value before any answer): a
	 * silent node (a NAT filtering our query) costs two of them, not two
	 * fixed 2 s. Equal to query_timeout_ms: a fixed timeout. */
	uint32_t query_timeout_min_ms;
	uint32_t lookup_timeout_ms; /* 30000: hard cap on one operation */
};

struct dht_opts {
	const uint8_t
	    *id; /* 20 bytes, or NULL to derive one (BEP 42 if ext IP known, else random) */
	const uint8_t *pk; /* Ed25519 public key (32) for our mutable puts, or NULL */
	const uint8_t *sk; /* libsodium secret key (64: seed || pk), or NULL */
	int (*send)(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen);
	void *send_arg;
	/* Fill buf with len random bytes; NULL -> internal generator (seed below). */
	void (*rand)(void *arg, uint8_t *buf, size_t len);
	void *rand_arg;
	const uint8_t *seed; /* 32 bytes seeding the internal generator; NULL -> OS randomness */
	/*
	 * A source exceeded its query budget with queries that prove it owns
	 * its address: each carried a valid token (announce_peer or put), which
	 * only a host that received our earlier answer at that address can
	 * have. Called at most once per 10 s per source. Overruns by queries
	 * that prove nothing (ping, find_node, get_peers, get, garbage) are
	 * dropped and counted (dropped_budget, budget_unproven) but never
	 * reported: a forged UDP source can produce those, and a report is
	 * what may lead to a ban.
	 */
	void (*on_abuse)(void *arg, const struct sockaddr *addr, socklen_t len);
	void *abuse_arg;
	/*
	 * Evidence that a source owns its address (DHT_EV_*): it answered a
	 * query of ours with our transaction id from the address we sent it
	 * to, or it sent a query carrying a valid token. Called for every such
	 * datagram; the receiver dedupes. May be NULL.
	 */
	void (*on_evidence)(void *arg, const struct sockaddr *addr, socklen_t len, int kind);
	void *evidence_arg;
	/*
	 * A reply to one of our queries (matched by transaction id and
	 * source) carried the BEP 42 `ip` field: the replier saw us at ip
	 * (ip_len 6: IPv4 + port, 18: IPv6 + port, network order). Address
	 * discovery votes with it (docs/CONNECTIVITY.md). May be NULL.
	 */
	void (*on_reflexive)(void *arg, const struct sockaddr *from, socklen_t fromlen,
			     const uint8_t *ip, size_t ip_len);
	void *reflexive_arg;
	unsigned int flags; /* enum dht_flags */
	struct dht_limits limits;
	const char *version; /* 4-byte client version sent as "v", default "WF01" */
};

struct dht;

/* Create an instance. opts is copied (pointed-to keys are copied too).
 * Returns 0, -EINVAL (no send callback, bad key lengths) or -ENOMEM. */
int dht_new(struct dht **out, const struct dht_opts *opts);
/* Free everything. Lookups still in progress complete first, with status
 * -ECANCELED, so their callbacks can release what they carry. NULL-safe. */
void dht_free(struct dht *dht);
/* End every lookup in progress now, status -ECANCELED, each callback run
 * once: at shutdown, while what the callbacks point into is still alive
 * (dht_free would run them later, after their owners are gone). */
void dht_cancel_all(struct dht *dht);

/* Handle one datagram from `from`. Never fails on hostile input; returns 0
 * when the packet was consumed, -EINVAL when it was dropped as malformed
 * (an error reply may still have been sent), -EAGAIN when rate-limited. */
int dht_input(struct dht *dht, const uint8_t *buf, size_t len, const struct sockaddr *from,
	      socklen_t fromlen, uint64_t now_ms);
/* Run timers (timeouts, retries, refresh, token rotation, expiry). *next_ms
 * receives the absolute time to call again. Returns 0. */
int dht_periodic(struct dht *dht, uint64_t now_ms, uint64_t *next_ms);

/* Add a node to contact (bootstrap): it is pinged and enters the table when it answers. */
int dht_add_node(struct dht *dht, const struct sockaddr *addr, socklen_t len, uint64_t now_ms);
/* Nodes in the routing tables (IPv4 and IPv6). */
unsigned int dht_node_count(const struct dht *dht);
/* Turn BEP 43 read-only mode on or off at run time (DHT_F_READ_ONLY):
 * while on, queries carry ro=1 and incoming queries are not answered, so
 * other nodes keep this one out of their routing tables. For a node that
 * found itself behind a NAT, which others could not query anyway. */
void dht_set_read_only(struct dht *dht, int on);
/* 1 while read-only (dht_set_read_only), else 0. */
int dht_read_only(const struct dht *dht);

/* Our current node id (20 bytes). */
const uint8_t *dht_id(const struct dht *dht);

/* ---- asynchronous operations ---- */
enum dht_op {
	DHT_OP_PING = 1,
	DHT_OP_FIND_NODE,
	DHT_OP_GET_PEERS,
	DHT_OP_ANNOUNCE,
	DHT_OP_GET,
	DHT_OP_PUT_IMMUTABLE,
	DHT_OP_PUT_MUTABLE,
	DHT_OP_BOOTSTRAP,
};

struct dht_node_info {
	uint8_t id[DHT_ID_LEN];
	struct sockaddr_storage addr;
	socklen_t addrlen;
	/* get_peers / get results: the write token the node gave (0: none).
	 * BEP 5 tokens belong to our IP, not to a target: the same token
	 * serves every announce to that node while it is valid (dht_announce_to). */
	uint8_t token[32];
	uint8_t token_len;
};

struct dht_result {
	enum dht_op op;
	int status; /* 0, -ETIMEDOUT (no answer), -ENOENT (get: no item), -EHOSTUNREACH (no nodes),
		     * -ECANCELED (dht_free while in progress)
		     */
	uint8_t target[DHT_ID_LEN];
	unsigned int visited; /* nodes that answered */
	unsigned int queried; /* queries sent */
	unsigned int hops;    /* longest referral chain to a node among the k closest */
	/* referral chain to the closest node that answered (for find_node of
	 * an existing node: the target itself); 1 = it was in our table */
	unsigned int hops_closest;
	const struct dht_node_info *nodes; /* k closest nodes that answered, closest first */
	size_t nnodes;
	const struct sockaddr_storage *peers; /* get_peers/announce: unique peers found */
	size_t npeers;
	const struct dht_wk *wks; /* get_peers: "wk" values found, one per peer address */
	size_t nwks;
	unsigned int stored; /* announce/put: nodes that acknowledged the store */
	/* dht_put_signed with DHT_PUT_REFRESH: nodes among the k closest that
	 * said they already hold the item's seq or a newer one (not stored to) */
	unsigned int held;
	/* get / put: the item */
	const uint8_t *value; /* bencoded v */
	size_t value_len;
	int64_t seq; /* mutable: sequence number */
	int mutable_item;
	const uint8_t *pk;  /* mutable: key (32) */
	const uint8_t *sig; /* mutable: verified signature (64) */
	const uint8_t *salt;
	size_t salt_len;
	uint32_t rtt_ms; /* ping */
};

/* Results are valid only during the callback. */
typedef void (*dht_done_fn)(void *arg, const struct dht_result *res);

/* Each start function returns 0 (callback will be called exactly once,
 * possibly before it returns if there is nothing to ask), -ENOSPC (too many
 * operations), -EINVAL or -ENOMEM. */
int dht_ping(struct dht *dht, const struct sockaddr *addr, socklen_t len, uint64_t now_ms,
	     dht_done_fn cb, void *arg);
int dht_find_node(struct dht *dht, const uint8_t id[DHT_ID_LEN], uint64_t now_ms, dht_done_fn cb,
		  void *arg);
int dht_get_peers(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint64_t now_ms, dht_done_fn cb,
		  void *arg);
/* get_peers then announce_peer to the k closest; implied_port sends
 * implied_port=1 so the receiver uses our source port. */
int dht_announce(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint16_t port, int implied_port,
		 uint64_t now_ms, dht_done_fn cb, void *arg);
/* The same with wk (DHT_WK_LEN bytes, copied; NULL: none) sent as the
 * "wk" argument of every announce_peer. */
int dht_announce_wk(struct dht *dht, const uint8_t ih[DHT_ID_LEN], uint16_t port,
		    int implied_port, const uint8_t *wk, uint64_t now_ms, dht_done_fn cb,
		    void *arg);
/* announce_peer for each of the nih infohashes (at most
 * DHT_ANNOUNCE_TO_MAX) to each of the given nodes (their tokens, from an
 * earlier get_peers result, are used; a node without one is skipped),
 * without a lookup: a batch of infohashes that fall near the same nodes
 * costs one lookup (content/announce.c). res->stored counts the
 * acknowledgements; status 0, -EHOSTUNREACH (no node with a token) or
 * -ETIMEDOUT (none answered). */
#define DHT_ANNOUNCE_TO_MAX 16
int dht_announce_to(struct dht *dht, const uint8_t (*ihs)[DHT_ID_LEN], size_t nih, uint16_t port,
		    int implied_port, const struct dht_node_info *nodes, size_t nnodes,
		    uint64_t now_ms, dht_done_fn cb, void *arg);
/* BEP 44 get. For a mutable item pass pk (32) and salt; target is then
 * computed (pass target NULL). For immutable pass target, pk NULL. */
int dht_get(struct dht *dht, const uint8_t *target, const uint8_t *pk, const uint8_t *salt,
	    size_t salt_len, uint64_t now_ms, dht_done_fn cb, void *arg);
/* A mutable get (pk, salt) that also calls first(arg, res) once, as soon
 * as the first valid item is known (res->status 0, value, seq, sig set;
 * our own storage counts), while the lookup goes on; cb(arg, res) comes at
 * the end as for dht_get, with the highest seq found. stop: the lookup
 * ends right after first (cb follows with the same item, before the next
 * packet or timer), which frees its slot of max_lookups at once. first is
 * not called when no valid item turns up. Neither may call back into the
 * DHT. For a caller that acts on the first answer and revalidates with the
 * last (a silent node costs the lookup two query timeouts: docs/DHT.md). */
int dht_get_first(struct dht *dht, const uint8_t *pk, const uint8_t *salt, size_t salt_len,
		  int stop, uint64_t now_ms, dht_done_fn first, dht_done_fn cb, void *arg);
/* Put an immutable item: value is the raw string (encoded as a bencode
 * string, at most DHT_MAX_VALUE bytes once encoded). */
int dht_put_immutable(struct dht *dht, const uint8_t *value, size_t len, uint64_t now_ms,
		      dht_done_fn cb, void *arg);
/* Put a mutable item signed with opts.sk: value as above. seq = max(seen + 1,
 * last put + 1); with cas, the put carries cas = the seq seen on the network. */
int dht_put_mutable(struct dht *dht, const uint8_t *value, size_t len, const uint8_t *salt,
		    size_t salt_len, int cas, uint64_t now_ms, dht_done_fn cb, void *arg);

/* A mutable item signed elsewhere (BEP 44 lets anyone store it again):
 * v is the bencoded value, as it is signed. */
struct dht_item_in {
	const uint8_t *pk;  /* 32 */
	const uint8_t *sig; /* 64 */
	const uint8_t *salt;
	size_t salt_len;
	int64_t seq;
	const uint8_t *v; /* bencoded, at most DHT_MAX_VALUE bytes */
	size_t vlen;
};
enum dht_put_flags {
	/* each put carries cas = the seq that node answered in the lookup
	 * (none when it held nothing): BEP 44's compare-and-swap */
	DHT_PUT_CAS = 1U << 0,
	/* keeping an item alive: store only at the k closest nodes that do
	 * not already hold this seq or a newer one (their answer to the
	 * lookup's get, which carries seq, says so); res->held counts the
	 * others. With all k holding it nothing is sent. */
	DHT_PUT_REFRESH = 1U << 1,
};
/* Put a signed mutable item as is (its seq and signature are kept). The
 * signature is checked first: -EBADMSG. Also -EINVAL (no pk/sig/v, salt
 * over DHT_MAX_SALT, value too long), -ENOSPC, -ENOMEM. */
int dht_put_signed(struct dht *dht, const struct dht_item_in *it, unsigned int flags,
		   uint64_t now_ms, dht_done_fn cb, void *arg);
/* A mutable get whose queries carry seq (BEP 44): a node holding nothing
 * newer than seq answers without the value, so a poll for a change costs
 * no value bytes. The result is -ENOENT unless an item with a higher seq
 * was found (our own storage included). */
int dht_get_since(struct dht *dht, const uint8_t *pk, const uint8_t *salt, size_t salt_len,
		  int64_t seq, uint64_t now_ms, dht_done_fn cb, void *arg);

/* ---- statistics ---- */
enum dht_stat_q {
	DHT_Q_PING,
	DHT_Q_FIND_NODE,
	DHT_Q_GET_PEERS,
	DHT_Q_ANNOUNCE,
	DHT_Q_GET,
	DHT_Q_PUT,
	DHT_Q_OTHER,
	DHT_Q_COUNT
};

struct dht_stats {
	uint8_t id[DHT_ID_LEN];
	unsigned int buckets4, buckets6;
	uint8_t bucket_nodes4[160]; /* nodes per bucket index (IPv4) */
	uint8_t bucket_nodes6[160];
	unsigned int nodes4, nodes6;
	unsigned int good4, good6; /* answered us, no unanswered query since */
	unsigned int infohashes, peers, items;
	uint64_t store_bytes; /* what the stores hold (dht_store_bytes) */
	unsigned int lookups;
	uint64_t queries_in[DHT_Q_COUNT];
	uint64_t queries_out[DHT_Q_COUNT];
	uint64_t replies_in, errors_in,
	    errors_out[10]; /* errors_out by code: 201..207, 301, 302, other */
	uint64_t dropped_malformed, dropped_budget;
	/* of dropped_budget: overruns by queries that prove nothing about
	 * their source (never reported to on_abuse) */
	uint64_t budget_unproven;
	uint64_t abuse_reports; /* on_abuse calls */
	uint64_t timeouts; /* queries unanswered after the retry */
	uint64_t retries;  /* queries resent after a first timeout */
	unsigned int read_only; /* 1: BEP 43 read-only now (dht_set_read_only) */
	uint64_t read_only_switches; /* times read-only was turned on or off */
	/* Table entries held back (left out of answers, pinged, dropped only
	 * when the pings fail) because a query with ro=1 came from their id
	 * and address; the name is from when they were dropped at once. */
	uint64_t ro_forgotten;
};

void dht_get_stats(const struct dht *dht, struct dht_stats *st);

/* What the node stores for others, one entry per infohash (its peers) or
 * BEP 44 item, for GET /v1/dht/store: ages tell whether anything outlives
 * its lifetime (30 min for peers, 2 h for items, unless stored again). */
struct dht_stored {
	uint8_t key[DHT_ID_LEN]; /* the infohash or the item's target */
	int item;		 /* 1: a BEP 44 item; 0: peers of an infohash */
	unsigned int peers;	 /* infohash: peers stored */
	int mut;		 /* item: mutable (k, seq, salt set) */
	uint8_t k[DHT_PK_LEN];
	int64_t seq;
	uint8_t salt[DHT_MAX_SALT];
	size_t salt_len, vlen;
	uint64_t age_ms;  /* since stored or refreshed (the stalest peer) */
	uint64_t left_ms; /* until it expires (the last peer to go) */
};
/* Up to max entries into out (infohashes first); returns how many the
 * store holds in all (more than max: the list is cut). */
unsigned int dht_store_list(const struct dht *dht, uint64_t now, struct dht_stored *out,
			    unsigned int max);
extern const char *const dht_stat_q_names[DHT_Q_COUNT];

/* ---- persistence (blobs are bencoded; importers validate everything) ---- */
/* Export the routing table (good and questionable nodes) into a malloc'd
 * blob. Returns 0 or -ENOMEM. */
int dht_export_nodes(const struct dht *dht, uint8_t **blob, size_t *len);
/* Import: every node is pinged (not trusted) and enters the table when it
 * answers. Returns the number of nodes accepted, or -EINVAL. */
int dht_import_nodes(struct dht *dht, const uint8_t *blob, size_t len, uint64_t now_ms);
/* Stored peers and items with their remaining lifetime, and the wall
 * clock (seconds) at export. */
int dht_export_storage(const struct dht *dht, uint64_t now_ms, uint64_t wall_s, uint8_t **blob,
		       size_t *len);
/* Items are re-verified (targets recomputed, signatures checked), caps
 * apply; the time since the export (wall_s less the blob's) is taken off
 * every lifetime, and what it used up is dropped. Returns the number of
 * entries accepted or -EINVAL. */
int dht_import_storage(struct dht *dht, const uint8_t *blob, size_t len, uint64_t now_ms,
		       uint64_t wall_s);

/* ---- control API wrapper (userspace/dht/dht_ctl.c) ----
 * One thread owns a struct dht. Control handlers never touch it directly:
 * they hand a function to the owner through opts.run (weftd: worker 0's
 * command queue, waited for with a deadline) and then wait, on a mutex and
 * condition variable of their own that the owner only takes when an
 * operation completes, for the operation's callback. Without opts.run
 * (tests that drive a dht from one thread of their own) the handlers take
 * dht_svc_lock, which that thread must hold around dht_input/dht_periodic.
 * Times passed to the DHT come from util_now_ms() on both sides.
 */
struct dht_svc;
struct ctl;

typedef void (*dht_svc_fn)(struct dht *dht, void *arg, uint64_t now_ms);
struct dht_svc_opts {
	unsigned int timeout_ms; /* wait per request, default 35000 (> lookup timeout) */
	/* Run fn(dht, fnarg, now) on the owner thread and return once it ran:
	 * 0, or -errno when it did not run (and never will). NULL: lock mode. */
	int (*run)(void *arg, dht_svc_fn fn, void *fnarg);
	void *run_arg;
	/* Lock mode only: called (lock held) after a handler started an
	 * operation, so the owner can recompute its next dht_periodic
	 * deadline; may be NULL. */
	void (*kick)(void *arg);
	void *kick_arg;
};

/* dht stays owned by the caller and must outlive the svc. Returns 0,
 * -EINVAL or -ENOMEM. */
int dht_svc_new(struct dht_svc **out, struct dht *dht, const struct dht_svc_opts *opts);
void dht_svc_free(struct dht_svc *svc);
void dht_svc_lock(struct dht_svc *svc);
void dht_svc_unlock(struct dht_svc *svc);
/* Register GET /v1/dht/status and POST /v1/dht/{ping,find-node,get-peers,
 * announce,put,get} on ctl (before ctl_start). Returns 0 or ctl_route's error. */
int dht_svc_register(struct dht_svc *svc, struct ctl *ctl);

/* ---- helpers exposed for tests and other modules ---- */
/* BEP 44 signing buffer: "4:salt<n>:<salt>3:seqi<seq>e1:v<v>" (salt part only
 * when salt_len > 0). Returns the length or -ENOBUFS. */
int dht_bep44_sigbuf(uint8_t *out, size_t cap, const uint8_t *salt, size_t salt_len, int64_t seq,
		     const uint8_t *v, size_t vlen);
/* target = SHA1(pk || salt) for mutable, SHA1(v) for immutable (bencoded v). */
void dht_bep44_target_mutable(uint8_t out[DHT_ID_LEN], const uint8_t pk[DHT_PK_LEN],
			      const uint8_t *salt, size_t salt_len);
void dht_bep44_target_immutable(uint8_t out[DHT_ID_LEN], const uint8_t *v, size_t vlen);
/* Verify a BEP 44 signature. Returns 0 or -EBADMSG. */
int dht_bep44_verify(const uint8_t pk[DHT_PK_LEN], const uint8_t sig[DHT_SIG_LEN],
		     const uint8_t *salt, size_t salt_len, int64_t seq, const uint8_t *v,
		     size_t vlen);
/* Sign with a libsodium secret key (seed || pk). Returns 0 or -EINVAL. */
int dht_bep44_sign(uint8_t sig[DHT_SIG_LEN], const uint8_t sk[DHT_SK_LEN], const uint8_t *salt,
		   size_t salt_len, int64_t seq, const uint8_t *v, size_t vlen);
/* Sign with a 64-byte expanded key (SHA-512(seed) clamped, the form BEP 44's
 * vectors and libtorrent use) and its public key. Returns 0 or -EINVAL. */
int dht_bep44_sign_expanded(uint8_t sig[DHT_SIG_LEN], const uint8_t esk[64],
			    const uint8_t pk[DHT_PK_LEN], const uint8_t *salt, size_t salt_len,
			    int64_t seq, const uint8_t *v, size_t vlen);

/* BEP 42: make an id for ip (4 or 16 bytes) with random byte r and random
 * tail; verify an id against ip. Local/private addresses always verify. */
void dht_bep42_make_id(uint8_t id[DHT_ID_LEN], const uint8_t *ip, size_t iplen, uint8_t r,
		       const uint8_t tail[DHT_ID_LEN]);
int dht_bep42_check(const uint8_t id[DHT_ID_LEN], const uint8_t *ip, size_t iplen);
int dht_bep42_is_local(const uint8_t *ip, size_t iplen);
uint32_t dht_crc32c(const uint8_t *buf, size_t len);

#endif
