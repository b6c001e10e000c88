// SPDX-License-Identifier: MIT
/*
 * Super-seeding (BEP 16's idea on weft's fetch protocol; docs/CONTENT.md
 * "Super-seeding"): for content added on this node, for its first
 * superseed_s seconds, the bitmap a downloader gets in INFO and HAVE
 * answers shows only chunks offered to it: at most CN_SS_OFFER at a time,
 * each the chunk offered least so far (first those offered to nobody),
 * so the seed sends each chunk about once and the downloaders trade the
 * rest among themselves (rarest first, as always). An offer is done when
 * the downloader fetches the chunk from us, when it tells us it holds the
 * chunk (HAVE_HELD: it got it elsewhere, from another seed or downloader),
 * or after CN_SS_OFFER_TTL_MS (an older downloader that never tells).
 * Once every chunk was offered, a chunk is offered
 * again only CN_SS_SPREAD_MS after its last offer. A downloader offered
 * nothing new gets the true bitmap (it never starves): once it has said
 * for CN_SS_HUNGRY_MS that it has nothing to fetch from anyone
 * (HAVE_IDLE), after CN_SS_STARVE_MS otherwise; one that comes back on a
 * new connection (a restart: it may have lost chunks it fetched from us)
 * is treated as starved at once.
 * Everyone else, and every node after the window, sees the true bitmap.
 *
 * State: bounded (CN_SS_MAX contents, CN_SS_PEERS downloaders each, the
 * oldest replaced), under one mutex taken on INFO, HAVE and CHUNK answers
 * of super-seeded content only (a worker checks cn_ss_active lock-free
 * first). The choice itself (ss_offer) does no I/O.
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/identity.h"
#include "weft/util.h"

#define CN_SS_MAX 16		/* contents super-seeded at once */
#define CN_SS_PEERS 128		/* downloaders tracked per content */
/* Chunks offered to one downloader at a time: 4 (1 MiB) at first; doubled
 * up to CN_SS_OFFER_MAX (8 MiB) each time a window's worth of offers was
 * done, fetched from us or told held (a downloader asks for the next
 * offers while the last are still on their way: every offer done at once
 * would rarely happen), halved when an offer expired untaken (it is slow,
 * or got the chunk elsewhere and does not tell). A downloader that takes
 * all it is shown has nobody faster to trade with: a fixed 4 held it to 4
 * chunks per HAVE round. */
#define CN_SS_OFFER 4
#define CN_SS_OFFER_MAX 32
#define CN_SS_OFFER_TTL_MS 5000 /* an offer not fetched from us is done after this */
/* A chunk already offered is offered again only this long after its last
 * offer: time for the downloaders to trade it among themselves (BEP 16
 * waits to see it elsewhere; a seed of ours does not ask the others). */
#define CN_SS_SPREAD_MS 30000
/* A downloader offered nothing new, with no offer pending, that says it
 * has nothing to fetch from anyone (HAVE_IDLE) gets the true bitmap this
 * long after its last offer: every chunk it lacks was offered to others
 * within CN_SS_SPREAD_MS, and one offered to a downloader the others
 * cannot reach (behind a NAT that takes no hole punch) never spreads (a
 * 4 s distribution in a 21-node lab with 16 nodes behind NATs took 20-22
 * s, every node waiting on the last chunks). A downloader still fetching
 * from others waits CN_SS_STARVE_MS: given the true bitmap after 3 s
 * whether idle or not (stop 93), the seed of a 51-node lab sent 2.6-3.6x
 * the file; with the idle rule 1.3-2.1x, in ~3% more time (docs/CONTENT.md
 * "Super-seeding"). Idle for this long, not idle now: a downloader
 * between two chunks from others says HAVE_IDLE for a moment, and one
 * such moment 3 s after its last offer got it the true bitmap (the
 * bench's 20 downloaders of 64 MiB: the seed sent 1.0-1.7x the file on
 * an AMD EPYC Zen 4 host, the more the more such moments). */
#define CN_SS_HUNGRY_MS 3000
/* The same for a downloader still fetching from others, or an older node
 * that never says HAVE_IDLE. In 51-node labs of 30-47 s to 100% nearly
 * every downloader gets the true bitmap once near the end (45-50 such
 * answers a run) and the seed sends 1.9-2.5x the file; stop 97 tried 60 s
 * (chunks are offered again after CN_SS_SPREAD_MS anyway): 1.26-1.46x in
 * the same time in weft-only runs, but not kept: a seed host's upload
 * left over at the end is speed for the last downloaders at no cost to
 * anyone, which a lab of 51 nodes sharing 2 CPUs cannot show, and its
 * pairs against aria2 that hour were no better (docs/CONTENT.md
 * "Super-seeding"). */
#define CN_SS_STARVE_MS 20000
/* Another downloader seen within this long: p is not alone. */
#define CN_SS_SEEN_MS 20000
/* A downloader alone this long (no other one seen within CN_SS_SEEN_MS)
 * gets the true bitmap: with nobody to trade with, offers would only
 * throttle it to a few chunks per HAVE round (about 1 MiB/s). */
#define CN_SS_ALONE_MS 2000

struct ss_peer {
	uint64_t who, seen_ms, offer_ms; /* offer_ms: its last new offer (or first visit) */
	uint64_t first_ms;		 /* its first visit */
	uint64_t idle_ms; /* the first HAVE_IDLE of its current run of them; 0: none */
	uint64_t conn;			 /* the connection it asked on */
	uint64_t pend[CN_SS_OFFER_MAX], pend_ms[CN_SS_OFFER_MAX];
	unsigned int npend, win; /* win: offers at a time, CN_SS_OFFER.._MAX */
	unsigned int taken;	 /* offers done since win last changed */
	uint8_t *got;		 /* chunks it fetched from us or told us it holds (n bits) */
};

struct ss_item {
	uint8_t id[32];
	uint64_t start_ms, n, cursor; /* 0 start_ms: free */
	uint16_t *offers;	      /* per chunk: times offered */
	uint64_t *offer_ms;	      /* per chunk: last offered */
	struct ss_peer peers[CN_SS_PEERS];
	uint64_t offered, fetched, held; /* held: offers done by HAVE_HELD */
	uint64_t hungry;		 /* true bitmaps answered to idle downloaders (HAVE_IDLE) */
	uint64_t starved; /* the others: offered nothing new for CN_SS_STARVE_MS, or on a new
			     connection */
	int dirty; /* used since it was last cleared */
};

struct cn_ss_tab {
	pthread_mutex_t mu;
	atomic_uint active; /* items in use */
	struct ss_item it[CN_SS_MAX];
};

int cn_ss_init(struct content_node *cn)
{
	cn->ss = calloc(1, sizeof(*cn->ss));
	if (!cn->ss)
		return -ENOMEM;
	pthread_mutex_init(&cn->ss->mu, NULL);
	return 0;
}

static void item_clear(struct ss_item *it)
{
	if (!it->dirty)
		return; /* still as calloc left it: its pages stay untouched */
	for (unsigned int i = 0; i < CN_SS_PEERS; i++)
		free(it->peers[i].got);
	free(it->offers);
	free(it->offer_ms);
	memset(it, 0, sizeof(*it));
}

void cn_ss_free(struct content_node *cn)
{
	if (!cn->ss)
		return;
	for (unsigned int i = 0; i < CN_SS_MAX; i++)
		item_clear(&cn->ss->it[i]);
	pthread_mutex_destroy(&cn->ss->mu);
	free(cn->ss);
	cn->ss = NULL;
}

/* In use and past its window of win ms at now. */
static int expired(const struct ss_item *it, uint64_t now, uint64_t win)
{
	return it->start_ms && now >= it->start_ms && now - it->start_ms >= win;
}

void cn_ss_trim(struct content_node *cn, uint64_t now_ms)
{
	struct cn_ss_tab *t = cn->ss;
	uint64_t win = atomic_load(&cn->superseed_s) * 1000;

	if (!t || !atomic_load(&t->active))
		return;
	pthread_mutex_lock(&t->mu);
	for (unsigned int i = 0; i < CN_SS_MAX; i++) {
		struct ss_item *it = &t->it[i];

		if (expired(it, now_ms, win)) {
			item_clear(it);
			atomic_fetch_sub(&t->active, 1);
		}
	}
	pthread_mutex_unlock(&t->mu);
}

unsigned int cn_ss_slots_used(struct content_node *cn)
{
	unsigned int n = 0;

	pthread_mutex_lock(&cn->ss->mu);
	for (unsigned int i = 0; i < CN_SS_MAX; i++)
		n += cn->ss->it[i].dirty;
	pthread_mutex_unlock(&cn->ss->mu);
	return n;
}

static uint64_t who_of(const struct sockaddr_storage *a)
{
	const uint8_t *p = (const uint8_t *)a;
	size_t len = a->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h | 1;
}

/* The item of id still in its window (expired ones are freed): NULL if none. */
static struct ss_item *find(struct cn_ss_tab *t, const uint8_t *id, uint64_t now, uint64_t win_ms)
{
	for (unsigned int i = 0; i < CN_SS_MAX; i++) {
		struct ss_item *it = &t->it[i];

		if (!it->start_ms || memcmp(it->id, id, 32))
			continue;
		if (expired(it, now, win_ms)) {
			item_clear(it);
			atomic_fetch_sub(&t->active, 1);
			return NULL;
		}
		return it;
	}
	return NULL;
}

int cn_ss_add(struct content_node *cn, const uint8_t id[32], uint64_t nchunks)
{
	struct cn_ss_tab *t = cn->ss;
	struct ss_item *it = NULL;
	uint64_t now = util_now_ms(), win = atomic_load(&cn->superseed_s) * 1000;
	int rc = 0;

	if (!t || !win || !nchunks || nchunks > CN_INFO_MAX_N)
		return 0;
	pthread_mutex_lock(&t->mu);
	for (unsigned int i = 0; i < CN_SS_MAX && !it; i++)
		if (t->it[i].start_ms && !memcmp(t->it[i].id, id, 32))
			it = &t->it[i]; /* added again: the window starts over */
	/* The lowest slot free or past its window: the same few items (72
	 * KiB each) serve one new content after another, and a slot never
	 * used stays untouched until that many are super-seeded at once
	 * (in the soak, new content every 5 min on some node reached for
	 * a fresh slot each time: RSS in 72 KiB steps). */
	for (unsigned int i = 0; i < CN_SS_MAX && !it; i++)
		if (!t->it[i].start_ms || expired(&t->it[i], now, win))
			it = &t->it[i];
	if (!it) {
		/* full: the oldest gives way */
		it = &t->it[0];
		for (unsigned int i = 1; i < CN_SS_MAX; i++)
			if (t->it[i].start_ms < it->start_ms)
				it = &t->it[i];
	}
	if (it->start_ms)
		atomic_fetch_sub(&t->active, 1);
	item_clear(it);
	it->dirty = 1;
	it->offers = calloc(nchunks, sizeof(*it->offers));
	it->offer_ms = calloc(nchunks, sizeof(*it->offer_ms));
	if (!it->offers || !it->offer_ms) {
		item_clear(it);
		rc = -ENOMEM;
		goto out;
	}
	memcpy(it->id, id, 32);
	it->n = nchunks;
	/* seeds of the same content start at different chunks (their keys) */
	it->cursor = ((uint64_t)cn->id->pk[0] << 8 | cn->id->pk[1]) % nchunks;
	it->start_ms = now;
	atomic_fetch_add(&t->active, 1);
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* The downloader's entry: found, or the one seen longest ago. */
static struct ss_peer *peer_of(struct ss_item *it, uint64_t who, uint64_t now)
{
	struct ss_peer *old = &it->peers[0];

	for (unsigned int i = 0; i < CN_SS_PEERS; i++) {
		if (it->peers[i].who == who)
			return &it->peers[i];
		if (it->peers[i].seen_ms < old->seen_ms)
			old = &it->peers[i];
	}
	free(old->got);
	memset(old, 0, sizeof(*old));
	old->who = who;
	old->offer_ms = now;
	old->first_ms = now;
	old->win = CN_SS_OFFER;
	old->got = calloc((it->n + 7) / 8, 1);
	return old->got ? old : NULL;
}

static int pending(const struct ss_peer *p, uint64_t c)
{
	for (unsigned int k = 0; k < p->npend; k++)
		if (p->pend[k] == c)
			return 1;
	return 0;
}

/* Fill p's offers up to CN_SS_OFFER with the least-offered chunks we hold
 * (bits) that it has not fetched from us and is not offered, scanning from
 * the rotating cursor so equal counts go round. Pure. */
static void ss_offer(struct ss_item *it, struct ss_peer *p, const uint8_t *bits, uint64_t now)
{
	unsigned int k = 0;

	/* offers done: fetched (removed by cn_ss_fetched) or expired */
	for (unsigned int j = 0; j < p->npend; j++)
		if (now - p->pend_ms[j] < CN_SS_OFFER_TTL_MS) {
			p->pend[k] = p->pend[j];
			p->pend_ms[k++] = p->pend_ms[j];
		}
	if (k < p->npend && p->win > CN_SS_OFFER) {
		p->win /= 2; /* offers it did not take from us */
		p->taken = 0;
	}
	p->npend = k;
	while (p->npend < p->win) {
		uint64_t best = UINT64_MAX;
		unsigned int bestc = UINT_MAX;

		for (uint64_t s = 0; s < it->n; s++) {
			uint64_t c = (it->cursor + s) % it->n;

			if (!(bits[c / 8] >> (c % 8) & 1) || (p->got[c / 8] >> (c % 8) & 1) ||
			    pending(p, c) || it->offers[c] >= bestc ||
			    (it->offers[c] && now - it->offer_ms[c] < CN_SS_SPREAD_MS))
				continue;
			best = c;
			bestc = it->offers[c];
			if (!bestc)
				break; /* nobody has been offered it: cannot do better */
		}
		if (best == UINT64_MAX)
			break;
		if (it->offers[best] < UINT16_MAX)
			it->offers[best]++;
		if (bestc == 0)
			it->offered++;
		it->offer_ms[best] = now;
		it->cursor = (best + 1) % it->n;
		p->pend[p->npend] = best;
		p->pend_ms[p->npend++] = now;
		p->offer_ms = now;
	}
}

/* p has been the only downloader for CN_SS_ALONE_MS: nobody to trade
 * with, so super-seeding would only slow it down. */
static int alone(const struct ss_item *it, const struct ss_peer *p, uint64_t now)
{
	if (now - p->first_ms < CN_SS_ALONE_MS)
		return 0;
	for (unsigned int i = 0; i < CN_SS_PEERS; i++) {
		const struct ss_peer *q = &it->peers[i];

		if (q != p && q->who && now - q->seen_ms < CN_SS_SEEN_MS)
			return 0;
	}
	return 1;
}

int cn_ss_filter(struct content_node *cn, const uint8_t id[32], const struct sockaddr_storage *from,
		 uint64_t conn, uint8_t *bits, uint64_t n, int idle)
{
	return cn_ss_filter_at(cn, id, from, conn, bits, n, idle, util_now_ms());
}

int cn_ss_filter_at(struct content_node *cn, const uint8_t id[32],
		    const struct sockaddr_storage *from, uint64_t conn, uint8_t *bits, uint64_t n,
		    int idle, uint64_t now)
{
	struct cn_ss_tab *t = cn->ss;
	struct ss_item *it;
	struct ss_peer *p;
	int rc = 0;

	if (!t || !atomic_load(&t->active) || !from->ss_family)
		return 0;
	pthread_mutex_lock(&t->mu);
	it = find(t, id, now, atomic_load(&cn->superseed_s) * 1000);
	if (!it || it->n != n)
		goto out;
	p = peer_of(it, who_of(from), now);
	if (!p)
		goto out;
	p->seen_ms = now;
	if (p->conn != conn) {
		/* a new connection (a restart?): what it fetched from us
		 * before may be lost; starved, it gets the true bitmap now */
		if (p->conn) {
			memset(p->got, 0, (it->n + 7) / 8);
			p->npend = 0;
			p->offer_ms = 0;
		}
		p->conn = conn;
	}
	if (!idle)
		p->idle_ms = 0;
	else if (!p->idle_ms)
		p->idle_ms = now;
	if (alone(it, p, now))
		goto out;
	ss_offer(it, p, bits, now);
	/* Nothing to offer it for a while (every chunk it lacks is, as far
	 * as we know, on its way or with it): the true bitmap, so that no
	 * downloader ever starves on a super-seed; soon when it has had
	 * nothing to fetch from anyone for a while. */
	if (!p->npend && (now - p->offer_ms >= CN_SS_STARVE_MS ||
			  (idle && now - p->offer_ms >= CN_SS_HUNGRY_MS &&
			   now - p->idle_ms >= CN_SS_HUNGRY_MS))) {
		if (idle)
			it->hungry++;
		else
			it->starved++;
		goto out;
	}
	memset(bits, 0, (n + 7) / 8);
	for (unsigned int k = 0; k < p->npend; k++)
		bits[p->pend[k] / 8] |= (uint8_t)(1u << (p->pend[k] % 8));
	rc = 1;
out:
	pthread_mutex_unlock(&t->mu);
	return rc;
}

/* p holds chunk c: never offered to it again; an offer of c is done (the
 * window doubles once a window's worth is). 1 if c was offered to it
 * (pending). */
static int peer_holds(struct ss_peer *p, uint64_t c)
{
	p->got[c / 8] |= (uint8_t)(1u << (c % 8));
	for (unsigned int k = 0; k < p->npend; k++)
		if (p->pend[k] == c) {
			p->pend[k] = p->pend[--p->npend];
			p->pend_ms[k] = p->pend_ms[p->npend];
			if (p->win < CN_SS_OFFER_MAX && ++p->taken >= p->win) {
				p->win *= 2;
				p->taken = 0;
			}
			return 1;
		}
	return 0;
}

void cn_ss_held(struct content_node *cn, const uint8_t id[32], const struct sockaddr_storage *from,
		uint64_t conn, uint32_t first, uint32_t mask)
{
	struct cn_ss_tab *t = cn->ss;
	uint64_t now = util_now_ms(), who;
	struct ss_item *it;

	if (!t || !atomic_load(&t->active) || !from->ss_family || !mask)
		return;
	who = who_of(from);
	pthread_mutex_lock(&t->mu);
	it = find(t, id, now, atomic_load(&cn->superseed_s) * 1000);
	for (unsigned int i = 0; it && i < CN_SS_PEERS; i++) {
		struct ss_peer *p = &it->peers[i];

		/* only on the connection it was offered on: a restart's
		 * new connection starts over (cn_ss_filter) */
		if (p->who != who || p->conn != conn)
			continue;
		for (unsigned int b = 0; b < 32; b++) {
			uint64_t c = (uint64_t)first + b;

			if (!(mask >> b & 1) || c >= it->n || !peer_holds(p, c))
				continue;
			/* The offer was not needed: it no longer counts as one
			 * (else a downloader telling lies for nothing could
			 * mark every chunk offered, and others would be
			 * offered nothing for CN_SS_SPREAD_MS). */
			it->held++;
			if (it->offers[c] && it->offers[c] < UINT16_MAX && !--it->offers[c])
				it->offered--;
		}
		break;
	}
	pthread_mutex_unlock(&t->mu);
}

void cn_ss_fetched(struct content_node *cn, const uint8_t id[32],
		   const struct sockaddr_storage *from, uint64_t index)
{
	struct cn_ss_tab *t = cn->ss;
	uint64_t now = util_now_ms(), who;
	struct ss_item *it;

	if (!t || !atomic_load(&t->active) || !from->ss_family)
		return;
	who = who_of(from);
	pthread_mutex_lock(&t->mu);
	it = find(t, id, now, atomic_load(&cn->superseed_s) * 1000);
	if (it && index < it->n) {
		it->fetched++;
		for (unsigned int i = 0; i < CN_SS_PEERS; i++) {
			struct ss_peer *p = &it->peers[i];

			if (p->who != who)
				continue;
			peer_holds(p, index);
			break;
		}
	}
	pthread_mutex_unlock(&t->mu);
}

json_t *cn_ss_json(struct content_node *cn)
{
	struct cn_ss_tab *t = cn->ss;
	uint64_t now = util_now_ms(), win = atomic_load(&cn->superseed_s) * 1000;
	json_t *a = json_array();
	char hex[65];

	if (!t || !a)
		return a;
	pthread_mutex_lock(&t->mu);
	for (unsigned int i = 0; i < CN_SS_MAX; i++) {
		struct ss_item *it = &t->it[i];

		if (!it->start_ms || expired(it, now, win))
			continue;
		util_hex(hex, it->id, 32);
		json_array_append_new(
		    a, json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "id", hex, "nchunks",
				 (json_int_t)it->n, "offered_once", (json_int_t)it->offered,
				 "chunks_served", (json_int_t)it->fetched, "offers_held",
				 (json_int_t)it->held, "idle_true_bitmaps", (json_int_t)it->hungry,
				 "starved_true_bitmaps", (json_int_t)it->starved, "remaining_s",
				 (json_int_t)((win - (now - it->start_ms)) / 1000)));
	}
	pthread_mutex_unlock(&t->mu);
	return a;
}
