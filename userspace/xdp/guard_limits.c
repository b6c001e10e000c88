// SPDX-License-Identifier: MIT
/*
 * The guard's limits: the running config (guard_config_get/set, applied to
 * the XDP program or to every software policer), its JSON form (GET and PUT
 * /v1/xdp/limits), and the run-time overrides kept in the store, restored
 * over the configuration file's values at guard_new.
 *
 * A part below both guard.c (lifecycle, bans, validated sources), which
 * restores the overrides at start, and guard_ctl.c (the HTTP handlers),
 * which reads, merges and stores them: it calls neither.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "weft/guard.h"
#include "weft/log.h"
#include "weft/policer.h"
#include "weft/store.h"
#include "weft/util.h"
#include "weft/xdp.h"
#include "guard_int.h"

int guard_config_get(struct guard *g, struct wxdp_config *c)
{
	if (g->xdp)
		return wxdp_config_get(g->xdp, c);
	pthread_mutex_lock(&g->lock);
	*c = g->config;
	pthread_mutex_unlock(&g->lock);
	return 0;
}

int guard_config_set(struct guard *g, const struct wxdp_config *c)
{
	int err;

	if (wxdp_config_check(c))
		return -EINVAL;
	atomic_store_explicit(&g->v6_prefix, c->v6_prefix, memory_order_relaxed);
	if (g->xdp)
		return wxdp_config_set(g->xdp, c);
	pthread_mutex_lock(&g->lock);
	err = 0;
	for (unsigned int i = 0; i < g->npol && !err; i++)
		err = policer_config_set(g->pol[i], c);
	if (!err)
		g->config = *c;
	pthread_mutex_unlock(&g->lock);
	return err;
}

static json_t *rate_json(const struct wxdp_rate *r)
{
	return json_pack("{s:I,s:I}", "pps", (json_int_t)r->pps, "burst", (json_int_t)r->burst);
}

static json_t *ports_json(const __u16 *p)
{
	json_t *a = json_array();

	for (int i = 0; i < WXDP_MAX_PORTS; i++)
		if (p[i])
			json_array_append_new(a, json_integer(p[i]));
	return a;
}

json_t *guard_limits_json(const struct wxdp_config *c)
{
	return json_pack("{s:o,s:o,s:o,s:o,s:o,s:o,s:o,s:i,s:{s:o,s:o,s:o,s:o}}", "quic",
			 rate_json(&c->quic), "quic_validated", rate_json(&c->quic_valid),
			 "quic_initial", rate_json(&c->quic_initial), "dht", rate_json(&c->dht),
			 "stun", rate_json(&c->stun), "quic_ports", ports_json(c->quic_ports),
			 "dht_ports", ports_json(c->dht_ports), "v6_prefix", c->v6_prefix,
			 "unvalidated", "quic", rate_json(&c->unval_quic), "quic_initial",
			 rate_json(&c->unval_initial), "dht", rate_json(&c->unval_dht), "stun",
			 rate_json(&c->unval_stun));
}

int guard_json_uint(json_t *v, uint64_t max, uint64_t *out)
{
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return -EINVAL;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int rate_from(json_t *o, struct wxdp_rate *r)
{
	uint64_t v;
	json_t *f;

	if (!o)
		return 0;
	if (!json_is_object(o))
		return -EINVAL;
	if ((f = json_object_get(o, "pps"))) {
		if (guard_json_uint(f, UINT32_MAX, &v))
			return -EINVAL;
		r->pps = (__u32)v;
	}
	if ((f = json_object_get(o, "burst"))) {
		if (guard_json_uint(f, UINT32_MAX, &v))
			return -EINVAL;
		r->burst = (__u32)v;
	}
	return 0;
}

static int ports_from(json_t *a, __u16 *p)
{
	size_t i;
	json_t *v;
	uint64_t n;

	if (!a)
		return 0;
	if (!json_is_array(a) || json_array_size(a) > WXDP_MAX_PORTS)
		return -EINVAL;
	memset(p, 0, sizeof(__u16) * WXDP_MAX_PORTS);
	json_array_foreach(a, i, v) {
		if (guard_json_uint(v, 65535, &n) || n == 0)
			return -EINVAL;
		p[i] = (__u16)n;
	}
	return 0;
}

/* {"quic": rate, "quic_initial": rate, "dht": rate, "stun": rate}, any subset. */
static int unval_from(json_t *o, struct wxdp_config *c)
{
	const char *key;
	json_t *v;

	if (!o)
		return 0;
	if (!json_is_object(o))
		return -EINVAL;
	json_object_foreach(o, key, v)
		if (strcmp(key, "quic") && strcmp(key, "quic_initial") && strcmp(key, "dht") &&
		    strcmp(key, "stun"))
			return -EINVAL;
	if (rate_from(json_object_get(o, "quic"), &c->unval_quic) ||
	    rate_from(json_object_get(o, "quic_initial"), &c->unval_initial) ||
	    rate_from(json_object_get(o, "dht"), &c->unval_dht) ||
	    rate_from(json_object_get(o, "stun"), &c->unval_stun))
		return -EINVAL;
	return 0;
}

int guard_limits_merge(json_t *o, struct wxdp_config *c, char *why, size_t wl)
{
	static const char *const known[] = {"quic",	 "quic_validated", "quic_initial",
					    "dht",	 "stun",	   "quic_ports",
					    "dht_ports", "v6_prefix",	   "unvalidated"};
	const char *key;
	uint64_t v;
	json_t *val;

	if (!json_is_object(o)) {
		snprintf(why, wl, "expected a JSON object of limits");
		return -EINVAL;
	}
	json_object_foreach(o, key, val) {
		size_t i;

		for (i = 0; i < WEFT_ARRAY_SIZE(known); i++)
			if (!strcmp(key, known[i]))
				break;
		if (i == WEFT_ARRAY_SIZE(known)) {
			snprintf(why, wl, "unknown limit \"%s\"", key);
			return -EINVAL;
		}
	}
	if (rate_from(json_object_get(o, "quic"), &c->quic) ||
	    rate_from(json_object_get(o, "quic_validated"), &c->quic_valid) ||
	    rate_from(json_object_get(o, "quic_initial"), &c->quic_initial) ||
	    rate_from(json_object_get(o, "dht"), &c->dht) ||
	    rate_from(json_object_get(o, "stun"), &c->stun) ||
	    ports_from(json_object_get(o, "quic_ports"), c->quic_ports) ||
	    ports_from(json_object_get(o, "dht_ports"), c->dht_ports) ||
	    unval_from(json_object_get(o, "unvalidated"), c)) {
		snprintf(why, wl,
			 "rates are {\"pps\": N, \"burst\": N} (0..2^32-1), ports 1..65535, at "
			 "most %d", WXDP_MAX_PORTS);
		return -EINVAL;
	}
	if ((val = json_object_get(o, "v6_prefix"))) {
		if (guard_json_uint(val, 128, &v) || v == 0) {
			snprintf(why, wl, "v6_prefix must be 1..128");
			return -EINVAL;
		}
		c->v6_prefix = (__u8)v;
	}
	return 0;
}

int guard_limits_queue(struct guard *g, json_t *ov, struct store_write **ticket)
{
	struct store_op op = { .dbi = g->rt_db, .key = GUARD_RT_LIMITS_KEY,
			       .klen = sizeof(GUARD_RT_LIMITS_KEY) - 1 };
	char *enc = NULL;
	int err;

	if (ov) {
		enc = json_dumps(ov, JSON_COMPACT | JSON_SORT_KEYS);
		if (!enc)
			return -ENOMEM;
		op.val = enc;
		op.vlen = strlen(enc);
	}
	err = store_write_queue(g->store, &op, 1, ticket);
	free(enc);
	return err;
}

int guard_limits_restore(struct guard *g)
{
	struct wxdp_config c = g->file_config;
	char why[160] = "not JSON";
	json_error_t jerr;
	json_t *ov;
	void *v = NULL;
	size_t vl = 0;
	int err;

	err = store_db(g->store, GUARD_RT_DB, &g->rt_db);
	if (err)
		return err;
	err = store_get(g->store, g->rt_db, GUARD_RT_LIMITS_KEY, sizeof(GUARD_RT_LIMITS_KEY) - 1,
			&v, &vl);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	ov = json_loadb(v, vl, 0, &jerr);
	free(v);
	/* Hostile disk: the record goes through the PUT checks. */
	if (!ov || guard_limits_merge(ov, &c, why, sizeof(why)) || guard_config_set(g, &c)) {
		log_warn("guard", "stored run-time limits unreadable (%s): configuration file "
				  "values kept", why);
		json_decref(ov);
		return 0;
	}
	g->rt_overrides = ov;
	log_info("guard", "run-time limits restored (they override the configuration file "
			  "until DELETE /v1/xdp/limits)");
	return 0;
}
