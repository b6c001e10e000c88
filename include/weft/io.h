/* SPDX-License-Identifier: MIT */
/*
 * Packet I/O: two backends behind one interface.
 *
 *   - io_backend_uring: one UDP socket per port per queue (SO_REUSEPORT,
 *     dual-stack), multishot recvmsg on a provided-buffer ring, UDP GRO on
 *     receive, batched sendmmsg with UDP GSO for bursts to one destination.
 *   - io_backend_xsk: one AF_XDP socket per NIC rx queue (libxdp xsk API),
 *     UMEM + frame pool, Ethernet/IPv4/IPv6/UDP built and stripped here,
 *     next-hop MAC from the kernel neighbour table (rtnetlink).
 *
 * Both hand the engine the same packet view (struct io_pkt). A queue is
 * driven by exactly one thread; nothing here takes a lock.
 */
#ifndef WEFT_IO_H
#define WEFT_IO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Compact address: family AF_INET or AF_INET6 (0 = unset), port in host
 * byte order, IPv4 in addr[0..3], IPv6 in addr[0..15]. */
struct io_addr {
	uint16_t family;
	uint16_t port;
	uint32_t scope_id; /* IPv6 link-local scope, else 0 */
	uint8_t addr[16];
};

/* The packet view handed to the engine. data points into a backend-owned
 * buffer valid until the next rx call of that queue (copy what you keep). */
struct io_pkt {
	uint8_t *data;     /* UDP payload */
	uint32_t len;      /* UDP payload length */
	uint32_t queue;    /* queue / worker index */
	struct io_addr src; /* sender */
	struct io_addr dst; /* local address and port the packet was sent to */
};

/* One datagram to send. data is borrowed for the duration of the tx call.
 * src.family == 0 lets the backend pick the source address (the kernel's
 * route for uring; the interface's first address for xsk); src.port == 0
 * means the first configured port. ttl: the IPv4 TTL / IPv6 hop limit of
 * this datagram, 0 for the default (the socket's for uring, 64 for xsk);
 * hole punching's first probes use a small one (docs/CONNECTIVITY.md).
 * The mem backend has no hops and ignores it. */
struct io_txmsg {
	const void *data;
	uint32_t len;
	struct io_addr dst;
	struct io_addr src;
	uint8_t ttl;
};

enum io_mode {
	IO_MODE_URING = 0,
	IO_MODE_XDP = 1,
	IO_MODE_MEM = 2, /* in-memory, on a simulated network (tests; io_opts.sim_host) */
};

#define IO_MAX_PORTS 8
/* Most ports of the extra served range (io_opts.range_min..max). */
#define IO_MAX_RANGE 4096

/* Per-queue counters, single writer (the queue's thread), read relaxed by
 * others. The engine embeds one per worker. */
struct io_stats {
	uint64_t rx_pkts, rx_bytes;   /* UDP payloads delivered */
	uint64_t tx_pkts, tx_bytes;   /* UDP payloads accepted by the kernel/NIC ring */
	uint64_t rx_batches, tx_batches;
	uint64_t rx_ring_full;        /* uring: buffer ring empty (ENOBUFS); xsk: fill ring starved */
	uint64_t tx_ring_full;        /* tx ring / socket buffer full (send retried later or dropped) */
	uint64_t rx_drop_malformed;   /* xsk: frame not Eth/IP/UDP or bad lengths */
	uint64_t rx_drop_not_ours;    /* xsk: UDP to a port we do not serve */
	uint64_t tx_drop_nobuf;       /* no free frame / too big */
	uint64_t tx_drop_error;       /* send error other than full */
	uint64_t tx_kernel;           /* xsk: handed to the kernel path (unresolved neighbour) */
	uint64_t rx_kernel;           /* xsk: received on the kernel-path socket */
	uint64_t tx_gso_sends;        /* uring: sendmsg carrying UDP_SEGMENT */
	uint64_t rx_gro_bufs;         /* uring: coalesced receives split by gso_size */
	uint64_t neigh_updates;       /* xsk: neighbour/route change events applied */
	uint64_t zerocopy;            /* xsk: 1 if bound with XDP_ZEROCOPY */
	uint64_t rx_bufs;             /* uring: receive buffers provided (all resident; a gauge) */
	uint64_t rx_ring_bytes;       /* uring: bytes those buffers hold resident (a gauge) */
	/* xsk: the socket's own drop statistics (getsockopt XDP_STATISTICS),
	 * the kernel's totals for the queue's socket, refreshed at least every
	 * 100 ms while the queue runs and once at close. Frames the XDP
	 * program redirected (its "redirect" counter) but the socket dropped
	 * show up here, not in rx_pkts. */
	uint64_t xsk_rx_dropped;          /* no fill-ring buffer to copy into, frame too large */
	uint64_t xsk_rx_invalid_descs;    /* fill-ring descriptors the kernel refused */
	uint64_t xsk_tx_invalid_descs;    /* tx descriptors the kernel refused */
	uint64_t xsk_rx_ring_full;        /* frames dropped because the rx ring was full */
	uint64_t xsk_rx_fill_ring_empty;  /* times the fill ring had no buffer */
	uint64_t xsk_tx_ring_empty;       /* times the tx ring was empty when polled */
};

struct io_opts {
	enum io_mode mode;
	const uint16_t *ports;    /* UDP ports served, host order */
	unsigned int nports;      /* 1..IO_MAX_PORTS */
	uint16_t range_min, range_max; /* extra served range, inclusive; 0 = none */
	unsigned int batch;       /* max packets per rx/tx call; default 64 */
	int wake_fd;              /* eventfd the wait op also watches (-1: none) */
	struct io_stats *stats;   /* where the queue counts; required */
	/* uring */
	const char *bind_addr;    /* numeric; default "::" dual-stack */
	unsigned int uring_bufs;  /* most provided buffers; default 512 x 2 KiB, 256 x 64 KiB with GRO (4 at first, docs/ENGINE.md) */
	int uring_gro;            /* UDP_GRO on receive; default 1 (see io_opts_default) */
	int uring_gso;            /* UDP_SEGMENT on send; default 1 */
	/* A classic BPF program (struct sock_fprog) that picks the queue of
	 * each datagram to steer_port: attached to the port's SO_REUSEPORT
	 * group (SO_ATTACH_REUSEPORT_CBPF) by queue 0, whose sockets are
	 * bound in queue order, so the program returns a queue index (one
	 * out of range: the kernel's 4-tuple hash). Refused: logged, the hash
	 * as before. NULL (default): the hash. Read during open only. */
	const void *steer_prog;
	uint16_t steer_port;
	unsigned int uring_shrink_ms; /* quiet window before half the grown buffers go back; 0: 10 s */
	/* xsk */
	const char *ifname;
	int xskmap_fd;            /* weft's XSKMAP, or -1: load the built-in steering program */
	unsigned int xskmap_base; /* queue q's socket goes at key xskmap_base + q; default 0
				   * (weft's XSKMAP: owner * WXDP_MAX_QUEUES, docs/XDP.md) */
	unsigned int xsk_frames;  /* UMEM frames per queue; default 4096 (8 MiB) */
	unsigned int xsk_first_queue; /* queue i binds the interface's rx queue first + i; default 0 */
	int xdp_generic;          /* attach the built-in program in SKB mode */
	int xsk_no_zerocopy;      /* skip the XDP_ZEROCOPY attempt */
	/* mem */
	struct simnet_host *sim_host; /* the host whose queues this backend serves */
};

/* Fill opts with the documented defaults (mode uring, batch 64, GRO/GSO on,
 * xskmap_fd -1, wake_fd -1). */
void io_opts_default(struct io_opts *opts);

struct io_queue;
struct simnet_host;

/* A backend. Every op is called from the queue's thread only, except
 * open/close which the engine calls from the control thread before the
 * worker starts and after it stopped. */
struct io_backend {
	const char *name;
	/* Shared set-up before queues open (xsk: steering program + XSKMAP);
	 * returns the number of queues available (> 0) or -errno. *ctx is
	 * passed to open and to fini. */
	int (*init)(void **ctx, const struct io_opts *opts, unsigned int want_queues);
	void (*fini)(void *ctx);
	/* Open queue qid. Returns 0 or -errno (-ENODEV, -EPERM, -EOPNOTSUPP,
	 * -EADDRINUSE, -ENOMEM). */
	int (*open)(struct io_queue **out, void *ctx, const struct io_opts *opts, unsigned int qid);
	/* Receive up to max packets without blocking. Returns count >= 0 or
	 * -errno. Packet data stays valid until rx_done(). */
	int (*rx)(struct io_queue *q, struct io_pkt *pkts, unsigned int max);
	/* Return every buffer handed out by the last rx call. */
	void (*rx_done)(struct io_queue *q);
	/* Send n datagrams (copied). Returns how many were accepted (the rest
	 * were dropped and counted) or -errno on a hard failure. */
	int (*tx)(struct io_queue *q, const struct io_txmsg *msgs, unsigned int n);
	/* Block until packets may be available, wake_fd is readable or
	 * timeout_us microseconds (-1: forever) passed; also runs
	 * housekeeping (xsk: completions, neighbour events). Returns 0 or
	 * -errno (-EINTR ok). */
	int (*wait)(struct io_queue *q, int64_t timeout_us);
	/* Optional, the queue's thread (or before it starts): wait() also
	 * returns when fd is readable (level: a readable fd keeps waking
	 * it), until watch(q, -1). The caller reads fd. Returns 0 or -errno. */
	int (*watch)(struct io_queue *q, int fd);
	/* Optional, the queue's thread: 1 when the watched fd was seen
	 * readable since the last call (then forgotten), 0 when not. The
	 * readiness must not be lost: an fd still readable after its reader
	 * ran is seen again. NULL: the caller cannot tell, and reads fd
	 * every pass. */
	int (*watch_fired)(struct io_queue *q);
	void (*close)(struct io_queue *q);
	/* Optional, any thread: the local address datagrams to dst leave
	 * from (port left 0). NULL: the kernel's route lookup applies (uring,
	 * xsk). Returns 0 or -ENETUNREACH. */
	int (*local_addr)(void *ctx, const struct io_addr *dst, struct io_addr *local);
	/* Optional, the calling thread: the MTU in bytes of the kernel's
	 * route to dst, when it is above 1500 (a jumbo-frame link: the only
	 * case a caller acts on), else 0. NULL: always 0 (xsk, mem). */
	int (*route_mtu)(void *ctx, const struct io_addr *dst);
};

extern const struct io_backend io_backend_uring;
extern const struct io_backend io_backend_xsk;
/* In-memory backend (mem.c): queue i is receive queue i of a simnet host
 * (include/weft/simnet.h); tx hands datagrams to the simulated network,
 * from the host's address and the message's source port (0: the first
 * served port). Up to SIMNET_MAX_QUEUES queues. No privilege, no socket. */
extern const struct io_backend io_backend_mem;

/* Backend for a mode, or NULL. */
const struct io_backend *io_backend_get(enum io_mode mode);
const char *io_mode_name(enum io_mode mode);
/* "xdp" / "uring" -> mode; returns 0 or -EINVAL. */
int io_mode_parse(const char *s, enum io_mode *out);

/* Address helpers. io_addr_from_sockaddr unmaps IPv4-mapped IPv6
 * (::ffff:a.b.c.d) to AF_INET. Return 0 or -EAFNOSUPPORT. */
int io_addr_from_sockaddr(struct io_addr *a, const struct sockaddr *sa, socklen_t len);
/* Fill ss for a socket of family sock_family (AF_INET6 sockets get a
 * v4-mapped address for AF_INET). Returns the length or -EAFNOSUPPORT. */
int io_addr_to_sockaddr(const struct io_addr *a, int sock_family, struct sockaddr_storage *ss);
/* Write a control message at c that sets the TTL (dst_family AF_INET,
 * IP_TTL, also on a dual-stack socket sending to a v4-mapped address) or
 * the hop limit (AF_INET6, IPV6_HOPLIMIT) of one sendmsg to ttl (1..255).
 * c must have CMSG_SPACE(sizeof(int)) bytes. Returns that space, or 0
 * (nothing written) for ttl 0 or another family. */
size_t io_cmsg_ttl(struct cmsghdr *c, int dst_family, uint8_t ttl);
/* Numeric "1.2.3.4" / "2001:db8::1" plus port; returns 0 or -EINVAL. */
int io_addr_parse(struct io_addr *a, const char *ip, uint16_t port);
/* 1 if same family, address and port. */
int io_addr_equal(const struct io_addr *a, const struct io_addr *b);
/* "1.2.3.4:5" / "[::1]:5" into buf; returns buf. */
const char *io_addr_fmt(const struct io_addr *a, char *buf, size_t len);

/* The MTU of the kernel's route to dst (addr.c: a connected UDP socket's
 * IP_MTU or IPV6_MTU) when a path of that size is worth probing: above
 * 1500 (a jumbo-frame link), or 1500 to an IPv4 address on one of our
 * links (the route has no gateway: RTM_GETROUTE); 0 otherwise or when the
 * kernel has no route. Answers kept per thread for IO_ROUTE_MTU_RECHECK_S
 * seconds, IO_ROUTE_MTU_CACHE of them (one slot per address hash). */
#define IO_ROUTE_MTU_RECHECK_S 10
#define IO_ROUTE_MTU_CACHE 64
/* Kernel lookups (addresses not in the cache) a thread makes a second at
 * most; past them the answer is 0 until the next second (a flood of
 * forged sources costs no more). */
#define IO_ROUTE_MTU_LOOKUPS_PER_S 256
int io_route_mtu(const struct io_addr *dst);
/* Kernel lookups io_route_mtu made on the calling thread (tests). */
unsigned int io_route_mtu_lookups(void);

/*
 * A UDP socket (family: the socket's; AF_INET6 dual-stack covers its
 * v4-mapped traffic too) whose datagrams are never fragmented at the IP
 * layer (RFC 9000 section 14; AF_XDP's frames carry DF too, hdr.c): DF on
 * every IPv4 datagram and no size taken from ICMP, which anyone can forge
 * (IP_PMTUDISC_PROBE / IPV6_PMTUDISC_PROBE: QUIC finds the path's size
 * itself, ngtcp2's PMTUD and conn_write.c's probes). The kernel's default
 * (PMTUDISC_WANT) set DF only on a packet within the route's MTU, so a
 * GSO train went without it: each of its datagrams fragmentable on the
 * way, its IP id drawn from the kernel's shared generator. 0 or -errno.
 */
int io_sock_no_frag(int fd, int family);

/* ---- L2-L4 headers (hdr.c): no I/O, exposed for tests and fuzzing ---- */

#define IO_HDR_ETH_LEN 14
#define IO_HDR_MAX_LEN (IO_HDR_ETH_LEN + 8 + 40 + 8) /* two VLAN tags + IPv6 + UDP */

struct io_hdr_info {
	struct io_addr src, dst;
	uint8_t src_mac[6], dst_mac[6];
	uint16_t vlan[2];        /* VLAN ids, outermost first */
	uint8_t nvlan;
	uint8_t csum_present;    /* UDP checksum field non-zero */
	uint16_t payload_off;    /* offset of the UDP payload in the frame */
	uint16_t payload_len;    /* from the UDP length field */
	uint16_t udp_csum;       /* as received (network order value) */
};

/*
 * Parse an Ethernet frame down to the UDP payload: up to two VLAN tags
 * (802.1Q / 802.1ad), IPv4 with options (fragments refused), IPv6 with up
 * to IO_HDR_MAX_EXT hop-by-hop / routing / destination-options headers.
 * Every length is checked against len and against the IP length fields
 * (Ethernet padding beyond the IP length is ignored).
 * Returns 0, -EPROTONOSUPPORT (not IP/UDP), -EMSGSIZE (truncated or
 * inconsistent lengths), -EINVAL (bad version/IHL), -EFBIG (fragment).
 */
#define IO_HDR_MAX_EXT 4
int io_hdr_parse(const uint8_t *buf, size_t len, struct io_hdr_info *out);

/* Verify the UDP checksum of a frame io_hdr_parse accepted (a zero IPv4
 * checksum is "none" and accepted). Returns 1 if valid, 0 if not. */
int io_hdr_udp_csum_ok(const uint8_t *buf, size_t len, const struct io_hdr_info *info);

/*
 * Build Ethernet + IPv4/IPv6 + UDP headers and copy the payload into buf
 * (cap bytes). src and dst must have the same family. IPv4: DF set, TTL 64,
 * header checksum; UDP checksum always computed (0 sent as 0xffff). ip_id
 * is the IPv4 identification to use. Returns the frame length or -EMSGSIZE
 * (does not fit / payload over 65507) or -EAFNOSUPPORT.
 */
int io_hdr_build(uint8_t *buf, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		 const struct io_addr *src, const struct io_addr *dst, uint16_t ip_id,
		 const void *payload, size_t plen);

/* Set the IPv4 TTL (header checksum updated) or IPv6 hop limit of a frame
 * io_hdr_build made (len bytes). Returns 0, or -EINVAL (too short / not
 * IPv4 or IPv6). */
int io_hdr_set_ttl(uint8_t *frame, size_t len, uint8_t ttl);

/* RFC 1071 one's complement sum helpers. */
uint32_t io_csum_add(uint32_t sum, const void *data, size_t len);
uint16_t io_csum_fold(uint32_t sum);

/* ---- neighbour table (neigh.c) ---- */

struct io_neigh;

/* Bounded cache; default 1024 neighbours and 256 routes: a node talks to
 * few next hops (the gateway, plus on-link peers). */
#define IO_NEIGH_DEFAULT_MAX 1024
#define IO_NEIGH_ROUTE_MAX 256
/* Most routes the mirror of the kernel's tables holds (local, main and
 * default together): a host or router with a few routes fits; with more
 * (a full Internet table) each new destination is a netlink query. */
#define IO_NEIGH_FIB_MAX 1024

/*
 * Open a neighbour/route cache for interface ifindex: subscribes to
 * RTNLGRP_NEIGH and route changes, then dumps the current neighbour
 * table. One per queue thread (no locking). Returns 0 or -errno.
 */
int io_neigh_new(struct io_neigh **out, int ifindex, unsigned int max);
void io_neigh_free(struct io_neigh *n);
/* Descriptor to poll for change events. */
int io_neigh_fd(const struct io_neigh *n);
/* Apply pending change events without blocking; returns how many. */
int io_neigh_process(struct io_neigh *n);
/*
 * Next-hop MAC for dst: a route lookup (the mirror of the kernel's tables,
 * or RTM_GETROUTE where the mirror cannot answer; cached per destination
 * until a route change) gives the gateway or dst itself, then the
 * neighbour table. Returns 0 with mac
 * filled, -EHOSTUNREACH (no route via this interface), -EAGAIN (neighbour
 * not resolved: use the kernel path, which also triggers ARP/ND).
 */
int io_neigh_lookup(struct io_neigh *n, const struct io_addr *dst, uint8_t mac[6]);
/* Number of cached neighbours. */
unsigned int io_neigh_count(const struct io_neigh *n);
/* How often the routing tables were mirrored (dumps) and how many
 * destinations the mirror could not answer (RTM_GETROUTE queries). */
void io_neigh_route_counts(const struct io_neigh *n, uint64_t *dumps, uint64_t *queries);

#endif
