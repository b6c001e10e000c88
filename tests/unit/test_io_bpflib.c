// SPDX-License-Identifier: MIT
/* libbpf and libxdp loaded on first use (include/weft/bpflib.h): a missing
 * library gives the operator's message and every wrapper fails as the
 * library would (-ENOSYS, NULL, nothing), never a crash; present, the
 * wrappers are the libraries' functions (a map written and read back as
 * root, libxdp asked about loopback). The binary links neither library:
 * what it calls goes through the loader. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "weft/bpflib.h"

/* Possible CPUs as the kernel lists them ("0-1", "0,2-5"). */
static int possible_cpus(void)
{
	char buf[256], *p;
	FILE *f = fopen("/sys/devices/system/cpu/possible", "r");
	int n = 0;

	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	for (p = strtok(buf, ",\n"); p; p = strtok(NULL, ",\n")) {
		int a, b;

		if (sscanf(p, "%d-%d", &a, &b) == 2)
			n += b - a + 1;
		else if (sscanf(p, "%d", &a) == 1)
			n++;
	}
	return n;
}

/* In a child (the first load decides for the process's life): a library
 * that is not there. Each check failing exits with its own code. */
static int missing_child(void)
{
	char err[320] = "";
	struct xdp_program *prog;

	if (io_bpflib_loaded())
		return 10;
	if (io_bpflib_load_from("libweft-none.so.0", IO_BPFLIB_LIBXDP, err, sizeof(err)) !=
	    -ELIBACC)
		return 11;
	if (!strstr(err, "libbpf1 libxdp1") || !strstr(err, "libweft-none.so.0"))
		return 12;
	if (io_bpflib_loaded())
		return 13;
	/* the default sonames now: the first answer stands */
	err[0] = 0;
	if (io_bpflib_load(err, sizeof(err)) != -ELIBACC || !strstr(err, "libweft-none.so.0"))
		return 14;
	errno = 0;
	if (bpf_map_update_elem(3, "k", "v", 0) != -ENOSYS || errno != ENOSYS)
		return 15;
	if (bpf_map__name(NULL) || libbpf_num_possible_cpus() != -ENOSYS)
		return 16;
	prog = xdp_program__from_bpf_obj(NULL, "xdp");
	if (prog || libxdp_get_error(prog) != -ENOSYS)
		return 17;
	xdp_program__close(NULL); /* void: nothing, no crash */
	xsk_socket__delete(NULL);
	bpf_object__destroy_skeleton(NULL);
	if (xsk_umem__create(NULL, NULL, 0, NULL, NULL, NULL) != -ENOSYS)
		return 18;
	return 0;
}

static void test_missing(void **state)
{
	pid_t pid = fork();
	int st;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(missing_child());
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

static void test_present(void **state)
{
	char err[320] = "";
	struct xdp_multiprog *mp;
	int n = possible_cpus();

	assert_int_equal(io_bpflib_load(err, sizeof(err)), 0);
	assert_string_equal(err, "");
	assert_true(io_bpflib_loaded());
	assert_int_equal(io_bpflib_load(NULL, 0), 0);
	assert_true(n > 0);
	assert_int_equal(libbpf_num_possible_cpus(), n);
	/* libxdp answers about loopback (an error when nothing is attached,
	 * or what is) */
	mp = xdp_multiprog__get_from_ifindex(1);
	if (!libxdp_get_error(mp))
		xdp_multiprog__close(mp);
	if (geteuid() != 0) {
		print_message("not root: the map round trip is skipped\n");
		return;
	}
	{
		__u32 key = 3, val = 0xfeedbeef, got = 0;
		int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "weft_bpflib", 4, 4, 8, NULL);

		assert_true(fd >= 0);
		assert_int_equal(bpf_map_update_elem(fd, &key, &val, BPF_ANY), 0);
		assert_int_equal(bpf_map_lookup_elem(fd, &key, &got), 0);
		assert_int_equal(got, 0xfeedbeef);
		key = 8; /* past the end */
		assert_true(bpf_map_update_elem(fd, &key, &val, BPF_ANY) < 0);
		close(fd);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_missing),
	    cmocka_unit_test(test_present),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
