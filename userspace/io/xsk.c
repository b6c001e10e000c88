// SPDX-License-Identifier: MIT
/*
 * AF_XDP backend (libxdp xsk API). Per queue: a UMEM of xsk_frames frames
 * of 2 KiB, half lent to the fill ring, half kept in a tx frame stack; rx,
 * tx, fill and completion rings; need_wakeup; zero-copy bind tried first,
 * copy mode as the fall-back (recorded in stats.zerocopy).
 *
 * Steering: the socket never loads libxdp's default program (it redirects
 * every frame of the queue, ARP and SSH included). Either weft's XDP
 * program owns the XSKMAP (opts.xskmap_fd), or, with -1, init() loads a
 * small built-in program that redirects only unfragmented IPv4 (no
 * options) / IPv6 (no extension headers) UDP to the served ports and passes
 * everything else to the kernel.
 *
 * Transmit builds Ethernet/IP/UDP with checksums (hdr.c); the next-hop MAC
 * comes from io_neigh (netlink). A datagram whose neighbour is unresolved,
 * or whose route leaves through another interface, goes out through a
 * plain UDP socket bound to the same port (the kernel path, which also
 * triggers ARP/ND) and is counted in tx_kernel. The same sockets receive
 * whatever the XDP program passed to the kernel (rx_kernel).
 */
#include <errno.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <ifaddrs.h>

#include "weft/bpflib.h"
#include "weft/io.h"
#include "weft/log.h"

#define XSK_FRAME 2048
#define XSK_RING 2048
#define XSK_DEFAULT_FRAMES 4096
#define XSK_MAX_BATCH 256
/* Copy-mode transmit sends at most 32 descriptors per kick; a burst of
 * XSK_RING needs 64 kicks. */
#define XSK_MAX_KICKS 128
/* While the AF_XDP ring keeps the worker busy, its kernel-path sockets are
 * drained every XSK_KERNEL_EVERY receive calls (and whenever the wait saw
 * them readable), not on every call: an empty recvmsg per socket per pass
 * was ~1% of a DHT node's CPU for datagrams that almost never come. */
#define XSK_KERNEL_EVERY 16
/* Transmit is kicked once XSK_KICK_BATCH descriptors wait (copy mode's
 * budget per kick), when the RX ring is found empty, and before the wait
 * sleeps: not after every batch of replies. Each kick that finds veth's
 * peer idle wakes its NAPI thread on another CPU (an IPI); kicking per
 * receive batch woke it about every 50 replies. */
#define XSK_KICK_BATCH 32
#define XSK_BUSY_RETRIES 20
#define XSK_BUSY_WAIT_US 50000

struct xsk_ctx {
	int ifindex;
	char ifname[IF_NAMESIZE];
	int map_fd, own_map;
	unsigned int map_base; /* key of rx queue 0's socket in map_fd */
	unsigned int first;    /* our queue i is the interface's rx queue first + i */
	int prog_fd;
	int link_fd; /* bpf_link holding the built-in program on the interface */
	unsigned int nq;
	uint8_t mac[6];
	struct io_addr src4, src6;
};

struct io_queue {
	struct xsk_ctx *ctx;
	struct io_stats *st;
	unsigned int qid, batch, nports;
	uint16_t ports[IO_MAX_PORTS];
	int wake_fd;
	int watch_fd; /* xsk_watch, -1: none */
	int watch_fired; /* found readable since xsk_watch_fired */
	int waited;	 /* xsk_wait polled since xsk_watch_fired */
	void *area;
	size_t area_len;
	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int fd;
	uint64_t *free_frames;
	unsigned int nfree, nframes;
	uint64_t *done; /* rx frames to give back to the fill ring */
	unsigned int ndone;
	unsigned int tx_outstanding;
	unsigned int tx_unkicked; /* submitted since the last kick */
	uint16_t ip_id;
	struct io_neigh *neigh;
	int ksock[IO_MAX_PORTS];
	/* The extra served range (relay ports): received through the XDP
	 * program only; a kernel-path socket per port is opened on the first
	 * send that needs one (unresolved neighbour). */
	uint16_t range_min, range_max;
	int *rksock;
	uint8_t *kbuf; /* kernel-path rx buffers, batch x XSK_FRAME */
	int kready;	     /* the last wait saw a kernel-path socket readable */
	unsigned int kskip;  /* receive calls since the kernel-path sockets were drained */
	uint64_t xstats_ns; /* last XDP_STATISTICS read (CLOCK_MONOTONIC) */
};

/* How often the socket's drop statistics are read while the queue runs. */
#define XSK_STATS_PERIOD_NS 100000000ULL

static inline void st_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

static inline void st_set(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, v, __ATOMIC_RELAXED);
}

/* Copy the socket's XDP_STATISTICS into the queue's counters (they are the
 * kernel's running totals for this socket). */
static void xstats_read(struct io_queue *q)
{
	struct xdp_statistics xs;
	socklen_t len = sizeof(xs);

	memset(&xs, 0, sizeof(xs));
	if (getsockopt(q->fd, SOL_XDP, XDP_STATISTICS, &xs, &len))
		return;
	st_set(&q->st->xsk_rx_dropped, xs.rx_dropped);
	st_set(&q->st->xsk_rx_invalid_descs, xs.rx_invalid_descs);
	st_set(&q->st->xsk_tx_invalid_descs, xs.tx_invalid_descs);
	/* Fields after tx_invalid_descs exist since Linux 5.9; an older
	 * kernel returns a shorter struct and they stay 0. */
	st_set(&q->st->xsk_rx_ring_full, xs.rx_ring_full);
	st_set(&q->st->xsk_rx_fill_ring_empty, xs.rx_fill_ring_empty_descs);
	st_set(&q->st->xsk_tx_ring_empty, xs.tx_ring_empty_descs);
}

static void xstats_maybe(struct io_queue *q)
{
	struct timespec ts;
	uint64_t now;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	if (now - q->xstats_ns < XSK_STATS_PERIOD_NS)
		return;
	q->xstats_ns = now;
	xstats_read(q);
}

/* ---- built-in steering program ---- */

#define INSN(c, d, s, o, i) ((struct bpf_insn){ .code = (c), .dst_reg = (d), .src_reg = (s), .off = (o), .imm = (i) })
#define MOV_REG(d, s) INSN(BPF_ALU64 | BPF_MOV | BPF_X, d, s, 0, 0)
#define MOV_IMM(d, i) INSN(BPF_ALU64 | BPF_MOV | BPF_K, d, 0, 0, i)
#define ADD_IMM(d, i) INSN(BPF_ALU64 | BPF_ADD | BPF_K, d, 0, 0, i)
#define AND_IMM(d, i) INSN(BPF_ALU64 | BPF_AND | BPF_K, d, 0, 0, i)
#define LDX(sz, d, s, o) INSN(BPF_LDX | (sz) | BPF_MEM, d, s, o, 0)
#define JGT_REG(d, s) INSN(BPF_JMP | BPF_JGT | BPF_X, d, s, 0, 0)
#define JEQ_IMM(d, i) INSN(BPF_JMP | BPF_JEQ | BPF_K, d, 0, 0, i)
#define JNE_IMM(d, i) INSN(BPF_JMP | BPF_JNE | BPF_K, d, 0, 0, i)
#define JA() INSN(BPF_JMP | BPF_JA, 0, 0, 0, 0)

struct prog {
	struct bpf_insn insn[96];
	unsigned int n;
};

static unsigned int emit(struct prog *p, struct bpf_insn i)
{
	p->insn[p->n] = i;
	return p->n++;
}

static void jump_to(struct prog *p, unsigned int at, unsigned int target)
{
	p->insn[at].off = (int16_t)(target - at - 1);
}

/* Load the steering program; returns its fd or -errno. */
static int steer_prog_load(int map_fd, const uint16_t *ports, unsigned int nports)
{
	unsigned int to_pass[16], npass = 0, to_redir[IO_MAX_PORTS], i, v4, v6, portchk, redir, pass, j;
	struct prog p = { .n = 0 };
	LIBBPF_OPTS(bpf_prog_load_opts, o);
	int fd;

	emit(&p, MOV_REG(BPF_REG_6, BPF_REG_1));
	emit(&p, LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, data)));
	emit(&p, LDX(BPF_W, BPF_REG_3, BPF_REG_6, offsetof(struct xdp_md, data_end)));
	emit(&p, MOV_REG(BPF_REG_4, BPF_REG_2));
	emit(&p, ADD_IMM(BPF_REG_4, 14));
	to_pass[npass++] = emit(&p, JGT_REG(BPF_REG_4, BPF_REG_3));
	emit(&p, LDX(BPF_H, BPF_REG_5, BPF_REG_2, 12));
	v4 = emit(&p, JEQ_IMM(BPF_REG_5, 0x0008)); /* htons(0x0800) read little-endian */
	v6 = emit(&p, JEQ_IMM(BPF_REG_5, 0xdd86));
	to_pass[npass++] = emit(&p, JA());
	/* IPv4, IHL 5, UDP, not a fragment */
	jump_to(&p, v4, p.n);
	emit(&p, MOV_REG(BPF_REG_4, BPF_REG_2));
	emit(&p, ADD_IMM(BPF_REG_4, 14 + 20 + 8));
	to_pass[npass++] = emit(&p, JGT_REG(BPF_REG_4, BPF_REG_3));
	emit(&p, LDX(BPF_B, BPF_REG_5, BPF_REG_2, 14));
	to_pass[npass++] = emit(&p, JNE_IMM(BPF_REG_5, 0x45));
	emit(&p, LDX(BPF_B, BPF_REG_5, BPF_REG_2, 14 + 9));
	to_pass[npass++] = emit(&p, JNE_IMM(BPF_REG_5, 17));
	emit(&p, LDX(BPF_H, BPF_REG_5, BPF_REG_2, 14 + 6));
	emit(&p, AND_IMM(BPF_REG_5, 0xff3f)); /* MF | offset, little-endian view */
	to_pass[npass++] = emit(&p, JNE_IMM(BPF_REG_5, 0));
	emit(&p, LDX(BPF_H, BPF_REG_5, BPF_REG_2, 14 + 20 + 2));
	portchk = emit(&p, JA());
	/* IPv6, next header UDP */
	jump_to(&p, v6, p.n);
	emit(&p, MOV_REG(BPF_REG_4, BPF_REG_2));
	emit(&p, ADD_IMM(BPF_REG_4, 14 + 40 + 8));
	to_pass[npass++] = emit(&p, JGT_REG(BPF_REG_4, BPF_REG_3));
	emit(&p, LDX(BPF_B, BPF_REG_5, BPF_REG_2, 14 + 6));
	to_pass[npass++] = emit(&p, JNE_IMM(BPF_REG_5, 17));
	emit(&p, LDX(BPF_H, BPF_REG_5, BPF_REG_2, 14 + 40 + 2));
	jump_to(&p, portchk, p.n);
	for (i = 0; i < nports; i++)
		to_redir[i] = emit(&p, JEQ_IMM(BPF_REG_5, (int)(uint16_t)(ports[i] >> 8 | ports[i] << 8)));
	to_pass[npass++] = emit(&p, JA());
	redir = p.n;
	emit(&p, LDX(BPF_W, BPF_REG_2, BPF_REG_6, offsetof(struct xdp_md, rx_queue_index)));
	emit(&p, INSN(BPF_LD | BPF_DW | BPF_IMM, BPF_REG_1, BPF_PSEUDO_MAP_FD, 0, map_fd));
	emit(&p, INSN(0, 0, 0, 0, 0));
	emit(&p, MOV_IMM(BPF_REG_3, XDP_PASS));
	emit(&p, INSN(BPF_JMP | BPF_CALL, 0, 0, 0, BPF_FUNC_redirect_map));
	emit(&p, INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
	pass = p.n;
	emit(&p, MOV_IMM(BPF_REG_0, XDP_PASS));
	emit(&p, INSN(BPF_JMP | BPF_EXIT, 0, 0, 0, 0));
	for (j = 0; j < npass; j++)
		jump_to(&p, to_pass[j], pass);
	for (i = 0; i < nports; i++)
		jump_to(&p, to_redir[i], redir);
	fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "weft_steer", "Dual MIT/GPL", p.insn, p.n, &o);
	return fd < 0 ? -errno : fd;
}

static unsigned int rx_queue_count(const char *ifname)
{
	struct ethtool_channels ch = { .cmd = ETHTOOL_GCHANNELS };
	struct ifreq ifr;
	unsigned int n = 1;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return 1;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	ifr.ifr_data = (void *)&ch;
	if (!ioctl(fd, SIOCETHTOOL, &ifr)) {
		n = ch.combined_count + ch.rx_count;
		if (!n)
			n = 1;
	}
	close(fd);
	return n;
}

static int if_info(struct xsk_ctx *c)
{
	struct ifaddrs *ifa, *i;
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), err = 0;

	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", c->ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr))
		err = -errno;
	else
		memcpy(c->mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
	if (err)
		return err;
	if (getifaddrs(&ifa))
		return -errno;
	for (i = ifa; i; i = i->ifa_next) {
		struct io_addr a;

		if (!i->ifa_addr || strcmp(i->ifa_name, c->ifname))
			continue;
		if (io_addr_from_sockaddr(&a, i->ifa_addr, sizeof(struct sockaddr_storage)))
			continue;
		if (a.family == AF_INET && !c->src4.family)
			c->src4 = a;
		/* Prefer a global address over link-local (fe80::/10). */
		if (a.family == AF_INET6 &&
		    (!c->src6.family || (c->src6.addr[0] == 0xfe && (c->src6.addr[1] & 0xc0) == 0x80)))
			if (!(a.addr[0] == 0xfe && (a.addr[1] & 0xc0) == 0x80) || !c->src6.family)
				c->src6 = a;
	}
	freeifaddrs(ifa);
	return 0;
}

static void xsk_fini(void *arg)
{
	struct xsk_ctx *c = arg;

	if (!c)
		return;
	/* Closing the link detaches the program, from whatever network
	 * namespace this runs in (an ifindex would be ambiguous), and the
	 * kernel does the same if the process dies. */
	if (c->link_fd >= 0)
		close(c->link_fd);
	if (c->prog_fd >= 0)
		close(c->prog_fd);
	if (c->own_map && c->map_fd >= 0)
		close(c->map_fd);
	free(c);
}

static int xsk_init(void **ctxp, const struct io_opts *opts, unsigned int want)
{
	struct xsk_ctx *c;
	int err;

	*ctxp = NULL;
	if (!opts->ifname || strlen(opts->ifname) >= IF_NAMESIZE || !opts->nports ||
	    opts->nports > IO_MAX_PORTS)
		return -EINVAL;
	{
		char why[320];

		err = io_bpflib_load(why, sizeof(why));
		if (err) {
			log_error("io", "AF_XDP on %s: %s", opts->ifname, why);
			return err;
		}
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->map_fd = c->prog_fd = c->link_fd = -1;
	snprintf(c->ifname, sizeof(c->ifname), "%s", opts->ifname);
	c->ifindex = (int)if_nametoindex(c->ifname);
	if (!c->ifindex) {
		err = -ENODEV;
		goto fail;
	}
	err = if_info(c);
	if (err)
		goto fail;
	c->nq = rx_queue_count(c->ifname);
	c->first = opts->xsk_first_queue;
	if (c->first >= c->nq) {
		err = -EINVAL;
		log_error("io", "AF_XDP on %s: first queue %u, but it has %u rx queue(s)", c->ifname,
			  c->first, c->nq);
		goto fail;
	}
	if (opts->xskmap_fd >= 0) {
		c->map_fd = opts->xskmap_fd;
		c->map_base = opts->xskmap_base;
	} else {
		c->map_fd = bpf_map_create(BPF_MAP_TYPE_XSKMAP, "weft_xsks", 4, 4,
					   c->nq > 64 ? c->nq : 64, NULL);
		if (c->map_fd < 0) {
			err = -errno;
			goto fail;
		}
		c->own_map = 1;
		err = steer_prog_load(c->map_fd, opts->ports, opts->nports);
		if (err < 0)
			goto fail;
		c->prog_fd = err;
		{
			LIBBPF_OPTS(bpf_link_create_opts, lo,
				    .flags = opts->xdp_generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE);

			c->link_fd = bpf_link_create(c->prog_fd, c->ifindex, BPF_XDP, &lo);
		}
		if (c->link_fd < 0) {
			err = -errno;
			/* Another program (or another weft) holds the slot. */
			if (err == -EEXIST)
				err = -EBUSY;
			goto fail;
		}
	}
	*ctxp = c;
	return (int)(want < c->nq - c->first ? want : c->nq - c->first);
fail:
	log_error("io", "AF_XDP on %s: %s", opts->ifname, strerror(-err));
	xsk_fini(c);
	return err;
}

/* ---- queue ---- */

static void kick_tx(struct io_queue *q);

static void xsk_close(struct io_queue *q)
{
	unsigned int i;

	if (!q)
		return;
	if (q->xsk) {
		kick_tx(q); /* what waits in the TX ring goes out first */
		xstats_read(q);
		if (q->ctx) {
			uint32_t key = q->ctx->map_base + q->ctx->first + q->qid;

			bpf_map_delete_elem(q->ctx->map_fd, &key);
		}
		xsk_socket__delete(q->xsk);
	}
	if (q->umem)
		xsk_umem__delete(q->umem);
	if (q->area)
		munmap(q->area, q->area_len);
	for (i = 0; i < q->nports; i++)
		if (q->ksock[i] >= 0)
			close(q->ksock[i]);
	for (i = 0; q->rksock && i <= (unsigned int)(q->range_max - q->range_min); i++)
		if (q->rksock[i] >= 0)
			close(q->rksock[i]);
	free(q->rksock);
	io_neigh_free(q->neigh);
	free(q->free_frames);
	free(q->done);
	free(q->kbuf);
	free(q);
}

static int ksock_open(uint16_t port)
{
	struct sockaddr_in6 sa;
	int fd, one = 1, zero = 0, err;

	fd = socket(AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sin6_family = AF_INET6;
	sa.sin6_port = htons(port);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) ||
	    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) ||
	    setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) ||
	    io_sock_no_frag(fd, AF_INET6) < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int umem_and_socket(struct io_queue *q, const struct io_opts *opts, int zc)
{
	struct xsk_umem_config uc = {
		.fill_size = XSK_RING,
		.comp_size = XSK_RING,
		.frame_size = XSK_FRAME,
		.frame_headroom = 0,
	};
	struct xsk_socket_config sc = {
		.rx_size = XSK_RING,
		.tx_size = XSK_RING,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = (uint16_t)(XDP_USE_NEED_WAKEUP | (zc ? XDP_ZEROCOPY : XDP_COPY)),
	};
	int err;

	err = xsk_umem__create(&q->umem, q->area, q->area_len, &q->fill, &q->comp, &uc);
	if (err)
		return err;
	err = xsk_socket__create(&q->xsk, q->ctx->ifname, q->ctx->first + q->qid, q->umem, &q->rx,
				 &q->tx, &sc);
	if (err) {
		q->xsk = NULL;
		xsk_umem__delete(q->umem);
		q->umem = NULL;
	}
	return err;
}

static int xsk_open(struct io_queue **out, void *arg, const struct io_opts *opts, unsigned int qid)
{
	struct xsk_ctx *c = arg;
	struct io_queue *q;
	unsigned int i, nfill;
	uint32_t idx;
	int err, zc;

	*out = NULL;
	if (!opts->stats)
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	for (i = 0; i < IO_MAX_PORTS; i++)
		q->ksock[i] = -1;
	q->ctx = c;
	q->st = opts->stats;
	q->qid = qid;
	q->wake_fd = opts->wake_fd;
	q->watch_fd = -1;
	q->batch = opts->batch ? opts->batch : 64;
	if (q->batch > XSK_MAX_BATCH)
		q->batch = XSK_MAX_BATCH;
	q->nports = opts->nports;
	memcpy(q->ports, opts->ports, opts->nports * sizeof(uint16_t));
	if (opts->range_min && opts->range_max >= opts->range_min &&
	    opts->range_max - opts->range_min < IO_MAX_RANGE) {
		q->range_min = opts->range_min;
		q->range_max = opts->range_max;
		q->rksock = malloc((q->range_max - q->range_min + 1U) * sizeof(int));
		if (!q->rksock) {
			free(q);
			return -ENOMEM;
		}
		for (i = 0; i <= (unsigned int)(q->range_max - q->range_min); i++)
			q->rksock[i] = -1;
	}
	q->nframes = opts->xsk_frames ? opts->xsk_frames : XSK_DEFAULT_FRAMES;
	if (q->nframes < 2 * q->batch || q->nframes > 2 * XSK_RING)
		q->nframes = XSK_DEFAULT_FRAMES;
	q->area_len = (size_t)q->nframes * XSK_FRAME;
	q->area = mmap(NULL, q->area_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->area == MAP_FAILED) {
		q->area = NULL;
		err = -ENOMEM;
		goto fail;
	}
	q->free_frames = calloc(q->nframes, sizeof(uint64_t));
	q->done = calloc(q->nframes, sizeof(uint64_t));
	q->kbuf = malloc((size_t)q->batch * XSK_FRAME);
	if (!q->free_frames || !q->done || !q->kbuf) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0;; i++) {
		zc = !opts->xsk_no_zerocopy;
		err = zc ? umem_and_socket(q, opts, 1) : -EOPNOTSUPP;
		if (err) {
			zc = 0;
			err = umem_and_socket(q, opts, 0);
		}
		/* The kernel frees a closed socket's buffer pool from a work
		 * queue: a queue released a moment ago reads -EBUSY for a
		 * few milliseconds. Give it up to a second. */
		if (err != -EBUSY || i == XSK_BUSY_RETRIES)
			break;
		usleep(XSK_BUSY_WAIT_US);
	}
	if (err)
		goto fail;
	if (zc)
		st_add(&q->st->zerocopy, 1);
	q->fd = xsk_socket__fd(q->xsk);
	{
		/* Not xsk_socket__update_xskmap(): its key is the queue. */
		uint32_t key = c->map_base + c->first + qid;

		if (bpf_map_update_elem(c->map_fd, &key, &q->fd, 0)) {
			err = -errno;
			goto fail;
		}
	}
	/* Half the frames to the fill ring (receive), half for transmit. */
	nfill = q->nframes / 2;
	if (nfill > XSK_RING)
		nfill = XSK_RING;
	if (xsk_ring_prod__reserve(&q->fill, nfill, &idx) != nfill) {
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < nfill; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = (uint64_t)i * XSK_FRAME;
	xsk_ring_prod__submit(&q->fill, nfill);
	for (i = nfill; i < q->nframes; i++)
		q->free_frames[q->nfree++] = (uint64_t)i * XSK_FRAME;
	err = io_neigh_new(&q->neigh, c->ifindex, 0);
	if (err)
		goto fail;
	for (i = 0; i < q->nports; i++) {
		err = ksock_open(q->ports[i]);
		if (err < 0)
			goto fail;
		q->ksock[i] = err;
	}
	log_info("io", "AF_XDP %s queue %u bound (%s mode)", c->ifname, c->first + qid,
		 q->st->zerocopy ? "zero-copy" : "copy");
	*out = q;
	return 0;
fail:
	log_error("io", "AF_XDP %s queue %u: %s", c->ifname, c->first + qid,
		  strerror(err < 0 ? -err : err));
	xsk_close(q);
	return err < 0 ? err : -err;
}

/* ---- data path ---- */

static void reclaim(struct io_queue *q)
{
	uint32_t idx, n, i;

	n = xsk_ring_cons__peek(&q->comp, XSK_RING, &idx);
	if (!n)
		return;
	for (i = 0; i < n; i++)
		q->free_frames[q->nfree++] = *xsk_ring_cons__comp_addr(&q->comp, idx + i);
	xsk_ring_cons__release(&q->comp, n);
	q->tx_outstanding -= n < q->tx_outstanding ? n : q->tx_outstanding;
}

/*
 * Hand the TX ring to the kernel. Copy mode sends at most 32 descriptors
 * per call and answers EAGAIN when more are left, so kick again while the
 * kernel takes descriptors; a kick that took none (the device is busy:
 * veth's peer ring is full, or the completion ring is) ends it, and what is
 * left goes on the next pass or wait (within 1 ms). Kicking on at once
 * built and dropped an skb per attempt: most of the kicks of a DHT node
 * under load were such retries.
 */
static int tx_pending(const struct io_queue *q)
{
	return __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE) != *q->tx.producer;
}

static void kick_tx(struct io_queue *q)
{
	int i;

	q->tx_unkicked = 0;
	if (!tx_pending(q) || !xsk_ring_prod__needs_wakeup(&q->tx)) {
		reclaim(q);
		return;
	}
	for (i = 0; i < XSK_MAX_KICKS; i++) {
		uint32_t before = __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE);

		if (sendto(q->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			break;
		if (errno != EAGAIN && errno != EBUSY && errno != EINTR)
			break; /* ENOBUFS / ENETDOWN: retried on the next wait */
		if (errno != EINTR && __atomic_load_n(q->tx.consumer, __ATOMIC_ACQUIRE) == before)
			break; /* no progress: the device is busy */
		reclaim(q);
	}
	reclaim(q);
}

static int port_served(const struct io_queue *q, uint16_t port)
{
	unsigned int i;

	for (i = 0; i < q->nports; i++)
		if (q->ports[i] == port)
			return 1;
	return q->range_min && port >= q->range_min && port <= q->range_max;
}

/* Receive from the kernel-path sockets into kbuf (what the XDP program
 * passed to the stack: options, extension headers, queues without a
 * socket). */
static unsigned int rx_kernel(struct io_queue *q, struct io_pkt *pkts, unsigned int max)
{
	unsigned int n = 0, s;

	for (s = 0; s < q->nports && n < max; s++) {
		while (n < max) {
			struct sockaddr_in6 from;
			uint8_t ctrl[128];
			struct iovec iov = { q->kbuf + (size_t)n * XSK_FRAME, XSK_FRAME };
			struct msghdr mh = {
				.msg_name = &from,
				.msg_namelen = sizeof(from),
				.msg_iov = &iov,
				.msg_iovlen = 1,
				.msg_control = ctrl,
				.msg_controllen = sizeof(ctrl),
			};
			struct cmsghdr *c;
			ssize_t r = recvmsg(q->ksock[s], &mh, MSG_DONTWAIT);

			if (r < 0)
				break;
			if ((mh.msg_flags & MSG_TRUNC) ||
			    io_addr_from_sockaddr(&pkts[n].src, (struct sockaddr *)&from, mh.msg_namelen)) {
				st_add(&q->st->rx_drop_malformed, 1);
				continue;
			}
			memset(&pkts[n].dst, 0, sizeof(pkts[n].dst));
			for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
				if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
					struct in_pktinfo pi;

					memcpy(&pi, CMSG_DATA(c), sizeof(pi));
					pkts[n].dst.family = AF_INET;
					memcpy(pkts[n].dst.addr, &pi.ipi_addr, 4);
				} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
					struct in6_pktinfo pi;

					memcpy(&pi, CMSG_DATA(c), sizeof(pi));
					pkts[n].dst.family = AF_INET6;
					memcpy(pkts[n].dst.addr, &pi.ipi6_addr, 16);
				}
			}
			pkts[n].dst.port = q->ports[s];
			pkts[n].data = (uint8_t *)iov.iov_base;
			pkts[n].len = (uint32_t)r;
			pkts[n].queue = q->qid;
			n++;
			st_add(&q->st->rx_kernel, 1);
		}
	}
	return n;
}

static int xsk_rx(struct io_queue *q, struct io_pkt *pkts, unsigned int max)
{
	uint32_t idx, n, i;
	unsigned int k = 0;
	uint64_t bytes = 0;

	if (max > q->batch)
		max = q->batch;
	n = xsk_ring_cons__peek(&q->rx, max, &idx);
	for (i = 0; i < n; i++) {
		const struct xdp_desc *d = xsk_ring_cons__rx_desc(&q->rx, idx + i);
		uint64_t addr = xsk_umem__add_offset_to_addr(d->addr);
		uint8_t *frame = xsk_umem__get_data(q->area, addr);
		struct io_hdr_info hi;

		q->done[q->ndone++] = xsk_umem__extract_addr(d->addr);
		/* The UDP checksum is not verified: frames the kernel sent
		 * over veth/loopback carry CHECKSUM_PARTIAL, and NICs that
		 * redirect to AF_XDP have checked it in hardware. */
		if (io_hdr_parse(frame, d->len, &hi)) {
			st_add(&q->st->rx_drop_malformed, 1);
			continue;
		}
		if (!port_served(q, hi.dst.port)) {
			st_add(&q->st->rx_drop_not_ours, 1);
			continue;
		}
		pkts[k].data = frame + hi.payload_off;
		pkts[k].len = hi.payload_len;
		pkts[k].queue = q->qid;
		pkts[k].src = hi.src;
		pkts[k].dst = hi.dst;
		bytes += hi.payload_len;
		k++;
	}
	if (n)
		xsk_ring_cons__release(&q->rx, n);
	xstats_maybe(q);
	if (k) {
		st_add(&q->st->rx_pkts, k);
		st_add(&q->st->rx_bytes, bytes);
		st_add(&q->st->rx_batches, 1);
	}
	if (k < max && (q->kready || ++q->kskip >= XSK_KERNEL_EVERY)) {
		unsigned int want = max - k, got = rx_kernel(q, pkts + k, want);

		k += got;
		q->kskip = 0;
		if (got < want)
			q->kready = 0; /* drained */
	}
	if (!n && xsk_ring_prod__needs_wakeup(&q->fill))
		recvfrom(q->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	if (!n && q->tx_unkicked)
		kick_tx(q); /* the ring is drained: send what waits */
	return (int)k;
}

static void xsk_rx_done(struct io_queue *q)
{
	uint32_t idx, i;

	if (!q->ndone)
		return;
	if (xsk_ring_prod__reserve(&q->fill, q->ndone, &idx) != q->ndone) {
		/* Cannot happen (the fill ring holds every rx frame); keep
		 * the frames for transmit rather than lose them. */
		st_add(&q->st->rx_ring_full, 1);
		for (i = 0; i < q->ndone; i++)
			q->free_frames[q->nfree++] = q->done[i];
		q->ndone = 0;
		return;
	}
	for (i = 0; i < q->ndone; i++)
		*xsk_ring_prod__fill_addr(&q->fill, idx + i) = q->done[i];
	xsk_ring_prod__submit(&q->fill, q->ndone);
	q->ndone = 0;
}

static unsigned int ksock_for(const struct io_queue *q, uint16_t port)
{
	unsigned int i;

	for (i = 0; i < q->nports; i++)
		if (q->ports[i] == port)
			return i;
	return 0;
}

/* The kernel-path socket sending from port (a range port's is opened on
 * first use), or -1. */
static int kfd_for(struct io_queue *q, uint16_t port)
{
	if (q->range_min && port >= q->range_min && port <= q->range_max) {
		int *fd = &q->rksock[port - q->range_min];

		if (*fd < 0) {
			int r = ksock_open(port);

			if (r >= 0)
				*fd = r;
		}
		return *fd;
	}
	return q->ksock[ksock_for(q, port)];
}

/* Kernel path: the unresolved-neighbour / other-interface case. */
static int tx_kernel(struct io_queue *q, const struct io_txmsg *m, const struct io_addr *src)
{
	struct sockaddr_storage ss;
	uint8_t ctrl[96] __attribute__((aligned(8)));
	struct iovec iov = { (void *)m->data, m->len };
	struct msghdr mh = { 0 };
	struct cmsghdr *c;
	int len = io_addr_to_sockaddr(&m->dst, AF_INET6, &ss);

	if (len < 0)
		return len;
	mh.msg_name = &ss;
	mh.msg_namelen = (socklen_t)len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (m->src.family == m->dst.family) {
		memset(ctrl, 0, sizeof(ctrl));
		mh.msg_control = ctrl;
		mh.msg_controllen = sizeof(ctrl);
		c = CMSG_FIRSTHDR(&mh);
		if (src->family == AF_INET) {
			struct in_pktinfo pi = { 0 };

			memcpy(&pi.ipi_spec_dst, src->addr, 4);
			c->cmsg_level = IPPROTO_IP;
			c->cmsg_type = IP_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			mh.msg_controllen = CMSG_SPACE(sizeof(pi));
		} else {
			struct in6_pktinfo pi = { 0 };

			memcpy(&pi.ipi6_addr, src->addr, 16);
			c->cmsg_level = IPPROTO_IPV6;
			c->cmsg_type = IPV6_PKTINFO;
			c->cmsg_len = CMSG_LEN(sizeof(pi));
			memcpy(CMSG_DATA(c), &pi, sizeof(pi));
			mh.msg_controllen = CMSG_SPACE(sizeof(pi));
		}
	}
	if (m->ttl) {
		size_t at = mh.msg_control ? mh.msg_controllen : 0;

		mh.msg_control = ctrl;
		mh.msg_controllen = at + io_cmsg_ttl((struct cmsghdr *)(ctrl + at), m->dst.family, m->ttl);
	}
	if (sendmsg(kfd_for(q, src->port), &mh, MSG_DONTWAIT) < 0)
		return -errno;
	return 0;
}

static int xsk_tx(struct io_queue *q, const struct io_txmsg *msgs, unsigned int n)
{
	unsigned int i, ok = 0, queued = 0;
	uint64_t bytes = 0;
	uint32_t idx;

	reclaim(q);
	for (i = 0; i < n; i++) {
		const struct io_txmsg *m = &msgs[i];
		struct io_addr src;
		uint8_t mac[6];
		uint64_t addr;
		int len, r;

		if (m->src.family) {
			src = m->src;
		} else {
			src = m->dst.family == AF_INET ? q->ctx->src4 : q->ctx->src6;
			src.port = m->src.port;
		}
		if (!src.port)
			src.port = q->ports[0];
		if (src.family != m->dst.family) {
			st_add(&q->st->tx_drop_error, 1);
			continue;
		}
		r = io_neigh_lookup(q->neigh, &m->dst, mac);
		if (r) {
			if (tx_kernel(q, m, &src)) {
				st_add(&q->st->tx_drop_error, 1);
			} else {
				st_add(&q->st->tx_kernel, 1);
				ok++;
				bytes += m->len;
			}
			continue;
		}
		if (!q->nfree) {
			kick_tx(q);
			reclaim(q);
		}
		if (!q->nfree || m->len + IO_HDR_MAX_LEN > XSK_FRAME) {
			st_add(&q->st->tx_drop_nobuf, 1);
			continue;
		}
		addr = q->free_frames[--q->nfree];
		len = io_hdr_build(xsk_umem__get_data(q->area, addr), XSK_FRAME, q->ctx->mac, mac, &src,
				   &m->dst, q->ip_id++, m->data, m->len);
		if (len >= 0 && m->ttl)
			io_hdr_set_ttl(xsk_umem__get_data(q->area, addr), (size_t)len, m->ttl);
		if (len < 0) {
			q->free_frames[q->nfree++] = addr;
			st_add(&q->st->tx_drop_error, 1);
			continue;
		}
		if (xsk_ring_prod__reserve(&q->tx, 1, &idx) != 1) {
			xsk_ring_prod__submit(&q->tx, queued);
			queued = 0;
			kick_tx(q);
			if (xsk_ring_prod__reserve(&q->tx, 1, &idx) != 1) {
				q->free_frames[q->nfree++] = addr;
				st_add(&q->st->tx_ring_full, 1);
				st_add(&q->st->tx_drop_nobuf, 1);
				continue;
			}
		}
		xsk_ring_prod__tx_desc(&q->tx, idx)->addr = addr;
		xsk_ring_prod__tx_desc(&q->tx, idx)->len = (uint32_t)len;
		queued++;
		q->tx_outstanding++;
		q->tx_unkicked++;
		ok++;
		bytes += m->len;
		if (q->tx_unkicked >= XSK_KICK_BATCH) {
			xsk_ring_prod__submit(&q->tx, queued);
			queued = 0;
			kick_tx(q);
		}
	}
	if (queued)
		xsk_ring_prod__submit(&q->tx, queued);
	st_add(&q->st->tx_pkts, ok);
	st_add(&q->st->tx_bytes, bytes);
	st_add(&q->st->tx_batches, 1);
	return (int)ok;
}

static int xsk_wait(struct io_queue *q, int64_t timeout_us)
{
	struct pollfd p[4 + IO_MAX_PORTS];
	unsigned int np = 0, i;
	int r, wake = -1, watch = -1, nl, ks;

	p[np].fd = q->fd;
	p[np++].events = POLLIN;
	nl = (int)np;
	p[np].fd = io_neigh_fd(q->neigh);
	p[np++].events = POLLIN;
	if (q->wake_fd >= 0) {
		wake = (int)np;
		p[np].fd = q->wake_fd;
		p[np++].events = POLLIN;
	}
	if (q->watch_fd >= 0) {
		watch = (int)np;
		p[np].fd = q->watch_fd;
		p[np++].events = POLLIN;
	}
	for (i = 0; i < q->nports; i++) {
		p[np].fd = q->ksock[i];
		p[np++].events = POLLIN;
	}
	ks = (int)np - (int)q->nports;
	kick_tx(q); /* before sleeping: nothing waits unsent */
	reclaim(q);
	/* Transmit still in flight: come back soon to kick and reclaim. */
	if (q->tx_outstanding && (timeout_us < 0 || timeout_us > 1000))
		timeout_us = 1000;
	if (timeout_us >= 0) {
		struct timespec ts = { .tv_sec = timeout_us / 1000000,
				       .tv_nsec = (long)(timeout_us % 1000000) * 1000 };

		r = ppoll(p, np, &ts, NULL);
	} else {
		r = ppoll(p, np, NULL, NULL);
	}
	if (r < 0)
		return errno == EINTR ? 0 : -errno;
	for (i = 0; i < q->nports; i++)
		if (p[ks + (int)i].revents & (POLLIN | POLLERR))
			q->kready = 1;
	if (p[nl].revents & POLLIN) {
		int k = io_neigh_process(q->neigh);

		if (k > 0)
			st_add(&q->st->neigh_updates, (uint64_t)k);
	}
	if (watch >= 0 && (p[watch].revents & (POLLIN | POLLERR | POLLHUP)))
		q->watch_fired = 1;
	q->waited = 1;
	if (wake >= 0 && (p[wake].revents & POLLIN)) {
		uint64_t v;

		if (read(q->wake_fd, &v, sizeof(v)) < 0) {
			/* EAGAIN: another reader got it */
		}
	}
	kick_tx(q);
	reclaim(q);
	xstats_maybe(q);
	return 0;
}

static int xsk_watch(struct io_queue *q, int fd)
{
	q->watch_fd = fd;
	q->watch_fired = 1;
	return 0;
}

/* Seen by the last ppoll; passes that never slept (busy) did not poll,
 * so then the fd counts as readable on every pass until the worker
 * sleeps again. */
static int xsk_watch_fired(struct io_queue *q)
{
	int f = q->watch_fired || !q->waited;

	q->watch_fired = 0;
	q->waited = 0;
	return f;
}

const struct io_backend io_backend_xsk = {
	.name = "xdp",
	.init = xsk_init,
	.fini = xsk_fini,
	.open = xsk_open,
	.rx = xsk_rx,
	.rx_done = xsk_rx_done,
	.tx = xsk_tx,
	.wait = xsk_wait,
	.watch = xsk_watch,
	.watch_fired = xsk_watch_fired,
	.close = xsk_close,
};
