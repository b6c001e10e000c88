# SPDX-License-Identifier: MIT
# Shared helpers for integration tests (source it). Provides the prologue
# every script starts with, pass/fail, cleanup hooks, JSON field extraction,
# and starting/stopping weftd.
: "${TOP:?run through tests/run.sh or make test}"
: "${WEFTD:=$TOP/build/san/weftd}" "${WEFTCTL:=$TOP/build/san/weftctl}"
: "${PYTHON:=/usr/bin/python3}"
# Daemons under test: a sanitizer report ends the process with an error.
export ASAN_OPTIONS="${ASAN_OPTIONS:-halt_on_error=1}:detect_leaks=1"

_EXIT_HOOKS=()
on_exit() { _EXIT_HOOKS+=("$*"); }
_run_exit_hooks() {
	local i
	for ((i = ${#_EXIT_HOOKS[@]} - 1; i >= 0; i--)); do eval "${_EXIT_HOOKS[$i]}" 2>/dev/null; done
}
trap _run_exit_hooks EXIT
# kill_job SIG PID: signal PID only while it is a running job of this
# shell. A daemon stopped (and reaped) earlier leaves its PID free, and on a
# machine that cycles through pid_max a later process, another test's or
# another session's, may get it: a bare `kill -9 $PID` at exit killed a
# live-fuzzed weftd in another test that way (docs/FUZZING.md).
kill_job() { jobs -pr | grep -qx "$2" && kill "$1" "$2" 2>/dev/null; return 0; }

T_NAME=$(basename "$0" .sh)
pass() { echo "ok: $T_NAME: [${SECONDS}s] $*"; }
fail() {
	echo "FAIL: $T_NAME: $*" >&2
	[ -n "${WEFTD_LOG:-}" ] && [ -f "$WEFTD_LOG" ] && { echo "--- weftd log:"; tail -n 30 "$WEFTD_LOG"; } >&2
	san_reports >&2
	exit 1
}
# san_reports: print the sanitizer reports of the processes this test
# started (tests/run.sh points ASan/UBSan's log_path at $WEFT_SANDIR);
# returns 1 when there is none.
san_reports() {
	local f found=1
	for f in "${WEFT_SANDIR:-/nonexistent}"/*; do
		[ -f "$f" ] || continue
		echo "--- sanitizer report $(basename "$f"):"
		head -n 60 "$f"
		found=0
	done
	return $found
}
skip() { echo "SKIP: $T_NAME: $*"; exit 77; }
finish() { echo "ok: $T_NAME: all checks passed"; exit 0; }

# prologue [root | netns [N [pair]]]: what every integration script starts
# with, after sourcing this file.
#   root           skip (exit 77) unless run as root;
#   netns [N ...]  the same through netns_require_root, with
#                  tests/lib/netns.sh sourced, then netns_create N [pair]
#                  when N is given (fails the test if that fails);
# then, always: D, a temporary directory /tmp/weft-NAME-XXXXXX removed at
# exit (after the namespaces and the daemons started later), SOCK (a
# single daemon's control socket, $D/weftd.sock) and QP / DP (random QUIC
# and DHT ports, DP = QP + 1). CTL and ctl (below) reach the daemons.
prologue() {
	case "${1:-}" in
	root) [ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)" ;;
	netns)
		. "$TOP/tests/lib/netns.sh"
		netns_require_root
		;;
	esac
	D=$(mktemp -d "/tmp/weft-${T_NAME#test_}-XXXXXX") || fail "mktemp"
	on_exit "rm -rf '$D'"
	if [ "${1:-}" = netns ] && [ -n "${2:-}" ]; then
		netns_create "$2" ${3:+"$3"} || fail "netns setup"
	fi
	SOCK="$D/weftd.sock"
	QP=$((20000 + RANDOM % 20000)) DP=$((QP + 1))
}
# CTL ARGS...: weftctl on the single daemon's socket ($SOCK).
CTL() { "$WEFTCTL" --socket "$SOCK" "$@"; }
# ctl N ARGS...: weftctl on node N's socket ($D/nN/weftd.sock).
ctl() {
	local n=$1
	shift
	"$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"
}

# thread_policy PID COMM_PREFIX: the scheduling policy of PID's first
# thread whose name starts with COMM_PREFIX (field 41 of its stat: 0
# SCHED_OTHER, 3 SCHED_BATCH), empty when it has none
thread_policy() {
	local t
	for t in /proc/$1/task/*; do
		case "$(cat "$t/comm" 2>/dev/null)" in
		"$2"*)
			awk '{ sub(/.*\) /, ""); print $39 }' "$t/stat" 2>/dev/null
			return
			;;
		esac
	done
}

# json_get KEY [KEY...]: read JSON on stdin, print the nested value.
json_get() {
	"$PYTHON" -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1:]:
    v=v[int(k)] if isinstance(v,list) else v[k]
print(v if not isinstance(v,(dict,list)) else json.dumps(v))' "$@"
}

# wait_for "shell condition" [tries (0.1 s each, default 100)]
wait_for() {
	local i
	for ((i = 0; i < ${2:-100}; i++)); do
		eval "$1" && return 0
		sleep 0.1
	done
	return 1
}

# start_weftd STATEDIR [args...]: start in the background (run via $NETNS_EXEC
# when set), wait for its socket to answer; sets WEFTD_PID and WEFTD_LOG.
start_weftd() {
	local dir=$1 sock
	shift
	sock="$dir/weftd.sock"
	local a prev=""
	for a in "$@"; do
		[ "$prev" = "--socket" ] && sock=$a
		prev=$a
	done
	WEFTD_LOG="$dir/weftd.log.$RANDOM"
	# LAN discovery (BEP 14 multicast) off unless a test asks for it
	# (TEST_LAN=on): test nodes must not find other tests' nodes.
	${NETNS_EXEC:-} "$WEFTD" --set "lan.discovery=${TEST_LAN:-off}" "$@" >"$WEFTD_LOG" 2>&1 &
	WEFTD_PID=$!
	on_exit "kill_job -9 $WEFTD_PID"
	wait_for "curl -sf --unix-socket '$sock' http://weftd/v1/status >/dev/null" 300 ||
		fail "weftd did not come up ($sock)"
}

# start_ns_node N BOOT [args...]: weftd in namespace N (state in $D/nN,
# io_uring, 2 workers, QUIC 4433, DHT 6881 bootstrapped from namespace
# BOOT's DHT port); sets PIDn and LOGn.
start_ns_node() {
	local n=$1 boot=$2
	shift 2
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$(netns_ip4 "$boot"):6881" --log-level info "$@"
	eval "PID$n=$WEFTD_PID"
	eval "LOG$n=$WEFTD_LOG"
}

# stop_weftd PID: SIGTERM and wait; fails unless it exits 0 within 20 s.
stop_weftd() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null || return 1
	for ((i = 0; i < 200; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	wait "$pid"
}
