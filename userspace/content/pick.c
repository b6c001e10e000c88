// SPDX-License-Identifier: MIT
/*
 * Chunk selection of a swarm download (swarm.c), rarest first: pure, no
 * I/O, no locks, so that tests/unit/test_content_pick.c can check it on
 * made-up availability.
 *
 * A chunk's rank is how many providers up are known to have it (from
 * their bitmaps). Chunks held, already asked for, or that nobody known
 * has are skipped. The others are offered by rank, rarest first (a
 * counting sort into the caller's scratch array: two scans of the missing
 * range); among chunks of equal rank in scan order from a random start,
 * so that downloaders started together ask for different chunks and soon
 * have something to trade (BitTorrent's random first piece, then rarest
 * first).
 *
 * cn_depth_next: the delay-based pipelining depth of a provider (how many
 * chunk requests it may have in flight), from its answer times.
 *
 * cn_req_expired: when a request in flight is given up.
 */
#include "content/content_node_int.h"

unsigned int cn_depth_next(unsigned int depth, unsigned int max, uint64_t ans_ms,
			   uint64_t target, int may_cut)
{
	if (ans_ms > target)
		return may_cut ? (depth > 2 ? depth / 2 : 1) : depth;
	if (2 * ans_ms <= target && depth < max)
		return depth + 1;
	return depth;
}

int cn_req_expired(uint64_t start_ms, uint64_t last_ms, uint64_t timeout_ms, uint64_t now)
{
	uint64_t idle_from = last_ms > start_ms ? last_ms : start_ms;

	return idle_from + timeout_ms < now || start_ms + CN_REQ_MAX_MULT * timeout_ms < now;
}

#define RANK(i) (pk->avail[i] > CN_PICK_LEVELS ? CN_PICK_LEVELS : pk->avail[i])
#define ELIGIBLE(i) (!pk->have[i] && !pk->busy[i] && pk->avail[i])

uint64_t cn_pick_order(const struct cn_pick *pk, uint64_t r)
{
	uint64_t pos[CN_PICK_LEVELS + 2] = {0}, m, span, i, c, start;
	unsigned int k;

	if (pk->cursor >= pk->n)
		return 0;
	span = pk->n - pk->cursor;
	start = r % span;
	for (i = pk->cursor; i < pk->n; i++)
		if (ELIGIBLE(i))
			pos[RANK(i) + 1]++;
	for (k = 1; k <= CN_PICK_LEVELS + 1; k++)
		pos[k] += pos[k - 1];
	m = pos[CN_PICK_LEVELS + 1]; /* eligible chunks */
	for (c = 0; c < span; c++) {
		i = pk->cursor + (start + c) % span;
		if (ELIGIBLE(i))
			pk->scratch[pos[RANK(i)]++] = (uint32_t)i;
	}
	return m;
}

unsigned int cn_pick_take(const struct cn_pick *pk, uint64_t *pos, uint64_t m, unsigned int want,
			  int (*take)(void *arg, uint64_t index), void *arg)
{
	unsigned int taken = 0;
	int left = 0; /* an entry no provider could take: *pos stays before it */

	for (uint64_t k = *pos; k < m && taken < want; k++) {
		uint64_t i = pk->scratch[k];
		int rc;

		if (ELIGIBLE(i)) {
			rc = take(arg, i);
			if (rc < 0)
				break;
			if (rc == 0) {
				left = 1;
				continue;
			}
			taken++;
		}
		if (!left)
			*pos = k + 1; /* taken, or held, asked for or gone since */
	}
	return taken;
}
#undef RANK
#undef ELIGIBLE
