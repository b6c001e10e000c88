// SPDX-License-Identifier: MIT
/*
 * One node's mesh logic without I/O (docs/MESH.md "A node"): the hub over
 * the relay's checks, the store, the reverse path and the fan-out. The
 * caller owns neighbours (tokens), sockets, the clock and randomness.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mesh.h"

#define FANOUT_MAX 64u

struct mesh_peer {
	struct mesh_peer_opts o;
	struct mesh_relay *relay;
	struct mesh_path *path;
	struct mesh_peer_stats st;
};

int mesh_peer_new(struct mesh_peer **out, const struct mesh_peer_opts *opts)
{
	struct mesh_peer *p;
	int err;

	*out = NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->o = *opts;
	if (!p->o.fanout)
		p->o.fanout = 4;
	if (p->o.fanout > FANOUT_MAX)
		p->o.fanout = FANOUT_MAX;
	err = mesh_relay_new(&p->relay, &p->o.relay);
	if (!err)
		err = mesh_path_new(&p->path, p->o.paths_max);
	if (err) {
		mesh_peer_free(p);
		return err;
	}
	*out = p;
	return 0;
}

void mesh_peer_free(struct mesh_peer *p)
{
	if (!p)
		return;
	mesh_relay_free(p->relay);
	mesh_path_free(p->path);
	free(p);
}

/* Send to up to fanout neighbours other than from: our own envelope as
 * built (hops 1: the first link), another's with hops + 1. */
static void spread(struct mesh_peer *p, const uint8_t *buf, size_t len, uint64_t from,
		   const uint64_t *neigh, size_t n, uint64_t rnd)
{
	uint8_t fwd[MESH_ENV_MAX];
	size_t idx[FANOUT_MAX], skip = n, k;

	if (from == MESH_PATH_LOCAL) {
		if (len > sizeof(fwd))
			return;
		memcpy(fwd, buf, len);
	} else if (mesh_relay_forward(p->relay, buf, len, fwd, sizeof(fwd)) != 0) {
		return;
	}
	for (size_t i = 0; i < n; i++)
		if (neigh[i] == from)
			skip = i;
	k = comm_gossip_pick(n, skip, p->o.fanout, rnd, idx);
	for (size_t i = 0; i < k; i++) {
		p->o.io.send(p->o.io.arg, neigh[idx[i]], fwd, len);
		p->st.forwarded++;
	}
}

struct answer_ctx {
	struct mesh_peer *p;
	const struct mesh_env *q;
	uint64_t from, now;
};

static void answer_one(void *arg, const uint8_t *env, size_t len)
{
	struct answer_ctx *a = arg;
	struct mesh_peer *p = a->p;
	struct mesh_msg m = {
		.type = MESH_RESPONSE, .service = a->q->service, .ref = a->q->g.id, .body = env,
		.body_len = len, .max_hops = 8, .ttl_s = 60, .ts_ms = a->now,
	};
	uint8_t out[MESH_ENV_MAX];
	size_t n;

	if (!p->o.sk || mesh_env_build(p->o.sk, &m, out, sizeof(out), &n) != 0)
		return;
	p->st.answered++;
	if (a->from == MESH_PATH_LOCAL) {
		struct mesh_env e;

		if (mesh_env_parse(out, n, &e, NULL) == 0)
			p->o.io.deliver(p->o.io.arg, &e, out, n);
		p->st.delivered++;
		return;
	}
	p->o.io.send(p->o.io.arg, a->from, out, n);
}

static void query(struct mesh_peer *p, const struct mesh_env *e, const uint8_t *buf, size_t len,
		  uint64_t from, const uint64_t *neigh, size_t n, uint64_t rnd, uint64_t now)
{
	struct answer_ctx a = { p, e, from, now };
	struct mesh_filter f;
	const char *fl;
	size_t flen;
	uint32_t max;

	if (mesh_query_parse(e->body, e->body_len, &fl, &flen, &max) != 0 ||
	    mesh_filter_parse(fl, flen, &f) != 0)
		return;
	/* Answers come back along this path: at most what the Query asked,
	 * while it lives. */
	mesh_path_add(p->path, e->g.id, from, max, e->g.ts_ms + (uint64_t)e->g.ttl_s * 1000u);
	if (p->o.store && from != MESH_PATH_LOCAL)
		mesh_store_query(p->o.store, e->service, &f, p->o.relay.min_level, max, now,
				 answer_one, &a);
	spread(p, buf, len, from, neigh, n, rnd);
}

static void response(struct mesh_peer *p, const struct mesh_env *e, const uint8_t *buf,
		     size_t len, uint64_t now)
{
	uint8_t fwd[MESH_ENV_MAX];
	struct mesh_env in;
	uint64_t to;
	int err;

	if (mesh_env_parse(e->body, e->body_len, &in, NULL) != 0)
		return;
	err = mesh_path_take(p->path, e->ref, in.g.id, now, &to);
	if (err == -EALREADY) {
		p->st.dup_answers++;
		return;
	}
	if (err) {
		p->st.unroutable++;
		return;
	}
	if (to == MESH_PATH_LOCAL) {
		p->st.delivered++;
		p->o.io.deliver(p->o.io.arg, e, buf, len);
		return;
	}
	if (mesh_relay_forward(p->relay, buf, len, fwd, sizeof(fwd)) != 0)
		return;
	p->st.routed_back++;
	p->o.io.send(p->o.io.arg, to, fwd, len);
}

int mesh_peer_input(struct mesh_peer *p, const uint8_t *buf, size_t len, uint64_t from,
		    const uint64_t *neigh, size_t n_neigh, uint64_t rnd, uint64_t now_ms)
{
	struct mesh_env e;
	int err;

	err = mesh_relay_input(p->relay, buf, len, now_ms, &e, NULL);
	if (err < 0)
		return err;
	if (err == 1) {
		/* Seen, but this copy reaches further: spread it again. */
		if (e.type == MESH_ANNOUNCE || e.type == MESH_UPDATE || e.type == MESH_REVOKE ||
		    e.type == MESH_QUERY)
			spread(p, buf, len, from, neigh, n_neigh, rnd);
		return 0;
	}
	switch (e.type) {
	case MESH_ANNOUNCE:
	case MESH_UPDATE:
	case MESH_REVOKE:
		if (p->o.store) {
			if (mesh_store_put(p->o.store, &e, buf, len, now_ms) < 0) {
				p->st.not_stored++;
				return 0; /* never forward what we would not store */
			}
			p->st.stored++;
		}
		spread(p, buf, len, from, neigh, n_neigh, rnd);
		break;
	case MESH_QUERY:
		query(p, &e, buf, len, from, neigh, n_neigh, rnd, now_ms);
		break;
	case MESH_RESPONSE:
		response(p, &e, buf, len, now_ms);
		break;
	default: /* Reserve, Confirm, Cancel: one link, for us */
		p->st.delivered++;
		p->o.io.deliver(p->o.io.arg, &e, buf, len);
		break;
	}
	return 0;
}

void mesh_peer_stats(const struct mesh_peer *p, struct mesh_peer_stats *out)
{
	*out = p->st;
}

void mesh_peer_relay_stats(const struct mesh_peer *p, struct mesh_relay_stats *out)
{
	mesh_relay_stats(p->relay, out);
}
