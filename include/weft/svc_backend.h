/* SPDX-License-Identifier: MIT */
/*
 * Local backend forwarder: carries a call's payload to a local TCP or
 * unix-socket server (a service registered with SVC_KIND_BACKEND) and
 * brings its answer back. This is the only part of the service module that
 * does I/O.
 *
 * Protocol with the backend ("raw" mode, inetd-like, so any program can be
 * a backend): one connection per call; weftd writes the payload, shuts
 * down its write side, and reads the response until the backend closes.
 * Deadline: one overall timeout per call. Response bounded by max_response.
 *
 * Threads: svc_backend_new() starts a small pool of workers that run
 * blocking calls (non-blocking sockets + poll, so the timeout holds for
 * connect, write and read alike). Jobs wait in a bounded FIFO.
 */
#ifndef WEFT_SVC_BACKEND_H
#define WEFT_SVC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "weft/svc.h"

/* Workers: 4. Backend calls are short and local; 4 overlap a slow one. */
#define SVC_BACKEND_DEFAULT_THREADS 4u
/* Queue: 1024 jobs, ~ the per-service concurrency cap; past it submit
 * returns -EAGAIN and the caller answers overloaded. */
#define SVC_BACKEND_DEFAULT_QUEUE 1024u
/* Per-call timeout: 5 s, when the request gives none. */
#define SVC_BACKEND_DEFAULT_TIMEOUT_MS 5000u
/* Response cap: 1 MiB, the same as the call payload cap. */
#define SVC_BACKEND_DEFAULT_MAX_RESPONSE (1024u * 1024u)

/*
 * One synchronous call to the backend at addr ("tcp:IP:PORT", "[V6]:PORT"
 * after "tcp:", or "unix:/path"). On SVC_OK *resp (malloc'd, caller frees;
 * NULL when empty) and *resp_len hold the answer. Returns an enum svc_err:
 * SVC_OK; SVC_ERR_BAD_REQUEST (addr unparsable); SVC_ERR_BACKEND_ERROR
 * (connect refused, reset, ...); SVC_ERR_TIMEOUT; SVC_ERR_TOO_LARGE
 * (response over max_response). Never returns a negative value.
 */
int svc_backend_call(const char *addr, const uint8_t *payload, size_t len, uint32_t timeout_ms,
		     size_t max_response, uint8_t **resp, size_t *resp_len);

/*
 * Connect to a backend address (as for svc_backend_call) within timeout_ms
 * (0 = the default) and return the connected, blocking socket (caller
 * closes), or -EINVAL (addr), -ETIMEDOUT, -ECONNREFUSED or -errno. Used by
 * the HTTP pass-through, which relays a byte stream rather than one call.
 */
int svc_backend_connect(const char *addr, uint32_t timeout_ms);

struct svc_backend_opts {
	uint32_t threads;      /* SVC_BACKEND_DEFAULT_THREADS */
	uint32_t queue;	       /* SVC_BACKEND_DEFAULT_QUEUE */
	uint32_t timeout_ms;   /* SVC_BACKEND_DEFAULT_TIMEOUT_MS */
	uint32_t max_response; /* SVC_BACKEND_DEFAULT_MAX_RESPONSE */
};

/*
 * Completion: runs on a worker thread (hand the result to the engine
 * through its command queue). err is an enum svc_err as for
 * svc_backend_call(); resp (len bytes) is owned by the callee: free() it.
 * On svc_backend_free() queued jobs complete with SVC_ERR_OVERLOADED.
 */
typedef void (*svc_backend_done_fn)(void *ctx, int err, uint8_t *resp, size_t len);

struct svc_backend;

/* 0, -EINVAL, -ENOMEM or -errno from pthread_create. */
int svc_backend_new(struct svc_backend **out, const struct svc_backend_opts *opts);
/* Stops the workers (waits for calls in progress); NULL-safe. */
void svc_backend_free(struct svc_backend *b);

/*
 * Queue a call; the payload is copied. timeout_ms 0 = the default.
 * Returns 0 (done() will run exactly once), -EINVAL, -EAGAIN (queue full)
 * or -ENOMEM.
 */
int svc_backend_submit(struct svc_backend *b, const char *addr, const uint8_t *payload, size_t len,
		       uint32_t timeout_ms, svc_backend_done_fn done, void *ctx);

#endif
