// SPDX-License-Identifier: MIT
/*
 * Reservations on a node (docs/MESH.md "Reservations on a node"): a
 * Reserve sealed to the provider's key and signed by a one-time key, a
 * Confirm or Cancel sealed to that one-time key and signed by the
 * provider; each travels as one mailbox message (tag MESH_MBOX_TAG, then
 * the envelope): dialled by key, else left at the recipient's anchors,
 * which carry a box they cannot open. What arrives comes from the
 * mailbox's threads (take), is checked and kept in the inbox (LMDB,
 * durable) before the mailbox forgets it.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mesh/mesh_node_int.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/mailbox.h"
#include "weft/util.h"

#define RSV_TTL_S (7u * 86400u) /* a Reserve's and an answer's TTL: they may wait in a mailbox */
#define MSG_MAX (sizeof(MESH_MBOX_TAG) - 1u + MESH_ENV_MAX)

static const char *const state_name[] = {"pending", "confirmed", "cancelled"};

static json_t *body_json(const uint8_t *b, size_t len)
{
	char *s = NULL;
	json_t *j;

	if (!len || mesh_body_to_json(b, len, &s) != 0)
		return json_null();
	j = json_loads(s, 0, NULL);
	free(s);
	return j ? j : json_null();
}

int mesh_node_data_body(const json_t *d, uint8_t body[MESH_BODY_ANNOUNCE], size_t *bl)
{
	char *js = json_is_object(d) ? json_dumps(d, JSON_COMPACT) : NULL;
	int err = js ? mesh_body_from_json(js, strlen(js), body, MESH_BODY_ANNOUNCE, bl) : -EINVAL;

	free(js);
	return err ? -EINVAL : 0;
}

void mesh_rsv_seen(struct mesh_node *mn, const struct mesh_env *a)
{
	size_t k = mn->nseen_next++ % SEEN_MAX;

	memcpy(mn->seen[k].id, a->type == MESH_UPDATE ? a->ref : a->g.id, MESH_ID_LEN);
	memcpy(mn->seen[k].provider, a->g.origin, MESH_PK_LEN);
	mn->seen[k].service = a->service;
}

/* The provider and service of announce aid: our store, else the announces
 * our queries returned. Under mu. 0, -ENOENT, -ESTALE (revoked). */
static int provider_of(struct mesh_node *mn, const uint8_t aid[MESH_ID_LEN],
		       uint8_t pk[MESH_PK_LEN], uint32_t *service)
{
	uint8_t env[MESH_ENV_MAX];
	struct mesh_env e;
	size_t l;

	if (!mesh_store_get(mn->store, aid, env, sizeof(env), &l) &&
	    !mesh_env_parse(env, l, &e, NULL)) {
		if (e.type == MESH_REVOKE)
			return -ESTALE;
		memcpy(pk, e.g.origin, MESH_PK_LEN);
		*service = e.service;
		return 0;
	}
	for (size_t i = 0; i < SEEN_MAX && i < mn->nseen_next; i++)
		if (!memcmp(mn->seen[i].id, aid, MESH_ID_LEN)) {
			memcpy(pk, mn->seen[i].provider, MESH_PK_LEN);
			*service = mn->seen[i].service;
			return 0;
		}
	return -ENOENT;
}

/* One envelope to a node key through the mailbox: 0 (*how set) or an
 * answer given. */
static int deliver(struct mesh_node *mn, const uint8_t to[MESH_PK_LEN], const uint8_t *env,
		   size_t len, const char **how, struct ctl_resp *resp)
{
	uint8_t msg[MSG_MAX];
	size_t t = sizeof(MESH_MBOX_TAG) - 1u;
	int direct = 0, err;

	memcpy(msg, MESH_MBOX_TAG, t);
	memcpy(msg + t, env, len);
	err = mbox_node_send(mn->o.mbox, to, msg, t + len, RSV_TTL_S, &direct);
	*how = direct ? "direct" : "mailbox";
	if (!err)
		return 0;
	if (err == -ENOENT)
		ctl_resp_error(resp, 502, "unreachable",
			       "the node did not answer and its record lists no mailbox anchors");
	else
		ctl_resp_error(resp, 502, "unreachable",
			       "the node did not answer and no anchor took the message (%s)",
			       strerror(-err));
	return err;
}

/* "id" (hex64) and the optional "data" (an Announce-style body) of a
 * request: 0, or a 400 given. */
static int req_id_data(const struct ctl_req *req, struct ctl_resp *resp, uint8_t id[MESH_ID_LEN],
		       int need_data, uint8_t body[MESH_BODY_ANNOUNCE], size_t *bl)
{
	json_t *a = req->json ? json_object_get(req->json, "id") : NULL;
	json_t *d = req->json ? json_object_get(req->json, "data") : NULL;

	if (!json_is_object(req->json)) {
		ctl_resp_error(resp, 400, "bad_request", "the body must be a JSON object");
		return -EINVAL;
	}
	if (!json_is_string(a) || json_string_length(a) != 2 * MESH_ID_LEN ||
	    util_unhex(id, MESH_ID_LEN, json_string_value(a))) {
		ctl_resp_error(resp, 400, "bad_request", "\"id\": %u hex digits", 2 * MESH_ID_LEN);
		return -EINVAL;
	}
	if (!d && !need_data) {
		*bl = 2;
		memcpy(body, "de", 2);
		return 0;
	}
	if (mesh_node_data_body(d, body, bl)) {
		ctl_resp_error(resp, 400, "bad_request", MESH_NODE_DATA_MSG, MESH_FIELDS_MAX,
			       MESH_FIELD_VALUE_MAX, MESH_BODY_ANNOUNCE);
		return -EINVAL;
	}
	return 0;
}

/* {"id": announce id, "data": {...}}: a Reserve to its provider. */
static void api_reserve(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mesh_node *mn = arg;
	uint8_t aid[MESH_ID_LEN], pk[MESH_PK_LEN], body[MESH_BODY_ANNOUNCE];
	uint8_t box[MESH_BODY_SEALED], env[MESH_ENV_MAX], opk[MESH_PK_LEN];
	struct mesh_msg m = {.type = MESH_RESERVE, .max_hops = 1, .ttl_s = RSV_TTL_S};
	struct mesh_rsv r = {.role = MESH_RSV_SENT};
	struct mesh_env e;
	char hex[2 * MESH_ID_LEN + 1];
	const char *how;
	size_t bl, xl, el;
	int err;

	if (req_id_data(req, resp, aid, 1, body, &bl))
		return;
	pthread_mutex_lock(&mn->mu);
	err = provider_of(mn, aid, pk, &r.service);
	pthread_mutex_unlock(&mn->mu);
	if (err) {
		ctl_resp_error(resp, err == -ESTALE ? 410 : 404,
			       err == -ESTALE ? "revoked" : "not_found",
			       err == -ESTALE ? "announce %s was revoked by its provider"
					      : "no announce %s known here (query it first)",
			       json_string_value(json_object_get(req->json, "id")));
		return;
	}
	if (!memcmp(pk, mn->o.id->pk, MESH_PK_LEN)) {
		ctl_resp_error(resp, 400, "bad_request", "announce %s is this node's own",
			       json_string_value(json_object_get(req->json, "id")));
		return;
	}
	if (!mn->o.mbox) {
		ctl_resp_error(resp, 503, "unavailable", "no mailbox on this node to carry it");
		return;
	}
	/* a one-time key: signs the Reserve, and the answer is sealed to it */
	crypto_sign_keypair(opk, r.otk);
	err = mesh_box_seal(pk, body, bl, box, sizeof(box), &xl);
	m.service = r.service;
	m.ref = aid;
	m.body = box;
	m.body_len = xl;
	m.ts_ms = mesh_wall_ms();
	if (!err)
		err = mesh_env_build(r.otk, &m, env, sizeof(env), &el);
	if (err || mesh_env_parse(env, el, &e, NULL) != 0) {
		sodium_memzero(r.otk, sizeof(r.otk));
		ctl_resp_error(resp, 500, "internal", "could not build the reserve");
		return;
	}
	memcpy(r.id, e.g.id, MESH_ID_LEN);
	memcpy(r.ref, aid, MESH_ID_LEN);
	memcpy(r.peer, pk, MESH_PK_LEN);
	r.ts_ms = m.ts_ms;
	r.expires_ms = m.ts_ms + RSV_TTL_S * 1000ull;
	memcpy(r.data, body, bl);
	r.data_len = (uint16_t)bl;
	/* kept first: the answer may come back before send returns */
	pthread_mutex_lock(&mn->mu);
	err = mesh_inbox_put(mn->inbox, &r, 0);
	pthread_mutex_unlock(&mn->mu);
	sodium_memzero(r.otk, sizeof(r.otk));
	if (err == -EDQUOT) {
		ctl_resp_error(resp, 507, "inbox_full", "the reservation inbox holds %u entries",
			       mesh_inbox_count(mn->inbox));
		return;
	}
	if (err) {
		ctl_resp_store_error(resp, err, "nothing sent");
		return;
	}
	if (deliver(mn, pk, env, el, &how, resp)) {
		pthread_mutex_lock(&mn->mu);
		mesh_inbox_del(mn->inbox, r.id);
		pthread_mutex_unlock(&mn->mu);
		return;
	}
	pthread_mutex_lock(&mn->mu);
	mn->rsv_sent++;
	pthread_mutex_unlock(&mn->mu);
	util_hex(hex, r.id, MESH_ID_LEN);
	ctl_resp_json(resp, 200, json_pack("{s:s,s:s}", "id", hex, "delivered", how));
}

/* {"id": a received Reserve's id, "data"?: {...}}: its Confirm or Cancel;
 * or the Cancel of a Reserve we sent (the consumer withdraws it). */
static void answer(struct mesh_node *mn, const struct ctl_req *req, struct ctl_resp *resp,
		   uint8_t type)
{
	uint8_t rid[MESH_ID_LEN], body[MESH_BODY_ANNOUNCE], box[MESH_BODY_SEALED];
	uint8_t env[MESH_ENV_MAX];
	struct mesh_msg m = {.type = type, .max_hops = 1, .ttl_s = RSV_TTL_S};
	uint8_t st = type == MESH_CONFIRM ? MESH_RSV_CONFIRMED : MESH_RSV_CANCELLED;
	const char *ids = NULL, *how;
	struct mesh_rsv r;
	size_t bl, xl, el;
	int err, withdraw;

	if (req_id_data(req, resp, rid, 0, body, &bl))
		return;
	ids = json_string_value(json_object_get(req->json, "id"));
	pthread_mutex_lock(&mn->mu);
	err = mesh_inbox_get(mn->inbox, rid, &r);
	pthread_mutex_unlock(&mn->mu);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no reservation %s here", ids);
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "inbox");
		return;
	}
	withdraw = r.role == MESH_RSV_SENT;
	if (withdraw && type == MESH_CONFIRM) {
		ctl_resp_error(
		    resp, 403, "not_provider",
		    "reservation %s was sent by this node: its provider confirms it (this "
		    "node may cancel it)",
		    ids);
		return;
	}
	if (r.state == MESH_RSV_CANCELLED ||
	    (type == MESH_CONFIRM && r.state != MESH_RSV_PENDING)) {
		ctl_resp_error(resp, 409, "answered", "reservation %s is %s already", ids,
			       state_name[r.state]);
		return;
	}
	if (!mn->o.mbox) {
		ctl_resp_error(resp, 503, "unavailable", "no mailbox on this node to carry it");
		return;
	}
	/* the provider's answer: sealed to the one-time key, signed by the
	 * node key; the consumer's cancel: sealed to the provider, signed by
	 * the one-time key that signed the Reserve */
	err = mesh_box_seal(withdraw ? r.peer : r.otk + 32, body, bl, box, sizeof(box), &xl);
	m.service = r.service;
	m.ref = rid;
	m.body = box;
	m.body_len = xl;
	m.ts_ms = mesh_wall_ms();
	if (m.ts_ms <= r.answer_ms || m.ts_ms <= r.ts_ms)
		m.ts_ms = (r.answer_ms > r.ts_ms ? r.answer_ms : r.ts_ms) + 1;
	if (!err)
		err = mesh_env_build(withdraw ? r.otk : mn->o.id->sk, &m, env, sizeof(env), &el);
	if (err) {
		ctl_resp_error(resp, 500, "internal", "could not build the answer");
		return;
	}
	if (deliver(mn, r.peer, env, el, &how, resp))
		return;
	r.state = st;
	r.answer_ms = m.ts_ms;
	memcpy(r.answer, body, bl);
	r.answer_len = (uint16_t)bl;
	pthread_mutex_lock(&mn->mu);
	err = mesh_inbox_put(mn->inbox, &r, 1);
	if (!err)
		mn->rsv_answered++;
	pthread_mutex_unlock(&mn->mu);
	if (err) {
		ctl_resp_store_error(resp, err, "the answer was sent");
		return;
	}
	ctl_resp_json(
	    resp, 200,
	    json_pack("{s:s,s:s,s:s}", "id", ids, "state", state_name[st], "delivered", how));
}

static void api_confirm(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	answer(arg, req, resp, MESH_CONFIRM);
}

static void api_cancel(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	answer(arg, req, resp, MESH_CANCEL);
}

static int inbox_row(void *arg, const struct mesh_rsv *r)
{
	char id[2 * MESH_ID_LEN + 1], ref[2 * MESH_ID_LEN + 1], peer[2 * MESH_PK_LEN + 1];

	util_hex(id, r->id, MESH_ID_LEN);
	util_hex(ref, r->ref, MESH_ID_LEN);
	util_hex(peer, r->peer, MESH_PK_LEN);
	json_array_append_new(
	    arg,
	    json_pack("{s:s,s:s,s:s,s:I,s:s,s:s,s:I,s:I,s:o,s:o,s:I}", "id", id, "role",
		      r->role == MESH_RSV_RECEIVED ? "received" : "sent", "state",
		      state_name[r->state], "service_id", (json_int_t)r->service, "announce", ref,
		      r->role == MESH_RSV_RECEIVED ? "consumer" : "provider", peer, "ts_ms",
		      (json_int_t)r->ts_ms, "expires_ms", (json_int_t)r->expires_ms, "data",
		      body_json(r->data, r->data_len), "answer",
		      body_json(r->answer, r->answer_len), "answer_ms", (json_int_t)r->answer_ms));
	return 0;
}

static void api_inbox(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mesh_node *mn = arg;
	json_t *arr = json_array();
	int err;

	(void)req;
	pthread_mutex_lock(&mn->mu);
	err = mesh_inbox_each(mn->inbox, inbox_row, arr);
	pthread_mutex_unlock(&mn->mu);
	if (err) {
		json_decref(arr);
		ctl_resp_errno(resp, err, "inbox");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:o}", "reservations", arr));
}

/* ---- what the mailbox hands over (its threads) ---- */

/* A Reserve for one of our announces. Under mu. */
static int take_reserve(struct mesh_node *mn, const uint8_t sender[MESH_PK_LEN],
			const struct mesh_env *e)
{
	uint8_t env[MESH_ENV_MAX], plain[MESH_BODY_SEALED];
	struct mesh_rsv r = {.role = MESH_RSV_RECEIVED, .state = MESH_RSV_PENDING};
	struct mesh_env a;
	size_t l;

	if (mesh_store_get(mn->store, e->ref, env, sizeof(env), &l) ||
	    mesh_env_parse(env, l, &a, NULL) || a.type == MESH_REVOKE ||
	    memcmp(a.g.origin, mn->o.id->pk, MESH_PK_LEN) || a.service != e->service ||
	    mesh_box_open(mn->o.id->sk, e->body, e->body_len, plain, sizeof(plain), &l) ||
	    l > MESH_BODY_ANNOUNCE || mesh_body_fields(plain, l, NULL, NULL))
		return -EBADMSG;
	memcpy(r.id, e->g.id, MESH_ID_LEN);
	r.service = e->service;
	memcpy(r.ref, e->ref, MESH_ID_LEN);
	memcpy(r.peer, sender, MESH_PK_LEN);
	r.ts_ms = e->g.ts_ms;
	r.expires_ms = e->g.ts_ms + (uint64_t)e->g.ttl_s * 1000u;
	memcpy(r.otk + 32, e->g.origin, MESH_PK_LEN);
	memcpy(r.data, plain, l);
	r.data_len = (uint16_t)l;
	sodium_memzero(plain, sizeof(plain));
	return mesh_inbox_put(mn->inbox, &r, 0);
}

/* Who may answer r: for a Reserve we sent, its provider (the signer and
 * the mailbox's sender); for one we received, a Cancel signed by its
 * one-time key, delivered by the consumer's node (it withdraws it). */
static int answer_from(const struct mesh_rsv *r, const uint8_t sender[MESH_PK_LEN],
		       const struct mesh_env *e)
{
	if (r->role == MESH_RSV_SENT)
		return !memcmp(sender, e->g.origin, MESH_PK_LEN) &&
		       !memcmp(r->peer, e->g.origin, MESH_PK_LEN);
	return e->type == MESH_CANCEL && !memcmp(e->g.origin, r->otk + 32, MESH_PK_LEN) &&
	       !memcmp(sender, r->peer, MESH_PK_LEN);
}

/* A Confirm or Cancel of a Reserve we sent, by its provider; or the
 * consumer's Cancel of a Reserve we received. Under mu. */
static int take_answer(struct mesh_node *mn, const uint8_t sender[MESH_PK_LEN],
		       const struct mesh_env *e)
{
	uint8_t plain[MESH_BODY_SEALED];
	struct mesh_rsv r;
	size_t l;
	int err;

	if (mesh_inbox_get(mn->inbox, e->ref, &r) || r.service != e->service)
		return -EBADMSG;
	if (!answer_from(&r, sender, e)) {
		sodium_memzero(&r, sizeof(r));
		return -EBADMSG;
	}
	if (e->g.ts_ms <= r.answer_ms || r.state == MESH_RSV_CANCELLED) {
		sodium_memzero(&r, sizeof(r));
		return -EALREADY; /* an older answer, or one after a cancel */
	}
	err = mesh_box_open(r.role == MESH_RSV_SENT ? r.otk : mn->o.id->sk, e->body, e->body_len,
			    plain, sizeof(plain), &l);
	if (err || l > MESH_BODY_ANNOUNCE || mesh_body_fields(plain, l, NULL, NULL)) {
		sodium_memzero(&r, sizeof(r));
		return -EBADMSG;
	}
	r.state = e->type == MESH_CONFIRM ? MESH_RSV_CONFIRMED : MESH_RSV_CANCELLED;
	r.answer_ms = e->g.ts_ms;
	memcpy(r.answer, plain, l);
	r.answer_len = (uint16_t)l;
	err = mesh_inbox_put(mn->inbox, &r, 1);
	sodium_memzero(&r, sizeof(r));
	return err;
}

/* 0: taken, or refused for good (the mailbox forgets it); else it stays
 * in the mailbox's inbox (ours full, the disk). */
static int take(void *arg, const uint8_t sender[MBOX_KEY_LEN], const uint8_t *b, size_t len)
{
	struct mesh_node *mn = arg;
	struct mesh_limits lim;
	struct mesh_env e;
	int err = -EBADMSG;

	mesh_limits_default(&lim);
	if (mesh_env_parse(b, len, &e, NULL) || mesh_env_check(&e, &lim, mesh_wall_ms(), NULL)) {
		pthread_mutex_lock(&mn->mu);
		mn->rsv_dropped++;
		pthread_mutex_unlock(&mn->mu);
		return 0;
	}
	pthread_mutex_lock(&mn->mu);
	if (e.type == MESH_RESERVE)
		err = take_reserve(mn, sender, &e);
	else if (e.type == MESH_CONFIRM || e.type == MESH_CANCEL)
		err = take_answer(mn, sender, &e);
	if (!err)
		e.type == MESH_RESERVE ? mn->rsv_received++ : mn->rsv_answers_in++;
	else if (err == -EBADMSG || err == -EALREADY)
		mn->rsv_dropped += err == -EBADMSG;
	pthread_mutex_unlock(&mn->mu);
	return err == -EBADMSG || err == -EALREADY ? 0 : err;
}

void mesh_rsv_metrics(struct mesh_node *mn, FILE *out)
{
	fprintf(out, "# HELP weft_mesh_reservations_total Reserves sent and received, answers "
		     "sent and received, mailbox messages dropped (not for us, bad).\n"
		     "# TYPE weft_mesh_reservations_total counter\n");
	fprintf(out,
		"weft_mesh_reservations_total{event=\"sent\"} %llu\n"
		"weft_mesh_reservations_total{event=\"received\"} %llu\n"
		"weft_mesh_reservations_total{event=\"answered\"} %llu\n"
		"weft_mesh_reservations_total{event=\"answer_in\"} %llu\n"
		"weft_mesh_reservations_total{event=\"dropped\"} %llu\n",
		(unsigned long long)mn->rsv_sent, (unsigned long long)mn->rsv_received,
		(unsigned long long)mn->rsv_answered, (unsigned long long)mn->rsv_answers_in,
		(unsigned long long)mn->rsv_dropped);
	fprintf(out,
		"# HELP weft_mesh_inbox Reservations held (received and sent).\n"
		"# TYPE weft_mesh_inbox gauge\nweft_mesh_inbox %u\n",
		mesh_inbox_count(mn->inbox));
}

int mesh_rsv_init(struct mesh_node *mn)
{
	int err = mesh_inbox_new(&mn->inbox, mn->o.store, mn->o.inbox_max, mesh_wall_ms());

	if (err)
		return err;
	if (mn->o.ctl) {
		ctl_route(mn->o.ctl, "POST", "/v1/mesh/reserve", api_reserve, mn);
		ctl_route(mn->o.ctl, "POST", "/v1/mesh/confirm", api_confirm, mn);
		ctl_route(mn->o.ctl, "POST", "/v1/mesh/cancel", api_cancel, mn);
		ctl_route(mn->o.ctl, "GET", "/v1/mesh/inbox", api_inbox, mn);
	}
	return mn->o.mbox ? mbox_node_take(mn->o.mbox, MESH_MBOX_TAG, take, mn) : 0;
}
