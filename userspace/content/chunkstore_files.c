// SPDX-License-Identifier: MIT
/*
 * The chunk store's blob files (chunkstore_int.h): their names, making,
 * opening and removing them, and the descriptors kept open between chunk
 * reads and writes (docs/CONTENT.md "Blob files kept open"). A swarm download writes one
 * chunk at a time and its peers read the chunks back one at a time; each
 * opened its blob by path and closed it again (an openat and a close per
 * 256 KiB, 2.4% of a 51-node lab's weftd samples). Here at most
 * CSTORE_FDS descriptors stay open, one per (blob, open flags), the least
 * recently used replaced; one unused for CSTORE_FDS_IDLE_TICKS of the
 * node's 1-s ticks is closed, so a finished download or an idle seed
 * holds none.
 *
 * A descriptor names an inode, not a name: whenever one of a blob's names
 * comes to name another file or none (an add renamed over it, a fresh
 * .part, an unlink), cn_fds_drop forgets the blob's descriptors (closed
 * once their users put them back) and bumps the generation, so a
 * descriptor opened before the change is never kept after it. The
 * completion rename (.part to the final name) keeps the inode: a kept
 * descriptor reads the same bytes under either name.
 *
 * One mutex (fds_mu) guards the table, held for a scan of CSTORE_FDS
 * entries, never across an open, a close or I/O.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/chunkstore_int.h"
#include "weft/log.h"
#include "weft/util.h"

/* ---- names ---- */

/* ---- paths and files ---- */

int cstore_path(const struct cstore *cs, const uint8_t id[B3TREE_ID_LEN], int partial, char *buf,
		size_t len)
{
	char hex[65];
	int n;

	util_hex(hex, id, B3TREE_ID_LEN);
	n = snprintf(buf, len, "%s/%.2s/%s%s", cs->blobdir, hex, hex, partial ? ".part" : "");
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int cn_blob_subdir(const struct cstore *cs, const uint8_t *id)
{
	char p[4096];
	char hex[65];

	util_hex(hex, id, B3TREE_ID_LEN);
	if ((size_t)snprintf(p, sizeof(p), "%s/%.2s", cs->blobdir, hex) >= sizeof(p))
		return -ENAMETOOLONG;
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cn_blob_sync_subdir(const struct cstore *cs, const uint8_t *id)
{
	char p[4096];
	char hex[65];
	int fd, err = 0;

	util_hex(hex, id, B3TREE_ID_LEN);
	if ((size_t)snprintf(p, sizeof(p), "%s/%.2s", cs->blobdir, hex) >= sizeof(p))
		return -ENAMETOOLONG;
	fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	close(fd);
	return err;
}

void cn_blob_unlink(struct cstore *cs, const uint8_t *id)
{
	char p[4096];

	cn_fds_drop(cs, id);

	if (!cstore_path(cs, id, 0, p, sizeof(p)))
		unlink(p);
	if (!cstore_path(cs, id, 1, p, sizeof(p)))
		unlink(p);
}

/* Open the data file of an entry: the name its state implies, else the
 * other one (a completion rename may be under way). Each name twice: the
 * index says complete before the rename, so a reader can miss the final
 * name (not yet there) and then the partial one (just renamed); the
 * final name is there by the second look. Taking one look each marked a
 * healthy blob bad (seen with 10 stores completing at once). */
int cn_blob_open(const struct cstore *cs, const uint8_t *id, uint32_t state, int flags)
{
	char p[4096];
	int partial = state == CSTORE_PARTIAL;
	int fd, err;

	for (int i = 0; i < 4; i++, partial = !partial) {
		err = cstore_path(cs, id, partial, p, sizeof(p));
		if (err)
			return err;
		fd = open(p, flags | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		if (errno != ENOENT)
			return -errno;
	}
	return -ENOENT;
}

void cn_blob_name_complete(struct cstore *cs, const uint8_t *id, int fd, uint64_t nchunks)
{
	char part[4096], fin[4096];
	struct stat st[2]; /* the file before and after the rename */
	int named = fd >= 0 && fstat(fd, &st[0]) == 0;

	if (cstore_path(cs, id, 1, part, sizeof(part)) ||
	    cstore_path(cs, id, 0, fin, sizeof(fin))) {
		named = 0;
	} else if (rename(part, fin) < 0) {
		log_warn(CS_MOD, "rename of a completed download failed: %s (retried at start)",
			 strerror(errno));
		named = 0;
	}
	if (named && fstat(fd, &st[1]) == 0)
		cn_trust_sealed(cs, id, nchunks, &st[0], &st[1], 0);
	else
		cn_trust_forget(cs, id);
}

/* Make a fresh sparse .part of size bytes. */
int cn_blob_create_part(struct cstore *cs, const uint8_t *id, uint64_t size)
{
	char p[4096];
	int fd, err;

	if ((err = cn_blob_subdir(cs, id)) || (err = cstore_path(cs, id, 1, p, sizeof(p))))
		return err;
	cn_fds_drop(cs, id);
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	err = ftruncate(fd, (off_t)size) < 0 ? -errno : 0;
	close(fd);
	if (err)
		unlink(p);
	return err;
}

/* ---- descriptors kept open ---- */

struct cn_fd_ent {
	uint8_t id[B3TREE_ID_LEN];
	int flags;
	int fd;		   /* -1: slot free */
	unsigned int refs; /* callers between get and put */
	int dead;	   /* dropped while in use: closed at the last put */
	unsigned int idle; /* trim calls since the last get */
	uint64_t last;	   /* use stamp, for replacement */
};

struct cn_fds {
	struct cn_fd_ent e[CSTORE_FDS];
	uint64_t gen; /* bumped by every drop */
	uint64_t stamp;
};

int cn_fds_new(struct cstore *cs)
{
	cs->fds = calloc(1, sizeof(*cs->fds));
	if (!cs->fds)
		return -ENOMEM;
	for (unsigned int i = 0; i < CSTORE_FDS; i++)
		cs->fds->e[i].fd = -1;
	pthread_mutex_init(&cs->fds_mu, NULL);
	return 0;
}

void cn_fds_free(struct cstore *cs)
{
	if (!cs->fds)
		return;
	for (unsigned int i = 0; i < CSTORE_FDS; i++)
		if (cs->fds->e[i].fd >= 0)
			close(cs->fds->e[i].fd);
	free(cs->fds);
	cs->fds = NULL;
	pthread_mutex_destroy(&cs->fds_mu);
}

static struct cn_fd_ent *find(struct cn_fds *t, const uint8_t *id, int flags)
{
	for (unsigned int i = 0; i < CSTORE_FDS; i++) {
		struct cn_fd_ent *e = &t->e[i];

		if (e->fd >= 0 && !e->dead && e->flags == flags &&
		    !memcmp(e->id, id, B3TREE_ID_LEN))
			return e;
	}
	return NULL;
}

/* A slot for a new descriptor: a free one, else the least recently used
 * one nobody holds (its descriptor to close in *old); NULL when every
 * slot is held. */
static struct cn_fd_ent *slot_for(struct cn_fds *t, int *old)
{
	struct cn_fd_ent *v = NULL;

	*old = -1;
	for (unsigned int i = 0; i < CSTORE_FDS; i++) {
		struct cn_fd_ent *e = &t->e[i];

		if (e->fd < 0)
			return e;
		if (!e->refs && !e->dead && (!v || e->last < v->last))
			v = e;
	}
	if (v) {
		*old = v->fd;
		v->fd = -1;
	}
	return v;
}

static void close_unused(struct cstore *cs, unsigned int idle_ticks);

int cn_fd_get(struct cstore *cs, const uint8_t *id, uint32_t state, int flags, struct cn_fd *f)
{
	struct cn_fds *t = cs->fds;
	struct cn_fd_ent *e;
	uint64_t gen;
	int fd, old = -1;

	f->fd = -1;
	f->slot = -1;
	f->kept = 0;
	pthread_mutex_lock(&cs->fds_mu);
	e = find(t, id, flags);
	if (e) {
		e->refs++;
		e->idle = 0;
		e->last = ++t->stamp;
		f->fd = e->fd;
		f->slot = (int)(e - t->e);
		f->kept = 1;
		pthread_mutex_unlock(&cs->fds_mu);
		return 0;
	}
	gen = t->gen;
	pthread_mutex_unlock(&cs->fds_mu);

	fd = cn_blob_open(cs, id, state, flags);
	if (fd == -EMFILE || fd == -ENFILE) {
		/* out of descriptors: the kept ones nobody uses go first */
		close_unused(cs, 0);
		fd = cn_blob_open(cs, id, state, flags);
	}
	if (fd < 0)
		return fd;
	f->fd = fd;
	pthread_mutex_lock(&cs->fds_mu);
	/* kept only if no drop came between the open and now (the name may
	 * name another file since), and no one kept the same meanwhile */
	if (t->gen == gen && !find(t, id, flags) && (e = slot_for(t, &old))) {
		memcpy(e->id, id, B3TREE_ID_LEN);
		e->flags = flags;
		e->fd = fd;
		e->refs = 1;
		e->dead = 0;
		e->idle = 0;
		e->last = ++t->stamp;
		f->slot = (int)(e - t->e);
	}
	pthread_mutex_unlock(&cs->fds_mu);
	if (old >= 0)
		close(old);
	atomic_fetch_add(&cs->fds_opens, 1);
	return 0;
}

int cn_fd_stale(const struct cn_fd *f, const struct stat *st)
{
	return f->kept && st->st_nlink == 0;
}

void cn_fd_put(struct cstore *cs, struct cn_fd *f)
{
	struct cn_fd_ent *e;
	int old = -1;

	if (f->fd < 0)
		return;
	if (f->slot < 0) {
		close(f->fd);
	} else {
		pthread_mutex_lock(&cs->fds_mu);
		e = &cs->fds->e[f->slot];
		if (e->refs)
			e->refs--;
		if (e->dead && !e->refs) {
			old = e->fd;
			e->fd = -1;
			e->dead = 0;
		}
		pthread_mutex_unlock(&cs->fds_mu);
		if (old >= 0)
			close(old);
	}
	f->fd = -1;
	f->slot = -1;
}

void cn_fds_drop(struct cstore *cs, const uint8_t *id)
{
	int close_fds[CSTORE_FDS];
	unsigned int n = 0;

	if (!cs->fds)
		return;
	pthread_mutex_lock(&cs->fds_mu);
	cs->fds->gen++;
	for (unsigned int i = 0; i < CSTORE_FDS; i++) {
		struct cn_fd_ent *e = &cs->fds->e[i];

		if (e->fd < 0 || memcmp(e->id, id, B3TREE_ID_LEN))
			continue;
		if (e->refs) {
			e->dead = 1;
		} else {
			close_fds[n++] = e->fd;
			e->fd = -1;
		}
	}
	pthread_mutex_unlock(&cs->fds_mu);
	for (unsigned int i = 0; i < n; i++)
		close(close_fds[i]);
}

/* Close the kept descriptors nobody holds: those idle for idle_ticks
 * trim calls (counted here), or every one (0). */
static void close_unused(struct cstore *cs, unsigned int idle_ticks)
{
	int close_fds[CSTORE_FDS];
	unsigned int n = 0;

	pthread_mutex_lock(&cs->fds_mu);
	for (unsigned int i = 0; i < CSTORE_FDS; i++) {
		struct cn_fd_ent *e = &cs->fds->e[i];

		if (e->fd < 0 || e->refs || (idle_ticks && ++e->idle < idle_ticks))
			continue;
		close_fds[n++] = e->fd;
		e->fd = -1;
		e->dead = 0;
	}
	pthread_mutex_unlock(&cs->fds_mu);
	for (unsigned int i = 0; i < n; i++)
		close(close_fds[i]);
}

void cn_fds_trim(struct cstore *cs)
{
	if (cs->fds)
		close_unused(cs, CSTORE_FDS_IDLE_TICKS);
}

unsigned int cn_fds_held(struct cstore *cs)
{
	unsigned int n = 0;

	if (!cs->fds)
		return 0;
	pthread_mutex_lock(&cs->fds_mu);
	for (unsigned int i = 0; i < CSTORE_FDS; i++)
		n += cs->fds->e[i].fd >= 0;
	pthread_mutex_unlock(&cs->fds_mu);
	return n;
}
