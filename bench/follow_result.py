# SPDX-License-Identifier: MIT
"""bench/follow.sh's table and its weft-bench/1 result, from the two
weftlab follow results (A: push at the default poll, B: content sync every
0.25 s). Usage: follow_result.py PUSH.json SYNC.json SUBSCRIBERS UPDATES"""
import json
import os
import platform
import subprocess
import sys
import time

a, b = (json.load(open(p)) for p in sys.argv[1:3])
k, n = sys.argv[3:5]


def f(v):
    return "%.2f s" % v if v is not None else "never"


print("\nfollow: time from the publisher's `content add` answer until the subscribers hold"
      " the version (%d subscribers, poll_s %s)" % (a["subscribers"], a["poll_s"]))
print("%-8s %-44s %s" % ("version", "A: push, poll every %s s" % a["poll_s"],
                         "B: content sync every 0.25 s (reference)"))
ta, tb = [], []
for ua, ub in zip(a["updates"], b["updates"]):
    print("v%-7s t50 %-8s t90 %-8s t100 %-10s t50 %-8s t90 %-8s t100 %s" % (
        ua["seq"], f(ua["t50_s"]), f(ua["t90_s"]), f(ua["t100_s"]),
        f(ub["t50_s"]), f(ub["t90_s"]), f(ub["t100_s"])))
    ta.append(ua["t100_s"])
    tb.append(ub["t100_s"])
if not ta or not all(t is not None for t in ta + tb):
    print("follow: a subscriber never held a version")
    sys.exit(1)
ma, mb = sum(ta) / len(ta), sum(tb) / len(tb)
print("follow: t100 mean A %.2f s, B %.2f s, A/B %.2f; versions taken from a push (counted"
      " by the subscribers, run A): %s" % (ma, mb, ma / mb, a.get("pushes", "-")))
cpu = "unknown"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break


def first(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


top = os.environ.get("TOP", ".")
res = {"schema": "weft-bench/1", "harness": "follow", "command": "bench/follow.sh %s %s" % (k, n),
       "commit": os.environ.get("WEFT_BENCH_COMMIT") or
       first(["git", "-C", top, "describe", "--always", "--dirty", "--abbrev=12"]) or "unknown",
       "kernel": platform.release(), "cpu_model": cpu,
       "started": os.environ.get("STARTED", ""),
       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
       "loadavg": " ".join("%.2f" % x for x in os.getloadavg()),
       "params": {"subscribers": int(k), "updates": int(n), "poll_s": a["poll_s"] or 0},
       "same_work": "same 21-node lab, publisher, subscribers, file and edits (1 MiB of 8 MiB "
                    "rewritten per version); A waits for the push, B polls every 0.25 s",
       "figures": [{"id": "push_t100_s", "label": "t100, push (poll_s %s)" % a["poll_s"],
                    "unit": "s", "value": ma},
                   {"id": "sync_t100_s", "label": "t100, content sync every 0.25 s",
                    "unit": "s", "value": mb}],
       "ratios": [{"id": "follow.push_vs_sync", "label": "push vs polling every 0.25 s (t100)",
                   "value": ma / mb, "num": "push_t100_s", "den": "sync_t100_s"}],
       "notes": ["per version: " + json.dumps({"push": a["updates"], "sync": b["updates"]})[:2000]]}
out = os.environ.get("WEFT_BENCH_DIR") or os.path.join(os.environ.get("BUILD", "build"),
                                                        "bench", "results")
os.makedirs(out, exist_ok=True)
path = os.path.join(out, "follow-%s-%d.json" % (time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()),
                                                 os.getpid()))
with open(path + ".tmp", "w") as fp:
    json.dump(res, fp, indent=1)
os.rename(path + ".tmp", path)
print("result: %s" % path)
