#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Live heap by allocation site over time, from a heaptrack record.

heaptrack (Debian's heaptrack package) records every allocation and free
with its call stack; heaptrack_print reports totals and what was never
freed, not how the live set moved. This replays the record (heaptrack's
interpreted format: `a SIZE TRACE` allocation infos, `+ IDX` / `- IDX`
allocation and free events, `c MS` time stamps, `t IP PARENT` and `i`
frames, `s` strings) and prints, every STEP seconds, the bytes live, then
the allocation sites whose live bytes moved most between the snapshots
right after the warm-up and the last ones (median of three each).

Used for the soak (docs/LAB.md "Soak: the live heap by call site"): run a
node under `heaptrack -o FILE weftd ...`, stop it with SIGKILL (so the
record ends with what was live), then
  tools/heaptrend.py FILE.zst [STEP_S [WARMUP_SNAPSHOTS [TOP]]]
"""
import collections
import subprocess
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path = sys.argv[1]
    step = int(sys.argv[2]) * 1000 if len(sys.argv) > 2 else 120000
    warm = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    top = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    strings, ips, traces, ainfo = [], [], [(0, 0)], []
    live, snaps, nxt = collections.Counter(), [], step
    cat = "zstdcat" if path.endswith(".zst") else "cat"
    p = subprocess.Popen([cat, path], stdout=subprocess.PIPE, text=True, errors="replace")
    for line in p.stdout:
        c = line[:1]
        if c == "+":
            live[int(line[2:], 16)] += 1
        elif c == "-":
            live[int(line[2:], 16)] -= 1
        elif c == "c":
            now = int(line[2:], 16)
            while now >= nxt:
                snaps.append((nxt, collections.Counter(live)))
                nxt += step
        elif c == "a":
            sz, tr = line[2:].split()
            ainfo.append((int(sz, 16), int(tr, 16)))
        elif c == "s":
            rest = line[2:].rstrip("\n")
            strings.append(rest.split(" ", 1)[1] if " " in rest else "")
        elif c == "i":
            ips.append(line[2:].split())
        elif c == "t":
            ip, parent = line[2:].split()
            traces.append((int(ip, 16), int(parent, 16)))
    if p.wait():
        sys.exit("heaptrend: cannot read %s" % path)

    def name(idx):
        return strings[idx - 1] if 0 < idx <= len(strings) else "?"

    def frames(tr, depth=7):
        out = []
        while tr and len(out) < depth and tr < len(traces):
            ip, parent = traces[tr]
            parts = ips[ip - 1] if 0 < ip <= len(ips) else None
            if parts and len(parts) >= 3:
                out.append(name(int(parts[2], 16)))
            elif parts and len(parts) >= 2:
                out.append(name(int(parts[1], 16)).split("/")[-1])
            tr = parent
        return tuple(out)

    site, series = {}, collections.defaultdict(lambda: [0] * len(snaps))
    for i, (t, lv) in enumerate(snaps):
        tot = 0
        for idx, n in lv.items():
            if n <= 0 or idx >= len(ainfo):
                continue
            sz, tr = ainfo[idx]
            k = site.get(tr) or site.setdefault(tr, frames(tr))
            series[k][i] += n * sz
            tot += n * sz
        print("t=%5.1f min  live %.3f MB" % (t / 60000, tot / 1e6))
    if len(snaps) < warm + 3:
        return

    def med3(v):
        return sorted(v)[len(v) // 2]

    rows = sorted(((med3(s[-3:]) - med3(s[warm:warm + 3]), med3(s[warm:warm + 3]), med3(s[-3:]), k)
                   for k, s in series.items()), reverse=True)
    print("bytes moved (after warm-up -> end), site:")
    for d, a, b, k in [r for r in rows if r[0]][:top]:
        print("%+9d  %9d -> %9d  %s" % (d, a, b, " <- ".join(k)))


if __name__ == "__main__":
    main()
