#!/bin/bash
# SPDX-License-Identifier: MIT
# BLAKE3 built as `make tsan` builds it (ThreadSanitizer, -O1: every memory
# access a call), checked on the official vectors at every SIMD level this
# CPU runs (tests/unit/test_blake3_vectors.c, its own sources compiled
# here: no TSan build of the whole library). The kernels bind vectors to
# registers for their inline assembly; GCC keeps such a register only as an
# asm operand, and a call between its assignment and the asm clobbers it.
# The AVX-512 kernel had stores there: the TSan weftd hashed wrong on every
# AVX-512 host (each added file "failed re-verification" at its first
# read, marked bad), while the release and ASan builds, whose stores are
# plain, happened to work. No root; ~20 s.
set -u
. "$TOP/tests/lib/common.sh"
prologue
cd "$TOP" || fail "cd $TOP"
srcs="userspace/blake3/blake3.c userspace/blake3/blake3_portable.c
userspace/blake3/blake3_mt.c userspace/blake3/b3tree.c userspace/common/heap_thread.c
tests/unit/test_blake3_vectors.c"
flags="-std=gnu11 -O1 -g -fsanitize=thread -pthread -fno-strict-aliasing -Iinclude -Iuserspace
-D_GNU_SOURCE"
objs=
for f in $srcs userspace/blake3/blake3_sse41.c userspace/blake3/blake3_avx2.c \
	userspace/blake3/blake3_avx512.c; do
	o="$D/$(basename "${f%.c}").o"
	extra=
	case "$f" in
	*_sse41.c) extra=-msse4.1 ;;
	*_avx2.c) extra=-mavx2 ;;
	*_avx512.c) extra="-mavx512f -mavx512vl" ;;
	esac
	# shellcheck disable=SC2086 # flags are words
	gcc $flags $extra $(pkg-config --cflags jansson cmocka) -c "$f" -o "$o" 2>"$D/cc.err" ||
		fail "compiling $f with -fsanitize=thread: $(head -5 "$D/cc.err")"
	objs="$objs $o"
done
# shellcheck disable=SC2086
gcc -fsanitize=thread -pthread -o "$D/vectors" $objs $(pkg-config --libs jansson cmocka) \
	2>"$D/ld.err" || fail "linking: $(head -5 "$D/ld.err")"
levels=$(grep -o 'avx512f\|avx2\|sse4_1' /proc/cpuinfo | sort -u | tr '\n' ' ')
TSAN_OPTIONS="halt_on_error=1" "$D/vectors" >"$D/out" 2>&1 ||
	fail "the official vectors under ThreadSanitizer (CPU: ${levels:-no SIMD}): $(grep -E 'ERROR|FAIL|differs|WARNING' "$D/out" | head -8)"
grep -q 'PASSED' "$D/out" || fail "no result: $(tail -5 "$D/out")"
pass "BLAKE3 under ThreadSanitizer: the official vectors on every backend this CPU runs (${levels:-portable only})"
finish
