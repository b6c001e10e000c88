// SPDX-License-Identifier: MIT
/* L2-L4 header build/parse with checksum vectors (computed independently
 * with a Python reference), VLAN, IPv4 options, IPv6 extension headers,
 * fragments and truncation at every length. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "weft/io.h"

static const uint8_t mac_a[6] = { 0x02, 0, 0, 0, 0, 1 };
static const uint8_t mac_b[6] = { 0x02, 0, 0, 0, 0, 2 };
static const char payload[] = "weft-checksum-vector";
#define PLEN (sizeof(payload) - 1)

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static int build(uint8_t *buf, size_t cap, int v6)
{
	struct io_addr s, d;

	assert_int_equal(io_addr_parse(&s, v6 ? "2001:db8::1" : "192.0.2.1", 4433), 0);
	assert_int_equal(io_addr_parse(&d, v6 ? "2001:db8::2" : "192.0.2.2", 6881), 0);
	return io_hdr_build(buf, cap, mac_a, mac_b, &s, &d, 0x1234, payload, PLEN);
}

static void test_rfc1071_vector(void **state)
{
	/* The classic IPv4 header example: checksum 0xb861. */
	uint8_t ip[20] = { 0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			   0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7 };

	assert_int_equal(io_csum_fold(io_csum_add(0, ip, 20)), 0xb861);
	ip[10] = 0xb8;
	ip[11] = 0x61;
	assert_int_equal(io_csum_fold(io_csum_add(0, ip, 20)), 0);
	/* odd length: trailing byte padded with zero */
	assert_int_equal(io_csum_fold(io_csum_add(0, "\x01", 1)), (uint16_t)~0x0100);
}

/* The word-at-a-time sum against the definition (big-endian 16-bit words,
 * odd byte padded), every length 0..300 at every start offset 0..7, with
 * and without a carried-in sum: fixed-seed data. */
static void test_csum_reference(void **state)
{
	uint8_t buf[320];
	uint32_t x = 12345;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (uint8_t)(x >> 16);
	}
	memset(buf + 100, 0xff, 40); /* carries */
	for (size_t off = 0; off < 8; off++)
		for (size_t len = 0; len <= 300; len++)
			for (uint32_t carry = 0; carry < 2; carry++) {
				uint64_t ref = carry ? 0xfffffff0u : 0;
				uint32_t r;

				for (size_t k = 0; k + 1 < len; k += 2)
					ref += (uint32_t)(buf[off + k] << 8 | buf[off + k + 1]);
				if (len & 1)
					ref += (uint32_t)buf[off + len - 1] << 8;
				while (ref >> 16)
					ref = (ref & 0xffff) + (ref >> 16);
				r = io_csum_add(carry ? 0xfffffff0u : 0, buf + off, len);
				assert_int_equal(io_csum_fold(r), (uint16_t)~ref);
			}
}

static void test_build_v4_vector(void **state)
{
	uint8_t buf[256];
	struct io_hdr_info hi;
	int len = build(buf, sizeof(buf), 0);

	assert_int_equal(len, 14 + 20 + 8 + (int)PLEN);
	assert_memory_equal(buf, mac_b, 6);
	assert_memory_equal(buf + 6, mac_a, 6);
	assert_int_equal(rd16(buf + 12), 0x0800);
	assert_int_equal(rd16(buf + 14 + 10), 0xa485); /* IPv4 header checksum */
	assert_int_equal(rd16(buf + 14 + 20 + 6), 0x4e83); /* UDP checksum */
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
	assert_int_equal(hi.src.family, AF_INET);
	assert_int_equal(hi.src.port, 4433);
	assert_int_equal(hi.dst.port, 6881);
	assert_int_equal(hi.payload_len, PLEN);
	assert_memory_equal(buf + hi.payload_off, payload, PLEN);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
	buf[len - 1] ^= 1;
	assert_false(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
}

/* io_hdr_build copies the payload and sums it in one pass: every payload
 * length 0..300 (the 32-byte rounds, every tail), both families, bytes
 * that make the carries work: the frame's UDP checksum verifies by the
 * separate io_csum_add path and the payload arrives intact. */
static void test_build_csum_every_length(void **state)
{
	uint8_t buf[512], pl[300];
	struct io_hdr_info hi;
	struct io_addr s, d;

	(void)state;
	for (size_t i = 0; i < sizeof(pl); i++)
		pl[i] = (uint8_t)(0xff - (i * 37 % 5));
	for (int v6 = 0; v6 < 2; v6++) {
		assert_int_equal(io_addr_parse(&s, v6 ? "2001:db8::1" : "192.0.2.1", 4433), 0);
		assert_int_equal(io_addr_parse(&d, v6 ? "2001:db8::2" : "192.0.2.2", 6881), 0);
		for (size_t n = 0; n <= sizeof(pl); n++) {
			int len = io_hdr_build(buf, sizeof(buf), mac_a, mac_b, &s, &d, 7, pl, n);

			assert_int_equal(len, 14 + (v6 ? 40 : 20) + 8 + (int)n);
			assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
			assert_int_equal(hi.payload_len, n);
			assert_memory_equal(buf + hi.payload_off, pl, n);
			assert_true(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
			if (n) {
				buf[len - 1] ^= 0x10;
				assert_false(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
			}
		}
	}
	/* Datagram sizes past the rounds' first few (a QUIC packet, a
	 * jumbo frame's, the largest): the wide rounds' sums do not
	 * overflow; all-ones bytes carry at every word. */
	{
		static const size_t big[] = {1444, 1472, 8952, 65507};
		uint8_t *p = malloc(65507), *f = malloc(65507 + 64);

		assert_non_null(p);
		assert_non_null(f);
		memset(p, 0xff, 65507);
		for (size_t i = 0; i < 65507; i += 7)
			p[i] = (uint8_t)i;
		for (size_t b = 0; b < sizeof(big) / sizeof(big[0]); b++) {
			int len = io_hdr_build(f, 65507 + 64, mac_a, mac_b, &s, &d, 7, p, big[b]);

			assert_true(len > 0);
			assert_int_equal(io_hdr_parse(f, (size_t)len, &hi), 0);
			assert_memory_equal(f + hi.payload_off, p, big[b]);
			assert_true(io_hdr_udp_csum_ok(f, (size_t)len, &hi));
			f[len - 1000] ^= 0x01;
			assert_false(io_hdr_udp_csum_ok(f, (size_t)len, &hi));
		}
		free(p);
		free(f);
	}
}

static void test_build_v6_vector(void **state)
{
	uint8_t buf[256];
	struct io_hdr_info hi;
	struct io_addr want;
	int len = build(buf, sizeof(buf), 1);

	assert_int_equal(len, 14 + 40 + 8 + (int)PLEN);
	assert_int_equal(rd16(buf + 12), 0x86dd);
	assert_int_equal(rd16(buf + 14 + 40 + 6), 0x7712);
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
	assert_int_equal(io_addr_parse(&want, "2001:db8::2", 6881), 0);
	assert_true(io_addr_equal(&hi.dst, &want));
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
	/* A zero checksum is invalid for IPv6. */
	buf[14 + 40 + 6] = buf[14 + 40 + 7] = 0;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
	assert_false(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
}

static void test_truncation_every_length(void **state)
{
	uint8_t buf[256];
	struct io_hdr_info hi;
	int v6, len;
	size_t l;

	for (v6 = 0; v6 < 2; v6++) {
		len = build(buf, sizeof(buf), v6);
		for (l = 0; l < (size_t)len; l++)
			assert_int_not_equal(io_hdr_parse(buf, l, &hi), 0);
		assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
		/* Ethernet padding after the IP packet is ignored. */
		memset(buf + len, 0, 16);
		assert_int_equal(io_hdr_parse(buf, (size_t)len + 16, &hi), 0);
		assert_int_equal(hi.payload_len, PLEN);
	}
	/* No room for the frame */
	assert_int_equal(build(buf, 40, 0), -EMSGSIZE);
}

static void test_vlan(void **state)
{
	uint8_t raw[256], buf[256];
	struct io_hdr_info hi;
	int len = build(raw, sizeof(raw), 0);

	/* one 802.1Q tag, VLAN 100 */
	memcpy(buf, raw, 12);
	buf[12] = 0x81, buf[13] = 0x00, buf[14] = 0x00, buf[15] = 100;
	memcpy(buf + 16, raw + 12, (size_t)len - 12);
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 4, &hi), 0);
	assert_int_equal(hi.nvlan, 1);
	assert_int_equal(hi.vlan[0], 100);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len + 4, &hi));
	/* QinQ: 802.1ad outer 7, inner 100 */
	memcpy(buf, raw, 12);
	buf[12] = 0x88, buf[13] = 0xa8, buf[14] = 0x00, buf[15] = 7;
	buf[16] = 0x81, buf[17] = 0x00, buf[18] = 0x00, buf[19] = 100;
	memcpy(buf + 20, raw + 12, (size_t)len - 12);
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 8, &hi), 0);
	assert_int_equal(hi.nvlan, 2);
	assert_int_equal(hi.vlan[0], 7);
	assert_int_equal(hi.vlan[1], 100);
	assert_int_equal(hi.payload_len, PLEN);
	/* three tags: refused */
	memmove(buf + 16, buf + 12, (size_t)len - 12 + 8);
	buf[12] = 0x88, buf[13] = 0xa8, buf[14] = 0, buf[15] = 9;
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 12, &hi), -EPROTONOSUPPORT);
}

static void test_ipv4_options_and_fragments(void **state)
{
	uint8_t raw[256], buf[256];
	struct io_hdr_info hi;
	int len = build(raw, sizeof(raw), 0);
	uint32_t s;
	uint16_t c;

	/* Insert a 4-byte option (NOP NOP NOP EOL): IHL 6. */
	memcpy(buf, raw, 14 + 20);
	memset(buf + 34, 0, 4);
	buf[34] = buf[35] = buf[36] = 1;
	memcpy(buf + 38, raw + 34, (size_t)len - 34);
	buf[14] = 0x46;
	buf[16] = (uint8_t)((len - 14 + 4) >> 8);
	buf[17] = (uint8_t)(len - 14 + 4);
	buf[24] = buf[25] = 0;
	s = io_csum_add(0, buf + 14, 24);
	c = io_csum_fold(s);
	buf[24] = (uint8_t)(c >> 8);
	buf[25] = (uint8_t)c;
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 4, &hi), 0);
	assert_int_equal(hi.payload_off, 14 + 24 + 8);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len + 4, &hi));
	/* IHL < 5 */
	memcpy(buf, raw, (size_t)len);
	buf[14] = 0x44;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EINVAL);
	/* More-fragments flag; then a non-first fragment */
	memcpy(buf, raw, (size_t)len);
	buf[20] = 0x20;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EFBIG);
	buf[20] = 0x00;
	buf[21] = 0x10;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EFBIG);
	/* Not UDP */
	memcpy(buf, raw, (size_t)len);
	buf[23] = 6;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EPROTONOSUPPORT);
	/* UDP length beyond the IP packet; UDP length < 8 */
	memcpy(buf, raw, (size_t)len);
	buf[14 + 20 + 5] += 1;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EMSGSIZE);
	buf[14 + 20 + 4] = 0;
	buf[14 + 20 + 5] = 7;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EMSGSIZE);
	/* IP total length beyond the frame */
	memcpy(buf, raw, (size_t)len);
	buf[17] += 1;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EMSGSIZE);
	/* Not IP at all (ARP) */
	memcpy(buf, raw, (size_t)len);
	buf[12] = 0x08, buf[13] = 0x06;
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), -EPROTONOSUPPORT);
}

static void test_ipv6_ext_headers(void **state)
{
	uint8_t raw[256], buf[256];
	struct io_hdr_info hi;
	int len = build(raw, sizeof(raw), 1), i;
	size_t l;

	/* Hop-by-hop (8 bytes, PadN) before UDP. */
	memcpy(buf, raw, 54);
	buf[20] = 0; /* next header: hop-by-hop */
	memset(buf + 54, 0, 8);
	buf[54] = 17; /* its next header: UDP */
	buf[55] = 0;  /* length 8 */
	buf[56] = 1;  /* PadN */
	buf[57] = 4;
	memcpy(buf + 62, raw + 54, (size_t)len - 54);
	buf[18] = (uint8_t)((len - 54 + 8) >> 8);
	buf[19] = (uint8_t)(len - 54 + 8);
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 8, &hi), 0);
	assert_int_equal(hi.payload_off, 62 + 8);
	assert_int_equal(hi.payload_len, PLEN);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len + 8, &hi));
	for (l = 0; l < (size_t)len + 8; l++)
		assert_int_not_equal(io_hdr_parse(buf, l, &hi), 0);
	/* A fragment header is refused. */
	buf[54] = 44;
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 8, &hi), -EFBIG);
	/* Too many extension headers: five 8-byte hop-by-hop headers. */
	memcpy(buf, raw, 54);
	buf[20] = 0;
	for (i = 0; i < 5; i++) {
		memset(buf + 54 + 8 * i, 0, 8);
		buf[54 + 8 * i] = i == 4 ? 17 : 0;
	}
	memcpy(buf + 94, raw + 54, (size_t)len - 54);
	buf[18] = (uint8_t)((len - 54 + 40) >> 8);
	buf[19] = (uint8_t)(len - 54 + 40);
	assert_int_equal(io_hdr_parse(buf, (size_t)len + 40, &hi), -EPROTONOSUPPORT);
}

static void test_addr_helpers(void **state)
{
	struct sockaddr_storage ss;
	struct io_addr a, b;
	char txt[64];
	int len;

	assert_int_equal(io_addr_parse(&a, "192.0.2.9", 53), 0);
	len = io_addr_to_sockaddr(&a, AF_INET6, &ss);
	assert_int_equal(len, (int)sizeof(struct sockaddr_in6));
	/* v4-mapped comes back as AF_INET */
	assert_int_equal(io_addr_from_sockaddr(&b, (struct sockaddr *)&ss, (socklen_t)len), 0);
	assert_true(io_addr_equal(&a, &b));
	assert_string_equal(io_addr_fmt(&b, txt, sizeof(txt)), "192.0.2.9:53");
	assert_int_equal(io_addr_parse(&a, "2001:db8::7", 1), 0);
	assert_string_equal(io_addr_fmt(&a, txt, sizeof(txt)), "[2001:db8::7]:1");
	assert_int_equal(io_addr_to_sockaddr(&a, AF_INET, &ss), -EAFNOSUPPORT);
	assert_int_equal(io_addr_parse(&a, "not-an-ip", 1), -EINVAL);
}

/* io_hdr_set_ttl: the TTL / hop limit byte, the IPv4 header checksum
 * (vector: the header of test_build_v4_vector with TTL 2, checksum
 * computed independently), UDP checksum unchanged; short frames refused.
 * io_cmsg_ttl: the control message per family, nothing for TTL 0. */
static void test_set_ttl(void **state)
{
	uint8_t buf[256];
	union {
		struct cmsghdr c;
		uint8_t b[64];
	} ctl;
	struct io_hdr_info hi;
	int len = build(buf, sizeof(buf), 0), v;

	assert_int_equal(io_hdr_set_ttl(buf, (size_t)len, 2), 0);
	assert_int_equal(buf[14 + 8], 2);
	assert_int_equal(rd16(buf + 14 + 10), 0xe285);
	assert_int_equal(rd16(buf + 14 + 20 + 6), 0x4e83);
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
	assert_int_equal(io_hdr_set_ttl(buf, 14 + 19, 2), -EINVAL);
	len = build(buf, sizeof(buf), 1);
	assert_int_equal(io_hdr_set_ttl(buf, (size_t)len, 3), 0);
	assert_int_equal(buf[14 + 7], 3);
	assert_int_equal(io_hdr_parse(buf, (size_t)len, &hi), 0);
	assert_true(io_hdr_udp_csum_ok(buf, (size_t)len, &hi));
	assert_int_equal(io_hdr_set_ttl(buf, 14 + 39, 3), -EINVAL);

	assert_int_equal(io_cmsg_ttl(&ctl.c, AF_INET, 0), 0);
	assert_int_equal(io_cmsg_ttl(&ctl.c, AF_UNIX, 2), 0);
	assert_int_equal(io_cmsg_ttl(&ctl.c, AF_INET, 2), CMSG_SPACE(sizeof(int)));
	assert_int_equal(ctl.c.cmsg_level, IPPROTO_IP);
	assert_int_equal(ctl.c.cmsg_type, IP_TTL);
	assert_int_equal(ctl.c.cmsg_len, CMSG_LEN(sizeof(int)));
	memcpy(&v, CMSG_DATA(&ctl.c), sizeof(v));
	assert_int_equal(v, 2);
	assert_int_equal(io_cmsg_ttl(&ctl.c, AF_INET6, 255), CMSG_SPACE(sizeof(int)));
	assert_int_equal(ctl.c.cmsg_level, IPPROTO_IPV6);
	assert_int_equal(ctl.c.cmsg_type, IPV6_HOPLIMIT);
	memcpy(&v, CMSG_DATA(&ctl.c), sizeof(v));
	assert_int_equal(v, 255);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc1071_vector),
		cmocka_unit_test(test_csum_reference),
		cmocka_unit_test(test_build_v4_vector),
		cmocka_unit_test(test_build_v6_vector),
		cmocka_unit_test(test_build_csum_every_length),
		cmocka_unit_test(test_truncation_every_length),
		cmocka_unit_test(test_vlan),
		cmocka_unit_test(test_ipv4_options_and_fragments),
		cmocka_unit_test(test_ipv6_ext_headers),
		cmocka_unit_test(test_addr_helpers),
		cmocka_unit_test(test_set_ttl),
	};

	return cmocka_run_group_tests_name("io_hdr", tests, NULL, NULL);
}
