// SPDX-License-Identifier: MIT
/*
 * Ethernet / VLAN / IPv4 / IPv6 / UDP header parse and build. Pure functions
 * over (buf, len): no I/O, no allocation; every length checked.
 */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "weft/io.h"

#define ETH_P_IPV4 0x0800
#define ETH_P_IPV6 0x86dd
#define ETH_P_8021Q 0x8100
#define ETH_P_8021AD 0x88a8
#define IPPROTO_UDP_ 17

static inline uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/*
 * The one's complement sum does not depend on byte order (RFC 1071 2(B)):
 * add the data as native 32-bit words into 64 bits, fold to 16, and swap
 * the two bytes on a little-endian host to get the sum of big-endian
 * 16-bit words that callers combine with their own (host-order) terms.
 * Eight bytes per step instead of two: this sums every AF_XDP reply.
 */
/* A 64-bit sum of native-order words folded to 16 bits, made big-endian
 * and added to sum with end-around carry. */
static uint32_t csum_finish(uint64_t s, uint32_t sum)
{
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	s = ((s & 0xff) << 8) | (s >> 8);
#endif
	s += sum;
	while (s >> 32)
		s = (s & 0xffffffffu) + (s >> 32);
	return (uint32_t)s;
}

uint32_t io_csum_add(uint32_t sum, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t s = 0;
	uint32_t w;
	uint16_t h;

	/* 32 bytes a round: eight 32-bit words into the 64-bit sum, which
	 * cannot overflow before 2^29 rounds */
	while (len >= 32) {
		uint64_t q[4];

		memcpy(q, p, 32);
		s += (q[0] & 0xffffffffu) + (q[0] >> 32) + (q[1] & 0xffffffffu) + (q[1] >> 32);
		s += (q[2] & 0xffffffffu) + (q[2] >> 32) + (q[3] & 0xffffffffu) + (q[3] >> 32);
		p += 32;
		len -= 32;
	}
	while (len >= 8) {
		uint64_t q;

		memcpy(&q, p, 8);
		s += (q & 0xffffffffu) + (q >> 32);
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		memcpy(&w, p, 4);
		s += w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		memcpy(&h, p, 2);
		s += h;
		p += 2;
		len -= 2;
	}
	if (len) {
		h = 0;
		memcpy(&h, p, 1); /* the odd byte is the high half of a big-endian word */
		s += h;
	}
	return csum_finish(s, sum);
}

#if defined(__x86_64__)
/* csum_copy's rounds on AVX2, 64 bytes a round (n a multiple of 64): the
 * same sum of native 32-bit words, each widened into a 64-bit lane (a
 * lane takes at most 2^11 words of a 64 KiB datagram: no overflow). On
 * an AF_XDP sender the scalar rounds were 7% of the CPU (io_hdr_build,
 * docs/ENGINE.md). */
__attribute__((target("avx2"))) static uint64_t sum_copy_avx2(uint8_t *dst, const uint8_t *src,
							      size_t n)
{
	const __m256i z = _mm256_setzero_si256();
	__m256i a = z, b = z;
	__m128i t;

	for (size_t i = 0; i < n; i += 64) {
		__m256i v = _mm256_loadu_si256((const __m256i *)(const void *)(src + i));
		__m256i w = _mm256_loadu_si256((const __m256i *)(const void *)(src + i + 32));

		_mm256_storeu_si256((__m256i *)(void *)(dst + i), v);
		_mm256_storeu_si256((__m256i *)(void *)(dst + i + 32), w);
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(v, z));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(v, z));
		a = _mm256_add_epi64(a, _mm256_unpacklo_epi32(w, z));
		b = _mm256_add_epi64(b, _mm256_unpackhi_epi32(w, z));
	}
	a = _mm256_add_epi64(a, b);
	t = _mm_add_epi64(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
	return (uint64_t)_mm_cvtsi128_si64(t) + (uint64_t)_mm_extract_epi64(t, 1);
}
#endif

/* Copy len bytes from src to dst and add them to sum (io_csum_add's
 * result) in one pass over the data: the payload of every AF_XDP frame
 * built. */
static uint32_t csum_copy(uint8_t *dst, const uint8_t *src, size_t len, uint32_t sum)
{
	size_t body = len & ~(size_t)31, i = 0;
	uint64_t s = 0;

#if defined(__x86_64__)
	if (len >= 64 && __builtin_cpu_supports("avx2")) {
		i = len & ~(size_t)63;
		s = sum_copy_avx2(dst, src, i);
	}
#endif
	for (; i < body; i += 32) {
		uint64_t q[4];

		memcpy(q, src + i, 32);
		memcpy(dst + i, q, 32);
		s += (q[0] & 0xffffffffu) + (q[0] >> 32) + (q[1] & 0xffffffffu) + (q[1] >> 32);
		s += (q[2] & 0xffffffffu) + (q[2] >> 32) + (q[3] & 0xffffffffu) + (q[3] >> 32);
	}
	memcpy(dst + body, src + body, len - body);
	/* the tail starts at an even offset: its words line up with src's */
	return io_csum_add(csum_finish(s, sum), dst + body, len - body);
}

uint16_t io_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* Pseudo-header sum for UDP over IPv4/IPv6 (host-order arithmetic on
 * big-endian words, like the rest of this file). */
static uint32_t pseudo_sum(const struct io_addr *src, const struct io_addr *dst, uint32_t ulen)
{
	uint32_t s = 0;
	uint8_t tmp[4];

	if (src->family == AF_INET) {
		s = io_csum_add(s, src->addr, 4);
		s = io_csum_add(s, dst->addr, 4);
		s += IPPROTO_UDP_;
		s += ulen;
	} else {
		s = io_csum_add(s, src->addr, 16);
		s = io_csum_add(s, dst->addr, 16);
		tmp[0] = (uint8_t)(ulen >> 24);
		tmp[1] = (uint8_t)(ulen >> 16);
		tmp[2] = (uint8_t)(ulen >> 8);
		tmp[3] = (uint8_t)ulen;
		s = io_csum_add(s, tmp, 4);
		s += IPPROTO_UDP_;
	}
	return s;
}

static int ipv6_ext(uint8_t nh)
{
	return nh == 0 /* hop-by-hop */ || nh == 43 /* routing */ || nh == 60 /* dest opts */;
}

int io_hdr_parse(const uint8_t *buf, size_t len, struct io_hdr_info *out)
{
	size_t off = IO_HDR_ETH_LEN, ip_end, udp_off;
	uint16_t proto, ulen;

	memset(out, 0, sizeof(*out));
	if (!buf || len < IO_HDR_ETH_LEN)
		return -EMSGSIZE;
	memcpy(out->dst_mac, buf, 6);
	memcpy(out->src_mac, buf + 6, 6);
	proto = rd16(buf + 12);
	while (proto == ETH_P_8021Q || proto == ETH_P_8021AD) {
		if (out->nvlan == 2)
			return -EPROTONOSUPPORT;
		if (len < off + 4)
			return -EMSGSIZE;
		out->vlan[out->nvlan++] = rd16(buf + off) & 0x0fff;
		proto = rd16(buf + off + 2);
		off += 4;
	}
	if (proto == ETH_P_IPV4) {
		const uint8_t *ip = buf + off;
		size_t ihl, tot;

		if (len < off + 20)
			return -EMSGSIZE;
		if ((ip[0] >> 4) != 4)
			return -EINVAL;
		ihl = (size_t)(ip[0] & 0x0f) * 4;
		if (ihl < 20)
			return -EINVAL;
		tot = rd16(ip + 2);
		if (tot < ihl || len < off + tot || len < off + ihl)
			return -EMSGSIZE;
		if (rd16(ip + 6) & 0x3fff) /* MF or offset */
			return -EFBIG;
		if (ip[9] != IPPROTO_UDP_)
			return -EPROTONOSUPPORT;
		out->src.family = out->dst.family = AF_INET;
		memcpy(out->src.addr, ip + 12, 4);
		memcpy(out->dst.addr, ip + 16, 4);
		udp_off = off + ihl;
		ip_end = off + tot;
	} else if (proto == ETH_P_IPV6) {
		const uint8_t *ip = buf + off;
		uint8_t nh;
		size_t plen, p;
		int depth = 0;

		if (len < off + 40)
			return -EMSGSIZE;
		if ((ip[0] >> 4) != 6)
			return -EINVAL;
		plen = rd16(ip + 4);
		if (len < off + 40 + plen)
			return -EMSGSIZE;
		nh = ip[6];
		out->src.family = out->dst.family = AF_INET6;
		memcpy(out->src.addr, ip + 8, 16);
		memcpy(out->dst.addr, ip + 24, 16);
		ip_end = off + 40 + plen;
		p = off + 40;
		while (ipv6_ext(nh)) {
			if (++depth > IO_HDR_MAX_EXT)
				return -EPROTONOSUPPORT;
			if (ip_end < p + 8)
				return -EMSGSIZE;
			nh = buf[p];
			p += ((size_t)buf[p + 1] + 1) * 8;
		}
		if (nh == 44)
			return -EFBIG;
		if (nh != IPPROTO_UDP_)
			return -EPROTONOSUPPORT;
		udp_off = p;
	} else {
		return -EPROTONOSUPPORT;
	}
	if (ip_end < udp_off + 8)
		return -EMSGSIZE;
	ulen = rd16(buf + udp_off + 4);
	if (ulen < 8 || udp_off + ulen > ip_end)
		return -EMSGSIZE;
	out->src.port = rd16(buf + udp_off);
	out->dst.port = rd16(buf + udp_off + 2);
	out->udp_csum = rd16(buf + udp_off + 6);
	out->csum_present = out->udp_csum != 0;
	out->payload_off = (uint16_t)(udp_off + 8);
	out->payload_len = (uint16_t)(ulen - 8);
	return 0;
}

int io_hdr_udp_csum_ok(const uint8_t *buf, size_t len, const struct io_hdr_info *info)
{
	size_t udp_off = (size_t)info->payload_off - 8;
	uint32_t ulen = (uint32_t)info->payload_len + 8, s;

	if (udp_off + ulen > len)
		return 0;
	if (info->src.family == AF_INET && info->udp_csum == 0)
		return 1;
	if (info->src.family == AF_INET6 && info->udp_csum == 0)
		return 0; /* mandatory for IPv6 (RFC 8200 8.1) */
	s = pseudo_sum(&info->src, &info->dst, ulen);
	s = io_csum_add(s, buf + udp_off, ulen);
	return io_csum_fold(s) == 0;
}

int io_hdr_build(uint8_t *buf, size_t cap, const uint8_t src_mac[6], const uint8_t dst_mac[6],
		 const struct io_addr *src, const struct io_addr *dst, uint16_t ip_id,
		 const void *payload, size_t plen)
{
	size_t iplen, total, udp_off;
	uint8_t *ip, *udp;
	uint16_t c;
	uint32_t s;

	if (src->family != dst->family)
		return -EAFNOSUPPORT;
	if (src->family == AF_INET)
		iplen = 20;
	else if (src->family == AF_INET6)
		iplen = 40;
	else
		return -EAFNOSUPPORT;
	if (plen > 65507)
		return -EMSGSIZE;
	total = IO_HDR_ETH_LEN + iplen + 8 + plen;
	if (total > cap)
		return -EMSGSIZE;
	memcpy(buf, dst_mac, 6);
	memcpy(buf + 6, src_mac, 6);
	ip = buf + IO_HDR_ETH_LEN;
	udp_off = IO_HDR_ETH_LEN + iplen;
	udp = buf + udp_off;
	if (src->family == AF_INET) {
		wr16(buf + 12, ETH_P_IPV4);
		ip[0] = 0x45;
		ip[1] = 0;
		wr16(ip + 2, (uint16_t)(20 + 8 + plen));
		wr16(ip + 4, ip_id);
		wr16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		ip[9] = IPPROTO_UDP_;
		wr16(ip + 10, 0);
		memcpy(ip + 12, src->addr, 4);
		memcpy(ip + 16, dst->addr, 4);
		wr16(ip + 10, io_csum_fold(io_csum_add(0, ip, 20)));
	} else {
		wr16(buf + 12, ETH_P_IPV6);
		ip[0] = 0x60;
		ip[1] = ip[2] = ip[3] = 0;
		wr16(ip + 4, (uint16_t)(8 + plen));
		ip[6] = IPPROTO_UDP_;
		ip[7] = 64;
		memcpy(ip + 8, src->addr, 16);
		memcpy(ip + 24, dst->addr, 16);
	}
	wr16(udp, src->port);
	wr16(udp + 2, dst->port);
	wr16(udp + 4, (uint16_t)(8 + plen));
	wr16(udp + 6, 0);
	s = pseudo_sum(src, dst, (uint32_t)(8 + plen));
	s = io_csum_add(s, udp, 8);
	if (plen)
		s = csum_copy(udp + 8, payload, plen, s);
	c = io_csum_fold(s);
	wr16(udp + 6, c ? c : 0xffff);
	return (int)total;
}

int io_hdr_set_ttl(uint8_t *frame, size_t len, uint8_t ttl)
{
	uint8_t *ip = frame + IO_HDR_ETH_LEN;

	if (len < IO_HDR_ETH_LEN + 20)
		return -EINVAL;
	if ((ip[0] >> 4) == 4 && (ip[0] & 0x0f) >= 5 &&
	    len >= IO_HDR_ETH_LEN + (size_t)(ip[0] & 0x0f) * 4) {
		ip[8] = ttl;
		wr16(ip + 10, 0);
		wr16(ip + 10, io_csum_fold(io_csum_add(0, ip, (size_t)(ip[0] & 0x0f) * 4)));
		return 0;
	}
	if ((ip[0] >> 4) == 6 && len >= IO_HDR_ETH_LEN + 40) {
		ip[7] = ttl;
		return 0;
	}
	return -EINVAL;
}
