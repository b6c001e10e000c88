// SPDX-License-Identifier: MIT
/*
 * weftctl svc stream NAME METHOD [--idle MS] [--timeout MS]: stdin and
 * stdout bridged to a service stream, like nc. POST /v1/svc/stream with
 * Upgrade: weft-stream on the control socket (written by hand: libcurl
 * does not hand over an upgraded connection); after the 101 the socket is
 * the stream. EOF on stdin is the half-close (shutdown of our write side);
 * the stream is over when the daemon closes its side. Then GET
 * /v1/svc/stream/ID says how it ended: anything but "ok" is printed and
 * exits 1.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "weftctl.h"

#define HEAD_MAX 16384

static int connect_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		int err = -errno;

		close(fd);
		return err;
	}
	return fd;
}

static int write_all(int fd, const void *p, size_t len)
{
	const char *c = p;

	while (len) {
		ssize_t n = write(fd, c, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		c += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Read the response head into buf (NUL-terminated); returns its length,
 * *extra the bytes after it. */
static long read_head(int fd, char *buf, size_t cap, size_t *have)
{
	*have = 0;
	while (*have < cap - 1) {
		ssize_t n = read(fd, buf + *have, cap - 1 - *have);
		char *e;

		if (n <= 0)
			return -1;
		*have += (size_t)n;
		buf[*have] = 0;
		e = strstr(buf, "\r\n\r\n");
		if (e)
			return e + 4 - buf;
	}
	return -1;
}

/* The bridge: stdin -> sock (EOF: shutdown), sock -> stdout (EOF: done).
 * The socket is written only when it takes more (POLLOUT), and read all
 * along: a blocking write while the daemon waits for us to read what the
 * stream sent back (its flow-control credit) would stall both. */
static int bridge(int s)
{
	struct pollfd p[2] = {{.fd = 0}, {.fd = s}};
	static char in[65536], out[65536];
	size_t il = 0, io = 0;
	int in_open = 1;

	fcntl(s, F_SETFL, fcntl(s, F_GETFL) | O_NONBLOCK);
	for (;;) {
		p[0].fd = in_open && il == io ? 0 : -1;
		p[0].events = POLLIN;
		p[1].events = POLLIN | (il > io ? POLLOUT : 0);
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (p[0].fd >= 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
			ssize_t n = read(0, in, sizeof(in));

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				shutdown(s, SHUT_WR);
				in_open = 0;
			} else {
				il = (size_t)n;
				io = 0;
			}
		}
		if (il > io && (p[1].revents & (POLLOUT | POLLERR | POLLHUP))) {
			ssize_t n = write(s, in + io, il - io);

			if (n < 0 && errno != EAGAIN && errno != EINTR) {
				in_open = 0;
				il = io = 0;
			} else if (n > 0) {
				io += (size_t)n;
				if (io == il)
					il = io = 0;
			}
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = read(s, out, sizeof(out));

			if (n < 0 && (errno == EAGAIN || errno == EINTR))
				continue;
			if (n <= 0)
				return 0;
			if (write_all(1, out, (size_t)n))
				return -1;
		}
	}
}

int weftctl_svc_stream(struct weftctl *ctx, int argc, char **argv)
{
	long long idle = 0, timeout = 0;
	char head[HEAD_MAX], path[64];
	const char *id;
	json_t *body, *o = NULL;
	char *js, *req;
	size_t have;
	long hl;
	int s, rc, status = 0, n;

	if (argc < 4)
		return weftctl_usage(ctx);
	for (int i = 4; i < argc; i += 2) {
		char *end = NULL;

		if (i + 1 >= argc)
			return weftctl_usage(ctx);
		if (!strcmp(argv[i], "--idle"))
			idle = strtoll(argv[i + 1], &end, 10);
		else if (!strcmp(argv[i], "--timeout"))
			timeout = strtoll(argv[i + 1], &end, 10);
		else
			return weftctl_usage(ctx);
		if (!end || *end || end == argv[i + 1] || idle < 0 || timeout < 0)
			return weftctl_usage(ctx);
	}
	body = json_pack("{s:s,s:s,s:I,s:I}", "name", argv[2], "method", argv[3], "idle_ms",
			 (json_int_t)idle, "timeout_ms", (json_int_t)timeout);
	js = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!js)
		return WEFTCTL_ERR;
	n = asprintf(&req,
		     "POST /v1/svc/stream HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n"
		     "Upgrade: weft-stream\r\nContent-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     strlen(js), js);
	free(js);
	if (n < 0)
		return WEFTCTL_ERR;
	s = connect_unix(ctx->socket);
	if (s < 0) {
		fprintf(stderr, "weftctl: cannot connect to %s: %s (is weftd running?)\n",
			ctx->socket, strerror(-s));
		free(req);
		return WEFTCTL_ERR;
	}
	rc = write_all(s, req, (size_t)n);
	free(req);
	hl = rc ? -1 : read_head(s, head, sizeof(head), &have);
	if (hl < 0 || sscanf(head, "HTTP/1.%*c %d", &status) != 1) {
		fprintf(stderr, "weftctl: no answer from weftd\n");
		close(s);
		return WEFTCTL_ERR;
	}
	if (status != 101) {
		/* the JSON error: what came with the head, and the rest */
		json_error_t je;
		char *b = head + hl;
		size_t bl = have - (size_t)hl;

		while (bl < sizeof(head) - 1 - (size_t)hl) {
			ssize_t r = read(s, b + bl, sizeof(head) - 1 - (size_t)hl - bl);

			if (r <= 0)
				break;
			bl += (size_t)r;
			if (memchr(b, '\n', bl))
				break;
		}
		b[bl] = 0;
		o = json_loadb(b, bl, 0, &je);
		close(s);
		if (ctx->json && o) {
			weftctl_print_json(o);
		} else {
			json_t *e = o ? json_object_get(o, "error") : NULL;

			fprintf(stderr, "weftctl: stream %s: %s (%s)\n", argv[2],
				e ? weftctl_jstr_or(e, "code", "?") : "refused",
				e ? weftctl_jstr_or(e, "message", "") : "");
		}
		json_decref(o);
		return WEFTCTL_ERR;
	}
	id = strcasestr(head, "\r\nWeft-Stream-Id: ");
	snprintf(path, sizeof(path), "/v1/svc/stream/%lld", id ? atoll(id + 18) : 0LL);
	if ((size_t)hl < have && write_all(1, head + hl, have - (size_t)hl)) {
		close(s);
		return WEFTCTL_ERR;
	}
	rc = bridge(s);
	close(s);
	if (rc)
		return WEFTCTL_ERR;
	/* how it ended (the record is written as the daemon lets the socket
	 * go: a moment after our EOF at most) */
	for (int i = 0; i < 40; i++) {
		json_decref(o);
		o = NULL;
		if (weftctl_call(ctx, "GET", path, NULL, &o) != 200 || !o) {
			json_decref(o);
			return WEFTCTL_OK; /* no record: nothing more to say */
		}
		if (json_is_true(json_object_get(o, "ended")))
			break;
		usleep(50000);
	}
	if (ctx->json) {
		char *t = json_dumps(o, JSON_COMPACT);

		if (t)
			fprintf(stderr, "%s\n", t);
		free(t);
	}
	if (strcmp(weftctl_jstr_or(o, "reason", "ok"), "ok")) {
		fprintf(stderr, "weftctl: stream %s ended: %s (%s)\n", argv[2],
			weftctl_jstr_or(o, "error", "?"), weftctl_jstr_or(o, "reason", "?"));
		json_decref(o);
		return WEFTCTL_ERR;
	}
	json_decref(o);
	return WEFTCTL_OK;
}
