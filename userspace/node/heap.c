// SPDX-License-Identifier: MIT
/*
 * The process heap as glibc's malloc sees it, for GET /v1/status ("heap")
 * and /metrics (weft_node_heap_bytes), and its trim: every NODE_HEAP_TRIM_TICKS
 * of the node's one-second tick, malloc_trim(0) hands the free pages of
 * every arena (glibc keeps one per thread that allocated, each keeping
 * what it freed) back to the kernel. The soak (docs/LAB.md "Soak") tells a
 * leak (in_use grows) from memory malloc merely kept (free grows, RSS
 * with it) by these figures. Called by node.c on its main thread only.
 */
#include <malloc.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

#include <jansson.h>

#include "node/node_int.h"

static atomic_ullong trims, trims_released, trim_last_ns, trim_total_ns;

static unsigned long long mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000000000ULL + (unsigned long long)ts.tv_nsec;
}

/*
 * No slack when the heap grows (glibc's default pads each growth by 128
 * KiB). calloc() zeroes whatever was top of the heap before the growth,
 * padding included, so with the pad every zeroed table under the mmap
 * threshold (the service node, the resolve cache: 64-127 KiB each) was
 * written in full at start, resident or not used: 284 KiB of an idle
 * weftd's anonymous memory (docs/OPERATIONS.md). The cost is a brk() per
 * growth of the heap. Setting it also fixes the mmap threshold at 128 KiB
 * (glibc's dynamic threshold is off once any of these is set).
 *
 * The trim threshold: glibc gives every thread that allocates an arena
 * (up to 8 per CPU; a weftd uses about 15), and a free that leaves 64 KiB
 * or more at an arena's top hands the top back only when it is over this
 * threshold, 128 KiB by default. malloc_trim(0), our minute's trim, hands
 * back the free chunks of every arena but trims only the main arena's top.
 * So each thread's arena kept up to 128 KiB of pages once written at its
 * top, for good: one part of the soaks' slow creep of anonymous memory,
 * arena after arena reaching that mark (docs/LAB.md "Soak, the
 * thirteenth"). At 16 KiB a top keeps less than the 64 KiB that starts a
 * trim. Cost: a madvise(DONTNEED) (on the main arena
 * a brk) per burst of 64 KiB freed at a top, and the page faults of
 * writing those pages again (a bulk QUIC sender did that per send block
 * until its streams kept spare blocks: quic/stream_buf.c).
 */
void node_heap_setup(void)
{
	(void)mallopt(M_TOP_PAD, 0);
	(void)mallopt(M_TRIM_THRESHOLD, NODE_HEAP_TRIM_THRESHOLD);
}

void node_heap_tick(unsigned long long ticks)
{
	unsigned long long t0;

	if (ticks % NODE_HEAP_TRIM_TICKS)
		return;
	atomic_fetch_add(&trims, 1);
	t0 = mono_ns();
	if (malloc_trim(0))
		atomic_fetch_add(&trims_released, 1);
	t0 = mono_ns() - t0;
	atomic_store(&trim_last_ns, t0);
	atomic_fetch_add(&trim_total_ns, t0);
}

json_t *node_heap_json(void)
{
	struct mallinfo2 mi = mallinfo2();

	return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I}", "in_use", (json_int_t)mi.uordblks, "free",
			 (json_int_t)mi.fordblks, "mmap", (json_int_t)mi.hblkhd, "trims",
			 (json_int_t)atomic_load(&trims), "trims_released",
			 (json_int_t)atomic_load(&trims_released), "trim_last_us",
			 (json_int_t)(atomic_load(&trim_last_ns) / 1000));
}

void node_heap_metrics(FILE *out)
{
	struct mallinfo2 mi = mallinfo2();

	fprintf(out,
		"# HELP weft_node_heap_bytes The malloc heap by state: in use (live allocations), free "
		"(kept by malloc's arenas), mmap (large blocks mapped on their own).\n"
		"# TYPE weft_node_heap_bytes gauge\n"
		"weft_node_heap_bytes{state=\"in_use\"} %zu\nweft_node_heap_bytes{state=\"free\"} %zu\n"
		"weft_node_heap_bytes{state=\"mmap\"} %zu\n"
		"# HELP weft_node_heap_trims_total malloc_trim runs (every %d s), and those that released "
		"memory.\n# TYPE weft_node_heap_trims_total counter\n"
		"weft_node_heap_trims_total{released=\"no\"} %llu\nweft_node_heap_trims_total{released=\"yes\"} "
		"%llu\n"
		"# HELP weft_node_heap_trim_seconds_total Time the main loop spent in malloc_trim.\n"
		"# TYPE weft_node_heap_trim_seconds_total counter\nweft_node_heap_trim_seconds_total %.6f\n",
		mi.uordblks, mi.fordblks, mi.hblkhd, NODE_HEAP_TRIM_TICKS,
		atomic_load(&trims) - atomic_load(&trims_released), atomic_load(&trims_released),
		(double)atomic_load(&trim_total_ns) / 1e9);
}
