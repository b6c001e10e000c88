// SPDX-License-Identifier: MIT
/*
 * Packet I/O benchmark on a veth pair between two network namespaces (made
 * and removed here): receive and transmit packets/s on one core for
 *   - a plain recvmmsg / sendmmsg loop (the reference),
 *   - the engine over io_uring (transmit with and without UDP GSO: GSO
 *     folds a burst of 64 datagrams into one send, so its tx figure counts
 *     datagrams handed to the kernel, segmented later),
 *   - the engine over AF_XDP (copy mode on veth, built-in steering program),
 * printed as one table with ratios to the reference. 64-byte UDP payloads.
 * The flood source runs on CPU 0 (UDP GSO, 64 datagrams per send, so the
 * source is cheap), the path measured on CPU 1. On veth the kernel's
 * receive work (XDP, copy to UMEM, or the UDP stack) runs on the source's
 * CPU; "offered pps" shows what the source managed, and a path whose rx
 * equals it was not the bottleneck.
 * Needs root. Usage: bench_io [SECONDS]   (default 3)
 */
#include <errno.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "weft/engine.h"

#define PORT 4433
#define PAYLOAD 64
#define BATCH 64
/* reference, io_uring with GSO, io_uring without GSO, AF_XDP */
#define NPATHS 4

static char ns_a[32], ns_b[32];
static int orig_ns = -1;
static int secs = 3;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[768];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return system(cmd);
}

static int enter(const char *ns)
{
	char path[128];
	int fd, r;

	if (!ns)
		return setns(orig_ns, CLONE_NEWNET);
	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	r = setns(fd, CLONE_NEWNET);
	close(fd);
	return r;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
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
};

static void *flood_main(void *arg)
{
	struct flood *f = arg;
	struct sockaddr_in d = { .sin_family = AF_INET, .sin_port = htons(PORT) };
	static uint8_t payload[PAYLOAD];
	struct mmsghdr mm[BATCH];
	struct iovec iov[BATCH];
	int fd, i;

	pin(f->cpu);
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
	if (f->gso) {
		/* One sendmsg carries BATCH datagrams (UDP GSO): the offered
		 * load costs the source far less than one syscall each. */
		uint16_t seg = PAYLOAD;
		int one = seg;

		(void)one;
		setsockopt(fd, IPPROTO_UDP, UDP_SEGMENT, &one, sizeof(one));
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
	struct timeval tv = { 0, 100000 };
	int fd, i;

	pin(1);
	fd = udp_sock(PORT);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	memset(mm, 0, sizeof(mm));
	for (i = 0; i < BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = sizeof(bufs[i]);
		mm[i].msg_hdr.msg_iov = &iov[i];
		mm[i].msg_hdr.msg_iovlen = 1;
	}
	while (!r->stop) {
		int n = recvmmsg(fd, mm, BATCH, 0, NULL);

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
	o.ifname = "eth0";
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
static double bench_rx(int which, double *sent_pps)
{
	struct flood f = { .dst = "192.0.2.1", .cpu = 0, .gso = 1 };
	struct rxref ref = { 0 };
	struct engine *e = NULL;
	pthread_t ft, rt;
	uint64_t c0, c1, s0, s1;
	double t0, t1;

	enter(ns_a);
	if (which == 0) {
		pthread_create(&rt, NULL, recvmmsg_main, &ref);
	} else {
		e = mk_engine(which == 3 ? IO_MODE_XDP : IO_MODE_URING, which == 1);
		if (!e || engine_start(e)) {
			enter(NULL);
			engine_free(e);
			return -1;
		}
	}
	enter(ns_b);
	pthread_create(&ft, NULL, flood_main, &f);
	enter(NULL);
	usleep(500 * 1000); /* warm up */
	c0 = which ? eng_rx(e) : __atomic_load_n(&ref.got, __ATOMIC_RELAXED);
	s0 = __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t0 = now_s();
	sleep((unsigned int)secs);
	c1 = which ? eng_rx(e) : __atomic_load_n(&ref.got, __ATOMIC_RELAXED);
	s1 = __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t1 = now_s();
	f.stop = 1;
	pthread_join(ft, NULL);
	if (which == 0) {
		ref.stop = 1;
		pthread_join(rt, NULL);
	}
	engine_free(e);
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

static double bench_tx(int which)
{
	volatile int stop = 0;
	struct flood f = { .dst = "192.0.2.2", .cpu = 1 };
	struct txloop tl;
	struct engine *e = NULL;
	pthread_t ft;
	uint64_t c0, c1;
	double t0, t1;
	int sink;

	/* The sink in B: a bound socket never read (the kernel drops when
	 * its buffer is full), so B costs no CPU of its own. */
	enter(ns_b);
	sink = udp_sock(PORT);
	enter(ns_a);
	io_addr_parse(&tl.dst, "192.0.2.2", PORT);
	tl.stop = &stop;
	if (which == 0) {
		pthread_create(&ft, NULL, flood_main, &f);
	} else {
		e = mk_engine(which == 3 ? IO_MODE_XDP : IO_MODE_URING, which == 1);
		if (!e || engine_start(e) || engine_call(e, 0, tx_loop, &tl)) {
			enter(NULL);
			engine_free(e);
			close(sink);
			return -1;
		}
	}
	enter(NULL);
	usleep(500 * 1000);
	c0 = which ? eng_tx(e) : __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t0 = now_s();
	sleep((unsigned int)secs);
	c1 = which ? eng_tx(e) : __atomic_load_n(&f.sent, __ATOMIC_RELAXED);
	t1 = now_s();
	stop = 1;
	f.stop = 1;
	if (which == 0)
		pthread_join(ft, NULL);
	engine_free(e);
	close(sink);
	return (double)(c1 - c0) / (t1 - t0);
}

static void cleanup(void)
{
	sh("ip netns del %s 2>/dev/null; ip netns del %s 2>/dev/null", ns_a, ns_b);
}

int main(int argc, char **argv)
{
	static const char *const names[NPATHS] = { "recvmmsg/sendmmsg loop", "engine io_uring, GSO",
						   "engine io_uring, no GSO", "engine AF_XDP (copy, veth)" };
	double rx[NPATHS], tx[NPATHS], sent[NPATHS];
	int i;

	if (argc > 1)
		secs = atoi(argv[1]) > 0 ? atoi(argv[1]) : 3;
	if (geteuid() != 0) {
		printf("SKIP: bench_io needs root (network namespaces, AF_XDP)\n");
		return 77;
	}
	snprintf(ns_a, sizeof(ns_a), "wbA%d", (int)getpid());
	snprintf(ns_b, sizeof(ns_b), "wbB%d", (int)getpid());
	orig_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	atexit(cleanup);
	if (sh("ip netns add %s && ip netns add %s && "
	       "ip link add eth0 netns %s type veth peer name eth0 netns %s && "
	       "ip -n %s addr add 192.0.2.1/24 dev eth0 && ip -n %s addr add 192.0.2.2/24 dev eth0 && "
	       "ip -n %s link set eth0 up && ip -n %s link set eth0 up && "
	       "ip -n %s link set lo up && ip -n %s link set lo up && "
	       "ip netns exec %s ping -c1 -W2 192.0.2.2 >/dev/null",
	       ns_a, ns_b, ns_a, ns_b, ns_a, ns_b, ns_a, ns_b, ns_a, ns_b, ns_a)) {
		fprintf(stderr, "netns setup failed\n");
		return 1;
	}
	for (i = 0; i < NPATHS; i++)
		rx[i] = bench_rx(i, &sent[i]);
	for (i = 0; i < NPATHS; i++)
		tx[i] = bench_tx(i);
	printf("veth, %d-byte UDP payloads, %d s per run, %ld online CPUs; measured path on CPU 1\n",
	       PAYLOAD, secs, sysconf(_SC_NPROCESSORS_ONLN));
	printf("%-28s %12s %9s %14s %12s %9s\n", "path", "rx pps", "rx ratio", "(offered pps)", "tx pps",
	       "tx ratio");
	for (i = 0; i < NPATHS; i++)
		printf("%-28s %12.0f %8.2fx %14.0f %12.0f %8.2fx\n", names[i], rx[i],
		       rx[0] > 0 ? rx[i] / rx[0] : 0, sent[i], tx[i], tx[0] > 0 ? tx[i] / tx[0] : 0);
	return 0;
}
