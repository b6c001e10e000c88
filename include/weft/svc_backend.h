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
 * Threads: svc_backend_new() starts one thread (owned by the handle,
 * joined by svc_backend_free) with an epoll loop over non-blocking
 * sockets: no thread per request. Every request has a deadline; requests
 * in progress are bounded node-wide and per service. The synchronous
 * svc_backend_call() below is for tools and tests.
 */
#ifndef WEFT_SVC_BACKEND_H
#define WEFT_SVC_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "weft/svc.h"

/* Requests in progress (one socket each): 1024 node-wide, within the
 * default open-file limit next to QUIC and the store; 256 per service, so
 * that a stalled backend leaves room for the others. Past either, submit
 * returns -EBUSY and the caller answers overloaded (svc.backend_max_*). */
#define SVC_BACKEND_DEFAULT_MAX_INFLIGHT 1024u
#define SVC_BACKEND_DEFAULT_MAX_PER_SERVICE 256u
/* Per-call timeout: 5 s, when the request gives none (callers clamp what
 * a peer asks for to svc.max_timeout_ms first). */
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

struct svc_backend_opts {
	uint32_t max_inflight;	  /* SVC_BACKEND_DEFAULT_MAX_INFLIGHT */
	uint32_t max_per_service; /* SVC_BACKEND_DEFAULT_MAX_PER_SERVICE */
	uint32_t timeout_ms;	  /* SVC_BACKEND_DEFAULT_TIMEOUT_MS */
	uint32_t max_response;	  /* SVC_BACKEND_DEFAULT_MAX_RESPONSE */
	/* Optional: run on the backend thread after every pass of its loop
	 * (messages, I/O, deadlines), tick_ctx as argument; returns the
	 * CLOCK_MONOTONIC time (ns, util_now_ns) by which it wants to run
	 * again, UINT64_MAX for none. The service fabric's timers. It must
	 * not block. Not run once svc_backend_free() began. */
	uint64_t (*tick)(void *ctx, uint64_t now_ns);
	void *tick_ctx;
};

/*
 * Call completion: runs on the backend thread (never with the caller's
 * locks held). err is an enum svc_err as for svc_backend_call(), plus
 * SVC_ERR_OVERLOADED when svc_backend_free() ends the call; resp (len
 * bytes) is owned by the callee: free() it.
 */
typedef void (*svc_backend_done_fn)(void *ctx, int err, uint8_t *resp, size_t len);

/*
 * Where a stream's bytes go (HTTP pass-through), on the backend thread.
 * data: the next bytes from the backend (len may be 0), fin = 1 once the
 * backend closed (then buf is empty). Return 0 when taken, -EAGAIN when
 * the sink is full: the same bytes are offered again 2 ms later and the
 * backend is not read meanwhile; any other negative value ends the stream.
 * end: exactly once, last; err SVC_OK (fin taken), SVC_ERR_TIMEOUT (no
 * byte taken for the timeout), SVC_ERR_BACKEND_ERROR, SVC_ERR_BAD_REQUEST
 * (address), SVC_ERR_OVERLOADED (svc_backend_free).
 */
struct svc_backend_sink {
	int (*data)(void *ctx, const uint8_t *buf, size_t len, int fin);
	void (*end)(void *ctx, int err);
};

struct svc_backend;

/* Starts the backend thread. 0, -EINVAL, -ENOMEM or -errno. */
int svc_backend_new(struct svc_backend **out, const struct svc_backend_opts *opts);
/* Ends every request in progress at once (their callbacks run with
 * SVC_ERR_OVERLOADED before it returns), stops the thread, frees.
 * Never waits on a backend. NULL-safe. */
void svc_backend_free(struct svc_backend *b);

/*
 * Start a call; the payload is copied. service (may be NULL) is the name
 * the per-service bound counts against. timeout_ms 0 = the default; it is
 * one deadline for connect, write and the whole answer. Returns 0 (done()
 * will run exactly once), -EINVAL, -EBUSY (over max_inflight or
 * max_per_service: answer overloaded), -ESHUTDOWN or -ENOMEM.
 */
int svc_backend_submit(struct svc_backend *b, const char *addr, const char *service,
		       const uint8_t *payload, size_t len, uint32_t timeout_ms,
		       svc_backend_done_fn done, void *ctx);

/*
 * Start a stream: write req (copied), then hand every byte the backend
 * sends to sink until it closes. timeout_ms (0 = default) bounds connect
 * + write + the first bytes, then every wait for progress (bytes read and
 * taken by the sink). sink must outlive the stream. Returns as
 * svc_backend_submit (0: sink->end will run exactly once).
 */
int svc_backend_stream(struct svc_backend *b, const char *addr, const char *service,
		       const uint8_t *req, size_t len, uint32_t timeout_ms,
		       const struct svc_backend_sink *sink, void *ctx);

/*
 * The backend thread is also the service fabric's owner: work handed to it
 * from other threads (QUIC stream events from packet workers, DHT
 * completions) is a message run on its loop, in the order each producer
 * posted. The message is intrusive (embed it; fn frees it). Posting never
 * blocks and takes no lock: a lock-free multi-producer queue (one atomic
 * exchange) and an eventfd wake-up only when the loop may be asleep.
 * Bounds are the poster's business (it knows what a message holds).
 * cancel = 1: the loop is gone (svc_backend_free): release, do nothing.
 */
struct svc_backend_msg {
	struct svc_backend_msg *_Atomic next;
	void (*fn)(struct svc_backend_msg *m, int cancel);
};
/* Post m: 0, or -ESHUTDOWN (no loop: m untouched). Any thread. */
int svc_backend_post(struct svc_backend *b, struct svc_backend_msg *m);
/* 1 when called on the backend thread itself (the fabric's owner), else 0. */
int svc_backend_on_loop(const struct svc_backend *b);

/* One more descriptor in the backend thread's loop: the service streams'
 * own epoll set (svc_stream.c). fn(ctx) runs on the loop whenever fd is
 * readable (level-triggered), until svc_backend_free. One per backend.
 * Returns 0, -EBUSY (one is watched already) or -errno. */
int svc_backend_watch(struct svc_backend *b, int fd, void (*fn)(void *ctx), void *ctx);

/* A backend address ("tcp:IP:PORT", "tcp:[V6]:PORT", "unix:/path") as a
 * socket address: 0 or -EINVAL. */
struct sockaddr_storage;
int svc_backend_parse_addr(const char *addr, struct sockaddr_storage *ss, unsigned int *sl);

struct svc_backend_stats {
	uint32_t inflight; /* requests in progress */
	uint64_t busy;	   /* refused by a bound */
	uint64_t timeouts; /* ended by their deadline */
};
void svc_backend_stats(struct svc_backend *b, struct svc_backend_stats *st);

#endif
