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
Before the first round, inside the warm-up, every node does each kind of
work once (a download from the bridge seeds in turn, a call, a dial), so
first-use costs land before the growth is measured.

Meanwhile a sampler reads, every --period seconds (each sample also
appended to DIR/results/soak-samples.jsonl as it is taken), per node: RSS,
the bytes the io_uring receive buffers hold resident (rx_ring, a cache the
traffic sizes: 4 to 128 buffers per worker, halved after each quiet 10 s;
read just before and just after the process's pages, the figures less them
kept only when both reads agree) and RSS less them (rss_net), RSS's
anonymous part (RssAnon: the heap and stacks) and that less the buffers
(rss_private), that split by /proc/PID/smaps into malloc's heap (the brk
heap and the thread arenas: rss_heap), the threads' stacks (rss_stacks)
and the other anonymous mappings (rss_maps: blocks malloc mapped on their
own, the preallocated tables among them, and the receive buffers; less
those, rss_maps_net), with each mapping's anonymous bytes by its start
address (anon_maps, in the samples file only: where a growth is), the file pages split by /proc/PID/smaps into LMDB's map as
read (rss_lmdb) and the binary's and libraries' pages as first run
(rss_code), both pages the kernel can drop, the bytes malloc has handed
out and not had back (heap_in_use, GET /v1/status "heap": a leak grows
it, memory malloc merely keeps, heap_free, does not) and that less the
DHT's stores of peers and items (heap_net; the stores' bytes, dht_store,
are the work's: BEP 5 keeps a peer 30 min, BEP 44 an item 2 h), threads, open descriptors (/proc), the
LMDB files' allocated size and the pages LMDB holds in use (mdb_stat: the
file never shrinks, freed pages are reused from its free list), all of
them and those outside the DHT's snapshot (database "dht": the routing
table and the stores below, saved every 5 min, so it follows them), and the
table sizes the node reports (DHT nodes, peers and items, QUIC
connections, bans).

The DHT stores hold what the lab's own work put there for as long as BEP 5
(peers, 30 min) and BEP 44 (items, 2 h) say: every distribution's share
and item ids, announced by the seed and the downloaders, and the seed's
share head (an item named after the file), linger that long after the
lab removed them. So beside the totals the sampler counts what is still
kept alive (dht_peers_kept, dht_items_kept: entries whose content the lab
has not removed), which should stay flat, and what outlived its lifetime
(dht_overdue: entries older than their TTL, or still stored more than a
TTL after the lab removed their content), which must stay 0, from each
node's GET /v1/dht/store.

Growth of a metric on a node: the median of the last 10% of its samples
(for QUIC connections, a count of work in flight, and for memory, RSS and
its parts and the heap in use, the least of them: what no work holds)
against the same of the 10% right after the warm-up (--warmup, default a
sixth of the duration), as a percentage. Nodes restarted by the churn are
left out (a restart resets them). The goal (issue 30): at most 5% on each
metric but the raw DHT totals and LMDB's pages in use with the DHT's
snapshot (the workload's, above), the routing table's size (bounded by its
k-buckets: entries a flood named stay until replaced, BEP 5; its good
nodes are held to the goal), LMDB's file size (a high-water mark), the
receive buffers, the file pages (rss_code, rss_lmdb), the parts of
rss_private (rss_heap, rss_stacks, rss_maps, rss_maps_net), malloc's free
bytes and the DHT stores' bytes (each the work's or a cache: the totals
they are part of, rss and heap_in_use, are still held to it), and
RssAnon itself, which is rss_private plus the receive buffers: both its
parts are judged, rss_private against the goal and the buffers by their
bound, and rss, which holds both, against the goal too; on its own it
measured which size the buffers happened to have in the windows compared
(4 or 8 of them, 272 or 544 KiB, in a node's floors: docs/LAB.md "Soak,
the thirteenth"). The table gives the median node and the worst node.
"""
import concurrent.futures as cf
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import threading
import time
from http.client import HTTPException

from .common import QUIC_PORT, ApiError, LabError, api, fmt, log, metric_sums, proc_sample, table

METRICS = ("rss", "rss_net", "rss_anon", "rss_private", "rss_heap", "rss_stacks", "rss_maps", "rss_maps_net",
           "rss_code", "rss_lmdb", "rx_ring", "heap_in_use",
           "heap_free", "heap_net", "dht_store", "threads", "fds", "lmdb", "lmdb_used", "lmdb_used_nodht",
           "dht_nodes",
           "dht_good", "dht_peers", "dht_peers_kept", "dht_items", "dht_items_kept", "dht_overdue",
           "quic_conns", "bans")
# the workload's totals, a high-water mark and a table bounded by its
# structure: shown, not held to the goal (docs/LAB.md "Soak")
NOT_GOAL = ("lmdb", "lmdb_used", "dht_nodes", "dht_peers", "dht_items", "rx_ring", "rss_code", "rss_lmdb",
            "rss_anon", "rss_heap", "rss_stacks", "rss_maps", "rss_maps_net",
            "heap_free", "dht_store")
# the goal: growth after the warm-up at most this, per node (issue 30)
GOAL_PCT = 5.0
# an entry counts as overdue this long after its lifetime (the expiry pass
# runs every 10 s; an announce or put in flight when the lab removed its
# content may land a little later)
OVERDUE_SLACK_S = 120
# counts of work in flight (connections open while a round's calls,
# dials and downloads run: 0 to a dozen in a sample): judged by their floor,
# the least of each window, which only what is kept past its work raises
FLOOR = ("quic_conns",)
# and memory: what a node holds while work runs (a download's buffers and
# job, requests' JSON, a burst's receive buffers) comes and goes with the
# rounds that happen to fall in a window; what stays when no work holds it
# is each window's least sample, which a leak or a creeping allocator
# raises (docs/LAB.md "Soak, the eleventh run"). The medians' growth is
# shown beside it.
MEM_FLOOR = ("rss", "rss_net", "rss_anon", "rss_private", "rss_heap", "rss_stacks", "rss_maps",
             "rss_maps_net", "heap_in_use", "heap_net")
MIB = ("rss", "rss_net", "rss_anon", "rss_private", "rss_heap", "rss_stacks", "rss_maps", "rss_maps_net",
       "rss_code", "rss_lmdb", "rx_ring", "heap_in_use",
       "heap_free", "heap_net", "dht_store", "lmdb", "lmdb_used", "lmdb_used_nodht")


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


def _lmdb_used(d):
    """(bytes of pages LMDB holds in use: pages used less the free list,
    bytes of those in the DHT's snapshot database "dht"), or (None, None)."""
    try:
        out = subprocess.run(["mdb_stat", "-efa", d], capture_output=True, text=True, timeout=20,
                             check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None, None
    kv, dht, cur = {}, 0, None
    for line in out.splitlines():
        k, _, v = line.strip().partition(":")
        if line.startswith("Status of "):
            cur = line[len("Status of "):].strip()
        elif cur is None:
            kv[k] = v.strip()
        elif cur == "dht" and k in ("Branch pages", "Leaf pages", "Overflow pages"):
            dht += int(v)
    try:
        ps = int(kv["Page size"])
        return (int(kv["Number of pages used"]) - int(kv["Free pages"])) * ps, dht * ps
    except (KeyError, ValueError):
        return None, None


def _rss_anon(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


# glibc's thread arenas: each a reserved 64 MiB (HEAP_MAX_SIZE on 64-bit)
# aligned to its size, rw up to what the arena uses
ARENA_ALIGN = 64 << 20


def _smaps(pid):
    """The resident pages of /proc/PID/smaps by kind, or None: "lmdb"
    (LMDB's map as read), "code" (every other mapped file: the binary's and
    libraries' pages as first run, less those copied on write), and the
    anonymous pages split into "heap" (the brk heap and glibc's thread
    arenas: malloc's), "stacks" (the main stack and each thread's: an rw
    mapping right above its guard page) and "maps" (the rest: malloc's
    blocks of their own mapping, the preallocated tables among them, the
    receive buffers, and the libraries' pages copied on write), with "anon_maps" {start address: anonymous bytes} of
    each mapping in "heap" and "maps" (where a growth is)."""
    try:
        with open("/proc/%d/smaps" % pid) as f:
            return smaps_split(f)
    except (OSError, ValueError, IndexError):
        return None


def smaps_split(lines):
    """_smaps() of smaps text (an iterable of its lines)."""
    out = {"lmdb": 0, "code": 0, "heap": 0, "stacks": 0, "maps": 0, "anon_maps": {}}
    maps = []
    for line in lines:
        head = line.split(None, 1)[0] if line.strip() else ""
        if not head.endswith(":") or "-" in head:
            parts = line.split(None, 5)
            if not parts:
                continue
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            maps.append({"lo": lo, "hi": hi, "perm": parts[1],
                         "name": parts[5].strip() if len(parts) > 5 else "", "rss": 0, "anon": 0})
        elif head in ("Rss:", "Anonymous:") and maps:
            maps[-1]["rss" if head == "Rss:" else "anon"] = int(line.split()[1]) * 1024
    prev = None
    for i, m in enumerate(maps):
        name = m["name"]
        nxt = maps[i + 1] if i + 1 < len(maps) else None
        if name.startswith("/"):
            # a mapped file's pages less those copied on write (a
            # library's data: anonymous, counted below)
            out["lmdb" if name.endswith(".mdb") else "code"] += m["rss"] - m["anon"]
        if m["anon"]:
            # an arena: aligned, and the reserve's end right there or after
            # its inaccessible rest
            end = m["lo"] + ARENA_ALIGN
            arena = not name and m["lo"] % ARENA_ALIGN == 0 and (
                m["hi"] == end or (nxt is not None and nxt["lo"] == m["hi"] and nxt["hi"] == end
                                   and nxt["perm"].startswith("---")))
            if name == "[heap]" or arena:
                kind = "heap"
            elif name == "[stack]" or (not name and prev is not None and prev["hi"] == m["lo"]
                                      and prev["perm"].startswith("---") and not prev["name"]):
                kind = "stacks"
            else:
                kind = "maps"
            out[kind] += m["anon"]
            if kind != "stacks" and not name.startswith("/"):
                out["anon_maps"]["%x" % m["lo"]] = m["anon"]
        prev = m
    return out


def store_counts(st, gone, now):
    """(peers kept, items kept, overdue) from a GET /v1/dht/store answer;
    gone: {infohash or (k, salt): wall time the lab removed it}."""
    kept_p = kept_i = overdue = 0
    for e in st.get("infohashes") or []:
        t = gone.get(e.get("infohash"))
        ttl = st.get("peer_ttl_s", 1800) + OVERDUE_SLACK_S
        if t is None:
            kept_p += e.get("peers") or 0
        if (t is not None and now - t > ttl) or (e.get("age_s") or 0) > ttl:
            overdue += 1
    for e in st.get("items") or []:
        t = gone.get((e.get("k"), e.get("salt")))
        ttl = st.get("item_ttl_s", 7200) + OVERDUE_SLACK_S
        if t is None:
            kept_i += 1
        if (t is not None and now - t > ttl) or (e.get("age_s") or 0) > ttl:
            overdue += 1
    return kept_p, kept_i, overdue


# reads of the process's pages to find the receive buffers unchanged
# around one (sample_node)
RING_TRIES = 3


def _rx_ring(lab, i):
    """The node's receive buffers' bytes (weft_io_rx_ring_bytes), or None."""
    try:
        return metric_sums(lab.sock(i), ("weft_io_rx_ring_bytes",))["weft_io_rx_ring_bytes"]
    except (OSError, ApiError, HTTPException):
        return None


def sample_node(lab, i, gone):
    """One node's resources and tables now (None for what could not be read)."""
    n = lab.node(i)
    pid = n.get("pid")
    s = {m: None for m in METRICS}
    # the receive buffers read just before and just after the process's
    # pages, and those kept only when both reads agree: the buffers grow
    # and shrink in steps (a burst, a quiet 10 s), and one that moved
    # between a read of the pages and a later read of the buffers put a
    # figure off by a step into the floors (RSS less buffers not yet
    # resident, or already handed back)
    ring = moved = None
    for _ in range(RING_TRIES if pid else 0):
        r0 = _rx_ring(lab, i)
        ps = proc_sample(pid)
        if not ps:
            break
        s["rss"] = ps[0]
        s["rss_anon"] = _rss_anon(pid)
        sm = _smaps(pid)
        if sm:
            s["rss_lmdb"], s["rss_code"] = sm["lmdb"], sm["code"]
            s["rss_heap"], s["rss_stacks"], s["rss_maps"] = sm["heap"], sm["stacks"], sm["maps"]
            s["anon_maps"] = sm["anon_maps"]
        ring = _rx_ring(lab, i)
        moved = r0 is None or ring != r0
        if not moved:
            break
    # the receive rings' buffers: a cache the traffic sizes (4 to 128 per
    # worker, halved after each quiet 10 s: docs/ENGINE.md), resident while
    # provided; RSS net of them is what a leak grows
    s["rx_ring"] = ring
    if moved is False:
        for net, of in (("rss_net", "rss"), ("rss_private", "rss_anon"), ("rss_maps_net", "rss_maps")):
            if s[of] is not None:
                s[net] = s[of] - ring
    if pid and proc_sample(pid):
        s["threads"] = _count("/proc/%d/task" % pid)
        s["fds"] = _count("/proc/%d/fd" % pid)
    s["lmdb"] = _lmdb_bytes(lab.node_dir(i))
    used, dht = _lmdb_used(os.path.join(lab.node_dir(i), "store"))
    s["lmdb_used"] = used
    s["lmdb_used_nodht"] = used - dht if used is not None else None
    try:
        h = api(lab.sock(i), "GET", "/v1/status", timeout=5).get("heap") or {}
        s["heap_in_use"], s["heap_free"] = h.get("in_use"), h.get("free")
        d = api(lab.sock(i), "GET", "/v1/dht/status", timeout=5)
        s["dht_nodes"] = (d.get("nodes4") or 0) + (d.get("nodes6") or 0)
        s["dht_good"] = (d.get("good4") or 0) + (d.get("good6") or 0)
        s["dht_peers"], s["dht_items"] = d.get("peers"), d.get("items")
        # the heap the DHT's stores of peers and items take: the work's
        # (BEP 5's 30 min, BEP 44's 2 h), not a leak
        s["dht_store"] = d.get("store_bytes")
        if s["heap_in_use"] is not None and s["dht_store"] is not None:
            s["heap_net"] = s["heap_in_use"] - s["dht_store"]
        st = api(lab.sock(i), "GET", "/v1/dht/store", timeout=5)
        s["dht_peers_kept"], s["dht_items_kept"], s["dht_overdue"] = store_counts(
            st, dict(gone), time.time())
        q = api(lab.sock(i), "GET", "/v1/quic/conns", timeout=5)
        s["quic_conns"] = len(q.get("conns") or [])
        b = api(lab.sock(i), "GET", "/v1/bans", timeout=5)
        s["bans"] = len(b.get("bans") or []) if isinstance(b, dict) else None
    except (OSError, ApiError):
        pass
    return s


class SoakSampler:
    def __init__(self, lab, period, gone):
        self.lab, self.period, self.gone = lab, period, gone
        self.samples = []
        self.stop_ev = threading.Event()
        self.t0 = time.time()
        self.th = threading.Thread(target=self.loop, daemon=True)
        open(os.path.join(lab.results_dir(), "soak-samples.jsonl"), "w").close()

    def loop(self):
        while True:
            s = {"t": round(time.time() - self.t0, 1), "nodes": {}}
            for i in self.lab.nodes():
                s["nodes"][str(i)] = sample_node(self.lab, i, self.gone)
            self.samples.append(s)
            # as it goes: a run cut short still has its samples
            try:
                with open(os.path.join(self.lab.results_dir(), "soak-samples.jsonl"), "a") as f:
                    f.write(json.dumps(s) + "\n")
            except OSError:
                pass
            if self.stop_ev.wait(self.period):
                return

    def __enter__(self):
        self.th.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()


def growth(samples, warmup_s, skip, floor=FLOOR + MEM_FLOOR):
    """{metric: {node: percent}} from the samples, nodes in skip left out;
    the metrics in floor compare each window's least sample, the others
    its median."""
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
            if m in floor:
                mb, me = min(b), min(e)
            else:
                mb, me = statistics.median(b), statistics.median(e)
            # from nothing (a count: bans, connections): each one that
            # came is 100%, as if from one (it was left out before)
            per[k] = 0.0 if mb == me else 100.0 * (me - mb) / (mb or 1)
        out[m] = per
    return out


def goal_over(g, overdue):
    """The goal metrics that grew more than GOAL_PCT on some node (growth
    is the measure: a figure that shrank meets it), and "dht_overdue_max"
    when an entry outlived its lifetime; empty: the goal is met."""
    over = [m for m in METRICS if m not in NOT_GOAL
            and any(v is not None and v > GOAL_PCT for v in g.get(m, {}).values())]
    if overdue:
        over.append("dht_overdue_max")
    return over


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
    # what the lab removed, and when: {infohash hex40 | (key, name): time}
    gone = {}

    def distribute(tag, seed, dls):
        """seed adds a fresh 1 MiB file, each of dls downloads it by id,
        then all remove it (the store does not grow)."""
        src = os.path.join(data, "soak-%s.bin" % tag)
        with open(src, "wb") as f:
            f.write(os.urandom(1 << 20))
        try:
            share = api(lab.sock(seed), "POST", "/v1/content/add", {"paths": [src]},
                        timeout=120)
            cid = share["items"][0]["id"]
            sid = share["share_id"]
            for i in dls:
                work["downloads"] += 1
                out = os.path.join(data, "soak-out-%s-%d" % (tag, i))
                os.makedirs(out, exist_ok=True)
                job = api(lab.sock(i), "POST", "/v1/content/get",
                          {"id": cid, "out": out, "link": True}, timeout=30)["job"]
                t_dl = time.time() + 120
                j = {}
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
            # the seed removes the share (its record, blob and head:
            # removing the item alone left the share announced and
            # its head put again every 30 min for good)
            safe(lambda: api(lab.sock(seed), "POST", "/v1/content/rm", {"id": sid},
                             timeout=30))
            now = time.time()
            gone[cid[:40]] = gone[sid[:40]] = now
            gone[(lab.node(seed).get("key"), share.get("name"))] = now
        except (OSError, ApiError, KeyError, IndexError) as e:
            err("distribute", e)
        finally:
            os.unlink(src)

    def call(i):
        try:
            c = call_norm(api(lab.sock(i), "POST", "/v1/svc/call", {
                "name": "echo", "method": "echo", "data": "soak", "count": 20,
                "concurrency": 4, "timeout_ms": 5000}, timeout=120))
            work["calls"] += c.get("calls") or 0
            work["calls_ok"] += c.get("ok") or 0
        except (OSError, ApiError) as e:
            err("call", e)

    def dial(i, k):
        work["dials"] += 1
        try:
            api(lab.sock(i), "POST", "/v1/quic/ping",
                {"addr": keys[k], "timeout_ms": 5000}, timeout=30)
            work["dials_ok"] += 1
        except (OSError, ApiError) as e:
            err("dial", e)

    def prime():
        """Every node does each kind of work once, at the start of the
        warm-up: what a process sets up or first runs on a role's first
        use (a library's code read in, a thread's malloc arena, a table
        first written) then lands before the growth is measured, not on
        whichever node the rounds happen to give that role late."""
        live = live_nodes(lab)
        seeds = [x for x in live if x in bridge] or live
        # each node downloads once, from the seeds in turn (each seeds once
        # when there are as many nodes as seeds)
        for n, d in enumerate(live):
            seed = next((seeds[(n + j) % len(seeds)] for j in range(len(seeds))
                         if seeds[(n + j) % len(seeds)] != d), None)
            if seed is not None:
                distribute("prime-%d" % n, seed, [d])
        for i in live:
            call(i)
            ks = [k for k in sorted(keys) if k != i]
            if ks:
                dial(i, ks[i % len(ks)])

    with SoakSampler(lab, a.period, gone) as smp:
        prime()
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
                call(i)
            if r % 10 == 0:
                # the same infohashes from the same nodes again: peers live
                # 30 min (BEP 5), and lookups of get_peers look for them
                for ih, i in anns:
                    if i in live:
                        safe(lambda: api(lab.sock(i), "POST", "/v1/dht/announce",
                                         {"infohash": ih, "port": QUIC_PORT}, timeout=30))
            if keys:
                k = rng.choice(sorted(keys))
                dial(rng.choice([x for x in live if x != k] or live), k)
            if r % 5 == 0:
                # a seed on the bridge: a provider behind a NAT is announced
                # at its NAT's address, which downloaders cannot dial (its
                # key is not in the announce: docs/LAB.md "Soak")
                seed = rng.choice([x for x in live if x in bridge] or live)
                distribute("%d" % r, seed, rng.sample([x for x in live if x != seed],
                                                      min(2, len(live) - 1)))
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
    gm = growth(smp.samples, warmup, churned, floor=FLOOR)
    rows = []
    worst_all = 0.0
    overdue = max([x["nodes"][k].get("dht_overdue") or 0 for x in smp.samples
                   for k in x["nodes"]] or [0])
    over = goal_over(g, overdue)
    for m in METRICS:
        vals = [v for v in g.get(m, {}).values() if v is not None]
        if not vals:
            rows.append([m, "-", "-", 0, "-", "-"])
            continue
        med, worst = statistics.median(vals), max(vals, key=abs)
        verdict = "-"
        if m not in NOT_GOAL:
            worst_all = max(worst_all, worst)
            verdict = "OVER" if m in over else "met"
        mv = [v for v in gm.get(m, {}).values() if v is not None]
        rows.append([m + (" (floor)" if m in MEM_FLOOR else ""), fmt(med, " %", 1),
                     fmt(worst, " %", 1),
                     fmt(max(mv, key=abs), " %", 1) if m in MEM_FLOOR and mv else "",
                     len(vals), "no" if m in NOT_GOAL else "yes", verdict])
    print(table(["metric", "growth (median node)", "growth (worst node)",
                 "worst node, medians", "nodes", "goal", "<= %g %%" % GOAL_PCT], rows))
    print("DHT entries past their lifetime (any node, any sample): %d" % overdue)
    print("goal (growth <= %g %% on every goal metric and node, no entry past its lifetime): %s"
          % (GOAL_PCT, "met" if not over else "NOT met: " + ", ".join(over)))
    return {"duration_s": a.duration, "warmup_s": warmup, "period_s": a.period,
            "round_s": a.round, "work": work, "churned": sorted(churned, key=int),
            "growth_pct": g, "growth_median_pct": gm, "growth_worst_pct": worst_all,
            "goal_pct": GOAL_PCT,
            "goal_met": not over, "goal_over": over,
            "not_goal": list(NOT_GOAL), "dht_overdue_max": overdue,
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
    nrow = (len(METRICS) + 3) // 4
    fig, axs = plt.subplots(nrow, 4, figsize=(15, 3 * nrow))
    for ax, m in zip(axs.flat, METRICS):
        for k in s[-1]["nodes"]:
            pts = [(x["t"] / 60.0, x["nodes"].get(k, {}).get(m)) for x in s]
            pts = [p for p in pts if p[1] is not None]
            if pts:
                scale = 1048576.0 if m in MIB else 1.0
                ax.plot([p[0] for p in pts], [p[1] / scale for p in pts], lw=0.6)
        ax.axvline(res.get("warmup_s", 0) / 60.0, color="k", lw=0.5, ls="--")
        ax.set_title(m + (" (MiB)" if m in MIB else "") + (" *" if m in NOT_GOAL else ""),
                     fontsize=9)
        ax.set_xlabel("minutes", fontsize=8)
        ax.grid(True, alpha=0.3)
    for ax in list(axs.flat)[len(METRICS):]:
        ax.set_visible(False)
    save(fig, "soak.png", "Soak: resources over time",
         "Each node's RSS, threads, open descriptors, LMDB size and table sizes over the soak "
         "(one line per node; dashed: end of the warm-up; *: the workload's totals or a "
         "high-water mark, not held to the goal). Worst growth after the warm-up: "
         "%.1f%% (goal 5%%); DHT entries past their lifetime: %d."
         % (res.get("growth_worst_pct", 0.0), res.get("dht_overdue_max", 0)))
