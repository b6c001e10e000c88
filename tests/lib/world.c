// SPDX-License-Identifier: MIT
/* The shared world of the tests/sim scenarios (world.h): network,
 * bootstrap, relay, NATs, the DHT-formed wait and the teardown. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "world.h"

void world_new(struct world *w, unsigned long long seed)
{
	struct simnet_opts so = { .seed = seed, .clock = SIMNET_CLOCK_REAL };

	memset(w, 0, sizeof(*w));
	assert_int_equal(simnet_new(&w->sn, &so), 0);
}

void world_free(struct world *w)
{
	while (w->n > 0)
		simnode_free(w->nodes[--w->n]);
	simnet_free(w->sn);
	w->sn = NULL;
}

/* Create x with settings and remember it for world_free. */
static void add(struct world *w, struct simnode *x, const char *name, const char *ip,
		struct simnet_nat *nat, const char *const *settings)
{
	assert_true(w->n < WORLD_MAX_NODES);
	simnode_new(x, w->sn, name, ip, nat, settings, NULL, NULL);
	w->nodes[w->n++] = x;
}

/* first..., then extra, into out (NULL-terminated). */
static void join(const char **out, const char *const *first, size_t nfirst,
		 const char *const *extra)
{
	size_t n = 0;

	for (size_t i = 0; i < nfirst; i++)
		out[n++] = first[i];
	for (; extra && *extra; extra++) {
		assert_true(n < WORLD_MAX_SETTINGS);
		out[n++] = *extra;
	}
	out[n] = NULL;
}

void world_bootstrap(struct world *w, struct simnode *b, const char *const *settings)
{
	add(w, b, "B", WORLD_BOOT_IP, NULL, settings);
}

void world_relay(struct world *w, struct simnode *r, const char *const *extra)
{
	static const char *const first[] = { WORLD_BOOTSTRAP, "relay.enable=true" };
	const char *set[WORLD_MAX_SETTINGS + 1];

	join(set, first, 2, extra);
	add(w, r, "R", WORLD_RELAY_IP, NULL, set);
	snprintf(w->use, sizeof(w->use), "relay.use=%s@" WORLD_RELAY_IP ":4433", r->key);
}

void world_node(struct world *w, struct simnode *x, const char *name, const char *ip,
		struct simnet_nat *nat, const char *const *extra)
{
	static const char *const first[] = { WORLD_BOOTSTRAP };
	const char *set[WORLD_MAX_SETTINGS + 1];

	join(set, first, 1, extra);
	add(w, x, name, ip, nat, set);
}

struct simnet_nat *world_nat(struct world *w, const char *outside, enum simnet_nat_filter filter,
			     enum simnet_nat_mapping mapping)
{
	struct simnet_nat *nat;
	struct io_addr out;

	assert_int_equal(io_addr_parse(&out, outside, 0), 0);
	assert_int_equal(simnet_nat_add(w->sn, &out, filter, 0, &nat), 0);
	if (mapping != SIMNET_NAT_MAP_EIM)
		assert_int_equal(simnet_nat_set_mapping(nat, mapping), 0);
	return nat;
}

struct formed {
	struct simnode *nodes[WORLD_MAX_NODES];
	size_t n;
	int min;
};

static int formed(void *arg)
{
	struct formed *f = arg;

	for (size_t i = 0; i < f->n; i++)
		if (simnode_get_int(f->nodes[i], "/v1/dht/status", "nodes4", NULL) < f->min)
			return 0;
	return 1;
}

void world_dht_formed(int min, unsigned int timeout_ms, ...)
{
	struct formed f = { .min = min };
	struct simnode *x;
	va_list ap;

	va_start(ap, timeout_ms);
	while ((x = va_arg(ap, struct simnode *)) != NULL) {
		assert_true(f.n < WORLD_MAX_NODES);
		f.nodes[f.n++] = x;
	}
	va_end(ap);
	assert_int_equal(simnode_wait(formed, &f, timeout_ms), 0);
}
