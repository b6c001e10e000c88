// SPDX-License-Identifier: MIT
/* A clean stop for the thread-per-connection HTTP servers
 * (include/weft/ctl_drain.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

#include "weft/ctl_drain.h"
#include "weft/log.h"
#include "weft/util.h"

struct ctl_drain {
	pthread_mutex_t mu;
	pthread_cond_t cv; /* signalled when a connection ends */
	unsigned int max;  /* slots */
	unsigned int open; /* connections open, tracked or not */
	int stopping;      /* ctl_drain_stop began: new ones are shut at once */
	const char *name;  /* the server, for the log: "control API", "gateway" */
	int fds[];         /* a slot's socket, -1: free */
};

int ctl_drain_new(struct ctl_drain **out, unsigned int max_conns, const char *name)
{
	struct ctl_drain *hd;

	*out = NULL;
	if (!max_conns || max_conns > 65536)
		return -EINVAL;
	hd = calloc(1, sizeof(*hd) + max_conns * sizeof(hd->fds[0]));
	if (!hd)
		return -ENOMEM;
	hd->max = max_conns;
	hd->name = name ? name : "http";
	for (unsigned int i = 0; i < max_conns; i++)
		hd->fds[i] = -1;
	pthread_mutex_init(&hd->mu, NULL);
	util_cond_init_mono(&hd->cv);
	*out = hd;
	return 0;
}

void ctl_drain_free(struct ctl_drain *hd)
{
	if (!hd)
		return;
	pthread_cond_destroy(&hd->cv);
	pthread_mutex_destroy(&hd->mu);
	free(hd);
}

/* socket_context holds the slot + 1 (0: untracked). MHD reports a
 * connection closed before it closes the socket, so a slot's descriptor is
 * never a reused one while it is in the table. */
void ctl_drain_notify(void *cls, struct MHD_Connection *c, void **socket_context,
		       enum MHD_ConnectionNotificationCode code)
{
	struct ctl_drain *hd = cls;
	uintptr_t slot = (uintptr_t)*socket_context;

	pthread_mutex_lock(&hd->mu);
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci =
			MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		int fd = ci ? ci->connect_fd : -1;

		hd->open++;
		slot = 0;
		if (fd >= 0) {
			for (unsigned int i = 0; i < hd->max; i++)
				if (hd->fds[i] < 0) {
					hd->fds[i] = fd;
					slot = i + 1;
					break;
				}
			if (hd->stopping)
				shutdown(fd, SHUT_RDWR);
		}
		*socket_context = (void *)slot;
	} else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (slot && slot <= hd->max)
			hd->fds[slot - 1] = -1;
		*socket_context = NULL;
		if (hd->open)
			hd->open--;
		pthread_cond_broadcast(&hd->cv);
	}
	pthread_mutex_unlock(&hd->mu);
}

unsigned int ctl_drain_open(struct ctl_drain *hd)
{
	unsigned int n;

	pthread_mutex_lock(&hd->mu);
	n = hd->open;
	pthread_mutex_unlock(&hd->mu);
	return n;
}

unsigned int ctl_drain_stop(struct ctl_drain *hd, struct MHD_Daemon *mhd,
			     unsigned int timeout_ms)
{
	struct timespec dl;
	unsigned int left, was;
	uint64_t t0 = util_now_ms();

	util_deadline_ts(&dl, timeout_ms);
	pthread_mutex_lock(&hd->mu);
	hd->stopping = 1;
	was = hd->open;
	for (unsigned int i = 0; i < hd->max; i++)
		if (hd->fds[i] >= 0)
			shutdown(hd->fds[i], SHUT_RDWR);
	while (hd->open && pthread_cond_timedwait(&hd->cv, &hd->mu, &dl) != ETIMEDOUT)
		;
	left = hd->open;
	pthread_mutex_unlock(&hd->mu);
	if (left)
		log_warn("ctl", "%s stop: %u of %u connections still open after %u ms (a handler "
				"holds its thread); stopping anyway",
			 hd->name, left, was, timeout_ms);
	else if (was && util_now_ms() - t0 >= 200)
		log_info("ctl", "%s stop: waited %llu ms for %u connections to close", hd->name,
			 (unsigned long long)(util_now_ms() - t0), was);
	if (mhd)
		MHD_stop_daemon(mhd);
	return left;
}
