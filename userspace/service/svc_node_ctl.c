// SPDX-License-Identifier: MIT
/*
 * Control routes of the service fabric (docs/CONTROL_API.md, "Services"):
 *   POST /v1/svc/publish     {"name", "backend"}        publish
 *   POST /v1/svc/unpublish   {"name"}                   withdraw
 *   GET  /v1/svc/ls                                     what this node offers
 *   GET  /v1/svc/find/<name>                            discovery
 *   POST /v1/svc/call        {"name","method","data","count","concurrency","timeout_ms"}
 *   GET  /v1/svc/stats                                  router and fabric counters
 *   POST /v1/svc/debug/descriptor {"name","mode"}       test builds only: serve a bad
 *                                                       descriptor (see docs/SERVICE.md)
 * and weft_svc_* lines on /metrics. Payloads are never logged.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "svc_calls_int.h"
#include "svc_ctl_int.h"
#include "svc_dir_int.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/svc_rep.h"
#include "weft/util.h"

/* Calls one POST /v1/svc/call may ask for (a load test from the CLI and the
 * benchmark): 1,000,000, and 256 concurrent callers at most. */
#define SVCN_CTL_MAX_COUNT 1000000
#define SVCN_CTL_MAX_CONC 256

static json_t *result_json(const struct svc_dir_result *r)
{
	char id[2 * SVC_ID_LEN + 1], owner[2 * IDENTITY_PK_LEN + 1];
	json_t *eps = json_array();

	util_hex(id, r->id, SVC_ID_LEN);
	util_hex(owner, r->owner, IDENTITY_PK_LEN);
	for (uint32_t i = 0; i < r->n_endpoints; i++)
		json_array_append_new(eps, json_string(r->endpoints[i]));
	char ver[24];
	json_t *o;

	svc_version_fmt(r->version, ver, sizeof(ver));
	o = json_pack("{s:s,s:s,s:s,s:i,s:o,s:I,s:i,s:i}", "name", r->name, "id", id, "owner",
		      owner, "version", (int)r->version, "endpoints", eps, "expires",
		      (json_int_t)r->desc_expires, "reputation", (int)r->reputation, "rtt_us",
		      (int)r->rtt_us);
	json_object_set_new(o, "version_str", json_string(ver));
	json_object_set_new(o, "calls_ok", json_integer(r->calls_ok));
	json_object_set_new(o, "calls_failed", json_integer(r->calls_failed));
	json_object_set_new(o, "latency_us", json_integer(r->lat_us));
	json_object_set_new(o, "dead", json_boolean(r->dead));
	return o;
}

int svcn_ctl_parse(int route, json_t *body, struct svcn_ctl_args *a, struct ctl_resp *resp)
{
	memset(a, 0, sizeof(*a));
	a->method = a->data = "";
	a->count = a->concurrency = 1;
	switch (route) {
	case SVCN_CTL_PUBLISH:
		if (!body ||
		    json_unpack(body, "{s:s,s?s,s?b,s?s}", "name", &a->name, "backend",
				&a->backend, "http_credentials", &a->http_credentials, "cors",
				&a->cors)) {
			ctl_resp_error(resp, 400, "bad_request",
				       "want {\"name\": ..., \"backend\": ..., "
				       "\"http_credentials\": bool, \"cors\": origin}");
			return -EINVAL;
		}
		if (a->backend && !strcmp(a->backend, "builtin"))
			a->backend = NULL;
		return 0;
	case SVCN_CTL_UNPUBLISH:
		if (!body || json_unpack(body, "{s:s}", "name", &a->name)) {
			ctl_resp_error(resp, 400, "bad_request", "want {\"name\": ...}");
			return -EINVAL;
		}
		return 0;
	case SVCN_CTL_CALL:
		if (!body ||
		    json_unpack(body, "{s:s,s?s,s?s,s?I,s?I,s?I}", "name", &a->name, "method",
				&a->method, "data", &a->data, "count", &a->count, "concurrency",
				&a->concurrency, "timeout_ms", &a->timeout_ms) ||
		    a->count < 1 || a->count > SVCN_CTL_MAX_COUNT || a->concurrency < 1 ||
		    a->concurrency > SVCN_CTL_MAX_CONC || a->timeout_ms < 0 ||
		    a->timeout_ms > 600000) {
			ctl_resp_error(resp, 400, "bad_request",
				       "want {\"name\", \"method\", \"data\", \"count\" (1..%d), "
				       "\"concurrency\" (1..%d), \"timeout_ms\"}",
				       SVCN_CTL_MAX_COUNT, SVCN_CTL_MAX_CONC);
			return -EINVAL;
		}
		if (!svc_name_valid((const uint8_t *)a->name, strlen(a->name)) ||
		    !svc_method_valid((const uint8_t *)a->method, strlen(a->method))) {
			ctl_resp_error(resp, 400, "bad_request", "bad service or method name");
			return -EINVAL;
		}
		return 0;
	case SVCN_CTL_DEBUG_DESC:
		if (!body || json_unpack(body, "{s:s,s:s}", "name", &a->name, "mode", &a->mode) ||
		    !svc_name_valid((const uint8_t *)a->name, strlen(a->name))) {
			ctl_resp_error(
			    resp, 400, "bad_request",
			    "want {\"name\": ..., \"mode\": \"forged|tampered|expired|future|"
			    "oversized\"}");
			return -EINVAL;
		}
		return 0;
	}
	ctl_resp_error(resp, 404, "not_found", "no such request");
	return -EINVAL;
}

/* The publish options beyond name and backend: "version": "1.2.3",
 * "limits": {"calls_per_min", "max_payload", "concurrency"}, "meta":
 * {key: value}, "visible_to": [hex node keys]. 0, or -EINVAL with a 400
 * in resp. Strings point into body. */
static int pub_opts_parse(json_t *body, struct svc_node_pub_opts *po, struct ctl_resp *resp)
{
	json_t *v = json_object_get(body, "version"), *l = json_object_get(body, "limits");
	json_t *m = json_object_get(body, "meta"), *vis = json_object_get(body, "visible_to"), *x;
	const char *k;
	size_t i;

	if (v && (!json_is_string(v) || svc_version_parse(json_string_value(v),
							  strlen(json_string_value(v)),
							  &po->version))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "version: \"MAJOR[.MINOR[.PATCH]]\", MAJOR <= %u, MINOR and PATCH "
			       "<= 999, no leading zeros",
			       SVC_VERSION_MAJOR_MAX);
		return -EINVAL;
	}
	if (l) {
		json_int_t cpm = 0, mp = 0, mc = 0, ms = 0;

		if (!json_is_object(l) ||
		    json_unpack(l, "{s?I,s?I,s?I,s?I!}", "calls_per_min", &cpm, "max_payload", &mp,
				"concurrency", &mc, "streams", &ms) ||
		    cpm < 0 || cpm > 100000000 || mp < 0 || mp > (64 << 20) || mc < 0 ||
		    mc > 100000 || ms < 0 || ms > SVC_NODE_MAX_STREAMS) {
			ctl_resp_error(resp, 400, "bad_request",
				       "limits: {\"calls_per_min\": 0..100000000, \"max_payload\": "
				       "0..67108864, \"concurrency\": 0..100000, \"streams\": 0..%u} "
				       "(0: the node's)",
				       (unsigned int)SVC_NODE_MAX_STREAMS);
			return -EINVAL;
		}
		po->calls_per_min = (uint32_t)cpm;
		po->max_payload = (uint32_t)mp;
		po->max_concurrent = (uint32_t)mc;
		po->max_streams = (uint32_t)ms;
	}
	if (m) {
		if (!json_is_object(m) || json_object_size(m) > SVC_NODE_PUB_META)
			goto bad_meta;
		json_object_foreach(m, k, x) {
			if (!json_is_string(x))
				goto bad_meta;
			po->meta_key[po->n_meta] = k;
			po->meta_val[po->n_meta++] = json_string_value(x);
		}
	}
	if (vis) {
		if (!json_is_array(vis) || json_array_size(vis) > SVC_NODE_PUB_ALLOW)
			goto bad_vis;
		json_array_foreach(vis, i, x) {
			if (!json_is_string(x) || strlen(json_string_value(x)) != 2 * IDENTITY_PK_LEN ||
			    util_unhex(po->allow[po->n_allow], IDENTITY_PK_LEN, json_string_value(x)))
				goto bad_vis;
			po->n_allow++;
		}
	}
	return 0;
bad_meta:
	ctl_resp_error(resp, 400, "bad_request", "meta: an object of at most %d string values",
		       SVC_NODE_PUB_META);
	return -EINVAL;
bad_vis:
	ctl_resp_error(resp, 400, "bad_request",
		       "visible_to: an array of at most %d node keys (64 hex digits)",
		       SVC_NODE_PUB_ALLOW);
	return -EINVAL;
}

static void h_publish(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	struct svcn_ctl_args a;
	struct svc_node_pub_opts po = { 0 };
	const char *name;
	uint8_t id[SVC_ID_LEN];
	char hex[2 * SVC_ID_LEN + 1];
	int err;

	if (svcn_ctl_parse(SVCN_CTL_PUBLISH, req->json, &a, resp))
		return;
	name = a.name;
	po.http_flags = a.http_credentials ? SVC_HTTP_F_CREDENTIALS : 0;
	po.cors = a.cors;
	if (pub_opts_parse(req->json, &po, resp))
		return;
	err = svc_node_publish(sn, name, a.backend, &po);
	if (err == -EINVAL) {
		ctl_resp_error(resp, 400, "bad_request",
			       "bad name, backend (tcp:IP:PORT, unix:/path, or a built-in: "
			       "echo, mesh-stats), cors origin (http[s]://HOST[:PORT] or *), "
			       "metadata (at most %d entries, %d bytes, keys [a-z0-9._-] other "
			       "than kind, vis, http.*, weft.*; printable values), or limits "
			       "on a built-in",
			       SVC_NODE_PUB_META, SVC_NODE_PUB_META_BYTES);
		return;
	}
	if (err == -EEXIST || err == -ENOSPC) {
		ctl_resp_errno(resp, err, "publish");
		return;
	}
	if (err) {
		ctl_resp_store_error(resp, err, "publish refused");
		return;
	}
	svc_id(id, sn->id.pk, name, strlen(name));
	util_hex(hex, id, SVC_ID_LEN);
	ctl_resp_json(resp, 200, json_pack("{s:s,s:s}", "name", name, "id", hex));
}

static void h_unpublish(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svcn_ctl_args a;
	int err;

	if (svcn_ctl_parse(SVCN_CTL_UNPUBLISH, req->json, &a, resp))
		return;
	err = svc_node_unpublish(arg, a.name);
	if (err) {
		ctl_resp_store_error(resp, err, "unpublished");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s}", "name", a.name));
}

/* On the owner: what h_ls answers. */
static void ls_own(struct svc_node *sn, void *arg)
{
	json_t *arr = arg;

	for (size_t i = 0; i < sn->npubs; i++) {
		struct svcn_pub *p = &sn->pubs[i];
		uint8_t id[SVC_ID_LEN];
		char hex[2 * SVC_ID_LEN + 1];

		if (!p->used)
			continue;
		svc_id(id, sn->id.pk, p->name, strlen(p->name));
		util_hex(hex, id, SVC_ID_LEN);
		{
			char ver[24];
			json_t *o = json_pack(
			    "{s:s,s:s,s:s,s:I,s:i,s:b,s:b,s:s}", "name", p->name, "id", hex,
			    "backend", p->backend[0] ? p->backend : "builtin", "expires",
			    (json_int_t)p->expires, "announced", p->announced, "raw", p->raw,
			    "http_credentials", !!(p->http_flags & SVC_HTTP_F_CREDENTIALS), "cors",
			    p->cors);
			json_t *meta = json_object();

			svc_version_fmt(p->version ? p->version : SVC_VERSION_DEFAULT, ver,
					sizeof(ver));
			for (uint32_t k = 0; k < p->n_meta; k++)
				json_object_set_new(meta, p->meta_key[k],
						    json_string(p->meta_val[k]));
			json_object_set_new(o, "version", json_string(ver));
			json_object_set_new(o, "meta", meta);
			json_object_set_new(
			    o, "limits",
			    json_pack("{s:I,s:I,s:I,s:I}", "calls_per_min",
				      (json_int_t)p->calls_per_min, "max_payload",
				      (json_int_t)p->max_payload, "concurrency",
				      (json_int_t)p->max_concurrent, "streams",
				      (json_int_t)p->max_streams));
			json_object_set_new(o, "visibility",
					    json_string(p->n_allow ? "private" : "public"));
			json_object_set_new(o, "visible_to", json_integer(p->n_allow));
			json_array_append_new(arr, o);
		}
	}
}

/* A control request that timed out waiting for the owner, or found the
 * fabric stopping. */
static void owner_error(struct ctl_resp *resp, int err)
{
	if (err == -ETIMEDOUT || err == -ESHUTDOWN)
		ctl_resp_error(resp, 503, "unavailable", "the service fabric did not answer: %s",
			       strerror(-err));
	else
		ctl_resp_errno(resp, err, "svc");
}

static void h_ls(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	json_t *arr = json_array();
	int err = svcn_owner_run(arg, ls_own, arr, SVCN_OWNER_RUN_MS);

	if (err) {
		json_decref(arr);
		owner_error(resp, err);
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:o}", "services", arr));
}

struct find_id {
	const uint8_t *id;
	struct svc_dir_result *res;
	int n;
};

static void find_id_own(struct svc_node *sn, void *arg)
{
	struct find_id *f = arg;

	f->n = svc_dir_find_id(sn->dir, f->id, util_now_ms(), f->res);
}

/* GET /v1/svc/find/NAME[?version=RANGE] and POST /v1/svc/find {"name",
 * "version"}: the answer for name, filtered by the range vq (NULL: all). */
static void find_answer(struct svc_node *sn, const char *name, const char *vq,
			struct ctl_resp *resp)
{
	struct svc_dir_result res[SVC_DIR_DEFAULT_RESULTS];
	struct svc_vrange vr;
	json_t *arr;
	int n;

	if (strlen(name) == 2 * SVC_ID_LEN && !strchr(name, '.')) {
		uint8_t id[SVC_ID_LEN];

		/* By service id: what the cache holds (found by name before). */
		if (!util_unhex(id, SVC_ID_LEN, name)) {
			struct find_id f = {.id = id, .res = &res[0]};
			int err = svcn_owner_run(sn, find_id_own, &f, SVCN_OWNER_RUN_MS);

			if (err) {
				owner_error(resp, err);
				return;
			}
			if (f.n) {
				ctl_resp_error(resp, 404, "not_found",
					       "service id %s not in the directory cache", name);
				return;
			}
			ctl_resp_json(
			    resp, 200,
			    json_pack("{s:s,s:[o]}", "id", name, "results", result_json(&res[0])));
			return;
		}
	}
	if (vq && svc_vrange_parse(vq, &vr)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "bad version range '%s': constraints like \">=1.2,<2\" "
			       "(>=, >, <=, <, =, !=; versions MAJOR[.MINOR[.PATCH]])",
			       vq);
		return;
	}
	n = svc_node_find(sn, name, res, SVC_DIR_DEFAULT_RESULTS);
	if (n == -EINVAL) {
		ctl_resp_error(resp, 400, "bad_request", "bad service name '%s'", name);
		return;
	}
	if (n < 0) {
		ctl_resp_errno(resp, n, "find");
		return;
	}
	arr = json_array();
	for (int i = 0; i < n; i++)
		if (!vq || svc_vrange_match(&vr, res[i].version))
			json_array_append_new(arr, result_json(&res[i]));
	ctl_resp_json(resp, 200, json_pack("{s:s,s:o}", "name", name, "results", arr));
}

static void h_find(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	find_answer(arg, req->subpath, ctl_req_query(req, "version"), resp);
}

static void h_find_post(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	const char *name, *vq = NULL;

	if (!req->json || json_unpack(req->json, "{s:s,s?s}", "name", &name, "version", &vq)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "want {\"name\": NAME|SERVICE_ID, \"version\": RANGE}");
		return;
	}
	find_answer(arg, name, vq, resp);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* svc call --count N --concurrency C: the calls run on the fabric's owner,
 * C in flight at a time (svcn_call_many): no thread per call. */
static void call_many(struct svc_node *sn, const struct svcn_ctl_args *a, struct ctl_resp *resp)
{
	struct svcn_load_res l;
	long count = (long)a->count;
	int conc = (int)(a->concurrency > a->count ? a->count : a->concurrency);
	json_t *errs;
	int err;

	err = svcn_call_many(sn, a->name, a->method, (const uint8_t *)a->data, strlen(a->data),
			     (uint32_t)a->timeout_ms, count, conc, &l);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no provider of '%s' found", a->name);
		return;
	}
	if (err) {
		ctl_resp_error(resp, err == -ETIMEDOUT || err == -ESHUTDOWN ? 503 : 502,
			       err == -ETIMEDOUT || err == -ESHUTDOWN ? "unavailable" : "unreachable",
			       "calls to '%s' failed: %s", a->name, strerror(-err));
		return;
	}
	errs = json_object();
	qsort(l.lat, (size_t)l.nlat, sizeof(uint64_t), cmp_u64);
	for (unsigned int e = 0; e < SVC_ERR__COUNT; e++)
		if (l.errs[e])
			json_object_set_new(errs, svc_err_name(e), json_integer((json_int_t)l.errs[e]));
	if (l.errs[SVC_ERR__COUNT])
		json_object_set_new(errs, "transport",
				    json_integer((json_int_t)l.errs[SVC_ERR__COUNT]));
	ctl_resp_json(resp, 200,
		      json_pack("{s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:f,s:i,s:s}", "calls",
				(json_int_t)count, "ok", (json_int_t)l.errs[SVC_OK], "errors", errs,
				"p50_us", (json_int_t)(l.nlat ? l.lat[l.nlat / 2] : 0), "p99_us",
				(json_int_t)(l.nlat ? l.lat[(l.nlat * 99) / 100] : 0), "max_us",
				(json_int_t)l.max_us, "elapsed_us", (json_int_t)(l.elapsed_ns / 1000),
				"calls_per_s",
				l.elapsed_ns ? (double)count * 1e9 / (double)l.elapsed_ns : 0.0,
				"concurrency", conc, "last_transport_error",
				l.last_errno ? strerror(-l.last_errno) : ""));
	free(l.lat);
}

static void h_call(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	struct svcn_ctl_args a;
	const char *name, *method, *data;
	json_int_t count, timeout;
	struct svc_node_call_res r;
	char peer[2 * IDENTITY_PK_LEN + 1];
	json_t *o, *d;
	struct svc_vrange vr;
	struct svc_node_call_opts co = {0};
	unsigned int attempts = 0;
	int err;

	if (svcn_ctl_parse(SVCN_CTL_CALL, req->json, &a, resp))
		return;
	name = a.name;
	method = a.method;
	data = a.data;
	count = a.count;
	timeout = a.timeout_ms;
	if (count > 1) {
		call_many(sn, &a, resp);
		return;
	}
	{
		const char *vs = NULL, *rt = NULL;

		json_unpack(req->json, "{s?s,s?s}", "version", &vs, "retry", &rt);
		if ((vs && svc_vrange_parse(vs, &vr)) || (rt && svc_node_retry_parse(rt, &co.retry))) {
			ctl_resp_error(resp, 400, "bad_request",
				       "\"version\": a range like \">=1.2,<2\"; \"retry\": "
				       "\"unsent\" (default), \"never\" or \"always\"");
			return;
		}
		co.version = vs ? &vr : NULL;
	}
	err = svc_node_call_ex(sn, name, method, (const uint8_t *)data, strlen(data),
			       (uint32_t)timeout, &co, &r, &attempts);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no provider of '%s' found", name);
		return;
	}
	if (err == -EHOSTUNREACH) {
		ctl_resp_error(resp, 502, "unreachable",
			       "call to '%s' failed: the provider's endpoints did not answer and "
			       "its key gave no address that answered (no node record, or "
			       "neither its addresses nor a relay answered)",
			       name);
		return;
	}
	if (err) {
		ctl_resp_error(resp, err == -ETIMEDOUT ? 504 : 502,
			       err == -ETIMEDOUT ? "timeout" : "unreachable",
			       "call to '%s' failed: %s", name, strerror(-err));
		return;
	}
	util_hex(peer, r.peer, IDENTITY_PK_LEN);
	o = json_pack("{s:s,s:i,s:s,s:I,s:i}", "error", svc_err_name((unsigned int)r.err), "status",
		      (int)r.status, "peer", peer, "rtt_us", (json_int_t)r.rtt_us, "attempts",
		      (int)attempts);
	d = json_stringn((const char *)(r.data ? r.data : (const uint8_t *)""), r.len);
	if (d) {
		json_object_set_new(o, "data", d);
	} else {
		char *hex = malloc(2 * r.len + 1);

		if (hex) {
			util_hex(hex, r.data, r.len);
			json_object_set_new(o, "data_hex", json_string(hex));
			free(hex);
		}
	}
	free(r.data);
	ctl_resp_json(resp, 200, o);
}

static json_int_t lim_or(uint32_t v, uint32_t def)
{
	return (json_int_t)(v ? v : def);
}

/* On the owner: the answer of GET /v1/svc/stats into *(json_t **)arg. */
static void stats_own(struct svc_node *sn, void *arg)
{
	struct svc_router_stats rs;
	json_t *res = json_object(), *rej = json_object(), *o;
	int conns = 0;

	for (size_t i = 0; i < SVC_NODE_MAX_PEERS; i++)
		conns += sn->peers[i].state == SVCN_PEER_UP;
	svc_router_get_stats(sn->router, &rs);
	for (unsigned int e = 0; e < SVC_ERR__COUNT; e++)
		json_object_set_new(res, svc_err_name(e), json_integer((json_int_t)rs.results[e]));
	for (unsigned int i = 0; i < 8; i++)
		json_object_set_new(rej, svcn_reject_name(i),
				    json_integer((json_int_t)sn->st.rejected[i]));
	o = json_pack("{s:{s:I,s:o,s:I,s:I,s:i,s:i,s:i,s:i},s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		      "s:I,s:o,s:I,s:I,s:i,s:i,s:i}}",
		      "router", "admitted", (json_int_t)rs.admitted, "results", res, "bans",
		      (json_int_t)rs.bans, "addr_bans", (json_int_t)rs.addr_bans, "peers",
		      (int)rs.peers, "addrs", (int)rs.addrs, "inflight", (int)rs.inflight,
		      "services", (int)rs.services, "fabric", "calls_in",
		      (json_int_t)sn->st.calls_in, "calls_out", (json_int_t)sn->st.calls_out,
		      "calls_out_ok", (json_int_t)sn->st.calls_out_ok, "http_in",
		      (json_int_t)sn->st.http_in, "http_out", (json_int_t)sn->st.http_out,
		      "descriptors_served", (json_int_t)sn->st.desc_served, "lookups",
		      (json_int_t)sn->st.lookups, "fetched", (json_int_t)sn->st.fetched, "accepted",
		      (json_int_t)sn->st.accepted, "rejected", rej, "gateway_requests",
		      (json_int_t)atomic_load(&sn->gw_requests), "gateway_denied",
		      (json_int_t)atomic_load(&sn->gw_denied), "cached_names", (int)svc_dir_names(sn->dir),
		      "cached_results", (int)svc_dir_results(sn->dir), "connections", conns);
	/* providers this node keeps a lasting record of (svc_reputation.c) */
	json_object_set_new(json_object_get(o, "fabric"), "reputation_providers",
			    json_integer(sn->rep ? (json_int_t)svc_rep_count(sn->rep) : 0));
	json_object_set_new(json_object_get(o, "fabric"), "failovers",
			    json_integer((json_int_t)atomic_load(&sn->failovers)));
	/* Answered outgoing calls by latency: cumulative buckets as Prometheus
	 * has them ("le" in microseconds), count and sum. */
	{
		static const uint64_t le[SVCN_LAT_BUCKETS] = SVCN_LAT_BOUNDS_US;
		json_t *b = json_object();
		uint64_t cum = 0;
		char k[24];

		for (unsigned int i = 0; i <= SVCN_LAT_BUCKETS; i++) {
			cum += sn->st.call_lat[i];
			if (i < SVCN_LAT_BUCKETS)
				snprintf(k, sizeof(k), "%llu", (unsigned long long)le[i]);
			else
				snprintf(k, sizeof(k), "+Inf");
			json_object_set_new(b, k, json_integer((json_int_t)cum));
		}
		json_object_set_new(o, "call_latency_us",
				    json_pack("{s:I,s:I,s:o}", "count", (json_int_t)cum, "sum",
					      (json_int_t)sn->st.call_lat_sum_us, "le", b));
	}
	/* Calls whose provider's endpoints did not answer, made to its key
	 * (its node record: direct addresses, else a relay's circuit). */
	json_object_set_new(
	    json_object_get(o, "fabric"), "by_key",
	    json_pack("{s:I,s:I,s:I}", "calls", (json_int_t)sn->st.calls_by_key, "ok",
		      (json_int_t)sn->st.calls_by_key_ok, "failed",
		      (json_int_t)atomic_load(&sn->calls_by_key_failed)));
	/* Lookups: providers dialled by the key claim of their announce
	 * (their announced address gave nothing), and those that answered. */
	json_object_set_new(json_object_get(o, "fabric"), "find_by_key",
			    json_pack("{s:I,s:I}", "dialled",
				      (json_int_t)atomic_load(&sn->finds_by_key), "found",
				      (json_int_t)atomic_load(&sn->finds_by_key_ok)));
	/* Events from packet workers waiting for the fabric's owner; callers'
	 * jobs and outgoing streams it drives. */
	json_object_set_new(
	    o, "owner",
	    json_pack("{s:i,s:i,s:I,s:I,s:I,s:i,s:i}", "queued_data",
		      (int)atomic_load(&sn->shim->q_data), "queued_control",
		      (int)atomic_load(&sn->shim->q_ctl), "queue_max",
		      (json_int_t)svcn_owner_queue(sn), "refused",
		      (json_int_t)atomic_load(&sn->shim->q_refused), "events",
		      (json_int_t)sn->st.owner_events, "jobs", (int)sn->njobs, "ops",
		      (int)sn->nops));
	/* The [svc] limits in force (0 in the config = the router's default). */
	json_object_set_new(
	    o, "limits",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "peer_calls_per_min",
		      lim_or(sn->cfg.svc_peer_calls_per_min, SVC_DEFAULT_PEER_CALLS_PER_MIN),
		      "max_payload", lim_or(sn->cfg.svc_max_payload, SVC_DEFAULT_MAX_PAYLOAD),
		      "peer_concurrency",
		      lim_or(sn->cfg.svc_peer_concurrency, SVC_DEFAULT_PEER_CONCURRENT),
		      "service_calls_per_min",
		      lim_or(sn->cfg.svc_service_calls_per_min, SVC_DEFAULT_SVC_CALLS_PER_MIN),
		      "service_concurrency",
		      lim_or(sn->cfg.svc_service_concurrency, SVC_DEFAULT_SVC_CONCURRENT),
		      "addr_calls_per_min",
		      lim_or(sn->cfg.svc_addr_calls_per_min, SVC_DEFAULT_ADDR_CALLS_PER_MIN),
		      "addr_concurrency",
		      lim_or(sn->cfg.svc_addr_concurrency, SVC_DEFAULT_ADDR_CONCURRENT),
		      "global_concurrency",
		      lim_or(sn->cfg.svc_global_concurrency, SVC_DEFAULT_GLOBAL_CONCURRENT)));
	{
		/* Deadlines and backend bounds (docs/SERVICE.md). */
		struct svc_backend_stats bs;
		json_t *l = json_object_get(o, "limits");

		svc_backend_stats(sn->backend, &bs);
		json_object_set_new(l, "max_timeout_ms", json_integer(svcn_max_timeout(sn)));
		json_object_set_new(l, "backend_max_inflight",
				    json_integer(lim_or(sn->cfg.svc_backend_max_inflight,
							SVC_BACKEND_DEFAULT_MAX_INFLIGHT)));
		json_object_set_new(l, "backend_max_per_service",
				    json_integer(lim_or(sn->cfg.svc_backend_max_per_service,
							SVC_BACKEND_DEFAULT_MAX_PER_SERVICE)));
		json_object_set_new(l, "http_buffer", json_integer((json_int_t)svcn_http_buffer(sn)));
		json_object_set_new(o, "backend",
				    json_pack("{s:i,s:I,s:I,s:I,s:i,s:i,s:I,s:I}", "inflight",
					      (int)bs.inflight, "busy", (json_int_t)bs.busy, "timeouts",
					      (json_int_t)bs.timeouts, "protocol_errors",
					      (json_int_t)bs.protocol_errors, "conns_open",
					      (int)bs.conns_open, "conns_idle", (int)bs.conns_idle,
					      "conns_opened", (json_int_t)bs.conns_opened, "reused",
					      (json_int_t)bs.reused));
	}
	*(json_t **)arg = o;
}

static void h_stats(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	json_t *o = NULL;
	int err = svcn_owner_run(arg, stats_own, &o, SVCN_OWNER_RUN_MS);

	if (err)
		owner_error(resp, err);
	else
		ctl_resp_json(resp, 200, o);
}

#ifdef WEFT_TEST_HOOKS
static void h_debug_desc(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	struct svcn_ctl_args a;
	const char *name, *mode;
	uint8_t *buf = NULL;
	size_t len = 0;
	int err;

	if (svcn_ctl_parse(SVCN_CTL_DEBUG_DESC, req->json, &a, resp))
		return;
	name = a.name;
	mode = a.mode;
	err = svcn_bad_descriptor(sn, name, mode, &buf, &len);
	if (err == -EINVAL) {
		ctl_resp_error(resp, 400, "bad_request", "unknown mode '%s'", mode);
		return;
	}
	if (!err)
		err = svcn_publish_raw(sn, name, buf, len);
	free(buf);
	if (err) {
		ctl_resp_errno(resp, err, "debug descriptor");
		return;
	}
	ctl_resp_json(
	    resp, 200,
	    json_pack("{s:s,s:s,s:I}", "name", name, "mode", mode, "bytes", (json_int_t)len));
}
#endif

struct metrics_snap {
	struct svc_router_stats rs;
	uint64_t rejected[8];
	uint64_t call_lat[SVCN_LAT_BUCKETS + 1];
	uint64_t call_lat_sum_us;
	uint64_t by_key, by_key_ok;
	size_t rep_n;
};

static void metrics_own(struct svc_node *sn, void *arg)
{
	struct metrics_snap *m = arg;

	svc_router_get_stats(sn->router, &m->rs);
	memcpy(m->rejected, sn->st.rejected, sizeof(m->rejected));
	memcpy(m->call_lat, sn->st.call_lat, sizeof(m->call_lat));
	m->call_lat_sum_us = sn->st.call_lat_sum_us;
	m->by_key = sn->st.calls_by_key;
	m->by_key_ok = sn->st.calls_by_key_ok;
	m->rep_n = sn->rep ? svc_rep_count(sn->rep) : 0;
}

static void metrics(void *arg, FILE *out)
{
	struct svc_node *sn = arg;
	struct metrics_snap m;
	const struct svc_router_stats *rs = &m.rs;

	/* The owner's counters; none (the lines are left out) when it does
	 * not answer in time. The queue gauges are atomics: always. */
	if (svcn_owner_run(sn, metrics_own, &m, SVCN_OWNER_RUN_MS))
		goto queue;
	fprintf(out, "# HELP weft_svc_calls_total Service calls handled, by error class.\n"
		     "# TYPE weft_svc_calls_total counter\n");
	for (unsigned int e = 0; e < SVC_ERR__COUNT; e++)
		fprintf(out, "weft_svc_calls_total{class=\"%s\"} %llu\n", svc_err_name(e),
			(unsigned long long)rs->results[e]);
	fprintf(out,
		"# HELP weft_svc_bans_total Bans fired by service abuse controls.\n"
		"# TYPE weft_svc_bans_total counter\nweft_svc_bans_total %llu\n"
		"# HELP weft_svc_inflight Calls admitted and not finished.\n"
		"# TYPE weft_svc_inflight gauge\nweft_svc_inflight %u\n"
		"# HELP weft_svc_descriptors_rejected_total Fetched descriptors rejected.\n"
		"# TYPE weft_svc_descriptors_rejected_total counter\n",
		(unsigned long long)rs->bans, rs->inflight);
	for (unsigned int i = 0; i < 8; i++)
		fprintf(out, "weft_svc_descriptors_rejected_total{reason=\"%s\"} %llu\n",
			svcn_reject_name(i), (unsigned long long)m.rejected[i]);
	fprintf(out,
		"# HELP weft_svc_calls_by_key_total Outgoing calls made to an address the "
		"provider's key resolved to (its descriptor's endpoints did not answer).\n"
		"# TYPE weft_svc_calls_by_key_total counter\nweft_svc_calls_by_key_total %llu\n"
		"# HELP weft_svc_calls_by_key_ok_total Those answered with ok.\n"
		"# TYPE weft_svc_calls_by_key_ok_total counter\nweft_svc_calls_by_key_ok_total %llu\n"
		"# HELP weft_svc_calls_by_key_failed_total Calls whose endpoints did not answer "
		"and whose key gave no address that did.\n"
		"# TYPE weft_svc_calls_by_key_failed_total counter\n"
		"weft_svc_calls_by_key_failed_total %llu\n",
		(unsigned long long)m.by_key, (unsigned long long)m.by_key_ok,
		(unsigned long long)atomic_load(&sn->calls_by_key_failed));
	fprintf(out,
		"# HELP weft_svc_failovers_total Outgoing calls made again at the next provider "
		"after the first failed (docs/SERVICE.md, \"Failover\").\n"
		"# TYPE weft_svc_failovers_total counter\nweft_svc_failovers_total %llu\n"
		"# HELP weft_svc_reputation_providers Providers in the lasting reputation table.\n"
		"# TYPE weft_svc_reputation_providers gauge\nweft_svc_reputation_providers %zu\n",
		(unsigned long long)atomic_load(&sn->failovers), m.rep_n);
	{
		static const uint64_t le[SVCN_LAT_BUCKETS] = SVCN_LAT_BOUNDS_US;
		unsigned long long cum = 0;

		fprintf(out, "# HELP weft_svc_call_duration_seconds Latency of answered outgoing "
			     "service calls (this node calling a provider, itself included).\n"
			     "# TYPE weft_svc_call_duration_seconds histogram\n");
		for (unsigned int i = 0; i <= SVCN_LAT_BUCKETS; i++) {
			cum += m.call_lat[i];
			if (i < SVCN_LAT_BUCKETS)
				fprintf(out, "weft_svc_call_duration_seconds_bucket{le=\"%g\"} %llu\n",
					(double)le[i] / 1e6, cum);
			else
				fprintf(out, "weft_svc_call_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
					cum);
		}
		fprintf(out, "weft_svc_call_duration_seconds_sum %.6f\n"
			     "weft_svc_call_duration_seconds_count %llu\n",
			(double)m.call_lat_sum_us / 1e6, cum);
	}
	{
		static const uint64_t le[SVC_ROUTER_LAT_BUCKETS] = SVC_ROUTER_LAT_BOUNDS_US;
		unsigned long long cum = 0;

		fprintf(out, "# HELP weft_svc_served_duration_seconds Duration of the calls and "
			     "streams this node's router served, admission to end.\n"
			     "# TYPE weft_svc_served_duration_seconds histogram\n");
		for (unsigned int i = 0; i <= SVC_ROUTER_LAT_BUCKETS; i++) {
			cum += rs->served_lat[i];
			if (i < SVC_ROUTER_LAT_BUCKETS)
				fprintf(out,
					"weft_svc_served_duration_seconds_bucket{le=\"%g\"} %llu\n",
					(double)le[i] / 1e6, cum);
			else
				fprintf(out,
					"weft_svc_served_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
					cum);
		}
		fprintf(out, "weft_svc_served_duration_seconds_sum %.6f\n"
			     "weft_svc_served_duration_seconds_count %llu\n",
			(double)rs->served_lat_sum_us / 1e6, cum);
	}
queue:
	fprintf(out,
		"# HELP weft_svc_owner_queue Events from packet workers waiting for the fabric's owner, by kind.\n"
		"# TYPE weft_svc_owner_queue gauge\n"
		"weft_svc_owner_queue{kind=\"data\"} %u\nweft_svc_owner_queue{kind=\"control\"} %u\n"
		"# HELP weft_svc_owner_refused_total Service streams reset because the owner queue was full.\n"
		"# TYPE weft_svc_owner_refused_total counter\nweft_svc_owner_refused_total %llu\n",
		atomic_load(&sn->shim->q_data), atomic_load(&sn->shim->q_ctl),
		(unsigned long long)atomic_load(&sn->shim->q_refused));
}

int svcn_ctl_register(struct svc_node *sn)
{
	int err = 0;

	err |= ctl_route(sn->ctl, "POST", "/v1/svc/publish", h_publish, sn);
	err |= ctl_route(sn->ctl, "POST", "/v1/svc/unpublish", h_unpublish, sn);
	err |= ctl_route(sn->ctl, "GET", "/v1/svc/ls", h_ls, sn);
	err |= ctl_route(sn->ctl, "GET", "/v1/svc/find/", h_find, sn);
	err |= ctl_route(sn->ctl, "POST", "/v1/svc/find", h_find_post, sn);
	err |= ctl_route(sn->ctl, "POST", "/v1/svc/call", h_call, sn);
	err |= ctl_route(sn->ctl, "GET", "/v1/svc/stats", h_stats, sn);
#ifdef WEFT_TEST_HOOKS
	err |= ctl_route(sn->ctl, "POST", "/v1/svc/debug/descriptor", h_debug_desc, sn);
#endif
	err |= ctl_metrics(sn->ctl, metrics, sn);
	return err ? -ENOSPC : 0;
}
