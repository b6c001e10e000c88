// SPDX-License-Identifier: MIT
/*
 * The write path of one QUIC connection: queued datagrams and stream bytes
 * through ngtcp2 into packets, packed into GSO batches of equal-size
 * segments in the endpoint's transmit buffer, and the pacing slack. Packets
 * leave through quic_conn_path_send() (conn_path.c).
 */
#include <string.h>

#include "quic/quic_int.h"

#define MAX_VECS 8

/* ngtcp2 0.12 asserts on a negotiated version when it writes a 1-RTT
 * packet (conn_write_pkt), and a server connection gets one only from a
 * client Initial it could process. The endpoint admits v1 Initials only,
 * so this is a second line: until then the connection writes nothing and
 * runs no ngtcp2 timer; it lives until its handshake deadline. */
int quic_conn_negotiated(const struct quic_conn *c)
{
	return !c->is_server || ngtcp2_conn_get_negotiated_version(c->conn) != 0;
}

size_t quic_ep_max_tx(const struct quic_ep *ep)
{
	return ep->o.lo_udp_payload > ep->o.max_udp_payload ? ep->o.lo_udp_payload :
							      ep->o.max_udp_payload;
}

/* A loopback connection has ngtcp2's shaping off (quic_conn_new): its
 * packets are as big as the buffer we give, the peer's transport parameter
 * permitting. Until its handshake is confirmed it sends what any path
 * would: a client's datagram with its Finished also carries an Initial
 * and is padded to the buffer's size, which a peer may not take whole
 * before the parameters are known. Once its packets go to a direct
 * address off loopback: QUIC's 1200 bytes, which every path carries. */
size_t quic_conn_tx_size(const struct quic_conn *c)
{
	const struct quic_ep *ep = c->ep;

	if (c->pm.max)
		return c->direct_len ? NGTCP2_MAX_UDP_PAYLOAD_SIZE : c->pm.size;
	if (!c->lo)
		return ep->o.max_udp_payload;
	if (c->direct_len && !quic_sa_loopback((const struct sockaddr *)&c->direct, c->direct_len))
		return NGTCP2_MAX_UDP_PAYLOAD_SIZE;
	if (!c->confirmed)
		return ep->o.max_udp_payload;
	return ep->o.lo_udp_payload;
}

/*
 * Path MTU probing off loopback (docs/QUIC.md "Jumbo datagrams off
 * loopback"). ngtcp2 0.12 probes no size above 1444 bytes, so a connection
 * whose route takes jumbo frames (pm.max, set up in quic_conn_new) is
 * unshaped and sends pm.size: 1200 until one of our probes is acknowledged.
 * A probe is a DATAGRAM frame filling a packet of the size tried, alone in
 * its datagram; ngtcp2 tells us its fate by its id (ack_datagram /
 * lost_datagram), and the peer drops any datagram larger than an
 * application's (conn.c). Sizes tried: the ceiling, then max_udp_payload,
 * QUIC_PM_TRIES losses each; below the ceiling the search starts again
 * after QUIC_PM_RAISE_MS. QUIC_PM_BLACKHOLE_PTOS successive PTOs while
 * above 1200 bytes (the path stopped carrying them): back to 1200 and
 * search again. The probe's DATAGRAM is congestion-controlled: a lost one
 * costs a congestion event, which is why only routes with an MTU above
 * 1500 are probed. A peer that does not take datagrams that large (an
 * earlier weft, another QUIC stack) leaves the connection at 1200.
 */
static const uint8_t pm_zeros[65536];

/* The search over: again after the raise timer while below the ceiling
 * (the timer never fires for nothing: no busy loop). */
static void pm_done(struct quic_conn *c, uint64_t now)
{
	c->pm.step = 2;
	c->pm.fails = 0;
	c->pm.hold_until = 0;
	c->pm.next = c->pm.size < c->pm.max ? now + QUIC_PM_RAISE_MS * 1000000ULL : UINT64_MAX;
}

static void pm_next_step(struct quic_conn *c, uint64_t now)
{
	c->pm.fails = 0;
	c->pm.hold_until = 0;
	if (++c->pm.step >= 2)
		pm_done(c, now);
}

void quic_conn_pm_acked(struct quic_conn *c, uint64_t id)
{
	if (!(id & QUIC_PM_ID_BIT) || id != c->pm.id || !c->pm.len)
		return;
	c->pm.acked++;
	if (c->pm.len > c->pm.size)
		c->pm.size = c->pm.len;
	c->pm.len = 0;
	pm_done(c, c->ep->now); /* each size tried is below the last */
}

/* A try of this size failed (lost, or held back too long): the next
 * smaller size after QUIC_PM_TRIES of them. */
static void pm_try_failed(struct quic_conn *c, uint64_t now)
{
	c->pm.lost++;
	if (++c->pm.fails >= QUIC_PM_TRIES)
		pm_next_step(c, now);
}

void quic_conn_pm_lost(struct quic_conn *c, uint64_t id)
{
	if (!(id & QUIC_PM_ID_BIT) || id != c->pm.id || !c->pm.len)
		return;
	c->pm.len = 0;
	pm_try_failed(c, c->ep->now);
}

/* When the probe in flight, sent or asked about again at now, counts as
 * lost. */
static uint64_t pm_deadline(struct quic_conn *c, uint64_t now)
{
	return now + QUIC_PM_PROBE_PTOS * ngtcp2_conn_get_pto(c->conn);
}

static int pm_active(const struct quic_conn *c)
{
	return c->pm.max && c->state == QUIC_ST_OPEN && c->confirmed && !c->direct_len;
}

uint64_t quic_conn_pm_expiry(const struct quic_conn *c)
{
	if (!pm_active(c))
		return UINT64_MAX;
	if (c->pm.ping_at)
		return c->pm.ping_at;
	return c->pm.len ? c->pm.deadline : c->pm.next;
}

int quic_conn_pm_timer(struct quic_conn *c, uint64_t now)
{
	if (!pm_active(c))
		return 0;
	if (c->pm.ping_at)
		return now >= c->pm.ping_at;
	if (c->pm.len && now >= c->pm.deadline) {
		if (c->pm.asks < QUIC_PM_ASKS) {
			/* ngtcp2 has not decided yet (no ACK of a later packet
			 * came): another PING, whose ACK lets it. Taken as lost
			 * now, the probe would stay in ngtcp2's flight while the
			 * next went out, and two jumbo probes fill the smallest
			 * window: no PING, no ACK, nothing freed (it runs no PTO
			 * for them). */
			c->pm.asks++;
			c->pm.deadline = pm_deadline(c, now);
			c->pm.ping_at = now + QUIC_PM_PING_DELAY_NS;
			return 0;
		}
		quic_conn_pm_lost(c, c->pm.id); /* ngtcp2 may still say so later: ignored */
	}
	return !c->pm.len && now >= c->pm.next;
}

/* Back to 1200 bytes when the path stopped carrying what was validated. */
static void pm_blackhole(struct quic_conn *c, uint64_t now)
{
	ngtcp2_conn_stat cs;

	if (c->pm.size <= NGTCP2_MAX_UDP_PAYLOAD_SIZE)
		return;
	ngtcp2_conn_get_conn_stat(c->conn, &cs);
	if (cs.pto_count < QUIC_PM_BLACKHOLE_PTOS)
		return;
	c->pm.blackholes++;
	c->pm.size = NGTCP2_MAX_UDP_PAYLOAD_SIZE;
	c->pm.len = 0;
	c->pm.step = 0;
	c->pm.fails = 0;
	c->pm.hold_until = 0;
	c->pm.next = now;
}

/* A PING a moment after a probe: ngtcp2 runs no PTO for a packet of
 * DATAGRAM frames, so on an idle connection a lost probe would be
 * declared lost only once a later packet is acknowledged. ngtcp2 adds a
 * PING to a packet while its keep-alive timer has expired (it runs from the
 * last packet sent, and timestamps must not go back): expired for this
 * one write. Returns 0 or a fatal ngtcp2 error. */
static int pm_ping(struct quic_conn *c, uint64_t now)
{
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_ssize n;

	c->pm.ping_at = 0;
	memset(&pi, 0, sizeof(pi));
	ngtcp2_path_storage_zero(&ps);
	ngtcp2_conn_set_keep_alive_timeout(c->conn, 1);
	n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, c->ep->txbuf, c->pm.size, NULL,
				      NGTCP2_WRITE_STREAM_FLAG_NONE, -1, NULL, 0, now);
	ngtcp2_conn_set_keep_alive_timeout(c->conn, c->ka_ns);
	if (n < 0)
		return (int)n;
	if (n > 0)
		quic_conn_path_send(c, c->ep->txbuf, (size_t)n, (size_t)n, &ps.path);
	return 0;
}

/* What a probe of want bytes holds besides its DATAGRAM's data: the short
 * header (its first byte, the DCID, a packet number of at most 4 bytes),
 * the AEAD tag (16) and the frame's type and length (a varint of 2 bytes
 * below 16,384, else 4). A shorter packet number leaves the probe up to 3
 * bytes under want; the size validated is the probe's own. */
static size_t pm_overhead(struct quic_conn *c, size_t want)
{
	size_t o = 1 + ngtcp2_conn_get_dcid(c->conn)->datalen + 4 + 16 + 1;

	return o + (want - o - 2 < 16384 ? 2 : 4);
}

/* Send one probe when one is due. Returns 0 or a fatal ngtcp2 error. */
static int pm_probe(struct quic_conn *c, uint64_t now)
{
	const ngtcp2_transport_params *rp;
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	ngtcp2_vec v;
	ngtcp2_ssize n;
	size_t want;
	int accepted = 0;

	if (!pm_active(c))
		return 0;
	if (c->pm.step >= 2) {
		if (now < c->pm.next)
			return 0;
		c->pm.step = 0; /* the raise timer: search from the ceiling */
	}
	/* held back by the window: tried at every flush (an ACK frees it) */
	if (c->pm.len || (now < c->pm.next && c->pm.hold_until <= now))
		return 0;
	rp = ngtcp2_conn_get_remote_transport_params(c->conn);
	if (!rp) {
		pm_done(c, now);
		return 0;
	}
	want = c->pm.step == 0 ? c->pm.max : c->ep->o.max_udp_payload;
	if (want > rp->max_udp_payload_size)
		want = rp->max_udp_payload_size;
	/* The peer's DATAGRAM limit (its frame: type and length, <= 5). */
	if (rp->max_datagram_frame_size < 5 + QUIC_MAX_DATAGRAM + 1) {
		/* A peer that takes no probe (another QUIC stack, an earlier
		 * weft) across a 1500-byte link (the ceiling 1472: jumbo
		 * ceilings are larger): nothing lies between, so the
		 * link's size is the path's; max_udp_payload (1452) unprobed,
		 * as ngtcp2 would have found 1444, and a black hole (two PTOs)
		 * still takes it back to 1200, for good: unprobed, the size
		 * cannot be tried again (the link may have shrunk since the
		 * route was read; raising it after each black hole stalled
		 * quic-go on a 1400-byte link, test_quic_quicgo_link). */
		if (c->pm.max <= 1500 - 28 && c->pm.size < c->ep->o.max_udp_payload &&
		    !c->pm.blackholes)
			c->pm.size = c->ep->o.max_udp_payload < rp->max_udp_payload_size ?
					     c->ep->o.max_udp_payload :
					     (size_t)rp->max_udp_payload_size;
		pm_done(c, now);
		c->pm.next = UINT64_MAX;
		return 0;
	}
	if (want > rp->max_datagram_frame_size - 5 + QUIC_PM_OVERHEAD)
		want = rp->max_datagram_frame_size - 5 + QUIC_PM_OVERHEAD;
	if (want <= c->pm.size + QUIC_PM_OVERHEAD || want - QUIC_PM_OVERHEAD > sizeof(pm_zeros)) {
		pm_next_step(c, now);
		return 0;
	}
	v.base = (uint8_t *)pm_zeros;
	v.len = want - pm_overhead(c, want);
	if (v.len + 5 > rp->max_datagram_frame_size)
		v.len = rp->max_datagram_frame_size - 5;
	for (int tries = 0;; tries++) {
		memset(&pi, 0, sizeof(pi));
		ngtcp2_path_storage_zero(&ps);
		c->pm.id = QUIC_PM_ID_BIT | ++c->pm.seq;
		n = ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, c->ep->txbuf, want,
						&accepted, NGTCP2_WRITE_DATAGRAM_FLAG_NONE,
						c->pm.id, &v, 1, now);
		if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE) {
			pm_done(c, now); /* the peer cannot take it after all */
			c->pm.next = UINT64_MAX;
			return 0;
		}
		if (n < 0)
			return (int)n;
		if (accepted || n == 0 || tries)
			break;
		/* Something went first (an ACK frame) and left no room for the
		 * probe, which fills the packet: that packet out, then the
		 * probe alone. */
		quic_conn_path_send(c, c->ep->txbuf, (size_t)n, (size_t)n, &ps.path);
	}
	if (n == 0 || !accepted) {
		uint64_t pto = ngtcp2_conn_get_pto(c->conn);

		c->pm.next = now + QUIC_PM_RETRY_MS * 1000000ULL; /* held back: again soon */
		/* A bulk sender's ACKs free the window for stream bytes
		 * every time, and the probe waited for the transfer's end
		 * (a 64 MiB bench ended with its probe unanswered,
		 * test_quic_jumbo): stream data waits for it, one PTO at
		 * most, once a probe (quic_conn_flush). */
		if (!c->pm.hold_until) {
			c->pm.hold_until = now + pto;
		} else if (now >= c->pm.hold_until + QUIC_PM_PROBE_PTOS * pto) {
			/* Held back this long: a try of this size, lost, not a
			 * retry every QUIC_PM_RETRY_MS for good. (On an idle
			 * connection lost probes that ngtcp2 still counts in
			 * flight can fill the window, and ngtcp2 0.12 runs no
			 * PTO for them: nothing frees it.) */
			c->pm.hold_until = 0;
			pm_try_failed(c, now);
		}
	}
	if (n == 0)
		return 0;
	if (accepted) {
		c->pm.hold_until = 0;
		c->pm.asks = 0;
		c->pm.len = (size_t)n;
		c->pm.probes++;
		c->pm.deadline = pm_deadline(c, now);
	}
	quic_conn_path_send(c, c->ep->txbuf, (size_t)n, (size_t)n, &ps.path);
	if (accepted)
		c->pm.ping_at = now + QUIC_PM_PING_DELAY_NS;
	return 0;
}

/* The flush ended with stream data still to send, held back by the
 * congestion window or by the fair window: the connection is backlogged
 * (fair.h). */
static void fair_report(struct quic_conn *c, uint64_t now, int fair_held)
{
	struct quic_fair_sample fs;
	ngtcp2_conn_stat cs;

	if (!quic_fair_on(c->ep->fair.g))
		return;
	if (fair_held)
		c->ep->fair.holds++;
	ngtcp2_conn_get_conn_stat(c->conn, &cs);
	fs.cwnd = cs.cwnd;
	fs.inflight = cs.bytes_in_flight;
	fs.srtt = cs.first_rtt_sample_ts == UINT64_MAX ? 0 : cs.smoothed_rtt;
	fs.min_rtt = cs.min_rtt;
	quic_fair_report(&c->ep->fair, &c->fair, &fs, now);
}

struct batch {
	ngtcp2_path_storage ps;
	size_t off, gso, npkt, max_pkt;
};

static void batch_send(struct quic_conn *c, struct batch *b)
{
	if (b->off)
		quic_conn_path_send(c, c->ep->txbuf, b->off, b->gso, &b->ps.path);
	b->off = 0;
	b->gso = 0;
	b->npkt = 0;
}

/* Account one packet of n bytes just written at txbuf + b->off. */
static void batch_add(struct quic_conn *c, struct batch *b, const ngtcp2_path *path, size_t n)
{
	uint8_t *buf = c->ep->txbuf;

	c->rx_n = 0; /* what we send carries the ACK (QUIC_ACK_HOLD_NS) */
	if (b->npkt > 0 && (n > b->gso || !ngtcp2_path_eq(path, &b->ps.path))) {
		/* Cannot join the batch: send it, move the packet to the front. */
		size_t at = b->off;

		batch_send(c, b);
		memmove(buf, buf + at, n);
	}
	if (b->npkt == 0) {
		ngtcp2_path_copy(&b->ps.path, path);
		b->gso = n;
	}
	b->off += n;
	b->npkt++;
	if (n < b->gso || b->npkt >= b->max_pkt)
		batch_send(c, b);
}

void quic_conn_flush(struct quic_conn *c, uint64_t now)
{
	struct quic_ep *ep = c->ep;
	struct quic_stream *s;
	struct batch b;
	ngtcp2_path_storage ps;
	ngtcp2_pkt_info pi;
	struct quic_stream *nodata = NULL; /* gave a packet without its data */
	size_t mtu, quantum, room;
	int rounds = 0, hold;
	/* fair windows (fair.h): stream bytes this flush may still send, those
	 * it sent, and whether stream data waited for the congestion window
	 * (cwnd_held) or for the fair window (fair_held) */
	uint64_t fair_allow = UINT64_MAX, fair_sent = 0;
	int cwnd_held = 0, fair_held = 0;

	quic_conn_touch(c);
	if (c->state >= QUIC_ST_CLOSING)
		return;
	if (!quic_conn_negotiated(c)) {
		c->flush_pending = 0;
		return;
	}
	if (c->busy) {
		/* Inside ngtcp2 (a callback queued data): write as soon as it
		 * returns; the expiry is "now" while a flush is pending. */
		c->flush_pending = 1;
		return;
	}
	if (c->pm.max) {
		int rc;

		c->busy = 1;
		pm_blackhole(c, now);
		rc = c->pm.ping_at && now >= c->pm.ping_at ? pm_ping(c, now) : 0;
		if (!rc)
			rc = pm_probe(c, now);
		c->busy = 0;
		if (rc) {
			quic_conn_fatal(c, rc, now);
			return;
		}
	}
	/* a probe held back by the window goes before stream data (pm_probe) */
	hold = c->pm.max && !c->pm.len && c->pm.hold_until > now;
	if (ep->fair.g && c->state == QUIC_ST_OPEN) {
		ngtcp2_conn_stat cs;
		uint64_t w;

		quic_fair_roll(&ep->fair, now);
		if (ep->fair.limit) {
			ngtcp2_conn_get_conn_stat(c->conn, &cs);
			w = quic_fair_window(&ep->fair, cs.smoothed_rtt);
			fair_allow = w > cs.bytes_in_flight ? w - cs.bytes_in_flight : 0;
		}
	}
	room = quic_conn_tx_size(c);
	mtu = c->lo || c->pm.max ? room : ngtcp2_conn_get_path_max_tx_udp_payload_size(c->conn);
	if (mtu > room)
		mtu = room;
	quantum = ngtcp2_conn_get_send_quantum(c->conn);
	memset(&b, 0, sizeof(b));
	ngtcp2_path_storage_zero(&b.ps);
	b.max_pkt = quantum / mtu;
	if (b.max_pkt < 1)
		b.max_pkt = 1;
	if (b.max_pkt > QUIC_MAX_GSO_SEGS)
		b.max_pkt = QUIC_MAX_GSO_SEGS;
	ngtcp2_path_storage_zero(&ps);
	c->busy = 1;
	for (;;) {
		uint8_t *dst = ep->txbuf + b.off;
		ngtcp2_ssize n, ndata = -1;
		ngtcp2_vec v[MAX_VECS];
		size_t nv = 0;
		uint32_t fl = NGTCP2_WRITE_STREAM_FLAG_MORE;
		int64_t sid = -1;
		int accepted = 0;

		if (++rounds > 100000)
			break; /* defensive: never spin */
		memset(&pi, 0, sizeof(pi));
		if (c->dgq_len > 0 && c->state == QUIC_ST_OPEN) {
			struct quic_dgram *d = &c->dgq[c->dgq_head];
			ngtcp2_vec dv = { d->data, d->len };

			/* An empty datagram is no vector: ngtcp2 0.12 asserts
			 * on a zero-length one (found by fuzz_quic_ep). */
			n = ngtcp2_conn_writev_datagram(c->conn, &ps.path, &pi, dst, mtu, &accepted,
							NGTCP2_WRITE_DATAGRAM_FLAG_MORE, 0, &dv,
							d->len ? 1 : 0, now);
			if (accepted || n == NGTCP2_ERR_INVALID_ARGUMENT ||
			    n == NGTCP2_ERR_INVALID_STATE) {
				/* Sent, or can never be sent (too big for the peer). */
				if (accepted)
					c->dgrams_tx++;
				c->dgq_head = (c->dgq_head + 1) % QUIC_DEF_MAX_DGRAM_QUEUE;
				c->dgq_len--;
			}
			if (n == NGTCP2_ERR_WRITE_MORE)
				continue;
			if (n == NGTCP2_ERR_INVALID_ARGUMENT || n == NGTCP2_ERR_INVALID_STATE)
				continue;
			if (n < 0) {
				c->busy = 0;
				quic_conn_fatal(c, (int)n, now);
				return;
			}
			if (n == 0) {
				/* Congestion limited: keep the datagram for later. */
				if (!accepted)
					break;
				continue;
			}
			batch_add(c, &b, &ps.path, (size_t)n);
			continue;
		}
		s = NULL;
		if (c->state == QUIC_ST_OPEN && !hold) {
			if (fair_sent < fair_allow)
				s = quic_sbuf_next(c);
			else if (c->wq_head)
				fair_held = 1; /* ngtcp2's own frames (ACKs) still go */
		}
		if (s) {
			sid = s->id;
			nv = quic_sbuf_vecs(s, v, MAX_VECS, room);
			if (s->fin_queued) {
				/* FIN only when every queued byte fits in this call. */
				uint64_t in_vecs = 0;
				size_t i;

				for (i = 0; i < nv; i++)
					in_vecs += v[i].len;
				if (s->sent + in_vecs == s->total)
					fl |= NGTCP2_WRITE_STREAM_FLAG_FIN;
			}
		}
		/* The buffer may take a packet up to our maximum: ngtcp2 keeps
		 * ordinary packets to the path's size and writes its PMTUD
		 * probes (bigger) only into a buffer that can hold them. */
		n = ngtcp2_conn_writev_stream(c->conn, &ps.path, &pi, dst, room,
					      &ndata, fl, sid, v, nv, now);
		if (n < 0) {
			if (n == NGTCP2_ERR_STREAM_DATA_BLOCKED) {
				if (s)
					s->blocked_round = c->flush_round;
				continue;
			}
			if (n == NGTCP2_ERR_STREAM_SHUT_WR || n == NGTCP2_ERR_STREAM_NOT_FOUND) {
				if (s)
					quic_sbuf_abandon(c, s);
				continue;
			}
			if (n == NGTCP2_ERR_WRITE_MORE) {
				if (s && ndata >= 0) {
					quic_sbuf_sent(c, s, (uint64_t)ndata,
						       !!(fl & NGTCP2_WRITE_STREAM_FLAG_FIN));
					c->bytes_tx += (uint64_t)ndata;
					fair_sent += (uint64_t)ndata;
					nodata = NULL;
				}
				continue;
			}
			c->busy = 0;
			quic_conn_fatal(c, (int)n, now);
			return;
		}
		if (s && ndata >= 0) {
			quic_sbuf_sent(c, s, (uint64_t)ndata,
				       !!(fl & NGTCP2_WRITE_STREAM_FLAG_FIN));
			c->bytes_tx += (uint64_t)ndata;
			fair_sent += (uint64_t)ndata;
			nodata = NULL;
		} else if (s && n > 0) {
			/* Packet without this stream's data: a packet of ngtcp2's
			 * own filled the datagram (the handshake's last, ACKs),
			 * or congestion or conn-level flow control. The first
			 * time the stream keeps its place: passed over for the
			 * pass, its message would go after newer streams' (a
			 * peer's observed address after our echo: the relayed
			 * path unseen when the ping returns, test_sim_punch).
			 * Twice in a row: try the others, then stop. */
			if (nodata == s)
				s->blocked_round = c->flush_round;
			nodata = s;
		}
		if (n == 0) {
			if (s) {
				s->blocked_round = c->flush_round;
				cwnd_held = 1;
				continue;
			}
			break;
		}
		batch_add(c, &b, &ps.path, (size_t)n);
	}
	batch_send(c, &b);
	if (fair_held || cwnd_held)
		fair_report(c, now, fair_held);
	c->flush_round++; /* the streams passed over this time are not next time */
	/* Pacing: ngtcp2 0.12 refuses to send before next_ts = ts + (bytes of
	 * this pass) / pacing rate. Crediting the interval with
	 * QUIC_PACING_SLACK_NS (1 ms, as later ngtcp2 releases credit a
	 * pacing overhead) lets the ACKs of a burst free the next burst at
	 * once instead of after a timer wake-up. Measured with microsecond
	 * timers (docs/QUIC.md): 250 us and 1 ms give the same throughput,
	 * 0-50 us about 10% less. */
	/* Not during the handshake: before the first RTT sample the pacing
	 * rate comes from the 333 ms initial RTT, and pacing one Initial
	 * would hold the client's Finished (and any early stream data) back
	 * ~30 ms, until a PTO probe carries it (seen as a 20 ms `quic ping`). */
	if (ngtcp2_conn_get_handshake_completed(c->conn))
		ngtcp2_conn_update_pkt_tx_time(c->conn, now > QUIC_PACING_SLACK_NS ?
						       now - QUIC_PACING_SLACK_NS : now);
	c->busy = 0;
}
