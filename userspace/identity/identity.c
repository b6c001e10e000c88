// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/identity.h"
#include "weft/log.h"

void identity_from_seed(struct identity *id, const uint8_t seed[IDENTITY_SEED_LEN])
{
	crypto_sign_seed_keypair(id->pk, id->sk, seed);
}

void identity_wipe(struct identity *id)
{
	sodium_memzero(id->sk, sizeof(id->sk));
}

void identity_sign(const struct identity *id, const uint8_t *msg, uint64_t len,
		   uint8_t sig[IDENTITY_SIG_LEN])
{
	crypto_sign_detached(sig, NULL, msg, len, id->sk);
}

int identity_verify(const uint8_t pk[IDENTITY_PK_LEN], const uint8_t *msg, uint64_t len,
		    const uint8_t sig[IDENTITY_SIG_LEN])
{
	return crypto_sign_verify_detached(sig, msg, len, pk) == 0 ? 0 : -EBADMSG;
}

static int read_key(struct identity *id, const char *path)
{
	uint8_t seed[IDENTITY_SEED_LEN + 1];
	struct stat sb;
	ssize_t n;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &sb) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(sb.st_mode)) {
		log_error("identity", "%s is not a regular file", path);
		err = -EBADMSG;
		goto out;
	}
	if (sb.st_mode & 077) {
		log_error("identity", "%s has mode %04o: it must be 0600 (chmod 600 %s)", path,
			  (unsigned int)(sb.st_mode & 07777), path);
		err = -EPERM;
		goto out;
	}
	if (sb.st_uid != geteuid()) {
		log_error("identity", "%s is owned by uid %u, not by this user", path,
			  (unsigned int)sb.st_uid);
		err = -EPERM;
		goto out;
	}
	n = read(fd, seed, sizeof(seed));
	if (n != IDENTITY_SEED_LEN) {
		log_error("identity", "%s must hold exactly %d bytes (found %s%zd)", path,
			  IDENTITY_SEED_LEN, n > IDENTITY_SEED_LEN ? "more than " : "",
			  n < 0 ? 0 : (n > IDENTITY_SEED_LEN ? (ssize_t)IDENTITY_SEED_LEN : n));
		err = n < 0 ? -errno : -EBADMSG;
		goto out;
	}
	identity_from_seed(id, seed);
out:
	sodium_memzero(seed, sizeof(seed));
	close(fd);
	return err;
}

static int write_key(struct identity *id, const char *dir, const char *path)
{
	uint8_t seed[IDENTITY_SEED_LEN];
	char tmp[PATH_MAX];
	int fd, err = 0, dfd;

	randombytes_buf(seed, sizeof(seed));
	identity_from_seed(id, seed);
	snprintf(tmp, sizeof(tmp), "%s/.node.key.%ld", dir, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	if (fchmod(fd, 0600) < 0 || write(fd, seed, sizeof(seed)) != (ssize_t)sizeof(seed) ||
	    fsync(fd) < 0) {
		err = errno ? -errno : -EIO;
		close(fd);
		unlink(tmp);
		goto out;
	}
	close(fd);
	/* link() fails if another process created the key meanwhile: no clobbering. */
	if (link(tmp, path) < 0) {
		err = -errno;
		unlink(tmp);
		goto out;
	}
	unlink(tmp);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
out:
	sodium_memzero(seed, sizeof(seed));
	return err;
}

int identity_load(struct identity *id, const char *dir, int create, int *created)
{
	char path[PATH_MAX];
	int err;

	if (created)
		*created = 0;
	if (sodium_init() < 0)
		return -EIO;
	snprintf(path, sizeof(path), "%s/node.key", dir);
	err = read_key(id, path);
	if (err != -ENOENT || !create)
		return err;
	err = write_key(id, dir, path);
	if (err == -EEXIST)
		return read_key(id, path);
	if (!err && created)
		*created = 1;
	return err;
}
