// SPDX-License-Identifier: MIT
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "service/svc_node_int.h"
#include "svc_hold.h"

static void hold_run(struct svc_backend_msg *m, int cancel)
{
	struct svc_hold *h = (struct svc_hold *)m;
	struct timespec ts;

	sem_post(&h->running);
	if (cancel)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += SVC_HOLD_MAX_S;
	while (sem_timedwait(&h->release, &ts))
		if (errno != EINTR) {
			h->timed_out = 1;
			return;
		}
}

void svc_hold_start(struct svc_node *sn, struct svc_hold *h)
{
	memset(h, 0, sizeof(*h));
	sem_init(&h->running, 0, 0);
	sem_init(&h->release, 0, 0);
	h->m.fn = hold_run;
	assert_int_equal(svc_backend_post(sn->backend, &h->m), 0);
	assert_int_equal(sem_wait(&h->running), 0);
}

void svc_hold_release(struct svc_hold *h)
{
	sem_post(&h->release);
}

int svc_hold_done(struct svc_hold *h)
{
	sem_destroy(&h->running);
	sem_destroy(&h->release);
	return h->timed_out ? -ETIMEDOUT : 0;
}
