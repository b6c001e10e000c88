/* SPDX-License-Identifier: MIT */
/*
 * Connectivity: how a node is found and reached by its key alone.
 *
 *  - Node records (conn_record_*): the canonical bencoded value a node
 *    publishes as a BEP 44 mutable item (key = node key, salt "weft:node"):
 *    reachable addresses, relays where it holds reservations, capability
 *    flags, a timestamp. Codec without I/O, strict parser (docs/PROTOCOL.md,
 *    "Node records"; fuzzed by tests/fuzz/fuzz_node_record.c).
 *  - Address discovery (conn_votes_*): votes from peers on how they see us
 *    (QUIC "observed address" streams and the `ip` field of KRPC replies);
 *    distinct peers decide, one cannot move it; NAT classification.
 *  - STUN (conn_stun_*): RFC 8489 Binding requests answered on the QUIC port.
 *  - The node glue (conn_node_*): publishes the record, resolves keys with
 *    a bounded TTL cache, serves /v1/node/resolve.
 * Design and limits: docs/CONNECTIVITY.md.
 */
#ifndef WEFT_CONN_H
#define WEFT_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/io.h"

/* ------------------------------------------------------------ records */

#define CONN_SALT "weft:node"	    /* BEP 44 salt of node records */
#define CONN_REC_VERSION 1	    /* "v" of the records this build writes */
#define CONN_REC_MAX_ADDRS 8	    /* addresses in one record */
#define CONN_REC_MAX_RELAYS 4	    /* relays in one record */
#define CONN_REC_MAX_ANCHORS 4	    /* mailbox anchors in one record ("m", issue 34) */
#define CONN_REC_MAX_LEN 1000	    /* BEP 44's limit on the bencoded value */
#define CONN_KEY_LEN 32		    /* Ed25519 node key */

/* Capability flags ("c"). Unknown bits are kept by the parser. */
enum conn_caps {
	CONN_CAP_RELAY = 1U << 0,   /* offers relaying (issue 14, relay part) */
	CONN_CAP_SEED = 1U << 1,    /* serves content */
	CONN_CAP_GATEWAY = 1U << 2, /* runs a service gateway */
	CONN_CAP_MAILBOX = 1U << 3, /* holds messages for offline peers (docs/MAILBOX.md) */
};

struct conn_relay {
	uint8_t key[CONN_KEY_LEN]; /* the relay's node key */
	struct io_addr addr;	   /* where the reservation is held */
};

struct conn_record {
	uint32_t version;  /* CONN_REC_VERSION */
	uint32_t caps;	   /* enum conn_caps */
	uint64_t ts;	   /* seconds since the epoch when written */
	unsigned int naddrs;
	struct io_addr addrs[CONN_REC_MAX_ADDRS]; /* QUIC addresses, port set */
	unsigned int nrelays;
	struct conn_relay relays[CONN_REC_MAX_RELAYS];
	/* Mailbox anchors: where others leave messages for this node (key
	 * "m", same form as "r"; absent in older records). */
	unsigned int nanchors;
	struct conn_relay anchors[CONN_REC_MAX_ANCHORS];
};

/*
 * Encode rec canonically into out (cap bytes; CONN_REC_MAX_LEN is always
 * enough). Returns the length, or -EINVAL (version 0, too many entries, an
 * address that is neither IPv4 nor IPv6 or has port 0), -ENOBUFS.
 */
int conn_record_encode(const struct conn_record *rec, uint8_t *out, size_t cap);
/*
 * Parse a record: the exact canonical encoding only (sorted keys, no
 * trailing bytes, compact addresses of 6 or 18 bytes with a non-zero port,
 * keys of 32 bytes, at most CONN_REC_MAX_* entries, version >= 1). Keys it
 * does not know are skipped (later minor additions). Returns 0, -EINVAL
 * (malformed), -EPROTONOSUPPORT (version it cannot read: > CONN_REC_VERSION).
 */
int conn_record_parse(const uint8_t *buf, size_t len, struct conn_record *rec);

/* 1 if a is an address others can reach: not unspecified, loopback,
 * link-local, private (RFC 1918, RFC 6598 shared, IPv6 ULA), multicast
 * or reserved. Documentation ranges count as public (tests use them). */
int conn_addr_public(const struct io_addr *a);

/* ------------------------------------------------------------ votes */

#define CONN_VOTE_SLOTS 32	  /* voters remembered (oldest replaced) */
#define CONN_VOTE_QUORUM 2	  /* distinct voters needed to decide */
#define CONN_VOTE_TTL_MS 1800000ULL /* a vote counts for 30 min */

enum conn_vote_src {
	CONN_VOTE_QUIC = 1, /* a QUIC peer's observed-address message */
	CONN_VOTE_KRPC = 2, /* the `ip` field of a KRPC reply (BEP 42) */
	CONN_VOTE_STUN = 3, /* reserved: answers to our own STUN requests */
	/* A QUIC observed-address message from a relay holding a reservation
	 * for us (authenticated by the handshake, chosen by us): when no
	 * other voter disagrees it decides alone, so a NATed node whose only
	 * contact is its relay still learns its address (CONN_NAT_BEHIND). */
	CONN_VOTE_RELAY = 4,
};

enum conn_nat {
	CONN_NAT_UNKNOWN = 0, /* fewer than two distinct voters (and no lone relay vote) */
	CONN_NAT_NONE,	      /* the reflexive address is one of ours */
	CONN_NAT_EIM,	      /* endpoint-independent mapping: one port for all peers */
	CONN_NAT_ADM,	      /* address/port-dependent mapping: ports differ per peer */
	CONN_NAT_BEHIND,      /* behind a NAT, mapping not classified: the address
			       * was decided by our relay's vote alone */
};
const char *conn_nat_name(enum conn_nat n);

struct conn_votes; /* bounded table; not thread-safe (the glue locks it) */

/* A network whose hosts may vote on our reflexive address although its
 * range is not public (node.vote_networks: a lab on the benchmarking
 * range, an ISP's CGN range). At most CONN_VOTE_NETS_MAX. */
#define CONN_VOTE_NETS_MAX 4u
struct conn_net {
	struct io_addr addr; /* family and address; port unused */
	uint8_t bits;	     /* prefix length */
};

int conn_votes_new(struct conn_votes **out);
void conn_votes_free(struct conn_votes *v);
/*
 * One observation: the peer at voter says it saw us at seen (address and
 * port), for our socket bound to local_port. A voter is its /24 (IPv4) or
 * /48 (IPv6): a later vote of the same prefix and source replaces the
 * earlier one, so one peer (or one network) is one vote. Votes from
 * non-public voters or about non-public addresses are ignored. Returns 1
 * if the decided reflexive addresses changed, 0 otherwise, -EINVAL.
 */
int conn_votes_add(struct conn_votes *v, enum conn_vote_src src, const struct io_addr *voter,
		   const struct io_addr *seen, uint16_t local_port, uint64_t now_ms);
/* Live QUIC votes of relay's network (its /24 or /48) become
 * CONN_VOTE_RELAY votes: the relay now holds a reservation for us. */
void conn_votes_mark_relay(struct conn_votes *v, const struct io_addr *relay);
/* Addresses the node owns (interfaces): a reflexive address among them
 * means no NAT. At most CONN_REC_MAX_ADDRS are kept. */
void conn_votes_set_local(struct conn_votes *v, const struct io_addr *addrs, unsigned int n);
/* Voters from nets (at most CONN_VOTE_NETS_MAX) count although their
 * addresses are not public; the seen address must still be public. */
void conn_votes_set_voter_nets(struct conn_votes *v, const struct conn_net *nets, unsigned int n);
/* Whether a is inside net (same family, first bits bits equal). */
int conn_net_contains(const struct conn_net *net, const struct io_addr *a);

struct conn_reflexive {
	struct io_addr addr; /* decided address; port: the mapped port for the
				QUIC socket when all its voters agree, else 0 */
	unsigned int voters; /* distinct voters for this address */
};
struct conn_vote_state {
	unsigned int nrefl;
	struct conn_reflexive refl[2]; /* at most one IPv4 and one IPv6 */
	enum conn_nat nat;
	unsigned int voters; /* live votes in the table */
};
/* The decision at now_ms for the socket on quic_port: per family, the
 * address with the most distinct voters if it has at least
 * CONN_VOTE_QUORUM and strictly more than any other; else the address of
 * a lone CONN_VOTE_RELAY vote when no other address has a vote. */
void conn_votes_state(struct conn_votes *v, uint16_t quic_port, uint64_t now_ms,
		      struct conn_vote_state *st);

/* ------------------------------------------------------------ observed address message */

/* Payload of a QUIC observed-address stream (type 0x04, docs/PROTOCOL.md):
 * family (1: 4 or 6) | port (2, big endian) | address (4 or 16). */
#define CONN_OBS_MAX 19
int conn_obs_encode(const struct io_addr *a, uint8_t *out, size_t cap);
int conn_obs_parse(const uint8_t *buf, size_t len, struct io_addr *a);

/* ------------------------------------------------------------ STUN */

#define CONN_STUN_COOKIE 0x2112A442U
#define CONN_STUN_MAX_REPLY 64

/* 1 if buf looks like a STUN message (top two bits 00, magic cookie at
 * offset 4, length a multiple of 4 matching len). Never reads past len. */
int conn_stun_is(const uint8_t *buf, size_t len);
/* The FINGERPRINT value (RFC 8489 14.7: CRC-32 XOR 0x5354554e) of the
 * message bytes buf[0..len), the header's length already covering the
 * FINGERPRINT attribute. */
uint32_t conn_stun_fingerprint(const uint8_t *buf, size_t len);
/*
 * Answer a Binding request from `from`: a Binding success response with
 * XOR-MAPPED-ADDRESS (and FINGERPRINT when the request carried one) into
 * out. Attributes are walked with every length checked; unknown
 * comprehension-required attributes get a 420 error response listing them
 * (RFC 8489 6.3.1). Returns the reply length, 0 when nothing must be
 * answered (a response or indication, or not a Binding request),
 * -EINVAL (malformed: dropped).
 */
int conn_stun_answer(const uint8_t *buf, size_t len, const struct io_addr *from, uint8_t *out,
		     size_t cap);
/* Build a Binding request with transaction id tid (12 bytes) and a
 * FINGERPRINT (tests). Returns the length or -ENOBUFS. */
int conn_stun_request(const uint8_t tid[12], uint8_t *out, size_t cap);
/* The same with one attribute of type type (0: none) and value val (vlen
 * bytes, padded to 4) before the FINGERPRINT (relay circuit binds,
 * WEFT-CIRCUIT). Returns the length, -EINVAL, -ENOBUFS. */
int conn_stun_request_attr(const uint8_t tid[12], uint16_t type, const uint8_t *val, size_t vlen,
			   uint8_t *out, size_t cap);
/* Parse a Binding success response's XOR-MAPPED-ADDRESS (tests).
 * Returns 0, -EINVAL. */
int conn_stun_parse_response(const uint8_t *buf, size_t len, const uint8_t tid[12],
			     struct io_addr *mapped);

/* ------------------------------------------------------------ node glue */

#define CONN_DEF_CACHE_MAX 256	      /* resolved records cached */
#define CONN_DEF_CACHE_TTL_S 300      /* a cached record is used this long */
#define CONN_NEG_TTL_S 30	      /* a not_found answer is remembered this long */
#define CONN_MAX_REVALIDATE 8 /* resolutions whose lookup goes on after its first record */
#define CONN_DEF_RESOLVE_MS 10000     /* deadline of one resolution (DHT get) */
/* Relay candidates remembered from records seen: a node without relay.use
 * tries them when it wants a relay; 16 is four times what it can hold
 * (RELAY_MAX_USE) so that dead ones can be skipped, and 16 x ~70 bytes
 * is nothing. An entry lasts an hour after its record was last seen (a
 * record itself lives 2 h in the DHT, republished every 30 min). */
#define CONN_DEF_SEEN_RELAYS 16
#define CONN_SEEN_RELAY_TTL_S 3600
#define CONN_REPUBLISH_S 1800	      /* republish every 30 min (BEP 44 items live 2 h) */
#define CONN_CHECK_MS 5000	      /* addresses re-checked this often */
#define CONN_NOROUTE_RETRY_MS 1000    /* a put that found no DHT node at all: again after 1 s */
#define CONN_PUT_FULL 8		      /* a put stored on fewer nodes is retried (5 s, doubling) */
#define CONN_MIN_REPUBLISH_MS 10000   /* at most one change-driven put per 10 s */
#define CONN_GAIN_REPUBLISH_MS 1000   /* ... but a record gaining its first address or relay: 1 s */

struct engine;
struct ctl;
struct identity;
struct dhtnode;
struct quic_node;
struct json_t;
struct conn_node;

struct conn_node_opts {
	struct engine *eng;	   /* required: timers run on worker 0 */
	struct dhtnode *dht;	   /* required */
	struct ctl *ctl;	   /* optional: /v1/node/... routes */
	const struct identity *id; /* required */
	uint16_t quic_port;
	uint32_t caps;				   /* enum conn_caps advertised */
	struct io_addr announce[CONN_REC_MAX_ADDRS]; /* operator-listed addresses (node.announce_addrs) */
	unsigned int nannounce;
	unsigned int cache_max;	  /* 0: CONN_DEF_CACHE_MAX */
	unsigned int cache_ttl_s; /* 0: CONN_DEF_CACHE_TTL_S */
	unsigned int resolve_ms;  /* 0: CONN_DEF_RESOLVE_MS */
	unsigned int seen_relays_max; /* 0: CONN_DEF_SEEN_RELAYS (relay.seen_max) */
	/* Interface addresses of the node (uring/xdp: getifaddrs); public
	 * ones are published, all of them tell "no NAT" apart. */
	struct io_addr local[CONN_REC_MAX_ADDRS];
	unsigned int nlocal;
	/* Voters from these networks count although not public. */
	struct conn_net voter_nets[CONN_VOTE_NETS_MAX];
	unsigned int nvoter_nets;
};

int conn_node_new(struct conn_node **out, const struct conn_node_opts *opts);
/* After the engine started: arm the publisher on worker 0 (first put now). */
int conn_node_start(struct conn_node *cn);
void conn_node_free(struct conn_node *cn);

/* Observations, from any thread (QUIC workers, DHT owner). */
void conn_node_observed(struct conn_node *cn, enum conn_vote_src src, const struct io_addr *voter,
			const struct io_addr *seen, uint16_t local_port);

/*
 * Resolve key to its record: from the cache, else a DHT get (mutable,
 * salt "weft:node") verified and parsed, within the resolve deadline.
 * Blocks: control threads only. Returns 0, -ENOENT (no record: not_found,
 * remembered CONN_NEG_TTL_S), -ENETUNREACH (our routing table is empty:
 * no node to ask, nothing remembered), -EBADMSG (a record that does not
 * parse), -ETIMEDOUT, -EINVAL. *cached says whether the cache answered.
 */
int conn_node_resolve(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
		      struct conn_record *rec, int *cached);
/* The same, waiting at most timeout_ms (0 or more than resolve_ms:
 * resolve_ms) for the DHT. */
int conn_node_resolve_within(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
			     struct conn_record *rec, int *cached, unsigned int timeout_ms);
/*
 * conn_node_resolve_within with flags: CONN_RESOLVE_FRESH skips the cache
 * and waits for the lookup's end (the record with the highest seq any
 * node holds, not the first answer: a node may still hold an older one),
 * or, when the deadline comes first, takes the first valid answer. The
 * result replaces the cached record. What a failed dial refetches with.
 */
#define CONN_RESOLVE_FRESH 1u
/* CONN_RESOLVE_PAST_MISS: a cached miss is no answer, the DHT is asked
 * (its first valid answer, as when nothing is cached); a cached record
 * still answers. What a dial by key starts with: a miss cached before the
 * peer's record was put (both just started) would fail it for
 * CONN_NEG_TTL_S. Counted in misses_rechecked. */
#define CONN_RESOLVE_PAST_MISS 2u
int conn_node_resolve_opts(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN],
			   struct conn_record *rec, int *cached, unsigned int timeout_ms,
			   unsigned int flags);
/* The relays holding a reservation for this node (at most
 * CONN_REC_MAX_RELAYS), listed in its record from the next check on (a
 * change republishes within CONN_MIN_REPUBLISH_MS). Any thread. */
void conn_node_set_relays(struct conn_node *cn, const struct conn_relay *r, unsigned int n);
/* The mailbox anchors this node lists in its record (at most
 * CONN_REC_MAX_ANCHORS; docs/MAILBOX.md "Anchors"), republished like the
 * relays. Any thread. */
void conn_node_set_anchors(struct conn_node *cn, const struct conn_relay *a, unsigned int n);
/* The relays holding a reservation for this node now (conn_node_set_relays):
 * copies at most max, returns how many. Any thread. */
unsigned int conn_node_relays(struct conn_node *cn, struct conn_relay *out, unsigned int max);
/* 1 when the node looks unreachable from outside: the NAT classification
 * found a NAT, or it is undecided and the node has neither a public
 * interface address nor node.announce_addrs. Any thread. */
int conn_node_behind_nat(struct conn_node *cn);
/* 1 only when the votes found a NAT (endpoint-independent or dependent
 * mapping) and the operator listed no node.announce_addrs; 0 when there is
 * none or it is undecided. What the DHT's read-only switch goes by: an
 * undecided node (no votes yet) keeps answering. Any thread. */
int conn_node_nat_found(struct conn_node *cn);
/* Hole punching candidates (include/weft/path.h): global IPv6, then
 * operator-listed, public interface, voted reflexive and last QUIC-observed
 * IPv4 addresses, then private interface addresses (same LAN), all with
 * the QUIC port unless a mapped port is known; never loopback or
 * link-local; at most max. *nat: the NAT class (enum conn_nat). Any
 * thread. */
unsigned int conn_node_path_cands(struct conn_node *cn, struct io_addr *out, unsigned int max,
				  uint8_t *nat);
/* The port our QUIC socket is mapped to on the reflexive address of
 * family (AF_INET, AF_INET6) when every QUIC voter agrees on it (no NAT,
 * or an endpoint-independent mapping), else 0. What a service announce
 * gives the DHT: the announce's source address is the NAT's, and the
 * QUIC port behind it is this one. Any thread. */
uint16_t conn_node_quic_mapped_port(struct conn_node *cn, int family);
/*
 * Relay candidates learned from the records this node resolved (the
 * relays a record lists, and a record's own key and first address when it
 * has CONN_CAP_RELAY): a bounded table (seen_relays_max entries, the
 * oldest replaced), each entry kept CONN_SEEN_RELAY_TTL_S after it was
 * last seen. Never this node's own key. Copies at most max into out, the
 * most recently seen first; returns how many. Any thread.
 */
unsigned int conn_node_seen_relays(struct conn_node *cn, struct conn_relay *out, unsigned int max);
/* Forget candidate key (its relay failed): it comes back only when a
 * record lists it again. Any thread. */
void conn_node_seen_relay_drop(struct conn_node *cn, const uint8_t key[CONN_KEY_LEN]);
/* Drop the cache (tests, `POST /v1/node/resolve {"fresh":true}`). */
void conn_node_cache_flush(struct conn_node *cn);

/* {"reflexive":[...],"nat":"...","record":{...},"published":...} for
 * /v1/status; new reference. */
struct json_t *conn_node_status_json(struct conn_node *cn);
/* A record as JSON (new reference). */
struct json_t *conn_record_json(const struct conn_record *rec);

#endif
