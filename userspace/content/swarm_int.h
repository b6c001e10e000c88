/* SPDX-License-Identifier: MIT */
/*
 * A download job's state, private to the files of a download, which call
 * one another one way, top to bottom:
 *   jobs.c         the table of jobs (content_node_int.h)
 *   swarm.c        a job's state machine, on the job's thread
 *   swarm_peers.c  the peer set: providers, DHT lookups, scores
 *   swarm_conn.c   requests on the wire: slots, lanes, QUIC callbacks
 * Lock order: cc->mu, then job->mu (see struct cn_cc); the middle bytes
 * of a chunk answer take neither (cn_req.fst, swarm_conn.c feed_fast).
 */
#ifndef WEFT_CONTENT_SWARM_INT_H
#define WEFT_CONTENT_SWARM_INT_H

#include "content/content_node_int.h"

#define CN_MAX_REQS 96 /* request slots: parallel chunk requests + INFO / MANIFEST */
_Static_assert(CONTENT_MAX_PROVIDERS <= 255, "availability counts are bytes");
/* Longest answers accepted (status + header + body). */
#define CN_CHUNK_ANSWER (CN_ANS_HEAD + B3TREE_CHUNK_LEN)
#define CN_MANIFEST_ANSWER (CN_ANS_HEAD + MANIFEST_MAX_SIZE)
/* Without progress for 60 s (no provider answers, none found) a job fails. */
#define CN_STALL_MS 60000
/* A download with explicit providers that all answered NOT_FOUND, and no
 * other provider found meanwhile, fails after this (the DHT lookup's time). */
#define CN_NOTFOUND_MS 5000
/* The same with providers found through the DHT: several lookups (every
 * CN_RELOOKUP_MS) found no other (the DHT keeps a removed provider's
 * announce up to 30 min: without this a get after content rm stalled for
 * CN_STALL_MS and said "no provider found"). Also how long a share's
 * providers that all sent a manifest that fails verification are given
 * before the job fails with that reason. */
#define CN_NOTFOUND_DHT_MS 15000
/* Providers looked up again at most every 3 s while none is usable, and
 * every 15 s while the download runs: other downloaders announce what
 * they are fetching as soon as they start, and serve the chunks they
 * have (a distribution then does not rest on its seed alone). */
#define CN_RELOOKUP_MS 3000
#define CN_REGATHER_MS 15000
/* While no lookup of an item found a provider yet, the next comes sooner:
 * 0.5 s after the first, then 1 s, 2 s, then every CN_RELOOKUP_MS. A
 * download started right after the content was added on its seed looks
 * it up before the seed's announce has landed (lookup, then announce):
 * in 2 of 6 labs of 51 nodes every downloader's first lookup found
 * nobody, and waited 3 s for the next (docs/LAB.md "The first lookup"). */
#define CN_FIRST_RELOOKUP_MS 500
/* When to look a job's providers up again, ms after its last lookup
 * began: npeers in its table, usable of them, nlookups made for the item.
 * None usable: CN_RELOOKUP_MS, or the first schedule above while none was
 * ever found; a few: CN_EARLY_LOOKUP_MS doubling; else CN_REGATHER_MS. */
uint64_t cn_relookup_ms(unsigned int npeers, unsigned int usable, unsigned int nlookups);
/* While fewer than CN_WANT_PROVIDERS providers are usable, the lookup is
 * repeated sooner: 1 s after the first, then 2, 4, 8 s (other downloaders
 * announce themselves within a second or two of their start). */
#define CN_WANT_PROVIDERS 8
#define CN_EARLY_LOOKUP_MS 1000
/* A provider that has only part of the item (another downloader, or a
 * seed showing super-seeding's offers) is asked for its bitmap again
 * (HAVE) every CN_INFO_REFRESH_MS: its bitmap grows. Sooner once it is
 * idle (nothing of it in flight after a pick, though the job had room:
 * it showed nothing we still lack; or, for a super-seed's offers, every
 * one asked for with room for one more request, so that its next offers
 * come before the last are in, not a round trip after: docs/CONTENT.md
 * "Offers asked for before they run out"): CN_INFO_FAST_MS after its last
 * answer, the gap doubling (up to CN_INFO_REFRESH_MS) while refreshes
 * show little new, back to CN_INFO_FAST_MS when one shows a few chunks
 * (CN_INFO_FAST_GAIN). Without it a
 * lone downloader of a super-seeded item fetched the 4 chunks it was
 * offered and waited a second for the next offer, twice, until the seed
 * saw it alone (CN_SS_ALONE_MS): 64 MiB over a 1 Gbit/s link in 2.6 s
 * instead of 0.6 (docs/CONTENT.md "Idle providers asked again sooner"). */
#define CN_INFO_REFRESH_MS 1000
#define CN_INFO_FAST_MS 20
/* A refresh that showed at least CN_INFO_FAST_GAIN chunks we lack (a
 * super-seed's next offers) brings the gap back to CN_INFO_FAST_MS; one
 * that showed fewer doubles it: the gap settles where a refresh pays for
 * itself. Another downloader gains a chunk or two per 20 ms: in a 51-node
 * lab, asking it again after any gain cost 5-10% more weftd CPU. */
#define CN_INFO_FAST_GAIN 4
/* A refresh that told a super-seed CN_INFO_FAST_GAIN or more of its offers
 * held (HAVE_HELD) but showed fewer new chunks we lack (its new offers are
 * chunks we got elsewhere too: seeds offer from their own cursors and run
 * into what another seed sent) is followed by the next CN_INFO_TOLD_MS
 * after its answer: each such round ends that many offers for good, so an
 * honest seed has at most nchunks / CN_INFO_FAST_GAIN of them per item,
 * and no provider gets more (one that shows what it was told again would
 * be asked every millisecond: past that many, the usual gaps). With
 * the doubling gap a seed whose offers had run into another's chunks was
 * asked 20, 40, ... 640 ms later, and sent nothing more in a 64 MiB
 * download (docs/CONTENT.md "Offers asked for before they run out"). */
#define CN_INFO_TOLD_MS 1
/* A provider whose last bitmap showed a super-seed's offers (at most
 * CN_SHOWN_MAX chunks we lack), every one of them held or asked for, is
 * asked again at once (CN_INFO_OFFERS_MS after its answer, not the 20 ms
 * gap) once we hold CN_INFO_FAST_GAIN of them: the seed has sent those,
 * so its window has room for that many new offers. At 20 ms a window of
 * 32 offers (8 MiB) held a lone downloader of new content on a 10 Gbit/s
 * veth to about 400 MB/s until the seed saw it alone (docs/CONTENT.md
 * "The lone download's bound, and the next offers asked for once some are
 * in"). The list is replaced by
 * each answer, so each such refresh follows CN_INFO_FAST_GAIN more chunks
 * held: at most nchunks / CN_INFO_FAST_GAIN of them per provider and item. */
#define CN_INFO_OFFERS_MS 1
/* The next idle refresh gap after a refresh that showed gained chunks we
 * lack and told told of its offers held: CN_INFO_FAST_MS if gained is
 * CN_INFO_FAST_GAIN or more, else CN_INFO_TOLD_MS if told is, else gap
 * doubled up to CN_INFO_REFRESH_MS (gap under CN_INFO_FAST_MS:
 * CN_INFO_FAST_MS). Pure. */
unsigned int cn_refresh_gap(unsigned int gap, uint64_t gained, unsigned int told);
/* What a refresh that told told offers held counts for cn_refresh_gap:
 * told if CN_INFO_FAST_GAIN or more, at most nchunks / CN_INFO_FAST_GAIN
 * + 1 times per provider and item (*told_n, counted here), else 0. Pure. */
unsigned int cn_told_counts(unsigned int told, unsigned int *told_n, uint64_t nchunks);
/* Every one of the n chunks a super-seed showed (its offers) is held or
 * asked for: nothing more to ask of it until it shows others. 0 for none
 * shown. Pure (swarm_peers.c). */
int cn_offers_taken(const uint32_t *shown, unsigned int n, const uint8_t *have,
		    const uint8_t *busy);
/* How many of the n chunks a provider showed we hold now. Pure. */
unsigned int cn_offers_held(const uint32_t *shown, unsigned int n, const uint8_t *have);
struct cn_job;
struct cn_peer;
/* When an idle partial provider p is due to be asked for its bitmap again
 * (0: not idle, the CN_INFO_REFRESH_MS round asks); cn_refresh_idle asks
 * those due at t (swarm_peers.c). */
uint64_t cn_idle_refresh_at(const struct cn_job *j, const struct cn_peer *p, uint64_t t);
void cn_refresh_idle(struct cn_job *j, uint64_t t);
/* A super-seed shows a downloader at most 32 chunks at once (its offers,
 * superseed.c): a bitmap that shows at most CN_SHOWN_MAX chunks we lack
 * is kept as a list, and the next refresh (HAVE_HELD) tells the provider
 * which of them we got elsewhere, so that it offers others at once
 * instead of holding those offers open for 5 s (docs/CONTENT.md
 * "Offers told held"). */
#define CN_SHOWN_MAX 32
/* Of the n chunks shown (indices), those have[] now holds, as HAVE_HELD
 * says them: the lowest as *first, and in *mask bit i for first + i held
 * (those past first + 31 wait for a later refresh). Returns how many bits
 * are set (0: nothing to tell). Pure (swarm_peers.c). */
unsigned int cn_held_mask(const uint32_t *shown, unsigned int n, const uint8_t *have,
			  uint32_t *first, uint32_t *mask);
/* Ask provider k for its bitmap again (HAVE, or HAVE_HELD when it showed
 * offers we got elsewhere, or HAVE_IDLE when the job's last pick left no
 * chunk request in flight to anyone; INFO with an older node),
 * counted (idle: one of cn_refresh_idle's). 1 if asked, 0 if no request
 * slot was free (asked on a later pass). */
int cn_refresh_ask(struct cn_job *j, unsigned int k, int idle);
/* A provider that answered NOT_FOUND to INFO is asked again 1, 2, 4, 8,
 * 8... s later, at most CN_NOTFOUND_ASKS times per item: found through
 * the DHT as another downloader, it had not started its own download yet
 * (subscribers of a share all start when its head changes). Without it,
 * such a provider was never asked again, and a downloader whose providers
 * all answered so early waited for the seed's super-seeding to give up
 * on it (20 s). */
#define CN_NOTFOUND_ASKS 8
/* Peer exchange: a provider is asked for the other nodes of the swarm
 * (op PEERS) once it is up, then every 5 s while the provider table has
 * room; at most CN_PEX_ADD new addresses are taken from one answer (a
 * provider cannot make us dial more than that per 5 s). */
#define CN_PEX_MS 5000
#define CN_DEPTH_START 4
/* Pipelining per provider: a provider may have `depth` chunk requests in
 * flight, 1..per_provider: CN_DEPTH_START (4) at first (a slow start: fifty
 * downloaders asking a new seed for per_provider chunks each queued 600
 * requests there, and the last of them timed out), halved on each failure
 * (timeout, error answer, busy), and steered by the time its chunks take
 * to answer (request sent to whole answer here), which rises with the
 * requests queued at the provider from every downloader (a provider serves
 * in arrival order): one more per good chunk answered within half the
 * target, halved when a chunk took longer than the target (once per round:
 * only answers to requests sent after the last cut count), unchanged in
 * between. The target is req_timeout_ms / CN_ANS_TARGET_DIV (1 s with the
 * 5 s default), so an overloaded provider (a seed that 50 downloaders found
 * at once) is asked for less before its answers time out, not after. */
#define CN_ANS_TARGET_DIV 5
/* A job's pick order (rarest first, pick.c) is made again when chunks
 * may have become eligible (a provider's bitmap counted, a request given
 * up: the only ways a chunk becomes one) or CN_PICK_ORDER_MS after it was
 * made (ranks also fall as providers go); between those, picks take its
 * next entries, skipping those no longer eligible. Made at every pick, it
 * cost two scans of the missing chunks each time: at 4,096 chunks 8.6% of
 * a lone 1 GiB download's job thread, and the total grows with the square
 * of an item's size (a 64 GiB item: 262,144 chunks). */
#define CN_PICK_ORDER_MS 50
/* Chunks are made durable in groups (cstore_commit_chunks: one fdatasync
 * and one store transaction) of up to CN_COMMIT_MAX, or after
 * CN_COMMIT_MS: a chunk is served to other downloaders from its commit
 * on. Two syncs per chunk made 50 downloaders on one disk wait on it. */
#define CN_COMMIT_MAX 16
#define CN_COMMIT_MS 250
/* The job's committer (commit.c): the batch handed over, under j->mu;
 * id, idx and n are written by the job only while not busy and read by
 * the committer, without the lock, only while busy. */
struct cn_commit {
	pthread_t th;
	pthread_cond_t cv; /* the committer waits here for a batch */
	int state;	   /* 0 not started, 1 running, -1 could not start */
	int busy, stop;	   /* busy: a batch handed over, not committed yet */
	uint8_t id[32];
	uint64_t idx[CN_COMMIT_MAX];
	size_t n;
};
struct cn_export_tee;
/* The fetch loop's sleep: the job is woken when a request finishes or a
 * connection changes, so the wait bounds only what runs on time: a lookup
 * polled (CN_WAIT_MS while one is out or nothing is open yet), the next
 * commit, a provider's backoff ending; else CN_WAIT_MAX_MS (requests'
 * timeouts are seconds). A 20 ms poll throughout woke each downloader
 * ~50 times a second for nothing (docs/CONTENT.md "The fetch loop's
 * sleep"). */
#define CN_WAIT_MS 20
#define CN_WAIT_MAX_MS 100
/* The sleep at t: polling (a lookup out, or nothing open yet), else up to
 * the next commit (commit_due, 0: none pending) and the next backoff's
 * end (backoff_end, 0: none), at least 1 ms. Pure (swarm.c). */
unsigned int cn_fetch_wait_ms(int polling, uint64_t commit_due, uint64_t backoff_end, uint64_t t);
#define CN_PEX_ADD 8

enum { P_CONNECTING = 1, P_UP, P_DEAD, P_BANNED };
/* Lanes: long-lived fetch streams to one provider, one request at a time
 * each (docs/PROTOCOL.md): no stream credit spent per chunk. */
#define CN_MAX_LANES 16
enum { L_FREE = 0, L_OPENING, L_IDLE, L_BUSY };

struct cn_lane {
	int state;
	int req; /* slot of the request it carries, -1 none */
	unsigned int gen;
	int64_t sid;
};
/* K_HELD: a HAVE that also says which shown chunks we hold (HAVE_HELD;
 * its chunk word: mask << 32 | first); K_IDLE: the same from a job with no
 * chunk request in flight (HAVE_IDLE; mask may be 0). */
enum { K_INFO = 1, K_CHUNK, K_MANIFEST, K_HAVE, K_PEERS, K_HELD, K_IDLE };
/* A HAVE-like refresh (answered with a bitmap). */
#define CN_K_HAVE(k) ((k) == K_HAVE || (k) == K_HELD || (k) == K_IDLE)

/*
 * A connection's context. Lock order: cc->mu, then job->mu (the worker's
 * callbacks, cc_enter in swarm_conn.c). The job thread, which holds
 * job->mu while it re-dials a peer, lets go of the old context without
 * taking cc->mu: it clears job (atomic) and drops its reference (atomic),
 * and cc_enter checks job again once it holds job->mu.
 */
struct cn_cc {
	pthread_mutex_t mu;
	_Atomic(struct cn_job *) job; /* NULL once the job let go */
	int peer;
	atomic_int refs; /* job + connection */
	/* The fast path of an answer's bytes (swarm_conn.c, cb_stream_data):
	 * the request the last frame on stream fsid went to, and its gen;
	 * the worker's own. fbusy: the worker is inside the fast path (the
	 * job, letting go of the context, waits it out: cc_let_go). */
	int64_t fsid;
	struct cn_req *freq;
	unsigned int fgen;
	atomic_int fbusy;
};

struct cn_peer {
	struct sockaddr_storage addr;
	socklen_t alen;
	char name[80];
	int state;
	uint64_t conn;
	struct cn_cc *cc;
	int info;      /* current item: 0 not asked, 1 asked, 2 have, 3 does not have */
	int refresh;   /* an INFO asked again (info stays 2 meanwhile) */
	int partial;   /* its bitmap lacks chunks: ask again after CN_INFO_REFRESH_MS */
	unsigned int refresh_gap; /* ms, while it is idle (cn_refresh_gap; 0: fast) */
	unsigned int told;	  /* offers its last refresh told held (HAVE_HELD) */
	unsigned int told_n;	  /* refreshes that told CN_INFO_FAST_GAIN or more */
	int self;      /* our own node, found through the DHT: never dialled again */
	int nohave;    /* refused HAVE (an older node): refresh with INFO */
	int noheld;    /* refused HAVE_HELD (an older node): refresh with HAVE */
	int noidle;    /* refused HAVE_IDLE (an older node): HAVE_HELD or HAVE */
	/* the chunks we lacked that its last bitmap showed, when at most
	 * CN_SHOWN_MAX (a super-seed's offers; 0 when it showed more): the
	 * next refresh tells it those we got elsewhere (cn_held_mask) */
	uint32_t shown[CN_SHOWN_MAX];
	unsigned int nshown;
	unsigned int nf_n; /* NOT_FOUND answers to INFO for the current item */
	uint64_t nf_at;	   /* the last one (ms) */
	int pex;       /* PEERS: 0 never asked, 1 asked, 2 answered, 3 refused */
	uint64_t info_at, pex_at;
	int mstate;    /* manifest: 0 not asked, 1 asked, 2 done */
	uint8_t *bits; /* current item: chunks the provider has */
	int counted;   /* bits are in the job's availability counts */
	struct cn_lane lanes[CN_MAX_LANES];
	unsigned int inflight, faults, timeouts, errors, fails_row;
	unsigned int depth; /* chunk requests it may have in flight (1..per_provider) */
	unsigned int ans_ms; /* its chunks' answer time, smoothed (1/4); 0 none yet */
	uint64_t cut_at;     /* depth last halved for a slow answer (ms) */
	int seed;	    /* its bitmap was complete once: its slot is never given away */
	int score;
	uint64_t chunks, bytes, backoff_until;
};

/* A chunk request's fast-path word (cn_req.fst): 0, or its gen << 2
 * with FS_READY (the worker may append its answer's middle bytes without
 * j->mu) or FS_FEEDING (it does so now). While nonzero the answer (a) is
 * the worker's: the job takes it back with cn_req_unfast first. */
enum { FS_READY = 1, FS_FEEDING = 2 };

struct cn_req {
	int used, done, err, kind, peer, lane;
	int kept; /* a chunk answer stored (done_chunk): its bytes not wasted */
	unsigned int gen;
	_Atomic unsigned int fst;
	unsigned int nfast; /* frames its answer took on the fast path (with a) */
	uint64_t chunk, start_ms;
	_Atomic uint64_t last_ms; /* the last byte of its answer arrived (0: none yet) */
	uint64_t end_ms; /* the whole answer arrived (set by the worker's callback) */
	int64_t sid;
	struct cn_ans a; /* the answer (its buffer is kept across requests) */
};

/* DHT get_peers of a job (swarm_peers.c); at most CN_LOOKUP_MAX
 * addresses kept. Put releases it (any time). */
#define CN_LOOKUP_MAX 64
#define CN_LAN_MAX 8 /* LAN providers (BEP 14) taken at each gather */
struct cn_lk;
void cn_lookup_put(struct cn_lk *lk);
/* The job thread's sleep (with j->mu held) of up to ms, or until woken
 * (j->cond): a request done, a connection changed, its lookup answered. */
void cn_job_sleep(struct cn_job *j, unsigned int ms);

struct cn_job {
	struct content_node *cn;
	uint64_t jid;
	struct cn_get_req rq;
	pthread_t thr;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	atomic_int stop;
	int finished, status;
	int cancelled; /* content cancel (jobs.c): stop is set, never joined again */
	int holds;     /* a cancel waiting on it (under jmu): its slot is not reused */
	int joined;    /* its thread joined (jobs.c, under jmu) */
	char state[16];
	char error[160];
	/* current item */
	uint8_t cur[32];
	int opened;
	int announce; /* announce the current item once opened (public content) */
	uint64_t size, nchunks, have_n, cursor;
	uint8_t *have, *busy; /* busy: requests in flight for the chunk (<= 2) */
	uint8_t *avail;	      /* providers up whose bitmap has the chunk */
	uint32_t *order;      /* cn_pick_order's: chunks in the order offered */
	uint64_t order_len, order_pos, order_at; /* its length, next entry, when made */
	int order_stale;			 /* chunks became eligible since */
	uint64_t rng;	      /* xorshift state: random starting points */
	unsigned int nlookups; /* lookups for the current item */
	struct cn_peer peers[CONTENT_MAX_PROVIDERS];
	unsigned int npeers;
	int mpeer; /* the peer whose manifest was taken, -1 none (held locally) */
	/* the current item's previous version, held (reuse.c) */
	uint8_t donor[32];
	int has_donor;
	uint64_t reused; /* chunks copied from previous versions */
	struct cn_req reqs[CN_MAX_REQS];
	unsigned int gen, inflight;
	uint64_t last_progress, last_lookup;
	struct cn_lk *lk; /* DHT lookup under way */
	int lk_starting;  /* cn_gather is starting one, j->mu let go meanwhile */
	/* totals */
	uint64_t fetched, resumed, bad_chunks, retries, stream_waits, bytes, t_start, t_end;
	/* when the first provider was added and the first chunk came (util_now_ms; 0: not yet) */
	uint64_t t_first_peer, t_first_chunk;
	uint64_t export_ms;	      /* spent writing items out (cn_job_export) */
	uint64_t copied_early;	      /* of the copies' chunks, written by their commits */
	uint64_t pend[CN_COMMIT_MAX]; /* chunks written, not committed yet */
	struct cn_commit cm;	      /* the batch being committed (commit.c) */
	struct cn_export_tee *tee;    /* the item's copy written as it commits (export.c) */
	size_t npend;
	uint64_t pend_since;
	uint64_t committed; /* chunks of the current item held durably */
	/* of them, chunks this job verified as they arrived, wrote and
	 * committed itself (commit_pending): all of the item's, and its
	 * link export reads nothing back (export.c) */
	uint64_t stored_self;
	uint64_t endgame; /* duplicate requests sent in the end game */
	uint64_t endgame_cancelled; /* of those, given up when the twin won */
	/* bytes of chunk answers received and then dropped (timed out,
	 * given up for a twin, refused, already held): upload the swarm
	 * spent for nothing; timeouts_partial: timeouts after some bytes */
	uint64_t wasted_bytes, timeouts_partial;
	uint64_t pex_found; /* providers dialled because a PEERS answer named them */
	/* bitmaps asked again: every CN_INFO_REFRESH_MS, and of idle providers sooner */
	uint64_t refreshes, refreshes_idle, held_told; /* held_told: of them HAVE_HELD */
	uint64_t idle_told; /* of them HAVE_IDLE: nothing to fetch from anyone */
	int starved;	    /* the last pick left no chunk request in flight */
	/* frames of answers appended without a lock (the fast path, counted
	 * as their requests are released) and under the locks */
	uint64_t frames_fast, frames_locked;
	unsigned int said_notfound; /* INFO answers NOT_FOUND (current item) */
	unsigned int manifests_refused; /* manifests that failed verification */
	const char *refused_why;        /* the last one's reason (a literal) */
	uint64_t total_bytes, done_bytes, items_total, items_done;
};

/* swarm.c: the job's thread (started by cn_job_start). */
void *cn_job_run(void *arg);

/* swarm_peers.c: the peer set. Called with j->mu held. */
void cn_avail_account(struct cn_job *j, struct cn_peer *p, int add);
int cn_pex_room(const struct cn_job *j);
uint64_t cn_job_rand(struct cn_job *j);
void cn_add_peer(struct cn_job *j, const struct sockaddr_storage *ss, socklen_t alen);
/* Lets go of j->mu while a DHT lookup starts. */
void cn_gather(struct cn_job *j, const uint8_t *ih);
void cn_poll_lookup(struct cn_job *j);
/* Providers connected whose last answer to INFO or HAVE on the current
 * item was NOT_FOUND (they do not hold it, or no longer). */
unsigned int cn_peers_notfound(const struct cn_job *j);

/* swarm_conn.c: requests on the wire. Called with j->mu held. */
/* A request of kind (K_*) to peer on a free slot and a lane (idle, else
 * a new stream): 0, -ENOSPC (no slot), -EBUSY (no lane) or the error of
 * quic_node_stream_open. */
int cn_req_open(struct cn_job *j, int peer, int kind, uint64_t chunk);
/* Give a slot back (its lane too, reset if the answer may still come). */
void cn_req_release(struct cn_job *j, struct cn_req *r);
/* The answer of r back from the worker's fast path (waits out a frame
 * being appended: never long, the worker never waits for the job). Before
 * the job reads or changes r->a, or ends r, while r may be in flight. */
void cn_req_unfast(struct cn_req *r);
/* End r (in flight) with err: cn_req_unfast, done, err. */
void cn_req_stop(struct cn_req *r, int err);
/* Fail every request of peer still in flight with err. */
void cn_fail_peer_reqs(struct cn_job *j, int peer, int err);
/* A fresh connection context for p (the old one let go of), its lanes
 * free: NULL when out of memory (p unchanged). */
struct cn_cc *cn_cc_new(struct cn_job *j, struct cn_peer *p);
/* Connect to p->addr through p->cc: 0 or the error of
 * quic_node_connect_addr. */
int cn_conn_dial(struct cn_job *j, struct cn_peer *p);
/* At the end of a job: close every connection, let go of their contexts
 * (j->mu let go of meanwhile) and free the answers' buffers. */
void cn_conns_close(struct cn_job *j);

/* reuse.c: a changed item's unchanged chunks taken from its previous
 * version. cn_reuse_pick: the donor of item (path, id) from held, the
 * share's version held before (none for sealed shares). cn_reuse_chunks:
 * right after the item is opened, copy every chunk whose CV equals the
 * donor's at the same index (verified both ways), committed; j->mu held
 * (let go meanwhile). */
void cn_reuse_pick(struct cn_job *j, const struct manifest *held, const char *path,
		   const uint8_t id[32]);
void cn_reuse_chunks(struct cn_job *j);

/* commit.c, j->mu held (let go meanwhile): cn_commit_pending hands the
 * chunks put (j->pend) to the job's committer thread, started at need,
 * after the batch before it is committed (or commits them here when the
 * thread could not start); cn_commit_wait waits for the batch out (its
 * error, if any, in j->status); cn_commit_stop waits for it and ends the
 * thread (every end of an item's fetch). */
void cn_commit_pending(struct cn_job *j);
void cn_commit_wait(struct cn_job *j);
void cn_commit_stop(struct cn_job *j);

/* export.c, j->mu held (let go meanwhile): the current item's copy for
 * the user (rq.out/rel). cn_job_tee_open, before the item's fetch, opens
 * its temporary file for the commits to write as chunks arrive (a plain
 * copy, key NULL, of an item not held yet, through O_DIRECT; a sealed
 * item's plaintext, decrypted with key, by a follower thread the commits
 * hand each chunk to, cn_job_tee_committed) at the item's first commit,
 * which knows its size; cn_job_tee is what the commits write to (NULL:
 * none, or sealed); cn_job_export,
 * once the item is held, writes what the commits did not (all of it
 * without a tee; decrypted with key for a sealed item, a link with
 * rq.link), syncs and renames it into place (an error in j->status and
 * j->error); cn_job_tee_close lets go of a tee not exported (the item
 * failed: its temporary file removed). */
void cn_job_tee_open(struct cn_job *j, const char *rel, const struct cn_export_key *key);
void cn_job_tee_start(struct cn_job *j);
struct cstore_tee *cn_job_tee(struct cn_job *j);
void cn_job_export(struct cn_job *j, const uint8_t id[32], const char *rel,
		   const struct cn_export_key *key);
void cn_job_tee_committed(struct cn_job *j, const uint64_t *idx, size_t n);
void cn_job_tee_close(struct cn_job *j);

#endif
