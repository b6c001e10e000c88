// SPDX-License-Identifier: MIT
/*
 * Outgoing KRPC: the transaction table and the datagrams we send. A query
 * takes the lowest free slot of the pending table (its transaction id
 * names the slot), keeps a copy of itself for one retry, and is matched
 * with its answer by id and source address. Also the common tail of every
 * message and the slot arrays (anonymous mappings handed back page by
 * page) that the pending table and the lookups live in.
 *
 * A part below dht.c (input, timers), serve.c (answers) and lookup.c: it
 * calls none of them. When to retry or give up is dht.c's decision.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "dht/dht_int.h"

/* The slot arrays hold the only pointers to malloc'd blocks (a query's
 * retry copy, a lookup's peers): LeakSanitizer scans the heap, globals and
 * stacks, not anonymous mappings, so under ASan they are its roots. */
#if defined(__SANITIZE_ADDRESS__)
#define WEFT_LSAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WEFT_LSAN 1
#endif
#endif
#ifdef WEFT_LSAN
#include <sanitizer/lsan_interface.h>
#endif

enum dht_stat_q dht_stat_q(enum krpc_method q)
{
	switch (q) {
	case KRPC_PING:
		return DHT_Q_PING;
	case KRPC_FIND_NODE:
		return DHT_Q_FIND_NODE;
	case KRPC_GET_PEERS:
		return DHT_Q_GET_PEERS;
	case KRPC_ANNOUNCE_PEER:
		return DHT_Q_ANNOUNCE;
	case KRPC_GET:
		return DHT_Q_GET;
	case KRPC_PUT:
		return DHT_Q_PUT;
	default:
		return DHT_Q_OTHER;
	}
}

void *dht_slots_new(size_t n, size_t size)
{
	void *p = mmap(NULL, n * size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
#ifdef WEFT_LSAN
	__lsan_register_root_region(p, n * size);
#endif
	return p;
}

void dht_slots_del(void *base, size_t n, size_t size)
{
	if (!base)
		return;
#ifdef WEFT_LSAN
	__lsan_unregister_root_region(base, n * size);
#endif
	munmap(base, n * size);
}

void dht_slots_trim(void *base, size_t size, uint32_t hw, uint32_t keep, uint32_t *touched)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);
	uint32_t from = hw > keep ? hw : keep;
	size_t start, end;

	if (*touched <= from)
		return;
	start = ((size_t)from * size + pg - 1) / pg * pg;
	end = ((size_t)*touched * size + pg - 1) / pg * pg;
	/* a failure only leaves the pages resident */
	if (end > start)
		(void)madvise((uint8_t *)base + start, end - start, MADV_DONTNEED);
	*touched = from;
}

/* Release a transaction slot and its retry copy. */
void dht_pend_release(struct dht *dht, struct dht_pending *p)
{
	uint32_t slot = (uint32_t)(p - dht->pend);

	p->in_use = 0;
	free(p->pkt);
	p->pkt = NULL;
	dht->pend_used[slot / 64] &= ~(1ULL << (slot % 64));
}

/* The lowest free transaction slot, or -1. */
static int64_t pend_take(struct dht *dht)
{
	for (uint32_t w = 0; w < (dht->lim.max_pending + 63) / 64; w++)
		if (~dht->pend_used[w]) {
			uint32_t slot = w * 64 + (uint32_t)__builtin_ctzll(~dht->pend_used[w]);

			dht->pend_used[w] |= 1ULL << (slot % 64);
			if (slot >= dht->pend_touched)
				dht->pend_touched = slot + 1;
			return slot;
		}
	return -1;
}

/* One past the highest transaction slot in use. */
static uint32_t pend_high(const struct dht *dht)
{
	for (uint32_t w = (dht->lim.max_pending + 63) / 64; w-- > 0;) {
		uint64_t u = dht->pend_used[w];

		if (w == dht->lim.max_pending / 64 && dht->lim.max_pending % 64)
			u &= ~(~0ULL << (dht->lim.max_pending % 64));
		if (u)
			return w * 64 + 64 - (uint32_t)__builtin_clzll(u);
	}
	return 0;
}

/* Hand back the pages of transaction slots above the highest in use
 * (dht_slots_trim). */
void dht_pend_trim(struct dht *dht)
{
	dht_slots_trim(dht->pend, sizeof(*dht->pend), pend_high(dht), DHT_PEND_KEEP,
		       &dht->pend_touched);
}

int dht_sendto(struct dht *dht, const struct bencode_buf *b, const struct sockaddr *to,
	       socklen_t tolen)
{
	if (b->err)
		return b->err;
	return dht->o.send(dht->o.send_arg, b->p, b->len, to, tolen);
}

/* Writes "1:t<n>:<t>1:v4:<v>1:y1:<y>e"; the transaction id starts 5 bytes
 * after the current length when tlen is 4 ("1:t4:"), see dht_send_query. */
void dht_put_tail(struct dht *dht, struct bencode_buf *b, const uint8_t *t, size_t tlen,
		  const char *y)
{
	bencode_put_cstr(b, "t");
	bencode_put_str(b, t, tlen);
	bencode_put_cstr(b, "v");
	bencode_put_str(b, dht->version, 4);
	bencode_put_cstr(b, "y");
	bencode_put_cstr(b, y);
	bencode_put_end(b);
}

int dht_send_query(struct dht *dht, enum krpc_method q, const struct sockaddr *to, socklen_t tolen,
		   const uint8_t *expect_id, struct dht_lookup *lk, const struct krpc_args *a,
		   uint64_t now)
{
	static const struct krpc_args none;
	uint8_t pkt[DHT_MAX_PKT], t[4];
	struct bencode_buf b;
	struct dht_pending *p;
	int64_t took;
	uint32_t slot;
	size_t tid_off;
	int err;

	if (!a)
		a = &none;
	dht->next_tid++;
	/* lowest free slot first, so the slots written follow the peak in
	 * flight (dht_slots_trim); the tid's high half still changes per query */
	took = pend_take(dht);
	if (took < 0)
		return -ENOSPC;
	slot = (uint32_t)took;
	p = &dht->pend[slot];
	memset(p, 0, sizeof(*p));
	p->tid = (dht->next_tid << 16) | slot;
	t[0] = (uint8_t)(p->tid >> 24);
	t[1] = (uint8_t)(p->tid >> 16);
	t[2] = (uint8_t)(p->tid >> 8);
	t[3] = (uint8_t)p->tid;

	bencode_buf_init(&b, pkt, sizeof(pkt));
	bencode_put_dict(&b);
	bencode_put_cstr(&b, "a");
	bencode_put_dict(&b);
	if (a->has_cas) {
		bencode_put_cstr(&b, "cas");
		bencode_put_int(&b, a->cas);
	}
	bencode_put_cstr(&b, "id");
	bencode_put_str(&b, dht->id, DHT_ID_LEN);
	if (a->implied_port) {
		bencode_put_cstr(&b, "implied_port");
		bencode_put_int(&b, 1);
	}
	if (a->info_hash) {
		bencode_put_cstr(&b, "info_hash");
		bencode_put_str(&b, a->info_hash, DHT_ID_LEN);
	}
	if (a->k) {
		bencode_put_cstr(&b, "k");
		bencode_put_str(&b, a->k, DHT_PK_LEN);
	}
	if (a->port > 0) {
		bencode_put_cstr(&b, "port");
		bencode_put_int(&b, a->port);
	}
	if (a->salt && a->salt_len) {
		bencode_put_cstr(&b, "salt");
		bencode_put_str(&b, a->salt, a->salt_len);
	}
	if (a->has_seq) {
		bencode_put_cstr(&b, "seq");
		bencode_put_int(&b, a->seq);
	}
	if (a->sig) {
		bencode_put_cstr(&b, "sig");
		bencode_put_str(&b, a->sig, DHT_SIG_LEN);
	}
	if (a->target) {
		bencode_put_cstr(&b, "target");
		bencode_put_str(&b, a->target, DHT_ID_LEN);
	}
	if (a->token) {
		bencode_put_cstr(&b, "token");
		bencode_put_str(&b, a->token, a->token_len);
	}
	if (a->v) {
		bencode_put_cstr(&b, "v");
		bencode_put_raw(&b, a->v, a->vlen);
	}
	if (a->wk) {
		bencode_put_cstr(&b, "wk");
		bencode_put_str(&b, a->wk, DHT_WK_LEN);
	}
	/* BEP 32: a dual-stack node asks for both families in searches */
	if ((dht->o.flags & (DHT_F_DUAL_STACK | DHT_F_NO_IPV6)) == DHT_F_DUAL_STACK &&
	    (q == KRPC_FIND_NODE || q == KRPC_GET_PEERS || q == KRPC_GET)) {
		bencode_put_cstr(&b, "want");
		bencode_put_list(&b);
		bencode_put_cstr(&b, "n4");
		bencode_put_cstr(&b, "n6");
		bencode_put_end(&b);
	}
	bencode_put_end(&b);
	bencode_put_cstr(&b, "q");
	bencode_put_cstr(&b, krpc_method_name(q));
	if (dht->o.flags & DHT_F_READ_ONLY) {
		bencode_put_cstr(&b, "ro");
		bencode_put_int(&b, 1);
	}
	tid_off = b.len + 5; /* "1:t4:" */
	dht_put_tail(dht, &b, t, 4, "q");
	err = dht_sendto(dht, &b, to, tolen);
	if (err < 0) {
		dht->pend_used[slot / 64] &= ~(1ULL << (slot % 64));
		return err;
	}
	/* keep a copy for the retry; without memory the query is simply not retried */
	p->pkt = malloc(b.len);
	if (p->pkt) {
		memcpy(p->pkt, b.p, b.len);
		p->pktlen = (uint16_t)b.len;
		p->tid_off = (uint16_t)tid_off;
	}
	p->in_use = 1;
	p->q = q;
	memcpy(&p->addr, to, tolen < sizeof(p->addr) ? tolen : sizeof(p->addr));
	p->addrlen = tolen;
	if (expect_id) {
		memcpy(p->id, expect_id, DHT_ID_LEN);
		p->has_id = 1;
		struct dht_table *tb = dht_table_for(dht, to->sa_family);
		struct dht_node *n = tb ? dht_rt_find(tb, dht->id, expect_id) : NULL;

		if (n)
			n->last_ping = now;
	}
	p->sent_ms = now;
	p->lk = lk;
	p->lk_gen = lk ? lk->gen : 0;
	dht->st.queries_out[dht_stat_q(q)]++;
	return 0;
}

struct dht_pending *dht_pend_match(struct dht *dht, const struct krpc_msg *m,
				   const struct sockaddr *from)
{
	struct dht_pending *p;
	uint32_t tid;

	if (m->tlen != 4)
		return NULL;
	tid = (uint32_t)m->t[0] << 24 | (uint32_t)m->t[1] << 16 | (uint32_t)m->t[2] << 8 | m->t[3];
	if ((tid & 0xffff) >= dht->lim.max_pending)
		return NULL;
	p = &dht->pend[tid & 0xffff];
	if (!p->in_use || !dht_addr_eq((struct sockaddr *)&p->addr, from))
		return NULL;
	if (p->tid != tid && !(p->attempt && p->old_tid == tid))
		return NULL;
	return p;
}

/* Resend a timed-out query with a fresh transaction id (same slot, so the
 * O(1) lookup by tid still works). Returns 1 when the retry went out. */
int dht_pend_retry(struct dht *dht, struct dht_pending *p, uint64_t now)
{
	uint32_t slot = p->tid & 0xffff, tid;

	dht->next_tid++;
	tid = (dht->next_tid << 16) | slot;
	if (tid == p->tid)
		tid ^= 0x10000;
	p->pkt[p->tid_off] = (uint8_t)(tid >> 24);
	p->pkt[p->tid_off + 1] = (uint8_t)(tid >> 16);
	p->pkt[p->tid_off + 2] = (uint8_t)(tid >> 8);
	p->pkt[p->tid_off + 3] = (uint8_t)tid;
	if (dht->o.send(dht->o.send_arg, p->pkt, p->pktlen, (struct sockaddr *)&p->addr,
			p->addrlen) < 0)
		return 0;
	p->old_tid = p->tid;
	p->tid = tid;
	p->attempt++;
	p->sent_ms = now;
	dht->st.retries++;
	dht->st.queries_out[dht_stat_q(p->q)]++;
	return 1;
}
