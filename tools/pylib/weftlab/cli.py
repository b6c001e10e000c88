# SPDX-License-Identifier: MIT
"""weftlab: dense weft nodes on one machine (docs/LAB.md).

Every weftd runs in a network namespace of its own on a shared bridge that
lives in another namespace of the lab (or behind a NAT router namespace), so
a lab never touches the host's own network and never sends a packet outside
this machine. weftlab drives the nodes only through their control API
(HTTP + JSON on each node's unix socket), as an operator's tool would.

The lab directory (--dir) holds everything: lab.json (what was created,
written *before* each creation, so `down` can undo a lab whose tool crashed),
lab.lock (flock: one mutating command at a time), nodes/nI/ (state, socket,
log), results/ (JSON of each run), report/.
"""
import argparse
import os

from .commands import cmd_down, cmd_run, cmd_status, cmd_top, cmd_up
from .common import VERSION, ApiError, Lab, LabError, log
from .report import cmd_report
from .scenarios import SCENARIOS, flood_main
from .soak import add_parser as soak_parser
from .sim import cmd_sim


def parser():
    """weftlab's argparse parser: main() parses with it, completion.py
    writes the bash completion from it."""
    p = argparse.ArgumentParser(prog="weftlab", description="dense weft nodes on one machine "
                                "(docs/LAB.md)", epilog=USAGE,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dir", default=os.environ.get("WEFTLAB_DIR", "."),
                   help="the lab directory (default $WEFTLAB_DIR, else .)")
    p.add_argument("-V", "--version", action="version", version="weftlab " + VERSION)
    sub = p.add_subparsers(dest="cmd", metavar="COMMAND")
    u = sub.add_parser("up", help="start N weftd, each in its own namespace, in one DHT")
    u.add_argument("--nodes", type=int, required=True)
    u.add_argument("--nat", action="append", default=[], metavar="GROUP:KIND:COUNT",
                   help="COUNT nodes behind a NAT router (KIND port-preserving|random-fully)")
    u.add_argument("--relay", type=int, default=0, metavar="COUNT",
                   help="COUNT bridge nodes with relay.enable (needs a weftd with the relay)")
    u.add_argument("--rate", metavar="RATE", help="shape every node's link (tc rate, e.g. 1gbit)")
    u.add_argument("--mtu", type=int, default=1500, metavar="BYTES",
                   help="MTU of every link (1280-9000; default 1500; 9000: jumbo frames, "
                        "which weft probes for, docs/QUIC.md)")
    u.add_argument("--xdp", action="store_true", help="XDP (generic) instead of io_uring")
    u.add_argument("--weftd", help="weftd binary (default $WEFTD, ../build/weftd, /usr/sbin)")
    u.add_argument("--log-level", default="warn", choices=["error", "warn", "info", "debug"])
    u.add_argument("--set", action="append", default=[], metavar="SEC.KEY=VAL",
                   help="passed to every weftd")
    u.add_argument("--timeout", type=int, default=120, help="seconds to wait for healthy tables")
    d = sub.add_parser("down", help="stop and remove everything the lab created")
    d.add_argument("--purge", action="store_true",
                   help="also delete DIR/nodes (each node's state, downloads and log); "
                        "DIR/results and lab.down.json stay")
    s = sub.add_parser("status", help="one line per node")
    s.add_argument("--json", action="store_true")
    add_run_parsers(sub)
    sub.add_parser("report", help="markdown/HTML page with PNG plots from the last runs")
    t = sub.add_parser("top", help="live terminal view of the lab")
    t.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes")
    t.add_argument("--once", action="store_true", help="one refresh, then exit")
    sm = sub.add_parser("sim", help="bootstrap/lookups/churn on the simulated network")
    sm.add_argument("--nodes", type=int, required=True)
    sm.add_argument("scenario", choices=["bootstrap", "lookups", "churn"])
    sm.add_argument("--lookups", type=int, default=1000)
    sm.add_argument("--loss", type=float, default=0.0, help="datagram loss (0.05 = 5%%)")
    sm.add_argument("--lat-min", type=int, default=10, help="one-way latency floor (ms)")
    sm.add_argument("--lat-max", type=int, default=100, help="one-way latency ceiling (ms)")
    sm.add_argument("--jitter", type=int, default=10, help="ms")
    sm.add_argument("--warmup", type=float, default=120.0, help="virtual s after the last join")
    sm.add_argument("--churn-fraction", type=float, default=0.2)
    sm.add_argument("--churn-period", type=float, default=600.0, help="virtual s")
    sm.add_argument("--duration", type=float, default=0.0,
                    help="virtual s the lookups are spread over (0: 10 ms apart)")
    sm.add_argument("--seed", type=int)
    return p


def main(argv=None):
    p = parser()
    a = p.parse_args(argv)
    if not a.cmd:
        p.print_help()
        return 2
    lab = Lab(a.dir)
    try:
        return COMMANDS[a.cmd](lab, a) or 0
    except (LabError, ApiError, OSError) as e:
        log("error: %s" % e)
        return 1
    except KeyboardInterrupt:
        log("interrupted (weftlab --dir %s down removes the lab)" % lab.dir)
        return 130


USAGE = """commands:
  weftlab [--dir DIR] up --nodes N [--nat GROUP:KIND:COUNT]... [--relay COUNT] [--rate RATE] [--mtu BYTES] [--xdp]
  weftlab [--dir DIR] down
  weftlab [--dir DIR] status [--json]
  weftlab [--dir DIR] run bootstrap [--warm]
  weftlab [--dir DIR] run lookups [--count N] [--concurrency C]
  weftlab [--dir DIR] run churn [--fraction F] [--duration S] [--down S] [--signal kill|term]
  weftlab [--dir DIR] run distribute [--size MIB] [--seed-node I]
  weftlab [--dir DIR] run services [--providers K] [--calls N]
  weftlab [--dir DIR] run follow [--subscribers K] [--updates N] [--size MIB] [--sync]
  weftlab [--dir DIR] run flood [--target I] [--attacker I] [--duration S] [--pps N]
  weftlab [--dir DIR] run nat [--per-node N] [--fresh] [--wait-records S] [--ping-timeout MS]
  weftlab [--dir DIR] run relay [--per-node N] [--fresh] [--wait-records S] [--ping-timeout MS]
  weftlab [--dir DIR] run aria2 [--size MIB] [--seed-node I]
  weftlab [--dir DIR] run soak [--duration S] [--round S] [--period S] [--warmup S]
  weftlab [--dir DIR] run community [--timeout S]
  weftlab [--dir DIR] report
  weftlab [--dir DIR] top [--interval S] [--once]
  weftlab [--dir DIR] sim --nodes N bootstrap|lookups|churn [--loss P] [--lookups L]
Every run takes --seed N. `weftlab COMMAND --help` lists a command's options.
Results: DIR/results/SCENARIO.json; report: DIR/report/index.{md,html}.
"""


def add_run_parsers(sub):
    r = sub.add_parser("run", help="run a scenario: " + ", ".join(SCENARIOS))
    rs = r.add_subparsers(dest="scenario", metavar="SCENARIO", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, help="random seed (default: random, in the JSON)")
    b = rs.add_parser("bootstrap", parents=[common],
                      help="restart every node at once: time until every table is healthy")
    b.add_argument("--warm", action="store_true", help="keep the nodes' state (stored table)")
    b.add_argument("--timeout", type=int, default=120)
    lk = rs.add_parser("lookups", parents=[common], help="find_node / get_peers latency, hops")
    lk.add_argument("--count", type=int, default=0, help="lookups (default 10 per node, <= 1000)")
    lk.add_argument("--concurrency", type=int, default=8)
    c = rs.add_parser("churn", parents=[common], help="nodes killed and restarted under lookups")
    c.add_argument("--fraction", type=float, default=0.2, help="nodes killed per duration")
    c.add_argument("--duration", type=float, default=60.0, help="seconds")
    c.add_argument("--down", type=float, default=5.0, help="seconds a killed node stays down")
    c.add_argument("--signal", choices=("kill", "term"), default="kill",
                   help="SIGKILL (default) or SIGTERM: the daemon's stop path, timed")
    c.add_argument("--concurrency", type=int, default=4)
    d = rs.add_parser("distribute", parents=[common], help="one seed, every node downloads")
    d.add_argument("--size", type=int, default=16, help="MiB (default 16)")
    d.add_argument("--seed-node", type=int, default=1)
    d.add_argument("--timeout", type=int, default=600)
    d.add_argument("--keep", action="store_true", help="keep the source file under DIR/data")
    sv = rs.add_parser("services", parents=[common], help="publish on K nodes, calls from all")
    sv.add_argument("--providers", type=int, default=3)
    sv.add_argument("--calls", type=int, default=50, help="calls per node")
    sv.add_argument("--call-concurrency", type=int, default=4)
    sv.add_argument("--call-timeout", type=int, default=5000, metavar="MS",
                    help="each call's deadline (short ones: the stress recipe)")
    sv.add_argument("--timeout", type=int, default=60)
    fo = rs.add_parser("follow", parents=[common],
                       help="K nodes follow a share; time from each update to all holding it")
    fo.add_argument("--publisher", type=int, default=1)
    fo.add_argument("--subscribers", type=int, default=20)
    fo.add_argument("--updates", type=int, default=2)
    fo.add_argument("--size", type=int, default=8, help="MiB (default 8; 1 MiB changes a version)")
    fo.add_argument("--sync", action="store_true",
                    help="ask every subscriber to poll at once (content sync), not wait for poll_s")
    fo.add_argument("--timeout", type=int, default=900)
    fo.add_argument("--keep", action="store_true", help="keep the source file under DIR/data")
    f = rs.add_parser("flood", parents=[common], help="one node flooded, the others call it")
    f.add_argument("--target", type=int, default=0, help="default: the second bridge node")
    f.add_argument("--attacker", type=int, default=0, help="default: the last bridge node")
    f.add_argument("--duration", type=float, default=15.0, help="seconds of flood")
    f.add_argument("--pps", type=int, default=0, help="flood rate (0: as fast as it goes)")
    for name in ("nat", "relay"):
        n = rs.add_parser(name, parents=[common],
                          help="dial by key across NAT groups (with the relays of up --relay)")
        n.add_argument("--per-node", type=int, default=4, help="keys dialled per node")
        n.add_argument("--concurrency", type=int, default=8)
        n.add_argument("--wait-records", type=float, default=60, metavar="S",
                       help="wait up to S s for every dialled node's record in the DHT "
                            "(behind a NAT: listing a relay)")
        n.add_argument("--fresh", action="store_true",
                       help="each dialler resolves the key afresh before its ping")
        n.add_argument("--ping-timeout", type=int, default=5000, metavar="MS",
                       help="each ping's deadline (resolution, addresses, relay)")
    soak_parser(rs, common)
    ar = rs.add_parser("aria2", parents=[common],
                       help="distribute done by aria2c (BitTorrent, DHT only) on the same lab")
    ar.add_argument("--size", type=int, default=64, help="MiB")
    ar.add_argument("--seed-node", type=int, default=1)
    ar.add_argument("--timeout", type=float, default=1800)
    ar.add_argument("--keep", action="store_true")
    cm = rs.add_parser("community", parents=[common],
                       help="one community over the lab: a newcomer's catch-up, gossip cost")
    cm.add_argument("--timeout", type=float, default=300, help="each wait, seconds")
    fl = sub.add_parser("_flood")
    fl.add_argument("--target", required=True)
    fl.add_argument("--seconds", type=float, default=10)
    fl.add_argument("--pps", type=int, default=0)
    fl.add_argument("--seed", type=int, default=0)


COMMANDS = {"up": cmd_up, "down": cmd_down, "status": cmd_status, "run": cmd_run,
            "report": cmd_report, "top": cmd_top, "sim": cmd_sim,
            "_flood": lambda lab, a: flood_main(a)}
