// SPDX-License-Identifier: MIT
/*
 * Hole punching for relayed connections: message and probe codecs, and the
 * per-connection state machine (include/weft/path.h). No I/O, no clock:
 * every call takes now_ns and answers through struct path_io.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "weft/conn.h"
#include "weft/path.h"

#define PATH_HDR 2 /* type, body length */

const char *path_state_name(enum path_state s)
{
	switch (s) {
	case PATH_IDLE:
		return "relayed";
	case PATH_CONNECTING:
	case PATH_WAIT_SYNC:
	case PATH_PUNCHING:
	case PATH_WAIT_RETRY:
		return "punching";
	case PATH_DIRECT:
		return "direct";
	case PATH_FAILED:
		return "failed";
	}
	return "?";
}

/* ------------------------------------------------------------- codecs */

static int put_cand(uint8_t *b, size_t cap, size_t *off, const struct io_addr *a)
{
	size_t al = a->family == AF_INET ? 4 : 16;

	if (a->family != AF_INET && a->family != AF_INET6)
		return -EINVAL;
	if (*off + 1 + al + 2 > cap)
		return -ENOSPC;
	b[(*off)++] = a->family == AF_INET ? 4 : 6;
	memcpy(b + *off, a->addr, al);
	*off += al;
	b[(*off)++] = (uint8_t)(a->port >> 8);
	b[(*off)++] = (uint8_t)a->port;
	return 0;
}

int path_msg_encode(uint8_t *buf, size_t cap, enum path_msg_type type, const struct path_offer *o,
		    uint8_t idx)
{
	size_t off = PATH_HDR;
	unsigned int i;

	if (!buf || !o || cap < PATH_HDR + 2)
		return -EINVAL;
	buf[off++] = o->attempt;
	switch (type) {
	case PATH_MSG_CONNECT:
	case PATH_MSG_REPLY:
		if (o->ncand > PATH_MAX_CANDS || o->nat > PATH_NAT_MAX)
			return -EINVAL;
		if (off + 2 + PATH_TOKEN_LEN + 1 > cap)
			return -ENOSPC;
		buf[off++] = o->nat;
		buf[off++] = o->route;
		memcpy(buf + off, o->token, PATH_TOKEN_LEN);
		off += PATH_TOKEN_LEN;
		buf[off++] = (uint8_t)o->ncand;
		for (i = 0; i < o->ncand; i++) {
			int rc = put_cand(buf, cap, &off, &o->cand[i]);

			if (rc)
				return rc;
		}
		break;
	case PATH_MSG_VALIDATED:
		buf[off++] = idx;
		break;
	case PATH_MSG_SYNC:
	case PATH_MSG_FAILED:
		break;
	default:
		return -EINVAL;
	}
	if (off - PATH_HDR > 255)
		return -ENOSPC;
	buf[0] = (uint8_t)type;
	buf[1] = (uint8_t)(off - PATH_HDR);
	return (int)off;
}

static int get_offer(const uint8_t *b, size_t len, struct path_offer *o)
{
	size_t off = 1;
	unsigned int i;

	if (len < 1 + 2 + PATH_TOKEN_LEN + 1)
		return -EBADMSG;
	o->nat = b[off++];
	o->route = b[off++];
	if (o->nat > PATH_NAT_MAX)
		return -EBADMSG;
	memcpy(o->token, b + off, PATH_TOKEN_LEN);
	off += PATH_TOKEN_LEN;
	o->ncand = b[off++];
	if (o->ncand > PATH_MAX_CANDS)
		return -EBADMSG;
	for (i = 0; i < o->ncand; i++) {
		struct io_addr *a = &o->cand[i];
		size_t al;

		if (off >= len)
			return -EBADMSG;
		if (b[off] != 4 && b[off] != 6)
			return -EBADMSG;
		al = b[off] == 4 ? 4 : 16;
		memset(a, 0, sizeof(*a));
		a->family = b[off] == 4 ? AF_INET : AF_INET6;
		off++;
		if (len - off < al + 2)
			return -EBADMSG;
		memcpy(a->addr, b + off, al);
		off += al;
		a->port = (uint16_t)(b[off] << 8 | b[off + 1]);
		off += 2;
		if (!a->port)
			return -EBADMSG;
	}
	return off == len ? 0 : -EBADMSG;
}

int path_msg_parse(const uint8_t *buf, size_t len, size_t *used, enum path_msg_type *type,
		   struct path_offer *o, uint8_t *idx)
{
	size_t bl;
	const uint8_t *b;

	if (!buf || !used || !type || !o || !idx)
		return -EINVAL;
	if (len < PATH_HDR)
		return -EAGAIN;
	if (buf[0] < PATH_MSG_CONNECT || buf[0] > PATH_MSG_FAILED)
		return -EBADMSG;
	bl = buf[1];
	/* Every type has a bounded body: refuse at the header, before
	 * waiting for bytes that a well-formed message never has. */
	if (bl < 1 || (buf[0] == PATH_MSG_VALIDATED && bl != 2) ||
	    ((buf[0] == PATH_MSG_SYNC || buf[0] == PATH_MSG_FAILED) && bl != 1) ||
	    ((buf[0] == PATH_MSG_CONNECT || buf[0] == PATH_MSG_REPLY) &&
	     (bl < 1 + 2 + PATH_TOKEN_LEN + 1 || bl > PATH_MSG_MAX - PATH_HDR)))
		return -EBADMSG;
	if (len - PATH_HDR < bl)
		return -EAGAIN;
	b = buf + PATH_HDR;
	memset(o, 0, sizeof(*o));
	*idx = 0;
	o->attempt = b[0];
	if (!o->attempt)
		return -EBADMSG;
	*type = (enum path_msg_type)buf[0];
	if (*type == PATH_MSG_CONNECT || *type == PATH_MSG_REPLY) {
		if (get_offer(b, bl, o))
			return -EBADMSG;
	} else if (*type == PATH_MSG_VALIDATED) {
		*idx = b[1];
		if (*idx >= PATH_MAX_CANDS)
			return -EBADMSG;
	}
	*used = PATH_HDR + bl;
	return 0;
}

static uint32_t rd32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

int path_probe_is(const uint8_t *buf, size_t len)
{
	unsigned int t;

	if (!buf || len != PATH_PROBE_LEN)
		return 0;
	t = (unsigned int)buf[0] << 8 | buf[1];
	return (t == PATH_PROBE_TYPE || t == PATH_ACK_TYPE) && rd32(buf + 4) == PATH_PROBE_COOKIE;
}

int path_probe_encode(uint8_t buf[PATH_PROBE_LEN], const struct path_probe *p)
{
	unsigned int t = p->ack ? PATH_ACK_TYPE : PATH_PROBE_TYPE;

	if (!buf || !p)
		return -EINVAL;
	memset(buf, 0, PATH_PROBE_LEN);
	buf[0] = (uint8_t)(t >> 8);
	buf[1] = (uint8_t)t;
	buf[3] = PATH_PROBE_LEN - 20;
	buf[4] = 0x21;
	buf[5] = 0x12;
	buf[6] = 0xA4;
	buf[7] = 0x42;
	memcpy(buf + 8, p->nonce, sizeof(p->nonce));
	buf[20] = p->route;
	buf[21] = p->attempt;
	memcpy(buf + 24, p->token, PATH_TOKEN_LEN);
	return PATH_PROBE_LEN;
}

int path_probe_parse(const uint8_t *buf, size_t len, struct path_probe *p)
{
	if (!p || !path_probe_is(buf, len))
		return -EBADMSG;
	if (buf[2] != 0 || buf[3] != PATH_PROBE_LEN - 20 || buf[22] || buf[23] || !buf[21])
		return -EBADMSG;
	p->ack = buf[1] == (PATH_ACK_TYPE & 0xff);
	memcpy(p->nonce, buf + 8, sizeof(p->nonce));
	p->route = buf[20];
	p->attempt = buf[21];
	memcpy(p->token, buf + 24, PATH_TOKEN_LEN);
	return 0;
}

/* ------------------------------------------------------- state machine */

#define MS 1000000ULL

void path_init(struct path_conn *p, int initiator, uint8_t route, const struct path_limits *lim)
{
	memset(p, 0, sizeof(*p));
	p->initiator = initiator;
	p->route = route;
	if (lim)
		p->lim = *lim;
	if (!p->lim.attempts || p->lim.attempts > 3)
		p->lim.attempts = p->lim.attempts > 3 ? 3 : PATH_DEF_ATTEMPTS;
	if (!p->lim.probe_ms)
		p->lim.probe_ms = PATH_DEF_PROBE_MS;
	if (!p->lim.punch_ms)
		p->lim.punch_ms = PATH_DEF_PUNCH_MS;
	if (!p->lim.fallback_ms)
		p->lim.fallback_ms = PATH_DEF_FALLBACK_MS;
	if (!p->lim.max_cands || p->lim.max_cands > PATH_MAX_CANDS)
		p->lim.max_cands = PATH_MAX_CANDS;
	if (!p->lim.probe_ttl)
		p->lim.probe_ttl = PATH_DEF_PROBE_TTL;
}

/* Fill our half of an attempt: fresh token, candidates, class. */
static void offer_fill(struct path_conn *p, uint8_t attempt, const struct path_io *io)
{
	struct path_offer *m = &p->mine;

	memset(m, 0, sizeof(*m));
	m->attempt = attempt;
	m->route = p->route;
	randombytes_buf(m->token, sizeof(m->token));
	m->ncand = io->cands ? io->cands(io->arg, m->cand, p->lim.max_cands, &m->nat) : 0;
	if (m->ncand > p->lim.max_cands)
		m->ncand = p->lim.max_cands;
	if (m->nat > PATH_NAT_MAX)
		m->nat = 0;
	p->have_src = 0;
	p->seq = 0;
	randombytes_buf(p->salt, sizeof(p->salt));
}

static void send_msg(struct path_conn *p, enum path_msg_type t, uint8_t idx,
		     const struct path_io *io)
{
	uint8_t buf[PATH_MSG_MAX];
	int n = path_msg_encode(buf, sizeof(buf), t, &p->mine, idx);

	if (n > 0 && io->send_msg)
		io->send_msg(io->arg, buf, (size_t)n);
}

static void attempt_over(struct path_conn *p, uint64_t now, const struct path_io *io);

static void begin_attempt(struct path_conn *p, uint64_t now, const struct path_io *io)
{
	if (io->allow && io->allow(io->arg) < 0) {
		/* The peer's budget is spent: this attempt does not happen
		 * (it counts against the connection's schedule). */
		p->limited++;
		p->attempt++;
		attempt_over(p, now, io);
		return;
	}
	offer_fill(p, (uint8_t)(p->attempt + 1), io);
	p->attempt++;
	p->attempts_started++;
	p->t_connect_ns = now;
	p->t_deadline_ns = now + PATH_DEF_REPLY_MS * MS;
	p->state = PATH_CONNECTING;
	send_msg(p, PATH_MSG_CONNECT, 0, io);
}

int path_start(struct path_conn *p, uint64_t now_ns, const struct path_io *io)
{
	if (!p->initiator || p->state != PATH_IDLE || p->attempt)
		return -EALREADY;
	p->t_first_ns = now_ns;
	begin_attempt(p, now_ns, io);
	return 0;
}

static void go_direct(struct path_conn *p, const struct io_addr *d, uint64_t now,
		      const struct path_io *io)
{
	p->direct = *d;
	p->state = PATH_DIRECT;
	p->to_direct_ms = (now - p->t_first_ns) / MS;
	p->t_direct_ns = now;
	p->direct_attempt = p->attempt;
	p->switches++;
	if (io->alias)
		io->alias(io->arg, d);
	if (io->use)
		io->use(io->arg, d);
}

/* Direct on IPv4 while an IPv6 candidate of the same attempt validated
 * (its ack, or the peer's VALIDATED, came second): move to IPv6, the
 * family tried first (no NAT mapping to keep alive). The first switch's
 * time and attempt stay as they were. */
static int upgrade_v6(struct path_conn *p, const struct io_addr *d, const struct path_io *io)
{
	if (p->state != PATH_DIRECT || d->family != AF_INET6 || p->direct.family != AF_INET)
		return 0;
	p->direct = *d;
	p->switches++;
	p->upgrades++;
	if (io->alias)
		io->alias(io->arg, d);
	if (io->use)
		io->use(io->arg, d);
	return 1;
}

/* The current attempt ended without a direct path. */
static void attempt_over(struct path_conn *p, uint64_t now, const struct path_io *io)
{
	uint64_t at;

	if (!p->initiator) {
		p->state = PATH_IDLE;
		return;
	}
	if (p->attempt >= p->lim.attempts) {
		p->state = PATH_FAILED;
		send_msg(p, PATH_MSG_FAILED, 0, io);
		return;
	}
	at = p->t_first_ns + (p->attempt == 1 ? PATH_RETRY1_MS : PATH_RETRY2_MS) * MS;
	p->t_next_attempt_ns = at > now ? at : now;
	p->state = PATH_WAIT_RETRY;
}

int path_on_msg(struct path_conn *p, enum path_msg_type type, const struct path_offer *o,
		uint8_t idx, uint64_t now_ns, const struct path_io *io)
{
	switch (type) {
	case PATH_MSG_CONNECT:
		if (p->initiator || o->attempt > p->lim.attempts || o->attempt <= p->attempt)
			return -EPROTO;
		if (p->state == PATH_DIRECT) {
			/* A newer attempt: the dialler lost the direct path
			 * (it fell back); back on the relay here too. */
			p->fallbacks++;
			p->switches++;
			p->state = PATH_IDLE;
			if (io->use)
				io->use(io->arg, NULL);
		}
		if (io->allow && io->allow(io->arg) < 0) {
			/* Unanswered: the dialler's attempt times out. */
			p->limited++;
			return 0;
		}
		if (!p->t_first_ns)
			p->t_first_ns = now_ns;
		p->peer = *o;
		p->attempt = o->attempt;
		p->attempts_started++;
		offer_fill(p, o->attempt, io);
		send_msg(p, PATH_MSG_REPLY, 0, io);
		p->state = PATH_WAIT_SYNC;
		p->t_connect_ns = now_ns;
		p->t_deadline_ns = now_ns + PATH_DEF_REPLY_MS * MS;
		return 0;
	case PATH_MSG_REPLY:
		if (!p->initiator || p->state != PATH_CONNECTING || o->attempt != p->attempt)
			return -EPROTO;
		p->peer = *o;
		p->rtt_ns = now_ns - p->t_connect_ns;
		send_msg(p, PATH_MSG_SYNC, 0, io);
		p->state = PATH_PUNCHING;
		p->t_next_probe_ns = now_ns + p->rtt_ns / 2;
		p->t_deadline_ns = p->t_next_probe_ns + p->lim.punch_ms * MS;
		p->round = 0;
		return 0;
	case PATH_MSG_SYNC:
		if (p->initiator || o->attempt != p->attempt)
			return -EPROTO;
		if (p->state != PATH_WAIT_SYNC)
			return 0;
		p->rtt_ns = now_ns - p->t_connect_ns;
		p->state = PATH_PUNCHING;
		p->t_next_probe_ns = now_ns;
		p->t_deadline_ns = now_ns + p->lim.punch_ms * MS;
		p->round = 0;
		return 0;
	case PATH_MSG_VALIDATED:
		if (o->attempt != p->attempt)
			return 0; /* a late word about an older attempt */
		if (idx >= p->mine.ncand || !(p->have_src & (1U << idx)))
			return 0;
		if (p->state == PATH_DIRECT) {
			upgrade_v6(p, &p->probe_src[idx], io);
			return 0;
		}
		p->validated_here = 0;
		go_direct(p, &p->probe_src[idx], now_ns, io);
		return 0;
	case PATH_MSG_FAILED:
		if (p->initiator)
			return -EPROTO;
		if (p->state != PATH_DIRECT)
			p->state = PATH_FAILED;
		return 0;
	}
	return -EPROTO;
}

int path_probe_mine(const struct path_conn *p, const struct path_probe *pr)
{
	if (!p->attempt || pr->attempt != p->mine.attempt || pr->route != p->route)
		return 0;
	if (p->state == PATH_IDLE || p->state == PATH_CONNECTING || p->state == PATH_FAILED)
		return 0;
	return sodium_memcmp(pr->token, p->mine.token, PATH_TOKEN_LEN) == 0;
}

void path_on_probe(struct path_conn *p, const struct path_probe *pr, const struct io_addr *from,
		   uint64_t now_ns, const struct path_io *io)
{
	uint8_t i = pr->nonce[8];

	if (!pr->ack) {
		/* The peer (it knows our token) reached us at our cand[i]
		 * from `from`: answer once, remember where it came from. */
		struct path_probe ack = *pr;
		uint8_t buf[PATH_PROBE_LEN];

		p->probes_rx++;
		if (i >= p->mine.ncand) {
			p->bad_rx++;
			return;
		}
		if (!(p->have_src & (1U << i)) || !io_addr_equal(&p->probe_src[i], from)) {
			p->probe_src[i] = *from;
			p->have_src |= 1U << i;
			if (io->alias)
				io->alias(io->arg, from);
		}
		ack.ack = 1;
		ack.route = p->peer.route;
		memcpy(ack.token, p->peer.token, PATH_TOKEN_LEN);
		path_probe_encode(buf, &ack);
		if (io->send_udp && !io->send_udp(io->arg, from, buf, sizeof(buf), 0))
			p->acks_tx++;
		return;
	}
	/* An ack: ours (salt), of a probe to the peer's cand[i], from there. */
	if (memcmp(pr->nonce, p->salt, sizeof(p->salt)) || i >= p->peer.ncand ||
	    !io_addr_equal(&p->peer.cand[i], from)) {
		p->bad_rx++;
		return;
	}
	p->acks_rx++;
	if (p->state == PATH_DIRECT) {
		if (upgrade_v6(p, from, io))
			send_msg(p, PATH_MSG_VALIDATED, i, io);
		return;
	}
	p->validated_here = 1;
	go_direct(p, from, now_ns, io);
	send_msg(p, PATH_MSG_VALIDATED, i, io);
}

static void probe_round(struct path_conn *p, const struct path_io *io)
{
	struct path_probe pr = { .ack = 0 };
	uint8_t buf[PATH_PROBE_LEN];
	unsigned int i;
	/* The first round opens our NAT without reaching the peer's
	 * (PATH_DEF_PROBE_TTL); the next, probe_ms later, goes all the way:
	 * by then the peer's first round has opened its side, unless it
	 * started more than probe_ms + the one-way delay after ours. */
	uint8_t ttl = p->round++ == 0 && p->lim.probe_ttl < PATH_PROBE_TTL_OFF
			  ? (uint8_t)p->lim.probe_ttl
			  : 0;

	pr.route = p->peer.route;
	pr.attempt = p->mine.attempt;
	memcpy(pr.token, p->peer.token, PATH_TOKEN_LEN);
	memcpy(pr.nonce, p->salt, sizeof(p->salt));
	for (i = 0; i < p->peer.ncand && i < p->lim.max_cands; i++) {
		uint32_t s = p->seq++;

		pr.nonce[8] = (uint8_t)i;
		pr.nonce[9] = (uint8_t)(s >> 16);
		pr.nonce[10] = (uint8_t)(s >> 8);
		pr.nonce[11] = (uint8_t)s;
		path_probe_encode(buf, &pr);
		if (io->send_udp &&
		    !io->send_udp(io->arg, &p->peer.cand[i], buf, sizeof(buf), ttl)) {
			p->probes_tx++;
			p->probes_low_ttl += ttl != 0;
		}
	}
}

uint64_t path_tick(struct path_conn *p, uint64_t now_ns, const struct path_io *io)
{
	switch (p->state) {
	case PATH_CONNECTING:
	case PATH_WAIT_SYNC:
		if (now_ns >= p->t_deadline_ns)
			attempt_over(p, now_ns, io);
		break;
	case PATH_PUNCHING:
		while (p->t_next_probe_ns <= now_ns && p->t_next_probe_ns < p->t_deadline_ns) {
			probe_round(p, io);
			p->t_next_probe_ns += p->lim.probe_ms * MS;
		}
		if (now_ns >= p->t_deadline_ns)
			attempt_over(p, now_ns, io);
		break;
	case PATH_WAIT_RETRY:
		if (now_ns >= p->t_next_attempt_ns)
			begin_attempt(p, now_ns, io);
		break;
	default:
		break;
	}
	switch (p->state) {
	case PATH_CONNECTING:
	case PATH_WAIT_SYNC:
		return p->t_deadline_ns;
	case PATH_PUNCHING:
		return p->t_next_probe_ns < p->t_deadline_ns ? p->t_next_probe_ns : p->t_deadline_ns;
	case PATH_WAIT_RETRY:
		return p->t_next_attempt_ns;
	default:
		return UINT64_MAX;
	}
}

/* Can a direct path exist between NAT classes a and b (the truth table of
 * docs/CONNECTIVITY.md)? An address-dependent mapping defeats it unless the
 * other side has no NAT; unknown classes are given the benefit. */
static int nat_pair_allows(uint8_t a, uint8_t b)
{
	if (a == CONN_NAT_NONE || b == CONN_NAT_NONE)
		return 1;
	return a != CONN_NAT_ADM && b != CONN_NAT_ADM;
}

void path_fallback(struct path_conn *p, const struct path_io *io)
{
	if (p->state != PATH_DIRECT)
		return;
	p->fallbacks++;
	p->switches++;
	p->state = PATH_IDLE;
	if (io->use)
		io->use(io->arg, NULL);
	/* The dialler punches again at once with the connection's attempts
	 * left (the per-peer budget still applies), when the classes allow a
	 * direct path: the path worked, a rebinding NAT or a changed network
	 * may have moved the peer's mapping. */
	if (p->initiator && p->attempt < p->lim.attempts &&
	    nat_pair_allows(p->mine.nat, p->peer.nat)) {
		p->repunches++;
		p->state = PATH_WAIT_RETRY;
		p->t_next_attempt_ns = 0; /* due at the next tick */
	}
}

/* ------------------------------------------------------------ per-peer budget */

struct path_budget_slot {
	int used;
	uint8_t key[32];
	uint64_t window_ns; /* start of the key's window */
	unsigned int n;	    /* attempts counted in it */
};

struct path_budget {
	unsigned int max, nslots;
	uint64_t window_ns;
	struct path_budget_slot slot[];
};

int path_budget_new(struct path_budget **out, unsigned int max_attempts, unsigned int window_s,
		    unsigned int slots)
{
	struct path_budget *b;

	*out = NULL;
	if (!slots)
		slots = PATH_DEF_PEER_SLOTS;
	b = calloc(1, sizeof(*b) + (size_t)slots * sizeof(b->slot[0]));
	if (!b)
		return -ENOMEM;
	b->max = max_attempts ? max_attempts : PATH_DEF_PEER_ATTEMPTS;
	b->window_ns = (uint64_t)(window_s ? window_s : PATH_DEF_PEER_WINDOW_S) * 1000 * MS;
	b->nslots = slots;
	*out = b;
	return 0;
}

void path_budget_free(struct path_budget *b)
{
	free(b);
}

static struct path_budget_slot *budget_find(const struct path_budget *b, const uint8_t *key)
{
	for (unsigned int i = 0; i < b->nslots; i++)
		if (b->slot[i].used && !memcmp(b->slot[i].key, key, 32))
			return (struct path_budget_slot *)&b->slot[i];
	return NULL;
}

unsigned int path_budget_left(const struct path_budget *b, const uint8_t *key, uint64_t now_ns)
{
	const struct path_budget_slot *s = budget_find(b, key);

	if (!s || now_ns - s->window_ns >= b->window_ns)
		return b->max;
	return s->n < b->max ? b->max - s->n : 0;
}

int path_budget_take(struct path_budget *b, const uint8_t *key, uint64_t now_ns)
{
	struct path_budget_slot *s = budget_find(b, key);

	if (!s) {
		for (unsigned int i = 0; i < b->nslots; i++) {
			struct path_budget_slot *x = &b->slot[i];

			if (!x->used) {
				s = x;
				break;
			}
			if (!s || x->window_ns < s->window_ns)
				s = x;
		}
		if (!s)
			return -EAGAIN; /* no slot at all */
		memset(s, 0, sizeof(*s));
		s->used = 1;
		memcpy(s->key, key, 32);
		s->window_ns = now_ns;
	}
	if (now_ns - s->window_ns >= b->window_ns) {
		s->window_ns = now_ns;
		s->n = 0;
	}
	if (s->n >= b->max)
		return -EAGAIN;
	s->n++;
	return 0;
}
