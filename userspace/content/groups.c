// SPDX-License-Identifier: MIT
/*
 * Groups this node owns (docs/PRIVATE.md "Groups"): database
 * content_groups, name -> the group's seed, epoch and members. A group's
 * record (seal_group_seal: the seed wrapped for each member's node key,
 * signed by this node) is published as the one item of the public share
 * "weft-group.NAME", so members follow it like any share head (weftctl
 * group join OWNER/NAME subscribes to it) and the download job hands it to
 * groupkeys.c. Adding members keeps the epoch; removing one rotates the
 * seed (epoch + 1): posts made after it are wrapped for the new key only.
 *
 * API: GET /v1/content/groups; POST /v1/content/groups {"name"} (create);
 * POST /v1/content/groups/NAME/add {"keys": [...]}; POST
 * /v1/content/groups/NAME/rm {"key"}. Calls groupkeys.c, the share
 * publishing of subscribe.c, the chunk store and seal.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/content_node_int.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/seal.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_GROUPS_DB "content_groups"
/* Groups owned: 64. */
#define CN_GROUPS_OWNED_MAX 64
/* value: version 1 | seed (32) | epoch (8, LE) | n (2, LE) | n x member key (32) */
#define OWNED_FIXED (1 + 32 + 8 + 2)

struct owned {
	uint8_t seed[32];
	uint64_t epoch;
	uint32_t n;
	uint8_t (*members)[32];
};

static int name_valid(const char *s)
{
	return cn_label_valid(s, CN_GROUP_NAME_MAX);
}

static void owned_free(struct owned *o)
{
	sodium_memzero(o->seed, sizeof(o->seed));
	free(o->members);
	memset(o, 0, sizeof(*o));
}

static int owned_get(struct content_node *cn, const char *name, struct owned *o)
{
	uint8_t *v = NULL;
	size_t vl = 0;
	int rc;

	memset(o, 0, sizeof(*o));
	rc = store_get(cn->store, cn->groups_dbi, name, strlen(name), (void **)&v, &vl);
	if (rc)
		return rc;
	rc = -EBADMSG;
	if (vl >= OWNED_FIXED && v[0] == 1) {
		uint32_t n = (uint32_t)v[41] | (uint32_t)v[42] << 8;

		if (n >= 1 && n <= SEAL_MAX_RECIPIENTS && vl == OWNED_FIXED + (size_t)n * 32 &&
		    (o->members = malloc((size_t)n * 32))) {
			memcpy(o->seed, v + 1, 32);
			o->epoch = 0;
			for (int i = 7; i >= 0; i--)
				o->epoch = o->epoch << 8 | v[33 + i];
			o->n = n;
			memcpy(o->members, v + OWNED_FIXED, (size_t)n * 32);
			rc = 0;
		}
	}
	sodium_memzero(v, vl);
	free(v);
	return rc;
}

/* Store the group, publish its record (a new version of its share) and
 * hold its key ourselves. 0 or -errno. */
static int owned_put_publish(struct content_node *cn, const char *name, const struct owned *o)
{
	size_t vl = OWNED_FIXED + (size_t)o->n * 32, rl;
	uint8_t *v = malloc(vl), *rec = NULL, gid[32], id[32];
	char sname[MANIFEST_MAX_NAME + 1];
	struct cn_group_held h;
	struct manifest m;
	int rc;

	if (!v)
		return -ENOMEM;
	v[0] = 1;
	memcpy(v + 1, o->seed, 32);
	for (int i = 0; i < 8; i++)
		v[33 + i] = (uint8_t)(o->epoch >> (8 * i));
	v[41] = (uint8_t)o->n;
	v[42] = (uint8_t)(o->n >> 8);
	memcpy(v + OWNED_FIXED, o->members, (size_t)o->n * 32);
	{
		struct store_op op = {.dbi = cn->groups_dbi,
				      .key = name,
				      .klen = strlen(name),
				      .val = v,
				      .vlen = vl};

		rc = store_write_sync(cn->store, &op, 1, 0);
	}
	sodium_memzero(v, vl);
	free(v);
	if (rc)
		return rc;
	/* our own key for posts to the group, held like a member's */
	cn_group_id(cn->id->pk, name, gid);
	memset(&h, 0, sizeof(h));
	memcpy(h.owner, cn->id->pk, 32);
	h.epoch = o->epoch;
	memcpy(h.seed, o->seed, 32);
	snprintf(h.name, sizeof(h.name), "%s", name);
	rc = cn_group_hold(cn, gid, &h);
	sodium_memzero(&h, sizeof(h));
	if (rc)
		return rc;
	/* the record, as a share members follow */
	rec = malloc(SEAL_GROUP_MAX_LEN);
	if (!rec)
		return -ENOMEM;
	rc = seal_group_seal(cn->id->sk, gid, o->seed, o->epoch, (const uint8_t(*)[32])o->members,
			     o->n, rec, SEAL_GROUP_MAX_LEN, &rl);
	if (!rc)
		rc = cstore_add_buf(cn->cs, rec, rl, id);
	free(rec);
	if (rc)
		return rc;
	snprintf(sname, sizeof(sname), CN_GROUP_SHARE_PREFIX "%s", name);
	manifest_init(&m);
	rc = manifest_set_name(&m, sname, strlen(sname));
	if (!rc)
		rc = manifest_add_item(&m, "group", 5, id, rl, CN_GROUP_TYPE);
	if (!rc) {
		m.visibility = MANIFEST_PUBLIC;
		m.created = (uint64_t)time(NULL);
		rc = cn_share_publish(cn, &m);
	}
	manifest_free(&m);
	if (!rc)
		log_info(CN_MOD, "group %s: epoch %llu, %u members, record published", name,
			 (unsigned long long)o->epoch, o->n);
	return rc;
}

static json_t *owned_json(const char *name, size_t nl, const struct owned *o, const uint8_t *pk)
{
	json_t *ms = json_array();
	uint8_t gid[32];
	char hex[65], nm[CN_GROUP_NAME_MAX + 1];

	snprintf(nm, sizeof(nm), "%.*s", (int)nl, name);
	for (uint32_t i = 0; i < o->n; i++) {
		util_hex(hex, o->members[i], 32);
		json_array_append_new(ms, json_string(hex));
	}
	cn_group_id(pk, nm, gid);
	util_hex(hex, gid, 32);
	return json_pack("{s:s,s:s,s:I,s:o}", "name", nm, "group_id", hex, "epoch",
			 (json_int_t)o->epoch, "members", ms);
}

struct list_ctx {
	struct content_node *cn;
	json_t *a;
	size_t n;
};

static int owned_list_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *l = arg;
	char nm[CN_GROUP_NAME_MAX + 1];
	struct owned o;

	(void)val, (void)vlen;
	l->n++;
	if (!l->a || !klen || klen > CN_GROUP_NAME_MAX)
		return 0;
	snprintf(nm, sizeof(nm), "%.*s", (int)klen, (const char *)key);
	if (owned_get(l->cn, nm, &o) == 0) {
		json_array_append_new(l->a, owned_json(nm, klen, &o, l->cn->id->pk));
		owned_free(&o);
	}
	return 0;
}

/* Member keys from a JSON array: 64 hex, a curve point, none twice, none
 * already in o; appended to o (at most SEAL_MAX_RECIPIENTS in all, checked
 * before any is parsed). 0 or an error written to resp. */
static int add_members(struct owned *o, json_t *keys, struct ctl_resp *resp)
{
	size_t i, n = json_array_size(keys);
	json_t *v;
	void *p;

	if (!json_is_array(keys) || !n) {
		ctl_resp_error(resp, 400, "bad_request", "expected {\"keys\": [KEY, ...]}");
		return -EINVAL;
	}
	if (o->n + n > SEAL_MAX_RECIPIENTS) {
		ctl_resp_error(resp, 413, "too_many_recipients",
			       "a group has at most %u members", SEAL_MAX_RECIPIENTS);
		return -E2BIG;
	}
	p = realloc(o->members, (o->n + n) * 32);
	if (!p) {
		ctl_resp_errno(resp, -ENOMEM, "group");
		return -ENOMEM;
	}
	o->members = p;
	json_array_foreach(keys, i, v)
	{
		const char *h = json_string_value(v);
		uint8_t k[32];
		uint32_t j;

		if (!h || strlen(h) != 64 || util_unhex(k, 32, h) || cn_key_check(k)) {
			ctl_resp_error(resp, 400, "bad_request", "keys[%zu]: not a node key", i);
			return -EINVAL;
		}
		for (j = 0; j < o->n && memcmp(o->members[j], k, 32); j++)
			;
		if (j == o->n)
			memcpy(o->members[o->n++], k, 32);
	}
	return 0;
}

/* POST /v1/content/groups {"name": NAME}: a new group of one member (this
 * node), epoch 1, its record published. */
static void api_create(struct content_node *cn, const struct ctl_req *req, struct ctl_resp *resp)
{
	const char *name = json_string_value(json_object_get(req->json, "name"));
	struct list_ctx l = {.cn = cn};
	struct owned o = {0};
	int rc;

	if (!name_valid(name)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "expected {\"name\": NAME}: 1 to %d of A-Z a-z 0-9 . _ -",
			       CN_GROUP_NAME_MAX);
		return;
	}
	if (owned_get(cn, name, &o) != -ENOENT) {
		owned_free(&o);
		ctl_resp_error(resp, 409, "exists", "group %s exists", name);
		return;
	}
	store_iter(cn->store, cn->groups_dbi, owned_list_one, &l);
	if (l.n >= CN_GROUPS_OWNED_MAX) {
		ctl_resp_error(resp, 507, "no_space", "at most %d groups owned",
			       CN_GROUPS_OWNED_MAX);
		return;
	}
	o.members = malloc(32);
	if (!o.members) {
		ctl_resp_errno(resp, -ENOMEM, "group");
		return;
	}
	randombytes_buf(o.seed, sizeof(o.seed));
	o.epoch = 1;
	o.n = 1;
	memcpy(o.members[0], cn->id->pk, 32);
	rc = owned_put_publish(cn, name, &o);
	if (rc)
		ctl_resp_store_error(resp, rc, "group");
	else
		ctl_resp_json(resp, 200, owned_json(name, strlen(name), &o, cn->id->pk));
	owned_free(&o);
}

/* POST /v1/content/groups/NAME/add|rm */
static void api_change(struct content_node *cn, const struct ctl_req *req, struct ctl_resp *resp)
{
	char name[CN_GROUP_NAME_MAX + 1];
	const char *slash = strchr(req->subpath, '/'), *verb;
	struct owned o;
	int rc;

	if (!slash || (size_t)(slash - req->subpath) > CN_GROUP_NAME_MAX) {
		ctl_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
		return;
	}
	snprintf(name, sizeof(name), "%.*s", (int)(slash - req->subpath), req->subpath);
	verb = slash + 1;
	if (!name_valid(name) || (strcmp(verb, "add") && strcmp(verb, "rm"))) {
		ctl_resp_error(resp, 404, "not_found", "no such endpoint: %s", req->path);
		return;
	}
	rc = owned_get(cn, name, &o);
	if (rc) {
		if (rc == -ENOENT)
			ctl_resp_error(resp, 404, "not_found", "no group %s owned here", name);
		else
			ctl_resp_errno(resp, rc, "group");
		return;
	}
	if (!strcmp(verb, "add")) {
		if (add_members(&o, json_object_get(req->json, "keys"), resp))
			goto out;
	} else {
		const char *h = json_string_value(json_object_get(req->json, "key"));
		uint8_t k[32];
		uint32_t j;

		if (!h || strlen(h) != 64 || util_unhex(k, 32, h)) {
			ctl_resp_error(resp, 400, "bad_request", "expected {\"key\": KEY}");
			goto out;
		}
		if (!memcmp(k, cn->id->pk, 32)) {
			ctl_resp_error(resp, 400, "bad_request", "the owner stays a member");
			goto out;
		}
		for (j = 0; j < o.n && memcmp(o.members[j], k, 32); j++)
			;
		if (j == o.n) {
			ctl_resp_error(resp, 404, "not_found", "%s is not a member of %s", h, name);
			goto out;
		}
		memmove(o.members[j], o.members[j + 1], (size_t)(o.n - j - 1) * 32);
		o.n--;
		/* rotation: the removed member keeps the old seed, not the new */
		randombytes_buf(o.seed, sizeof(o.seed));
		o.epoch++;
	}
	rc = owned_put_publish(cn, name, &o);
	if (rc)
		ctl_resp_store_error(resp, rc, "group");
	else
		ctl_resp_json(resp, 200, owned_json(name, strlen(name), &o, cn->id->pk));
out:
	owned_free(&o);
}

static void api_groups_post(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;

	if (!req->subpath || !*req->subpath)
		api_create(cn, req, resp);
	else
		api_change(cn, req, resp);
}

/* GET /v1/content/groups: owned groups (members, epoch) and the group keys
 * held (groups this node is a member of, its own included). */
static void api_groups(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct list_ctx l = {.cn = cn, .a = json_array()};

	(void)req;
	store_iter(cn->store, cn->groups_dbi, owned_list_one, &l);
	ctl_resp_json(resp, 200,
		      json_pack("{s:o,s:o}", "owned", l.a, "held", cn_groups_held_json(cn)));
}

int cn_group_post_key(struct content_node *cn, const char *ref, uint8_t pk[32])
{
	const char *slash = ref ? strchr(ref, '/') : NULL;
	uint8_t owner[32], gid[32], xpk[32], xsk[32];
	struct cn_group_held h;
	int rc;

	if (!ref)
		return -EINVAL;
	if (slash) {
		char hex[65];

		if (slash - ref != 64 || !name_valid(slash + 1))
			return -EINVAL;
		memcpy(hex, ref, 64);
		hex[64] = 0;
		if (util_unhex(owner, 32, hex))
			return -EINVAL;
		cn_group_id(owner, slash + 1, gid);
	} else {
		if (!name_valid(ref))
			return -EINVAL;
		cn_group_id(cn->id->pk, ref, gid);
	}
	rc = cn_group_held_get(cn, gid, &h);
	if (rc)
		return rc == -EBADMSG ? -EIO : rc;
	rc = seal_group_keys(h.seed, pk, xpk, xsk);
	sodium_memzero(&h, sizeof(h));
	sodium_memzero(xsk, sizeof(xsk));
	return rc;
}

int cn_groups_init(struct content_node *cn, struct ctl *ctl)
{
	int rc = store_db(cn->store, CN_GROUPS_DB, &cn->groups_dbi);

	if (!rc)
		rc = cn_groupkeys_init(cn);
	if (rc || !ctl)
		return rc;
	ctl_route(ctl, "GET", "/v1/content/groups", api_groups, cn);
	ctl_route(ctl, "POST", "/v1/content/groups", api_groups_post, cn);
	ctl_route(ctl, "POST", "/v1/content/groups/", api_groups_post, cn);
	return 0;
}
