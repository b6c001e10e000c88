/* SPDX-License-Identifier: MIT */
/*
 * Local backend forwarder: carries a call to a local TCP or unix-socket
 * HTTP/1.1 server (a service registered with SVC_KIND_BACKEND) and brings
 * its answer back. This is the only part of the service module that does
 * I/O.
 *
 * The backend contract (docs/SERVICE.md, "Backend contract"): a call is
 * POST /<method> with the Weft-* headers (caller key, request id,
 * deadline, the caller's signed assertion) on a keep-alive connection
 * from a bounded pool per backend address; the answer's HTTP status gives
 * the call's status and error class. Responses are parsed strictly
 * (backend_http.c). HTTP pass-through streams carry the gateway's request
 * as is, on a connection of their own.
 *
 * Threads: svc_backend_new() starts one thread (owned by the handle,
 * joined by svc_backend_free) with an epoll loop over non-blocking
 * sockets, or, hosted, runs that loop in another thread's turns
 * (svc_backend_step): no thread per request. Every request has a deadline; requests
 * in progress are bounded node-wide and per service.
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
/* Keep-alive connections per backend address: 64 (busy, connecting or
 * idle). More calls at once wait for one (within their deadline); 64 is
 * more than a threaded backend usually runs workers, and far below the
 * per-service bound, so one backend never holds every socket. */
#define SVC_BACKEND_DEFAULT_POOL_CONNS 64u
/* An idle connection is closed after 4 s: under the 5 s keep-alive of
 * Node.js and most servers, so weftd closes first and rarely writes on a
 * connection the backend is closing. */
#define SVC_BACKEND_DEFAULT_IDLE_MS 4000u

struct svc_backend_opts {
	uint32_t max_inflight;	  /* SVC_BACKEND_DEFAULT_MAX_INFLIGHT */
	uint32_t max_per_service; /* SVC_BACKEND_DEFAULT_MAX_PER_SERVICE */
	uint32_t timeout_ms;	  /* SVC_BACKEND_DEFAULT_TIMEOUT_MS */
	uint32_t max_response;	  /* SVC_BACKEND_DEFAULT_MAX_RESPONSE */
	uint32_t pool_conns;	  /* SVC_BACKEND_DEFAULT_POOL_CONNS per backend */
	uint32_t idle_ms;	  /* SVC_BACKEND_DEFAULT_IDLE_MS */
	/* Optional: run on the backend thread after every pass of its loop
	 * (messages, I/O, deadlines), tick_ctx as argument; returns the
	 * CLOCK_MONOTONIC time (ns, util_now_ns) by which it wants to run
	 * again, UINT64_MAX for none. The service fabric's timers. It must
	 * not block. Not run once svc_backend_free() began. */
	uint64_t (*tick)(void *ctx, uint64_t now_ns);
	void *tick_ctx;
	/* 1: no thread of its own; its loop runs in another loop's turns
	 * (svc_backend_step, woken by svc_backend_fd: the fabric's owner on a
	 * QUIC worker, engine_host). svc_backend_free then runs the last
	 * turn itself, after the host stopped calling step. */
	int hosted;
};

/*
 * Call completion: runs on the backend thread (never with the caller's
 * locks held). err is an enum svc_err: from the backend's HTTP status
 * (status, 100..599, svc_bhttp_status_class: ok, bad_request, too_large,
 * rate_limited, overloaded, timeout, backend_error), or with status 0:
 * SVC_ERR_BACKEND_ERROR (connect refused, reset, closed without a word),
 * SVC_ERR_TIMEOUT (the deadline), SVC_ERR_TOO_LARGE (answer over
 * max_response), SVC_ERR_BACKEND_PROTOCOL (not the HTTP/1.1 of the
 * contract), SVC_ERR_OVERLOADED (svc_backend_free ended it). resp (len
 * bytes: the response body, whatever the status) is the callee's: free() it.
 */
typedef void (*svc_backend_done_fn)(void *ctx, int err, uint32_t status, uint8_t *resp,
				    size_t len);

/* A call to a backend. Pointers borrow for the time of the submit. */
struct svc_backend_req {
	const char *service;	  /* NUL-terminated; also what max_per_service counts */
	const char *method;	  /* NUL-terminated; NULL or "" = POST / */
	const char *version;	  /* Weft-Service-Version; NULL = left out */
	const uint8_t *caller;	  /* IDENTITY_PK_LEN: Weft-Caller */
	const uint8_t *assertion; /* SVC_ASSERT_LEN (request id, time, sig) or NULL */
	const uint8_t *payload;
	size_t len;
	uint32_t timeout_ms; /* 0 = the default */
};

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
 * Start a call to the backend at addr ("tcp:IP:PORT", "tcp:[V6]:PORT" or
 * "unix:/path"): the request is built and copied here (request id: the
 * assertion's, else random). The timeout is one deadline for a
 * connection (pooled, new, or a turn in the pool's queue), the write and
 * the whole answer. Returns 0 (done() will run exactly once), -EINVAL
 * (address, names, missing caller), -EBUSY (over max_inflight or
 * max_per_service: answer overloaded), -ESHUTDOWN or -ENOMEM.
 */
int svc_backend_submit(struct svc_backend *b, const char *addr, const struct svc_backend_req *r,
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
/* The same without the wake-up: the loop runs m at its next turn, which
 * the caller must bring about with svc_backend_kick() (a packet worker
 * posts a receive batch's events, then kicks once at the pass's end). */
int svc_backend_post_lazy(struct svc_backend *b, struct svc_backend_msg *m);
/* Wake the loop for what was posted lazily (nothing when a wake-up is
 * already on its way). Any thread, while b lives. */
void svc_backend_kick(struct svc_backend *b);
/* A hosted loop's turn, without waiting (engine_host's step: arg is the
 * handle): 1 when work is pending at once; *next_us is when it wants to
 * run again (-1: only when svc_backend_fd is readable). ready 0: the host
 * knows svc_backend_fd was not readable since the last turn, so the turn
 * does not read it (it still runs messages, submissions and deadlines).
 * The first call's thread is the loop's from then on (svc_backend_on_loop). */
int svc_backend_step(void *arg, int ready, int64_t *next_us);
/* Hosted, after its host stopped calling svc_backend_step (the engine
 * stopped): one turn of the loop on the calling thread, which is the
 * loop's from then on: the messages posted so far run now; 1. Not hosted
 * (its own thread runs the loop): nothing done, 0. */
int svc_backend_turn_here(struct svc_backend *b);
/* The descriptor that is readable when the loop has I/O or messages. */
int svc_backend_fd(const struct svc_backend *b);
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
	uint32_t inflight;	  /* requests in progress */
	uint64_t busy;		  /* refused by a bound */
	uint64_t timeouts;	  /* ended by their deadline */
	uint64_t protocol_errors; /* answers that broke the contract */
	uint32_t conns_open;	  /* call connections now (busy or idle) */
	uint32_t conns_idle;	  /* of which idle */
	uint64_t conns_opened;	  /* call connections opened since start */
	uint64_t reused;	  /* calls sent on a kept-alive connection */
};
void svc_backend_stats(struct svc_backend *b, struct svc_backend_stats *st);

#endif
