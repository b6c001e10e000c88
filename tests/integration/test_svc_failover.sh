#!/bin/bash
# SPDX-License-Identifier: MIT
# Failover with several callers while a provider is killed (docs/SERVICE.md,
# "Failover"), across four weftd in network namespaces: B is the DHT
# contact; P1 and P2 publish the built-in echo; C runs four callers at once,
# each a loop of calls (3 s deadlines). The provider C ranks first is
# killed (SIGKILL: no goodbye) while the calls go on. Each caller sees at
# most one failed call (the one in flight or sent before the provider was
# marked dead), every call after it is answered by the other provider, and
# C's directory shows the killed one dead.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 4
IPB=$(netns_ip4 1)
CALLERS=4 CALLS=12

netns_weftd 1 uring "$D" --workers 1
for n in 2 3 4; do
	netns_weftd $n uring "$D" --workers 1 --bootstrap "$IPB:6881" \
		--set svc.peer_calls_per_min=100000 --set svc.addr_calls_per_min=100000
done
wait_for '[ "$(ctl 2 --json dht status | json_get nodes4)" -ge 1 ] && [ "$(ctl 3 --json dht status | json_get nodes4)" -ge 1 ] && [ "$(ctl 4 --json dht status | json_get nodes4)" -ge 1 ]' 150 ||
	fail "DHT did not form"
ctl 2 svc publish echo --backend builtin >/dev/null || fail "publish on P1"
ctl 3 svc publish echo --backend builtin >/dev/null || fail "publish on P2"
K2=$(ctl 2 --json status | json_get node_key)
K3=$(ctl 3 --json status | json_get node_key)
nfound() { ctl 4 --json svc find echo 2>/dev/null | "$PYTHON" -c 'import json,sys; print(len(json.load(sys.stdin)["results"]))'; }
wait_for '[ "$(nfound)" = 2 ]' 200 || fail "C does not find both providers: $(ctl 4 --json svc find echo 2>&1)"
FIRST=$(ctl 4 --json svc find echo | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["owner"])')
case "$FIRST" in
"$K2") VICTIM=2 OTHER=$K3 ;;
"$K3") VICTIM=3 OTHER=$K2 ;;
*) fail "first provider $FIRST is neither P1 nor P2" ;;
esac
pass "P1 and P2 publish echo; C finds both, ranks P$((VICTIM - 1)) first"

# Each caller: CALLS calls in a row; a line per call, "ok PEER" or "fail ...".
caller() {
	local i out
	for i in $(seq 1 $CALLS); do
		out=$(ctl 4 --json svc call echo x --data "c$1 $i" --timeout 3000 2>&1)
		if echo "$out" | "$PYTHON" -c 'import json,sys; o=json.load(sys.stdin); sys.exit(o.get("error") != "ok")' 2>/dev/null; then
			echo "ok $(echo "$out" | json_get peer)"
		else
			echo "fail $(echo "$out" | tr '\n' ' ' | head -c 200)"
		fi
	done >"$D/caller$1"
}
pids=()
for c in $(seq 1 $CALLERS); do
	caller $c &
	pids+=($!)
done
# Once every caller has had two calls answered, the first provider dies.
all_started() {
	local c
	for c in $(seq 1 $CALLERS); do
		[ "$(grep -c "^ok" "$D/caller$c" 2>/dev/null)" -ge 2 ] || return 1
	done
}
wait_for all_started 300 ||
	fail "callers did not start: $(head -3 "$D"/caller*)"
eval "kill -9 \$PID$VICTIM; wait \$PID$VICTIM" 2>/dev/null
for p in "${pids[@]}"; do
	wait "$p"
done
for c in $(seq 1 $CALLERS); do
	nfail=$(grep -c '^fail' "$D/caller$c")
	[ "$nfail" -le 1 ] || fail "caller $c saw $nfail failed calls: $(cat "$D/caller$c")"
	[ "$(wc -l <"$D/caller$c")" = $CALLS ] || fail "caller $c made $(wc -l <"$D/caller$c") calls"
	# after its failure (or the kill), the rest went to the other provider
	tail -n 3 "$D/caller$c" | grep -qv "^ok $OTHER" && fail "caller $c did not end on the other provider: $(cat "$D/caller$c")"
done
total=$(cat "$D"/caller* | grep -c '^fail')
pass "$CALLERS callers, $CALLS calls each, P$((VICTIM - 1)) killed: $total failed call(s), at most one per caller; the rest answered by the other"

ctl 4 --json svc find echo >"$D/find.json" || fail "find after the kill"
"$PYTHON" - "$D/find.json" "$FIRST" <<'PYEOF' || fail "killed provider not marked dead: $(cat "$D/find.json")"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
dead = [x for x in r if x["owner"] == sys.argv[2]]
sys.exit(not (dead and dead[0].get("dead") and r[-1]["owner"] == sys.argv[2]))
PYEOF
pass "C's directory shows the killed provider dead, ranked last"

for n in 1 2 3 4; do
	[ "$n" = "$VICTIM" ] && continue
	eval "stop_weftd \$PID$n" || fail "weftd $n did not stop cleanly"
done
finish
