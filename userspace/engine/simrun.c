// SPDX-License-Identifier: MIT
/* Discrete-event driver: N engines and one simulated network on the
 * calling thread, virtual time moved to the next event. See simnet.h. */
#include <errno.h>

#include "weft/engine.h"
#include "weft/simnet.h"

/* Passes in a row at one instant before the clock is forced forward by
 * 1 us: a handler that keeps itself busy (re-deferring, a timer re-armed
 * for "now") must not stall virtual time. */
#define SIMRUN_MAX_SPIN 10000

int engine_sim_run(struct simnet *sn, struct engine *const *engs, unsigned int n,
		   uint64_t duration_ns, int (*done)(void *arg), void *arg)
{
	uint64_t now = simnet_now_ns(sn), end = now + duration_ns;
	unsigned int i, spin = 0;

	for (;;) {
		int64_t next = -1, t, d;
		int busy = 0, r;

		if (done && done(arg))
			return 0;
		for (i = 0; i < n; i++) {
			r = engine_poll(engs[i], &t);
			if (r < 0)
				return r;
			busy |= r;
			if (t >= 0 && (next < 0 || t * 1000 < next))
				next = t * 1000;
		}
		d = simnet_next_ns(sn);
		if (d >= 0 && (next < 0 || d < next))
			next = d;
		if ((busy || next == 0) && ++spin < SIMRUN_MAX_SPIN)
			continue;
		spin = 0;
		now = simnet_now_ns(sn);
		if (now >= end)
			return done && done(arg) ? 0 : -ETIMEDOUT;
		if (next <= 0)
			next = next < 0 ? (int64_t)(end - now) : 1000;
		if ((uint64_t)next > end - now)
			next = (int64_t)(end - now);
		simnet_advance(sn, (uint64_t)next);
	}
}
