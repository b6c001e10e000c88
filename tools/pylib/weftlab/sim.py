# SPDX-License-Identifier: MIT
"""`weftlab sim`: the DHT scenarios on weftlab-sim, the in-process
simulated network (virtual time)."""
import json
import os
import secrets
import subprocess
import time

from .common import LabError, find_binary, fmt, table
from .scenarios import LOOKUP_HDR, write_result


def sim_path():
    return find_binary("weftlab-sim", "WEFTLAB_SIM", ["../build/weftlab-sim",
                                                       "/usr/lib/weft/weftlab-sim",
                                                       "/usr/local/lib/weft/weftlab-sim"])


def cmd_sim(lab, a):
    """The DHT scenarios on the in-process simulated network (virtual time):
    no root, no namespaces; results under DIR/results/sim-SCENARIO.json."""
    if a.scenario not in ("bootstrap", "lookups", "churn"):
        raise LabError("sim runs bootstrap, lookups and churn (distribute, services and flood "
                       "need complete nodes: weftlab up + run)")
    args = [sim_path(), "--nodes", str(a.nodes), "--scenario", a.scenario,
            "--lookups", str(a.lookups), "--loss", str(int(round(a.loss * 1e6))),
            "--lat-min", str(a.lat_min), "--lat-max", str(a.lat_max), "--jitter", str(a.jitter),
            "--warmup", str(a.warmup), "--seed", str(a.seed if a.seed is not None else
                                                       secrets.randbits(31)),
            "--churn-fraction", str(a.churn_fraction), "--churn-period", str(a.churn_period),
            "--duration", str(a.duration)]
    t0 = time.time()
    p = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise LabError("weftlab-sim: %s" % (p.stderr.strip() or "exit %d" % p.returncode))
    try:
        res = json.loads(p.stdout)
    except ValueError as e:
        raise LabError("weftlab-sim printed no JSON: %s" % e)
    res["wall_s"] = time.time() - t0
    res["started"] = t0
    os.makedirs(lab.dir, exist_ok=True)
    m = res["model"]
    print("sim %s: %d nodes, loss %.1f%%, one-way latency %d-%d ms + jitter %d ms; "
          "%.0f s virtual in %.1f s CPU, max RSS %.0f MiB"
          % (a.scenario, res["nodes"], m["loss_ppm"] / 1e4, m["lat_min_ms"], m["lat_max_ms"],
             m["jitter_ms"], res["virtual_s"], res["cpu_s"], res["max_rss_kib"] / 1024.0))
    b = res["bootstrap"]
    print("bootstrap: %d/%d tables >= %d nodes, all healthy %s s after the last join; "
          "tables mean %.1f, min %d; replaced by churn: %d"
          % (b["healthy"], res["nodes"], b["healthy_min_nodes"], fmt(b["t_all_healthy_s"]),
             res["tables"]["mean"], res["tables"]["min"], res["churn"]["replaced"]))
    rows = []
    for kind, s in res.get("summary", {}).items():
        if s["count"]:
            rows.append([kind, s["count"], "%.2f%%" % (100.0 * s["success"]),
                         fmt(s["p50_ms"], " ms"), fmt(s["p99_ms"], " ms"),
                         fmt(s["hops_mean"], "", 2), s["hops_max"],
                         fmt(s.get("hops_closest_mean"), "", 2)])
    if rows:
        # hops: the longest referral chain among the k closest; to closest:
        # the chain to the closest node that answered (the target itself)
        print(table(LOOKUP_HDR + ["hops to closest"], rows))
    write_result(lab, "sim-" + a.scenario, res)

