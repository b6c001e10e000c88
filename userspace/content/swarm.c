// SPDX-License-Identifier: MIT
/*
 * Swarm download, a job's state machine: one thread per job (cn_job_run,
 * started by jobs.c) fetches a content id (or a share: its manifest, then
 * every item) from several providers at once over QUIC. It drives its
 * parts and none calls it back: the peer set and lookups (swarm_peers.c),
 * the requests on the wire and the QUIC callbacks (swarm_conn.c, which
 * only mark requests done and wake the thread), the export (export.c),
 * the chunk store, share records and announcing.
 *
 * - Providers: explicit targets, LAN peers that announced the id (BEP 14,
 *   content_node_set_lan) plus DHT get_peers under the first 20 bytes
 *   of the id; looked up again when every known provider failed, and every
 *   15 s while the download runs (sooner while few are usable). Other
 *   downloaders count: a download of public content is announced once its
 *   CV list is verified, a provider with part of the item is asked for its
 *   bitmap again (HAVE), and every provider is asked for the other nodes
 *   of the swarm it knows (PEERS: peer exchange, bounded, hints only).
 * - The CV list comes from the first provider whose INFO answer proves out
 *   against the content id (cstore_open_partial checks it); every chunk is
 *   then checked against its own CV by cstore_write_chunk before a byte is
 *   written. Chunks already verified on disk (a resumed partial) are never
 *   asked for again.
 * - Scheduling: rarest first (the fewest providers known to have it, from
 *   their bitmaps), ties broken by a random starting point, so that
 *   downloaders started together fetch different chunks and trade them;
 *   at most max_parallel requests in flight and per_provider per
 *   provider, each to a provider that has the chunk and is not backing
 *   off: a partial one (another downloader) before a complete one (a
 *   seed), then the best score. A failed or timed-out request is retried
 *   elsewhere.
 * - Pipelining: a provider may have `depth` chunk requests in flight,
 *   CN_DEPTH_START (4) at first, halved on a failure or on an answer slower
 *   than the target (a fifth of the request timeout), +1 per good chunk
 *   answered within half of it.
 * - Chunks are written as they arrive and committed (one sync, one store
 *   transaction) in groups: served to others from their commit on.
 * - Scores: start 100; +1 per good chunk (cap 200); -50 per bad chunk or
 *   bad CV list (a "fault"); -20 per timeout; -5 per error answer. After
 *   CONTENT_BAN_FAULTS faults the provider's address goes to the ban
 *   pipeline (guard_ban_addr) and the provider is dropped.
 * - Backoff: after a failure a provider gets no new request for
 *   250 ms << min(failures in a row, 5).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "content/swarm_int.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/seal.h"
#include "weft/util.h"


/* --------------------------------------------------------------- scores */

/* How a provider's answers are judged (see the top of this file): a
 * fault (data that does not verify) costs 50 and, after
 * CONTENT_BAN_FAULTS, a ban through the guard; a soft failure (timeout,
 * error answer) halves its depth and costs penalty; both back off. */
/* A provider sent data that does not verify. */
static void fault(struct cn_job *j, struct cn_peer *p, const char *what)
{
	char lb[128];

	p->faults++;
	p->score -= 50;
	p->fails_row++;
	p->backoff_until = util_now_ms() + (250ull << (p->fails_row > 5 ? 5 : p->fails_row));
	log_warn(CN_MOD, "provider %s sent %s (fault %u)", log_addr(p->name, lb, sizeof(lb)), what,
		 p->faults);
	if (p->faults >= CONTENT_BAN_FAULTS && p->state != P_BANNED) {
		uint8_t a[16];
		int fam = p->addr.ss_family, rc = -ENODEV;

		if (fam == AF_INET)
			memcpy(a, &((struct sockaddr_in *)&p->addr)->sin_addr, 4);
		else
			memcpy(a, &((struct sockaddr_in6 *)&p->addr)->sin6_addr, 16);
		if (j->cn->guard)
			rc = guard_ban_addr(j->cn->guard, fam, a, CONTENT_BAN_TTL_S);
		log_warn(CN_MOD, "provider %s: %u bad answers, banned for %u s%s",
			 log_addr(p->name, lb, sizeof(lb)),
			 p->faults, CONTENT_BAN_TTL_S, rc ? " (ban pipeline unavailable)" : "");
		p->state = P_BANNED;
		quic_node_close(j->cn->quic, p->conn, 0);
		cn_fail_peer_reqs(j, (int)(p - j->peers), -EACCES);
	}
}

static void soft_fail(struct cn_peer *p, int penalty)
{
	p->depth = p->depth > 2 ? p->depth / 2 : 1;
	p->score -= penalty;
	p->fails_row++;
	p->backoff_until = util_now_ms() + (250ull << (p->fails_row > 5 ? 5 : p->fails_row));
}

static void set_item(struct cn_job *j, const uint8_t id[32])
{
	/* Answers still due for the previous item are of no use now. */
	for (unsigned int i = 0; i < CN_MAX_REQS; i++) {
		struct cn_req *r = &j->reqs[i];

		if (r->used)
			cn_req_release(j, r);
	}
	memcpy(j->cur, id, 32);
	j->opened = 0;
	j->size = j->nchunks = j->have_n = j->cursor = 0;
	j->said_notfound = 0;
	free(j->have);
	free(j->busy);
	free(j->avail);
	free(j->order);
	j->have = j->busy = j->avail = NULL;
	j->order = NULL;
	j->order_len = j->order_pos = 0;
	j->nlookups = 0;
	j->npend = 0;
	j->committed = 0;
	j->stored_self = 0;
	for (unsigned int i = 0; i < j->npeers; i++) {
		free(j->peers[i].bits);
		j->peers[i].bits = NULL;
		j->peers[i].counted = 0;
		j->peers[i].pex = 0;
		j->peers[i].info = 0;
		j->peers[i].refresh = 0;
		j->peers[i].refresh_gap = j->peers[i].told_n = 0;
		j->peers[i].partial = 0;
		j->peers[i].nf_n = 0;
	}
}

/* First valid CV list: open (or resume) the partial download. */
static int open_item(struct cn_job *j, uint64_t size, const uint8_t *cvs, uint64_t n)
{
	struct cstore_info info;
	int rc;

	pthread_mutex_unlock(&j->mu);
	rc = cstore_open_partial(j->cn->cs, j->cur, size, cvs, n);
	pthread_mutex_lock(&j->mu);
	if (rc)
		return rc;
	j->have = calloc(n, 1);
	j->busy = calloc(n, 1);
	j->avail = calloc(n, 1);
	j->order = calloc(n, sizeof(*j->order));
	if (!j->have || !j->busy || !j->avail || !j->order)
		return -ENOMEM;
	j->size = size;
	j->nchunks = n;
	if (cstore_info(j->cn->cs, j->cur, &info) == 0 && info.state == CSTORE_COMPLETE) {
		memset(j->have, 1, n);
		j->have_n = n;
	} else {
		for (uint64_t i = 0; i < n; i++)
			if (cstore_has_chunk(j->cn->cs, j->cur, i) == 1) {
				j->have[i] = 1;
				j->have_n++;
			}
	}
	j->resumed += j->have_n;
	j->committed = j->have_n;
	j->done_bytes += j->have_n == n ? size : j->have_n * B3TREE_CHUNK_LEN;
	j->opened = 1;
	cn_reuse_chunks(j); /* a changed item: its unchanged chunks from before */
	/* Other downloaders may fetch what we have verified from now on
	 * (serve.c answers INFO with our bitmap). */
	if (j->announce)
		cn_announce(j->cn, j->cur, 32);
	return 0;
}

static void done_info(struct cn_job *j, struct cn_req *r)
{
	struct cn_peer *p = &j->peers[r->peer];
	const uint8_t *ans = r->a.buf;
	struct cn_info in;
	uint8_t *old;
	uint64_t gained = 0;
	int rc;

	p->refresh = 0;
	p->info_at = util_now_ms();
	if (r->err == -EAGAIN) {
		if (r->kind == K_INFO)
			p->info = 0; /* stream limit: ask again */
		return;
	}
	if (r->err == -EPROTO || r->err == -EMSGSIZE)
		goto bad;
	if (CN_K_HAVE(r->kind) && (r->err || r->a.len < 1 || ans[0] == CONTENT_ST_BAD_REQUEST)) {
		/* an older node resets the stream of an op it does not
		 * know: use HAVE_HELD, HAVE (or INFO) with it from now on */
		if (r->err != -ETIMEDOUT && r->err != -ENOTCONN)
			*(r->kind == K_IDLE   ? &p->noidle
			  : r->kind == K_HELD ? &p->noheld
					      : &p->nohave) = 1;
		return;
	}
	if (r->err || r->a.len < 1) {
		p->info = 3;
		soft_fail(p, 5);
		return;
	}
	if (ans[0] != CONTENT_ST_OK) {
		p->info = 3; /* does not have it (or busy): not a fault */
		if (ans[0] == CONTENT_ST_NOT_FOUND) {
			j->said_notfound++;
			p->nf_n++;
			p->nf_at = p->info_at; /* asked again later (schedule) */
		}
		return;
	}
	if (CN_K_HAVE(r->kind)) {
		/* only a refresh: the same blob as the INFO before */
		if (cn_have_decode(&in, ans, r->a.len, CN_INFO_MAX_N) || !j->opened ||
		    in.size != j->size)
			goto bad;
		goto bits;
	}
	if (cn_info_decode(&in, ans, r->a.len, CN_INFO_MAX_N))
		goto bad;
	if (!j->opened) {
		rc = open_item(j, in.size, in.cvs, in.n);
		if (rc == -EBADMSG || rc == -EINVAL)
			goto bad;
		if (rc) {
			snprintf(j->error, sizeof(j->error), "cannot store the download: %s",
				 strerror(-rc));
			j->status = rc;
			return;
		}
	} else if (in.size != j->size || b3tree_verify_cvs(in.cvs, in.n, in.size, j->cur) != 0) {
		goto bad;
	}
bits:
	cn_avail_account(j, p, -1);
	old = p->bits;
	p->bits = malloc(in.n);
	if (!p->bits) { /* done_chunk checks for NULL */
		free(old);
		p->info = 3;
		return;
	}
	p->partial = 0;
	p->nshown = 0;
	for (uint64_t i = 0; i < in.n; i++) {
		p->bits[i] = (in.bits[i / 8] >> (i % 8)) & 1;
		p->partial |= !p->bits[i];
		if (p->bits[i] && j->have && !j->have[i] && p->nshown++ < CN_SHOWN_MAX)
			p->shown[p->nshown - 1] = (uint32_t)i;
		/* a refresh's news: chunks it shows now that we lack */
		gained += p->bits[i] && old && !old[i] && j->have && !j->have[i];
	}
	if (p->nshown > CN_SHOWN_MAX)
		p->nshown = 0; /* not a super-seed's offers: nothing to tell */
	if (old) /* a refresh (HAVE, or INFO with an older node) */
		p->refresh_gap = cn_refresh_gap(p->refresh_gap, gained, p->told);
	free(old);
	p->seed |= !p->partial;
	p->info = 2;
	if (p->state == P_UP)
		cn_avail_account(j, p, 1);
	return;
bad:
	p->info = 3;
	j->bad_chunks++;
	fault(j, p, "a CV list that does not prove out");
}

/* PEERS answer: up to CN_PEX_ADD addresses not known yet are dialled (in
 * a random order). Whatever they serve is verified like any provider's. */
static void done_peers(struct cn_job *j, struct cn_req *r)
{
	struct cn_peer *p = &j->peers[r->peer];
	struct sockaddr_storage got[CN_PEX_MAX];
	int n, added = 0;

	p->pex_at = util_now_ms();
	if (r->err == -EPROTO || r->err == -EMSGSIZE) {
		p->pex = 3;
		j->bad_chunks++;
		fault(j, p, "a PEERS answer that breaks the framing");
		return;
	}
	if (r->err || r->a.len < 1 || r->a.buf[0] != CONTENT_ST_OK) {
		/* an older node (unknown op), or nothing to say */
		p->pex = r->err == -ETIMEDOUT || (r->a.len >= 1 && r->a.buf[0] == CONTENT_ST_BUSY)
			     ? 2
			     : 3;
		return;
	}
	n = cn_peers_decode(r->a.buf, r->a.len, got, CN_PEX_MAX);
	if (n < 0) {
		p->pex = 3;
		j->bad_chunks++;
		fault(j, p, "a PEERS answer that does not parse");
		return;
	}
	p->pex = 2;
	for (int i = n - 1; i > 0; i--) {
		int k = (int)(cn_job_rand(j) % (uint64_t)(i + 1));
		struct sockaddr_storage x = got[i];

		got[i] = got[k];
		got[k] = x;
	}
	for (int i = 0; i < n && added < CN_PEX_ADD && cn_pex_room(j); i++) {
		unsigned int k;

		for (k = 0; k < j->npeers && !cn_same_addr(&j->peers[k].addr, &got[i]); k++)
			;
		if (k < j->npeers)
			continue;
		cn_add_peer(j, &got[i],
			 got[i].ss_family == AF_INET ? sizeof(struct sockaddr_in)
						     : sizeof(struct sockaddr_in6));
		added++;
		j->pex_found++;
	}
}

/* A good chunk from p: steer its pipelining depth by how long the answer
 * took (content_node_int.h, CN_ANS_TARGET_DIV). Answers slower than the
 * target mean requests queue at the provider (its other downloaders'
 * too): fewer from us, before they reach the timeout. */
static void adapt_depth(struct cn_job *j, struct cn_peer *p, const struct cn_req *r)
{
	uint64_t now = util_now_ms(), end = r->end_ms ? r->end_ms : now;
	uint64_t a = end > r->start_ms ? end - r->start_ms : 0;
	uint64_t target = j->cn->req_timeout_ms / CN_ANS_TARGET_DIV + 1;
	unsigned int d;

	if (a > UINT32_MAX / 2)
		a = UINT32_MAX / 2;
	p->ans_ms = p->ans_ms ? (unsigned int)((3ull * p->ans_ms + a) / 4) : (unsigned int)a;
	/* once per round: answers to requests sent before the last cut
	 * still carry the queue that made it */
	d = cn_depth_next(p->depth, j->cn->per_provider, a, target, r->start_ms >= p->cut_at);
	if (d < p->depth)
		p->cut_at = now;
	p->depth = d;
}

static void done_chunk(struct cn_job *j, struct cn_req *r)
{
	struct cn_peer *p = &j->peers[r->peer];
	uint64_t idx = r->chunk, want = b3tree_chunk_size(j->size, idx);
	int rc;

	if (r->err == -EAGAIN) {
		/* The peer's stream limit: not the provider's fault, retry soon. */
		j->stream_waits++;
		p->backoff_until = util_now_ms() + 5;
		return;
	}
	if (r->err == -EPROTO || r->err == -EMSGSIZE) {
		j->retries++;
		j->bad_chunks++;
		fault(j, p, "an answer that breaks the framing");
		return;
	}
	if (r->err == -ECANCELED)
		return; /* an end-game twin whose chunk came from elsewhere */
	if (r->err || r->a.len < 1) {
		j->retries++;
		if (r->err != -EACCES && r->err != -ENOTCONN)
			soft_fail(p, 5);
		return;
	}
	if (r->a.buf[0] != CONTENT_ST_OK) {
		j->retries++;
		p->errors++;
		soft_fail(p, 5);
		/* bits may be gone: a later INFO whose bitmap could not be
		 * allocated leaves it NULL (and info 3) */
		if ((r->a.buf[0] == CONTENT_ST_NOT_FOUND ||
		     r->a.buf[0] == CONTENT_ST_UNAVAILABLE) &&
		    p->bits && p->bits[idx]) {
			p->bits[idx] = 0;
			if (p->counted && j->avail[idx])
				j->avail[idx]--;
		}
		/* a provider that held it all lacks a chunk: removed there?
		 * its INFO says (a partial one is asked for HAVE anyway) */
		if (r->a.buf[0] == CONTENT_ST_NOT_FOUND && !p->partial && p->info == 2)
			p->info = 0;
		return;
	}
	if (cn_chunk_check(r->a.buf, r->a.len, want)) {
		j->retries++;
		j->bad_chunks++;
		fault(j, p, "a chunk of the wrong length");
		return;
	}
	if (j->have[idx])
		return;
	/* Verify and write without holding the job lock (workers wait on it);
	 * durable, and served, once committed (cn_commit_pending). */
	pthread_mutex_unlock(&j->mu);
	rc = cn_ans_put_chunk(&r->a, j->cn->cs, j->cur, idx, (size_t)want);
#ifdef WEFT_TEST_HOOKS
	/* a slow verification, so that other answers arrive meanwhile */
	if (getenv("WEFT_CONTENT_TEST_PUT_DELAY_US"))
		usleep((useconds_t)strtoul(getenv("WEFT_CONTENT_TEST_PUT_DELAY_US"), NULL, 10));
#endif
	pthread_mutex_lock(&j->mu);
	if (rc == -EBADMSG) {
		j->retries++;
		j->bad_chunks++;
		fault(j, p, "a chunk that does not verify");
		return;
	}
	if (rc < 0) {
		snprintf(j->error, sizeof(j->error), "writing chunk %llu: %s",
			 (unsigned long long)idx, strerror(-rc));
		j->status = rc;
		return;
	}
	j->have[idx] = 1;
	j->have_n++;
	r->kept = 1;
	/* End game: the other request for this chunk is given up now (its
	 * stream reset, so the provider stops sending it), not when its
	 * answer has been carried here for nothing. */
	if (j->busy[idx] > 1)
		for (unsigned int k = 0; k < CN_MAX_REQS; k++) {
			struct cn_req *o = &j->reqs[k];

			if (o != r && o->used && !o->done && o->kind == K_CHUNK && o->chunk == idx) {
				cn_req_stop(o, -ECANCELED);
				j->endgame_cancelled++;
			}
		}
	if (!j->npend)
		j->pend_since = util_now_ms();
	j->pend[j->npend++] = idx;
	if (j->npend == CN_COMMIT_MAX)
		cn_commit_pending(j);
	if (!j->fetched)
		j->t_first_chunk = util_now_ms();
	j->fetched++;
	j->bytes += want;
	j->done_bytes += want;
	p->chunks++;
	p->bytes += want;
	p->fails_row = 0;
	adapt_depth(j, p, r);
	if (p->score < 200)
		p->score++;
	j->last_progress = util_now_ms();
}

static void process_done(struct cn_job *j)
{
	uint64_t t = util_now_ms();
	char lb[128];

	for (unsigned int i = 0; i < CN_MAX_REQS; i++) {
		struct cn_req *r = &j->reqs[i];
		struct cn_peer *p;

		if (!r->used)
			continue;
		p = &j->peers[r->peer];
		if (!r->done && cn_req_expired(r->start_ms, r->last_ms, j->cn->req_timeout_ms, t)) {
			cn_req_stop(r, -ETIMEDOUT); /* its answer ours again: a.len read */
			p->timeouts++;
			if (r->a.len)
				j->timeouts_partial++;
			soft_fail(p, 20);
			log_info(CN_MOD, "provider %s: request timed out",
				 log_addr(p->name, lb, sizeof(lb)));
			if (p->timeouts >= 3 && p->fails_row >= 3 && p->state == P_UP) {
				p->state = P_DEAD;
				quic_node_close(j->cn->quic, p->conn, 0);
			}
		}
		if (!r->done)
			continue;
		if (r->kind == K_INFO || CN_K_HAVE(r->kind))
			done_info(j, r);
		else if (r->kind == K_PEERS)
			done_peers(j, r);
		else if (r->kind == K_CHUNK)
			done_chunk(j, r);
		/* K_MANIFEST is consumed by fetch_manifest before this runs */
		else
			continue;
		cn_req_release(j, r);
	}
}

/* A provider that can take a chunk request now. */
static int has_room(const struct cn_job *j, const struct cn_peer *p, uint64_t t)
{
	return p->state == P_UP && p->info == 2 && p->bits && p->inflight < p->depth &&
	       p->backoff_until <= t;
}

/* p is a better source than q for a chunk both have: a partial provider
 * (another downloader) before a complete one, so that a seed's upload
 * goes to the chunks only it has; then the higher score, then the fewer
 * requests in flight. */
static int better(const struct cn_peer *p, const struct cn_peer *q)
{
	if (p->partial != q->partial)
		return p->partial;
	if (p->score != q->score)
		return p->score > q->score;
	return p->inflight < q->inflight;
}

/* The best provider for chunk idx now, other than peer 'except' (-1: any). */
static int best_peer(struct cn_job *j, uint64_t idx, uint64_t t, int except)
{
	int best = -1;

	for (unsigned int i = 0; i < j->npeers; i++) {
		struct cn_peer *p = &j->peers[i];

		if ((int)i == except || !has_room(j, p, t) || !p->bits[idx])
			continue;
		if (best < 0 || better(p, &j->peers[best]))
			best = (int)i;
	}
	return best;
}

/*
 * End game: when every missing chunk is already requested and there is
 * room, ask a second provider for the ones still in flight (once each),
 * so the last chunks do not wait on the slowest provider. The first good
 * answer is kept and the other request given up at once (done_chunk: its
 * stream reset, the provider stops sending). Costs at most one chunk per
 * request slot.
 */
static void endgame(struct cn_job *j, uint64_t t)
{
	uint64_t i, missing = j->nchunks - j->have_n;

	if (!missing || missing > j->cn->max_parallel || j->inflight >= j->cn->max_parallel)
		return;
	for (i = j->cursor; i < j->nchunks; i++)
		if (!j->have[i] && !j->busy[i])
			return; /* not the end yet: something is not even asked for */
	for (i = j->cursor; i < j->nchunks && j->inflight < j->cn->max_parallel; i++) {
		int first = -1, arrived = 0, peer;

		if (j->have[i] || j->busy[i] != 1)
			continue;
		/* The provider already asked, whether its answer is still on
		 * its way or arrived and not yet taken in (done, the job lock
		 * let go while it is verified): never asked twice. An arrived
		 * answer needs no second request at all. (A done request was
		 * once passed over here, so with one provider the chunk went
		 * to the same one again: served twice, and scored as a repeat
		 * against an honest downloader.) */
		for (unsigned int k = 0; k < CN_MAX_REQS; k++)
			if (j->reqs[k].used && j->reqs[k].kind == K_CHUNK &&
			    j->reqs[k].chunk == i) {
				first = (int)j->reqs[k].peer;
				arrived |= j->reqs[k].done && !j->reqs[k].err;
			}
		if (arrived)
			continue;
		peer = best_peer(j, i, t, first);
		if (peer >= 0 && cn_req_open(j, peer, K_CHUNK, i) == 0)
			j->endgame++;
	}
}

struct pick_ctx {
	struct cn_job *j;
	uint64_t t;
};

/* cn_pick_take's take: the best provider with room that has the chunk. */
static int pick_take(void *arg, uint64_t i)
{
	struct pick_ctx *c = arg;
	int peer = best_peer(c->j, i, c->t, -1);

	if (peer < 0)
		return 0;
	return cn_req_open(c->j, peer, K_CHUNK, i) ? -1 : 1;
}

/* Ask for chunks, rarest first (pick.c), while providers have room. */
static void pick_chunks(struct cn_job *j, uint64_t t)
{
	struct cn_pick pk = {.have = j->have, .busy = j->busy, .avail = j->avail,
			     .n = j->nchunks, .cursor = j->cursor, .scratch = j->order};
	struct pick_ctx c = {j, t};
	unsigned int k;

	if (j->inflight >= j->cn->max_parallel)
		return;
	for (k = 0; k < j->npeers; k++)
		if (has_room(j, &j->peers[k], t))
			break;
	if (k == j->npeers)
		return;
	/* used up and not stale: nothing has become eligible since it was made */
	if (j->order_stale || t - j->order_at >= CN_PICK_ORDER_MS) {
		j->order_len = cn_pick_order(&pk, cn_job_rand(j));
		j->order_pos = 0;
		j->order_at = t;
		j->order_stale = 0;
	}
	cn_pick_take(&pk, &j->order_pos, j->order_len, j->cn->max_parallel - j->inflight, pick_take,
		     &c);
}

static void schedule(struct cn_job *j)
{
	uint64_t t = util_now_ms();

	for (unsigned int k = 0; k < j->npeers; k++) {
		struct cn_peer *p = &j->peers[k];

		/* not found when asked: it may have started since (CN_NOTFOUND_ASKS) */
		if (p->state == P_UP && p->info == 3 && p->nf_n && p->nf_n < CN_NOTFOUND_ASKS &&
		    t - p->nf_at >= (uint64_t)CN_INFO_REFRESH_MS << (p->nf_n > 4 ? 3 : p->nf_n - 1))
			p->info = 0;
		if (p->state == P_UP && p->info == 0 && cn_req_open(j, (int)k, K_INFO, 0) == 0)
			p->info = 1;
		else if (p->state == P_UP && p->info == 2 && p->partial && !p->refresh &&
			 t - p->info_at >= CN_INFO_REFRESH_MS)
			cn_refresh_ask(j, k, 0);
		if (p->state == P_UP && p->info == 2 && p->pex != 1 && p->pex != 3 &&
		    (!p->pex || t - p->pex_at >= CN_PEX_MS) && cn_pex_room(j) &&
		    cn_req_open(j, (int)k, K_PEERS, 0) == 0)
			p->pex = 1;
	}
	if (!j->opened)
		return;
	/* Providers that went away leave the availability counts. */
	for (unsigned int k = 0; k < j->npeers; k++)
		if (j->peers[k].counted && (j->peers[k].state != P_UP || j->peers[k].info != 2))
			cn_avail_account(j, &j->peers[k], -1);
	while (j->cursor < j->nchunks && j->have[j->cursor])
		j->cursor++;
	pick_chunks(j, t);
	endgame(j, t);
	/* nothing to fetch from anyone after the pick: refreshes say so
	 * (HAVE_IDLE) until a chunk is asked for again */
	j->starved = !j->inflight;
	cn_refresh_idle(j, t); /* idle after the pick: asked again sooner */
}

static int usable_peers(struct cn_job *j)
{
	int n = 0;

	for (unsigned int i = 0; i < j->npeers; i++)
		if (j->peers[i].state == P_CONNECTING ||
		    (j->peers[i].state == P_UP && j->peers[i].info != 3))
			n++;
	return n;
}

/* w cut to a deadline (0: none) from t, at least 1 ms. */
static uint64_t wait_until(uint64_t w, uint64_t due, uint64_t t)
{
	if (due && due < t + w)
		w = due > t ? due - t : 1;
	return w;
}

unsigned int cn_fetch_wait_ms(int polling, uint64_t commit_due, uint64_t backoff_end, uint64_t t)
{
	if (polling)
		return CN_WAIT_MS;
	return (unsigned int)wait_until(wait_until(CN_WAIT_MAX_MS, commit_due, t), backoff_end, t);
}

/* How long fetch_item may sleep at t (swarm_int.h, CN_WAIT_MAX_MS). */
static unsigned int fetch_wait_ms(const struct cn_job *j, uint64_t t)
{
	uint64_t b = 0;

	for (unsigned int i = 0; i < j->npeers; i++) {
		const struct cn_peer *p = &j->peers[i];
		uint64_t due = cn_idle_refresh_at(j, p, t);

		if (p->state == P_UP && p->backoff_until > t && (!b || p->backoff_until < b))
			b = p->backoff_until;
		if (due > t && (!b || due < b))
			b = due; /* an idle provider's refresh */
	}
	return cn_fetch_wait_ms(j->lk || !j->opened, j->npend ? j->pend_since + CN_COMMIT_MS : 0,
				b, t);
}

uint64_t cn_relookup_ms(unsigned int npeers, unsigned int usable, unsigned int nlookups)
{
	unsigned int k = nlookups ? nlookups - 1 : 0;
	uint64_t ms;

	if (!usable && (npeers || !nlookups))
		return CN_RELOOKUP_MS;
	if (!usable) {
		/* none found yet: 0.5, 1, 2 s, then CN_RELOOKUP_MS */
		ms = (uint64_t)CN_FIRST_RELOOKUP_MS << (k > 3 ? 3 : k);
		return ms < CN_RELOOKUP_MS ? ms : CN_RELOOKUP_MS;
	}
	if (usable < CN_WANT_PROVIDERS && k < 4)
		return (uint64_t)CN_EARLY_LOOKUP_MS << k;
	return CN_REGATHER_MS;
}

static uint64_t relookup_ms(struct cn_job *j)
{
	return cn_relookup_ms(j->npeers, (unsigned int)usable_peers(j), j->nlookups);
}

/* Download the current item (j->cur). Called and returns with j->mu held. */
static int fetch_item_run(struct cn_job *j)
{
	struct cstore_info info;
	uint64_t t;

	if (cstore_info(j->cn->cs, j->cur, &info) == 0 && info.state == CSTORE_COMPLETE) {
		j->resumed += info.nchunks;
		j->done_bytes += info.size;
		return 0;
	}
	snprintf(j->state, sizeof(j->state), "lookup");
	cn_gather(j, j->cur);
	j->last_progress = util_now_ms();
	snprintf(j->state, sizeof(j->state), "fetching");
	while (!atomic_load(&j->stop) && !atomic_load(&j->cn->stopping)) {
		cn_poll_lookup(j);
		process_done(j);
		if (j->npend && (j->have_n == j->nchunks ||
				 util_now_ms() - j->pend_since >= CN_COMMIT_MS))
			cn_commit_pending(j);
		if (j->status)
			return j->status;
		if (j->opened && j->have_n == j->nchunks) {
			cn_commit_wait(j); /* the last batch durable first */
			return j->status;
		}
		schedule(j);
		t = util_now_ms();
		if (t - j->last_lookup > relookup_ms(j))
			cn_gather(j, j->cur);
		if (t - j->last_progress > CN_STALL_MS) {
			snprintf(j->error, sizeof(j->error), "%s",
				 j->opened ? "no provider answered for 60 s"
					   : "no provider found for this content");
			return -ETIMEDOUT;
		}
		/* Every provider named or found answered "not found" (removed
		 * there, say; mid-download: its last answer) and no other
		 * turned up: say so, not a 60 s stall. */
		if ((j->opened ? cn_peers_notfound(j) : j->said_notfound) && !usable_peers(j) &&
		    t - j->last_progress > (j->rq.nfrom ? CN_NOTFOUND_MS : CN_NOTFOUND_DHT_MS)) {
			snprintf(j->error, sizeof(j->error),
				 "not found: every provider asked (%u) answered that it %s this "
				 "content%s",
				 j->opened ? cn_peers_notfound(j) : j->npeers,
				 j->opened ? "no longer holds" : "does not hold",
				 j->opened ? "; the chunks fetched are kept: a get resumes" : "");
			return -ENOENT;
		}
		cn_job_sleep(j, fetch_wait_ms(j, t));
	}
	cn_commit_pending(j); /* stopping: what is written is kept */
	return -ECANCELED;
}

/* fetch_item_run, then its commits ended: every batch handed over made
 * durable (or failed: its error) and the committer joined. */
static int fetch_item(struct cn_job *j)
{
	int rc = fetch_item_run(j);

	cn_commit_stop(j);
	return rc ? rc : j->status;
}

/* Whether the item at path is selected by rq (all are with none named):
 * a path named, or one under a folder named. */
/* Item i's path: the real one of a sealed share opened (v), else the
 * manifest's. 0 or -ENAMETOOLONG. */
static int item_path(const struct manifest *m, const struct cn_seal_view *v, uint32_t i,
		     char *buf, size_t cap)
{
	if (v)
		return cn_seal_view_path(v, i, buf, cap);
	if (strlen(m->items[i].path) >= cap)
		return -ENAMETOOLONG;
	strcpy(buf, m->items[i].path);
	return 0;
}

static bool selected(const struct cn_get_req *rq, const char *path)
{
	if (!rq->nsel)
		return true;
	for (unsigned int i = 0; i < rq->nsel; i++) {
		size_t n = strlen(rq->sel[i]);

		if (!strncmp(path, rq->sel[i], n) && (path[n] == 0 || path[n] == '/'))
			return true;
	}
	return false;
}

/* A job that follows a share head (subscribe.c) takes the version the
 * head names: the manifest whose digest is the head's "mh" when it has
 * one, else the newest the providers have. */
static int version_ok(const struct cn_job *j, const struct manifest *m)
{
	uint8_t d[32];

	if (!j->rq.has_head || !j->rq.has_mh)
		return 1;
	return manifest_digest(m, d) == 0 && !memcmp(d, j->rq.want_mh, 32);
}

/* Share: fetch and verify its manifest. Called and returns with j->mu held. */
static int fetch_manifest(struct cn_job *j, struct manifest *m)
{
	unsigned int other_versions = 0;

	uint8_t *enc = NULL;
	size_t len = 0;
	uint64_t t;
	int rc;

	j->mpeer = -1;
	j->manifests_refused = 0;
	j->refused_why = NULL;
	if (cn_share_get(j->cn, j->rq.id, &enc, &len) == 0) {
		rc = manifest_decode(m, enc, len);
		free(enc);
		/* held locally; with explicit providers ask for a newer one, and
		 * for a head's version unless it is the one held */
		if (rc == 0 && j->rq.nfrom == 0 &&
		    (!j->rq.has_head || (j->rq.has_mh && version_ok(j, m))))
			return 0;
		manifest_free(m);
		manifest_init(m);
	}
	snprintf(j->state, sizeof(j->state), "lookup");
	cn_gather(j, j->rq.id);
	j->last_progress = util_now_ms();
	snprintf(j->state, sizeof(j->state), "manifest");
	while (!atomic_load(&j->stop) && !atomic_load(&j->cn->stopping)) {
		cn_poll_lookup(j);
		for (unsigned int i = 0; i < CN_MAX_REQS; i++) {
			struct cn_req *r = &j->reqs[i];
			struct cn_peer *p = &j->peers[r->peer];
			struct manifest got;
			const uint8_t *body;
			size_t blen;

			if (!r->used || r->kind != K_MANIFEST)
				continue;
			if (!r->done && r->start_ms + j->cn->req_timeout_ms < util_now_ms()) {
				cn_req_stop(r, -ETIMEDOUT);
				p->timeouts++;
			}
			if (!r->done)
				continue;
			p->mstate = 2;
			manifest_init(&got);
			if (!r->err && cn_ans_body(r->a.buf, r->a.len, &body, &blen) == 0 &&
			    r->a.buf[0] == CONTENT_ST_OK) {
				rc = manifest_decode(&got, body, blen);
				if (rc || memcmp(got.share_id, j->rq.id, MANIFEST_SHARE_ID_LEN)) {
					manifest_free(&got);
					j->bad_chunks++;
					j->manifests_refused++;
					j->refused_why =
					    rc == -ELOOP ? "a manifest whose predecessor link loops"
							 : "a manifest that does not verify";
					fault(j, p, j->refused_why);
				} else if (j->rq.has_head && memcmp(got.pk, j->rq.head_pk, 32)) {
					/* the head's key must sign what it names */
					manifest_free(&got);
					j->bad_chunks++;
					j->manifests_refused++;
					j->refused_why = "a manifest signed by another key than the head's";
					fault(j, p, j->refused_why);
				} else if (j->rq.has_mh) {
					if (!m->is_signed && version_ok(j, &got)) {
						*m = got;
						j->mpeer = (int)r->peer;
					} else {
						other_versions += !m->is_signed;
						manifest_free(&got);
					}
				} else if (!m->is_signed || manifest_supersedes(&got, m) == 1) {
					manifest_free(m);
					*m = got;
					j->mpeer = (int)r->peer;
				} else {
					manifest_free(&got);
				}
			}
			cn_req_release(j, r);
		}
		for (unsigned int k = 0; k < j->npeers; k++) {
			struct cn_peer *p = &j->peers[k];

			if (p->state == P_UP && p->mstate == 0 &&
			    cn_req_open(j, (int)k, K_MANIFEST, 0) == 0)
				p->mstate = 1;
		}
		/* done when every provider answered (or is gone) and one was good */
		{
			int waiting = 0;

			for (unsigned int k = 0; k < j->npeers; k++)
				if (j->peers[k].state == P_CONNECTING ||
				    (j->peers[k].state == P_UP && j->peers[k].mstate != 2))
					waiting = 1;
			if (m->is_signed && !waiting)
				return 0;
			if (!m->is_signed && !waiting && other_versions) {
				snprintf(j->error, sizeof(j->error),
					 "no provider has the version the share head names yet");
				return -EAGAIN;
			}
			/* what every provider sent was refused and no other
			 * turned up: that is the answer, nothing taken */
			if (!m->is_signed && !waiting && j->manifests_refused &&
			    util_now_ms() - j->last_progress > CN_NOTFOUND_DHT_MS) {
				snprintf(j->error, sizeof(j->error),
					 "refused: %s (%u sent by the providers, none taken)",
					 j->refused_why, j->manifests_refused);
				return -EBADMSG;
			}
		}
		t = util_now_ms();
		if (m->is_signed && t - j->last_progress > (uint64_t)j->cn->req_timeout_ms)
			return 0;

		/* a browse (share show) of a share no lookup found a provider
		 * of: the DHT's answer is the answer after CN_NOTFOUND_DHT_MS
		 * (several lookups); a download waits CN_STALL_MS for one */
		if (j->rq.manifest_only && !j->rq.nfrom && !j->npeers &&
		    t - j->last_progress > CN_NOTFOUND_DHT_MS) {
			snprintf(j->error, sizeof(j->error),
				 "no provider of this share found in the DHT");
			return -ENOENT;
		}
		if (t - j->last_progress > CN_STALL_MS) {
			snprintf(j->error, sizeof(j->error), "no provider served this share");
			return -ETIMEDOUT;
		}
		if (!usable_peers(j) && t - j->last_lookup > relookup_ms(j))
			cn_gather(j, j->rq.id);
		cn_job_sleep(j, CN_WAIT_MS);
	}
	return -ECANCELED;
}

/* A sealed share (docs/PRIVATE.md): open its content key with this node's
 * key and its real item list, before anything of it is stored. With
 * rq.raw, or for the manifest alone (share show), the ciphertext is what is
 * asked for: *open stays 0. Called and returns with j->mu held. */
static int open_sealed(struct cn_job *j, const struct manifest *m, uint8_t ck[32],
		       struct cn_seal_view *v, int *open)
{
	int rc;

	*open = 0;
	if (!m->sealed || j->rq.raw || j->rq.manifest_only)
		return 0;
	rc = cn_seal_key(j->cn, m, ck);
	if (rc == -ENOKEY && j->rq.seed_sealed) {
		j->rq.raw = 1; /* a follower that cannot read it seeds it */
		return 0;
	}
	if (rc == -ENOKEY) {
		snprintf(j->error, sizeof(j->error),
			 "not a recipient: none of the %u keys share %.20s is sealed to is "
			 "this node's (--raw: ciphertext)",
			 m->nkeys, m->name);
		return rc;
	}
	if (!rc)
		rc = cn_seal_view_open(ck, m, v);
	if (rc && rc != -ENOMEM && j->mpeer >= 0)
		/* signed by the publisher, so not the provider's fault (it
		 * cannot open it): a score penalty, not a fault */
		soft_fail(&j->peers[j->mpeer], 25);
	if (rc) {
		snprintf(j->error, sizeof(j->error),
			 "share %.40s: its sealed key or item list does not open (%.40s)",
			 m->name, strerror(-rc));
		return rc == -ENOMEM ? rc : -EBADMSG;
	}
	*open = 1;
	return 0;
}

/* A group's record share (groupkeys.c): its one record item, held now, is
 * verified against the share's publisher and opened with our key. Not
 * under the job lock (store writes). A record we are not in is normal
 * (removed, or following a group we are not part of): logged. A record
 * that is not the publisher's own (signed by another key, or of another
 * group) or does not parse is refused: the share is removed again (no
 * record and no key of it stays), the provider of the manifest loses
 * score (not a fault: it served what the publisher signed) and the job
 * fails. One whose entry for us does not open fails the job too (no key
 * held; the record stays, other members may open theirs). */
static int import_group(struct cn_job *j, const struct manifest *m)
{
	uint8_t *buf;
	size_t len;
	unsigned int nb;
	int rc;

	if (m->nitems != 1 || strcmp(m->items[0].type, CN_GROUP_TYPE) ||
	    strncmp(m->name, CN_GROUP_SHARE_PREFIX, strlen(CN_GROUP_SHARE_PREFIX)) ||
	    m->items[0].size > B3TREE_CHUNK_LEN)
		return 0;
	buf = malloc(B3TREE_CHUNK_LEN);
	if (!buf)
		return 0;
	pthread_mutex_unlock(&j->mu);
	rc = cstore_read_chunk(j->cn->cs, m->items[0].id, 0, buf, B3TREE_CHUNK_LEN, &len);
	if (!rc)
		rc = cn_group_import(j->cn, m->pk, m->name, buf, len);
	if (rc == -EPERM || rc == -EPROTO)
		cn_remove(j->cn, m->share_id, MANIFEST_SHARE_ID_LEN, &nb);
	pthread_mutex_lock(&j->mu);
	free(buf);
	if (rc == -EPERM || rc == -EPROTO || rc == -EBADMSG) {
		snprintf(j->error, sizeof(j->error), "group record %.40s: %s", m->name,
			 rc == -EBADMSG ? "our entry does not open (no key held)"
			 : rc == -EPERM ? "not its publisher's own (refused, not kept)"
					: "does not parse (refused, not kept)");
		if (j->mpeer >= 0)
			soft_fail(&j->peers[j->mpeer], 25);
		return -EBADMSG;
	}
	if (rc && rc != -ESTALE)
		log_info(CN_MOD, "group record %s: not held (%s)", m->name,
			 rc == -ENOENT ? "not a member" : strerror(-rc));
	return 0;
}

void *cn_job_run(void *arg)
{
	struct cn_job *j = arg;
	struct manifest m, held;
	struct cn_seal_view sv = {0};
	uint8_t ck[32];
	char hex[65], path[MANIFEST_MAX_PATH + 1];
	int rc = 0, sealed_open = 0;

	manifest_init(&m);
	manifest_init(&held);
	pthread_mutex_lock(&j->mu);
	j->t_start = util_now_ms();
	if (j->rq.id_len == MANIFEST_SHARE_ID_LEN) {
		/* the version held before this one: its items may lend chunks */
		uint8_t *enc = NULL;
		size_t len;

		if (cn_share_get(j->cn, j->rq.id, &enc, &len) == 0 &&
		    manifest_decode(&held, enc, len))
			manifest_init(&held);
		free(enc);
	}
	if (j->rq.id_len == MANIFEST_SHARE_ID_LEN) {
		rc = fetch_manifest(j, &m);
		if (!rc)
			rc = open_sealed(j, &m, ck, &sv, &sealed_open);
		if (!rc) {
			/* Waits for the store's commit: not under the job lock,
			 * which worker callbacks take. */
			pthread_mutex_unlock(&j->mu);
			cn_share_take(j->cn, &m);
			pthread_mutex_lock(&j->mu);
			for (uint32_t i = 0; i < m.nitems; i++) {
				if (!item_path(&m, sealed_open ? &sv : NULL, i, path, sizeof(path)) &&
				    selected(&j->rq, path) && !cn_blocked(j->cn, m.items[i].id, 32)) {
					j->items_total++;
					j->total_bytes += m.items[i].size;
				}
			}
			if (j->rq.nsel && !j->items_total) {
				snprintf(j->error, sizeof(j->error),
					 "no item of the share matches the paths asked for");
				rc = -ENOENT;
			}
			/* manifest only: kept (stored above), no item fetched */
			for (uint32_t i = 0; i < m.nitems && !rc && !j->rq.manifest_only; i++) {
				struct cn_export_key key;

				if (item_path(&m, sealed_open ? &sv : NULL, i, path, sizeof(path)) ||
				    !selected(&j->rq, path) || cn_blocked(j->cn, m.items[i].id, 32))
					continue; /* not asked for, or blocklisted */
				set_item(j, m.items[i].id);
				cn_reuse_pick(j, &held, path, m.items[i].id);
				j->announce = manifest_announced(&m);
				if (sealed_open) {
					key.plain_size = sv.it[i].size;
					rc = seal_item_key(ck, i, key.item_key);
				}
				if (!rc) {
					cn_job_tee_open(j, path, sealed_open ? &key : NULL);
					rc = fetch_item(j);
				}
				if (!rc) {
					cn_job_export(j, m.items[i].id, path,
						      sealed_open ? &key : NULL);
					rc = j->status;
				}
				if (sealed_open)
					sodium_memzero(&key, sizeof(key));
				if (!rc) {
					j->items_done++;
					if (manifest_announced(&m))
						cn_announce(j->cn, m.items[i].id, 32);
				}
			}
			if (!rc && manifest_announced(&m) && !j->rq.manifest_only)
				cn_announce(j->cn, m.share_id, MANIFEST_SHARE_ID_LEN);
			if (!rc && !j->rq.manifest_only && !m.sealed)
				rc = import_group(j, &m);
		}
		sodium_memzero(ck, sizeof(ck));
		cn_seal_view_free(&sv);
	} else {
		j->items_total = 1;
		set_item(j, j->rq.id);
		j->announce = 1; /* announced when done anyway: from the start now */
		util_hex(hex, j->rq.id, 32);
		cn_job_tee_open(j, hex, NULL);
		rc = fetch_item(j);
		if (!rc) {
			j->total_bytes = j->size;
			cn_job_export(j, j->rq.id, hex, NULL);
			rc = j->status;
		}
		if (!rc) {
			j->items_done = 1;
			cn_announce(j->cn, j->rq.id, 32);
		}
	}
	cn_job_tee_close(j); /* an item that failed: its copy's file removed */
	manifest_free(&m);
	manifest_free(&held);
	j->status = rc;
	if (rc && !j->error[0])
		snprintf(j->error, sizeof(j->error), "%s", strerror(-rc));
	snprintf(j->state, sizeof(j->state), "%s", rc ? "failed" : "done");
	j->t_end = util_now_ms();
	cn_conns_close(j); /* lets go of j->mu meanwhile */
	cn_lookup_put(j->lk);
	j->lk = NULL;
	j->finished = 1;
	pthread_mutex_unlock(&j->mu);
	if (j->cn->job_ended) /* its end line out now, not at the next tick */
		j->cn->job_ended(j->cn->ev);
	util_hex(hex, j->rq.id, j->rq.id_len);
	if (rc)
		log_warn(CN_MOD, "download %s failed: %s", hex, j->error);
	else
		log_info(CN_MOD,
			 "download %s done: %llu chunks fetched, %llu already held, %llu reused from "
			 "a previous version, %llu bad",
			 hex, (unsigned long long)j->fetched, (unsigned long long)j->resumed,
			 (unsigned long long)j->reused, (unsigned long long)j->bad_chunks);
	return NULL;
}
