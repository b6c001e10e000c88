// SPDX-License-Identifier: MIT
/*
 * Communities on the network (docs/COMMUNITY.md "Finding each other").
 *
 * Threads:
 *  - the QUIC workers only assemble the requests of stream types 0x60
 *    (pull a page) and 0x61 (gossip) in per-worker slots and queue them,
 *    bounded, for the serve thread (never a store write or the index lock
 *    on a worker);
 *  - the serve thread answers them: pages from the index, gossip taken
 *    in, persisted and forwarded;
 *  - the sync threads announce each community under its DHT key, look
 *    up the other holders there and pull their pages (on join, at start
 *    and every NET_SYNC_MS: a node that was offline catches up);
 *  - gossip leaves on short connections of its own, driven by callbacks
 *    (comm_dial.c); the dial thread resolves the holders reached by key
 *    (behind a NAT: through a relay their record lists).
 * DHT callbacks (worker 0) take only net->mu, never the index's lock.
 */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/comm.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#include "weft/comm_node.h"
#include "comm_net_int.h"

/* ------------------------------------------------- the stream handlers */

static struct slot *slot_of(struct srv *s, uint64_t conn, int64_t sid, uint64_t stype, int make)
{
	struct slot *w = s->slots + (size_t)quic_node_conn_worker(s->qn, conn) * NET_SLOTS, *f = NULL;

	for (unsigned int i = 0; i < NET_SLOTS; i++) {
		if (w[i].used && w[i].conn == conn && w[i].sid == sid)
			return &w[i];
		if (!w[i].used && !f)
			f = &w[i];
	}
	if (!make || !f)
		return NULL;
	f->used = 1;
	f->conn = conn;
	f->sid = sid;
	f->stype = stype;
	f->len = 0;
	return f;
}

/* On a QUIC worker: assemble, queue at FIN. */
static void srv_data(struct srv *s, uint64_t stype, uint64_t conn, int64_t sid, const uint8_t *data,
		     size_t len, int fin)
{
	struct slot *sl = slot_of(s, conn, sid, stype, 1);
	struct item *it;

	if (!sl || len > MSG_MAX - sl->len) {
		if (sl)
			sl->used = 0;
		quic_node_stream_reset(s->qn, conn, sid, NET_RESET_CODE);
		return;
	}
	memcpy(sl->data + sl->len, data, len);
	sl->len += len;
	if (!fin)
		return;
	sl->used = 0;
	it = malloc(sizeof(*it));
	if (it) {
		it->conn = conn;
		it->sid = sid;
		it->stype = stype;
		it->len = sl->len;
		memcpy(it->data, sl->data, sl->len);
		if (quic_node_conn_peer(s->qn, conn, it->key, &it->ss) != 0) {
			free(it);
			it = NULL;
		} else {
			it->sslen = comm_net_sslen(&it->ss);
		}
	}
	pthread_mutex_lock(&s->mu);
	if (it && !s->dead && s->qn_len < NET_INBOX) {
		s->q[(s->qh + s->qn_len++) % NET_INBOX] = it;
		it = NULL;
		pthread_cond_signal(&s->cv);
	} else {
		s->busy++;
		free(it);
		it = (void *)s; /* refused */
	}
	pthread_mutex_unlock(&s->mu);
	if (it) /* full, no memory or shutting down: the asker retries later */
		quic_node_stream_reset(s->qn, conn, sid, NET_RESET_CODE);
}

static void srv_sync_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len,
			  int fin)
{
	srv_data(arg, COMM_ST_SYNC, conn, sid, d, len, fin);
}

static void srv_gossip_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len,
			    int fin)
{
	srv_data(arg, COMM_ST_GOSSIP, conn, sid, d, len, fin);
}

static void srv_closed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct slot *sl = slot_of(arg, conn, sid, 0, 0);

	(void)err;
	if (sl)
		sl->used = 0;
}

static void srv_free(struct srv *s)
{
	while (s->qn_len) {
		free(s->q[s->qh]);
		s->qh = (s->qh + 1) % NET_INBOX;
		s->qn_len--;
	}
	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	free(s->slots);
	free(s);
}

static void srv_release(void *arg)
{
	srv_free(arg);
}

/* ------------------------------------------------------------- gossip out */

/* Send msg to up to NET_FANOUT holders known by key, never to skip1 or
 * skip2 (the sender, the origin). Under net->mu. When fewer holders are
 * known by key than the fan-out, members of the index (members, from the
 * caller: our own records only) that no holder entry names fill the rest,
 * by key: a member that never contacted us (behind a NAT, it reached
 * another holder only) is still reached through its node record. */
static void spread(struct comm_net *net, struct ncomm *c, const uint8_t *msg, size_t len,
		   const uint8_t *skip1, const uint8_t *skip2, const uint8_t (*members)[COMM_PK_LEN],
		   size_t nmembers)
{
	size_t cand[NET_PEERS], nc = 0, idx[NET_FANOUT], k;
	uint64_t rnd;

	for (size_t i = 0; i < c->np; i++) {
		const struct peer *p = &c->p[i];

		if (!p->have_key || p->self || (skip1 && !memcmp(p->key, skip1, COMM_PK_LEN)) ||
		    (skip2 && !memcmp(p->key, skip2, COMM_PK_LEN)))
			continue;
		cand[nc++] = i;
	}
	randombytes_buf(&rnd, sizeof(rnd));
	k = comm_gossip_pick(nc, nc, NET_FANOUT, rnd, idx);
	for (size_t i = 0; i < k; i++)
		comm_net_gossip_to(net, &c->p[cand[idx[i]]], msg, len);
	for (size_t m = 0; m < nmembers && k < NET_FANOUT; m++) {
		struct peer tmp = {.have_key = 1, .by_key = 1};
		int known = !memcmp(members[m], net->o.me->pk, COMM_PK_LEN);

		for (size_t i = 0; i < c->np && !known; i++)
			known = c->p[i].have_key && !memcmp(c->p[i].key, members[m], COMM_PK_LEN);
		if (known)
			continue;
		memcpy(tmp.key, members[m], COMM_PK_LEN);
		comm_net_gossip_to(net, &tmp, msg, len);
		net->st.gossip_members++;
		k++;
	}
}

void comm_net_publish(struct comm_net *net, const uint8_t id[COMM_ID_LEN], const uint8_t *rec,
		      size_t len, const uint8_t (*members)[COMM_PK_LEN], size_t nmembers)
{
	uint8_t box[COMM_REC_MAX_LEN + COMM_SEAL_OVERHEAD], msg[MSG_MAX];
	size_t bl, el;
	struct comm_env env;
	struct ncomm *c;

	if (!net)
		return;
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, id);
	if (!c || comm_seal(&c->k, c->id, rec, len, box, sizeof(box), &bl) != 0)
		goto out;
	msg[0] = 1;
	memcpy(msg + 1, c->k.dht_key, COMM_DHT_KEY_LEN);
	if (comm_env_build(net->o.me->sk, GOSSIP_KIND_RECORD, 6, comm_net_wall_ms(), NET_ENV_TTL_S, box, bl,
			   msg + 1 + COMM_DHT_KEY_LEN, sizeof(msg) - 1 - COMM_DHT_KEY_LEN,
			   &el) != 0 ||
	    comm_env_parse(msg + 1 + COMM_DHT_KEY_LEN, el, &env) != 0)
		goto out;
	comm_gossip_note(c->g, env.id, comm_net_wall_ms()); /* our own comes back as a duplicate */
	spread(net, c, msg, 1 + COMM_DHT_KEY_LEN + el, NULL, NULL, members, nmembers);
out:
	pthread_mutex_unlock(&net->mu);
}

/* ------------------------------------------------------ the serve thread */

static void answer(struct comm_net *net, const struct item *it, const uint8_t *buf, size_t len)
{
	quic_node_write(net->o.quic, it->conn, it->sid, buf, len, 1);
}

static void serve_sync(struct comm_net *net, const struct item *it, uint8_t *ans)
{
	const uint8_t *dk = it->data + 1;
	size_t len = 0;
	struct ncomm *c;
	int err;

	if (it->len != SYNC_REQ_LEN || it->data[0] != 1) {
		ans[0] = ST_BAD;
		answer(net, it, ans, 1);
		return;
	}
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_dht(net, dk);
	if (c)
		comm_net_note_peer(net, c, &it->ss, it->sslen, it->key);
	if (c)
		net->st.served++;
	else
		net->st.served_unknown++;
	pthread_mutex_unlock(&net->mu);
	if (!c) {
		ans[0] = ST_UNKNOWN;
		answer(net, it, ans, 1);
		return;
	}
	err = net->o.ops.page(net->o.ops.arg, dk, it->data[1 + COMM_DHT_KEY_LEN],
			      rd32(it->data + 2 + COMM_DHT_KEY_LEN), ans + 1, ANS_MAX - 1, &len);
	ans[0] = err == 0 ? ST_OK : err == -ENOENT ? ST_NOPAGE : ST_BAD;
	answer(net, it, ans, err == 0 ? 1 + len : 1);
}

/* A mesh envelope (kind 2): the mesh's own checks (docs/MESH.md), on a
 * member's connection only. No lock held. */
static int mesh_in(struct comm_net *net, const struct item *it, const uint8_t *id,
		   const uint8_t *eb, size_t el)
{
	comm_net_mesh_fn fn;
	void *arg;
	int err = -EPROTONOSUPPORT;

	pthread_mutex_lock(&net->mu);
	fn = net->mesh;
	arg = net->mesh_arg;
	pthread_mutex_unlock(&net->mu);
	if (fn && net->o.ops.member(net->o.ops.arg, id, it->key) == 1)
		err = fn(arg, id, it->key, eb, el);
	pthread_mutex_lock(&net->mu);
	if (err)
		net->st.mesh_refused++;
	else
		net->st.mesh_in++;
	pthread_mutex_unlock(&net->mu);
	return err ? ST_REFUSED : ST_OK;
}

/* An envelope: checked by the community's gossip state, its sealed record
 * opened and matched to the origin, taken, forwarded. */
static int gossip_in(struct comm_net *net, const struct item *it)
{
	uint8_t plain[COMM_REC_MAX_LEN], fwd[MSG_MAX];
	uint8_t id[COMM_ID_LEN];
	const uint8_t *eb = it->data + 1 + COMM_DHT_KEY_LEN;
	size_t el = it->len - 1 - COMM_DHT_KEY_LEN, pl;
	struct comm_env env;
	struct comm_rec r;
	struct ncomm *c;
	int err;

	pthread_mutex_lock(&net->mu);
	c = comm_net_by_dht(net, it->data + 1);
	if (!c) {
		pthread_mutex_unlock(&net->mu);
		return ST_UNKNOWN;
	}
	net->st.gossip_in++;
	net->st.gossip_bytes_in += it->len;
	comm_net_note_peer(net, c, &it->ss, it->sslen, it->key);
	if (comm_env_parse(eb, el, &env) == 0 && env.kind == GOSSIP_KIND_MESH) {
		memcpy(id, c->id, COMM_ID_LEN);
		pthread_mutex_unlock(&net->mu);
		return mesh_in(net, it, id, eb, el);
	}
	err = comm_gossip_input(c->g, eb, el, comm_net_wall_ms(), &env);
	if (!err && (env.kind != GOSSIP_KIND_RECORD ||
		     comm_open(&c->k, c->id, env.payload, env.payload_len, plain, sizeof(plain),
			       &pl) != 0 ||
		     comm_rec_parse(plain, pl, c->id, c->pk, &r) != 0 ||
		     memcmp(r.member, env.origin, COMM_PK_LEN) != 0))
		err = -EBADMSG; /* only a member's own records travel */
	memcpy(id, c->id, COMM_ID_LEN);
	if (err)
		net->st.gossip_refused++;
	pthread_mutex_unlock(&net->mu);
	if (err)
		return ST_REFUSED;
	err = net->o.ops.take(net->o.ops.arg, id, plain, pl);
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, id);
	if (err >= 0 && c) {
		net->st.gossip_taken++;
		fwd[0] = 1;
		memcpy(fwd + 1, c->k.dht_key, COMM_DHT_KEY_LEN);
		if (comm_gossip_forward(c->g, eb, el, fwd + 1 + COMM_DHT_KEY_LEN,
					sizeof(fwd) - 1 - COMM_DHT_KEY_LEN) == 0) {
			net->st.gossip_forwarded++;
			spread(net, c, fwd, it->len, it->key, env.origin, NULL, 0);
		}
	}
	pthread_mutex_unlock(&net->mu);
	return err >= 0 ? ST_OK : ST_REFUSED;
}

static void *serve_main(void *arg)
{
	struct comm_net *net = arg;
	struct srv *s = net->srv;
	uint8_t *ans = malloc(ANS_MAX);

	for (;;) {
		struct item *it;

		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&s->mu);
		while (!s->stop && !s->qn_len)
			pthread_cond_wait(&s->cv, &s->mu);
		if (s->stop) {
			pthread_mutex_unlock(&s->mu);
			break;
		}
		it = s->q[s->qh];
		s->qh = (s->qh + 1) % NET_INBOX;
		s->qn_len--;
		pthread_mutex_unlock(&s->mu);
		if (!ans) {
			quic_node_stream_reset(net->o.quic, it->conn, it->sid, NET_RESET_CODE);
		} else if (it->stype == COMM_ST_SYNC) {
			serve_sync(net, it, ans);
		} else {
			ans[0] = it->len > 1 + COMM_DHT_KEY_LEN && it->data[0] == 1
					 ? (uint8_t)gossip_in(net, it)
					 : ST_BAD;
			answer(net, it, ans, 1);
		}
		free(it);
	}
	free(ans);
	return NULL;
}

/* ------------------------------------------------------------ lifecycle */

int comm_net_add(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
		 const uint8_t pk[COMM_PK_LEN])
{
	struct ncomm *c;
	int err = 0;

	if (!net)
		return 0;
	pthread_mutex_lock(&net->mu);
	if (comm_net_by_id(net, id))
		goto out;
	err = -ENOSPC;
	if (net->n >= COMM_NODE_MAX)
		goto out;
	err = -ENOMEM;
	c = calloc(1, sizeof(*c));
	if (!c)
		goto out;
	memcpy(c->id, id, COMM_ID_LEN);
	memcpy(c->pk, pk, COMM_PK_LEN);
	comm_keys_derive(id, pk, &c->k);
	err = comm_gossip_new(&c->g, NULL);
	if (err) {
		free(c);
		goto out;
	}
	net->c[net->n++] = c; /* announce, find: due now */
	pthread_cond_broadcast(&net->cv);
out:
	pthread_mutex_unlock(&net->mu);
	return err;
}

static void nc_free(struct ncomm *c)
{
	comm_gossip_free(c->g);
	free(c);
}

void comm_net_remove(struct comm_net *net, const uint8_t id[COMM_ID_LEN])
{
	if (!net)
		return;
	pthread_mutex_lock(&net->mu);
	for (size_t i = 0; i < net->n; i++)
		if (!memcmp(net->c[i]->id, id, COMM_ID_LEN)) {
			nc_free(net->c[i]);
			net->c[i] = net->c[--net->n];
			break;
		}
	pthread_mutex_unlock(&net->mu);
}

size_t comm_net_peers(struct comm_net *net, const uint8_t id[COMM_ID_LEN])
{
	struct ncomm *c;
	size_t n = 0;

	if (!net)
		return 0;
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, id);
	for (size_t i = 0; c && i < c->np; i++)
		n += c->p[i].have_key && !c->p[i].self;
	pthread_mutex_unlock(&net->mu);
	return n;
}

void comm_net_stats(struct comm_net *net, struct comm_net_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!net)
		return;
	pthread_mutex_lock(&net->mu);
	*out = net->st;
	pthread_mutex_unlock(&net->mu);
	pthread_mutex_lock(&net->srv->mu);
	out->busy = net->srv->busy;
	pthread_mutex_unlock(&net->srv->mu);
	comm_net_dialq_stats(net, out);
}

void comm_net_set_mesh(struct comm_net *net, comm_net_mesh_fn fn, void *arg)
{
	if (!net)
		return;
	pthread_mutex_lock(&net->mu);
	net->mesh = fn;
	net->mesh_arg = arg;
	pthread_mutex_unlock(&net->mu);
}

int comm_net_mesh_send(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
		       const uint8_t key[COMM_PK_LEN], const uint8_t *env, size_t len)
{
	uint8_t msg[MSG_MAX];
	struct ncomm *c;
	int err = -ENOENT;

	if (!net || len > COMM_ENV_MAX_LEN)
		return net ? -E2BIG : -ENOENT;
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, id);
	for (size_t i = 0; c && i < c->np; i++) {
		const struct peer *p = &c->p[i];

		if (!p->have_key || p->self || memcmp(p->key, key, COMM_PK_LEN))
			continue;
		msg[0] = 1;
		memcpy(msg + 1, c->k.dht_key, COMM_DHT_KEY_LEN);
		memcpy(msg + 1 + COMM_DHT_KEY_LEN, env, len);
		comm_net_gossip_to(net, p, msg, 1 + COMM_DHT_KEY_LEN + len);
		err = 0;
		break;
	}
	pthread_mutex_unlock(&net->mu);
	return err;
}

int comm_net_mesh_peers(struct comm_net *net, const uint8_t id[COMM_ID_LEN],
			uint8_t (*keys)[COMM_PK_LEN], size_t max)
{
	struct ncomm *c;
	int n = 0;

	if (!net)
		return -ENOENT;
	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, id);
	for (size_t i = 0; c && i < c->np && (size_t)n < max; i++)
		if (c->p[i].have_key && !c->p[i].self)
			memcpy(keys[n++], c->p[i].key, COMM_PK_LEN);
	pthread_mutex_unlock(&net->mu);
	return c ? n : -ENOENT;
}

int comm_net_new(struct comm_net **out, const struct comm_net_opts *o)
{
	static const struct quic_node_handler hs = {
		.stream_data = srv_sync_data, .stream_closed = srv_closed, .release = srv_release};
	static const struct quic_node_handler hg = {
		.stream_data = srv_gossip_data, .stream_closed = srv_closed, .release = srv_release};
	struct comm_net *net;
	struct srv *s;
	int err;

	*out = NULL;
	if (!o || !o->quic || !o->me || !o->ops.page || !o->ops.take || !o->ops.ingest ||
	    !o->ops.member || !o->ops.introduce)
		return -EINVAL;
	net = calloc(1, sizeof(*net));
	s = calloc(1, sizeof(*s));
	if (s)
		s->slots = calloc((size_t)quic_node_workers(o->quic) * NET_SLOTS, sizeof(struct slot));
	if (!net || !s || !s->slots) {
		if (s)
			free(s->slots);
		free(s);
		free(net);
		return -ENOMEM;
	}
	net->o = *o;
	net->srv = s;
	s->qn = o->quic;
	s->nworkers = quic_node_workers(o->quic);
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL); /* waited on without a deadline */
	pthread_mutex_init(&net->mu, NULL);
	util_cond_init_mono(&net->cv); /* the sync threads' tick (monotonic) */
	err = comm_net_dialq_new(net);
	if (!err)
		err = quic_node_register(o->quic, COMM_ST_SYNC, &hs, s);
	if (err) {
		net->srv = NULL;
		srv_free(s);
		comm_net_free(net);
		return err;
	}
	err = quic_node_register(o->quic, COMM_ST_GOSSIP, &hg, s);
	if (err) { /* the QUIC node holds s for the first type: it releases it */
		comm_net_free(net);
		return err;
	}
	*out = net;
	return 0;
}

int comm_net_start(struct comm_net *net)
{
	if (!net || net->started)
		return 0;
	if (log_thread_create(&net->serve_th, NULL, serve_main, net, "weft-comm-srv") != 0)
		return -EAGAIN;
	for (net->nsync = 0; net->nsync < NET_SYNC_THREADS; net->nsync++)
		if (log_thread_create(&net->sync_th[net->nsync], NULL, comm_net_sync_main, net,
				      "weft-comm-sync") != 0)
			break;
	if (net->nsync < NET_SYNC_THREADS ||
	    log_thread_create(&net->dial_th, NULL, comm_net_dial_main, net, "weft-comm-dial") != 0) {
		pthread_mutex_lock(&net->mu);
		__atomic_store_n(&net->stop, 1, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&net->cv);
		pthread_mutex_unlock(&net->mu);
		while (net->nsync)
			pthread_join(net->sync_th[--net->nsync], NULL);
		goto stop_serve;
	}
	net->started = 1;
	return 0;
stop_serve:
	pthread_mutex_lock(&net->srv->mu);
	net->srv->stop = 1;
	pthread_cond_broadcast(&net->srv->cv);
	pthread_mutex_unlock(&net->srv->mu);
	pthread_join(net->serve_th, NULL);
	return -EAGAIN;
}

void comm_net_free(struct comm_net *net)
{
	if (!net)
		return;
	if (net->started) {
		pthread_mutex_lock(&net->mu);
		__atomic_store_n(&net->stop, 1, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&net->cv);
		pthread_mutex_unlock(&net->mu);
		comm_net_dialq_stop(net);
		pthread_mutex_lock(&net->srv->mu);
		net->srv->stop = 1;
		pthread_cond_broadcast(&net->srv->cv);
		pthread_mutex_unlock(&net->srv->mu);
		while (net->nsync)
			pthread_join(net->sync_th[--net->nsync], NULL);
		pthread_join(net->dial_th, NULL);
		pthread_join(net->serve_th, NULL);
	}
	if (net->srv) {
		/* Its handlers may still run until the QUIC node is freed,
		 * which then releases it: they queue nothing more. */
		pthread_mutex_lock(&net->srv->mu);
		net->srv->dead = 1;
		pthread_mutex_unlock(&net->srv->mu);
	}
	for (size_t i = 0; i < net->n; i++)
		nc_free(net->c[i]);
	comm_net_dialq_free(net);
	pthread_mutex_destroy(&net->mu);
	pthread_cond_destroy(&net->cv);
	free(net);
}
