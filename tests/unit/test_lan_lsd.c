// SPDX-License-Identifier: MIT
/* BEP 14 messages, the announce schedule and the LAN peer table
 * (userspace/lan/lsd.c, lsd_tab.c): no I/O, a virtual clock. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "weft/lan.h"

#define IH1 "0123456789abcdef0123456789abcdef01234567"
#define IH2 "89ABCDEF0123456789ABCDEF0123456789ABCDEF"

static int parse_str(const char *s, struct lsd_msg *m)
{
	return lsd_parse((const uint8_t *)s, strlen(s), m);
}

/* Many cases of one shape: {input, expected return, port, nih, ignored}. */
static void test_parse_table(void **state)
{
	static const struct {
		const char *in;
		int rc;
		uint16_t port;
		unsigned int nih, ignored;
	} c[] = {
	    /* libtorrent's announce, as lsd.cpp renders it */
	    {"BT-SEARCH * HTTP/1.1\r\nHost: 239.192.152.143:6771\r\nPort: 6881\r\nInfohash: " IH1
	     "\r\ncookie: 1a2b\r\n\r\n\r\n",
	     0, 6881, 1, 0},
	    /* two infohashes, upper case hex, LF line ends, method case */
	    {"bt-search * HTTP/1.1\nPort: 51413\nInfohash: " IH1 "\nInfohash: " IH2 "\n\n", 0, 51413,
	     2, 0},
	    /* the same infohash twice, a malformed one, an all-zero one */
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nInfohash: " IH1 "\r\nInfohash: " IH1
	     "\r\nInfohash: 12\r\nInfohash: 0000000000000000000000000000000000000000\r\n\r\n",
	     0, 1, 1, 3},
	    /* no blank line at the end: accepted (the datagram ends) */
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 65535\r\n", 0, 65535, 0, 0},
	    /* refused */
	    {"M-SEARCH * HTTP/1.1\r\nPort: 6881\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/2.0\r\nPort: 6881\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nHost: x\r\n\r\n", -EINVAL, 0, 0, 0},	/* no Port */
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 0\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 65536\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 68 81\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nPort: -1\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 1\r\nPort: 1\r\n\r\n", -EINVAL, 0, 0, 0},
	    {"BT-SEARCH * HTTP/1.1\r\nPort 6881\r\n\r\n", -EINVAL, 0, 0, 0}, /* no colon */
	    {"BT-SEARCH * HTTP/1.1\r\nPort: 6881", -EINVAL, 0, 0, 0},	  /* line cut */
	    {"BT-SEARCH * HTTP/1.1", -EINVAL, 0, 0, 0},
	    {"", -EINVAL, 0, 0, 0},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		struct lsd_msg m;
		int rc = parse_str(c[i].in, &m);

		assert_int_equal(rc, c[i].rc);
		if (rc)
			continue;
		assert_int_equal(m.port, c[i].port);
		assert_int_equal(m.nih, c[i].nih);
		assert_int_equal(m.ih_ignored, c[i].ignored);
	}
}

static void test_parse_fields(void **state)
{
	struct lsd_msg m;
	char big[2000];
	size_t n;

	(void)state;
	assert_int_equal(parse_str("BT-SEARCH * HTTP/1.1\r\nPort: 6881\r\nInfohash: " IH1
				   "\r\ncookie: 7fffffff\r\nx-weft-quic: 4433\r\nX-Weft-DHT:  "
				   "6882 \r\n\r\n\r\n",
				   &m),
			 0);
	assert_true(m.has_cookie);
	assert_int_equal(m.cookie, 0x7fffffff);
	assert_int_equal(m.weft_quic, 4433);
	assert_int_equal(m.weft_dht, 6882);
	assert_int_equal(m.ih[0][0], 0x01);
	assert_int_equal(m.ih[0][19], 0x67);
	/* a cookie that is not hex: no cookie; a bad x-weft port: absent */
	assert_int_equal(parse_str("BT-SEARCH * HTTP/1.1\r\nPort: 1\r\ncookie: xyz\r\n"
				   "x-weft-quic: 0\r\n\r\n",
				   &m),
			 0);
	assert_false(m.has_cookie);
	assert_int_equal(m.weft_quic, 0);
	/* more than LSD_MAX_HEADERS header lines */
	n = (size_t)snprintf(big, sizeof(big), "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n");
	for (int i = 0; i < LSD_MAX_HEADERS; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "X: %d\r\n", i);
	assert_int_equal(parse_str(big, &m), -E2BIG);
	/* more than LSD_MAX_IH infohashes: the first kept, the rest counted */
	n = (size_t)snprintf(big, sizeof(big), "BT-SEARCH * HTTP/1.1\r\nPort: 1\r\n");
	for (int i = 0; i < LSD_MAX_IH + 5; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n,
				      "Infohash: %02x23456789abcdef0123456789abcdef01234567\r\n", i + 1);
	assert_true(n <= LSD_MAX_RECV);
	assert_int_equal(parse_str(big, &m), 0);
	assert_int_equal(m.nih, LSD_MAX_IH);
	assert_int_equal(m.ih_ignored, 5);
	/* longer than a datagram we take */
	memset(big, 'a', sizeof(big));
	assert_int_equal(lsd_parse((const uint8_t *)big, LSD_MAX_RECV + 1, &m), -E2BIG);
}

/* The test vector of docs/PROTOCOL.md ("LAN discovery"). */
static void test_encode_vector(void **state)
{
	static const char want4[] = "BT-SEARCH * HTTP/1.1\r\n"
				    "Host: 239.192.152.143:6771\r\n"
				    "Port: 6881\r\n"
				    "Infohash: 0123456789abcdef0123456789abcdef01234567\r\n"
				    "cookie: 5eed\r\n"
				    "x-weft-quic: 4433\r\n"
				    "x-weft-dht: 6881\r\n"
				    "\r\n\r\n";
	struct lsd_msg m = {.port = 6881, .weft_quic = 4433, .weft_dht = 6881, .has_cookie = 1,
			    .cookie = 0x5eed, .nih = 1};
	struct lsd_msg back;
	char buf[LSD_MAX_SEND];
	int n;

	(void)state;
	for (int i = 0; i < 20; i++)
		m.ih[0][i] = (uint8_t)(((2 * i) % 16) << 4 | ((2 * i + 1) % 16));
	n = lsd_encode(buf, sizeof(buf), &m, 0);
	assert_int_equal(n, (int)strlen(want4));
	assert_memory_equal(buf, want4, (size_t)n);
	n = lsd_encode(buf, sizeof(buf), &m, 1);
	assert_true(n > 0);
	assert_non_null(memmem(buf, (size_t)n, "Host: [ff15::efc0:988f]:6771\r\n", 30));
	assert_int_equal(lsd_parse((const uint8_t *)buf, (size_t)n, &back), 0);
	assert_memory_equal(&back, &m, sizeof(m));
	/* a full message fits in BEP 14's 1400 bytes */
	m.nih = LSD_MAX_IH;
	n = lsd_encode(buf, sizeof(buf), &m, 1);
	assert_true(n > 0 && n <= LSD_MAX_SEND);
	assert_int_equal(lsd_encode(buf, 100, &m, 0), -ENOSPC);
	m.port = 0;
	assert_int_equal(lsd_encode(buf, sizeof(buf), &m, 0), -EINVAL);
}

static void test_schedule(void **state)
{
	struct lsd_sched *s;
	uint8_t ih[50][LSD_IH_LEN], out[LSD_MAX_IH][LSD_IH_LEN];
	uint64_t wake = 0, t = 1000;
	int n, total = 0;

	(void)state;
	memset(ih, 0, sizeof(ih));
	for (int i = 0; i < 50; i++)
		ih[i][0] = (uint8_t)(i + 1);
	assert_int_equal(lsd_sched_new(&s, 0, 0), 0);
	/* nothing seeded: a presence message at once, then nothing for 5 min */
	assert_int_equal(lsd_sched_next(s, t, out, LSD_MAX_IH, &wake), 0);
	assert_int_equal(lsd_sched_next(s, t + 1000, out, LSD_MAX_IH, &wake), -EAGAIN);
	assert_int_equal(wake, t + LSD_MIN_GAP_MS);
	assert_int_equal(lsd_sched_next(s, t + LSD_MIN_GAP_MS, out, LSD_MAX_IH, &wake), -EAGAIN);
	assert_int_equal(wake, t + LSD_ANNOUNCE_MS);
	/* 50 seeded: 20 a message, never more than one message a minute */
	assert_int_equal(lsd_sched_set(s, (const uint8_t(*)[LSD_IH_LEN])ih, 50), 0);
	t += LSD_MIN_GAP_MS;
	for (int k = 0; k < 3; k++) {
		n = lsd_sched_next(s, t, out, LSD_MAX_IH, &wake);
		assert_int_equal(n, k < 2 ? LSD_MAX_IH : 10);
		total += n;
		assert_int_equal(lsd_sched_next(s, t + 1, out, LSD_MAX_IH, &wake), -EAGAIN);
		assert_int_equal(wake, t + LSD_MIN_GAP_MS);
		t += LSD_MIN_GAP_MS;
	}
	assert_int_equal(total, 50);
	/* each infohash again only after 5 minutes */
	assert_int_equal(lsd_sched_next(s, t, out, LSD_MAX_IH, &wake), -EAGAIN);
	t = 1000 + LSD_MIN_GAP_MS + LSD_ANNOUNCE_MS;
	assert_int_equal(lsd_sched_next(s, t, out, LSD_MAX_IH, &wake), LSD_MAX_IH);
	/* a new one is announced at the next minute, before those due later */
	ih[0][1] = 0xff;
	assert_int_equal(lsd_sched_set(s, (const uint8_t(*)[LSD_IH_LEN])ih, 50), 0);
	assert_int_equal(lsd_sched_next(s, t + LSD_MIN_GAP_MS, out, LSD_MAX_IH, &wake),
			 LSD_MAX_IH);
	assert_memory_equal(out[0], ih[0], LSD_IH_LEN);
	lsd_sched_free(s);
}

static struct sockaddr_in src(uint32_t host)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(6771)};

	a.sin_addr.s_addr = htonl(0xc0000200u + host); /* 192.0.2.x */
	return a;
}

static void test_table(void **state)
{
	struct lsd_tab *t;
	struct lsd_msg m = {.port = 6881, .weft_quic = 4433, .weft_dht = 6882, .nih = 1};
	struct lsd_msg bt = {.port = 51413, .nih = 1};
	struct lsd_action act;
	struct sockaddr_storage prov[4];
	struct lsd_peer_info pi;
	struct sockaddr_in a = src(1), b = src(2), c = src(3);
	uint64_t now = 10000;
	int got_eagain = 0;

	(void)state;
	memset(m.ih[0], 0xab, LSD_IH_LEN);
	memset(bt.ih[0], 0xcd, LSD_IH_LEN);
	assert_int_equal(lsd_tab_new(&t, 2), 0);
	/* a weft peer: DHT contact at its x-weft-dht port, provider at its QUIC port */
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&a, sizeof(a), &m, now, &act), 0);
	assert_true(act.new_peer && act.ping);
	assert_int_equal(ntohs(((struct sockaddr_in *)&act.contact)->sin_port), 6882);
	assert_int_equal(lsd_tab_providers(t, m.ih[0], now, prov, 4), 1);
	assert_int_equal(ntohs(((struct sockaddr_in *)&prov[0])->sin_port), 4433);
	/* heard again: no second ping within LSD_PING_MS */
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&a, sizeof(a), &m, now + 1, &act), 0);
	assert_false(act.new_peer || act.ping);
	/* a BitTorrent peer: contact at its Port, never a provider */
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&b, sizeof(b), &bt, now, &act), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&act.contact)->sin_port), 51413);
	assert_int_equal(lsd_tab_providers(t, bt.ih[0], now, prov, 4), 0);
	assert_int_equal(lsd_tab_peer(t, 1, now, &pi), 0);
	assert_int_equal(pi.nih, 1);
	assert_memory_equal(pi.ih[0], bt.ih[0], LSD_IH_LEN);
	/* full: a new source is refused while the others are live ... */
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&c, sizeof(c), &m, now, &act),
			 -ENOSPC);
	/* ... and takes an expired one's slot */
	now += LSD_PEER_TTL_MS + 1;
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&c, sizeof(c), &m, now, &act), 0);
	assert_int_equal(lsd_tab_count(t, now), 1);
	assert_int_equal(lsd_tab_providers(t, m.ih[0], now, prov, 4), 1);
	/* one source's rate: a burst, then refused */
	for (int i = 0; i < LSD_SRC_BURST + 2; i++)
		if (lsd_tab_input(t, (struct sockaddr *)&c, sizeof(c), &m, now, &act) == -EAGAIN)
			got_eagain++;
	assert_int_equal(got_eagain, 3); /* the burst minus the message above */
	assert_int_equal(lsd_tab_input(t, (struct sockaddr *)&c, sizeof(c), &m,
				       now + LSD_SRC_EVERY_MS, &act),
			 0);
	lsd_tab_free(t);
}

static void test_admit(void **state)
{
	struct lsd_tab *t;
	int ok = 0;

	(void)state;
	assert_int_equal(lsd_tab_new(&t, 0), 0);
	for (int i = 0; i < 3 * LSD_RX_PER_S; i++)
		ok += lsd_tab_admit(t, 5000);
	assert_int_equal(ok, LSD_RX_PER_S);
	assert_int_equal(lsd_tab_admit(t, 5000 + 1000 / LSD_RX_PER_S), 1);
	lsd_tab_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_table),  cmocka_unit_test(test_parse_fields),
	    cmocka_unit_test(test_encode_vector), cmocka_unit_test(test_schedule),
	    cmocka_unit_test(test_table),	  cmocka_unit_test(test_admit),
	};

	return cmocka_run_group_tests_name("lan_lsd", tests, NULL, NULL);
}
