// SPDX-License-Identifier: MIT
/*
 * Directory cache: discovery results per service name, bounded in names
 * (LRU eviction) and in results per name (worst dropped), each with a TTL.
 * Two hash indexes (keyed SipHash, so a flood of chosen names cannot
 * degrade them into lists): name -> entry, service id -> result.
 * Results of a name are kept sorted, best first.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "weft/svc.h"

#define SVC_DIR_MAX_RESULTS_CAP 64

struct dir_name;

struct dir_res {
	struct svc_dir_result r;
	struct dir_res *id_next;
	struct dir_name *owner;
};

struct dir_name {
	char name[SVC_NAME_MAX + 1];
	size_t len;
	struct dir_name *hnext;
	struct dir_name *lru_prev, *lru_next; /* prev = more recent */
	uint32_t n;
	struct dir_res *res[SVC_DIR_MAX_RESULTS_CAP];
};

struct svc_dir {
	uint32_t max_names, max_results;
	uint64_t ttl_ms;
	uint8_t key[crypto_shorthash_KEYBYTES];
	struct dir_name **nb;
	struct dir_res **ib;
	uint32_t nmask, imask;
	struct dir_name *lru_head, *lru_tail;
	size_t n_names, n_results;
};

static uint64_t dir_hash(const struct svc_dir *dir, const void *p, size_t len)
{
	uint64_t h;

	crypto_shorthash((unsigned char *)&h, p, len, dir->key);
	return h;
}

static uint32_t pow2_at_least(uint64_t v)
{
	uint32_t p = 16;

	while (p < v && p < (1u << 30))
		p <<= 1;
	return p;
}

int svc_dir_new(struct svc_dir **out, const struct svc_dir_opts *opts)
{
	struct svc_dir_opts o = {0};
	struct svc_dir *dir;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	if (!o.max_names)
		o.max_names = SVC_DIR_DEFAULT_NAMES;
	if (!o.max_results)
		o.max_results = SVC_DIR_DEFAULT_RESULTS;
	if (!o.ttl_ms)
		o.ttl_ms = SVC_DIR_DEFAULT_TTL_MS;
	if (o.max_results > SVC_DIR_MAX_RESULTS_CAP || o.max_names > (1u << 24))
		return -EINVAL;
	dir = calloc(1, sizeof(*dir));
	if (!dir)
		return -ENOMEM;
	dir->max_names = o.max_names;
	dir->max_results = o.max_results;
	dir->ttl_ms = o.ttl_ms;
	if (o.seed) {
		for (size_t i = 0; i < sizeof(dir->key); i++)
			dir->key[i] = (uint8_t)(o.seed >> (8 * (i % 8))) ^ (uint8_t)i;
	} else {
		randombytes_buf(dir->key, sizeof(dir->key));
	}
	dir->nmask = pow2_at_least((uint64_t)o.max_names * 2) - 1;
	dir->imask = pow2_at_least((uint64_t)o.max_names * o.max_results) - 1;
	dir->nb = calloc((size_t)dir->nmask + 1, sizeof(*dir->nb));
	dir->ib = calloc((size_t)dir->imask + 1, sizeof(*dir->ib));
	if (!dir->nb || !dir->ib) {
		svc_dir_free(dir);
		return -ENOMEM;
	}
	*out = dir;
	return 0;
}

static void dir_free_name(struct dir_name *ne)
{
	for (uint32_t i = 0; i < ne->n; i++)
		free(ne->res[i]);
	free(ne);
}

void svc_dir_free(struct svc_dir *dir)
{
	struct dir_name *ne, *next;

	if (!dir)
		return;
	for (ne = dir->lru_head; ne; ne = next) {
		next = ne->lru_next;
		dir_free_name(ne);
	}
	free(dir->nb);
	free(dir->ib);
	free(dir);
}

/* ---- indexes ---- */
static struct dir_name **dir_name_slot(struct svc_dir *dir, const char *name, size_t len)
{
	struct dir_name **pp = &dir->nb[dir_hash(dir, name, len) & dir->nmask];

	while (*pp && !((*pp)->len == len && memcmp((*pp)->name, name, len) == 0))
		pp = &(*pp)->hnext;
	return pp;
}

static struct dir_res **dir_id_slot(struct svc_dir *dir, const uint8_t id[SVC_ID_LEN])
{
	struct dir_res **pp = &dir->ib[dir_hash(dir, id, SVC_ID_LEN) & dir->imask];

	while (*pp && memcmp((*pp)->r.id, id, SVC_ID_LEN) != 0)
		pp = &(*pp)->id_next;
	return pp;
}

static void lru_unlink(struct svc_dir *dir, struct dir_name *ne)
{
	if (ne->lru_prev)
		ne->lru_prev->lru_next = ne->lru_next;
	else
		dir->lru_head = ne->lru_next;
	if (ne->lru_next)
		ne->lru_next->lru_prev = ne->lru_prev;
	else
		dir->lru_tail = ne->lru_prev;
	ne->lru_prev = ne->lru_next = NULL;
}

static void lru_push_front(struct svc_dir *dir, struct dir_name *ne)
{
	ne->lru_next = dir->lru_head;
	ne->lru_prev = NULL;
	if (dir->lru_head)
		dir->lru_head->lru_prev = ne;
	dir->lru_head = ne;
	if (!dir->lru_tail)
		dir->lru_tail = ne;
}

/* Remove result i of ne (index and array), free it. */
static void dir_res_remove(struct svc_dir *dir, struct dir_name *ne, uint32_t i)
{
	struct dir_res *res = ne->res[i];
	struct dir_res **pp = dir_id_slot(dir, res->r.id);

	if (*pp == res)
		*pp = res->id_next;
	memmove(&ne->res[i], &ne->res[i + 1], (ne->n - i - 1) * sizeof(ne->res[0]));
	ne->n--;
	dir->n_results--;
	free(res);
}

static void dir_name_remove(struct svc_dir *dir, struct dir_name *ne)
{
	struct dir_name **pp = dir_name_slot(dir, ne->name, ne->len);

	while (ne->n)
		dir_res_remove(dir, ne, ne->n - 1);
	if (*pp == ne)
		*pp = ne->hnext;
	lru_unlink(dir, ne);
	dir->n_names--;
	free(ne);
}

/* Drop expired results of ne; returns how many. */
static int dir_name_expire(struct svc_dir *dir, struct dir_name *ne, uint64_t now_ms)
{
	int dropped = 0;

	for (uint32_t i = ne->n; i-- > 0;) {
		if (ne->res[i]->r.expires_ms <= now_ms) {
			dir_res_remove(dir, ne, i);
			dropped++;
		}
	}
	return dropped;
}

/* <0 if a ranks before b. */
static int dir_res_cmp(const struct svc_dir_result *a, const struct svc_dir_result *b)
{
	if (a->reputation != b->reputation)
		return a->reputation > b->reputation ? -1 : 1;
	if (a->rtt_us != b->rtt_us)
		return a->rtt_us < b->rtt_us ? -1 : 1;
	return memcmp(a->id, b->id, SVC_ID_LEN);
}

int svc_dir_add(struct svc_dir *dir, const struct svc_desc *d, int32_t reputation, uint32_t rtt_us,
		uint64_t now_ms)
{
	struct dir_name **np, *ne;
	struct dir_res **ip, *res;
	uint8_t id[SVC_ID_LEN];
	uint32_t pos;

	if (!dir || !d || !svc_name_valid((const uint8_t *)d->name, d->name_len) ||
	    d->n_endpoints > SVC_DESC_MAX_ENDPOINTS)
		return -EINVAL;
	for (uint32_t i = 0; i < d->n_endpoints; i++)
		if (!d->endpoints[i] || d->endpoint_lens[i] > SVC_DESC_ENDPOINT_MAX)
			return -EINVAL;
	svc_id(id, d->owner, d->name, d->name_len);

	res = calloc(1, sizeof(*res));
	if (!res)
		return -ENOMEM;
	memcpy(res->r.id, id, SVC_ID_LEN);
	memcpy(res->r.owner, d->owner, IDENTITY_PK_LEN);
	memcpy(res->r.name, d->name, d->name_len);
	res->r.version = d->version;
	res->r.n_endpoints = d->n_endpoints;
	for (uint32_t i = 0; i < d->n_endpoints; i++)
		memcpy(res->r.endpoints[i], d->endpoints[i], d->endpoint_lens[i]);
	res->r.desc_expires = d->expires;
	for (uint32_t i = 0; i < d->n_meta && i < SVC_DESC_MAX_META; i++) {
		const struct svc_meta *m = &d->meta[i];

		if (m->key_len == strlen(SVC_HTTP_META_CREDENTIALS) &&
		    !memcmp(m->key, SVC_HTTP_META_CREDENTIALS, m->key_len) && m->val_len == 1 &&
		    m->val[0] == '1')
			res->r.http_flags |= SVC_HTTP_F_CREDENTIALS;
		if (m->key_len == strlen(SVC_HTTP_META_CORS) &&
		    !memcmp(m->key, SVC_HTTP_META_CORS, m->key_len) &&
		    m->val_len <= SVC_HTTP_CORS_MAX && !memchr(m->val, 0, m->val_len))
			memcpy(res->r.http_cors, m->val, m->val_len);
	}
	res->r.reputation = reputation;
	res->r.rtt_us = rtt_us;
	res->r.expires_ms = now_ms + dir->ttl_ms;

	np = dir_name_slot(dir, d->name, d->name_len);
	ne = *np;
	if (!ne) {
		if (dir->n_names >= dir->max_names) {
			dir_name_remove(dir, dir->lru_tail);
			np = dir_name_slot(dir, d->name, d->name_len);
		}
		ne = calloc(1, sizeof(*ne));
		if (!ne) {
			free(res);
			return -ENOMEM;
		}
		memcpy(ne->name, d->name, d->name_len);
		ne->len = d->name_len;
		*np = ne;
		dir->n_names++;
	} else {
		lru_unlink(dir, ne);
	}
	lru_push_front(dir, ne);
	dir_name_expire(dir, ne, now_ms);

	/* Same id: replace. */
	ip = dir_id_slot(dir, id);
	if (*ip) {
		struct dir_name *old = (*ip)->owner;

		for (uint32_t i = 0; i < old->n; i++)
			if (old->res[i] == *ip) {
				dir_res_remove(dir, old, i);
				break;
			}
	}
	if (ne->n >= dir->max_results) {
		if (dir_res_cmp(&res->r, &ne->res[ne->n - 1]->r) >= 0) {
			free(res);
			return -ENOSPC;
		}
		dir_res_remove(dir, ne, ne->n - 1);
	}
	for (pos = 0; pos < ne->n && dir_res_cmp(&ne->res[pos]->r, &res->r) < 0; pos++)
		;
	memmove(&ne->res[pos + 1], &ne->res[pos], (ne->n - pos) * sizeof(ne->res[0]));
	ne->res[pos] = res;
	ne->n++;
	res->owner = ne;
	ip = dir_id_slot(dir, id);
	res->id_next = NULL;
	*ip = res;
	dir->n_results++;
	return 0;
}

int svc_dir_find(struct svc_dir *dir, const char *name, size_t name_len, uint64_t now_ms,
		 struct svc_dir_result *out, size_t max)
{
	struct dir_name *ne;
	uint32_t n;

	if (!dir || !svc_name_valid((const uint8_t *)name, name_len) || (max && !out))
		return -EINVAL;
	ne = *dir_name_slot(dir, name, name_len);
	if (!ne)
		return 0;
	dir_name_expire(dir, ne, now_ms);
	if (!ne->n) {
		dir_name_remove(dir, ne);
		return 0;
	}
	lru_unlink(dir, ne);
	lru_push_front(dir, ne);
	n = ne->n < max ? ne->n : (uint32_t)max;
	for (uint32_t i = 0; i < n; i++)
		out[i] = ne->res[i]->r;
	return (int)n;
}

int svc_dir_find_id(struct svc_dir *dir, const uint8_t id[SVC_ID_LEN], uint64_t now_ms,
		    struct svc_dir_result *out)
{
	struct dir_res *res;

	if (!dir || !id || !out)
		return -EINVAL;
	res = *dir_id_slot(dir, id);
	if (!res)
		return -ENOENT;
	if (res->r.expires_ms <= now_ms) {
		struct dir_name *ne = res->owner;

		dir_name_expire(dir, ne, now_ms);
		if (!ne->n)
			dir_name_remove(dir, ne);
		return -ENOENT;
	}
	*out = res->r;
	return 0;
}

int svc_dir_expire(struct svc_dir *dir, uint64_t now_ms)
{
	struct dir_name *ne, *next;
	int dropped = 0;

	if (!dir)
		return 0;
	for (ne = dir->lru_head; ne; ne = next) {
		next = ne->lru_next;
		dropped += dir_name_expire(dir, ne, now_ms);
		if (!ne->n)
			dir_name_remove(dir, ne);
	}
	return dropped;
}

size_t svc_dir_names(const struct svc_dir *dir)
{
	return dir ? dir->n_names : 0;
}

size_t svc_dir_results(const struct svc_dir *dir)
{
	return dir ? dir->n_results : 0;
}

uint64_t svc_dir_next_expiry(const struct svc_dir *dir)
{
	uint64_t t = UINT64_MAX;

	if (!dir)
		return t;
	for (const struct dir_name *ne = dir->lru_head; ne; ne = ne->lru_next)
		for (uint32_t i = 0; i < ne->n; i++)
			if (ne->res[i]->r.expires_ms < t)
				t = ne->res[i]->r.expires_ms;
	return t;
}
