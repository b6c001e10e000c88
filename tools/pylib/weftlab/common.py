# SPDX-License-Identifier: MIT
"""weftlab's shared part: constants, helpers, the control API client and the
Lab (state, namespaces, nodes). Used by the commands (cli.py), the report
and the scenarios."""
import concurrent.futures as cf
import fcntl
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import time


# The folder that holds this package: weftlab runs itself again in a lab
# namespace (the flood, the aria2 comparison) with it on PYTHONPATH.
PKG_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VERSION = "0.1.0"
STATE = "lab.json"
LOCK = "lab.lock"
# Lab addresses, only ever configured inside the lab's own namespaces (the
# bridge namespace has no link to the host): bridge nodes in RFC 2544's
# benchmarking range 198.18.0.0/15 (published through node.announce_addrs:
# weft never publishes that range on its own), NAT routers' public sides in
# the documentation range 203.0.113.0/24 (public to weft, so nodes behind a
# NAT learn and publish it by votes), private networks behind them.
PUB_LEN = 15
NAT_PUB = "203.0.113.{g}"
NAT_NET = "10.{g}"  # 10.G.0.0/16 behind NAT router G (G = 1..250)
QUIC_PORT = 4433
DHT_PORT = 6881
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class LabError(Exception):
    pass


def log(msg):
    print("weftlab: " + msg, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- helpers

def sh(args, check=True, quiet=False):
    """Run a command (list); raise LabError with its stderr if it fails."""
    r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        raise LabError("%s: %s" % (" ".join(args), r.stderr.strip() or "exit %d" % r.returncode))
    return r.stdout


def pub_ip(n):
    """Address of bridge node n (1..62500) in 198.18.0.0/15: consecutive
    nodes in different /24s, so votes on a NAT router's public address
    come from distinct networks (docs/CONNECTIVITY.md)."""
    return "198.18.%d.%d" % ((n - 1) % 250, (n - 1) // 250 + 2)


def netns_list():
    out = sh(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(ns):
    out = sh(["ip", "netns", "pids", ns], check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie is not alive
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def proc_sample(pid):
    """(rss_bytes, cpu_seconds) of a process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        utime, stime = int(fields[11]), int(fields[12])
        rss = int(fields[21]) * PAGE
        return rss, (utime + stime) / CLK
    except (OSError, IndexError, ValueError):
        return None


def fmt(v, unit="", nd=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        return ("%." + str(nd) + "f%s") % (v, unit)
    return "%s%s" % (v, unit)


def table(headers, rows):
    """A plain-text table, columns sized to their content."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    w = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    for k, r in enumerate(cells):
        lines.append("  ".join(c.rjust(w[i]) if i else c.ljust(w[i]) for i, c in enumerate(r)))
        if k == 0:
            lines.append("  ".join("-" * x for x in w))
    return "\n".join(lines)


def child(module, args):
    """(argv, env) that run `python3 -m module ARGS` (a module of this
    package) from wherever weftlab runs: the source tree or installed."""
    env = dict(os.environ)
    env["PYTHONPATH"] = PKG_ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return [sys.executable, "-m", module] + list(args), env


def find_binary(name, env, candidates):
    v = os.environ.get(env)
    if v:
        return v
    # relative candidates: from tools/ of the source tree (../build/...)
    here = os.path.dirname(os.path.realpath(PKG_ROOT))
    for c in candidates:
        p = os.path.normpath(os.path.join(here, c)) if not c.startswith("/") else c
        if os.access(p, os.X_OK):
            return p
    p = shutil.which(name)
    if p:
        return p
    raise LabError("%s not found (set $%s)" % (name, env))


def weftd_path():
    return find_binary("weftd", "WEFTD", ["../build/weftd", "/usr/sbin/weftd", "/usr/local/sbin/weftd"])


def weftctl_path():
    return find_binary("weftctl", "WEFTCTL", ["../build/weftctl", "/usr/bin/weftctl",
                                               "/usr/local/bin/weftctl"])


# ----------------------------------------------------------- control API

class UnixHTTP(http.client.HTTPConnection):
    def __init__(self, path, timeout):
        super().__init__("weftd", timeout=timeout)
        self.sock_path = path

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.sock_path)
        self.sock = s


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__("%s %s: %s" % (status, code, message))
        self.status, self.code = status, code


def api(sock, method, path, body=None, timeout=15.0):
    """One control API request; returns the decoded JSON answer. Raises
    ApiError for an error answer, OSError when the node does not answer."""
    c = UnixHTTP(sock, timeout)
    try:
        data = json.dumps(body).encode() if body is not None else None
        hdr = {"Content-Type": "application/json"} if data is not None else {}
        c.request(method, path, body=data, headers=hdr)
        r = c.getresponse()
        raw = r.read()
    except (http.client.HTTPException, socket.timeout) as e:
        raise OSError("control API %s: %s" % (path, e))
    finally:
        c.close()
    return _answer(r, raw)


class KeptApi:
    """GET requests over one kept (HTTP/1.1 keep-alive) connection per
    control socket, for loops that poll every node several times a second.
    weftd's control API serves each connection on a thread of its own, so
    a new connection per poll costs it a thread's start and end: ~240 us
    of weftd CPU per request against ~30 us on a kept connection (an idle
    node, docs/LAB.md "The poll's own cost"). One request at a
    time per socket (a poll round asks each node once); close() when the
    loop ends, or weftd keeps each connection's thread until its idle
    timeout."""

    def __init__(self, timeout=5.0):
        self.timeout = timeout
        self.conns = {}

    def get(self, sock, path):
        """Like api(sock, "GET", path): a connection the node closed (its
        idle timeout) is opened again once; GET is safe to repeat."""
        for attempt in (0, 1):
            c = self.conns.pop(sock, None)
            fresh = c is None
            if fresh:
                c = UnixHTTP(sock, self.timeout)
            try:
                c.request("GET", path)
                r = c.getresponse()
                raw = r.read()
            except socket.timeout as e:  # a slow node, not a stale connection
                c.close()
                raise OSError("control API %s: %s" % (path, e))
            except (http.client.HTTPException, OSError) as e:
                c.close()
                if fresh or attempt:
                    raise OSError("control API %s: %s" % (path, e))
                continue
            if r.will_close:
                c.close()
            else:
                self.conns[sock] = c
            return _answer(r, raw)

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


def _answer(r, raw):
    """The decoded JSON of a control API answer, or ApiError."""
    try:
        js = json.loads(raw.decode("utf-8", "replace")) if raw else {}
    except ValueError:
        js = {"raw": raw[:200].decode("utf-8", "replace")}
    if r.status >= 400:
        err = js.get("error", {}) if isinstance(js, dict) else {}
        raise ApiError(r.status, err.get("code", "?"), err.get("message", str(js)[:200]))
    return js


def metric_sums(sock, names):
    """Sum of each named metric's samples (any labels) on one node."""
    c = UnixHTTP(sock, 15)
    try:
        c.request("GET", "/metrics")
        text = c.getresponse().read().decode("utf-8", "replace")
    finally:
        c.close()
    out = dict.fromkeys(names, 0)
    for line in text.splitlines():
        for n in names:
            if line.startswith(n + " ") or line.startswith(n + "{"):
                out[n] += int(float(line.rsplit(" ", 1)[1]))
    return out


# ------------------------------------------------------------------ lab

class Lab:
    """One lab directory and its state file."""

    def __init__(self, d):
        self.dir = os.path.abspath(d)
        self.state_path = os.path.join(self.dir, STATE)
        self.lockf = None
        self.st = None

    # --- state and lock
    def lock(self, wait=True):
        os.makedirs(self.dir, exist_ok=True)
        self.lockf = open(os.path.join(self.dir, LOCK), "a+")
        try:
            fcntl.flock(self.lockf, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            raise LabError("%s is in use by another weftlab (lab.lock)" % self.dir)

    def load(self, required=True):
        try:
            with open(self.state_path) as f:
                self.st = json.load(f)
        except FileNotFoundError:
            if required:
                raise LabError("no lab in %s (weftlab --dir %s up --nodes N)" % (self.dir, self.dir))
            self.st = None
        except ValueError as e:
            raise LabError("%s is damaged: %s" % (self.state_path, e))
        return self.st

    def save(self):
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.st, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.state_path)

    def intend(self, kind, name):
        """Record a namespace (or link) before creating it."""
        self.st["created"].append({"kind": kind, "name": name})
        self.save()

    def ns(self, what):
        return "%s-%s" % (self.st["prefix"], what)

    def node_dir(self, i):
        return os.path.join(self.dir, "nodes", "n%d" % i)

    def sock(self, i):
        return os.path.join(self.node_dir(i), "weftd.sock")

    def nodes(self):
        return [int(k) for k in sorted(self.st["nodes"], key=int)]

    def node(self, i):
        return self.st["nodes"][str(i)]

    def results_dir(self):
        d = os.path.join(self.dir, "results")
        os.makedirs(d, exist_ok=True)
        return d

    # --- network
    def new_netns(self, ns):
        """A namespace of the lab, IPv4 only: IPv6 link-local traffic (DAD,
        MLD, router solicitations) from hundreds of namespaces is multicast
        the bridge floods to every port; weftlab's addresses are IPv4."""
        self.intend("netns", ns)
        sh(["ip", "netns", "add", ns])
        sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1"])
        # A host with br_netfilter loaded (Docker, some firewalls) passes
        # every frame a bridge forwards through iptables, in each
        # namespace that has a bridge (per namespace since Linux 5.3, on
        # by default): the lab's bridges carry only lab traffic and no
        # rule of the lab's is on that path (the NAT routers' masquerade
        # is on their routed path), so a lab namespace turns it off. On a
        # host without the module the keys are absent: nothing to do.
        sh(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=0",
            "net.bridge.bridge-nf-call-ip6tables=0", "net.bridge.bridge-nf-call-arptables=0"],
           check=False)

    def make_bridge(self):
        br = self.ns("br")
        self.new_netns(br)
        sh(["ip", "-n", br, "link", "add", "br0", "type", "bridge"])
        sh(["ip", "-n", br, "link", "set", "br0", "up"])
        sh(["ip", "-n", br, "link", "set", "lo", "up"])

    def veth_to(self, ns, ifname, peer_ns, peer_master, peer_name):
        """A veth: ifname inside ns, peer_name inside peer_ns enslaved to
        peer_master. Both ends live in lab namespaces only."""
        self.intend("link", "%s/%s" % (peer_ns, peer_name))
        sh(["ip", "link", "add", ifname, "netns", ns, "type", "veth", "peer", "name", peer_name,
            "netns", peer_ns])
        mtu = self.st["opts"].get("mtu") or 1500
        if mtu != 1500:
            sh(["ip", "-n", ns, "link", "set", ifname, "mtu", str(mtu)])
            sh(["ip", "-n", peer_ns, "link", "set", peer_name, "mtu", str(mtu)])
        sh(["ip", "-n", peer_ns, "link", "set", peer_name, "master", peer_master])
        sh(["ip", "-n", peer_ns, "link", "set", peer_name, "up"])

    def shape(self, ns, ifname, rate):
        if rate:
            sh(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", ifname, "root", "tbf",
                "rate", rate, "burst", "256kb", "latency", "50ms"])

    def make_nat(self, g, kind):
        """Router namespace for NAT group g: eth0 on the bridge (203.0.113.g),
        br1 inside (10.g.0.1/16), nftables masquerade."""
        br = self.ns("br")
        r = self.ns("r%d" % g)
        self.new_netns(r)
        self.veth_to(r, "eth0", br, "br0", "r%d" % g)
        sh(["ip", "-n", r, "link", "set", "lo", "up"])
        sh(["ip", "-n", r, "addr", "add", NAT_PUB.format(g=g) + "/24", "dev", "eth0"])
        sh(["ip", "-n", r, "link", "set", "eth0", "up"])
        sh(["ip", "-n", r, "route", "add", "198.18.0.0/%d" % PUB_LEN, "dev", "eth0"])
        sh(["ip", "-n", r, "link", "add", "br1", "type", "bridge"])
        sh(["ip", "-n", r, "addr", "add", NAT_NET.format(g=g) + ".0.1/16", "dev", "br1"])
        sh(["ip", "-n", r, "link", "set", "br1", "up"])
        sh(["ip", "netns", "exec", r, "sysctl", "-qw", "net.ipv4.ip_forward=1"])
        flags = " fully-random" if kind == "random-fully" else ""
        rules = ("table ip weftlab {\n chain post {\n  type nat hook postrouting priority 100;\n"
                 "  oifname \"eth0\" masquerade%s\n }\n}\n" % flags)
        p = subprocess.run(["ip", "netns", "exec", r, "nft", "-f", "-"], input=rules, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise LabError("nft in %s: %s" % (r, p.stderr.strip()))
        return NAT_PUB.format(g=g)

    def make_host(self, i, nat_group, slot):
        ns = self.ns("n%d" % i)
        self.new_netns(ns)
        sh(["ip", "-n", ns, "link", "set", "lo", "up"])
        if nat_group:
            r = self.ns("r%d" % nat_group)
            self.veth_to(ns, "eth0", r, "br1", "h%d" % i)
            ip = "%s.%d.%d" % (NAT_NET.format(g=nat_group), slot // 250, slot % 250 + 2)
            sh(["ip", "-n", ns, "addr", "add", ip + "/16", "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "route", "add", "default", "via", NAT_NET.format(g=nat_group) + ".0.1"])
        else:
            self.veth_to(ns, "eth0", self.ns("br"), "br0", "h%d" % i)
            ip = pub_ip(slot)
            sh(["ip", "-n", ns, "addr", "add", "%s/%d" % (ip, PUB_LEN), "dev", "eth0"])
            sh(["ip", "-n", ns, "link", "set", "eth0", "up"])
            sh(["ip", "-n", ns, "route", "add", NAT_PUB.format(g=0) + "/24", "dev", "eth0"])
        self.shape(ns, "eth0", self.st["opts"].get("rate"))
        return ns, ip

    # --- processes
    def start_node(self, i, bootstrap):
        n = self.node(i)
        d = self.node_dir(i)
        os.makedirs(d, exist_ok=True)
        args = [self.st["weftd"], "--state-dir", d, "--socket", self.sock(i),
                "--quic-port", str(QUIC_PORT), "--dht-port", str(DHT_PORT),
                "--workers", "1", "--log-level", self.st["opts"].get("log_level", "warn")]
        for b in bootstrap:
            args += ["--bootstrap", "%s:%d" % (b, DHT_PORT)]
        if self.st["opts"].get("xdp"):
            args += ["--xdp", "eth0", "--xdp-mode", "generic"]
            # `ip netns exec` remounts /sys: weftd's pins need a bpffs there
            args = ["/bin/sh", "-c", "mount -t bpf bpf /sys/fs/bpf 2>/dev/null; exec \"$@\"",
                    "weftd"] + args
        else:
            args += ["--io", "uring"]
        if n.get("relay"):
            # a relay host raises the per-holder circuit cap (8 by
            # default): circuits outlive their dial until idle, and a
            # lab's scenarios dial the few NATed nodes many times over
            args += ["--set", "relay.enable=true", "--set", "relay.circuits_per_reservation=64"]
        if not n["nat"] and self.st.get("announce_addrs"):
            args += ["--set", "node.announce_addrs=%s:%d" % (n["ip"], QUIC_PORT)]
        # The bridge's range is not public to weft, so its hosts' votes on
        # a NATed node's address would not count: name it, so NATed nodes
        # learn their NAT (and go BEP 43 read-only) as on the Internet.
        args += ["--set", "node.vote_networks=198.18.0.0/%d" % PUB_LEN]
        for kv in self.st["opts"].get("set", []):
            args += ["--set", kv]
        try:
            os.unlink(self.sock(i))
        except FileNotFoundError:
            pass
        logf = open(os.path.join(d, "weftd.log"), "ab")
        p = subprocess.Popen(["ip", "netns", "exec", n["ns"]] + args, stdin=subprocess.DEVNULL,
                             stdout=logf, stderr=subprocess.STDOUT, start_new_session=True)
        logf.close()
        n["pid"] = p.pid
        n["started"] = time.time()
        n["starts"] = n.get("starts", 0) + 1
        return p

    def wait_up(self, ids, deadline):
        """Wait until every node in ids answers /v1/status; fill node keys."""
        pending = set(ids)
        while pending and time.time() < deadline:
            for i in list(pending):
                if not os.path.exists(self.sock(i)):
                    if not pid_alive(self.node(i)["pid"]):
                        raise LabError("node %d exited at start: see %s" %
                                       (i, os.path.join(self.node_dir(i), "weftd.log")))
                    continue
                try:
                    s = api(self.sock(i), "GET", "/v1/status", timeout=5)
                except (OSError, ApiError):
                    continue
                self.node(i)["key"] = s.get("node_key")
                pending.discard(i)
            if pending:
                time.sleep(0.1)
        if pending:
            raise LabError("nodes did not answer in time: %s" % sorted(pending)[:20])

    def stop_node(self, i, sig=signal.SIGTERM, wait=10.0):
        pid = self.node(i).get("pid")
        if not pid:
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        t = time.time() + wait
        while time.time() < t and pid_alive(pid):
            reap()
            time.sleep(0.05)
        if pid_alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.node(i)["pid"] = None

    def start_all(self, ids, wave=25):
        """Start ids[0], then the others in waves of `wave`, each node with
        up to three DHT contacts among the bridge nodes already answering
        (ids[0] and two random ones): a weftd whose two bootstrap pings are
        lost never tries again (docs/LAB.md, findings)."""
        first = ids[0]
        self.start_node(first, [])
        self.save()
        self.wait_up([first], time.time() + 30)
        up = [first]
        rng = random.Random(len(ids))
        rest = ids[1:]
        for w in range(0, len(rest), wave):
            batch = rest[w:w + wave]
            pubs = [j for j in up if j != first and not self.node(j)["nat"]]
            for i in batch:
                contacts = [first] + rng.sample(pubs, min(2, len(pubs)))
                self.start_node(i, [self.node(j)["ip"] for j in contacts])
            self.save()
            reap()
            self.wait_up(batch, time.time() + 60 + len(batch))
            up += batch

    def pin_neighbours(self):
        """Permanent neighbour entries between every pair of bridge members
        (nodes and NAT routers): n nodes resolving each other by ARP
        broadcast make n x n frames on the bridge, and on a machine's shared
        per-CPU backlog a storm of them drops ordinary datagrams too (250
        nodes: half the bootstrap pings lost). One `ip -batch` per member."""
        members = []  # (ns, ip)
        for i in self.nodes():
            n = self.node(i)
            if not n["nat"]:
                members.append((n["ns"], n["ip"]))
        for g in self.st["nat"].values():
            members.append((g["ns"], g["public"]))
        macs = {}
        for ns, ip in members:
            js = json.loads(sh(["ip", "-n", ns, "-j", "link", "show", "eth0"]))
            macs[ns] = js[0]["address"]
        for ns, _ in members:
            cmds = "".join("neigh replace %s lladdr %s dev eth0 nud permanent\n" % (ip, macs[o])
                           for o, ip in members if o != ns)
            p = subprocess.run(["ip", "-n", ns, "-batch", "-"], input=cmds, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            if p.returncode != 0:
                raise LabError("neighbour entries in %s: %s" % (ns, p.stderr.strip()[:200]))

    def bootstrap_of(self, i):
        """DHT contacts for node i: up to three public nodes other than i."""
        pubs = [j for j in self.nodes() if not self.node(j)["nat"] and j != i]
        return [self.node(j)["ip"] for j in pubs[:3]]

    # --- DHT health
    def dht_status(self, i, timeout=5):
        return api(self.sock(i), "GET", "/v1/dht/status", timeout=timeout)

    def healthy_min(self, i=None):
        """Routing-table size that counts as healthy for node i: 8 (a full
        bucket) or every node it can reach if fewer: the bridge nodes, not
        the nodes behind NATs (a NAT filters what it did not ask for)."""
        pubs = sum(1 for n in self.st["nodes"].values() if not n["nat"])
        if i is None:
            return min(8, pubs - 1) if pubs > 1 else 0
        g = self.node(i)["nat"]
        # a node behind a NAT knows the others of its group by their
        # router's public address (no hairpinning): the bridge nodes only
        return min(8, pubs if g else pubs - 1)

    def wait_healthy(self, ids, deadline, t0):
        """Poll until every node has >= healthy_min() nodes in its routing
        table; returns {node: seconds since t0 when first seen healthy}."""
        done = {}
        pool = cf.ThreadPoolExecutor(16)
        try:
            while len(done) < len(ids) and time.time() < deadline:
                todo = [i for i in ids if i not in done]

                def one(i):
                    try:
                        return i, self.dht_status(i)
                    except (OSError, ApiError):
                        return i, None
                for i, s in pool.map(one, todo):
                    if s and s.get("nodes4", 0) + s.get("nodes6", 0) >= self.healthy_min(i):
                        done[i] = time.time() - t0
                if len(done) < len(ids):
                    time.sleep(0.2)
        finally:
            pool.shutdown()
        return done


def reap():
    """Collect exited children (nodes are started by us, so they are our
    children until this process exits)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def weftd_keys(weftd):
    """SECTION.KEY of every configuration key this weftd knows."""
    out = sh([weftd, "-c", "/dev/null", "--print-default-config"], check=False)
    keys, sec = set(), ""
    for line in out.splitlines():
        m = re.match(r"^\[([a-z_]+)\]", line)
        if m:
            sec = m.group(1)
            continue
        m = re.match(r"^# ([a-z_0-9]+) =", line)
        if m:
            keys.add("%s.%s" % (sec, m.group(1)))
    return keys


# ------------------------------------------------------------------ up

def parse_nat(spec):
    m = re.fullmatch(r"([A-Za-z0-9_]{1,12}):(port-preserving|random-fully):(\d+)", spec)
    if not m:
        raise LabError("--nat %s: want GROUP:KIND:COUNT, KIND port-preserving or random-fully"
                       % spec)
    return m.group(1), m.group(2), int(m.group(3))



def node_view(lab, i, timeout=3):
    """One node's live view: process, routing table, transfers, drops."""
    n = lab.node(i)
    v = {"node": i, "ns": n["ns"], "ip": n["ip"], "nat": n["nat"], "pid": n.get("pid"),
         "alive": bool(n.get("pid")) and pid_alive(n["pid"])}
    ps = proc_sample(n["pid"]) if v["alive"] else None
    v["rss"], v["cpu_s"] = ps if ps else (None, None)
    try:
        d = lab.dht_status(i, timeout)
        v["nodes4"] = d.get("nodes4", 0) + d.get("nodes6", 0)
        v["dht_id"] = d.get("id")
        v["dropped"] = d.get("dropped_budget", 0) + d.get("dropped_malformed", 0)
    except (OSError, ApiError) as e:
        v["error"] = str(e)[:80]
        return v
    try:
        j = api(lab.sock(i), "GET", "/v1/content/jobs", timeout=timeout)
        jobs = j.get("jobs", j if isinstance(j, list) else [])
        v["jobs_active"] = sum(1 for x in jobs if x.get("state") not in ("done", "failed"))
    except (OSError, ApiError):
        v["jobs_active"] = None
    try:
        x = api(lab.sock(i), "GET", "/v1/xdp/status", timeout=timeout)
        v["drops"] = sum(val for k, val in x.get("counters", {}).items()
                         if k.startswith("drop") and isinstance(val, int))
    except (OSError, ApiError):
        v["drops"] = None
    return v


def views(lab, ids=None):
    ids = ids or lab.nodes()
    with cf.ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda i: node_view(lab, i), ids))


