# SPDX-License-Identifier: MIT
"""`weftlab run soak`: every kind of work mixed for a long time, and whether
the nodes' resources stay flat (docs/LAB.md "Soak"; issue 30, item 2).

Rounds of --round seconds until --duration: each round runs lookups
(find_node and get_peers), service calls (a builtin echo on two providers),
a small distribution (every 5th round: one node adds a fresh 1 MiB file,
two others download it by id, then all three remove it: the store does
not grow), relay dials (ping by key to a NATed node, when the lab has NAT
groups), churn (every 3rd round: one node of a fixed half of the nodes
killed and restarted with its state; the other half runs the whole time
and is what the growth is measured on) and a small flood (every 4th round: 3 s of DHT
flood from one bridge node's namespace at another, at --flood-pps).

Meanwhile a sampler reads, every --period seconds, per node: RSS, threads,
open descriptors (/proc), the LMDB files' allocated size, and the table
sizes the node reports (DHT nodes, peers and items, QUIC connections, bans).

Growth of a metric on a node: the median of the last 10% of its samples
against the median of the 10% right after the warm-up (--warmup, default a
sixth of the duration), as a percentage. Nodes restarted by the churn are
left out (a restart resets them). The goal (issue 30): at most 5% on each
metric. The table gives the median node and the worst node.
"""
import concurrent.futures as cf
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time

from .common import ApiError, LabError, api, child, fmt, log, proc_sample, table

METRICS = ("rss", "threads", "fds", "lmdb", "dht_nodes", "dht_peers", "dht_items", "quic_conns",
           "bans")


def _count(path):
    try:
        return len(os.listdir(path))
    except OSError:
        return None


def _lmdb_bytes(d):
    tot = 0
    try:
        for root, _, files in os.walk(d):
            for f in files:
                if f.endswith(".mdb"):
                    tot += os.stat(os.path.join(root, f)).st_blocks * 512
    except OSError:
        return None
    return tot


def sample_node(lab, i):
    """One node's resources and tables now (None for what could not be read)."""
    n = lab.node(i)
    pid = n.get("pid")
    s = {m: None for m in METRICS}
    ps = proc_sample(pid) if pid else None
    if ps:
        s["rss"] = ps[0]
        s["threads"] = _count("/proc/%d/task" % pid)
        s["fds"] = _count("/proc/%d/fd" % pid)
    s["lmdb"] = _lmdb_bytes(lab.node_dir(i))
    try:
        d = api(lab.sock(i), "GET", "/v1/dht/status", timeout=5)
        s["dht_nodes"] = (d.get("nodes4") or 0) + (d.get("nodes6") or 0)
        s["dht_peers"], s["dht_items"] = d.get("peers"), d.get("items")
        q = api(lab.sock(i), "GET", "/v1/quic/conns", timeout=5)
        s["quic_conns"] = len(q.get("conns") or [])
        b = api(lab.sock(i), "GET", "/v1/bans", timeout=5)
        s["bans"] = len(b.get("bans") or []) if isinstance(b, dict) else None
    except (OSError, ApiError):
        pass
    return s


class SoakSampler:
    def __init__(self, lab, period):
        self.lab, self.period = lab, period
        self.samples = []
        self.stop_ev = threading.Event()
        self.t0 = time.time()
        self.th = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        while True:
            s = {"t": round(time.time() - self.t0, 1), "nodes": {}}
            for i in self.lab.nodes():
                s["nodes"][str(i)] = sample_node(self.lab, i)
            self.samples.append(s)
            if self.stop_ev.wait(self.period):
                return

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()


def growth(samples, warmup_s, skip):
    """{metric: {node: percent}} from the samples, nodes in skip left out."""
    if not samples:
        return {}
    end_t = samples[-1]["t"]
    span = max(end_t - warmup_s, 1.0)
    base = [s for s in samples if warmup_s <= s["t"] <= warmup_s + 0.1 * span]
    last = [s for s in samples if s["t"] >= end_t - 0.1 * span]
    out = {}
    for m in METRICS:
        per = {}
        for k in samples[-1]["nodes"]:
            if k in skip:
                continue
            b = [s["nodes"].get(k, {}).get(m) for s in base]
            e = [s["nodes"].get(k, {}).get(m) for s in last]
            b = [x for x in b if x is not None]
            e = [x for x in e if x is not None]
            if not b or not e:
                continue
            mb, me = statistics.median(b), statistics.median(e)
            per[k] = 0.0 if mb == me else (100.0 * (me - mb) / mb if mb else None)
        out[m] = per
    return out


def run_soak(lab, a, rng):
    from .scenarios import (announce_set, call_norm, dht_ids, live_nodes, lookup_once,
                            publish, restart_node, run_flood, safe)
    nodes = live_nodes(lab)
    if len(nodes) < 4:
        raise LabError("soak needs at least 4 nodes")
    warmup = a.warmup if a.warmup is not None else a.duration / 6.0
    ids = dht_ids(lab, nodes)
    anns = announce_set(lab, rng, min(len(nodes), 10))
    prov = rng.sample(nodes, 2)
    for i in prov:
        publish(lab, i, "echo")
    natted = [i for i in nodes if lab.node(i).get("nat")]
    bridge = [i for i in nodes if not lab.node(i).get("nat")]
    keys = {i: lab.node(i)["key"] for i in natted if lab.node(i).get("key")}
    data = os.path.join(lab.dir, "data")
    os.makedirs(data, exist_ok=True)
    churned = set()
    # half the nodes (never node 1, the lab's DHT contact) may be churned;
    # the growth is measured on the others, which run the whole time
    churnable = rng.sample(nodes[1:], len(nodes) // 2)
    work = {"rounds": 0, "lookups": 0, "lookups_ok": 0, "calls": 0, "calls_ok": 0,
            "downloads": 0, "downloads_ok": 0, "dials": 0, "dials_ok": 0, "restarts": 0,
            "floods": 0, "errors": {}}

    def err(kind, e):
        work["errors"][kind] = work["errors"].get(kind, 0) + 1
        log("soak: %s: %s" % (kind, e))

    t_end = time.time() + a.duration
    with SoakSampler(lab, a.period) as smp:
        r = 0
        while time.time() < t_end:
            r += 1
            t_round = time.time()
            live = live_nodes(lab)
            with cf.ThreadPoolExecutor(8) as pool:
                recs = list(pool.map(lambda k: lookup_once(lab, random.Random(rng.random()), k,
                                                            ids, anns, live),
                                     ["find_node", "get_peers"] * 5))
            work["lookups"] += len(recs)
            work["lookups_ok"] += sum(1 for x in recs if x.get("ok"))
            for i in rng.sample(live, min(3, len(live))):
                try:
                    c = call_norm(api(lab.sock(i), "POST", "/v1/svc/call", {
                        "name": "echo", "method": "echo", "data": "soak", "count": 20,
                        "concurrency": 4, "timeout_ms": 5000}, timeout=120))
                    work["calls"] += c.get("calls") or 0
                    work["calls_ok"] += c.get("ok") or 0
                except (OSError, ApiError) as e:
                    err("call", e)
            if keys:
                k = rng.choice(sorted(keys))
                i = rng.choice([x for x in live if x != k] or live)
                work["dials"] += 1
                try:
                    api(lab.sock(i), "POST", "/v1/quic/ping",
                        {"addr": keys[k], "timeout_ms": 5000}, timeout=30)
                    work["dials_ok"] += 1
                except (OSError, ApiError) as e:
                    err("dial", e)
            if r % 5 == 0:
                src = os.path.join(data, "soak-%d.bin" % r)
                with open(src, "wb") as f:
                    f.write(os.urandom(1 << 20))
                # a seed on the bridge: a provider behind a NAT is announced
                # at its NAT's address, which downloaders cannot dial (its
                # key is not in the announce: docs/LAB.md "Soak")
                seed = rng.choice([x for x in live if x in bridge] or live)
                try:
                    share = api(lab.sock(seed), "POST", "/v1/content/add", {"paths": [src]},
                                timeout=120)
                    cid = share["items"][0]["id"]
                    for i in rng.sample([x for x in live if x != seed], min(2, len(live) - 1)):
                        work["downloads"] += 1
                        out = os.path.join(data, "soak-out-%d-%d" % (r, i))
                        os.makedirs(out, exist_ok=True)
                        job = api(lab.sock(i), "POST", "/v1/content/get",
                                  {"id": cid, "out": out, "link": True}, timeout=30)["job"]
                        t_dl = time.time() + 120
                        while time.time() < t_dl:
                            j = safe(lambda: api(lab.sock(i), "GET",
                                                 "/v1/content/jobs/%d" % job, timeout=5)) or {}
                            if j.get("state") in ("done", "failed"):
                                break
                            time.sleep(0.5)
                        if j.get("state") == "done":
                            work["downloads_ok"] += 1
                        else:
                            err("download", j.get("error") or j.get("state"))
                        shutil.rmtree(out, ignore_errors=True)
                        # the soak measures leaks, not a store that grows:
                        # what was fetched goes again (content rm)
                        safe(lambda: api(lab.sock(i), "POST", "/v1/content/rm", {"id": cid},
                                         timeout=30))
                    safe(lambda: api(lab.sock(seed), "POST", "/v1/content/rm", {"id": cid},
                                     timeout=30))
                except (OSError, ApiError, KeyError, IndexError) as e:
                    err("distribute", e)
                finally:
                    os.unlink(src)
            if r % 3 == 0 and len(churnable) > 0:
                v = rng.choice([x for x in churnable if x in live] or churnable)
                churned.add(str(v))
                lab.stop_node(v, signal.SIGKILL, wait=5)
                time.sleep(5)
                try:
                    restart_node(lab, v, time.time() + 60)
                    work["restarts"] += 1
                except LabError as e:
                    err("restart", e)
            if r % 4 == 0 and len(bridge) >= 3:
                fa = type("A", (), {"target": 0, "attacker": 0, "duration": 3.0,
                                    "pps": a.flood_pps})()
                try:
                    run_flood(lab, fa, rng)
                    work["floods"] += 1
                except (LabError, OSError, ApiError) as e:
                    err("flood", e)
            work["rounds"] = r
            left = a.round - (time.time() - t_round)
            if left > 0:
                time.sleep(min(left, max(0.0, t_end - time.time())))
    g = growth(smp.samples, warmup, churned)
    rows = []
    worst_all = 0.0
    for m in METRICS:
        vals = [v for v in g.get(m, {}).values() if v is not None]
        if not vals:
            rows.append([m, "-", "-", 0])
            continue
        med, worst = statistics.median(vals), max(vals, key=abs)
        worst_all = max(worst_all, worst)
        rows.append([m, fmt(med, " %", 1), fmt(worst, " %", 1), len(vals)])
    print(table(["metric", "growth (median node)", "growth (worst node)", "nodes"], rows))
    return {"duration_s": a.duration, "warmup_s": warmup, "period_s": a.period,
            "round_s": a.round, "work": work, "churned": sorted(churned, key=int),
            "growth_pct": g, "growth_worst_pct": worst_all, "goal_pct": 5.0,
            "samples": smp.samples}


def add_parser(rs, common):
    s = rs.add_parser("soak", parents=[common],
                      help="every scenario mixed for a long time: do resources stay flat?")
    s.add_argument("--duration", type=float, default=7200.0, help="seconds (default 2 h)")
    s.add_argument("--round", type=float, default=60.0, help="seconds per round of work")
    s.add_argument("--period", type=float, default=30.0, help="seconds between samples")
    s.add_argument("--warmup", type=float, default=None,
                   help="seconds left out of the growth (default: a sixth of the duration)")
    s.add_argument("--flood-pps", type=int, default=2000, help="the small flood's rate")
    return s


def plot(plt, res, save):
    """The report's soak figure: each metric over time, one line per node."""
    s = res.get("samples") or []
    if len(s) < 2:
        return
    fig, axs = plt.subplots(3, 3, figsize=(12, 9))
    for ax, m in zip(axs.flat, METRICS):
        for k in s[-1]["nodes"]:
            pts = [(x["t"] / 60.0, x["nodes"].get(k, {}).get(m)) for x in s]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                scale = 1048576.0 if m in ("rss", "lmdb") else 1.0
                ax.plot([p[0] for p in pts], [p[1] / scale for p in pts], lw=0.6)
        ax.axvline(res.get("warmup_s", 0) / 60.0, color="k", lw=0.5, ls="--")
        ax.set_title(m + (" (MiB)" if m in ("rss", "lmdb") else ""), fontsize=9)
        ax.set_xlabel("minutes", fontsize=8)
        ax.grid(True, alpha=0.3)
    save(fig, "soak.png", "Soak: resources over time",
         "Each node's RSS, threads, open descriptors, LMDB size and table sizes over the soak "
         "(one line per node; dashed: end of the warm-up). Worst growth after the warm-up: "
         "%.1f%% (goal 5%%)." % res.get("growth_worst_pct", 0.0))
