/* SPDX-License-Identifier: MIT */
/*
 * Content on the mesh inside weftd: serving chunks, CV lists and share
 * manifests over QUIC (stream type CONTENT_ST_FETCH), announcing held
 * content in the DHT, swarm downloads from several providers at once, and
 * the /v1/content control API. Wire format, tunables and design in
 * docs/CONTENT.md ("Content on the mesh") and docs/PROTOCOL.md ("Content").
 *
 * Threads: serving is event-driven on the engine workers: QUIC callbacks
 * queue each request on its peer's queue in the worker's scheduler
 * (deficit round robin across peers, upload caps), and the worker answers
 * them in the scheduler's order at the end of its loop pass or when a cap
 * allows (docs/CONTENT.md "Fair, capped serving"); each download runs on
 * a thread of its own; DHT announcements on one announcer thread.
 * Control handlers may block.
 */
#ifndef WEFT_CONTENT_NODE_H
#define WEFT_CONTENT_NODE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct ctl;
struct engine;
struct guard;
struct identity;
struct dhtnode;
struct quic_node;
struct store;
struct content_node;

/* QUIC stream types owned by content (0x20-0x2f are content's; the service
 * fabric uses its own range). Only 0x20 is used today. */
#define CONTENT_ST_FETCH 0x20
/* Share head push: a subscriber's watch stream to a publisher it follows
 * (docs/PROTOCOL.md "Share head push"). */
#define CONTENT_ST_WATCH 0x21

/* Wire: request operations (first byte of a fetch stream's payload). */
#define CONTENT_OP_INFO 0x01	 /* id(32) -> size, CV list, have-bitmap */
#define CONTENT_OP_CHUNK 0x02	 /* id(32) index(u64 BE) -> chunk bytes */
#define CONTENT_OP_MANIFEST 0x03 /* share id(20) -> signed manifest */
#define CONTENT_OP_HAVE 0x04	 /* id(32) -> size, have-bitmap (INFO without CVs) */
#define CONTENT_OP_PEERS 0x05	 /* id(32) -> other nodes fetching or holding id */
/* HAVE, telling what the asker holds of what we showed it: id(32)
 * first(u32 BE) mask(u32 BE) -> HAVE's answer */
#define CONTENT_OP_HAVE_HELD 0x06
/* HAVE_HELD (mask may be 0) from a downloader that has no chunk request
 * in flight to anyone: nothing it lacks is shown to it by any provider
 * (a super-seed then shows it the true bitmap sooner) */
#define CONTENT_OP_HAVE_IDLE 0x07
/* Wire: response status (first byte of the answer). */
#define CONTENT_ST_OK 0
#define CONTENT_ST_NOT_FOUND 1
#define CONTENT_ST_BAD_REQUEST 2
#define CONTENT_ST_UNAVAILABLE 3 /* failed re-verification, I/O error */
#define CONTENT_ST_BUSY 4	 /* serve queue full: try another provider */

/* Tunables (defaults of struct content_node_opts; 0 selects them). */
/* Requests waiting to be answered, per engine worker: 512 (at most
 * 128 MiB of answers); beyond that, or beyond a peer's own queue
 * (CN_SCHED_PEER_QUEUE, 64), peers get BUSY and go elsewhere. */
#define CONTENT_SERVE_QUEUE 512
/* Answers a worker writes in one pass of its loop before it lets packets
 * in again: 16 (4 MiB of chunks). */
#define CONTENT_SERVE_BATCH 16
/* Fetch streams one peer may have open on us at once: 64 (a downloader
 * uses at most CONTENT_PER_PROVIDER plus its INFO/PEERS streams); more
 * cost requester score. */
#define CONTENT_SERVE_PEER_STREAMS 64
/* Answers one connection may hold (written to it and not yet
 * acknowledged, docs/CONTENT.md "Answers a peer holds"): 8 MiB, what a
 * downloader asking one provider for all CONTENT_MAX_PARALLEL chunks at
 * once has out. A peer over it is passed over (its requests wait) until
 * it acknowledges some: one that never does holds no more than this. */
#define CONTENT_SERVE_PEER_HELD (8U << 20)
/* Bytes of one connection's answers waiting in the node-wide QUIC send
 * queue (its streams' send buffers full) before it is passed over: 1 MiB,
 * so stalled peers cannot fill the queue all peers share. */
#define CONTENT_SERVE_PEER_QUEUED (1U << 20)
/* A connection holding CONTENT_SERVE_PEER_HELD of answers that have not
 * moved (no acknowledgment) for this long is closed: 20 s, four times a
 * downloader's request timeout. */
#define CONTENT_SERVE_STALL_S 20
/* New content (added on this node) is super-seeded for its first 10
 * minutes: each downloader is offered chunks nobody was offered yet
 * (docs/CONTENT.md "Super-seeding"). */
#define CONTENT_SUPERSEED_S 600
/* Ban length for a validated requester whose score crossed the threshold. */
#define CONTENT_REQ_BAN_TTL_S 600
/* Parallel chunk requests of one download: 32 (8 MiB in flight covers a
 * 10 Gbit/s x 6 ms bandwidth-delay product). */
#define CONTENT_MAX_PARALLEL 32
/* Chunk requests in flight to one provider: 12, so one slow provider holds
 * at most 3 MiB of the window and the rest goes to the others. */
#define CONTENT_PER_PROVIDER 12
/* Providers used by one download: 16. */
#define CONTENT_MAX_PROVIDERS 16
/* A request unanswered after 5 s is failed and retried elsewhere: 256 KiB
 * in 5 s is 420 kbit/s, slower than any provider worth keeping. */
#define CONTENT_REQ_TIMEOUT_MS 5000
/* Bad chunks (data that does not verify, or a CV list that does not prove
 * out) before a provider is reported to the ban pipeline: 3. One could be
 * a bit flip on a broken host; three is a pattern. */
#define CONTENT_BAN_FAULTS 3
/* Ban length for a provider that sent bad data: 1 hour. */
#define CONTENT_BAN_TTL_S 3600
/* Re-announce held content every 20 min: BEP 5 peers expire after 30 min
 * (ours after DHT storage's own limit), with margin for a slow round. */
#define CONTENT_REANNOUNCE_S 1200
/* Download jobs kept (running and finished, for the API): 64. */
#define CONTENT_MAX_JOBS 64
/* A finished job stays listed (GET /v1/content/jobs[/N]) for 10 min. Within
 * a tick of its end content_node_trim joins its thread and frees the job
 * (~37 KiB: its providers, requests and request), keeping its JSON as text
 * and its progress line (a few KiB); those go after the 10 min. */
#define CONTENT_JOB_KEEP_MS 600000

/* Subscribed share heads are polled every 300 s (content.poll_s): a
 * BEP 44 get carrying the last seq, which costs one lookup and no value
 * bytes when nothing changed; content sync polls at once. */
#define CONTENT_POLL_S 300
/* Upload limits, live (POST /v1/content/limits); bytes/s, 0 = unlimited.
 * LAN peers (private, loopback, link-local, ULA addresses) are exempt
 * from the global cap unless lan_capped, as libtorrent's local peer class. */
struct content_limits {
	uint64_t upload_rate;	   /* the node's total upload */
	uint64_t peer_rate;	   /* each WAN peer */
	uint64_t lan_peer_rate;	   /* each LAN peer */
	int lan_capped;		   /* LAN peers count against upload_rate too */
	int upload_auto;	   /* the automatic cap (docs/CONTENT.md "The automatic
				    * cap"), under upload_rate when that is set too */
};

struct content_node_opts {
	struct engine *eng;	     /* required: serving runs on its workers */
	struct store *store;	     /* required: LMDB store (caller-owned) */
	const char *state_dir;	     /* required: blobs go to <state_dir>/blobs */
	struct quic_node *quic;	     /* required: serving and downloads */
	struct dhtnode *dht;	     /* optional: announce / get_peers */
	struct guard *guard;	     /* optional: bans for bad providers */
	struct ctl *ctl;	     /* optional: /v1/content routes */
	const struct identity *id;   /* required: signs shares */
	uint16_t quic_port;	     /* announced port */
	uint64_t quota_bytes;	     /* 0 = CSTORE_DEFAULT_QUOTA */
	int direct_io;		     /* cstore_opts.direct_io */
	int hot_chunks;		     /* cstore_opts.hot_chunks (-1 none, 0 default) */
	/* threads that read chunks from the store for serving, off the engine
	 * workers (docs/CONTENT.md "Reads off the workers"): 0 = 4, < 0 =
	 * none (read on the workers); never on the in-memory backend */
	int read_threads;
	unsigned int max_parallel;   /* 0 = CONTENT_MAX_PARALLEL */
	unsigned int per_provider;   /* 0 = CONTENT_PER_PROVIDER */
	unsigned int req_timeout_ms; /* 0 = CONTENT_REQ_TIMEOUT_MS */
	unsigned int poll_s;	     /* 0 = CONTENT_POLL_S */
	/* PINGs on a subscriber's watch connections when idle this long (ms):
	 * below the QUIC idle timeout; 0 = none */
	unsigned int watch_keepalive_ms;
	struct content_limits limits; /* 0 = unlimited */
	/* seconds new content is super-seeded; 0 = CONTENT_SUPERSEED_S,
	 * < 0 = never */
	int superseed_s;
	/* answers one connection may hold unacknowledged, bytes: 0 =
	 * CONTENT_SERVE_PEER_HELD (content.serve_peer_held) */
	uint64_t serve_peer_held;
	/* such a connection's answers unmoved this long is closed, s: 0 =
	 * CONTENT_SERVE_STALL_S (content.serve_stall_s) */
	unsigned int serve_stall_s;
	/* 1: a version that withdraws earlier ones ("wd", a re-encryption's
	 * signed delete) is not honoured: their items stay and are served
	 * (content.honour_withdrawals = false). Default 0: honoured. */
	int ignore_withdrawals;
	/* Test hooks, per node, honoured only by test builds (compiled with
	 * -DWEFT_TEST_HOOKS: the sanitized and fuzz flavours, never the
	 * release weftd) and logged loudly there: */
	int test_corrupt;		  /* flip one byte of every chunk served,
					   * after re-verification */
	unsigned int test_serve_delay_ms; /* delay each chunk served */
	unsigned int test_lookup_poll_ms; /* a job's poll while its DHT lookup
					   * is out (CN_WAIT_MS otherwise): only
					   * the lookup's answer wakes it sooner */
};

/*
 * Create: opens the chunk store, the "content_shares" database, registers
 * stream type CONTENT_ST_FETCH on the QUIC node and the /v1/content routes.
 * Call before engine_start(). Test hooks: see struct content_node_opts.
 * Returns 0, -EINVAL, -ENOMEM or the errors of cstore_new() /
 * quic_node_register().
 */
int content_node_new(struct content_node **out, const struct content_node_opts *opts);
/* After the engine and the DHT started: start serve threads, the announcer
 * (every held complete content and every public share), and resume the
 * partial downloads found in the store. Returns 0 or -errno. */
int content_node_start(struct content_node *cn);
/* The ids this node announces (held content, public shares), as DHT keys
 * (their first 20 bytes): how many written to ih (at most cap), in the
 * announce schedule's order. Any thread; for LAN discovery (BEP 14). */
size_t content_node_seeded(struct content_node *cn, uint8_t (*ih)[20], size_t cap);
/* Extra providers for a download: fn(arg, ih, out, cap) writes up to cap
 * QUIC addresses of nodes that said they hold ih (the LAN peers heard by
 * BEP 14) and returns how many. Called with a download's lock held each
 * time it gathers providers (start, and whenever it looks the DHT up
 * again): must not block or call into content. Set before
 * content_node_start(); NULL to unset. */
typedef size_t (*content_lan_fn)(void *arg, const uint8_t ih[20], struct sockaddr_storage *out,
				 size_t cap);
void content_node_set_lan(struct content_node *cn, content_lan_fn fn, void *arg);

/* Housekeeping on the node's tick (any one thread): a finished download
 * job is joined and freed, what the jobs API shows of it kept (unless a
 * waiter holds it); that goes after CONTENT_JOB_KEEP_MS.
 * Until they were, a finished job kept its record and its thread's stack
 * until the table's 64 slots filled: growth that looked like a leak in
 * the soak (docs/LAB.md). NULL-safe. */
void content_node_trim(struct content_node *cn, uint64_t now_ms);

/* The control API's event streams (GET /v1/content/events) end now, their
 * readers answered at once: the stop (node_free, before ctl_free) does not
 * wait on their 1 s reads. NULL-safe. */
void content_node_stop_readers(struct content_node *cn);

/* Stop downloads, serving and announcing; free. Call after engine_stop()
 * and before quic_node_free(). NULL-safe. */
void content_node_free(struct content_node *cn);

#endif
