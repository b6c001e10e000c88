// SPDX-License-Identifier: MIT
/*
 * KRPC server side, packet by packet: every error path (201-207, 301, 302)
 * with a crafted query, the answers to good queries, tolerance of unknown
 * keys, read-only mode (BEP 43) and the per-source budget. No sockets: the
 * core's send callback captures the reply.
 */
#include "dht_krpc_fx.h"

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
	};

	return cmocka_run_group_tests_name("dht_krpc", tests, NULL, NULL);
}
