// SPDX-License-Identifier: MIT
/* Chunk selection of a swarm download (userspace/content/pick.c): rarest
 * first, ties from a random start, chunks held / asked for / nowhere
 * skipped, a provider-less chunk passed over, a stop honoured; and the
 * delay-based pipelining depth (cn_depth_next): grows on fast answers up
 * to its bound, holds in the band, halves once per round on slow ones,
 * never below 1; when a request in flight is given up
 * (cn_req_expired); when providers are looked up again
 * (cn_relookup_ms); and how long the fetch loop sleeps (cn_fetch_wait_ms);
 * which of a super-seed's shown offers a refresh says we hold
 * (cn_held_mask); when every offer shown is held or asked for, so that
 * the next are asked for before the last are in (cn_offers_taken), and
 * when a provider is due to be asked again (cn_idle_refresh_at). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/util.h"
#include "content/swarm_int.h"

#define N 64

struct rec {
	uint64_t got[N];
	unsigned int n;
	const uint8_t *refuse; /* 1: no provider with room has it */
	unsigned int stop_after;
};

/* One pick from a fresh order: cn_pick_order, then cn_pick_take from its
 * start (what a job does when it makes the order anew). */
static unsigned int pick_once(const struct cn_pick *pk, unsigned int want, uint64_t r,
			      int (*take)(void *arg, uint64_t index), void *arg)
{
	uint64_t pos = 0;

	return cn_pick_take(pk, &pos, cn_pick_order(pk, r), want, take, arg);
}

static int take(void *arg, uint64_t i)
{
	struct rec *r = arg;

	assert_true(i < N);
	if (r->refuse && r->refuse[i])
		return 0;
	if (r->stop_after && r->n == r->stop_after)
		return -1;
	for (unsigned int k = 0; k < r->n; k++)
		assert_true(r->got[k] != i); /* never offered twice in one call */
	r->got[r->n++] = i;
	return 1;
}

static uint8_t have[N], busy[N], avail[N];
static uint32_t scratch[N];

static struct cn_pick pick_of(uint64_t cursor)
{
	struct cn_pick pk = {.have = have, .busy = busy, .avail = avail, .n = N, .cursor = cursor,
			     .scratch = scratch};

	return pk;
}

static void reset(void)
{
	memset(have, 0, N);
	memset(busy, 0, N);
	memset(avail, 0, N);
}

/* The rarest chunks come first, whatever the random start. */
static void test_rarest_first(void **state)
{
	(void)state;
	for (uint64_t r = 0; r < 200; r++) {
		struct cn_pick pk;
		struct rec rc = {0};

		reset();
		for (unsigned int i = 0; i < N; i++)
			avail[i] = (uint8_t)(2 + i % 5); /* ranks 2..6 */
		avail[9] = 1;
		avail[40] = 1;
		avail[41] = 1;
		avail[50] = 0; /* nobody has it */
		have[40] = 1;  /* held */
		busy[9] = 1;   /* asked for already */
		avail[12] = 1;
		pk = pick_of(0);
		/* want 3: the two free rank-1 chunks, then one of rank 2 */
		assert_int_equal(pick_once(&pk, 3, r * 7919, take, &rc), 3);
		assert_true((rc.got[0] == 12 && rc.got[1] == 41) ||
			    (rc.got[0] == 41 && rc.got[1] == 12));
		assert_int_equal(avail[rc.got[2]], 2);
	}
}

/* One order kept across picks (cn_pick_order, then cn_pick_take from a
 * position, as a job does between remakes): each pick takes the next
 * entries, those held, asked for or gone meanwhile are skipped and passed,
 * and one no provider could take keeps the position before it, so a later
 * pick offers it again; the chunks picked before it are not offered
 * again. */
static void test_kept_order(void **state)
{
	uint8_t refuse[N] = {0};
	struct cn_pick pk;
	struct rec rc = {0};
	uint64_t m, pos = 0;
	uint32_t first[N];

	(void)state;
	reset();
	for (unsigned int i = 0; i < N; i++)
		avail[i] = (uint8_t)(1 + i % 3); /* ranks 1..3 */
	pk = pick_of(0);
	m = cn_pick_order(&pk, 12345);
	assert_int_equal(m, N);
	memcpy(first, scratch, sizeof(first));
	for (unsigned int k = 1; k < m; k++) /* rarest first */
		assert_true(avail[first[k - 1]] <= avail[first[k]]);
	/* a pick of 4: the first four entries, marked asked for by the job */
	assert_int_equal(cn_pick_take(&pk, &pos, m, 4, take, &rc), 4);
	assert_int_equal(pos, 4);
	for (unsigned int k = 0; k < 4; k++) {
		assert_int_equal(rc.got[k], first[k]);
		busy[first[k]] = 1;
	}
	/* meanwhile entry 4 was got elsewhere and entry 6 lost its provider;
	 * entry 5 finds no provider with room: 7, 8 and 9 are taken instead */
	have[first[4]] = 1;
	avail[first[6]] = 0;
	refuse[first[5]] = 1;
	rc = (struct rec){.refuse = refuse};
	assert_int_equal(cn_pick_take(&pk, &pos, m, 3, take, &rc), 3);
	assert_int_equal(rc.got[0], first[7]);
	assert_int_equal(rc.got[2], first[9]);
	assert_int_equal(pos, 5); /* entry 5 left for later */
	for (unsigned int k = 0; k < 3; k++)
		busy[rc.got[k]] = 1;
	/* its provider has room again: 5, then 10 (7-9 are asked for) */
	refuse[first[5]] = 0;
	rc = (struct rec){.refuse = refuse};
	assert_int_equal(cn_pick_take(&pk, &pos, m, 2, take, &rc), 2);
	assert_int_equal(rc.got[0], first[5]);
	assert_int_equal(rc.got[1], first[10]);
	assert_int_equal(pos, 11);
	/* to the end of the order: what is left, once; then nothing */
	for (unsigned int k = 0; k < 2; k++)
		busy[rc.got[k]] = 1;
	rc = (struct rec){0};
	assert_int_equal(cn_pick_take(&pk, &pos, m, N, take, &rc), N - 11);
	assert_int_equal(pos, m);
	rc = (struct rec){0};
	assert_int_equal(cn_pick_take(&pk, &pos, m, N, take, &rc), 0);
	/* a stop ends the pick where it is */
	pos = 0;
	reset();
	for (unsigned int i = 0; i < N; i++)
		avail[i] = 1;
	m = cn_pick_order(&pk, 1);
	rc = (struct rec){.stop_after = 2};
	assert_int_equal(cn_pick_take(&pk, &pos, m, N, take, &rc), 2);
	assert_int_equal(pos, 2);
	/* nothing missing: an empty order */
	memset(have, 1, N);
	assert_int_equal(cn_pick_order(&pk, 1), 0);
}

/* Equal ranks: the start is random, so downloaders started together ask
 * for different chunks: every chunk is first for some start. */
static void test_random_ties(void **state)
{
	uint8_t seen[N] = {0};
	unsigned int distinct = 0;

	(void)state;
	reset();
	memset(avail, 1, N);
	for (uint64_t r = 0; r < N; r++) {
		struct cn_pick pk = pick_of(0);
		struct rec rc = {0};

		assert_int_equal(pick_once(&pk, 1, r, take, &rc), 1);
		distinct += !seen[rc.got[0]];
		seen[rc.got[0]] = 1;
	}
	/* start = r mod N for the first pass: all N chunks */
	assert_int_equal(distinct, N);
}

/* Skipped: below the cursor, held, busy, nowhere; a chunk no provider with
 * room has is passed over for the next rarest; a stop ends the call. */
static void test_skips_and_stop(void **state)
{
	uint8_t refuse[N] = {0};
	struct cn_pick pk;
	struct rec rc = {0};
	unsigned int k;

	(void)state;
	reset();
	memset(avail, 3, N);
	for (k = 0; k < 8; k++)
		have[k] = 1;
	avail[20] = 1;
	avail[21] = 1;
	refuse[20] = 1; /* only a provider without room has it */
	busy[30] = 1;
	avail[31] = 0;
	have[32] = 1;
	pk = pick_of(8);
	rc.refuse = refuse;
	assert_int_equal(pick_once(&pk, N, 5, take, &rc), N - 8 - 4);
	assert_int_equal(rc.got[0], 21); /* the rarest one it could take */
	for (k = 0; k < rc.n; k++)
		assert_true(rc.got[k] >= 8 && rc.got[k] != 20 && rc.got[k] != 30 &&
			    rc.got[k] != 31 && rc.got[k] != 32);

	memset(&rc, 0, sizeof(rc));
	rc.stop_after = 5;
	assert_int_equal(pick_once(&pk, N, 5, take, &rc), 5);

	/* nothing to do */
	memset(&rc, 0, sizeof(rc));
	assert_int_equal(pick_once(&pk, 0, 5, take, &rc), 0);
	pk = pick_of(N);
	assert_int_equal(pick_once(&pk, 4, 5, take, &rc), 0);
	assert_int_equal(rc.n, 0);
}

/* Ranks above CN_PICK_LEVELS count as CN_PICK_LEVELS (a byte of
 * availability never overflows the histogram). */
static void test_high_ranks(void **state)
{
	struct cn_pick pk;
	struct rec rc = {0};

	(void)state;
	reset();
	memset(avail, 255, N);
	avail[7] = CN_PICK_LEVELS - 1;
	pk = pick_of(0);
	assert_int_equal(pick_once(&pk, 2, 11, take, &rc), 2);
	assert_int_equal(rc.got[0], 7);
}

/* Depth 1..12 from answer times against a 1000 ms target. */
static void test_depth(void **state)
{
	unsigned int d = 3;

	(void)state;
	/* fast answers (up to half the target): one more each, up to 12 */
	for (int k = 0; k < 20; k++)
		d = cn_depth_next(d, 12, k % 2 ? 0 : 500, 1000, 1);
	assert_int_equal(d, 12);
	/* in the band (500, 1000]: unchanged */
	assert_int_equal(cn_depth_next(12, 12, 501, 1000, 1), 12);
	assert_int_equal(cn_depth_next(5, 12, 1000, 1000, 1), 5);
	/* slow: halved, only when the request followed the last cut */
	assert_int_equal(cn_depth_next(12, 12, 1001, 1000, 1), 6);
	assert_int_equal(cn_depth_next(12, 12, 4000, 1000, 0), 12);
	assert_int_equal(cn_depth_next(3, 12, 4000, 1000, 1), 1);
	assert_int_equal(cn_depth_next(2, 12, 4000, 1000, 1), 1);
	assert_int_equal(cn_depth_next(1, 12, 4000, 1000, 1), 1);
	/* never above the bound */
	assert_int_equal(cn_depth_next(12, 12, 0, 1000, 1), 12);
	/* from 1, a series of slow answers keeps it at 1 */
	d = 1;
	for (int k = 0; k < 10; k++)
		d = cn_depth_next(d, 12, 5000, 1000, 1);
	assert_int_equal(d, 1);
}

/* A request is given up after 1000 ms without a byte of its answer,
 * counted from its start or from the last byte, and 4000 ms after its
 * start whatever arrives. */
static void test_expired(void **state)
{
	(void)state;
	/* nothing arrived: 1000 ms from the start */
	assert_false(cn_req_expired(5000, 0, 1000, 6000));
	assert_true(cn_req_expired(5000, 0, 1000, 6001));
	/* bytes arriving: from the last one */
	assert_false(cn_req_expired(5000, 5900, 1000, 6800));
	assert_false(cn_req_expired(5000, 5900, 1000, 6900));
	assert_true(cn_req_expired(5000, 5900, 1000, 6901));
	/* an answer that keeps trickling in: 4 x 1000 ms after the start */
	assert_false(cn_req_expired(5000, 8900, 1000, 9000));
	assert_true(cn_req_expired(5000, 8999, 1000, 9001));
	/* a last byte stamped before the start (a slot's old answer) counts
	 * as none */
	assert_true(cn_req_expired(5000, 100, 1000, 6001));
	/* CN_REQ_MAX_MULT is the bound above */
	assert_int_equal(CN_REQ_MAX_MULT, 4);
}

/* The packet path stamps a request's last byte with the coarse clock
 * (swarm_conn.c): util_now_ms's clock as of the kernel's last tick, never
 * ahead of it (a stamp never makes a request look younger than it is)
 * and normally a tick behind (1-10 ms; more only while the CPU's tick is
 * late, as after a virtual CPU was descheduled: the bound here is only
 * that it is the same clock). */
static void test_coarse_stamp(void **state)
{
	(void)state;
	for (int i = 0; i < 2000; i++) {
		uint64_t before = util_now_ms(), c = util_now_ms_coarse(), after = util_now_ms();

		assert_true(c <= after);
		assert_true(c + 1000 >= before);
		/* stamped before the request started: counted from the start */
		assert_false(cn_req_expired(after, c, 1000, after + 1000));
	}
}

/* The lookup schedule: none ever found, soon (0.5, 1, 2 s, then 3 s);
 * none usable of those found, 3 s; a few usable, 1 s doubling; enough,
 * 15 s. */
static void test_relookup(void **state)
{
	(void)state;
	assert_int_equal(cn_relookup_ms(0, 0, 0), CN_RELOOKUP_MS);
	assert_int_equal(cn_relookup_ms(0, 0, 1), 500);
	assert_int_equal(cn_relookup_ms(0, 0, 2), 1000);
	assert_int_equal(cn_relookup_ms(0, 0, 3), 2000);
	assert_int_equal(cn_relookup_ms(0, 0, 4), CN_RELOOKUP_MS);
	assert_int_equal(cn_relookup_ms(0, 0, 40), CN_RELOOKUP_MS);
	assert_int_equal(cn_relookup_ms(3, 0, 1), CN_RELOOKUP_MS);
	assert_int_equal(cn_relookup_ms(3, 2, 1), CN_EARLY_LOOKUP_MS);
	assert_int_equal(cn_relookup_ms(3, 2, 3), CN_EARLY_LOOKUP_MS * 4);
	assert_int_equal(cn_relookup_ms(3, 2, 9), CN_REGATHER_MS);
	assert_int_equal(cn_relookup_ms(9, CN_WANT_PROVIDERS, 1), CN_REGATHER_MS);
}

/* The fetch loop's sleep: a lookup out polls every CN_WAIT_MS; else
 * CN_WAIT_MAX_MS, cut to the next commit or backoff's end, never 0. */
static void test_fetch_wait(void **state)
{
	(void)state;
	assert_int_equal(cn_fetch_wait_ms(1, 1005, 1002, 1000), CN_WAIT_MS);
	assert_int_equal(cn_fetch_wait_ms(0, 0, 0, 1000), CN_WAIT_MAX_MS);
	assert_int_equal(cn_fetch_wait_ms(0, 1000 + CN_WAIT_MAX_MS + 50, 0, 1000), CN_WAIT_MAX_MS);
	assert_int_equal(cn_fetch_wait_ms(0, 1030, 0, 1000), 30);
	assert_int_equal(cn_fetch_wait_ms(0, 1030, 1005, 1000), 5);
	assert_int_equal(cn_fetch_wait_ms(0, 0, 1040, 1000), 40);
	assert_int_equal(cn_fetch_wait_ms(0, 990, 0, 1000), 1); /* overdue */
	assert_int_equal(cn_fetch_wait_ms(0, 1000, 1000, 1000), 1);
}

/* An idle provider's refresh gap: CN_INFO_FAST_MS at first and after a
 * refresh that showed at least CN_INFO_FAST_GAIN chunks we lack (a
 * super-seed's next offers), doubling after one that showed fewer, never
 * past CN_INFO_REFRESH_MS (the round every partial provider gets anyway). */
static void test_refresh_gap(void **state)
{
	unsigned int g = 0, n = 0;

	(void)state;
	assert_int_equal(cn_refresh_gap(0, 0, 0), CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(0, 7, 0), CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_FAST_MS, 0, 0), 2 * CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_FAST_MS, CN_INFO_FAST_GAIN - 1, 0),
			 2 * CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_REFRESH_MS, CN_INFO_FAST_GAIN, 0), CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_REFRESH_MS, 32, 0), CN_INFO_FAST_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_REFRESH_MS, 0, 0), CN_INFO_REFRESH_MS);
	/* refreshes that show little: the gap reaches the slow round in a few
	 * steps and stays there */
	do {
		unsigned int next = cn_refresh_gap(g, n % CN_INFO_FAST_GAIN, 0);

		assert_true(next >= g && next <= CN_INFO_REFRESH_MS);
		g = next;
		n++;
	} while (g < CN_INFO_REFRESH_MS && n < 100);
	assert_int_equal(g, CN_INFO_REFRESH_MS);
	assert_true(n <= 8);
	assert_int_equal(cn_refresh_gap(g, 1, 0), CN_INFO_REFRESH_MS);
	assert_int_equal(cn_refresh_gap(g, CN_INFO_FAST_GAIN, 0), CN_INFO_FAST_MS);
	/* a refresh that told a super-seed a few of its offers held, whose
	 * answer showed little new (its next offers are chunks we hold too):
	 * the next one at once, whatever the gap was; new chunks shown take
	 * precedence (they are asked for first) */
	assert_int_equal(cn_refresh_gap(g, 0, CN_INFO_FAST_GAIN), CN_INFO_TOLD_MS);
	assert_int_equal(cn_refresh_gap(CN_INFO_FAST_MS, 1, 32), CN_INFO_TOLD_MS);
	assert_int_equal(cn_refresh_gap(g, 0, CN_INFO_FAST_GAIN - 1), CN_INFO_REFRESH_MS);
	assert_int_equal(cn_refresh_gap(g, CN_INFO_FAST_GAIN, 32), CN_INFO_FAST_MS);
	/* and once the telling stops, back to the fast gap, then doubling */
	assert_int_equal(cn_refresh_gap(CN_INFO_TOLD_MS, 0, 0), CN_INFO_FAST_MS);
	assert_true(CN_INFO_TOLD_MS < CN_INFO_FAST_MS);
}

/* What HAVE_HELD tells a provider: of the chunks it showed (its offers),
 * those we now hold, from the lowest, in a 32-chunk window; none, nothing. */
/* A provider that shows what it was told held, again and again, gets the
 * 1 ms follow-up no more often than an honest seed could earn it (each
 * round ends CN_INFO_FAST_GAIN offers for good): nchunks / CN_INFO_FAST_GAIN
 * + 1 times per item, then the usual gaps. */
static void test_told_counts(void **state)
{
	unsigned int n = 0, fast = 0;

	(void)state;
	assert_int_equal(cn_told_counts(CN_INFO_FAST_GAIN - 1, &n, 256), 0);
	assert_int_equal(n, 0); /* too few told: not counted */
	for (unsigned int i = 0; i < 1000; i++)
		fast += cn_refresh_gap(CN_INFO_FAST_MS, 0, cn_told_counts(32, &n, 256)) ==
			CN_INFO_TOLD_MS;
	assert_int_equal(fast, 256 / CN_INFO_FAST_GAIN + 1);
	assert_int_equal(cn_told_counts(32, &n, 256), 0);
	n = 0; /* a new item */
	assert_int_equal(cn_told_counts(CN_INFO_FAST_GAIN, &n, 8), CN_INFO_FAST_GAIN);
	assert_int_equal(cn_told_counts(CN_INFO_FAST_GAIN, &n, 8), CN_INFO_FAST_GAIN);
	assert_int_equal(cn_told_counts(CN_INFO_FAST_GAIN, &n, 8), CN_INFO_FAST_GAIN);
	assert_int_equal(cn_told_counts(CN_INFO_FAST_GAIN, &n, 8), 0);
}

static void test_held_mask(void **state)
{
	uint8_t held[200] = {0};
	uint32_t shown[] = {150, 7, 9, 40, 38, 100}, first, mask;

	(void)state;
	assert_int_equal(cn_held_mask(shown, 6, held, &first, &mask), 0);
	assert_int_equal(mask, 0);
	assert_int_equal(cn_held_mask(shown, 6, NULL, &first, &mask), 0);
	assert_int_equal(cn_held_mask(shown, 0, held, &first, &mask), 0);
	held[150] = 1;
	assert_int_equal(cn_held_mask(shown, 6, held, &first, &mask), 1);
	assert_int_equal(first, 150);
	assert_int_equal(mask, 1);
	held[9] = held[38] = held[40] = held[100] = 1; /* 7 not held */
	assert_int_equal(cn_held_mask(shown, 6, held, &first, &mask), 3);
	assert_int_equal(first, 9);
	assert_int_equal(mask, 1u << 0 | 1u << 29 | 1u << 31); /* 9, 38, 40; 100, 150 later */
	/* a chunk shown twice is told once */
	uint32_t twice[] = {5, 5, 6};
	held[5] = held[6] = 1;
	assert_int_equal(cn_held_mask(twice, 3, held, &first, &mask), 2);
	assert_int_equal(first, 5);
	assert_int_equal(mask, 3);
}

/* A super-seed's offers are all taken when each is held or asked for (from
 * it or from anyone): then it is asked for its next offers at once, with
 * requests still in flight. None shown: not a super-seed's offers. */
static void test_offers_taken(void **state)
{
	uint8_t held[64] = {0}, asked[64] = {0};
	uint32_t shown[] = {3, 17, 40, 41};

	(void)state;
	assert_int_equal(cn_offers_taken(shown, 4, held, asked), 0);
	assert_int_equal(cn_offers_taken(shown, 0, held, asked), 0);
	assert_int_equal(cn_offers_taken(shown, 4, NULL, asked), 0);
	held[3] = 1;
	asked[17] = asked[40] = 1;
	assert_int_equal(cn_offers_taken(shown, 4, held, asked), 0); /* 41 still to ask */
	asked[41] = 2;							  /* asked twice (end game) */
	assert_int_equal(cn_offers_taken(shown, 4, held, asked), 1);
	held[17] = 1;
	asked[17] = 0;
	assert_int_equal(cn_offers_taken(shown, 4, held, asked), 1);
	asked[40] = 0; /* a request given up: 40 is to be asked again */
	assert_int_equal(cn_offers_taken(shown, 4, held, asked), 0);
}

/* When a partial provider is asked for its bitmap again after a pick
 * (cn_idle_refresh_at): with nothing of ours in flight, 20 ms after its
 * last answer; with chunks in flight only when it showed a super-seed's
 * offers, all of them held or asked for, and it has room for one more
 * request; never while a refresh is out, it backs off, or the job is full. */
static void test_idle_refresh_at(void **state)
{
	struct content_node *cn = calloc(1, sizeof(*cn));
	struct cn_job *j = calloc(1, sizeof(*j));
	struct cn_peer *p = calloc(1, sizeof(*p));
	uint8_t held[N] = {0}, asked[N] = {0};

	(void)state;
	assert_non_null(cn);
	assert_non_null(j);
	assert_non_null(p);
	cn->max_parallel = 32;
	j->cn = cn;
	j->have = held;
	j->busy = asked;
	p->state = P_UP;
	p->info = 2;
	p->partial = 1;
	p->depth = 12;
	p->info_at = 1000;
	/* idle: nothing in flight */
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_FAST_MS);
	p->refresh_gap = CN_INFO_TOLD_MS;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_TOLD_MS);
	p->refresh_gap = 0;
	/* chunks in flight from a provider that showed more than 32 we lack
	 * (no list kept): not before they are in */
	p->inflight = 3;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	/* a super-seed's four offers: two asked for, two not yet */
	p->nshown = 4;
	p->shown[0] = 1, p->shown[1] = 5, p->shown[2] = 9, p->shown[3] = 13;
	asked[1] = asked[5] = 1;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	/* all held or asked for: due with the chunks still in flight */
	held[9] = 1;
	asked[13] = 1;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_FAST_MS);
	assert_int_equal(cn_offers_held(p->shown, p->nshown, held), 1);
	/* CN_INFO_FAST_GAIN of them held (the seed sent those: its window has
	 * room for as many new offers): at once, not at the 20 ms gap */
	held[1] = held[5] = held[13] = 1;
	assert_int_equal(cn_offers_held(p->shown, p->nshown, held), 4);
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_OFFERS_MS);
	p->refresh_gap = CN_INFO_REFRESH_MS; /* whatever the gap */
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_OFFERS_MS);
	p->refresh_gap = 0;
	/* a new answer's list: none of it held yet, the gap again */
	p->shown[0] = 2, p->shown[1] = 6, p->shown[2] = 10, p->shown[3] = 14;
	asked[2] = asked[6] = asked[10] = asked[14] = 1;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 1000 + CN_INFO_FAST_MS);
	assert_int_equal(cn_offers_held(p->shown, 0, held), 0);
	assert_int_equal(cn_offers_held(p->shown, p->nshown, NULL), 0);
	/* no room for the refresh's request at this provider */
	p->inflight = p->depth;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	p->inflight = 3;
	/* a refresh already out, a backoff, a full job: not due */
	p->refresh = 1;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	p->refresh = 0;
	p->backoff_until = 2000;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	p->backoff_until = 0;
	j->inflight = cn->max_parallel;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	j->inflight = 0;
	/* a provider that holds everything is never refreshed */
	p->partial = 0;
	assert_int_equal(cn_idle_refresh_at(j, p, 1005), 0);
	free(p);
	free(j);
	free(cn);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rarest_first),
	    cmocka_unit_test(test_random_ties),
	    cmocka_unit_test(test_skips_and_stop),
	    cmocka_unit_test(test_high_ranks),
	    cmocka_unit_test(test_depth),
	    cmocka_unit_test(test_expired),
	    cmocka_unit_test(test_coarse_stamp),
	    cmocka_unit_test(test_fetch_wait),
	    cmocka_unit_test(test_relookup),
	    cmocka_unit_test(test_refresh_gap),
	    cmocka_unit_test(test_held_mask),
	    cmocka_unit_test(test_told_counts),
	    cmocka_unit_test(test_offers_taken),
	    cmocka_unit_test(test_idle_refresh_at),
	    cmocka_unit_test(test_kept_order),
	};

	return cmocka_run_group_tests_name("content_pick", tests, NULL, NULL);
}
