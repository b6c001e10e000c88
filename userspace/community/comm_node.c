// SPDX-License-Identifier: MIT
/*
 * Communities on a node (docs/COMMUNITY.md "On a node"): the hub. The
 * communities we belong to, each with its index (comm_index.c), persisted
 * in two LMDB databases and served on the control API:
 *
 *   communities        id (16) -> ver (1, =1) | pk (32) | has sk (1) | sk (64) |
 *                                 name length (1) | name | admission (64)
 *   community_records  id (16) | type (1) | member (32) | share name -> the signed record
 *
 * (key order loads a community's members before its shares, the order the
 * index needs). One mutex guards everything: control threads only.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "weft/comm.h"
#include "weft/comm_node.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/store.h"
#include "weft/util.h"

#include "comm_net.h"

#define DB_COMM "communities"
#define DB_RECS "community_records"
#define META_MAX (1u + COMM_PK_LEN + 1u + COMM_SK_LEN + 1u + COMM_NAME_MAX + COMM_SIG_LEN)
#define RKEY_MAX (COMM_ID_LEN + 1u + COMM_PK_LEN + COMM_NAME_MAX)
/* members an own record may go to by key when few holders are known by
 * key (at most the fan-out are sent to; the rest are known holders) */
#define PUBLISH_MEMBERS 8u

struct community {
	uint8_t id[COMM_ID_LEN], pk[COMM_PK_LEN], sk[COMM_SK_LEN], admit[COMM_SIG_LEN];
	int has_sk;
	char name[COMM_NAME_MAX + 1];
	uint64_t seq; /* our newest record's */
	struct comm_keys k;
	struct comm_index *ix;
};

struct comm_node {
	struct store *store;
	const struct identity *me;
	unsigned int db_comm, db_recs;
	pthread_mutex_t mu;
	struct community *c[COMM_NODE_MAX];
	size_t n;
	struct comm_net *net; /* NULL: no network */
};

static struct community *find(struct comm_node *cn, const uint8_t *id)
{
	for (size_t i = 0; i < cn->n; i++)
		if (memcmp(cn->c[i]->id, id, COMM_ID_LEN) == 0)
			return cn->c[i];
	return NULL;
}

static void comm_drop(struct community *c)
{
	if (!c)
		return;
	comm_index_free(c->ix);
	sodium_memzero(c->sk, sizeof(c->sk));
	free(c);
}

static size_t meta_encode(const struct community *c, uint8_t *v)
{
	size_t nl = strlen(c->name), off = 0;

	v[off++] = 1;
	memcpy(v + off, c->pk, COMM_PK_LEN);
	off += COMM_PK_LEN;
	v[off++] = (uint8_t)c->has_sk;
	memcpy(v + off, c->sk, COMM_SK_LEN);
	off += COMM_SK_LEN;
	v[off++] = (uint8_t)nl;
	memcpy(v + off, c->name, nl);
	off += nl;
	memcpy(v + off, c->admit, COMM_SIG_LEN);
	return off + COMM_SIG_LEN;
}

static int meta_decode(struct community *c, const uint8_t *v, size_t len)
{
	size_t nl;

	if (len < 1u + COMM_PK_LEN + 1u + COMM_SK_LEN + 1u + COMM_SIG_LEN || v[0] != 1)
		return -EBADMSG;
	nl = v[1 + COMM_PK_LEN + 1 + COMM_SK_LEN];
	if (nl > COMM_NAME_MAX || len != META_MAX - COMM_NAME_MAX + nl)
		return -EBADMSG;
	memcpy(c->pk, v + 1, COMM_PK_LEN);
	c->has_sk = v[1 + COMM_PK_LEN] != 0;
	memcpy(c->sk, v + 2 + COMM_PK_LEN, COMM_SK_LEN);
	memcpy(c->name, v + 3 + COMM_PK_LEN + COMM_SK_LEN, nl);
	c->name[nl] = 0;
	memcpy(c->admit, v + 3 + COMM_PK_LEN + COMM_SK_LEN + nl, COMM_SIG_LEN);
	return 0;
}

static size_t rec_key(uint8_t *k, const uint8_t *id, const struct comm_rec *r)
{
	memcpy(k, id, COMM_ID_LEN);
	k[COMM_ID_LEN] = r->type;
	memcpy(k + COMM_ID_LEN + 1, r->member, COMM_PK_LEN);
	memcpy(k + COMM_ID_LEN + 1 + COMM_PK_LEN, r->name, r->name_len);
	return COMM_ID_LEN + 1 + COMM_PK_LEN + r->name_len;
}

/* ---- loading ---- */

static int load_comm(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct comm_node *cn = arg;
	struct community *c;

	if (klen != COMM_ID_LEN || cn->n >= COMM_NODE_MAX)
		return 0; /* not ours to judge here: skipped, logged by the count */
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	memcpy(c->id, key, COMM_ID_LEN);
	if (meta_decode(c, val, vlen) != 0 || comm_index_new(&c->ix, c->id, c->pk, NULL) != 0) {
		comm_drop(c);
		return 0;
	}
	comm_keys_derive(c->id, c->pk, &c->k);
	cn->c[cn->n++] = c;
	return 0;
}

static int load_rec(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct comm_node *cn = arg;
	struct community *c;
	struct comm_rec r;

	if (klen < COMM_ID_LEN)
		return 0;
	c = find(cn, key);
	if (!c)
		return 0;
	comm_index_add(c->ix, val, vlen);
	if (comm_rec_parse(val, vlen, c->id, c->pk, &r) == 0 &&
	    memcmp(r.member, cn->me->pk, COMM_PK_LEN) == 0 && r.seq > c->seq)
		c->seq = r.seq;
	return 0;
}

/* ---- writing our own records ---- */

/* Sign r (ours), add it to the index and persist it. */
/* Present members other than us, at most max, from a random start in the
 * index: those our own records may go to by key (comm_net_publish). Under
 * cn->mu. */
static size_t sample_members(struct comm_node *cn, struct community *c,
			     uint8_t (*out)[COMM_PK_LEN], size_t max)
{
	size_t total = comm_index_count(c->ix, COMM_REC_MEMBER), n = 0, start;
	struct comm_rec r;

	if (!total)
		return 0;
	start = randombytes_uniform((uint32_t)(total < UINT32_MAX ? total : UINT32_MAX));
	for (size_t i = 0; i < total && n < max; i++) {
		if (comm_index_get(c->ix, COMM_REC_MEMBER, (start + i) % total, &r) ||
		    (r.flags & COMM_REC_GONE) || !memcmp(r.member, cn->me->pk, COMM_PK_LEN))
			continue;
		memcpy(out[n++], r.member, COMM_PK_LEN);
	}
	return n;
}

static int put_own(struct comm_node *cn, struct community *c, struct comm_rec *r)
{
	uint8_t buf[COMM_REC_MAX_LEN], key[RKEY_MAX];
	struct store_op op;
	size_t n;
	int err;

	memcpy(r->id, c->id, COMM_ID_LEN);
	memcpy(r->member, cn->me->pk, COMM_PK_LEN);
	/* seq: wall-clock ms, strictly rising even if the clock steps back. */
	r->seq = util_wall_s() * 1000u;
	if (r->seq <= c->seq)
		r->seq = c->seq + 1;
	err = comm_rec_sign(r, cn->me->sk, buf, sizeof(buf), &n);
	if (err)
		return err;
	err = comm_index_add(c->ix, buf, n);
	if (err < 0)
		return err;
	c->seq = r->seq;
	op = (struct store_op){.dbi = cn->db_recs, .key = key, .klen = rec_key(key, c->id, r),
			       .val = buf, .vlen = n};
	err = store_write_sync(cn->store, &op, 1, 0);
	if (!err) {
		uint8_t members[PUBLISH_MEMBERS][COMM_PK_LEN];

		comm_net_publish(cn->net, c->id, buf, n, members,
				 sample_members(cn, c, members, PUBLISH_MEMBERS));
	}
	return err;
}

/* ---- records from other holders (comm_net.c's ops: its threads) ---- */

static int net_page(void *arg, const uint8_t *dk, uint8_t type, uint32_t page, uint8_t *out,
		    size_t cap, size_t *len)
{
	struct comm_node *cn = arg;
	int err = -ENOENT;

	pthread_mutex_lock(&cn->mu);
	for (size_t i = 0; i < cn->n; i++)
		if (!memcmp(cn->c[i]->k.dht_key, dk, COMM_DHT_KEY_LEN)) {
			err = comm_index_page(cn->c[i]->ix, type, page, out, cap, len);
			break;
		}
	pthread_mutex_unlock(&cn->mu);
	return err;
}

/* Records taken in, persisted in one batch (a page holds at most 16). */
struct taken {
	struct comm_node *cn;
	struct community *c;
	size_t n;
	uint8_t key[COMM_PAGE_RECS][RKEY_MAX], val[COMM_PAGE_RECS][COMM_REC_MAX_LEN];
	struct store_op op[COMM_PAGE_RECS];
};

static void taken_add(void *arg, const uint8_t *rec, size_t len)
{
	struct taken *t = arg;
	struct comm_rec r;

	if (t->n >= COMM_PAGE_RECS || len > COMM_REC_MAX_LEN ||
	    comm_rec_parse(rec, len, t->c->id, t->c->pk, &r) != 0)
		return;
	if (!memcmp(r.member, t->cn->me->pk, COMM_PK_LEN) && r.seq > t->c->seq)
		t->c->seq = r.seq; /* ours, from before a restore */
	memcpy(t->val[t->n], rec, len);
	t->op[t->n] = (struct store_op){.dbi = t->cn->db_recs, .key = t->key[t->n],
					.klen = rec_key(t->key[t->n], t->c->id, &r),
					.val = t->val[t->n], .vlen = len};
	t->n++;
}

/* Lock, find the community (t->c NULL: not ours); taken_end persists
 * what was taken, unlocks and frees. */
static struct taken *taken_begin(struct comm_node *cn, const uint8_t *id)
{
	struct taken *t = malloc(sizeof(*t));

	if (!t)
		return NULL;
	pthread_mutex_lock(&cn->mu);
	t->cn = cn;
	t->c = find(cn, id);
	t->n = 0;
	return t;
}

static int taken_end(struct taken *t, int err)
{
	if (err >= 0 && t->n) {
		int e = store_write_sync(t->cn->store, t->op, t->n, 0);

		if (e)
			err = e;
	}
	pthread_mutex_unlock(&t->cn->mu);
	free(t);
	return err;
}

static int net_take(void *arg, const uint8_t *id, const uint8_t *rec, size_t len)
{
	struct taken *t = taken_begin(arg, id);
	int err = -ENOENT;

	if (!t)
		return -ENOMEM;
	if (t->c) {
		err = comm_index_add(t->c->ix, rec, len);
		if (err >= 0)
			taken_add(t, rec, len);
	}
	return taken_end(t, err);
}

static int net_member(void *arg, const uint8_t *id, const uint8_t *key)
{
	struct comm_node *cn = arg;
	struct community *c;
	int r = 0;

	pthread_mutex_lock(&cn->mu);
	c = find(cn, id);
	if (c)
		r = comm_index_is_member(c->ix, key);
	pthread_mutex_unlock(&cn->mu);
	return r;
}

static void net_introduce(void *arg, const uint8_t *id)
{
	struct comm_node *cn = arg;
	struct comm_rec r = {.type = COMM_REC_MEMBER};
	struct community *c;

	pthread_mutex_lock(&cn->mu);
	c = find(cn, id);
	if (c) {
		memcpy(r.admit, c->admit, COMM_SIG_LEN);
		put_own(cn, c, &r);
	}
	pthread_mutex_unlock(&cn->mu);
}

static int net_ingest(void *arg, const uint8_t *id, const uint8_t *page, size_t len,
		      uint32_t *total)
{
	struct taken *t = taken_begin(arg, id);
	size_t added;
	int err = -ENOENT;

	if (!t)
		return -ENOMEM;
	if (t->c)
		err = comm_index_ingest_cb(t->c->ix, page, len, taken_add, t, &added, total);
	err = taken_end(t, err);
	return err < 0 ? err : (int)added;
}

static int save_meta(struct comm_node *cn, const struct community *c)
{
	uint8_t v[META_MAX];
	struct store_op op = {.dbi = cn->db_comm, .key = c->id, .klen = COMM_ID_LEN, .val = v};

	op.vlen = meta_encode(c, v);
	return store_write_sync(cn->store, &op, 1, 0);
}

struct del_arg {
	struct comm_node *cn;
	const uint8_t *id;
};

static int del_recs(struct store_txn *txn, void *arg);

/* ---- control API ---- */

static json_t *hexj(const uint8_t *b, size_t n)
{
	char h[2 * COMM_SK_LEN + 1];

	util_hex(h, b, n);
	return json_string(h);
}

static int parse_hex_field(const json_t *body, const char *field, uint8_t *out, size_t n)
{
	const char *s = json_string_value(json_object_get(body, field));

	if (!s || strlen(s) != 2 * n)
		return -EINVAL;
	return util_unhex(out, n, s);
}

/* A community from the request path's first segment, or an error answer. */
static struct community *path_comm(struct comm_node *cn, const struct ctl_req *req,
				   struct ctl_resp *resp, const char **rest)
{
	uint8_t id[COMM_ID_LEN];
	char hex[2 * COMM_ID_LEN + 1];
	const char *slash = strchr(req->subpath, '/');
	size_t l = slash ? (size_t)(slash - req->subpath) : strlen(req->subpath);
	struct community *c;

	if (l != 2 * COMM_ID_LEN) {
		ctl_resp_error(resp, 400, "bad_request", "community id: %u hex digits",
			       2 * COMM_ID_LEN);
		return NULL;
	}
	memcpy(hex, req->subpath, l);
	hex[l] = 0;
	if (util_unhex(id, COMM_ID_LEN, hex) != 0) {
		ctl_resp_error(resp, 400, "bad_request", "community id: %u hex digits",
			       2 * COMM_ID_LEN);
		return NULL;
	}
	c = find(cn, id);
	if (!c)
		ctl_resp_error(resp, 404, "not_found", "not a member of community %s", hex);
	*rest = slash ? slash + 1 : "";
	return c;
}

static json_t *comm_json(struct comm_node *cn, const struct community *c)
{
	return json_pack("{s:o,s:o,s:s,s:b,s:b,s:I,s:I,s:I}", "id", hexj(c->id, COMM_ID_LEN),
			 "key", hexj(c->pk, COMM_PK_LEN), "name", c->name, "closed",
			 comm_id_closed(c->id), "owner", c->has_sk, "members",
			 (json_int_t)comm_index_count(c->ix, COMM_REC_MEMBER), "shares",
			 (json_int_t)comm_index_count(c->ix, COMM_REC_SHARE), "holders",
			 (json_int_t)comm_net_peers(cn->net, c->id));
}

static int name_arg(const json_t *body, const char *dflt, char *out)
{
	const json_t *j = json_object_get(body, "name");
	const char *s = j ? json_string_value(j) : dflt;

	if (!s || !*s || strlen(s) > COMM_NAME_MAX)
		return -EINVAL;
	strcpy(out, s);
	return 0;
}

/* Add c (new) as a member: our member record, then persist. Takes c. */
static void enrol(struct comm_node *cn, struct community *c, struct ctl_resp *resp)
{
	struct comm_rec r = {.type = COMM_REC_MEMBER};
	int err;

	if (cn->n >= COMM_NODE_MAX) {
		comm_drop(c);
		ctl_resp_error(resp, 507, "no_space", "at most %u communities", COMM_NODE_MAX);
		return;
	}
	err = comm_index_new(&c->ix, c->id, c->pk, NULL);
	if (err) {
		comm_drop(c);
		ctl_resp_errno(resp, err, "community");
		return;
	}
	memcpy(r.admit, c->admit, COMM_SIG_LEN);
	err = put_own(cn, c, &r);
	if (err == -EACCES) {
		comm_drop(c);
		ctl_resp_error(resp, 403, "not_invited",
			       "a closed community: join needs an invite from its owner");
		return;
	}
	if (!err)
		err = save_meta(cn, c);
	if (err) {
		comm_drop(c);
		ctl_resp_store_error(resp, err, "community");
		return;
	}
	comm_keys_derive(c->id, c->pk, &c->k);
	cn->c[cn->n++] = c;
	comm_net_add(cn->net, c->id, c->pk);
	ctl_resp_json(resp, 200, comm_json(cn, c));
}

static void api_create(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct comm_node *cn = arg;
	struct community *c = calloc(1, sizeof(*c));

	if (!c) {
		ctl_resp_errno(resp, -ENOMEM, "community");
		return;
	}
	if (!req->json || name_arg(req->json, NULL, c->name) != 0) {
		free(c);
		ctl_resp_error(resp, 400, "bad_request", "name: 1 to %u bytes", COMM_NAME_MAX);
		return;
	}
	comm_create(json_is_true(json_object_get(req->json, "closed")), c->id, c->pk, c->sk);
	c->has_sk = 1;
	if (comm_id_closed(c->id))
		comm_admit(c->sk, c->id, cn->me->pk, c->admit);
	pthread_mutex_lock(&cn->mu);
	enrol(cn, c, resp);
	pthread_mutex_unlock(&cn->mu);
}

static void api_join(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct comm_node *cn = arg;
	struct community *c = calloc(1, sizeof(*c));

	if (!c) {
		ctl_resp_errno(resp, -ENOMEM, "community");
		return;
	}
	if (!req->json || parse_hex_field(req->json, "id", c->id, COMM_ID_LEN) != 0 ||
	    parse_hex_field(req->json, "key", c->pk, COMM_PK_LEN) != 0 ||
	    name_arg(req->json, "-", c->name) != 0) {
		free(c);
		ctl_resp_error(resp, 400, "bad_request",
			       "id (32 hex digits) and key (64 hex digits) required");
		return;
	}
	if (json_object_get(req->json, "invite") &&
	    (parse_hex_field(req->json, "invite", c->admit, COMM_SIG_LEN) != 0 ||
	     comm_admit_verify(c->pk, c->id, cn->me->pk, c->admit) != 0)) {
		free(c);
		ctl_resp_error(resp, 403, "bad_invite",
			       "the invite is not the community key's admission of this node");
		return;
	}
	pthread_mutex_lock(&cn->mu);
	if (find(cn, c->id)) {
		pthread_mutex_unlock(&cn->mu);
		free(c);
		ctl_resp_error(resp, 409, "exists", "already a member");
		return;
	}
	enrol(cn, c, resp);
	pthread_mutex_unlock(&cn->mu);
}

static void api_list(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct comm_node *cn = arg;
	json_t *a = json_array();

	(void)req;
	pthread_mutex_lock(&cn->mu);
	for (size_t i = 0; i < cn->n; i++)
		json_array_append_new(a, comm_json(cn, cn->c[i]));
	pthread_mutex_unlock(&cn->mu);
	ctl_resp_json(resp, 200, json_pack("{s:o}", "communities", a));
}

static int page_arg(const struct ctl_req *req, uint32_t *page)
{
	const char *q = ctl_req_query(req, "page");
	uint64_t v = 0;

	*page = 0;
	if (!q)
		return 0;
	if (util_parse_u64(q, 0, 1000000, &v) != 0)
		return -EINVAL;
	*page = (uint32_t)v;
	return 0;
}

static json_t *rec_json(const struct comm_node *cn, const struct comm_rec *r)
{
	json_t *o = json_pack("{s:o,s:I,s:b}", r->type == COMM_REC_MEMBER ? "key" : "member",
			      hexj(r->member, COMM_PK_LEN), "seq", (json_int_t)r->seq, "gone",
			      (r->flags & COMM_REC_GONE) != 0);
	char salt[2 * COMM_NAME_MAX + 1], key[2 * COMM_PK_LEN + 1], link[256];

	if (r->type == COMM_REC_MEMBER) {
		int self = !memcmp(r->member, cn->me->pk, COMM_PK_LEN);

		json_object_set_new(o, "self", json_boolean(self));
		json_object_set_new(o, "waiting",
				    json_integer(self ? 0 : comm_net_waiting(cn->net, r->member)));
		return o;
	}
	util_hex(key, r->head, COMM_PK_LEN);
	util_hex(salt, (const uint8_t *)r->name, r->name_len);
	snprintf(link, sizeof(link), "magnet:?xs=urn:btpk:%s&s=%s", key, salt);
	json_object_set_new(o, "head", json_string(key));
	json_object_set_new(o, "name", json_string(r->name));
	json_object_set_new(o, "link", json_string(link));
	return o;
}

static void api_listing(struct comm_node *cn, struct community *c, int type,
			const struct ctl_req *req, struct ctl_resp *resp)
{
	size_t total = comm_index_count(c->ix, type), pages;
	json_t *a = json_array();
	struct comm_rec r;
	uint32_t page;

	if (page_arg(req, &page) != 0) {
		json_decref(a);
		ctl_resp_error(resp, 400, "bad_request", "page: a number");
		return;
	}
	pages = total ? (total + COMM_NODE_PAGE - 1) / COMM_NODE_PAGE : 1;
	if (page >= pages) {
		json_decref(a);
		ctl_resp_error(resp, 404, "not_found", "page %u of %zu", page, pages);
		return;
	}
	for (size_t i = (size_t)page * COMM_NODE_PAGE;
	     i < total && i < ((size_t)page + 1) * COMM_NODE_PAGE; i++)
		if (comm_index_get(c->ix, type, i, &r) == 0)
			json_array_append_new(a, rec_json(cn, &r));
	ctl_resp_json(resp, 200,
		      json_pack("{s:I,s:I,s:I,s:o}", "page", (json_int_t)page, "pages",
				(json_int_t)pages, "total", (json_int_t)total,
				type == COMM_REC_MEMBER ? "members" : "shares", a));
}

/* "KEY/NAME" of a share head. */
static int parse_head(const char *s, struct comm_rec *r)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	char hex[2 * COMM_PK_LEN + 1];
	size_t nl;

	if (!slash || slash - s != 2 * COMM_PK_LEN)
		return -EINVAL;
	memcpy(hex, s, 2 * COMM_PK_LEN);
	hex[2 * COMM_PK_LEN] = 0;
	nl = strlen(slash + 1);
	if (util_unhex(r->head, COMM_PK_LEN, hex) != 0 || nl == 0 || nl > COMM_NAME_MAX)
		return -EINVAL;
	memcpy(r->name, slash + 1, nl);
	r->name_len = (uint8_t)nl;
	return 0;
}

static void api_bind_share(struct comm_node *cn, struct community *c, const struct ctl_req *req,
			   struct ctl_resp *resp)
{
	struct comm_rec r = {.type = COMM_REC_SHARE};
	int err;

	if (!req->json ||
	    parse_head(json_string_value(json_object_get(req->json, "head")), &r) != 0) {
		ctl_resp_error(resp, 400, "bad_request", "head: KEY/NAME (64 hex digits, /, 1 to %u bytes)",
			       COMM_NAME_MAX);
		return;
	}
	if (json_is_true(json_object_get(req->json, "remove")))
		r.flags = COMM_REC_GONE;
	err = put_own(cn, c, &r);
	if (err == -ENOSPC)
		ctl_resp_error(resp, 507, "no_space", "the community's share caps are reached");
	else if (err)
		ctl_resp_store_error(resp, err, "share");
	else
		ctl_resp_json(resp, 200, rec_json(cn, &r));
}

static void api_invite(struct community *c, const struct ctl_req *req, struct ctl_resp *resp)
{
	uint8_t member[COMM_PK_LEN], sig[COMM_SIG_LEN];

	if (!c->has_sk) {
		ctl_resp_error(resp, 403, "not_owner", "only the community's creator can invite");
		return;
	}
	if (!comm_id_closed(c->id)) {
		ctl_resp_error(resp, 400, "open_community",
			       "an open community admits anyone with its id and key");
		return;
	}
	if (!req->json || parse_hex_field(req->json, "key", member, COMM_PK_LEN) != 0) {
		ctl_resp_error(resp, 400, "bad_request", "key: the member's node key (64 hex digits)");
		return;
	}
	comm_admit(c->sk, c->id, member, sig);
	ctl_resp_json(resp, 200, json_pack("{s:o}", "invite", hexj(sig, COMM_SIG_LEN)));
}

static void api_leave(struct comm_node *cn, struct community *c, struct ctl_resp *resp)
{
	struct del_arg d = {cn, c->id};
	struct comm_rec r = {.type = COMM_REC_MEMBER, .flags = COMM_REC_GONE};
	int err;

	/* The signed leave is what members will learn; locally, the
	 * community and its records go. */
	put_own(cn, c, &r);
	comm_net_remove(cn->net, c->id);
	err = store_write_call(cn->store, del_recs, &d, 0);
	if (err) {
		ctl_resp_store_error(resp, err, "leave");
		return;
	}
	for (size_t i = 0; i < cn->n; i++)
		if (cn->c[i] == c) {
			cn->c[i] = cn->c[--cn->n];
			break;
		}
	comm_drop(c);
	ctl_resp_json(resp, 200, json_object());
}

static void api_comm(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct comm_node *cn = arg;
	struct community *c;
	const char *rest;

	pthread_mutex_lock(&cn->mu);
	c = path_comm(cn, req, resp, &rest);
	if (!c)
		goto out;
	if (!strcmp(req->method, "GET") && !strcmp(rest, "members"))
		api_listing(cn, c, COMM_REC_MEMBER, req, resp);
	else if (!strcmp(req->method, "GET") && !strcmp(rest, "shares"))
		api_listing(cn, c, COMM_REC_SHARE, req, resp);
	else if (!strcmp(req->method, "GET") && !*rest)
		ctl_resp_json(resp, 200, comm_json(cn, c));
	else if (!strcmp(req->method, "POST") && !strcmp(rest, "shares"))
		api_bind_share(cn, c, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(rest, "invite"))
		api_invite(c, req, resp);
	else if (!strcmp(req->method, "POST") && !strcmp(rest, "leave"))
		api_leave(cn, c, resp);
	else
		ctl_resp_error(resp, 404, "not_found", "no such community route");
out:
	pthread_mutex_unlock(&cn->mu);
}

/* One metric family's HELP and TYPE lines. */
static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* The network's plain counters: name, help, field. */
static const struct {
	const char *name, *help;
	size_t off;
} net_counters[] = {
#define NC(n, h, f) {"weft_community_" n "_total", h, offsetof(struct comm_net_stats, f)}
	NC("announces", "Announces under a community's DHT key.", announces),
	NC("finds", "Lookups of a community's holders in the DHT.", finds),
	NC("holders_found", "Holders newly remembered from the DHT.", found),
	NC("pages_pulled", "Index pages read from holders.", pulled),
	NC("pages_served", "Index pages answered to holders.", served),
	NC("gossip_sent", "Gossip envelopes sent (ours and forwards).", gossip_sent),
	NC("gossip_received", "Gossip envelopes received.", gossip_in),
	NC("gossip_taken", "Gossip envelopes whose record was new.", gossip_taken),
	NC("gossip_forwarded", "Gossip envelopes forwarded.", gossip_forwarded),
	NC("gossip_refused",
	   "Gossip envelopes refused (duplicate, hops, rate, time, not the origin's record).",
	   gossip_refused),
	NC("mesh_in", "Mesh envelopes (gossip kind 2) handed to the mesh and taken.", mesh_in),
	NC("mesh_refused",
	   "Mesh envelopes refused (not a member's connection, no mesh, or the mesh's checks).",
	   mesh_refused),
	NC("busy", "Requests reset: the serve queue was full.", busy),
	NC("holders_not_member", "Holders whose member record was missing after their pages.",
	   not_member),
	NC("dials_by_key", "Holders' keys resolved to dial them (record, relay circuit).", by_key),
	NC("dials_by_key_failed", "Holders' keys that resolved to nothing to dial.", by_key_fail),
	NC("gossip_retried", "Gossip sends whose holder's address did not answer, tried by key.",
	   gossip_retried),
	NC("gossip_dropped", "Gossip sends by key dropped: the dial queue was full.",
	   gossip_dropped),
	NC("gossip_again", "Gossip sends by key that reached nobody, queued to be tried again later.",
	   gossip_again),
	NC("gossip_given_up", "Gossip sends by key that reached nobody in all their rounds.",
	   gossip_given_up),
	NC("gossip_late_ok", "Gossip sends by key that reached their holder in a later round.",
	   gossip_late_ok),
	NC("gossip_members",
	   "Own records sent by key to members no holder entry names (few holders known by key).",
	   gossip_members),
#undef NC
};

static void net_metrics(FILE *out, const struct comm_net_stats *ns)
{
	for (size_t i = 0; i < sizeof(net_counters) / sizeof(net_counters[0]); i++) {
		uint64_t v;

		memcpy(&v, (const char *)ns + net_counters[i].off, sizeof(v));
		family(out, net_counters[i].name, "counter", net_counters[i].help);
		fprintf(out, "%s %llu\n", net_counters[i].name, (unsigned long long)v);
	}
	family(out, "weft_community_pulls_total", "counter", "Pulls of a holder's index pages.");
	fprintf(out,
		"weft_community_pulls_total{result=\"ok\"} %llu\n"
		"weft_community_pulls_total{result=\"failed\"} %llu\n",
		(unsigned long long)(ns->pulls - ns->pull_fail), (unsigned long long)ns->pull_fail);
	family(out, "weft_community_gossip_bytes_total", "counter",
	       "Gossip stream payload bytes, by direction.");
	fprintf(out,
		"weft_community_gossip_bytes_total{dir=\"sent\"} %llu\n"
		"weft_community_gossip_bytes_total{dir=\"received\"} %llu\n",
		(unsigned long long)ns->gossip_bytes_sent, (unsigned long long)ns->gossip_bytes_in);
}

static void metrics(void *arg, FILE *out)
{
	struct comm_node *cn = arg;
	struct comm_index_stats t = {0}, s;
	size_t n;

	pthread_mutex_lock(&cn->mu);
	for (size_t i = 0; i < cn->n; i++) {
		comm_index_stats(cn->c[i]->ix, &s);
		t.stale += s.stale;
		t.full += s.full;
		t.not_member += s.not_member;
		t.bad += s.bad;
		t.foreign += s.foreign;
		t.bad_page += s.bad_page;
	}
	n = cn->n;
	pthread_mutex_unlock(&cn->mu);
	family(out, "weft_community_joined", "gauge", "Communities this node belongs to.");
	fprintf(out, "weft_community_joined %zu\n", n);
	family(out, "weft_community_refused_total", "counter",
	       "Records refused by the indexes, by reason.");
	fprintf(out,
		"weft_community_refused_total{reason=\"stale\"} %llu\n"
		"weft_community_refused_total{reason=\"full\"} %llu\n"
		"weft_community_refused_total{reason=\"not_member\"} %llu\n"
		"weft_community_refused_total{reason=\"bad\"} %llu\n"
		"weft_community_refused_total{reason=\"foreign\"} %llu\n"
		"weft_community_refused_total{reason=\"bad_page\"} %llu\n",
		(unsigned long long)t.stale, (unsigned long long)t.full,
		(unsigned long long)t.not_member, (unsigned long long)t.bad,
		(unsigned long long)t.foreign, (unsigned long long)t.bad_page);
	if (cn->net) {
		struct comm_net_stats ns;

		comm_net_stats(cn->net, &ns);
		net_metrics(out, &ns);
	}
}

/* ---- lifecycle ---- */

struct del_scan {
	const uint8_t *id;
	uint8_t keys[64][RKEY_MAX];
	size_t klen[64], n;
};

static int del_collect(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct del_scan *s = arg;

	(void)val;
	(void)vlen;
	if (klen < COMM_ID_LEN || klen > RKEY_MAX || memcmp(key, s->id, COMM_ID_LEN) != 0)
		return 0;
	memcpy(s->keys[s->n], key, klen);
	s->klen[s->n++] = klen;
	return s->n == 64 ? 1 : 0;
}

/* On the writer: every record of d->id and its meta. Batches of 64. */
static int del_recs(struct store_txn *txn, void *arg)
{
	struct del_arg *d = arg;
	struct del_scan *s = malloc(sizeof(*s));
	int err = 0;

	if (!s)
		return -ENOMEM;
	do {
		s->id = d->id;
		s->n = 0;
		err = store_txn_iter(txn, d->cn->db_recs, del_collect, s);
		if (err < 0)
			break;
		for (size_t i = 0; i < s->n && err >= 0; i++)
			err = store_txn_del(txn, d->cn->db_recs, s->keys[i], s->klen[i]);
	} while (err >= 0 && s->n == 64);
	if (err >= 0)
		err = store_txn_del(txn, d->cn->db_comm, d->id, COMM_ID_LEN);
	if (err == -ENOENT)
		err = 0;
	free(s);
	return err < 0 ? err : 0;
}

int comm_node_new(struct comm_node **out, const struct comm_node_opts *opts)
{
	struct comm_node *cn;
	int err;

	*out = NULL;
	if (!opts || !opts->store || !opts->id)
		return -EINVAL;
	cn = calloc(1, sizeof(*cn));
	if (!cn)
		return -ENOMEM;
	cn->store = opts->store;
	cn->me = opts->id;
	pthread_mutex_init(&cn->mu, NULL);
	err = store_db(cn->store, DB_COMM, &cn->db_comm);
	if (!err)
		err = store_db(cn->store, DB_RECS, &cn->db_recs);
	if (!err)
		err = store_iter(cn->store, cn->db_comm, load_comm, cn);
	if (!err)
		err = store_iter(cn->store, cn->db_recs, load_rec, cn);
	if (!err && opts->quic) {
		struct comm_net_opts no = {.quic = opts->quic, .dht = opts->dht, .me = opts->id,
					   .quic_port = opts->quic_port, .conn = opts->conn,
					   .ops = {.arg = cn, .page = net_page, .take = net_take,
						   .ingest = net_ingest, .member = net_member,
						   .introduce = net_introduce}};

		err = comm_net_new(&cn->net, &no);
		for (size_t i = 0; !err && i < cn->n; i++)
			err = comm_net_add(cn->net, cn->c[i]->id, cn->c[i]->pk);
	}
	if (err < 0) {
		comm_node_free(cn);
		return err;
	}
	if (opts->ctl) {
		ctl_route(opts->ctl, "GET", "/v1/community", api_list, cn);
		ctl_route(opts->ctl, "POST", "/v1/community/create", api_create, cn);
		ctl_route(opts->ctl, "POST", "/v1/community/join", api_join, cn);
		ctl_route(opts->ctl, "GET", "/v1/community/", api_comm, cn);
		ctl_route(opts->ctl, "POST", "/v1/community/", api_comm, cn);
		ctl_metrics(opts->ctl, metrics, cn);
	}
	*out = cn;
	return 0;
}

void comm_node_mesh_hook(struct comm_node *cn, comm_node_mesh_fn fn, void *arg)
{
	if (cn)
		comm_net_set_mesh(cn->net, fn, arg);
}

int comm_node_mesh_send(struct comm_node *cn, const uint8_t id[COMM_ID_LEN],
			const uint8_t key[COMM_PK_LEN], const uint8_t *env, size_t len)
{
	return cn ? comm_net_mesh_send(cn->net, id, key, env, len) : -ENOENT;
}

int comm_node_mesh_peers(struct comm_node *cn, const uint8_t id[COMM_ID_LEN],
			 uint8_t (*keys)[COMM_PK_LEN], size_t max)
{
	return cn ? comm_net_mesh_peers(cn->net, id, keys, max) : -ENOENT;
}

int comm_node_start(struct comm_node *cn)
{
	return cn ? comm_net_start(cn->net) : 0;
}

void comm_node_free(struct comm_node *cn)
{
	if (!cn)
		return;
	comm_net_free(cn->net);
	for (size_t i = 0; i < cn->n; i++)
		comm_drop(cn->c[i]);
	pthread_mutex_destroy(&cn->mu);
	free(cn);
}
