// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: what a community member takes from the network
 * (docs/COMMUNITY.md): gossip envelopes (comm_env_parse, then one gossip
 * domain's comm_gossip_input and comm_gossip_forward), signed records
 * (comm_rec_parse, open and closed communities), sealed boxes (comm_open)
 * and index pages (comm_index_ingest into one bounded index). The first
 * byte picks the part; the rest is the wire bytes, except in the "valid"
 * parts, where the input becomes the payload of an envelope or the name
 * of a record that the target signs, seals and pages itself, so the paths
 * past the signature are reached without a corpus of signed inputs.
 *
 * Checks: results only from each function's documented set; a parsed
 * envelope within its bounds; a forwarded envelope the same length with
 * one more hop, accepted by the parser, never past its hop limit; an
 * index never past its caps (8 members, 8 shares, 2 per member here).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "weft/comm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(int cond)
{
	if (!cond)
		abort(); /* a fuzz finding, never reached on valid code */
}

static int ready;
static uint8_t id_open[COMM_ID_LEN], pk_open[COMM_PK_LEN], sk_open[COMM_SK_LEN];
static uint8_t id_closed[COMM_ID_LEN], pk_closed[COMM_PK_LEN], sk_closed[COMM_SK_LEN];
static uint8_t member_pk[COMM_PK_LEN], member_sk[COMM_SK_LEN];
static struct comm_keys keys_open;
static struct comm_gossip *gossip;
static struct comm_index *idx;
static uint64_t now_ms = 1700000000000ull;

static int setup(void)
{
	const struct comm_gossip_opts go = {.dedup_max = 64, .origins_max = 8};
	const struct comm_index_opts io = {.members_max = 8, .shares_max = 8,
					   .shares_per_member = 2};

	if (sodium_init() < 0)
		return -1;
	comm_create(0, id_open, pk_open, sk_open);
	comm_create(1, id_closed, pk_closed, sk_closed);
	crypto_sign_keypair(member_pk, member_sk);
	comm_keys_derive(id_open, pk_open, &keys_open);
	if (comm_gossip_new(&gossip, &go) || comm_index_new(&idx, id_open, pk_open, &io))
		return -1;
	ready = 1;
	return 0;
}

static void index_bounds(void)
{
	check(comm_index_count(idx, COMM_REC_MEMBER) <= 8);
	check(comm_index_count(idx, COMM_REC_SHARE) <= 8);
}

static void take_env(const uint8_t *buf, size_t len)
{
	uint8_t fwd[COMM_ENV_MAX_LEN];
	struct comm_env e, e2;
	int rc = comm_env_parse(buf, len, &e);

	check(rc == 0 || rc == -EBADMSG);
	if (!rc) {
		check(e.payload_len <= COMM_ENV_MAX_PAYLOAD && e.max_hops <= COMM_HOPS_MAX);
		check(len == COMM_ENV_HDR_LEN + e.payload_len + COMM_SIG_LEN);
	}
	rc = comm_gossip_input(gossip, buf, len, now_ms, &e);
	check(rc == 0 || rc == -EBADMSG || rc == -ELOOP || rc == -ETIME || rc == -EBUSY ||
	      rc == -EALREADY);
	if (rc)
		return;
	rc = comm_gossip_forward(gossip, buf, len, fwd, sizeof(fwd));
	check(rc == 0 || rc == -ELOOP);
	if (!rc) {
		check(comm_env_parse(fwd, len, &e2) == 0);
		check(e2.hops == e.hops + 1 && e2.hops <= e2.max_hops && e2.hops <= 6);
		check(!memcmp(e2.id, e.id, COMM_ENV_ID_LEN));
	}
}

static void take_rec(const uint8_t *buf, size_t len)
{
	struct comm_rec r;
	int rc = comm_rec_parse(buf, len, id_open, pk_open, &r);

	check(rc == 0 || rc == -EBADMSG || rc == -EXDEV || rc == -EACCES);
	rc = comm_rec_parse(buf, len, id_closed, pk_closed, &r);
	check(rc == 0 || rc == -EBADMSG || rc == -EXDEV || rc == -EACCES);
	rc = comm_index_add(idx, buf, len);
	check(rc == 0 || rc == 1 || rc == -EALREADY || rc == -ENOSPC || rc == -EPERM ||
	      rc == -EBADMSG || rc == -EXDEV || rc == -EACCES);
	index_bounds();
}

static void take_page(const uint8_t *buf, size_t len)
{
	size_t added = 99;
	uint32_t total = 0;
	int rc = comm_index_ingest(idx, buf, len, &added, &total);

	check(rc == 0 || rc == -EBADMSG || rc == -E2BIG);
	if (!rc)
		check(added <= COMM_PAGE_RECS);
	index_bounds();
}

/* A record named by the input, signed by our member (or a GONE one),
 * sealed into a one-record page; the page's bytes then mutated by the
 * input's last byte. */
static void valid_rec_page(const uint8_t *d, size_t n)
{
	uint8_t rec[COMM_REC_MAX_LEN], box[COMM_REC_MAX_LEN + COMM_SEAL_OVERHEAD];
	uint8_t page[COMM_PAGE_HDR_LEN + 2 + sizeof(box)];
	struct comm_rec r = {0};
	size_t rl, bl, pl;

	r.type = n && (d[0] & 1) ? COMM_REC_SHARE : COMM_REC_MEMBER;
	r.flags = n && (d[0] & 2) ? COMM_REC_GONE : 0;
	memcpy(r.id, id_open, COMM_ID_LEN);
	memcpy(r.member, member_pk, COMM_PK_LEN);
	r.seq = n > 1 ? d[1] : 1;
	if (r.type == COMM_REC_SHARE) {
		r.name_len = (uint8_t)(n > 2 ? (n - 2 > COMM_NAME_MAX ? COMM_NAME_MAX : n - 2) : 1);
		memcpy(r.name, n > 2 ? (const char *)d + 2 : "x", r.name_len);
		r.name[r.name_len] = 0;
	}
	if (comm_rec_sign(&r, member_sk, rec, sizeof(rec), &rl))
		return; /* a name with a NUL: refused when built */
	take_rec(rec, rl);
	check(comm_seal(&keys_open, id_open, rec, rl, box, sizeof(box), &bl) == 0);
	/* ver | type | page (u32) | total (u32) | n (u16) | len (u16) | box */
	pl = 0;
	page[pl++] = 1;
	page[pl++] = r.type;
	memset(page + pl, 0, 8);
	page[pl + 4] = 1; /* total 1 */
	pl += 8;
	page[pl++] = 1;
	page[pl++] = 0;
	page[pl++] = (uint8_t)(bl & 0xff);
	page[pl++] = (uint8_t)(bl >> 8);
	memcpy(page + pl, box, bl);
	pl += bl;
	if (n > 3 && (d[n - 1] & 0x80))
		page[d[n - 1] % pl] ^= d[n - 2] | 1;
	take_page(page, pl);
}

/* An envelope whose payload is the input, signed by our member; its bytes
 * then mutated by the input's last byte when asked. */
static void valid_env(const uint8_t *d, size_t n)
{
	uint8_t env[COMM_ENV_MAX_LEN];
	size_t el;
	uint8_t hops = (uint8_t)(n ? 1 + d[0] % COMM_HOPS_MAX : 6);
	int rc = comm_env_build(member_sk, 2, hops, now_ms, 600, d, n, env, sizeof(env), &el);

	check(rc == 0 || rc == -E2BIG);
	if (rc)
		return;
	if (n > 2 && (d[n - 1] & 0x80))
		env[d[n - 1] % el] ^= d[n - 2] | 1;
	take_env(env, el);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t out[COMM_REC_MAX_LEN + 64];
	size_t ol;

	if (!ready && setup())
		return 0;
	if (!size)
		return 0;
	now_ms += (uint64_t)(data[0] >> 3) * 1000;
	switch (data[0] & 7) {
	case 0:
		take_env(data + 1, size - 1);
		break;
	case 1:
		take_rec(data + 1, size - 1);
		break;
	case 2:
		take_page(data + 1, size - 1);
		break;
	case 3: {
		int rc = comm_open(&keys_open, id_open, data + 1, size - 1, out, sizeof(out), &ol);

		check(rc == 0 || rc == -EBADMSG || rc == -ENOSPC);
		if (!rc)
			check(ol + COMM_SEAL_OVERHEAD == size - 1);
		break;
	}
	case 4:
	case 5:
		valid_env(data + 1, size - 1);
		break;
	default:
		valid_rec_page(data + 1, size - 1);
		break;
	}
	return 0;
}
