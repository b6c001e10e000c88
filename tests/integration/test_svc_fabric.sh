#!/bin/bash
# SPDX-License-Identifier: MIT
# Service fabric across three weftd in network namespaces (198.51.100.0/24):
# A (XDP in native mode on its veth, private bpffs) publishes echo and an
# HTTP service;
# B is the only DHT contact of A and C; C discovers and calls through the
# control API and its loopback gateway (curl). Forged, tampered, expired,
# future-dated and oversized descriptors served by A (through the
# diagnostic route) are rejected by C. Finally C exceeds the per-peer call
# rate: it gets rate_limited answers, A bans its address, the XDP program
# drops its packets (drop_banned rises) and A's router sees nothing more.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 3
command -v curl >/dev/null || skip "curl missing"
printf '#!/bin/sh\nmount -t bpf bpf /sys/fs/bpf || exit 1\nexec "$@"\n' >"$D/bpffs.sh"
chmod +x "$D/bpffs.sh"
IPA=$(netns_ip4 1) IPB=$(netns_ip4 2) IPC=$(netns_ip4 3)
GW=5030

mkdir -p "$D/n1" "$D/n2" "$D/n3" "$D/www"
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1
# A's packet policy: the XDP program in native mode on its veth (AF_XDP
# copy mode) by default. SVC_TEST_MODE=uring runs the software policer
# instead; SVC_TEST_MODE=generic runs XDP in skb mode, which on veth needs
# UDP GSO off at the senders: B and C send batches as one UDP GSO skb,
# veth and the bridge carry it unsegmented, and generic XDP sees (and
# redirects) the whole batch as one datagram, which the DHT and QUIC then
# drop as malformed. A native XDP program on a veth makes its peer clear
# NETIF_F_GSO_SOFTWARE, so the bridge segments before the veth (and a NIC
# never receives GSO frames from the wire). See docs/SERVICE.md.
AMODE=xdp
case "${SVC_TEST_MODE:-native}" in
uring) AMODE=uring AARGS=(--io uring) ;;
generic) AARGS=(--xdp eth0 --xdp-mode generic)
	for i in 2 3; do
		netns_exec $i ethtool -K eth0 tx-udp-segmentation off >/dev/null || fail "ethtool -K eth0 tx-udp-segmentation off in ns $i"
	done ;;
*) AARGS=(--xdp eth0 --xdp-mode native) ;;
esac
# A's per-peer rate comes from [svc] (80 calls/min instead of 100).
NETNS_EXEC="ip netns exec $(netns_name 1) $D/bpffs.sh" start_weftd "$D/n1" --state-dir "$D/n1" \
	"${AARGS[@]}" --workers 1 --bootstrap "$IPB:6881" --set svc.peer_calls_per_min=80
LOGA=$WEFTD_LOG
NETNS_EXEC="ip netns exec $(netns_name 3)" start_weftd "$D/n3" --state-dir "$D/n3" --io uring --workers 1 \
	--bootstrap "$IPB:6881" --gateway "127.0.0.1:$GW" --set gateway.services=echo,web,hdr,hdrc,webc
[ "$(ctl 1 --json status | json_get io_mode)" = $AMODE ] || fail "A not in $AMODE mode"
[ "$(ctl 1 --json svc stats | json_get limits peer_calls_per_min)" = 80 ] ||
	fail "svc.peer_calls_per_min not applied: $(ctl 1 --json svc stats)"
[ "$(ctl 3 --json svc stats | json_get limits peer_calls_per_min)" = 100 ] || fail "default limit"
wait_for '[ "$(ctl 1 --json dht status | json_get nodes4)" -ge 1 ] && [ "$(ctl 3 --json dht status | json_get nodes4)" -ge 1 ]' 100 ||
	fail "DHT did not form"
pass "three nodes, A in $AMODE mode, B the only contact"

# HTTP backend on A's loopback.
echo "hello from A's web server" >"$D/www/hello.txt"
# 3 MiB of fixed bytes: a pass-through many chunks long (the owner queues
# them to the gateway's thread, under svc.http_buffer = 4 MiB).
"$PYTHON" -c "import sys,random; random.seed(13); sys.stdout.buffer.write(random.randbytes(3 << 20))" >"$D/www/big.bin"
netns_exec 1 "$PYTHON" -m http.server 8080 --bind 127.0.0.1 --directory "$D/www" >/dev/null 2>&1 &
HPID=$!
netns_on_exit "kill_job -TERM $HPID"
wait_for "netns_exec 1 curl -sf http://127.0.0.1:8080/hello.txt >/dev/null" 50 || fail "http.server"

ctl 1 svc publish echo --backend builtin >/dev/null || fail "publish echo"
ctl 1 svc publish web --backend tcp:127.0.0.1:8080 >/dev/null || fail "publish web"
ctl 1 svc publish nope --backend ftp:x 2>/dev/null; [ $? -eq 1 ] || fail "bad backend accepted"
wait_for '[ "$(ctl 1 --json svc ls | "$PYTHON" -c "import json,sys; print(min(s[\"announced\"] for s in json.load(sys.stdin)[\"services\"]))")" -ge 1 ]' 100 ||
	fail "announce not stored: $(ctl 1 --json svc ls)"
KA=$(ctl 1 --json status | json_get node_key)
ctl 3 --json svc find echo >"$D/find" || fail "find"
[ "$(json_get results 0 owner <"$D/find" 2>/dev/null)" = "$KA" ] || fail "find: $(cat "$D/find") $(ctl 3 --json svc stats) $(ctl 3 quic ping "$IPA:4433" 2>&1)"
grep -q "\"$IPA:4433\"" "$D/find" || fail "endpoint missing: $(cat "$D/find")"
ID=$(json_get results 0 id <"$D/find")
ctl 3 --json svc find "$ID" | grep -q "$KA" || fail "find by id"
pass "publish on A, discover from C through B"

# A streams to its own offer: over QUIC to its own address, which with
# AF_XDP goes by the kernel-path socket (no neighbour for it) and comes
# back through the kernel to that socket (docs/SERVICE.md, "Clients").
out=$(echo hi | ctl 1 svc stream echo x 2>&1) || fail "A ($AMODE) streaming to its own echo: exit $?, '$out'"
[ "$out" = hi ] || fail "A ($AMODE) streaming to its own echo answered '$out'"
pass "A ($AMODE) streams to its own echo"

out=$(ctl 3 svc call echo ping --data "hello mesh") || fail "call"
[ "$out" = "hello mesh" ] || fail "echo answered '$out'"
ctl 3 --json svc call echo ping --data x --count 40 --concurrency 8 >"$D/many" || fail "calls"
[ "$(json_get ok <"$D/many")" = 40 ] || fail "concurrent calls: $(cat "$D/many")"
ctl 3 svc call nosuch x 2>/dev/null && fail "call to an unknown service succeeded"
pass "calls from C to A over QUIC"

G="ip netns exec $(netns_name 3) curl -s"
body=$($G -X POST --data-binary "via gateway" "http://127.0.0.1:$GW/mesh/v1/call/echo/ping") || fail "gateway call"
[ "$body" = "via gateway" ] || fail "gateway call answered '$body'"
$G "http://127.0.0.1:$GW/mesh/v1/services/echo" | grep -q "$KA" || fail "gateway discovery"
body=$($G "http://127.0.0.1:$GW/mesh/v1/http/web/hello.txt") || fail "pass-through"
[ "$body" = "hello from A's web server" ] || fail "pass-through answered '$body'"
$G -o "$D/big.out" "http://127.0.0.1:$GW/mesh/v1/http/web/big.bin" || fail "big pass-through"
cmp -s "$D/big.out" "$D/www/big.bin" || fail "big pass-through: $(stat -c %s "$D/big.out") bytes, not the file"
# The same file from a backend on C itself: C's own backend stream feeds
# its gateway's thread (the backend is read again when the queue is full).
netns_exec 3 "$PYTHON" -m http.server 8082 --bind 127.0.0.1 --directory "$D/www" >/dev/null 2>&1 &
CPID=$!
netns_on_exit "kill_job -TERM $CPID"
wait_for "netns_exec 3 curl -sf http://127.0.0.1:8082/hello.txt >/dev/null" 50 || fail "C's http.server"
ctl 3 svc publish webc --backend tcp:127.0.0.1:8082 >/dev/null || fail "publish webc"
rm -f "$D/big.out"
$G -o "$D/big.out" "http://127.0.0.1:$GW/mesh/v1/http/webc/big.bin" || fail "local big pass-through"
cmp -s "$D/big.out" "$D/www/big.bin" || fail "local big pass-through: $(stat -c %s "$D/big.out") bytes"
code=$($G -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW/mesh/v1/http/web/absent.txt")
[ "$code" = 404 ] || fail "pass-through status $code, want the backend's 404"
code=$($G -o /dev/null -w '%{http_code}' -X POST --data x "http://127.0.0.1:$GW/mesh/v1/call/mesh-stats/x")
[ "$code" = 403 ] || fail "non-whitelisted service: $code"
grep -q "via gateway" "$D"/n*/weftd.log.* && fail "a request body reached a log"
pass "gateway: call, discovery, HTTP pass-through (3 MiB byte for byte, remote and local), whitelist"

# Gateway origins and headers across nodes: a backend on A that echoes the
# request head it received and sets a cookie, published twice: "hdr" with
# the defaults, "hdrc" with --http-credentials and a CORS origin.
cat >"$D/hdr.py" <<'PYEOF'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = str(self.headers).encode()
        self.send_response(200)
        self.send_header("Set-Cookie", "sid=from-provider")
        self.send_header("Keep-Alive", "timeout=5")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PYEOF
netns_exec 1 "$PYTHON" "$D/hdr.py" 8081 >/dev/null 2>&1 &
HDRPID=$!
netns_on_exit "kill_job -TERM $HDRPID"
ctl 1 svc publish hdr --backend tcp:127.0.0.1:8081 >/dev/null || fail "publish hdr"
ctl 1 svc publish hdrc --backend tcp:127.0.0.1:8081 --http-credentials --cors http://app.localhost:1 >/dev/null ||
	fail "publish hdrc"
ctl 3 svc call echo x >/dev/null
wait_for 'ctl 3 --json svc find hdrc | grep -q "$KA"' 100 || fail "find hdrc"
IDC=$(ctl 3 --json svc find hdrc | json_get results 0 id)
wait_for 'ctl 3 --json svc find hdr | grep -q "$KA"' 100 || fail "find hdr"
SECRETS=(-H "Cookie: sid=local-secret" -H "Authorization: Bearer local-token" -H "Proxy-Authorization: Basic eA==" -H "Connection: X-Private" -H "X-Private: p")
code=$($G -o /dev/null -w '%{http_code}' -H "Host: evil.example:$GW" "http://127.0.0.1:$GW/mesh/v1/services/echo")
[ "$code" = 421 ] || fail "DNS-rebinding Host answered $code, want 421"
code=$($G -o /dev/null -w '%{http_code}' -H "Origin: http://evil.example" "http://127.0.0.1:$GW/mesh/v1/services/echo")
[ "$code" = 403 ] || fail "foreign Origin answered $code, want 403"
pass "gateway refuses a foreign Host (421) and a foreign Origin (403)"
# The service's own origin, across nodes: nothing secret crosses.
$G -D "$D/h1" -o "$D/b1" "${SECRETS[@]}" -H "Host: hdr.localhost:$GW" "http://127.0.0.1:$GW/x" || fail "hdr origin"
grep -q "^HTTP/1.1 200" "$D/h1" || fail "hdr origin: $(head -1 "$D/h1")"
grep -qi "^host: hdr" "$D/b1" || fail "backend saw: $(cat "$D/b1")"
grep -qiE "local-secret|local-token|proxy-authorization|x-private" "$D/b1" && fail "secrets reached the provider: $(cat "$D/b1")"
grep -qiE "^set-cookie|^keep-alive" "$D/h1" && fail "Set-Cookie / Keep-Alive passed back: $(cat "$D/h1")"
# Path form: the same, sandboxed.
$G -D "$D/h2" -o "$D/b2" "${SECRETS[@]}" "http://127.0.0.1:$GW/mesh/v1/http/hdrc/y" || fail "path form"
grep -qiE "local-secret|local-token" "$D/b2" && fail "path form passed credentials: $(cat "$D/b2")"
grep -qi "^set-cookie" "$D/h2" && fail "path form passed Set-Cookie"
grep -qi "^content-security-policy: sandbox" "$D/h2" || fail "path form not sandboxed: $(cat "$D/h2")"
# The pinned origin of the service that opted in: credentials cross.
$G -D "$D/h3" -o "$D/b3" "${SECRETS[@]}" -H "Host: $IDC.localhost:$GW" "http://127.0.0.1:$GW/z" || fail "pinned origin"
grep -q "local-secret" "$D/b3" && grep -q "local-token" "$D/b3" || fail "opt-in: credentials missing at the provider: $(cat "$D/b3")"
grep -qiE "proxy-authorization|x-private" "$D/b3" && fail "opt-in passed hop-by-hop headers: $(cat "$D/b3")"
grep -qi "^set-cookie: sid=from-provider" "$D/h3" || fail "opt-in: Set-Cookie missing: $(cat "$D/h3")"
code=$($G -o /dev/null -w '%{http_code}' -H "Host: $IDC.localhost:$GW" -H "Origin: http://app.localhost:1" "http://127.0.0.1:$GW/z")
[ "$code" = 200 ] || fail "CORS origin of hdrc answered $code"
pass "gateway across nodes: per-service origins, no credentials unless opted in (pinned origin), no hop-by-hop headers"

for m in forged:owner tampered:signature expired:expired future:future oversized:oversized; do
	mode=${m%%:*} reason=${m#*:}
	curl -sf --unix-socket "$D/n1/weftd.sock" -H 'Content-Type: application/json' \
		--data "{\"name\": \"bad-$mode\", \"mode\": \"$mode\"}" http://weftd/v1/svc/debug/descriptor >/dev/null ||
		fail "debug descriptor $mode"
done
sleep 1
for m in forged:owner tampered:signature expired:expired future:future oversized:oversized; do
	mode=${m%%:*} reason=${m#*:}
	before=$(ctl 3 --json svc stats | json_get fabric rejected "$reason")
	ctl 3 --json svc find "bad-$mode" >"$D/bad" || fail "find bad-$mode"
	[ "$(json_get results <"$D/bad")" = "[]" ] || fail "$mode descriptor accepted: $(cat "$D/bad")"
	after=$(ctl 3 --json svc stats | json_get fabric rejected "$reason")
	[ "$after" -gt "$before" ] || fail "$mode not rejected as $reason ($before -> $after)"
done
pass "forged, tampered, expired, future-dated and oversized descriptors rejected"

# Over the per-peer rate (80 calls/min from [svc]): rate_limited, then a
# ban into XDP.
ctl 3 --json svc call echo x --count 130 --concurrency 8 --timeout 300 >"$D/flood" || fail "flood"
echo "flood: $(cat "$D/flood" | tr -d '\n')"
"$PYTHON" -c 'import json,sys; e=json.load(open(sys.argv[1]))["errors"]; sys.exit(0 if e.get("rate_limited",0)>=10 else 1)' "$D/flood" ||
	fail "no rate_limited answers: $(cat "$D/flood")"
# The flood's 130 calls (8 at a time: the ~50 that time out once C is
# banned wait in parallel) go out within seconds, inside one minute's window:
# at most 80 of them answered ok. (Not A's total since the start: on a busy
# machine the test's earlier calls to A may lie more than a minute before,
# and the sliding window has given them back.) And the limit is not
# stricter than set: A answered at least 60 calls in all.
fok=$(json_get ok <"$D/flood")
[ "$fok" -le 80 ] || fail "the flood got $fok calls answered ok, want at most 80 (svc.peer_calls_per_min=80)"
nok=$(ctl 1 --json svc stats | json_get router results ok)
[ "$nok" -ge 60 ] || fail "A answered $nok calls ok in all, want at least 60 (svc.peer_calls_per_min=80)"
wait_for 'ctl 1 ban list | grep -q "^$IPC/32 "' 50 || fail "C not banned: $(ctl 1 ban list)"
# logged with a tag, not the address (log.addresses is off by default)
grep -q "banned addr-[0-9a-f]\{8\}/32" "$LOGA" || fail "ban not logged"
grep "banned addr" "$LOGA" | grep -q "$IPC" && fail "the banned address is in the log"
pass "rate-limited caller gets clear errors, then its address is banned"
c0=$(ctl 1 --json xdp status | json_get counters drop_banned)
r0=$(ctl 1 --json svc stats | json_get fabric calls_in)
ctl 3 --json svc call echo x --count 3 --timeout 300 >/dev/null
ip netns exec "$(netns_name 3)" "$PYTHON" -c 'import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(20): s.sendto(b"x"*64,("'"$IPA"'",4433))'
sleep 0.5
c1=$(ctl 1 --json xdp status | json_get counters drop_banned)
r1=$(ctl 1 --json svc stats | json_get fabric calls_in)
[ "$c1" -ge $((c0 + 20)) ] || fail "drop_banned $c0 -> $c1"
[ "$r1" = "$r0" ] || fail "A's router still saw calls from C: $r0 -> $r1"
ctl 3 svc call echo x --timeout 300 >/dev/null 2>&1 && fail "banned caller still answered"
pass "banned caller's packets dropped by the $AMODE policy ($c0 -> $c1), userspace saw nothing"
finish
