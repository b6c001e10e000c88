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
/* pthread_create whose thread starts bound to the caller's context.
 * Returns 0 or a positive error number, like pthread_create. */
int log_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

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
