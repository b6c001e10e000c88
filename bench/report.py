#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark report: reads the JSON results of one run (bench/benchlib.h,
schema "weft-bench/1", docs/BENCH.md) and writes OUT/report.md, one screen:
the ratios that carry a goal with their status, OUT/ratios.png (bars of those
ratios; a dashed mark at each goal, 1.0x marks parity), OUT/lines.png (one
line plot per series: cost against size or load) and each harness's "same
work" rule; and OUT/details.md with every figure, ratio, param and note.

Usage: bench/report.py [--out DIR] RESULT.json|DIR...
  (a DIR argument means every *.json in it; default --out build/bench)
       bench/report.py --spread [--out DIR] RUNDIR RUNDIR...
  (several whole runs, one directory each, e.g. build/bench/runs/*: writes
  OUT/spread.md, every goal ratio of the first run with its value in each
  run, the spread (min-max, median) and in how many runs the goal was met)
Exit status 0, or 1 with one line on stderr naming the bad input: a result
that is not valid JSON, has another schema, or lacks a field is refused,
never half reported.
"""
import argparse
import glob
import json
import math
import os
import re
import sys

SCHEMA = "weft-bench/1"
ID_RE = re.compile(r"^[a-z0-9_.]{1,63}$")
MAX_RESULT_BYTES = 4 << 20
MAX_ITEMS = 512
MAX_SERIES = 16


class BadResult(Exception):
    pass


def fmt_value(v):
    """Figures as the report prints them: integers with thousands
    separators from 1000 up or when whole, else 4 significant digits."""
    if abs(v) >= 1000 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.4g}"


def fmt_ratio(v):
    return f"{v:.2f}x"


def _need(obj, key, kind, where):
    if key not in obj or not isinstance(obj[key], kind) or isinstance(obj[key], bool):
        raise BadResult(f"{where}: missing or bad '{key}'")
    return obj[key]


def _number(obj, key, where):
    v = _need(obj, key, (int, float), where)
    if not math.isfinite(v):
        raise BadResult(f"{where}: '{key}' is not a finite number")
    return float(v)


def load(path):
    """One result, checked field by field."""
    try:
        if os.path.getsize(path) > MAX_RESULT_BYTES:
            raise BadResult(f"{path}: larger than {MAX_RESULT_BYTES} bytes")
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadResult(f"{path}: {e}") from e
    if not isinstance(r, dict) or r.get("schema") != SCHEMA:
        raise BadResult(f"{path}: not a {SCHEMA} result")
    for key in ("harness", "command", "commit", "kernel", "cpu_model", "started"):
        _need(r, key, str, path)
    if not ID_RE.match(r["harness"]):
        raise BadResult(f"{path}: bad harness name")
    figs = _need(r, "figures", list, path)
    ratios = _need(r, "ratios", list, path)
    notes = r.get("notes", [])
    params = r.get("params", {})
    if len(figs) > MAX_ITEMS or len(ratios) > MAX_ITEMS or not isinstance(notes, list) \
            or not isinstance(params, dict):
        raise BadResult(f"{path}: too many items or bad notes/params")
    for key in ("same_work", "loadavg"):
        if key in r:
            _need(r, key, str, path)
    series = r.get("series", [])
    if not isinstance(series, list) or len(series) > MAX_SERIES:
        raise BadResult(f"{path}: bad series")
    for i, sr in enumerate(series):
        where = f"{path}: series[{i}]"
        if not isinstance(sr, dict) or not ID_RE.match(_need(sr, "id", str, where)):
            raise BadResult(where + ": not an object with an id")
        for key in ("title", "x_unit", "y_unit"):
            _need(sr, key, str, where)
        lines = _need(sr, "lines", list, where)
        if len(lines) > MAX_SERIES:
            raise BadResult(where + ": too many lines")
        for j, ln in enumerate(lines):
            lw = f"{where}.lines[{j}]"
            if not isinstance(ln, dict):
                raise BadResult(lw + ": not an object")
            _need(ln, "label", str, lw)
            pts = _need(ln, "points", list, lw)
            if len(pts) > MAX_ITEMS:
                raise BadResult(lw + ": too many points")
            for pt in pts:
                if not isinstance(pt, list) or len(pt) != 2 or not all(
                        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                        for v in pt):
                    raise BadResult(lw + ": a point is not two finite numbers")
    ids = {}
    for i, f in enumerate(figs):
        where = f"{path}: figures[{i}]"
        if not isinstance(f, dict):
            raise BadResult(where + ": not an object")
        fid = _need(f, "id", str, where)
        if not ID_RE.match(fid) or fid in ids:
            raise BadResult(f"{where}: bad or duplicate id {fid!r}")
        _need(f, "label", str, where)
        _need(f, "unit", str, where)
        ids[fid] = _number(f, "value", where)
    for i, q in enumerate(ratios):
        where = f"{path}: ratios[{i}]"
        if not isinstance(q, dict):
            raise BadResult(where + ": not an object")
        _need(q, "id", str, where)
        _need(q, "label", str, where)
        v = _number(q, "value", where)
        num, den = _need(q, "num", str, where), _need(q, "den", str, where)
        # A ratio is only between figures of the same result (same run).
        if num not in ids or den not in ids or ids[den] == 0:
            raise BadResult(f"{where}: num/den are not figures of this result")
        if abs(ids[num] / ids[den] - v) > 1e-6 * max(1.0, abs(v)):
            raise BadResult(f"{where}: value is not num/den")
        if "goal" in q:
            _number(q, "goal", where)
    r["_path"] = path
    return r


def md(s):
    """Text for a Markdown table cell."""
    return str(s).replace("|", "\\|").replace("\n", " ")


def goal_cell(q):
    if "goal" not in q:
        return "", ""
    g, v = q["goal"], q["value"]
    if v >= g:
        return f"≥ {fmt_ratio(g)}", "met"
    return f"≥ {fmt_ratio(g)}", f"short by {fmt_ratio(g - v)} ({100 * (g - v) / g:.0f}%)"


def goal_ratios(results):
    """(harness, ratio) for every ratio with a goal, in result order."""
    return [(r["harness"], q) for r in results for q in r["ratios"] if "goal" in q]


def plot_ratios(rows, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.24 * len(rows) + 1.2), dpi=100)
    ys = list(range(len(rows)))
    vals = [q["value"] for _, q in rows]
    ax.barh(ys, vals, color=["tab:green" if q["value"] >= q["goal"] else "tab:red"
                             for _, q in rows], height=0.7)
    for y, (_, q) in zip(ys, rows):
        ax.plot([q["goal"], q["goal"]], [y - 0.4, y + 0.4], "k--", linewidth=1)
        ax.text(q["value"], y, " " + fmt_ratio(q["value"]), va="center", fontsize=7)
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([f"{h}: {q['label']}"[:70] for h, q in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("ratio, one run (green: goal met, red: missed; dashed: goal)", fontsize=8)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def plot_lines(series, png):
    """One subplot per series (harness, series), side by side."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(series)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.2), dpi=100, squeeze=False)
    for ax, (h, sr) in zip(axes[0], series):
        for ln in sr["lines"]:
            pts = sorted(ln["points"])
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3,
                    label=ln["label"])
        ax.set_title(f"{h}: {sr['title']}", fontsize=8)
        ax.set_xlabel(sr["x_unit"], fontsize=7)
        ax.set_ylabel(sr["y_unit"], fontsize=7)
        ax.tick_params(labelsize=7)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def details(results, lines):
    """Every field of every result (details.md)."""
    for r in results:
        lines += ["", f"## {r['harness']}", ""]
        lines.append(f"- command: `{md(r['command'])}`")
        lines.append(f"- commit {md(r['commit'])}, kernel {md(r['kernel'])}, "
                     f"CPU {md(r['cpu_model'])}, load average {md(r.get('loadavg', '?'))}, "
                     f"started {md(r['started'])}, finished {md(r.get('finished', '?'))}")
        lines.append(f"- result file: {os.path.basename(r['_path'])}")
        if r.get("same_work"):
            lines.append(f"- same work: {md(r['same_work'])}")
        if r.get("params"):
            lines.append("- params: " + ", ".join(f"{md(k)}={fmt_value(v) if isinstance(v, (int, float)) else md(v)}"
                                                  for k, v in sorted(r["params"].items())))
        for n in r.get("notes", []):
            lines.append(f"- note: {md(n)}")
        if r["ratios"]:
            lines += ["", "| ratio | value | goal | status |", "|---|---|---|---|"]
            for q in r["ratios"]:
                g, st = goal_cell(q)
                lines.append(f"| {md(q['label'])} | {fmt_ratio(q['value'])} | {g} | {st} |")
        lines += ["", "| id | figure | value | unit |", "|---|---|---|---|"]
        for f in r["figures"]:
            lines.append(f"| `{f['id']}` | {md(f['label'])} | {fmt_value(f['value'])} "
                         f"| {md(f['unit'])} |")
        for sr in r.get("series", []):
            lines += ["", f"series `{sr['id']}`: {md(sr['title'])} ({md(sr['x_unit'])} -> "
                      f"{md(sr['y_unit'])})"]
            for ln in sr["lines"]:
                pts = ", ".join(f"({fmt_value(x)}, {fmt_value(y)})" for x, y in ln["points"])
                lines.append(f"- {md(ln['label'])}: {pts}")


def write(path, lines):
    with open(path + ".tmp", "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(path + ".tmp", path)


def host_line(results):
    """The host: CPU, SIMD flags, the BLAKE3 kernel each blake3 result ran, the
    kernel's vulnerability mitigations (from bench/run.sh's run result)."""
    run = next((r for r in results if r["harness"] == "run"), None)
    parts = [f"Host: CPU {md(results[0]['cpu_model'])}"]
    if run and isinstance(run.get("simd"), str):
        parts.append(f"SIMD {md(run['simd'])}")
    kernels = []
    for r in results:
        if not r["harness"].startswith("blake3"):
            continue
        for n in r.get("notes", []):
            if isinstance(n, str) and n.startswith("kernel: "):
                kernels.append(f"{r['harness']} {md(n[8:].split(' ', 1)[0])}")
    if kernels:
        parts.append("BLAKE3 kernel " + ", ".join(kernels))
    mit = run.get("mitigations") if run else None
    if isinstance(mit, dict):
        hit = [f"{md(k)}: {md(v)}" for k, v in sorted(mit.items())
               if isinstance(v, str) and v != "Not affected"]
        parts.append("mitigations: " + ("; ".join(hit) if hit else "none needed"))
    else:
        parts.append("mitigations: not recorded")
    return "; ".join(parts) + "."


def report(results, out):
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "*.png")):
        os.unlink(old)  # plots of an earlier run
    first = results[0]
    loads = ", ".join(f"{r['harness']} {r['loadavg']}" for r in results if r.get("loadavg"))
    lines = ["# weft benchmark report", ""]
    commits = ", ".join(sorted({r["commit"] for r in results}))
    lines.append(f"{len(results)} result(s), commit {commits}, kernel {first['kernel']}, "
                 f"CPU {first['cpu_model']} ({first.get('cpus', '?')} online), "
                 f"{min(r['started'] for r in results)} .. "
                 f"{max(r.get('finished', r['started']) for r in results)}"
                 + (f"; load average (1/5/15 min) at each start: {loads}" if loads else "") + ".")
    lines.append(host_line(results))
    for r in results:
        if r["harness"] != "run":
            continue
        byid = {f["id"]: f["value"] for f in r["figures"]}
        if "run.total_seconds" in byid:
            t = byid["run.total_seconds"]
            n = sum(1 for k in byid if k.endswith(".seconds") and k != "run.total_seconds")
            lines.append(f"bench/run.sh: {n} harness(es) in {t:,.0f} s (goal: a whole make bench "
                         f"under 1,200 s{'' if t < 1200 else f'; over by {t - 1200:,.0f} s'}).")
    lines.append("Every ratio is between two figures of one result (one run); every figure, "
                 "command and note: [details.md](details.md).")
    rows = goal_ratios(results)
    if rows:
        lines += ["", "| harness | ratio | value | goal | status |", "|---|---|---|---|---|"]
        for h, q in rows:
            g, st = goal_cell(q)
            lines.append(f"| {md(h)} | {md(q['label'])} | {fmt_ratio(q['value'])} | {g} | {st} |")
        plot_ratios(rows, os.path.join(out, "ratios.png"))
        lines += ["", "![ratios against their goals](ratios.png)"]
    series = [(r["harness"], sr) for r in results for sr in r.get("series", [])]
    if series:
        plot_lines(series, os.path.join(out, "lines.png"))
        lines += ["", "![cost against size or load](lines.png)"]
    rules = [r for r in results if r.get("same_work")]
    if rules:
        lines += ["", "Same work: " + "; ".join(f"**{md(r['harness'])}**: {md(r['same_work'])}"
                                             for r in rules)]
    write(os.path.join(out, "report.md"), lines)
    det = ["# weft benchmark report: details", ""]
    details(results, det)
    write(os.path.join(out, "details.md"), det)


def spread(runs, out):
    """runs: [(dir, [results])], one whole run each. spread.md: one row per
    (harness, ratio id) that carries a goal in any run, the first run's
    value, every run's value, min-max, median, runs meeting the goal."""
    os.makedirs(out, exist_ok=True)
    keys, table = [], {}
    for i, (_, results) in enumerate(runs):
        for h, q in goal_ratios(results):
            k = (h, q["num"] + "/" + q["den"])
            if k not in table:
                keys.append(k)
                table[k] = {"label": q["label"], "goal": q["goal"], "vals": [None] * len(runs)}
            if table[k]["vals"][i] is None:  # a harness's first result in the run
                table[k]["vals"][i] = q["value"]
    lines = ["# weft benchmark spread", "",
             f"{len(runs)} whole runs: " + "; ".join(
                 f"{os.path.basename(os.path.normpath(d))} (commit "
                 f"{', '.join(sorted({r['commit'] for r in res}))})" for d, res in runs) + ".",
             "Each value is a ratio between two figures of one result (one run); "
             "a missing value: that run has no such ratio (its harness failed or was not run).",
             "", "| harness | ratio | goal | run 1 | " +
             " | ".join(f"run {i + 1}" for i in range(1, len(runs))) +
             (" | " if len(runs) > 1 else "") + "min-max | median | goal met |",
             "|---|---|---|" + "---|" * len(runs) + "---|---|---|"]
    for k in keys:
        t = table[k]
        got = sorted(v for v in t["vals"] if v is not None)
        cells = [fmt_ratio(v) if v is not None else "-" for v in t["vals"]]
        med = got[len(got) // 2] if len(got) % 2 else (got[len(got) // 2 - 1] + got[len(got) // 2]) / 2
        met = sum(1 for v in got if v >= t["goal"])
        lines.append(f"| {md(k[0])} | {md(t['label'])} | ≥ {fmt_ratio(t['goal'])} | " +
                     " | ".join(cells) + f" | {fmt_ratio(got[0])}-{fmt_ratio(got[-1])} | "
                     f"{fmt_ratio(med)} | {met} of {len(got)} |")
    write(os.path.join(out, "spread.md"), lines)
    return len(keys)


def load_dir(d):
    paths = sorted(glob.glob(os.path.join(d, "*.json")))
    if not paths:
        raise BadResult(f"{d}: no results (*.json) in this run directory")
    return [load(p) for p in paths]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("--spread", action="store_true",
                    help="inputs are whole-run directories: write OUT/spread.md")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
    if a.spread:
        if not all(os.path.isdir(p) for p in a.inputs):
            print("report.py: --spread takes run directories (build/bench/runs/STAMP)",
                  file=sys.stderr)
            return 1
        try:
            runs = [(d, load_dir(d)) for d in a.inputs]
        except BadResult as e:
            print(f"report.py: {e}", file=sys.stderr)
            return 1
        n = spread(runs, a.out)
        print(f"spread: {os.path.join(a.out, 'spread.md')} ({n} goal ratios over {len(runs)} runs)")
        return 0
    paths = []
    for p in a.inputs:
        paths += sorted(glob.glob(os.path.join(p, "*.json"))) if os.path.isdir(p) else [p]
    for p in paths:
        if not p.endswith(".json"):
            print(f"report.py: {p}: a result file name ends in .json", file=sys.stderr)
            return 1
    if not paths:
        print("report.py: no results found in " + " ".join(a.inputs), file=sys.stderr)
        return 1
    try:
        results = [load(p) for p in paths]
    except BadResult as e:
        print(f"report.py: {e}", file=sys.stderr)
        return 1
    results.sort(key=lambda r: (r["harness"], r["started"]))
    report(results, a.out)
    print(f"report: {os.path.join(a.out, 'report.md')} and details.md ({len(results)} result(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
