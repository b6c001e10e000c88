// SPDX-License-Identifier: MIT
/*
 * KRPC server side, packet by packet: every error path (201-207, 301, 302)
 * with a crafted query, the answers to good queries, tolerance of unknown
 * keys, read-only mode (BEP 43) and the per-source budget. No sockets: the
 * core's send callback captures the reply.
 */
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

static int cap_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
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

static void cap_abuse(void *arg, const struct sockaddr *a, socklen_t l)
{
	((struct cap *)arg)->abuse++;
}

static void cap_evidence(void *arg, const struct sockaddr *a, socklen_t l, int kind)
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

static int setup_opts(void **state, unsigned int flags, const struct dht_limits *lim)
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

static int setup(void **state)
{
	return setup_opts(state, 0, NULL);
}

static int teardown(void **state)
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

static const uint8_t peer_id[20] = "abcdefghij0123456789";

static void q_begin(struct qb *q)
{
	bencode_buf_init(&q->b, q->buf, sizeof(q->buf));
	bencode_put_dict(&q->b);
	bencode_put_cstr(&q->b, "a");
	bencode_put_dict(&q->b);
}

static void q_id(struct qb *q)
{
	bencode_put_cstr(&q->b, "id");
	bencode_put_str(&q->b, peer_id, 20);
}

static void q_end(struct qb *q, const char *method)
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
static char feed(struct fx *f, const uint8_t *buf, size_t len, struct krpc_msg *m)
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

static void expect_err(struct fx *f, struct qb *q, int code)
{
	struct krpc_msg m;

	assert_int_equal(feed(f, q->buf, q->b.len, &m), 'e');
	assert_int_equal(m.ecode, code);
}

static void get_token(struct fx *f, const uint8_t target[20], uint8_t tok[DHT_TOKEN_LEN])
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

/*
 * Malformed BEP 5 queries, each with the answer it gets: a KRPC error code,
 * or 0 for none (broken bencode: no transaction id to answer). The bytes
 * are what the query builder (q_begin, q_id, q_end) makes.
 */
#define Q_ID "2:id20:abcdefghij0123456789"
#define Q_IH "9:info_hash20:infohash-infohash-ih"
#define Q_TOKEN "5:token8:12345678" /* not a token this node gave */
#define Q_END(method) "e1:q" method "1:t2:tx1:y1:qe"

static const struct bad_query {
	const char *what, *query;
	int ecode; /* 0: dropped, no answer */
} bep5_bad[] = {
	{ "dictionary not closed", "d1:ad" Q_ID "e1:q4:ping1:t2:tx1:y1:q", 0 },
	{ "trailing byte", "d1:ad" Q_ID Q_END("4:ping") "e", 0 },
	{ "no a", "d1:q4:ping1:t2:tx1:y1:qe", 203 },
	{ "no q", "d1:ad" Q_ID "e1:t2:tx1:y1:qe", 203 },
	{ "no id", "d1:ad" Q_END("4:ping"), 203 },
	{ "short id", "d1:ad2:id19:abcdefghij012345678" Q_END("4:ping"), 203 },
	{ "unknown method", "d1:ad" Q_ID Q_END("10:frobnicate"), 204 },
	{ "find_node without target", "d1:ad" Q_ID Q_END("9:find_node"), 203 },
	{ "find_node, target not a string", "d1:ad" Q_ID "6:targeti5e" Q_END("9:find_node"), 203 },
	{ "get_peers without info_hash", "d1:ad" Q_ID Q_END("9:get_peers"), 203 },
	{ "announce_peer without port", "d1:ad" Q_ID Q_IH Q_TOKEN Q_END("13:announce_peer"), 203 },
	{ "announce_peer, port 0", "d1:ad" Q_ID Q_IH "4:porti0e" Q_TOKEN Q_END("13:announce_peer"),
	  203 },
	{ "announce_peer without token", "d1:ad" Q_ID Q_IH "4:porti6881e" Q_END("13:announce_peer"),
	  203 },
	{ "announce_peer, bad token",
	  "d1:ad" Q_ID Q_IH "4:porti6881e" Q_TOKEN Q_END("13:announce_peer"), 203 },
	{ "get without target", "d1:ad" Q_ID Q_END("3:get"), 203 },
};

static void test_bep5_errors(void **state)
{
	struct fx *f = *state;
	struct krpc_msg m;
	struct dht_stats st;

	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bep5_bad); i++) {
		const struct bad_query *c = &bep5_bad[i];
		char y = feed(f, (const uint8_t *)c->query, strlen(c->query), &m);

		if (y != (c->ecode ? 'e' : 0) || (y == 'e' && m.ecode != c->ecode))
			fail_msg("%s: answer %c (code %d), want code %d", c->what, y ? y : '-',
				 y == 'e' ? m.ecode : 0, c->ecode);
	}
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.errors_out[2], 12); /* 203 */
	assert_int_equal(st.errors_out[3], 1);	/* 204 */
	assert_int_equal(st.dropped_malformed, 14);
}

static void test_good_queries(void **state)
{
	struct fx *f = *state;
	struct qb q;
	struct krpc_msg m;
	const uint8_t ih[20] = "infohash-infohash-ih";
	uint8_t tok[DHT_TOKEN_LEN];
	/* ping with unknown keys everywhere (libtorrent sends ip, p, v, ro...) */
	static const char raw[] =
	    "d1:ad2:id20:abcdefghij01234567891:pi7000e4:zzzzi1ee2:ip6:\x7f\0\0\x01\x1b\x58"
	    "1:q4:ping1:t2:tx1:v4:LT\x01\x02"
	    "1:y1:qe";

	assert_int_equal(feed(f, (const uint8_t *)raw, sizeof(raw) - 1, &m), 'r');
	assert_memory_equal(m.id, dht_id(f->dht), 20);
	assert_int_equal(m.ip_len, 6); /* we tell the sender its address (BEP 42) */
	assert_memory_equal(m.ip, "\x7f\0\0\x02\x1b\x58", 6);
	/* the sender entered the routing table */
	assert_non_null(dht_rt_find(&f->dht->t4, f->dht->id, peer_id));
	/* find_node answers with compact nodes, never the asker: the only
	 * node we know is the asker, so the list is empty */
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "target");
	bencode_put_str(&q.b, ih, 20);
	q_end(&q, "find_node");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.nodes_len, 0);
	/* another asker (other id, other address) is told about the first */
	{
		struct sockaddr_in keep = f->from;

		f->from.sin_addr.s_addr = htonl(0x7f000005);
		q_begin(&q);
		bencode_put_cstr(&q.b, "id");
		bencode_put_str(&q.b, "ZYXWVUTSRQ9876543210", 20);
		bencode_put_cstr(&q.b, "target");
		bencode_put_str(&q.b, ih, 20);
		q_end(&q, "find_node");
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
		assert_int_equal(m.nodes_len, 26);
		assert_memory_equal(m.nodes, peer_id, 20);
		f->from = keep;
	}
	/* get_peers: token, no values yet */
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	q_end(&q, "get_peers");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.token_len, DHT_TOKEN_LEN);
	assert_int_equal(m.nvalues, 0);
	memcpy(tok, m.token, DHT_TOKEN_LEN);
	/* announce with implied_port, then get_peers returns our source port */
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "implied_port");
	bencode_put_int(&q.b, 1);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, 1);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, sizeof(tok));
	q_end(&q, "announce_peer");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, 5555);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, sizeof(tok));
	q_end(&q, "announce_peer");
	f->from.sin_port = htons(7001); /* token is bound to the IP, not the port */
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	q_end(&q, "get_peers");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.nvalues, 2);
	{
		int seen7000 = 0, seen5555 = 0;

		for (unsigned int i = 0; i < m.nvalues; i++) {
			assert_int_equal(m.values_len[i], 6);
			assert_memory_equal(m.values[i], "\x7f\0\0\x02", 4);
			seen7000 |= !memcmp(m.values[i] + 4, "\x1b\x58", 2);
			seen5555 |= !memcmp(m.values[i] + 4, "\x15\xb3", 2);
		}
		assert_true(seen7000 && seen5555);
	}
	/* a token from another IP is refused */
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, 5555);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, sizeof(tok));
	q_end(&q, "announce_peer");
	f->from.sin_addr.s_addr = htonl(0x7f000003);
	expect_err(f, &q, 203);
}

/* An announce_peer of ih from port, with a "wk" of wklen bytes (0: none). */
static void announce_wk(struct fx *f, const uint8_t ih[20], const uint8_t *tok, uint16_t port,
			const uint8_t *wk, size_t wklen)
{
	struct qb q;
	struct krpc_msg m;

	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, port);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, DHT_TOKEN_LEN);
	if (wklen) {
		bencode_put_cstr(&q.b, "wk");
		bencode_put_str(&q.b, wk, wklen);
	}
	q_end(&q, "announce_peer");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
}

/* weft's key claims ("wk", docs/DHT.md): stored with the announcing peer,
 * handed out next to "values"; a "wk" of another length is ignored (the
 * announce itself still counts); a later announce without one clears it.
 * In a reply, entries of other lengths are skipped. */
static void test_wk_claims(void **state)
{
	struct fx *f = *state;
	const uint8_t ih[20] = "wk-infohash-wk-infoh";
	uint8_t tok[DHT_TOKEN_LEN], wk[DHT_WK_LEN + 1];
	struct krpc_msg m;
	struct qb q;

	for (size_t i = 0; i < sizeof(wk); i++)
		wk[i] = (uint8_t)(0xa0 + i);
	get_token(f, ih, tok);
	announce_wk(f, ih, tok, 7001, wk, DHT_WK_LEN);
	announce_wk(f, ih, tok, 7002, wk, DHT_WK_LEN + 1); /* ignored: wrong length */
	announce_wk(f, ih, tok, 7003, wk, DHT_WK_LEN - 1);
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	q_end(&q, "get_peers");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.nvalues, 3);
	assert_int_equal(m.nwks, 1);
	assert_int_equal(m.wks_len[0], 6 + DHT_WK_LEN);
	assert_memory_equal(m.wks[0], "\x7f\0\0\x02\x1b\x59", 6); /* 127.0.0.2:7001 */
	assert_memory_equal(m.wks[0] + 6, wk, DHT_WK_LEN);
	/* the same peer announces again without a claim: it is gone */
	announce_wk(f, ih, tok, 7001, NULL, 0);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	assert_int_equal(m.nvalues, 3);
	assert_int_equal(m.nwks, 0);
	/* a reply's "wk" entries of other lengths (and other types) are skipped */
	{
		uint8_t buf[1024], e[19 + DHT_WK_LEN];
		struct bencode_buf b;

		memset(e, 7, sizeof(e));
		bencode_buf_init(&b, buf, sizeof(buf));
		bencode_put_dict(&b);
		bencode_put_cstr(&b, "r");
		bencode_put_dict(&b);
		bencode_put_cstr(&b, "id");
		bencode_put_str(&b, peer_id, 20);
		bencode_put_cstr(&b, "wk");
		bencode_put_list(&b);
		bencode_put_str(&b, e, 6 + DHT_WK_LEN - 1);
		bencode_put_int(&b, 5);
		bencode_put_str(&b, e, 18 + DHT_WK_LEN);
		bencode_put_str(&b, e, 6 + DHT_WK_LEN);
		bencode_put_str(&b, e, 19 + DHT_WK_LEN);
		bencode_put_end(&b);
		bencode_put_end(&b);
		bencode_put_cstr(&b, "t");
		bencode_put_cstr(&b, "tx");
		bencode_put_cstr(&b, "y");
		bencode_put_cstr(&b, "r");
		bencode_put_end(&b);
		assert_int_equal(b.err, 0);
		assert_int_equal(krpc_parse(&m, buf, b.len), 0);
		assert_int_equal(m.nwks, 2);
		assert_int_equal(m.wks_len[0], 18 + DHT_WK_LEN);
		assert_int_equal(m.wks_len[1], 6 + DHT_WK_LEN);
	}
}

/* Immutable puts in order, with the answer each gets (0: stored). */
static const struct imm_put {
	const char *what;
	int token; /* 0: none, 1: the one get gave, 2: "xxxxxxxx" */
	int v;	   /* 0: none, 1: "5:hello", 2: a 999-byte string (1003 bytes) */
	int ecode;
} bep44_imm[] = {
	{ "no token", 0, 1, 203 },
	{ "no v", 1, 0, 203 },
	{ "bad token", 2, 1, 203 },
	{ "v over 1000 bytes", 1, 2, 205 },
	{ "good", 1, 1, 0 },
};

/* Mutable puts (k, salt "salt", v "5:hello") in order, each answered
 * after what the ones before stored (0: stored). */
static const struct mut_put {
	const char *what;
	int64_t seq;	    /* -1: neither seq nor salt in the query */
	int64_t signed_seq; /* what the signature covers */
	int flip;	    /* a bit of the signature flipped */
	size_t saltlen;	    /* 4: "salt"; 65: 65 bytes 'a' (over the limit) */
	int64_t cas;	    /* -1: none */
	int ecode;
} bep44_mut[] = {
	{ "bad signature", 5, 5, 1, 4, -1, 206 },
	{ "signature over another seq", 6, 5, 0, 4, -1, 206 },
	{ "salt over 64 bytes", 5, 5, 0, 65, -1, 207 },
	{ "no seq", -1, 5, 0, 4, -1, 203 },
	{ "good, seq 5", 5, 5, 0, 4, -1, 0 },
	{ "seq 4 < 5", 4, 4, 0, 4, -1, 302 },
	{ "cas 3 != 5", 6, 6, 0, 4, 3, 301 },
	{ "cas 5 == 5", 6, 6, 0, 4, 5, 0 },
};

/* Feed q (what: the case, for a failure); the answer must be error ecode
 * (0: a reply). */
static void expect_answer(struct fx *f, struct qb *q, const char *what, int ecode)
{
	struct krpc_msg m;
	char y = feed(f, q->buf, q->b.len, &m);

	if (y != (ecode ? 'e' : 'r') || (y == 'e' && m.ecode != ecode))
		fail_msg("%s: answer %c (code %d), want code %d", what, y ? y : '-',
			 y == 'e' ? m.ecode : 0, ecode);
}

static void test_bep44_errors(void **state)
{
	struct fx *f = *state;
	struct qb q;
	struct krpc_msg m;
	uint8_t tok[DHT_TOKEN_LEN], target[20], sig[64], big[1100];
	const uint8_t v[] = "5:hello";

	dht_bep44_target_mutable(target, f->pk, (const uint8_t *)"salt", 4);
	get_token(f, target, tok);
	memset(big, 'a', sizeof(big));
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bep44_imm); i++) {
		const struct imm_put *c = &bep44_imm[i];

		q_begin(&q);
		q_id(&q);
		if (c->token) {
			bencode_put_cstr(&q.b, "token");
			if (c->token == 1)
				bencode_put_str(&q.b, tok, sizeof(tok));
			else
				bencode_put_cstr(&q.b, "xxxxxxxx");
		}
		if (c->v) {
			bencode_put_cstr(&q.b, "v");
			if (c->v == 1)
				bencode_put_raw(&q.b, v, 7);
			else
				bencode_put_str(&q.b, big, 999); /* "999:" + 999 = 1003 bytes */
		}
		q_end(&q, "put");
		expect_answer(f, &q, c->what, c->ecode);
	}
	/* the immutable item stored: get returns it */
	{
		uint8_t it[20];
		struct qb g;

		dht_bep44_target_immutable(it, v, 7);
		q_begin(&g);
		q_id(&g);
		bencode_put_cstr(&g.b, "target");
		bencode_put_str(&g.b, it, 20);
		q_end(&g, "get");
		assert_int_equal(feed(f, g.buf, g.b.len, &m), 'r');
		assert_int_equal(m.vlen, 7);
		assert_memory_equal(m.v, v, 7);
		assert_null(m.k);
	}
	for (size_t i = 0; i < WEFT_ARRAY_SIZE(bep44_mut); i++) {
		const struct mut_put *c = &bep44_mut[i];

		dht_bep44_sign(sig, f->sk, (const uint8_t *)"salt", 4, c->signed_seq, v, 7);
		if (c->flip)
			sig[10] ^= 1;
		q_begin(&q);
		if (c->cas >= 0) {
			bencode_put_cstr(&q.b, "cas");
			bencode_put_int(&q.b, c->cas);
		}
		q_id(&q);
		bencode_put_cstr(&q.b, "k");
		bencode_put_str(&q.b, f->pk, 32);
		if (c->seq >= 0) {
			bencode_put_cstr(&q.b, "salt");
			bencode_put_str(&q.b, c->saltlen == 4 ? (const uint8_t *)"salt" : big,
					c->saltlen);
			bencode_put_cstr(&q.b, "seq");
			bencode_put_int(&q.b, c->seq);
		}
		bencode_put_cstr(&q.b, "sig");
		bencode_put_str(&q.b, sig, 64);
		bencode_put_cstr(&q.b, "token");
		bencode_put_str(&q.b, tok, sizeof(tok));
		bencode_put_cstr(&q.b, "v");
		bencode_put_raw(&q.b, v, 7);
		q_end(&q, "put");
		expect_answer(f, &q, c->what, c->ecode);
	}
	/* get returns k, seq, sig, v; with seq >= current, v is left out */
	{
		struct qb g;

		q_begin(&g);
		q_id(&g);
		bencode_put_cstr(&g.b, "target");
		bencode_put_str(&g.b, target, 20);
		q_end(&g, "get");
		assert_int_equal(feed(f, g.buf, g.b.len, &m), 'r');
		assert_int_equal(m.seq, 6);
		assert_memory_equal(m.k, f->pk, 32);
		assert_int_equal(
		    dht_bep44_verify(m.k, m.sig, (const uint8_t *)"salt", 4, m.seq, m.v, m.vlen),
		    0);
		q_begin(&g);
		q_id(&g);
		bencode_put_cstr(&g.b, "seq");
		bencode_put_int(&g.b, 6);
		bencode_put_cstr(&g.b, "target");
		bencode_put_str(&g.b, target, 20);
		q_end(&g, "get");
		assert_int_equal(feed(f, g.buf, g.b.len, &m), 'r');
		assert_int_equal(m.seq, 6);
		assert_null(m.v);
	}
}

static void test_storage_full(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.max_items = 1};
	struct qb q;
	struct krpc_msg m;
	uint8_t tok[DHT_TOKEN_LEN], t[20] = {0};

	setup_opts((void **)&f, 0, &lim);
	get_token(f, t, tok);
	for (int i = 0; i < 2; i++) {
		char v[8];

		snprintf(v, sizeof(v), "1:%d", i);
		q_begin(&q);
		q_id(&q);
		bencode_put_cstr(&q.b, "token");
		bencode_put_str(&q.b, tok, sizeof(tok));
		bencode_put_cstr(&q.b, "v");
		bencode_put_raw(&q.b, v, 3);
		q_end(&q, "put");
		if (i == 0)
			assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
		else
			expect_err(f, &q, 202);
	}
	teardown((void **)&f);
}

static void test_read_only_and_budget(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 10, .budget_burst = 20};
	struct qb q;
	struct krpc_msg m;
	int answered = 0;

	setup_opts((void **)&f, DHT_F_READ_ONLY, NULL);
	q_begin(&q);
	q_id(&q);
	q_end(&q, "ping");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 0); /* BEP 43: no answer */
	teardown((void **)&f);

	/* switched at run time (a node that found itself behind a NAT) */
	setup_opts((void **)&f, 0, NULL);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	dht_set_read_only(f->dht, 1);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 0);
	{
		/* its own queries now say ro=1 (top level, BEP 43) */
		struct sockaddr_in node = {.sin_family = AF_INET, .sin_port = htons(6881)};
		struct krpc_msg sent;

		node.sin_addr.s_addr = htonl(0x0a000001);
		assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&node, sizeof(node), f->now),
				 0);
		assert_int_equal(krpc_parse(&sent, f->cap.buf, f->cap.len), 0);
		assert_int_equal(sent.y, 'q');
		assert_int_equal(sent.ro, 1);
	}
	{
		struct dht_stats st;

		dht_get_stats(f->dht, &st);
		assert_int_equal(st.read_only, 1);
		assert_int_equal(st.read_only_switches, 1);
	}
	dht_set_read_only(f->dht, 1); /* no change, not counted */
	dht_set_read_only(f->dht, 0);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	{
		struct dht_stats st;

		dht_get_stats(f->dht, &st);
		assert_int_equal(st.read_only, 0);
		assert_int_equal(st.read_only_switches, 2);
	}
	teardown((void **)&f);

	setup_opts((void **)&f, 0, &lim);
	/* a sender with ro=1 is answered but kept out of the table; one that
	 * was taken in before it went read-only is held back (counted once),
	 * not dropped: the source may be forged (test_ro_query_holds_entry) */
	{
		const char *plain = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:tx1:y1:qe";
		const char *raw = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:tx1:y1:qe";
		struct dht_stats st;

		assert_int_equal(feed(f, (const uint8_t *)plain, strlen(plain), &m), 'r');
		assert_non_null(dht_rt_find(&f->dht->t4, f->dht->id, peer_id));
		assert_int_equal(feed(f, (const uint8_t *)raw, strlen(raw), &m), 'r');
		assert_true(dht_rt_find(&f->dht->t4, f->dht->id, peer_id)->ro_held);
		dht_get_stats(f->dht, &st);
		assert_int_equal(st.ro_forgotten, 1);
		assert_int_equal(feed(f, (const uint8_t *)raw, strlen(raw), &m), 'r');
		assert_true(dht_rt_find(&f->dht->t4, f->dht->id, peer_id)->ro_held);
		dht_get_stats(f->dht, &st);
		assert_int_equal(st.ro_forgotten, 1);
	}
	/* 100 queries in the same millisecond: burst (20, three already used) then drops */
	for (int i = 0; i < 100; i++)
		answered += feed(f, q.buf, q.b.len, &m) == 'r';
	assert_int_equal(answered, 17);
	/* pings prove nothing about their source (it may be forged): the
	 * overrun is dropped and counted, never reported for a ban */
	assert_int_equal(f->cap.abuse, 0);
	{
		struct dht_stats st;

		dht_get_stats(f->dht, &st);
		assert_int_equal(st.dropped_budget, 83);
		assert_int_equal(st.budget_unproven, 83);
		assert_int_equal(st.abuse_reports, 0);
	}
	/* refill at 10/s */
	f->now += 1000;
	answered = 0;
	for (int i = 0; i < 100; i++)
		answered += feed(f, q.buf, q.b.len, &m) == 'r';
	assert_int_equal(answered, 10);
	/* another source is not affected */
	f->from.sin_addr.s_addr = htonl(0x7f000009);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
	teardown((void **)&f);
}

/* Datagrams that do not parse cost budget too: a flood of garbage from one
 * source starves that source's real queries, but is never reported (a
 * forged source can send garbage). */
static void test_malformed_flood_not_reported(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 10, .budget_burst = 20};
	struct dht_stats st;
	struct qb q;
	struct krpc_msg m;

	setup_opts((void **)&f, 0, &lim);
	for (int i = 0; i < 100; i++)
		assert_int_equal(feed(f, (const uint8_t *)"garbage!", 8, &m), 0);
	assert_int_equal(f->cap.abuse, 0);
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.dropped_malformed, 100);
	assert_int_equal(st.dropped_budget, 80);
	assert_int_equal(st.budget_unproven, 80);
	q_begin(&q);
	q_id(&q);
	q_end(&q, "ping");
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 0); /* budget spent */
	f->from.sin_addr.s_addr = htonl(0x7f000009);
	assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r'); /* others unaffected */
	teardown((void **)&f);
}

/* A reply to query q from a node with id (and, when ipc is set, the
 * BEP 42 "ip" field). Returns its length. */
static size_t build_reply(uint8_t *buf, size_t cap, const struct krpc_msg *q,
			  const uint8_t id[20], const uint8_t ipc[6])
{
	struct bencode_buf b;

	bencode_buf_init(&b, buf, cap);
	bencode_put_dict(&b);
	if (ipc) {
		bencode_put_cstr(&b, "ip");
		bencode_put_str(&b, ipc, 6);
	}
	bencode_put_cstr(&b, "r");
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, id, 20);
	bencode_put_end(&b);
	bencode_put_cstr(&b, "t");
	bencode_put_str(&b, q->t, q->tlen);
	bencode_put_cstr(&b, "y");
	bencode_put_cstr(&b, "r");
	bencode_put_end(&b);
	assert_int_equal(b.err, 0);
	return b.len;
}

/* find_node of peer_id's neighbourhood from another node (ro=1, so the
 * asker stays out of the table): how many nodes the answer holds. */
static size_t nodes_told(struct fx *f)
{
	static const char fn[] = "d1:ad2:id20:ZYXWVUTSRQ9876543210"
				 "6:target20:abcdefghij0123456789e"
				 "1:q9:find_node2:roi1e1:t2:tx1:y1:qe";
	struct sockaddr_in keep = f->from;
	struct krpc_msg m;
	size_t n;

	f->from.sin_addr.s_addr = htonl(0x7f000063);
	assert_int_equal(feed(f, (const uint8_t *)fn, sizeof(fn) - 1, &m), 'r');
	n = m.nodes_len / 26;
	if (n)
		assert_memory_equal(m.nodes, peer_id, 20);
	f->from = keep;
	return n;
}

/* Run the core's timers for up to ms (1 s steps) until the last datagram
 * sent is a query to f->from (maintenance's ping): 1 when it is, 0 when
 * none went. */
static int wait_query(struct fx *f, uint64_t ms)
{
	for (uint64_t t = 0; t < ms; t += 1000) {
		int before = f->cap.count;
		struct krpc_msg q;

		f->now += 1000;
		dht_periodic(f->dht, f->now, NULL);
		if (f->cap.count != before && !krpc_parse(&q, f->cap.buf, f->cap.len) &&
		    q.y == 'q' && q.q == KRPC_PING && f->cap.to.sin_port == f->from.sin_port &&
		    f->cap.to.sin_addr.s_addr == f->from.sin_addr.s_addr)
			return 1;
	}
	return 0;
}

/* A query with ro=1 "from" a table entry's address (BEP 43 read-only, or
 * forged: UDP sources can be) does not evict the entry: it is held back
 * from find_node answers and not good until it answers one of our queries
 * again; an entry that really went read-only does
 * not answer, goes bad and is replaced by the next node heard. */
static void test_ro_query_holds_entry(void **state)
{
	const char *ro = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:tx1:y1:qe";
	const char *plain = "d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:tx1:y1:qe";
	struct fx *f;
	struct krpc_msg m, q;
	struct dht_stats st;
	struct dht_node *n;
	uint8_t buf[256];
	size_t len;

	(void)state;
	setup_opts((void **)&f, 0, NULL);
	/* peer_id at f->from answers our ping: a good entry, handed out */
	assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&f->from, sizeof(f->from), f->now),
			 0);
	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	len = build_reply(buf, sizeof(buf), &q, peer_id, NULL);
	assert_int_equal(
	    dht_input(f->dht, buf, len, (struct sockaddr *)&f->from, sizeof(f->from), f->now), 0);
	n = dht_rt_find(&f->dht->t4, f->dht->id, peer_id);
	assert_non_null(n);
	assert_true(dht_rt_node_good(n, f->now));
	assert_int_equal(nodes_told(f), 1);

	/* ro=1 from its id and address: answered, kept, held back */
	assert_int_equal(feed(f, (const uint8_t *)ro, strlen(ro), &m), 'r');
	n = dht_rt_find(&f->dht->t4, f->dht->id, peer_id);
	assert_non_null(n);
	assert_true(n->ro_held);
	assert_false(dht_rt_node_good(n, f->now));
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.ro_forgotten, 1);
	assert_int_equal(st.nodes4, 1);
	assert_int_equal(st.good4, 0);
	assert_int_equal(nodes_told(f), 0);

	/* we ask it again soon (maintenance pings a node that is not good,
	 * 15 s apart); a plain query does not clear the mark, the answer to
	 * our query does */
	assert_int_equal(wait_query(f, 30000), 1);
	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	len = build_reply(buf, sizeof(buf), &q, peer_id, NULL);
	assert_int_equal(feed(f, (const uint8_t *)plain, strlen(plain), &m), 'r');
	assert_true(dht_rt_find(&f->dht->t4, f->dht->id, peer_id)->ro_held);
	assert_int_equal(
	    dht_input(f->dht, buf, len, (struct sockaddr *)&f->from, sizeof(f->from), f->now), 0);
	n = dht_rt_find(&f->dht->t4, f->dht->id, peer_id);
	assert_false(n->ro_held);
	assert_true(dht_rt_node_good(n, f->now));
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.good4, 1);
	assert_int_equal(nodes_told(f), 1);

	/* now it really is read-only: it says so and answers no ping; after
	 * DHT_MAX_FAILS unanswered pings it is bad, and the next node heard
	 * for its full bucket takes its slot */
	assert_int_equal(feed(f, (const uint8_t *)ro, strlen(ro), &m), 'r');
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.ro_forgotten, 2);
	for (int i = 0; i < 600 && !dht_rt_node_bad(n); i++) {
		f->now += 1000;
		dht_periodic(f->dht, f->now, NULL);
		n = dht_rt_find(&f->dht->t4, f->dht->id, peer_id);
		assert_non_null(n);
	}
	assert_true(dht_rt_node_bad(n));
	assert_int_equal(nodes_told(f), 0);
	for (uint32_t i = 1; i <= DHT_K; i++) {
		struct sockaddr_in keep = f->from;
		char other[80];
		uint8_t id[21];

		snprintf((char *)id, sizeof(id), "new-node-%011u", i);
		snprintf(other, sizeof(other), "d1:ad2:id20:%.20se1:q4:ping1:t2:tx1:y1:qe", id);
		f->from.sin_addr.s_addr = htonl(0x7f000100 + i);
		assert_int_equal(feed(f, (const uint8_t *)other, strlen(other), &m), 'r');
		f->from = keep;
	}
	assert_null(dht_rt_find(&f->dht->t4, f->dht->id, peer_id));
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.nodes4, DHT_K);
	teardown((void **)&f);
}

/* An announce_peer flood carrying a valid token proves its source (only a
 * host that got our get_peers answer at that address has the token): the
 * overrun is reported, once per 10 s, and each such query is evidence. The
 * same flood with a bad token is neither. */
static void test_token_proven_overrun(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 10, .budget_burst = 20};
	uint8_t ih[20] = {7}, tok[DHT_TOKEN_LEN];
	struct dht_stats st;
	struct qb q;
	struct krpc_msg m;
	int answered = 0;

	setup_opts((void **)&f, 0, &lim);
	get_token(f, ih, tok);
	assert_int_equal(f->cap.ev[DHT_EV_TOKEN], 0); /* a get proves nothing */
	q_begin(&q);
	q_id(&q);
	bencode_put_cstr(&q.b, "info_hash");
	bencode_put_str(&q.b, ih, 20);
	bencode_put_cstr(&q.b, "port");
	bencode_put_int(&q.b, 6881);
	bencode_put_cstr(&q.b, "token");
	bencode_put_str(&q.b, tok, DHT_TOKEN_LEN);
	q_end(&q, "announce_peer");
	for (int i = 0; i < 50; i++)
		answered += feed(f, q.buf, q.b.len, &m) == 'r';
	assert_int_equal(answered, 19);
	assert_int_equal(f->cap.abuse, 1);
	assert_int_equal(f->cap.ev[DHT_EV_TOKEN], 19);
	assert_memory_equal(&f->cap.ev_from.sin_addr, &f->from.sin_addr, 4);
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.abuse_reports, 1);
	assert_int_equal(st.budget_unproven, 0);
	/* a bad token from another source: no evidence, no report */
	f->from.sin_addr.s_addr = htonl(0x7f000009);
	tok[0] ^= 1;
	memcpy(q.buf + q.b.len - 2 - strlen("1:y1:qe") - strlen("1:t2:tx") -
		   strlen("1:q13:announce_peer") - 1 - DHT_TOKEN_LEN,
	       tok, 1);
	for (int i = 0; i < 50; i++)
		feed(f, q.buf, q.b.len, &m);
	assert_int_equal(f->cap.abuse, 1);
	assert_int_equal(f->cap.ev[DHT_EV_TOKEN], 19);
	teardown((void **)&f);
}

/* A forged flood from a peer's address (pings: no token) empties that
 * address's budget; the peer's own genuine announces arriving meanwhile
 * carry valid tokens and are dropped, but are not reported for a ban: the
 * report needs the proven queries alone to overrun a budget of their own.
 * Found by test_dht_spoof, where B's record put landed in A's budget right
 * after a forged flood from B's address and got B banned. */
static void test_forged_flood_no_proven_ban(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 10, .budget_burst = 20};
	uint8_t ih[20] = {7}, tok[DHT_TOKEN_LEN];
	struct dht_stats st;
	struct qb ping, ann;
	struct krpc_msg m;
	int answered = 0;

	setup_opts((void **)&f, 0, &lim);
	get_token(f, ih, tok);
	q_begin(&ping);
	q_id(&ping);
	q_end(&ping, "ping");
	q_begin(&ann);
	q_id(&ann);
	bencode_put_cstr(&ann.b, "info_hash");
	bencode_put_str(&ann.b, ih, 20);
	bencode_put_cstr(&ann.b, "port");
	bencode_put_int(&ann.b, 6881);
	bencode_put_cstr(&ann.b, "token");
	bencode_put_str(&ann.b, tok, DHT_TOKEN_LEN);
	q_end(&ann, "announce_peer");
	for (int i = 0; i < 100; i++)
		answered += feed(f, ping.buf, ping.b.len, &m) == 'r';
	assert_int_equal(answered, 19); /* the flood took the whole budget */
	/* fewer genuine announces than a burst: dropped, never reported */
	for (int i = 0; i < 20; i++)
		assert_int_equal(feed(f, ann.buf, ann.b.len, &m), 0);
	assert_int_equal(f->cap.abuse, 0);
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.abuse_reports, 0);
	assert_int_equal(st.budget_unproven, 81);
	/* proven queries that keep coming overrun their own budget: reported */
	assert_int_equal(feed(f, ann.buf, ann.b.len, &m), 0);
	assert_int_equal(f->cap.abuse, 1);
	teardown((void **)&f);
}

/* A reply with our transaction id from the address we asked is evidence;
 * the same reply from another address, or with another id, is not. */
static void test_reply_evidence(void **state)
{
	struct fx *f;
	struct sockaddr_in node = {.sin_family = AF_INET, .sin_port = htons(6881)};
	struct sockaddr_in other = node;
	struct krpc_msg q;
	uint8_t buf[256], id[20] = {0x42};
	size_t len;

	setup_opts((void **)&f, 0, NULL);
	node.sin_addr.s_addr = htonl(0x0a000001);
	other.sin_addr.s_addr = htonl(0x0a000002);
	assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&node, sizeof(node), f->now), 0);
	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	len = build_reply(buf, sizeof(buf), &q, id, NULL);
	/* forged: right transaction id, wrong source address */
	dht_input(f->dht, buf, len, (struct sockaddr *)&other, sizeof(other), f->now);
	assert_int_equal(f->cap.ev[DHT_EV_REPLY], 0);
	/* wrong transaction id from the right address */
	buf[len - 2 - strlen("1:y1:r") - 1] ^= 0xff;
	dht_input(f->dht, buf, len, (struct sockaddr *)&node, sizeof(node), f->now);
	assert_int_equal(f->cap.ev[DHT_EV_REPLY], 0);
	buf[len - 2 - strlen("1:y1:r") - 1] ^= 0xff;
	assert_int_equal(
	    dht_input(f->dht, buf, len, (struct sockaddr *)&node, sizeof(node), f->now), 0);
	assert_int_equal(f->cap.ev[DHT_EV_REPLY], 1);
	assert_memory_equal(&f->cap.ev_from.sin_addr, &node.sin_addr, 4);
	teardown((void **)&f);
}

/* The budget table is bounded (a keyed hash, 8-slot probes): a flood of
 * distinct sources never grows it, and a busy abuser stays limited while
 * fewer sources than the table holds come and go. */
static void test_budget_many_sources(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 1, .budget_burst = 5, .budget_sources = 1000};
	struct dht_stats st;
	struct qb q;
	struct krpc_msg m;
	int abuser_answered = 0;

	setup_opts((void **)&f, 0, &lim);
	assert_int_equal(f->dht->lim.budget_sources, 1024); /* rounded to a power of two */
	q_begin(&q);
	q_id(&q);
	q_end(&q, "ping");
	for (uint32_t i = 0; i < 100000; i++) {
		f->from.sin_addr.s_addr = htonl(0x0b000000 + i);
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r'); /* new source: full bucket */
	}
	/* the abuser, one query per ms (refill 1/s), interleaved with 300
	 * distinct others per round: its entry is the most recent of its
	 * probe window, so it is not the one evicted */
	for (int r = 0; r < 50; r++) {
		f->now++;
		f->from.sin_addr.s_addr = htonl(0x0c000001);
		abuser_answered += feed(f, q.buf, q.b.len, &m) == 'r';
		for (uint32_t i = 0; i < 300; i++) {
			f->from.sin_addr.s_addr = htonl(0x0d000000 + (uint32_t)r * 300 + i);
			feed(f, q.buf, q.b.len, &m);
		}
	}
	assert_int_equal(abuser_answered, 5); /* its burst, then nothing */
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.dropped_budget, 45);
	assert_int_equal(st.budget_unproven, 45);
	teardown((void **)&f);
}

/* Answer the last query the node sent, from `from`, with id and ip field. */
static void answer_last(struct fx *f, const struct sockaddr_in *from, const uint8_t id[20],
			const uint8_t ipc[6])
{
	struct krpc_msg q;
	uint8_t buf[256];
	size_t len;

	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	assert_int_equal(q.y, 'q');
	len = build_reply(buf, sizeof(buf), &q, id, ipc);
	assert_int_equal(
	    dht_input(f->dht, buf, len, (const struct sockaddr *)from, sizeof(*from), f->now), 0);
}

static void test_bep42(void **state)
{
	struct fx *f;
	const uint8_t ext[6] = {8, 8, 8, 8, 0x1a, 0xe1}; /* what the peers see */
	uint8_t old[20], good_id[20], tail[20] = {0};

	setup_opts((void **)&f, DHT_F_DERIVE_ID | DHT_F_ENFORCE_BEP42, NULL);
	memcpy(old, dht_id(f->dht), 20);
	for (int i = 0; i < 3; i++) {
		struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(6881)};
		uint8_t ip[4] = {1, 2, 3, (uint8_t)(4 + i)}, id[20];

		memcpy(&from.sin_addr, ip, 4);
		assert_int_equal(
		    dht_add_node(f->dht, (struct sockaddr *)&from, sizeof(from), f->now), 0);
		memset(id, 0x11 * (i + 1), sizeof(id)); /* not BEP 42 valid for 1.2.3.x */
		answer_last(f, &from, id, ext);
		/* enforcement: an id that does not match the IP stays out of the table */
		assert_null(dht_rt_find(&f->dht->t4, f->dht->id, id));
		if (i < 2) /* quorum of 3 distinct reporters */
			assert_memory_equal(dht_id(f->dht), old, 20);
	}
	assert_memory_not_equal(dht_id(f->dht), old, 20);
	assert_true(dht_bep42_check(dht_id(f->dht), ext, 4));
	/* a node whose id matches its IP is accepted */
	{
		struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(6881)};
		uint8_t ip[4] = {1, 2, 3, 40};

		memcpy(&from.sin_addr, ip, 4);
		dht_bep42_make_id(good_id, ip, 4, 3, tail);
		assert_int_equal(
		    dht_add_node(f->dht, (struct sockaddr *)&from, sizeof(from), f->now), 0);
		answer_last(f, &from, good_id, ext);
		assert_non_null(dht_rt_find(&f->dht->t4, f->dht->id, good_id));
	}
	teardown((void **)&f);
}

/* The transaction id of the query last sent; its low half is the slot. */
static uint32_t last_tid(struct fx *f)
{
	struct krpc_msg q;

	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	assert_int_equal(q.y, 'q');
	assert_int_equal(q.tlen, 4);
	return (uint32_t)q.t[0] << 24 | (uint32_t)q.t[1] << 16 | (uint32_t)q.t[2] << 8 | q.t[3];
}

static void ping_addr(struct sockaddr_in *a, uint32_t i)
{
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(0x0a000000 + i);
	a->sin_port = htons(6881);
}

static void done_count(void *arg, const struct dht_result *r)
{
	(void)r;
	(*(int *)arg)++;
}

/* Transaction slots are taken lowest-first, and once the queries are over
 * the slots above the first DHT_PEND_KEEP are handed back: a later query
 * takes slot 0 again, a late answer to a query of a slot handed back is
 * refused, and the bound (max_pending) is the same. */
static void test_pending_lowest_first(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.max_pending = 200};
	struct sockaddr_in a;
	uint8_t late[256], id[20] = {7};
	size_t late_len = 0;
	struct dht_stats st;

	(void)state;
	setup_opts((void **)&f, 0, &lim);
	for (uint32_t i = 0; i < 200; i++) {
		ping_addr(&a, i);
		assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&a, sizeof(a), f->now), 0);
		assert_int_equal(last_tid(f) & 0xffff, i);
		if (i == 150) {
			struct krpc_msg q;

			assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
			late_len = build_reply(late, sizeof(late), &q, id, NULL);
		}
	}
	ping_addr(&a, 200);
	assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&a, sizeof(a), f->now), -ENOSPC);
	assert_int_equal(f->dht->pend_touched, 200);
	/* every query is retried once, then times out; maintain runs at 5 s */
	f->now = 3001;
	dht_periodic(f->dht, f->now, NULL);
	f->now = 5002;
	dht_periodic(f->dht, f->now, NULL);
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.timeouts, 200);
	assert_int_equal(f->dht->pend_touched, DHT_PEND_KEEP);
	ping_addr(&a, 150);
	assert_int_equal(dht_input(f->dht, late, late_len, (struct sockaddr *)&a, sizeof(a), f->now),
			 -EINVAL);
	for (uint32_t i = 0; i < 3; i++) {
		ping_addr(&a, 300 + i);
		assert_int_equal(dht_add_node(f->dht, (struct sockaddr *)&a, sizeof(a), f->now), 0);
		assert_int_equal(last_tid(f) & 0xffff, i);
	}
	teardown((void **)&f);
}

/* Lookup slots: lowest-first too, handed back above DHT_LK_KEEP once the
 * lookups ended; a lookup started after that works and its answer
 * completes it. */
static void test_lookup_slots_trimmed(void **state)
{
	struct fx *f;
	struct sockaddr_in a;
	struct dht_stats st;
	struct krpc_msg q;
	uint8_t buf[256], id[20] = {5};
	size_t len;
	int done = 0;

	(void)state;
	setup_opts((void **)&f, 0, NULL);
	for (uint32_t i = 0; i < 10; i++) {
		ping_addr(&a, i);
		assert_int_equal(
		    dht_ping(f->dht, (struct sockaddr *)&a, sizeof(a), f->now, done_count, &done), 0);
	}
	assert_int_equal(f->dht->lk_touched, 10);
	f->now = 3001;
	dht_periodic(f->dht, f->now, NULL);
	f->now = 5002;
	dht_periodic(f->dht, f->now, NULL);
	assert_int_equal(done, 10);
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.lookups, 0);
	assert_int_equal(f->dht->lk_touched, DHT_LK_KEEP);
	ping_addr(&a, 42);
	assert_int_equal(
	    dht_ping(f->dht, (struct sockaddr *)&a, sizeof(a), f->now, done_count, &done), 0);
	assert_int_equal(krpc_parse(&q, f->cap.buf, f->cap.len), 0);
	len = build_reply(buf, sizeof(buf), &q, id, NULL);
	assert_int_equal(dht_input(f->dht, buf, len, (struct sockaddr *)&a, sizeof(a), f->now), 0);
	assert_int_equal(done, 11);
	teardown((void **)&f);
}

/* The budget table starts small and doubles as sources arrive: no source
 * loses its bucket on the way (each spent its burst and stays limited).
 * 1000 sources under a 65,536 cap: the table only doubles when a window
 * of 8 is full, so it never reaches the cap, where an eviction could
 * happen (a full window at load 1000/65536 has probability < 1e-14). */
static void test_budget_grows(void **state)
{
	struct fx *f;
	struct dht_limits lim = {.budget_rate = 1, .budget_burst = 2, .budget_sources = 65536};
	struct dht_stats st;
	struct qb q;
	struct krpc_msg m;

	(void)state;
	setup_opts((void **)&f, 0, &lim);
	assert_int_equal(f->dht->budget_mask + 1, DHT_BUDGET_START);
	q_begin(&q);
	q_id(&q);
	q_end(&q, "ping");
	for (uint32_t i = 0; i < 1000; i++) {
		f->from.sin_addr.s_addr = htonl(0x0b000000 + i);
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 'r');
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 0);
	}
	for (uint32_t i = 0; i < 1000; i++) {
		f->from.sin_addr.s_addr = htonl(0x0b000000 + i);
		assert_int_equal(feed(f, q.buf, q.b.len, &m), 0);
	}
	dht_get_stats(f->dht, &st);
	assert_int_equal(st.dropped_budget, 2000);
	assert_true(f->dht->budget_mask + 1 >= 1024);
	assert_true(f->dht->budget_mask + 1 <= 16384);
	teardown((void **)&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_bep5_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_good_queries, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bep44_errors, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wk_claims, setup, teardown),
	    cmocka_unit_test(test_storage_full),
	    cmocka_unit_test(test_read_only_and_budget),
	    cmocka_unit_test(test_malformed_flood_not_reported),
	    cmocka_unit_test(test_token_proven_overrun),
	    cmocka_unit_test(test_forged_flood_no_proven_ban),
	    cmocka_unit_test(test_reply_evidence),
	    cmocka_unit_test(test_ro_query_holds_entry),
	    cmocka_unit_test(test_budget_many_sources),
	    cmocka_unit_test(test_bep42),
	    cmocka_unit_test(test_pending_lowest_first),
	    cmocka_unit_test(test_lookup_slots_trimmed),
	    cmocka_unit_test(test_budget_grows),
	};

	return cmocka_run_group_tests_name("dht_krpc", tests, NULL, NULL);
}
