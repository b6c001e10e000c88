// SPDX-License-Identifier: MIT
/*
 * Simulated network: hosts, NAT boxes, per-host and per-pair link settings,
 * one seeded generator, per-queue delivery heaps ordered by (time, seq).
 * See include/weft/simnet.h and docs/SIM.md.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "weft/simnet.h"
#include "weft/util.h"

struct simnet_queue {
	int attached;
	int efd;
	struct simnet_pkt **heap; /* min-heap on (at, seq), queue_max slots */
	unsigned int len;
};

struct simnet_host {
	struct simnet *sn;
	struct io_addr addr; /* port 0 */
	struct simnet_nat *nat;
	struct simnet_link link;
	int down;
	unsigned int nq; /* attached queues */
	struct simnet_queue q[SIMNET_MAX_QUEUES];
};

struct nat_map {
	int used;
	struct simnet_host *in; /* inside host */
	uint16_t in_port, out_port;
	struct io_addr remote; /* address-dependent mapping: the remote address */
	uint64_t last_ns;
	struct io_addr perm[SIMNET_NAT_MAX_PERMS]; /* remote endpoints sent to */
	unsigned int nperm, perm_next;
};

struct simnet_nat {
	struct simnet *sn;
	struct io_addr outside;
	enum simnet_nat_filter filter;
	enum simnet_nat_mapping mapping;
	uint64_t timeout_ns;
	uint16_t next_port;
	struct nat_map map[SIMNET_NAT_MAX_MAPS];
};

struct link_ent {
	struct io_addr a, b;
	struct simnet_link l;
};

struct simnet {
	pthread_mutex_t mu;
	struct simnet_opts opts;
	uint64_t vnow, offset, rng, seq;
	struct simnet_host *hosts[SIMNET_MAX_HOSTS];
	unsigned int nhosts;
	struct simnet_nat *nats[SIMNET_MAX_NATS];
	unsigned int nnats;
	struct link_ent links[SIMNET_MAX_LINKS];
	unsigned int nlinks;
	struct simnet_stats st;
};

/* Virtual time starts at 1000 s, so "now - something" never underflows in
 * code that assumes a running clock. */
#define SIMNET_EPOCH_NS 1000000000000ULL

static int addr_eq(const struct io_addr *a, const struct io_addr *b)
{
	size_t n = a->family == AF_INET ? 4 : 16;

	return a->family == b->family && !memcmp(a->addr, b->addr, n);
}

static int ep_eq(const struct io_addr *a, const struct io_addr *b)
{
	return addr_eq(a, b) && a->port == b->port;
}

/* xorshift64*: one generator per network, so a seed fixes every draw. */
static uint64_t rnd(struct simnet *sn)
{
	sn->rng ^= sn->rng >> 12;
	sn->rng ^= sn->rng << 25;
	sn->rng ^= sn->rng >> 27;
	return sn->rng * 2685821657736338717ULL;
}

static uint64_t now_locked(struct simnet *sn)
{
	if (sn->opts.clock == SIMNET_CLOCK_MANUAL)
		return sn->vnow;
	return util_now_ns() + sn->offset;
}

uint64_t simnet_now_ns(void *arg)
{
	struct simnet *sn = arg;
	uint64_t t;

	pthread_mutex_lock(&sn->mu);
	t = now_locked(sn);
	pthread_mutex_unlock(&sn->mu);
	return t;
}

static void wake(struct simnet_queue *q)
{
	uint64_t one = 1;

	if (q->attached && write(q->efd, &one, sizeof(one)) < 0) {
		/* counter saturated: the reader is awake anyway */
	}
}

void simnet_advance(struct simnet *sn, uint64_t ns)
{
	unsigned int i, j;

	pthread_mutex_lock(&sn->mu);
	if (sn->opts.clock == SIMNET_CLOCK_MANUAL)
		sn->vnow += ns;
	else
		sn->offset += ns;
	for (i = 0; i < sn->nhosts; i++)
		for (j = 0; j < SIMNET_MAX_QUEUES; j++)
			wake(&sn->hosts[i]->q[j]);
	pthread_mutex_unlock(&sn->mu);
}

int simnet_new(struct simnet **out, const struct simnet_opts *opts)
{
	struct simnet *sn;

	*out = NULL;
	if (!opts || (opts->clock != SIMNET_CLOCK_MANUAL && opts->clock != SIMNET_CLOCK_REAL))
		return -EINVAL;
	sn = calloc(1, sizeof(*sn));
	if (!sn)
		return -ENOMEM;
	pthread_mutex_init(&sn->mu, NULL);
	sn->opts = *opts;
	if (!sn->opts.queue_max)
		sn->opts.queue_max = SIMNET_DEF_QUEUE_MAX;
	sn->rng = opts->seed ? opts->seed : 1;
	sn->vnow = SIMNET_EPOCH_NS;
	*out = sn;
	return 0;
}

static void queue_drop_all(struct simnet_queue *q)
{
	while (q->len)
		free(q->heap[--q->len]);
}

void simnet_free(struct simnet *sn)
{
	unsigned int i, j;

	if (!sn)
		return;
	for (i = 0; i < sn->nhosts; i++) {
		for (j = 0; j < SIMNET_MAX_QUEUES; j++) {
			struct simnet_queue *q = &sn->hosts[i]->q[j];

			queue_drop_all(q);
			free(q->heap);
			if (q->attached)
				close(q->efd);
		}
		free(sn->hosts[i]);
	}
	for (i = 0; i < sn->nnats; i++)
		free(sn->nats[i]);
	pthread_mutex_destroy(&sn->mu);
	free(sn);
}

void simnet_stats_get(struct simnet *sn, struct simnet_stats *out)
{
	pthread_mutex_lock(&sn->mu);
	*out = sn->st;
	pthread_mutex_unlock(&sn->mu);
}

static int addr_ok(const struct io_addr *a)
{
	return a && (a->family == AF_INET || a->family == AF_INET6);
}

/* Is addr taken by a public host, a NAT's outside, or a host behind nat? */
static int addr_taken(struct simnet *sn, const struct io_addr *a, struct simnet_nat *nat)
{
	unsigned int i;

	for (i = 0; i < sn->nhosts; i++)
		if (sn->hosts[i]->nat == nat && addr_eq(&sn->hosts[i]->addr, a))
			return 1;
	for (i = 0; i < sn->nnats; i++)
		if (!nat && addr_eq(&sn->nats[i]->outside, a))
			return 1;
	return 0;
}

int simnet_host_add(struct simnet *sn, const struct io_addr *addr, struct simnet_nat *nat,
		    struct simnet_host **out)
{
	struct simnet_host *h;
	int err = 0;

	*out = NULL;
	if (!addr_ok(addr))
		return -EINVAL;
	pthread_mutex_lock(&sn->mu);
	if (sn->nhosts == SIMNET_MAX_HOSTS) {
		err = -ENOSPC;
		goto out;
	}
	if (addr_taken(sn, addr, nat)) {
		err = -EEXIST;
		goto out;
	}
	h = calloc(1, sizeof(*h));
	if (!h) {
		err = -ENOMEM;
		goto out;
	}
	h->sn = sn;
	h->addr = *addr;
	h->addr.port = 0;
	h->nat = nat;
	sn->hosts[sn->nhosts++] = h;
	*out = h;
out:
	pthread_mutex_unlock(&sn->mu);
	return err;
}

void simnet_host_set_link(struct simnet_host *h, const struct simnet_link *l)
{
	pthread_mutex_lock(&h->sn->mu);
	h->link = *l;
	pthread_mutex_unlock(&h->sn->mu);
}

void simnet_host_set_down(struct simnet_host *h, int down)
{
	pthread_mutex_lock(&h->sn->mu);
	h->down = down;
	pthread_mutex_unlock(&h->sn->mu);
}

void simnet_host_addr(const struct simnet_host *h, struct io_addr *out)
{
	*out = h->addr;
}

struct simnet *simnet_host_net(struct simnet_host *h)
{
	return h->sn;
}

int simnet_link_set(struct simnet *sn, const struct io_addr *a, const struct io_addr *b,
		    const struct simnet_link *l)
{
	unsigned int i;
	int err = 0;

	if (!addr_ok(a) || !addr_ok(b) || !l)
		return -EINVAL;
	pthread_mutex_lock(&sn->mu);
	for (i = 0; i < sn->nlinks; i++)
		if ((addr_eq(&sn->links[i].a, a) && addr_eq(&sn->links[i].b, b)) ||
		    (addr_eq(&sn->links[i].a, b) && addr_eq(&sn->links[i].b, a)))
			break;
	if (i == sn->nlinks) {
		if (sn->nlinks == SIMNET_MAX_LINKS) {
			err = -ENOSPC;
			goto out;
		}
		sn->nlinks++;
	}
	sn->links[i].a = *a;
	sn->links[i].b = *b;
	sn->links[i].l = *l;
out:
	pthread_mutex_unlock(&sn->mu);
	return err;
}

int simnet_nat_add(struct simnet *sn, const struct io_addr *outside, enum simnet_nat_filter filter,
		   uint32_t timeout_ms, struct simnet_nat **out)
{
	struct simnet_nat *nat;
	int err = 0;

	*out = NULL;
	if (!addr_ok(outside) || filter > SIMNET_NAT_APDF)
		return -EINVAL;
	pthread_mutex_lock(&sn->mu);
	if (sn->nnats == SIMNET_MAX_NATS) {
		err = -ENOSPC;
		goto out;
	}
	if (addr_taken(sn, outside, NULL)) {
		err = -EEXIST;
		goto out;
	}
	nat = calloc(1, sizeof(*nat));
	if (!nat) {
		err = -ENOMEM;
		goto out;
	}
	nat->sn = sn;
	nat->outside = *outside;
	nat->outside.port = 0;
	nat->filter = filter;
	nat->timeout_ns = (uint64_t)(timeout_ms ? timeout_ms : SIMNET_NAT_DEF_TIMEOUT_MS) * 1000000;
	nat->next_port = 20000;
	sn->nats[sn->nnats++] = nat;
	*out = nat;
out:
	pthread_mutex_unlock(&sn->mu);
	return err;
}

int simnet_nat_set_mapping(struct simnet_nat *nat, enum simnet_nat_mapping m)
{
	if (!nat || m > SIMNET_NAT_MAP_ADM)
		return -EINVAL;
	pthread_mutex_lock(&nat->sn->mu);
	nat->mapping = m;
	pthread_mutex_unlock(&nat->sn->mu);
	return 0;
}

static int map_live(const struct simnet_nat *nat, const struct nat_map *m, uint64_t now)
{
	return m->used && now - m->last_ns <= nat->timeout_ns;
}

unsigned int simnet_nat_mappings(struct simnet_nat *nat)
{
	unsigned int i, n = 0;
	uint64_t now;

	pthread_mutex_lock(&nat->sn->mu);
	now = now_locked(nat->sn);
	for (i = 0; i < SIMNET_NAT_MAX_MAPS; i++)
		n += map_live(nat, &nat->map[i], now);
	pthread_mutex_unlock(&nat->sn->mu);
	return n;
}

/* The mapping of an inside endpoint, created on first use (an expired or
 * the least recently used one is recycled when the table is full). */
static struct nat_map *nat_out(struct simnet_nat *nat, struct simnet_host *in, uint16_t port,
			       const struct io_addr *dst, uint64_t now)
{
	struct nat_map *m, *free_m = NULL, *oldest = NULL;
	unsigned int i, tries;

	for (i = 0; i < SIMNET_NAT_MAX_MAPS; i++) {
		m = &nat->map[i];
		if (!map_live(nat, m, now)) {
			if (!free_m)
				free_m = m;
			continue;
		}
		if (m->in == in && m->in_port == port &&
		    (nat->mapping == SIMNET_NAT_MAP_EIM || addr_eq(&m->remote, dst)))
			return m;
		if (!oldest || m->last_ns < oldest->last_ns)
			oldest = m;
	}
	m = free_m ? free_m : oldest;
	memset(m, 0, sizeof(*m));
	m->used = 1;
	m->in = in;
	m->in_port = port;
	m->remote = *dst;
	/* Next outside port not held by a live mapping. */
	for (tries = 0; tries < 65536; tries++) {
		uint16_t p = nat->next_port++;

		if (nat->next_port < 20000)
			nat->next_port = 20000;
		for (i = 0; i < SIMNET_NAT_MAX_MAPS; i++)
			if (&nat->map[i] != m && map_live(nat, &nat->map[i], now) &&
			    nat->map[i].out_port == p)
				break;
		if (i == SIMNET_NAT_MAX_MAPS) {
			m->out_port = p;
			break;
		}
	}
	nat->sn->st.nat_mapped++;
	return m;
}

static void nat_permit(struct nat_map *m, const struct io_addr *dst)
{
	unsigned int i;

	for (i = 0; i < m->nperm; i++)
		if (ep_eq(&m->perm[i], dst))
			return;
	m->perm[m->perm_next] = *dst;
	m->perm_next = (m->perm_next + 1) % SIMNET_NAT_MAX_PERMS;
	if (m->nperm < SIMNET_NAT_MAX_PERMS)
		m->nperm++;
}

static int nat_allows(const struct simnet_nat *nat, const struct nat_map *m,
		      const struct io_addr *src)
{
	unsigned int i;

	if (nat->filter == SIMNET_NAT_EIF)
		return 1;
	for (i = 0; i < m->nperm; i++)
		if (nat->filter == SIMNET_NAT_ADF ? addr_eq(&m->perm[i], src)
						  : ep_eq(&m->perm[i], src))
			return 1;
	return 0;
}

static const struct simnet_link *pair_link(struct simnet *sn, const struct io_addr *a,
					   const struct io_addr *b)
{
	unsigned int i;

	for (i = 0; i < sn->nlinks; i++)
		if ((addr_eq(&sn->links[i].a, a) && addr_eq(&sn->links[i].b, b)) ||
		    (addr_eq(&sn->links[i].a, b) && addr_eq(&sn->links[i].b, a)))
			return &sn->links[i].l;
	return NULL;
}

/* Apply one stage: 1 if the datagram survives (delay added to *d). */
static int stage(struct simnet *sn, const struct simnet_link *l, uint64_t *d)
{
	if (!l)
		return 1;
	if (l->loss_ppm && rnd(sn) % 1000000 < l->loss_ppm)
		return 0;
	*d += (uint64_t)l->latency_us * 1000;
	if (l->jitter_us)
		*d += (rnd(sn) % ((uint64_t)l->jitter_us + 1)) * 1000;
	if (l->reorder_ppm && rnd(sn) % 1000000 < l->reorder_ppm)
		*d += (uint64_t)(l->reorder_us ? l->reorder_us : 1000) * 1000;
	return 1;
}

static int pkt_less(const struct simnet_pkt *a, const struct simnet_pkt *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static void heap_push(struct simnet_queue *q, struct simnet_pkt *p)
{
	unsigned int i = q->len++;

	while (i > 0 && pkt_less(p, q->heap[(i - 1) / 2])) {
		q->heap[i] = q->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	q->heap[i] = p;
}

static struct simnet_pkt *heap_pop(struct simnet_queue *q)
{
	struct simnet_pkt *top = q->heap[0], *last = q->heap[--q->len];
	unsigned int i = 0;

	for (;;) {
		unsigned int l = 2 * i + 1, r = l + 1, m = i;
		const struct simnet_pkt *mp = last;

		if (l < q->len && pkt_less(q->heap[l], mp)) {
			m = l;
			mp = q->heap[l];
		}
		if (r < q->len && pkt_less(q->heap[r], mp))
			m = r;
		if (m == i)
			break;
		q->heap[i] = q->heap[m];
		i = m;
	}
	if (q->len)
		q->heap[i] = last;
	return top;
}

/* Public host with this address, or a host behind nat (inside address). */
static struct simnet_host *host_find(struct simnet *sn, const struct io_addr *a,
				     struct simnet_nat *nat)
{
	unsigned int i;

	for (i = 0; i < sn->nhosts; i++)
		if (sn->hosts[i]->nat == nat && addr_eq(&sn->hosts[i]->addr, a))
			return sn->hosts[i];
	return NULL;
}

static struct simnet_nat *nat_find(struct simnet *sn, const struct io_addr *a)
{
	unsigned int i;

	for (i = 0; i < sn->nnats; i++)
		if (addr_eq(&sn->nats[i]->outside, a))
			return sn->nats[i];
	return NULL;
}

static void deliver(struct simnet *sn, struct simnet_host *to, struct simnet_pkt *p)
{
	struct simnet_queue *q;
	unsigned int i, n = 0, pick, k = 0;
	uint32_t hsh = p->src.port * 2654435761u;

	for (i = 0; i < 16; i++)
		hsh = (hsh ^ p->src.addr[i]) * 16777619u;
	for (i = 0; i < SIMNET_MAX_QUEUES; i++)
		n += to->q[i].attached;
	if (!n) {
		sn->st.no_route++;
		free(p);
		return;
	}
	pick = hsh % n;
	for (i = 0; i < SIMNET_MAX_QUEUES; i++) {
		if (!to->q[i].attached)
			continue;
		if (k++ == pick)
			break;
	}
	q = &to->q[i];
	if (q->len >= sn->opts.queue_max) {
		sn->st.queue_full++;
		free(p);
		return;
	}
	heap_push(q, p);
	wake(q);
}

int simnet_send(struct simnet_host *h, uint16_t sport, const struct io_addr *dst, const void *data,
		size_t len)
{
	struct simnet *sn;
	struct simnet_pkt *p;
	struct simnet_host *to;
	struct simnet_nat *dnat;
	struct io_addr src_seen, src_net, dst_in;
	uint64_t now, d = 0;

	if (!h || !addr_ok(dst) || (!data && len))
		return -EINVAL;
	if (len > SIMNET_MAX_DGRAM)
		return -EMSGSIZE;
	sn = h->sn;
	pthread_mutex_lock(&sn->mu);
	sn->st.sent++;
	now = now_locked(sn);
	src_seen = h->addr;
	src_seen.port = sport;
	dst_in = *dst;
	/* src_net is the address the path is judged on: the NAT's outside
	 * for a host behind one, unless the destination is inside the same
	 * NAT (hairpinning through the outside address is not modelled). */
	src_net = h->addr;
	to = h->nat ? host_find(sn, dst, h->nat) : NULL;
	if (!to && h->nat) {
		struct nat_map *m = nat_out(h->nat, h, sport, dst, now);

		m->last_ns = now;
		nat_permit(m, dst);
		src_seen = h->nat->outside;
		src_seen.port = m->out_port;
		src_net = h->nat->outside;
	}
	if (!to)
		to = host_find(sn, dst, NULL);
	if (!to && (dnat = nat_find(sn, dst))) {
		struct nat_map *m = NULL;
		unsigned int i;

		for (i = 0; i < SIMNET_NAT_MAX_MAPS && !m; i++)
			if (map_live(dnat, &dnat->map[i], now) &&
			    dnat->map[i].out_port == dst->port)
				m = &dnat->map[i];
		if (m && !nat_allows(dnat, m, &src_seen)) {
			sn->st.filtered++;
			goto out;
		}
		if (m) {
			m->last_ns = now;
			to = m->in;
			dst_in = to->addr;
			dst_in.port = m->in_port;
		}
	}
	if (!to) {
		sn->st.no_route++;
		goto out;
	}
	if (h->down || to->down) {
		sn->st.host_down++;
		goto out;
	}
	if (!stage(sn, &h->link, &d) || !stage(sn, pair_link(sn, &src_net, dst), &d) ||
	    !stage(sn, &to->link, &d)) {
		sn->st.lost++;
		goto out;
	}
	p = malloc(sizeof(*p) + len);
	if (!p)
		goto out;
	p->next = NULL;
	p->at = now + d;
	p->seq = sn->seq++;
	p->src = src_seen;
	p->dst = dst_in;
	p->len = (uint32_t)len;
	if (len)
		memcpy(p->data, data, len);
	deliver(sn, to, p);
out:
	pthread_mutex_unlock(&sn->mu);
	return 0;
}

int simnet_attach(struct simnet_host *h, unsigned int qid, int *efd)
{
	struct simnet *sn = h->sn;
	struct simnet_queue *q;
	int err = 0;

	if (qid >= SIMNET_MAX_QUEUES)
		return -EINVAL;
	pthread_mutex_lock(&sn->mu);
	q = &h->q[qid];
	if (q->attached) {
		err = -EBUSY;
		goto out;
	}
	if (!q->heap) {
		q->heap = calloc(sn->opts.queue_max, sizeof(*q->heap));
		if (!q->heap) {
			err = -ENOMEM;
			goto out;
		}
	}
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) {
		err = -errno;
		goto out;
	}
	q->attached = 1;
	h->nq++;
	*efd = q->efd;
out:
	pthread_mutex_unlock(&sn->mu);
	return err;
}

void simnet_detach(struct simnet_host *h, unsigned int qid)
{
	struct simnet_queue *q;

	if (qid >= SIMNET_MAX_QUEUES)
		return;
	pthread_mutex_lock(&h->sn->mu);
	q = &h->q[qid];
	if (q->attached) {
		queue_drop_all(q);
		close(q->efd);
		q->efd = -1;
		q->attached = 0;
		h->nq--;
	}
	pthread_mutex_unlock(&h->sn->mu);
}

int simnet_recv(struct simnet_host *h, unsigned int qid, struct simnet_pkt **pkts, unsigned int max)
{
	struct simnet *sn = h->sn;
	struct simnet_queue *q;
	unsigned int n = 0;
	uint64_t now;

	if (qid >= SIMNET_MAX_QUEUES)
		return 0;
	pthread_mutex_lock(&sn->mu);
	q = &h->q[qid];
	now = now_locked(sn);
	while (n < max && q->len && q->heap[0]->at <= now)
		pkts[n++] = heap_pop(q);
	sn->st.delivered += n;
	pthread_mutex_unlock(&sn->mu);
	return (int)n;
}

int64_t simnet_queue_next_ns(struct simnet_host *h, unsigned int qid)
{
	struct simnet *sn = h->sn;
	int64_t r = -1;
	uint64_t now;

	if (qid >= SIMNET_MAX_QUEUES)
		return -1;
	pthread_mutex_lock(&sn->mu);
	now = now_locked(sn);
	if (h->q[qid].len)
		r = h->q[qid].heap[0]->at > now ? (int64_t)(h->q[qid].heap[0]->at - now) : 0;
	pthread_mutex_unlock(&sn->mu);
	return r;
}

int64_t simnet_next_ns(struct simnet *sn)
{
	unsigned int i, j;
	int64_t best = -1;
	uint64_t now;

	pthread_mutex_lock(&sn->mu);
	now = now_locked(sn);
	for (i = 0; i < sn->nhosts; i++)
		for (j = 0; j < SIMNET_MAX_QUEUES; j++) {
			const struct simnet_queue *q = &sn->hosts[i]->q[j];
			int64_t d;

			if (!q->len)
				continue;
			d = q->heap[0]->at > now ? (int64_t)(q->heap[0]->at - now) : 0;
			if (best < 0 || d < best)
				best = d;
		}
	pthread_mutex_unlock(&sn->mu);
	return best;
}

void simnet_pkt_free(struct simnet_pkt *p)
{
	free(p);
}
