// SPDX-License-Identifier: MIT
/*
 * The DHT on the engine. Worker 0 owns the core: it runs dht_input() for
 * the datagrams it receives, dht_periodic() on its timer, and every
 * operation other threads start (dhtnode_run, the control API through
 * dht_svc's run hook). Other workers receive DHT datagrams too (SO_REUSEPORT
 * and RSS spread them): they copy each one to worker 0 through its command
 * queue (bounded; a full queue drops the datagram and counts it). No lock
 * is taken per datagram. Before the workers start and after they stop,
 * the caller's thread is the only one running and calls the core directly
 * under cold_mu.
 */
#include <errno.h>
#include <pthread.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "weft/ctl.h"
#include "weft/dht.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/log.h"
#include "weft/store.h"
#include "weft/util.h"
#include "weft/dhtnode.h"

/* How long a source that blew its DHT query budget with queries that
 * prove its address (valid tokens: see dht_opts.on_abuse) stays banned.
 * Ten minutes: long enough to stop a flood, short enough that a NATed
 * neighbour of an abuser is not locked out for long. Overruns by queries
 * that prove nothing are only dropped: a forged source must never be able
 * to get a real peer banned. */
#define DHTNODE_ABUSE_BAN_S 600
/* Upper bound on the periodic timer: the core asks for less when it needs. */
#define DHTNODE_MAX_SLEEP_MS 1000
/* Bootstrap addresses kept to ping again while the routing table is empty
 * (the first pings lost, the bootstrap not up yet, a network outage): after
 * 1 s, then twice as long each time up to a minute, until a node answers. */
#define DHTNODE_MAX_BOOT 16
#define DHTNODE_BOOT_RETRY_MS 1000
#define DHTNODE_BOOT_RETRY_MAX_MS 60000

static const char *const public_routers[] = {
	"router.bittorrent.com:6881",
	"dht.transmissionbt.com:6881",
	"router.utorrent.com:6881",
};

/*
 * Datagrams another worker received, on their way to worker 0: gathered
 * during one receive pass and posted as one command at its end (engine_defer),
 * so a flood costs the owner's command ring one slot per pass, not one per
 * datagram. A batch holds at most DHTNODE_FWD_MAX datagrams; a full one is
 * posted at once. When worker 0's ring is full the batch is dropped and
 * counted (fwd_dropped): the owner is saturated and the policers in front
 * already shaped what reaches it.
 */
#define DHTNODE_FWD_MAX 64

struct dht_fwd_dgram {
	struct sockaddr_storage ss;
	socklen_t sl;
	struct io_addr local; /* the address it was sent to: replies leave from it */
	uint16_t len;
	uint8_t data[1500]; /* KRPC datagrams are far smaller (BEP 44 puts ~1.1 KB) */
};

struct dhtnode;
struct dht_fwd {
	struct dhtnode *nd;
	unsigned int n;
	struct dht_fwd_dgram d[DHTNODE_FWD_MAX];
};

struct dht_fwd_stage {
	struct dhtnode *nd;
	struct dht_fwd *b;
	struct engine_timer flush; /* deferred to the end of the pass */
};

static int dhtnode_run_sync(struct dhtnode *nd, void (*fn)(struct dht *, void *, uint64_t),
			     void *arg);
static int svc_run(void *arg, dht_svc_fn fn, void *fnarg);

struct dhtnode {
	struct engine *eng;
	struct engine_worker *w0; /* where the timer is armed (worker 0), once started */
	struct guard *guard;
	struct store *store;
	unsigned int db;
	struct dht *dht;
	struct dht_svc *svc;
	struct engine_timer timer; /* worker 0 */
	uint16_t port;
	struct dhtnode_opts o;
	char boot_str[DHTNODE_MAX_BOOTSTRAP][128]; /* copies of o.bootstrap[] */
	_Atomic unsigned long long send_dropped; /* control-thread sends refused by a full queue */
	_Atomic unsigned long long evidence;     /* address proofs handed to the guard */
	_Atomic unsigned long long fwd;          /* datagrams forwarded to worker 0 */
	_Atomic unsigned long long fwd_dropped;  /* ... refused by a full command queue */
	pthread_mutex_t cold_mu; /* the core while no worker runs */
	struct dht_fwd_stage stage[ENGINE_MAX_WORKERS]; /* [i]: owned by worker i */
	dhtnode_reflexive_fn refl_fn; /* set before start: KRPC `ip` fields */
	void *refl_arg;
	/* worker 0's: the bootstrap addresses and when to ping them again */
	struct sockaddr_storage boot[DHTNODE_MAX_BOOT];
	socklen_t boot_len[DHTNODE_MAX_BOOT];
	unsigned int nboot;
	uint64_t boot_next_ms, boot_wait_ms;
	_Atomic unsigned long long boot_retries; /* bootstrap pings repeated */
	/* set before start: is this node behind a NAT? (dht.read_only_behind_nat) */
	dhtnode_nat_fn nat_fn;
	void *nat_arg;
	/* dhtnode_cancel ran: dhtnode_run starts nothing more. A module's
	 * thread still running after it (a community's sync, before its
	 * module is freed) would otherwise start a lookup whose callback
	 * runs, cancelled, from dhtnode_free: after that module is gone. */
	int closed; /* atomic */
};

/* The worker whose DHT handler is running on this thread, if any. */
static __thread struct engine_worker *dht_cur_worker;
/* The local address the datagram being handled was sent to, if known: what
 * the DHT sends meanwhile (its reply above all) leaves from that address, so
 * a host with several addresses answers from the one it was asked on (the
 * asker, behind a NAT or a filter, drops an answer from another). */
static __thread const struct io_addr *dht_cur_local;
/* The engine worker this thread is (set on every worker at start). */
static __thread struct engine_worker *tls_worker;
static __thread const struct engine *tls_engine;

/* The DHT's clock: the engine's (monotonic, or a simulated network's). */
static uint64_t nd_now(const struct dhtnode *nd)
{
	return engine_now_ns(nd->eng) / 1000000;
}

/* Is this thread worker 0 of nd's engine (the DHT's owner)? */
static int on_owner(const struct dhtnode *nd)
{
	return tls_engine == nd->eng && tls_worker && engine_worker_index(tls_worker) == 0;
}

static int on_other_worker(const struct dhtnode *nd)
{
	return tls_engine == nd->eng && tls_worker && engine_worker_index(tls_worker) != 0;
}

/* A datagram sent from outside worker 0, posted to it. It carries the
 * port, not the dhtnode: a command posted after the workers stopped runs
 * in engine_free, after dhtnode_free (a content thread's DHT operation
 * racing the shutdown did that under ASan). */
struct dht_tx {
	uint16_t port;
	struct io_addr dst;
	size_t len;
	uint8_t data[];
};

static void tx_cmd(struct engine_worker *w, void *arg)
{
	struct dht_tx *tx = arg;
	struct io_addr src = { .port = tx->port };

	engine_send(w, &tx->dst, &src, tx->data, tx->len);
	free(tx);
}

static int dht_send_cb(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		       socklen_t tolen)
{
	struct dhtnode *nd = arg;
	struct io_addr dst, src = { .port = nd->port };
	struct dht_tx *tx;
	int err;

	if (io_addr_from_sockaddr(&dst, to, tolen))
		return -EAFNOSUPPORT;
	if (dht_cur_worker) {
		if (dht_cur_local && dht_cur_local->family == dst.family) {
			src = *dht_cur_local;
			src.port = nd->port;
		}
		return engine_send(dht_cur_worker, &dst, &src, buf, len);
	}
	tx = malloc(sizeof(*tx) + len);
	if (!tx)
		return -ENOMEM;
	tx->port = nd->port;
	tx->dst = dst;
	tx->len = len;
	memcpy(tx->data, buf, len);
	err = engine_call(nd->eng, 0, tx_cmd, tx);
	if (err) {
		free(tx);
		nd->send_dropped++;
	}
	return err;
}

static void input_on_owner(struct dhtnode *nd, struct engine_worker *w, const uint8_t *data,
			   size_t len, const struct sockaddr *sa, socklen_t sl,
			   const struct io_addr *local)
{
	dht_cur_worker = w;
	dht_cur_local = local && local->family ? local : NULL;
	/* the pass's time (engine clock, read once per receive batch): token
	 * ages, budgets and timeouts are kept in ms, a batch lasts less */
	dht_input(nd->dht, data, len, sa, sl, engine_worker_now(w));
	dht_cur_local = NULL;
	dht_cur_worker = NULL;
}

static void fwd_cmd(struct engine_worker *w, void *arg)
{
	struct dht_fwd *b = arg;

	for (unsigned int i = 0; i < b->n; i++)
		input_on_owner(b->nd, w, b->d[i].data, b->d[i].len, (struct sockaddr *)&b->d[i].ss,
			       b->d[i].sl, &b->d[i].local);
	free(b);
}

static void fwd_post(struct dht_fwd_stage *st)
{
	struct dht_fwd *b = st->b;
	unsigned int n;

	st->b = NULL;
	if (!b)
		return;
	n = b->n; /* b belongs to worker 0 once posted */
	if (engine_call(st->nd->eng, 0, fwd_cmd, b)) {
		st->nd->fwd_dropped += n;
		free(b);
		return;
	}
	st->nd->fwd += n;
}

static void fwd_flush(struct engine_worker *w, void *arg)
{
	fwd_post(arg);
}

static void dht_rx(struct engine_worker *w, const struct engine_pkt *pkt, void *arg)
{
	struct dhtnode *nd = arg;
	struct sockaddr_storage ss;
	int sl = io_addr_to_sockaddr(&pkt->src, pkt->src.family, &ss);
	struct dht_fwd_stage *st;
	struct dht_fwd_dgram *d;
	unsigned int idx = engine_worker_index(w);

	if (sl < 0)
		return;
	if (idx == 0) {
		input_on_owner(nd, w, pkt->data, pkt->len, (struct sockaddr *)&ss, (socklen_t)sl,
			       &pkt->dst);
		return;
	}
	/* Another worker: hand the datagram to the owner. */
	if (pkt->len > sizeof(d->data) || idx >= ENGINE_MAX_WORKERS) {
		nd->fwd_dropped++;
		return;
	}
	st = &nd->stage[idx];
	if (!st->b) {
		st->b = malloc(sizeof(*st->b));
		if (!st->b) {
			nd->fwd_dropped++;
			return;
		}
		st->b->nd = nd;
		st->b->n = 0;
		engine_defer(w, &st->flush);
	}
	d = &st->b->d[st->b->n++];
	d->ss = ss;
	d->sl = (socklen_t)sl;
	d->local = pkt->dst;
	d->len = (uint16_t)pkt->len;
	memcpy(d->data, pkt->data, pkt->len);
	if (st->b->n == DHTNODE_FWD_MAX) {
		engine_timer_cancel(w, &st->flush);
		fwd_post(st);
	}
}

static void dht_tick(struct engine_worker *w, void *arg)
{
	struct dhtnode *nd = arg;
	uint64_t now = nd_now(nd), next = now + DHTNODE_MAX_SLEEP_MS;

	dht_cur_worker = w;
	/* Behind a NAT the others cannot query us (a filtering NAT drops what
	 * we did not ask for): say so with BEP 43's ro=1, so that they keep us
	 * out of their routing tables instead of handing out an address nobody
	 * can reach. Checked on every tick; the classification can change. */
	if (nd->nat_fn && !nd->o.read_only && nd->o.read_only_behind_nat) {
		int ro = nd->nat_fn(nd->nat_arg) > 0;

		if (ro != dht_read_only(nd->dht)) {
			dht_set_read_only(nd->dht, ro);
			log_info("dht", "%s", ro ? "behind a NAT: read-only from now on (BEP 43 ro=1)"
						  : "no NAT any more: answering queries again");
		}
	}
	dht_periodic(nd->dht, now, &next);
	if (nd->nboot && !dht_node_count(nd->dht)) {
		if (now >= nd->boot_next_ms) {
			for (unsigned int i = 0; i < nd->nboot; i++)
				dht_add_node(nd->dht, (struct sockaddr *)&nd->boot[i], nd->boot_len[i],
					     now);
			nd->boot_retries++;
			nd->boot_wait_ms = nd->boot_wait_ms ? nd->boot_wait_ms * 2
							    : DHTNODE_BOOT_RETRY_MS;
			if (nd->boot_wait_ms > DHTNODE_BOOT_RETRY_MAX_MS)
				nd->boot_wait_ms = DHTNODE_BOOT_RETRY_MAX_MS;
			nd->boot_next_ms = now + nd->boot_wait_ms;
		}
		if (next > nd->boot_next_ms)
			next = nd->boot_next_ms;
	} else if (nd->nboot) {
		nd->boot_wait_ms = 0; /* the next time the table empties: 1 s again */
		nd->boot_next_ms = now + DHTNODE_BOOT_RETRY_MS;
	}
	dht_cur_worker = NULL;
	if (next < now)
		next = now;
	if (next > now + DHTNODE_MAX_SLEEP_MS)
		next = now + DHTNODE_MAX_SLEEP_MS;
	engine_timer_add(w, &nd->timer, next - now);
}

static void dht_abuse(void *arg, const struct sockaddr *sa, socklen_t len)
{
	struct dhtnode *nd = arg;
	struct io_addr a;
	char buf[64];

	if (io_addr_from_sockaddr(&a, sa, len))
		return;
	util_fmt_addr((const struct sockaddr_storage *)sa, buf, sizeof(buf));
	log_addr(buf, buf, sizeof(buf));
	log_warn("dht", "source %s exceeded its query budget with token-proven queries: banned for %d s",
		 buf, DHTNODE_ABUSE_BAN_S);
	guard_ban_addr(nd->guard, a.family, a.addr, DHTNODE_ABUSE_BAN_S);
}

/* The core saw a source prove its address: tell the guard, which gives it
 * priority in the kernel (validated sources skip the global budget). */
static void dht_evidence(void *arg, const struct sockaddr *sa, socklen_t len, int kind)
{
	struct dhtnode *nd = arg;
	struct io_addr a;

	if (!nd->guard || io_addr_from_sockaddr(&a, sa, len))
		return;
	nd->evidence++;
	guard_validated_add(nd->guard, a.family, a.addr,
			    kind == DHT_EV_TOKEN ? GUARD_EV_TOKEN : GUARD_EV_REPLY);
}

static void dht_load(struct dhtnode *nd)
{
	uint8_t *blob;
	size_t len;
	int n;

	if (store_get(nd->store, nd->db, "nodes", 5, (void **)&blob, &len) == 0) {
		n = dht_import_nodes(nd->dht, blob, len, nd_now(nd));
		free(blob);
		if (n < 0)
			log_warn("dht", "stored routing table unreadable: ignored");
		else
			log_info("dht", "restored %d nodes", n);
	}
	if (store_get(nd->store, nd->db, "storage", 7, (void **)&blob, &len) == 0) {
		n = dht_import_storage(nd->dht, blob, len, nd_now(nd), util_wall_s());
		free(blob);
		if (n < 0)
			log_warn("dht", "stored items unreadable: ignored");
		else
			log_info("dht", "restored %d stored peers and items", n);
	}
}

struct nd_export {
	uint8_t *nodes, *items;
	size_t nl, il;
	int err;
};

static void export_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct nd_export *ex = arg;

	ex->err = dht_export_nodes(dht, &ex->nodes, &ex->nl);
	if (!ex->err)
		ex->err = dht_export_storage(dht, now, util_wall_s(), &ex->items, &ex->il);
}

/* durable: wait until it is on disk (at stop), else hand it to the
 * store's writer and return (the periodic snapshot). */
static int save(struct dhtnode *nd, int durable)
{
	uint8_t *nodes = NULL, *items = NULL;
	size_t nl = 0, il = 0;
	int err;

	struct nd_export ex = {0};

	err = dhtnode_run_sync(nd, export_fn, &ex);
	if (!err)
		err = ex.err;
	nodes = ex.nodes;
	items = ex.items;
	nl = ex.nl;
	il = ex.il;
	if (err)
		goto out;
	/* Both in one write (atomic: a crash keeps the previous pair), handed
	 * to the store's writer: the caller never waits on the disk. */
	struct store_op ops[2] = {
		{ .dbi = nd->db, .key = "nodes", .klen = 5, .val = nodes ? nodes : (void *)"",
		  .vlen = nl },
		{ .dbi = nd->db, .key = "storage", .klen = 7, .val = items ? items : (void *)"",
		  .vlen = il },
	};

	err = durable ? store_write_sync(nd->store, ops, 2, 0) : store_write_async(nd->store, ops, 2);
out:
	if (err)
		log_warn("dht", "cannot save the DHT state: %s", strerror(-err));
	free(nodes);
	free(items);
	return err;
}

int dhtnode_save(struct dhtnode *nd)
{
	return save(nd, 0);
}

struct boot_add {
	struct dhtnode *nd;
	const struct addrinfo *res;
};

static void add_nodes_fn(struct dht *dht, void *arg, uint64_t now)
{
	struct boot_add *b = arg;
	struct dhtnode *nd = b->nd;

	for (const struct addrinfo *ai = b->res; ai; ai = ai->ai_next) {
		dht_add_node(dht, ai->ai_addr, ai->ai_addrlen, now);
		if (nd->nboot < DHTNODE_MAX_BOOT && ai->ai_addrlen <= sizeof(nd->boot[0])) {
			memcpy(&nd->boot[nd->nboot], ai->ai_addr, ai->ai_addrlen);
			nd->boot_len[nd->nboot++] = ai->ai_addrlen;
		}
	}
	nd->boot_next_ms = now + DHTNODE_BOOT_RETRY_MS;
}

static void add_bootstrap(struct dhtnode *nd, const char *hostport)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
	char host[128], *colon;
	const char *port;
	int rc;

	if (hostport[0] == '[') {
		const char *rb = strchr(hostport, ']');

		if (!rb || rb[1] != ':' || (size_t)(rb - hostport - 1) >= sizeof(host))
			return;
		memcpy(host, hostport + 1, (size_t)(rb - hostport - 1));
		host[rb - hostport - 1] = '\0';
		port = rb + 2;
	} else {
		snprintf(host, sizeof(host), "%s", hostport);
		colon = strrchr(host, ':');
		if (!colon)
			return;
		*colon = '\0';
		port = colon + 1;
	}
	rc = getaddrinfo(host, port, &hints, &res);
	if (rc) {
		log_warn("dht", "bootstrap %s: %s", hostport, gai_strerror(rc));
		return;
	}
	{
		struct boot_add b = { nd, res };

		dhtnode_run_sync(nd, add_nodes_fn, &b);
	}
	freeaddrinfo(res);
	log_info("dht", "bootstrapping through %s", hostport);
}

static void stats_fn(struct dht *dht, void *arg, uint64_t now)
{
	dht_get_stats(dht, arg);
}

static void dht_metrics(void *arg, FILE *out)
{
	struct dhtnode *nd = arg;
	struct dht_stats st;

	if (dhtnode_run_sync(nd, stats_fn, &st))
		return;
	fprintf(out,
		"# HELP weft_dht_nodes Nodes in the routing table.\n# TYPE weft_dht_nodes gauge\n"
		"weft_dht_nodes{family=\"ipv4\"} %u\nweft_dht_nodes{family=\"ipv6\"} %u\n"
		"# HELP weft_dht_stored Items the DHT stores for others, by kind.\n# TYPE weft_dht_stored gauge\nweft_dht_stored{kind=\"infohashes\"} %u\n"
		"weft_dht_stored{kind=\"peers\"} %u\nweft_dht_stored{kind=\"items\"} %u\n"
		"# HELP weft_dht_store_bytes Bytes the DHT's stores of peers and items hold (their entries as allocated).\n# TYPE weft_dht_store_bytes gauge\nweft_dht_store_bytes %llu\n"
		"# HELP weft_dht_lookups DHT lookups in progress.\n# TYPE weft_dht_lookups gauge\nweft_dht_lookups %u\n"
		"# HELP weft_dht_read_only 1 while the node is a BEP 43 read-only node.\n# TYPE weft_dht_read_only gauge\nweft_dht_read_only %u\n"
		"# HELP weft_dht_read_only_switches_total Times read-only mode was turned on or off.\n# TYPE weft_dht_read_only_switches_total counter\nweft_dht_read_only_switches_total %llu\n"
		"# HELP weft_dht_ro_forgotten_total Routing-table entries held back from answers (until they answer our ping) because a query with ro=1 (BEP 43, read-only) came from their id and address.\n# TYPE weft_dht_ro_forgotten_total counter\nweft_dht_ro_forgotten_total %llu\n",
		st.nodes4, st.nodes6, st.infohashes, st.peers, st.items,
		(unsigned long long)st.store_bytes, st.lookups, st.read_only,
		(unsigned long long)st.read_only_switches, (unsigned long long)st.ro_forgotten);
	fprintf(out, "# HELP weft_dht_queries_total KRPC queries, by direction and method.\n"
		     "# TYPE weft_dht_queries_total counter\n");
	for (int q = 0; q < DHT_Q_COUNT; q++)
		fprintf(out,
			"weft_dht_queries_total{dir=\"in\",q=\"%s\"} %llu\n"
			"weft_dht_queries_total{dir=\"out\",q=\"%s\"} %llu\n",
			dht_stat_q_names[q], (unsigned long long)st.queries_in[q], dht_stat_q_names[q],
			(unsigned long long)st.queries_out[q]);
	fprintf(out,
		"# HELP weft_dht_dropped_total DHT datagrams dropped, by cause.\n"
		"# TYPE weft_dht_dropped_total counter\n"
		"weft_dht_dropped_total{cause=\"malformed\"} %llu\n"
		"weft_dht_dropped_total{cause=\"budget\"} %llu\n"
		"weft_dht_dropped_total{cause=\"send_queue_full\"} %llu\n"
		"# HELP weft_dht_budget_unproven_total Budget overruns by queries that prove nothing about their source.\n"
		"# TYPE weft_dht_budget_unproven_total counter\nweft_dht_budget_unproven_total %llu\n"
		"# HELP weft_dht_abuse_reports_total Sources reported to the guard as abusive.\n"
		"# TYPE weft_dht_abuse_reports_total counter\nweft_dht_abuse_reports_total %llu\n"
		"# HELP weft_dht_evidence_total Address proofs handed to the guard.\n"
		"# TYPE weft_dht_evidence_total counter\nweft_dht_evidence_total %llu\n"
		"# HELP weft_dht_forwarded_total DHT datagrams forwarded to the owning worker.\n"
		"# TYPE weft_dht_forwarded_total counter\nweft_dht_forwarded_total %llu\n"
		"# HELP weft_dht_forward_dropped_total DHT datagrams not forwarded: the owner's queue was full.\n"
		"# TYPE weft_dht_forward_dropped_total counter\nweft_dht_forward_dropped_total %llu\n"
		"# HELP weft_dht_timeouts_total Queries unanswered after the retry.\n"
		"# TYPE weft_dht_timeouts_total counter\nweft_dht_timeouts_total %llu\n"
		"# HELP weft_dht_retries_total Queries resent after a first timeout.\n"
		"# TYPE weft_dht_retries_total counter\nweft_dht_retries_total %llu\n"
		"# HELP weft_dht_bootstrap_retries_total Rounds of bootstrap pings repeated while the routing table was empty.\n"
		"# TYPE weft_dht_bootstrap_retries_total counter\nweft_dht_bootstrap_retries_total %llu\n",
		(unsigned long long)st.dropped_malformed, (unsigned long long)st.dropped_budget,
		(unsigned long long)nd->send_dropped, (unsigned long long)st.budget_unproven,
		(unsigned long long)st.abuse_reports, (unsigned long long)nd->evidence,
		(unsigned long long)nd->fwd, (unsigned long long)nd->fwd_dropped,
		(unsigned long long)st.timeouts,
		(unsigned long long)st.retries, (unsigned long long)nd->boot_retries);
}

static void dht_reflexive(void *arg, const struct sockaddr *from, socklen_t fromlen,
			  const uint8_t *ip, size_t ip_len)
{
	struct dhtnode *nd = arg;

	if (nd->refl_fn)
		nd->refl_fn(nd->refl_arg, from, fromlen, ip, ip_len);
}

void dhtnode_set_reflexive(struct dhtnode *nd, dhtnode_reflexive_fn fn, void *arg)
{
	nd->refl_fn = fn;
	nd->refl_arg = arg;
}

int dhtnode_new(struct dhtnode **out, struct engine *eng, struct ctl *ctl, struct guard *g,
		struct store *st, const struct dhtnode_opts *opts, const struct identity *id)
{
	struct dht_opts o = { 0 };
	struct dht_svc_opts so = { 0 };
	struct dhtnode *nd;
	int err;

	*out = NULL;
	if (opts->nbootstrap > DHTNODE_MAX_BOOTSTRAP)
		return -EINVAL;
	for (unsigned int i = 0; i < opts->nbootstrap; i++)
		if (!opts->bootstrap[i] || strlen(opts->bootstrap[i]) >= sizeof(nd->boot_str[0]))
			return -EINVAL;
	nd = calloc(1, sizeof(*nd));
	if (!nd)
		return -ENOMEM;
	nd->o = *opts;
	for (unsigned int i = 0; i < opts->nbootstrap; i++) {
		strcpy(nd->boot_str[i], opts->bootstrap[i]);
		nd->o.bootstrap[i] = nd->boot_str[i];
	}
	nd->eng = eng;
	nd->guard = g;
	nd->store = st;
	nd->port = opts->port;
	pthread_mutex_init(&nd->cold_mu, NULL);
	for (unsigned int i = 0; i < ENGINE_MAX_WORKERS; i++) {
		nd->stage[i].nd = nd;
		engine_timer_init(&nd->stage[i].flush, fwd_flush, &nd->stage[i]);
	}
	err = store_db(st, "dht", &nd->db);
	if (err)
		goto fail;
	o.pk = id->pk;
	o.sk = id->sk;
	o.send = dht_send_cb;
	o.send_arg = nd;
	o.on_abuse = dht_abuse;
	o.abuse_arg = nd;
	o.on_evidence = dht_evidence;
	o.evidence_arg = nd;
	o.on_reflexive = dht_reflexive;
	o.reflexive_arg = nd;
	if (opts->read_only)
		o.flags |= DHT_F_READ_ONLY;
	/* A socket bound to "::" serves both families: ask for and keep both. */
	if (opts->dual_stack)
		o.flags |= DHT_F_DUAL_STACK;
	if (opts->enforce_bep42)
		o.flags |= DHT_F_ENFORCE_BEP42 | DHT_F_DERIVE_ID;
	err = dht_new(&nd->dht, &o);
	if (err)
		goto fail;
	so.run = svc_run;
	so.run_arg = nd;
	err = dht_svc_new(&nd->svc, nd->dht, &so);
	if (err)
		goto fail;
	dht_load(nd);
	engine_timer_init(&nd->timer, dht_tick, nd);
	err = engine_register(eng, nd->port, dht_rx, nd);
	if (!err)
		err = dht_svc_register(nd->svc, ctl);
	if (!err)
		err = ctl_metrics(ctl, dht_metrics, nd);
	if (err)
		goto fail;
	*out = nd;
	return 0;
fail:
	log_error("dht", "cannot start the DHT: %s", strerror(-err));
	dht_svc_free(nd->svc);
	dht_free(nd->dht);
	free(nd);
	return err;
}

static void dht_start_cmd(struct engine_worker *w, void *arg)
{
	struct dhtnode *nd = arg;

	nd->w0 = w;
	engine_timer_add(w, &nd->timer, 0);
}

/* Every worker learns which worker it is, for dhtnode_run. */
static void tls_cmd(struct engine_worker *w, void *arg)
{
	struct dhtnode *nd = arg;

	tls_worker = w;
	tls_engine = nd->eng;
}

int dhtnode_start(struct dhtnode *nd)
{
	int err;

	for (unsigned int i = 0; i < engine_workers(nd->eng); i++) {
		err = engine_call_sync(nd->eng, i, tls_cmd, nd, 5000);
		if (err)
			return err;
	}
	err = engine_call_sync(nd->eng, 0, dht_start_cmd, nd, 5000);
	if (err)
		return err;
	for (unsigned int i = 0; i < nd->o.nbootstrap; i++)
		add_bootstrap(nd, nd->o.bootstrap[i]);
	if (nd->o.public_routers)
		for (size_t i = 0; i < WEFT_ARRAY_SIZE(public_routers); i++)
			add_bootstrap(nd, public_routers[i]);
	return 0;
}

/* How long a thread outside the engine waits for worker 0 to run its
 * function: the owner runs commands between receive batches, so this is
 * only reached when it is stuck or gone. */
#define DHTNODE_RUN_WAIT_MS 5000

struct nd_run {
	struct dhtnode *nd;
	dhtnode_fn fn;
	void *arg;
};

static void run_here(struct dhtnode *nd, struct engine_worker *w, dhtnode_fn fn, void *arg)
{
	struct engine_worker *prev = dht_cur_worker;

	dht_cur_worker = w;
	fn(nd->dht, arg, nd_now(nd));
	dht_cur_worker = prev;
	/* Whatever fn started wants the core's timers soon. */
	if (w)
		engine_timer_add(w, &nd->timer, 0);
}

static void run_cmd(struct engine_worker *w, void *arg)
{
	struct nd_run *r = arg;

	run_here(r->nd, w, r->fn, r->arg);
}

static void run_cmd_async(struct engine_worker *w, void *arg)
{
	run_cmd(w, arg);
	free(arg);
}

static int run_sync(struct dhtnode *nd, dhtnode_fn fn, void *arg, int gated)
{
	struct nd_run r = {nd, fn, arg};
	int err;

	if (gated && __atomic_load_n(&nd->closed, __ATOMIC_ACQUIRE))
		return -ESHUTDOWN;
	if (on_owner(nd)) {
		run_here(nd, tls_worker, fn, arg);
		return 0;
	}
	err = engine_call_sync(nd->eng, 0, run_cmd, &r, DHTNODE_RUN_WAIT_MS);
	if (err != -ESHUTDOWN)
		return err;
	/* No worker runs (before engine_start, after engine_stop). A gated
	 * call checks under the cold lock: it runs before dhtnode_cancel
	 * (its lookup cancelled there) or not at all. */
	pthread_mutex_lock(&nd->cold_mu);
	if (gated && __atomic_load_n(&nd->closed, __ATOMIC_ACQUIRE)) {
		err = -ESHUTDOWN;
	} else {
		fn(nd->dht, arg, nd_now(nd));
		err = 0;
	}
	pthread_mutex_unlock(&nd->cold_mu);
	return err;
}

/* The node's own calls (save, stats): they start no lookup. */
static int dhtnode_run_sync(struct dhtnode *nd, dhtnode_fn fn, void *arg)
{
	return run_sync(nd, fn, arg, 0);
}

int dhtnode_run(struct dhtnode *nd, dhtnode_fn fn, void *arg)
{
	struct nd_run *r;
	int err;

	if (!nd || !fn)
		return -EINVAL;
	if (!on_other_worker(nd))
		return run_sync(nd, fn, arg, 1);
	if (__atomic_load_n(&nd->closed, __ATOMIC_ACQUIRE))
		return -ESHUTDOWN;
	/* Another worker must not block on worker 0: post and return. */
	r = malloc(sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->nd = nd;
	r->fn = fn;
	r->arg = arg;
	err = engine_call(nd->eng, 0, run_cmd_async, r);
	if (err)
		free(r);
	return err;
}

static int svc_run(void *arg, dht_svc_fn fn, void *fnarg)
{
	return run_sync(arg, fn, fnarg, 1);
}

void dhtnode_set_nat_probe(struct dhtnode *nd, dhtnode_nat_fn fn, void *arg)
{
	nd->nat_fn = fn;
	nd->nat_arg = arg;
}

uint16_t dhtnode_port(const struct dhtnode *nd)
{
	return nd->port;
}

static void cancel_fn(struct dht *dht, void *arg, uint64_t now_ms)
{
	(void)arg;
	(void)now_ms;
	dht_cancel_all(dht);
}

void dhtnode_cancel(struct dhtnode *nd)
{
	if (!nd)
		return;
	__atomic_store_n(&nd->closed, 1, __ATOMIC_RELEASE);
	/* On worker 0 while it runs; else here under the cold lock, where a
	 * dhtnode_run already past its first check runs its fn before this
	 * (its lookup cancelled here) or not at all (run_sync). A call on
	 * worker 0 that does not start in time (DHTNODE_RUN_WAIT_MS) leaves
	 * the lookups to end by their own deadlines, or here again after
	 * engine_stop. */
	if (run_sync(nd, cancel_fn, NULL, 0))
		log_warn("dht", "lookups not cancelled: worker 0 did not answer in time");
}

void dhtnode_free(struct dhtnode *nd)
{
	if (!nd)
		return;
	save(nd, 1); /* the last snapshot: on disk before the store closes */
	/* Workers are stopped (engine_stop): the wheel is ours. A timer left
	 * in it would be a freed neighbour of the next one unlinked. */
	if (nd->w0)
		engine_timer_cancel(nd->w0, &nd->timer);
	for (unsigned int i = 0; i < ENGINE_MAX_WORKERS; i++)
		free(nd->stage[i].b); /* workers stopped mid-pass */
	dht_svc_free(nd->svc);
	dht_free(nd->dht);
	pthread_mutex_destroy(&nd->cold_mu);
	free(nd);
}
