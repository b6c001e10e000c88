// SPDX-License-Identifier: MIT
/*
 * Control routes of the mailbox (docs/CONTROL_API.md, "Messages"):
 *   POST   /v1/msg/send     {to, data | data_b64, ttl_s?, no_direct?}
 *   GET    /v1/msg/inbox    GET /v1/msg/read/ID    DELETE /v1/msg/ID
 *   POST   /v1/msg/fetch    GET /v1/mailbox/status
 * and weft_mailbox_* metrics.
 */
#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "mailbox/mbn_int.h"
#include "weft/ctl.h"
#include "weft/identity.h"
#include "weft/util.h"

static json_t *hexj(const uint8_t *b, size_t n)
{
	char hex[2 * MBOX_KEY_LEN + 1];

	util_hex(hex, b, n);
	return json_string(hex);
}

/* The request's message bytes: "data" (text) or "data_b64"; malloc'd. */
static int body_of(const struct ctl_req *req, uint8_t **out, size_t *len)
{
	json_t *d = json_object_get(req->json, "data"), *b = json_object_get(req->json, "data_b64");
	const char *s;
	size_t sl;

	if (json_is_string(d) && !b) {
		sl = json_string_length(d);
		if (sl > MBOX_MAX_BODY)
			return -E2BIG;
		*out = malloc(sl ? sl : 1);
		if (!*out)
			return -ENOMEM;
		memcpy(*out, json_string_value(d), sl);
		*len = sl;
		return 0;
	}
	if (!json_is_string(b) || d)
		return -EINVAL;
	s = json_string_value(b);
	sl = json_string_length(b);
	if (sl > (MBOX_MAX_BODY / 3 + 1) * 4)
		return -E2BIG;
	*out = malloc(sl / 4 * 3 + 3);
	if (!*out)
		return -ENOMEM;
	if (sodium_base642bin(*out, sl / 4 * 3 + 3, s, sl, NULL, len, NULL,
			      sodium_base64_VARIANT_ORIGINAL)) {
		free(*out);
		return -EINVAL;
	}
	return *len > MBOX_MAX_BODY ? (free(*out), -E2BIG) : 0;
}

static void api_send(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	struct mbn_send_result r;
	uint8_t key[MBOX_KEY_LEN], *body = NULL, worst = MBOX_OK;
	json_t *to = json_object_get(req->json, "to"), *tried;
	json_t *jttl = json_object_get(req->json, "ttl_s");
	json_int_t ttl = json_integer_value(jttl);
	size_t len = 0;
	int err;

	if (!json_is_string(to) || util_unhex(key, sizeof(key), json_string_value(to))) {
		ctl_resp_error(resp, 400, "bad_request", "\"to\": the recipient's node key, 64 hex digits");
		return;
	}
	if ((jttl && !json_is_integer(jttl)) || ttl < 0 || ttl > UINT32_MAX) {
		ctl_resp_error(resp, 400, "bad_request", "\"ttl_s\": 0 .. 4294967295");
		return;
	}
	err = body_of(req, &body, &len);
	if (err == -E2BIG) {
		ctl_resp_error(resp, 413, "too_large", "a message holds at most %u bytes",
			       MBOX_MAX_BODY);
		return;
	}
	if (err) {
		ctl_resp_error(resp, 400, "bad_request", "\"data\" (text) or \"data_b64\" (base64)");
		return;
	}
	err = mbn_send(mn, key, body, len, (uint32_t)ttl,
		       json_is_true(json_object_get(req->json, "no_direct")), &r);
	free(body);
	tried = json_array();
	for (unsigned int i = 0; i < r.ntried; i++) {
		json_array_append_new(
		    tried, json_pack("{s:o,s:s,s:s}", "key", hexj(r.tried[i].key, MBOX_KEY_LEN),
				     "status",
				     r.tried[i].err ? "unreachable" : mbox_status_name(r.tried[i].status),
				     "error", r.tried[i].err ? ctl_errno_code(r.tried[i].err) : ""));
		if (!r.tried[i].err && r.tried[i].status > worst &&
		    (r.tried[i].status == MBOX_E_FULL || r.tried[i].status == MBOX_E_RATE))
			worst = r.tried[i].status;
	}
	if (!err) {
		ctl_resp_json(resp, 200,
			      json_pack("{s:o,s:s,s:i,s:o}", "id", hexj(r.id, MBOX_ID_LEN),
					"delivered", r.direct ? "direct" : "anchors", "copies",
					r.direct ? 1 : (int)r.nstored, "tried", tried));
		return;
	}
	json_decref(tried);
	if (worst == MBOX_E_FULL)
		ctl_resp_error(resp, 507, "mailbox_full",
			       "mailbox_full: the recipient's anchors hold all they may for it (quota)");
	else if (worst == MBOX_E_RATE)
		ctl_resp_error(resp, 429, "rate_limited",
			       "rate_limited: this node is over its rate at the recipient's anchors");
	else if (err == -ENOENT)
		ctl_resp_error(resp, 404, "no_anchor",
			       "the recipient is unreachable and its record lists no anchor");
	else if (err == -E2BIG)
		ctl_resp_error(resp, 413, "too_large", "a message holds at most %u bytes",
			       MBOX_MAX_BODY);
	else
		ctl_resp_error(resp, 502, "undelivered",
			       "neither the recipient nor any of its anchors took the message");
}

static int inbox_row(void *arg, const struct mbox_inbox_entry *e)
{
	json_array_append_new(arg, json_pack("{s:o,s:o,s:I,s:I}", "id", hexj(e->id, MBOX_ID_LEN),
					     "sender", hexj(e->sender, MBOX_KEY_LEN), "ts",
					     (json_int_t)e->ts, "size",
					     (json_int_t)(e->len > MBOX_SEAL_OVERHEAD
								  ? e->len - MBOX_SEAL_OVERHEAD
								  : 0)));
	return 0;
}

static void api_inbox(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	json_t *a = json_array();
	int err = mbox_inbox_each(mn->ms, inbox_row, a);

	if (err) {
		json_decref(a);
		ctl_resp_store_error(resp, err, "inbox");
		return;
	}
	ctl_resp_json(resp, 200, json_pack("{s:o}", "messages", a));
}

static int id_of(const struct ctl_req *req, struct ctl_resp *resp, uint8_t id[MBOX_ID_LEN])
{
	if (util_unhex(id, MBOX_ID_LEN, req->subpath)) {
		ctl_resp_error(resp, 400, "bad_request", "a message id is 32 hex digits");
		return -1;
	}
	return 0;
}

static void api_read(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	struct mbox_inbox_entry e;
	struct mbox_opened m;
	uint8_t id[MBOX_ID_LEN], *sealed, *plain;
	char *b64;
	size_t bl;
	int err;

	if (id_of(req, resp, id))
		return;
	err = mbox_inbox_get(mn->ms, id, &e, &sealed);
	if (err == -ENOENT) {
		ctl_resp_error(resp, 404, "not_found", "no message %s in the inbox", req->subpath);
		return;
	}
	if (err) {
		ctl_resp_store_error(resp, err, "inbox");
		return;
	}
	plain = malloc(e.len);
	bl = sodium_base64_ENCODED_LEN(e.len, sodium_base64_VARIANT_ORIGINAL);
	b64 = malloc(bl);
	if (!plain || !b64) {
		ctl_resp_errno(resp, -ENOMEM, "read");
	} else if (mbox_open(mn->o.id->sk, sealed, e.len, plain, e.len, &m)) {
		ctl_resp_error(resp, 422, "unreadable",
			       "the message does not open with this node's key");
	} else {
		sodium_bin2base64(b64, bl, m.body, m.len, sodium_base64_VARIANT_ORIGINAL);
		ctl_resp_json(resp, 200,
			      json_pack("{s:s,s:o,s:I,s:I,s:I,s:s}", "id", req->subpath, "sender",
					hexj(m.sender, MBOX_KEY_LEN), "written", (json_int_t)m.ts,
					"received", (json_int_t)e.ts, "size", (json_int_t)m.len,
					"data_b64", b64));
	}
	if (plain)
		sodium_memzero(plain, e.len);
	free(plain);
	free(b64);
	free(sealed);
}

static void api_rm(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	uint8_t id[MBOX_ID_LEN];
	int err;

	if (id_of(req, resp, id))
		return;
	err = mbox_inbox_del(mn->ms, id);
	if (err == -ENOENT)
		ctl_resp_error(resp, 404, "not_found", "no message %s in the inbox", req->subpath);
	else if (err)
		ctl_resp_store_error(resp, err, "inbox");
	else
		ctl_resp_json(resp, 200, json_pack("{s:s}", "deleted", req->subpath));
}

static void api_fetch(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	unsigned int na;
	int n;

	/* the fetcher thread does it: one fetch at a time */
	n = mbn_fetch_wait(mn, MBN_FETCH_WAIT_MS, &na);
	if (n == -ETIMEDOUT)
		ctl_resp_error(resp, 504, "timeout",
			       "the fetch did not end within %u s; it goes on",
			       MBN_FETCH_WAIT_MS / 1000);
	else if (n < 0)
		ctl_resp_error(resp, 502, "fetch_failed", "an anchor did not answer: %s",
			       ctl_errno_code(n));
	else
		ctl_resp_json(resp, 200, json_pack("{s:i,s:i}", "fetched", n, "anchors", (int)na));
}

static json_t *anchors_json(struct mbox_node *mn)
{
	json_t *a = json_array();
	char buf[64];

	for (unsigned int i = 0; i < mn->nanchors; i++)
		json_array_append_new(
		    a, json_pack("{s:o,s:s}", "key", hexj(mn->anchors[i].key, MBOX_KEY_LEN), "addr",
				 io_addr_fmt(&mn->anchors[i].addr, buf, sizeof(buf))));
	return a;
}

static void api_status(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct mbox_node *mn = arg;
	struct mbox_store_stats s;
	struct mbox_score top[8];
	unsigned int n, tracked;
	json_t *o, *senders = json_array(), *refused = json_object();

	mbox_store_stats(mn->ms, &s);
	pthread_mutex_lock(&mn->mu);
	n = mbox_rate_top(mn->rate, mbn_now_ms(), top, 8, &tracked);
	for (unsigned int i = 0; i < n; i++)
		json_array_append_new(senders, json_pack("{s:o,s:i,s:I}", "key",
							 hexj(top[i].key, MBOX_KEY_LEN), "score",
							 (int)top[i].score, "refused",
							 (json_int_t)top[i].refused));
	for (unsigned int i = 1; i < MBOX_E_MAX; i++)
		json_object_set_new(refused, mbox_status_name(i), json_integer((json_int_t)mn->refused[i]));
	o = json_pack("{s:b,s:o,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:i,s:o,s:o}",
		      "enabled", mn->o.enabled, "anchors", anchors_json(mn), "anchors_from",
		      mn->anchors_from, "messages", (json_int_t)s.msgs, "bytes",
		      (json_int_t)s.bytes, "recipients", (json_int_t)s.recipients, "inbox",
		      (json_int_t)s.inbox, "put_total", (json_int_t)s.put_total, "dup_total",
		      (json_int_t)s.dup_total, "acked_total", (json_int_t)s.acked_total,
		      "expired_total", (json_int_t)s.expired_total, "direct_total",
		      (json_int_t)mn->served[3], "fetch_served_total", (json_int_t)mn->served[1],
		      "fetched_total", (json_int_t)mn->fetched_total, "fetch_runs",
		      (json_int_t)mn->fetch_runs, "fetch_errors", (json_int_t)mn->fetch_errors,
		      "senders_tracked", (int)tracked, "refused", refused, "senders", senders);
	json_object_set_new(o, "announces", json_integer((json_int_t)mn->announces));
	json_object_set_new(o, "announces_stored", json_integer((json_int_t)mn->announces_stored));
	pthread_mutex_unlock(&mn->mu);
	ctl_resp_json(resp, 200, o);
}

static void metric(FILE *out, const char *name, const char *type, const char *help,
		   uint64_t v)
{
	fprintf(out, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
		(unsigned long long)v);
}

static void metrics(void *arg, FILE *out)
{
	struct mbox_node *mn = arg;
	struct mbox_store_stats s;
	uint64_t refused[MBOX_E_MAX], fetched, taken;

	mbox_store_stats(mn->ms, &s);
	pthread_mutex_lock(&mn->mu);
	memcpy(refused, mn->refused, sizeof(refused));
	fetched = mn->fetched_total;
	taken = mn->taken_total;
	pthread_mutex_unlock(&mn->mu);
	metric(out, "weft_mailbox_messages", "gauge",
	       "Messages this anchor holds for other nodes.", s.msgs);
	metric(out, "weft_mailbox_bytes", "gauge", "Sealed bytes this anchor holds.", s.bytes);
	metric(out, "weft_mailbox_inbox", "gauge", "Messages in this node's inbox.", s.inbox);
	metric(out, "weft_mailbox_acked_total", "counter",
	       "Messages their recipients took from this anchor.", s.acked_total);
	metric(out, "weft_mailbox_fetched_total", "counter",
	       "Messages this node took from its anchors.", fetched);
	metric(out, "weft_mailbox_taken_total", "counter",
	       "Messages of this node's inbox taken by a module above (the mesh).", taken);
	fprintf(out, "# HELP weft_mailbox_refused_total Requests this anchor refused, by reason.\n"
		     "# TYPE weft_mailbox_refused_total counter\n");
	for (unsigned int i = 1; i < MBOX_E_MAX; i++)
		fprintf(out, "weft_mailbox_refused_total{reason=\"%s\"} %llu\n", mbox_status_name(i),
			(unsigned long long)refused[i]);
}

int mbn_ctl_register(struct mbox_node *mn)
{
	struct ctl *c = mn->o.ctl;
	int err = 0;

	err |= ctl_route(c, "POST", "/v1/msg/send", api_send, mn);
	err |= ctl_route(c, "GET", "/v1/msg/inbox", api_inbox, mn);
	err |= ctl_route(c, "GET", "/v1/msg/read/", api_read, mn);
	err |= ctl_route(c, "DELETE", "/v1/msg/", api_rm, mn);
	err |= ctl_route(c, "POST", "/v1/msg/fetch", api_fetch, mn);
	err |= ctl_route(c, "GET", "/v1/mailbox/status", api_status, mn);
	err |= ctl_metrics(c, metrics, mn);
	return err ? -ENOSPC : 0;
}
