// SPDX-License-Identifier: MIT
/*
 * Control routes of service streams (docs/CONTROL_API.md):
 *
 *   POST /v1/svc/stream {"name", "method", "idle_ms", "timeout_ms"}
 *        with Connection: Upgrade, Upgrade: weft-stream. The stream is
 *        opened first (the provider accepts or refuses); accepted: 101 with
 *        Weft-Stream-Id, and the connection is the byte stream (attached on
 *        the fabric's owner, svc_node_stream_attach); refused: a JSON error
 *        with the class and the close reason.
 *   GET  /v1/svc/stream/ID  how stream ID ended (or how far it is).
 *   GET  /v1/svc/streams    counters (open, opened, refused, bytes, ended
 *        by reason).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "svc_ctl_int.h"
#include "svc_stream_int.h"
#include "weft/ctl.h"
#include "weft/util.h"

static int cls_status(int cls)
{
	switch (cls) {
	case SVC_ERR_BAD_REQUEST:
		return 400;
	case SVC_ERR_NOT_FOUND:
		return 404;
	case SVC_ERR_RATE_LIMITED:
		return 429;
	case SVC_ERR_TOO_LARGE:
		return 413;
	case SVC_ERR_BANNED:
		return 403;
	case SVC_ERR_TIMEOUT:
		return 504;
	case SVC_ERR_BACKEND_ERROR:
		return 502;
	default:
		return 503;
	}
}

static json_t *info_json(const struct svc_node_stream_info *i)
{
	char peer[2 * IDENTITY_PK_LEN + 1];

	util_hex(peer, i->peer, IDENTITY_PK_LEN);
	return json_pack("{s:I,s:b,s:s,s:s,s:I,s:I,s:s}", "id", (json_int_t)i->id, "ended",
			 i->ended, "error", svc_err_name((unsigned int)i->err), "reason",
			 svc_stream_reason_name(i->reason), "bytes_in", (json_int_t)i->bytes_in,
			 "bytes_out", (json_int_t)i->bytes_out, "peer", peer);
}

static void up_release(void *arg, int fd, const struct svc_node_stream_info *i)
{
	(void)fd;
	(void)i;
	ctl_upgrade_done(arg);
}

/* On the connection's control thread, once the 101 went out. */
static void up_attach(void *arg, int fd, const uint8_t *extra, size_t extra_len, void *handle)
{
	svc_node_stream_attach(arg, fd, extra, extra_len, up_release, handle);
}

static void h_stream(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	const char *up = ctl_req_header(req, "Upgrade");
	const char *name, *method = "";
	struct svc_node_stream_info info;
	struct svc_node_stream *st;
	json_int_t idle = 0, timeout = 0;
	json_t *j = req->json;
	int err;

	if (!up || strcasecmp(up, "weft-stream")) {
		ctl_resp_error(resp, 400, "bad_request",
			       "a stream needs Connection: Upgrade and Upgrade: weft-stream");
		return;
	}
	if (!json_is_object(j) || !json_is_string(json_object_get(j, "name")) ||
	    (json_object_get(j, "method") && !json_is_string(json_object_get(j, "method"))) ||
	    (json_object_get(j, "idle_ms") && !json_is_integer(json_object_get(j, "idle_ms"))) ||
	    (json_object_get(j, "timeout_ms") &&
	     !json_is_integer(json_object_get(j, "timeout_ms")))) {
		ctl_resp_error(resp, 400, "bad_request",
			       "expected {\"name\": S, \"method\": S, \"idle_ms\": N, "
			       "\"timeout_ms\": N}");
		return;
	}
	name = json_string_value(json_object_get(j, "name"));
	if (json_object_get(j, "method"))
		method = json_string_value(json_object_get(j, "method"));
	if (json_object_get(j, "idle_ms"))
		idle = json_integer_value(json_object_get(j, "idle_ms"));
	if (json_object_get(j, "timeout_ms"))
		timeout = json_integer_value(json_object_get(j, "timeout_ms"));
	if (idle < 0 || idle > SVC_NODE_STREAM_MAX_IDLE_MS || timeout < 0 ||
	    timeout > SVC_NODE_STREAM_MAX_IDLE_MS) {
		ctl_resp_error(resp, 400, "bad_request", "idle_ms or timeout_ms out of range");
		return;
	}
	err = svc_node_stream_open(sn, name, method, (uint32_t)idle, (uint32_t)timeout, &st,
				   &info);
	if (err == -EINVAL) {
		ctl_resp_error(resp, 400, "bad_request", "bad service name or method");
		return;
	}
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no provider of '%s' found", name);
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "stream");
		return;
	}
	if (!st) {
		ctl_resp_json(resp, cls_status(info.err),
			      json_pack("{s:{s:s,s:s},s:s,s:I}", "error", "code",
					svc_err_name((unsigned int)info.err), "message",
					svc_stream_reason_name(info.reason), "reason",
					svc_stream_reason_name(info.reason), "id",
					(json_int_t)info.id));
		return;
	}
	resp->status = 101;
	resp->upgrade = up_attach;
	resp->upgrade_arg = st;
	resp->upgrade_proto = "weft-stream";
	snprintf(resp->header, sizeof(resp->header), "Weft-Stream-Id: %llu",
		 (unsigned long long)info.id);
}

static void h_stream_get(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	struct svc_node_stream_info info;
	char *end = NULL;
	unsigned long long id = strtoull(req->subpath, &end, 10);
	int err;

	if (!req->subpath[0] || !end || *end) {
		ctl_resp_error(resp, 400, "bad_request", "expected /v1/svc/stream/ID");
		return;
	}
	err = svc_node_stream_result(sn, id, &info);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no stream %llu (the last %u are kept)", id,
			       SVC_NODE_STREAM_ENDED);
		return;
	}
	if (err) {
		ctl_resp_errno(resp, err, "stream");
		return;
	}
	ctl_resp_json(resp, 200, info_json(&info));
}

static void stats_own(struct svc_node *sn, void *arg)
{
	*(json_t **)arg = svcn_strm_stats(sn);
}

static void h_streams(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct svc_node *sn = arg;
	json_t *o = NULL;
	int err;

	(void)req;
	err = svcn_owner_run(sn, stats_own, &o, SVCN_OWNER_RUN_MS);
	if (err) {
		json_decref(o);
		ctl_resp_errno(resp, err, "streams");
		return;
	}
	ctl_resp_json(resp, 200, o);
}

/* /metrics: the same counters (the owner's, read in its turn; left out
 * when it does not answer within the turn). */
static void metrics(void *arg, FILE *out)
{
	struct svc_node *sn = arg;
	json_t *o = NULL, *e, *v;
	const char *k;

	if (svcn_owner_run(sn, stats_own, &o, SVCN_OWNER_RUN_MS) || !o) {
		json_decref(o);
		return;
	}
	fprintf(out,
		"# HELP weft_svc_streams_open Service streams open on this node (both sides).\n"
		"# TYPE weft_svc_streams_open gauge\nweft_svc_streams_open %lld\n"
		"# HELP weft_svc_streams_opened_total Service streams accepted.\n"
		"# TYPE weft_svc_streams_opened_total counter\nweft_svc_streams_opened_total %lld\n"
		"# HELP weft_svc_streams_refused_total Service streams refused.\n"
		"# TYPE weft_svc_streams_refused_total counter\nweft_svc_streams_refused_total %lld\n"
		"# HELP weft_svc_stream_bytes_total Bytes of this node's outgoing streams.\n"
		"# TYPE weft_svc_stream_bytes_total counter\n"
		"weft_svc_stream_bytes_total{dir=\"in\"} %lld\n"
		"weft_svc_stream_bytes_total{dir=\"out\"} %lld\n"
		"# HELP weft_svc_streams_ended_total Service streams ended, by close reason.\n"
		"# TYPE weft_svc_streams_ended_total counter\n",
		(long long)json_integer_value(json_object_get(o, "open")),
		(long long)json_integer_value(json_object_get(o, "opened")),
		(long long)json_integer_value(json_object_get(o, "refused")),
		(long long)json_integer_value(json_object_get(o, "bytes_in")),
		(long long)json_integer_value(json_object_get(o, "bytes_out")));
	e = json_object_get(o, "ended");
	json_object_foreach(e, k, v)
		fprintf(out, "weft_svc_streams_ended_total{reason=\"%s\"} %lld\n", k,
			(long long)json_integer_value(v));
	json_decref(o);
}

int svcn_strm_ctl_register(struct svc_node *sn)
{
	int err = 0;

	err |= ctl_metrics(sn->ctl, metrics, sn);
	err |= ctl_route(sn->ctl, "POST", "/v1/svc/stream", h_stream, sn);
	err |= ctl_route(sn->ctl, "GET", "/v1/svc/stream/", h_stream_get, sn);
	err |= ctl_route(sn->ctl, "GET", "/v1/svc/streams", h_streams, sn);
	return err ? -ENOSPC : 0;
}
