/* SPDX-License-Identifier: MIT */
/*
 * Push of new share heads to connected subscribers (docs/CONTENT.md "Push
 * to subscribers", wire in docs/PROTOCOL.md "Share head push"): a
 * subscriber keeps one QUIC connection to each publisher it follows (up
 * to CN_WATCH_PUBS) with a watch stream (type CONTENT_ST_WATCH) naming
 * the shares it follows there; the publisher writes each new version's
 * signed BEP 44 item on it at once. The subscriber verifies the item as
 * it would a DHT answer and fetches the version; polling goes on as
 * before, so a lost push costs only latency.
 *
 * watch_wire.c is the codec (pure, no I/O: also the fuzz target's);
 * watch.c the publisher's table of watch streams and the subscriber's
 * thread and connections.
 */
#ifndef WEFT_CONTENT_WATCH_H
#define WEFT_CONTENT_WATCH_H

#include <stddef.h>
#include <stdint.h>

#include "weft/manifest.h"

/* Shares one watch stream names (more are watched by polling alone). */
#define CN_WATCH_NAMES 16
/* Watch streams a publisher keeps (each up to CN_WATCH_NAMES shares), and
 * per subscriber key; past them the stream is answered "full" and ended. */
#define CN_WATCH_SERVE_MAX 256
#define CN_WATCH_PER_PEER 2
/* Publishers a subscriber watches at once (the first found in its heads). */
#define CN_WATCH_PUBS 16
/* A failed watch is tried again after 30 s, doubling up to 960 s. */
#define CN_WATCH_RETRY_MIN_S 30
/* ...but the first failure of a watch that never held is tried again after
 * 5 s: a subscription's first dial, just after a publisher started, often
 * finds no node record yet (in a 21-node lab every subscriber's did, and
 * the version published meanwhile waited 30 s for the watch) */
#define CN_WATCH_RETRY_FIRST_S 5
#define CN_WATCH_RETRY_MAX_S 960
/* Dial by key (record lookup, relay, direct attempts): its deadline. */
#define CN_WATCH_DIAL_MS 10000
/* Verified pushes a connection may queue for the subscriber's thread. */
#define CN_WATCH_QUEUE 8

#define CN_WATCH_VER 1
#define CN_WATCH_F_ACK 0x41    /* 'A': status (1) */
#define CN_WATCH_F_NOTIFY 0x4e /* 'N': name, seq, sig, value */
#define CN_WATCH_OK 0
#define CN_WATCH_FULL 1
#define CN_WATCH_MALFORMED 2
/* Longest request: ver, n, CN_WATCH_NAMES x (len, name). */
#define CN_WATCH_REQ_MAX (2 + CN_WATCH_NAMES * (1 + MANIFEST_MAX_NAME))
/* Longest frame: type, name len, name, seq (8), sig (64), vlen (2), value. */
#define CN_WATCH_FRAME_MAX (1 + 1 + MANIFEST_MAX_NAME + 8 + 64 + 2 + 1000)

struct cn_watch_names {
	unsigned int n;
	uint8_t len[CN_WATCH_NAMES];
	char name[CN_WATCH_NAMES][MANIFEST_MAX_NAME + 1];
};

struct cn_watch_frame {
	uint8_t type;	/* CN_WATCH_F_* */
	uint8_t status; /* ACK */
	/* NOTIFY: pointers into the decoded buffer */
	const char *name;
	size_t name_len;
	int64_t seq;
	const uint8_t *sig, *v;
	size_t vlen;
};

/* Encode a request for names (n 1..CN_WATCH_NAMES, valid share names):
 * its length, or -EINVAL. out holds CN_WATCH_REQ_MAX. */
int cn_watch_req_encode(const struct cn_watch_names *w, uint8_t *out);
/* Decode a request from the first len bytes received: its length when
 * whole, 0 when more bytes are needed, -EPROTO (bad version, count 0 or
 * past CN_WATCH_NAMES, a name empty, too long or not a valid share name). */
int cn_watch_req_decode(const uint8_t *b, size_t len, struct cn_watch_names *w);
/* Encode an ACK frame: 2 bytes. */
int cn_watch_ack_encode(uint8_t status, uint8_t *out);
/* Encode a NOTIFY frame (name a valid share name, vlen <= 1000, seq >= 0):
 * its length, or -EINVAL. out holds CN_WATCH_FRAME_MAX. */
int cn_watch_notify_encode(const char *name, size_t name_len, int64_t seq,
			   const uint8_t sig[64], const uint8_t *v, size_t vlen, uint8_t *out);
/* Decode one frame at the start of b: its length when whole, 0 when more
 * bytes are needed, -EPROTO (unknown type, a bad length, a name that is not
 * a share name, a negative seq). */
int cn_watch_frame_decode(const uint8_t *b, size_t len, struct cn_watch_frame *f);

#endif
