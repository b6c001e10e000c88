/* SPDX-License-Identifier: MIT */
/*
 * Service router: a registry of handlers (in-process functions and local
 * backends) and the abuse controls in front of them. I/O-free: every entry
 * point takes `now` (CLOCK_MONOTONIC nanoseconds, the clock of the XDP ban
 * map); the router never reads a clock, never touches a socket and never
 * sleeps. Not thread-safe: one router per engine worker, or a lock around
 * it.
 *
 * A call goes through svc_router_admit() (limits, ban state), then runs
 * (in-process handler, or the backend forwarder in svc_backend.h), then
 * svc_router_done() releases what admit reserved. svc_router_call() does
 * all three for in-process services and stops after admit for backends.
 *
 * Abuse controls (defaults in the SVC_DEFAULT_* macros below):
 *   per peer key, across all services: calls per minute (sliding-window
 *     counter, see docs/SERVICE.md), payload size, concurrent calls;
 *   per service, across all peers: the same three, as a ceiling for what a
 *     service (or the backend behind it) is asked to handle;
 *   per source address (IPv4 /32, IPv6 /64), across all keys: calls per
 *     minute, violation score;
 *   global: concurrent calls, tracked peers and addresses (LRU eviction).
 * Each rejection a peer causes adds points to its violation score and to
 * its address's, which decay linearly; at a threshold the ban callback
 * fires once with an expiry and calls from that key (or address) get
 * SVC_ERR_BANNED until then.
 */
#ifndef WEFT_SVC_ROUTER_H
#define WEFT_SVC_ROUTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/svc.h"
#include "weft/svc_msg.h"

/* ---- tunables (0 in any option = this default) ---- */
/* Per peer: 100 calls per minute, the figure: ample for an
 * interactive client, small enough that one key cannot monopolise a node. */
#define SVC_DEFAULT_PEER_CALLS_PER_MIN 100u
/* Per call payload: 1 MiB, the figure; bigger transfers are content
 * (chunked, hashed), not calls. */
#define SVC_DEFAULT_MAX_PAYLOAD (1024u * 1024u)
/* Per peer concurrent calls: 100, the figure; also bounds the
 * memory one peer can pin at 100 x 1 MiB. */
#define SVC_DEFAULT_PEER_CONCURRENT 100u
/* Per service, all peers together: 60000 calls per minute (1000/s) and
 * 1000 concurrent calls: a ceiling protecting a local backend; a busy
 * service raises them at registration. */
#define SVC_DEFAULT_SVC_CALLS_PER_MIN 60000u
#define SVC_DEFAULT_SVC_CONCURRENT 1000u
/* Global concurrent calls: 10000, i.e. 100 peers at their cap. */
#define SVC_DEFAULT_GLOBAL_CONCURRENT 10000u
/* Tracked peers: 65536 (224 bytes each: 14 MiB at most); past it the
 * least recently seen idle peer is forgotten. Must exceed the global
 * concurrency cap so an idle peer can always be evicted. */
#define SVC_DEFAULT_MAX_PEERS 65536u
/* Per source address (IPv4 /32, IPv6 /64, v4-mapped IPv6 as IPv4), all
 * keys together: new Ed25519 keys cost nothing, addresses do.
 * 1000 calls per minute: ten clients behind one NAT at their own cap. */
#define SVC_DEFAULT_ADDR_CALLS_PER_MIN 1000u
/* Per source address, all keys together: 1000 concurrent calls, ten
 * clients behind one NAT at their own cap; many fresh keys from one
 * address cannot hold more than that between them. */
#define SVC_DEFAULT_ADDR_CONCURRENT 1000u
/* An IPv6 host usually owns its whole /64: count it as one source. */
#define SVC_DEFAULT_ADDR_V6_PREFIX 64u
/* Tracked source addresses: 65536, same reasoning and size as peers. */
#define SVC_DEFAULT_MAX_ADDRS 65536u
/* Address ban threshold: 200 points, i.e. four keys' worth of violations
 * from one address; a single abusive key is banned (at 50) long before
 * its address is. */
#define SVC_DEFAULT_ADDR_BAN_THRESHOLD 200u
/* Registered services: 256; looked up by name through a hashed index. */
#define SVC_DEFAULT_MAX_SERVICES 256u
/* Violation scoring: points per rejection (see svc_router_violation()),
 * ban at 50 points, decay 1 point per second. A client that trips a limit
 * now and then never gets near 50; one that keeps hammering after
 * rate_limited answers (>1 violation/s) is banned within a minute. */
#define SVC_DEFAULT_BAN_THRESHOLD 50u
#define SVC_DEFAULT_DECAY_NS 1000000000ull
/* Ban duration: 10 minutes; long enough to make flooding pointless, short
 * enough that a misconfigured but honest client recovers by itself. */
#define SVC_DEFAULT_BAN_NS (600ull * 1000000000ull)

/* Limits; 0 in a field = the default for where it is used. */
struct svc_limits {
	uint32_t calls_per_min;
	uint32_t max_payload;
	uint32_t max_concurrent;
};

/* The calling peer: its key (from the QUIC TLS handshake) and address. */
struct svc_peer {
	uint8_t key[IDENTITY_PK_LEN];
	struct sockaddr_storage addr;
};

/*
 * Ban callback: called once per ban, when a peer key crosses its violation
 * threshold (prefixlen = 32 or 128: that host) or a source address crosses
 * the address threshold (prefixlen = 32, or the IPv6 prefix: that
 * network). key is the peer whose violation tipped it, addr its address
 * (port included, to be ignored), expires_ns the ban's end on the router's
 * clock (CLOCK_MONOTONIC ns, as struct wxdp_ban_val expects): ready for a
 * wxdp_ban4_key / wxdp_ban6_key with that prefix length.
 */
typedef void (*svc_ban_fn)(void *ctx, const uint8_t key[IDENTITY_PK_LEN],
			   const struct sockaddr_storage *addr, unsigned int prefixlen,
			   uint64_t expires_ns);

struct svc_router_opts {
	struct svc_limits peer;	     /* per peer key, across services */
	struct svc_limits svc;	     /* per service when its own limits are 0:
				      * SVC_DEFAULT_SVC_* and SVC_DEFAULT_MAX_PAYLOAD */
	uint32_t global_concurrent;  /* SVC_DEFAULT_GLOBAL_CONCURRENT */
	uint32_t max_peers;	     /* SVC_DEFAULT_MAX_PEERS */
	uint32_t max_services;	     /* SVC_DEFAULT_MAX_SERVICES */
	uint32_t addr_calls_per_min; /* SVC_DEFAULT_ADDR_CALLS_PER_MIN */
	uint32_t addr_concurrent;    /* SVC_DEFAULT_ADDR_CONCURRENT */
	uint32_t addr_v6_prefix;     /* SVC_DEFAULT_ADDR_V6_PREFIX (1..128) */
	uint32_t max_addrs;	     /* SVC_DEFAULT_MAX_ADDRS */
	uint32_t addr_ban_threshold; /* SVC_DEFAULT_ADDR_BAN_THRESHOLD points */
	uint32_t ban_threshold;	     /* SVC_DEFAULT_BAN_THRESHOLD points */
	uint64_t decay_ns;	     /* ns per decayed point, SVC_DEFAULT_DECAY_NS */
	uint64_t ban_ns;	     /* SVC_DEFAULT_BAN_NS */
	svc_ban_fn ban;		     /* optional */
	void *ban_ctx;
	uint64_t seed; /* peer table hash key; 0 = random */
};

/* A reply being built by a handler: a growable buffer bounded by cap. */
struct svc_reply {
	uint8_t *buf; /* malloc'd, owned by the reply; svc_reply_release() frees */
	size_t len;
	size_t cap;	 /* max payload the reply may hold (set by the router) */
	uint32_t status; /* application status, passed through to the caller */
	uint8_t err;	 /* enum svc_err of the call */
};

/* Append to a reply: 0, -EMSGSIZE (over cap) or -ENOMEM. */
int svc_reply_append(struct svc_reply *r, const void *p, size_t len);
/* Free the reply's buffer; NULL-safe. */
void svc_reply_release(struct svc_reply *r);

/* What a handler sees of a call (no peer address: handlers do not need it). */
struct svc_call_info {
	const char *service;
	size_t service_len;
	const char *method;
	size_t method_len;
	const uint8_t *payload;
	size_t payload_len;
	const uint8_t *peer_key; /* IDENTITY_PK_LEN bytes */
};

/*
 * In-process handler: fill reply (svc_reply_append, reply->status) and
 * return an enum svc_err (SVC_OK on success). Runs on the router's thread:
 * it must not block.
 */
typedef int (*svc_handler_fn)(void *ctx, const struct svc_call_info *call, struct svc_reply *reply);

enum svc_kind {
	SVC_KIND_INPROC = 1,  /* fn(ctx, ...) answers */
	SVC_KIND_BACKEND = 2, /* forwarded to backend (svc_backend.h) */
};

/* "tcp:IP:PORT" or "unix:/path" (path < 108 bytes). */
#define SVC_BACKEND_ADDR_MAX 120

struct svc_service_opts {
	const char *name; /* NUL-terminated, svc_name_valid() */
	enum svc_kind kind;
	svc_handler_fn fn; /* SVC_KIND_INPROC */
	void *ctx;
	const char *backend;	  /* SVC_KIND_BACKEND: address as above */
	struct svc_limits limits; /* per service; 0 fields = the router's opts.svc */
};

struct svc_router;

/* 0, -EINVAL (max_peers <= global_concurrent, or other bad option) or -ENOMEM. */
int svc_router_new(struct svc_router **out, const struct svc_router_opts *opts);
/* NULL-safe. Tickets still out are simply forgotten. */
void svc_router_free(struct svc_router *r);

/* Register a service. 0, -EINVAL, -EEXIST or -ENOSPC (table full). */
int svc_router_register(struct svc_router *r, const struct svc_service_opts *o);
/* Remove a service; calls in flight finish, their done() is harmless.
 * 0 or -ENOENT. */
int svc_router_unregister(struct svc_router *r, const char *name);
/* Register the built-in services `echo` and `mesh-stats`. 0 or as register. */
int svc_router_register_builtins(struct svc_router *r);

/* An admitted call. Caller storage; pass to svc_router_done() exactly once. */
struct svc_ticket {
	uint32_t peer_slot, peer_gen;
	uint32_t addr_slot, addr_gen; /* addr_slot UINT32_MAX: no address entry */
	uint32_t svc_slot, svc_gen;
	uint8_t kind;	      /* enum svc_kind of the service */
	uint8_t stream;	      /* admitted as a stream */
	uint32_t max_payload; /* effective payload cap for this call (streams: per frame) */
	char backend[SVC_BACKEND_ADDR_MAX]; /* SVC_KIND_BACKEND: where to forward */
	uint64_t t0;			    /* admitted at (the router's clock) */
};

/*
 * Admission of one call (stream = 0) or one stream (stream = 1) from peer
 * to service/method with a payload of payload_len bytes. Returns SVC_OK
 * (t filled in; call svc_router_done() when the call ends) or the enum
 * svc_err rejecting it (nothing to release), checked in this order:
 * overloaded (no room in the peer table), banned (key, then address),
 * bad_request (service name), not_found, too_large, overloaded (peer,
 * address, then service and global), rate_limited (peer, address, then service). A
 * rejection consumes no allowance.
 * Rejections the peer caused add to its score and may fire the ban
 * callback.
 */
int svc_router_admit(struct svc_router *r, const struct svc_peer *peer, const char *service,
		     size_t service_len, size_t payload_len, int stream, uint64_t now,
		     struct svc_ticket *t);

/*
 * A stream's data frame of len bytes: SVC_OK or SVC_ERR_TOO_LARGE (scored;
 * the caller ends the stream with that class).
 */
int svc_router_stream_data(struct svc_router *r, const struct svc_ticket *t, size_t len,
			   uint64_t now);

/* Release an admitted call and count its outcome (enum svc_err result). */
void svc_router_done(struct svc_router *r, const struct svc_ticket *t, int result, uint64_t now);

/*
 * Handle a decoded SVC_MSG_REQUEST: admission, then for in-process services
 * the handler, then done(). reply receives the answer (err, status,
 * payload; release it with svc_reply_release()). Returns 0 when reply is
 * final, 1 when the service is a backend: t holds the admitted call, the
 * caller forwards the payload to t->backend and calls svc_router_done()
 * afterwards. -EINVAL for a message that is not a REQUEST.
 */
int svc_router_call(struct svc_router *r, const struct svc_peer *peer, const struct svc_msg *req,
		    uint64_t now, struct svc_reply *reply, struct svc_ticket *t);

/*
 * Score a violation seen outside admission (e.g. a malformed message from
 * this peer: SVC_ERR_BAD_REQUEST). Points: bad_request 2, too_large 5,
 * not_found 1, rate_limited 1, overloaded (the peer's own cap) 1; other
 * classes 0. Returns 1 if this violation banned the peer, else 0.
 */
int svc_router_violation(struct svc_router *r, const struct svc_peer *peer, int err, uint64_t now);

/* Upper bounds (microseconds) of the served-call duration histogram
 * (weft_svc_served_duration_seconds): 100 us (an in-process echo) to 10 s
 * (a backend near its deadline). */
#define SVC_ROUTER_LAT_BUCKETS 12
#define SVC_ROUTER_LAT_BOUNDS_US                                                                   \
	{ 100, 250, 500, 1000, 2500, 5000, 10000, 25000, 100000, 500000, 2000000, 10000000 }

/* Aggregate counters (what mesh-stats reports). */
struct svc_router_stats {
	uint64_t admitted;		  /* calls and streams admitted */
	uint64_t results[SVC_ERR__COUNT]; /* outcomes, rejections included */
	uint64_t bans;			  /* ban callbacks fired */
	uint64_t peers_evicted;		  /* LRU evictions from the peer table */
	uint64_t addr_bans;		  /* of which address bans */
	uint32_t peers;			  /* tracked now */
	uint32_t addrs;			  /* source addresses tracked now */
	uint32_t inflight;		  /* admitted, not done */
	uint32_t services;		  /* registered */
	/* Calls and streams served (admitted to done) by duration: bucket i
	 * counts those up to SVC_ROUTER_LAT_BOUNDS_US[i], the last one the
	 * rest (not cumulative); the sum in microseconds. */
	uint64_t served_lat[SVC_ROUTER_LAT_BUCKETS + 1];
	uint64_t served_lat_sum_us;
};
void svc_router_get_stats(const struct svc_router *r, struct svc_router_stats *st);

/* mesh-stats JSON (aggregate only: no addresses, no keys) into out, NUL-
 * terminated. Returns its length or -ENOBUFS. */
int svc_router_stats_json(const struct svc_router *r, char *out, size_t cap);

/* 1 if the peer key, or the source address addr (may be NULL) falls in,
 * is currently banned by this router, else 0. */
int svc_router_peer_banned(struct svc_router *r, const uint8_t key[IDENTITY_PK_LEN],
			   const struct sockaddr_storage *addr, uint64_t now);

#endif
