/* SPDX-License-Identifier: MIT */
/*
 * The relay's wire formats, without I/O (module userspace/relaywire):
 *  - the control protocol (relay_msg_*): messages on QUIC streams of type
 *    RELAY_ST_CTL, framed type | length | body; strict parser
 *    (docs/PROTOCOL.md, "Relay control"; fuzzed by
 *    tests/fuzz/fuzz_relay_msg.c), and the names of its status and end
 *    codes (relay_status_name, relay_end_name), which QUIC's dial report
 *    and the relay's control routes both print;
 *  - the circuit bind (relay_bind_*): the STUN Binding request an end
 *    sends to relay:PORT from its QUIC socket, and the answer it waits for
 *    (docs/PROTOCOL.md, "Relay bind").
 * It sits below quic/ and relay/ in the module order (docs/ARCHITECTURE.md),
 * so both use it without one calling the other.
 */
#ifndef WEFT_RELAY_WIRE_H
#define WEFT_RELAY_WIRE_H

#include <stddef.h>
#include <stdint.h>

/* circuit end token (WEFT-CIRCUIT value) */
#define RELAY_TOKEN_LEN 16
/* STUN attribute carrying the token: comprehension-optional range
 * (0x8000-0xFFFF), so a plain STUN server ignores it. */
#define RELAY_STUN_ATTR 0xC057
/* A bind request: 20-byte header + WEFT-CIRCUIT (4 + 16) + FINGERPRINT (8). */
#define RELAY_BIND_LEN 48

/* ------------------------------------------------------------ messages */

#define RELAY_ST_CTL 0x40  /* QUIC stream type of the relay control protocol */
#define RELAY_KEY_LEN 32   /* node key */
#define RELAY_MSG_HDR 3	   /* type (1) | body length (2, big endian) */
#define RELAY_MSG_MAX 64   /* largest message, header included */

enum relay_msg_type {
	RELAY_MSG_RESERVE = 0x01,  /* node -> relay: take or refresh a reservation; no body */
	RELAY_MSG_RESERVED = 0x02, /* relay -> node: status (1) | ttl_s (4) */
	RELAY_MSG_CONNECT = 0x03,  /* dialler -> relay: target key (32) */
	RELAY_MSG_CIRCUIT = 0x04,  /* relay -> each end: status (1) | port (2) | token (16) |
				      circuit id (8) | lifetime_ms (4) | max_bytes (8) */
	RELAY_MSG_OFFER = 0x05,	   /* relay -> reserved node: dialler key (32) | circuit id (8) */
	RELAY_MSG_ANSWER = 0x06,   /* reserved node -> relay: status (1): 0 accept, else refuse */
	RELAY_MSG_ENDED = 0x07,	   /* relay -> holder (reservation stream): circuit id (8) |
				      port (2) | reason (1): the data plane ended the circuit */
};

/* ENDED's reason: the RELAY_END_* codes of include/weft/relay_fwd.h. */
#define RELAY_ENDED_MAX 4
/* "deleted", "lifetime", "idle", "byte_limit" ("unknown" if out of range). */
const char *relay_end_name(unsigned int reason);

/* Status codes of RESERVED, CIRCUIT and ANSWER (one space). */
enum relay_status {
	RELAY_OK = 0,
	RELAY_E_NOT_RELAY = 1,	    /* relaying is not enabled on this node */
	RELAY_E_NO_RESERVATION = 2, /* the target holds no reservation here */
	RELAY_E_REFUSED = 3,	    /* the target refused the circuit */
	RELAY_E_RESERVATIONS = 4,   /* relay.max_reservations reached */
	RELAY_E_CIRCUITS = 5,	    /* relay.circuits_per_reservation reached for the target */
	RELAY_E_ADDR_LIMIT = 6,	    /* relay.reservations_per_addr reached for the source */
	RELAY_E_NO_CAPACITY = 7,    /* the data plane has no free port or circuit */
	RELAY_E_TIMEOUT = 8,	    /* the target did not answer the offer in time */
	RELAY_E_BAD_REQUEST = 9,    /* malformed or unexpected message */
	RELAY_E_CHURN = 10,	    /* too many new reservations from this source */
	RELAY_E__MAX
};
/* "ok", "not_relay", "no_reservation", "refused", ... ("unknown" if out of range). */
const char *relay_status_name(unsigned int st);

struct relay_msg {
	uint8_t type;	/* enum relay_msg_type */
	uint8_t status; /* RESERVED, CIRCUIT, ANSWER */
	uint32_t ttl_s; /* RESERVED */
	uint8_t key[RELAY_KEY_LEN]; /* CONNECT: target; OFFER: dialler */
	uint16_t port;		    /* CIRCUIT, ENDED: relay port */
	uint8_t token[RELAY_TOKEN_LEN]; /* CIRCUIT: this end's token */
	uint64_t circuit;	    /* CIRCUIT, OFFER, ENDED */
	uint32_t lifetime_ms;	    /* CIRCUIT */
	uint64_t max_bytes;	    /* CIRCUIT */
	uint8_t reason;		    /* ENDED: 1..RELAY_ENDED_MAX */
};

/* Encode m into out. Returns the length, -EINVAL (unknown type), -ENOBUFS. */
int relay_msg_encode(const struct relay_msg *m, uint8_t *out, size_t cap);
/*
 * Parse one message from the front of buf. Every type has one exact body
 * length; anything else is malformed. Returns the bytes consumed (> 0),
 * 0 when buf holds only part of a message (wait for more; never more than
 * RELAY_MSG_MAX bytes are needed), -EINVAL (unknown type, wrong length).
 */
int relay_msg_parse(const uint8_t *buf, size_t len, struct relay_msg *m);

/* ---- the bind message (docs/PROTOCOL.md, "Relay bind") ---- */

/*
 * Build a bind request (what an end sends to relay:PORT): STUN Binding
 * request, transaction id tid, WEFT-CIRCUIT = tok, FINGERPRINT. Returns
 * RELAY_BIND_LEN or -ENOBUFS (cap too small).
 */
int relay_bind_request(const uint8_t tok[RELAY_TOKEN_LEN], const uint8_t tid[12], uint8_t *out,
		       size_t cap);
/*
 * Parse a bind request: a STUN Binding request carrying exactly one
 * WEFT-CIRCUIT of 16 bytes and a valid FINGERPRINT as its last attribute,
 * every length checked. Copies the token into tok. Returns 0, -EINVAL
 * (anything else, including other STUN messages).
 */
int relay_bind_parse(const uint8_t *buf, size_t len, uint8_t tok[RELAY_TOKEN_LEN]);

/* 1 if buf is a Binding success response (class and method checked, the
 * magic cookie, a length that matches len); its transaction id into tid. */
int relay_bind_is_response(const uint8_t *buf, size_t len, uint8_t tid[12]);

#endif
