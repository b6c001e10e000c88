// SPDX-License-Identifier: MIT
/*
 * The service fabric's publications and descriptors: publish (descriptor,
 * announce, node record, refresh), the publications restored from the
 * store at start (svc_persist.c is the store's side), and descriptor
 * verification into the directory cache. Lookups are in svc_find.c, the
 * provider side that serves our descriptors in svc_serve.c. Everything
 * here runs on the fabric's owner but for the callers' halves of publish
 * and the refresher thread.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "svc_dir_int.h"
#include "svc_rep_int.h"
#include "weft/quic_node.h"
#include "weft/dht.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/dhtnode.h"
#include "weft/store.h"
#include "weft/util.h"

/* ------------------------------------------------------------ publish */

static const char *const reject_names[8] = {"malformed", "oversized", "signature", "owner",
					    "expired",	 "future",    "banned",	   "unreachable"};

const char *svcn_reject_name(unsigned int i)
{
	return i < 8 ? reject_names[i] : "unknown";
}

struct svcn_pub *svcn_pub_find(struct svc_node *sn, const char *name, size_t len)
{
	for (size_t i = 0; i < sn->npubs; i++)
		if (sn->pubs[i].used && strlen(sn->pubs[i].name) == len &&
		    !memcmp(sn->pubs[i].name, name, len))
			return &sn->pubs[i];
	return NULL;
}

/* The first free publication slot, or NULL when all are in use. */
struct svcn_pub *svcn_pub_slot(struct svc_node *sn)
{
	for (size_t i = 0; i < sn->npubs; i++)
		if (!sn->pubs[i].used)
			return &sn->pubs[i];
	return sn->npubs < SVC_NODE_MAX_PUBLISHED ? &sn->pubs[sn->npubs++] : NULL;
}

/* "ip:port" or "[ip]:port" into dst when it fits: 1, else 0. */
static int ep_set(char dst[SVC_DESC_ENDPOINT_MAX + 1], const char *ip, unsigned int port)
{
	char tmp[128];
	int l = snprintf(tmp, sizeof(tmp), strchr(ip, ':') ? "[%s]:%u" : "%s:%u", ip, port);

	if (l <= 0 || l > SVC_DESC_ENDPOINT_MAX)
		return 0;
	memcpy(dst, tmp, (size_t)l + 1);
	return 1;
}

int svcn_endpoints(struct svc_node *sn, char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1])
{
	struct ifaddrs *ifa = NULL, *i;
	int n = 0, pass;
	char ip[INET6_ADDRSTRLEN];
	unsigned int port = sn->cfg.quic_port;

	if (sn->cfg.bind_addr[0] && strcmp(sn->cfg.bind_addr, "0.0.0.0") &&
	    strcmp(sn->cfg.bind_addr, "::")) {
		return ep_set(eps[0], sn->cfg.bind_addr, port);
	}
	if (getifaddrs(&ifa))
		return 0;
	/* Pass 0: global addresses; pass 1: loopback, only if nothing else. */
	for (pass = 0; pass < 2 && n == 0; pass++)
		for (i = ifa; i && n < SVC_DESC_MAX_ENDPOINTS; i = i->ifa_next) {
			if (!i->ifa_addr || !(i->ifa_flags & IFF_UP))
				continue;
			if (!!(i->ifa_flags & IFF_LOOPBACK) != pass)
				continue;
			if (i->ifa_addr->sa_family == AF_INET) {
				inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, ip,
					  sizeof(ip));
				n += ep_set(eps[n], ip, port);
			} else if (i->ifa_addr->sa_family == AF_INET6) {
				struct in6_addr *a = &((struct sockaddr_in6 *)i->ifa_addr)->sin6_addr;

				if (IN6_IS_ADDR_LINKLOCAL(a))
					continue;
				inet_ntop(AF_INET6, a, ip, sizeof(ip));
				n += ep_set(eps[n], ip, port);
			}
		}
	freeifaddrs(ifa);
	return n;
}

/* Sign a fresh descriptor for p (on the owner). */
static int pub_sign(struct svc_node *sn, struct svcn_pub *p)
{
	char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1];
	struct svc_desc d = { 0 };
	uint8_t *buf = malloc(SVC_DESC_MAX_LEN);
	const char *kind = p->backend[0] ? (strncmp(p->backend, "unix:", 5) ? "tcp" : "unix")
					 : "builtin";
	size_t len;
	int n, err;

	if (!buf)
		return -ENOMEM;
	n = svcn_endpoints(sn, eps);
	d.name = p->name;
	d.name_len = strlen(p->name);
	d.version = p->version ? p->version : SVC_VERSION_DEFAULT;
	d.n_endpoints = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		d.endpoints[i] = eps[i];
		d.endpoint_lens[i] = strlen(eps[i]);
	}
	d.n_meta = 1;
	d.meta[0].key = (const uint8_t *)"kind";
	d.meta[0].key_len = 4;
	d.meta[0].val = (const uint8_t *)kind;
	d.meta[0].val_len = strlen(kind);
	/* HTTP publish options: every gateway reads them from here. */
	if (p->http_flags & SVC_HTTP_F_CREDENTIALS) {
		d.meta[d.n_meta].key = (const uint8_t *)SVC_HTTP_META_CREDENTIALS;
		d.meta[d.n_meta].key_len = strlen(SVC_HTTP_META_CREDENTIALS);
		d.meta[d.n_meta].val = (const uint8_t *)"1";
		d.meta[d.n_meta++].val_len = 1;
	}
	if (p->cors[0]) {
		d.meta[d.n_meta].key = (const uint8_t *)SVC_HTTP_META_CORS;
		d.meta[d.n_meta].key_len = strlen(SVC_HTTP_META_CORS);
		d.meta[d.n_meta].val = (const uint8_t *)p->cors;
		d.meta[d.n_meta++].val_len = strlen(p->cors);
	}
	/* The publisher's own metadata (checked at publish: no reserved key,
	 * within SVC_NODE_PUB_META entries and SVC_NODE_PUB_META_BYTES). */
	for (uint32_t i = 0; i < p->n_meta && d.n_meta < SVC_DESC_MAX_META; i++) {
		d.meta[d.n_meta].key = (const uint8_t *)p->meta_key[i];
		d.meta[d.n_meta].key_len = strlen(p->meta_key[i]);
		d.meta[d.n_meta].val = (const uint8_t *)p->meta_val[i];
		d.meta[d.n_meta++].val_len = strlen(p->meta_val[i]);
	}
	d.created = util_wall_s();
	d.expires = d.created + SVC_NODE_DESC_LIFETIME_S;
	err = svc_desc_sign(&d, &sn->id, buf, SVC_DESC_MAX_LEN, &len);
	if (err) {
		free(buf);
		return err;
	}
	free(p->desc);
	p->desc = buf;
	p->desc_len = len;
	p->expires = d.expires;
	return 0;
}

struct svcn_dhtop {
	struct svcn_shim *shim;
	char name[SVC_NAME_MAX + 1];
	uint8_t target[20];
	uint16_t port;
	uint8_t claim[SVC_CLAIM_LEN]; /* our key claim, sent as the announce's "wk" */
	int status;	 /* the announce's result, copied on worker 0 */
	unsigned int stored;
};

/* On the fabric's owner (posted from worker 0, the DHT's owner); sn NULL:
 * the owner is gone, release only. */
static void announce_done_own(void *arg, struct svc_node *sn)
{
	struct svcn_dhtop *op = arg;

	if (sn) {
		struct svcn_pub *p = svcn_pub_find(sn, op->name, strlen(op->name));

		if (p)
			p->announced = op->status ? 0 : (int)op->stored;
		log_info("svc", "announced %s: stored on %u DHT nodes (%s)", op->name, op->stored,
			 op->status ? strerror(-op->status) : "ok");
	}
	free(op);
}

static void announce_done(void *arg, const struct dht_result *res)
{
	struct svcn_dhtop *op = arg;

	op->status = res->status;
	op->stored = res->stored;
	svcn_owner_call(op->shim, announce_done_own, op);
}

static void dht_announce_fn(struct dht *dht, void *arg, uint64_t now_ms)
{
	struct svcn_dhtop *op = arg;

	_Static_assert(SVC_CLAIM_LEN == DHT_WK_LEN, "a key claim is the DHT's wk");
	if (dht_announce_wk(dht, op->target, op->port, 0, op->claim, now_ms, announce_done, op))
		free(op);
}

/* The QUIC port services are announced with: the NAT's mapping of our
 * QUIC socket when the address votes know it (an announce's address is
 * the one the DHT sees it come from: the NAT's), else ours. */
static uint16_t announce_port(struct svc_node *sn)
{
	uint16_t p = sn->announce_port ? sn->announce_port(sn->announce_port_arg) : 0;

	return p ? p : (uint16_t)sn->cfg.quic_port;
}

/* Announce under one target (any thread: worker 0 runs it). */
static void announce_target(struct svc_node *sn, const char *name, const uint8_t target[20])
{
	struct svcn_dhtop *a;

	a = calloc(1, sizeof(*a));
	if (!a)
		return;
	a->shim = sn->shim;
	snprintf(a->name, sizeof(a->name), "%s", name);
	memcpy(a->target, target, 20);
	a->port = announce_port(sn);
	/* Our key with the announce: a caller whose packets our NAT filters
	 * dials us by key (record, relay) instead. */
	svc_claim_sign(a->claim, &sn->id, a->target, util_wall_s());
	atomic_store(&sn->announced_port, a->port);
	if (dhtnode_run(sn->dht, dht_announce_fn, a))
		free(a);
}

/* Announce name (any thread): under the name's target when public
 * (n_allow 0), else under each listed key's private target only. The node
 * record (key = node key, salt "weft:node") is published by the node
 * itself (conn), service or not. */
static void pub_announce(struct svc_node *sn, const char *name, uint32_t n_allow,
			 const uint8_t (*allow)[IDENTITY_PK_LEN])
{
	uint8_t target[20];

	if (!sn->dht)
		return;
	if (!n_allow) {
		svc_name_target(target, name, strlen(name));
		announce_target(sn, name, target);
		return;
	}
	for (uint32_t i = 0; i < n_allow && i < SVC_NODE_PUB_ALLOW; i++) {
		svc_private_target(target, name, strlen(name), allow[i]);
		announce_target(sn, name, target);
	}
}

int svcn_pub_visible(const struct svcn_pub *p, const uint8_t key[IDENTITY_PK_LEN])
{
	if (!p->n_allow)
		return 1;
	for (uint32_t i = 0; i < p->n_allow; i++)
		if (!memcmp(p->allow[i], key, IDENTITY_PK_LEN))
			return 1;
	return 0;
}

/* A CORS origin a service may name: "*" or "http[s]://HOST[:PORT]" of
 * printable bytes without spaces, commas or a path. */
static int cors_valid(const char *o)
{
	const char *h;
	size_t l = strlen(o);

	if (!strcmp(o, "*"))
		return 1;
	if (l > SVC_HTTP_CORS_MAX)
		return 0;
	h = !strncmp(o, "http://", 7) ? o + 7 : !strncmp(o, "https://", 8) ? o + 8 : NULL;
	if (!h || !*h)
		return 0;
	for (; *h; h++)
		if (*h <= ' ' || *h >= 0x7f || *h == ',' || *h == '/')
			return 0;
	return 1;
}

/* A user metadata key: [a-z0-9._-], 1..SVC_DESC_META_KEY_MAX bytes, and
 * none the fabric writes itself ("kind", "vis", "http.*", "weft.*"). */
static int meta_key_ok(const char *k)
{
	size_t l = strlen(k);

	if (!l || l > SVC_DESC_META_KEY_MAX || !strcmp(k, "kind") || !strcmp(k, "vis") ||
	    !strncmp(k, "http.", 5) || !strncmp(k, "weft.", 5))
		return 0;
	for (const char *c = k; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
		      *c == '_' || *c == '-'))
			return 0;
	return 1;
}

/* Version, limits, metadata and visibility within their rules: 0 or
 * -EINVAL. */
static int pub_opts_check(const struct svc_node_pub_opts *po)
{
	size_t bytes = 0;

	if (po->version > SVC_VERSION_MAJOR_MAX * 1000000u + 999999u ||
	    po->n_meta > SVC_NODE_PUB_META || po->n_allow > SVC_NODE_PUB_ALLOW)
		return -EINVAL;
	for (uint32_t i = 0; i < po->n_meta; i++) {
		if (!po->meta_key[i] || !po->meta_val[i] || !meta_key_ok(po->meta_key[i]))
			return -EINVAL;
		for (uint32_t j = 0; j < i; j++)
			if (!strcmp(po->meta_key[i], po->meta_key[j]))
				return -EINVAL;
		for (const char *c = po->meta_val[i]; *c; c++)
			if (*c < 0x20 || *c > 0x7e)
				return -EINVAL;
		bytes += strlen(po->meta_key[i]) + strlen(po->meta_val[i]);
	}
	return bytes > SVC_NODE_PUB_META_BYTES ? -EINVAL : 0;
}

/* Forget a publication in memory (unpublish, or a publish whose record
 * could not be stored). Locked. */
static void pub_drop_own(struct svc_node *sn, struct svcn_pub *p)
{
	if (p->backend[0])
		svc_router_unregister(sn->router, p->name);
	free(p->desc);
	memset(p, 0, sizeof(*p));
}

/* A publish or unpublish run on the owner: the in-memory part and the
 * store write queued (in the order memory changes); the caller waits for
 * the ticket off the owner. */
struct pub_req {
	const char *name, *backend;
	const struct svc_node_pub_opts *po;
	int persist;
	struct store_write *ticket;
	int err;
};

static void publish_own(struct svc_node *sn, void *arg)
{
	struct pub_req *r = arg;
	const char *name = r->name, *backend = r->backend;
	const struct svc_node_pub_opts *po = r->po;
	struct svc_service_opts so = { 0 };
	struct svcn_pub *p = NULL;
	int err;

	if (svcn_pub_find(sn, name, strlen(name))) {
		r->err = -EEXIST;
		return;
	}
	p = svcn_pub_slot(sn);
	if (!p) {
		r->err = -ENOSPC;
		return;
	}
	so.name = name;
	if (po) {
		so.limits.calls_per_min = po->calls_per_min;
		so.limits.max_payload = po->max_payload;
		so.limits.max_concurrent = po->max_concurrent;
	}
	if (backend && *backend) {
		so.kind = SVC_KIND_BACKEND;
		so.backend = backend;
		err = svc_router_register(sn->router, &so);
	} else if (po && (po->calls_per_min || po->max_payload || po->max_concurrent ||
			  po->max_streams)) {
		err = -EINVAL; /* a built-in keeps the node's limits */
	} else {
		/* Built-ins are registered at start; publishing one only advertises it. */
		err = (!strcmp(name, "echo") || !strcmp(name, "mesh-stats")) ? 0 : -EINVAL;
	}
	if (err) {
		r->err = err;
		return;
	}
	memset(p, 0, sizeof(*p));
	snprintf(p->name, sizeof(p->name), "%s", name);
	snprintf(p->backend, sizeof(p->backend), "%s", backend ? backend : "");
	if (po) {
		p->http_flags = po->http_flags & SVC_HTTP_F_CREDENTIALS;
		snprintf(p->cors, sizeof(p->cors), "%s", po->cors ? po->cors : "");
		p->version = po->version;
		p->calls_per_min = po->calls_per_min;
		p->max_payload = po->max_payload;
		p->max_concurrent = po->max_concurrent;
		p->max_streams = po->max_streams;
		p->n_meta = po->n_meta;
		for (uint32_t i = 0; i < po->n_meta; i++) {
			snprintf(p->meta_key[i], sizeof(p->meta_key[i]), "%s", po->meta_key[i]);
			snprintf(p->meta_val[i], sizeof(p->meta_val[i]), "%s", po->meta_val[i]);
		}
		p->n_allow = po->n_allow;
		memcpy(p->allow, po->allow, sizeof(p->allow));
	}
	p->announced = -1;
	err = pub_sign(sn, p);
	if (err) {
		if (p->backend[0])
			svc_router_unregister(sn->router, name);
		r->err = err;
		return;
	}
	if (r->persist && (err = svcn_pub_store_queue(sn, name, p, &r->ticket))) {
		free(p->desc);
		if (p->backend[0])
			svc_router_unregister(sn->router, name);
		memset(p, 0, sizeof(*p));
		r->err = err;
		return;
	}
	p->used = 1;
	p->refreshed_ms = util_now_ms();
}

/* Forget name in memory (a publish whose record was not stored). */
static void pub_forget_own(struct svc_node *sn, void *arg)
{
	struct svcn_pub *p = svcn_pub_find(sn, arg, strlen(arg));

	if (p)
		pub_drop_own(sn, p);
}

/* Publish with persist = 0 (restore) or 1 (the API). */
static int pub_publish(struct svc_node *sn, const char *name, const char *backend,
		       const struct svc_node_pub_opts *po, int persist)
{
	struct pub_req r = {.name = name, .backend = backend, .po = po, .persist = persist};
	int err;

	if (!name || !svc_name_valid((const uint8_t *)name, strlen(name)))
		return -EINVAL;
	if (backend && *backend && strncmp(backend, "tcp:", 4) && strncmp(backend, "unix:", 5))
		return -EINVAL;
	if (backend && strlen(backend) >= SVC_BACKEND_ADDR_MAX)
		return -EINVAL;
	if (po && po->cors && po->cors[0] && !cors_valid(po->cors))
		return -EINVAL;
	if (po && pub_opts_check(po))
		return -EINVAL;
	err = svcn_owner_run(sn, publish_own, &r, SVCN_OWNER_RUN_MS);
	if (err || r.err)
		return err ? err : r.err;
	if (r.ticket && (err = store_write_wait(r.ticket, 0))) {
		/* Not known to be stored: not acknowledged, so not kept (a
		 * write past its deadline may still land; the next start
		 * then publishes it, which the caller asked for anyway). */
		if (svcn_owner_run(sn, pub_forget_own, (void *)name, SVCN_OWNER_RUN_MS))
			log_warn("svc", "%s: not stored, and still served until restart", name);
		return err;
	}
	log_info("svc", "published %s (%s%s)", name, backend && *backend ? "backend" : "built-in",
		 po && po->n_allow ? ", private" : "");
	pub_announce(sn, name, po ? po->n_allow : 0, po ? po->allow : NULL);
	return 0;
}

int svc_node_publish(struct svc_node *sn, const char *name, const char *backend,
		     const struct svc_node_pub_opts *po)
{
	return pub_publish(sn, name, backend, po, 1);
}

/* One stored record (svcn_pub_store_each): published again. */
static void restore_one(struct svc_node *sn, const char *name, const char *backend,
			const struct svc_node_pub_opts *po, void *arg)
{
	unsigned int *restored = arg;
	int err = pub_publish(sn, name, backend, po, 0);

	if (err)
		log_warn("svc", "stored publication %s not restored: %s", name, strerror(-err));
	else
		(*restored)++;
}

int svcn_pub_restore(struct svc_node *sn)
{
	int err;

	if (!sn->store)
		return 0;
	sn->pub_restored = 0;
	err = svcn_pub_store_each(sn, restore_one, &sn->pub_restored);
	if (sn->pub_restored)
		log_info("svc", "restored %u publication(s) from the store", sn->pub_restored);
	return err;
}

static void unpublish_own(struct svc_node *sn, void *arg)
{
	struct pub_req *r = arg;
	struct svcn_pub *p = svcn_pub_find(sn, r->name, strlen(r->name));

	if (!p) {
		r->err = -ENOENT;
		return;
	}
	r->err = svcn_pub_store_queue(sn, r->name, NULL, &r->ticket);
	if (!r->err)
		pub_drop_own(sn, p);
}

int svc_node_unpublish(struct svc_node *sn, const char *name)
{
	struct pub_req r = {.name = name};
	int err = svcn_owner_run(sn, unpublish_own, &r, SVCN_OWNER_RUN_MS);

	if (err || r.err)
		return err ? err : r.err;
	return r.ticket ? store_write_wait(r.ticket, 0) : 0;
}

#ifdef WEFT_TEST_HOOKS /* the diagnostic route of test builds only */
struct raw_req {
	const char *name;
	uint8_t *copy; /* taken by the owner (NULL then) */
	size_t len;
	int err;
};

static void publish_raw_own(struct svc_node *sn, void *arg)
{
	struct raw_req *r = arg;
	struct svcn_pub *p = svcn_pub_find(sn, r->name, strlen(r->name));

	if (!p && (p = svcn_pub_slot(sn))) {
		memset(p, 0, sizeof(*p));
		snprintf(p->name, sizeof(p->name), "%s", r->name);
		p->used = 1;
	}
	if (!p) {
		r->err = -ENOSPC;
		return;
	}
	free(p->desc);
	p->desc = r->copy;
	r->copy = NULL;
	p->desc_len = r->len;
	p->raw = 1;
	p->announced = -1;
	p->refreshed_ms = util_now_ms();
}

int svcn_publish_raw(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len)
{
	struct raw_req r = {.name = name, .len = len};
	int err;

	if (!svc_name_valid((const uint8_t *)name, strlen(name)) || len > 2 * SVC_DESC_MAX_LEN)
		return -EINVAL;
	r.copy = malloc(len ? len : 1);
	if (!r.copy)
		return -ENOMEM;
	memcpy(r.copy, buf, len);
	err = svcn_owner_run(sn, publish_raw_own, &r, SVCN_OWNER_RUN_MS);
	free(r.copy);
	if (err || r.err)
		return err ? err : r.err;
	log_warn("svc", "serving a raw (diagnostic) descriptor for %s", name);
	pub_announce(sn, name, 0, NULL);
	return 0;
}

int svcn_bad_descriptor(struct svc_node *sn, const char *name, const char *mode, uint8_t **out,
			size_t *len)
{
	char eps[SVC_DESC_MAX_ENDPOINTS][SVC_DESC_ENDPOINT_MAX + 1];
	struct svc_desc d = { 0 };
	struct identity other;
	uint8_t seed[IDENTITY_SEED_LEN];
	const struct identity *signer = &sn->id;
	uint8_t *buf;
	uint64_t now = util_wall_s();
	int err, n;

	buf = calloc(1, 3 * SVC_DESC_MAX_LEN);
	if (!buf)
		return -ENOMEM;
	n = svcn_endpoints(sn, eps);
	d.name = name;
	d.name_len = strlen(name);
	d.version = 1;
	d.n_endpoints = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		d.endpoints[i] = eps[i];
		d.endpoint_lens[i] = strlen(eps[i]);
	}
	d.created = now;
	d.expires = now + SVC_NODE_DESC_LIFETIME_S;
	if (!strcmp(mode, "forged")) {
		/* Signed correctly, but by a key that is not the TLS peer's. */
		randombytes_buf(seed, sizeof(seed));
		identity_from_seed(&other, seed);
		signer = &other;
	} else if (!strcmp(mode, "expired")) {
		d.created = now - 7200;
		d.expires = now - 3600;
	} else if (!strcmp(mode, "future")) {
		d.created = now + 3600;
		d.expires = now + 7200;
	} else if (strcmp(mode, "tampered") && strcmp(mode, "oversized")) {
		free(buf);
		return -EINVAL;
	}
	err = svc_desc_sign(&d, signer, buf, SVC_DESC_MAX_LEN, len);
	if (signer == &other)
		identity_wipe(&other);
	if (err) {
		free(buf);
		return err;
	}
	if (!strcmp(mode, "tampered"))
		buf[*len / 2] ^= 0x01; /* in the body: the signature no longer holds */
	if (!strcmp(mode, "oversized")) {
		memset(buf + *len, ' ', SVC_DESC_MAX_LEN + 16 - *len);
		*len = SVC_DESC_MAX_LEN + 16;
	}
	*out = buf;
	return 0;
}
#endif /* WEFT_TEST_HOOKS */

/* Refresh thread: re-sign and re-announce every SVC_NODE_REFRESH_S (and
 * whatever is within a refresh period of expiring). */
struct refresh_req {
	char names[SVC_NODE_MAX_PUBLISHED][SVC_NAME_MAX + 1];
	uint32_t n_allow[SVC_NODE_MAX_PUBLISHED];
	uint8_t allow[SVC_NODE_MAX_PUBLISHED][SVC_NODE_PUB_ALLOW][IDENTITY_PK_LEN];
	size_t nn;
};

/* On the owner: re-sign what is due, expire the directory cache. */
static void refresh_own(struct svc_node *sn, void *arg)
{
	struct refresh_req *r = arg;
	uint64_t now = util_now_ms();
	uint16_t last = atomic_load(&sn->announced_port);
	/* The announced port changed (the votes found our NAT's mapping, or
	 * it moved): every publication is announced again now. */
	int moved = last && last != announce_port(sn);
	int64_t off = (int64_t)util_wall_s() - (int64_t)(now / 1000);

	if (sn->wall_off_set && (off - sn->wall_off > SVCN_CLOCK_STEP_S ||
				 sn->wall_off - off > SVCN_CLOCK_STEP_S)) {
		log_warn("svc", "the wall clock was stepped by %+lld s: every publication is signed again",
			 (long long)(off - sn->wall_off));
		moved = 1;
	}
	sn->wall_off = off;
	sn->wall_off_set = 1;
	r->nn = 0;
	for (size_t i = 0; i < sn->npubs; i++) {
		struct svcn_pub *p = &sn->pubs[i];

		/* Due, or the last announce reached no DHT node: retry
		 * every SVC_NODE_RETRY_S. */
		if (!p->used || (!moved && now - p->refreshed_ms < SVC_NODE_REFRESH_S * 1000ull &&
				 (p->announced != 0 ||
				  now - p->refreshed_ms < SVC_NODE_RETRY_S * 1000ull)))
			continue;
		if (!p->raw && pub_sign(sn, p))
			continue;
		p->refreshed_ms = now;
		r->n_allow[r->nn] = p->n_allow;
		memcpy(r->allow[r->nn], p->allow, sizeof(p->allow));
		snprintf(r->names[r->nn++], sizeof(r->names[0]), "%s", p->name);
	}
	svc_dir_expire(sn->dir, now);
	svcn_rep_flush(sn);
}

void *svcn_refresh_main(void *arg)
{
	struct svc_node *sn = arg;
	struct refresh_req *r = malloc(sizeof(*r));
	struct timespec ts;

	if (!r) {
		log_warn("svc", "out of memory: publications are not refreshed");
		return NULL;
	}
	while (!atomic_load(&sn->stopping)) {
		/* A turn on the owner that times out is tried 2 s later. */
		if (!svcn_owner_run(sn, refresh_own, r, SVCN_OWNER_RUN_MS))
			for (size_t i = 0; i < r->nn; i++)
				pub_announce(sn, r->names[i], r->n_allow[i],
					     (const uint8_t (*)[IDENTITY_PK_LEN])r->allow[i]);
		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&sn->refresh_mu);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += 2;
		if (!atomic_load(&sn->stopping))
			pthread_cond_timedwait(&sn->refresh_cv, &sn->refresh_mu, &ts);
		pthread_mutex_unlock(&sn->refresh_mu);
	}
	free(r);
	return NULL;
}

/* ------------------------------------------------------------ discovery */

static int owner_banned(void *ctx, const uint8_t owner[IDENTITY_PK_LEN])
{
	struct svc_node *sn = ctx;

	return svc_router_peer_banned(sn->router, owner, NULL, svcn_now_ns());
}

static int reject_index(int err)
{
	switch (err) {
	case SVC_DESC_E_OVERSIZED: return 1;
	case SVC_DESC_E_SIGNATURE: return 2;
	case SVC_DESC_E_OWNER: return 3;
	case SVC_DESC_E_EXPIRED: return 4;
	case SVC_DESC_E_FUTURE: return 5;
	case SVC_DESC_E_BANNED: return 6;
	default: return 0;
	}
}

/* The provider's lasting reputation (svc_reputation.c): the cache keeps
 * its results in that order; lookups order them again as it changes. */
static int32_t reputation(struct svc_node *sn, const uint8_t *key)
{
	return svcn_rep_info(sn, key, NULL);
}

/* Verify one fetched descriptor and cache it (on the owner). */
void svcn_accept_desc(struct svc_node *sn, const char *name, const uint8_t *buf, size_t len,
			const uint8_t *peer_key, uint32_t rtt_us)
{
	struct svc_desc d;
	int err;

	err = svc_desc_verify(buf, len, peer_key, util_wall_s(), SVC_DESC_DEFAULT_SKEW,
			      owner_banned, sn, &d);
	if (!err && (d.name_len != strlen(name) || memcmp(d.name, name, d.name_len)))
		err = SVC_DESC_E_MALFORMED; /* a descriptor for something else */
	if (err) {
		char kp[17];

		sn->st.rejected[reject_index(err)]++;
		util_hex(kp, peer_key, 8);
		log_info("svc", "descriptor for %s from %s... rejected: %s", name, kp,
			 svcn_reject_name((unsigned int)reject_index(err)));
		return;
	}
	sn->st.accepted++;
	{
		uint8_t id[SVC_ID_LEN];
		unsigned int i;

		svc_id(id, d.owner, d.name, d.name_len);
		for (i = 0; i < SVCN_IDS && memcmp(sn->ids[i].id, id, SVC_ID_LEN); i++)
			;
		if (i == SVCN_IDS) {
			i = sn->ids_next++ % SVCN_IDS;
			memcpy(sn->ids[i].id, id, SVC_ID_LEN);
			memcpy(sn->ids[i].name, d.name, d.name_len);
			sn->ids[i].name[d.name_len] = 0;
		}
	}
	svc_dir_add(sn->dir, &d, reputation(sn, peer_key), rtt_us, util_now_ms());
}

