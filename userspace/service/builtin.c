// SPDX-License-Identifier: MIT
/* Built-in services: `echo` and `mesh-stats` and their registration in a
 * router; reply buffer helpers. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "svc_int.h"

int svc_reply_append(struct svc_reply *r, const void *p, size_t len)
{
	size_t ncap;
	uint8_t *nb;

	if (!r || (!p && len))
		return -EINVAL;
	if (len > r->cap - r->len || r->len > r->cap)
		return -EMSGSIZE;
	if (!len)
		return 0;
	/* grow to exactly what is needed, rounded up: replies are one-shot */
	ncap = r->len + len;
	nb = realloc(r->buf, ncap);
	if (!nb)
		return -ENOMEM;
	r->buf = nb;
	memcpy(r->buf + r->len, p, len);
	r->len += len;
	return 0;
}

void svc_reply_release(struct svc_reply *r)
{
	if (!r)
		return;
	free(r->buf);
	r->buf = NULL;
	r->len = 0;
}

/* echo: the payload back, status 0, whatever the method. */
static int builtin_echo(void *ctx, const struct svc_call_info *call, struct svc_reply *reply)
{
	int err = svc_reply_append(reply, call->payload, call->payload_len);

	if (err == -EMSGSIZE)
		return SVC_ERR_TOO_LARGE;
	return err ? SVC_ERR_BACKEND_ERROR : SVC_OK;
}

/* GetMeshStatus: what this node serves, in aggregate: services, calls
 * admitted and in flight, outcomes by class. */
static int mesh_status_json(const struct svc_router *r, char *out, size_t cap)
{
	struct svc_router_stats st;
	size_t off;
	int n;

	svc_router_get_stats(r, &st);
	n = snprintf(out, cap,
		     "{\"method\":\"GetMeshStatus\",\"services\":%u,\"admitted\":%" PRIu64
		     ",\"inflight\":%u,\"results\":{",
		     st.services, st.admitted, st.inflight);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	off = (size_t)n;
	for (unsigned int i = 0; i < SVC_ERR__COUNT; i++) {
		n = snprintf(out + off, cap - off, "%s\"%s\":%" PRIu64, i ? "," : "",
			     svc_err_name(i), st.results[i]);
		if (n < 0 || (size_t)n >= cap - off)
			return -ENOBUFS;
		off += (size_t)n;
	}
	n = snprintf(out + off, cap - off, "}}");
	if (n < 0 || (size_t)n >= cap - off)
		return -ENOBUFS;
	return (int)(off + (size_t)n);
}

/* GetPeersSummary: how many peers and source addresses the router tracks
 * and how many it banned; counts only, never which. */
static int peers_summary_json(const struct svc_router *r, char *out, size_t cap)
{
	struct svc_router_stats st;
	int n;

	svc_router_get_stats(r, &st);
	n = snprintf(out, cap,
		     "{\"method\":\"GetPeersSummary\",\"peers_tracked\":%u,\"addrs_tracked\":%u,"
		     "\"peers_evicted\":%" PRIu64 ",\"bans\":%" PRIu64 ",\"addr_bans\":%" PRIu64
		     "}",
		     st.peers, st.addrs, st.peers_evicted, st.bans, st.addr_bans);
	return n < 0 || (size_t)n >= cap ? -ENOBUFS : n;
}

/*
 * mesh-stats: the router's aggregate counters as JSON. Methods
 * GetMeshStatus and GetPeersSummary (docs/SERVICE.md, "Built-in
 * services") answer their part; any other method the whole set (see
 * svc_router_stats_json), as before they existed. Nothing per peer, no
 * addresses, no keys: any peer may call it, so it must reveal nothing
 * about other peers.
 */
static int builtin_mesh_stats(void *ctx, const struct svc_call_info *call, struct svc_reply *reply)
{
	char buf[1024];
	int n;

	if (call->method_len == 13 && !memcmp(call->method, "GetMeshStatus", 13))
		n = mesh_status_json(ctx, buf, sizeof(buf));
	else if (call->method_len == 15 && !memcmp(call->method, "GetPeersSummary", 15))
		n = peers_summary_json(ctx, buf, sizeof(buf));
	else
		n = svc_router_stats_json(ctx, buf, sizeof(buf));
	if (n < 0)
		return SVC_ERR_BACKEND_ERROR;
	if (svc_reply_append(reply, buf, (size_t)n))
		return SVC_ERR_TOO_LARGE;
	return SVC_OK;
}

/* The built-ins into r (here, so that the router never names them: the
 * built-ins call the router, not the other way round). */
int svc_router_register_builtins(struct svc_router *r)
{
	struct svc_service_opts echo = {
	    .name = "echo",
	    .kind = SVC_KIND_INPROC,
	    .fn = builtin_echo,
	};
	struct svc_service_opts stats = {
	    .name = "mesh-stats",
	    .kind = SVC_KIND_INPROC,
	    .fn = builtin_mesh_stats,
	    .ctx = r,
	};
	int err;

	if (!r)
		return -EINVAL;
	err = svc_router_register(r, &echo);
	if (err)
		return err;
	err = svc_router_register(r, &stats);
	if (err)
		svc_router_unregister(r, "echo");
	return err;
}
