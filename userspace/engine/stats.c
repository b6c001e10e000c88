// SPDX-License-Identifier: MIT
/* Engine statistics: snapshot, Prometheus lines, JSON and the
 * GET /v1/io/stats control handler. Workers write their counters with
 * relaxed stores (one writer each); readers here use relaxed loads. */
#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "engine/engine_int.h"
#include "weft/ctl.h"
#include "weft/util.h"

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

int engine_stats_get(const struct engine *eng, unsigned int worker, struct engine_stats *out)
{
	const struct engine_stats *s;
	const uint64_t *src;
	uint64_t *dst;
	size_t i;

	if (!eng || !out || worker >= eng->nworkers)
		return -EINVAL;
	s = &eng->workers[worker]->st;
	src = (const uint64_t *)s;
	dst = (uint64_t *)out;
	/* Every field is a uint64_t counter. */
	for (i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
	return 0;
}

_Static_assert(sizeof(struct engine_stats) % sizeof(uint64_t) == 0, "stats are u64 counters");

/* One table drives JSON and Prometheus so both stay in step. */
struct field {
	const char *name;
	size_t off;
	const char *help;
};

#define IOF(f, h) { #f, offsetof(struct engine_stats, io.f), h }
#define ENF(f, h) { #f, offsetof(struct engine_stats, f), h }

static const struct field fields[] = {
	IOF(rx_pkts, "UDP datagrams received"),
	IOF(rx_bytes, "UDP payload bytes received"),
	IOF(tx_pkts, "UDP datagrams sent"),
	IOF(tx_bytes, "UDP payload bytes sent"),
	IOF(rx_batches, "non-empty receive batches"),
	IOF(tx_batches, "transmit batches"),
	IOF(rx_ring_full, "receive buffer ring or fill ring starved"),
	IOF(tx_ring_full, "transmit ring or socket buffer full"),
	IOF(rx_drop_malformed, "received frames dropped as malformed or truncated"),
	IOF(rx_drop_not_ours, "received frames for a port not served"),
	IOF(tx_drop_nobuf, "datagrams dropped for lack of a tx frame"),
	IOF(tx_drop_error, "datagrams the kernel refused"),
	IOF(tx_kernel, "datagrams handed to the kernel path (unresolved neighbour)"),
	IOF(rx_kernel, "datagrams received on the kernel-path socket"),
	IOF(tx_gso_sends, "sends carrying UDP_SEGMENT"),
	IOF(rx_gro_bufs, "coalesced receives split by gso_size"),
	IOF(neigh_updates, "neighbour and route change events applied"),
	IOF(zerocopy, "AF_XDP socket bound in zero-copy mode"),
	IOF(rx_bufs, "io_uring receive buffers provided, each resident"),
	IOF(rx_ring_bytes, "bytes the io_uring receive buffers hold resident (rx_bufs times their size)"),
	IOF(xsk_rx_dropped, "AF_XDP: frames dropped with no fill-ring buffer (or too large)"),
	IOF(xsk_rx_invalid_descs, "AF_XDP: invalid fill-ring descriptors"),
	IOF(xsk_tx_invalid_descs, "AF_XDP: invalid tx descriptors"),
	IOF(xsk_rx_ring_full, "AF_XDP: frames dropped with the rx ring full"),
	IOF(xsk_rx_fill_ring_empty, "AF_XDP: times the fill ring was empty"),
	IOF(xsk_tx_ring_empty, "AF_XDP: times the tx ring was empty"),
	ENF(drop_filter, "datagrams dropped by the pre-filter (policer)"),
	ENF(drop_no_handler, "datagrams for a port without handler"),
	ENF(cmds, "commands run"),
	ENF(cmd_full, "commands refused with a full queue"),
	ENF(timers, "timers fired"),
	ENF(loops, "worker loop iterations"),
};

static uint64_t fval(const struct engine_stats *s, const struct field *f)
{
	uint64_t v;

	memcpy(&v, (const uint8_t *)s + f->off, sizeof(v));
	return v;
}

static const char *const bucket_names[ENGINE_BATCH_BUCKETS] = {
	"1", "2-3", "4-7", "8-15", "16-31", "32-63", "64-127", "128+",
};

static json_t *one_json(const struct engine_stats *s)
{
	json_t *o = json_object(), *h = json_object();
	size_t i;

	if (!o || !h) {
		json_decref(o);
		json_decref(h);
		return NULL;
	}
	for (i = 0; i < WEFT_ARRAY_SIZE(fields); i++)
		json_object_set_new(o, fields[i].name, json_integer((json_int_t)fval(s, &fields[i])));
	for (i = 0; i < ENGINE_BATCH_BUCKETS; i++)
		json_object_set_new(h, bucket_names[i], json_integer((json_int_t)s->rx_batch_hist[i]));
	json_object_set_new(o, "rx_batch_hist", h);
	json_object_set_new(o, "rx_batch_avg",
			    json_real(s->io.rx_batches ? (double)s->io.rx_pkts / (double)s->io.rx_batches
						       : 0.0));
	return o;
}

static void sum_into(struct engine_stats *tot, const struct engine_stats *s)
{
	const uint64_t *a = (const uint64_t *)s;
	uint64_t *t = (uint64_t *)tot;
	size_t i;

	for (i = 0; i < sizeof(*s) / sizeof(uint64_t); i++)
		t[i] += a[i];
}

json_t *engine_stats_json(const struct engine *eng)
{
	struct engine_stats s, tot;
	json_t *root, *arr;
	unsigned int i;

	if (!eng)
		return NULL;
	root = json_object();
	arr = json_array();
	if (!root || !arr) {
		json_decref(root);
		json_decref(arr);
		return NULL;
	}
	memset(&tot, 0, sizeof(tot));
	json_object_set_new(root, "mode", json_string(io_mode_name(eng->opts.mode)));
	json_object_set_new(root, "running",
			    json_boolean(__atomic_load_n(&eng->running, __ATOMIC_ACQUIRE)));
	for (i = 0; i < eng->nworkers; i++) {
		json_t *o;

		engine_stats_get(eng, i, &s);
		sum_into(&tot, &s);
		o = one_json(&s);
		if (o) {
			json_object_set_new(o, "worker", json_integer(i));
			json_array_append_new(arr, o);
		}
	}
	json_object_set_new(root, "workers", arr);
	json_object_set_new(root, "total", one_json(&tot));
	return root;
}

void engine_metrics(void *arg, FILE *out)
{
	const struct engine *eng = arg;
	struct engine_stats s[ENGINE_MAX_WORKERS];
	unsigned int i, b;
	size_t f;

	if (!eng || !out)
		return;
	for (i = 0; i < eng->nworkers; i++)
		engine_stats_get(eng, i, &s[i]);
	for (f = 0; f < WEFT_ARRAY_SIZE(fields); f++) {
		/* The AF_XDP socket's statistics are per queue (= worker). */
		if (!strncmp(fields[f].name, "xsk_", 4)) {
			if (eng->opts.mode != IO_MODE_XDP)
				continue;
			fprintf(out, "# HELP weft_io_%s_total %s\n", fields[f].name, fields[f].help);
			fprintf(out, "# TYPE weft_io_%s_total counter\n", fields[f].name);
			for (i = 0; i < eng->nworkers; i++)
				fprintf(out, "weft_io_%s_total{queue=\"%u\"} %" PRIu64 "\n",
					fields[f].name, i, fval(&s[i], &fields[f]));
			continue;
		}
		/* counters end in _total; zerocopy, rx_bufs and rx_ring_bytes are gauges */
		const char *sfx = strcmp(fields[f].name, "zerocopy") && strcmp(fields[f].name, "rx_bufs") &&
					  strcmp(fields[f].name, "rx_ring_bytes")
				      ? "_total"
				      : "";

		fprintf(out, "# HELP weft_io_%s%s %s\n", fields[f].name, sfx, fields[f].help);
		fprintf(out, "# TYPE weft_io_%s%s %s\n", fields[f].name, sfx,
			sfx[0] ? "counter" : "gauge");
		for (i = 0; i < eng->nworkers; i++)
			fprintf(out, "weft_io_%s%s{mode=\"%s\",worker=\"%u\"} %" PRIu64 "\n",
				fields[f].name, sfx, io_mode_name(eng->opts.mode), i,
				fval(&s[i], &fields[f]));
	}
	fprintf(out, "# HELP weft_io_rx_batches_by_size_total Receive batches by size bucket.\n");
	fprintf(out, "# TYPE weft_io_rx_batches_by_size_total counter\n");
	for (i = 0; i < eng->nworkers; i++)
		for (b = 0; b < ENGINE_BATCH_BUCKETS; b++)
			fprintf(out, "weft_io_rx_batches_by_size_total{worker=\"%u\",size=\"%s\"} %" PRIu64 "\n",
				i, bucket_names[b], s[i].rx_batch_hist[b]);
}

void engine_ctl_stats(void *arg, const struct ctl_req *req, struct ctl_resp *resp)
{
	json_t *j = engine_stats_json(arg);

	if (!j) {
		resp->status = 500;
		resp->json = json_pack("{s:{s:s,s:s}}", "error", "code", "internal", "message",
				       "out of memory");
		return;
	}
	resp->status = 200;
	resp->json = j;
}
