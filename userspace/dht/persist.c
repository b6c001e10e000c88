// SPDX-License-Identifier: MIT
/*
 * Persistence blobs (bencoded) for the routing table and the storage. The
 * lead stores them in LMDB; a blob read back is treated as hostile input:
 * strict decoding, every length checked, item targets recomputed and
 * mutable signatures verified again, storage caps applied.
 *
 * nodes:   d 2:id 20:<id> 2:n4 <26*n> 2:n6 <38*n> e
 * storage: d 5:items l d [1:k 32:] [4:salt] [3:seq i] [3:sig 64:] 3:ttl i<ms> 1:v <bencoded> e ...
 * e 5:peers l l 20:<ih> <6|18 compact> i<ttl ms> e ... e [1:t i<wall s>] e
 *
 * Lifetimes are kept as what was left at export; "t" (the wall clock at
 * export, seconds) lets the import take off the time the blob lay on disk
 * (a node down for an hour) so nothing outlives its BEP 5 / BEP 44
 * lifetime. A blob without "t", or with a "t" ahead of the clock (the
 * clock stepped back), is imported as written.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dht/dht_int.h"

#define PERSIST_MAX_BLOB (64u << 20) /* refuse blobs over 64 MiB */

int dht_export_nodes(const struct dht *dht, uint8_t **blob, size_t *len)
{
	const struct dht_table *tabs[2] = {&dht->t4, &dht->t6};
	size_t cap = 64 + (size_t)DHT_MAX_BUCKETS * DHT_K * (26 + 38) + 32;
	uint8_t *p = malloc(cap), *tmp = malloc((size_t)DHT_MAX_BUCKETS * DHT_K * 38);
	struct bencode_buf b;

	if (!p || !tmp) {
		free(p);
		free(tmp);
		return -ENOMEM;
	}
	bencode_buf_init(&b, p, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, dht->id, DHT_ID_LEN);
	for (int k = 0; k < 2; k++) {
		size_t n = 0, step = k ? 38 : 26;

		for (unsigned int i = 0; i < tabs[k]->nb; i++)
			for (uint8_t j = 0; j < tabs[k]->b[i].n; j++) {
				const struct dht_node *nd = &tabs[k]->b[i].nodes[j];

				if (dht_rt_node_bad(nd))
					continue;
				memcpy(tmp + n, nd->id, DHT_ID_LEN);
				dht_addr_compact((const struct sockaddr *)&nd->addr, tmp + n + 20);
				n += step;
			}
		bencode_put_cstr(&b, k ? "n6" : "n4");
		bencode_put_str(&b, tmp, n);
	}
	bencode_put_end(&b);
	free(tmp);
	if (b.err) {
		free(p);
		return b.err;
	}
	*blob = p;
	*len = b.len;
	return 0;
}

static int decode_blob(struct bencode_doc *d, const uint8_t *blob, size_t len)
{
	if (!blob || len < 2 || len > PERSIST_MAX_BLOB)
		return -EINVAL;
	d->cap = (uint32_t)(len / 2 + 2);
	d->max_depth = 8;
	d->nodes = calloc(d->cap, sizeof(*d->nodes));
	if (!d->nodes)
		return -ENOMEM;
	if (bencode_decode(d, blob, len, BENCODE_STRICT, NULL) ||
	    bencode_root(d)->type != BENCODE_DICT) {
		free(d->nodes);
		d->nodes = NULL;
		return -EINVAL;
	}
	return 0;
}

int dht_import_nodes(struct dht *dht, const uint8_t *blob, size_t len, uint64_t now_ms)
{
	struct bencode_doc d = {0};
	int err = decode_blob(&d, blob, len), count = 0;

	if (err)
		return err;
	for (int k = 0; k < 2; k++) {
		const struct bencode_node *n =
		    bencode_dict_get_type(&d, bencode_root(&d), k ? "n6" : "n4", BENCODE_STR);
		size_t step = k ? 38 : 26;

		if (!n)
			continue;
		if (n->slen % step || n->slen / step > (size_t)DHT_MAX_BUCKETS * DHT_K) {
			err = -EINVAL;
			goto out;
		}
		for (size_t off = 0; off < n->slen; off += step) {
			struct sockaddr_storage ss;
			socklen_t sl;

			if (dht_addr_from_compact(n->s + off + 20, step - 20, &ss, &sl))
				continue;
			if (!memcmp(n->s + off, dht->id, DHT_ID_LEN))
				continue;
			if (!dht_send_query(dht, KRPC_PING, (struct sockaddr *)&ss, sl, n->s + off,
					    NULL, NULL, now_ms))
				count++;
		}
	}
	err = count;
out:
	free(d.nodes);
	return err;
}

int dht_export_storage(const struct dht *dht, uint64_t now_ms, uint64_t wall_s, uint8_t **blob,
		       size_t *len)
{
	const struct dht_store *s = &dht->store;
	size_t cap = 64 + (size_t)s->nitems * (DHT_MAX_VALUE + 256) + (size_t)s->npeers * 64;
	uint8_t *p = malloc(cap);
	struct bencode_buf b;

	if (!p)
		return -ENOMEM;
	bencode_buf_init(&b, p, cap);
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "items");
	bencode_put_list(&b);
	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++)
		for (const struct dht_item *e = s->it[i]; e; e = e->next) {
			if (e->expires <= now_ms)
				continue;
			bencode_put_dict(&b);
			if (e->mut) {
				bencode_put_cstr(&b, "k");
				bencode_put_str(&b, e->k, DHT_PK_LEN);
				if (e->salt_len) {
					bencode_put_cstr(&b, "salt");
					bencode_put_str(&b, e->salt, e->salt_len);
				}
				bencode_put_cstr(&b, "seq");
				bencode_put_int(&b, e->seq);
				bencode_put_cstr(&b, "sig");
				bencode_put_str(&b, e->sig, DHT_SIG_LEN);
			}
			bencode_put_cstr(&b, "ttl");
			bencode_put_int(&b, (int64_t)(e->expires - now_ms));
			bencode_put_cstr(&b, "v");
			bencode_put_raw(&b, e->v, e->vlen);
			bencode_put_end(&b);
		}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "peers");
	bencode_put_list(&b);
	for (unsigned int i = 0; i < DHT_STORE_HBUCKETS; i++)
		for (const struct dht_ih *e = s->ih[i]; e; e = e->next)
			for (uint32_t j = 0; j < e->npeers; j++) {
				uint8_t c[18];
				int cl =
				    dht_addr_compact((const struct sockaddr *)&e->peers[j].addr, c);

				if (e->peers[j].expires <= now_ms || !cl)
					continue;
				bencode_put_list(&b);
				bencode_put_str(&b, e->ih, DHT_ID_LEN);
				bencode_put_str(&b, c, (size_t)cl);
				bencode_put_int(&b, (int64_t)(e->peers[j].expires - now_ms));
				bencode_put_end(&b);
			}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "t");
	bencode_put_int(&b, (int64_t)wall_s);
	bencode_put_end(&b);
	if (b.err) {
		free(p);
		return b.err;
	}
	*blob = p;
	*len = b.len;
	return 0;
}

static int import_item(struct dht *dht, const struct bencode_doc *d, const struct bencode_node *e,
		       uint64_t now, uint64_t away_ms)
{
	const struct bencode_node *v = bencode_dict_get(d, e, "v");
	const struct bencode_node *ttl = bencode_dict_get_type(d, e, "ttl", BENCODE_INT);
	const struct bencode_node *k = bencode_dict_get_type(d, e, "k", BENCODE_STR);
	struct dht_item it;
	struct dht_item *st;

	if (!v || !ttl || ttl->i <= 0 || (uint64_t)ttl->i > DHT_ITEM_TTL_MS ||
	    v->rawlen > DHT_MAX_VALUE)
		return -EINVAL;
	if ((uint64_t)ttl->i <= away_ms)
		return -ETIME; /* expired while the blob lay on disk */
	memset(&it, 0, sizeof(it));
	if (k) {
		const struct bencode_node *sig = bencode_dict_get_type(d, e, "sig", BENCODE_STR);
		const struct bencode_node *seq = bencode_dict_get_type(d, e, "seq", BENCODE_INT);
		const struct bencode_node *salt = bencode_dict_get_type(d, e, "salt", BENCODE_STR);

		if (k->slen != DHT_PK_LEN || !sig || sig->slen != DHT_SIG_LEN || !seq ||
		    (salt && salt->slen > DHT_MAX_SALT))
			return -EINVAL;
		it.mut = 1;
		memcpy(it.k, k->s, DHT_PK_LEN);
		memcpy(it.sig, sig->s, DHT_SIG_LEN);
		it.seq = seq->i;
		if (salt) {
			memcpy(it.salt, salt->s, salt->slen);
			it.salt_len = salt->slen;
		}
		if (dht_bep44_verify(it.k, it.sig, it.salt, it.salt_len, it.seq, v->raw, v->rawlen))
			return -EINVAL;
		dht_bep44_target_mutable(it.target, it.k, it.salt, it.salt_len);
	} else {
		dht_bep44_target_immutable(it.target, v->raw, v->rawlen);
	}
	memcpy(it.v, v->raw, v->rawlen);
	it.vlen = v->rawlen;
	if (dht_store_put_item(&dht->store, &it, now))
		return -ENOSPC;
	st = dht_store_find_item(&dht->store, it.target);
	if (st)
		st->expires = now + (uint64_t)ttl->i - away_ms;
	return 0;
}

static int import_peer(struct dht *dht, const struct bencode_doc *d, const struct bencode_node *e,
		       uint64_t now, uint64_t away_ms)
{
	const struct bencode_node *ih = bencode_first(d, e);
	const struct bencode_node *c = bencode_next(d, ih);
	const struct bencode_node *ttl = bencode_next(d, c);
	struct sockaddr_storage ss;
	socklen_t sl;
	struct dht_ih *h;

	if (e->type != BENCODE_LIST || e->count != 3 || ih->type != BENCODE_STR ||
	    ih->slen != DHT_ID_LEN || c->type != BENCODE_STR || ttl->type != BENCODE_INT ||
	    ttl->i <= 0 || (uint64_t)ttl->i > DHT_PEER_TTL_MS ||
	    dht_addr_from_compact(c->s, c->slen, &ss, &sl))
		return -EINVAL;
	if ((uint64_t)ttl->i <= away_ms)
		return -ETIME;
	if (dht_store_add_peer(&dht->store, ih->s, (struct sockaddr *)&ss, now))
		return -ENOSPC;
	h = dht_store_find_ih(&dht->store, ih->s);
	for (uint32_t i = 0; h && i < h->npeers; i++)
		if (dht_addr_eq((struct sockaddr *)&h->peers[i].addr, (struct sockaddr *)&ss))
			h->peers[i].expires = now + (uint64_t)ttl->i - away_ms;
	return 0;
}

int dht_import_storage(struct dht *dht, const uint8_t *blob, size_t len, uint64_t now_ms,
		       uint64_t wall_s)
{
	struct bencode_doc d = {0};
	const struct bencode_node *items, *peers, *t;
	int err = decode_blob(&d, blob, len), count = 0;
	uint64_t away_ms = 0;

	if (err)
		return err;
	items = bencode_dict_get_type(&d, bencode_root(&d), "items", BENCODE_LIST);
	peers = bencode_dict_get_type(&d, bencode_root(&d), "peers", BENCODE_LIST);
	t = bencode_dict_get_type(&d, bencode_root(&d), "t", BENCODE_INT);
	/* longer than any lifetime: everything is gone (and no overflow) */
	if (t && t->i > 0 && (uint64_t)t->i < wall_s)
		away_ms = wall_s - (uint64_t)t->i > DHT_ITEM_TTL_MS / 1000
				  ? DHT_ITEM_TTL_MS
				  : (wall_s - (uint64_t)t->i) * 1000;
	for (const struct bencode_node *e = bencode_first(&d, items); e; e = bencode_next(&d, e))
		if (e->type == BENCODE_DICT && !import_item(dht, &d, e, now_ms, away_ms))
			count++;
	for (const struct bencode_node *e = bencode_first(&d, peers); e; e = bencode_next(&d, e))
		if (!import_peer(dht, &d, e, now_ms, away_ms))
			count++;
	free(d.nodes);
	return count;
}
