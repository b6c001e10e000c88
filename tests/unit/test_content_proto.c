// SPDX-License-Identifier: MIT
/* Content fetch protocol wire format (userspace/content/proto.c): the
 * docs/PROTOCOL.md "Content" vectors, request and answer framing in every
 * split, and the bounds of INFO and CHUNK answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "content/content_node_int.h"
#include "weft/chunk.h"
#include "weft/util.h"

static void unhex(uint8_t *out, size_t n, const char *hex)
{
	assert_int_equal(strlen(hex), 2 * n);
	assert_int_equal(util_unhex(out, n, hex), 0);
}

#define ABC_ID "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85"

static void test_vectors(void **state)
{
	uint8_t id[32], want[64], buf[CN_REQ_MAX], info[CN_INFO_ANSWER(1)], head[CN_INFO_HEAD];
	struct cn_wreq q = {.op = CONTENT_OP_INFO};
	struct cn_info in;
	const uint8_t *body;
	size_t blen;

	unhex(id, 32, ABC_ID);
	memcpy(q.id, id, 32);
	assert_int_equal(cn_req_encode(&q, buf), 33);
	unhex(want, 33, "01" ABC_ID);
	assert_memory_equal(buf, want, 33);
	q.op = CONTENT_OP_CHUNK;
	assert_int_equal(cn_req_encode(&q, buf), 41);
	unhex(want, 41, "02" ABC_ID "0000000000000000");
	assert_memory_equal(buf, want, 41);
	memset(&q, 0xee, sizeof(q));
	assert_int_equal(cn_req_decode(&q, want, 41), 0);
	assert_int_equal(q.op, CONTENT_OP_CHUNK);
	assert_int_equal(q.index, 0);
	assert_memory_equal(q.id, id, 32);
	assert_int_equal(cn_req_decode(&q, want, 40), -EPROTO);
	q.op = 8; /* unknown */
	assert_int_equal(cn_req_encode(&q, buf), -EINVAL);

	/* info answer: size 3, one chunk whose CV is the id, chunk 0 held */
	unhex(info, sizeof(info),
	      "00"
	      "00000031"
	      "0000000000000003"
	      "0000000000000001" ABC_ID "01");
	assert_int_equal(cn_info_decode(&in, info, sizeof(info), CN_INFO_MAX_N), 0);
	assert_int_equal(in.size, 3);
	assert_int_equal(in.n, 1);
	assert_memory_equal(in.cvs, id, 32);
	assert_int_equal(in.bits[0], 1);
	assert_int_equal(b3tree_verify_cvs(in.cvs, in.n, in.size, id), 0);
	cn_info_head(head, 3, 1);
	assert_memory_equal(head, info, CN_INFO_HEAD);

	/* chunk answer "abc", not found */
	unhex(want, 8, "0000000003616263");
	assert_int_equal(cn_chunk_check(want, 8, 3), 0);
	assert_int_equal(cn_chunk_check(want, 8, 4), -EBADMSG);
	assert_int_equal(cn_chunk_check(want, 7, 3), -EBADMSG);
	assert_int_equal(cn_ans_body(want, 8, &body, &blen), 0);
	assert_int_equal(blen, 3);
	assert_memory_equal(body, "abc", 3);
	cn_ans_head(buf, CONTENT_ST_NOT_FOUND, 0);
	unhex(want, 5, "0100000000");
	assert_memory_equal(buf, want, 5);
}

/* Two requests then an unknown op, fed in two pieces split anywhere. */
static void test_req_feed(void **state)
{
	uint8_t s[33 + 21 + 1], buf[CN_REQ_MAX];
	struct cn_wreq q = {.op = CONTENT_OP_INFO};

	memset(q.id, 0xab, sizeof(q.id));
	assert_int_equal(cn_req_encode(&q, buf), 33);
	memcpy(s, buf, 33);
	q.op = CONTENT_OP_MANIFEST;
	assert_int_equal(cn_req_encode(&q, buf), 21);
	memcpy(s + 33, buf, 21);
	s[54] = 0x09;
	for (size_t cut = 0; cut <= sizeof(s); cut++) {
		const size_t pieces[2] = {cut, sizeof(s) - cut};
		const uint8_t *p = s;
		uint8_t blen = 0;
		int got = 0, rc = 0;

		for (int k = 0; k < 2 && rc >= 0; k++) {
			size_t left = pieces[k];

			while (left && (rc = cn_req_feed(buf, &blen, &p, &left)) >= 0) {
				if (rc == 1) {
					assert_int_equal(blen, got ? 21 : 33);
					assert_memory_equal(buf, got ? s + 33 : s, blen);
					got++;
					blen = 0;
				}
			}
		}
		assert_int_equal(got, 2);
		assert_int_equal(rc, -EPROTO);
		assert_ptr_equal(p, s + 54); /* the unknown op was not taken */
	}
}

static void test_ans_feed(void **state)
{
	uint8_t a[5 + 300], more[300 + 1];
	struct cn_ans x = {.limit = sizeof(a)};

	memset(a, 0x5a, sizeof(a));
	cn_ans_head(a, CONTENT_ST_OK, 300);
	/* one byte at a time: complete exactly at the end */
	for (size_t i = 0; i < sizeof(a); i++)
		assert_int_equal(cn_ans_feed(&x, a + i, 1), i + 1 == sizeof(a));
	assert_int_equal(x.len, sizeof(a));
	assert_memory_equal(x.buf, a, sizeof(a));
	/* the buffer is kept for the next answer */
	x.len = 0;
	assert_int_equal(cn_ans_feed(&x, a, 10), 0);
	assert_int_equal(cn_ans_feed(&x, a + 10, sizeof(a) - 10), 1);
	/* a byte past the end breaks the framing, even within the limit */
	x.len = 0;
	x.limit = sizeof(a) + 1;
	assert_int_equal(cn_ans_feed(&x, a, 5), 0);
	memcpy(more, a + 5, 300);
	more[300] = 0;
	assert_int_equal(cn_ans_feed(&x, more, sizeof(more)), -EPROTO);
	/* more than the limit; a header announcing more than the limit */
	x.len = 0;
	x.limit = 100;
	assert_int_equal(cn_ans_feed(&x, a, 101), -EMSGSIZE);
	x.len = 0;
	assert_int_equal(cn_ans_feed(&x, a, 5), -EPROTO);
	/* a whole (chunk) answer in the same buffer: its body aligned */
	x.len = 0;
	x.limit = sizeof(a);
	x.whole = 1;
	assert_int_equal(cn_ans_feed(&x, a, 7), 0);
	assert_int_equal((uintptr_t)(x.buf + 5) % CN_ANS_ALIGN, 0);
	assert_int_equal(cn_ans_feed(&x, a + 7, sizeof(a) - 7), 1);
	assert_memory_equal(x.buf, a, sizeof(a));
	/* then a longer answer of another kind: grown past the aligned
	 * buffer without losing what came first */
	{
		size_t n = 5 + 200000;
		uint8_t *big = malloc(n);

		assert_non_null(big);
		memset(big, 0xa5, n);
		cn_ans_head(big, CONTENT_ST_OK, (uint32_t)(n - 5));
		x.len = 0;
		x.whole = 0;
		x.limit = 1 << 20;
		assert_int_equal(cn_ans_feed(&x, big, 100), 0);
		assert_int_equal(cn_ans_feed(&x, big + 100, 1000), 0);
		assert_int_equal(cn_ans_feed(&x, big + 1100, n - 1100), 1);
		assert_memory_equal(x.buf, big, n);
		free(big);
	}
	cn_ans_free(&x);
	assert_null(x.buf);
}

/* The middle of an answer (the packet worker's lock-free path): taken
 * only when cn_ans_feed would append and still want more. */
static void test_ans_feed_mid(void **state)
{
	uint8_t a[5 + 300], bad[5];
	struct cn_ans x = {.limit = sizeof(a), .whole = 1};

	memset(a, 0x5a, sizeof(a));
	cn_ans_head(a, CONTENT_ST_OK, 300);
	assert_int_equal(cn_ans_feed_mid(&x, a, 10), 0); /* no buffer, no header yet */
	assert_int_equal(x.len, 0);
	assert_int_equal(cn_ans_feed(&x, a, 3), 0);
	assert_int_equal(cn_ans_feed_mid(&x, a + 3, 10), 0); /* header not whole */
	assert_int_equal(x.len, 3);
	assert_int_equal(cn_ans_feed(&x, a + 3, 7), 0);
	assert_int_equal(cn_ans_feed_mid(&x, a + 10, 100), 1);
	assert_int_equal(x.len, 110);
	/* the last bytes, or bytes past the end: left to cn_ans_feed */
	assert_int_equal(cn_ans_feed_mid(&x, a + 110, sizeof(a) - 110), 0);
	assert_int_equal(cn_ans_feed_mid(&x, a + 110, sizeof(a) - 110 + 1), 0);
	assert_int_equal(x.len, 110);
	assert_int_equal(cn_ans_feed_mid(&x, a + 110, sizeof(a) - 111), 1);
	assert_int_equal(cn_ans_feed(&x, a + sizeof(a) - 1, 1), 1);
	assert_memory_equal(x.buf, a, sizeof(a));
	/* beyond the buffer: cn_ans_feed grows it (or refuses) */
	x.len = 0;
	x.whole = 0;
	x.limit = 1 << 20;
	cn_ans_head(bad, CONTENT_ST_OK, 1 << 19);
	assert_int_equal(cn_ans_feed(&x, bad, 5), 0);
	x.cap = 5; /* as if the buffer were that small */
	assert_int_equal(cn_ans_feed_mid(&x, a, 1), 0);
	/* a header announcing more than the limit */
	x.cap = sizeof(a);
	x.limit = 100;
	assert_int_equal(cn_ans_feed_mid(&x, a, 1), 0);
	assert_int_equal(x.len, 5);
	cn_ans_free(&x);
}

static void test_info_bounds(void **state)
{
	size_t len = CN_INFO_ANSWER(3);
	uint8_t *a = calloc(1, len);
	struct cn_info in;

	assert_non_null(a);
	cn_info_head(a, 2 * (uint64_t)B3TREE_CHUNK_LEN + 1, 3);
	assert_int_equal(cn_info_decode(&in, a, len, CN_INFO_MAX_N), 0);
	assert_ptr_equal(in.bits, a + CN_INFO_HEAD + 96);
	assert_int_equal(cn_info_decode(&in, a, len - 1, CN_INFO_MAX_N), -EBADMSG);
	assert_int_equal(cn_info_decode(&in, a, len, 2), -EBADMSG);
	assert_int_equal(cn_info_decode(&in, a, 20, CN_INFO_MAX_N), -EBADMSG);
	/* n that does not match the size */
	cn_info_head(a, 2 * (uint64_t)B3TREE_CHUNK_LEN, 3);
	assert_int_equal(cn_info_decode(&in, a, len, CN_INFO_MAX_N), -EBADMSG);
	/* a huge n is refused before any length arithmetic */
	cn_info_head(a, UINT64_MAX, UINT64_MAX);
	assert_int_equal(cn_info_decode(&in, a, len, CN_INFO_MAX_N), -EBADMSG);
	free(a);
}

/* HAVE and PEERS (peer exchange): the docs/PROTOCOL.md vectors, and what
 * a decoder must refuse. */
static void test_have_peers(void **state)
{
	uint8_t id[32], buf[CN_REQ_MAX], want[64], have[CN_HAVE_ANSWER(1)];
	uint8_t peers[5 + 2 + 6 + 18], out[CN_PEERS_ANSWER_MAX];
	struct cn_wreq q = {.op = CONTENT_OP_HAVE};
	struct sockaddr_storage got[CN_PEX_MAX + 1];
	const struct sockaddr_in *a4 = (const void *)&got[0];
	const struct sockaddr_in6 *a6 = (const void *)&got[1];
	struct cn_info in;

	(void)state;
	unhex(id, 32, ABC_ID);
	memcpy(q.id, id, 32);
	assert_int_equal(cn_req_encode(&q, buf), 33);
	unhex(want, 33, "04" ABC_ID);
	assert_memory_equal(buf, want, 33);
	q.op = CONTENT_OP_PEERS;
	assert_int_equal(cn_req_encode(&q, buf), 33);
	unhex(want, 33, "05" ABC_ID);
	assert_memory_equal(buf, want, 33);
	assert_int_equal(cn_req_decode(&q, want, 33), 0);
	assert_int_equal(q.op, CONTENT_OP_PEERS);
	/* HAVE_HELD: holds chunks 0x102, 0x103 and 0x112 (first 0x102, mask
	 * bits 0, 1 and 16) */
	q.op = CONTENT_OP_HAVE_HELD;
	q.held_first = 0x102;
	q.held_mask = 0x00010003;
	assert_int_equal(cn_req_encode(&q, buf), 41);
	unhex(want, 41, "06" ABC_ID "00000102" "00010003");
	assert_memory_equal(buf, want, 41);
	memset(&q, 0, sizeof(q));
	assert_int_equal(cn_req_decode(&q, want, 41), 0);
	assert_int_equal(q.op, CONTENT_OP_HAVE_HELD);
	assert_int_equal(q.held_first, 0x102);
	assert_int_equal(q.held_mask, 0x00010003);
	assert_memory_equal(q.id, id, 32);
	assert_int_equal(cn_req_decode(&q, want, 33), -EPROTO); /* HAVE's length */
	assert_int_equal(cn_req_len(0x06), 41);
	/* HAVE_IDLE: HAVE_HELD from a job with nothing to fetch from anyone;
	 * nothing held to tell (mask 0), then chunk 0x102 held */
	memcpy(q.id, id, 32);
	q.op = CONTENT_OP_HAVE_IDLE;
	q.held_first = 0;
	q.held_mask = 0;
	assert_int_equal(cn_req_encode(&q, buf), 41);
	unhex(want, 41,
	      "07" ABC_ID "00000000"
	      "00000000");
	assert_memory_equal(buf, want, 41);
	q.held_first = 0x102;
	q.held_mask = 1;
	assert_int_equal(cn_req_encode(&q, buf), 41);
	unhex(want, 41,
	      "07" ABC_ID "00000102"
	      "00000001");
	assert_memory_equal(buf, want, 41);
	memset(&q, 0, sizeof(q));
	assert_int_equal(cn_req_decode(&q, want, 41), 0);
	assert_int_equal(q.op, CONTENT_OP_HAVE_IDLE);
	assert_int_equal(q.held_first, 0x102);
	assert_int_equal(q.held_mask, 1);
	assert_memory_equal(q.id, id, 32);
	assert_int_equal(cn_req_decode(&q, want, 33), -EPROTO);
	assert_int_equal(cn_req_len(0x07), 41);
	assert_int_equal(cn_req_len(0x08), 0);

	/* have answer: size 3, one chunk, held */
	unhex(have, sizeof(have),
	      "00"
	      "00000011"
	      "0000000000000003"
	      "0000000000000001"
	      "01");
	assert_int_equal(cn_have_decode(&in, have, sizeof(have), CN_INFO_MAX_N), 0);
	assert_int_equal(in.size, 3);
	assert_int_equal(in.n, 1);
	assert_null(in.cvs);
	assert_int_equal(in.bits[0], 1);
	cn_have_head(out, 3, 1);
	assert_memory_equal(out, have, CN_INFO_HEAD);
	assert_int_not_equal(cn_have_decode(&in, have, sizeof(have) - 1, CN_INFO_MAX_N), 0);
	have[16] = 2; /* two chunks cannot hold 3 bytes */
	assert_int_not_equal(cn_have_decode(&in, have, sizeof(have), CN_INFO_MAX_N), 0);

	/* peers answer: 198.51.100.7:4433 and [2001:db8::1]:4433 */
	unhex(peers, sizeof(peers),
	      "00"
	      "0000001a"
	      "0101"
	      "c6336407"
	      "1151"
	      "20010db8000000000000000000000001"
	      "1151");
	assert_int_equal(cn_peers_decode(peers, sizeof(peers), got, CN_PEX_MAX), 2);
	assert_int_equal(got[0].ss_family, AF_INET);
	assert_int_equal(ntohs(a4->sin_port), 4433);
	assert_int_equal(ntohl(a4->sin_addr.s_addr), 0xc6336407);
	assert_int_equal(got[1].ss_family, AF_INET6);
	assert_int_equal(ntohs(a6->sin6_port), 4433);
	assert_int_equal(a6->sin6_addr.s6_addr[0], 0x20);
	assert_int_equal(cn_peers_encode(out, got, 2), sizeof(peers));
	assert_memory_equal(out, peers, sizeof(peers));
	/* a short output array takes the first ones */
	assert_int_equal(cn_peers_decode(peers, sizeof(peers), got, 1), 1);
	/* length not that of the counts, port 0, more than CN_PEX_MAX */
	assert_int_equal(cn_peers_decode(peers, sizeof(peers) - 1, got, CN_PEX_MAX), -EBADMSG);
	peers[6] = 2;
	assert_int_equal(cn_peers_decode(peers, sizeof(peers), got, CN_PEX_MAX), -EBADMSG);
	peers[6] = 1;
	peers[11] = peers[12] = 0;
	assert_int_equal(cn_peers_decode(peers, sizeof(peers), got, CN_PEX_MAX), -EBADMSG);
	{
		uint8_t big[CN_ANS_HEAD + 2 + 33 * 6] = {0};

		cn_ans_head(big, CONTENT_ST_OK, 2 + 33 * 6);
		big[CN_ANS_HEAD] = 33;
		for (int i = 0; i < 33; i++)
			big[CN_ANS_HEAD + 2 + i * 6 + 5] = 1;
		assert_int_equal(cn_peers_decode(big, sizeof(big), got, CN_PEX_MAX + 1), -EBADMSG);
		/* encode never lists more than CN_PEX_MAX */
		for (int i = 0; i < 33; i++) {
			struct sockaddr_in *x = (void *)&got[i];

			memset(&got[i], 0, sizeof(got[i]));
			x->sin_family = AF_INET;
			x->sin_port = htons(1);
		}
		assert_int_equal(cn_peers_encode(out, got, 33), CN_ANS_HEAD + 2 + CN_PEX_MAX * 6);
		assert_int_equal(out[CN_ANS_HEAD], CN_PEX_MAX);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors),
	    cmocka_unit_test(test_req_feed),
	    cmocka_unit_test(test_ans_feed),
	    cmocka_unit_test(test_ans_feed_mid),
	    cmocka_unit_test(test_info_bounds),
	    cmocka_unit_test(test_have_peers),
	};

	return cmocka_run_group_tests_name("content_proto", tests, NULL, NULL);
}
