// SPDX-License-Identifier: MIT
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "testutil.h"

char *tu_tmpdir(void)
{
	const char *t = getenv("TMPDIR");
	char *p;

	if (asprintf(&p, "%s/weft-test-XXXXXX", t && t[0] ? t : "/tmp") < 0)
		return NULL;
	if (!mkdtemp(p)) {
		free(p);
		return NULL;
	}
	return p;
}

static int rm_one(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(path);
}

void tu_rmrf_free(char *path)
{
	if (!path)
		return;
	nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(path);
}

int tu_write(const char *dir, const char *name, const void *buf, size_t len, unsigned int mode)
{
	char path[4096];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, mode) < 0 || write(fd, buf, len) != (ssize_t)len) {
		int err = -errno;

		close(fd);
		return err ? err : -EIO;
	}
	close(fd);
	return 0;
}

void tu_fill(uint8_t *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed ? seed : 0x9e3779b97f4a7c15ULL;

	for (size_t i = 0; i < len; i++) {
		x ^= x >> 12;
		x ^= x << 25;
		x ^= x >> 27;
		buf[i] = (uint8_t)((x * 0x2545F4914F6CDD1DULL) >> 56);
	}
}

int tu_is_root(void)
{
	return geteuid() == 0;
}

int tu_free_udp_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0), port = -1;

	if (fd < 0)
		return -1;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &l) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

char *tu_protocol_section(const char *section)
{
	const char *top = getenv("TOP");
	char path[4096], *text, *s, *e, *out;
	size_t n, j = 0;
	FILE *f;
	long sz;

	snprintf(path, sizeof(path), "%s/docs/PROTOCOL.md", top ? top : ".");
	f = fopen(path, "r");
	if (!f)
		f = fopen("docs/PROTOCOL.md", "r");
	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	sz = ftell(f);
	rewind(f);
	text = sz >= 0 ? calloc(1, (size_t)sz + 1) : NULL;
	if (!text) {
		fclose(f);
		return NULL;
	}
	n = fread(text, 1, (size_t)sz, f);
	fclose(f);
	text[n] = 0;
	s = strstr(text, section);
	if (!s) {
		free(text);
		return NULL;
	}
	e = strstr(s + 1, "\n## ");
	if (e)
		*e = 0;
	out = calloc(1, strlen(s) + 1);
	for (; out && *s; s++)
		if (*s != ' ' && *s != '\n' && *s != '\t')
			out[j++] = *s;
	free(text);
	return out;
}
