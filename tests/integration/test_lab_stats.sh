#!/bin/bash
# SPDX-License-Identifier: MIT
# weftlab's statistics (tools/pylib/weftlab/stats.py): the percentile, the
# completion times t50/t90/t100 and the throughputs that `distribute` and
# the aria2 comparison both report, on fixed inputs with their expected
# outputs (Python unittest), and both scenarios using these same functions.
# No root, no daemon.
set -u
. "$TOP/tests/lib/common.sh"
D=$(mktemp -d /tmp/weft-labstats-XXXXXX)
on_exit "rm -rf '$D'"
cd "$TOP/tools/pylib" || fail "no tools/pylib"
"$PYTHON" -B - >"$D/out" 2>&1 <<'PY' || fail "stats unittest: $(cat "$D/out")"
import os
import unittest

from weftlab import aria2, scenarios, soak, stats


class Stats(unittest.TestCase):
    def test_rank(self):
        # (n, p) -> the 1-based nearest rank, ceil(p/100 * n)
        for n, p, k in [(1, 50, 1), (4, 50, 2), (5, 50, 3), (6, 50, 3), (10, 90, 9),
                        (70, 90, 63), (100, 99, 99), (3, 100, 3), (7, 0, 1)]:
            self.assertEqual(stats.rank(n, p), k, (n, p))

    def test_pct(self):
        for values, p, want in [([3, 1, 2], 50, 2), ([4, 1, 3, 2], 50, 2),
                                ([6, 5, 4, 3, 2, 1], 50, 3), ([None, 5, 1], 50, 1),
                                ([], 50, None), ([None], 50, None), ([7], 99, 7),
                                (list(range(1, 101)), 99, 99), (list(range(1, 101)), 90, 90)]:
            self.assertEqual(stats.pct(values, p), want, (values, p))

    def test_completion(self):
        # a node that never completes is infinitely late
        for times, n, want in [([5, 1, 3, 2, 4], 5, (3, 5, 5)), ([1, 2, 3], 4, (2, None, None)),
                               (list(range(1, 64)), 70, (35, 63, None)), ([], 3, (None,) * 3),
                               ([2.5], 1, (2.5, 2.5, 2.5)), ([], 0, (None,) * 3)]:
            c = stats.completion(times, n)
            self.assertEqual((c["t50_s"], c["t90_s"], c["t100_s"]), want, (times, n))

    def test_throughput(self):
        self.assertEqual(stats.throughput(1000000, 8.0), 1.0)
        self.assertIsNone(stats.throughput(1000000, None))
        self.assertIsNone(stats.throughput(1000000, 0))
        prog = [[0, 0], [1, 100], [2, 500], [3, 900], [4, 1000]]
        # 100 -> 900 bytes between 1 s and 3 s
        self.assertAlmostEqual(stats.mid_throughput(prog, 1000), 800 * 8 / 2 / 1e6)
        self.assertIsNone(stats.mid_throughput([[0, 0], [1, 500]], 1000))
        self.assertIsNone(stats.mid_throughput([[0, 0], [1, 1000]], 1000))
        self.assertIsNone(stats.mid_throughput([], 1000))

    def test_swarm(self):
        r = stats.swarm({2: 2.0, 3: 4.0}, {2: True, 3: False}, [2, 3, 4], 1000000,
                        {"2": [[0, 0], [1, 200000], [2, 1000000]], "3": [], "4": []})
        self.assertEqual((r["t50_s"], r["t90_s"], r["t100_s"]), (4.0, None, None))
        self.assertEqual(r["per_node"], {"2": {"s": 2.0, "verified": True, "mbit_s": 4.0},
                                         "3": {"s": 4.0, "verified": False, "mbit_s": 2.0},
                                         "4": {"s": None, "verified": None, "mbit_s": None}})
        self.assertEqual(r["mbit_s_p50"], 2.0)
        self.assertAlmostEqual(r["mbit_s_10_90_p50"], 6.4)

    def test_host_cpu(self):
        g = 2 ** 30
        prog = {"2": [[0, 0], [1, g // 2], [2, g], [3, g]],
                "3": [[0, 0], [1, 0], [2, g // 2], [3, g]]}
        self.assertEqual(stats.delivered_at(prog, 0.5), 0)
        self.assertEqual(stats.delivered_at(prog, 2), g + g // 2)
        self.assertEqual(stats.delivered_at(prog, 9), 2 * g)
        cpu = [[0, 0.0], [1, 3.0], [2, 5.0], [3, 8.0]]
        r = stats.host_cpu(cpu, prog, 2, g, 3)
        # to t_end 3 s: 8 busy s for 2 GiB; 10% (0.2 GiB) first held at
        # 1 s (0.5 GiB), 90% (1.8 GiB) at 3 s (2 GiB): 5 s for 1.5 GiB
        self.assertEqual(r, {"host_cpu_s": 8.0, "host_cpu_s_per_gib": 4.0,
                             "host_cpu_s_per_gib_10_90": round(5.0 / 1.5, 3)})
        # no samples, or samples that do not reach 90%: what cannot be said is None
        self.assertEqual(stats.host_cpu([], prog, 2, g, 3)["host_cpu_s"], None)
        r = stats.host_cpu(cpu, {"2": [[0, 0], [1, g]]}, 2, g, 1)
        self.assertEqual((r["host_cpu_s"], r["host_cpu_s_per_gib"], r["host_cpu_s_per_gib_10_90"]),
                         (3.0, 3.0, None))
        line = stats.cpu_line(stats.host_cpu(cpu, prog, 2, g, 3), "weftd")
        self.assertIn("host CPU 8.0 s", line)
        self.assertIn("3.33 s per GiB between", line)
        b = stats.host_busy_s()
        self.assertTrue(b is not None and b > 0)
        self.assertIsNone(stats.host_busy_s("/nonexistent"))

    def test_host_stall(self):
        import tempfile
        d = tempfile.mkdtemp()
        os.makedirs(os.path.join(d, "pressure"))
        hz = os.sysconf("SC_CLK_TCK")
        def write(steal, iow, cpu_us, io_some, io_full):
            with open(os.path.join(d, "stat"), "w") as f:
                f.write("cpu  100 0 50 1000 %d 0 3 %d 0 0\ncpu0 1 2 3\n" % (iow * hz, steal * hz))
            with open(os.path.join(d, "pressure", "cpu"), "w") as f:
                f.write("some avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n" % cpu_us)
            with open(os.path.join(d, "pressure", "io"), "w") as f:
                f.write("some avg10=1.00 avg60=0.00 avg300=0.00 total=%d\n"
                        "full avg10=0.00 avg60=0.00 avg300=0.00 total=%d\n" % (io_some, io_full))
        write(2, 10, 5000000, 7000000, 1000000)
        a = stats.host_stall(os.path.join(d, "stat"), os.path.join(d, "pressure"))
        self.assertEqual(a, {"iowait_s": 10.0, "steal_s": 2.0, "psi_cpu_some_s": 5.0,
                             "psi_io_some_s": 7.0, "psi_io_full_s": 1.0})
        write(5, 11, 9500000, 7250000, 1000000)
        b = stats.host_stall(os.path.join(d, "stat"), os.path.join(d, "pressure"))
        dl = stats.stall_delta(a, b)
        self.assertEqual(dl, {"iowait_s": 1.0, "steal_s": 3.0, "psi_cpu_some_s": 4.5,
                              "psi_io_some_s": 0.25, "psi_io_full_s": 0.0})
        line = stats.stall_line(dl)
        self.assertIn("steal 3.0 s", line)
        self.assertIn("CPU (some) 4.5 s", line)
        self.assertIn("memory (some) - s", line)  # no memory file: not a 0
        self.assertEqual(stats.stall_line({}), "")
        # unreadable: nothing said, not zeros
        self.assertEqual(stats.host_stall("/nonexistent", "/nonexistent"), {})
        # this machine: /proc/stat at least
        self.assertIn("steal_s", stats.host_stall())

    def test_one_formula(self):
        # distribute and the aria2 comparison: the same functions
        self.assertIs(scenarios.swarm, stats.swarm)
        self.assertIs(aria2.swarm, stats.swarm)
        self.assertIs(scenarios.host_cpu, stats.host_cpu)
        self.assertIs(aria2.host_cpu, stats.host_cpu)
        self.assertIs(aria2.cpu_line, scenarios.cpu_line)
        self.assertIs(aria2.host_stall, scenarios.host_stall)
        self.assertIs(aria2.stall_line, scenarios.stall_line)
        self.assertFalse(hasattr(aria2, "pct"))


class Soak(unittest.TestCase):
    def test_store_counts(self):
        # kept: what the lab has not removed; overdue: removed more than a
        # TTL (+ slack) ago and still stored, or older than its TTL
        st = {"peer_ttl_s": 1800, "item_ttl_s": 7200,
              "infohashes": [{"infohash": "a", "peers": 2, "age_s": 10},
                             {"infohash": "b", "peers": 3, "age_s": 100},
                             {"infohash": "c", "peers": 1, "age_s": 5000}],
              "items": [{"k": "K", "salt": "n1", "age_s": 10},
                        {"k": "K", "salt": "n2", "age_s": 7000},
                        {"target": "t", "age_s": 8000}]}
        now = 10000.0
        gone = {"b": now - 1800, ("K", "n2"): now - 7200 - soak.OVERDUE_SLACK_S - 1}
        self.assertEqual(soak.store_counts(st, gone, now), (3, 2, 3))
        self.assertEqual(soak.store_counts({}, {}, now), (0, 0, 0))

    def test_smaps_split(self):
        # the anonymous pages by kind: the brk heap and an arena (aligned
        # to 64 MiB) are malloc's heap, an rw mapping right above a guard
        # page a thread's stack, the rest (a block malloc mapped) "maps";
        # a file's pages are code or LMDB's, less those copied on write
        def m(lo, hi, perm, name, rss, anon):
            return ["%x-%x %s 00000000 00:00 0 %s\n" % (lo, hi, perm, name),
                    "Size: %d kB\n" % ((hi - lo) // 1024), "Rss: %d kB\n" % rss,
                    "Anonymous: %d kB\n" % anon, "VmFlags: rd wr mr mw me ac\n"]
        arena = 0x7f0004000000
        txt = (m(0x5550000, 0x5560000, "r-xp", "/usr/sbin/weftd", 40, 0) +
               m(0x5560000, 0x5561000, "rw-p", "/usr/sbin/weftd", 4, 4) +
               m(0x5600000, 0x5700000, "rw-p", "[heap]", 300, 300) +
               m(arena, arena + 0x21000, "rw-p", "", 100, 100) +
               m(arena + 0x21000, arena + 0x4000000, "---p", "", 0, 0) +
               m(0x7f0100000000, 0x7f0100001000, "---p", "", 0, 0) +
               m(0x7f0100001000, 0x7f0100801000, "rw-p", "", 16, 16) +
               m(0x7f0200000000, 0x7f0200100000, "rw-p", "", 52, 52) +
               m(0x7f0300000000, 0x7f0300100000, "r--s", "/var/lib/weft/store/data.mdb", 8, 0) +
               m(0x7ffd00000000, 0x7ffd00021000, "rw-p", "[stack]", 12, 12))
        sp = soak.smaps_split(txt)
        k = 1024
        self.assertEqual((sp["code"], sp["lmdb"]), (40 * k, 8 * k))
        self.assertEqual((sp["heap"], sp["stacks"], sp["maps"]), (400 * k, 28 * k, 56 * k))
        self.assertEqual(sp["anon_maps"], {"5600000": 300 * k, "%x" % arena: 100 * k,
                                           "7f0200000000": 52 * k})
        self.assertEqual(soak.smaps_split([])["heap"], 0)

    def test_sample_ring_read_around_pages(self):
        # the receive buffers read before and after the process's pages;
        # RSS less them only from a read both agree around (a step of the
        # buffers between the two put a figure off by that step into the
        # floors), tried RING_TRIES times, else left out
        class Lab:
            def node(self, i): return {"pid": 4242}
            def sock(self, i): return "/nonexistent"
            def node_dir(self, i): return "/nonexistent"
        saved = {k: getattr(soak, k) for k in ("_rx_ring", "proc_sample", "_rss_anon", "_smaps",
                                               "_count", "_lmdb_bytes", "_lmdb_used", "api")}
        def no_api(*a, **k): raise soak.ApiError(503, "no_daemon", "no daemon")
        try:
            soak.proc_sample = lambda pid: (1000,)
            soak._rss_anon = lambda pid: 600
            soak._smaps = lambda pid: None
            soak._count = lambda path: 3
            soak._lmdb_bytes = lambda d: None
            soak._lmdb_used = lambda d: (None, None)
            soak.api = no_api
            for ring, want in (([100, 200, 200, 200], (200, 400, 800)),
                               ([100, 100], (100, 500, 900)),
                               ([100, 200, 300, 400, 500, 600], (600, None, None)),
                               ([None, None] * 3, (None, None, None))):
                seq = iter(ring)
                soak._rx_ring = lambda lab, i: next(seq)
                s = soak.sample_node(Lab(), 1, [])
                self.assertEqual((s["rx_ring"], s["rss_private"], s["rss_net"]), want, ring)
                self.assertEqual((s["rss"], s["rss_anon"], s["threads"]), (1000, 600, 3))
        finally:
            for k, v in saved.items():
                setattr(soak, k, v)

    def test_growth(self):
        # after the warm-up (t >= 100) the first 10 % against the last 10 %;
        # restarted nodes left out
        smp = [{"t": t, "nodes": {"1": {"rss": 100 + (t >= 500) * 10}, "2": {"rss": 50}}}
               for t in range(0, 1001, 10)]
        g = soak.growth(smp, 100, {"2"})
        self.assertEqual(g["rss"], {"1": 10.0})
        self.assertEqual(soak.growth(smp, 100, set())["rss"]["2"], 0.0)
        # memory: each window's least sample (what no work holds), the
        # median only when asked; a burst in the last window is not growth,
        # a floor that rose is
        smp = [{"t": t, "nodes": {"1": {"rss": 100 + (t >= 910 and t % 30 != 0) * 50,
                                        "heap_in_use": 100 + (t >= 900) * 6}}}
               for t in range(0, 1001, 10)]
        self.assertEqual(soak.growth(smp, 100, set())["rss"], {"1": 0.0})
        self.assertEqual(soak.growth(smp, 100, set(), floor=())["rss"], {"1": 50.0})
        self.assertEqual(soak.growth(smp, 100, set())["heap_in_use"], {"1": 6.0})
        self.assertIn("dht_items_kept", soak.METRICS)
        self.assertTrue(set(soak.NOT_GOAL) <= set(soak.METRICS))
        # a count from nothing is growth (each one 100 %), not left out;
        # connections (work in flight) are judged by each window's least
        smp = [{"t": t, "nodes": {"1": {"bans": int(t >= 500), "quic_conns": [0, 5][t % 20 == 0] +
                                        (t >= 900)}}} for t in range(0, 1001, 10)]
        g = soak.growth(smp, 100, set())
        self.assertEqual(g["bans"], {"1": 100.0})
        self.assertEqual(g["quic_conns"], {"1": 100.0})
        smp = [{"t": t, "nodes": {"1": {"quic_conns": [0, 5][t % 20 == 0] + 3 * (t >= 900 and t % 20 == 0)}}}
               for t in range(0, 1001, 10)]
        self.assertEqual(soak.growth(smp, 100, set())["quic_conns"], {"1": 0.0})

    def test_goal_over(self):
        # over: a goal metric above 5 % on any node; a shrink, a metric
        # shown only (not held to the goal) and 5 % itself are met
        g = {"rss": {"1": 4.0, "2": -30.0}, "heap_in_use": {"1": 5.0},
             "rx_ring": {"1": 80.0}, "fds": {"1": 0.0, "5": 5.1}}
        self.assertIn("rx_ring", soak.NOT_GOAL)
        self.assertEqual(soak.goal_over(g, 0), ["fds"])
        self.assertEqual(soak.goal_over({}, 0), [])
        self.assertEqual(soak.goal_over({"rss": {"1": 1.0}}, 2), ["dht_overdue_max"])


unittest.main(argv=["stats"], verbosity=0)
PY
pass "stats: rank, percentile, t50/t90/t100, throughput (10-90 %), host CPU per GiB delivered (whole and 10-90 %), one formula for weft and aria2; soak: growth, the goal's verdict, DHT entries kept and overdue"
finish
