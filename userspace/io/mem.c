// SPDX-License-Identifier: MIT
/*
 * In-memory backend: each queue is a receive queue of a simulated host
 * (include/weft/simnet.h). rx takes the datagrams due by the network's
 * clock, tx hands datagrams to the network, wait sleeps on the queue's
 * eventfd and the engine's wake-up eventfd until the next datagram is due
 * (only when the engine's workers run as threads; engine_poll never
 * waits). No socket and no privilege: the backend of in-process tests.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "weft/io.h"
#include "weft/simnet.h"

struct io_queue {
	struct simnet_host *host;
	unsigned int qid, batch;
	int efd, wake_fd;
	uint16_t port0;
	struct io_stats *st;
	struct simnet_pkt **held; /* handed out by the last rx */
	unsigned int nheld;
};

static int mem_init(void **ctx, const struct io_opts *opts, unsigned int want_queues)
{
	if (!opts->sim_host || !opts->nports)
		return -EINVAL;
	*ctx = opts->sim_host;
	return (int)(want_queues < SIMNET_MAX_QUEUES ? want_queues : SIMNET_MAX_QUEUES);
}

static void mem_fini(void *ctx)
{
	(void)ctx;
}

static void mem_close(struct io_queue *q)
{
	if (!q)
		return;
	for (unsigned int i = 0; i < q->nheld; i++)
		simnet_pkt_free(q->held[i]);
	if (q->efd >= 0)
		simnet_detach(q->host, q->qid);
	free(q->held);
	free(q);
}

static int mem_open(struct io_queue **out, void *ctx, const struct io_opts *opts, unsigned int qid)
{
	struct io_queue *q;
	int err;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->host = ctx;
	q->qid = qid;
	q->batch = opts->batch ? opts->batch : 64;
	q->wake_fd = opts->wake_fd;
	q->port0 = opts->ports[0];
	q->st = opts->stats;
	q->efd = -1;
	q->held = calloc(q->batch, sizeof(*q->held));
	if (!q->held) {
		mem_close(q);
		return -ENOMEM;
	}
	err = simnet_attach(q->host, qid, &q->efd);
	if (err) {
		q->efd = -1;
		mem_close(q);
		return err;
	}
	*out = q;
	return 0;
}

static int mem_rx(struct io_queue *q, struct io_pkt *pkts, unsigned int max)
{
	int n, i;

	if (max > q->batch)
		max = q->batch;
	n = simnet_recv(q->host, q->qid, q->held, max);
	for (i = 0; i < n; i++) {
		struct simnet_pkt *p = q->held[i];

		pkts[i].data = p->data;
		pkts[i].len = p->len;
		pkts[i].queue = q->qid;
		pkts[i].src = p->src;
		pkts[i].dst = p->dst;
		q->st->rx_bytes += p->len;
	}
	q->nheld = (unsigned int)n;
	if (n > 0) {
		q->st->rx_pkts += (uint64_t)n;
		q->st->rx_batches++;
	}
	return n;
}

static void mem_rx_done(struct io_queue *q)
{
	for (unsigned int i = 0; i < q->nheld; i++)
		simnet_pkt_free(q->held[i]);
	q->nheld = 0;
}

static int mem_tx(struct io_queue *q, const struct io_txmsg *msgs, unsigned int n)
{
	unsigned int i, ok = 0;

	for (i = 0; i < n; i++) {
		uint16_t sport = msgs[i].src.port ? msgs[i].src.port : q->port0;

		if (simnet_send(q->host, sport, &msgs[i].dst, msgs[i].data, msgs[i].len)) {
			q->st->tx_drop_error++;
			continue;
		}
		q->st->tx_bytes += msgs[i].len;
		ok++;
	}
	q->st->tx_pkts += ok;
	if (n)
		q->st->tx_batches++;
	return (int)ok;
}

static int mem_wait(struct io_queue *q, int64_t timeout_us)
{
	struct pollfd pfd[2] = {{.fd = q->efd, .events = POLLIN},
				{.fd = q->wake_fd, .events = POLLIN}};
	int64_t next = simnet_queue_next_ns(q->host, q->qid);
	uint64_t v;
	int to_ms;

	if (next >= 0 && (timeout_us < 0 || next / 1000 < timeout_us))
		timeout_us = next / 1000;
	to_ms = timeout_us < 0 ? -1 : (int)((timeout_us + 999) / 1000);
	if (poll(pfd, q->wake_fd >= 0 ? 2 : 1, to_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	/* Both eventfds are drained here (the backend owns the wait). */
	if ((pfd[0].revents & POLLIN) && read(q->efd, &v, sizeof(v)) < 0)
		v = 0;
	if (q->wake_fd >= 0 && (pfd[1].revents & POLLIN) && read(q->wake_fd, &v, sizeof(v)) < 0)
		v = 0;
	return 0;
}

static int mem_local_addr(void *ctx, const struct io_addr *dst, struct io_addr *local)
{
	simnet_host_addr(ctx, local);
	return local->family == dst->family ? 0 : -ENETUNREACH;
}

const struct io_backend io_backend_mem = {
    .name = "mem",
    .init = mem_init,
    .fini = mem_fini,
    .open = mem_open,
    .rx = mem_rx,
    .rx_done = mem_rx_done,
    .tx = mem_tx,
    .wait = mem_wait,
    .close = mem_close,
    .local_addr = mem_local_addr,
};
