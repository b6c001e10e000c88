// SPDX-License-Identifier: MIT
/*
 * DHT benchmark (never run by make test; docs/BENCH.md, DHT.md). One run,
 * one JSON result (bench/benchlib.h):
 *
 * (a) KRPC replies per CPU-second of a running weftd (the real daemon
 *     path: io_uring engine, one packet worker, the node's DHT with its
 *     guard and policer; a child process started here) and of a libtorrent
 *     2.0.8 session (python3-libtorrent: a full session in its own
 *     process), under the same load generator, at three loads (WINDOWS
 *     queries kept outstanding); the ratio at the highest load. A third
 *     process, the kernel floor (floor_serve: canned replies, no DHT), is
 *     measured the same way at the highest load to show what the
 *     per-datagram UDP path alone costs here; a bound, not a contender.
 *
 *     Same work: both servers are long-running processes pinned whole to
 *     CPU 1 (every thread), bound to loopback, first taught the same 16
 *     helper nodes (so find_node / get_peers answers carry 8 nodes in
 *     both; the mean reply size is recorded to show it); the generator on
 *     CPU 0 sends the same query mix (ping, find_node, get_peers 1:1:1,
 *     random targets) from the same 4096 source addresses (127.16.0.0/12,
 *     chosen per datagram with IP_PKTINFO, each with its own node id), so
 *     neither server's per-source limit is what is measured; both servers'
 *     global limits are lifted (libtorrent: dht_block_ratelimit and
 *     dht_upload_rate_limit; weftd: xdp.unvalidated_dht_pps = 0; weftd's
 *     per-source budget, 50 q/s and burst 200, stays as shipped: 4096
 *     sources leave it above 200k q/s). CPU time is the whole process's
 *     (utime + stime of /proc/PID/stat: every thread, the daemon's timers
 *     and housekeeping included); the figure is replies per CPU-second.
 *
 * (b) Lookup latency and hop counts in a NNET-node weft network in this
 *     process (the DHT core on 127.0.0.1 sockets, one poll() thread,
 *     bootstrapped from node 0): find_node for the id of a random node and
 *     get_peers for infohashes announced beforehand, one lookup at a time,
 *     wall time from start to callback; p50 / p99, hops, queries, success.
 *
 * (c) As (a) at the highest load, on the veth pair of benchlib (root):
 *     weftd in xdp mode (AF_XDP; replies leave through the TX ring), weftd
 *     in uring mode, libtorrent, the floor and the AF_XDP floor (the
 *     floor's canned replies through the engine in xdp mode: what the
 *     AF_XDP path allows without a DHT), each alone in end A, the
 *     generator in end B; CPU counted also on the server's core outside
 *     the process: veA's NAPI thread and ksoftirqd/1 (part_c).
 *     BENCH_DHT_ONLY=weftd_xdp,weftd_uring,libtorrent,floor,floor_xdp (any
 *     of them) runs only those.
 *
 * Usage: bench_dht [SECONDS] [NNET] [PARTS]   (defaults 3 s per load, 200
 * and "abc"; WEFTD=path overrides the weftd next to build/bench/)
 *
 * This file: parts (a) and (c) (the load generator, the CPU accounting,
 * the rows and ratios), the in-process DHT nodes, main. The servers
 * (weftd, libtorrent, the floors) are started and stopped in dht_procs.c,
 * part (b) runs in dht_net.c; bench_dht.h is what they share.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "weft/bencode.h"
#include "weft/dht.h"

#include "bench_dht.h"
#include "benchlib.h"

#define WINDOW 256   /* most queries the generator keeps outstanding */
#define NSRC 4096    /* generator source addresses (127.16.0.0/12) */
static const unsigned int windows[] = { 8, 32, WINDOW }; /* loads of part (a) */
#define NWIN (sizeof(windows) / sizeof(windows[0]))
#define LOST_MS 500  /* an unanswered query is counted lost after this */

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

struct site site = { INADDR_LOOPBACK, 0x7f100000u, NULL };

int udp_socket_at(struct sockaddr_in *a, uint32_t addr)
{
	socklen_t al = sizeof(*a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sz = 4 << 20;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(addr);
	if (bind(fd, (struct sockaddr *)a, sizeof(*a)) ||
	    getsockname(fd, (struct sockaddr *)a, &al)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int udp_socket(struct sockaddr_in *a)
{
	return udp_socket_at(a, site.addr);
}

int server_socket(struct sockaddr_in *a)
{
	int fd;

	if (site.veth)
		bench_veth_enter(site.veth, 'A');
	fd = udp_socket(a);
	if (site.veth)
		bench_veth_enter(site.veth, 0);
	return fd;
}

static struct dht_limits open_limits(void)
{
	struct dht_limits l = {0};

	/* every source is 127.0.0.1: lift the per-source budget */
	l.budget_rate = 1000000;
	l.budget_burst = 1000000;
	return l;
}

/* ---------------- a set of DHT nodes served by one poll() loop ---------------- */

static int pnode_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		      socklen_t tolen)
{
	struct pnode *n = arg;

	return sendto(n->fd, buf, len, 0, to, tolen) < 0 ? -errno : 0;
}

int pnodes_new(struct pnode *n, int count, int seed_base)
{
	for (int i = 0; i < count; i++) {
		uint8_t seed[32] = {0};
		struct dht_opts o = {
		    .send = pnode_send, .send_arg = &n[i], .seed = seed, .limits = open_limits()};

		seed[0] = (uint8_t)i;
		seed[1] = (uint8_t)(i >> 8);
		seed[2] = (uint8_t)seed_base;
		n[i].fd = udp_socket(&n[i].addr);
		if (n[i].fd < 0 || dht_new(&n[i].dht, &o))
			return -1;
	}
	return 0;
}

void pnodes_free(struct pnode *n, int count)
{
	for (int i = 0; i < count; i++) {
		dht_free(n[i].dht);
		if (n[i].fd >= 0)
			close(n[i].fd);
	}
}

/* Serve the nodes for up to ms (or until *stop, or until *done). */
void pump(struct pnode *n, int count, uint64_t ms, atomic_int *stop, const int *done)
{
	uint64_t end = now_ms() + ms;
	struct pollfd *pfd = calloc((size_t)count, sizeof(*pfd));
	uint8_t buf[2048];

	if (!pfd)
		return;
	for (int i = 0; i < count; i++) {
		pfd[i].fd = n[i].fd;
		pfd[i].events = POLLIN;
	}
	for (;;) {
		uint64_t now = now_ms(), next = end, nx;
		int timeout;

		for (int i = 0; i < count; i++) {
			dht_periodic(n[i].dht, now, &nx);
			if (nx < next)
				next = nx;
		}
		if (now >= end || (stop && atomic_load(stop)) || (done && *done))
			break;
		timeout = next > now ? (int)(next - now) : 0;
		if (timeout > 20)
			timeout = 20;
		if (poll(pfd, (nfds_t)count, timeout) <= 0)
			continue;
		for (int i = 0; i < count; i++) {
			if (!(pfd[i].revents & POLLIN))
				continue;
			for (int k = 0; k < 64; k++) {
				struct sockaddr_storage from;
				socklen_t fl = sizeof(from);
				ssize_t r = recvfrom(n[i].fd, buf, sizeof(buf), MSG_DONTWAIT,
						     (struct sockaddr *)&from, &fl);

				if (r < 0)
					break;
				dht_input(n[i].dht, buf, (size_t)r, (struct sockaddr *)&from, fl,
					  now_ms());
				if (done && *done)
					break;
			}
		}
	}
	free(pfd);
}

/* ---------------- part (a): the load generator ---------------- */

struct gen_result {
	uint64_t sent, replies, errors, lost, bytes;
};

void make_tmpl(struct tmpl *t, const char *method, const uint8_t id[20],
	       const uint8_t target[20])
{
	struct bencode_buf b;
	uint8_t *p;

	bencode_buf_init(&b, t->buf, sizeof(t->buf));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, id, 20);
	if (!strcmp(method, "get_peers")) {
		bencode_put_cstr(&b, "info_hash");
		bencode_put_str(&b, target, 20);
	} else if (!strcmp(method, "find_node")) {
		bencode_put_cstr(&b, "target");
		bencode_put_str(&b, target, 20);
	}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "q");
	bencode_put_cstr(&b, method);
	bencode_put_cstr(&b, "t");
	bencode_put_str(&b, "TTTT", 4);
	bencode_put_cstr(&b, "y");
	bencode_put_cstr(&b, "q");
	bencode_put_end(&b);
	t->len = b.len;
	p = memmem(t->buf, t->len, "1:t4:TTTT", 9);
	t->tid_off = p ? (size_t)(p - t->buf) + 5 : 0;
	p = memmem(t->buf, t->len, "2:id20:", 7);
	t->id_off = p ? (size_t)(p - t->buf) + 7 : 0;
}

/* Source address i of the generator: 127.16.0.0/12 on loopback, 10.16.0.0/12
 * on the veth pair; never .0 or .255. */
static struct in_addr gen_src(unsigned int i)
{
	struct in_addr a;

	a.s_addr = htonl(site.src_base | (i / 254) << 8 | (1 + i % 254));
	return a;
}

/* Drive `to` for `secs` after a 0.5-s warm-up with `window` queries
 * outstanding; the counters cover only the measured part, and edge() is
 * called at its two ends (CPU time readings). */
struct gen_args {
	struct sockaddr_in to;
	double secs;
	unsigned int window;
	void (*edge)(void *arg, int end);
	void *edge_arg;
	struct gen_result r;
};

static void gen_run(struct gen_args *g)
{
	struct sockaddr_in me = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sz = 4 << 20, on = 1;
	static struct tmpl t[3 * 64];
	uint64_t sent_at[WINDOW] = {0};
	uint16_t gen_of[WINDOW] = {0};
	uint8_t busy[WINDOW] = {0};
	unsigned int next_t = 0, next_src = 0;
	uint16_t generation = 0;
	uint64_t start = now_us(), mstart = start + 500000,
		 mend = mstart + (uint64_t)(g->secs * 1e6);
	int measuring = 0;
	static __thread uint8_t rbuf[BATCH][2048];
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec iiov[BATCH], oiov[BATCH];
	uint8_t obuf[BATCH][256];
	union {
		char buf[CMSG_SPACE(sizeof(struct in_pktinfo))];
		struct cmsghdr align;
	} ctl[BATCH];
	uint8_t id[20];

	memset(&g->r, 0, sizeof(g->r));
	if (fd < 0)
		return;
	/* Bound to every address (port fixed) so replies to any of the
	 * 4096 sources come back here; each datagram picks its source. */
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_IP, IP_FREEBIND, &on, sizeof(on));
	if (bind(fd, (struct sockaddr *)&me, sizeof(me))) {
		close(fd);
		return;
	}
	pin(0);
	randombytes_buf(id, sizeof(id));
	for (int i = 0; i < 64; i++) {
		uint8_t target[20];

		randombytes_buf(target, sizeof(target));
		make_tmpl(&t[3 * i], "ping", id, target);
		make_tmpl(&t[3 * i + 1], "find_node", id, target);
		make_tmpl(&t[3 * i + 2], "get_peers", id, target);
	}
	for (;;) {
		uint64_t now = now_us();
		unsigned int nsend = 0;
		int n;

		if (!measuring && now >= mstart) {
			measuring = 1;
			memset(&g->r, 0, sizeof(g->r));
			g->edge(g->edge_arg, 0);
		}
		if (measuring && now >= mend) {
			g->edge(g->edge_arg, 1);
			break;
		}
		/* reclaim lost slots, then fill the window */
		for (unsigned int i = 0; i < g->window && nsend < BATCH; i++) {
			struct tmpl *q;
			struct cmsghdr *cm;
			struct in_pktinfo *pi;
			unsigned int src;

			if (busy[i] && now - sent_at[i] > LOST_MS * 1000) {
				busy[i] = 0;
				g->r.lost++;
			}
			if (busy[i])
				continue;
			q = &t[next_t++ % (3 * 64)];
			src = next_src++ % NSRC;
			memcpy(obuf[nsend], q->buf, q->len);
			generation++;
			obuf[nsend][q->tid_off] = (uint8_t)(i >> 8);
			obuf[nsend][q->tid_off + 1] = (uint8_t)i;
			obuf[nsend][q->tid_off + 2] = (uint8_t)(generation >> 8);
			obuf[nsend][q->tid_off + 3] = (uint8_t)generation;
			/* each source address has its own node id */
			obuf[nsend][q->id_off] = (uint8_t)(src >> 8);
			obuf[nsend][q->id_off + 1] = (uint8_t)src;
			gen_of[i] = generation;
			busy[i] = 1;
			sent_at[i] = now;
			oiov[nsend].iov_base = obuf[nsend];
			oiov[nsend].iov_len = q->len;
			memset(&out[nsend].msg_hdr, 0, sizeof(out[nsend].msg_hdr));
			out[nsend].msg_hdr.msg_iov = &oiov[nsend];
			out[nsend].msg_hdr.msg_iovlen = 1;
			out[nsend].msg_hdr.msg_name = &g->to;
			out[nsend].msg_hdr.msg_namelen = sizeof(g->to);
			memset(&ctl[nsend], 0, sizeof(ctl[nsend]));
			out[nsend].msg_hdr.msg_control = ctl[nsend].buf;
			out[nsend].msg_hdr.msg_controllen = sizeof(ctl[nsend].buf);
			cm = CMSG_FIRSTHDR(&out[nsend].msg_hdr);
			cm->cmsg_level = IPPROTO_IP;
			cm->cmsg_type = IP_PKTINFO;
			cm->cmsg_len = CMSG_LEN(sizeof(struct in_pktinfo));
			pi = (struct in_pktinfo *)CMSG_DATA(cm);
			pi->ipi_spec_dst = gen_src(src);
			nsend++;
		}
		if (nsend) {
			int r = sendmmsg(fd, out, nsend, 0);

			g->r.sent += r > 0 ? (uint64_t)r : 0;
		}
		for (int i = 0; i < BATCH; i++) {
			iiov[i].iov_base = rbuf[i];
			iiov[i].iov_len = sizeof(rbuf[i]);
			memset(&in[i].msg_hdr, 0, sizeof(in[i].msg_hdr));
			in[i].msg_hdr.msg_iov = &iiov[i];
			in[i].msg_hdr.msg_iovlen = 1;
		}
		n = recvmmsg(fd, in, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			struct pollfd pfd = {.fd = fd, .events = POLLIN};

			poll(&pfd, 1, 1);
			continue;
		}
		for (int i = 0; i < n; i++) {
			const uint8_t *p = memmem(rbuf[i], in[i].msg_len, "1:t4:", 5);
			unsigned int slot;
			uint16_t gn;

			if (!p || p + 9 > rbuf[i] + in[i].msg_len)
				continue;
			slot = (unsigned int)p[5] << 8 | p[6];
			gn = (uint16_t)(p[7] << 8 | p[8]);
			if (slot >= WINDOW || !busy[slot] || gen_of[slot] != gn)
				continue;
			busy[slot] = 0;
			if (memmem(rbuf[i], in[i].msg_len, "1:y1:e", 6))
				g->r.errors++;
			else
				g->r.replies++;
			g->r.bytes += in[i].msg_len;
		}
	}
	close(fd);
}

/* Pid of the kernel thread named comm ("ksoftirqd/1"), or -1. */
static int kthread_pid(const char *comm)
{
	char path[64], line[64];
	int pid = -1;

	for (int p = 2; p < 4096 && pid < 0; p++) {
		FILE *f;

		snprintf(path, sizeof(path), "/proc/%d/comm", p);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f)) {
			line[strcspn(line, "\n")] = 0;
			if (!strcmp(line, comm))
				pid = p;
		}
		fclose(f);
	}
	return pid;
}

/* Softirq ticks of one CPU so far (/proc/stat, 7th value of "cpuN"). */
static unsigned long long softirq_ticks(int cpu)
{
	char line[256], want[16];
	unsigned long long v[7] = {0};
	FILE *f = fopen("/proc/stat", "r");

	if (!f)
		return 0;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, want, strlen(want))) {
			sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			       &v[2], &v[3], &v[4], &v[5], &v[6]);
			break;
		}
	fclose(f);
	return v[6];
}

/*
 * CPU time a server causes, at the window edges: its whole process
 * (utime + stime, every thread; without CONFIG_IRQ_TIME_ACCOUNTING a
 * softirq run on its way out of a system call or an interrupt is in
 * there too). On the veth pair also the kernel threads that work for it
 * on its CPU: the receive NAPI thread(s) of its interface (threaded NAPI:
 * the XDP program and the AF_XDP copy, or GRO + IP + UDP for a socket)
 * and ksoftirqd/1 (softirq deferred from its context; whatever else on
 * CPU 1 deferred softirq is charged to it too, so an upper bound).
 */
struct cpu_probe {
	pid_t pid;
	int ksoftirqd;
	long long t0, t1, k0, k1;
	unsigned long long s0, s1;
	double w0, w1;
};

static long long kthreads_ns(const struct cpu_probe *c)
{
	long long k = 0, v;

	if (!site.veth)
		return 0;
	k = bench_napi_cpu_ns(BENCH_IF_A);
	v = c->ksoftirqd > 0 ? bench_thread_cpu_ns(c->ksoftirqd, 0) : 0;
	return k + (v > 0 ? v : 0);
}

static void cpu_edge(void *arg, int end)
{
	struct cpu_probe *c = arg;
	long long v = bench_proc_cpu_ns(c->pid), k = kthreads_ns(c);
	unsigned long long s = softirq_ticks(1);
	double w = bench_now();

	if (end) {
		c->t1 = v;
		c->k1 = k;
		c->s1 = s;
		c->w1 = w;
	} else {
		c->t0 = v;
		c->k0 = k;
		c->s0 = s;
		c->w0 = w;
	}
}

struct row {
	struct gen_result r;
	double wall, cpu; /* cpu: process + kernel threads (kcpu) */
	double kcpu;      /* veth: NAPI thread(s) of veA and ksoftirqd/1 */
	double sirq;      /* CPU 1's softirq time in /proc/stat (tick-sampled, any task) */
};

struct fill_thread {
	struct pnode *n;
	atomic_int stop;
};

static void *fill_main(void *arg)
{
	struct pnode *n = ((struct fill_thread *)arg)->n;

	pump(n, NFILL, 1000000000ULL, &((struct fill_thread *)arg)->stop, NULL);
	return NULL;
}

/* One measurement: the generator against port for secs at window. */
static void measure(int port, pid_t pid, double secs, unsigned int window, struct row *x)
{
	static int ksoftirqd;
	struct cpu_probe cp = {.pid = pid};
	struct gen_args g = {.secs = secs, .window = window, .edge = cpu_edge, .edge_arg = &cp};

	if (site.veth && !ksoftirqd)
		ksoftirqd = kthread_pid("ksoftirqd/1");
	cp.ksoftirqd = ksoftirqd;
	g.to.sin_family = AF_INET;
	g.to.sin_addr.s_addr = htonl(site.addr);
	g.to.sin_port = htons((uint16_t)port);
	if (site.veth)
		bench_veth_enter(site.veth, 'B'); /* the generator's end */
	gen_run(&g);
	if (site.veth)
		bench_veth_enter(site.veth, 0);
	x->r = g.r;
	x->wall = cp.w1 - cp.w0;
	x->kcpu = (double)(cp.k1 - cp.k0) / 1e9;
	x->cpu = (double)(cp.t1 - cp.t0) / 1e9 + x->kcpu;
	x->sirq = (double)(cp.s1 - cp.s0) / (double)sysconf(_SC_CLK_TCK);
}

static void record_row(struct bench_result *res, const char *id, const char *name,
		       unsigned int window, const struct row *x)
{
	char fid[64], label[160], line[96];
	double rps = x->wall > 0 ? (double)x->r.replies / x->wall : 0;
	double rpc = x->cpu > 0 ? (double)x->r.replies / x->cpu : 0;

	printf("%-22s %6u %10.0f %8.0f%% %13.0f %8.0f %8llu %7llu\n", name, window, rps,
	       x->wall > 0 ? 100.0 * x->cpu / x->wall : 0, rpc,
	       x->r.replies ? (double)x->r.bytes / (double)x->r.replies : 0,
	       (unsigned long long)x->r.lost, (unsigned long long)x->r.errors);
#define FIG(sfx, text, v, unit)                                                          \
	do {                                                                             \
		snprintf(fid, sizeof(fid), "%s.w%u.%s", id, window, sfx);                \
		snprintf(label, sizeof(label), "%s, window %u: %s", name, window, text); \
		bench_result_figure(res, fid, label, v, unit);                           \
	} while (0)
	FIG("replies_per_s", "replies", rps, "replies/s");
	FIG("cpu_share", "process CPU time per second", x->wall > 0 ? 100.0 * x->cpu / x->wall : 0, "%");
	FIG("replies_per_cpu_s", "replies per CPU-second", rpc, "replies/CPU-s");
	FIG("bytes_per_reply", "mean reply size", x->r.replies ? (double)x->r.bytes / (double)x->r.replies : 0,
	    "bytes");
	FIG("lost", "queries unanswered after 500 ms", (double)x->r.lost, "queries");
	FIG("errors", "error replies", (double)x->r.errors, "replies");
	if (site.veth) {
		FIG("kthread_cpu_share", "CPU of veA's NAPI thread and ksoftirqd/1 per second (in cpu_share)",
		    x->wall > 0 ? 100.0 * x->kcpu / x->wall : 0, "%");
		FIG("cpu1_softirq_share", "softirq time on CPU 1 per second, /proc/stat (tick-sampled, any task)",
		    x->wall > 0 ? 100.0 * x->sirq / x->wall : 0, "%");
	}
#undef FIG
	snprintf(line, sizeof(line), "%s", name);
	if (rps > 0 && rpc > 0)
		bench_result_point(res, "dht_cost_load", "DHT: CPU per reply against load",
				   "replies/s served", "CPU us per reply", line, rps, 1e6 / rpc);
}

static int part_a(struct bench_result *res, double secs)
{
	struct pnode fill[NFILL];
	struct fill_thread ft = {.n = fill};
	struct weftd_proc wd = {0};
	struct lt_proc lt = {0};
	struct row rw[NWIN], rl[NWIN], rf[NWIN];
	int have_lt, have_weftd, floor_port;
	pid_t floor_pid;
	pthread_t fth;

	if (pnodes_new(fill, NFILL, 0xa0))
		return -1;
	pthread_create(&fth, NULL, fill_main, &ft);
	have_weftd = !weftd_start(&wd, fill, NFILL, "uring");
	have_lt = !lt_start(&lt, fill, NFILL);
	floor_port = floor_start(&floor_pid);
	if (!have_lt)
		printf("libtorrent: not available (python3-libtorrent missing?)\n");
	printf("(a) KRPC replies, %.0f s per load, ping/find_node/get_peers 1:1:1 from %d sources, "
	       "server process on CPU 1, generator on CPU 0\n", secs, NSRC);
	printf("%-22s %6s %10s %9s %13s %8s %8s %7s\n", "server", "window", "replies/s", "cpu",
	       "replies/cpu-s", "bytes/r", "lost", "errors");
	/* Loads alternate between the two servers so drift in the machine's
	 * other load spreads over both. */
	for (size_t k = 0; k < NWIN; k++) {
		if (have_weftd) {
			measure(wd.port, wd.pid, secs, windows[k], &rw[k]);
			record_row(res, "weftd", "weftd (daemon)", windows[k], &rw[k]);
		}
		if (have_lt) {
			measure(lt.port, lt.pid, secs, windows[k], &rl[k]);
			record_row(res, "libtorrent", "libtorrent 2.0.8", windows[k], &rl[k]);
		}
		/* the floor only at the highest load, where the ratio is taken:
		 * the harness stays within its time budget (bench/run.sh) */
		if (floor_port > 0 && k == NWIN - 1) {
			measure(floor_port, floor_pid, secs, windows[k], &rf[k]);
			record_row(res, "floor", "floor (no DHT work)", windows[k], &rf[k]);
		}
	}
	if (have_weftd && have_lt) {
		char num[64], den[64];

		snprintf(num, sizeof(num), "weftd.w%u.replies_per_cpu_s", WINDOW);
		snprintf(den, sizeof(den), "libtorrent.w%u.replies_per_cpu_s", WINDOW);
		bench_result_ratio(res, "weftd.vs_libtorrent", "weftd / libtorrent session, replies per CPU-second (window 256)",
				   num, den, 3.0);
		snprintf(num, sizeof(num), "weftd.w%u.replies_per_s", WINDOW);
		snprintf(den, sizeof(den), "libtorrent.w%u.replies_per_s", WINDOW);
		bench_result_ratio(res, "weftd.vs_libtorrent_rate", "weftd / libtorrent session, replies per second (window 256)",
				   num, den, 0);
		if (rl[NWIN - 1].cpu > 0 && rl[NWIN - 1].r.replies && rw[NWIN - 1].cpu > 0)
			printf("ratio weftd/libtorrent at window %u: %.2fx replies per CPU-second\n", WINDOW,
			       ((double)rw[NWIN - 1].r.replies / rw[NWIN - 1].cpu) /
				   ((double)rl[NWIN - 1].r.replies / rl[NWIN - 1].cpu));
	}
	if (floor_port > 0 && have_lt && rl[NWIN - 1].r.replies && rf[NWIN - 1].r.replies) {
		char num[64], den[64];

		snprintf(num, sizeof(num), "floor.w%u.replies_per_cpu_s", WINDOW);
		snprintf(den, sizeof(den), "libtorrent.w%u.replies_per_cpu_s", WINDOW);
		bench_result_ratio(res, "floor.vs_libtorrent", "kernel floor (canned replies, no DHT) / libtorrent session, replies per CPU-second (window 256): the most a per-datagram UDP server reaches here",
				   num, den, 0);
		if (have_weftd && rw[NWIN - 1].r.replies) {
			snprintf(num, sizeof(num), "weftd.w%u.replies_per_cpu_s", WINDOW);
			snprintf(den, sizeof(den), "floor.w%u.replies_per_cpu_s", WINDOW);
			bench_result_ratio(res, "weftd.vs_floor", "weftd / kernel floor, replies per CPU-second (window 256): the share of the floor weftd reaches",
					   num, den, 0);
		}
		if (rf[NWIN - 1].cpu > 0)
			printf("ratio floor/libtorrent at window %u: %.2fx replies per CPU-second\n", WINDOW,
			       ((double)rf[NWIN - 1].r.replies / rf[NWIN - 1].cpu) /
				   ((double)rl[NWIN - 1].r.replies / rl[NWIN - 1].cpu));
	}
	if (floor_port <= 0)
		bench_result_note(res, "the floor server did not start: no floor rows");
	if (!have_weftd)
		bench_result_note(res, "weftd did not start: no weftd rows");
	if (!have_lt)
		bench_result_note(res, "python3-libtorrent not available: no libtorrent rows");
	bench_result_param(res, "seconds_per_load", secs);
	bench_result_param(res, "sources", NSRC);
	lt_stop(&lt);
	if (floor_pid > 0)
		child_stop(floor_pid, 1);
	weftd_stop(&wd);
	atomic_store(&ft.stop, 1);
	pthread_join(fth, NULL);
	pnodes_free(fill, NFILL);
	return have_weftd ? 0 : -1;
}

/* ---------------- part (c): the same servers on a veth pair ---------------- */

static void pin_napis(void)
{
	bench_pin_napi(BENCH_IF_A, 1); /* the servers' receive: charged to them */
	bench_pin_napi(BENCH_IF_B, 0); /* the generator's */
}

/*
 * Window WINDOW on the veth pair of bench_veth_new (threaded NAPI, veA's
 * thread on CPU 1 with the server, veB's on CPU 0 with the generator):
 * weftd in xdp mode (its XDP program native on veA, one AF_XDP socket in
 * copy mode: replies leave through the TX ring), weftd in uring mode,
 * libtorrent and the floor, one after the other, each alone on the pair.
 * The generator in end B sends from 10.16.0.0/12 (local to B; end A
 * routes it through B's address, so a reply needs one neighbour entry).
 * CPU counted: the process plus veA's NAPI thread and ksoftirqd/1.
 */
#define NSRV_C 5 /* weftd xdp, weftd uring, libtorrent, the kernel floor, the AF_XDP floor */

/* Whether part (c) runs server name: BENCH_DHT_ONLY unset or empty (all),
 * or a comma-separated list of names (weftd_xdp,weftd_uring,libtorrent,
 * floor,floor_xdp) holding it. */
static int picked(const char *only, const char *name)
{
	size_t n = strlen(name);

	if (!only || !*only)
		return 1;
	for (const char *p = only; *p;) {
		size_t len = strcspn(p, ",");

		if (len == n && !strncmp(p, name, n))
			return 1;
		p += len + (p[len] == ',');
	}
	return 0;
}

static int part_c(struct bench_result *res, double secs)
{
	struct bench_veth v;
	struct pnode fill[NFILL];
	struct fill_thread ft = {.n = fill};
	struct weftd_proc w = {0};
	struct lt_proc lt = {0};
	struct row r[NSRV_C] = {0};
	static const char *const ids[NSRV_C] = { "veth.weftd_xdp", "veth.weftd_uring", "veth.libtorrent",
						 "veth.floor", "veth.floor_xdp" };
	static const char *const names[NSRV_C] = { "weftd xdp (veth)", "weftd uring (veth)", "libtorrent (veth)",
						   "floor (veth)", "floor xdp (veth)" };
	const char *only = getenv("BENCH_DHT_ONLY");
	int have[NSRV_C] = {0};
	double txk = -1, txp = -1, rxk = -1, rxp = -1;
	pid_t pid;
	pthread_t fth;
	char cmd[512];

	for (int i = 0; i < NFILL; i++) {
		fill[i].fd = -1;
		fill[i].dht = NULL;
	}
	if (bench_veth_new(&v, "dht")) {
		bench_result_note(res, "veth pair not available (root, ip, ethtool, threaded NAPI): no veth rows");
		return 0;
	}
	/* TSO off on both ends: veth hands a sender's skb to the peer's NAPI
	 * (threaded, pinned with the receiver) only then; with TSO on it goes
	 * through the backlog in the sender's own softirq, which charges each
	 * side for the other's receive and skips a native XDP program. */
	snprintf(cmd, sizeof(cmd), "ip -n %s route add 10.16.0.0/12 via " BENCH_ADDR_B " && "
		 "ip -n %s route add local 10.16.0.0/12 dev lo && "
		 "ip netns exec %s ethtool -K " BENCH_IF_A " tso off >/dev/null && "
		 "ip netns exec %s ethtool -K " BENCH_IF_B " tso off >/dev/null",
		 v.ns_a, v.ns_b, v.ns_a, v.ns_b);
	if (system(cmd)) {
		bench_veth_free(&v);
		return -1;
	}
	site = (struct site){ ntohl(inet_addr(BENCH_ADDR_A)), 0x0a100000u, &v };
	bench_veth_enter(&v, 'A');
	if (pnodes_new(fill, NFILL, 0xc0)) {
		bench_veth_enter(&v, 0);
		goto out;
	}
	bench_veth_enter(&v, 0);
	pthread_create(&fth, NULL, fill_main, &ft);
	printf("\n(c) the same on a veth pair (servers in one namespace, generator in another), window %u; "
	       "cpu = process + veA NAPI thread + ksoftirqd/1\n", WINDOW);
	printf("%-22s %6s %10s %9s %13s %8s %8s %7s\n", "server", "window", "replies/s", "cpu",
	       "replies/cpu-s", "bytes/r", "lost", "errors");
	for (int k = 0; k < NSRV_C; k++) {
		if (!picked(only, ids[k] + 5))
			continue;
		if (k < 2) {
			have[k] = !weftd_start(&w, fill, NFILL, k ? "uring" : "xdp");
			pid = w.pid;
		} else if (k == 2) {
			have[k] = !lt_start(&lt, fill, NFILL);
			pid = lt.pid;
		} else {
			int port = k == 3 ? floor_start(&pid) : floor_xdp_start(&pid);

			have[k] = port > 0;
			w.port = port;
		}
		if (have[k]) {
			pin_napis();
			measure(k == 2 ? lt.port : w.port, pid, secs, WINDOW, &r[k]);
			record_row(res, ids[k], names[k], WINDOW, &r[k]);
			if (k == 0) {
				txk = weftd_io_total(&w, "tx_kernel");
				txp = weftd_io_total(&w, "tx_pkts");
				rxk = weftd_io_total(&w, "rx_kernel");
				rxp = weftd_io_total(&w, "rx_pkts");
			}
		}
		if (k < 2)
			weftd_stop(&w);
		else if (k == 2)
			lt_stop(&lt);
		else if (pid > 0)
			child_stop(pid, 1);
		memset(&w, 0, sizeof(w));
	}
	if (rxp > 0 && rxk >= 0) {
		printf("weftd xdp: %.0f datagrams received, %.0f of them (%.2f%%) on a kernel socket, the rest from the AF_XDP RX ring\n",
		       rxp + rxk, rxk, 100.0 * rxk / (rxp + rxk));
		bench_result_figure(res, "veth.weftd_xdp.rx_kernel_share",
				    "weftd xdp: share of its datagrams received on a kernel socket (not the AF_XDP RX ring)",
				    100.0 * rxk / (rxp + rxk), "%");
	}
	if (txp > 0 && txk >= 0) {
		printf("weftd xdp: %.0f datagrams sent, %.0f of them (%.2f%%) through a kernel socket, the rest on the AF_XDP TX ring\n",
		       txp, txk, 100.0 * txk / txp);
		bench_result_figure(res, "veth.weftd_xdp.tx_kernel_share",
				    "weftd xdp: share of its datagrams sent through a kernel socket (not the AF_XDP TX ring)",
				    100.0 * txk / txp, "%");
	}
	for (int k = 1; k < NSRV_C; k++) {
		char num[64], den[64], id[64], label[160];

		if (!have[0] || !have[k] || !r[k].r.replies || r[k].cpu <= 0)
			continue;
		snprintf(num, sizeof(num), "%s.w%u.replies_per_cpu_s", ids[0], WINDOW);
		snprintf(den, sizeof(den), "%s.w%u.replies_per_cpu_s", ids[k], WINDOW);
		snprintf(id, sizeof(id), "veth.weftd_xdp.vs_%s", ids[k] + 5);
		snprintf(label, sizeof(label), "weftd xdp / %s, replies per CPU-second incl. NAPI and ksoftirqd (window %u)",
			 names[k], WINDOW);
		bench_result_ratio(res, id, label, num, den, k == 2 ? 3.0 : 0);
		printf("ratio weftd xdp / %s: %.2fx replies per CPU-second\n", names[k],
		       ((double)r[0].r.replies / r[0].cpu) / ((double)r[k].r.replies / r[k].cpu));
	}
	if (have[4] && have[2] && r[4].r.replies && r[2].r.replies && r[4].cpu > 0 && r[2].cpu > 0) {
		char num[64], den[64];

		snprintf(num, sizeof(num), "%s.w%u.replies_per_cpu_s", ids[4], WINDOW);
		snprintf(den, sizeof(den), "%s.w%u.replies_per_cpu_s", ids[2], WINDOW);
		bench_result_ratio(res, "veth.floor_xdp.vs_libtorrent",
				   "AF_XDP floor (canned replies through the engine's xdp path, no DHT) / libtorrent on the pair, replies per CPU-second incl. NAPI and ksoftirqd (window 256): the most weftd xdp can show here",
				   num, den, 0);
		printf("ratio floor xdp / libtorrent (veth): %.2fx replies per CPU-second\n",
		       ((double)r[4].r.replies / r[4].cpu) / ((double)r[2].r.replies / r[2].cpu));
	}
	if (have[0]) {
		char num[64];

		snprintf(num, sizeof(num), "veth.weftd_xdp.w%u.replies_per_cpu_s", WINDOW);
		bench_result_ratio(res, "veth.weftd_xdp.vs_libtorrent_loopback",
				   "weftd xdp on veth / libtorrent on loopback (part a), replies per CPU-second (window 256)",
				   num, "libtorrent.w256.replies_per_cpu_s", 0);
	}
	atomic_store(&ft.stop, 1);
	pthread_join(fth, NULL);
out:
	pnodes_free(fill, NFILL);
	site = (struct site){ INADDR_LOOPBACK, 0x7f100000u, NULL };
	bench_veth_free(&v);
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 3;
	int nnet = argc > 2 ? atoi(argv[2]) : 200;
	const char *parts = argc > 3 ? argv[3] : "abc";
	struct bench_result *res = NULL;

	if (sodium_init() < 0 || secs <= 0 || nnet < 2 || nnet > 1000 ||
	    strspn(parts, "abc") != strlen(parts)) {
		fprintf(stderr, "usage: bench_dht [SECONDS] [NODES] [PARTS]\n");
		return 2;
	}
	if (bench_result_new(&res, "dht", argc, argv))
		return 1;
	bench_result_same_work(res, "weftd (the daemon: engine, one worker, node DHT) and a libtorrent "
				    "2.0.8 session, each a long-running process pinned whole to CPU 1, "
				    "same 16 helper nodes, same query mix from the same 4096 "
				    "sources and node ids, global limits lifted on both; figure = "
				    "replies per CPU-second of the whole process (/proc/PID/stat); "
				    "part (c), on a veth pair, adds the server side's NAPI thread "
				    "and ksoftirqd/1 to every server alike");
	signal(SIGPIPE, SIG_IGN);
	if (strchr(parts, 'a') && part_a(res, secs)) {
		fprintf(stderr, "part (a) failed to set up\n");
		bench_result_free(res);
		return 1;
	}
	if (strchr(parts, 'c') && part_c(res, secs)) {
		fprintf(stderr, "part (c) failed to set up\n");
		bench_result_free(res);
		return 1;
	}
	if (strchr(parts, 'b') && part_b(res, nnet)) {
		fprintf(stderr, "part (b) failed to set up\n");
		bench_result_free(res);
		return 1;
	}
	bench_result_param(res, "core_nodes", nnet);
	return bench_result_finish(res);
}
