/* SPDX-License-Identifier: MIT */
/*
 * A world of mesh nodes on the simulated network (docs/MESH.md "Tests"):
 * each node is the mesh core (struct mesh_peer: relay checks, an LMDB
 * store, the reverse path) with a node key and a simnet host; envelopes
 * travel as datagrams between overlay neighbours with the network's
 * latency, loss and hosts going down, in virtual time from one thread.
 * Used by tests/sim/test_sim_mesh.c and bench/bench_mesh.c.
 */
#ifndef WEFT_MESHSIM_H
#define WEFT_MESHSIM_H

#include <stddef.h>
#include <stdint.h>

#include "weft/mesh.h"

#define MESHSIM_MAX 128
#define MESHSIM_DEG_MAX 16
#define MESHSIM_EPOCH_MS 1767225600000ull /* virtual time 0 */
#define MESHSIM_INBOX 256

struct meshsim_opts {
	unsigned int n;         /* nodes, <= MESHSIM_MAX */
	unsigned int ring;      /* ring lattice: each node linked to i+-1 .. i+-ring */
	unsigned int chords;    /* plus this many random links per node */
	uint32_t latency_us, jitter_us, loss_ppm;
	uint64_t seed;
	uint32_t fanout;        /* 0: every neighbour */
	struct mesh_store_opts store;
	struct mesh_relay_opts relay;
};

struct meshsim_msg {
	uint8_t buf[MESH_ENV_MAX];
	size_t len;
	uint64_t at_ms;
};

struct meshsim_node {
	uint8_t pk[32], sk[64];
	unsigned int neigh[MESHSIM_DEG_MAX];
	unsigned int n_neigh;
	int down;
	struct mesh_peer *peer;
	struct mesh_store *store;
	struct store *st;
	void *host;                          /* struct simnet_host */
	uint64_t sent;                       /* datagrams sent */
	uint64_t seen_at_ms;                 /* first acceptance of the watched envelope, or 0 */
	uint64_t sent_watch;                 /* datagrams carrying the watched envelope */
	unsigned int got_origin_of[MESHSIM_MAX]; /* envelopes received signed by node i's key */
	struct meshsim_msg inbox[MESHSIM_INBOX]; /* delivered envelopes */
	unsigned int n_inbox;
};

struct meshsim;
int meshsim_new(struct meshsim **out, const struct meshsim_opts *o);
void meshsim_free(struct meshsim *w);
struct meshsim_node *meshsim_node(struct meshsim *w, unsigned int i);
uint64_t meshsim_now_ms(struct meshsim *w); /* epoch + virtual time */
/* Hops from a to every node over the overlay, among nodes up (-1: not reachable). */
void meshsim_dist(struct meshsim *w, unsigned int a, int *dist);
/* Node i takes its own envelope (stores it if it is ours to, forwards it). */
int meshsim_inject(struct meshsim *w, unsigned int i, const uint8_t *buf, size_t len);
/* Send an envelope straight from node a to node b (routed by key). */
void meshsim_direct(struct meshsim *w, unsigned int a, unsigned int b, const uint8_t *buf,
		    size_t len);
/* Deliver everything due until virtual time until_ms (relative to the epoch). */
void meshsim_run(struct meshsim *w, uint64_t for_ms);
void meshsim_set_down(struct meshsim *w, unsigned int i, int down);
/* Watch one envelope: seen_at_ms and sent_watch are reset and kept per node. */
void meshsim_watch(struct meshsim *w, const uint8_t *buf, size_t len);
/* Build and sign with node i's key (or sk when not NULL). */
size_t meshsim_build(struct meshsim *w, unsigned int i, const uint8_t *sk, const struct mesh_msg *m,
		     uint8_t *out);

#endif
