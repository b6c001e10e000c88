#!/bin/bash
# SPDX-License-Identifier: MIT
# weftlab (tools/weftlab, docs/LAB.md): a lab of 10 release weftd, each in
# its own namespace, 8 on one bridge (2 of them relays) and 2 behind a
# random-fully NAT router; every scenario (bootstrap, lookups, distribute,
# services, relay/nat, churn, flood) produces JSON whose content is checked
# (every node healthy, every get_peers finds what was announced, every
# node's download verifies, every node finds the service and it answers,
# nodes behind the NAT are dialled by key through a relay, churn kills and
# restarts, the flood reaches its target); the report has its PNG plots;
# `down` leaves no namespace,
# link or process with the lab's prefix, also after `kill -9` of the tool
# in the middle of `up`; two labs side by side.
set -u
. "$TOP/tests/lib/common.sh"
prologue root
for c in ip tc nft; do command -v $c >/dev/null || fail "$c missing (make deps)"; done
"$PYTHON" -c 'import matplotlib' 2>/dev/null || fail "python3-matplotlib missing (make deps)"
LAB="$PYTHON $TOP/tools/weftlab"
export WEFTD="$WEFTD_REL" WEFTCTL="$WEFTCTL_REL"
prefixes=()
cleanup() {
	local d
	for d in "$D/a" "$D/b" "$D/c"; do [ -f "$d/lab.json" ] && $LAB --dir "$d" down >/dev/null 2>&1; done
}
on_exit cleanup
# the last lines of every node's log (to tell a weftd crash from a tool error)
node_logs() {
	local f
	for f in "$1"/nodes/n*/weftd.log; do echo "== $f"; tail -n 5 "$f"; done
}
prefix_of() { "$PYTHON" -c 'import json,sys; print(json.load(open(sys.argv[1]))["prefix"])' "$1/lab.json"; }
# nothing_left PREFIX: no namespace, no process in one, no link anywhere
nothing_left() {
	local p=$1
	ip netns list | grep -q "^$p-" && fail "namespaces left: $(ip netns list | grep "^$p-" | head -3)"
	pgrep -f "$D/[abc]/nodes/" >/dev/null && fail "weftd left: $(pgrep -af "$D/[abc]/nodes/" | head -3)"
	ip -o link | grep -q "$p" && fail "link left in the host namespace"
	grep -q "/run/netns/$p-" /proc/mounts && fail "netns mount left"
	return 0
}

# --- up: 10 nodes, 2 behind a random-fully NAT, 2 relays; a second lab beside it
$LAB --dir "$D/a" up --nodes 10 --nat g1:random-fully:2 --relay 2 >"$D/up.out" 2>&1 ||
	{ cat "$D/up.out"; fail "up failed"; }
PA=$(prefix_of "$D/a")
$LAB --dir "$D/b" up --nodes 2 >"$D/upb.out" 2>&1 || { cat "$D/upb.out"; fail "second lab: up failed"; }
PB=$(prefix_of "$D/b")
[ "$PA" != "$PB" ] || fail "two labs share the prefix $PA"
# Sane status. The tables may still be settling: once the NATed nodes
# learn their NAT they go read-only and leave the tables that counted them,
# and a bridge node that had not met every other bridge node yet meets it
# at its next lookups (a deadline, not a single look).
status_sane() {
$LAB --dir "$D/a" status --json >"$D/status.json" || return 1
"$PYTHON" - "$D/status.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
n = s["nodes"]
assert len(n) == 10, len(n)
assert all(v["alive"] and v["healthy"] for v in n), [v for v in n if not v["healthy"]]
assert [v["nat"] for v in n].count("g1") == 2
assert all(v["ip"].startswith(("198.18.", "10.1.")) for v in n), [v["ip"] for v in n]
PY
}
wait_for status_sane 600 || fail "status is not sane: $(cat "$D/status.json")"
[ "$(ip netns list | grep -c "^$PA-")" -eq 12 ] || fail "expected 12 namespaces (bridge, router, 10 nodes)"
pass "two labs up side by side ($PA: 10 nodes healthy, 2 behind a NAT; $PB: 2 nodes)"

# --- scenarios: bootstrap (cold restart), lookups, distribute; the report
$LAB --dir "$D/a" run bootstrap --seed 1 >"$D/boot.out" 2>&1 || { cat "$D/boot.out"; fail "run bootstrap"; }
$LAB --dir "$D/a" run lookups --seed 2 --count 60 >"$D/lk.out" 2>&1 || { cat "$D/lk.out"; fail "run lookups"; }
$LAB --dir "$D/a" run distribute --seed 3 --size 4 >"$D/dist.out" 2>&1 || { cat "$D/dist.out"; fail "run distribute"; }
"$PYTHON" - "$D/a/results" <<'PY' || fail "scenario results are not sane: $(cat "$D/boot.out" "$D/lk.out" "$D/dist.out")"
import json, os, sys
d = sys.argv[1]
r = lambda n: json.load(open(os.path.join(d, n + ".json")))
b = r("bootstrap")
assert b["mode"] == "cold" and b["healthy"] == 10 and b["t_all_healthy_s"] is not None, b
l = r("lookups")
s = l["summary"]
assert s["find_node"]["count"] + s["get_peers"]["count"] == 60, s
# every announced infohash was found by every get_peers; find_node reaches
# the exact node (a lookup may still time out on a NAT mapping: >= 90 %)
assert s["get_peers"]["ok"] == s["get_peers"]["count"], s["get_peers"]
assert s["find_node"]["success"] >= 0.9, s["find_node"]
assert all(x["hops"] is not None for x in l["lookups"] if x["ok"])
t = r("distribute")
assert t["downloaders"] == 9 and t["done"] == 9 and t["verified"] == 9, t
assert all(v["verified"] for v in t["per_node"].values()), t["per_node"]
assert t["t100_s"] is not None and t["seed_upload_bytes"] >= t["size"], t
assert len(t["resources"]) == 10 and all(v["rss_max"] > 0 for v in t["resources"].values())
# what the host lost over the run: steal and iowait always (from /proc/stat), never negative
hs = t["host_stall"]
assert "steal_s" in hs and "iowait_s" in hs and all(v >= 0 for v in hs.values()), hs
PY
grep -q '^host: steal [0-9.]* s, iowait' "$D/dist.out" || fail "distribute printed no host line: $(cat "$D/dist.out")"
grep -q '^find_node' "$D/lk.out" || fail "lookups printed no table"
# chunks the downloaders served from memory went to their streams lent,
# not copied (docs/CONTENT.md "Chunks kept in memory")
mem=0 lent=0
for s in "$D"/a/nodes/*/weftd.sock; do
	m=$(curl -s --unix-socket "$s" http://weftd/metrics)
	mem=$((mem + $(echo "$m" | awk '/^weft_content_chunk_reads_total\{check="memory"\}/{print $2}')))
	lent=$((lent + $(echo "$m" | awk '/^weft_content_chunk_reads_lent_total /{print $2}')))
done
[ "$lent" = "$mem" ] || fail "chunks served from memory: $mem, of them lent: $lent"
pass "distribute: $mem chunks served from memory, all lent"
# distribute's poll (KeptApi): one kept connection per node, an error answer
# keeps it, one the node closed is opened again
"$PYTHON" - "$TOP/tools/pylib" "$D/a/nodes/n1/weftd.sock" <<'PY' || fail "KeptApi"
import sys
sys.path.insert(0, sys.argv[1])
from weftlab.common import ApiError, KeptApi
s, k = sys.argv[2], KeptApi(timeout=5)
assert "node_key" in k.get(s, "/v1/status")
c = k.conns[s]
assert "jobs" in k.get(s, "/v1/content/jobs") and k.conns[s] is c, "not kept"
try:
    k.get(s, "/v1/content/jobs/999999")
    raise SystemExit("no error for a job that does not exist")
except ApiError as e:
    assert e.status == 404, e
assert k.conns[s] is c, "an error answer dropped the connection"
c.sock.close()
assert "node_key" in k.get(s, "/v1/status") and k.conns[s] is not c, "not opened again"
k.close()
assert not k.conns
PY

# services (echo on 2 nodes, 10 calls from each of the 10) and dial by key
# across the NAT (every node dials 3 others by key alone, each resolving it
# afresh once the records of the nodes behind the NAT list a relay). The
# deadlines are generous (finding the service: 240 s, a ping: 30 s): a
# loaded machine slows them down, it does not make them fail.
$LAB --dir "$D/a" run services --seed 6 --providers 2 --calls 10 --timeout 240 >"$D/svc.out" 2>&1 ||
	{ cat "$D/svc.out"; fail "run services"; }
$LAB --dir "$D/a" run relay --seed 7 --per-node 3 --fresh --wait-records 120 --ping-timeout 30000 \
	>"$D/relay.out" 2>&1 ||
	{ cat "$D/relay.out"; fail "run relay"; }
"$PYTHON" -c 'import json,sys; [print("failed ping:", p) for p in json.load(open(sys.argv[1]))["pairs"] if not p.get("ok")]' "$D/a/results/relay.json"
"$PYTHON" - "$D/a/results" <<'PY' || fail "services/relay results are not sane: $(cat "$D/svc.out" "$D/relay.out")"
import json, os, sys
d = sys.argv[1]
r = lambda n: json.load(open(os.path.join(d, n + ".json")))
s = r("services")
assert len(s["providers"]) == 2 and s["callers"] == 10 and s["found"] == 10, s
assert s["calls"] == s["expected_calls"] == 100, s
# every node found the service and got answers (a call may time out on a
# loaded machine: at least 90 % overall, at least one per node)
assert all(v["ok"] >= 1 for v in s["per_node"].values()), s["per_node"]
assert s["ok"] >= 90, s
n = r("relay")
assert len(n["pairs"]) == 30 and n["relays"] == 2, n
g = {(x["from"], x["to"]): x for x in n["groups"]}
# on the bridge every dial by key answers; a node behind the NAT reaches
# the bridge directly; the bridge reaches the NAT through a relay circuit
assert g[("bridge", "bridge")]["ok"] == g[("bridge", "bridge")]["count"], g
if ("g1", "bridge") in g:
    assert g[("g1", "bridge")]["ok"] == g[("g1", "bridge")]["count"], g
if ("bridge", "g1") in g:
    assert g[("bridge", "g1")]["ok"] >= 1 and n["relayed"] >= 1, (g, n["relayed"])
assert n["direct_share"] is not None and 0 <= n["direct_share"] <= 1
PY
grep -q 'direct share' "$D/relay.out" || fail "relay printed no direct share"

# churn (2 of 10 nodes killed and restarted during 8 s) and flood (node 2
# flooded from node 5's namespace for 3 s at 5000 datagrams/s, measured
# from the others; paced: this checks the scenario's mechanics, not how
# much a loaded CI machine's target survives, so no assertion on the calls'
# success)
$LAB --dir "$D/a" run churn --seed 4 --fraction 0.2 --duration 8 --down 2 >"$D/churn.out" 2>&1 ||
	{ cat "$D/churn.out"; node_logs "$D/a"; fail "run churn"; }
cp "$D/a/results/churn.json" "$D/churn-kill.json"
# churn by SIGTERM (the stress recipe's stops): one node stopped, timed
$LAB --dir "$D/a" run churn --seed 6 --fraction 0.1 --duration 4 --down 1 --signal term \
	>"$D/churn-term.out" 2>&1 || { cat "$D/churn-term.out"; node_logs "$D/a"; fail "run churn --signal term"; }
"$PYTHON" - "$D/a/results/churn.json" <<'PY' || fail "churn --signal term: $(cat "$D/churn-term.out")"
import json, sys
c = json.load(open(sys.argv[1]))
assert c["signal"] == "term" and c["stuck"] == 0, c
assert len(c["stops"]) == 1 and 0 < c["stops"][0]["s"] < 20 and c["stops"][0]["node"] != 1, c["stops"]
assert [e["ev"] for e in c["events"]] == ["kill", "start"], c["events"]
PY
grep -q '^stops: 1, slowest' "$D/churn-term.out" || fail "churn --signal term printed no stops"
cp "$D/churn-kill.json" "$D/a/results/churn.json"
$LAB --dir "$D/a" run flood --seed 5 --target 2 --attacker 5 --duration 3 --pps 5000 >"$D/flood.out" 2>&1 ||
	{ cat "$D/flood.out"; node_logs "$D/a"; fail "run flood"; }
"$PYTHON" - "$D/a/results" <<'PY' || fail "churn/flood results are not sane: $(cat "$D/churn.out" "$D/flood.out")"
import json, os, sys
d = sys.argv[1]
r = lambda n: json.load(open(os.path.join(d, n + ".json")))
c = r("churn")
kills = [e for e in c["events"] if e["ev"] == "kill"]
starts = [e for e in c["events"] if e["ev"] == "start"]
assert len(kills) == 2 and len(starts) == 2, c["events"]
assert all(e["tries"] >= 1 for e in starts), starts
assert all(e["node"] != 1 for e in kills), kills
assert sum(v["count"] for v in c["summary"].values()) == len(c["lookups"]) > 0
f = r("flood")
assert f["target"] == 2 and f["attacker"] == 5 and f["flood"]["sent"] > 0, f["flood"]
# the target's policer saw the flood
assert f["target_counters"].get("rx", 0) > 0, f["target_counters"]
assert [p["phase"] for p in f["phases"]] == ["before", "during", "after"]
assert all(p["calls"] > 0 and p["dht_pings"] > 0 for p in f["phases"]), f["phases"]
PY
$LAB --dir "$D/a" status >/dev/null || fail "a node is down after churn/flood"
$LAB --dir "$D/a" report >"$D/rep.out" 2>&1 || { cat "$D/rep.out"; fail "report"; }
for f in lookup_latency_cdf download_completion rss_per_node cpu_per_node; do
	head -c 8 "$D/a/report/$f.png" | grep -q PNG || fail "report: $f.png is not a PNG"
done
grep -q 'lookup_latency_cdf.png' "$D/a/report/index.html" || fail "report: index.html lacks the plots"
$LAB --dir "$D/a" top --once </dev/null >"$D/top.out" || fail "top --once"
grep -q '10/10 up' "$D/top.out" || fail "top: $(cat "$D/top.out")"
pass "bootstrap (10/10 healthy), lookups, distribute (9/9 verified), services, relay, churn (SIGKILL and SIGTERM), flood, report with 4 PNG plots, top"

# --- down, and down after kill -9 of the tool in the middle of up
$LAB --dir "$D/b" down >/dev/null || fail "down of the second lab failed"
ip netns list | grep -q "^$PB-" && fail "second lab's namespaces left"
$LAB --dir "$D/a" status >/dev/null || fail "the first lab suffered from the second's down"
$LAB --dir "$D/a" down >"$D/down.out" || fail "down failed: $(cat "$D/down.out")"
nothing_left "$PA"
[ -f "$D/a/lab.json" ] && fail "lab.json still there after down"
pass "down leaves no namespace, link, mount or process ($(cat "$D/down.out"))"
# the nodes' states stay for reading after down; --purge removes them
[ -d "$D/a/nodes/n1" ] || fail "down removed the nodes' states"
$LAB --dir "$D/a" down --purge >"$D/purge.out" || fail "down --purge failed: $(cat "$D/purge.out")"
[ -e "$D/a/nodes" ] && fail "down --purge left $D/a/nodes"
[ -f "$D/a/lab.down.json" ] && ls "$D/a/results/"*.json >/dev/null 2>&1 ||
	fail "down --purge removed the results or lab.down.json"
pass "down --purge removes the nodes' states, keeps results ($(cat "$D/purge.out"))"

$LAB --dir "$D/c" up --nodes 12 >"$D/upc.out" 2>&1 &
UP=$!
# kill it once it has created namespaces and started some weftd
wait_for '[ -f "$D/c/lab.json" ] && pgrep -f "$D/c/nodes/" >/dev/null' 300 || fail "up did not start nodes"
kill -9 $UP
wait $UP 2>/dev/null
PC=$(prefix_of "$D/c")
ip netns list | grep -q "^$PC-" || fail "nothing to clean up: the test did not catch up in the middle"
$LAB --dir "$D/c" down >"$D/downc.out" || fail "down after kill -9 failed: $(cat "$D/downc.out")"
nothing_left "$PC"
pass "down after kill -9 of up: nothing left ($(cat "$D/downc.out"))"
finish
