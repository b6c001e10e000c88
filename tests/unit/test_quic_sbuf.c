// SPDX-License-Identifier: MIT
/*
 * Which stream of a connection sends next (userspace/quic/stream_buf.c,
 * quic_sbuf_next): the one whose bytes have waited longest, whatever
 * the order the streams were opened in (newest first starved a
 * downloader's oldest fetch streams until their requests timed out:
 * docs/CONTENT.md "Fair, capped serving"); a stream fed without pause
 * takes a new turn behind the others once its turn's bytes are sent; a
 * stream blocked this round is passed over. Only the data structure:
 * the turns are taken as conn.c's stream_send takes them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quic/quic_int.h"

static uint8_t bytes[1000];

/* What stream_send does: queue, and a stream that had nothing waiting
 * takes its turn. */
static void queue(struct quic_conn *c, struct quic_stream *s, size_t len)
{
	int was = quic_sbuf_waiting(s);

	assert_int_equal(quic_sbuf_append(s, bytes, len), 0);
	if (!was && quic_sbuf_waiting(s))
		quic_sbuf_take_turn(c, s);
}

/* What conn_write.c does with the stream given: n bytes of it sent. */
static void send_n(struct quic_stream *s, size_t n)
{
	s->sent += n;
	assert_true(s->sent <= s->total);
}

static void free_all(struct quic_conn *c)
{
	while (c->streams) {
		struct quic_stream *s = c->streams;

		quic_sbuf_unlink(c, s);
		quic_sbuf_free(s);
	}
	free(c);
}

static void test_oldest_waiting_first(void **state)
{
	struct quic_conn *c = calloc(1, sizeof(*c));
	struct quic_stream *a, *b, *d;

	(void)state;
	assert_non_null(c);
	a = quic_sbuf_new(c, 0);
	b = quic_sbuf_new(c, 4);
	d = quic_sbuf_new(c, 8); /* the list is newest first: d, b, a */
	assert_null(quic_sbuf_next(c));
	queue(c, b, 500);
	queue(c, a, 500);
	queue(c, d, 500);
	/* b's bytes came first: b until they are all sent */
	assert_ptr_equal(quic_sbuf_next(c), b);
	send_n(b, 200);
	assert_ptr_equal(quic_sbuf_next(c), b);
	send_n(b, 300);
	assert_ptr_equal(quic_sbuf_next(c), a);
	/* b's next answer waits behind a and d */
	queue(c, b, 100);
	send_n(a, 500);
	assert_ptr_equal(quic_sbuf_next(c), d);
	/* a stream blocked this round (flow control) is passed over */
	d->round_blocked = 1;
	assert_ptr_equal(quic_sbuf_next(c), b);
	d->round_blocked = 0;
	assert_ptr_equal(quic_sbuf_next(c), d);
	send_n(d, 500);
	assert_ptr_equal(quic_sbuf_next(c), b);
	send_n(b, 100);
	assert_null(quic_sbuf_next(c));
	free_all(c);
}

static void test_fed_stream_takes_turns(void **state)
{
	struct quic_conn *c = calloc(1, sizeof(*c));
	struct quic_stream *bulk, *small;

	(void)state;
	assert_non_null(c);
	bulk = quic_sbuf_new(c, 0);
	small = quic_sbuf_new(c, 4);
	queue(c, bulk, 1000);
	send_n(bulk, 400);
	/* more for bulk while its turn runs: they wait for a new turn,
	 * taken once the 1000 bytes queued when this one began are sent */
	queue(c, bulk, 1000);
	queue(c, small, 10);
	assert_ptr_equal(quic_sbuf_next(c), bulk);
	send_n(bulk, 600); /* its first turn's bytes are out */
	assert_ptr_equal(quic_sbuf_next(c), small);
	send_n(small, 10);
	assert_ptr_equal(quic_sbuf_next(c), bulk);
	send_n(bulk, 1000);
	assert_null(quic_sbuf_next(c));
	/* a FIN alone is waiting too, and takes its turn */
	bulk->fin_queued = 1;
	assert_true(quic_sbuf_waiting(bulk));
	assert_ptr_equal(quic_sbuf_next(c), bulk);
	free_all(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_oldest_waiting_first),
	    cmocka_unit_test(test_fed_stream_takes_turns),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
