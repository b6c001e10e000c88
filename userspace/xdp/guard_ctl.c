// SPDX-License-Identifier: MIT
/*
 * Control API of the packet policy, XDP or software (docs/XDP.md, "Control API"):
 *   GET    /v1/xdp/status      mode, program id, counters, rates
 *   GET    /v1/xdp/limits      run-time config
 *   PUT    /v1/xdp/limits      change part of it (merged, validated, stored:
 *                               overrides the config file until DELETE)
 *   DELETE /v1/xdp/limits      back to the configuration file's values
 *   GET    /v1/bans            list bans
 *   POST   /v1/bans            {"cidr": "192.0.2.0/24", "ttl": 3600}
 *   DELETE /v1/bans/<cidr>     e.g. /v1/bans/192.0.2.0/24 (or %2F)
 * plus weft_xdp_* lines on /metrics.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"
#include "weft/xdp.h"
#include "weft/guard.h"
#include "guard_int.h"

/* Longest accepted ban TTL: ten years, so expiry arithmetic cannot wrap. */
#define MAX_TTL_S (10ULL * 365 * 86400)
/* Entries returned by GET /v1/bans: every ban the guard can hold. */
#define LIST_MAX GUARD_MAX_BANS

static void status_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct guard *g = arg;
	struct wxdp *x = guard_xdp(g);
	uint64_t now = util_now_ns(), cur[WXDP_STAT__MAX], prev[WXDP_STAT__MAX], prev_ns;
	json_t *o, *counters, *rates;
	double dt;
	int err;

	err = guard_stats(g, cur);
	if (err) {
		ctl_resp_errno(resp, err, "reading policy counters");
		return;
	}
	/* Rates over the interval since the previous status call. */
	pthread_mutex_lock(&g->lock);
	memcpy(prev, g->snap, sizeof(prev));
	prev_ns = g->snap_ns;
	memcpy(g->snap, cur, sizeof(cur));
	g->snap_ns = now;
	pthread_mutex_unlock(&g->lock);
	dt = now > prev_ns ? (double)(now - prev_ns) / 1e9 : 0;
	counters = json_object();
	rates = json_object();
	for (unsigned int i = 0; i < WXDP_STAT__MAX; i++) {
		json_object_set_new(counters, wxdp_stat_name(i), json_integer((json_int_t)cur[i]));
		json_object_set_new(rates, wxdp_stat_name(i),
				    json_real(dt > 0 && cur[i] >= prev[i] ? (double)(cur[i] - prev[i]) / dt : 0));
	}
	o = json_pack("{s:s,s:o,s:o,s:f,s:I}", "policy", guard_mode(g), "counters", counters,
		      "rates_per_s", rates, "interval_s", dt, "sources_tracked",
		      (json_int_t)guard_sources(g));
	pthread_mutex_lock(&g->lock);
	json_object_set_new(o, "bans",
			    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "operator",
				      (json_int_t)g->nkind[WXDP_BAN_OPERATOR], "operator_max",
				      (json_int_t)GUARD_MAX_OPERATOR_BANS, "auto",
				      (json_int_t)g->nkind[WXDP_BAN_AUTO], "auto_max",
				      (json_int_t)GUARD_MAX_AUTO_BANS, "auto_evicted",
				      (json_int_t)g->auto_evicted, "auto_refused",
				      (json_int_t)g->auto_refused));
	pthread_mutex_unlock(&g->lock);
	json_object_set_new(
	    o, "validated",
	    json_pack("{s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I}}", "sources",
		      (json_int_t)guard_valid_count(&g->valid, now), "capacity",
		      (json_int_t)guard_valid_capacity(&g->valid), "ttl_s",
		      (json_int_t)GUARD_VALID_TTL_S, "evicted",
		      (json_int_t)atomic_load(&g->valid_evicted), "evidence", "reply",
		      (json_int_t)atomic_load(&g->ev[GUARD_EV_REPLY]), "token",
		      (json_int_t)atomic_load(&g->ev[GUARD_EV_TOKEN]), "handshake",
		      (json_int_t)atomic_load(&g->ev[GUARD_EV_HANDSHAKE])));
	if (x) {
		json_object_set_new(o, "interface", json_string(wxdp_ifname(x)));
		json_object_set_new(o, "mode", json_string(wxdp_mode(x)));
		json_object_set_new(o, "prog_id", json_integer((json_int_t)wxdp_prog_id(x)));
		json_object_set_new(o, "pin_dir", json_string(wxdp_pin_dir(x)));
		json_object_set_new(o, "instance", json_integer((json_int_t)wxdp_owner(x)));
	} else {
		json_object_set_new(o, "mode", json_string("software"));
	}
	ctl_resp_json(resp, 200, o);
}

static void limits_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct wxdp_config c;
	int err = guard_config_get(arg, &c);

	if (err) {
		ctl_resp_errno(resp, err, "reading XDP limits");
		return;
	}
	ctl_resp_json(resp, 200, guard_limits_json(&c));
}

static void limits_put(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct guard *g = arg;
	struct store_write *ticket = NULL;
	struct wxdp_config c;
	char why[160];
	json_t *ov = NULL;
	int err;

	/* One change at a time: memory and store see the same order. */
	pthread_mutex_lock(&g->limits_mu);
	err = guard_config_get(g, &c);
	if (err) {
		pthread_mutex_unlock(&g->limits_mu);
		ctl_resp_errno(resp, err, "reading XDP limits");
		return;
	}
	if (guard_limits_merge(req->json, &c, why, sizeof(why))) {
		pthread_mutex_unlock(&g->limits_mu);
		ctl_resp_error(resp, 400, "bad_request", "%s", why);
		return;
	}
	err = guard_config_set(g, &c);
	if (err) {
		pthread_mutex_unlock(&g->limits_mu);
		ctl_resp_error(resp, 400, "bad_request", "invalid limits (a port used twice?)");
		return;
	}
	/* The keys set at run time, accumulated: they override the config
	 * file at every start until DELETE /v1/xdp/limits. */
	if (g->store) {
		ov = g->rt_overrides ? json_deep_copy(g->rt_overrides) : json_object();
		if (!ov || json_object_update_recursive(ov, req->json))
			err = -ENOMEM;
		else
			err = guard_limits_queue(g, ov, &ticket);
		if (!err) {
			json_decref(g->rt_overrides);
			g->rt_overrides = ov;
			ov = NULL;
		}
	}
	pthread_mutex_unlock(&g->limits_mu);
	json_decref(ov);
	if (!err && ticket)
		err = store_write_wait(ticket, 0);
	if (err) {
		ctl_resp_store_error(resp, err, "limits applied");
		return;
	}
	ctl_resp_json(resp, 200, guard_limits_json(&c));
}

/* Back to the configuration file's values; the overrides are forgotten. */
static void limits_delete(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct guard *g = arg;
	struct store_write *ticket = NULL;
	int err;

	pthread_mutex_lock(&g->limits_mu);
	err = guard_config_set(g, &g->file_config);
	if (!err && g->store) {
		err = guard_limits_queue(g, NULL, &ticket);
		if (!err) {
			json_decref(g->rt_overrides);
			g->rt_overrides = NULL;
		}
	}
	pthread_mutex_unlock(&g->limits_mu);
	if (!err && ticket)
		err = store_write_wait(ticket, 0);
	if (err) {
		ctl_resp_store_error(resp, err, "limits reset");
		return;
	}
	ctl_resp_json(resp, 200, guard_limits_json(&g->file_config));
}

static json_t *ban_json(const struct wxdp_ban *b, uint64_t now)
{
	char cidr[64];
	json_t *exp;

	wxdp_cidr_fmt(b, cidr, sizeof(cidr));
	if (!b->expires_ns)
		exp = json_null();
	else
		exp = json_integer(b->expires_ns > now
					   ? (json_int_t)((b->expires_ns - now + 999999999ULL) / 1000000000ULL)
					   : 0);
	return json_pack("{s:s,s:o,s:I,s:s}", "cidr", cidr, "expires_in_s", exp, "drops",
			 (json_int_t)b->drops, "kind",
			 b->kind == WXDP_BAN_OPERATOR ? "operator" : "auto");
}

static void bans_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct wxdp_ban *list;
	uint64_t now = util_now_ns();
	size_t n = 0;
	json_t *a;
	int err;

	list = calloc(LIST_MAX, sizeof(*list));
	if (!list) {
		ctl_resp_errno(resp, -ENOMEM, "listing bans");
		return;
	}
	err = guard_ban_list(arg, list, LIST_MAX, &n);
	if (err) {
		free(list);
		ctl_resp_errno(resp, err, "listing bans");
		return;
	}
	a = json_array();
	for (size_t i = 0; i < n && i < LIST_MAX; i++)
		if (!list[i].expires_ns || list[i].expires_ns > now)
			json_array_append_new(a, ban_json(&list[i], now));
	free(list);
	ctl_resp_json(resp, 200, json_pack("{s:o}", "bans", a));
}

static void bans_post(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	const char *cidr = json_string_value(json_object_get(req->json, "cidr"));
	json_t *ttl = json_object_get(req->json, "ttl");
	struct wxdp_ban b;
	uint64_t t = 0, now = util_now_ns();
	int err;

	if (!cidr || wxdp_cidr_parse(cidr, &b)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "expected {\"cidr\": \"ADDR[/LEN]\", \"ttl\": SECONDS}");
		return;
	}
	if (ttl && !json_is_null(ttl) && guard_json_uint(ttl, MAX_TTL_S, &t)) {
		ctl_resp_error(resp, 400, "bad_request", "ttl must be 0..%llu seconds (0 = permanent)",
			       (unsigned long long)MAX_TTL_S);
		return;
	}
	b.expires_ns = t ? now + t * 1000000000ULL : 0;
	b.kind = WXDP_BAN_OPERATOR;
	err = guard_ban_add(arg, &b);
	if (err == -EINVAL || err == -ENOSPC) {
		ctl_resp_errno(resp, err, "adding ban");
		return;
	}
	if (err) {
		ctl_resp_store_error(resp, err, "ban applied");
		return;
	}
	ctl_resp_json(resp, 201, ban_json(&b, now));
}

static void bans_delete(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	char cidr[128];
	size_t o = 0;
	struct wxdp_ban b;
	int err;

	/* Percent-decode (a client may encode the '/' of the CIDR). */
	for (const char *s = req->subpath; *s; s++) {
		char c = *s;

		if (c == '%' && util_hex_digit(s[1]) >= 0 && util_hex_digit(s[2]) >= 0) {
			c = (char)(util_hex_digit(s[1]) * 16 + util_hex_digit(s[2]));
			s += 2;
		}
		if (o + 1 >= sizeof(cidr))
			break;
		cidr[o++] = c;
	}
	cidr[o] = '\0';
	if (wxdp_cidr_parse(cidr, &b)) {
		ctl_resp_error(resp, 400, "bad_request", "not a CIDR: \"%s\"", cidr);
		return;
	}
	err = guard_ban_del(arg, &b);
	if (err == -EINVAL || err == -ENOENT) {
		ctl_resp_errno(resp, err, "removing ban");
		return;
	}
	if (err) {
		ctl_resp_store_error(resp, err, "ban removed");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s}", "removed", cidr));
}

static void xdp_metrics(void *arg, FILE *out)
{
	struct guard *g = arg;
	uint64_t cur[WXDP_STAT__MAX];

	if (guard_stats(arg, cur))
		return;
	fprintf(out, "# HELP weft_xdp_packets_total XDP program verdicts, by counter.\n"
		     "# TYPE weft_xdp_packets_total counter\n");
	for (unsigned int i = 0; i < WXDP_STAT__MAX; i++)
		fprintf(out, "weft_xdp_packets_total{counter=\"%s\"} %llu\n", wxdp_stat_name(i),
			(unsigned long long)cur[i]);
	fprintf(out, "# HELP weft_xdp_validated_sources Sources that proved their address.\n"
		     "# TYPE weft_xdp_validated_sources gauge\n");
	fprintf(out, "weft_xdp_validated_sources %zu\n", guard_valid_count(&g->valid, util_now_ns()));
	fprintf(out, "# HELP weft_xdp_validated_evidence_total Address proofs, by kind of evidence.\n"
		     "# TYPE weft_xdp_validated_evidence_total counter\n");
	for (int e = GUARD_EV_REPLY; e <= GUARD_EV_HANDSHAKE; e++)
		fprintf(out, "weft_xdp_validated_evidence_total{evidence=\"%s\"} %llu\n",
			e == GUARD_EV_REPLY ? "reply" : e == GUARD_EV_TOKEN ? "token" : "handshake",
			(unsigned long long)atomic_load(&g->ev[e]));
	pthread_mutex_lock(&g->lock);
	fprintf(out, "# HELP weft_xdp_bans Banned prefixes, by kind.\n# TYPE weft_xdp_bans gauge\n");
	fprintf(out, "weft_xdp_bans{kind=\"operator\"} %zu\nweft_xdp_bans{kind=\"auto\"} %zu\n",
		g->nkind[WXDP_BAN_OPERATOR], g->nkind[WXDP_BAN_AUTO]);
	fprintf(out, "# HELP weft_xdp_bans_auto_evicted_total Automatic bans evicted by newer ones.\n"
		     "# TYPE weft_xdp_bans_auto_evicted_total counter\n");
	fprintf(out, "weft_xdp_bans_auto_evicted_total %llu\n", (unsigned long long)g->auto_evicted);
	pthread_mutex_unlock(&g->lock);
}

int guard_ctl_register(struct guard *g, struct ctl *ctl)
{
	int err;

	if (!g || !ctl)
		return -EINVAL;
	err = ctl_route(ctl, "GET", "/v1/xdp/status", status_get, g);
	if (!err)
		err = ctl_route(ctl, "GET", "/v1/xdp/limits", limits_get, g);
	if (!err)
		err = ctl_route(ctl, "PUT", "/v1/xdp/limits", limits_put, g);
	if (!err)
		err = ctl_route(ctl, "DELETE", "/v1/xdp/limits", limits_delete, g);
	if (!err)
		err = ctl_route(ctl, "GET", "/v1/bans", bans_get, g);
	if (!err)
		err = ctl_route(ctl, "POST", "/v1/bans", bans_post, g);
	if (!err)
		err = ctl_route(ctl, "DELETE", "/v1/bans/", bans_delete, g);
	if (!err)
		err = ctl_metrics(ctl, xdp_metrics, g);
	return err;
}
