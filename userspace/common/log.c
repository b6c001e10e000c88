// SPDX-License-Identifier: MIT
/* Leveled logging: one write(2) per line so threads never interleave. The
 * settings are per context (include/weft/log.h); the only state here is
 * each thread's binding. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "weft/log.h"
#include "weft/util.h"

/* Used by threads bound to no context: info, stderr, no name. Never
 * written (log_ctx_set_level takes a context its owner holds). */
static const struct log_ctx log_default = {LOG_LVL_INFO, STDERR_FILENO, "", 0, {0}};

static __thread struct log_ctx *log_tls;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void log_ctx_init(struct log_ctx *c, enum log_level lvl, int fd, const char *name)
{
	memset(c, 0, sizeof(*c));
	c->level = (int)lvl;
	c->fd = fd >= 0 ? fd : STDERR_FILENO;
	randombytes_buf(c->addr_key, sizeof(c->addr_key));
	if (name)
		snprintf(c->name, sizeof(c->name), "%s", name);
}

void log_ctx_set_level(struct log_ctx *c, enum log_level lvl)
{
	__atomic_store_n(&c->level, (int)lvl, __ATOMIC_RELAXED);
}

void log_ctx_set_addresses(struct log_ctx *c, int on)
{
	__atomic_store_n(&c->addresses, !!on, __ATOMIC_RELAXED);
}

const char *log_key(const unsigned char *key, size_t n, char *buf, size_t len)
{
	static const char hx[] = "0123456789abcdef";
	char tmp[20];
	size_t k = n < 8 ? n : 8, o = 0;

	for (size_t i = 0; i < k; i++) {
		tmp[o++] = hx[key[i] >> 4];
		tmp[o++] = hx[key[i] & 15];
	}
	memcpy(tmp + o, "...", 4);
	snprintf(buf, len, "%s", tmp);
	return buf;
}

enum log_level log_ctx_level(const struct log_ctx *c)
{
	return (enum log_level)__atomic_load_n(&c->level, __ATOMIC_RELAXED);
}

struct log_ctx *log_bind(struct log_ctx *c)
{
	struct log_ctx *old = log_tls;

	log_tls = c;
	return old;
}

struct log_ctx *log_current(void)
{
	return log_tls;
}

static const struct log_ctx *cur(void)
{
	return log_tls ? log_tls : &log_default;
}

struct log_start {
	void *(*fn)(void *);
	void *arg;
	struct log_ctx *ctx;
	char name[16];
	int helper; /* log_thread_create_helper */
};

/* log_thread_helpers_batch: helper threads started from now on run
 * SCHED_BATCH */
static int helpers_batch;

void log_thread_helpers_batch(int on)
{
	__atomic_store_n(&helpers_batch, !!on, __ATOMIC_RELAXED);
}

static void *log_thread_main(void *p)
{
	struct log_start s = *(struct log_start *)p;

	free(p);
	log_tls = s.ctx;
	if (s.name[0])
		(void)pthread_setname_np(pthread_self(), s.name);
	if (s.helper && __atomic_load_n(&helpers_batch, __ATOMIC_RELAXED)) {
		/* its wake-ups no longer preempt a running packet worker (the
		 * kernel's CFS/EEVDF: a SCHED_BATCH task that wakes waits for
		 * the running one's slice or sleep); it still gets its fair
		 * share of the CPU. Unprivileged; on failure it runs as it is. */
		struct sched_param sp = {0};

		if (pthread_setschedparam(pthread_self(), SCHED_BATCH, &sp))
			log_debug("log", "%s: SCHED_BATCH refused; normal scheduling", s.name);
	}
	/* a thread that ends (a download job, a backend) leaves no memory
	 * written at its malloc arena's top: common/heap_thread.c */
	util_heap_release_at_exit();
	return s.fn(s.arg);
}

static int thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
			 const char *name, int helper)
{
	struct log_start *s = malloc(sizeof(*s));
	int rc;

	if (!s)
		return ENOMEM;
	s->fn = fn;
	s->arg = arg;
	s->ctx = log_tls;
	s->name[0] = 0;
	s->helper = helper;
	if (name)
		snprintf(s->name, sizeof(s->name), "%s", name); /* the kernel's 15 + NUL */
	rc = pthread_create(t, attr, log_thread_main, s);
	if (rc)
		free(s);
	return rc;
}

int log_thread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg,
		      const char *name)
{
	return thread_create(t, attr, fn, arg, name, 0);
}

int log_thread_create_helper(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *),
			     void *arg, const char *name)
{
	return thread_create(t, attr, fn, arg, name, 1);
}

const char *log_addr(const char *s, char *buf, size_t len)
{
	const struct log_ctx *c = log_tls ? log_tls : &log_default;
	const char *at, *h, *end, *rest;
	unsigned char tag[crypto_shorthash_BYTES];
	char pre[24] = "", tmp[128];
	size_t hl;

	if (!s)
		return "-";
	if (__atomic_load_n(&c->addresses, __ATOMIC_RELAXED))
		return s;
	/* s may be buf itself: work on a copy */
	snprintf(tmp, sizeof(tmp), "%s", s);
	s = tmp;
	at = strchr(s, '@');
	h = at ? at + 1 : s;
	if (at) { /* a dial target: KEY@ADDR, the key shortened */
		size_t kl = (size_t)(at - s);

		snprintf(pre, sizeof(pre), "%.*s...@", (int)(kl < 16 ? kl : 16), s);
	}
	if (*h == '[') { /* [v6]:port */
		end = strchr(h, ']');
		if (!end)
			end = h + strlen(h);
		else
			end++;
	} else {
		const char *colon = strchr(h, ':');

		end = strchr(h, '/');
		if (!end)
			end = colon && !strchr(colon + 1, ':') ? colon : h + strlen(h);
	}
	rest = end;
	hl = (size_t)(end - h);
	if (c == &log_default) { /* no context, no key: nothing to tag with */
		snprintf(buf, len, "%saddr-hidden%s", pre, rest);
		return buf;
	}
	crypto_shorthash(tag, (const unsigned char *)h, hl, c->addr_key);
	snprintf(buf, len, "%saddr-%02x%02x%02x%02x%s", pre, tag[0], tag[1], tag[2], tag[3], rest);
	return buf;
}

enum log_level log_get_level(void)
{
	return log_ctx_level(cur());
}

const char *log_level_name(enum log_level lvl)
{
	if ((unsigned int)lvl >= sizeof(level_names) / sizeof(level_names[0]))
		return "?";
	return level_names[lvl];
}

int log_level_parse(const char *s, enum log_level *out)
{
	for (unsigned int i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -EINVAL;
}

void log_msg(enum log_level lvl, const char *mod, const char *fmt, ...)
{
	const struct log_ctx *c = cur();
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n, m;

	if ((int)lvl > (int)log_ctx_level(c))
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-5s %s%s%s: ", tm.tm_year + 1900,
		     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		     ts.tv_nsec / 1000000, log_level_name(lvl), c->name, c->name[0] ? "/" : "",
		     mod);
	if (n < 0)
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	n += m;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	/* Best effort: a failed log write has nowhere better to go. */
	if (write(c->fd, line, (size_t)n) < 0)
		return;
}
