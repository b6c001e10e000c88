// SPDX-License-Identifier: MIT
/*
 * The node's reservations (docs/MESH.md "Reservations on a node"): the
 * Reserves it received as a provider and sent as a consumer, each with its
 * answer (Confirm or Cancel), in the node's LMDB (database "mesh_inbox",
 * key the Reserve's envelope id). Bounded (mesh.inbox_max); every change
 * is durable before it returns; entries go at their expiry. One owner: the
 * caller serialises calls.
 *
 * Record: ver (1, =1) | role (1) | state (1) | service (u32) | ref (32) |
 *   peer (32) | ts (u64 ms) | expires (u64 ms) | answer ts (u64 ms) |
 *   one-time key (64) | data length (u16) | data | answer length (u16) |
 *   answer
 * data and answer are Announce-style bodies (flat bencode dictionaries).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_int.h"
#include "weft/mesh.h"
#include "weft/store.h"

#define DB_NAME "mesh_inbox"
#define WRITE_TIMEOUT_MS 5000u
#define REC_VER 1u

struct mesh_inbox {
	struct store *st;
	unsigned int dbi;
	uint32_t max, n;
};

int mesh_rsv_encode(const struct mesh_rsv *r, uint8_t *out, size_t cap, size_t *len)
{
	uint8_t *p = out;

	*len = 0;
	if (r->role < MESH_RSV_RECEIVED || r->role > MESH_RSV_SENT ||
	    r->state > MESH_RSV_CANCELLED || r->data_len > MESH_BODY_ANNOUNCE ||
	    r->answer_len > MESH_BODY_ANNOUNCE)
		return -EINVAL;
	if (cap < MESH_RSV_HDR + 2u + r->data_len + r->answer_len)
		return -ENOSPC;
	*p++ = REC_VER;
	*p++ = r->role;
	*p++ = r->state;
	mesh_wr(p, r->service, 4);
	p += 4;
	memcpy(p, r->ref, MESH_ID_LEN);
	p += MESH_ID_LEN;
	memcpy(p, r->peer, MESH_PK_LEN);
	p += MESH_PK_LEN;
	mesh_wr(p, r->ts_ms, 8);
	mesh_wr(p + 8, r->expires_ms, 8);
	mesh_wr(p + 16, r->answer_ms, 8);
	p += 24;
	memcpy(p, r->otk, sizeof(r->otk));
	p += sizeof(r->otk);
	mesh_wr(p, r->data_len, 2);
	memcpy(p + 2, r->data, r->data_len);
	p += 2u + r->data_len;
	mesh_wr(p, r->answer_len, 2);
	memcpy(p + 2, r->answer, r->answer_len);
	p += 2u + r->answer_len;
	*len = (size_t)(p - out);
	return 0;
}

int mesh_rsv_decode(const uint8_t *v, size_t len, struct mesh_rsv *r)
{
	const uint8_t *p = v;
	size_t dl, al;

	if (len < MESH_RSV_HDR + 2u || v[0] != REC_VER || v[1] < MESH_RSV_RECEIVED ||
	    v[1] > MESH_RSV_SENT || v[2] > MESH_RSV_CANCELLED)
		return -EBADMSG;
	r->role = v[1];
	r->state = v[2];
	p += 3;
	r->service = (uint32_t)mesh_rd(p, 4);
	p += 4;
	memcpy(r->ref, p, MESH_ID_LEN);
	p += MESH_ID_LEN;
	memcpy(r->peer, p, MESH_PK_LEN);
	p += MESH_PK_LEN;
	r->ts_ms = mesh_rd(p, 8);
	r->expires_ms = mesh_rd(p + 8, 8);
	r->answer_ms = mesh_rd(p + 16, 8);
	p += 24;
	memcpy(r->otk, p, sizeof(r->otk));
	p += sizeof(r->otk);
	dl = (size_t)mesh_rd(p, 2);
	p += 2;
	/* the data, then the answer's length: both inside the record */
	if (dl > MESH_BODY_ANNOUNCE || (size_t)(p - v) + dl + 2u > len)
		return -EBADMSG;
	memcpy(r->data, p, dl);
	r->data_len = (uint16_t)dl;
	p += dl;
	al = (size_t)mesh_rd(p, 2);
	p += 2;
	if (al > MESH_BODY_ANNOUNCE || (size_t)(p - v) + al != len)
		return -EBADMSG;
	memcpy(r->answer, p, al);
	r->answer_len = (uint16_t)al;
	if (mesh_body_fields(r->data, dl, NULL, NULL) ||
	    (al && mesh_body_fields(r->answer, al, NULL, NULL)) ||
	    (r->state == MESH_RSV_PENDING) != (r->answer_ms == 0))
		return -EBADMSG;
	return 0;
}

/* ---- the store ---- */

struct scan {
	struct mesh_inbox *ib;
	uint64_t now;
	mesh_inbox_fn fn;
	void *arg;
	uint8_t (*drop)[MESH_ID_LEN];
	size_t n_drop, cap_drop;
	int stop;
};

static int scan_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct scan *c = arg;
	struct mesh_rsv r;
	int bad = klen != MESH_ID_LEN || mesh_rsv_decode(val, vlen, &r) != 0;

	if (!bad && (!c->now || r.expires_ms > c->now)) {
		memcpy(r.id, key, MESH_ID_LEN);
		if (c->fn && c->fn(c->arg, &r))
			return 1;
		if (!c->fn)
			c->ib->n++;
		return 0;
	}
	if (klen != MESH_ID_LEN || !c->now)
		return 0;
	if (c->n_drop == c->cap_drop) {
		size_t nc = c->cap_drop ? 2 * c->cap_drop : 64;
		void *nd = realloc(c->drop, nc * MESH_ID_LEN);

		if (!nd)
			return -ENOMEM;
		c->drop = nd;
		c->cap_drop = nc;
	}
	memcpy(c->drop[c->n_drop++], key, MESH_ID_LEN);
	return 0;
}

/* Scan: count the live entries (fn NULL) and delete the damaged and the
 * expired at now; or give each entry to fn (now 0). Returns the number
 * deleted or -errno. */
static int scan(struct mesh_inbox *ib, uint64_t now_ms, mesh_inbox_fn fn, void *arg)
{
	struct scan c = {.ib = ib, .now = now_ms, .fn = fn, .arg = arg};
	int err;

	if (!fn)
		ib->n = 0;
	err = store_iter(ib->st, ib->dbi, scan_one, &c);
	for (size_t i = 0; err >= 0 && i < c.n_drop; i += 64) {
		struct store_op ops[64];
		size_t k = c.n_drop - i < 64 ? c.n_drop - i : 64;

		for (size_t j = 0; j < k; j++)
			ops[j] = (struct store_op){ib->dbi, c.drop[i + j], MESH_ID_LEN, NULL, 0};
		err = store_write_sync(ib->st, ops, k, WRITE_TIMEOUT_MS);
	}
	free(c.drop);
	return err < 0 ? err : (int)c.n_drop;
}

int mesh_inbox_new(struct mesh_inbox **out, struct store *st, uint32_t max, uint64_t now_ms)
{
	struct mesh_inbox *ib;
	int err;

	*out = NULL;
	ib = calloc(1, sizeof(*ib));
	if (!ib)
		return -ENOMEM;
	ib->st = st;
	ib->max = max ? max : MESH_INBOX_DEF_MAX;
	err = store_db(st, DB_NAME, &ib->dbi) ? -EIO : 0;
	if (!err)
		err = mesh_inbox_gc(ib, now_ms);
	if (err < 0) {
		free(ib);
		return err;
	}
	*out = ib;
	return 0;
}

void mesh_inbox_free(struct mesh_inbox *ib)
{
	free(ib);
}

int mesh_inbox_gc(struct mesh_inbox *ib, uint64_t now_ms)
{
	return scan(ib, now_ms ? now_ms : 1, NULL, NULL);
}

int mesh_inbox_get(struct mesh_inbox *ib, const uint8_t id[MESH_ID_LEN], struct mesh_rsv *out)
{
	void *v = NULL;
	size_t vl;
	int err = store_get(ib->st, ib->dbi, id, MESH_ID_LEN, &v, &vl);

	if (err)
		return err == -ENOENT ? -ENOENT : -EIO;
	err = mesh_rsv_decode(v, vl, out) ? -EIO : 0;
	free(v);
	if (!err)
		memcpy(out->id, id, MESH_ID_LEN);
	return err;
}

int mesh_inbox_put(struct mesh_inbox *ib, const struct mesh_rsv *r, int replace)
{
	uint8_t rec[MESH_RSV_REC_MAX];
	struct mesh_rsv cur;
	struct store_op op;
	size_t len;
	int err = mesh_rsv_encode(r, rec, sizeof(rec), &len), held;

	if (err)
		return err;
	err = mesh_inbox_get(ib, r->id, &cur);
	if (err && err != -ENOENT)
		return err;
	held = !err;
	if (held && !replace)
		return -EALREADY;
	if (!held && replace)
		return -ENOENT;
	if (!held && ib->n >= ib->max)
		return -EDQUOT;
	op = (struct store_op){ib->dbi, r->id, MESH_ID_LEN, rec, len};
	err = store_write_sync(ib->st, &op, 1, WRITE_TIMEOUT_MS);
	if (!err && !held)
		ib->n++;
	return err;
}

int mesh_inbox_del(struct mesh_inbox *ib, const uint8_t id[MESH_ID_LEN])
{
	struct mesh_rsv cur;
	struct store_op op = {ib->dbi, id, MESH_ID_LEN, NULL, 0};
	int err = mesh_inbox_get(ib, id, &cur);

	if (err)
		return err;
	err = store_write_sync(ib->st, &op, 1, WRITE_TIMEOUT_MS);
	if (!err && ib->n)
		ib->n--;
	return err;
}

int mesh_inbox_each(struct mesh_inbox *ib, mesh_inbox_fn fn, void *arg)
{
	int err = scan(ib, 0, fn, arg);

	return err < 0 ? err : 0;
}

uint32_t mesh_inbox_count(const struct mesh_inbox *ib)
{
	return ib->n;
}
