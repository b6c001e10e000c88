// SPDX-License-Identifier: MIT
/*
 * BLAKE3 throughput: `weftctl hash` vs `b3sum` on one file, in the same run.
 *
 *   bench_blake3 FILE [RUNS]
 *
 * For 1 thread and for all online CPUs, the user-facing commands as child
 * processes, output read back from a pipe: `weftctl hash --no-names
 * [--threads 1] FILE` and `b3sum --no-names [--num-threads 1] FILE` (both
 * start, map or read the file, hash and print); runs alternate between
 * the two and the best of RUNS (default 5) counts. Both digests are
 * compared: a mismatch fails the benchmark. Also times the library in this
 * process (open, blake3_hasher_update_fd, as `weftctl hash` does: no
 * process start) and the single-thread speed of every backend (best of
 * 2), and writes one JSON result (bench/benchlib.h). Never run by `make
 * test`. WEFTCTL=path overrides the weftctl next to build/bench/.
 *
 * Same work: the same file (page cache or tmpfs: bench/blake3.sh), the
 * same digest (both are compared), the same thread count for both sides,
 * both as a process started per run (start-up, mapping and printing
 * included on both sides), runs alternating between the two, best of RUNS
 * each.
 */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "weft/blake3.h"
#include "weft/util.h"

#include "benchlib.h"

extern char **environ;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Hash path with weft; returns seconds or < 0 on error. */
static double run_weft(const char *path, unsigned int threads, enum blake3_backend_id be,
		       char hex[65])
{
	struct blake3_hasher h;
	uint8_t d[BLAKE3_OUT_LEN];
	struct stat st;
	double t0 = now_s(), t;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0 || fstat(fd, &st)) {
		perror(path);
		return -1;
	}
	blake3_hasher_init(&h);
	if (blake3_hasher_set_backend(&h, be)) {
		close(fd);
		return -1;
	}
	/* As weftctl hash: read by the threads (pread), not mapped. */
	if (blake3_hasher_update_fd(&h, fd, 0, (size_t)st.st_size, threads)) {
		close(fd);
		return -1;
	}
	blake3_hasher_finalize(&h, d, sizeof(d));
	close(fd);
	t = now_s() - t0;
	util_hex(hex, d, sizeof(d));
	return t;
}

/* A command as a child; digest read back from a pipe. Returns seconds or < 0. */
static double run_cmd(char *const argv[], char hex[65])
{
	posix_spawn_file_actions_t fa;
	int pfd[2], status;
	double t0, t;
	pid_t pid;
	ssize_t n;

	if (pipe(pfd))
		return -1;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	posix_spawn_file_actions_addclose(&fa, pfd[0]);
	t0 = now_s();
	if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ)) {
		posix_spawn_file_actions_destroy(&fa);
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	close(pfd[1]);
	waitpid(pid, &status, 0);
	t = now_s() - t0;
	posix_spawn_file_actions_destroy(&fa);
	n = read(pfd[0], hex, 64);
	close(pfd[0]);
	if (n != 64 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	hex[64] = '\0';
	return t;
}

static double run_b3sum(const char *path, int one_thread, char hex[65])
{
	char *argv1[] = { "b3sum", "--no-names", "--num-threads", "1", (char *)path, NULL };
	char *argvn[] = { "b3sum", "--no-names", (char *)path, NULL };

	return run_cmd(one_thread ? argv1 : argvn, hex);
}

static double run_weftctl(const char *bin, const char *path, int one_thread, char hex[65])
{
	char *argv1[] = { (char *)bin, "hash", "--no-names", "--threads", "1", (char *)path, NULL };
	char *argvn[] = { (char *)bin, "hash", "--no-names", (char *)path, NULL };

	return run_cmd(one_thread ? argv1 : argvn, hex);
}

/* weftctl next to this program's directory (build/bench/../weftctl). */
static void weftctl_path(char *out, size_t cap)
{
	const char *w = getenv("WEFTCTL");
	ssize_t n;
	char *sl;

	if (w) {
		snprintf(out, cap, "%s", w);
		return;
	}
	n = readlink("/proc/self/exe", out, cap - 16);
	if (n <= 0) {
		snprintf(out, cap, "weftctl");
		return;
	}
	out[n] = '\0';
	sl = strrchr(out, '/');
	*sl = '\0';
	sl = strrchr(out, '/');
	strcpy(sl ? sl + 1 : out, "weftctl");
}

int main(int argc, char **argv)
{
	unsigned int ncpu = (unsigned int)sysconf(_SC_NPROCESSORS_ONLN), runs = 5, r, row;
	char hw[65], hb[65];
	struct stat st;
	double gb;
	int be, bad = 0;
	struct bench_result *res = NULL;
	char id[64], label[96], ctl[512];

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s FILE [RUNS]\n", argv[0]);
		return 2;
	}
	if (argc == 3)
		runs = (unsigned int)atoi(argv[2]);
	if (runs == 0 || stat(argv[1], &st)) {
		fprintf(stderr, "%s: bad file or run count\n", argv[0]);
		return 2;
	}
	gb = (double)st.st_size / 1e9;
	weftctl_path(ctl, sizeof(ctl));
	if (bench_result_new(&res, "blake3", argc, argv))
		return 1;
	bench_result_same_work(res, "same file (tmpfs or page cache), same digest (compared), same "
				    "thread count, both commands started as a process per run, runs "
				    "alternating, best of RUNS each");
	bench_result_param(res, "file_bytes", (double)st.st_size);
	bench_result_param(res, "runs", runs);
	printf("file %s, %.3f GB, %u online CPUs, best of %u runs, best backend %s\n", argv[1],
	       gb, ncpu, runs, blake3_backend_name(blake3_backend_best()));
	printf("%-10s %12s %12s %8s %12s\n", "threads", "weftctl GB/s", "b3sum GB/s", "ratio",
	       "library GB/s");
	for (row = 0; row < 2; row++) {
		unsigned int threads = row == 0 ? 1 : ncpu;
		double bc = 1e30, bb = 1e30, bl = 1e30;
		const char *tn = row == 0 ? "1" : "all";
		char hc[65];

		for (r = 0; r < runs; r++) {
			double tc = run_weftctl(ctl, argv[1], row == 0, hc);
			double tb = run_b3sum(argv[1], row == 0, hb);
			double tl = run_weft(argv[1], threads, BLAKE3_BACKEND_AUTO, hw);

			if (tc < 0 || tb < 0 || tl < 0) {
				fprintf(stderr, "run failed (weftctl %s, b3sum installed?)\n", ctl);
				bench_result_free(res);
				return 1;
			}
			if (strcmp(hc, hb) || strcmp(hw, hb)) {
				fprintf(stderr, "DIGEST MISMATCH: weftctl %s library %s b3sum %s\n", hc,
					hw, hb);
				bad = 1;
			}
			bc = tc < bc ? tc : bc;
			bb = tb < bb ? tb : bb;
			bl = tl < bl ? tl : bl;
		}
		printf("%-10s %12.2f %12.2f %7.2fx %12.2f\n", tn, gb / bc, gb / bb, bb / bc, gb / bl);
		snprintf(id, sizeof(id), "weftctl.t%s.gbps", tn);
		snprintf(label, sizeof(label), "weftctl hash, %u thread(s)", threads);
		bench_result_figure(res, id, label, gb / bc, "GB/s");
		snprintf(id, sizeof(id), "b3sum.t%s.gbps", tn);
		snprintf(label, sizeof(label), "b3sum, %u thread(s)", threads);
		bench_result_figure(res, id, label, gb / bb, "GB/s");
		snprintf(id, sizeof(id), "weft.t%s.gbps", tn);
		snprintf(label, sizeof(label), "weft library in-process (as weftctl, no process start), %u thread(s)",
			 threads);
		bench_result_figure(res, id, label, gb / bl, "GB/s");
		snprintf(id, sizeof(id), "weftctl.t%s.vs_b3sum", tn);
		snprintf(label, sizeof(label), "weftctl hash / b3sum, %s", row == 0 ? "1 thread" : "all threads");
		/* Issue 17: >= 1.1x on 1 thread and on all threads. */
		bench_result_ratio(res, id, label, row == 0 ? "weftctl.t1.gbps" : "weftctl.tall.gbps",
				   row == 0 ? "b3sum.t1.gbps" : "b3sum.tall.gbps", 1.1);
		snprintf(id, sizeof(id), "weft.t%s.vs_b3sum", tn);
		snprintf(label, sizeof(label), "weft library / b3sum, %s", row == 0 ? "1 thread" : "all threads");
		bench_result_ratio(res, id, label, row == 0 ? "weft.t1.gbps" : "weft.tall.gbps",
				   row == 0 ? "b3sum.t1.gbps" : "b3sum.tall.gbps", 0);
	}
	printf("\nweft single-thread by backend:\n");
	for (be = BLAKE3_BACKEND_PORTABLE; be < BLAKE3_BACKEND_COUNT; be++) {
		double best = 1e30;

		if (!blake3_backend_available(be))
			continue;
		/* Best of 2 at most: the portable kernel takes ~5 s per GB loaded. */
		for (r = 0; r < (runs < 2 ? runs : 2); r++) {
			double t = run_weft(argv[1], 1, be, hw);

			best = t < best ? t : best;
		}
		printf("  %-10s %8.2f GB/s\n", blake3_backend_name(be), gb / best);
		snprintf(id, sizeof(id), "weft.backend.%s.gbps", blake3_backend_name(be));
		snprintf(label, sizeof(label), "weft, 1 thread, backend %s", blake3_backend_name(be));
		bench_result_figure(res, id, label, gb / best, "GB/s");
	}
	if (bad)
		bench_result_note(res, "DIGEST MISMATCH between weft and b3sum");
	bench_result_note(res, "the goal ratios are the commands (weftctl hash, b3sum), each a process "
			       "per run; the library figures are this process (no start-up)");
	return bench_result_finish(res) || bad;
}
