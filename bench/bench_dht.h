/* SPDX-License-Identifier: MIT */
/*
 * What bench_dht.c (parts (a) and (c), main) and dht_net.c (part (b): the
 * lookups in a large in-process network) share.
 */
#ifndef WEFT_BENCH_DHT_H
#define WEFT_BENCH_DHT_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

#include "benchlib.h"

#define NLOOKUPS 200 /* lookups per kind in part (b) */
#define NANNOUNCE 50 /* infohashes announced in part (b) */

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

#endif
