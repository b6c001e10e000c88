/* SPDX-License-Identifier: MIT */
/*
 * Packet engine: one worker thread per queue (AF_XDP rx queue or io_uring
 * socket set). Each worker loops: receive a batch, run the pre-filter, demux
 * by destination UDP port to the registered handler, flush the replies the
 * handlers queued as one tx batch, run due timers, run commands posted by
 * other threads, then wait (backend descriptor + command eventfd, timeout =
 * next timer). No locks on the packet path: handlers, timers and commands
 * of one worker all run on that worker's thread.
 *
 * Typical use (weftd):
 *   struct engine_opts o; engine_opts_default(&o);
 *   o.mode = IO_MODE_XDP; o.ifname = "eth0"; o.ports = ports; o.nports = 2;
 *   engine_new(&eng, &o);             // -ENODEV/-EPERM/-EOPNOTSUPP: log, retry with uring
 *   engine_register(eng, 4433, quic_rx, quic);
 *   engine_start(eng); ... engine_stop(eng); engine_free(eng);
 */
#ifndef WEFT_ENGINE_H
#define WEFT_ENGINE_H

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>

#include "weft/io.h"

struct engine;
struct engine_worker;

/* The packet view handlers see: the io layer's view under the engine's
 * name (data valid only during the handler call). */
#define engine_pkt io_pkt

/* Handler for one UDP port. Runs on worker w; reply with engine_send(). */
typedef void (*engine_handler_fn)(struct engine_worker *w, const struct engine_pkt *pkt, void *arg);
/* Pre-filter run before demux (the software policer in uring mode).
 * Return 0 to accept, non-zero to drop (counted as drop_filter). now_ns is
 * CLOCK_MONOTONIC in ns, read once at the start of the worker's pass (a
 * receive batch shares it; also with a simulated engine clock). Runs on
 * the worker thread: arg must be safe to use from every worker at once. */
typedef int (*engine_filter_fn)(void *arg, const struct engine_pkt *pkt, uint64_t now_ns);
/* Command / timer callback, on the worker's thread. */
typedef void (*engine_cmd_fn)(struct engine_worker *w, void *arg);
/* Clock the workers read: monotonic nanoseconds. Any thread. */
typedef uint64_t (*engine_clock_fn)(void *arg);

#define ENGINE_MAX_WORKERS 64
#define ENGINE_MAX_HANDLERS IO_MAX_PORTS
#define ENGINE_MAX_RANGE IO_MAX_RANGE

struct engine_opts {
	enum io_mode mode;	  /* IO_MODE_URING (default) or IO_MODE_XDP */
	unsigned int workers;	  /* default 1; xdp: capped at the rx queue count */
	const char *ifname;	  /* xdp: interface (required) */
	int xskmap_fd;		  /* xdp: XSKMAP of weft's XDP program; -1: built-in steering */
	unsigned int xskmap_base; /* xdp: key of rx queue 0's socket in xskmap_fd (default 0) */
	unsigned int xdp_first_queue; /* xdp: first rx queue to bind (default 0) */
	int xdp_generic;	  /* xdp: built-in program in SKB mode */
	const uint16_t *ports;	  /* UDP ports to serve (host order); required */
	unsigned int nports;	  /* 1..ENGINE_MAX_HANDLERS */
	/* An extra range of served ports (host order, inclusive; 0 = none):
	 * the relay's ports (relay.ports), one per circuit, served by one
	 * handler (engine_register_range). uring: one socket per port per
	 * queue; mem: delivered like any port; xdp: the weft XDP program
	 * steers them (wxdp relay ports). At most ENGINE_MAX_RANGE ports. */
	uint16_t range_min, range_max;
	const char *bind_addr;	  /* uring: numeric bind address; default "::" (dual-stack) */
	int pin_cpus;		  /* pin worker i to cpus[i] (or CPU i when cpus is NULL) */
	const int *cpus;	  /* one entry per worker; copied by engine_new */
	unsigned int batch;	  /* rx/tx batch; default 64 (one NAPI budget) */
	unsigned int cmdq_size;	  /* command ring per worker; default 256, power of 2 */
	unsigned int tx_queue;	  /* staged replies per worker; default 256: a burst of
				     replies to one rx batch, flushed as one tx batch */
	int uring_gro, uring_gso; /* default 1 */
	/* uring: the queue-steering program of one port (io_opts.steer_prog;
	 * NULL: the kernel's hash); read by engine_new only */
	const void *steer_prog;
	uint16_t steer_port;
	unsigned int uring_shrink_ms; /* 0: 10 s (io_opts.uring_shrink_ms) */
	unsigned int xsk_frames;  /* default 4096 per queue */
	engine_filter_fn filter;  /* optional */
	void *filter_arg;
	/* Time of the loop, its timers and the filter's now: NULL reads
	 * CLOCK_MONOTONIC; tests pass simnet_now_ns (virtual time). */
	engine_clock_fn clock;
	void *clock_arg;
	struct simnet_host *sim_host; /* mem: the simulated host served (required) */
};

/* Documented defaults: uring, 1 worker, xskmap_fd -1, batch 64, cmdq 256,
 * tx_queue 256, GRO/GSO on. ports must still be set. */
void engine_opts_default(struct engine_opts *opts);

/*
 * Create the engine and open every queue (sockets, rings, AF_XDP sockets,
 * the XDP program when xskmap_fd is -1). Workers do not run yet.
 * Returns 0; -EINVAL (bad opts); -ENODEV (no such interface); -EPERM (xdp
 * without privilege); -EOPNOTSUPP (no XDP/AF_XDP on the interface);
 * -EBUSY (another XDP program attached); -EADDRINUSE; -ENOMEM. In xdp mode
 * the caller logs the error and may retry with IO_MODE_URING: the engine
 * never falls back by itself.
 */
int engine_new(struct engine **out, const struct engine_opts *opts);
/* Register the handler of a UDP port (one of opts.ports) before
 * engine_start(). Returns 0, -EINVAL (port not served), -EEXIST, -EBUSY
 * (already started). */
int engine_register(struct engine *eng, uint16_t port, engine_handler_fn fn, void *arg);
/* Register the one handler of the port range (opts.range_min..max)
 * before engine_start(): every datagram to a port of the range goes to
 * fn. Returns 0, -EINVAL (no range, or min/max differ from opts), -EEXIST,
 * -EBUSY (already started). */
int engine_register_range(struct engine *eng, uint16_t min, uint16_t max, engine_handler_fn fn,
			  void *arg);
/* Start the worker threads. Returns 0 or -errno (threads already started
 * are stopped again). */
int engine_start(struct engine *eng);
/* Stop and join the workers (pending commands are run first, those a
 * worker posted in its last pass to one already ended too, here). NULL-safe,
 * idempotent. */
void engine_stop(struct engine *eng);
/* 1 once engine_stop() ran (until the next engine_start()): work that
 * waits on the workers will not finish. Any thread. */
int engine_halted(const struct engine *eng);
/* Stop, close every queue, detach the built-in XDP program. NULL-safe. */
void engine_free(struct engine *eng);

unsigned int engine_workers(const struct engine *eng);
enum io_mode engine_mode(const struct engine *eng);
/* The largest UDP payload the backend receives whole: io_uring with UDP_GRO
 * 65527 (64 KiB buffers), without it 2048; AF_XDP 2048-byte frames less
 * Ethernet + IPv6 + UDP headers; mem 65527. */
size_t engine_rx_max_payload(const struct engine *eng);
/* The engine's clock (opts.clock), in ns; any thread. */
uint64_t engine_now_ns(const struct engine *eng);
/* 1 when the engine runs on a clock of its own (opts.clock: a simulated
 * network's), not the system's monotonic clock. */
int engine_clock_is_own(const struct engine *eng);
/* The local address the backend sends to dst from (port 0), when the
 * backend knows it (mem: the simulated host's address). Returns 0,
 * -EOPNOTSUPP (ask the kernel: uring, xdp), -ENETUNREACH. Any thread. */
int engine_local_addr(const struct engine *eng, const struct io_addr *dst, struct io_addr *local);
/* The MTU of the kernel's route to dst when a path of that size is worth
 * probing (above 1500, or 1500 to an on-link IPv4 address), else 0; the
 * backend's route_mtu (uring: io_route_mtu; xdp and mem never). The
 * calling thread's network namespace. */
int engine_route_mtu(const struct engine *eng, const struct io_addr *dst);

/*
 * Run one pass of every worker's loop on the calling thread, without
 * waiting: receive batch, demux, due timers, commands, deferred list,
 * flush. For engines whose workers are not started (mem backend tests
 * drive N engines and the simulated network from one thread, so a run is
 * the same for a seed). Returns 1 when some worker did work (the caller
 * should poll again before moving the clock), 0 when all were idle, or
 * -EBUSY (workers running). *next_us, when not NULL, gets the
 * microseconds until the earliest armed timer of any worker (-1: none).
 */
int engine_poll(struct engine *eng, int64_t *next_us);

/* ---- worker context (valid on the worker thread only) ---- */
unsigned int engine_worker_index(const struct engine_worker *w);
struct engine *engine_worker_engine(struct engine_worker *w);
/* Loop time of the current iteration, CLOCK_MONOTONIC ms. */
uint64_t engine_worker_now(const struct engine_worker *w);
/* The same in microseconds. */
uint64_t engine_worker_now_us(const struct engine_worker *w);
/* Loop passes begun so far. A pass runs, in order: receive, timers,
 * commands (every one posted before that stage began), deferred work;
 * so a command posted from deferred work of pass N has run when the
 * deferred work of any later pass begins. */
uint64_t engine_worker_pass(const struct engine_worker *w);
/*
 * Queue a datagram (copied) for the worker's next tx batch; flushed after
 * the current rx batch or when the staging queue fills. src may be NULL
 * (backend chooses; port = first served port) or the pkt->dst of the
 * request to reply from the address it came to. Returns 0, -EMSGSIZE
 * (len > 65507 uring, > MTU frame xsk), -EINVAL.
 */
int engine_send(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		const void *data, size_t len);
/* The same with the datagram's IPv4 TTL / IPv6 hop limit set to ttl (0:
 * the default; struct io_txmsg). */
int engine_send_ttl(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		    const void *data, size_t len, uint8_t ttl);
/*
 * Send len bytes as datagrams of seg bytes (the last may be shorter) to
 * one destination, straight from data (no staging copy): what is staged
 * goes first, then the burst, which the io_uring backend sends as UDP GSO
 * messages and AF_XDP as frames of one batch. data is not used after the
 * call. seg <= 65507 (AF_XDP drops what does not fit its frames, as
 * engine_send). Returns the datagrams accepted or -EINVAL.
 */
int engine_send_burst(struct engine_worker *w, const struct io_addr *dst, const struct io_addr *src,
		      const void *data, size_t len, size_t seg);
/* Flush staged datagrams now. Returns how many the backend accepted. */
int engine_flush(struct engine_worker *w);

/*
 * ---- timers ----
 * Per worker: a hashed wheel with 1 ms ticks for ordinary deadlines, a
 * short list of microsecond timers the loop wakes for exactly (transport
 * pacing, delays under ENGINE_NEAR_US), and a deferred list run at the end
 * of the current loop pass. A timer is in at most one of them: arming it
 * one way disarms it the other ways. Timers fire never early; a wheel
 * timer and a near timer that are both overdue in one pass (the worker
 * was off its CPU) fire in no promised order between them.
 */
#define ENGINE_NEAR_US 2000
struct engine_timer {
	struct engine_timer *next, *prev; /* wheel slot or near list */
	struct engine_timer *dnext;	  /* deferred list */
	uint64_t expire_ms;
	uint64_t expire_us; /* near timers */
	engine_cmd_fn fn;
	void *arg;
	int armed;    /* wheel slot + 1, -1 near list, -2 about to fire, 0 not armed */
	int deferred; /* on the deferred list */
};
/* Initialise a caller-owned timer (no allocation in the wheel). */
void engine_timer_init(struct engine_timer *t, engine_cmd_fn fn, void *arg);
/* Arm (or re-arm) t to fire once on worker w after delay_ms (0 = next
 * loop). Worker thread only; to arm from elsewhere, engine_call() a
 * function that does it. */
void engine_timer_add(struct engine_worker *w, struct engine_timer *t, uint64_t delay_ms);
/* Arm t to fire after delay_us, to the microsecond: the worker's wait
 * is shortened for it. Delays of ENGINE_NEAR_US or more go to the wheel
 * (rounded up to whole ms). Worker thread only. */
void engine_timer_add_us(struct engine_worker *w, struct engine_timer *t, uint64_t delay_us);
/*
 * Run t's callback once at the end of the current loop pass: after this
 * receive batch, the due timers and the commands, before the pass's
 * transmit flush. Lets a handler batch per-packet work (one reply for a
 * whole receive batch) without waiting for a wheel tick. No-op when t is
 * already deferred. Worker thread only.
 */
void engine_defer(struct engine_worker *w, struct engine_timer *t);
/*
 * From code running inside a worker's loop pass (a handler, a timer, a
 * command, including the callbacks of layers above such as quic_node's):
 * run fn(arg) once at the end of this pass, after its deferred timers
 * and its transmit flush, on this thread. One hook per pass: returns 1 when it was registered
 * now, 0 when this very (fn, arg) already is, -EBUSY when another is
 * (the caller then does its work at once), -ENOENT outside a pass. Lets
 * a layer that hands work to another thread wake it once per receive
 * batch instead of once per event (docs/SERVICE.md, "Threads and
 * owners").
 */
int engine_pass_end(void (*fn)(void *arg), void *arg);
/*
 * Host another event loop on a worker (docs/SERVICE.md, "The fabric's
 * owner on the QUIC worker"): the worker's wait also returns when fd is
 * readable, and every pass runs step(arg, ready, &next_us) on the worker's
 * thread after its commands and deferred timers, before its transmit
 * flush; ready is 0 when the io backend knows fd was not readable since
 * the last step (the loop need not read it: no system call), else 1. step
 * returns 1 when it did work (the worker then does not sleep) and sets
 * next_us to the microseconds until it wants to run again (-1: only when
 * fd is readable). The hosted loop must never block. Call before
 * engine_start; once the workers stopped step is never called again.
 * Returns 0, -EBUSY (running, or a loop is hosted there already),
 * -EOPNOTSUPP (the io backend cannot watch an fd: in-memory), -EINVAL.
 */
int engine_host(struct engine *eng, unsigned int worker, int fd,
		int (*step)(void *arg, int ready, int64_t *next_us), void *arg);
/* Disarm (wheel, near or deferred); no-op if not armed. Worker thread only. */
void engine_timer_cancel(struct engine_worker *w, struct engine_timer *t);

/* ---- command queue (any thread -> worker) ---- */
/*
 * Post fn(worker, arg) to run on worker's thread. Bounded MPSC ring
 * (opts.cmdq_size) + eventfd wake-up; FIFO per producer. Before
 * engine_start it waits for the workers to start. Returns 0, -EAGAIN
 * (ring full: retry later), -EINVAL (no such worker), -ESHUTDOWN (after
 * engine_stop, until a new engine_start: fn will not run, arg is still
 * the caller's).
 */
int engine_call(struct engine *eng, unsigned int worker, engine_cmd_fn fn, void *arg);
/*
 * Run fn on the worker and wait for it up to timeout_ms. Returns 0 when fn
 * ran; -ETIMEDOUT when it had not started by then (it is then cancelled
 * and will never run, so arg may be freed); -EAGAIN (ring full); -EINVAL;
 * -ESHUTDOWN (workers not running). Never call from a worker thread.
 */
int engine_call_sync(struct engine *eng, unsigned int worker, engine_cmd_fn fn, void *arg,
		     int timeout_ms);

/* ---- statistics ---- */
#define ENGINE_BATCH_BUCKETS 8 /* rx batch sizes 1, 2-3, 4-7, ..., 64-127, 128+ */
struct engine_stats {
	struct io_stats io;
	uint64_t drop_filter;	  /* pre-filter said drop */
	uint64_t drop_no_handler; /* no handler for the destination port */
	uint64_t cmds;		  /* commands run */
	uint64_t cmd_full;	  /* engine_call refused with -EAGAIN */
	uint64_t timers;	  /* timers fired */
	uint64_t loops;		  /* worker loop iterations */
	uint64_t rx_batch_hist[ENGINE_BATCH_BUCKETS];
};
/* Copy worker's counters (relaxed reads; consistent per field). Returns 0
 * or -EINVAL. */
int engine_stats_get(const struct engine *eng, unsigned int worker, struct engine_stats *out);
/* Prometheus text lines (matches ctl_metrics_fn; arg is the engine). */
void engine_metrics(void *arg, FILE *out);
/* {"mode":..,"workers":[{...per worker...}],"total":{...}}; caller owns it. */
json_t *engine_stats_json(const struct engine *eng);
/* GET /v1/io/stats handler (matches ctl_handler_fn; arg is the engine). */
struct ctl_req;
struct ctl_resp;
void engine_ctl_stats(void *arg, const struct ctl_req *req, struct ctl_resp *resp);

struct simnet;
/*
 * Run the engines (mem backend, workers not started, clock = this
 * network's manual clock) and the network on the calling thread, as a
 * discrete-event simulation: poll every engine until all are idle, then
 * move the clock to the next timer or delivery, until done(arg) returns
 * non-zero (checked between passes; NULL: never) or duration_ns of
 * virtual time passed. The order of passes is fixed, so a run is the same
 * for a seed. Returns 0 (done), -ETIMEDOUT (duration reached first),
 * or an engine_poll error (-EBUSY: workers running).
 */
int engine_sim_run(struct simnet *sn, struct engine *const *engs, unsigned int n,
		   uint64_t duration_ns, int (*done)(void *arg), void *arg);

#endif
