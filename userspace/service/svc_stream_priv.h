/* SPDX-License-Identifier: MIT */
/*
 * The service streams' own state, shared by their files on the fabric's
 * owner: svc_stream.c (the data path: tables, flow control, local ends,
 * frames, events, deadlines), svc_stream_open.c (the caller's API: open,
 * attach, results) and svc_stream_srv.c (the provider's open: admission,
 * handlers, the backend's upgrade). Nothing outside these three includes
 * it; the fabric's other parts use svc_stream_int.h.
 */
#ifndef WEFT_SVC_STREAM_PRIV_H
#define WEFT_SVC_STREAM_PRIV_H

#include <semaphore.h>

#include "svc_stream_int.h"
#include "weft/svc_backend.h"
#include "weft/svc_msg.h"
#include "weft/svc_router.h"

enum { ROLE_CALLER = 1, ROLE_PROVIDER };
enum { LOCAL_NONE = 0, LOCAL_FD, LOCAL_ECHO, LOCAL_BACKEND };
enum { BK_CONNECTING = 1, BK_WRITING, BK_HEAD, BK_OPEN };
enum { W_WAITING = 0, W_DONE, W_ABANDONED };

struct sq_chunk {
	struct sq_chunk *next;
	size_t len, off;
	uint8_t data[];
};

/* A caller's wait for the provider's answer, and the handle it gets. */
struct svc_node_stream {
	struct svc_node *sn;
	sem_t sem;
	atomic_int state;
	atomic_int refs;		  /* the caller, the stream */
	int rc;				  /* transport error (-errno) or 0 */
	struct svc_node_stream_info info; /* refusal */
	struct svcn_strm *s;		  /* the owner's: NULL once the stream is gone */
	uint8_t *head;			  /* WebSocket: the backend's response head */
	size_t head_len;
	atomic_int sent;		  /* its STREAM_OPEN left (the provider may have it) */
};

struct svcn_strm {
	struct svcn_strm *next, *prev; /* strms->all */
	struct svcn_strm *hnext;       /* strms->tab, once the QUIC stream is known */
	struct svcn_strm *znext;       /* strms->zombies */
	struct svc_node *sn;
	uint64_t id;
	int role, local;
	int zombie, hashed;
	/* QUIC side */
	uint64_t conn, token;
	int64_t sid;
	int opened, counted; /* counted: in the pool's svcn_peer.streams */
	struct svc_msg_dec dec;
	unsigned int wout; /* writes waiting for the send buffer */
	uint8_t *hold;	   /* a frame QUIC refused (backpressure): sent first */
	size_t hold_len;
	int hold_fin;
	int accepted;	    /* caller: the provider said yes; provider: we did */
	uint64_t unacked;   /* bytes sent the peer has not credited yet */
	uint64_t delivered; /* bytes taken by our local end, not credited yet */
	int fin_tx;	    /* our QUIC FIN went */
	int fin_rx;	    /* the peer's came */
	int settled;	    /* strm_settle ran */
	int end_rx, end_tx; /* STREAM_END received / sent */
	int draining;	    /* ended with an error: the peer's bytes are dropped */
	/* provider */
	struct svc_peer peer;
	struct svc_ticket t;
	int ticketed;
	char service[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
	/* local end */
	int fd;
	uint32_t fd_ev; /* interest registered (0: not in the set) */
	int fd_rd_eof, fd_wr_shut;
	/* the last read found the socket empty (EAGAIN or a short read): a
	 * pump does not read it again; its next EPOLLIN (level-triggered,
	 * whenever reading is wanted) does */
	int fd_rd_dry;
	int bk; /* BK_* */
	uint8_t *hs;
	size_t hs_len, hs_off;
	void (*release)(void *arg, int fd, const struct svc_node_stream_info *i);
	void *rel_arg;
	struct svc_node_stream *w; /* caller: its wait and handle */
	/* bytes towards the local end (or, for echo, back out) */
	struct sq_chunk *qh, *qt;
	size_t qbytes;
	/* limits */
	uint64_t idle_ns, last_ns, deadline_ns, retry_ns;
	/* caller: an address that must answer by then (a dial by key
	 * follows: svcn_reach), 0: none */
	uint64_t direct_ns;
	uint64_t bytes_rx, bytes_tx;
	int cls;
	uint32_t reason;
	/* WebSocket (SVC_NODE_ST_WS) */
	int ws, ws_head; /* ws_head: the caller has the backend's head */
	uint8_t *open_payload; /* caller: STREAM_OPEN's payload (the request head) */
	int has_assert;	       /* caller: STREAM_OPEN carries this assertion */
	uint8_t assertion[SVC_ASSERT_LEN];
	size_t open_len;
	struct svcn_ws ws_tx, ws_rx; /* caller: client->backend, backend->client */
};

struct svcn_strms {
	int ep;
	_Atomic int stopped; /* the stop's message ran (svcn_strm_stop_wait) */
	struct svcn_strm *all;
	struct svcn_strm *tab[SVCN_HASH];
	struct svcn_strm *zombies;
	unsigned int n;
	uint64_t next_id;
	uint64_t opened, refused, bytes_in, bytes_out;
	uint64_t ended[SVC_STREAM_R__COUNT];
	struct svc_node_stream_info done[SVC_NODE_STREAM_ENDED];
	unsigned int done_next;
	uint8_t frame[SVC_MSG_HDR_LEN + SVCN_STRM_FRAME];
	/* the provider's start (svc_stream_srv.c), set by svcn_strm_srv_init:
	 * this file runs them without naming that part */
	void (*srv_open)(struct svcn_strm *s, const struct svc_msg *m);
	void (*bk_event)(struct svcn_strm *s, uint32_t ev);
};

/* A message to the owner: an open (the caller's), an attach or abort, a
 * stop. */
struct open_msg {
	struct svc_backend_msg m;
	struct svc_node *sn;
	struct svc_node_stream *w;
	char name[SVC_NAME_MAX + 1];
	char method[SVC_METHOD_MAX + 1];
	struct sockaddr_storage ss;
	socklen_t sl;
	uint8_t key[IDENTITY_PK_LEN];
	uint32_t idle_ms, timeout_ms;
	uint32_t direct_ms; /* > 0: the address has this long to answer */
	int has_assert; /* the caller's assertion over the open */
	uint8_t assertion[SVC_ASSERT_LEN];
	uint8_t *payload; /* WebSocket: the request head (taken by the stream) */
	size_t payload_len;
	/* attach */
	int fd;
	uint8_t *head;
	size_t head_len;
	void (*release)(void *arg, int fd, const struct svc_node_stream_info *i);
	void *rel_arg;
};

/* svc_stream.c: the pieces the other two use (owner only). */
void svcn_sx_due(struct svcn_strm *s, uint64_t at);	 /* a deadline for the tick */
void svcn_sx_touch(struct svcn_strm *s);		 /* a byte moved: idle restarts */
void svcn_sx_wput(struct svc_node_stream *w);		 /* a reference of the wait */
int svcn_sx_wtell(struct svcn_strm *s, int rc, int cls, uint32_t reason); /* -1: it left */
struct svcn_strm *svcn_sx_new(struct svc_node *sn, int role); /* NULL: at the bound */
int svcn_sx_q_push(struct svcn_strm *s, const uint8_t *p, size_t len);
int svcn_sx_send_frame(struct svcn_strm *s, int type, int cls, uint32_t status, const uint8_t *p,
		       size_t len, int fin);
int svcn_sx_send_data(struct svcn_strm *s, const uint8_t *p, size_t len);
void svcn_sx_fail(struct svcn_strm *s, int cls, uint32_t reason);
void svcn_sx_free(struct svcn_strm *s);
void svcn_sx_zombies_free(struct svcn_strms *ss);
void svcn_sx_pump(struct svcn_strm *s);
void svcn_sx_interest(struct svcn_strm *s);
uint64_t svcn_sx_idle_ms(const struct svc_node *sn, uint32_t asked);
uint64_t svcn_sx_ws_max(const struct svc_node *sn);
/* svc_stream_open.c */
void svcn_sx_open_run(struct svc_backend_msg *m, int cancel);

#endif
