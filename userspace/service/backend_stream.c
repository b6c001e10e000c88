// SPDX-License-Identifier: MIT
/*
 * A service stream at its provider's HTTP/1.1 backend (docs/SERVICE.md,
 * "Streams"): the stream arrives as "POST /<method>" with Connection:
 * Upgrade and Upgrade: weft-stream; the backend's 101 turns the
 * connection into the raw byte stream. These are the pieces without
 * state: the request, the connect, the response head's parser. The
 * socket is driven by svc_stream.c on the fabric's owner. The caller
 * headers of any request that is not a call (a stream's, a WebSocket's, a
 * pass-through's) are made here too.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sodium.h>

#include "svc_bhttp_int.h"
#include "svc_dir_int.h"
#include "svc_stream_int.h"
#include "weft/svc_backend.h"
#include "weft/util.h"

/* Does the header line at p (len bytes, no CRLF) name a Weft-* header? */
static int weft_line(const uint8_t *p, size_t len)
{
	return len >= 5 && !strncasecmp((const char *)p, "weft-", 5);
}

uint8_t *svcn_bstream_request(const struct svc_bhttp_meta *m, const uint8_t *ws, size_t ws_len,
			      size_t *out_len)
{
	char weft[SVC_BHTTP_REQ_HEAD_MAX];
	size_t cap = ws_len + sizeof(weft) + 256, o = 0;
	uint8_t *out;
	int wl = svc_bhttp_weft_headers(weft, sizeof(weft), m), n;

	*out_len = 0;
	if (wl < 0 || !(out = malloc(cap)))
		return NULL;
	if (!ws) {
		/* service and method were checked against their charsets
		 * (svc_name_valid, svc_method_valid): nothing to escape. */
		n = snprintf((char *)out, cap,
			     "POST /%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
			     "Upgrade: weft-stream\r\nContent-Length: 0\r\n%.*s\r\n",
			     m->method, m->service, wl, weft);
		if (n < 0 || (size_t)n >= cap) {
			free(out);
			return NULL;
		}
		*out_len = (size_t)n;
		return out;
	}
	/* The client's head (one head, CRLF lines, checked by the caller):
	 * its lines but Weft-* ones (only this node says who called), then
	 * ours, then the blank line. */
	for (size_t i = 0; i + 2 <= ws_len;) {
		const uint8_t *e = memchr(ws + i, '\n', ws_len - i);
		size_t ll = e ? (size_t)(e - (ws + i)) + 1 : ws_len - i;

		if (ll <= 2)
			break; /* the blank line */
		if (!(i && weft_line(ws + i, ll))) {
			memcpy(out + o, ws + i, ll);
			o += ll;
		}
		i += ll;
	}
	memcpy(out + o, weft, (size_t)wl);
	o += (size_t)wl;
	memcpy(out + o, "\r\n", 3); /* with a NUL past its length */
	*out_len = o + 2;
	return out;
}

size_t svcn_head_len(const uint8_t *req, size_t len)
{
	for (size_t i = 3; i < len && i < SVCN_CALLER_HEAD_MAX; i++)
		if (!memcmp(req + i - 3, "\r\n\r\n", 4))
			return i + 1;
	return 0;
}

uint8_t *svcn_caller_request(struct svc_node *sn, const char *service, const char *method,
			     const uint8_t caller[IDENTITY_PK_LEN], const uint8_t *assertion,
			     uint32_t deadline_ms, const uint8_t *req, size_t req_len,
			     size_t *out_len)
{
	struct svcn_pub *p = svcn_pub_find(sn, service, strlen(service));
	struct svc_bhttp_meta bm = {.service = service,
				    .method = method,
				    .caller = caller,
				    .assertion = assertion,
				    .deadline_ms = deadline_ms};
	uint8_t rid[SVC_REQ_ID_LEN], *out, *o2;
	size_t hl = 0, h;
	char ver[32] = "";

	*out_len = 0;
	if (req && !(hl = svcn_head_len(req, req_len)))
		return NULL;
	if (p && p->version) {
		svc_version_fmt(p->version, ver, sizeof(ver));
		bm.version = ver;
	}
	if (assertion)
		memcpy(rid, assertion, SVC_REQ_ID_LEN);
	else
		randombytes_buf(rid, sizeof(rid));
	bm.req_id = rid;
	out = svcn_bstream_request(&bm, req, hl, &h);
	if (!out || hl == req_len) {
		*out_len = h;
		return out;
	}
	o2 = realloc(out, h + (req_len - hl) + 1);
	if (!o2) {
		free(out);
		return NULL;
	}
	memcpy(o2 + h, req + hl, req_len - hl);
	o2[h + req_len - hl] = 0;
	*out_len = h + req_len - hl;
	return o2;
}

int svcn_bstream_connect(const char *addr)
{
	struct sockaddr_storage ss;
	unsigned int sl;
	int fd, err;

	if (svc_backend_parse_addr(addr, &ss, &sl))
		return -EINVAL;
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (ss.ss_family != AF_UNIX) {
		int one = 1;

		/* frames of a chat are small: no Nagle wait behind an ACK */
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	if (connect(fd, (struct sockaddr *)&ss, sl) && errno != EINPROGRESS) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

long svcn_bstream_head(const uint8_t *buf, size_t len, int *status)
{
	size_t i, end = 0;

	/* The end of the head first: CRLF CRLF within the cap. */
	for (i = 3; i < len && i < SVCN_STRM_HEAD_MAX; i++)
		if (buf[i] == '\n' && buf[i - 1] == '\r' && buf[i - 2] == '\n' &&
		    buf[i - 3] == '\r') {
			end = i + 1;
			break;
		}
	/* The status line can be judged before the head is complete. */
	if (len >= 5 && memcmp(buf, "HTTP/", 5))
		return -EBADMSG;
	if (!end)
		return len >= SVCN_STRM_HEAD_MAX ? -EMSGSIZE : 0;
	/* "HTTP/1.x SSS" */
	if (end < 14 || memcmp(buf, "HTTP/1.", 7) || (buf[7] != '0' && buf[7] != '1') ||
	    buf[8] != ' ' || buf[9] < '1' || buf[9] > '5' || buf[10] < '0' || buf[10] > '9' ||
	    buf[11] < '0' || buf[11] > '9' || (buf[12] != ' ' && buf[12] != '\r'))
		return -EBADMSG;
	for (i = 0; i < end; i++)
		if (buf[i] == 0 || (buf[i] == '\n' && (!i || buf[i - 1] != '\r')))
			return -EBADMSG; /* NUL, bare LF: not HTTP */
	*status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
	return (long)end;
}
