/* SPDX-License-Identifier: MIT */
/*
 * The KRPC server-side fixture shared by test_dht_krpc.c and
 * test_dht_reply.c: a DHT core whose send, abuse and evidence callbacks
 * capture what it does, a query builder, and feed() (one datagram in, the
 * reply parsed). Header-only, as quic_sim.h: each test binary stays one
 * file plus this helper.
 */
#ifndef WEFT_TEST_DHT_KRPC_FX_H
#define WEFT_TEST_DHT_KRPC_FX_H

#include <arpa/inet.h>
#include <errno.h>
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
#include "weft/util.h"
struct cap {
	uint8_t buf[2048];
	size_t len;
	int count;
	int abuse;
	int ev[3]; /* on_evidence calls by kind (DHT_EV_*) */
	struct sockaddr_in ev_from;
	struct sockaddr_in to; /* where the last datagram went (IPv4) */
};

static inline int cap_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	struct cap *c = arg;

	memcpy(c->buf, buf, len);
	c->len = len;
	c->count++;
	if (to->sa_family == AF_INET && tolen >= sizeof(c->to))
		memcpy(&c->to, to, sizeof(c->to));
	return 0;
}

static inline void cap_abuse(void *arg, const struct sockaddr *a, socklen_t l)
{
	((struct cap *)arg)->abuse++;
}

static inline void cap_evidence(void *arg, const struct sockaddr *a, socklen_t l, int kind)
{
	struct cap *c = arg;

	assert_true(kind == DHT_EV_REPLY || kind == DHT_EV_TOKEN);
	assert_int_equal(l, sizeof(c->ev_from));
	memcpy(&c->ev_from, a, sizeof(c->ev_from));
	c->ev[kind]++;
}

struct fx {
	struct dht *dht;
	struct cap cap;
	struct sockaddr_in from;
	uint8_t pk[32], sk[64];
	uint64_t now;
};

static inline int setup_opts(void **state, unsigned int flags, const struct dht_limits *lim)
{
	struct fx *f = calloc(1, sizeof(*f));
	uint8_t seed[32] = {42}, kseed[32] = {9};
	struct dht_opts o = {.send = cap_send, .seed = seed, .flags = flags, .on_abuse = cap_abuse};

	o.send_arg = &f->cap;
	o.abuse_arg = &f->cap;
	o.on_evidence = cap_evidence;
	o.evidence_arg = &f->cap;
	if (lim)
		o.limits = *lim;
	assert_int_equal(sodium_init() >= 0, 1);
	crypto_sign_seed_keypair(f->pk, f->sk, kseed);
	assert_int_equal(dht_new(&f->dht, &o), 0);
	f->from.sin_family = AF_INET;
	f->from.sin_addr.s_addr = htonl(0x7f000002);
	f->from.sin_port = htons(7000);
	f->now = 1000;
	*state = f;
	return 0;
}

static inline int setup(void **state)
{
	return setup_opts(state, 0, NULL);
}

static inline int teardown(void **state)
{
	struct fx *f = *state;

	dht_free(f->dht);
	free(f);
	return 0;
}

/* Query builder: args written by the caller between args_begin/args_end. */
struct qb {
	uint8_t buf[2048];
	struct bencode_buf b;
};

__attribute__((unused)) static const uint8_t peer_id[20] = "abcdefghij0123456789";

static inline void q_begin(struct qb *q)
{
	bencode_buf_init(&q->b, q->buf, sizeof(q->buf));
	bencode_put_dict(&q->b);
	bencode_put_cstr(&q->b, "a");
	bencode_put_dict(&q->b);
}

static inline void q_id(struct qb *q)
{
	bencode_put_cstr(&q->b, "id");
	bencode_put_str(&q->b, peer_id, 20);
}

static inline void q_end(struct qb *q, const char *method)
{
	bencode_put_end(&q->b);
	bencode_put_cstr(&q->b, "q");
	bencode_put_cstr(&q->b, method);
	bencode_put_cstr(&q->b, "t");
	bencode_put_cstr(&q->b, "tx");
	bencode_put_cstr(&q->b, "y");
	bencode_put_cstr(&q->b, "q");
	bencode_put_end(&q->b);
	assert_int_equal(q->b.err, 0);
}

/* Feed, then parse the reply into m; returns 'r', 'e' or 0 (no reply). */
static inline char feed(struct fx *f, const uint8_t *buf, size_t len, struct krpc_msg *m)
{
	int before = f->cap.count;

	dht_input(f->dht, buf, len, (struct sockaddr *)&f->from, sizeof(f->from), f->now);
	if (f->cap.count == before)
		return 0;
	assert_int_equal(krpc_parse(m, f->cap.buf, f->cap.len), 0);
	assert_int_equal(m->tlen, 2);
	assert_memory_equal(m->t, "tx", 2);
	return m->y;
}

static inline void expect_err(struct fx *f, struct qb *q, int code)
{
	struct krpc_msg m;

	assert_int_equal(feed(f, q->buf, q->b.len, &m), 'e');
	assert_int_equal(m.ecode, code);
}

static inline void get_token(struct fx *f, const uint8_t target[20], uint8_t tok[DHT_TOKEN_LEN])
{
	struct qb q;
	struct krpc_msg m;

	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "target");
	bencode_put_str(&q.b, target, 20);
	q_end(&q, "get");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.token_len, DHT_TOKEN_LEN);
	memcpy(tok, m.token, DHT_TOKEN_LEN);
}

#endif
