// SPDX-License-Identifier: MIT
/*
 * Relay forwarding benchmark (never run by make test; docs/BENCH.md,
 * docs/CONNECTIVITY.md "Relay: the data plane"). bench/relay.sh runs it.
 *
 * Same work (docs/BENCH.md): every relay forwards the same 100-byte
 * application payload from end A (198.51.100.2:40000) to end B
 * (198.51.100.2:40001) through the same veth pair: the live-frame source
 * (benchlib, BPF test-run with live frames, CPU 0; it cannot be the
 * bottleneck: frames veA cannot take are dropped at veB and counted as
 * offered) sends A's datagrams out of veB into veA, the relay (in
 * namespace A, on veA) forwards them back out of veA to B (a bound socket
 * in namespace B; its datagrams are taken at veB by an XDP program that
 * counts and drops them, veb_sink()). veA has threaded NAPI pinned to
 * CPU 1 and the relay process is pinned to CPU 1 too (taskset); veB's NAPI
 * (SCHED_FIFO) and the source are on CPU 0. A relay's figure is packets
 * forwarded (counted the same way for all: datagrams reaching B's end,
 * counted by B's XDP sink) per CPU-second of the relay's work:
 * veA's NAPI thread time plus the relay process's CPU time (all threads).
 * The relays: (a) weft's XDP relay (relay_node xdp: the XDP program
 * forwards, native mode on veA), (b) weft's userspace relay (relay_node
 * uring: the engine forwards), (c) coturn (turnserver --relay-threads 1,
 * an unauthenticated allocation with a channel bound to B; A's datagrams
 * are TURN ChannelData, 4 bytes of framing before the same 100 bytes, B
 * receives the 100 bytes). Ratios are between figures of this run only.
 *
 *   bench_relay [SECONDS] [ROUNDS]   each relay SECONDS per round (default
 *                                    3), ROUNDS rounds alternating the
 *                                    relays (default 2); one JSON result
 * Environment: RELAY_NODE (default ../tools/relay_node from this binary's
 * directory), TURNSERVER (default turnserver on PATH), BENCH_RELAY_ONLY
 * (xdp, uring or coturn: that relay alone, for debugging; no ratios),
 * BENCH_RELAY_XDP_MODE (xdp-generic: the XDP relay in generic mode),
 * BENCH_RELAY_KEEP (keep the relays' output directory in /tmp).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include "weft/io.h"
#include "weft/relay_fwd.h"

#include "benchlib.h"

#define PAYLOAD 100
#define PORT_A 40000
#define PORT_B 40001
#define TURN_PORT 3478
#define RELAY_PORT_MIN 42000
#define RELAY_PORT_MAX 42003
#define GOAL_XDP_VS_COTURN 10.0 /* issue 14 */

static const char same_work[] =
	"same 100-byte payload A -> relay -> B over the same veth pair, from the same live-frame "
	"source (CPU 0, cannot be the bottleneck) in the same run; the relay's veth end veA has "
	"threaded NAPI pinned to CPU 1 and the relay process is pinned to CPU 1; figure = "
	"datagrams reaching B's end (counted by an XDP drop on B's veth, its NAPI thread "
	"SCHED_FIFO on CPU 0) per CPU-second of the relay's work (veA NAPI thread + relay "
	"process CPU time); coturn gets one relay thread, the same pinning and the same payload "
	"inside TURN ChannelData (4 bytes of framing added by A, stripped by coturn)";

static const uint8_t tok_a[16] = { 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 };
static const uint8_t tok_b[16] = { 0xf0, 0xe0, 0xd0, 0xc0, 0xb0, 0xa0, 0x90, 0x80,
				   0x70, 0x60, 0x50, 0x40, 0x30, 0x20, 0x10, 0 };

static struct bench_veth veth;
static char tmpdir[64];
static pid_t relay_pid = -1;
static const char *xdp_mode = "xdp";

enum relay { R_XDP, R_URING, R_COTURN, R__MAX };
static const char *const r_id[R__MAX] = { "xdp", "uring", "coturn" };
static const char *const r_label[R__MAX] = { "weft XDP relay (native XDP on veA)",
					     "weft userspace relay (engine, io_uring)",
					     "coturn (turnserver, 1 relay thread)" };

struct out {
	double secs, offered, fwd, cpu_s, cpu1_busy, lost_after;
};

static void kill_relay(void)
{
	if (relay_pid > 0) {
		kill(relay_pid, SIGTERM);
		for (int i = 0; i < 50 && waitpid(relay_pid, NULL, WNOHANG) == 0; i++)
			usleep(100 * 1000);
		kill(relay_pid, SIGKILL);
		waitpid(relay_pid, NULL, 0);
	}
	relay_pid = -1;
}

static void cleanup(void)
{
	kill_relay();
	bench_veth_free(&veth);
	if (tmpdir[0] && !getenv("BENCH_RELAY_KEEP")) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd)) {
			/* nothing more to do */
		}
	}
}

static void hex(char *out, const uint8_t *b, int n)
{
	for (int i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", b[i]);
}

/* Start the relay in namespace A, pinned to CPU 1; stdout/err to files. */
static int spawn(enum relay r, const char *relay_node)
{
	char ta[33], tb[33], script[1024], log[128];
	pid_t p;

	hex(ta, tok_a, 16);
	hex(tb, tok_b, 16);
	if (r == R_COTURN)
		snprintf(script, sizeof(script),
			 "exec taskset -c 1 %s -n --no-auth --no-tls --no-dtls --no-cli "
			 "--listening-ip " BENCH_ADDR_A " --relay-ip " BENCH_ADDR_A
			 " --relay-threads 1 --min-port 49152 --max-port 49999 "
			 "--pidfile %s/turn.pid --log-file stdout",
			 getenv("TURNSERVER") ? getenv("TURNSERVER") : "turnserver", tmpdir);
	else
		/* ip netns exec remounts /sys, hiding bpffs: a private one. */
		snprintf(script, sizeof(script),
			 "mount -t bpf bpf /sys/fs/bpf || exit 1; "
			 "RELAY_NODE_PPS=100000000 exec taskset -c 1 %s %s " BENCH_IF_A
			 " %d %d %s %s %s/stats-%s.json 1",
			 relay_node, r == R_XDP ? xdp_mode : "uring", RELAY_PORT_MIN, RELAY_PORT_MAX,
			 ta, tb, tmpdir, r_id[r]);
	snprintf(log, sizeof(log), "%s/%s.out", tmpdir, r_id[r]);
	p = fork();
	if (p < 0)
		return -errno;
	if (p == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execlp("ip", "ip", "netns", "exec", veth.ns_a, "sh", "-c", script, (char *)NULL);
		_exit(127);
	}
	relay_pid = p;
	return 0;
}

/* weft: wait for "port N" in the relay's output; returns the port or -errno. */
static int weft_port(enum relay r)
{
	char path[128], line[256];

	snprintf(path, sizeof(path), "%s/%s.out", tmpdir, r_id[r]);
	for (int i = 0; i < 300; i++) {
		FILE *f = fopen(path, "r");
		int port = 0;

		if (f) {
			while (fgets(line, sizeof(line), f))
				if (sscanf(line, "port %d", &port) == 1)
					break;
			fclose(f);
		}
		if (port > 0)
			return port;
		if (waitpid(relay_pid, NULL, WNOHANG) == relay_pid) {
			relay_pid = -1;
			break;
		}
		usleep(100 * 1000);
	}
	fprintf(stderr, "relay_node %s did not start (see %s)\n", r_id[r], path);
	return -ETIMEDOUT;
}

/* A UDP socket in the current namespace bound to BENCH_ADDR_B:port. */
static int sock_b(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), one = 1;

	inet_pton(AF_INET, BENCH_ADDR_B, &a.sin_addr);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		int e = -errno;

		close(fd);
		return e;
	}
	return fd;
}

/* Send req to the relay at A:port until a reply passes ok(); deadline 5 s. */
static int ask(int fd, int port, const uint8_t *req, size_t len,
	       int (*ok)(const uint8_t *, ssize_t, const uint8_t *, void *), void *arg)
{
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	uint8_t buf[2048];
	double deadline = bench_now() + 5.0;

	inet_pton(AF_INET, BENCH_ADDR_A, &to.sin_addr);
	while (bench_now() < deadline) {
		struct timeval tv = { 0, 200000 };
		ssize_t n;

		sendto(fd, req, len, 0, (struct sockaddr *)&to, sizeof(to));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf), 0);
		if (n > 0 && ok(buf, n, req, arg))
			return 0;
	}
	return -ETIMEDOUT;
}

static int weft_bound(const uint8_t *b, ssize_t n, const uint8_t *req, void *arg)
{
	(void)arg;
	return n >= 20 && b[0] == 1 && b[1] == 1 && !memcmp(b + 8, req + 8, 12);
}

static int weft_bind(int fd, int port, const uint8_t tok[16])
{
	uint8_t m[RELAY_BIND_LEN], tid[12];

	for (int i = 0; i < 12; i++)
		tid[i] = (uint8_t)rand();
	if (relay_bind_request(tok, tid, m, sizeof(m)) != RELAY_BIND_LEN)
		return -EINVAL;
	return ask(fd, port, m, sizeof(m), weft_bound, NULL);
}

/* ---- TURN (RFC 8656) client: just enough for one channel ---- */

#define STUN_MAGIC 0x2112A442u

static size_t stun_hdr(uint8_t *m, uint16_t type)
{
	m[0] = (uint8_t)(type >> 8);
	m[1] = (uint8_t)type;
	m[2] = m[3] = 0;
	m[4] = 0x21, m[5] = 0x12, m[6] = 0xA4, m[7] = 0x42;
	for (int i = 8; i < 20; i++)
		m[i] = (uint8_t)rand();
	return 20;
}

static size_t stun_attr(uint8_t *m, size_t off, uint16_t type, const uint8_t *v, uint16_t len)
{
	m[off] = (uint8_t)(type >> 8);
	m[off + 1] = (uint8_t)type;
	m[off + 2] = (uint8_t)(len >> 8);
	m[off + 3] = (uint8_t)len;
	memcpy(m + off + 4, v, len);
	off += 4 + ((len + 3u) & ~3u);
	m[2] = (uint8_t)((off - 20) >> 8);
	m[3] = (uint8_t)(off - 20);
	return off;
}

/* A success response (class 0x100) to req's method and transaction. */
static int turn_ok(const uint8_t *b, ssize_t n, const uint8_t *req, void *arg)
{
	(void)arg;
	return n >= 20 && b[0] == (req[0] | 0x01) && b[1] == req[1] &&
	       !memcmp(b + 4, req + 4, 16);
}

static int turn_channel(int fd)
{
	static const uint8_t udp[4] = { 17, 0, 0, 0 };
	uint8_t m[128], peer[8], chan[4] = { 0x40, 0x00, 0, 0 };
	struct in_addr b;
	size_t len;
	int err;

	len = stun_hdr(m, 0x0003); /* Allocate */
	len = stun_attr(m, len, 0x0019, udp, 4);
	err = ask(fd, TURN_PORT, m, len, turn_ok, NULL);
	if (err)
		return err;
	inet_pton(AF_INET, BENCH_ADDR_B, &b);
	peer[0] = 0;
	peer[1] = 1;
	peer[2] = (uint8_t)((PORT_B ^ (STUN_MAGIC >> 16)) >> 8);
	peer[3] = (uint8_t)(PORT_B ^ (STUN_MAGIC >> 16));
	{
		uint32_t x = ntohl(b.s_addr) ^ STUN_MAGIC;

		peer[4] = (uint8_t)(x >> 24), peer[5] = (uint8_t)(x >> 16);
		peer[6] = (uint8_t)(x >> 8), peer[7] = (uint8_t)x;
	}
	len = stun_hdr(m, 0x0009); /* ChannelBind (also installs the permission) */
	len = stun_attr(m, len, 0x000C, chan, 4);
	len = stun_attr(m, len, 0x0012, peer, 8);
	return ask(fd, TURN_PORT, m, len, turn_ok, NULL);
}

/*
 * B's sink: an XDP program on veB (native mode), attached in namespace B,
 * that drops IPv4 UDP datagrams to B's port (PORT_B) whose payload starts
 * with 0x40 (the data the relays forward, IHL 5 as every sender here
 * makes them) and passes everything else (bind answers, ARP). veth counts its drops per
 * queue (ethtool -S veB: rx_queue_0_xdp_drops): that is the forwarded
 * count, the same for every relay. Dropping at B's driver keeps B's work
 * on CPU 0 small, so B is not the bottleneck (B's own UDP stack, sharing
 * CPU 0 with the source, took only a tenth of what the XDP relay sent).
 * It also makes veth accept the XDP relay's XDP_TX frames: without a
 * program on veB, kernel 6.18 took the first ring-full and then refused
 * every one (veA's xdp_tx_errors). Returns 0 or a negative errno.
 */
static int veb_sink(void)
{
	struct bpf_insn prog[] = {
		{ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1, .off = 0 },
		{ .code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_3, .src_reg = BPF_REG_1, .off = 4 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_X, .dst_reg = BPF_REG_4, .src_reg = BPF_REG_2 },
		{ .code = BPF_ALU64 | BPF_ADD | BPF_K, .dst_reg = BPF_REG_4, .imm = 43 },
		{ .code = BPF_JMP | BPF_JGT | BPF_X, .dst_reg = BPF_REG_4, .src_reg = BPF_REG_3, .off = 10 },
		/* EtherType IPv4 (bytes 08 00), protocol UDP, destination port */
		{ .code = BPF_LDX | BPF_MEM | BPF_H, .dst_reg = BPF_REG_5, .src_reg = BPF_REG_2, .off = 12 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_5, .off = 8, .imm = htons(0x0800) },
		{ .code = BPF_LDX | BPF_MEM | BPF_B, .dst_reg = BPF_REG_5, .src_reg = BPF_REG_2, .off = 23 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_5, .off = 6, .imm = 17 },
		{ .code = BPF_LDX | BPF_MEM | BPF_H, .dst_reg = BPF_REG_5, .src_reg = BPF_REG_2, .off = 36 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_5, .off = 4, .imm = htons(PORT_B) },
		/* the payload's first byte: 0x40 (data), not a bind answer */
		{ .code = BPF_LDX | BPF_MEM | BPF_B, .dst_reg = BPF_REG_5, .src_reg = BPF_REG_2, .off = 42 },
		{ .code = BPF_JMP | BPF_JNE | BPF_K, .dst_reg = BPF_REG_5, .off = 2, .imm = 0x40 },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_DROP },
		{ .code = BPF_JMP | BPF_EXIT },
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = XDP_PASS },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "bench_sink", "GPL", prog,
			       sizeof(prog) / sizeof(prog[0]), NULL), err;

	if (fd < 0)
		return -errno;
	err = bpf_xdp_attach((int)if_nametoindex(BENCH_IF_B), fd, XDP_FLAGS_DRV_MODE, NULL);
	close(fd); /* the attachment holds the program */
	return err;
}

/* Frames B's sink dropped (forwarded to B): veB's rx_queue_*_xdp_drops. */
static unsigned long long veb_sunk(void)
{
	char cmd[128], line[256];
	unsigned long long sum = 0, v;
	FILE *p;

	snprintf(cmd, sizeof(cmd), "ip netns exec %s ethtool -S " BENCH_IF_B " 2>/dev/null", veth.ns_b);
	p = popen(cmd, "r");
	if (!p)
		return 0;
	while (fgets(line, sizeof(line), p))
		if (strstr(line, "_xdp_drops:") && sscanf(strchr(line, ':') + 1, "%llu", &v) == 1)
			sum += v;
	pclose(p);
	return sum;
}

/* ---- measurement ---- */

/* Drops counted by one device of the current namespace (rx or tx column
 * of /proc/net/dev): frames lost between the relay and B's sink. */
static unsigned long long dev_drops(const char *dev, int tx)
{
	char line[512];
	unsigned long long v[16] = { 0 };
	FILE *f = fopen("/proc/thread-self/net/dev", "r");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		char *c = strchr(line, ':'), *s = line;

		while (*s == ' ')
			s++;
		if (!c || strncmp(s, dev, strlen(dev)) || s + strlen(dev) != c)
			continue;
		if (sscanf(c + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu",
			   &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9],
			   &v[10], &v[11]) < 12)
			v[3] = v[11] = 0;
	}
	fclose(f);
	return tx ? v[11] : v[3];
}

struct meas {
	double t;
	struct bench_cpu cpu;
	unsigned long long sent, udp, lost;
	long long napi_ns, proc_ns;
};

/* Called in namespace B. */
static void take(struct meas *m, struct bench_lfsrc *src)
{
	m->t = bench_now();
	bench_cpu_snap(&m->cpu);
	m->sent = __atomic_load_n(&src->sent, __ATOMIC_RELAXED);
	m->udp = veb_sunk();
	m->napi_ns = bench_napi_cpu_ns(BENCH_IF_A);
	m->proc_ns = bench_proc_cpu_ns(relay_pid);
	m->lost = dev_drops(BENCH_IF_B, 0);
	bench_veth_enter(&veth, 'A');
	m->lost += dev_drops(BENCH_IF_A, 1);
	bench_veth_enter(&veth, 'B');
}

static void *src_main(void *arg)
{
	struct bench_lfsrc *src = arg;
	int err;

	bench_pin(0);
	err = bench_lfsrc_run(src);
	if (err)
		fprintf(stderr, "live-frame source: %s\n", strerror(-err));
	return NULL;
}

static int phase(enum relay r, const char *relay_node, int secs, struct out *o)
{
	static uint8_t frame[256], payload[PAYLOAD + 4];
	struct bench_lfsrc src = { 0 };
	struct io_addr sa, da;
	struct meas m0, m1;
	pthread_t ft;
	int port, fa = -1, fb = -1, err, len, plen = PAYLOAD;
	uint8_t *pl = payload;

	err = spawn(r, relay_node);
	if (err)
		return err;
	if (r == R_COTURN) {
		port = TURN_PORT;
		usleep(1500 * 1000);
	} else {
		port = weft_port(r);
		if (port < 0) {
			kill_relay();
			return port;
		}
	}
	bench_veth_enter(&veth, 'B');
	fa = sock_b(PORT_A);
	fb = sock_b(PORT_B);
	if (fa < 0 || fb < 0) {
		err = fa < 0 ? fa : fb;
		goto out;
	}
	if (r == R_COTURN) {
		err = turn_channel(fa);
		if (err) {
			fprintf(stderr, "coturn: allocation/channel not answered (see %s/coturn.out)\n",
				tmpdir);
			goto out;
		}
	} else {
		err = weft_bind(fb, port, tok_b);
		if (!err)
			err = weft_bind(fa, port, tok_a);
		if (err) {
			fprintf(stderr, "relay_node %s: bind not answered\n", r_id[r]);
			goto out;
		}
	}
	/* The application payload, as relay_load sends it (QUIC's fixed
	 * bit: never bind-shaped); coturn's carries ChannelData framing. */
	memset(payload, 0x5a, sizeof(payload));
	if (r == R_COTURN) {
		payload[0] = 0x40;
		payload[1] = 0x00;
		payload[2] = 0;
		payload[3] = PAYLOAD;
		payload[4] = 0x40;
		plen = PAYLOAD + 4;
	} else {
		payload[0] = 0x40;
	}
	io_addr_parse(&sa, BENCH_ADDR_B, PORT_A);
	io_addr_parse(&da, BENCH_ADDR_A, (uint16_t)port);
	len = io_hdr_build(frame, sizeof(frame), bench_mac_b, bench_mac_a, &sa, &da, 1, pl,
			   (size_t)plen);
	if (len < 0) {
		err = len;
		goto out;
	}
	if (bench_pin_napi(BENCH_IF_A, 1) <= 0)
		fprintf(stderr, "warning: no NAPI thread of veA found to pin\n");
	bench_pin_napi(BENCH_IF_B, 0);
	/* B's sink shares CPU 0 with the source: real-time, so its 256-frame
	 * ring is drained between the source's batches, not once a CFS slice. */
	bench_napi_fifo(BENCH_IF_B, 50);
	src.frame = frame;
	src.len = (unsigned int)len;
	src.out_ifindex = (int)if_nametoindex(BENCH_IF_B);
	src.restore = 48; /* Ethernet, IPv4, UDP headers: the relays rewrite them */
	pthread_create(&ft, NULL, src_main, &src);
	usleep(700 * 1000); /* warm up */
	take(&m0, &src);
	sleep((unsigned int)secs);
	take(&m1, &src);
	src.stop = 1;
	pthread_join(ft, NULL);
	o->secs = m1.t - m0.t;
	o->offered = (double)(m1.sent - m0.sent) / o->secs;
	o->fwd = (double)(m1.udp - m0.udp) / o->secs;
	o->lost_after = (double)(m1.lost - m0.lost) / o->secs;
	o->cpu_s = (double)((m1.napi_ns - m0.napi_ns) + (m1.proc_ns - m0.proc_ns)) / 1e9;
	o->cpu1_busy = bench_cpu_busy(&m0.cpu, &m1.cpu, 1);
	if (src.sent == 0)
		err = -EIO;
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	bench_veth_enter(&veth, 0);
	kill_relay();
	return err;
}

/*
 * bench/relay.sh's QUIC part (relayed vs direct bulk, measured before this
 * harness runs, in the same invocation): lines "id TAB label TAB value TAB
 * unit" in the file $BENCH_RELAY_EXTRA become figures of this result
 * (ids prefixed "relay."), and the relayed/direct ratio is added.
 */
static void extra_figures(struct bench_result *res)
{
	const char *path = getenv("BENCH_RELAY_EXTRA");
	char line[512], id[80];
	int n = 0;
	FILE *f;

	if (!path || !(f = fopen(path, "r")))
		return;
	while (fgets(line, sizeof(line), f)) {
		char *sp, *fid = strtok_r(line, "\t\n", &sp), *label = strtok_r(NULL, "\t\n", &sp);
		char *val = strtok_r(NULL, "\t\n", &sp), *unit = strtok_r(NULL, "\t\n", &sp);

		if (!fid || !label || !val || !unit)
			continue;
		snprintf(id, sizeof(id), "relay.%s", fid);
		if (!bench_result_figure(res, id, label, strtod(val, NULL), unit))
			n++;
	}
	fclose(f);
	if (!n) {
		bench_result_note(res, "QUIC bulk relayed vs direct: not measured in this run "
				       "(relay.sh printed why)");
		return;
	}
	bench_result_ratio(res, "relay.quic.relayed_vs_direct",
			   "QUIC bulk A -> B, relayed / direct (Mbit/s)", "relay.quic.relayed_mbit_s",
			   "relay.quic.direct_mbit_s", 0);
	printf("QUIC bulk A -> B: figures of bench/relay.sh's first part added (%d)\n", n);
}

int main(int argc, char **argv)
{
	struct bench_result *res = NULL;
	struct out tot[R__MAX] = { 0 };
	char relay_node[512], id[64], label[160], num[64];
	int secs = argc > 1 && atoi(argv[1]) > 0 ? atoi(argv[1]) : 3;
	int rounds = argc > 2 && atoi(argv[2]) > 0 ? atoi(argv[2]) : 2;
	int coturn = 1;
	double per_coturn = 0;

	if (geteuid() != 0) {
		printf("SKIP: bench_relay needs root (BPF, network namespaces)\n");
		return 77;
	}
	if (getenv("RELAY_NODE")) {
		snprintf(relay_node, sizeof(relay_node), "%s", getenv("RELAY_NODE"));
	} else {
		char self[400];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		self[n > 0 ? n : 0] = 0;
		if (strrchr(self, '/'))
			*strrchr(self, '/') = 0;
		snprintf(relay_node, sizeof(relay_node), "%s/../tools/relay_node", self);
	}
	if (getenv("BENCH_RELAY_XDP_MODE"))
		xdp_mode = getenv("BENCH_RELAY_XDP_MODE");
	if (access(relay_node, X_OK)) {
		fprintf(stderr, "%s missing: make build/tools/relay_node\n", relay_node);
		return 1;
	}
	if (system("command -v turnserver >/dev/null 2>&1") != 0 && !getenv("TURNSERVER"))
		coturn = 0;
	if (bench_mkdtemp(tmpdir, sizeof(tmpdir), "/tmp", "weft-relaybench"))
		return 1;
	srand((unsigned int)getpid());
	if (bench_result_new(&res, "relay", argc, argv))
		return 1;
	bench_result_same_work(res, same_work);
	atexit(cleanup);
	if (bench_veth_new(&veth, "rly"))
		return 1;
	bench_veth_enter(&veth, 'B');
	if (veb_sink() < 0) {
		fprintf(stderr, "B's XDP sink on veB refused\n");
		return 1;
	}
	bench_veth_enter(&veth, 0);
	if (!coturn)
		bench_result_note(res, "coturn (turnserver) not installed: no coturn row");
	for (int k = 0; k < rounds; k++)
		for (int r = 0; r < R__MAX; r++) {
			struct out o = { 0 };
			int err;

			if ((r == R_COTURN && !coturn) ||
			    (getenv("BENCH_RELAY_ONLY") && strcmp(getenv("BENCH_RELAY_ONLY"), r_id[r])))
				continue;
			err = phase((enum relay)r, relay_node, secs, &o);
			if (err) {
				fprintf(stderr, "relay %s: %s\n", r_id[r], strerror(-err));
				return 1;
			}
			tot[r].secs += o.secs;
			tot[r].offered += o.offered * o.secs;
			tot[r].fwd += o.fwd * o.secs;
			tot[r].lost_after += o.lost_after * o.secs;
			tot[r].cpu1_busy += o.cpu1_busy * o.secs;
			tot[r].cpu_s += o.cpu_s;
		}
	{
		char load[64] = "?";
		FILE *f = fopen("/proc/loadavg", "r");

		if (f) {
			if (!fgets(load, sizeof(load), f))
				snprintf(load, sizeof(load), "?");
			fclose(f);
		}
		load[strcspn(load, "\n")] = 0;
		printf("relay forwarding, %d-byte payload A -> relay -> B, one live-frame source on "
		       "CPU 0, relay (veA NAPI + process) on CPU 1, %d rounds of %d s per relay, "
		       "loadavg now %s\n",
		       PAYLOAD, rounds, secs, load);
	}
	printf("%-42s %10s %10s %10s %7s %5s %12s %12s %9s\n", "relay", "offered", "forwarded",
	       "lost>B", "cpu s", "cpu1", "fwd/cpu-s", "sent/cpu-s", "vs coturn");
	if (tot[R_COTURN].cpu_s > 0)
		per_coturn = tot[R_COTURN].fwd / tot[R_COTURN].cpu_s;
	for (int r = 0; r < R__MAX; r++) {
		struct out *t = &tot[r];
		double per;

		if (t->secs <= 0)
			continue;
		per = t->cpu_s > 0 ? t->fwd / t->cpu_s : 0;
		t->offered /= t->secs;
		t->fwd /= t->secs;
		t->lost_after /= t->secs;
		t->cpu1_busy /= t->secs;
		printf("%-42s %10.0f %10.0f %10.0f %7.2f %4.0f%% %12.0f %12.0f %8.1fx\n", r_label[r],
		       t->offered, t->fwd, t->lost_after, t->cpu_s, t->cpu1_busy, per,
		       t->cpu_s > 0 ? (t->fwd + t->lost_after) * t->secs / t->cpu_s : 0,
		       per_coturn > 0 ? per / per_coturn : 0);
#define FIG(sfx, text, v, unit)                                                      \
	do {                                                                         \
		snprintf(id, sizeof(id), "relay.%s.%s", r_id[r], sfx);               \
		snprintf(label, sizeof(label), "%s: %s", r_label[r], text);          \
		bench_result_figure(res, id, label, v, unit);                        \
	} while (0)
		FIG("offered_pps", "offered by the live-frame source", t->offered, "pps");
		FIG("fwd_pps", "forwarded (reached B's end)", t->fwd, "pps");
		FIG("lost_after_pps", "lost between relay and B (veth drops)", t->lost_after, "pps");
		FIG("cpu_s", "relay CPU time (veA NAPI thread + relay process)", t->cpu_s, "s");
		FIG("cpu_share", "relay CPU time per second of wall time", 100.0 * t->cpu_s / t->secs, "%");
		FIG("cpu1_busy", "CPU 1 busy (/proc/stat, includes other load)", t->cpu1_busy, "%");
		FIG("fwd_per_cpu_s", "forwarded per CPU-second", per, "packets/CPU-s");
		FIG("sent_per_cpu_s", "sent by the relay (forwarded + lost between relay and B) per CPU-second",
		    t->cpu_s > 0 ? (t->fwd + t->lost_after) * t->secs / t->cpu_s : 0, "packets/CPU-s");
#undef FIG
	}
	for (int r = 0; r < R_COTURN && coturn; r++) {
		snprintf(id, sizeof(id), "relay.%s.vs_coturn", r_id[r]);
		snprintf(label, sizeof(label), "%s / coturn, forwarded per CPU-s", r_label[r]);
		snprintf(num, sizeof(num), "relay.%s.fwd_per_cpu_s", r_id[r]);
		bench_result_ratio(res, id, label, num, "relay.coturn.fwd_per_cpu_s",
				   r == R_XDP ? GOAL_XDP_VS_COTURN : 0);
	}
	bench_result_ratio(res, "relay.xdp.vs_uring", "weft XDP / weft userspace, forwarded per CPU-s",
			   "relay.xdp.fwd_per_cpu_s", "relay.uring.fwd_per_cpu_s", 0);
	extra_figures(res);
	bench_result_param(res, "payload_bytes", PAYLOAD);
	bench_result_param(res, "seconds_per_round", secs);
	bench_result_param(res, "rounds", rounds);
	return bench_result_finish(res);
}
