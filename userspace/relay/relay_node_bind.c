// SPDX-License-Identifier: MIT
/*
 * Binds of our circuit ends, for the holder (an accepted offer) and the
 * dialler (a granted request): the STUN request with WEFT-CIRCUIT sent
 * from the QUIC socket, retried at 200 ms, 400 ms, ... until answered
 * (relay_node_stun) or RELAY_DEF_BIND_MS (docs/CONNECTIVITY.md, "Relay").
 */
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <string.h>

#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/relay.h"

#include "relay_node_int.h"

struct rn_bind *rn_bind_start(struct relay_node *rn, const struct io_addr *to,
			      const uint8_t token[RELAY_TOKEN_LEN])
{
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++)
		if (!rn->binds[i].used) {
			struct rn_bind *b = &rn->binds[i];

			memset(b, 0, sizeof(*b));
			b->used = 1;
			b->to = *to;
			memcpy(b->token, token, RELAY_TOKEN_LEN);
			randombytes_buf(b->tid, sizeof(b->tid));
			b->start_ms = b->next_ms = now_ms(rn);
			return b;
		}
	return NULL;
}

/* The next attempt when due: 200 ms, 400 ms, 800 ms... apart. */
int rn_bind_next(struct relay_node *rn, struct rn_bind *b, uint64_t now, uint8_t *req)
{
	unsigned int shift;
	int n;

	if (!b->used || b->done || now < b->next_ms)
		return 0;
	if (now - b->start_ms >= RELAY_DEF_BIND_MS) {
		rn->binds_failed++;
		b->done = -ETIMEDOUT;
		pthread_cond_broadcast(&rn->cv);
		return 0;
	}
	n = relay_bind_request(b->token, b->tid, req, RELAY_BIND_LEN);
	shift = b->tries < 5 ? b->tries : 5;
	b->tries++;
	b->next_ms = now + (200ULL << shift);
	return n == RELAY_BIND_LEN;
}

void rn_bind_send(struct relay_node *rn, const struct io_addr *to, const uint8_t *req)
{
	quic_node_send_raw(rn->o.quic, to, req, RELAY_BIND_LEN);
}

void rn_bind_step(struct relay_node *rn, struct rn_bind *b, uint64_t now)
{
	uint8_t req[RELAY_BIND_LEN];

	if (rn_bind_next(rn, b, now, req))
		rn_bind_send(rn, &b->to, req);
}

int relay_node_stun(struct relay_node *rn, const uint8_t *buf, size_t len,
		    const struct io_addr *from)
{
	uint8_t tid[12];
	int hit = 0;

	if (!rn || atomic_load(&rn->freeing) || !relay_bind_is_response(buf, len, tid))
		return 0;
	lock(rn);
	for (unsigned int i = 0; i < RN_MAX_BINDS; i++) {
		struct rn_bind *b = &rn->binds[i];

		if (b->used && !b->done && !memcmp(b->tid, tid, 12) &&
		    from->family == b->to.family && from->port == b->to.port &&
		    !memcmp(from->addr, b->to.addr, 16)) {
			b->done = 1;
			rn->binds_ok++;
			log_debug("relay", "bind answered (port %u, try %u)", b->to.port, b->tries);
			hit = 1;
			pthread_cond_broadcast(&rn->cv);
		}
	}
	unlock(rn);
	return hit;
}
