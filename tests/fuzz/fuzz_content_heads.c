// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the share-head parsers (userspace/content/heads.c),
 * which read what users type (KEY/NAME, magnet links), what any DHT node
 * returns (head values) and what the disk holds (head records). Byte 0
 * picks the parser, the rest is its input:
 *  0: cn_head_parse (NUL-terminated copy); an accepted ref must print a
 *     link and a KEY/NAME that parse back to the same ref;
 *  1: cn_head_value_read; an accepted value's share id and digest must
 *     encode (cn_head_value) to a value that reads back the same;
 *  2: cn_head_rec_decode for a fixed key; an accepted record must encode
 *     back to the same bytes, the added time aside.
 * Seeds in tests/fuzz/corpus/fuzz_content_heads/.
 *   make fuzz && build/fuzz/fuzz_content_heads corpus/
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "content/heads.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void ref_case(const uint8_t *data, size_t size)
{
	struct cn_head_ref r, r2;
	char *s = malloc(size + 1), out[300];
	const char *why;

	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = 0;
	if (cn_head_parse(s, &r, &why) == 0) {
		if (cn_head_link(&r, out, sizeof(out)) || cn_head_parse(out, &r2, &why) ||
		    memcmp(&r, &r2, sizeof(r)))
			abort();
		if (cn_head_text(&r, out, sizeof(out)) || cn_head_parse(out, &r2, &why) ||
		    memcmp(&r, &r2, sizeof(r)))
			abort();
	} else if (!why || !*why) {
		abort(); /* every refusal says why */
	}
	free(s);
}

static void value_case(const uint8_t *data, size_t size)
{
	uint8_t sid[MANIFEST_SHARE_ID_LEN], mh[32], buf[128], sid2[MANIFEST_SHARE_ID_LEN],
	    mh2[32];
	int has, has2, n;

	if (cn_head_value_read(data, size, sid, mh, &has))
		return;
	if (!has)
		memset(mh, 0, sizeof(mh));
	n = cn_head_value(sid, mh, buf, sizeof(buf));
	if (n < 0 || cn_head_value_read(buf, (size_t)n, sid2, mh2, &has2) || !has2 ||
	    memcmp(sid, sid2, sizeof(sid)) || memcmp(mh, mh2, sizeof(mh)))
		abort();
}

static void rec_case(const uint8_t *data, size_t size)
{
	static const struct cn_head_ref ref = {.name = "photos", .name_len = 6};
	uint8_t buf[CN_HEAD_REC_HDR + DHT_MAX_VALUE];
	struct cn_head_rec rec;

	if (cn_head_rec_decode(&ref, data, size, &rec))
		return;
	if (cn_head_rec_encode(&rec, buf) != size || memcmp(buf, data, 24) ||
	    memcmp(buf + 32, data + 32, size - 32))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!size)
		return 0;
	switch (data[0] % 3) {
	case 0:
		ref_case(data + 1, size - 1);
		break;
	case 1:
		value_case(data + 1, size - 1);
		break;
	default:
		rec_case(data + 1, size - 1);
		break;
	}
	return 0;
}
