// SPDX-License-Identifier: MIT
/*
 * QUIC endpoint tests over an in-memory link with a virtual clock
 * (quic_sim.h): handshake with mutual key verification, key pinning, streams,
 * 16 MiB transfer, loss and reordering, 200 connections, limits, idle
 * timeout, a vanished peer, stateless reset, Retry, version negotiation,
 * migration, datagrams, ALPN mismatch, garbage input, 1-RTT AES-GCM on
 * weft's gcm.h and GnuTLS mixed, through key updates. Datagram sizes
 * (loopback jumbo, path MTU probing): test_quic_pmtu.c.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

#include "quic_world.h"

#include "quic/quic_int.h"

static void test_handshake_mutual(void **state)
{
	struct world *w = connected(1, NULL, NULL);
	struct quic_conn_info info;
	struct quic_ep_stats st;

	assert_int_equal(w->app[0].nconn, 1);
	assert_int_equal(w->app[1].nconn, 1);
	/* Each side learnt the other's node key from its certificate. */
	assert_memory_equal(w->app[0].recs[0].peer, w->sim.nodes[1].pk, QUIC_KEY_LEN);
	assert_memory_equal(w->app[1].recs[0].peer, w->srv->pk, QUIC_KEY_LEN);
	assert_int_equal(quic_conn_get_info(w->cli, &info), 0);
	assert_true(info.established);
	assert_false(info.is_server);
	assert_memory_equal(info.peer_key, w->srv->pk, QUIC_KEY_LEN);
	assert_true(info.smoothed_rtt_ns > 0);
	assert_true(info.cwnd > 0);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_accepted, 1);
	assert_int_equal(st.conns_established, 1);
	assert_int_equal(st.conns_active, 1);
	world_free(w);
}

static int stop_server_rx(void *arg)
{
	struct world *w = arg;

	return w->app[0].nrecs > 0 && w->app[0].recs[0].rx_off >= w->want_rx;
}

/*
 * With a 5 ms one-way delay, the handshake takes 1.5 round trips until the
 * server has the client's Finished, and a stream opened the moment the
 * client is connected reaches the server one way later. Neither may wait
 * for a loss-recovery probe (PTO, > 30 ms here) or a pacing slot computed
 * from the 333 ms initial RTT: that stall once made every first request
 * over a new connection ~20 ms late. Virtual time, so deterministic.
 */
static void test_no_handshake_stall(void **state)
{
	struct world *w = world_new(21, NULL);
	struct sim_node *cl = add_node(w, NULL);
	uint64_t t0 = w->sim.now, t1;
	int64_t sid;

	w->sim.delay = 5 * SIM_MS;
	dial(w, cl, w->srv->pk, &w->cli);
	w->want_conns = 2;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 10000 * SIM_MS), 1);
	t1 = w->sim.now;
	if (t1 - t0 > 25 * SIM_MS)
		fail_msg("handshake took %.1f ms of virtual time for a 10 ms RTT",
			 (double)(t1 - t0) / SIM_MS);
	assert_int_equal(quic_stream_open(w->cli, 1, &sid), 0);
	assert_int_equal(quic_stream_send(w->cli, sid, (const uint8_t *)"ping", 4, 1), 4);
	w->want_rx = 4;
	assert_int_equal(sim_run(&w->sim, stop_server_rx, NULL, w, 10000 * SIM_MS), 1);
	if (w->sim.now - t1 > 15 * SIM_MS)
		fail_msg("first stream data took %.1f ms for a 5 ms one-way delay",
			 (double)(w->sim.now - t1) / SIM_MS);
	world_free(w);
}

static int stop_client_rx(void *arg)
{
	struct world *w = arg;

	return w->app[1].nrecs > 0 && w->app[1].recs[0].rx_off >= w->want_rx;
}

static unsigned int hold_tx[SIM_MAX_NODES];

static void hold_tap(void *arg, int from, const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	hold_tx[from]++;
}

/* 16 bytes of the pattern at off on (c, sid). */
static void send16(struct quic_conn *c, int64_t sid, uint64_t off)
{
	uint8_t b[16];

	for (size_t i = 0; i < sizeof(b); i++)
		b[i] = pat(off + i);
	assert_int_equal(quic_stream_send(c, sid, b, sizeof(b), 0), (ssize_t)sizeof(b));
}

/*
 * ACK hold (QUIC_ACK_HOLD_NS): once stream data went both ways, a request
 * whose answer comes 200 us later costs the server one packet (the
 * answer, carrying the ACK), not an ACK-only packet first; a request
 * that is not answered is acknowledged alone once the hold (1 ms) ends.
 * Virtual time, 50 us one way.
 */
static void test_ack_hold(void **state)
{
	struct world *w = connected(23, NULL, NULL);
	struct quic_conn *sc;
	int64_t sid;

	(void)state;
	w->sim.delay = 50000;
	assert_int_equal(quic_stream_open(w->cli, 1, &sid), 0);
	/* exchanges answered at once, until path MTU probing is over */
	for (uint64_t off = 0; off < 16 * 8; off += 16) {
		send16(w->cli, sid, off);
		w->want_rx = off + 16;
		assert_int_equal(sim_run(&w->sim, stop_server_rx, NULL, w, 1000 * SIM_MS), 1);
		sc = w->app[0].recs[0].c;
		send16(sc, sid, off);
		assert_int_equal(sim_run(&w->sim, stop_client_rx, NULL, w, 1000 * SIM_MS), 1);
		sim_run(&w->sim, NULL, NULL, w, 50 * SIM_MS);
	}

	memset(hold_tx, 0, sizeof(hold_tx));
	w->sim.tap = hold_tap;
	send16(w->cli, sid, 128);
	w->want_rx = 144;
	assert_int_equal(sim_run(&w->sim, stop_server_rx, NULL, w, 1000 * SIM_MS), 1);
	sim_run(&w->sim, NULL, NULL, w, SIM_MS / 5);
	assert_int_equal(hold_tx[0], 0); /* no ACK-only packet */
	send16(sc, sid, 128);
	assert_int_equal(sim_run(&w->sim, stop_client_rx, NULL, w, 1000 * SIM_MS), 1);
	assert_int_equal(hold_tx[0], 1); /* the answer, with the ACK */

	sim_run(&w->sim, NULL, NULL, w, 10 * SIM_MS);
	memset(hold_tx, 0, sizeof(hold_tx));
	send16(w->cli, sid, 144);
	w->want_rx = 160;
	assert_int_equal(sim_run(&w->sim, stop_server_rx, NULL, w, 1000 * SIM_MS), 1);
	sim_run(&w->sim, NULL, NULL, w, SIM_MS / 2);
	assert_int_equal(hold_tx[0], 0);
	sim_run(&w->sim, NULL, NULL, w, 2 * SIM_MS);
	assert_int_equal(hold_tx[0], 1); /* the ACK alone, after the hold */
	assert_int_equal(w->app[0].recs[0].rx_bad, 0);
	assert_int_equal(w->app[1].recs[0].rx_bad, 0);
	w->sim.tap = NULL;
	world_free(w);
}

static void test_pin_failure(void **state)
{
	struct world *w = world_new(2, NULL);
	struct sim_node *cl = add_node(w, NULL);
	uint8_t wrong[QUIC_KEY_LEN];
	struct quic_conn *c;
	struct quic_ep_stats st;

	memcpy(wrong, w->srv->pk, sizeof(wrong));
	wrong[7] ^= 1;
	dial(w, cl, wrong, &c);
	w->want_closed_node = 1;
	w->want_closed = 1;
	assert_int_equal(sim_run(&w->sim, stop_closed, NULL, w, 10000 * SIM_MS), 1);
	assert_int_equal(w->app[1].nconn, 0);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_PEER_KEY_MISMATCH);
	/* TLS alert bad_certificate (42) as a CRYPTO_ERROR 0x100 + alert. */
	assert_int_equal(w->app[1].last_close.error_code, 0x100 + 42);
	quic_ep_get_stats(cl->ep, &st);
	assert_int_equal(st.peer_key_mismatch, 1);
	/* The server never reports a connection it did not complete, and
	 * frees its state. */
	sim_run(&w->sim, NULL, NULL, w, 40000 * SIM_MS);
	assert_int_equal(w->app[0].nconn, 0);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_active, 0);
	quic_ep_get_stats(cl->ep, &st);
	assert_int_equal(st.conns_active, 0);
	world_free(w);
}

static void test_bidi_echo(void **state)
{
	struct world *w = connected(3, NULL, NULL);
	struct app *ca = &w->app[1];

	w->app[0].echo = 1;
	transfer(w, 100000, 1, 10000 * SIM_MS);
	/* The echo comes back on the same stream. */
	w->want_closed_node = 1;
	w->want_rx = 100000;
	assert_int_equal(sim_run(&w->sim, stop_rx, NULL, w, 10000 * SIM_MS), 1);
	assert_int_equal(ca->recs[0].rx_off, 100000);
	assert_int_equal(ca->recs[0].rx_bad, 0);
	assert_int_equal(ca->recs[0].sid, w->tx_sid);
	sim_run(&w->sim, NULL, NULL, w, 1000 * SIM_MS);
	/* Both sides saw the stream close once both directions finished. */
	assert_true(w->app[0].nstreams_closed >= 1);
	assert_true(ca->nstreams_closed >= 1);
	world_free(w);
}

static int stop_streams(void *arg)
{
	struct world *w = arg;

	return w->app[0].nstreams_closed >= (int)w->want_rx;
}

/* More streams over one connection's life than the peer's concurrent
 * stream limit (QUIC_DEF_MAX_STREAMS): closed streams must hand their
 * credit back. */
static void test_stream_credit(void **state)
{
	struct world *w = connected(11, NULL, NULL);
	int64_t sid;

	/* Bidirectional, echoed with FIN: both sides finish, the stream closes. */
	w->app[0].echo = 1;
	for (unsigned int i = 0; i < 2 * QUIC_DEF_MAX_STREAMS + 50; i++) {
		assert_int_equal(quic_stream_open(w->cli, 1, &sid), 0);
		assert_true(quic_stream_send(w->cli, sid, (const uint8_t *)"0123456789", 10, 1) == 10);
		w->want_rx = i + 1;
		if (sim_run(&w->sim, stop_streams, NULL, w, 5000 * SIM_MS) != 1)
			fail_msg("stream %u never closed on the server", i);
	}
	world_free(w);
}

static void test_large_transfer(void **state)
{
	struct world *w = connected(4, NULL, NULL);
	struct quic_conn_info info;

	w->sim.delay = 2 * SIM_MS;
	transfer(w, 16ULL << 20, 0, 600000 * SIM_MS);
	assert_true(w->app[1].writable > 0); /* the 1 MiB send buffer filled up */
	assert_int_equal(quic_conn_get_info(w->cli, &info), 0);
	assert_true(info.bytes_tx >= 16ULL << 20);
	world_free(w);
}

/* 1-RTT AES-GCM on weft's gcm.h at each width this CPU runs, or on
 * GnuTLS, at either end (docs/QUIC.md "AES-GCM on wide vectors"): every
 * pairing carries 16 MiB intact through two key updates the client starts
 * (RFC 9001 6: the second only once the first is confirmed), so packets
 * sealed by one implementation open under the other, the next keys agree
 * and the old ones are freed (ASan's leak check). */
static int ku_done;

static void ku_pump(void *arg)
{
	struct world *w = arg;

	bulk_pump(w);
	if (w->cli && ku_done < 2 && w->tx_off > (uint64_t)(ku_done + 1) * (512U << 10) &&
	    ngtcp2_conn_initiate_key_update(w->cli->conn, w->sim.now) == 0)
		ku_done++;
}

static void test_aead_mix(void **state)
{
	static const enum quic_aead all[] = { QUIC_AEAD_GNUTLS, QUIC_AEAD_AESNI,
					      QUIC_AEAD_VAES256, QUIC_AEAD_VAES512 };
	enum quic_aead have[4];
	int n = 0, i, j, gcm;

	(void)state;
	for (i = 0; i < 4; i++) {
		if (quic_aead_resolve(all[i], &gcm) == 0)
			have[n++] = all[i];
		else
			printf("# SKIP quic aead %d: not on this CPU\n", (int)all[i]);
	}
	for (i = 0; i < n; i++)
		for (j = 0; j < n; j++) {
			struct quic_ep_opts so = { .aead = have[i] }, co = { .aead = have[j] };
			uint64_t k0 = quic_aead_keys_made();
			struct world *w = connected(40 + (uint64_t)(i * 4 + j), &so, &co);
			/* weft's keys made so far: each direction's on each end
			 * that runs gcm.h, not the next pair ngtcp2 derives
			 * ahead (expanded only when a key update uses it) */
			uint64_t ours = 2 * (uint64_t)((have[i] != QUIC_AEAD_GNUTLS) +
						       (have[j] != QUIC_AEAD_GNUTLS));

			assert_string_equal(quic_ep_aead(w->srv->ep),
					    have[i] == QUIC_AEAD_GNUTLS ? "gnutls"
					    : have[i] == QUIC_AEAD_AESNI ? "aesni"
					    : have[i] == QUIC_AEAD_VAES256 ? "vaes256"
									     : "vaes512");
			assert_int_equal(quic_aead_keys_made() - k0, ours);
			w->sim.delay = 2 * SIM_MS;
			ku_done = 0;
			pumped_transfer_n(w, ku_pump, 16ULL << 20);
			assert_int_equal(ku_done, 2);
			assert_int_equal(w->app[0].recs[0].rx_off, 16ULL << 20);
			/* both updates' keys were expanded once used */
			if (ours)
				assert_true(quic_aead_keys_made() - k0 >= 3 * ours);
			world_free(w);
		}
}

/* An explicit width the CPU lacks is refused; auto never is. */
static void test_aead_choice(void **state)
{
	struct quic_ep_opts o = { .aead = QUIC_AEAD_VAES512 };
	struct sim s;
	int rc, gcm;

	(void)state;
	assert_int_equal(quic_aead_resolve(QUIC_AEAD_AUTO, &gcm), 0);
	assert_int_equal(quic_aead_resolve((enum quic_aead)9, &gcm), -EINVAL);
	sim_init(&s, 77);
	sim_add(&s, &o, &rc);
	if (quic_aead_resolve(QUIC_AEAD_VAES512, &gcm) == 0)
		assert_int_equal(rc, 0);
	else
		assert_int_equal(rc, -EOPNOTSUPP);
	sim_free(&s);
}

/* auto's rule: the fastest width where it takes at most 90% of GnuTLS's
 * time; and what this CPU measured follows it. */
static void test_aead_auto(void **state)
{
	static const struct {
		unsigned int ns[4];
		enum quic_aead want;
	} c[] = {
	    {{265, 270, 190, 138}, QUIC_AEAD_VAES512}, /* the Intel host */
	    {{265, 270, 190, 0}, QUIC_AEAD_VAES256},   /* no AVX-512 */
	    {{265, 250, 0, 0}, QUIC_AEAD_GNUTLS},      /* 94%: not enough */
	    {{300, 270, 0, 0}, QUIC_AEAD_AESNI},       /* 90%: enough */
	    {{265, 0, 0, 0}, QUIC_AEAD_GNUTLS},	       /* no AES-NI */
	    {{100, 200, 300, 400}, QUIC_AEAD_GNUTLS},
	    {{0, 270, 190, 0}, QUIC_AEAD_VAES256}, /* GnuTLS refused */
	    {{0, 0, 0, 0}, QUIC_AEAD_GNUTLS},
	    {{400, 300, 300, 0}, QUIC_AEAD_AESNI}, /* a tie: the narrower */
	};
	struct quic_aead_auto au, again;
	unsigned int i;
	int gcm;

	(void)state;
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		assert_int_equal(quic_aead_pick(c[i].ns), c[i].want);
	quic_aead_auto(&au);
	assert_true(au.ns[0] > 0); /* GnuTLS always measured */
	for (i = 1; i < 4; i++)	   /* each width iff the CPU runs it */
		assert_int_equal(au.ns[i] > 0,
				 quic_aead_resolve((enum quic_aead)(QUIC_AEAD_GNUTLS + i), &gcm) ==
				     0);
	if (au.sanitized) /* the widest width, not the figures of instrumented code */
		assert_int_equal(au.pick, quic_aead_parse(quic_aead_widest()) == QUIC_AEAD_AUTO
					      ? QUIC_AEAD_GNUTLS
					      : quic_aead_parse(quic_aead_widest()));
	else
		assert_int_equal(au.pick, quic_aead_pick(au.ns));
	assert_int_equal(quic_aead_resolve(QUIC_AEAD_AUTO, &gcm), 0);
	assert_int_equal(gcm, au.pick == QUIC_AEAD_GNUTLS ? 0 : (int)(au.pick - QUIC_AEAD_GNUTLS));
	quic_aead_auto(&again); /* measured once, then the same answer */
	assert_memory_equal(&au, &again, sizeof(au));
	assert_string_equal(quic_aead_name(au.pick), au.pick == QUIC_AEAD_GNUTLS    ? "gnutls"
						     : au.pick == QUIC_AEAD_AESNI   ? "aesni"
						     : au.pick == QUIC_AEAD_VAES256 ? "vaes256"
										    : "vaes512");
	assert_int_equal(quic_aead_parse(quic_aead_name(au.pick)), au.pick);
	assert_string_equal(quic_aead_name((enum quic_aead)9), "?");
	printf("# quic.aead = auto on this CPU: %s%s (gnutls %u, aesni %u, vaes256 %u, vaes512 %u "
	       "ns)\n",
	       quic_aead_name(au.pick), au.sanitized ? ", the widest: a sanitizer build" : "",
	       au.ns[0], au.ns[1], au.ns[2], au.ns[3]);
}

/* quic_stream_send_ref: referenced blocks, each released exactly once. */
static unsigned int g_ref_taken, g_ref_released;

static void ref_release(void *arg)
{
	g_ref_released++;
	free(arg);
}

/* Sends 40000-byte referenced blocks (of the pattern at their offset):
 * slices the stream accepts only partly are sent again from the next
 * block, so blocks overlap the stream as the caller's buffers would. */
static void ref_pump(void *arg)
{
	struct world *w = arg;
	uint8_t *b;
	size_t i, n;
	ssize_t r;

	while (w->tx_conn && w->tx_off < w->tx_total) {
		n = w->tx_total - w->tx_off < 40000 ? w->tx_total - w->tx_off : 40000;
		b = malloc(n);
		assert_non_null(b);
		for (i = 0; i < n; i++)
			b[i] = pat(w->tx_off + i);
		r = quic_stream_send_ref(w->tx_conn, w->tx_sid, b, n,
					 w->tx_off + n == w->tx_total, ref_release, b);
		assert_true(r >= 0);
		if (r > 0)
			g_ref_taken++;
		else
			free(b); /* nothing taken: never released */
		w->tx_off += (uint64_t)r;
		if ((size_t)r < n)
			break;
	}
}

static void test_send_ref(void **state)
{
	struct world *w = connected(23, NULL, NULL);
	struct app *sa = &w->app[0];
	uint64_t held, still;
	int64_t sid;

	g_ref_taken = g_ref_released = 0;
	assert_int_equal(quic_stream_send_ref(w->cli, 0, (const uint8_t *)"x", 1, 0, NULL, NULL),
			 -EINVAL);
	/* Loss and reordering: lost packets are sent again from the
	 * referenced bytes, which must still be there. */
	w->sim.loss_pct = 5;
	w->sim.reorder_pct = 10;
	assert_int_equal(quic_stream_open(w->cli, 0, &w->tx_sid), 0);
	w->tx_conn = w->cli;
	w->tx_off = 0;
	w->tx_total = 3ULL << 20;
	w->want_rx = w->tx_total;
	w->want_closed_node = 0;
	assert_int_equal(sim_run(&w->sim, stop_rx, ref_pump, w, 600000 * SIM_MS), 1);
	assert_int_equal(sa->recs[0].rx_off, w->tx_total);
	assert_int_equal(sa->recs[0].rx_bad, 0);
	assert_int_equal(sa->recs[0].rx_fin, 1);
	assert_true(g_ref_taken > (3U << 20) / 40000); /* the buffer filled: partial takes */
	/* Everything acknowledged: every block given back, once. */
	sim_run(&w->sim, NULL, NULL, w, 2000 * SIM_MS);
	assert_int_equal(g_ref_released, g_ref_taken);
	/* and the connection's count of buffered bytes is back to none */
	quic_conn_unacked(w->cli, &held, &still);
	assert_int_equal(held, 0);
	assert_int_equal(still, 0);
	/* Blocks still unacknowledged when the connection goes are released
	 * with it. */
	w->sim.loss_pct = 100;
	assert_int_equal(quic_stream_open(w->cli, 0, &sid), 0);
	w->tx_sid = sid;
	w->tx_off = 0;
	w->tx_total = 100000;
	ref_pump(w);
	assert_true(g_ref_released < g_ref_taken);
	/* counted, and unmoved while nothing is acknowledged */
	sim_run(&w->sim, NULL, NULL, w, 500 * SIM_MS);
	quic_conn_unacked(w->cli, &held, &still);
	assert_int_equal(held, 100000);
	assert_true(still >= 400 * SIM_MS);
	world_free(w);
	assert_int_equal(g_ref_released, g_ref_taken);
}

static void test_loss_reorder(void **state)
{
	struct world *w = connected(5, NULL, NULL);
	struct quic_ep_stats st;

	w->sim.loss_pct = 5;
	w->sim.reorder_pct = 10;
	w->app[0].echo = 1;
	transfer(w, 2ULL << 20, 1, 600000 * SIM_MS);
	w->want_closed_node = 1;
	w->want_rx = 2ULL << 20;
	assert_int_equal(sim_run(&w->sim, stop_rx, NULL, w, 600000 * SIM_MS), 1);
	assert_int_equal(w->app[1].recs[0].rx_bad, 0);
	assert_true(w->sim.dropped > 0);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_active, 1);
	world_free(w);
}

static void test_many_conns(void **state)
{
	struct world *w = world_new(6, NULL);
	struct quic_conn *c[200];
	struct sim_node *cl[4];
	const uint8_t msg[] = { 0 };
	int i, j, k;
	struct quic_ep_stats st;

	for (j = 0; j < 4; j++)
		cl[j] = add_node(w, NULL);
	for (i = 0; i < 200; i++)
		dial(w, cl[i % 4], w->srv->pk, &c[i]);
	w->want_conns = 400;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 30000 * SIM_MS), 1);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_active, 200);
	/* One message per connection, each must reach the server. */
	for (i = 0; i < 200; i++) {
		int64_t sid;
		uint8_t b = pat(0);

		(void)msg;
		assert_int_equal(quic_stream_open(c[i], 0, &sid), 0);
		assert_int_equal(quic_stream_send(c[i], sid, &b, 1, 1), 1);
	}
	sim_run(&w->sim, NULL, NULL, w, 2000 * SIM_MS);
	for (k = 0, i = 0; i < w->app[0].nrecs; i++) {
		assert_int_equal(w->app[0].recs[i].rx_bad, 0);
		k += w->app[0].recs[i].msgs;
	}
	assert_int_equal(k, 200);
	world_free(w);
}

static void test_limit_per_source(void **state)
{
	struct quic_ep_opts so;
	struct world *w;
	struct sim_node *cl;
	struct quic_conn *c[5];
	struct quic_ep_stats st;
	int i;

	memset(&so, 0, sizeof(so));
	so.max_conns_per_addr = 3;
	w = world_new(7, &so);
	cl = add_node(w, NULL);
	for (i = 0; i < 5; i++)
		dial(w, cl, w->srv->pk, &c[i]);
	sim_run(&w->sim, NULL, NULL, w, 3000 * SIM_MS);
	assert_int_equal(w->app[0].nconn, 3);
	assert_int_equal(w->app[1].nconn, 3);
	assert_int_equal(w->app[1].nclosed, 2);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_PEER);
	assert_int_equal(w->app[1].last_close.error_code, 0x2); /* CONNECTION_REFUSED */
	quic_ep_get_stats(w->srv->ep, &st);
	assert_true(st.drop_limit >= 2);
	assert_int_equal(st.conns_active, 3);
	world_free(w);
}

static void test_idle_timeout(void **state)
{
	struct quic_ep_opts so, co;
	struct world *w;
	struct quic_ep_stats st;

	memset(&so, 0, sizeof(so));
	memset(&co, 0, sizeof(co));
	so.idle_timeout_ms = 2000;
	co.idle_timeout_ms = 2000;
	w = connected(8, &so, &co);
	sim_run(&w->sim, NULL, NULL, w, 10000 * SIM_MS);
	assert_int_equal(w->app[0].nclosed, 1);
	assert_int_equal(w->app[0].last_close.reason, QUIC_CLOSE_IDLE);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_IDLE);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_active, 0);
	assert_int_equal(st.idle_timeouts, 1);
	world_free(w);
}

static void test_keepalive(void **state)
{
	struct quic_ep_opts so, co;
	struct world *w;

	memset(&so, 0, sizeof(so));
	memset(&co, 0, sizeof(co));
	so.idle_timeout_ms = 2000;
	co.idle_timeout_ms = 2000;
	co.keepalive_ms = 500;
	w = connected(9, &so, &co);
	sim_run(&w->sim, NULL, NULL, w, 10000 * SIM_MS);
	assert_int_equal(w->app[0].nclosed, 0);
	assert_int_equal(w->app[1].nclosed, 0);
	world_free(w);
}

static void test_peer_vanishes(void **state)
{
	struct quic_ep_opts so;
	struct world *w;
	struct quic_ep_stats st;

	memset(&so, 0, sizeof(so));
	so.idle_timeout_ms = 3000;
	w = connected(10, &so, NULL);
	/* The client process dies: no CONNECTION_CLOSE. */
	quic_ep_free(w->sim.nodes[1].ep);
	w->sim.nodes[1].ep = NULL;
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_ENDPOINT);
	sim_run(&w->sim, NULL, NULL, w, 10000 * SIM_MS);
	assert_int_equal(w->app[0].nclosed, 1);
	assert_int_equal(w->app[0].last_close.reason, QUIC_CLOSE_IDLE);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.conns_active, 0);
	world_free(w);
}

static void test_stateless_reset(void **state)
{
	struct world *w = connected(11, NULL, NULL);
	struct sim_node *s = w->srv;
	struct quic_ep_opts o;
	struct quic_ep_stats st;
	int64_t sid;
	uint8_t buf[200];
	size_t i;

	/* The server restarts with the same node key: it no longer knows the
	 * connection, but derives the same reset token. */
	quic_ep_free(s->ep);
	memset(&o, 0, sizeof(o));
	o.node_pk = s->pk;
	o.node_sk = s->sk;
	o.local = (struct sockaddr *)&s->addr;
	o.local_len = sizeof(s->addr);
	o.send = sim_send;
	o.send_arg = s;
	o.server = 1;
	assert_int_equal(quic_ep_new(&s->ep, &o), 0);
	for (i = 0; i < sizeof(buf); i++)
		buf[i] = pat(i);
	assert_int_equal(quic_stream_open(w->cli, 1, &sid), 0);
	assert_int_equal(quic_stream_send(w->cli, sid, buf, sizeof(buf), 0), sizeof(buf));
	w->want_closed_node = 1;
	w->want_closed = 1;
	sim_run(&w->sim, stop_closed, NULL, w, 5000 * SIM_MS);
	quic_ep_get_stats(s->ep, &st);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_RESET);
	assert_true(st.stateless_resets_sent >= 1);
	world_free(w);
}

static void test_retry(void **state)
{
	struct quic_ep_opts so;
	struct world *w;
	struct quic_ep_stats st;

	memset(&so, 0, sizeof(so));
	so.retry_mode = QUIC_RETRY_ALWAYS;
	w = connected(12, &so, NULL);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.retries_sent, 1);
	assert_int_equal(st.conns_established, 1);
	world_free(w);
}

static void test_retry_rate(void **state)
{
	struct quic_ep_opts so;
	struct world *w;
	struct quic_ep_stats st;
	struct quic_conn *c[6];
	struct sim_node *cl;
	int i;

	/* Auto mode: 2 handshakes/s pass without a Retry, the rest get one
	 * and still complete. */
	memset(&so, 0, sizeof(so));
	so.retry_rate = 2;
	w = world_new(13, &so);
	cl = add_node(w, NULL);
	for (i = 0; i < 6; i++)
		dial(w, cl, w->srv->pk, &c[i]);
	w->want_conns = 12;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 10000 * SIM_MS), 1);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.retries_sent, 4);
	world_free(w);
}

static void test_version_negotiation(void **state)
{
	struct world *w = world_new(14, NULL);
	struct sim_node *cl = add_node(w, NULL);
	struct quic_ep_stats st;
	uint8_t pkt[1200];
	struct sim_pkt *p;

	memset(pkt, 0, sizeof(pkt));
	pkt[0] = 0xc0;
	pkt[1] = 0x1a; /* unknown version 0x1a2a3a4a */
	pkt[2] = 0x2a;
	pkt[3] = 0x3a;
	pkt[4] = 0x4a;
	pkt[5] = 8; /* DCID len */
	pkt[14] = 8; /* SCID len */
	assert_int_equal(quic_ep_input(w->srv->ep, pkt, sizeof(pkt), NULL, 0,
				       (struct sockaddr *)&cl->addr, sizeof(cl->addr), w->sim.now),
			 0);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_int_equal(st.version_negotiations, 1);
	assert_int_equal(w->sim.hlen, 1);
	p = w->sim.heap[0];
	assert_true(p->data[0] & 0x80);
	assert_int_equal(p->data[1] | p->data[2] | p->data[3] | p->data[4], 0); /* version 0 */
	/* A small datagram gets no answer (no amplification). */
	assert_int_equal(quic_ep_input(w->srv->ep, pkt, 100, NULL, 0,
				       (struct sockaddr *)&cl->addr, sizeof(cl->addr), w->sim.now),
			 0);
	assert_int_equal(w->sim.hlen, 1);
	world_free(w);
}

static void test_app_close(void **state)
{
	struct world *w = connected(15, NULL, NULL);

	assert_int_equal(quic_conn_close(w->cli, 0x42, "bye"), 0);
	assert_int_equal(w->app[1].nclosed, 1);
	assert_int_equal(w->app[1].last_close.reason, QUIC_CLOSE_LOCAL_APP);
	w->want_closed_node = 0;
	w->want_closed = 1;
	assert_int_equal(sim_run(&w->sim, stop_closed, NULL, w, 5000 * SIM_MS), 1);
	assert_int_equal(w->app[0].last_close.reason, QUIC_CLOSE_PEER);
	assert_true(w->app[0].last_close.is_app);
	assert_int_equal(w->app[0].last_close.error_code, 0x42);
	sim_run(&w->sim, NULL, NULL, w, 5000 * SIM_MS);
	world_free(w);
}

static void migrate_pump(void *arg)
{
	struct world *w = arg;

	bulk_pump(arg);
	/* Halfway through, the client's NAT binding changes. */
	if (w->tx_off >= w->tx_total / 2 && w->sim.nodes[1].src.sin_port == htons(4433)) {
		w->sim.nodes[1].src.sin_port = htons(5555);
	}
}

/* 4 MiB client -> server on a new stream, pump feeding it (and changing
 * the network halfway); checks every byte. */
static void test_migration(void **state)
{
	struct world *w = connected(16, NULL, NULL);
	struct quic_conn_info info;
	int i;

	pumped_transfer(w, migrate_pump);
	for (i = 0; i < w->app[0].nrecs; i++)
		if (w->app[0].recs[i].c)
			break;
	assert_true(i < w->app[0].nrecs);
	assert_int_equal(quic_conn_get_info(w->app[0].recs[i].c, &info), 0);
	assert_int_equal(((struct sockaddr_in *)&info.remote)->sin_port, htons(5555));
	world_free(w);
}

static void test_datagram(void **state)
{
	struct world *w = connected(17, NULL, NULL);
	uint8_t big[QUIC_MAX_DATAGRAM + 1];

	assert_int_equal(quic_conn_send_datagram(w->cli, (const uint8_t *)"hello", 5), 0);
	memset(big, 0, sizeof(big));
	assert_int_equal(quic_conn_send_datagram(w->cli, big, sizeof(big)), -EMSGSIZE);
	sim_run(&w->sim, NULL, NULL, w, 1000 * SIM_MS);
	assert_int_equal(w->app[0].ndgram, 1);
	assert_int_equal(w->app[0].dgram_len, 5);
	assert_memory_equal(w->app[0].dgram, "hello", 5);
	world_free(w);
}

static void test_alpn_mismatch(void **state)
{
	struct world *w = world_new(18, NULL);
	struct quic_ep_opts co;
	struct sim_node *cl;
	struct quic_conn *c;

	memset(&co, 0, sizeof(co));
	co.alpn = "other/1";
	cl = add_node(w, &co);
	dial(w, cl, w->srv->pk, &c);
	w->want_closed_node = 1;
	w->want_closed = 1;
	assert_int_equal(sim_run(&w->sim, stop_closed, NULL, w, 15000 * SIM_MS), 1);
	assert_int_equal(w->app[1].nconn, 0);
	assert_int_equal(w->app[0].nconn, 0);
	/* no_application_protocol (120) */
	assert_int_equal(w->app[1].last_close.error_code, 0x100 + 120);
	sim_run(&w->sim, NULL, NULL, w, 15000 * SIM_MS);
	world_free(w);
}

static void test_garbage(void **state)
{
	struct world *w = connected(19, NULL, NULL);
	struct sim_node *cl = &w->sim.nodes[1];
	struct quic_ep_stats st0, st;
	uint8_t buf[1500];
	size_t i, len;
	int k;

	quic_ep_get_stats(w->srv->ep, &st0);
	for (k = 0; k < 3000; k++) {
		len = sim_rand(&w->sim) % sizeof(buf);
		for (i = 0; i < len; i++)
			buf[i] = (uint8_t)sim_rand(&w->sim);
		if (k % 3 == 1)
			buf[0] |= 0xc0; /* long header, random version */
		if (k % 3 == 2 && len > 5) {
			buf[0] = 0xc0; /* QUIC v1 Initial with junk after */
			buf[1] = buf[2] = buf[3] = 0;
			buf[4] = 1;
		}
		quic_ep_input(w->srv->ep, buf, len, NULL, 0, (struct sockaddr *)&cl->addr,
			      sizeof(cl->addr), w->sim.now);
		quic_ep_input(cl->ep, buf, len, NULL, 0, (struct sockaddr *)&w->srv->addr,
			      sizeof(w->srv->addr), w->sim.now);
	}
	/* Zero-length and NULL input. */
	quic_ep_input(w->srv->ep, NULL, 0, NULL, 0, (struct sockaddr *)&cl->addr,
		      sizeof(cl->addr), w->sim.now);
	quic_ep_get_stats(w->srv->ep, &st);
	assert_true(st.drop_garbage > st0.drop_garbage);
	assert_int_equal(st.rx_datagrams - st0.rx_datagrams, 3001);
	/* The real connection is unharmed: a transfer still works. */
	w->sim.hlen = w->sim.hlen; /* junk replies (VN, resets) are in flight */
	transfer(w, 50000, 1, 10000 * SIM_MS);
	world_free(w);
}

static void test_truncated_and_flipped(void **state)
{
	struct world *w = world_new(20, NULL);
	struct sim_node *cl = add_node(w, NULL);
	struct quic_conn *c;
	struct sim_pkt *p;
	uint8_t buf[1500];
	size_t cut;
	int k;

	dial(w, cl, w->srv->pk, &c);
	/* Take the client's Initial and feed mangled copies to the server. */
	assert_true(w->sim.hlen >= 1);
	p = w->sim.heap[0];
	for (k = 0; k < 200; k++) {
		memcpy(buf, p->data, p->len);
		cut = k < 100 ? (size_t)k * p->len / 100 : p->len;
		if (k >= 100)
			buf[sim_rand(&w->sim) % p->len] ^= (uint8_t)(1 + sim_rand(&w->sim) % 255);
		quic_ep_input(w->srv->ep, buf, cut, NULL, 0, (struct sockaddr *)&cl->addr,
			      sizeof(cl->addr), w->sim.now);
	}
	/* And then the handshake still completes. */
	w->want_conns = 2;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 20000 * SIM_MS), 1);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_handshake_mutual),
	    cmocka_unit_test(test_no_handshake_stall),
	    cmocka_unit_test(test_ack_hold),
	    cmocka_unit_test(test_pin_failure),
	    cmocka_unit_test(test_bidi_echo),
	    cmocka_unit_test(test_stream_credit),
	    cmocka_unit_test(test_large_transfer),
	    cmocka_unit_test(test_aead_mix),
	    cmocka_unit_test(test_aead_choice),
	    cmocka_unit_test(test_aead_auto),
	    cmocka_unit_test(test_send_ref),
	    cmocka_unit_test(test_loss_reorder),
	    cmocka_unit_test(test_many_conns),
	    cmocka_unit_test(test_limit_per_source),
	    cmocka_unit_test(test_idle_timeout),
	    cmocka_unit_test(test_keepalive),
	    cmocka_unit_test(test_peer_vanishes),
	    cmocka_unit_test(test_stateless_reset),
	    cmocka_unit_test(test_retry),
	    cmocka_unit_test(test_retry_rate),
	    cmocka_unit_test(test_version_negotiation),
	    cmocka_unit_test(test_app_close),
	    cmocka_unit_test(test_migration),
	    cmocka_unit_test(test_datagram),
	    cmocka_unit_test(test_alpn_mismatch),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_truncated_and_flipped),
	};

	return cmocka_run_group_tests_name("quic_core", tests, NULL, NULL);
}
