/* SPDX-License-Identifier: MIT */
/*
 * Service call wire format, carried on a QUIC stream (one call or stream
 * per QUIC stream). Every message is a 12-byte header, then variable parts:
 *
 *   off size  field
 *   0   1     version (1)
 *   1   1     type (enum svc_msg_type)
 *   2   1     a: REQUEST/STREAM_OPEN service length (1..64);
 *                RESPONSE/STREAM_END error class; DATA 0
 *   3   1     b: REQUEST/STREAM_OPEN method length (0..64), bit 7 (0x80,
 *                SVC_MSG_F_ASSERTION): a caller assertion follows the
 *                method; else 0
 *   4   4     payload length, big endian (<= the decoder's max payload)
 *   8   4     REQUEST/STREAM_OPEN: timeout in ms (0 = callee default);
 *             RESPONSE/STREAM_END: application status; DATA: 0
 *   12  a     service name (REQUEST/STREAM_OPEN only)
 *   ..  b     method
 *   ..  88    caller assertion, when flagged (weft/svc.h: SVC_ASSERT_LEN)
 *   ..  len   payload
 *
 * docs/SERVICE.md has test vectors. The decoder is incremental and never
 * trusts a length: it checks every header field against the caps before
 * buffering, and grows its buffer only as bytes actually arrive.
 */
#ifndef WEFT_SVC_MSG_H
#define WEFT_SVC_MSG_H

#include <stddef.h>
#include <stdint.h>

#include "weft/svc.h"

#define SVC_MSG_VERSION 1
#define SVC_MSG_HDR_LEN 12
/* Byte 3 of a REQUEST / STREAM_OPEN: an assertion follows the method. A
 * decoder from before this flag rejects it (-EBADMSG): see docs/SERVICE.md,
 * "Caller assertions on the wire". */
#define SVC_MSG_F_ASSERTION 0x80u
/* Default payload cap: 1 MiB, the router's default per-call size limit. */
#define SVC_MSG_DEFAULT_MAX_PAYLOAD (1024u * 1024u)
/* Hard ceiling for any decoder: 64 MiB (the length field could say 4 GiB). */
#define SVC_MSG_MAX_PAYLOAD_CEIL (64u * 1024u * 1024u)

enum svc_msg_type {
	SVC_MSG_REQUEST = 1,	 /* caller -> callee: one call */
	SVC_MSG_RESPONSE = 2,	 /* callee -> caller: its result */
	SVC_MSG_STREAM_OPEN = 3, /* caller -> callee: open a stream (payload = first data) */
	SVC_MSG_STREAM_DATA = 4, /* either way: stream data */
	SVC_MSG_STREAM_END = 5,	 /* either way: stream closed with status + error class */
};

struct svc_msg {
	uint8_t type;	     /* enum svc_msg_type */
	uint8_t err;	     /* enum svc_err (RESPONSE / STREAM_END) */
	uint32_t status;     /* application status (RESPONSE / STREAM_END) */
	uint32_t timeout_ms; /* REQUEST / STREAM_OPEN */
	const char *service; /* REQUEST / STREAM_OPEN; not NUL-terminated */
	size_t service_len;
	const char *method;
	size_t method_len;
	const uint8_t *assertion; /* REQUEST / STREAM_OPEN: SVC_ASSERT_LEN bytes, or NULL */
	const uint8_t *payload;
	size_t payload_len;
};

/* Encoded size of m (header + names + payload). */
size_t svc_msg_len(const struct svc_msg *m);

/*
 * Encode m into out[0..cap). Returns 0, -EINVAL (bad type, name, method,
 * error class or a field that must be zero for the type), -EMSGSIZE
 * (payload over SVC_MSG_MAX_PAYLOAD_CEIL) or -ENOBUFS (cap too small).
 * *out_len receives the length written.
 */
int svc_msg_encode(const struct svc_msg *m, uint8_t *out, size_t cap, size_t *out_len);
/* Same, without the payload bytes (header + names only): lets a sender
 * write the payload from its own buffer. */
int svc_msg_encode_head(const struct svc_msg *m, uint8_t *out, size_t cap, size_t *out_len);

/*
 * One-shot decode of the first message in buf[0..len) (pointers in *m
 * borrow buf). Returns the message length (> 0), -EAGAIN (truncated: need
 * more bytes), -EBADMSG (malformed) or -EMSGSIZE (payload over max_payload).
 */
long svc_msg_decode(struct svc_msg *m, const uint8_t *buf, size_t len, size_t max_payload);

/* Incremental decoder: a value type; init before use, free after. */
struct svc_msg_dec {
	size_t max_payload;
	uint8_t hdr[SVC_MSG_HDR_LEN];
	size_t hdr_have;
	size_t need; /* body bytes announced by a checked header */
	size_t have; /* body bytes buffered */
	uint8_t *buf;
	size_t cap;
	int err; /* sticky error */
	int ready;
	int ext; /* the message carries an assertion */
	struct svc_msg msg;
};

/* max_payload: 0 = SVC_MSG_DEFAULT_MAX_PAYLOAD; capped at the ceiling. */
void svc_msg_dec_init(struct svc_msg_dec *d, size_t max_payload);
/* Releases the buffer; NULL-safe. */
void svc_msg_dec_free(struct svc_msg_dec *d);

/*
 * Feed bytes. Consumes at most one message: *consumed receives how many
 * bytes of buf were used (feed the rest again). Returns 1 when a message is
 * complete (*msg points into the decoder, valid until the next feed or
 * free), 0 when more bytes are needed, or a sticky negative error:
 * -EBADMSG (malformed header or names) or -EMSGSIZE (payload over the cap).
 */
int svc_msg_dec_feed(struct svc_msg_dec *d, const uint8_t *buf, size_t len, size_t *consumed,
		     const struct svc_msg **msg);

#endif
