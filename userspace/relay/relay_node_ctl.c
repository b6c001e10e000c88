// SPDX-License-Identifier: MIT
/*
 * The relay control plane's control API: GET /v1/relay/{status,
 * reservations,circuits}, POST /v1/relay/connect and weft_relay_* metrics.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/conn.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/quic_node.h"
#include "weft/relay.h"
#include "weft/relay_fwd.h"
#include "weft/util.h"

#include "relay_node_int.h"

static const char *const use_names[] = { "idle", "dialing", "opening", "requested", "held" };

/* ------------------------------------------------------------ control API */

static json_t *key_json(const uint8_t *k)
{
	char hex[2 * RELAY_KEY_LEN + 1];

	util_hex(hex, k, RELAY_KEY_LEN);
	return json_string(hex);
}

static json_t *status_json(struct relay_node *rn)
{
	json_t *o = json_object(), *held = json_array(), *lim, *ref = json_object();
	uint64_t now = now_ms(rn);
	char buf[64];

	lock(rn);
	for (unsigned int i = 0; i < rn->nuse; i++) {
		struct rn_use *u = &rn->use[i];

		json_array_append_new(
		    held, json_pack("{s:s,s:s,s:o,s:s,s:I,s:I,s:I,s:s}", "relay", u->target, "addr",
				    io_addr_fmt(&u->addr, buf, sizeof(buf)), "key", key_json(u->key),
				    "state", use_names[u->st], "expires_in_s",
				    (json_int_t)(u->st == U_HELD && u->expires_ms > now
						     ? (u->expires_ms - now) / 1000
						     : 0),
				    "taken", (json_int_t)u->taken, "lost", (json_int_t)u->lost,
				    "last_status", relay_status_name(u->last_status)));
		json_object_set_new(json_array_get(held, json_array_size(held) - 1), "source",
				    json_string(u->from_record
						    ? (u->dead ? "record (dropped)" : "record")
						: u->dead     ? "dht (dropped)"
						: u->discovered ? "dht"
								: "config"));
	}
	for (unsigned int i = 1; i < RELAY_E__MAX; i++)
		json_object_set_new(ref, relay_status_name(i),
				    json_integer((json_int_t)rn->circuits_refused[i]));
	lim = json_pack("{s:i,s:i,s:i,s:i,s:i,s:I,s:i}", "max_reservations",
			(int)rn->o.tab.max_reservations, "circuits_per_reservation",
			(int)rn->o.tab.circuits_per_res, "reservations_per_addr",
			(int)rn->o.tab.reservations_per_addr, "reservation_ttl_s",
			(int)rn->o.tab.ttl_s, "churn_max", (int)rn->o.tab.churn_max,
			"circuit_bytes", (json_int_t)rn->o.circuit_bytes, "circuit_lifetime_ms",
			(int)rn->o.circuit_lifetime_ms);
	json_object_set_new(o, "enabled", json_boolean(rn->fwd != NULL));
	json_object_set_new(o, "reservations", json_integer(relay_tab_count(rn->tab)));
	json_object_set_new(lim, "flood_drops",
			    json_integer(rn->o.flood_drops ? rn->o.flood_drops
							   : RELAY_DEF_FLOOD_DROPS));
	json_object_set_new(o, "limits", lim);
	json_object_set_new(
	    o, "counters",
	    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:o,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}",
		      "reserves", (json_int_t)rn->reserves_ok, "reserves_refused",
		      (json_int_t)rn->reserves_refused, "refreshes", (json_int_t)rn->refreshes,
		      "expired", (json_int_t)relay_tab_expired(rn->tab), "churn_bans", (json_int_t)rn->churn_bans,
		      "connects", (json_int_t)rn->connects, "circuits", (json_int_t)rn->circuits_ok,
		      "refused", ref, "ended_lifetime", (json_int_t)rn->ended_by[RELAY_END_LIFETIME],
		      "ended_idle", (json_int_t)rn->ended_by[RELAY_END_IDLE], "ended_bytes",
		      (json_int_t)rn->ended_by[RELAY_END_BYTES], "ended_deleted",
		      (json_int_t)rn->ended_by[RELAY_END_DELETED], "offers",
		      (json_int_t)rn->offers_in, "offers_accepted", (json_int_t)rn->offers_accepted,
		      "offers_refused", (json_int_t)rn->offers_refused, "binds_ok",
		      (json_int_t)rn->binds_ok, "binds_failed", (json_int_t)rn->binds_failed,
		      "dials", (json_int_t)rn->dials_total, "dials_ok", (json_int_t)rn->dials_ok));
	/* circuit requests sent on a reservation connection (no new handshake) */
	json_object_set_new(json_object_get(o, "counters"), "dials_shared",
			    json_integer((json_int_t)rn->dials_shared));
	/* ... on a connection dialled for them; shared ones that moved to
	 * their own because the reservation connection had no stream to spare */
	json_object_set_new(json_object_get(o, "counters"), "dials_own",
			    json_integer((json_int_t)rn->dials_own));
	json_object_set_new(json_object_get(o, "counters"), "dials_fallback",
			    json_integer((json_int_t)rn->dials_fallback));
	/* circuits ended for a flooding end, and ends banned for it */
	json_object_set_new(json_object_get(o, "counters"), "flood_cuts",
			    json_integer((json_int_t)rn->flood_cuts));
	json_object_set_new(json_object_get(o, "counters"), "flood_bans",
			    json_integer((json_int_t)rn->flood_bans));
	json_object_set_new(o, "use", held);
	/* Holder: circuits towards us that our relays ended (ENDED), by reason. */
	json_object_set_new(o, "ended_by_relay",
			    json_pack("{s:I,s:I,s:I,s:I}", relay_end_name(RELAY_END_DELETED),
				      (json_int_t)rn->ended_seen[RELAY_END_DELETED],
				      relay_end_name(RELAY_END_LIFETIME),
				      (json_int_t)rn->ended_seen[RELAY_END_LIFETIME],
				      relay_end_name(RELAY_END_IDLE),
				      (json_int_t)rn->ended_seen[RELAY_END_IDLE],
				      relay_end_name(RELAY_END_BYTES),
				      (json_int_t)rn->ended_seen[RELAY_END_BYTES]));
	json_object_set_new(o, "reserve", json_string(rn->o.reserve < 0   ? "auto"
						      : rn->o.reserve ? "always"
								      : "never"));
	json_object_set_new(o, "accept", json_boolean(rn->o.accept));
	json_object_set_new(o, "dht", json_pack("{s:I,s:I,s:I}", "announces", (json_int_t)rn->announces,
						"announces_stored", (json_int_t)rn->announces_stored,
						"relays_found", (json_int_t)rn->discovered));
	json_object_set_new(o, "relays_from_records", json_integer((json_int_t)rn->from_records));
	unlock(rn);
	return o;
}

static void api_status(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *o = status_json(rn);

	(void)req;
	if (rn->fwd) {
		struct relay_fwd_totals t;

		relay_fwd_totals(rn->fwd, &t);
		json_object_set_new(
		    o, "data_plane",
		    json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "circuits",
			      (json_int_t)t.circuits, "added", (json_int_t)t.added, "ended",
			      (json_int_t)t.ended, "binds_ok", (json_int_t)t.binds_ok, "binds_bad",
			      (json_int_t)t.binds_bad, "drop_unknown", (json_int_t)t.drop_unknown,
			      "user_pkts", (json_int_t)t.user_pkts, "user_bytes",
			      (json_int_t)t.user_bytes, "user_drops", (json_int_t)t.user_drops));
	}
	ctl_resp_json(resp, 200, o);
}

static void api_reservations(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *a = json_array();
	uint64_t now = now_ms(rn);
	char buf[64];

	(void)req;
	lock(rn);
	relay_tab_expire(rn->tab, now);
	for (unsigned int i = 0; i < relay_tab_count(rn->tab); i++) {
		const struct relay_res *r = relay_tab_get(rn->tab, i);

		json_array_append_new(
		    a, json_pack("{s:o,s:s,s:I,s:I,s:i,s:I}", "key", key_json(r->key), "addr",
				 io_addr_fmt(&r->addr, buf, sizeof(buf)), "age_s",
				 (json_int_t)((now - r->created_ms) / 1000), "expires_in_s",
				 (json_int_t)((r->expires_ms - now) / 1000), "circuits",
				 (int)r->circuits, "circuits_total", (json_int_t)r->circuits_total));
	}
	unlock(rn);
	ctl_resp_json(resp, 200, json_pack("{s:b,s:o}", "enabled", rn->fwd != NULL,
					   "reservations", a));
}

static void api_circuits(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	json_t *o, *c;
	size_t i;

	(void)req;
	if (!rn->fwd) {
		ctl_resp_json(resp, 200,
			      json_pack("{s:b,s:[]}", "enabled", 0, "circuits"));
		return;
	}
	o = relay_fwd_json(rn->fwd);
	if (!o) {
		ctl_resp_error(resp, 500, "internal", "out of memory");
		return;
	}
	/* Who each circuit joins, from the control plane's side. */
	lock(rn);
	json_array_foreach(json_object_get(o, "circuits"), i, c) {
		uint64_t id = (uint64_t)json_integer_value(json_object_get(c, "id"));

		for (unsigned int k = 0; k < rn->ncircs; k++)
			if (rn->circs[k].used && rn->circs[k].id == id) {
				json_object_set_new(c, "dialler", key_json(rn->circs[k].dkey));
				json_object_set_new(c, "target", key_json(rn->circs[k].tkey));
			}
	}
	unlock(rn);
	json_object_set_new(o, "enabled", json_true());
	ctl_resp_json(resp, 200, o);
}

/* POST /v1/relay/connect {"relay": "KEY@ADDR", "target": KEY}: ask the
 * relay for a circuit to target and bind our end (what dial by key does
 * when only the relay answers); for operators and tests. */
static void api_connect(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct relay_node *rn = arg;
	const char *via = req->json ? json_string_value(json_object_get(req->json, "relay")) : NULL;
	const char *tgt = req->json ? json_string_value(json_object_get(req->json, "target")) : NULL;
	uint8_t rkey[RELAY_KEY_LEN], tkey[RELAY_KEY_LEN];
	struct sockaddr_storage ss;
	struct io_addr ra, out;
	unsigned int st = 0;
	socklen_t sl;
	char buf[64];
	int have = 0, err;

	if (!via || !tgt || quic_node_parse_target(via, 4433, rkey, &have, &ss, &sl) || !have ||
	    io_addr_from_sockaddr(&ra, (struct sockaddr *)&ss, sl) || strlen(tgt) != 64 ||
	    util_unhex(tkey, sizeof(tkey), tgt)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "want {\"relay\": \"KEY@ADDR:PORT\", \"target\": KEY}");
		return;
	}
	err = relay_node_circuit(rn, rkey, &ra, tkey, &out, 0, &st);
	if (err == -ECONNREFUSED) {
		ctl_resp_error(resp, 502, relay_status_name(st), "the relay refused: %s",
			       relay_status_name(st));
		return;
	}
	if (err == -EHOSTUNREACH || err == -ETIMEDOUT) {
		ctl_resp_error(resp, 502, "unreachable", "%s",
			       err == -ETIMEDOUT ? "no circuit or bind within the deadline"
						 : "the relay did not answer");
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "relay circuit");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s}", "addr", io_addr_fmt(&out, buf, sizeof(buf))));
}

static void metrics(void *arg, FILE *out)
{
	struct relay_node *rn = arg;
	unsigned int held = 0;

	lock(rn);
	for (unsigned int i = 0; i < rn->nuse; i++)
		held += rn->use[i].st == U_HELD;
	fprintf(out,
		"# HELP weft_relay_reservations Reservations this relay holds for other nodes.\n"
		"# TYPE weft_relay_reservations gauge\nweft_relay_reservations %u\n"
		"# HELP weft_relay_reservations_total Reservations taken (refreshes not counted).\n"
		"# TYPE weft_relay_reservations_total counter\n"
		"weft_relay_reservations_total %llu\n"
		"# HELP weft_relay_reservations_refused_total Reservations refused by a limit.\n"
		"# TYPE weft_relay_reservations_refused_total counter\n"
		"weft_relay_reservations_refused_total %llu\n"
		"# HELP weft_relay_circuits_total Circuits granted by this relay.\n"
		"# TYPE weft_relay_circuits_total counter\nweft_relay_circuits_total %llu\n"
		"# HELP weft_relay_flood_cuts_total Circuits ended because an end flooded.\n"
		"# TYPE weft_relay_flood_cuts_total counter\nweft_relay_flood_cuts_total %llu\n"
		"# HELP weft_relay_abuse_bans_total Addresses banned for relay abuse, by kind.\n"
		"# TYPE weft_relay_abuse_bans_total counter\n"
		"weft_relay_abuse_bans_total{kind=\"flood\"} %llu\n"
		"weft_relay_abuse_bans_total{kind=\"churn\"} %llu\n"
		"# HELP weft_relay_circuit_refusals_total Circuit requests refused, by reason.\n"
		"# TYPE weft_relay_circuit_refusals_total counter\n",
		relay_tab_count(rn->tab), (unsigned long long)rn->reserves_ok,
		(unsigned long long)rn->reserves_refused, (unsigned long long)rn->circuits_ok,
		(unsigned long long)rn->flood_cuts, (unsigned long long)rn->flood_bans,
		(unsigned long long)rn->churn_bans);
	for (unsigned int i = 1; i < RELAY_E__MAX; i++)
		fprintf(out, "weft_relay_circuit_refusals_total{reason=\"%s\"} %llu\n",
			relay_status_name(i), (unsigned long long)rn->circuits_refused[i]);
	fprintf(out,
		"# HELP weft_relay_held Relays holding a reservation for this node.\n"
		"# TYPE weft_relay_held gauge\nweft_relay_held %u\n"
		"# HELP weft_relay_binds_total Circuit ends of this node bound, by result.\n"
		"# TYPE weft_relay_binds_total counter\n"
		"weft_relay_binds_total{result=\"ok\"} %llu\n"
		"weft_relay_binds_total{result=\"failed\"} %llu\n",
		held, (unsigned long long)rn->binds_ok, (unsigned long long)rn->binds_failed);
	unlock(rn);
	if (rn->fwd) {
		struct relay_fwd_totals t;

		relay_fwd_totals(rn->fwd, &t);
		fprintf(out,
			"# HELP weft_relay_circuits Circuits live in the data plane.\n"
			"# TYPE weft_relay_circuits gauge\nweft_relay_circuits %llu\n"
			"# HELP weft_relay_forwarded_bytes_total Bytes forwarded by userspace.\n"
			"# TYPE weft_relay_forwarded_bytes_total counter\n"
			"weft_relay_forwarded_bytes_total %llu\n",
			(unsigned long long)t.circuits, (unsigned long long)t.user_bytes);
	}
}


void rn_ctl_register(struct relay_node *rn)
{
	ctl_route(rn->o.ctl, "GET", "/v1/relay/status", api_status, rn);
	ctl_route(rn->o.ctl, "GET", "/v1/relay/reservations", api_reservations, rn);
	ctl_route(rn->o.ctl, "GET", "/v1/relay/circuits", api_circuits, rn);
	ctl_route(rn->o.ctl, "POST", "/v1/relay/connect", api_connect, rn);
	ctl_metrics(rn->o.ctl, metrics, rn);
}
