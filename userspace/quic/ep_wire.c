// SPDX-License-Identifier: MIT
/*
 * What an endpoint and its connections share, below both: the connection-id
 * table that routes datagrams to a connection (a connection adds and
 * removes its own ids), our connection-id generator with its worker routing
 * byte (quic_cid_route() reads it back), and quic_ep_send(), the one exit
 * of every packet (the endpoint's send hook and its counters). Calls
 * nothing above it.
 */
#include <errno.h>
#include <linux/filter.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "quic/quic_int.h"

void quic_ep_cid_gen(const struct quic_ep *ep, uint8_t *id, size_t len)
{
	unsigned int n = ep->o.cid_route_count;

	randombytes_buf(id, len);
	if (n > 1 && len > 0)
		/* Uniform over the bytes b with b % n == index. */
		id[0] = (uint8_t)(ep->o.cid_route_index + n * randombytes_uniform(256 / n));
}

int quic_cid_route(const uint8_t *buf, size_t len, unsigned int count)
{
	ngtcp2_version_cid vc;
	int rv;

	if (!buf || count == 0)
		return -1;
	if (count == 1)
		return 0;
	rv = ngtcp2_pkt_decode_version_cid(&vc, buf, len, QUIC_SCID_LEN);
	if (rv != 0 || vc.dcidlen == 0 || !vc.dcid)
		return -1;
	return (int)(vc.dcid[0] % count);
}

int quic_cid_route_cbpf(unsigned int count, struct sock_filter *out, size_t cap)
{
	/* A = first byte; long header (0x80): A = DCID length, none: out of
	 * range; A = the DCID's first byte (1 short, 6 long); A % count */
	/* clang-format off */
	const struct sock_filter prog[QUIC_CID_ROUTE_CBPF_LEN] = {
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 0),
		BPF_JUMP(BPF_JMP | BPF_JSET | BPF_K, 0x80, 2, 0),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 1),
		BPF_STMT(BPF_JMP | BPF_JA, 3),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 5),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0),
		BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 6),
		BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, count),
		BPF_STMT(BPF_RET | BPF_A, 0),
		BPF_STMT(BPF_RET | BPF_K, 0xffffffffu),
	};
	/* clang-format on */

	if (!out || count == 0 || count > 256 || cap < QUIC_CID_ROUTE_CBPF_LEN)
		return -EINVAL;
	memcpy(out, prog, sizeof(prog));
	return QUIC_CID_ROUTE_CBPF_LEN;
}

/* ------------------------------------------------------------ CID table */

/* Open addressing, linear probing, keyed hash (the key is the endpoint
 * secret: peers choose CIDs of initial packets and must not be able to
 * aim them at one bucket). */
static size_t cid_hash(const struct quic_ep *ep, const uint8_t *id, size_t len)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, id, len, ep->secret);
	return (size_t)h;
}

static struct quic_cid_ent *ent_find(const struct quic_ep *ep, int tok, const uint8_t *id,
				     size_t len)
{
	size_t mask = ep->cid_cap - 1, i = cid_hash(ep, id, len) & mask, n;

	if (!ep->cid_cap)
		return NULL;
	for (n = 0; n < ep->cid_cap; n++, i = (i + 1) & mask) {
		struct quic_cid_ent *e = &ep->cids[i];

		if (!e->len && !e->tomb)
			return NULL;
		if (e->len == len && e->tok == tok && memcmp(e->id, id, len) == 0)
			return e;
	}
	return NULL;
}

struct quic_cid_ent *quic_ep_cid_find(const struct quic_ep *ep, const uint8_t *id, size_t len)
{
	return ent_find(ep, 0, id, len);
}

static int cid_rehash(struct quic_ep *ep, size_t ncap)
{
	struct quic_cid_ent *old = ep->cids, *nt;
	size_t ocap = ep->cid_cap, i;

	nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return -ENOMEM;
	ep->rx_last = NULL;
	ep->cids = nt;
	ep->cid_cap = ncap;
	ep->cid_used = 0;
	for (i = 0; i < ocap; i++) {
		struct quic_cid_ent *e = &old[i];
		size_t mask = ncap - 1, j;

		if (!e->len)
			continue;
		j = cid_hash(ep, e->id, e->len) & mask;
		while (nt[j].len)
			j = (j + 1) & mask;
		nt[j] = *e;
		ep->cid_used++;
	}
	free(old);
	return 0;
}

static int ent_add(struct quic_ep *ep, struct quic_conn *c, int tok, const uint8_t *id,
		   size_t len)
{
	struct quic_cid_ent *e;
	size_t mask, i;

	e = ent_find(ep, tok, id, len);
	if (e) {
		/* A collision of random 128-bit ids, or a client reusing an
		 * initial DCID of a live connection: keep the first owner. */
		return e->conn == c ? 0 : -EEXIST;
	}
	/* Keep the load (live + tombstones) under 1/2. */
	if ((ep->cid_used + 1) * 2 > ep->cid_cap) {
		size_t live = 0, ncap = QUIC_CID_TABLE_MIN;

		for (i = 0; i < ep->cid_cap; i++)
			live += ep->cids[i].len != 0;
		while (ncap < (live + 1) * 4)
			ncap *= 2;
		if (cid_rehash(ep, ncap))
			return -ENOMEM;
	}
	mask = ep->cid_cap - 1;
	i = cid_hash(ep, id, len) & mask;
	while (ep->cids[i].len)
		i = (i + 1) & mask;
	e = &ep->cids[i];
	if (!e->tomb)
		ep->cid_used++;
	e->tomb = 0;
	ep->rx_last = NULL;
	e->len = (uint8_t)len;
	e->tok = (uint8_t)tok;
	memcpy(e->id, id, len);
	e->conn = c;
	return 0;
}

static void ent_del(struct quic_ep *ep, struct quic_cid_ent *e)
{
	e->len = 0;
	e->tok = 0;
	e->tomb = 1;
	ep->rx_last = NULL;
	e->conn = NULL;
}

int quic_ep_cid_add(struct quic_ep *ep, struct quic_conn *c, const ngtcp2_cid *cid)
{
	if (cid->datalen == 0 || cid->datalen > NGTCP2_MAX_CIDLEN)
		return -EINVAL;
	return ent_add(ep, c, 0, cid->data, cid->datalen);
}

void quic_ep_cid_del(struct quic_ep *ep, const ngtcp2_cid *cid)
{
	struct quic_cid_ent *e = ent_find(ep, 0, cid->data, cid->datalen);

	if (e)
		ent_del(ep, e);
}

int quic_ep_rtok_add(struct quic_ep *ep, struct quic_conn *c, const uint8_t *token)
{
	return ent_add(ep, c, 1, token, NGTCP2_STATELESS_RESET_TOKENLEN);
}

void quic_ep_rtok_del(struct quic_ep *ep, struct quic_conn *c, const uint8_t *token)
{
	struct quic_cid_ent *e = ent_find(ep, 1, token, NGTCP2_STATELESS_RESET_TOKENLEN);

	if (e && e->conn == c)
		ent_del(ep, e);
}

struct quic_conn *quic_ep_rtok_conn(const struct quic_ep *ep, const uint8_t *tail)
{
	struct quic_cid_ent *e = ent_find(ep, 1, tail, NGTCP2_STATELESS_RESET_TOKENLEN);

	return e ? e->conn : NULL;
}

/* ------------------------------------------------------------- sending */

void quic_ep_send(struct quic_ep *ep, const uint8_t *buf, size_t len, size_t gso,
		  const ngtcp2_path *path)
{
	int rc;

	if (!len)
		return;
	if (!gso)
		gso = len;
	rc = ep->o.send(ep->o.send_arg, buf, len, gso, (const struct sockaddr *)path->remote.addr,
			path->remote.addrlen,
			path->local.addrlen ? (const struct sockaddr *)path->local.addr : NULL);
	ep->st.tx_sends++;
	if (rc) {
		ep->st.send_errors++;
		return;
	}
	ep->st.tx_datagrams += (len + gso - 1) / gso;
	ep->st.tx_bytes += len;
}
