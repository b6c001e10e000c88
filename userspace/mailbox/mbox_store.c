// SPDX-License-Identifier: MIT
/*
 * The anchor's messages and the node's inbox in LMDB (docs/MAILBOX.md,
 * "Storage"). Database "mbox_msgs": recipient (32) | id (16) ->
 * sender (32) | ts (8 BE) | expires (8 BE) | sealed. Database
 * "mbox_inbox": id (16) -> sender (32) | ts (8 BE) | sealed. Quota
 * counters live in memory (per recipient, a hash table; totals), rebuilt
 * by one scan at open. Every write is durable through the store writer
 * (committed before it returns), so what an anchor acknowledged survives
 * kill -9.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mailbox.h"
#include "weft/store.h"

#define MSG_KEY (MBOX_KEY_LEN + MBOX_ID_LEN)
#define MSG_HDR (MBOX_KEY_LEN + 16u)
#define INBOX_HDR (MBOX_KEY_LEN + 8u)
#define BUCKETS 16384u
#define EXPIRE_BATCH 512u

struct rcpt {
	struct rcpt *next;
	uint8_t key[MBOX_KEY_LEN];
	uint32_t msgs;
	uint64_t bytes;
};

struct mbox_store {
	struct store *st;
	unsigned int db_msgs, db_inbox;
	struct mbox_limits lim;
	pthread_mutex_t mu; /* the counters below */
	struct rcpt *tab[BUCKETS];
	uint64_t msgs, bytes, recipients, inbox;
	uint64_t put_total, dup_total, full_total, acked_total, expired_total;
};

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static unsigned int bucket(const uint8_t key[MBOX_KEY_LEN])
{
	/* node keys are uniformly random: their first bytes hash well */
	return ((unsigned int)key[0] << 8 | key[1]) % BUCKETS;
}

static struct rcpt *rcpt_get(struct mbox_store *ms, const uint8_t key[MBOX_KEY_LEN], int create)
{
	struct rcpt **pp = &ms->tab[bucket(key)], *r;

	for (r = *pp; r; r = r->next)
		if (!memcmp(r->key, key, MBOX_KEY_LEN))
			return r;
	if (!create)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	memcpy(r->key, key, MBOX_KEY_LEN);
	r->next = *pp;
	*pp = r;
	ms->recipients++;
	return r;
}

/* Take back n messages of bytes from key's counters (under mu). */
static void rcpt_sub(struct mbox_store *ms, const uint8_t key[MBOX_KEY_LEN], uint32_t n,
		     uint64_t bytes)
{
	struct rcpt **pp = &ms->tab[bucket(key)], *r;

	ms->msgs -= n < ms->msgs ? n : ms->msgs;
	ms->bytes -= bytes < ms->bytes ? bytes : ms->bytes;
	for (; (r = *pp); pp = &r->next) {
		if (memcmp(r->key, key, MBOX_KEY_LEN))
			continue;
		r->msgs -= n < r->msgs ? n : r->msgs;
		r->bytes -= bytes < r->bytes ? bytes : r->bytes;
		if (!r->msgs) {
			*pp = r->next;
			free(r);
			ms->recipients--;
		}
		return;
	}
}

static int count_msg(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	struct mbox_store *ms = arg;
	struct rcpt *r;

	if (klen != MSG_KEY || vlen < MSG_HDR)
		return 0;
	r = rcpt_get(ms, k, 1);
	if (!r)
		return -ENOMEM;
	r->msgs++;
	r->bytes += vlen - MSG_HDR;
	ms->msgs++;
	ms->bytes += vlen - MSG_HDR;
	return 0;
}

static int count_inbox(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	((struct mbox_store *)arg)->inbox++;
	return 0;
}

int mbox_store_new(struct mbox_store **out, struct store *st, const struct mbox_limits *lim)
{
	struct mbox_store *ms;
	int err;

	if (!out || !st)
		return -EINVAL;
	ms = calloc(1, sizeof(*ms));
	if (!ms)
		return -ENOMEM;
	ms->st = st;
	pthread_mutex_init(&ms->mu, NULL);
	if (lim)
		ms->lim = *lim;
	if (!ms->lim.per_rcpt_msgs)
		ms->lim.per_rcpt_msgs = MBOX_DEF_PER_RCPT_MSGS;
	if (!ms->lim.per_rcpt_bytes)
		ms->lim.per_rcpt_bytes = MBOX_DEF_PER_RCPT_BYTES;
	if (!ms->lim.total_msgs)
		ms->lim.total_msgs = MBOX_DEF_TOTAL_MSGS;
	if (!ms->lim.total_bytes)
		ms->lim.total_bytes = MBOX_DEF_TOTAL_BYTES;
	if (!ms->lim.max_age_s)
		ms->lim.max_age_s = MBOX_DEF_MAX_AGE_S;
	if (!ms->lim.inbox_max)
		ms->lim.inbox_max = MBOX_DEF_INBOX_MAX;
	err = store_db(st, "mbox_msgs", &ms->db_msgs);
	if (!err)
		err = store_db(st, "mbox_inbox", &ms->db_inbox);
	if (!err)
		err = store_iter(st, ms->db_msgs, count_msg, ms);
	if (!err)
		err = store_iter(st, ms->db_inbox, count_inbox, ms);
	if (err) {
		mbox_store_free(ms);
		return err;
	}
	*out = ms;
	return 0;
}

void mbox_store_free(struct mbox_store *ms)
{
	if (!ms)
		return;
	for (unsigned int i = 0; i < BUCKETS; i++)
		while (ms->tab[i]) {
			struct rcpt *r = ms->tab[i];

			ms->tab[i] = r->next;
			free(r);
		}
	pthread_mutex_destroy(&ms->mu);
	free(ms);
}

/* Put unless the key is there (a message left twice): run on the writer. */
struct put_once {
	unsigned int dbi;
	const uint8_t *key;
	size_t klen;
	const uint8_t *val;
	size_t vlen;
	int existed;
};

static int put_once_fn(struct store_txn *txn, void *arg)
{
	struct put_once *p = arg;
	const void *v;
	size_t vl;

	p->existed = store_txn_get(txn, p->dbi, p->key, p->klen, &v, &vl) == 0;
	if (p->existed)
		return 0;
	return store_txn_put(txn, p->dbi, p->key, p->klen, p->val, p->vlen);
}

int mbox_store_put(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t sender[MBOX_KEY_LEN], const uint8_t *sealed, size_t len,
		   uint32_t ttl_s, uint64_t now_s, uint8_t id[MBOX_ID_LEN])
{
	uint8_t key[MSG_KEY], *val;
	struct put_once p;
	struct rcpt *r;
	int err;

	if (!ms || !recipient || !sender || !sealed || !id)
		return -EINVAL;
	if (len > MBOX_MAX_SEALED)
		return -E2BIG;
	if (!ttl_s || ttl_s > ms->lim.max_age_s)
		ttl_s = ms->lim.max_age_s;
	mbox_msg_id(sealed, len, id);
	memcpy(key, recipient, MBOX_KEY_LEN);
	memcpy(key + MBOX_KEY_LEN, id, MBOX_ID_LEN);
	/* Reserve the quota first, so concurrent puts cannot pass it together. */
	pthread_mutex_lock(&ms->mu);
	r = rcpt_get(ms, recipient, 0);
	if (ms->msgs + 1 > ms->lim.total_msgs || ms->bytes + len > ms->lim.total_bytes ||
	    (r && (r->msgs + 1 > ms->lim.per_rcpt_msgs ||
		   r->bytes + len > ms->lim.per_rcpt_bytes)) ||
	    len > ms->lim.per_rcpt_bytes) {
		ms->full_total++;
		pthread_mutex_unlock(&ms->mu);
		return -EDQUOT;
	}
	if (!r)
		r = rcpt_get(ms, recipient, 1);
	if (!r) {
		pthread_mutex_unlock(&ms->mu);
		return -ENOMEM;
	}
	r->msgs++;
	r->bytes += len;
	ms->msgs++;
	ms->bytes += len;
	pthread_mutex_unlock(&ms->mu);

	val = malloc(MSG_HDR + len);
	if (!val) {
		err = -ENOMEM;
		goto undo;
	}
	memcpy(val, sender, MBOX_KEY_LEN);
	be64(val + 32, now_s);
	be64(val + 40, now_s + ttl_s);
	memcpy(val + MSG_HDR, sealed, len);
	p = (struct put_once){ .dbi = ms->db_msgs, .key = key, .klen = sizeof(key), .val = val,
			       .vlen = MSG_HDR + len };
	err = store_write_call(ms->st, put_once_fn, &p, 0);
	free(val);
	if (err)
		goto undo;
	pthread_mutex_lock(&ms->mu);
	if (p.existed)
		ms->dup_total++;
	else
		ms->put_total++;
	pthread_mutex_unlock(&ms->mu);
	if (!p.existed)
		return 0;
	err = 0; /* held already: give the reservation back */
undo:
	pthread_mutex_lock(&ms->mu);
	rcpt_sub(ms, recipient, 1, len);
	pthread_mutex_unlock(&ms->mu);
	return err;
}

struct list_ctx {
	const uint8_t *recipient;
	unsigned int max, n;
	uint64_t now_s;
	struct mbox_list_w *w;
	int more;
};

static int list_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	struct list_ctx *c = arg;
	const uint8_t *val = v;
	struct mbox_item it;

	if (klen != MSG_KEY || memcmp(k, c->recipient, MBOX_KEY_LEN))
		return 1; /* past the recipient's range */
	if (vlen < MSG_HDR || get64(val + 40) <= c->now_s)
		return 0; /* expired: the sweep takes it */
	if (c->n >= c->max) {
		c->more = 1;
		return 1;
	}
	memcpy(it.id, (const uint8_t *)k + MBOX_KEY_LEN, MBOX_ID_LEN);
	memcpy(it.sender, val, MBOX_KEY_LEN);
	it.ts = get64(val + 32);
	it.sealed = val + MSG_HDR;
	it.len = vlen - MSG_HDR;
	if (mbox_list_add(c->w, &it)) {
		c->more = 1;
		return 1;
	}
	c->n++;
	return 0;
}

int mbox_store_list(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN], unsigned int max,
		    uint64_t now_s, struct mbox_list_w *w, int *more)
{
	struct list_ctx c = { .recipient = recipient, .max = max, .now_s = now_s, .w = w };
	struct store_txn *t;
	int err;

	if (!ms || !recipient || !w || !more)
		return -EINVAL;
	err = store_txn_begin(ms->st, 1, &t);
	if (err)
		return err;
	err = store_txn_iter_from(t, ms->db_msgs, recipient, MBOX_KEY_LEN, list_fn, &c);
	store_txn_abort(t);
	if (err < 0)
		return err;
	*more = c.more;
	return (int)c.n;
}

/* Delete keys (n x klen bytes), summing the sealed bytes of those there. */
struct del_ctx {
	unsigned int dbi;
	const uint8_t *keys;
	size_t klen, hdr;
	unsigned int n;
	/* out, per run */
	unsigned int deleted;
	uint64_t bytes;
	uint8_t *gone; /* n flags */
};

static int del_fn(struct store_txn *txn, void *arg)
{
	struct del_ctx *d = arg;
	const void *v;
	size_t vl;
	int err;

	d->deleted = 0;
	d->bytes = 0;
	for (unsigned int i = 0; i < d->n; i++) {
		const uint8_t *k = d->keys + (size_t)i * d->klen;

		d->gone[i] = 0;
		if (store_txn_get(txn, d->dbi, k, d->klen, &v, &vl))
			continue;
		err = store_txn_del(txn, d->dbi, k, d->klen);
		if (err)
			return err;
		d->gone[i] = 1;
		d->deleted++;
		d->bytes += vl > d->hdr ? vl - d->hdr : 0;
	}
	return 0;
}

static int del_keys(struct mbox_store *ms, unsigned int dbi, const uint8_t *keys, size_t klen,
		    size_t hdr, unsigned int n, struct del_ctx *d)
{
	*d = (struct del_ctx){ .dbi = dbi, .keys = keys, .klen = klen, .hdr = hdr, .n = n };
	d->gone = calloc(n ? n : 1, 1);
	if (!d->gone)
		return -ENOMEM;
	return store_write_call(ms->st, del_fn, d, 0);
}

int mbox_store_ack(struct mbox_store *ms, const uint8_t recipient[MBOX_KEY_LEN],
		   const uint8_t *ids, unsigned int n)
{
	struct del_ctx d;
	uint8_t *keys;
	int err;

	if (!ms || !recipient || (!ids && n) || n > MBOX_ACK_MAX)
		return -EINVAL;
	if (!n)
		return 0;
	keys = malloc((size_t)n * MSG_KEY);
	if (!keys)
		return -ENOMEM;
	for (unsigned int i = 0; i < n; i++) {
		memcpy(keys + (size_t)i * MSG_KEY, recipient, MBOX_KEY_LEN);
		memcpy(keys + (size_t)i * MSG_KEY + MBOX_KEY_LEN, ids + (size_t)i * MBOX_ID_LEN,
		       MBOX_ID_LEN);
	}
	err = del_keys(ms, ms->db_msgs, keys, MSG_KEY, MSG_HDR, n, &d);
	free(keys);
	if (!err) {
		pthread_mutex_lock(&ms->mu);
		rcpt_sub(ms, recipient, d.deleted, d.bytes);
		ms->acked_total += d.deleted;
		pthread_mutex_unlock(&ms->mu);
		err = (int)d.deleted;
	}
	free(d.gone);
	return err;
}

struct exp_ctx {
	uint64_t now_s;
	unsigned int n;
	uint8_t keys[EXPIRE_BATCH][MSG_KEY];
	uint64_t lens[EXPIRE_BATCH];
};

static int exp_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	struct exp_ctx *c = arg;

	if (klen != MSG_KEY || vlen < MSG_HDR || get64((const uint8_t *)v + 40) > c->now_s)
		return 0;
	memcpy(c->keys[c->n], k, MSG_KEY);
	c->lens[c->n] = vlen - MSG_HDR;
	return ++c->n == EXPIRE_BATCH;
}

int mbox_store_expire(struct mbox_store *ms, uint64_t now_s)
{
	struct exp_ctx *c = malloc(sizeof(*c));
	struct del_ctx d;
	int total = 0, err;

	if (!c)
		return -ENOMEM;
	do {
		c->now_s = now_s;
		c->n = 0;
		err = store_iter(ms->st, ms->db_msgs, exp_fn, c);
		if (err < 0 || !c->n)
			break;
		err = del_keys(ms, ms->db_msgs, &c->keys[0][0], MSG_KEY, MSG_HDR, c->n, &d);
		if (!err) {
			pthread_mutex_lock(&ms->mu);
			for (unsigned int i = 0; i < c->n; i++)
				if (d.gone[i])
					rcpt_sub(ms, c->keys[i], 1, c->lens[i]);
			ms->expired_total += d.deleted;
			pthread_mutex_unlock(&ms->mu);
			total += (int)d.deleted;
		}
		free(d.gone);
	} while (!err && c->n == EXPIRE_BATCH);
	free(c);
	return err < 0 ? err : total;
}

void mbox_store_stats(struct mbox_store *ms, struct mbox_store_stats *out)
{
	pthread_mutex_lock(&ms->mu);
	*out = (struct mbox_store_stats){ .msgs = ms->msgs,
					  .bytes = ms->bytes,
					  .recipients = ms->recipients,
					  .inbox = ms->inbox,
					  .put_total = ms->put_total,
					  .dup_total = ms->dup_total,
					  .full_total = ms->full_total,
					  .acked_total = ms->acked_total,
					  .expired_total = ms->expired_total };
	pthread_mutex_unlock(&ms->mu);
}

/* ---- inbox ---- */

int mbox_inbox_put(struct mbox_store *ms, const uint8_t sender[MBOX_KEY_LEN], uint64_t ts,
		   const uint8_t *sealed, size_t len, uint8_t id[MBOX_ID_LEN])
{
	struct put_once p;
	uint8_t *val;
	int err;

	if (!ms || !sender || !sealed || !id || len > MBOX_MAX_SEALED)
		return -EINVAL;
	mbox_msg_id(sealed, len, id);
	pthread_mutex_lock(&ms->mu);
	if (ms->inbox >= ms->lim.inbox_max) {
		pthread_mutex_unlock(&ms->mu);
		return -EDQUOT;
	}
	ms->inbox++;
	pthread_mutex_unlock(&ms->mu);
	val = malloc(INBOX_HDR + len);
	if (!val) {
		err = -ENOMEM;
		goto undo;
	}
	memcpy(val, sender, MBOX_KEY_LEN);
	be64(val + 32, ts);
	memcpy(val + INBOX_HDR, sealed, len);
	p = (struct put_once){ .dbi = ms->db_inbox, .key = id, .klen = MBOX_ID_LEN, .val = val,
			       .vlen = INBOX_HDR + len };
	err = store_write_call(ms->st, put_once_fn, &p, 0);
	free(val);
	if (!err && !p.existed)
		return 0;
undo:
	pthread_mutex_lock(&ms->mu);
	ms->inbox--;
	pthread_mutex_unlock(&ms->mu);
	return err;
}

struct inbox_iter {
	mbox_inbox_fn fn;
	void *arg;
};

static int inbox_fn(void *arg, const void *k, size_t klen, const void *v, size_t vlen)
{
	struct inbox_iter *it = arg;
	struct mbox_inbox_entry e;

	if (klen != MBOX_ID_LEN || vlen < INBOX_HDR)
		return 0;
	memcpy(e.id, k, MBOX_ID_LEN);
	memcpy(e.sender, v, MBOX_KEY_LEN);
	e.ts = get64((const uint8_t *)v + 32);
	e.len = (uint32_t)(vlen - INBOX_HDR);
	return it->fn(it->arg, &e) ? 1 : 0;
}

int mbox_inbox_each(struct mbox_store *ms, mbox_inbox_fn fn, void *arg)
{
	struct inbox_iter it = { fn, arg };
	int err = store_iter(ms->st, ms->db_inbox, inbox_fn, &it);

	return err < 0 ? err : 0;
}

int mbox_inbox_get(struct mbox_store *ms, const uint8_t id[MBOX_ID_LEN],
		   struct mbox_inbox_entry *e, uint8_t **sealed)
{
	void *v;
	size_t vl;
	int err = store_get(ms->st, ms->db_inbox, id, MBOX_ID_LEN, &v, &vl);

	if (err)
		return err;
	if (vl < INBOX_HDR) {
		free(v);
		return -EBADMSG;
	}
	memcpy(e->id, id, MBOX_ID_LEN);
	memcpy(e->sender, v, MBOX_KEY_LEN);
	e->ts = get64((uint8_t *)v + 32);
	e->len = (uint32_t)(vl - INBOX_HDR);
	memmove(v, (uint8_t *)v + INBOX_HDR, e->len);
	*sealed = v;
	return 0;
}

int mbox_inbox_del(struct mbox_store *ms, const uint8_t id[MBOX_ID_LEN])
{
	struct del_ctx d;
	int err = del_keys(ms, ms->db_inbox, id, MBOX_ID_LEN, INBOX_HDR, 1, &d);

	if (!err && !d.deleted)
		err = -ENOENT;
	if (!err) {
		pthread_mutex_lock(&ms->mu);
		ms->inbox--;
		pthread_mutex_unlock(&ms->mu);
	}
	free(d.gone);
	return err;
}
