# SPDX-License-Identifier: MIT
"""weftlab-aria2: the `distribute` scenario done by aria2 (Debian's aria2c,
BitTorrent) over the same lab: one seed, every other node downloads at once,
peers found through the DHT only (no tracker, no peer exchange, no local
peer discovery), every aria2c bootstrapping its DHT from weft node 1, so
the swarm meets through weft's DHT. Run by `weftlab run aria2`
(docs/LAB.md), or directly:

    weftlab-aria2 --dir DIR [--size MIB] [--seed-node I] [--timeout S] [--seed S]

Writes DIR/results/aria2.json (and aria2-TIMESTAMP.json) with the same
completion figures as `distribute` (t50/t90/t100, seed upload, per-node
throughput, every file verified by SHA-256 against the source).
Needs root (ip netns exec) and aria2c."""
import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

from .common import DHT_PORT, proc_sample
from .stats import (cpu_line, host_busy_s, host_cpu, host_stall, stall_delta, stall_line,
                    swarm)

ARIA_DHT_PORT = 6882     # aria2's own DHT node
ARIA_BT_PORT = 6891      # aria2's BitTorrent listener
PIECE = 1 << 20          # 1 MiB pieces: 256 for 256 MiB


def bencode(x):
    if isinstance(x, int):
        return b"i%de" % x
    if isinstance(x, str):
        x = x.encode()
    if isinstance(x, bytes):
        return b"%d:%s" % (len(x), x)
    if isinstance(x, list):
        return b"l" + b"".join(bencode(v) for v in x) + b"e"
    if isinstance(x, dict):
        return b"d" + b"".join(bencode(k) + bencode(x[k]) for k in sorted(x)) + b"e"
    raise TypeError(type(x))


def make_torrent(path, out):
    """A trackerless single-file torrent (BEP 3 info dict, BEP 5 DHT only).
    Returns the info hash (hex) and the SHA-256 of the file."""
    pieces, sha = [], hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(PIECE)
            if not b:
                break
            pieces.append(hashlib.sha1(b).digest())
            sha.update(b)
    info = {"name": os.path.basename(path), "length": os.path.getsize(path),
            "piece length": PIECE, "pieces": b"".join(pieces)}
    with open(out, "wb") as f:
        f.write(bencode({"info": info, "created by": "weftlab-aria2"}))
    return hashlib.sha1(bencode(info)).hexdigest(), sha.hexdigest()


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for b in iter(lambda: f.read(1 << 20), b""):
            h.update(b)
    return h.hexdigest()


def aria2(ns, workdir, torrent, entry, seed, hook=None):
    """Start aria2c in namespace ns: DHT only, its DHT bootstrapped from
    weft node 1; a seed checks nothing (the file is the source)."""
    args = ["ip", "netns", "exec", ns, "aria2c", "--dir", workdir,
            "--enable-dht=true", "--enable-dht6=false", "--dht-listen-port=%d" % ARIA_DHT_PORT,
            "--listen-port=%d" % ARIA_BT_PORT, "--dht-entry-point=%s:%d" % entry,
            "--dht-file-path=%s" % os.path.join(workdir, "dht.dat"),
            "--enable-peer-exchange=false", "--bt-enable-lpd=false", "--bt-tracker=",
            "--bt-max-peers=64", "--seed-ratio=0.0", "--seed-time=600",
            "--file-allocation=none", "--summary-interval=0", "--console-log-level=warn",
            "--check-certificate=false", "--max-overall-upload-limit=0",
            "--log=%s" % os.path.join(workdir, "aria2.log"), "--log-level=notice"]
    if seed:
        args += ["--bt-seed-unverified=true", "--check-integrity=false"]
    else:
        # called once the download is complete, before seeding starts
        args += ["--on-bt-download-complete=%s" % hook]
    args.append(torrent)
    logf = open(os.path.join(workdir, "aria2.out"), "ab")
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True)
    logf.close()
    return p


def tx_bytes(ns):
    """Bytes the node's eth0 sent (the seed's upload, headers included)."""
    out = subprocess.run(["ip", "netns", "exec", ns, "cat", "/sys/class/net/eth0/statistics/tx_bytes"],
                         capture_output=True, text=True).stdout.strip()
    return int(out) if out.isdigit() else 0


def run(a):
    st = json.load(open(os.path.join(a.dir, "lab.json")))
    nodes = {int(k): v for k, v in st["nodes"].items()}
    if a.seed_node not in nodes:
        sys.exit("weftlab-aria2: --seed-node %d: no such node" % a.seed_node)
    if not shutil.which("aria2c"):
        sys.exit("weftlab-aria2: aria2c missing (Debian package aria2)")
    rng = random.Random(a.seed)
    base = os.path.join(a.dir, "aria2")
    shutil.rmtree(base, ignore_errors=True)
    os.makedirs(base)
    src_dir = os.path.join(base, "n%d" % a.seed_node)
    os.makedirs(src_dir)
    src = os.path.join(src_dir, "aria2-%dMiB.bin" % a.size)
    with open(src, "wb") as f:
        r = random.Random(rng.random())
        for _ in range(a.size):
            f.write(r.getrandbits(8 << 20).to_bytes(1 << 20, "little"))
    hook = os.path.join(base, "done.sh")
    with open(hook, "w") as f:
        f.write('#!/bin/sh\n# aria2: $1 gid, $2 files, $3 path\ndate +%s.%N >"$(dirname "$3")/done.stamp"\n')
    os.chmod(hook, 0o755)
    torrent = os.path.join(base, "file.torrent")
    ih, sha = make_torrent(src, torrent)
    entry = (nodes[1]["ip"], DHT_PORT)
    procs = {}
    others = [i for i in sorted(nodes) if i != a.seed_node]
    try:
        procs[a.seed_node] = aria2(nodes[a.seed_node]["ns"], src_dir, torrent, entry, True)
        # the seed's announce must be in weft's DHT before the others ask:
        # ask weft node 1 (its control API) until the seed's address is a peer
        t_ann0 = time.time()
        seed_ip = nodes[a.seed_node]["ip"]
        sock = os.path.join(a.dir, "nodes", "n1", "weftd.sock")
        announced = None
        while time.time() - t_ann0 < a.timeout:
            out = subprocess.run(["curl", "-s", "--max-time", "40", "--unix-socket", sock,
                                  "-X", "POST", "-d", json.dumps({"infohash": ih}),
                                  "http://weftd/v1/dht/get-peers"],
                                 capture_output=True, text=True).stdout
            try:
                peers = json.loads(out).get("peers", [])
            except ValueError:
                peers = []
            if any(str(p).startswith(seed_ip + ":") for p in peers):
                announced = time.time() - t_ann0
                break
            time.sleep(1)
        if announced is None:
            sys.exit("weftlab-aria2: the seed's announce never reached weft's DHT")
        tx0 = tx_bytes(nodes[a.seed_node]["ns"])
        cpu = []  # [[s, host busy s]]: stats.host_cpu
        t0 = time.time()
        busy0 = host_busy_s()
        stall0 = host_stall()  # the host's steal, iowait, PSI over the run
        for i in others:
            d = os.path.join(base, "n%d" % i)
            os.makedirs(d)
            procs[i] = aria2(nodes[i]["ns"], d, torrent, entry, False, hook)
        done, prog = {}, {str(i): [] for i in others}
        name = os.path.basename(src)
        while len(done) < len(others) and time.time() - t0 < a.timeout:
            now = time.time() - t0
            if busy0 is not None:
                cpu.append([round(now, 3), round(host_busy_s() - busy0, 2)])
            for i in others:
                if i in done:
                    continue
                d = os.path.join(base, "n%d" % i)
                f = os.path.join(d, name)
                try:  # written piece by piece into a sparse file: its blocks
                    have = min(os.stat(f).st_blocks * 512, a.size << 20)
                except FileNotFoundError:
                    have = 0
                stamp = os.path.join(d, "done.stamp")
                if os.path.exists(stamp):
                    try:
                        done[i] = float(open(stamp).read()) - t0
                    except ValueError:
                        continue  # being written
                    have = a.size << 20
                prog[str(i)].append([round(now, 3), have])
            time.sleep(0.25)
        t_end = time.time() - t0
        stall = stall_delta(stall0, host_stall())
        seed_tx = tx_bytes(nodes[a.seed_node]["ns"]) - tx0
        # aria2c's own CPU, whole lives (ip netns exec execs it: same pid)
        tool_cpu = 0.0
        for p in procs.values():
            ps = proc_sample(p.pid)
            tool_cpu += ps[1] if ps else 0.0
    finally:
        for p in procs.values():
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    verified = {i: sha256_of(os.path.join(base, "n%d" % i, os.path.basename(src))) == sha
                for i in done}
    n = len(others)
    size = a.size << 20
    res = {"scenario": "aria2", "tool": "aria2c " + subprocess.run(
               ["aria2c", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
           "seed": a.seed, "seed_node": a.seed_node, "info_hash": ih, "size": size,
           "downloaders": n, "done": len(done), "verified": sum(1 for v in verified.values() if v),
           "seed_announce_s": announced, "seed_upload_bytes": seed_tx, "ran_s": t_end}
    # the same figures, by the same functions, as distribute's
    res.update(swarm(done, verified, others, size, prog))
    res.update(host_cpu(cpu, prog, n, size, res["t100_s"] or t_end))
    res["tool_cpu_s"] = round(tool_cpu, 2)
    res["host_stall"] = stall
    res.update({"host_cpu": cpu, "discovery": "DHT only (no tracker, PEX off, LPD off), aria2 DHT bootstrapped "
                             "from weft node 1", "progress": prog,
                "nodes": len(nodes), "started": t0,
                "host": {"cpus": os.cpu_count(), "loadavg": os.getloadavg()}})
    rd = os.path.join(a.dir, "results")
    os.makedirs(rd, exist_ok=True)
    for fn in ("aria2.json", "aria2-%d.json" % int(t0)):
        with open(os.path.join(rd, fn), "w") as f:
            json.dump(res, f, indent=1)
    fmt = lambda v: "-" if v is None else "%.2f s" % v
    print("aria2 (%s): %.1f MiB from node %d to %d nodes, DHT only; seed announced in %.1f s"
          % (res["tool"], size / 1048576.0, a.seed_node, n, announced))
    print("done %d/%d, verified %d; t50 %s, t90 %s, t100 %s; seed sent %.1f MiB (%.2fx); "
          "per-node p50 %s Mbit/s"
          % (res["done"], n, res["verified"], fmt(res["t50_s"]), fmt(res["t90_s"]),
             fmt(res["t100_s"]), seed_tx / 1048576.0, seed_tx / float(size),
             "-" if res["mbit_s_p50"] is None else "%.1f" % res["mbit_s_p50"]))
    print(cpu_line(res, "aria2c"))
    if res["host_stall"]:
        print(stall_line(res["host_stall"]))
    if not a.keep:
        shutil.rmtree(base, ignore_errors=True)
    return 0 if res["done"] == n and res["verified"] == n else 1


def main():
    ap = argparse.ArgumentParser(prog="weftlab-aria2", description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", default=os.environ.get("WEFTLAB_DIR", "."))
    ap.add_argument("--size", type=int, default=64, help="MiB")
    ap.add_argument("--seed-node", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the downloaded files")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("weftlab-aria2: needs root (ip netns exec)")
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
