#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Benchmark report: reads the JSON results of one run (bench/benchlib.h,
schema "weft-bench/1", docs/BENCH.md) and writes OUT/report.md with one PNG
bar plot of the ratios per result (OUT/ratios-<result file>.png; a dashed line
marks each ratio's goal and 1.0x marks parity).

Usage: bench/report.py [--out DIR] RESULT.json|DIR...
  (a DIR argument means every *.json in it; default --out build/bench)
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


def plot_ratios(r, png):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    qs = r["ratios"]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(qs) + 1.4), dpi=100)
    ys = list(range(len(qs)))
    vals = [q["value"] for q in qs]
    colors = []
    for q in qs:
        if "goal" in q:
            colors.append("tab:green" if q["value"] >= q["goal"] else "tab:red")
        else:
            colors.append("tab:blue")
    ax.barh(ys, vals, color=colors)
    for y, q in zip(ys, qs):
        if "goal" in q:
            ax.plot([q["goal"], q["goal"]], [y - 0.4, y + 0.4], "k--", linewidth=1)
        ax.text(q["value"], y, " " + fmt_ratio(q["value"]), va="center", fontsize=8)
    ax.axvline(1.0, color="grey", linewidth=0.8)
    ax.set_yticks(ys)
    ax.set_yticklabels([q["label"] for q in qs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ratio (weft / reference; dashed: goal)")
    ax.set_title(f"{r['harness']}: ratios, one run ({r['started']})", fontsize=10)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def report(results, out):
    os.makedirs(out, exist_ok=True)
    for old in glob.glob(os.path.join(out, "ratios-*.png")):
        os.unlink(old)  # plots of an earlier run's harnesses
    lines = ["# weft benchmark report", ""]
    first = results[0]
    lines.append(f"{len(results)} result(s); kernel {first['kernel']}; CPU {first['cpu_model']}"
                 f" ({first.get('cpus', '?')} online); commit {first['commit']}.")
    lines.append("Every ratio is between two figures of the same result (one run).")
    lines.append("")
    lines.append("## Ratios")
    lines.append("")
    lines.append("| harness | ratio | value | goal | status |")
    lines.append("|---|---|---|---|---|")
    for r in results:
        for q in r["ratios"]:
            g, st = goal_cell(q)
            lines.append(f"| {md(r['harness'])} | {md(q['label'])} | {fmt_ratio(q['value'])} "
                         f"| {g} | {st} |")
    for r in results:
        lines += ["", f"## {r['harness']}", ""]
        lines.append(f"- command: `{md(r['command'])}`")
        lines.append(f"- commit {md(r['commit'])}, kernel {md(r['kernel'])}, "
                     f"CPU {md(r['cpu_model'])}, started {md(r['started'])}, "
                     f"finished {md(r.get('finished', '?'))}")
        lines.append(f"- result file: {os.path.basename(r['_path'])}")
        if r.get("params"):
            lines.append("- params: " + ", ".join(f"{md(k)}={fmt_value(v) if isinstance(v, (int, float)) else md(v)}"
                                                  for k, v in sorted(r["params"].items())))
        for n in r.get("notes", []):
            lines.append(f"- note: {md(n)}")
        if r["ratios"]:
            png = "ratios-" + os.path.basename(r["_path"])[:-len(".json")] + ".png"
            plot_ratios(r, os.path.join(out, png))
            lines += ["", f"![{r['harness']} ratios]({png})"]
        lines += ["", "| id | figure | value | unit |", "|---|---|---|---|"]
        for f in r["figures"]:
            lines.append(f"| `{f['id']}` | {md(f['label'])} | {fmt_value(f['value'])} "
                         f"| {md(f['unit'])} |")
    with open(os.path.join(out, "report.md.tmp"), "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(os.path.join(out, "report.md.tmp"), os.path.join(out, "report.md"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="build/bench")
    ap.add_argument("inputs", nargs="+")
    a = ap.parse_args()
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
    print(f"report: {os.path.join(a.out, 'report.md')} ({len(results)} result(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
