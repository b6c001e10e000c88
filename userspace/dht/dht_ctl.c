// SPDX-License-Identifier: MIT
/*
 * Control API of the DHT (docs/DHT.md, "Control API"), served through
 * struct dht_svc: handlers start an operation on the thread that owns the
 * DHT (opts.run) and wait, on the svc's own mutex and condition variable
 * (never held while the DHT runs), for its callback.
 *   GET  /v1/dht/status
 *   GET  /v1/dht/store      what we store for others, with ages
 *   POST /v1/dht/ping       {"addr":"ip:port"}
 *   POST /v1/dht/find-node  {"id":hex40}
 *   POST /v1/dht/get-peers  {"infohash":hex40}
 *   POST /v1/dht/announce   {"infohash":hex40,"port":N}
 *   POST /v1/dht/put        {"immutable":true,"value":S} | {"mutable":true,"salt":S,"value":S}
 *   POST /v1/dht/get        {"target":hex40} | {"key":hex64,"salt":S}
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/util.h"

struct dht_svc {
	struct dht *dht;
	pthread_mutex_t mu;  /* lock mode only: the DHT itself */
	pthread_mutex_t wmu; /* request hand-off only (done/abandoned) */
	pthread_cond_t cv;
	struct dht_svc_opts o;
};

/* Run fn on the owner (opts.run) or under the lock. */
static int svc_exec(struct dht_svc *svc, dht_svc_fn fn, void *arg)
{
	if (svc->o.run)
		return svc->o.run(svc->o.run_arg, fn, arg);
	pthread_mutex_lock(&svc->mu);
	fn(svc->dht, arg, util_now_ms());
	if (svc->o.kick)
		svc->o.kick(svc->o.kick_arg);
	pthread_mutex_unlock(&svc->mu);
	return 0;
}

/* One request's result; heap-allocated so a late callback after a handler
 * timeout writes into memory that still exists (then frees it). */
struct svc_wait {
	struct dht_svc *svc;
	int done, abandoned;
	json_t *out; /* built in the callback (owner thread) */
	int status;
};

int dht_svc_new(struct dht_svc **out, struct dht *dht, const struct dht_svc_opts *opts)
{
	struct dht_svc *s;

	*out = NULL;
	if (!dht)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->dht = dht;
	if (opts)
		s->o = *opts;
	if (!s->o.timeout_ms)
		s->o.timeout_ms = 35000;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->wmu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	*out = s;
	return 0;
}

void dht_svc_free(struct dht_svc *svc)
{
	if (!svc)
		return;
	pthread_cond_destroy(&svc->cv);
	pthread_mutex_destroy(&svc->wmu);
	pthread_mutex_destroy(&svc->mu);
	free(svc);
}

void dht_svc_lock(struct dht_svc *svc)
{
	pthread_mutex_lock(&svc->mu);
}

void dht_svc_unlock(struct dht_svc *svc)
{
	pthread_mutex_unlock(&svc->mu);
}

static json_t *addr_json(const struct sockaddr_storage *ss)
{
	char buf[64];

	return json_string(util_fmt_addr(ss, buf, sizeof(buf)));
}

static json_t *hex_json(const uint8_t *b, size_t n)
{
	char h[2 * 64 + 1];

	util_hex(h, b, n);
	return json_string(h);
}

/* A bencoded value: strings come back as "value" (or "value_hex" when not
 * UTF-8), anything else as "value_bencode". */
static void value_json(json_t *o, const uint8_t *v, size_t len)
{
	size_t i = 0, n = 0;

	while (i < len && v[i] >= '0' && v[i] <= '9')
		n = n * 10 + (size_t)(v[i++] - '0');
	if (i && i < len && v[i] == ':' && i + 1 + n == len) {
		json_t *s = json_stringn((const char *)v + i + 1, n);
		char *h;

		if (s) {
			json_object_set_new(o, "value", s);
			return;
		}
		h = malloc(2 * n + 1);
		if (h) {
			util_hex(h, v + i + 1, n);
			json_object_set_new(o, "value_hex", json_string(h));
			free(h);
		}
		return;
	}
	json_object_set_new(o, "value_bencode", json_stringn((const char *)v, len));
}

static void svc_done(void *arg, const struct dht_result *r)
{
	struct svc_wait *w = arg;
	json_t *o = json_object(), *nodes = json_array();

	w->status = r->status;
	json_object_set_new(o, "target", hex_json(r->target, DHT_ID_LEN));
	json_object_set_new(o, "visited", json_integer(r->visited));
	json_object_set_new(o, "queried", json_integer(r->queried));
	json_object_set_new(o, "hops", json_integer(r->hops));
	for (size_t i = 0; i < r->nnodes; i++)
		json_array_append_new(nodes, json_pack("{s:o,s:o}", "id",
						       hex_json(r->nodes[i].id, DHT_ID_LEN), "addr",
						       addr_json(&r->nodes[i].addr)));
	json_object_set_new(o, "nodes", nodes);
	if (r->op == DHT_OP_GET_PEERS || r->op == DHT_OP_ANNOUNCE) {
		json_t *p = json_array();

		for (size_t i = 0; i < r->npeers; i++)
			json_array_append_new(p, addr_json(&r->peers[i]));
		json_object_set_new(o, "peers", p);
	}
	if (r->op == DHT_OP_ANNOUNCE || r->op == DHT_OP_PUT_IMMUTABLE ||
	    r->op == DHT_OP_PUT_MUTABLE)
		json_object_set_new(o, "stored", json_integer(r->stored));
	if (r->value) {
		value_json(o, r->value, r->value_len);
		if (r->mutable_item) {
			json_object_set_new(o, "seq", json_integer(r->seq));
			if (r->pk)
				json_object_set_new(o, "key", hex_json(r->pk, DHT_PK_LEN));
			if (r->sig)
				json_object_set_new(o, "sig", hex_json(r->sig, DHT_SIG_LEN));
			if (r->salt_len)
				json_object_set_new(
				    o, "salt", json_stringn((const char *)r->salt, r->salt_len));
		}
	}
	if (r->op == DHT_OP_PING) {
		json_object_set_new(o, "rtt_ms", json_integer(r->rtt_ms));
		if (r->nnodes)
			json_object_set_new(o, "id", hex_json(r->nodes[0].id, DHT_ID_LEN));
	}
	pthread_mutex_lock(&w->svc->wmu);
	w->out = o;
	w->done = 1;
	if (w->abandoned) {
		pthread_mutex_unlock(&w->svc->wmu);
		json_decref(o);
		free(w);
		return;
	}
	pthread_cond_broadcast(&w->svc->cv);
	pthread_mutex_unlock(&w->svc->wmu);
}

static struct svc_wait *svc_begin(struct dht_svc *svc)
{
	struct svc_wait *w = calloc(1, sizeof(*w));

	if (w)
		w->svc = svc;
	return w;
}

/* After the operation was started on the owner (err = its return, or why
 * it could not run). Waits, answers, and releases w unless the callback
 * still owns it. */
static void svc_finish(struct dht_svc *svc, struct svc_wait *w, int err, struct ctl_resp *resp)
{
	struct timespec dl;

	if (err) {
		free(w);
		ctl_resp_errno(resp, err, "starting DHT operation");
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += svc->o.timeout_ms / 1000;
	dl.tv_nsec += (long)(svc->o.timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&svc->wmu);
	while (!w->done)
		if (pthread_cond_timedwait(&svc->cv, &svc->wmu, &dl) == ETIMEDOUT)
			break;
	if (!w->done) {
		w->abandoned = 1; /* the callback frees it */
		pthread_mutex_unlock(&svc->wmu);
		ctl_resp_error(resp, 504, "timeout", "DHT operation did not finish in time");
		return;
	}
	pthread_mutex_unlock(&svc->wmu);
	if (w->status == -EHOSTUNREACH) {
		ctl_resp_error(resp, 503, "no_nodes",
			       "the routing table is empty (bootstrap first)");
		json_decref(w->out);
	} else if (w->status == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no item at that target");
		json_decref(w->out);
	} else if (w->status) {
		ctl_resp_errno(resp, w->status, "DHT operation");
		json_decref(w->out);
	} else {
		ctl_resp_json(resp, 200, w->out);
	}
	free(w);
}

/* One operation to start on the owner thread: the handler's parsed
 * request (borrowed for the synchronous run) and the start's result. */
struct svc_op {
	enum dht_op op;
	struct svc_wait *w;
	const struct sockaddr *addr;
	socklen_t addrlen;
	const uint8_t *id, *key;
	uint16_t port;
	const uint8_t *v, *salt;
	size_t vlen, salt_len;
	int cas;
	int err;
};

static void op_start(struct dht *dht, void *arg, uint64_t now)
{
	struct svc_op *o = arg;

	switch (o->op) {
	case DHT_OP_PING:
		o->err = dht_ping(dht, o->addr, o->addrlen, now, svc_done, o->w);
		break;
	case DHT_OP_FIND_NODE:
		o->err = dht_find_node(dht, o->id, now, svc_done, o->w);
		break;
	case DHT_OP_GET_PEERS:
		o->err = dht_get_peers(dht, o->id, now, svc_done, o->w);
		break;
	case DHT_OP_ANNOUNCE:
		o->err = dht_announce(dht, o->id, o->port, 0, now, svc_done, o->w);
		break;
	case DHT_OP_PUT_IMMUTABLE:
		o->err = dht_put_immutable(dht, o->v, o->vlen, now, svc_done, o->w);
		break;
	case DHT_OP_PUT_MUTABLE:
		o->err = dht_put_mutable(dht, o->v, o->vlen, o->salt, o->salt_len, o->cas, now,
					 svc_done, o->w);
		break;
	case DHT_OP_GET:
		o->err = dht_get(dht, o->id, o->key, o->salt, o->salt_len, now, svc_done, o->w);
		break;
	default:
		o->err = -EINVAL;
		break;
	}
}

/* Start o on the owner, then wait for it and answer. */
static void svc_run_op(struct dht_svc *svc, struct svc_op *o, struct ctl_resp *resp)
{
	int err;

	o->w = svc_begin(svc);
	if (!o->w) {
		ctl_resp_errno(resp, -ENOMEM, "DHT operation");
		return;
	}
	err = svc_exec(svc, op_start, o);
	svc_finish(svc, o->w, err ? err : o->err, resp);
}

static int get_hex(const struct ctl_req *req, const char *key, uint8_t *out, size_t n)
{
	const char *s = json_string_value(json_object_get(req->json, key));

	if (!s || strlen(s) != 2 * n || util_unhex(out, n, s))
		return -EINVAL;
	return 0;
}

static void stats_fn(struct dht *dht, void *arg, uint64_t now)
{
	dht_get_stats(dht, arg);
}

static void h_status(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct dht_svc *svc = arg;
	struct dht_stats st;
	json_t *o, *qi = json_object(), *qo = json_object(), *eo = json_object(),
		   *b4 = json_array(), *b6 = json_array();
	static const char *const ecodes[10] = {"201", "202", "203", "204", "205",
					       "206", "207", "301", "302", "other"};
	int err;

	err = svc_exec(svc, stats_fn, &st);
	if (err) {
		json_decref(qi);
		json_decref(qo);
		json_decref(eo);
		json_decref(b4);
		json_decref(b6);
		ctl_resp_errno(resp, err, "DHT status");
		return;
	}
	for (int i = 0; i < DHT_Q_COUNT; i++) {
		json_object_set_new(qi, dht_stat_q_names[i],
				    json_integer((json_int_t)st.queries_in[i]));
		json_object_set_new(qo, dht_stat_q_names[i],
				    json_integer((json_int_t)st.queries_out[i]));
	}
	for (int i = 0; i < 10; i++)
		json_object_set_new(eo, ecodes[i], json_integer((json_int_t)st.errors_out[i]));
	for (unsigned int i = 0; i < st.buckets4; i++)
		json_array_append_new(b4, json_integer(st.bucket_nodes4[i]));
	for (unsigned int i = 0; i < st.buckets6; i++)
		json_array_append_new(b6, json_integer(st.bucket_nodes6[i]));
	o = json_object();
	json_object_set_new(o, "id", hex_json(st.id, DHT_ID_LEN));
	json_object_set_new(o, "nodes4", json_integer(st.nodes4));
	json_object_set_new(o, "nodes6", json_integer(st.nodes6));
	json_object_set_new(o, "good4", json_integer(st.good4));
	json_object_set_new(o, "good6", json_integer(st.good6));
	json_object_set_new(o, "buckets4", b4);
	json_object_set_new(o, "buckets6", b6);
	json_object_set_new(o, "infohashes", json_integer(st.infohashes));
	json_object_set_new(o, "peers", json_integer(st.peers));
	json_object_set_new(o, "items", json_integer(st.items));
	json_object_set_new(o, "store_bytes", json_integer((json_int_t)st.store_bytes));
	json_object_set_new(o, "lookups", json_integer(st.lookups));
	json_object_set_new(o, "read_only", json_boolean(st.read_only));
	json_object_set_new(o, "ro_forgotten", json_integer((json_int_t)st.ro_forgotten));
	json_object_set_new(o, "queries_in", qi);
	json_object_set_new(o, "queries_out", qo);
	json_object_set_new(o, "errors_out", eo);
	json_object_set_new(o, "replies_in", json_integer((json_int_t)st.replies_in));
	json_object_set_new(o, "errors_in", json_integer((json_int_t)st.errors_in));
	json_object_set_new(o, "dropped_malformed", json_integer((json_int_t)st.dropped_malformed));
	json_object_set_new(o, "dropped_budget", json_integer((json_int_t)st.dropped_budget));
	json_object_set_new(o, "budget_unproven", json_integer((json_int_t)st.budget_unproven));
	json_object_set_new(o, "abuse_reports", json_integer((json_int_t)st.abuse_reports));
	json_object_set_new(o, "timeouts", json_integer((json_int_t)st.timeouts));
	json_object_set_new(o, "retries", json_integer((json_int_t)st.retries));
	ctl_resp_json(resp, 200, o);
}

/* At most this many entries listed by GET /v1/dht/store ("truncated"). */
#define STORE_LIST_MAX 512

struct store_list {
	struct dht_stored *e;
	unsigned int n, total;
};

static void store_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct store_list *l = arg;

	l->total = dht_store_list(dht, now, l->e, STORE_LIST_MAX);
	l->n = l->total < STORE_LIST_MAX ? l->total : STORE_LIST_MAX;
}

static void h_store(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct dht_svc *svc = arg;
	struct store_list l = {.e = calloc(STORE_LIST_MAX, sizeof(struct dht_stored))};
	json_t *o, *ihs, *its;
	uint64_t page = 0, iage = 0;
	int err;

	(void)req;
	if (!l.e) {
		ctl_resp_errno(resp, -ENOMEM, "DHT store");
		return;
	}
	err = svc_exec(svc, store_fn, &l);
	if (err) {
		free(l.e);
		ctl_resp_errno(resp, err, "DHT store");
		return;
	}
	o = json_object();
	ihs = json_array();
	its = json_array();
	for (unsigned int i = 0; i < l.n; i++) {
		const struct dht_stored *e = &l.e[i];
		json_t *x = json_object();

		json_object_set_new(x, e->item ? "target" : "infohash", hex_json(e->key, DHT_ID_LEN));
		json_object_set_new(x, "age_s", json_integer((json_int_t)(e->age_ms / 1000)));
		json_object_set_new(x, "left_s", json_integer((json_int_t)(e->left_ms / 1000)));
		if (!e->item) {
			json_object_set_new(x, "peers", json_integer(e->peers));
			page = e->age_ms > page ? e->age_ms : page;
			json_array_append_new(ihs, x);
			continue;
		}
		iage = e->age_ms > iage ? e->age_ms : iage;
		json_object_set_new(x, "bytes", json_integer((json_int_t)e->vlen));
		if (e->mut) {
			json_object_set_new(x, "k", hex_json(e->k, DHT_PK_LEN));
			json_object_set_new(x, "seq", json_integer((json_int_t)e->seq));
			json_t *salt = json_stringn((const char *)e->salt, e->salt_len);

			json_object_set_new(x, salt ? "salt" : "salt_hex",
					    salt ? salt : hex_json(e->salt, e->salt_len));
		}
		json_array_append_new(its, x);
	}
	free(l.e);
	json_object_set_new(o, "infohashes", ihs);
	json_object_set_new(o, "items", its);
	json_object_set_new(o, "peer_age_max_s", json_integer((json_int_t)(page / 1000)));
	json_object_set_new(o, "item_age_max_s", json_integer((json_int_t)(iage / 1000)));
	json_object_set_new(o, "peer_ttl_s", json_integer(DHT_PEER_TTL_MS / 1000));
	json_object_set_new(o, "item_ttl_s", json_integer(DHT_ITEM_TTL_MS / 1000));
	json_object_set_new(o, "truncated", json_boolean(l.total > l.n));
	ctl_resp_json(resp, 200, o);
}

static void h_ping(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct dht_svc *svc = arg;
	const char *a = json_string_value(json_object_get(req->json, "addr"));
	struct sockaddr_storage ss;
	unsigned int sl;
	struct svc_op o = {0};

	if (!a || util_parse_addr(a, &ss, &sl)) {
		ctl_resp_error(resp, 400, "bad_request", "addr must be \"ip:port\"");
		return;
	}
	o.op = DHT_OP_PING;
	o.addr = (struct sockaddr *)&ss;
	o.addrlen = sl;
	svc_run_op(svc, &o, resp);
}

static void h_id_op(struct dht_svc *svc, const struct ctl_req *req, struct ctl_resp *resp,
		    const char *key, enum dht_op op)
{
	uint8_t id[DHT_ID_LEN];
	json_int_t port = 0;
	struct svc_op o = {.op = op, .id = id};

	if (get_hex(req, key, id, DHT_ID_LEN)) {
		ctl_resp_error(resp, 400, "bad_request", "%s must be 40 hex digits", key);
		return;
	}
	if (op == DHT_OP_ANNOUNCE) {
		json_t *p = json_object_get(req->json, "port");

		port = json_integer_value(p);
		if (!json_is_integer(p) || port < 1 || port > 65535) {
			ctl_resp_error(resp, 400, "bad_request", "port must be 1..65535");
			return;
		}
	}
	o.port = (uint16_t)port;
	svc_run_op(svc, &o, resp);
}

static void h_find_node(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	h_id_op(arg, req, resp, "id", DHT_OP_FIND_NODE);
}

static void h_get_peers(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	h_id_op(arg, req, resp, "infohash", DHT_OP_GET_PEERS);
}

static void h_announce(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	h_id_op(arg, req, resp, "infohash", DHT_OP_ANNOUNCE);
}

static void h_put(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct dht_svc *svc = arg;
	json_t *v = json_object_get(req->json, "value"), *salt = json_object_get(req->json, "salt");
	json_t *jm = json_object_get(req->json, "mutable"),
	       *ji = json_object_get(req->json, "immutable");
	json_t *jc = json_object_get(req->json, "cas");
	int mut = json_is_true(jm), imm = json_is_true(ji), cas = json_is_true(jc);
	struct svc_op o = {0};

	/* The flags are booleans: "mutable": "yes" is an error, not false. */
	if (!json_is_string(v) || mut == imm || (salt && !json_is_string(salt)) || (salt && !mut) ||
	    (jm && !json_is_boolean(jm)) || (ji && !json_is_boolean(ji)) ||
	    (jc && !json_is_boolean(jc))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "need \"value\" and exactly one of \"immutable\"/\"mutable\" (salt "
			       "only with mutable)");
		return;
	}
	if (json_string_length(v) > DHT_MAX_VALUE - 5 ||
	    (salt && json_string_length(salt) > DHT_MAX_SALT)) {
		ctl_resp_error(resp, 413, "too_large",
			       "value over 995 bytes or salt over 64 bytes");
		return;
	}
	o.op = imm ? DHT_OP_PUT_IMMUTABLE : DHT_OP_PUT_MUTABLE;
	o.v = (const uint8_t *)json_string_value(v);
	o.vlen = json_string_length(v);
	o.salt = salt ? (const uint8_t *)json_string_value(salt) : NULL;
	o.salt_len = salt ? json_string_length(salt) : 0;
	o.cas = cas;
	svc_run_op(svc, &o, resp);
}

static void h_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct dht_svc *svc = arg;
	uint8_t target[DHT_ID_LEN], key[DHT_PK_LEN];
	json_t *salt = json_object_get(req->json, "salt");
	int has_target = !get_hex(req, "target", target, DHT_ID_LEN);
	int has_key = !get_hex(req, "key", key, DHT_PK_LEN);
	struct svc_op o = {.op = DHT_OP_GET};

	if (has_target == has_key || (salt && (!json_is_string(salt) || !has_key ||
					       json_string_length(salt) > DHT_MAX_SALT))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "need \"target\" (40 hex) or \"key\" (64 hex) [+ \"salt\"]");
		return;
	}
	o.id = has_target ? target : NULL;
	o.key = has_key ? key : NULL;
	o.salt = salt ? (const uint8_t *)json_string_value(salt) : NULL;
	o.salt_len = salt ? json_string_length(salt) : 0;
	svc_run_op(svc, &o, resp);
}

int dht_svc_register(struct dht_svc *svc, struct ctl *ctl)
{
	static const struct {
		const char *method, *path;
		ctl_handler_fn fn;
	} routes[] = {
	    {"GET", "/v1/dht/status", h_status},
	    {"GET", "/v1/dht/store", h_store},
	    {"POST", "/v1/dht/ping", h_ping},
	    {"POST", "/v1/dht/find-node", h_find_node},
	    {"POST", "/v1/dht/get-peers", h_get_peers},
	    {"POST", "/v1/dht/announce", h_announce},
	    {"POST", "/v1/dht/put", h_put},
	    {"POST", "/v1/dht/get", h_get},
	};

	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		int err = ctl_route(ctl, routes[i].method, routes[i].path, routes[i].fn, svc);

		if (err)
			return err;
	}
	return 0;
}
