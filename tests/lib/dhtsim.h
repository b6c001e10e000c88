/* SPDX-License-Identifier: MIT */
/*
 * A small Mainline DHT in one process on a virtual clock: n DHT cores
 * (userspace/dht, no I/O) plus one more, "us", whose datagrams go through
 * an in-memory queue with a fixed one-way latency. Deterministic for a
 * seed. Counts every query "us" sends to each node per second of virtual
 * time, so a test or a benchmark can check what any one remote node sees
 * from us in any minute.
 *
 * dhtsim_announce drives the content announce schedule
 * (userspace/content/annsched.h) with "us" exactly as
 * userspace/content/announce.c does with weftd's DHT, on the virtual
 * clock. Used by tests/sim/test_sim_announce.c and bench/bench_announce.c.
 */
#ifndef WEFT_TEST_DHTSIM_H
#define WEFT_TEST_DHTSIM_H

#include <stddef.h>
#include <stdint.h>

#include "weft/dht.h"

struct dhtsim;

struct dhtsim_opts {
	unsigned int nodes; /* DHT nodes besides us */
	uint64_t seed;
	unsigned int latency_ms; /* one way, every link */
	unsigned int max_s;	 /* seconds of virtual time counted (per-node buckets) */
	unsigned int tick_ms;	 /* timers run this often (0: 50 ms) */
};

int dhtsim_new(struct dhtsim **out, const struct dhtsim_opts *o);
void dhtsim_free(struct dhtsim *s);
/* Let the nodes find each other (find_node of their own ids): virtual ms. */
void dhtsim_form(struct dhtsim *s, uint64_t ms);
uint64_t dhtsim_now(const struct dhtsim *s);
struct dht *dhtsim_us(struct dhtsim *s);
struct dht *dhtsim_node(struct dhtsim *s, unsigned int i);
/* Run until now + ms, or until *stop becomes non-zero (checked after each
 * event; stop may be NULL). */
void dhtsim_run(struct dhtsim *s, uint64_t ms, const int *stop);

struct dhtsim_report {
	uint64_t ids, announced;   /* ids given, announced at least once */
	uint64_t all_ms;	   /* virtual time until every id was announced (0: not) */
	uint64_t lookups, batches; /* of the schedule */
	uint64_t queries;	   /* queries us sent in all */
	uint64_t max_node_min;	   /* most queries one node got from us in a minute */
	uint64_t max_node_min_ann; /* of those, announce_peer */
	unsigned int busiest;	   /* that node */
};
/* Announce n ids (20 bytes each, the DHT keys) from us with port, for at
 * most ms of virtual time; stops when all were announced once. */
void dhtsim_announce(struct dhtsim *s, const uint8_t (*ids)[DHT_ID_LEN], size_t n, uint16_t port,
		     uint64_t ms, struct dhtsim_report *r);
/* The peers node i's get_peers lookup of ih finds (into out, at most cap),
 * run to completion on the virtual clock: the count, or < 0. */
int dhtsim_get_peers(struct dhtsim *s, unsigned int i, const uint8_t ih[DHT_ID_LEN],
		     struct sockaddr_storage *out, size_t cap);
/* Node i leaves and a new node (new id from salt) takes its address: its
 * datagrams still in flight reach the newcomer, which pings 8 nodes at
 * random and looks itself up once one answered (its own maintenance).
 * 0 or < 0. */
int dhtsim_replace(struct dhtsim *s, unsigned int i, uint64_t salt);
/* Our address (what announce_peer stores: our IP, the port given). */
void dhtsim_us_addr(const struct dhtsim *s, struct sockaddr_storage *out);

#endif
