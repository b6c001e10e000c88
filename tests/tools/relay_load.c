// SPDX-License-Identifier: MIT
/*
 * relay_load: one end of a relay circuit for bench/relay.sh (namespaces
 * only). Binds (relay_bind_request(), docs/PROTOCOL.md "Relay bind";
 * retried 200 ms, 400 ms ... deadline 5 s), then
 *
 *   relay_load send RELAY_IP PORT TOKEN SIZE SECONDS   sendmmsg as fast as it can
 *   relay_load hold RELAY_IP PORT TOKEN SECONDS        stay bound (never reads)
 *
 * send prints "sent N pps P". The receiving side is counted by the bench
 * from the interface (rx_packets), so the sink costs no CPU.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "weft/relay_fwd.h"

#define BATCH 64

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int do_bind(int fd, const struct sockaddr_in *relay, const uint8_t tok[16])
{
	uint8_t m[RELAY_BIND_LEN], tid[12], buf[2048];
	double deadline = now_s() + 5.0, wait = 0.2;

	for (int i = 0; i < 12; i++)
		tid[i] = (uint8_t)rand();
	if (relay_bind_request(tok, tid, m, sizeof(m)) != RELAY_BIND_LEN)
		return -1;
	while (now_s() < deadline) {
		struct timeval tv = { 0, (suseconds_t)(wait * 1e6) };
		ssize_t n;

		sendto(fd, m, sizeof(m), 0, (const struct sockaddr *)relay, sizeof(*relay));
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		n = recv(fd, buf, sizeof(buf), 0);
		if (n >= 20 && buf[0] == 1 && buf[1] == 1 && !memcmp(buf + 8, m + 8, 12))
			return 0;
		if (wait < 1.6)
			wait *= 2;
	}
	return -1;
}

int main(int argc, char **argv)
{
	struct sockaddr_in relay = { .sin_family = AF_INET };
	uint8_t tok[16];
	int fd;

	if (argc < 6 || inet_pton(AF_INET, argv[2], &relay.sin_addr) != 1 || strlen(argv[4]) != 32) {
		fprintf(stderr, "usage: relay_load send|hold RELAY_IP PORT TOKEN [SIZE] SECONDS\n");
		return 2;
	}
	relay.sin_port = htons((uint16_t)atoi(argv[3]));
	for (int i = 0; i < 16; i++)
		if (sscanf(argv[4] + 2 * i, "%2hhx", &tok[i]) != 1)
			return 2;
	srand((unsigned int)getpid());
	fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (fd < 0 || do_bind(fd, &relay, tok)) {
		fprintf(stderr, "relay_load: bind not answered within 5 s\n");
		return 1;
	}
	printf("bound\n");
	fflush(stdout);
	if (!strcmp(argv[1], "hold")) {
		sleep((unsigned int)atoi(argv[5]));
		return 0;
	}
	if (argc < 7)
		return 2;
	{
		size_t size = (size_t)atoi(argv[5]);
		double secs = atof(argv[6]), t0, t;
		static uint8_t payload[2048];
		struct mmsghdr mm[BATCH];
		struct iovec iov[BATCH];
		uint64_t sent = 0;

		if (size < 1 || size > sizeof(payload))
			return 2;
		memset(payload, 0x5a, size);
		payload[0] = 0x40; /* QUIC's fixed bit: never bind-shaped */
		memset(mm, 0, sizeof(mm));
		for (int i = 0; i < BATCH; i++) {
			iov[i].iov_base = payload;
			iov[i].iov_len = size;
			mm[i].msg_hdr.msg_iov = &iov[i];
			mm[i].msg_hdr.msg_iovlen = 1;
			mm[i].msg_hdr.msg_name = &relay;
			mm[i].msg_hdr.msg_namelen = sizeof(relay);
		}
		t0 = now_s();
		do {
			int r = sendmmsg(fd, mm, BATCH, 0);

			if (r > 0)
				sent += (uint64_t)r;
			t = now_s();
		} while (t - t0 < secs);
		printf("sent %llu pps %.0f\n", (unsigned long long)sent, (double)sent / (t - t0));
	}
	return 0;
}
