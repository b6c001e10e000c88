# SPDX-License-Identifier: MIT
"""`weftlab report`: a markdown and HTML page with PNG plots (matplotlib)
from the JSON of the last runs (results/)."""
import json
import os
import re
import time

from .common import LabError
from .scenarios import SCENARIOS


def load_results(lab):
    d = os.path.join(lab.dir, "results")
    out = {}
    for name in ["up"] + list(SCENARIOS) + ["sim-bootstrap", "sim-lookups", "sim-churn"]:
        p = os.path.join(d, name + ".json")
        if os.path.exists(p):
            with open(p) as f:
                out[name] = json.load(f)
    return out


def cdf(ax, values, label):
    v = sorted(values)
    if v:
        ax.step(v, [(k + 1) / len(v) for k in range(len(v))], where="post", label=label)


def cmd_report(lab, a):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LabError("matplotlib missing (Debian: apt-get install python3-matplotlib)")
    res = load_results(lab)
    if not res:
        raise LabError("no results in %s/results (weftlab run SCENARIO)" % lab.dir)
    out = os.path.join(lab.dir, "report")
    os.makedirs(out, exist_ok=True)
    figs, md = [], ["# weftlab report", "",
                    "Lab `%s`, generated %s UTC from the JSON of the last runs (results/)."
                    % (lab.dir, time.strftime("%Y-%m-%d %H:%M", time.gmtime())), ""]

    def save(fig, name, title, what):
        p = os.path.join(out, name)
        fig.tight_layout()
        fig.savefig(p, dpi=90)
        plt.close(fig)
        figs.append((name, title, what))

    # lookup latency CDFs (lookups, churn)
    lk = [(n, r) for n, r in res.items()
          if n in ("lookups", "churn", "sim-lookups", "sim-churn") and r.get("lookups")]
    if lk:
        fig, ax = plt.subplots(figsize=(7, 4))
        for n, r in lk:
            for kind in ("find_node", "get_peers"):
                cdf(ax, [x["ms"] for x in r["lookups"] if x["kind"] == kind and x["ok"]],
                    "%s %s (%d)" % (n, kind, sum(1 for x in r["lookups"] if x["kind"] == kind)))
        ax.set_xscale("log")
        ax.set_xlabel("lookup latency (ms, successful lookups; lab: control API round trip, "
                      "sim: virtual time)", fontsize=8)
        ax.set_ylabel("fraction of lookups")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
        models = ["%s: %s, loss %.1f%%, one-way %d-%d ms + jitter %d ms" % (
            n, r["model"]["latency"], r["model"]["loss_ppm"] / 1e4, r["model"]["lat_min_ms"],
            r["model"]["lat_max_ms"], r["model"]["jitter_ms"]) for n, r in lk if r.get("model")]
        save(fig, "lookup_latency_cdf.png", "Lookup latency CDF",
             "Share of successful lookups (y) that finished within x ms. Lab lookups run over "
             "the lab's bridge (sub-millisecond links); simulated ones over the stated model. "
             + " ".join(models))
    # download completion over time
    d = res.get("distribute")
    if d and d.get("progress"):
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
        size = float(d["size"]) or 1.0
        for k, pts in d["progress"].items():
            if pts:
                ax1.plot([p[0] for p in pts], [100.0 * p[1] / size for p in pts], lw=0.8)
        ax1.set_xlabel("seconds since the downloads started")
        ax1.set_ylabel("% of the file (one line per node)")
        done = sorted(v["s"] for v in d["per_node"].values() if v["s"] is not None)
        if done:
            ax2.step([0] + done, [0] + [100.0 * (k + 1) / d["downloaders"] for k in range(len(done))],
                     where="post")
        ax2.set_xlabel("seconds")
        ax2.set_ylabel("% of nodes complete")
        for ax in (ax1, ax2):
            ax.grid(True, alpha=0.3)
        save(fig, "download_completion.png", "Download completion over time",
             "Left: each node's bytes over time. Right: share of nodes whose download is complete.")
    # the soak's resources over time
    if res.get("soak"):
        from .soak import plot as soak_plot
        soak_plot(plt, res["soak"], save)
    # RSS per node and CPU, from the last sample of each run
    rs = [(n, r) for n, r in res.items() if r.get("resources")]
    if rs:
        fig, ax = plt.subplots(figsize=(7, 4))
        for n, r in rs:
            v = r["resources"]
            ks = sorted(v, key=int)
            vals = [(v[k].get("rss_max") or v[k].get("rss") or 0) / 1048576.0 for k in ks]
            ax.plot([int(k) for k in ks], vals, marker=".", lw=0.8, label=n)
        ax.set_xlabel("node")
        ax.set_ylabel("RSS (MiB, max during the run)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
        save(fig, "rss_per_node.png", "RSS per node",
             "Resident memory of each weftd (the largest sample during each run; /proc).")
        fig, ax = plt.subplots(figsize=(7, 4))
        names, data = [], []
        for n, r in rs:
            c = [x["cpu_pct"] for x in r["resources"].values() if x.get("cpu_pct") is not None]
            if c:
                names.append(n)
                data.append(c)
        if data:
            ax.boxplot(data, labels=names)
            ax.set_ylabel("CPU % of one core per node (mean over the run)")
            ax.grid(True, alpha=0.3)
            save(fig, "cpu_per_node.png", "CPU per node",
                 "Spread over the nodes of each weftd's CPU use during each run.")
        else:
            plt.close(fig)
    # tables
    md += ["## Results", ""]
    for n, r in res.items():
        md.append("### %s" % n)
        md.append("")
        md.append("%s nodes, seed %s, %s." % (r.get("nodes"), r.get("seed", "-"),
                                            time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(
                                                r.get("started", r.get("time", 0))))))
        md.append("")
        keep = {k: v for k, v in r.items() if not isinstance(v, (dict, list)) and k not in
                ("scenario", "started", "time", "seed", "nodes")}
        for k2 in ("summary",):
            for kind, s in (r.get(k2) or {}).items():
                for kk, vv in s.items():
                    keep["%s.%s" % (kind, kk)] = vv
        md.append("| metric | value |")
        md.append("|---|---|")
        for k, v in keep.items():
            md.append("| %s | %s |" % (k, ("%.3f" % v) if isinstance(v, float) else v))
        md.append("")
    md += ["## Figures", ""]
    for name, title, what in figs:
        md += ["### " + title, "", what, "", "![%s](%s)" % (title, name), ""]
    with open(os.path.join(out, "index.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    with open(os.path.join(out, "index.html"), "w") as f:
        f.write(md_html(md))
    print("report: %s/index.md, index.html, %d PNG plots (%s)"
          % (out, len(figs), ", ".join(n for n, _, _ in figs)))


def md_html(lines):
    """The report's small markdown subset (headings, tables, images) as HTML."""
    import html
    o = ["<!DOCTYPE html><html><head><meta charset='utf-8'><title>weftlab report</title>",
         "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
         "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>"
         "</head><body>"]
    intable = False
    for ln in lines:
        if ln.startswith("|"):
            cells = [c.strip() for c in ln.strip("|").split("|")]
            if set(ln) <= set("|-"):
                continue
            if not intable:
                o.append("<table>")
                intable = True
            o.append("<tr>" + "".join("<td>%s</td>" % html.escape(c) for c in cells) + "</tr>")
            continue
        if intable:
            o.append("</table>")
            intable = False
        m = re.match(r"^(#+) (.*)", ln)
        im = re.match(r"^!\[(.*)\]\((.*)\)$", ln)
        if m:
            o.append("<h%d>%s</h%d>" % (len(m.group(1)), html.escape(m.group(2)), len(m.group(1))))
        elif im:
            o.append("<img alt='%s' src='%s'>" % (html.escape(im.group(1)), html.escape(im.group(2))))
        elif ln:
            o.append("<p>%s</p>" % html.escape(ln.replace("`", "")))
    if intable:
        o.append("</table>")
    o.append("</body></html>")
    return "\n".join(o) + "\n"

