#!/bin/bash
# SPDX-License-Identifier: MIT
# Runs every unit test binary (tests/unit), every in-process multi-node
# scenario (tests/sim), every fuzz target over its seed corpus and every
# integration script; prints one summary line
# "N passed, N failed, N skipped". A test exits 0 (pass), 77 (skip, with its
# reason on stdout/stderr) or anything else (fail).
#
# Skips tell the truth:
#  - cmocka test cases that call skip() ("[  SKIPPED ]" lines) are counted
#    and listed, not hidden inside a passing binary;
#  - run as root (as CI runs), nothing may skip: a test that exits 77 or has
#    skipped cmocka cases is a FAIL, with its reason shown. Every test
#    dependency is installed by `make check-deps`, and the only legitimate
#    skip reason left is "not root".
#  - a fuzz target (tests/fuzz/fuzz_*.c) without a corpus directory
#    (tests/fuzz/corpus/<target>/) or without its binary fails.
# Usage: [TEST_JOBS=N] tests/run.sh [FILTER...]  (default: all; N tests at
# a time, default 2, see below). A FILTER that names a
# module (a folder of userspace/) selects that module's tests, test_MODULE_*
# (unit tests and integration scripts; "sim" selects the tests/sim
# scenarios); any other FILTER selects the tests whose name contains it.
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
ASAN_BASE=${ASAN_OPTIONS:-abort_on_error=0:halt_on_error=1:detect_leaks=1}
UBSAN_BASE=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
LOGDIR=${LOGDIR:-"$BUILD/test-logs"}
# Each test's time limit (s); long runs by hand raise it (docs/FUZZING.md).
TEST_TIMEOUT=${TEST_TIMEOUT:-600}
mkdir -p "$LOGDIR"
ROOT=0
[ "$(id -u)" -eq 0 ] && ROOT=1

# Test kinds: unit binaries, sim scenario binaries, fuzz replays
# ("fuzz:NAME"), integration scripts. Binaries are found from their
# sources, so that one left in $BUILD by a renamed test never runs.
tests=()
for s in "$TOP"/tests/unit/test_*.c; do
	t="$BUILD/test/$(basename "$s" .c)"
	[ -x "$t" ] && tests+=("$t")
done
for s in "$TOP"/tests/sim/test_*.c; do
	t="$BUILD/sim/$(basename "$s" .c)"
	[ -x "$t" ] && tests+=("$t")
done
for t in "$TOP"/tests/fuzz/fuzz_*.c; do
	[ -f "$t" ] && tests+=("fuzz:$(basename "$t" .c)")
done
for t in "$TOP"/tests/integration/test_*.sh; do
	[ -f "$t" ] && tests+=("$t")
done

want() {
	[ ${#FILTERS[@]} -eq 0 ] && return 0
	local n
	for n in "${FILTERS[@]}"; do
		if [ -n "$n" ] && [ -d "$TOP/userspace/$n" ]; then
			case "$1" in "test_$n" | "test_${n}_"*) return 0 ;; esac
		else
			case "$1" in *"$n"*) return 0 ;; esac
		fi
	done
	return 1
}
FILTERS=("$@")

# fuzz_replay NAME: run the target once over every file of its corpus (no
# mutation, nothing written), linked with tests/fuzz/replay.c on the
# sanitized build (build/fuzz-replay/NAME; the libFuzzer binary of make
# fuzz takes the same arguments); a crash, leak, sanitizer report or
# invariant abort is a failure.
fuzz_replay() {
	local bin="$BUILD/fuzz-replay/$1" corpus="$TOP/tests/fuzz/corpus/$1"
	if [ ! -x "$bin" ]; then
		echo "FAIL: $bin not built (make test builds it)"
		return 1
	fi
	if [ ! -d "$corpus" ] || [ -z "$(ls -A "$corpus")" ]; then
		echo "FAIL: no seed corpus: tests/fuzz/corpus/$1/ is missing or empty"
		return 1
	fi
	echo "replaying $(ls -A "$corpus" | wc -l) inputs of $corpus"
	"$bin" -runs=0 "$corpus"
}

# The reason a test gave for skipping: its SKIP lines (first 3).
skip_reason() {
	grep -i 'skip' "$1" | grep -v -e '^\[  SKIPPED \]' -e 'SKIPPED TEST' | head -n 3 | tr '\n' ' '
}

# Two tests at a time by default (TEST_JOBS=N; 1: one after the other):
# most integration tests wait on daemons, timers and the network, so a
# second one fills the other CPU. Each keeps its own temporary directory,
# namespaces (named after its shell's PID), random ports, log and
# sanitizer directory. The tests named in ALONE run with nothing beside
# them: they count packets or drops under a flood, measure a transfer,
# or keep both CPUs busy themselves (docs/ARCHITECTURE.md "Two tests at a
# time").
JOBS=${TEST_JOBS:-2}
ALONE=" test_flood_priority test_xdp_flood test_xdp_dense test_quic_jumbo test_blake3_tsan test_package test_lab test_fuzz_live "
alone() { [ "$JOBS" -le 1 ] || case "$ALONE" in *" $1 "*) return 0 ;; esac; return 1; }

# run_test T NAME: one test, in the background; its exit status, wall and
# CPU seconds (its processes' user + system time, those it reaped) go to
# $LOGDIR/NAME.rc when it ends.
run_test() {
	local t=$1 name=$2 log="$LOGDIR/$2.log" sandir="$LOGDIR/san-$2" t0 rc dt
	# Sanitizer reports of every process the test starts (daemons whose
	# own logs live in the test's temporary directory too) land in
	# $LOGDIR/san-NAME/ and are appended to the test's log below, so a
	# failure in CI shows its stack.
	rm -rf "$sandir" && mkdir -p "$sandir"
	export ASAN_OPTIONS="$ASAN_BASE:log_path=$sandir/asan"
	export UBSAN_OPTIONS="$UBSAN_BASE:log_path=$sandir/ubsan"
	export WEFT_SANDIR="$sandir"
	t0=$(date +%s)
	case "$t" in
	fuzz:*) fuzz_replay "$name" >"$log" 2>&1 ;;
	*.sh) timeout -k 10 "$TEST_TIMEOUT" bash "$t" >"$log" 2>&1 ;;
	*) timeout -k 10 "$TEST_TIMEOUT" "$t" >"$log" 2>&1 ;;
	esac
	rc=$?
	dt=$(($(date +%s) - t0))
	for f in "$sandir"/*; do
		[ -f "$f" ] || continue
		echo "----- sanitizer report $(basename "$f") -----"
		cat "$f"
	done >>"$log"
	rmdir "$sandir" 2>/dev/null
	# children's user and system time, as `times` prints them ("1m2.5s")
	# (`times` itself, not in a command substitution's subshell, which
	# has no children)
	times >"$LOGDIR/$name.rc.tmp"
	cpu=$(tail -n 1 "$LOGDIR/$name.rc.tmp" |
		awk '{ s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] } printf "%d", s + 0.5 }')
	echo "$rc $dt $cpu" >"$LOGDIR/$name.rc.tmp" && mv "$LOGDIR/$name.rc.tmp" "$LOGDIR/$name.rc"
}

# report NAME: count and print a finished test's result.
report() {
	local name=$1 log="$LOGDIR/$1.log" rc dt cpu nskip skipped_cases why
	read -r rc dt cpu <"$LOGDIR/$name.rc"
	rm -f "$LOGDIR/$name.rc"
	# cmocka: "[  SKIPPED ] N test(s), listed below:" per group, then one
	# "[  SKIPPED ] name" line per case.
	nskip=$(sed -n 's/^\[  SKIPPED \] \([0-9][0-9]*\) test(s).*/\1/p' "$log" |
		awk '{ s += $1 } END { print s + 0 }')
	skipped_cases=$(grep -E '^\[  SKIPPED \] ' "$log" | grep -v 'test(s)' | sed 's/^\[  SKIPPED \] //' |
		sort -u | tr '\n' ' ')
	if [ "$rc" -eq 77 ] && [ $ROOT -eq 1 ]; then
		rc=1
		why="skipped while running as root: $(skip_reason "$log")"
	elif [ "$rc" -eq 0 ] && [ "$nskip" -gt 0 ] && [ $ROOT -eq 1 ]; then
		rc=1
		why="$nskip cmocka case(s) skipped while running as root: $skipped_cases; $(skip_reason "$log")"
	else
		why=""
	fi
	case $rc in
	0) pass=$((pass + 1)); printf 'PASS  %-32s %4ss  cpu %4ss\n' "$name" "$dt" "$cpu"
	   if [ "$nskip" -gt 0 ]; then
		case_skip=$((case_skip + nskip))
		printf '      %d cmocka case(s) skipped: %s(%s)\n' "$nskip" "$skipped_cases" "$(skip_reason "$log")"
	   fi ;;
	77) skip=$((skip + 1)); printf 'SKIP  %-32s %s\n' "$name" "$(skip_reason "$log")" ;;
	*) fail=$((fail + 1)); failed+=("$name")
	   printf 'FAIL  %-32s %4ss  cpu %4ss (exit %d)\n' "$name" "$dt" "$cpu" "$rc"
	   [ -n "$why" ] && echo "      $why"
	   echo "----- last lines of $log -----"; tail -n 40 "$log"; echo "-----" ;;
	esac
	# Test-case counts from cmocka, for the record.
	grep -E '^\[  (PASSED|FAILED)  \]' "$log" | sed 's/^/        /'
}

# Results are printed in the order the tests started.
queue=()
flush() {
	while [ ${#queue[@]} -gt 0 ] && [ -f "$LOGDIR/${queue[0]}.rc" ]; do
		report "${queue[0]}"
		queue=("${queue[@]:1}")
	done
}
running() { jobs -rp | wc -l; }
# wait_below N: until fewer than N tests run, printing those that ended.
wait_below() {
	while [ "$(running)" -ge "$1" ]; do
		wait -n 2>/dev/null
		flush
	done
	flush
}

pass=0 fail=0 skip=0 case_skip=0 failed=()
start_all=$(date +%s)
echo "running $([ "$JOBS" -gt 1 ] && echo "$JOBS tests at a time" || echo "one test at a time") (TEST_JOBS)"
for t in "${tests[@]}"; do
	case "$t" in
	fuzz:*) name=${t#fuzz:} ;;
	*.sh) name=$(basename "$t" .sh)
	      # a script named as a unit or sim test keeps its .sh: each
	      # has a log (and sanitizer reports) of its own
	      [ -e "$TOP/tests/unit/$name.c" ] || [ -e "$TOP/tests/sim/$name.c" ] &&
		      name="$name.sh" ;;
	*) name=$(basename "$t") ;;
	esac
	want "$name" || continue
	rm -f "$LOGDIR/$name.rc"
	if alone "$name"; then
		wait_below 1
		run_test "$t" "$name" &
		queue+=("$name")
		wait_below 1
	else
		wait_below "$JOBS"
		run_test "$t" "$name" &
		queue+=("$name")
	fi
done
wait_below 1
echo "total time: $(($(date +%s) - start_all))s; logs in $LOGDIR"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
[ $case_skip -gt 0 ] && echo "skipped: $skip test program(s) and $case_skip cmocka case(s) (listed above)"
echo "$pass passed, $fail failed, $((skip + case_skip)) skipped"
[ $fail -eq 0 ]
