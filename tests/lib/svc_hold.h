/* SPDX-License-Identifier: MIT */
/*
 * Hold a service fabric's owner (its backend thread) from a test: a
 * message posted to it that waits on a semaphore until the test lets go,
 * at most SVC_HOLD_MAX_S (then timed_out is set: the test should fail).
 */
#ifndef WEFT_TEST_SVC_HOLD_H
#define WEFT_TEST_SVC_HOLD_H

#include <semaphore.h>

#include "weft/svc_backend.h"

#define SVC_HOLD_MAX_S 20

struct svc_node;

struct svc_hold {
	struct svc_backend_msg m;
	sem_t running, release;
	int timed_out;
};

/* Post the hold to sn's owner; returns once the owner runs it (fails the
 * test when it cannot be posted). h must stay until svc_hold_done. */
void svc_hold_start(struct svc_node *sn, struct svc_hold *h);
/* Let the owner go (returns at once). */
void svc_hold_release(struct svc_hold *h);
/* After the owner went on: 0, or -ETIMEDOUT when the hold ended by
 * itself. Releases h's semaphores. */
int svc_hold_done(struct svc_hold *h);

#endif
