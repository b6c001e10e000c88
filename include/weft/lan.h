/* SPDX-License-Identifier: MIT */
/*
 * LAN discovery: BEP 14 Local Service Discovery (docs/CONNECTIVITY.md,
 * "LAN discovery"; the message in docs/PROTOCOL.md).
 *
 * Two parts:
 * - the core without I/O (userspace/lan/lsd.c, lsd_tab.c): the message's
 *   parser and encoder, the announce schedule (BEP 14's rates), and the
 *   table of LAN peers heard (bounded, rate-limited per source and
 *   overall, the providers they announced);
 * - the node part (userspace/lan/lan_node.c): a UDP socket per family of
 *   its own (not the engine's data path) joined to the multicast groups
 *   on the configured interfaces, one thread that sends the node's
 *   announces and takes the LAN's: LAN peers become DHT contacts (pinged:
 *   a contact enters the routing table only when it answers) and, for
 *   weft peers, swarm providers of the infohashes they announce.
 */
#ifndef WEFT_LAN_H
#define WEFT_LAN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define LSD_PORT 6771
#define LSD_GROUP4 "239.192.152.143"
#define LSD_GROUP6 "ff15::efc0:988f"
#define LSD_IH_LEN 20
/* BEP 14: "the packet length should not exceed 1400 bytes". We send at
 * most that; we take at most LSD_MAX_RECV (a full Ethernet payload). */
#define LSD_MAX_SEND 1400
#define LSD_MAX_RECV 1500
/* Header lines in one message (request line not counted); more: refused. */
#define LSD_MAX_HEADERS 32
/* Infohashes taken from one message; the rest are ignored and counted.
 * Also how many one message of ours carries (fits in LSD_MAX_SEND). */
#define LSD_MAX_IH 20

/* One BT-SEARCH message, parsed or to encode. */
struct lsd_msg {
	uint16_t port;	     /* Port: the BitTorrent port (weft: its DHT port) */
	uint16_t weft_quic;  /* x-weft-quic: 0 = absent (not a weft node) */
	uint16_t weft_dht;   /* x-weft-dht: 0 = absent */
	int has_cookie;	     /* cookie: present and valid hex (<= 8 digits) */
	uint32_t cookie;
	unsigned int nih;			/* infohashes in ih[] */
	uint8_t ih[LSD_MAX_IH][LSD_IH_LEN];	/* distinct, none all-zero */
	unsigned int ih_ignored; /* malformed, all-zero, repeated or past LSD_MAX_IH */
};

/*
 * Parse one datagram (buf, len: no NUL assumed, every length checked).
 * Accepted: a request line "BT-SEARCH * HTTP/1.x" (method case-insensitive),
 * header lines "Name: value" ended by CRLF or LF, names case-insensitive,
 * at most LSD_MAX_HEADERS, then an empty line or the end of the datagram.
 * Port is required (decimal, 1..65535, once). Unknown headers (Host
 * included) are ignored. Returns 0; -EINVAL (not a BT-SEARCH, a malformed
 * line, Port missing, repeated or invalid); -E2BIG (len > LSD_MAX_RECV or
 * too many headers).
 */
int lsd_parse(const uint8_t *buf, size_t len, struct lsd_msg *m);
/*
 * Encode m for the IPv4 (v6 = 0) or IPv6 group into buf (cap bytes; no
 * NUL written). The cookie is written when has_cookie, the x-weft headers
 * when non-zero. Returns the length, or -ENOSPC (cap too small), -EINVAL
 * (port 0, nih > LSD_MAX_IH).
 */
int lsd_encode(char *buf, size_t cap, const struct lsd_msg *m, int v6);

/* ------------------------------------------------------------ schedule */

/* BEP 14: each infohash every 5 minutes, no more than one announce (one
 * message per interface) a minute; several infohashes per message. */
#define LSD_ANNOUNCE_MS 300000u
#define LSD_MIN_GAP_MS 60000u
#define LSD_SCHED_MAX 1024u /* infohashes the schedule keeps (the node's first) */

struct lsd_sched;
/* announce_ms / min_gap_ms: 0 = the defaults above. -ENOMEM. */
int lsd_sched_new(struct lsd_sched **out, uint64_t announce_ms, uint64_t min_gap_ms);
void lsd_sched_free(struct lsd_sched *s);
/* Replace the set of infohashes to announce (n of them, at most
 * LSD_SCHED_MAX kept); those already known keep their last announce. */
int lsd_sched_set(struct lsd_sched *s, const uint8_t (*ih)[LSD_IH_LEN], size_t n);
/*
 * What to send at now: >= 0 infohashes written to out (cap, at most
 * LSD_MAX_IH used): send one message now (0 infohashes: a presence
 * message, sent when nothing is due for announce_ms, and first of all).
 * -EAGAIN: nothing now; *wake_ms says when to ask again.
 */
int lsd_sched_next(struct lsd_sched *s, uint64_t now, uint8_t (*out)[LSD_IH_LEN], size_t cap,
		   uint64_t *wake_ms);

/* -------------------------------------------------------------- peers */

#define LSD_MAX_PEERS 256      /* LAN peers kept (lan.max_peers) */
#define LSD_MAX_PROVIDERS 4096 /* (infohash, weft peer) pairs kept */
#define LSD_PEER_TTL_MS 900000u /* a peer not heard for 3 announce periods goes */
#define LSD_PING_MS 300000u	/* a peer's DHT contact is pinged at most this often */
#define LSD_SRC_BURST 16	/* messages from one source at once ... */
#define LSD_SRC_EVERY_MS 2000	/* ... then one every 2 s */
#define LSD_RX_PER_S 200	/* messages taken a second, all sources */
#define LSD_PEER_IH 8		/* infohashes shown per peer (status) */

struct lsd_tab;
/* max_peers: 0 = LSD_MAX_PEERS. -ENOMEM. */
int lsd_tab_new(struct lsd_tab **out, unsigned int max_peers);
void lsd_tab_free(struct lsd_tab *t);
/* The overall budget: 1 when one more message may be parsed at now, 0
 * when over LSD_RX_PER_S (drop it unparsed). */
int lsd_tab_admit(struct lsd_tab *t, uint64_t now);

/* What the caller does after lsd_tab_input. */
struct lsd_action {
	int new_peer;			/* first heard (or heard again after its TTL) */
	int ping;			/* ping this DHT contact now */
	struct sockaddr_storage contact; /* source address, DHT port */
	socklen_t contact_len;
};
/*
 * A message m from (from, fromlen) at now. Records the peer (source
 * address; its ports), and for a weft peer (x-weft-quic) the infohashes it
 * provides, at its source address and QUIC port. Returns 0 (act filled);
 * -EAGAIN (the source is over its rate: nothing recorded); -ENOSPC (a new
 * source while the table is full of peers heard within their TTL: a flood
 * of forged sources cannot push out the peers known); -EINVAL (address
 * family).
 */
int lsd_tab_input(struct lsd_tab *t, const struct sockaddr *from, socklen_t fromlen,
		  const struct lsd_msg *m, uint64_t now, struct lsd_action *act);
/* Providers heard for ih (weft peers, within their TTL), QUIC address,
 * newest first: how many written to out (at most cap). */
size_t lsd_tab_providers(struct lsd_tab *t, const uint8_t ih[LSD_IH_LEN], uint64_t now,
			 struct sockaddr_storage *out, size_t cap);

struct lsd_peer_info {
	struct sockaddr_storage addr; /* source, port = its Port header */
	uint16_t port, weft_quic, weft_dht;
	uint64_t first_ms, last_ms, msgs;
	unsigned int nih;		      /* last infohashes heard, newest first */
	uint8_t ih[LSD_PEER_IH][LSD_IH_LEN];
};
/* The i-th live peer (0-based): 0, or -ENOENT past the end. */
int lsd_tab_peer(struct lsd_tab *t, unsigned int i, uint64_t now, struct lsd_peer_info *out);
size_t lsd_tab_count(struct lsd_tab *t, uint64_t now);

/* ---------------------------------------------------------- the node */

struct ctl;
struct dhtnode;
struct content_node;
struct lan_node;

#define LAN_MAX_IFACES 16

struct lan_node_opts {
	struct ctl *ctl;		 /* optional: GET /v1/lan and /metrics */
	struct dhtnode *dht;		 /* optional: LAN peers become DHT contacts */
	struct content_node *content;	 /* optional: what we seed; LAN providers */
	uint16_t quic_port, dht_port;	 /* announced (x-weft-quic, Port and x-weft-dht) */
	const char *interfaces;		 /* "eth0,wlan0"; "" or NULL = every up,
					  * multicast, non-loopback interface */
	unsigned int max_peers;		 /* 0 = LSD_MAX_PEERS */
	unsigned int announce_s, min_gap_s; /* 0 = BEP 14's 300 s and 60 s */
	uint16_t lsd_port;		 /* 0 = LSD_PORT (tests only) */
};

/* Open the sockets, join the groups, register the route and metrics.
 * Returns 0, -ENODEV (no usable interface), -EINVAL (an interface name
 * unknown, more than LAN_MAX_IFACES), -errno. */
int lan_node_new(struct lan_node **out, const struct lan_node_opts *opts);
/* Start the thread (announce at once). 0 or -errno. */
int lan_node_start(struct lan_node *ln);
/* Stop the thread (it reads content and pings the DHT): before the
 * content and DHT nodes are freed. NULL-safe, idempotent. */
void lan_node_stop(struct lan_node *ln);
/* Stop, close the sockets, free. After content_node_free() (downloads
 * ask this node for LAN providers until then). NULL-safe. */
void lan_node_free(struct lan_node *ln);

#endif
