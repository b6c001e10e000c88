// SPDX-License-Identifier: MIT
/*
 * weftctl hash [--threads N] [--simd LEVEL] [--kernel] [--no-names] [FILE...]
 *
 * BLAKE3 of each FILE (or of standard input for "-" or no FILE), printed
 * exactly as b3sum prints it: "<64 hex>  <name>", names holding a backslash
 * or a newline escaped ("\\", "\n") with the line prefixed by a backslash.
 * Standalone: no daemon needed. A file that cannot be read is reported on
 * stderr and skipped; the exit code is then 1. Regular files are read in
 * 256 KiB pieces (pread) and hashed by N threads (default: one per online
 * CPU, like b3sum); pipes and small files are read in turn. --simd LEVEL
 * (avx512, avx2, sse41, portable, auto) forces the kernel, exit 2 when the
 * CPU lacks it; without it the best one runs, capped by WEFT_BLAKE3_SIMD
 * (include/weft/blake3.h). --kernel prints the kernel that would run and
 * exits.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "weft/blake3.h"
#include "weft/util.h"
#include "weftctl.h"

/* Regular files from 16 KiB on go to blake3_hasher_update_fd (by size, in
 * threads); smaller ones, pipes and files whose size says nothing (procfs)
 * are read to their end here. */
#define HASH_PREAD_MIN (16u * 1024u)
/* Read buffer for pipes and small files. */
#define HASH_READ_BUF (64u * 1024u)

/* Hash an open descriptor; returns 0 or a negative errno. */
static int hash_fd(int fd, unsigned int threads, enum blake3_backend_id simd,
		   uint8_t out[BLAKE3_OUT_LEN])
{
	struct blake3_hasher h;
	struct stat st;
	uint8_t *buf;
	int err = 0;

	blake3_hasher_init(&h);
	err = blake3_hasher_set_backend(&h, simd); /* checked by the caller: 0 */
	if (err)
		return err;
	if (fstat(fd, &st))
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (S_ISREG(st.st_mode) && st.st_size >= (off_t)HASH_PREAD_MIN &&
	    (uint64_t)st.st_size <= SIZE_MAX) {
		/*
		 * Read, not mapped: each thread preads its 256 KiB pieces into a
		 * buffer it reuses (blake3_hasher_update_fd). A mapping costs
		 * page-table work that a copy from the page cache does not: 1 GiB
		 * in tmpfs, one thread, 232 ms of CPU read against 282 ms mapped
		 * with MAP_POPULATE (docs/BLAKE3.md). The file's size at open is
		 * hashed, as b3sum's mapping does.
		 */
		err = blake3_hasher_update_fd(&h, fd, 0, (size_t)st.st_size, threads);
		if (!err)
			blake3_hasher_finalize(&h, out, BLAKE3_OUT_LEN);
		return err;
	}
	buf = malloc(HASH_READ_BUF);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, buf, HASH_READ_BUF);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		blake3_hasher_update(&h, buf, (size_t)n);
	}
	free(buf);
	if (!err)
		blake3_hasher_finalize(&h, out, BLAKE3_OUT_LEN);
	return err;
}

static void print_line(const uint8_t d[BLAKE3_OUT_LEN], const char *name, int names)
{
	char hex[2 * BLAKE3_OUT_LEN + 1];
	const char *p;

	util_hex(hex, d, BLAKE3_OUT_LEN);
	if (!names) {
		printf("%s\n", hex);
		return;
	}
	if (!strpbrk(name, "\\\n")) {
		printf("%s  %s\n", hex, name);
		return;
	}
	printf("\\%s  ", hex);
	for (p = name; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", stdout);
		else if (*p == '\n')
			fputs("\\n", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
}

static int hash_one(const char *name, unsigned int threads, enum blake3_backend_id simd, int names)
{
	uint8_t d[BLAKE3_OUT_LEN];
	int fd, err;

	if (strcmp(name, "-") == 0) {
		err = hash_fd(STDIN_FILENO, threads, simd, d);
	} else {
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
		} else {
			err = hash_fd(fd, threads, simd, d);
			close(fd);
		}
	}
	if (err) {
		fflush(stdout);
		fprintf(stderr, "weftctl: hash: %s: %s\n", name, strerror(-err));
		return WEFTCTL_ERR;
	}
	print_line(d, name, names);
	return WEFTCTL_OK;
}

int weftctl_hash(struct weftctl *ctx, int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "no-names", no_argument, NULL, 'n' },
		{ "simd", required_argument, NULL, 's' },
		{ "kernel", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum blake3_backend_id simd = BLAKE3_BACKEND_AUTO;
	unsigned int threads = 0;
	int names = 1, kernel = 0, rc = WEFTCTL_OK, c, i, id;
	const char *env;
	uint64_t v;

	optind = 1;
	while ((c = getopt_long(argc, argv, "t:nh", longopts, NULL)) != -1) {
		switch (c) {
		case 't':
			if (util_parse_u64(optarg, 1, BLAKE3_MT_MAX_THREADS, &v)) {
				fprintf(stderr, "weftctl: hash: --threads wants 1..%u\n",
					BLAKE3_MT_MAX_THREADS);
				return weftctl_usage(ctx);
			}
			threads = (unsigned int)v;
			break;
		case 'n':
			names = 0;
			break;
		case 's':
			id = blake3_backend_parse(optarg);
			if (id < 0) {
				fprintf(stderr, "weftctl: hash: --simd wants avx512, avx2, sse41, "
						"portable or auto\n");
				return weftctl_usage(ctx);
			}
			if (!blake3_backend_available((enum blake3_backend_id)id)) {
				fprintf(stderr, "weftctl: hash: --simd %s: this CPU cannot run it\n",
					optarg);
				return WEFTCTL_USAGE;
			}
			simd = (enum blake3_backend_id)id;
			break;
		case 'k':
			kernel = 1;
			break;
		case 'h':
			printf("usage: weftctl %s\n", ctx->noun->usage);
			return WEFTCTL_OK;
		default:
			return weftctl_usage(ctx);
		}
	}
	env = getenv(BLAKE3_SIMD_ENV);
	if (env && *env && blake3_backend_parse(env) < 0) {
		fprintf(stderr, "weftctl: hash: %s=%s: want avx512, avx2, sse41, portable or auto\n",
			BLAKE3_SIMD_ENV, env);
		return WEFTCTL_USAGE;
	}
	if (kernel) {
		printf("%s\n", blake3_backend_name(simd == BLAKE3_BACKEND_AUTO ? blake3_backend_best() :
									  simd));
		return WEFTCTL_OK;
	}
	if (optind >= argc)
		return hash_one("-", threads, simd, names);
	for (i = optind; i < argc; i++)
		if (hash_one(argv[i], threads, simd, names) != WEFTCTL_OK)
			rc = WEFTCTL_ERR;
	return rc;
}
