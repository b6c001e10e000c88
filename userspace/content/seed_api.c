// SPDX-License-Identifier: MIT
/*
 * A seed host's controls on the control API (docs/CONTROL_API.md,
 * "Content"): rm, pin, unpin, pins, cancel, the job event stream, and the
 * announce schedule's figures in content stats and /metrics. Registered by
 * the hub (content_node.c); calls pins.c, jobs.c, events.c and
 * announce.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/annsched.h"
#include "content/content_node_int.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/util.h"

/* "id": a content id (64 hex) or a share id (40 hex) into id; its length,
 * or 0 with a 400 answer. */
static size_t body_id(const struct ctl_req *req, struct ctl_resp *resp, uint8_t id[32])
{
	const char *h = json_string_value(json_object_get(req->json, "id"));
	size_t len = h ? strlen(h) : 0;

	if ((len != 64 && len != 40) || util_unhex(id, len / 2, h)) {
		ctl_resp_error(resp, 400, "bad_request",
			       "id must be a content id (64 hex) or a share id (40 hex)");
		return 0;
	}
	return len / 2;
}

/* A job of the table downloading id, running: 1. */
static int downloading(struct content_node *cn, const uint8_t *id, size_t len, uint64_t *jid)
{
	struct cn_progress *p = calloc(CONTENT_MAX_JOBS, sizeof(*p));
	size_t n;
	int found = 0;

	if (!p)
		return 0;
	n = cn_jobs_progress(cn, p, CONTENT_MAX_JOBS);
	for (size_t i = 0; i < n && !found; i++)
		if (!p[i].finished && p[i].id_len == len && !memcmp(p[i].id, id, len)) {
			found = 1;
			*jid = p[i].job;
		}
	free(p);
	return found;
}

/* POST /v1/content/rm {"id": HEX} */
static void api_rm(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	uint8_t id[32];
	size_t len = body_id(req, resp, id);
	unsigned int nblobs = 0;
	struct manifest m;
	uint64_t jid;
	char hex[65];
	int rc, own = 0;

	if (!len)
		return;
	util_hex(hex, id, len);
	if (downloading(cn, id, len, &jid)) {
		ctl_resp_error(resp, 409, "busy",
			       "job %llu is downloading %s: content cancel %llu first",
			       (unsigned long long)jid, hex, (unsigned long long)jid);
		return;
	}
	if (len == MANIFEST_SHARE_ID_LEN) { /* a share of ours: its head goes with it */
		uint8_t *enc = NULL;
		size_t elen;

		manifest_init(&m);
		if (cn_share_get(cn, id, &enc, &elen) == 0 && manifest_decode(&m, enc, elen) == 0)
			own = !memcmp(m.pk, cn->id->pk, 32);
		free(enc);
	}
	rc = cn_remove(cn, id, len, &nblobs);
	if (rc == 0 && own)
		cn_head_retire(cn, m.pk, m.name);
	if (len == MANIFEST_SHARE_ID_LEN)
		manifest_free(&m);
	if (rc == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "%s %s is not held here",
			       len == 32 ? "content" : "share", hex);
		return;
	}
	if (rc) {
		ctl_resp_store_error(resp, rc, "content removal");
		return;
	}
	log_info(CN_MOD, "removed %s %s (%u blobs)", len == 32 ? "content" : "share", hex, nblobs);
	if (len != 32)
		cn_search_sync(cn);
	ctl_resp_json(resp, 200,
		      json_pack("{s:s,s:s,s:i}", "removed", hex, "kind",
				len == 32 ? "content" : "share", "blobs", (int)nblobs));
}

static void pin_common(struct content_node *cn, const struct ctl_req *req, struct ctl_resp *resp,
		       int on)
{
	uint8_t id[32], *enc = NULL;
	size_t len = body_id(req, resp, id), elen;
	struct cstore_info info;
	char hex[65];
	int rc;

	if (!len)
		return;
	util_hex(hex, id, len);
	if (on && ((len == 32 && cstore_info(cn->cs, id, &info)) ||
		   (len == MANIFEST_SHARE_ID_LEN && cn_share_get(cn, id, &enc, &elen)))) {
		ctl_resp_error(resp, 404, "not_found",
			       "%s %s is not held here (content get it first)",
			       len == 32 ? "content" : "share", hex);
		return;
	}
	free(enc);
	rc = cn_pin_set(cn, id, len, on);
	if (rc) {
		ctl_resp_store_error(resp, rc, on ? "pin" : "unpin");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:s,s:b}", "id", hex, "pinned", on));
}

/* POST /v1/content/pin {"id": HEX}, /v1/content/unpin */
static void api_pin(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	pin_common(arg, req, resp, 1);
}

static void api_unpin(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	pin_common(arg, req, resp, 0);
}

/* GET /v1/content/pins */
static void api_pins(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	(void)req;
	ctl_resp_json(resp, 200, json_pack("{s:o}", "pins", cn_pins_json(arg)));
}

/* POST /v1/content/cancel {"job": N} */
#define CN_CANCEL_WAIT_MS 10000
static void api_cancel(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	json_t *v = json_object_get(req->json, "job");
	json_int_t jid = json_is_integer(v) ? json_integer_value(v) : 0;
	int deleted = 0, rc;

	if (jid <= 0) {
		ctl_resp_error(resp, 400, "bad_request", "job: a job number expected");
		return;
	}
	rc = cn_job_cancel(cn, (uint64_t)jid, CN_CANCEL_WAIT_MS, &deleted);
	if (rc == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no job %lld", (long long)jid);
		return;
	}
	if (rc == -EALREADY) {
		ctl_resp_error(resp, 409, "finished", "job %lld has already ended", (long long)jid);
		return;
	}
	if (rc == -ETIMEDOUT) {
		ctl_resp_error(resp, 504, "timeout",
			       "job %lld was told to stop and is still stopping", (long long)jid);
		return;
	}
	ctl_resp_json(resp, 200,
		      json_pack("{s:I,s:s,s:b}", "job", (json_int_t)jid, "state", "cancelled",
				"partial_deleted", deleted));
}

/* ----------------------------------------------------- event stream */

struct ev_stream {
	struct content_node *cn;
	struct cn_evsub *sub;
	int over; /* the last line was sent */
	unsigned int idle;
};

/* Two seconds at most per call (ctl_resp.stream_read): a heartbeat line
 * after 2 s of silence keeps the connection out of the control server's
 * idle timeout (10 s) and bounds how long stopping the server waits. */
static long ev_read(void *arg, char *buf, size_t max)
{
	struct ev_stream *s = arg;
	long n;

	if (s->over)
		return -1;
	n = cn_events_read(s->cn->ev, s->sub, buf, max, 1000);
	if (n > 0) {
		s->idle = 0;
		return n;
	}
	if (n == -EPIPE) {
		s->over = 1;
		n = snprintf(buf, max,
			     "{\"event\":\"dropped\",\"error\":\"reader too slow: more than %u "
			     "events unread\"}\n",
			     CN_EV_QUEUE);
		return n > 0 && (size_t)n < max ? n : -2;
	}
	if (n == -ESHUTDOWN)
		return -1;
	if (n < 0)
		return -2;
	if (++s->idle >= 2) {
		s->idle = 0;
		n = snprintf(buf, max, "{\"event\":\"heartbeat\"}\n");
		return n > 0 && (size_t)n < max ? n : -2;
	}
	/* nothing yet: an empty chunk is not allowed (it ends the stream) */
	return ev_read(arg, buf, max);
}

static void ev_done(void *arg)
{
	struct ev_stream *s = arg;

	cn_events_unsub(s->cn->ev, s->sub);
	free(s);
}

/* GET /v1/content/events[?job=N] */
static void api_events(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	const char *q = ctl_req_query(req, "job");
	uint64_t job = 0;
	struct ev_stream *s;
	json_t *o;
	int rc;

	if (q && util_parse_u64(q, 1, UINT64_MAX, &job)) {
		ctl_resp_error(resp, 400, "bad_request", "job: a job number expected");
		return;
	}
	if (job) {
		o = cn_job_json(cn, job);
		if (!o) {
			ctl_resp_error(resp, 404, "not_found", "no job %llu",
				       (unsigned long long)job);
			return;
		}
		json_decref(o);
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		ctl_resp_errno(resp, -ENOMEM, "events");
		return;
	}
	s->cn = cn;
	rc = cn_events_sub(cn->ev, job, &s->sub);
	if (rc) {
		free(s);
		ctl_resp_error(resp, 503, "busy", "%d event subscribers already", CN_EV_SUBS);
		return;
	}
	resp->status = 200;
	resp->content_type = "application/x-ndjson";
	resp->stream_read = ev_read;
	resp->stream_done = ev_done;
	resp->stream_arg = s;
}

/* ------------------------------------------------- stats and metrics */

void cn_seed_stats(struct content_node *cn, json_t *o)
{
	struct cn_anq_stats st;

	cn_announce_stats(cn, &st);
	json_object_set_new(o, "announce_backlog", json_integer((json_int_t)st.backlog));
	json_object_set_new(o, "announce_oldest_age_s",
			    json_integer((json_int_t)(st.oldest_age_ms / 1000)));
	json_object_set_new(o, "announce_ids", json_integer((json_int_t)st.ids));
	json_object_set_new(o, "announce_lookups", json_integer((json_int_t)st.lookups));
	json_object_set_new(o, "announce_batches", json_integer((json_int_t)st.sends));
	json_object_set_new(o, "announce_neighbourhoods", json_integer((json_int_t)st.hoods));
	json_object_set_new(o, "evicted", json_integer((json_int_t)atomic_load(&cn->evicted)));
	json_object_set_new(o, "asked_removed",
			    json_integer((json_int_t)atomic_load(&cn->gone_asked)));
	json_object_set_new(o, "events_dropped",
			    json_integer((json_int_t)(cn->ev ? cn_events_dropped(cn->ev) : 0)));
}

static void seed_metrics(void *arg, FILE *out)
{
	struct content_node *cn = arg;
	struct cn_anq_stats st;

	cn_announce_stats(cn, &st);
	fprintf(
	    out,
	    "# HELP weft_content_announce_backlog Ids due for an announce and not yet announced.\n"
	    "# TYPE weft_content_announce_backlog gauge\nweft_content_announce_backlog %llu\n"
	    "# HELP weft_content_announce_oldest_age_seconds How overdue the most overdue "
	    "announce is.\n# TYPE weft_content_announce_oldest_age_seconds gauge\n"
	    "weft_content_announce_oldest_age_seconds %llu\n"
	    "# HELP weft_content_announce_ids Ids this node announces.\n"
	    "# TYPE weft_content_announce_ids gauge\nweft_content_announce_ids %llu\n"
	    "# HELP weft_content_announced_total Ids announced (some node stored them).\n"
	    "# TYPE weft_content_announced_total counter\nweft_content_announced_total %llu\n"
	    "# HELP weft_content_announce_lookups_total Lookups made for announcing.\n"
	    "# TYPE weft_content_announce_lookups_total counter\n"
	    "weft_content_announce_lookups_total %llu\n"
	    "# HELP weft_content_evicted_total Blobs evicted to make room.\n"
	    "# TYPE weft_content_evicted_total counter\nweft_content_evicted_total %llu\n"
	    "# HELP weft_content_lan_providers_total Providers LAN peers (BEP 14) named to "
	    "downloads.\n# TYPE weft_content_lan_providers_total counter\n"
	    "weft_content_lan_providers_total %llu\n",
	    (unsigned long long)st.backlog, (unsigned long long)(st.oldest_age_ms / 1000),
	    (unsigned long long)st.ids, (unsigned long long)st.announced,
	    (unsigned long long)st.lookups, (unsigned long long)atomic_load(&cn->evicted),
	    (unsigned long long)atomic_load(&cn->lan_found));
}

void cn_seed_routes(struct content_node *cn, struct ctl *ctl)
{
	ctl_route(ctl, "POST", "/v1/content/rm", api_rm, cn);
	ctl_route(ctl, "POST", "/v1/content/pin", api_pin, cn);
	ctl_route(ctl, "POST", "/v1/content/unpin", api_unpin, cn);
	ctl_route(ctl, "GET", "/v1/content/pins", api_pins, cn);
	ctl_route(ctl, "POST", "/v1/content/cancel", api_cancel, cn);
	ctl_route(ctl, "GET", "/v1/content/events", api_events, cn);
	ctl_metrics(ctl, seed_metrics, cn);
}
