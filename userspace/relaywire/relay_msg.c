// SPDX-License-Identifier: MIT
/*
 * Relay control messages (docs/PROTOCOL.md, "Relay control"): framed
 * type (1) | body length (2, big endian) | body, one exact body length per
 * type; and the check of the answer to a circuit bind.
 */
#include <errno.h>
#include <string.h>

#include "weft/conn.h"
#include "weft/relay_wire.h"

static const char *const status_names[RELAY_E__MAX] = {
	[RELAY_OK] = "ok",
	[RELAY_E_NOT_RELAY] = "not_relay",
	[RELAY_E_NO_RESERVATION] = "no_reservation",
	[RELAY_E_REFUSED] = "refused",
	[RELAY_E_RESERVATIONS] = "reservations_full",
	[RELAY_E_CIRCUITS] = "circuits_full",
	[RELAY_E_ADDR_LIMIT] = "addr_limit",
	[RELAY_E_NO_CAPACITY] = "no_capacity",
	[RELAY_E_TIMEOUT] = "timeout",
	[RELAY_E_BAD_REQUEST] = "bad_request",
	[RELAY_E_CHURN] = "churn",
};

const char *relay_status_name(unsigned int st)
{
	return st < RELAY_E__MAX ? status_names[st] : "unknown";
}

const char *relay_end_name(unsigned int reason)
{
	static const char *const names[RELAY_ENDED_MAX + 1] = { "unknown", "deleted", "lifetime",
								"idle", "byte_limit" };

	return reason <= RELAY_ENDED_MAX ? names[reason] : "unknown";
}

/* Body length of each type; -1: unknown type. */
static int body_len(unsigned int type)
{
	switch (type) {
	case RELAY_MSG_RESERVE:
		return 0;
	case RELAY_MSG_RESERVED:
		return 5;
	case RELAY_MSG_CONNECT:
		return RELAY_KEY_LEN;
	case RELAY_MSG_CIRCUIT:
		return 1 + 2 + RELAY_TOKEN_LEN + 8 + 4 + 8;
	case RELAY_MSG_OFFER:
		return RELAY_KEY_LEN + 8;
	case RELAY_MSG_ANSWER:
		return 1;
	case RELAY_MSG_ENDED:
		return 8 + 2 + 1;
	}
	return -1;
}

static uint8_t *put_be(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
	return p + n;
}

static uint64_t get_be(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

int relay_msg_encode(const struct relay_msg *m, uint8_t *out, size_t cap)
{
	int bl = m ? body_len(m->type) : -1;
	uint8_t *p;

	if (bl < 0 || !out)
		return -EINVAL;
	if (cap < (size_t)(RELAY_MSG_HDR + bl))
		return -ENOBUFS;
	p = put_be(out, m->type, 1);
	p = put_be(p, (uint64_t)bl, 2);
	switch (m->type) {
	case RELAY_MSG_RESERVED:
		p = put_be(p, m->status, 1);
		put_be(p, m->ttl_s, 4);
		break;
	case RELAY_MSG_CONNECT:
		memcpy(p, m->key, RELAY_KEY_LEN);
		break;
	case RELAY_MSG_CIRCUIT:
		p = put_be(p, m->status, 1);
		p = put_be(p, m->port, 2);
		memcpy(p, m->token, RELAY_TOKEN_LEN);
		p += RELAY_TOKEN_LEN;
		p = put_be(p, m->circuit, 8);
		p = put_be(p, m->lifetime_ms, 4);
		put_be(p, m->max_bytes, 8);
		break;
	case RELAY_MSG_OFFER:
		memcpy(p, m->key, RELAY_KEY_LEN);
		put_be(p + RELAY_KEY_LEN, m->circuit, 8);
		break;
	case RELAY_MSG_ANSWER:
		put_be(p, m->status, 1);
		break;
	case RELAY_MSG_ENDED:
		p = put_be(p, m->circuit, 8);
		p = put_be(p, m->port, 2);
		put_be(p, m->reason, 1);
		break;
	}
	return RELAY_MSG_HDR + bl;
}

int relay_msg_parse(const uint8_t *buf, size_t len, struct relay_msg *m)
{
	const uint8_t *p;
	int bl;

	if (!buf || !m)
		return -EINVAL;
	if (len < 1)
		return 0;
	bl = body_len(buf[0]);
	if (bl < 0)
		return -EINVAL;
	if (len < RELAY_MSG_HDR)
		return 0;
	if (get_be(buf + 1, 2) != (uint64_t)bl)
		return -EINVAL;
	if (len < (size_t)(RELAY_MSG_HDR + bl))
		return 0;
	memset(m, 0, sizeof(*m));
	m->type = buf[0];
	p = buf + RELAY_MSG_HDR;
	switch (m->type) {
	case RELAY_MSG_RESERVED:
		m->status = p[0];
		m->ttl_s = (uint32_t)get_be(p + 1, 4);
		break;
	case RELAY_MSG_CONNECT:
		memcpy(m->key, p, RELAY_KEY_LEN);
		break;
	case RELAY_MSG_CIRCUIT:
		m->status = p[0];
		m->port = (uint16_t)get_be(p + 1, 2);
		memcpy(m->token, p + 3, RELAY_TOKEN_LEN);
		m->circuit = get_be(p + 3 + RELAY_TOKEN_LEN, 8);
		m->lifetime_ms = (uint32_t)get_be(p + 11 + RELAY_TOKEN_LEN, 4);
		m->max_bytes = get_be(p + 15 + RELAY_TOKEN_LEN, 8);
		/* A granted circuit names a port; a refusal carries a status. */
		if (m->status == RELAY_OK && m->port == 0)
			return -EINVAL;
		break;
	case RELAY_MSG_OFFER:
		memcpy(m->key, p, RELAY_KEY_LEN);
		m->circuit = get_be(p + RELAY_KEY_LEN, 8);
		break;
	case RELAY_MSG_ANSWER:
		m->status = p[0];
		break;
	case RELAY_MSG_ENDED:
		m->circuit = get_be(p, 8);
		m->port = (uint16_t)get_be(p + 8, 2);
		m->reason = p[10];
		/* An ended circuit had a port, and ended for a known reason. */
		if (m->port == 0 || m->reason == 0 || m->reason > RELAY_ENDED_MAX)
			return -EINVAL;
		break;
	}
	return RELAY_MSG_HDR + bl;
}

int relay_bind_is_response(const uint8_t *buf, size_t len, uint8_t tid[12])
{
	/* Binding success response: class 10, method 0x001 (RFC 8489 5). */
	if (!buf || !conn_stun_is(buf, len) || buf[0] != 0x01 || buf[1] != 0x01)
		return 0;
	memcpy(tid, buf + 8, 12);
	return 1;
}
