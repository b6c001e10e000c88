// SPDX-License-Identifier: MIT
/*
 * The hole-punching core (include/weft/path.h): message and probe vectors
 * (docs/PROTOCOL.md), every truncation and corruption refused, and two
 * state machines wired to each other through a tiny in-test network with
 * NAT filtering: the synchronised exchange validates a path on both sides,
 * a filtered pair fails after the documented schedule, and the bounds
 * (probes per attempt, one ack per probe, no ack larger than its probe)
 * hold. Virtual time only.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "weft/conn.h"
#include "weft/path.h"

static const uint8_t connect_vec[] = {
	0x01, 0x1b, 0x01, 0x02, 0x00, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09,
	0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x01, 0x04, 0xc6, 0x33, 0x64, 0x07, 0x4e, 0x20,
};

static void test_vectors(void **state)
{
	struct path_offer o = { .attempt = 1, .nat = 2, .route = 0, .ncand = 1 }, q;
	struct path_probe pr = { 0 }, pq;
	uint8_t buf[PATH_MSG_MAX], pb[PATH_PROBE_LEN], idx;
	enum path_msg_type t;
	size_t used;
	int n;

	(void)state;
	for (int i = 0; i < PATH_TOKEN_LEN; i++)
		o.token[i] = (uint8_t)i;
	o.cand[0].family = AF_INET;
	o.cand[0].port = 20000;
	memcpy(o.cand[0].addr, (uint8_t[]){ 198, 51, 100, 7 }, 4);
	n = path_msg_encode(buf, sizeof(buf), PATH_MSG_CONNECT, &o, 0);
	assert_int_equal(n, sizeof(connect_vec));
	assert_memory_equal(buf, connect_vec, sizeof(connect_vec));
	assert_int_equal(path_msg_parse(buf, (size_t)n, &used, &t, &q, &idx), 0);
	assert_int_equal(used, (size_t)n);
	assert_int_equal(t, PATH_MSG_CONNECT);
	assert_int_equal(q.ncand, 1);
	assert_int_equal(q.cand[0].port, 20000);
	/* Every prefix asks for more; never a message. */
	for (size_t l = 0; l < sizeof(connect_vec); l++)
		assert_int_equal(path_msg_parse(connect_vec, l, &used, &t, &q, &idx), -EAGAIN);
	/* Corruptions that must be refused. */
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[0] = 9;
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[2] = 0; /* attempt 0 */
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[3] = 4; /* class */
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[21] = 9; /* more candidates than the body holds */
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[22] = 5; /* family */
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	memcpy(buf, connect_vec, sizeof(connect_vec));
	buf[27] = buf[28] = 0; /* port 0 */
	assert_int_equal(path_msg_parse(buf, sizeof(connect_vec), &used, &t, &q, &idx), -EBADMSG);
	/* Lengths refused at the header (before waiting for the body). */
	assert_int_equal(path_msg_parse((uint8_t[]){ 3, 2 }, 2, &used, &t, &q, &idx), -EBADMSG);
	assert_int_equal(path_msg_parse((uint8_t[]){ 4, 1 }, 2, &used, &t, &q, &idx), -EBADMSG);
	assert_int_equal(path_msg_parse((uint8_t[]){ 1, 250 }, 2, &used, &t, &q, &idx), -EBADMSG);
	assert_int_equal(path_msg_parse((uint8_t[]){ 4, 2, 1, 8 }, 4, &used, &t, &q, &idx),
			 -EBADMSG);
	assert_int_equal(path_msg_parse((uint8_t[]){ 4, 2, 1, 7 }, 4, &used, &t, &q, &idx), 0);
	assert_int_equal(idx, 7);

	/* Probe vector. */
	for (int i = 0; i < 12; i++)
		pr.nonce[i] = (uint8_t)(0xa0 + i);
	pr.route = 1;
	pr.attempt = 2;
	memset(pr.token, 0x55, sizeof(pr.token));
	assert_int_equal(path_probe_encode(pb, &pr), PATH_PROBE_LEN);
	assert_memory_equal(pb, ((uint8_t[]){ 0x0e, 0x01, 0x00, 0x14, 0x21, 0x12, 0xa4, 0x42 }), 8);
	assert_int_equal(pb[20], 1);
	assert_int_equal(pb[21], 2);
	assert_true(path_probe_is(pb, sizeof(pb)));
	assert_int_equal(path_probe_parse(pb, sizeof(pb), &pq), 0);
	assert_false(pq.ack);
	assert_false(path_probe_is(pb, sizeof(pb) - 1));
	pb[7] ^= 1; /* no cookie: not ours (and not STUN) */
	assert_false(path_probe_is(pb, sizeof(pb)));
	pb[7] ^= 1;
	pb[22] = 1;
	assert_int_equal(path_probe_parse(pb, sizeof(pb), &pq), -EBADMSG);
	/* A STUN Binding request is not a probe. */
	pb[22] = 0;
	pb[0] = 0x00;
	pb[1] = 0x01;
	assert_false(path_probe_is(pb, sizeof(pb)));
}

/* ----------------------------------------------- two ends, one network */

struct end;
struct net {
	struct end *e[2];
	int filter_b; /* B's NAT drops what B did not send to first */
	int b_sent;   /* B sent to A's candidate: A's packets now pass */
	/* Linux masquerade's trap (docs/CONNECTIVITY.md): a probe of A that
	 * reaches B's NAT before B sent anything leaves an entry that makes
	 * B's NAT remap B's port; from then on nothing passes either way. */
	int trap_b, b_poisoned;
	/* The peer's NAT is ttl_reach hops away: a datagram with a TTL in
	 * 1..ttl_reach-1 passes its sender's own NAT (hop 1) and dies before
	 * the peer's. 0: every datagram arrives. */
	unsigned int ttl_reach;
	int direct[2];
	unsigned int probes[2], acks[2];
	unsigned int low[2]; /* probes sent with a TTL, per side */
	unsigned int low_late[2]; /* ...after a full-TTL probe of the same attempt */
	int full_sent[2];
	uint64_t now;
	/* IPv6 datagrams held to the end of the step (after the IPv4 ones
	 * sent in the same step): an IPv4 ack then validates first. */
	int v6_late;
	unsigned int nlate;
	struct {
		int from;
		uint8_t buf[PATH_PROBE_LEN];
	} late[64];
};

struct end {
	struct net *n;
	int i;
	struct path_conn pc;
	struct io_addr me;
	struct io_addr me6; /* a global IPv6 address too (family 0: none) */
	uint8_t msgs[8][PATH_MSG_MAX];
	size_t mlen[8];
	unsigned int nmsg;
	struct path_budget *budget; /* per-peer budget (NULL: none) */
	uint8_t peer_key[32];
};

static int e_allow(void *arg)
{
	struct end *e = arg;

	return path_budget_take(e->budget, e->peer_key, e->n->now);
}

static struct path_io IO[2];

static int e_msg(void *arg, const uint8_t *m, size_t len)
{
	struct end *e = arg;

	assert_true(e->nmsg < 8);
	memcpy(e->msgs[e->nmsg], m, len);
	e->mlen[e->nmsg++] = len;
	return 0;
}

static int e_udp(void *arg, const struct io_addr *to, const uint8_t *buf, size_t len,
		 uint8_t ttl)
{
	struct end *e = arg, *o = e->n->e[!e->i];
	struct net *n = e->n;
	struct path_probe pr;

	assert_int_equal(len, PATH_PROBE_LEN);
	assert_int_equal(path_probe_parse(buf, len, &pr), 0);
	if (pr.ack) {
		n->acks[e->i]++;
		assert_int_equal(ttl, 0); /* acks go all the way */
	} else {
		n->probes[e->i]++;
		if (ttl) {
			n->low[e->i]++;
			n->low_late[e->i] += n->full_sent[e->i];
		} else {
			n->full_sent[e->i] = 1;
		}
	}
	if (o->me6.family && io_addr_equal(to, &o->me6)) {
		/* IPv6 between the two: no NAT, no trap, no filter here. */
		if (n->v6_late) {
			assert_true(n->nlate < 64);
			n->late[n->nlate].from = e->i;
			memcpy(n->late[n->nlate++].buf, buf, PATH_PROBE_LEN);
		} else if (path_probe_mine(&o->pc, &pr)) {
			path_on_probe(&o->pc, &pr, &e->me6, e->n->now, &IO[o->i]);
		}
		return 0;
	}
	if (!io_addr_equal(to, &o->me))
		return 0; /* nobody there */
	if (e->i == 1)
		n->b_sent = 1; /* through B's own NAT, whatever its TTL */
	if (ttl && ttl < n->ttl_reach)
		return 0; /* died between the NATs */
	if (o->i == 1 && n->trap_b && !n->b_sent)
		n->b_poisoned = 1;
	if (n->b_poisoned)
		return 0;
	if (o->i == 1 && n->filter_b && !n->b_sent)
		return 0; /* B's NAT filters */
	if (path_probe_mine(&o->pc, &pr))
		path_on_probe(&o->pc, &pr, &e->me, e->n->now, &IO[o->i]);
	return 0;
}

static unsigned int e_cands(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat)
{
	struct end *e = arg;

	(void)max;
	*nat = 2;
	if (e->me6.family) { /* global IPv6 first, as conn_node_path_cands */
		out[0] = e->me6;
		out[1] = e->me;
		return 2;
	}
	out[0] = e->me;
	return 1;
}

static void e_use(void *arg, const struct io_addr *d)
{
	struct end *e = arg;

	e->n->direct[e->i] = d != NULL;
}

static void deliver(struct end *from, struct end *to)
{
	for (unsigned int k = 0; k < from->nmsg; k++) {
		struct path_offer o;
		enum path_msg_type t;
		uint8_t idx;
		size_t used;

		assert_int_equal(path_msg_parse(from->msgs[k], from->mlen[k], &used, &t, &o, &idx),
				 0);
		path_on_msg(&to->pc, t, &o, idx, from->n->now, &IO[to->i]);
	}
	from->nmsg = 0;
}

static void run(struct net *n, uint64_t until_ms)
{
	for (; n->now < until_ms * 1000000ULL; n->now += 10000000ULL) {
		for (int i = 0; i < 2; i++)
			path_tick(&n->e[i]->pc, n->now, &IO[i]);
		deliver(n->e[0], n->e[1]);
		deliver(n->e[1], n->e[0]);
		/* The held IPv6 datagrams (an ack answering one is held too,
		 * to the end of this loop). */
		for (unsigned int k = 0; k < n->nlate; k++) {
			struct end *from = n->e[n->late[k].from], *to = n->e[!n->late[k].from];
			struct path_probe pr;

			assert_int_equal(path_probe_parse(n->late[k].buf, PATH_PROBE_LEN, &pr), 0);
			if (path_probe_mine(&to->pc, &pr))
				path_on_probe(&to->pc, &pr, &from->me6, n->now, &IO[to->i]);
		}
		n->nlate = 0;
		deliver(n->e[0], n->e[1]);
		deliver(n->e[1], n->e[0]);
	}
}

static void setup_net(struct net *n, struct end *a, struct end *b)
{
	memset(n, 0, sizeof(*n));
	memset(a, 0, sizeof(*a));
	memset(b, 0, sizeof(*b));
	n->e[0] = a;
	n->e[1] = b;
	a->n = b->n = n;
	b->i = 1;
	a->me.family = b->me.family = AF_INET;
	a->me.port = 20000;
	b->me.port = 20001;
	memcpy(a->me.addr, (uint8_t[]){ 198, 51, 100, 1 }, 4);
	memcpy(b->me.addr, (uint8_t[]){ 198, 51, 100, 2 }, 4);
	for (int i = 0; i < 2; i++) {
		IO[i] = (struct path_io){ .arg = n->e[i], .send_msg = e_msg, .send_udp = e_udp,
					  .cands = e_cands, .use = e_use };
		path_init(&n->e[i]->pc, i == 0, (uint8_t)i, NULL);
	}
}

static void test_punch_ok(void **state)
{
	struct net n;
	struct end a, b;

	(void)state;
	setup_net(&n, &a, &b);
	n.filter_b = 1; /* APDF at B: A's first probes are dropped, B's open it */
	n.now = 1;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 3000);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	assert_int_equal(b.pc.state, PATH_DIRECT);
	assert_true(n.direct[0] && n.direct[1]);
	assert_int_equal(a.pc.direct_attempt, 1);
	assert_true(io_addr_equal(&a.pc.direct, &b.me));
	assert_true(io_addr_equal(&b.pc.direct, &a.me));
	/* At most one ack per valid probe received. */
	assert_true(n.acks[0] <= b.pc.probes_tx && n.acks[1] <= a.pc.probes_tx);
	assert_int_equal(a.pc.acks_tx, a.pc.probes_rx);
	/* Fallback puts it back on the relay. */
	path_fallback(&a.pc, &IO[0]);
	assert_false(n.direct[0]);
	assert_int_equal(a.pc.fallbacks, 1);
	/* Both classes endpoint-independent and attempts left: the dialler
	 * punches again at once (attempt 2); the holder, still direct, falls
	 * back on the newer CONNECT and answers; both go direct again. */
	assert_int_equal(a.pc.state, PATH_WAIT_RETRY);
	assert_int_equal(a.pc.repunches, 1);
	n.b_sent = 0;
	run(&n, n.now / 1000000 + 3000);
	assert_int_equal(a.pc.attempt, 2);
	assert_int_equal(b.pc.fallbacks, 1);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	assert_int_equal(b.pc.state, PATH_DIRECT);
	assert_int_equal(a.pc.direct_attempt, 2);
	assert_true(n.direct[0] && n.direct[1]);
	/* Once more: attempt 3, the last of the connection. */
	path_fallback(&a.pc, &IO[0]);
	run(&n, n.now / 1000000 + 3000);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	assert_int_equal(a.pc.attempt, 3);
	/* No attempts left: relayed for good, no CONNECT. */
	path_fallback(&a.pc, &IO[0]);
	assert_int_equal(a.pc.state, PATH_IDLE);
	assert_int_equal(a.pc.repunches, 2);
	run(&n, n.now / 1000000 + 3000);
	assert_int_equal(a.pc.attempt, 3);
	assert_false(n.direct[0]);
}

/* No re-punch when a class rules a direct path out (an address-dependent
 * mapping on a NATed side), or when the peer's budget is spent. */
static unsigned int e_cands_adm(void *arg, struct io_addr *out, unsigned int max, uint8_t *nat)
{
	unsigned int n = e_cands(arg, out, max, nat);

	*nat = CONN_NAT_ADM;
	return n;
}

static void test_repunch_bounds(void **state)
{
	struct net n;
	struct end a, b;
	struct path_budget *ba;

	(void)state;
	/* B address-dependent, A endpoint-independent: direct here only
	 * because this test's network lets it; no second try. */
	setup_net(&n, &a, &b);
	IO[1].cands = e_cands_adm;
	n.now = 1;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 3000);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	path_fallback(&a.pc, &IO[0]);
	assert_int_equal(a.pc.state, PATH_IDLE);
	assert_int_equal(a.pc.repunches, 0);
	run(&n, 6000);
	assert_int_equal(a.pc.attempt, 1);
	IO[1].cands = e_cands;

	/* Budget of 1 per window at A: the re-punch is skipped (limited) and,
	 * the schedule spent on it, the connection ends failed. */
	assert_int_equal(path_budget_new(&ba, 1, 600, 0), 0);
	setup_net(&n, &a, &b);
	a.budget = ba;
	memset(a.peer_key, 0xbb, 32);
	IO[0].allow = e_allow;
	n.now = 1;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 3000);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	path_fallback(&a.pc, &IO[0]);
	run(&n, 16000); /* the third attempt's time is +15 s from the first */
	assert_int_equal(a.pc.limited, 2); /* attempts 2 and 3 not started */
	assert_int_equal(a.pc.attempts_started, 1);
	assert_int_equal(a.pc.state, PATH_FAILED);
	IO[0].allow = NULL;
	path_budget_free(ba);
}

static int drop_udp(void *arg, const struct io_addr *to, const uint8_t *buf, size_t len,
		    uint8_t ttl)
{
	struct end *e = arg;

	(void)to;
	(void)buf;
	(void)len;
	(void)ttl;
	e->n->probes[e->i]++;
	return 0;
}

static void test_punch_fails(void **state)
{
	struct net n;
	struct end a, b;

	(void)state;
	setup_net(&n, &a, &b);
	IO[0].send_udp = IO[1].send_udp = drop_udp; /* nothing gets through */
	n.now = 1;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 4000);
	assert_int_equal(a.pc.state, PATH_WAIT_RETRY);
	assert_int_equal(a.pc.attempt, 1);
	/* 15 rounds of one candidate per attempt and side. */
	assert_int_equal(n.probes[0], 15);
	assert_int_equal(n.probes[1], 15);
	run(&n, 5020);
	assert_int_equal(a.pc.attempt, 2); /* second attempt at +5 s */
	run(&n, 14990);
	assert_int_equal(a.pc.attempt, 2);
	run(&n, 20000);
	assert_int_equal(a.pc.attempt, 3); /* third at +15 s */
	assert_int_equal(a.pc.state, PATH_FAILED);
	assert_int_equal(b.pc.state, PATH_FAILED); /* told by FAILED */
	assert_int_equal(b.pc.peer.nat, 2);
	assert_int_equal(n.probes[0], 45);
	assert_int_equal(n.probes[1], 45);
	assert_false(n.direct[0] || n.direct[1]);
	/* A fourth CONNECT is refused. */
	struct path_offer o = { .attempt = 4 };
	assert_int_equal(path_on_msg(&b.pc, PATH_MSG_CONNECT, &o, 0, n.now, &IO[1]), -EPROTO);
}

/* The per-peer budget alone: max per window, independent keys, a new
 * window, and the bounded table (the oldest window's slot is reused). */
/* Low-TTL first probes (PATH_DEF_PROBE_TTL): behind two NATs with the
 * Linux trap at B, where the holder starts a step after the dialler, the
 * dialler's first round dies between the NATs and the pair goes direct;
 * with every round at full TTL the dialler's first probe springs the trap
 * and the attempt fails. */
static void test_low_ttl(void **state)
{
	struct path_limits off = { .probe_ttl = PATH_PROBE_TTL_OFF };
	struct net n;
	struct end a, b;

	(void)state;
	setup_net(&n, &a, &b);
	n.filter_b = n.trap_b = 1;
	n.ttl_reach = 3; /* own NAT, a provider's router, the peer's NAT */
	n.now = 1;
	assert_int_equal(a.pc.lim.probe_ttl, PATH_DEF_PROBE_TTL);
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 3000);
	assert_int_equal(a.pc.state, PATH_DIRECT);
	assert_int_equal(b.pc.state, PATH_DIRECT);
	assert_false(n.b_poisoned);
	/* One candidate: the first round (one probe per side) went low, and
	 * only the first. */
	assert_int_equal(n.low[0], 1);
	assert_int_equal(n.low[1], 1);
	assert_int_equal(n.low_late[0] + n.low_late[1], 0);
	assert_int_equal(a.pc.probes_low_ttl, 1);
	assert_true(a.pc.probes_tx > 1);

	/* The same without: poisoned, attempt 1 fails. */
	setup_net(&n, &a, &b);
	path_init(&a.pc, 1, 0, &off);
	path_init(&b.pc, 0, 1, &off);
	n.filter_b = n.trap_b = 1;
	n.ttl_reach = 3;
	n.now = 1;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 3000);
	assert_true(n.b_poisoned);
	assert_int_equal(a.pc.state, PATH_WAIT_RETRY);
	assert_int_equal(n.low[0] + n.low[1], 0);
	assert_int_equal(a.pc.probes_low_ttl, 0);
}

/* IPv6 tried first: both ends have a global IPv6 address and a
 * port-preserving NAT. When the IPv6 ack validates first, both go direct
 * on IPv6; when the IPv4 one does (the IPv6 datagrams held to the end of
 * the step), both go direct on IPv4, then move to IPv6 as its acks and
 * VALIDATED arrive (upgrades), and never back to IPv4. */
static void dual_stack(struct net *n, struct end *a, struct end *b, int v6_late)
{
	setup_net(n, a, b);
	a->me6.family = b->me6.family = AF_INET6;
	a->me6.port = 4433;
	b->me6.port = 4433;
	memcpy(a->me6.addr, (uint8_t[16]){ 0x20, 0x01, 0x0d, 0xb8, 0, 8, [15] = 2 }, 16);
	memcpy(b->me6.addr, (uint8_t[16]){ 0x20, 0x01, 0x0d, 0xb8, 0, 9, [15] = 2 }, 16);
	n->filter_b = 1;
	n->v6_late = v6_late;
	n->now = 1;
	assert_int_equal(path_start(&a->pc, n->now, &IO[0]), 0);
	run(n, 3000);
	assert_int_equal(a->pc.state, PATH_DIRECT);
	assert_int_equal(b->pc.state, PATH_DIRECT);
	assert_true(io_addr_equal(&a->pc.direct, &b->me6));
	assert_true(io_addr_equal(&b->pc.direct, &a->me6));
	assert_int_equal(a->pc.direct_attempt, 1);
	assert_int_equal(a->pc.fallbacks + b->pc.fallbacks, 0);
}

static void test_ipv6_first(void **state)
{
	struct net n;
	struct end a, b;
	uint64_t sw;

	(void)state;
	dual_stack(&n, &a, &b, 0);
	assert_int_equal(a.pc.upgrades + b.pc.upgrades, 0);
	assert_int_equal(a.pc.switches, 1);
	dual_stack(&n, &a, &b, 1);
	assert_true(a.pc.upgrades + b.pc.upgrades >= 1);
	assert_true(a.pc.upgrades <= 1 && b.pc.upgrades <= 1);
	/* An IPv4 ack arriving now (direct on IPv6) moves nothing. */
	sw = a.pc.switches;
	{
		struct path_probe ack = { .ack = 1, .route = a.pc.route, .attempt = a.pc.mine.attempt };

		memcpy(ack.token, a.pc.mine.token, PATH_TOKEN_LEN);
		memcpy(ack.nonce, a.pc.salt, sizeof(a.pc.salt));
		ack.nonce[8] = 1; /* b's IPv4 candidate */
		assert_true(path_probe_mine(&a.pc, &ack));
		path_on_probe(&a.pc, &ack, &b.me, n.now, &IO[0]);
	}
	assert_int_equal(a.pc.switches, sw);
	assert_true(io_addr_equal(&a.pc.direct, &b.me6));
}

static void test_budget_table(void **state)
{
	struct path_budget *b;
	uint8_t k1[32] = { 1 }, k2[32] = { 2 }, k3[32] = { 3 };
	const uint64_t s = 1000000000ULL;

	(void)state;
	assert_int_equal(path_budget_new(&b, 4, 60, 2), 0);
	assert_int_equal(path_budget_left(b, k1, 1), 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(path_budget_take(b, k1, 1 + (uint64_t)i * s), 0);
	assert_int_equal(path_budget_take(b, k1, 10 * s), -EAGAIN);
	assert_int_equal(path_budget_left(b, k1, 10 * s), 0);
	assert_int_equal(path_budget_take(b, k2, 20 * s), 0); /* another peer */
	assert_int_equal(path_budget_left(b, k2, 20 * s), 3);
	assert_int_equal(path_budget_take(b, k1, 59 * s), -EAGAIN);
	/* k1's window (from 1 ns) is over at 60 s + 1 ns. */
	assert_int_equal(path_budget_take(b, k1, 61 * s), 0);
	assert_int_equal(path_budget_left(b, k1, 61 * s), 3);
	/* Two slots: k3 takes the slot whose window started first (k2's). */
	assert_int_equal(path_budget_take(b, k3, 62 * s), 0);
	assert_int_equal(path_budget_left(b, k1, 62 * s), 3);
	assert_int_equal(path_budget_left(b, k2, 62 * s), 4);
	assert_int_equal(path_budget_left(b, k3, 62 * s), 3);
	path_budget_free(b);
	/* Defaults. */
	assert_int_equal(path_budget_new(&b, 0, 0, 0), 0);
	assert_int_equal(path_budget_left(b, k1, 1), PATH_DEF_PEER_ATTEMPTS);
	path_budget_free(b);
}

/* Attempts per peer, over connections: with 4 attempts per peer and
 * window, a first connection over a dead network spends 3; a second one
 * with the same peer gets one more attempt, and its other two are not
 * started (no CONNECT sent, no probe); it ends failed at +15 s as usual.
 * A holder whose budget for the dialler is spent leaves CONNECT
 * unanswered: the dialler's attempt times out, nobody probes. */
static void test_peer_budget(void **state)
{
	struct net n;
	struct end a, b;
	struct path_budget *ba, *bb;
	uint64_t t;

	(void)state;
	memset(&n, 0, sizeof(n));
	assert_int_equal(path_budget_new(&ba, 4, 600, 0), 0);
	assert_int_equal(path_budget_new(&bb, 100, 600, 0), 0);
	for (int conn = 0; conn < 2; conn++) {
		t = n.now;
		setup_net(&n, &a, &b);
		n.now = conn ? t : 1;
		a.budget = ba;
		b.budget = bb;
		memset(a.peer_key, 0xbb, 32);
		memset(b.peer_key, 0xaa, 32);
		IO[0].allow = IO[1].allow = e_allow;
		IO[0].send_udp = IO[1].send_udp = drop_udp;
		assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
		run(&n, n.now / 1000000 + 21000);
		assert_int_equal(a.pc.state, PATH_FAILED);
		assert_int_equal(b.pc.state, PATH_FAILED);
		assert_int_equal(a.pc.attempt, 3);
		assert_int_equal(a.pc.attempts_started, conn ? 1 : 3);
		assert_int_equal(a.pc.limited, conn ? 2 : 0);
		assert_int_equal(b.pc.attempts_started, conn ? 1 : 3);
		assert_int_equal(n.probes[0], conn ? 15 : 45);
		assert_int_equal(n.probes[1], conn ? 15 : 45);
	}
	assert_int_equal(path_budget_left(ba, a.peer_key, n.now), 0);
	assert_int_equal(path_budget_left(bb, b.peer_key, n.now), 96);
	path_budget_free(ba);
	path_budget_free(bb);

	/* The holder's side: B allows 1 attempt per window for A. */
	assert_int_equal(path_budget_new(&ba, 100, 600, 0), 0);
	assert_int_equal(path_budget_new(&bb, 1, 600, 0), 0);
	setup_net(&n, &a, &b);
	n.now = 1;
	a.budget = ba;
	b.budget = bb;
	memset(a.peer_key, 0xbb, 32);
	memset(b.peer_key, 0xaa, 32);
	IO[0].allow = IO[1].allow = e_allow;
	IO[0].send_udp = IO[1].send_udp = drop_udp;
	assert_int_equal(path_start(&a.pc, n.now, &IO[0]), 0);
	run(&n, 21000);
	assert_int_equal(a.pc.attempts_started, 3); /* A sent three CONNECTs */
	assert_int_equal(b.pc.attempts_started, 1); /* B answered one */
	assert_int_equal(b.pc.limited, 2);
	assert_int_equal(n.probes[0], 15); /* attempts 2 and 3: no REPLY, no probes */
	assert_int_equal(n.probes[1], 15);
	assert_int_equal(a.pc.state, PATH_FAILED);
	path_budget_free(ba);
	path_budget_free(bb);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_vectors),
		cmocka_unit_test(test_punch_ok),
		cmocka_unit_test(test_punch_fails),
		cmocka_unit_test(test_low_ttl),
		cmocka_unit_test(test_ipv6_first),
		cmocka_unit_test(test_repunch_bounds),
		cmocka_unit_test(test_budget_table),
		cmocka_unit_test(test_peer_budget),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("conn_path", tests, NULL, NULL);
}
