// SPDX-License-Identifier: MIT
/*
 * Relay data plane: the circuit table, binds on the relay ports, and the
 * userspace forwarder (io_uring and mem modes). One slot per relay port;
 * the per-packet decision is include/weft/relay_policy.h, the same code
 * the XDP program runs. In xdp mode a circuit whose two ends are bound is
 * handed to the kernel (fwd_xdp.c) and its packets no longer come here.
 *
 * Locking: one mutex over the table, taken per relay packet and per API
 * call. The engine's own path stays lock-free; relay packets are the only
 * ones that take it, and in xdp mode only binds do.
 */
#include <errno.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "relay/relay_int.h"
#include "weft/conn.h"
#include "weft/log.h"
#include "weft/relay_policy.h"
#include "weft/util.h"

/* Expiry sweep period: lifetime and idle ends are detected per packet
 * exactly; the sweep reclaims circuits that see no packet at all, so its
 * period only bounds how late on_end reports them. */
#define RELAY_SWEEP_MS 250
#define NS_PER_MS 1000000ULL

/* A circuit that ended: reported to on_end after the lock is dropped. */
struct ended {
	uint64_t id;
	int reason;
};

void relay_fwd_opts_default(struct relay_fwd_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->port_min = RELAY_DEF_PORT_MIN;
	o->port_max = RELAY_DEF_PORT_MAX;
	o->max_circuits = RELAY_DEF_MAX_CIRCUITS;
}

static void limits_fill(struct relay_fwd_limits *l, const struct relay_fwd_limits *def)
{
	if (!l->max_bytes)
		l->max_bytes = def && def->max_bytes ? def->max_bytes : RELAY_DEF_CIRCUIT_BYTES;
	if (!l->pps)
		l->pps = def && def->pps ? def->pps : RELAY_DEF_CIRCUIT_PPS;
	if (!l->burst)
		l->burst = def && def->burst ? def->burst : RELAY_DEF_CIRCUIT_BURST;
	if (!l->lifetime_ms)
		l->lifetime_ms = def && def->lifetime_ms ? def->lifetime_ms
							 : RELAY_DEF_CIRCUIT_LIFETIME_MS;
	if (!l->idle_ms)
		l->idle_ms = def && def->idle_ms ? def->idle_ms : RELAY_DEF_CIRCUIT_IDLE_MS;
}

static uint64_t now_ns(struct relay_fwd *rf)
{
	return engine_now_ns(rf->o.eng);
}

/* End c (lock held): kernel entries out, slot freed, report queued. */
static void circ_end(struct relay_fwd *rf, struct relay_circ *c, int reason, struct ended *out)
{
	if (c->in_kernel)
		relay_kern_remove(rf, c);
	out->id = c->id;
	out->reason = reason;
	rf->live--;
	rf->tot.ended++;
	if (reason > 0 && reason < 5)
		rf->tot.ended_by[reason]++;
	memset(c, 0, sizeof(*c));
}

static void report(struct relay_fwd *rf, const struct ended *e, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		if (rf->o.on_end)
			rf->o.on_end(rf->o.arg, e[i].id, e[i].reason);
}

/* Which end a bind token names: 0, 1, or -1. Constant time per token. */
static int tok_end(const struct relay_circ *c, const uint8_t tok[RELAY_TOKEN_LEN])
{
	if (!sodium_memcmp(c->tok[0], tok, RELAY_TOKEN_LEN))
		return 0;
	if (!sodium_memcmp(c->tok[1], tok, RELAY_TOKEN_LEN))
		return 1;
	return -1;
}

static int addr_end(const struct relay_circ *c, const struct io_addr *a)
{
	if (c->end[0].bound && io_addr_equal(&c->end[0].addr, a))
		return 0;
	if (c->end[1].bound && io_addr_equal(&c->end[1].addr, a))
		return 1;
	return -1;
}

/* A valid bind for end e of c from pkt->src (lock held): latch, answer. */
static void do_bind(struct relay_fwd *rf, struct engine_worker *w, const struct engine_pkt *pkt,
		    struct relay_circ *c, int e)
{
	uint8_t out[CONN_STUN_MAX_REPLY];
	int n, moved;

	moved = !c->end[e].bound || !io_addr_equal(&c->end[e].addr, &pkt->src);
	c->end[e].bound = 1;
	c->end[e].addr = pkt->src;
	c->end[e].binds++;
	rf->tot.binds_ok++;
	log_debug("relay", "circuit %llu: end %d bound (other end %s)", (unsigned long long)c->id,
		  e, c->end[!e].bound ? "bound" : "not bound");
	if (moved && rf->o.xdp && c->end[0].bound && c->end[1].bound) {
		/* The kernel path takes over; a failure leaves it here. */
		int err = relay_kern_install(rf, c);

		if (err)
			log_warn("relay", "circuit %llu stays in userspace: %s",
				 (unsigned long long)c->id, strerror(-err));
	}
	if (c->lim.hold_binds && !c->end[!e].bound) {
		/* Answered when the other end binds (relay_fwd_limits). */
		memcpy(c->end[e].held_req, pkt->data, RELAY_BIND_LEN);
		c->end[e].held = 1;
		return;
	}
	n = conn_stun_answer(pkt->data, pkt->len, &pkt->src, out, sizeof(out));
	if (n > 0)
		(void)engine_send(w, &pkt->src, &pkt->dst, out, (size_t)n);
	if (c->end[!e].held) {
		c->end[!e].held = 0;
		n = conn_stun_answer(c->end[!e].held_req, RELAY_BIND_LEN, &c->end[!e].addr, out,
				     sizeof(out));
		if (n > 0)
			(void)engine_send(w, &c->end[!e].addr, &pkt->dst, out, (size_t)n);
	}
}

static void relay_rx(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct relay_fwd *rf = arg;
	struct relay_circ *c;
	uint8_t tok[RELAY_TOKEN_LEN];
	struct ended ended = { 0, 0 };
	uint64_t now = engine_worker_now_us(w) * 1000;
	int e, v, nend = 0;

	if (pkt->dst.port < rf->o.port_min || pkt->dst.port > rf->o.port_max)
		return;
	pthread_mutex_lock(&rf->mu);
	c = &rf->slots[pkt->dst.port - rf->o.port_min];
	if (relay_bind_parse(pkt->data, pkt->len, tok) == 0) {
		e = c->id ? tok_end(c, tok) : -1;
		if (e < 0)
			rf->tot.binds_bad++;
		else
			do_bind(rf, w, pkt, c, e);
		goto out;
	}
	e = c->id ? addr_end(c, &pkt->src) : -1;
	if (e < 0) {
		rf->tot.drop_unknown++;
		goto out;
	}
	if (!c->end[!e].bound) {
		c->end[e].drops_unbound++;
		rf->tot.drop_unknown++;
		goto out;
	}
	/* xdp mode: the program forwards this circuit; a datagram here
	 * slipped past it (hops being installed): decide on its state. */
	if (c->in_kernel) {
		relay_kern_sync(rf, c);
		if (!c->raced_logged) {
			c->raced_logged = 1;
			log_info("relay",
				 "circuit %llu: a datagram of end %d (%u bytes, first byte 0x%02x) "
				 "reached userspace %llu us after its kernel install",
				 (unsigned long long)c->id, e, pkt->len, pkt->data[0],
				 (unsigned long long)((util_now_ns() - c->installed_ns) / 1000));
		}
	}
	v = wrelay_decide(&c->st, (__u32)e, pkt->len, now);
	if (v == WRELAY_FORWARD) {
		wrelay_account(&c->st, (__u32)e, pkt->len, now);
		rf->tot.user_pkts++;
		rf->tot.user_bytes += pkt->len;
		(void)engine_send(w, &c->end[!e].addr, &pkt->dst, pkt->data, pkt->len);
		goto out;
	}
	c->st.dir[e].drops++;
	rf->tot.user_drops++;
	if (v == WRELAY_DROP_END) {
		circ_end(rf, c, (int)c->st.ended, &ended);
		nend = 1;
	}
out:
	pthread_mutex_unlock(&rf->mu);
	report(rf, &ended, (unsigned int)nend);
}

/* Worker 0, every RELAY_SWEEP_MS: end circuits past lifetime or idle
 * (in xdp mode after reading the kernel's state). */
static void sweep(struct engine_worker *w, void *arg)
{
	struct relay_fwd *rf = arg;
	struct ended batch[32];
	uint32_t i = 0;
	unsigned int n;

	do {
		uint64_t now = now_ns(rf);

		n = 0;
		pthread_mutex_lock(&rf->mu);
		for (; i < rf->nslots && n < 32; i++) {
			struct relay_circ *c = &rf->slots[i];
			__u32 r;

			if (!c->id)
				continue;
			if (c->in_kernel)
				relay_kern_sync(rf, c);
			r = wrelay_over(&c->st, now);
			if (r)
				circ_end(rf, c, (int)r, &batch[n++]);
		}
		pthread_mutex_unlock(&rf->mu);
		report(rf, batch, n);
	} while (i < rf->nslots);
	engine_timer_add(w, &rf->sweep, RELAY_SWEEP_MS);
}

static void sweep_start(struct engine_worker *w, void *arg)
{
	struct relay_fwd *rf = arg;

	rf->w0 = w;
	engine_timer_add(w, &rf->sweep, RELAY_SWEEP_MS);
}

int relay_fwd_new(struct relay_fwd **out, const struct relay_fwd_opts *o)
{
	struct relay_fwd *rf;
	uint32_t n;
	int err;

	*out = NULL;
	if (!o || !o->eng || !o->port_min || o->port_max < o->port_min ||
	    (uint32_t)(o->port_max - o->port_min) >= WXDP_RELAY_MAX_CIRC)
		return -EINVAL;
	n = (uint32_t)(o->port_max - o->port_min) + 1;
	rf = calloc(1, sizeof(*rf));
	if (!rf)
		return -ENOMEM;
	rf->o = *o;
	if (!rf->o.max_circuits)
		rf->o.max_circuits = RELAY_DEF_MAX_CIRCUITS;
	if (rf->o.max_circuits > n)
		rf->o.max_circuits = n;
	limits_fill(&rf->o.defaults, NULL);
	rf->nslots = n;
	rf->next_id = 1;
	rf->circ_fd = rf->hop_fd = rf->rl2_fd = -1;
	rf->slots = calloc(n, sizeof(*rf->slots));
	if (!rf->slots) {
		free(rf);
		return -ENOMEM;
	}
	pthread_mutex_init(&rf->mu, NULL);
	engine_timer_init(&rf->sweep, sweep, rf);
	if (rf->o.xdp) {
		err = relay_kern_init(rf);
		if (err)
			goto fail;
	}
	err = engine_register_range(o->eng, o->port_min, o->port_max, relay_rx, rf);
	if (err)
		goto fail;
	err = engine_call(o->eng, 0, sweep_start, rf);
	if (err)
		goto fail;
	*out = rf;
	return 0;
fail:
	if (rf->o.xdp)
		relay_kern_fini(rf);
	pthread_mutex_destroy(&rf->mu);
	free(rf->slots);
	free(rf);
	return err;
}

void relay_fwd_free(struct relay_fwd *rf)
{
	struct ended e;

	if (!rf)
		return;
	if (rf->w0)
		engine_timer_cancel(rf->w0, &rf->sweep);
	for (uint32_t i = 0; i < rf->nslots; i++) {
		if (!rf->slots[i].id)
			continue;
		pthread_mutex_lock(&rf->mu);
		circ_end(rf, &rf->slots[i], RELAY_END_DELETED, &e);
		pthread_mutex_unlock(&rf->mu);
		report(rf, &e, 1);
	}
	if (rf->o.xdp)
		relay_kern_fini(rf);
	pthread_mutex_destroy(&rf->mu);
	free(rf->slots);
	free(rf);
}

int relay_fwd_add(struct relay_fwd *rf, const uint8_t tok_a[RELAY_TOKEN_LEN],
		  const uint8_t tok_b[RELAY_TOKEN_LEN], const struct relay_fwd_limits *lim,
		  uint64_t *id, uint16_t *port)
{
	struct relay_circ *c = NULL;
	uint64_t now;
	uint32_t i;

	if (!rf || !tok_a || !tok_b || !id || !port ||
	    !sodium_memcmp(tok_a, tok_b, RELAY_TOKEN_LEN))
		return -EINVAL;
	now = now_ns(rf);
	pthread_mutex_lock(&rf->mu);
	if (rf->live >= rf->o.max_circuits) {
		pthread_mutex_unlock(&rf->mu);
		return -ENOSPC;
	}
	/* Round robin from the last allocation: a freed port is reused as
	 * late as possible, so stray packets of an old circuit (and an end
	 * still binding to it) rarely meet a new one. */
	for (i = 0; i < rf->nslots; i++) {
		uint32_t s = (rf->next_slot + i) % rf->nslots;

		if (!rf->slots[s].id) {
			c = &rf->slots[s];
			rf->next_slot = (s + 1) % rf->nslots;
			break;
		}
	}
	if (!c) {
		pthread_mutex_unlock(&rf->mu);
		return -ENOSPC;
	}
	memset(c, 0, sizeof(*c));
	c->id = rf->next_id++;
	c->port = (uint16_t)(rf->o.port_min + (c - rf->slots));
	memcpy(c->tok[0], tok_a, RELAY_TOKEN_LEN);
	memcpy(c->tok[1], tok_b, RELAY_TOKEN_LEN);
	if (lim)
		c->lim = *lim;
	limits_fill(&c->lim, &rf->o.defaults);
	c->created_ns = now;
	c->st.id = c->id;
	c->st.max_bytes = c->lim.max_bytes;
	c->st.expires_ns = now + (uint64_t)c->lim.lifetime_ms * NS_PER_MS;
	c->st.idle_ns = (uint64_t)c->lim.idle_ms * NS_PER_MS;
	c->st.last_ns = now;
	c->st.rate.pps = c->lim.pps;
	c->st.rate.burst = c->lim.burst;
	rf->live++;
	rf->tot.added++;
	*id = c->id;
	*port = c->port;
	pthread_mutex_unlock(&rf->mu);
	return 0;
}

/* The slot of a live circuit id (lock held), or NULL. */
static struct relay_circ *find(struct relay_fwd *rf, uint64_t id)
{
	for (uint32_t i = 0; id && i < rf->nslots; i++)
		if (rf->slots[i].id == id)
			return &rf->slots[i];
	return NULL;
}

int relay_fwd_del(struct relay_fwd *rf, uint64_t id)
{
	struct relay_circ *c;
	struct ended e;

	if (!rf)
		return -ENOENT;
	pthread_mutex_lock(&rf->mu);
	c = find(rf, id);
	if (!c) {
		pthread_mutex_unlock(&rf->mu);
		return -ENOENT;
	}
	circ_end(rf, c, RELAY_END_DELETED, &e);
	pthread_mutex_unlock(&rf->mu);
	report(rf, &e, 1);
	return 0;
}

static void fill_stats(struct relay_fwd *rf, struct relay_circ *c, struct relay_fwd_stats *st)
{
	if (c->in_kernel)
		relay_kern_sync(rf, c);
	memset(st, 0, sizeof(*st));
	st->id = c->id;
	st->port = c->port;
	st->in_kernel = c->in_kernel;
	st->ended = (int)c->st.ended;
	st->limits = c->lim;
	st->created_ns = c->created_ns;
	st->expires_ns = c->st.expires_ns;
	st->last_ns = c->st.last_ns;
	for (int e = 0; e < 2; e++) {
		st->end[e].bound = c->end[e].bound;
		st->end[e].addr = c->end[e].addr;
		st->end[e].binds = c->end[e].binds;
		st->end[e].pkts = c->st.dir[e].pkts;
		st->end[e].bytes = c->st.dir[e].bytes;
		st->end[e].drops = c->st.dir[e].drops + c->end[e].drops_unbound;
	}
}

int relay_fwd_stats(struct relay_fwd *rf, uint64_t id, struct relay_fwd_stats *st)
{
	struct relay_circ *c;

	if (!rf || !st)
		return -ENOENT;
	pthread_mutex_lock(&rf->mu);
	c = find(rf, id);
	if (c)
		fill_stats(rf, c, st);
	pthread_mutex_unlock(&rf->mu);
	return c ? 0 : -ENOENT;
}

void relay_fwd_totals(struct relay_fwd *rf, struct relay_fwd_totals *t)
{
	memset(t, 0, sizeof(*t));
	if (!rf)
		return;
	pthread_mutex_lock(&rf->mu);
	*t = rf->tot;
	t->circuits = rf->live;
	pthread_mutex_unlock(&rf->mu);
}

static json_t *circ_json(const struct relay_fwd_stats *st, uint64_t now)
{
	json_t *o = json_object(), *ends = json_array();
	char buf[64];

	if (!o || !ends) {
		json_decref(o);
		json_decref(ends);
		return NULL;
	}
	for (int e = 0; e < 2; e++) {
		const struct relay_fwd_end *x = &st->end[e];

		json_array_append_new(
			ends, json_pack("{s:b,s:s,s:I,s:I,s:I,s:I}", "bound", x->bound, "addr",
					x->bound ? io_addr_fmt(&x->addr, buf, sizeof(buf)) : "",
					"binds", (json_int_t)x->binds, "pkts", (json_int_t)x->pkts,
					"bytes", (json_int_t)x->bytes, "drops", (json_int_t)x->drops));
	}
	json_object_set_new(o, "id", json_integer((json_int_t)st->id));
	json_object_set_new(o, "port", json_integer(st->port));
	json_object_set_new(o, "in_kernel", json_boolean(st->in_kernel));
	json_object_set_new(o, "ends", ends);
	json_object_set_new(o, "max_bytes", json_integer((json_int_t)st->limits.max_bytes));
	json_object_set_new(o, "pps", json_integer(st->limits.pps));
	json_object_set_new(o, "burst", json_integer(st->limits.burst));
	json_object_set_new(o, "lifetime_ms", json_integer(st->limits.lifetime_ms));
	json_object_set_new(o, "idle_ms", json_integer(st->limits.idle_ms));
	json_object_set_new(o, "age_ms",
			    json_integer((json_int_t)((now - st->created_ns) / NS_PER_MS)));
	json_object_set_new(o, "expires_in_ms",
			    json_integer(st->expires_ns > now
						 ? (json_int_t)((st->expires_ns - now) / NS_PER_MS)
						 : 0));
	return o;
}

json_t *relay_fwd_json(struct relay_fwd *rf)
{
	json_t *root = json_object(), *arr = json_array(), *t;
	struct relay_fwd_totals tot;
	struct relay_fwd_stats st;
	uint64_t now;

	if (!rf || !root || !arr)
		goto fail;
	now = now_ns(rf);
	pthread_mutex_lock(&rf->mu);
	for (uint32_t i = 0; i < rf->nslots; i++) {
		if (!rf->slots[i].id)
			continue;
		fill_stats(rf, &rf->slots[i], &st);
		json_array_append_new(arr, circ_json(&st, now));
	}
	pthread_mutex_unlock(&rf->mu);
	relay_fwd_totals(rf, &tot);
	t = json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "circuits",
		      (json_int_t)tot.circuits, "added", (json_int_t)tot.added, "ended",
		      (json_int_t)tot.ended, "ended_lifetime", (json_int_t)tot.ended_by[2],
		      "ended_idle", (json_int_t)tot.ended_by[3], "ended_bytes",
		      (json_int_t)tot.ended_by[4], "binds_ok", (json_int_t)tot.binds_ok,
		      "binds_bad", (json_int_t)tot.binds_bad, "drop_unknown",
		      (json_int_t)tot.drop_unknown, "user_pkts", (json_int_t)tot.user_pkts,
		      "user_bytes", (json_int_t)tot.user_bytes, "user_drops",
		      (json_int_t)tot.user_drops);
	json_object_set_new(root, "circuits", arr);
	json_object_set_new(root, "totals", t);
	return root;
fail:
	json_decref(root);
	json_decref(arr);
	return NULL;
}
