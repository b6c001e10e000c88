// SPDX-License-Identifier: MIT
/*
 * Memory benchmark (never run by make test; docs/BENCH.md "bench_mem").
 * One run, one JSON result (bench/benchlib.h), three figures of issue 17:
 *
 * (a) Idle weftd: a release weftd as weftlab starts it (--workers 1 --io
 *     uring, loopback, no bootstrap), IDLE_S seconds after its DHT first
 *     answered: RSS, PSS, private memory (/proc/PID/smaps_rollup) and
 *     thread count (/proc/PID/status), median of 5 samples 1 s apart.
 *     Goal: RSS <= 8 MiB.
 *
 * (b) Per stored DHT item / peer: the same weftd gets N_ITEMS BEP 44
 *     immutable items (64-byte values) through real KRPC get + put over
 *     loopback UDP, from N_ITEMS/32 source addresses 127.0.1.x (32 items
 *     each: the per-source cap is 64), one query in flight; then N_ITEMS
 *     announce_peer (get_peers + announce_peer, one distinct infohash
 *     each). Before the baseline every source pings, 1024 pings in all,
 *     so its policer and routing-table state exists and every buffer of
 *     weftd's receive ring has been written once. Per item =
 *     (RSS after - RSS before) / N_ITEMS, each RSS the median of 3
 *     samples. Every put must be acknowledged, and a get of the first and
 *     last item must return its value, or the run fails. Goal: <= 1.5 KiB
 *     per item. Then 256 sources never seen ping twice each: RSS per new
 *     source (the policer's and the DHT's per-source state), what a node
 *     pays per peer it meets.
 *
 * (c) Per idle QUIC connection: two processes (this one the server, a
 *     forked child the client), each one quic_ep (the core weftd's workers
 *     run) on a loopback UDP socket, TLS 1.3 with Ed25519 node
 *     certificates as between weftd nodes. WARM connections first (one-off
 *     allocations: GnuTLS caches, the endpoint's tables), then a baseline
 *     on both sides, then N_CONNS more connections, at most 32 handshakes
 *     in flight, then 500 ms of idle traffic (ACKs, NEW_CONNECTION_ID),
 *     then both sides measure again. Per connection = delta / N_CONNS, of
 *     the heap (mallinfo2: bytes in use, mmapped chunks included) and of
 *     RSS (smaps_rollup), for each side. Goal: <= 64 KiB per connection
 *     (each side). weftd adds its peer table entry per connection (not
 *     counted here; (b) counts the DHT's).
 *
 * Same work: every figure is a delta of one process between two states of
 * the same run, divided by the number of objects added; goals are figures
 * of the result so that the report can show "goal / measured" (>= 1.0x
 * meets a "<=" goal).
 *
 * Usage: bench_mem [N_CONNS [N_ITEMS [IDLE_S]]]  (defaults 1000, 1000, 10;
 *   WEFTD=path overrides the weftd next to build/bench/; AEAD=name sets
 *   (c)'s 1-RTT AEAD by quic.aead's names, default auto as in weftd).
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <nettle/sha1.h>

#include "weft/bencode.h"
#include "weft/identity.h"
#include "weft/quic.h"

#include "benchlib.h"

extern char **environ;

#define WARM_CONNS 16
#define INFLIGHT 32
#define ITEMS_PER_SRC 32
#define VLEN 64
#define WARM_PINGS 1024
#define NEW_SRCS 256
#define GOAL_CONN_BYTES (64.0 * 1024)
#define GOAL_ITEM_BYTES 1536.0
#define GOAL_IDLE_RSS_KIB 8192.0

struct memsnap {
	double rss_kib, pss_kib, priv_kib, anon_kib;
	double heap_bytes; /* in-process only */
	int threads;
};

static int snap(pid_t pid, struct memsnap *m)
{
	char path[64], line[256];
	FILE *f;

	memset(m, 0, sizeof(*m));
	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		double v;

		if (sscanf(line, "Rss: %lf", &v) == 1)
			m->rss_kib = v;
		else if (sscanf(line, "Pss: %lf", &v) == 1)
			m->pss_kib = v;
		else if (sscanf(line, "Private_Clean: %lf", &v) == 1 ||
			 sscanf(line, "Private_Dirty: %lf", &v) == 1)
			m->priv_kib += v;
		else if (sscanf(line, "Anonymous: %lf", &v) == 1)
			m->anon_kib = v;
	}
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "Threads: %d", &m->threads) == 1)
			break;
	fclose(f);
	if (pid == getpid()) {
		struct mallinfo2 mi = mallinfo2();

		m->heap_bytes = (double)mi.uordblks + (double)mi.hblkhd;
	}
	return 0;
}

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Median of n samples taken gap_ms apart, field by field. */
static int snap_median(pid_t pid, int n, int gap_ms, struct memsnap *out)
{
	double rss[8], pss[8], priv[8], anon[8], thr[8];
	struct memsnap m;

	for (int i = 0; i < n; i++) {
		if (i)
			usleep((useconds_t)gap_ms * 1000);
		if (snap(pid, &m))
			return -1;
		rss[i] = m.rss_kib;
		pss[i] = m.pss_kib;
		priv[i] = m.priv_kib;
		anon[i] = m.anon_kib;
		thr[i] = m.threads;
	}
	qsort(rss, (size_t)n, sizeof(double), cmp_dbl);
	qsort(pss, (size_t)n, sizeof(double), cmp_dbl);
	qsort(priv, (size_t)n, sizeof(double), cmp_dbl);
	qsort(anon, (size_t)n, sizeof(double), cmp_dbl);
	qsort(thr, (size_t)n, sizeof(double), cmp_dbl);
	memset(out, 0, sizeof(*out));
	out->rss_kib = rss[n / 2];
	out->pss_kib = pss[n / 2];
	out->priv_kib = priv[n / 2];
	out->anon_kib = anon[n / 2];
	out->threads = (int)thr[n / 2];
	return 0;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int udp_bound(const char *ip, uint16_t port, struct sockaddr_in *out)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port) };
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int big = 4 << 20;

	if (fd < 0)
		return -1;
	inet_pton(AF_INET, ip, &sa.sin_addr);
	setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl)) {
		close(fd);
		return -1;
	}
	if (out)
		*out = sa;
	return fd;
}

/* ---- (c) QUIC: one endpoint per process on a loopback socket ---- */

struct side {
	int fd;
	struct quic_ep *ep;
	struct sockaddr_in local;
	unsigned int established, closed;
};

static int side_send(void *arg, const uint8_t *buf, size_t len, size_t gso,
		     const struct sockaddr *to, socklen_t tolen, const struct sockaddr *local)
{
	struct side *s = arg;

	(void)local;
	for (size_t off = 0; off < len; off += gso) {
		size_t n = len - off < gso ? len - off : gso;

		if (sendto(s->fd, buf + off, n, 0, to, tolen) < 0)
			return -errno;
	}
	return 0;
}

static void side_on_conn(void *arg, struct quic_conn *c, const uint8_t *pk)
{
	struct side *s = arg;

	(void)c;
	(void)pk;
	s->established++;
}

static void side_on_closed(void *arg, struct quic_conn *c, const struct quic_close_info *ci)
{
	struct side *s = arg;

	(void)c;
	(void)ci;
	s->closed++;
}

static int side_new(struct side *s, const struct identity *id, int server)
{
	struct quic_ep_opts o = { 0 };

	memset(s, 0, sizeof(*s));
	s->fd = udp_bound("127.0.0.1", 0, &s->local);
	if (s->fd < 0)
		return -1;
	o.node_pk = id->pk;
	o.node_sk = id->sk;
	o.local = (struct sockaddr *)&s->local;
	o.local_len = sizeof(s->local);
	o.server = server;
	o.max_conns = 8192;
	o.max_conns_per_addr = 8192;
	o.idle_timeout_ms = 600000; /* idle for the whole run */
	o.retry_mode = QUIC_RETRY_NEVER;
	/* AEAD=name (quic.aead's names): the 1-RTT AEAD; default auto, as weftd */
	if (getenv("AEAD"))
		o.aead = quic_aead_parse(getenv("AEAD"));
	o.send = side_send;
	o.send_arg = s;
	o.cb.on_conn = side_on_conn;
	o.cb.on_closed = side_on_closed;
	o.cb_arg = s;
	return quic_ep_new(&s->ep, &o) ? -1 : 0;
}

/* Run the endpoint for up to ms; returns early (1) when ctl_fd is readable. */
static int side_pump(struct side *s, int ms, int ctl_fd)
{
	uint64_t end = now_ns() + (uint64_t)ms * 1000000ULL;
	uint8_t buf[65536];

	for (;;) {
		uint64_t t = now_ns(), exp = quic_ep_expiry(s->ep), wait = end > t ? end - t : 0;
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
				       { .fd = ctl_fd, .events = POLLIN } };

		if (exp <= t) {
			quic_ep_handle_expiry(s->ep, t);
			continue;
		}
		if (exp - t < wait)
			wait = exp - t;
		if (t >= end)
			return 0;
		poll(p, ctl_fd >= 0 ? 2 : 1, (int)(wait / 1000000ULL) + 1);
		for (int i = 0; i < 256; i++) {
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(s->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

			if (n < 0)
				break;
			quic_ep_input(s->ep, buf, (size_t)n, (struct sockaddr *)&s->local,
				      sizeof(s->local), (struct sockaddr *)&from, fl, now_ns());
		}
		if (ctl_fd >= 0 && (p[1].revents & (POLLIN | POLLHUP)))
			return 1;
	}
}

/* Client: dial target more connections (at most INFLIGHT handshakes
 * pending) until est reaches it; deadline 60 s. */
static int side_dial(struct side *s, const struct sockaddr_in *srv, const uint8_t *srv_pk,
		     unsigned int target)
{
	uint64_t deadline = now_ns() + 60000000000ULL;
	unsigned int dialed = s->established + s->closed;

	while (s->established < target) {
		if (s->closed)
			return -1;
		while (dialed < target && dialed - s->established < INFLIGHT) {
			struct quic_conn *c;

			if (quic_ep_connect(s->ep, (const struct sockaddr *)srv, sizeof(*srv), srv_pk,
					    now_ns(), &c))
				return -1;
			dialed++;
		}
		side_pump(s, 5, -1);
		if (now_ns() > deadline)
			return -1;
	}
	return 0;
}

struct child_report {
	struct memsnap a, b;
	unsigned int established, closed;
	int ok;
};

static void quic_child(const struct identity *cid, const struct identity *sid,
		       const struct sockaddr_in *srv, unsigned int n, int rep_fd, int ctl_fd)
{
	struct child_report r = { 0 };
	struct side s;
	char c;

	if (side_new(&s, cid, 0))
		goto out;
	if (side_dial(&s, srv, sid->pk, WARM_CONNS))
		goto out;
	side_pump(&s, 300, -1);
	snap(getpid(), &r.a);
	/* Wait for the server's baseline ('g'), serving its packets. */
	while (!side_pump(&s, 1000, ctl_fd))
		;
	if (read(ctl_fd, &c, 1) != 1 || c != 'g')
		goto out;
	if (side_dial(&s, srv, sid->pk, WARM_CONNS + n))
		goto out;
	side_pump(&s, 500, -1);
	snap(getpid(), &r.b);
	r.ok = 1;
out:
	r.established = s.established;
	r.closed = s.closed;
	if (write(rep_fd, &r, sizeof(r)) != sizeof(r))
		_exit(1);
	/* Stay up (idle connections) until the server has measured. */
	if (s.ep)
		while (!side_pump(&s, 1000, ctl_fd))
			;
	_exit(0);
}

/* The child reported before the server's side was done: it gave up
 * dialling (a connection closed, or 60 s passed). Say how far it got. */
static void child_gave_up(int fd)
{
	struct child_report cr = { 0 };

	if (read(fd, &cr, sizeof(cr)) == sizeof(cr))
		fprintf(stderr, "quic client gave up (%u established, %u closed)\n",
			cr.established, cr.closed);
	else
		fprintf(stderr, "quic client gave up\n");
}

static void figure_pair(struct bench_result *res, const char *id, const char *label, double v,
			const char *unit)
{
	bench_result_figure(res, id, label, v, unit);
	printf("  %-58s %12.1f %s\n", label, v, unit);
}

static int quic_part(struct bench_result *res, unsigned int n)
{
	struct identity cid, sidn;
	uint8_t seed[IDENTITY_SEED_LEN];
	struct child_report cr;
	struct memsnap a, b;
	struct side s;
	int rep[2], ctl[2], st, rc = -1;
	pid_t pid;

	memset(seed, 0x51, sizeof(seed));
	identity_from_seed(&sidn, seed);
	memset(seed, 0xc1, sizeof(seed));
	identity_from_seed(&cid, seed);
	if (side_new(&s, &sidn, 1) || pipe(rep) || pipe(ctl))
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		close(rep[0]);
		close(ctl[1]);
		close(s.fd);
		quic_child(&cid, &sidn, &s.local, n, rep[1], ctl[0]);
	}
	close(rep[1]);
	close(ctl[0]);
	while (s.established < WARM_CONNS)
		if (side_pump(&s, 100, rep[0])) {
			child_gave_up(rep[0]);
			goto out;
		}
	side_pump(&s, 300, -1);
	snap(getpid(), &a);
	if (write(ctl[1], "g", 1) != 1)
		goto out;
	while (s.established < WARM_CONNS + n)
		if (side_pump(&s, 100, rep[0])) {
			child_gave_up(rep[0]);
			goto out;
		}
	side_pump(&s, 500, -1);
	snap(getpid(), &b);
	while (!side_pump(&s, 1000, rep[0]))
		;
	if (read(rep[0], &cr, sizeof(cr)) != sizeof(cr) || !cr.ok) {
		fprintf(stderr, "quic client failed (%u established, %u closed)\n", cr.established,
			cr.closed);
		goto out;
	}
	if (s.closed) {
		fprintf(stderr, "quic: %u connections closed during the run\n", s.closed);
		goto out;
	}
	printf("QUIC, %u idle connections after %u warm ones (per connection):\n", n, WARM_CONNS);
	figure_pair(res, "quic.server.heap_per_conn", "QUIC server side: heap per idle connection",
		    (b.heap_bytes - a.heap_bytes) / n, "B");
	figure_pair(res, "quic.server.rss_per_conn", "QUIC server side: RSS per idle connection",
		    (b.rss_kib - a.rss_kib) * 1024 / n, "B");
	figure_pair(res, "quic.client.heap_per_conn", "QUIC client side: heap per idle connection",
		    (cr.b.heap_bytes - cr.a.heap_bytes) / n, "B");
	figure_pair(res, "quic.client.rss_per_conn", "QUIC client side: RSS per idle connection",
		    (cr.b.rss_kib - cr.a.rss_kib) * 1024 / n, "B");
	bench_result_figure(res, "goal.quic_conn", "goal (issue 17): per idle QUIC connection, at most",
			    GOAL_CONN_BYTES, "B");
	bench_result_ratio(res, "quic.server.goal_over_rss",
			   "idle QUIC connection, server RSS: goal 64 KiB / measured", "goal.quic_conn",
			   "quic.server.rss_per_conn", 1.0);
	bench_result_ratio(res, "quic.client.goal_over_rss",
			   "idle QUIC connection, client RSS: goal 64 KiB / measured", "goal.quic_conn",
			   "quic.client.rss_per_conn", 1.0);
	rc = 0;
out:
	close(ctl[1]);
	waitpid(pid, &st, 0);
	close(rep[0]);
	quic_ep_free(s.ep);
	close(s.fd);
	return rc;
}

/* ---- (a), (b): a weftd and real KRPC over loopback ---- */

struct krpc_src {
	int fd;
	uint8_t id[20];
};

static uint16_t free_udp_port(void)
{
	struct sockaddr_in sa;
	int fd = udp_bound("127.0.0.1", 0, &sa);

	if (fd < 0)
		return 0;
	close(fd);
	return ntohs(sa.sin_port);
}

/* One query, one answer (t matched), 4 tries 500 ms apart. Returns the
 * answer's length in ans (a 'r' message), or -1. */
static ssize_t krpc_call(struct krpc_src *src, const struct sockaddr_in *dst, const uint8_t *q,
			 size_t qlen, uint16_t t, uint8_t *ans, size_t cap)
{
	for (int tries = 0; tries < 4; tries++) {
		uint64_t end = now_ns() + 500000000ULL;

		if (sendto(src->fd, q, qlen, 0, (const struct sockaddr *)dst, sizeof(*dst)) < 0)
			return -1;
		while (now_ns() < end) {
			struct pollfd p = { .fd = src->fd, .events = POLLIN };
			struct bencode_node nodes[256];
			struct bencode_doc doc = { .nodes = nodes, .cap = 256 };
			const struct bencode_node *tt, *y;
			ssize_t n;

			poll(&p, 1, 50);
			n = recv(src->fd, ans, cap, 0);
			if (n <= 0)
				continue;
			if (bencode_decode(&doc, ans, (size_t)n, 0, NULL))
				continue;
			tt = bencode_dict_get_type(&doc, bencode_root(&doc), "t", BENCODE_STR);
			y = bencode_dict_get_type(&doc, bencode_root(&doc), "y", BENCODE_STR);
			if (!tt || tt->slen != 2 || !y || y->slen != 1 ||
			    ((tt->s[0] << 8) | tt->s[1]) != t)
				continue; /* a query of the node's own, or a stale answer */
			return y->s[0] == 'r' ? n : -1;
		}
	}
	return -1;
}

static void put_t(struct bencode_buf *b, uint16_t t)
{
	uint8_t tb[2] = { (uint8_t)(t >> 8), (uint8_t)t };

	bencode_put_cstr(b, "t");
	bencode_put_str(b, tb, 2);
}

/* Query q with arguments: "id" then the caller's sorted keys (raw). */
static size_t krpc_query(uint8_t *out, size_t cap, const char *q, const uint8_t *id, uint16_t t,
			 const uint8_t *args, size_t alen)
{
	struct bencode_buf b;

	bencode_buf_init(&b, out, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, id, 20);
	bencode_put_raw(&b, args, alen);
	bencode_put_end(&b);
	bencode_put_cstr(&b, "q");
	bencode_put_cstr(&b, q);
	put_t(&b, t);
	bencode_put_cstr(&b, "y");
	bencode_put_cstr(&b, "q");
	bencode_put_end(&b);
	return b.err ? 0 : b.len;
}

/* The "token" of an answer (copied), or -1. */
static int answer_token(const uint8_t *ans, size_t len, uint8_t *tok, size_t *toklen,
			const uint8_t **v, size_t *vlen)
{
	struct bencode_node nodes[256];
	struct bencode_doc doc = { .nodes = nodes, .cap = 256 };
	const struct bencode_node *r, *tk, *vv;

	if (bencode_decode(&doc, ans, len, 0, NULL))
		return -1;
	r = bencode_dict_get_type(&doc, bencode_root(&doc), "r", BENCODE_DICT);
	tk = r ? bencode_dict_get_type(&doc, r, "token", BENCODE_STR) : NULL;
	if (v) {
		vv = r ? bencode_dict_get(&doc, r, "v") : NULL;
		*v = vv ? vv->raw : NULL;
		*vlen = vv ? vv->rawlen : 0;
	}
	if (!tk || tk->slen > 64)
		return -1;
	memcpy(tok, tk->s, tk->slen);
	*toklen = tk->slen;
	return 0;
}

static void item_value(uint8_t *v, unsigned int i)
{
	char s[VLEN + 1];

	snprintf(s, sizeof(s), "bench_mem item %010u ", i);
	memset(s + strlen(s), 'x', VLEN - strlen(s));
	memcpy(v, "64:", 3);
	memcpy(v + 3, s, VLEN);
}

static void sha1(const uint8_t *p, size_t len, uint8_t out[20])
{
	struct sha1_ctx c;

	sha1_init(&c);
	sha1_update(&c, len, p);
	sha1_digest(&c, 20, out);
}

/* get + put of item i (kind 0) or get_peers + announce_peer (kind 1). */
static int krpc_store(struct krpc_src *src, const struct sockaddr_in *dst, unsigned int i,
		      int kind, uint16_t *t)
{
	uint8_t v[3 + VLEN], key[20], q[1500], args[1200], ans[4096], tok[64];
	size_t toklen, ql;
	struct bencode_buf b;
	ssize_t n;

	item_value(v, i);
	sha1(v, sizeof(v), key);
	if (kind)
		key[0] ^= 0x5a; /* an infohash of its own, not the item's target */
	bencode_buf_init(&b, args, sizeof(args));
	bencode_put_cstr(&b, kind ? "info_hash" : "target");
	bencode_put_str(&b, key, 20);
	ql = krpc_query(q, sizeof(q), kind ? "get_peers" : "get", src->id, ++*t, args, b.len);
	n = krpc_call(src, dst, q, ql, *t, ans, sizeof(ans));
	if (n < 0 || answer_token(ans, (size_t)n, tok, &toklen, NULL, NULL))
		return -1;
	bencode_buf_init(&b, args, sizeof(args));
	if (kind) {
		bencode_put_cstr(&b, "implied_port");
		bencode_put_int(&b, 1);
		bencode_put_cstr(&b, "info_hash");
		bencode_put_str(&b, key, 20);
		bencode_put_cstr(&b, "port");
		bencode_put_int(&b, 6881);
		bencode_put_cstr(&b, "token");
		bencode_put_str(&b, tok, toklen);
	} else {
		bencode_put_cstr(&b, "token");
		bencode_put_str(&b, tok, toklen);
		bencode_put_cstr(&b, "v");
		bencode_put_raw(&b, v, sizeof(v));
	}
	ql = krpc_query(q, sizeof(q), kind ? "announce_peer" : "put", src->id, ++*t, args, b.len);
	return ql && krpc_call(src, dst, q, ql, *t, ans, sizeof(ans)) >= 0 ? 0 : -1;
}

/* The value stored for item i comes back from a get. */
static int krpc_check(struct krpc_src *src, const struct sockaddr_in *dst, unsigned int i,
		      uint16_t *t)
{
	uint8_t v[3 + VLEN], key[20], q[512], args[64], ans[4096], tok[64];
	const uint8_t *got;
	size_t toklen, glen, ql;
	struct bencode_buf b;
	ssize_t n;

	item_value(v, i);
	sha1(v, sizeof(v), key);
	bencode_buf_init(&b, args, sizeof(args));
	bencode_put_cstr(&b, "target");
	bencode_put_str(&b, key, 20);
	ql = krpc_query(q, sizeof(q), "get", src->id, ++*t, args, b.len);
	n = krpc_call(src, dst, q, ql, *t, ans, sizeof(ans));
	if (n < 0 || answer_token(ans, (size_t)n, tok, &toklen, &got, &glen))
		return -1;
	return got && glen == sizeof(v) && !memcmp(got, v, glen) ? 0 : -1;
}

static pid_t spawn_weftd(const char *bin, const char *dir, uint16_t qport, uint16_t dport)
{
	char qp[8], dp[8], logp[512];
	char *argv[] = { (char *)bin, "--state-dir", (char *)dir, "--workers", "1", "--io", "uring",
			 "--bind", "127.0.0.1", "--quic-port", qp, "--dht-port", dp,
			 "--log-level", "warn", NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;

	snprintf(qp, sizeof(qp), "%u", qport);
	snprintf(dp, sizeof(dp), "%u", dport);
	snprintf(logp, sizeof(logp), "%s/weftd.log", dir);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, logp, O_WRONLY | O_CREAT | O_TRUNC,
					 0600);
	posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
	if (posix_spawn(&pid, bin, &fa, NULL, argv, environ))
		pid = -1;
	posix_spawn_file_actions_destroy(&fa);
	return pid;
}

static int stop_weftd(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	for (int i = 0; i < 100; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return 0;
		usleep(100000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static int weftd_part(struct bench_result *res, const char *bin, unsigned int nitems,
		      unsigned int idle_s)
{
	char dir[256] = "", cmd[600], label[160];
	unsigned int nsrc = (nitems + ITEMS_PER_SRC - 1) / ITEMS_PER_SRC, i, bad = 0;
	struct krpc_src *src = calloc(nsrc, sizeof(*src));
	struct memsnap idle, m0, m1, m2, m3;
	struct sockaddr_in dht = { .sin_family = AF_INET };
	uint16_t qport = free_udp_port(), dport = free_udp_port(), t = 0;
	uint8_t q[256], ans[4096];
	int rc = -1, up = 0;
	pid_t pid = -1;

	if (!src || bench_mkdtemp(dir, sizeof(dir), "/tmp", "weft-bench-mem") || !qport || !dport ||
	    qport == dport)
		goto out;
	dht.sin_port = htons(dport);
	inet_pton(AF_INET, "127.0.0.1", &dht.sin_addr);
	for (i = 0; i < nsrc; i++) {
		char ip[32];

		snprintf(ip, sizeof(ip), "127.0.%u.%u", 1 + i / 250, 1 + i % 250);
		src[i].fd = udp_bound(ip, 0, NULL);
		if (src[i].fd < 0)
			goto out;
		for (int k = 0; k < 20; k++)
			src[i].id[k] = (uint8_t)(i * 131 + k * 7 + 3);
	}
	pid = spawn_weftd(bin, dir, qport, dport);
	if (pid < 0)
		goto out;
	/* Ready: the DHT answers a ping (20 s at most). */
	for (i = 0; i < 10 && !up; i++) {
		size_t ql = krpc_query(q, sizeof(q), "ping", src[0].id, ++t, (const uint8_t *)"", 0);

		up = krpc_call(&src[0], &dht, q, ql, t, ans, sizeof(ans)) >= 0;
	}
	if (!up) {
		fprintf(stderr, "weftd did not answer (log: %s/weftd.log)\n", dir);
		goto out;
	}
	printf("weftd %s, idle %u s after its DHT answered (median of 5 samples 1 s apart):\n", bin,
	       idle_s);
	sleep(idle_s);
	if (snap_median(pid, 5, 1000, &idle))
		goto out;
	figure_pair(res, "weftd.idle.rss", "idle weftd: RSS", idle.rss_kib, "KiB");
	figure_pair(res, "weftd.idle.pss", "idle weftd: PSS", idle.pss_kib, "KiB");
	figure_pair(res, "weftd.idle.private", "idle weftd: private memory", idle.priv_kib, "KiB");
	figure_pair(res, "weftd.idle.anon", "idle weftd: anonymous memory", idle.anon_kib, "KiB");
	figure_pair(res, "weftd.idle.threads", "idle weftd: threads", idle.threads, "");
	bench_result_figure(res, "goal.idle_rss", "goal (issues 17, 18): idle weftd RSS, at most",
			    GOAL_IDLE_RSS_KIB, "KiB");
	bench_result_ratio(res, "weftd.idle.goal_over_rss", "idle weftd RSS: goal 8 MiB / measured",
			   "goal.idle_rss", "weftd.idle.rss", 1.0);

	/* Every source known to the node before the baseline, and WARM_PINGS
	 * datagrams through its receive ring (each lands in the next of its
	 * 256 buffers and touches a page there: without this the ring's
	 * pages would be counted as the items'). */
	for (i = 0; i < (nsrc > WARM_PINGS ? nsrc : WARM_PINGS); i++) {
		struct krpc_src *s = &src[i % nsrc];
		size_t ql = krpc_query(q, sizeof(q), "ping", s->id, ++t, (const uint8_t *)"", 0);

		if (krpc_call(s, &dht, q, ql, t, ans, sizeof(ans)) < 0)
			bad++;
	}
	sleep(1);
	if (bad || snap_median(pid, 3, 300, &m0))
		goto fail;
	snprintf(label, sizeof(label), "weftd RSS after %u pings from %u sources (receive ring written)",
		 nsrc > WARM_PINGS ? nsrc : WARM_PINGS, nsrc);
	figure_pair(res, "weftd.warm.rss", label, m0.rss_kib, "KiB");
	for (i = 0; i < nitems; i++)
		if (krpc_store(&src[i / ITEMS_PER_SRC], &dht, i, 0, &t))
			bad++;
	if (bad || krpc_check(&src[0], &dht, 0, &t) ||
	    krpc_check(&src[nsrc - 1], &dht, nitems - 1, &t))
		goto fail;
	sleep(1);
	if (snap_median(pid, 3, 300, &m1))
		goto fail;
	for (i = 0; i < nitems; i++)
		if (krpc_store(&src[i / ITEMS_PER_SRC], &dht, i, 1, &t))
			bad++;
	sleep(1);
	if (bad || snap_median(pid, 3, 300, &m2))
		goto fail;
	/* Sources never seen, two pings each: what a node pays per peer. */
	for (i = 0; i < NEW_SRCS && !bad; i++) {
		struct krpc_src ns;
		char ip[32];

		snprintf(ip, sizeof(ip), "127.0.%u.%u", 200 + i / 250, 1 + i % 250);
		ns.fd = udp_bound(ip, 0, NULL);
		if (ns.fd < 0)
			goto fail;
		for (int k = 0; k < 20; k++)
			ns.id[k] = (uint8_t)(i * 37 + k * 11 + 5);
		for (int k = 0; k < 2; k++) {
			size_t ql = krpc_query(q, sizeof(q), "ping", ns.id, ++t, (const uint8_t *)"", 0);

			if (krpc_call(&ns, &dht, q, ql, t, ans, sizeof(ans)) < 0)
				bad++;
		}
		close(ns.fd);
	}
	sleep(1);
	if (bad || snap_median(pid, 3, 300, &m3))
		goto fail;
	printf("DHT, %u BEP 44 items (64-byte values) then %u announced peers, %u sources:\n",
	       nitems, nitems, nsrc);
	snprintf(label, sizeof(label), "DHT: weftd RSS per stored BEP 44 item (%u items)", nitems);
	figure_pair(res, "dht.rss_per_item", label, (m1.rss_kib - m0.rss_kib) * 1024 / nitems, "B");
	snprintf(label, sizeof(label), "DHT: weftd RSS per announced peer (%u infohashes)", nitems);
	figure_pair(res, "dht.rss_per_peer", label, (m2.rss_kib - m1.rss_kib) * 1024 / nitems, "B");
	snprintf(label, sizeof(label), "weftd RSS per new source (%u sources, 2 pings each)", NEW_SRCS);
	figure_pair(res, "weftd.rss_per_source", label, (m3.rss_kib - m2.rss_kib) * 1024 / NEW_SRCS,
		    "B");
	figure_pair(res, "weftd.loaded.threads", "weftd threads after the stores", m2.threads, "");
	bench_result_figure(res, "goal.dht_item", "goal (issue 17): per stored DHT item, at most",
			    GOAL_ITEM_BYTES, "B");
	bench_result_ratio(res, "dht.item.goal_over_rss", "stored DHT item, RSS: goal 1.5 KiB / measured",
			   "goal.dht_item", "dht.rss_per_item", 1.0);
	rc = 0;
	goto out;
fail:
	fprintf(stderr, "DHT stores failed (%u queries unanswered; log: %s/weftd.log)\n", bad, dir);
out:
	if (pid > 0)
		stop_weftd(pid);
	for (i = 0; src && i < nsrc; i++)
		if (src[i].fd > 0)
			close(src[i].fd);
	free(src);
	if (dir[0] && rc == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			rc = -1;
	}
	return rc;
}

int main(int argc, char **argv)
{
	unsigned int nconns = argc > 1 ? (unsigned int)atoi(argv[1]) : 1000;
	unsigned int nitems = argc > 2 ? (unsigned int)atoi(argv[2]) : 1000;
	unsigned int idle_s = argc > 3 ? (unsigned int)atoi(argv[3]) : 10;
	struct bench_result *res = NULL;
	char bin[512];
	const char *w = getenv("WEFTD");
	int rc = 0;

	if (argc > 4 || nconns == 0 || nconns > 4000 || nitems == 0 || nitems > 4096 ||
	    idle_s > 600) {
		fprintf(stderr, "usage: %s [N_CONNS (1..4000) [N_ITEMS (1..4096) [IDLE_S]]]\n",
			argv[0]);
		return 2;
	}
	if (w) {
		snprintf(bin, sizeof(bin), "%s", w);
	} else {
		ssize_t n = readlink("/proc/self/exe", bin, sizeof(bin) - 16);
		char *sl;

		if (n <= 0)
			return 1;
		bin[n] = '\0';
		sl = strrchr(bin, '/');
		*sl = '\0';
		sl = strrchr(bin, '/');
		strcpy(sl ? sl + 1 : bin, "weftd");
	}
	signal(SIGPIPE, SIG_IGN);
	if (bench_result_new(&res, "mem", argc, argv))
		return 1;
	bench_result_same_work(res, "each figure is a delta of one process between two states of "
				    "the same run divided by the objects added (connections, items, "
				    "peers); idle weftd as weftlab starts it; goals are figures, "
				    "goal/measured >= 1.0x meets them");
	bench_result_param(res, "quic_conns", nconns);
	bench_result_param(res, "quic_warm_conns", WARM_CONNS);
	bench_result_param(res, "dht_items", nitems);
	bench_result_param(res, "dht_value_bytes", VLEN);
	bench_result_param(res, "idle_seconds", idle_s);
	if (weftd_part(res, bin, nitems, idle_s)) {
		fprintf(stderr, "weftd part failed\n");
		rc = 1;
	}
	if (quic_part(res, nconns)) {
		fprintf(stderr, "QUIC part failed\n");
		rc = 1;
	}
	bench_result_note(res, "QUIC: quic_ep in two processes over loopback (weftd's per-peer "
			       "table entry not included); DHT and idle: a weftd, --workers 1 --io uring");
	return bench_result_finish(res) || rc;
}
