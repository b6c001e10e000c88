/* SPDX-License-Identifier: MIT */
/*
 * QUIC on the packet engine: one quic_ep per engine worker, the engine
 * handler of the QUIC port, per-worker expiry timers, worker routing by
 * connection id, the application API (dial, streams, close) used by the
 * service fabric and content download, built-in stream types (echo, sink,
 * discard) and the control API (/v1/quic/...). See docs/QUIC.md.
 *
 * Threads: every connection belongs to one worker. The application API may
 * be called from any thread: calls are marshalled onto the owning worker
 * with engine_call() (called on that worker's own thread they run at once).
 * Every callback of struct quic_node_handler runs on the owning worker's
 * thread: it must not block, and may call the API again.
 *
 * Connections are named by a uint64_t handle (worker index in the low 8
 * bits, a node-wide serial above), never by pointer, so a handle used after
 * the connection closed is a clean -ENOTCONN / ignored call, not a
 * use-after-free.
 */
#ifndef WEFT_QUIC_NODE_H
#define WEFT_QUIC_NODE_H

#include <stddef.h>
#include <stdint.h>

#include "weft/io.h"
#include "weft/path.h"
#include "weft/quic.h"

struct engine;
struct ctl;
struct identity;
struct quic_node;

/* Built-in stream types (the first varint on a bidirectional stream names
 * its type, docs/PROTOCOL.md). 0x00-0x0f are reserved for these. */
#define QUIC_NODE_ST_ECHO 0x01 /* every byte echoed back; FIN answered with FIN */
#define QUIC_NODE_ST_SINK                                                                          \
	0x02			  /* bytes counted and hashed (BLAKE2b-256); at FIN the            \
				     reply is count (u64 BE) || hash (32 bytes), then FIN */
#define QUIC_NODE_ST_DISCARD 0x03 /* bytes counted only; at FIN the reply is count (u64 BE) */
/* Address discovery: after every handshake each side opens one stream of
 * this type carrying the address it sees the peer at (docs/PROTOCOL.md,
 * "Observed address"), then FIN; the acceptor answers with FIN. */
#define QUIC_NODE_ST_OBSERVED 0x04
/* Path coordination (hole punching, docs/PROTOCOL.md "Path coordination"):
 * opened by the dialler of a relayed connection. */
#define QUIC_NODE_ST_PATH 0x05
#define QUIC_NODE_ST_APP_MIN 0x10 /* first type free for modules (quic_node_register) */

/* Application close codes of weft connections (docs/PROTOCOL.md,
 * "Application close codes"). A connection that ran through a relay
 * circuit the relay ended (docs/CONNECTIVITY.md, "Relay") is closed by
 * each end that learns it (ENDED) with QUIC_NODE_APP_RELAY_ENDED | reason,
 * reason the ENDED reason (1 deleted, 2 lifetime, 3 idle, 4 byte_limit)
 * and the reason phrase "relay_circuit_ended: <reason>". Its handlers see
 * -ENOLINK (stream_closed, and the connected() of a dial not finished). */
#define QUIC_NODE_APP_RELAY_ENDED 0x52454c00ULL /* "REL\0" */
#define QUIC_NODE_APP_IS_RELAY_ENDED(code) (((code) & ~0xffULL) == QUIC_NODE_APP_RELAY_ENDED)

/* Defaults of struct quic_node_opts (0 selects them). */
#define QUIC_NODE_DEF_PORT 4433
/* quic_node_wbuf_new: the alignment it can give a byte of a write (O_DIRECT's) */
#define QUIC_NODE_WBUF_ALIGN 4096u
#define QUIC_NODE_DEF_MAX_QUEUED                                                                   \
	(64U << 20)		       /* bytes accepted by quic_node_write() and not              \
					   yet in a stream's send buffer, node-wide:               \
					   bounds memory held for slow peers */
#define QUIC_NODE_DEF_MAX_TYPES 16     /* registered stream types */
#define QUIC_NODE_PING_TIMEOUT_MS 5000 /* ping / connect wait in the control API */

struct quic_node_opts {
	struct engine *eng;	   /* required; created, not started */
	struct ctl *ctl;	   /* optional: routes and metrics are registered on it */
	const struct identity *id; /* required: the node key (copied into each endpoint) */
	uint16_t port;		   /* QUIC UDP port (one of the engine's); default 4433 */
	/* Per worker endpoint limits; 0 = quic.h defaults. weftd sets them
	 * from the [quic] configuration section. */
	unsigned int max_conns;
	unsigned int max_conns_per_addr;
	unsigned int max_streams; /* streams a peer may open at once, each kind (QUIC_DEF_MAX_STREAMS) */
	unsigned int retry_rate; /* new handshakes/s before Retry; QUIC_DEF_RETRY_RATE */
	unsigned int idle_timeout_ms;
	unsigned int handshake_timeout_ms;
	unsigned int keepalive_ms;
	/* Fair windows (docs/QUIC.md "Fair windows"): backlogged connections
	 * held to one rate while the uplink has a standing queue; at start
	 * (quic_node_fair_windows switches them later). */
	int fair_windows;
	/* 1-RTT AES-GCM packet protection (docs/QUIC.md "AES-GCM on wide
	 * vectors"); quic_node_new fails with -EOPNOTSUPP for a width this
	 * CPU lacks. Default QUIC_AEAD_AUTO. */
	enum quic_aead aead;
	size_t max_queued; /* default QUIC_NODE_DEF_MAX_QUEUED */
	uint64_t test_hold_credit; /* quic_opts.test_hold_credit (test builds) */
	/* A handshake completed with the peer at addr (either side): QUIC's
	 * address validation proved the peer owns it. On the worker thread;
	 * weftd hands it to the guard (guard_validated_add). May be NULL. */
	void (*on_validated)(void *arg, const struct sockaddr *addr, socklen_t len);
	void *validated_arg;
	/* A peer (at peer, authenticated by the handshake) told us the address
	 * it sees us at (seen) on our QUIC port (local_port). On the worker
	 * thread; weftd votes with it (conn_node_observed). May be NULL: the
	 * node still tells its peers what it sees. */
	void (*on_observed)(void *arg, const struct sockaddr *peer, socklen_t peerlen,
			    const struct io_addr *seen, uint16_t local_port);
	void *observed_arg;
	/* A datagram to the QUIC port whose first two bits are 00 (QUIC always
	 * sets the fixed bit 0x40): STUN. Return a reply length written to out
	 * (sent back to from), 0 for none, < 0 to drop (counted). On the worker
	 * thread. NULL: such datagrams go to QUIC, which drops them. */
	int (*on_stun)(void *arg, const uint8_t *buf, size_t len, const struct io_addr *from,
		       uint8_t *out, size_t cap);
	void *stun_arg;
	/* Dial by key: resolve a node key to its addresses (weftd: the node
	 * record in the DHT, conn_node_resolve). Blocks up to its own deadline;
	 * called by quic_node_resolve() on control threads only. Returns the
	 * count written (0: a record without addresses), -ENOENT (no record),
	 * or another -errno; *nrelays: relays the record lists. flags:
	 * QUIC_NODE_RESOLVE_FRESH asks past any cache for the latest record
	 * (a dial that failed on what the cache had), QUIC_NODE_RESOLVE_PAST_MISS
	 * past a cached miss only. NULL: a bare key is
	 * not a valid target. */
	int (*resolve)(void *arg, const uint8_t key[QUIC_KEY_LEN], struct sockaddr_storage *addrs,
		       unsigned int max, unsigned int *nrelays, unsigned int timeout_ms,
		       unsigned int flags);
	void *resolve_arg;
	/* Dial by key through a relay (weftd: relay_node_circuit on a relay
	 * the record lists, see quic_node_resolve). Asks for a circuit to
	 * key, binds our end and gives the address to dial (relay:PORT).
	 * Blocks, control threads only, at most timeout_ms (0: its own
	 * deadlines). Returns 0, -ECONNREFUSED (a relay refused: *status is
	 * its enum relay_status), -ETIMEDOUT, -EHOSTUNREACH, -errno.
	 * NULL: no relay fallback. */
	int (*relay)(void *arg, const uint8_t key[QUIC_KEY_LEN], struct sockaddr_storage *out,
		     unsigned int timeout_ms, unsigned int *status);
	void *relay_arg;
	/* Hole punching on relayed connections (docs/CONNECTIVITY.md "Direct
	 * paths"). punch_off: never start or answer it. path_cands: our
	 * candidate addresses (reflexive, interfaces; global IPv6 first) and
	 * NAT class (enum conn_nat) for an offer; on a worker thread; NULL:
	 * no candidates of our own (we still probe the peer's). */
	int punch_off;
	unsigned int (*path_cands)(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat);
	void *path_cands_arg;
	struct path_limits path; /* 0 fields: path.h defaults */
	/* Attempts per peer key per window, both roles (struct path_budget;
	 * 0: PATH_DEF_PEER_ATTEMPTS per PATH_DEF_PEER_WINDOW_S). */
	unsigned int punch_peer_attempts, punch_peer_window_s;
};

/* Events of one connection or stream type; all optional, all on the owning
 * worker's thread. conn is the handle; peer_key and data are borrowed. */
struct quic_node_handler {
	/* Handshake finished (err 0, peer_key set) or failed before it did
	 * (err -ETIMEDOUT, -EKEYREJECTED: key pinning mismatch, -EPROTO: bad
	 * certificate or ALPN, found here or by the peer (its TLS alert),
	 * -ECONNREFUSED: peer refused / limits, -ECONNRESET: stateless reset
	 * or another peer close); after a failure closed() follows. */
	void (*connected)(void *arg, uint64_t conn, int err, const uint8_t *peer_key);
	/* Result of quic_node_stream_open(): sid >= 0 or err < 0. */
	void (*stream_opened)(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err);
	/* Stream payload in order (after the type varint); fin on the last. */
	void (*stream_data)(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
			    int fin);
	/* Every byte queued by quic_node_write() on sid is in the stream's
	 * send buffer and there is room for more: write the next piece. */
	void (*writable)(void *arg, uint64_t conn, int64_t sid);
	/* Stream reset by the peer, or closed with its connection (err < 0). */
	void (*stream_closed)(void *arg, uint64_t conn, int64_t sid, int err);
	/* The connection is gone; the handle is dead after this returns. */
	void (*closed)(void *arg, uint64_t conn, const struct quic_close_info *info);
	/* Registered types only (quic_node_register): called once per distinct
	 * arg when the node is finally freed, after the last callback, so
	 * an owner freed before the QUIC node can hand its callback context
	 * over instead of leaking it. NULL: nothing to release. */
	void (*release)(void *arg);
};

/*
 * Create the QUIC node: one endpoint per engine worker, the engine handler
 * of opts->port (engine_register: call between engine_new and
 * engine_start), control routes when opts->ctl is set:
 *   GET  /v1/quic/conns      POST /v1/quic/ping      POST /v1/quic/bench
 *   GET  /v1/quic/stats      and weft_quic_* lines on /metrics.
 * Returns 0, -EINVAL (missing eng/id, port not served), -EEXIST (port
 * already has a handler), -EBUSY (engine started), -ENOMEM, -EPROTO.
 */
int quic_node_new(struct quic_node **out, const struct quic_node_opts *opts);
/* Stop the engine's workers if they still run (engine_stop), close every
 * connection (closed() with QUIC_CLOSE_ENDPOINT), free. Call before
 * engine_free(). NULL-safe. */
void quic_node_free(struct quic_node *qn);
/* Free the chunk-answer blocks kept for reuse when none was used for 30 s
 * (now_ns: CLOCK_MONOTONIC); returns how many were freed. Any thread;
 * the node calls it once a second. NULL-safe. */
size_t quic_node_trim(struct quic_node *qn, uint64_t now_ns);

/*
 * Parse "NODEKEY@ADDR" or "ADDR": NODEKEY is 64 hex digits; ADDR is
 * "1.2.3.4", "1.2.3.4:4433", "[2001:db8::1]:4433" or "2001:db8::1" (a
 * missing port is default_port). *have_key says whether a key was given.
 * Returns 0 or -EINVAL.
 */
int quic_node_parse_target(const char *s, uint16_t default_port, uint8_t key[QUIC_KEY_LEN],
			   int *have_key, struct sockaddr_storage *ss, socklen_t *sslen);

#define QUIC_NODE_TARGET_MAX 128 /* "KEY@[v6]:port" fits */
#define QUIC_NODE_RESOLVE_MAX 8	 /* addresses tried for one key */
#define QUIC_NODE_DIRECT_MS 3000 /* relays but no circuit: the direct addresses get this long */
#define QUIC_NODE_RESOLVE_MS 10000 /* a ping's budget for resolution (the DHT get's deadline) */
/*
 * Expand a target for dialling: "NODEKEY" alone (64 hex digits) is
 * resolved through opts.resolve into "NODEKEY@ADDR" strings, one per
 * address of the node's record, in the record's order; any other target is
 * copied as the only entry. When the record lists relays (and opts.relay
 * is set), the relay fallback is asked first and its relay:PORT is the
 * only entry ("NODEKEY@relay:PORT": the key is still pinned end to end;
 * nothing is sent to the direct addresses before it, hole punching finds
 * a direct path afterwards); when no relay gives a circuit, the direct
 * addresses are tried with one handshake each, QUIC_NODE_DIRECT_MS for
 * all of them, and the first that answers is the only entry. Blocks
 * (control threads only). Returns the count (>= 1), -ENOENT (no record:
 * not_found), -EHOSTUNREACH (a record without any address, or with
 * relays of which none gave a circuit and no direct address answered),
 * -ENETUNREACH (the resolver had no node to ask: weftd's routing table is
 * empty), -EINVAL (a bare key and no resolver), -errno.
 */
int quic_node_resolve(struct quic_node *qn, const char *target,
		      char out[][QUIC_NODE_TARGET_MAX], unsigned int max);
/*
 * The same within timeout_ms (0: the hooks' own deadlines, up to
 * CONN_DEF_RESOLVE_MS for the record, the relay's 10 s answer and 5 s
 * bind, then QUIC_NODE_DIRECT_MS for the direct addresses): the record
 * lookup, the circuit and the direct attempts share it; -ETIMEDOUT when it
 * ran out. Also -ECONNREFUSED when the record's relays refused the circuit
 * and no direct address answered
 * (*relay_status, when not NULL: the last refusal's enum relay_status,
 * e.g. circuits_full; 0 otherwise). A service call by key gives it what is
 * left of the call's deadline.
 */
int quic_node_resolve_within(struct quic_node *qn, const char *target,
			     char out[][QUIC_NODE_TARGET_MAX], unsigned int max,
			     unsigned int timeout_ms, unsigned int *relay_status);
/* The same with flags: QUIC_NODE_RESOLVE_FRESH refetches the record past
 * the resolver's cache (the latest seq in the DHT). A dial by key that
 * failed on the record it had does this once before giving up, within its
 * deadline (quic_node_ping2; docs/CONNECTIVITY.md "Resolution and dial by
 * key"). */
#define QUIC_NODE_RESOLVE_FRESH 1u
/* QUIC_NODE_RESOLVE_PAST_MISS: a miss the resolver cached is no answer,
 * the DHT is asked (CONN_RESOLVE_PAST_MISS); a cached record still
 * answers. What a dial by key that starts a peer's work takes (a watch, a
 * service call or find by key claim, a mailbox delivery): the miss may
 * predate the peer's record (both just started). */
#define QUIC_NODE_RESOLVE_PAST_MISS 2u
int quic_node_resolve_flags(struct quic_node *qn, const char *target,
			    char out[][QUIC_NODE_TARGET_MAX], unsigned int max,
			    unsigned int timeout_ms, unsigned int *relay_status, unsigned int flags);
/* 1 when quic_node_resolve() can resolve a bare key (opts.resolve set). */
int quic_node_can_resolve(const struct quic_node *qn);

/*
 * Dial target ("NODEKEY@ADDR": the peer's certificate must carry NODEKEY;
 * "ADDR": any key, reported in connected()). h (copied) and arg receive the
 * connection's events and those of the streams opened on it. *conn gets the
 * handle before the dial runs. Returns 0, -EINVAL (bad target), -EAGAIN
 * (worker command queue full), -ENOMEM.
 */
int quic_node_connect(struct quic_node *qn, const char *target, const struct quic_node_handler *h,
		      void *arg, uint64_t *conn);
/* Same with a parsed address. expected_key may be NULL. */
int quic_node_connect_addr(struct quic_node *qn, const struct sockaddr *addr, socklen_t len,
			   const uint8_t *expected_key, const struct quic_node_handler *h,
			   void *arg, uint64_t *conn);

/*
 * Open a bidirectional stream of type stype on conn (after connected()).
 * The type varint is sent first; stream_opened(token, sid, err) reports
 * the id, or -ENOTCONN (no such connection), -EAGAIN (peer's stream limit:
 * retry later). Returns 0, -EAGAIN (queue full), -ENOMEM.
 */
int quic_node_stream_open(struct quic_node *qn, uint64_t conn, uint64_t stype, uint64_t token);
/*
 * quic_node_stream_open() and a first quic_node_write() of len bytes (fin
 * ends our side) in one command to the worker: the bytes are queued right
 * after stream_opened() reported the id, so a request-answer exchange costs
 * one hand-off to the worker instead of two (open, then the write once the
 * id came back). When the open fails the bytes are dropped (stream_opened
 * says why). Returns 0, -ENOBUFS (see quic_node_write), -EAGAIN, -ENOMEM.
 */
int quic_node_stream_open_write(struct quic_node *qn, uint64_t conn, uint64_t stype,
				uint64_t token, const void *data, size_t len, int fin);

/*
 * Queue len bytes (copied) on a stream; fin ends our side after them. Bytes
 * go out in order as flow control allows; writable() fires when all queued
 * bytes of the stream reached its send buffer. Returns 0, -ENOBUFS (more
 * than max_queued bytes are waiting node-wide: wait for writable()),
 * -EAGAIN, -ENOMEM. Errors found on the worker (no such connection or
 * stream) drop the bytes and are counted (weft_quic_app_errors_total).
 */
int quic_node_write(struct quic_node *qn, uint64_t conn, int64_t sid, const void *data, size_t len,
		    int fin);
/*
 * A write filled in place, for large answers read from a disk or a cache:
 * quic_node_wbuf_new gives room for cap bytes at *data (NULL: no memory),
 * placed so that *data + align_at is QUIC_NODE_WBUF_ALIGN-aligned (an
 * O_DIRECT read can land there); quic_node_write_wbuf then queues the
 * first len <= cap of them on a stream as quic_node_write does, without
 * copying them. quic_node_write_wbuf takes w in every case (freed on an
 * error); quic_node_wbuf_free frees one never written. Any thread.
 */
struct quic_node_wbuf;
struct quic_node_wbuf *quic_node_wbuf_new(struct quic_node *qn, size_t cap, size_t align_at,
				      uint8_t **data);
int quic_node_write_wbuf(struct quic_node *qn, uint64_t conn, int64_t sid,
			 struct quic_node_wbuf *w, size_t len, int fin);
void quic_node_wbuf_free(struct quic_node *qn, struct quic_node_wbuf *w);
/* As quic_node_write_wbuf, but w stays the caller's when it was not
 * queued (-ENOBUFS: the node-wide queue is full; -EAGAIN; -EINVAL): an
 * answer read from the disk is written later instead of read again. */
int quic_node_write_wbuf_try(struct quic_node *qn, uint64_t conn, int64_t sid,
			     struct quic_node_wbuf *w, size_t len, int fin);
/*
 * A write of bytes the caller lends (a chunk kept in memory, written to
 * many streams without a copy): plen <= 16 bytes of prefix (copied) then
 * len bytes at data, queued on the stream together or not at all (a
 * prefix queued alone resets the stream, code 0x104). Returns 0: data is
 * read until the peer acknowledged it or the stream is gone, then
 * release(arg) is called once (on the connection's worker, or on the
 * thread that stops the node); or -ENOBUFS /
 * -EAGAIN / -EINVAL / -ENOMEM: nothing was queued and release is not
 * called (the bytes are still the caller's). Any thread.
 */
int quic_node_write_lent(struct quic_node *qn, uint64_t conn, int64_t sid, const void *prefix,
			 size_t plen, const void *data, size_t len, int fin,
			 void (*release)(void *arg), void *arg);
/* Whether len more bytes fit under max_queued now: 1, else 0 (a write of
 * them would be refused with -ENOBUFS). A hint, for a caller that must
 * prepare the bytes before it can write them (a chunk read from a cache
 * or a disk): other threads may queue first, so the write may still be
 * refused. Any thread. */
int quic_node_write_room(struct quic_node *qn, size_t len);
/* Reset a stream with an application error code. Returns 0 or -EAGAIN. */
int quic_node_stream_reset(struct quic_node *qn, uint64_t conn, int64_t sid, uint64_t code);
/* Graceful close with an application error code; closed() follows.
 * Returns 0, -EAGAIN, -ENOMEM. */
int quic_node_close(struct quic_node *qn, uint64_t conn, uint64_t app_error_code);

/*
 * The peer of conn: its node key (authenticated by the handshake) into key
 * and its address into addr. conn is an opaque handle (how it encodes the
 * owning worker is quic_node's business). Call on conn's owning worker,
 * i.e. from one of conn's handler callbacks. Returns 0, or -ENOTCONN (no
 * such connection on this node, closed, or no authenticated key yet).
 */
int quic_node_conn_peer(struct quic_node *qn, uint64_t conn, uint8_t key[QUIC_KEY_LEN],
			struct sockaddr_storage *addr);

/*
 * conn's round trip as its congestion controller sees it: the smoothed RTT
 * and the smallest RTT sampled so far, ns (what they exceed of the other
 * is the queue on its path). Call on conn's owning worker. 0, or
 * -ENOTCONN (no such connection on this node, or closed).
 */
int quic_node_conn_rtt(struct quic_node *qn, uint64_t conn, uint64_t *srtt_ns,
		       uint64_t *min_rtt_ns);

/* What a connection holds of ours to send (quic_node_conn_sendq). */
struct quic_node_sendq {
	/* written (quic_node_write*) and waiting in the node's queue for
	 * room in the QUIC stream buffers: counted in max_queued */
	uint64_t queued;
	/* in the QUIC stream buffers: unsent (the congestion window or the
	 * peer's flow control holds them) or sent and not yet acknowledged;
	 * each stream holds at most quic_opts.stream_sndbuf */
	uint64_t unacked;
	/* how long the unacked bytes have not moved: no acknowledgment took
	 * any and no stream closed with any (0: none buffered) */
	uint64_t still_ns;
};

/*
 * What conn holds of ours to send into *q: for a module that answers
 * requests and must not let one peer hold its answers in memory
 * (content serving, docs/CONTENT.md "Answers a peer holds"). Call on
 * conn's owning worker. 0, or -ENOTCONN (no such connection, or closed).
 * O(1).
 */
int quic_node_conn_sendq(struct quic_node *qn, uint64_t conn, struct quic_node_sendq *q);

/*
 * Is stream sid of conn still open on this node (the connection not closed,
 * the stream not reset nor ended both ways)? 1 or 0. For work queued for
 * a stream and done later (content serving skips what nobody will read).
 * Call on conn's owning worker. O(streams of the connection).
 */
int quic_node_stream_live(struct quic_node *qn, uint64_t conn, int64_t sid);

/*
 * The engine worker that owns conn (where its callbacks run), for state a
 * module keeps per worker; < quic_node_workers(qn) for a handle of this
 * node. Any thread; conn need not be open.
 */
unsigned int quic_node_conn_worker(const struct quic_node *qn, uint64_t conn);
/*
 * Send one datagram (copied) from the QUIC port to `to`, outside any
 * connection: the relay circuit bind (STUN), which must leave from the
 * socket the QUIC packets will use so that a NAT maps both alike. Posted
 * to worker 0. Any thread. Returns 0, -EINVAL, -EAGAIN, -ENOMEM.
 */
int quic_node_send_raw(struct quic_node *qn, const struct io_addr *to, const void *buf,
		       size_t len);
/*
 * Close every connection whose peer is at `peer` (all workers), except
 * those moved to a direct path (hole punching), with the
 * application error code and reason phrase given (copied, at most
 * 128 bytes sent): a relay circuit's end closing the
 * connections that ran through relay:PORT (QUIC_NODE_APP_RELAY_ENDED).
 * Asynchronous; any thread. Returns 0, -EINVAL, -EAGAIN, -ENOMEM.
 */
int quic_node_close_peer(struct quic_node *qn, const struct io_addr *peer, uint64_t app_code,
			 const char *reason);
/* Fair windows (docs/QUIC.md "Fair windows") switched on (on 1) or off
 * (0) while running, or only asked (-1): the state after, 0 or 1;
 * -EINVAL without a node. Any thread; the workers follow within 20 ms. */
int quic_node_fair_windows(struct quic_node *qn, int on);
/* Keep conn alive: PINGs when it is idle for ms (0: off), e.g. a relay circuit's
 * control connection that must outlive QUIC's idle timeout. Asynchronous;
 * any thread. Returns 0, -EINVAL, -EAGAIN, -ENOMEM. */
int quic_node_keepalive(struct quic_node *qn, uint64_t conn, unsigned int ms);
/* Number of workers (endpoints) of the node. */
unsigned int quic_node_workers(const struct quic_node *qn);

/*
 * Accept streams of type stype (>= QUIC_NODE_ST_APP_MIN) that peers open:
 * their stream_data / stream_closed go to h (copied) with arg; answer with
 * quic_node_write(). A stream of that type this node opens on a connection
 * it accepted (no handler of its own) reports to h too (stream_opened
 * included). Before the engine starts. Returns 0, -EINVAL, -EEXIST,
 * -ENOSPC (QUIC_NODE_DEF_MAX_TYPES reached).
 */
int quic_node_register(struct quic_node *qn, uint64_t stype, const struct quic_node_handler *h,
		       void *arg);

/* Result of quic_node_ping(). */
struct quic_node_ping_result {
	uint8_t peer_key[QUIC_KEY_LEN];
	uint64_t handshake_us; /* connect() to handshake done */
	uint64_t rtt_us;       /* one 32-byte echo round trip on a fresh stream */
	uint64_t srtt_us;      /* ngtcp2's smoothed RTT after the echo */
	/* From the call: to the address dialled (a bare key's record lookup
	 * and relay circuit; 0 for an address), and to the echo's answer
	 * (the first byte back: resolve + handshake + one round trip). */
	uint64_t resolve_us, first_byte_us;
	uint64_t conn; /* the connection's id (/v1/quic/conns "id"; kept with keep) */
	unsigned int worker;
	/* On -ENOLINK (the relay ended the circuit): the close code,
	 * QUIC_NODE_APP_RELAY_ENDED | reason; else 0. */
	uint64_t close_code;
	/* On -ECONNREFUSED from a bare key's relay: its refusal (enum
	 * relay_status); else 0. */
	unsigned int relay_status;
};

/*
 * Synchronous helper for control handlers (never call it on a worker
 * thread): dial target, echo 32 bytes, close. A bare NODEKEY target is
 * resolved (quic_node_resolve) and its addresses are tried in turn, each
 * with timeout_ms / count (at least 1 s): -ENOENT when the key has no
 * record, -EHOSTUNREACH when no address answered. Returns 0, -EINVAL,
 * -ETIMEDOUT (timeout_ms, 0 = QUIC_NODE_PING_TIMEOUT_MS), -EKEYREJECTED
 * (peer key differs from the expected one), -EPROTO, -ECONNREFUSED,
 * -ECONNRESET, -EIO (echo mismatch), -ENOLINK (the connection ran through a
 * relay circuit the relay ended: res->close_code says why), -ENOMEM.
 */
int quic_node_ping(struct quic_node *qn, const char *target, unsigned int timeout_ms,
		   struct quic_node_ping_result *res);

/* Same; keep != 0 leaves the connection open afterwards (it then ends by
 * idle timeout unless used): POST /v1/quic/ping {"keep": true}, for tests. */
int quic_node_ping2(struct quic_node *qn, const char *target, unsigned int timeout_ms, int keep,
		    struct quic_node_ping_result *res);

/* Bulk transfer to a peer's built-in stream (also POST /v1/quic/bench). */
struct quic_node_bench_result {
	uint64_t bytes_sent, bytes_back; /* back: echoed bytes (echo mode) */
	uint64_t peer_count;		 /* count the peer reported (sink/discard) */
	uint8_t sent_hash[32];		 /* BLAKE2b-256 of the bytes sent (verify) */
	uint8_t peer_hash[32];		 /* sink: what the peer hashed; echo: hash of the echo */
	int hash_ok;			 /* verify: hashes equal and counts equal */
	uint64_t elapsed_us;		 /* first byte written to the reply (or echo) complete */
	uint64_t handshake_us;
	uint64_t close_code; /* on -ENOLINK: as in quic_node_ping_result */
	unsigned int relay_status; /* on -ECONNREFUSED: as in quic_node_ping_result */
	/* The connection's datagram size and path MTU probes as it finished
	 * (struct quic_conn_info). */
	uint64_t udp_payload, pmtu_probes, pmtu_acked, pmtu_lost;
};

/*
 * Send bytes of a deterministic pseudo-random stream (seeded by seed) on
 * one stream of type stype (ECHO, SINK or DISCARD) and wait for the
 * answer. verify: hash what is sent (and, with ECHO, what comes back).
 * Control threads only. Returns 0 or the errors of quic_node_ping().
 */
int quic_node_bench(struct quic_node *qn, const char *target, uint64_t stype, uint64_t bytes,
		    uint64_t seed, int verify, unsigned int timeout_ms,
		    struct quic_node_bench_result *res);

#define QUIC_NODE_HS_MAX 100000 /* handshakes per quic_node_handshakes() call */
#define QUIC_NODE_HS_WINDOW_MAX 256 /* handshakes in flight in one call */

struct quic_node_hs_result {
	uint64_t done;	     /* handshakes completed */
	uint64_t elapsed_us; /* whole run, first dial to last close posted */
	uint64_t mean_us;    /* mean dial-to-connected time */
};

/*
 * Handshake benchmark: count connections to target ("KEY@ADDR" or "ADDR"),
 * window of them in flight (0 or 1: one after the other), each dialed,
 * waited for until connected (handshake done and the peer's key checked),
 * then closed; echo: a 32-byte echo stream first, closed once the bytes
 * came back (the server has then completed its side: it verified the
 * client's Finished and certificate; without it the close may leave
 * before the client's Finished). Each has timeout_ms (0:
 * QUIC_NODE_PING_TIMEOUT_MS). Control
 * threads only (blocks). The first failure stops new dials; those in
 * flight finish. Returns 0 when at least one handshake was done (see
 * res->done), else the dial error as quic_node_ping(), -ENOMEM, or -EINVAL
 * (count 0 or > QUIC_NODE_HS_MAX, window > QUIC_NODE_HS_WINDOW_MAX).
 */
int quic_node_handshakes(struct quic_node *qn, const char *target, unsigned int count,
			 unsigned int window, int echo, unsigned int timeout_ms,
			 struct quic_node_hs_result *res);

#endif
