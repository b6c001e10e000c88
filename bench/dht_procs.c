// SPDX-License-Identifier: MIT
/*
 * bench_dht's servers: the processes parts (a) and (c) start, measure and
 * stop (bench_dht.c's header comment). weftd (the real daemon, io_uring or
 * xdp mode), the libtorrent session (a python3 script), the kernel floor
 * (canned replies through recvmmsg / sendmmsg, no DHT) and the AF_XDP floor
 * (the same replies through weft's engine in xdp mode), each pinned whole
 * to CPU 1, at the site's address (bench_dht.h).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft/bencode.h"
#include "weft/engine.h"
#include "weft/log.h"

#include "bench_dht.h"

/* End a child: its stdin closed (libtorrent) or SIGTERM (weftd), 5 s,
 * then SIGKILL. */
void child_stop(pid_t pid, int term)
{
	if (pid <= 0)
		return;
	if (term)
		kill(pid, SIGTERM);
	for (int i = 0; i < 50; i++) {
		if (waitpid(pid, NULL, WNOHANG) != 0)
			return;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

/* A port free at the servers' address (end A of the veth pair, or here). */
static int free_port(void)
{
	struct sockaddr_in a;
	int fd = server_socket(&a);

	if (fd < 0)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

/* One KRPC query to the servers' address, port (from end B on the veth
 * pair); the reply's length, or -1 (1 s). */
static int krpc_ask(int port, const struct tmpl *q, uint8_t *rep, size_t cap)
{
	struct sockaddr_in me, to = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct pollfd pfd;
	int fd, n = -1;

	if (site.veth)
		bench_veth_enter(site.veth, 'B');
	fd = udp_socket_at(&me, site.veth ? ntohl(inet_addr(BENCH_ADDR_B)) : site.addr);
	if (site.veth)
		bench_veth_enter(site.veth, 0);
	if (fd < 0)
		return -1;
	to.sin_addr.s_addr = htonl(site.addr);
	pfd.fd = fd;
	pfd.events = POLLIN;
	if (sendto(fd, q->buf, q->len, 0, (struct sockaddr *)&to, sizeof(to)) > 0 &&
	    poll(&pfd, 1, 1000) == 1)
		n = (int)recv(fd, rep, cap, 0);
	close(fd);
	return n;
}

/* ---- the libtorrent session ---- */

/* libtorrent session for parts (a) and (c). Prints "ready PORT NODES" and waits for
 * stdin to close. Limits raised so the generator is never rate-limited:
 * dht_block_ratelimit (queries/s per source IP before a 300-s block,
 * default 5), dht_upload_rate_limit (bytes/s the DHT may send, default
 * 8000), plus the loopback routing restrictions lifted. The whole process
 * (every thread the session starts) runs on CPU 1. */
static const char LT_SCRIPT[] =
    "import os, sys, time, warnings\n"
    "warnings.simplefilter('ignore', DeprecationWarning)\n"
    "try:\n"
    "    import libtorrent as lt\n"
    "except ImportError:\n"
    "    print('SKIP no libtorrent', flush=True); sys.exit(77)\n"
    "os.sched_setaffinity(0, {1})\n"
    "s = lt.session({'listen_interfaces': sys.argv[1] + ':0', 'enable_dht': True,\n"
    "    'dht_bootstrap_nodes': '', 'enable_lsd': False, 'enable_upnp': False,\n"
    "    'enable_natpmp': False, 'dht_restrict_routing_ips': False,\n"
    "    'dht_restrict_search_ips': False, 'dht_prefer_verified_node_ids': False,\n"
    "    'dht_block_ratelimit': 1000000000, 'dht_upload_rate_limit': 2000000000,\n"
    "    'alert_mask': 0})\n"
    "for a in sys.argv[2:]:\n"
    "    s.add_dht_node((sys.argv[1], int(a)))\n"
    "end = time.time() + 20\n"
    "while time.time() < end and s.status().dht_nodes < 8:\n"
    "    time.sleep(0.1)\n"
    "print('ready %d %d' % (s.listen_port(), s.status().dht_nodes), flush=True)\n"
    "sys.stdin.read()\n";

int lt_start(struct lt_proc *lt, const struct pnode *fill, int nfill)
{
	int in[2], out[2];
	char *argv[5 + NFILL + 1], ports[NFILL][8], line[128], addr[INET_ADDRSTRLEN];
	struct in_addr ia = { htonl(site.addr) };
	ssize_t r;
	size_t len = 0;

	if (access("/usr/bin/python3", X_OK) || pipe(in) || pipe(out))
		return -1;
	argv[0] = "/usr/bin/python3";
	argv[1] = "-c";
	argv[2] = (char *)LT_SCRIPT;
	argv[3] = (char *)inet_ntop(AF_INET, &ia, addr, sizeof(addr)); /* fillers share it */
	for (int i = 0; i < nfill; i++) {
		snprintf(ports[i], sizeof(ports[i]), "%u", ntohs(fill[i].addr.sin_port));
		argv[4 + i] = ports[i];
	}
	argv[4 + nfill] = NULL;
	fflush(NULL);
	lt->pid = fork();
	if (lt->pid < 0)
		return -1;
	if (!lt->pid) {
		if (site.veth && bench_veth_enter(site.veth, 'A'))
			_exit(127);
		dup2(in[0], 0);
		dup2(out[1], 1);
		close(in[1]);
		close(out[0]);
		execv(argv[0], argv);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	lt->to = in[1];
	lt->from = out[0];
	/* read "ready PORT NODES" while the fillers keep answering */
	while (len < sizeof(line) - 1) {
		r = read(lt->from, line + len, 1);
		if (r <= 0)
			return -1;
		if (line[len] == '\n')
			break;
		len++;
	}
	line[len] = 0;
	if (sscanf(line, "ready %d %u", &lt->port, &lt->nodes) != 2) {
		fprintf(stderr, "libtorrent helper: %s\n", line);
		return -1;
	}
	return 0;
}

void lt_stop(struct lt_proc *lt)
{
	if (lt->pid <= 0)
		return;
	close(lt->to);
	close(lt->from);
	child_stop(lt->pid, 0);
}

/*
 * ---- the kernel floor: answers without a DHT ----
 *
 * Not a contender: what any server pays on this path before doing DHT
 * work. A child process pinned to CPU 1 (as the servers) answers every
 * query from one socket with a canned reply of the shape and size the
 * servers send (ping: 70 bytes; find_node: nodes208, 289; get_peers: plus
 * a token, 306; mean 222 as weftd's), the transaction id copied, through
 * recvmmsg / sendmmsg 64 at a time (blocking). Its replies per CPU-second
 * bound what a server that sends each reply as its own UDP datagram
 * through the kernel can reach here; the ratio floor / libtorrent is the
 * most any such server can show against libtorrent on this machine.
 */
/* The floors' canned replies: ping (70 bytes), find_node (nodes208, 289),
 * get_peers (plus a token, 306); the transaction id at len - 20. */
struct canned {
	uint8_t rep[3][512];
	size_t len[3];
};

static void canned_init(struct canned *c)
{
	uint8_t nodes[208], tail[] = "1:t4:TTTT1:v4:WF001:y1:re";
	struct bencode_buf b;

	memset(nodes, 'n', sizeof(nodes));
	for (int k = 0; k < 3; k++) {
		bencode_buf_init(&b, c->rep[k], sizeof(c->rep[k]));
		bencode_put_raw(&b, "d2:ip6:AAAAAA1:rd2:id20:01234567890123456789", 44);
		if (k) {
			bencode_put_cstr(&b, "nodes");
			bencode_put_str(&b, nodes, sizeof(nodes));
		}
		if (k == 2) {
			bencode_put_cstr(&b, "token");
			bencode_put_str(&b, "kkkkkkkk", 8);
		}
		bencode_put_end(&b);
		bencode_put_raw(&b, tail, sizeof(tail) - 1);
		c->len[k] = b.len;
	}
}

/* The canned answer to query q into out (512 bytes); its length. */
static size_t canned_answer(const struct canned *c, const uint8_t *q, size_t qlen, uint8_t *out)
{
	const uint8_t *t = memmem(q, qlen, "1:t4:", 5);
	int k = memmem(q, qlen, "4:ping", 6) ? 0 : memmem(q, qlen, "9:get_peers", 11) ? 2 : 1;

	memcpy(out, c->rep[k], c->len[k]);
	if (t && t + 9 <= q + qlen)
		memcpy(out + c->len[k] - 20, t + 5, 4);
	return c->len[k];
}

static void floor_serve(int fd)
{
	static uint8_t in[BATCH][2048], out[BATCH][512];
	struct mmsghdr im[BATCH], om[BATCH];
	struct iovec iv[BATCH], ov[BATCH];
	struct sockaddr_storage from[BATCH];
	struct canned c;

	canned_init(&c);
	for (;;) {
		int n;

		for (int i = 0; i < BATCH; i++) {
			iv[i].iov_base = in[i];
			iv[i].iov_len = sizeof(in[i]);
			memset(&im[i].msg_hdr, 0, sizeof(im[i].msg_hdr));
			im[i].msg_hdr.msg_iov = &iv[i];
			im[i].msg_hdr.msg_iovlen = 1;
			im[i].msg_hdr.msg_name = &from[i];
			im[i].msg_hdr.msg_namelen = sizeof(from[i]);
		}
		n = recvmmsg(fd, im, BATCH, MSG_WAITFORONE, NULL);
		for (int i = 0; i < n; i++) {
			ov[i].iov_base = out[i];
			ov[i].iov_len = canned_answer(&c, in[i], im[i].msg_len, out[i]);
			memset(&om[i].msg_hdr, 0, sizeof(om[i].msg_hdr));
			om[i].msg_hdr.msg_iov = &ov[i];
			om[i].msg_hdr.msg_iovlen = 1;
			om[i].msg_hdr.msg_name = &from[i];
			om[i].msg_hdr.msg_namelen = im[i].msg_hdr.msg_namelen;
		}
		if (n > 0 && sendmmsg(fd, om, (unsigned int)n, 0) < 0 && errno == EBADF)
			_exit(0);
	}
}

/* Fork the floor server on CPU 1; its port, or -1. */
int floor_start(pid_t *pid)
{
	struct sockaddr_in a;
	int fd = server_socket(&a);

	*pid = -1;
	if (fd < 0)
		return -1;
	fflush(NULL);
	*pid = fork();
	if (*pid < 0) {
		close(fd);
		return -1;
	}
	if (!*pid) {
		cpu_set_t s;

		CPU_ZERO(&s);
		CPU_SET(1, &s);
		sched_setaffinity(0, sizeof(s), &s);
		floor_serve(fd);
		_exit(0);
	}
	close(fd);
	return ntohs(a.sin_port);
}

/*
 * The AF_XDP floor: the canned replies of floor_serve through weft's
 * engine in xdp mode on veA (the same backend, rings, header build and
 * transmit kicks as weftd --xdp; the engine's built-in steering program
 * instead of weft's policing one), one worker, the whole process on CPU 1,
 * no DHT, guard or policer. What this path itself allows on veth's copy
 * mode: the bound for weftd xdp, as the kernel floor is for a socket.
 */
static void floor_xdp_reply(struct engine_worker *w, const struct engine_pkt *p, void *arg)
{
	uint8_t out[512];
	size_t n = canned_answer(arg, p->data, p->len, out);

	engine_send(w, &p->src, &p->dst, out, n);
}

static void floor_xdp_serve(uint16_t port)
{
	static const int cpus[1] = { 1 };
	static struct canned c;
	struct engine_opts o;
	struct engine *e = NULL;
	sigset_t ss;
	int sig;

	static struct log_ctx quiet;

	log_ctx_init(&quiet, LOG_LVL_WARN, STDERR_FILENO, "floor-xdp");
	log_bind(&quiet);
	canned_init(&c);
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &ss, NULL); /* the worker inherits the mask */
	engine_opts_default(&o);
	o.mode = IO_MODE_XDP;
	o.ifname = BENCH_IF_A;
	o.xskmap_fd = -1;
	o.ports = &port;
	o.nports = 1;
	o.pin_cpus = 1;
	o.cpus = cpus;
	if (engine_new(&e, &o) || engine_register(e, port, floor_xdp_reply, &c) || engine_start(e)) {
		fprintf(stderr, "xdp floor: engine in xdp mode on " BENCH_IF_A " did not start\n");
		_exit(1);
	}
	sigwait(&ss, &sig);
	engine_stop(e);
	engine_free(e);
	_exit(0);
}

/* Fork the AF_XDP floor in end A on CPU 1 and wait until it answers a
 * ping (10 s); its port, or -1. */
int floor_xdp_start(pid_t *pid)
{
	uint8_t id[20] = { 3 }, rep[2048];
	struct tmpl ping;
	int port = free_port();

	*pid = -1;
	if (port <= 0)
		return -1;
	fflush(NULL);
	*pid = fork();
	if (*pid < 0)
		return -1;
	if (!*pid) {
		cpu_set_t s;

		if (bench_veth_enter(site.veth, 'A'))
			_exit(127);
		CPU_ZERO(&s);
		CPU_SET(1, &s);
		sched_setaffinity(0, sizeof(s), &s);
		floor_xdp_serve((uint16_t)port);
	}
	make_tmpl(&ping, "ping", id, NULL);
	for (int i = 0; i < 100; i++) {
		if (krpc_ask(port, &ping, rep, sizeof(rep)) > 0)
			return port;
		if (waitpid(*pid, NULL, WNOHANG) != 0) {
			*pid = -1;
			return -1;
		}
		usleep(100000);
	}
	child_stop(*pid, 1);
	*pid = -1;
	return -1;
}

/* ---- weftd, the real daemon ---- */

static const char *weftd_path(char *buf, size_t n)
{
	const char *env = getenv("WEFTD");
	ssize_t len;
	char *slash;

	if (env && *env)
		return env;
	len = readlink("/proc/self/exe", buf, n - 16);
	if (len <= 0)
		return "weftd";
	buf[len] = 0;
	slash = strrchr(buf, '/');
	if (slash)
		*slash = 0;
	slash = strrchr(buf, '/'); /* build/bench -> build */
	if (slash)
		*slash = 0;
	strcat(buf, "/weftd");
	return buf;
}

/*
 * Start weftd (one worker, the whole process on CPU 1, bootstrapped from
 * the fillers) and wait until a find_node answer carries 8 nodes (30 s at
 * most). io "uring": bound to the site's address (loopback, or veA in end
 * A); io "xdp": weft's XDP program native on veA and an AF_XDP socket on
 * its queue (copy mode on veth), end A of the pair. 0 or -1.
 */
int weftd_start(struct weftd_proc *w, const struct pnode *fill, int nfill, const char *io)
{
	char exe[4096], port[16], qport[16], boot[NFILL][32], log[96], addr[INET_ADDRSTRLEN];
	struct in_addr ia = { htonl(site.addr) };
	char *argv[24 + 2 * NFILL];
	const char *bin = weftd_path(exe, sizeof(exe));
	uint8_t id[20] = { 1 }, target[20] = { 2 }, rep[2048];
	struct tmpl fq;
	int a = 0;

	if (bench_mkdtemp(w->dir, sizeof(w->dir), "/tmp", "wbdht"))
		return -1;
	w->port = free_port();
	snprintf(port, sizeof(port), "%d", w->port);
	snprintf(qport, sizeof(qport), "%d", free_port());
	argv[a++] = (char *)bin;
	argv[a++] = "--state-dir";
	argv[a++] = w->dir;
	inet_ntop(AF_INET, &ia, addr, sizeof(addr));
	if (!strcmp(io, "xdp")) {
		argv[a++] = "--xdp";
		argv[a++] = BENCH_IF_A;
	} else {
		argv[a++] = "--io";
		argv[a++] = "uring";
		argv[a++] = "--bind";
		argv[a++] = addr;
	}
	argv[a++] = "--workers";
	argv[a++] = "1";
	argv[a++] = "--cpus";
	argv[a++] = "1";
	argv[a++] = "--dht-port";
	argv[a++] = port;
	argv[a++] = "--quic-port";
	argv[a++] = qport;
	argv[a++] = "--log-level";
	argv[a++] = "warn";
	argv[a++] = "--set";
	argv[a++] = "xdp.unvalidated_dht_pps=0";
	for (int i = 0; i < nfill; i++) {
		snprintf(boot[i], sizeof(boot[i]), "%s:%u", addr, ntohs(fill[i].addr.sin_port));
		argv[a++] = "--bootstrap";
		argv[a++] = boot[i];
	}
	argv[a] = NULL;
	snprintf(log, sizeof(log), "%s/weftd.log", w->dir);
	fflush(NULL); /* the child's freopen must not write our buffer again */
	w->pid = fork();
	if (w->pid < 0)
		return -1;
	if (!w->pid) {
		cpu_set_t s;
		FILE *f = freopen(log, "w", stdout);

		(void)f;
		if (site.veth && bench_veth_enter(site.veth, 'A'))
			_exit(127);
		dup2(1, 2);
		CPU_ZERO(&s);
		CPU_SET(1, &s);
		sched_setaffinity(0, sizeof(s), &s); /* every thread inherits it */
		execv(bin, argv);
		_exit(127);
	}
	make_tmpl(&fq, "find_node", id, target);
	for (int i = 0; i < 300; i++) {
		int n = krpc_ask(w->port, &fq, rep, sizeof(rep));

		if (n > 0 && memmem(rep, (size_t)n, "5:nodes208:", 11))
			return 0;
		if (waitpid(w->pid, NULL, WNOHANG) != 0) {
			char tail[160];

			fprintf(stderr, "weftd (--io %s) exited; the end of its log:\n", io);
			snprintf(tail, sizeof(tail), "tail -n 5 '%s' >&2", log);
			if (system(tail))
				fprintf(stderr, "(no log)\n");
			w->pid = 0;
			return -1;
		}
		usleep(100000);
	}
	fprintf(stderr, "weftd did not answer find_node with 8 nodes in 30 s; log: %s\n", log);
	return -1;
}

void weftd_stop(struct weftd_proc *w)
{
	const char *base = strrchr(w->dir, '/');
	char cmd[128];

	child_stop(w->pid, 1);
	/* Only a directory this file made (wbdht.XXXXXX, no quote). */
	if (base && !strncmp(base, "/wbdht.", 7) && !strchr(w->dir, '\'')) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", w->dir);
		if (system(cmd))
			fprintf(stderr, "could not remove %s\n", w->dir);
	}
}

/* Counter name of weftd's io totals (GET /v1/io/stats, curl on its control
 * socket), or -1. */
double weftd_io_total(const struct weftd_proc *w, const char *name)
{
	char cmd[256], buf[16384], key[64], *p;
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "curl -s --max-time 5 --unix-socket %s/weftd.sock http://weftd/v1/io/stats",
		 w->dir);
	f = popen(cmd, "r");
	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	pclose(f);
	buf[n] = 0;
	p = strstr(buf, "\"total\"");
	snprintf(key, sizeof(key), "\"%s\":", name);
	p = p ? strstr(p, key) : NULL;
	return p ? atof(p + strlen(key)) : -1;
}
