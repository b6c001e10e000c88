// SPDX-License-Identifier: MIT
/*
 * A service stream at its provider's HTTP/1.1 backend (docs/SERVICE.md,
 * "Streams"): the stream arrives as "POST /<method>" with Connection:
 * Upgrade and Upgrade: weft-stream; the backend's 101 turns the
 * connection into the raw byte stream. These are the pieces without
 * state: the request, the connect, the response head's parser. The
 * socket is driven by svc_stream.c on the fabric's owner.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "svc_stream_int.h"
#include "weft/svc_backend.h"
#include "weft/util.h"

size_t svcn_bstream_request(char *out, size_t cap, const char *service, const char *method,
			    const uint8_t key[IDENTITY_PK_LEN])
{
	char kh[2 * IDENTITY_PK_LEN + 1];
	int n;

	util_hex(kh, key, IDENTITY_PK_LEN);
	/* service and method were checked against their charsets
	 * (svc_name_valid, svc_method_valid): nothing to escape. */
	n = snprintf(out, cap,
		     "POST /%s HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\n"
		     "Upgrade: weft-stream\r\nWeft-Caller: %s\r\nWeft-Service: %s\r\n"
		     "Content-Length: 0\r\n\r\n",
		     method, service, kh, service);
	return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
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
