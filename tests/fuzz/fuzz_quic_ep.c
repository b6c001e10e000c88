// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the QUIC endpoint's datagram input: a server
 * endpoint S and a dial-only endpoint C, in one process, on a virtual
 * clock. The input is a small program of operations:
 *   - arbitrary datagrams (any version, any packet type, coalesced) into S
 *     or C, from input-chosen source addresses, optionally with the DCID
 *     replaced by one a live connection answers to (the client Initial's
 *     DCID for S, the dialled connection's SCID for C), so garbage reaches
 *     ngtcp2 connections and not only the endpoint's classifier;
 *   - real packets: C dials S (an operation; inputs without it stay cheap
 *     and hammer the classifier), and what each endpoint sends is captured
 *     and delivered, dropped, bit-flipped, cut, or given another version,
 *     so handshakes run with hostile packets interleaved;
 *   - application calls on established connections (streams, datagrams,
 *     close) and clock jumps that run quic_ep_handle_expiry(): the crash
 *     that motivated this target (draft-29 Initial -> ngtcp2 assertion)
 *     came through the timer, not the input call.
 * Every input ends by running the clock two minutes forward, so each
 * connection's timers, closing and draining periods run to their end.
 * The endpoints live across inputs (building them costs more than most
 * inputs); they are rebuilt every 4096 inputs or when connections pile up,
 * every other time with Retry for every new client (so the client's Retry
 * path and the server's token check run too).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sodium.h>

#include "quic/quic_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MS 1000000ULL
#define CAP_MAX 64
#define MAX_OPS 96

struct cap {
	int to; /* 0: S, 1: C */
	size_t len;
	uint8_t buf[1500];
};

static struct quic_ep *ep[2];
static uint8_t pk[2][QUIC_KEY_LEN], sk[2][QUIC_SK_LEN];
static struct sockaddr_in addr[2];
static struct cap caps[CAP_MAX];
static size_t cap_head, cap_len;
static uint64_t now = 1000000000000ULL;
static struct quic_conn *dialled, *accepted;
static uint8_t cli_dcid[NGTCP2_MAX_CIDLEN], cli_scid[NGTCP2_MAX_CIDLEN];
static size_t cli_dcidlen, cli_scidlen;
static unsigned long runs, builds;

static int fz_send(void *arg, const uint8_t *buf, size_t len, size_t gso,
		   const struct sockaddr *to, socklen_t tolen, const struct sockaddr *local)
{
	int from = (int)(intptr_t)arg;

	while (len > 0) {
		size_t seg = len < gso ? len : gso;

		if (cap_len < CAP_MAX && seg <= sizeof(caps[0].buf)) {
			struct cap *c = &caps[(cap_head + cap_len++) % CAP_MAX];

			c->to = !from;
			c->len = seg;
			memcpy(c->buf, buf, seg);
			/* Remember the ids of the client's first Initial. */
			if (from == 1 && seg >= 7 && (buf[0] & 0xf0) == 0xc0 && !cli_dcidlen &&
			    buf[5] <= NGTCP2_MAX_CIDLEN && (size_t)7 + buf[5] <= seg &&
			    buf[6 + buf[5]] <= NGTCP2_MAX_CIDLEN &&
			    (size_t)7 + buf[5] + buf[6 + buf[5]] <= seg) {
				cli_dcidlen = buf[5];
				memcpy(cli_dcid, buf + 6, cli_dcidlen);
				cli_scidlen = buf[6 + buf[5]];
				memcpy(cli_scid, buf + 7 + buf[5], cli_scidlen);
			}
		}
		buf += seg;
		len -= seg;
	}
	return 0;
}

static void on_conn(void *arg, struct quic_conn *c, const uint8_t *peer)
{
	if ((intptr_t)arg == 0)
		accepted = c;
}

static void on_data(void *arg, struct quic_conn *c, int64_t sid, const uint8_t *d, size_t len,
		    int fin)
{
	/* Echo on the server: exercises sends from inside callbacks. */
	if ((intptr_t)arg == 0 && len)
		quic_stream_send(c, sid, d, len > 64 ? 64 : len, fin);
}

static void on_closed(void *arg, struct quic_conn *c, const struct quic_close_info *info)
{
	if (c == dialled)
		dialled = NULL;
	if (c == accepted)
		accepted = NULL;
}

static void eps_free(void)
{
	quic_ep_free(ep[0]);
	quic_ep_free(ep[1]);
	ep[0] = ep[1] = NULL;
	dialled = accepted = NULL;
}

static void eps_new(void)
{
	int i;

	builds++;
	for (i = 0; i < 2; i++) {
		struct quic_ep_opts o;

		if (!pk[i][0] && !pk[i][1])
			crypto_sign_keypair(pk[i], sk[i]);
		memset(&addr[i], 0, sizeof(addr[i]));
		addr[i].sin_family = AF_INET;
		addr[i].sin_port = htons(4433);
		addr[i].sin_addr.s_addr = htonl(0x0a000001 + (uint32_t)i);
		memset(&o, 0, sizeof(o));
		o.node_pk = pk[i];
		o.node_sk = sk[i];
		o.local = (struct sockaddr *)&addr[i];
		o.local_len = sizeof(addr[i]);
		o.server = i == 0;
		o.retry_mode = builds % 2 ? QUIC_RETRY_ALWAYS : QUIC_RETRY_NEVER;
		o.max_conns = 64;
		o.send = fz_send;
		o.send_arg = (void *)(intptr_t)i;
		o.cb.on_conn = on_conn;
		o.cb.on_stream_data = on_data;
		o.cb.on_closed = on_closed;
		o.cb_arg = (void *)(intptr_t)i;
		if (quic_ep_new(&ep[i], &o) != 0)
			abort();
	}
}

static void tick(uint64_t dt)
{
	int i;

	now += dt;
	for (i = 0; i < 2; i++)
		if (quic_ep_expiry(ep[i]) <= now)
			quic_ep_handle_expiry(ep[i], now);
}

/* Datagram into endpoint `to`, from the other's address or a variant. */
static void input(int to, const uint8_t *buf, size_t len, uint8_t src)
{
	struct sockaddr_in from = addr[!to];

	if (src & 0x80) {
		from.sin_addr.s_addr = htonl(0xc0a80000 + (src & 0x3f));
		from.sin_port = htons((uint16_t)(1024 + (src & 0x7)));
	}
	quic_ep_input(ep[to], buf, len, NULL, 0, (struct sockaddr *)&from, sizeof(from), now);
}

/* Put a known DCID into a datagram: long header (replacing its DCID field
 * when the lengths allow) or short header (right after the first byte). */
static size_t with_dcid(uint8_t *out, const uint8_t *in, size_t len, const uint8_t *cid,
			size_t cidlen)
{
	if (len < 1)
		return 0;
	if (in[0] & 0x80) {
		size_t old;

		if (len < 6)
			return 0;
		old = in[5];
		if (6 + old > len || len - old + cidlen > 1500)
			return 0;
		memcpy(out, in, 5);
		out[5] = (uint8_t)cidlen;
		memcpy(out + 6, cid, cidlen);
		memcpy(out + 6 + cidlen, in + 6 + old, len - 6 - old);
		return len - old + cidlen;
	}
	if (len + cidlen > 1500)
		return 0;
	out[0] = in[0];
	memcpy(out + 1, cid, cidlen);
	memcpy(out + 1 + cidlen, in + 1, len - 1);
	return len + cidlen;
}

struct rd {
	const uint8_t *p;
	size_t n;
};

static uint8_t u8(struct rd *r)
{
	uint8_t v = 0;

	if (r->n) {
		v = *r->p++;
		r->n--;
	}
	return v;
}

static uint16_t u16(struct rd *r)
{
	return (uint16_t)(u8(r) << 8 | u8(r));
}

static const uint8_t *bytes(struct rd *r, size_t *len)
{
	const uint8_t *p = r->p;

	if (*len > r->n)
		*len = r->n;
	r->p += *len;
	r->n -= *len;
	return p;
}

static struct cap *cap_pop(void)
{
	struct cap *c;

	if (!cap_len)
		return NULL;
	c = &caps[cap_head];
	cap_head = (cap_head + 1) % CAP_MAX;
	cap_len--;
	return c;
}

static void app_op(uint8_t how)
{
	struct quic_conn *c = how & 1 ? accepted : dialled;
	static const uint8_t msg[256] = { 0x20, 1, 2, 3 };
	int64_t sid;

	if (!c)
		return;
	switch ((how >> 1) & 3) {
	case 0:
		if (quic_stream_open(c, (how >> 3) & 1, &sid) == 0)
			quic_stream_send(c, sid, msg, sizeof(msg), (how >> 4) & 1);
		break;
	case 1:
		quic_conn_send_datagram(c, msg, (size_t)(how >> 3) * 8); /* 0..248 */
		break;
	case 2:
		quic_conn_close(c, how >> 3, "fuzz");
		break;
	default: {
		struct quic_conn_info info;

		quic_conn_get_info(c, &info);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	uint8_t buf[1600];
	struct quic_ep_stats st;
	int ops = 0, i;

	if (!ep[0] || (++runs % 4096) == 0) {
		eps_free();
		eps_new();
	}
	quic_ep_get_stats(ep[0], &st);
	if (st.conns_active > 32) {
		eps_free();
		eps_new();
	}
	cap_head = cap_len = 0;
	cli_dcidlen = cli_scidlen = 0;
	dialled = accepted = NULL;
	while (r.n && ops++ < MAX_OPS) {
		uint8_t op = u8(&r), a = u8(&r);
		size_t len;
		const uint8_t *p;
		struct cap *c;

		switch (op % 10) {
		case 0: /* raw datagram into S or C */
		case 1:
			len = u16(&r) % 1500;
			p = bytes(&r, &len);
			input(op % 2, p, len, a);
			break;
		case 2: /* raw datagram routed to a live connection */
			len = u16(&r) % 1400;
			p = bytes(&r, &len);
			if (a & 1)
				len = with_dcid(buf, p, len, cli_scid, cli_scidlen);
			else
				len = with_dcid(buf, p, len, cli_dcid, cli_dcidlen);
			if (len)
				input(a & 1, buf, len, a & 0x80);
			break;
		case 3: /* deliver captured packets as they are */
			for (i = 0; i <= (a & 7) && (c = cap_pop()); i++)
				input(c->to, c->buf, c->len, 0);
			break;
		case 4: /* deliver one with a byte changed, or cut */
			if ((c = cap_pop())) {
				uint16_t pos = u16(&r);

				memcpy(buf, c->buf, c->len);
				len = c->len;
				if (a & 0x80)
					len = pos % (len + 1);
				else if (len)
					buf[pos % len] ^= (uint8_t)(a | 1);
				input(c->to, buf, len, 0);
			}
			break;
		case 5: /* drop captured packets */
			for (i = 0; i <= (a & 3); i++)
				cap_pop();
			break;
		case 6: /* deliver one with another version */
			if ((c = cap_pop())) {
				static const uint32_t vs[] = { 0xff00001d, 0x709a50c4, 0x6b3343cf,
							       0x1a2a3a4a, 0, 2, 0xff000020, 1 };
				uint32_t v = vs[a & 7];

				memcpy(buf, c->buf, c->len);
				if (c->len >= 5 && (buf[0] & 0x80)) {
					buf[1] = (uint8_t)(v >> 24);
					buf[2] = (uint8_t)(v >> 16);
					buf[3] = (uint8_t)(v >> 8);
					buf[4] = (uint8_t)v;
				}
				input(c->to, buf, c->len, 0);
			}
			break;
		case 7: /* clock jump: up to 65 s, timers run */
			tick((uint64_t)u16(&r) * (a & 1 ? MS : 1000));
			break;
		case 8: /* application calls */
			app_op(a);
			break;
		default: /* C dials S (pinning S's key or not); the Initial is captured */
			if (!dialled && quic_ep_connect(ep[1], (struct sockaddr *)&addr[0],
							sizeof(addr[0]), a & 1 ? pk[0] : NULL,
							now, &dialled) != 0)
				dialled = NULL;
			break;
		}
	}
	/* Let every timer, closing and draining period run out. */
	for (i = 0; i < 24; i++)
		tick(5000 * MS);
	return 0;
}
