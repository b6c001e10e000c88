// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: BEP 14 messages (lsd_parse) and the LAN peer table
 * they feed. An accepted message re-encodes, and what it encodes to
 * parses to the same message; the table stays within its bounds whatever
 * sources and messages arrive (the first bytes of the input pick the
 * source address and the clock).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/lan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

static struct lsd_tab *tab;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint64_t now = 1000;
	struct lsd_msg m, m2;
	char buf[LSD_MAX_SEND];
	struct sockaddr_in from = {.sin_family = AF_INET};
	struct sockaddr_storage prov[8];
	struct lsd_action act;
	int rc, n;

	if (!tab && lsd_tab_new(&tab, 16))
		return 0;
	if (size >= 2) {
		from.sin_addr.s_addr = htonl(0xc0000200u | data[0]); /* 192.0.2.x */
		now += (uint64_t)data[1] * 10000;
	}
	rc = lsd_parse(data, size, &m);
	check(rc == 0 || rc == -EINVAL || rc == -E2BIG);
	if (rc)
		return 0;
	check(m.port && m.nih <= LSD_MAX_IH);
	for (int v6 = 0; v6 < 2; v6++) {
		n = lsd_encode(buf, sizeof(buf), &m, v6);
		check(n > 0 && n <= LSD_MAX_SEND);
		check(lsd_parse((const uint8_t *)buf, (size_t)n, &m2) == 0);
		m2.ih_ignored = m.ih_ignored;
		check(!memcmp(&m, &m2, sizeof(m)));
	}
	if (lsd_tab_admit(tab, now)) {
		rc = lsd_tab_input(tab, (struct sockaddr *)&from, sizeof(from), &m, now, &act);
		check(rc == 0 || rc == -EAGAIN || rc == -ENOSPC);
	}
	check(lsd_tab_count(tab, now) <= 16);
	if (m.nih)
		check(lsd_tab_providers(tab, m.ih[0], now, prov, 8) <= 8);
	return 0;
}
