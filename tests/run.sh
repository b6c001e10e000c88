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
# sanitizer directory. The tests named in ALONE run first, one at a time,
# with nothing beside them: they count packets or drops under a flood,
# measure a transfer, or keep both CPUs busy themselves. The tests named
# in LIGHT spend their time waiting on the wall clock (in-process
# scenarios whose complete nodes sit on timers and deadlines: under 15%
# of their wall time on a CPU in CI's log) and run one at a time in a
# slot of their own beside the N (docs/ARCHITECTURE.md "Two tests at a
# time").
JOBS=${TEST_JOBS:-2}
ALONE=" test_flood_priority test_xdp_flood test_xdp_dense test_quic_jumbo test_blake3_tsan test_package test_lab test_fuzz_live "
LIGHT=" test_sim_relay test_sim_content_seed test_sim_content_follow test_sim_svc_dir
	test_sim_svc_nat test_sim_svc_nat_relay test_sim_dial_fresh test_sim_mailbox test_sim_relay_seen
	test_sim_resolve_unjoined test_sim_svc test_sim_svc_jobs test_sim_dht_boot test_sim_conn test_sim_svc_owner
	test_fault_fds test_quic_hostile test_relay_xdp test_sim_community_nat "
LIGHT=" $(echo $LIGHT) "
alone() { [ "$JOBS" -le 1 ] || case "$ALONE" in *" $1 "*) return 0 ;; esac; return 1; }
light() { [ "$JOBS" -le 1 ] || case "$LIGHT" in *" $1 "*) return 0 ;; esac; return 1; }

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
# The PIDs of the running tests, in the light slot and the others.
light_pids=() other_pids=()
alive() {
	local p r out=()
	r=" $(jobs -rp | tr '\n' ' ') "
	for p in "$@"; do case "$r" in *" $p "*) out+=("$p") ;; esac; done
	echo "${out[@]}"
}
# refresh: print the tests that ended, count those still running.
refresh() {
	flush
	read -ra light_pids <<<"$(alive "${light_pids[@]}")"
	read -ra other_pids <<<"$(alive "${other_pids[@]}")"
}
# step: wait for a test to end (wait -n misses one that ended before it
# was called: callers refresh first), then refresh.
step() {
	wait -n 2>/dev/null
	refresh
}
# start T NAME light|other: run a test in the background.
start() {
	rm -f "$LOGDIR/$2.rc"
	run_test "$1" "$2" &
	if [ "$3" = light ]; then light_pids+=($!); else other_pids+=($!); fi
	queue+=("$2")
}

pass=0 fail=0 skip=0 case_skip=0 failed=()
start_all=$(date +%s)
echo "running $([ "$JOBS" -gt 1 ] && echo "$JOBS tests at a time" || echo "one test at a time") (TEST_JOBS)"
# The tests this run takes, by kind: alone first, then the rest, each
# kind in the order found.
alone_t=() alone_n=() light_t=() light_n=() other_t=() other_n=()
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
	if alone "$name"; then
		alone_t+=("$t") alone_n+=("$name")
	elif light "$name"; then
		light_t+=("$t") light_n+=("$name")
	else
		other_t+=("$t") other_n+=("$name")
	fi
done
for i in "${!alone_t[@]}"; do
	start "${alone_t[$i]}" "${alone_n[$i]}" other
	refresh
	while [ ${#other_pids[@]} -gt 0 ]; do step; done
done
li=0 oi=0
while [ $li -lt ${#light_t[@]} ] || [ $oi -lt ${#other_t[@]} ]; do
	refresh
	if [ $li -lt ${#light_t[@]} ] && [ ${#light_pids[@]} -eq 0 ]; then
		start "${light_t[$li]}" "${light_n[$li]}" light
		li=$((li + 1))
	elif [ $oi -lt ${#other_t[@]} ] && [ ${#other_pids[@]} -lt "$JOBS" ]; then
		start "${other_t[$oi]}" "${other_n[$oi]}" other
		oi=$((oi + 1))
	else
		step
	fi
done
refresh
while [ ${#light_pids[@]} -gt 0 ] || [ ${#other_pids[@]} -gt 0 ]; do step; done
flush
echo "total time: $(($(date +%s) - start_all))s; logs in $LOGDIR"
[ ${#failed[@]} -gt 0 ] && echo "failed: ${failed[*]}"
[ $case_skip -gt 0 ] && echo "skipped: $skip test program(s) and $case_skip cmocka case(s) (listed above)"
echo "$pass passed, $fail failed, $((skip + case_skip)) skipped"
[ $fail -eq 0 ]
