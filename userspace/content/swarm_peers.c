// SPDX-License-Identifier: MIT
/*
 * A download's peer set (below the job's state machine in swarm.c, above
 * its requests on the wire in swarm_conn.c): the provider table of a job
 * (explicit targets, DHT get_peers results, peer exchange hints: bounded,
 * a slot given away only by a provider gone without a fault), the DHT
 * lookups that find providers, and the availability counts of their
 * bitmaps. Calls swarm_conn.c to dial; nothing of swarm.c.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "content/swarm_int.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

/* ------------------------------------------------------------- lookups */

/* get_peers: the DHT calls back on a worker; the waiter may have given up,
 * so the context is shared and freed by whoever is last. The callback
 * wakes the waiting job (its j->cond, `wake`), which then dials the
 * providers found at once: polled alone (CN_WAIT_MS), each download
 * started ~20 ms after its lookup had answered (docs/CONTENT.md "A
 * lookup's answer wakes its job"). */
struct cn_lk {
	pthread_mutex_t mu;
	int refs, n;
	atomic_int done; /* set under mu once peers[] is final */
	struct sockaddr_storage peers[CN_LOOKUP_MAX];
	uint8_t ih[20];
	int rc;
	/* the job's condition until it lets go (cn_lookup_put: NULL), and
	 * whether the callback is using it, which the letting go waits out */
	_Atomic(pthread_cond_t *) wake;
	atomic_int waking;
};

static void lk_put(struct cn_lk *lk)
{
	int last;

	pthread_mutex_lock(&lk->mu);
	last = --lk->refs == 0;
	pthread_mutex_unlock(&lk->mu);
	if (last) {
		pthread_mutex_destroy(&lk->mu);
		free(lk);
	}
}

/* The job sees the answer now, not at its next poll. Signalled without
 * j->mu (the job holds it while it lets go, cn_lookup_put): a signal that
 * lands between cn_job_sleep's last look at `done` and its wait is lost,
 * and the poll (CN_WAIT_MS) finds the answer as before. Never blocks, so
 * cn_lookup_put's wait for it is short. */
static void lk_wake(struct cn_lk *lk)
{
	pthread_cond_t *c;

	atomic_store(&lk->waking, 1); /* before wake is read: cn_lookup_put */
	c = atomic_load(&lk->wake);
	if (c)
		pthread_cond_signal(c);
	atomic_store(&lk->waking, 0);
}

static void lk_done(void *arg, const struct dht_result *res)
{
	struct cn_lk *lk = arg;

	pthread_mutex_lock(&lk->mu);
	for (size_t i = 0; i < res->npeers && lk->n < CN_LOOKUP_MAX; i++)
		lk->peers[lk->n++] = res->peers[i];
	lk->done = 1;
	pthread_mutex_unlock(&lk->mu);
	lk_wake(lk);
	lk_put(lk);
}

static void lk_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct cn_lk *lk = arg;

	lk->rc = dht_get_peers(dht, lk->ih, now, lk_done, lk);
	if (lk->rc) { /* no callback will come: done, with no peers */
		pthread_mutex_lock(&lk->mu);
		lk->done = 1;
		pthread_mutex_unlock(&lk->mu);
		lk_wake(lk);
		lk_put(lk);
	}
}

/* DHT get_peers on ih (20 bytes, read during the call only), without
 * waiting: NULL when it cannot start (no DHT, too many lookups). Poll
 * returns -EAGAIN until done, then how many addresses went to out (at
 * most cap, CN_LOOKUP_MAX kept); wake (may be NULL) is signalled when it
 * is done, until cn_lookup_put releases it (any time). */
static struct cn_lk *lookup_start(struct content_node *cn, const uint8_t ih[20],
				  pthread_cond_t *wake)
{
	struct cn_lk *lk;

	if (!cn->dht)
		return NULL;
	lk = calloc(1, sizeof(*lk));
	if (!lk)
		return NULL;
	pthread_mutex_init(&lk->mu, NULL);
	atomic_init(&lk->wake, wake);
	atomic_init(&lk->waking, 0);
	lk->refs = 2; /* ours and the callback's (lk_done, or lk_fn on failure) */
	memcpy(lk->ih, ih, sizeof(lk->ih));
	if (dhtnode_run(cn->dht, lk_fn, lk)) {
		lk_put(lk); /* lk_fn never runs: drop its reference too */
		lk_put(lk);
		return NULL;
	}
	return lk;
}

static int lookup_poll(struct cn_lk *lk, struct sockaddr_storage *out, size_t cap)
{
	int n;

	pthread_mutex_lock(&lk->mu);
	if (!lk->done) {
		pthread_mutex_unlock(&lk->mu);
		return -EAGAIN;
	}
	n = lk->n < (int)cap ? lk->n : (int)cap;
	memcpy(out, lk->peers, (size_t)n * sizeof(*out));
	pthread_mutex_unlock(&lk->mu);
	return n;
}

void cn_job_sleep(struct cn_job *j, unsigned int ms)
{
	struct timespec ts;

	if (j->lk) {
		if (atomic_load(&j->lk->done))
			return; /* answered since the job polled: lk_wake's window */
#ifdef WEFT_TEST_HOOKS
		if (j->cn->test_lookup_poll_ms)
			ms = j->cn->test_lookup_poll_ms;
#endif
	}
	clock_gettime(CLOCK_MONOTONIC, &ts); /* j->cond's clock (cn_job_start) */
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(&j->cond, &j->mu, &ts);
}

void cn_lookup_put(struct cn_lk *lk)
{
	if (!lk)
		return;
	atomic_store(&lk->wake, NULL); /* then no callback signals it */
	while (atomic_load(&lk->waking))
		sched_yield();
	lk_put(lk);
}

/* ------------------------------------------------------------ providers */

/* Count p's bitmap in (add > 0) or out of the job's availability counts
 * (once each way). Called with j->mu held. */
void cn_avail_account(struct cn_job *j, struct cn_peer *p, int add)
{
	if (!j->avail || !p->bits || p->counted == (add > 0))
		return;
	for (uint64_t i = 0; i < j->nchunks; i++)
		if (p->bits[i]) {
			if (add > 0)
				j->avail[i]++;
			else if (j->avail[i])
				j->avail[i]--;
		}
	p->counted = add > 0;
	j->order_stale |= add > 0; /* chunks it has may be eligible now */
}

/* A provider slot that can be given to another: gone without a fault,
 * not ourselves, no request of it left to account. -1 if none. */
static int reusable_slot(const struct cn_job *j)
{
	for (unsigned int k = 0; k < j->npeers; k++) {
		const struct cn_peer *p = &j->peers[k];
		unsigned int i;

		if (p->state != P_DEAD || p->faults || p->self || p->seed)
			continue;
		for (i = 0; i < CN_MAX_REQS; i++)
			if (j->reqs[i].used && j->reqs[i].peer == (int)k)
				break;
		if (i == CN_MAX_REQS)
			return (int)k;
	}
	return -1;
}

/* Room in the provider table for peers found by exchange: a free slot
 * only. Slots of providers that went away are refilled from the DHT (at
 * most every 15 s): refilling them from PEERS answers made a 50-node lab
 * dial ~900 providers per download (each a handshake and a 32 KiB INFO)
 * as loaded peers timed out and were replaced. */
int cn_pex_room(const struct cn_job *j)
{
	return j->npeers < CONTENT_MAX_PROVIDERS;
}

uint64_t cn_job_rand(struct cn_job *j)
{
	uint64_t x = j->rng;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return j->rng = x;
}

/* Called with j->mu held. */
void cn_add_peer(struct cn_job *j, const struct sockaddr_storage *ss, socklen_t alen)
{
	struct cn_peer *p;
	unsigned int i;

	for (i = 0; i < j->npeers; i++)
		if (cn_same_addr(&j->peers[i].addr, ss)) {
			p = &j->peers[i];
			if (p->state != P_DEAD || p->faults || p->self)
				return;
			goto dial; /* a dead provider found again: one more chance */
		}
	if (j->npeers == CONTENT_MAX_PROVIDERS) {
		/* Full: a provider that went away without a fault takes no
		 * slot from one just found (its stats go with it). */
		int k = reusable_slot(j);
		struct cn_cc *old;

		if (k < 0)
			return;
		p = &j->peers[k];
		cn_avail_account(j, p, -1);
		free(p->bits);
		old = p->cc; /* let go of below */
		memset(p, 0, sizeof(*p));
		p->cc = old;
	} else {
		p = &j->peers[j->npeers++];
		memset(p, 0, sizeof(*p));
	}
	p->addr = *ss;
	p->alen = alen;
	p->score = 100;
	if (!j->t_first_peer)
		j->t_first_peer = util_now_ms();
	util_fmt_addr(ss, p->name, sizeof(p->name));
dial:
	if (!cn_cc_new(j, p)) {
		p->state = P_DEAD;
		return;
	}
	p->inflight = 0;
	p->depth = j->cn->per_provider < CN_DEPTH_START ? j->cn->per_provider : CN_DEPTH_START;
	p->ans_ms = 0;
	p->cut_at = 0;
	p->state = P_CONNECTING;
	p->info = 0;
	p->pex = 0;
	p->mstate = 0;
	p->fails_row = 0;
	if (cn_conn_dial(j, p))
		p->state = P_DEAD;
}

/* Explicit providers now, DHT providers when the lookup answers
 * (cn_poll_lookup). */
void cn_gather(struct cn_job *j, const uint8_t *ih)
{
	unsigned int k;

	for (k = 0; k < j->rq.nfrom; k++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		uint8_t key[QUIC_KEY_LEN];
		int have_key;

		if (!quic_node_parse_target(j->rq.from[k], QUIC_NODE_DEF_PORT, key, &have_key, &ss,
					    &sl))
			cn_add_peer(j, &ss, sl);
	}
	/* LAN peers that announced ih (BEP 14): found without the DHT */
	if (j->cn->lan_fn) {
		struct sockaddr_storage lan[CN_LAN_MAX];
		size_t nl = j->cn->lan_fn(j->cn->lan_arg, ih, lan, CN_LAN_MAX);

		for (size_t i = 0; i < nl && i < CN_LAN_MAX; i++) {
			cn_add_peer(j, &lan[i],
				 lan[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
							     : sizeof(struct sockaddr_in6));
			atomic_fetch_add(&j->cn->lan_found, 1);
		}
	}
	/* Providers dropped for timeouts (overloaded, not lying) get one more
	 * chance at each lookup: one may be the only holder of what is
	 * missing, and neither the DHT nor a peer may name it again. */
	for (k = 0; k < j->npeers; k++)
		if (j->peers[k].state == P_DEAD && !j->peers[k].faults && !j->peers[k].self)
			cn_add_peer(j, &j->peers[k].addr, j->peers[k].alen);
	j->last_lookup = util_now_ms();
	if (!j->lk && !j->lk_starting) {
		struct cn_lk *lk;

		/* Starting a lookup waits for DHT worker 0 (dhtnode_run),
		 * whose QUIC callbacks for this job take j->mu (cc_enter,
		 * swarm_conn.c): held across the wait, the worker stopped
		 * on the job's lock until the wait's 5 s deadline gave up
		 * the lookup, and with it every connection of the node
		 * stalled (docs/LAB.md). */
		j->lk_starting = 1;
		pthread_mutex_unlock(&j->mu);
		lk = lookup_start(j->cn, ih, &j->cond);
		pthread_mutex_lock(&j->mu);
		j->lk_starting = 0;
		j->lk = lk;
		j->nlookups++;
	}
}

unsigned int cn_peers_notfound(const struct cn_job *j)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < j->npeers; i++) {
		const struct cn_peer *p = &j->peers[i];

		n += p->state == P_UP && p->info == 3 && p->nf_n && p->nf_at == p->info_at;
	}
	return n;
}

void cn_poll_lookup(struct cn_job *j)
{
	struct sockaddr_storage found[CN_LOOKUP_MAX];
	int n;

	if (!j->lk || (n = lookup_poll(j->lk, found, CN_LOOKUP_MAX)) == -EAGAIN)
		return;
	cn_lookup_put(j->lk);
	j->lk = NULL;
	/* In a random order: downloaders that find the same peers fill
	 * their provider tables with different ones. */
	for (int i = n - 1; i > 0; i--) {
		int k = (int)(cn_job_rand(j) % (uint64_t)(i + 1));
		struct sockaddr_storage x = found[i];

		found[i] = found[k];
		found[k] = x;
	}
	for (int i = 0; i < n; i++)
		cn_add_peer(j, &found[i],
			 found[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
						       : sizeof(struct sockaddr_in6));
}

unsigned int cn_refresh_gap(unsigned int gap, uint64_t gained, unsigned int told)
{
	if (gained < CN_INFO_FAST_GAIN && told >= CN_INFO_FAST_GAIN)
		return CN_INFO_TOLD_MS;
	if (gained >= CN_INFO_FAST_GAIN || gap < CN_INFO_FAST_MS)
		return CN_INFO_FAST_MS;
	return gap >= CN_INFO_REFRESH_MS / 2 ? CN_INFO_REFRESH_MS : gap * 2;
}

unsigned int cn_told_counts(unsigned int told, unsigned int *told_n, uint64_t nchunks)
{
	if (told < CN_INFO_FAST_GAIN || *told_n > nchunks / CN_INFO_FAST_GAIN)
		return 0;
	(*told_n)++;
	return told;
}

int cn_offers_taken(const uint32_t *shown, unsigned int n, const uint8_t *have, const uint8_t *busy)
{
	if (!n || !have || !busy)
		return 0;
	for (unsigned int i = 0; i < n; i++)
		if (!have[shown[i]] && !busy[shown[i]])
			return 0;
	return 1;
}

unsigned int cn_offers_held(const uint32_t *shown, unsigned int n, const uint8_t *have)
{
	unsigned int k = 0;

	for (unsigned int i = 0; have && i < n; i++)
		k += have[shown[i]] != 0;
	return k;
}

/* When p, partial and idle (nothing more to ask of it though the job has
 * room for more: it showed nothing we still lack, or, showing a
 * super-seed's offers, every one of them is asked for and it has room for
 * another request), is to be asked for its bitmap again: 0 if not (the
 * CN_INFO_REFRESH_MS round asks). Offers of which CN_INFO_FAST_GAIN are
 * held: at once (CN_INFO_OFFERS_MS). */
uint64_t cn_idle_refresh_at(const struct cn_job *j, const struct cn_peer *p, uint64_t t)
{
	unsigned int gap = p->refresh_gap ? p->refresh_gap : CN_INFO_FAST_MS;

	if (p->state != P_UP || p->info != 2 || !p->partial || p->refresh || p->backoff_until > t ||
	    j->inflight >= j->cn->max_parallel)
		return 0;
	if (p->inflight &&
	    (p->inflight >= p->depth || !cn_offers_taken(p->shown, p->nshown, j->have, j->busy)))
		return 0;
	if (gap > CN_INFO_OFFERS_MS &&
	    cn_offers_held(p->shown, p->nshown, j->have) >= CN_INFO_FAST_GAIN)
		gap = CN_INFO_OFFERS_MS;
	return p->info_at + gap;
}

unsigned int cn_held_mask(const uint32_t *shown, unsigned int n, const uint8_t *have,
			  uint32_t *first, uint32_t *mask)
{
	unsigned int bits = 0;

	*first = UINT32_MAX;
	*mask = 0;
	for (unsigned int i = 0; have && i < n; i++)
		if (have[shown[i]] && shown[i] < *first)
			*first = shown[i];
	for (unsigned int i = 0; *first != UINT32_MAX && i < n; i++)
		if (have[shown[i]] && shown[i] - *first < 32 &&
		    !(*mask >> (shown[i] - *first) & 1)) {
			*mask |= 1u << (shown[i] - *first);
			bits++;
		}
	return bits;
}

int cn_refresh_ask(struct cn_job *j, unsigned int k, int idle)
{
	struct cn_peer *p = &j->peers[k];
	int kind = p->nohave ? K_INFO : K_HAVE;
	uint32_t first, mask;
	unsigned int told = 0;

	if (kind == K_HAVE && !p->noheld)
		told = cn_held_mask(p->shown, p->nshown, j->have, &first, &mask);
	if (told)
		kind = K_HELD;
	/* nothing to fetch from anyone after the last pick: a super-seed
	 * shows the true bitmap sooner (CN_SS_HUNGRY_MS) */
	if (kind != K_INFO && j->starved && !j->inflight && !p->noheld && !p->noidle) {
		kind = K_IDLE;
		if (!told)
			first = mask = 0;
	}
	if (cn_req_open(j, (int)k, kind,
			kind == K_HELD || kind == K_IDLE ? (uint64_t)mask << 32 | first : 0))
		return 0;
	p->told = cn_told_counts(told, &p->told_n, j->nchunks);
	j->held_told += told != 0;
	j->idle_told += kind == K_IDLE;
	p->refresh = 1;
	j->refreshes++;
	j->refreshes_idle += idle != 0;
	return 1;
}

/* Ask every idle partial provider whose refresh is due (after a pick). */
void cn_refresh_idle(struct cn_job *j, uint64_t t)
{
	for (unsigned int k = 0; k < j->npeers; k++) {
		uint64_t due = cn_idle_refresh_at(j, &j->peers[k], t);

		if (due && due <= t)
			cn_refresh_ask(j, k, 1);
	}
}
