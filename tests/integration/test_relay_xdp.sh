#!/bin/bash
# SPDX-License-Identifier: MIT
# Relay data plane in namespaces: ends A (h1) and B (h2) and a relay (h3)
# on one bridge. The relay (tests/tools/relay_node: engine + relay_fwd, one
# circuit) runs in xdp mode (weft's XDP program, generic mode, on eth0) and
# then in uring mode. Each end binds (STUN with WEFT-CIRCUIT), then A sends
# 200 datagrams of 1200 bytes that B echoes, each checked byte for byte
# (the ends send full UDP checksums, tx offload off, so the receiving
# kernels verify the relay's incremental checksum update).
#   xdp:   every datagram forwarded by the program: the circuit's map
#          counters count 200 + 200 (more if one was sent again after a
#          loss), relay_tx counts their sum, and userspace
#          forwarded none (user_pkts 0); a stranger's datagram to the port
#          goes to userspace and is dropped there (drop_unknown); both
#          ends bind again from new ports and exchange again: the hops
#          are rewritten in place, counters go on, userspace forwards none.
#   xdp6:  the same over IPv6 (hop limit, UDP checksum over the IPv6
#          pseudo-header), all in the kernel.
#   uring: the engine forwards the same exchange (user_pkts 400).
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 3
RELAY_NODE="$TOP/build/tools/relay_node"
END="$TOP/tests/lib/relay_end.py"
[ -x "$RELAY_NODE" ] || fail "missing $RELAY_NODE (make build/tools/relay_node)"
RIP=$(netns_ip4 3)
TA=000102030405060708090a0b0c0d0e0f
TB=f0e0d0c0b0a090807060504030201000
N=200
for h in 1 2; do
	netns_exec $h ethtool -K eth0 tx off >/dev/null 2>&1 || fail "ethtool tx off in h$h"
done
netns_exec 1 ping -c1 -W2 "$RIP" >/dev/null || fail "h1 cannot reach the relay"
netns_exec 2 ping -c1 -W2 "$RIP" >/dev/null || fail "h2 cannot reach the relay"

stat() { json_get "$@" <"$D/stats.json"; }

# run_relay MODE: start relay_node in h3, sets RPID and PORT.
run_relay() {
	local exec
	exec=$(netns_bpffs_exec 3 "$D")
	rm -f "$D/stats.json" "$D/relay.out"
	$exec "$RELAY_NODE" "$1" eth0 42000 42003 $TA $TB "$D/stats.json" >"$D/relay.out" 2>"$D/relay.err" &
	RPID=$!
	netns_on_exit "kill_job -TERM $RPID"
	wait_for "grep -qs '^port' '$D/relay.out'" 100 || { cat "$D/relay.err" >&2; fail "$1: relay_node did not start"; }
	PORT=$(awk '/^port/ {print $2}' "$D/relay.out")
	wait_for "[ -s '$D/stats.json' ]" 50 || fail "$1: no stats"
}

stop_relay() {
	kill "$RPID" && wait "$RPID"
}

# exchange: B echoes, A pings N datagrams through the circuit (a datagram
# lost on the loaded machine is sent again after 1 s, so the counters are
# at least N each way, exactly N when nothing was lost).
exchange() {
	netns_exec 2 "$PYTHON" "$END" echo "$RIP" "$PORT" $TB $N >"$D/b.out" 2>&1 &
	local bpid=$!
	wait_for "grep -q bound '$D/b.out'" 60 || fail "$1: B did not bind: $(cat "$D/b.out")"
	out=$(netns_exec 1 "$PYTHON" "$END" ping "$RIP" "$PORT" $TA $N 1200 2>&1) ||
		fail "$1: exchange failed: $out"
	echo "$out" | grep -q "^ok $N resent" || fail "$1: $out"
	pass "$1: $N datagrams of 1200 bytes A -> B -> A through relay:$PORT, every byte checked ($out)"
	sleep 0.3 # the next stats snapshot
	ECHO_PID=$bpid
}

# The echo end exits after 5 s without a datagram.
echo_done() { wait "$ECHO_PID" || fail "B's echo loop failed: $(cat "$D/b.out")"; }

# ---- xdp mode ----
run_relay xdp-generic
exchange xdp
[ "$(stat circuits 0 in_kernel)" = True ] || fail "xdp: circuit not in the kernel"
a=$(stat circuits 0 ends 0 pkts) b=$(stat circuits 0 ends 1 pkts)
[ "$a" -ge $N ] && [ "$b" -ge $N ] || fail "xdp: map counters A->B $a, B->A $b, want $N each"
[ "$(stat circuits 0 ends 0 bytes)" = $((a * 1200)) ] || fail "xdp: byte counter"
tx=$(stat xdp relay_tx) user=$(stat totals user_pkts)
[ "$tx" = $((a + b)) ] || fail "xdp: relay_tx $tx, want $((a + b))"
[ "$user" = 0 ] || fail "xdp: userspace forwarded $user datagrams, want 0"
[ "$(stat totals binds_ok)" -ge 2 ] || fail "xdp: binds not counted"
pass "xdp: map counters $a + $b, relay_tx $tx, userspace forwarded $user"
# A stranger (h1, another socket: not A's latched address) is not forwarded.
before=$(stat xdp relay_user)
netns_exec 1 "$PYTHON" -c "import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b'\x40stranger', ('$RIP', $PORT))"
wait_for "[ \"\$(stat totals drop_unknown)\" -ge 1 ]" 30 || fail "xdp: stranger not dropped in userspace"
[ "$(stat xdp relay_user)" -gt "$before" ] || fail "xdp: stranger did not reach userspace"
[ "$(stat totals user_pkts)" = 0 ] || fail "xdp: stranger forwarded"
pass "xdp: a stranger's datagram went to userspace and was dropped (drop_unknown)"
echo_done
# Both ends bind again from new sockets (new ports, as after a NAT
# rebinding): the hops are rewritten in place, the kernel's counters go on,
# and userspace still forwards nothing.
exchange xdp-rebind
a2=$(stat circuits 0 ends 0 pkts) b2=$(stat circuits 0 ends 1 pkts) user=$(stat totals user_pkts)
[ "$(stat circuits 0 in_kernel)" = True ] && [ "$a2" -ge $((a + N)) ] && [ "$b2" -ge $((b + N)) ] &&
	[ "$user" = 0 ] ||
	fail "xdp-rebind: in_kernel $(stat circuits 0 in_kernel), map counters $a2 + $b2 (were $a + $b), userspace $user"
pass "xdp-rebind: map counters $a + $b -> $a2 + $b2, userspace forwarded $user"
echo_done
stop_relay

# ---- xdp mode over IPv6: the same exchange, hop-limit and UDP checksum
# rewritten for IPv6 ----
RIP4=$RIP
RIP=$(netns_ip6 3)
netns_exec 1 ping -6 -c1 -W2 "$RIP" >/dev/null || fail "h1 cannot reach the relay over IPv6"
netns_exec 2 ping -6 -c1 -W2 "$RIP" >/dev/null || fail "h2 cannot reach the relay over IPv6"
run_relay xdp-generic
exchange xdp6
a=$(stat circuits 0 ends 0 pkts) b=$(stat circuits 0 ends 1 pkts) user=$(stat totals user_pkts)
[ "$(stat circuits 0 in_kernel)" = True ] && [ "$a" -ge $N ] && [ "$b" -ge $N ] && [ "$user" = 0 ] ||
	fail "xdp6: in_kernel $(stat circuits 0 in_kernel), map counters $a + $b, userspace $user"
pass "xdp6: map counters $a + $b, userspace forwarded $user"
echo_done
stop_relay
RIP=$RIP4

# ---- uring mode: the engine forwards ----
run_relay uring
exchange uring
user=$(stat totals user_pkts)
a=$(stat circuits 0 ends 0 pkts) b=$(stat circuits 0 ends 1 pkts)
[ "$user" = $((a + b)) ] && [ "$a" -ge $N ] && [ "$b" -ge $N ] ||
	fail "uring: userspace forwarded $user, counters $a + $b"
[ "$(stat circuits 0 in_kernel)" = False ] || fail "uring: circuit claims the kernel"
pass "uring: userspace forwarded $user"
echo_done
stop_relay
finish
