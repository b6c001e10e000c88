// SPDX-License-Identifier: MIT
/*
 * DHT core pieces: BEP 44 and BEP 42 vectors from the specifications,
 * routing-table behaviour, token windows, storage caps and expiry, and
 * persistence round trips with hostile blobs.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "dht/dht_int.h"

static void unhex(uint8_t *out, const char *hex)
{
	size_t n = strlen(hex) / 2;

	for (size_t i = 0; i < n; i++) {
		unsigned int v;

		sscanf(hex + 2 * i, "%2x", &v);
		out[i] = (uint8_t)v;
	}
}

/* BEP 44 test vectors ("test 1" mutable, "test 2" mutable with salt, immutable). */
static const char *bep44_pk = "77ff84905a91936367c01360803104f92432fcd904a43511876df5cdf3e7e548";
static const char *bep44_sk = "e06d3183d14159228433ed599221b80bd0a5ce8352e4bdf0262f76786ef1c74d"
			      "b7e7a9fea2c0eb269d61e3b38e450a22e754941ac78479d6c54e1faf6037881d";

static void test_bep44_vectors(void **state)
{
	uint8_t pk[32], esk[64], sig[64], want[64], buf[256], t[20], wt[20];
	const uint8_t v[] = "12:Hello World!";
	size_t vlen = sizeof(v) - 1;
	int n;

	unhex(pk, bep44_pk);
	unhex(esk, bep44_sk);
	/* test 1: no salt */
	n = dht_bep44_sigbuf(buf, sizeof(buf), NULL, 0, 1, v, vlen);
	assert_int_equal(n, strlen("3:seqi1e1:v12:Hello World!"));
	assert_memory_equal(buf, "3:seqi1e1:v12:Hello World!", (size_t)n);
	unhex(want, "305ac8aeb6c9c151fa120f120ea2cfb923564e11552d06a5d856091e5e853cff"
		    "1260d3f39e4999684aa92eb73ffd136e6f4f3ecbfda0ce53a1608ecd7ae21f01");
	assert_int_equal(dht_bep44_sign_expanded(sig, esk, pk, NULL, 0, 1, v, vlen), 0);
	assert_memory_equal(sig, want, 64);
	assert_int_equal(dht_bep44_verify(pk, want, NULL, 0, 1, v, vlen), 0);
	assert_int_equal(dht_bep44_verify(pk, want, NULL, 0, 2, v, vlen), -EBADMSG);
	dht_bep44_target_mutable(t, pk, NULL, 0);
	unhex(wt, "4a533d47ec9c7d95b1ad75f576cffc641853b750");
	assert_memory_equal(t, wt, 20);
	/* test 2: salt "foobar" */
	n = dht_bep44_sigbuf(buf, sizeof(buf), (const uint8_t *)"foobar", 6, 1, v, vlen);
	assert_memory_equal(buf, "4:salt6:foobar3:seqi1e1:v12:Hello World!", (size_t)n);
	unhex(want, "6834284b6b24c3204eb2fea824d82f88883a3d95e8b4a21b8c0ded553d17d17d"
		    "df9a8a7104b1258f30bed3787e6cb896fca78c58f8e03b5f18f14951a87d9a08");
	assert_int_equal(
	    dht_bep44_sign_expanded(sig, esk, pk, (const uint8_t *)"foobar", 6, 1, v, vlen), 0);
	assert_memory_equal(sig, want, 64);
	assert_int_equal(dht_bep44_verify(pk, want, (const uint8_t *)"foobar", 6, 1, v, vlen), 0);
	dht_bep44_target_mutable(t, pk, (const uint8_t *)"foobar", 6);
	unhex(wt, "411eba73b6f087ca51a3795d9c8c938d365e32c1");
	assert_memory_equal(t, wt, 20);
	/* immutable */
	dht_bep44_target_immutable(t, v, vlen);
	unhex(wt, "e5f96f6f38320f0f33959cb4d3d656452117aadb");
	assert_memory_equal(t, wt, 20);
}

static void test_bep44_libsodium_key(void **state)
{
	uint8_t pk[32], sk[64], sig[64], sig2[64], h[64], esk[64], seed[32];
	const uint8_t v[] = "3:abc";

	assert_int_equal(sodium_init() >= 0, 1);
	memset(seed, 7, 32);
	crypto_sign_seed_keypair(pk, sk, seed);
	assert_int_equal(dht_bep44_sign(sig, sk, (const uint8_t *)"s", 1, 5, v, 5), 0);
	assert_int_equal(dht_bep44_verify(pk, sig, (const uint8_t *)"s", 1, 5, v, 5), 0);
	/* the expanded form libtorrent uses gives the same deterministic signature */
	crypto_hash_sha512(h, sk, 32);
	h[0] &= 248;
	h[31] &= 127;
	h[31] |= 64;
	memcpy(esk, h, 64);
	assert_int_equal(dht_bep44_sign_expanded(sig2, esk, pk, (const uint8_t *)"s", 1, 5, v, 5),
			 0);
	assert_memory_equal(sig, sig2, 64);
	sig[3] ^= 1;
	assert_int_equal(dht_bep44_verify(pk, sig, (const uint8_t *)"s", 1, 5, v, 5), -EBADMSG);
}

static void test_bep42_vectors(void **state)
{
	static const struct {
		const char *ip;
		uint8_t r;
		const char *prefix; /* first 3 bytes, low 3 bits of byte 2 random */
	} vec[] = {
	    {"124.31.75.21", 1, "5fbfbf"},  {"21.75.31.124", 86, "5a3ce9"},
	    {"65.23.51.170", 22, "a5d432"}, {"84.124.73.14", 65, "1b0321"},
	    {"43.213.53.83", 90, "e56f6c"},
	};

	assert_int_equal(dht_crc32c((const uint8_t *)"123456789", 9), 0xe3069283);
	for (size_t i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		uint8_t ip[4], id[20], tail[20], p[3];

		inet_pton(AF_INET, vec[i].ip, ip);
		memset(tail, 0xa5, sizeof(tail));
		unhex(p, vec[i].prefix);
		dht_bep42_make_id(id, ip, 4, vec[i].r, tail);
		assert_int_equal(id[0], p[0]);
		assert_int_equal(id[1], p[1]);
		assert_int_equal(id[2] & 0xf8, p[2] & 0xf8);
		assert_int_equal(id[19], vec[i].r);
		assert_true(dht_bep42_check(id, ip, 4));
		id[0] ^= 0x40;
		assert_false(dht_bep42_check(id, ip, 4));
	}
	{
		uint8_t lo[4] = {127, 0, 0, 1}, id[20] = {0};

		assert_true(dht_bep42_is_local(lo, 4));
		assert_true(dht_bep42_check(id, lo, 4));
	}
}

static void mkaddr(struct sockaddr_storage *ss, uint32_t ip, uint16_t port)
{
	struct sockaddr_in *s = (struct sockaddr_in *)ss;

	memset(ss, 0, sizeof(*ss));
	s->sin_family = AF_INET;
	s->sin_addr.s_addr = htonl(ip);
	s->sin_port = htons(port);
}

static void test_routing(void **state)
{
	struct dht_table *t = calloc(1, sizeof(*t));
	uint8_t self[20] = {0}, id[20];
	struct sockaddr_storage ss;
	const struct dht_node *cl[8];
	uint64_t now = 1000;

	t->family = AF_INET;
	t->nb = 1;
	/* 8 nodes fill the single bucket */
	for (int i = 0; i < 8; i++) {
		memset(id, 0, sizeof(id));
		id[0] = (uint8_t)(0x80 | i); /* all in the far half */
		mkaddr(&ss, 0x0a000001 + (uint32_t)i, 1000);
		assert_int_equal(dht_rt_heard(t, self, id, (struct sockaddr *)&ss,
					      sizeof(struct sockaddr_in), RT_REPLY, now),
				 1);
	}
	assert_int_equal(t->nb, 1);
	assert_int_equal(t->b[0].n, 8);
	/* a 9th far node splits the bucket (it holds our id) but still lands in the full far bucket
	 */
	memset(id, 0, sizeof(id));
	id[0] = 0x90;
	mkaddr(&ss, 0x0a000100, 1000);
	assert_int_equal(dht_rt_heard(t, self, id, (struct sockaddr *)&ss,
				      sizeof(struct sockaddr_in), RT_REPLY, now),
			 0);
	assert_int_equal(t->nb, 2);
	assert_int_equal(t->b[0].n, 8);
	assert_int_equal(t->b[0].nrepl, 1); /* went to the replacement cache */
	/* near nodes go to the new bucket; it splits further as needed */
	for (int i = 0; i < 20; i++) {
		memset(id, 0, sizeof(id));
		id[0] = (uint8_t)(0x40 >> (i % 6));
		id[5] = (uint8_t)i;
		mkaddr(&ss, 0x0a000200 + (uint32_t)i, 1000);
		dht_rt_heard(t, self, id, (struct sockaddr *)&ss, sizeof(struct sockaddr_in),
			     RT_REPLY, now);
	}
	assert_true(t->nb > 2);
	for (unsigned int i = 0; i < t->nb; i++)
		for (uint8_t j = 0; j < t->b[i].n; j++)
			assert_int_equal(dht_rt_bucket_index(t, self, t->b[i].nodes[j].id), i);
	/* our own id is never inserted */
	assert_int_equal(dht_rt_heard(t, self, self, (struct sockaddr *)&ss,
				      sizeof(struct sockaddr_in), RT_REPLY, now),
			 0);
	/* bad node replaced by the replacement cache entry */
	memset(id, 0, sizeof(id));
	id[0] = 0x80;
	mkaddr(&ss, 0x0a000001, 1000);
	for (int i = 0; i < DHT_MAX_FAILS; i++)
		dht_rt_failed(t, self, id, (struct sockaddr *)&ss);
	assert_null(dht_rt_find(t, self, id));
	memset(id, 0, sizeof(id));
	id[0] = 0x90;
	assert_non_null(dht_rt_find(t, self, id));
	assert_int_equal(t->b[0].nrepl, 0);
	/* good / questionable */
	assert_true(dht_rt_node_good(dht_rt_find(t, self, id), now + 1000));
	assert_false(dht_rt_node_good(dht_rt_find(t, self, id), now + DHT_GOOD_MS + 1));
	/* closest: sorted by XOR distance */
	memset(id, 0, sizeof(id));
	id[0] = 0x81;
	{
		size_t n = dht_rt_closest(t, id, now, cl, 8);

		assert_int_equal(n, 8);
		assert_int_equal(cl[0]->id[0], 0x81);
		for (size_t i = 1; i < n; i++)
			assert_false(dht_id_closer(id, cl[i]->id, cl[i - 1]->id));
	}
	/* random id in bucket i lands in bucket i */
	for (unsigned int i = 0; i < t->nb; i++) {
		uint8_t rnd[20], out[20];

		memset(rnd, 0x5a + (int)i, sizeof(rnd));
		dht_rt_random_in_bucket(t, self, i, rnd, out);
		assert_int_equal(dht_rt_bucket_index(t, self, out), i);
	}
	free(t);
}

static void test_tokens(void **state)
{
	struct dht_tokens tk;
	uint8_t s1[32], s2[32], s3[32], tok[DHT_TOKEN_LEN], tok2[DHT_TOKEN_LEN];
	struct sockaddr_storage a, b;

	memset(s1, 1, 32);
	memset(s2, 2, 32);
	memset(s3, 3, 32);
	mkaddr(&a, 0x01020304, 1);
	mkaddr(&b, 0x01020305, 1);
	dht_token_init(&tk, s1, 0);
	dht_token_make(&tk, 0, (struct sockaddr *)&a, tok);
	assert_true(dht_token_check(&tk, (struct sockaddr *)&a, tok, sizeof(tok)));
	/* bound to the IP, not the port */
	((struct sockaddr_in *)&a)->sin_port = htons(9);
	assert_true(dht_token_check(&tk, (struct sockaddr *)&a, tok, sizeof(tok)));
	assert_false(dht_token_check(&tk, (struct sockaddr *)&b, tok, sizeof(tok)));
	assert_false(dht_token_check(&tk, (struct sockaddr *)&a, tok, 4));
	/* valid for one rotation (previous secret), not two */
	dht_token_rotate(&tk, s2, DHT_TOKEN_ROTATE_MS);
	assert_true(dht_token_check(&tk, (struct sockaddr *)&a, tok, sizeof(tok)));
	dht_token_make(&tk, 0, (struct sockaddr *)&a, tok2);
	assert_memory_not_equal(tok, tok2, sizeof(tok));
	dht_token_rotate(&tk, s3, 2 * DHT_TOKEN_ROTATE_MS);
	assert_false(dht_token_check(&tk, (struct sockaddr *)&a, tok, sizeof(tok)));
	assert_true(dht_token_check(&tk, (struct sockaddr *)&a, tok2, sizeof(tok2)));
}

static void test_storage(void **state)
{
	struct dht_limits lim = {.max_infohashes = 2,
				 .max_peers_per_hash = 3,
				 .max_peers = 5,
				 .max_items = 3,
				 .max_items_per_src = 2};
	struct dht_store *s = calloc(1, sizeof(*s));
	uint8_t ih[20] = {1}, ih2[20] = {2}, ih3[20] = {3};
	struct sockaddr_storage a;
	struct dht_item it;

	dht_store_init(s, &lim);
	assert_int_equal(dht_store_bytes(s), 0);
	for (uint32_t i = 0; i < 4; i++) {
		mkaddr(&a, 0x0a000001 + i, 100);
		assert_int_equal(dht_store_add_peer(s, ih, (struct sockaddr *)&a, 1000 + i), 0);
	}
	/* per-infohash cap: the oldest peer made room */
	assert_int_equal(dht_store_find_ih(s, ih)->npeers, 3);
	assert_int_equal(s->npeers, 3);
	mkaddr(&a, 0x0b000001, 100);
	assert_int_equal(dht_store_add_peer(s, ih2, (struct sockaddr *)&a, 1000), 0);
	/* infohash cap */
	assert_int_equal(dht_store_add_peer(s, ih3, (struct sockaddr *)&a, 1000), -ENOSPC);
	mkaddr(&a, 0x0b000002, 100);
	assert_int_equal(dht_store_add_peer(s, ih2, (struct sockaddr *)&a, 1000), 0);
	/* global peer cap */
	mkaddr(&a, 0x0b000003, 100);
	assert_int_equal(dht_store_add_peer(s, ih2, (struct sockaddr *)&a, 1000), -ENOSPC);
	/* what the stores hold: two infohashes, each with its peer array */
	assert_int_equal(dht_store_bytes(s), 2 * sizeof(struct dht_ih) +
						 (dht_store_find_ih(s, ih)->cap +
						  dht_store_find_ih(s, ih2)->cap) *
						     sizeof(struct dht_peer));
	/* expiry after 30 min */
	dht_store_expire(s, 1000 + DHT_PEER_TTL_MS - 1);
	assert_int_equal(s->npeers, 5);
	dht_store_expire(s, 1003 + DHT_PEER_TTL_MS);
	assert_int_equal(s->npeers, 0);
	assert_int_equal(s->nih, 0);
	assert_int_equal(dht_store_bytes(s), 0);
	/* items: per-source and global caps */
	memset(&it, 0, sizeof(it));
	memcpy(it.v, "1:x", 3);
	it.vlen = 3;
	it.srclen = 4;
	memcpy(it.src, "\x0a\0\0\x01", 4);
	for (int i = 0; i < 2; i++) {
		it.target[0] = (uint8_t)i;
		assert_int_equal(dht_store_put_item(s, &it, 0), 0);
	}
	it.target[0] = 9;
	assert_int_equal(dht_store_put_item(s, &it, 0), -ENOSPC);
	it.target[0] = 0; /* re-put of an existing item is fine */
	assert_int_equal(dht_store_put_item(s, &it, 5000), 0);
	memcpy(it.src, "\x0a\0\0\x02", 4);
	it.target[0] = 10;
	assert_int_equal(dht_store_put_item(s, &it, 0), 0);
	it.target[0] = 11;
	assert_int_equal(dht_store_put_item(s, &it, 0), -ENOSPC); /* global cap 3 */
	/* 2 h expiry, re-put extends */
	dht_store_expire(s, DHT_ITEM_TTL_MS);
	assert_int_equal(s->nitems, 1);
	{
		uint8_t t0[20] = {0};

		assert_non_null(dht_store_find_item(s, t0));
	}
	assert_int_equal(dht_store_bytes(s), sizeof(struct dht_item));
	dht_store_expire(s, DHT_ITEM_TTL_MS + 5000);
	assert_int_equal(s->nitems, 0);
	assert_int_equal(dht_store_bytes(s), 0);
	dht_store_free(s);
	free(s);
}

static int sink(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		socklen_t tolen)
{
	(*(int *)arg)++;
	return 0;
}

/* the wall clock (s) at the export in test_persistence */
#define W0 1764000000ULL

static void test_persistence(void **state)
{
	struct dht *a, *b, *c;
	int sent = 0;
	uint8_t seed[32] = {1}, pk[32], sk[64], *blob, sig[64];
	size_t len;
	struct dht_opts o = {.send = sink, .send_arg = &sent, .seed = seed};
	struct sockaddr_storage ss;
	struct dht_item it;

	assert_int_equal(dht_new(&a, &o), 0);
	seed[0] = 2;
	assert_int_equal(dht_new(&b, &o), 0);
	for (uint32_t i = 0; i < 30; i++) {
		uint8_t id[20];

		dht_random(a, id, sizeof(id));
		mkaddr(&ss, 0x0a000001 + i, 6881);
		dht_rt_heard(&a->t4, a->id, id, (struct sockaddr *)&ss, sizeof(struct sockaddr_in),
			     RT_REPLY, 1000);
	}
	assert_int_equal(dht_export_nodes(a, &blob, &len), 0);
	sent = 0;
	{
		struct dht_stats st;
		int n;

		dht_get_stats(a, &st);
		n = dht_import_nodes(b, blob, len, 2000);
		assert_int_equal(n, (int)st.nodes4);
		assert_int_equal(sent, n); /* each imported node is pinged, not trusted */
	}
	/* truncated / altered blobs are refused */
	assert_int_equal(dht_import_nodes(b, blob, len - 1, 2000), -EINVAL);
	blob[len - 2] ^= 0xff;
	assert_true(dht_import_nodes(b, blob, len, 2000) <= 0);
	free(blob);

	/* storage: one immutable, one mutable, one peer */
	crypto_sign_seed_keypair(pk, sk, seed);
	memset(&it, 0, sizeof(it));
	memcpy(it.v, "5:hello", 7);
	it.vlen = 7;
	dht_bep44_target_immutable(it.target, it.v, it.vlen);
	assert_int_equal(dht_store_put_item(&a->store, &it, 1000), 0);
	it.mut = 1;
	memcpy(it.k, pk, 32);
	it.seq = 4;
	memcpy(it.salt, "s", 1);
	it.salt_len = 1;
	dht_bep44_sign(sig, sk, it.salt, 1, 4, it.v, it.vlen);
	memcpy(it.sig, sig, 64);
	dht_bep44_target_mutable(it.target, pk, it.salt, 1);
	assert_int_equal(dht_store_put_item(&a->store, &it, 1000), 0);
	/* a forged item planted directly must not survive export/import */
	it.seq = 5;
	it.target[0] ^= 1;
	assert_int_equal(dht_store_put_item(&a->store, &it, 1000), 0);
	mkaddr(&ss, 0x0a000009, 51413);
	assert_int_equal(dht_store_add_peer(&a->store, pk, (struct sockaddr *)&ss, 1000), 0);
	assert_int_equal(dht_export_storage(a, 2000, W0, &blob, &len), 0);
	assert_int_equal(dht_import_storage(b, blob, len, 5000, W0), 3);
	assert_int_equal(b->store.nitems, 2);
	assert_int_equal(b->store.npeers, 1);
	/* remaining lifetime carried over: expires 1000 + TTL in a's clock,
	 * so 1000 ms were left unused before the export at 2000 */
	{
		struct dht_item *m = dht_store_find_item(&b->store, it.target);

		assert_null(m); /* the forged target */
	}
	dht_store_expire(&b->store, 5000 + DHT_ITEM_TTL_MS - 1000 - 1);
	assert_int_equal(b->store.nitems, 2);
	dht_store_expire(&b->store, 5000 + DHT_ITEM_TTL_MS - 1000);
	assert_int_equal(b->store.nitems, 0);
	for (size_t i = 0; i < len; i += 7) {
		/* every truncation is rejected without crashing */
		assert_int_equal(dht_import_storage(b, blob, i, 5000, W0) < 0, 1);
	}
	/* imported an hour after the export (the node was down): the hour
	 * is taken off every lifetime; the peers' 30 min are used up */
	seed[0] = 3;
	assert_int_equal(dht_new(&c, &o), 0);
	assert_int_equal(dht_import_storage(c, blob, len, 5000, W0 + 3600), 2);
	assert_int_equal(c->store.npeers, 0);
	dht_store_expire(&c->store, 5000 + DHT_ITEM_TTL_MS - 1000 - 3600000 - 1);
	assert_int_equal(c->store.nitems, 2);
	dht_store_expire(&c->store, 5000 + DHT_ITEM_TTL_MS - 1000 - 3600000);
	assert_int_equal(c->store.nitems, 0);
	dht_free(c);
	/* the clock stepped back below the export's: imported as written */
	seed[0] = 3;
	assert_int_equal(dht_new(&c, &o), 0);
	assert_int_equal(dht_import_storage(c, blob, len, 5000, W0 - 3600), 3);
	dht_free(c);
	/* three hours away: everything expired */
	seed[0] = 3;
	assert_int_equal(dht_new(&c, &o), 0);
	assert_int_equal(dht_import_storage(c, blob, len, 5000, W0 + 3 * 3600), 0);
	dht_free(c);
	free(blob);
	dht_free(a);
	dht_free(b);
	dht_free(NULL);
}

struct cancel_probe {
	int calls, status;
	enum dht_op op;
};

static void cancel_cb(void *arg, const struct dht_result *r)
{
	struct cancel_probe *p = arg;

	p->calls++;
	p->status = r->status;
	p->op = r->op;
}

/* A lookup still waiting for answers when the DHT is freed completes once,
 * with -ECANCELED, so its caller can release what it passed in. */
static void test_free_cancels_lookups(void **state)
{
	struct dht *d;
	int sent = 0;
	uint8_t seed[32] = {9}, target[20] = {1};
	struct dht_opts o = {.send = sink, .send_arg = &sent, .seed = seed};
	struct sockaddr_storage ss;
	struct cancel_probe a = {0}, b = {0};

	(void)state;
	assert_int_equal(dht_new(&d, &o), 0);
	for (uint32_t i = 0; i < 10; i++) {
		uint8_t id[20];

		dht_random(d, id, sizeof(id));
		mkaddr(&ss, 0x0a000101 + i, 6881);
		dht_rt_heard(&d->t4, d->id, id, (struct sockaddr *)&ss, sizeof(struct sockaddr_in),
			     RT_REPLY, 1000);
	}
	assert_int_equal(dht_get_peers(d, target, 1000, cancel_cb, &a), 0);
	assert_int_equal(dht_find_node(d, target, 1000, cancel_cb, &b), 0);
	assert_true(sent > 0); /* queries went out; nobody answers */
	assert_int_equal(a.calls, 0);
	dht_free(d);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.status, -ECANCELED);
	assert_int_equal(a.op, DHT_OP_GET_PEERS);
	assert_int_equal(b.calls, 1);
	assert_int_equal(b.status, -ECANCELED);
}

struct chain_probe {
	struct dht *d;
	int first, second;
	enum dht_op second_op;
};

static void chain_second(void *arg, const struct dht_result *r)
{
	struct chain_probe *p = arg;

	p->second++;
	p->second_op = r->op;
}

/* The first lookup's callback starts the next one (as the announce
 * schedule and the service finds do), and reads its own result after. */
static void chain_first(void *arg, const struct dht_result *r)
{
	struct chain_probe *p = arg;
	uint8_t ihs[3][20] = {{7}, {8}, {9}};
	uint8_t want[20];

	p->first++;
	memcpy(want, r->target, sizeof(want));
	/* nodes with tokens (as a get_peers result gives), so the announce
	 * has someone to wait for */
	struct dht_node_info nodes[4];

	memset(nodes, 0, sizeof(nodes));
	for (uint32_t i = 0; i < 4; i++) {
		dht_random(p->d, nodes[i].id, sizeof(nodes[i].id));
		mkaddr(&nodes[i].addr, 0x0a000301 + i, 6881);
		nodes[i].addrlen = sizeof(struct sockaddr_in);
		memset(nodes[i].token, 0x42, 4);
		nodes[i].token_len = 4;
	}
	assert_int_equal(dht_announce_to(p->d, (const uint8_t(*)[20])ihs, 3, 6881, 0, nodes, 4,
					 2000 + 31000, chain_second, p),
			 0);
	/* the new lookup has a slot of its own: ours (0) is still taken,
	 * finished, until we return; the announce and its batch are in 1 */
	assert_int_equal(p->d->lks[0].phase, LK_DONE);
	assert_true(p->d->lks[1].in_use && p->d->lks[1].batch && p->d->lks[1].nbatch == 3);
	/* our result is intact after starting another lookup */
	assert_memory_equal(r->target, want, sizeof(want));
	assert_int_equal(r->op, DHT_OP_GET_PEERS);
}

/* A callback that starts a lookup gets a slot of its own: before, the
 * finished lookup's slot was free during its callback, the new lookup took
 * it (its peers array leaked), and the finish then freed the new lookup's
 * announce batch under it (a use after free, ASan). */
static void test_callback_starts_lookup(void **state)
{
	struct dht *d;
	int sent = 0;
	uint8_t seed[32] = {5}, target[20] = {3};
	struct dht_opts o = {.send = sink, .send_arg = &sent, .seed = seed};
	struct sockaddr_storage ss;
	struct chain_probe p = {0};
	uint64_t next = 0;

	(void)state;
	assert_int_equal(dht_new(&d, &o), 0);
	p.d = d;
	for (uint32_t i = 0; i < 10; i++) {
		uint8_t id[20];

		dht_random(d, id, sizeof(id));
		mkaddr(&ss, 0x0a000201 + i, 6881);
		dht_rt_heard(&d->t4, d->id, id, (struct sockaddr *)&ss, sizeof(struct sockaddr_in),
			     RT_REPLY, 1000);
	}
	assert_int_equal(dht_get_peers(d, target, 2000, chain_first, &p), 0);
	dht_periodic(d, 2000 + 31000, &next); /* nobody answers: it times out */
	assert_int_equal(p.first, 1);
	assert_int_equal(p.second, 0);
	dht_periodic(d, 2000 + 31000 + 31000, &next);
	assert_int_equal(p.second, 1);
	assert_int_equal(p.second_op, DHT_OP_ANNOUNCE);
	dht_free(d);
	assert_int_equal(p.first, 1);
	assert_int_equal(p.second, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bep44_vectors), cmocka_unit_test(test_bep44_libsodium_key),
	    cmocka_unit_test(test_bep42_vectors), cmocka_unit_test(test_routing),
	    cmocka_unit_test(test_tokens),	  cmocka_unit_test(test_storage),
	    cmocka_unit_test(test_persistence),	  cmocka_unit_test(test_free_cancels_lookups),
	    cmocka_unit_test(test_callback_starts_lookup),
	};

	return cmocka_run_group_tests_name("dht_core", tests, NULL, NULL);
}
