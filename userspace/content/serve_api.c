// SPDX-License-Identifier: MIT
/*
 * The seed host's control API and metrics (docs/CONTROL_API.md):
 *   GET/POST /v1/content/limits   upload caps and the super-seeding window, live
 *   GET      /v1/content/peers    per-peer upload rate, queue depth, score;
 *                                 the node's upload history; super-seeded content
 * and the serving lines of /metrics (requester faults and bans, queued
 * requests, the caps). The per-peer view is each worker's copy, refreshed
 * every second by the worker (serve.c, tick): no worker is stopped or
 * locked for it beyond one short copy a second.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/chunkbuf.h"
#include "content/content_node_int.h"
#include "content/sched.h"
#include "weft/ctl.h"
#include "weft/quic_node.h"
#include "weft/util.h"

static void auto_status(struct content_node *cn, struct cn_upauto_status *st)
{
	pthread_mutex_lock(&cn->auto_mu);
	*st = cn->auto_st;
	pthread_mutex_unlock(&cn->auto_mu);
}

static json_t *limits_json(struct content_node *cn)
{
	struct cn_upauto_status st;

	auto_status(cn, &st);
	return json_pack("{s:I,s:I,s:I,s:b,s:I,s:b,s:b,s:{s:s,s:I,s:I,s:f,s:i,s:I,s:I,s:I,s:I}}",
			 "upload_rate", (json_int_t)atomic_load(&cn->lim_up), "peer_rate",
			 (json_int_t)atomic_load(&cn->lim_peer), "lan_peer_rate",
			 (json_int_t)atomic_load(&cn->lim_lan), "lan_capped",
			 atomic_load(&cn->lim_lan_capped), "superseed_s",
			 (json_int_t)atomic_load(&cn->superseed_s), "upload_auto",
			 atomic_load(&cn->lim_auto), "fair_windows",
			 quic_node_fair_windows(cn->quic, -1) == 1, "auto", "state",
			 cn_upauto_state_name(st.state), "cap", (json_int_t)st.cap, "total_bps",
			 (json_int_t)st.total, "jain", st.jain / 1000.0, "served", (int)st.served,
			 "trials", (json_int_t)st.trials, "kept", (json_int_t)st.kept, "given_up",
			 (json_int_t)st.given_up, "probes", (json_int_t)st.probes);
}

/* One rate field: absent (kept), a non-negative integer (bytes/s, 0 =
 * unlimited, at most 1 TB/s). 0 or -EINVAL with the 400 in resp. */
static int rate_field(json_t *body, const char *key, uint64_t *v, uint64_t max,
		      struct ctl_resp *resp)
{
	json_t *x = json_object_get(body, key);

	if (!x)
		return 0;
	if (!json_is_integer(x) || json_integer_value(x) < 0 ||
	    (uint64_t)json_integer_value(x) > max) {
		ctl_resp_error(resp, 400, "bad_request", "%s: an integer from 0 to %llu", key,
			       (unsigned long long)max);
		return -EINVAL;
	}
	*v = (uint64_t)json_integer_value(x);
	return 0;
}

int cn_api_parse_limits(json_t *body, struct content_limits *l, uint64_t *superseed_s,
			int *fair, struct ctl_resp *resp)
{
	static const char *const known[] = {"upload_rate", "peer_rate",	  "lan_peer_rate",
					    "lan_capped",  "superseed_s", "upload_auto",
					    "fair_windows"};
	const uint64_t tb = 1000000000000ull;
	const char *k;
	json_t *x;

	if (!json_is_object(body)) {
		ctl_resp_error(resp, 400, "bad_request", "body: a JSON object");
		return -EINVAL;
	}
	json_object_foreach(body, k, x)
	{
		size_t i;

		for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
			if (!strcmp(k, known[i]))
				break;
		if (i == sizeof(known) / sizeof(known[0])) {
			ctl_resp_error(resp, 400, "bad_request", "unknown field: %.64s", k);
			return -EINVAL;
		}
	}
	if (rate_field(body, "upload_rate", &l->upload_rate, tb, resp) ||
	    rate_field(body, "peer_rate", &l->peer_rate, tb, resp) ||
	    rate_field(body, "lan_peer_rate", &l->lan_peer_rate, tb, resp) ||
	    rate_field(body, "superseed_s", superseed_s, 7 * 86400, resp))
		return -EINVAL;
	x = json_object_get(body, "lan_capped");
	if (x && !json_is_boolean(x)) {
		ctl_resp_error(resp, 400, "bad_request", "lan_capped: true or false");
		return -EINVAL;
	}
	if (x)
		l->lan_capped = json_is_true(x);
	x = json_object_get(body, "upload_auto");
	if (x && !json_is_boolean(x)) {
		ctl_resp_error(resp, 400, "bad_request", "upload_auto: true or false");
		return -EINVAL;
	}
	if (x)
		l->upload_auto = json_is_true(x);
	x = json_object_get(body, "fair_windows");
	if (x && !json_is_boolean(x)) {
		ctl_resp_error(resp, 400, "bad_request", "fair_windows: true or false");
		return -EINVAL;
	}
	if (x)
		*fair = json_is_true(x);
	return 0;
}

static void api_limits(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;

	if (!strcmp(req->method, "POST")) {
		struct content_limits l = {.upload_rate = atomic_load(&cn->lim_up),
					   .peer_rate = atomic_load(&cn->lim_peer),
					   .lan_peer_rate = atomic_load(&cn->lim_lan),
					   .lan_capped = atomic_load(&cn->lim_lan_capped),
					   .upload_auto = atomic_load(&cn->lim_auto)};
		uint64_t ss = atomic_load(&cn->superseed_s);
		int fair = -1;

		if (!req->json) {
			ctl_resp_error(resp, 400, "bad_request", "body: a JSON object");
			return;
		}
		if (cn_api_parse_limits(req->json, &l, &ss, &fair, resp))
			return;
		cn_serve_set_limits(cn, &l);
		atomic_store(&cn->superseed_s, ss);
		if (fair >= 0) /* QUIC's fair windows (docs/QUIC.md), not a content limit */
			quic_node_fair_windows(cn->quic, fair);
	}
	ctl_resp_json(resp, 200, limits_json(cn));
}

static void addr_str(const struct sockaddr_storage *ss, char *out, size_t cap)
{
	char ip[INET6_ADDRSTRLEN] = "";

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
		snprintf(out, cap, "%s:%u", ip, ntohs(a->sin_port));
	} else if (ss->ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
		snprintf(out, cap, "[%s]:%u", ip, ntohs(a->sin6_port));
	} else {
		snprintf(out, cap, "?");
	}
}

/* Bytes/s over the last 5 seconds of the node's upload history, the
 * newest slot included (it holds the bytes up to the last tick), as the
 * per-peer rates count them. */
static uint64_t up_rate(struct content_node *cn, uint64_t *hist, unsigned int nhist)
{
	uint64_t now_s = util_now_ms() / 1000, sum = 0;
	unsigned int newest = CN_UP_HIST, k;

	/* the history is in the workers' clock (monotonic, or the
	 * simulator's): take the newest slot as "now" */
	for (k = 0; k < CN_UP_HIST; k++)
		if (newest == CN_UP_HIST ||
		    atomic_load(&cn->up_hist_at[k]) > atomic_load(&cn->up_hist_at[newest]))
			newest = k;
	now_s = atomic_load(&cn->up_hist_at[newest]);
	for (unsigned int i = 0; i < nhist && i < CN_UP_HIST; i++) {
		uint64_t sec = now_s - i;
		unsigned int s = (unsigned int)(sec % CN_UP_HIST);
		uint64_t v = now_s >= i && atomic_load(&cn->up_hist_at[s]) == sec
				 ? atomic_load(&cn->up_hist[s])
				 : 0;

		hist[nhist - 1 - i] = v; /* oldest first */
		if (i < 5)
			sum += v;
	}
	return sum / 5;
}

static void api_peers(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	struct content_node *cn = arg;
	struct cn_sched_peer_info *pi = calloc(CN_SCHED_PEERS, sizeof(*pi));
	uint64_t hist[CN_UP_HIST], rate;
	json_t *o, *peers = json_array(), *h = json_array();
	unsigned int queued = 0;

	(void)req;
	if (!pi || !peers || !h) {
		free(pi);
		json_decref(peers);
		json_decref(h);
		ctl_resp_errno(resp, -ENOMEM, "peers");
		return;
	}
	for (unsigned int w = 0; w < cn->nwtab; w++) {
		struct cn_wtab *t = cn->wtab[w];
		unsigned int n;

		pthread_mutex_lock(&t->snap_mu);
		n = t->nsnap;
		memcpy(pi, t->snap_pub, n * sizeof(*pi));
		pthread_mutex_unlock(&t->snap_mu);
		for (unsigned int i = 0; i < n; i++) {
			char as[64];

			addr_str(&pi[i].addr, as, sizeof(as));
			queued += pi[i].queued;
			json_array_append_new(
			    peers, json_pack("{s:I,s:s,s:s,s:i,s:i,s:I,s:I,s:I,s:i,s:i,s:I}", "conn",
					     (json_int_t)pi[i].peer, "addr", as, "class",
					     pi[i].cls == CN_CLASS_LAN ? "lan" : "wan", "worker",
					     (int)w, "queued", (int)pi[i].queued, "rate_bps",
					     (json_int_t)pi[i].rate_bps, "sent_bytes",
					     (json_int_t)pi[i].sent_bytes, "served",
					     (json_int_t)pi[i].served, "score", (int)pi[i].score,
					     "streams", (int)pi[i].streams, "held_bytes",
					     (json_int_t)pi[i].held));
		}
	}
	free(pi);
	rate = up_rate(cn, hist, CN_UP_HIST);
	for (unsigned int i = 0; i < CN_UP_HIST; i++)
		json_array_append_new(h, json_integer((json_int_t)hist[i]));
	o = json_pack("{s:o,s:I,s:i,s:o,s:o,s:o}", "peers", peers, "upload_bps", (json_int_t)rate,
		      "queued", (int)queued, "upload_history", h, "limits", limits_json(cn),
		      "superseed", cn_ss_json(cn));
	ctl_resp_json(resp, 200, o);
}

static void metrics(void *arg, FILE *out)
{
	struct content_node *cn = arg;
	struct cn_upauto_status st;
	uint64_t hashed, trusted, memory;
	unsigned int slabs, slots;

	fputs("# HELP weft_content_requester_faults_total Requests a fair downloader does not "
	      "make, by kind (docs/CONTENT.md \"Requester scoring\").\n"
	      "# TYPE weft_content_requester_faults_total counter\n",
	      out);
	for (unsigned int f = 0; f < CN_FAULT_N; f++)
		fprintf(out, "weft_content_requester_faults_total{kind=\"%s\"} %llu\n",
			cn_fault_name(f), (unsigned long long)atomic_load(&cn->faults[f]));
	fprintf(out,
		"# HELP weft_content_requester_bans_total Validated requesters banned for their "
		"score.\n"
		"# TYPE weft_content_requester_bans_total counter\n"
		"weft_content_requester_bans_total %llu\n"
		"# HELP weft_content_requests_for_removed_total Chunk requests for content removed "
		"in the last 10 min, answered NOT_FOUND and not scored.\n"
		"# TYPE weft_content_requests_for_removed_total counter\n"
		"weft_content_requests_for_removed_total %llu\n"
		"# HELP weft_content_upload_limit_bytes The node's upload cap in bytes/s (0: "
		"none).\n"
		"# TYPE weft_content_upload_limit_bytes gauge\n"
		"weft_content_upload_limit_bytes %llu\n",
		(unsigned long long)atomic_load(&cn->requester_bans),
		(unsigned long long)atomic_load(&cn->gone_asked),
		(unsigned long long)atomic_load(&cn->lim_up));
	auto_status(cn, &st);
	fprintf(out,
		"# HELP weft_content_upload_auto The automatic upload cap: its state (0 off or "
		"free, 1 trial, 2 hold; docs/CONTENT.md \"The automatic cap\").\n"
		"# TYPE weft_content_upload_auto gauge\n"
		"weft_content_upload_auto{mode=\"%s\"} %d\n"
		"# HELP weft_content_upload_auto_cap_bytes The automatic cap in bytes/s (0: "
		"none).\n"
		"# TYPE weft_content_upload_auto_cap_bytes gauge\n"
		"weft_content_upload_auto_cap_bytes %llu\n"
		"# HELP weft_content_upload_auto_trials_total Trials of the automatic cap, by "
		"whether it was kept.\n"
		"# TYPE weft_content_upload_auto_trials_total counter\n"
		"weft_content_upload_auto_trials_total{result=\"kept\"} %llu\n"
		"weft_content_upload_auto_trials_total{result=\"given_up\"} %llu\n",
		atomic_load(&cn->lim_auto) ? "on" : "off", (int)st.state,
		(unsigned long long)st.cap, (unsigned long long)st.kept,
		(unsigned long long)st.given_up);
	cstore_read_stats(cn->cs, &hashed, &trusted, &memory);
	fprintf(out,
		"# HELP weft_content_chunk_reads_total Chunks read from the store, by whether "
		"they were hashed again, trusted (verified before, file unchanged: "
		"docs/CONTENT.md \"Chunks verified once\") or copied from the chunks kept in "
		"memory (\"Chunks kept in memory\").\n"
		"# TYPE weft_content_chunk_reads_total counter\n"
		"weft_content_chunk_reads_total{check=\"hashed\"} %llu\n"
		"weft_content_chunk_reads_total{check=\"trusted\"} %llu\n"
		"weft_content_chunk_reads_total{check=\"memory\"} %llu\n"
		"# HELP weft_content_chunk_rereads_total Chunks of complete blobs read a second "
		"time because the first read did not verify (the second decides whether the blob "
		"is marked bad).\n"
		"# TYPE weft_content_chunk_rereads_total counter\n"
		"weft_content_chunk_rereads_total %llu\n"
		"# HELP weft_content_chunk_reads_lent_total Of the chunk reads from memory, those "
		"written to their QUIC stream as they are, lent until acknowledged (no copy: "
		"docs/CONTENT.md \"Chunks kept in memory\").\n"
		"# TYPE weft_content_chunk_reads_lent_total counter\n"
		"weft_content_chunk_reads_lent_total %llu\n",
		(unsigned long long)hashed, (unsigned long long)trusted,
		(unsigned long long)memory, (unsigned long long)cstore_reads_retried(cn->cs),
		(unsigned long long)cstore_reads_lent(cn->cs));
	cn_buf_stats(&slabs, &slots);
	fprintf(out,
		"# HELP weft_content_chunk_buffer_slabs Slabs of chunk buffers mapped on 2 MiB "
		"pages in this process, 4 MiB each (docs/CONTENT.md \"Chunk buffers on 2 MiB "
		"pages\").\n"
		"# TYPE weft_content_chunk_buffer_slabs gauge\n"
		"weft_content_chunk_buffer_slabs %u\n"
		"# HELP weft_content_chunk_buffers_used Chunk buffers in use in those slabs (15 "
		"a slab).\n"
		"# TYPE weft_content_chunk_buffers_used gauge\n"
		"weft_content_chunk_buffers_used %u\n",
		slabs, slots);
}

void cn_serve_routes(struct content_node *cn, struct ctl *ctl)
{
	if (!ctl)
		return;
	ctl_route(ctl, "GET", "/v1/content/limits", api_limits, cn);
	ctl_route(ctl, "POST", "/v1/content/limits", api_limits, cn);
	ctl_route(ctl, "GET", "/v1/content/peers", api_peers, cn);
	ctl_metrics(ctl, metrics, cn);
}
