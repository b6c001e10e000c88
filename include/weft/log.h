/* SPDX-License-Identifier: MIT */
/*
 * Logging with levels, one write(2) per line (threads never interleave).
 * Never pass key material, payloads or request bodies to these functions.
 *
 * There is no process-wide log setting: the threshold, the output
 * descriptor and a name prefix live in a struct log_ctx that its owner
 * (a node) keeps. Each thread is bound to one context (thread-local
 * pointer, log_bind); log_* calls use the calling thread's context, or
 * the built-in default (info, stderr, no name) when none is bound.
 * Threads started with log_thread_create inherit their creator's
 * binding, so every thread a node starts logs with that node's level and
 * name, and two nodes in one process do not affect each other.
 */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include <pthread.h>
#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

#define LOG_NAME_MAX 24

struct log_ctx {
	int level;		  /* atomic: enum log_level; changed live (SIGHUP) */
	int fd;			  /* lines go here; default STDERR_FILENO */
	char name[LOG_NAME_MAX]; /* "" or a prefix written before the module */
	int addresses;		  /* atomic: 1 = peer addresses in full (log.addresses) */
	unsigned char addr_key[16]; /* random per context: log_addr's hash key */
};

/* Initialise c: threshold lvl, output fd (-1: stderr), name (NULL: none;
 * truncated to LOG_NAME_MAX - 1 bytes). */
void log_ctx_init(struct log_ctx *c, enum log_level lvl, int fd, const char *name);
/* Change c's threshold; takes effect at once on every thread bound to c. */
void log_ctx_set_level(struct log_ctx *c, enum log_level lvl);
enum log_level log_ctx_level(const struct log_ctx *c);

/* Bind the calling thread to c (NULL: the built-in default). c must outlive
 * the binding. Returns the previous binding (NULL: default). */
struct log_ctx *log_bind(struct log_ctx *c);
/* The calling thread's binding (NULL: default). */
struct log_ctx *log_current(void);
/* pthread_create whose thread starts bound to the caller's context and
 * named name (`top -H`, /proc/PID/task/N/comm, perf; at most 15
 * characters, "weft-..."; NULL: the thread names itself). When it ends it
 * hands back the free memory at its malloc arena's top
 * (util_heap_release_at_exit). Returns 0 or a positive error number, like
 * pthread_create. */
int log_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
		      const char *name);
/* The same for a helper thread: bulk work woken once per content chunk
 * beside the packet workers (a seed's chunk reads, a download's
 * verification and writes). While log_thread_helpers_batch is on (weftd:
 * node.helper_sched = batch, the default) it runs SCHED_BATCH: its
 * wake-ups do not preempt a running packet worker (docs/OPERATIONS.md
 * "Threads and the scheduler"). */
int log_thread_create_helper(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg, const char *name);
/* Helper threads started from now on run SCHED_BATCH (on) or as their
 * creator does (off, the default). Any thread. */
void log_thread_helpers_batch(int on);

/* Peer addresses in log lines (log.addresses, default off): on = written
 * in full; off = log_addr hides them. Takes effect at once. */
void log_ctx_set_addresses(struct log_ctx *c, int on);

/*
 * Privacy of logs (docs/OPERATIONS.md, "Logs"): what a line may show of
 * a peer address s: "IP", "IP:PORT", "[V6]:PORT", "IP/LEN" or
 * "KEY@ADDR" (a dial target). With the calling thread's context's
 * addresses on, s itself; else a copy in buf where the host is replaced
 * by "addr-" and 8 hex digits of a keyed hash (SipHash, a random key per
 * context: the same address gives the same tag within one run, and the
 * tag cannot be turned back into the address without the key), the port
 * or prefix length kept, and a key before '@' shortened as log_key does.
 * Never NULL; buf of 64 bytes or more is always enough; s may be buf
 * (rewritten in place).
 */
const char *log_addr(const char *s, char *buf, size_t len);
/* A node key (or any id) for a log line: the first 8 bytes in hex and
 * "...", from raw bytes (n >= 8) into buf (at least 20 bytes). */
const char *log_key(const unsigned char *key, size_t n, char *buf, size_t len);

/* Threshold of the calling thread's context. */
enum log_level log_get_level(void);
/* Parse "error|warn|info|debug"; returns 0 or -EINVAL. */
int log_level_parse(const char *s, enum log_level *out);
const char *log_level_name(enum log_level lvl);

void log_msg(enum log_level lvl, const char *mod, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(mod, ...) log_msg(LOG_LVL_ERROR, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_msg(LOG_LVL_WARN, mod, __VA_ARGS__)
#define log_info(mod, ...) log_msg(LOG_LVL_INFO, mod, __VA_ARGS__)
#define log_debug(mod, ...)                                    \
	do {                                                   \
		if (log_get_level() >= LOG_LVL_DEBUG)          \
			log_msg(LOG_LVL_DEBUG, mod, __VA_ARGS__); \
	} while (0)

#endif
