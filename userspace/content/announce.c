// SPDX-License-Identifier: MIT
/*
 * Announcing: the ids this node serves (content ids, public share ids),
 * each announced on the DHT (announce_peer through get_peers) at once
 * when new and again every CONTENT_REANNOUNCE_S, at most
 * CN_ANNOUNCE_PER_S a second, by one thread. Owns the announcement list
 * and its thread (struct content_node: amu, acond, athr, ann); calls
 * only the DHT.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/content_node_int.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/log.h"
#include "weft/util.h"

/* Announcements started per second: 8, so a store of 65536 blobs is
 * announced in ~2.3 h at start and the DHT's own lookup table (bounded)
 * never fills with ours. New content jumps the queue. */
#define CN_ANNOUNCE_PER_S 8
/* Announcement list bound: every blob plus every share. */
#define CN_ANN_MAX (CSTORE_DEFAULT_MAX_BLOBS + 4096u)

struct cn_ann {
	uint8_t id[32];
	uint8_t len;
	uint64_t due_s; /* monotonic seconds */
};

void cn_announce(struct content_node *cn, const uint8_t *id, size_t len)
{
	unsigned int i;

	pthread_mutex_lock(&cn->amu);
	for (i = 0; i < cn->nann; i++)
		if (cn->ann[i].len == len && !memcmp(cn->ann[i].id, id, len))
			break;
	if (i == cn->nann) {
		if (cn->nann == cn->capann) {
			unsigned int nc = cn->capann ? cn->capann * 2 : 64;
			struct cn_ann *na;

			if (nc > CN_ANN_MAX)
				nc = CN_ANN_MAX;
			if (cn->nann == nc) {
				pthread_mutex_unlock(&cn->amu);
				log_warn(CN_MOD, "announcement list full (%u)", CN_ANN_MAX);
				return;
			}
			na = realloc(cn->ann, nc * sizeof(*na));
			if (!na) {
				pthread_mutex_unlock(&cn->amu);
				return;
			}
			cn->ann = na;
			cn->capann = nc;
		}
		memset(&cn->ann[i], 0, sizeof(cn->ann[i]));
		memcpy(cn->ann[i].id, id, len);
		cn->ann[i].len = (uint8_t)len;
		cn->nann++;
	}
	cn->ann[i].due_s = 0; /* now */
	pthread_cond_signal(&cn->acond);
	pthread_mutex_unlock(&cn->amu);
}

struct cn_ann_call {
	const uint8_t *ih;
	uint16_t port;
	int rc;
};

static void ann_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct cn_ann_call *c = arg;

	c->rc = dht_announce(dht, c->ih, c->port, 0, now, NULL, NULL);
}

/*
 * Announcement budget: a token bucket of CN_ANNOUNCE_PER_S per second with a
 * depth of CN_ANNOUNCE_PER_S, kept across wake-ups. A wake-up (new content,
 * cn_announce) never refills it, so a burst of adds costs the DHT contacts
 * at most CN_ANNOUNCE_PER_S announcements (each one get_peers + one
 * announce_peer per contacted node) in any one second.
 */
struct cn_ann_budget {
	uint64_t tokens_milli; /* 1000 = one announcement */
	uint64_t last_ms;
};

static unsigned int ann_budget_avail(struct cn_ann_budget *b, uint64_t now_ms)
{
	const uint64_t cap = (uint64_t)CN_ANNOUNCE_PER_S * 1000;

	if (!b->last_ms) {
		b->tokens_milli = cap;
	} else if (now_ms > b->last_ms) {
		uint64_t add = (now_ms - b->last_ms) * CN_ANNOUNCE_PER_S;

		b->tokens_milli = b->tokens_milli + add > cap ? cap : b->tokens_milli + add;
	}
	b->last_ms = now_ms;
	return (unsigned int)(b->tokens_milli / 1000);
}

/* Milliseconds until the bucket holds one announcement again. */
static uint64_t ann_budget_wait_ms(const struct cn_ann_budget *b)
{
	uint64_t missing = b->tokens_milli >= 1000 ? 0 : 1000 - b->tokens_milli;

	return (missing + CN_ANNOUNCE_PER_S - 1) / CN_ANNOUNCE_PER_S;
}

static void *announcer(void *arg)
{
	struct content_node *cn = arg;
	struct cn_ann_budget budget = {0};
	struct timespec ts;

	pthread_mutex_lock(&cn->amu);
	while (!atomic_load(&cn->stopping)) {
		uint64_t now_ms = util_now_ms(), now = now_ms / 1000, wait_ms = 1000;
		unsigned int avail = ann_budget_avail(&budget, now_ms), started = 0;
		int pending = 0;

		for (unsigned int i = 0; i < cn->nann; i++) {
			struct cn_ann_call c = {.ih = cn->ann[i].id, .port = cn->quic_port};

			if (cn->ann[i].due_s > now)
				continue;
			if (started == avail) {
				pending = 1;
				break;
			}
			dhtnode_run(cn->dht, ann_fn, &c);
			started++;
			budget.tokens_milli -= 1000;
			if (c.rc == 0) {
				cn->ann[i].due_s = now + CONTENT_REANNOUNCE_S;
				atomic_fetch_add(&cn->announces, 1);
			} else {
				cn->ann[i].due_s = now + 5; /* DHT busy: soon again */
				atomic_fetch_add(&cn->announce_fail, 1);
			}
		}
		if (pending)
			wait_ms = ann_budget_wait_ms(&budget);
		if (!wait_ms)
			wait_ms = 1;
		clock_gettime(CLOCK_MONOTONIC, &ts); /* cn->acond's clock */
		ts.tv_sec += (time_t)(wait_ms / 1000);
		ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cn->acond, &cn->amu, &ts);
	}
	pthread_mutex_unlock(&cn->amu);
	return NULL;
}

int cn_announce_start(struct content_node *cn)
{
	int rc;

	if (!cn->dht)
		return 0;
	rc = log_thread_create(&cn->athr, NULL, announcer, cn);
	if (rc)
		return rc;
	cn->athr_started = 1;
	return 0;
}

void cn_announce_stop(struct content_node *cn)
{
	pthread_mutex_lock(&cn->amu);
	pthread_cond_broadcast(&cn->acond);
	pthread_mutex_unlock(&cn->amu);
	if (cn->athr_started)
		pthread_join(cn->athr, NULL);
	cn->athr_started = 0;
	free(cn->ann);
	cn->ann = NULL;
	cn->nann = cn->capann = 0;
}
