#!/bin/bash
# SPDX-License-Identifier: MIT
# weftlab sim (docs/LAB.md): 500 nodes of weft's DHT core on the simulated
# network in virtual time, no root. A run is deterministic for its seed
# (one thread, one seeded generator, virtual clock: the same seed gives the
# same JSON), so the thresholds below cannot fail by luck: they hold for
# these seeds, and a change to the DHT or the driver that breaks them is a
# regression. Checks: every node joins and its table is healthy, lookups
# find the exact node / the announcer, a second run with the same seed gives
# identical results, churn replaces the stated share of nodes, the report
# plots the simulated CDF.
set -u
. "$TOP/tests/lib/common.sh"
SIM="$BUILD/weftlab-sim"
[ -x "$SIM" ] || fail "$SIM not built"
export WEFTLAB_SIM="$SIM"
LAB="$PYTHON $TOP/tools/weftlab"
prologue

$LAB --dir "$D" sim --nodes 500 lookups --lookups 400 --seed 11 >"$D/a.out" 2>&1 ||
	{ cat "$D/a.out"; fail "sim lookups"; }
cp "$D/results/sim-lookups.json" "$D/first.json"
$LAB --dir "$D" sim --nodes 500 lookups --lookups 400 --seed 11 >"$D/b.out" 2>&1 ||
	{ cat "$D/b.out"; fail "sim lookups (second run)"; }
"$PYTHON" - "$D/first.json" "$D/results/sim-lookups.json" <<'PY' || fail "sim lookups: $(cat "$D/a.out")"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
for r in (a, b):
    r.pop("wall_s"); r.pop("started"); r.pop("cpu_s"); r.pop("max_rss_kib")
assert a == b, "same seed, different results"
assert a["nodes"] == 500 and a["bootstrap"]["healthy"] == 500, a["bootstrap"]
assert a["tables"]["live"] == 500 and a["tables"]["min"] >= 32, a["tables"]
s = a["summary"]
assert s["find_node"]["count"] == 200 and s["get_peers"]["count"] == 200, s
# no loss in this model: every lookup finds its node / announcer
assert s["find_node"]["ok"] == 200 and s["get_peers"]["ok"] == 200, s
assert 1 <= s["find_node"]["hops_mean"] <= 8, s
assert a["network"]["lost"] == 0 and a["network"]["dropped_inflight_cap"] == 0
PY
pass "500 nodes: all healthy, 400/400 lookups found their node or announcer, same seed same JSON"

# 5 % datagram loss: every node joins (the driver pings its contact again
# while its table is empty, as weftd does), and every table is filled
# beyond its own neighbourhood (the DHT's periodic self-lookup and the
# refresh of thin buckets after it: without them the smallest table of this
# seed holds 5 nodes and 6 nodes never join)
$LAB --dir "$D" sim --nodes 500 lookups --lookups 400 --loss 0.05 --seed 13 >"$D/l.out" 2>&1 ||
	{ cat "$D/l.out"; fail "sim lookups at 5 % loss"; }
"$PYTHON" - "$D/results/sim-lookups.json" <<'PY' || fail "sim at 5 % loss: $(cat "$D/l.out")"
import json, sys
a = json.load(open(sys.argv[1]))
assert a["bootstrap"]["healthy"] == 500, a["bootstrap"]
assert a["tables"]["min"] >= 32, a["tables"]
assert a["network"]["lost"] > 0 and a["network"]["bootstrap_retries"] > 0, a["network"]
s = a["summary"]
assert s["find_node"]["success"] >= 0.98 and s["get_peers"]["success"] >= 0.98, s
PY
pass "5 % loss: 500/500 joined, smallest table $(grep -o '"min": [0-9]*' "$D/results/sim-lookups.json" | head -1)"

$LAB --dir "$D" sim --nodes 500 churn --lookups 300 --duration 600 --churn-fraction 0.2 \
	--churn-period 600 --seed 12 >"$D/c.out" 2>&1 || { cat "$D/c.out"; fail "sim churn"; }
"$PYTHON" - "$D/results/sim-churn.json" <<'PY' || fail "sim churn: $(cat "$D/c.out")"
import json, sys
r = json.load(open(sys.argv[1]))
# 20 % of 500 nodes per 600 s over 600 s: 100 replaced (one every 6 s)
assert 95 <= r["churn"]["replaced"] <= 100, r["churn"]
s = r["summary"]
n = s["find_node"]["count"] + s["get_peers"]["count"]
ok = s["find_node"]["ok"] + s["get_peers"]["ok"]
assert n >= 280 and ok / n >= 0.9, s
PY
pass "churn: $(grep -o 'replaced by churn: [0-9]*' "$D/c.out"), lookups $(awk '/^find_node|^get_peers/{print $1, $3}' "$D/c.out" | tr '\n' ' ')"

"$PYTHON" -c 'import matplotlib' 2>/dev/null || fail "python3-matplotlib missing (make deps)"
$LAB --dir "$D" report >"$D/r.out" 2>&1 || { cat "$D/r.out"; fail "report"; }
head -c 8 "$D/report/lookup_latency_cdf.png" | grep -q PNG || fail "no latency CDF"
grep -q 'sim-lookups' "$D/report/index.md" || fail "report lacks the sim results"
grep -q 'one-way 10-100 ms' "$D/report/index.md" || fail "report does not state the latency model"
pass "report: simulated latency CDF with its model"
finish
