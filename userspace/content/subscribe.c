// SPDX-License-Identifier: MIT
/*
 * Share heads (BEP 46) we publish and follow (docs/CONTENT.md, "Share
 * heads and subscriptions"):
 *  - publishing: content add --name signs the head {"ih": share id, "mh":
 *    manifest digest} with the node key, seq = the manifest's seq, salt =
 *    the share name, records it and puts it with cas;
 *  - following: one thread polls each subscribed head with a BEP 44 get
 *    carrying the last seq (nothing comes back unless newer), every
 *    content.poll_s seconds and on demand (content sync); a new head is
 *    checked (its ih must be the share id of its key and name), recorded,
 *    and the new version fetched by a download job that accepts only a
 *    manifest of that key with at least that seq (items already held are
 *    not fetched again);
 *  - keeping alive: after each poll the latest signed head is put again
 *    as is (dht_put_signed, DHT_PUT_REFRESH: only at close nodes that lack
 *    it), and our own heads every CONTENT_HEAD_REPUT_S.
 * Records: database content_heads, key = pk || name (heads.h). Everything
 * a control call acknowledges is committed first. Uses jobs.c (downloads)
 * and shares.c; called by the hub only.
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/log.h"
#include "content/content_node_int.h"
#include "content/heads.h"
#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/identity.h"
#include "weft/store.h"
#include "weft/util.h"

#define CN_HEADS_DB "content_heads"
/* Our own heads are put again every 30 min: BEP 44 items live about 2 h
 * on the nodes that store them (weft's storage: 2 h). */
#define CONTENT_HEAD_REPUT_S 1800
/* A DHT operation of the thread or a control call gives up after 40 s
 * (a lookup's own cap is 30 s). */
#define HEAD_OP_WAIT_MS 40000
/* A version's download may run this long before the thread moves on (it
 * keeps running; the next poll looks again). */
#define HEAD_FETCH_WAIT_MS (30 * 60 * 1000)
/* A version known and not held (its download failed: the providers found
 * had only the previous one, say), or a head not found yet, is tried
 * again after 1 s, doubling up to the poll interval, not only at the next
 * poll (300 s by default: a subscriber told by a push, whose first try
 * found only other subscribers still on the old version, waited that
 * long, and so did one whose first lookup found no head). */
#define HEAD_RETRY_MS 1000

struct cn_sched {
	uint8_t key[32 + MANIFEST_MAX_NAME];
	size_t klen;
	uint64_t due_ms;
	uint64_t last_poll;  /* wall-clock s, 0 never */
	unsigned int behind; /* polls in a row that left a newer version not held */
	char err[200];	     /* last problem, "" none */
};

struct cn_subs {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	pthread_t thr;
	int started, stop;
	struct cn_sched s[CONTENT_MAX_HEADS];
	unsigned int n;
	atomic_ullong polls, updates, refused, reputs, reput_held, fetched;
};

/* ------------------------------------------------------------ DHT calls */

enum { OP_GET, OP_PUT };
struct head_op {
	pthread_mutex_t mu;
	pthread_cond_t cond;
	int refs, done, kind;
	unsigned int flags;
	struct cn_head_ref ref;
	int64_t seq; /* get: since; put: the item's */
	uint8_t sig[64];
	uint8_t v[DHT_MAX_VALUE];
	size_t vlen;
	/* result */
	int status;
	int64_t rseq;
	unsigned int stored, held;
};

static void op_put_ref(struct head_op *op)
{
	int last;

	pthread_mutex_lock(&op->mu);
	last = --op->refs == 0;
	pthread_mutex_unlock(&op->mu);
	if (last) {
		pthread_mutex_destroy(&op->mu);
		pthread_cond_destroy(&op->cond);
		free(op);
	}
}

static void op_done(void *arg, const struct dht_result *r)
{
	struct head_op *op = arg;

	pthread_mutex_lock(&op->mu);
	op->status = r->status;
	op->stored = r->stored;
	op->held = r->held;
	if (op->kind == OP_GET && r->status == 0 && r->value && r->sig &&
	    r->value_len <= sizeof(op->v)) {
		op->rseq = r->seq;
		memcpy(op->sig, r->sig, 64);
		memcpy(op->v, r->value, r->value_len);
		op->vlen = r->value_len;
	}
	op->done = 1;
	pthread_cond_signal(&op->cond);
	pthread_mutex_unlock(&op->mu);
	op_put_ref(op);
}

static void op_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct head_op *op = arg;
	int rc;

	if (op->kind == OP_GET) {
		rc = dht_get_since(dht, op->ref.pk, (const uint8_t *)op->ref.name, op->ref.name_len,
				   op->seq, now, op_done, op);
	} else {
		struct dht_item_in it = {.pk = op->ref.pk,
					 .sig = op->sig,
					 .salt = (const uint8_t *)op->ref.name,
					 .salt_len = op->ref.name_len,
					 .seq = op->seq,
					 .v = op->v,
					 .vlen = op->vlen};

		rc = dht_put_signed(dht, &it, op->flags, now, op_done, op);
	}
	if (rc) { /* no callback will come */
		pthread_mutex_lock(&op->mu);
		op->status = rc;
		op->done = 1;
		pthread_cond_signal(&op->cond);
		pthread_mutex_unlock(&op->mu);
		op_put_ref(op);
	}
}

static struct head_op *op_new(int kind, const struct cn_head_ref *ref)
{
	struct head_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	pthread_mutex_init(&op->mu, NULL);
	util_cond_init_mono(&op->cond);
	op->refs = 2; /* the caller and the callback */
	op->kind = kind;
	op->ref = *ref;
	op->rseq = -1;
	return op;
}

/* Start op on the DHT's owner; wait for it (wait) or not. Consumes the
 * caller's reference unless it returns 0 with wait set (then the caller
 * reads the result and calls op_put_ref). */
static int op_run(struct content_node *cn, struct head_op *op, int wait)
{
	struct timespec ts;
	int rc;

	if (!cn->dht) {
		op_put_ref(op);
		op_put_ref(op);
		return -ENOTCONN;
	}
	rc = dhtnode_run(cn->dht, op_fn, op);
	if (rc) {
		op_put_ref(op); /* op_fn never runs */
		op_put_ref(op);
		return rc;
	}
	if (!wait) {
		op_put_ref(op);
		return 0;
	}
	/* in slices, so a node shutting down (its engine may already be
	 * stopped: no callback would come) is not held up */
	{
		uint64_t end = util_now_ms() + HEAD_OP_WAIT_MS;

		pthread_mutex_lock(&op->mu);
		while (!op->done && util_now_ms() < end && !atomic_load(&cn->stopping)) {
			util_deadline_ts(&ts, 200);
			pthread_cond_timedwait(&op->cond, &op->mu, &ts);
		}
		rc = op->done ? 0 : -ETIMEDOUT;
		pthread_mutex_unlock(&op->mu);
	}
	if (rc)
		op_put_ref(op);
	return rc;
}

/* ------------------------------------------------------------ records */

static size_t rec_key(const struct cn_head_ref *ref, uint8_t *key)
{
	memcpy(key, ref->pk, 32);
	memcpy(key + 32, ref->name, ref->name_len);
	return 32 + ref->name_len;
}

static int key_ref(const void *key, size_t klen, struct cn_head_ref *ref)
{
	struct manifest m;

	if (klen <= 32 || klen > 32 + MANIFEST_MAX_NAME)
		return -EBADMSG;
	memset(ref, 0, sizeof(*ref));
	memcpy(ref->pk, key, 32);
	ref->name_len = klen - 32;
	memcpy(ref->name, (const uint8_t *)key + 32, ref->name_len);
	manifest_init(&m);
	return manifest_set_name(&m, ref->name, ref->name_len) ? -EBADMSG : 0;
}

static int rec_get(struct content_node *cn, const struct cn_head_ref *ref, struct cn_head_rec *rec)
{
	uint8_t key[32 + MANIFEST_MAX_NAME];
	void *v = NULL;
	size_t vl = 0;
	int rc;

	rc = store_get(cn->store, cn->heads_dbi, key, rec_key(ref, key), &v, &vl);
	if (rc)
		return rc;
	rc = cn_head_rec_decode(ref, v, vl, rec);
	free(v);
	return rc;
}

/* One change to a record, applied on the store's writer in one
 * transaction (read, change, write), so the thread and control calls
 * never undo each other's changes. */
struct rec_upd {
	struct content_node *cn;
	const struct cn_head_ref *ref;
	uint32_t set_flags, clr_flags;
	int create; /* make the record if absent (else -ENOENT) */
	/* a newer signed item (seq > the record's), or item_seq -1 */
	int64_t item_seq;
	const uint8_t *sig, *v;
	size_t vlen;
	int64_t got; /* the version fetched, or -1 */
	/* outputs (set on every run) */
	int deleted;
	struct cn_head_rec out;
};

static int rec_upd_fn(struct store_txn *txn, void *arg)
{
	struct rec_upd *u = arg;
	uint8_t key[32 + MANIFEST_MAX_NAME], buf[CN_HEAD_REC_HDR + DHT_MAX_VALUE];
	struct cn_head_rec *r = &u->out;
	const void *v;
	size_t vl, kl = rec_key(u->ref, key);
	int rc;

	u->deleted = 0;
	rc = store_txn_get(txn, u->cn->heads_dbi, key, kl, &v, &vl);
	if (rc == 0 && cn_head_rec_decode(u->ref, v, vl, r) == 0) {
		/* held */
	} else if (rc == 0 || rc == -ENOENT) {
		if (rc == 0)
			log_warn(CN_MOD, "a damaged head record (%s): started over", u->ref->name);
		if (!u->create)
			return -ENOENT;
		memset(r, 0, sizeof(*r));
		r->seq = r->got = -1;
		r->added = (uint64_t)time(NULL);
	} else {
		return rc;
	}
	r->flags = (r->flags | u->set_flags) & ~u->clr_flags;
	if (u->item_seq >= 0 && u->item_seq > r->seq) {
		r->seq = u->item_seq;
		memcpy(r->sig, u->sig, 64);
		memcpy(r->v, u->v, u->vlen);
		r->vlen = (uint16_t)u->vlen;
	}
	if (u->got > r->got && u->got <= r->seq)
		r->got = u->got;
	if (!r->flags) {
		u->deleted = 1;
		return store_txn_del(txn, u->cn->heads_dbi, key, kl);
	}
	return store_txn_put(txn, u->cn->heads_dbi, key, kl, buf, cn_head_rec_encode(r, buf));
}

static int rec_update(struct rec_upd *u)
{
	if (!u->got)
		u->got = -1; /* 0 (left unset) is no version: seqs start at 1 */
	return store_write_call(u->cn->store, rec_upd_fn, u, 0);
}

/* ------------------------------------------------------------ schedule */

/* The schedule entry of ref (made when absent; NULL when the table is
 * full). Called with subs->mu held. */
static struct cn_sched *sched_of(struct cn_subs *sb, const struct cn_head_ref *ref, int make)
{
	uint8_t key[32 + MANIFEST_MAX_NAME];
	size_t kl = rec_key(ref, key);

	for (unsigned int i = 0; i < sb->n; i++)
		if (sb->s[i].klen == kl && !memcmp(sb->s[i].key, key, kl))
			return &sb->s[i];
	if (!make || sb->n == CONTENT_MAX_HEADS)
		return NULL;
	memset(&sb->s[sb->n], 0, sizeof(sb->s[0]));
	memcpy(sb->s[sb->n].key, key, kl);
	sb->s[sb->n].klen = kl;
	return &sb->s[sb->n++];
}

/* A head neither followed nor published leaves the schedule (its slot is
 * reused), so subscribing and unsubscribing never fills the table. */
static void sched_drop(struct cn_subs *sb, const struct cn_head_ref *ref)
{
	struct cn_sched *e;

	pthread_mutex_lock(&sb->mu);
	e = sched_of(sb, ref, 0);
	if (e)
		*e = sb->s[--sb->n];
	pthread_mutex_unlock(&sb->mu);
}

/* After a poll: its problem, and with a newer version still not held, the
 * next try in HEAD_RETRY_MS << (tries before), at most the poll interval. */
static void sched_note(struct content_node *cn, const struct cn_head_ref *ref, const char *err,
		       int behind)
{
	struct cn_subs *sb = cn->subs;
	struct cn_sched *e;

	pthread_mutex_lock(&sb->mu);
	e = sched_of(sb, ref, 1);
	if (e) {
		snprintf(e->err, sizeof(e->err), "%s", err ? err : "");
		e->last_poll = (uint64_t)time(NULL);
		if (behind) {
			unsigned int k = e->behind < 10 ? e->behind : 10;
			uint64_t wait = (uint64_t)HEAD_RETRY_MS << k;
			uint64_t at = util_now_ms() + wait;

			if (wait < cn->poll_s * 1000ull && at < e->due_ms)
				e->due_ms = at;
			e->behind++;
		} else {
			e->behind = 0;
		}
	}
	pthread_mutex_unlock(&sb->mu);
}

/* Poll ref now (and every head with ref NULL). */
static int sched_kick(struct content_node *cn, const struct cn_head_ref *ref)
{
	struct cn_subs *sb = cn->subs;
	struct cn_sched *e;
	int n = 0;

	pthread_mutex_lock(&sb->mu);
	if (ref) {
		e = sched_of(sb, ref, 1);
		if (e) {
			e->due_ms = 0;
			n = 1;
		}
	} else {
		for (unsigned int i = 0; i < sb->n; i++)
			sb->s[i].due_ms = 0;
		n = (int)sb->n;
	}
	pthread_cond_signal(&sb->cond);
	pthread_mutex_unlock(&sb->mu);
	return n;
}

/* ------------------------------------------------------------ publishing */

int cn_share_publish(struct content_node *cn, struct manifest *m)
{
	struct manifest old;
	uint8_t *enc = NULL, sid[MANIFEST_SHARE_ID_LEN];
	uint64_t wd_floor = 0;
	size_t len;
	int rc;

	/* A newer version of the same share supersedes the one held. */
	manifest_share_id(cn->id->pk, m->name, strlen(m->name), sid);
	m->seq = 1;
	manifest_init(&old);
	if (cn_share_get(cn, sid, &enc, &len) == 0 && manifest_decode(&old, enc, len) == 0) {
		m->seq = old.seq + 1;
		manifest_link_prev(m, &old); /* the version it replaces */
		wd_floor = old.withdraw;
	}
	manifest_free(&old);
	free(enc);
	/* Asked for: every earlier version. Else the withdrawal floor is
	 * carried on, so that a host that missed the withdrawing version and
	 * takes a later one still drops what was withdrawn (pins.c). */
	m->withdraw = m->withdraw ? m->seq : wd_floor;
	rc = manifest_sign(m, cn->id);
	if (rc)
		return rc;
	rc = cn_share_take(cn, m);
	if (rc)
		return rc;
	for (uint32_t k = 0; k < m->nitems; k++)
		cn_ss_add(cn, m->items[k].id, b3tree_nchunks(m->items[k].size)); /* new: super-seed */
	/* A sealed share's blobs are ciphertext: announced like public ones,
	 * so hosts that cannot read them can find and seed them. */
	if (manifest_announced(m))
		for (uint32_t k = 0; k < m->nitems; k++)
			cn_announce(cn, m->items[k].id, 32);
	rc = cn_head_publish(cn, m); /* its BEP 46 head: followers learn of it */
	if (rc)
		log_warn(CN_MOD, "share %s: head not recorded: %s", m->name, strerror(-rc));
	return 0;
}

int cn_head_publish(struct content_node *cn, const struct manifest *m)
{
	struct cn_head_ref ref = {0};
	uint8_t mh[32], v[DHT_MAX_VALUE], sig[64];
	struct rec_upd u = {0};
	struct head_op *op;
	int n, rc;

	memcpy(ref.pk, m->pk, 32);
	ref.name_len = strlen(m->name);
	memcpy(ref.name, m->name, ref.name_len);
	rc = manifest_digest(m, mh);
	if (rc)
		return rc;
	n = cn_head_value(m->share_id, mh, v, sizeof(v));
	if (n < 0)
		return n;
	rc = dht_bep44_sign(sig, cn->id->sk, (const uint8_t *)ref.name, ref.name_len,
			    (int64_t)m->seq, v, (size_t)n);
	if (rc)
		return rc;
	u.cn = cn;
	u.ref = &ref;
	u.set_flags = CN_HEAD_OWN;
	u.create = 1;
	u.item_seq = (int64_t)m->seq;
	u.sig = sig;
	u.v = v;
	u.vlen = (size_t)n;
	rc = rec_update(&u);
	if (rc)
		return rc;
	op = op_new(OP_PUT, &ref);
	if (!op)
		return 0; /* recorded: the thread puts it */
	op->flags = DHT_PUT_CAS;
	op->seq = (int64_t)m->seq;
	memcpy(op->sig, sig, 64);
	memcpy(op->v, v, (size_t)n);
	op->vlen = (size_t)n;
	if (op_run(cn, op, 0))
		log_info(CN_MOD, "head of %s not put yet: the next round will", m->name);
	if (cn->subs) { /* next refresh a full period from now */
		pthread_mutex_lock(&cn->subs->mu);
		struct cn_sched *e = sched_of(cn->subs, &ref, 1);

		if (e)
			e->due_ms = util_now_ms() + CONTENT_HEAD_REPUT_S * 1000ull;
		pthread_mutex_unlock(&cn->subs->mu);
	}
	log_info(CN_MOD, "share head %s seq %llu published", m->name, (unsigned long long)m->seq);
	/* subscribers watching it hear of it at once (watch.c) */
	cn_watch_publish(cn, ref.name, ref.name_len, (int64_t)m->seq, sig, v, (size_t)n);
	cn_search_sync(cn);
	return 0;
}

void cn_head_retire(struct content_node *cn, const uint8_t pk[32], const char *name)
{
	struct cn_head_ref ref = {0};
	struct rec_upd u = {0};
	int rc;

	if (memcmp(pk, cn->id->pk, 32) || strlen(name) >= sizeof(ref.name))
		return; /* not a head of ours */
	memcpy(ref.pk, pk, 32);
	ref.name_len = strlen(name);
	memcpy(ref.name, name, ref.name_len);
	u.cn = cn;
	u.ref = &ref;
	u.clr_flags = CN_HEAD_OWN;
	u.item_seq = -1;
	u.got = -1;
	rc = rec_update(&u);
	if (rc) {
		if (rc != -ENOENT)
			log_warn(CN_MOD, "head of %s not retired: %s", name, strerror(-rc));
		return;
	}
	if (!(u.out.flags & CN_HEAD_SUB) && cn->subs)
		sched_drop(cn->subs, &ref);
	log_info(CN_MOD, "share head %s no longer kept alive (share removed)", name);
}

/* ------------------------------------------------------------ following */

/* The share id a head value names, checked against its key and name: a
 * head must name the share its key signs under that name. */
static int head_share(const struct cn_head_ref *ref, const uint8_t *v, size_t vlen,
		      uint8_t sid[MANIFEST_SHARE_ID_LEN], uint8_t mh[32], int *has_mh, char *err,
		      size_t errcap)
{
	uint8_t want[MANIFEST_SHARE_ID_LEN];
	char hex[41];

	if (cn_head_value_read(v, vlen, sid, mh, has_mh)) {
		snprintf(err, errcap, "the head's value is not {\"ih\": 20 bytes}: refused");
		return -EBADMSG;
	}
	manifest_share_id(ref->pk, ref->name, ref->name_len, want);
	if (memcmp(want, sid, sizeof(want))) {
		util_hex(hex, sid, MANIFEST_SHARE_ID_LEN);
		snprintf(err, errcap,
			 "the head names share %s, which is not this key's share %.64s: refused",
			 hex, ref->name);
		return -EPERM;
	}
	return 0;
}

/* Start the download of a version and wait for it (bounded). 0 when the
 * share's items are all held. */
static int fetch_version(struct content_node *cn, const struct cn_head_ref *ref,
			 const uint8_t sid[MANIFEST_SHARE_ID_LEN], const uint8_t *mh, int64_t seq,
			 char *err, size_t errcap)
{
	struct cn_get_req *rq = calloc(1, sizeof(*rq));
	uint64_t jid, end = util_now_ms() + HEAD_FETCH_WAIT_MS;
	int rc;

	if (!rq)
		return -ENOMEM;
	memcpy(rq->id, sid, MANIFEST_SHARE_ID_LEN);
	rq->id_len = MANIFEST_SHARE_ID_LEN;
	rq->has_head = 1;
	rq->seed_sealed = 1;
	memcpy(rq->head_pk, ref->pk, 32);
	if (mh) {
		rq->has_mh = 1;
		memcpy(rq->want_mh, mh, 32);
	}
	rc = cn_job_start(cn, rq, &jid);
	free(rq);
	if (rc) {
		snprintf(err, errcap, "download not started: %s", strerror(-rc));
		return rc;
	}
	(void)seq;
	return cn_job_wait(cn, jid, end, err, errcap);
}

int cn_job_wait(struct content_node *cn, uint64_t jid, uint64_t end, char *err, size_t errcap)
{
	int rc = -ETIMEDOUT;

	snprintf(err, errcap, "download job %llu still running", (unsigned long long)jid);
	while (util_now_ms() < end && !atomic_load(&cn->stopping)) {
		json_t *j = cn_job_json(cn, jid);
		int done = j && json_is_true(json_object_get(j, "done"));
		const char *st = j ? json_string_value(json_object_get(j, "state")) : NULL;

		if (!j) {
			snprintf(err, errcap, "download job %llu vanished",
				 (unsigned long long)jid);
			rc = -ENOENT;
			break;
		}
		if (done) {
			rc = st && !strcmp(st, "done") ? 0 : -EIO;
			if (rc)
				snprintf(err, errcap, "%s",
					 json_string_value(json_object_get(j, "error"))
					     ? json_string_value(json_object_get(j, "error"))
					     : "download failed");
			else
				err[0] = 0;
			json_decref(j);
			break;
		}
		json_decref(j);
		pthread_mutex_lock(&cn->subs->mu);
		if (!cn->subs->stop) {
			struct timespec ts;

			util_deadline_ts(&ts, 200);
			pthread_cond_timedwait(&cn->subs->cond, &cn->subs->mu, &ts);
		}
		pthread_mutex_unlock(&cn->subs->mu);
	}
	return rc;
}

/* Put the record's signed head again where it is missing. */
static void keep_alive(struct content_node *cn, const struct cn_head_ref *ref,
		       const struct cn_head_rec *rec)
{
	struct head_op *op;

	if (rec->seq < 0)
		return;
	op = op_new(OP_PUT, ref);
	if (!op)
		return;
	op->flags = DHT_PUT_REFRESH | DHT_PUT_CAS;
	op->seq = rec->seq;
	memcpy(op->sig, rec->sig, 64);
	memcpy(op->v, rec->v, rec->vlen);
	op->vlen = rec->vlen;
	if (op_run(cn, op, 1))
		return;
	atomic_fetch_add(&cn->subs->reputs, 1);
	if (op->status == 0 && !op->stored && op->held)
		atomic_fetch_add(&cn->subs->reput_held, 1);
	log_debug(CN_MOD, "head %s seq %lld kept alive: stored at %u, %u held it already",
		  ref->name, (long long)rec->seq, op->stored, op->held);
	op_put_ref(op);
}

static void poll_one(struct content_node *cn, const struct cn_head_ref *ref,
		     struct cn_head_rec *rec)
{
	uint8_t sid[MANIFEST_SHARE_ID_LEN], mh[32];
	char err[200] = "";
	struct head_op *op;
	int rc, has_mh;

	atomic_fetch_add(&cn->subs->polls, 1);
	op = op_new(OP_GET, ref);
	if (!op)
		return;
	op->seq = rec->seq;
	rc = op_run(cn, op, 1);
	if (rc == 0) {
		if (op->status == 0 && op->rseq > rec->seq) {
			if (head_share(ref, op->v, op->vlen, sid, mh, &has_mh, err, sizeof(err))) {
				atomic_fetch_add(&cn->subs->refused, 1);
				log_warn(CN_MOD, "head %s seq %lld: %s", ref->name,
					 (long long)op->rseq, err);
			} else {
				struct rec_upd u = {.cn = cn,
						    .ref = ref,
						    .item_seq = op->rseq,
						    .sig = op->sig,
						    .v = op->v,
						    .vlen = op->vlen};

				if (rec_update(&u) == 0) {
					*rec = u.out;
					atomic_fetch_add(&cn->subs->updates, 1);
					log_info(CN_MOD, "head %s: new version, seq %lld",
						 ref->name, (long long)rec->seq);
				}
			}
		} else if (op->status != 0 && op->status != -ENOENT) {
			snprintf(err, sizeof(err), "head lookup: %s", strerror(-op->status));
		}
		op_put_ref(op);
	} else {
		snprintf(err, sizeof(err), "head lookup: %s", strerror(-rc));
	}
	if ((rec->flags & CN_HEAD_SUB) && rec->seq > rec->got &&
	    head_share(ref, rec->v, rec->vlen, sid, mh, &has_mh, err, sizeof(err)) == 0) {
		int64_t seq = rec->seq;

		if (fetch_version(cn, ref, sid, has_mh ? mh : NULL, seq, err, sizeof(err)) == 0) {
			struct rec_upd u = {.cn = cn, .ref = ref, .item_seq = -1, .got = seq};

			if (rec_update(&u) == 0)
				*rec = u.out;
			atomic_fetch_add(&cn->subs->fetched, 1);
			log_info(CN_MOD, "share %s version %lld held", ref->name, (long long)seq);
			cn_search_sync(cn);
			if (rec->flags & CN_HEAD_BLOCK)
				cn_block_sync(cn);
		}
	}
	/* behind: a newer version not held, or no head found yet (the first
	 * poll of a subscription, whose lookup found none) */
	sched_note(cn, ref, err,
		   (rec->flags & CN_HEAD_SUB) && (rec->seq > rec->got || rec->seq < 0));
	keep_alive(cn, ref, rec);
}

struct followed {
	struct cn_head_ref *out;
	unsigned int n, max;
};

static int followed_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct followed *f = arg;
	struct cn_head_rec rec;

	if (f->n == f->max)
		return 1;
	if (key_ref(key, klen, &f->out[f->n]) ||
	    cn_head_rec_decode(&f->out[f->n], val, vlen, &rec) || !(rec.flags & CN_HEAD_SUB))
		return 0;
	f->n++;
	return 0;
}

unsigned int cn_subs_followed(struct content_node *cn, struct cn_head_ref *out, unsigned int max)
{
	struct followed f = {out, 0, max};

	store_iter(cn->store, cn->heads_dbi, followed_one, &f);
	return f.n;
}

void cn_subs_poll_now(struct content_node *cn, const struct cn_head_ref *ref)
{
	sched_kick(cn, ref);
}

int cn_subs_pushed(struct content_node *cn, const struct cn_head_ref *ref, int64_t seq,
		   const uint8_t sig[64], const uint8_t *v, size_t vlen)
{
	uint8_t sid[MANIFEST_SHARE_ID_LEN], mh[32];
	struct cn_head_rec rec;
	char err[200];
	int has_mh, rc;

	if (rec_get(cn, ref, &rec) || !(rec.flags & CN_HEAD_SUB) || seq <= rec.seq)
		return -EALREADY;
	if (head_share(ref, v, vlen, sid, mh, &has_mh, err, sizeof(err))) {
		atomic_fetch_add(&cn->subs->refused, 1);
		log_warn(CN_MOD, "head %s seq %lld pushed: %s", ref->name, (long long)seq, err);
		return -EBADMSG;
	}
	struct rec_upd u = {
	    .cn = cn, .ref = ref, .item_seq = seq, .sig = sig, .v = v, .vlen = vlen, .got = -1};

	rc = rec_update(&u);
	if (rc)
		return rc;
	atomic_fetch_add(&cn->subs->updates, 1);
	log_info(CN_MOD, "head %s: new version, seq %lld, pushed by its publisher", ref->name,
		 (long long)seq);
	sched_kick(cn, ref); /* fetched by the next pass, at once */
	return 0;
}

struct snap {
	struct cn_head_ref ref[CONTENT_MAX_HEADS];
	struct cn_head_rec *rec;
	unsigned int n;
};

static int snap_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct snap *s = arg;

	if (s->n == CONTENT_MAX_HEADS)
		return 1;
	if (key_ref(key, klen, &s->ref[s->n]) ||
	    cn_head_rec_decode(&s->ref[s->n], val, vlen, &s->rec[s->n])) {
		log_warn(CN_MOD, "a damaged head record skipped");
		return 0;
	}
	s->n++;
	return 0;
}

static void *subs_run(void *arg)
{
	struct content_node *cn = arg;
	struct cn_subs *sb = cn->subs;
	/* malloc, not calloc: an entry is written whole (key_ref,
	 * cn_head_rec_decode) before it is read, and pages never written stay
	 * out of the RSS (docs/BENCH.md "bench_mem") */
	struct snap *s = malloc(sizeof(*s));

	if (s)
		s->rec = malloc(CONTENT_MAX_HEADS * sizeof(*s->rec));
	if (!s || !s->rec) {
		log_error(CN_MOD, "subscriptions: out of memory, not following heads");
		if (s)
			free(s->rec);
		free(s);
		return NULL;
	}
	for (;;) {
		uint64_t now, next;

		s->n = 0;
		store_iter(cn->store, cn->heads_dbi, snap_one, s);
		now = util_now_ms();
		next = now + 1000;
		for (unsigned int i = 0; i < s->n; i++) {
			struct cn_sched *e;
			int due;

			pthread_mutex_lock(&sb->mu);
			if (sb->stop) {
				pthread_mutex_unlock(&sb->mu);
				goto out;
			}
			e = sched_of(sb, &s->ref[i], 1);
			due = e && e->due_ms <= now;
			if (due)
				e->due_ms = now + (s->rec[i].flags & CN_HEAD_SUB
						       ? cn->poll_s * 1000ull
						       : CONTENT_HEAD_REPUT_S * 1000ull);
			pthread_mutex_unlock(&sb->mu);
			if (!due)
				continue;
			if (s->rec[i].flags & CN_HEAD_SUB)
				poll_one(cn, &s->ref[i], &s->rec[i]);
			else
				keep_alive(cn, &s->ref[i], &s->rec[i]);
		}
		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&sb->mu);
		for (unsigned int i = 0; i < sb->n; i++)
			if (sb->s[i].due_ms < next)
				next = sb->s[i].due_ms;
		if (!sb->stop && next > util_now_ms()) {
			struct timespec ts;
			uint64_t w = next - util_now_ms();

			if (w > 1000)
				w = 1000;
			util_deadline_ts(&ts, w);
			pthread_cond_timedwait(&sb->cond, &sb->mu, &ts);
		}
		if (sb->stop) {
			pthread_mutex_unlock(&sb->mu);
			break;
		}
		pthread_mutex_unlock(&sb->mu);
	}
out:
	free(s->rec);
	free(s);
	return NULL;
}

/* ------------------------------------------------------------ control API */

static int parse_ref(json_t *body, const char *key, struct cn_head_ref *ref, struct ctl_resp *resp)
{
	const char *why;
	int rc = cn_head_parse(json_string_value(json_object_get(body, key)), ref, &why);

	if (rc)
		ctl_resp_error(resp, 400, "bad_request", "%s", why);
	return rc;
}

static json_t *ref_json(const struct cn_head_ref *ref)
{
	char text[200], link[300], pk[65], sid[41];
	uint8_t id[MANIFEST_SHARE_ID_LEN];

	cn_head_text(ref, text, sizeof(text));
	cn_head_link(ref, link, sizeof(link));
	util_hex(pk, ref->pk, 32);
	manifest_share_id(ref->pk, ref->name, ref->name_len, id);
	util_hex(sid, id, sizeof(id));
	return json_pack("{s:s,s:s,s:s,s:s,s:s}", "head", text, "magnet", link, "key", pk, "name",
			 ref->name, "share_id", sid);
}

/* POST /v1/content/subscribe {"head": KEY/NAME|MAGNET} */
static void api_subscribe(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_head_ref ref;
	struct rec_upd u = {0};
	struct cn_head_rec old;
	int rc;

	if (parse_ref(req->json, "head", &ref, resp))
		return;
	if (rec_get(cn, &ref, &old) != 0) {
		pthread_mutex_lock(&cn->subs->mu);
		rc = cn->subs->n >= CONTENT_MAX_HEADS && !sched_of(cn->subs, &ref, 0);
		pthread_mutex_unlock(&cn->subs->mu);
		if (rc) {
			ctl_resp_error(resp, 507, "too_many", "at most %d heads followed",
				       CONTENT_MAX_HEADS);
			return;
		}
	}
	u.cn = cn;
	u.ref = &ref;
	u.set_flags = CN_HEAD_SUB;
	if (json_is_true(json_object_get(req->json, "blocklist")))
		u.set_flags |= CN_HEAD_BLOCK;
	u.create = 1;
	u.item_seq = -1;
	rc = rec_update(&u);
	if (rc) {
		ctl_resp_store_error(resp, rc, "subscription");
		return;
	}
	sched_kick(cn, &ref);
	cn_watch_kick(cn); /* watch its publisher */
	{
		json_t *o = ref_json(&ref);

		json_object_set_new(o, "blocklist", json_boolean(u.out.flags & CN_HEAD_BLOCK));
		ctl_resp_json(resp, 200, o);
	}
}

/* POST /v1/content/unsubscribe {"head": ...} */
static void api_unsubscribe(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_head_ref ref;
	struct cn_head_rec old;
	struct rec_upd u = {0};
	int rc;

	if (parse_ref(req->json, "head", &ref, resp))
		return;
	if (rec_get(cn, &ref, &old) || !(old.flags & CN_HEAD_SUB)) {
		ctl_resp_error(resp, 404, "not_found", "not subscribed to %s", ref.name);
		return;
	}
	u.cn = cn;
	u.ref = &ref;
	u.clr_flags = CN_HEAD_SUB | CN_HEAD_BLOCK;
	u.item_seq = -1;
	rc = rec_update(&u);
	if (rc) {
		ctl_resp_store_error(resp, rc, "unsubscribe");
		return;
	}
	if (!(old.flags & CN_HEAD_OWN))
		sched_drop(cn->subs, &ref);
	cn_watch_kick(cn);
	cn_search_sync(cn);
	if (old.flags & CN_HEAD_BLOCK)
		cn_block_sync(cn);
	ctl_resp_json(resp, 200, json_pack("{s:b}", "unsubscribed", 1));
}

/* POST /v1/content/sync {"head"?: ...}: poll now */
static void api_sync(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_head_ref ref;
	int n;

	if (json_object_get(req->json, "head")) {
		if (parse_ref(req->json, "head", &ref, resp))
			return;
		n = sched_kick(cn, &ref);
	} else {
		n = sched_kick(cn, NULL);
	}
	ctl_resp_json(resp, 200, json_pack("{s:i}", "polling", n));
}

struct list_ctx {
	struct content_node *cn;
	json_t *a;
};

static int list_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct list_ctx *c = arg;
	struct cn_head_ref ref;
	struct cn_head_rec rec;
	struct cn_sched *e;
	json_t *o;

	if (key_ref(key, klen, &ref) || cn_head_rec_decode(&ref, val, vlen, &rec) ||
	    !(rec.flags & CN_HEAD_SUB))
		return 0;
	o = ref_json(&ref);
	if (!o)
		return 0;
	json_object_set_new(o, "seq", json_integer(rec.seq));
	json_object_set_new(o, "fetched_seq", json_integer(rec.got));
	json_object_set_new(o, "published", json_boolean(rec.flags & CN_HEAD_OWN));
	json_object_set_new(o, "blocklist", json_boolean(rec.flags & CN_HEAD_BLOCK));
	pthread_mutex_lock(&c->cn->subs->mu);
	e = sched_of(c->cn->subs, &ref, 0);
	json_object_set_new(o, "last_poll", json_integer(e ? (json_int_t)e->last_poll : 0));
	json_object_set_new(o, "error", json_string(e ? e->err : ""));
	pthread_mutex_unlock(&c->cn->subs->mu);
	json_array_append_new(c->a, o);
	return 0;
}

/* GET /v1/content/subscriptions */
static void api_subscriptions(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct list_ctx c = {cn, json_array()};
	struct cn_subs *sb = cn->subs;

	(void)req;
	store_iter(cn->store, cn->heads_dbi, list_one, &c);
	ctl_resp_json(resp, 200,
		      json_pack("{s:o,s:i,s:I,s:I,s:I,s:I,s:I,s:I}", "subscriptions", c.a, "poll_s",
				(int)cn->poll_s, "polls", (json_int_t)atomic_load(&sb->polls),
				"updates", (json_int_t)atomic_load(&sb->updates), "refused",
				(json_int_t)atomic_load(&sb->refused), "fetched",
				(json_int_t)atomic_load(&sb->fetched), "reputs",
				(json_int_t)atomic_load(&sb->reputs), "reputs_held",
				(json_int_t)atomic_load(&sb->reput_held)));
}

/* POST /v1/content/link {"ref": SHAREID|KEY/NAME|MAGNET} */
static void api_link(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	const char *s = json_string_value(json_object_get(req->json, "ref"));
	uint8_t sid[MANIFEST_SHARE_ID_LEN], *enc = NULL;
	struct cn_head_ref ref = {0};
	struct manifest m;
	size_t len;

	if (s && strlen(s) == 40 && util_unhex(sid, sizeof(sid), s) == 0) {
		if (cn_share_get(cn, sid, &enc, &len)) {
			ctl_resp_error(resp, 404, "not_found", "share %s not held here", s);
			return;
		}
		manifest_init(&m);
		if (manifest_decode(&m, enc, len)) {
			free(enc);
			ctl_resp_error(resp, 500, "internal", "stored manifest does not decode");
			return;
		}
		free(enc);
		memcpy(ref.pk, m.pk, 32);
		ref.name_len = strlen(m.name);
		memcpy(ref.name, m.name, ref.name_len);
		manifest_free(&m);
	} else if (parse_ref(req->json, "ref", &ref, resp)) {
		return;
	}
	ctl_resp_json(resp, 200, ref_json(&ref));
}

int cn_head_resolve_get(struct content_node *cn, const char *s, struct cn_get_req *rq,
			struct ctl_resp *resp)
{
	uint8_t sid[MANIFEST_SHARE_ID_LEN], mh[32];
	struct cn_head_ref ref;
	struct head_op *op;
	const char *why;
	char err[200];
	int rc, has_mh;

	rc = cn_head_parse(s, &ref, &why);
	if (rc) {
		ctl_resp_error(resp, 400, "bad_request", "%s", why);
		return rc;
	}
	op = op_new(OP_GET, &ref);
	if (!op) {
		ctl_resp_errno(resp, -ENOMEM, "head");
		return -ENOMEM;
	}
	op->seq = -1;
	rc = op_run(cn, op, 1);
	if (rc) {
		ctl_resp_error(resp, 503, "unavailable", "head lookup: %s", strerror(-rc));
		return rc;
	}
	rc = op->status;
	if (rc) {
		ctl_resp_error(resp, rc == -ENOENT ? 404 : 502,
			       rc == -ENOENT ? "not_found" : "unreachable",
			       "no head of %s found in the DHT (%s)", ref.name, strerror(-rc));
		op_put_ref(op);
		return rc;
	}
	rc = head_share(&ref, op->v, op->vlen, sid, mh, &has_mh, err, sizeof(err));
	if (rc) {
		ctl_resp_error(resp, 422, "bad_head", "%s", err);
		op_put_ref(op);
		return rc;
	}
	memcpy(rq->id, sid, sizeof(sid));
	rq->id_len = MANIFEST_SHARE_ID_LEN;
	rq->has_head = 1;
	memcpy(rq->head_pk, ref.pk, 32);
	rq->has_mh = has_mh;
	memcpy(rq->want_mh, mh, 32);
	op_put_ref(op);
	return 0;
}

/* ------------------------------------------------------------ lifecycle */

int cn_subs_init(struct content_node *cn, struct ctl *ctl)
{
	int rc = store_db(cn->store, CN_HEADS_DB, &cn->heads_dbi);

	if (rc)
		return rc;
	cn->subs = calloc(1, sizeof(*cn->subs));
	if (!cn->subs)
		return -ENOMEM;
	pthread_mutex_init(&cn->subs->mu, NULL);
	util_cond_init_mono(&cn->subs->cond);
	if (ctl) {
		ctl_route(ctl, "POST", "/v1/content/subscribe", api_subscribe, cn);
		ctl_route(ctl, "POST", "/v1/content/unsubscribe", api_unsubscribe, cn);
		ctl_route(ctl, "GET", "/v1/content/subscriptions", api_subscriptions, cn);
		ctl_route(ctl, "POST", "/v1/content/sync", api_sync, cn);
		ctl_route(ctl, "POST", "/v1/content/link", api_link, cn);
	}
	return 0;
}

int cn_subs_start(struct content_node *cn)
{
	int rc;

	if (!cn->subs || !cn->dht)
		return 0;
	rc = log_thread_create(&cn->subs->thr, NULL, subs_run, cn, "weft-subscribe");
	if (rc)
		return rc;
	cn->subs->started = 1;
	return 0;
}

void cn_subs_stop(struct content_node *cn)
{
	struct cn_subs *sb = cn->subs;

	if (!sb)
		return;
	pthread_mutex_lock(&sb->mu);
	sb->stop = 1;
	pthread_cond_broadcast(&sb->cond);
	pthread_mutex_unlock(&sb->mu);
	if (sb->started)
		pthread_join(sb->thr, NULL);
	pthread_mutex_destroy(&sb->mu);
	pthread_cond_destroy(&sb->cond);
	free(sb);
	cn->subs = NULL;
}
