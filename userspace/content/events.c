// SPDX-License-Identifier: MIT
/*
 * The event stream of download jobs (GET /v1/content/events): one line of
 * JSON per event, newline-delimited (docs/CONTROL_API.md). A ticker thread
 * samples the jobs (jobs.c) every CN_EV_TICK_MS while anyone listens and
 * queues a progress line per running job to each subscriber, and the end
 * of a job (done, failed, cancelled) once, at once: a job that ends wakes
 * the ticker (cn_events_ended) for its end line alone, so a client waiting
 * for it (weftctl content get) is not kept up to a tick late. Bounded: CN_EV_SUBS
 * subscribers, CN_EV_QUEUE lines each; a subscriber whose queue is full
 * (a reader slower than the events) is dropped, not buffered: its stream
 * ends with a "dropped" line. Calls jobs.c only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "content/content_node_int.h"
#include "weft/log.h"
#include "weft/util.h"

struct cn_evsub {
	int used;
	uint64_t job; /* 0: every job */
	int term;     /* its job's end queued: the stream ends after it */
	int dropped;  /* queue overflowed: only the "dropped" line is left */
	int closing;  /* the hub is going */
	unsigned int head, n;
	char line[CN_EV_QUEUE][CN_EV_LINE];
	uint16_t len[CN_EV_QUEUE];
};

struct cn_events {
	struct content_node *cn;
	pthread_mutex_t mu;
	pthread_cond_t cond; /* lines queued, a subscriber dropped, shutdown */
	pthread_cond_t tick; /* the ticker: a subscriber came, a job ended, shutdown */
	pthread_t thr;
	int started, stopping;
	int fresh_sub, ended; /* why the ticker was woken before its time */
	unsigned int nsubs;
	struct cn_evsub *subs[CN_EV_SUBS];
	uint64_t running[CONTENT_MAX_JOBS]; /* jobs running at the last tick */
	unsigned int nrunning;
	uint64_t last_job; /* the newest job seen at the last tick */
	unsigned long long dropped_total;
	unsigned int tick_ms;
};

/* Queue a line to s (lock held); a full queue drops s. */
static void push(struct cn_events *ev, struct cn_evsub *s, const char *line, size_t len)
{
	if (s->dropped || s->closing)
		return;
	if (s->n == CN_EV_QUEUE) {
		s->dropped = 1;
		ev->dropped_total++;
		log_info(CN_MOD, "event stream subscriber dropped: %u events unread", CN_EV_QUEUE);
		return;
	}
	if (len > CN_EV_LINE)
		len = CN_EV_LINE;
	memcpy(s->line[(s->head + s->n) % CN_EV_QUEUE], line, len);
	s->len[(s->head + s->n) % CN_EV_QUEUE] = (uint16_t)len;
	s->n++;
}

void cn_events_publish(struct cn_events *ev, uint64_t job, const char *line, size_t len)
{
	pthread_mutex_lock(&ev->mu);
	for (unsigned int i = 0; i < CN_EV_SUBS; i++)
		if (ev->subs[i] && (!ev->subs[i]->job || ev->subs[i]->job == job))
			push(ev, ev->subs[i], line, len);
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->mu);
}

/* One line of JSON for a job's state (newline included): its length, 0 if
 * it does not fit. */
static size_t job_line(const struct cn_progress *p, const char *event, char *buf, size_t cap)
{
	uint64_t left = p->total > p->done ? p->total - p->done : 0;
	char id[65];
	int n;

	util_hex(id, p->id, p->id_len);
	n = snprintf(buf, cap,
		     "{\"event\":\"%s\",\"job\":%llu,\"id\":\"%s\",\"state\":\"%s\","
		     "\"done_bytes\":%llu,\"total_bytes\":%llu,\"rate_bps\":%llu,\"eta_s\":%lld,"
		     "\"providers\":%u,\"items_done\":%llu,\"items_total\":%llu,"
		     "\"bad_chunks\":%llu,\"elapsed_ms\":%llu,\"error\":\"%s\"}\n",
		     event, (unsigned long long)p->job, id, p->state, (unsigned long long)p->done,
		     (unsigned long long)p->total, (unsigned long long)p->rate_bps,
		     p->rate_bps && p->total ? (long long)(left / p->rate_bps) : -1LL, p->providers,
		     (unsigned long long)p->items_done, (unsigned long long)p->items_total,
		     (unsigned long long)p->bad_chunks, (unsigned long long)p->elapsed_ms,
		     p->error);
	return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

static int was_running(const struct cn_events *ev, uint64_t job)
{
	for (unsigned int i = 0; i < ev->nrunning; i++)
		if (ev->running[i] == job)
			return 1;
	return 0;
}

/* One tick: the jobs' state to every subscriber (lock held); with
 * ends_only, the end lines alone (a job ended between two ticks). */
static void tick(struct cn_events *ev, const struct cn_progress *p, size_t n, int ends_only)
{
	uint64_t now_running[CONTENT_MAX_JOBS];
	unsigned int nr = 0;
	char line[CN_EV_LINE];

	for (size_t k = 0; k < n; k++) {
		const char *end = !p[k].finished		     ? NULL
				  : !strcmp(p[k].state, "cancelled") ? "cancelled"
				  : !strcmp(p[k].state, "done")	     ? "done"
								     : "failed";
		/* ended since the last tick: running then, or started since */
		int fresh_end = end && (was_running(ev, p[k].job) || p[k].job > ev->last_job);
		size_t len = job_line(&p[k], end ? end : "progress", line, sizeof(line));

		if (!end && nr < CONTENT_MAX_JOBS)
			now_running[nr++] = p[k].job;
		if (!len)
			continue;
		for (unsigned int i = 0; i < CN_EV_SUBS; i++) {
			struct cn_evsub *s = ev->subs[i];

			if (!s || (s->job && s->job != p[k].job) || s->term)
				continue;
			if (!end) {
				if (!ends_only)
					push(ev, s, line, len);
			} else if (s->job) { /* its job is over: the last line */
				push(ev, s, line, len);
				s->term = 1;
			} else if (fresh_end) {
				push(ev, s, line, len);
			}
		}
	}
	memcpy(ev->running, now_running, nr * sizeof(now_running[0]));
	ev->nrunning = nr;
	for (size_t k = 0; k < n; k++)
		if (p[k].job > ev->last_job)
			ev->last_job = p[k].job;
	pthread_cond_broadcast(&ev->cond);
}

static void *ticker(void *arg)
{
	struct cn_events *ev = arg;
	/* each entry written whole (cn_jobs_progress) before it is read:
	 * malloc keeps the pages never used out of the RSS */
	struct cn_progress *p = malloc(CONTENT_MAX_JOBS * sizeof(*p));
	uint64_t now, next = 0; /* the next whole tick, ms */
	struct timespec ts;

	pthread_mutex_lock(&ev->mu);
	while (!ev->stopping) {
		int whole;

		now = util_now_ms();
		whole = now >= next || ev->fresh_sub;
		if (ev->nsubs && p && (whole || ev->ended)) {
			size_t n;

			ev->fresh_sub = ev->ended = 0;
			pthread_mutex_unlock(&ev->mu);
			n = cn_jobs_progress(ev->cn, p, CONTENT_MAX_JOBS);
			pthread_mutex_lock(&ev->mu);
			tick(ev, p, n, !whole);
		}
		ev->fresh_sub = ev->ended = 0;
		if (whole)
			next = now + ev->tick_ms;
		util_heap_release_due(now);
		util_deadline_ts(&ts, (unsigned int)(next > now ? next - now : 0));
		if (ev->nsubs)
			pthread_cond_timedwait(&ev->tick, &ev->mu, &ts);
		else
			pthread_cond_wait(&ev->tick, &ev->mu);
	}
	pthread_mutex_unlock(&ev->mu);
	free(p);
	return NULL;
}

int cn_events_new(struct cn_events **out, struct content_node *cn, unsigned int tick_ms)
{
	struct cn_events *ev = calloc(1, sizeof(*ev));
	int rc;

	*out = NULL;
	if (!ev)
		return -ENOMEM;
	ev->cn = cn;
	ev->tick_ms = tick_ms ? tick_ms : CN_EV_TICK_MS;
	pthread_mutex_init(&ev->mu, NULL);
	util_cond_init_mono(&ev->cond);
	util_cond_init_mono(&ev->tick);
	rc = log_thread_create(&ev->thr, NULL, ticker, ev, "weft-events");
	if (rc) {
		cn_events_free(ev);
		return -rc;
	}
	ev->started = 1;
	*out = ev;
	return 0;
}

void cn_events_ended(struct cn_events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->mu);
	ev->ended = 1;
	pthread_cond_signal(&ev->tick);
	pthread_mutex_unlock(&ev->mu);
}

void cn_events_stop(struct cn_events *ev)
{
	if (!ev)
		return;
	pthread_mutex_lock(&ev->mu);
	ev->stopping = 1;
	pthread_cond_broadcast(&ev->tick);
	pthread_cond_broadcast(&ev->cond);
	pthread_mutex_unlock(&ev->mu);
}

void cn_events_free(struct cn_events *ev)
{
	if (!ev)
		return;
	cn_events_stop(ev);
	if (ev->started)
		pthread_join(ev->thr, NULL);
	/* Readers still subscribed are the control server's: it is stopped
	 * before the content node (node_free), so none is left here; any that
	 * is, is freed with the hub. */
	for (unsigned int i = 0; i < CN_EV_SUBS; i++)
		free(ev->subs[i]);
	pthread_mutex_destroy(&ev->mu);
	pthread_cond_destroy(&ev->cond);
	pthread_cond_destroy(&ev->tick);
	free(ev);
}

int cn_events_sub(struct cn_events *ev, uint64_t job, struct cn_evsub **out)
{
	struct cn_evsub *s;
	unsigned int i;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->job = job;
	pthread_mutex_lock(&ev->mu);
	for (i = 0; i < CN_EV_SUBS && ev->subs[i]; i++)
		;
	if (i == CN_EV_SUBS || ev->stopping) {
		pthread_mutex_unlock(&ev->mu);
		free(s);
		return -EBUSY;
	}
	ev->subs[i] = s;
	ev->nsubs++;
	ev->fresh_sub = 1;
	pthread_cond_signal(&ev->tick); /* its first lines at once */
	pthread_mutex_unlock(&ev->mu);
	*out = s;
	return 0;
}

void cn_events_unsub(struct cn_events *ev, struct cn_evsub *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&ev->mu);
	for (unsigned int i = 0; i < CN_EV_SUBS; i++)
		if (ev->subs[i] == s) {
			ev->subs[i] = NULL;
			ev->nsubs--;
		}
	pthread_mutex_unlock(&ev->mu);
	free(s);
}

long cn_events_read(struct cn_events *ev, struct cn_evsub *s, char *buf, size_t cap,
		    unsigned int wait_ms)
{
	struct timespec ts;
	long n = 0;
	int rc = 0;

	util_deadline_ts(&ts, (uint64_t)wait_ms);
	pthread_mutex_lock(&ev->mu);
	while (!s->n && !s->dropped && !s->term && !ev->stopping && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&ev->cond, &ev->mu, &ts);
	if (s->n) {
		/* whole lines only, as many as fit */
		while (s->n && (size_t)n + s->len[s->head] <= cap) {
			memcpy(buf + n, s->line[s->head], s->len[s->head]);
			n += s->len[s->head];
			s->head = (s->head + 1) % CN_EV_QUEUE;
			s->n--;
		}
		if (!n)
			n = -EMSGSIZE;
	} else if (s->dropped) {
		n = -EPIPE;
	} else if (s->term || ev->stopping) {
		n = -ESHUTDOWN;
	}
	pthread_mutex_unlock(&ev->mu);
	return n;
}

unsigned long long cn_events_dropped(struct cn_events *ev)
{
	unsigned long long n;

	pthread_mutex_lock(&ev->mu);
	n = ev->dropped_total;
	pthread_mutex_unlock(&ev->mu);
	return n;
}
