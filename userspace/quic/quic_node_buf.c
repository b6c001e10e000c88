// SPDX-License-Identifier: MIT
/*
 * Command blocks (struct qn_op: qn_op_new, qn_op_free) and the large ones
 * kept for reuse (see QN_BUF_SIZE in quic_node_int.h).
 *
 * quic_node_write() copies its data into a command block that lives until
 * the peer acknowledged the bytes; a content serve thread writes one chunk
 * answer (256 KiB) per request. weftd turns glibc's dynamic mmap threshold
 * off (node_heap_setup in node/heap.c fixes it at 128 KiB), so each such
 * block was a fresh mmap(), faulted in page by page while the answer was
 * copied in, and a munmap() on the packet thread once acknowledged: 122 us
 * a block on the lab's VM against 4 us for a reused one (docs/LAB.md),
 * 10% of the machine's CPU in a 51-node distribution. Blocks of a size in
 * (QN_BUF_MIN, QN_BUF_SIZE] are allocated at QN_BUF_SIZE and, when freed,
 * kept (at most QN_BUF_CACHE per node) for the next one, and freed once
 * none was taken or given back for QN_BUF_IDLE_NS (quic_node_trim, from
 * the node's one-second tick): kept for good, they were up to 2.1 MiB
 * resident on every node that ever served a download (the soak,
 * docs/LAB.md).
 *
 * Threads: any (serve threads take, packet workers give back, the node's
 * main thread trims); one mutex.
 */
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"
#include "weft/util.h"

/* A chunk answer (256 KiB + a few bytes of header) placed for O_DIRECT
 * (qn_op_new_at) fits a kept block. */
_Static_assert(sizeof(struct qn_op) + 64 + QUIC_NODE_WBUF_ALIGN + (256U << 10) <= QN_BUF_SIZE,
	       "a placed chunk answer fits QN_BUF_SIZE");

static int buf_class(size_t size)
{
	return size > QN_BUF_MIN && size <= QN_BUF_SIZE;
}


/* A block of the kept size handed out (under buf_mu). */
static void buf_out(struct quic_node *qn)
{
	if (++qn->buf_out > qn->buf_out_max)
		qn->buf_out_max = qn->buf_out;
}

static void *buf_get(struct quic_node *qn, size_t size)
{
	void *p = NULL;

	if (!buf_class(size))
		return malloc(size);
	pthread_mutex_lock(&qn->buf_mu);
	qn->buf_used_ns = util_now_ns();
	if (qn->nbuf) {
		p = qn->buf[--qn->nbuf];
		qn->buf_reused++;
	} else {
		qn->buf_allocated++; /* taken back below if malloc fails */
	}
	buf_out(qn);
	pthread_mutex_unlock(&qn->buf_mu);
	if (p)
		return p;
	/* outside the lock: a fresh block is an mmap() */
	p = malloc(QN_BUF_SIZE);
	if (!p) {
		pthread_mutex_lock(&qn->buf_mu);
		qn->buf_allocated--;
		qn->buf_out--;
		pthread_mutex_unlock(&qn->buf_mu);
	}
	return p;
}

static void buf_put(struct quic_node *qn, void *p, size_t size)
{
	if (!p)
		return;
	if (buf_class(size)) {
		pthread_mutex_lock(&qn->buf_mu);
		qn->buf_out--;
		if (qn->nbuf < QN_BUF_CACHE) {
			qn->buf[qn->nbuf++] = p;
			p = NULL;
		}
		qn->buf_used_ns = util_now_ns();
		pthread_mutex_unlock(&qn->buf_mu);
	}
	free(p);
}

size_t quic_node_trim(struct quic_node *qn, uint64_t now_ns)
{
	void *drop[QN_BUF_CACHE];
	size_t n = 0;

	if (!qn)
		return 0;
	pthread_mutex_lock(&qn->buf_mu);
	if (qn->nbuf && now_ns - qn->buf_used_ns >= QN_BUF_IDLE_NS) {
		n = qn->nbuf;
		memcpy(drop, qn->buf, n * sizeof(*drop));
		qn->nbuf = 0;
	}
	pthread_mutex_unlock(&qn->buf_mu);
	for (size_t i = 0; i < n; i++)
		free(drop[i]);
	return n;
}

void qn_op_free(void *arg)
{
	struct qn_op *op = arg;

	if (op) {
		if (op->release) /* lent bytes (quic_node_write_lent) go back */
			op->release(op->rarg);
		buf_put(op->qn, op, op->bsize);
	}
}

/* A command (write: with room for its data, which the caller fills) in a
 * block of bsize bytes; its data right after it, or (place) at the first
 * byte from which data + align_at is QUIC_NODE_WBUF_ALIGN-aligned. Freed
 * with qn_op_free(), also from a stream's queue (qn_wbuf.mem). */
static struct qn_op *op_block(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn,
			      size_t len, size_t bsize, size_t align_at, int place)
{
	struct qn_op *op = buf_get(qn, bsize);

	if (op) {
		uintptr_t d = (uintptr_t)(op + 1) + align_at;

		memset(op, 0, sizeof(*op));
		op->qn = qn;
		op->kind = kind;
		op->conn = conn;
		op->len = len;
		op->bsize = bsize;
		op->data = (uint8_t *)(op + 1);
		if (place)
			op->data += (QUIC_NODE_WBUF_ALIGN - d % QUIC_NODE_WBUF_ALIGN) %
				    QUIC_NODE_WBUF_ALIGN;
	}
	return op;
}

struct qn_op *qn_op_new(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn, size_t len)
{
	return op_block(qn, kind, conn, len, sizeof(struct qn_op) + len, 0, 0);
}

struct qn_op *qn_op_new_at(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn, size_t len,
			   size_t align_at)
{
	/* room for the worst placement: QUIC_NODE_WBUF_ALIGN - 1 bytes */
	return op_block(qn, kind, conn, len, sizeof(struct qn_op) + len + QUIC_NODE_WBUF_ALIGN,
			align_at, 1);
}

void qn_buf_drain(struct quic_node *qn)
{
	pthread_mutex_lock(&qn->buf_mu);
	while (qn->nbuf)
		free(qn->buf[--qn->nbuf]);
	pthread_mutex_unlock(&qn->buf_mu);
}
