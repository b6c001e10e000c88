// SPDX-License-Identifier: MIT
/*
 * Mesh envelopes (docs/MESH.md "Envelope", docs/PROTOCOL.md "Mesh
 * messages"): a community gossip envelope of kind MESH_GOSSIP_KIND whose
 * payload is the mesh header, the body and the endorsements. The parser
 * checks every byte of the structure before the signatures (the costly
 * part) and says why it refuses.
 */
#include <errno.h>
#include <sodium.h>
#include <string.h>

#include "weft/mesh.h"
#include "mesh_int.h"

static const char *const drop_names[MESH_DROP_N] = {
	"malformed", "too_big", "bad_sig", "future", "expired",
	"ttl", "hop_limit", "duplicate", "rate", "level",
};

static const char *const type_names[MESH_TYPE_MAX + 1] = {
	NULL, "announce", "query", "response", "reserve", "confirm", "cancel", "update", "revoke",
};

const char *mesh_drop_name(enum mesh_drop d)
{
	return (unsigned int)d < MESH_DROP_N ? drop_names[d] : "unknown";
}

const char *mesh_type_name(unsigned int type)
{
	return type <= MESH_TYPE_MAX ? type_names[type] : NULL;
}

int mesh_type_parse(const char *name)
{
	for (unsigned int t = 1; t <= MESH_TYPE_MAX; t++)
		if (!strcmp(name, type_names[t]))
			return (int)t;
	return -EINVAL;
}

static int zeros(const uint8_t *p, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= p[i];
	return acc == 0;
}

/* Whether the type carries a reference (the envelope it answers, updates,
 * revokes, reserves, confirms or cancels). */
static int has_ref(unsigned int type)
{
	return type != MESH_ANNOUNCE && type != MESH_QUERY;
}

static int takes_endorse(unsigned int type)
{
	return type == MESH_ANNOUNCE || type == MESH_UPDATE;
}

static size_t body_cap(unsigned int type)
{
	switch (type) {
	case MESH_ANNOUNCE:
	case MESH_UPDATE:
		return MESH_BODY_ANNOUNCE;
	case MESH_QUERY:
		return MESH_BODY_QUERY;
	case MESH_RESPONSE:
		return MESH_BODY_RESPONSE;
	case MESH_RESERVE:
	case MESH_CONFIRM:
	case MESH_CANCEL:
		return MESH_BODY_SEALED;
	default:
		return 0; /* Revoke: empty */
	}
}

/* The body as its type requires (structure only; a Response's announce is
 * verified by the caller). 0 or MESH_DROP_* + 1. */
static int body_ok(unsigned int type, uint32_t service, const uint8_t *b, size_t len)
{
	const char *f;
	size_t flen;
	uint32_t max;

	switch (type) {
	case MESH_ANNOUNCE:
	case MESH_UPDATE:
		return mesh_body_fields(b, len, NULL, NULL) ? MESH_DROP_MALFORMED + 1 : 0;
	case MESH_QUERY:
		return mesh_query_parse(b, len, &f, &flen, &max) ? MESH_DROP_MALFORMED + 1 : 0;
	case MESH_RESPONSE:
		return 0;
	case MESH_RESERVE:
	case MESH_CONFIRM:
	case MESH_CANCEL:
		/* A box sealed to the recipient's X25519 key (crypto_box_seal). */
		return len >= crypto_box_SEALBYTES ? 0 : MESH_DROP_MALFORMED + 1;
	case MESH_REVOKE:
		return len == 0 ? 0 : MESH_DROP_MALFORMED + 1;
	}
	return MESH_DROP_MALFORMED + 1;
}

/*
 * The mesh payload's structure: header, body by type, endorsements (their
 * bytes only). 0, or the drop reason + 1.
 */
static int payload_parse(const uint8_t *p, size_t len, struct mesh_env *e, const uint8_t **endorse)
{
	size_t blen, off;
	int r;

	if (len < MESH_HDR_LEN + 1u || p[0] != MESH_VERSION)
		return MESH_DROP_MALFORMED + 1;
	e->type = p[1];
	if (e->type < 1 || e->type > MESH_TYPE_MAX)
		return MESH_DROP_MALFORMED + 1;
	e->service = (uint32_t)mesh_rd(p + 2, 4);
	memcpy(e->ref, p + 6, MESH_ID_LEN);
	blen = (size_t)mesh_rd(p + 6 + MESH_ID_LEN, 2);
	if (blen > body_cap(e->type))
		return MESH_DROP_TOO_BIG + 1;
	if (MESH_HDR_LEN + blen + 1u > len)
		return MESH_DROP_MALFORMED + 1;
	e->body = p + MESH_HDR_LEN;
	e->body_len = (uint16_t)blen;
	off = MESH_HDR_LEN + blen;
	e->n_endorse = p[off++];
	if (e->n_endorse > MESH_ENDORSE_MAX || (e->n_endorse && !takes_endorse(e->type)))
		return MESH_DROP_MALFORMED + 1;
	if (off + (size_t)e->n_endorse * MESH_ENDORSE_LEN != len)
		return MESH_DROP_MALFORMED + 1;
	*endorse = p + off;
	if (has_ref(e->type) == zeros(e->ref, MESH_ID_LEN))
		return MESH_DROP_MALFORMED + 1;
	r = body_ok(e->type, e->service, e->body, blen);
	return r;
}

int mesh_env_parse(const uint8_t *buf, size_t len, struct mesh_env *out, enum mesh_drop *why)
{
	const uint8_t *endorse = NULL;
	enum mesh_drop d = MESH_DROP_MALFORMED;
	size_t plen;
	int r;

	memset(out, 0, sizeof(*out));
	if (len < COMM_ENV_HDR_LEN + COMM_SIG_LEN || buf[0] != 1)
		goto drop;
	plen = (size_t)mesh_rd(buf + COMM_ENV_HDR_LEN - 2, 2);
	if (plen > COMM_ENV_MAX_PAYLOAD || len > COMM_ENV_MAX_LEN) {
		d = MESH_DROP_TOO_BIG;
		goto drop;
	}
	if (len != COMM_ENV_HDR_LEN + plen + COMM_SIG_LEN || buf[2] == 0 || buf[2] > COMM_HOPS_MAX ||
	    mesh_rd(buf + 3, 4) != MESH_GOSSIP_KIND)
		goto drop;
	r = payload_parse(buf + COMM_ENV_HDR_LEN, plen, out, &endorse);
	if (r) {
		d = (enum mesh_drop)(r - 1);
		goto drop;
	}
	/* The structure holds: what still fails is a signature. */
	d = MESH_DROP_BAD_SIG;
	if (comm_env_parse(buf, len, &out->g) != 0)
		goto drop;
	for (unsigned int i = 0; i < out->n_endorse; i++) {
		struct mesh_endorse *en = &out->endorse[i];

		if (mesh_endorse_parse(endorse + i * MESH_ENDORSE_LEN, en) != 0)
			goto drop;
		if (en->service != out->service || memcmp(en->provider, out->g.origin, MESH_PK_LEN)) {
			d = MESH_DROP_MALFORMED;
			goto drop;
		}
	}
	if (out->type == MESH_RESPONSE) {
		struct mesh_env in;
		enum mesh_drop iw;

		/* One announce (or update) envelope of the same service. */
		if (mesh_env_parse(out->body, out->body_len, &in, &iw) != 0) {
			d = iw;
			goto drop;
		}
		if ((in.type != MESH_ANNOUNCE && in.type != MESH_UPDATE) ||
		    in.service != out->service) {
			d = MESH_DROP_MALFORMED;
			goto drop;
		}
	}
	return 0;
drop:
	if (why)
		*why = d;
	return -EBADMSG;
}

int mesh_env_build(const uint8_t sk[COMM_SK_LEN], const struct mesh_msg *m, uint8_t *out,
		   size_t cap, size_t *out_len)
{
	uint8_t p[COMM_ENV_MAX_PAYLOAD];
	const uint8_t *endorse;
	struct mesh_env e;
	size_t plen;
	int r;

	*out_len = 0;
	if (m->type < 1 || m->type > MESH_TYPE_MAX || (m->n_endorse && !takes_endorse(m->type)) ||
	    m->n_endorse > MESH_ENDORSE_MAX || (m->body_len && !m->body))
		return -EINVAL;
	if (has_ref(m->type) != (m->ref && !zeros(m->ref, MESH_ID_LEN)))
		return -EINVAL;
	if (m->body_len > body_cap(m->type))
		return -E2BIG;
	plen = MESH_HDR_LEN + m->body_len + 1u + (size_t)m->n_endorse * MESH_ENDORSE_LEN;
	if (plen > sizeof(p))
		return -E2BIG;
	p[0] = MESH_VERSION;
	p[1] = m->type;
	mesh_wr(p + 2, m->service, 4);
	if (m->ref)
		memcpy(p + 6, m->ref, MESH_ID_LEN);
	else
		memset(p + 6, 0, MESH_ID_LEN);
	mesh_wr(p + 6 + MESH_ID_LEN, m->body_len, 2);
	if (m->body_len)
		memcpy(p + MESH_HDR_LEN, m->body, m->body_len);
	p[MESH_HDR_LEN + m->body_len] = m->n_endorse;
	if (m->n_endorse)
		memcpy(p + MESH_HDR_LEN + m->body_len + 1u, m->endorse,
		       (size_t)m->n_endorse * MESH_ENDORSE_LEN);
	memset(&e, 0, sizeof(e));
	r = payload_parse(p, plen, &e, &endorse);
	if (r)
		return r - 1 == MESH_DROP_TOO_BIG ? -E2BIG : -EINVAL;
	r = comm_env_build(sk, MESH_GOSSIP_KIND, m->max_hops, m->ts_ms, m->ttl_s, p, plen, out, cap,
			   out_len);
	if (r)
		return r;
	/* Endorsements and a Response's announce: the parser's word. */
	if (mesh_env_parse(out, *out_len, &e, NULL) != 0) {
		*out_len = 0;
		return -EINVAL;
	}
	return 0;
}

void mesh_limits_default(struct mesh_limits *l)
{
	static const uint8_t hops[MESH_TYPE_MAX + 1] = {
		0, 6, 4, 8, 1, 1, 1, 6, 6,
	};
	static const uint32_t ttl[MESH_TYPE_MAX + 1] = {
		0,
		30u * 86400u, /* Announce: 30 days */
		60u,          /* Query: a minute */
		60u,          /* Response */
		7u * 86400u,  /* Reserve, Confirm, Cancel: may wait in a mailbox */
		7u * 86400u,
		7u * 86400u,
		30u * 86400u, /* Update */
		30u * 86400u, /* Revoke: as long as what it revokes may live */
	};

	memcpy(l->max_hops, hops, sizeof(hops));
	memcpy(l->max_ttl_s, ttl, sizeof(ttl));
	l->future_ms = 60000;
}

int mesh_env_check(const struct mesh_env *e, const struct mesh_limits *l, uint64_t now_ms,
		   enum mesh_drop *why)
{
	unsigned int cap = e->g.max_hops;
	enum mesh_drop d;

	if (l->max_hops[e->type] && l->max_hops[e->type] < cap)
		cap = l->max_hops[e->type];
	if (e->g.hops == 0 || e->g.hops > cap) {
		d = MESH_DROP_HOP_LIMIT;
		goto drop;
	}
	if (e->g.ts_ms > now_ms + l->future_ms) {
		d = MESH_DROP_FUTURE;
		goto drop;
	}
	if (e->g.ts_ms + (uint64_t)e->g.ttl_s * 1000u <= now_ms) {
		d = MESH_DROP_EXPIRED;
		goto drop;
	}
	if (l->max_ttl_s[e->type] && e->g.ttl_s > l->max_ttl_s[e->type]) {
		d = MESH_DROP_TTL;
		goto drop;
	}
	return 0;
drop:
	if (why)
		*why = d;
	return d == MESH_DROP_HOP_LIMIT ? -ELOOP : -ETIME;
}
