// SPDX-License-Identifier: MIT
/*
 * WebSocket frame headers (RFC 6455 section 5.2), read as the bytes pass
 * through the gateway (docs/SERVICE.md, "WebSocket through the gateway"):
 * the payload is never buffered, only counted, so a length is never
 * trusted with memory. What is checked: RSV bits 0 (no extension is
 * negotiated: the gateway strips Sec-WebSocket-Extensions), a known
 * opcode, control frames final and at most 125 bytes, continuation only
 * inside a message and a new message only outside one, the mask bit as
 * the direction requires, a 64-bit length with its top bit clear, and the
 * message (the sum of its fragments) within the cap. No I/O.
 */
#include <errno.h>
#include <string.h>

#include "svc_stream_int.h"

int svcn_ws_feed(struct svcn_ws *w, const uint8_t *buf, size_t len, int masked, uint64_t max_msg)
{
	while (len) {
		if (w->left) {
			size_t n = len < w->left ? len : (size_t)w->left;

			w->left -= n;
			buf += n;
			len -= n;
			continue;
		}
		w->hdr[w->hl++] = *buf++;
		len--;
		if (w->hl == 2) {
			uint8_t b0 = w->hdr[0], b1 = w->hdr[1], op = b0 & 0x0f;
			unsigned int l7 = b1 & 0x7f;

			if (b0 & 0x70)
				return SVCN_WS_PROTOCOL; /* RSV without an extension */
			if (!!(b1 & 0x80) != !!masked)
				return SVCN_WS_PROTOCOL;
			if (op >= 8) {
				if (op > 10 || !(b0 & 0x80) || l7 > 125)
					return SVCN_WS_PROTOCOL;
			} else if (op == 0) {
				if (!w->in_msg)
					return SVCN_WS_PROTOCOL;
			} else if (op <= 2) {
				if (w->in_msg)
					return SVCN_WS_PROTOCOL;
				w->msg = 0;
			} else {
				return SVCN_WS_PROTOCOL;
			}
			w->need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + (masked ? 4 : 0);
		}
		if (w->hl < 2 || w->hl < w->need)
			continue;
		/* the whole header is in */
		{
			uint8_t b0 = w->hdr[0], op = b0 & 0x0f;
			unsigned int l7 = w->hdr[1] & 0x7f;
			uint64_t plen = l7;

			if (l7 == 126) {
				plen = ((uint64_t)w->hdr[2] << 8) | w->hdr[3];
			} else if (l7 == 127) {
				plen = 0;
				for (int i = 0; i < 8; i++)
					plen = (plen << 8) | w->hdr[2 + i];
				if (plen >> 63)
					return SVCN_WS_PROTOCOL;
			}
			if (op == 8 && plen == 1)
				return SVCN_WS_PROTOCOL; /* a close code is two bytes */
			if (op < 8) {
				if (plen > max_msg || w->msg + plen > max_msg)
					return SVCN_WS_TOO_BIG;
				w->msg += plen;
				w->in_msg = !(b0 & 0x80);
			} else if (op == 8) {
				w->closed = 1;
			}
			w->left = plen;
			w->hl = 0;
			w->need = 0;
		}
	}
	return 0;
}

size_t svcn_ws_close_frame(uint8_t out[8], unsigned int code, int masked)
{
	out[0] = 0x88; /* FIN, close */
	out[1] = (uint8_t)(2 | (masked ? 0x80 : 0));
	if (masked) {
		/* a zero mask: the payload goes as it is (RFC 6455 5.3 allows
		 * any key; this frame carries nothing to hide) */
		memset(out + 2, 0, 4);
		out[6] = (uint8_t)(code >> 8);
		out[7] = (uint8_t)code;
		return 8;
	}
	out[2] = (uint8_t)(code >> 8);
	out[3] = (uint8_t)code;
	return 4;
}
