// SPDX-License-Identifier: MIT
/*
 * The store's writer: one thread that owns every queued LMDB write and
 * commits them in batches (include/weft/store.h, "The writer").
 *
 * Threads: callers (control handlers, packet workers, the main loop) only
 * append to the queue under w->mu, a mutex held for a few pointer moves;
 * the writer takes up to STORE_WRITE_BATCH_MAX writes, releases the mutex,
 * applies each in a nested transaction of one batch transaction, commits
 * (LMDB's fsync), then marks the batch done and wakes the durable waiters
 * with one broadcast. Waiters therefore share commits: while one batch is
 * on its way to the disk the next one fills.
 *
 * A write's life (w->mu guards state): QUEUED -> TAKEN (in a batch) ->
 * APPLYING (its ops or function running) -> APPLIED -> DONE. A durable
 * waiter whose deadline passes withdraws a write still QUEUED or TAKEN;
 * past that, it only waits for APPLYING to end (a function must not run
 * after its caller returned). A write is freed by whichever of the writer
 * and its waiter lets go last (refs).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/log.h"
#include "weft/util.h"
#include "store_int.h"

#define STORE_OPS_MAX 64
/* Idle wake-up of the writer: it has nothing to do, but no wait is
 * without a deadline. */
#define WRITER_IDLE_MS 1000
/* At most one "queue full" line per this many seconds. */
#define DROP_LOG_S 10

enum { W_QUEUED, W_TAKEN, W_APPLYING, W_APPLIED, W_DONE };

struct store_write {
	struct store_write *next;
	struct store_writer *w;
	int state;
	int cancelled;
	int durable;
	int refs;
	int err;
	size_t bytes;
	store_write_fn fn;
	void *arg;
	size_t nops;
	struct store_op ops[]; /* then the copied keys and values */
};

struct store_writer {
	struct store *st;
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t ready; /* writer: work queued or stop */
	pthread_cond_t done;  /* waiters: a batch finished or a write is applied */
	pthread_cond_t gone;  /* store_writer_stop: the thread ended */
	struct store_write *head, *tail;
	unsigned int nq[2];   /* queued, by durable */
	size_t qbytes;
	unsigned int qmax;
	unsigned int timeout_ms;
	int stop, running;
	uint64_t last_drop_log_s, drops_since_log;
	struct store_writer_stats s;
};

static uint64_t deadline_ns(unsigned int ms)
{
	return util_now_ns() + (uint64_t)ms * 1000000ULL;
}

/* Wait on cv until deadline (CLOCK_MONOTONIC ns); ETIMEDOUT or 0. */
static int cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, uint64_t dl)
{
	struct timespec ts = { (time_t)(dl / 1000000000ULL), (long)(dl % 1000000000ULL) };

	return pthread_cond_timedwait(cv, mu, &ts);
}

/* Drop one reference; w->mu held. */
static void put_locked(struct store_write *sw)
{
	if (--sw->refs == 0)
		free(sw);
}

static int make_write(const struct store_op *ops, size_t n, struct store_write **out)
{
	struct store_write *sw;
	size_t bytes = 0;
	uint8_t *p;

	if (n == 0 || n > STORE_OPS_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!ops[i].key || ops[i].klen == 0 || ops[i].klen > 511 ||
		    (!ops[i].val && ops[i].vlen))
			return -EINVAL;
		bytes += ops[i].klen + (ops[i].val ? ops[i].vlen : 0);
	}
	if (bytes > STORE_WRITE_QUEUE_BYTES)
		return -EINVAL;
	sw = malloc(sizeof(*sw) + n * sizeof(sw->ops[0]) + bytes);
	if (!sw)
		return -ENOMEM;
	memset(sw, 0, sizeof(*sw));
	sw->nops = n;
	sw->bytes = bytes;
	p = (uint8_t *)&sw->ops[n];
	for (size_t i = 0; i < n; i++) {
		sw->ops[i] = ops[i];
		memcpy(p, ops[i].key, ops[i].klen);
		sw->ops[i].key = p;
		p += ops[i].klen;
		if (ops[i].val) {
			if (ops[i].vlen)
				memcpy(p, ops[i].val, ops[i].vlen);
			sw->ops[i].val = p;
			p += ops[i].vlen;
		}
	}
	*out = sw;
	return 0;
}

/* Append sw (refs set by the caller). 0, -EAGAIN (full), -ESHUTDOWN. */
static int enqueue(struct store_writer *w, struct store_write *sw, int durable)
{
	int err = 0;

	sw->w = w;
	sw->durable = durable;
	sw->state = W_QUEUED;
	pthread_mutex_lock(&w->mu);
	if (w->stop) {
		err = -ESHUTDOWN;
	} else if (w->nq[durable] >= w->qmax || w->qbytes + sw->bytes > STORE_WRITE_QUEUE_BYTES) {
		err = -EAGAIN;
		if (durable) {
			w->s.refused_total++;
		} else {
			uint64_t now = util_now_ns() / 1000000000ULL;

			w->s.dropped_total++;
			w->drops_since_log++;
			if (!w->last_drop_log_s || now >= w->last_drop_log_s + DROP_LOG_S) {
				log_warn("store", "write queue full (%u queued): %llu write(s) dropped "
						  "since the last report (weft_store_writes_dropped_total)",
					 w->nq[0] + w->nq[1], (unsigned long long)w->drops_since_log);
				w->last_drop_log_s = now;
				w->drops_since_log = 0;
			}
		}
	} else {
		if (w->tail)
			w->tail->next = sw;
		else
			w->head = sw;
		w->tail = sw;
		w->nq[durable]++;
		w->qbytes += sw->bytes;
		w->s.queued_total++;
		pthread_cond_signal(&w->ready);
	}
	pthread_mutex_unlock(&w->mu);
	return err;
}

/* Copy and queue ops: a fire-and-forget write (out NULL) or a durable one
 * whose waiter holds a reference (*out). */
static int submit(struct store *st, const struct store_op *ops, size_t n,
		  struct store_write **out)
{
	struct store_write *sw;
	int err;

	if (out)
		*out = NULL;
	if (!st || !st->writer)
		return -ESHUTDOWN;
	err = make_write(ops, n, &sw);
	if (err)
		return err;
	sw->refs = out ? 2 : 1; /* the writer's, and the waiter's */
	err = enqueue(st->writer, sw, !!out);
	if (err) {
		free(sw);
		return err;
	}
	if (out)
		*out = sw;
	return 0;
}

int store_write_async(struct store *st, const struct store_op *ops, size_t n)
{
	return submit(st, ops, n, NULL);
}

int store_write_queue(struct store *st, const struct store_op *ops, size_t n,
		      struct store_write **out)
{
	return submit(st, ops, n, out);
}

int store_write_wait(struct store_write *sw, unsigned int timeout_ms)
{
	struct store_writer *w;
	uint64_t dl;
	int err;

	if (!sw)
		return -EINVAL;
	w = sw->w;
	dl = deadline_ns(timeout_ms ? timeout_ms : w->timeout_ms);
	pthread_mutex_lock(&w->mu);
	while (sw->state != W_DONE) {
		if (cond_wait_until(&w->done, &w->mu, dl) == ETIMEDOUT && sw->state != W_DONE)
			break;
	}
	/* A function running now uses its caller's arg: let it end. */
	while (sw->state == W_APPLYING)
		pthread_cond_wait(&w->done, &w->mu);
	if (sw->state == W_DONE) {
		err = sw->err;
	} else {
		err = -ETIMEDOUT;
		w->s.timeouts_total++;
		/* Not started: never will be. Applied: commits with its batch,
		 * but is not run again if the batch has to be retried. */
		sw->cancelled = 1;
	}
	put_locked(sw);
	pthread_mutex_unlock(&w->mu);
	return err;
}

int store_write_sync(struct store *st, const struct store_op *ops, size_t n,
		     unsigned int timeout_ms)
{
	struct store_write *sw;
	int err = store_write_queue(st, ops, n, &sw);

	return err ? err : store_write_wait(sw, timeout_ms);
}

int store_write_call(struct store *st, store_write_fn fn, void *arg, unsigned int timeout_ms)
{
	struct store_write *sw;
	int err;

	if (!st || !st->writer)
		return -ESHUTDOWN;
	if (!fn)
		return -EINVAL;
	sw = calloc(1, sizeof(*sw));
	if (!sw)
		return -ENOMEM;
	sw->fn = fn;
	sw->arg = arg;
	sw->refs = 2;
	err = enqueue(st->writer, sw, 1);
	if (err) {
		free(sw);
		return err;
	}
	return store_write_wait(sw, timeout_ms);
}

static int apply_ops(MDB_txn *txn, const struct store_write *sw)
{
	int rc, err = 0;

	for (size_t i = 0; i < sw->nops && !err; i++) {
		const struct store_op *o = &sw->ops[i];
		MDB_val k = { o->klen, (void *)o->key }, v = { o->vlen, (void *)o->val };

		if (o->val) {
			err = store_mdb_err(mdb_put(txn, o->dbi, &k, &v, 0));
		} else {
			rc = mdb_del(txn, o->dbi, &k, NULL);
			err = rc == MDB_NOTFOUND ? 0 : store_mdb_err(rc);
		}
	}
	return err;
}

/*
 * Apply one write inside the batch transaction parent: straight into it
 * normally; each in a nested transaction of its own once the batch had a
 * failure (isolate), so that the failing write touches nothing else. (A
 * nested transaction costs LMDB a page list of its own, far more than a
 * small put: only worth it when something failed.)
 */
static int apply_one(struct store *st, MDB_txn *parent, struct store_write *sw, int isolate)
{
	struct store_txn t = { st, parent, 0 };
	MDB_txn *child;
	int rc, err;

	if (!isolate) {
		err = sw->fn ? sw->fn(&t, sw->arg) : apply_ops(parent, sw);
		return err > 0 ? 0 : err;
	}
	rc = mdb_txn_begin(st->env, parent, 0, &child);
	if (rc)
		return store_mdb_err(rc);
	t.txn = child;
	err = sw->fn ? sw->fn(&t, sw->arg) : apply_ops(child, sw);
	if (err > 0)
		err = 0;
	if (err) {
		mdb_txn_abort(child);
		return err;
	}
	return store_mdb_err(mdb_txn_commit(child));
}

static void hist_add(struct store_writer_stats *s, uint64_t ns)
{
	static const uint64_t le_ms[7] = { 1, 4, 16, 64, 256, 1000, 4000 };
	unsigned int i = 0;

	while (i < 7 && ns > le_ms[i] * 1000000ULL)
		i++;
	s->commit_hist[i]++;
	s->commit_ns_sum += ns;
	if (ns > s->commit_ns_max)
		s->commit_ns_max = ns;
}

/*
 * Apply a batch (taken off the queue, w->mu not held) in one transaction.
 * Returns 0, or 1 when a plain write failed without isolation: the
 * transaction was aborted (LMDB may have marked it unusable) and the
 * batch must run again with isolate set.
 */
static int apply_batch(struct store_writer *w, struct store_write *batch, int isolate,
		       MDB_txn **txnp)
{
	struct store_write *sw;
	MDB_txn *txn = NULL;
	int err, rc;

	/* Blocks while another thread holds LMDB's write lock (a direct
	 * transaction of the chunk store, bounded by its own work). */
	rc = mdb_txn_begin(w->st->env, NULL, 0, &txn);
	err = store_mdb_err(rc);
	for (sw = batch; sw; sw = sw->next) {
		pthread_mutex_lock(&w->mu);
		if (sw->cancelled || err) {
			sw->err = sw->cancelled ? -ETIMEDOUT : err;
			pthread_mutex_unlock(&w->mu);
			continue;
		}
		sw->state = W_APPLYING;
		pthread_mutex_unlock(&w->mu);
		sw->err = apply_one(w->st, txn, sw, isolate);
		pthread_mutex_lock(&w->mu);
		if (sw->err && !isolate) {
			/* Start over, every write on its own. */
			for (struct store_write *o = batch; o; o = o->next)
				if (o->state == W_APPLYING || o->state == W_APPLIED)
					o->state = W_TAKEN;
			pthread_cond_broadcast(&w->done);
			pthread_mutex_unlock(&w->mu);
			mdb_txn_abort(txn);
			return 1;
		}
		sw->state = W_APPLIED;
		if (sw->durable)
			pthread_cond_broadcast(&w->done);
		pthread_mutex_unlock(&w->mu);
	}
	if (err) {
		/* MDB_PANIC: the environment is in LMDB's fatal state for the
		 * rest of the process (its meta page could not be written, or
		 * a thread ended holding the write lock: a write transaction
		 * left open); say so, a restart is the way out */
		log_error("store", "cannot start a write transaction: %s%s", strerror(-err),
			  rc == MDB_PANIC ? " (LMDB's fatal state: every write fails until weftd "
					    "restarts)"
					  : "");
		txn = NULL;
	}
	*txnp = txn;
	return 0;
}

/* Commit one batch and tell its waiters. */
static void run_batch(struct store_writer *w, struct store_write *batch)
{
	struct store_write *sw;
	MDB_txn *txn = NULL;
	uint64_t t0 = 0, t1 = 0;
	unsigned int ok = 0, failed = 0;
	int err = 0;

	if (apply_batch(w, batch, 0, &txn))
		apply_batch(w, batch, 1, &txn);
	if (txn) {
		t0 = util_now_ns();
		err = store_mdb_err(mdb_txn_commit(txn));
		t1 = util_now_ns();
		if (err)
			log_error("store", "cannot commit a batch of writes: %s", strerror(-err));
	}
	pthread_mutex_lock(&w->mu);
	if (txn) {
		hist_add(&w->s, t1 - t0);
		w->s.batches_total += !err;
	}
	while ((sw = batch)) {
		batch = sw->next;
		if (err && !sw->err)
			sw->err = err;
		if (sw->err)
			failed += !sw->cancelled;
		else
			ok++;
		sw->fn = NULL;
		sw->arg = NULL;
		sw->state = W_DONE;
		put_locked(sw);
	}
	w->s.committed_total += ok;
	w->s.failed_total += failed;
	pthread_cond_broadcast(&w->done);
	pthread_mutex_unlock(&w->mu);
}

static void *writer_main(void *arg)
{
	struct store_writer *w = arg;
	struct store_write *batch, *last;
	unsigned int n;

	pthread_mutex_lock(&w->mu);
	for (;;) {
		if (!w->head)
			util_heap_release_due(util_now_ms());
		while (!w->head && !w->stop)
			cond_wait_until(&w->ready, &w->mu, deadline_ns(WRITER_IDLE_MS));
		if (!w->head)
			break; /* stopping and drained */
		batch = last = w->head;
		n = 0;
		for (;;) {
			last->state = W_TAKEN;
			w->nq[last->durable]--;
			w->qbytes -= last->bytes;
			if (++n == STORE_WRITE_BATCH_MAX || !last->next)
				break;
			last = last->next;
		}
		w->head = last->next;
		if (!w->head)
			w->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&w->mu);
		run_batch(w, batch);
		pthread_mutex_lock(&w->mu);
	}
	w->running = 0;
	pthread_cond_broadcast(&w->gone);
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

int store_writer_start(struct store *st, const struct store_opts *opts)
{
	struct store_writer *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->st = st;
	w->qmax = opts->write_queue_max ? opts->write_queue_max : STORE_WRITE_QUEUE_MAX;
	w->timeout_ms = opts->write_timeout_ms ? opts->write_timeout_ms : STORE_WRITE_TIMEOUT_MS;
	pthread_mutex_init(&w->mu, NULL);
	if ((err = util_cond_init_mono(&w->ready)) || (err = util_cond_init_mono(&w->done)) ||
	    (err = util_cond_init_mono(&w->gone)))
		goto fail;
	w->running = 1;
	err = -log_thread_create(&w->thread, NULL, writer_main, w, "weft-store");
	if (err)
		goto fail;
	st->writer = w;
	return 0;
fail:
	free(w);
	return err;
}

int store_writer_stop(struct store *st)
{
	struct store_writer *w = st->writer;
	uint64_t dl = deadline_ns(STORE_WRITER_STOP_MS);

	if (!w)
		return 0;
	pthread_mutex_lock(&w->mu);
	w->stop = 1;
	pthread_cond_signal(&w->ready);
	while (w->running)
		if (cond_wait_until(&w->gone, &w->mu, dl) == ETIMEDOUT && w->running)
			break;
	if (w->running) {
		pthread_mutex_unlock(&w->mu);
		pthread_detach(w->thread);
		return -ETIMEDOUT;
	}
	pthread_mutex_unlock(&w->mu);
	pthread_join(w->thread, NULL);
	pthread_mutex_destroy(&w->mu);
	pthread_cond_destroy(&w->ready);
	pthread_cond_destroy(&w->done);
	pthread_cond_destroy(&w->gone);
	free(w);
	st->writer = NULL;
	return 0;
}

void store_writer_stats(struct store *st, struct store_writer_stats *out)
{
	struct store_writer *w = st ? st->writer : NULL;

	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	pthread_mutex_lock(&w->mu);
	*out = w->s;
	out->queued = w->nq[0] + w->nq[1];
	out->queued_bytes = w->qbytes;
	pthread_mutex_unlock(&w->mu);
}

void store_metrics(void *arg, FILE *out)
{
	static const char *const le[8] = { "0.001", "0.004", "0.016", "0.064",
					   "0.256", "1",     "4",     "+Inf" };
	struct store_writer_stats s;
	uint64_t cum = 0;

	store_writer_stats(arg, &s);
	fprintf(out,
		"# HELP weft_store_queued Writes waiting for the store writer.\n"
		"# TYPE weft_store_queued gauge\nweft_store_queued %llu\n"
		"# HELP weft_store_queued_bytes Bytes of keys and values waiting for the store writer.\n"
		"# TYPE weft_store_queued_bytes gauge\nweft_store_queued_bytes %llu\n"
		"# HELP weft_store_writes_total Writes accepted by the store writer.\n"
		"# TYPE weft_store_writes_total counter\nweft_store_writes_total %llu\n"
		"# HELP weft_store_writes_committed_total Writes committed to LMDB.\n"
		"# TYPE weft_store_writes_committed_total counter\n"
		"weft_store_writes_committed_total %llu\n"
		"# HELP weft_store_writes_failed_total Writes LMDB refused.\n"
		"# TYPE weft_store_writes_failed_total counter\nweft_store_writes_failed_total %llu\n"
		"# HELP weft_store_writes_dropped_total Fire-and-forget writes dropped by a full "
		"queue.\n"
		"# TYPE weft_store_writes_dropped_total counter\nweft_store_writes_dropped_total %llu\n"
		"# HELP weft_store_writes_refused_total Durable writes refused by a full queue.\n"
		"# TYPE weft_store_writes_refused_total counter\nweft_store_writes_refused_total %llu\n"
		"# HELP weft_store_wait_timeouts_total Durable writes not committed within their deadline.\n"
		"# TYPE weft_store_wait_timeouts_total counter\nweft_store_wait_timeouts_total %llu\n"
		"# HELP weft_store_commit_seconds Time of one batch commit (fsync included).\n"
		"# TYPE weft_store_commit_seconds histogram\n",
		(unsigned long long)s.queued, (unsigned long long)s.queued_bytes,
		(unsigned long long)s.queued_total, (unsigned long long)s.committed_total,
		(unsigned long long)s.failed_total, (unsigned long long)s.dropped_total,
		(unsigned long long)s.refused_total, (unsigned long long)s.timeouts_total);
	for (unsigned int i = 0; i < 8; i++) {
		cum += s.commit_hist[i];
		fprintf(out, "weft_store_commit_seconds_bucket{le=\"%s\"} %llu\n", le[i],
			(unsigned long long)cum);
	}
	fprintf(out,
		"weft_store_commit_seconds_sum %.6f\nweft_store_commit_seconds_count %llu\n"
		"# HELP weft_store_commit_seconds_max Slowest batch commit.\n"
		"# TYPE weft_store_commit_seconds_max gauge\nweft_store_commit_seconds_max %.6f\n",
		(double)s.commit_ns_sum / 1e9, (unsigned long long)cum,
		(double)s.commit_ns_max / 1e9);
}
