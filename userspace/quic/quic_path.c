// SPDX-License-Identifier: MIT
/*
 * Hole punching glue (docs/CONNECTIVITY.md "Direct paths"): runs the
 * protocol core of include/weft/path.h on each relayed connection, on the
 * worker that owns it. Coordination messages travel on a stream of type
 * QUIC_NODE_ST_PATH; probes and acks are datagrams on the QUIC port routed
 * to the owning worker by their routing byte; the chosen path is set on
 * the QUIC connection (quic_conn_set_direct / quic_conn_add_alias), so
 * ngtcp2 keeps one remote address for the connection's lifetime.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"
#include "weft/log.h"

#define QP_CHECK_MS 250 /* fallback check while a connection is direct */

struct qn_path {
	struct path_conn pc;
	int64_t sid; /* path stream, -1 until opened / accepted */
	uint8_t rbuf[PATH_MSG_MAX];
	size_t rlen;
	/* what the worker counters already hold of pc's */
	uint64_t c_attempts, c_switches, c_fallbacks, c_ptx, c_plow, c_prx, c_atx, c_arx, c_bad, c_lim;
	int c_direct, c_failed;
};

struct qp_ctx {
	struct qn_worker *wk;
	struct qn_conn *c;
};

static int qp_send_msg(void *arg, const uint8_t *msg, size_t len)
{
	struct qp_ctx *x = arg;
	struct qn_path *p = x->c->path;
	struct qn_stream *s = p->sid >= 0 ? qn_stream_get(x->c, p->sid) : NULL;

	if (!s) {
		if (p->sid >= 0 ||
		    qn_stream_open_now(x->wk, x->c, QUIC_NODE_ST_PATH, &s))
			return -ENOTCONN;
		s->internal = 1;
		p->sid = s->sid;
	}
	return qn_stream_queue(x->wk, x->c, s, msg, len, 0, 0, NULL);
}

static int qp_send_udp(void *arg, const struct io_addr *to, const uint8_t *buf, size_t len,
		       uint8_t ttl)
{
	struct qp_ctx *x = arg;

	if (!x->wk->w)
		return -ENOTCONN;
	return engine_send_ttl(x->wk->w, to, NULL, buf, len, ttl);
}

static unsigned int qp_cands(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat)
{
	struct qp_ctx *x = arg;
	struct quic_node *qn = x->wk->qn;

	*nat = 0;
	return qn->o.path_cands ? qn->o.path_cands(qn->o.path_cands_arg, out, max, nat) : 0;
}

static int to_sa(const struct io_addr *a, struct sockaddr_storage *ss, socklen_t *len)
{
	int l = io_addr_to_sockaddr(a, a->family, ss);

	if (l <= 0)
		return -EINVAL;
	*len = (socklen_t)l;
	return 0;
}

static void qp_use(void *arg, const struct io_addr *direct)
{
	struct qp_ctx *x = arg;
	struct quic_node *qn = x->wk->qn;
	struct sockaddr_storage ss;
	socklen_t len;
	char b[64];

	if (!x->c->qc)
		return;
	if (!direct) {
		quic_conn_set_direct(x->c->qc, NULL, 0);
		log_info("quic", "conn %llx back on its relayed path",
			 (unsigned long long)x->c->id);
		return;
	}
	if (to_sa(direct, &ss, &len))
		return;
	quic_conn_set_direct(x->c->qc, (struct sockaddr *)&ss, len);
	/* The address answered a probe carrying a secret only the peer knows:
	 * it is the peer's, as a handshake would have proven. */
	if (qn->o.on_validated)
		qn->o.on_validated(qn->o.validated_arg, (struct sockaddr *)&ss, len);
	log_info("quic", "conn %llx direct at %s", (unsigned long long)x->c->id,
		 log_addr(io_addr_fmt(direct, b, sizeof(b)), b, sizeof(b)));
}

static void qp_alias(void *arg, const struct io_addr *from)
{
	struct qp_ctx *x = arg;
	struct sockaddr_storage ss;
	socklen_t len;

	if (x->c->qc && !to_sa(from, &ss, &len))
		quic_conn_add_alias(x->c->qc, (struct sockaddr *)&ss, len);
}

/* The per-peer budget (struct path_budget, shared by the workers). */
static int qp_allow(void *arg)
{
	struct qp_ctx *x = arg;
	struct quic_node *qn = x->wk->qn;
	struct quic_conn_info info;
	int rc;

	if (!x->c->qc || quic_conn_get_info(x->c->qc, &info) || !info.have_peer_key)
		return -EPERM;
	pthread_mutex_lock(&qn->budget_mu);
	rc = path_budget_take(qn->budget, info.peer_key, qn_now_ns(qn));
	pthread_mutex_unlock(&qn->budget_mu);
	return rc;
}

static void qp_io(struct path_io *io, struct qp_ctx *x)
{
	io->arg = x;
	io->send_msg = qp_send_msg;
	io->send_udp = qp_send_udp;
	io->cands = qp_cands;
	io->use = qp_use;
	io->alias = qp_alias;
	io->allow = qp_allow;
}

/* Move pc's counters into the worker's (metrics survive the connection). */
static void qp_count(struct qn_worker *wk, struct qn_conn *c)
{
	struct qn_path *p = c->path;
	const struct path_conn *pc = &p->pc;

	wk->punch_attempts += pc->attempts_started - p->c_attempts;
	wk->path_switches += pc->switches - p->c_switches;
	wk->path_fallbacks += pc->fallbacks - p->c_fallbacks;
	wk->punch_probes_tx += pc->probes_tx - p->c_ptx;
	wk->punch_probes_low_ttl += pc->probes_low_ttl - p->c_plow;
	wk->punch_probes_rx += pc->probes_rx - p->c_prx;
	wk->punch_acks_tx += pc->acks_tx - p->c_atx;
	wk->punch_acks_rx += pc->acks_rx - p->c_arx;
	wk->punch_bad += pc->bad_rx - p->c_bad;
	wk->punch_limited += pc->limited - p->c_lim;
	p->c_lim = pc->limited;
	p->c_attempts = pc->attempts_started;
	p->c_switches = pc->switches;
	p->c_fallbacks = pc->fallbacks;
	p->c_ptx = pc->probes_tx;
	p->c_plow = pc->probes_low_ttl;
	p->c_prx = pc->probes_rx;
	p->c_atx = pc->acks_tx;
	p->c_arx = pc->acks_rx;
	p->c_bad = pc->bad_rx;
	if (pc->state == PATH_DIRECT && !p->c_direct) {
		p->c_direct = 1;
		wk->punch_direct++;
	}
	if (pc->state == PATH_FAILED && !p->c_failed) {
		p->c_failed = 1;
		wk->punch_failed++;
		log_info("quic", "conn %llx: hole punching failed after %u attempts (nat %s, peer %s)",
			 (unsigned long long)c->id, pc->attempt, conn_nat_name(pc->mine.nat),
			 conn_nat_name(pc->peer.nat));
	}
}

/* Run every path's due timers and the fallback check; re-arm. */
static void qp_run(struct qn_worker *wk)
{
	uint64_t now, next = UINT64_MAX, t;
	struct qn_conn *c;
	struct path_io io;
	struct qp_ctx x = { .wk = wk };

	if (!wk->w)
		return;
	now = qn_now_ns(wk->qn);
	qp_io(&io, &x);
	for (c = wk->paths; c; c = c->pnext) {
		struct qn_path *p = c->path;

		if (!p || !c->qc)
			continue;
		x.c = c;
		t = path_tick(&p->pc, now, &io);
		if (p->pc.state == PATH_DIRECT) {
			struct quic_path_stats st;

			quic_conn_path_stats(c->qc, &st);
			if (st.unanswered_ns && now > st.unanswered_ns &&
			    now - st.unanswered_ns > (uint64_t)p->pc.lim.fallback_ms * 1000000ULL) {
				path_fallback(&p->pc, &io);
				t = path_tick(&p->pc, now, &io); /* a re-punch starts now */
			} else
				t = now + QP_CHECK_MS * 1000000ULL;
		}
		qp_count(wk, c);
		if (t < next)
			next = t;
	}
	qn_kick(wk); /* messages queued on streams go out this pass */
	if (next == UINT64_MAX)
		return;
	engine_timer_add_us(wk->w, &wk->path_timer, next > now ? (next - now + 999) / 1000 : 0);
}

static void qp_timer_fn(struct engine_worker *w, void *arg)
{
	struct qn_worker *wk = arg;

	wk->w = w;
	qp_run(wk);
}

void qn_path_init_worker(struct qn_worker *wk)
{
	engine_timer_init(&wk->path_timer, qp_timer_fn, wk);
}

void qn_path_stop_worker(struct qn_worker *wk)
{
	if (wk->w)
		engine_timer_cancel(wk->w, &wk->path_timer);
}

static struct qn_path *qp_get(struct qn_worker *wk, struct qn_conn *c, int initiator)
{
	struct qn_path *p = c->path;

	if (p)
		return p->pc.initiator == initiator ? p : NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->sid = -1;
	path_init(&p->pc, initiator, (uint8_t)wk->idx, &wk->qn->o.path);
	c->path = p;
	c->pprev = NULL;
	c->pnext = wk->paths;
	if (wk->paths)
		wk->paths->pprev = c;
	wk->paths = c;
	return p;
}

/* c runs over a relay circuit: the dialler starts punching (once). */
static void qp_start(struct qn_worker *wk, struct qn_conn *c, const char *why)
{
	struct qn_path *p;
	struct path_io io;
	struct qp_ctx x = { .wk = wk, .c = c };

	c->relayed = 1;
	if (wk->qn->o.punch_off || !c->dialed || c->path || !c->qc || !wk->w)
		return;
	p = qp_get(wk, c, 1);
	if (!p)
		return;
	qp_io(&io, &x);
	log_debug("quic", "conn %llx relayed (%s): punching", (unsigned long long)c->id, why);
	path_start(&p->pc, qn_now_ns(wk->qn), &io);
	qp_run(wk);
}

void qn_path_circuit_note(struct quic_node *qn, const struct sockaddr_storage *ss)
{
	struct io_addr a;

	if (io_addr_from_sockaddr(&a, (const struct sockaddr *)ss, sizeof(*ss)))
		return;
	pthread_mutex_lock(&qn->budget_mu);
	qn->circ[qn->circ_next].a = a;
	qn->circ[qn->circ_next].t_ns = qn_now_ns(qn);
	qn->circ_next = (qn->circ_next + 1) % QN_CIRC_NOTES;
	pthread_mutex_unlock(&qn->budget_mu);
}

void qn_path_connected(struct qn_worker *wk, struct qn_conn *c)
{
	struct quic_node *qn = wk->qn;
	struct quic_conn_info ci;
	struct io_addr remote;
	uint64_t now = qn_now_ns(qn);
	int hit = 0;

	if (!c->dialed || c->path || !c->qc || quic_conn_get_info(c->qc, &ci) ||
	    io_addr_from_sockaddr(&remote, (const struct sockaddr *)&ci.remote, ci.remote_len))
		return;
	pthread_mutex_lock(&qn->budget_mu);
	for (unsigned int i = 0; i < QN_CIRC_NOTES && !hit; i++)
		if (qn->circ[i].t_ns && now - qn->circ[i].t_ns < QN_CIRC_NOTE_MS * 1000000ULL &&
		    io_addr_equal(&qn->circ[i].a, &remote)) {
			qn->circ[i].t_ns = 0; /* one connection per circuit */
			hit = 1;
		}
	pthread_mutex_unlock(&qn->budget_mu);
	if (!hit)
		return;
	qp_start(wk, c, "a circuit we dialled");
	if (c->path)
		wk->punch_early++;
}

void qn_path_observed(struct qn_worker *wk, struct qn_conn *c, const struct quic_conn_info *ci,
		      const struct io_addr *seen)
{
	struct io_addr remote;

	if (io_addr_from_sockaddr(&remote, (const struct sockaddr *)&ci->remote, ci->remote_len) ||
	    !io_addr_equal(&remote, seen))
		return;
	qp_start(wk, c, "observed address");
}

void qn_path_stream_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			 const uint8_t *data, size_t len)
{
	struct qn_path *p = qp_get(wk, c, !s->incoming);
	struct path_io io;
	struct qp_ctx x = { .wk = wk, .c = c };

	if (!p || (p->sid >= 0 && p->sid != s->sid)) {
		/* One path stream per connection, opened by the dialler. */
		wk->punch_bad++;
		qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
		return;
	}
	p->sid = s->sid;
	c->relayed = 1;
	qp_io(&io, &x);
	while (len) {
		size_t n = sizeof(p->rbuf) - p->rlen, used;
		enum path_msg_type type;
		struct path_offer o;
		uint8_t idx;
		int rc;

		if (n > len)
			n = len;
		memcpy(p->rbuf + p->rlen, data, n);
		p->rlen += n;
		data += n;
		len -= n;
		while ((rc = path_msg_parse(p->rbuf, p->rlen, &used, &type, &o, &idx)) == 0) {
			if (path_on_msg(&p->pc, type, &o, idx, qn_now_ns(wk->qn), &io))
				wk->punch_bad++;
			memmove(p->rbuf, p->rbuf + used, p->rlen - used);
			p->rlen -= used;
		}
		if (rc != -EAGAIN) {
			wk->punch_bad++;
			qn_stream_fail(wk, c, s, QN_ERR_BAD_TYPE);
			return;
		}
	}
	qp_run(wk);
}

int qn_path_route(const struct quic_node *qn, const uint8_t *buf, size_t len)
{
	if (qn->o.punch_off || !path_probe_is(buf, len))
		return -1;
	return (int)(buf[20] % qn->nworkers);
}

void qn_path_probe(struct qn_worker *wk, const uint8_t *buf, size_t len, const struct io_addr *src)
{
	struct path_probe pr;
	struct qn_conn *c;
	struct path_io io;
	struct qp_ctx x = { .wk = wk };

	if (path_probe_parse(buf, len, &pr)) {
		wk->punch_bad++;
		return;
	}
	qp_io(&io, &x);
	/* Linear in the worker's connections with hole punching state (not
	 * in all of them: a forged probe's cost is the punching ones, few);
	 * only paths with an attempt running can match. */
	for (c = wk->paths; c; c = c->pnext) {
		if (!c->path || !c->qc || !path_probe_mine(&c->path->pc, &pr))
			continue;
		x.c = c;
		path_on_probe(&c->path->pc, &pr, src, qn_now_ns(wk->qn), &io);
		qp_run(wk);
		return;
	}
	wk->punch_bad++;
}

void qn_path_free(struct qn_worker *wk, struct qn_conn *c)
{
	if (!c->path)
		return;
	if (c->pprev)
		c->pprev->pnext = c->pnext;
	else if (wk->paths == c)
		wk->paths = c->pnext;
	if (c->pnext)
		c->pnext->pprev = c->pprev;
	c->pnext = c->pprev = NULL;
	free(c->path);
	c->path = NULL;
}

json_t *qn_path_json(struct qn_conn *c, const struct sockaddr_storage *remote, socklen_t rlen)
{
	const struct qn_path *p = c->path;
	struct io_addr a;
	char addr[64], d[64];
	json_t *o;

	addr[0] = 0;
	if (!io_addr_from_sockaddr(&a, (const struct sockaddr *)remote, rlen))
		io_addr_fmt(&a, addr, sizeof(addr));
	if (!c->relayed && !p)
		return json_pack("{s:s,s:s,s:n}", "state", "direct", "direct", addr, "relay");
	if (!p)
		return json_pack("{s:s,s:s,s:n}", "state", "relayed", "relay", addr, "direct");
	d[0] = 0;
	if (p->pc.state == PATH_DIRECT)
		io_addr_fmt(&p->pc.direct, d, sizeof(d));
	o = json_pack("{s:s,s:s,s:i,s:s,s:s,s:I,s:I}", "state", path_state_name(p->pc.state),
		      "relay", addr, "attempt", (int)p->pc.attempt, "nat",
		      conn_nat_name(p->pc.mine.nat), "peer_nat", conn_nat_name(p->pc.peer.nat),
		      "relayed_rtt_us", (json_int_t)(p->pc.rtt_ns / 1000), "fallbacks",
		      (json_int_t)p->pc.fallbacks);
	json_object_set_new(o, "limited", json_integer((json_int_t)p->pc.limited));
	json_object_set_new(o, "repunches", json_integer((json_int_t)p->pc.repunches));
	json_object_set_new(o, "upgrades", json_integer((json_int_t)p->pc.upgrades));
	if (p->pc.state == PATH_DIRECT) {
		json_object_set_new(o, "direct", json_string(d));
		json_object_set_new(o, "to_direct_ms", json_integer((json_int_t)p->pc.to_direct_ms));
		/* the dialler: from its connection's start (first Initial) */
		if (c->dialed && c->t_start_ns && p->pc.t_direct_ns >= c->t_start_ns)
			json_object_set_new(
			    o, "since_connect_ms",
			    json_integer((json_int_t)((p->pc.t_direct_ns - c->t_start_ns) / 1000000)));
		json_object_set_new(o, "direct_attempt", json_integer((json_int_t)p->pc.direct_attempt));
		json_object_set_new(o, "validated_here", json_boolean(p->pc.validated_here));
	} else {
		json_object_set_new(o, "direct", json_null());
	}
	if (c->qc) {
		struct quic_path_stats st;

		quic_conn_path_stats(c->qc, &st);
		json_object_set_new(o, "direct_rx", json_integer((json_int_t)st.direct_rx));
		json_object_set_new(o, "direct_tx", json_integer((json_int_t)st.direct_tx));
	}
	return o;
}
