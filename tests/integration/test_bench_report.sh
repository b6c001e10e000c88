#!/bin/bash
# SPDX-License-Identifier: MIT
# The benchmark report generator (bench/report.py, docs/BENCH.md) on the
# stored sample results tests/bench/*.json (written by bench_io and
# bench_dht through bench/benchlib.c): report.md is produced and holds every
# ratio with a goal (label, value, goal status), the "same work" rule of
# each result and the load average; details.md lists every figure (id and
# value), every ratio and every series point; every PNG report.md links
# (ratios.png, lines.png) is a valid image (signature, chunk CRCs, IHDR
# size, decodable).
# Malformed results are refused with the file named and no report written.
# No benchmark runs here and no timing is checked: the figures are data.
set -u
. "$TOP/tests/lib/common.sh"
"$PYTHON" -c 'import matplotlib' 2>/dev/null || fail "python3-matplotlib missing (make deps)"
prologue
T=$D
SAMPLES=("$TOP"/tests/bench/*.json)
# Two results of one run of bench_io: all paths (ratios) and the reference
# path alone (figures only, no ratio); one of bench_dht (a series, a same-
# work rule, the load average).
[ ${#SAMPLES[@]} -ge 3 ] || fail "expected at least three sample results in tests/bench/"

"$PYTHON" "$TOP/bench/report.py" --out "$T/out" "$TOP/tests/bench" >"$T/log" 2>&1 ||
	fail "report.py failed: $(cat "$T/log")"
[ -s "$T/out/report.md" ] && [ -s "$T/out/details.md" ] || fail "no report.md or details.md"
pass "report.md written from ${#SAMPLES[@]} sample results"

"$PYTHON" - "$T/out" "${SAMPLES[@]}" <<'EOF' || fail "report check failed"
import binascii, json, os, re, struct, sys
out, samples = sys.argv[1], sys.argv[2:]
md = open(os.path.join(out, "report.md"), encoding="utf-8").read()
det = open(os.path.join(out, "details.md"), encoding="utf-8").read()
rows, drows = md.splitlines(), det.splitlines()

def value_text(v):
    # docs/BENCH.md: whole numbers and |v| >= 1000 with thousands
    # separators, others with 4 significant digits.
    return f"{v:,.0f}" if abs(v) >= 1000 or float(v).is_integer() else f"{v:.4g}"

nfig = nratio = npts = 0
want_png = set()
for path in samples:
    r = json.load(open(path, encoding="utf-8"))
    assert r["figures"], path + ": sample without figures"
    if any("goal" in q for q in r["ratios"]):
        want_png.add("ratios.png")
    if r.get("series"):
        want_png.add("lines.png")
    assert r["commit"] in md, path + ": commit missing from report.md"
    assert r["command"] in det, path + ": command missing from details.md"
    assert os.path.basename(path) in det, path + ": result file not named"
    if r.get("same_work"):
        assert r["same_work"] in md, path + ": same-work rule missing from report.md"
    if r.get("loadavg"):
        assert r["loadavg"] in md, path + ": load average missing from report.md"
    for f in r["figures"]:
        cell = f"| `{f['id']}` |"
        hits = [l for l in drows if l.startswith(cell)]
        assert len(hits) >= 1, f"figure {f['id']} not listed"
        want = f"| {value_text(f['value'])} | {f['unit']} |"
        assert any(want in l and f["label"] in l for l in hits), \
            f"figure {f['id']}: no row with label, value {want}"
        nfig += 1
    byid = {f["id"]: f["value"] for f in r["figures"]}
    for q in r["ratios"]:
        assert abs(byid[q["num"]] / byid[q["den"]] - q["value"]) < 1e-6 * max(1, q["value"]), q["id"]
        cell = f"| {q['label']} | {q['value']:.2f}x |"
        assert any(cell in l for l in drows), f"ratio {q['id']} not in details.md"
        if "goal" in q:
            status = "met" if q["value"] >= q["goal"] else "short by"
            hits = [l for l in rows if cell in l]
            assert any(f"≥ {q['goal']:.2f}x" in l and status in l for l in hits), \
                f"ratio {q['id']}: goal {q['goal']} / '{status}' missing from report.md"
        nratio += 1
    for sr in r.get("series", []):
        for ln in sr["lines"]:
            hits = [l for l in drows if l.startswith(f"- {ln['label']}: ")]
            assert hits, f"series {sr['id']} line {ln['label']} not listed"
            for x, y in ln["points"]:
                assert f"({value_text(x)}, {value_text(y)})" in hits[0], (sr["id"], x, y)
                npts += 1
assert npts, "no series point in the samples"
assert len(rows) <= 45, f"report.md is {len(rows)} lines: not one screen"

# Every linked image is a valid PNG: ratios.png and lines.png.
pngs = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
assert sorted(pngs) == sorted(want_png), (pngs, want_png)
import matplotlib
matplotlib.use("Agg")
import matplotlib.image as mpimg
for name in pngs:
    data = open(os.path.join(out, name), "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", name + ": not a PNG signature"
    pos, chunks = 8, []
    while pos < len(data):
        n, = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + n]
        crc, = struct.unpack(">I", data[pos + 8 + n:pos + 12 + n])
        assert binascii.crc32(kind + body) & 0xffffffff == crc, f"{name}: bad CRC in {kind}"
        chunks.append(kind)
        pos += 12 + n
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND" and b"IDAT" in chunks, name
    w, h = struct.unpack(">II", data[16:24])
    assert 100 <= w <= 4000 and 100 <= h <= 4000, f"{name}: {w}x{h}"
    img = mpimg.imread(os.path.join(out, name))
    assert img.shape[0] == h and img.shape[1] == w, f"{name}: decoded {img.shape} vs {w}x{h}"
print(f"{nfig} figures, {nratio} ratios, {npts} series points, {len(pngs)} PNG(s) checked")
EOF
pass "goal ratios, rules and load in report.md (one screen); every figure, ratio and point in details.md; PNGs valid"

# --spread over three whole runs: run 1 the samples, run 2 the same with
# every goal ratio's numerator doubled (ratios recomputed), run 3 without
# the bench_dht result. spread.md must hold each goal ratio once with its
# three values (or "-"), min-max, median and how many runs met the goal.
mkdir -p "$T/runs/r1" "$T/runs/r2" "$T/runs/r3"
"$PYTHON" - "$T/runs" "${SAMPLES[@]}" <<'EOF' || fail "could not build the three runs"
import json, os, shutil, sys
runs, samples = sys.argv[1], sys.argv[2:]
for path in samples:
    r = json.load(open(path, encoding="utf-8"))
    name = os.path.basename(path)
    shutil.copy(path, os.path.join(runs, "r1", name))
    nums = {q["num"] for q in r["ratios"] if "goal" in q}
    fig = {f["id"]: f for f in r["figures"]}
    for i in nums:
        fig[i]["value"] *= 2
    for q in r["ratios"]:
        q["value"] = fig[q["num"]]["value"] / fig[q["den"]]["value"]
    json.dump(r, open(os.path.join(runs, "r2", name), "w"))
    if r["harness"] != "dht":
        shutil.copy(path, os.path.join(runs, "r3", name))
EOF
"$PYTHON" "$TOP/bench/report.py" --spread --out "$T/spread" "$T/runs/r1" "$T/runs/r2" "$T/runs/r3" \
	>"$T/log" 2>&1 || fail "report.py --spread failed: $(cat "$T/log")"
"$PYTHON" - "$T/spread/spread.md" "$T/runs" <<'EOF' || fail "spread check failed"
import glob, json, os, sys
md, runs = sys.argv[1], sys.argv[2]
rows = [l for l in open(md, encoding="utf-8").read().splitlines() if l.startswith("| ")][1:]
fr = lambda v: f"{v:.2f}x"
want = {}
for i, rd in enumerate(("r1", "r2", "r3")):
    for path in sorted(glob.glob(os.path.join(runs, rd, "*.json"))):
        r = json.load(open(path, encoding="utf-8"))
        for q in r["ratios"]:
            if "goal" in q:
                k = (r["harness"], q["label"])
                w = want.setdefault(k, {"goal": q["goal"], "vals": [None] * 3})
                if w["vals"][i] is None:
                    w["vals"][i] = q["value"]
assert want, "no goal ratio in the samples"
assert len(rows) == len(want), f"{len(rows)} rows for {len(want)} goal ratios"
for (h, label), w in want.items():
    got = sorted(v for v in w["vals"] if v is not None)
    med = got[len(got) // 2] if len(got) % 2 else (got[len(got) // 2 - 1] + got[len(got) // 2]) / 2
    cells = [fr(v) if v is not None else "-" for v in w["vals"]]
    row = (f"| {h} | {label} | ≥ {fr(w['goal'])} | " + " | ".join(cells) +
           f" | {fr(got[0])}-{fr(got[-1])} | {fr(med)} | "
           f"{sum(v >= w['goal'] for v in got)} of {len(got)} |")
    assert row in rows, f"missing or wrong row: {row}"
    assert (w["vals"][2] is None) == (h == "dht"), f"{h}: run 3 value"
print(f"{len(rows)} goal ratios over 3 runs")
EOF
pass "--spread: every goal ratio with its value per run, min-max, median and runs meeting the goal"
if "$PYTHON" "$TOP/bench/report.py" --spread --out "$T/spread2" "$T/runs/r1" "${SAMPLES[0]}" >"$T/log" 2>&1 ||
	[ -e "$T/spread2/spread.md" ]; then
	fail "--spread accepted a result file as a run directory"
fi
pass "--spread refuses an input that is not a run directory"

# Hostile or broken results: refused, the file named, nothing written.
S=${SAMPLES[0]}
bad() { # NAME PYTHON-EXPR-ON-r (None: truncated file)
	mkdir -p "$T/bad-$1"
	"$PYTHON" - "$S" "$T/bad-$1/r.json" "$2" <<'EOF'
import json, sys
src, dst, expr = sys.argv[1:]
raw = open(src, encoding="utf-8").read()
if expr == "truncate":
    open(dst, "w").write(raw[: len(raw) // 2])
else:
    r = json.loads(raw)
    exec(expr)
    open(dst, "w").write(json.dumps(r))
EOF
	if "$PYTHON" "$TOP/bench/report.py" --out "$T/badout-$1" "$T/bad-$1" >"$T/badlog" 2>&1; then
		fail "$1: a broken result was accepted"
	fi
	grep -q "bad-$1/r.json" "$T/badlog" || fail "$1: error does not name the file: $(cat "$T/badlog")"
	[ ! -e "$T/badout-$1/report.md" ] || fail "$1: a report was written"
}
bad truncated truncate
bad schema 'r["schema"] = "other/9"'
bad foreign_ratio 'r["ratios"][0]["den"] = "no.such.figure"'
bad forged_ratio 'r["ratios"][0]["value"] *= 3'
bad nan 'r["figures"][0]["value"] = float("nan")'
bad dup_id 'r["figures"].append(dict(r["figures"][0]))'
bad no_figures 'del r["figures"]'
bad nan_point 'r["series"] = [{"id": "s", "title": "t", "x_unit": "x", "y_unit": "y", "lines": [{"label": "l", "points": [[1, float("inf")]]}]}]'
bad bad_point 'r["series"] = [{"id": "s", "title": "t", "x_unit": "x", "y_unit": "y", "lines": [{"label": "l", "points": [[1]]}]}]'
bad rule_type 'r["same_work"] = 7'
pass "truncated, foreign-schema, foreign/forged-ratio, NaN, duplicate-id, missing-field, bad-series, bad-rule results refused"
finish
