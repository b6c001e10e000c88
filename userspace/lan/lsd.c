// SPDX-License-Identifier: MIT
/*
 * BEP 14 messages and the announce schedule, without I/O
 * (include/weft/lan.h). The parser takes a datagram as bytes: no NUL
 * assumed, every line and value bounded by what is left of it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "weft/lan.h"
#include "weft/util.h"

/* ------------------------------------------------------------- parser */

struct span {
	const char *p;
	size_t n;
};

static int span_eq(struct span s, const char *lit)
{
	size_t n = strlen(lit);

	return s.n == n && !strncasecmp(s.p, lit, n);
}

/* A decimal port 1..65535: digits only, at most 5 of them. */
static int parse_port(struct span v, uint16_t *out)
{
	uint32_t x = 0;

	if (v.n == 0 || v.n > 5)
		return -EINVAL;
	for (size_t i = 0; i < v.n; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint32_t)(v.p[i] - '0');
	}
	if (x == 0 || x > 65535)
		return -EINVAL;
	*out = (uint16_t)x;
	return 0;
}

static int parse_cookie(struct span v, uint32_t *out)
{
	uint32_t x = 0;

	if (v.n == 0 || v.n > 8)
		return -EINVAL;
	for (size_t i = 0; i < v.n; i++) {
		int d = util_hex_digit(v.p[i]);

		if (d < 0)
			return -EINVAL;
		x = x << 4 | (uint32_t)d;
	}
	*out = x;
	return 0;
}

static void take_ih(struct lsd_msg *m, struct span v)
{
	uint8_t ih[LSD_IH_LEN], any = 0;

	if (v.n != 2 * LSD_IH_LEN) {
		m->ih_ignored++;
		return;
	}
	for (size_t i = 0; i < LSD_IH_LEN; i++) {
		int hi = util_hex_digit(v.p[2 * i]), lo = util_hex_digit(v.p[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			m->ih_ignored++;
			return;
		}
		ih[i] = (uint8_t)(hi << 4 | lo);
		any |= ih[i];
	}
	if (!any || m->nih == LSD_MAX_IH) {
		m->ih_ignored++;
		return;
	}
	for (unsigned int k = 0; k < m->nih; k++)
		if (!memcmp(m->ih[k], ih, LSD_IH_LEN)) {
			m->ih_ignored++;
			return;
		}
	memcpy(m->ih[m->nih++], ih, LSD_IH_LEN);
}

/* The next line of buf[*off..len): without its CRLF or LF. -EINVAL when
 * the datagram ends before the line does. */
static int next_line(const uint8_t *buf, size_t len, size_t *off, struct span *line)
{
	const uint8_t *s = buf + *off, *nl = memchr(s, '\n', len - *off);
	size_t n;

	if (!nl)
		return -EINVAL;
	n = (size_t)(nl - s);
	*off += n + 1;
	if (n && s[n - 1] == '\r')
		n--;
	line->p = (const char *)s;
	line->n = n;
	return 0;
}

static struct span trim(const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return (struct span){p, n};
}

static int request_line(struct span l)
{
	static const char m[] = "BT-SEARCH * HTTP/1.";
	size_t n = sizeof(m) - 1;

	/* "BT-SEARCH * HTTP/1.1" (1.0 too: a version we understand) */
	if (l.n != n + 1 || strncasecmp(l.p, m, n) || (l.p[n] != '0' && l.p[n] != '1'))
		return -EINVAL;
	return 0;
}

int lsd_parse(const uint8_t *buf, size_t len, struct lsd_msg *m)
{
	struct span line;
	size_t off = 0;
	unsigned int nh = 0;
	int have_port = 0;

	memset(m, 0, sizeof(*m));
	if (!buf || len > LSD_MAX_RECV)
		return -E2BIG;
	if (next_line(buf, len, &off, &line) || request_line(line))
		return -EINVAL;
	while (off < len) {
		const char *colon;
		struct span name, v;

		if (next_line(buf, len, &off, &line))
			return -EINVAL;
		if (line.n == 0)
			break; /* end of headers; what follows is not ours */
		if (++nh > LSD_MAX_HEADERS)
			return -E2BIG;
		colon = memchr(line.p, ':', line.n);
		if (!colon || colon == line.p)
			return -EINVAL;
		name = (struct span){line.p, (size_t)(colon - line.p)};
		for (size_t i = 0; i < name.n; i++)
			if (name.p[i] <= ' ' || name.p[i] > '~')
				return -EINVAL;
		v = trim(colon + 1, line.n - name.n - 1);
		if (span_eq(name, "Port")) {
			if (have_port || parse_port(v, &m->port))
				return -EINVAL;
			have_port = 1;
		} else if (span_eq(name, "Infohash")) {
			take_ih(m, v);
		} else if (span_eq(name, "cookie")) {
			if (!parse_cookie(v, &m->cookie)) /* an invalid one: not ours, ignored */
				m->has_cookie = 1;
		} else if (span_eq(name, "x-weft-quic")) {
			if (parse_port(v, &m->weft_quic))
				m->weft_quic = 0;
		} else if (span_eq(name, "x-weft-dht")) {
			if (parse_port(v, &m->weft_dht))
				m->weft_dht = 0;
		}
	}
	return have_port ? 0 : -EINVAL;
}

int lsd_encode(char *buf, size_t cap, const struct lsd_msg *m, int v6)
{
	char tmp[LSD_MAX_RECV];
	size_t n = 0;
	int w;

	if (!m->port || m->nih > LSD_MAX_IH)
		return -EINVAL;
#define PUT(...)                                                                                   \
	do {                                                                                       \
		w = snprintf(tmp + n, sizeof(tmp) - n, __VA_ARGS__);                               \
		if (w < 0 || (size_t)w >= sizeof(tmp) - n)                                         \
			return -ENOSPC;                                                            \
		n += (size_t)w;                                                                    \
	} while (0)
	PUT("BT-SEARCH * HTTP/1.1\r\nHost: %s:%u\r\nPort: %u\r\n",
	    v6 ? "[" LSD_GROUP6 "]" : LSD_GROUP4, LSD_PORT, m->port);
	for (unsigned int i = 0; i < m->nih; i++) {
		char hex[2 * LSD_IH_LEN + 1];

		util_hex(hex, m->ih[i], LSD_IH_LEN);
		PUT("Infohash: %s\r\n", hex);
	}
	if (m->has_cookie)
		PUT("cookie: %x\r\n", m->cookie);
	if (m->weft_quic)
		PUT("x-weft-quic: %u\r\n", m->weft_quic);
	if (m->weft_dht)
		PUT("x-weft-dht: %u\r\n", m->weft_dht);
	PUT("\r\n\r\n"); /* BEP 14 ends the message with two empty lines */
#undef PUT
	if (n > cap)
		return -ENOSPC;
	memcpy(buf, tmp, n);
	return (int)n;
}

/* ------------------------------------------------------------ schedule */

struct sched_ent {
	uint8_t ih[LSD_IH_LEN];
	uint64_t sent; /* last announce, 0 = never */
};

struct lsd_sched {
	struct sched_ent *e; /* sorted by ih */
	size_t n;
	uint64_t announce_ms, min_gap_ms;
	uint64_t last_msg;
	int sent_any;
};

int lsd_sched_new(struct lsd_sched **out, uint64_t announce_ms, uint64_t min_gap_ms)
{
	struct lsd_sched *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->e = calloc(1, sizeof(*s->e)); /* lsd_sched_set sizes it */
	if (!s->e) {
		free(s);
		return -ENOMEM;
	}
	s->announce_ms = announce_ms ? announce_ms : LSD_ANNOUNCE_MS;
	s->min_gap_ms = min_gap_ms ? min_gap_ms : LSD_MIN_GAP_MS;
	*out = s;
	return 0;
}

void lsd_sched_free(struct lsd_sched *s)
{
	if (!s)
		return;
	free(s->e);
	free(s);
}

static int ent_cmp(const void *a, const void *b)
{
	return memcmp(a, b, LSD_IH_LEN);
}

int lsd_sched_set(struct lsd_sched *s, const uint8_t (*ih)[LSD_IH_LEN], size_t n)
{
	struct sched_ent *ne;
	size_t k = 0;

	if (n > LSD_SCHED_MAX)
		n = LSD_SCHED_MAX;
	/* n entries, not LSD_SCHED_MAX: a node seeding nothing zeroed 56
	 * KiB here at every refresh, resident for good */
	ne = calloc(n ? n : 1, sizeof(*ne));
	if (!ne)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct sched_ent *old = bsearch(ih[i], s->e, s->n, sizeof(*s->e), ent_cmp);

		memcpy(ne[k].ih, ih[i], LSD_IH_LEN);
		ne[k].sent = old ? old->sent : 0;
		k++;
	}
	qsort(ne, k, sizeof(*ne), ent_cmp);
	/* a repeated infohash: keep one */
	if (k > 1) {
		size_t w = 1;

		for (size_t i = 1; i < k; i++)
			if (memcmp(ne[i].ih, ne[w - 1].ih, LSD_IH_LEN))
				ne[w++] = ne[i];
		k = w;
	}
	free(s->e);
	s->e = ne;
	s->n = k;
	return 0;
}

int lsd_sched_next(struct lsd_sched *s, uint64_t now, uint8_t (*out)[LSD_IH_LEN], size_t cap,
		   uint64_t *wake_ms)
{
	size_t got = 0;
	uint64_t due_min = UINT64_MAX;

	if (cap > LSD_MAX_IH)
		cap = LSD_MAX_IH;
	if (s->sent_any && now < s->last_msg + s->min_gap_ms) {
		*wake_ms = s->last_msg + s->min_gap_ms;
		return -EAGAIN;
	}
	/* never announced first, then the oldest due */
	for (int pass = 0; pass < 2 && got < cap; pass++)
		for (size_t i = 0; i < s->n && got < cap; i++) {
			struct sched_ent *x = &s->e[i];

			if (pass == 0 ? x->sent != 0
				      : (x->sent == 0 || now < x->sent + s->announce_ms))
				continue;
			memcpy(out[got++], x->ih, LSD_IH_LEN);
			x->sent = now ? now : 1;
		}
	if (got || !s->sent_any || now >= s->last_msg + s->announce_ms) {
		s->sent_any = 1;
		s->last_msg = now;
		return (int)got;
	}
	for (size_t i = 0; i < s->n; i++)
		if (s->e[i].sent + s->announce_ms < due_min)
			due_min = s->e[i].sent + s->announce_ms;
	if (s->last_msg + s->announce_ms < due_min)
		due_min = s->last_msg + s->announce_ms;
	*wake_ms = due_min;
	return -EAGAIN;
}
