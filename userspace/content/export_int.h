/* SPDX-License-Identifier: MIT */
/*
 * A download's copy written as its chunks commit, shared by the two files
 * of the export, which call one another one way: export.c (the copy,
 * plain or sealed, and the tee the commits write a plain copy through)
 * calls export_unseal.c (a sealed item's follower thread, which decrypts
 * and writes what the commits hand it); both call export_out.c (the
 * output file and its writes).
 */
#ifndef WEFT_CONTENT_EXPORT_INT_H
#define WEFT_CONTENT_EXPORT_INT_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "content/chunkstore_int.h"
#include "content/content_node_int.h"

/*
 * An output file while it is written: in its folder but with no name
 * (O_TMPFILE), so that no item's name is taken while a download runs (a
 * manifest may name both "a" and "a.weft-part") and a process killed
 * mid-download leaves nothing behind; it gets its name at the end
 * (cn_out_finish). A filesystem without O_TMPFILE gets a named one,
 * "NAME.weft-part-" and 16 random hex digits, created O_EXCL: a
 * publisher cannot name it in advance, and nothing left under that name
 * is ever written through.
 */
struct out_tmp {
	int fd;
	char name[PATH_MAX + 32]; /* "": no name (O_TMPFILE) */
};

/* A sealed item's follower (export_unseal.c): the chunks committed and
 * not yet written (handed, a bit each, under mu, set by the committer),
 * taken CN_COMMIT_MAX at a time; t.bits of the tee are the follower's
 * alone until it is joined (running cleared by cn_unseal_stop). */
struct cn_unseal {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t th;
	uint8_t *handed;
	uint64_t nhanded, cursor;
	int stop, running;
};

/* A download's copy written as its chunks are committed (cn_job_tee_open). */
struct cn_export_tee {
	struct cstore_tee t; /* t.fd: o.fd lent to the commits' writes while they
			      * may still come (-1: not open, or drained); t.bits:
			      * the chunks written (plain: by a commit; sealed:
			      * by the follower), t.count of them */
	struct out_tmp o;    /* owns the descriptor (O_DIRECT) */
	int tried;	     /* cn_job_tee_start ran */
	int published;	     /* the temporary file is the user's file now */
	int sealed;	     /* key below: the follower writes, not the commits */
	int bfd;	     /* sealed: o's file buffered, for partial pages */
	struct cn_export_key key;
	struct cn_unseal u;
	struct content_node *cn;
	uint8_t id[32];	     /* sealed: the item */
	char path[PATH_MAX]; /* the user's file */
};

/* export_out.c: len bytes at off through dfd (O_DIRECT; closed and set to -1
 * once refused) when len and off are aligned, else through fd. */
int cn_export_write(int fd, int *dfd, const uint8_t *buf, size_t len, uint64_t off);
/* path's name with a random suffix, for a named temporary file or link. */
int cn_out_tmp_name(const char *path, char *name, size_t size);
/* path's folder (made if missing) into dir. */
int cn_out_dir(const char *path, char *dir, size_t size);
/* path's temporary file opened for writing with flags (O_DIRECT or 0). */
int cn_out_open(struct out_tmp *o, const char *path, int flags);
/* o's file closed; removed too unless published (kept). */
void cn_out_close(struct out_tmp *o, bool kept);
/* A second descriptor of o's file, opened with flags (O_DIRECT or 0); -1
 * with errno set. */
int cn_out_reopen(const struct out_tmp *o, int flags);
/* The end of a written copy: sized (size >= 0), synced through fd, named
 * path. */
int cn_out_finish(struct out_tmp *o, int fd, int64_t size, const char *path);
/* id's info, a complete blob's (-EAGAIN: not complete; -EINVAL: not of
 * nchunks chunks, when nchunks is given). */
int cn_export_info(struct content_node *cn, const uint8_t id[32], struct cstore_info *info,
		   uint64_t nchunks);

/* export_unseal.c. Not under the job lock: t's buffered descriptor, its
 * follower's state and thread; 0, or -errno with the follower not started
 * (the export then decrypts it all, as without a tee; -EBUSY: UNSEAL_MAX
 * followers run already). */
int cn_unseal_start(struct cn_export_tee *t, uint64_t nchunks);
/* The follower told to end once what was handed to it is written (drain)
 * or at once, after the run it is writing, and joined; none: nothing. */
void cn_unseal_stop(struct cn_export_tee *t, bool drain);
/* Chunks idx[0..n) committed: handed to t's follower, if it runs. */
void cn_unseal_hand(struct cn_export_tee *t, const uint64_t *idx, size_t n);
/* The export of a sealed item whose follower is stopped: the chunks it
 * did not write (held before, reused, or failed: tried again here, which
 * says why) written the same way, then the file sized, synced and named. */
int cn_export_unsealed(struct content_node *cn, const uint8_t id[32], struct cn_export_tee *t);

#endif
