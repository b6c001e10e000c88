// SPDX-License-Identifier: MIT
/*
 * Packet I/O benchmark on a veth pair between two network namespaces (made
 * and removed here): receive and transmit packets/s on one core for
 *   - a plain recvmmsg loop (the receive reference) and sendmmsg with
 *     UDP_SEGMENT (the transmit reference: 64 datagrams per send, GSO, as
 *     the engine's io_uring GSO path sends them; plain sendmmsg without GSO
 *     is measured too, as the reference of the engine's no-GSO path),
 *   - the engine over io_uring (transmit with and without UDP GSO: GSO
 *     folds a burst of 64 datagrams into one send, so its tx figure counts
 *     datagrams handed to the kernel, segmented later),
 *   - the engine over AF_XDP (copy mode on veth, built-in steering program),
 * printed as one table with ratios to the reference, and written as one
 * JSON result (bench/benchlib.h, docs/BENCH.md). 64-byte UDP payloads.
 *
 * Same work (docs/BENCH.md): every row carries the same 64-byte UDP
 * payloads to the same port over the same veth pair, from the same source,
 * with the measured path on the same CPU, in the same run; the transmit
 * reference batches and segments exactly as the engine does (64 datagrams
 * per send with UDP_SEGMENT); every ratio is between two figures of this
 * run, never a stored one.
 *
 * "Per core" means everything the receiving (or sending) host spends on the
 * packets runs on CPU 1: the application thread and the kernel's receive
 * work. On veth that kernel work (the UDP stack for a socket, or the XDP
 * program and the copy into the UMEM for AF_XDP) normally runs in softirq on
 * the *sender's* CPU, which would hide it; so both veth ends get GRO (veth
 * then receives through NAPI) with threaded NAPI, and the NAPI thread of the
 * measured end is pinned to CPU 1, the other end's to CPU 0. The source on
 * CPU 0 sends one datagram per frame (UDP segmentation offload is off on its
 * veth, so the kernel segments on CPU 0 and the receiver never gets a
 * 64-datagram GSO skb for the price of one). "offered pps" shows what the
 * source managed: a path whose rx is below it was the bottleneck, which is
 * what a per-core ceiling needs.
 * Needs root. Usage: bench_io [SECONDS [PATH]]   (default 3 s, all paths)
 */
#include <dirent.h>
#include <errno.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <net/if.h>

#include "weft/engine.h"

#include "benchlib.h"

#define PORT 4433
#define PAYLOAD 64
#define BATCH 64
/* reference, io_uring with GSO, io_uring without GSO, AF_XDP */
#define NPATHS 4
/* The paced receive load every path carries without loss. */
#define PACED_PPS 200000.0

static struct bench_veth veth;
static int secs = 3;
static int xdp_source_failed;
static double rx_busy[4][2], tx_busy[4][2]; /* CPU 0 / CPU 1 busy % per path */
static double paced_busy[4];                 /* CPU 1 busy % at the paced load */

#define IF_A BENCH_IF_A
#define IF_B BENCH_IF_B
#define ADDR_A BENCH_ADDR_A
#define ADDR_B BENCH_ADDR_B

static int enter(int end)
{
	return bench_veth_enter(&veth, end);
}

static void pin_all_napi(int measured_is_a)
{
	bench_pin_napi(IF_A, measured_is_a ? 1 : 0);
	bench_pin_napi(IF_B, measured_is_a ? 0 : 1);
}

static int udp_sock(int bind_port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), sz = 8 << 20;

	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (bind_port) {
		a.sin_port = htons((uint16_t)bind_port);
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)))
			perror("bind");
	}
	return fd;
}

/* ---- flood source (namespace B, CPU 0) ---- */

struct flood {
	volatile int stop;
	uint64_t sent;
	const char *dst;
	int cpu;
	int gso;
	int xdp;      /* generate with benchlib's live-frame source (lf) */
	int xdp_fail; /* set when the kernel refused that */
	struct bench_lfsrc lf;
	double pps;     /* > 0: paced socket source at this rate */
};

/* The receive source: benchlib's live-frame source through veB to veA,
 * whose NAPI receives each frame like a NIC driver receives a DMA buffer.
 * f->lf.stop and f->lf.sent are its stop flag and counter. */
static int xdp_flood(struct flood *f)
{
	static uint8_t frame[256], payload[PAYLOAD];
	struct io_addr sa, da;
	int len;

	io_addr_parse(&sa, ADDR_B, 40000);
	io_addr_parse(&da, ADDR_A, PORT);
	len = io_hdr_build(frame, sizeof(frame), bench_mac_b, bench_mac_a, &sa, &da, 1, payload,
			   PAYLOAD);
	if (len < 0)
		return -1;
	f->lf.frame = frame;
	f->lf.len = (unsigned int)len;
	f->lf.out_ifindex = (int)if_nametoindex(IF_B);
	return bench_lfsrc_run(&f->lf) ? -1 : 0;
}

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	static uint8_t payload[PAYLOAD];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	int fd, i;

	bench_pin(f->cpu);
	if (f->xdp) {
		if (xdp_flood(f) == 0)
			return NULL;
		f->xdp_fail = 1; /* fall through to the socket source */
	}
	fd = udp_sock(0);
	inet_pton(AF_INET, f->dst, &d.sin_addr);
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < BATCH; i++) {
		iov[i].iov_base = payload;
		iov[i].iov_len = PAYLOAD;
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &d;
		mm[i].msg_hdr.msg_namelen = sizeof(d);
	}
	if (f->pps > 0) {
		/* Paced: 16 datagrams per sendmmsg at absolute deadlines. */
		double next = bench_now(), gap = 16.0 / f->pps;

		while (!f->stop) {
			struct timespec ts;
			int r = sendmmsg(fd, mm, 16, 0);

			if (r > 0)
				__atomic_fetch_add(&f->sent, (uint64_t)r, __ATOMIC_RELAXED);
			next += gap;
			ts.tv_sec = (time_t)next;
			ts.tv_nsec = (long)((next - (double)ts.tv_sec) * 1e9);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
		close(fd);
		return NULL;
	}
	if (f->gso) {
		/* One sendmsg carries BATCH datagrams (UDP GSO): the offered
		 * load costs the source far less than one syscall each. */
		int seg = PAYLOAD;

		setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &seg, sizeof(seg));
		mm[0].msg_hdr.msg_iov = iov;
		mm[0].msg_hdr.msg_iovlen = BATCH;
		while (!f->stop) {
			int r = sendmmsg(fd, mm, 1, 0);

			if (r > 0)
				__atomic_fetch_add(&f->sent, (uint64_t)BATCH, __ATOMIC_RELAXED);
		}
		close(fd);
		return NULL;
	}
	while (!f->stop) {
		int r = sendmmsg(fd, mm, BATCH, 0);

		if (r > 0)
			__atomic_fetch_add(&f->sent, (uint64_t)r, __ATOMIC_RELAXED);
	}
	close(fd);
	return NULL;
}

/* ---- receive side ---- */

struct rxref {
	volatile int stop;
	uint64_t got;
};

static void *recvmmsg_main(void *arg)
{
	struct rxref *r = arg;
	static uint8_t bufs[BATCH][2048];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_in from[BATCH]; /* a server needs the source to reply */
	struct timeval tv = { 0, 100000 };
	int fd, i;

	bench_pin(1);
	fd = udp_sock(PORT);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
		mm[i].msg_hdr.msg_name = &from[i];
		mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	while (!r->stop) {
		int n = recvmmsg(fd, mm, BATCH, MSG_WAITFORONE, NULL);

		for (i = 0; i < n; i++)
			mm[i].msg_hdr.msg_namelen = sizeof(from[i]);
		if (n > 0)
			__atomic_fetch_add(&r->got, (uint64_t)n, __ATOMIC_RELAXED);
	}
	close(fd);
	return NULL;
}

static void count_handler(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
}

static uint64_t eng_rx(struct engine *e)
{
	struct engine_stats s;

	engine_stats_get(e, 0, &s);
	return s.io.rx_pkts;
}

static uint64_t eng_tx(struct engine *e)
{
	struct engine_stats s;

	engine_stats_get(e, 0, &s);
	return s.io.tx_pkts - s.io.tx_kernel;
}

static struct engine *mk_engine(enum io_mode mode, int gso)
{
	static const int cpus[1] = { 1 };
	static const uint16_t ports[1] = { PORT };
	struct engine_opts o;
	struct engine *e = NULL;
	int r;

	engine_opts_default(&o);
	o.mode = mode;
	o.ifname = IF_A;
	o.ports = ports;
	o.nports = 1;
	o.pin_cpus = 1;
	o.cpus = cpus;
	o.uring_gro = 0;
	o.uring_gso = gso;
	r = engine_new(&e, &o);
	if (r) {
		fprintf(stderr, "engine_new(%s): %s\n", io_mode_name(mode), strerror(-r));
		return NULL;
	}
	engine_register(e, PORT, count_handler, NULL);
	return e;
}

/* Receive pps of one path: flood from B for secs, count in A. */
static double bench_rx(int which, double paced, double *sent_pps)
{
	struct flood f = { .dst = ADDR_A, .cpu = 0, .gso = 1, .xdp = paced <= 0, .pps = paced };
	struct rxref ref = { 0 };
	struct engine *e = NULL;
	pthread_t ft, rt;
	uint64_t c0, c1, s0, s1;
	double t0, t1;
	struct bench_cpu cs0, cs1;

	enter('A');
	if (which == 0) {
		pthread_create(&rt, NULL, recvmmsg_main, &ref);
	} else {
		e = mk_engine(which == 3 ? IO_MODE_XDP : IO_MODE_URING, which == 1);
		if (!e || engine_start(e)) {
			enter(0);
			engine_free(e);
			return -1;
		}
	}
	pin_all_napi(1);
	enter('B');
	pthread_create(&ft, NULL, flood_main, &f);
	enter(0);
	usleep(500 * 1000); /* warm up */
	c0 = which ? eng_rx(e) : __atomic_load_n(&ref.got, __ATOMIC_RELAXED);
	s0 = __atomic_load_n(&f.sent, __ATOMIC_RELAXED) + __atomic_load_n(&f.lf.sent, __ATOMIC_RELAXED);
	t0 = bench_now();
	bench_cpu_snap(&cs0);
	sleep((unsigned int)secs);
	bench_cpu_snap(&cs1);
	c1 = which ? eng_rx(e) : __atomic_load_n(&ref.got, __ATOMIC_RELAXED);
	s1 = __atomic_load_n(&f.sent, __ATOMIC_RELAXED) + __atomic_load_n(&f.lf.sent, __ATOMIC_RELAXED);
	t1 = bench_now();
	f.stop = 1;
	f.lf.stop = 1;
	pthread_join(ft, NULL);
	if (which == 0) {
		ref.stop = 1;
		pthread_join(rt, NULL);
	}
	engine_free(e);
	if (f.xdp_fail)
		xdp_source_failed = 1;
	if (paced > 0) {
		paced_busy[which] = bench_cpu_busy(&cs0, &cs1, 1);
	} else {
		rx_busy[which][0] = bench_cpu_busy(&cs0, &cs1, 0);
		rx_busy[which][1] = bench_cpu_busy(&cs0, &cs1, 1);
	}
	*sent_pps = (double)(s1 - s0) / (t1 - t0);
	return (double)(c1 - c0) / (t1 - t0);
}

/* ---- transmit side ---- */

struct txloop {
	volatile int *stop;
	struct io_addr dst;
};

static void tx_loop(struct engine_worker *w, void *arg)
{
	struct txloop *t = arg;
	static uint8_t payload[PAYLOAD];
	int i;

	while (!*t->stop) {
		for (i = 0; i < BATCH; i++)
			engine_send(w, &t->dst, NULL, payload, PAYLOAD);
		engine_flush(w);
	}
}

/* Transmit pps of one path; which 0 is sendmmsg, with UDP_SEGMENT if ref_gso. */
static double bench_tx(int which, int ref_gso, double busy[2])
{
	volatile int stop = 0;
	struct flood f = { .dst = ADDR_B, .cpu = 1, .gso = ref_gso };
	struct txloop tl;
	struct engine *e = NULL;
	pthread_t ft;
	uint64_t c0, c1;
	double t0, t1;
	struct bench_cpu cs0, cs1;
	int sink;

	/* The sink in B: a bound socket never read (the kernel drops when
	 * its buffer is full), so B costs no CPU of its own. */
	enter('B');
	sink = udp_sock(PORT);
	enter('A');
	io_addr_parse(&tl.dst, ADDR_B, PORT);
	tl.stop = &stop;
	if (which == 0) {
		pthread_create(&ft, NULL, flood_main, &f);
	} else {
		e = mk_engine(which == 3 ? IO_MODE_XDP : IO_MODE_URING, which == 1);
		if (!e || engine_start(e) || engine_call(e, 0, tx_loop, &tl)) {
			enter(0);
			engine_free(e);
			close(sink);
			return -1;
		}
	}
	enter(0);
	pin_all_napi(0);
	usleep(500 * 1000);
	c0 = which ? eng_tx(e) : __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t0 = bench_now();
	bench_cpu_snap(&cs0);
	sleep((unsigned int)secs);
	bench_cpu_snap(&cs1);
	c1 = which ? eng_tx(e) : __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t1 = bench_now();
	stop = 1;
	f.stop = 1;
	if (which == 0)
		pthread_join(ft, NULL);
	engine_free(e);
	close(sink);
	busy[0] = bench_cpu_busy(&cs0, &cs1, 0);
	busy[1] = bench_cpu_busy(&cs0, &cs1, 1);
	return (double)(c1 - c0) / (t1 - t0);
}

static void cleanup(void)
{
	bench_veth_free(&veth);
}

/* Figures and ratios of one path, into the JSON result. */
static void record(struct bench_result *res, const char *id, const char *rxname, const char *txname,
		   double rx, double sent, const double rxb[2], double prx, double pbusy, double tx,
		   const double txb[2])
{
	char fid[64], label[128];
	const char *name = rxname;

#define FIG(suffix, text, value, unit)                                                   \
	do {                                                                             \
		snprintf(fid, sizeof(fid), "%s.%s", id, suffix);                         \
		snprintf(label, sizeof(label), "%s: %s", name, text);                    \
		bench_result_figure(res, fid, label, value, unit);                       \
	} while (0)
	FIG("rx_pps", "receive under flood", rx, "pps");
	FIG("rx_offered_pps", "receive, offered by the source", sent, "pps");
	FIG("rx_cpu0_busy", "receive, CPU 0 busy", rxb[0], "%");
	FIG("rx_cpu1_busy", "receive, CPU 1 busy", rxb[1], "%");
	FIG("paced_rx_pps", "paced receive", prx, "pps");
	FIG("paced_cpu1_busy", "paced receive, CPU 1 busy", pbusy, "%");
	if (prx > 0 && pbusy > 0)
		FIG("paced_ns_per_pkt", "paced receive, CPU 1 ns per packet", pbusy / 100.0 * 1e9 / prx,
		    "ns/packet");
	name = txname;
	FIG("tx_pps", "transmit", tx, "pps");
	FIG("tx_cpu0_busy", "transmit, CPU 0 busy", txb[0], "%");
	FIG("tx_cpu1_busy", "transmit, CPU 1 busy", txb[1], "%");
#undef FIG
}

int main(int argc, char **argv)
{
	static const char *const names[NPATHS] = { "recvmmsg / sendmmsg+GSO", "engine io_uring, GSO",
						   "engine io_uring, no GSO", "engine AF_XDP (copy, veth)" };
	/* JSON ids of the paths; the transmit reference of row 0 is sendmmsg with UDP_SEGMENT. */
	static const char *const ids[NPATHS] = { "ref", "uring_gso", "uring", "afxdp" };
	double rx[NPATHS], tx[NPATHS], sent[NPATHS] = { 0 }, prx[NPATHS] = { 0 }, psent[NPATHS] = { 0 };
	double tx_plain = 0, tx_plain_busy[2] = { 0 };
	struct bench_result *res = NULL;
	char id[64], label[160];
	int i, only = -1, err;

	if (argc > 1)
		secs = atoi(argv[1]) > 0 ? atoi(argv[1]) : 3;
	/* A second argument runs one path only (0..3, for profiling). */
	if (argc > 2)
		only = atoi(argv[2]);
	if (geteuid() != 0) {
		printf("SKIP: bench_io needs root (network namespaces, AF_XDP)\n");
		return 77;
	}
	err = bench_result_new(&res, "io", argc, argv);
	if (err) {
		fprintf(stderr, "bench_result_new: %s\n", strerror(-err));
		return 1;
	}
	bench_result_same_work(res, "same 64-byte UDP payloads to the same port over the same veth "
				    "pair from the same source, measured path and its NAPI thread on "
				    "CPU 1, same run; the transmit reference batches and segments as "
				    "the engine does (64 datagrams per send with UDP_SEGMENT)");
	atexit(cleanup);
	if (bench_veth_new(&veth, "io")) {
		bench_result_free(res);
		return 1;
	}
	for (i = 0; i < NPATHS; i++)
		rx[i] = only < 0 || only == i ? bench_rx(i, 0, &sent[i]) : 0;
	for (i = 0; i < NPATHS; i++)
		prx[i] = only < 0 || only == i ? bench_rx(i, PACED_PPS, &psent[i]) : 0;
	for (i = 0; i < NPATHS; i++)
		tx[i] = only < 0 || only == i ? bench_tx(i, 1, tx_busy[i]) : 0;
	if (only < 0 || only == 0)
		tx_plain = bench_tx(0, 0, tx_plain_busy);
	printf("veth, %d-byte UDP payloads, %d s per run, %ld online CPUs; measured path and its NAPI thread on CPU 1\n",
	       PAYLOAD, secs, sysconf(_SC_NPROCESSORS_ONLN));
	if (xdp_source_failed)
		printf("note: the kernel refused XDP live-frame generation; the receive source was "
		       "a UDP GSO socket (its skbs make veA's XDP path pay a copy)\n");
	printf("%-28s %11s %8s %12s %9s | %11s %8s %9s\n", "path", "rx pps", "ratio", "offered",
	       "cpu0/cpu1", "tx pps", "ratio", "cpu0/cpu1");
	for (i = 0; i < NPATHS; i++)
		printf("%-28s %11.0f %7.2fx %12.0f %4.0f/%3.0f%% | %11.0f %7.2fx %4.0f/%3.0f%%\n", names[i],
		       rx[i], rx[0] > 0 ? rx[i] / rx[0] : 0, sent[i], rx_busy[i][0], rx_busy[i][1], tx[i],
		       tx[0] > 0 ? tx[i] / tx[0] : 0, tx_busy[i][0], tx_busy[i][1]);
	printf("%-28s %11s %8s %12s %9s | %11.0f %7.2fx %4.0f/%3.0f%%\n", "sendmmsg, no GSO", "", "", "", "",
	       tx_plain, tx[0] > 0 ? tx_plain / tx[0] : 0, tx_plain_busy[0], tx_plain_busy[1]);
	printf("(tx ratios are to sendmmsg with UDP_SEGMENT, 64 datagrams per send like the engine's GSO path;\n"
	       " engine io_uring no GSO vs plain sendmmsg: %.2fx)\n",
	       tx_plain > 0 ? tx[2] / tx_plain : 0);
	printf("\nreceive cost at a paced %.0f pps from a socket source (skbs: veA's XDP pays a copy "
	       "per packet here that a NIC driver does not):\n",
	       PACED_PPS);
	printf("%-28s %11s %11s %9s %12s %14s %9s\n", "path", "offered", "rx pps", "cpu1",
	       "ns/packet", "pps per core", "ratio");
	for (i = 0; i < NPATHS; i++) {
		double ns = prx[i] > 0 ? paced_busy[i] / 100.0 * 1e9 / prx[i] : 0;
		double ns0 = prx[0] > 0 ? paced_busy[0] / 100.0 * 1e9 / prx[0] : 0;

		printf("%-28s %11.0f %11.0f %8.1f%% %12.0f %14.0f %8.2fx\n", names[i], psent[i], prx[i],
		       paced_busy[i], ns,
		       ns > 0 ? 1e9 / ns : 0, ns > 0 ? ns0 / ns : 0);
	}

	bench_result_param(res, "payload_bytes", PAYLOAD);
	bench_result_param(res, "seconds_per_measurement", secs);
	bench_result_param(res, "batch", BATCH);
	bench_result_param(res, "paced_pps", PACED_PPS);
	bench_result_param(res, "only_path", only);
	for (i = 0; i < NPATHS; i++)
		if (only < 0 || only == i)
			record(res, ids[i], i ? names[i] : "recvmmsg loop",
			       i ? names[i] : "sendmmsg with UDP_SEGMENT", rx[i], sent[i], rx_busy[i], prx[i],
			       paced_busy[i], tx[i], tx_busy[i]);
	if (only < 0 || only == 0) {
		bench_result_figure(res, "sendmmsg.tx_pps", "sendmmsg, no GSO: transmit", tx_plain, "pps");
		bench_result_figure(res, "sendmmsg.tx_cpu1_busy", "sendmmsg, no GSO: transmit, CPU 1 busy",
				    tx_plain_busy[1], "%");
	}
	for (i = 1; i < NPATHS; i++) {
		char num[64], den[64];

		/* Goals from issue 17: io_uring receive >= 1.5x recvmmsg,
		 * transmit >= 1.2x sendmmsg with UDP_SEGMENT. */
		snprintf(id, sizeof(id), "%s.rx_vs_recvmmsg", ids[i]);
		snprintf(label, sizeof(label), "%s rx / recvmmsg rx", names[i]);
		snprintf(num, sizeof(num), "%s.rx_pps", ids[i]);
		bench_result_ratio(res, id, label, num, "ref.rx_pps", i == 3 ? 0 : 1.5);
		snprintf(id, sizeof(id), "%s.paced_cost_vs_recvmmsg", ids[i]);
		snprintf(label, sizeof(label), "recvmmsg ns/packet / %s ns/packet (paced)", names[i]);
		snprintf(den, sizeof(den), "%s.paced_ns_per_pkt", ids[i]);
		bench_result_ratio(res, id, label, "ref.paced_ns_per_pkt", den, 0);
		/* The no-GSO path is compared with plain sendmmsg below. */
		if (i == 2)
			continue;
		snprintf(id, sizeof(id), "%s.tx_vs_sendmmsg_gso", ids[i]);
		snprintf(label, sizeof(label), "%s tx / sendmmsg+UDP_SEGMENT tx", names[i]);
		snprintf(num, sizeof(num), "%s.tx_pps", ids[i]);
		bench_result_ratio(res, id, label, num, "ref.tx_pps", 1.2);
	}
	bench_result_ratio(res, "uring.tx_vs_sendmmsg", "engine io_uring, no GSO tx / plain sendmmsg tx",
			   "uring.tx_pps", "sendmmsg.tx_pps", 0);
	if (xdp_source_failed)
		bench_result_note(res, "the kernel refused XDP live-frame generation; the receive source "
				       "was a UDP GSO socket");
	return bench_result_finish(res);
}
