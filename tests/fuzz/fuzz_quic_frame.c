// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the weft frame layer and the peer-certificate
 * parser: one-shot decode, the reassembler fed in input-chosen chunks,
 * re-encoding of every decoded frame, quic_cert_parse() (the handshake's
 * certificate check) and quic_cert_verify().
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <weft/quic.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int check(void *arg, const struct quic_frame *f)
{
	uint8_t *buf = malloc(f->len + 16);
	ssize_t n;
	struct quic_frame g;

	if (!buf)
		return 0;
	n = quic_frame_encode(buf, f->len + 16, f->type, f->payload, f->len);
	if (n <= 0 || quic_frame_decode(buf, (size_t)n, f->len, &g) != n || g.type != f->type ||
	    g.len != f->len || memcmp(g.payload, f->payload, f->len) != 0)
		__builtin_trap();
	free(buf);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct quic_framer *fr;
	struct quic_frame f;
	uint8_t pk[QUIC_KEY_LEN];
	size_t off = 0, chunk;

	if (quic_frame_decode(data, size, 4096, &f) > 0)
		check(NULL, &f);
	if (quic_framer_new(&fr, 4096) == 0) {
		chunk = size ? (size_t)data[0] % 17 + 1 : 1;
		while (off < size) {
			size_t n = size - off < chunk ? size - off : chunk;

			if (quic_framer_push(fr, data + off, n, check, NULL) < 0)
				break;
			off += n;
		}
		quic_framer_free(fr);
	}
	{
		struct quic_cert_view v;

		/* Whatever it accepts lies inside the input. */
		if (quic_cert_parse(data, size, &v) == 0 &&
		    (v.key < data || v.key + QUIC_KEY_LEN > data + size || v.sig < data ||
		     v.sig + 64 > data + size || v.tbs < data || v.tbs + v.tbs_len > data + size))
			__builtin_trap();
	}
	quic_cert_verify(data, size, pk);
	return 0;
}
