#!/bin/bash
# SPDX-License-Identifier: MIT
# Fault: a relay killed (SIGKILL) in the middle of a circuit.
#
#   bridge 198.51.100.0/24
#     h1 .1  relay R1 (weftd --relay)
#     h2 .2  relay R2 (weftd --relay), the DHT bootstrap
#     h3 .3  router: masquerade for 10.0.5.0/24 -> h5 10.0.5.2 (target T)
#     h4 .4  dialler X
#
# T, unreachable from outside, holds reservations with R1 and R2
# (relay.use, R1 first) and lists both in its node record. X dials T by
# key: the circuit goes through R1 (hole punching off on X and T: with it,
# the connection may already have moved to a direct path, and killing R1
# then changes nothing, as one run showed). A transfer runs on it (quic bench) and
# R1 is killed: the transfer ends with an error within its deadline (no
# hang: X and T have a 5 s idle timeout), and the next dial by key falls
# back to R2 within the dial's
# deadline (10 s resolution + 10 s circuit request + 5 s bind, plus the
# ping's 5 s), and works; every other daemon is alive.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 4
command -v nft >/dev/null || fail "nft (nftables) missing: run tools/deps.sh install"
netns_nat_host 3 5 10.0.5 "masquerade" || fail "NAT setup"
IP1=$(netns_ip4 1) IP2=$(netns_ip4 2)

netns_weftd 2 uring "$D" --workers 1 --relay
netns_weftd 1 uring "$D" --workers 1 --relay --set "dht.bootstrap=$IP2:6881"
K1=$(ctl 1 --json status | json_get node_key)
K2=$(ctl 2 --json status | json_get node_key)
netns_weftd 5 uring "$D" --workers 1 --set "dht.bootstrap=$IP2:6881" --set quic.idle_timeout_ms=5000 --set quic.punch=false \
	--set "relay.use=$K1@$IP1:4433,$K2@$IP2:4433"
netns_weftd 4 uring "$D" --workers 1 --set "dht.bootstrap=$IP2:6881" --set quic.idle_timeout_ms=5000 \
	--set quic.punch=false
K5=$(ctl 5 --json status | json_get node_key)

held() { # N: both of node N's reservations held
	ctl "$1" --json relay status | "$PYTHON" -c 'import json,sys
u=json.load(sys.stdin)["use"]
sys.exit(0 if len(u) == 2 and all(x["state"] == "held" for x in u) else 1)'
}
wait_for "held 5" 600 || fail "T does not hold both reservations: $(ctl 5 relay status)"
wait_for "ctl 4 --json node resolve $K5 --fresh 2>/dev/null | grep -q '$K1' &&
	ctl 4 --json node resolve $K5 2>/dev/null | grep -q '$K2'" 600 ||
	fail "T's record does not list both relays: $(ctl 4 --json node resolve "$K5" --fresh 2>&1)"
pass "T (behind NAT) holds reservations with R1 and R2, its record lists both"

circuits() { ctl "$1" --json relay status | json_get counters circuits; }
out=$(ctl 4 --json quic ping "$K5") || { WEFTD_LOG=$LOG5; fail "ping T through R1: $out"; }
[ "$(circuits 1)" -ge 1 ] || fail "no circuit at R1: $(ctl 1 relay status)"
pass "X pings T by key through R1"

# A transfer on the circuit, and R1 killed in the middle of it.
ctl 4 --json quic bench "$K5" 1073741824 sink >"$D/bench" 2>&1 &
BENCH=$!
on_exit "kill_job -TERM $BENCH"
bytes() { ctl 1 --json relay circuits | "$PYTHON" -c 'import json,sys
print(sum(e["bytes"] for c in json.load(sys.stdin)["circuits"] for e in c["ends"]))'; }
wait_for '[ "$(bytes)" -ge 4000000 ]' 300 || fail "the transfer does not go through R1: $(ctl 1 relay circuits)"
kill -9 "$PID1"
t0=$(date +%s)
# the transfer's end: an error (the circuit is gone), within the idle
# timeout (5 s here: quic.idle_timeout_ms) and a generous margin, not a hang
wait_for "! kill -0 $BENCH 2>/dev/null" 300 || fail "the transfer hangs 30 s after its relay died"
wait "$BENCH" && fail "the 1 GiB transfer through a dead relay succeeded: $(cat "$D/bench")"
pass "R1 killed mid-transfer: the transfer ended with an error after $(($(date +%s) - t0)) s: $(tr -d '\n' <"$D/bench" | cut -c1-100)"

# The next dial by key falls back to R2, within the dial's deadline.
c2=$(circuits 2)
t1=$(date +%s%N)
timeout 60 "$WEFTCTL" --socket "$D/n4/weftd.sock" --json quic ping "$K5" >"$D/ping2" 2>&1 ||
	fail "the dial after R1's death failed: $(cat "$D/ping2")"
ms=$((($(date +%s%N) - t1) / 1000000))
[ "$(json_get peer_key <"$D/ping2")" = "$K5" ] || fail "ping answered by someone else: $(cat "$D/ping2")"
[ "$ms" -le 30000 ] || fail "the fallback took $ms ms, past the dial's 30 s deadline"
pass "the next dial by key reaches T ($ms ms; R2's circuits $c2 -> $(circuits 2))"

for n in 2 4 5; do
	eval "kill -0 \$PID$n" || fail "host $n's weftd died"
done
for n in 4 5 2; do
	eval "stop_weftd \$PID$n" || fail "host $n's weftd did not stop cleanly"
done
finish
