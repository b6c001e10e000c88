// SPDX-License-Identifier: MIT
/*
 * DHT benchmark (never run by make test). Two parts, one run:
 *
 * (a) KRPC queries answered per second by one DHT instance, weft and
 *     libtorrent 2.0.8 (python3-libtorrent, a session bound to 127.0.0.1 with
 *     every outside feature off and its DHT limits raised, see LT_SCRIPT),
 *     against the same load generator: one thread on CPU 0 keeps WINDOW
 *     queries outstanding over loopback UDP (ping, find_node, get_peers in
 *     turn; random targets) and counts the replies. The server runs on
 *     CPU 1: weft as one thread (recvmmsg, dht_input, sendmmsg), libtorrent
 *     as its process pinned there. Both first learn the same 16 helper
 *     nodes, so find_node / get_peers answers carry 8 nodes in both. Printed:
 *     replies/s, the server's CPU use over the window, replies per CPU-second
 *     (the per-core figure), mean reply size, lost queries, error replies.
 *
 * (b) Lookup latency and hop counts in a NNET-node weft network in this
 *     process (127.0.0.1 sockets, one poll() thread, bootstrapped from node
 *     0): find_node for the id of a random node and get_peers for infohashes
 *     announced beforehand, one lookup at a time, wall time from start to
 *     callback; p50 / p99, hops (longest referral chain among the k
 *     closest), queries sent, success rate.
 *
 * Usage: bench_dht [SECONDS] [NNET]   (defaults 5 and 200)
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "weft/bencode.h"
#include "weft/dht.h"

#define WINDOW 128   /* queries the generator keeps outstanding */
#define BATCH 64     /* datagrams per recvmmsg / sendmmsg */
#define NFILL 16     /* helper nodes both servers learn */
#define LOST_MS 500  /* an unanswered query is counted lost after this */
#define NLOOKUPS 200 /* lookups per kind in part (b) */
#define NANNOUNCE 50 /* infohashes announced in part (b) */

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static void pin(int cpu)
{
	cpu_set_t s;

	CPU_ZERO(&s);
	CPU_SET(cpu, &s);
	pthread_setaffinity_np(pthread_self(), sizeof(s), &s);
}

static int udp_socket(struct sockaddr_in *a)
{
	socklen_t al = sizeof(*a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), sz = 4 << 20;

	if (fd < 0)
		return -1;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(a, 0, sizeof(*a));
	a->sin_family = AF_INET;
	a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)a, sizeof(*a)) ||
	    getsockname(fd, (struct sockaddr *)a, &al)) {
		close(fd);
		return -1;
	}
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

struct pnode {
	int fd;
	struct dht *dht;
	struct sockaddr_in addr;
};

static int pnode_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		      socklen_t tolen)
{
	struct pnode *n = arg;

	return sendto(n->fd, buf, len, 0, to, tolen) < 0 ? -errno : 0;
}

static int pnodes_new(struct pnode *n, int count, int seed_base)
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

static void pnodes_free(struct pnode *n, int count)
{
	for (int i = 0; i < count; i++) {
		dht_free(n[i].dht);
		if (n[i].fd >= 0)
			close(n[i].fd);
	}
}

/* Serve the nodes for up to ms (or until *stop, or until *done). */
static void pump(struct pnode *n, int count, uint64_t ms, atomic_int *stop, const int *done)
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

/* ---------------- part (a): the weft server ---------------- */

struct server {
	int fd;
	struct sockaddr_in addr;
	struct dht *dht;
	atomic_int stop;
	struct mmsghdr out[BATCH];
	struct iovec oiov[BATCH];
	struct sockaddr_storage oaddr[BATCH];
	uint8_t obuf[BATCH][1500];
	unsigned int nout;
	struct dht_stats st;
};

static void server_flush(struct server *s)
{
	unsigned int off = 0;

	while (off < s->nout) {
		int r = sendmmsg(s->fd, s->out + off, s->nout - off, 0);

		if (r <= 0)
			break;
		off += (unsigned int)r;
	}
	s->nout = 0;
}

static int server_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		       socklen_t tolen)
{
	struct server *s = arg;
	unsigned int i;

	if (len > sizeof(s->obuf[0]) || tolen > sizeof(s->oaddr[0]))
		return -EMSGSIZE;
	if (s->nout == BATCH)
		server_flush(s);
	i = s->nout++;
	memcpy(s->obuf[i], buf, len);
	memcpy(&s->oaddr[i], to, tolen);
	s->oiov[i].iov_base = s->obuf[i];
	s->oiov[i].iov_len = len;
	memset(&s->out[i].msg_hdr, 0, sizeof(s->out[i].msg_hdr));
	s->out[i].msg_hdr.msg_iov = &s->oiov[i];
	s->out[i].msg_hdr.msg_iovlen = 1;
	s->out[i].msg_hdr.msg_name = &s->oaddr[i];
	s->out[i].msg_hdr.msg_namelen = tolen;
	return 0;
}

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct mmsghdr in[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_storage from[BATCH];
	static __thread uint8_t ibuf[BATCH][2048];
	uint64_t next = 0;

	pin(1);
	while (!atomic_load(&s->stop)) {
		struct pollfd pfd = {.fd = s->fd, .events = POLLIN};
		uint64_t now = now_ms();
		int n;

		if (now >= next) {
			dht_periodic(s->dht, now, &next);
			server_flush(s);
		}
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = ibuf[i];
			iov[i].iov_len = sizeof(ibuf[i]);
			memset(&in[i].msg_hdr, 0, sizeof(in[i].msg_hdr));
			in[i].msg_hdr.msg_iov = &iov[i];
			in[i].msg_hdr.msg_iovlen = 1;
			in[i].msg_hdr.msg_name = &from[i];
			in[i].msg_hdr.msg_namelen = sizeof(from[i]);
		}
		n = recvmmsg(s->fd, in, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0) {
			poll(&pfd, 1, 10);
			continue;
		}
		now = now_ms();
		for (int i = 0; i < n; i++)
			dht_input(s->dht, ibuf[i], in[i].msg_len, (struct sockaddr *)&from[i],
				  in[i].msg_hdr.msg_namelen, now);
		server_flush(s);
	}
	dht_get_stats(s->dht, &s->st);
	return NULL;
}

/* ---------------- part (a): the load generator ---------------- */

struct gen_result {
	uint64_t sent, replies, errors, lost, bytes;
};

struct tmpl {
	uint8_t buf[256];
	size_t len, tid_off;
};

static void make_tmpl(struct tmpl *t, const char *method, const uint8_t id[20],
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
}

/* Drive `to` for `secs` after a 0.5-s warm-up; the window counters cover
 * only the measured part. cpu_pid / cpu_tid: whose CPU time to read. */
struct gen_args {
	struct sockaddr_in to;
	double secs;
	/* filled by the generator at the window edges: */
	void (*edge)(void *arg, int end);
	void *edge_arg;
	struct gen_result r;
};

static void gen_run(struct gen_args *g)
{
	struct sockaddr_in me;
	int fd = udp_socket(&me);
	struct tmpl t[3 * 64];
	uint64_t sent_at[WINDOW] = {0};
	uint16_t gen_of[WINDOW] = {0};
	uint8_t busy[WINDOW] = {0};
	unsigned int outstanding = 0, next_t = 0;
	uint16_t generation = 0;
	uint64_t start = now_us(), mstart = start + 500000,
		 mend = mstart + (uint64_t)(g->secs * 1e6);
	int measuring = 0;
	static __thread uint8_t rbuf[BATCH][2048];
	struct mmsghdr in[BATCH], out[BATCH];
	struct iovec iiov[BATCH], oiov[BATCH];
	uint8_t obuf[BATCH][256];
	uint8_t id[20];

	if (fd < 0)
		return;
	pin(0);
	randombytes_buf(id, sizeof(id));
	for (int i = 0; i < 64; i++) {
		uint8_t target[20];

		randombytes_buf(target, sizeof(target));
		make_tmpl(&t[3 * i], "ping", id, target);
		make_tmpl(&t[3 * i + 1], "find_node", id, target);
		make_tmpl(&t[3 * i + 2], "get_peers", id, target);
	}
	memset(&g->r, 0, sizeof(g->r));
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
		for (unsigned int i = 0; i < WINDOW && nsend < BATCH; i++) {
			struct tmpl *q;

			if (busy[i] && now - sent_at[i] > LOST_MS * 1000) {
				busy[i] = 0;
				outstanding--;
				g->r.lost++;
			}
			if (busy[i])
				continue;
			q = &t[next_t++ % (3 * 64)];
			memcpy(obuf[nsend], q->buf, q->len);
			generation++;
			obuf[nsend][q->tid_off] = (uint8_t)(i >> 8);
			obuf[nsend][q->tid_off + 1] = (uint8_t)i;
			obuf[nsend][q->tid_off + 2] = (uint8_t)(generation >> 8);
			obuf[nsend][q->tid_off + 3] = (uint8_t)generation;
			gen_of[i] = generation;
			busy[i] = 1;
			sent_at[i] = now;
			outstanding++;
			oiov[nsend].iov_base = obuf[nsend];
			oiov[nsend].iov_len = q->len;
			memset(&out[nsend].msg_hdr, 0, sizeof(out[nsend].msg_hdr));
			out[nsend].msg_hdr.msg_iov = &oiov[nsend];
			out[nsend].msg_hdr.msg_iovlen = 1;
			out[nsend].msg_hdr.msg_name = &g->to;
			out[nsend].msg_hdr.msg_namelen = sizeof(g->to);
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
			outstanding--;
			if (memmem(rbuf[i], in[i].msg_len, "1:y1:e", 6))
				g->r.errors++;
			else
				g->r.replies++;
			g->r.bytes += in[i].msg_len;
		}
	}
	close(fd);
}

/* CPU time of a thread (clock id) or a process (/proc/pid/stat), in s. */
static double cpu_clock(clockid_t c)
{
	struct timespec ts;

	clock_gettime(c, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_proc(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return 0;
	}
	fclose(f);
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

struct cpu_probe {
	int is_thread;
	clockid_t clk;
	pid_t pid;
	double t0, t1, w0, w1;
};

static void cpu_edge(void *arg, int end)
{
	struct cpu_probe *c = arg;
	double v = c->is_thread ? cpu_clock(c->clk) : cpu_proc(c->pid);
	double w = now_us() / 1e6;

	if (end) {
		c->t1 = v;
		c->w1 = w;
	} else {
		c->t0 = v;
		c->w0 = w;
	}
}

struct row {
	const char *name;
	struct gen_result r;
	double wall, cpu;
	unsigned int nodes;
};

static void print_row(const struct row *x)
{
	double rps = (double)x->r.replies / x->wall;

	printf("%-22s %10.0f %8.0f%% %12.0f %9.0f %8llu %7llu %6u\n", x->name, rps,
	       100.0 * x->cpu / x->wall, x->cpu > 0 ? (double)x->r.replies / x->cpu : 0,
	       x->r.replies ? (double)x->r.bytes / (double)x->r.replies : 0,
	       (unsigned long long)x->r.lost, (unsigned long long)x->r.errors, x->nodes);
}

/* libtorrent session for part (a). Prints "ready PORT NODES" and waits for
 * stdin to close. Limits raised so the generator is never rate-limited:
 * dht_block_ratelimit (queries/s per source IP before a 300-s block,
 * default 5), dht_upload_rate_limit (bytes/s the DHT may send, default
 * 8000), plus the loopback routing restrictions lifted. */
static const char LT_SCRIPT[] =
    "import os, sys, time, warnings\n"
    "warnings.simplefilter('ignore', DeprecationWarning)\n"
    "try:\n"
    "    import libtorrent as lt\n"
    "except ImportError:\n"
    "    print('SKIP no libtorrent', flush=True); sys.exit(77)\n"
    "os.sched_setaffinity(0, {1})\n"
    "s = lt.session({'listen_interfaces': '127.0.0.1:0', 'enable_dht': True,\n"
    "    'dht_bootstrap_nodes': '', 'enable_lsd': False, 'enable_upnp': False,\n"
    "    'enable_natpmp': False, 'dht_restrict_routing_ips': False,\n"
    "    'dht_restrict_search_ips': False, 'dht_prefer_verified_node_ids': False,\n"
    "    'dht_block_ratelimit': 1000000000, 'dht_upload_rate_limit': 2000000000,\n"
    "    'alert_mask': 0})\n"
    "for a in sys.argv[1:]:\n"
    "    s.add_dht_node(('127.0.0.1', int(a)))\n"
    "end = time.time() + 20\n"
    "while time.time() < end and s.status().dht_nodes < 8:\n"
    "    time.sleep(0.1)\n"
    "print('ready %d %d' % (s.listen_port(), s.status().dht_nodes), flush=True)\n"
    "sys.stdin.read()\n";

struct lt_proc {
	pid_t pid;
	int to, from;
	int port;
	unsigned int nodes;
};

static int lt_start(struct lt_proc *lt, const struct pnode *fill, int nfill)
{
	int in[2], out[2];
	char *argv[4 + NFILL + 1], ports[NFILL][8], line[128];
	ssize_t r;
	size_t len = 0;

	if (access("/usr/bin/python3", X_OK) || pipe(in) || pipe(out))
		return -1;
	argv[0] = "/usr/bin/python3";
	argv[1] = "-c";
	argv[2] = (char *)LT_SCRIPT;
	for (int i = 0; i < nfill; i++) {
		snprintf(ports[i], sizeof(ports[i]), "%u", ntohs(fill[i].addr.sin_port));
		argv[3 + i] = ports[i];
	}
	argv[3 + nfill] = NULL;
	lt->pid = fork();
	if (lt->pid < 0)
		return -1;
	if (!lt->pid) {
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

static void lt_stop(struct lt_proc *lt)
{
	if (lt->pid <= 0)
		return;
	close(lt->to);
	close(lt->from);
	for (int i = 0; i < 50; i++) {
		if (waitpid(lt->pid, NULL, WNOHANG) != 0)
			return;
		usleep(100000);
	}
	kill(lt->pid, SIGTERM);
	waitpid(lt->pid, NULL, 0);
}

struct fill_thread {
	struct pnode *n;
	atomic_int stop;
};

static void *fill_main(void *arg)
{
	struct fill_thread *f = arg;

	pump(f->n, NFILL, 1000000000ULL, &f->stop, NULL);
	return NULL;
}

static int part_a(double secs)
{
	struct pnode fill[NFILL];
	struct fill_thread ft = {.n = fill};
	struct server *srv = calloc(1, sizeof(*srv));
	struct lt_proc lt = {0};
	struct row rows[2];
	int nrows = 0, have_lt;
	pthread_t fth, sth;
	struct dht_opts o = {.send = server_send, .limits = open_limits()};

	if (!srv || pnodes_new(fill, NFILL, 0xa0))
		return -1;
	srv->fd = udp_socket(&srv->addr);
	o.send_arg = srv;
	if (srv->fd < 0 || dht_new(&srv->dht, &o))
		return -1;
	/* the helpers ping the weft server and enter its table */
	for (int i = 0; i < NFILL; i++)
		dht_add_node(fill[i].dht, (struct sockaddr *)&srv->addr, sizeof(srv->addr),
			     now_ms());
	pthread_create(&fth, NULL, fill_main, &ft);
	pthread_create(&sth, NULL, server_main, srv);
	have_lt = !lt_start(&lt, fill, NFILL);
	sleep(2); /* questionable helpers get pinged and become good */

	{
		struct cpu_probe cp = {.is_thread = 1};
		struct gen_args g = {.to = srv->addr, .secs = secs, .edge = cpu_edge};

		pthread_getcpuclockid(sth, &cp.clk);
		g.edge_arg = &cp;
		gen_run(&g);
		atomic_store(&srv->stop, 1);
		pthread_join(sth, NULL);
		rows[nrows].name = "weft (1 thread)";
		rows[nrows].r = g.r;
		rows[nrows].wall = cp.w1 - cp.w0;
		rows[nrows].cpu = cp.t1 - cp.t0;
		rows[nrows].nodes = srv->st.nodes4;
		nrows++;
	}
	if (have_lt) {
		struct cpu_probe cp = {.pid = lt.pid};
		struct gen_args g = {.secs = secs, .edge = cpu_edge};

		g.to.sin_family = AF_INET;
		g.to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		g.to.sin_port = htons((uint16_t)lt.port);
		g.edge_arg = &cp;
		gen_run(&g);
		rows[nrows].name = "libtorrent 2.0.8";
		rows[nrows].r = g.r;
		rows[nrows].wall = cp.w1 - cp.w0;
		rows[nrows].cpu = cp.t1 - cp.t0;
		rows[nrows].nodes = lt.nodes;
		nrows++;
		lt_stop(&lt);
	}
	atomic_store(&ft.stop, 1);
	pthread_join(fth, NULL);

	printf("(a) KRPC queries answered, %.0f s, window %d, ping/find_node/get_peers 1:1:1, "
	       "server on CPU 1, generator on CPU 0\n",
	       secs, WINDOW);
	printf("%-22s %10s %9s %12s %9s %8s %7s %6s\n", "server", "replies/s", "cpu",
	       "replies/cpu-s", "bytes/r", "lost", "errors", "nodes");
	for (int i = 0; i < nrows; i++)
		print_row(&rows[i]);
	if (nrows == 2 && rows[1].r.replies && rows[1].cpu > 0)
		printf("ratio weft/libtorrent: %.2fx replies/s, %.2fx replies per CPU-second\n",
		       ((double)rows[0].r.replies / rows[0].wall) /
			   ((double)rows[1].r.replies / rows[1].wall),
		       ((double)rows[0].r.replies / rows[0].cpu) /
			   ((double)rows[1].r.replies / rows[1].cpu));
	else if (!have_lt)
		printf("libtorrent: not available (python3-libtorrent missing), weft only\n");
	dht_free(srv->dht);
	close(srv->fd);
	free(srv);
	pnodes_free(fill, NFILL);
	return 0;
}

/* ---------------- part (b): lookups in a large network ---------------- */

struct lw {
	int done;
	struct dht_result r;
	uint8_t first[DHT_ID_LEN];
	int found_peer;
	uint16_t want_port;
};

static void lw_done(void *arg, const struct dht_result *r)
{
	struct lw *w = arg;

	w->done = 1;
	w->r = *r;
	if (r->nnodes)
		memcpy(w->first, r->nodes[0].id, DHT_ID_LEN);
	for (size_t i = 0; i < r->npeers; i++)
		if (((const struct sockaddr_in *)&r->peers[i])->sin_port == htons(w->want_port))
			w->found_peer = 1;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct stats_b {
	uint64_t lat[NLOOKUPS];
	unsigned int hops[NLOOKUPS], queried[NLOOKUPS];
	int n, ok;
};

static void print_b(const char *name, struct stats_b *s)
{
	double hsum = 0, qsum = 0;
	unsigned int hmax = 0;

	qsort(s->lat, (size_t)s->n, sizeof(s->lat[0]), cmp_u64);
	for (int i = 0; i < s->n; i++) {
		hsum += s->hops[i];
		qsum += s->queried[i];
		if (s->hops[i] > hmax)
			hmax = s->hops[i];
	}
	printf("%-10s %8d %8.1f%% %10.2f %10.2f %10.2f %9.2f %8u %10.1f\n", name, s->n,
	       100.0 * s->ok / s->n, s->lat[s->n / 2] / 1000.0, s->lat[(s->n * 99) / 100] / 1000.0,
	       s->lat[s->n - 1] / 1000.0, hsum / s->n, hmax, qsum / s->n);
}

static int part_b(int nnet)
{
	struct pnode *n = calloc((size_t)nnet, sizeof(*n));
	struct stats_b *fs = calloc(1, sizeof(*fs)), *gs = calloc(1, sizeof(*gs));
	uint8_t ih[NANNOUNCE][DHT_ID_LEN];
	unsigned int seed = 12345, total = 0;
	uint64_t t0;

	if (!n || !fs || !gs || pnodes_new(n, nnet, 0xb0))
		return -1;
	t0 = now_ms();
	for (int i = 1; i < nnet; i++)
		dht_add_node(n[i].dht, (struct sockaddr *)&n[0].addr, sizeof(n[0].addr), now_ms());
	pump(n, nnet, 8000, NULL, NULL);
	for (int i = 0; i < nnet; i++) {
		struct dht_stats st;

		dht_get_stats(n[i].dht, &st);
		total += st.nodes4;
	}
	printf("\n(b) %d weft nodes on 127.0.0.1, one thread; after %.1f s of bootstrap from node "
	       "0: %.1f nodes per routing table\n",
	       nnet, (now_ms() - t0) / 1000.0, (double)total / nnet);
	/* announces */
	for (int k = 0; k < NANNOUNCE; k++) {
		struct lw w = {0};

		randombytes_buf(ih[k], DHT_ID_LEN);
		if (!dht_announce(n[k % nnet].dht, ih[k], (uint16_t)(20000 + k), 0, now_ms(),
				  lw_done, &w))
			pump(n, nnet, 60000, NULL, &w.done);
	}
	for (int k = 0; k < NLOOKUPS; k++) {
		struct lw w = {0};
		int from = (int)(rand_r(&seed) % (unsigned int)nnet);
		int to = (int)(rand_r(&seed) % (unsigned int)nnet);
		uint64_t s0;

		if (to == from)
			to = (to + 1) % nnet;
		s0 = now_us();
		if (dht_find_node(n[from].dht, dht_id(n[to].dht), now_ms(), lw_done, &w))
			continue;
		pump(n, nnet, 60000, NULL, &w.done);
		fs->lat[fs->n] = now_us() - s0;
		fs->hops[fs->n] = w.r.hops;
		fs->queried[fs->n] = w.r.queried;
		fs->ok += w.r.status == 0 && w.r.nnodes &&
			  !memcmp(w.first, dht_id(n[to].dht), DHT_ID_LEN);
		fs->n++;
	}
	for (int k = 0; k < NLOOKUPS; k++) {
		struct lw w = {0};
		int a = k % NANNOUNCE, from = (int)(rand_r(&seed) % (unsigned int)nnet);
		uint64_t s0;

		w.want_port = (uint16_t)(20000 + a);
		s0 = now_us();
		if (dht_get_peers(n[from].dht, ih[a], now_ms(), lw_done, &w))
			continue;
		pump(n, nnet, 60000, NULL, &w.done);
		gs->lat[gs->n] = now_us() - s0;
		gs->hops[gs->n] = w.r.hops;
		gs->queried[gs->n] = w.r.queried;
		gs->ok += w.r.status == 0 && w.found_peer;
		gs->n++;
	}
	printf("%-10s %8s %9s %10s %10s %10s %9s %8s %10s\n", "lookup", "count", "success",
	       "p50 ms", "p99 ms", "max ms", "hops avg", "hops max", "queries");
	if (fs->n)
		print_b("find_node", fs);
	if (gs->n)
		print_b("get_peers", gs);
	{
		uint64_t to = 0, re = 0;

		for (int i = 0; i < nnet; i++) {
			struct dht_stats st;

			dht_get_stats(n[i].dht, &st);
			to += st.timeouts;
			re += st.retries;
		}
		printf("network totals: %llu retries, %llu queries unanswered after retry\n",
		       (unsigned long long)re, (unsigned long long)to);
	}
	pnodes_free(n, nnet);
	free(n);
	free(fs);
	free(gs);
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 5;
	int nnet = argc > 2 ? atoi(argv[2]) : 200;

	if (sodium_init() < 0 || secs <= 0 || nnet < 2 || nnet > 1000) {
		fprintf(stderr, "usage: bench_dht [SECONDS] [NODES]\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if (part_a(secs)) {
		fprintf(stderr, "part (a) failed to set up\n");
		return 1;
	}
	if (part_b(nnet)) {
		fprintf(stderr, "part (b) failed to set up\n");
		return 1;
	}
	return 0;
}
