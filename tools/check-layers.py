#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The layers rule (docs/ARCHITECTURE.md, "Layers"), checked on the code as
built and as written.

The module ladder and each module's symbol prefixes are read from the
"Modules" table of docs/ARCHITECTURE.md (so the document cannot drift from
what is checked). Then, from the release objects of libweft (nm) and the
sources:

  symbols   a module uses only symbols defined by modules of a lower rank
            (node/, the top, is used by none);
  prefixes  every symbol a module exports starts with one of its prefixes
            (or is one of its exact names); a module's internal prefixes
            are used by no other module;
  cycles    no call cycle between the files of one module (a hub calls its
            parts, parts never call it back);
  includes  a file includes system headers, include/weft/*.h, its own
            module's headers and generated skeletons; nothing outside node/
            includes weft/node.h or weft/config.h or names struct
            weft_config;
  size      no .c/.h file over MAX_LINES lines: userspace/, include/,
            tests/, tools/, bench/ and bpf/ alike.

Every violation is printed as `FILE: reason`; exit 1 if there is one.
--graph prints the module graph (edges with symbol counts) instead of
checking: `tools/check-layers.py --graph` for the closing notes.
Usage: tools/check-layers.py [--top DIR] [--objdir DIR] [--graph]
"""
import argparse
import collections
import glob
import os
import re
import subprocess
import sys

MAX_LINES = 1200
TABLE_HEAD = re.compile(r"^\|\s*rank\s*\|\s*module\s*\|\s*prefixes\s*\|\s*internal\s*\|")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def parse_ladder(arch):
    """{module: (rank, [prefixes], [internal prefixes])} from the Modules table."""
    mods = {}
    with open(arch, encoding="utf-8") as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if TABLE_HEAD.match(l)), None)
    if start is None:
        sys.exit(f"check-layers: no '| rank | module | prefixes | internal |' table in {arch}")
    for l in lines[start + 2:]:
        if not l.startswith("|"):
            break
        cells = [c.strip() for c in l.strip().strip("|").split("|")]
        if len(cells) < 4 or not cells[0].isdigit():
            sys.exit(f"check-layers: {arch}: malformed Modules row: {l}")
        names = re.findall(r"`([^`]+)`", cells[1])
        pref = re.findall(r"`([^`]+)`", cells[2])
        internal = re.findall(r"`([^`]+)`", cells[3])
        for m in names:
            mods[m.strip("/").split("/")[-1]] = (int(cells[0]), pref, internal)
    return mods


def matches(sym, prefixes):
    # "x_" is a prefix; a name without a trailing underscore is exact.
    return any(sym.startswith(p) if p.endswith("_") else sym == p for p in prefixes)


def nm_objects(objdir):
    """[(module, source path, defined globals, undefined)] of libweft's objects
    (one nm call for all of them)."""
    objs = sorted(glob.glob(os.path.join(objdir, "userspace", "*", "*.o")))
    if not objs:
        return []
    res = subprocess.run(["nm", "-A", "-P"] + objs, capture_output=True, text=True, check=True)
    table = {o: (set(), set()) for o in objs}
    for line in res.stdout.splitlines():
        # "path/x.o: symbol type [value size]"
        head, _, rest = line.partition(": ")
        p = rest.split()
        if head not in table or len(p) < 2:
            continue
        defs, undef = table[head]
        if p[1] == "U":
            undef.add(p[0])
        elif p[1] in "TDBRCGSVW":
            defs.add(p[0])
    out = []
    for o in objs:
        mod = os.path.basename(os.path.dirname(o))
        src = f"userspace/{mod}/{os.path.basename(o)[:-2]}.c"
        out.append((mod, src) + table[o])
    return out


def sccs(nodes, edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, res, n = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = n[0]
        n[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                res.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return res


def check_symbols(objs, mods, bad):
    owner = {}
    for mod, src, defs, _ in objs:
        for s in defs:
            owner.setdefault(s, (mod, src))
    edges = collections.Counter()
    fedges = collections.defaultdict(dict)
    for mod, src, defs, undef in objs:
        if mod not in mods:
            continue
        rank, pref, internal = mods[mod]
        for s in sorted(defs):
            if not matches(s, pref + internal):
                bad.append(f"{src}: exports {s}, which carries none of module {mod}'s "
                           f"prefixes ({' '.join(pref + internal)})")
        for s in sorted(undef):
            if s not in owner:
                continue
            dmod, dsrc = owner[s]
            if dmod == mod:
                if dsrc != src:
                    fedges[mod].setdefault((src, dsrc), s)
                continue
            edges[(mod, dmod)] += 1
            if dmod not in mods:
                continue
            drank, _, dinternal = mods[dmod]
            if drank >= rank:
                bad.append(f"{src}: uses {s} of module {dmod} (rank {drank}), "
                           f"which is not below {mod} (rank {rank})")
            elif matches(s, dinternal):
                bad.append(f"{src}: uses {s}, internal to module {dmod}")
    for mod, fe in sorted(fedges.items()):
        adj = collections.defaultdict(set)
        for a, b in fe:
            adj[a].add(b)
        for comp in sccs({x for e in fe for x in e}, adj):
            why = "; ".join(f"{os.path.basename(a)} -> {os.path.basename(b)} ({s})"
                            for (a, b), s in sorted(fe.items()) if a in comp and b in comp)
            bad.append(f"userspace/{mod}/: call cycle between {' '.join(comp)}: {why}")
    return edges


def check_sources(top, mods, bad):
    srcs = sorted(glob.glob(os.path.join(top, "userspace", "*", "*.[ch]")))
    folders = {os.path.basename(d) for d in glob.glob(os.path.join(top, "userspace", "*"))
               if os.path.isdir(d)}
    for m in sorted(folders - set(mods)):
        bad.append(f"userspace/{m}/: module not in the Modules table of docs/ARCHITECTURE.md")
    for m in sorted(set(mods) - folders):
        bad.append(f"docs/ARCHITECTURE.md: module {m} has no folder userspace/{m}/")
    others = [p for d in ("include", "tests", "tools", "bench", "bpf")
              for p in glob.glob(os.path.join(top, d, "**", "*.[ch]"), recursive=True)]
    for path in sorted(others):
        with open(path, encoding="utf-8", errors="replace") as f:
            n = sum(1 for _ in f)
        if n > MAX_LINES:
            bad.append(f"{os.path.relpath(path, top)}: {n} lines, over {MAX_LINES}: "
                       "split it by concern")
    for path in srcs:
        rel = os.path.relpath(path, top)
        mod = rel.split("/")[1]
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read().splitlines()
        if len(text) > MAX_LINES:
            bad.append(f"{rel}: {len(text)} lines, over {MAX_LINES}: split it by concern")
        for no, line in enumerate(text, 1):
            if mod != "node" and "struct weft_config" in line:
                bad.append(f"{rel}:{no}: names struct weft_config (node layer); "
                           "take a typed options struct")
            m = INCLUDE.match(line)
            if not m:
                continue
            inc, why = m.group(1), ""
            if inc in ("weft/node.h", "weft/config.h"):
                if mod != "node":
                    why = f"includes the node layer's {inc} (use a typed options struct)"
            elif inc.startswith("weft/"):
                if not os.path.isfile(os.path.join(top, "include", inc)):
                    why = f"includes {inc}, which is not in include/weft/"
            elif inc.endswith(".skel.h"):
                pass
            elif "/" in inc:
                other = inc.split("/")[0]
                if other != mod:
                    why = (f"includes module {other}'s private header {inc} "
                           "(use its public header in include/weft/)")
                elif not os.path.isfile(os.path.join(top, "userspace", inc)):
                    why = f"includes {inc}, which does not exist"
            elif not os.path.isfile(os.path.join(os.path.dirname(path), inc)):
                why = f"includes {inc}, which is not a header of module {mod}"
            if why:
                bad.append(f"{rel}:{no}: {why}")
    for path in sorted(glob.glob(os.path.join(top, "include", "weft", "*.h"))):
        if os.path.basename(path) in ("config.h", "node.h"):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for no, line in enumerate(f, 1):
                if "struct weft_config" in line:
                    bad.append(f"{os.path.relpath(path, top)}:{no}: names struct weft_config "
                               "(node layer)")
    return len(srcs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--top", default=here, help="source tree (default: this checkout)")
    ap.add_argument("--objdir", default=None, help="release objects (default: TOP/build/obj)")
    ap.add_argument("--graph", action="store_true", help="print the module graph and exit")
    a = ap.parse_args()
    objdir = a.objdir or os.path.join(a.top, "build", "obj")
    mods = parse_ladder(os.path.join(a.top, "docs", "ARCHITECTURE.md"))
    objs = nm_objects(objdir)
    if not objs:
        sys.exit(f"check-layers: no objects under {objdir}/userspace (build libweft first)")
    bad = []
    edges = check_symbols(objs, mods, bad)
    if a.graph:
        for (x, y), n in sorted(edges.items(), key=lambda e: (mods.get(e[0][0], (99,))[0], e[0])):
            print(f"{x} -> {y} {n}")
        return 0
    nsrc = check_sources(a.top, mods, bad)
    for b in bad:
        print(b)
    if bad:
        print(f"check-layers: {len(bad)} violation(s) (rule in docs/ARCHITECTURE.md, \"Layers\")",
              file=sys.stderr)
        return 1
    print(f"check-layers: ok ({len(mods)} modules, {len(objs)} objects, {nsrc} files, "
          f"{len(edges)} module edges)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
