#!/bin/bash
# SPDX-License-Identifier: MIT
# Service streams and WebSocket through the gateway, across four weftd in
# network namespaces (docs/SERVICE.md, "Streams", "WebSocket through the
# gateway"): A publishes the built-in echo, "up" (an HTTP/1.1 backend that
# takes the weft-stream upgrade and echoes) and "chat" (a python3-websockets
# chat server); B is the DHT contact; C and D each run a gateway.
#   - weftctl svc stream from C: 4 MiB through A's echo and through "up"
#     come back byte for byte (stdin EOF is the half-close); the backend saw
#     POST /<method>, Upgrade: weft-stream and C's key in Weft-Caller.
#   - a stream to a service nobody offers: exit 1 with not_found.
#   - a gateway pass-through (GET) reaches the backend with C's key in
#     Weft-Caller and C's assertion (method "http"), the client's own
#     Weft-Caller dropped.
#   - A streams to its own echo and backend (served, not 501).
#   - a WebSocket chat between a client on C's gateway (path form) and one
#     on D's gateway (Host form chat.localhost): messages both ways, the
#     client's close code 4001 reaches the other side, the backend's 4002
#     reaches its client, a 2 MiB message is closed with 1009 by the
#     gateway; a malformed upgrade gets 400; the backend's Origin rule
#     answers 403 through the gateway.
#   - the backends verify each caller's assertion (PyNaCl, when present).
#   - a WebSocket on A's gateway to A's own chat (served over A's
#     connection to itself).
#   - a WebSocket client that asks for 1.5 s of idle time and sends
#     nothing is closed with 1001 by the gateway.
#   - a WebSocket client flooding a backend that never reads is held at
#     the stream's window (with the fabric's owner on the QUIC worker, the
#     default), then ended by the idle time, never slow_reader.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 4
command -v curl >/dev/null || skip "curl missing"
"$PYTHON" -c "import websockets" 2>/dev/null || skip "python3-websockets missing"
IPB=$(netns_ip4 2)
GWC=5030 GWD=5031 GWA=5032
HERE=$TOP/tests/integration

mkdir -p "$D/n1" "$D/n2" "$D/n3" "$D/n4"
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 1 \
	--bootstrap "$IPB:6881" --gateway "127.0.0.1:$GWA" --set gateway.services=chat
NETNS_EXEC="ip netns exec $(netns_name 3)" start_weftd "$D/n3" --state-dir "$D/n3" --io uring --workers 1 \
	--bootstrap "$IPB:6881" --gateway "127.0.0.1:$GWC" --set gateway.services=chat,up
PID3=$WEFTD_PID LOG3=$WEFTD_LOG
NETNS_EXEC="ip netns exec $(netns_name 4)" start_weftd "$D/n4" --state-dir "$D/n4" --io uring --workers 1 \
	--bootstrap "$IPB:6881" --gateway "127.0.0.1:$GWD" --set gateway.services=chat
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 1 ] && [ "$(ctl 3 --json dht status | json_get nodes4)" -ge 1 ] && [ "$(ctl 4 --json dht status | json_get nodes4)" -ge 1 ]' 150 ||
	fail "DHT did not form"

netns_exec 1 "$PYTHON" "$HERE/svc_stream_backends.py" upgrade 8090 "$D/heads" "$D/callers" >"$D/up.log" 2>&1 &
UPID=$!
netns_on_exit "kill_job -TERM $UPID"
netns_exec 1 "$PYTHON" "$HERE/svc_stream_backends.py" chat 8091 "$D/wscallers" >"$D/chat.log" 2>&1 &
CPID=$!
netns_on_exit "kill_job -TERM $CPID"
ctl 1 svc publish echo --backend builtin >/dev/null || fail "publish echo"
ctl 1 svc publish up --backend tcp:127.0.0.1:8090 >/dev/null || fail "publish up"
ctl 1 svc publish chat --backend tcp:127.0.0.1:8091 >/dev/null || fail "publish chat"
for n in 3 4; do
	for s in echo up chat; do
		wait_for "ctl $n --json svc find $s 2>/dev/null | grep -q owner" 150 || fail "node $n does not find $s"
	done
done
pass "A publishes echo, up and chat; C and D find them"

"$PYTHON" -c "import sys,random; random.seed(7); sys.stdout.buffer.write(random.randbytes(4 << 20))" >"$D/in.bin"
ctl 3 svc stream echo bytes <"$D/in.bin" >"$D/out.bin" || fail "svc stream echo: exit $?"
cmp -s "$D/in.bin" "$D/out.bin" || fail "echo stream: $(stat -c %s "$D/out.bin") bytes back, not the input"
ctl 3 svc stream up room1 <"$D/in.bin" >"$D/out2.bin" || fail "svc stream up: exit $?"
cmp -s "$D/in.bin" "$D/out2.bin" || fail "backend stream: $(stat -c %s "$D/out2.bin") bytes back"
KC=$(ctl 3 --json status | json_get node_key)
grep -q "^POST /room1 HTTP/1.1" "$D/heads" || fail "backend head: $(head -c 400 "$D/heads")"
grep -qi "^Upgrade: weft-stream" "$D/heads" || fail "no Upgrade in $(cat "$D/heads")"
grep -qi "^Weft-Caller: $KC" "$D/heads" || fail "no Weft-Caller $KC in $(cat "$D/heads")"
if "$PYTHON" -c "import nacl.signing" 2>/dev/null; then
	grep -q "^verified $KC room1$" "$D/callers" || fail "stream assertion: $(cat "$D/callers")"
	grep -q "^bad" "$D/callers" && fail "a stream assertion failed: $(cat "$D/callers")"
fi
# The HTTP pass-through carries the caller headers too, and drops the
# client's own: "up" answers a plain GET 400 (it takes upgrades only)
# and records its head.
code=$(netns_exec 3 curl -s -o /dev/null -w '%{http_code}' -H 'Weft-Caller: forged' \
	-H 'X-Weft-Timeout-Ms: 20000' "http://127.0.0.1:$GWC/mesh/v1/http/up/plain?q=1")
[ "$code" = 400 ] || fail "pass-through to up: $code"
"$PYTHON" - "$D/heads" "$KC" <<'PYEOF' || fail "pass-through head: $(tail -c 600 "$D/heads")"
import sys
heads = open(sys.argv[1], "rb").read().split(b"\r\n\r\n")
h = [x for x in heads if x.startswith(b"GET /plain?q=1 ")][-1].decode()
lines = [l.lower() for l in h.split("\r\n")]
assert "weft-caller: " + sys.argv[2] in lines, h
assert "forged" not in h, h
assert any(l.startswith("weft-request-id: ") for l in lines), h
assert "weft-service: up" in lines, h
PYEOF
if "$PYTHON" -c "import nacl.signing" 2>/dev/null; then
	grep -q "^verified $KC http$" "$D/callers" || fail "pass-through assertion: $(cat "$D/callers")"
fi
# A's own services, from A: over a QUIC connection to itself (a failure
# shows A's log).
WEFTD_LOG=$(ls "$D"/n1/weftd.log.* | head -1)
head -c 300000 "$D/in.bin" >"$D/in3.bin"
ctl 1 svc stream echo self <"$D/in3.bin" >"$D/out3.bin" || fail "svc stream to A's own echo: exit $?"
cmp -s "$D/in3.bin" "$D/out3.bin" || fail "own echo: $(stat -c %s "$D/out3.bin") bytes back"
KA=$(ctl 1 --json status | json_get node_key)
ctl 1 svc stream up mine <"$D/in3.bin" >"$D/out4.bin" || fail "svc stream to A's own backend: exit $?"
cmp -s "$D/in3.bin" "$D/out4.bin" || fail "own backend: $(stat -c %s "$D/out4.bin") bytes back"
grep -qi "^Weft-Caller: $KA" "$D/heads" || fail "own backend did not see A's key: $(cat "$D/heads")"
if "$PYTHON" -c "import nacl.signing" 2>/dev/null; then
	grep -q "^verified $KA mine$" "$D/callers" || fail "own stream assertion: $(cat "$D/callers")"
	grep -q "^bad" "$D/callers" && fail "an assertion failed: $(cat "$D/callers")"
fi
# Its connection to itself sees its own address: never taken for a
# relayed path to punch (which moved it between paths and stalled the
# streams on it).
grep -q "relayed path\|direct at" "$WEFTD_LOG" && fail "A punched a path: $(grep -h 'quic: conn' "$WEFTD_LOG")"
out=$(echo hi | ctl 3 svc stream nosuch x 2>&1); rc=$?
[ $rc = 1 ] || fail "stream to nobody: exit $rc ($out)"
echo "$out" | grep -q not_found || fail "stream to nobody said: $out"
[ "$(ctl 3 --json svc streams | json_get ended ok)" -ge 2 ] || fail "stream counters: $(ctl 3 --json svc streams 2>&1)"
ctl 3 metrics 2>/dev/null | grep -q '^weft_svc_streams_ended_total{reason="ok"} [1-9]' ||
	fail "stream metrics: $(ctl 3 metrics 2>&1 | grep svc_stream)"
pass "weftctl svc stream: 4 MiB byte for byte through the echo and a backend's upgrade; A's own echo and backend from A; not_found"

# WebSocket: D's client (Host form) and C's client (path form).
netns_exec 4 "$PYTHON" "$HERE/svc_ws_client.py" second "ws://chat.localhost:$GWD/room" "$D/second.out" >"$D/second.log" 2>&1 &
SPID=$!
netns_exec 3 "$PYTHON" "$HERE/svc_ws_client.py" first "ws://127.0.0.1:$GWC/mesh/v1/ws/chat/room" >"$D/first.log" 2>&1 ||
	fail "first client: $(cat "$D/first.log") / second: $(cat "$D/second.log")"
wait $SPID || fail "second client: $(cat "$D/second.log")"
grep -q "hi from first" "$D/second.out" || fail "second client did not hear the first"
if "$PYTHON" -c "import nacl.signing" 2>/dev/null; then
	KD=$(ctl 4 --json status | json_get node_key)
	grep -q "^verified $KC ws$" "$D/wscallers" || fail "ws assertion (C): $(cat "$D/wscallers")"
	grep -q "^verified $KD ws$" "$D/wscallers" || fail "ws assertion (D): $(cat "$D/wscallers")"
	grep -q "^bad" "$D/wscallers" && fail "a ws assertion failed: $(cat "$D/wscallers")"
fi
pass "WebSocket chat through two gateways (the backend verified each caller's assertion): messages, close codes 4001 and 4002 both ways, 1009 for a 2 MiB message"

# A WebSocket on A's own gateway to A's own chat: over A's connection to
# itself (5 echoed round trips; with PyNaCl, the backend verified A's
# assertion).
out=$(netns_exec 1 "$PYTHON" "$HERE/svc_ws_client.py" rtt "ws://127.0.0.1:$GWA/mesh/v1/ws/chat/self" 5 2>&1) ||
	fail "WebSocket to A's own chat: $out"
if "$PYTHON" -c "import nacl.signing" 2>/dev/null; then
	grep -q "^verified $KA ws$" "$D/wscallers" || fail "ws assertion (A, own): $(cat "$D/wscallers")"
fi
pass "WebSocket on A's gateway to A's own chat (p50/p99 us: $out)"

# Idle: a client asking for 1.5 s of idle time (X-Weft-Idle-Ms) that
# sends nothing is closed by the gateway with 1001 (going away); the
# backend sees the same code ("left 1001" to its other clients).
out=$(netns_exec 3 "$PYTHON" "$HERE/svc_ws_client.py" idle "ws://127.0.0.1:$GWC/mesh/v1/ws/chat/idle" 1500 2>&1)
read -r icode isecs _ <<<"$out"
[ "${icode:-}" = 1001 ] || fail "idle WebSocket: '$out'"
"$PYTHON" -c "import sys; sys.exit(not (1.0 <= float(sys.argv[1]) <= 25))" "${isecs:-0}" ||
	fail "idle WebSocket closed after ${isecs:-?} s"
[ "$(ctl 3 --json svc streams | json_get ended idle)" -ge 1 ] || fail "idle not counted: $(ctl 3 --json svc streams)"
pass "WebSocket idle past X-Weft-Idle-Ms 1500: closed 1001 after $isecs s, stream ended idle"

# Flow control: a client floods 256 KiB messages at a backend that never
# reads (chat's /stall path). The bytes stop at the stream's window and
# the sockets' buffers (far under the 256 MiB tried), nothing ends with
# slow_reader, and the stream's idle time (3 s) then ends it.
out=$(netns_exec 3 "$PYTHON" "$HERE/svc_ws_client.py" flood "ws://127.0.0.1:$GWC/mesh/v1/ws/chat/stall" 3000 2>&1)
read -r fmib fcode fsecs _ <<<"$out"
[ -n "${fsecs:-}" ] && [ "$fmib" -lt 128 ] || fail "flood at a backend that never reads: '$out'"
"$PYTHON" -c "import sys; sys.exit(not (2.0 <= float(sys.argv[1]) <= 60))" "$fsecs" ||
	fail "flooded WebSocket ended after $fsecs s: '$out'"
[ "$(ctl 3 --json svc streams | json_get ended idle)" -ge 2 ] || fail "flood not ended idle: $(ctl 3 --json svc streams)"
for n in 1 3; do
	[ "$(ctl $n --json svc streams | json_get ended slow_reader)" = 0 ] ||
		fail "node $n ended a stream slow_reader: $(ctl $n --json svc streams)"
done
pass "WebSocket flood at a backend that never reads: $fmib MiB left before the sends blocked, ended by the idle time after $fsecs s (close $fcode)"

code=$(netns_exec 3 curl -s -o "$D/bad.json" -w '%{http_code}' -H 'Connection: Upgrade' -H 'Upgrade: websocket' \
	"http://127.0.0.1:$GWC/mesh/v1/ws/chat/room")
[ "$code" = 400 ] && grep -q bad_upgrade "$D/bad.json" || fail "malformed upgrade: $code $(cat "$D/bad.json")"
code=$(netns_exec 3 "$PYTHON" "$HERE/svc_ws_client.py" refused "ws://chat.localhost:$GWC/x" "http://chat.localhost:$GWC")
[ "$code" = 403 ] || fail "backend Origin rule: got '$code'; $(grep -h 'ws \|stream' "$D"/n1/weftd.log* "$D"/n3/weftd.log* | tail -5); $(tail -5 "$D/chat.log")"
pass "malformed upgrade 400; the backend's Origin rule answers 403 through the gateway"

# SIGTERM with a WebSocket (through C's gateway) and a control-API stream
# (weftctl svc stream) open on C: each lent socket goes back to its server
# while that server still runs. Given back after it stopped, the handle was
# freed memory (ASan: SEGV in MHD_upgrade_action, before 2026-11-27), and
# the stop waited out the servers' connection drain first.
netns_exec 3 "$PYTHON" "$HERE/svc_ws_client.py" idle "ws://127.0.0.1:$GWC/mesh/v1/ws/chat/held" 60000 \
	>"$D/held.out" 2>&1 &
WSJ=$!
mkfifo "$D/hold"
ctl 3 svc stream echo held <"$D/hold" >/dev/null 2>&1 &
STJ=$!
exec 7>"$D/hold" # weftctl's stdin stays open, sending nothing
wait_for '[ "$(ctl 3 --json svc streams | json_get open)" -ge 2 ]' 30 ||
	fail "the two streams did not open on C: $(ctl 3 --json svc streams)"
t0=$(date +%s%N)
stop_weftd "$PID3"
rc=$?
ms=$((($(date +%s%N) - t0) / 1000000))
exec 7>&-
[ "$rc" = 0 ] || fail "C's exit status at SIGTERM with two streams open: $rc; $(tail -20 "$LOG3")"
grep -q Sanitizer "$LOG3" && fail "sanitizer report at C's stop: $(grep -A20 Sanitizer "$LOG3" | head -30)"
wait "$WSJ"
read -r hcode _ <"$D/held.out"
[ "${hcode:-}" = 1001 ] || fail "the held WebSocket at C's stop: '$(cat "$D/held.out")'"
wait "$STJ"
pass "SIGTERM on C with a WebSocket and a control stream open: exit 0 after $ms ms, the WebSocket closed 1001 (going away)"
finish
