// SPDX-License-Identifier: MIT
/*
 * Circles: named recipient lists kept on this node only (database
 * content_circles: name -> the node keys, 32 bytes each), for `content add
 * --private --to-circle NAME` (docs/PRIVATE.md "Sealed shares"). Nothing of
 * a circle leaves the node: a share wrapped for a circle is wrapped for
 * its members' keys, as if each were named with --to. Calls the store.
 *
 * API: GET /v1/content/circles; PUT /v1/content/circles/NAME {"keys":
 * [KEY, ...]} (replaces the list); DELETE /v1/content/circles/NAME.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/ctl.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_CIRCLES_DB "content_circles"

/* A label (a circle's or a group's name): 1..max bytes of [A-Za-z0-9._-],
 * so it is a path segment of the API as is. */
int cn_label_valid(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;

	if (!n || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-'))
			return 0;
	return 1;
}

static int circle_name_valid(const char *s)
{
	return cn_label_valid(s, CN_CIRCLE_NAME_MAX);
}

int cn_circle_get(struct content_node *cn, const char *name, uint8_t (*keys)[32], size_t cap,
		  size_t *n)
{
	void *v = NULL;
	size_t vl = 0;
	int rc;

	if (!circle_name_valid(name))
		return -EINVAL;
	rc = store_get(cn->store, cn->circles_dbi, name, strlen(name), &v, &vl);
	if (rc)
		return rc;
	if (vl % 32 || vl / 32 > CN_CIRCLE_MAX_KEYS) {
		free(v);
		return -EBADMSG; /* not what this file writes */
	}
	if (vl / 32 > cap) {
		free(v);
		return -E2BIG;
	}
	memcpy(keys, v, vl);
	*n = vl / 32;
	free(v);
	return 0;
}

static int circle_json(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	json_t *a = arg, *ks = json_array();
	char hex[65];

	if (!klen || klen > CN_CIRCLE_NAME_MAX || vlen % 32) {
		json_decref(ks);
		return 0;
	}
	for (size_t i = 0; i < vlen / 32; i++) {
		util_hex(hex, (const uint8_t *)val + i * 32, 32);
		json_array_append_new(ks, json_string(hex));
	}
	json_array_append_new(a,
			      json_pack("{s:s%,s:o}", "name", (const char *)key, klen, "keys", ks));
	return 0;
}

/* PUT /v1/content/circles/NAME {"keys": [KEY, ...]}: keys checked (64 hex,
 * a valid Ed25519 point, none twice) before anything is stored. */
static void api_circle_put(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	json_t *ks = json_object_get(req->json, "keys"), *v;
	uint8_t(*keys)[32] = NULL;
	size_t i, n;
	int rc;

	if (!circle_name_valid(req->subpath)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "circle name: 1 to %d of A-Z a-z 0-9 . _ -", CN_CIRCLE_NAME_MAX);
		return;
	}
	if (!json_is_array(ks) || !json_array_size(ks)) {
		ctl_resp_error(resp, 400, "bad_request", "expected {\"keys\": [KEY, ...]}");
		return;
	}
	n = json_array_size(ks);
	if (n > CN_CIRCLE_MAX_KEYS) {
		ctl_resp_error(resp, 413, "too_many_recipients",
			       "%zu keys: a circle holds at most %d (a share at most 500 "
			       "recipients: use a group)",
			       n, CN_CIRCLE_MAX_KEYS);
		return;
	}
	keys = calloc(n, 32);
	if (!keys) {
		ctl_resp_errno(resp, -ENOMEM, "circle");
		return;
	}
	json_array_foreach(ks, i, v)
	{
		const char *h = json_string_value(v);

		if (!h || strlen(h) != 64 || util_unhex(keys[i], 32, h) || cn_key_check(keys[i])) {
			ctl_resp_error(resp, 400, "bad_request", "keys[%zu]: not a node key", i);
			goto out;
		}
		for (size_t k = 0; k < i; k++)
			if (!memcmp(keys[k], keys[i], 32)) {
				ctl_resp_error(resp, 400, "bad_request", "keys[%zu]: listed twice",
					       i);
				goto out;
			}
	}
	{
		struct store_op op = {.dbi = cn->circles_dbi,
				      .key = req->subpath,
				      .klen = strlen(req->subpath),
				      .val = keys,
				      .vlen = n * 32};

		rc = store_write_sync(cn->store, &op, 1, 0);
	}
	if (rc)
		ctl_resp_store_error(resp, rc, "circle");
	else
		ctl_resp_json(resp, 200,
			      json_pack("{s:s,s:I}", "name", req->subpath, "keys", (json_int_t)n));
out:
	free(keys);
}

static void api_circle_del(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	uint8_t k1[1][32];
	size_t n;
	int rc;

	if (!circle_name_valid(req->subpath)) {
		ctl_resp_error(resp, 400, "bad_request", "circle name expected");
		return;
	}
	rc = cn_circle_get(cn, req->subpath, k1, 0, &n);
	if (rc == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no circle %s", req->subpath);
		return;
	}
	{
		struct store_op op = {
		    .dbi = cn->circles_dbi, .key = req->subpath, .klen = strlen(req->subpath)};

		rc = store_write_sync(cn->store, &op, 1, 0);
	}
	if (rc)
		ctl_resp_store_error(resp, rc, "circle");
	else
		ctl_resp_json(resp, 200,
			      json_pack("{s:s,s:b}", "name", req->subpath, "removed", 1));
}

static void api_circles(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	json_t *a = json_array();

	(void)req;
	store_iter(cn->store, cn->circles_dbi, circle_json, a);
	ctl_resp_json(resp, 200, json_pack("{s:o}", "circles", a));
}

int cn_circles_init(struct content_node *cn, struct ctl *ctl)
{
	int rc = store_db(cn->store, CN_CIRCLES_DB, &cn->circles_dbi);

	if (rc || !ctl)
		return rc;
	ctl_route(ctl, "GET", "/v1/content/circles", api_circles, cn);
	ctl_route(ctl, "PUT", "/v1/content/circles/", api_circle_put, cn);
	ctl_route(ctl, "DELETE", "/v1/content/circles/", api_circle_del, cn);
	return 0;
}
