// SPDX-License-Identifier: MIT
/*
 * The job event stream's hub (userspace/content/events.c), without a
 * node: a reader that keeps up gets every line in order; one that does not
 * read is dropped once CN_EV_QUEUE lines wait for it (its read then gives
 * what was queued, then -EPIPE), and the others are not held back; a job
 * filter sees only its job; at most CN_EV_SUBS subscribers; lines are
 * never split; a read with nothing queued returns 0 after its wait.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "content/content_node_int.h"

static struct content_node *fake_node(void)
{
	struct content_node *cn = calloc(1, sizeof(*cn));

	assert_non_null(cn);
	pthread_mutex_init(&cn->jmu, NULL); /* no jobs: the ticker finds none */
	return cn;
}

static void test_slow_reader_dropped(void **state)
{
	struct content_node *cn = fake_node();
	struct cn_events *ev;
	struct cn_evsub *fast, *slow, *other, *subs[CN_EV_SUBS];
	char buf[CN_EV_LINE * 4], line[64];
	unsigned int got = 0, n = 0;
	long r;

	(void)state;
	assert_int_equal(cn_events_new(&ev, cn, 10), 0);
	assert_int_equal(cn_events_sub(ev, 0, &fast), 0);
	assert_int_equal(cn_events_sub(ev, 7, &slow), 0);
	assert_int_equal(cn_events_sub(ev, 8, &other), 0);
	/* nothing queued: 0 after the wait */
	assert_int_equal(cn_events_read(ev, fast, buf, sizeof(buf), 20), 0);
	for (unsigned int i = 0; i < 3 * CN_EV_QUEUE; i++) {
		int len = snprintf(line, sizeof(line),
				   "{\"event\":\"progress\",\"job\":7,\"n\":%u}\n", i);

		cn_events_publish(ev, 7, line, (size_t)len);
		/* the fast reader keeps up */
		while ((r = cn_events_read(ev, fast, buf, sizeof(buf), 0)) > 0) {
			for (char *p = buf; p < buf + r; p = strchr(p, '\n') + 1) {
				unsigned int k;

				assert_int_equal(
				    sscanf(p, "{\"event\":\"progress\",\"job\":7,\"n\":%u}", &k),
				    1);
				assert_int_equal(k, got);
				got++;
			}
		}
	}
	assert_int_equal(got, 3 * CN_EV_QUEUE);
	/* the slow one: what was queued before it overflowed, then dropped */
	while ((r = cn_events_read(ev, slow, buf, sizeof(buf), 0)) > 0)
		for (char *p = buf; p < buf + r; p = strchr(p, '\n') + 1)
			n++;
	assert_int_equal(n, CN_EV_QUEUE);
	assert_int_equal(r, -EPIPE);
	assert_int_equal(cn_events_dropped(ev), 1);
	/* the filter: job 8 saw none of job 7's lines */
	assert_int_equal(cn_events_read(ev, other, buf, sizeof(buf), 0), 0);
	/* a buffer too small for one line: nothing taken */
	cn_events_publish(ev, 8, "{\"event\":\"progress\",\"job\":8}\n", 30);
	assert_int_equal(cn_events_read(ev, other, buf, 10, 0), -EMSGSIZE);
	assert_int_equal(cn_events_read(ev, other, buf, sizeof(buf), 0), 30);
	/* bounded subscribers */
	cn_events_unsub(ev, slow);
	for (unsigned int i = 0; i < CN_EV_SUBS - 2; i++)
		assert_int_equal(cn_events_sub(ev, 0, &subs[i]), 0);
	assert_int_equal(cn_events_sub(ev, 0, &slow), -EBUSY);
	for (unsigned int i = 0; i < CN_EV_SUBS - 2; i++)
		cn_events_unsub(ev, subs[i]);
	cn_events_unsub(ev, fast);
	cn_events_unsub(ev, other);
	cn_events_free(ev);
	pthread_mutex_destroy(&cn->jmu);
	free(cn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_slow_reader_dropped),
	};

	return cmocka_run_group_tests_name("content_events", tests, NULL, NULL);
}
