/* SPDX-License-Identifier: MIT */
/* Internal state of the guard (guard.c, guard_ctl.c). */
#ifndef WEFT_GUARD_INT_H
#define WEFT_GUARD_INT_H

#include <pthread.h>

#include "weft/guard.h"

struct policer;

struct guard {
	pthread_mutex_t lock;      /* bans table, config copy, stats snapshot */
	struct wxdp *xdp;
	struct policer **pol;
	unsigned int npol;
	struct wxdp_config config; /* uring mode: the policers' config */
	struct store *store;
	unsigned int db;
	struct wxdp_ban *bans;     /* GUARD_MAX_BANS entries */
	size_t nbans;
	uint64_t snap[WXDP_STAT__MAX]; /* previous counters, for rates */
	uint64_t snap_ns;
};

#endif
