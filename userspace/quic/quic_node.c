// SPDX-License-Identifier: MIT
/*
 * QUIC on the packet engine, the hub of the node binding: the node's
 * lifecycle, one endpoint per engine worker with its send hook and expiry
 * timer, the port handler (worker routing by connection id, STUN and
 * hole-punching probes on the same port), and the endpoint's callbacks,
 * dispatched to the parts. The parts never call back here: the
 * application API (quic_node_ops.c), control routes (quic_node_ctl.c),
 * resolve, ping and bench (quic_node_job.c), peer commands (quic_node_peer.c), connection records
 * (quic_node_conn.c), built-in stream types (quic_node_builtin.c), hole
 * punching (quic_path.c), streams (quic_node_stream.c), the context they
 * share (quic_node_base.c) and command blocks (quic_node_buf.c). See
 * docs/QUIC.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "quic/quic_node_int.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/util.h"

/* ----------------------------------------------------------- tx / timer */

static void addr_to_ss(const struct io_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	int l = io_addr_to_sockaddr(a, a->family, ss);

	*len = l > 0 ? (socklen_t)l : 0;
}

static int is_unspec(const struct io_addr *a)
{
	static const uint8_t zero[16];

	return memcmp(a->addr, zero, a->family == AF_INET ? 4 : 16) == 0;
}

static int qn_send(void *arg, const uint8_t *buf, size_t len, size_t gso, const struct sockaddr *to,
		   socklen_t tolen, const struct sockaddr *local)
{
	struct qn_worker *wk = arg;
	struct io_addr dst, src, *psrc = NULL;

	if (!wk->w)
		return -ENOTCONN;
	if (io_addr_from_sockaddr(&dst, to, tolen))
		return -EAFNOSUPPORT;
	if (local && !io_addr_from_sockaddr(&src, local, sizeof(struct sockaddr_storage)) &&
	    src.family == dst.family && !is_unspec(&src))
		psrc = &src;
	if (!gso)
		gso = len;
	/* A burst of several packets goes out in place (the engine sends it
	 * as one UDP_SEGMENT message on uring, frames of one batch on
	 * AF_XDP); a lone packet is staged with the pass's other datagrams. */
	if (len > gso)
		return engine_send_burst(wk->w, &dst, psrc, buf, len, gso) > 0 ? 0 : -EIO;
	return engine_send(wk->w, &dst, psrc, buf, len);
}

/* The calling worker's network namespace (every worker is in weftd's). */
static int qn_route_mtu(void *arg, const struct sockaddr *remote, socklen_t len)
{
	struct quic_node *qn = arg;
	struct io_addr dst;

	if (io_addr_from_sockaddr(&dst, remote, len))
		return 0;
	return engine_route_mtu(qn->eng, &dst);
}

/* Fair windows stand down while the node's threads wait for CPUs
 * (quic_fair_set_cpu_wait): every QN_CPU_WAIT_NS the worker reads its
 * own run delay (the kernel's time it spent runnable, not running) and
 * tells the group the share of the time since, smoothed over about four
 * readings. Only while fair windows are on, and not on a simulated clock
 * (the simulated network's nodes share one real thread). A kernel
 * without schedstat (CONFIG_SCHED_INFO) tells nothing: the queue alone
 * decides, as before. */
static void qn_cpu_wait(struct qn_worker *wk, uint64_t now)
{
	char buf[96];
	unsigned long long run, delay;
	uint64_t t, p;
	ssize_t n;

	/* the cheap tests first: this runs on every timer pass */
	if (wk->sched_fd == -2 || !quic_fair_on(wk->qn->fair) ||
	    engine_clock_is_own(wk->qn->eng))
		return;
	t = util_now_ns();
	if (t - wk->sched_at < QN_CPU_WAIT_NS)
		return;
	if (wk->sched_fd == -1) {
		wk->sched_fd = open("/proc/thread-self/schedstat", O_RDONLY | O_CLOEXEC);
		if (wk->sched_fd < 0) {
			wk->sched_fd = -2;
			return;
		}
	}
	n = pread(wk->sched_fd, buf, sizeof(buf) - 1, 0);
	buf[n > 0 ? n : 0] = '\0';
	if (n <= 0 || sscanf(buf, "%llu %llu", &run, &delay) != 2) {
		close(wk->sched_fd);
		wk->sched_fd = -2;
		return;
	}
	if (wk->sched_at && delay >= wk->sched_delay) {
		p = (delay - wk->sched_delay) * 1000 / (t - wk->sched_at);
		wk->cpu_wait = (unsigned int)((3 * (uint64_t)wk->cpu_wait + (p > 1000 ? 1000 : p)) / 4);
		quic_fair_set_cpu_wait(wk->qn->fair, wk->idx, wk->cpu_wait, now);
	}
	wk->sched_delay = delay;
	wk->sched_at = t;
}

static void qn_timer_fn(struct engine_worker *w, void *arg)
{
	struct qn_worker *wk = arg;
	uint64_t now, exp;

	wk->w = w;
	now = qn_wk_now(wk);
	qn_cpu_wait(wk, now);
	exp = quic_ep_run_expiry(wk->ep, now);
	if (exp == UINT64_MAX)
		return;
	/* Deadlines under 2 ms (pacing, ACK delay, a flush) are kept to the
	 * microsecond: rounded up to the 1 ms wheel they would cap a
	 * connection at one write pass per tick. Rounded up, never early. */
	engine_timer_add_us(w, &wk->timer, exp > now ? (exp - now + 999) / 1000 : 0);
}

/* ------------------------------------------------------- core callbacks */

static void cb_conn(void *arg, struct quic_conn *qc, const uint8_t *peer_key)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);

	if (wk->qn->o.on_validated) {
		struct quic_conn_info ci;

		if (!quic_conn_get_info(qc, &ci))
			wk->qn->o.on_validated(wk->qn->o.validated_arg, (struct sockaddr *)&ci.remote,
					     ci.remote_len);
	}
	if (!c) {
		c = qn_conn_new(wk, qn_conn_id_new(wk->qn, wk->idx));
		if (!c) {
			quic_conn_close(qc, 0x1, "out of memory");
			return;
		}
		c->qc = qc;
		quic_conn_set_user(qc, c);
		qn_observed_send(wk, c);
		return;
	}
	qn_observed_send(wk, c);
	qn_path_connected(wk, c);
	c->t_hs_ns = qn_now_ns(wk->qn);
	c->reported = 1;
	if (c->h.connected)
		c->h.connected(c->arg, c->id, 0, peer_key);
}

static void cb_stream_open(void *arg, struct quic_conn *qc, int64_t sid)
{
	struct qn_conn *c = quic_conn_get_user(qc);

	if (c && !qn_stream_get(c, sid) && !qn_stream_add(c, sid, 1))
		quic_stream_reset(qc, sid, 0x1);
}

static void cb_stream_data(void *arg, struct quic_conn *qc, int64_t sid, const uint8_t *data,
			   size_t len, int fin)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	const struct quic_node_handler *h;
	struct qn_stream *s;
	void *harg;

	if (!c)
		return;
	s = qn_stream_get(c, sid);
	if (!s && !(s = qn_stream_add(c, sid, 1))) {
		quic_stream_reset(qc, sid, 0x1);
		return;
	}
	if (s->dead)
		return;
	while (!s->typed && len) {
		uint64_t t;
		int r;

		s->tbuf[s->tlen++] = *data++;
		len--;
		r = quic_varint_decode(s->tbuf, s->tlen, &t);
		if (r == -EAGAIN && s->tlen < sizeof(s->tbuf))
			continue;
		if (r < 0) {
			wk->bad_types++;
			qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
			return;
		}
		s->typed = 1;
		s->stype = t;
		if (qn_type_lookup(wk->qn, s)) {
			wk->bad_types++;
			qn_stream_fail(wk, c, s, QN_ERR_UNKNOWN_TYPE);
			return;
		}
	}
	if (!s->typed) {
		if (fin)
			qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return;
	}
	if (s->stype == QUIC_NODE_ST_PATH) {
		qn_path_stream_data(wk, c, s, data, len);
		return;
	}
	if (s->incoming && !s->h) {
		qn_builtin_data(wk, c, s, data, len, fin);
		return;
	}
	h = qn_stream_handler(c, s, &harg);
	if (h && h->stream_data && (len || fin))
		h->stream_data(harg, c->id, sid, data, len, fin);
}

static void cb_stream_close(void *arg, struct quic_conn *qc, int64_t sid, int has_code,
			    uint64_t code)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	const struct quic_node_handler *h;
	struct qn_stream *s;
	void *harg;

	if (!c || !(s = qn_stream_get(c, sid)))
		return;
	h = qn_stream_handler(c, s, &harg);
	if (h && h->stream_closed && s->typed)
		h->stream_closed(harg, c->id, sid, has_code ? -ECONNRESET : 0);
	qn_stream_free(wk->qn, c, s);
}

static void cb_stream_writable(void *arg, struct quic_conn *qc, int64_t sid)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);
	struct qn_stream *s;

	if (c && (s = qn_stream_get(c, sid)) && !s->dead)
		qn_stream_pump(wk, c, s);
}

static void cb_closed(void *arg, struct quic_conn *qc, const struct quic_close_info *info)
{
	struct qn_worker *wk = arg;
	struct qn_conn *c = quic_conn_get_user(qc);

	quic_conn_set_user(qc, NULL);
	if (c)
		qn_conn_report_closed(wk, c, info);
}

/* ------------------------------------------------------------------- rx */

struct qn_fwd {
	struct quic_node *qn;
	struct io_addr src, dst;
	size_t len;
	uint8_t data[];
};

static void input(struct qn_worker *wk, const uint8_t *buf, size_t len, const struct io_addr *src,
		  const struct io_addr *dst)
{
	if (path_probe_is(buf, len)) {
		qn_path_probe(wk, buf, len, src);
		return;
	}
	if (memcmp(src, &wk->rx_src, sizeof(*src))) {
		wk->rx_src = *src;
		addr_to_ss(src, &wk->rx_rs, &wk->rx_rl);
	}
	if (memcmp(dst, &wk->rx_dst, sizeof(*dst))) {
		wk->rx_dst = *dst;
		addr_to_ss(dst, &wk->rx_ls, &wk->rx_ll);
	}
	if (!wk->rx_rl)
		return;
	/* First packet of a loop pass: a fresh clock; the rest of the batch
	 * shares it. Every fresh read on the worker goes through
	 * qn_wk_now(), so ngtcp2 never sees time go backwards. */
	if (!wk->w || engine_worker_now_us(wk->w) != wk->rx_ts_pass_us) {
		qn_wk_now(wk);
		wk->rx_ts_pass_us = wk->w ? engine_worker_now_us(wk->w) : 0;
	}
	quic_ep_input(wk->ep, buf, len, wk->rx_ll ? (struct sockaddr *)&wk->rx_ls : NULL,
		      wk->rx_ll, (struct sockaddr *)&wk->rx_rs, wk->rx_rl, wk->rx_ts_ns);
	qn_kick(wk);
}

static void fwd_run(struct engine_worker *w, void *arg)
{
	struct qn_fwd *f = arg;
	struct quic_node *qn = f->qn;
	struct qn_worker *wk;

	if (!qn_cmd_enter(qn)) {
		wk = qn->wk[engine_worker_index(w)];
		wk->w = w;
		wk->fwd_in++;
		input(wk, f->data, f->len, &f->src, &f->dst);
	}
	free(f);
	qn_put(qn);
}

static void qn_rx(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct quic_node *qn = arg;
	struct qn_worker *wk = qn->wk[engine_worker_index(w)];
	int owner;

	wk->w = w;
	owner = qn_path_route(qn, pkt->data, pkt->len);
	if (owner < 0 && pkt->len && !(pkt->data[0] & 0xc0) && qn->o.on_stun) {
		/* Not QUIC (the fixed bit 0x40 is always set, RFC 9000 17):
		 * STUN shares the port (RFC 7983's demultiplexing). */
		uint8_t out[CONN_STUN_MAX_REPLY];
		int n = qn->o.on_stun(qn->o.stun_arg, pkt->data, pkt->len, &pkt->src, out, sizeof(out));

		if (n > 0 && !engine_send(w, &pkt->src, &pkt->dst, out, (size_t)n))
			wk->stun_answered++;
		else
			wk->stun_dropped++;
		return;
	}
	if (owner < 0)
		owner = quic_cid_route(pkt->data, pkt->len, qn->nworkers);
	if (owner >= 0 && (unsigned int)owner != wk->idx) {
		/* Another worker owns this connection id: hand it over. */
		struct qn_fwd *f = malloc(sizeof(*f) + pkt->len);

		if (!f) {
			wk->fwd_drop++;
			return;
		}
		f->qn = qn;
		f->src = pkt->src;
		f->dst = pkt->dst;
		f->len = pkt->len;
		memcpy(f->data, pkt->data, pkt->len);
		if (qn_call(qn, (unsigned int)owner, fwd_run, f)) {
			wk->fwd_drop++;
			free(f);
			return;
		}
		wk->fwd_out++;
		return;
	}
	input(wk, pkt->data, pkt->len, &pkt->src, &pkt->dst);
}

/* ------------------------------------------------------------ lifecycle */

static void worker_free(struct qn_worker *wk)
{
	if (!wk)
		return;
	/* Workers are stopped: the wheel is ours to touch. */
	if (wk->w)
		engine_timer_cancel(wk->w, &wk->timer);
	qn_path_stop_worker(wk);
	if (wk->sched_fd >= 0)
		close(wk->sched_fd);
	quic_ep_free(wk->ep); /* closed() for every connection still open */
	while (wk->conns) {
		struct quic_close_info info = {.reason = QUIC_CLOSE_ENDPOINT};

		qn_conn_report_closed(wk, wk->conns, &info);
	}
	qn_conn_table_free(wk);
	free(wk->scratch);
	if (wk->genblk)
		qn_genblk_unref(wk->genblk); /* the streams' references went with the endpoint */
	free(wk);
}

int quic_node_fair_windows(struct quic_node *qn, int on)
{
	if (!qn)
		return -EINVAL;
	if (on >= 0)
		quic_fair_set_on(qn->fair, on);
	return quic_fair_on(qn->fair);
}

void quic_node_free(struct quic_node *qn)
{
	unsigned int i;

	if (!qn)
		return;
	engine_stop(qn->eng);
	for (i = 0; i < qn->nworkers; i++)
		worker_free(qn->wk[i]);
	/* Commands still queued run in engine_free(): they see dead and only
	 * release what they carry; the last reference frees the node. */
	atomic_store(&qn->dead, 1);
	qn_put(qn);
}

int quic_node_new(struct quic_node **out, const struct quic_node_opts *opts)
{
	struct quic_ep_opts eo;
	struct quic_node *qn;
	unsigned int i;
	int rc;

	*out = NULL;
	if (!opts || !opts->eng || !opts->id)
		return -EINVAL;
	qn = calloc(1, sizeof(*qn));
	if (!qn)
		return -ENOMEM;
	atomic_init(&qn->refs, 1);
	atomic_init(&qn->serial, 1);
	qn->eng = opts->eng;
	qn->port = opts->port ? opts->port : QUIC_NODE_DEF_PORT;
	qn->max_queued = opts->max_queued ? opts->max_queued : QUIC_NODE_DEF_MAX_QUEUED;
	qn->o = *opts;
	memcpy(qn->pk, opts->id->pk, QUIC_KEY_LEN);
	pthread_mutex_init(&qn->budget_mu, NULL);
	pthread_mutex_init(&qn->buf_mu, NULL);
	rc = path_budget_new(&qn->budget, opts->punch_peer_attempts, opts->punch_peer_window_s, 0);
	if (rc)
		goto fail;
	qn->nworkers = engine_workers(opts->eng);
	qn->idle_timeout_ms = opts->idle_timeout_ms;
	if (!qn->nworkers || qn->nworkers > 256) {
		rc = -EINVAL;
		goto fail;
	}

	memset(&eo, 0, sizeof(eo));
	eo.node_pk = opts->id->pk;
	eo.node_sk = opts->id->sk;
	eo.server = 1;
	eo.max_conns = opts->max_conns;
	eo.max_conns_per_addr = opts->max_conns_per_addr;
	eo.max_streams_bidi = opts->max_streams;
	eo.max_streams_uni = opts->max_streams;
	eo.test_hold_credit = opts->test_hold_credit;
	eo.retry_rate = opts->retry_rate;
	eo.idle_timeout_ms = qn->idle_timeout_ms;
	eo.handshake_timeout_ms = opts->handshake_timeout_ms;
	eo.keepalive_ms = opts->keepalive_ms;
	eo.cid_route_count = qn->nworkers;
	/* Jumbo datagrams on loopback only where every datagram of that size
	 * arrives whole (io_uring with UDP_GRO), and peers told what we take. */
	eo.max_rx_udp_payload = engine_rx_max_payload(qn->eng);
	if (eo.max_rx_udp_payload >= QUIC_LO_UDP_PAYLOAD)
		eo.lo_udp_payload = QUIC_LO_UDP_PAYLOAD;
	/* And off loopback where the route takes jumbo frames, probed. */
	eo.route_mtu = qn_route_mtu;
	eo.route_mtu_arg = qn;
	/* Fair windows across the workers' endpoints (docs/QUIC.md): the
	 * group always, so that they can be switched on while running. */
	rc = quic_fair_new(&qn->fair, qn->nworkers);
	if (rc)
		goto fail;
	quic_fair_set_on(qn->fair, opts->fair_windows);
	eo.fair = qn->fair;
	eo.aead = opts->aead;
	eo.send = qn_send;
	eo.cb.on_conn = cb_conn;
	eo.cb.on_stream_open = cb_stream_open;
	eo.cb.on_stream_data = cb_stream_data;
	eo.cb.on_stream_close = cb_stream_close;
	eo.cb.on_stream_writable = cb_stream_writable;
	eo.cb.on_closed = cb_closed;
	for (i = 0; i < qn->nworkers; i++) {
		struct qn_worker *wk = calloc(1, sizeof(*wk));

		if (!wk) {
			rc = -ENOMEM;
			goto fail;
		}
		qn->wk[i] = wk;
		wk->qn = qn;
		wk->idx = i;
		wk->sched_fd = -1;
		engine_timer_init(&wk->timer, qn_timer_fn, wk);
		qn_path_init_worker(wk);
		wk->scratch = malloc(QN_GEN_CHUNK);
		if (!wk->scratch) {
			rc = -ENOMEM;
			goto fail;
		}
		eo.cid_route_index = i;
		eo.fair_slot = i;
		eo.send_arg = wk;
		eo.cb_arg = wk;
		rc = quic_ep_new(&wk->ep, &eo);
		if (rc)
			goto fail;
	}
	rc = engine_register(qn->eng, qn->port, qn_rx, qn);
	if (rc)
		goto fail;
	/* Routes cannot be taken back: a full route table costs the control
	 * endpoints, not the transport. */
	if (opts->ctl && (rc = qn_ctl_register(qn, opts->ctl)))
		log_warn("quic", "control routes: %s", strerror(-rc));
	log_info("quic",
		 "QUIC on udp %u: %u endpoint(s), routed by connection id; 1-RTT AES-GCM on %s",
		 qn->port, qn->nworkers, quic_ep_aead(qn->wk[0]->ep));
	if (opts->aead == QUIC_AEAD_AUTO) {
		struct quic_aead_auto au;
		char fig[128];
		size_t n = 0;

		quic_aead_auto(&au);
		fig[0] = 0;
		for (i = 0; i < 4; i++)
			if (au.ns[i] && n < sizeof(fig))
				n += (size_t)snprintf(
				    fig + n, sizeof(fig) - n, "%s%s %u ns", n ? ", " : "",
				    quic_aead_name(QUIC_AEAD_GNUTLS + i), au.ns[i]);
		log_info("quic", "quic.aead = auto chose %s%s (CPU per 1,420-byte seal: %s)",
			 quic_aead_name(au.pick),
			 au.sanitized ? ", the widest width: a sanitizer build" : "", fig);
	}
	*out = qn;
	return 0;
fail:
	for (i = 0; i < qn->nworkers; i++) {
		if (qn->wk[i]) {
			quic_ep_free(qn->wk[i]->ep);
			free(qn->wk[i]->scratch);
			free(qn->wk[i]);
		}
	}
	path_budget_free(qn->budget);
	quic_fair_free(qn->fair);
	pthread_mutex_destroy(&qn->budget_mu);
	free(qn);
	return rc;
}
