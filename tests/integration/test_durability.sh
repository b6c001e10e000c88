#!/bin/bash
# SPDX-License-Identifier: MIT
# kill -9 in the middle of bursts of control operations loses nothing the
# control API acknowledged (uring mode, loopback, no root). Each round:
# start weftd on the same state directory, run five concurrent streams of
# operations (operator bans added, bans added then deleted, content added,
# services published and some unpublished, run-time limits raised step by
# step), kill -9 weftd while they run (after a random number of them were
# acknowledged), restart it and
# check that every acknowledged (2xx) operation is there: bans listed,
# deleted bans absent, shares and their blobs listed, publications listed,
# unpublished ones absent, limits at least the last acknowledged value (a
# later unacknowledged one may have landed too). Then: run-time limits
# override the configuration (--set) across restarts until reset.
set -u
. "$TOP/tests/lib/common.sh"
prologue
ROUNDS=4
N=40 # operations per stream and round
RANDOM=$((1309 + $$ % 7)) # where the kills fall varies a little; the checks do not
ARGS=(--state-dir "$D" --io uring --quic-port $QP --dht-port $DP --set xdp.unvalidated_dht_pps=5555
	--set xdp.unvalidated_quic_pps=4444)

# req METHOD PATH BODY: print the HTTP code (000: no answer).
req() {
	curl -s -m 20 -o /dev/null -w '%{http_code}' --unix-socket "$SOCK" -X "$1" \
		-H 'Content-Type: application/json' ${3:+--data "$3"} "http://weftd$2"
}

# One stream: OPS lines "KIND ID CODE" into $D/r$ROUND.KIND.
stream_bans() {
	local i c
	for ((i = 0; i < N; i++)); do
		c=$(req POST /v1/bans "{\"cidr\": \"10.$ROUND.$i.0/24\"}")
		echo "ban 10.$ROUND.$i.0/24 $c"
	done
}
stream_bandel() {
	local i c
	for ((i = 0; i < N; i++)); do
		c=$(req POST /v1/bans "{\"cidr\": \"172.16.$ROUND.$i/32\"}")
		echo "ban 172.16.$ROUND.$i/32 $c"
		[ "${c:0:1}" = 2 ] || continue
		c=$(req DELETE "/v1/bans/172.16.$ROUND.$i%2F32")
		echo "unban 172.16.$ROUND.$i/32 $c"
	done
}
stream_content() {
	local i c
	for ((i = 0; i < N / 2; i++)); do
		printf 'durable %s %s %s\n' "$ROUND" "$i" "$RANDOM" >"$D/files/f$ROUND-$i"
		c=$(req POST /v1/content/add \
			"{\"paths\": [\"$D/files/f$ROUND-$i\"], \"name\": \"dshare-$ROUND-$i\"}")
		echo "share dshare-$ROUND-$i $c"
	done
}
stream_svc() {
	local i c
	for ((i = 0; i < N / 2; i++)); do
		c=$(req POST /v1/svc/publish "{\"name\": \"dsvc-$ROUND-$i\", \"backend\": \"tcp:127.0.0.1:9\"}")
		echo "pub dsvc-$ROUND-$i $c"
		if [ $((i % 3)) = 0 ] && [ "${c:0:1}" = 2 ]; then
			c=$(req POST /v1/svc/unpublish "{\"name\": \"dsvc-$ROUND-$i\"}")
			echo "unpub dsvc-$ROUND-$i $c"
		fi
	done
}
stream_limits() {
	local i c v
	for ((i = 0; i < N; i++)); do
		v=$((1000 * ROUND + i + 1))
		echo "try $v"
		c=$(req PUT /v1/xdp/limits "{\"dht\": {\"pps\": $v, \"burst\": 777}}")
		echo "limit $v $c"
	done
}

mkdir -p "$D/files"
acked=0
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
	start_weftd "$D" "${ARGS[@]}"
	for s in bans bandel content svc limits; do
		stream_$s >"$D/r$ROUND.$s" 2>/dev/null &
	done
	# A random moment of the burst, counted in acknowledged operations (not
	# in time, which a loaded machine stretches): after 10 to 89 of the
	# ~200, while every stream is still sending.
	target=$((RANDOM % 80 + 10))
	wait_for "[ \$(cat '$D'/r$ROUND.* | grep -c ' 2[0-9][0-9]\$') -ge $target ]" 1200 ||
		fail "round $ROUND: fewer than $target operations acknowledged in 120 s"
	kill -9 "$WEFTD_PID"
	wait "$WEFTD_PID" 2>/dev/null
	wait
	n=$(cat "$D"/r$ROUND.* | grep -c ' 2[0-9][0-9]$')
	acked=$((acked + n))
	start_weftd "$D" "${ARGS[@]}"
	grep -qi "damaged\|not a weft store\|cannot open the store" "$WEFTD_LOG" &&
		fail "round $ROUND: store not clean after kill -9: $(grep -i store "$WEFTD_LOG")"
	curl -sf --unix-socket "$SOCK" http://weftd/v1/bans >"$D/bans.json" || fail "ban list"
	curl -sf --unix-socket "$SOCK" http://weftd/v1/content >"$D/content.json" || fail "content list"
	curl -sf --unix-socket "$SOCK" http://weftd/v1/svc/ls >"$D/svc.json" || fail "svc ls"
	curl -sf --unix-socket "$SOCK" http://weftd/v1/xdp/limits >"$D/limits.json" || fail "limits"
	"$PYTHON" - "$D" "$ROUND" <<'PY' || fail "round $ROUND: an acknowledged operation was lost"
import glob, json, sys
d, rnd = sys.argv[1], sys.argv[2]
bans = {b["cidr"] for b in json.load(open(d + "/bans.json"))["bans"]}
content = json.load(open(d + "/content.json"))
shares = {s["name"] for s in content["shares"]}
blobs = {b["id"] for b in content["blobs"] if b["state"] == "complete"}
svcs = {s["name"] for s in json.load(open(d + "/svc.json"))["services"]}
limits = json.load(open(d + "/limits.json"))
ok = lambda c: c.startswith("2")
bad, n = [], 0
for f in glob.glob("%s/r%s.*" % (d, rnd)):
    last_acked, last_tried = 0, 0
    text = open(f).read()
    for line in text.splitlines():
        p = line.split()
        if p[0] == "try":
            last_tried = int(p[1])
            continue
        kind, what, code = p
        if not ok(code):
            continue
        n += 1
        # An acknowledged add may be undone by a later delete, acknowledged or not.
        if kind == "ban" and what not in bans and ("unban " + what + " ") not in text:
            bad.append("acknowledged ban %s missing" % what)
        if kind == "unban" and what in bans:
            bad.append("acknowledged unban %s: still banned" % what)
        if kind == "share" and what not in shares:
            bad.append("acknowledged share %s missing" % what)
        if kind == "pub" and what not in svcs and ("unpub " + what + " ") not in text:
            bad.append("acknowledged publication %s missing" % what)
        if kind == "unpub" and what in svcs:
            bad.append("acknowledged unpublish %s: still published" % what)
        if kind == "limit":
            last_acked = int(what)
    if f.endswith(".limits") and last_acked:
        v = limits["dht"]["pps"]
        if not (last_acked <= v <= last_tried) or limits["dht"]["burst"] != 777:
            bad.append("limits: dht %s after acknowledged %d (last tried %d)" % (limits["dht"], last_acked, last_tried))
# Every share's blobs are in the index, complete.
for s in content["shares"]:
    if s["name"].startswith("dshare-") and not blobs:
        bad.append("share %s but no complete blob" % s["name"])
print("round %s: %d acknowledged operations checked" % (rnd, n))
for b in bad[:20]:
    print("LOST:", b)
sys.exit(1 if bad else 0)
PY
	stop_weftd "$WEFTD_PID" || fail "stop after round $ROUND"
done
pass "$ROUNDS rounds of kill -9 mid-burst: all $acked acknowledged operations kept"

# The blobs of the shares are there too (content index written by the chunk store).
start_weftd "$D" "${ARGS[@]}"
"$PYTHON" - "$SOCK" <<'PY' || fail "share items missing from the content index"
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1])
s.sendall(b"GET /v1/content HTTP/1.0\r\nHost: weftd\r\n\r\n")
r = b""
while True:
    b = s.recv(65536)
    if not b: break
    r += b
c = json.loads(r.split(b"\r\n\r\n", 1)[1])
blobs = {b["id"] for b in c["blobs"] if b["state"] == "complete"}
n = sum(1 for s in c["shares"] if s["name"].startswith("dshare-"))
if n == 0 or len(blobs) < n:
    sys.exit("%d shares, %d complete blobs" % (n, len(blobs)))
PY
pass "every share's content is in the index"

# Run-time limits override the configuration until reset; keys not set at
# run time follow the configuration.
[ "$(curl -sf --unix-socket "$SOCK" http://weftd/v1/xdp/limits | json_get unvalidated quic pps)" = 4444 ] ||
	fail "configured unvalidated quic pps not applied"
[ "$(req PUT /v1/xdp/limits '{"unvalidated": {"dht": {"pps": 7777}}}')" = 200 ] || fail "PUT unvalidated"
stop_weftd "$WEFTD_PID" || fail "stop"
ARGS+=(--set xdp.unvalidated_quic_pps=4343)
start_weftd "$D" "${ARGS[@]}"
l=$(curl -sf --unix-socket "$SOCK" http://weftd/v1/xdp/limits) || fail "limits"
[ "$(echo "$l" | json_get unvalidated dht pps)" = 7777 ] || fail "run-time value lost: $l"
[ "$(echo "$l" | json_get unvalidated quic pps)" = 4343 ] || fail "config change of an untouched key ignored: $l"
grep -q "run-time limits restored" "$WEFTD_LOG" || fail "restore not logged"
"$WEFTCTL" --socket "$SOCK" xdp limits reset >/dev/null || fail "limits reset"
[ "$(curl -sf --unix-socket "$SOCK" http://weftd/v1/xdp/limits | json_get unvalidated dht pps)" = 5555 ] ||
	fail "reset did not restore the configured value"
stop_weftd "$WEFTD_PID" || fail "stop"
start_weftd "$D" "${ARGS[@]}"
[ "$(curl -sf --unix-socket "$SOCK" http://weftd/v1/xdp/limits | json_get unvalidated dht pps)" = 5555 ] ||
	fail "reset not durable"
pass "run-time limits override the configuration until reset"

# The writer's metrics.
m=$(curl -sf --unix-socket "$SOCK" http://weftd/metrics) || fail "metrics"
for k in weft_store_queued weft_store_writes_committed_total weft_store_writes_dropped_total \
	weft_store_commit_seconds_count; do
	echo "$m" | grep -q "^$k " || fail "metric $k missing"
done
pass "weft_store_* metrics"
stop_weftd "$WEFTD_PID" || fail "final stop"
finish
