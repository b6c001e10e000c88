/* SPDX-License-Identifier: MIT */
/*
 * Complete weft nodes (QUIC, DHT, content, service fabric, guard, control
 * handlers) in the test's process, on a simulated network (simnet, mem
 * backend): no socket but the unused control socket in a temporary
 * directory, no root. The control API is called in-process (ctl_dispatch).
 */
#ifndef WEFT_TEST_SIMNODE_H
#define WEFT_TEST_SIMNODE_H

#include <jansson.h>

#include "weft/config.h"
#include "weft/io.h"

struct node;
struct simnet;
struct simnet_host;
struct simnet_nat;

struct simnode {
	struct node *node;
	struct simnet_host *host;
	char *dir;     /* state directory (removed by simnode_free) */
	char name[16]; /* log prefix */
	char ip[48];
	char key[65]; /* node key, hex */
	int log_fd;   /* -1: stderr */
};

/*
 * Create and start a node named name at ip (behind nat when not NULL) on
 * sn, with one packet worker, QUIC 4433 and DHT 6881. settings: NULL or a
 * NULL-terminated list of "section.key=value" (dht.bootstrap=IP:6881,
 * node.log_level=debug, ...). tweak, when not NULL, edits the finished
 * configuration (test hooks: cfg->test.*). log_path, when not NULL,
 * receives the node's log lines instead of stderr. Fails the test on error.
 */
void simnode_new(struct simnode *x, struct simnet *sn, const char *name, const char *ip,
		 struct simnet_nat *nat, const char *const *settings,
		 void (*tweak)(struct weft_config *cfg), const char *log_path);
void simnode_free(struct simnode *x);

/* Call a control route in-process: body (stolen, may be NULL) as the
 * request's JSON. Returns the HTTP status; *out (when not NULL) gets the
 * JSON answer (caller decrefs). */
int simnode_ctl(struct simnode *x, const char *method, const char *path, json_t *body,
		json_t **out);
/* The same, answer must be 200: returns the JSON answer (caller decrefs). */
json_t *simnode_ok(struct simnode *x, const char *method, const char *path, json_t *body);
/* An integer member of a GET answer by path of keys ("fabric", "calls_in",
 * NULL). Fails the test when absent. */
json_int_t simnode_get_int(struct simnode *x, const char *route, ...);

/* Print the lines of x's GET /metrics that begin with prefix to stderr,
 * each after x's name (a failing test's state, for its log). */
void simnode_print_metrics(struct simnode *x, const char *prefix);
/* POST /v1/content/get on x: id into out, from the node at ip only. The
 * job's route ("/v1/content/jobs/N") into path. */
void simnode_get_from(struct simnode *x, const char *id, const char *out, const char *ip,
		      char *path, size_t cap);
/* The value of x's metric name (GET /metrics; a label set written out in
 * name, {k="v"}, as the line has it), or -1 when absent. */
double simnode_metric(struct simnode *x, const char *name);

/* 1 when x finds at least one provider of service name (GET
 * /v1/svc/find/NAME), else 0. */
int simnode_finds(struct simnode *x, const char *name);
/* 1 when key's node record, resolved fresh by from, lists relay_key as
 * its first relay, else 0. */
int simnode_lists_relay(struct simnode *from, const char *key, const char *relay_key);
/* 1 when relay (GET /v1/relay/reservations) holds a reservation for key. */
int simnode_relay_holds(struct simnode *relay, const char *key);

/*
 * Wait until cond(arg) is true, checking every millisecond of real time,
 * for at most timeout_ms. The nodes' workers run as threads on the
 * network's real-time clock: this is a deadline on a condition, never a
 * fixed delay. Returns 0, or -ETIMEDOUT.
 */
int simnode_wait(int (*cond)(void *arg), void *arg, unsigned int timeout_ms);
/* The same, checking every every_ms (a condition that costs several
 * control calls, waited on for long). */
int simnode_wait_every(int (*cond)(void *arg), void *arg, unsigned int timeout_ms,
		       unsigned int every_ms);

#endif
