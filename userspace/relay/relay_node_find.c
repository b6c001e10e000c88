// SPDX-License-Identifier: MIT
/*
 * How relays are found (docs/CONNECTIVITY.md, "Relay"): a relay announces
 * itself in the DHT under SHA-1("weft:relay"); an unreachable node without
 * configured relays looks them up there, and takes the relays named in
 * the node records it has seen. Found relays fill free (or dead) slots of
 * rn->use; the holder side (relay_node_cli.c) then keeps reservations with
 * them.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "weft/conn.h"
#include "weft/dht.h"
#include "weft/log.h"
#include "weft/relay.h"
#include "weft/util.h"

#include "relay_node_int.h"

/* ------------------------------------------------------------ announce */

static void announce_done(void *arg, const struct dht_result *res)
{
	struct relay_node *rn = arg;

	if (atomic_load(&rn->freeing) || res->status == -ECANCELED)
		return;
	lock(rn);
	if (res->stored) {
		rn->announces_stored++;
		rn->next_announce_ms = now_ms(rn) + RN_ANNOUNCE_MS;
	}
	unlock(rn);
}

void rn_announce_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	lock(rn);
	rn->announces++;
	unlock(rn);
	/* Unlocked: with no node to ask, announce_done runs in the call. */
	dht_announce(dht, rn->ih, rn->o.quic_port, 0, now, announce_done, rn);
}

/* ------------------------------------------------------------ discovery */

/* A free slot for a new relay at a (and key, when known): -1 when one
 * holds it already or none is free. */
static int free_slot(struct relay_node *rn, const struct io_addr *a, const uint8_t *key)
{
	unsigned int k, slot = rn->nuse;

	for (k = 0; k < rn->nuse; k++) {
		struct rn_use *u = &rn->use[k];

		if (u->dead && slot == rn->nuse)
			slot = k;
		if (!u->dead && ((u->addr.family == a->family && u->addr.port == a->port &&
				  !memcmp(u->addr.addr, a->addr, sizeof(a->addr))) ||
				 (key && u->have_key && !memcmp(u->key, key, RELAY_KEY_LEN))))
			return -1;
	}
	return slot < RELAY_MAX_USE ? (int)slot : -1;
}

/* Relays found under the relay infohash: free slots get them (the key
 * comes with the handshake). On worker 0. */
static void discover_done(void *arg, const struct dht_result *res)
{
	struct relay_node *rn = arg;
	char buf[64];

	if (atomic_load(&rn->freeing) || res->status == -ECANCELED)
		return;
	lock(rn);
	for (size_t i = 0; i < res->npeers; i++) {
		struct io_addr a;
		int k;

		if (io_addr_from_sockaddr(&a, (const struct sockaddr *)&res->peers[i],
					  sizeof(res->peers[i])))
			continue;
		k = free_slot(rn, &a, NULL);
		if (k < 0)
			continue;
		memset(&rn->use[k], 0, sizeof(rn->use[k]));
		rn->use[k].addr = a;
		rn->use[k].discovered = 1;
		snprintf(rn->use[k].target, sizeof(rn->use[k].target), "%s",
			 io_addr_fmt(&a, buf, sizeof(buf)));
		if ((unsigned int)k == rn->nuse)
			rn->nuse++;
		rn->discovered++;
		rn->discover_gap_ms = 0; /* found: look again quickly if it fails */
		log_info("relay", "relay found in the DHT: %s",
			 log_addr(rn->use[k].target, buf, sizeof(buf)));
	}
	unlock(rn);
}

void rn_discover_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct relay_node *rn = arg;

	/* Unlocked: a lookup that cannot start finishes in the call. */
	dht_get_peers(dht, rn->ih, now, discover_done, rn);
}

void rn_from_records(struct relay_node *rn)
{
	struct conn_relay c[RELAY_MAX_USE];
	unsigned int n = conn_node_seen_relays(rn->o.conn, c, RELAY_MAX_USE);
	char buf[64], hex[2 * RELAY_KEY_LEN + 1];

	for (unsigned int i = 0; i < n; i++) {
		int k = free_slot(rn, &c[i].addr, c[i].key);
		struct rn_use *u;

		if (k < 0)
			continue;
		u = &rn->use[k];
		memset(u, 0, sizeof(*u));
		u->addr = c[i].addr;
		memcpy(u->key, c[i].key, RELAY_KEY_LEN);
		u->have_key = 1;
		u->discovered = 1;
		u->from_record = 1;
		util_hex(hex, c[i].key, RELAY_KEY_LEN);
		snprintf(u->target, sizeof(u->target), "%s@%s", hex,
			 io_addr_fmt(&c[i].addr, buf, sizeof(buf)));
		if ((unsigned int)k == rn->nuse)
			rn->nuse++;
		rn->from_records++;
		log_info("relay", "relay found in a record seen: %s",
			 log_addr(u->target, buf, sizeof(buf)));
	}
}
