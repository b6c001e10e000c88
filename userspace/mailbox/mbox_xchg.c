// SPDX-License-Identifier: MIT
/*
 * One mailbox request and its answer (stream type 0x50) on a new QUIC
 * connection, for control and fetcher threads: dial the target (its key
 * pinned: the answer comes from that node or from no one), open the
 * stream, write the request with FIN, gather the answer (bounded by its
 * frame header, at most MBOX_RESP_MAX) until FIN, close. The job is held
 * by the waiter and the connection; the last one frees it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailbox/mbn_int.h"
#include "weft/quic_node.h"
#include "weft/util.h"
#include <stdio.h>

struct xchg {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic int refs;
	int done, err; /* under mu */
	struct mbox_node *mn;
	uint8_t *req;
	size_t req_len;
	uint8_t *resp; /* gathered on the worker; read by the waiter after done */
	size_t len;
	long need;
};

uint64_t mbn_now_s(void)
{
	return (uint64_t)time(NULL);
}

uint64_t mbn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void mbn_target_of(char out[128], const uint8_t key[MBOX_KEY_LEN], const struct io_addr *a)
{
	char hex[2 * MBOX_KEY_LEN + 1], buf[64];

	util_hex(hex, key, MBOX_KEY_LEN);
	snprintf(out, 128, "%s@%s", hex, io_addr_fmt(a, buf, sizeof(buf)));
}

void mbn_mu_cv_init(pthread_mutex_t *mu, pthread_cond_t *cv)
{
	pthread_condattr_t ca;

	pthread_mutex_init(mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(cv, &ca);
	pthread_condattr_destroy(&ca);
}

static void x_put(struct xchg *x)
{
	if (atomic_fetch_sub(&x->refs, 1) != 1)
		return;
	pthread_cond_destroy(&x->cv);
	pthread_mutex_destroy(&x->mu);
	free(x->req);
	free(x->resp);
	free(x);
}

static void x_done(struct xchg *x, int err)
{
	pthread_mutex_lock(&x->mu);
	if (!x->done) {
		x->done = 1;
		x->err = err;
		pthread_cond_broadcast(&x->cv);
	}
	pthread_mutex_unlock(&x->mu);
}

static void x_connected(void *arg, uint64_t conn, int err, const uint8_t *peer_key)
{
	struct xchg *x = arg;

	if (err) {
		x_done(x, err);
		return;
	}
	err = quic_node_stream_open(x->mn->o.quic, conn, MBOX_ST, 0);
	if (err) {
		x_done(x, err);
		quic_node_close(x->mn->o.quic, conn, 0);
	}
}

static void x_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct xchg *x = arg;

	if (!err)
		err = quic_node_write(x->mn->o.quic, conn, sid, x->req, x->req_len, 1);
	if (err) {
		x_done(x, err);
		quic_node_close(x->mn->o.quic, conn, 0);
	}
}

static void x_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		   int fin)
{
	struct xchg *x = arg;
	int err = 0;

	pthread_mutex_lock(&x->mu);
	if (x->done)
		goto out;
	if (x->len + len > MBOX_RESP_MAX || (x->need && x->len + len > (size_t)x->need)) {
		err = -EBADMSG;
		goto end;
	}
	memcpy(x->resp + x->len, data, len);
	x->len += len;
	if (!x->need && x->len >= MBOX_FRAME_HDR) {
		x->need = mbox_frame_need(x->resp, x->len, MBOX_RESP_MAX);
		if (x->need <= 0 || x->len > (size_t)x->need) {
			err = -EBADMSG;
			goto end;
		}
	}
	if (!fin)
		goto out;
	err = x->need && x->len == (size_t)x->need ? 0 : -EBADMSG;
end:
	x->done = 1;
	x->err = err;
	pthread_cond_broadcast(&x->cv);
	pthread_mutex_unlock(&x->mu);
	quic_node_close(x->mn->o.quic, conn, 0);
	return;
out:
	pthread_mutex_unlock(&x->mu);
}

static void x_stream_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	/* a reset by the anchor: a request it refused to read */
	x_done(arg, err ? err : -ECONNRESET);
}

static void x_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct xchg *x = arg;

	x_done(x, -ECONNABORTED);
	x_put(x);
}

static const struct quic_node_handler x_handler = {
	.connected = x_connected,
	.stream_opened = x_opened,
	.stream_data = x_data,
	.stream_closed = x_stream_closed,
	.closed = x_closed,
};

static int xchg_one(struct mbox_node *mn, const char *target, const uint8_t *req, size_t len,
		    uint8_t **resp, size_t *rlen, unsigned int timeout_ms)
{
	struct timespec dl;
	struct xchg *x = calloc(1, sizeof(*x));
	uint64_t conn;
	int rc = 0, err;

	if (!x)
		return -ENOMEM;
	x->req = malloc(len);
	x->resp = malloc(MBOX_RESP_MAX);
	if (!x->req || !x->resp) {
		free(x->req);
		free(x->resp);
		free(x);
		return -ENOMEM;
	}
	memcpy(x->req, req, len);
	x->req_len = len;
	x->mn = mn;
	mbn_mu_cv_init(&x->mu, &x->cv);
	atomic_init(&x->refs, 2);
	err = quic_node_connect(mn->o.quic, target, &x_handler, x, &conn);
	if (err) {
		atomic_fetch_sub(&x->refs, 1);
		x_put(x);
		return err;
	}
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&x->mu);
	/* in slices, so that a stopping node does not wait out the deadline */
	while (!x->done && rc != ETIMEDOUT && !atomic_load(&mn->stopping)) {
		struct timespec slice;

		clock_gettime(CLOCK_MONOTONIC, &slice);
		slice.tv_nsec += 200000000L;
		if (slice.tv_nsec >= 1000000000L) {
			slice.tv_sec++;
			slice.tv_nsec -= 1000000000L;
		}
		if (slice.tv_sec > dl.tv_sec || (slice.tv_sec == dl.tv_sec && slice.tv_nsec > dl.tv_nsec))
			slice = dl;
		rc = pthread_cond_timedwait(&x->cv, &x->mu, &slice);
		if (rc == ETIMEDOUT && (slice.tv_sec != dl.tv_sec || slice.tv_nsec != dl.tv_nsec))
			rc = 0;
	}
	err = x->done ? x->err : -ETIMEDOUT;
	if (!err) {
		*resp = x->resp; /* handed over: the worker writes no more (done) */
		*rlen = x->len;
		x->resp = NULL;
	}
	if (!x->done) {
		x->done = 1;
		x->err = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&x->mu);
	if (err)
		quic_node_close(mn->o.quic, conn, 0);
	x_put(x);
	return err;
}

int mbn_xchg(struct mbox_node *mn, const char *target, const uint8_t *req, size_t len,
	     uint8_t **resp, size_t *rlen, unsigned int timeout_ms)
{
	char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	uint64_t end = mbn_now_ms() + timeout_ms;
	int n, err = -EHOSTUNREACH;

	/* a bare key: its record's addresses, or a relay circuit */
	n = quic_node_resolve_within(mn->o.quic, target, t, QUIC_NODE_RESOLVE_MAX, timeout_ms,
				     NULL);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		uint64_t now = mbn_now_ms();

		if (atomic_load(&mn->stopping))
			return -ESHUTDOWN;
		if (now >= end)
			return -ETIMEDOUT;
		err = xchg_one(mn, t[i], req, len, resp, rlen, (unsigned int)(end - now));
		if (!err || err == -EBADMSG)
			return err;
	}
	return err;
}
