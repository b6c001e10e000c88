// SPDX-License-Identifier: MIT
/*
 * The sync threads of communities on the network (docs/COMMUNITY.md
 * "Finding each other"): each community announced under its DHT key, the
 * other holders looked up there, their pages pulled over stream type 0x60
 * (on join, at start, every NET_SYNC_MS, sooner after a failure). A pull
 * waits on its connection's callbacks with deadlines, never on a worker.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "weft/conn.h"
#include "weft/dht.h"
#include "weft/dhtnode.h"
#include "weft/identity.h"
#include "weft/io.h"
#include "weft/log.h"
#include "weft/quic_node.h"
#include "weft/util.h"

#include "comm_net_int.h"

/* ------------------------------------------------------ pulls (sync threads) */

/* One connection of a pull; two references: the pulling sync thread's and the
 * connection's (dropped in closed()). */
struct pcall {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int refs, connected, conn_err, closed, opened, open_err, done, stream_err;
	uint8_t key[COMM_PK_LEN];
	int64_t sid;
	size_t len;
	uint8_t buf[ANS_MAX];
};

static void pc_put(struct pcall *pc)
{
	int last;

	pthread_mutex_lock(&pc->mu);
	last = --pc->refs == 0;
	pthread_mutex_unlock(&pc->mu);
	if (!last)
		return;
	pthread_mutex_destroy(&pc->mu);
	pthread_cond_destroy(&pc->cv);
	free(pc);
}

#define PC_SET(pc, stmt)                                                                     \
	do {                                                                                 \
		pthread_mutex_lock(&(pc)->mu);                                               \
		stmt;                                                                        \
		pthread_cond_broadcast(&(pc)->cv);                                           \
		pthread_mutex_unlock(&(pc)->mu);                                             \
	} while (0)

static void pc_connected(void *arg, uint64_t conn, int err, const uint8_t *key)
{
	struct pcall *pc = arg;

	(void)conn;
	PC_SET(pc, {
		pc->connected = 1;
		pc->conn_err = err;
		if (!err && key)
			memcpy(pc->key, key, COMM_PK_LEN);
	});
}

static void pc_opened(void *arg, uint64_t conn, uint64_t token, int64_t sid, int err)
{
	struct pcall *pc = arg;

	(void)conn;
	(void)token;
	PC_SET(pc, {
		pc->opened = 1;
		pc->open_err = err;
		pc->sid = sid;
	});
}

static void pc_data(void *arg, uint64_t conn, int64_t sid, const uint8_t *d, size_t len, int fin)
{
	struct pcall *pc = arg;

	(void)conn;
	PC_SET(pc, {
		if (sid == pc->sid && !pc->done) {
			if (len > sizeof(pc->buf) - pc->len) {
				pc->done = 1;
				pc->stream_err = -EMSGSIZE;
			} else {
				memcpy(pc->buf + pc->len, d, len);
				pc->len += len;
				pc->done = fin;
			}
		}
	});
}

static void pc_sclosed(void *arg, uint64_t conn, int64_t sid, int err)
{
	struct pcall *pc = arg;

	(void)conn;
	PC_SET(pc, {
		if (sid == pc->sid && !pc->done) {
			pc->done = 1;
			pc->stream_err = err ? err : -ECONNRESET;
		}
	});
}

static void pc_closed(void *arg, uint64_t conn, const struct quic_close_info *info)
{
	struct pcall *pc = arg;

	(void)conn;
	(void)info;
	PC_SET(pc, {
		pc->closed = 1;
		if (!pc->connected) {
			pc->connected = 1;
			pc->conn_err = -ECONNRESET;
		}
		if (!pc->opened) {
			pc->opened = 1;
			pc->open_err = -ENOTCONN;
		}
		if (!pc->done) {
			pc->done = 1;
			pc->stream_err = -ENOTCONN;
		}
	});
	pc_put(pc);
}

static const struct quic_node_handler pc_handler = {
	.connected = pc_connected,
	.stream_opened = pc_opened,
	.stream_data = pc_data,
	.stream_closed = pc_sclosed,
	.closed = pc_closed,
};

/* Wait until *flag (under pc->mu), the deadline or the net stopping. */
static int pc_wait(struct comm_net *net, struct pcall *pc, const int *flag)
{
	uint64_t end = util_now_ms() + NET_WAIT_MS;
	int ok;

	pthread_mutex_lock(&pc->mu);
	while (!*flag && util_now_ms() < end && !__atomic_load_n(&net->stop, __ATOMIC_RELAXED)) {
		struct timespec ts;

		util_deadline_ts(&ts, 100);
		pthread_cond_timedwait(&pc->cv, &pc->mu, &ts);
	}
	ok = *flag;
	pthread_mutex_unlock(&pc->mu);
	return ok ? 0 : -ETIMEDOUT;
}

/* One page on a new stream of the pull's connection: its answer in
 * pc->buf (status, page). */
static int pull_page(struct comm_net *net, struct pcall *pc, uint64_t conn,
		     const uint8_t *dk, uint8_t type, uint32_t page)
{
	uint8_t req[SYNC_REQ_LEN];
	int err;

	PC_SET(pc, {
		pc->opened = 0;
		pc->done = 0;
		pc->len = 0;
		pc->sid = -1;
		pc->stream_err = 0;
	});
	if (quic_node_stream_open(net->o.quic, conn, COMM_ST_SYNC, 0) != 0)
		return -EAGAIN;
	if (pc_wait(net, pc, &pc->opened) || pc->open_err)
		return pc->open_err ? pc->open_err : -ETIMEDOUT;
	req[0] = 1;
	memcpy(req + 1, dk, COMM_DHT_KEY_LEN);
	req[1 + COMM_DHT_KEY_LEN] = type;
	wr32(req + 2 + COMM_DHT_KEY_LEN, page);
	err = quic_node_write(net->o.quic, conn, pc->sid, req, sizeof(req), 1);
	if (err)
		return err;
	if (pc_wait(net, pc, &pc->done))
		return -ETIMEDOUT;
	if (pc->stream_err)
		return pc->stream_err;
	if (pc->len < 1)
		return -EBADMSG;
	return pc->buf[0] == ST_OK ? 0 : pc->buf[0] == ST_UNKNOWN ? -ENOENT : -EBADMSG;
}

/* A new pull connection: to ss, or to target when not NULL; connected
 * (*pcp and *conn set, the holder's key in (*pcp)->key) or an error. */
static int dial(struct comm_net *net, const struct sockaddr_storage *ss, socklen_t sslen,
		const char *target, const uint8_t *expect, struct pcall **pcp, uint64_t *conn)
{
	struct pcall *pc = calloc(1, sizeof(*pc));
	int err;

	if (!pc)
		return -ENOMEM;
	pthread_mutex_init(&pc->mu, NULL);
	/* monotonic: a wall clock stepped back must not stretch a wait */
	if (util_cond_init_mono(&pc->cv) != 0) {
		pthread_mutex_destroy(&pc->mu);
		free(pc);
		return -ENOMEM;
	}
	pc->refs = 2;
	pc->sid = -1;
	err = target ? quic_node_connect(net->o.quic, target, &pc_handler, pc, conn)
		     : quic_node_connect_addr(net->o.quic, (const struct sockaddr *)ss, sslen,
					      expect, &pc_handler, pc, conn);
	if (err) {
		pc->refs = 1;
		pc_put(pc);
		return err;
	}
	err = pc_wait(net, pc, &pc->connected);
	if (!err)
		err = pc->conn_err;
	if (err) {
		quic_node_close(net->o.quic, *conn, 0);
		pc_put(pc);
		return err;
	}
	*pcp = pc;
	return 0;
}

/* The holder whose key is expect, by key: each target its resolution
 * gives, in turn. */
static int dial_key(struct comm_net *net, const uint8_t *expect, struct pcall **pcp,
		    uint64_t *conn)
{
	char t[QUIC_NODE_RESOLVE_MAX][QUIC_NODE_TARGET_MAX];
	int n = comm_net_key_targets(net, expect, 0, t, QUIC_NODE_RESOLVE_MAX), err = n;

	for (int i = 0; i < n && !__atomic_load_n(&net->stop, __ATOMIC_RELAXED); i++) {
		err = dial(net, NULL, 0, t[i], NULL, pcp, conn);
		if (!err)
			break;
	}
	return err;
}

/* Pull every page of the community from the holder at ss (or, when
 * try_key, by its key expect when *via_key says so or ss does not
 * answer: *via_key then says how it was reached): members, then shares. *key gets the
 * holder's key (the handshake's), *pages the pages read, *added the
 * records they added or replaced. */
static int pull(struct comm_net *net, const uint8_t *id, const uint8_t *dk,
		const struct sockaddr_storage *ss, socklen_t sslen, const uint8_t *expect,
		int try_key, int *via_key, uint8_t *key, size_t *pages_read, size_t *added)
{
	struct pcall *pc = NULL;
	uint64_t conn = 0;
	int err = -EHOSTUNREACH;

	*pages_read = 0;
	*added = 0;
	if (!*via_key || !try_key)
		err = dial(net, ss, sslen, NULL, expect, &pc, &conn);
	*via_key = 0;
	if (err && err != -ENOMEM && try_key && quic_node_can_resolve(net->o.quic) &&
	    !__atomic_load_n(&net->stop, __ATOMIC_RELAXED)) {
		err = dial_key(net, expect, &pc, &conn);
		*via_key = !err;
		log_debug("community", "pull by key (its address did not answer): %s",
			  err ? strerror(-err) : "connected");
	}
	if (err)
		return err;
	memcpy(key, pc->key, COMM_PK_LEN);
	if (!memcmp(key, net->o.me->pk, COMM_PK_LEN))
		err = -ELOOP; /* ourselves, announced under the same key */
	for (uint8_t type = COMM_REC_MEMBER; !err && type <= COMM_REC_SHARE; type++) {
		uint32_t page = 0, pages = 1, total;

		while (!err && page < pages && page < NET_PAGES_MAX) {
			err = pull_page(net, pc, conn, dk, type, page);
			if (err)
				break;
			err = net->o.ops.ingest(net->o.ops.arg, id, pc->buf + 1, pc->len - 1, &total);
			if (err < 0)
				break;
			*added += (size_t)err;
			err = 0;
			pages = (total + COMM_PAGE_RECS - 1) / COMM_PAGE_RECS;
			*pages_read += 1;
			page++;
		}
	}
	quic_node_close(net->o.quic, conn, 0);
	pc_put(pc);
	return err;
}

/* ------------------------------------------------------------ the DHT */

struct djob {
	struct comm_net *net;
	int find; /* a lookup of holders, else our announce */
	uint8_t id[COMM_ID_LEN], dk[COMM_DHT_KEY_LEN];
};

/* On worker 0: holders found are remembered; either is retried soon
 * when it reached nobody. */
static void dht_done(void *arg, const struct dht_result *res)
{
	struct djob *j = arg;
	struct comm_net *net = j->net;
	struct ncomm *c;

	pthread_mutex_lock(&net->mu);
	c = comm_net_by_id(net, j->id);
	if (c && res->status != -ECANCELED && !j->find) {
		c->next_announce_ms =
			util_now_ms() + (res->stored ? NET_ANNOUNCE_MS : NET_RETRY_MS);
		if (res->stored)
			net->st.announced++;
	} else if (c && res->status != -ECANCELED) {
		size_t before = c->np, holders = 0;

		for (size_t i = 0; i < res->npeers; i++)
			comm_net_note_peer(net, c, &res->peers[i], comm_net_sslen(&res->peers[i]),
					   NULL);
		net->st.found += c->np - before;
		/* Only holders reached count: a holder found behind a NAT
		 * may be an address nobody answers at (our own among them), and
		 * while we reached none the next lookup comes soon. */
		for (size_t i = 0; i < c->np; i++)
			holders += c->p[i].have_key && !c->p[i].self;
		c->next_find_ms = util_now_ms() + (holders ? NET_FIND_MS : NET_RETRY_MS);
	}
	pthread_mutex_unlock(&net->mu);
	free(j);
}

static void announce_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct djob *j = arg;

	/* Behind a NAT that maps the QUIC socket alike for everyone, the
	 * announce's source address is the NAT's: its port must be too. */
	uint16_t port = j->net->o.conn ? conn_node_quic_mapped_port(j->net->o.conn, AF_INET) : 0;

	if (dht_announce(dht, j->dk, port ? port : j->net->o.quic_port, 0, now, dht_done, j) != 0)
		free(j);
}

static void find_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct djob *j = arg;

	if (dht_get_peers(dht, j->dk, now, dht_done, j) != 0)
		free(j);
}

static void dht_job(struct comm_net *net, const struct ncomm *c, dhtnode_fn fn)
{
	struct djob *j = malloc(sizeof(*j));

	if (!j)
		return;
	j->net = net;
	j->find = fn == find_fn;
	memcpy(j->id, c->id, COMM_ID_LEN);
	memcpy(j->dk, c->k.dht_key, COMM_DHT_KEY_LEN);
	/* From this thread dhtnode_run waits for fn to have run; on an
	 * error it did not run. */
	if (dhtnode_run(net->o.dht, fn, j) != 0)
		free(j);
}

/* ------------------------------------------------------ the sync threads */

struct due {
	uint8_t id[COMM_ID_LEN], dk[COMM_DHT_KEY_LEN], expect[COMM_PK_LEN];
	struct sockaddr_storage ss;
	socklen_t sslen;
	int have_key, try_key, by_key;
};

/* One pull's debug line: the community (its id's first bytes) and the
 * holder pulled, by the key it proved (else the one we expected, else
 * none) and its address as log.addresses allows (a keyed tag by default). */
static void holder_log(const struct due *d, const uint8_t key[COMM_PK_LEN], int err,
		       size_t pages, size_t added)
{
	static const uint8_t zero[COMM_PK_LEN];
	const uint8_t *k = memcmp(key, zero, COMM_PK_LEN) ? key : d->have_key ? d->expect : NULL;
	char kh[17] = "no key", as[72] = "no address";
	struct io_addr a;

	if (k)
		util_hex(kh, k, 8);
	if (d->sslen && !io_addr_from_sockaddr(&a, (const struct sockaddr *)&d->ss, d->sslen))
		log_addr(io_addr_fmt(&a, as, sizeof(as)), as, sizeof(as));
	log_debug("community",
		  "pull %02x%02x%02x%02x... from %s... at %s: %s, %zu pages, %zu records added",
		  d->id[0], d->id[1], d->id[2], d->id[3], kh, as,
		  err == -ELOOP	  ? "ourselves (our own announce)"
		  : err == -EPERM ? "not a member (no member record of its key)"
		  : err		  ? strerror(-err)
				  : "ok",
		  pages, added);
}

/* The DHT jobs that are due, then one due pull (NET_SYNC_THREADS run
 * this): 1 when it pulled (the caller takes the next at once), 0 when
 * none was due. */
static int sync_tick(struct comm_net *net)
{
	struct due due[1];
	size_t nd = 0;
	uint64_t now = util_now_ms();
	struct peer *best = NULL;
	struct ncomm *bestc = NULL;

	pthread_mutex_lock(&net->mu);
	for (size_t i = 0; i < net->n; i++) {
		struct ncomm *c = net->c[i];
		struct ncomm copy;

		if (net->o.dht && now >= c->next_announce_ms) {
			c->next_announce_ms = now + NET_RETRY_MS; /* until it answers */
			net->st.announces++;
			copy = *c;
			pthread_mutex_unlock(&net->mu);
			dht_job(net, &copy, announce_fn);
			pthread_mutex_lock(&net->mu);
			if (i >= net->n || net->c[i] != c)
				break;
		}
		if (net->o.dht && now >= c->next_find_ms) {
			c->next_find_ms = now + NET_RETRY_MS;
			net->st.finds++;
			copy = *c;
			pthread_mutex_unlock(&net->mu);
			dht_job(net, &copy, find_fn);
			pthread_mutex_lock(&net->mu);
			if (i >= net->n || net->c[i] != c)
				break;
		}
	}
	/* the due holder that failed least, the longest due among equals:
	 * one that answers is not held back by dead ones (no unlock from
	 * here to its copy: best stays valid) */
	now = util_now_ms(); /* the DHT jobs above may have waited */
	for (size_t i = 0; i < net->n; i++) {
		struct ncomm *c = net->c[i];

		for (size_t k = 0; k < c->np; k++) {
			struct peer *p = &c->p[k];

			if (p->self || now < p->next_sync_ms)
				continue;
			if (!best || p->fails < best->fails ||
			    (p->fails == best->fails && p->next_sync_ms < best->next_sync_ms)) {
				best = p;
				bestc = c;
			}
		}
	}
	if (best) {
		struct peer *p = best;

		p->next_sync_ms = now + NET_SYNC_MS; /* set for real after the pull */
		memcpy(due[nd].id, bestc->id, COMM_ID_LEN);
		memcpy(due[nd].dk, bestc->k.dht_key, COMM_DHT_KEY_LEN);
		memcpy(due[nd].expect, p->key, COMM_PK_LEN);
		due[nd].have_key = p->have_key;
		/* by key only while it keeps failing few times: an offline
		 * member is not resolved at every pull */
		due[nd].try_key = p->have_key && p->fails < NET_KEY_FAILS;
		due[nd].by_key = p->by_key;
		due[nd].ss = p->ss;
		due[nd].sslen = p->sslen;
		nd++;
	}
	pthread_mutex_unlock(&net->mu);
	for (size_t i = 0; i < nd && !__atomic_load_n(&net->stop, __ATOMIC_RELAXED); i++) {
		uint8_t key[COMM_PK_LEN] = {0};
		size_t pages, added;
		int err = pull(net, due[i].id, due[i].dk, &due[i].ss, due[i].sslen,
			       due[i].have_key ? due[i].expect : NULL, due[i].try_key, &due[i].by_key,
			       key, &pages, &added);
		struct ncomm *c;
		int intro = 0;

		/* Every member's index holds its own member record: a holder
		 * whose record we still lack after its pages is no member (one
		 * that learned the DHT key from the DHT, or nobody's node). */
		if (!err && net->o.ops.member(net->o.ops.arg, due[i].id, key) != 1)
			err = -EPERM;
		holder_log(&due[i], key, err, pages, added);
		pthread_mutex_lock(&net->mu);
		net->st.pulls++;
		if (err)
			net->st.pull_fail++;
		else
			net->st.pulled += pages;
		c = comm_net_by_id(net, due[i].id);
		for (size_t k = 0; c && k < c->np; k++) {
			struct peer *p = &c->p[k];
			uint32_t sh;

			if (!comm_net_same_addr(&p->ss, &due[i].ss))
				continue;
			if (err == -ELOOP) {
				p->self = 1;
			} else if (err == -EPERM) {
				p->fails = 3; /* its slot goes to the next holder heard of */
				p->have_key = 0; /* never gossiped to */
				p->next_sync_ms = util_now_ms() + NET_SYNC_MS;
				net->st.not_member++;
			} else if (err) {
				p->fails++;
				p->by_key = 0; /* the address first again, then the key */
				sh = p->fails < 6 ? p->fails : 6;
				p->next_sync_ms = util_now_ms() + (1000u << sh);
			} else {
				p->fails = 0;
				p->by_key = (uint8_t)due[i].by_key;
				/* A pull that taught us something: the community
				 * is changing, pull again soon. */
				p->next_sync_ms = util_now_ms() + (added ? NET_BUSY_SYNC_MS : NET_SYNC_MS);
				memcpy(p->key, key, COMM_PK_LEN);
				p->have_key = 1;
				intro = !c->introduced;
				c->introduced = 1;
				for (size_t o = 0; o < c->np; o++)
					if (o != k && c->p[o].have_key &&
					    !memcmp(c->p[o].key, key, COMM_PK_LEN)) {
						/* the same holder at another address
						 * (another family): one entry */
						c->p[k] = c->p[--c->np];
						break;
					}
			}
			break;
		}
		pthread_mutex_unlock(&net->mu);
		/* Our join (or restart) reaches the members by gossip, not
		 * only when each of them pulls from us. */
		if (intro)
			net->o.ops.introduce(net->o.ops.arg, due[i].id);
	}
	return nd > 0;
}

void *comm_net_sync_main(void *arg)
{
	struct comm_net *net = arg;

	pthread_mutex_lock(&net->mu);
	while (!net->stop) {
		struct timespec ts;

		pthread_mutex_unlock(&net->mu);
		while (sync_tick(net) && !__atomic_load_n(&net->stop, __ATOMIC_RELAXED))
			; /* a pull ran: the next due one at once */
		util_heap_release_due(util_now_ms());
		pthread_mutex_lock(&net->mu);
		util_deadline_ts(&ts, net->n ? NET_TICK_MS : NET_IDLE_MS);
		if (!net->stop)
			pthread_cond_timedwait(&net->cv, &net->mu, &ts);
	}
	pthread_mutex_unlock(&net->mu);
	return NULL;
}
