// SPDX-License-Identifier: MIT
/*
 * What one requester holds of our answers (docs/CONTENT.md "Answers a
 * peer holds"), on the connection's engine worker: answers written to it
 * and not yet acknowledged, in its QUIC send buffers and in the node-wide
 * queue (quic_node_conn_sendq), and those written in this engine pass,
 * whose commands have not run yet (the worker's wrote table). A peer over
 * its limit is passed over (serve.c); one whose answers do not move is
 * closed. Calls quic_node only, never the rest of serving.
 */
#include "content/content_node_int.h"
#include "content/sched.h"
#include "content/serve_int.h"
#include "weft/log.h"
#include "weft/quic_node.h"

/*
 * Does conn hold its limit of our answers (docs/CONTENT.md "Answers a peer
 * holds")? Written and not yet acknowledged, in its QUIC stream buffers
 * and in the node-wide queue: cn->peer_held in all, or
 * CONTENT_SERVE_PEER_QUEUED in the node-wide queue alone (its streams'
 * buffers are full, and what more it is given waits in the queue every
 * peer shares). What this pass wrote to it counts in all: its commands
 * have not run yet. Not in the node-wide queue's part, where it may never
 * go (each fetch stream has its own send buffer): counted there, a peer
 * with four chunk requests answered in one pass was passed over for the
 * fifth (682-727 times a 51-node lab, docs/CONTENT.md). Asked before a
 * request's answer is made, on conn's worker; O(1).
 */
int cn_serve_peer_full(struct content_node *cn, struct cn_wtab *t, uint64_t conn)
{
	struct quic_node_sendq q;

	if (quic_node_conn_sendq(cn->quic, conn, &q))
		return 0; /* gone: the answer's write fails on its own */
	return q.queued + cn_serve_unseen(t, conn) + q.unacked >= cn->peer_held ||
	       q.queued >= CONTENT_SERVE_PEER_QUEUED;
}

void cn_serve_wrote(struct cn_wtab *t, uint64_t conn, uint64_t len)
{
	unsigned int i;

	for (i = 0; i < t->nwrote && t->wrote[i].conn != conn; i++)
		;
	if (i == t->nwrote) {
		if (i == sizeof(t->wrote) / sizeof(t->wrote[0])) {
			t->wrote_all += len; /* no room: counted for every connection */
			return;
		}
		t->wrote[i].conn = conn;
		t->wrote[i].bytes = 0;
		t->nwrote++;
	}
	t->wrote[i].bytes += len;
}

void cn_serve_pass(struct cn_wtab *t, uint64_t pass)
{
	if (pass == t->wrote_pass)
		return;
	/* the commands of every earlier pass have run */
	t->nwrote = 0;
	t->wrote_all = 0;
	t->wrote_pass = pass;
}

uint64_t cn_serve_unseen(const struct cn_wtab *t, uint64_t conn)
{
	for (unsigned int i = 0; i < t->nwrote; i++)
		if (t->wrote[i].conn == conn)
			return t->wrote[i].bytes + t->wrote_all;
	return t->wrote_all;
}

/*
 * Connections whose answers have not moved (no acknowledgment) for
 * stall_ns while they hold at least a chunk's answer and ask for more, or
 * hold their whole limit: closed (docs/CONTENT.md "Answers a peer
 * holds"). A peer that never acknowledges but keeps its connection alive
 * otherwise held its answers until it went; the limit bounds what it
 * holds, this how long. n: the peers in t->snap, whose held it fills
 * for the status view.
 */
void cn_serve_held_tick(struct cn_wtab *t, unsigned int n)
{
	struct content_node *cn = t->cn;
	struct quic_node_sendq q;

	for (unsigned int i = 0; i < n; i++) {
		uint64_t conn = t->snap[i].peer, held;

		t->snap[i].held = 0;
		if (quic_node_conn_worker(cn->quic, conn) != t->widx ||
		    quic_node_conn_sendq(cn->quic, conn, &q))
			continue;
		held = q.queued + q.unacked;
		t->snap[i].held = held;
		if (q.still_ns < cn->stall_ns || held < CN_SCHED_QUANTUM ||
		    (!t->snap[i].queued && held < cn->peer_held))
			continue;
		atomic_fetch_add(&cn->serve_stalled, 1);
		log_info(CN_MOD, "requester connection %llx: %llu bytes of answers unacknowledged "
				 "for %llu s, closed",
			 (unsigned long long)conn, (unsigned long long)held,
			 (unsigned long long)(q.still_ns / 1000000000ull));
		quic_node_close(cn->quic, conn, 0);
	}
}
