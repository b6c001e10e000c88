/* SPDX-License-Identifier: MIT */
/*
 * Internals of the content node. content_node.c is the hub (lifecycle,
 * adding, the control API); it calls its parts, and no part calls it or a
 * part above it. From the top:
 *   subscribe.c    share heads published and followed, their thread
 *                  (uses jobs.c, shares.c and heads.c, pure)
 *   serve.c        serving the fetch protocol (uses jobs.c for PEERS)
 *   jobs.c         the download jobs; below it, private to a download
 *                  (swarm_int.h): swarm.c, swarm_peers.c, swarm_conn.c
 *   export.c       writing a complete blob out
 *   shares.c       share records, then announce.c (announcing on the DHT)
 *   proto.c, pick.c  pure: the wire format, the chunk picker
 *   chunkstore*.c  the chunk store (include/weft/chunk.h)
 * What the parts need of the node (options, counters, the store, QUIC,
 * DHT and guard handles) is struct content_node below, handed to them:
 * each group of its fields says which file owns it.
 */
#ifndef WEFT_CONTENT_NODE_INT_H
#define WEFT_CONTENT_NODE_INT_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/chunk.h"
#include "weft/engine.h"
#include "weft/content_node.h"
#include "weft/manifest.h"
#include "content/upauto.h"

#define CN_MOD "content"

/* One request waiting to be answered: an item of its peer's queue in the
 * worker's scheduler (sched.h). tab, slot and gen name the stream's
 * pending entry (tab NULL: none) so the answer is counted off it. */
struct cn_wtab;
struct cn_sreq {
	uint64_t conn;
	int64_t sid;
	struct cn_wtab *tab;
	uint32_t gen;
	uint16_t slot;
	uint8_t len;
	uint8_t fin; /* answer with FIN: the client ended the stream */
	uint8_t buf[48];
	/* the asking node's address (the connection's validated path, its
	 * QUIC port: where it serves too), for the swarm table, classes and
	 * super-seeding; ss_family 0 when unknown */
	struct sockaddr_storage from;
};

/* Content removed (content rm, eviction, a cancelled download's part) is
 * remembered this long, the last CN_GONE_IDS of it: a requester asking for
 * its chunks meanwhile asked before it knew (a request in flight, a
 * provider list of a minute ago) and is not scored for it. */
#define CN_GONE_IDS 256
#define CN_GONE_MS 600000

/* Open fetch streams being served, with the bytes of a request not yet
 * complete, per engine worker: 1024 (64 downloaders x 16 streams). Bounded. */
#define CN_PENDING_MAX 1024
/* Hash buckets of a worker's pending table (a power of two, 2x entries). */
#define CN_PENDING_BUCKETS 2048
/* cn_pending.st: generation (high 32 bits), FIN owed, answers owed. */
#define CN_ST_FIN_OWED (1ull << 31)
#define CN_ST_INFLIGHT 0x7fffffffull
struct cn_pending {
	uint64_t conn;
	uint64_t last_ms;
	int64_t sid;
	uint16_t hnext;		 /* hash chain: index + 1, 0 = end */
	uint16_t prev, next;	 /* LRU list (oldest first): index + 1 */
	uint8_t used;
	uint8_t isnew; /* created by the current callback (stream limit check) */
	uint8_t len;
	uint8_t buf[48];
	/* The only word another thread writes: serve threads take one off
	 * the answers owed (when the generation still matches); the owner
	 * adds them, sets FIN owed and bumps the generation when it frees
	 * or reuses the entry. */
	_Atomic uint64_t st;
};

/* A worker's table of pending fetch streams: touched only by that worker
 * (the connection's owner, where its stream callbacks run), except for
 * cn_pending.st. Lookups hash (conn, stream). */
struct cn_read;
struct cn_wtab {
	struct cn_pending e[CN_PENDING_MAX];
	uint16_t bucket[CN_PENDING_BUCKETS]; /* index + 1, 0 = empty */
	uint16_t free_head;		     /* free entries, through hnext */
	uint16_t fresh;			     /* e[fresh..] never used yet: the table needs
					      * no initialisation, and its pages stay
					      * unbacked until used (calloc) */
	uint16_t lru_head, lru_tail;
	unsigned int used, peak; /* entries in use, most at once */
	/* event-driven serving (serve.c): the worker's scheduler, its
	 * timer, the aligned chunk buffer; bound once on the worker */
	struct content_node *cn;
	unsigned int widx;
	struct engine_worker *w;
	struct engine_timer pump, tick;
	int bound, pumping, bind_posted;
	struct cn_sched *sched;
	unsigned int lim_gen; /* cn->lim_gen applied */
	/* the status view: peers copied by the worker every second */
	pthread_mutex_t snap_mu;
	struct cn_sched_peer_info *snap, *snap_pub; /* scratch; published */
	unsigned int nsnap;
	uint64_t snap_ns; /* when the published copy was taken (the worker's clock) */
	/* while the automatic cap is on: each peer's round trip, published
	 * with it ({smoothed, min} ns; 0 = unknown) */
	uint64_t (*rtt)[2], (*rtt_pub)[2];
	/* chunk reads handed to the reader threads (readq.h): how many are
	 * out, and those back whose answers wait for room in the node's
	 * send queue (in order) */
	unsigned int reads_out;
	uint64_t paced_ns; /* the test hook's pace: nothing served before (ns) */
	struct {
		uint64_t conn;
		int64_t sid;
		int used;
	} reading[8]; /* the streams of the reads out (CN_READS_PER_WORKER) */
	struct cn_read *ready, *ready_tail;
	/* requests held (serve.c "Held requests"): those of streams with an
	 * answer still out (a client that sends the next request on a stream
	 * before its answer), answered after it, in order, and chunk
	 * requests that found the worker's reads all out (at most
	 * CN_PARK_MAX), so that requests memory answers pass them; at most
	 * CN_HELD_MAX in all, of at most 16 streams (hst: each with its
	 * count; a stream there waits, its next request held behind) */
	struct cn_read *held;
	unsigned int nheld, nparked;
	int held_retry; /* something a held request waits for changed */
	/* a held request's peer held its limit of answers: the held
	 * requests are looked at again from then (0: none) */
	uint64_t held_peer_ns;
	struct {
		uint64_t conn;
		int64_t sid;
		unsigned int n;
	} hst[16]; /* CN_HST_MAX */
	/* Answers written in this engine pass (cn_serve_wrote): their
	 * commands run in the next pass, so quic_node_conn_sendq does not
	 * count them yet; per connection (nwrote of them), and beyond the
	 * table's room for every connection (wrote_all). Cleared by the
	 * first pump of a later pass (serve.c). */
	struct {
		uint64_t conn, bytes;
	} wrote[32];
	unsigned int nwrote;
	uint64_t wrote_all, wrote_pass;
	/* the pump's timer: it defers the pump, which runs only as deferred
	 * work, after the pass's commands (engine_worker_pass) */
	struct engine_timer pump_tm;
};

struct cn_job;
struct cn_readq;
struct cn_sched;
struct cn_ss_tab;
struct engine;
struct engine_worker;
struct cn_sched_peer_info;

/* The node-wide upload cap, shared by the schedulers of every worker
 * (sched.c; any thread, lock-free): each takes the part of the rate its
 * backlogged peers are of all of them. */
struct cn_rate {
	_Atomic uint64_t rate;	 /* bytes/s; 0 = unlimited */
	_Atomic uint64_t active; /* backlogged peers under the cap, every scheduler */
};
/* Kinds of requester fault (enum cn_fault, sched.h). */
#define CN_FAULT_KINDS 4
/* Seconds of upload history kept for the status views: 5 minutes. */
#define CN_UP_HIST 300

/* The swarm table (serve.c): nodes that asked us for INFO, HAVE or PEERS
 * of some content lately, by the first 8 bytes of its id, so that a
 * PEERS answer can tell a downloader about the others (a seed has no
 * download of its own to learn them from). Bounded: CN_SWARM_MAX entries,
 * the oldest replaced; an entry older than CN_SWARM_TTL_MS is not given
 * out. Only addresses that completed a QUIC handshake with us get in. */
#define CN_SWARM_MAX 256
#define CN_SWARM_TTL_MS 120000
struct cn_swarm_ent {
	uint8_t id[8];
	uint64_t at; /* 0: free */
	struct sockaddr_storage addr;
};

/* What quic_node calls for CONTENT_ST_FETCH streams (see cn_serve_stop):
 * no lock; a callback counts itself in active while it uses cn, and the
 * stop path clears cn then waits for active to drop to zero. refs: the
 * content node and the QUIC node; the last to let go frees it. */
struct cn_hub {
	struct content_node *_Atomic cn; /* NULL once the content node is gone */
	atomic_uint active;
	atomic_uint refs;
};

/*
 * A slot of the download jobs table (jobs.c). While its job runs, live.
 * Within a tick of its end (unless a cancel holds it), content_node_trim
 * keeps what the jobs API shows of it, end: its JSON as compact text and
 * its progress line, a few KiB, and frees the job itself (~37 KiB: its
 * providers, requests and request; a soak node held one 10 minutes, the
 * growth of its last window, docs/LAB.md). The slot goes
 * CONTENT_JOB_KEEP_MS after the end.
 */
struct cn_job;
struct cn_job_end;
struct cn_jobent {
	uint64_t jid;
	struct cn_job *live;	/* NULL once ended and compacted */
	struct cn_job_end *end; /* set when live is NULL */
};

struct content_node {
	/* set by content_node_new (the hub), read-only afterwards: the
	 * handles and options every part uses */
	struct cstore *cs;
	struct store *store;
	unsigned int shares_dbi; /* shares.c */
	struct quic_node *quic;
	struct dhtnode *dht;
	struct guard *guard;
	const struct identity *id;
	uint16_t quic_port;
	unsigned int max_parallel, per_provider, req_timeout_ms;
	uint64_t peer_held;	  /* opts serve_peer_held or its default */
	uint64_t stall_ns;	  /* opts serve_stall_s, ns */
	int test_corrupt;
	unsigned int test_delay_ms;
	unsigned int test_lookup_poll_ms;
	atomic_int stopping; /* set once by content_node_free; every thread checks it */
	content_lan_fn lan_fn; /* LAN providers (content_node_set_lan), set before start */
	void *lan_arg;
	atomic_ullong lan_found; /* providers the LAN named to downloads */

	/* serving: serve.c */
	struct cn_hub *hub;
	struct cn_wtab **wtab; /* per engine worker */
	unsigned int nwtab;
	struct engine *eng;
	struct cn_readq *rq; /* reader threads (readq.h); NULL: reads on the workers */
	atomic_ullong serve_reads_worker; /* file reads done on a worker all the same */
	atomic_ullong serve_held; /* requests held behind their stream's answer out */
	atomic_ullong serve_parked; /* chunk requests held with their worker's reads out */
	atomic_int serving; /* workers may queue */
	struct cn_rate up_global; /* the node-wide upload cap (sched.h) */
	/* live limits (POST /v1/content/limits): bytes/s, 0 = unlimited;
	 * workers apply them when lim_gen moves */
	_Atomic uint64_t lim_peer, lim_lan;
	atomic_int lim_lan_capped;
	_Atomic uint64_t lim_up; /* the global cap as set (up_global holds it too) */
	atomic_uint lim_gen;
	/* the automatic cap (upauto.h), on while lim_auto: worker 0's tick
	 * owns the controller (allocated when first on) and its scratch, and
	 * publishes its status under auto_mu */
	atomic_int lim_auto;
	struct cn_upauto *upauto;
	struct cn_upauto_peer *auto_in;
	int auto_was_on;
	pthread_mutex_t auto_mu;
	struct cn_upauto_status auto_st;
	_Atomic uint64_t superseed_s; /* new content is super-seeded this long */
	/* upload history: bytes served per second, CN_UP_HIST seconds
	 * (worker 0 writes, one slot a second) */
	_Atomic uint64_t up_hist[CN_UP_HIST], up_hist_at[CN_UP_HIST];
	_Atomic uint64_t up_hist_sec, up_hist_last;
	atomic_ullong faults[CN_FAULT_KINDS], requester_bans;
	struct cn_ss_tab *ss; /* super-seeding (superseed.c) */
	atomic_ullong served_chunks, served_bytes, served_infos, served_manifests, serve_busy,
	    serve_notfound, serve_unavailable, serve_bad,
	    serve_stale; /* requests of streams gone before their turn: skipped */
	/* chunk requests put back unread because the node's send queue was
	 * full (serve_chunk): tried again in 1 ms */
	atomic_ullong serve_full;
	/* chunk requests passed over because their connection held
	 * peer_held of our answers (or CONTENT_SERVE_PEER_QUEUED in the node
	 * queue), and connections closed for holding them unmoved stall_ns */
	atomic_ullong serve_peer_full, serve_stalled;

	/* announcing, announce.c: the schedule (annsched.c) and its thread;
	 * announces counts ids sent in batches */
	pthread_mutex_t amu;
	pthread_cond_t acond;
	pthread_t athr;
	int athr_started;
	struct cn_anstate *as;
	atomic_ullong announces, announce_fail;

	/* a seed host's controls: pins.c (pins, eviction, rm), events.c */
	unsigned int pins_dbi;
	unsigned int circles_dbi; /* circles.c */
	unsigned int gkeys_dbi;	  /* groupkeys.c */
	unsigned int groups_dbi;  /* groups.c */
	/* withdrawals honoured (pins.c): content_withdrawn holds the pinned
	 * blobs of withdrawn versions (kept, never served); counts of blobs
	 * dropped and kept; honour 0 = content.honour_withdrawals off */
	unsigned int withdrawn_dbi;
	atomic_uint nwithdrawn;
	atomic_ullong withdrawn_dropped, withdrawn_kept, serve_withdrawn;
	int honour_withdrawals;
	pthread_mutex_t emu; /* one eviction at a time */
	atomic_ullong evicted;
	/* content removed lately (announce.c cn_gone_*): the first 8 bytes of
	 * each id and when, a ring of CN_GONE_IDS */
	atomic_ullong gone_id[CN_GONE_IDS], gone_ms[CN_GONE_IDS];
	atomic_uint gone_next;
	atomic_ullong gone_asked; /* requests for it answered unscored */
	struct cn_events *ev;
	/* Set with ev, before any job (cn_events_ended): a job thread that
	 * ends tells the event hub through it; the hub calls the jobs
	 * (cn_jobs_progress), so the jobs do not call the hub by name. */
	void (*job_ended)(struct cn_events *ev);

	/* the swarm table: serve.c (serve threads, under swmu) */
	pthread_mutex_t swmu;
	struct cn_swarm_ent swarm[CN_SWARM_MAX];
	atomic_ullong served_haves, served_peers;

	/* downloads: jobs.c (the table, under jmu) */
	pthread_mutex_t jmu;
	struct cn_jobent jobs[CONTENT_MAX_JOBS];
	unsigned int njobs;
	uint64_t next_job;

	/* share heads and subscriptions: subscribe.c (its thread) */
	unsigned int heads_dbi;
	unsigned int poll_s;
	struct cn_subs *subs;
	struct cn_watch *watch; /* push of heads: watch.c (its thread) */

	/* search over followed shares: search_api.c (syncs under search_mu) */
	struct cn_search *search;
	pthread_mutex_t search_mu;
	atomic_ullong search_indexed, search_queries, search_deferred;
	uint64_t search_deferred_said; /* ms of the last "deferred" log (search_mu) */

	/* blocklists: blocklist.c (rewrites under block_mu; any thread reads) */
	unsigned int blocked_dbi;
	int block_ready;
	pthread_mutex_t block_mu;
	atomic_uint nblocked;
	atomic_ullong blocked_refused;
};

/* proto.c: the fetch protocol's wire format (docs/PROTOCOL.md "Content").
 * Pure: no I/O, no locks, no store; fuzzed by tests/fuzz/fuzz_content_proto.c. */
#define CN_REQ_MAX 41	/* longest request: CHUNK, HAVE_HELD, HAVE_IDLE: op(1) id(32) 8 bytes */
#define CN_ANS_HEAD 5	/* answer header: status(1) body length(u32 BE) */
#define CN_INFO_HEAD 21 /* INFO answer: header, size(u64 BE), n(u64 BE) */
/* Whole INFO answer for n chunks: header, n CVs, have-bitmap (bit i%8 of
 * byte i/8 set when chunk i is held). */
#define CN_INFO_ANSWER(n) (CN_INFO_HEAD + (size_t)(n)*32 + ((size_t)(n) + 7) / 8)
/* Most chunks an INFO answer may list: a blob of CSTORE_DEFAULT_MAX_BLOB. */
#define CN_INFO_MAX_N (CSTORE_DEFAULT_MAX_BLOB / B3TREE_CHUNK_LEN)

/* HAVE answer for n chunks: header, size(u64 BE), n(u64 BE), bitmap. */
#define CN_HAVE_ANSWER(n) (CN_INFO_HEAD + ((size_t)(n) + 7) / 8)
/* PEERS answer: header, count of IPv4 (u8) and of IPv6 (u8) entries, then
 * the entries (6 bytes: address, port BE; 18 bytes for IPv6), at most
 * CN_PEX_MAX in all. */
#define CN_PEX_MAX 32
#define CN_PEERS_ANSWER_MAX (CN_ANS_HEAD + 2 + CN_PEX_MAX * 18)

/* A request. MANIFEST uses the first MANIFEST_SHARE_ID_LEN bytes of id,
 * only CHUNK has an index; HAVE_HELD and HAVE_IDLE say the asker holds
 * chunk held_first + i for each bit i (least significant first) of
 * held_mask. */
struct cn_wreq {
	uint8_t op; /* CONTENT_OP_* */
	uint8_t id[32];
	uint64_t index;
	uint32_t held_first, held_mask;
};
/* Length of a request by its operation byte (33, 41, 21, 41, 41); 0 if unknown. */
size_t cn_req_len(uint8_t op);
/* Encode q into out: returns its length, or -EINVAL (unknown op). */
int cn_req_encode(const struct cn_wreq *q, uint8_t out[CN_REQ_MAX]);
/* Decode exactly one request of len bytes. 0, or -EPROTO (unknown op or a
 * length that is not the op's). */
int cn_req_decode(struct cn_wreq *q, const uint8_t *buf, size_t len);
/*
 * Collect requests from a stream, one at a time: buf (CN_REQ_MAX bytes)
 * holds *blen bytes of the current request (0 before its first byte).
 * Takes bytes from *data / *len, advancing both, up to the end of the
 * current request. Returns 1 when buf holds a whole request (*blen is its
 * length; the caller handles it and sets *blen = 0), 0 when every byte was
 * taken and the request is still incomplete (or *len was 0), -EPROTO when
 * the operation byte is unknown (nothing taken).
 */
int cn_req_feed(uint8_t *buf, uint8_t *blen, const uint8_t **data, size_t *len);

/* Write an answer header. */
void cn_ans_head(uint8_t out[CN_ANS_HEAD], uint8_t status, uint32_t body_len);
/* One answer being received. buf is owned and may be kept for the next
 * answer (set len = 0); the owner frees it with cn_ans_free. */
struct cn_ans {
	uint8_t *buf;
	size_t len, cap;
	size_t limit; /* longest answer accepted, header included */
	int whole;    /* allocate limit bytes at once (chunk answers), the body
		       * CN_ANS_ALIGN-aligned (the store writes it with
		       * O_DIRECT without a copy) */
	size_t pad;   /* buf - the start of its allocation */
};
/* Alignment of a whole answer's body and of a serve thread's chunk. */
#define CN_ANS_ALIGN 4096
void cn_ans_free(struct cn_ans *a);
/* Store the chunk of a complete chunk answer (len bytes after its head):
 * cstore_put_chunk, giving the answer's buffer to the store (no copy)
 * when it is a whole answer's, written at the blob's next commit
 * (cstore_put_chunk_later); the answer then holds the buffer the store
 * gave back, or none (made again by the next cn_ans_feed), its bytes gone
 * (len 0). */
struct cstore;
int cn_ans_put_chunk(struct cn_ans *a, struct cstore *cs, const uint8_t *id, uint64_t index,
		     size_t len);
/*
 * Append bytes of an answer as they arrive. Returns 1 when the answer is
 * complete (buf, len), 0 when more is due, -EMSGSIZE (more than limit
 * bytes), -EPROTO (announced length over limit, or bytes past the end) or
 * -ENOMEM. After an error the answer is not usable.
 */
int cn_ans_feed(struct cn_ans *a, const uint8_t *data, size_t len);
/* The same for bytes in the middle of an answer: 1 when they were
 * appended and the answer is still short of its announced length, 0 when
 * nothing was done (header not read yet, room to grow, the last bytes, or
 * anything cn_ans_feed would refuse: call cn_ans_feed). */
int cn_ans_feed_mid(struct cn_ans *a, const uint8_t *data, size_t len);
/* Body of a whole answer whose header announces exactly len - 5 bytes:
 * 0 (*body, *blen point into ans) or -EBADMSG. */
int cn_ans_body(const uint8_t *ans, size_t len, const uint8_t **body, size_t *blen);
/* INFO answer (status OK) for a blob of size bytes in n chunks: writes the
 * first CN_INFO_HEAD bytes; the caller adds the CVs and the bitmap. */
void cn_info_head(uint8_t out[CN_INFO_HEAD], uint64_t size, uint64_t n);
struct cn_info {
	uint64_t size, n;
	const uint8_t *cvs;  /* n * 32 bytes, inside the answer */
	const uint8_t *bits; /* (n + 7) / 8 bytes, inside the answer */
};
/* Decode a whole INFO answer (status already checked): n must be
 * b3tree_nchunks(size) and at most max_n, len exactly CN_INFO_ANSWER(n).
 * The CVs are not verified here. 0 or -EBADMSG. */
int cn_info_decode(struct cn_info *in, const uint8_t *ans, size_t len, uint64_t max_n);
/* HAVE answer (status OK) for a blob of size bytes in n chunks: writes
 * the first CN_INFO_HEAD bytes; the caller adds the bitmap. */
void cn_have_head(uint8_t out[CN_INFO_HEAD], uint64_t size, uint64_t n);
/* Decode a whole HAVE answer (status already checked): n must be
 * b3tree_nchunks(size) and at most max_n, len exactly CN_HAVE_ANSWER(n);
 * in->cvs is NULL. 0 or -EBADMSG. */
int cn_have_decode(struct cn_info *in, const uint8_t *ans, size_t len, uint64_t max_n);
/* PEERS answer (status OK) listing n addresses (AF_INET / AF_INET6 with a
 * port; others skipped, at most CN_PEX_MAX taken) into out
 * (CN_PEERS_ANSWER_MAX bytes): returns its length. */
size_t cn_peers_encode(uint8_t *out, const struct sockaddr_storage *addrs, size_t n);
/* Decode a whole PEERS answer into out (at most cap): the number of
 * addresses, or -EBADMSG (a status other than OK, counts over
 * CN_PEX_MAX, a length that is not theirs, port 0). */
int cn_peers_decode(const uint8_t *ans, size_t len, struct sockaddr_storage *out, size_t cap);
/* A whole CHUNK answer (status already checked) carries exactly want
 * bytes: 0 or -EBADMSG. */
int cn_chunk_check(const uint8_t *ans, size_t len, uint64_t want);
/* Same address and port. */
int cn_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* serve.c: serving the fetch protocol (stream type CONTENT_ST_FETCH):
 * its QUIC handler registered at init, serve threads started and
 * stopped; touches the serving fields of struct content_node only. */
int cn_serve_init(struct content_node *cn, const struct content_node_opts *opts);
/* Live limits (POST /v1/content/limits, and at init). */
void cn_serve_set_limits(struct content_node *cn, const struct content_limits *l);

struct ctl_resp;
struct ctl;
/* POST /v1/content/limits body (serve_api.c): fields present replace
 * those in l / *superseed_s / *fair (QUIC's fair windows, 0 or 1); 0 or
 * -EINVAL with the 400 in resp. */
int cn_api_parse_limits(json_t *body, struct content_limits *l, uint64_t *superseed_s,
			int *fair, struct ctl_resp *resp);

/* superseed.c: super-seeding new content (docs/CONTENT.md). */
int cn_ss_init(struct content_node *cn);
void cn_ss_free(struct content_node *cn);
/* Super-seed id (nchunks chunks) from now for cn->superseed_s seconds
 * (none when 0). 0 or -ENOMEM. */
int cn_ss_add(struct content_node *cn, const uint8_t id[32], uint64_t nchunks);
/* The bitmap (n chunks) answered to the downloader at from (asking on
 * connection conn; idle: it said it has nothing to fetch from anyone,
 * HAVE_IDLE): when id is super-seeded, replaced by the chunks offered to
 * it (1); else 0. */
int cn_ss_filter(struct content_node *cn, const uint8_t id[32], const struct sockaddr_storage *from,
		 uint64_t conn, uint8_t *bits, uint64_t n, int idle);
/* The same at now_ms (util_now_ms's clock, not before the content was
 * added): the tests' clock for the rules that wait 20 s and more. */
int cn_ss_filter_at(struct content_node *cn, const uint8_t id[32],
		    const struct sockaddr_storage *from, uint64_t conn, uint8_t *bits, uint64_t n,
		    int idle, uint64_t now_ms);
/* The downloader at from, on connection conn, holds chunk first + i of
 * id for each bit i of mask (HAVE_HELD: it got them elsewhere): offered
 * to it, they are offers done and no longer count as offered; never
 * offered to it again. Indices past the content's end are ignored. */
void cn_ss_held(struct content_node *cn, const uint8_t id[32], const struct sockaddr_storage *from,
		uint64_t conn, uint32_t first, uint32_t mask);
/* The downloader at from fetched chunk index of id from us. */
void cn_ss_fetched(struct content_node *cn, const uint8_t id[32],
		   const struct sockaddr_storage *from, uint64_t index);
/* The super-seeded contents, for GET /v1/content/peers. */
json_t *cn_ss_json(struct content_node *cn);
/* Items past their window are cleared (their tables freed; before, only
 * the next use of their slot did it): on the node's tick. */
void cn_ss_trim(struct content_node *cn, uint64_t now_ms);
/* Items in use or not yet cleared since their use (tests). */
unsigned int cn_ss_slots_used(struct content_node *cn);

/* serve_api.c: GET/POST /v1/content/limits, GET /v1/content/peers,
 * GET /v1/content/upload and the serving metrics (ctl may be NULL). */
void cn_serve_routes(struct content_node *cn, struct ctl *ctl);
int cn_serve_start(struct content_node *cn);
void cn_serve_stop(struct content_node *cn);

/* shares.c: share records (the manifests held, in the node's store). */
int cn_shares_init(struct content_node *cn);
int cn_share_get(struct content_node *cn, const uint8_t share_id[MANIFEST_SHARE_ID_LEN],
		 uint8_t **enc, size_t *len);
/* Store a verified manifest unless an equal or newer one is held, through
 * the store's writer; durable when it returns 0 (control and job threads
 * only: it waits). A public one stored is queued for announcement.
 * withdrawn (may be NULL): gets the version m replaced when m withdraws
 * it ("wd" above its seq), else stays empty (is_signed 0); the caller
 * frees it. Errors of store_write_call. */
int cn_share_put(struct content_node *cn, const struct manifest *m, struct manifest *withdrawn);

/* subscribe.c, for the push of heads (watch.c): the heads followed (up
 * to max refs), and a head pushed by its publisher, its signature checked
 * by the caller: recorded when newer than the one known and followed,
 * then polled and fetched at once (0; -EALREADY not newer or not
 * followed; -EBADMSG its value names no share; errors of the store). */
struct cn_head_ref;
unsigned int cn_subs_followed(struct content_node *cn, struct cn_head_ref *out, unsigned int max);
/* Poll ref's head at once (a watch of its publisher just came up: what
 * was published before it is found by this poll, not the next one). */
void cn_subs_poll_now(struct content_node *cn, const struct cn_head_ref *ref);
int cn_subs_pushed(struct content_node *cn, const struct cn_head_ref *ref, int64_t seq,
		   const uint8_t sig[64], const uint8_t *v, size_t vlen);

/* watch.c: the push of new heads to connected subscribers (watch.h,
 * docs/CONTENT.md "Push to subscribers"). init registers stream type
 * CONTENT_ST_WATCH (before the engine starts) and takes the
 * subscriptions' two entry points as callbacks (subscribe.c calls this
 * file: no call back into it); start runs the
 * subscriber's thread; kick makes it look at the heads followed now;
 * publish writes a new version's signed item to every subscriber
 * watching it (any thread); json: the counters for content stats. */
struct cn_watch_subs { /* cn_subs_followed, cn_subs_pushed, cn_subs_poll_now */
	unsigned int (*followed)(struct content_node *cn, struct cn_head_ref *out,
				 unsigned int max);
	int (*pushed)(struct content_node *cn, const struct cn_head_ref *ref, int64_t seq,
		      const uint8_t sig[64], const uint8_t *v, size_t vlen);
	void (*poll_now)(struct content_node *cn, const struct cn_head_ref *ref);
};
int cn_watch_init(struct content_node *cn, unsigned int keepalive_ms,
		  const struct cn_watch_subs *subs);
int cn_watch_start(struct content_node *cn);
void cn_watch_free(struct content_node *cn);
void cn_watch_kick(struct content_node *cn);
void cn_watch_publish(struct content_node *cn, const char *name, size_t nl, int64_t seq,
		      const uint8_t sig[64], const uint8_t *v, size_t vlen);
json_t *cn_watch_json(struct content_node *cn);

/* search_api.c: the search index kept in step with the heads followed
 * or published and the manifests held (search.h), POST /v1/content/search.
 * cn_search_sync indexes what changed and drops what is no longer
 * followed or held; called after each change and at start (a rebuild). */
int cn_search_init(struct content_node *cn, struct ctl *ctl);
void cn_search_fini(struct content_node *cn);
void cn_search_sync(struct content_node *cn);

/* blocklist.c: ids refused because a blocklist share followed lists them
 * (docs/CONTENT.md "Blocklists"). cn_blocked: 1 when id (32 bytes: a
 * content id, 20: a share id) is listed; lock-free, cheap when none is.
 * cn_block_sync rereads every blocklist held and rewrites the table
 * (durable). cn_block_parse_line: 1 and the id for an id line, 0 for a
 * blank or comment line, -EINVAL otherwise. At most CN_BLOCK_MAX ids. */
#define CN_BLOCK_MAX 100000
int cn_block_init(struct content_node *cn);
void cn_block_fini(struct content_node *cn);
int cn_blocked(struct content_node *cn, const uint8_t *id, size_t len);
void cn_block_sync(struct content_node *cn);
int cn_block_parse_line(const char *line, size_t len, uint8_t id[32], size_t *idlen);

/* subscribe.c: share heads (BEP 46) we publish and follow, the thread
 * that polls and keeps them alive, their /v1/content routes. */
struct cn_subs;
struct ctl;
struct cn_get_req;
int cn_subs_init(struct content_node *cn, struct ctl *ctl);
int cn_subs_start(struct content_node *cn);
void cn_subs_stop(struct content_node *cn);
/* Publish m's head (m signed by our key, already stored): sign the BEP 46
 * item with seq = m->seq, record it (durable), put it with cas. 0 or
 * -errno (the record; a DHT put that fails is retried by the thread). */
int cn_head_publish(struct content_node *cn, const struct manifest *m);
/* Our share of that name was removed (content rm): its head is no longer
 * ours to keep alive, so its record loses CN_HEAD_OWN (deleted when
 * nothing else holds it) and the DHT forgets the item within its 2 h.
 * Without this every name ever published was put again every 30 min for
 * good (the soak's DHT items and content_heads grew with every share). */
void cn_head_retire(struct content_node *cn, const uint8_t pk[32], const char *name);
/* Publish m (name, items, visibility set; not signed) as the next version
 * of our share of that name: seq after the held version's and linked to
 * it, signed, stored (durable), super-seeded, announced when
 * manifest_announced, its head published (a head error is logged only).
 * m->withdraw nonzero: it withdraws every earlier version (set to its
 * seq); else it carries the held version's withdrawal on (a host that
 * missed the withdrawing version honours it at any later one). 0 or the
 * error of signing (-EINVAL, -E2BIG) or of the store. */
int cn_share_publish(struct content_node *cn, struct manifest *m);
/* A get request naming a head (KEY/NAME or magnet): look the head up,
 * check it names the share of that key and name, and fill rq (share id,
 * head_pk, want_mh). 0, or an error already written to resp. */
/* Wait until job jid is finished or util_now_ms() reaches end: 0 when it
 * is done, -EIO (failed: err says why), -ETIMEDOUT, -ENOENT. */
int cn_job_wait(struct content_node *cn, uint64_t jid, uint64_t end, char *err, size_t errcap);
struct ctl_resp;
int cn_head_resolve_get(struct content_node *cn, const char *ref, struct cn_get_req *rq,
			struct ctl_resp *resp);

/* announce.c: announcing on the DHT. */
/* The schedule, before anything is queued (content_node_new): 0 or -ENOMEM. */
int cn_announce_init(struct content_node *cn);
/* Queue id for announcement (len 32: content id; len 20: share id). */
void cn_announce(struct content_node *cn, const uint8_t *id, size_t len);
/* Stop announcing id (content rm, eviction); a content id (len 32) is
 * remembered as gone (cn_gone_recent). */
void cn_unannounce(struct content_node *cn, const uint8_t *id, size_t len);
/* Was content id removed in the last CN_GONE_MS (any thread)? 1 or 0. */
int cn_gone_recent(struct content_node *cn, const uint8_t *id);
struct cn_anq_stats;
/* The schedule's figures: backlog, oldest announce's age (annsched.h). */
void cn_announce_stats(struct content_node *cn, struct cn_anq_stats *st);
/* Start the announcing thread (none without a DHT): 0 or the error of
 * pthread_create (positive). Stop wakes and joins it and frees the list. */
int cn_announce_start(struct content_node *cn);
void cn_announce_stop(struct content_node *cn);

/* pick.c: which chunks a download asks for next, rarest first (pure). */
struct cn_pick {
	const uint8_t *have, *busy; /* per chunk: held; requests in flight */
	const uint8_t *avail;	    /* per chunk: providers known to have it */
	uint64_t n, cursor;	    /* chunks; the lowest one not held */
	uint32_t *scratch;	    /* n entries, the caller's */
};
/* Ranks above this count as this (CONTENT_MAX_PROVIDERS). */
#define CN_PICK_LEVELS CONTENT_MAX_PROVIDERS
/*
 * Which chunks a job asks for next, in two steps, so that it can keep the
 * order between picks (swarm.c, CN_PICK_ORDER_MS): cn_pick_order writes
 * the eligible chunks (not held, not asked for, some provider known to
 * have them) to pk->scratch, rarest first, ties in scan order from a start
 * drawn from r (a random number; see pick.c), and returns how many;
 * cn_pick_take offers scratch[*pos..m) to take(arg, index), up to want of
 * them, skipping entries no longer eligible, and moves *pos past the
 * entries it consumed before the first that no provider could take. take
 * returns 1 (asked for), 0 (no provider with room has it: the next one is
 * offered) or < 0 (stop). cn_pick_take returns how many were taken.
 */
uint64_t cn_pick_order(const struct cn_pick *pk, uint64_t r);
unsigned int cn_pick_take(const struct cn_pick *pk, uint64_t *pos, uint64_t m, unsigned int want,
			  int (*take)(void *arg, uint64_t index), void *arg);

/*
 * The pipelining depth of a provider after a good chunk answered in ans_ms
 * (CN_ANS_TARGET_DIV): depth + 1 (at most max) when ans_ms <= target / 2;
 * halved (at least 1) when ans_ms > target and may_cut (the request was
 * sent after the last cut; the caller then records the cut); else depth.
 * Pure (pick.c), checked by tests/unit/test_content_pick.c.
 */
unsigned int cn_depth_next(unsigned int depth, unsigned int max, uint64_t ans_ms,
			   uint64_t target, int may_cut);

/*
 * Has a request sent at start_ms timed out at now? Once timeout_ms has
 * passed with no byte of its answer: since it was sent, or since the last
 * byte arrived (last_ms, 0 for none): an answer still arriving is not
 * given up (in a 51-node lab nearly every timeout cut an answer in the
 * middle, and its bytes, ~4% of all the swarm moved, were sent again by
 * another provider); and in any case CN_REQ_MAX_MULT times timeout_ms
 * after it was sent, so an answer that trickles in cannot hold a request
 * slot for ever. Pure (pick.c), checked by tests/unit/test_content_pick.c.
 */
#define CN_REQ_MAX_MULT 4
int cn_req_expired(uint64_t start_ms, uint64_t last_ms, uint64_t timeout_ms, uint64_t now);


/* jobs.c: the download jobs (each one's state machine: swarm.c and its
 * parts, private to them in swarm_int.h). */
/* --item selections of one get: 8 */
#define CN_GET_MAX_ITEMS 8
struct cn_get_req {
	uint8_t id[32];
	size_t id_len;	   /* 32 content id, 20 share id */
	char out[4096];	   /* "" = keep in the store only */
	char from[8][128]; /* explicit providers (quic_node targets) */
	unsigned int nfrom;
	bool link;	   /* export as a read-only hard link of the store's copy */
	bool raw;	   /* a sealed share: fetch and keep the ciphertext, decrypt nothing
			    * (a seed host; items under their placeholder paths) */
	bool seed_sealed;  /* a subscription: a sealed share this node cannot open
			    * is followed as ciphertext (raw), not refused */
	char ref[300];	   /* the request named a head (KEY/NAME or magnet): resolved
			    * by cn_head_resolve_get into the fields below */
	/* a share followed through its head (subscribe.c): the manifest
	 * must be signed by head_pk; with has_mh it must be the version
	 * whose manifest_digest() is want_mh, else the newest found */
	bool has_head, has_mh;
	uint8_t head_pk[32];
	uint8_t want_mh[32];
	/* a share: fetch and keep its manifest only (share show of a share
	 * not held), or only the items named (paths, or folders: a path
	 * ending in '/', or any prefix that ends at a '/' of the item's) */
	bool manifest_only;
	unsigned int nsel;
	char sel[CN_GET_MAX_ITEMS][MANIFEST_MAX_PATH + 2];
};
/* Start (or join) a download; *job_id gets its number. */
int cn_job_start(struct content_node *cn, const struct cn_get_req *rq, uint64_t *job_id);
/* JSON of a job (NULL if unknown; caller json_decref()s). */
json_t *cn_job_json(struct content_node *cn, uint64_t job_id);
json_t *cn_jobs_json(struct content_node *cn);
void cn_jobs_stop(struct content_node *cn);
/* A job's progress, for the event stream (events.c). */
struct cn_progress {
	uint64_t job;
	uint8_t id[32];
	size_t id_len;
	char state[16]; /* the job's, "cancelled" once a cancelled job ended */
	char error[160];
	int finished;
	uint64_t done, total, rate_bps, items_done, items_total, bad_chunks, elapsed_ms;
	unsigned int providers; /* connected, with a bitmap */
};
/* Every job's progress into p (at most cap): the count. */
size_t cn_jobs_progress(struct content_node *cn, struct cn_progress *p, size_t cap);
/* Cancel a running job: it stops (waited for, at most wait_ms), its
 * request slots and connections are let go, its partial blob is deleted
 * (*deleted = 1) and it reads "cancelled". 0, -ENOENT (no such job),
 * -EALREADY (it had ended), -ETIMEDOUT (asked to stop, still stopping). */
int cn_job_cancel(struct content_node *cn, uint64_t job_id, unsigned int wait_ms, int *deleted);
/* Addresses of the providers of the running download of id (connected,
 * with a bitmap), at most cap, none equal to except: the count. */
size_t cn_job_peers(struct content_node *cn, const uint8_t id[32],
		    const struct sockaddr_storage *except, struct sockaddr_storage *out, size_t cap);

/* private.c: sealed shares (docs/PRIVATE.md "Sealed shares"). Adding:
 * cn_seal_add_new with the recipients' node keys (the cap checked before
 * any crypto: -E2BIG; a key that is no curve point -EINVAL, one listed
 * twice -EEXIST, *bad its index), then cn_seal_add_file per item (the
 * plaintext of fd, size bytes, encrypted on the way into the store; the
 * manifest gets the ciphertext blob under its placeholder path), then
 * cn_seal_add_finish (sealed metadata, wrapped keys: m becomes sealed and
 * private; -ENOENT with no item). */
struct cn_seal_add;
struct seal_meta_item;
int cn_seal_add_new(struct cn_seal_add **out, const uint8_t (*keys)[32], size_t n, size_t *bad);
int cn_seal_add_file(struct content_node *cn, struct cn_seal_add *sa, struct manifest *m, int fd,
		     uint64_t size, const char *rel, const char *type);
int cn_seal_add_finish(struct cn_seal_add *sa, struct manifest *m);
/* Re-encryption (revoke.c): item index of old, a sealed share whose
 * content key is old_ck, decrypted chunk by chunk from the store and
 * encrypted under sa's new key on its way back in (no plaintext file);
 * added to m and sa like cn_seal_add_file. it: the old item's real path,
 * type and size. -EBADMSG when an old chunk does not open. */
int cn_seal_add_reseal(struct content_node *cn, struct cn_seal_add *sa, struct manifest *m,
		       const uint8_t old_ck[32], const struct manifest *old, uint32_t index,
		       const struct seal_meta_item *it);
/* Re-wrap: m gets old's items and sealed metadata as they are and the
 * content key ck wrapped for sa's recipients (sa's own key unused). */
int cn_seal_rewrap(struct cn_seal_add *sa, const uint8_t ck[32], const struct manifest *old,
		   struct manifest *m);
void cn_seal_add_free(struct cn_seal_add *sa);
/* Reading: the content key of sealed m opened with this node's key, else
 * with a group key held (groupkeys.c): 0, -ENOKEY (not a recipient),
 * -EBADMSG (our entry fails to open), -E2BIG. */
int cn_seal_key(struct content_node *cn, const struct manifest *m, uint8_t ck[32]);
/* The real items of sealed m (its metadata opened with ck and checked
 * against the manifest's blobs: count, sizes, valid and unique paths):
 * 0, -EBADMSG, -ENOMEM. Free with cn_seal_view_free. */
struct cn_seal_view {
	uint8_t *plain;
	struct seal_meta_item *it; /* item i of the manifest; pointers into plain */
	uint32_t n;
};
int cn_seal_view_open(const uint8_t ck[32], const struct manifest *m, struct cn_seal_view *v);
void cn_seal_view_free(struct cn_seal_view *v);
/* Path of item i, NUL-terminated, into buf: 0 or -ENAMETOOLONG. */
int cn_seal_view_path(const struct cn_seal_view *v, uint32_t i, char *buf, size_t cap);

/* 0 when k is a node key a share can be sealed to (an Ed25519 point
 * libsodium converts to X25519), else -EINVAL. */
int cn_key_check(const uint8_t k[32]);

/* circles.c: named recipient lists kept locally (database
 * content_circles). A name is 1..64 bytes of A-Z a-z 0-9 . _ -; a circle
 * holds at most 500 keys (a share's cap). */
#define CN_CIRCLE_NAME_MAX 64

/* 1 if S is 1..MAX bytes of [A-Za-z0-9._-] (circles.c). */
int cn_label_valid(const char *s, size_t max);
#define CN_CIRCLE_MAX_KEYS 500
struct ctl;
/* Open the database and, with ctl, add the /v1/content/circles routes. */
int cn_circles_init(struct content_node *cn, struct ctl *ctl);
/* The keys of circle name into keys (cap entries), *n their count: 0,
 * -ENOENT, -EINVAL (a bad name), -E2BIG (over cap), -EBADMSG. */
int cn_circle_get(struct content_node *cn, const char *name, uint8_t (*keys)[32], size_t cap,
		  size_t *n);

/* groupkeys.c: group keys held (database content_group_keys, by group
 * id): of groups this node owns (groups.c) and of those it is a member of,
 * from the records it fetched. A group's record is the one item (type
 * CN_GROUP_TYPE) of its owner's public share CN_GROUP_SHARE_PREFIX NAME. A
 * name is 1..CN_GROUP_NAME_MAX of A-Z a-z 0-9 . _ -; at most
 * CN_GROUPS_HELD_MAX keys held (each is tried on a sealed share this
 * node's own key does not open: one X25519 each). */
#define CN_GROUP_TYPE "application/x-weft-group"
#define CN_GROUP_SHARE_PREFIX "weft-group."
#define CN_GROUP_NAME_MAX 48
#define CN_GROUPS_HELD_MAX 256
struct cn_group_held {
	uint8_t owner[32];
	uint64_t epoch;
	uint8_t seed[32];
	char name[CN_GROUP_NAME_MAX + 1];
};
int cn_groupkeys_init(struct content_node *cn);
/* Group id of (owner, name): BLAKE3 derive_key "weft group id v1" over
 * owner || name. */
void cn_group_id(const uint8_t owner[32], const char *name, uint8_t gid[32]);
/* 0, -ENOENT, -EBADMSG. */
int cn_group_held_get(struct content_node *cn, const uint8_t gid[32], struct cn_group_held *g);
/* Record g for gid (durable): -ESTALE when a higher epoch is held (a
 * replayed record), -ENOSPC past CN_GROUPS_HELD_MAX, the store's errors. */
int cn_group_hold(struct content_node *cn, const uint8_t gid[32], const struct cn_group_held *g);
/* A fetched group record (len bytes) from the share share_name signed by
 * owner: verified against that owner, its group id checked against (owner,
 * name), opened with our node key, held. 0; -EPERM (not signed by the
 * owner, or another group's); -EPROTO (does not parse); -ENOENT (not a
 * member of this epoch); -EBADMSG (our entry does not open, or opens to
 * another group's key); -ESTALE; -EINVAL (not a group share). */
int cn_group_import(struct content_node *cn, const uint8_t owner[32], const char *share_name,
		    const uint8_t *rec, size_t len);
/* The content key of sealed m through a group key held: 0, -ENOKEY (none
 * opens it), -EBADMSG. */
int cn_group_unwrap(struct content_node *cn, const struct manifest *m, uint8_t ck[32]);
/* [{"group_id", "name", "owner", "epoch"}...] of the keys held. */
json_t *cn_groups_held_json(struct content_node *cn);

/* groups.c: groups this node owns (database content_groups) and the
 * /v1/content/groups API: create, add and remove members (a removal
 * rotates the group key), publish the record. */
int cn_groups_init(struct content_node *cn, struct ctl *ctl);
/* The Ed25519 key posts to group ref wrap for: ref is NAME (a group this
 * node owns) or OWNERKEY/NAME (one whose key it holds). 0, -ENOENT, -EINVAL. */
int cn_group_post_key(struct content_node *cn, const char *ref, uint8_t pk[32]);

/* pins.c: pins (database content_pins), eviction, removal. */
int cn_pins_init(struct content_node *cn);
/* Pin (on) or unpin id (32: content id, 20: share id: every item of its
 * held manifest); durable when it returns 0 (errors of store_write_sync). */
int cn_pin_set(struct content_node *cn, const uint8_t *id, size_t len, int on);
/* 1 when id itself is pinned. */
int cn_pinned(struct content_node *cn, const uint8_t *id, size_t len);
json_t *cn_pins_json(struct content_node *cn);
/* cstore_opts.make_room: evict unpinned blobs (pins.c's order) until need
 * bytes fit; the number evicted (0: nothing would make it fit). */
int cn_make_room(void *arg, uint64_t need);
/* One blob that eviction may take, and the pure choice of which go
 * (tests/unit/test_content_pins.c): sorts c (bad blobs, then blobs of no
 * held share, then the rest; oldest first) and returns how many of the
 * first must go so that need more bytes fit the quota and an entry more
 * fits max_blobs; 0 when even all of them would not do. */
struct cn_evict_cand {
	uint8_t id[32];
	uint64_t size, added;
	int listed; /* -1 bad, 0 in no held share, 1 in one */
};
size_t cn_evict_plan(struct cn_evict_cand *c, size_t n, uint64_t need, uint64_t used,
		     uint64_t quota, uint32_t nblobs, uint32_t max_blobs);
/* content rm: a content id (its blob, unpinned, no longer announced) or
 * a share id (its record, and its items no other held share lists).
 * *nblobs: blobs deleted. 0, -ENOENT, or a store error. */
int cn_remove(struct content_node *cn, const uint8_t *id, size_t len, unsigned int *nblobs);
/* A withdrawal honoured (cn_share_put, after a version whose "wd" covers
 * old replaced it): each item of old that no held manifest lists any more
 * is unannounced and dropped, or, when pinned (the blob or old's share),
 * kept in content_withdrawn and never served again. Counts into the
 * node's withdrawn_* counters. 0 or a store error. */
int cn_withdraw_items(struct content_node *cn, const struct manifest *old);
/* cn_share_put, then, when m withdraws the version it replaced and this
 * node honours withdrawals (content.honour_withdrawals), that version's
 * items through cn_withdraw_items. What every taker of a version calls. */
int cn_share_take(struct content_node *cn, const struct manifest *m);
/* 1 when id is a kept blob of a withdrawn version (not to be served). */
int cn_withdrawn(struct content_node *cn, const uint8_t id[32]);

/* events.c: the event stream of the jobs (GET /v1/content/events). */
#define CN_EV_SUBS 16	 /* subscribers at once (the control server allows 64 connections) */
#define CN_EV_QUEUE 64	 /* lines queued per subscriber: 32 s of one job's progress */
#define CN_EV_LINE 512	 /* longest line */
#define CN_EV_TICK_MS 500 /* progress sampled and sent every */
struct cn_events;
struct cn_evsub;
/* The hub and its ticker thread (tick_ms 0: CN_EV_TICK_MS). */
int cn_events_new(struct cn_events **out, struct content_node *cn, unsigned int tick_ms);
void cn_events_free(struct cn_events *ev);
/* Readers (cn_events_read) get -ESHUTDOWN from now on, at once; no new
 * subscriber (the stop; cn_events_free still joins the ticker). */
void cn_events_stop(struct cn_events *ev);
/* A job has ended (j->finished set, its lock let go): its end line goes
 * out now, not at the next tick. Any thread; ev NULL: nothing. */
void cn_events_ended(struct cn_events *ev);
/* Subscribe to job's events (0: every job's): 0 or -EBUSY (CN_EV_SUBS). */
int cn_events_sub(struct cn_events *ev, uint64_t job, struct cn_evsub **out);
void cn_events_unsub(struct cn_events *ev, struct cn_evsub *s);
/* Queue line (len bytes, newline included) to job's subscribers; one whose
 * queue is full is dropped. */
void cn_events_publish(struct cn_events *ev, uint64_t job, const char *line, size_t len);
/* Whole lines queued for s into buf, waiting at most wait_ms for one: the
 * bytes (0: none in time), -EPIPE (s was dropped: too slow), -ESHUTDOWN
 * (its job ended and everything was read, or the hub is going). */
long cn_events_read(struct cn_events *ev, struct cn_evsub *s, char *buf, size_t cap,
		    unsigned int wait_ms);
unsigned long long cn_events_dropped(struct cn_events *ev);

/* seed_api.c: rm, pin, unpin, pins, cancel, events on the control API;
 * the announce and eviction figures added to content stats. */
struct ctl;
void cn_seed_routes(struct content_node *cn, struct ctl *ctl);
void cn_seed_stats(struct content_node *cn, json_t *stats);

/* export.c: export a complete blob to path (atomically, via a temporary
 * file), re-verifying every chunk; but a link (as_link) of a blob whose
 * every chunk the caller verified on arrival and stored itself (self:
 * a download job that fetched the whole item) reads nothing back. */
int cn_export(struct content_node *cn, const uint8_t id[32], const char *path, bool as_link,
	      bool self);
/* cn_export of a sealed item (never a link): each verified chunk is
 * decrypted with the item key and only the plaintext written; -EBADMSG
 * when a chunk fails its tag. */
struct cn_export_key {
	uint8_t item_key[32];
	uint64_t plain_size;
};
int cn_export_sealed(struct content_node *cn, const uint8_t id[32], const char *path,
		     const struct cn_export_key *key);

/* content_node.c: request bodies of the control API, checked without a
 * node (tests/fuzz/fuzz_ctl_json.c). Each returns 0 with its output
 * filled, or -EINVAL with a 400 answer (JSON error) put in resp. */
struct ctl_resp;
/* POST /v1/content/add {"paths": [ABS, ...], "name"?: S, "private"?: BOOL} */
struct cn_add_args {
	json_t *paths;			  /* non-empty array of absolute paths (borrowed) */
	char name[MANIFEST_MAX_NAME + 1]; /* a valid share name (private: without its
					   * suffix, at most CN_PRIV_BASE_MAX bytes) */
	int priv;
	/* private: recipients named by key ("to") and by circle ("to_circle",
	 * borrowed array of names); each at most 500, checked before any key
	 * is parsed */
	uint8_t (*to)[32];
	unsigned int nto;
	json_t *circles;
	json_t *groups; /* "to_group": [NAME | OWNERKEY/NAME, ...] (borrowed) */
};
/* A private share's name is NAME-<16 hex> (the suffix keyed by the node
 * key: the same NAME gives the same share, versions and all, and nobody
 * can guess its share id from the publisher key and NAME). */
#define CN_PRIV_BASE_MAX 47
int cn_api_parse_add(json_t *body, struct cn_add_args *a, struct ctl_resp *resp);
/* Free what cn_api_parse_add allocated (a->to); NULL-safe fields. */
void cn_api_add_args_free(struct cn_add_args *a);

/* revoke.c: POST /v1/content/rewrap and /v1/content/reencrypt. */
void cn_revoke_routes(struct content_node *cn, struct ctl *ctl);

/* private_api.c: the control API's side of sealed shares. */
/* A manifest as JSON (what any host sees). */
json_t *cn_manifest_json(const struct manifest *m);
/* cn_manifest_json, and for a sealed share this node can open, "opened":
 * its real items; a node that cannot gets "recipient": false. */
json_t *cn_share_json(struct content_node *cn, const struct manifest *m);
/* "to", "to_circle", "to_group" of body into a (a->priv set by the
 * caller); counts checked before any key is parsed. 0 or an error
 * written to resp. */
int cn_api_parse_recipients(json_t *body, struct cn_add_args *a, struct ctl_resp *resp);
/* The full name of private share base (base-<16 hex>, keyed by the node). */
void cn_private_name(const struct content_node *cn, const char *base, char *out, size_t cap);
/* The recipients of a: this node first, then "to", circles, groups;
 * repeats dropped, at most SEAL_MAX_RECIPIENTS. r has room for that many.
 * 0 or an error written to resp. */
int cn_gather_recipients(struct content_node *cn, const struct cn_add_args *a, uint8_t (*r)[32],
			 size_t *n, struct ctl_resp *resp);
/* POST /v1/content/get {"id": HEX64|HEX40|KEY/NAME|MAGNET, "out"?: ABS, "from"?: [TARGET, ...],
 * "items"?: [PATH, ...]} */
int cn_api_parse_get(json_t *body, struct cn_get_req *rq, struct ctl_resp *resp);

#endif
