// SPDX-License-Identifier: MIT
/*
 * Share heads (BEP 46) without I/O: KEY/NAME and magnet links, the head's
 * value, head records. See heads.h and docs/CONTENT.md ("Share heads and
 * subscriptions"). Everything here reads hostile input.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "content/heads.h"
#include "weft/bencode.h"
#include "weft/util.h"

static int name_ok(const char *s, size_t len)
{
	struct manifest m;

	manifest_init(&m);
	return manifest_set_name(&m, s, len) == 0;
}

static int hex_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (util_hex_digit(s[i]) < 0)
			return 0;
	return 1;
}

static int unhex_n(uint8_t *out, const char *s, size_t nbytes)
{
	char tmp[2 * 64 + 1];

	if (2 * nbytes >= sizeof(tmp) || !hex_ok(s, 2 * nbytes))
		return -EINVAL;
	memcpy(tmp, s, 2 * nbytes);
	tmp[2 * nbytes] = 0;
	return util_unhex(out, nbytes, tmp);
}

#define MAGNET_PFX "magnet:?"
#define BTPK_PFX "urn:btpk:"

static int parse_magnet(const char *s, struct cn_head_ref *r, const char **why)
{
	const char *p = s + strlen(MAGNET_PFX), *xs = NULL, *salt = NULL;
	size_t xs_len = 0, salt_len = 0;

	while (*p) {
		const char *amp = strchr(p, '&'), *eq = strchr(p, '=');
		size_t plen = amp ? (size_t)(amp - p) : strlen(p);

		if (!eq || eq > p + plen) {
			*why = "magnet: a parameter without '='";
			return -EINVAL;
		}
		if (eq - p == 2 && !memcmp(p, "xs", 2)) {
			if (xs) {
				*why = "magnet: xs given twice";
				return -EINVAL;
			}
			xs = eq + 1;
			xs_len = plen - 3;
		} else if (eq - p == 1 && *p == 's') {
			if (salt) {
				*why = "magnet: s given twice";
				return -EINVAL;
			}
			salt = eq + 1;
			salt_len = plen - 2;
		} else {
			*why = "magnet: only xs=urn:btpk:KEY and s=SALT are understood";
			return -EINVAL;
		}
		p += plen;
		if (*p == '&' && !*++p) {
			*why = "magnet: trailing '&'";
			return -EINVAL;
		}
	}
	if (!xs || xs_len != strlen(BTPK_PFX) + 64 || memcmp(xs, BTPK_PFX, strlen(BTPK_PFX)) ||
	    unhex_n(r->pk, xs + strlen(BTPK_PFX), 32)) {
		*why = "magnet: xs must be urn:btpk: and a 64-hex-digit public key";
		return -EINVAL;
	}
	if (!salt || !salt_len || salt_len % 2 || !hex_ok(salt, salt_len)) {
		*why = "magnet: s must be the salt in hex (an even number of digits)";
		return -EINVAL;
	}
	if (salt_len / 2 > DHT_MAX_SALT) {
		*why = "magnet: salt over 64 bytes (BEP 44's limit)";
		return -E2BIG;
	}
	if (unhex_n((uint8_t *)r->name, salt, salt_len / 2)) {
		*why = "magnet: s is not hex";
		return -EINVAL;
	}
	r->name_len = salt_len / 2;
	r->name[r->name_len] = 0;
	if (!name_ok(r->name, r->name_len)) {
		*why = "magnet: the salt is not a share name (UTF-8, no control characters)";
		return -EINVAL;
	}
	return 0;
}

int cn_head_parse(const char *s, struct cn_head_ref *r, const char **why)
{
	static const char *none = "";
	size_t n;

	*why = none;
	memset(r, 0, sizeof(*r));
	if (!s) {
		*why = "no share head given";
		return -EINVAL;
	}
	if (!strncmp(s, MAGNET_PFX, strlen(MAGNET_PFX)))
		return parse_magnet(s, r, why);
	n = strlen(s);
	if (n < 66 || s[64] != '/' || unhex_n(r->pk, s, 32)) {
		*why = "a share head is KEY/NAME (64 hex digits, '/', the share name) or "
		       "magnet:?xs=urn:btpk:KEY&s=SALT";
		return -EINVAL;
	}
	if (n - 65 > MANIFEST_MAX_NAME) {
		*why = "share name over 64 bytes";
		return -E2BIG;
	}
	r->name_len = n - 65;
	memcpy(r->name, s + 65, r->name_len);
	r->name[r->name_len] = 0;
	if (!name_ok(r->name, r->name_len)) {
		*why = "invalid share name (UTF-8, no control characters)";
		return -EINVAL;
	}
	return 0;
}

int cn_head_link(const struct cn_head_ref *r, char *out, size_t cap)
{
	char pk[65], salt[2 * MANIFEST_MAX_NAME + 1];

	util_hex(pk, r->pk, 32);
	util_hex(salt, (const uint8_t *)r->name, r->name_len);
	return snprintf(out, cap, MAGNET_PFX "xs=" BTPK_PFX "%s&s=%s", pk, salt) < (int)cap
		   ? 0
		   : -ENOBUFS;
}

int cn_head_text(const struct cn_head_ref *r, char *out, size_t cap)
{
	char pk[65];

	util_hex(pk, r->pk, 32);
	return snprintf(out, cap, "%s/%s", pk, r->name) < (int)cap ? 0 : -ENOBUFS;
}

int cn_head_value(const uint8_t sid[MANIFEST_SHARE_ID_LEN], const uint8_t mh[32], uint8_t *out,
		  size_t cap)
{
	struct bencode_buf b;

	bencode_buf_init(&b, out, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "ih");
	bencode_put_str(&b, sid, MANIFEST_SHARE_ID_LEN);
	bencode_put_cstr(&b, "mh");
	bencode_put_str(&b, mh, 32);
	bencode_put_end(&b);
	return b.err ? -ENOBUFS : (int)b.len;
}

int cn_head_value_read(const uint8_t *v, size_t len, uint8_t sid[MANIFEST_SHARE_ID_LEN],
		       uint8_t mh[32], int *has_mh)
{
	struct bencode_node nodes[128];
	struct bencode_doc d = {.nodes = nodes, .cap = 128, .max_depth = 8};
	const struct bencode_node *root, *ih, *m;
	size_t used = 0;

	*has_mh = 0;
	if (!v || !len || len > DHT_MAX_VALUE || bencode_decode(&d, v, len, 0, &used) ||
	    used != len)
		return -EINVAL;
	root = bencode_root(&d);
	if (!root || root->type != BENCODE_DICT)
		return -EINVAL;
	ih = bencode_dict_get_type(&d, root, "ih", BENCODE_STR);
	if (!ih || ih->slen != MANIFEST_SHARE_ID_LEN)
		return -EINVAL;
	memcpy(sid, ih->s, MANIFEST_SHARE_ID_LEN);
	m = bencode_dict_get(&d, root, "mh");
	if (m) {
		if (m->type != BENCODE_STR || m->slen != 32)
			return -EINVAL;
		memcpy(mh, m->s, 32);
		*has_mh = 1;
	}
	return 0;
}

static void le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* magic 4 | flags 4 | seq 8 | got 8 | added 8 | sig 64 | vlen 2 | v */
size_t cn_head_rec_encode(const struct cn_head_rec *rec, uint8_t *out)
{
	memcpy(out, "WHD1", 4);
	out[4] = (uint8_t)rec->flags;
	out[5] = out[6] = out[7] = 0;
	le64(out + 8, (uint64_t)rec->seq);
	le64(out + 16, (uint64_t)rec->got);
	le64(out + 24, rec->added);
	memcpy(out + 32, rec->sig, 64);
	out[96] = (uint8_t)rec->vlen;
	out[97] = (uint8_t)(rec->vlen >> 8);
	memcpy(out + CN_HEAD_REC_HDR, rec->v, rec->vlen);
	return CN_HEAD_REC_HDR + rec->vlen;
}

int cn_head_rec_decode(const struct cn_head_ref *ref, const uint8_t *buf, size_t len,
		       struct cn_head_rec *rec)
{
	memset(rec, 0, sizeof(*rec));
	if (len < CN_HEAD_REC_HDR || memcmp(buf, "WHD1", 4) || buf[5] || buf[6] || buf[7] ||
	    (buf[4] & ~(CN_HEAD_OWN | CN_HEAD_SUB | CN_HEAD_BLOCK)) || !buf[4])
		return -EBADMSG;
	rec->flags = buf[4];
	rec->seq = (int64_t)rd64(buf + 8);
	rec->got = (int64_t)rd64(buf + 16);
	rec->added = rd64(buf + 24);
	memcpy(rec->sig, buf + 32, 64);
	rec->vlen = (uint16_t)(buf[96] | buf[97] << 8);
	if (rec->vlen > DHT_MAX_VALUE || len != CN_HEAD_REC_HDR + (size_t)rec->vlen ||
	    rec->seq < -1 || rec->got < -1 || rec->got > rec->seq)
		return -EBADMSG;
	memcpy(rec->v, buf + CN_HEAD_REC_HDR, rec->vlen);
	if (rec->seq >= 0 && dht_bep44_verify(ref->pk, rec->sig, (const uint8_t *)ref->name,
					      ref->name_len, rec->seq, rec->v, rec->vlen))
		return -EBADMSG;
	if (rec->seq < 0 && rec->vlen)
		return -EBADMSG;
	return 0;
}
