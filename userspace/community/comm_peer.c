// SPDX-License-Identifier: MIT
/*
 * Holders of each community we know (docs/COMMUNITY.md "Finding each
 * other"): at most NET_PEERS per community, from the DHT and from those
 * that contact us; lookups by id and DHT key. Under net->mu.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "weft/identity.h"
#include "weft/io.h"
#include "weft/util.h"

#include "comm_net_int.h"

uint64_t comm_net_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}


struct ncomm *comm_net_by_id(struct comm_net *net, const uint8_t *id)
{
	for (size_t i = 0; i < net->n; i++)
		if (!memcmp(net->c[i]->id, id, COMM_ID_LEN))
			return net->c[i];
	return NULL;
}

struct ncomm *comm_net_by_dht(struct comm_net *net, const uint8_t *dk)
{
	for (size_t i = 0; i < net->n; i++)
		if (!memcmp(net->c[i]->k.dht_key, dk, COMM_DHT_KEY_LEN))
			return net->c[i];
	return NULL;
}

socklen_t comm_net_sslen(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

int comm_net_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	struct io_addr x, y;

	if (io_addr_from_sockaddr(&x, (const struct sockaddr *)a, sizeof(*a)) ||
	    io_addr_from_sockaddr(&y, (const struct sockaddr *)b, sizeof(*b)))
		return 0;
	return x.family == y.family && x.port == y.port && !memcmp(x.addr, y.addr, sizeof(x.addr));
}

/* A holder heard of at ss (key when known): remembered, a pull due now
 * when it is new. Under net->mu. */
void comm_net_note_peer(struct comm_net *net, struct ncomm *c, const struct sockaddr_storage *ss,
		      socklen_t sslen, const uint8_t *key)
{
	struct peer *p = NULL;
	size_t worst = 0;

	if (key && !memcmp(key, net->o.me->pk, COMM_PK_LEN))
		return;
	for (size_t i = 0; i < c->np; i++) {
		if (comm_net_same_addr(&c->p[i].ss, ss) ||
		    (key && c->p[i].have_key && !memcmp(c->p[i].key, key, COMM_PK_LEN))) {
			p = &c->p[i];
			break;
		}
		if (c->p[i].fails > c->p[worst].fails)
			worst = i;
	}
	if (!p) {
		if (c->np < NET_PEERS)
			p = &c->p[c->np++];
		else if (c->p[worst].fails >= 3) /* a dead holder makes room */
			p = &c->p[worst];
		else
			return;
		memset(p, 0, sizeof(*p));
		p->ss = *ss;
		p->sslen = sslen;
		p->next_sync_ms = util_now_ms();
	}
	if (key && !p->self) {
		/* The address it reached us from is its QUIC address, unless
		 * it came another way (a relay's circuit) while the address we
		 * hold for it works. */
		if (!p->have_key || p->fails) {
			p->ss = *ss;
			p->sslen = sslen;
		}
		memcpy(p->key, key, COMM_PK_LEN);
		p->have_key = 1;
	}
}
