/* SPDX-License-Identifier: MIT */
/*
 * The state of communities on the network, shared by comm_peer.c (holder
 * tables), comm_sync.c (the sync threads: DHT and pulls) and comm_net.c
 * (stream handlers, serve thread, gossip, lifecycle), in that order of
 * calls. Internal to the community module.
 */
#ifndef WEFT_COMM_NET_INT_H
#define WEFT_COMM_NET_INT_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "weft/comm.h"
#include "weft/comm_node.h"
#include "weft/quic_node.h"
#include "comm_net.h"

#define NET_PEERS 32u	       /* holders remembered per community */
#define NET_INBOX 256u	       /* requests waiting for the serve thread */
#define NET_SLOTS 64u	       /* streams being assembled per worker */
#define NET_TICK_MS 250u
/* With no community joined the sync threads have nothing to look at:
 * they wait this long (a join wakes them at once, comm_net_add). Before,
 * each of the 3 woke every NET_TICK_MS all the same: 12 wake-ups a
 * second per node, 1.8% of a 51-node lab's weftd CPU (stop 63). */
#define NET_IDLE_MS 30000u
#define NET_ANNOUNCE_MS 300000u /* re-announce under the DHT key */
#define NET_RETRY_MS 3000u      /* announce or find that found nobody */
#define NET_FIND_MS 60000u
#define NET_SYNC_MS 120000u /* pull again from a holder (anti-entropy) */
#define NET_BUSY_SYNC_MS 10000u /* ... sooner after a pull that added records */
#define NET_WAIT_MS 5000u   /* each step of a pull */
/* Sync threads: each takes the due pull of the holder that failed least
 * (the longest due among equals), runs it, and takes the next at once; a
 * holder that does not answer (5 s a step, then its key: up to ~13 s)
 * holds back one of them, not the pulls from the others. Before, one
 * thread ran a tick's 4 pulls in turn: a community's live holder waited
 * behind every dead one (test_sim_community_nat: ~40 s). */
#define NET_SYNC_THREADS 3u
#define NET_PAGES_MAX 512u /* pages of one pull (members and shares caps / 16) */
#define NET_FANOUT 4u
#define NET_ENV_TTL_S 600u
#define NET_RESET_CODE 0x601u
#define NET_KEYQ 64u	       /* gossip sends waiting to be dialled by key */
#define NET_KEY_DIAL_MS 8000u  /* resolving a holder's key: record, relay circuit */
#define NET_KEY_FAILS 4u       /* a holder is pulled by key until it failed this often */
#define NET_GOSSIP_ROUNDS 4u   /* a send by key that reached nobody: tried again later */
#define NET_GOSSIP_LATER_MS 5000u /* ... after 5, 10, 20, 40 s */

#define SYNC_REQ_LEN (1u + COMM_DHT_KEY_LEN + 1u + 4u)
#define MSG_MAX (1u + COMM_DHT_KEY_LEN + COMM_ENV_MAX_LEN)
#define ANS_MAX (1u + COMM_PAGE_MAX_LEN)
#define GOSSIP_KIND_RECORD 1u
#define GOSSIP_KIND_MESH 2u

enum { ST_OK = 0, ST_UNKNOWN = 1, ST_NOPAGE = 2, ST_BAD = 3, ST_REFUSED = 4 };

struct peer {
	struct sockaddr_storage ss;
	socklen_t sslen;
	uint8_t key[COMM_PK_LEN];
	uint8_t have_key, self;
	uint8_t by_key; /* its last pull reached it by key, not at ss */
	uint32_t fails;
	uint64_t next_sync_ms;
};

struct ncomm {
	uint8_t id[COMM_ID_LEN], pk[COMM_PK_LEN];
	struct comm_keys k;
	struct comm_gossip *g;
	struct peer p[NET_PEERS];
	size_t np;
	uint64_t next_announce_ms, next_find_ms;
	int introduced; /* our member record re-sent once holders were known */
};

struct item {
	uint64_t conn, stype;
	int64_t sid;
	uint8_t key[COMM_PK_LEN];
	struct sockaddr_storage ss;
	socklen_t sslen;
	size_t len;
	uint8_t data[MSG_MAX];
};

struct slot {
	int used;
	uint64_t conn, stype;
	int64_t sid;
	size_t len;
	uint8_t data[MSG_MAX];
};

/* What the registered stream handlers see: it lives until the QUIC node
 * releases it, so it outlives the net (dead set by comm_net_free). */
struct srv {
	struct quic_node *qn;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int dead, stop;
	unsigned int nworkers;
	struct slot *slots; /* nworkers x NET_SLOTS, each worker's own */
	struct item *q[NET_INBOX];
	size_t qh, qn_len;
	uint64_t busy;
};

struct dialq; /* comm_dial.c */

struct comm_net {
	struct comm_net_opts o;
	struct srv *srv;
	pthread_mutex_t mu; /* communities, peers, gossip state, stats */
	pthread_cond_t cv;
	struct ncomm *c[COMM_NODE_MAX];
	size_t n;
	int stop, started;
	pthread_t serve_th, sync_th[NET_SYNC_THREADS], dial_th;
	unsigned int nsync; /* sync threads running */
	struct comm_net_stats st;
	struct dialq *dq; /* gossip sends for the dial thread (comm_dial.c) */
	comm_net_mesh_fn mesh; /* kind-2 envelopes (NULL: refused) */
	void *mesh_arg;
};

static inline void wr32(uint8_t *p, uint32_t v)
{
	for (unsigned int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* comm_peer.c */
uint64_t comm_net_wall_ms(void);
struct ncomm *comm_net_by_id(struct comm_net *net, const uint8_t *id);
struct ncomm *comm_net_by_dht(struct comm_net *net, const uint8_t *dk);
socklen_t comm_net_sslen(const struct sockaddr_storage *ss);
int comm_net_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b);
/* A holder heard of at ss (key when known): remembered, a pull due now
 * when it is new. Under net->mu. */
void comm_net_note_peer(struct comm_net *net, struct ncomm *c, const struct sockaddr_storage *ss,
			socklen_t sslen, const uint8_t *key);
/* comm_sync.c: the sync threads (announce, find, pull; NET_SYNC_THREADS). */
void *comm_net_sync_main(void *arg);
/* comm_dial.c: one gossip message (bytes copied) to holder p: at its
 * address (when that does not answer, then by key), or queued for the
 * dial thread when it is reached by key. Under net->mu; never blocks. */
void comm_net_gossip_to(struct comm_net *net, const struct peer *p, const uint8_t *msg,
			size_t len);
/* Resolve key to targets to dial ("KEY@ADDR": a relay's circuit first
 * when its record lists relays), within NET_KEY_DIAL_MS each try: from
 * the cached record, then (or at once when fresh) from the latest one in
 * the DHT; counted. Blocks: the sync and dial threads only. The count,
 * or -errno. */
int comm_net_key_targets(struct comm_net *net, const uint8_t key[COMM_PK_LEN], int fresh,
			 char out[][QUIC_NODE_TARGET_MAX], unsigned int max);
/* The dial thread: gossip sends by key. */
void *comm_net_dial_main(void *arg);
/* Its queue: made with the net (0, -ENOMEM); stopped (wakes the thread);
 * freed with what is still queued (after the thread ended). */
int comm_net_dialq_new(struct comm_net *net);
void comm_net_dialq_stop(struct comm_net *net);
void comm_net_dialq_free(struct comm_net *net);
void comm_net_dialq_stats(struct comm_net *net, struct comm_net_stats *out);

#endif
