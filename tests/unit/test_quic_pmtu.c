// SPDX-License-Identifier: MIT
/*
 * Datagram sizes over the QUIC test world (quic_world.h): jumbo datagrams
 * on loopback paths, and path MTU probing off loopback (docs/QUIC.md
 * "Jumbo datagrams off loopback"): a probe acknowledged, lost at a
 * smaller hop, a black hole after a route change, a peer that takes no
 * probe, a route not worth probing, a 1500-byte link (1472-byte datagrams).
 */
#include <errno.h>

#include "quic_world.h"

/* Loopback paths (lo_udp_payload): the client's datagram sizes before its
 * handshake completes, after it, and after its packets moved to a direct
 * address off loopback. */
static struct {
	int phase; /* 0 handshake, 1 loopback, 2 direct path off loopback */
	size_t max[3];
} g_lo;

static void lo_tap(void *arg, int from, const uint8_t *buf, size_t len)
{
	if (from == 1 && len > g_lo.max[g_lo.phase])
		g_lo.max[g_lo.phase] = len;
}

static void lo_pump(void *arg)
{
	struct world *w = arg;
	struct sockaddr_in off = w->srv->addr;

	bulk_pump(arg);
	if (g_lo.phase == 1 && w->tx_off >= w->tx_total / 2) {
		/* The server is also reachable at 10.0.0.1 (its src there). */
		off.sin_addr.s_addr = htonl(0x0a000001);
		w->srv->src = off;
		assert_int_equal(quic_conn_set_direct(w->cli, (struct sockaddr *)&off, sizeof(off)), 0);
		g_lo.phase = 2;
	}
}

static struct world *lo_world(uint64_t seed, size_t srv_rx_max)
{
	struct quic_ep_opts so, co;
	struct world *w;
	struct sim_node *cl;

	memset(&so, 0, sizeof(so));
	memset(&co, 0, sizeof(co));
	so.lo_udp_payload = co.lo_udp_payload = QUIC_LO_UDP_PAYLOAD;
	so.max_rx_udp_payload = srv_rx_max;
	/* Both on loopback: 127.0.0.1 (server) and 127.0.0.2. */
	w = world_new_at(seed, 0x7f000001, &so);
	cl = add_node(w, &co);
	memset(&g_lo, 0, sizeof(g_lo));
	w->sim.tap = lo_tap;
	w->sim.delay = 1 * SIM_MS;
	dial(w, cl, w->srv->pk, &w->cli);
	w->want_conns = 2;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 10000 * SIM_MS), 1);
	g_lo.phase = 1;
	return w;
}

static void test_loopback_jumbo(void **state)
{
	struct world *w = lo_world(31, 0);

	pumped_transfer(w, lo_pump);
	assert_int_equal(g_lo.phase, 2);
	/* Handshake: what any path carries; then jumbo datagrams on
	 * loopback; off loopback QUIC's 1200 bytes. */
	assert_true(g_lo.max[0] >= 1200 && g_lo.max[0] <= QUIC_MAX_UDP_PAYLOAD);
	assert_int_equal(g_lo.max[1], QUIC_LO_UDP_PAYLOAD);
	assert_true(g_lo.max[2] > 0 && g_lo.max[2] <= 1200);
	world_free(w);

	/* A peer that takes 1452 bytes at most (its transport parameter) is
	 * never sent more, loopback or not. */
	w = lo_world(32, QUIC_MAX_UDP_PAYLOAD);
	transfer(w, 1ULL << 20, 0, 100000 * SIM_MS);
	assert_true(g_lo.max[1] > 1200 && g_lo.max[1] <= QUIC_MAX_UDP_PAYLOAD);
	world_free(w);
}

/* Path MTU probing off loopback (docs/QUIC.md "Jumbo datagrams off
 * loopback"): both ends take jumbo datagrams (lo_udp_payload), the
 * client's route reports g_pm.route_mtu, the path carries sim.mtu. The
 * client sends; the tap records its largest datagram per phase (0 before
 * the transfer, 1 during it) and what arrived over the path's MTU. */
static struct {
	int route_mtu, phase, cut_at_half, half_seen;
	size_t max[2], cut_mtu;
	uint64_t acked_at_half; /* the client's pmtu_acked once half was sent */
} g_pm;

static int pm_route_mtu(void *arg, const struct sockaddr *remote, socklen_t len)
{
	return g_pm.route_mtu;
}

static void pm_tap(void *arg, int from, const uint8_t *buf, size_t len)
{
	if (from == 1 && len > g_pm.max[g_pm.phase])
		g_pm.max[g_pm.phase] = len;
}

static void pm_pump(void *arg)
{
	struct world *w = arg;

	bulk_pump(arg);
	if (!g_pm.half_seen && w->tx_total && w->tx_off >= w->tx_total / 2) {
		struct quic_conn_info in;

		g_pm.half_seen = 1;
		if (!quic_conn_get_info(w->cli, &in))
			g_pm.acked_at_half = in.pmtu_acked;
	}
	if (g_pm.cut_at_half && w->tx_off >= w->tx_total / 2) {
		w->sim.mtu = g_pm.cut_mtu; /* a route change: jumbo frames lost */
		g_pm.cut_at_half = 0;
	}
}

static struct world *pm_world(uint64_t seed, int route_mtu, size_t path_mtu, int srv_jumbo,
			      struct quic_conn_info *hs)
{
	struct quic_ep_opts so, co;
	struct world *w;
	struct sim_node *cl;

	memset(&so, 0, sizeof(so));
	memset(&co, 0, sizeof(co));
	if (srv_jumbo)
		so.lo_udp_payload = QUIC_LO_UDP_PAYLOAD;
	co.lo_udp_payload = QUIC_LO_UDP_PAYLOAD;
	co.route_mtu = pm_route_mtu;
	co.keepalive_ms = 10000; /* idle cases run past the idle timeout */
	memset(&g_pm, 0, sizeof(g_pm));
	g_pm.route_mtu = route_mtu;
	w = world_new_at(seed, 0x0a000001, &so);
	cl = add_node(w, &co);
	w->sim.tap = pm_tap;
	w->sim.delay = 1 * SIM_MS;
	w->sim.mtu = path_mtu;
	dial(w, cl, w->srv->pk, &w->cli);
	w->want_conns = 2;
	assert_int_equal(sim_run(&w->sim, stop_conns, NULL, w, 10000 * SIM_MS), 1);
	assert_int_equal(quic_conn_get_info(w->cli, hs), 0);
	g_pm.phase = 1;
	w->tx_off = 0;
	return w;
}

static void test_path_jumbo(void **state)
{
	struct quic_conn_info hs, in;
	struct world *w;

	/* A 9000-byte route and path: the handshake in datagrams any path
	 * carries, then one probe at the ceiling (min(lo_udp_payload, 9000 -
	 * 28)), acknowledged; the bulk in jumbo datagrams, every byte intact. */
	w = pm_world(41, 9000, 9000 - 28, 1, &hs);
	assert_int_equal(hs.pmtu_max, QUIC_LO_UDP_PAYLOAD);
	assert_true(g_pm.max[0] >= 1200 && g_pm.max[0] <= QUIC_MAX_UDP_PAYLOAD);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 1);
	assert_int_equal(in.pmtu_acked, 1);
	/* validated early in the bulk, not at its end (the window the
	 * stream keeps full held the probe back: pm_probe's hold) */
	assert_int_equal(g_pm.acked_at_half, 1);
	assert_int_equal(in.pmtu_lost, 0);
	/* the probe fills the size tried (a packet number shorter than 4
	 * bytes leaves it up to 3 under) */
	assert_true(in.udp_payload >= QUIC_LO_UDP_PAYLOAD - 3);
	assert_true(in.udp_payload <= QUIC_LO_UDP_PAYLOAD);
	assert_true(g_pm.max[1] > QUIC_LO_UDP_PAYLOAD - QUIC_PM_OVERHEAD);
	assert_true(g_pm.max[1] <= QUIC_LO_UDP_PAYLOAD);
	assert_int_equal(w->sim.dropped_mtu, 0);
	world_free(w);

	/* The route says 9000, a hop on the path carries 1500: the jumbo
	 * probe is lost QUIC_PM_TRIES times, the 1452 one is acknowledged;
	 * nothing else ever exceeded the path. */
	w = pm_world(42, 9000, 1500 - 28, 1, &hs);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_lost, QUIC_PM_TRIES);
	assert_int_equal(in.pmtu_acked, 1);
	assert_true(in.udp_payload >= QUIC_MAX_UDP_PAYLOAD - 3);
	assert_true(in.udp_payload <= QUIC_MAX_UDP_PAYLOAD);
	assert_int_equal(w->sim.dropped_mtu, QUIC_PM_TRIES);
	world_free(w);

	/* Without traffic the search goes on: an idle connection across the
	 * smaller hop has its size before the application sends. */
	w = pm_world(46, 9000, 1500 - 28, 1, &hs);
	sim_run(&w->sim, NULL, NULL, w, 10000 * SIM_MS);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_lost, QUIC_PM_TRIES);
	assert_int_equal(in.pmtu_acked, 1);
	world_free(w);

	/* The hop grows (a route change the other way): below the ceiling
	 * the search runs again after the raise timer, and finds it. */
	w = pm_world(47, 9000, 1500 - 28, 1, &hs);
	sim_run(&w->sim, NULL, NULL, w, 5000 * SIM_MS);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_true(in.udp_payload <= QUIC_MAX_UDP_PAYLOAD);
	w->sim.mtu = 0;
	assert_int_equal(sim_run(&w->sim, NULL, NULL, w, (QUIC_PM_RAISE_MS - 10000) * SIM_MS), 0);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_true(in.udp_payload <= QUIC_MAX_UDP_PAYLOAD);
	assert_int_equal(sim_run(&w->sim, NULL, NULL, w, 20000 * SIM_MS), 0);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_true(in.udp_payload > QUIC_LO_UDP_PAYLOAD - QUIC_PM_OVERHEAD);
	assert_int_equal(in.pmtu_acked, 2);
	world_free(w);

	/* The path stops carrying jumbo frames halfway (a route change):
	 * successive PTOs take the connection back to 1200 bytes, the stream
	 * arrives whole, and a new search finds 1452 while it runs. */
	w = pm_world(43, 9000, 0, 1, &hs);
	g_pm.cut_at_half = 1;
	g_pm.cut_mtu = 1500 - 28;
	pumped_transfer_n(w, pm_pump, 16ULL << 20);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	/* the new search ran during the bulk's second half, its probes
	 * before stream data (without pm_probe's hold: 3 probes, 1200
	 * bytes at the end, the search starved by the full window) */
	assert_int_equal(in.pmtu_acked, 2);
	assert_int_equal(in.pmtu_lost, QUIC_PM_TRIES);
	assert_true(in.udp_payload > 1200);
	sim_run(&w->sim, NULL, NULL, w, 5000 * SIM_MS);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_true(in.pmtu_blackholes >= 1);
	assert_true(in.udp_payload <= QUIC_MAX_UDP_PAYLOAD);
	assert_true(in.udp_payload > 1200);
	world_free(w);

	/* A peer that takes no datagrams that large (an earlier weft):
	 * never probed past, the connection stays at 1200 bytes. */
	w = pm_world(44, 9000, 0, 0, &hs);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 0);
	assert_int_equal(in.udp_payload, 1200);
	assert_true(g_pm.max[1] <= 1200);
	world_free(w);

	/* A route not worth probing (io_route_mtu: 0 for a 1500-byte route
	 * through a gateway): not probed, ngtcp2's own shaping. */
	w = pm_world(45, 0, 0, 1, &hs);
	assert_int_equal(hs.pmtu_max, 0);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 0);
	assert_true(g_pm.max[1] <= QUIC_MAX_UDP_PAYLOAD);
	world_free(w);

	/* A 1500-byte link to an IPv4 address (io_route_mtu: 1500 on-link):
	 * the ceiling is 1472 bytes, over ngtcp2's 1444 and our 1452; one
	 * probe, acknowledged, the bulk in 1469-1472-byte datagrams, nothing
	 * over the path's MTU. */
	w = pm_world(48, 1500, 1500 - 28, 1, &hs);
	assert_int_equal(hs.pmtu_max, 1500 - 28);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 1);
	assert_int_equal(in.pmtu_acked, 1);
	assert_int_equal(in.pmtu_lost, 0);
	assert_true(in.udp_payload >= 1500 - 28 - 3 && in.udp_payload <= 1500 - 28);
	assert_true(g_pm.max[1] >= 1500 - 28 - 3 && g_pm.max[1] <= 1500 - 28);
	assert_int_equal(w->sim.dropped_mtu, 0);
	world_free(w);

	/* The same link to a peer that takes no probe (another QUIC stack):
	 * max_udp_payload unprobed (the link's size is the path's), not 1200. */
	w = pm_world(49, 1500, 1500 - 28, 0, &hs);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 0);
	assert_int_equal(in.udp_payload, QUIC_MAX_UDP_PAYLOAD);
	assert_true(g_pm.max[1] > 1200 && g_pm.max[1] <= QUIC_MAX_UDP_PAYLOAD);
	assert_int_equal(w->sim.dropped_mtu, 0);
	world_free(w);

	/* That peer, but the link carries less than the route said (shrunk
	 * to 1400 bytes since the route was read, test_quic_quicgo_link):
	 * the unprobed 1452 meets a black hole, and the connection stays at
	 * 1200 for good, the stream whole (it raised the size again after
	 * each black hole and stalled). */
	w = pm_world(50, 1500, 1400 - 28, 0, &hs);
	pumped_transfer(w, pm_pump);
	assert_int_equal(quic_conn_get_info(w->cli, &in), 0);
	assert_int_equal(in.pmtu_probes, 0);
	assert_int_equal(in.pmtu_blackholes, 1);
	assert_int_equal(in.udp_payload, 1200);
	assert_true(w->sim.dropped_mtu >= 1);
	world_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loopback_jumbo),
		cmocka_unit_test(test_path_jumbo),
	};

	return cmocka_run_group_tests_name("quic_pmtu", tests, NULL, NULL);
}
