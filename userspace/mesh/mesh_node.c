// SPDX-License-Identifier: MIT
/*
 * The mesh on a node (docs/MESH.md "On a node"): the community's gossip
 * hands us kind-2 envelopes (its serve thread), the control API our own
 * announces and queries (the control thread); one mutex over the store and
 * the per-community mesh_peer state. Sends go out through the community
 * (comm_node_mesh_send, never blocks) to holders named by key; a
 * neighbour's token is the first 8 bytes of its key.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/comm_node.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/mesh_node.h"
#include "weft/util.h"
#include "mesh/mesh_node_int.h"

static uint64_t token_of(const uint8_t *key)
{
	uint64_t t = 0;

	for (unsigned int i = 0; i < 8; i++)
		t |= (uint64_t)key[i] << (8 * i);
	return t == MESH_PATH_LOCAL ? t - 1 : t;
}

/* ---- the core's callbacks (under mn->mu) ---- */

static void io_send(void *arg, uint64_t token, const uint8_t *env, size_t len)
{
	struct mesh_node *mn = arg;

	for (size_t i = 0; i < mn->cur.n; i++)
		if (mn->cur.tok[i] == token) {
			comm_node_mesh_send(mn->o.comm, mn->cur.id, mn->cur.keys[i], env, len);
			return;
		}
}

/* One announce envelope (a Response's body, or our own store's) for a
 * pending query: added once by its id. */
static void gather(struct pending *pq, const uint8_t *env, size_t len)
{
	struct mesh_env a;
	char hex[2 * MESH_ID_LEN + 1], *data = NULL;
	unsigned int level;
	json_t *o, *d;

	if (pq->nseen >= pq->max || pq->nseen >= MESH_QUERY_RESULTS_MAX ||
	    mesh_env_parse(env, len, &a, NULL) != 0 || a.service != pq->service ||
	    (a.type != MESH_ANNOUNCE && a.type != MESH_UPDATE))
		return;
	for (size_t i = 0; i < pq->nseen; i++)
		if (!memcmp(pq->seen[i], a.g.id, MESH_ID_LEN))
			return;
	level = mesh_level(&pq->mn->trust, &a, mesh_wall_ms());
	if (level < pq->min_level || mesh_body_to_json(a.body, a.body_len, &data) != 0)
		return;
	d = json_loads(data, 0, NULL);
	free(data);
	if (!d)
		return;
	memcpy(pq->seen[pq->nseen++], a.g.id, MESH_ID_LEN);
	mesh_rsv_seen(pq->mn, &a);
	o = json_object();
	util_hex(hex, a.type == MESH_UPDATE ? a.ref : a.g.id, MESH_ID_LEN);
	json_object_set_new(o, "id", json_string(hex));
	util_hex(hex, a.g.origin, MESH_PK_LEN);
	json_object_set_new(o, "provider", json_string(hex));
	json_object_set_new(o, "ts_ms", json_integer((json_int_t)a.g.ts_ms));
	json_object_set_new(o, "ttl_s", json_integer((json_int_t)a.g.ttl_s));
	json_object_set_new(o, "level", json_string(mesh_level_name(level)));
	json_object_set_new(o, "data", d);
	json_array_append_new(pq->arr, o);
}

static void io_deliver(void *arg, const struct mesh_env *e, const uint8_t *env, size_t len)
{
	struct mesh_node *mn = arg;

	(void)env;
	(void)len;
	if (e->type != MESH_RESPONSE)
		return; /* Reserve, Confirm, Cancel: not routed by the node yet */
	for (size_t i = 0; i < PENDING_MAX; i++)
		if (mn->q[i].used && !memcmp(mn->q[i].qid, e->ref, MESH_ID_LEN)) {
			mn->answers_in++;
			gather(&mn->q[i], e->body, e->body_len);
			pthread_cond_broadcast(&mn->cv);
			return;
		}
}

/* The community's mesh_peer, made on first use (under mn->mu). */
static struct mesh_peer *peer_of(struct mesh_node *mn, const uint8_t *id)
{
	struct mesh_peer_opts po = {
		.store = mn->store, .sk = mn->o.id->sk, .fanout = mn->o.fanout,
		.io = {.send = io_send, .deliver = io_deliver, .arg = mn},
	};
	struct mcomm *c;

	for (size_t i = 0; i < mn->n; i++)
		if (!memcmp(mn->c[i].id, id, COMM_ID_LEN))
			return mn->c[i].p;
	if (mn->n >= COMM_NODE_MAX)
		return NULL;
	po.relay.trust = &mn->trust;
	po.relay.min_level = mn->o.min_level;
	po.relay.limits.max_hops[MESH_ANNOUNCE] = mn->o.hops_announce;
	po.relay.limits.max_hops[MESH_UPDATE] = mn->o.hops_announce;
	po.relay.limits.max_hops[MESH_REVOKE] = mn->o.hops_announce;
	po.relay.limits.max_hops[MESH_QUERY] = mn->o.hops_query;
	c = &mn->c[mn->n];
	if (mesh_peer_new(&c->p, &po) != 0)
		return NULL;
	memcpy(c->id, id, COMM_ID_LEN);
	mn->n++;
	return c->p;
}

/* One envelope into the community's mesh_peer (from: a neighbour's key,
 * NULL: ours). Under mn->mu. 0, -ENOENT (not our community), or the
 * core's error. */
static int input(struct mesh_node *mn, const uint8_t *id, const uint8_t *from,
		 const uint8_t *env, size_t len)
{
	struct mesh_peer *p;
	uint64_t now = mesh_wall_ms(), rnd;
	int n = comm_node_mesh_peers(mn->o.comm, id, mn->cur.keys, NEIGH_MAX);

	if (n < 0)
		return n;
	p = peer_of(mn, id);
	if (!p)
		return -ENOSPC;
	if (now >= mn->next_gc_ms) {
		mesh_store_gc(mn->store, now);
		mesh_inbox_gc(mn->inbox, now);
		mn->next_gc_ms = now + GC_MS;
	}
	mn->cur.id = id;
	mn->cur.n = (size_t)n;
	for (size_t i = 0; i < mn->cur.n; i++)
		mn->cur.tok[i] = token_of(mn->cur.keys[i]);
	randombytes_buf(&rnd, sizeof(rnd));
	return mesh_peer_input(p, env, len, from ? token_of(from) : MESH_PATH_LOCAL, mn->cur.tok,
			       mn->cur.n, rnd, now);
}

static int hook(void *arg, const uint8_t *id, const uint8_t *from, const uint8_t *env, size_t len)
{
	struct mesh_node *mn = arg;
	int err;

	pthread_mutex_lock(&mn->mu);
	err = input(mn, id, from, env, len);
	if (err)
		mn->refused++;
	pthread_mutex_unlock(&mn->mu);
	return err;
}

/* ---- control routes ---- */

/* "service_id" and "community" of a request: 0, or an answer given. */
static int req_common(const struct ctl_req *req, struct ctl_resp *resp, uint32_t *service,
		      uint8_t id[COMM_ID_LEN])
{
	json_t *s = req->json ? json_object_get(req->json, "service_id") : NULL;
	json_t *c = req->json ? json_object_get(req->json, "community") : NULL;

	if (!req->json || !json_is_object(req->json)) {
		ctl_resp_error(resp, 400, "bad_request", "the body must be a JSON object");
		return -EINVAL;
	}
	if (!json_is_integer(s) || json_integer_value(s) < 0 ||
	    json_integer_value(s) > (json_int_t)UINT32_MAX) {
		ctl_resp_error(resp, 400, "bad_request", "\"service_id\": an integer 0 .. 4294967295");
		return -EINVAL;
	}
	if (!json_is_string(c) || json_string_length(c) != 2 * COMM_ID_LEN ||
	    util_unhex(id, COMM_ID_LEN, json_string_value(c))) {
		ctl_resp_error(resp, 400, "bad_request", "\"community\": its id, %u hex digits",
			       2 * COMM_ID_LEN);
		return -EINVAL;
	}
	*service = (uint32_t)json_integer_value(s);
	return 0;
}

static void not_ours(struct ctl_resp *resp, int err)
{
	if (err == -EACCES)
		ctl_resp_error(resp, 403, "level",
			       "below mesh.min_level: the endorsements of trusted keys "
			       "(mesh.trusted) do not reach it");
	else if (err == -ENOENT)
		ctl_resp_error(resp, 404, "not_found",
			       "not a community this node belongs to (or no network)");
	else
		ctl_resp_errno(resp, err, "mesh");
}

/* "endorsements": at most MESH_ENDORSE_MAX hex endorsements of this node
 * for service (mesh endorse on the endorser's node): 0 and *n, or a 400
 * given. */
static int req_endorse(struct mesh_node *mn, const struct ctl_req *req, struct ctl_resp *resp,
		       uint32_t service, uint8_t out[MESH_ENDORSE_MAX * MESH_ENDORSE_LEN],
		       uint8_t *n)
{
	json_t *a = json_object_get(req->json, "endorsements"), *x;
	struct mesh_endorse en;
	size_t i;

	*n = 0;
	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > MESH_ENDORSE_MAX)
		goto bad;
	json_array_foreach(a, i, x) {
		uint8_t *b = out + i * MESH_ENDORSE_LEN;

		if (!json_is_string(x) || json_string_length(x) != 2 * MESH_ENDORSE_LEN ||
		    util_unhex(b, MESH_ENDORSE_LEN, json_string_value(x)) ||
		    mesh_endorse_parse(b, &en) || en.service != service ||
		    memcmp(en.provider, mn->o.id->pk, MESH_PK_LEN))
			goto bad;
		(*n)++;
	}
	return 0;
bad:
	ctl_resp_error(resp, 400, "bad_request",
		       "\"endorsements\": at most %u endorsements (%u hex digits each) of this "
		       "node's key for this service id, signed (weftctl mesh endorse)",
		       MESH_ENDORSE_MAX, 2 * MESH_ENDORSE_LEN);
	return -EINVAL;
}

/* {"provider": HEX64, "service_id", "level", "days"?}: an endorsement of
 * provider by this node's key, to give to the provider. */
static void api_endorse(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mesh_node *mn = arg;
	json_t *p = json_object_get(req->json, "provider");
	json_t *s = json_object_get(req->json, "service_id");
	json_t *l = json_object_get(req->json, "level"), *d = json_object_get(req->json, "days");
	uint8_t pk[MESH_PK_LEN], out[MESH_ENDORSE_LEN];
	char hex[2 * MESH_ENDORSE_LEN + 1];
	json_int_t days = d ? (json_is_integer(d) ? json_integer_value(d) : 0) : 30;
	int level = json_is_string(l) ? mesh_level_parse(json_string_value(l)) : -EINVAL;

	if (!json_is_string(p) || json_string_length(p) != 2 * MESH_PK_LEN ||
	    util_unhex(pk, MESH_PK_LEN, json_string_value(p)) || !json_is_integer(s) ||
	    json_integer_value(s) < 0 || json_integer_value(s) > (json_int_t)UINT32_MAX ||
	    level < MESH_LEVEL_ENDORSED || days < 1 || days > 365) {
		ctl_resp_error(resp, 400, "bad_request",
			       "\"provider\": a node key, %u hex digits; \"service_id\": 0 .. "
			       "4294967295; \"level\": endorsed, registry or credential; \"days\": "
			       "1 .. 365",
			       2 * MESH_PK_LEN);
		return;
	}
	if (mesh_endorse_sign(mn->o.id->sk, (uint8_t)level, (uint32_t)json_integer_value(s), pk,
			      mesh_wall_ms() + (uint64_t)days * 86400000u, out)) {
		ctl_resp_error(resp, 500, "internal", "could not sign the endorsement");
		return;
	}
	util_hex(hex, out, MESH_ENDORSE_LEN);
	ctl_resp_json(resp, 200, json_pack("{s:s}", "endorsement", hex));
}

static void api_announce(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mesh_node *mn = arg;
	uint8_t id[COMM_ID_LEN], body[MESH_BODY_ANNOUNCE], env[MESH_ENV_MAX];
	uint8_t en[MESH_ENDORSE_MAX * MESH_ENDORSE_LEN];
	json_t *d, *t;
	json_int_t ttl_h = 24;
	struct mesh_msg m = {.type = MESH_ANNOUNCE, .max_hops = 16};
	struct mesh_env e;
	char hex[2 * MESH_ID_LEN + 1];
	size_t bl, el;
	uint32_t service;
	int err;

	if (req_common(req, resp, &service, id))
		return;
	d = json_object_get(req->json, "data");
	t = json_object_get(req->json, "ttl_h");
	if (t) {
		ttl_h = json_is_integer(t) ? json_integer_value(t) : 0;
		if (ttl_h < 1 || ttl_h > TTL_H_MAX) {
			ctl_resp_error(resp, 400, "bad_request", "\"ttl_h\": 1 .. %u", TTL_H_MAX);
			return;
		}
	}
	if (mesh_node_data_body(d, body, &bl)) {
		ctl_resp_error(resp, 400, "bad_request", MESH_NODE_DATA_MSG, MESH_FIELDS_MAX,
			       MESH_FIELD_VALUE_MAX, MESH_BODY_ANNOUNCE);
		return;
	}
	if (req_endorse(mn, req, resp, service, en, &m.n_endorse))
		return;
	m.endorse = en;
	m.service = service;
	m.body = body;
	m.body_len = bl;
	m.ttl_s = (uint32_t)ttl_h * 3600u;
	m.ts_ms = mesh_wall_ms();
	if (mesh_env_build(mn->o.id->sk, &m, env, sizeof(env), &el) != 0 ||
	    mesh_env_parse(env, el, &e, NULL) != 0) {
		ctl_resp_error(resp, 500, "internal", "could not build the envelope");
		return;
	}
	pthread_mutex_lock(&mn->mu);
	err = mesh_store_would_take(mn->store, &e, m.ts_ms);
	if (!err)
		err = input(mn, id, NULL, env, el);
	pthread_mutex_unlock(&mn->mu);
	if (err) {
		not_ours(resp, err);
		return;
	}
	util_hex(hex, e.g.id, MESH_ID_LEN);
	ctl_resp_json(resp, 200, json_pack("{s:s}", "id", hex));
}

/* The endorsements of a held announce (or update) e: they end its payload,
 * before the signature; each checked again. Their count, 0 if none. */
static uint8_t held_endorse(const uint8_t *cur, size_t cl, const struct mesh_env *e,
			    uint8_t out[MESH_ENDORSE_MAX * MESH_ENDORSE_LEN])
{
	size_t n = e->n_endorse;
	struct mesh_endorse x;

	if (!n || n > MESH_ENDORSE_MAX || cl < COMM_SIG_LEN + n * MESH_ENDORSE_LEN)
		return 0;
	memcpy(out, cur + cl - COMM_SIG_LEN - n * MESH_ENDORSE_LEN, n * MESH_ENDORSE_LEN);
	for (size_t i = 0; i < n; i++)
		if (mesh_endorse_parse(out + i * MESH_ENDORSE_LEN, &x))
			return 0;
	return (uint8_t)n;
}

/* {"community", "id"} (Revoke) or {"community", "id", "data", "ttl_h"?,
 * "endorsements"? (default: the announce's)} (Update): a change of our
 * announce id, signed by the node key with a
 * newer timestamp, stored (an Update, or a Revoke's tombstone) and sent on
 * like an Announce. */
static void change(struct mesh_node *mn, const struct ctl_req *req, struct ctl_resp *resp,
		   uint8_t type)
{
	uint8_t id[COMM_ID_LEN], aid[MESH_ID_LEN], cur[MESH_ENV_MAX], env[MESH_ENV_MAX];
	uint8_t body[MESH_BODY_ANNOUNCE], en[MESH_ENDORSE_MAX * MESH_ENDORSE_LEN];
	json_t *c = req->json ? json_object_get(req->json, "community") : NULL;
	json_t *a = req->json ? json_object_get(req->json, "id") : NULL;
	json_t *t = req->json ? json_object_get(req->json, "ttl_h") : NULL;
	struct mesh_msg m = {.type = type, .max_hops = 16};
	json_int_t ttl_h = 0;
	struct mesh_env e, r;
	size_t cl, el, bl = 0;
	int err;

	if (!json_is_string(c) || json_string_length(c) != 2 * COMM_ID_LEN ||
	    util_unhex(id, COMM_ID_LEN, json_string_value(c)) || !json_is_string(a) ||
	    json_string_length(a) != 2 * MESH_ID_LEN ||
	    util_unhex(aid, MESH_ID_LEN, json_string_value(a))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "\"community\": its id, %u hex digits; \"id\": the announce's, %u",
			       2 * COMM_ID_LEN, 2 * MESH_ID_LEN);
		return;
	}
	if (type == MESH_UPDATE) {
		if (t) {
			ttl_h = json_is_integer(t) ? json_integer_value(t) : 0;
			if (ttl_h < 1 || ttl_h > TTL_H_MAX) {
				ctl_resp_error(resp, 400, "bad_request", "\"ttl_h\": 1 .. %u",
					       TTL_H_MAX);
				return;
			}
		}
		if (mesh_node_data_body(json_object_get(req->json, "data"), body, &bl)) {
			ctl_resp_error(resp, 400, "bad_request", MESH_NODE_DATA_MSG,
				       MESH_FIELDS_MAX, MESH_FIELD_VALUE_MAX, MESH_BODY_ANNOUNCE);
			return;
		}
		m.body = body;
		m.body_len = bl;
	}
	pthread_mutex_lock(&mn->mu);
	err = mesh_store_get(mn->store, aid, cur, sizeof(cur), &cl);
	if (!err && type == MESH_UPDATE && !mesh_env_parse(cur, cl, &e, NULL)) {
		if (req_endorse(mn, req, resp, e.service, en, &m.n_endorse)) {
			pthread_mutex_unlock(&mn->mu);
			return;
		}
		if (!json_object_get(req->json, "endorsements"))
			m.n_endorse = held_endorse(cur, cl, &e, en);
	}
	m.endorse = en;
	if (!err && (mesh_env_parse(cur, cl, &e, NULL) != 0 || e.type == MESH_REVOKE))
		err = -ENOENT; /* revoked already */
	if (!err && memcmp(e.g.origin, mn->o.id->pk, MESH_PK_LEN)) {
		pthread_mutex_unlock(&mn->mu);
		ctl_resp_error(resp, 403, "not_owner", "announce %s is not this node's",
			       json_string_value(a));
		return;
	}
	if (!err) {
		m.service = e.service;
		m.ref = aid;
		m.ttl_s = ttl_h ? (uint32_t)ttl_h * 3600u : e.g.ttl_s;
		m.ts_ms = mesh_wall_ms();
		if (m.ts_ms <= e.g.ts_ms)
			m.ts_ms = e.g.ts_ms + 1; /* newer than what it changes */
		err = mesh_env_build(mn->o.id->sk, &m, env, sizeof(env), &el);
		if (!err)
			err = mesh_env_parse(env, el, &r, NULL) ? -EIO : 0;
		if (!err)
			err = mesh_store_would_take(mn->store, &r, m.ts_ms);
		if (!err)
			err = input(mn, id, NULL, env, el);
	}
	pthread_mutex_unlock(&mn->mu);
	if (err == -ENOENT && !comm_node_mesh_peers(mn->o.comm, id, NULL, 0))
		err = -ESRCH;
	if (err == -ESRCH) {
		ctl_resp_error(resp, 404, "not_found", "no announce %s held here",
			       json_string_value(a));
		return;
	}
	if (err) {
		not_ours(resp, err);
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s}", type == MESH_REVOKE ? "revoked" : "updated",
					   json_string_value(a)));
}

static void api_revoke(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	change(arg, req, resp, MESH_REVOKE);
}

static void api_update(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	change(arg, req, resp, MESH_UPDATE);
}

static void local_answer(void *arg, const uint8_t *env, size_t len)
{
	gather(arg, env, len);
}

static void api_query(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mesh_node *mn = arg;
	uint8_t id[COMM_ID_LEN], body[MESH_BODY_QUERY], env[MESH_ENV_MAX];
	uint8_t pk[MESH_PK_LEN], sk[COMM_SK_LEN];
	json_t *f = json_object_get(req->json, "filter"), *w, *mx;
	json_t *ml = json_object_get(req->json, "min_level");
	int min_level = MESH_LEVEL_NONE;
	json_int_t wait = QUERY_WAIT_MS, max = MESH_QUERY_RESULTS_MAX;
	struct mesh_msg m = {.type = MESH_QUERY, .max_hops = 16, .ttl_s = 60};
	struct mesh_filter filt;
	struct mesh_env e;
	struct pending *pq = NULL;
	struct timespec dl;
	json_t *arr;
	const char *fs;
	size_t bl, el;
	uint32_t service;
	int err;

	if (req_common(req, resp, &service, id))
		return;
	w = json_object_get(req->json, "wait_ms");
	mx = json_object_get(req->json, "max");
	fs = f ? json_string_value(f) : "";
	if (!fs || mesh_filter_parse(fs, strlen(fs), &filt) != 0) {
		ctl_resp_error(resp, 400, "bad_request",
			       "\"filter\": clauses field OP value joined by ',' (OP = != < <= > >= "
			       "^=), at most %u bytes and %u clauses (docs/MESH.md \"Filters\")",
			       MESH_FILTER_MAX, MESH_FILTER_CLAUSES);
		return;
	}
	if (w)
		wait = json_is_integer(w) ? json_integer_value(w) : -1;
	if (mx)
		max = json_is_integer(mx) ? json_integer_value(mx) : 0;
	if (ml)
		min_level = json_is_string(ml) ? mesh_level_parse(json_string_value(ml)) : -EINVAL;
	if (wait < 0 || wait > QUERY_WAIT_MAX || max < 1 || max > MESH_QUERY_RESULTS_MAX ||
	    min_level < 0) {
		ctl_resp_error(resp, 400, "bad_request",
			       "\"wait_ms\": 0 .. %u; \"max\": 1 .. %u; \"min_level\": none, "
			       "endorsed, registry or credential",
			       QUERY_WAIT_MAX, MESH_QUERY_RESULTS_MAX);
		return;
	}
	if (min_level < mn->o.min_level)
		min_level = mn->o.min_level; /* the node's floor */
	/* A one-time key: the Query carries nothing of ours. */
	crypto_sign_keypair(pk, sk);
	err = mesh_query_body(fs, (uint32_t)max, body, sizeof(body), &bl);
	m.service = service;
	m.body = body;
	m.body_len = bl;
	m.ts_ms = mesh_wall_ms();
	if (!err)
		err = mesh_env_build(sk, &m, env, sizeof(env), &el);
	sodium_memzero(sk, sizeof(sk));
	if (err || mesh_env_parse(env, el, &e, NULL) != 0) {
		ctl_resp_error(resp, 500, "internal", "could not build the query");
		return;
	}
	pthread_mutex_lock(&mn->mu);
	for (size_t i = 0; i < PENDING_MAX && !pq; i++)
		if (!mn->q[i].used)
			pq = &mn->q[i];
	if (!pq) {
		pthread_mutex_unlock(&mn->mu);
		ctl_resp_error(resp, 503, "busy", "%u queries are waiting already", PENDING_MAX);
		return;
	}
	*pq = (struct pending){.mn = mn, .min_level = (unsigned int)min_level, .used = 1,
			       .service = service, .max = (uint32_t)max, .arr = json_array()};
	memcpy(pq->qid, e.g.id, MESH_ID_LEN);
	err = input(mn, id, NULL, env, el);
	if (!err) /* our own store answers too */
		mesh_store_query(mn->store, service, &filt, (uint8_t)min_level, (uint32_t)max,
				 m.ts_ms, local_answer, pq);
	util_deadline_ts(&dl, (uint64_t)wait);
	while (!err && pq->nseen < pq->max && pthread_cond_timedwait(&mn->cv, &mn->mu, &dl) == 0)
		;
	pq->used = 0;
	arr = pq->arr;
	pthread_mutex_unlock(&mn->mu);
	if (err) {
		json_decref(arr);
		not_ours(resp, err);
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:o}", "announces", arr));
}

/* ---- metrics ---- */

static void family(FILE *out, const char *name, const char *type, const char *help)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metrics(void *arg, FILE *out)
{
	struct mesh_node *mn = arg;
	struct mesh_relay_stats rs = {0}, r1;
	struct mesh_peer_stats ps = {0}, p1;
	struct mesh_store_stats ss;
	static const struct {
		const char *name, *help;
		size_t off;
	} pc[] = {
#define PC(n, h) {"weft_mesh_" #n "_total", h, offsetof(struct mesh_peer_stats, n)}
		PC(stored, "Announces, Updates and Revokes taken by the store."),
		PC(forwarded, "Mesh envelopes sent on to neighbours."),
		PC(answered, "Responses made from our store."),
		PC(routed_back, "Responses sent back along a query's reverse path."),
		PC(unroutable, "Responses with no reverse path (unknown or expired query)."),
		PC(dup_answers, "Responses dropped: the same announce went back already."),
		PC(delivered, "Envelopes for us (answers to our queries)."),
		PC(not_stored, "Announces the store refused (never forwarded)."),
#undef PC
	};

	pthread_mutex_lock(&mn->mu);
	for (size_t i = 0; i < mn->n; i++) {
		mesh_peer_stats(mn->c[i].p, &p1);
		mesh_peer_relay_stats(mn->c[i].p, &r1);
		for (size_t k = 0; k < sizeof(ps) / sizeof(uint64_t); k++)
			((uint64_t *)&ps)[k] += ((uint64_t *)&p1)[k];
		rs.accepted += r1.accepted;
		for (unsigned int k = 0; k < MESH_DROP_N; k++)
			rs.drop[k] += r1.drop[k];
	}
	mesh_store_stats(mn->store, &ss);
	family(out, "weft_mesh_accepted_total", "counter",
	       "Mesh envelopes that passed the relay's checks.");
	fprintf(out, "weft_mesh_accepted_total %llu\n", (unsigned long long)rs.accepted);
	family(out, "weft_mesh_dropped_total", "counter",
	       "Mesh envelopes dropped by the relay's checks, by reason.");
	for (unsigned int k = 0; k < MESH_DROP_N; k++)
		fprintf(out, "weft_mesh_dropped_total{reason=\"%s\"} %llu\n", mesh_drop_name(k),
			(unsigned long long)rs.drop[k]);
	for (size_t k = 0; k < WEFT_ARRAY_SIZE(pc); k++) {
		family(out, pc[k].name, "counter", pc[k].help);
		fprintf(out, "%s %llu\n", pc[k].name,
			(unsigned long long)*(const uint64_t *)((const char *)&ps + pc[k].off));
	}
	family(out, "weft_mesh_refused_total", "counter",
	       "Mesh envelopes from the communities refused (not ours, the relay's checks).");
	fprintf(out, "weft_mesh_refused_total %llu\n", (unsigned long long)mn->refused);
	family(out, "weft_mesh_store_announces", "gauge", "Announces held in the mesh store.");
	fprintf(out, "weft_mesh_store_announces %llu\n", (unsigned long long)ss.held);
	family(out, "weft_mesh_store_evicted_total", "counter",
	       "Announces evicted at a cap or dropped when expired.");
	fprintf(out, "weft_mesh_store_evicted_total{why=\"cap\"} %llu\n"
		     "weft_mesh_store_evicted_total{why=\"expired\"} %llu\n",
		(unsigned long long)ss.evicted, (unsigned long long)ss.expired);
	mesh_rsv_metrics(mn, out);
	pthread_mutex_unlock(&mn->mu);
}

/* ---- lifecycle ---- */

int mesh_node_new(struct mesh_node **out, const struct mesh_node_opts *o)
{
	struct mesh_node *mn;
	int err;

	*out = NULL;
	if (!o || !o->store || !o->comm || !o->id)
		return -EINVAL;
	mn = calloc(1, sizeof(*mn));
	if (!mn)
		return -ENOMEM;
	mn->o = *o;
	mn->o.store_opts.trust = &mn->trust;
	pthread_mutex_init(&mn->mu, NULL);
	util_cond_init_mono(&mn->cv);
	if (o->trust)
		mn->trust = *o->trust;
	mn->o.store_opts.min_level = o->min_level;
	err = mesh_store_new(&mn->store, o->store, &mn->o.store_opts, mesh_wall_ms());
	if (!err)
		err = mesh_rsv_init(mn);
	if (err) {
		mesh_node_free(mn);
		return err;
	}
	if (o->ctl) {
		ctl_route(o->ctl, "POST", "/v1/mesh/announce", api_announce, mn);
		ctl_route(o->ctl, "POST", "/v1/mesh/query", api_query, mn);
		ctl_route(o->ctl, "POST", "/v1/mesh/revoke", api_revoke, mn);
		ctl_route(o->ctl, "POST", "/v1/mesh/update", api_update, mn);
		ctl_route(o->ctl, "POST", "/v1/mesh/endorse", api_endorse, mn);
		ctl_metrics(o->ctl, metrics, mn);
	}
	comm_node_mesh_hook(o->comm, hook, mn);
	*out = mn;
	return 0;
}

void mesh_node_free(struct mesh_node *mn)
{
	if (!mn)
		return;
	for (size_t i = 0; i < mn->n; i++)
		mesh_peer_free(mn->c[i].p);
	mesh_store_free(mn->store);
	mesh_inbox_free(mn->inbox);
	pthread_mutex_destroy(&mn->mu);
	pthread_cond_destroy(&mn->cv);
	free(mn);
}
