#!/bin/bash
# SPDX-License-Identifier: MIT
# `weftctl hash` against b3sum (the reference implementation's CLI) on
# pseudo-random files (fixed seed) of sizes around every chunk and subtree
# boundary up to ~20 MiB, single- and multi-threaded, several files in one
# command, stdin, --no-names, and a missing file. Outputs must be identical.
# The sizes run at every SIMD level this CPU has (weftctl hash --simd
# LEVEL: portable, sse41, avx2, avx512); WEFT_BLAKE3_SIMD is checked to cap
# the kernel (--kernel) and a bad value or level is a usage error. Each
# level also reads and maps the files (--io read / map, WEFT_HASH_IO).
set -u
. "$TOP/tests/lib/common.sh"
command -v b3sum >/dev/null 2>&1 || skip "b3sum not installed (Debian package b3sum)"
[ -x "$WEFTCTL" ] || fail "$WEFTCTL not built"
prologue
dir=$D
fail=0

sizes="0 1 63 64 65 1023 1024 1025 2047 2048 2049 4095 4096 4097 8191 8192 8193
16383 16384 16385 31744 65535 65536 65537 1048577 20971523"
# Deterministic content: Python's Mersenne Twister seeded with the size.
"$PYTHON" - "$dir" $sizes <<'EOF' || { echo "FAIL: could not make input files"; exit 1; }
import random, sys
d = sys.argv[1]
for s in sys.argv[2:]:
    n = int(s)
    r = random.Random(n)
    with open(f"{d}/f{n}", "wb") as f:
        f.write(r.getrandbits(8 * n).to_bytes(n, "little") if n else b"")
EOF

check() { # description, expected file, actual file
	if cmp -s "$2" "$3"; then
		echo "ok   $1"
	else
		echo "FAIL $1"
		diff "$2" "$3" | head -5
		fail=1
	fi
}

cd "$dir" || exit 1
levels=""
for lv in portable sse41 avx2 avx512; do
	if "$WEFTCTL" hash --simd "$lv" --kernel >lvl 2>/dev/null; then
		levels="$levels $lv"
		echo "$lv" >want
		check "--simd $lv --kernel" want lvl
		WEFT_BLAKE3_SIMD=$lv "$WEFTCTL" hash --kernel >lvl
		check "WEFT_BLAKE3_SIMD=$lv --kernel" want lvl
	else
		echo "ok   level $lv: not on this CPU (weftctl hash --simd $lv: exit $?)"
		# A cap the CPU lacks runs the best level below it, and hashes.
		WEFT_BLAKE3_SIMD=$lv "$WEFTCTL" hash --kernel >lvl
		[ "$lv" = avx512 ] || [ "$lv" = avx2 ] || { echo "FAIL $lv missing"; fail=1; }
	fi
done
echo "levels tested:$levels"
for s in $sizes; do
	b3sum "f$s" >"exp" 2>&1
	"$WEFTCTL" hash "f$s" >"got" 2>&1
	check "size $s" exp got
	if [ "$s" -ge 65536 ]; then
		"$WEFTCTL" hash --threads 2 "f$s" >"got" 2>&1
		check "size $s --threads 2" exp got
		"$WEFTCTL" hash --threads 3 "f$s" >"got" 2>&1
		check "size $s --threads 3" exp got
	fi
done

files=$(for s in $sizes; do printf 'f%s ' "$s"; done)
# shellcheck disable=SC2086
b3sum $files >exp
# Each level forced, all sizes in one command (a wrong line names its file).
for lv in $levels; do
	# shellcheck disable=SC2086
	"$WEFTCTL" hash --simd "$lv" --threads 1 $files >got 2>&1
	check "all sizes --simd $lv --threads 1" exp got
	# shellcheck disable=SC2086
	"$WEFTCTL" hash --simd "$lv" --threads 2 $files >got 2>&1
	check "all sizes --simd $lv --threads 2" exp got
	# shellcheck disable=SC2086
	WEFT_BLAKE3_SIMD=$lv "$WEFTCTL" hash --threads 3 $files >got 2>&1
	check "all sizes WEFT_BLAKE3_SIMD=$lv --threads 3" exp got
	# Both ways a file reaches the hasher, whatever the probe would choose.
	for io in read map; do
		for t in 1 2; do
			# shellcheck disable=SC2086
			"$WEFTCTL" hash --simd "$lv" --io $io --threads $t $files >got 2>&1
			check "all sizes --simd $lv --io $io --threads $t" exp got
		done
	done
	# shellcheck disable=SC2086
	WEFT_HASH_IO=map "$WEFTCTL" hash --simd "$lv" --threads 3 $files >got 2>&1
	check "all sizes --simd $lv WEFT_HASH_IO=map --threads 3" exp got
done

# shellcheck disable=SC2086
"$WEFTCTL" hash --threads 2 $files >got
check "all files in one command" exp got

b3sum --no-names f4097 f1048577 >exp
"$WEFTCTL" hash --no-names f4097 f1048577 >got
check "--no-names" exp got

b3sum - <f1048577 >exp
"$WEFTCTL" hash - <f1048577 >got
check "stdin (-)" exp got
cat f20971523 | b3sum >exp
cat f20971523 | "$WEFTCTL" hash >got
check "stdin pipe, no file argument" exp got

printf 'x' >'back\slash'
b3sum 'back\slash' f1 >exp
"$WEFTCTL" hash 'back\slash' f1 >got
check "escaped file name" exp got

# A missing file: reported, the others still hashed, exit status 1 (like b3sum).
b3sum f1 missing f2047 >exp 2>/dev/null
b3rc=$?
"$WEFTCTL" hash f1 missing f2047 >got 2>err
rc=$?
check "missing file: other lines" exp got
if [ "$rc" -ne 1 ] || [ "$b3rc" -ne 1 ] || ! grep -q "missing" err; then
	echo "FAIL missing file: exit $rc (b3sum $b3rc), stderr: $(cat err)"
	fail=1
else
	echo "ok   missing file: exit 1, stderr: $(cat err)"
fi

"$WEFTCTL" hash --threads 0 f1 >/dev/null 2>&1
rc=$?
if [ "$rc" -ne 2 ]; then
	echo "FAIL --threads 0 should be a usage error (exit 2), got $rc"
	fail=1
fi

"$WEFTCTL" hash --simd avx3 f1 >/dev/null 2>&1
rc=$?
WEFT_BLAKE3_SIMD=bogus "$WEFTCTL" hash f1 >/dev/null 2>&1
rc2=$?
"$WEFTCTL" hash --io mmap f1 >/dev/null 2>&1
rc3=$?
WEFT_HASH_IO=bogus "$WEFTCTL" hash f1 >/dev/null 2>&1
rc4=$?
if [ "$rc" -ne 2 ] || [ "$rc2" -ne 2 ] || [ "$rc3" -ne 2 ] || [ "$rc4" -ne 2 ]; then
	echo "FAIL --simd avx3 / WEFT_BLAKE3_SIMD=bogus / --io mmap / WEFT_HASH_IO=bogus should be usage errors (exit 2), got $rc / $rc2 / $rc3 / $rc4"
	fail=1
else
	echo "ok   unknown --simd level, WEFT_BLAKE3_SIMD, --io and WEFT_HASH_IO values: exit 2"
fi

[ $fail -eq 0 ] && echo "PASS: weftctl hash matches b3sum"
exit $fail
