// SPDX-License-Identifier: MIT
/*
 * The chunk store's index in LMDB (chunkstore_int.h): the fixed 32-byte
 * record of each entry, the verified-chunk bitmaps, and the lookups of
 * the three databases inside a transaction the caller holds. Every record
 * read is validated: the disk is not trusted any more than the network.
 */
#include <errno.h>
#include <string.h>

#include "content/chunkstore_int.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"

static const uint8_t rec_magic[4] = {'W', 'C', 'S', '1'};

/* ---- record encoding ---- */

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

void cn_rec_encode(uint8_t rec[REC_LEN], uint32_t state, uint64_t size, uint64_t added)
{
	memcpy(rec, rec_magic, 4);
	put_le32(rec + 4, state);
	put_le64(rec + 8, size);
	put_le64(rec + 16, b3tree_nchunks(size));
	put_le64(rec + 24, added);
}

/* Validate and decode; -EBADMSG for anything a correct writer never makes. */
int cn_rec_decode(const void *val, size_t vlen, struct cstore_info *info)
{
	const uint8_t *p = val;

	if (vlen != REC_LEN || memcmp(p, rec_magic, 4))
		return -EBADMSG;
	info->state = get_le32(p + 4);
	info->size = get_le64(p + 8);
	info->nchunks = get_le64(p + 16);
	info->added = get_le64(p + 24);
	info->have = 0;
	if (info->state < CSTORE_PARTIAL || info->state > CSTORE_BAD || info->size > REC_MAX_SIZE ||
	    info->nchunks != b3tree_nchunks(info->size))
		return -EBADMSG;
	return 0;
}

size_t cn_bits_len(uint64_t nchunks)
{
	return (size_t)((nchunks + 7) / 8);
}

int cn_bit_get(const uint8_t *bits, uint64_t i)
{
	return bits[i / 8] >> (i % 8) & 1;
}

/* Bitmap must have the exact length and no bit past nchunks. */
static int bits_valid(const uint8_t *bits, size_t len, uint64_t nchunks)
{
	if (len != cn_bits_len(nchunks))
		return 0;
	if (nchunks % 8 && bits[len - 1] >> (nchunks % 8))
		return 0;
	return 1;
}

uint64_t cn_bits_count(const uint8_t *bits, size_t len)
{
	uint64_t n = 0;

	for (size_t i = 0; i < len; i++)
		n += (uint64_t)__builtin_popcount(bits[i]);
	return n;
}

/* ---- lookups inside a transaction ---- */

int cn_load_rec(struct cstore *cs, struct store_txn *t, const uint8_t *id, struct cstore_info *info)
{
	const void *v;
	size_t vl;
	int err = store_txn_get(t, cs->db_idx, id, B3TREE_ID_LEN, &v, &vl);

	if (err)
		return err;
	err = cn_rec_decode(v, vl, info);
	if (err) {
		char hex[65];

		util_hex(hex, id, B3TREE_ID_LEN);
		log_warn(CS_MOD, "index record of %s is damaged", hex);
		return err;
	}
	memcpy(info->id, id, B3TREE_ID_LEN);
	return 0;
}

/* The record of id in dbi; an entry whose companion record is missing is
 * damaged (-EBADMSG). */
static int load_companion(struct store_txn *t, unsigned int dbi, const uint8_t *id, const void **v,
			  size_t *vl)
{
	int err = store_txn_get(t, dbi, id, B3TREE_ID_LEN, v, vl);

	return err == -ENOENT ? -EBADMSG : err;
}

int cn_load_cvs(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		const uint8_t **cvs)
{
	const void *v;
	size_t vl;
	int err = load_companion(t, cs->db_cvs, id, &v, &vl);

	if (err)
		return err;
	if (vl != nchunks * B3TREE_CV_LEN)
		return -EBADMSG;
	*cvs = v;
	return 0;
}

int cn_load_bits(struct cstore *cs, struct store_txn *t, const uint8_t *id, uint64_t nchunks,
		 const uint8_t **bits)
{
	const void *v;
	size_t vl;
	int err = load_companion(t, cs->db_bits, id, &v, &vl);

	if (err)
		return err;
	if (!bits_valid(v, vl, nchunks))
		return -EBADMSG;
	*bits = v;
	return 0;
}
