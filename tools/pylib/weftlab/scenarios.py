# SPDX-License-Identifier: MIT
"""weftlab's scenarios (`weftlab run NAME`): each takes the lab, the parsed
arguments and a seeded random generator, prints a table and returns the
result written to results/NAME.json (docs/LAB.md)."""
import concurrent.futures as cf
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import threading
import time

from .common import (DHT_PORT, QUIC_PORT, ApiError, KeptApi, LabError, api, child, fmt, log,
                     pid_alive, proc_sample, reap, sh, table, weftctl_path)
from .community import run_community
from .soak import run_soak
from .stats import (cpu_line, host_busy_s, host_cpu, host_stall, pct, stall_delta, stall_line,
                    swarm, t_frac)


def sample_resources(lab):
    """RSS and CPU seconds of every node now."""
    out = {}
    for i in lab.nodes():
        pid = lab.node(i).get("pid")
        s = proc_sample(pid) if pid else None
        if s:
            out[str(i)] = {"rss": s[0], "cpu_s": s[1]}
    return out


def write_result(lab, name, res):
    d = lab.results_dir()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    path = os.path.join(d, "%s-%s.json" % (name, stamp))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    latest = os.path.join(d, name + ".json")
    with open(latest + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.replace(latest + ".tmp", latest)
    log("results: %s" % latest)
    return path


# ------------------------------------------------------------ scenarios

class Sampler:
    """RSS and CPU time of every node, once a second, in a thread."""

    def __init__(self, lab, period=1.0):
        self.lab, self.period = lab, period
        self.samples = []
        self.stop_ev = threading.Event()
        self.t0 = time.time()
        self.th = threading.Thread(target=self.loop, daemon=True)

    def loop(self):
        last = False
        while True:
            s = {"t": round(time.time() - self.t0, 2), "rss": {}, "cpu_s": {}}
            for i in self.lab.nodes():
                pid = self.lab.node(i).get("pid")
                ps = proc_sample(pid) if pid else None
                if ps:
                    s["rss"][str(i)], s["cpu_s"][str(i)] = ps[0], round(ps[1], 3)
            self.samples.append(s)
            if last:
                return
            # one more sample once stopped: a short run still has two
            last = self.stop_ev.wait(self.period)

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()


def summary_resources(samples):
    """Per node: max RSS and mean CPU % (of one core) over the samples."""
    if len(samples) < 2:
        return {}
    first, last = samples[0], samples[-1]
    dt = last["t"] - first["t"]
    out = {}
    for k in last["rss"]:
        rss = max(s["rss"].get(k, 0) for s in samples)
        cpu = None
        if k in first["cpu_s"] and dt > 0:
            cpu = 100.0 * (last["cpu_s"][k] - first["cpu_s"][k]) / dt
        out[k] = {"rss_max": rss, "cpu_pct": cpu}
    return out


def nodes_cpu_s(samples):
    """CPU seconds the nodes' processes spent between the first and the
    last sample (nodes in both)."""
    if len(samples) < 2:
        return None
    first, last = samples[0]["cpu_s"], samples[-1]["cpu_s"]
    return round(sum(v - first[k] for k, v in last.items() if k in first), 2)


def live_nodes(lab):
    return [i for i in lab.nodes() if lab.node(i).get("pid") and pid_alive(lab.node(i)["pid"])]


def dht_ids(lab, ids):
    out = {}
    with cf.ThreadPoolExecutor(16) as pool:
        for i, s in zip(ids, pool.map(lambda i: safe(lambda: lab.dht_status(i)), ids)):
            if s and s.get("id"):
                out[i] = s["id"]
    return out


def safe(fn):
    try:
        return fn()
    except (OSError, ApiError):
        return None


def timed(fn):
    """(seconds, result, error string) of fn()."""
    t = time.time()
    try:
        r = fn()
        return time.time() - t, r, None
    except ApiError as e:
        return time.time() - t, None, e.code
    except OSError as e:
        return time.time() - t, None, str(e)[:60]


def announce_set(lab, rng, count):
    """count nodes each announce a fresh infohash; [(ih, node, ip)]."""
    nodes = live_nodes(lab)
    who = rng.sample(nodes, min(count, len(nodes)))
    out = []

    def one(i):
        ih = "%040x" % rng.getrandbits(160)
        r = safe(lambda: api(lab.sock(i), "POST", "/v1/dht/announce",
                             {"infohash": ih, "port": QUIC_PORT}, timeout=30))
        return (ih, i, r)
    with cf.ThreadPoolExecutor(8) as pool:
        for ih, i, r in pool.map(one, who):
            if r is not None:
                out.append((ih, i))
    return out


def peer_ok(lab, announcer, peers):
    """Did get_peers find the announcer? Its own address, or for a node
    behind a NAT the router's public address (the port is the mapping's)."""
    n = lab.node(announcer)
    want = n["ip"] if not n["nat"] else lab.st["nat"][n["nat"]]["public"]
    return any(p.rsplit(":", 1)[0] == want for p in peers or [])


def lookup_once(lab, rng, kind, ids, anns, origins):
    """One lookup from a random origin: find_node of a node's id (found when
    the id is among the answer's nodes) or get_peers of an announced
    infohash (found when the announcer is among the peers). find_node
    targets are nodes on the bridge: a node behind a NAT is a BEP 43
    read-only node, kept out of every routing table by design, so no
    lookup can find it by id (it is reached through its node record)."""
    if kind == "find_node":
        pub = sorted(i for i in ids if not lab.node(i)["nat"])
        target = rng.choice(pub or sorted(ids))
        cand = [o for o in origins if o != target] or origins
        o = rng.choice(cand)
        dt, r, err = timed(lambda: api(lab.sock(o), "POST", "/v1/dht/find-node",
                                       {"id": ids[target]}, timeout=30))
        ok = bool(r) and any(x.get("id") == ids[target] for x in r.get("nodes", []))
    else:
        ih, ann = rng.choice(anns)
        cand = [x for x in origins if x != ann] or origins
        o = rng.choice(cand)
        dt, r, err = timed(lambda: api(lab.sock(o), "POST", "/v1/dht/get-peers",
                                       {"infohash": ih}, timeout=30))
        ok = bool(r) and peer_ok(lab, ann, r.get("peers"))
    return {"kind": kind, "from": o, "ok": ok, "ms": round(dt * 1000.0, 2),
            "hops": r.get("hops") if r else None, "queried": r.get("queried") if r else None,
            "error": err, "t": time.time()}


def lookup_rows(recs):
    rows, summ = [], {}
    for kind in ("find_node", "get_peers"):
        rs = [r for r in recs if r["kind"] == kind]
        if not rs:
            continue
        lat = [r["ms"] for r in rs if r["ok"]]
        hops = [r["hops"] for r in rs if r["ok"] and r["hops"] is not None]
        ok = sum(1 for r in rs if r["ok"])
        s = {"count": len(rs), "ok": ok, "success": ok / len(rs), "p50_ms": pct(lat, 50),
             "p99_ms": pct(lat, 99), "max_ms": max(lat) if lat else None,
             "hops_mean": statistics.mean(hops) if hops else None,
             "hops_max": max(hops) if hops else None}
        summ[kind] = s
        rows.append([kind, s["count"], "%.1f%%" % (100.0 * s["success"]), fmt(s["p50_ms"], " ms"),
                     fmt(s["p99_ms"], " ms"), fmt(s["hops_mean"], "", 2), fmt(s["hops_max"])])
    return rows, summ


LOOKUP_HDR = ["lookup", "count", "success", "p50", "p99", "hops mean", "hops max"]


def run_lookups(lab, a, rng):
    nodes = live_nodes(lab)
    ids = dht_ids(lab, nodes)
    anns = announce_set(lab, rng, min(len(nodes), 20))
    if not anns:
        raise LabError("no announce succeeded")
    count = a.count or min(1000, 10 * len(nodes))
    kinds = ["find_node", "get_peers"] * (count // 2) + ["find_node"] * (count % 2)
    with Sampler(lab) as smp:
        with cf.ThreadPoolExecutor(a.concurrency) as pool:
            recs = list(pool.map(lambda k: lookup_once(lab, random.Random(rng.random()), k, ids,
                                                        anns, nodes), kinds))
    rows, summ = lookup_rows(recs)
    print(table(LOOKUP_HDR, rows))
    return {"announced": len(anns), "summary": summ, "lookups": recs, "samples": smp.samples,
            "resources": summary_resources(smp.samples)}


def run_bootstrap(lab, a, rng):
    """Stop every node and start them all again (in waves, as `up` does):
    time until each routing table is healthy. Cold by default (state wiped: new keys, an
    empty table), --warm keeps the state (the stored routing table)."""
    ids = lab.nodes()
    for i in ids:
        lab.stop_node(i)
    lab.save()
    if not a.warm:
        for i in ids:
            d = lab.node_dir(i)
            for f in os.listdir(d):
                if f != "weftd.log":
                    p = os.path.join(d, f)
                    shutil.rmtree(p) if os.path.isdir(p) and not os.path.islink(p) else os.unlink(p)
    with Sampler(lab) as smp:
        t0 = time.time()
        try:
            lab.start_all(ids)
        finally:
            lab.save()
        t_up = time.time() - t0
        lab.save()
        healthy = lab.wait_healthy(ids, time.time() + a.timeout, t0)
    times = sorted(healthy.values())
    res = {"mode": "warm" if a.warm else "cold", "nodes": len(ids), "t_processes_s": t_up,
           "healthy": len(healthy), "healthy_s": {str(k): v for k, v in healthy.items()},
           "p50_s": pct(times, 50), "p90_s": pct(times, 90),
           "t_all_healthy_s": times[-1] if len(times) == len(ids) else None,
           "samples": smp.samples, "resources": summary_resources(smp.samples)}
    print(table(["mode", "nodes", "answering s", "healthy", "p50 s", "p90 s", "all s"],
                [[res["mode"], len(ids), fmt(t_up), "%d/%d" % (len(healthy), len(ids)),
                  fmt(res["p50_s"], "", 2), fmt(res["p90_s"], "", 2),
                  fmt(res["t_all_healthy_s"], "", 2)]]))
    if len(healthy) < len(ids):
        res["failed"] = "%d nodes not healthy in %d s" % (len(ids) - len(healthy), a.timeout)
    return res


# churn --signal term: a stop that has not ended after this long is stuck
# (then killed); weftd's own bound is a few seconds (test_svc_stall: 8 s
# against a stop pinned by calls), this leaves room for a sanitizer build
# on a loaded machine
STOP_WAIT_S = 20


def restart_node(lab, i, deadline):
    """Start node i again after a kill and wait until it answers. A process
    killed with SIGKILL can hold its UDP ports for a while after it is gone
    (the kernel tears an io_uring instance down asynchronously), so a start
    that exits at once is tried again every 0.5 s until the deadline.
    Returns the number of starts it took."""
    tries = 0
    while True:
        tries += 1
        lab.start_node(i, lab.bootstrap_of(i))
        try:
            lab.wait_up([i], min(deadline, time.time() + 30))
            return tries
        except LabError:
            lab.stop_node(i, signal.SIGKILL, wait=5)
            if time.time() >= deadline:
                raise
            time.sleep(0.5)


def run_churn(lab, a, rng):
    """Kill fraction x nodes (node 1, the lab's DHT contact, stays), one at
    a time at even intervals over the duration, each restarted --down
    seconds later with its state, while lookups run. --signal term stops
    each with SIGTERM instead of SIGKILL: the daemon's whole stop path runs
    under the lab's load (the stress recipe's use); how long each stop took
    is recorded, and one that did not end within STOP_WAIT_S (then killed)
    is counted as stuck."""
    nodes = lab.nodes()
    ids = dht_ids(lab, nodes)
    anns = announce_set(lab, rng, min(len(nodes), 20))
    victims = [i for i in nodes[1:]]
    events = max(1, int(round(a.fraction * len(nodes))))
    gap = a.duration / events
    stop = threading.Event()
    log_ev = []
    down = {}
    lock = threading.Lock()
    term = getattr(a, "signal", "kill") == "term"
    stops = []

    def churner():
        r = random.Random(rng.random())
        k = 0
        nxt = time.time() + gap / 2
        while not stop.is_set():
            now = time.time()
            for i, t in list(down.items()):
                if now >= t:
                    # the node stays in `down` (no lookup from it) until it answers
                    tries = restart_node(lab, i, now + 60)
                    with lock:
                        del down[i]
                    log_ev.append({"t": now, "node": i, "ev": "start", "tries": tries})
            if now >= nxt and k < events:
                up = [i for i in victims if i not in down]
                if up:
                    i = r.choice(up)
                    with lock:
                        if term:
                            pid = lab.node(i).get("pid")
                            t_stop = time.time()
                            lab.stop_node(i, signal.SIGTERM, wait=STOP_WAIT_S)
                            took = time.time() - t_stop
                            stops.append({"node": i, "pid": pid, "s": round(took, 3),
                                          "stuck": took >= STOP_WAIT_S})
                        else:
                            lab.stop_node(i, signal.SIGKILL, wait=2)
                        down[i] = time.time() + a.down
                    log_ev.append({"t": now, "node": i, "ev": "kill"})
                    k += 1
                nxt += gap
            reap()
            stop.wait(0.05)
        for i in list(down):
            now = time.time()
            tries = restart_node(lab, i, now + 60)
            log_ev.append({"t": now, "node": i, "ev": "start", "tries": tries})

    recs = []
    th = threading.Thread(target=churner, daemon=True)
    t0 = time.time()
    with Sampler(lab) as smp:
        th.start()
        r = random.Random(rng.random())

        def looker():
            rr = random.Random(r.random())
            while time.time() - t0 < a.duration:
                with lock:
                    origins = [i for i in live_nodes(lab) if i not in down]
                    targets = {i: ids[i] for i in origins if i in ids}
                if not origins or not targets:
                    time.sleep(0.1)
                    continue
                kind = rr.choice(["find_node", "get_peers"])
                rec = lookup_once(lab, rr, kind, targets, anns, origins)
                with lock:
                    # a lookup from a node killed meanwhile is not the DHT's failure
                    if rec["from"] in down:
                        continue
                recs.append(rec)
        with cf.ThreadPoolExecutor(a.concurrency) as pool:
            list(pool.map(lambda _: looker(), range(a.concurrency)))
        stop.set()
        th.join()
    lab.save()
    rows, summ = lookup_rows(recs)
    kills = sum(1 for e in log_ev if e["ev"] == "kill")
    print("churn: %d %s over %.0f s (%.0f%% of %d nodes), each down %.0f s"
          % (kills, "stops by SIGTERM" if term else "kills", a.duration,
             100.0 * kills / len(nodes), len(nodes), a.down))
    if stops:
        took = sorted(x["s"] for x in stops)
        print("stops: %d, slowest %.1f s, median %.1f s, stuck (killed after %d s): %d"
              % (len(stops), took[-1], took[len(took) // 2], STOP_WAIT_S,
                 sum(1 for x in stops if x["stuck"])))
    print(table(LOOKUP_HDR, rows))
    for r in recs:
        r["t"] = round(r["t"] - t0, 3)
    for e in log_ev:
        e["t"] = round(e["t"] - t0, 3)
    return {"duration_s": a.duration, "fraction": a.fraction, "down_s": a.down, "kills": kills,
            "signal": "term" if term else "kill", "stops": stops,
            "stuck": sum(1 for x in stops if x["stuck"]), "events": log_ev, "summary": summ, "lookups": recs, "samples": smp.samples,
            "resources": summary_resources(smp.samples)}


def b3_of(path):
    out = sh([weftctl_path(), "hash", "--no-names", path], check=False).strip()
    return out.split()[0] if out else None


def run_distribute(lab, a, rng):
    """One seed publishes a file, every other node downloads it at once."""
    seed = a.seed_node
    if str(seed) not in lab.st["nodes"]:
        raise LabError("--seed-node %d: no such node" % seed)
    data = os.path.join(lab.dir, "data")
    os.makedirs(data, exist_ok=True)
    src = os.path.join(data, "dist-%dMiB-%d.bin" % (a.size, rng.getrandbits(32)))
    with open(src, "wb") as f:
        r = random.Random(rng.random())
        for _ in range(a.size):
            f.write(r.getrandbits(8 << 20).to_bytes(1 << 20, "little"))
    share = api(lab.sock(seed), "POST", "/v1/content/add", {"paths": [src]}, timeout=300)
    cid = share["items"][0]["id"]
    size = share["items"][0]["size"]
    st0 = api(lab.sock(seed), "GET", "/v1/content/stats")
    others = [i for i in lab.nodes() if i != seed]
    jobs, outdir, tpost = {}, {}, {}
    prog = {str(i): [] for i in others}
    done = {}
    cpu = []  # [[s, host busy s]]: stats.host_cpu
    with Sampler(lab) as smp:
        t0 = time.time()
        busy0 = host_busy_s()
        stall0 = host_stall()  # the host's steal, iowait, PSI over the run
        for i in others:
            outdir[i] = os.path.join(lab.node_dir(i), "dl-%s" % cid[:12])
            os.makedirs(outdir[i], exist_ok=True)
            tpost[i] = time.time() - t0
            # link: the finished file is a read-only second name of the
            # node's store copy, not a second copy (docs/CONTENT.md).
            jobs[i] = api(lab.sock(i), "POST", "/v1/content/get",
                          {"id": cid, "out": outdir[i], "link": True},
                          timeout=30)["job"]
        deadline = t0 + a.timeout
        pool = cf.ThreadPoolExecutor(16)
        # kept connections: a new one per poll cost each weftd a thread
        # start and end, ~8x the request (docs/LAB.md)
        kept = KeptApi(timeout=5)

        def poll(i):
            return safe(lambda: kept.get(lab.sock(i), "/v1/content/jobs/%d" % jobs[i]))
        failed = {}
        last = {}  # each node's job as last polled: its counters summed below
        while len(done) + len(failed) < len(others) and time.time() < deadline:
            waiting = [i for i in others if i not in done and i not in failed]
            now = time.time() - t0
            if busy0 is not None:
                cpu.append([round(now, 3), round(host_busy_s() - busy0, 2)])
            for i, j in zip(waiting, pool.map(poll, waiting)):
                if not j:
                    continue
                prog[str(i)].append([round(now, 3), j.get("done_bytes", 0)])
                last[i] = j
                # a failed job is finished too ("done": true): state first
                if j.get("state") == "failed":
                    failed[i] = j.get("error")
                elif j.get("state") == "done" or j.get("done") is True:
                    # the node's own clock: from the job's start to its
                    # end, not rounded up to this loop's next poll (aria2
                    # stamps its completion from a hook the same way)
                    el = j.get("elapsed_ms")
                    done[i] = (tpost[i] + el / 1000.0
                               if isinstance(el, int) and 0 < el <= now * 1000 else now)
            time.sleep(0.25)
        stall = stall_delta(stall0, host_stall())
        pool.shutdown()
        kept.close()
    st1 = api(lab.sock(seed), "GET", "/v1/content/stats")
    verified = {}
    for i in done:
        verified[i] = b3_of(os.path.join(outdir[i], cid)) == cid
    n = len(others)
    res = {"seed": seed, "content_id": cid, "size": size, "downloaders": n,
           "done": len(done), "verified": sum(1 for v in verified.values() if v),
           "failed": {str(k): v for k, v in failed.items()},
           "seed_upload_bytes": st1.get("served_bytes", 0) - st0.get("served_bytes", 0)}
    # the same figures, by the same functions, as the aria2 comparison's
    res.update(swarm(done, verified, others, size, prog))
    res.update(host_cpu(cpu, prog, n, size, res["t100_s"] or (time.time() - t0)))
    # when each node was asked (s after t0): the asks go one after the other
    res["posted_s"] = {str(i): round(tpost[i], 3) for i in others}
    res["host_stall"] = stall
    # the downloaders' job counters, summed (docs/CONTENT.md "Swarm download")
    res["jobs_sum"] = {k: sum(int(j.get(k, 0) or 0) for j in last.values())
                       for k in ("retries", "endgame", "endgame_cancelled", "wasted_bytes",
                                 "pex_found", "lookups", "refreshes", "refreshes_idle",
                                 "held_told", "idle_told")}
    res.update({"progress": prog, "samples": smp.samples, "host_cpu": cpu,
                "resources": summary_resources(smp.samples)})
    res["tool_cpu_s"] = nodes_cpu_s(smp.samples)
    print(table(["size", "nodes", "done", "verified", "t50", "t90", "t100", "seed upload",
                 "per-node p50"],
                [["%.1f MiB" % (size / 1048576.0), n, res["done"], res["verified"],
                  fmt(res["t50_s"], " s", 2), fmt(res["t90_s"], " s", 2),
                  fmt(res["t100_s"], " s", 2),
                  "%.1f MiB (%.2fx)" % (res["seed_upload_bytes"] / 1048576.0,
                                        res["seed_upload_bytes"] / float(size)),
                  fmt(res["mbit_s_p50"], " Mbit/s")]]))
    print(cpu_line(res, "weftd"))
    if res["host_stall"]:
        print(stall_line(res["host_stall"]))
    if not a.keep:
        os.unlink(src)
    return res


def call_norm(r):
    """A /v1/svc/call answer as a batch: a single call (count 1) answers
    {"error", "status", "rtt_us", ...}, a batch {"calls", "ok", ...}."""
    if r is None or "calls" in r:
        return r
    ok = r.get("status") == 0
    return {"calls": 1, "ok": int(ok), "errors": {r.get("error", "?"): 1},
            "p50_us": r.get("rtt_us") if ok else None, "p99_us": r.get("rtt_us") if ok else None}


def publish(lab, i, name):
    """Publish a builtin service on node i (already published is fine)."""
    try:
        api(lab.sock(i), "POST", "/v1/svc/publish", {"name": name, "backend": "builtin"},
            timeout=30)
    except ApiError as e:
        if e.code != "exists":
            raise


def run_services(lab, a, rng):
    """Publish a builtin echo service on K nodes; every node calls it."""
    nodes = live_nodes(lab)
    k = min(a.providers, len(nodes))
    prov = rng.sample(nodes, k)
    name = "echo"  # the builtin echo backend answers under its own name
    for i in prov:
        publish(lab, i, name)
    # every node finds it before the calls start (the DHT announce is async)
    t0 = time.time()
    found = {}
    with cf.ThreadPoolExecutor(16) as pool:
        while len(found) < len(nodes) and time.time() - t0 < a.timeout:
            todo = [i for i in nodes if i not in found]
            for i, r in zip(todo, pool.map(lambda i: safe(lambda: api(
                    lab.sock(i), "GET", "/v1/svc/find/" + name, timeout=15)), todo)):
                if r and r.get("results"):
                    found[i] = time.time() - t0
            if len(found) < len(nodes):
                time.sleep(0.5)

    def call(i):
        dt, r, err = timed(lambda: api(lab.sock(i), "POST", "/v1/svc/call", {
            "name": name, "method": "echo", "data": "weftlab", "count": a.calls,
            "concurrency": a.call_concurrency, "timeout_ms": a.call_timeout}, timeout=120))
        return i, call_norm(r), err
    with Sampler(lab) as smp:
        with cf.ThreadPoolExecutor(min(32, len(nodes))) as pool:
            out = list(pool.map(call, nodes))
    per = {}
    for i, r, err in out:
        per[str(i)] = {"calls": r.get("calls") if r else 0, "ok": r.get("ok") if r else 0,
                       "p50_us": r.get("p50_us") if r else None,
                       "p99_us": r.get("p99_us") if r else None,
                       "calls_per_s": r.get("calls_per_s") if r else None,
                       "errors": r.get("errors") if r else {"request": err},
                       "provider": i in prov, "find_s": found.get(i)}
    calls = sum(v["calls"] or 0 for v in per.values())
    ok = sum(v["ok"] or 0 for v in per.values())
    p50 = [v["p50_us"] for v in per.values() if v["p50_us"] is not None]
    p99 = [v["p99_us"] for v in per.values() if v["p99_us"] is not None]
    res = {"service": name, "providers": prov, "callers": len(nodes), "found": len(found),
           "calls": calls, "ok": ok, "expected_calls": a.calls * len(nodes),
           "p50_us_median": pct(p50, 50), "p99_us_max": max(p99) if p99 else None,
           "find_s_max": max(found.values()) if found else None, "per_node": per,
           "samples": smp.samples, "resources": summary_resources(smp.samples)}
    print(table(["providers", "callers", "found", "calls", "ok", "p50 (median node)",
                 "p99 (worst node)", "find (slowest)"],
                [[k, len(nodes), len(found), calls, ok, fmt(res["p50_us_median"], " us"),
                  fmt(res["p99_us_max"], " us"), fmt(res["find_s_max"], " s", 2)]]))
    return res


def flood_main(a):
    """Hidden `_flood`: run inside the attacker's namespace. Sends DHT
    find_node queries (random targets and transaction ids, one node id per
    source port) and QUIC-looking garbage to TARGET from 16 source ports,
    for SECONDS; prints JSON."""
    t_end = time.time() + a.seconds
    socks = []
    ids = []
    for _ in range(16):
        ids.append(random.Random(a.seed + len(ids)).getrandbits(160).to_bytes(20, "big"))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setblocking(False)
        socks.append(s)
    rng = random.Random(a.seed)
    sent = 0
    fails = 0
    period = 1.0 / a.pps if a.pps else 0.0
    nxt = time.time()
    while time.time() < t_end:
        for k, s in enumerate(socks):
            tid = rng.getrandbits(16).to_bytes(2, "big")
            nid = ids[k]  # one node id per source port: one attacking host
            tgt = rng.getrandbits(160).to_bytes(20, "big")
            if k % 4:
                msg = (b"d1:ad2:id20:" + nid + b"6:target20:" + tgt + b"e1:q9:find_node1:t2:"
                       + tid + b"1:y1:qe")
                port = DHT_PORT
            else:
                msg = bytes([0xc3]) + rng.getrandbits(8 * 1199).to_bytes(1199, "big")
                port = QUIC_PORT
            try:
                s.sendto(msg, (a.target, port))
                sent += 1
            except (BlockingIOError, OSError):
                fails += 1
        if period:
            nxt += period * len(socks)
            d = nxt - time.time()
            if d > 0:
                time.sleep(d)
    print(json.dumps({"sent": sent, "send_failed": fails, "seconds": a.seconds}))


def run_flood(lab, a, rng):
    """One node (the target) attacked from another node's namespace while
    the others call its echo service: calls before, during, after."""
    nodes = live_nodes(lab)
    pubs = [i for i in nodes if not lab.node(i)["nat"]]
    if len(pubs) < 3:
        raise LabError("flood needs at least 3 nodes on the bridge")
    target = a.target or pubs[1]
    attacker = a.attacker or pubs[-1]
    if target == attacker:
        raise LabError("target and attacker are the same node")
    callers = [i for i in nodes if i not in (target, attacker)]
    # mesh-stats (builtin) is published by the target alone, so every call
    # reaches the node under attack (echo may have other providers)
    name = "mesh-stats"
    publish(lab, target, name)
    t0 = time.time()
    while time.time() - t0 < 60:
        if all(safe(lambda: api(lab.sock(i), "GET", "/v1/svc/find/" + name, timeout=15))
               for i in callers[:3]):
            break
        time.sleep(0.5)

    def phase(label, seconds):
        recs = []
        end = time.time() + seconds

        pings = []

        def caller(i):
            # one call and one DHT ping a second per caller: under the
            # target's per-peer limit (svc.peer_calls_per_min, 100), so the
            # measurement itself is never what gets banned
            nxt = time.time()
            while time.time() < end:
                nxt += 1.0
                dt, r, err = timed(lambda: api(lab.sock(i), "POST", "/v1/svc/call", {
                    "name": name, "method": "get", "data": "x", "count": 1,
                    "concurrency": 1, "timeout_ms": 2000}, timeout=60))
                r = call_norm(r)
                recs.append({"node": i, "t": time.time(), "calls": (r or {}).get("calls") or 1,
                             "ok": (r or {}).get("ok") or 0,
                             "p50_us": r.get("p50_us") if r else None,
                             "p99_us": r.get("p99_us") if r else None,
                             "errors": r.get("errors") if r else {"request": err}})
                dt, r, err = timed(lambda: api(lab.sock(i), "POST", "/v1/dht/ping", {
                    "addr": "%s:%d" % (lab.node(target)["ip"], DHT_PORT)}, timeout=30))
                pings.append({"node": i, "ok": r is not None,
                              "rtt_ms": r.get("rtt_ms") if r else None, "error": err})
                time.sleep(max(0.0, nxt - time.time()))
        with cf.ThreadPoolExecutor(min(16, len(callers))) as pool:
            list(pool.map(caller, callers[:16]))
        calls = sum(r["calls"] for r in recs)
        ok = sum(r["ok"] for r in recs)
        p50 = [r["p50_us"] for r in recs if r["p50_us"] is not None]
        p99 = [r["p99_us"] for r in recs if r["p99_us"] is not None]
        rtt = [p["rtt_ms"] for p in pings if p["ok"] and p["rtt_ms"] is not None]
        return {"phase": label, "calls": calls, "ok": ok, "success": ok / calls if calls else None,
                "p50_us": pct(p50, 50), "p99_us": pct(p99, 99), "batches": recs,
                "dht_pings": len(pings), "dht_pings_ok": sum(1 for p in pings if p["ok"]),
                "dht_rtt_p50_ms": pct(rtt, 50), "dht_rtt_p99_ms": pct(rtt, 99)}

    def counters():
        x = safe(lambda: api(lab.sock(target), "GET", "/v1/xdp/status", timeout=30))
        return dict((k, v) for k, v in (x or {}).get("counters", {}).items() if isinstance(v, int))

    with Sampler(lab) as smp:
        before = phase("before", a.duration / 3.0)
        c0 = counters()
        cmd, env = child("weftlab", ["_flood", "--target", lab.node(target)["ip"],
                                     "--seconds", str(a.duration), "--pps", str(a.pps),
                                     "--seed", str(rng.getrandbits(32))])
        fl = subprocess.Popen(["ip", "netns", "exec", lab.node(attacker)["ns"]] + cmd,
                              stdout=subprocess.PIPE, text=True, start_new_session=True, env=env)
        during = phase("during", a.duration)
        out, _ = fl.communicate(timeout=a.duration + 30)
        c1 = counters()
        after = phase("after", a.duration / 3.0)
    try:
        sent = json.loads(out)
    except ValueError:
        sent = {"sent": None}
    delta = {k: c1.get(k, 0) - c0.get(k, 0) for k in c1 if c1.get(k, 0) != c0.get(k, 0)}
    phases = [before, during, after]
    res = {"target": target, "attacker": attacker, "service": name, "flood": sent,
           "flood_pps": sent["sent"] / a.duration if sent.get("sent") else None,
           "target_counters": delta, "phases": phases, "samples": smp.samples,
           "resources": summary_resources(smp.samples)}
    print("flood: %s datagrams from node %d to node %d in %d s (%s pps); target's policer: %s"
          % (sent.get("sent"), attacker, target, a.duration, fmt(res["flood_pps"], "", 0),
             ", ".join("%s +%d" % kv for kv in sorted(delta.items()) if kv[0] != "rx") or "-"))
    print(table(["phase", "calls", "ok", "success", "p50", "p99", "dht pings", "ok", "rtt p50",
                 "rtt p99"],
                [[p["phase"], p["calls"], p["ok"],
                  fmt(100.0 * p["success"] if p["success"] is not None else None, "%"),
                  fmt(p["p50_us"], " us"), fmt(p["p99_us"], " us"), p["dht_pings"],
                  p["dht_pings_ok"], fmt(p["dht_rtt_p50_ms"], " ms"),
                  fmt(p["dht_rtt_p99_ms"], " ms")] for p in phases]))
    return res


def run_nat(lab, a, rng):
    """Dial by key across NAT groups: every node pings the node records'
    keys of a sample of others (POST /v1/quic/ping with the key alone)."""
    nodes = live_nodes(lab)
    keys = {i: lab.node(i).get("key") for i in nodes if lab.node(i).get("key")}
    pairs = []
    for i in nodes:
        others = [j for j in nodes if j != i and j in keys]
        for j in rng.sample(others, min(a.per_node, len(others))):
            pairs.append((i, j))

    def one(p):
        i, j = p
        if a.fresh:
            # drop i's cached record of j: one cached before j's relay
            # reservation lists no relay and fails at once (docs/LAB.md)
            safe(lambda: api(lab.sock(i), "POST", "/v1/node/resolve",
                             {"key": keys[j], "fresh": True}, timeout=15))
        dt, r, err = timed(lambda: api(lab.sock(i), "POST", "/v1/quic/ping",
                                       {"addr": keys[j], "timeout_ms": a.ping_timeout},
                                       timeout=a.ping_timeout / 1000.0 + 30))
        return {"from": i, "to": j, "ok": r is not None, "ms": round(dt * 1000, 1), "error": err,
                "from_group": lab.node(i)["nat"] or "bridge", "to_group": lab.node(j)["nat"] or "bridge"}
    relays = [i for i in nodes if lab.node(i).get("relay")]
    behind = [j for j in keys if lab.node(j)["nat"]]
    pubs = [i for i in nodes if not lab.node(i)["nat"]]
    if pubs and a.wait_records > 0:
        # every node's record in the DHT first (a cold-started lab's first
        # node puts its record once others know it), and a node behind a
        # NAT publishes its relay in its record once its reservation is
        # held: dial only after every record says so
        targets = {j for _, j in pairs}
        t0, unresolved = time.time(), set(targets)
        while unresolved and time.time() - t0 < a.wait_records:
            for j in sorted(unresolved):
                r = safe(lambda: api(lab.sock(pubs[0] if pubs[0] != j else pubs[-1]), "POST",
                                     "/v1/node/resolve", {"key": keys[j], "fresh": True},
                                     timeout=15))
                if r and (r.get("relays") if j in behind and relays else r.get("addrs")):
                    unresolved.discard(j)
            if unresolved:
                time.sleep(1)
        print("records found: %d/%d, %d of %d behind a NAT listing a relay (%.1f s)"
              % (len(targets) - len(unresolved), len(targets),
                 len([j for j in behind if j not in unresolved]), len(behind), time.time() - t0))

    def circuits():
        """Circuits the relays granted so far (/v1/relay/status)."""
        n = 0
        for i in relays:
            st = safe(lambda: api(lab.sock(i), "GET", "/v1/relay/status", timeout=5)) or {}
            n += st.get("counters", {}).get("circuits", 0)
        return n
    c0 = circuits()
    with Sampler(lab) as smp:
        with cf.ThreadPoolExecutor(a.concurrency) as pool:
            recs = list(pool.map(one, pairs))
    relayed = circuits() - c0
    groups = {}
    for r in recs:
        g = groups.setdefault((r["from_group"], r["to_group"]), [0, 0])
        g[0] += 1
        g[1] += r["ok"]
    rows = [[f, t, n, ok, "%.1f%%" % (100.0 * ok / n)] for (f, t), (n, ok) in sorted(groups.items())]
    print(table(["from", "to", "pings", "ok", "success"], rows))
    ok = sum(1 for r in recs if r["ok"])
    # a dial through a relay opens one circuit: the rest of the successful
    # pings went direct (an upper bound when a failed dial got a circuit)
    direct = max(0, ok - relayed)
    print("%d of %d pings ok; %d circuits through %d relays; direct share %s"
          % (ok, len(recs), relayed, len(relays),
             "%.1f%%" % (100.0 * direct / ok) if ok else "-"))
    return {"pairs": recs, "groups": [{"from": f, "to": t, "count": n, "ok": ok}
                                      for (f, t), (n, ok) in sorted(groups.items())],
            "relays": len(relays), "relayed": relayed, "ok": ok,
            "direct_share": direct / float(ok) if ok else None,
            "samples": smp.samples, "resources": summary_resources(smp.samples)}


def run_aria2(lab, a, rng):
    """The distribute scenario done by aria2c: weftlab-aria2 (aria2.py, in a
    process of its own) does it and writes results/aria2.json itself."""
    args = ["--dir", lab.dir, "--size", str(a.size), "--seed-node", str(a.seed_node),
            "--timeout", str(a.timeout), "--seed", str(rng.getrandbits(31))]
    if a.keep:
        args.append("--keep")
    cmd, env = child("weftlab.aria2", args)
    if subprocess.call(cmd, env=env) != 0:
        raise LabError("aria2: not every node got the file (results/aria2.json)")
    return None


def run_follow(lab, a, rng):
    """A publisher updates a named share that K subscribers follow (BEP 46
    heads, polled every content.poll_s): time from the update to each
    subscriber holding the new version."""
    pub = a.publisher
    nodes = live_nodes(lab)
    if pub not in nodes:
        raise LabError("--publisher %d: no such node, or not running" % pub)
    subs = [i for i in nodes if i != pub][:a.subscribers]
    if not subs:
        raise LabError("no subscriber: the lab needs 2 nodes or more")
    data = os.path.join(lab.dir, "data")
    os.makedirs(data, exist_ok=True)
    name = "lab-follow-%08x" % rng.getrandbits(32)
    src = os.path.join(data, name + ".bin")
    r = random.Random(rng.random())
    with open(src, "wb") as f:
        for _ in range(a.size):
            f.write(r.getrandbits(8 << 20).to_bytes(1 << 20, "little"))
    key = lab.node(pub)["key"]
    head = "%s/%s" % (key, name)

    def add():
        return api(lab.sock(pub), "POST", "/v1/content/add", {"paths": [src], "name": name},
                   timeout=300)

    def fetched(i):
        s = safe(lambda: api(lab.sock(i), "GET", "/v1/content/subscriptions", timeout=5))
        for e in (s or {}).get("subscriptions", []):
            if e.get("head") == head or (e.get("key") == key and e.get("name") == name):
                return e.get("fetched_seq", -1), s.get("poll_s")
        return -1, (s or {}).get("poll_s")

    def wait_all(seq, t0, sync):
        done, poll_s = {}, None
        with cf.ThreadPoolExecutor(16) as pool:
            while len(done) < len(subs) and time.time() - t0 < a.timeout:
                todo = [i for i in subs if i not in done]
                if sync:
                    list(pool.map(lambda i: safe(lambda: api(
                        lab.sock(i), "POST", "/v1/content/sync", {"head": head}, timeout=5)),
                        todo))
                now = time.time() - t0
                for i, (got, ps) in zip(todo, pool.map(fetched, todo)):
                    poll_s = ps if ps is not None else poll_s
                    if got >= seq:
                        done[i] = now
                if len(done) < len(subs):
                    time.sleep(0.25)
        return done, poll_s

    v1 = add()
    for i in subs:
        api(lab.sock(i), "POST", "/v1/content/subscribe", {"head": head}, timeout=15)
    t0 = time.time()
    first, poll_s = wait_all(v1["seq"], t0, sync=False)
    rows, res = [], {"publisher": pub, "subscribers": len(subs), "size": a.size << 20,
                     "head": head, "poll_s": poll_s, "sync": a.sync,
                     "first": {"done": len(first), "seq": v1["seq"]}}
    res["first"].update(swarm_times(first, subs))
    rows.append(["v%d (subscribe)" % v1["seq"], len(subs), len(first)] +
                [fmt(res["first"][k], " s", 2) for k in ("t50_s", "t90_s", "t100_s")])
    updates = []
    with Sampler(lab) as smp:
        for n in range(a.updates):
            # one MiB rewritten in place: only its chunks should move
            with open(src, "r+b") as f:
                f.seek(r.randrange(max(1, a.size)) << 20)
                f.write(r.getrandbits(8 << 20).to_bytes(1 << 20, "little"))
            v = add()
            t0 = time.time()
            done, poll_s = wait_all(v["seq"], t0, a.sync)
            u = {"seq": v["seq"], "done": len(done),
                 "per_node": {str(i): round(t, 3) for i, t in done.items()}}
            u.update(swarm_times(done, subs))
            updates.append(u)
            rows.append(["v%d (update)" % v["seq"], len(subs), len(done)] +
                        [fmt(u[k], " s", 2) for k in ("t50_s", "t90_s", "t100_s")])
    # versions a subscriber took from its publisher's push (watch.c), not a poll
    pushes = 0
    for i in subs:
        st = safe(lambda: api(lab.sock(i), "GET", "/v1/content/stats", timeout=5)) or {}
        pushes += (st.get("watch") or {}).get("pushes", 0)
    res.update({"updates": updates, "samples": smp.samples, "pushes": pushes,
                "resources": summary_resources(smp.samples)})
    print("poll interval: content.poll_s = %s s%s; versions taken from a push: %d" %
          (poll_s, "; content sync asked every 0.25 s" if a.sync else "", pushes))
    print(table(["version", "subscribers", "holding it", "t50", "t90", "t100"], rows))
    if not a.keep:
        os.unlink(src)
    return res



def swarm_times(done, nodes):
    """t50/t90/t100 (s) of nodes, done: node -> time it finished (stats.
    t_frac: a node that never finished counts as infinitely late)."""
    return {"t%d_s" % p: (round(t, 3) if t is not None else None)
            for p, t in ((p, t_frac(list(done.values()), len(nodes), p / 100.0))
                         for p in (50, 90, 100))}


SCENARIOS = {"bootstrap": run_bootstrap, "lookups": run_lookups, "churn": run_churn,
             "distribute": run_distribute, "services": run_services, "flood": run_flood,
             "nat": run_nat, "relay": run_nat, "aria2": run_aria2, "soak": run_soak,
             "follow": run_follow, "community": run_community}


