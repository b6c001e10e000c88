#!/bin/bash
# SPDX-License-Identifier: MIT
# Reaching a node by its key, and STUN on the QUIC port, with real weftd
# processes in three namespaces on a bridge (public documentation
# addresses: no NAT traversal needed), in io_uring and XDP (generic) mode:
#  - every node publishes its node record without publishing a service;
#    node 1 resolves node 2's key (weftctl node resolve) to node 2's address
#    and pings it by key alone (weftctl quic ping KEY);
#  - a key without a record is not_found;
#  - coturn's turnutils_stunclient (Debian coturn) learns its reflexive
#    address from node 2's QUIC port: the address it sent from;
#  - a burst of 60 Binding requests from one source is cut by the per-source
#    STUN bucket (drop_rate_stun), the rest answered; the policy counters
#    still add up (rx == sum of the verdicts).
. "$TOP/tests/lib/common.sh"
prologue netns 3
command -v turnutils_stunclient >/dev/null || fail "turnutils_stunclient (coturn) missing: run tools/deps.sh install"
IP1=$(netns_ip4 1)
IP2=$(netns_ip4 2)
IP3=$(netns_ip4 3)
api() { local n=$1 m=$2 p=$3; shift 3; curl -s --unix-socket "$D/n$n/weftd.sock" -X "$m" "http://weftd$p" "$@"; }

# 60 STUN Binding requests from one socket at once; prints "sent answered".
stun_burst() {
	netns_exec 1 "$PYTHON" - "$IP2" <<'PY'
import os, socket, struct, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(0.5)
tids = set()
for i in range(60):
    tid = os.urandom(12)
    tids.add(tid)
    s.sendto(struct.pack("!HHI", 1, 0, 0x2112A442) + tid, (sys.argv[1], 4433))
got = 0
try:
    while True:
        b = s.recv(2048)
        if len(b) >= 20 and b[:2] == b"\x01\x01" and b[8:20] in tids:
            got += 1
except socket.timeout:
    pass
print(60, got)
PY
}

counters_add_up() {
	api "$1" GET /v1/xdp/status | "$PYTHON" -c 'import json,sys
c=json.load(sys.stdin)["counters"]
s=sum(v for k,v in c.items() if k!="rx")
sys.exit(0 if s==c["rx"] else 1)'
}

for mode in uring xdp; do
	netns_weftd 3 "$mode" "$D" --workers 1
	P3=$PID3
	netns_weftd 1 "$mode" "$D" --workers 1 --set "dht.bootstrap=$IP3:6881"
	netns_weftd 2 "$mode" "$D" --workers 1 --set "dht.bootstrap=$IP3:6881"
	K2=$(api 2 GET /v1/status | json_get node_key)
	K1=$(api 1 GET /v1/status | json_get node_key)
	[ "$(api 2 GET /v1/svc/ls | json_get services)" = "[]" ] || fail "$mode: node 2 publishes a service"

	wait_for "ctl 1 --json node resolve $K2 --fresh 2>/dev/null | grep -q '\"$IP2:4433\"'" 300 ||
		fail "$mode: node 1 cannot resolve node 2's key: $(ctl 1 --json node resolve "$K2" 2>&1)"
	out=$(ctl 1 node resolve "$K2")
	echo "$out" | grep -q "^addr     $IP2:4433" || fail "$mode: resolve table: $out"
	pass "$mode: node 1 resolves node 2's key to $IP2:4433 (no service published)"

	out=$(ctl 1 --json quic ping "$K2")
	[ "$(echo "$out" | json_get peer_key)" = "$K2" ] || fail "$mode: quic ping KEY: $out"
	wait_for "ctl 2 --json node resolve $K1 --fresh 2>/dev/null | grep -q '\"$IP1:4433\"'" 300 ||
		fail "$mode: node 2 cannot resolve node 1's key"
	out=$(ctl 2 --json quic ping "$K1")
	[ "$(echo "$out" | json_get peer_key)" = "$K1" ] || fail "$mode: quic ping KEY (2 -> 1): $out"
	pass "$mode: quic ping KEY both ways"

	out=$(ctl 1 node resolve 00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff 2>&1)
	rc=$?
	[ $rc -eq 1 ] && echo "$out" | grep -q "no node record" || fail "$mode: missing key: rc $rc: $out"
	out=$(api 1 POST /v1/quic/ping -d '{"addr":"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}')
	[ "$(echo "$out" | json_get error code)" = not_found ] || fail "$mode: ping of a missing key: $out"
	pass "$mode: a key without a record is not_found (resolve and ping)"

	out=$(netns_exec 1 timeout 10 turnutils_stunclient -p 4433 "$IP2" 2>&1)
	echo "$out" | grep -q "UDP reflexive addr: $IP1:[0-9]" || fail "$mode: turnutils_stunclient: $out"
	[ "$(api 2 GET /v1/quic/stats | json_get total stun_answered)" -ge 1 ] || fail "$mode: stun_answered"
	pass "$mode: turnutils_stunclient learns $(echo "$out" | grep -o "$IP1:[0-9]*" | head -1) from node 2's QUIC port"

	read -r sent got <<<"$(stun_burst)"
	drops=$(api 2 GET /v1/xdp/status | json_get counters drop_rate_stun)
	[ "$got" -ge 10 ] && [ "$got" -lt "$sent" ] && [ "$drops" -ge 1 ] ||
		fail "$mode: STUN burst: $got of $sent answered, drop_rate_stun $drops"
	counters_add_up 2 || fail "$mode: node 2's policy counters do not add up: $(api 2 GET /v1/xdp/status)"
	pass "$mode: a burst of $sent STUN requests from one source: $got answered, $drops cut by the per-source bucket; rx == sum of verdicts"

	for p in "$PID1" "$PID2" "$P3"; do
		stop_weftd "$p" || fail "$mode: a weftd did not stop cleanly"
	done
	rm -rf "$D/n1" "$D/n2" "$D/n3"
done
finish
