// SPDX-License-Identifier: MIT
/* libFuzzer target: the service fabric's small parsers of untrusted input
 * (weft/svc.h, weft/svc_rep.h): version strings and ranges come from the
 * control API and the gateway's X-Weft-Version header, reputation records
 * from the disk. The first byte picks the parser. Beyond "no crash": an
 * accepted version prints back to a string that parses to the same value;
 * an accepted range holds at most SVC_VRANGE_MAX constraints; an accepted
 * record loads one entry whose score is in range. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "weft/svc.h"
#include "weft/svc_rep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[256], back[24];
	struct svc_vrange r;
	struct svc_rep *rep;
	uint32_t v, w;
	size_t n;

	if (size < 1)
		return 0;
	n = size - 1 < sizeof(s) - 1 ? size - 1 : sizeof(s) - 1;
	memcpy(s, data + 1, n);
	s[n] = '\0';
	switch (data[0] % 3) {
	case 0:
		if (!svc_version_parse((const char *)data + 1, size - 1, &v)) {
			svc_version_fmt(v, back, sizeof(back));
			if (svc_version_parse(back, strlen(back), &w) || w != v)
				abort();
		}
		break;
	case 1:
		if (!svc_vrange_parse(s, &r)) {
			if (r.n > SVC_VRANGE_MAX)
				abort();
			(void)svc_vrange_match(&r, 1002003);
		}
		break;
	default:
		if (size < 1 + IDENTITY_PK_LEN || svc_rep_new(&rep, 4))
			return 0;
		if (!svc_rep_load(rep, data + 1, IDENTITY_PK_LEN, data + 1 + IDENTITY_PK_LEN,
				  size - 1 - IDENTITY_PK_LEN)) {
			int32_t sc = svc_rep_score(rep, data + 1, 1700000000ull, NULL);

			if (svc_rep_count(rep) != 1 || sc < SVC_REP_DEAD_SCORE || sc > 100)
				abort();
		}
		svc_rep_free(rep);
	}
	return 0;
}
