#!/bin/bash
# SPDX-License-Identifier: MIT
# The content announcer keeps a real per-second budget (8 announcements a
# second, depth 8) across wake-ups: 60 public adds in a row, each of which
# wakes the announcer, must not start more than 8 + 8*t announcements in the
# first t seconds (it used to start 8 per wake-up: ~85 DHT queries a second
# to a lone contact, enough to get the node banned there). All 60 are
# announced in the end.
set -u
. "$TOP/tests/lib/common.sh"
prologue
start_weftd "$D" --state-dir "$D" --io uring --quic-port $QP --dht-port $DP
mkdir -p "$D/files"
for i in $(seq 1 60); do echo "file $i $RANDOM" >"$D/files/f$i"; done
started() { CTL --json content stats | "$PYTHON" -c 'import json,sys
v=json.load(sys.stdin); print(v["announces"] + v["announce_failures"])'; }
s0=$(started)
t0=$(date +%s%N)
for i in $(seq 1 60); do CTL content add "$D/files/f$i" >/dev/null || fail "add $i"; done
# Sample for 3 s: never more than the budget allows.
max_over=-1000
for _ in $(seq 1 30); do
	n=$(($(started) - s0))
	ms=$((($(date +%s%N) - t0) / 1000000))
	allowed=$((8 + 8 * ms / 1000 + 1))
	[ "$n" -le "$allowed" ] || fail "$n announcements started after $ms ms (budget allows $allowed)"
	[ $((n - allowed)) -gt $max_over ] && max_over=$((n - allowed))
	sleep 0.1
done
pass "announcements within 8/s across wake-ups (closest to the budget: $max_over)"
# Each add announces its share and its blob: 120 in all, at 8/s ~15 s.
wait_for '[ $(($(started) - s0)) -ge 120 ]' 250 || fail "not all announced: $(($(started) - s0))"
pass "all announced"
stop_weftd "$WEFTD_PID" || fail "stop"
finish
