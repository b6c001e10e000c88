#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs every unit test binary and integration script; prints one summary
# line "N passed, N failed, N skipped". A test exits 0 (pass), 77 (skip,
# with its reason on stderr/stdout) or anything else (fail).
# Usage: tests/run.sh [NAME-SUBSTRING...]  (default: all)
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
export TOP BUILD
export WEFTD="$BUILD/san/weftd" WEFTCTL="$BUILD/san/weftctl"
export WEFTD_REL="$BUILD/weftd" WEFTCTL_REL="$BUILD/weftctl"
export PYTHON=/usr/bin/python3
# Leak checking stays on for unit tests; daemons under test report through
# their exit status. halt_on_error keeps a sanitizer finding fatal.
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOGDIR=${LOGDIR:-"$BUILD/test-logs"}
mkdir -p "$LOGDIR"

tests=()
for t in "$BUILD"/test/test_*; do
	[ -x "$t" ] && tests+=("$t")
done
for t in "$TOP"/tests/integration/test_*.sh; do
	[ -f "$t" ] && tests+=("$t")
done

want() {
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	local n
	for n in "${FILTERS[@]}"; do
		case "$1" in *"$n"*) return 0 ;; esac
	done
	return 1
}
FILTERS=("$@")

pass=0 fail=0 skip=0 failed=()
start_all=$(date +%s)
for t in "${tests[@]}"; do
	name=$(basename "$t")
	name=${name%.sh}
	want "$name" || continue
	log="$LOGDIR/$name.log"
	t0=$(date +%s)
	if [ "${t%.sh}" != "$t" ]; then
		timeout -k 10 600 bash "$t" >"$log" 2>&1
	else
		timeout -k 10 600 "$t" >"$log" 2>&1
	fi
	rc=$?
	dt=$(($(date +%s) - t0))
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-32s %4ss\n' "$name" "$dt" ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-32s %s\n' "$name" "$(grep -m1 -i 'skip' "$log")" ;;
	*) fail=$((fail + 1)); failed+=("$name")
	   printf 'FAIL  %-32s %4ss (exit %d)\n' "$name" "$dt" "$rc"
	   echo "----- last lines of $log -----"; tail -n 40 "$log"; echo "-----" ;;
	esac
	# Test-case counts from cmocka, for the record.
	grep -E '^\[  (PASSED|FAILED)  \]' "$log" | sed 's/^/        /'
done
echo "total time: $(($(date +%s) - start_all))s; logs in $LOGDIR"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
