// SPDX-License-Identifier: MIT
/* Strict bounded bencode decoder and fixed-buffer encoder (see bencode.h). */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "weft/bencode.h"

struct bdec {
	struct bencode_doc *doc;
	const uint8_t *buf;
	size_t len;
	size_t pos;
	unsigned int flags;
	unsigned int max_depth;
};

static int bdec_alloc(struct bdec *d, uint32_t *idx)
{
	if (d->doc->n >= d->doc->cap)
		return -E2BIG;
	*idx = d->doc->n++;
	memset(&d->doc->nodes[*idx], 0, sizeof(d->doc->nodes[*idx]));
	return 0;
}

/* Canonical unsigned decimal up to terminator; no leading zeros unless "0". */
static int bdec_digits(struct bdec *d, char term, uint64_t limit, uint64_t *out)
{
	size_t start = d->pos;
	uint64_t v = 0;

	while (d->pos < d->len && d->buf[d->pos] >= '0' && d->buf[d->pos] <= '9') {
		unsigned int dig = d->buf[d->pos] - '0';

		if (v > (limit - dig) / 10)
			return -EINVAL;
		v = v * 10 + dig;
		d->pos++;
	}
	if (d->pos == start || d->pos >= d->len || d->buf[d->pos] != term)
		return -EINVAL;
	if (d->buf[start] == '0' && d->pos - start > 1)
		return -EINVAL;
	d->pos++; /* terminator */
	*out = v;
	return 0;
}

static int bdec_value(struct bdec *d, unsigned int depth, uint32_t *out);

static int bdec_string(struct bdec *d, struct bencode_node *n)
{
	uint64_t l;
	int err = bdec_digits(d, ':', UINT32_MAX, &l);

	if (err)
		return err;
	if (l > d->len - d->pos)
		return -EINVAL;
	n->type = BENCODE_STR;
	n->s = d->buf + d->pos;
	n->slen = (size_t)l;
	d->pos += (size_t)l;
	return 0;
}

static int bdec_key_cmp(const struct bencode_node *a, const struct bencode_node *b)
{
	size_t m = a->slen < b->slen ? a->slen : b->slen;
	int c = !m ? 0 : a->s[0] != b->s[0] ? (int)a->s[0] - (int)b->s[0] : memcmp(a->s, b->s, m);

	if (c)
		return c;
	return a->slen < b->slen ? -1 : a->slen > b->slen ? 1 : 0;
}

static int bdec_value(struct bdec *d, unsigned int depth, uint32_t *out)
{
	struct bencode_node *n;
	uint32_t idx, prev = 0;
	size_t start = d->pos;
	int err;

	if (d->pos >= d->len)
		return -EINVAL;
	err = bdec_alloc(d, &idx);
	if (err)
		return err;
	n = &d->doc->nodes[idx];
	n->raw = d->buf + start;
	switch (d->buf[d->pos]) {
	case 'i': {
		int neg = 0;
		uint64_t v;

		d->pos++;
		if (d->pos < d->len && d->buf[d->pos] == '-') {
			neg = 1;
			d->pos++;
		}
		err = bdec_digits(d, 'e', neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v);
		if (err)
			return err;
		if (neg && v == 0) /* i-0e */
			return -EINVAL;
		n->type = BENCODE_INT;
		n->i = neg ? (int64_t)(0 - v) : (int64_t)v;
		break;
	}
	case 'l':
	case 'd': {
		int dict = d->buf[d->pos] == 'd';
		uint32_t items = 0, last_key = 0;
		int unsorted = 0;

		if (depth >= d->max_depth)
			return -ELOOP;
		d->pos++;
		n->type = dict ? BENCODE_DICT : BENCODE_LIST;
		for (;;) {
			uint32_t c;

			if (d->pos >= d->len)
				return -EINVAL;
			if (d->buf[d->pos] == 'e') {
				d->pos++;
				break;
			}
			if (dict && (d->buf[d->pos] < '0' || d->buf[d->pos] > '9'))
				return -EINVAL; /* keys are strings */
			err = bdec_value(d, depth + 1, &c);
			if (err)
				return err;
			n = &d->doc->nodes[idx];
			if (prev)
				d->doc->nodes[prev].next = c;
			else
				n->child = c;
			prev = c;
			if (dict) {
				const struct bencode_node *k = &d->doc->nodes[c];
				uint32_t v;

				if (last_key) {
					int cmp = bdec_key_cmp(&d->doc->nodes[last_key], k);

					if (cmp == 0)
						return -EINVAL;
					if (cmp > 0 && (d->flags & BENCODE_STRICT))
						return -EINVAL;
					if (cmp > 0)
						unsorted = 1;
					if (unsorted) {
						/* unsorted (lenient mode): still catch duplicates
						 */
						uint32_t it = n->child;

						while (it && it != c) {
							if (!bdec_key_cmp(&d->doc->nodes[it], k))
								return -EINVAL;
							it = d->doc->nodes[it].next;
							if (it)
								it = d->doc->nodes[it].next;
						}
					}
				}
				last_key = c;
				err = bdec_value(d, depth + 1, &v);
				if (err)
					return err;
				d->doc->nodes[c].next = v;
				prev = v;
			}
			items++;
		}
		n = &d->doc->nodes[idx];
		n->count = items;
		break;
	}
	default:
		err = bdec_string(d, n);
		if (err)
			return err;
		break;
	}
	n->rawlen = d->pos - start;
	*out = idx;
	return 0;
}

int bencode_decode(struct bencode_doc *doc, const uint8_t *buf, size_t len, unsigned int flags,
		   size_t *consumed)
{
	struct bdec d = {
	    .doc = doc,
	    .buf = buf,
	    .len = len,
	    .flags = flags,
	    .max_depth = doc->max_depth ? doc->max_depth : BENCODE_DEFAULT_DEPTH,
	};
	uint32_t root;
	int err;

	if (!doc->nodes || doc->cap < 2 || (!buf && len))
		return -EINVAL;
	/* index 0 is reserved so that 0 means "none" in child/next links; the
	 * root therefore lives at index 1 and bencode_root() hides that. */
	doc->n = 1;
	memset(&doc->nodes[0], 0, sizeof(doc->nodes[0]));
	err = bdec_value(&d, 0, &root);
	if (err)
		return err;
	if (d.pos != len && !(flags & BENCODE_ALLOW_TRAILING))
		return -EINVAL;
	if (consumed)
		*consumed = d.pos;
	return 0;
}

const struct bencode_node *bencode_root(const struct bencode_doc *doc)
{
	return doc->n > 1 ? &doc->nodes[1] : NULL;
}

const struct bencode_node *bencode_dict_get(const struct bencode_doc *doc,
					    const struct bencode_node *d, const char *key)
{
	size_t kl = strlen(key);
	uint32_t it;

	if (!d || d->type != BENCODE_DICT)
		return NULL;
	for (it = d->child; it; it = doc->nodes[doc->nodes[it].next].next) {
		const struct bencode_node *k = &doc->nodes[it];

		/* the first byte tells most keys apart without a call */
		if (k->slen == kl && (!kl || (k->s[0] == (uint8_t)key[0] && !memcmp(k->s, key, kl))))
			return &doc->nodes[k->next];
	}
	return NULL;
}

const struct bencode_node *bencode_dict_get_type(const struct bencode_doc *doc,
						 const struct bencode_node *d, const char *key,
						 enum bencode_type type)
{
	const struct bencode_node *v = bencode_dict_get(doc, d, key);

	return v && v->type == type ? v : NULL;
}

const struct bencode_node *bencode_first(const struct bencode_doc *doc,
					 const struct bencode_node *n)
{
	if (!n || (n->type != BENCODE_LIST && n->type != BENCODE_DICT) || !n->child)
		return NULL;
	return &doc->nodes[n->child];
}

const struct bencode_node *bencode_next(const struct bencode_doc *doc, const struct bencode_node *n)
{
	return n && n->next ? &doc->nodes[n->next] : NULL;
}

void bencode_buf_init(struct bencode_buf *b, uint8_t *p, size_t cap)
{
	b->p = p;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
}

void bencode_put_raw(struct bencode_buf *b, const void *raw, size_t len)
{
	if (b->err)
		return;
	if (len > b->cap - b->len) {
		b->err = -ENOBUFS;
		return;
	}
	if (len)
		memcpy(b->p + b->len, raw, len);
	b->len += len;
}

/* Decimal digits of v, written backwards from end; returns the first.
 * Replies are built per datagram: snprintf was ~6% of a reply's CPU. */
static char *fmt_u64(char *end, uint64_t v)
{
	do {
		*--end = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	return end;
}

void bencode_put_int(struct bencode_buf *b, int64_t v)
{
	char tmp[24], *p;

	tmp[sizeof(tmp) - 1] = 'e';
	/* the magnitude as unsigned: INT64_MIN has no positive int64 */
	p = fmt_u64(tmp + sizeof(tmp) - 1, v < 0 ? 0 - (uint64_t)v : (uint64_t)v);
	if (v < 0)
		*--p = '-';
	*--p = 'i';
	bencode_put_raw(b, p, (size_t)(tmp + sizeof(tmp) - p));
}

void bencode_put_str(struct bencode_buf *b, const void *s, size_t len)
{
	char tmp[24], *p;

	tmp[sizeof(tmp) - 1] = ':';
	p = fmt_u64(tmp + sizeof(tmp) - 1, len);
	bencode_put_raw(b, p, (size_t)(tmp + sizeof(tmp) - p));
	bencode_put_raw(b, s, len);
}

void bencode_put_cstr(struct bencode_buf *b, const char *s)
{
	bencode_put_str(b, s, strlen(s));
}

void bencode_put_dict(struct bencode_buf *b)
{
	bencode_put_raw(b, "d", 1);
}

void bencode_put_list(struct bencode_buf *b)
{
	bencode_put_raw(b, "l", 1);
}

void bencode_put_end(struct bencode_buf *b)
{
	bencode_put_raw(b, "e", 1);
}
