#!/bin/bash
# SPDX-License-Identifier: MIT
# SIGTERM while DHT lookups are still running (issue 30, item 1: the stop
# path's heap-use-after-free). weftd (ASan build) whose only DHT contact is
# stopped (SIGSTOP), so every lookup waits out its query timeouts: a service find, a
# content get and a DHT lookup are started through the control socket, and
# SIGTERM arrives while they run. weftd must exit 0 with no sanitizer
# report. Before the fix the service find's lookup ended (cancelled) inside
# dhtnode_free, after svc_node_free had freed the find job its callback
# writes into: found by the live fuzzing (docs/FUZZING.md).
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2
# B: the DHT contact, stopped (SIGSTOP) once T knows it: T's lookups then
# wait out their query timeouts.
mkdir -p "$D/n1"
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring \
	--workers 1 --quic-port 4433 --dht-port 6881
PIDB=$WEFTD_PID
on_exit "kill -CONT $PIDB"
for round in 1 2 3; do
	mkdir -p "$D/r$round"
	kill -CONT "$PIDB"
	NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/r$round" --state-dir "$D/r$round" \
		--io uring --workers 1 --quic-port 4433 --dht-port 6881 --bootstrap "$(netns_ip4 1):6881"
	PID=$WEFTD_PID
	S="$D/r$round/weftd.sock"
	wait_for '[ "$(curl -s --unix-socket "$S" http://weftd/v1/dht/status | json_get nodes4)" -ge 1 ]' 300 ||
		fail "round $round: T does not know B"
	kill -STOP "$PIDB"
	# each request gives up after 0.3 s; the daemon's lookups go on
	curl -s --max-time 0.3 --unix-socket "$S" http://weftd/v1/svc/find/nothing-$round >/dev/null &
	c1=$!
	curl -s --max-time 0.3 --unix-socket "$S" -H 'Content-Type: application/json' \
		--data "{\"id\": \"$(printf '%064d' $round)\"}" http://weftd/v1/content/get >/dev/null &
	c2=$!
	curl -s --max-time 0.3 --unix-socket "$S" -H 'Content-Type: application/json' \
		--data "{\"target\": \"$(printf '%040d' $round)\"}" http://weftd/v1/dht/find-node >/dev/null &
	c3=$!
	wait $c1 $c2 $c3
	stop_weftd "$PID"
	rc=$?
	[ "$rc" = 0 ] || fail "round $round: exit status $rc after SIGTERM with lookups running"
	grep -q "Sanitizer" "$WEFTD_LOG" && fail "round $round: $(grep -A12 Sanitizer "$WEFTD_LOG" | head -30)"
done
kill -CONT "$PIDB"
san_reports && fail "sanitizer report (above)"
pass "SIGTERM with a service find, a content get and a DHT lookup running: exit 0, no sanitizer report (3 rounds)"
finish
