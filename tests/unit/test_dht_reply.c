// SPDX-License-Identifier: MIT
/*
 * KRPC replies and what they prove: read-only queries that hold a table
 * entry back, the token and reply evidence behind bans (never a forged
 * flood), BEP 42 in replies, the per-source budget and its growth, and
 * lookup slots (pending queries lowest first, trimmed after a burst). The
 * fixture (dht_krpc_fx.h) captures what the core sends; no sockets.
 */
#include "dht_krpc_fx.h"

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

	return cmocka_run_group_tests_name("dht_reply", tests, NULL, NULL);
}
