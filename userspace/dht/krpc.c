// SPDX-License-Identifier: MIT
/*
 * KRPC message parsing (BEP 5 + BEP 44 arguments) and compact address
 * helpers. Only syntax and argument shapes are checked here; semantic checks
 * (tokens, signatures, seq/cas) happen in serve.c, next to the state.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "dht/dht_int.h"

/* KRPC messages are small: 384 nodes cover 128 values plus every argument. */
#define KRPC_MAX_NODES 384

#define KRPC_METHOD(s, q) { s, sizeof(s) - 1, q }
static const struct {
	const char *name;
	size_t len; /* strlen(name): compared per query without a strlen */
	enum krpc_method q;
} krpc_methods[] = {
    KRPC_METHOD("ping", KRPC_PING),
    KRPC_METHOD("find_node", KRPC_FIND_NODE),
    KRPC_METHOD("get_peers", KRPC_GET_PEERS),
    KRPC_METHOD("announce_peer", KRPC_ANNOUNCE_PEER),
    KRPC_METHOD("get", KRPC_GET),
    KRPC_METHOD("put", KRPC_PUT),
};
#undef KRPC_METHOD

const char *krpc_method_name(enum krpc_method q)
{
	for (size_t i = 0; i < sizeof(krpc_methods) / sizeof(krpc_methods[0]); i++)
		if (krpc_methods[i].q == q)
			return krpc_methods[i].name;
	return "unknown";
}

static const uint8_t *str_n(const struct bencode_doc *d, const struct bencode_node *dict,
			    const char *key, size_t want)
{
	const struct bencode_node *n = bencode_dict_get_type(d, dict, key, BENCODE_STR);

	return n && n->slen == want ? n->s : NULL;
}

static int proto_err(struct krpc_msg *m, const char *msg)
{
	m->err_code = DHT_ERR_PROTOCOL;
	m->err_msg = msg;
	return -EINVAL;
}

static int parse_query(struct krpc_msg *m, const struct bencode_doc *d,
		       const struct bencode_node *root)
{
	const struct bencode_node *q = bencode_dict_get_type(d, root, "q", BENCODE_STR);
	const struct bencode_node *a = bencode_dict_get_type(d, root, "a", BENCODE_DICT);
	const struct bencode_node *n;

	if (!q)
		return proto_err(m, "missing q");
	m->q = KRPC_UNKNOWN;
	for (size_t i = 0; i < sizeof(krpc_methods) / sizeof(krpc_methods[0]); i++)
		if (krpc_methods[i].len == q->slen && !memcmp(krpc_methods[i].name, q->s, q->slen))
			m->q = krpc_methods[i].q;
	if (!a)
		return proto_err(m, "missing a");
	m->id = str_n(d, a, "id", DHT_ID_LEN);
	if (!m->id)
		return proto_err(m, "missing or bad id");
	n = bencode_dict_get_type(d, root, "ro", BENCODE_INT); /* BEP 43: top level */
	m->ro = n && n->i == 1;
	n = bencode_dict_get_type(d, a, "want", BENCODE_LIST);
	if (n) {
		for (const struct bencode_node *w = bencode_first(d, n); w;
		     w = bencode_next(d, w)) {
			if (w->type != BENCODE_STR || w->slen != 2)
				continue;
			if (!memcmp(w->s, "n4", 2))
				m->want4 = 1;
			else if (!memcmp(w->s, "n6", 2))
				m->want6 = 1;
		}
	}
	if (m->q == KRPC_UNKNOWN) {
		m->err_code = DHT_ERR_METHOD;
		m->err_msg = "method unknown";
		return -EINVAL;
	}
	switch (m->q) {
	case KRPC_FIND_NODE:
		m->target = str_n(d, a, "target", DHT_ID_LEN);
		if (!m->target)
			return proto_err(m, "missing or bad target");
		break;
	case KRPC_GET_PEERS:
		m->info_hash = str_n(d, a, "info_hash", DHT_ID_LEN);
		if (!m->info_hash)
			return proto_err(m, "missing or bad info_hash");
		break;
	case KRPC_ANNOUNCE_PEER:
		m->info_hash = str_n(d, a, "info_hash", DHT_ID_LEN);
		if (!m->info_hash)
			return proto_err(m, "missing or bad info_hash");
		n = bencode_dict_get_type(d, a, "implied_port", BENCODE_INT);
		m->implied_port = n && n->i == 1;
		n = bencode_dict_get_type(d, a, "port", BENCODE_INT);
		if (n) {
			m->has_port = 1;
			m->port = n->i;
		}
		if (!m->implied_port && (!n || n->i < 1 || n->i > 65535))
			return proto_err(m, "missing or bad port");
		n = bencode_dict_get_type(d, a, "token", BENCODE_STR);
		if (!n)
			return proto_err(m, "missing token");
		m->token = n->s;
		m->token_len = n->slen;
		/* weft's key claim: exactly DHT_WK_LEN bytes, else ignored */
		m->wk = str_n(d, a, "wk", DHT_WK_LEN);
		break;
	case KRPC_GET:
		m->target = str_n(d, a, "target", DHT_ID_LEN);
		if (!m->target)
			return proto_err(m, "missing or bad target");
		n = bencode_dict_get_type(d, a, "seq", BENCODE_INT);
		if (n) {
			m->has_seq = 1;
			m->seq = n->i;
		}
		break;
	case KRPC_PUT:
		n = bencode_dict_get_type(d, a, "token", BENCODE_STR);
		if (!n)
			return proto_err(m, "missing token");
		m->token = n->s;
		m->token_len = n->slen;
		n = bencode_dict_get(d, a, "v");
		if (!n)
			return proto_err(m, "missing v");
		m->v = n->raw;
		m->vlen = n->rawlen;
		if (m->vlen > DHT_MAX_VALUE) {
			m->err_code = DHT_ERR_V_TOO_BIG;
			m->err_msg = "message (v field) too big";
			return -EINVAL;
		}
		n = bencode_dict_get_type(d, a, "salt", BENCODE_STR);
		if (n) {
			m->has_salt = 1;
			m->salt = n->s;
			m->salt_len = n->slen;
			if (n->slen > DHT_MAX_SALT) {
				m->err_code = DHT_ERR_SALT_TOO_BIG;
				m->err_msg = "salt (salt field) too big";
				return -EINVAL;
			}
		}
		if (bencode_dict_get(d, a, "k") || bencode_dict_get(d, a, "sig")) {
			m->k = str_n(d, a, "k", DHT_PK_LEN);
			m->sig = str_n(d, a, "sig", DHT_SIG_LEN);
			if (!m->k)
				return proto_err(m, "bad k");
			if (!m->sig)
				return proto_err(m, "bad sig");
			n = bencode_dict_get_type(d, a, "seq", BENCODE_INT);
			if (!n)
				return proto_err(m, "missing seq");
			m->has_seq = 1;
			m->seq = n->i;
			n = bencode_dict_get_type(d, a, "cas", BENCODE_INT);
			if (n) {
				m->has_cas = 1;
				m->cas = n->i;
			}
		}
		break;
	default:
		break;
	}
	return 0;
}

static int parse_reply(struct krpc_msg *m, const struct bencode_doc *d,
		       const struct bencode_node *root)
{
	const struct bencode_node *r = bencode_dict_get_type(d, root, "r", BENCODE_DICT);
	const struct bencode_node *n;

	if (!r)
		return -EINVAL;
	m->id = str_n(d, r, "id", DHT_ID_LEN);
	if (!m->id)
		return -EINVAL;
	n = bencode_dict_get_type(d, r, "nodes", BENCODE_STR);
	if (n && n->slen % 26 == 0) {
		m->nodes = n->s;
		m->nodes_len = n->slen;
	}
	n = bencode_dict_get_type(d, r, "nodes6", BENCODE_STR);
	if (n && n->slen % 38 == 0) {
		m->nodes6 = n->s;
		m->nodes6_len = n->slen;
	}
	n = bencode_dict_get_type(d, r, "values", BENCODE_LIST);
	for (const struct bencode_node *v = bencode_first(d, n);
	     v && m->nvalues < DHT_MAX_VALUES_IN; v = bencode_next(d, v)) {
		if (v->type != BENCODE_STR || (v->slen != 6 && v->slen != 18))
			continue;
		m->values[m->nvalues] = v->s;
		m->values_len[m->nvalues++] = (uint8_t)v->slen;
	}
	/* weft's key claims: compact peer || DHT_WK_LEN bytes; other lengths skipped */
	n = bencode_dict_get_type(d, r, "wk", BENCODE_LIST);
	for (const struct bencode_node *v = bencode_first(d, n); v && m->nwks < DHT_MAX_WK_IN;
	     v = bencode_next(d, v)) {
		if (v->type != BENCODE_STR ||
		    (v->slen != 6 + DHT_WK_LEN && v->slen != 18 + DHT_WK_LEN))
			continue;
		m->wks[m->nwks] = v->s;
		m->wks_len[m->nwks++] = (uint8_t)v->slen;
	}
	n = bencode_dict_get_type(d, r, "token", BENCODE_STR);
	if (n && n->slen <= 32) {
		m->token = n->s;
		m->token_len = n->slen;
	}
	n = bencode_dict_get(d, r, "v");
	if (n) {
		m->v = n->raw;
		m->vlen = n->rawlen;
	}
	m->k = str_n(d, r, "k", DHT_PK_LEN);
	m->sig = str_n(d, r, "sig", DHT_SIG_LEN);
	n = bencode_dict_get_type(d, r, "seq", BENCODE_INT);
	if (n) {
		m->has_seq = 1;
		m->seq = n->i;
	}
	return 0;
}

int krpc_parse(struct krpc_msg *m, const uint8_t *buf, size_t len)
{
	struct bencode_node nodes[KRPC_MAX_NODES];
	struct bencode_doc d = {.nodes = nodes, .cap = KRPC_MAX_NODES, .max_depth = 16};
	const struct bencode_node *root, *n;

	memset(m, 0, sizeof(*m));
	if (bencode_decode(&d, buf, len, 0, NULL) != 0)
		return -EINVAL;
	root = bencode_root(&d);
	if (!root || root->type != BENCODE_DICT)
		return -EINVAL;
	n = bencode_dict_get_type(&d, root, "t", BENCODE_STR);
	if (!n || n->slen == 0 || n->slen > 32)
		return -EINVAL;
	m->t = n->s;
	m->tlen = n->slen;
	n = bencode_dict_get_type(&d, root, "ip", BENCODE_STR);
	if (n && (n->slen == 6 || n->slen == 18)) {
		m->ip = n->s;
		m->ip_len = n->slen;
	}
	n = bencode_dict_get_type(&d, root, "y", BENCODE_STR);
	if (!n || n->slen != 1)
		return proto_err(m, "missing y");
	m->y = (char)n->s[0];
	switch (m->y) {
	case 'q':
		return parse_query(m, &d, root);
	case 'r':
		return parse_reply(m, &d, root);
	case 'e': {
		const struct bencode_node *e = bencode_dict_get_type(&d, root, "e", BENCODE_LIST);
		const struct bencode_node *c = bencode_first(&d, e);

		if (!c || c->type != BENCODE_INT)
			return -EINVAL;
		m->ecode = c->i;
		return 0;
	}
	default:
		return proto_err(m, "bad y");
	}
}

int dht_addr_ip(const struct sockaddr *sa, const uint8_t **ip)
{
	if (sa->sa_family == AF_INET) {
		*ip = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
		return 4;
	}
	if (sa->sa_family == AF_INET6) {
		*ip = (const uint8_t *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
		return 16;
	}
	*ip = NULL;
	return 0;
}

int dht_addr_compact(const struct sockaddr *sa, uint8_t *out)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s = (const struct sockaddr_in *)sa;

		memcpy(out, &s->sin_addr, 4);
		memcpy(out + 4, &s->sin_port, 2);
		return 6;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)sa;

		memcpy(out, &s->sin6_addr, 16);
		memcpy(out + 16, &s->sin6_port, 2);
		return 18;
	}
	return 0;
}

int dht_addr_from_compact(const uint8_t *c, size_t len, struct sockaddr_storage *ss,
			  socklen_t *sslen)
{
	memset(ss, 0, sizeof(*ss));
	if (len == 6) {
		struct sockaddr_in *s = (struct sockaddr_in *)ss;

		s->sin_family = AF_INET;
		memcpy(&s->sin_addr, c, 4);
		memcpy(&s->sin_port, c + 4, 2);
		*sslen = sizeof(*s);
		return s->sin_port ? 0 : -EINVAL;
	}
	if (len == 18) {
		struct sockaddr_in6 *s = (struct sockaddr_in6 *)ss;

		s->sin6_family = AF_INET6;
		memcpy(&s->sin6_addr, c, 16);
		memcpy(&s->sin6_port, c + 16, 2);
		*sslen = sizeof(*s);
		return s->sin6_port ? 0 : -EINVAL;
	}
	return -EINVAL;
}

int dht_addr_eq(const struct sockaddr *a, const struct sockaddr *b)
{
	uint8_t ca[18], cb[18];
	int la = dht_addr_compact(a, ca), lb = dht_addr_compact(b, cb);

	return la && la == lb && !memcmp(ca, cb, (size_t)la);
}
