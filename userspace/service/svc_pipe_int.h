/* SPDX-License-Identifier: MIT */
/*
 * svc_pipe.c: the gateway's byte pipe (its pass-through's answer, from the
 * owner to the gateway thread). The owner's side that starts a
 * pass-through is svc_passthru.c (svcn_http_start, svc_calls_int.h).
 */
#ifndef WEFT_SVC_PIPE_INT_H
#define WEFT_SVC_PIPE_INT_H

#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The gateway's pass-through reader: a single-producer (the owner, or the
 * backend sink on the owner) single-consumer (the gateway thread) queue
 * of byte chunks, lock-free (each chunk is linked with one release store),
 * at most svc.http_buffer bytes queued; the consumer sleeps on its own
 * semaphore. Two references: reader and producer. */
struct svcn_chunk {
	struct svcn_chunk *_Atomic next;
	size_t len, off;
	uint8_t data[];
};
struct svcn_pipe {
	atomic_int refs;
	sem_t sem;
	atomic_int sleeping; /* the reader waits: the producer posts sem */
	atomic_int closed;   /* the reader left: the producer stops */
	atomic_int ended;    /* the producer is done; cls, ok, start_err are set */
	int cls;	     /* enum svc_err of the end (SVC_OK: fin) */
	int ok;		     /* ended with every byte (fin) */
	int start_err;	     /* the pass-through never started: -errno */
	size_t cap;
	atomic_size_t queued;	     /* bytes in the queue */
	struct svcn_chunk *head;     /* the reader's: consumed stub */
	struct svcn_chunk *tail;     /* the producer's: last linked */
	const _Atomic int *stopping; /* the fabric's: the reader leaves */
};
/* A pipe of at most cap queued bytes, two references (reader and
 * producer); its reader leaves its waits once *stopping is set. NULL:
 * out of memory. */
struct svcn_pipe *svcn_pipe_new(const _Atomic int *stopping, size_t cap);
/* Producer side (the owner): 0, -EAGAIN (no room for len), -ECANCELED
 * (the reader left). end: once, last (cls an enum svc_err). */
int svcn_pipe_write(struct svcn_pipe *p, const uint8_t *buf, size_t len);
void svcn_pipe_end(struct svcn_pipe *p, int cls, int ok);
void svcn_pipe_put(struct svcn_pipe *p);
/* Up to max bytes out of p into buf, waiting until deadline_ns for one:
 * > 0 bytes, 0 ended (see cls, ok, start_err), -ETIMEDOUT, -ESHUTDOWN. */
long svcn_pipe_read(struct svcn_pipe *p, uint8_t *buf, size_t max, uint64_t deadline_ns);
/* The reader leaves (the owner cancels the stream at its next look). */
void svcn_pipe_close(struct svcn_pipe *p);

#endif
