// SPDX-License-Identifier: MIT
/*
 * quic_node_parse_target(): "[KEY@]HOST[:PORT]" as every command takes it
 * (docs/CONTROL_API.md). No I/O; a parser that checks every length.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "quic/quic_node_int.h"
#include "weft/util.h"

int quic_node_parse_target(const char *s, uint16_t default_port, uint8_t key[QUIC_KEY_LEN],
			   int *have_key, struct sockaddr_storage *ss, socklen_t *sslen)
{
	const char *at, *host, *pstr = NULL;
	char hbuf[64];
	struct io_addr a;
	unsigned long port = default_port;
	size_t hl;
	int i, l;

	*have_key = 0;
	if (!s)
		return -EINVAL;
	at = strchr(s, '@');
	if (at) {
		if (at - s != 2 * QUIC_KEY_LEN)
			return -EINVAL;
		for (i = 0; i < QUIC_KEY_LEN; i++) {
			int hi = util_hex_digit(s[2 * i]), lo = util_hex_digit(s[2 * i + 1]);

			if (hi < 0 || lo < 0)
				return -EINVAL;
			key[i] = (uint8_t)(hi << 4 | lo);
		}
		*have_key = 1;
		s = at + 1;
	}
	if (s[0] == '[') {
		const char *e = strchr(s, ']');

		if (!e)
			return -EINVAL;
		host = s + 1;
		hl = (size_t)(e - host);
		if (e[1] == ':')
			pstr = e + 2;
		else if (e[1])
			return -EINVAL;
	} else {
		const char *c = strchr(s, ':');

		host = s;
		if (c && !strchr(c + 1, ':')) { /* a.b.c.d:port */
			hl = (size_t)(c - s);
			pstr = c + 1;
		} else {
			hl = strlen(s); /* bare IPv6 or IPv4 */
		}
	}
	if (hl == 0 || hl >= sizeof(hbuf))
		return -EINVAL;
	memcpy(hbuf, host, hl);
	hbuf[hl] = 0;
	if (pstr) {
		char *end;

		if (!*pstr)
			return -EINVAL;
		port = strtoul(pstr, &end, 10);
		if (*end || port == 0 || port > 65535)
			return -EINVAL;
	}
	if (io_addr_parse(&a, hbuf, (uint16_t)port))
		return -EINVAL;
	l = io_addr_to_sockaddr(&a, a.family, ss);
	if (l <= 0)
		return -EINVAL;
	*sslen = (socklen_t)l;
	return 0;
}
