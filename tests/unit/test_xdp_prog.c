// SPDX-License-Identifier: MIT
/*
 * The XDP program's parser under the kernel's test-run facility: crafted
 * frames (not weft, valid and malformed, VLAN tags and IPv4 options,
 * fragments, IPv6 extension chains, truncation at every length) and the
 * verdict counter each must move; and the loader's config check and attach
 * errors. The per-source policy (bans, buckets, budgets) is
 * test_xdp_policy.c; the fixture and run() are xdp_testrun.h. Needs root
 * (skips otherwise).
 */
#include "weft/util.h"
#include "weft/xdp_policy.h"
#include "xdp_testrun.h"

/*
 * Crafted frames as a table: a base packet (a QUIC short header to the QUIC
 * port or a DHT ping to the DHT port, 192.0.2.1 / 2001:db8::1 port 40000)
 * with the fields of mod that are set replacing the base's (payload:
 * payload and plen together), run in one family or both, and the verdict
 * counter it must move.
 */
enum { BASE_QUIC, BASE_DHT };
enum { FAM_BOTH, FAM_V4, FAM_V6 };
#define DHT_PING_LEN ((int)sizeof(dht_ping) - 1)
#define PAYLOAD(s) .payload = (const uint8_t *)(s), .plen = sizeof(s) - 1

struct frame_case {
	const char *what;
	int base, fam;
	struct tpkt mod;
	int verdict; /* WXDP_STAT_* */
};

static void frame_of(struct tpkt *t, const struct frame_case *c, int v6)
{
	const struct tpkt *m = &c->mod;

	if (c->base == BASE_DHT)
		dht_pkt(t, v6);
	else
		quic_pkt(t, v6);
	if (m->sport)
		t->sport = m->sport;
	if (m->dport)
		t->dport = m->dport;
	if (m->payload) {
		t->payload = m->payload;
		t->plen = m->plen;
	}
	t->proto = m->proto;
	t->vlans = m->vlans;
	t->ip_opt_words = m->ip_opt_words;
	t->v4_frag = m->v4_frag;
	t->udp_len_delta = m->udp_len_delta;
	t->ip_len_delta = m->ip_len_delta;
	t->next = m->next;
	memcpy(t->ext, m->ext, sizeof(t->ext));
}

/* Run the cases of tab that apply to family v6, in order. */
static void run_cases(struct fx *f, const struct frame_case *tab, size_t n, int v6)
{
	struct tpkt t;

	for (size_t i = 0; i < n; i++) {
		const struct frame_case *c = &tab[i];
		int v;

		if (c->fam == (v6 ? FAM_V4 : FAM_V6))
			continue;
		frame_of(&t, c, v6);
		v = run_t(f, &t);
		if (v != c->verdict)
			fail_msg("%s (IPv%d): verdict %d, want %d", c->what, v6 ? 6 : 4, v,
				 c->verdict);
	}
}

static const struct frame_case not_weft[] = {
	{ "DNS", BASE_QUIC, FAM_V4, { .dport = 53 }, WXDP_STAT_PASS_NOT_WEFT },
	{ "port next to QUIC's", BASE_QUIC, FAM_V6, { .dport = 4434 }, WXDP_STAT_PASS_NOT_WEFT },
	{ "TCP", BASE_QUIC, FAM_BOTH, { .proto = IPPROTO_TCP }, WXDP_STAT_PASS_NOT_WEFT },
	/* Source port of weft but destination not: not weft. */
	{ "from weft's port", BASE_QUIC, FAM_V4, { .sport = 4433, .dport = 5000 },
	  WXDP_STAT_PASS_NOT_WEFT },
};

static void test_not_weft(void **state)
{
	struct fx *f = *state;
	uint8_t arp[60] = { 0 };

	NEED_ROOT();
	arp[12] = 0x08;
	arp[13] = 0x06;
	assert_int_equal(run(f, arp, sizeof(arp)), WXDP_STAT_PASS_NOT_WEFT);
	for (int v6 = 0; v6 < 2; v6++)
		run_cases(f, not_weft, WEFT_ARRAY_SIZE(not_weft), v6);
}

static const struct frame_case valid_and_malformed[] = {
	{ "QUIC", BASE_QUIC, FAM_BOTH, {}, WXDP_STAT_PASS_NO_SOCKET },
	{ "DHT", BASE_DHT, FAM_BOTH, {}, WXDP_STAT_PASS_NO_SOCKET },
	/* QUIC Initial, full size, one byte short and tiny: no size rule on
	 * the fast path (a server's ACK/CONNECTION_CLOSE-only Initial may be
	 * small; the endpoint decides). */
	{ "Initial", BASE_QUIC, FAM_BOTH, { .payload = quic_initial, .plen = sizeof(quic_initial) },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "Initial, 1 byte short", BASE_QUIC, FAM_BOTH,
	  { .payload = quic_initial, .plen = sizeof(quic_initial) - 1 }, WXDP_STAT_PASS_NO_SOCKET },
	{ "Initial, 5 bytes", BASE_QUIC, FAM_BOTH, { .payload = quic_initial, .plen = 5 },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "long header without its version", BASE_QUIC, FAM_BOTH,
	  { .payload = quic_initial, .plen = 4 }, WXDP_STAT_DROP_SHORT },
	{ "empty QUIC payload", BASE_QUIC, FAM_BOTH, { PAYLOAD("") }, WXDP_STAT_DROP_SHORT },
	{ "empty DHT payload", BASE_DHT, FAM_BOTH, { PAYLOAD("") }, WXDP_STAT_DROP_SHORT },
	{ "fixed bit clear", BASE_QUIC, FAM_BOTH, { PAYLOAD("\x01\x02\x03\x04\x05\x06\x07\x08") },
	  WXDP_STAT_DROP_QUIC_FIXED },
	/* STUN on the QUIC port (RFC 7983): the magic cookie at payload
	 * bytes 4-7, read from the program's one 8-byte load of the
	 * payload's head (peek_payload), with and without an IP option or a
	 * VLAN tag moving the payload's alignment. */
	{ "STUN binding request", BASE_QUIC, FAM_BOTH,
	  { PAYLOAD("\x00\x01\x00\x00\x21\x12\xa4\x42txid-txid-tx") }, WXDP_STAT_PASS_NO_SOCKET },
	{ "STUN behind a VLAN tag", BASE_QUIC, FAM_BOTH,
	  { PAYLOAD("\x00\x01\x00\x00\x21\x12\xa4\x42txid-txid-tx"), .vlans = 1 },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "STUN behind an IP option", BASE_QUIC, FAM_V4,
	  { PAYLOAD("\x00\x01\x00\x00\x21\x12\xa4\x42txid-txid-tx"), .ip_opt_words = 1 },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "STUN cookie bytes reversed", BASE_QUIC, FAM_BOTH,
	  { PAYLOAD("\x00\x01\x00\x00\x42\xa4\x12\x21txid-txid-tx") }, WXDP_STAT_DROP_QUIC_FIXED },
	{ "STUN header one byte short", BASE_QUIC, FAM_BOTH,
	  { PAYLOAD("\x00\x01\x00\x00\x21\x12\xa4\x42txid-txid-t") }, WXDP_STAT_DROP_QUIC_FIXED },
	{ "DHT not a dictionary", BASE_DHT, FAM_BOTH, { PAYLOAD("l4:spame") },
	  WXDP_STAT_DROP_DHT_NOT_DICT },
	{ "DHT one byte, d", BASE_DHT, FAM_BOTH, { PAYLOAD("d") }, WXDP_STAT_PASS_NO_SOCKET },
	{ "DHT one byte, x", BASE_DHT, FAM_BOTH, { PAYLOAD("x") }, WXDP_STAT_DROP_DHT_NOT_DICT },
	/* UDP length inconsistent with the IP length, both ways. */
	{ "UDP length - 1", BASE_DHT, FAM_BOTH, { .udp_len_delta = -1 }, WXDP_STAT_DROP_UDP_LEN },
	{ "UDP length + 1", BASE_DHT, FAM_BOTH, { .udp_len_delta = 1 }, WXDP_STAT_DROP_UDP_LEN },
	{ "UDP length 4 < 8", BASE_DHT, FAM_BOTH,
	  { .udp_len_delta = -(8 + DHT_PING_LEN) + 4, .ip_len_delta = -DHT_PING_LEN - 4 },
	  WXDP_STAT_DROP_UDP_LEN },
	{ "IP length beyond the frame", BASE_DHT, FAM_BOTH,
	  { .ip_len_delta = 1, .udp_len_delta = 1 }, WXDP_STAT_DROP_SHORT },
	{ "IP length under IP + UDP headers", BASE_DHT, FAM_BOTH,
	  { .ip_len_delta = -DHT_PING_LEN - 1 }, WXDP_STAT_DROP_UDP_LEN },
};

static void test_valid_and_malformed(void **state)
{
	struct fx *f = *state;
	struct tpkt t;

	NEED_ROOT();
	for (int v6 = 0; v6 < 2; v6++)
		run_cases(f, valid_and_malformed, WEFT_ARRAY_SIZE(valid_and_malformed), v6);
	/* Ethernet padding after a short IPv4 packet is fine. */
	dht_pkt(&t, 0);
	t.payload = (const uint8_t *)"de";
	t.plen = 2;
	{
		size_t len = tpkt_build(f->buf, &t);

		assert_true(len < 60);
		assert_int_equal(run(f, f->buf, 60), WXDP_STAT_PASS_NO_SOCKET);
	}
}
static void test_vlan_and_options(void **state)
{
	struct fx *f = *state;
	struct tpkt t;

	NEED_ROOT();
	for (int v6 = 0; v6 < 2; v6++) {
		for (int vl = 0; vl <= 2; vl++) {
			dht_pkt(&t, v6);
			t.vlans = vl;
			assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
			t.payload = (const uint8_t *)"x";
			t.plen = 1;
			assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_DHT_NOT_DICT);
		}
		/* Three tags: beyond the parser's depth, left to the kernel. */
		dht_pkt(&t, v6);
		t.vlans = 3;
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NOT_WEFT);
	}
	for (int w = 0; w <= 10; w++) {
		quic_pkt(&t, 0);
		t.ip_opt_words = w;
		t.vlans = w % 3;
		assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
		t.udp_len_delta = 2;
		assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UDP_LEN);
	}
}

static const struct frame_case fragments[] = {
	/* IPv4 first fragment (MF), middle and last (offset): never parsed. */
	{ "first fragment", BASE_DHT, FAM_V4, { .v4_frag = 0x2000 }, WXDP_STAT_PASS_FRAGMENT },
	{ "middle fragment", BASE_DHT, FAM_V4, { .v4_frag = 0x2000 | 185 },
	  WXDP_STAT_PASS_FRAGMENT },
	/* A non-first fragment whose bytes look like a malformed weft UDP
	 * header must not be dropped as malformed. */
	{ "last fragment, bad UDP length", BASE_DHT, FAM_V4, { .v4_frag = 185, .udp_len_delta = 7 },
	  WXDP_STAT_PASS_FRAGMENT },
	/* DF alone is not a fragment. */
	{ "DF", BASE_DHT, FAM_V4, { .v4_frag = 0x4000 }, WXDP_STAT_PASS_NO_SOCKET },
	/* IPv6 fragment header, first and later, also behind options. */
	{ "IPv6 first fragment", BASE_DHT, FAM_V6,
	  { .next = 1, .ext = { { .type = IPPROTO_FRAGMENT, .more = 1 } } },
	  WXDP_STAT_PASS_FRAGMENT },
	{ "IPv6 last fragment", BASE_DHT, FAM_V6,
	  { .next = 1, .ext = { { .type = IPPROTO_FRAGMENT, .frag_off = 100 } } },
	  WXDP_STAT_PASS_FRAGMENT },
	{ "IPv6 fragment behind hop-by-hop", BASE_DHT, FAM_V6,
	  { .next = 2,
	    .ext = { { .type = IPPROTO_HOPOPTS }, { .type = IPPROTO_FRAGMENT, .frag_off = 100 } } },
	  WXDP_STAT_PASS_FRAGMENT },
};

static void test_fragments(void **state)
{
	struct fx *f = *state;

	NEED_ROOT();
	for (int v6 = 0; v6 < 2; v6++)
		run_cases(f, fragments, WEFT_ARRAY_SIZE(fragments), v6);
}
#define DSTOPTS { .type = IPPROTO_DSTOPTS }
static const struct frame_case v6_chains[] = {
	/* The usual chain: hop-by-hop, dest opts, routing, dest opts. */
	{ "usual chain", BASE_QUIC, FAM_V6,
	  { .next = 4,
	    .ext = { { .type = IPPROTO_HOPOPTS },
		     { .type = IPPROTO_DSTOPTS, .len8 = 1 },
		     { .type = IPPROTO_ROUTING, .len8 = 2 },
		     DSTOPTS } },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "usual chain, fixed bit clear", BASE_QUIC, FAM_V6,
	  { .next = 4,
	    .ext = { { .type = IPPROTO_HOPOPTS },
		     { .type = IPPROTO_DSTOPTS, .len8 = 1 },
		     { .type = IPPROTO_ROUTING, .len8 = 2 },
		     DSTOPTS },
	    PAYLOAD("\x01") },
	  WXDP_STAT_DROP_QUIC_FIXED },
	/* Six headers is the bound; seven is left to the kernel. */
	{ "six headers", BASE_QUIC, FAM_V6,
	  { .next = 6, .ext = { DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS } },
	  WXDP_STAT_PASS_NO_SOCKET },
	{ "seven headers", BASE_QUIC, FAM_V6,
	  { .next = 7, .ext = { DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS, DSTOPTS } },
	  WXDP_STAT_PASS_NOT_WEFT },
};

static void test_v6_ext(void **state)
{
	struct fx *f = *state;
	static const uint8_t kinds[3] = { IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_DSTOPTS };
	struct tpkt t;

	NEED_ROOT();
	for (int k = 0; k < 3; k++) {
		for (uint8_t len8 = 0; len8 < 3; len8++) {
			quic_pkt(&t, 1);
			t.next = 1;
			t.ext[0] = (struct tpkt_ext){ .type = kinds[k], .len8 = len8 };
			assert_int_equal(run_t(f, &t), WXDP_STAT_PASS_NO_SOCKET);
			t.udp_len_delta = -1;
			assert_int_equal(run_t(f, &t), WXDP_STAT_DROP_UDP_LEN);
		}
	}
	run_cases(f, v6_chains, WEFT_ARRAY_SIZE(v6_chains), 1);
}
/* Truncate a valid frame at every length up to the end of its headers (and
 * a bit beyond): shorter than the UDP header = cannot tell, passed; from
 * there on the IP length exceeds the frame = dropped as too short. */
static void truncate_all(struct fx *f, struct tpkt *t)
{
	uint8_t full[TPKT_MAX];
	size_t len = tpkt_build(full, t);

	for (size_t l = 0; l <= t->hdr_end + 2 && l < len; l++) {
		int v = run(f, full, l);

		if (l < 14)
			assert_int_equal(v, -1);
		else if (l < t->udp_end)
			assert_int_equal(v, WXDP_STAT_PASS_NOT_WEFT);
		else
			assert_int_equal(v, WXDP_STAT_DROP_SHORT);
	}
	assert_int_equal(run(f, full, len), WXDP_STAT_PASS_NO_SOCKET);
}

static void test_truncation(void **state)
{
	struct fx *f = *state;
	struct tpkt t;

	NEED_ROOT();
	dht_pkt(&t, 0);
	truncate_all(f, &t);
	quic_pkt(&t, 0);
	t.vlans = 2;
	t.ip_opt_words = 3;
	truncate_all(f, &t);
	quic_pkt(&t, 1);
	t.vlans = 1;
	t.next = 3;
	t.ext[0] = (struct tpkt_ext){ .type = IPPROTO_HOPOPTS };
	t.ext[1] = (struct tpkt_ext){ .type = IPPROTO_ROUTING, .len8 = 1 };
	t.ext[2] = (struct tpkt_ext){ .type = IPPROTO_DSTOPTS };
	truncate_all(f, &t);
}

/* The instance owning port dport, as the program finds it with its kind. */
static __u32 port_owner(const struct wxdp_config *c, __u16 dport)
{
	__u32 owner;

	wxdp_port_find(c, dport, &owner);
	return owner;
}

static void test_config_check(void **state)
{
	struct wxdp_config c;

	(void)state;
	wxdp_config_default(&c);
	assert_int_equal(wxdp_config_check(&c), 0);
	c.v6_prefix = 0;
	assert_int_equal(wxdp_config_check(&c), -EINVAL);
	wxdp_config_default(&c);
	c.dht_ports[1] = WXDP_DEFAULT_QUIC_PORT;
	assert_int_equal(wxdp_config_check(&c), -EINVAL);
	wxdp_config_default(&c);
	c.quic_ports[1] = WXDP_DEFAULT_QUIC_PORT;
	assert_int_equal(wxdp_config_check(&c), -EINVAL);
	wxdp_config_default(&c);
	c.pad[0] = 1;
	assert_int_equal(wxdp_config_check(&c), -EINVAL);
	/* Owners (instances sharing the interface): 2 bits per port, only
	 * for configured ports; the program's lookup reads them back. */
	wxdp_config_default(&c);
	c.quic_ports[1] = 4434;
	c.dht_ports[1] = 6882;
	c.quic_owners = 3 << 2;
	c.dht_owners = 2 << 2;
	assert_int_equal(wxdp_config_check(&c), 0);
	assert_int_equal(port_owner(&c, WXDP_DEFAULT_QUIC_PORT), 0);
	assert_int_equal(port_owner(&c, 4434), 3);
	assert_int_equal(port_owner(&c, 6882), 2);
	assert_int_equal(port_owner(&c, 9999), 0);
	assert_int_equal(port_owner(&c, 0), 0);
	c.quic_owners |= 1 << 4; /* quic_ports[2] is unused */
	assert_int_equal(wxdp_config_check(&c), -EINVAL);
}

/* The IPv6 rate-limit key against a mask built bit by bit, for every
 * prefix (0 acts as 1, above 128 as 128), the default /64's shortcut among
 * them, and the kind/owner of a port found in one walk. */
static void test_src_key_v6(void **state)
{
	uint8_t a[16], want[16];
	struct wxdp_src_key k;
	struct wxdp_config c;
	__u32 owner = 9;

	(void)state;
	for (int i = 0; i < 16; i++)
		a[i] = (uint8_t)(0xa5 ^ (i * 37));
	for (unsigned int prefix = 0; prefix <= 130; prefix++) {
		unsigned int p = prefix == 0 ? 1 : prefix > 128 ? 128 : prefix;

		for (unsigned int bit = 0; bit < 128; bit++) {
			uint8_t m = (uint8_t)(0x80 >> (bit % 8));

			if (bit % 8 == 0)
				want[bit / 8] = 0;
			if (bit < p)
				want[bit / 8] |= (uint8_t)(a[bit / 8] & m);
		}
		memset(&k, 0x5a, sizeof(k));
		wxdp_src_key_v6(&k, a, prefix);
		if (memcmp(k.addr, want, 16))
			fail_msg("prefix %u: the key is not the address masked", prefix);
	}
	wxdp_config_default(&c);
	c.dht_ports[1] = 6882;
	c.dht_owners = 2 << 2;
	assert_int_equal(wxdp_port_find(&c, 6882, &owner), WXDP_KIND_DHT);
	assert_int_equal(owner, 2);
	assert_int_equal(wxdp_port_find(&c, WXDP_DEFAULT_QUIC_PORT, &owner), WXDP_KIND_QUIC);
	assert_int_equal(owner, 0);
	owner = 9;
	assert_int_equal(wxdp_port_find(&c, 9999, &owner), WXDP_KIND_NONE);
	assert_int_equal(owner, 0);
}

static void test_attach_errors(void **state)
{
	struct wxdp_opts o = { .ifname = "wxdp-nope0" };
	struct wxdp *x = NULL;

	(void)state;
	NEED_ROOT();
	assert_int_equal(wxdp_new(&x, &o), -ENODEV);
	assert_null(x);
	o.ifname = NULL;
	assert_int_equal(wxdp_new(&x, &o), -EINVAL);
	wxdp_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_not_weft, setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_and_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vlan_and_options, setup, teardown),
		cmocka_unit_test_setup_teardown(test_fragments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_v6_ext, setup, teardown),
		cmocka_unit_test_setup_teardown(test_truncation, setup, teardown),
		cmocka_unit_test(test_config_check),
		cmocka_unit_test(test_src_key_v6),
		cmocka_unit_test(test_attach_errors),
	};

	return cmocka_run_group_tests_name("xdp_prog", tests, NULL, NULL);
}
