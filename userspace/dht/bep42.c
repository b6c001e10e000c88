// SPDX-License-Identifier: MIT
/* BEP 42: node ids bound to the node's IP address (CRC32-C of the masked IP). */
#include <string.h>

#include "dht/dht_int.h"

uint32_t dht_crc32c(const uint8_t *buf, size_t len)
{
	uint32_t crc = 0xffffffffu;

	for (size_t i = 0; i < len; i++) {
		crc ^= buf[i];
		for (int b = 0; b < 8; b++)
			crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
	}
	return ~crc;
}

int dht_bep42_is_local(const uint8_t *ip, size_t iplen)
{
	if (iplen == 4)
		return ip[0] == 10 || ip[0] == 127 || (ip[0] == 172 && (ip[1] & 0xf0) == 16) ||
		       (ip[0] == 192 && ip[1] == 168) || (ip[0] == 169 && ip[1] == 254) ||
		       ip[0] == 0;
	if (iplen == 16) {
		static const uint8_t lo[16] = {[15] = 1};

		return !memcmp(ip, lo, 16) || (ip[0] & 0xfe) == 0xfc || /* ULA */
		       (ip[0] == 0xfe && (ip[1] & 0xc0) == 0x80) ||	/* link-local */
		       (ip[0] == 0 && ip[1] == 0 && ip[2] == 0 && ip[3] == 0 && ip[4] == 0 &&
			ip[5] == 0 && ip[6] == 0 && ip[7] == 0 && ip[8] == 0 && ip[9] == 0 &&
			ip[10] == 0xff && ip[11] == 0xff && dht_bep42_is_local(ip + 12, 4));
	}
	return 1;
}

static uint32_t bep42_crc(const uint8_t *ip, size_t iplen, uint8_t r)
{
	static const uint8_t m4[4] = {0x03, 0x0f, 0x3f, 0xff};
	static const uint8_t m6[8] = {0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff};
	const uint8_t *mask = iplen == 4 ? m4 : m6;
	size_t n = iplen == 4 ? 4 : 8;
	uint8_t buf[8];

	for (size_t i = 0; i < n; i++)
		buf[i] = ip[i] & mask[i];
	buf[0] |= (uint8_t)((r & 7) << 5);
	return dht_crc32c(buf, n);
}

void dht_bep42_make_id(uint8_t id[DHT_ID_LEN], const uint8_t *ip, size_t iplen, uint8_t r,
		       const uint8_t tail[DHT_ID_LEN])
{
	uint32_t crc = bep42_crc(ip, iplen, r);

	memcpy(id, tail, DHT_ID_LEN);
	id[0] = (uint8_t)(crc >> 24);
	id[1] = (uint8_t)(crc >> 16);
	id[2] = (uint8_t)(((crc >> 8) & 0xf8) | (tail[2] & 7));
	id[19] = r;
}

int dht_bep42_check(const uint8_t id[DHT_ID_LEN], const uint8_t *ip, size_t iplen)
{
	uint32_t crc;

	if ((iplen != 4 && iplen != 16) || dht_bep42_is_local(ip, iplen))
		return 1;
	crc = bep42_crc(ip, iplen, id[19]);
	return id[0] == (uint8_t)(crc >> 24) && id[1] == (uint8_t)(crc >> 16) &&
	       (id[2] & 0xf8) == ((crc >> 8) & 0xf8);
}
