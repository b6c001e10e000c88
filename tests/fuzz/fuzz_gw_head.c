// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the gateway's parser of a backend's / provider's HTTP
 * response head (weft/svc_http.h), and the header filter applied to what
 * it returns. Beyond "no crash": an accepted head lies within the input
 * and the cap, ends with the blank line, every header's name and value
 * lie inside the head and hold no CR, LF or NUL, names are tokens, the
 * status is 100..599; the parser is incremental (every prefix of an
 * accepted head is "need more"); and what the filter lets through never
 * includes a hop-by-hop or credential header without the opt-in.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/svc_http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

static struct svc_http_head h, h2;

static int is_name(const uint8_t *p, size_t n, const char *what)
{
	return n == strlen(what) && !strncasecmp((const char *)p, what, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	long hl = svc_http_head_parse(data, size, &h);
	const char *conn = NULL;
	size_t cl = 0;

	check(hl == 0 || hl == -EBADMSG || hl == -EMSGSIZE || hl > 0);
	if (hl == 0)
		check(size < SVC_HTTP_MAX_HEAD);
	if (hl <= 0)
		return 0;
	check((size_t)hl <= size && (size_t)hl <= SVC_HTTP_MAX_HEAD && hl >= 16);
	check(!memcmp(data + hl - 4, "\r\n\r\n", 4));
	check(h.status >= 100 && h.status <= 599 && h.minor <= 1);
	check(h.n <= SVC_HTTP_MAX_HEADERS);
	for (uint32_t i = 0; i < h.n; i++) {
		const struct svc_http_hdr *x = &h.h[i];

		check(x->name_len > 0 && x->name_off + x->name_len <= (size_t)hl);
		check(x->val_off + x->val_len <= (size_t)hl);
		check(data[x->name_off + x->name_len] == ':');
		for (uint32_t k = 0; k < x->name_len; k++)
			check(data[x->name_off + k] > ' ' && data[x->name_off + k] < 0x7f &&
			      data[x->name_off + k] != ':');
		for (uint32_t k = 0; k < x->val_len; k++)
			check(data[x->val_off + k] != '\r' && data[x->val_off + k] != '\n' &&
			      data[x->val_off + k]);
		if (is_name(data + x->name_off, x->name_len, "connection")) {
			conn = (const char *)data + x->val_off;
			cl = x->val_len;
		}
	}
	/* Incremental: a shorter input is "need more", the same head again
	 * parses identically. */
	check(svc_http_head_parse(data, (size_t)hl - 1, &h2) == 0);
	check(svc_http_head_parse(data, (size_t)hl, &h2) == hl && h2.n == h.n &&
	      h2.status == h.status && h2.content_length == h.content_length);
	for (uint32_t i = 0; i < h.n; i++) {
		const char *n = (const char *)data + h.h[i].name_off;
		size_t nl = h.h[i].name_len;
		int keep = svc_http_resp_keep(n, nl, conn, cl, 0);
		int keep_c = svc_http_resp_keep(n, nl, conn, cl, SVC_HTTP_F_CREDENTIALS);

		if (is_name((const uint8_t *)n, nl, "set-cookie") ||
		    is_name((const uint8_t *)n, nl, "connection") ||
		    is_name((const uint8_t *)n, nl, "transfer-encoding") ||
		    is_name((const uint8_t *)n, nl, "keep-alive") ||
		    is_name((const uint8_t *)n, nl, "content-length") ||
		    (nl >= 6 && !strncasecmp(n, "proxy-", 6)) ||
		    (conn && svc_http_list_has(conn, cl, n, nl)))
			check(!keep);
		check(keep <= keep_c); /* the opt-in only ever adds */
	}
	return 0;
}
