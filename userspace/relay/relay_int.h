/* SPDX-License-Identifier: MIT */
/* Relay data plane internals shared by fwd.c (table, binds, userspace
 * forwarding) and fwd_xdp.c (the kernel's circuit maps). */
#ifndef WEFT_RELAY_INT_H
#define WEFT_RELAY_INT_H

#include <pthread.h>

#include "weft/engine.h"
#include "weft/relay_fwd.h"
#include "weft/xdp_abi.h"

struct relay_end_int {
	int bound;
	struct io_addr addr;
	uint64_t binds;
	uint64_t drops_unbound; /* from this end while the other was not bound */
	int held;		/* hold_binds: this end's bind awaits the other's */
	uint8_t held_req[RELAY_BIND_LEN];
};

struct relay_circ {
	uint64_t id; /* 0: free */
	uint16_t port;
	uint8_t tok[2][RELAY_TOKEN_LEN];
	struct relay_end_int end[2];
	struct relay_fwd_limits lim;
	uint64_t created_ns;
	struct wxdp_circ st; /* policy state; in the kernel: mirrored in WXDP_MAP_CIRC */
	int in_kernel;	     /* both hops installed in the XDP program's map */
	uint64_t installed_ns; /* when (relay clock), for the raced-datagram log */
	int raced_logged;      /* a datagram of it reached userspace once in_kernel */
	struct wxdp_relay_key hop_key[2]; /* installed keys (valid when in_kernel) */
};

struct relay_fwd {
	struct relay_fwd_opts o;
	pthread_mutex_t mu;
	struct relay_circ *slots; /* port - port_min */
	uint32_t nslots, live, next_slot;
	uint64_t next_id;
	struct relay_fwd_totals tot;
	struct engine_timer sweep;
	struct engine_worker *w0; /* worker 0, once the sweep timer is armed */
	/* xdp mode (fwd_xdp.c) */
	int circ_fd, hop_fd, rl2_fd;
};

/* ---- fwd_xdp.c, called with rf->mu held ---- */
/* Find the maps and write the relay range into the program's config. */
int relay_kern_init(struct relay_fwd *rf);
/* Install (or refresh after a rebind) both hops of a bound circuit and its
 * state. Returns 0 or -errno (the circuit stays in userspace). */
int relay_kern_install(struct relay_fwd *rf, struct relay_circ *c);
/* Copy the kernel's counters and state of c into c->st. */
void relay_kern_sync(struct relay_fwd *rf, struct relay_circ *c);
/* Remove c's hops and clear its slot. */
void relay_kern_remove(struct relay_fwd *rf, struct relay_circ *c);
/* Clear the relay range from the program's config. */
void relay_kern_fini(struct relay_fwd *rf);

#endif
