# SPDX-License-Identifier: MIT
"""weftlab's lab commands: up, down, status, run (a scenario of
scenarios.py) and top."""
import argparse
import json
import os
import random
import secrets
import shutil
import signal
import sys
import time

from .common import (NAT_PUB, LabError, fmt, log, netns_list, netns_pids, parse_nat, pid_alive,
                     reap, sh, table, views, weftd_keys, weftd_path)
from .scenarios import SCENARIOS, sample_resources, write_result


def cmd_up(lab, a):
    if os.geteuid() != 0:
        raise LabError("up needs root (network namespaces)")
    for tool in ("ip", "tc") + (("nft",) if a.nat else ()):
        if not shutil.which(tool):
            raise LabError("%s missing (Debian: iproute2%s)" % (tool, ", nftables" if tool == "nft" else ""))
    lab.lock()
    if lab.load(required=False):
        raise LabError("a lab is already in %s (weftlab --dir %s down)" % (lab.dir, lab.dir))
    nats = [parse_nat(s) for s in a.nat]
    if len({g for g, _, _ in nats}) != len(nats):
        raise LabError("--nat: a group name is given twice")
    n_nat = sum(c for _, _, c in nats)
    if a.nodes < 1 or a.nodes > 60000:
        raise LabError("--nodes: 1..60000")
    if a.mtu < 1280 or a.mtu > 9000:
        raise LabError("--mtu: 1280..9000")
    if len(nats) > 250:
        raise LabError("--nat: at most 250 groups")
    if n_nat >= a.nodes:
        raise LabError("--nat groups hold %d nodes: at least one node must be on the bridge" % n_nat)
    if a.relay > a.nodes - n_nat:
        raise LabError("--relay %d: more than the %d nodes on the bridge" % (a.relay, a.nodes - n_nat))
    weftd = os.path.abspath(a.weftd) if a.weftd else weftd_path()
    keys = weftd_keys(weftd)
    if a.relay and "relay.enable" not in keys:
        raise LabError("--relay: this weftd has no relay (no relay.enable key in %s)" % weftd)
    taken = {n.split("-")[0] for n in netns_list()}
    while True:
        prefix = "wl" + secrets.token_hex(3)
        if prefix not in taken:
            break
    lab.st = {"version": 1, "prefix": prefix, "dir": lab.dir, "weftd": weftd,
              "tool_pid": os.getpid(), "created": [], "nodes": {}, "nat": {},
              "opts": {"rate": a.rate, "mtu": a.mtu, "xdp": a.xdp, "log_level": a.log_level, "set": a.set},
              "announce_addrs": "node.announce_addrs" in keys,
              "up_started": time.time()}
    lab.save()
    os.makedirs(os.path.join(lab.dir, "nodes"), exist_ok=True)
    t0 = time.time()
    lab.make_bridge()
    slot = 1
    gid = 0
    for name, kind, count in nats:
        gid += 1
        lab.st["nat"][name] = {"id": gid, "kind": kind, "count": count,
                               "ns": lab.ns("r%d" % gid), "public": NAT_PUB.format(g=gid)}
        lab.make_nat(gid, kind)
    # node numbering: bridge nodes first (node 1 is the first DHT contact),
    # then each NAT group's nodes
    plan = [(None, 0)] * (a.nodes - n_nat)
    for name, kind, count in nats:
        plan += [(name, lab.st["nat"][name]["id"])] * count
    per_group = {}
    for i, (gname, gid) in enumerate(plan, start=1):
        if gname:
            per_group[gid] = per_group.get(gid, 0) + 1
            s = per_group[gid]
        else:
            s = slot
            slot += 1
        ns, ip = lab.make_host(i, gid, s)
        lab.st["nodes"][str(i)] = {"ns": ns, "ip": ip, "nat": gname, "pid": None,
                                   "relay": bool(gname is None and i <= a.relay)}
    lab.save()
    lab.pin_neighbours()
    t_net = time.time() - t0
    log("%d namespaces and links in %.1f s; starting weftd" % (len(lab.st["created"]), t_net))
    t1 = time.time()
    try:
        lab.start_all(lab.nodes())
    finally:
        lab.save()
    t_up = time.time() - t1
    log("%d weftd answering in %.1f s; waiting for healthy routing tables (>= %d nodes each)"
        % (a.nodes, t_up, lab.healthy_min()))
    healthy = lab.wait_healthy(lab.nodes(), time.time() + a.timeout, t1)
    lab.st["up_done"] = time.time()
    lab.save()
    res = {"scenario": "up", "nodes": a.nodes, "nat": lab.st["nat"], "t_network_s": t_net,
           "t_processes_s": t_up, "healthy": len(healthy), "healthy_min_nodes": lab.healthy_min(),
           "t_all_healthy_s": max(healthy.values()) if len(healthy) == a.nodes else None,
           "time": time.time()}
    res["resources"] = sample_resources(lab)
    write_result(lab, "up", res)
    print(table(["nodes", "network s", "processes s", "healthy", "all healthy s"],
                [[a.nodes, fmt(t_net), fmt(t_up), "%d/%d" % (len(healthy), a.nodes),
                  fmt(res["t_all_healthy_s"])]]))
    if len(healthy) < a.nodes:
        raise LabError("%d nodes not healthy after %d s" % (a.nodes - len(healthy), a.timeout))


# ---------------------------------------------------------------- down

def disk_bytes(path):
    """Bytes a tree takes on disk (allocated blocks, each hard link once)."""
    total, seen = 0, set()
    for root, dirs, files in os.walk(path):
        for f in files:
            try:
                st = os.lstat(os.path.join(root, f))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            total += st.st_blocks * 512
    return total


def nodes_left(lab, purge):
    """What DIR/nodes keeps after down: removed with --purge, else said."""
    nodes = os.path.join(lab.dir, "nodes")
    if not os.path.isdir(nodes):
        return
    size = disk_bytes(nodes)
    if purge:
        shutil.rmtree(nodes, ignore_errors=True)
        if os.path.exists(nodes):
            raise LabError("purge: %s not removed" % nodes)
        print("purge: %s removed (%.1f GiB)" % (nodes, size / 2.0 ** 30))
    elif size >= 1 << 30:
        print("%s keeps %.1f GiB (node states, downloads, logs): `down --purge` removes it"
              % (nodes, size / 2.0 ** 30))


def cmd_down(lab, a):
    if os.geteuid() != 0:
        raise LabError("down needs root (network namespaces)")
    lab.lock()
    st = lab.load(required=False)
    if not st:
        print("no lab in %s" % lab.dir)
        nodes_left(lab, getattr(a, "purge", False))
        return
    prefix = st["prefix"]
    # 1. processes: the pids we started, then anything else inside our
    # namespaces (a node started by a tool that crashed before saving)
    pids = [n["pid"] for n in st["nodes"].values() if n.get("pid")]
    ours = [n for n in netns_list() if n.startswith(prefix + "-")]
    for ns in ours:
        pids += netns_pids(ns)
    pids = sorted(set(p for p in pids if pid_alive(p)))
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    t = time.time() + 10
    while time.time() < t and any(pid_alive(p) for p in pids):
        reap()
        time.sleep(0.05)
    for p in pids:
        if pid_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    for ns in ours:
        for p in netns_pids(ns):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    reap()
    # 2. namespaces (their links go with them), recorded or matching
    names = [c["name"] for c in st["created"] if c["kind"] == "netns"]
    names += [n for n in netns_list() if n.startswith(prefix + "-")]
    gone = 0
    for ns in dict.fromkeys(reversed(names)):
        if ns in netns_list():
            sh(["ip", "netns", "del", ns], check=False)
            gone += 1
    left = [n for n in netns_list() if n.startswith(prefix + "-")]
    left_p = [p for p in pids if pid_alive(p)]
    if left or left_p:
        raise LabError("left behind: namespaces %s, processes %s" % (left, left_p))
    os.replace(lab.state_path, os.path.join(lab.dir, "lab.down.json"))
    print("down: %d processes stopped, %d namespaces removed (prefix %s)" % (len(pids), gone, prefix))
    nodes_left(lab, getattr(a, "purge", False))


# -------------------------------------------------------------- status

def cmd_status(lab, a):
    lab.load()
    vs = views(lab)
    for v in vs:
        v["healthy"] = (v.get("nodes4") or 0) >= lab.healthy_min(v["node"])
    if a.json:
        print(json.dumps({"dir": lab.dir, "prefix": lab.st["prefix"], "nat": lab.st["nat"],
                          "nodes": vs}, indent=1))
        return
    rows = []
    for v in vs:
        rows.append([v["node"], v["ns"], v["ip"], v["nat"] or "-", v["pid"] or "-",
                     "up" if v["alive"] else "DOWN", fmt(v.get("nodes4")),
                     fmt(v["rss"] / 1048576.0 if v["rss"] else None, " MiB"),
                     fmt(v.get("jobs_active")), fmt(v.get("drops")),
                     "yes" if v["healthy"] else "no", v.get("error", "")])
    print("lab %s (prefix %s): %d nodes" % (lab.dir, lab.st["prefix"], len(vs)))
    print(table(["node", "netns", "addr", "nat", "pid", "state", "rt nodes", "rss", "jobs",
                 "drops", "healthy", "error"], rows))
    up = sum(1 for v in vs if v["alive"])
    healthy = sum(1 for v in vs if v["healthy"])
    print("%d/%d up, %d/%d healthy (routing table >= min(8, nodes it can reach))"
          % (up, len(vs), healthy, len(vs)))
    if up < len(vs):
        sys.exit(1)


# ------------------------------------------------------------- results

def cmd_run(lab, a):
    if os.geteuid() != 0:
        raise LabError("run needs root (network namespaces)")
    lab.lock()
    lab.load()
    seed = a.seed if a.seed is not None else secrets.randbits(32)
    rng = random.Random(seed)
    down = [i for i in lab.nodes() if not (lab.node(i).get("pid") and pid_alive(lab.node(i)["pid"]))]
    if down and a.scenario != "bootstrap":
        raise LabError("nodes not running: %s (weftlab status)" % down[:20])
    t0 = time.time()
    res = SCENARIOS[a.scenario](lab, a, rng)
    lab.save()
    if res is None:  # the scenario wrote its own result (aria2)
        return
    res.update({"scenario": a.scenario, "seed": seed, "nodes": len(lab.st["nodes"]),
                "nat": lab.st["nat"], "started": t0, "wall_s": time.time() - t0,
                "args": {k: v for k, v in vars(a).items() if k not in ("dir", "cmd")},
                "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}})
    write_result(lab, a.scenario, res)
    if res.get("failed"):
        raise LabError(res["failed"])




# ----------------------------------------------------------------- top

def cmd_top(lab, a):
    import curses
    lab.load()

    def loop(scr):
        curses.curs_set(0)
        scr.timeout(int(a.interval * 1000))
        prev = {}
        while True:
            vs = views(lab)
            now = time.time()
            h, w = scr.getmaxyx()
            scr.erase()
            up = sum(1 for v in vs if v["alive"])
            healthy = sum(1 for v in vs if (v.get("nodes4") or 0) >= lab.healthy_min(v["node"]))
            jobs = sum(v.get("jobs_active") or 0 for v in vs)
            rss = sum(v["rss"] or 0 for v in vs)
            head = ("weftlab top  %s  nodes %d  up %d  healthy %d  transfers %d  RSS %.0f MiB"
                    "   (q quits)" % (lab.dir, len(vs), up, healthy, jobs, rss / 1048576.0))
            scr.addnstr(0, 0, head, w - 1, curses.A_BOLD)
            hdr = "%5s %-15s %-6s %6s %9s %6s %8s %5s %10s" % (
                "node", "addr", "nat", "state", "rt nodes", "cpu%", "rss MiB", "jobs", "drops")
            scr.addnstr(2, 0, hdr, w - 1, curses.A_REVERSE)
            for row, v in enumerate(vs[:max(0, h - 4)]):
                cpu = None
                if v["cpu_s"] is not None and v["node"] in prev:
                    t0, c0 = prev[v["node"]]
                    cpu = 100.0 * (v["cpu_s"] - c0) / max(1e-3, now - t0)
                if v["cpu_s"] is not None:
                    prev[v["node"]] = (now, v["cpu_s"])
                line = "%5d %-15s %-6s %6s %9s %6s %8s %5s %10s" % (
                    v["node"], v["ip"], v["nat"] or "-", "up" if v["alive"] else "DOWN",
                    fmt(v.get("nodes4")), fmt(cpu), fmt(v["rss"] / 1048576.0 if v["rss"] else None),
                    fmt(v.get("jobs_active")), fmt(v.get("drops")))
                scr.addnstr(3 + row, 0, line, w - 1)
            scr.refresh()
            if a.once:
                return
            k = scr.getch()
            if k in (ord("q"), 27):
                return
    if a.once and not sys.stdout.isatty():
        # no terminal: one plain snapshot (scripts, tests)
        return cmd_status(lab, argparse.Namespace(json=False))
    curses.wrapper(loop)

