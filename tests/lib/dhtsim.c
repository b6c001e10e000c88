// SPDX-License-Identifier: MIT
/*
 * A small DHT on a virtual clock (dhtsim.h): n + 1 DHT cores, datagrams
 * in one FIFO queue (one fixed latency for every link, so delivery times
 * follow sending order), timers run every 50 ms of virtual time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "content/annsched.h"
#include "dhtsim.h"

#define SIM_PKT_MAX 1500
#define SIM_TICK_MS 50

struct sim_pkt {
	uint64_t t;
	unsigned int from, to; /* index: 0..n-1 nodes, n = us */
	uint16_t len;
	uint8_t data[SIM_PKT_MAX];
};

struct sim_end {
	struct dhtsim *s;
	unsigned int idx;
};

struct dhtsim {
	struct dhtsim_opts o;
	struct dht **d; /* n + 1; d[n] = us */
	struct sim_end *ends;
	uint64_t now, next_tick;
	struct sim_pkt *q;
	size_t qhead, qlen, qcap;
	uint32_t *per_s;     /* [node * max_s + second]: queries from us */
	uint32_t *per_s_ann; /* of those, announce_peer */
	uint64_t queries;
};

static void addr_of(unsigned int idx, unsigned int n, struct sockaddr_in *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(6881);
	if (idx == n)
		sa->sin_addr.s_addr = htonl(0x0a000001u); /* 10.0.0.1 */
	else
		sa->sin_addr.s_addr = htonl(0x0a010000u + idx); /* 10.1.x.y */
}

static int index_of(const struct dhtsim *s, const struct sockaddr *to)
{
	const struct sockaddr_in *sa = (const struct sockaddr_in *)to;
	uint32_t ip;

	if (to->sa_family != AF_INET)
		return -1;
	ip = ntohl(sa->sin_addr.s_addr);
	if (ip == 0x0a000001u)
		return (int)s->o.nodes;
	if (ip - 0x0a010000u < s->o.nodes)
		return (int)(ip - 0x0a010000u);
	return -1;
}

/* A KRPC query: its dictionary has y = "q" ("1:y1:q"); an announce_peer
 * names its method. */
static int is_query(const uint8_t *b, size_t len, int *announce)
{
	*announce = memmem(b, len, "13:announce_peer", 16) != NULL;
	return memmem(b, len, "1:y1:q", 6) != NULL;
}

static int sim_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	struct sim_end *e = arg;
	struct dhtsim *s = e->s;
	struct sim_pkt *p;
	int idx = index_of(s, to), ann;

	(void)tolen;
	if (idx < 0 || len > SIM_PKT_MAX)
		return 0; /* nowhere: lost */
	if (s->qlen == s->qcap) {
		size_t nc = s->qcap ? s->qcap * 2 : 4096;
		struct sim_pkt *nq = malloc(nc * sizeof(*nq));

		if (!nq)
			return -ENOMEM;
		for (size_t i = 0; i < s->qlen; i++)
			nq[i] = s->q[(s->qhead + i) % s->qcap];
		free(s->q);
		s->q = nq;
		s->qhead = 0;
		s->qcap = nc;
	}
	p = &s->q[(s->qhead + s->qlen) % s->qcap];
	s->qlen++;
	p->t = s->now + s->o.latency_ms;
	p->from = e->idx;
	p->to = (unsigned int)idx;
	p->len = (uint16_t)len;
	memcpy(p->data, buf, len);
	if (e->idx == s->o.nodes && (unsigned int)idx < s->o.nodes && is_query(buf, len, &ann)) {
		uint64_t sec = s->now / 1000;

		s->queries++;
		if (sec < s->o.max_s) {
			s->per_s[(size_t)idx * s->o.max_s + sec]++;
			if (ann)
				s->per_s_ann[(size_t)idx * s->o.max_s + sec]++;
		}
	}
	return 0;
}

int dhtsim_new(struct dhtsim **out, const struct dhtsim_opts *o)
{
	struct dhtsim *s = calloc(1, sizeof(*s));
	unsigned int n = o->nodes;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->o = *o;
	if (!s->o.max_s)
		s->o.max_s = 3600;
	if (!s->o.tick_ms)
		s->o.tick_ms = SIM_TICK_MS;
	s->d = calloc(n + 1, sizeof(*s->d));
	s->ends = calloc(n + 1, sizeof(*s->ends));
	s->per_s = calloc((size_t)n * s->o.max_s, sizeof(*s->per_s));
	s->per_s_ann = calloc((size_t)n * s->o.max_s, sizeof(*s->per_s_ann));
	if (!s->d || !s->ends || !s->per_s || !s->per_s_ann) {
		dhtsim_free(s);
		return -ENOMEM;
	}
	s->now = 1000000; /* not 0: timers treat 0 as unset */
	for (unsigned int i = 0; i <= n; i++) {
		struct dht_opts d = {0};
		uint8_t seed[32] = {0};
		int rc;

		memcpy(seed, &o->seed, sizeof(o->seed));
		memcpy(seed + 8, &i, sizeof(i));
		s->ends[i].s = s;
		s->ends[i].idx = i;
		d.send = sim_send;
		d.send_arg = &s->ends[i];
		d.seed = seed;
		d.flags = DHT_F_NO_IPV6;
		rc = dht_new(&s->d[i], &d);
		if (rc) {
			dhtsim_free(s);
			return rc;
		}
	}
	/* every node knows 8 others at random and node 0; us knows 16 */
	for (unsigned int i = 0; i <= n; i++) {
		uint64_t r = o->seed * 0x9e3779b97f4a7c15ull + i;

		for (unsigned int k = 0; k < (i == n ? 16u : 8u); k++) {
			struct sockaddr_in sa;

			r ^= r << 13;
			r ^= r >> 7;
			r ^= r << 17;
			addr_of(k == 0 ? 0 : (unsigned int)(r % n), n, &sa);
			if (k == 0 && i == 0)
				continue;
			dht_add_node(s->d[i], (struct sockaddr *)&sa, sizeof(sa), s->now);
		}
	}
	s->next_tick = s->now;
	*out = s;
	return 0;
}

void dhtsim_free(struct dhtsim *s)
{
	if (!s)
		return;
	for (unsigned int i = 0; s->d && i <= s->o.nodes; i++)
		dht_free(s->d[i]);
	free(s->d);
	free(s->ends);
	free(s->q);
	free(s->per_s);
	free(s->per_s_ann);
	free(s);
}

uint64_t dhtsim_now(const struct dhtsim *s)
{
	return s->now;
}

struct dht *dhtsim_us(struct dhtsim *s)
{
	return s->d[s->o.nodes];
}

struct dht *dhtsim_node(struct dhtsim *s, unsigned int i)
{
	return i < s->o.nodes ? s->d[i] : NULL;
}

void dhtsim_us_addr(const struct dhtsim *s, struct sockaddr_storage *out)
{
	memset(out, 0, sizeof(*out));
	addr_of(s->o.nodes, s->o.nodes, (struct sockaddr_in *)out);
}

/* Everything due at or before t, then now = t. */
static void step_until(struct dhtsim *s, uint64_t t)
{
	for (;;) {
		uint64_t next = t;

		if (s->qlen && s->q[s->qhead].t < next)
			next = s->q[s->qhead].t;
		if (s->next_tick < next)
			next = s->next_tick;
		s->now = next;
		while (s->qlen && s->q[s->qhead].t <= s->now) {
			struct sim_pkt p = s->q[s->qhead];
			struct sockaddr_in from;

			s->qhead = (s->qhead + 1) % s->qcap;
			s->qlen--;
			addr_of(p.from, s->o.nodes, &from);
			dht_input(s->d[p.to], p.data, p.len, (struct sockaddr *)&from, sizeof(from),
				  s->now);
		}
		if (s->now >= s->next_tick) {
			uint64_t nx;

			for (unsigned int i = 0; i <= s->o.nodes; i++)
				dht_periodic(s->d[i], s->now, &nx);
			s->next_tick = s->now + s->o.tick_ms;
		}
		if (s->now >= t)
			return;
	}
}

void dhtsim_run(struct dhtsim *s, uint64_t ms, const int *stop)
{
	uint64_t end = s->now + ms;

	while (s->now < end && !(stop && *stop)) {
		uint64_t t = s->qlen ? s->q[s->qhead].t : s->next_tick;

		if (t > end)
			t = end;
		if (t < s->now)
			t = s->now;
		step_until(s, t);
		if (t == s->now && !s->qlen && s->next_tick > end)
			break;
	}
}

int dhtsim_replace(struct dhtsim *s, unsigned int i, uint64_t salt)
{
	struct dht_opts d = {0};
	uint8_t seed[32] = {0};
	uint64_t r = salt * 0x9e3779b97f4a7c15ull + i + 1;
	int rc;

	if (i >= s->o.nodes)
		return -EINVAL;
	memcpy(seed, &s->o.seed, sizeof(s->o.seed));
	memcpy(seed + 8, &i, sizeof(i));
	memcpy(seed + 16, &salt, sizeof(salt));
	d.send = sim_send;
	d.send_arg = &s->ends[i];
	d.seed = seed;
	d.flags = DHT_F_NO_IPV6;
	dht_free(s->d[i]);
	s->d[i] = NULL;
	rc = dht_new(&s->d[i], &d);
	if (rc)
		return rc;
	for (unsigned int k = 0; k < 8; k++) {
		struct sockaddr_in sa;
		unsigned int j;

		r ^= r << 13;
		r ^= r >> 7;
		r ^= r << 17;
		j = (unsigned int)(r % s->o.nodes);
		if (j == i)
			continue;
		addr_of(j, s->o.nodes, &sa);
		dht_add_node(s->d[i], (struct sockaddr *)&sa, sizeof(sa), s->now);
	}
	return 0; /* its maintenance looks it up once a contact answered */
}

static void formed(void *arg, const struct dht_result *r)
{
	(void)r;
	(*(unsigned int *)arg)++;
}

void dhtsim_form(struct dhtsim *s, uint64_t ms)
{
	unsigned int done = 0;

	dhtsim_run(s, 3000, NULL); /* pings answered: tables seeded */
	for (unsigned int i = 0; i <= s->o.nodes; i++)
		dht_find_node(s->d[i], dht_id(s->d[i]), s->now, formed, &done);
	dhtsim_run(s, ms, NULL);
}

/* ------------------------------------------------------ announcing */

struct ann_drv {
	struct dhtsim *s;
	struct cn_anq *q;
	uint64_t *first; /* per id: virtual time of its first announce, 0 none */
	const uint8_t (*ids)[DHT_ID_LEN];
	size_t n, announced;
	int all;
};

struct ann_op {
	struct ann_drv *dv;
	struct cn_anq_work w;
};

static void drv_lookup_cb(void *arg, const struct dht_result *res)
{
	struct ann_op *op = arg;

	cn_anq_lookup_done(op->dv->q, op->w.target, res->status ? NULL : res->nodes,
			   res->status ? 0 : res->nnodes, op->dv->s->now);
	free(op);
}

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, DHT_ID_LEN);
}

static void drv_send_cb(void *arg, const struct dht_result *res)
{
	struct ann_op *op = arg;
	struct ann_drv *dv = op->dv;
	int ok = res->status == 0 && res->stored > 0;

	cn_anq_send_done(dv->q, (const uint8_t(*)[DHT_ID_LEN])op->w.keys, op->w.nkeys, ok,
			 dv->s->now);
	for (size_t i = 0; ok && i < op->w.nkeys; i++) {
		const uint8_t(*x)[DHT_ID_LEN] =
		    bsearch(op->w.keys[i], dv->ids, dv->n, DHT_ID_LEN, key_cmp);

		if (x && !dv->first[x - dv->ids]) {
			dv->first[x - dv->ids] = dv->s->now;
			if (++dv->announced == dv->n)
				dv->all = 1;
		}
	}
	free(op);
}

void dhtsim_announce(struct dhtsim *s, const uint8_t (*ids)[DHT_ID_LEN], size_t n, uint16_t port,
		     uint64_t ms, struct dhtsim_report *r)
{
	struct ann_drv dv = {.s = s, .ids = ids, .n = n};
	uint64_t t0 = s->now, end = s->now + ms, sec0 = s->now / 1000;
	struct cn_anq_stats st;
	uint8_t(*sorted)[DHT_ID_LEN] = malloc(n * DHT_ID_LEN);

	memset(r, 0, sizeof(*r));
	r->ids = n;
	if (!sorted || cn_anq_new(&dv.q, 20 * 60 * 1000)) {
		free(sorted);
		return;
	}
	memcpy(sorted, ids, n * DHT_ID_LEN);
	qsort(sorted, n, DHT_ID_LEN, key_cmp);
	dv.ids = (const uint8_t(*)[DHT_ID_LEN])sorted;
	dv.first = calloc(n, sizeof(*dv.first));
	for (size_t i = 0; i < n; i++)
		cn_anq_add(dv.q, ids[i], DHT_ID_LEN, s->now);
	while (!dv.all && s->now < end) {
		struct cn_anq_work w;
		int kind;

		while ((kind = cn_anq_next(dv.q, s->now, &w)) != CN_ANQ_IDLE) {
			struct ann_op *op = malloc(sizeof(*op));
			int rc;

			op->dv = &dv;
			op->w = w;
			if (kind == CN_ANQ_LOOKUP)
				rc = dht_get_peers(dhtsim_us(s), op->w.target, s->now,
						   drv_lookup_cb, op);
			else
				rc = dht_announce_to(dhtsim_us(s),
						     (const uint8_t(*)[DHT_ID_LEN])op->w.keys,
						     op->w.nkeys, port, 0, op->w.nodes,
						     op->w.nnodes, s->now, drv_send_cb, op);
			if (rc) { /* as announce.c: not started, retried later */
				if (kind == CN_ANQ_LOOKUP)
					cn_anq_lookup_done(dv.q, w.target, NULL, 0, s->now);
				else
					cn_anq_send_done(dv.q, (const uint8_t(*)[DHT_ID_LEN])w.keys,
							 w.nkeys, 0, s->now);
				free(op);
			}
		}
		if (getenv("DHTSIM_DEBUG") && s->now / 30000 != (s->now - 1) / 30000) {
			struct cn_anq_stats x;

			cn_anq_stats(dv.q, s->now, &x);
			fprintf(stderr,
				"t=%llu announced=%zu backlog=%llu hoods=%llu lk=%llu sends=%llu "
				"inflight_l=%llu inflight_s=%llu\n",
				(unsigned long long)(s->now - t0) / 1000, dv.announced,
				(unsigned long long)x.backlog, (unsigned long long)x.hoods,
				(unsigned long long)x.lookups, (unsigned long long)x.sends,
				(unsigned long long)x.inflight_lookups,
				(unsigned long long)x.inflight_sends);
		}
		{
			uint64_t t = w.wake_ms < end ? w.wake_ms : end;

			if (s->qlen && s->q[s->qhead].t < t)
				t = s->q[s->qhead].t;
			if (t <= s->now)
				t = s->now + 1;
			step_until(s, t);
		}
	}
	/* let the last answers in (no new work) */
	dhtsim_run(s, 5000, NULL);
	cn_anq_stats(dv.q, s->now, &st);
	r->announced = dv.announced;
	if (dv.all) {
		uint64_t last = 0;

		for (size_t i = 0; i < n; i++)
			if (dv.first[i] > last)
				last = dv.first[i];
		r->all_ms = last - t0;
	}
	r->lookups = st.lookups;
	r->batches = st.sends;
	r->queries = s->queries;
	/* the busiest node in any minute (sliding by the second) */
	for (unsigned int i = 0; i < s->o.nodes; i++) {
		const uint32_t *c = s->per_s + (size_t)i * s->o.max_s;
		const uint32_t *a = s->per_s_ann + (size_t)i * s->o.max_s;
		uint64_t win = 0, wina = 0, last = s->now / 1000 + 1;

		if (last > s->o.max_s)
			last = s->o.max_s;
		for (uint64_t t = sec0; t < last; t++) {
			win += c[t];
			wina += a[t];
			if (t >= sec0 + 60) {
				win -= c[t - 60];
				wina -= a[t - 60];
			}
			if (win > r->max_node_min) {
				r->max_node_min = win;
				r->busiest = i;
			}
			if (wina > r->max_node_min_ann)
				r->max_node_min_ann = wina;
		}
	}
	cn_anq_free(dv.q);
	free(dv.first);
	free(sorted);
}

struct gp {
	int done, n;
	struct sockaddr_storage *out;
	size_t cap;
};

static void gp_cb(void *arg, const struct dht_result *r)
{
	struct gp *g = arg;

	g->done = 1;
	g->n = r->status && !r->npeers ? r->status : 0;
	for (size_t i = 0; i < r->npeers && (size_t)g->n < g->cap; i++)
		g->out[g->n++] = r->peers[i];
}

int dhtsim_get_peers(struct dhtsim *s, unsigned int i, const uint8_t ih[DHT_ID_LEN],
		     struct sockaddr_storage *out, size_t cap)
{
	struct gp g = {.out = out, .cap = cap};
	int rc = dht_get_peers(s->d[i], ih, s->now, gp_cb, &g);

	if (rc)
		return rc;
	dhtsim_run(s, 60000, &g.done);
	return g.done ? g.n : -ETIMEDOUT;
}
