/* SPDX-License-Identifier: MIT */
/*
 * In-memory network for QUIC endpoint tests: a virtual clock, a priority
 * queue of datagrams in flight, seeded loss / reordering, and address
 * rewriting (to simulate migration / NAT rebinding). Header-only so that
 * each test binary stays one file plus this helper.
 */
#ifndef WEFT_TEST_QUIC_SIM_H
#define WEFT_TEST_QUIC_SIM_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <weft/quic.h>

#define SIM_MAX_NODES 12
#define SIM_MS 1000000ULL

struct sim;

struct sim_pkt {
	uint64_t at, seq;
	int to;
	struct sockaddr_in from;
	size_t len;
	uint8_t data[];
};

struct sim_node {
	struct sim *sim;
	int idx;
	struct sockaddr_in addr; /* where packets to it go */
	struct sockaddr_in src;  /* source address stamped on its packets (NAT) */
	struct quic_ep *ep;
	uint8_t pk[QUIC_KEY_LEN], sk[QUIC_SK_LEN];
	/* Optional links (0: none): what the node sends leaves through an
	 * uplink of up_bps bits/s, what it receives arrives through a
	 * downlink of down_bps, each a drop-tail queue of at most *_queue_ns
	 * of waiting; extra_delay is added to every datagram to it (a
	 * distant node). */
	uint64_t up_bps, up_queue_ns, up_free;
	uint64_t down_bps, down_queue_ns, down_free;
	uint64_t extra_delay;
	uint64_t dropped_queue; /* drop-tail at either of its queues */
};

struct sim {
	uint64_t now, seq, rng;
	unsigned int loss_pct, reorder_pct;
	uint64_t delay; /* one-way */
	size_t mtu;     /* largest datagram the path carries; 0: any */
	uint32_t net;   /* node 0's IPv4 address, host order; 0: 10.0.0.1 */
	struct sim_node nodes[SIM_MAX_NODES];
	int nnodes;
	struct sim_pkt **heap;
	size_t hlen, hcap;
	uint64_t sent, dropped, delivered, dropped_mtu;
	/* Optional: sees every datagram a node sends (from: its index). */
	void (*tap)(void *arg, int from, const uint8_t *buf, size_t len);
	void *tap_arg;
};

/* A datagram of len bytes entering a link of bps bits/s at t, whose last
 * datagram leaves at *free: when it leaves, or 0 if the queue (at most
 * queue_ns of waiting) is full. */
static inline uint64_t sim_link(uint64_t t, size_t len, uint64_t bps, uint64_t queue_ns,
				uint64_t *free)
{
	uint64_t start = *free > t ? *free : t;

	if (start - t > queue_ns)
		return 0;
	*free = start + (uint64_t)len * 8 * 1000000000ULL / bps;
	return *free;
}

static inline uint64_t sim_rand(struct sim *s)
{
	/* xorshift64*, fixed seed per test: runs are reproducible */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return s->rng * 2685821657736338717ULL;
}

static inline int sim_less(const struct sim_pkt *a, const struct sim_pkt *b)
{
	return a->at < b->at || (a->at == b->at && a->seq < b->seq);
}

static inline void sim_push(struct sim *s, struct sim_pkt *p)
{
	size_t i;

	if (s->hlen == s->hcap) {
		s->hcap = s->hcap ? s->hcap * 2 : 1024;
		s->heap = realloc(s->heap, s->hcap * sizeof(*s->heap));
	}
	i = s->hlen++;
	while (i > 0 && sim_less(p, s->heap[(i - 1) / 2])) {
		s->heap[i] = s->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	s->heap[i] = p;
}

static inline struct sim_pkt *sim_pop(struct sim *s)
{
	struct sim_pkt *top = s->heap[0], *last = s->heap[--s->hlen];
	size_t i = 0;

	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;
		const struct sim_pkt *mp = last;

		if (l < s->hlen && sim_less(s->heap[l], mp)) {
			m = l;
			mp = s->heap[l];
		}
		if (r < s->hlen && sim_less(s->heap[r], mp))
			m = r;
		if (m == i)
			break;
		s->heap[i] = s->heap[m];
		i = m;
	}
	if (s->hlen)
		s->heap[i] = last;
	return top;
}

static inline int sim_send(void *arg, const uint8_t *buf, size_t len, size_t gso,
			   const struct sockaddr *to, socklen_t tolen, const struct sockaddr *local)
{
	struct sim_node *n = arg;
	struct sim *s = n->sim;
	const struct sockaddr_in *dst = (const struct sockaddr_in *)to;
	int i, target = -1;

	/* A node receives what is sent to its own address or to its (NAT)
	 * source address; it always sees its own address as local. */
	for (i = 0; i < s->nnodes; i++)
		if ((s->nodes[i].addr.sin_addr.s_addr == dst->sin_addr.s_addr &&
		     s->nodes[i].addr.sin_port == dst->sin_port) ||
		    (s->nodes[i].src.sin_addr.s_addr == dst->sin_addr.s_addr &&
		     s->nodes[i].src.sin_port == dst->sin_port))
			target = i;
	while (len > 0) {
		size_t seg = len < gso ? len : gso;
		struct sim_pkt *p;

		s->sent++;
		if (s->tap)
			s->tap(s->tap_arg, n->idx, buf, seg);
		if (s->mtu && seg > s->mtu) {
			s->dropped++;
			s->dropped_mtu++;
		} else if (target < 0 || (s->loss_pct && sim_rand(s) % 100 < s->loss_pct)) {
			s->dropped++;
		} else {
			struct sim_node *d = &s->nodes[target];
			uint64_t t = s->now;

			if (n->up_bps && !(t = sim_link(t, seg, n->up_bps, n->up_queue_ns, &n->up_free))) {
				n->dropped_queue++;
				s->dropped++;
				goto next;
			}
			t += s->delay + d->extra_delay;
			if (d->down_bps &&
			    !(t = sim_link(t, seg, d->down_bps, d->down_queue_ns, &d->down_free))) {
				d->dropped_queue++;
				s->dropped++;
				goto next;
			}
			p = malloc(sizeof(*p) + seg);
			p->at = t;
			if (s->reorder_pct && sim_rand(s) % 100 < s->reorder_pct)
				p->at += 1 + sim_rand(s) % (s->delay ? s->delay : SIM_MS);
			p->seq = s->seq++;
			p->to = target;
			p->from = n->src;
			p->len = seg;
			memcpy(p->data, buf, seg);
			sim_push(s, p);
		}
next:
		buf += seg;
		len -= seg;
	}
	return 0;
}

static inline void sim_init(struct sim *s, uint64_t seed)
{
	memset(s, 0, sizeof(*s));
	s->rng = seed ? seed : 1;
	s->now = 1000 * SIM_MS;
	s->delay = 10 * SIM_MS;
}

/* Add a node at 10.0.0.<idx+1>:4433 (s->net + idx) with a fresh key; returns it. opts
 * may be NULL; its key, local and send fields are filled in here. */
static inline struct sim_node *sim_add(struct sim *s, const struct quic_ep_opts *opts, int *rc)
{
	struct sim_node *n = &s->nodes[s->nnodes];
	struct quic_ep_opts o;

	memset(n, 0, sizeof(*n));
	n->sim = s;
	n->idx = s->nnodes++;
	n->addr.sin_family = AF_INET;
	n->addr.sin_port = htons(4433);
	n->addr.sin_addr.s_addr = htonl((s->net ? s->net : 0x0a000001) + (uint32_t)n->idx);
	n->src = n->addr;
	crypto_sign_keypair(n->pk, n->sk);
	if (opts)
		o = *opts;
	else
		memset(&o, 0, sizeof(o));
	o.node_pk = n->pk;
	o.node_sk = n->sk;
	o.local = (const struct sockaddr *)&n->addr;
	o.local_len = sizeof(n->addr);
	o.send = sim_send;
	o.send_arg = n;
	*rc = quic_ep_new(&n->ep, &o);
	return n;
}

/* Run until stop(arg) is true or max_ns of virtual time passed. pump (may
 * be NULL) runs each step to feed more data. Returns 1 if stopped, 0 at
 * max_ns, -1 if time stopped advancing (a timer bug), -2 if
 * quic_ep_run_expiry reported another deadline than quic_ep_expiry. */
static inline int sim_run(struct sim *s, int (*stop)(void *), void (*pump)(void *), void *arg,
			  uint64_t max_ns)
{
	uint64_t end = s->now + max_ns, last = s->now, spins = 0;
	int i;

	for (;;) {
		uint64_t next = UINT64_MAX, x;

		/* A timer that never moves would spin here: report it. */
		if (s->now == last) {
			if (++spins > 1000000)
				return -1;
		} else {
			last = s->now;
			spins = 0;
		}

		if (pump)
			pump(arg);
		if (stop && stop(arg))
			return 1;
		for (i = 0; i < s->nnodes; i++) {
			if (!s->nodes[i].ep)
				continue;
			x = quic_ep_expiry(s->nodes[i].ep);
			if (x < next)
				next = x;
		}
		if (s->hlen && s->heap[0]->at < next)
			next = s->heap[0]->at;
		if (next > end) {
			s->now = end;
			return stop ? stop(arg) : 0;
		}
		if (next > s->now)
			s->now = next;
		while (s->hlen && s->heap[0]->at <= s->now) {
			struct sim_pkt *p = sim_pop(s);
			struct sim_node *d = &s->nodes[p->to];

			if (d->ep) {
				s->delivered++;
				quic_ep_input(d->ep, p->data, p->len, (struct sockaddr *)&d->addr,
					      sizeof(d->addr), (struct sockaddr *)&p->from,
					      sizeof(p->from), s->now);
			}
			free(p);
		}
		/* quic_node's timer: quic_ep_run_expiry, whose next deadline
		 * must be the one a fresh quic_ep_expiry scan finds (-2). */
		for (i = 0; i < s->nnodes; i++)
			if (s->nodes[i].ep &&
			    quic_ep_run_expiry(s->nodes[i].ep, s->now) != quic_ep_expiry(s->nodes[i].ep))
				return -2;
	}
}

static inline void sim_free(struct sim *s)
{
	int i;

	for (i = 0; i < s->nnodes; i++)
		quic_ep_free(s->nodes[i].ep);
	while (s->hlen)
		free(sim_pop(s));
	free(s->heap);
}

#endif
