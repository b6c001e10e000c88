// SPDX-License-Identifier: MIT
/* The search index (userspace/content/search.c): terms normalised with
 * NFKC and case folding (a table of inputs and the terms they give),
 * shares indexed, replaced by a new version and removed, queries with
 * every term required, rank by where the rarest term is, the share and
 * type filters, paging by cursor (every match once, in order, across
 * pages), bad queries refused; a damaged index found by its check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "content/search.h"
#include "testutil.h"
#include "weft/store.h"

static void test_terms_table(void **state)
{
	static const struct {
		const char *in;
		const char *out; /* terms joined by '|' */
	} t[] = {
	    {"Holiday Photos", "holiday|photos"},
	    {"\xef\xbc\xa1\xef\xbc\xa2\xef\xbc\xa3", "abc"},  /* fullwidth ＡＢＣ */
	    {"\xef\xac\x81le", "file"},			      /* ligature ﬁ */
	    {"Stra\xc3\x9f" "e", "strasse"},		      /* ß folds to ss */
	    {"Caf\xc3\xa9", "caf\xc3\xa9"},		      /* é precomposed */
	    {"Cafe\xcc\x81", "caf\xc3\xa9"},		      /* e + combining acute: the same */
	    {"\xe2\x85\xab", "xii"},			      /* roman numeral Ⅻ */
	    {"\xce\x9a\xce\x91\xce\x9b\xce\x97", "\xce\xba\xce\xb1\xce\xbb\xce\xb7"}, /* ΚΑΛΗ */
	    {"a-b_c.d/e  f", "a|b|c|d|e|f"},
	    {"x x X", "x"},
	    {"...", ""},
	    {"", ""},
	};
	struct cn_term out[16];
	char buf[256];

	(void)state;
	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		unsigned int n = 0;

		assert_int_equal(cn_search_terms(t[i].in, strlen(t[i].in), 0, out, &n, 16), 0);
		buf[0] = 0;
		for (unsigned int j = 0; j < n; j++) {
			if (j)
				strcat(buf, "|");
			strncat(buf, out[j].t, out[j].len);
		}
		if (strcmp(buf, t[i].out))
			fail_msg("%s: got \"%s\", want \"%s\"", t[i].in, buf, t[i].out);
	}
}

static void test_terms_bounds(void **state)
{
	struct cn_term out[4];
	char longw[200];
	unsigned int n = 0;

	(void)state;
	/* not UTF-8 */
	assert_int_equal(cn_search_terms("a\xff", 2, 0, out, &n, 4), -EILSEQ);
	/* a long word is cut at CN_SEARCH_TERM_MAX bytes, at a character
	 * boundary: 2-byte characters, 47 bytes would split one */
	for (int i = 0; i < 100; i++)
		memcpy(longw + 2 * i, "\xc3\xa9", 2);
	n = 0;
	assert_int_equal(cn_search_terms(longw, 200, 0, out, &n, 4), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].len, 48);
	/* at most cap terms kept */
	n = 0;
	assert_int_equal(cn_search_terms("a b c d e f", 11, 0, out, &n, 4), 0);
	assert_int_equal(n, 4);
	/* a term already there keeps the lower tier */
	n = 0;
	assert_int_equal(cn_search_terms("a", 1, 1, out, &n, 4), 0);
	assert_int_equal(cn_search_terms("a", 1, 0, out, &n, 4), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0].tier, 0);
}

static void test_parse(void **state)
{
	struct cn_search_q q;
	char big[600];

	(void)state;
	memset(&q, 0, sizeof(q));
	assert_int_equal(cn_search_parse("Holiday  PHOTOS", &q), 0);
	assert_int_equal(q.nterms, 2);
	assert_int_equal(cn_search_parse("  ,,, ", &q), -EINVAL);
	assert_int_equal(cn_search_parse(NULL, &q), -EINVAL);
	assert_int_equal(cn_search_parse("1 2 3 4 5 6 7 8", &q), 0);
	assert_int_equal(cn_search_parse("1 2 3 4 5 6 7 8 9", &q), -E2BIG);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	assert_int_equal(cn_search_parse(big, &q), -E2BIG);
	assert_int_equal(cn_search_parse("caf\xc3", &q), -EILSEQ);
}

struct fx {
	char *dir;
	struct store *st;
	struct cn_search *s;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	struct store_opts o = {0};

	f->dir = tu_tmpdir();
	o.dir = f->dir;
	o.map_size = 64u << 20;
	assert_int_equal(store_new(&f->st, &o), 0);
	assert_int_equal(cn_search_open(f->st, &f->s), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	cn_search_free(f->s);
	store_free(f->st);
	tu_rmrf_free(f->dir);
	free(f);
	return 0;
}

static void mk(struct manifest *m, uint8_t keyb, const char *name, uint64_t seq,
	       const char *const *paths, const char *const *types, unsigned int n)
{
	uint8_t id[32];

	manifest_init(m);
	memset(m->pk, keyb, sizeof(m->pk));
	assert_int_equal(manifest_set_name(m, name, strlen(name)), 0);
	manifest_share_id(m->pk, name, strlen(name), m->share_id);
	m->seq = seq;
	for (unsigned int i = 0; i < n; i++) {
		memset(id, (int)(i + 1), sizeof(id));
		assert_int_equal(manifest_add_item(m, paths[i], strlen(paths[i]), id, 100 + i,
						   types[i]),
				 0);
	}
}

/* Run a query; returns the results' paths joined by '|', pg's cursor kept. */
static unsigned int run(struct cn_search *s, struct cn_search_q *q, const char *text,
			struct cn_search_page *pg, char *out, size_t cap)
{
	unsigned int n;

	assert_int_equal(cn_search_parse(text, q), 0);
	if (!q->limit)
		q->limit = CN_SEARCH_PAGE_DEF;
	pg->results = json_array();
	assert_int_equal(cn_search_query(s, q, pg), 0);
	out[0] = 0;
	n = (unsigned int)json_array_size(pg->results);
	for (unsigned int i = 0; i < n; i++) {
		if (i)
			strncat(out, "|", cap - strlen(out) - 1);
		strncat(out, json_string_value(json_object_get(json_array_get(pg->results, i), "path")),
			cap - strlen(out) - 1);
	}
	json_decref(pg->results);
	return n;
}

static void test_index_query(void **state)
{
	struct fx *f = *state;
	static const char *const pa[] = {"Holiday/Beach.JPG", "holiday/notes.txt", "work/beach day.mp4",
					 "Ｆｕｌｌ.txt"};
	static const char *const ta[] = {"image/jpeg", "text/plain", "video/mp4", "text/plain"};
	static const char *const pb[] = {"beach.png"};
	static const char *const tb[] = {"image/png"};
	struct manifest a, b;
	struct cn_search_q q;
	struct cn_search_page pg;
	char out[512];
	uint64_t seq;

	mk(&a, 1, "alice", 3, pa, ta, 4);
	mk(&b, 2, "bob", 1, pb, tb, 1);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	assert_int_equal(cn_search_index(f->s, &b), 0);
	assert_int_equal(cn_search_indexed(f->s, a.share_id, &seq), 0);
	assert_int_equal(seq, 3);

	/* every term required; NFKC and case fold on both sides */
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "HOLIDAY beach", &pg, out, sizeof(out)), 1);
	assert_string_equal(out, "Holiday/Beach.JPG");
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "full", &pg, out, sizeof(out)), 1);
	/* rank: where the rarest term is found, the file name first */
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 3);
	assert_int_equal(pg.matches_max, 3);
	assert_non_null(strstr(out, "Holiday/Beach.JPG"));
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "holiday", &pg, out, sizeof(out)), 2);
	/* the type as metadata and as a filter */
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "video", &pg, out, sizeof(out)), 1);
	assert_string_equal(out, "work/beach day.mp4");
	memset(&q, 0, sizeof(q));
	strcpy(q.type, "image");
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 2);
	memset(&q, 0, sizeof(q));
	strcpy(q.type, "image/png");
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 1);
	assert_string_equal(out, "beach.png");
	memset(&q, 0, sizeof(q));
	strcpy(q.type, "imag");
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 0);
	/* the share filter */
	memset(&q, 0, sizeof(q));
	q.has_share = 1;
	memcpy(q.share, b.share_id, sizeof(q.share));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 1);
	assert_string_equal(out, "beach.png");
	/* the share filter over tiers: a word in one item's name and in
	 * another's folder, each found once */
	{
		static const char *const pc[] = {"x/beach/a.txt", "beach.txt", "z.txt"};
		static const char *const tc[] = {"text/plain", "text/plain", "text/plain"};
		struct manifest c;

		mk(&c, 3, "carol", 1, pc, tc, 3);
		assert_int_equal(cn_search_index(f->s, &c), 0);
		memset(&q, 0, sizeof(q));
		q.has_share = 1;
		memcpy(q.share, c.share_id, sizeof(q.share));
		assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 2);
		assert_string_equal(out, "beach.txt|x/beach/a.txt"); /* name before folder */
		assert_int_equal(cn_search_remove(f->s, c.share_id), 0);
		manifest_free(&c);
	}
	/* a word of nothing */
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "nothing", &pg, out, sizeof(out)), 0);
	assert_int_equal(pg.has_next, 0);

	/* a new version replaces the old: notes gone, a new item found */
	manifest_free(&a);
	{
		static const char *const pa2[] = {"Holiday/Beach.JPG", "holiday/sunset.jpg"};
		static const char *const ta2[] = {"image/jpeg", "image/jpeg"};

		mk(&a, 1, "alice", 4, pa2, ta2, 2);
	}
	assert_int_equal(cn_search_index(f->s, &a), 0);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "notes", &pg, out, sizeof(out)), 0);
	assert_int_equal(pg.matches_max, 0); /* its count went with it */
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "sunset", &pg, out, sizeof(out)), 1);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 2);

	/* removed: nothing of it found, its record gone */
	assert_int_equal(cn_search_remove(f->s, a.share_id), 0);
	assert_int_equal(cn_search_indexed(f->s, a.share_id, &seq), -ENOENT);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "holiday", &pg, out, sizeof(out)), 0);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 1);
	assert_int_equal(cn_search_remove(f->s, a.share_id), 0); /* again: fine */
	manifest_free(&a);
	manifest_free(&b);
}

/* 3 shares x 50 items all holding "song": pages of 7 give every item once,
 * in order, and the last page has no cursor. */
static void test_paging(void **state)
{
	struct fx *f = *state;
	struct manifest m[3];
	struct cn_search_q q;
	struct cn_search_page pg;
	char path[64], seen[3][50];
	char *paths[50];
	const char *types[50];
	unsigned int total = 0, pages = 0;
	uint8_t last[CN_SEARCH_CURSOR_LEN] = {0};

	memset(seen, 0, sizeof(seen));
	for (int s = 0; s < 3; s++) {
		for (int i = 0; i < 50; i++) {
			snprintf(path, sizeof(path), "%s/song %02d.ogg", i % 2 ? "album" : "single", i);
			paths[i] = strdup(path);
			types[i] = "audio/ogg";
		}
		mk(&m[s], (uint8_t)(10 + s), "music", 1, (const char *const *)paths, types, 50);
		for (int i = 0; i < 50; i++)
			free(paths[i]);
		assert_int_equal(cn_search_index(f->s, &m[s]), 0);
	}
	memset(&q, 0, sizeof(q));
	assert_int_equal(cn_search_parse("Song", &q), 0);
	q.limit = 7;
	for (;;) {
		pg.results = json_array();
		assert_int_equal(cn_search_query(f->s, &q, &pg), 0);
		pages++;
		for (size_t i = 0; i < json_array_size(pg.results); i++) {
			json_t *r = json_array_get(pg.results, i);
			const char *sid = json_string_value(json_object_get(r, "share_id"));
			int item = (int)json_integer_value(json_object_get(r, "item"));
			int s = -1;

			for (int k = 0; k < 3; k++) {
				char h[41];

				for (int b = 0; b < 20; b++)
					sprintf(h + 2 * b, "%02x", m[k].share_id[b]);
				if (!strcmp(h, sid))
					s = k;
			}
			assert_true(s >= 0);
			assert_int_equal(seen[s][item], 0);
			seen[s][item] = 1;
			total++;
		}
		json_decref(pg.results);
		if (!pg.has_next)
			break;
		assert_true(memcmp(pg.next, last, sizeof(last)) > 0); /* moves forward */
		memcpy(last, pg.next, sizeof(last));
		q.has_cursor = 1;
		memcpy(q.cursor, pg.next, sizeof(q.cursor));
		assert_true(pages < 40);
	}
	assert_int_equal(total, 150);
	assert_int_equal(pages, 22); /* 150 / 7 = 21.4: the 22nd is the rest */

	/* with the share filter, paging stays inside the share */
	memset(&q, 0, sizeof(q));
	assert_int_equal(cn_search_parse("song", &q), 0);
	q.limit = 30;
	q.has_share = 1;
	memcpy(q.share, m[1].share_id, 20);
	total = 0;
	for (pages = 0; pages < 10; pages++) {
		pg.results = json_array();
		assert_int_equal(cn_search_query(f->s, &q, &pg), 0);
		total += (unsigned int)json_array_size(pg.results);
		json_decref(pg.results);
		if (!pg.has_next)
			break;
		q.has_cursor = 1;
		memcpy(q.cursor, pg.next, sizeof(q.cursor));
	}
	assert_int_equal(total, 50);
	/* a bad limit */
	q.limit = CN_SEARCH_PAGE_MAX + 1;
	pg.results = json_array();
	assert_int_equal(cn_search_query(f->s, &q, &pg), -EINVAL);
	json_decref(pg.results);
	for (int s = 0; s < 3; s++)
		manifest_free(&m[s]);
}

/* A damaged index (a database emptied or edited behind its back) is found
 * by cn_search_check, and cn_search_clear empties it for a rebuild. */
static void test_check(void **state)
{
	struct fx *f = *state;
	static const char *const pa[] = {"Holiday/Beach.JPG", "work/beach day.mp4"};
	static const char *const ta[] = {"image/jpeg", "video/mp4"};
	struct manifest a;
	struct cn_search_q q;
	struct cn_search_page pg;
	unsigned int df, tm, it, sh;
	uint8_t k[20];
	char out[256];
	uint64_t seq;

	assert_int_equal(cn_search_check(f->s), 0); /* empty: consistent */
	mk(&a, 1, "alice", 3, pa, ta, 2);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	assert_int_equal(cn_search_check(f->s), 0);
	assert_int_equal(store_db(f->st, "content_search_df", &df), 0);
	assert_int_equal(store_db(f->st, "content_search_terms", &tm), 0);
	assert_int_equal(store_db(f->st, "content_search_items", &it), 0);
	assert_int_equal(store_db(f->st, "content_search_shares", &sh), 0);

	/* a term's count lost: "beach" no longer found, and the check says so */
	assert_int_equal(store_del(f->st, df, "beach", 5), 0);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 0);
	assert_int_equal(cn_search_check(f->s), -EBADMSG);
	/* emptied, indexed again: found, consistent */
	assert_int_equal(cn_search_clear(f->s), 0);
	assert_int_equal(cn_search_check(f->s), 0);
	assert_int_equal(cn_search_indexed(f->s, a.share_id, &seq), -ENOENT);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	memset(&q, 0, sizeof(q));
	assert_int_equal(run(f->s, &q, "beach", &pg, out, sizeof(out)), 2);
	assert_int_equal(cn_search_check(f->s), 0);

	/* a stray posting, an item record lost, a share record cut short */
	assert_int_equal(store_put(f->st, tm, "zz\0\0", 4, "", 0), 0);
	assert_int_equal(cn_search_check(f->s), -EBADMSG);
	assert_int_equal(cn_search_clear(f->s), 0);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	memcpy(k, a.share_id, 20);
	{
		uint8_t ik[24] = {0};

		memcpy(ik, a.share_id, 20);
		assert_int_equal(store_del(f->st, it, ik, sizeof(ik)), 0);
	}
	assert_int_equal(cn_search_check(f->s), -EBADMSG);
	assert_int_equal(cn_search_clear(f->s), 0);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	assert_int_equal(store_put(f->st, sh, k, sizeof(k), "short", 5), 0);
	assert_int_equal(cn_search_check(f->s), -EBADMSG);
	assert_int_equal(cn_search_indexed(f->s, a.share_id, &seq), -EBADMSG);

	/* The item signatures in the postings. One that claims every term
	 * (what its bits shared with other terms look like) does not make an
	 * item a result: the postings decide. A posting without one (an
	 * index written before signatures) is found by the check, and still
	 * answers queries. */
	assert_int_equal(cn_search_clear(f->s), 0);
	assert_int_equal(cn_search_index(f->s, &a), 0);
	{
		uint8_t pk[64] = "holiday", all[8];
		size_t kl = 7;

		pk[kl++] = 0;
		pk[kl++] = CN_TIER_PATH;
		memcpy(pk + kl, a.share_id, 20);
		kl += 20 + 4; /* item 0, "Holiday/Beach.JPG" */
		memset(all, 0xff, sizeof(all));
		assert_int_equal(store_put(f->st, tm, pk, kl, all, sizeof(all)), 0);
		assert_int_equal(cn_search_check(f->s), 0);
		memset(&q, 0, sizeof(q)); /* "holiday" (item 0 alone) drives */
		assert_int_equal(run(f->s, &q, "holiday day", &pg, out, sizeof(out)), 0);
		memset(&q, 0, sizeof(q));
		assert_int_equal(run(f->s, &q, "holiday jpeg", &pg, out, sizeof(out)), 1);
		assert_int_equal(store_put(f->st, tm, pk, kl, "", 0), 0);
		memset(&q, 0, sizeof(q));
		assert_int_equal(run(f->s, &q, "holiday jpeg", &pg, out, sizeof(out)), 1);
		memset(&q, 0, sizeof(q));
		assert_int_equal(run(f->s, &q, "holiday day", &pg, out, sizeof(out)), 0);
		/* "beach" of item 0 is the first posting of all */
		memcpy(pk, "beach", 5);
		kl = 5;
		pk[kl++] = 0;
		pk[kl++] = CN_TIER_NAME;
		memcpy(pk + kl, a.share_id, 20);
		kl += 20;
		memset(pk + kl, 0, 4);
		kl += 4;
		assert_int_equal(cn_search_check(f->s), 0);
		assert_int_equal(store_put(f->st, tm, pk, kl, "", 0), 0);
		assert_int_equal(cn_search_check(f->s), -EBADMSG);
	}
	manifest_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_terms_table),
	    cmocka_unit_test(test_terms_bounds),
	    cmocka_unit_test(test_parse),
	    cmocka_unit_test_setup_teardown(test_index_query, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_paging, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_check, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
