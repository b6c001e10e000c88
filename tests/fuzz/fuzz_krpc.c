// SPDX-License-Identifier: MIT
/* libFuzzer target: KRPC parsing and the whole server path (dht_input) of one
 * long-lived instance with a deterministic seed; replies go nowhere. */
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "dht/dht_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int sink(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		socklen_t tolen)
{
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dht *dht; /* fuzz harness only: one instance across inputs */
	static uint64_t now = 1;
	struct sockaddr_in from = {.sin_family = AF_INET, .sin_port = htons(6881)};
	struct krpc_msg m;
	uint64_t next;

	if (!dht) {
		static const uint8_t seed[32] = {7};
		struct dht_limits lim = {.budget_rate = 1000000, .budget_burst = 1000000};
		struct dht_opts o = {.send = sink, .seed = seed, .limits = lim};

		if (dht_new(&dht, &o))
			return 0;
	}
	if (!krpc_parse(&m, data, size))
		for (unsigned int i = 0; i < m.nwks; i++) /* key claims: exact lengths only */
			if (m.wks_len[i] != 6 + DHT_WK_LEN && m.wks_len[i] != 18 + DHT_WK_LEN)
				__builtin_trap();
	from.sin_addr.s_addr = htonl(0x0a000000u | (size & 0xff));
	dht_input(dht, data, size, (struct sockaddr *)&from, sizeof(from), now);
	now += 50;
	dht_periodic(dht, now, &next);
	return 0;
}
