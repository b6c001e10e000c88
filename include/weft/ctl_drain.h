/* SPDX-License-Identifier: MIT */
/*
 * A clean stop for libmicrohttpd's thread-per-connection servers (the
 * control API, the service gateway, the dashboard).
 *
 * MHD_stop_daemon() sets the daemon's shutdown flag and then wakes each
 * connection thread. A connection thread that, after the flag is set,
 * answers a request with one of MHD's own error pages (a malformed chunked
 * body still in its buffer, a handler that returns while the stop runs)
 * crashes in libmicrohttpd 0.9.75 (Debian 12): MHD_queue_response() then
 * returns MHD_YES without queuing, and the error path builds the headers of
 * a response that is not there (a NULL read). The fuzzer found it
 * (test_fuzz_live, docs/FUZZING.md).
 *
 * So no connection may be live when the flag is set: ctl_drain tracks each
 * connection's socket (MHD_OPTION_NOTIFY_CONNECTION), and
 * ctl_drain_stop() shuts every one of them down (each thread reads end of
 * file and ends as it would for a client that left), waits for the threads
 * to end within a deadline, and only then calls MHD_stop_daemon().
 * Connections accepted during the drain are shut at once.
 *
 * The daemon needs MHD's inter-thread channel (MHD_USE_ITC, which
 * MHD_ALLOW_UPGRADE implies): without it a connection thread that ended is
 * reported closed only when the daemon thread next wakes (a new connection,
 * or the stop), and the drain would wait out its deadline.
 */
#ifndef WEFT_CTL_DRAIN_H
#define WEFT_CTL_DRAIN_H

#include <microhttpd.h>

struct ctl_drain;

/* How long the servers' stops wait for their connections (ms): a handler
 * the node's stop has not already released (svc_node_stop, the DHT's stop)
 * holds the stop no longer than this. */
#define CTL_DRAIN_STOP_MS 2000

/* A tracker for at most max_conns connections (the daemon's
 * MHD_OPTION_CONNECTION_LIMIT; more are counted, not tracked by socket);
 * name (static) names the server in the log. -ENOMEM, -EINVAL (max_conns
 * 0). */
int ctl_drain_new(struct ctl_drain **out, unsigned int max_conns, const char *name);

/* Frees the tracker; after ctl_drain_stop() or when the daemon never
 * started. NULL is a no-op. */
void ctl_drain_free(struct ctl_drain *hd);

/* The MHD_OPTION_NOTIFY_CONNECTION callback; cls is the tracker. */
void ctl_drain_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode code);

/* Connections open now. */
unsigned int ctl_drain_open(struct ctl_drain *hd);

/*
 * Shuts every tracked connection's socket down, waits up to timeout_ms for
 * their threads to end, then calls MHD_stop_daemon(mhd) (mhd may be NULL:
 * the drain only). Returns the connections still open when the wait ended
 * (0: a clean stop; more: a handler held its thread past the deadline and
 * MHD_stop_daemon ran anyway, as before; logged as a warning).
 */
unsigned int ctl_drain_stop(struct ctl_drain *hd, struct MHD_Daemon *mhd,
			     unsigned int timeout_ms);

#endif
