/* SPDX-License-Identifier: MIT */
/* Internal to userspace/quic/: the QUIC core (endpoint.c, ep_wire.c, conn.c,
 * conn_write.c, conn_close.c, conn_path.c, stream_buf.c, quic_mem.c, cert.c,
 * fair.c). The endpoint is the hub: it calls its connections; a connection
 * reaches the endpoint's state only through ep_wire.c, below both, and its
 * fair-window state (fair.h, a core of its own that knows neither). */
#ifndef WEFT_QUIC_INT_H
#define WEFT_QUIC_INT_H

#include <gnutls/gnutls.h>
#include <ngtcp2/ngtcp2.h>
#include <ngtcp2/ngtcp2_crypto.h>

#include <weft/quic.h>

#include "quic/fair.h"

#define QUIC_SCID_LEN 16         /* our connection ids; short headers are parsed with it */
#define QUIC_CONN_MAX_CIDS 10    /* CIDs routed to one conn: 8 issued + initial + odcid */
#define QUIC_RETRY_TOKEN_TTL_NS (10ULL * 1000000000ULL) /* Retry token lifetime: 10 s */
#define QUIC_CLOSE_REASON_MAX 128
#define QUIC_SECRET_LEN 32
#define QUIC_CID_TABLE_MIN 64     /* slots of a new endpoint's CID table */
#define QUIC_IPCOUNT_MIN 64       /* chains of the per-IP connection counts */
#define QUIC_IPCOUNT_MAX 16384    /* ... at most (four times max_conns' default) */
/* Bytes a stream sends per turn before the next waiting stream of its
 * connection (quic_sbuf_next): ~11 full packets, so a new stream's small
 * message waits at most one such slice per busy stream. */
#define QUIC_SBUF_QUANTUM 16384

/* The allocator of ngtcp2 connections (quic_mem.c): malloc, with the
 * whole pages of large fresh blocks given back to the kernel at once
 * (quic_mem), or, for a connection's own pool, given back by
 * quic_mem_trim once the connection has lived QUIC_MEM_TRIM_NS past its
 * handshake (pages still all zero then), so that connections which end
 * sooner pay no syscall or page fault for them. */
extern const ngtcp2_mem quic_mem;

#define QUIC_MEM_TRACK 16 /* large blocks remembered per young connection */
#define QUIC_MEM_TRIM_NS (250ULL * 1000000ULL) /* trim 250 ms after the handshake */

struct quic_mem_pool {
	ngtcp2_mem mem; /* what ngtcp2 gets; user_data is this pool */
	int trimmed;    /* quic_mem_trim ran: large blocks are given back at once */
	size_t n;
	struct {
		void *p;
		size_t len;
	} blk[QUIC_MEM_TRACK]; /* large blocks, whole pages cleared when handed out */
};

void quic_mem_pool_init(struct quic_mem_pool *m);
/* Give back the all-zero whole pages of the remembered blocks (once;
 * later large blocks are given back when handed out). Bytes given back. */
size_t quic_mem_trim(struct quic_mem_pool *m);

/* Build the endpoint's certificate credentials from the node key. */
int quic_cert_cred_new(gnutls_certificate_credentials_t *out, const uint8_t *pk,
		       const uint8_t *sk);

struct quic_cid_ent {
	uint8_t len; /* 0 = empty slot */
	uint8_t tomb; /* deleted (keeps probe chains intact) */
	uint8_t tok;  /* 1: a peer's stateless reset token of conn, not a CID */
	uint8_t id[NGTCP2_MAX_CIDLEN];
	struct quic_conn *conn;
};

/* Pacing slack: the pacing interval ngtcp2 computes after a write pass is
 * shortened by this much. Default 1 ms = one tick of the engine's timer
 * wheel, which cannot wait for less (see quic_conn_flush()). */
#define QUIC_PACING_SLACK_NS 1000000ull

/* ACK hold: with nothing of ours in flight, the connection's timer is not
 * due before 1 ms after its last received packet. ngtcp2 (0.12) delays an
 * ACK by min(max_ack_delay, smoothed RTT / 8), tens of microseconds on a
 * LAN: a request/response exchange then sent an ACK-only packet (and woke
 * the peer's worker) for every packet whose answer took longer than that;
 * held, the ACK rides on the answer. 1 ms is far under the 25 ms
 * max_ack_delay we advertise (the peer's loss timer allows for it), and
 * count-based ACKs (every 2nd packet) are not timers (docs/QUIC.md, "ACK
 * hold"). */
#define QUIC_ACK_HOLD_NS 1000000ull

/* Stream send buffers (stream_buf.c) are chains of blocks: ngtcp2 keeps
 * pointers into sent data until it is acknowledged, so bytes never move. */
struct sblk {
	struct sblk *next;
	size_t cap, len;
	const uint8_t *p; /* data[], or the caller's bytes (quic_stream_send_ref) */
	void (*release)(void *arg); /* caller's bytes: told once they are no longer read */
	void *arg;
	uint8_t data[];
};

#define QUIC_SBUF_HINTS 16

struct quic_stream {
	struct quic_stream *next;
	int64_t id;
	struct sblk *head, *tail;
	/* Acknowledged full-size blocks kept for the next appends (at most
	 * QUIC_SBLK_SPARE): a bulk stream reuses its blocks instead of a
	 * malloc and a free of 64 KiB per ~45 packets (stream_buf.c). */
	struct sblk *spare;
	unsigned int nspare;
	/* First block that may hold unsent bytes (NULL: start at head), so
	 * each packet does not walk the acknowledged-but-unsent chain. */
	struct sblk *cur;
	uint64_t cur_base; /* stream offset of cur->data[0] */
	uint64_t base;  /* stream offset of head->data[0] */
	uint64_t acked; /* contiguous acked offset */
	uint64_t sent;  /* offset handed to ngtcp2 */
	uint64_t total; /* offset after the last queued byte */
	int fin_queued, fin_sent;
	/* passed over for the rest of a flush: == its conn's flush_round
	 * (conn_write.c; a new round per flush, no walk to clear them) */
	uint64_t blocked_round;
	int wr_shut; /* can never send again (quic_sbuf_abandon) */
	int want_writable, notify_writable;
	/* Its place in the connection's ring of streams with bytes (or a
	 * FIN) waiting (stream_buf.c): in it (wq_in) from the moment bytes
	 * are queued while none waited until they are all handed to ngtcp2;
	 * its turn began when sent was turn_from. */
	struct quic_stream *wq_next, *wq_prev;
	int wq_in;
	uint64_t turn_from;
};

enum quic_conn_state {
	QUIC_ST_HANDSHAKE = 0,
	QUIC_ST_OPEN,
	QUIC_ST_CLOSING,  /* we sent CONNECTION_CLOSE; replay it on input */
	QUIC_ST_DRAINING, /* peer closed; stay silent */
	QUIC_ST_DEAD,     /* to be freed by the endpoint */
};

struct quic_dgram {
	size_t len;
	uint8_t data[QUIC_MAX_DATAGRAM];
};

struct quic_conn {
	struct quic_ep *ep;
	struct quic_conn *prev, *next;
	struct quic_conn *dead_next; /* ep->dead: finished, freed by the next ep_sweep */
	int linked;		     /* on ep->conns (ep_link) */
	ngtcp2_conn *conn;
	gnutls_session_t tls;
	ngtcp2_crypto_conn_ref conn_ref;
	struct sockaddr_storage local, remote, src; /* src: address the conn was created for */
	socklen_t local_len, remote_len, src_len;
	int is_server;
	enum quic_conn_state state;
	int announced; /* on_conn was called: on_closed is owed */
	uint8_t peer_key[QUIC_KEY_LEN];
	int have_peer_key;
	uint8_t expected_key[QUIC_KEY_LEN];
	int pin;
	int lo; /* set up to a loopback address: lo_udp_payload (quic_conn_tx_size) */
	/* Path MTU probing of a connection off loopback (conn_write.c,
	 * quic_conn_pm_*): max 0 = not probed (ngtcp2 shapes its packets). */
	struct {
		size_t max;  /* ceiling: route MTU less headers, lo_udp_payload */
		size_t size; /* largest datagram validated (1200 until then) */
		size_t len;  /* the probe in flight: its datagram's size (0: none) */
		uint64_t id, seq; /* its dgram_id; ids given */
		unsigned int step, fails; /* step 0: the ceiling, 1: max_udp_payload, 2: done */
		uint64_t next; /* no probe before (ns) */
		uint64_t deadline; /* the probe in flight counts as lost at (ns) */
		unsigned int asks; /* deadlines passed, a PING sent again (QUIC_PM_ASKS) */
		uint64_t ping_at;  /* a PING due after the probe (0: none) */
		/* A due probe the congestion window held back: stream data
		 * waits for it until then (0: not held; <= now: held once,
		 * not again before a probe goes) */
		uint64_t hold_until;
		uint64_t probes, acked, lost, blackholes;
	} pm;
	int confirmed; /* handshake confirmed: no more Initial or Handshake packets from us */
	uint64_t ka_ns; /* ngtcp2's keep-alive timeout as set (0: none) */
	struct quic_close_info close; /* reason set at the first cause */
	uint64_t close_deadline;      /* end of closing/draining period */
	uint64_t hs_deadline;         /* end of the handshake timeout */
	uint8_t *close_pkt;           /* CONNECTION_CLOSE to replay while closing */
	size_t close_pkt_len;
	unsigned int close_replays;
	/* CIDs this conn is reachable by in the endpoint table. */
	ngtcp2_cid cids[QUIC_CONN_MAX_CIDS];
	size_t ncids;
	struct quic_stream *streams;
	/* quic_sbuf_find's hints: slot (id / 4) % QUIC_SBUF_HINTS holds the
	 * stream found last there (a serving connection's answers go out in
	 * round robin, each send a lookup by id; stream_buf.c). */
	struct quic_stream *sb_hot[QUIC_SBUF_HINTS];
	/* Streams with notify_writable set: post_read, run for every packet
	 * read, looks for them only when there are some (a walk of every
	 * stream per packet was 1.9% of a 51-node lab's CPU). */
	unsigned int notify_n;
	uint64_t flush_round; /* quic_conn_flush's count, from 1 (quic_stream.blocked_round) */
	struct quic_stream *wq_head, *wq_tail; /* streams waiting to send, in turn */
	/* Stream bytes in the send buffers (unsent, or sent and not yet
	 * acknowledged), all streams, and when they last moved: some were
	 * acknowledged, a stream closed with some, or there were none
	 * (quic_conn_get_info: unacked, unacked_still_ns). */
	uint64_t sbuf_bytes, sbuf_moved_ns;
	uint64_t streams_opened, streams_open;
	uint64_t bytes_rx, bytes_tx, dgrams_rx, dgrams_tx;
	struct quic_dgram *dgq; /* ring of queued datagrams */
	size_t dgq_head, dgq_len;
	/* Stateless reset tokens of the peer's CIDs we use (dcid_status). */
	uint8_t rtok[QUIC_CONN_MAX_CIDS][NGTCP2_STATELESS_RESET_TOKENLEN];
	uint64_t rtok_seq[QUIC_CONN_MAX_CIDS];
	size_t nrtok;
	/* the server's token from its transport parameters (a client's
	 * connection), put in the endpoint's table at the handshake */
	uint8_t tp_tok[NGTCP2_STATELESS_RESET_TOKENLEN];
	int have_tp_tok;
	int ip_counted; /* counted in the endpoint's per-IP table (src) */
	int reset_probe; /* input is a possible stateless reset */
	void *user;
	int busy;     /* inside ngtcp2: writes and closes are deferred */
	int flush_pending; /* input processed, writing deferred to the timer pass */
	int reported; /* on_closed done (or never owed): the app has let go */
	int close_pending;
	int creating; /* inside ngtcp2_conn_*_new (see rand_cb) */
	uint64_t pending_code;
	uint8_t pending_reason[QUIC_CLOSE_REASON_MAX];
	size_t pending_reason_len;
	/* Path layer (quic_conn_set_direct / quic_conn_add_alias): ngtcp2
	 * only ever sees `remote`; packets go to `direct` when set, and
	 * packets from an alias are handed in as coming from `remote`. */
	struct sockaddr_storage direct;
	socklen_t direct_len;
	struct sockaddr_storage alias[QUIC_CONN_MAX_ALIAS];
	socklen_t alias_len[QUIC_CONN_MAX_ALIAS];
	unsigned int nalias, alias_next;
	struct quic_path_stats pst;
	struct quic_mem_pool mem; /* ngtcp2's allocator for this connection */
	uint64_t trim_at;         /* quic_mem_trim due (UINT64_MAX: none) */
	uint64_t rx_at;           /* the last packet read (QUIC_ACK_HOLD_NS) */
	unsigned int rx_n;        /* packets with stream data read since we last sent one */
	struct quic_fair_conn fair; /* its last fair-window report (fair.h) */
	int rx_counted;           /* the packet being read is in rx_n */
	/* The endpoint's deadline heap (ep_deadline.c): the expiry as last
	 * computed, its place in ep->dl (1 + index; 0: not in it), and the
	 * list of connections touched since (quic_conn_touch). */
	uint64_t dl_exp;
	size_t dl_idx;
	int dl_linked, dl_dirty;
	struct quic_conn *dl_next, *due_next;
};

/* One entry of the deadline heap: a connection's expiry, kept beside it. */
struct quic_dl_ent {
	uint64_t exp;
	struct quic_conn *c;
};

struct quic_ep {
	struct quic_ep_opts o;
	int gcm; /* enum quic_gcm_impl of 1-RTT AES-GCM packets; 0: GnuTLS (aead.c) */
	char alpn[256];
	uint8_t pk[QUIC_KEY_LEN];
	uint8_t secret[QUIC_SECRET_LEN]; /* tokens and stateless resets */
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	struct sockaddr_storage local;
	socklen_t local_len;
	struct quic_cid_ent *cids;
	size_t cid_cap, cid_used; /* used counts live + tombstones */
	/* Entry of the last datagram's DCID (NULL: none), reset by every
	 * change of the table: the datagrams of a receive batch mostly share
	 * one DCID, and the keyed hash per lookup was ~2% of a receiver. */
	struct quic_cid_ent *rx_last;
	struct quic_conn *conns;
	size_t nconns;
	size_t ndead; /* conns in QUIC_ST_DEAD, freed by the next ep_sweep */
	struct quic_conn *dead; /* the linked ones among them (dead_next) */
	/* Live conns per source IP (max_conns_per_addr), ep_ipcount.c:
	 * chains of counters, a power of two of them, at most
	 * QUIC_IPCOUNT_MAX; an IP with no live conn has no counter. */
	struct quic_ipcount **ipc;
	size_t nipc, ipc_used;
	struct quic_ep_stats st;
	/* Token buckets (tokens scaled by 1e9 to stay integral). */
	uint64_t retry_tokens, retry_ts, reset_tokens, reset_ts;
	uint8_t *txbuf; /* QUIC_MAX_GSO_SEGS * quic_ep_max_tx() */
	uint64_t now;   /* last timestamp seen: for sends the app triggers */
	/* Connections by expiry (a binary min-heap, ep_deadline.c), sized for
	 * every linked connection before one is made, and those touched
	 * since their expiry was computed (quic_conn_touch). */
	struct quic_dl_ent *dl;
	size_t dl_n, dl_cap;
	struct quic_conn *dl_dirty;
	struct quic_fair_ep fair; /* fair windows (fair.h); g NULL: off */
};

/*
 * A connection's expiry (quic_conn_expiry) is a function of its state
 * alone, and its state changes only inside the QUIC core's entry points
 * (input, timer, flush, close, stream and datagram sends, keep-alive):
 * each calls quic_conn_touch first, which lists the connection for its
 * expiry to be computed again at the next quic_ep_run_expiry. Inline, so
 * that conn.c calls nothing in ep_deadline.c. A connection not yet linked
 * to its endpoint (quic_conn_new) is not listed.
 */
static inline void quic_conn_touch(struct quic_conn *c)
{
	if (c->dl_linked && !c->dl_dirty) {
		c->dl_dirty = 1;
		c->dl_next = c->ep->dl_dirty;
		c->ep->dl_dirty = c;
	}
}

/* ep_deadline.c: the deadline heap. quic_dl_reserve makes room for n
 * connections (-ENOMEM); quic_dl_link / quic_dl_unlink add and remove
 * one; quic_dl_refresh computes the touched connections' expiries again;
 * quic_dl_take_due takes every connection due at now out of the heap,
 * touched, chained by due_next; quic_dl_next is the earliest expiry. */
int quic_dl_reserve(struct quic_ep *ep, size_t n);
void quic_dl_link(struct quic_ep *ep, struct quic_conn *c);
void quic_dl_unlink(struct quic_ep *ep, struct quic_conn *c);
void quic_dl_refresh(struct quic_ep *ep);
struct quic_conn *quic_dl_take_due(struct quic_ep *ep, uint64_t now);
uint64_t quic_dl_next(const struct quic_ep *ep);

/* endpoint.c */

/* The version-independent header (RFC 8999) of a datagram's first packet. */
struct quic_pkt_inv {
	uint32_t version;  /* 0 for a Version Negotiation packet or a short header */
	int long_hdr;
	unsigned int type; /* long packet type bits (QUIC_LT_*) when version is 1 */
	const uint8_t *dcid, *scid; /* point into the datagram */
	size_t dcidlen, scidlen;
};

/* QUIC v1 long packet types as on the wire (RFC 9000 17.2). */
enum { QUIC_LT_INITIAL = 0, QUIC_LT_0RTT = 1, QUIC_LT_HANDSHAKE = 2, QUIC_LT_RETRY = 3 };

/* What the endpoint does with a datagram, decided from its first bytes
 * alone, before any connection state is looked up. */
enum quic_pkt_verdict {
	QUIC_PKT_DROP = 0, /* unparsable, or nothing this endpoint may answer */
	QUIC_PKT_SHORT,    /* short header: route by DCID (or a stateless reset) */
	QUIC_PKT_V1,       /* QUIC v1 long header: route by DCID, or accept an Initial */
	QUIC_PKT_VN,       /* Version Negotiation: only for a connection we dialled */
	QUIC_PKT_SEND_VN,  /* another version, in a datagram as large as a client
			    * Initial, to a server: answer with Version Negotiation */
};

/*
 * Classify a datagram (buf, len) for an endpoint that accepts connections
 * (server != 0) or not. weft speaks QUIC v1 only: every other long-header
 * version (drafts, v2, unknown, reserved) is answered with Version
 * Negotiation when the datagram is >= 1200 bytes and the endpoint is a
 * server (RFC 9000 6.1, 14.1: no amplification), else dropped. A Version
 * Negotiation packet is never answered, nor is a short header. Short
 * headers are parsed with our QUIC_SCID_LEN-byte connection ids. Fills
 * *inv (may be NULL) for every verdict but QUIC_PKT_DROP. Pure: no state,
 * no allocation.
 */
enum quic_pkt_verdict quic_pkt_classify(const uint8_t *buf, size_t len, int server,
					struct quic_pkt_inv *inv);

/* ep_wire.c: below the endpoint and its connections. */
/* The entry of connection id (id, len), or NULL. */
struct quic_cid_ent *quic_ep_cid_find(const struct quic_ep *ep, const uint8_t *id, size_t len);
/* Route cid to c: 0, -EEXIST (another connection has it), -EINVAL, -ENOMEM. */
int quic_ep_cid_add(struct quic_ep *ep, struct quic_conn *c, const ngtcp2_cid *cid);
void quic_ep_cid_del(struct quic_ep *ep, const ngtcp2_cid *cid);
/* The peers' stateless reset tokens in the same table (entries marked
 * tok), so that a datagram for no known connection finds the one whose
 * token ends it in one lookup, not a walk over every connection (RFC 9000
 * 10.3.1). add: 0, -EEXIST (another connection holds it: left as is),
 * -ENOMEM; del: only c's entry. */
int quic_ep_rtok_add(struct quic_ep *ep, struct quic_conn *c, const uint8_t *token);
void quic_ep_rtok_del(struct quic_ep *ep, struct quic_conn *c, const uint8_t *token);
struct quic_conn *quic_ep_rtok_conn(const struct quic_ep *ep, const uint8_t *tail);
/* ep_ipcount.c: live connections per source IP. add when c is linked
 * (c->src; no memory: not counted, the limit is then not enforced for
 * it), del when it dies (once; nothing if it was not counted), count of
 * an address, free of the whole table. */
void quic_ep_ip_add(struct quic_ep *ep, struct quic_conn *c);
void quic_ep_ip_del(struct quic_ep *ep, struct quic_conn *c);
size_t quic_ep_ip_count(const struct quic_ep *ep, const struct sockaddr *from);
void quic_ep_ip_free(struct quic_ep *ep);
/* Fill a new connection id of ours (random; routing byte first). */
void quic_ep_cid_gen(const struct quic_ep *ep, uint8_t *id, size_t len);
/* Hand len bytes of gso-byte segments (0: one packet) to the endpoint's
 * send hook, counted in its statistics. */
void quic_ep_send(struct quic_ep *ep, const uint8_t *buf, size_t len, size_t gso,
		  const ngtcp2_path *path);

/* aead.c: 1-RTT packet protection on gcm.h where ep->gcm says so. */
/* The gcm.h width for a quic_aead choice (0: GnuTLS): 0, -EINVAL or
 * -EOPNOTSUPP (a width this CPU lacks). */
int quic_aead_resolve(enum quic_aead a, int *gcm);
/* auto's rule on measured figures (quic_aead_auto's ns[], 0: not run):
 * the fastest width if it takes at most 90% of GnuTLS's time, else GnuTLS
 * (GnuTLS unmeasured: the fastest width). */
enum quic_aead quic_aead_pick(const unsigned int ns[4]);
/* GnuTLS's secret function for a session whose endpoint has ep->gcm:
 * 1-RTT keys of AES-GCM on gcm.h, every other key as ngtcp2's does. */
int quic_aead_secret_cb(gnutls_session_t session, gnutls_record_encryption_level_t level,
			const void *rx_secret, const void *tx_secret, size_t secretlen);
/* ngtcp2 callbacks: on gcm.h's keys, else ngtcp2's GnuTLS ones. */
int quic_aead_encrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			 const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *plaintext,
			 size_t plaintextlen, const uint8_t *nonce, size_t noncelen,
			 const uint8_t *aad, size_t aadlen);
int quic_aead_decrypt_cb(uint8_t *dest, const ngtcp2_crypto_aead *aead,
			 const ngtcp2_crypto_aead_ctx *aead_ctx, const uint8_t *ciphertext,
			 size_t ciphertextlen, const uint8_t *nonce, size_t noncelen,
			 const uint8_t *aad, size_t aadlen);
int quic_aead_update_key_cb(ngtcp2_conn *conn, uint8_t *rx_secret, uint8_t *tx_secret,
			    ngtcp2_crypto_aead_ctx *rx_aead_ctx, uint8_t *rx_iv,
			    ngtcp2_crypto_aead_ctx *tx_aead_ctx, uint8_t *tx_iv,
			    const uint8_t *current_rx_secret, const uint8_t *current_tx_secret,
			    size_t secretlen, void *user_data);
void quic_aead_delete_cb(ngtcp2_conn *conn, ngtcp2_crypto_aead_ctx *aead_ctx, void *user_data);
/* gcm.h keys made for 1-RTT packets in this process so far: each
 * direction's at install, a next-phase key at its first use (not when
 * ngtcp2 derives it ahead). For tests. */
uint64_t quic_aead_keys_made(void);

/* conn.c: one connection (the endpoint's part). */
int quic_conn_new(struct quic_conn **out, struct quic_ep *ep, int server,
		  const ngtcp2_pkt_hd *hd, const ngtcp2_cid *odcid_retry,
		  const struct sockaddr *local, socklen_t local_len,
		  const struct sockaddr *remote, socklen_t remote_len,
		  const uint8_t *expected_key, uint64_t now);
void quic_conn_destroy(struct quic_conn *c);
/* Feed one packet; may move the conn to CLOSING/DRAINING/DEAD. */
void quic_conn_input(struct quic_conn *c, const uint8_t *buf, size_t len,
		     const struct sockaddr *local, socklen_t local_len,
		     const struct sockaddr *remote, socklen_t remote_len, uint64_t now);
uint64_t quic_conn_expiry(const struct quic_conn *c);
/* Does this 16-byte tail match a reset token the peer gave us? */
int quic_conn_reset_match(struct quic_conn *c, const uint8_t *tail);
void quic_conn_timer(struct quic_conn *c, uint64_t now);

/* conn_write.c: the write path. */
/* Write everything that can be written now (queued while ngtcp2 runs). */
void quic_conn_flush(struct quic_conn *c, uint64_t now);
/* May the connection write and run ngtcp2 timers (a server connection:
 * once ngtcp2 negotiated a version)? */
int quic_conn_negotiated(const struct quic_conn *c);
/* Largest datagram the endpoint builds (max_udp_payload or lo_udp_payload). */
size_t quic_ep_max_tx(const struct quic_ep *ep);
/* Datagram size for c's next packets (conn_write.c): ngtcp2's shaped path
 * size on ordinary paths, lo_udp_payload on a loopback one. */
size_t quic_conn_tx_size(const struct quic_conn *c);
/* Path MTU probing (conn_write.c): a probe's DATAGRAM acknowledged or
 * declared lost (ngtcp2's callbacks; ids of app datagrams are 0). */
#define QUIC_PM_ID_BIT (1ULL << 63)
void quic_conn_pm_acked(struct quic_conn *c, uint64_t id);
void quic_conn_pm_lost(struct quic_conn *c, uint64_t id);
/* When the prober next needs the connection's timer (UINT64_MAX: never),
 * and that timer's turn: 1 when a probe is due (the caller flushes). */
uint64_t quic_conn_pm_expiry(const struct quic_conn *c);
int quic_conn_pm_timer(struct quic_conn *c, uint64_t now);
/* Is sa a loopback address (127/8, ::1, ::ffff:127/104)? */
int quic_sa_loopback(const struct sockaddr *sa, socklen_t len);

/* conn_close.c: the end of a connection. */
/* Keep r as the close reason unless one is set (the first cause wins). */
void quic_conn_set_reason(struct quic_conn *c, enum quic_close_reason r);
/* Send CONNECTION_CLOSE with ccerr and enter the closing period (or, when
 * nothing can be sent, finish at once). */
void quic_conn_enter_closing(struct quic_conn *c, const ngtcp2_connection_close_error *ccerr,
			     uint64_t now);
/* A fatal error rv from ngtcp2 (read, write or timer). */
void quic_conn_fatal(struct quic_conn *c, int rv, uint64_t now);
/* Report on_closed (once) and mark DEAD. */
void quic_conn_finish(struct quic_conn *c);

/* conn_path.c: send through the connection's current path (the direct
 * address when one is set); rewrite an alias source to the set-up address
 * (1 when rewritten). */
void quic_conn_path_send(struct quic_conn *c, const uint8_t *buf, size_t len, size_t gso,
			 const ngtcp2_path *path);
int quic_conn_path_rx(struct quic_conn *c, const struct sockaddr **remote,
		      socklen_t *remote_len);

/* stream_buf.c: the stream send buffers of a connection. */
struct quic_stream *quic_sbuf_find(struct quic_conn *c, int64_t id);
/* A new empty stream of id, linked to c (NULL: no memory). */
struct quic_stream *quic_sbuf_new(struct quic_conn *c, int64_t id);
void quic_sbuf_unlink(struct quic_conn *c, struct quic_stream *s);
/* Free s and its blocks (release() for referenced ones). */
void quic_sbuf_free(struct quic_stream *s);
/* Queue a copy of len bytes (0 or -ENOMEM). */
int quic_sbuf_append(struct quic_stream *s, const uint8_t *data, size_t len);
/* Queue the caller's len bytes in place; release(arg) once no longer read. */
int quic_sbuf_append_ref(struct quic_stream *s, const uint8_t *data, size_t len,
			 void (*release)(void *), void *arg);
/* The peer acknowledged the stream up to offset end: free what it covers. */
void quic_sbuf_ack(struct quic_stream *s, uint64_t end);
void quic_sbuf_abandon(struct quic_conn *c, struct quic_stream *s);
/* Up to max vectors over unsent bytes, covering about want bytes; count. */
size_t quic_sbuf_vecs(struct quic_stream *s, ngtcp2_vec *v, size_t max, size_t want);
/* 1 when s has bytes (or a FIN) not yet handed to ngtcp2. */
int quic_sbuf_waiting(const struct quic_stream *s);
/* Bytes (or a FIN) were queued on s: if it was not waiting, it now waits
 * behind the streams that are. */
void quic_sbuf_wake(struct quic_conn *c, struct quic_stream *s);
/* n bytes of s handed to ngtcp2 (fin: with its FIN); s leaves the ring
 * once nothing more waits. */
void quic_sbuf_sent(struct quic_conn *c, struct quic_stream *s, uint64_t n, int fin);
/* The stream that sends next, or NULL: round robin over the waiting
 * streams, QUIC_SBUF_QUANTUM bytes a turn (the turn ends at the first
 * write that reaches it), skipping those blocked this round. */
struct quic_stream *quic_sbuf_next(struct quic_conn *c);

#endif
