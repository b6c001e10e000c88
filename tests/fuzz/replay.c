// SPDX-License-Identifier: MIT
/*
 * Corpus replay without libFuzzer (docs/FUZZING.md): linked with one
 * tests/fuzz/fuzz_*.c and the sanitized libweft (gcc, ASan + UBSan, the
 * objects the unit tests use), it runs LLVMFuzzerInitialize (when the
 * target has one) and then LLVMFuzzerTestOneInput once over every file of
 * the directories or files named, as a libFuzzer binary does with -runs=0:
 * each input in a buffer of exactly its size, so a read past it is an ASan
 * report. make test builds these (build/fuzz-replay/<target>) instead of
 * the libFuzzer binaries, which need a clang build of the whole library;
 * make fuzz builds those for campaigns.
 *
 * Usage: <target> [-flag...] DIR|FILE...   (flags, libFuzzer's, are
 * ignored). Exit 0 after the last input; 1 when an input cannot be read;
 * a finding aborts (the sanitizers' halt_on_error, or the target's own
 * abort()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An input larger than this is refused rather than replayed (the seed
 * corpora's largest is a few KiB; libFuzzer's own default cap is 1 MiB
 * for generated inputs). */
#define REPLAY_MAX_INPUT (16u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int replay_file(const char *path, unsigned long *n)
{
	struct stat st;
	uint8_t *buf;
	size_t size, off = 0;
	ssize_t r;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > REPLAY_MAX_INPUT) {
		fprintf(stderr, "replay: %s: not a regular file of at most %u bytes\n", path,
			REPLAY_MAX_INPUT);
		close(fd);
		return -1;
	}
	size = (size_t)st.st_size;
	/* exactly size bytes (one for an empty input, never read) */
	buf = malloc(size ? size : 1);
	if (!buf) {
		close(fd);
		return -1;
	}
	while (off < size) {
		r = read(fd, buf + off, size - off);
		if (r <= 0) {
			fprintf(stderr, "replay: %s: short read\n", path);
			free(buf);
			close(fd);
			return -1;
		}
		off += (size_t)r;
	}
	close(fd);
	LLVMFuzzerTestOneInput(buf, size);
	free(buf);
	(*n)++;
	return 0;
}

static int name_cmp(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int skip_dot(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* Every file of dir, in name order (subdirectories are not entered). */
static int replay_dir(const char *dir, unsigned long *n)
{
	struct dirent **ents;
	char path[4096];
	int cnt = scandir(dir, &ents, skip_dot, name_cmp), err = 0;

	if (cnt < 0) {
		fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < cnt && !err; i++) {
		err = (size_t)snprintf(path, sizeof(path), "%s/%s", dir, ents[i]->d_name) <
				      sizeof(path)
			      ? replay_file(path, n)
			      : -1;
	}
	for (int i = 0; i < cnt; i++)
		free(ents[i]);
	free(ents);
	return err;
}

int main(int argc, char **argv)
{
	unsigned long n = 0;
	struct stat st;
	int err = 0;

	if (LLVMFuzzerInitialize)
		LLVMFuzzerInitialize(&argc, &argv);
	for (int i = 1; i < argc && !err; i++) {
		if (argv[i][0] == '-')
			continue;
		if (stat(argv[i], &st) < 0) {
			fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
			err = -1;
		} else {
			err = S_ISDIR(st.st_mode) ? replay_dir(argv[i], &n) : replay_file(argv[i], &n);
		}
	}
	printf("replayed %lu inputs\n", n);
	return err ? 1 : 0;
}
