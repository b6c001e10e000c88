// SPDX-License-Identifier: MIT
/*
 * The seed host's side of content on complete nodes in this process, on a
 * simulated network (docs/CONTENT.md "Super-seeding", "Fair, capped
 * serving"):
 *
 * test_superseed: a seed adds a new 16 MiB file (64 chunks) and is
 * super-seeding it (the default for new content); four downloaders are
 * told about the seed only (no DHT) and learn each other from its PEERS
 * answers. Every download finishes and verifies chunk by chunk (the bytes
 * compared too); the seed offered every chunk once before offering any a
 * second time (offered_once reaches 64 while at most 64 offers were made
 * in the first round) and sent at most 1.5x the file: the downloaders
 * traded the rest. The seed's GET /v1/content/peers lists the downloaders
 * with what it sent each.
 *
 * test_superseed_unreachable: the same with downloaders that cannot reach
 * each other (below).
 *
 * test_limits: POST /v1/content/limits sets the caps live, GET reads them
 * back, bad bodies are refused with 400 and change nothing.
 *
 * test_queue_full: a node whose QUIC send queue is full puts chunk
 * requests back unread, and reads each chunk it serves once (below).
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "weft/util.h"
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include <arpa/inet.h>
#include <stdatomic.h>

#include "content/content_node_int.h"
#include "node/node_int.h"
#include "simnode.h"
#include "testutil.h"
#include "weft/content_node.h"
#include "weft/quic_node.h"
#include "weft/simnet.h"

#define FILE_LEN (16u << 20) /* 64 chunks of 256 KiB */
#define NCHUNKS 64
#define NDL 4

static struct simnode Q[NDL + 2]; /* 1: seed, 2..: downloaders */
static struct simnet *SN;

struct pjob {
	struct simnode *x;
	char path[64];
};

static int pjob_done(void *arg)
{
	struct pjob *q = arg;
	json_t *o = simnode_ok(q->x, "GET", q->path, NULL);
	int ok = json_is_true(json_object_get(o, "done"));

	json_decref(o);
	return ok;
}

static int all_done(void *arg)
{
	struct pjob *q = arg;

	for (int i = 0; i < NDL; i++)
		if (!pjob_done(&q[i]))
			return 0;
	return 1;
}

static void check(struct pjob *q, const char *out, const char *id, const uint8_t *data)
{
	json_t *j = simnode_ok(q->x, "GET", q->path, NULL);
	char path[700];
	uint8_t *back = malloc(FILE_LEN);
	int fd;

	assert_non_null(back);
	if (strcmp(json_string_value(json_object_get(j, "state")), "done"))
		fail_msg("download failed: %s", json_dumps(j, JSON_COMPACT));
	json_decref(j);
	snprintf(path, sizeof(path), "%s/%s", out, id);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, back, FILE_LEN), FILE_LEN);
	close(fd);
	assert_memory_equal(back, data, FILE_LEN);
	free(back);
}

/* The seed s1 (with sets when given) and NDL downloaders d1..dNDL on LAN
 * links (d1 with set1 and tweak1 when given), the seed holding a 16 MiB
 * file of seed bytes (data) added from dir: its content id into id. */
static void world_up(unsigned int seed, const char *const *sets, const char *const *set1,
		     void (*tweak1)(struct weft_config *), char *dir, uint8_t *data, char id[65])
{
	struct simnet_opts so = {.seed = seed, .clock = SIMNET_CLOCK_REAL};
	static const char *const base[] = {"quic.idle_timeout_ms=3000", NULL};
	struct simnet_link lan = {.latency_us = 300, .jitter_us = 100};
	char path[700], name[8], ip[32];
	json_t *o;
	size_t i;

	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, sets ? sets : base, NULL, NULL);
	for (i = 0; i < NDL; i++) {
		snprintf(name, sizeof(name), "d%zu", i + 1);
		snprintf(ip, sizeof(ip), "198.51.100.%zu", i + 2);
		simnode_new(&Q[i + 2], SN, name, ip, NULL, i == 0 && set1 ? set1 : base,
			    i == 0 ? tweak1 : NULL, NULL);
	}
	for (i = 1; i <= NDL + 1; i++)
		simnet_host_set_link(Q[i].host, &lan);
	tu_fill(data, FILE_LEN, seed);
	assert_int_equal(tu_write(dir, "file.bin", data, FILE_LEN, 0600), 0);
	snprintf(path, sizeof(path), "%s/file.bin", dir);
	o = simnode_ok(&Q[1], "POST", "/v1/content/add", json_pack("{s:[s]}", "paths", path));
	snprintf(id, 65, "%s",
		 json_string_value(
		     json_object_get(json_array_get(json_object_get(o, "items"), 0), "id")));
	json_decref(o);
}

static void world_down(void)
{
	for (size_t i = NDL + 1; i >= 1; i--)
		simnode_free(&Q[i]);
	simnet_free(SN);
}

/* q: x fetches id into out (made here) from the node from only. */
static void get_from(struct pjob *q, struct simnode *x, const char *id, const char *out,
		     const struct simnode *from)
{
	assert_int_equal(mkdir(out, 0700), 0);
	q->x = x;
	simnode_get_from(x, id, out, from->ip, q->path, sizeof(q->path));
}

static void test_superseed(void **state)
{
	char *dir = tu_tmpdir(), out[NDL][512], id[65];
	uint8_t *data = malloc(FILE_LEN);
	struct pjob d[NDL];
	json_t *o, *ss, *peers;
	json_int_t served, offered;
	uint64_t t0;
	size_t i;

	(void)state;
	assert_non_null(dir);
	assert_non_null(data);
	world_up(29, NULL, NULL, NULL, dir, data, id);
	/* new content: super-seeded */
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	ss = json_object_get(o, "superseed");
	assert_int_equal(json_array_size(ss), 1);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ss, 0), "id")), id);
	json_decref(o);

	t0 = util_now_ms();
	for (i = 0; i < NDL; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/d%zu", dir, i + 1);
		get_from(&d[i], &Q[i + 2], id, out[i], &Q[1]);
	}
	assert_int_equal(simnode_wait(all_done, d, 120000), 0);
	t0 = util_now_ms() - t0;
	for (i = 0; i < NDL; i++)
		check(&d[i], out[i], id, data);

	served = simnode_get_int(&Q[1], "/v1/content/stats", "served_chunks", NULL);
	/* the peers' view is each worker's copy, taken once a second: a
	 * distribution done within the first second (715 ms in a CI run) may
	 * not be in it yet */
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	for (i = 0; i < 30 && !json_array_size(json_object_get(o, "peers")); i++) {
		json_decref(o);
		usleep(100 * 1000);
		o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	}
	ss = json_array_get(json_object_get(o, "superseed"), 0);
	offered = json_integer_value(json_object_get(ss, "offered_once"));
	peers = json_object_get(o, "peers");
	print_message("super-seeding: the seed sent %lld chunks for %d downloaders of %d "
		      "chunks (%.2fx the file); %lld chunks offered; %zu peers listed; all done "
		      "in %llu ms\n",
		      (long long)served, NDL, NCHUNKS, (double)served / NCHUNKS,
		      (long long)offered, json_array_size(peers), (unsigned long long)t0);
	assert_int_equal(offered, NCHUNKS);
	assert_true(served <= NCHUNKS * 3 / 2);
	assert_true(json_array_size(peers) >= 1);
	json_decref(o);

	world_down();
	free(data);
	tu_rmrf_free(dir);
}

/* The NAT'd swarm's stall (docs/LAB.md "Findings" 9), made plain: the
 * downloaders learn each other from the seed's PEERS answers but cannot
 * reach each other (every datagram between two of them lost), so a chunk
 * offered to one never spreads. Each, with nothing to fetch from anyone,
 * refreshes with HAVE_IDLE, and the seed shows it its true bitmap once it
 * has had nothing new to offer it for 3 s (not 20 s, as for a downloader
 * still fetching from others). Every download finishes and verifies. */
static void test_superseed_unreachable(void **state)
{
	char *dir = tu_tmpdir(), out[NDL][512], id[65];
	uint8_t *data = malloc(FILE_LEN);
	struct simnet_link cut = {.loss_ppm = 1000000};
	struct pjob d[NDL];
	json_int_t idle_told = 0, idle_true;
	json_t *o;
	size_t i, k;

	(void)state;
	assert_non_null(dir);
	assert_non_null(data);
	world_up(31, NULL, NULL, NULL, dir, data, id);
	for (i = 2; i <= NDL + 1; i++)
		for (k = i + 1; k <= NDL + 1; k++) {
			struct io_addr a, b;

			simnet_host_addr(Q[i].host, &a);
			simnet_host_addr(Q[k].host, &b);
			assert_int_equal(simnet_link_set(SN, &a, &b, &cut), 0);
		}
	for (i = 0; i < NDL; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/d%zu", dir, i + 1);
		get_from(&d[i], &Q[i + 2], id, out[i], &Q[1]);
	}
	assert_int_equal(simnode_wait(all_done, d, 120000), 0);
	for (i = 0; i < NDL; i++) {
		check(&d[i], out[i], id, data);
		idle_told += simnode_get_int(d[i].x, d[i].path, "idle_told", NULL);
	}
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	idle_true = json_integer_value(json_object_get(
	    json_array_get(json_object_get(o, "superseed"), 0), "idle_true_bitmaps"));
	json_decref(o);
	print_message("unreachable downloaders: %lld HAVE_IDLE refreshes, %lld true bitmaps "
		      "answered to them\n",
		      (long long)idle_told, (long long)idle_true);
	assert_true(idle_told >= 1);
	assert_true(idle_true >= 1);

	world_down();
	free(data);
	tu_rmrf_free(dir);
}

static void test_limits(void **state)
{
	struct simnet_opts so = {.seed = 30, .clock = SIMNET_CLOCK_REAL};
	static const char *const set[] = {"quic.idle_timeout_ms=3000",
					  "content.peer_upload_rate=1000000", NULL};
	json_t *o;

	(void)state;
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, set, NULL, NULL);
	/* from the configuration */
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "peer_rate", NULL), 1000000);
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "upload_rate", NULL), 0);
	/* live */
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits",
		       json_pack("{s:I,s:b}", "upload_rate", (json_int_t)12500000, "lan_capped", 1));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 12500000);
	assert_true(json_is_true(json_object_get(o, "lan_capped")));
	assert_int_equal(json_integer_value(json_object_get(o, "peer_rate")), 1000000);
	json_decref(o);
	/* refused, nothing changed */
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:i}", "upload_rate", -1), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:s}", "upload_rate", "fast"), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:i}", "nonsense", 1), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("[i]", 1), NULL),
			 400);
	assert_int_equal(simnode_get_int(&Q[1], "/v1/content/limits", "upload_rate", NULL),
			 12500000);
	/* the cap in /metrics-style view of GET /v1/content/peers */
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "limits"),
							    "upload_rate")),
			 12500000);
	assert_int_equal(json_array_size(json_object_get(o, "upload_history")), 300);
	json_decref(o);
	/* the automatic cap: on live (under the fixed cap, kept), its status
	 * shown; a non-boolean refused with nothing changed; off again */
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits", json_pack("{s:b}", "upload_auto", 1));
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 12500000);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "auto"), "state")),
			    "free");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(o, "auto"), "cap")), 0);
	json_decref(o);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:s}", "upload_auto", "yes"), NULL),
			 400);
	assert_int_equal(simnode_ctl(&Q[1], "POST", "/v1/content/limits",
				     json_pack("{s:b,s:i}", "upload_auto", 0, "upload_rate", -5), NULL),
			 400);
	o = simnode_ok(&Q[1], "GET", "/v1/content/limits", NULL);
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	json_decref(o);
	o = simnode_ok(&Q[1], "POST", "/v1/content/limits", json_pack("{s:b}", "upload_auto", 0));
	assert_true(json_is_false(json_object_get(o, "upload_auto")));
	json_decref(o);
	simnode_free(&Q[1]);
	simnet_free(SN);
}

/* content.upload_auto in the configuration turns the automatic cap on. */
static void test_limits_auto_config(void **state)
{
	struct simnet_opts so = {.seed = 31, .clock = SIMNET_CLOCK_REAL};
	static const char *const set[] = {"content.upload_auto=true", NULL};
	json_t *o;

	(void)state;
	assert_int_equal(simnet_new(&SN, &so), 0);
	simnode_new(&Q[1], SN, "s1", "198.51.100.1", NULL, set, NULL, NULL);
	o = simnode_ok(&Q[1], "GET", "/v1/content/limits", NULL);
	assert_true(json_is_true(json_object_get(o, "upload_auto")));
	assert_int_equal(json_integer_value(json_object_get(o, "upload_rate")), 0);
	json_decref(o);
	simnode_free(&Q[1]);
	simnet_free(SN);
}

/* The chunk reads of x: hashed, trusted and from memory. */
static double chunk_reads(struct simnode *x)
{
	return simnode_metric(x, "weft_content_chunk_reads_total{check=\"hashed\"}") +
	       simnode_metric(x, "weft_content_chunk_reads_total{check=\"trusted\"}") +
	       simnode_metric(x, "weft_content_chunk_reads_total{check=\"memory\"}");
}

/*
 * test_queue_full: a node whose QUIC send queue (quic.max_queued) is
 * full puts a chunk request back unread. d1 downloads a 16 MiB file from
 * the seed and keeps every chunk in memory (content.hot_chunks=64); then
 * three downloaders told of d1 only fetch it, d1's queue taking 1 MiB (four
 * chunk answers; they also trade among themselves, told of each other in
 * its PEERS answers): its pump, answering up to 16 requests a pass, fills it
 * again and again. Every copy verifies; d1 counted requests put back
 * (queue_full); and it read no more chunks than it served (a few more at
 * most: a read whose write still finds the queue full, another thread
 * having queued first), where a chunk read and then refused by the full
 * queue was read again at every retry (every 1 ms).
 */
static void test_queue_full(void **state)
{
	static const char *const mid[] = {"quic.idle_timeout_ms=3000", "content.hot_chunks=64",
					  "quic.max_queued=1048576", NULL};
	char *dir = tu_tmpdir(), out[NDL][512], id[65];
	uint8_t *data = malloc(FILE_LEN);
	struct pjob d[NDL];
	double reads0, reads, full;
	json_int_t served0, served;
	size_t i;

	(void)state;
	assert_non_null(dir);
	assert_non_null(data);
	world_up(33, NULL, mid, NULL, dir, data, id);

	snprintf(out[0], sizeof(out[0]), "%s/d1", dir);
	get_from(&d[0], &Q[2], id, out[0], &Q[1]);
	assert_int_equal(simnode_wait(pjob_done, &d[0], 120000), 0);
	check(&d[0], out[0], id, data);

	reads0 = chunk_reads(&Q[2]);
	served0 = simnode_get_int(&Q[2], "/v1/content/stats", "served_chunks", NULL);
	for (i = 1; i < NDL; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/d%zu", dir, i + 1);
		get_from(&d[i], &Q[i + 2], id, out[i], &Q[2]);
	}
	assert_int_equal(simnode_wait(all_done, d, 120000), 0); /* d[0]: done above */
	for (i = 1; i < NDL; i++)
		check(&d[i], out[i], id, data);

	served = simnode_get_int(&Q[2], "/v1/content/stats", "served_chunks", NULL) - served0;
	full = (double)simnode_get_int(&Q[2], "/v1/content/stats", "queue_full", NULL);
	reads = chunk_reads(&Q[2]) - reads0;
	print_message("queue full: d1 served %lld chunks to %d downloaders, read %.0f, put %.0f "
		      "requests back (its send queue full), metric %.0f\n",
		      (long long)served, NDL - 1, reads, full,
		      simnode_metric(&Q[2], "weft_content_serve_queue_full_total"));
	assert_true(served >= NCHUNKS); /* the others trade too (PEERS answers) */
	assert_true(full > 0);
	assert_true(simnode_metric(&Q[2], "weft_content_serve_queue_full_total") == full);
	assert_true(reads >= served);
	assert_true(reads <= served + 4);

	world_down();
	free(data);
	tu_rmrf_free(dir);
}

/* d1 of test_peer_held: its QUIC receive window (512 KiB) is never
 * given back. */
static void hostile(struct weft_config *cfg)
{
	cfg->test.quic_hold_credit = 512u << 10;
}

#define PEER_HELD (1u << 20)
#define RAW_STREAMS 40 /* the raw requester's fetch streams... */
#define RAW_PER_STREAM 2 /* ...and chunk requests on each: 80, 20 MiB of answers */

/* A requester made of d1's QUIC node alone: it asks and never reads. */
struct raw {
	atomic_int connected, closed;
	atomic_llong got; /* answer bytes that reached it */
};

static void raw_connected(void *arg, uint64_t conn, int err, const uint8_t *key)
{
	struct raw *r = arg;

	(void)conn;
	(void)key;
	atomic_store(&r->connected, err ? -1 : 1);
}

static void raw_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *data, size_t len,
		     int fin)
{
	struct raw *r = arg;

	(void)conn;
	(void)sid;
	(void)data;
	(void)fin;
	atomic_fetch_add(&r->got, (long long)len);
}

static void raw_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct raw *r = arg;

	(void)conn;
	(void)info;
	atomic_store(&r->closed, 1);
}

static int raw_up(void *arg)
{
	return atomic_load(&((struct raw *)arg)->connected) != 0;
}

static int raw_gone(void *arg)
{
	return atomic_load(&((struct raw *)arg)->closed);
}

/* d1 dials the seed and asks for every chunk of id on RAW_STREAMS fetch
 * streams, RAW_PER_STREAM requests back to back on each (the first 16
 * chunks twice: more than the seed queues per peer, 64). */
static void raw_ask(struct raw *r, const char *hex_id)
{
	static const struct quic_node_handler h = {
	    .connected = raw_connected, .stream_data = raw_data, .closed = raw_closed};
	struct quic_node *qn = Q[2].node->quic;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(4433)};
	uint8_t req[RAW_PER_STREAM * CN_REQ_MAX];
	struct cn_wreq q = {.op = CONTENT_OP_CHUNK};
	uint64_t conn;
	size_t len;

	assert_int_equal(sodium_hex2bin(q.id, sizeof(q.id), hex_id, 64, NULL, NULL, NULL), 0);
	assert_int_equal(inet_pton(AF_INET, Q[1].ip, &sa.sin_addr), 1);
	assert_int_equal(quic_node_connect_addr(qn, (struct sockaddr *)&sa, sizeof(sa), NULL, &h, r,
						&conn),
			 0);
	assert_int_equal(simnode_wait(raw_up, r, 10000), 0);
	assert_int_equal(atomic_load(&r->connected), 1);
	for (unsigned int s = 0; s < RAW_STREAMS; s++) {
		len = 0;
		for (unsigned int k = 0; k < RAW_PER_STREAM; k++) {
			q.index = (s * RAW_PER_STREAM + k) % NCHUNKS;
			len += (size_t)cn_req_encode(&q, req + len);
		}
		assert_int_equal(quic_node_stream_open_write(qn, conn, CONTENT_ST_FETCH, s, req, len,
							     0),
				 0);
	}
}

struct held_seen {
	json_int_t held; /* what the seed says d1 holds, at its largest */
	unsigned int looks;
};

/* The seed passed d1 over, and has listed what d1 holds (its peers
 * view, refreshed each second) a few times. */
static int held_seen(void *arg)
{
	struct held_seen *h = arg;
	json_t *o, *p;
	size_t i;

	if (simnode_get_int(&Q[1], "/v1/content/stats", "peer_full", NULL) == 0)
		return 0;
	o = simnode_ok(&Q[1], "GET", "/v1/content/peers", NULL);
	json_array_foreach(json_object_get(o, "peers"), i, p)
	{
		json_int_t held = json_integer_value(json_object_get(p, "held_bytes"));
		const char *a = json_string_value(json_object_get(p, "addr"));

		if (!a || strncmp(a, Q[2].ip, strlen(Q[2].ip)) || a[strlen(Q[2].ip)] != ':')
			continue; /* not d1's */
		if (held > h->held)
			h->held = held;
		if (held)
			h->looks++;
	}
	json_decref(o);
	return h->looks >= 3;
}

/*
 * test_peer_held: a requester that asks and never takes its answers
 * (docs/CONTENT.md "Answers a peer holds"). d1, a raw QUIC client whose
 * receive window (512 KiB) is never given back, asks the seed for 80
 * chunks at once (40 fetch streams, two requests each): 20 MiB of
 * answers, of which the seed made and held all it queued before the
 * limit. Limited to 1 MiB held per connection (content.serve_peer_held),
 * the seed makes about four answers for it and passes it over
 * (peer_full), resets the streams of the requests its queue (64) has no
 * room for instead of answering them BUSY (busy), lists what d1 holds in
 * GET /v1/content/peers (never more than the limit and one answer),
 * serves d2 and d3 the whole file meanwhile (both verify), and closes
 * d1's connection once its answers have not moved for
 * content.serve_stall_s (5 s).
 */
static void test_peer_held(void **state)
{
	static const char *const seed[] = {"quic.idle_timeout_ms=3000",
					   "content.serve_peer_held=1048576",
					   "content.serve_stall_s=5", NULL};
	/* d1 keeps its connection alive, as a requester that holds answers
	 * on purpose would: only the stall limit closes it */
	static const char *const d1[] = {"quic.idle_timeout_ms=3000", "quic.keepalive_ms=1000",
					 NULL};
	char *dir = tu_tmpdir(), out[NDL][512], id[65];
	uint8_t *data = malloc(FILE_LEN);
	struct held_seen h = {0};
	struct raw r = {0};
	struct pjob d[NDL];
	json_int_t full;
	size_t i;

	(void)state;
	assert_non_null(dir);
	assert_non_null(data);
	world_up(37, seed, d1, hostile, dir, data, id);

	raw_ask(&r, id);
	if (simnode_wait(held_seen, &h, 30000)) {
		simnode_print_metrics(&Q[1], "weft_content_serve");
		fail_msg("the seed never passed d1 over (held %lld, %u looks, d1 got %lld bytes)",
			 (long long)h.held, h.looks, (long long)atomic_load(&r.got));
	}
	for (i = 1; i < 3; i++) {
		snprintf(out[i], sizeof(out[i]), "%s/d%zu", dir, i + 1);
		get_from(&d[i], &Q[i + 2], id, out[i], &Q[1]);
	}
	assert_int_equal(simnode_wait(pjob_done, &d[1], 120000), 0);
	assert_int_equal(simnode_wait(pjob_done, &d[2], 120000), 0);
	for (i = 1; i < 3; i++)
		check(&d[i], out[i], id, data);
	assert_int_equal(simnode_wait(raw_gone, &r, 30000), 0);

	full = simnode_get_int(&Q[1], "/v1/content/stats", "peer_full", NULL);
	print_message("peer held: d1 held at most %lld bytes of the seed's answers (limit %u) and "
		      "took %lld; passed over %lld times, %lld requests refused; d2 and d3 done; "
		      "d1's connection closed (%lld)\n",
		      (long long)h.held, PEER_HELD, (long long)atomic_load(&r.got), (long long)full,
		      (long long)simnode_get_int(&Q[1], "/v1/content/stats", "busy", NULL),
		      (long long)simnode_get_int(&Q[1], "/v1/content/stats", "stalled_closed",
						 NULL));
	assert_true(h.held >= PEER_HELD);
	assert_true(h.held <= PEER_HELD + CN_ANS_HEAD + 256 * 1024);
	assert_true(atomic_load(&r.got) <= 512 * 1024);
	/* 80 asked, 64 queued, a few served before the last came */
	assert_true(simnode_get_int(&Q[1], "/v1/content/stats", "busy", NULL) >= 8);
	assert_true(simnode_get_int(&Q[1], "/v1/content/stats", "stalled_closed", NULL) >= 1);
	assert_true(simnode_metric(&Q[1], "weft_content_serve_peer_full_total") >= (double)full);
	assert_true(simnode_metric(&Q[1], "weft_content_serve_stalled_total") >= 1);

	world_down();
	free(data);
	tu_rmrf_free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_superseed),  cmocka_unit_test(test_superseed_unreachable),
	    cmocka_unit_test(test_limits),     cmocka_unit_test(test_limits_auto_config),
	    cmocka_unit_test(test_queue_full), cmocka_unit_test(test_peer_held),
	};

	if (sodium_init() < 0)
		return 1;
	return cmocka_run_group_tests_name("sim_content_serve", tests, NULL, NULL);
}
