/* SPDX-License-Identifier: MIT */
/* The mailbox node's internals, shared by its parts (not exported). */
#ifndef WEFT_MBN_INT_H
#define WEFT_MBN_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "weft/conn.h"
#include "weft/mailbox.h"

/* A request being received on a stream a peer opened (type 0x50). */
struct mbn_pend {
	struct mbn_pend *next;
	uint64_t conn;
	int64_t sid;
	uint8_t peer[MBOX_KEY_LEN]; /* the connection's authenticated key */
	uint8_t *buf;
	size_t len, cap;
	long need; /* the frame's total once its header arrived, else 0 */
};

struct mbn_anchor {
	uint8_t key[MBOX_KEY_LEN];
	char target[128]; /* "KEY@ADDR:PORT" */
	struct io_addr addr;
};

struct mbox_node {
	struct mbox_node_opts o;
	struct mbox_store *ms;
	struct mbox_rate *rate; /* under mu */

	pthread_mutex_t mu;
	pthread_cond_t cv;		     /* work for the server thread, a fetch asked for */
	struct mbn_pend *rx;		     /* streams being received (under mu) */
	struct mbn_pend *ready, **ready_tail; /* whole requests for the server thread */
	unsigned int npend;		     /* rx + ready, <= MBOX_MAX_PENDING */
	int stop, fetch_now;
	_Atomic int stopping; /* read by waits that must not outlast a stop */
	uint64_t fetch_gen, fetch_done_gen; /* a fetch asked for / the last one done */
	int fetch_last;			    /* the last fetch's result (mbn_fetch_all) */
	pthread_t srv_thr, fetch_thr;
	int srv_started, fetch_started;

	struct mbn_anchor anchors[MBOX_MAX_ANCHORS]; /* ours, as published (under mu) */
	unsigned int nanchors;
	const char *anchors_from; /* "config", "relays", "dht", "none" */

	/* counters (under mu) */
	uint64_t served[4];	  /* PUT, FETCH, ACK, direct (inbox) */
	uint64_t refused[MBOX_E_MAX];
	uint64_t pend_refused;	  /* streams refused: MBOX_MAX_PENDING */
	uint64_t fetched_total, fetch_runs, fetch_errors;
	uint64_t announces, announces_stored; /* mailbox host in the DHT */
	uint64_t dht_found_ms;		      /* when the DHT last gave anchors (mbn_now_ms) */
	struct mbn_anchor dht_found[MBOX_MAX_ANCHORS];
	unsigned int ndht_found;

	/* mbox_node_take: messages for a module above (set before start) */
	char take_tag[17];
	size_t take_tag_len;
	mbox_take_fn take_fn;
	void *take_arg;
	uint64_t taken_total; /* under mu */
};

/* mbox_serve.c: the anchor's side of stream type 0x50 */
extern const struct quic_node_handler mbn_srv_handler;
void *mbn_srv_thread(void *arg);
void mbn_pend_free(struct mbn_pend *p);

/* mbox_xchg.c: one request and its answer on a new connection */
int mbn_xchg(struct mbox_node *mn, const char *target, const uint8_t *req, size_t len,
	     uint8_t **resp, size_t *rlen, unsigned int timeout_ms);
/* "KEYHEX@ADDR:PORT" into out. */
void mbn_target_of(char out[128], const uint8_t key[MBOX_KEY_LEN], const struct io_addr *a);
/* A mutex and a condition whose waits use CLOCK_MONOTONIC. */
void mbn_mu_cv_init(pthread_mutex_t *mu, pthread_cond_t *cv);
uint64_t mbn_now_s(void);
uint64_t mbn_now_ms(void);

/* mbox_client.c: send and fetch */
struct mbn_send_result {
	int direct;		/* delivered to the recipient itself */
	unsigned int ntried, nstored;
	uint8_t id[MBOX_ID_LEN];
	struct {
		uint8_t key[MBOX_KEY_LEN];
		int err;	/* -errno of the exchange, or 0 */
		uint8_t status; /* the anchor's enum mbox_status */
	} tried[MBOX_MAX_ANCHORS + 1];
};
int mbn_send(struct mbox_node *mn, const uint8_t recipient[MBOX_KEY_LEN], const uint8_t *body,
	     size_t len, uint32_t ttl_s, int no_direct, struct mbn_send_result *res);
/* Fetch from each of our anchors; returns messages taken or -errno. */
int mbn_fetch_all(struct mbox_node *mn);
/* Choose our anchors (mailbox.anchors, else mailbox relays, else mailbox
 * hosts from the DHT) and publish them. */
void mbn_anchors_refresh(struct mbox_node *mn);

/* Ask the fetcher thread for a fetch now (anchors chosen
 * again, then each one's messages taken) and wait for it: messages taken,
 * -errno of a failed anchor, -ETIMEDOUT (the fetch goes on), -ECANCELED. */
#define MBN_FETCH_WAIT_MS 90000u
int mbn_fetch_wait(struct mbox_node *mn, unsigned int timeout_ms, unsigned int *nanchors);

/* mbox_find.c: mailbox hosts in the DHT */
void mbn_announce(struct mbox_node *mn);
unsigned int mbn_dht_anchors(struct mbox_node *mn, struct mbn_anchor *out, unsigned int max);

/* mbox_take.c: a message just kept in the inbox (id), opened (m), to the
 * taker when its body carries the tag; out of the inbox once taken. */
void mbn_offer(struct mbox_node *mn, const struct mbox_opened *m, const uint8_t id[MBOX_ID_LEN]);
/* The same from the sealed bytes (opened here). */
void mbn_offer_sealed(struct mbox_node *mn, const uint8_t *sealed, size_t len,
		      const uint8_t id[MBOX_ID_LEN]);

/* mbox_ctl.c */
int mbn_ctl_register(struct mbox_node *mn);

#endif
