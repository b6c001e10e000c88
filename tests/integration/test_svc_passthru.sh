#!/bin/bash
# SPDX-License-Identifier: MIT
# HTTP pass-through on kept-alive backend connections (docs/SERVICE.md,
# "HTTP pass-through to backends") across two weftd in network namespaces:
# A publishes "web", a python3 http.server with protocol_version HTTP/1.1
# (tests/integration/svc_passthru_backend.py) that counts the connections
# it accepts; C and A each run a gateway.
#   - 20 GETs through C's gateway (remote provider) and 20 through A's own
#     (local backend) take fewer than 20 backend connections each;
#   - a chunked answer (chunk extensions, a trailer) arrives byte for byte;
#   - a backend that says Connection: close, or closes without saying so,
#     between requests: every next request is answered;
#   - HEAD (with the GET's Content-Length), 204 and 304 come back without
#     a body and the connection goes on; hop-by-hop headers (and what Connection names) stay on their hop;
#   - malformed framing (502 backend_protocol), an 80 KiB head (502) and a
#     stalled backend (504 within the deadline) cost only their request:
#     the next one is answered and every backend slot is freed.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
command -v curl >/dev/null || skip "curl missing"
IPA=$(netns_ip4 1)
GWA=5030 GWC=5031
HERE=$TOP/tests/integration

mkdir -p "$D/n1" "$D/n2"
# A long idle time: the test counts connections, it must not depend on
# how fast a loaded machine runs curl. C's requests are not rate-limited.
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 1 \
	--gateway "127.0.0.1:$GWA" --set gateway.services=web --set svc.backend_idle_ms=60000 \
	--set svc.peer_calls_per_min=100000 --set svc.addr_calls_per_min=100000
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1 \
	--bootstrap "$IPA:6881" --gateway "127.0.0.1:$GWC" --set gateway.services=web
KA=$(ctl 1 --json status | json_get node_key)

netns_exec 1 "$PYTHON" "$HERE/svc_passthru_backend.py" 8090 "$D/accepts" "$D/body.bin" >"$D/be.log" 2>&1 &
netns_on_exit "kill_job -TERM $!"
wait_for "[ -s '$D/body.bin' ] && netns_exec 1 curl -sf http://127.0.0.1:8090/n/up >/dev/null" 100 ||
	fail "backend: $(cat "$D/be.log")"
ctl 1 svc publish web --backend tcp:127.0.0.1:8090 >/dev/null || fail "publish web"
wait_for 'ctl 2 --json svc find web 2>/dev/null | grep -q "$KA"' 150 || fail "C does not find web"
pass "A publishes an HTTP/1.1 backend, C finds it"

accepts() { cat "$D/accepts"; }
GC="ip netns exec $(netns_name 2) curl -s --max-time 20"
GA="ip netns exec $(netns_name 1) curl -s --max-time 20"
UC="http://127.0.0.1:$GWC/mesh/v1/http/web"
UA="http://127.0.0.1:$GWA/mesh/v1/http/web"

# N requests, fewer than N backend connections: one curl, 20 URLs.
for g in C A; do
	if [ $g = C ]; then G=$GC U=$UC; else G=$GA U=$UA; fi
	a0=$(accepts)
	urls=() want=""
	for i in $(seq 1 20); do
		urls+=("$U/n/$g$i")
		want+="n$g$i"$'\n'
	done
	got=$($G "${urls[@]}") || fail "20 GETs through $g's gateway"
	[ "$got" = "${want%$'\n'}" ] || fail "20 GETs through $g's gateway answered: $got"
	a1=$(accepts)
	[ $((a1 - a0)) -lt 20 ] || fail "20 requests through $g's gateway took $((a1 - a0)) backend connections"
	eval "new_$g=$((a1 - a0))"
done
ctl 1 --json svc stats >"$D/stats"
[ "$(json_get backend reused <"$D/stats")" -ge 30 ] || fail "reuse not counted: $(json_get backend <"$D/stats")"
pass "20 GETs via C's gateway: $new_C new backend connection(s); 20 via A's own: $new_A (reused $(json_get backend reused <"$D/stats"))"

# Chunked from the backend: the body arrives intact (both paths).
for G in "$GC $UC" "$GA $UA"; do
	rm -f "$D/chunked.out"
	${G% *} -D "$D/ch.h" -o "$D/chunked.out" "${G##* }/chunked" || fail "chunked"
	cmp -s "$D/chunked.out" "$D/body.bin" || fail "chunked: $(stat -c %s "$D/chunked.out") bytes, not the body"
	grep -qi "^x-framing: chunked" "$D/ch.h" || fail "chunked: end-to-end header lost: $(cat "$D/ch.h")"
done
body=$($GC -X POST --data-binary "posted body" "$UC/echo") || fail "POST"
[ "$body" = "posted body" ] || fail "POST echo answered '$body'"
pass "a chunked answer of 200 KiB (extensions, a trailer) passes byte for byte; a POST body goes and comes back"

# A backend that closes between requests, saying so or not.
for k in 1 2 3; do
	out=$($GC -w ' %{http_code}\n' "$UC/close" "$UC/n/c$k" "$UC/drop" "$UC/n/d$k") || fail "close/drop round $k"
	want=$(printf 'bye 200\nnc%s\n 200\nbye 200\nnd%s\n 200' "$k" "$k")
	[ "$out" = "$want" ] || fail "close/drop round $k: $out"
done
pass "Connection: close and a silent close between requests: every next request answered"

# HEAD, 204, 304: no body, and the connection goes on.
out=$($GC -o /dev/null -w '%{http_code} %{size_download}\n' -I "$UC/n/h" --next -o /dev/null \
	-w '%{http_code} %{size_download}\n' "$UC/nocontent" --next -o /dev/null \
	-w '%{http_code} %{size_download}\n' "$UC/notmod" --next -w ' %{http_code}\n' "$UC/n/after")
want=$(printf '200 0\n204 0\n304 0\nnafter\n 200')
[ "$out" = "$want" ] || fail "HEAD/204/304: $out"
# nothing follows a 204 or a 304 on the client's connection either (a
# stray chunk would be read as the start of the next answer)
for k in $(seq 10); do
	out=$($GC -o /dev/null -w '%{http_code} %{size_download}\n' "$UC/notmod" --next -o /dev/null \
		-w '%{http_code} %{size_download}\n' "$UC/nocontent" --next -w ' %{http_code}\n' "$UC/n/x$k")
	[ "$out" = "$(printf '304 0\n204 0\nnx%s\n 200' "$k")" ] || fail "after 204/304, round $k: $out"
done
$GC -D - -o /dev/null "$UC/notmod" >"$D/304.h"
echo "304 head: $(tr -d '\r' <"$D/304.h" | tr '\n' '|')"
$GC -I "$UC/n/h" >"$D/head.h" || fail "HEAD"
[ "$(grep -ci "^content-length:" "$D/head.h")" = 1 ] && grep -qi "^content-length: 3" "$D/head.h" ||
	fail "HEAD: not the GET's length, once: $(cat "$D/head.h")"
$GC -D "$D/hop.h" -o /dev/null "$UC/hop" || fail "hop"
grep -qi "^x-end: e" "$D/hop.h" || fail "end-to-end header lost: $(cat "$D/hop.h")"
grep -qi "^x-secret\|^keep-alive" "$D/hop.h" && fail "hop-by-hop header passed: $(cat "$D/hop.h")"
pass "HEAD, 204 and 304 without a body; hop-by-hop headers and what Connection names stay on their hop"

# Bad answers cost only their request.
code=$($GC -o "$D/err" -w '%{http_code}' "$UC/garbage")
[ "$code" = 502 ] && grep -q backend_protocol "$D/err" || fail "garbage framing: $code $(cat "$D/err")"
code=$($GC -o "$D/err" -w '%{http_code}' "$UC/hugehead")
[ "$code" = 502 ] && grep -q backend_protocol "$D/err" || fail "80 KiB head: $code $(cat "$D/err")"
t0=$(date +%s%N)
code=$($GC -o "$D/err" -w '%{http_code}' -H "X-Weft-Timeout-Ms: 1500" "$UC/stall")
ms=$((($(date +%s%N) - t0) / 1000000))
[ "$code" = 504 ] || fail "stalled backend: $code $(cat "$D/err")"
[ "$ms" -lt 10000 ] || fail "stalled backend answered after $ms ms"
got=$($GC "$UC/n/still") || fail "after the bad answers"
[ "$got" = "nstill" ] || fail "after the bad answers: '$got'"
wait_for '[ "$(ctl 1 --json svc stats | json_get backend inflight)" = 0 ]' 50 ||
	fail "slots not freed: $(ctl 1 --json svc stats | json_get backend)"
ctl 1 --json svc stats >"$D/stats"
[ "$(json_get backend protocol_errors <"$D/stats")" -ge 2 ] || fail "protocol errors: $(json_get backend <"$D/stats")"
pass "malformed framing and an 80 KiB head -> 502 backend_protocol, a stall -> 504 in $ms ms; the next request answered, every slot freed"
finish
