// SPDX-License-Identifier: MIT
/*
 * Echo over both backends between two network namespaces joined by a veth
 * pair (created here, removed at the end): the engine runs in namespace A
 * (io_uring, then AF_XDP with the built-in steering program), a plain
 * socket client in namespace B sends 20000 datagrams per family, IPv4 and
 * IPv6, with at most WINDOW in flight, and checks every reply (sequence and
 * content, no duplicates, nothing lost). Then AF_XDP transmit to an
 * unresolved neighbour: handed to the kernel path, counted, delivered, and
 * once the kernel resolved it the AF_XDP path takes over.
 * The test thread enters the namespaces with setns(); engine workers
 * inherit the namespace of the thread that started them. Needs root.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "weft/engine.h"
#include "weft/policer.h"
#include "weft/xdp.h"
#include "testutil.h"

#define PORT 4433
#define COUNT 20000
#define WINDOW 64
#define PLEN 200

static char ns_a[32], ns_b[32];
static int orig_ns = -1;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static void enter(const char *ns)
{
	char path[128];
	int fd;

	if (!ns) {
		assert_int_equal(setns(orig_ns, CLONE_NEWNET), 0);
		return;
	}
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(setns(fd, CLONE_NEWNET), 0);
	close(fd);
}

static int setup(void **state)
{
	if (!tu_is_root())
		return 0;
	snprintf(ns_a, sizeof(ns_a), "weA%d", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "weB%d", (int)getpid());
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (orig_ns < 0)
		return -1;
	if (sh("ip netns add %s && ip netns add %s", ns_a, ns_b) ||
	    sh("ip link add eth0 netns %s type veth peer name eth0 netns %s", ns_a, ns_b))
		return -1;
	if (sh("for n in %s:1 %s:2; do ns=${n%%:*}; i=${n#*:};"
	       " ip -n $ns link set lo up;"
	       " ip netns exec $ns sysctl -qw net.ipv6.conf.eth0.accept_dad=0;"
	       " ip -n $ns addr add 192.0.2.$i/24 dev eth0;"
	       " ip -n $ns addr add 2001:db8::$i/64 dev eth0 nodad;"
	       " ip -n $ns link set eth0 up; done",
	       ns_a, ns_b))
		return -1;
	/* Permanent neighbour entries both ways: no request waits for ARP or
	 * neighbour discovery (a clean-clone run on a loaded machine once saw
	 * the v4 client's first datagram go unanswered for 3 s, in both
	 * backends). */
	if (sh("ma=$(ip netns exec %s cat /sys/class/net/eth0/address) &&"
	       " mb=$(ip netns exec %s cat /sys/class/net/eth0/address) &&"
	       " ip -n %s neigh replace 192.0.2.2 lladdr $mb dev eth0 nud permanent &&"
	       " ip -n %s neigh replace 2001:db8::2 lladdr $mb dev eth0 nud permanent &&"
	       " ip -n %s neigh replace 192.0.2.1 lladdr $ma dev eth0 nud permanent &&"
	       " ip -n %s neigh replace 2001:db8::1 lladdr $ma dev eth0 nud permanent",
	       ns_a, ns_b, ns_a, ns_a, ns_b, ns_b))
		return -1;
	/* Full checksums from the client (its kernel would otherwise leave
	 * them to an offload that veth never performs for AF_XDP). */
	sh("ip netns exec %s ethtool -K eth0 tx off >/dev/null 2>&1", ns_b);
	return 0;
}

static int teardown(void **state)
{
	if (!tu_is_root())
		return 0;
	sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns_a, ns_b);
	if (orig_ns >= 0)
		close(orig_ns);
	return 0;
}

static void echo(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	engine_send(w, &pkt->src, &pkt->dst, pkt->data, pkt->len);
}

/* Byte 0 = 0x40: a QUIC short header as far as weft's XDP program can
 * tell (fixed bit set), so the same payloads pass its malformed checks. */
static void fill(uint8_t *p, uint32_t seq)
{
	uint32_t i;

	memset(p, 0, 4);
	p[0] = 0x40;
	memcpy(p + 4, &seq, 4);
	for (i = 8; i < PLEN; i++)
		p[i] = (uint8_t)(seq * 31 + i);
}

/* Client in the current namespace: COUNT datagrams to ip:PORT, window
 * WINDOW, every reply checked. Returns replies received. */
static unsigned int run_client(int family, const char *ip)
{
	static uint8_t seen[COUNT];
	struct sockaddr_storage ss;
	struct io_addr dst;
	uint8_t buf[2048], exp[PLEN];
	unsigned int sent = 0, got = 0, bad = 0;
	int fd, len, rcv = 4 << 20;

	memset(seen, 0, sizeof(seen));
	assert_int_equal(io_addr_parse(&dst, ip, PORT), 0);
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	len = io_addr_to_sockaddr(&dst, family, &ss);
	assert_true(len > 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&ss, (socklen_t)len), 0);
	while (got < COUNT) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;
		uint32_t seq;

		while (sent < COUNT && sent - got < WINDOW) {
			fill(buf, sent);
			assert_int_equal(send(fd, buf, PLEN, 0), PLEN);
			sent++;
		}
		if (poll(&p, 1, 3000) != 1)
			break; /* lost */
		r = recv(fd, buf, sizeof(buf), 0);
		assert_int_equal(r, PLEN);
		memcpy(&seq, buf + 4, 4);
		assert_true(seq < COUNT);
		fill(exp, seq);
		if (memcmp(exp, buf, PLEN) || seen[seq])
			bad++;
		seen[seq] = 1;
		got++;
	}
	close(fd);
	assert_int_equal(bad, 0);
	return got;
}

static engine_filter_fn g_filter;
static void *g_filter_arg;

static struct engine *start_server_map(enum io_mode mode, unsigned int workers, int xskmap_fd)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = { PORT };
	int r;

	engine_opts_default(&o);
	o.mode = mode;
	o.workers = workers;
	o.ports = ports;
	o.nports = 1;
	o.ifname = "eth0";
	o.xskmap_fd = xskmap_fd;
	o.filter = g_filter;
	o.filter_arg = g_filter_arg;
	enter(ns_a);
	r = engine_new(&eng, &o);
	if (r) {
		enter(NULL);
		fail_msg("engine_new(%s): %s", io_mode_name(mode), strerror(-r));
	}
	assert_int_equal(engine_register(eng, PORT, echo, NULL), 0);
	assert_int_equal(engine_register(eng, PORT, echo, NULL), -EEXIST);
	assert_int_equal(engine_register(eng, 9, echo, NULL), -EINVAL);
	assert_int_equal(engine_start(eng), 0);
	return eng;
}

static struct engine *start_server(enum io_mode mode, unsigned int workers)
{
	return start_server_map(mode, workers, -1);
}

static void totals(struct engine *eng, struct engine_stats *t)
{
	struct engine_stats s;
	unsigned int i;
	size_t k;

	memset(t, 0, sizeof(*t));
	for (i = 0; i < engine_workers(eng); i++) {
		assert_int_equal(engine_stats_get(eng, i, &s), 0);
		for (k = 0; k < sizeof(s) / 8; k++)
			((uint64_t *)t)[k] += ((uint64_t *)&s)[k];
	}
}

static void echo_both_families(enum io_mode mode, unsigned int workers, int xskmap_fd)
{
	struct engine_stats t;
	struct engine *eng;
	unsigned int got4, got6;

	if (!tu_is_root())
		skip();
	eng = start_server_map(mode, workers, xskmap_fd);
	enter(ns_b);
	got4 = run_client(AF_INET, "192.0.2.1");
	got6 = run_client(AF_INET6, "2001:db8::1");
	enter(NULL);
	engine_stop(eng);
	totals(eng, &t);
	print_message("%s: v4 %u/%u v6 %u/%u echoed; rx %llu tx %llu (kernel path tx %llu rx %llu)"
		      " batches %llu\n",
		      io_mode_name(mode), got4, COUNT, got6, COUNT, (unsigned long long)t.io.rx_pkts,
		      (unsigned long long)t.io.tx_pkts, (unsigned long long)t.io.tx_kernel,
		      (unsigned long long)t.io.rx_kernel, (unsigned long long)t.io.rx_batches);
	assert_int_equal(got4, COUNT);
	assert_int_equal(got6, COUNT);
	assert_int_equal(t.io.rx_pkts + t.io.rx_kernel, 2 * COUNT);
	assert_int_equal(t.io.tx_pkts, 2 * COUNT);
	assert_int_equal(t.io.tx_drop_error + t.io.tx_drop_nobuf, 0);
	assert_int_equal(t.drop_no_handler + t.drop_filter, 0);
	if (mode == IO_MODE_XDP) {
		/* Every request came through AF_XDP, and the replies went out
		 * through it except while a neighbour was not yet known. */
		assert_int_equal(t.io.rx_kernel, 0);
		assert_true(t.io.tx_kernel < 2 * COUNT / 10);
	}
	engine_free(eng);
}

static void test_echo_uring(void **state)
{
	echo_both_families(IO_MODE_URING, 2, -1);
}

static void test_echo_xdp(void **state)
{
	echo_both_families(IO_MODE_XDP, 1, -1);
}

/* The same echo steered by weft's own XDP program (userspace/xdp): the
 * engine only binds its socket into the program's XSKMAP. */
static void test_echo_xdp_weft_prog(void **state)
{
	struct wxdp_opts xo;
	struct wxdp *x = NULL;
	uint64_t c[WXDP_STAT__MAX];
	int r;

	memset(&xo, 0, sizeof(xo));
	xo.ifname = "eth0";
	xo.pin_root = "";
	enter(ns_a);
	r = wxdp_new(&x, &xo);
	enter(NULL);
	assert_int_equal(r, 0);
	{
		/* The client is one unvalidated source sending as fast as it
		 * can: this test is about steering, not budgets, so the global
		 * budgets of unvalidated sources are off (an idle machine sent
		 * past the QUIC one). */
		struct wxdp_config cfg;

		assert_int_equal(wxdp_config_get(x, &cfg), 0);
		cfg.unval_quic.pps = cfg.unval_initial.pps = cfg.unval_dht.pps = 0;
		cfg.unval_stun.pps = 0;
		assert_int_equal(wxdp_config_set(x, &cfg), 0);
	}
	echo_both_families(IO_MODE_XDP, 1, wxdp_fd(x, WXDP_FD_XSKS));
	assert_int_equal(wxdp_stats_read(x, c), 0);
	print_message("weft XDP program: rx %llu redirected %llu passed (not weft) %llu\n",
		      (unsigned long long)c[WXDP_STAT_RX], (unsigned long long)c[WXDP_STAT_REDIRECT],
		      (unsigned long long)c[WXDP_STAT_PASS_NOT_WEFT]);
	/* wxdp detaches by ifindex: free it in its own namespace. */
	enter(ns_a);
	wxdp_free(x);
	enter(NULL);
	assert_int_equal(c[WXDP_STAT_REDIRECT], 2 * COUNT);
}

/* ---- software policing in uring mode (the lead's wiring, in small) ---- */

static int police(void *arg, const struct engine_pkt *pkt, uint64_t now_ns)
{
	struct policer_pkt pp;

	memset(&pp, 0, sizeof(pp));
	pp.family = (uint8_t)pkt->src.family;
	memcpy(pp.src, pkt->src.addr, 16);
	pp.dport = pkt->dst.port;
	pp.payload = pkt->data;
	pp.len = pkt->len;
	pp.now_ns = now_ns;
	return policer_check(arg, &pp) != WXDP_STAT_REDIRECT;
}

static void test_uring_policer(void **state)
{
	struct policer_opts po = { .seed = 1 };
	struct wxdp_config pcfg;
	struct policer *pol = NULL;
	struct wxdp_ban ban;
	struct engine_stats t;
	struct engine *eng;
	struct sockaddr_in6 d = { .sin6_family = AF_INET6, .sin6_port = htons(PORT) };
	uint8_t buf[PLEN];
	unsigned int got4, i;
	int fd;

	if (!tu_is_root())
		skip();
	/* One unvalidated client at full speed: the global budgets of
	 * unvalidated sources are not what this test is about (off). */
	wxdp_config_default(&pcfg);
	pcfg.unval_quic.pps = pcfg.unval_initial.pps = pcfg.unval_dht.pps = 0;
	pcfg.unval_stun.pps = 0;
	po.config = &pcfg;
	assert_int_equal(policer_new(&pol, &po), 0);
	assert_int_equal(wxdp_cidr_parse("2001:db8::2/128", &ban), 0);
	assert_int_equal(policer_ban_add(pol, &ban), 0);
	g_filter = police;
	g_filter_arg = pol;
	eng = start_server(IO_MODE_URING, 1);
	g_filter = NULL;
	g_filter_arg = NULL;
	enter(ns_b);
	got4 = run_client(AF_INET, "192.0.2.1");
	/* The banned IPv6 source: 100 datagrams, none answered. */
	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	inet_pton(AF_INET6, "2001:db8::1", &d.sin6_addr);
	for (i = 0; i < 100; i++) {
		fill(buf, i);
		assert_int_equal(sendto(fd, buf, PLEN, 0, (struct sockaddr *)&d, sizeof(d)), PLEN);
	}
	enter(NULL);
	for (i = 0; i < 200; i++) {
		totals(eng, &t);
		if (t.drop_filter >= 100)
			break;
		usleep(5000);
	}
	{
		struct pollfd p = { .fd = fd, .events = POLLIN };

		assert_int_equal(poll(&p, 1, 100), 0);
	}
	close(fd);
	engine_stop(eng);
	totals(eng, &t);
	assert_int_equal(got4, COUNT);
	assert_int_equal(t.drop_filter, 100);
	assert_int_equal(t.io.rx_pkts, COUNT + 100);
	assert_int_equal(t.io.tx_pkts, COUNT);
	engine_free(eng);
	policer_free(pol);
}

/* ---- unresolved neighbour ---- */

struct burst {
	struct io_addr dst;
	unsigned int n, first;
};

static void send_burst(struct engine_worker *w, void *arg)
{
	struct burst *b = arg;
	uint8_t buf[64];
	unsigned int i;

	for (i = 0; i < b->n; i++) {
		uint32_t seq = b->first + i;

		memset(buf, 0, sizeof(buf));
		memcpy(buf, &seq, 4);
		assert_int_equal(engine_send(w, &b->dst, NULL, buf, sizeof(buf)), 0);
	}
	engine_flush(w);
}

static unsigned int recv_all(int fd, unsigned int want, int timeout_ms)
{
	unsigned int got = 0;
	uint8_t buf[128];

	while (got < want) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, timeout_ms) != 1)
			break;
		if (recv(fd, buf, sizeof(buf), 0) == 64)
			got++;
	}
	return got;
}

static void unresolved(int family, const char *peer)
{
	struct sockaddr_storage ss;
	struct engine_stats t0, t1, t2;
	struct engine *eng;
	struct burst b;
	struct io_addr any;
	int fd, len, i;
	unsigned int got;

	if (!tu_is_root())
		skip();
	eng = start_server(IO_MODE_XDP, 1);
	/* B listens on 5555. */
	enter(ns_b);
	assert_int_equal(io_addr_parse(&any, family == AF_INET ? "0.0.0.0" : "::", 5555), 0);
	fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	len = io_addr_to_sockaddr(&any, family, &ss);
	assert_int_equal(bind(fd, (struct sockaddr *)&ss, (socklen_t)len), 0);
	enter(NULL);
	/* A forgets B (the permanent entries of setup too): unresolved. */
	assert_int_equal(sh("ip -n %s neigh flush dev eth0 nud all; ip -n %s neigh flush dev eth0 nud all",
			    ns_a, ns_b),
			 0);
	totals(eng, &t0);
	assert_int_equal(io_addr_parse(&b.dst, peer, 5555), 0);
	b.n = 1;
	b.first = 0;
	assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
	got = recv_all(fd, 1, 3000);
	assert_int_equal(got, 1);
	totals(eng, &t1);
	assert_int_equal(t1.io.tx_kernel - t0.io.tx_kernel, 1); /* handed over, counted */
	/* The kernel resolved B; the netlink event reaches the worker and the
	 * next datagrams leave through AF_XDP. */
	for (i = 0; i < 100; i++) {
		b.n = 10;
		b.first = 1 + (unsigned int)i * 10;
		assert_int_equal(engine_call_sync(eng, 0, send_burst, &b, 2000), 0);
		got = recv_all(fd, 10, 3000);
		assert_int_equal(got, 10);
		totals(eng, &t2);
		if (t2.io.tx_pkts - t2.io.tx_kernel > t1.io.tx_pkts - t1.io.tx_kernel)
			break;
		usleep(20 * 1000);
	}
	print_message("unresolved %s: kernel path %llu, AF_XDP %llu after %d rounds, neigh events %llu\n",
		      peer, (unsigned long long)(t2.io.tx_kernel - t0.io.tx_kernel),
		      (unsigned long long)(t2.io.tx_pkts - t2.io.tx_kernel - (t0.io.tx_pkts - t0.io.tx_kernel)),
		      i + 1, (unsigned long long)t2.io.neigh_updates);
	assert_true(i < 100);
	assert_int_equal(t2.io.tx_drop_error + t2.io.tx_drop_nobuf, 0);
	close(fd);
	engine_free(eng);
}

static void test_xdp_unresolved_v4(void **state)
{
	unresolved(AF_INET, "192.0.2.2");
}

static void test_xdp_unresolved_v6(void **state)
{
	unresolved(AF_INET6, "2001:db8::2");
}

static void test_xdp_errors(void **state)
{
	struct engine_opts o;
	struct engine *eng = NULL;
	uint16_t ports[1] = { PORT };

	if (!tu_is_root())
		skip();
	engine_opts_default(&o);
	o.mode = IO_MODE_XDP;
	o.ports = ports;
	o.nports = 1;
	o.ifname = "nosuchif0";
	assert_int_equal(engine_new(&eng, &o), -ENODEV);
	o.ifname = NULL;
	assert_int_equal(engine_new(&eng, &o), -EINVAL);
	/* A second engine on the same interface: the program slot is taken. */
	{
		struct engine *e1 = start_server(IO_MODE_XDP, 1);

		o.ifname = "eth0";
		assert_int_equal(engine_new(&eng, &o), -EBUSY);
		enter(NULL);
		engine_free(e1);
	}
	assert_null(eng);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_echo_uring),
		cmocka_unit_test(test_echo_xdp),
		cmocka_unit_test(test_echo_xdp_weft_prog),
		cmocka_unit_test(test_uring_policer),
		cmocka_unit_test(test_xdp_unresolved_v4),
		cmocka_unit_test(test_xdp_unresolved_v6),
		cmocka_unit_test(test_xdp_errors),
	};

	if (!tu_is_root()) {
		printf("SKIP: test_engine_echo needs root (network namespaces, AF_XDP)\n");
		return 77;
	}
	return cmocka_run_group_tests_name("engine_echo", tests, setup, teardown);
}
