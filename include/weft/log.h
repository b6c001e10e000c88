/* SPDX-License-Identifier: MIT */
/*
 * Logging to stderr with levels. Thread-safe (one write(2) per line).
 * Never pass key material, payloads or request bodies to these functions.
 */
#ifndef WEFT_LOG_H
#define WEFT_LOG_H

#include <stdarg.h>

enum log_level {
	LOG_LVL_ERROR = 0,
	LOG_LVL_WARN = 1,
	LOG_LVL_INFO = 2,
	LOG_LVL_DEBUG = 3,
};

/* Process-wide threshold; the only global in weft (set once at start-up). */
void log_set_level(enum log_level lvl);
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
