// SPDX-License-Identifier: MIT
/*
 * Software policer: its own behaviour (bans with LPM + expiry semantics,
 * buckets, bounded table), and equivalence with the XDP program: a seeded
 * random corpus of packets, bans and clock steps is fed to both, and every
 * verdict must be identical. The BPF half needs root and is skipped
 * otherwise.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include "weft/policer.h"
#include "weft/xdp.h"
#include "weft/xdp_abi.h"
#include "xdp_testpkt.h"

#define T0 1000000000000ULL
#define MS 1000000ULL

static uint64_t rng_state;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 11);
}

static struct policer *mk(const struct wxdp_config *c, uint32_t buckets)
{
	struct policer_opts o = { .config = c, .buckets = buckets, .seed = 42 };
	struct policer *p = NULL;

	assert_int_equal(policer_new(&p, &o), 0);
	return p;
}

static unsigned int chk(struct policer *p, int fam, const uint8_t *src, uint16_t port,
			const char *payload, size_t len, uint64_t now)
{
	struct policer_pkt k = { .family = (uint8_t)fam, .dport = port,
				 .payload = (const uint8_t *)payload, .len = len, .now_ns = now };

	memcpy(k.src, src, fam == AF_INET ? 4 : 16);
	return policer_check(p, &k);
}

static void pban(struct policer *p, const char *cidr, uint64_t exp)
{
	struct wxdp_ban b;

	assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
	b.expires_ns = exp;
	assert_int_equal(policer_ban_add(p, &b), 0);
}

static void test_policer_basic(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 }, b4[4] = { 198, 51, 100, 7 };
	static const uint8_t a9[4] = { 192, 0, 2, 9 };
	uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1, [15] = 1 };
	struct wxdp_config c;
	struct policer *p;
	struct wxdp_ban b;
	uint64_t st[WXDP_STAT__MAX];

	(void)state;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 10, .burst = 2 };
	p = mk(&c, 0);
	assert_int_equal(chk(p, AF_INET, a4, 53, "x", 1, T0), WXDP_STAT_PASS_NOT_WEFT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "x", 1, T0), WXDP_STAT_DROP_DHT_NOT_DICT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "", 0, T0), WXDP_STAT_DROP_SHORT);
	assert_int_equal(chk(p, AF_INET, a4, 4433, "\x01", 1, T0), WXDP_STAT_DROP_QUIC_FIXED);
	/* A small Initial is accepted (the endpoint applies the 1200-byte
	 * rule) and pays the Initial bucket. */
	assert_int_equal(chk(p, AF_INET, a4, 4433, "\xc0\x00\x00\x00\x01", 5, T0),
			 WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0), WXDP_STAT_DROP_RATE_DHT);
	assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + 100 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET, b4, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	/* Bans: nested, expiry falls back to the shorter prefix. */
	pban(p, "192.0.2.9", T0 + MS);
	pban(p, "192.0.2.0/24", T0 + 2 * MS);
	pban(p, "2001:db8::/32", 0);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0 + MS), WXDP_STAT_DROP_BANNED);
	assert_int_equal(chk(p, AF_INET, a9, 6881, "de", 2, T0 + 2 * MS), WXDP_STAT_REDIRECT);
	assert_int_equal(chk(p, AF_INET6, a6, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	assert_int_equal(policer_ban_gc(p, T0 + 2 * MS), 2);
	assert_int_equal(wxdp_cidr_parse("2001:db8::/32", &b), 0);
	assert_int_equal(policer_ban_del(p, &b), 0);
	assert_int_equal(policer_ban_del(p, &b), -ENOENT);
	assert_int_equal(chk(p, AF_INET6, a6, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
	policer_stats(p, st);
	assert_int_equal(st[WXDP_STAT_RX], 15);
	assert_int_equal(st[WXDP_STAT_DROP_SHORT], 1);
	assert_int_equal(st[WXDP_STAT_DROP_BANNED], 3);
	/* Bad config refused. */
	c.v6_prefix = 0;
	assert_int_equal(policer_config_set(p, &c), -EINVAL);
	policer_free(p);
	policer_free(NULL);
}

/* Same nesting bound as the XDP program (test_xdp_prog test_bans_nested). */
static void test_policer_nested(void **state)
{
	static const uint8_t a4[4] = { 192, 0, 2, 1 };
	static const uint8_t a6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	struct policer *p = mk(NULL, 0);
	char cidr[64];

	(void)state;
	for (int v6 = 0; v6 < 2; v6++) {
		int full = v6 ? 128 : 32, fam = v6 ? AF_INET6 : AF_INET;
		const uint8_t *src = v6 ? a6 : a4;

		for (int i = 0; i < WXDP_BAN_MAX_NESTED; i++) {
			snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
				 full - i);
			pban(p, cidr, T0 - 1);
		}
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED);
		pban(p, cidr, 0);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
		pban(p, cidr, T0 - 1);
		snprintf(cidr, sizeof(cidr), v6 ? "2001:db8::1/%d" : "192.0.2.1/%d",
			 full - WXDP_BAN_MAX_NESTED - 1);
		pban(p, cidr, 0);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_REDIRECT);
		assert_int_equal(policer_ban_gc(p, T0), WXDP_BAN_MAX_NESTED + 1);
		assert_int_equal(chk(p, fam, src, 6881, "de", 2, T0), WXDP_STAT_DROP_BANNED);
	}
	policer_free(p);
}

static void test_policer_bounded(void **state)
{
	struct wxdp_config c;
	struct policer *p;
	struct wxdp_ban b;
	uint8_t a4[4] = { 10, 0, 0, 0 };
	char cidr[32];

	(void)state;
	wxdp_config_default(&c);
	p = mk(&c, 256);
	for (int i = 0; i < 20000; i++) {
		a4[1] = (uint8_t)(i >> 16);
		a4[2] = (uint8_t)(i >> 8);
		a4[3] = (uint8_t)i;
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0 + (uint64_t)i),
				 WXDP_STAT_REDIRECT);
	}
	assert_true(policer_bucket_count(p) <= 256);
	assert_true(policer_bucket_count(p) >= 128);
	policer_free(p);

	/* Ban table: capacity is enforced; deletes keep lookups correct. */
	{
		struct policer_opts o = { .bans = 64, .seed = 1 };

		assert_int_equal(policer_new(&p, &o), 0);
	}
	for (int i = 0; i < 64; i++) {
		snprintf(cidr, sizeof(cidr), "10.%d.0.0/16", i);
		pban(p, cidr, 0);
	}
	assert_int_equal(wxdp_cidr_parse("11.0.0.0/8", &b), 0);
	assert_int_equal(policer_ban_add(p, &b), -ENOSPC);
	for (int i = 0; i < 64; i += 2) {
		snprintf(cidr, sizeof(cidr), "10.%d.0.0/16", i);
		assert_int_equal(wxdp_cidr_parse(cidr, &b), 0);
		assert_int_equal(policer_ban_del(p, &b), 0);
	}
	for (int i = 0; i < 64; i++) {
		a4[1] = (uint8_t)i;
		assert_int_equal(chk(p, AF_INET, a4, 6881, "de", 2, T0),
				 i % 2 ? WXDP_STAT_DROP_BANNED : WXDP_STAT_REDIRECT);
	}
	policer_free(p);
}

/* --- equivalence with the XDP program --- */

static int bpf_verdict(struct wxdp *x, const uint8_t *pkt, size_t len)
{
	uint64_t before[WXDP_STAT__MAX], after[WXDP_STAT__MAX];
	uint8_t out[TPKT_MAX];
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = pkt, .data_size_in = (__u32)len,
		    .data_out = out, .data_size_out = sizeof(out), .repeat = 1);
	int v = -1;

	assert_int_equal(wxdp_stats_read(x, before), 0);
	assert_int_equal(bpf_prog_test_run_opts(wxdp_fd(x, WXDP_FD_PROG), &opts), 0);
	assert_int_equal(wxdp_stats_read(x, after), 0);
	for (int i = 1; i < WXDP_STAT__MAX; i++)
		if (after[i] != before[i])
			v = i;
	/* No socket under test-run: "accepted" shows as pass-no-socket. */
	return v == WXDP_STAT_PASS_NO_SOCKET ? WXDP_STAT_REDIRECT : v;
}

static void test_same_verdicts(void **state)
{
	static uint8_t initial[1300] = { 0xc3, 0, 0, 0, 1 };
	static uint8_t initial2[1250] = { 0xd0, 0x6b, 0x33, 0x43, 0xcf };
	static uint8_t vneg[40] = { 0xc0, 0, 0, 0, 0 };
	static const struct {
		uint16_t port;
		const char *pl;
		size_t len;
	} kinds[] = {
		{ 6881, "d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:xx1:y1:qe", 56 },
		{ 6881, "de", 2 },
		{ 6881, "l1:xe", 5 },
		{ 6881, "", 0 },
		{ 4433, "\x41\x00\x01\x02\x03\x04\x05\x06", 8 },
		{ 4433, "\x01\x00\x01\x02", 4 },
		{ 4433, "\xc0\x00\x00", 3 },
		{ 4433, (const char *)initial, sizeof(initial) },
		{ 4433, (const char *)initial, 1199 },
		{ 4433, (const char *)initial2, sizeof(initial2) },
		{ 4433, (const char *)vneg, sizeof(vneg) },
		{ 4433, "", 0 },
		{ 5353, "hello", 5 },
	};
	static const char *ban_pool[] = { "192.0.2.0/24", "192.0.2.3", "198.51.100.0/25",
					  "2001:db8::/48", "2001:db8:0:2::/64", "2001:db8:0:2::5",
					  "0.0.0.0/1", "203.0.113.0/24" };
	struct wxdp_opts xo = { .no_attach = 1 };
	struct wxdp_config c;
	struct wxdp *x = NULL;
	struct policer *p;
	uint8_t buf[TPKT_MAX];
	uint64_t now = T0, nverd[WXDP_STAT__MAX] = { 0 };
	int compared = 0;

	(void)state;
	if (geteuid() != 0) {
		print_message("SKIP: BPF half needs root\n");
		skip();
	}
	rng_state = 0x5eed1234abcdULL;
	wxdp_config_default(&c);
	c.dht = (struct wxdp_rate){ .pps = 2, .burst = 3 };
	c.quic = (struct wxdp_rate){ .pps = 1, .burst = 2 };
	c.quic_initial = (struct wxdp_rate){ .pps = 1, .burst = 1 };
	c.now_override_ns = now;
	assert_int_equal(wxdp_new(&x, &xo), 0);
	assert_int_equal(wxdp_config_set(x, &c), 0);
	p = mk(&c, 0);

	for (int step = 0; step < 4000; step++) {
		uint32_t r = rnd() % 100;

		if (r < 3) {
			/* Ban or unban (in both), sometimes with a short expiry. */
			struct wxdp_ban b;

			assert_int_equal(wxdp_cidr_parse(ban_pool[rnd() % 8], &b), 0);
			if (rnd() % 2) {
				b.expires_ns = rnd() % 3 ? now + (rnd() % 200) * MS : 0;
				assert_int_equal(wxdp_ban_add(x, &b), 0);
				assert_int_equal(policer_ban_add(p, &b), 0);
			} else {
				int e1 = wxdp_ban_del(x, &b), e2 = policer_ban_del(p, &b);

				assert_int_equal(e1, e2);
			}
			continue;
		}
		if (r < 5) {
			c.v6_prefix = (uint8_t)(rnd() % 2 ? 64 : 56 + rnd() % 73);
			assert_int_equal(wxdp_config_set(x, &c), 0);
			assert_int_equal(policer_config_set(p, &c), 0);
			continue;
		}
		if (r < 20) {
			now += (rnd() % 50) * MS + rnd() % 1000;
			c.now_override_ns = now;
			assert_int_equal(wxdp_config_set(x, &c), 0);
			assert_int_equal(policer_config_set(p, &c), 0);
			continue;
		}
		{
			struct tpkt t = { 0 };
			struct policer_pkt k = { 0 };
			int kind = (int)(rnd() % (sizeof(kinds) / sizeof(kinds[0]))), vb;
			unsigned int vp;
			size_t len;

			if (rnd() % 2) {
				tpkt_v4(&t, (uint8_t)(1 + rnd() % 6));
				if (rnd() % 4 == 0)
					t.src[0] = 198, t.src[1] = 51, t.src[2] = 100;
			} else {
				tpkt_v6(&t, (uint16_t)(1 + rnd() % 3), (uint8_t)(1 + rnd() % 6));
			}
			t.vlans = (int)(rnd() % 3);
			t.sport = 40000;
			t.dport = kinds[kind].port;
			t.payload = (const uint8_t *)kinds[kind].pl;
			t.plen = kinds[kind].len;
			len = tpkt_build(buf, &t);
			vb = bpf_verdict(x, buf, len);
			k.family = t.v6 ? AF_INET6 : AF_INET;
			memcpy(k.src, t.src, 16);
			k.dport = t.dport;
			k.payload = t.payload;
			k.len = t.plen;
			k.now_ns = 1; /* ignored: the override wins on both sides */
			vp = policer_check(p, &k);
			if ((int)vp != vb)
				fail_msg("step %d kind %d: bpf %s, policer %s", step, kind,
					 wxdp_stat_name((unsigned)vb), wxdp_stat_name(vp));
			nverd[vp]++;
			compared++;
		}
	}
	/* The corpus exercised every verdict the policer can give. */
	for (int i = WXDP_STAT_PASS_NOT_WEFT; i < WXDP_STAT__MAX; i++) {
		if (i == WXDP_STAT_PASS_FRAGMENT || i == WXDP_STAT_PASS_NO_SOCKET ||
		    i == WXDP_STAT_DROP_UDP_LEN)
			continue; /* L3/L4 verdicts: the kernel's job on the socket path */
		if (!nverd[i])
			fail_msg("corpus never produced %s", wxdp_stat_name((unsigned)i));
	}
	print_message("compared %d packets, identical verdicts:", compared);
	for (int i = WXDP_STAT_PASS_NOT_WEFT; i < WXDP_STAT__MAX; i++)
		if (nverd[i])
			print_message(" %s=%llu", wxdp_stat_name((unsigned)i),
				      (unsigned long long)nverd[i]);
	print_message("\n");
	policer_free(p);
	wxdp_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_policer_basic),
		cmocka_unit_test(test_policer_nested),
		cmocka_unit_test(test_policer_bounded),
		cmocka_unit_test(test_same_verdicts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
