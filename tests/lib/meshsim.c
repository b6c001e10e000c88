// SPDX-License-Identifier: MIT
/* A world of mesh nodes on the simulated network (meshsim.h). */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meshsim.h"
#include "weft/io.h"
#include "weft/simnet.h"
#include "weft/store.h"

#define PORT 7000

struct ctx {
	struct meshsim *w;
	unsigned int i;
};

struct meshsim {
	struct meshsim_opts o;
	struct simnet *sn;
	struct meshsim_node node[MESHSIM_MAX];
	struct ctx ctx[MESHSIM_MAX];
	char dir[64];
	uint64_t rnd;
	uint8_t watch[MESH_ENV_MAX];
	size_t watch_len;
};

static uint64_t next_rnd(struct meshsim *w)
{
	w->rnd ^= w->rnd << 13;
	w->rnd ^= w->rnd >> 7;
	w->rnd ^= w->rnd << 17;
	return w->rnd * 0x2545f4914f6cdd1dull;
}

static void addr_of(unsigned int i, struct io_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->family = AF_INET;
	a->port = PORT;
	a->addr[0] = 10;
	a->addr[1] = 77;
	a->addr[2] = (uint8_t)(i >> 8);
	a->addr[3] = (uint8_t)(i + 1);
}

static int index_of(const struct meshsim *w, const struct io_addr *a)
{
	unsigned int i = ((unsigned int)a->addr[2] << 8 | a->addr[3]) - 1;

	return a->addr[0] == 10 && a->addr[1] == 77 && i < w->o.n ? (int)i : -1;
}

static int watched(const struct meshsim *w, const uint8_t *buf, size_t len)
{
	/* The signed bytes (all but the hop count) of the watched envelope. */
	return w->watch_len && len == w->watch_len && !memcmp(buf, w->watch, 1) &&
	       !memcmp(buf + 2, w->watch + 2, len - 2);
}

static void io_send(void *arg, uint64_t token, const uint8_t *env, size_t len)
{
	struct ctx *c = arg;
	struct meshsim_node *n = &c->w->node[c->i];
	struct io_addr to;

	addr_of((unsigned int)token, &to);
	simnet_send(n->host, PORT, &to, env, len);
	n->sent++;
	if (watched(c->w, env, len))
		n->sent_watch++;
}

static void io_deliver(void *arg, const struct mesh_env *e, const uint8_t *env, size_t len)
{
	struct ctx *c = arg;
	struct meshsim_node *n = &c->w->node[c->i];

	(void)e;
	if (n->n_inbox == MESHSIM_INBOX)
		return;
	memcpy(n->inbox[n->n_inbox].buf, env, len);
	n->inbox[n->n_inbox].len = len;
	n->inbox[n->n_inbox].at_ms = meshsim_now_ms(c->w);
	n->n_inbox++;
}

static int link_add(struct meshsim *w, unsigned int a, unsigned int b)
{
	struct meshsim_node *x = &w->node[a], *y = &w->node[b];

	if (a == b || x->n_neigh == MESHSIM_DEG_MAX || y->n_neigh == MESHSIM_DEG_MAX)
		return 0;
	for (unsigned int k = 0; k < x->n_neigh; k++)
		if (x->neigh[k] == b)
			return 0;
	x->neigh[x->n_neigh++] = b;
	y->neigh[y->n_neigh++] = a;
	return 1;
}

uint64_t meshsim_now_ms(struct meshsim *w)
{
	return MESHSIM_EPOCH_MS + simnet_now_ns(w->sn) / 1000000u;
}

int meshsim_new(struct meshsim **out, const struct meshsim_opts *o)
{
	struct simnet_opts so = { .seed = o->seed, .clock = SIMNET_CLOCK_MANUAL };
	struct simnet_link l = { o->latency_us / 2, o->jitter_us / 2, o->loss_ppm / 2, 0, 0 };
	struct meshsim *w;
	int err;

	*out = NULL;
	if (o->n < 2 || o->n > MESHSIM_MAX || sodium_init() < 0)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->o = *o;
	w->rnd = o->seed ? o->seed : 1;
	snprintf(w->dir, sizeof(w->dir), "/tmp/meshsim.XXXXXX");
	err = mkdtemp(w->dir) ? simnet_new(&w->sn, &so) : -errno;
	for (unsigned int i = 0; !err && i < o->n; i++) {
		struct meshsim_node *n = &w->node[i];
		struct store_opts sto = { .map_size = 64u << 20 };
		struct mesh_peer_opts po;
		uint8_t seed[32];
		struct io_addr a;
		char path[128];
		int efd;

		memset(seed, 0, sizeof(seed));
		memcpy(seed, &i, sizeof(i));
		memcpy(seed + 8, &o->seed, sizeof(o->seed));
		crypto_sign_seed_keypair(n->pk, n->sk, seed);
		snprintf(path, sizeof(path), "%s/n%u", w->dir, i);
		sto.dir = path;
		addr_of(i, &a);
		err = simnet_host_add(w->sn, &a, NULL, (struct simnet_host **)&n->host);
		if (!err) {
			simnet_host_set_link(n->host, &l);
			err = simnet_attach(n->host, 0, &efd);
		}
		if (!err)
			err = store_new(&n->st, &sto);
		if (!err)
			err = mesh_store_new(&n->store, n->st, &o->store, MESHSIM_EPOCH_MS);
		if (err)
			break;
		w->ctx[i] = (struct ctx){ w, i };
		memset(&po, 0, sizeof(po));
		po.relay = o->relay;
		po.store = n->store;
		po.sk = n->sk;
		po.fanout = o->fanout ? o->fanout : 64;
		po.io = (struct mesh_peer_io){ io_send, io_deliver, &w->ctx[i] };
		err = mesh_peer_new(&n->peer, &po);
	}
	for (unsigned int i = 0; !err && i < o->n; i++) {
		for (unsigned int d = 1; d <= o->ring; d++)
			link_add(w, i, (i + d) % o->n);
	}
	for (unsigned int i = 0; !err && i < o->n; i++)
		for (unsigned int c = 0, tries = 0; c < o->chords && tries < 64; tries++)
			c += (unsigned int)link_add(w, i, (unsigned int)(next_rnd(w) % o->n));
	if (err) {
		meshsim_free(w);
		return err;
	}
	*out = w;
	return 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
	(void)sb;
	(void)flag;
	(void)f;
	return remove(p);
}

void meshsim_free(struct meshsim *w)
{
	if (!w)
		return;
	for (unsigned int i = 0; i < w->o.n; i++) {
		mesh_peer_free(w->node[i].peer);
		mesh_store_free(w->node[i].store);
		store_free(w->node[i].st);
	}
	simnet_free(w->sn);
	if (w->dir[0])
		nftw(w->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(w);
}

struct meshsim_node *meshsim_node(struct meshsim *w, unsigned int i)
{
	return &w->node[i];
}

void meshsim_dist(struct meshsim *w, unsigned int a, int *dist)
{
	unsigned int q[MESHSIM_MAX], h = 0, t = 0;

	for (unsigned int i = 0; i < w->o.n; i++)
		dist[i] = -1;
	dist[a] = 0;
	q[t++] = a;
	while (h < t) {
		unsigned int x = q[h++];

		for (unsigned int k = 0; k < w->node[x].n_neigh; k++) {
			unsigned int y = w->node[x].neigh[k];

			if (dist[y] < 0 && !w->node[y].down) {
				dist[y] = dist[x] + 1;
				q[t++] = y;
			}
		}
	}
}

static int input(struct meshsim *w, unsigned int i, const uint8_t *buf, size_t len, uint64_t from)
{
	struct meshsim_node *n = &w->node[i];
	uint64_t neigh[MESHSIM_DEG_MAX];
	int err;

	for (unsigned int k = 0; k < n->n_neigh; k++)
		neigh[k] = n->neigh[k];
	if (len >= COMM_ENV_HDR_LEN)
		for (unsigned int j = 0; j < w->o.n; j++)
			if (!memcmp(buf + 19, w->node[j].pk, 32))
				n->got_origin_of[j]++;
	err = mesh_peer_input(n->peer, buf, len, from, neigh, n->n_neigh, next_rnd(w),
			      meshsim_now_ms(w));
	if (!err && !n->seen_at_ms && watched(w, buf, len))
		n->seen_at_ms = meshsim_now_ms(w);
	return err;
}

int meshsim_inject(struct meshsim *w, unsigned int i, const uint8_t *buf, size_t len)
{
	return input(w, i, buf, len, MESH_PATH_LOCAL);
}

void meshsim_direct(struct meshsim *w, unsigned int a, unsigned int b, const uint8_t *buf,
		    size_t len)
{
	io_send(&w->ctx[a], b, buf, len);
}

void meshsim_set_down(struct meshsim *w, unsigned int i, int down)
{
	w->node[i].down = down;
	simnet_host_set_down(w->node[i].host, down);
}

void meshsim_watch(struct meshsim *w, const uint8_t *buf, size_t len)
{
	memcpy(w->watch, buf, len);
	w->watch_len = len;
	for (unsigned int i = 0; i < w->o.n; i++) {
		w->node[i].seen_at_ms = 0;
		w->node[i].sent_watch = 0;
	}
}

void meshsim_run(struct meshsim *w, uint64_t for_ms)
{
	uint64_t end = simnet_now_ns(w->sn) + for_ms * 1000000u;
	struct simnet_pkt *pk[64];

	for (;;) {
		int64_t nx = simnet_next_ns(w->sn);
		uint64_t now = simnet_now_ns(w->sn);

		if (nx < 0 || now + (uint64_t)nx > end) {
			if (end > now)
				simnet_advance(w->sn, end - now);
			return;
		}
		if (nx > 0)
			simnet_advance(w->sn, (uint64_t)nx);
		for (unsigned int i = 0; i < w->o.n; i++) {
			int k;

			while ((k = simnet_recv(w->node[i].host, 0, pk, 64)) > 0)
				for (int j = 0; j < k; j++) {
					int from = index_of(w, &pk[j]->src);

					if (from >= 0)
						input(w, i, pk[j]->data, pk[j]->len, (uint64_t)from);
					simnet_pkt_free(pk[j]);
				}
		}
	}
}

size_t meshsim_build(struct meshsim *w, unsigned int i, const uint8_t *sk, const struct mesh_msg *m,
		     uint8_t *out)
{
	size_t n;

	if (mesh_env_build(sk ? sk : w->node[i].sk, m, out, MESH_ENV_MAX, &n) != 0)
		return 0;
	return n;
}
