#!/bin/bash
# SPDX-License-Identifier: MIT
# The backend contract (docs/SERVICE.md, "Backend contract") across two
# weftd in network namespaces: A publishes services backed by the example
# backend (tools/examples/weft_backend.py: HTTP/1.1 keep-alive, checks the
# caller's assertion with PyNaCl) over TCP and a unix socket, and by
# backends that break the contract (garbage, silence, too much). C calls
# them through its control API and its gateway: the backend sees the
# method, C's key in Weft-Caller and a valid Weft-Caller-Assertion; HTTP
# statuses come back as call statuses and classes; a keep-alive connection
# carries many calls (the backend counts connections); each bad backend
# gets its error class within the deadline while the good one answers; a
# per-service concurrency cap given at publish admits that many calls.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
command -v curl >/dev/null || skip "curl missing"
"$PYTHON" -c "import nacl" 2>/dev/null || skip "python3-nacl missing (tools/deps.sh)"
IPA=$(netns_ip4 1)
GW=5030
EX=$TOP/tools/examples/weft_backend.py
"$PYTHON" "$EX" --self-test >/dev/null || fail "example backend self-test (the documented vector)"

mkdir -p "$D/n1" "$D/n2"
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 1 \
	--gateway "127.0.0.1:$GW" --set gateway.services=app --set svc.peer_calls_per_min=100000 \
	--set svc.addr_calls_per_min=100000
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1 \
	--bootstrap "$IPA:6881" --gateway "127.0.0.1:$GW" --set gateway.services=app,junk
KA=$(ctl 1 --json status | json_get node_key)
KC=$(ctl 2 --json status | json_get node_key)

# The example backend on A, over TCP and over a unix socket.
netns_exec 1 "$PYTHON" "$EX" --listen 127.0.0.1:8090 >"$D/ex.log" 2>&1 &
netns_on_exit "kill_job -TERM $!"
netns_exec 1 "$PYTHON" "$EX" --unix "$D/app.sock" >"$D/exu.log" 2>&1 &
netns_on_exit "kill_job -TERM $!"
# Backends that break the contract: garbage, silence, 8 MiB of body.
cat >"$D/bad.py" <<'PYEOF'
import socket, sys, threading
mode, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
def serve(c):
    try:
        c.recv(65536)
        if mode == "junk":
            c.sendall(b"220 smtp.example ESMTP ready\r\n\r\n")
        elif mode == "flood":
            c.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(128):
                c.sendall(b"10000\r\n" + b"x" * 65536 + b"\r\n")
        else:
            c.recv(1)  # silent: never a byte back
    except OSError:
        pass
held = []
while True:
    c, _ = s.accept()
    held.append(c)
    threading.Thread(target=serve, args=(c,), daemon=True).start()
PYEOF
for b in junk:8091 stall:8092 flood:8093; do
	netns_exec 1 "$PYTHON" "$D/bad.py" "${b%%:*}" "${b#*:}" >/dev/null 2>&1 &
	netns_on_exit "kill_job -TERM $!"
done
wait_for "netns_exec 1 curl -sf -X POST http://127.0.0.1:8090/stats >/dev/null" 100 || fail "example backend: $(cat "$D/ex.log")"
wait_for "[ -S '$D/app.sock' ]" 100 || fail "example backend on a unix socket: $(cat "$D/exu.log")"

ctl 1 svc publish app --backend tcp:127.0.0.1:8090 >/dev/null || fail "publish app"
ctl 1 svc publish appu --backend "unix:$D/app.sock" >/dev/null || fail "publish appu"
for b in junk:8091 stall:8092 flood:8093; do
	ctl 1 svc publish "${b%%:*}" --backend "tcp:127.0.0.1:${b#*:}" >/dev/null || fail "publish ${b%%:*}"
done
# The silent backend again, published with a per-service concurrency of 3.
ctl 1 svc publish stall3 --backend tcp:127.0.0.1:8092 --concurrency 3 >/dev/null || fail "publish stall3"
wait_for '[ "$(ctl 1 --json svc ls | "$PYTHON" -c "import json,sys; print(min(s[\"announced\"] for s in json.load(sys.stdin)[\"services\"]))")" -ge 1 ]' 100 ||
	fail "announce not stored: $(ctl 1 --json svc ls)"
wait_for 'ctl 2 --json svc find app | grep -q "$KA"' 100 || fail "find app: $(ctl 2 --json svc find app)"
pass "A publishes six backends, C finds them"

# The backend sees the method, C's key and an assertion it can check.
ctl 2 --json svc call app whoami --data "hello backend" >"$D/who" || fail "call whoami: $(cat "$D/who")"
[ "$(json_get error <"$D/who")" = ok ] && [ "$(json_get status <"$D/who")" = 200 ] || fail "whoami: $(cat "$D/who")"
json_get data <"$D/who" >"$D/who.data"
[ "$(json_get caller <"$D/who.data")" = "$KC" ] || fail "Weft-Caller is not C's key: $(cat "$D/who.data")"
[ "$(json_get verified <"$D/who.data")" = True ] || fail "assertion: $(cat "$D/who.data")"
[ "$(json_get method <"$D/who.data")" = whoami ] && [ "$(json_get service <"$D/who.data")" = app ] ||
	fail "method or service: $(cat "$D/who.data")"
dl=$(json_get deadline_ms <"$D/who.data")
[ "$dl" -gt 0 ] && [ "$dl" -le 5000 ] || fail "Weft-Deadline $dl"
out=$(ctl 2 svc call appu echo --data "over a unix socket") || fail "call appu"
[ "$out" = "over a unix socket" ] || fail "appu echo: '$out'"
# A call A makes to itself is signed by A.
ctl 1 --json svc call app whoami >"$D/self" || fail "local call"
[ "$(json_get data <"$D/self" | json_get caller)" = "$KA" ] || fail "local call: $(cat "$D/self")"
# The backend's check is real: a forged assertion is refused.
code=$(netns_exec 1 curl -s -o /dev/null -w '%{http_code}' -X POST --data hi \
	-H "Weft-Caller: $KC" -H "Weft-Service: app" -H "Weft-Request-Id: 00112233445566778899aabbccddeeff" \
	-H "Weft-Caller-Assertion: v1 t=$(($(date +%s) * 1000)) sig=$(printf '%0128d' 0)" http://127.0.0.1:8090/whoami)
[ "$code" = 401 ] || fail "forged assertion answered $code"
pass "the backend sees POST /whoami, Weft-Caller = C's key and a valid assertion (remote, unix socket, local)"

# HTTP status -> call status and class, through the control API and the gateway.
for sc in 404:bad_request 429:rate_limited 500:backend_error 503:overloaded 201:ok; do
	ctl 2 --json svc call app "status/${sc%%:*}" >"$D/st" 2>/dev/null
	[ "$(json_get status <"$D/st")" = "${sc%%:*}" ] && [ "$(json_get error <"$D/st")" = "${sc#*:}" ] ||
		fail "status ${sc%%:*}: $(cat "$D/st")"
done
G="ip netns exec $(netns_name 2) curl -s"
$G -D "$D/gh" -o "$D/gb" -X POST --data x "http://127.0.0.1:$GW/mesh/v1/call/app/status/404"
grep -q "^HTTP/1.1 404" "$D/gh" && grep -qi "^x-weft-error: bad_request" "$D/gh" || fail "gateway 404: $(cat "$D/gh")"
body=$($G -X POST --data-binary "via gateway" "http://127.0.0.1:$GW/mesh/v1/call/app/echo")
[ "$body" = "via gateway" ] || fail "gateway echo: '$body'"
pass "statuses 404/429/500/503/201 map to their classes, the gateway passes 404 through"

# Keep-alive: 200 calls, a handful of connections at most.
c0=$(netns_exec 1 curl -s -X POST http://127.0.0.1:8090/stats | json_get connections)
ctl 2 --json svc call app echo --data x --count 200 --concurrency 4 >"$D/many" || fail "200 calls"
[ "$(json_get ok <"$D/many")" = 200 ] || fail "200 calls: $(cat "$D/many")"
c1=$(netns_exec 1 curl -s -X POST http://127.0.0.1:8090/stats | json_get connections)
[ $((c1 - c0)) -le 4 ] || fail "200 calls took $((c1 - c0)) new connections (keep-alive not used)"
ctl 1 --json svc stats >"$D/stats"
[ "$(json_get backend reused <"$D/stats")" -ge 190 ] || fail "reuse not counted: $(json_get backend <"$D/stats")"
pass "200 calls over $((c1 - c0)) new backend connection(s) ($(json_get backend <"$D/stats"))"

# Bad backends: a clear class each, within the deadline; app answers meanwhile.
ctl 2 --json svc call junk x --timeout 3000 >"$D/junk" 2>/dev/null
[ "$(json_get error <"$D/junk")" = backend_protocol ] || fail "garbage HTTP: $(cat "$D/junk")"
code=$($G -o /dev/null -w '%{http_code}' -X POST --data x "http://127.0.0.1:$GW/mesh/v1/call/junk/x")
[ "$code" = 502 ] || fail "gateway, garbage backend: $code"
ctl 2 --json svc call flood x --timeout 5000 >"$D/flood" 2>/dev/null
[ "$(json_get error <"$D/flood")" = too_large ] || fail "8 MiB answer: $(cat "$D/flood")"
t0=$(date +%s%N)
ctl 2 --json svc call stall x --timeout 1000 --count 40 --concurrency 40 >"$D/stall" &
SPID=$!
for i in 1 2 3 4 5; do
	out=$(ctl 2 svc call app echo --data "still here $i") || fail "app during the stall"
	[ "$out" = "still here $i" ] || fail "app during the stall: '$out'"
done
wait $SPID || fail "stalled calls: $(cat "$D/stall")"
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$("$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["errors"].get("timeout",0))' "$D/stall")" = 40 ] ||
	fail "stall: $(cat "$D/stall")"
[ "$ms" -lt 10000 ] || fail "40 stalled calls took $ms ms"
wait_for '[ "$(ctl 1 --json svc stats | json_get backend inflight)" = 0 ]' 50 ||
	fail "slots not freed: $(ctl 1 --json svc stats | json_get backend)"
ctl 1 --json svc stats >"$D/stats"
[ "$(json_get backend protocol_errors <"$D/stats")" -ge 2 ] || fail "protocol errors: $(json_get backend <"$D/stats")"
pass "garbage -> backend_protocol (gateway 502), 8 MiB -> too_large, 40 stalled calls -> timeout in $ms ms while app answered; every slot freed"

# Per-service concurrency (svc publish --concurrency 3): of 10 calls at
# once to the silent backend, 3 are admitted (and time out), 7 are
# refused overloaded at once.
ctl 2 --json svc call stall3 x --timeout 1500 --count 10 --concurrency 10 >"$D/stall3"
"$PYTHON" - "$D/stall3" <<'PYEOF' || fail "per-service concurrency: $(cat "$D/stall3")"
import json, sys
e = json.load(open(sys.argv[1]))["errors"]
assert e.get("timeout", 0) == 3 and e.get("overloaded", 0) == 7, e
PYEOF
wait_for '[ "$(ctl 1 --json svc stats | json_get backend inflight)" = 0 ]' 50 ||
	fail "stall3 slots not freed: $(ctl 1 --json svc stats | json_get backend)"
pass "svc publish --concurrency 3: of 10 calls at once 3 admitted (timeout), 7 overloaded"
finish
