// SPDX-License-Identifier: MIT
/*
 * The anchor's side of stream type 0x50 (docs/MAILBOX.md, "Serving").
 * Packet workers only gather a request's bytes (bounded: one frame of at
 * most MBOX_REQ_MAX, MBOX_MAX_PENDING streams at once) and hand the whole
 * request to the mailbox's server thread, which does the disk work (an
 * LMDB commit per accepted message, never on a worker) and writes the
 * answer. The sender or recipient of every request is the key the QUIC
 * handshake authenticated: nothing from an unauthenticated source reaches
 * the mailbox.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/mbn_int.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

void mbn_pend_free(struct mbn_pend *p)
{
	if (!p)
		return;
	free(p->buf);
	free(p);
}

/* Unlink the receiving entry of (conn, sid), under mu. */
static struct mbn_pend *rx_take(struct mbox_node *mn, uint64_t conn, int64_t sid)
{
	for (struct mbn_pend **pp = &mn->rx, *p; (p = *pp); pp = &p->next)
		if (p->conn == conn && p->sid == sid) {
			*pp = p->next;
			p->next = NULL;
			return p;
		}
	return NULL;
}

static void refuse(struct mbox_node *mn, uint64_t conn, int64_t sid)
{
	/* STOP_SENDING/RESET: the peer sees the stream reset, never a half answer */
	quic_node_stream_reset(mn->o.quic, conn, sid, 0x4d42 /* "MB" */);
}

static void srv_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct mbox_node *mn = arg;
	struct mbn_pend *p;
	uint8_t *nb;

	pthread_mutex_lock(&mn->mu);
	if (mn->stop)
		goto drop;
	p = rx_take(mn, conn, sid);
	if (!p) {
		struct sockaddr_storage ss;

		if (mn->npend >= MBOX_MAX_PENDING) {
			mn->pend_refused++;
			goto refuse;
		}
		p = calloc(1, sizeof(*p));
		if (!p)
			goto refuse;
		p->conn = conn;
		p->sid = sid;
		p->buf = malloc(MBOX_FRAME_HDR);
		if (!p->buf || quic_node_conn_peer(mn->o.quic, conn, p->peer, &ss)) {
			mbn_pend_free(p);
			goto refuse; /* no authenticated key: never served */
		}
		mn->npend++;
	}
	/* the header first (5 bytes), then exactly the frame it announces */
	while (len) {
		size_t take;

		if (!p->need) {
			take = MBOX_FRAME_HDR - p->len < len ? MBOX_FRAME_HDR - p->len : len;
			memcpy(p->buf + p->len, data, take);
			p->len += take;
			data += take;
			len -= take;
			if (p->len < MBOX_FRAME_HDR)
				continue;
			p->need = mbox_frame_need(p->buf, p->len, MBOX_REQ_MAX);
			if (p->need <= 0)
				goto bad; /* a length it never has: not read further */
			nb = realloc(p->buf, (size_t)p->need);
			if (!nb)
				goto bad;
			p->buf = nb;
			continue;
		}
		if (p->len + len > (size_t)p->need)
			goto bad; /* bytes after the request */
		memcpy(p->buf + p->len, data, len);
		p->len += len;
		len = 0;
	}
	if (!fin) {
		p->next = mn->rx;
		mn->rx = p;
		pthread_mutex_unlock(&mn->mu);
		return;
	}
	if (!p->need || p->len != (size_t)p->need)
		goto bad;
	*mn->ready_tail = p;
	mn->ready_tail = &p->next;
	pthread_cond_broadcast(&mn->cv);
	pthread_mutex_unlock(&mn->mu);
	return;
bad:
	mbox_rate_strike(mn->rate, p->peer, mbn_now_ms());
	mn->refused[MBOX_E_MALFORMED]++;
	mn->npend--;
	mbn_pend_free(p);
refuse:
	pthread_mutex_unlock(&mn->mu);
	refuse(mn, conn, sid);
	return;
drop:
	pthread_mutex_unlock(&mn->mu);
}

static void srv_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct mbox_node *mn = arg;
	struct mbn_pend *p;

	pthread_mutex_lock(&mn->mu);
	p = rx_take(mn, conn, sid);
	if (p)
		mn->npend--;
	pthread_mutex_unlock(&mn->mu);
	mbn_pend_free(p);
}

static void srv_release(void *arg)
{
	struct mbox_node *mn = arg;

	pthread_cond_destroy(&mn->cv);
	pthread_mutex_destroy(&mn->mu);
	free(mn);
}

const struct quic_node_handler mbn_srv_handler = {
	.stream_data = srv_data,
	.stream_closed = srv_closed,
	.release = srv_release,
};

/* A PUT: rate, then the store (committed before the answer), or the inbox
 * when this node is the recipient (a direct delivery). */
static uint8_t do_put(struct mbox_node *mn, const uint8_t peer[MBOX_KEY_LEN],
		      const struct mbox_req *r, uint8_t id[MBOX_ID_LEN])
{
	int direct = !memcmp(r->recipient, mn->o.id->pk, MBOX_KEY_LEN), ok, err;

	pthread_mutex_lock(&mn->mu);
	ok = mbox_rate_take(mn->rate, peer, mbn_now_ms());
	pthread_mutex_unlock(&mn->mu);
	if (!ok)
		return MBOX_E_RATE;
	if (direct) {
		/* only what opens for us, signed by the connection's key, goes
		 * into the inbox: junk would take the room of real messages */
		err = mbox_open_from(mn->o.id->sk, r->sealed, r->sealed_len, peer);
		if (err == -ENOMEM)
			return MBOX_E_UNAVAILABLE;
		if (err) {
			pthread_mutex_lock(&mn->mu);
			mbox_rate_strike(mn->rate, peer, mbn_now_ms());
			pthread_mutex_unlock(&mn->mu);
			return MBOX_E_MALFORMED;
		}
		err = mbox_inbox_put(mn->ms, peer, mbn_now_s(), r->sealed, r->sealed_len, id);
		if (!err)
			mbn_offer_sealed(mn, r->sealed, r->sealed_len, id);
	} else {
		if (!mn->o.enabled)
			return MBOX_E_DISABLED;
		if (r->sealed_len > MBOX_MAX_SEALED)
			return MBOX_E_TOO_LARGE;
		err = mbox_store_put(mn->ms, r->recipient, peer, r->sealed, r->sealed_len,
				     r->ttl_s, mbn_now_s(), id);
	}
	pthread_mutex_lock(&mn->mu);
	if (!err)
		mn->served[direct ? 3 : 0]++;
	else if (err == -EDQUOT)
		mbox_rate_strike(mn->rate, peer, mbn_now_ms());
	pthread_mutex_unlock(&mn->mu);
	return !err ? MBOX_OK : err == -EDQUOT ? MBOX_E_FULL : err == -E2BIG ? MBOX_E_TOO_LARGE
									 : MBOX_E_UNAVAILABLE;
}

static void serve_one(struct mbox_node *mn, struct mbn_pend *p)
{
	static const size_t small = MBOX_FRAME_HDR + 1 + MBOX_ID_LEN;
	uint8_t id[MBOX_ID_LEN] = { 0 }, st = MBOX_OK, *out = NULL;
	struct mbox_list_w w;
	struct mbox_req r;
	int len = -1, more = 0, n;

	if (mbox_req_parse(p->buf, p->len, &r)) {
		st = MBOX_E_MALFORMED;
		pthread_mutex_lock(&mn->mu);
		mbox_rate_strike(mn->rate, p->peer, mbn_now_ms());
		pthread_mutex_unlock(&mn->mu);
	} else if (r.type == MBOX_T_PUT) {
		st = do_put(mn, p->peer, &r, id);
	} else if (r.type == MBOX_T_FETCH) {
		out = malloc(MBOX_RESP_MAX);
		if (out) {
			mbox_list_begin(&w, out, MBOX_RESP_MAX);
			n = mbox_store_list(mn->ms, p->peer,
					    r.max < MBOX_FETCH_MAX ? r.max : MBOX_FETCH_MAX,
					    mbn_now_s(), &w, &more);
			len = mbox_list_end(&w, n < 0 ? MBOX_E_UNAVAILABLE : MBOX_OK, more);
			pthread_mutex_lock(&mn->mu);
			mn->served[1]++;
			pthread_mutex_unlock(&mn->mu);
		}
	} else {
		/* ACK: only the connection's own messages can be deleted */
		n = mbox_store_ack(mn->ms, p->peer, r.ids, r.nids);
		st = n < 0 ? MBOX_E_UNAVAILABLE : MBOX_OK;
		pthread_mutex_lock(&mn->mu);
		mn->served[2] += n > 0 ? (uint64_t)n : 0;
		pthread_mutex_unlock(&mn->mu);
	}
	if (len < 0) {
		free(out);
		out = malloc(small);
		if (out)
			len = mbox_result_encode(st, id, out, small);
		if (st != MBOX_OK) {
			pthread_mutex_lock(&mn->mu);
			mn->refused[st < MBOX_E_MAX ? st : MBOX_E_MALFORMED]++;
			pthread_mutex_unlock(&mn->mu);
		}
	}
	if (len > 0)
		quic_node_write(mn->o.quic, p->conn, p->sid, out, (size_t)len, 1);
	else
		refuse(mn, p->conn, p->sid);
	free(out);
}

void *mbn_srv_thread(void *arg)
{
	struct mbox_node *mn = arg;
	struct mbn_pend *p;

	pthread_mutex_lock(&mn->mu);
	while (!mn->stop) {
		if (!mn->ready) {
			util_heap_release_due(util_now_ms());
			pthread_cond_wait(&mn->cv, &mn->mu);
			continue;
		}
		p = mn->ready;
		mn->ready = p->next;
		if (!mn->ready)
			mn->ready_tail = &mn->ready;
		pthread_mutex_unlock(&mn->mu);
		serve_one(mn, p);
		mbn_pend_free(p);
		pthread_mutex_lock(&mn->mu);
		mn->npend--;
	}
	pthread_mutex_unlock(&mn->mu);
	return NULL;
}
