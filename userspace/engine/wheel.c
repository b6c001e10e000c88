// SPDX-License-Identifier: MIT
/* Per-worker hashed timer wheel, 1 ms ticks. Intrusive: timers are
 * caller-owned, so arming never allocates and never fails. */
#include <string.h>

#include "engine/engine_int.h"

#define MASK (ENGINE_WHEEL_SLOTS - 1)

void engine_wheel_init(struct engine_wheel *wh, uint64_t now_ms)
{
	memset(wh, 0, sizeof(*wh));
	wh->now = now_ms;
}

void engine_timer_init(struct engine_timer *t, engine_cmd_fn fn, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
}

/* t->armed holds slot + 1 while linked. */
static void unlink_timer(struct engine_wheel *wh, struct engine_timer *t)
{
	unsigned int s = (unsigned int)t->armed - 1;

	if (t->prev)
		t->prev->next = t->next;
	else
		wh->slot[s] = t->next;
	if (t->next)
		t->next->prev = t->prev;
	t->next = t->prev = NULL;
	t->armed = 0;
	wh->count--;
}

void engine_wheel_cancel(struct engine_wheel *wh, struct engine_timer *t)
{
	if (t->armed > 0)
		unlink_timer(wh, t);
}

void engine_wheel_add(struct engine_wheel *wh, struct engine_timer *t, uint64_t expire_ms)
{
	uint64_t tick = expire_ms > wh->now ? expire_ms : wh->now + 1;
	unsigned int s = (unsigned int)(tick & MASK);

	if (t->armed > 0)
		unlink_timer(wh, t);
	t->expire_ms = expire_ms;
	t->prev = NULL;
	t->next = wh->slot[s];
	if (t->next)
		t->next->prev = t;
	wh->slot[s] = t;
	t->armed = (int)s + 1;
	wh->count++;
}

unsigned int engine_wheel_advance(struct engine_wheel *wh, uint64_t now_ms,
				  struct engine_worker *w)
{
	unsigned int fired = 0;
	uint64_t tick;

	if (now_ms <= wh->now)
		return 0;
	tick = wh->now + 1;
	/* After a long pause one revolution covers every slot. */
	if (now_ms - wh->now > ENGINE_WHEEL_SLOTS)
		tick = now_ms - ENGINE_WHEEL_SLOTS + 1;
	for (; tick <= now_ms; tick++) {
		struct engine_timer *t, *next;
		unsigned int s = (unsigned int)(tick & MASK);

		/* Timers re-armed by callbacks for "now" land in tick + 1. */
		wh->now = tick;
		if (!wh->count)
			continue;
		for (t = wh->slot[s]; t; t = next) {
			next = t->next;
			if (t->expire_ms > now_ms)
				continue;
			unlink_timer(wh, t);
			fired++;
			t->fn(w, t->arg);
			/* The callback may have cancelled 'next': restart the slot. */
			next = wh->slot[s];
		}
	}
	wh->now = now_ms;
	return fired;
}

int64_t engine_wheel_next(const struct engine_wheel *wh, uint64_t now_ms)
{
	uint64_t d, tick;

	if (!wh->count)
		return -1;
	/* Every armed timer sits in a slot for a tick in (wh->now,
	 * wh->now + SLOTS]; the first non-empty one is the lower bound. */
	for (d = 1; d <= ENGINE_WHEEL_SLOTS; d++) {
		tick = wh->now + d;
		if (wh->slot[tick & MASK])
			return tick <= now_ms ? 0 : (int64_t)(tick - now_ms);
	}
	return ENGINE_WHEEL_SLOTS;
}
