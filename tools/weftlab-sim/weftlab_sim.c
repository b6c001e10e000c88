// SPDX-License-Identifier: MIT
/*
 * weftlab-sim: weft's DHT core (the code weftd runs) for N nodes in one
 * process, on a discrete-event simulated network in virtual time; one
 * scenario, JSON on stdout. Run by `weftlab sim` (docs/LAB.md).
 *
 *   weftlab-sim --nodes N [--scenario bootstrap|lookups|churn] [--lookups L]
 *               [--loss PPM] [--lat-min MS] [--lat-max MS] [--jitter MS]
 *               [--churn-fraction F] [--churn-period S] [--duration S]
 *               [--warmup S] [--seed S] [--announcers A]
 *
 * Why not simnet (docs/SIM.md): simnet carries complete nodes (engine,
 * QUIC, control handlers) that run their workers as threads, at most 64
 * hosts per network; ten thousand nodes need the DHT core alone, driven
 * from one thread. The network model is stated in the JSON:
 *   - each node has an access delay drawn once, uniform in
 *     [lat_min/2, lat_max/2] ms; a datagram from A to B takes
 *     access(A) + access(B) + uniform(0, jitter) ms, so one-way delays are
 *     in [lat_min, lat_max + jitter] and each pair keeps its own base;
 *   - every datagram is lost independently with probability loss_ppm/1e6;
 *   - a node that left drops everything sent to it.
 * Churn replaces nodes: the leaving node is freed (its lookups end with
 * -ECANCELED and are not counted) and a fresh node (new id, new address)
 * joins through a random live node.
 *
 * Bounded: nodes <= 200000, addresses <= nodes + replacements (<= 4 x
 * nodes), datagrams in flight <= 8 M (past it a datagram is counted as
 * dropped), lookups <= 100000.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "weft/dht.h"

#define MAX_NODES 200000
#define MAX_INFLIGHT (8u << 20)
#define MAX_LOOKUPS 100000
#define ADDR_BASE 0xC6120001u /* 198.18.0.1: benchmarking range, never sent anywhere */
#define PORT 6881

enum ev_kind { EV_PKT, EV_TIMER, EV_LOOKUP, EV_CHURN };

struct ev {
	uint64_t at, seq;
	uint32_t kind, node, src, gen;
	uint16_t len;
	uint8_t *data;
};

struct node {
	struct dht *dht;
	uint32_t addr;	/* index into the address table */
	uint32_t access; /* one-way access delay, us */
	uint32_t gen;	 /* timer generation (stale timer events are skipped) */
	uint32_t contact; /* bootstrap contact (address index), pinged again while the table is empty */
	uint64_t boot_next, boot_wait;
	uint64_t next;	 /* scheduled periodic */
	int live;
	uint64_t joined;
};

struct lookup {
	int kind; /* 0 find_node, 1 get_peers */
	uint32_t origin, target_node, ann;
	uint8_t target[DHT_ID_LEN];
	uint64_t start, end;
	int status, ok, done, counted;
	unsigned int hops, hops_closest, queried, visited;
};

static struct {
	struct node *n;
	uint32_t nn, cap;
	int32_t *by_addr; /* address index -> node slot, -1 when gone */
	uint32_t naddr, addr_cap;
	struct ev *heap;
	size_t nheap, heap_cap;
	uint64_t seq, now;
	uint64_t rng;
	uint32_t loss_ppm, lat_min_us, lat_max_us, jitter_us;
	uint64_t sent, lost, dropped, delivered, to_dead;
	struct lookup *lk;
	uint32_t nlk;
	uint32_t cur_node; /* the node whose dht is running (for send) */
	uint64_t replaced, boot_retries;
} S;

static uint64_t rnd(void)
{
	/* xorshift64* */
	S.rng ^= S.rng >> 12;
	S.rng ^= S.rng << 25;
	S.rng ^= S.rng >> 27;
	return S.rng * 2685821657736338717ULL;
}

static uint64_t rnd_below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

static void heap_push(const struct ev *e)
{
	if (S.nheap == S.heap_cap) {
		size_t nc = S.heap_cap ? S.heap_cap * 2 : 65536;
		struct ev *nh = realloc(S.heap, nc * sizeof(*nh));

		if (!nh) {
			fprintf(stderr, "weftlab-sim: out of memory\n");
			exit(1);
		}
		S.heap = nh;
		S.heap_cap = nc;
	}
	size_t i = S.nheap++;

	S.heap[i] = *e;
	S.heap[i].seq = S.seq++;
	while (i) {
		size_t p = (i - 1) / 2;

		if (S.heap[p].at < S.heap[i].at ||
		    (S.heap[p].at == S.heap[i].at && S.heap[p].seq < S.heap[i].seq))
			break;
		struct ev t = S.heap[p];

		S.heap[p] = S.heap[i];
		S.heap[i] = t;
		i = p;
	}
}

static struct ev heap_pop(void)
{
	struct ev top = S.heap[0];
	size_t i = 0;

	S.heap[0] = S.heap[--S.nheap];
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = i;

		if (l < S.nheap && (S.heap[l].at < S.heap[m].at ||
				    (S.heap[l].at == S.heap[m].at && S.heap[l].seq < S.heap[m].seq)))
			m = l;
		if (r < S.nheap && (S.heap[r].at < S.heap[m].at ||
				    (S.heap[r].at == S.heap[m].at && S.heap[r].seq < S.heap[m].seq)))
			m = r;
		if (m == i)
			break;
		struct ev t = S.heap[m];

		S.heap[m] = S.heap[i];
		S.heap[i] = t;
		i = m;
	}
	return top;
}

static void mkaddr(struct sockaddr_in *sa, uint32_t addr_idx)
{
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(PORT);
	sa->sin_addr.s_addr = htonl(ADDR_BASE + addr_idx);
}

static int sim_send(void *arg, const uint8_t *buf, size_t len, const struct sockaddr *to,
		    socklen_t tolen)
{
	uint32_t from = (uint32_t)(uintptr_t)arg;
	const struct sockaddr_in *sa = (const struct sockaddr_in *)to;

	if (to->sa_family != AF_INET || tolen < sizeof(*sa))
		return -EAFNOSUPPORT;
	uint32_t a = ntohl(sa->sin_addr.s_addr) - ADDR_BASE;

	S.sent++;
	if (S.loss_ppm && rnd_below(1000000) < S.loss_ppm) {
		S.lost++;
		return 0;
	}
	if (a >= S.naddr || S.by_addr[a] < 0) {
		S.to_dead++;
		return 0;
	}
	if (S.nheap >= MAX_INFLIGHT) {
		S.dropped++;
		return 0;
	}
	struct ev e = {.kind = EV_PKT, .node = (uint32_t)S.by_addr[a], .src = S.n[from].addr,
		       .len = (uint16_t)len};
	uint64_t d = (uint64_t)S.n[from].access + S.n[e.node].access +
		     rnd_below((uint64_t)S.jitter_us + 1);

	e.at = S.now + (d + 999) / 1000;
	e.data = malloc(len);
	if (!e.data) {
		S.dropped++;
		return 0;
	}
	memcpy(e.data, buf, len);
	heap_push(&e);
	return 0;
}

/* Run node i's periodic work and (re)schedule its timer. */
static void tick(uint32_t i)
{
	struct node *n = &S.n[i];
	uint64_t nx = S.now + 1000;

	if (!n->live)
		return;
	dht_periodic(n->dht, S.now, &nx);
	/* what weftd's dhtnode does: ping the bootstrap contact again while
	 * the table is empty, after 1 s, doubling to once a minute */
	if (n->contact != UINT32_MAX && !dht_node_count(n->dht)) {
		if (S.now >= n->boot_next) {
			struct sockaddr_in sa;

			mkaddr(&sa, n->contact);
			dht_add_node(n->dht, (struct sockaddr *)&sa, sizeof(sa), S.now);
			n->boot_wait = n->boot_wait ? n->boot_wait * 2 : 1000;
			if (n->boot_wait > 60000)
				n->boot_wait = 60000;
			n->boot_next = S.now + n->boot_wait;
			S.boot_retries++;
		}
		if (nx > n->boot_next)
			nx = n->boot_next;
	} else {
		n->boot_wait = 0;
		n->boot_next = S.now + 1000;
	}
	if (nx <= S.now)
		nx = S.now + 1;
	if (nx != n->next) {
		n->next = nx;
		n->gen++;
		struct ev e = {.at = nx, .kind = EV_TIMER, .node = i, .gen = n->gen};

		heap_push(&e);
	}
}

static uint32_t node_add(uint32_t contact_node, int has_contact)
{
	if (S.nn == S.cap || S.naddr == S.addr_cap) {
		fprintf(stderr, "weftlab-sim: node table full\n");
		exit(1);
	}
	uint32_t i = S.nn++;
	struct node *n = &S.n[i];
	uint8_t seed[32];

	for (int k = 0; k < 32; k += 8) {
		uint64_t r = rnd();

		memcpy(seed + k, &r, 8);
	}
	memset(n, 0, sizeof(*n));
	n->addr = S.naddr++;
	S.by_addr[n->addr] = (int32_t)i;
	n->access = (uint32_t)(S.lat_min_us / 2 + rnd_below((S.lat_max_us - S.lat_min_us) / 2 + 1));
	struct dht_opts o = {.send = sim_send, .send_arg = (void *)(uintptr_t)i, .seed = seed,
			     .flags = DHT_F_NO_IPV6,
			     .limits = {.budget_sources = 256, .max_infohashes = 256,
					.max_items = 64, .max_peers = 4096}};

	if (dht_new(&n->dht, &o)) {
		fprintf(stderr, "weftlab-sim: dht_new failed\n");
		exit(1);
	}
	n->live = 1;
	n->joined = S.now;
	n->contact = UINT32_MAX;
	if (has_contact) {
		struct sockaddr_in sa;

		n->contact = S.n[contact_node].addr;
		n->boot_next = S.now + 1000;
		mkaddr(&sa, n->contact);
		dht_add_node(n->dht, (struct sockaddr *)&sa, sizeof(sa), S.now);
	}
	tick(i);
	return i;
}

static void node_remove(uint32_t i)
{
	struct node *n = &S.n[i];

	S.by_addr[n->addr] = -1;
	n->live = 0;
	dht_free(n->dht); /* its lookups end with -ECANCELED */
	n->dht = NULL;
}

static uint32_t random_live(void)
{
	for (;;) {
		uint32_t i = (uint32_t)rnd_below(S.nn);

		if (S.n[i].live)
			return i;
	}
}

static void lookup_done(void *arg, const struct dht_result *res)
{
	struct lookup *l = arg;

	l->done = 1;
	l->end = S.now;
	l->status = res->status;
	l->hops = res->hops;
	l->hops_closest = res->hops_closest;
	l->queried = res->queried;
	l->visited = res->visited;
	l->counted = res->status != -ECANCELED;
	if (l->kind == 0) {
		for (size_t k = 0; k < res->nnodes; k++)
			if (!memcmp(res->nodes[k].id, l->target, DHT_ID_LEN))
				l->ok = 1;
	} else {
		for (size_t k = 0; k < res->npeers; k++) {
			const struct sockaddr_in *sa = (const struct sockaddr_in *)&res->peers[k];

			if (sa->sin_family == AF_INET &&
			    ntohl(sa->sin_addr.s_addr) - ADDR_BASE == l->ann)
				l->ok = 1;
		}
	}
}

static void noop_done(void *arg, const struct dht_result *res)
{
	(void)arg;
	(void)res;
}

/* Run the event loop until virtual time `until` (ms). */
static void run_until(uint64_t until)
{
	while (S.nheap && S.heap[0].at <= until) {
		struct ev e = heap_pop();

		S.now = e.at;
		switch (e.kind) {
		case EV_PKT:
			if (S.n[e.node].live) {
				struct sockaddr_in from;

				mkaddr(&from, e.src);
				dht_input(S.n[e.node].dht, e.data, e.len, (struct sockaddr *)&from,
					  sizeof(from), S.now);
				S.delivered++;
				tick(e.node);
			} else {
				S.to_dead++;
			}
			free(e.data);
			break;
		case EV_TIMER:
			if (S.n[e.node].live && e.gen == S.n[e.node].gen) {
				S.n[e.node].next = 0;
				tick(e.node);
			}
			break;
		default:
			break;
		}
	}
	if (S.now < until)
		S.now = until;
}

static unsigned int table_size(uint32_t i)
{
	struct dht_stats st;

	dht_get_stats(S.n[i].dht, &st);
	return st.nodes4;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void print_summary(const char *kind, int k)
{
	uint64_t *lat = calloc(S.nlk + 1, sizeof(*lat));
	uint32_t cnt = 0, ok = 0, nl = 0;
	double hops = 0, hclose = 0;
	unsigned int hmax = 0;

	for (uint32_t j = 0; j < S.nlk; j++) {
		struct lookup *l = &S.lk[j];

		if (l->kind != k || !l->done || !l->counted)
			continue;
		cnt++;
		if (l->ok) {
			ok++;
			lat[nl++] = l->end - l->start;
			hops += l->hops;
			hclose += l->hops_closest;
			if (l->hops > hmax)
				hmax = l->hops;
		}
	}
	qsort(lat, nl, sizeof(*lat), cmp_u64);
	printf("\"%s\": {\"count\": %u, \"ok\": %u, \"success\": %.6f, \"p50_ms\": %llu, "
	       "\"p99_ms\": %llu, \"max_ms\": %llu, \"hops_mean\": %.4f, \"hops_max\": %u, "
	       "\"hops_closest_mean\": %.4f}",
	       kind, cnt, ok, cnt ? (double)ok / cnt : 0.0,
	       (unsigned long long)(nl ? lat[(nl * 50 + 99) / 100 - 1] : 0),
	       (unsigned long long)(nl ? lat[(nl * 99 + 99) / 100 - 1] : 0),
	       (unsigned long long)(nl ? lat[nl - 1] : 0), ok ? hops / ok : 0.0, hmax,
	       ok ? hclose / ok : 0.0);
	free(lat);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: weftlab-sim --nodes N [--scenario bootstrap|lookups|churn] [--lookups L]\n"
		"       [--loss PPM] [--lat-min MS] [--lat-max MS] [--jitter MS] [--warmup S]\n"
		"       [--churn-fraction F] [--churn-period S] [--duration S] [--seed S]\n"
		"       [--announcers A]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	uint32_t nodes = 0, lookups = 1000, announcers = 50;
	const char *scenario = "lookups";
	double churn_fraction = 0.2, churn_period_s = 600, duration_s = 0, warmup_s = 120;
	uint64_t seed = 1;
	uint32_t lat_min_ms = 10, lat_max_ms = 100, jitter_ms = 10;
	static const struct option opts[] = {
		{"nodes", 1, 0, 'n'},	       {"scenario", 1, 0, 's'}, {"lookups", 1, 0, 'l'},
		{"loss", 1, 0, 'p'},	       {"lat-min", 1, 0, 'a'},	{"lat-max", 1, 0, 'b'},
		{"jitter", 1, 0, 'j'},	       {"warmup", 1, 0, 'w'},	{"churn-fraction", 1, 0, 'f'},
		{"churn-period", 1, 0, 'c'}, {"duration", 1, 0, 'd'}, {"seed", 1, 0, 'r'},
		{"announcers", 1, 0, 'A'},   {"help", 0, 0, 'h'},	{0, 0, 0, 0},
	};
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'n': nodes = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 's': scenario = optarg; break;
		case 'l': lookups = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'p': S.loss_ppm = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'a': lat_min_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'b': lat_max_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'j': jitter_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
		case 'w': warmup_s = strtod(optarg, NULL); break;
		case 'f': churn_fraction = strtod(optarg, NULL); break;
		case 'c': churn_period_s = strtod(optarg, NULL); break;
		case 'd': duration_s = strtod(optarg, NULL); break;
		case 'r': seed = strtoull(optarg, NULL, 10); break;
		case 'A': announcers = (uint32_t)strtoul(optarg, NULL, 10); break;
		default: usage();
		}
	}
	int sc = !strcmp(scenario, "bootstrap") ? 0 : !strcmp(scenario, "lookups") ? 1
					       : !strcmp(scenario, "churn")   ? 2
									      : -1;
	if (sc < 0 || nodes < 2 || nodes > MAX_NODES || lookups > MAX_LOOKUPS ||
	    S.loss_ppm > 500000 || lat_max_ms < lat_min_ms || lat_max_ms > 10000 ||
	    jitter_ms > 10000 || churn_fraction < 0 || churn_fraction > 1 || churn_period_s <= 0 ||
	    warmup_s < 0 || warmup_s > 86400 || duration_s < 0 || duration_s > 86400) {
		fprintf(stderr, "weftlab-sim: bad arguments (nodes 2..%d, lookups <= %d, loss <= "
				"500000 ppm, lat-min <= lat-max <= 10000)\n",
			MAX_NODES, MAX_LOOKUPS);
		usage();
	}
	S.rng = seed * 0x9E3779B97F4A7C15ULL + 1;
	S.lat_min_us = lat_min_ms * 1000;
	S.lat_max_us = lat_max_ms * 1000;
	S.jitter_us = jitter_ms * 1000;
	S.cap = nodes * 4;
	S.addr_cap = S.cap;
	S.n = calloc(S.cap, sizeof(*S.n));
	S.by_addr = malloc(S.addr_cap * sizeof(*S.by_addr));
	S.lk = calloc(lookups + announcers + 1, sizeof(*S.lk));
	if (!S.n || !S.by_addr || !S.lk) {
		fprintf(stderr, "weftlab-sim: out of memory\n");
		return 1;
	}
	for (uint32_t k = 0; k < S.addr_cap; k++)
		S.by_addr[k] = -1;
	S.now = 1000000;
	struct timespec c0;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);

	/* Join: node 0 first, then one node every 10 ms of virtual time, each
	 * through a random node already in (the first ones through node 0). */
	uint64_t t_join0 = S.now;

	node_add(0, 0);
	for (uint32_t i = 1; i < nodes; i++) {
		run_until(S.now + 10);
		node_add((uint32_t)rnd_below(S.nn), 1);
	}
	uint64_t t_joined = S.now;
	/* bootstrap: time until every table holds >= min(8, nodes - 1) */
	unsigned int need = nodes - 1 < 8 ? nodes - 1 : 8;
	uint64_t t_healthy = 0;
	uint32_t healthy = 0;

	for (uint64_t t = S.now; t <= t_joined + (uint64_t)(warmup_s * 1000); t += 1000) {
		run_until(t);
		healthy = 0;
		for (uint32_t i = 0; i < S.nn; i++)
			if (S.n[i].live && table_size(i) >= need)
				healthy++;
		if (healthy == nodes && !t_healthy)
			t_healthy = S.now;
		if (t_healthy && sc == 0)
			break;
	}
	if (sc != 0)
		run_until(t_joined + (uint64_t)(warmup_s * 1000));

	/* announcers: each announces one infohash (for get_peers lookups) */
	uint32_t nann = sc == 0 ? 0 : (announcers < nodes ? announcers : nodes);
	uint8_t (*ih)[DHT_ID_LEN] = calloc(nann + 1, DHT_ID_LEN);
	uint32_t *ann_addr = calloc(nann + 1, sizeof(*ann_addr));

	for (uint32_t k = 0; k < nann; k++) {
		uint32_t a = random_live();

		for (int b = 0; b < DHT_ID_LEN; b++)
			ih[k][b] = (uint8_t)rnd();
		ann_addr[k] = S.n[a].addr;
		dht_announce(S.n[a].dht, ih[k], PORT, 0, S.now, noop_done, NULL);
		tick(a);
	}
	if (nann)
		run_until(S.now + 30000);

	/* lookups, spread evenly over the duration (default: 10 ms apart);
	 * churn replaces nodes at churn_fraction x nodes per churn_period */
	uint64_t t_lk0 = S.now;
	uint64_t span = duration_s > 0 ? (uint64_t)(duration_s * 1000) : (uint64_t)lookups * 10;
	uint64_t churn_gap = 0, next_churn = UINT64_MAX;

	if (sc == 2 && churn_fraction > 0) {
		double per_ms = churn_fraction * nodes / (churn_period_s * 1000.0);

		churn_gap = (uint64_t)(1.0 / per_ms);
		if (!churn_gap)
			churn_gap = 1;
		next_churn = S.now + churn_gap;
	}
	uint32_t nlk = sc == 0 ? 0 : lookups;

	for (uint32_t j = 0; j < nlk; j++) {
		uint64_t at = t_lk0 + span * j / (nlk ? nlk : 1);

		while (next_churn <= at) {
			run_until(next_churn);
			uint32_t v = random_live();

			node_remove(v);
			node_add(random_live(), 1);
			S.replaced++;
			next_churn += churn_gap;
		}
		run_until(at);
		struct lookup *l = &S.lk[S.nlk++];

		l->kind = (nann && (j & 1)) ? 1 : 0;
		l->origin = random_live();
		l->start = S.now;
		if (l->kind == 0) {
			do
				l->target_node = random_live();
			while (l->target_node == l->origin && S.nn > 1);
			memcpy(l->target, dht_id(S.n[l->target_node].dht), DHT_ID_LEN);
			dht_find_node(S.n[l->origin].dht, l->target, S.now, lookup_done, l);
		} else {
			uint32_t k = (uint32_t)rnd_below(nann);

			memcpy(l->target, ih[k], DHT_ID_LEN);
			l->ann = ann_addr[k];
			dht_get_peers(S.n[l->origin].dht, l->target, S.now, lookup_done, l);
		}
		tick(l->origin);
	}
	/* let every lookup end (hard cap: 30 s lookup timeout) */
	if (nlk)
		run_until(S.now + 35000);

	struct timespec c1;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	uint64_t tables = 0;
	unsigned int tmin = ~0u;
	uint32_t live = 0;

	for (uint32_t i = 0; i < S.nn; i++) {
		if (!S.n[i].live)
			continue;
		unsigned int t = table_size(i);

		live++;
		tables += t;
		if (t < tmin)
			tmin = t;
	}
	printf("{\"scenario\": \"%s\", \"nodes\": %u, \"seed\": %llu, \"engine\": \"weft DHT core "
	       "(userspace/dht) on a discrete-event network, virtual time\",\n",
	       scenario, nodes, (unsigned long long)seed);
	printf(" \"model\": {\"loss_ppm\": %u, \"lat_min_ms\": %u, \"lat_max_ms\": %u, \"jitter_ms\": "
	       "%u, \"latency\": \"one-way = access(A) + access(B) + U(0, jitter); access uniform in "
	       "[lat_min/2, lat_max/2] per node\"},\n",
	       S.loss_ppm, lat_min_ms, lat_max_ms, jitter_ms);
	char th[32] = "null";

	if (t_healthy)
		snprintf(th, sizeof(th), "%.3f", (t_healthy - t_joined) / 1000.0);
	printf(" \"join_s\": %.3f, \"bootstrap\": {\"healthy_min_nodes\": %u, \"healthy\": %u, "
	       "\"t_all_healthy_s\": %s},\n",
	       (t_joined - t_join0) / 1000.0, need, healthy, th);
	printf(" \"churn\": {\"fraction\": %.4f, \"period_s\": %.1f, \"replaced\": %llu},\n",
	       sc == 2 ? churn_fraction : 0.0, churn_period_s, (unsigned long long)S.replaced);
	printf(" \"lookups_span_s\": %.3f, \"announced\": %u,\n", span / 1000.0, nann);
	printf(" \"summary\": {");
	print_summary("find_node", 0);
	if (nann) {
		printf(", ");
		print_summary("get_peers", 1);
	}
	printf("},\n \"network\": {\"sent\": %llu, \"delivered\": %llu, \"lost\": %llu, "
	       "\"to_gone_node\": %llu, \"dropped_inflight_cap\": %llu, \"bootstrap_retries\": %llu},\n",
	       (unsigned long long)S.sent, (unsigned long long)S.delivered,
	       (unsigned long long)S.lost, (unsigned long long)S.to_dead,
	       (unsigned long long)S.dropped, (unsigned long long)S.boot_retries);
	printf(" \"tables\": {\"live\": %u, \"mean\": %.2f, \"min\": %u},\n", live,
	       live ? (double)tables / live : 0.0, live ? tmin : 0);
	printf(" \"virtual_s\": %.3f, \"cpu_s\": %.3f, \"max_rss_kib\": %ld,\n",
	       (S.now - t_join0) / 1000.0,
	       (c1.tv_sec - c0.tv_sec) + (c1.tv_nsec - c0.tv_nsec) / 1e9, ru.ru_maxrss);
	printf(" \"lookups\": [");
	int first = 1;

	for (uint32_t j = 0; j < S.nlk; j++) {
		struct lookup *l = &S.lk[j];

		if (!l->done || !l->counted)
			continue;
		printf("%s\n  {\"kind\": \"%s\", \"ok\": %s, \"ms\": %llu, \"hops\": %u, "
		       "\"hops_closest\": %u, \"queried\": %u, \"t\": %.3f}",
		       first ? "" : ",", l->kind ? "get_peers" : "find_node",
		       l->ok ? "true" : "false", (unsigned long long)(l->end - l->start), l->hops,
		       l->hops_closest, l->queried, (l->start - t_lk0) / 1000.0);
		first = 0;
	}
	printf("]}\n");
	for (uint32_t i = 0; i < S.nn; i++)
		if (S.n[i].live)
			dht_free(S.n[i].dht);
	while (S.nheap) {
		struct ev e = heap_pop();

		free(e.data);
	}
	free(S.heap);
	free(S.n);
	free(S.by_addr);
	free(S.lk);
	free(ih);
	free(ann_addr);
	return 0;
}
