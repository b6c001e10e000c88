// SPDX-License-Identifier: MIT
/*
 * quic_node's synchronous helpers, for C callers and the control routes:
 * quic_node_resolve*() (a node key to addresses: its record, else a relay
 * circuit), quic_node_ping2(), quic_node_bench(), quic_node_handshakes().
 * Each is a dial whose handler (a struct qn_job) completes what the caller
 * waits on; runs on the caller's thread, reaches worker-owned state only
 * from the handler callbacks, which run on the connection's worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"
#include "weft/log.h"
#include "weft/util.h"

#define QN_BENCH_DEF_TIMEOUT_MS 60000

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
	struct quic_conn_info info; /* the connection's, as it finished */
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

	if (c && c->qc && !quic_conn_get_info(c->qc, &info)) {
		j->srtt_ns = info.smoothed_rtt_ns;
		j->info = info;
	}
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

static int ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* The sooner of deadline and one QN_JOB_SLICE_MS from now (*sliced: 1
 * when that is the slice): a wait on a dial wakes this often to see
 * whether the node is stopping. */
static struct timespec slice_until(const struct timespec *deadline, int *sliced)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_nsec += QN_JOB_SLICE_MS * 1000000L;
	if (t.tv_nsec >= 1000000000L) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000L;
	}
	*sliced = ts_before(&t, deadline);
	return *sliced ? t : *deadline;
}

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

/* Dial and wait; returns the job's error, -ETIMEDOUT, or -ESHUTDOWN (the
 * node is stopping): on either the dial is closed and the job freed by the
 * connection's closed(). */
static int job_run(struct quic_node *qn, struct qn_job *j, const char *target,
		   unsigned int timeout_ms)
{
	int rc, err, halted = 0;

	rc = job_start(qn, j, target, timeout_ms);
	if (rc)
		return rc;
	pthread_mutex_lock(&j->mu);
	/* In slices: a node stopping (its engine halted) ends the wait within
	 * one, not at the deadline (up to 10 min for a bench), so a control
	 * request never holds the stop. */
	while (!j->done && rc != ETIMEDOUT && !(halted = engine_halted(qn->eng))) {
		int sliced;
		struct timespec until = slice_until(&j->deadline, &sliced);

		rc = pthread_cond_timedwait(&j->cv, &j->mu, &until);
		if (rc == ETIMEDOUT && sliced)
			rc = 0; /* a slice, not the deadline */
	}
	err = j->done ? j->err : halted ? -ESHUTDOWN : -ETIMEDOUT;
	pthread_mutex_unlock(&j->mu);
	if (err == -ETIMEDOUT || err == -ESHUTDOWN)
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
	return quic_node_resolve_flags(qn, target, out, max, timeout_ms, relay_status, 0);
}

int quic_node_resolve_flags(struct quic_node *qn, const char *target,
			    char out[][QUIC_NODE_TARGET_MAX], unsigned int max,
			    unsigned int timeout_ms, unsigned int *relay_status, unsigned int flags)
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
	log_debug("quic", "dial %.16s...: resolving%s", target,
		  flags & QUIC_NODE_RESOLVE_FRESH ? " (fresh)" : "");
	n = qn->o.resolve(qn->o.resolve_arg, key, ss, max, &nrelays, timeout_ms, flags);
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

/* Ping each of n targets in turn, each with timeout_ms / n (at least
 * 1 s), none past end_ns. */
static int ping_targets(struct quic_node *qn, char t[][QUIC_NODE_TARGET_MAX], int n,
			unsigned int timeout_ms, int keep, uint64_t t0, uint64_t end_ns,
			struct quic_node_ping_result *res)
{
	unsigned int each = timeout_ms / (unsigned int)n < 1000 ? 1000 : timeout_ms / (unsigned int)n;
	int err;

	for (int i = 0; i < n; i++) {
		unsigned int left = ms_left(qn, end_ns);

		if (!left)
			return -ETIMEDOUT;
		err = ping_one(qn, t[i], each < left ? each : left, keep, t0, res);
		if (!err || err == -EKEYREJECTED || err == -ENOLINK)
			return err;
	}
	return -EHOSTUNREACH; /* no address of the record answered */
}

int quic_node_ping2(struct quic_node *qn, const char *target, unsigned int timeout_ms, int keep,
		    struct quic_node_ping_result *res)
{
	char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	uint64_t t0, t1, end_ns;
	unsigned int left;
	int n, err;

	if (!qn || !target || !res)
		return -EINVAL;
	res->close_code = 0;
	t0 = qn_now_ns(qn);
	timeout_ms = timeout_ms ? timeout_ms : QUIC_NODE_PING_TIMEOUT_MS;
	/* The whole ping: one resolution's deadline plus timeout_ms. */
	end_ns = t0 + ((uint64_t)QUIC_NODE_RESOLVE_MS + timeout_ms) * 1000000ULL;
	n = quic_node_resolve_within(qn, target, t, QUIC_NODE_RESOLVE_MAX, 0, &res->relay_status);
	if (n == 1 && !strcmp(t[0], target)) {
		res->resolve_us = 0;
		return ping_one(qn, target, timeout_ms, keep, t0, res);
	}
	res->resolve_us = (qn_now_ns(qn) - t0) / 1000;
	err = n < 0 ? n : ping_targets(qn, t, n, timeout_ms, keep, t0, end_ns, res);
	if (!err || err == -EKEYREJECTED || err == -ENOLINK || err == -EINVAL || err == -ENOMEM)
		goto out;
	/* The record we had (cached, or the first answer of a lookup) did
	 * not reach the node: it may be older than the node's addresses
	 * and relays. Refetch the latest once, within what is left. */
	left = ms_left(qn, end_ns);
	if (left < 500)
		goto out;
	atomic_fetch_add(&qn->dial_refetch, 1);
	log_debug("quic", "dial %.16s...: %s; refetching the record", target, strerror(-err));
	t1 = qn_now_ns(qn);
	n = quic_node_resolve_flags(qn, target, t, QUIC_NODE_RESOLVE_MAX,
				    left < QUIC_NODE_RESOLVE_MS ? left : QUIC_NODE_RESOLVE_MS,
				    &res->relay_status, QUIC_NODE_RESOLVE_FRESH);
	res->resolve_us += (qn_now_ns(qn) - t1) / 1000;
	if (n > 0)
		err = ping_targets(qn, t, n, timeout_ms, keep, t0, end_ns, res);
	else if (n != -ENOENT || err == -ENOENT)
		err = n;
out:
	return err;
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
		res->udp_payload = j->info.udp_payload;
		res->pmtu_probes = j->info.pmtu_probes;
		res->pmtu_acked = j->info.pmtu_acked;
		res->pmtu_lost = j->info.pmtu_lost;
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

/* Reap the finished (or overdue: closed, -ETIMEDOUT) jobs of fl[window];
 * returns how many left, the first error in *err. */
static unsigned int hs_reap(struct quic_node *qn, struct qn_job **fl, unsigned int window,
			    struct quic_node_hs_result *res, uint64_t *sum, int *err, int halted)
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
		if (!done && !halted && ts_before(&now, &j->deadline))
			continue;
		if (!done) {
			e = halted ? -ESHUTDOWN : -ETIMEDOUT;
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
	int err = 0, rc, halted = 0;

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
		while (g->ndone == seen && rc != ETIMEDOUT && !(halted = engine_halted(qn->eng))) {
			int sliced;
			struct timespec until = slice_until(&first, &sliced);

			rc = pthread_cond_timedwait(&g->cv, &g->mu, &until);
			if (rc == ETIMEDOUT && sliced)
				rc = 0;
		}
		seen = g->ndone;
		pthread_mutex_unlock(&g->mu);
		if (halted && !err)
			err = -ESHUTDOWN; /* no new dial; those in flight end now */
		inflight -= hs_reap(qn, fl, window, res, &sum, &err, halted);
	}
	res->elapsed_us = (qn_now_ns(qn) - t0) / 1000;
	res->mean_us = res->done ? sum / res->done / 1000 : 0;
	free(fl);
	grp_put(g);
	return res->done ? 0 : err;
}

