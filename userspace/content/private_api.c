// SPDX-License-Identifier: MIT
/*
 * The control API's side of sealed shares: a share as JSON (for a sealed
 * share this node can open, its real items), the recipients of a private
 * add or a revocation parsed and gathered (this node, keys, circles,
 * groups; the cap checked as the list grows, before any crypto), and a
 * private share's keyed name. Called by the hub's add and by revoke.c.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/ctl.h"
#include "weft/seal.h"
#include "weft/util.h"

void cn_api_add_args_free(struct cn_add_args *a)
{
	free(a->to);
	a->to = NULL;
	a->nto = 0;
}

json_t *cn_manifest_json(const struct manifest *m)
{
	json_t *items = json_array();
	char sid[41], pk[65], sig[129], id[65];

	util_hex(sid, m->share_id, MANIFEST_SHARE_ID_LEN);
	util_hex(pk, m->pk, IDENTITY_PK_LEN);
	util_hex(sig, m->sig, IDENTITY_SIG_LEN);
	for (uint32_t i = 0; i < m->nitems; i++) {
		util_hex(id, m->items[i].id, 32);
		json_array_append_new(items,
				      json_pack("{s:s,s:s,s:I,s:s}", "path", m->items[i].path, "id",
						id, "size", (json_int_t)m->items[i].size, "type",
						m->items[i].type));
	}
	json_t *o = json_pack(
	    "{s:s,s:s,s:s,s:I,s:I,s:s,s:s,s:o}", "share_id", sid, "name", m->name, "publisher", pk,
	    "seq", (json_int_t)m->seq, "created", (json_int_t)m->created, "visibility",
	    m->visibility == MANIFEST_PRIVATE ? "private" : "public", "sig", sig, "items", items);

	if (o && m->sealed) { /* hosts see the count of wrapped keys, not whose */
		json_object_set_new(o, "sealed", json_true());
		json_object_set_new(o, "keys", json_integer(m->nkeys));
	}
	if (o && m->has_prev) { /* the predecessor link (docs/CONTENT.md) */
		util_hex(id, m->prev, 32);
		json_object_set_new(o, "prev", json_string(id));
		json_object_set_new(o, "prev_seq", json_integer((json_int_t)m->prev_seq));
	}
	return o;
}

/* manifest_json, and for a sealed share this node can open, "opened": its
 * real items (path, type, plaintext size, the ciphertext blob's id); a
 * node that cannot gets "recipient": false. */
json_t *cn_share_json(struct content_node *cn, const struct manifest *m)
{
	json_t *o = cn_manifest_json(m), *a;
	struct cn_seal_view v;
	uint8_t ck[32];
	char id[65], path[MANIFEST_MAX_PATH + 1];

	if (!o || !m->sealed)
		return o;
	if (cn_seal_key(cn, m, ck) || cn_seal_view_open(ck, m, &v)) {
		sodium_memzero(ck, sizeof(ck));
		json_object_set_new(o, "recipient", json_false());
		return o;
	}
	sodium_memzero(ck, sizeof(ck));
	a = json_array();
	for (uint32_t i = 0; i < v.n; i++) {
		util_hex(id, m->items[i].id, 32);
		cn_seal_view_path(&v, i, path, sizeof(path));
		json_array_append_new(a, json_pack("{s:s,s:s%,s:I,s:s}", "path", path, "type",
						   (const char *)v.it[i].type, v.it[i].type_len,
						   "size", (json_int_t)v.it[i].size, "id", id));
	}
	cn_seal_view_free(&v);
	json_object_set_new(o, "recipient", json_true());
	json_object_set_new(o, "opened", a);
	return o;
}


/* "to": [KEY, ...] and "to_circle": [NAME, ...] of a private add; counts
 * are checked before any key is parsed. */
int cn_api_parse_recipients(json_t *body, struct cn_add_args *a, struct ctl_resp *resp)
{
	json_t *to = json_object_get(body, "to"), *v;
	size_t i, n;

	if ((to && !json_is_array(to)) ||
	    (json_object_get(body, "to_circle") && !json_is_array(json_object_get(body, "to_circle"))) ||
	    (json_object_get(body, "to_group") && !json_is_array(json_object_get(body, "to_group")))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "to: a list of node keys; to_circle: a list of circle names; "
			       "to_group: a list of groups (NAME or OWNERKEY/NAME)");
		return -EINVAL;
	}
	a->circles = json_object_get(body, "to_circle");
	a->groups = json_object_get(body, "to_group");
	if (!a->priv &&
	    (json_array_size(to) || json_array_size(a->circles) || json_array_size(a->groups))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "to, to_circle and to_group need \"private\": true");
		return -EINVAL;
	}
	if (json_array_size(a->groups) > CN_GET_MAX_ITEMS) {
		ctl_resp_error(resp, 413, "too_many_recipients", "at most %d groups per share",
			       CN_GET_MAX_ITEMS);
		return -E2BIG;
	}
	json_array_foreach(a->groups, i, v)
	{
		if (!json_is_string(v)) {
			ctl_resp_error(resp, 400, "bad_request", "to_group[%zu]: a group", i);
			return -EINVAL;
		}
	}
	n = json_array_size(to);
	if (n + 1 > SEAL_MAX_RECIPIENTS || json_array_size(a->circles) > CN_GET_MAX_ITEMS) {
		ctl_resp_error(resp, 413, "too_many_recipients",
			       "%zu recipients and this node: a private share has at most %u; "
			       "past that, use a group",
			       n, SEAL_MAX_RECIPIENTS);
		return -E2BIG;
	}
	json_array_foreach(a->circles, i, v)
	{
		if (!json_is_string(v)) {
			ctl_resp_error(resp, 400, "bad_request", "to_circle[%zu]: a name", i);
			return -EINVAL;
		}
	}
	if (!n)
		return 0;
	a->to = calloc(n, 32);
	if (!a->to) {
		ctl_resp_errno(resp, -ENOMEM, "add");
		return -ENOMEM;
	}
	json_array_foreach(to, i, v)
	{
		const char *h = json_string_value(v);

		if (!h || strlen(h) != 64 || util_unhex(a->to[i], 32, h)) {
			ctl_resp_error(resp, 400, "bad_request", "to[%zu]: a node key (64 hex)", i);
			return -EINVAL;
		}
	}
	a->nto = (unsigned int)n;
	return 0;
}


/* The suffix of a private share's name: 8 bytes of keyed BLAKE2b over the
 * name, keyed by a subkey of the node's secret (so stable across adds of
 * one name, unguessable to others), as 16 hex digits. */
void cn_private_name(const struct content_node *cn, const char *base, char *out, size_t cap)
{
	static const char ctx[] = "weft-private-name-v1";
	uint8_t k[crypto_generichash_KEYBYTES], r[8];
	char rh[17];
	crypto_generichash_state st;

	crypto_generichash(k, sizeof(k), (const uint8_t *)ctx, sizeof(ctx), cn->id->sk, 32);
	crypto_generichash_init(&st, k, sizeof(k), sizeof(r));
	crypto_generichash_update(&st, (const uint8_t *)base, strlen(base));
	crypto_generichash_final(&st, r, sizeof(r));
	sodium_memzero(k, sizeof(k));
	util_hex(rh, r, sizeof(r));
	snprintf(out, cap, "%.*s-%s", CN_PRIV_BASE_MAX, base, rh);
}

/* The recipients of a private add: this node first (a publisher reads its
 * own share), then "to", then each circle's members; repeats dropped, at
 * most SEAL_MAX_RECIPIENTS (checked as the list grows, before any crypto).
 * *n gets the count; 0 or an error already written to resp. */
int cn_gather_recipients(struct content_node *cn, const struct cn_add_args *a,
			     uint8_t (*r)[32], size_t *n, struct ctl_resp *resp)
{
	uint8_t (*ck)[32] = malloc(SEAL_MAX_RECIPIENTS * 32);
	size_t i, nk = 0, k;
	json_t *v;
	int rc;

	if (!ck) {
		ctl_resp_errno(resp, -ENOMEM, "add");
		return -ENOMEM;
	}
	*n = 0;
	memcpy(r[(*n)++], cn->id->pk, 32);
#define PUSH(key)                                                                                  \
	do {                                                                                       \
		for (k = 0; k < *n && memcmp(r[k], (key), 32); k++)                                \
			;                                                                          \
		if (k == *n) {                                                                     \
			if (*n == SEAL_MAX_RECIPIENTS)                                             \
				goto too_many;                                                     \
			memcpy(r[(*n)++], (key), 32);                                              \
		}                                                                                  \
	} while (0)
	for (i = 0; i < a->nto; i++)
		PUSH(a->to[i]);
	json_array_foreach(a->circles, i, v)
	{
		rc = cn_circle_get(cn, json_string_value(v), ck, SEAL_MAX_RECIPIENTS, &nk);
		if (rc) {
			if (rc == -ENOENT)
				ctl_resp_error(resp, 404, "not_found", "no circle %s",
					       json_string_value(v));
			else
				ctl_resp_errno(resp, rc, json_string_value(v));
			free(ck);
			return rc;
		}
		for (size_t j = 0; j < nk; j++)
			PUSH(ck[j]);
	}
	json_array_foreach(a->groups, i, v)
	{
		/* one entry for the whole group: its key of this epoch */
		uint8_t gpk[32];

		rc = cn_group_post_key(cn, json_string_value(v), gpk);
		if (rc) {
			if (rc == -ENOENT)
				ctl_resp_error(resp, 404, "not_found",
					       "no group %s here (group create NAME, or group join "
					       "OWNERKEY/NAME and wait for its record)",
					       json_string_value(v));
			else
				ctl_resp_error(resp, 400, "bad_request",
					       "to_group: %s is not NAME or OWNERKEY/NAME",
					       json_string_value(v));
			free(ck);
			return rc;
		}
		PUSH(gpk);
	}
#undef PUSH
	free(ck);
	return 0;
too_many:
	free(ck);
	ctl_resp_error(resp, 413, "too_many_recipients",
		       "more than %u recipients (this node included): past that, use a group",
		       SEAL_MAX_RECIPIENTS);
	return -E2BIG;
}

