// SPDX-License-Identifier: MIT
/*
 * Mailbox hosts in the DHT (docs/MAILBOX.md, "Anchors"): a node that keeps
 * a mailbox announces its QUIC port under SHA-1("weft:mailbox"); a node
 * with neither mailbox.anchors nor a mailbox relay looks them up there and
 * learns each host's key from a handshake (a ping), as the relay does.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailbox/mbn_int.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#define FIND_MS 15000 /* the lookup's wait */
#define PING_MS 3000  /* a found host's handshake */
#define FOUND_MAX 8   /* addresses tried */

/* SHA-1("weft:mailbox") = e27327e06d0ad9940de2d8bd84ccddb9cbb04b01 (docs/PROTOCOL.md) */
static void infohash(uint8_t ih[DHT_ID_LEN])
{
	dht_bep44_target_immutable(ih, (const uint8_t *)MBOX_DHT_NAME, strlen(MBOX_DHT_NAME));
}

static void announce_done(void *arg, const struct dht_result *res)
{
	struct mbox_node *mn = arg;

	if (atomic_load(&mn->stopping) || res->status == -ECANCELED)
		return;
	pthread_mutex_lock(&mn->mu);
	mn->announces++;
	if (res->stored)
		mn->announces_stored++;
	pthread_mutex_unlock(&mn->mu);
}

static void announce_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct mbox_node *mn = arg;
	uint8_t ih[DHT_ID_LEN];

	infohash(ih);
	dht_announce(dht, ih, mn->o.quic_port, 0, now, announce_done, mn);
}

void mbn_announce(struct mbox_node *mn)
{
	if (mn->o.dht && mn->o.enabled && dhtnode_run(mn->o.dht, announce_fn, mn))
		log_debug("mailbox", "announce not started");
}

/* A lookup the fetcher waits for; held by it and by the DHT's callback. */
struct find_job {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic int refs;
	int done;
	unsigned int n;
	struct io_addr found[FOUND_MAX];
};

static void job_put(struct find_job *j)
{
	if (atomic_fetch_sub(&j->refs, 1) != 1)
		return;
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j);
}

static void find_done(void *arg, const struct dht_result *res)
{
	struct find_job *j = arg;

	pthread_mutex_lock(&j->mu);
	for (size_t i = 0; i < res->npeers && j->n < FOUND_MAX; i++)
		if (!io_addr_from_sockaddr(&j->found[j->n], (const struct sockaddr *)&res->peers[i],
					   sizeof(res->peers[i])))
			j->n++;
	j->done = 1;
	pthread_cond_broadcast(&j->cv);
	pthread_mutex_unlock(&j->mu);
	job_put(j);
}

static void find_fn(struct dht *dht, void *arg, uint64_t now)
{
	uint8_t ih[DHT_ID_LEN];

	infohash(ih);
	if (dht_get_peers(dht, ih, now, find_done, arg)) {
		struct dht_result none = { .status = -ENOSPC };

		find_done(arg, &none);
	}
}

unsigned int mbn_dht_anchors(struct mbox_node *mn, struct mbn_anchor *out, unsigned int max)
{
	struct find_job *j;
	struct timespec dl;
	unsigned int n = 0, found;
	int rc = 0;

	if (!mn->o.dht || !(j = calloc(1, sizeof(*j))))
		return 0;
	mbn_mu_cv_init(&j->mu, &j->cv);
	atomic_init(&j->refs, 2);
	if (dhtnode_run(mn->o.dht, find_fn, j)) {
		atomic_fetch_sub(&j->refs, 1);
		goto out;
	}
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += FIND_MS / 1000;
	pthread_mutex_lock(&j->mu);
	while (!j->done && rc != ETIMEDOUT && !atomic_load(&mn->stopping))
		rc = pthread_cond_timedwait(&j->cv, &j->mu, &dl);
	found = j->done ? j->n : 0;
	pthread_mutex_unlock(&j->mu);
	for (unsigned int i = 0; i < found && n < max && !atomic_load(&mn->stopping); i++) {
		struct quic_node_ping_result pr;
		char addr[64];

		io_addr_fmt(&j->found[i], addr, sizeof(addr));
		if (quic_node_ping(mn->o.quic, addr, PING_MS, &pr) ||
		    !memcmp(pr.peer_key, mn->o.id->pk, MBOX_KEY_LEN))
			continue; /* silent, or ourselves */
		memcpy(out[n].key, pr.peer_key, MBOX_KEY_LEN);
		out[n].addr = j->found[i];
		mbn_target_of(out[n].target, pr.peer_key, &j->found[i]);
		n++;
	}
out:
	job_put(j);
	return n;
}
