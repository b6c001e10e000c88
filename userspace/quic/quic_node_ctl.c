// SPDX-License-Identifier: MIT
/*
 * quic_node's control API: GET /v1/quic/conns, GET /v1/quic/stats,
 * POST /v1/quic/ping, POST /v1/quic/bench, POST /v1/quic/handshakes (bodies
 * checked by quic_node_ctl_parse, which needs no node; the work is done by
 * the synchronous helpers of quic_node_job.c), weft_quic_* metrics.
 * Handlers run on control threads and reach worker-owned state only
 * through engine_call*.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"
#include "weft/ctl.h"
#include "weft/io.h"
#include "weft/log.h"
#include "weft/relay_wire.h"
#include "weft/util.h"

/* Largest transfer POST /v1/quic/bench accepts: 16 GiB (a bound on how
 * long one control request can keep a worker busy). */
#define QN_BENCH_MAX_BYTES (16ULL << 30)
#define QN_SNAPSHOT_TIMEOUT_MS 1000


/* --------------------------------------------------------- snapshots */

struct qn_snap {
	struct quic_node *qn;
	unsigned int idx;
	json_t *conns; /* conns: array to append to */
	struct quic_ep_stats st;
	uint64_t fwd_out, fwd_in, fwd_drop, app_errors, echo_overruns, bad_types, nconns;
	uint64_t obs_sent, obs_rx, obs_bad, stun_answered, stun_dropped;
	uint64_t path_switches, path_fallbacks, punch_attempts, punch_direct, punch_failed;
	uint64_t punch_probes_tx, punch_probes_rx, punch_acks_tx, punch_acks_rx, punch_bad;
	uint64_t punch_limited, punch_probes_low_ttl, punch_early;
};

static void snap_stats(struct qn_worker *wk, struct qn_snap *sn)
{
	quic_ep_get_stats(wk->ep, &sn->st);
	sn->fwd_out = wk->fwd_out;
	sn->fwd_in = wk->fwd_in;
	sn->fwd_drop = wk->fwd_drop;
	sn->app_errors = wk->app_errors;
	sn->echo_overruns = wk->echo_overruns;
	sn->bad_types = wk->bad_types;
	sn->obs_sent = wk->obs_sent;
	sn->obs_rx = wk->obs_rx;
	sn->obs_bad = wk->obs_bad;
	sn->stun_answered = wk->stun_answered;
	sn->stun_dropped = wk->stun_dropped;
#define C(f) sn->f = wk->f;
	C(path_switches) C(path_fallbacks) C(punch_attempts) C(punch_direct) C(punch_failed)
	C(punch_probes_tx) C(punch_probes_rx) C(punch_acks_tx) C(punch_acks_rx) C(punch_bad)
	C(punch_limited) C(punch_probes_low_ttl) C(punch_early)
#undef C
	sn->nconns = wk->nconns;
}

static void snap_conns(struct qn_worker *wk, struct qn_snap *sn)
{
	struct quic_conn_info in;
	struct qn_conn *c;
	struct io_addr a;
	char key[2 * QUIC_KEY_LEN + 1], addr[64];

	for (c = wk->conns; c; c = c->next) {
		json_t *o;

		if (!c->qc || quic_conn_get_info(c->qc, &in))
			continue;
		if (in.have_peer_key)
			util_hex(key, in.peer_key, QUIC_KEY_LEN);
		else
			key[0] = 0;
		addr[0] = 0;
		if (!io_addr_from_sockaddr(&a, (struct sockaddr *)&in.remote, in.remote_len))
			io_addr_fmt(&a, addr, sizeof(addr));
		o = json_pack("{s:I,s:i,s:s,s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "id",
			      (json_int_t)c->id, "worker", (int)wk->idx, "peer_key", key, "addr",
			      addr, "server", in.is_server, "established", in.established, "rtt_us",
			      (json_int_t)(in.smoothed_rtt_ns / 1000), "min_rtt_us",
			      (json_int_t)(in.min_rtt_ns / 1000), "cwnd", (json_int_t)in.cwnd,
			      "bytes_in_flight", (json_int_t)in.bytes_in_flight, "bytes_in",
			      (json_int_t)in.bytes_rx, "bytes_out", (json_int_t)in.bytes_tx,
			      "streams_open", (json_int_t)in.streams_open, "streams_opened",
			      (json_int_t)in.streams_opened);
		if (o) {
			json_object_set_new(o, "path", qn_path_json(c, &in.remote, in.remote_len));
			json_object_set_new(o, "cipher", json_string(in.cipher));
			/* stream bytes it holds of ours, unsent or unacknowledged,
			 * and since when they have not moved */
			json_object_set_new(o, "unacked_bytes", json_integer((json_int_t)in.unacked));
			json_object_set_new(o, "unacked_still_ms",
					    json_integer((json_int_t)(in.unacked_still_ns / 1000000)));
			json_object_set_new(o, "pmtu", json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}",
				"udp_payload", (json_int_t)in.udp_payload,
				"max", (json_int_t)in.pmtu_max, "probes", (json_int_t)in.pmtu_probes,
				"acked", (json_int_t)in.pmtu_acked, "lost", (json_int_t)in.pmtu_lost,
				"blackholes", (json_int_t)in.pmtu_blackholes));
		}
		json_array_append_new(sn->conns, o);
	}
}

static void snap_fn(struct engine_worker *w, void *arg)
{
	struct qn_snap *sn = arg;
	struct qn_worker *wk = sn->qn->wk[engine_worker_index(w)];

	snap_stats(wk, sn);
	if (sn->conns)
		snap_conns(wk, sn);
}

/* Run on worker i; when the workers are not running nobody else touches
 * the state, so read it here. Returns 0 or -errno. */
static int snapshot(struct quic_node *qn, struct qn_snap *sn)
{
	int rc = engine_call_sync(qn->eng, sn->idx, snap_fn, sn, QN_SNAPSHOT_TIMEOUT_MS);

	if (rc == -ESHUTDOWN) {
		snap_stats(qn->wk[sn->idx], sn);
		if (sn->conns)
			snap_conns(qn->wk[sn->idx], sn);
		rc = 0;
	}
	return rc;
}

/* ------------------------------------------------------------ handlers */

static void h_conns(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct quic_node *qn = arg;
	json_t *arr = json_array();
	unsigned int i;

	for (i = 0; i < qn->nworkers; i++) {
		struct qn_snap sn = {.qn = qn, .idx = i, .conns = arr};

		if (snapshot(qn, &sn)) {
			json_decref(arr);
			ctl_resp_error(resp, 503, "busy", "worker %u did not answer", i);
			return;
		}
	}
	ctl_resp_json(resp, 200, json_pack("{s:o}", "conns", arr));
}

/* Every counter with its Prometheus HELP text. */
#define QN_EP_STATS(X)                                                                             \
	X(rx_datagrams, "UDP datagrams received by the QUIC endpoint.")                            \
	X(tx_datagrams, "UDP datagrams sent by the QUIC endpoint.")                                \
	X(tx_sends, "Send calls (a GSO batch counts once).")                                       \
	X(rx_bytes, "UDP payload bytes received.")                                                 \
	X(tx_bytes, "UDP payload bytes sent.")                                                     \
	X(drop_garbage, "Datagrams dropped: unparsable header, short or unknown packets.")         \
	X(drop_conn_error, "Datagrams a connection rejected (decryption failure and the like).")   \
	X(drop_limit, "Connections refused by the connection limits (CONNECTION_REFUSED sent).")   \
	X(drop_closing, "Datagrams for a closing or draining connection.")                         \
	X(version_negotiations, "Version Negotiation packets sent.")                               \
	X(retries_sent, "Retry packets sent (address validation).")                                \
	X(bad_tokens, "Initials with an invalid or expired token.")                                \
	X(stateless_resets_sent, "Stateless resets sent.")                                         \
	X(conns_accepted, "Connections accepted (server side).")                                   \
	X(conns_dialed, "Connections dialled (client side).")                                      \
	X(conns_established, "Connections whose handshake completed.")                             \
	X(conns_closed, "Connections closed, whatever the reason.")                                \
	X(peer_key_mismatch, "Handshakes refused: the peer's node key was not the one dialled.")   \
	X(bad_cert, "Handshakes refused: invalid peer certificate.")                               \
	X(alpn_mismatch, "Handshakes refused: no common ALPN.")                                    \
	X(idle_timeouts, "Connections closed by the idle timeout.")                                \
	X(send_errors, "Datagrams the socket refused to send.")                                    \
	X(next_keys, "Next 1-RTT keys derived: one per confirmed connection, one per key update.") \
	X(fair_holds, "Flushes whose stream data a fair window held back (docs/QUIC.md).")   \
	X(fair_cpu_bound, "Fair-window epochs with a standing queue in which nothing was held: the node's threads waited for CPUs.")
#define QN_WK_STATS(X)                                                                             \
	X(fwd_out, "Datagrams forwarded to the worker owning their connection.")                   \
	X(fwd_in, "Datagrams received from another worker.")                                       \
	X(fwd_drop, "Datagrams dropped instead of forwarded to their owning worker.")                      \
	X(app_errors, "Stream sends that failed (the stream was dropped).")                                \
	X(echo_overruns, "Echo streams failed: more queued than the echo limit.")                        \
	X(bad_types, "Streams with a malformed or unknown stream type.")                                                \
	X(obs_sent, "Reflexive address observations sent to peers.")                              \
	X(obs_rx, "Reflexive address observations received.")                                      \
	X(obs_bad, "Malformed reflexive address observations.")                                    \
	X(stun_answered, "STUN binding requests answered.")                                        \
	X(stun_dropped, "STUN datagrams not answered (refused or not sent).")                      \
	X(path_switches, "Connections moved between their relayed and a direct path (both ways).") \
	X(path_fallbacks, "Direct paths that stopped answering: back to the relay circuit.")        \
	X(punch_attempts, "Hole punching attempts started or answered.")                           \
	X(punch_direct, "Relayed connections moved to a direct path.")                             \
	X(punch_failed, "Relayed connections whose every punch attempt failed.")                   \
	X(punch_probes_tx, "Punch probes sent.")                                                   \
	X(punch_probes_low_ttl, "Of the punch probes sent: first rounds with quic.punch_probe_ttl.") \
	X(punch_probes_rx, "Punch probes received with a valid token.")                            \
	X(punch_acks_tx, "Punch probe acks sent (one per valid probe).")                           \
	X(punch_acks_rx, "Punch probe acks received.")                                             \
	X(punch_bad, "Punch datagrams or path messages refused (malformed, unknown token).")        \
	X(punch_limited, "Punch attempts not started or not answered: the peer's budget was spent.") \
	X(punch_early, "Punches started at the handshake's end: a relay circuit this node dialled by key.")

static json_t *snap_json(const struct qn_snap *sn)
{
	json_t *o = json_object();

#define J(f, h) json_object_set_new(o, #f, json_integer((json_int_t)sn->st.f));
	QN_EP_STATS(J)
#undef J
#define J(f, h) json_object_set_new(o, #f, json_integer((json_int_t)sn->f));
	QN_WK_STATS(J)
#undef J
	json_object_set_new(o, "conns_active", json_integer((json_int_t)sn->st.conns_active));
	json_object_set_new(o, "fair_rate", json_integer((json_int_t)sn->st.fair_rate));
	json_object_set_new(o, "fair_cpu_wait", json_integer((json_int_t)sn->st.fair_cpu_wait));
	return o;
}

static void snap_add(struct qn_snap *t, const struct qn_snap *s)
{
#define A(f, h) t->st.f += s->st.f;
	QN_EP_STATS(A)
#undef A
#define A(f, h) t->f += s->f;
	QN_WK_STATS(A)
#undef A
	t->st.conns_active += s->st.conns_active;
	if (s->st.fair_rate > t->st.fair_rate)
		t->st.fair_rate = s->st.fair_rate; /* the same rate on every worker, or none */
	if (s->st.fair_cpu_wait > t->st.fair_cpu_wait)
		t->st.fair_cpu_wait = s->st.fair_cpu_wait; /* the group's largest */
}

/* The large write blocks (quic_node_buf.c): reused from the kept ones,
 * allocated afresh, kept now, in use now and at most. */
static void write_bufs_snap(struct quic_node *qn, uint64_t v[5])
{
	pthread_mutex_lock(&qn->buf_mu);
	v[0] = qn->buf_reused;
	v[1] = qn->buf_allocated;
	v[2] = qn->nbuf;
	v[3] = qn->buf_out;
	v[4] = qn->buf_out_max;
	pthread_mutex_unlock(&qn->buf_mu);
}

static json_t *write_bufs_json(struct quic_node *qn)
{
	uint64_t v[5];

	write_bufs_snap(qn, v);
	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "reused", (json_int_t)v[0], "allocated",
			 (json_int_t)v[1], "kept", (json_int_t)v[2], "max_kept",
			 (json_int_t)QN_BUF_CACHE, "in_use", (json_int_t)v[3], "in_use_max",
			 (json_int_t)v[4]);
}

/* What quic.aead = auto measured (ns per 1,420-byte seal by candidate);
 * null when the config named one. */
static json_t *aead_auto_json(const struct quic_node *qn)
{
	struct quic_aead_auto au;
	json_t *o;
	int i;

	if (qn->o.aead != QUIC_AEAD_AUTO)
		return json_null();
	quic_aead_auto(&au);
	o = json_object();
	for (i = 0; o && i < 4; i++)
		if (au.ns[i])
			json_object_set_new(o, quic_aead_name(QUIC_AEAD_GNUTLS + i),
					    json_integer(au.ns[i]));
	return o ? o : json_null();
}

static void h_stats(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct quic_node *qn = arg;
	struct qn_snap tot = {0};
	json_t *ws = json_array(), *w;
	unsigned int i;

	for (i = 0; i < qn->nworkers; i++) {
		struct qn_snap sn = {.qn = qn, .idx = i};

		if (snapshot(qn, &sn))
			continue;
		w = snap_json(&sn);
		json_object_set_new(w, "worker", json_integer(i));
		json_array_append_new(ws, w);
		snap_add(&tot, &sn);
	}
	ctl_resp_json(
	    resp, 200,
	    json_pack("{s:o,s:o,s:I,s:I,s:I,s:o,s:s,s:o}", "workers", ws, "total", snap_json(&tot),
		      "queued_bytes", (json_int_t)atomic_load(&qn->queued), "cmd_full",
		      (json_int_t)atomic_load(&qn->cmd_full), "dial_refetch",
		      (json_int_t)atomic_load(&qn->dial_refetch), "write_bufs", write_bufs_json(qn),
		      "aead", quic_ep_aead(qn->wk[0]->ep), "aead_auto_ns", aead_auto_json(qn)));
}

static void qn_metrics(void *arg, FILE *out)
{
	struct quic_node *qn = arg;
	struct qn_snap sn[ENGINE_MAX_WORKERS];
	int ok[ENGINE_MAX_WORKERS];
	uint64_t bufs[5];
	unsigned int i;

	for (i = 0; i < qn->nworkers; i++) {
		memset(&sn[i], 0, sizeof(sn[i]));
		sn[i].qn = qn;
		sn[i].idx = i;
		ok[i] = snapshot(qn, &sn[i]) == 0;
	}
#define M(f, h)                                                                                    \
	fprintf(out, "# HELP weft_quic_" #f "_total " h "\n# TYPE weft_quic_" #f "_total counter\n"); \
	for (i = 0; i < qn->nworkers; i++)                                                         \
		if (ok[i])                                                                         \
			fprintf(out, "weft_quic_" #f "_total{worker=\"%u\"} %llu\n", i,            \
				(unsigned long long)sn[i].st.f);
	QN_EP_STATS(M)
#undef M
#define M(f, h)                                                                                    \
	fprintf(out, "# HELP weft_quic_" #f "_total " h "\n# TYPE weft_quic_" #f "_total counter\n"); \
	for (i = 0; i < qn->nworkers; i++)                                                         \
		if (ok[i])                                                                         \
			fprintf(out, "weft_quic_" #f "_total{worker=\"%u\"} %llu\n", i,            \
				(unsigned long long)sn[i].f);
	QN_WK_STATS(M)
#undef M
	fprintf(out, "# HELP weft_quic_aead_info What protects 1-RTT AES-GCM packets (impl: "
		     "gnutls, aesni, vaes256, vaes512).\n# TYPE weft_quic_aead_info gauge\n"
		     "weft_quic_aead_info{impl=\"%s\"} 1\n",
		quic_ep_aead(qn->wk[0]->ep));
	fprintf(out, "# HELP weft_quic_conns Open QUIC connections.\n"
		     "# TYPE weft_quic_conns gauge\n");
	for (i = 0; i < qn->nworkers; i++)
		if (ok[i])
			fprintf(out, "weft_quic_conns{worker=\"%u\"} %llu\n", i,
				(unsigned long long)sn[i].st.conns_active);
	fprintf(out, "# HELP weft_quic_fair_rate_bytes The rate fair windows hold backlogged "
		     "connections to, bytes/s (0: none).\n"
		     "# TYPE weft_quic_fair_rate_bytes gauge\n");
	for (i = 0; i < qn->nworkers; i++)
		if (ok[i])
			fprintf(out, "weft_quic_fair_rate_bytes{worker=\"%u\"} %llu\n", i,
				(unsigned long long)sn[i].st.fair_rate);
	fprintf(out, "# HELP weft_quic_fair_cpu_wait_permille The largest share of time (permille) "
		     "the node's workers waited for a CPU, as fair windows last read it; at %u or more "
		     "they hold nothing.\n"
		     "# TYPE weft_quic_fair_cpu_wait_permille gauge\n",
		QUIC_FAIR_CPU_WAIT);
	for (i = 0; i < qn->nworkers; i++)
		if (ok[i])
			fprintf(out, "weft_quic_fair_cpu_wait_permille{worker=\"%u\"} %llu\n", i,
				(unsigned long long)sn[i].st.fair_cpu_wait);
	fprintf(out, "# HELP weft_quic_queued_bytes Stream bytes queued for sending, all connections.\n"
		     "# TYPE weft_quic_queued_bytes gauge\nweft_quic_queued_bytes %llu\n",
		(unsigned long long)atomic_load(&qn->queued));
	write_bufs_snap(qn, bufs);
	fprintf(out, "# HELP weft_quic_write_bufs_total Large write blocks (a content chunk answer): "
		     "reused from the kept ones, or allocated.\n"
		     "# TYPE weft_quic_write_bufs_total counter\n"
		     "weft_quic_write_bufs_total{how=\"reused\"} %llu\n"
		     "weft_quic_write_bufs_total{how=\"allocated\"} %llu\n",
		(unsigned long long)bufs[0], (unsigned long long)bufs[1]);
	fprintf(out, "# HELP weft_quic_dial_refetch_total Dials by key that failed on the record "
		     "they had and refetched it.\n"
		     "# TYPE weft_quic_dial_refetch_total counter\nweft_quic_dial_refetch_total %llu\n",
		(unsigned long long)atomic_load(&qn->dial_refetch));
}

/* A member that is there but of another type (JSON_TRUE: a boolean). */
static int qn_wrong_type(json_t *body, const char *key, int type)
{
	json_t *v = json_object_get(body, key);

	if (!v)
		return 0;
	if (type == JSON_TRUE)
		return !json_is_boolean(v);
	return (int)json_typeof(v) != type;
}

int quic_node_ctl_parse(int route, json_t *body, struct qn_ctl_args *a, struct ctl_resp *resp)
{
	/* Members each route reads (bit 1 << route), and their types. */
	enum { P = 1 << QN_CTL_PING, B = 1 << QN_CTL_BENCH, H = 1 << QN_CTL_HANDSHAKES };
	static const struct {
		const char *key;
		int type, routes;
	} fields[] = {
	    {"peer", JSON_STRING, P | B | H},
	    {"addr", JSON_STRING, P | B | H},
	    {"timeout_ms", JSON_INTEGER, P | B | H},
	    {"keep", JSON_TRUE, P},
	    {"bytes", JSON_INTEGER, B},
	    {"seed", JSON_INTEGER, B},
	    {"mode", JSON_STRING, B},
	    {"verify", JSON_TRUE, B},
	    {"count", JSON_INTEGER, H},
	    {"window", JSON_INTEGER, H},
	    {"echo", JSON_TRUE, H},
	};
	json_t *jv = json_object_get(body, "verify");
	json_int_t to = json_integer_value(json_object_get(body, "timeout_ms"));
	json_int_t bytes = json_integer_value(json_object_get(body, "bytes"));
	json_int_t count = json_integer_value(json_object_get(body, "count"));
	json_t *jw = json_object_get(body, "window");
	json_int_t window = jw ? json_integer_value(jw) : 1;
	const char *mode = json_string_value(json_object_get(body, "mode"));

	memset(a, 0, sizeof(*a));
	a->target = json_string_value(json_object_get(body, "peer"));
	if (!a->target)
		a->target = json_string_value(json_object_get(body, "addr"));
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (((fields[i].routes >> route) & 1) &&
		    qn_wrong_type(body, fields[i].key, fields[i].type)) {
			ctl_resp_error(resp, 400, "bad_request", "\"%s\" must be %s", fields[i].key,
				       fields[i].type == JSON_STRING	? "a string"
				       : fields[i].type == JSON_INTEGER ? "an integer"
									: "true or false");
			return -EINVAL;
		}
	if (route == QN_CTL_PING) {
		if (!a->target) {
			ctl_resp_error(resp, 400, "bad_request",
				       "want {\"peer\":\"NODEKEY@ADDR\"} or {\"addr\":\"ADDR\"}");
			return -EINVAL;
		}
		a->timeout_ms = to < 0 || to > 60000 ? 0 : (unsigned int)to;
		a->keep = json_is_true(json_object_get(body, "keep"));
		return 0;
	}
	if (route == QN_CTL_BENCH) {
		if (!a->target || bytes < 0 || (uint64_t)bytes > QN_BENCH_MAX_BYTES) {
			ctl_resp_error(
			    resp, 400, "bad_request",
			    "want {\"peer\"|\"addr\", \"bytes\": N (<= 16 GiB), "
			    "\"mode\": \"sink\"|\"echo\"|\"discard\", \"verify\": bool}");
			return -EINVAL;
		}
		if (!mode || !strcmp(mode, "sink"))
			a->stype = QUIC_NODE_ST_SINK;
		else if (!strcmp(mode, "echo"))
			a->stype = QUIC_NODE_ST_ECHO;
		else if (!strcmp(mode, "discard"))
			a->stype = QUIC_NODE_ST_DISCARD;
		else {
			ctl_resp_error(resp, 400, "bad_mode", "mode is sink, echo or discard");
			return -EINVAL;
		}
		a->bytes = (uint64_t)bytes;
		a->seed = (uint64_t)json_integer_value(json_object_get(body, "seed"));
		a->verify = jv ? json_is_true(jv) : 1;
		if (a->stype == QUIC_NODE_ST_DISCARD)
			a->verify = 0;
		a->timeout_ms = to <= 0 || to > 600000 ? 0 : (unsigned int)to;
		return 0;
	}
	if (route == QN_CTL_HANDSHAKES) {
		if (!a->target || count <= 0 || count > QUIC_NODE_HS_MAX || window <= 0 ||
		    window > QUIC_NODE_HS_WINDOW_MAX) {
			ctl_resp_error(resp, 400, "bad_request",
				       "want {\"peer\"|\"addr\", \"count\": 1..100000, "
				       "\"window\": 1..256}");
			return -EINVAL;
		}
		a->count = (unsigned int)count;
		a->window = (unsigned int)window;
		a->echo = json_is_true(json_object_get(body, "echo"));
		a->timeout_ms = to <= 0 || to > 600000 ? 0 : (unsigned int)to;
		return 0;
	}
	ctl_resp_error(resp, 404, "not_found", "no such request");
	return -EINVAL;
}

static void resp_dial_error(struct ctl_resp *resp, int err, const char *target,
			    uint64_t close_code, unsigned int relay_status)
{
	switch (err) {
	case -ECONNREFUSED:
		if (!relay_status)
			goto refused;
		ctl_resp_error(resp, 502, "relay_refused",
			       "relay_refused: %s (the relay of %s refused the circuit)",
			       relay_status_name(relay_status), target);
		break;
	case -ENOLINK:
		ctl_resp_error(resp, 502, "relay_circuit_ended",
			       "relay_circuit_ended: %s (the relay ended the circuit to %s)",
			       relay_end_name((unsigned int)(close_code & 0xff)), target);
		break;
	case -EINVAL:
		ctl_resp_error(resp, 400, "bad_target",
			       "cannot parse \"%s\": want NODEKEY@ADDR[:PORT] or ADDR[:PORT]",
			       target);
		break;
	case -EKEYREJECTED:
		ctl_resp_error(resp, 502, "peer_key_mismatch", "%s presented a different node key",
			       target);
		break;
	case -ETIMEDOUT:
		ctl_resp_error(resp, 504, "timeout", "no answer from %s", target);
		break;
	case -EPROTO:
		ctl_resp_error(resp, 502, "handshake_failed",
			       "TLS handshake with %s failed (certificate or ALPN)", target);
		break;
	case -ECONNRESET:
	refused:
		ctl_resp_error(resp, 502, "refused", "%s refused or reset the connection", target);
		break;
	case -EIO:
		ctl_resp_error(resp, 502, "echo_mismatch", "%s echoed different bytes", target);
		break;
	case -ENOENT:
		ctl_resp_error(resp, 404, "not_found", "no node record for %s in the DHT", target);
		break;
	case -EHOSTUNREACH:
		ctl_resp_error(resp, 502, "unreachable",
			       "no address of %s answered (its node record lists none, or every "
			       "dial failed)", target);
		break;
	case -ENETUNREACH:
		ctl_resp_error(resp, 503, "no_nodes",
			       "the routing table is empty (bootstrap first): %s cannot be resolved",
			       target);
		break;
	default:
		ctl_resp_errno(resp, err, "quic");
	}
}

static void h_ping(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct quic_node *qn = arg;
	struct quic_node_ping_result r;
	struct qn_ctl_args a;
	char key[2 * QUIC_KEY_LEN + 1];
	int err;

	if (quic_node_ctl_parse(QN_CTL_PING, req->json, &a, resp))
		return;
	err = quic_node_ping2(qn, a.target, a.timeout_ms, a.keep, &r);
	if (err) {
		resp_dial_error(resp, err, a.target, r.close_code, r.relay_status);
		return;
	}
	util_hex(key, r.peer_key, QUIC_KEY_LEN);
	ctl_resp_json(resp, 200,
		      json_pack("{s:s,s:I,s:I,s:I,s:i,s:I,s:I,s:I}", "peer_key", key, "rtt_us",
				(json_int_t)r.rtt_us, "handshake_us", (json_int_t)r.handshake_us,
				"srtt_us", (json_int_t)r.srtt_us, "worker", (int)r.worker,
				"resolve_us", (json_int_t)r.resolve_us, "first_byte_us",
				(json_int_t)r.first_byte_us, "conn", (json_int_t)r.conn));
}

static void h_bench(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct quic_node *qn = arg;
	struct quic_node_bench_result r;
	struct qn_ctl_args a;
	char h1[65], h2[65];
	double secs;
	int err;

	if (quic_node_ctl_parse(QN_CTL_BENCH, req->json, &a, resp))
		return;
	err = quic_node_bench(qn, a.target, a.stype, a.bytes, a.seed, a.verify, a.timeout_ms, &r);
	if (err) {
		resp_dial_error(resp, err, a.target, r.close_code, r.relay_status);
		return;
	}
	util_hex(h1, r.sent_hash, 32);
	util_hex(h2, r.peer_hash, 32);
	secs = r.elapsed_us ? (double)r.elapsed_us / 1e6 : 1e-6;
	ctl_resp_json(
	    resp, 200,
	    json_pack(
		"{s:I,s:I,s:I,s:I,s:I,s:f,s:s,s:s,s:b,s:b,s:o}", "bytes", (json_int_t)r.bytes_sent,
		"bytes_back", (json_int_t)r.bytes_back, "peer_count", (json_int_t)r.peer_count,
		"elapsed_us", (json_int_t)r.elapsed_us, "handshake_us", (json_int_t)r.handshake_us,
		"mbit_s", (double)r.bytes_sent * 8 / secs / 1e6, "sent_hash", a.verify ? h1 : "",
		"peer_hash", a.verify ? h2 : "", "verified", a.verify, "ok", r.hash_ok, "pmtu",
		json_pack("{s:I,s:I,s:I,s:I}", "udp_payload", (json_int_t)r.udp_payload, "probes",
			  (json_int_t)r.pmtu_probes, "acked", (json_int_t)r.pmtu_acked, "lost",
			  (json_int_t)r.pmtu_lost)));
}

static void h_handshakes(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct quic_node *qn = arg;
	struct quic_node_hs_result r;
	struct qn_ctl_args a;
	int err;

	if (quic_node_ctl_parse(QN_CTL_HANDSHAKES, req->json, &a, resp))
		return;
	err = quic_node_handshakes(qn, a.target, a.count, a.window, a.echo, a.timeout_ms, &r);
	if (err) {
		resp_dial_error(resp, err, a.target, 0, 0);
		return;
	}
	ctl_resp_json(resp, 200,
		      json_pack("{s:I,s:I,s:I,s:I,s:f}", "count", (json_int_t)a.count, "done",
				(json_int_t)r.done, "elapsed_us", (json_int_t)r.elapsed_us,
				"mean_handshake_us", (json_int_t)r.mean_us, "per_s",
				r.elapsed_us ? (double)r.done * 1e6 / (double)r.elapsed_us : 0.0));
}

int qn_ctl_register(struct quic_node *qn, struct ctl *ctl)
{
	int rc = 0;

	rc |= ctl_route(ctl, "GET", "/v1/quic/conns", h_conns, qn);
	rc |= ctl_route(ctl, "GET", "/v1/quic/stats", h_stats, qn);
	rc |= ctl_route(ctl, "POST", "/v1/quic/ping", h_ping, qn);
	rc |= ctl_route(ctl, "POST", "/v1/quic/bench", h_bench, qn);
	rc |= ctl_route(ctl, "POST", "/v1/quic/handshakes", h_handshakes, qn);
	rc |= ctl_metrics(ctl, qn_metrics, qn);
	return rc ? -ENOSPC : 0;
}

