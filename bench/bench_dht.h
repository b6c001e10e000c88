/* SPDX-License-Identifier: MIT */
/*
 * What bench_dht.c (parts (a) and (c): the load generator and its CPU
 * accounting; main), dht_procs.c (the server processes those parts start
 * and measure) and dht_net.c (part (b): the lookups in a large in-process
 * network) share.
 */
#ifndef WEFT_BENCH_DHT_H
#define WEFT_BENCH_DHT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "benchlib.h"

#define NLOOKUPS 200 /* lookups per kind in part (b) */
#define NANNOUNCE 50 /* infohashes announced in part (b) */
#define NFILL 16     /* helper nodes both servers of parts (a) and (c) learn */
#define BATCH 64     /* datagrams per recvmmsg / sendmmsg */

static inline uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static inline uint64_t now_ms(void)
{
	return now_us() / 1000;
}

/* A set of DHT nodes on 127.0.0.1 sockets served by one poll() loop. */
struct pnode {
	int fd;
	struct dht *dht;
	struct sockaddr_in addr;
};

/* count nodes, seeds derived from seed_base; 0 or -1. */
int pnodes_new(struct pnode *n, int count, int seed_base);
void pnodes_free(struct pnode *n, int count);
/* Serve the nodes for up to ms (or until *stop, or until *done). */
void pump(struct pnode *n, int count, uint64_t ms, atomic_int *stop, const int *done);

/* Part (b): lookup latency and hops in an nnet-node network. 0 or -1. */
int part_b(struct bench_result *res, int nnet);

/* ---- bench_dht.c: where the servers run, sockets, queries ---- */

/* Where part (a) or (c) runs: the servers' address, the generator's source
 * prefix and, on the veth pair, the pair (servers in end A, generator in
 * end B). */
struct site {
	uint32_t addr;     /* servers' IPv4 address, host order */
	uint32_t src_base; /* generator sources: src_base + (i / 254) << 8 + 1 + i % 254 */
	const struct bench_veth *veth; /* NULL: loopback, one namespace */
};
extern struct site site;

/* A UDP socket bound to addr (host order), port chosen by the kernel. */
int udp_socket_at(struct sockaddr_in *a, uint32_t addr);
/* A socket at the servers' address, in their namespace (end A of the
 * veth pair, or this one). */
int server_socket(struct sockaddr_in *a);

/* A KRPC query; the transaction id (4 bytes) at tid_off, the node id at
 * id_off, for the generator to stamp per datagram. */
struct tmpl {
	uint8_t buf[256];
	size_t len, tid_off, id_off;
};

/* Query method ("ping", "find_node", "get_peers") from node id for target. */
void make_tmpl(struct tmpl *t, const char *method, const uint8_t id[20],
	       const uint8_t target[20]);

/* ---- dht_procs.c: the servers, each a child process pinned to CPU 1 ---- */

struct lt_proc {
	pid_t pid;
	int to, from;
	int port;
	unsigned int nodes;
};

struct weftd_proc {
	pid_t pid;
	char dir[64];
	int port;
};

/* The libtorrent session at the site, taught the nfill fillers. 0 or -1. */
int lt_start(struct lt_proc *lt, const struct pnode *fill, int nfill);
void lt_stop(struct lt_proc *lt);
/* End a child (stdin closed or SIGTERM, then SIGKILL). */
void child_stop(pid_t pid, int term);
/* Fork the kernel floor; its port, or -1. */
int floor_start(pid_t *pid);
/* Fork the AF_XDP floor in end A of the veth pair; its port, or -1. */
int floor_xdp_start(pid_t *pid);
/* weftd with io "uring" or "xdp", bootstrapped from the fillers. 0 or -1. */
int weftd_start(struct weftd_proc *w, const struct pnode *fill, int nfill, const char *io);
void weftd_stop(struct weftd_proc *w);
/* Counter name of weftd's io totals, or -1. */
double weftd_io_total(const struct weftd_proc *w, const char *name);

#endif
