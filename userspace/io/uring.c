// SPDX-License-Identifier: MIT
/*
 * io_uring UDP backend. Per queue: one io_uring, one dual-stack UDP socket
 * per served port (SO_REUSEPORT, so N queues share the port and the kernel
 * spreads flows by 4-tuple hash), a multishot recvmsg per socket drawing
 * from one provided-buffer ring, and an eventfd read so wait() also wakes
 * for the engine's command queue.
 *
 * Receive: IP_PKTINFO / IPV6_RECVPKTINFO give the local address; UDP_GRO
 * lets the kernel hand us coalesced datagrams, split here by the gso_size
 * control message. Send: sendmmsg (synchronous, so the caller's buffers are
 * sent in place, no copy), consecutive datagrams to one destination of one
 * size folded into one UDP_SEGMENT (GSO) message.
 *
 * Requests are armed lazily from the queue's own thread: io_uring runs
 * task work in the submitter's context, which must be the worker.
 */
#include <errno.h>
#include <linux/filter.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "weft/io.h"
#include "weft/log.h"

#define UR_ENTRIES 256
#define UR_BGID 7
#define UR_CTRL_LEN 128
#define UR_OVERHEAD (sizeof(struct io_uring_recvmsg_out) + sizeof(struct sockaddr_storage) + UR_CTRL_LEN)
/* Small buffers hold one datagram up to 2 KiB (QUIC and DHT stay under
 * 1500 bytes); GRO buffers hold a 64 KiB coalesced train. */
#define UR_SMALL_BUF 2048
#define UR_GRO_BUF 65536
/* Receive buffers provided at start; more as traffic needs them (grow_bufs),
 * half of them given back after a quiet window (shrink_check). */
#define UR_INIT_BUFS 4
#define UR_SHRINK_MS 10000
/* Most segments in one GSO send: the kernel's UDP_MAX_SEGMENTS (64 before
 * 6.x kernels raised it) and a 64 KiB total. */
#define UR_GSO_MAX_SEGS 64
#define UR_GSO_MAX_BYTES 65000
#define UR_MAX_BATCH 1024

enum { TAG_RECV = 1, TAG_WAKE = 2, TAG_WATCH = 3 };

struct io_queue {
	struct io_uring ring;
	int ring_ok;
	int enable; /* created disabled: enabled by the worker on first use */
	struct io_stats *st;
	unsigned int qid, nsock, batch;
	/* nports named ports, then the range's ports in order (socket
	 * nports + port - range_min) */
	unsigned int nports;
	uint16_t range_min, range_max;
	int *socks;
	int *fam;
	/* the bind address when it is one address (not "::" / "0.0.0.0"):
	 * replies from it need no IP_PKTINFO, the socket has no other */
	struct io_addr bound;
	int bound_one;
	uint16_t *ports;
	int *armed;
	int wake_fd, wake_armed;
	uint64_t wake_buf;
	int watch_fd, watch_armed; /* ur_watch: a one-shot poll, armed again each time */
	int watch_fired;	   /* its completion came since ur_watch_fired */
	int gso;
	/* provided buffers */
	struct io_uring_buf_ring *br;
	size_t br_len;
	uint8_t *bufs;
	size_t bufs_len, buf_size;
	unsigned int nbufs;  /* the ring's size: the most buffers ever provided */
	unsigned int nprov;  /* buffers provided so far: ids 0..nprov-1 (grow_bufs) */
	int starved;	     /* a receive ended with -ENOBUFS since the last grow */
	/* Shrinking (shrink_check): ids keep..nprov-1 leave the ring as they
	 * come back (retire); keep == nprov when not shrinking. */
	unsigned int keep;
	unsigned int nretired;	 /* ids >= keep out of the ring (bits set in retired) */
	uint64_t *retired;	 /* one bit per id */
	unsigned int peak;	 /* most buffers one rx call took in this window */
	int win_busy;		 /* a grow or an -ENOBUFS in this window */
	uint64_t win_end_ms;	 /* CLOCK_MONOTONIC_COARSE */
	unsigned int shrink_ms;
	uint16_t *done; /* buffer ids handed out by the last rx */
	unsigned int ndone;
	/* multishot recvmsg template: name and control space per buffer */
	struct msghdr mh;
	/* tx scratch */
	struct mmsghdr *mm;
	struct iovec *iov;
	struct sockaddr_storage *names;
	uint8_t (*ctrl)[96]; /* GSO + PKTINFO + TTL */
};

static inline void st_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + v, __ATOMIC_RELAXED);
}

/*
 * SO_REUSEPORT would let a second process of the same user share (and
 * silently take half of, or all of with a more specific address) a port
 * already in use. Before the first queue binds, a plain bind of the same
 * address proves nobody else holds it.
 */
static int port_free(const struct io_addr *a)
{
	struct sockaddr_storage ss;
	int fd, len, zero = 0, err = 0;

	fd = socket(a->family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (a->family == AF_INET6)
		(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	len = io_addr_to_sockaddr(a, a->family, &ss);
	if (len < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)len))
		err = len < 0 ? -EINVAL : -errno;
	close(fd);
	return err;
}

static int open_sock(const struct io_opts *opts, uint16_t port, int gro, int *fam, int first)
{
	struct sockaddr_storage ss;
	struct io_addr a;
	int fd, one = 1, zero = 0, sz = 4 << 20, err, len;
	const char *bind_addr = opts->bind_addr ? opts->bind_addr : "::";

	if (io_addr_parse(&a, bind_addr, port))
		return -EINVAL;
	if (first) {
		/* A ring torn down a moment ago (this process restarting its
		 * engine) releases its sockets asynchronously: give it 0.5 s. */
		for (int tries = 0; (err = port_free(&a)) == -EADDRINUSE && tries < 50; tries++)
			usleep(10000);
		if (err)
			return err;
	}
	fd = socket(a.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	*fam = a.family;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	/* Bigger buffers absorb bursts between two worker passes. With
	 * CAP_NET_ADMIN the size is forced past net.core.rmem_max (Debian's
	 * default, 208 KiB, holds ~200 small datagrams); otherwise rmem_max
	 * caps it, which only means more drops in a burst. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)))
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)))
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	if (a.family == AF_INET6) {
		if (setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)) ||
		    setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)))
			goto fail;
	}
	/* v4 (and v4-mapped traffic on the dual-stack socket) */
	if (setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)))
		goto fail;
	if (io_sock_no_frag(fd, a.family))
		goto fail;
	if (gro)
		(void)setsockopt(fd, IPPROTO_UDP, UDP_GRO, &one, sizeof(one));
	len = io_addr_to_sockaddr(&a, a.family, &ss);
	if (len < 0 || bind(fd, (struct sockaddr *)&ss, (socklen_t)len))
		goto fail;
	/* The port's group picks queues with the caller's program: set once,
	 * by the first socket (the others join its group in queue order). A
	 * refusal costs only the steering (the hash, as without it). */
	if (first && opts->steer_prog && port == opts->steer_port &&
	    setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, opts->steer_prog,
		       sizeof(struct sock_fprog)))
		log_warn("io",
			 "port %u: queue steering refused (%s): the kernel's hash picks "
			 "the queue",
			 port, strerror(errno));
	return fd;
fail:
	err = -errno;
	close(fd);
	return err ? err : -EINVAL;
}

static void ur_close(struct io_queue *q)
{
	unsigned int i;

	if (!q)
		return;
	if (q->ring_ok) {
		if (q->br)
			io_uring_unregister_buf_ring(&q->ring, UR_BGID);
		io_uring_queue_exit(&q->ring);
	}
	for (i = 0; i < q->nsock; i++)
		if (q->socks[i] >= 0)
			close(q->socks[i]);
	free(q->socks);
	free(q->fam);
	free(q->ports);
	free(q->armed);
	if (q->br)
		munmap(q->br, q->br_len);
	if (q->bufs)
		munmap(q->bufs, q->bufs_len);
	free(q->done);
	free(q->retired);
	free(q->mm);
	free(q->iov);
	free(q->names);
	free(q->ctrl);
	free(q);
}

static int ur_init(void **ctx, const struct io_opts *opts, unsigned int want)
{
	*ctx = NULL;
	return want ? (int)want : 1;
}

static void ur_fini(void *ctx)
{
}

/*
 * One submitter (the worker) and deferred task work: completions are
 * produced when the worker asks for events, not by interrupting it from
 * the softirq that queued a datagram, so a flood costs one task-work run
 * per wait instead of a wake-up per datagram. The completion queue holds
 * a completion for every provided buffer, so it never overflows into the
 * kernel's (allocating) overflow list. The ring is created disabled so
 * the worker thread, not the one that opened it, becomes its submitter.
 * Kernels without these flags (before 6.1) get a plain ring.
 */
static void grow_bufs(struct io_queue *q);

static int ring_init(struct io_queue *q, unsigned int nbufs)
{
	struct io_uring_params p;
	int err;

	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
		  IORING_SETUP_R_DISABLED;
	p.cq_entries = 2 * nbufs + 2 * UR_ENTRIES;
	err = io_uring_queue_init_params(UR_ENTRIES, &q->ring, &p);
	if (err == 0) {
		q->enable = 1;
		return 0;
	}
	memset(&p, 0, sizeof(p));
	p.flags = IORING_SETUP_CQSIZE;
	p.cq_entries = 2 * nbufs + 2 * UR_ENTRIES;
	return io_uring_queue_init_params(UR_ENTRIES, &q->ring, &p);
}

static int ur_open(struct io_queue **out, void *ctx, const struct io_opts *opts, unsigned int qid)
{
	struct io_uring_buf_reg reg;
	struct io_queue *q;
	unsigned int i, ents, total;
	int err;

	*out = NULL;
	if (!opts->nports || opts->nports > IO_MAX_PORTS || !opts->stats)
		return -EINVAL;
	if (opts->range_min && (opts->range_max < opts->range_min ||
				opts->range_max - opts->range_min >= IO_MAX_RANGE))
		return -EINVAL;
	total = opts->nports + (opts->range_min ? opts->range_max - opts->range_min + 1U : 0);
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->socks = calloc(total, sizeof(*q->socks));
	q->fam = calloc(total, sizeof(*q->fam));
	q->ports = calloc(total, sizeof(*q->ports));
	q->armed = calloc(total, sizeof(*q->armed));
	if (!q->socks || !q->fam || !q->ports || !q->armed) {
		err = -ENOMEM;
		goto fail;
	}
	q->nports = opts->nports;
	if (!io_addr_parse(&q->bound, opts->bind_addr ? opts->bind_addr : "::", 0)) {
		static const uint8_t any[16];

		q->bound_one = memcmp(q->bound.addr, any, q->bound.family == AF_INET ? 4 : 16) != 0;
	}
	q->range_min = opts->range_min;
	q->range_max = opts->range_min ? opts->range_max : 0;
	q->st = opts->stats;
	q->qid = qid;
	q->batch = opts->batch ? opts->batch : 64;
	if (q->batch > UR_MAX_BATCH)
		q->batch = UR_MAX_BATCH;
	q->wake_fd = opts->wake_fd;
	q->watch_fd = -1;
	q->gso = opts->uring_gso;
	for (i = 0; i < total; i++)
		q->socks[i] = -1;
	for (i = 0; i < total; i++) {
		q->ports[i] = i < opts->nports ? opts->ports[i]
					       : (uint16_t)(opts->range_min + (i - opts->nports));
		err = open_sock(opts, q->ports[i], opts->uring_gro, &q->fam[i], qid == 0);
		if (err < 0)
			goto fail;
		q->socks[i] = err;
		q->nsock = i + 1;
	}
	q->buf_size = (opts->uring_gro ? UR_GRO_BUF : UR_SMALL_BUF) + UR_OVERHEAD;
	/* GRO buffers start on a page: the header and a datagram up to ~3.8 KB
	 * then touch one page, not two when they straddle a boundary (about
	 * one datagram in three with the unaligned 65,808-byte stride). The
	 * ring hands out every buffer in turn, so an idle node's receive
	 * buffers settle at one page each: 1 MiB for 256 instead of ~1.4. */
	if (opts->uring_gro)
		q->buf_size = (q->buf_size + 4095) & ~(size_t)4095;
	q->nbufs = opts->uring_bufs ? opts->uring_bufs : (opts->uring_gro ? 256 : 512);
	for (ents = 1; ents < q->nbufs; ents <<= 1)
		;
	if (ents > 32768) {
		err = -EINVAL;
		goto fail;
	}
	err = ring_init(q, ents);
	if (err < 0)
		goto fail;
	q->ring_ok = 1;
	q->nbufs = ents;
	q->br_len = ents * sizeof(struct io_uring_buf);
	q->br = mmap(NULL, q->br_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	/* Reserved here, populated as buffers are provided (grow_bufs);
	 * each buffer starts on a page. */
	q->bufs_len = (size_t)ents * q->buf_size;
	q->bufs = mmap(NULL, q->bufs_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (q->br == MAP_FAILED || q->bufs == MAP_FAILED) {
		if (q->br == MAP_FAILED)
			q->br = NULL;
		if (q->bufs == MAP_FAILED)
			q->bufs = NULL;
		err = -ENOMEM;
		goto fail;
	}
	io_uring_buf_ring_init(q->br);
	memset(&reg, 0, sizeof(reg));
	reg.ring_addr = (unsigned long)q->br;
	reg.ring_entries = ents;
	reg.bgid = UR_BGID;
	err = io_uring_register_buf_ring(&q->ring, &reg, 0);
	if (err < 0) {
		munmap(q->br, q->br_len);
		q->br = NULL;
		goto fail;
	}
	q->nprov = 0;
	q->shrink_ms = opts->uring_shrink_ms ? opts->uring_shrink_ms : UR_SHRINK_MS;
	q->retired = calloc((ents + 63) / 64, sizeof(*q->retired));
	if (!q->retired) {
		err = -ENOMEM;
		goto fail;
	}
	grow_bufs(q);

	q->done = calloc(ents, sizeof(*q->done));
	q->mm = calloc(q->batch, sizeof(*q->mm));
	q->iov = calloc(q->batch, sizeof(*q->iov));
	q->names = calloc(q->batch, sizeof(*q->names));
	q->ctrl = calloc(q->batch, sizeof(*q->ctrl));
	if (!q->done || !q->mm || !q->iov || !q->names || !q->ctrl) {
		err = -ENOMEM;
		goto fail;
	}
	/* A multiple of 8 keeps the control messages after the name aligned. */
	q->mh.msg_namelen = sizeof(struct sockaddr_storage);
	q->mh.msg_controllen = UR_CTRL_LEN;
	*out = q;
	return 0;
fail:
	ur_close(q);
	return err;
}

static int arm(struct io_queue *q)
{
	struct io_uring_sqe *sqe;
	unsigned int i;
	int n = 0;

	if (q->enable) {
		/* Debian 12's liburing declares io_uring_enable_rings() but
		 * does not export it: the register call itself. */
		if (syscall(__NR_io_uring_register, q->ring.ring_fd, IORING_REGISTER_ENABLE_RINGS,
			    NULL, 0) < 0)
			return 0; /* cannot happen for a ring we created; nothing armed */
		q->enable = 0;
	}
	for (i = 0; i < q->nsock; i++) {
		if (q->armed[i])
			continue;
		sqe = io_uring_get_sqe(&q->ring);
		if (!sqe)
			break;
		io_uring_prep_recvmsg_multishot(sqe, q->socks[i], &q->mh, 0);
		sqe->flags |= IOSQE_BUFFER_SELECT;
		sqe->buf_group = UR_BGID;
		io_uring_sqe_set_data64(sqe, (uint64_t)TAG_RECV << 32 | i);
		q->armed[i] = 1;
		n++;
	}
	if (q->wake_fd >= 0 && !q->wake_armed) {
		sqe = io_uring_get_sqe(&q->ring);
		if (sqe) {
			io_uring_prep_read(sqe, q->wake_fd, &q->wake_buf, sizeof(q->wake_buf), 0);
			io_uring_sqe_set_data64(sqe, (uint64_t)TAG_WAKE << 32);
			q->wake_armed = 1;
			n++;
		}
	}
	if (q->watch_fd >= 0 && !q->watch_armed) {
		sqe = io_uring_get_sqe(&q->ring);
		if (sqe) {
			io_uring_prep_poll_add(sqe, q->watch_fd, POLLIN);
			io_uring_sqe_set_data64(sqe, (uint64_t)TAG_WATCH << 32);
			q->watch_armed = 1;
			n++;
		}
	}
	return n;
}

/*
 * Provide more receive buffers: UR_INIT_BUFS at first, then twice as many
 * each time, up to the ring's nbufs (ur_rx decides when). The kernel takes
 * buffers in ring order, so every buffer provided is written in its turn,
 * and with GRO a 64 KiB train fills all of a buffer's pages: what is
 * resident would creep up, over hours of bursts, to all provided buffers,
 * a slope that looks like a leak (docs/LAB.md "Soak"). So the new buffers'
 * pages are populated as they are provided (MADV_POPULATE_WRITE, else one
 * write per page): resident memory is the buffers provided, a step at
 * each grow and flat in between, and the receive path takes no page
 * fault. An idle node keeps UR_INIT_BUFS (4 x 68 KiB with GRO).
 */
static void populate(uint8_t *p, size_t len)
{
	if (madvise(p, len, MADV_POPULATE_WRITE) == 0)
		return;
	for (size_t o = 0; o < len; o += 4096) /* kernels before 5.14 */
		p[o] = 0;
}

static void ring_add(struct io_queue *q, unsigned int bid, int off)
{
	io_uring_buf_ring_add(q->br, q->bufs + (size_t)bid * q->buf_size,
			      (unsigned int)q->buf_size, (unsigned short)bid,
			      io_uring_buf_ring_mask(q->nbufs), off);
}

/* The gauges: buffers provided, and the bytes they hold resident (each
 * is populated when provided and dropped when retired). */
static void set_rx_bufs(struct io_queue *q, unsigned int n)
{
	__atomic_store_n(&q->st->rx_bufs, n, __ATOMIC_RELAXED);
	__atomic_store_n(&q->st->rx_ring_bytes, (uint64_t)n * q->buf_size, __ATOMIC_RELAXED);
}

/* A shrink that meets traffic again: the buffers it took out go back. */
static void unretire(struct io_queue *q)
{
	unsigned int bid;
	int n = 0;

	for (bid = q->keep; bid < q->nprov; bid++)
		if (q->retired[bid / 64] & (1ULL << (bid % 64))) {
			q->retired[bid / 64] &= ~(1ULL << (bid % 64));
			if (!(q->buf_size & 4095)) /* its pages went at retire */
				populate(q->bufs + (size_t)bid * q->buf_size, q->buf_size);
			ring_add(q, bid, n++);
		}
	io_uring_buf_ring_advance(q->br, n);
	q->keep = q->nprov;
	q->nretired = 0;
	set_rx_bufs(q, q->nprov);
}

static void grow_bufs(struct io_queue *q)
{
	unsigned int n = q->nprov ? 2 * q->nprov : UR_INIT_BUFS, i;

	q->win_busy = 1;
	q->starved = 0;
	if (q->keep < q->nprov) {
		unretire(q);
		return;
	}
	if (n > q->nbufs)
		n = q->nbufs;
	populate(q->bufs + (size_t)q->nprov * q->buf_size, (size_t)(n - q->nprov) * q->buf_size);
	set_rx_bufs(q, n);
	for (i = q->nprov; i < n; i++)
		ring_add(q, i, (int)(i - q->nprov));
	io_uring_buf_ring_advance(q->br, (int)(n - q->nprov));
	q->nprov = q->keep = n;
}

/*
 * Buffers grown for a burst stay provided until a whole window
 * (shrink_ms, default UR_SHRINK_MS) passes with no grow, no -ENOBUFS and
 * no rx call taking more than an eighth of them; then the upper half,
 * ids keep..nprov-1, is retired: the kernel hands the ring's entries out
 * in order, so each comes back once and is not provided again; its pages
 * go (MADV_DONTNEED) as it comes back when buffers start on a page (GRO),
 * else when the last has come back (ids above keep are the mapping's
 * tail). Growing needs a quarter taken at once: twice
 * the shrink's bound, so a steady load does not make the ring swing. A
 * burst while shrinking puts the retired buffers back (unretire).
 */
static void retire(struct io_queue *q, uint16_t bid)
{
	size_t from, to;

	q->retired[bid / 64] |= 1ULL << (bid % 64);
	/* GRO buffers start on a page: each one's pages go as it retires
	 * (the last of the range may take long to come back on a quiet
	 * node); smaller ones share pages, which go with the whole tail */
	if (!(q->buf_size & 4095))
		madvise(q->bufs + (size_t)bid * q->buf_size, q->buf_size, MADV_DONTNEED);
	if (++q->nretired < q->nprov - q->keep) {
		set_rx_bufs(q, q->nprov - q->nretired);
		return;
	}
	from = ((size_t)q->keep * q->buf_size + 4095) & ~(size_t)4095;
	to = (size_t)q->nprov * q->buf_size;
	if (to > from)
		madvise(q->bufs + from, to - from, MADV_DONTNEED);
	memset(q->retired, 0, (q->nbufs + 63) / 64 * sizeof(*q->retired));
	q->nretired = 0;
	q->nprov = q->keep;
	set_rx_bufs(q, q->nprov);
}

static void shrink_check(struct io_queue *q)
{
	struct timespec ts;
	uint64_t now;

	if (q->ndone > q->peak)
		q->peak = q->ndone;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	if (now < q->win_end_ms)
		return;
	if (q->win_end_ms && !q->win_busy && q->keep == q->nprov && q->nprov > UR_INIT_BUFS &&
	    8 * q->peak <= q->nprov)
		q->keep = q->nprov / 2;
	q->peak = 0;
	q->win_busy = 0;
	q->win_end_ms = now + q->shrink_ms;
}

static void recycle(struct io_queue *q, uint16_t bid)
{
	if (bid >= q->keep) {
		retire(q, bid);
		return;
	}
	ring_add(q, bid, 0);
	io_uring_buf_ring_advance(q->br, 1);
}

/* Parse one multishot CQE into packets; returns how many, or -1 if it
 * needs more room than avail (caller retries on the next call). */
static int take_cqe(struct io_queue *q, struct io_uring_cqe *cqe, struct io_pkt *pkts,
		    unsigned int avail, unsigned int max)
{
	unsigned int sock = (unsigned int)(cqe->user_data & 0xffffffffu), n = 0, segs;
	uint16_t bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
	struct io_uring_recvmsg_out *o;
	struct io_addr src, dst;
	struct cmsghdr *c;
	uint8_t *payload;
	uint32_t plen, gso = 0, off;

	o = io_uring_recvmsg_validate(q->bufs + (size_t)bid * q->buf_size, cqe->res, &q->mh);
	if (!o || (o->flags & MSG_TRUNC) || o->namelen > q->mh.msg_namelen ||
	    io_addr_from_sockaddr(&src, io_uring_recvmsg_name(o), o->namelen)) {
		st_add(&q->st->rx_drop_malformed, 1);
		recycle(q, bid);
		return 0;
	}
	memset(&dst, 0, sizeof(dst));
	dst.port = q->ports[sock];
	for (c = io_uring_recvmsg_cmsg_firsthdr(o, &q->mh); c;
	     c = io_uring_recvmsg_cmsg_nexthdr(o, &q->mh, c)) {
		if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
			struct in_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			dst.family = AF_INET;
			memcpy(dst.addr, &pi.ipi_addr, 4);
		} else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
			struct in6_pktinfo pi;

			memcpy(&pi, CMSG_DATA(c), sizeof(pi));
			dst.family = AF_INET6;
			memcpy(dst.addr, &pi.ipi6_addr, 16);
			dst.scope_id = pi.ipi6_ifindex;
		} else if (c->cmsg_level == IPPROTO_UDP && c->cmsg_type == UDP_GRO) {
			int g;

			memcpy(&g, CMSG_DATA(c), sizeof(g));
			gso = g > 0 ? (uint32_t)g : 0;
		}
	}
	if (dst.family == AF_INET6 && src.family == AF_INET6 && src.scope_id == 0)
		dst.scope_id = 0;
	payload = io_uring_recvmsg_payload(o, &q->mh);
	plen = io_uring_recvmsg_payload_length(o, cqe->res, &q->mh);
	segs = (gso && plen > gso) ? (plen + gso - 1) / gso : 1;
	if (segs > avail) {
		if (avail < max)
			return -1; /* retry with an empty batch */
		st_add(&q->st->rx_drop_malformed, segs - avail);
		segs = avail;
	}
	if (gso && plen > gso)
		st_add(&q->st->rx_gro_bufs, 1);
	else
		gso = plen;
	for (off = 0; n < segs && off < plen; off += gso, n++) {
		pkts[n].data = payload + off;
		pkts[n].len = plen - off < gso ? plen - off : gso;
		pkts[n].queue = q->qid;
		pkts[n].src = src;
		pkts[n].dst = dst;
	}
	q->done[q->ndone++] = bid;
	return (int)n;
}

static int ur_rx(struct io_queue *q, struct io_pkt *pkts, unsigned int max)
{
	struct io_uring_cqe *cqe;
	unsigned int n = 0;
	int k;

	if (arm(q))
		io_uring_submit(&q->ring);
	while (n < max && q->ndone < q->nbufs && io_uring_peek_cqe(&q->ring, &cqe) == 0) {
		uint32_t tag = (uint32_t)(cqe->user_data >> 32);

		if (tag == TAG_WAKE || tag == TAG_WATCH) {
			if (tag == TAG_WAKE) {
				q->wake_armed = 0;
			} else {
				q->watch_armed = 0;
				q->watch_fired = 1;
			}
			io_uring_cqe_seen(&q->ring, cqe);
			continue;
		}
		if (tag != TAG_RECV) {
			io_uring_cqe_seen(&q->ring, cqe);
			continue;
		}
		if (!(cqe->flags & IORING_CQE_F_MORE))
			q->armed[cqe->user_data & 0xffffffffu] = 0;
		if (cqe->res < 0) {
			if (cqe->res == -ENOBUFS) {
				st_add(&q->st->rx_ring_full, 1);
				q->starved = 1;
				q->win_busy = 1;
			}
			io_uring_cqe_seen(&q->ring, cqe);
			continue;
		}
		if (!(cqe->flags & IORING_CQE_F_BUFFER)) {
			io_uring_cqe_seen(&q->ring, cqe);
			continue;
		}
		k = take_cqe(q, cqe, pkts + n, max - n, max);
		if (k < 0)
			break;
		io_uring_cqe_seen(&q->ring, cqe);
		n += (unsigned int)k;
	}
	/* Half of the provided buffers taken in one batch, or none left: more
	 * (taken buffers return to the ring in ur_rx_done, after the caller). */
	if ((q->keep < q->nprov || q->nprov < q->nbufs) && (q->starved || 2 * q->ndone >= q->keep))
		grow_bufs(q);
	shrink_check(q);
	/* A receive that ended here (-ENOBUFS) is armed again now, not at the
	 * next call: with no receive armed nothing would wake the worker
	 * before its next timer, and the datagrams waiting in the socket
	 * would wait that long (seconds, seen as stalled handshakes). */
	if (arm(q))
		io_uring_submit(&q->ring);
	if (n) {
		uint64_t bytes = 0;
		unsigned int i;

		for (i = 0; i < n; i++)
			bytes += pkts[i].len;
		st_add(&q->st->rx_pkts, n);
		st_add(&q->st->rx_bytes, bytes);
		st_add(&q->st->rx_batches, 1);
	}
	return (int)n;
}

static void ur_rx_done(struct io_queue *q)
{
	unsigned int i;

	for (i = 0; i < q->ndone; i++)
		recycle(q, q->done[i]);
	q->ndone = 0;
}

static unsigned int sock_for(struct io_queue *q, uint16_t port)
{
	unsigned int i;

	if (q->range_min && port >= q->range_min && port <= q->range_max)
		return q->nports + (unsigned int)(port - q->range_min);
	for (i = 0; i < q->nports; i++)
		if (q->ports[i] == port)
			return i;
	return 0;
}

/* Is src the one address the sockets are bound to? Then the kernel sends
 * from it anyway, and the IP_PKTINFO control message (copied, parsed and
 * checked against the local addresses per datagram) is left out. */
static int src_is_bound(const struct io_queue *q, const struct io_addr *src)
{
	return q->bound_one && src->family == q->bound.family &&
	       !memcmp(src->addr, q->bound.addr, src->family == AF_INET ? 4 : 16);
}

/* Build one (possibly GSO) message at slot m from msgs[i..i+k). */
static size_t fill_msg(struct io_queue *q, unsigned int m, const struct io_txmsg *msgs,
		       unsigned int k, int sock_family)
{
	struct msghdr *h = &q->mm[m].msg_hdr;
	const struct io_txmsg *t = &msgs[0];
	struct cmsghdr *c;
	size_t clen = 0;
	int len;

	memset(h, 0, sizeof(*h));
	len = io_addr_to_sockaddr(&t->dst, sock_family, &q->names[m]);
	h->msg_name = &q->names[m];
	h->msg_namelen = len > 0 ? (socklen_t)len : 0;
	h->msg_iov = &q->iov[m];
	h->msg_iovlen = k;
	h->msg_control = q->ctrl[m];
	h->msg_controllen = sizeof(q->ctrl[m]);
	c = CMSG_FIRSTHDR(h);
	if (k > 1) {
		uint16_t seg = (uint16_t)t->len;

		c->cmsg_level = IPPROTO_UDP;
		c->cmsg_type = UDP_SEGMENT;
		c->cmsg_len = CMSG_LEN(sizeof(seg));
		memcpy(CMSG_DATA(c), &seg, sizeof(seg));
		clen += CMSG_SPACE(sizeof(seg));
		c = CMSG_NXTHDR(h, c);
	}
	if (src_is_bound(q, &t->src)) {
		/* no control message needed for the source */
	} else if (t->src.family == AF_INET) {
		struct in_pktinfo pi;

		memset(&pi, 0, sizeof(pi));
		memcpy(&pi.ipi_spec_dst, t->src.addr, 4);
		c->cmsg_level = IPPROTO_IP;
		c->cmsg_type = IP_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		clen += CMSG_SPACE(sizeof(pi));
	} else if (t->src.family == AF_INET6) {
		struct in6_pktinfo pi;

		memset(&pi, 0, sizeof(pi));
		memcpy(&pi.ipi6_addr, t->src.addr, 16);
		pi.ipi6_ifindex = t->src.scope_id;
		c->cmsg_level = IPPROTO_IPV6;
		c->cmsg_type = IPV6_PKTINFO;
		c->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(c), &pi, sizeof(pi));
		clen += CMSG_SPACE(sizeof(pi));
	}
	if (t->ttl) /* after what is written (ctrl: 24 + 40 + 24 bytes at most) */
		clen += io_cmsg_ttl((struct cmsghdr *)((uint8_t *)h->msg_control + clen),
				    t->dst.family, t->ttl);
	h->msg_controllen = clen;
	if (!clen)
		h->msg_control = NULL;
	return clen;
}

static int same_flow(const struct io_txmsg *a, const struct io_txmsg *b)
{
	return io_addr_equal(&a->dst, &b->dst) && a->ttl == b->ttl && a->src.family == b->src.family &&
	       a->src.port == b->src.port &&
	       !memcmp(a->src.addr, b->src.addr, a->src.family == AF_INET ? 4 : 16);
}

/* Send msgs[0..n) that all go out of one socket. */
static void send_group(struct io_queue *q, int fd, int fam, const struct io_txmsg *msgs,
		       unsigned int n, unsigned int *ok)
{
	unsigned int i = 0, m = 0, sent, j, first[UR_MAX_BATCH], cnt[UR_MAX_BATCH];
	uint64_t bytes = 0;
	int r;

	while (i < n) {
		unsigned int k = 1;
		size_t tot = msgs[i].len;

		/* Fold a run of equal-size datagrams to one destination (the
		 * last may be shorter) into one GSO send. */
		while (q->gso && i + k < n && k < UR_GSO_MAX_SEGS && same_flow(&msgs[i], &msgs[i + k]) &&
		       msgs[i + k].len <= msgs[i].len && msgs[i].len > 0 &&
		       tot + msgs[i + k].len <= UR_GSO_MAX_BYTES &&
		       msgs[i + k - 1].len == msgs[i].len) {
			tot += msgs[i + k].len;
			k++;
		}
		for (j = 0; j < k; j++) {
			q->iov[i + j].iov_base = (void *)msgs[i + j].data;
			q->iov[i + j].iov_len = msgs[i + j].len;
		}
		fill_msg(q, m, &msgs[i], k, fam);
		q->mm[m].msg_hdr.msg_iov = &q->iov[i];
		first[m] = i;
		cnt[m] = k;
		m++;
		i += k;
	}
	sent = 0;
	while (sent < m) {
		r = sendmmsg(fd, q->mm + sent, m - sent, 0);
		if (r > 0) {
			for (j = sent; j < sent + (unsigned int)r; j++) {
				if (cnt[j] > 1)
					st_add(&q->st->tx_gso_sends, 1);
				for (i = 0; i < cnt[j]; i++)
					bytes += msgs[first[j] + i].len;
				*ok += cnt[j];
			}
			sent += (unsigned int)r;
			continue;
		}
		if (errno == EINTR)
			continue;
		/* The message at 'sent' failed: count it, move on. */
		if (errno == EAGAIN || errno == ENOBUFS)
			st_add(&q->st->tx_ring_full, 1);
		st_add(&q->st->tx_drop_error, cnt[sent]);
		sent++;
	}
	st_add(&q->st->tx_bytes, bytes);
}

static int ur_tx(struct io_queue *q, const struct io_txmsg *msgs, unsigned int n)
{
	unsigned int ok = 0, done = 0, k, s;

	while (done < n) {
		/* Longest prefix that leaves through one socket, up to batch. */
		s = sock_for(q, msgs[done].src.port);
		for (k = 1; done + k < n && k < q->batch; k++)
			if (sock_for(q, msgs[done + k].src.port) != s)
				break;
		send_group(q, q->socks[s], q->fam[s], msgs + done, k, &ok);
		done += k;
	}
	st_add(&q->st->tx_pkts, ok);
	st_add(&q->st->tx_batches, 1);
	return (int)ok;
}

static int ur_wait(struct io_queue *q, int64_t timeout_us)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	int r;

	arm(q);
	if (io_uring_cq_ready(&q->ring)) {
		io_uring_submit(&q->ring);
		return 0;
	}
	if (timeout_us < 0) {
		r = io_uring_submit_and_wait(&q->ring, 1);
	} else {
		ts.tv_sec = timeout_us / 1000000;
		ts.tv_nsec = (long long)(timeout_us % 1000000) * 1000;
		r = io_uring_submit_and_wait_timeout(&q->ring, &cqe, 1, &ts, NULL);
	}
	if (r == -ETIME || r == -EINTR || r >= 0)
		return 0;
	return r;
}

/* The poll of an fd that went is left to complete or be cancelled by
 * the ring's close; a new fd is armed at the next rx or wait. */
static int ur_watch(struct io_queue *q, int fd)
{
	q->watch_fd = fd;
	q->watch_armed = 0;
	q->watch_fired = 1; /* whatever was pending before the first poll */
	return 0;
}

/* The one-shot poll is armed again at the next rx or wait, and a poll
 * armed on an fd that is readable completes at once: a readiness the
 * reader left (more than it took in one go) comes back as a completion. */
static int ur_watch_fired(struct io_queue *q)
{
	int f = q->watch_fired;

	q->watch_fired = 0;
	return f;
}

static int ur_route_mtu(void *ctx, const struct io_addr *dst)
{
	return io_route_mtu(dst);
}

const struct io_backend io_backend_uring = {
	.name = "uring",
	.init = ur_init,
	.fini = ur_fini,
	.open = ur_open,
	.rx = ur_rx,
	.rx_done = ur_rx_done,
	.tx = ur_tx,
	.wait = ur_wait,
	.watch = ur_watch,
	.watch_fired = ur_watch_fired,
	.close = ur_close,
	.route_mtu = ur_route_mtu,
};
