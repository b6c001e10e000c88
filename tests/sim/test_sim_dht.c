// SPDX-License-Identifier: MIT
/*
 * DHT instances on a simulated network: packets travel through an
 * in-memory queue (1 ms latency) in virtual time, so every run is the same
 * and timeouts cost nothing. Addresses are IPv4 198.51.100.0/24 and IPv6
 * 2001:db8:77::/64 (no socket is opened). A filter sees every datagram and
 * may drop it; an "outside" address lets a test speak raw KRPC to a node.
 *
 *  - retries: a node that drops the first query is still found, through a
 *    byte-identical retry with a new transaction id sent one query timeout
 *    later, and is not marked; the closest candidate that drops everything
 *    gets exactly three queries (DHT_QUERY_ATTEMPTS_CLOSE) and one failure
 *    mark; a ping to a dead node exactly two.
 *  - BEP 32 want: a dual-stack node sends want=["n4","n6"] and, bootstrapped
 *    over IPv4 only, learns and finds IPv6-only nodes; a node without the
 *    flag sends no want; answers honour want (n4, n6, both) and shrink the
 *    node lists to fit a 1000-byte item into one datagram.
 *  - own storage: get_peers / get started by the node that stores the peer
 *    or item return it, also with an empty routing table.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "dht/dht_int.h"

#define SIM_MAX_NODES 24
#define SIM_QLEN 16384
#define SIM_MAX_OUT 16
#define SIM_TIMEOUT 2000 /* the default query timeout */

struct simpkt {
	struct sockaddr_storage from, to;
	socklen_t fromlen, tolen;
	uint16_t len;
	uint64_t at;
	uint8_t data[DHT_MAX_PKT + 64];
};

struct sim;
/* Return 1 to drop the datagram. */
typedef int (*sim_filter_fn)(struct sim *s, const struct simpkt *p);

struct simnode {
	struct sim *sim;
	struct dht *dht;
	struct sockaddr_in a4;
	struct sockaddr_in6 a6;
	int has4, has6;
};

struct sim {
	uint64_t now;
	struct simnode n[SIM_MAX_NODES];
	int nn;
	struct simpkt *q;
	size_t qhead, qtail;
	sim_filter_fn filter;
	void *farg;
	struct sockaddr_in out4; /* the outside speaker */
	struct simpkt out[SIM_MAX_OUT];
	int nout;
	unsigned int overflow;
	/* nodes added with the adaptive query timeout (the default); 0: the
	 * fixed SIM_TIMEOUT the retry tests count in */
	int adaptive;
};

static void addr4(struct sockaddr_in *a, unsigned int host)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(0xc6336400u | host); /* 198.51.100.host */
	a->sin_port = htons(6881);
}

static void addr6(struct sockaddr_in6 *a, unsigned int host)
{
	memset(a, 0, sizeof(*a));
	a->sin6_family = AF_INET6;
	inet_pton(AF_INET6, "2001:db8:77::", &a->sin6_addr);
	a->sin6_addr.s6_addr[15] = (uint8_t)host;
	a->sin6_port = htons(6881);
}

static void enqueue(struct sim *s, const struct sockaddr *from, socklen_t fromlen,
		    const uint8_t *buf, size_t len, const struct sockaddr *to, socklen_t tolen)
{
	struct simpkt *p;

	if (s->qtail - s->qhead == SIM_QLEN || len > sizeof(p->data)) {
		s->overflow++;
		return;
	}
	p = &s->q[s->qtail % SIM_QLEN];
	memcpy(&p->from, from, fromlen);
	p->fromlen = fromlen;
	memcpy(&p->to, to, tolen);
	p->tolen = tolen;
	memcpy(p->data, buf, len);
	p->len = (uint16_t)len;
	p->at = s->now + 1;
	if (s->filter && s->filter(s, p))
		return;
	s->qtail++;
}

static int sim_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	struct simnode *n = arg;

	if (to->sa_family == AF_INET && n->has4)
		enqueue(n->sim, (struct sockaddr *)&n->a4, sizeof(n->a4), buf, len, to, tolen);
	else if (to->sa_family == AF_INET6 && n->has6)
		enqueue(n->sim, (struct sockaddr *)&n->a6, sizeof(n->a6), buf, len, to, tolen);
	else
		return -EAFNOSUPPORT;
	return 0;
}

/* Index of the node owning addr, -1 for none. */
static int node_at(const struct sim *s, const struct sockaddr *a)
{
	for (int i = 0; i < s->nn; i++) {
		if (s->n[i].has4 && dht_addr_eq((const struct sockaddr *)&s->n[i].a4, a))
			return i;
		if (s->n[i].has6 && dht_addr_eq((const struct sockaddr *)&s->n[i].a6, a))
			return i;
	}
	return -1;
}

static void deliver(struct sim *s, const struct simpkt *p)
{
	int i = node_at(s, (const struct sockaddr *)&p->to);

	if (i >= 0) {
		dht_input(s->n[i].dht, p->data, p->len, (const struct sockaddr *)&p->from,
			  p->fromlen, s->now);
	} else if (dht_addr_eq((const struct sockaddr *)&s->out4,
			       (const struct sockaddr *)&p->to) &&
		   s->nout < SIM_MAX_OUT) {
		s->out[s->nout++] = *p;
	}
}

static void sim_run(struct sim *s, uint64_t ms)
{
	uint64_t end = s->now + ms;

	for (;;) {
		uint64_t next = end, nx;

		while (s->qhead != s->qtail && s->q[s->qhead % SIM_QLEN].at <= s->now) {
			struct simpkt p = s->q[s->qhead % SIM_QLEN];

			s->qhead++;
			deliver(s, &p);
		}
		for (int i = 0; i < s->nn; i++) {
			dht_periodic(s->n[i].dht, s->now, &nx);
			if (nx < next)
				next = nx;
		}
		if (s->qhead != s->qtail && s->q[s->qhead % SIM_QLEN].at < next)
			next = s->q[s->qhead % SIM_QLEN].at;
		if (s->now >= end)
			return;
		s->now = next > s->now ? next : s->now + 1;
		if (s->now > end)
			s->now = end;
	}
}

static int sim_add(struct sim *s, int has4, int has6, unsigned int flags)
{
	int i = s->nn++;
	struct simnode *n = &s->n[i];
	uint8_t seed[32] = {0};
	struct dht_opts o = {.send = sim_send, .send_arg = n, .seed = seed, .flags = flags};

	assert_true(i < SIM_MAX_NODES);
	if (!s->adaptive)
		o.limits.query_timeout_min_ms = SIM_TIMEOUT;
	seed[0] = (uint8_t)i;
	seed[1] = 0x5e;
	n->sim = s;
	n->has4 = has4;
	n->has6 = has6;
	addr4(&n->a4, (unsigned int)i + 1);
	addr6(&n->a6, (unsigned int)i + 1);
	assert_int_equal(dht_new(&n->dht, &o), 0);
	return i;
}

static void sim_boot(struct sim *s, int i, int j, int family)
{
	struct simnode *b = &s->n[j];

	if (family == AF_INET)
		assert_int_equal(
		    dht_add_node(s->n[i].dht, (struct sockaddr *)&b->a4, sizeof(b->a4), s->now), 0);
	else
		assert_int_equal(
		    dht_add_node(s->n[i].dht, (struct sockaddr *)&b->a6, sizeof(b->a6), s->now), 0);
}

static struct sim *sim_new(void)
{
	struct sim *s = calloc(1, sizeof(*s));

	assert_non_null(s);
	s->q = calloc(SIM_QLEN, sizeof(*s->q));
	assert_non_null(s->q);
	s->now = 1000000;
	addr4(&s->out4, 250);
	return s;
}

static void sim_free(struct sim *s)
{
	for (int i = 0; i < s->nn; i++)
		dht_free(s->n[i].dht);
	free(s->q);
	free(s);
}

/* A v4-only network of n nodes bootstrapped from node 0. */
static struct sim *sim_net4(int n)
{
	struct sim *s = sim_new();

	for (int i = 0; i < n; i++)
		sim_add(s, 1, 0, 0);
	for (int i = 1; i < n; i++)
		sim_boot(s, i, 0, AF_INET);
	sim_run(s, 5000);
	return s;
}

struct waiter {
	int done;
	int last_done, last_status; /* dht_get_first's end (on_done2) */
	int64_t last_seq;
	struct dht_result r;
	struct sockaddr_storage peers[16];
	uint8_t v[DHT_MAX_VALUE + 8];
	struct dht_node_info nodes[DHT_K];
};

static void on_done(void *arg, const struct dht_result *r)
{
	struct waiter *w = arg;

	w->done = 1;
	w->r = *r;
	w->r.npeers = r->npeers < 16 ? r->npeers : 16;
	if (w->r.npeers)
		memcpy(w->peers, r->peers, w->r.npeers * sizeof(w->peers[0]));
	w->r.peers = w->peers;
	if (r->nnodes)
		memcpy(w->nodes, r->nodes, r->nnodes * sizeof(r->nodes[0]));
	w->r.nodes = w->nodes;
	if (r->value) {
		memcpy(w->v, r->value, r->value_len);
		w->r.value = w->v;
	}
}

static void on_done2(void *arg, const struct dht_result *r)
{
	struct waiter *w = arg;

	w->last_done = 1;
	w->last_status = r->status;
	w->last_seq = r->seq;
}

static void sim_wait(struct sim *s, struct waiter *w)
{
	for (int i = 0; i < 60000 && !w->done; i += 10)
		sim_run(s, 10);
	assert_true(w->done);
}

/* ---- observing and dropping queries ---- */

struct watch {
	int from, to;		 /* node indexes */
	enum krpc_method method; /* only queries of this method (0: any) */
	int drop_first;		 /* drop the first query from -> to */
	int drop_all;		 /* drop every query from -> to */
	int ndropped;
	struct simpkt dropped;
	int nafter; /* queries from -> to seen after the first drop */
	struct simpkt after[8];
};

static int is_query(const struct simpkt *p, struct krpc_msg *m)
{
	return !krpc_parse(m, p->data, p->len) && m->y == 'q';
}

static int watch_filter(struct sim *s, const struct simpkt *p)
{
	struct watch *w = s->farg;
	struct krpc_msg m;

	if (node_at(s, (const struct sockaddr *)&p->from) != w->from ||
	    node_at(s, (const struct sockaddr *)&p->to) != w->to || !is_query(p, &m) ||
	    (w->method && m.q != w->method))
		return 0;
	if (w->ndropped && w->nafter < 8)
		w->after[w->nafter++] = *p;
	if (w->drop_all || (w->drop_first && !w->ndropped)) {
		if (!w->ndropped)
			w->dropped = *p;
		w->ndropped++;
		return 1;
	}
	return 0;
}

static uint32_t pkt_tid(const struct simpkt *p)
{
	struct krpc_msg m;

	assert_int_equal(krpc_parse(&m, p->data, p->len), 0);
	assert_int_equal(m.tlen, 4);
	return (uint32_t)m.t[0] << 24 | (uint32_t)m.t[1] << 16 | (uint32_t)m.t[2] << 8 | m.t[3];
}

/* b is a of a with only the transaction id changed. */
static void assert_retry_of(const struct simpkt *a, const struct simpkt *b)
{
	struct krpc_msg ma, mb;
	size_t off;

	assert_int_equal(a->len, b->len);
	assert_int_equal(krpc_parse(&ma, a->data, a->len), 0);
	assert_int_equal(krpc_parse(&mb, b->data, b->len), 0);
	assert_int_equal(ma.q, mb.q);
	assert_true(pkt_tid(a) != pkt_tid(b));
	off = (size_t)(ma.t - a->data);
	assert_memory_equal(a->data, b->data, off);
	assert_memory_equal(a->data + off + 4, b->data + off + 4, a->len - off - 4);
}

static void test_retry_drop_first(void **state)
{
	struct sim *s = sim_net4(16);
	struct watch w = {.from = 3, .to = 7, .method = KRPC_FIND_NODE, .drop_first = 1};
	struct dht_stats st0, st1;
	struct waiter wt = {0};
	struct dht_node *x;
	int found = 0;

	assert_int_equal(s->overflow, 0);
	s->filter = watch_filter;
	s->farg = &w;
	dht_get_stats(s->n[3].dht, &st0);
	assert_int_equal(st0.timeouts, 0);
	assert_int_equal(dht_find_node(s->n[3].dht, dht_id(s->n[7].dht), s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	assert_true(wt.r.nnodes > 0);
	/* found despite the loss */
	assert_memory_equal(wt.r.nodes[0].id, dht_id(s->n[7].dht), DHT_ID_LEN);
	assert_int_equal(w.ndropped, 1);
	/* the retry: same datagram, new transaction id, one timeout later */
	for (int i = 0; i < w.nafter; i++) {
		if (w.after[i].len != w.dropped.len || w.after[i].at != w.dropped.at + SIM_TIMEOUT)
			continue;
		assert_retry_of(&w.dropped, &w.after[i]);
		found = 1;
	}
	assert_true(found);
	dht_get_stats(s->n[3].dht, &st1);
	assert_true(st1.retries >= st0.retries + 1);
	assert_int_equal(st1.timeouts, 0); /* nothing went unanswered in the end */
	/* not marked: in the table, no failure */
	x = dht_rt_find(&s->n[3].dht->t4, dht_id(s->n[3].dht), dht_id(s->n[7].dht));
	assert_non_null(x);
	assert_int_equal(x->fails, 0);

	/* ping: first ping dropped, the retry answered */
	memset(&w, 0, sizeof(w));
	w.from = 3;
	w.to = 9;
	w.method = KRPC_PING;
	w.drop_first = 1;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_ping(s->n[3].dht, (struct sockaddr *)&s->n[9].a4, sizeof(s->n[9].a4),
				  s->now, on_done, &wt),
			 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	assert_int_equal(w.ndropped, 1);
	assert_int_equal(wt.r.queried, 2);
	assert_true(wt.r.rtt_ms >= SIM_TIMEOUT); /* measured from the first attempt */
	assert_memory_equal(wt.r.nodes[0].id, dht_id(s->n[9].dht), DHT_ID_LEN);
	sim_free(s);
}

static void test_retry_dead_node(void **state)
{
	struct sim *s = sim_net4(16);
	struct watch w = {.from = 3, .to = 7, .method = KRPC_FIND_NODE, .drop_all = 1};
	struct dht_stats st0, st1;
	struct waiter wt = {0};
	struct dht_node *x;

	s->filter = watch_filter;
	s->farg = &w;
	x = dht_rt_find(&s->n[3].dht->t4, dht_id(s->n[3].dht), dht_id(s->n[7].dht));
	assert_non_null(x);
	assert_int_equal(x->fails, 0);
	dht_get_stats(s->n[3].dht, &st0);
	assert_int_equal(dht_find_node(s->n[3].dht, dht_id(s->n[7].dht), s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	/* the target is the closest candidate: one query and two retries
	 * (DHT_QUERY_ATTEMPTS_CLOSE), one timeout then half a timeout apart,
	 * then the node is skipped and marked once */
	assert_int_equal(w.ndropped, 3);
	assert_retry_of(&w.dropped, &w.after[0]);
	assert_retry_of(&w.dropped, &w.after[1]);
	assert_int_equal(w.after[0].at, w.dropped.at + SIM_TIMEOUT);
	assert_int_equal(w.after[1].at, w.dropped.at + SIM_TIMEOUT + SIM_TIMEOUT / 2);
	/* given up two timeouts after the first attempt, as with two attempts
	 * (virtual time, stepped by 10 ms) */
	assert_true(s->now >= w.dropped.at + 2 * SIM_TIMEOUT);
	assert_true(s->now <= w.dropped.at + 2 * SIM_TIMEOUT + 10);
	for (size_t i = 0; i < wt.r.nnodes; i++)
		assert_memory_not_equal(wt.r.nodes[i].id, dht_id(s->n[7].dht), DHT_ID_LEN);
	assert_int_equal(wt.r.nnodes, DHT_K); /* the lookup went on with the others */
	dht_get_stats(s->n[3].dht, &st1);
	assert_int_equal(st1.timeouts - st0.timeouts, 1);
	assert_true(st1.retries - st0.retries >= 1);
	x = dht_rt_find(&s->n[3].dht->t4, dht_id(s->n[3].dht), dht_id(s->n[7].dht));
	assert_non_null(x);
	assert_int_equal(x->fails, 1);

	/* ping to a dead node: two attempts, then -ETIMEDOUT */
	memset(&w, 0, sizeof(w));
	w.from = 3;
	w.to = 9;
	w.method = KRPC_PING;
	w.drop_all = 1;
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_ping(s->n[3].dht, (struct sockaddr *)&s->n[9].a4, sizeof(s->n[9].a4),
				  s->now, on_done, &wt),
			 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, -ETIMEDOUT);
	assert_int_equal(w.ndropped, 2);
	assert_int_equal(wt.r.queried, 2);
	sim_free(s);
}

/* ---- BEP 32 ---- */

struct wantwatch {
	int dual, plain;		   /* node indexes */
	int dual_searches, dual_with_want; /* find_node/get_peers/get from dual */
	int plain_searches, plain_with_want;
	int other_with_want; /* ping / announce / put carrying want */
};

static int want_filter(struct sim *s, const struct simpkt *p)
{
	struct wantwatch *w = s->farg;
	struct krpc_msg m;
	int from = node_at(s, (const struct sockaddr *)&p->from), search;

	if (!is_query(p, &m))
		return 0;
	search = m.q == KRPC_FIND_NODE || m.q == KRPC_GET_PEERS || m.q == KRPC_GET;
	if (!search && (m.want4 || m.want6))
		w->other_with_want++;
	if (!search)
		return 0;
	if (from == w->dual) {
		w->dual_searches++;
		w->dual_with_want += m.want4 && m.want6;
	} else if (from == w->plain) {
		w->plain_searches++;
		w->plain_with_want += m.want4 || m.want6;
	}
	return 0;
}

/* Raw query from the outside address to node i; returns the reply parsed
 * into m (pointing into s->out[0]) or fails. */
static struct simpkt *outside_query(struct sim *s, int i, const uint8_t *buf, size_t len,
				    struct krpc_msg *m)
{
	s->nout = 0;
	enqueue(s, (struct sockaddr *)&s->out4, sizeof(s->out4), buf, len,
		(struct sockaddr *)&s->n[i].a4, sizeof(s->n[i].a4));
	sim_run(s, 5);
	assert_int_equal(s->nout, 1);
	assert_int_equal(krpc_parse(m, s->out[0].data, s->out[0].len), 0);
	return &s->out[0];
}

struct qb {
	uint8_t buf[2048];
	struct bencode_buf b;
};

static const uint8_t out_id[20] = "outside-node-id-0000";

static void q_begin(struct qb *q)
{
	bencode_buf_init(&q->b, q->buf, sizeof(q->buf));
	bencode_put_dict(&q->b);
	bencode_put_cstr(&q->b, "a");
	bencode_put_dict(&q->b);
}

static void q_want(struct qb *q, int n4, int n6)
{
	bencode_put_cstr(&q->b, "want");
	bencode_put_list(&q->b);
	if (n4)
		bencode_put_cstr(&q->b, "n4");
	if (n6)
		bencode_put_cstr(&q->b, "n6");
	bencode_put_end(&q->b);
}

static void q_end(struct qb *q, const char *method)
{
	bencode_put_end(&q->b);
	bencode_put_cstr(&q->b, "q");
	bencode_put_cstr(&q->b, method);
	/* read-only (BEP 43): the outside speaker stays out of routing tables */
	bencode_put_cstr(&q->b, "ro");
	bencode_put_int(&q->b, 1);
	bencode_put_cstr(&q->b, "t");
	bencode_put_cstr(&q->b, "tx");
	bencode_put_cstr(&q->b, "y");
	bencode_put_cstr(&q->b, "q");
	bencode_put_end(&q->b);
	assert_int_equal(q->b.err, 0);
}

static void find_node_want(struct sim *s, int i, int n4, int n6, int want, struct krpc_msg *m)
{
	struct qb q;

	q_begin(&q);
	bencode_put_cstr(&q.b, "id");
	bencode_put_str(&q.b, out_id, 20);
	bencode_put_cstr(&q.b, "target");
	bencode_put_str(&q.b, out_id, 20);
	if (want)
		q_want(&q, n4, n6);
	q_end(&q, "find_node");
	outside_query(s, i, q.buf, q.b.len, m);
	assert_int_equal(m->y, 'r');
}

static void test_want(void **state)
{
	struct sim *s = sim_new();
	struct wantwatch ww = {0};
	struct waiter wt = {0};
	struct dht_stats st;
	struct krpc_msg m;
	int hub, d, c, v6 = -1;

	hub = sim_add(s, 1, 1, DHT_F_DUAL_STACK);
	for (int i = 0; i < 6; i++)
		sim_boot(s, sim_add(s, 1, 0, 0), hub, AF_INET);
	for (int i = 0; i < 6; i++) {
		v6 = sim_add(s, 0, 1, 0);
		sim_boot(s, v6, hub, AF_INET6);
	}
	/* dual-stack nodes that only know the hub's IPv4 address */
	d = sim_add(s, 1, 1, DHT_F_DUAL_STACK);
	c = sim_add(s, 1, 1, 0);
	ww.dual = d;
	ww.plain = c;
	s->filter = want_filter;
	s->farg = &ww;
	sim_boot(s, d, hub, AF_INET);
	sim_boot(s, c, hub, AF_INET);
	sim_run(s, 5000);
	assert_int_equal(s->overflow, 0);

	assert_int_equal(dht_find_node(s->n[d].dht, dht_id(s->n[v6].dht), s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	assert_memory_equal(wt.r.nodes[0].id, dht_id(s->n[v6].dht), DHT_ID_LEN);
	assert_int_equal(wt.r.nodes[0].addr.ss_family, AF_INET6);
	dht_get_stats(s->n[d].dht, &st);
	assert_true(st.nodes4 > 0);
	assert_true(st.nodes6 > 0);
	printf("# dual-stack node: %u IPv4 + %u IPv6 nodes\n", st.nodes4, st.nodes6);

	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_find_node(s->n[c].dht, dht_id(s->n[v6].dht), s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	for (size_t i = 0; i < wt.r.nnodes; i++)
		assert_int_equal(wt.r.nodes[i].addr.ss_family, AF_INET);
	dht_get_stats(s->n[c].dht, &st);
	assert_int_equal(st.nodes6, 0);

	assert_true(ww.dual_searches > 0);
	assert_int_equal(ww.dual_with_want, ww.dual_searches);
	assert_true(ww.plain_searches > 0);
	assert_int_equal(ww.plain_with_want, 0);
	assert_int_equal(ww.other_with_want, 0);
	s->filter = NULL;

	/* answers honour want, whatever family the query came over */
	find_node_want(s, hub, 0, 0, 0, &m);
	assert_true(m.nodes_len > 0 && m.nodes_len % 26 == 0);
	assert_null(m.nodes6);
	find_node_want(s, hub, 0, 1, 1, &m);
	assert_null(m.nodes);
	assert_true(m.nodes6_len > 0 && m.nodes6_len % 38 == 0);
	find_node_want(s, hub, 1, 1, 1, &m);
	assert_int_equal(m.nodes_len, DHT_K * 26);
	assert_true(m.nodes6_len > 0 && m.nodes6_len % 38 == 0);

	/* a 1000-byte item with both node lists still fits one datagram */
	{
		struct qb q;
		uint8_t raw[996], tok[DHT_TOKEN_LEN], target[20];
		struct bencode_buf vb;
		uint8_t v[1000];
		struct simpkt *rp;

		memset(raw, 'x', sizeof(raw));
		bencode_buf_init(&vb, v, sizeof(v));
		bencode_put_str(&vb, raw, sizeof(raw));
		assert_int_equal(vb.len, 1000);
		dht_bep44_target_immutable(target, v, vb.len);
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, out_id, 20);
		bencode_put_cstr(&q.b, "target");
		bencode_put_str(&q.b, target, 20);
		q_end(&q, "get");
		outside_query(s, hub, q.buf, q.b.len, &m);
		assert_int_equal(m.token_len, DHT_TOKEN_LEN);
		memcpy(tok, m.token, DHT_TOKEN_LEN);
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, out_id, 20);
		bencode_put_cstr(&q.b, "token");
		bencode_put_str(&q.b, tok, sizeof(tok));
		bencode_put_cstr(&q.b, "v");
		bencode_put_raw(&q.b, v, vb.len);
		q_end(&q, "put");
		outside_query(s, hub, q.buf, q.b.len, &m);
		assert_int_equal(m.y, 'r');
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, out_id, 20);
		bencode_put_cstr(&q.b, "target");
		bencode_put_str(&q.b, target, 20);
		q_want(&q, 1, 1);
		q_end(&q, "get");
		rp = outside_query(s, hub, q.buf, q.b.len, &m);
		assert_int_equal(m.y, 'r');
		assert_int_equal(m.vlen, 1000);
		assert_memory_equal(m.v, v, 1000);
		assert_true(m.nodes_len > 0 || m.nodes6_len > 0);
		assert_true(rp->len <= DHT_MAX_PKT);
		printf("# get with want n4+n6 and a 1000-byte item: %u bytes, %zu + %zu nodes\n",
		       rp->len, m.nodes_len / 26, m.nodes6_len / 38);
	}
	sim_free(s);
}

/* ---- our own storage in our own lookups ---- */

static void outside_announce(struct sim *s, int i, const uint8_t ih[20], int port)
{
	struct qb q;
	struct krpc_msg m;
	uint8_t tok[DHT_TOKEN_LEN];

	q_begin(&q);
	bencode_put_cstr(&q.b, "id");
	bencode_put_str(&q.b, out_id, 20);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	q_end(&q, "get_peers");
	outside_query(s, i, q.buf, q.b.len, &m);
	assert_int_equal(m.token_len, DHT_TOKEN_LEN);
	memcpy(tok, m.token, DHT_TOKEN_LEN);
	q_begin(&q);
	bencode_put_cstr(&q.b, "id");
	bencode_put_str(&q.b, out_id, 20);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, port);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, sizeof(tok));
	q_end(&q, "announce_peer");
	outside_query(s, i, q.buf, q.b.len, &m);
	assert_int_equal(m.y, 'r');
}

/* Mutable put signed with kseed's key from the outside address. */
static void outside_put_mutable(struct sim *s, int i, const uint8_t pk[32], const uint8_t sk[64],
				const char *salt, int64_t seq, const char *value)
{
	struct qb q;
	struct krpc_msg m;
	uint8_t tok[DHT_TOKEN_LEN], target[20], v[64], sig[64];
	struct bencode_buf vb;

	bencode_buf_init(&vb, v, sizeof(v));
	bencode_put_cstr(&vb, value);
	dht_bep44_target_mutable(target, pk, (const uint8_t *)salt, strlen(salt));
	assert_int_equal(
	    dht_bep44_sign(sig, sk, (const uint8_t *)salt, strlen(salt), seq, v, vb.len), 0);
	q_begin(&q);
	bencode_put_cstr(&q.b, "id");
	bencode_put_str(&q.b, out_id, 20);
	bencode_put_cstr(&q.b, "target");
	bencode_put_str(&q.b, target, 20);
	q_end(&q, "get");
	outside_query(s, i, q.buf, q.b.len, &m);
	memcpy(tok, m.token, DHT_TOKEN_LEN);
	q_begin(&q);
	bencode_put_cstr(&q.b, "id");
	bencode_put_str(&q.b, out_id, 20);
	bencode_put_cstr(&q.b, "k");
	bencode_put_str(&q.b, pk, 32);
	bencode_put_cstr(&q.b, "salt");
	bencode_put_cstr(&q.b, salt);
	bencode_put_cstr(&q.b, "seq");
	bencode_put_int(&q.b, seq);
	bencode_put_cstr(&q.b, "sig");
	bencode_put_str(&q.b, sig, 64);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, sizeof(tok));
	bencode_put_cstr(&q.b, "v");
	bencode_put_raw(&q.b, v, vb.len);
	q_end(&q, "put");
	outside_query(s, i, q.buf, q.b.len, &m);
	assert_int_equal(m.y, 'r');
}

static void assert_outside_peer(const struct waiter *wt, int port)
{
	const struct sockaddr_in *p = (const struct sockaddr_in *)&wt->peers[0];

	assert_int_equal(wt->r.status, 0);
	assert_int_equal(wt->r.npeers, 1);
	assert_int_equal(p->sin_family, AF_INET);
	assert_int_equal(p->sin_addr.s_addr, htonl(0xc63364fa)); /* 198.51.100.250 */
	assert_int_equal(ntohs(p->sin_port), port);
}

static void test_own_results(void **state)
{
	struct sim *s = sim_net4(12);
	struct waiter wt = {0};
	uint8_t ih[20], pk[32], sk[64], kseed[32] = {7};
	int st = 5, lone;

	/* a peer announced to node st only: st's own get_peers returns it */
	memcpy(ih, dht_id(s->n[st].dht), 20);
	ih[19] ^= 1;
	outside_announce(s, st, ih, 5555);
	assert_int_equal(dht_get_peers(s->n[st].dht, ih, s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_outside_peer(&wt, 5555);
	assert_true(wt.r.visited > 0); /* the lookup still ran */
	/* the others find it through st */
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_get_peers(s->n[2].dht, ih, s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_outside_peer(&wt, 5555);

	/* an immutable item put to st only */
	{
		struct qb q;
		struct krpc_msg m;
		uint8_t tok[DHT_TOKEN_LEN], target[20];

		dht_bep44_target_immutable(target, (const uint8_t *)"5:local", 7);
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, out_id, 20);
		bencode_put_cstr(&q.b, "target");
		bencode_put_str(&q.b, target, 20);
		q_end(&q, "get");
		outside_query(s, st, q.buf, q.b.len, &m);
		memcpy(tok, m.token, DHT_TOKEN_LEN);
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, out_id, 20);
		bencode_put_cstr(&q.b, "token");
		bencode_put_str(&q.b, tok, sizeof(tok));
		bencode_put_cstr(&q.b, "v");
		bencode_put_cstr(&q.b, "local");
		q_end(&q, "put");
		outside_query(s, st, q.buf, q.b.len, &m);
		assert_int_equal(m.y, 'r');
		memset(&wt, 0, sizeof(wt));
		assert_int_equal(dht_get(s->n[st].dht, target, NULL, NULL, 0, s->now, on_done, &wt),
				 0);
		sim_wait(s, &wt);
		assert_int_equal(wt.r.status, 0);
		assert_int_equal(wt.r.value_len, 7);
		assert_memory_equal(wt.r.value, "5:local", 7);
	}
	/* a mutable item (someone else's key) put to st only */
	crypto_sign_seed_keypair(pk, sk, kseed);
	outside_put_mutable(s, st, pk, sk, "salt", 7, "mine");
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(
	    dht_get(s->n[st].dht, NULL, pk, (const uint8_t *)"salt", 4, s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	assert_int_equal(wt.r.seq, 7);
	assert_memory_equal(wt.r.value, "4:mine", 6);
	assert_int_equal(dht_bep44_verify(pk, wt.r.sig, (const uint8_t *)"salt", 4, 7, wt.r.value,
					  wt.r.value_len),
			 0);
	/* other salt: not ours */
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(
	    dht_get(s->n[st].dht, NULL, pk, (const uint8_t *)"other", 5, s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, -ENOENT);

	/* a node with an empty routing table answers from its storage */
	lone = sim_add(s, 1, 0, 0);
	outside_announce(s, lone, ih, 6666);
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_get_peers(s->n[lone].dht, ih, s->now, on_done, &wt), 0);
	assert_true(wt.done); /* nothing to ask: answered at once */
	assert_outside_peer(&wt, 6666);
	assert_int_equal(wt.r.visited, 0);
	/* an announce still needs nodes */
	memset(&wt, 0, sizeof(wt));
	assert_int_equal(dht_announce(s->n[lone].dht, ih, 7777, 0, s->now, on_done, &wt), 0);
	assert_true(wt.done);
	assert_int_equal(wt.r.status, -EHOSTUNREACH);
	/* nothing stored: no nodes to ask */
	memset(&wt, 0, sizeof(wt));
	ih[0] ^= 0xff;
	assert_int_equal(dht_get_peers(s->n[lone].dht, ih, s->now, on_done, &wt), 0);
	assert_true(wt.done);
	assert_int_equal(wt.r.status, -EHOSTUNREACH);
	sim_free(s);
}

/* Node `from`'s queries to the even nodes other than 0 vanish. */
static int drop_even_filter(struct sim *s, const struct simpkt *p)
{
	struct krpc_msg m;
	int to = node_at(s, (const struct sockaddr *)&p->to);
	int from = node_at(s, (const struct sockaddr *)&p->from);

	return from == *(int *)s->farg && to > 0 && to % 2 == 0 && is_query(p, &m);
}

/* The adaptive query timeout (struct dht_limits.query_timeout_min_ms,
 * docs/DHT.md "Timeouts"): after the table formed on 1 ms hops, a query
 * to a silent node is retried after the floor (500 ms), not after the
 * 2 s cap, and the node is given up after two of them. */
static void test_adaptive_timeout(void **state)
{
	struct sim *s = sim_new();
	struct watch w = {.from = 3, .to = 7, .method = KRPC_FIND_NODE, .drop_all = 1};
	struct waiter wt = {0};
	uint64_t rto;

	(void)state;
	s->adaptive = 1;
	for (int i = 0; i < 16; i++)
		sim_add(s, 1, 0, 0);
	assert_int_equal(dht_query_timeout(s->n[3].dht), SIM_TIMEOUT); /* no answer yet */
	for (int i = 1; i < 16; i++)
		sim_boot(s, i, 0, AF_INET);
	sim_run(s, 5000);
	rto = dht_query_timeout(s->n[3].dht);
	assert_int_equal(rto, 500); /* srtt + 4 rttvar of 2 ms round trips: the floor */
	s->filter = watch_filter;
	s->farg = &w;
	assert_int_equal(dht_find_node(s->n[3].dht, dht_id(s->n[7].dht), s->now, on_done, &wt), 0);
	sim_wait(s, &wt);
	assert_int_equal(wt.r.status, 0);
	assert_int_equal(w.ndropped, 3);
	assert_int_equal(w.after[0].at, w.dropped.at + rto);
	assert_int_equal(w.after[1].at, w.dropped.at + rto + rto / 2);
	/* a silent node costs two adaptive timeouts, not two of 2 s */
	assert_true(s->now <= w.dropped.at + 2 * rto + 10);
	sim_free(s);
}

/* dht_get_first (docs/CONNECTIVITY.md "Resolution and dial by key"): the
 * first valid item is handed over as soon as one node answers with it,
 * one query round trip (1 ms each way here) after the start, while the
 * lookup waits for its silent candidates' timeouts (two query timeouts)
 * before its end, which carries the same item. A silent node costs a
 * plain get those seconds: a dial by key no longer waits for them. */
static void test_get_first(void **state)
{
	struct sim *s = sim_net4(16);
	struct waiter first = {0};
	uint8_t pk[32], sk[64], kseed[32] = {9};
	uint64_t t0, t_first = 0;
	int me = 3;

	(void)state;
	crypto_sign_seed_keypair(pk, sk, kseed);
	for (int i = 0; i < 16; i++)
		if (i != me)
			outside_put_mutable(s, i, pk, sk, "weft:node", 5, "record");
	s->filter = drop_even_filter;
	s->farg = &me;
	t0 = s->now;
	assert_int_equal(dht_get_first(s->n[me].dht, pk, (const uint8_t *)"weft:node", 9, 0, s->now,
				       on_done, on_done2, &first),
			 0);
	for (int i = 0; i < 60000 && !first.done; i++)
		sim_run(s, 1);
	assert_true(first.done);
	t_first = s->now;
	/* One round trip: the query's 1 ms out, its answer's 1 ms back. */
	assert_true(t_first - t0 <= 2);
	assert_int_equal(first.r.status, 0);
	assert_int_equal(first.r.seq, 5);
	assert_memory_equal(first.r.value, "6:record", 8);
	assert_false(first.last_done);
	while (!first.last_done && s->now < t0 + 60000)
		sim_run(s, 10);
	assert_true(first.last_done);
	/* The end waited for the silent nodes: at least two query timeouts. */
	assert_true(s->now - t0 >= 2 * SIM_TIMEOUT);
	assert_int_equal(first.last_status, 0);
	assert_int_equal(first.last_seq, 5);

	/* stop: the lookup ends with its first item, in the same step. */
	memset(&first, 0, sizeof(first));
	t0 = s->now;
	assert_int_equal(dht_get_first(s->n[me].dht, pk, (const uint8_t *)"weft:node", 9, 1, s->now,
				       on_done, on_done2, &first),
			 0);
	for (int i = 0; i < 60000 && !first.done; i++)
		sim_run(s, 1);
	assert_true(first.done && first.last_done);
	assert_true(s->now - t0 <= 2);
	assert_int_equal(first.last_status, 0);
	assert_int_equal(first.last_seq, 5);
	sim_run(s, 3 * SIM_TIMEOUT); /* late answers and timeouts find no lookup */

	/* No item anywhere: first never comes, the end says -ENOENT. */
	memset(&first, 0, sizeof(first));
	kseed[0] = 10;
	crypto_sign_seed_keypair(pk, sk, kseed);
	s->filter = NULL;
	assert_int_equal(dht_get_first(s->n[me].dht, pk, (const uint8_t *)"weft:node", 9, 0, s->now,
				       on_done, on_done2, &first),
			 0);
	while (!first.last_done && s->now < t0 + 120000)
		sim_run(s, 10);
	assert_true(first.last_done);
	assert_false(first.done);
	assert_int_equal(first.last_status, -ENOENT);
	/* Hostile arguments. */
	assert_int_equal(dht_get_first(s->n[me].dht, NULL, NULL, 0, 0, s->now, on_done, on_done2,
				       &first),
			 -EINVAL);
	sim_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retry_drop_first),
	    cmocka_unit_test(test_retry_dead_node),
	    cmocka_unit_test(test_adaptive_timeout),
	    cmocka_unit_test(test_get_first),
	    cmocka_unit_test(test_want),
	    cmocka_unit_test(test_own_results),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_dht", tests, NULL, NULL);
}
