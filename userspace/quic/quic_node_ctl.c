// SPDX-License-Identifier: MIT
/*
 * quic_node's synchronous helpers (ping, bench) and control API:
 * GET /v1/quic/conns, GET /v1/quic/stats, POST /v1/quic/ping,
 * POST /v1/quic/bench, POST /v1/quic/handshakes (bodies checked by
 * quic_node_ctl_parse, which needs no node), weft_quic_* metrics. Handlers run
 * on control threads and reach worker-owned state only through
 * engine_call*.
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
#define QN_BENCH_DEF_TIMEOUT_MS 60000
#define QN_SNAPSHOT_TIMEOUT_MS 1000

/* ------------------------------------------------------------------ jobs */

/* The jobs of one windowed quic_node_handshakes() call: each completion is
 * counted here, so the caller waits on one condition for any of them. Held
 * by the caller and by every job of the group (the last one frees it). */
struct qn_hs_group {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic int refs;
	uint64_t ndone; /* under mu */
};

static void grp_put(struct qn_hs_group *g)
{
	if (atomic_fetch_sub(&g->refs, 1) != 1)
		return;
	pthread_cond_destroy(&g->cv);
	pthread_mutex_destroy(&g->mu);
	free(g);
}

struct qn_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic int refs;
	int done, err; /* under mu */
	uint64_t close_code; /* -ENOLINK: the relay's close code (under mu) */
	struct quic_node *qn;
	int bench;
	int keep;    /* ping: leave the connection open (it ends by idle timeout) */
	int hs_only; /* handshake bench: done at connected(), then close */
	struct qn_hs_group *grp; /* handshake bench: told of the completion */
	struct timespec deadline; /* handshake bench, CLOCK_MONOTONIC */
	uint64_t conn;
	uint64_t t_start, t_hs, t_send, t_end;
	uint8_t peer_key[QUIC_KEY_LEN];
	uint64_t srtt_ns;
	/* ping */
	uint8_t probe[32], echo[32];
	size_t echo_len;
	/* bench */
	uint64_t stype, bytes, seed;
	int verify;
	crypto_generichash_state *hs_sent, *hs_back;
	uint64_t back;
	uint8_t reply[40];
	size_t reply_len;
};

static void job_put(struct qn_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	if (j->hs_sent)
		sodium_free(j->hs_sent);
	if (j->hs_back)
		sodium_free(j->hs_back);
	if (j->grp)
		grp_put(j->grp);
	free(j);
}

/* A mutex and a condition variable whose waits use CLOCK_MONOTONIC. */
static void mu_cv_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_mutex_init(mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static struct qn_job *job_new(struct quic_node *qn)
{
	struct qn_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	mu_cv_init(&j->mu, &j->cv);
	atomic_init(&j->refs, 2); /* waiter + connection */
	j->qn = qn;
	return j;
}

static void job_done(struct qn_job *j, int err)
{
	int first = 0;

	pthread_mutex_lock(&j->mu);
	if (!j->done) {
		j->done = first = 1;
		j->err = err;
		j->t_end = qn_now_ns(j->qn);
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	if (first && j->grp) {
		pthread_mutex_lock(&j->grp->mu);
		j->grp->ndone++;
		pthread_cond_broadcast(&j->grp->cv);
		pthread_mutex_unlock(&j->grp->mu);
	}
}

static struct qn_conn *job_conn(struct qn_job *j, uint64_t conn, struct qn_worker **wk)
{
	*wk = j->qn->wk[conn & 0xff];
	return qn_conn_find(*wk, conn);
}

static void job_finish_ok(struct qn_job *j, uint64_t conn, int err);

static void job_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct qn_job *j = arg;
	struct qn_worker *wk;
	struct qn_stream *s;
	struct qn_conn *c;
	int rc;

	if (err) {
		job_done(j, err);
		return;
	}
	j->t_hs = qn_now_ns(j->qn);
	log_debug("quic", "conn %llx: handshake done after %llu ms", (unsigned long long)conn,
		  (unsigned long long)((j->t_hs - j->t_start) / 1000000));
	memcpy(j->peer_key, peer_key, QUIC_KEY_LEN);
	if (j->hs_only) {
		job_finish_ok(j, conn, 0);
		return;
	}
	c = job_conn(j, conn, &wk);
	if (!c)
		return;
	rc = qn_stream_open_now(wk, c, j->bench ? j->stype : QUIC_NODE_ST_ECHO, &s);
	if (rc) {
		job_done(j, rc);
		quic_conn_close(c->qc, 0, NULL);
		return;
	}
	j->t_send = qn_now_ns(j->qn);
	if (j->bench)
		qn_stream_gen_start(wk, c, s, j->bytes, j->seed, j->verify ? j->hs_sent : NULL);
	else
		qn_stream_queue(wk, c, s, j->probe, sizeof(j->probe), 1, 0, NULL);
}

static void job_finish_ok(struct qn_job *j, uint64_t conn, int err)
{
	struct quic_conn_info info;
	struct qn_worker *wk;
	struct qn_conn *c = job_conn(j, conn, &wk);

	if (c && c->qc && !quic_conn_get_info(c->qc, &info))
		j->srtt_ns = info.smoothed_rtt_ns;
	job_done(j, err);
	if (c && c->qc && !j->keep)
		quic_conn_close(c->qc, 0, "done");
}

static void job_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct qn_job *j = arg;
	size_t n;

	if (!j->bench) {
		n = len < sizeof(j->echo) - j->echo_len ? len : sizeof(j->echo) - j->echo_len;
		memcpy(j->echo + j->echo_len, data, n);
		j->echo_len += n;
		if (fin)
			job_finish_ok(j, conn,
				      j->echo_len == sizeof(j->probe) &&
					      !memcmp(j->echo, j->probe, sizeof(j->probe))
					  ? 0
					  : -EIO);
		return;
	}
	if (j->stype == QUIC_NODE_ST_ECHO) {
		j->back += len;
		if (j->hs_back && len)
			crypto_generichash_update(j->hs_back, data, len);
	} else {
		n = len < sizeof(j->reply) - j->reply_len ? len : sizeof(j->reply) - j->reply_len;
		memcpy(j->reply + j->reply_len, data, n);
		j->reply_len += n;
	}
	if (fin)
		job_finish_ok(j, conn, 0);
}

static void job_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct qn_job *j = arg;

	/* -ENOLINK: closed() follows at once with the relay's reason. */
	if (err && err != -ENOLINK)
		job_done(j, err);
}

static void job_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct qn_job *j = arg;
	int err = qn_close_errno(info);

	if (err == -ENOLINK) {
		pthread_mutex_lock(&j->mu);
		if (!j->done)
			j->close_code = info->error_code;
		pthread_mutex_unlock(&j->mu);
	}
	job_done(j, err ? err : -ECONNABORTED);
	job_put(j);
}

static const struct quic_node_handler job_handler = {
    .connected = job_connected,
    .stream_data = job_data,
    .stream_closed = job_stream_closed,
    .closed = job_closed,
};

/* Dial and wait; returns the job's error, or -ETIMEDOUT (the dial is then
 * closed and the job freed by the connection's closed()). */
/* Start j's dial to target; its deadline is timeout_ms from now. */
static int job_start(struct quic_node *qn, struct qn_job *j, const char *target,
		     unsigned int timeout_ms)
{
	struct timespec *dl = &j->deadline;
	int rc;

	j->t_start = qn_now_ns(qn);
	rc = quic_node_connect(qn, target, &job_handler, j, &j->conn);
	if (rc) {
		atomic_fetch_sub(&j->refs, 1); /* no connection will hold it */
		return rc;
	}
	clock_gettime(CLOCK_MONOTONIC, dl);
	dl->tv_sec += timeout_ms / 1000;
	dl->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl->tv_nsec >= 1000000000L) {
		dl->tv_sec++;
		dl->tv_nsec -= 1000000000L;
	}
	return 0;
}

static int job_run(struct quic_node *qn, struct qn_job *j, const char *target,
		   unsigned int timeout_ms)
{
	int rc, err;

	rc = job_start(qn, j, target, timeout_ms);
	if (rc)
		return rc;
	pthread_mutex_lock(&j->mu);
	while (!j->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&j->cv, &j->mu, &j->deadline);
	err = j->done ? j->err : -ETIMEDOUT;
	pthread_mutex_unlock(&j->mu);
	if (err == -ETIMEDOUT)
		quic_node_close(qn, j->conn, 0);
	return err;
}

int quic_node_ping(struct quic_node *qn, const char *target, unsigned int timeout_ms,
		   struct quic_node_ping_result *res)
{
	return quic_node_ping2(qn, target, timeout_ms, 0, res);
}

/* "KEY@ADDR:PORT" (IPv6 in brackets) into out. */
static int target_str(const char *key, const struct sockaddr_storage *ss, char *out)
{
	char ip[INET6_ADDRSTRLEN];
	const void *a = ss->ss_family == AF_INET
			    ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
			    : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
	unsigned int port = ntohs(ss->ss_family == AF_INET
				      ? ((const struct sockaddr_in *)ss)->sin_port
				      : ((const struct sockaddr_in6 *)ss)->sin6_port);

	if (!inet_ntop(ss->ss_family, a, ip, sizeof(ip)))
		return -EINVAL;
	snprintf(out, QUIC_NODE_TARGET_MAX, ss->ss_family == AF_INET6 ? "%s@[%s]:%u" : "%s@%s:%u",
		 key, ip, port);
	return 0;
}

int quic_node_can_resolve(const struct quic_node *qn)
{
	return qn && qn->o.resolve;
}

int quic_node_resolve(struct quic_node *qn, const char *target,
		      char out[][QUIC_NODE_TARGET_MAX], unsigned int max)
{
	return quic_node_resolve_within(qn, target, out, max, 0, NULL);
}

/* Milliseconds left until end_ns (0: none); UINT32_MAX without a deadline. */
static unsigned int ms_left(struct quic_node *qn, uint64_t end_ns)
{
	uint64_t now = qn_now_ns(qn);

	if (!end_ns)
		return UINT32_MAX;
	return now < end_ns ? (unsigned int)((end_ns - now + 999999) / 1000000) : 0;
}

int quic_node_resolve_within(struct quic_node *qn, const char *target,
			     char out[][QUIC_NODE_TARGET_MAX], unsigned int max,
			     unsigned int timeout_ms, unsigned int *relay_status)
{
	struct sockaddr_storage ss[QUIC_NODE_RESOLVE_MAX];
	uint64_t end_ns = timeout_ms ? qn_now_ns(qn) + (uint64_t)timeout_ms * 1000000ULL : 0;
	uint8_t key[QUIC_KEY_LEN];
	unsigned int nrelays = 0, st = 0;
	int n, err;

	if (relay_status)
		*relay_status = 0;
	if (!qn || !target || !max)
		return -EINVAL;
	if (strlen(target) != 2 * QUIC_KEY_LEN || util_unhex(key, QUIC_KEY_LEN, target)) {
		if (strlen(target) >= QUIC_NODE_TARGET_MAX)
			return -EINVAL;
		snprintf(out[0], QUIC_NODE_TARGET_MAX, "%s", target);
		return 1;
	}
	if (!qn->o.resolve)
		return -EINVAL;
	if (max > QUIC_NODE_RESOLVE_MAX)
		max = QUIC_NODE_RESOLVE_MAX;
	log_debug("quic", "dial %.16s...: resolving", target);
	n = qn->o.resolve(qn->o.resolve_arg, key, ss, max, &nrelays, timeout_ms);
	log_debug("quic", "dial %.16s...: record: %d addresses, %u relays (%s)", target, n,
		  nrelays, n < 0 ? strerror(-n) : "ok");
	if (n < 0)
		return n;
	if (nrelays && qn->o.relay) {
		/* The peer found itself unreachable and holds a reservation:
		 * its circuit first, no packet to its direct addresses before
		 * it. Such a packet, reaching a Linux masquerade router for
		 * its own address:port before its host sent anything there,
		 * leaves a conntrack entry (30 s) that later makes the
		 * router remap the host's port towards us, which defeats
		 * hole punching (docs/CONNECTIVITY.md "Direct paths"). Hole
		 * punching over the circuit finds a direct path within
		 * milliseconds where one exists. The direct addresses get
		 * one handshake each (QUIC_NODE_DIRECT_MS for all) only when
		 * no relay gives a circuit; all within the deadline. */
		unsigned int each = n ? QUIC_NODE_DIRECT_MS / (unsigned int)n : 0, left;
		struct sockaddr_storage rs;

		left = ms_left(qn, end_ns);
		if (!left)
			return -ETIMEDOUT;
		err = qn->o.relay(qn->o.relay_arg, key, &rs, left == UINT32_MAX ? 0 : left, &st);
		log_debug("quic", "dial %.16s...: circuit: %s", target, err ? strerror(-err) : "bound");
		if (!err) {
			qn_path_circuit_note(qn, &rs);
			return target_str(target, &rs, out[0]) ? -EINVAL : 1;
		}
		for (int i = 0; i < n; i++) {
			struct quic_node_hs_result hr;
			unsigned int t = each < 500 ? 500 : each;

			left = ms_left(qn, end_ns);
			if (!left)
				break;
			if (target_str(target, &ss[i], out[0]))
				return -EINVAL;
			if (quic_node_handshakes(qn, out[0], 1, 1, 0, t < left ? t : left, &hr) == 0)
				return 1;
		}
		if (err == -ECONNREFUSED && relay_status)
			*relay_status = st;
		if (err != -ECONNREFUSED && !ms_left(qn, end_ns))
			return -ETIMEDOUT;
		return err == -ECONNREFUSED || err == -ETIMEDOUT ? err : -EHOSTUNREACH;
	}
	if (n == 0)
		return -EHOSTUNREACH;
	for (int i = 0; i < n; i++)
		if (target_str(target, &ss[i], out[i]))
			return -EINVAL;
	return n;
}

static int ping_one(struct quic_node *qn, const char *target, unsigned int timeout_ms, int keep,
		    uint64_t t0, struct quic_node_ping_result *res);

int quic_node_ping2(struct quic_node *qn, const char *target, unsigned int timeout_ms, int keep,
		    struct quic_node_ping_result *res)
{
	char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	unsigned int each;
	uint64_t t0;
	int n, err = -EHOSTUNREACH;

	if (!qn || !target || !res)
		return -EINVAL;
	res->close_code = 0;
	t0 = qn_now_ns(qn);
	n = quic_node_resolve_within(qn, target, t, QUIC_NODE_RESOLVE_MAX, 0, &res->relay_status);
	if (n < 0)
		return n;
	res->resolve_us = (qn_now_ns(qn) - t0) / 1000;
	if (n == 1 && !strcmp(t[0], target)) {
		res->resolve_us = 0;
		return ping_one(qn, target, timeout_ms, keep, t0, res);
	}
	timeout_ms = timeout_ms ? timeout_ms : QUIC_NODE_PING_TIMEOUT_MS;
	each = timeout_ms / (unsigned int)n < 1000 ? 1000 : timeout_ms / (unsigned int)n;
	for (int i = 0; i < n; i++) {
		err = ping_one(qn, t[i], each, keep, t0, res);
		if (!err || err == -EKEYREJECTED || err == -ENOLINK)
			return err;
	}
	return -EHOSTUNREACH; /* no address of the record answered */
}

static int ping_one(struct quic_node *qn, const char *target, unsigned int timeout_ms, int keep,
		    uint64_t t0, struct quic_node_ping_result *res)
{
	struct qn_job *j;
	int err;

	if (!qn || !target || !res)
		return -EINVAL;
	j = job_new(qn);
	if (!j)
		return -ENOMEM;
	j->keep = keep;
	randombytes_buf(j->probe, sizeof(j->probe));
	err = job_run(qn, j, target, timeout_ms ? timeout_ms : QUIC_NODE_PING_TIMEOUT_MS);
	res->close_code = err == -ENOLINK ? j->close_code : 0;
	if (!err) {
		memcpy(res->peer_key, j->peer_key, QUIC_KEY_LEN);
		res->handshake_us = (j->t_hs - j->t_start) / 1000;
		res->rtt_us = (j->t_end - j->t_send) / 1000;
		res->srtt_us = j->srtt_ns / 1000;
		res->first_byte_us = (j->t_end - t0) / 1000;
		res->conn = j->conn;
		res->worker = (unsigned int)(j->conn & 0xff);
	}
	job_put(j);
	return err;
}

int quic_node_bench(struct quic_node *qn, const char *target, uint64_t stype, uint64_t bytes,
		    uint64_t seed, int verify, unsigned int timeout_ms,
		    struct quic_node_bench_result *res)
{
	struct qn_job *j;
	int err;

	if (!qn || !target || !res ||
	    (stype != QUIC_NODE_ST_ECHO && stype != QUIC_NODE_ST_SINK &&
	     stype != QUIC_NODE_ST_DISCARD))
		return -EINVAL;
	/* A bare key: the record's first address. */
	char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];

	memset(res, 0, sizeof(*res));
	err = quic_node_resolve_within(qn, target, t, QUIC_NODE_RESOLVE_MAX, 0, &res->relay_status);
	if (err < 0)
		return err;
	target = t[0];
	j = job_new(qn);
	if (!j)
		return -ENOMEM;
	j->bench = 1;
	j->stype = stype;
	j->bytes = bytes;
	j->seed = seed;
	j->verify = verify;
	if (verify) {
		j->hs_sent = sodium_malloc(sizeof(*j->hs_sent));
		j->hs_back = sodium_malloc(sizeof(*j->hs_back));
		if (!j->hs_sent || !j->hs_back) {
			atomic_store(&j->refs, 1);
			job_put(j);
			return -ENOMEM;
		}
		crypto_generichash_init(j->hs_sent, NULL, 0, 32);
		crypto_generichash_init(j->hs_back, NULL, 0, 32);
	}
	err = job_run(qn, j, target, timeout_ms ? timeout_ms : QN_BENCH_DEF_TIMEOUT_MS);
	memset(res, 0, sizeof(*res));
	res->close_code = err == -ENOLINK ? j->close_code : 0;
	if (!err) {
		res->bytes_sent = bytes;
		res->handshake_us = (j->t_hs - j->t_start) / 1000;
		res->elapsed_us = (j->t_end - j->t_send) / 1000;
		res->bytes_back = j->back;
		if (verify)
			crypto_generichash_final(j->hs_sent, res->sent_hash, 32);
		if (stype == QUIC_NODE_ST_ECHO) {
			res->peer_count = j->back;
			if (verify)
				crypto_generichash_final(j->hs_back, res->peer_hash, 32);
		} else if (j->reply_len >= 8) {
			for (int i = 0; i < 8; i++)
				res->peer_count = res->peer_count << 8 | j->reply[i];
			if (j->reply_len == 40)
				memcpy(res->peer_hash, j->reply + 8, 32);
		}
		res->hash_ok =
		    res->peer_count == bytes && (!verify || stype == QUIC_NODE_ST_DISCARD ||
						 !memcmp(res->sent_hash, res->peer_hash, 32));
	}
	job_put(j);
	return err;
}

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Reap the finished (or overdue: closed, -ETIMEDOUT) jobs of fl[window];
 * returns how many left, the first error in *err. */
static unsigned int hs_reap(struct quic_node *qn, struct qn_job **fl, unsigned int window,
			    struct quic_node_hs_result *res, uint64_t *sum, int *err)
{
	struct timespec now;
	unsigned int i, n = 0;
	int done, e;

	clock_gettime(CLOCK_MONOTONIC, &now);
	for (i = 0; i < window; i++) {
		struct qn_job *j = fl[i];

		if (!j)
			continue;
		pthread_mutex_lock(&j->mu);
		done = j->done;
		e = j->err;
		pthread_mutex_unlock(&j->mu);
		if (!done && ts_before(&now, &j->deadline))
			continue;
		if (!done) {
			e = -ETIMEDOUT;
			quic_node_close(qn, j->conn, 0);
		}
		if (!e) {
			res->done++;
			*sum += j->t_hs - j->t_start;
		} else if (!*err) {
			*err = e;
		}
		job_put(j);
		fl[i] = NULL;
		n++;
	}
	return n;
}

int quic_node_handshakes(struct quic_node *qn, const char *target, unsigned int count,
			 unsigned int window, int echo, unsigned int timeout_ms,
			 struct quic_node_hs_result *res)
{
	unsigned int started = 0, inflight = 0, i;
	struct qn_hs_group *g;
	struct timespec first;
	struct qn_job **fl;
	uint64_t t0, sum = 0, seen = 0;
	int err = 0, rc;

	if (!qn || !target || !res || count == 0 || count > QUIC_NODE_HS_MAX ||
	    window > QUIC_NODE_HS_WINDOW_MAX)
		return -EINVAL;
	memset(res, 0, sizeof(*res));
	window = window == 0 ? 1 : window > count ? count : window;
	timeout_ms = timeout_ms ? timeout_ms : QUIC_NODE_PING_TIMEOUT_MS;
	fl = calloc(window, sizeof(*fl));
	g = calloc(1, sizeof(*g));
	if (!fl || !g) {
		free(fl);
		free(g);
		return -ENOMEM;
	}
	mu_cv_init(&g->mu, &g->cv);
	atomic_init(&g->refs, 1);
	t0 = qn_now_ns(qn);
	for (;;) {
		/* Fill the window; a failure stops new dials (those in
		 * flight still finish). */
		for (i = 0; i < window && !err && started < count; i++) {
			struct qn_job *j;

			if (fl[i])
				continue;
			j = job_new(qn);
			if (!j) {
				err = -ENOMEM;
				break;
			}
			if (echo)
				randombytes_buf(j->probe, sizeof(j->probe));
			else
				j->hs_only = 1;
			j->grp = g;
			atomic_fetch_add(&g->refs, 1);
			rc = job_start(qn, j, target, timeout_ms);
			if (rc) {
				job_put(j);
				err = rc;
				break;
			}
			fl[i] = j;
			inflight++;
			started++;
		}
		if (!inflight)
			break;
		/* Wait for any completion or the earliest deadline. */
		first = (struct timespec){0, 0};
		for (i = 0; i < window; i++)
			if (fl[i] && (!first.tv_sec || ts_before(&fl[i]->deadline, &first)))
				first = fl[i]->deadline;
		pthread_mutex_lock(&g->mu);
		rc = 0;
		while (g->ndone == seen && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&g->cv, &g->mu, &first);
		seen = g->ndone;
		pthread_mutex_unlock(&g->mu);
		inflight -= hs_reap(qn, fl, window, res, &sum, &err);
	}
	res->elapsed_us = (qn_now_ns(qn) - t0) / 1000;
	res->mean_us = res->done ? sum / res->done / 1000 : 0;
	free(fl);
	grp_put(g);
	return res->done ? 0 : err;
}

unsigned int quic_node_workers(const struct quic_node *qn)
{
	return qn ? qn->nworkers : 0;
}

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
		if (o)
			json_object_set_new(o, "path", qn_path_json(c, &in.remote, in.remote_len));
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
	X(send_errors, "Datagrams the socket refused to send.")
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
	ctl_resp_json(resp, 200,
		      json_pack("{s:o,s:o,s:I,s:I}", "workers", ws, "total", snap_json(&tot),
				"queued_bytes", (json_int_t)atomic_load(&qn->queued), "cmd_full",
				(json_int_t)atomic_load(&qn->cmd_full)));
}

static void qn_metrics(void *arg, FILE *out)
{
	struct quic_node *qn = arg;
	struct qn_snap sn[ENGINE_MAX_WORKERS];
	int ok[ENGINE_MAX_WORKERS];
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
	fprintf(out, "# HELP weft_quic_conns Open QUIC connections.\n"
		     "# TYPE weft_quic_conns gauge\n");
	for (i = 0; i < qn->nworkers; i++)
		if (ok[i])
			fprintf(out, "weft_quic_conns{worker=\"%u\"} %llu\n", i,
				(unsigned long long)sn[i].st.conns_active);
	fprintf(out, "# HELP weft_quic_queued_bytes Stream bytes queued for sending, all connections.\n"
		     "# TYPE weft_quic_queued_bytes gauge\nweft_quic_queued_bytes %llu\n",
		(unsigned long long)atomic_load(&qn->queued));
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
		"{s:I,s:I,s:I,s:I,s:I,s:f,s:s,s:s,s:b,s:b}", "bytes", (json_int_t)r.bytes_sent,
		"bytes_back", (json_int_t)r.bytes_back, "peer_count", (json_int_t)r.peer_count,
		"elapsed_us", (json_int_t)r.elapsed_us, "handshake_us", (json_int_t)r.handshake_us,
		"mbit_s", (double)r.bytes_sent * 8 / secs / 1e6, "sent_hash", a.verify ? h1 : "",
		"peer_hash", a.verify ? h2 : "", "verified", a.verify, "ok", r.hash_ok));
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
