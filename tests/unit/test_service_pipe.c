// SPDX-License-Identifier: MIT
/*
 * The gateway's pass-through pipe (svc_calls.c): a lock-free
 * single-producer single-consumer queue of byte chunks between the
 * fabric's owner and a gateway thread. Checked: 8 MiB in chunks of
 * seeded random sizes through a 64 KiB pipe arrive byte for byte and in
 * order while the producer backs off on -EAGAIN; the bound holds; a read
 * with nothing to read ends at its deadline; the end's class reaches the
 * reader after the last byte; a reader that leaves makes writes fail with
 * -ECANCELED; stopping ends a wait with -ESHUTDOWN.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service/svc_node_int.h"
#include "service/svc_pipe_int.h"
#include "testutil.h"
#include "weft/util.h"

#define TOTAL (8u << 20)
#define CAP (64u << 10)

static _Atomic int stopping;

struct prod {
	struct svcn_pipe *p;
	const uint8_t *src;
	uint64_t again; /* -EAGAIN answers: the bound held */
	int err;
};

static void *prod_main(void *arg)
{
	struct prod *w = arg;
	uint64_t seed = 7;
	size_t off = 0;

	while (off < TOTAL) {
		size_t len;
		int e;

		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		len = 1 + seed % 20000;
		if (len > TOTAL - off)
			len = TOTAL - off;
		e = svcn_pipe_write(w->p, w->src + off, len);
		if (e == -EAGAIN) {
			w->again++;
			sched_yield();
			continue;
		}
		if (e) {
			w->err = e;
			break;
		}
		off += len;
	}
	svcn_pipe_end(w->p, SVC_OK, 1);
	svcn_pipe_put(w->p);
	return NULL;
}

static void test_bytes_in_order(void **state)
{
	uint8_t *src = malloc(TOTAL), *dst = malloc(TOTAL), buf[7000];
	struct prod w = {0};
	pthread_t th;
	size_t got = 0;
	long n;

	(void)state;
	assert_non_null(src);
	assert_non_null(dst);
	tu_fill(src, TOTAL, 11);
	w.p = svcn_pipe_new(&stopping, CAP);
	assert_non_null(w.p);
	w.src = src;
	assert_int_equal(pthread_create(&th, NULL, prod_main, &w), 0);
	for (;;) {
		n = svcn_pipe_read(w.p, buf, sizeof(buf), util_now_ns() + 30000000000ull);
		assert_true(n >= 0);
		if (n == 0)
			break;
		assert_true(got + (size_t)n <= TOTAL);
		memcpy(dst + got, buf, (size_t)n);
		got += (size_t)n;
		assert_true(atomic_load(&w.p->queued) <= CAP);
	}
	pthread_join(th, NULL);
	assert_int_equal(w.err, 0);
	assert_int_equal(got, TOTAL);
	assert_memory_equal(src, dst, TOTAL);
	assert_int_equal(w.p->cls, SVC_OK);
	assert_true(w.p->ok);
	svcn_pipe_close(w.p);
	free(src);
	free(dst);
}

static void test_bound_deadline_end(void **state)
{
	struct svcn_pipe *p = svcn_pipe_new(&stopping, 100);
	uint8_t b[200] = {1, 2, 3};
	uint64_t t0;

	(void)state;
	assert_non_null(p);
	assert_int_equal(svcn_pipe_write(p, b, 60), 0);
	assert_int_equal(svcn_pipe_write(p, b, 41), -EAGAIN); /* 101 > 100 */
	assert_int_equal(svcn_pipe_write(p, b, 40), 0);
	assert_int_equal(svcn_pipe_read(p, b, sizeof(b), util_now_ns()), 100);
	/* Empty: the read ends at its deadline, not before. */
	t0 = util_now_ns();
	assert_int_equal(svcn_pipe_read(p, b, sizeof(b), t0 + 50000000ull), -ETIMEDOUT);
	assert_true(util_now_ns() >= t0 + 50000000ull);
	/* The last bytes, then the end with its class. */
	assert_int_equal(svcn_pipe_write(p, b, 5), 0);
	svcn_pipe_end(p, SVC_ERR_TIMEOUT, 0);
	assert_int_equal(svcn_pipe_read(p, b, sizeof(b), util_now_ns()), 5);
	assert_int_equal(svcn_pipe_read(p, b, sizeof(b), util_now_ns()), 0);
	assert_int_equal(p->cls, SVC_ERR_TIMEOUT);
	assert_false(p->ok);
	svcn_pipe_put(p); /* the producer's */
	svcn_pipe_close(p);
}

static void test_reader_leaves_and_stop(void **state)
{
	struct svcn_pipe *p = svcn_pipe_new(&stopping, 100);
	uint8_t b[8] = {0};

	(void)state;
	assert_non_null(p);
	atomic_store(&stopping, 1);
	assert_int_equal(svcn_pipe_read(p, b, sizeof(b), util_now_ns() + 60000000000ull),
			 -ESHUTDOWN);
	atomic_store(&stopping, 0);
	svcn_pipe_close(p); /* the reader leaves */
	assert_int_equal(svcn_pipe_write(p, b, 1), -ECANCELED);
	svcn_pipe_end(p, SVC_ERR_OVERLOADED, 0);
	svcn_pipe_put(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bytes_in_order),
	    cmocka_unit_test(test_bound_deadline_end),
	    cmocka_unit_test(test_reader_leaves_and_stop),
	};

	return cmocka_run_group_tests_name("service_pipe", tests, NULL, NULL);
}
