#!/bin/bash
# SPDX-License-Identifier: MIT
# No remote peer can pin a thread, a slot or a shutdown (issue 13, 1).
# Two weftd in network namespaces: A publishes "stall", a TCP backend that
# accepts connections and never answers, and the built-in echo; C (whose
# only DHT contact is A) sends 2000 calls (128 at a time) and 1000 HTTP
# pass-throughs through its gateway (64 at a time) at "stall", each with a
# 1000 ms deadline. Checked: A's thread count stays at its idle figure
# (sampled every 100 ms from /proc), every call and pass-through ends with
# a timeout within its deadline plus slack, echo on A keeps answering
# meanwhile, and SIGTERM ends A, then C, promptly while a stall burst is
# in flight (a bound of 8 s against the burst's 20 s deadlines, so that a
# busy machine does not fail it). The figures are printed (docs/SERVICE.md
# quotes them).
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2
IPA=$(netns_ip4 1)
GW=5031
DEADLINE_MS=1000
# The slack tells "the deadline ended it" from "nothing did" (the backend
# never answers: without the deadline a call never ends), not how fast.
# 128 calls in flight under ASan on a loaded 2-core machine took 2.6 s
# (1.5 s of slack failed there); with two busy loops on both cores more:
# 9 s keeps the test about correctness on a busy machine (issue 30, item 5).
SLACK_MS=${STALL_SLACK_MS:-9000}
# A stop pinned by the burst in flight would last until its calls' 20 s
# deadline; a prompt stop takes well under a second idle. 8 s tells the
# two apart with room for a machine whose cores are both taken.
STOP_MS=${STALL_STOP_MS:-8000}
mkdir -p "$D/n1" "$D/n2"

# A: limits lifted so that the only bound in play is the deadline (C is
# one peer from one address sending far more than the defaults allow).
LIFT=(--set svc.peer_calls_per_min=100000000 --set svc.addr_calls_per_min=100000000
	--set svc.peer_concurrency=100000 --set svc.addr_concurrency=100000)
NETNS_EXEC="ip netns exec $(netns_name 1)" start_weftd "$D/n1" --state-dir "$D/n1" --io uring --workers 1 "${LIFT[@]}"
PIDA=$WEFTD_PID
LOGA=$WEFTD_LOG
NETNS_EXEC="ip netns exec $(netns_name 2)" start_weftd "$D/n2" --state-dir "$D/n2" --io uring --workers 1 \
	--bootstrap "$IPA:6881" --gateway "127.0.0.1:$GW" --set gateway.services=stall,echo
PIDC=$WEFTD_PID
LOGC=$WEFTD_LOG
wait_for '[ "$(ctl 2 --json dht status | json_get nodes4)" -ge 1 ]' 100 || fail "DHT did not form"

# The stalled backend: accepts, reads nothing, answers nothing, closes nothing.
cat >"$D/stall.py" <<'EOF'
import socket, sys, select
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(4096)
held = []
while True:
    c, _ = s.accept()
    held.append(c)
EOF
netns_exec 1 "$PYTHON" "$D/stall.py" 9000 >/dev/null 2>&1 &
SPID=$!
netns_on_exit "kill_job -TERM $SPID"
ctl 1 svc publish stall --backend tcp:127.0.0.1:9000 >/dev/null || fail "publish stall"
ctl 1 svc publish echo --backend builtin >/dev/null || fail "publish echo"
wait_for 'ctl 2 --json svc find stall | grep -q 9000 || ctl 2 --json svc find stall | grep -q "\"owner\""' 100 ||
	fail "C cannot find stall: $(ctl 2 --json svc find stall)"
wait_for 'ctl 2 --json svc find echo | grep -q "\"owner\""' 100 || fail "C cannot find echo"
[ "$(ctl 2 svc call echo ping --data warm)" = warm ] || fail "echo before the stall"
# One pass-through first, so that C's gateway and connection exist.
curl -s -o /dev/null -H "Host: stall.localhost:$GW" -H "X-Weft-Timeout-Ms: 200" "http://127.0.0.1:$GW/" || true
pass "A publishes stall and echo; C finds both"

threads() { ls "/proc/$1/task" 2>/dev/null | wc -l; }
sleep 1
IDLE_A=$(threads "$PIDA")
IDLE_C=$(threads "$PIDC")
echo "idle threads: A $IDLE_A, C $IDLE_C"

# The pass-through client: N requests, C at a time, each timed.
cat >"$D/gw.py" <<'EOF'
import http.client, json, sys, time, concurrent.futures as cf
port, n, conc, dl = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def one(i):
    t0 = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        c.request("GET", "/x%d" % i, headers={"Host": "stall.localhost:%d" % port, "X-Weft-Timeout-Ms": dl})
        r = c.getresponse()
        body = r.read()
        code = json.loads(body)["error"]["code"] if r.status >= 400 else "ok"
        st = r.status
        c.close()
    except Exception as e:
        st, code = 0, type(e).__name__
    return st, code, (time.monotonic() - t0) * 1000
res = list(cf.ThreadPoolExecutor(conc).map(one, range(n)))
out = {}
for st, code, ms in res:
    k = "%d %s" % (st, code)
    out[k] = out.get(k, 0) + 1
print(json.dumps({"results": out, "max_ms": round(max(r[2] for r in res)), "n": n}))
EOF

# Sampler: the highest thread count of A and C every 100 ms.
( mA=0; mC=0; while [ ! -f "$D/stop-sampling" ]; do
	a=$(threads "$PIDA"); c=$(threads "$PIDC")
	[ "$a" -gt "$mA" ] && mA=$a; [ "$c" -gt "$mC" ] && mC=$c
	echo "$mA $mC" >"$D/max-threads"; sleep 0.1; done ) &
SAMPLER=$!
netns_on_exit "kill_job -TERM $SAMPLER"

ctl 2 --json svc call stall x --count 2000 --concurrency 128 --timeout $DEADLINE_MS >"$D/calls" &
CALLS=$!
netns_exec 2 "$PYTHON" "$D/gw.py" $GW 1000 64 $DEADLINE_MS >"$D/http" &
HTTP=$!
# Meanwhile another service on A keeps answering, over the network and
# through the gateway.
sleep 2
echo_ok=0
for i in 1 2 3 4 5; do
	[ "$(ctl 2 svc call echo ping --data "e$i" 2>/dev/null)" = "e$i" ] && echo_ok=$((echo_ok + 1))
	b=$(netns_exec 2 curl -s --max-time 5 -X POST --data "g$i" "http://127.0.0.1:$GW/mesh/v1/call/echo/ping")
	[ "$b" = "g$i" ] && echo_ok=$((echo_ok + 1))
	sleep 0.5
done
wait $CALLS
wait $HTTP
touch "$D/stop-sampling"
wait $SAMPLER 2>/dev/null
read -r MAX_A MAX_C <"$D/max-threads"
echo "calls: $(cat "$D/calls" | tr -d '\n')"
echo "pass-throughs: $(cat "$D/http")"
echo "threads: A idle $IDLE_A, max under the stall $MAX_A; C idle $IDLE_C, max $MAX_C"
echo "echo answered $echo_ok/10 during the stall"

[ "$echo_ok" = 10 ] || fail "echo on A stopped answering during the stall ($echo_ok/10)"
[ "$(json_get errors timeout <"$D/calls")" = 2000 ] || fail "not every call ended with a timeout: $(cat "$D/calls")"
maxc=$(json_get max_us <"$D/calls")
[ "$maxc" -le $(((DEADLINE_MS + SLACK_MS) * 1000)) ] || fail "slowest call took ${maxc}us (deadline ${DEADLINE_MS} ms + ${SLACK_MS} ms slack)"
"$PYTHON" -c 'import json,sys; r=json.load(open(sys.argv[1])); sys.exit(0 if r["results"]=={"504 timeout":1000} and r["max_ms"] <= int(sys.argv[2]) else 1)' \
	"$D/http" $((DEADLINE_MS + SLACK_MS)) || fail "pass-throughs: $(cat "$D/http")"
# A: the stall costs no thread (a constant margin for the ctl connection
# of the publish checks and the ASan runtime).
[ "$MAX_A" -le $((IDLE_A + 2)) ] || fail "A's threads grew under the stall: $IDLE_A -> $MAX_A"
pass "2000 calls + 1000 pass-throughs at a stalled backend: all timeout within ${DEADLINE_MS}+${SLACK_MS} ms, A threads $IDLE_A -> $MAX_A, echo kept answering"

# SIGTERM with a stall burst in flight: A, then C, promptly (bound: STOP_MS).
ctl 2 --json svc call stall x --count 400 --concurrency 128 --timeout 20000 >/dev/null 2>&1 &
netns_exec 2 "$PYTHON" "$D/gw.py" $GW 64 64 20000 >/dev/null 2>&1 &
sleep 1.5
stop_time() {
	local pid=$1 t0 t1
	t0=$(date +%s%N)
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null && [ $(($(date +%s%N) - t0)) -lt 10000000000 ]; do sleep 0.02; done
	t1=$(date +%s%N)
	kill -0 "$pid" 2>/dev/null && { echo 99999; return; }
	echo $(((t1 - t0) / 1000000))
}
TA=$(stop_time "$PIDA")
echo "A stopped $TA ms after SIGTERM (stalled backend connections and peer streams in flight)"
[ "$TA" -le "$STOP_MS" ] || fail "A took $TA ms to stop (bound $STOP_MS ms; its stalled calls' deadline is 20 s)"
TC=$(stop_time "$PIDC")
echo "C stopped $TC ms after SIGTERM (control and gateway requests waiting)"
[ "$TC" -le "$STOP_MS" ] || fail "C took $TC ms to stop (bound $STOP_MS ms; its stalled calls' deadline is 20 s)"
pass "SIGTERM ends A in $TA ms and C in $TC ms"
# A clean exit: status 0, and no sanitizer report (leaks included).
wait "$PIDA"; ra=$?
wait "$PIDC"; rc=$?
[ "$ra" = 0 ] && [ "$rc" = 0 ] || fail "exit status A $ra, C $rc"
grep -l "Sanitizer" "$LOGA" "$LOGC" && fail "sanitizer report: $(grep -h -A20 Sanitizer "$LOGA" "$LOGC" | head -40)"
san_reports && fail "sanitizer report (above)"
pass "both exit 0 without a sanitizer report"
finish
