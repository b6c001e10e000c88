#!/bin/bash
# SPDX-License-Identifier: MIT
# Three weftd on loopback form a DHT through their engines: bootstrap by
# configuration, announce/get_peers, immutable and mutable put/get through
# the control API, a restart that keeps the routing table and stored items
# (LMDB), and hostile datagrams on the DHT port answered or dropped without
# harm.
set -u
. "$TOP/tests/lib/common.sh"
prologue
BASE=$((30000 + RANDOM % 20000))
port() { echo $((BASE + $1)); }
start_node() { # I [extra args]
	local i=$1; shift
	mkdir -p "$D/n$i"
	start_weftd "$D/n$i" --state-dir "$D/n$i" --io uring --workers 2 --bind 127.0.0.1 \
		--dht-port "$(port $i)" --quic-port "$(port $((i + 10)))" "$@"
	eval "PID$i=$WEFTD_PID"
}
start_node 1
start_node 2 --bootstrap "127.0.0.1:$(port 1)"
start_node 3 --bootstrap "127.0.0.1:$(port 2)"
# Node 3 learns node 1 through node 2's answers.
wait_for '[ "$(ctl 3 --json dht status | json_get nodes4)" -ge 2 ]' 100 ||
	fail "node 3 did not learn the others: $(ctl 3 --json dht status | json_get nodes4)"
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 1 ]' 100 || fail "node 1 table empty"
ctl 3 dht ping "127.0.0.1:$(port 1)" >/dev/null || fail "ping"
pass "bootstrap"

# A node given a bootstrap contact has no join hint; the first one has.
[ "$(ctl 2 --json status | json_get bootstrap contacts)" = 1 ] || fail "node 2 bootstrap.contacts"
ctl 2 status | grep -q '^join ' && fail "node 2 (with --bootstrap) shows a join hint"
ctl 1 status | grep -q '^join ' || fail "node 1 (no bootstrap) shows no join hint"
pass "join hint only without a bootstrap contact"

IH=0123456789abcdef0123456789abcdef01234567
ctl 1 --json dht announce $IH 7777 >"$D/ann" || fail "announce"
[ "$(json_get stored <"$D/ann")" -ge 1 ] || fail "announce stored nowhere: $(cat "$D/ann")"
ctl 3 --json dht get-peers $IH >"$D/gp" || fail "get-peers"
grep -q '"127.0.0.1:7777"' "$D/gp" || fail "peer not found: $(cat "$D/gp")"
pass "announce and get_peers"

ctl 2 --json dht put --immutable "hello weft" >"$D/put" || fail "put immutable"
T=$(json_get target <"$D/put")
ctl 3 --json dht get "$T" >"$D/get" || fail "get immutable"
[ "$(json_get value <"$D/get")" = "hello weft" ] || fail "immutable value: $(cat "$D/get")"
ctl 1 --json dht put --mutable --salt s1 "v1" >"$D/m1" || fail "put mutable"
ctl 1 --json dht put --mutable --salt s1 "v2" >"$D/m2" || fail "put mutable 2"
[ "$(json_get seq <"$D/m2")" -gt "$(json_get seq <"$D/m1")" ] || fail "seq not increasing"
K=$(ctl 1 --json status | json_get node_key)
ctl 3 --json dht get --key "$K" --salt s1 >"$D/mg" || fail "get mutable"
[ "$(json_get value <"$D/mg")" = v2 ] || fail "mutable value: $(cat "$D/mg")"
ctl 3 dht get 00000000000000000000000000000000000000ff 2>/dev/null && fail "absent item found"
ctl 3 dht get nothex 2>/dev/null; [ $? -eq 2 ] || fail "bad target not a usage error"
code=$(curl -s -o /dev/null -w "%{http_code}" --unix-socket "$D/n3/weftd.sock" -H "Content-Type: application/json" --data "{\"target\": \"zz\"}" http://weftd/v1/dht/get)
[ "$code" = 400 ] || fail "API accepted a bad target: $code"
pass "put and get"

# A node on every address answers from the address it was asked on: a
# query to 127.0.0.2 gets its reply from 127.0.0.2, not from the kernel's
# choice (127.0.0.1); an asker behind a NAT or a filter would drop that.
start_node 4 --bind 0.0.0.0
"$PYTHON" - "$(port 4)" <<'PY' || fail "reply source address"
import socket, sys
port = int(sys.argv[1])
for dst in ("127.0.0.2", "127.0.0.3"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    s.sendto(b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe", (dst, port))
    data, src = s.recvfrom(2048)
    if src[0] != dst or b"1:y1:r" not in data:
        print("asked %s, answered from %s: %r" % (dst, src, data[:60]))
        sys.exit(1)
PY
pass "replies leave from the address asked"

# Hostile datagrams on the DHT port: the node keeps serving.
"$PYTHON" - "$(port 2)" <<'PY'
import socket, sys, random
random.seed(7)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
dst = ("127.0.0.1", int(sys.argv[1]))
bad = [b"", b"d", b"de", b"d1:y1:qe", b"d1:q4:ping1:t2:aa1:y1:qe", b"i42e",
       b"d1:ad2:id3:abce1:q4:ping1:t2:aa1:y1:qe", b"d1:q9:find_node1:t1:x1:y1:qe" ]
bad += [bytes(random.getrandbits(8) for _ in range(random.randint(1, 1400))) for _ in range(300)]
bad += [b"d" + b"l" * 5000 + b"e" * 5000 + b"e"]
for m in bad:
    s.sendto(m, dst)
PY
sleep 0.5
kill -0 "$PID2" || fail "node 2 died on hostile input"
ctl 3 dht ping "127.0.0.1:$(port 2)" >/dev/null || fail "node 2 stopped answering"
pass "hostile datagrams"

# Restart node 2: routing table and stored items come back from the store.
items=$(ctl 2 --json dht status | json_get items)
stop_weftd "$PID2" || fail "stop node 2"
start_node 2
grep -q "restored [1-9][0-9]* nodes" "$WEFTD_LOG" || fail "routing table not restored"
# At least as many: every node publishes its node record (BEP 44, salt
# weft:node) and retries a put that stored nowhere, so more may arrive.
now=$(ctl 2 --json dht status | json_get items)
[ "$now" -ge "$items" ] || fail "items not restored: $now after the restart, $items before"
[ "$(ctl 2 --json dht status | json_get nodes4)" -ge 1 ] || fail "no nodes after restart"
pass "persistence"
for i in 1 2 3; do eval "stop_weftd \$PID$i" || fail "stop $i"; done
finish
