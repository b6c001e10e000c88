/* SPDX-License-Identifier: MIT */
/*
 * The serving fixture shared by test_content_serve.c and
 * test_content_serve_abuse.c: a seed (a store, an engine with its QUIC
 * node and a content node, started, on 127.0.0.1) and client nodes that
 * dial it. Header-only, as cstore_fx.h.
 */
#ifndef WEFT_TEST_CONTENT_SERVE_FX_H
#define WEFT_TEST_CONTENT_SERVE_FX_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "testutil.h"
#include "weft/content_node.h"
#include "weft/engine.h"
#include "weft/guard.h"
#include "weft/identity.h"
#include "weft/quic_node.h"
#include "weft/store.h"

struct side {
	struct engine *eng;
	struct quic_node *qn;
	struct identity id;
	uint16_t port;
};

static inline void side_new(struct side *s, uint8_t seed_byte, unsigned int workers)
{
	uint8_t seed[IDENTITY_SEED_LEN];
	struct engine_opts eo;
	struct quic_node_opts qo;
	int port = tu_free_udp_port();

	assert_true(port > 0);
	memset(seed, seed_byte, sizeof(seed));
	identity_from_seed(&s->id, seed);
	s->port = (uint16_t)port;
	engine_opts_default(&eo);
	eo.workers = workers;
	eo.ports = &s->port;
	eo.nports = 1;
	eo.bind_addr = "127.0.0.1";
	assert_int_equal(engine_new(&s->eng, &eo), 0);
	memset(&qo, 0, sizeof(qo));
	qo.eng = s->eng;
	qo.id = &s->id;
	qo.port = s->port;
	assert_int_equal(quic_node_new(&s->qn, &qo), 0);
}

/* The serving node: a store, an engine of `workers` with its QUIC node and
 * a content node, started; `to` is its address on 127.0.0.1. */
struct seed {
	struct side s;
	struct store *store;
	struct content_node *cn;
	char *dir;
	struct sockaddr_in to;
};

/* content_node_opts.read_threads of the next seed_new (0: the default) */
static int seed_read_threads __attribute__((unused));

static inline void seed_new(struct seed *sd, unsigned int workers, struct guard *g,
			    unsigned int delay_ms)
{
	struct store_opts so = {0};
	struct content_node_opts cno;
	char sdir[512];

	memset(sd, 0, sizeof(*sd));
	sd->dir = tu_tmpdir();
	snprintf(sdir, sizeof(sdir), "%s/store", sd->dir);
	so.dir = sdir;
	assert_int_equal(store_new(&sd->store, &so), 0);
	side_new(&sd->s, 1, workers);
	memset(&cno, 0, sizeof(cno));
	cno.eng = sd->s.eng;
	cno.store = sd->store;
	cno.state_dir = sd->dir;
	cno.quic = sd->s.qn;
	cno.guard = g;
	cno.id = &sd->s.id;
	cno.quic_port = sd->s.port;
	cno.test_serve_delay_ms = delay_ms;
	cno.read_threads = seed_read_threads;
	assert_int_equal(content_node_new(&sd->cn, &cno), 0);
	assert_int_equal(engine_start(sd->s.eng), 0);
	assert_int_equal(content_node_start(sd->cn), 0);
	sd->to.sin_family = AF_INET;
	sd->to.sin_port = htons(sd->s.port);
	sd->to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
}

/* After engine_stop(sd->s.eng) and the clients' stops. */
static inline void seed_free(struct seed *sd)
{
	content_node_free(sd->cn);
	quic_node_free(sd->s.qn);
	engine_free(sd->s.eng);
	store_free(sd->store);
	tu_rmrf_free(sd->dir);
}

/* A client node of one worker, started, dialling the seed with handler h
 * (arg): its QUIC node in *qn before the dial (the callbacks use it), the
 * connection's handle in *conn. */
static inline void client_new(struct side *cl, struct seed *sd, const struct quic_node_handler *h,
			      void *arg, struct quic_node **qn, uint64_t *conn)
{
	side_new(cl, 9, 1);
	*qn = cl->qn;
	assert_int_equal(engine_start(cl->eng), 0);
	assert_int_equal(quic_node_connect_addr(cl->qn, (struct sockaddr *)&sd->to, sizeof(sd->to),
						sd->s.id.pk, h, arg, conn),
			 0);
}

#endif
