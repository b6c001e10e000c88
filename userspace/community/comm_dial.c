// SPDX-License-Identifier: MIT
/*
 * Reaching a holder (docs/COMMUNITY.md "Reaching a member behind a NAT"):
 * at the address it was found at or heard from, else by its key — its
 * node record's addresses, or a circuit of a relay the record lists
 * (quic_node_resolve), as the rest of weft dials a node behind a NAT.
 *
 * Gossip leaves on short connections of its own, driven by callbacks:
 * to an address at once (any thread, under net->mu), by key through the
 * dial thread, which resolves (blocking, with a deadline) and then dials
 * as for an address. A send that reached nobody by key, with the record
 * fetched afresh too, is tried again later (NET_GOSSIP_ROUNDS rounds,
 * NET_GOSSIP_LATER_MS doubling): a relay's circuit that failed once (a
 * loaded relay, a holder between two relay connections) is no reason for
 * a member behind a NAT, which may be able to pull from nobody, to miss
 * the record. Both queues are bounded (NET_KEYQ): a send that does not fit
 * is dropped and counted; the holder learns the record at its next pull.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#include "comm_net_int.h"

/* The dial thread's queue, shared by the net and the gossip sends in
 * flight (a send whose address did not answer is queued from its
 * connection's last callback, which may come after the net is gone):
 * freed with its last reference. */
struct dialq {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, stop;
	struct gsend *q[NET_KEYQ]; /* to dial now, in order */
	size_t h, n;
	struct gsend *later[NET_KEYQ]; /* to dial again at their due time */
	size_t nlater;
	uint64_t retried, dropped, again, given_up, late_ok;
};

/* --------------------------------------------------------- one envelope */

/* Dial, open, write, wait for the answer's FIN, close. Freed in closed()
 * unless queued again. */
struct gsend {
	struct quic_node *qn;
	struct dialq *dq;	  /* a reference */
	uint8_t key[COMM_PK_LEN]; /* the holder's */
	int stage; /* 0: at an address; 1: by key; 2: by key, its record fetched afresh */
	int ok;	   /* connected */
	unsigned int round; /* the rounds of stage 2 tried again later */
	uint64_t due_ms;    /* in dq->later: when */
	size_t len;
	uint8_t msg[MSG_MAX];
};

static void dq_put(struct dialq *dq)
{
	int last;

	pthread_mutex_lock(&dq->mu);
	last = --dq->refs == 0;
	pthread_mutex_unlock(&dq->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&dq->mu);
	pthread_cond_destroy(&dq->cv);
	free(dq);
}

static void gs_free(struct gsend *g)
{
	dq_put(g->dq);
	free(g);
}

/* Queue g for the dial thread: 0, or -ENOSPC / -ESHUTDOWN (g not taken). */
static int dq_push(struct dialq *dq, struct gsend *g)
{
	int err = 0;

	pthread_mutex_lock(&dq->mu);
	if (dq->stop) {
		err = -ESHUTDOWN;
	} else if (dq->n >= NET_KEYQ) {
		dq->dropped++;
		err = -ENOSPC;
	} else {
		g->stage++;
		dq->q[(dq->h + dq->n++) % NET_KEYQ] = g;
		pthread_cond_signal(&dq->cv);
	}
	pthread_mutex_unlock(&dq->mu);
	return err;
}

/* Queue g to be dialled again, by key with its record fetched afresh, at
 * its round's time: 0, or -ENOSPC / -ESHUTDOWN / -ETIMEDOUT (its rounds
 * are over; g not taken). */
static int dq_later(struct dialq *dq, struct gsend *g)
{
	int err = 0;

	pthread_mutex_lock(&dq->mu);
	if (dq->stop) {
		err = -ESHUTDOWN;
	} else if (g->round >= NET_GOSSIP_ROUNDS) {
		dq->given_up++;
		err = -ETIMEDOUT;
	} else if (dq->nlater >= NET_KEYQ) {
		dq->dropped++;
		err = -ENOSPC;
	} else {
		g->due_ms = util_now_ms() + ((uint64_t)NET_GOSSIP_LATER_MS << g->round);
		g->round++;
		g->stage = 1; /* dq_push makes it 2: the record fetched afresh */
		dq->later[dq->nlater++] = g;
		dq->again++;
		pthread_cond_signal(&dq->cv);
	}
	pthread_mutex_unlock(&dq->mu);
	return err;
}

static void gs_connected(void *arg, uint64_t conn, int err, const uint8_t *key)
{
	struct gsend *g = arg;

	(void)key;
	g->ok = !err;
	if (!err && g->round) { /* a later round reached the holder */
		pthread_mutex_lock(&g->dq->mu);
		g->dq->late_ok++;
		pthread_mutex_unlock(&g->dq->mu);
	}
	if (!err && quic_node_stream_open(g->qn, conn, COMM_ST_GOSSIP, 0) != 0)
		quic_node_close(g->qn, conn, 0);
}

static void gs_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct gsend *g = arg;

	(void)token;
	if (err || quic_node_write(g->qn, conn, sid, g->msg, g->len, 1) != 0)
		quic_node_close(g->qn, conn, 0);
}

static void gs_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len, int fin)
{
	struct gsend *g = arg;

	(void)sid;
	(void)d;
	(void)len;
	if (fin)
		quic_node_close(g->qn, conn, 0);
}

static void gs_sclosed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct gsend *g = arg;

	(void)sid;
	if (err)
		quic_node_close(g->qn, conn, 0);
}

/* g reached nobody: to the next stage, or a later round. 0 when taken. */
static int gs_again(struct gsend *g)
{
	if (g->stage >= 2)
		return dq_later(g->dq, g);
	if (dq_push(g->dq, g) != 0)
		return -ENOSPC;
	pthread_mutex_lock(&g->dq->mu);
	g->dq->retried++;
	pthread_mutex_unlock(&g->dq->mu);
	return 0;
}

/* The connection's end: a holder whose address never answered (behind a
 * NAT whose mapping expired) is tried by key; one that did not answer
 * there either, by its record fetched afresh (the cached one may predate
 * its relay); one not reached that way, again later. */
static void gs_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct gsend *g = arg;

	(void)conn;
	(void)info;
	if (!g->ok && quic_node_can_resolve(g->qn) && gs_again(g) == 0)
		return;
	gs_free(g);
}

static const struct quic_node_handler gs_handler = {
	.connected = gs_connected,
	.stream_opened = gs_opened,
	.stream_data = gs_data,
	.stream_closed = gs_sclosed,
	.closed = gs_closed,
};

/* A holder is dialled by key at once when a pull of it at its address
 * failed (and it is known by key) or its last pull went by key. */
static int by_key(const struct comm_net *net, const struct peer *p)
{
	return p->have_key && (p->by_key || p->fails) && quic_node_can_resolve(net->o.quic);
}

void comm_net_gossip_to(struct comm_net *net, const struct peer *p, const uint8_t *msg, size_t len)
{
	struct gsend *g = calloc(1, sizeof(*g));
	uint64_t conn;

	if (!g)
		return;
	g->qn = net->o.quic;
	g->dq = net->dq;
	pthread_mutex_lock(&g->dq->mu);
	g->dq->refs++;
	pthread_mutex_unlock(&g->dq->mu);
	g->len = len;
	memcpy(g->msg, msg, len);
	memcpy(g->key, p->key, COMM_PK_LEN);
	if (by_key(net, p) ? dq_push(net->dq, g) != 0
			   : quic_node_connect_addr(net->o.quic, (const struct sockaddr *)&p->ss,
						    p->sslen, p->key, &gs_handler, g, &conn) != 0) {
		gs_free(g);
		return;
	}
	net->st.gossip_sent++;
	net->st.gossip_bytes_sent += len;
}

/* ---------------------------------------------------------- by key */

int comm_net_key_targets(struct comm_net *net, const uint8_t key[COMM_PK_LEN], int fresh,
			 char out[][QUIC_NODE_TARGET_MAX], unsigned int max)
{
	char hex[2 * COMM_PK_LEN + 1];
	int n;

	if (!quic_node_can_resolve(net->o.quic))
		return -EINVAL;
	util_hex(hex, key, COMM_PK_LEN);
	n = quic_node_resolve_flags(net->o.quic, hex, out, max, NET_KEY_DIAL_MS, NULL,
				    fresh ? QUIC_NODE_RESOLVE_FRESH : 0);
	if (n <= 0 && !fresh) /* the cached record gave nothing to dial (it may predate a relay) */
		n = quic_node_resolve_flags(net->o.quic, hex, out, max, NET_KEY_DIAL_MS, NULL,
					    QUIC_NODE_RESOLVE_FRESH);
	pthread_mutex_lock(&net->mu);
	if (n > 0)
		net->st.by_key++;
	else
		net->st.by_key_fail++;
	pthread_mutex_unlock(&net->mu);
	return n == 0 ? -EHOSTUNREACH : n;
}

int comm_net_dialq_new(struct comm_net *net)
{
	struct dialq *dq = calloc(1, sizeof(*dq));

	if (!dq)
		return -ENOMEM;
	pthread_mutex_init(&dq->mu, NULL);
	if (util_cond_init_mono(&dq->cv) != 0) {
		pthread_mutex_destroy(&dq->mu);
		free(dq);
		return -ENOMEM;
	}
	dq->refs = 1;
	net->dq = dq;
	return 0;
}

void comm_net_dialq_stop(struct comm_net *net)
{
	struct dialq *dq = net->dq;

	if (!dq)
		return;
	pthread_mutex_lock(&dq->mu);
	dq->stop = 1;
	pthread_cond_broadcast(&dq->cv);
	pthread_mutex_unlock(&dq->mu);
}

void comm_net_dialq_free(struct comm_net *net)
{
	struct dialq *dq = net->dq;

	if (!dq)
		return;
	comm_net_dialq_stop(net);
	for (;;) { /* queued, never dialled: ours to free */
		struct gsend *g = NULL;

		pthread_mutex_lock(&dq->mu);
		if (dq->n) {
			g = dq->q[dq->h];
			dq->h = (dq->h + 1) % NET_KEYQ;
			dq->n--;
		} else if (dq->nlater) {
			g = dq->later[--dq->nlater];
		}
		pthread_mutex_unlock(&dq->mu);
		if (!g)
			break;
		gs_free(g);
	}
	net->dq = NULL;
	dq_put(dq);
}

unsigned int comm_net_waiting(struct comm_net *net, const uint8_t key[COMM_PK_LEN])
{
	struct dialq *dq = net ? net->dq : NULL;
	unsigned int n = 0;

	if (!dq)
		return 0;
	pthread_mutex_lock(&dq->mu);
	for (size_t i = 0; i < dq->nlater; i++)
		n += !memcmp(dq->later[i]->key, key, COMM_PK_LEN);
	for (size_t i = 0; i < dq->n; i++) {
		const struct gsend *g = dq->q[(dq->h + i) % NET_KEYQ];

		n += g->round && !memcmp(g->key, key, COMM_PK_LEN);
	}
	pthread_mutex_unlock(&dq->mu);
	return n;
}

void comm_net_dialq_stats(struct comm_net *net, struct comm_net_stats *out)
{
	pthread_mutex_lock(&net->dq->mu);
	out->gossip_retried = net->dq->retried;
	out->gossip_dropped = net->dq->dropped;
	out->gossip_again = net->dq->again;
	out->gossip_given_up = net->dq->given_up;
	out->gossip_late_ok = net->dq->late_ok;
	pthread_mutex_unlock(&net->dq->mu);
}

/* Under dq->mu: the later sends now due move to the queue (while it has
 * room); the time until the next one is due, or UINT64_MAX. */
static uint64_t dq_due(struct dialq *dq)
{
	uint64_t now = util_now_ms(), next = UINT64_MAX;

	for (size_t i = 0; i < dq->nlater;) {
		struct gsend *g = dq->later[i];

		if (g->due_ms <= now && dq->n < NET_KEYQ) {
			g->stage++;
			dq->q[(dq->h + dq->n++) % NET_KEYQ] = g;
			dq->later[i] = dq->later[--dq->nlater];
			continue;
		}
		if (g->due_ms > now && g->due_ms - now < next)
			next = g->due_ms - now;
		i++;
	}
	return next;
}

void *comm_net_dial_main(void *arg)
{
	struct comm_net *net = arg;
	struct dialq *dq = net->dq;

	for (;;) {
		char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
		struct gsend *g;
		uint64_t conn;
		int n;

		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&dq->mu);
		while (!dq->stop) {
			uint64_t next = dq_due(dq);
			struct timespec ts;

			if (dq->n)
				break;
			if (next == UINT64_MAX) {
				pthread_cond_wait(&dq->cv, &dq->mu);
				continue;
			}
			util_deadline_ts(&ts, next);
			pthread_cond_timedwait(&dq->cv, &dq->mu, &ts);
		}
		if (dq->stop) {
			pthread_mutex_unlock(&dq->mu);
			break;
		}
		g = dq->q[dq->h];
		dq->h = (dq->h + 1) % NET_KEYQ;
		dq->n--;
		pthread_mutex_unlock(&dq->mu);
		n = comm_net_key_targets(net, g->key, g->stage == 2, t, QUIC_NODE_RESOLVE_MAX);
		/* the first target: a relay's circuit when the record lists
		 * relays, else the record's first address */
		g->ok = 0;
		if (n > 0) {
			char buf[QUIC_NODE_TARGET_MAX];

			log_debug("community", "gossip to a holder by key: %s",
				  log_addr(t[0], buf, sizeof(buf)));
		} else {
			log_debug("community", "gossip to a holder by key: %s", strerror(-n));
		}
		/* nothing to dial (the fresh record was fetched already):
		 * a later round; a dial that did not start: the next stage */
		if (n < 1 ? dq_later(dq, g) != 0
			  : quic_node_connect(net->o.quic, t[0], &gs_handler, g, &conn) != 0 &&
				gs_again(g) != 0)
			gs_free(g);
	}
	return NULL;
}
