# SPDX-License-Identifier: MIT
"""One weft-bench/1 result file (docs/BENCH.md "Results") for the shell
harnesses' Python parts: the run's context (commit, kernel, CPU, times)
added to what the harness measured, written to a temporary name and
renamed into $WEFT_BENCH_DIR (bench/run.sh) or $BUILD/bench/results."""
import json
import os
import platform
import subprocess
import time


def _first(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True).stdout.split("\n")[0].strip()
    except OSError:
        return ""


def cpu_model():
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def write(harness, command, started, loadavg, **fields):
    """fields: params, same_work, figures, ratios, notes (and any other
    key of the schema). Returns the path written."""
    top = os.environ.get("TOP", ".")
    res = {"schema": "weft-bench/1", "harness": harness, "command": command,
           "commit": os.environ.get("WEFT_BENCH_COMMIT") or
           _first(["git", "-C", top, "describe", "--always", "--dirty", "--abbrev=12"]) or "unknown",
           "kernel": platform.release(), "cpu_model": cpu_model(), "cpus": os.cpu_count(),
           "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "loadavg": loadavg}
    res.update(fields)
    out = os.environ.get("WEFT_BENCH_DIR") or os.path.join(os.environ.get("BUILD", "build"), "bench", "results")
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, "%s-%s-%d.json" % (harness, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()), os.getpid()))
    with open(path + ".tmp", "w") as f:
        json.dump(res, f, indent=1)
    os.rename(path + ".tmp", path)
    return path
