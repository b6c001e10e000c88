// SPDX-License-Identifier: MIT
/*
 * The floor of a two-proxy path, for bench/svc.sh's WebSocket part: the
 * least any design with a process in the middle on each side can do.
 * Two minimal relays carry a TCP connection's bytes over UDP and back to
 * TCP (the same sockets and namespaces as the gateway path: the client's
 * loopback TCP, the veth's UDP, the backend's loopback TCP), with
 * nothing of weft's: no QUIC, no crypto, no streams, no limits. Each
 * relay is one thread sleeping in poll(2) (as weftd's workers sleep in
 * io_uring_enter), TCP_NODELAY on its TCP sockets (as weftd's).
 *
 *   bench_proxy_floor in  TCP_PORT PEER_IP PEER_UDP_PORT
 *       accepts on 127.0.0.1:TCP_PORT; a client's bytes go to the peer
 *       in UDP datagrams (<= 1400 bytes), the peer's datagrams back
 *   bench_proxy_floor out UDP_PORT BACKEND_IP BACKEND_TCP_PORT
 *       on the first datagram connects to the backend; its bytes go back
 *       to the datagram's source
 * A zero-length datagram closes the connection on the other side. It
 * trusts its peer (a benchmark on a veth pair, not a tool for networks).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK 1400

static int die(const char *what)
{
	fprintf(stderr, "bench_proxy_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void addr_of(struct sockaddr_in *sa, const char *ip, const char *port)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((unsigned short)atoi(port));
	if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1) {
		fprintf(stderr, "bench_proxy_floor: bad address %s\n", ip);
		exit(2);
	}
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

/* tcp -> udp: one read, then datagrams of at most CHUNK; 0 at EOF */
static int tcp_to_udp(int tcp, int udp, const struct sockaddr_in *to)
{
	char buf[65536];
	ssize_t n = read(tcp, buf, sizeof(buf));

	if (n <= 0) {
		sendto(udp, "", 0, 0, (const struct sockaddr *)to, sizeof(*to));
		return -1;
	}
	for (ssize_t off = 0; off < n; off += CHUNK) {
		size_t len = (size_t)(n - off) < CHUNK ? (size_t)(n - off) : CHUNK;

		if (sendto(udp, buf + off, len, 0, (const struct sockaddr *)to, sizeof(*to)) < 0)
			return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa, peer;
	int one = 1, udp, lis = -1, tcp = -1, in;

	if (argc != 5 || (strcmp(argv[1], "in") && strcmp(argv[1], "out"))) {
		fprintf(stderr, "usage: %s in TCP_PORT PEER_IP PEER_UDP_PORT\n"
				"       %s out UDP_PORT BACKEND_IP BACKEND_TCP_PORT\n", argv[0], argv[0]);
		return 2;
	}
	in = !strcmp(argv[1], "in");
	udp = socket(AF_INET, SOCK_DGRAM, 0);
	if (udp < 0)
		die("socket");
	if (in) {
		addr_of(&peer, argv[3], argv[4]);
		addr_of(&sa, "127.0.0.1", argv[2]);
		lis = socket(AF_INET, SOCK_STREAM, 0);
		if (lis < 0)
			die("socket");
		setsockopt(lis, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (bind(lis, (struct sockaddr *)&sa, sizeof(sa)) || listen(lis, 4))
			die("listen");
	} else {
		addr_of(&sa, "0.0.0.0", argv[2]);
		if (bind(udp, (struct sockaddr *)&sa, sizeof(sa)))
			die("bind");
		addr_of(&sa, argv[3], argv[4]); /* the backend */
	}
	for (;;) {
		struct pollfd p[2] = { { .fd = udp, .events = POLLIN },
				       { .fd = tcp >= 0 ? tcp : lis, .events = POLLIN } };

		if (poll(p, p[1].fd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (p[0].revents & POLLIN) {
			char buf[2048];
			struct sockaddr_in from;
			socklen_t fl = sizeof(from);
			ssize_t n = recvfrom(udp, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);

			if (n < 0)
				continue;
			if (!in)
				peer = from;
			if (n == 0) {
				if (tcp >= 0)
					close(tcp);
				tcp = -1;
				continue;
			}
			if (tcp < 0 && !in) {
				tcp = socket(AF_INET, SOCK_STREAM, 0);
				if (tcp < 0 || connect(tcp, (struct sockaddr *)&sa, sizeof(sa)))
					die("connect to the backend");
				nodelay(tcp);
			}
			if (tcp >= 0 && write_all(tcp, buf, (size_t)n)) {
				close(tcp);
				tcp = -1;
			}
		}
		if (p[1].fd >= 0 && (p[1].revents & (POLLIN | POLLHUP | POLLERR))) {
			if (p[1].fd == lis) {
				tcp = accept(lis, NULL, NULL);
				if (tcp >= 0)
					nodelay(tcp);
			} else if (tcp_to_udp(tcp, udp, &peer)) {
				close(tcp);
				tcp = -1;
			}
		}
	}
}
