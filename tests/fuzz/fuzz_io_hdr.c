// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the AF_XDP frame parser (io_hdr_parse). Every frame the
 * NIC hands us is attacker-controlled. Invariants on every accepted frame:
 * the UDP payload lies inside the frame and inside the IP length, the
 * checksum check stays in bounds, and a frame rebuilt from the parsed
 * addresses and payload parses back to the same addresses and payload.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t frame[IO_HDR_ETH_LEN + 8 + 40 + 8 + 65536];
	struct io_hdr_info h, again;
	int n;

	if (io_hdr_parse(data, size, &h) != 0)
		return 0;
	check(h.src.family == AF_INET || h.src.family == AF_INET6);
	check(h.dst.family == h.src.family);
	check(h.nvlan <= 2);
	check(h.payload_off >= IO_HDR_ETH_LEN + 20 + 8);
	check((size_t)h.payload_off + h.payload_len <= size);
	check(h.csum_present == (h.udp_csum != 0));
	(void)io_hdr_udp_csum_ok(data, size, &h);

	/* Rebuild a plain frame (no VLAN, no options) from what was parsed. */
	n = io_hdr_build(frame, sizeof(frame), h.src_mac, h.dst_mac, &h.src, &h.dst, 1,
			 data + h.payload_off, h.payload_len);
	if (n < 0) {
		/* only a payload too large for one UDP datagram may be refused */
		check(n == -EMSGSIZE && h.payload_len > 65507);
		return 0;
	}
	check(io_hdr_parse(frame, (size_t)n, &again) == 0);
	check(again.nvlan == 0);
	check(again.src.family == h.src.family && again.src.port == h.src.port &&
	      again.dst.port == h.dst.port);
	check(!memcmp(again.src.addr, h.src.addr, sizeof(h.src.addr)));
	check(!memcmp(again.dst.addr, h.dst.addr, sizeof(h.dst.addr)));
	check(!memcmp(again.src_mac, h.src_mac, 6) && !memcmp(again.dst_mac, h.dst_mac, 6));
	check(again.payload_len == h.payload_len);
	check(!memcmp(frame + again.payload_off, data + h.payload_off, h.payload_len));
	check(io_hdr_udp_csum_ok(frame, (size_t)n, &again) == 1);
	return 0;
}
