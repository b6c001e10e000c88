// SPDX-License-Identifier: MIT
/*
 * weftctl hash [--threads N] [--simd LEVEL] [--io read|map|auto] [--kernel]
 *              [--no-names] [FILE...]
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
 * exits. --io read|map|auto (or WEFT_HASH_IO): how regular files of 4 MiB
 * and more reach the hasher, read into buffers or mapped; auto (default)
 * measures both once per process on the first such file (hash_io_probe).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
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
/* Files from this size on may be mapped instead of read (hash_io_probe). */
#define HASH_MAP_MIN (4u << 20)
/* Mapped, one thread: pages mapped ahead this many bytes at a time. */
#define HASH_MAP_WINDOW (2u << 20)
#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22 /* Linux 5.14 uapi value; older headers lack it */
#endif
#define HASH_IO_ENV "WEFT_HASH_IO"

enum hash_io { HASH_IO_AUTO, HASH_IO_READ, HASH_IO_MAP };

static int hash_io_parse(const char *s)
{
	if (!strcmp(s, "auto"))
		return HASH_IO_AUTO;
	if (!strcmp(s, "read"))
		return HASH_IO_READ;
	if (!strcmp(s, "map"))
		return HASH_IO_MAP;
	return -1;
}

static double thread_cpu_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

/*
 * Read or map? What a file costs besides the hashing is, read, the copy
 * out of the page cache, and, mapped, the page-table work (mapping the
 * pages, unmapping them): which is cheaper depends on the host. 1 GiB in
 * tmpfs, one thread, CPU time of the whole command: on an AMD EPYC PVM
 * guest, where a fault is expensive, read 232 ms, mapped 282; on an Intel
 * Xeon KVM guest (Sapphire Rapids class), read 366-381 ms, mapped 268-282,
 * b3sum (mapped) 284-296 (docs/BLAKE3.md). So both are measured, once per
 * process, on the first 2 MiB of the first file of HASH_MAP_MIN or more:
 * a pread into a reused buffer against mmap + MADV_POPULATE_READ + munmap,
 * thread CPU time, best of 3 each; the cheaper one is used for every file.
 */
static enum hash_io hash_io_probe(int fd)
{
	static enum hash_io chosen = HASH_IO_AUTO;
	const size_t len = HASH_MAP_WINDOW;
	double best_rd = 1e30, best_map = 1e30, t;
	uint8_t *buf;
	void *m;
	int r;

	if (chosen != HASH_IO_AUTO)
		return chosen;
	buf = aligned_alloc(HASH_MAP_WINDOW, len);
	if (!buf)
		return HASH_IO_READ;
	(void)madvise(buf, len, MADV_HUGEPAGE); /* as the library's read buffers */
	memset(buf, 0, len);
	for (r = 0; r < 3; r++) {
		t = thread_cpu_ns();
		if (pread(fd, buf, len, 0) != (ssize_t)len)
			break;
		t = thread_cpu_ns() - t;
		best_rd = t < best_rd ? t : best_rd;
		t = thread_cpu_ns();
		m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
		if (m == MAP_FAILED)
			break;
		(void)madvise(m, len, MADV_POPULATE_READ);
		munmap(m, len);
		t = thread_cpu_ns() - t;
		best_map = t < best_map ? t : best_map;
	}
	free(buf);
	chosen = best_map < best_rd ? HASH_IO_MAP : HASH_IO_READ;
	return chosen;
}

/* A mapped file that shrinks under us faults with SIGBUS: an error, not a
 * crash dump (the digest would be of a file that no longer exists). */
static void hash_sigbus(int sig)
{
	static const char msg[] = "weftctl: hash: a file shrank while being hashed (mapped)\n";

	(void)sig;
	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	_exit(WEFTCTL_ERR);
}

/* len bytes of fd, mapped: threads as blake3_hasher_update_mt (which maps
 * each 256 KiB piece's pages before hashing it); one thread maps 2 MiB
 * ahead at a time (MADV_POPULATE_READ: one call instead of 32 faults). */
static int hash_mapped(struct blake3_hasher *h, int fd, size_t len, unsigned int threads)
{
	struct sigaction sa = { .sa_handler = hash_sigbus };
	uint8_t *m;
	size_t off, n;
	int err = 0;

	m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return -errno;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	if (threads == 1) {
		for (off = 0; off < len; off += n) {
			n = len - off < HASH_MAP_WINDOW ? len - off : HASH_MAP_WINDOW;
			(void)madvise(m + off, n, MADV_POPULATE_READ); /* a hint */
			blake3_hasher_update(h, m + off, n);
		}
	} else {
		err = blake3_hasher_update_mt(h, m, len, threads);
	}
	munmap(m, len);
	return err;
}

/* Hash an open descriptor; returns 0 or a negative errno. */
static int hash_fd(int fd, unsigned int threads, enum blake3_backend_id simd, enum hash_io io,
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
		 * Read (each thread preads its 256 KiB pieces into a buffer it
		 * reuses: blake3_hasher_update_fd) or mapped, whichever costs this
		 * host less (hash_io_probe). The file's size at open is hashed,
		 * as b3sum's mapping does.
		 */
		if (io == HASH_IO_AUTO)
			io = st.st_size >= (off_t)HASH_MAP_MIN ? hash_io_probe(fd) : HASH_IO_READ;
		if (io == HASH_IO_MAP)
			err = hash_mapped(&h, fd, (size_t)st.st_size, threads);
		else
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

static int hash_one(const char *name, unsigned int threads, enum blake3_backend_id simd,
		    enum hash_io io, int names)
{
	uint8_t d[BLAKE3_OUT_LEN];
	int fd, err;

	if (strcmp(name, "-") == 0) {
		err = hash_fd(STDIN_FILENO, threads, simd, io, d);
	} else {
		fd = open(name, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			err = -errno;
		} else {
			err = hash_fd(fd, threads, simd, io, d);
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
		{ "io", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum blake3_backend_id simd = BLAKE3_BACKEND_AUTO;
	unsigned int threads = 0;
	int names = 1, kernel = 0, rc = WEFTCTL_OK, c, i, id, io = -1;
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
		case 'i':
			io = hash_io_parse(optarg);
			if (io < 0) {
				fprintf(stderr, "weftctl: hash: --io wants read, map or auto\n");
				return weftctl_usage(ctx);
			}
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
	if (io < 0) {
		env = getenv(HASH_IO_ENV);
		io = env && *env ? hash_io_parse(env) : HASH_IO_AUTO;
		if (io < 0) {
			fprintf(stderr, "weftctl: hash: %s=%s: want read, map or auto\n",
				HASH_IO_ENV, env);
			return WEFTCTL_USAGE;
		}
	}
	if (kernel) {
		printf("%s\n", blake3_backend_name(simd == BLAKE3_BACKEND_AUTO ? blake3_backend_best() :
									  simd));
		return WEFTCTL_OK;
	}
	if (optind >= argc)
		return hash_one("-", threads, simd, (enum hash_io)io, names);
	for (i = optind; i < argc; i++)
		if (hash_one(argv[i], threads, simd, (enum hash_io)io, names) != WEFTCTL_OK)
			rc = WEFTCTL_ERR;
	return rc;
}
