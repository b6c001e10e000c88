#!/bin/bash
# SPDX-License-Identifier: MIT
# QUIC between two weftd in two namespaces joined by a veth pair, over the
# io_uring backend and over AF_XDP (--xdp eth0): handshake + ping with key
# pinning (right key, wrong key), IPv6, 64 MiB each way at once checked by
# hash, an echo transfer, 24 concurrent connections, loss and reordering
# (netem), idle timeout, and a peer killed with SIGKILL. Node 1 runs with
# fair windows (quic.fair_windows, docs/QUIC.md), so each of these also
# passes through them; its stats and metrics show them.
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
command -v tc >/dev/null || skip "tc (iproute2) missing"

IP1=$(netns_ip4 1) IP2=$(netns_ip4 2) IP62=$(netns_ip6 2)
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }
nconns() { api "$1" GET /v1/quic/conns | json_get conns | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)))'; }

start_node() { # N MODE
	# Idle timeout 3 s (default 30 s) so the idle and dead-peer checks are quick.
	local fair=false

	[ "$1" = 1 ] && fair=true
	netns_weftd "$1" "$2" "$D" --workers 2 --set quic.idle_timeout_ms=3000 \
		--set quic.fair_windows=$fair
}

stop_nodes() {
	[ -n "${PID1:-}" ] && stop_weftd "$PID1" >/dev/null 2>&1
	[ -n "${PID2:-}" ] && kill -0 "$PID2" 2>/dev/null && stop_weftd "$PID2" >/dev/null 2>&1
	PID1="" PID2=""
	rm -rf "$D/n1" "$D/n2"
}

bench() { # FROM TO_TARGET BYTES MODE -> prints JSON
	api "$1" POST /v1/quic/bench -d "{\"peer\":\"$2\",\"bytes\":$3,\"mode\":\"$4\",\"seed\":$5}"
}

run_mode() {
	local mode=$1 K1 K2 out i ok r1 r2
	start_node 1 "$mode"
	start_node 2 "$mode"
	WEFTD_LOG=$LOG2
	grep -q "io $mode" "$LOG1" || fail "$mode: node 1 did not run the $mode backend: $(grep ready "$LOG1")"
	K1=$(api 1 GET /v1/status | json_get node_key)
	K2=$(api 2 GET /v1/status | json_get node_key)

	# handshake, pinning, address-only dial, IPv6
	out=$(ctl 1 quic ping "$K2@$IP2:4433") || fail "$mode: ping with the right key: $out"
	echo "$out" | grep -q "peer $K2" || fail "$mode: ping reported another key: $out"
	out=$(ctl 1 --json quic ping "$IP2") || fail "$mode: ping by address: $out"
	[ "$(echo "$out" | json_get peer_key)" = "$K2" ] || fail "$mode: address dial recorded $out"
	out=$(ctl 2 quic ping "$K1@[$(netns_ip6 1)]:4433") || fail "$mode: IPv6 ping: $out"
	out=$(ctl 1 quic ping "${K1}@$IP2:4433" 2>&1) && fail "$mode: wrong key accepted: $out"
	echo "$out" | grep -q "different node key" || fail "$mode: wrong key: unclear error: $out"
	pass "$mode: handshake, key pinning (right key ok, wrong key refused), IPv4 and IPv6"

	# 64 MiB each way at the same time, checked by BLAKE2b of what arrived
	bench 1 "$K2@$IP2" 67108864 sink 1 >"$D/b12" &
	r1=$!
	bench 2 "$K1@$IP1" 67108864 sink 2 >"$D/b21" &
	r2=$!
	wait $r1 $r2
	for f in b12 b21; do
		[ "$(json_get ok <"$D/$f")" = True ] || fail "$mode: 64 MiB transfer $f: $(cat "$D/$f")"
		[ "$(json_get sent_hash <"$D/$f")" = "$(json_get peer_hash <"$D/$f")" ] || fail "$mode: hash"
	done
	pass "$mode: 64 MiB both ways at once, hashes equal ($(json_get mbit_s <"$D/b12") / $(json_get mbit_s <"$D/b21") Mbit/s)"
	if [ "$mode" = uring ]; then
		# The kernel steers each datagram to the worker owning its
		# connection (quic_cid_route_cbpf): next to none is handed over,
		# the dialer's replies included (before: every datagram of a
		# connection the hash put on the other worker). Not exactly none:
		# the program sees a GRO train's first datagram, and the two
		# connections here share one 4-tuple (both dial from 4433), so
		# a train mixing them now and then lands whole on one worker
		# (6 of ~95,000 seen in one CI run).
		local fwd
		fwd=$(for n in 1 2; do api "$n" GET /v1/quic/stats; echo; done | "$PYTHON" -c '
import json, sys
f = rx = 0
for line in sys.stdin:
    if line.strip():
        for w in json.loads(line)["workers"]:
            f += w.get("fwd_in", 0) + w.get("fwd_drop", 0)
            rx += w.get("rx_datagrams", 0)
print(f, rx)')
		[ "${fwd% *}" -le $((${fwd#* } / 200)) ] ||
			fail "uring: ${fwd% *} of ${fwd#* } datagrams handed between workers (the steering missed)"
		pass "uring: datagrams reach their connection's worker (${fwd% *} of ${fwd#* } handed over)"
	fi
	out=$(bench 1 "$IP62" 4194304 echo 3)
	[ "$(echo "$out" | json_get ok)" = True ] || fail "$mode: 4 MiB echo over IPv6: $out"
	[ "$(echo "$out" | json_get bytes_back)" = 4194304 ] || fail "$mode: echo length: $out"
	pass "$mode: 4 MiB echoed over IPv6 intact"

	# concurrent connections (each ping is its own connection)
	local pids=() t0
	t0=$(date +%s%N)
	for i in $(seq 1 24); do
		api 1 POST /v1/quic/ping -d "{\"peer\":\"$K2@$IP2\",\"keep\":true}" >"$D/p$i" &
		pids+=($!)
	done
	wait "${pids[@]}"
	ok=0
	for i in $(seq 1 24); do
		[ "$(json_get peer_key <"$D/p$i" 2>/dev/null)" = "$K2" ] && ok=$((ok + 1))
	done
	[ "$ok" = 24 ] || fail "$mode: only $ok of 24 concurrent connections worked"
	# The kept connections end by idle timeout (3 s here): count them only
	# while none can have timed out yet, which a loaded machine may miss.
	local n ms
	n=$(nconns 1)
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$ms" -lt 2500 ]; then
		[ "$n" -ge 24 ] || fail "$mode: conns list has $n entries after $ms ms, want 24"
		ctl 1 quic conns | grep -q "$IP2:4433" || fail "$mode: conns table lacks the peer"
	else
		# The same holds for the peer's row (seen at load 20: 7.5 s).
		echo "note: $mode: conns counted after $ms ms (idle timeout 3 s): $n listed, not checked"
	fi
	# weftctl lists the peer: a kept connection opened just before, checked
	# again with a new one while the listing came too late (3 s idle
	# timeout) to say anything, so that a loaded machine cannot fail it.
	local listed=0 try
	for try in 1 2 3 4 5 6 7 8 9 10; do
		t0=$(date +%s%N)
		api 1 POST /v1/quic/ping -d "{\"peer\":\"$K2@$IP2\",\"keep\":true}" >/dev/null
		if ctl 1 quic conns | grep -q "$IP2:4433"; then
			listed=1
			break
		fi
		ms=$((($(date +%s%N) - t0) / 1000000))
		[ "$ms" -ge 2500 ] || fail "$mode: conns table lacks the peer ($ms ms after its ping)"
	done
	[ "$listed" = 1 ] || fail "$mode: conns table never listed the peer within 2.5 s of a ping (10 tries)"
	pass "$mode: 24 concurrent connections, listed by weftctl quic conns"

	# idle timeout (3 s): the kept connections go away on both sides
	wait_for '[ "$(nconns 1)" = 0 ] && [ "$(nconns 2)" = 0 ]' 80 ||
		fail "$mode: idle connections still listed: $(nconns 1) / $(nconns 2)"
	[ "$(api 1 GET /v1/quic/stats | json_get total idle_timeouts)" -ge 24 ] ||
		fail "$mode: idle timeouts not counted"
	pass "$mode: idle timeout closes and frees connections on both sides"

	# loss and reordering on node 1's link
	if netns_exec 1 tc qdisc add dev eth0 root netem loss 5% delay 5ms 2ms reorder 10% \
		2>/dev/null; then
		out=$(bench 1 "$K2@$IP2" 2097152 sink 4)
		netns_exec 1 tc qdisc del dev eth0 root
		[ "$(echo "$out" | json_get ok)" = True ] || fail "$mode: transfer under netem: $out"
		pass "$mode: 2 MiB with 5% loss, delay and 10% reordering arrives intact"
	else
		# Kernel without sch_netem: test_quic_loss.sh runs the same check
		# through a lossy relay we control, and test_quic_core over an
		# in-memory link (seeded 5% loss + 10% reorder).
		echo "note: $T_NAME: netem unavailable here; see test_quic_loss (lossy relay)"
	fi

	# a peer that dies: start a long transfer, kill -9 the receiver
	bench 1 "$K2@$IP2" 1073741824 sink 5 >"$D/bdead" &
	r1=$!
	wait_for '[ "$(nconns 2)" -ge 1 ]' 50 || fail "$mode: bulk connection not seen"
	sleep 0.3
	kill -9 "$PID2"
	wait "$PID2" 2>/dev/null
	PID2=""
	wait $r1
	grep -q '"error"' "$D/bdead" || fail "$mode: transfer to a dead peer did not fail: $(cat "$D/bdead")"
	wait_for '[ "$(nconns 1)" = 0 ]' 80 || fail "$mode: connection to the dead peer still listed"
	pass "$mode: peer killed: transfer fails cleanly, connection freed after the idle timeout"
	WEFTD_LOG=$LOG1
	api 1 GET /metrics | grep -q '^weft_quic_conns_established_total' || fail "$mode: metrics"
	api 1 GET /metrics | grep -q '^weft_quic_fair_rate_bytes{worker="0"}' ||
		fail "$mode: fair-window metrics"
	api 1 GET /v1/quic/stats | json_get total fair_holds >/dev/null || fail "$mode: fair_holds"
	stop_nodes
}

run_mode uring
run_mode xdp
finish
