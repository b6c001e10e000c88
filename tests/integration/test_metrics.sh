#!/bin/bash
# SPDX-License-Identifier: MIT
# /metrics of a running weftd (AF_XDP in a namespace, so the XDP and socket
# families are there too) follows the Prometheus conventions: promtool check
# metrics finds nothing (Debian's prometheus package), and our own checks:
# every family has HELP and TYPE, names are weft_<module>_<name>[_<unit>]
# (or process_*), counters end in _total, units are base units (seconds,
# bytes), histograms have _bucket (with le="+Inf"), _sum and _count, and
# latencies are histograms.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns 2 pair
command -v promtool >/dev/null || fail "promtool missing (make deps: prometheus)"
netns_weftd 1 xdp "$D" --workers 1
SOCK="$D/n1/weftd.sock"
# some traffic so that labelled series exist
"$WEFTCTL" --socket "$SOCK" dht ping "$(netns_ip4 2):6881" >/dev/null 2>&1
curl -sf --unix-socket "$SOCK" http://weftd/metrics >"$D/m" || fail "GET /metrics"
[ "$(grep -c '^weft_' "$D/m")" -ge 50 ] || fail "only $(grep -c '^weft_' "$D/m") weft samples"

promtool check metrics <"$D/m" >"$D/promtool" 2>&1
[ -s "$D/promtool" ] && fail "promtool check metrics: $(head -n 20 "$D/promtool")"
pass "promtool check metrics: clean ($(grep -c '^# TYPE' "$D/m") families)"

"$PYTHON" - "$D/m" <<'PY' || fail "conventions (above)"
import re, sys
text = open(sys.argv[1]).read().splitlines()
help_, type_, samples, bad = {}, {}, {}, []
for l in text:
    if l.startswith("# HELP "):
        n, _, h = l[7:].partition(" ")
        if not h.strip():
            bad.append(f"{n}: empty HELP")
        help_[n] = h
    elif l.startswith("# TYPE "):
        n, t = l[7:].split()
        type_[n] = t
    elif l and not l.startswith("#"):
        name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", l).group(0)
        samples.setdefault(name, []).append(l)
def family(n):
    for suf in ("_bucket", "_sum", "_count"):
        if n.endswith(suf) and type_.get(n[: -len(suf)]) == "histogram":
            return n[: -len(suf)]
    return n
for n in samples:
    f = family(n)
    if f not in type_:
        bad.append(f"{n}: no TYPE")
    if f not in help_:
        bad.append(f"{n}: no HELP")
for f, t in type_.items():
    if not re.fullmatch(r"weft_[a-z0-9]+_[a-z0-9_]+|process_[a-z_]+", f):
        bad.append(f"{f}: not weft_<module>_<name>")
    if t == "counter" and not f.endswith("_total"):
        bad.append(f"{f}: counter without _total")
    if t != "counter" and f.endswith("_total"):
        bad.append(f"{f}: _total on a {t}")
    if re.search(r"_(ms|us|usec|msec|ns|millis|micros|kb|mb|kib|mib)(_|$)", f):
        bad.append(f"{f}: not in base units")
    # latencies (latency, duration, rtt, or a time in seconds) are
    # histograms; a timestamp, an age (how old the oldest of something is:
    # a gauge), the uptime and a histogram's _max are not
    lat = re.search(r"(latency|duration|rtt)", f) or f.endswith("_seconds")
    if lat and t != "histogram" and not (f.endswith("_start_time_seconds") or f.endswith("_age_seconds")
                                         or f == "weft_node_uptime_seconds"
                                         or (f.endswith("_seconds_max") and type_.get(f[:-4]) == "histogram")):
        bad.append(f"{f}: a latency that is not a histogram")
    if t == "histogram":
        b = samples.get(f + "_bucket", [])
        if not any('le="+Inf"' in s for s in b) or f + "_sum" not in samples or f + "_count" not in samples:
            bad.append(f"{f}: histogram without +Inf bucket, _sum or _count")
hist = [f for f, t in type_.items() if t == "histogram"]
if not hist:
    bad.append("no histogram (latencies)")
for b in bad:
    print("BAD:", b)
print(f"{len(type_)} families, histograms: {' '.join(hist)}")
sys.exit(1 if bad else 0)
PY
pass "HELP and TYPE everywhere, weft_<module>_<name>_<unit>, _total counters, base units, latencies as histograms"

# the example Grafana dashboard: valid JSON, and every family it uses exists
"$PYTHON" -c 'import json,sys; json.load(open(sys.argv[1]))' "$TOP/docs/grafana-weft.json" ||
	fail "docs/grafana-weft.json is not JSON"
n=0
for f in $(grep -o 'weft_[a-z0-9_]*[a-z0-9]' "$TOP/docs/grafana-weft.json" | grep -v '^weft_io$' | sed 's/_bucket$//' | sort -u); do
	grep -q "^# TYPE $f " "$D/m" || fail "docs/grafana-weft.json uses $f, not in /metrics"
	n=$((n + 1))
done
[ $n -ge 10 ] || fail "only $n families in the dashboard"
pass "docs/grafana-weft.json: $n families, all exported"
finish
