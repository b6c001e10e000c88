/* SPDX-License-Identifier: MIT */
/* Internal to the node binding (quic_node*.c, quic_path.c). quic_node.c is
 * its hub; the parts call only down this list, never the hub:
 *   quic_node_ctl.c (control routes, stats, metrics) -> quic_node_job.c
 *   (resolve, ping, bench, handshakes: dials a caller waits on);
 *   quic_node_peer.c (peer commands); both -> quic_node_ops.c (application
 *   API: commands posted to the connection's worker) -> quic_node_conn.c
 *   (connection records), quic_node_builtin.c (echo, sink, discard,
 *   observed address) ->
 *   quic_path.c (hole punching) -> quic_node_stream.c (streams) ->
 *   quic_node_base.c (references, qn_call, clocks, qn_kick) ->
 *   quic_node_buf.c (command blocks); quic_node_target.c (parser) alone. */
#ifndef WEFT_QUIC_NODE_INT_H
#define WEFT_QUIC_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>

#include "weft/conn.h"
#include "weft/engine.h"
#include "weft/path.h"
#include "weft/quic_node.h"

/* Bytes the echo responder may hold for one stream when the peer sends
 * faster than the echo drains (received data is consumed at once, so this
 * is the only bound): 8 MiB, beyond it the stream is reset (QN_ERR_OVERRUN). */
#define QN_ECHO_MAX_QUEUED (8U << 20)
/* a control request's dial (ping, bench) checks this often whether the
 * node is stopping (its engine halted) */
#define QN_JOB_SLICE_MS 200
#define QN_GEN_CHUNK (64U << 10) /* bench generator: bytes per quic_stream_send */
/* A worker's table of connection records by id: 64 chains at first,
 * doubled while the records outnumber the chains, up to this many (16k:
 * 128 KiB, four times quic.max_conns' default) */
#define QN_CONN_HASH_MIN 64
#define QN_CONN_HASH_MAX 16384

/* Application error codes on weft streams (RESET_STREAM). */
#define QN_ERR_UNKNOWN_TYPE 0x101
#define QN_ERR_OVERRUN 0x102
#define QN_ERR_BAD_TYPE 0x103
#define QN_ERR_INTERNAL 0x104 /* a write queued only in part (no memory) */

/* Writes of at least this many bytes go to the QUIC stream by reference
 * (quic_stream_send_ref), smaller ones are copied into its buffer. */
#define QN_REF_MIN 4096

/* Write buffers kept for reuse (quic_node_buf.c): a block of more than
 * QN_BUF_MIN bytes and at most QN_BUF_SIZE (a content chunk answer, 256
 * KiB + its header, in its write command, with room to place it for
 * O_DIRECT) is allocated at QN_BUF_SIZE and
 * kept when freed, at most QN_BUF_CACHE per node: 8.4 MiB while a node
 * serves, nothing before, and nothing again once none was used for
 * QN_BUF_IDLE_NS. 8 kept blocks left 21% of a 51-node lab's chunk
 * answers in fresh blocks (a node serving several peers holds dozens
 * unacknowledged at once, the busiest 200-380), 76% of its page faults
 * (docs/LAB.md "Kept write blocks"). */
#define QN_BUF_MIN (128U << 10)
#define QN_BUF_SIZE ((256U << 10) + 1024 + QUIC_NODE_WBUF_ALIGN)
#define QN_BUF_CACHE 32
/* kept blocks unused this long are freed (quic_node_trim) */
#define QN_BUF_IDLE_NS (30ull * 1000000000ull)

/* Bytes queued on a stream. The QUIC stream reads them in place (no copy)
 * until acknowledged: refs counts the queue's reference and one per slice
 * the stream holds; the last one frees mem and the buffer. */
struct qn_wbuf {
	struct qn_wbuf *next;
	size_t len, off;
	int fin;
	int app; /* from quic_node_write: counted in qn->queued, writable() owed */
	unsigned int refs;
	const uint8_t *data; /* inline[] or inside mem */
	void *mem;	     /* freed with the buffer (the write's qn_op), or NULL */
	uint8_t inline_data[];
};

/* The bench generator's unverified block (one generated QN_GEN_CHUNK sent
 * over and over), referenced by the streams that send it. */
struct qn_genblk {
	unsigned int refs;
	uint64_t seed;
	uint8_t data[QN_GEN_CHUNK];
};

struct qn_stream {
	struct qn_stream *next;
	int64_t sid;
	int incoming;
	int typed; /* incoming: type varint parsed */
	uint8_t tbuf[8];
	size_t tlen;
	uint64_t stype;
	const struct quic_node_handler *h; /* NULL: built-in */
	void *arg;
	struct qn_wbuf *wq, *wq_tail;
	size_t wq_bytes;
	int fin_sent;
	int dead; /* reset / error: ignore further input */
	int internal; /* opened by the node itself (observed address): no app events */
	uint8_t obuf[CONN_OBS_MAX]; /* incoming observed-address payload */
	size_t olen;
	/* built-in sink / discard */
	uint64_t count;
	crypto_generichash_state *hs;
	/* bench generator */
	uint64_t gen_total, gen_off, gen_seed;
	crypto_generichash_state *gen_hs; /* borrowed from the job, or NULL */
};

/* Stream hints per connection (qn_stream_get): a downloader's 16 fetch
 * streams, or a seed's answers to one peer, each in its own slot. */
#define QN_STREAM_HINTS 16
/* How often a worker reads its wait for a CPU (qn_cpu_wait). */
#define QN_CPU_WAIT_NS (100ULL * 1000000ULL)

struct qn_conn {
	struct qn_conn *next, *prev;
	struct qn_conn *hnext; /* the worker's table by id (qn_conn_find) */
	uint64_t id;
	struct quic_conn *qc;
	struct quic_node_handler h;
	void *arg;
	int dialed;
	int reported; /* connected() done */
	uint64_t t_start_ns, t_hs_ns;
	struct qn_stream *streams;
	/* qn_stream_get's hints: slot (sid / 4) % QN_STREAM_HINTS holds the
	 * stream of that slot it found last, or NULL (qn_stream_free clears). */
	struct qn_stream *hot[QN_STREAM_HINTS];
	size_t wq_bytes; /* its streams' wq_bytes summed (quic_node_conn_sendq) */
	int relayed;	     /* the peer sees us where we see it: a relay circuit */
	struct qn_path *path; /* hole punching state (quic_path.c), or NULL */
	struct qn_conn *pnext, *pprev; /* the worker's list of conns with a path */
};

struct qn_worker {
	struct quic_node *qn;
	unsigned int idx;
	struct engine_worker *w; /* set at the first call on the worker */
	struct quic_ep *ep;
	struct engine_timer timer;
	/* Receive timestamp: read once per engine loop pass (a batch is
	 * processed in microseconds; a clock read per packet was ~3% of a
	 * receiver's CPU). */
	uint64_t rx_ts_ns, rx_ts_pass_us;
	/* The last datagram's addresses as sockaddrs (the datagrams of a
	 * receive batch share them: one conversion, not one per datagram). */
	struct io_addr rx_src, rx_dst;
	struct sockaddr_storage rx_rs, rx_ls;
	socklen_t rx_rl, rx_ll;
	struct qn_conn *conns;
	size_t nconns;
	/* conns by id: chains of hnext, a power of two of them, doubled
	 * while there are more conns than chains (at most QN_CONN_HASH_MAX;
	 * a failed doubling keeps the old table, longer chains) */
	struct qn_conn **chash;
	size_t nchash;
	/* the conns with hole punching state (c->path), linked by pnext: the
	 * path timer and every probe look at these, not at every conn */
	struct qn_conn *paths;
	/* The worker thread's wait for a CPU (qn_cpu_wait): its
	 * /proc/thread-self/schedstat (-1: not opened yet, -2: none), the
	 * last reading's run delay and time (ns, monotonic), the smoothed
	 * share in permille */
	int sched_fd;
	uint64_t sched_delay, sched_at;
	unsigned int cpu_wait;
	uint8_t *scratch; /* QN_GEN_CHUNK */
	/* What scratch holds: generator bytes [gen_off, gen_off + gen_len)
	 * of gen_seed (gen_len 0: nothing). */
	uint64_t gen_seed, gen_off;
	size_t gen_len;
	struct qn_genblk *genblk; /* the worker's reference, or NULL */
	/* counters (single writer: this worker) */
	uint64_t fwd_out, fwd_in, fwd_drop, app_errors, echo_overruns, bad_types;
	uint64_t obs_sent, obs_rx, obs_bad, stun_answered, stun_dropped;
	/* path layer (quic_path.c) */
	struct engine_timer path_timer;
	uint64_t path_switches, path_fallbacks, punch_attempts, punch_direct, punch_failed;
	uint64_t punch_probes_tx, punch_probes_rx, punch_acks_tx, punch_acks_rx, punch_bad;
	uint64_t punch_limited, punch_probes_low_ttl;
	uint64_t punch_early; /* punches started at the handshake's end (a circuit we dialled) */
};

struct qn_type {
	uint64_t stype;
	struct quic_node_handler h;
	void *arg;
};

#define QN_CIRC_NOTES 16	/* circuits noted at once (the oldest replaced) */
#define QN_CIRC_NOTE_MS 30000 /* a note unused this long is forgotten */

struct quic_node {
	struct engine *eng;
	uint16_t port;
	unsigned int nworkers;
	struct quic_fair *fair; /* the workers' endpoints' fair windows (NULL: off) */
	struct qn_worker *wk[ENGINE_MAX_WORKERS];
	struct qn_type types[QUIC_NODE_DEF_MAX_TYPES];
	unsigned int ntypes;
	size_t max_queued;
	unsigned int idle_timeout_ms;
	struct quic_node_opts o; /* as given: the hooks (on_validated, on_observed, on_stun, resolve) */
	uint8_t pk[QUIC_KEY_LEN]; /* this node's key: a connection to ourselves is not a peer */
	_Atomic size_t queued;
	_Atomic uint64_t serial;
	_Atomic unsigned int rr; /* round-robin worker for dials */
	_Atomic int refs;	 /* 1 + commands posted and not yet run */
	_Atomic int dead;	 /* quic_node_free done: commands only release */
	_Atomic uint64_t cmd_full;
	_Atomic uint64_t dial_refetch; /* dials by key that refetched the record after failing */
	/* hole punching attempts per peer key per window (all workers) */
	pthread_mutex_t budget_mu;
	struct path_budget *budget;
	/* relay circuits (relay:PORT) a dial by key just got, under budget_mu:
	 * a connection dialled to one punches at its handshake's end */
	struct {
		struct io_addr a;
		uint64_t t_ns;
	} circ[QN_CIRC_NOTES];
	unsigned int circ_next;
	/* large write buffers for reuse (quic_node_buf.c) */
	pthread_mutex_t buf_mu;
	void *buf[QN_BUF_CACHE];
	uint64_t buf_used_ns; /* last buf_get / buf_put of a kept-size block (CLOCK_MONOTONIC) */
	unsigned int nbuf;
	/* blocks of the kept size: taken from the kept ones / allocated,
	 * out now and the most at once (under buf_mu; /v1/quic/stats
	 * "write_bufs") */
	uint64_t buf_reused, buf_allocated;
	unsigned int buf_out, buf_out_max;
};

enum qn_op_kind { OP_CONNECT, OP_OPEN, OP_WRITE, OP_RESET, OP_CLOSE };

/* A command of the application API (quic_node_ops.c), run on the worker
 * that owns its connection; a write's bytes follow it (data[]). */
struct qn_op {
	struct quic_node *qn;
	enum qn_op_kind kind;
	uint64_t conn;
	int64_t sid;
	uint64_t u; /* stype / token / code */
	uint64_t token;
	int fin;
	/* connect */
	struct quic_node_handler h;
	void *arg;
	struct sockaddr_storage remote, local;
	socklen_t remote_len, local_len;
	uint8_t key[QUIC_KEY_LEN];
	int have_key;
	size_t len;
	uint8_t *data; /* len bytes: right after the command, or placed (qn_op_new_at),
			* or the caller's (quic_node_write_lent) */
	size_t bsize;  /* the block's size, the command's included (buf_put) */
	/* quic_node_write_lent: bytes queued before data (copied), and who
	 * gets data back when the op is freed */
	uint8_t prefix[16];
	size_t plen;
	void (*release)(void *rarg);
	void *rarg;
};

/* quic_node_buf.c: command blocks. */
/* A zeroed command with room for len bytes of data (NULL: no memory);
 * blocks of a size in (QN_BUF_MIN, QN_BUF_SIZE] come from the kept ones.
 * Any thread. */
struct qn_op *qn_op_new(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn, size_t len);
/* The same, with its data placed so that data + align_at is
 * QUIC_NODE_WBUF_ALIGN-aligned (quic_node_wbuf_new). */
struct qn_op *qn_op_new_at(struct quic_node *qn, enum qn_op_kind kind, uint64_t conn, size_t len,
			   size_t align_at);
/* Free a command (NULL-safe); a queued write frees its own with the
 * buffer that holds its bytes (qn_wbuf.mem). */
void qn_op_free(void *op);
/* Free the kept blocks (the node's last reference). */
void qn_buf_drain(struct quic_node *qn);

/* quic_node_base.c: the context every part shares. */
/* The engine's clock (virtual in simulated runs). */
uint64_t qn_now_ns(const struct quic_node *qn);
/* A fresh clock read on the worker, remembered for the receive batch:
 * what ngtcp2 sees never goes backwards. Owning worker only. */
uint64_t qn_wk_now(struct qn_worker *wk);
/* Run fn(arg) on worker: a command that holds a node reference (0, or the
 * engine's error: then fn never runs and arg stays the caller's). */
int qn_call(struct quic_node *qn, unsigned int worker, engine_cmd_fn fn, void *arg);
/* Every command starts with this and ends with qn_put() (which drops the
 * reference taken by qn_call); returns 1 when the node is dead and the
 * command must only free its arg. */
int qn_cmd_enter(struct quic_node *qn);
void qn_put(struct quic_node *qn);
/* Re-evaluate the worker's deadlines at the end of this loop pass. */
void qn_kick(struct qn_worker *wk);
/* Close info -> errno for API users. */
int qn_close_errno(const struct quic_close_info *info);

/* quic_node_stream.c: streams, owning worker only. */
struct qn_stream *qn_stream_get(struct qn_conn *c, int64_t sid);
/* A new stream record on c (incoming: opened by the peer, type unread). */
struct qn_stream *qn_stream_add(struct qn_conn *c, int64_t sid, int incoming);
void qn_stream_free(struct quic_node *qn, struct qn_conn *c, struct qn_stream *s);
/* The handler that hears of s (and its arg), NULL for built-in and
 * internal streams. */
const struct quic_node_handler *qn_stream_handler(struct qn_conn *c, struct qn_stream *s,
						  void **arg);
/* Open a stream of type stype on c now and queue its type varint. */
int qn_stream_open_now(struct qn_worker *wk, struct qn_conn *c, uint64_t stype,
		       struct qn_stream **out);
/* Queue len bytes at data (app: from quic_node_write, counted in
 * qn->queued); mem (NULL: data is copied) holds them and is freed with
 * qn_op_free() once the stream no longer reads them: on success only, an
 * error leaves it to the caller. */
int qn_stream_queue(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *st,
		    const uint8_t *data, size_t len, int fin, int app, void *mem);
/* Move queued bytes into the QUIC stream as far as it takes (the stream
 * became writable). */
void qn_stream_pump(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s);
/* Send total deterministic bench bytes of seed (hashed into hs if set). */
void qn_stream_gen_start(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *st,
			 uint64_t total, uint64_t seed, crypto_generichash_state *hs);
/* Reset s with code and drop its queue; further input is ignored. */
void qn_stream_fail(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s, uint64_t code);
/* Find who serves s->stype (built-in or registered): 0, or -ENOENT. */
int qn_type_lookup(struct quic_node *qn, struct qn_stream *s);
/* Drop a reference to a bench generator block. */
void qn_genblk_unref(void *g);

/* quic_node_conn.c: connection records, owning worker only (but the id
 * functions). */
/* A new connection id owned by worker (its low byte). Any thread. */
uint64_t qn_conn_id_new(struct quic_node *qn, unsigned int worker);
struct qn_conn *qn_conn_new(struct qn_worker *wk, uint64_t id);
struct qn_conn *qn_conn_find(struct qn_worker *wk, uint64_t id);
void qn_conn_free(struct qn_worker *wk, struct qn_conn *c);
/* The table by id, once every record is freed (worker teardown). */
void qn_conn_table_free(struct qn_worker *wk);
/* The connection ended: connected() (a dial that never got there), its
 * streams' stream_closed(), closed(); then c is freed. */
void qn_conn_report_closed(struct qn_worker *wk, struct qn_conn *c,
			   const struct quic_close_info *info);

/* quic_node_builtin.c: stream types the node answers itself. */
/* After the handshake: tell the peer the address we see it at. */
void qn_observed_send(struct qn_worker *wk, struct qn_conn *c);
/* Bytes of an incoming stream of a built-in type. */
void qn_builtin_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
		     const uint8_t *data, size_t len, int fin);

/* quic_node_ctl.c: register the control routes and metrics. */
int qn_ctl_register(struct quic_node *qn, struct ctl *ctl);

/* Request bodies of POST /v1/quic/ping, /bench and /handshakes, checked
 * without a node (tests/fuzz/fuzz_ctl_json.c): 0 with *a filled, or
 * -EINVAL with a 4xx answer (JSON error) put in resp. Strings in *a point
 * into body. */
enum { QN_CTL_PING = 1, QN_CTL_BENCH, QN_CTL_HANDSHAKES };
struct qn_ctl_args {
	const char *target;	 /* "peer", else "addr" */
	uint64_t stype;		 /* bench: QUIC_NODE_ST_SINK (default), _ECHO, _DISCARD */
	uint64_t bytes, seed;	 /* bench */
	unsigned int count;	 /* handshakes: 1..QUIC_NODE_HS_MAX */
	unsigned int window;	 /* handshakes in flight: 1..QUIC_NODE_HS_WINDOW_MAX */
	unsigned int timeout_ms; /* 0: the operation's default */
	int keep, verify;	 /* ping; bench (default 1, 0 for discard) */
	int echo;		 /* handshakes: a 32-byte echo before each close */
};
struct ctl_resp;
int quic_node_ctl_parse(int route, json_t *body, struct qn_ctl_args *a, struct ctl_resp *resp);

/* Path layer glue (quic_path.c), owning worker only. */
void qn_path_init_worker(struct qn_worker *wk);
void qn_path_stop_worker(struct qn_worker *wk);
/* A dial by key got a relay circuit at ss (relay:PORT): note it (any
 * thread; QN_CIRC_NOTES kept, each for QN_CIRC_NOTE_MS). */
void qn_path_circuit_note(struct quic_node *qn, const struct sockaddr_storage *ss);
/* c's handshake completed (the dialler's side): when it was dialled to a
 * noted circuit, it punches now (not one round trip later, when the
 * peer's observed address would tell it). */
void qn_path_connected(struct qn_worker *wk, struct qn_conn *c);
/* The peer on c sees us at seen: equal to our view of the peer's address
 * (ci.remote), c runs over a relay circuit (the dialler starts punching). */
void qn_path_observed(struct qn_worker *wk, struct qn_conn *c, const struct quic_conn_info *ci,
		      const struct io_addr *seen);
/* Bytes of c's path stream (type QUIC_NODE_ST_PATH), either direction. */
void qn_path_stream_data(struct qn_worker *wk, struct qn_conn *c, struct qn_stream *s,
			 const uint8_t *data, size_t len);
/* The worker a probe or ack belongs to, -1 if buf is none. */
int qn_path_route(const struct quic_node *qn, const uint8_t *buf, size_t len);
/* A probe or ack on its owning worker. */
void qn_path_probe(struct qn_worker *wk, const uint8_t *buf, size_t len, const struct io_addr *src);
void qn_path_free(struct qn_worker *wk, struct qn_conn *c);
/* {"state", "relay", "direct", ...} for GET /v1/quic/conns (new reference). */
json_t *qn_path_json(struct qn_conn *c, const struct sockaddr_storage *remote, socklen_t rlen);

#endif
