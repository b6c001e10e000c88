// SPDX-License-Identifier: MIT
/*
 * Which stream of a connection sends next (userspace/quic/stream_buf.c,
 * quic_sbuf_next): round robin over the streams with bytes waiting, in
 * the order they began to wait, QUIC_SBUF_QUANTUM bytes a turn. A new
 * stream's small message goes out within one quantum per busy stream
 * ahead of it (the whole-backlog turns of the reverted 89dfa57 held it
 * behind every byte those streams had); long-waiting streams are served
 * in turn (newest first starved a downloader's oldest fetch streams:
 * docs/CONTENT.md "Fair, capped serving"); a stream blocked this round
 * is passed over and keeps its place; one that can never send again
 * leaves for good; a stream is found by its id through the hints and
 * never once it has left. Only the data structure: bytes are
 * queued and handed over as conn.c and conn_write.c do it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quic/quic_int.h"

#define PKT 1200 /* what one write hands to ngtcp2 in these tests */

static uint8_t bytes[64 * 1024];

/* What stream_send does: queue len bytes (len may exceed bytes[]). */
static void queue(struct quic_conn *c, struct quic_stream *s, size_t len)
{
	while (len) {
		size_t n = len < sizeof(bytes) ? len : sizeof(bytes);

		assert_int_equal(quic_sbuf_append(s, bytes, n), 0);
		len -= n;
	}
	quic_sbuf_wake(c, s);
}

/* What conn_write.c does with the stream it is given: one packet's worth
 * of its bytes (or what is left) handed to ngtcp2; the stream sent. */
static struct quic_stream *write_one(struct quic_conn *c)
{
	struct quic_stream *s = quic_sbuf_next(c);
	uint64_t left;

	if (!s)
		return NULL;
	left = s->total - s->sent;
	quic_sbuf_sent(c, s, left < PKT ? left : PKT, s->fin_queued);
	return s;
}

static struct quic_conn *conn_new(void)
{
	struct quic_conn *c = calloc(1, sizeof(*c));

	assert_non_null(c);
	c->flush_round = 1; /* as conn.c starts it */
	return c;
}

static void conn_free(struct quic_conn *c)
{
	while (c->streams) {
		struct quic_stream *s = c->streams;

		quic_sbuf_unlink(c, s);
		quic_sbuf_free(s);
	}
	assert_null(c->wq_head);
	assert_null(c->wq_tail);
	free(c);
}

/* A bulk stream reuses its acknowledged 64 KiB blocks (at most 2 kept
 * spare): the appends after an ACK take the blocks it released, and the
 * bytes read back are the bytes queued. Once everything queued is
 * acknowledged the spares are freed (a stream left open holds nothing). */
static void test_bulk_blocks_reused(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *s = quic_sbuf_new(c, 0);
	const size_t blk = 64 * 1024;
	uint8_t pat[4096];
	struct sblk *full;
	uint64_t off = 0;

	(void)state;
	assert_non_null(s);
	/* 4 KiB, 8, 16, 32, then 64 KiB blocks: a full one and one 4 KiB
	 * short of full. */
	for (size_t i = 0; i < (60 * 1024 + 2 * blk - 4096) / sizeof(pat); i++) {
		memset(pat, (int)(off / sizeof(pat)), sizeof(pat));
		assert_int_equal(quic_sbuf_append(s, pat, sizeof(pat)), 0);
		off += sizeof(pat);
	}
	assert_int_equal(s->head->cap, 4096);
	full = s->head->next->next->next->next;
	assert_int_equal(full->cap, blk);
	assert_ptr_equal(full->next, s->tail);
	/* Sent, acknowledged up to the tail: the full 64 KiB block becomes a
	 * spare (the 4-32 KiB ones are freed). */
	s->sent = s->total;
	quic_sbuf_ack(s, 60 * 1024 + blk);
	assert_ptr_equal(s->head, s->tail);
	assert_int_equal(s->nspare, 1);
	assert_ptr_equal(s->spare, full);
	/* The next full block comes from the spares, bytes as queued. */
	for (size_t i = 0; i < 2 * blk / sizeof(pat); i++) {
		memset(pat, 0xa5 ^ (int)i, sizeof(pat));
		assert_int_equal(quic_sbuf_append(s, pat, sizeof(pat)), 0);
		if (i == 1) { /* the first filled the tail */
			assert_ptr_equal(s->tail, full);
			assert_int_equal(s->nspare, 0);
			assert_null(s->spare);
		}
	}
	assert_memory_equal(full->data, (uint8_t[4096]){[0 ... 4095] = 0xa5 ^ 1}, 4096);
	/* Acknowledged but for the last byte: never more than 2 kept. */
	s->sent = s->total;
	quic_sbuf_ack(s, s->total - 1);
	assert_int_equal(s->nspare, 2);
	/* Everything acknowledged: no spare left. */
	quic_sbuf_ack(s, s->total);
	assert_int_equal(s->nspare, 0);
	assert_null(s->spare);
	quic_sbuf_unlink(c, s);
	quic_sbuf_free(s);
	conn_free(c);
}

static void test_small_message_within_a_round(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *big[3], *ctl, *s;
	size_t bytes_before = 0;
	int i, writes;

	(void)state;
	for (i = 0; i < 3; i++) {
		big[i] = quic_sbuf_new(c, 4 * i);
		queue(c, big[i], 1 << 20); /* a backlog of 1 MiB each */
	}
	/* big[0] is in the middle of its turn when the message comes */
	for (i = 0; i < 4; i++)
		assert_ptr_equal(write_one(c), big[0]);
	ctl = quic_sbuf_new(c, 12); /* newest of the list */
	queue(c, ctl, 40);
	for (writes = 0; (s = write_one(c)) != ctl; writes++) {
		assert_non_null(s);
		bytes_before += PKT;
	}
	/* the rest of big[0]'s turn, then big[1]'s and big[2]'s: one
	 * quantum (plus the write that crossed it) each, no more */
	assert_true(bytes_before <= 3 * (QUIC_SBUF_QUANTUM + PKT));
	assert_true(bytes_before >= 2 * QUIC_SBUF_QUANTUM);
	assert_int_equal(ctl->sent, 40);
	assert_false(ctl->wq_in); /* nothing left: out of the ring */
	conn_free(c);
}

static void test_served_in_turn(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *s[4];
	uint64_t got[4] = { 0 };
	int i, k, order[4];

	(void)state;
	/* opened a, b, c, d (the list is newest first); bytes came to c, a,
	 * d, b: that is the order of their first turns */
	for (i = 0; i < 4; i++)
		s[i] = quic_sbuf_new(c, 4 * i);
	queue(c, s[2], 1 << 20);
	queue(c, s[0], 1 << 20);
	queue(c, s[3], 1 << 20);
	queue(c, s[1], 1 << 20);
	for (k = 0; k < 4; k++) {
		struct quic_stream *first = quic_sbuf_next(c);

		for (i = 0; i < 4 && s[i] != first; i++)
			;
		order[k] = i;
		while (quic_sbuf_next(c) == first)
			write_one(c);
	}
	assert_int_equal(order[0], 2);
	assert_int_equal(order[1], 0);
	assert_int_equal(order[2], 3);
	assert_int_equal(order[3], 1);
	/* over many rounds every stream gets its share, none starves */
	for (k = 0; k < 400; k++) {
		struct quic_stream *w = write_one(c);

		for (i = 0; i < 4; i++)
			if (s[i] == w)
				got[i] += PKT;
	}
	for (i = 0; i < 4; i++) {
		assert_true(got[i] >= 400 * PKT / 4 - (QUIC_SBUF_QUANTUM + PKT));
		assert_true(got[i] <= 400 * PKT / 4 + (QUIC_SBUF_QUANTUM + PKT));
	}
	conn_free(c);
}

static void test_blocked_fin_and_leaving(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *a, *b, *d;

	(void)state;
	a = quic_sbuf_new(c, 0);
	b = quic_sbuf_new(c, 4);
	d = quic_sbuf_new(c, 8);
	assert_null(quic_sbuf_next(c));
	queue(c, a, 3000);
	queue(c, b, 500);
	/* a stream blocked this round (flow control) is passed over and
	 * keeps its place for the next round */
	a->blocked_round = c->flush_round;
	assert_ptr_equal(quic_sbuf_next(c), b);
	c->flush_round++; /* the next flush: no stream passed over */
	assert_ptr_equal(quic_sbuf_next(c), a);
	/* a FIN alone waits too, and leaves the ring once sent */
	d->fin_queued = 1;
	quic_sbuf_wake(c, d);
	assert_true(quic_sbuf_waiting(d));
	assert_ptr_equal(write_one(c), a);
	assert_ptr_equal(write_one(c), a);
	assert_ptr_equal(write_one(c), a); /* its 3000 bytes: done */
	assert_false(a->wq_in);
	assert_ptr_equal(write_one(c), b);
	assert_ptr_equal(write_one(c), d);
	assert_true(d->fin_sent);
	assert_null(quic_sbuf_next(c));
	/* bytes again: back in the ring, behind any waiting */
	queue(c, b, 10);
	queue(c, a, 10);
	assert_ptr_equal(write_one(c), b);
	/* a stream freed while waiting leaves the ring */
	quic_sbuf_unlink(c, a);
	quic_sbuf_free(a);
	assert_null(quic_sbuf_next(c));
	assert_null(c->wq_head);
	conn_free(c);
}

/* A stream ngtcp2 will take nothing more on (its write side reset, by us
 * or by the peer's STOP_SENDING): conn_write.c abandons it at the first
 * refusal; it leaves the ring, is not met again on later passes, and
 * bytes queued on it afterwards do not bring it back. */
static void test_abandoned_leaves_for_good(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *a, *b, *d;
	int k;

	(void)state;
	a = quic_sbuf_new(c, 0);
	b = quic_sbuf_new(c, 4);
	d = quic_sbuf_new(c, 8);
	queue(c, a, 1 << 20);
	queue(c, b, 1 << 20);
	queue(c, d, 1 << 20);
	assert_ptr_equal(quic_sbuf_next(c), a);
	quic_sbuf_abandon(c, b);
	assert_false(b->wq_in);
	assert_false(quic_sbuf_waiting(b));
	queue(c, b, 100);
	assert_false(b->wq_in);
	for (k = 0; k < 2000; k++) {
		struct quic_stream *w = write_one(c);

		if (!w)
			break;
		assert_ptr_not_equal(w, b);
	}
	assert_int_equal(a->sent, 1 << 20);
	assert_int_equal(d->sent, 1 << 20);
	assert_int_equal(b->sent, 0);
	assert_null(quic_sbuf_next(c));
	assert_null(c->wq_head);
	conn_free(c);
}

/* quic_sbuf_find: every stream by its id, many ids sharing each hint slot
 * (ids 4 x QUIC_SBUF_HINTS apart); a stream unlinked is not found, though
 * it was its slot's hint, and the slot's other streams still are. */
static void test_found_by_id(void **state)
{
	struct quic_conn *c = conn_new();
	struct quic_stream *s[3 * QUIC_SBUF_HINTS];
	const int n = 3 * QUIC_SBUF_HINTS;
	int64_t gone = 4 * (QUIC_SBUF_HINTS + 1);

	(void)state;
	for (int i = 0; i < n; i++)
		s[i] = quic_sbuf_new(c, 4 * i);
	for (int r = 0; r < 2; r++) /* the second pass hits the hints */
		for (int i = n - 1; i >= 0; i--)
			assert_ptr_equal(quic_sbuf_find(c, 4 * i), s[i]);
	assert_null(quic_sbuf_find(c, 4 * n));
	assert_null(quic_sbuf_find(c, 1)); /* another kind, same slot as 0 */
	assert_ptr_equal(quic_sbuf_find(c, gone), s[QUIC_SBUF_HINTS + 1]);
	quic_sbuf_unlink(c, s[QUIC_SBUF_HINTS + 1]);
	quic_sbuf_free(s[QUIC_SBUF_HINTS + 1]);
	assert_null(quic_sbuf_find(c, gone));
	assert_ptr_equal(quic_sbuf_find(c, 4), s[1]);
	assert_ptr_equal(quic_sbuf_find(c, gone + 4 * QUIC_SBUF_HINTS),
			 s[2 * QUIC_SBUF_HINTS + 1]);
	conn_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bulk_blocks_reused),
	    cmocka_unit_test(test_small_message_within_a_round),
	    cmocka_unit_test(test_served_in_turn),
	    cmocka_unit_test(test_blocked_fin_and_leaving),
	    cmocka_unit_test(test_abandoned_leaves_for_good),
	    cmocka_unit_test(test_found_by_id),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
