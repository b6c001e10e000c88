// SPDX-License-Identifier: MIT
/*
 * A minimal HTTP/1.1 keep-alive echo server and a keep-alive load client,
 * for bench/svc.sh (the backend contract's latency without a slow backend
 * in the way). Not part of weft.
 *   http_echo serve PORT              127.0.0.1:PORT, one thread, epoll;
 *                                     every request answered 200 with its body
 *                                     (then closed if it said Connection: close)
 *   http_echo load HOST:PORT PATH N   N sequential POSTs of 16 bytes on one
 *                                     connection (answers framed by
 *                                     Content-Length or chunked); prints
 *                                     "p50 X us p99 Y us"
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF (1 << 20)

struct conn {
	int fd;
	size_t len;
	char buf[BUF];
};

static int serve(int port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	struct epoll_event e = {.events = EPOLLIN}, evs[64];
	int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0), ep = epoll_create1(0);

	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) || listen(lfd, 128))
		return perror("bind"), 1;
	e.data.ptr = NULL;
	epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &e);
	for (;;) {
		int n = epoll_wait(ep, evs, 64, -1);

		for (int i = 0; i < n; i++) {
			struct conn *c = evs[i].data.ptr;
			ssize_t r;

			if (!c) {
				int fd = accept(lfd, NULL, NULL);

				if (fd < 0)
					continue;
				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				c = calloc(1, sizeof(*c));
				c->fd = fd;
				e.data.ptr = c;
				epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e);
				continue;
			}
			r = read(c->fd, c->buf + c->len, BUF - c->len);
			if (r <= 0) {
				close(c->fd);
				free(c);
				continue;
			}
			c->len += (size_t)r;
			for (;;) {
				char *end = memmem(c->buf, c->len, "\r\n\r\n", 4), *cl, out[128];
				size_t hl, bl = 0;
				int ol, bye;

				if (!end)
					break;
				hl = (size_t)(end - c->buf) + 4;
				*end = 0;
				cl = strcasestr(c->buf, "\r\nContent-Length:");
				if (cl)
					bl = strtoul(cl + 17, NULL, 10);
				bye = strcasestr(c->buf, "\r\nConnection: close") != NULL;
				*end = '\r';
				if (c->len < hl + bl)
					break;
				ol = snprintf(out, sizeof(out),
					      "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", bl);
				if (bl + (size_t)ol <= sizeof(c->buf) - 0) {
					char resp[4096];

					if (bl + (size_t)ol <= sizeof(resp)) {
						memcpy(resp, out, (size_t)ol);
						memcpy(resp + ol, c->buf + hl, bl);
						(void)!write(c->fd, resp, (size_t)ol + bl);
					} else {
						(void)!write(c->fd, out, (size_t)ol);
						(void)!write(c->fd, c->buf + hl, bl);
					}
				}
				memmove(c->buf, c->buf + hl + bl, c->len - hl - bl);
				c->len -= hl + bl;
				if (bye) { /* the client asked (RFC 9112 9.6) */
					close(c->fd);
					free(c);
					break;
				}
			}
		}
	}
}

static double now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e6 + (double)t.tv_nsec / 1e3;
}

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int load(const char *hostport, const char *path, int n)
{
	struct sockaddr_in sin = {.sin_family = AF_INET};
	char host[64], req[512], buf[65536];
	const char *colon = strrchr(hostport, ':');
	double *lat = calloc((size_t)n, sizeof(double));
	int one = 1, fd, rl;

	if (!colon || (size_t)(colon - hostport) >= sizeof(host) || !lat)
		return 2;
	memcpy(host, hostport, (size_t)(colon - hostport));
	host[colon - hostport] = 0;
	sin.sin_port = htons((uint16_t)atoi(colon + 1));
	inet_pton(AF_INET, host, &sin.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)))
		return perror("connect"), 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	rl = snprintf(req, sizeof(req),
		      "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 16\r\n\r\n0123456789abcdef",
		      path, hostport);
	for (int i = 0; i < n; i++) {
		double t0 = now_us();
		size_t have = 0, need = 0, hl = 0;

		if (write(fd, req, (size_t)rl) != rl)
			return perror("write"), 1;
		for (;;) {
			ssize_t r = read(fd, buf + have, sizeof(buf) - have);
			char *end;

			if (r <= 0)
				return fprintf(stderr, "closed after %d\n", i), 1;
			have += (size_t)r;
			end = memmem(buf, have, "\r\n\r\n", 4);
			if (end && !need) {
				char *cl = memmem(buf, (size_t)(end - buf) + 2, "\r\nContent-Length:", 17);
				int chunked = memmem(buf, (size_t)(end - buf) + 2,
						     "\r\nTransfer-Encoding: chunked\r\n", 30) != NULL;

				if ((!cl && !chunked) || strncmp(buf, "HTTP/1.1 200", 12))
					return fprintf(stderr, "bad answer: %.*s\n", (int)have, buf), 1;
				need = cl ? (size_t)(end - buf) + 4 + strtoul(cl + 17, NULL, 10) : 0;
				hl = (size_t)(end - buf) + 2;
			}
			/* chunked (a pass-through's unknown length): to the last chunk */
			if (!need && hl && memmem(buf + hl, have - hl, "\r\n0\r\n\r\n", 7))
				break;
			if (need && have >= need)
				break;
		}
		lat[i] = now_us() - t0;
	}
	qsort(lat, (size_t)n, sizeof(double), cmp);
	printf("p50 %.0f us  p99 %.0f us  (%d calls, one keep-alive connection)\n", lat[n / 2],
	       lat[n * 99 / 100], n);
	free(lat);
	close(fd);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]));
	if (argc == 5 && !strcmp(argv[1], "load"))
		return load(argv[2], argv[3], atoi(argv[4]));
	fprintf(stderr, "usage: http_echo serve PORT | load HOST:PORT PATH N\n");
	return 2;
}
