// SPDX-License-Identifier: MIT
/*
 * How QUIC events reach the service fabric's owner (docs/SERVICE.md,
 * "Threads and owners"). Every QUIC callback of the fabric runs on a packet worker and does no
 * more than copy its event and post it to the owner (the backend
 * forwarder's loop, svc_backend_post; on worker 0 itself when svc.owner =
 * worker, where the event runs later in the same pass without a wake-up):
 * no lock, no allocation beyond the copy. The owner
 * runs the events in each worker's order. Stream data is bounded
 * (svc.owner_queue events, SVC_NODE_OWNER_BYTES bytes): past it the
 * stream is reset with SVC_NODE_RST_OWNER_BUSY and a close event follows,
 * so the caller sees the error at once. Opens and closes are never
 * refused: at most one per stream and connection the QUIC node admits,
 * they keep the owner's tables true. On the owner, an event runs the
 * client side (svc_ops.c, svcn_cl_*_own) or the provider side
 * (svc_serve.c, svcn_srv_*); neither calls back here.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "svc_events_int.h"
#include "svc_ops_int.h"
#include "svc_serve_int.h"
#include "svc_stream_int.h"
#include "weft/engine.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/svc_backend.h"

_Static_assert(IDENTITY_PK_LEN == QUIC_KEY_LEN, "node keys are QUIC keys");

enum {
	SVCN_EV_CONNECTED = 1,
	SVCN_EV_OPENED,
	SVCN_EV_CL_DATA,
	SVCN_EV_CL_SCLOSED,
	SVCN_EV_CL_CLOSED,
	SVCN_EV_SRV_DATA,
	SVCN_EV_SRV_CLOSED,
	SVCN_EV_WRITABLE, /* a service stream's write reached its send buffer */
};

struct svcn_ev {
	struct svc_backend_msg m; /* first: the message is the event */
	struct svcn_shim *shim;
	uint8_t kind;
	uint8_t fin;
	uint8_t have_key;
	int type; /* SRV_DATA: the stream type */
	int err;
	uint64_t conn, token;
	int64_t sid;
	uint8_t key[IDENTITY_PK_LEN];
	struct svc_peer peer; /* SRV_DATA: the connection's peer (have_key) */
	size_t len;
	uint8_t data[];
};

/* On the owner: run one event, or only release it (cancel: the owner is
 * stopping). */
static void ev_run(struct svc_backend_msg *m, int cancel)
{
	struct svcn_ev *ev = (struct svcn_ev *)m;
	struct svcn_shim *sh = ev->shim;
	struct svc_node *sn;

	if (ev->kind == SVCN_EV_CL_DATA || ev->kind == SVCN_EV_SRV_DATA) {
		atomic_fetch_sub(&sh->q_data, 1);
		atomic_fetch_sub(&sh->q_bytes, ev->len);
	} else {
		atomic_fetch_sub(&sh->q_ctl, 1);
	}
	sn = cancel ? NULL : sh->sn;
	if (sn) {
		sn->st.owner_events++;
		switch (ev->kind) {
		case SVCN_EV_CONNECTED:
			svcn_cl_connected_own(sn, ev->conn, ev->err, ev->have_key ? ev->key : NULL);
			svcn_strm_conn_up(sn, ev->conn, ev->err);
			break;
		case SVCN_EV_OPENED:
			if (!svcn_strm_cl_opened(sn, ev->conn, ev->token, ev->sid, ev->err))
				svcn_cl_opened_own(sn, ev->conn, ev->token, ev->sid, ev->err);
			break;
		case SVCN_EV_CL_DATA:
			if (!svcn_strm_cl_data(sn, ev->conn, ev->sid, ev->data, ev->len, ev->fin))
				svcn_cl_data_own(sn, ev->conn, ev->sid, ev->data, ev->len, ev->fin);
			break;
		case SVCN_EV_CL_SCLOSED:
			svcn_strm_closed(sn, ev->conn, ev->sid, ev->err);
			svcn_cl_sclosed_own(sn, ev->conn, ev->sid, ev->err);
			break;
		case SVCN_EV_CL_CLOSED:
			svcn_strm_conn_closed(sn, ev->conn);
			svcn_cl_closed_own(sn, ev->conn);
			break;
		case SVCN_EV_SRV_DATA:
			if (ev->type == SVC_NODE_ST_STREAM || ev->type == SVC_NODE_ST_WS)
				svcn_strm_srv_data(sn, ev->type, ev->conn, ev->sid,
						   ev->have_key ? &ev->peer : NULL, ev->data,
						   ev->len, ev->fin);
			else
				svcn_srv_data(sn, ev->type, ev->conn, ev->sid,
					      ev->have_key ? &ev->peer : NULL, ev->data, ev->len,
					      ev->fin);
			break;
		case SVCN_EV_SRV_CLOSED:
			svcn_strm_closed(sn, ev->conn, ev->sid, ev->err);
			svcn_srv_closed_own(sn, ev->conn, ev->sid);
			break;
		case SVCN_EV_WRITABLE:
			svcn_strm_writable(sn, ev->conn, ev->sid);
			break;
		}
	}
	free(ev);
}

/* A new event with len bytes of data (data events: NULL when the owner
 * queue is full, or out of memory). */
static struct svcn_ev *ev_new(struct svc_node *sn, int kind, uint64_t conn, int64_t sid,
			      const uint8_t *data, size_t len)
{
	struct svcn_shim *sh = sn->shim;
	int is_data = kind == SVCN_EV_CL_DATA || kind == SVCN_EV_SRV_DATA;
	struct svcn_ev *ev;

	if (is_data && (atomic_load(&sh->q_data) >= svcn_owner_queue(sn) ||
			atomic_load(&sh->q_bytes) + len > SVC_NODE_OWNER_BYTES))
		return NULL;
	ev = calloc(1, sizeof(*ev) + len);
	if (!ev)
		return NULL;
	ev->m.fn = ev_run;
	ev->shim = sh;
	ev->kind = (uint8_t)kind;
	ev->conn = conn;
	ev->sid = sid;
	ev->len = len;
	if (len)
		memcpy(ev->data, data, len);
	if (is_data) {
		atomic_fetch_add(&sh->q_data, 1);
		atomic_fetch_add(&sh->q_bytes, len);
	} else {
		atomic_fetch_add(&sh->q_ctl, 1);
	}
	return ev;
}

/* End of the worker's pass (engine_pass_end): wake the owner once for
 * every event of the pass. The shim reference taken by ev_post keeps sh. */
static void ev_kick(void *arg)
{
	struct svcn_shim *sh = arg;
	struct svc_node *sn = svcn_shim_enter(sh);

	if (sn) {
		svc_backend_kick(sn->backend);
		svcn_shim_leave(sh);
	}
	svcn_shim_put(sh);
}

/* Hand ev to the owner; when the owner is gone (stopping), drop it. The
 * owner is woken at the end of the worker's pass, once for all the events
 * of that receive batch (one wake-up and one context switch, not one per
 * packet); outside a pass, at once. */
static void ev_post(struct svc_node *sn, struct svcn_ev *ev)
{
	struct svcn_shim *sh = sn->shim;
	int r;

	if (svc_backend_post_lazy(sn->backend, &ev->m)) {
		ev_run(&ev->m, 1);
		return;
	}
	/* The owner on this very worker (svc.owner = worker): its turn comes
	 * later in this pass, no wake-up */
	if (svc_backend_on_loop(sn->backend))
		return;
	/* (inside svcn_shim_enter: the fabric's own reference stays) */
	atomic_fetch_add(&sh->refs, 1);
	r = engine_pass_end(ev_kick, sh);
	if (r != 1)
		atomic_fetch_sub(&sh->refs, 1);
	if (r < 0)
		svc_backend_kick(sn->backend);
}

/* A control event (open, close): never refused; lost only to ENOMEM. */
static void ev_ctl(struct svc_node *sn, int kind, uint64_t conn, int64_t sid, int err,
		   uint64_t token)
{
	struct svcn_ev *ev = ev_new(sn, kind, conn, sid, NULL, 0);

	if (!ev) {
		log_warn("svc", "out of memory: a stream event is lost");
		return;
	}
	ev->err = err;
	ev->token = token;
	ev_post(sn, ev);
}

/* Stream bytes (client or server side); refused: reset the stream, and
 * tell the owner the stream is gone (behind the bytes it already has). */
static void ev_data(struct svc_node *sn, int kind, int type, uint64_t conn, int64_t sid,
		    const uint8_t *data, size_t len, int fin)
{
	struct svcn_ev *ev = ev_new(sn, kind, conn, sid, data, len);

	if (!ev) {
		atomic_fetch_add(&sn->shim->q_refused, 1);
		quic_node_stream_reset(sn->quic, conn, sid, SVC_NODE_RST_OWNER_BUSY);
		ev_ctl(sn, kind == SVCN_EV_CL_DATA ? SVCN_EV_CL_SCLOSED : SVCN_EV_SRV_CLOSED, conn,
		       sid, -ENOBUFS, 0);
		return;
	}
	ev->fin = (uint8_t)fin;
	ev->type = type;
	if (kind == SVCN_EV_SRV_DATA)
		/* The peer's key and address are read on the connection's
		 * worker: here. */
		ev->have_key =
		    quic_node_conn_peer(sn->quic, conn, ev->peer.key, &ev->peer.addr) == 0;
	ev_post(sn, ev);
}

static void cl_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct svc_node *sn = svcn_shim_enter(arg);
	struct svcn_ev *ev;

	if (!sn)
		return;
	ev = ev_new(sn, SVCN_EV_CONNECTED, conn, -1, NULL, 0);
	if (ev) {
		ev->err = err;
		if (peer_key) {
			memcpy(ev->key, peer_key, IDENTITY_PK_LEN);
			ev->have_key = 1;
		}
		ev_post(sn, ev);
	} else {
		log_warn("svc", "out of memory: a connection event is lost");
	}
	svcn_shim_leave(arg);
}

static void cl_stream_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	if (!sn)
		return;
	ev_ctl(sn, SVCN_EV_OPENED, conn, sid, err, token);
	svcn_shim_leave(arg);
}

static void cl_stream_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
			   int fin)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	if (!sn)
		return;
	ev_data(sn, SVCN_EV_CL_DATA, 0, conn, sid, data, len, fin);
	svcn_shim_leave(arg);
}

static void cl_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	if (!sn)
		return;
	ev_ctl(sn, SVCN_EV_CL_SCLOSED, conn, sid, err, 0);
	svcn_shim_leave(arg);
}

static void cl_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	(void)info;
	if (!sn)
		return;
	ev_ctl(sn, SVCN_EV_CL_CLOSED, conn, -1, 0, 0);
	svcn_shim_leave(arg);
}

/* Every write of ours reports here once it is in the send buffer: service
 * streams count them (flow control); other streams' are dropped on the
 * owner (one lookup). */
static void any_writable(void *arg, uint64_t conn, int64_t sid)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	if (!sn)
		return;
	ev_ctl(sn, SVCN_EV_WRITABLE, conn, sid, 0, 0);
	svcn_shim_leave(arg);
}

const struct quic_node_handler svcn_cl_handler = {
    .connected = cl_connected,
    .writable = any_writable,
    .stream_opened = cl_stream_opened,
    .stream_data = cl_stream_data,
    .stream_closed = cl_stream_closed,
    .closed = cl_closed,
};

/* Worker side of the provider's streams. */
static void srv_post(void *arg, int type, uint64_t conn, int64_t sid, const uint8_t *d, size_t l,
		     int f)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	if (!sn)
		return;
	ev_data(sn, SVCN_EV_SRV_DATA, type, conn, sid, d, l, f);
	svcn_shim_leave(arg);
}

static void srv_desc_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t l, int f)
{
	srv_post(arg, SVC_NODE_ST_DESC, conn, sid, d, l, f);
}

static void srv_call_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t l, int f)
{
	srv_post(arg, SVC_NODE_ST_CALL, conn, sid, d, l, f);
}

static void srv_http_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t l, int f)
{
	srv_post(arg, SVC_NODE_ST_HTTP, conn, sid, d, l, f);
}

static void srv_stream_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t l,
			    int f)
{
	srv_post(arg, SVC_NODE_ST_STREAM, conn, sid, d, l, f);
}

static void srv_ws_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t l, int f)
{
	srv_post(arg, SVC_NODE_ST_WS, conn, sid, d, l, f);
}

static void srv_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct svc_node *sn = svcn_shim_enter(arg);

	(void)err;
	if (!sn)
		return;
	ev_ctl(sn, SVCN_EV_SRV_CLOSED, conn, sid, err, 0);
	svcn_shim_leave(arg);
}

void svcn_srv_handler(struct quic_node_handler *h, int type)
{
	h->stream_closed = srv_closed;
	h->stream_data = type == SVC_NODE_ST_DESC     ? srv_desc_data
			 : type == SVC_NODE_ST_CALL   ? srv_call_data
			 : type == SVC_NODE_ST_STREAM ? srv_stream_data
			 : type == SVC_NODE_ST_WS     ? srv_ws_data
						      : srv_http_data;
	h->writable = type == SVC_NODE_ST_STREAM || type == SVC_NODE_ST_WS ? any_writable : NULL;
}
