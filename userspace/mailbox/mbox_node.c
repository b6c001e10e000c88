// SPDX-License-Identifier: MIT
/*
 * The mailbox on the node (docs/MAILBOX.md): the hub. Owns the store
 * handle, the sender table, the server thread (the anchor's disk work)
 * and the fetcher thread (our anchors chosen and published, then a fetch
 * at start and every mailbox.fetch_interval_s, or when asked).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailbox/mbn_int.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#define ANNOUNCE_MS (30 * 60 * 1000ULL) /* a mailbox host announces itself this often */
#define START_DELAY_MS 1000 /* the first fetch: once the node had a moment to reserve relays */

static void *fetch_thread(void *arg)
{
	struct mbox_node *mn = arg;
	struct timespec dl;
	uint64_t gen, next_announce = 0;
	int first = 1, r;

	pthread_mutex_lock(&mn->mu);
	while (!mn->stop) {
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_sec += first ? START_DELAY_MS / 1000 : (time_t)mn->o.fetch_s;
		while (!mn->stop && !mn->fetch_now &&
		       pthread_cond_timedwait(&mn->cv, &mn->mu, &dl) != ETIMEDOUT)
			;
		if (mn->stop)
			break;
		first = 0;
		mn->fetch_now = 0;
		gen = mn->fetch_gen;
		pthread_mutex_unlock(&mn->mu);
		if (mbn_now_ms() >= next_announce) {
			mbn_announce(mn);
			next_announce = mbn_now_ms() + ANNOUNCE_MS;
		}
		mbn_anchors_refresh(mn);
		r = mbn_fetch_all(mn);
		if (mn->o.enabled)
			mbox_store_expire(mn->ms, mbn_now_s());
		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&mn->mu);
		mn->fetch_last = r;
		mn->fetch_done_gen = gen;
		pthread_cond_broadcast(&mn->cv);
	}
	pthread_mutex_unlock(&mn->mu);
	return NULL;
}

int mbox_node_send(struct mbox_node *mn, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t *body, size_t len, uint32_t ttl_s, int *direct)
{
	struct mbn_send_result res;
	int err;

	if (!mn)
		return -EINVAL;
	err = mbn_send(mn, recipient, body, len, ttl_s, 0, &res);
	if (direct)
		*direct = res.direct;
	return err;
}

int mbox_node_new(struct mbox_node **out, const struct mbox_node_opts *o)
{
	struct mbox_node *mn;
	int err;

	if (!out || !o || !o->quic || !o->store || !o->id || o->nanchors > MBOX_MAX_ANCHORS)
		return -EINVAL;
	mn = calloc(1, sizeof(*mn));
	if (!mn)
		return -ENOMEM;
	mn->o = *o;
	if (!mn->o.fetch_s)
		mn->o.fetch_s = MBOX_DEF_FETCH_S;
	mn->ready_tail = &mn->ready;
	mn->anchors_from = "none";
	mbn_mu_cv_init(&mn->mu, &mn->cv);
	err = mbox_store_new(&mn->ms, o->store, &o->lim);
	if (!err)
		err = mbox_rate_new(&mn->rate, o->rate_per_min, o->rate_burst);
	if (!err && o->ctl)
		err = mbn_ctl_register(mn);
	if (!err)
		err = quic_node_register(o->quic, MBOX_ST, &mbn_srv_handler, mn);
	if (err) {
		mbox_rate_free(mn->rate);
		mbox_store_free(mn->ms);
		pthread_cond_destroy(&mn->cv);
		pthread_mutex_destroy(&mn->mu);
		free(mn);
		return err;
	}
	*out = mn;
	return 0;
}

int mbox_node_start(struct mbox_node *mn)
{
	int err;

	if (!mn)
		return -EINVAL;
	err = -log_thread_create(&mn->srv_thr, NULL, mbn_srv_thread, mn, "weft-mbox-srv");
	if (err)
		return err;
	mn->srv_started = 1;
	err = -log_thread_create(&mn->fetch_thr, NULL, fetch_thread, mn, "weft-mbox-get");
	if (err)
		return err;
	mn->fetch_started = 1;
	return 0;
}

void mbox_node_free(struct mbox_node *mn)
{
	struct mbn_pend *p;

	if (!mn)
		return;
	atomic_store(&mn->stopping, 1);
	pthread_mutex_lock(&mn->mu);
	mn->stop = 1;
	pthread_cond_broadcast(&mn->cv);
	pthread_mutex_unlock(&mn->mu);
	if (mn->srv_started)
		pthread_join(mn->srv_thr, NULL);
	if (mn->fetch_started)
		pthread_join(mn->fetch_thr, NULL);
	pthread_mutex_lock(&mn->mu);
	while ((p = mn->rx)) {
		mn->rx = p->next;
		mbn_pend_free(p);
	}
	while ((p = mn->ready)) {
		mn->ready = p->next;
		mbn_pend_free(p);
	}
	mn->ready_tail = &mn->ready;
	mn->npend = 0;
	mbox_store_free(mn->ms);
	mn->ms = NULL;
	mbox_rate_free(mn->rate);
	mn->rate = NULL;
	pthread_mutex_unlock(&mn->mu);
	/* mn itself goes back with the QUIC node's release of MBOX_ST */
}
