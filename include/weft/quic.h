/* SPDX-License-Identifier: MIT */
/*
 * QUIC transport core: ngtcp2 0.12 + GnuTLS, node-key identities, streams,
 * RFC 9221 datagrams, and the weft frame layer (varint type, varint length,
 * payload). See docs/QUIC.md for the design decisions.
 *
 * The core does no I/O (docs/STYLE.md rule 6). The engine hands every received UDP
 * datagram to quic_ep_input() with the local and remote address and a
 * monotonic timestamp in nanoseconds, calls quic_ep_handle_expiry() when the
 * deadline from quic_ep_expiry() passes, and transmits what the endpoint
 * gives to opts->send. One endpoint per worker thread; nothing here takes a
 * lock and nothing is global, so several endpoints live in one process.
 *
 * Lifetime of a connection handle: valid from quic_ep_connect() (client) or
 * on_conn (server) until on_closed has returned. After on_closed the endpoint
 * frees it; the application must drop its pointer inside on_closed.
 */
#ifndef WEFT_QUIC_H
#define WEFT_QUIC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#define QUIC_KEY_LEN 32   /* Ed25519 public key */
#define QUIC_SK_LEN 64    /* libsodium Ed25519 secret key (seed || pk) */
#define QUIC_ALPN "weft/1"

/* Defaults of the tunables in struct quic_ep_opts (0 selects them). */
#define QUIC_DEF_MAX_CONNS 4096        /* ~64 MiB worst case per worker at 16 KiB/conn idle */
#define QUIC_DEF_MAX_CONNS_PER_ADDR 64 /* a NATed office shares one address; 64 covers it */
#define QUIC_DEF_IDLE_TIMEOUT_MS 30000 /* same as ngtcp2's examples; survives short outages */
#define QUIC_DEF_HANDSHAKE_TIMEOUT_MS 10000 /* a handshake is 1-2 RTT; 10 s covers satellite links */
#define QUIC_DEF_RETRY_RATE 200        /* new handshakes/s without a Retry round trip */
#define QUIC_DEF_RESET_RATE 100        /* stateless resets sent per second at most */
#define QUIC_DEF_STREAM_SNDBUF (1U << 20) /* per-stream unacked bytes buffered: > BDP of 100 Mbit/s x 80 ms */
#define QUIC_DEF_MAX_DATA (16U << 20)  /* connection receive window: 16 MiB */
#define QUIC_DEF_MAX_STREAM_DATA (6U << 20) /* stream receive window: 6 MiB (ngtcp2 examples' max) */
#define QUIC_DEF_MAX_STREAMS 100       /* concurrent peer-opened streams of each kind */
#define QUIC_DEF_MAX_DGRAM_QUEUE 64    /* queued outgoing datagrams per connection */
#define QUIC_MAX_DATAGRAM 1200         /* max_datagram_frame_size we advertise */
#define QUIC_MAX_UDP_PAYLOAD 1452      /* largest datagram we build (Ethernet MTU, IPv6) */
#define QUIC_MAX_GSO_SEGS 64           /* packets per send() burst to one destination */
#define QUIC_LO_UDP_PAYLOAD 8952       /* loopback paths: a 9000-byte jumbo frame less IPv6 + UDP */
/* Path MTU probing off loopback (docs/QUIC.md "Jumbo datagrams off
 * loopback"): a probe is a DATAGRAM frame filling a packet of the size
 * tried; this much of the size is left for the short header (DCID <= 20,
 * packet number <= 4), the AEAD tag (16), the frame's type and length and
 * an ACK frame ngtcp2 may put first. */
#define QUIC_PM_OVERHEAD 64
#define QUIC_PM_TRIES 3                /* probes of one size lost before the next smaller */
#define QUIC_PM_RAISE_MS 600000        /* below the ceiling: search again after (RFC 8899) */
#define QUIC_PM_BLACKHOLE_PTOS 2       /* successive PTOs above 1200 bytes: back to 1200 */
/* A probe unacknowledged this many PTOs counts as lost (ngtcp2 runs no PTO
 * for a packet of DATAGRAM frames alone: on an idle connection it would
 * wait for later packets forever); QUIC_PM_RETRY_MS between attempts that
 * congestion control held back. */
#define QUIC_PM_PROBE_PTOS 3
/* A probe still undecided at its deadline: a PING sent again, at most this
 * many times, before it counts as lost (conn_write.c quic_conn_pm_timer). */
#define QUIC_PM_ASKS 2
#define QUIC_PM_RETRY_MS 10
#define QUIC_PM_PING_DELAY_NS 1000     /* a PING this long after each probe (conn_write.c) */

struct quic_ep;
struct quic_conn;

/* Why a connection ended, seen from this side. */
enum quic_close_reason {
	QUIC_CLOSE_NONE = 0,
	QUIC_CLOSE_LOCAL_APP,     /* quic_conn_close() */
	QUIC_CLOSE_PEER,          /* peer sent CONNECTION_CLOSE (see error_code, is_app) */
	QUIC_CLOSE_IDLE,          /* idle timeout */
	QUIC_CLOSE_HANDSHAKE_TIMEOUT,
	QUIC_CLOSE_PEER_KEY_MISMATCH, /* certificate key != expected key */
	QUIC_CLOSE_BAD_CERT,      /* missing, malformed or badly signed certificate */
	QUIC_CLOSE_ALPN,          /* no common ALPN */
	QUIC_CLOSE_PROTOCOL,      /* transport or TLS error detected locally */
	QUIC_CLOSE_RESET,         /* stateless reset received */
	QUIC_CLOSE_ENDPOINT,      /* quic_ep_free() with the connection open */
};

struct quic_close_info {
	enum quic_close_reason reason;
	uint64_t error_code; /* QUIC error code sent or received (0 if none) */
	int is_app;          /* error_code is an application error code */
};

/* Counters of one endpoint (for metrics). Every dropped datagram is in
 * exactly one drop_* counter. */
struct quic_ep_stats {
	uint64_t rx_datagrams, tx_datagrams, tx_sends, rx_bytes, tx_bytes;
	uint64_t drop_garbage;      /* unparsable header, short or unknown packets */
	uint64_t drop_conn_error;   /* datagrams a connection rejected (decrypt failure...) */
	uint64_t drop_limit;        /* refused: connection limits (CONNECTION_REFUSED sent) */
	uint64_t drop_closing;      /* arrived for a closing/draining connection */
	uint64_t version_negotiations, retries_sent, bad_tokens, stateless_resets_sent;
	uint64_t conns_accepted, conns_dialed, conns_established, conns_closed;
	uint64_t peer_key_mismatch, bad_cert, alpn_mismatch, idle_timeouts, send_errors;
	uint64_t conns_active;
	/* Fair windows: flushes whose stream data a fair window held back
	 * (counter), and the rate it holds backlogged connections to now
	 * (bytes/s; 0: none) */
	uint64_t fair_holds;
	uint64_t fair_rate;
	/* the largest share of time (permille) the node's workers last
	 * waited for a CPU (quic_fair_set_cpu_wait), and the epochs in which
	 * that held fair windows off (the node's CPU, not a link, is what
	 * its connections wait for) */
	uint64_t fair_cpu_wait;
	uint64_t fair_cpu_bound;
	/* Next 1-RTT keys derived (RFC 9001 6): once a connection is
	 * confirmed (ngtcp2 keeps them ready), then again after each key
	 * update, whichever side started it */
	uint64_t next_keys;
};

/* Snapshot of one connection, for `weftctl quic conns`. */
struct quic_conn_info {
	uint8_t peer_key[QUIC_KEY_LEN];
	int have_peer_key;
	int is_server;
	int established;
	struct sockaddr_storage remote;
	socklen_t remote_len;
	uint64_t smoothed_rtt_ns, min_rtt_ns, latest_rtt_ns;
	uint64_t cwnd, bytes_in_flight;
	uint64_t bytes_rx, bytes_tx;      /* stream payload bytes */
	uint64_t streams_opened, streams_open;
	uint64_t datagrams_rx, datagrams_tx;
	/* Stream bytes in the send buffers (unsent, or sent and not yet
	 * acknowledged), and how long they have not moved (no
	 * acknowledgment took any, no stream closed with any; 0 when none
	 * are buffered). */
	uint64_t unacked, unacked_still_ns;
	/* Datagram size: the largest it sends now; of a path it probes
	 * (pmtu_max > 0, docs/QUIC.md), the ceiling and the probes' fate. */
	size_t udp_payload, pmtu_max;
	uint64_t pmtu_probes, pmtu_acked, pmtu_lost, pmtu_blackholes;
	/* The negotiated TLS 1.3 cipher suite's AEAD ("AES-128-GCM",
	 * "CHACHA20-POLY1305", ...; "" before the handshake chose one) */
	char cipher[24];
};

/* Path layer counters of one connection (quic_conn_path_stats). */
struct quic_path_stats {
	uint64_t direct_rx, direct_tx; /* datagrams from / to the direct address */
	uint64_t alias_rx;	       /* datagrams from any alias (direct included) */
	uint64_t unanswered_ns; /* first send to the direct address since the last
				   datagram from it (0: none waiting) */
};

struct quic_callbacks {
	/* Handshake done and peer certificate verified. peer_key is the peer's
	 * Ed25519 node key (borrowed for the call). */
	void (*on_conn)(void *arg, struct quic_conn *c, const uint8_t *peer_key);
	/* The peer opened a stream (before its first data). */
	void (*on_stream_open)(void *arg, struct quic_conn *c, int64_t sid);
	/* In-order stream bytes (borrowed); fin set on the last call. Data is
	 * counted as consumed on return (flow-control credit is returned). */
	void (*on_stream_data)(void *arg, struct quic_conn *c, int64_t sid, const uint8_t *data,
			       size_t len, int fin);
	/* Stream fully closed; app_error_code is set when reset (has_code). */
	void (*on_stream_close)(void *arg, struct quic_conn *c, int64_t sid, int has_code,
				uint64_t app_error_code);
	/* Send buffer space freed on a stream after quic_stream_send() accepted
	 * less than asked. */
	void (*on_stream_writable)(void *arg, struct quic_conn *c, int64_t sid);
	/* An RFC 9221 datagram (borrowed). */
	void (*on_datagram)(void *arg, struct quic_conn *c, const uint8_t *data, size_t len);
	/* Connection is over; the handle dies when this returns. Called exactly
	 * once for every connection that was returned by quic_ep_connect() or
	 * announced through on_conn. */
	void (*on_closed)(void *arg, struct quic_conn *c, const struct quic_close_info *info);
};

/*
 * Transmit one buffer: len bytes made of segments of gso_size bytes each
 * (the last may be shorter) to one destination, from local (may be NULL:
 * the socket's address). gso_size == len for a single datagram. Return 0 or
 * a negative errno; a failure is counted and treated as packet loss.
 */
typedef int (*quic_send_fn)(void *arg, const uint8_t *buf, size_t len, size_t gso_size,
			    const struct sockaddr *to, socklen_t tolen,
			    const struct sockaddr *local);

enum quic_retry_mode {
	QUIC_RETRY_AUTO = 0, /* Retry once new handshakes exceed retry_rate per second */
	QUIC_RETRY_ALWAYS,   /* validate every new client address */
	QUIC_RETRY_NEVER,
};

/*
 * Who protects 1-RTT packets negotiated with AES-128-GCM or AES-256-GCM
 * (docs/QUIC.md "AES-GCM on wide vectors"); Initial and Handshake
 * packets, ChaCha20-Poly1305 and header protection stay GnuTLS's.
 */
enum quic_aead {
	/* measured once per process (quic_aead_auto): the fastest of weft's
	 * widths on this CPU where it takes <= 90% of GnuTLS's time, else GnuTLS */
	QUIC_AEAD_AUTO = 0,
	QUIC_AEAD_GNUTLS, /* GnuTLS (ngtcp2's backend) for every packet */
	/* weft's at that width; quic_ep_new refuses (-EOPNOTSUPP) a width
	 * this CPU lacks */
	QUIC_AEAD_AESNI,
	QUIC_AEAD_VAES256,
	QUIC_AEAD_VAES512,
};

struct quic_ep_opts {
	const uint8_t *node_pk; /* QUIC_KEY_LEN bytes, required */
	const uint8_t *node_sk; /* QUIC_SK_LEN bytes, required; copied */
	/* Local address used as the path's local side for dials (required for
	 * quic_ep_connect; copied). */
	const struct sockaddr *local;
	socklen_t local_len;
	/* ALPN offered and required; default QUIC_ALPN. Only for interop tests
	 * ("h3"): weft peers must use the default. Copied, 1..255 bytes. */
	const char *alpn;
	int server;                       /* accept incoming connections */
	unsigned int max_conns;           /* default QUIC_DEF_MAX_CONNS */
	unsigned int max_conns_per_addr;  /* default QUIC_DEF_MAX_CONNS_PER_ADDR */
	unsigned int idle_timeout_ms;     /* default QUIC_DEF_IDLE_TIMEOUT_MS */
	unsigned int handshake_timeout_ms; /* default QUIC_DEF_HANDSHAKE_TIMEOUT_MS */
	/* PING interval keeping idle connections (and NAT bindings) alive; 0 =
	 * off (default: weft closes idle connections instead). */
	unsigned int keepalive_ms;
	enum quic_retry_mode retry_mode;
	unsigned int retry_rate;          /* default QUIC_DEF_RETRY_RATE */
	unsigned int reset_rate;          /* default QUIC_DEF_RESET_RATE */
	size_t stream_sndbuf;             /* default QUIC_DEF_STREAM_SNDBUF */
	uint64_t max_data;                /* default QUIC_DEF_MAX_DATA */
	uint64_t max_stream_data;         /* default QUIC_DEF_MAX_STREAM_DATA */
	uint64_t max_streams_bidi;        /* default QUIC_DEF_MAX_STREAMS */
	uint64_t max_streams_uni;         /* default QUIC_DEF_MAX_STREAMS */
	/* Test builds only (WEFT_TEST_HOOKS; ignored otherwise): > 0, a
	 * receive window of this many bytes, connection and stream, never
	 * given back: a peer that asks and never takes what it asked for. */
	uint64_t test_hold_credit;
	size_t max_udp_payload;           /* default QUIC_MAX_UDP_PAYLOAD; min 1200 */
	/* Datagrams to a loopback address (127/8, ::1; docs/QUIC.md "Bytes
	 * per CPU"): once the handshake is done a connection set up to one
	 * sends datagrams of this size (the peer's max_udp_payload transport
	 * parameter permitting), 1200 after its packets moved to a direct
	 * path off loopback. 0 (default): max_udp_payload, as any path. */
	size_t lo_udp_payload;            /* 0 or 1200..65527 */
	/* The MTU of the route to a remote off loopback when a path of that
	 * size is worth probing (above 1500, or 1500 to an on-link IPv4
	 * address; else 0): with lo_udp_payload set, a connection set up to such an
	 * address is unshaped and probes its path for datagrams up to the
	 * smaller of lo_udp_payload and the route's MTU less IP and UDP
	 * headers (docs/QUIC.md "Jumbo datagrams off loopback"); 1200 bytes
	 * until a probe is acknowledged. NULL: never asked, no probing. */
	int (*route_mtu)(void *arg, const struct sockaddr *remote, socklen_t len);
	void *route_mtu_arg;
	/* Our max_udp_payload transport parameter: the largest datagram this
	 * endpoint's receive path takes whole. 0 (default): 65527. */
	size_t max_rx_udp_payload;        /* 0 or 1200..65527 */
	/* Worker routing (docs/QUIC.md "Worker routing"): with
	 * cid_route_count > 1, the first byte of every connection id this
	 * endpoint issues is congruent to cid_route_index modulo
	 * cid_route_count, so quic_cid_route() finds the owning endpoint from
	 * any datagram's DCID. Default 0: plain random ids. */
	unsigned int cid_route_count;     /* 0..256 */
	unsigned int cid_route_index;     /* < cid_route_count */
	/* Fair windows (docs/QUIC.md "Fair windows"): the group this
	 * endpoint shares with the node's others (quic_fair_new) and its
	 * slot there (< the group's slots; each endpoint its own). NULL
	 * (default): off. The group outlives the endpoint. */
	struct quic_fair *fair;
	unsigned int fair_slot;
	enum quic_aead aead;              /* default QUIC_AEAD_AUTO */
	quic_send_fn send;                /* required */
	void *send_arg;
	struct quic_callbacks cb;
	void *cb_arg;
};

/*
 * A fair-window group: the endpoints of one node (one slot each) whose
 * backlogged connections are held to one rate while the node's uplink
 * has a standing queue (docs/QUIC.md "Fair windows"). nslots 1..
 * QUIC_FAIR_MAX_SLOTS. 0, -EINVAL or -ENOMEM. Free it after every
 * endpoint using it (NULL-safe). A new group is on; quic_fair_set_on
 * switches it (any thread; the endpoints follow within an epoch, 20 ms).
 */
#define QUIC_FAIR_MAX_SLOTS 256
struct quic_fair;
int quic_fair_new(struct quic_fair **out, unsigned int nslots);
void quic_fair_free(struct quic_fair *g);
unsigned int quic_fair_slots(const struct quic_fair *g);
void quic_fair_set_on(struct quic_fair *g, int on);
int quic_fair_on(const struct quic_fair *g); /* 0 for NULL */
/* The share of the time since its last call (permille, 0..1000) that
 * slot's worker thread waited for a CPU (runnable, not running: the run
 * delay of /proc/thread-self/schedstat), at now (ns, the endpoints'
 * clock). While a slot's figure, no older than QUIC_FAIR_CPU_STALE_NS,
 * is QUIC_FAIR_CPU_WAIT or more, no window is held: queueing delay on a
 * host whose threads wait for CPUs is the CPU's, and holding connections
 * back would not drain it (docs/QUIC.md "Fair windows"). */
#define QUIC_FAIR_CPU_WAIT 300
#define QUIC_FAIR_CPU_STALE_NS (2000ULL * 1000000ULL)
void quic_fair_set_cpu_wait(struct quic_fair *g, unsigned int slot, unsigned int permille,
			    uint64_t now);

/*
 * Create an endpoint. Builds the node's self-signed Ed25519 certificate and
 * derives the token / stateless-reset secret from node_sk (so a restarted
 * node can reset connections of its previous run). Returns 0, -EINVAL (a
 * required option missing or out of range), -EOPNOTSUPP (an aead width
 * this CPU lacks), -ENOMEM, or -EPROTO (GnuTLS refused the key).
 */
int quic_ep_new(struct quic_ep **out, const struct quic_ep_opts *opts);
/* Free the endpoint and every connection (on_closed is called with
 * QUIC_CLOSE_ENDPOINT for established ones; no packet is sent). NULL-safe. */
void quic_ep_free(struct quic_ep *ep);

/* quic.aead's names ("auto", "gnutls", "aesni", "vaes256", "vaes512") to
 * the enum; anything else: QUIC_AEAD_AUTO (the config parser admits only
 * these names). */
enum quic_aead quic_aead_parse(const char *name);

/* What quic.aead = auto measured and chose: ns of CPU per 1,420-byte
 * AES-128-GCM seal (22 bytes of AAD, the best of alternated rounds) by
 * GnuTLS and by each of weft's widths this CPU runs (0: not run), and the
 * choice. Measured on the first call in the process (~0.3 ms), then
 * cached; thread-safe. */
struct quic_aead_auto {
	enum quic_aead pick; /* QUIC_AEAD_GNUTLS or a width */
	unsigned int ns[4];  /* gnutls, aesni, vaes256, vaes512 */
	/* 1 in a sanitizer build: its figures are of instrumented code
	 * (ours, not GnuTLS's), so pick is the widest width the CPU runs,
	 * what a release build took on the Intel host measured */
	int sanitized;
};
void quic_aead_auto(struct quic_aead_auto *out);

/* quic.aead's name of a (the inverse of quic_aead_parse); "?" out of range. */
const char *quic_aead_name(enum quic_aead a);

/* The widest of weft's AES-GCM widths this CPU runs ("aesni", "vaes256",
 * "vaes512"; "none" without AES-NI). */
const char *quic_aead_widest(void);

/* What protects the endpoint's 1-RTT AES-GCM packets: "gnutls", or weft's
 * width ("aesni", "vaes256", "vaes512"). */
const char *quic_ep_aead(const struct quic_ep *ep);

/*
 * Process one received UDP datagram (buf borrowed). local: the address it
 * was received on (may be NULL: opts->local). Never fails on bad input:
 * garbage is counted in stats and dropped. Returns 0, or -ENOMEM.
 */
int quic_ep_input(struct quic_ep *ep, const uint8_t *buf, size_t len,
		  const struct sockaddr *local, socklen_t local_len,
		  const struct sockaddr *remote, socklen_t remote_len, uint64_t now_ns);
/* Earliest deadline (ns, same clock as now_ns) at which
 * quic_ep_handle_expiry() must run; UINT64_MAX if none. Asks every
 * connection (O(connections)): for simple drivers and checks; a busy
 * driver calls quic_ep_run_expiry(). */
uint64_t quic_ep_expiry(const struct quic_ep *ep);
/* Run timers (retransmission, pacing, idle, closing) due at now_ns and
 * send what they produce. Returns 0. */
int quic_ep_handle_expiry(struct quic_ep *ep, uint64_t now_ns);
/* Run the timers due at now_ns, as quic_ep_handle_expiry() does, then
 * return the next deadline, as quic_ep_expiry() would: by the endpoint's
 * deadline heap, which computes again only the expiries of connections
 * touched since the last call (input, sends, closes, timers), so a pass
 * costs what it touched, not what is connected (docs/QUIC.md "Deadlines
 * by heap"). */
uint64_t quic_ep_run_expiry(struct quic_ep *ep, uint64_t now_ns);

/*
 * Dial remote. expected_key (QUIC_KEY_LEN, may be NULL): the peer's node
 * key; the handshake fails with QUIC_CLOSE_PEER_KEY_MISMATCH if the
 * certificate carries another key. The first flight is sent before return.
 * *out stays valid until on_closed. Returns 0, -EINVAL, -EMFILE (max_conns)
 * or -ENOMEM.
 */
int quic_ep_connect(struct quic_ep *ep, const struct sockaddr *remote, socklen_t remote_len,
		    const uint8_t *expected_key, uint64_t now_ns, struct quic_conn **out);

/* Like quic_ep_connect(), with the path's local address given (the source
 * address the kernel's route picks for remote; NULL = opts->local). Packets
 * are sent with that local address, and replies arriving at it match the
 * path. Same returns. */
int quic_ep_connect_from(struct quic_ep *ep, const struct sockaddr *local, socklen_t local_len,
			 const struct sockaddr *remote, socklen_t remote_len,
			 const uint8_t *expected_key, uint64_t now_ns, struct quic_conn **out);

/*
 * Which of count endpoints (issuing ids with cid_route_count == count) owns
 * the datagram buf: its DCID's first byte modulo count. A client's first
 * Initials carry a DCID the client chose at random: they map to one fixed
 * endpoint too, which accepts the connection and issues its own ids.
 * Returns the index, or -1 when the datagram has no DCID or does not parse
 * (process it anywhere: it is garbage or a version negotiation).
 */
int quic_cid_route(const uint8_t *buf, size_t len, unsigned int count);

/*
 * The same choice made by the kernel: a classic BPF program (at most
 * QUIC_CID_ROUTE_CBPF_LEN instructions written to out) for
 * SO_ATTACH_REUSEPORT_CBPF on a port's group of count sockets bound in
 * endpoint order. It returns the DCID's first byte modulo count (byte 1
 * of a short header, byte 6 of a long one), so a datagram reaches the
 * owner of its connection without a hand-over between workers (docs/QUIC.md
 * "Worker routing"); a long header without a DCID returns an index out of
 * range (the kernel's hash then), one too short for the byte read returns
 * 0 (classic BPF's end on a read past the end). Returns the instruction
 * count, or -EINVAL (count 0 or over 256, out NULL, cap too small).
 */
struct sock_filter;
#define QUIC_CID_ROUTE_CBPF_LEN 10
int quic_cid_route_cbpf(unsigned int count, struct sock_filter *out, size_t cap);

/* Advance the endpoint's clock (ns, never backwards) before application
 * calls (quic_stream_send, quic_conn_close...) made outside input and
 * expiry, so the packets they send carry a fresh timestamp. */
void quic_ep_set_now(struct quic_ep *ep, uint64_t now_ns);

/* Snapshot of endpoint counters. */
void quic_ep_get_stats(const struct quic_ep *ep, struct quic_ep_stats *st);
/* Call fn for every live connection (for the control API). Returns count. */
size_t quic_ep_foreach(struct quic_ep *ep, void (*fn)(void *arg, struct quic_conn *c),
		       void *arg);

/*
 * Graceful close with an application error code and an optional reason
 * (copied, truncated to 128 bytes). Sends CONNECTION_CLOSE now, keeps a
 * closing period of 3 PTO, then on_closed runs. Returns 0 or -ENOTCONN
 * (already closing). Must not be called from inside on_closed.
 */
int quic_conn_close(struct quic_conn *c, uint64_t app_error_code, const char *reason);
/* Send PINGs when c is idle for ms (0: off), overriding the endpoint's
 * keepalive_ms for this connection; at most half the endpoint's idle
 * timeout (a longer one would let the connection die idle). Returns 0 or
 * -ENOTCONN. */
int quic_conn_set_keepalive(struct quic_conn *c, unsigned int ms);

/* Open a stream (bidi != 0: bidirectional). *sid receives its id. Returns 0,
 * -EAGAIN (peer's stream limit reached: retry after on_stream data or later),
 * -ENOTCONN (handshake not done or closing), -ENOMEM. */
int quic_stream_open(struct quic_conn *c, int bidi, int64_t *sid);
/*
 * Queue bytes on a stream (copied). Returns the number of bytes accepted
 * (may be < len when the stream's send buffer is full: on_stream_writable
 * fires when space frees), or -ENOTCONN, -ENOENT (unknown or receive-only
 * stream), -EPIPE (already finished), -ENOMEM. fin finishes the stream if
 * all len bytes were accepted. Packets go out before return as far as
 * congestion and flow control allow.
 */
ssize_t quic_stream_send(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
			 int fin);
/*
 * quic_stream_send without the copy: the stream reads the first n bytes
 * accepted (the return value, as above) in place until the peer has
 * acknowledged them, then calls release(arg) once, on the owning thread
 * (also when the stream or the connection goes away first). A return of
 * 0 or an error takes no reference and never calls release. The caller
 * must not change or free the bytes before release. -EINVAL without
 * release. For bulk data: each call makes one buffer block, so small
 * writes are better copied.
 */
ssize_t quic_stream_send_ref(struct quic_conn *c, int64_t sid, const uint8_t *data, size_t len,
			     int fin, void (*release)(void *arg), void *arg);
/* Abort a stream in both directions with an application error code.
 * Returns 0, -ENOTCONN or -ENOENT. */
int quic_stream_reset(struct quic_conn *c, int64_t sid, uint64_t app_error_code);

/* Send an RFC 9221 datagram (len <= QUIC_MAX_DATAGRAM and the peer's limit).
 * Unreliable. Returns 0, -EMSGSIZE, -ENOBUFS (queue full), -ENOTCONN. */
int quic_conn_send_datagram(struct quic_conn *c, const uint8_t *data, size_t len);

/* Fill info; returns 0. */
int quic_conn_get_info(struct quic_conn *c, struct quic_conn_info *info);
/* Its send buffers alone (info's unacked and unacked_still_ns), without
 * the rest of quic_conn_get_info: for a check per request. */
void quic_conn_unacked(const struct quic_conn *c, uint64_t *bytes, uint64_t *still_ns);
/* Application pointer, free for the caller's use. */
void quic_conn_set_user(struct quic_conn *c, void *user);
/*
 * Path layer (docs/CONNECTIVITY.md "Direct paths"). ngtcp2 keeps the
 * address the connection was set up on as its only remote address; these
 * move the real path under it without a QUIC migration.
 * quic_conn_set_direct: send every packet to sa from now on (NULL: back to
 * the set-up address). quic_conn_add_alias: datagrams for this connection
 * (found by DCID) whose source is sa are handed to ngtcp2 as coming from
 * the set-up address; at most QUIC_CONN_MAX_ALIAS, the oldest replaced.
 * Owning thread only. Return 0 or -EINVAL.
 */
#define QUIC_CONN_MAX_ALIAS 4
int quic_conn_set_direct(struct quic_conn *c, const struct sockaddr *sa, socklen_t len);
int quic_conn_add_alias(struct quic_conn *c, const struct sockaddr *sa, socklen_t len);
void quic_conn_path_stats(const struct quic_conn *c, struct quic_path_stats *st);
void *quic_conn_get_user(const struct quic_conn *c);
int quic_conn_is_server(const struct quic_conn *c);

/* ---- node-key certificates (cert.c) ---- */

/*
 * DER of the self-signed X.509 certificate over an Ed25519 node key, as
 * presented in TLS. *der is malloc'd (caller frees). Returns 0, -EINVAL,
 * -ENOMEM or -EPROTO.
 */
int quic_cert_make(const uint8_t *pk, const uint8_t *sk, uint8_t **der, size_t *der_len);
/* Pointers into a parsed certificate (valid while its DER is). */
struct quic_cert_view {
	const uint8_t *key; /* QUIC_KEY_LEN bytes: the Ed25519 subject key */
	const uint8_t *sig; /* 64 bytes: the certificate's signature */
	const uint8_t *tbs; /* the signed TBSCertificate bytes */
	size_t tbs_len;
};
/*
 * Parse a peer certificate without trusting a length: DER X.509 (definite,
 * minimal lengths), an Ed25519 subject key (RFC 8410, 32 bytes), Ed25519 as
 * the TBS and the outer signature algorithm, a 64-byte signature, nothing
 * after. Checks no signature: in a TLS 1.3 handshake the CertificateVerify,
 * which GnuTLS checks with this same key, is what proves the peer holds it
 * (conn.c verify_cb). Returns 0, -EBADMSG (malformed) or -EKEYREJECTED (not
 * Ed25519).
 */
int quic_cert_parse(const uint8_t *der, size_t len, struct quic_cert_view *v);
/*
 * quic_cert_parse() and the self-signature over the TBS by the subject key
 * (no CA). On success writes the key to pk_out. Returns 0, -EBADMSG
 * (malformed), -EKEYREJECTED (not Ed25519 or bad self-signature).
 */
int quic_cert_verify(const uint8_t *der, size_t len, uint8_t *pk_out);
/* Write PEM key and certificate files (mode 0600) for the node key: for
 * interop tests with ngtcp2's gtlsserver. Returns 0 or -errno. */
int quic_cert_write_pem(const uint8_t *pk, const uint8_t *sk, const char *key_path,
			const char *cert_path);

/* ---- weft frame layer (frame.c) ---- */

#define QUIC_VARINT_MAX ((1ULL << 62) - 1)
#define QUIC_FRAME_MAX_PAYLOAD (1U << 20) /* default cap on one message: 1 MiB */

/* Encode v as a minimal QUIC varint (RFC 9000 16). Returns bytes written
 * (1, 2, 4, 8), -ERANGE (v > QUIC_VARINT_MAX) or -ENOBUFS. */
int quic_varint_encode(uint8_t *buf, size_t cap, uint64_t v);
/* Decode a varint. Returns bytes consumed, -EAGAIN (need more bytes) or
 * -EINVAL (not minimally encoded: weft frames have one encoding). */
int quic_varint_decode(const uint8_t *buf, size_t len, uint64_t *v);

struct quic_frame {
	uint64_t type;
	const uint8_t *payload; /* points into the decoded buffer */
	size_t len;
};

/* Bytes needed to encode a frame of payload length plen (0 if too long). */
size_t quic_frame_size(uint64_t type, size_t plen);
/* Encode type, length, payload into buf. Returns bytes written, -ERANGE or
 * -ENOBUFS. */
ssize_t quic_frame_encode(uint8_t *buf, size_t cap, uint64_t type, const uint8_t *payload,
			  size_t plen);
/* Decode one frame from the front of buf. Returns bytes consumed (> 0),
 * -EAGAIN (incomplete), -EINVAL (bad varint) or -EMSGSIZE (length >
 * max_payload). */
ssize_t quic_frame_decode(const uint8_t *buf, size_t len, size_t max_payload,
			  struct quic_frame *f);

/* Reassembles frames from stream bytes arriving in pieces. Buffers at most
 * one frame (max_payload + 16 bytes). */
struct quic_framer;
/* max_payload 0 = QUIC_FRAME_MAX_PAYLOAD. Returns 0 or -ENOMEM. */
int quic_framer_new(struct quic_framer **out, size_t max_payload);
void quic_framer_free(struct quic_framer *fr);
/* Feed bytes; fn runs for each complete frame (payload borrowed). Returns
 * the number of frames delivered, or -EINVAL / -EMSGSIZE: the stream is
 * corrupt and must be reset (the framer stays in the error state). A
 * negative return from fn stops and is returned. */
int quic_framer_push(struct quic_framer *fr, const uint8_t *buf, size_t len,
		     int (*fn)(void *arg, const struct quic_frame *f), void *arg);
/* Bytes of an incomplete frame held. */
size_t quic_framer_pending(const struct quic_framer *fr);

#endif
