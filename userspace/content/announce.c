// SPDX-License-Identifier: MIT
/*
 * Announcing: the ids this node serves (content ids, public share ids),
 * each announced on the DHT (announce_peer) at once when new and again
 * every CONTENT_REANNOUNCE_S, by one thread. What to announce when and to
 * which nodes is the announce schedule (annsched.c: batches by DHT
 * neighbourhood, a query budget per remote node); this file runs it: it
 * starts the lookups (dht_get_peers) and the batches (dht_announce_to) on
 * the DHT's worker and feeds their results back. Owns the schedule and
 * its thread (struct cn_anstate, reference-counted: a DHT operation still
 * running when the content node goes holds it); calls only the DHT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/annsched.h"
#include "content/content_node_int.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/log.h"
#include "weft/util.h"

struct cn_anstate {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct cn_anq *q;
	atomic_uint refs; /* the content node, and each DHT operation in flight */
	int stopping;
	/* lookups that found no node (no DHT contact, none answered): the
	 * announcer moves them to cn->announce_fail ("announce_failures") */
	atomic_uint lookups_failed;
};

static void as_put(struct cn_anstate *as)
{
	if (atomic_fetch_sub(&as->refs, 1) != 1)
		return;
	cn_anq_free(as->q);
	pthread_mutex_destroy(&as->mu);
	pthread_cond_destroy(&as->cond);
	free(as);
}

int cn_announce_init(struct content_node *cn)
{
	struct cn_anstate *as = calloc(1, sizeof(*as));
	int rc;

	if (!as)
		return -ENOMEM;
	rc = cn_anq_new(&as->q, (uint64_t)CONTENT_REANNOUNCE_S * 1000);
	if (rc) {
		free(as);
		return rc;
	}
	pthread_mutex_init(&as->mu, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&as->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	atomic_init(&as->refs, 1);
	cn->as = as;
	return 0;
}

void cn_announce(struct content_node *cn, const uint8_t *id, size_t len)
{
	struct cn_anstate *as = cn->as;
	int rc;

	if (!as)
		return;
	pthread_mutex_lock(&as->mu);
	rc = cn_anq_add(as->q, id, len, util_now_ms());
	pthread_cond_signal(&as->cond);
	pthread_mutex_unlock(&as->mu);
	if (rc)
		log_warn(CN_MOD, "cannot queue an announcement: %s", strerror(-rc));
}

/* Lock-free both ways: written by whoever removes, read by the workers
 * answering; a torn pair (an id with its slot's previous time) only moves
 * one entry's expiry. */
static void gone_note(struct content_node *cn, const uint8_t *id)
{
	unsigned int k = atomic_fetch_add(&cn->gone_next, 1) % CN_GONE_IDS;
	uint64_t pre;

	memcpy(&pre, id, sizeof(pre));
	atomic_store(&cn->gone_ms[k], util_now_ms());
	atomic_store(&cn->gone_id[k], pre);
}

int cn_gone_recent(struct content_node *cn, const uint8_t *id)
{
	uint64_t pre, now = util_now_ms();

	memcpy(&pre, id, sizeof(pre));
	for (unsigned int k = 0; k < CN_GONE_IDS; k++)
		if (atomic_load(&cn->gone_id[k]) == pre &&
		    now - atomic_load(&cn->gone_ms[k]) < CN_GONE_MS)
			return 1;
	return 0;
}

void cn_unannounce(struct content_node *cn, const uint8_t *id, size_t len)
{
	struct cn_anstate *as = cn->as;

	if (len == B3TREE_ID_LEN)
		gone_note(cn, id);
	if (!as)
		return;
	pthread_mutex_lock(&as->mu);
	cn_anq_remove(as->q, id, len);
	pthread_mutex_unlock(&as->mu);
}

void cn_announce_stats(struct content_node *cn, struct cn_anq_stats *st)
{
	struct cn_anstate *as = cn->as;

	memset(st, 0, sizeof(*st));
	if (!as)
		return;
	pthread_mutex_lock(&as->mu);
	cn_anq_stats(as->q, util_now_ms(), st);
	pthread_mutex_unlock(&as->mu);
}

size_t content_node_seeded(struct content_node *cn, uint8_t (*ih)[20], size_t cap)
{
	struct cn_anstate *as = cn->as;
	size_t pos = 0, n;

	if (!as)
		return 0;
	pthread_mutex_lock(&as->mu);
	n = cn_anq_keys(as->q, &pos, ih, cap);
	pthread_mutex_unlock(&as->mu);
	return n;
}

/* One DHT operation: what the schedule handed out. Freed by its done
 * callback, or by the announcer when the operation did not start. */
struct ann_op {
	struct cn_anstate *as;
	struct cn_anq_work w;
	uint16_t port;
	int rc;
};

static void lookup_cb(void *arg, const struct dht_result *res)
{
	struct ann_op *op = arg;
	struct cn_anstate *as = op->as;

	if (res->status || !res->nnodes)
		atomic_fetch_add(&as->lookups_failed, 1);
	pthread_mutex_lock(&as->mu);
	cn_anq_lookup_done(as->q, op->w.target, res->status ? NULL : res->nodes,
			   res->status ? 0 : res->nnodes, util_now_ms());
	pthread_cond_signal(&as->cond);
	pthread_mutex_unlock(&as->mu);
	free(op);
	as_put(as);
}

static void send_cb(void *arg, const struct dht_result *res)
{
	struct ann_op *op = arg;
	struct cn_anstate *as = op->as;

	pthread_mutex_lock(&as->mu);
	cn_anq_send_done(as->q, (const uint8_t(*)[DHT_ID_LEN])op->w.keys, op->w.nkeys,
			 res->status == 0 && res->stored > 0, util_now_ms());
	pthread_cond_signal(&as->cond);
	pthread_mutex_unlock(&as->mu);
	free(op);
	as_put(as);
}

struct ann_start {
	struct ann_op *op;
	int rc;
};

static void start_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct ann_start *s = arg;
	struct ann_op *op = s->op;

	/* op may be freed by its callback before the start returns */
	if (op->w.kind == CN_ANQ_LOOKUP)
		s->rc = dht_get_peers(dht, op->w.target, now, lookup_cb, op);
	else
		s->rc = dht_announce_to(dht, (const uint8_t(*)[DHT_ID_LEN])op->w.keys, op->w.nkeys,
					op->port, 0, op->w.nodes, op->w.nnodes, now, send_cb, op);
}

static void *announcer(void *arg)
{
	struct content_node *cn = arg;
	struct cn_anstate *as = cn->as;
	struct cn_anq_work w;
	struct timespec ts;

	pthread_mutex_lock(&as->mu);
	while (!as->stopping) {
		uint64_t now = util_now_ms(), wait_ms;
		int kind = cn_anq_next(as->q, now, &w);
		unsigned int lf = atomic_exchange(&as->lookups_failed, 0);

		if (lf)
			atomic_fetch_add(&cn->announce_fail, lf);

		if (kind != CN_ANQ_IDLE) {
			struct ann_op *op = malloc(sizeof(*op));
			struct ann_start s = {op, -ENOMEM};

			if (op) {
				op->as = as;
				op->w = w;
				op->port = cn->quic_port;
				atomic_fetch_add(&as->refs, 1);
			}
			pthread_mutex_unlock(&as->mu);
			if (op) {
				int rc = dhtnode_run(cn->dht, start_fn, &s);

				if (rc)
					s.rc = rc; /* start_fn never ran */
			}
			pthread_mutex_lock(&as->mu);
			if (s.rc) { /* not started: no callback will come */
				if (kind == CN_ANQ_LOOKUP)
					cn_anq_lookup_done(as->q, w.target, NULL, 0, util_now_ms());
				else
					cn_anq_send_done(as->q,
							 (const uint8_t(*)[DHT_ID_LEN])w.keys,
							 w.nkeys, 0, util_now_ms());
				atomic_fetch_add(&cn->announce_fail,
						 w.kind == CN_ANQ_SEND ? w.nkeys : 1);
				if (op) {
					free(op);
					atomic_fetch_sub(&as->refs,
							 1); /* the node still holds one */
				}
			} else if (kind == CN_ANQ_SEND) {
				atomic_fetch_add(&cn->announces, w.nkeys);
			}
			continue;
		}
		wait_ms = w.wake_ms > now ? w.wake_ms - now : 1;
		if (wait_ms > 1000)
			wait_ms = 1000;
		/* as->cond waits on the monotonic clock: a wall clock stepped
		 * back made the announcer spin (test_fault_clock) */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += (time_t)(wait_ms / 1000);
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		util_heap_release_due(util_now_ms());
		pthread_cond_timedwait(&as->cond, &as->mu, &ts);
	}
	pthread_mutex_unlock(&as->mu);
	return NULL;
}

int cn_announce_start(struct content_node *cn)
{
	int rc;

	if (!cn->dht || !cn->as)
		return 0;
	rc = log_thread_create(&cn->athr, NULL, announcer, cn, "weft-announce");
	if (rc)
		return rc;
	cn->athr_started = 1;
	return 0;
}

void cn_announce_stop(struct content_node *cn)
{
	struct cn_anstate *as = cn->as;

	if (!as)
		return;
	pthread_mutex_lock(&as->mu);
	as->stopping = 1;
	pthread_cond_broadcast(&as->cond);
	pthread_mutex_unlock(&as->mu);
	if (cn->athr_started)
		pthread_join(cn->athr, NULL);
	cn->athr_started = 0;
	cn->as = NULL;
	as_put(as); /* operations in flight free it when they end */
}
