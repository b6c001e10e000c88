// SPDX-License-Identifier: MIT
/*
 * Revocation of a sealed share, the two levels of docs/PRIVATE.md
 * "Revocation":
 *   re-wrap      the same content key and ciphertext, wrapped for a new
 *                recipient list, as the share's next version (its head
 *                moves): cheap; keeps out those who never fetched the key;
 *   re-encrypt   a new content key, every item decrypted from the store
 *                chunk by chunk and encrypted again on its way back in (no
 *                plaintext file), the next version carrying "wd" (signed by
 *                the publisher: every earlier version withdrawn), which
 *                hosts honour by default (pins.c: stop serving, drop unless
 *                pinned).
 * Neither can take back a plaintext a recipient already kept.
 * Called by the control API; calls private.c (sealing), private_api.c
 * (recipients), subscribe.c (publishing) and shares.c.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/content_node_int.h"
#include "weft/ctl.h"
#include "weft/seal.h"
#include "weft/util.h"

/* Our sealed share of base name (its private name) into *old, and its
 * content key into ck. 0, or an error written to resp. */
static int load_own(struct content_node *cn, const char *base, struct manifest *old,
		    uint8_t ck[SEAL_KEY_LEN], struct ctl_resp *resp)
{
	char nm[MANIFEST_MAX_NAME + 1];
	uint8_t sid[MANIFEST_SHARE_ID_LEN], *enc = NULL;
	size_t len;
	int rc;

	cn_private_name(cn, base, nm, sizeof(nm));
	manifest_share_id(cn->id->pk, nm, strlen(nm), sid);
	rc = cn_share_get(cn, sid, &enc, &len);
	if (!rc)
		rc = manifest_decode(old, enc, len);
	free(enc);
	if (rc || !old->sealed) {
		ctl_resp_error(resp, 404, "not_found",
			       "no private share %s published by this node (content add --private "
			       "--name %s)",
			       base, base);
		return rc ? rc : -ENOENT;
	}
	rc = cn_seal_key(cn, old, ck);
	if (rc) {
		/* we are the first recipient of all our sealed shares */
		ctl_resp_error(resp, 500, "internal", "share %s: its key does not open (%s)", base,
			       strerror(-rc));
		return rc;
	}
	return 0;
}

/* The next version of old, re-wrapped or re-encrypted for the recipients
 * of a; published. 0 or an error written to resp. */
static int revoke(struct content_node *cn, const struct cn_add_args *a, int reencrypt,
		  struct manifest *m, size_t *nr, struct ctl_resp *resp)
{
	struct manifest old;
	struct cn_seal_add *sa = NULL;
	struct cn_seal_view v = {0};
	uint8_t (*rcpt)[32] = malloc(SEAL_MAX_RECIPIENTS * 32), ck[SEAL_KEY_LEN];
	size_t bad = 0;
	int rc;

	manifest_init(&old);
	if (!rcpt) {
		ctl_resp_errno(resp, -ENOMEM, "revoke");
		return -ENOMEM;
	}
	/* recipients first: a bad key or too many costs no crypto */
	rc = cn_gather_recipients(cn, a, rcpt, nr, resp);
	if (!rc) {
		rc = cn_seal_add_new(&sa, (const uint8_t(*)[32])rcpt, *nr, &bad);
		if (rc)
			ctl_resp_error(resp, rc == -E2BIG ? 413 : 400,
				       rc == -E2BIG ? "too_many_recipients" : "bad_request",
				       "recipient %zu is not a node key", bad);
	}
	if (!rc)
		rc = load_own(cn, a->name, &old, ck, resp);
	if (rc)
		goto out;
	manifest_set_name(m, old.name, strlen(old.name));
	m->visibility = MANIFEST_PRIVATE;
	m->created = (uint64_t)time(NULL);
	if (!reencrypt) {
		rc = cn_seal_rewrap(sa, ck, &old, m);
	} else {
		rc = cn_seal_view_open(ck, &old, &v);
		for (uint32_t i = 0; !rc && i < v.n; i++)
			rc = cn_seal_add_reseal(cn, sa, m, ck, &old, i, &v.it[i]);
		if (!rc)
			rc = cn_seal_add_finish(sa, m);
		m->withdraw = 1; /* every earlier version: cn_share_publish */
	}
	if (rc == -ENODATA) {
		ctl_resp_error(resp, 409, "not_held",
			       "an item of %s is not in this node's store any more: add the files "
			       "again (content add --private --name %s)",
			       a->name, a->name);
		goto out;
	}
	if (!rc)
		rc = cn_share_publish(cn, m);
	if (rc)
		ctl_resp_store_error(resp, rc, reencrypt ? "re-encrypting" : "re-wrapping");
out:
	sodium_memzero(ck, sizeof(ck));
	cn_seal_view_free(&v);
	cn_seal_add_free(sa);
	manifest_free(&old);
	free(rcpt);
	return rc;
}

/* POST /v1/content/rewrap and /v1/content/reencrypt {"name": NAME, "to"?:
 * [KEY, ...], "to_circle"?: [NAME, ...], "to_group"?: [GROUP, ...]} */
static void api_revoke(struct content_node *cn, const struct ctl_req *req, struct ctl_resp *resp,
		       int reencrypt)
{
	const char *name = json_string_value(json_object_get(req->json, "name"));
	struct cn_add_args a;
	struct manifest m;
	size_t nr = 0;
	json_t *o;

	memset(&a, 0, sizeof(a));
	if (!json_is_object(req->json) || !name || !cn_label_valid(name, CN_PRIV_BASE_MAX)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "expected {\"name\": NAME (the --name of content add --private), "
			       "\"to\"?: [KEY, ...], \"to_circle\"?: [NAME, ...], \"to_group\"?: "
			       "[GROUP, ...]}");
		return;
	}
	a.priv = 1;
	snprintf(a.name, sizeof(a.name), "%s", name);
	if (cn_api_parse_recipients(req->json, &a, resp))
		return;
	manifest_init(&m);
	if (!revoke(cn, &a, reencrypt, &m, &nr, resp)) {
		o = cn_share_json(cn, &m);
		if (o) {
			json_object_set_new(o, "recipients", json_integer((json_int_t)nr));
			if (m.withdraw)
				json_object_set_new(o, "withdraws_below",
						    json_integer((json_int_t)m.withdraw));
		}
		ctl_resp_json(resp, 200, o);
	}
	manifest_free(&m);
	cn_api_add_args_free(&a);
}

static void api_rewrap(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	api_revoke(arg, req, resp, 0);
}

static void api_reencrypt(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	api_revoke(arg, req, resp, 1);
}

void cn_revoke_routes(struct content_node *cn, struct ctl *ctl)
{
	ctl_route(ctl, "POST", "/v1/content/rewrap", api_rewrap, cn);
	ctl_route(ctl, "POST", "/v1/content/reencrypt", api_reencrypt, cn);
}
