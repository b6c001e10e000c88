// SPDX-License-Identifier: MIT
/*
 * The node's side: msg send (sealed, delivered directly when the
 * recipient answers, else left at up to MBOX_COPIES of the anchors its
 * record lists), the fetch from our own anchors (each message opened,
 * kept in the inbox durably, then acknowledged so the anchor deletes it),
 * and the choice of our anchors (docs/MAILBOX.md, "Anchors").
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailbox/mbn_int.h"
#include "weft/identity.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#define FETCH_ROUNDS 64 /* LISTs taken from one anchor per fetch (64 x 64 messages) */
#define RELAY_CHECK_MS 3000 /* a relay's record, looked up for its mailbox flag */
#define DHT_AGAIN_MS (30 * 60 * 1000ULL) /* mailbox hosts found in the DHT are kept this long */

/* One PUT to target; *status gets the answer's. */
static int put_to(struct mbox_node *mn, const char *target, const uint8_t *req, size_t len,
		  unsigned int timeout_ms, uint8_t *status, uint8_t id[MBOX_ID_LEN])
{
	uint8_t *resp = NULL;
	size_t rlen;
	int err = mbn_xchg(mn, target, req, len, &resp, &rlen, timeout_ms);

	if (!err)
		err = mbox_result_parse(resp, rlen, status, id);
	free(resp);
	return err;
}

int mbn_send(struct mbox_node *mn, const uint8_t recipient[MBOX_KEY_LEN], const uint8_t *body,
	     size_t len, uint32_t ttl_s, int no_direct, struct mbn_send_result *res)
{
	struct mbox_req r = { .type = MBOX_T_PUT, .ttl_s = ttl_s };
	char hex[2 * MBOX_KEY_LEN + 1], target[128];
	uint8_t *sealed, *req, st;
	struct conn_record rec;
	int n, err, cached = 0;

	memset(res, 0, sizeof(*res));
	if (len > MBOX_MAX_BODY)
		return -E2BIG;
	sealed = malloc(MBOX_MAX_SEALED);
	req = malloc(MBOX_REQ_MAX);
	if (!sealed || !req) {
		err = -ENOMEM;
		goto out;
	}
	n = mbox_seal(mn->o.id->sk, recipient, mbn_now_s(), body, len, sealed, MBOX_MAX_SEALED);
	if (n < 0) {
		err = n;
		goto out;
	}
	mbox_msg_id(sealed, (size_t)n, res->id);
	memcpy(r.recipient, recipient, MBOX_KEY_LEN);
	r.sealed = sealed;
	r.sealed_len = (size_t)n;
	n = mbox_req_encode(&r, req, MBOX_REQ_MAX);
	if (n < 0) {
		err = n;
		goto out;
	}
	if (!no_direct) {
		util_hex(hex, recipient, MBOX_KEY_LEN);
		err = put_to(mn, hex, req, (size_t)n, MBOX_DEF_DIRECT_MS, &st, res->id);
		memcpy(res->tried[0].key, recipient, MBOX_KEY_LEN);
		res->tried[0].err = err;
		res->tried[0].status = err ? 0 : st;
		res->ntried = 1;
		if (!err && st == MBOX_OK) {
			res->direct = 1;
			goto out;
		}
		log_info("mailbox", "direct delivery to %.16s...: %s; trying its anchors", hex,
			 err ? strerror(-err) : mbox_status_name(st));
	}
	/* past a miss cached from before its record was put */
	err = mn->o.conn ? conn_node_resolve_opts(mn->o.conn, recipient, &rec, &cached,
						  MBOX_DEF_ANCHOR_MS, CONN_RESOLVE_PAST_MISS)
			 : -ENOENT;
	/* the record may be a cached one from before the node listed anchors */
	if (!err && !rec.nanchors && cached)
		err = conn_node_resolve_opts(mn->o.conn, recipient, &rec, &cached,
					     MBOX_DEF_ANCHOR_MS, CONN_RESOLVE_FRESH);
	if (err)
		goto out;
	if (!rec.nanchors) {
		err = -ENOENT;
		goto out;
	}
	for (unsigned int i = 0; i < rec.nanchors && res->nstored < MBOX_COPIES; i++) {
		unsigned int k = res->ntried++;

		mbn_target_of(target, rec.anchors[i].key, &rec.anchors[i].addr);
		memcpy(res->tried[k].key, rec.anchors[i].key, MBOX_KEY_LEN);
		res->tried[k].err = put_to(mn, target, req, (size_t)n, MBOX_DEF_ANCHOR_MS, &st,
					   res->id);
		res->tried[k].status = res->tried[k].err ? 0 : st;
		if (!res->tried[k].err && st == MBOX_OK)
			res->nstored++;
	}
	err = res->nstored ? 0 : -EHOSTUNREACH;
out:
	free(sealed);
	free(req);
	return err;
}

/* Take what one anchor holds for us: LIST, keep, ACK, until it has no more. */
static int fetch_one(struct mbox_node *mn, const struct mbn_anchor *a)
{
	static const struct mbox_req fetch = { .type = MBOX_T_FETCH, .max = MBOX_FETCH_MAX };
	uint8_t freq[16], *resp, *plain = malloc(MBOX_MAX_SEALED), st, id[MBOX_ID_LEN];
	uint8_t ids[MBOX_FETCH_MAX][MBOX_ID_LEN], areq[MBOX_FRAME_HDR + 2 + sizeof(ids)];
	struct mbox_item items[MBOX_FETCH_MAX];
	struct mbox_opened m;
	unsigned int n, nack;
	size_t rlen;
	int more = 1, taken = 0, err = 0, flen;

	if (!plain)
		return -ENOMEM;
	flen = mbox_req_encode(&fetch, freq, sizeof(freq));
	for (int round = 0; more && round < FETCH_ROUNDS; round++) {
		struct mbox_req ack = { .type = MBOX_T_ACK, .ids = &ids[0][0] };
		int alen;

		resp = NULL;
		err = mbn_xchg(mn, a->target, freq, (size_t)flen, &resp, &rlen, MBOX_DEF_ANCHOR_MS);
		if (!err)
			err = mbox_list_parse(resp, rlen, &st, &more, items, MBOX_FETCH_MAX, &n);
		if (!err && st != MBOX_OK)
			err = -EIO;
		if (err || !n) {
			free(resp);
			break;
		}
		for (nack = 0; nack < n; nack++) {
			struct mbox_item *it = &items[nack];

			/* only what opens for us, signed by its sender, is kept;
			 * junk is acknowledged too, so the anchor forgets it */
			if (!mbox_open(mn->o.id->sk, it->sealed, it->len, plain, MBOX_MAX_SEALED,
				       &m)) {
				err = mbox_inbox_put(mn->ms, m.sender, mbn_now_s(), it->sealed,
						     it->len, id);
				if (err)
					break; /* inbox full or disk: not acknowledged */
				mbn_offer(mn, &m, id);
				taken++;
			} else {
				log_info("mailbox", "dropped a message from an anchor that does "
						    "not open for this node");
			}
			memcpy(ids[nack], it->id, MBOX_ID_LEN);
		}
		free(resp);
		if (nack) {
			ack.nids = (uint16_t)nack;
			alen = mbox_req_encode(&ack, areq, sizeof(areq));
			resp = NULL;
			if (alen > 0 && !mbn_xchg(mn, a->target, areq, (size_t)alen, &resp, &rlen,
						  MBOX_DEF_ANCHOR_MS))
				mbox_result_parse(resp, rlen, &st, NULL);
			free(resp);
		}
		if (err)
			break;
	}
	free(plain);
	return err ? err : taken;
}

int mbn_fetch_all(struct mbox_node *mn)
{
	struct mbn_anchor a[MBOX_MAX_ANCHORS];
	unsigned int n;
	int total = 0, err = 0, r;

	pthread_mutex_lock(&mn->mu);
	n = mn->nanchors;
	memcpy(a, mn->anchors, sizeof(a[0]) * n);
	pthread_mutex_unlock(&mn->mu);
	for (unsigned int i = 0; i < n; i++) {
		r = fetch_one(mn, &a[i]);
		if (r < 0) {
			err = r;
			log_info("mailbox", "fetch from %.16s...: %s", a[i].target, strerror(-r));
		} else {
			total += r;
		}
	}
	pthread_mutex_lock(&mn->mu);
	mn->fetch_runs++;
	mn->fetched_total += (uint64_t)total;
	if (err)
		mn->fetch_errors++;
	pthread_mutex_unlock(&mn->mu);
	return total ? total : err;
}

int mbn_fetch_wait(struct mbox_node *mn, unsigned int timeout_ms, unsigned int *nanchors)
{
	struct timespec dl;
	uint64_t gen;
	int r = -ETIMEDOUT;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&mn->mu);
	gen = ++mn->fetch_gen;
	mn->fetch_now = 1;
	pthread_cond_broadcast(&mn->cv);
	while (!mn->stop && mn->fetch_done_gen < gen &&
	       pthread_cond_timedwait(&mn->cv, &mn->mu, &dl) != ETIMEDOUT)
		;
	if (mn->fetch_done_gen >= gen)
		r = mn->fetch_last;
	else if (mn->stop)
		r = -ECANCELED;
	*nanchors = mn->nanchors;
	pthread_mutex_unlock(&mn->mu);
	return r;
}

/* Our relays whose own record says they keep a mailbox. */
static unsigned int relay_anchors(struct mbox_node *mn, struct mbn_anchor *out)
{
	struct conn_relay r[CONN_REC_MAX_RELAYS];
	struct conn_record rec;
	unsigned int n, k = 0;

	n = conn_node_relays(mn->o.conn, r, CONN_REC_MAX_RELAYS);
	for (unsigned int i = 0; i < n && k < MBOX_MAX_ANCHORS; i++) {
		/* past a miss cached before the relay's record was put (both
		 * just started): the DHT is asked (once a refresh, per relay
		 * without a record; a relay whose record lacks the mailbox
		 * flag is cached, not asked again each minute) */
		int err = conn_node_resolve_opts(mn->o.conn, r[i].key, &rec, NULL, RELAY_CHECK_MS,
						 CONN_RESOLVE_PAST_MISS);

		if (err || !(rec.caps & CONN_CAP_MAILBOX))
			continue;
		memcpy(out[k].key, r[i].key, MBOX_KEY_LEN);
		out[k].addr = r[i].addr;
		mbn_target_of(out[k].target, r[i].key, &r[i].addr);
		k++;
	}
	return k;
}

/* Mailbox hosts from the DHT, kept DHT_AGAIN_MS once some were found
 * (until then looked up at each refresh: each fetch cycle). */
static unsigned int dht_anchors(struct mbox_node *mn, struct mbn_anchor *out)
{
	uint64_t now = mbn_now_ms();
	unsigned int n;

	pthread_mutex_lock(&mn->mu);
	n = mn->ndht_found;
	if (n && now - mn->dht_found_ms < DHT_AGAIN_MS) {
		memcpy(out, mn->dht_found, sizeof(*out) * n);
		pthread_mutex_unlock(&mn->mu);
		return n;
	}
	pthread_mutex_unlock(&mn->mu);
	n = mbn_dht_anchors(mn, out, MBOX_MAX_ANCHORS);
	pthread_mutex_lock(&mn->mu);
	memcpy(mn->dht_found, out, sizeof(*out) * n);
	mn->ndht_found = n;
	mn->dht_found_ms = now;
	pthread_mutex_unlock(&mn->mu);
	return n;
}

void mbn_anchors_refresh(struct mbox_node *mn)
{
	struct mbn_anchor a[MBOX_MAX_ANCHORS];
	struct conn_relay pub[MBOX_MAX_ANCHORS] = { 0 };
	const char *from = "none";
	unsigned int n = 0;

	for (unsigned int i = 0; i < mn->o.nanchors && n < MBOX_MAX_ANCHORS; i++) {
		struct sockaddr_storage ss;
		socklen_t sl;
		int have;

		if (quic_node_parse_target(mn->o.anchors[i], QUIC_NODE_DEF_PORT, a[n].key, &have,
					   &ss, &sl) ||
		    !have || io_addr_from_sockaddr(&a[n].addr, (struct sockaddr *)&ss, sl))
			continue;
		snprintf(a[n].target, sizeof(a[n].target), "%s", mn->o.anchors[i]);
		n++;
	}
	if (n)
		from = "config";
	else if (mn->o.conn && (n = relay_anchors(mn, a)))
		from = "relays";
	else if ((n = dht_anchors(mn, a)))
		from = "dht";
	for (unsigned int i = 0; i < n; i++) {
		memcpy(pub[i].key, a[i].key, MBOX_KEY_LEN);
		pub[i].addr = a[i].addr;
	}
	pthread_mutex_lock(&mn->mu);
	memcpy(mn->anchors, a, sizeof(a[0]) * n);
	mn->nanchors = n;
	mn->anchors_from = from;
	pthread_mutex_unlock(&mn->mu);
	if (mn->o.conn)
		conn_node_set_anchors(mn->o.conn, pub, n);
}
