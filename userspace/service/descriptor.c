// SPDX-License-Identifier: MIT
/*
 * Service descriptors: canonical bencode encoding, Ed25519 signature,
 * strict decoding and verification. Layout (docs/SERVICE.md):
 *
 *   d 1:d <body> 1:s 64:<signature> e
 *   body = d 1:c i<created>e 1:e l<endpoint strings>e 1:m d<key> <value>...e
 *            1:n <name> 1:o 32:<owner> 1:v i<version>e 1:x i<expires>e e
 *
 * signature = Ed25519(owner, SVC_DESC_SIG_DOMAIN || body).
 * Canonical: every key present exactly once, sorted, integers without
 * leading zeros, endpoints in the form inet_ntop prints. The decoder
 * accepts exactly what the encoder writes and nothing else.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "weft/bencode.h"
#include "weft/svc.h"
#include "weft/util.h"

/* Node budget for the decoder: a descriptor within every cap needs at most
 * 47 nodes; anything needing more than 128 is over a cap. */
#define SVC_DESC_NODES 128

static int svc_meta_key_valid(const uint8_t *k, size_t len)
{
	if (len == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = k[i];

		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

/* Canonical endpoint check: parses and prints back to the same bytes.
 * Port 0 is refused (nothing listens there). 0, -EMSGSIZE or -EINVAL. */
static int svc_endpoint_check(const char *s, size_t len)
{
	char tmp[SVC_DESC_ENDPOINT_MAX + 1], back[64];
	struct sockaddr_storage ss;
	unsigned int sslen;

	if (len > SVC_DESC_ENDPOINT_MAX)
		return -EMSGSIZE;
	if (len == 0 || memchr(s, '\0', len))
		return -EINVAL;
	memcpy(tmp, s, len);
	tmp[len] = '\0';
	if (util_parse_addr(tmp, &ss, &sslen))
		return -EINVAL;
	util_fmt_addr(&ss, back, sizeof(back));
	if (strcmp(back, tmp) != 0)
		return -EINVAL;
	if (back[len - 2] == ':' && back[len - 1] == '0')
		return -EINVAL;
	return 0;
}

static int svc_meta_cmp(const void *a, const void *b)
{
	const struct svc_meta *x = a, *y = b;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Field checks shared by the encoder and the decoder (caps -> -EMSGSIZE,
 * everything else -> -EINVAL). meta must already be sorted. */
static int svc_desc_check_fields(const struct svc_desc *d)
{
	size_t meta_bytes = 0;
	int err;

	if (d->name_len > SVC_NAME_MAX)
		return -EMSGSIZE;
	if (!svc_name_valid((const uint8_t *)d->name, d->name_len))
		return -EINVAL;
	if (d->n_endpoints > SVC_DESC_MAX_ENDPOINTS || d->n_meta > SVC_DESC_MAX_META)
		return -EMSGSIZE;
	if (d->n_endpoints == 0)
		return -EINVAL;
	for (uint32_t i = 0; i < d->n_endpoints; i++) {
		err = svc_endpoint_check(d->endpoints[i], d->endpoint_lens[i]);
		if (err)
			return err;
	}
	for (uint32_t i = 0; i < d->n_meta; i++) {
		const struct svc_meta *m = &d->meta[i];

		if (m->key_len > SVC_DESC_META_KEY_MAX || m->val_len > SVC_DESC_META_BYTES)
			return -EMSGSIZE;
		meta_bytes += m->key_len + m->val_len;
	}
	if (meta_bytes > SVC_DESC_META_BYTES)
		return -EMSGSIZE;
	for (uint32_t i = 0; i < d->n_meta; i++) {
		const struct svc_meta *m = &d->meta[i];

		if (!svc_meta_key_valid(m->key, m->key_len) || (m->val_len && !m->val))
			return -EINVAL;
		if (i && svc_meta_cmp(&d->meta[i - 1], m) >= 0)
			return -EINVAL; /* unsorted or duplicate */
	}
	if (d->expires <= d->created || d->expires - d->created > SVC_DESC_MAX_LIFETIME)
		return -EINVAL;
	if (d->created > (uint64_t)INT64_MAX || d->expires > (uint64_t)INT64_MAX)
		return -EINVAL;
	return 0;
}

static void svc_desc_put_body(struct bencode_buf *b, const struct svc_desc *d)
{
	bencode_put_dict(b);
	bencode_put_cstr(b, "c");
	bencode_put_int(b, (int64_t)d->created);
	bencode_put_cstr(b, "e");
	bencode_put_list(b);
	for (uint32_t i = 0; i < d->n_endpoints; i++)
		bencode_put_str(b, d->endpoints[i], d->endpoint_lens[i]);
	bencode_put_end(b);
	bencode_put_cstr(b, "m");
	bencode_put_dict(b);
	for (uint32_t i = 0; i < d->n_meta; i++) {
		bencode_put_str(b, d->meta[i].key, d->meta[i].key_len);
		bencode_put_str(b, d->meta[i].val, d->meta[i].val_len);
	}
	bencode_put_end(b);
	bencode_put_cstr(b, "n");
	bencode_put_str(b, d->name, d->name_len);
	bencode_put_cstr(b, "o");
	bencode_put_str(b, d->owner, IDENTITY_PK_LEN);
	bencode_put_cstr(b, "v");
	bencode_put_int(b, d->version);
	bencode_put_cstr(b, "x");
	bencode_put_int(b, (int64_t)d->expires);
	bencode_put_end(b);
}

int svc_desc_sign(struct svc_desc *d, const struct identity *id, uint8_t *out, size_t cap,
		  size_t *out_len)
{
	uint8_t msg[sizeof(SVC_DESC_SIG_DOMAIN) - 1 + SVC_DESC_MAX_LEN];
	const size_t dlen = sizeof(SVC_DESC_SIG_DOMAIN) - 1;
	struct bencode_buf b;
	struct svc_desc s;
	int err;

	if (!d || !id || !out || !out_len)
		return -EINVAL;
	if (d->n_meta > SVC_DESC_MAX_META || d->n_endpoints > SVC_DESC_MAX_ENDPOINTS)
		return -EMSGSIZE;
	s = *d;
	memcpy(s.owner, id->pk, IDENTITY_PK_LEN);
	qsort(s.meta, s.n_meta, sizeof(s.meta[0]), svc_meta_cmp);
	err = svc_desc_check_fields(&s);
	if (err)
		return err;

	memcpy(msg, SVC_DESC_SIG_DOMAIN, dlen);
	bencode_buf_init(&b, msg + dlen, SVC_DESC_MAX_LEN);
	svc_desc_put_body(&b, &s);
	if (b.err)
		return -EMSGSIZE;
	identity_sign(id, msg, dlen + b.len, s.sig);

	{
		struct bencode_buf o;

		bencode_buf_init(&o, out, cap);
		bencode_put_dict(&o);
		bencode_put_cstr(&o, "d");
		bencode_put_raw(&o, msg + dlen, b.len);
		bencode_put_cstr(&o, "s");
		bencode_put_str(&o, s.sig, IDENTITY_SIG_LEN);
		bencode_put_end(&o);
		if (o.err)
			return -ENOBUFS;
		if (o.len > SVC_DESC_MAX_LEN)
			return -EMSGSIZE;
		*out_len = o.len;
	}
	memcpy(d->owner, s.owner, IDENTITY_PK_LEN);
	memcpy(d->sig, s.sig, IDENTITY_SIG_LEN);
	return 0;
}

/* Value for a one-letter key, type-checked; -EINVAL if absent or mistyped. */
static const struct bencode_node *svc_get(const struct bencode_doc *doc,
					  const struct bencode_node *dict, const char *key,
					  enum bencode_type type)
{
	return bencode_dict_get_type(doc, dict, key, type);
}

/* Decode and return the body node (for the signature) through *body. */
static int svc_desc_decode_body(struct svc_desc *d, const uint8_t *buf, size_t len,
				const uint8_t **body, size_t *body_len)
{
	struct bencode_node nodes[SVC_DESC_NODES];
	struct bencode_doc doc = {.nodes = nodes, .cap = SVC_DESC_NODES, .max_depth = 4};
	const struct bencode_node *root, *bd, *sig, *n, *e, *m, *o, *c, *v, *x, *it;
	int err;

	if (!d || (!buf && len))
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	if (len > SVC_DESC_MAX_LEN)
		return -EMSGSIZE;
	err = bencode_decode(&doc, buf, len, BENCODE_STRICT, NULL);
	if (err == -E2BIG)
		return -EMSGSIZE;
	if (err)
		return -EINVAL;
	root = bencode_root(&doc);
	if (root->type != BENCODE_DICT || root->count != 2)
		return -EINVAL;
	bd = svc_get(&doc, root, "d", BENCODE_DICT);
	sig = svc_get(&doc, root, "s", BENCODE_STR);
	if (!bd || !sig || sig->slen != IDENTITY_SIG_LEN || bd->count != 7)
		return -EINVAL;
	c = svc_get(&doc, bd, "c", BENCODE_INT);
	e = svc_get(&doc, bd, "e", BENCODE_LIST);
	m = svc_get(&doc, bd, "m", BENCODE_DICT);
	n = svc_get(&doc, bd, "n", BENCODE_STR);
	o = svc_get(&doc, bd, "o", BENCODE_STR);
	v = svc_get(&doc, bd, "v", BENCODE_INT);
	x = svc_get(&doc, bd, "x", BENCODE_INT);
	if (!c || !e || !m || !n || !o || !v || !x)
		return -EINVAL;
	if (o->slen != IDENTITY_PK_LEN || c->i < 0 || x->i < 0 || v->i < 0 || v->i > UINT32_MAX)
		return -EINVAL;
	if (e->count > SVC_DESC_MAX_ENDPOINTS || m->count > SVC_DESC_MAX_META)
		return -EMSGSIZE;

	d->name = (const char *)n->s;
	d->name_len = n->slen;
	d->version = (uint32_t)v->i;
	memcpy(d->owner, o->s, IDENTITY_PK_LEN);
	d->created = (uint64_t)c->i;
	d->expires = (uint64_t)x->i;
	memcpy(d->sig, sig->s, IDENTITY_SIG_LEN);
	for (it = bencode_first(&doc, e); it; it = bencode_next(&doc, it)) {
		if (it->type != BENCODE_STR)
			return -EINVAL;
		d->endpoints[d->n_endpoints] = (const char *)it->s;
		d->endpoint_lens[d->n_endpoints] = it->slen;
		d->n_endpoints++;
	}
	for (it = bencode_first(&doc, m); it; it = bencode_next(&doc, it)) {
		const struct bencode_node *val = bencode_next(&doc, it);

		if (!val || it->type != BENCODE_STR || val->type != BENCODE_STR)
			return -EINVAL;
		d->meta[d->n_meta].key = it->s;
		d->meta[d->n_meta].key_len = it->slen;
		d->meta[d->n_meta].val = val->s;
		d->meta[d->n_meta].val_len = val->slen;
		d->n_meta++;
		it = val;
	}
	err = svc_desc_check_fields(d);
	if (err)
		return err;
	if (body) {
		*body = bd->raw;
		*body_len = bd->rawlen;
	}
	return 0;
}

int svc_desc_decode(struct svc_desc *d, const uint8_t *buf, size_t len)
{
	return svc_desc_decode_body(d, buf, len, NULL, NULL);
}

int svc_desc_verify(const uint8_t *buf, size_t len, const uint8_t *tls_peer_pk, uint64_t now,
		    uint64_t max_skew, svc_ban_check_fn ban, void *ban_ctx, struct svc_desc *out)
{
	uint8_t msg[sizeof(SVC_DESC_SIG_DOMAIN) - 1 + SVC_DESC_MAX_LEN];
	const size_t dlen = sizeof(SVC_DESC_SIG_DOMAIN) - 1;
	struct svc_desc tmp, *d = out ? out : &tmp;
	const uint8_t *body = NULL;
	size_t body_len = 0;
	int err;

	err = svc_desc_decode_body(d, buf, len, &body, &body_len);
	if (err)
		return err;
	if (body_len > SVC_DESC_MAX_LEN)
		return SVC_DESC_E_OVERSIZED;
	memcpy(msg, SVC_DESC_SIG_DOMAIN, dlen);
	memcpy(msg + dlen, body, body_len);
	if (identity_verify(d->owner, msg, dlen + body_len, d->sig))
		return SVC_DESC_E_SIGNATURE;
	if (tls_peer_pk && memcmp(tls_peer_pk, d->owner, IDENTITY_PK_LEN) != 0)
		return SVC_DESC_E_OWNER;
	if (now >= d->expires)
		return SVC_DESC_E_EXPIRED;
	if (d->created > now && d->created - now > max_skew)
		return SVC_DESC_E_FUTURE;
	if (ban && ban(ban_ctx, d->owner))
		return SVC_DESC_E_BANNED;
	return 0;
}
