// SPDX-License-Identifier: MIT
/*
 * Per-sender rate and score (docs/MAILBOX.md, "Abuse"): a token bucket per
 * sender key and a score of refusals that halves every MBOX_SCORE_HALF_S.
 * Keys come from authenticated QUIC connections only (the anchor never
 * scores an address). A bounded table: the least recently seen sender is
 * replaced. No I/O, no clock of its own, not thread-safe.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "weft/mailbox.h"

struct slot {
	uint8_t key[MBOX_KEY_LEN];
	int used;
	uint64_t seen_ms;
	uint64_t tokens_milli; /* thousandths of a message */
	uint64_t fill_ms;      /* when tokens were last topped up */
	uint64_t score_milli;  /* thousandths of a strike */
	uint64_t decay_ms;     /* when the score was last decayed */
	uint64_t refused;
};

struct mbox_rate {
	uint32_t per_min, burst;
	struct slot slots[MBOX_RATE_SLOTS];
};

int mbox_rate_new(struct mbox_rate **out, uint32_t per_min, uint32_t burst)
{
	struct mbox_rate *r;

	if (!out)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->per_min = per_min ? per_min : MBOX_DEF_RATE_PER_MIN;
	r->burst = burst ? burst : MBOX_DEF_RATE_BURST;
	*out = r;
	return 0;
}

void mbox_rate_free(struct mbox_rate *r)
{
	free(r);
}

static struct slot *find(struct mbox_rate *r, const uint8_t key[MBOX_KEY_LEN], int create,
			 uint64_t now_ms)
{
	struct slot *old = NULL;

	for (unsigned int i = 0; i < MBOX_RATE_SLOTS; i++) {
		struct slot *s = &r->slots[i];

		if (s->used && !memcmp(s->key, key, MBOX_KEY_LEN))
			return s;
		if (!s->used) {
			if (!old || old->used)
				old = s;
		} else if (!old || (old->used && s->seen_ms < old->seen_ms)) {
			old = s;
		}
	}
	if (!create)
		return NULL;
	memset(old, 0, sizeof(*old));
	memcpy(old->key, key, MBOX_KEY_LEN);
	old->used = 1;
	old->tokens_milli = (uint64_t)r->burst * 1000;
	old->fill_ms = old->decay_ms = now_ms;
	return old;
}

static void update(struct mbox_rate *r, struct slot *s, uint64_t now_ms)
{
	uint64_t cap = (uint64_t)r->burst * 1000;

	if (now_ms > s->fill_ms) {
		/* per_min messages per 60,000 ms = per_min milli-tokens per ms / 60 */
		uint64_t add = (now_ms - s->fill_ms) * r->per_min / 60;

		s->tokens_milli = s->tokens_milli + add > cap ? cap : s->tokens_milli + add;
		s->fill_ms = now_ms;
	}
	while (now_ms >= s->decay_ms + MBOX_SCORE_HALF_S * 1000ULL) {
		s->score_milli /= 2;
		s->decay_ms += MBOX_SCORE_HALF_S * 1000ULL;
		if (!s->score_milli) {
			s->decay_ms = now_ms;
			break;
		}
	}
	s->seen_ms = now_ms;
}

int mbox_rate_take(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN], uint64_t now_ms)
{
	struct slot *s = find(r, sender, 1, now_ms);

	update(r, s, now_ms);
	if (s->score_milli >= MBOX_SCORE_BAN * 1000ULL || s->tokens_milli < 1000) {
		s->refused++;
		s->score_milli += 1000;
		return 0;
	}
	s->tokens_milli -= 1000;
	return 1;
}

void mbox_rate_strike(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN], uint64_t now_ms)
{
	struct slot *s = find(r, sender, 1, now_ms);

	update(r, s, now_ms);
	s->refused++;
	s->score_milli += 1000;
}

unsigned int mbox_rate_score(struct mbox_rate *r, const uint8_t sender[MBOX_KEY_LEN],
			     uint64_t now_ms)
{
	struct slot *s = find(r, sender, 0, now_ms);

	if (!s)
		return 0;
	update(r, s, now_ms);
	return (unsigned int)(s->score_milli / 1000);
}

unsigned int mbox_rate_top(struct mbox_rate *r, uint64_t now_ms, struct mbox_score *out,
			   unsigned int max, unsigned int *tracked)
{
	unsigned int n = 0, t = 0;

	for (unsigned int i = 0; i < MBOX_RATE_SLOTS; i++) {
		struct slot *s = &r->slots[i];
		unsigned int sc, j;

		if (!s->used)
			continue;
		t++;
		update(r, s, now_ms);
		sc = (unsigned int)(s->score_milli / 1000);
		if (!sc && !s->refused)
			continue;
		/* insertion into the top max, highest first */
		for (j = n; j > 0 && out[j - 1].score < sc; j--)
			if (j < max)
				out[j] = out[j - 1];
		if (j < max) {
			memcpy(out[j].key, s->key, MBOX_KEY_LEN);
			out[j].score = sc;
			out[j].refused = s->refused;
			if (n < max)
				n++;
		}
	}
	if (tracked)
		*tracked = t;
	return n;
}
