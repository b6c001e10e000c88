// SPDX-License-Identifier: MIT
/*
 * Publications kept in the store, so that they survive a restart: one
 * record per published service in the database "svc_publications",
 * written through the store's writer and durable when publish/unpublish
 * return (the control API acknowledges them). At start, svc_node_start()
 * publishes every record again (svcn_pub_restore, svc_directory.c, reads
 * them through svcn_pub_store_each): registered in the router, a fresh
 * descriptor signed, announced on the DHT. This file is the codec and the
 * store's side only: it never calls the directory.
 *
 * Record: key = the name; value = record version (1 byte, 2), http_flags
 * (u32 little endian), backend length (u16 LE) and bytes ("" = built-in),
 * CORS origin length (u16 LE) and bytes; from record version 2 on: the
 * service version, calls per minute, payload cap, concurrency (u32 LE
 * each), the metadata count (u8) and each entry's key length (u8), key,
 * value length (u16 LE), value; the visibility key count (u8) and the
 * keys (32 bytes each). Version 1 records (no options) are still read.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc_dir_int.h"
#include "weft/log.h"
#include "weft/store.h"

#define PUB_DB "svc_publications"
#define PUB_VERSION 3 /* 3: max_streams after the visibility keys */
#define PUB_REC_MAX                                                                                \
	(1 + 4 + 2 + SVC_BACKEND_ADDR_MAX + 2 + SVC_HTTP_CORS_MAX + 16 + 1 +                       \
	 SVC_NODE_PUB_META * 3 + SVC_NODE_PUB_META_BYTES + 1 +                                     \
	 SVC_NODE_PUB_ALLOW * IDENTITY_PK_LEN + 4)

static size_t put32(uint8_t *out, size_t o, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		out[o++] = (uint8_t)(v >> (8 * i));
	return o;
}

static uint32_t get32(const uint8_t *v)
{
	return v[0] | (uint32_t)v[1] << 8 | (uint32_t)v[2] << 16 | (uint32_t)v[3] << 24;
}

static size_t pub_encode(const struct svcn_pub *p, uint8_t *out)
{
	size_t bl = strlen(p->backend), cl = strlen(p->cors), o = 0;

	out[o++] = PUB_VERSION;
	for (int i = 0; i < 4; i++)
		out[o++] = (uint8_t)(p->http_flags >> (8 * i));
	out[o++] = (uint8_t)bl;
	out[o++] = (uint8_t)(bl >> 8);
	memcpy(out + o, p->backend, bl);
	o += bl;
	out[o++] = (uint8_t)cl;
	out[o++] = (uint8_t)(cl >> 8);
	memcpy(out + o, p->cors, cl);
	o += cl;
	o = put32(out, o, p->version);
	o = put32(out, o, p->calls_per_min);
	o = put32(out, o, p->max_payload);
	o = put32(out, o, p->max_concurrent);
	out[o++] = (uint8_t)p->n_meta;
	for (uint32_t i = 0; i < p->n_meta; i++) {
		size_t kl = strlen(p->meta_key[i]), vl = strlen(p->meta_val[i]);

		out[o++] = (uint8_t)kl;
		memcpy(out + o, p->meta_key[i], kl);
		o += kl;
		out[o++] = (uint8_t)vl;
		out[o++] = (uint8_t)(vl >> 8);
		memcpy(out + o, p->meta_val[i], vl);
		o += vl;
	}
	out[o++] = (uint8_t)p->n_allow;
	memcpy(out + o, p->allow, (size_t)p->n_allow * IDENTITY_PK_LEN);
	o += (size_t)p->n_allow * IDENTITY_PK_LEN;
	return put32(out, o, p->max_streams);
}

int svcn_pub_store_init(struct svc_node *sn, struct store *st)
{
	sn->store = st;
	return st ? store_db(st, PUB_DB, &sn->pub_db) : 0;
}

int svcn_pub_store_queue(struct svc_node *sn, const char *name, const struct svcn_pub *p,
			 struct store_write **ticket)
{
	uint8_t rec[PUB_REC_MAX];
	struct store_op op = {.dbi = sn->pub_db, .key = name, .klen = strlen(name)};

	*ticket = NULL;
	if (!sn->store)
		return 0;
	if (p) {
		op.val = rec;
		op.vlen = pub_encode(p, rec);
	}
	return store_write_queue(sn->store, &op, 1, ticket);
}

struct each_ctx {
	struct svc_node *sn;
	void (*fn)(struct svc_node *sn, const char *name, const char *backend,
		   const struct svc_node_pub_opts *po, void *arg);
	void *arg;
};

/* Hostile disk: every length checked, names and backends re-validated by
 * the publish the caller's fn makes. */
static int each_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct each_ctx *c = arg;
	const uint8_t *v = val;
	char name[SVC_NAME_MAX + 1], backend[SVC_BACKEND_ADDR_MAX], cors[SVC_HTTP_CORS_MAX + 1];
	char mk[SVC_NODE_PUB_META][SVC_DESC_META_KEY_MAX + 1];
	char mv[SVC_NODE_PUB_META][SVC_NODE_PUB_META_BYTES + 1];
	struct svc_node_pub_opts po = {0};
	size_t o = 5, bl, cl;

	if (klen == 0 || klen > SVC_NAME_MAX || vlen < 9 || v[0] < 1 || v[0] > PUB_VERSION)
		goto bad;
	memcpy(name, key, klen);
	name[klen] = '\0';
	for (int i = 0; i < 4; i++)
		po.http_flags |= (uint32_t)v[1 + i] << (8 * i);
	bl = v[o] | (size_t)v[o + 1] << 8;
	o += 2;
	if (bl >= sizeof(backend) || o + bl + 2 > vlen)
		goto bad;
	memcpy(backend, v + o, bl);
	backend[bl] = '\0';
	o += bl;
	cl = v[o] | (size_t)v[o + 1] << 8;
	o += 2;
	if (cl >= sizeof(cors) || o + cl > vlen || (v[0] == 1 && o + cl != vlen))
		goto bad;
	memcpy(cors, v + o, cl);
	cors[cl] = '\0';
	po.cors = cors;
	o += cl;
	if (v[0] >= 2) {
		if (o + 17 > vlen)
			goto bad;
		po.version = get32(v + o);
		po.calls_per_min = get32(v + o + 4);
		po.max_payload = get32(v + o + 8);
		po.max_concurrent = get32(v + o + 12);
		po.n_meta = v[o + 16];
		o += 17;
		if (po.n_meta > SVC_NODE_PUB_META)
			goto bad;
		for (uint32_t i = 0; i < po.n_meta; i++) {
			size_t kl, ml;

			if (o + 1 > vlen || (kl = v[o]) > SVC_DESC_META_KEY_MAX || o + 1 + kl + 2 > vlen)
				goto bad;
			memcpy(mk[i], v + o + 1, kl);
			mk[i][kl] = '\0';
			o += 1 + kl;
			ml = v[o] | (size_t)v[o + 1] << 8;
			o += 2;
			if (ml > SVC_NODE_PUB_META_BYTES || o + ml > vlen)
				goto bad;
			memcpy(mv[i], v + o, ml);
			mv[i][ml] = '\0';
			o += ml;
			po.meta_key[i] = mk[i];
			po.meta_val[i] = mv[i];
		}
		if (o + 1 > vlen || (po.n_allow = v[o]) > SVC_NODE_PUB_ALLOW ||
		    o + 1 + (size_t)po.n_allow * IDENTITY_PK_LEN + (v[0] >= 3 ? 4 : 0) != vlen)
			goto bad;
		memcpy(po.allow, v + o + 1, (size_t)po.n_allow * IDENTITY_PK_LEN);
		o += 1 + (size_t)po.n_allow * IDENTITY_PK_LEN;
		if (v[0] >= 3)
			po.max_streams = get32(v + o);
	}
	c->fn(c->sn, name, backend, &po, c->arg);
	return 0;
bad:
	log_warn("svc", "unreadable stored publication (%zu bytes): skipped", vlen);
	return 0;
}

int svcn_pub_store_each(struct svc_node *sn,
			void (*fn)(struct svc_node *sn, const char *name, const char *backend,
				   const struct svc_node_pub_opts *po, void *arg),
			void *arg)
{
	struct each_ctx c = {.sn = sn, .fn = fn, .arg = arg};

	if (!sn->store)
		return 0;
	return store_iter(sn->store, sn->pub_db, each_one, &c);
}
