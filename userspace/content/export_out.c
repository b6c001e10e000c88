// SPDX-License-Identifier: MIT
/*
 * The export's output files (export_int.h): a copy written under no name
 * (O_TMPFILE, else a random temporary name) and named at its end, writes
 * through O_DIRECT where they are aligned, and a complete blob's info.
 * Called by export.c and export_unseal.c; calls only the chunk store's
 * I/O helpers.
 */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "content/export_int.h"
#include "weft/util.h"

int cn_export_write(int fd, int *dfd, const uint8_t *buf, size_t len, uint64_t off)
{
	int err = -EINVAL;

	if (*dfd >= 0 && len % DIO_ALIGN == 0 && off % DIO_ALIGN == 0) {
		err = cn_pwrite_full(*dfd, buf, len, off);
		if (err == -EINVAL) { /* O_DIRECT refused after all */
			close(*dfd);
			*dfd = -1;
		}
	}
	if (err == -EINVAL)
		err = cn_pwrite_full(fd, buf, len, off);
	return err;
}

/* path's name with a random suffix, for a named temporary file or link */
int cn_out_tmp_name(const char *path, char *name, size_t size)
{
	uint8_t r[8];
	char hex[17];

	randombytes_buf(r, sizeof(r));
	for (int i = 0; i < 8; i++)
		snprintf(hex + 2 * i, 3, "%02x", r[i]);
	return snprintf(name, size, "%s.weft-part-%s", path, hex) >= (int)size ? -ENAMETOOLONG : 0;
}

/* path's folder (made if missing) into dir */
int cn_out_dir(const char *path, char *dir, size_t size)
{
	char *slash;

	if (snprintf(dir, size, "%s", path) >= (int)size)
		return -ENAMETOOLONG;
	slash = strrchr(dir, '/');
	if (!slash) {
		snprintf(dir, size, ".");
		return 0;
	}
	if (slash == dir) {
		dir[1] = 0;
		return 0;
	}
	*slash = 0;
	return util_mkdir_p(dir, 0755);
}

/* Whether to open with O_TMPFILE: only with /proc, through which a file
 * with no name is opened again (cn_out_reopen) and named (out_publish; else
 * only root could name it, with AT_EMPTY_PATH). */
static bool tmpfile_usable(void)
{
#ifdef WEFT_TEST_HOOKS
	/* a filesystem without O_TMPFILE (vfat, NFSv3), for the tests */
	if (getenv("WEFT_TEST_NO_TMPFILE"))
		return false;
#endif
	return access("/proc/self/fd", X_OK) == 0;
}

/* path's temporary file opened for writing with flags (O_DIRECT or 0) */
int cn_out_open(struct out_tmp *o, const char *path, int flags)
{
	char dir[PATH_MAX];
	int rc;

	o->fd = -1;
	o->name[0] = 0;
	rc = cn_out_dir(path, dir, sizeof(dir));
	if (rc)
		return rc;
	if (tmpfile_usable())
		o->fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC | flags, 0644);
	if (o->fd >= 0)
		return 0;
	rc = cn_out_tmp_name(path, o->name, sizeof(o->name));
	if (rc)
		return rc;
	o->fd = open(o->name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | flags, 0644);
	if (o->fd >= 0)
		return 0;
	rc = -errno;
	if (rc != -EEXIST)
		(void)unlink(o->name); /* O_DIRECT refused after the create */
	o->name[0] = 0;
	return rc;
}

/* A second descriptor of o's file, opened with flags (O_DIRECT or 0). */
int cn_out_reopen(const struct out_tmp *o, int flags)
{
	char p[64];

	if (o->name[0])
		return open(o->name, O_WRONLY | O_CLOEXEC | flags);
	snprintf(p, sizeof(p), "/proc/self/fd/%d", o->fd);
	return open(p, O_WRONLY | O_CLOEXEC | flags);
}

/* o's file (fd: a descriptor of it) given path's name, replacing what
 * was there atomically: renamed, or linked under a random name and
 * renamed. */
static int out_publish(const struct out_tmp *o, int fd, const char *path)
{
	char p[64], name[PATH_MAX + 32];
	int rc;

	if (o->name[0])
		return rename(o->name, path) ? -errno : 0;
	rc = cn_out_tmp_name(path, name, sizeof(name));
	if (rc)
		return rc;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	if (linkat(AT_FDCWD, p, AT_FDCWD, name, AT_SYMLINK_FOLLOW) &&
	    linkat(fd, "", AT_FDCWD, name, AT_EMPTY_PATH)) /* /proc gone since: root */
		return -errno;
	rc = rename(name, path) ? -errno : 0;
	if (rc)
		(void)unlink(name);
	return rc;
}

/* o's file closed; removed too unless published (kept). */
void cn_out_close(struct out_tmp *o, bool kept)
{
	if (o->fd >= 0)
		close(o->fd);
	if (!kept && o->name[0])
		(void)unlink(o->name);
	o->fd = -1;
	o->name[0] = 0;
}

/* The end of a written copy: sized (size >= 0), synced through fd, named
 * path. */
int cn_out_finish(struct out_tmp *o, int fd, int64_t size, const char *path)
{
	if (size >= 0 && ftruncate(fd, (off_t)size))
		return -errno;
	if (fsync(fd))
		return -errno;
	return out_publish(o, fd, path);
}

int cn_export_info(struct content_node *cn, const uint8_t id[32], struct cstore_info *info,
		   uint64_t nchunks)
{
	int rc = cstore_info(cn->cs, id, info);

	if (rc)
		return rc;
	if (info->state != CSTORE_COMPLETE)
		return -EAGAIN;
	return nchunks && info->nchunks != nchunks ? -EINVAL : 0;
}
