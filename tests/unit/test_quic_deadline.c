// SPDX-License-Identifier: MIT
/*
 * An endpoint's deadline heap (userspace/quic/ep_deadline.c), on its own:
 * connections in their closing period, whose expiry is their
 * close_deadline, are linked, touched after their deadline changes,
 * taken when due and unlinked, in a random order against a plain array
 * that says what the earliest deadline is and which connections are due.
 * Each taken connection is due and none due is left; the heap's next
 * deadline is the array's minimum after every step; unlinking one that is
 * still on the touched list takes it off. The endpoints driven end to end
 * (tests/unit/quic_sim.h, test builds of quic_ep_run_expiry) check the
 * heap against a scan of every connection on each pass.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "quic/quic_int.h"

#define N 200

static struct quic_ep ep;
static struct quic_conn conns[N];
static int linked[N], pending[N]; /* pending: taken, not touched since */

static uint64_t xrand(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static void set_deadline(int i, uint64_t t)
{
	conns[i].close_deadline = t;
	quic_conn_touch(&conns[i]);
	pending[i] = 0;
}

/* The earliest deadline of the linked connections not taken. */
static uint64_t model_next(void)
{
	uint64_t t = UINT64_MAX;

	for (int i = 0; i < N; i++)
		if (linked[i] && !pending[i] && conns[i].close_deadline < t)
			t = conns[i].close_deadline;
	return t;
}

static void test_heap_against_model(void **state)
{
	uint64_t seed = 0x9e3779b97f4a7c15ULL, now = 1000;

	(void)state;
	memset(&ep, 0, sizeof(ep));
	for (int i = 0; i < N; i++) {
		memset(&conns[i], 0, sizeof(conns[i]));
		conns[i].ep = &ep;
		conns[i].state = QUIC_ST_CLOSING;
	}
	assert_int_equal(quic_dl_reserve(&ep, N), 0);
	assert_true(ep.dl_cap >= N);
	assert_int_equal(quic_dl_next(&ep), UINT64_MAX);

	for (int step = 0; step < 20000; step++) {
		int i = (int)(xrand(&seed) % N);
		unsigned int op = (unsigned int)(xrand(&seed) % 8);

		if (!linked[i]) {
			conns[i].close_deadline = now + xrand(&seed) % 5000;
			quic_dl_link(&ep, &conns[i]);
			linked[i] = 1;
			pending[i] = 0;
		} else if (op == 0) {
			quic_dl_unlink(&ep, &conns[i]);
			linked[i] = 0;
			assert_int_equal(conns[i].dl_idx, 0);
			assert_int_equal(conns[i].dl_dirty, 0);
		} else if (op <= 3) {
			/* later or earlier, possibly already past */
			set_deadline(i, now - 100 + xrand(&seed) % 6000);
		} else if (op == 4) {
			struct quic_conn *c, *n;

			now += xrand(&seed) % 700;
			quic_dl_refresh(&ep);
			for (c = quic_dl_take_due(&ep, now); c; c = n) {
				int k = (int)(c - conns);

				n = c->due_next;
				assert_true(linked[k]);
				assert_true(c->close_deadline <= now);
				assert_int_equal(c->dl_idx, 0);
				assert_int_equal(c->dl_dirty, 1); /* touched: back in at refresh */
				pending[k] = 1;
			}
			for (int k = 0; k < N; k++)
				if (linked[k] && !pending[k])
					assert_true(conns[k].close_deadline > now);
			/* a taken connection's timer moves its deadline on */
			for (int k = 0; k < N; k++)
				if (pending[k])
					set_deadline(k, now + 1 + xrand(&seed) % 3000);
		}
		quic_dl_refresh(&ep);
		assert_true(ep.dl_dirty == NULL);
		assert_int_equal(quic_dl_next(&ep), model_next());
	}
	for (int i = 0; i < N; i++)
		if (linked[i])
			quic_dl_unlink(&ep, &conns[i]);
	assert_int_equal(ep.dl_n, 0);
	free(ep.dl);
}

/* A connection not linked yet (inside quic_conn_new) is never listed. */
static void test_touch_before_link(void **state)
{
	struct quic_ep e;
	struct quic_conn c;

	(void)state;
	memset(&e, 0, sizeof(e));
	memset(&c, 0, sizeof(c));
	c.ep = &e;
	c.state = QUIC_ST_CLOSING;
	c.close_deadline = 5;
	quic_conn_touch(&c);
	assert_true(e.dl_dirty == NULL);
	assert_int_equal(quic_dl_reserve(&e, 1), 0);
	quic_dl_link(&e, &c);
	assert_true(e.dl_dirty == &c);
	/* touched twice, listed once */
	quic_conn_touch(&c);
	assert_true(c.dl_next == NULL);
	quic_dl_refresh(&e);
	assert_int_equal(quic_dl_next(&e), 5);
	assert_true(quic_dl_take_due(&e, 4) == NULL);
	assert_true(quic_dl_take_due(&e, 5) == &c);
	assert_int_equal(quic_dl_next(&e), UINT64_MAX);
	/* unlinked while on the touched list */
	quic_dl_unlink(&e, &c);
	assert_true(e.dl_dirty == NULL);
	free(e.dl);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_heap_against_model),
	    cmocka_unit_test(test_touch_before_link),
	};

	return cmocka_run_group_tests_name("quic_deadline", tests, NULL, NULL);
}
