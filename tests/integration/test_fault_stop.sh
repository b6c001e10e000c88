#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: a peer stopped (SIGSTOP) in the middle of a transfer and resumed
# (SIGCONT) after longer than the QUIC idle timeout, so that its connection
# is dead on the other side when it wakes (loopback, uring, no root).
#  1. the provider stops: the downloader's requests time out, it keeps the
#     chunks it has, and when the provider wakes it dials it again and the
#     download completes and verifies;
#  2. the downloader stops: when it wakes, its job finds its connection
#     gone, dials again and completes; the provider meanwhile stays alive
#     and answers.
# Quick failure detection (docs/CONTENT.md, test knobs): 3 s idle timeout,
# 2 s request timeout; the provider serves a chunk per 200 ms per serve
# thread so the transfer lasts long enough to stop it in the middle.
set -u
. "$TOP/tests/lib/common.sh"
prologue
export WEFT_CONTENT_REQ_TIMEOUT_MS=2000
AQ=$QP BQ=$((QP + 2))
mkdir -p "$D/a" "$D/b"
WEFT_CONTENT_TEST_SERVE_DELAY_MS=200 start_weftd "$D/a" --state-dir "$D/a" --io uring \
	--quic-port $AQ --dht-port $((AQ + 1)) --set quic.idle_timeout_ms=3000
A=$WEFTD_PID ALOG=$WEFTD_LOG
start_weftd "$D/b" --state-dir "$D/b" --io uring --quic-port $BQ --dht-port $((BQ + 1)) --set quic.idle_timeout_ms=3000
B=$WEFTD_PID BLOG=$WEFTD_LOG
on_exit "kill -CONT $A $B"
ca() { "$WEFTCTL" --socket "$D/a/weftd.sock" "$@"; }
cb() { "$WEFTCTL" --socket "$D/b/weftd.sock" "$@"; }
job() { cb --json content jobs "$1"; }
# dialled N: the downloader's QUIC connections dialled so far
dialled() {
	cb --json quic stats | "$PYTHON" -c 'import json,sys
def f(v):
    if isinstance(v, dict):
        return sum(f(x) if k != "conns_dialed" else x for k, x in v.items())
    if isinstance(v, list):
        return sum(f(x) for x in v)
    return 0
print(f(json.load(sys.stdin)))'
}

# stopped_for PID S: SIGSTOP, S seconds (the fault's length, not a wait
# for something), SIGCONT; fails unless the process was really stopped.
stopped_for() {
	kill -STOP "$1"
	wait_for "grep -q '^State:.*T' /proc/$1/status" 50 || fail "process $1 did not stop"
	sleep "$2"
	kill -CONT "$1"
}

# round N WHO: a 16 MiB file (64 chunks) from a to b; WHO (a PID)
# stopped for 5 s once an eighth of it arrived. Prints the chunks fetched
# at the stop and in all, the retries, and the connections dialled
# during and after the stop.
round() {
	local n=$1 who=$2 id j f0 f1 d0
	"$PYTHON" -c 'import random,sys; random.seed(int(sys.argv[1])); sys.stdout.buffer.write(random.randbytes(16 << 20))' "$n" >"$D/f$n"
	id=$(ca --json content add "$D/f$n" | json_get items 0 id) || fail "add f$n"
	cb --json content get "$id" --from "127.0.0.1:$AQ" --no-wait >"$D/get$n" || fail "get f$n"
	j=$(json_get job <"$D/get$n")
	wait_for 'job "$j" >"$D/pre$n" && [ "$(json_get fetched <"$D/pre$n")" -ge 8 ]' 600 ||
		fail "round $n: no progress: $(job "$j")"
	f0=$(json_get fetched <"$D/pre$n") d0=$(dialled)
	stopped_for "$who" 5
	# the stopped side woke with its connection dead (3 s idle): the job
	# must get going again and finish
	wait_for '[ "$(job "$j" | json_get done)" = True ]' 900 ||
		fail "round $n: the download did not finish after SIGCONT: $(job "$j")"
	job "$j" >"$D/job$n"
	[ "$(json_get state <"$D/job$n")" = done ] || fail "round $n: download failed: $(cat "$D/job$n")"
	cb content get "$id" --out "$D/out$n" >/dev/null || fail "round $n: export"
	cmp -s "$D/f$n" "$D/out$n/$id" || fail "round $n: the downloaded file differs"
	[ "$(b3sum --no-names "$D/out$n/$id")" = "$id" ] || fail "round $n: BLAKE3 differs"
	f1=$(json_get fetched <"$D/job$n")
	echo "$f0 $f1 $(json_get retries <"$D/job$n") $(($(dialled) - d0))"
}

read -r f0 f1 r d < <(round 1 "$A")
[ -n "${d:-}" ] || fail "round 1"
[ "$d" -ge 1 ] || fail "round 1: no new connection after the stop (the old one should have timed out)"
pass "provider stopped 5 s at chunk $f0/64 and resumed: download completes and verifies ($f1 chunks fetched, $r retried, $d connection(s) dialled again)"
kill -0 "$A" && kill -0 "$B" || fail "a daemon died"

read -r f0 f1 r d < <(round 2 "$B")
[ -n "${d:-}" ] || fail "round 2"
pass "downloader stopped 5 s at chunk $f0/64 and resumed: download completes and verifies ($f1 chunks fetched, $r retried, $d connection(s) dialled again)"
ca --json status >/dev/null || fail "provider not answering"

# A stop with the control API's event stream open (what weftctl's
# progress view reads): the stream ends at once, the stop does not wait on
# its reads (up to 2 s a stream before 2026-11-27).
curl -sN --unix-socket "$D/b/weftd.sock" http://weftd/v1/content/events >"$D/ev.out" 2>&1 &
EVJ=$!
wait_for 'grep -q heartbeat "$D/ev.out"' 30 || fail "no event stream: $(cat "$D/ev.out")"
t0=$(date +%s%N)
stop_weftd "$B" || fail "stop b (event stream open)"
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$EVJ"
pass "SIGTERM with an event stream open: exit 0 after $ms ms, the stream ended with the node"
stop_weftd "$A" || fail "stop a"
finish
