// SPDX-License-Identifier: MIT
/*
 * The download jobs of a content node: the table of jobs (started, or
 * joined when the same id is already being fetched; a finished one's slot
 * reused), their JSON views for the control API, the providers of a
 * running download (for PEERS answers, serve.c), and stopping them all.
 * Each job runs its state machine on its own thread (cn_job_run,
 * swarm.c); this file owns the jobs' memory and calls nothing above it.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/chunkstore_int.h"
#include "content/swarm_int.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/util.h"

/* What is kept of an ended job (struct cn_jobent): its progress line and
 * its JSON, compact text (json_loads'd for each view). */
struct cn_job_end {
	uint64_t t_end;
	struct cn_progress prog;
	char json[];
};

static void job_free(struct cn_job *j)
{
	if (!j)
		return;
	for (unsigned int i = 0; i < j->npeers; i++)
		free(j->peers[i].bits);
	free(j->have);
	free(j->busy);
	free(j->avail);
	free(j->order);
	pthread_mutex_destroy(&j->mu);
	pthread_cond_destroy(&j->cond);
	free(j);
}

/* Under jmu: 1 when j has ended and no cancel holds it, its thread then
 * joined (returned, or about to: its last log line); else 0. */
static int job_joined(struct cn_job *j)
{
	int fin;

	pthread_mutex_lock(&j->mu);
	fin = j->finished;
	pthread_mutex_unlock(&j->mu);
	if (!fin || j->holds)
		return 0;
	if (!j->joined) /* once: a compaction that ran out of memory retries */
		pthread_join(j->thr, NULL);
	j->joined = 1;
	return 1;
}

/* Under jmu: empty a slot whose job has ended (no cancel holding it): 0,
 * else -EBUSY. */
static int slot_free(struct cn_jobent *e)
{
	if (e->live) {
		if (!job_joined(e->live))
			return -EBUSY;
		job_free(e->live);
	}
	free(e->end);
	*e = (struct cn_jobent){0};
	return 0;
}

int cn_job_start(struct content_node *cn, const struct cn_get_req *rq, uint64_t *job_id)
{
	struct cn_job *j;
	unsigned int i, slot = CONTENT_MAX_JOBS;
	int rc;

	if (cn_blocked(cn, rq->id, rq->id_len)) { /* a blocklist lists it */
		atomic_fetch_add(&cn->blocked_refused, 1);
		return -EACCES;
	}
	pthread_mutex_lock(&cn->jmu);
	for (i = 0; i < cn->njobs; i++) {
		struct cn_job *o = cn->jobs[i].live;

		if (o && !o->finished && !o->cancelled && o->rq.id_len == rq->id_len &&
		    !memcmp(o->rq.id, rq->id, rq->id_len)) {
			/* Joining a running download (one resumed at start, say):
			 * it takes the output folder if it had none, and the
			 * providers given. */
			pthread_mutex_lock(&o->mu);
			if (!o->rq.out[0] && rq->out[0])
				memcpy(o->rq.out, rq->out, sizeof(o->rq.out));
			for (unsigned int k = 0; k < rq->nfrom && o->rq.nfrom < 8; k++)
				memcpy(o->rq.from[o->rq.nfrom++], rq->from[k], sizeof(rq->from[k]));
			if (rq->nfrom)
				cn_gather(o, o->rq.id_len == 32 ? o->cur : o->rq.id);
			pthread_mutex_unlock(&o->mu);
			*job_id = o->jid;
			pthread_mutex_unlock(&cn->jmu);
			return 0;
		}
	}
	if (cn->njobs < CONTENT_MAX_JOBS) {
		slot = cn->njobs;
	} else {
		for (i = 0; i < cn->njobs && slot == CONTENT_MAX_JOBS; i++)
			if (slot_free(&cn->jobs[i]) == 0)
				slot = i;
	}
	if (slot == CONTENT_MAX_JOBS) {
		pthread_mutex_unlock(&cn->jmu);
		return -EBUSY;
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		pthread_mutex_unlock(&cn->jmu);
		return -ENOMEM;
	}
	{
		pthread_mutexattr_t ma;

		/* Recursive: a QUIC API call made on a worker under the lock
		 * may run its callbacks at once. */
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_settype(&ma, PTHREAD_MUTEX_RECURSIVE);
		pthread_mutex_init(&j->mu, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	{
		/* Waits measured on the monotonic clock (wait_a_bit): on the
		 * wall clock, a step back returned each wait at once and a
		 * step forward held it for the step (test_fault_clock). */
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&j->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	j->cn = cn;
	j->rq = *rq;
	j->jid = ++cn->next_job;
	j->rng = (util_now_ms() * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)(uintptr_t)j << 16) ^ j->jid;
	if (!j->rng)
		j->rng = 1;
	snprintf(j->state, sizeof(j->state), "starting");
	rc = log_thread_create_helper(&j->thr, NULL, cn_job_run, j, "weft-download");
	if (rc) {
		job_free(j);
		pthread_mutex_unlock(&cn->jmu);
		return -rc;
	}
	cn->jobs[slot] = (struct cn_jobent){.jid = j->jid, .live = j};
	if (slot == cn->njobs)
		cn->njobs++;
	*job_id = j->jid;
	pthread_mutex_unlock(&cn->jmu);
	return 0;
}

static const char *pstate(int s)
{
	switch (s) {
	case P_CONNECTING:
		return "connecting";
	case P_UP:
		return "up";
	case P_BANNED:
		return "banned";
	default:
		return "gone";
	}
}

static json_t *job_to_json(struct cn_job *j)
{
	json_t *o, *ps;
	char hex[65], cur[65];
	uint64_t t, el;

	pthread_mutex_lock(&j->mu);
	util_hex(hex, j->rq.id, j->rq.id_len);
	util_hex(cur, j->cur, 32);
	t = j->t_end ? j->t_end : util_now_ms();
	el = j->t_start ? t - j->t_start : 0;
	ps = json_array();
	for (unsigned int i = 0; i < j->npeers; i++) {
		struct cn_peer *p = &j->peers[i];

		json_array_append_new(
		    ps, json_pack("{s:s,s:s,s:i,s:I,s:I,s:i,s:i,s:i,s:i}", "addr", p->name, "state",
				  pstate(p->state), "score", p->score, "chunks",
				  (json_int_t)p->chunks, "bytes", (json_int_t)p->bytes, "faults",
				  (int)p->faults, "timeouts", (int)p->timeouts, "errors",
				  (int)p->errors, "inflight", (int)p->inflight));
		json_object_set_new(json_array_get(ps, json_array_size(ps) - 1), "depth",
				    json_integer(p->depth));
		json_object_set_new(json_array_get(ps, json_array_size(ps) - 1), "answer_ms",
				    json_integer(p->ans_ms));
	}
	o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,"
		      "s:I,s:s,s:o}",
		      "job", (json_int_t)j->jid, "id", hex, "kind",
		      j->rq.id_len == 32 ? "content" : "share", "state",
		      j->cancelled && j->finished ? "cancelled" : j->state, "error",
		      j->cancelled && j->finished ? "cancelled by the operator" : j->error, "current", cur, "size", (json_int_t)j->size, "nchunks",
		      (json_int_t)j->nchunks, "have", (json_int_t)j->have_n, "fetched",
		      (json_int_t)j->fetched, "resumed", (json_int_t)j->resumed, "reused",
		      (json_int_t)j->reused, "bad_chunks",
		      (json_int_t)j->bad_chunks, "retries", (json_int_t)j->retries, "bytes",
		      (json_int_t)j->bytes, "total_bytes", (json_int_t)j->total_bytes, "done_bytes",
		      (json_int_t)j->done_bytes, "items_total", (json_int_t)j->items_total,
		      "items_done", (json_int_t)j->items_done, "elapsed_ms", (json_int_t)el, "out",
		      j->rq.out, "providers", ps);
	if (o) {
		json_object_set_new(o, "done", json_boolean(j->finished));
		json_object_set_new(o, "stream_waits", json_integer((json_int_t)j->stream_waits));
		json_object_set_new(o, "endgame", json_integer((json_int_t)j->endgame));
		json_object_set_new(o, "endgame_cancelled",
				    json_integer((json_int_t)j->endgame_cancelled));
		json_object_set_new(o, "pex_found", json_integer((json_int_t)j->pex_found));
		json_object_set_new(o, "refreshes", json_integer((json_int_t)j->refreshes));
		json_object_set_new(o, "refreshes_idle",
				    json_integer((json_int_t)j->refreshes_idle));
		json_object_set_new(o, "held_told", json_integer((json_int_t)j->held_told));
		json_object_set_new(o, "idle_told", json_integer((json_int_t)j->idle_told));
		/* how the job started: DHT lookups made, and ms from its
		 * start to its first provider and its first chunk (-1: none
		 * yet) */
		json_object_set_new(o, "lookups", json_integer((json_int_t)j->nlookups));
		/* of elapsed_ms, the time spent writing the items out to
		 * --out (copies re-verified and synced, or links) */
		json_object_set_new(o, "export_ms", json_integer((json_int_t)j->export_ms));
		/* chunks of those copies their commits wrote as they arrived
		 * (the export wrote the rest: docs/CONTENT.md "The user's copy
		 * written as it arrives") */
		json_object_set_new(o, "copied_early", json_integer((json_int_t)j->copied_early));
		json_object_set_new(o, "first_provider_ms",
				    json_integer(j->t_first_peer && j->t_start
							 ? (json_int_t)(j->t_first_peer - j->t_start)
							 : -1));
		json_object_set_new(o, "first_chunk_ms",
				    json_integer(j->t_first_chunk && j->t_start
							 ? (json_int_t)(j->t_first_chunk - j->t_start)
							 : -1));
		json_object_set_new(o, "wasted_bytes", json_integer((json_int_t)j->wasted_bytes));
		json_object_set_new(o, "timeouts_partial",
				    json_integer((json_int_t)j->timeouts_partial));
		json_object_set_new(o, "committed", json_integer((json_int_t)j->committed));
		json_object_set_new(o, "frames_fast", json_integer((json_int_t)j->frames_fast));
		json_object_set_new(o, "frames_locked",
				    json_integer((json_int_t)j->frames_locked));
		/* What a script tests: "no_space" for a full disk, map or quota
		 * (ctl_resp_errno's codes), next to the message in "error". */
		if (j->finished && j->status)
			json_object_set_new(o, "error_code",
					    json_string(ctl_errno_code(j->status)));
		json_object_set_new(o, "rate_bps",
				    json_integer(el ? (json_int_t)(j->bytes * 1000 / el) : 0));
	}
	pthread_mutex_unlock(&j->mu);
	return o;
}

size_t cn_job_peers(struct content_node *cn, const uint8_t id[32],
		    const struct sockaddr_storage *except, struct sockaddr_storage *out, size_t cap)
{
	size_t n = 0;

	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs; i++) {
		struct cn_job *j = cn->jobs[i].live;

		if (!j)
			continue;
		pthread_mutex_lock(&j->mu);
		if (!j->finished && j->opened && !memcmp(j->cur, id, 32))
			for (unsigned int k = 0; k < j->npeers && n < cap; k++)
				if (j->peers[k].state == P_UP && j->peers[k].info == 2 &&
				    !cn_same_addr(&j->peers[k].addr, except))
					out[n++] = j->peers[k].addr;
		pthread_mutex_unlock(&j->mu);
	}
	pthread_mutex_unlock(&cn->jmu);
	return n;
}

/* j's progress line (j->mu held). */
static void job_progress(struct cn_job *j, struct cn_progress *q, uint64_t now)
{
	uint64_t el;

	memset(q, 0, sizeof(*q));
	q->job = j->jid;
	memcpy(q->id, j->rq.id, j->rq.id_len);
	q->id_len = j->rq.id_len;
	q->finished = j->finished;
	snprintf(q->state, sizeof(q->state), "%s",
		 j->cancelled && j->finished ? "cancelled" : j->state);
	snprintf(q->error, sizeof(q->error), "%s",
		 j->cancelled && j->finished ? "cancelled by the operator" : j->error);
	/* the error text goes into a JSON string: quotes and controls out */
	for (char *c = q->error; *c; c++)
		if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
			*c = ' ';
	q->done = j->done_bytes;
	q->total = j->total_bytes ? j->total_bytes : j->size;
	el = j->t_start ? (j->t_end ? j->t_end : now) - j->t_start : 0;
	q->elapsed_ms = el;
	q->rate_bps = el ? j->bytes * 1000 / el : 0;
	q->items_done = j->items_done;
	q->items_total = j->items_total;
	q->bad_chunks = j->bad_chunks;
	for (unsigned int k = 0; k < j->npeers; k++)
		q->providers += j->peers[k].state == P_UP && j->peers[k].info == 2;
}

size_t cn_jobs_progress(struct content_node *cn, struct cn_progress *p, size_t cap)
{
	size_t n = 0;
	uint64_t now = util_now_ms();

	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs && n < cap; i++) {
		struct cn_jobent *e = &cn->jobs[i];

		if (e->live) {
			pthread_mutex_lock(&e->live->mu);
			job_progress(e->live, &p[n++], now);
			pthread_mutex_unlock(&e->live->mu);
		} else {
			p[n++] = e->end->prog;
		}
	}
	pthread_mutex_unlock(&cn->jmu);
	return n;
}

int cn_job_cancel(struct content_node *cn, uint64_t job_id, unsigned int wait_ms, int *deleted)
{
	struct cn_job *j = NULL;
	uint8_t cur[32];
	uint64_t t0 = util_now_ms();
	int finished = 0, kind_content;
	struct cstore_info info;

	*deleted = 0;
	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs; i++)
		if (cn->jobs[i].jid == job_id) {
			if (!cn->jobs[i].live) { /* ended, compacted */
				pthread_mutex_unlock(&cn->jmu);
				return -EALREADY;
			}
			j = cn->jobs[i].live;
		}
	if (!j) {
		pthread_mutex_unlock(&cn->jmu);
		return -ENOENT;
	}
	pthread_mutex_lock(&j->mu);
	if (j->finished) {
		pthread_mutex_unlock(&j->mu);
		pthread_mutex_unlock(&cn->jmu);
		return -EALREADY;
	}
	j->cancelled = 1;
	atomic_store(&j->stop, 1);
	pthread_cond_broadcast(&j->cond);
	pthread_mutex_unlock(&j->mu);
	/* Held: its slot is not reused (j stays valid) while we wait.
	 * Polling with a deadline: its thread wakes every 20 ms. */
	j->holds++;
	pthread_mutex_unlock(&cn->jmu);
	for (;;) {
		pthread_mutex_lock(&j->mu);
		finished = j->finished;
		memcpy(cur, j->cur, 32);
		kind_content = j->opened;
		pthread_mutex_unlock(&j->mu);
		if (finished || util_now_ms() - t0 >= wait_ms)
			break;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	pthread_mutex_lock(&cn->jmu);
	j->holds--;
	pthread_mutex_unlock(&cn->jmu);
	if (!finished)
		return -ETIMEDOUT;
	/* What it had fetched of its current item goes: a cancelled download
	 * does not resume at the next start. Complete items stay. */
	if (kind_content && cstore_info(cn->cs, cur, &info) == 0 && info.state == CSTORE_PARTIAL) {
		cn_unannounce(cn, cur, 32);
		*deleted = cstore_delete(cn->cs, cur) == 0;
	}
	return 0;
}

/* The JSON of a slot's job (NULL when out of memory). */
static json_t *ent_json(struct cn_jobent *e)
{
	return e->live ? job_to_json(e->live) : json_loads(e->end->json, 0, NULL);
}

json_t *cn_job_json(struct content_node *cn, uint64_t job_id)
{
	json_t *o = NULL;

	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs; i++)
		if (cn->jobs[i].jid == job_id)
			o = ent_json(&cn->jobs[i]);
	pthread_mutex_unlock(&cn->jmu);
	return o;
}

json_t *cn_jobs_json(struct content_node *cn)
{
	json_t *a = json_array();

	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs; i++)
		json_array_append_new(a, ent_json(&cn->jobs[i]));
	pthread_mutex_unlock(&cn->jmu);
	return a;
}

/* Under jmu: keep what is shown of an ended job, free the job. 0, or
 * -EBUSY (still running, or held by a cancel), -ENOMEM (it stays live). */
static int ent_compact(struct cn_jobent *e)
{
	struct cn_job *j = e->live;
	struct cn_job_end *d;
	json_t *o;
	char *txt;
	size_t len;

	if (!job_joined(j))
		return -EBUSY;
	o = job_to_json(j);
	txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	len = txt ? strlen(txt) : 0;
	d = txt ? malloc(sizeof(*d) + len + 1) : NULL;
	if (!d) {
		free(txt);
		return -ENOMEM;
	}
	memcpy(d->json, txt, len + 1);
	free(txt);
	d->t_end = j->t_end;
	job_progress(j, &d->prog, d->t_end);
	job_free(j);
	e->live = NULL;
	e->end = d;
	return 0;
}

void content_node_trim(struct content_node *cn, uint64_t now_ms)
{
	unsigned int i, k = 0;

	if (!cn)
		return;
	pthread_mutex_lock(&cn->jmu);
	for (i = 0; i < cn->njobs; i++) {
		struct cn_jobent *e = &cn->jobs[i];

		if (e->live)
			(void)ent_compact(e); /* -EBUSY, -ENOMEM: a tick later */
		/* now_ms was read before the lock: a job that ended since has
		 * a later t_end, and now_ms - t_end wrapped round dropped it
		 * at once, unseen (a 51-node lab's 49/50 runs) */
		if (e->end && now_ms > e->end->t_end &&
		    now_ms - e->end->t_end >= CONTENT_JOB_KEEP_MS) {
			free(e->end);
			continue;
		}
		cn->jobs[k++] = *e;
	}
	cn->njobs = k;
	pthread_mutex_unlock(&cn->jmu);
	if (cn->cs) {
		cn_dio_trim(cn->cs);
		cn_hot_trim(cn->cs);
		cn_fds_trim(cn->cs);
	}
	cn_ss_trim(cn, now_ms);
}

void cn_jobs_stop(struct content_node *cn)
{
	pthread_mutex_lock(&cn->jmu);
	for (unsigned int i = 0; i < cn->njobs; i++)
		if (cn->jobs[i].live)
			atomic_store(&cn->jobs[i].live->stop, 1);
	for (unsigned int i = 0; i < cn->njobs; i++) {
		if (cn->jobs[i].live) {
			if (!cn->jobs[i].live->joined)
				pthread_join(cn->jobs[i].live->thr, NULL);
			job_free(cn->jobs[i].live);
		}
		free(cn->jobs[i].end);
	}
	cn->njobs = 0;
	pthread_mutex_unlock(&cn->jmu);
}
