// SPDX-License-Identifier: MIT
/*
 * Group keys this node holds (database content_group_keys: group id ->
 * owner, epoch, seed, the group's name): those of groups it owns (written
 * by groups.c) and of groups it is a member of, taken from the group
 * records it fetched (a share "weft-group.NAME" of the owner, one item of
 * type application/x-weft-group: docs/PRIVATE.md "Groups"). Opening a
 * sealed share tries them after the node key. Calls the store and seal;
 * called by private.c (unwrap), the download jobs (import) and groups.c.
 */
#include <errno.h>
#include <stdio.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/blake3.h"
#include "weft/log.h"
#include "weft/seal.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_GROUP_KEYS_DB "content_group_keys"
/* value: version 1 | owner (32) | epoch (8, LE) | seed (32) | name_len (1) | name */
#define HELD_FIXED (1 + 32 + 8 + 32 + 1)

static void le64_put(uint8_t *b, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint64_t le64_get(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | b[i];
	return v;
}

int cn_groupkeys_init(struct content_node *cn)
{
	return store_db(cn->store, CN_GROUP_KEYS_DB, &cn->gkeys_dbi);
}

void cn_group_id(const uint8_t owner[32], const char *name, uint8_t gid[32])
{
	static const char ctx[] = "weft group id v1";
	struct blake3_hasher h;

	blake3_hasher_init_derive_key(&h, ctx, sizeof(ctx) - 1);
	blake3_hasher_update(&h, owner, 32);
	blake3_hasher_update(&h, name, strlen(name));
	blake3_hasher_finalize(&h, gid, 32);
}

static int held_decode(const void *val, size_t vlen, struct cn_group_held *g)
{
	const uint8_t *v = val;

	if (vlen < HELD_FIXED || v[0] != 1 || vlen != (size_t)HELD_FIXED + v[HELD_FIXED - 1] ||
	    !v[HELD_FIXED - 1] || v[HELD_FIXED - 1] > CN_GROUP_NAME_MAX)
		return -EBADMSG;
	memcpy(g->owner, v + 1, 32);
	g->epoch = le64_get(v + 33);
	memcpy(g->seed, v + 41, 32);
	memcpy(g->name, v + HELD_FIXED, v[HELD_FIXED - 1]);
	g->name[v[HELD_FIXED - 1]] = 0;
	return 0;
}

int cn_group_held_get(struct content_node *cn, const uint8_t gid[32], struct cn_group_held *g)
{
	void *v = NULL;
	size_t vl = 0;
	int rc = store_get(cn->store, cn->gkeys_dbi, gid, 32, &v, &vl);

	if (!rc)
		rc = held_decode(v, vl, g);
	if (v)
		sodium_memzero(v, vl);
	free(v);
	return rc;
}

struct count_ctx {
	size_t n;
};

static int count_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	(void)key, (void)klen, (void)val, (void)vlen;
	((struct count_ctx *)arg)->n++;
	return 0;
}

int cn_group_hold(struct content_node *cn, const uint8_t gid[32], const struct cn_group_held *g)
{
	uint8_t v[HELD_FIXED + CN_GROUP_NAME_MAX];
	size_t nl = strlen(g->name);
	struct cn_group_held old;
	struct count_ctx c = {0};
	int rc;

	if (!nl || nl > CN_GROUP_NAME_MAX)
		return -EINVAL;
	rc = cn_group_held_get(cn, gid, &old);
	if (rc == 0 && old.epoch > g->epoch) {
		sodium_memzero(&old, sizeof(old));
		return -ESTALE; /* a replayed older record: never wrap for it */
	}
	sodium_memzero(&old, sizeof(old));
	if (rc == -ENOENT) {
		store_iter(cn->store, cn->gkeys_dbi, count_one, &c);
		if (c.n >= CN_GROUPS_HELD_MAX)
			return -ENOSPC;
	}
	v[0] = 1;
	memcpy(v + 1, g->owner, 32);
	le64_put(v + 33, g->epoch);
	memcpy(v + 41, g->seed, 32);
	v[HELD_FIXED - 1] = (uint8_t)nl;
	memcpy(v + HELD_FIXED, g->name, nl);
	{
		struct store_op op = {.dbi = cn->gkeys_dbi,
				      .key = gid,
				      .klen = 32,
				      .val = v,
				      .vlen = HELD_FIXED + nl};

		rc = store_write_sync(cn->store, &op, 1, 0);
	}
	sodium_memzero(v, sizeof(v));
	return rc;
}

int cn_group_import(struct content_node *cn, const uint8_t owner[32], const char *share_name,
		    const uint8_t *rec, size_t len)
{
	struct seal_group_record r;
	struct cn_group_held g;
	uint8_t gid[32];
	const char *name;
	int rc;

	if (strncmp(share_name, CN_GROUP_SHARE_PREFIX, strlen(CN_GROUP_SHARE_PREFIX)))
		return -EINVAL;
	name = share_name + strlen(CN_GROUP_SHARE_PREFIX);
	if (!*name || strlen(name) > CN_GROUP_NAME_MAX)
		return -EINVAL;
	/* pinned owner: the key that signed the share naming the group */
	rc = seal_group_decode(&r, rec, len, owner);
	if (rc)
		return rc == -EPERM ? rc : -EPROTO; /* -EBADMSG is for our entry */
	cn_group_id(owner, name, gid);
	if (memcmp(gid, r.group_id, 32))
		return -EPERM; /* a record of another group under this name */
	memset(&g, 0, sizeof(g));
	rc = seal_group_open(&r, cn->id->sk, g.seed);
	if (rc)
		return rc; /* -ENOENT: not (or no longer) a member */
	memcpy(g.owner, owner, 32);
	g.epoch = r.epoch;
	snprintf(g.name, sizeof(g.name), "%s", name);
	rc = cn_group_hold(cn, gid, &g);
	sodium_memzero(&g, sizeof(g));
	if (!rc)
		log_info(CN_MOD, "group %s of %.16s...: epoch %llu key held", name,
			 share_name, (unsigned long long)r.epoch);
	return rc;
}

struct unwrap_ctx {
	const struct manifest *m;
	uint8_t *ck;
	int rc;
};

static int unwrap_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct unwrap_ctx *u = arg;
	struct cn_group_held g;
	uint8_t gpk[32], xpk[32], xsk[32];
	int rc;

	(void)key;
	if (klen != 32 || held_decode(val, vlen, &g))
		return 0;
	rc = seal_group_keys(g.seed, gpk, xpk, xsk);
	sodium_memzero(&g, sizeof(g));
	if (!rc)
		rc = seal_unwrap(xsk, xpk, u->m->epk, u->m->keys, u->m->nkeys, u->ck);
	sodium_memzero(xsk, sizeof(xsk));
	if (rc == 0) {
		u->rc = 0;
		return 1; /* found: stop */
	}
	if (rc == -EBADMSG)
		u->rc = -EBADMSG;
	return 0;
}

int cn_group_unwrap(struct content_node *cn, const struct manifest *m, uint8_t ck[32])
{
	struct unwrap_ctx u = {.m = m, .ck = ck, .rc = -ENOKEY};

	store_iter(cn->store, cn->gkeys_dbi, unwrap_one, &u);
	return u.rc;
}

static int held_json(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	json_t *a = arg;
	struct cn_group_held g;
	char gid[65], owner[65];

	if (klen != 32 || held_decode(val, vlen, &g))
		return 0;
	util_hex(gid, key, 32);
	util_hex(owner, g.owner, 32);
	json_array_append_new(a, json_pack("{s:s,s:s,s:s,s:I}", "group_id", gid, "name", g.name,
					   "owner", owner, "epoch", (json_int_t)g.epoch));
	sodium_memzero(&g, sizeof(g));
	return 0;
}

json_t *cn_groups_held_json(struct content_node *cn)
{
	json_t *a = json_array();

	store_iter(cn->store, cn->gkeys_dbi, held_json, a);
	return a;
}
