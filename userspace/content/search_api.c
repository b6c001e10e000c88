/* SPDX-License-Identifier: MIT */
/*
 * Search over followed shares, on the node (docs/CONTENT.md "Search"):
 * keeps the index (search.c) in step with the heads this node follows or
 * publishes (content_heads) and the manifests it holds of them, and answers
 * POST /v1/content/search. What is searched is exactly the shares `content
 * subscriptions` lists and this node's own named shares: nothing fetched
 * by id alone, nothing browsed. Calls search.c, shares.c and heads.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "content/heads.h"
#include "content/search.h"
#include "weft/ctl.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

/* Shares a sync pass looks at (heads are at most 256; what the index holds
 * beyond is dropped over further passes). */
#define SYNC_MAX 1024

struct sync_set {
	uint8_t sid[SYNC_MAX][MANIFEST_SHARE_ID_LEN];
	unsigned int n;
};

static int set_has(const struct sync_set *s, const uint8_t *sid)
{
	for (unsigned int i = 0; i < s->n; i++)
		if (!memcmp(s->sid[i], sid, MANIFEST_SHARE_ID_LEN))
			return 1;
	return 0;
}

static int want_one(void *arg, const void *key, size_t klen, const void *val, size_t vlen)
{
	struct sync_set *w = arg;
	struct cn_head_ref ref = {0};
	struct cn_head_rec rec;

	if (klen <= 32 || klen > 32 + MANIFEST_MAX_NAME || w->n == SYNC_MAX)
		return 0;
	memcpy(ref.pk, key, 32);
	ref.name_len = klen - 32;
	memcpy(ref.name, (const uint8_t *)key + 32, ref.name_len);
	if (cn_head_rec_decode(&ref, val, vlen, &rec) ||
	    !(rec.flags & (CN_HEAD_SUB | CN_HEAD_OWN)))
		return 0;
	manifest_share_id(ref.pk, ref.name, ref.name_len, w->sid[w->n]);
	if (!set_has(w, w->sid[w->n]))
		w->n++;
	return 0;
}

static int stale_one(void *arg, const uint8_t *sid)
{
	struct sync_set **ws = arg; /* [0] wanted, [1] to drop */

	if (!set_has(ws[0], sid) && ws[1]->n < SYNC_MAX)
		memcpy(ws[1]->sid[ws[1]->n++], sid, MANIFEST_SHARE_ID_LEN);
	return 0;
}

/* One share wanted: index the version held, unless it is indexed. */
static void sync_share(struct content_node *cn, const uint8_t *sid)
{
	uint8_t *enc = NULL;
	struct manifest m;
	uint64_t seq;
	size_t len;
	int rc, have;

	have = cn_search_indexed(cn->search, sid, &seq) == 0;
	if (cn_share_get(cn, sid, &enc, &len)) {
		if (have) /* removed (content rm): not searchable */
			cn_search_remove(cn->search, sid);
		return;
	}
	manifest_init(&m);
	rc = manifest_decode(&m, enc, len);
	free(enc);
	if (rc || m.sealed) {
		/* a sealed share's paths are placeholders: not indexed */
		if (have)
			cn_search_remove(cn->search, sid);
	} else if (!have || seq != m.seq) {
		rc = cn_search_index(cn->search, &m);
		if (rc == -EDQUOT) {
			/* the map is nearly full: tried again at the next sync
			 * (said once a minute, counted in status) */
			uint64_t now = util_now_ms();

			atomic_fetch_add(&cn->search_deferred, 1);
			if (now - cn->search_deferred_said >= 60000 || !cn->search_deferred_said) {
				cn->search_deferred_said = now;
				log_warn(CN_MOD,
					 "search index of %s seq %llu deferred: it would leave less "
					 "than 1/%d of the store's map free (store.map_size); "
					 "indexed when room returns",
					 m.name, (unsigned long long)m.seq, CN_SEARCH_ROOM_DIV);
			}
		} else if (rc)
			log_warn(CN_MOD, "search index of %s seq %llu: %s", m.name,
				 (unsigned long long)m.seq, strerror(-rc));
		else
			atomic_fetch_add(&cn->search_indexed, 1);
	}
	manifest_free(&m);
}

void cn_search_sync(struct content_node *cn)
{
	struct sync_set *w, *drop;
	struct sync_set *ws[2];

	if (!cn->search)
		return;
	w = calloc(1, sizeof(*w));
	drop = calloc(1, sizeof(*drop));
	if (!w || !drop) {
		free(w);
		free(drop);
		return;
	}
	pthread_mutex_lock(&cn->search_mu);
	store_iter(cn->store, cn->heads_dbi, want_one, w);
	for (unsigned int i = 0; i < w->n; i++)
		sync_share(cn, w->sid[i]);
	ws[0] = w;
	ws[1] = drop;
	cn_search_each(cn->search, stale_one, ws);
	for (unsigned int i = 0; i < drop->n; i++)
		cn_search_remove(cn->search, drop->sid[i]);
	pthread_mutex_unlock(&cn->search_mu);
	free(w);
	free(drop);
}

/* ------------------------------------------------------------ control API */

static int bad(struct ctl_resp *resp, const char *msg)
{
	ctl_resp_error(resp, 400, "bad_request", "%s", msg);
	return -EINVAL;
}

static int parse_req(const json_t *b, struct cn_search_q *q, struct ctl_resp *resp)
{
	const char *text = json_string_value(json_object_get(b, "q"));
	const char *share = json_string_value(json_object_get(b, "share"));
	const char *type = json_string_value(json_object_get(b, "type"));
	const char *cur = json_string_value(json_object_get(b, "cursor"));
	json_t *lim = json_object_get(b, "limit");
	int rc;

	memset(q, 0, sizeof(*q));
	if (!json_is_object(b) || !text)
		return bad(resp, "\"q\": the words to search for, a string, is required");
	rc = cn_search_parse(text, q);
	if (rc == -E2BIG)
		return bad(resp, "too many words: a query has at most 8, of at most 512 bytes");
	if (rc == -EILSEQ)
		return bad(resp, "the query is not UTF-8");
	if (rc)
		return bad(resp, "the query has no word (letters or digits)");
	if (share) {
		struct cn_head_ref ref;
		const char *why;

		q->has_share = 1;
		if (strlen(share) == 2 * MANIFEST_SHARE_ID_LEN &&
		    util_unhex(q->share, MANIFEST_SHARE_ID_LEN, share) == 0)
			;
		else if (cn_head_parse(share, &ref, &why) == 0)
			manifest_share_id(ref.pk, ref.name, ref.name_len, q->share);
		else
			return bad(resp, "\"share\": a share id (40 hex), KEY/NAME or magnet");
	}
	if (type) {
		if (!*type || strlen(type) > MANIFEST_MAX_TYPE)
			return bad(resp, "\"type\": a media type or its first part (video)");
		strcpy(q->type, type);
	}
	if (cur) {
		if (strlen(cur) != 2 * CN_SEARCH_CURSOR_LEN ||
		    util_unhex(q->cursor, CN_SEARCH_CURSOR_LEN, cur) ||
		    q->cursor[0] >= CN_TIERS)
			return bad(resp, "\"cursor\": the \"next\" of an earlier page");
		q->has_cursor = 1;
	}
	q->limit = CN_SEARCH_PAGE_DEF;
	if (lim) {
		if (!json_is_integer(lim) || json_integer_value(lim) < 1 ||
		    json_integer_value(lim) > CN_SEARCH_PAGE_MAX)
			return bad(resp, "\"limit\": 1 to 100 results a page");
		q->limit = (unsigned int)json_integer_value(lim);
	}
	return 0;
}

/* What a blocklist followed lists is never shown (a page may then hold
 * fewer than limit results). */
static void drop_blocked(struct content_node *cn, json_t *results)
{
	uint8_t sid[MANIFEST_SHARE_ID_LEN], id[32];

	if (!atomic_load(&cn->nblocked))
		return;
	for (size_t i = json_array_size(results); i-- > 0;) {
		json_t *r = json_array_get(results, i);

		if (util_unhex(sid, sizeof(sid), json_string_value(json_object_get(r, "share_id"))) ||
		    util_unhex(id, sizeof(id), json_string_value(json_object_get(r, "id"))) ||
		    cn_blocked(cn, sid, sizeof(sid)) || cn_blocked(cn, id, sizeof(id)))
			json_array_remove(results, i);
	}
}

/* POST /v1/content/search {"q", "share"?, "type"?, "cursor"?, "limit"?} */
static void api_search(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_search_page pg = {0};
	struct cn_search_q *q = calloc(1, sizeof(*q));
	char next[2 * CN_SEARCH_CURSOR_LEN + 1];
	json_t *terms;
	int rc;

	if (!q) {
		ctl_resp_errno(resp, -ENOMEM, "search");
		return;
	}
	if (parse_req(req->json, q, resp))
		goto out;
	pg.results = json_array();
	rc = cn_search_query(cn->search, q, &pg);
	if (rc) {
		json_decref(pg.results);
		ctl_resp_store_error(resp, rc, "search");
		goto out;
	}
	atomic_fetch_add(&cn->search_queries, 1);
	drop_blocked(cn, pg.results);
	terms = json_array();
	for (unsigned int i = 0; i < q->nterms; i++)
		json_array_append_new(terms, json_stringn(q->terms[i].t, q->terms[i].len));
	if (pg.has_next)
		util_hex(next, pg.next, CN_SEARCH_CURSOR_LEN);
	ctl_resp_json(resp, 200,
		      json_pack("{s:o,s:o,s:o,s:i,s:I}", "results", pg.results, "terms", terms,
				"next", pg.has_next ? json_string(next) : json_null(), "scanned",
				(int)pg.scanned, "matches_max", (json_int_t)pg.matches_max));
out:
	free(q);
}

int cn_search_init(struct content_node *cn, struct ctl *ctl)
{
	int rc = cn_search_open(cn->store, &cn->search);

	if (rc)
		return rc;
	pthread_mutex_init(&cn->search_mu, NULL);
	if (ctl)
		ctl_route(ctl, "POST", "/v1/content/search", api_search, cn);
	/* a damaged index (its databases disagree): emptied, then rebuilt
	 * from the manifests held by the sync below */
	rc = cn_search_check(cn->search);
	if (rc == -EBADMSG) {
		log_warn(CN_MOD, "search index damaged: rebuilding it from the manifests held");
		rc = cn_search_clear(cn->search);
		if (rc)
			log_warn(CN_MOD, "search index not emptied: %s", strerror(-rc));
	} else if (rc) {
		log_warn(CN_MOD, "search index not checked: %s", strerror(-rc));
	}
	/* what changed while we were down (a version held, not yet indexed) */
	cn_search_sync(cn);
	return 0;
}

void cn_search_fini(struct content_node *cn)
{
	if (!cn->search)
		return;
	pthread_mutex_destroy(&cn->search_mu);
	cn_search_free(cn->search);
	cn->search = NULL;
}
