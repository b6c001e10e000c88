#!/bin/bash
# SPDX-License-Identifier: MIT
# The documents stay true to the code they name (no build, no root, < 1 s):
#  (a) every `path/file.c:function` reference in docs/*.md (also .h and
#      .bpf.c) names a file that exists and a function, macro, struct or
#      object defined (or, in a header, declared) in it; a stale one is
#      printed as "docs/X.md:LINE: file:function not found";
#  (b) docs/XDP.md's map tables agree with the ABI: each map of
#      bpf/weft_xdp.bpf.c has a row; its type, its entry count (evaluated
#      from include/weft/xdp_abi.h's macros and enums), the key and value
#      structs it names and every "(... N B)" size given for them match the
#      map definition and the header's _Static_assert(sizeof(struct ...) ==
#      N) lines; "N buckets" matches the value's bucket array; a sentence
#      "`struct X` is N bytes" matches the assert;
#  and every "STYLE rule N" cited names a rule of docs/STYLE.md, and no file
#  points at ../shared/DESIGN.md or ../shared/STYLE.md.
# Exits 1 with one line per mismatch. For a function no longer in the file
# named, the message adds the files that define a function of that name now
# (a hint only: a static function's name may be taken in another file).
set -u
TOP=${TOP:-$(cd "$(dirname "$0")/../.." && pwd)}
PY=${PYTHON:-/usr/bin/python3}
exec "$PY" - "$TOP" <<'EOF'
import glob
import os
import re
import sys

top = sys.argv[1]
errors = []


def err(msg):
    errors.append(msg)


def read(rel):
    with open(os.path.join(top, rel), encoding="utf-8") as f:
        return f.read()


def strip_comments(src):
    """C source without comments and string contents (lines kept)."""
    def blank(m):
        return re.sub(r"[^\n]", " ", m.group(0))
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', blank, src, flags=re.S)


# ---- (a) file:function references ----------------------------------------

REF = re.compile(r"(?<![\w./-])((?:[\w.-]+/)+[\w.-]+\.(?:bpf\.c|c|h)):([A-Za-z_]\w*)")
defs_cache = {}
code_cache = {}


def after_parens(code, i):
    """Index just past the ')' matching the '(' at i (-1 if unbalanced)."""
    depth = 0
    for j in range(i, len(code)):
        if code[j] == "(":
            depth += 1
        elif code[j] == ")":
            depth -= 1
            if depth == 0:
                return j + 1
    return -1


def defines(path, name):
    key = (path, name)
    if key in defs_cache:
        return defs_cache[key]
    if path not in code_cache:
        code_cache[path] = strip_comments(read(path))
    code = code_cache[path]
    header = path.endswith(".h")
    n = re.escape(name)
    found = False
    # macros, structs, unions, enums (tags or members), typedefs
    if re.search(r"^\s*#\s*define\s+" + n + r"\b", code, re.M) or \
       re.search(r"\b(?:struct|union|enum)\s+" + n + r"\s*\{", code) or \
       re.search(r"\btypedef\b[^;]*\b" + n + r"\s*;", code):
        found = True
    for e in re.finditer(r"\benum\s*\w*\s*\{([^}]*)\}", code):
        if re.search(r"(?:^|,)\s*" + n + r"\s*(?:=[^,]*)?(?:,|$)", e.group(1)):
            found = True
    if not found:
        # a function at file scope: the name on a line that starts at
        # column 0 (a return type), then (...) then '{' (or ';' in a header)
        for m in re.finditer(r"^[A-Za-z_][^\n;{}=]*?\b" + n + r"\s*\(", code, re.M):
            end = after_parens(code, m.end() - 1)
            if end < 0:
                continue
            rest = code[end:].lstrip()
            # attributes between ')' and the body
            while rest.startswith("__attribute__"):
                k = after_parens(rest, rest.index("("))
                rest = rest[k:].lstrip() if k > 0 else ""
            if rest.startswith("{") or (header and rest.startswith(";")):
                found = True
                break
    if not found:
        # an object at file scope (a handler table, a constant)
        if re.search(r"^[A-Za-z_][^\n;(]*\b" + n + r"\s*(?:\[[^]\n]*\])?\s*=", code, re.M):
            found = True
    defs_cache[key] = found
    return found


SOURCES = None


def moved_to(path, func):
    """Files that define func now: path's folder first, then the whole
    tree; for a .c reference .c files before headers."""
    global SOURCES
    if SOURCES is None:
        SOURCES = []
        for d in ("userspace", "include", "bpf", "tools"):
            for f in sorted(glob.glob(os.path.join(top, d, "**", "*"), recursive=True)):
                if re.search(r"\.(c|h)$", f) and os.path.isfile(f):
                    SOURCES.append(os.path.relpath(f, top))
    folder = os.path.dirname(path)
    ext = os.path.splitext(path)[1]
    for same in (True, False):
        cands = [f for f in SOURCES if f != path and (os.path.dirname(f) == folder) == same]
        for want in (ext, ".h" if ext == ".c" else ".c"):
            hits = [f for f in cands if f.endswith(want) and defines(f, func)]
            if hits:
                return hits
    return []


nrefs = 0
for doc in sorted(glob.glob(os.path.join(top, "docs", "*.md"))):
    rel = os.path.relpath(doc, top)
    with open(doc, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        for m in REF.finditer(line):
            path, func = m.group(1), m.group(2)
            nrefs += 1
            if os.path.isfile(os.path.join(top, path)) and defines(path, func):
                continue
            now = moved_to(path, func)
            err("%s:%d: %s:%s not found%s" % (rel, i + 1, path, func,
                (" (defined in %s)" % ", ".join(now[:3])) if now else ""))
if nrefs < 50:
    err("docs/*.md: only %d file:function references found (docs/ARCHITECTURE.md's hop "
        "tables have more): the pattern no longer matches them?" % nrefs)

# "STYLE rule N" in code and docs names a rule docs/STYLE.md has, and
# nothing points at the design brief or the style outside the repository.
rules = {}
for m in re.finditer(r"^(\d+)\. \*\*([^*]+)\*\*", read("docs/STYLE.md"), re.M):
    rules[int(m.group(1))] = m.group(2)
if len(rules) < 10:
    err("docs/STYLE.md: only %d numbered rules found" % len(rules))
for d in ("userspace", "include", "bpf", "tools", "tests", "docs"):
    for f in sorted(glob.glob(os.path.join(top, d, "**", "*"), recursive=True)):
        if not os.path.isfile(f) or not re.search(r"\.(c|h|md|sh|py)$", f):
            continue
        rel = os.path.relpath(f, top)
        if rel == "tests/integration/test_docs.sh":
            continue
        with open(f, encoding="utf-8", errors="replace") as fh:
            for lineno, line in enumerate(fh, 1):
                for m in re.finditer(r"STYLE(?:\.md)? rule (\d+)", line):
                    if int(m.group(1)) not in rules:
                        err("%s:%d: cites STYLE rule %s, docs/STYLE.md has rules 1-%d"
                            % (rel, lineno, m.group(1), max(rules) if rules else 0))
                if re.search(r"\.\./shared/(?:DESIGN|STYLE)\.md", line):
                    err("%s:%d: points at ../shared: the brief and the style are docs/DESIGN.md "
                        "and docs/STYLE.md" % (rel, lineno))

# ---- (b) docs/XDP.md against the ABI -------------------------------------

ABI = "include/weft/xdp_abi.h"
PROG = "bpf/weft_xdp.bpf.c"
abi = strip_comments(read(ABI))

sizes = {m.group(1): int(m.group(2)) for m in re.finditer(
    r"_Static_assert\s*\(\s*sizeof\s*\(\s*struct\s+(\w+)\s*\)\s*==\s*(\d+)", abi)}
if len(sizes) < 10:
    err("%s: only %d _Static_assert(sizeof(struct ...) == N) found" % (ABI, len(sizes)))

consts = {}
macros = {}
for m in re.finditer(r"^\s*#\s*define\s+(\w+)[ \t]+([^\n]+)$", abi, re.M):
    macros[m.group(1)] = m.group(2).strip()


def evaluate(expr, depth=0):
    if depth > 20:
        raise ValueError("macro recursion in " + expr)
    expr = re.sub(r"\b(\d+)[uUlL]+\b", r"\1", expr)

    def sub(m):
        t = m.group(0)
        if t in consts:
            return str(consts[t])
        if t in macros:
            return "(%d)" % evaluate(macros[t], depth + 1)
        raise ValueError("unknown name %s" % t)
    py = re.sub(r"\b[A-Za-z_]\w*\b", sub, expr).replace("/", "//")
    if not re.fullmatch(r"[\d\s()+\-*<>/|&~^]*", py):
        raise ValueError("not arithmetic: " + expr)
    return int(eval(py, {"__builtins__": {}}))


# enum members, in order (an explicit value may use a macro or a member)
for m in re.finditer(r"\benum\s+\w*\s*\{([^}]*)\}", abi):
    v = -1
    for item in m.group(1).split(","):
        item = item.strip()
        if not item:
            continue
        if "=" in item:
            nm, ex = [s.strip() for s in item.split("=", 1)]
            v = evaluate(ex)
        else:
            nm, v = item, v + 1
        consts[nm] = v

# struct bodies: member arrays of struct wxdp_bucket, for "N buckets"
bucket_arrays = {}
for m in re.finditer(r"\bstruct\s+(\w+)\s*\{([^}]*)\}", abi):
    for a in re.finditer(r"\bstruct\s+wxdp_bucket\s+\w+\s*\[([^]]+)\]", m.group(2)):
        bucket_arrays[m.group(1)] = evaluate(a.group(1))

# the map definitions of the program
maps = {}
for m in re.finditer(r"struct\s*\{([^{}]*)\}\s*(\w+)\s+SEC\(\"\.maps\"\)", read(PROG)):
    body, macro = m.group(1), m.group(2)
    name = macros.get(macro, macro)
    f = {}
    for k in ("type", "max_entries"):
        x = re.search(r"__uint\(\s*" + k + r"\s*,\s*([^)]+)\)", body)
        f[k] = x.group(1).strip() if x else None
    for k in ("key", "value"):
        x = re.search(r"__type\(\s*" + k + r"\s*,\s*([^)]+)\)", body)
        f[k] = x.group(1).strip() if x else None
    try:
        f["entries"] = evaluate(f["max_entries"])
    except Exception as e:
        err("%s: map %s: cannot evaluate max_entries %s: %s" % (PROG, name, f["max_entries"], e))
        continue
    f["type"] = re.sub(r"^BPF_MAP_TYPE_", "", f["type"] or "")
    maps[name] = f
if len(maps) < 15:
    err("%s: only %d maps found" % (PROG, len(maps)))

DOC = "docs/XDP.md"
seen = set()
SIZED = re.compile(r"`(?:struct\s+)?(wxdp_\w+)`\s*\(([^()]*)\)")


def struct_of(ctype):
    x = re.fullmatch(r"struct\s+(\w+)", ctype or "")
    return x.group(1) if x else None


for lineno, line in enumerate(read(DOC).split("\n"), 1):
    where = "%s:%d" % (DOC, lineno)
    # prose: "`struct X` is N bytes"
    for m in re.finditer(r"`struct\s+(wxdp_\w+)`\s+is\s+(\d+)\s+bytes", line):
        s, n = m.group(1), int(m.group(2))
        if s not in sizes:
            err("%s: struct %s has no _Static_assert in %s" % (where, s, ABI))
        elif sizes[s] != n:
            err("%s: struct %s is %d bytes in the doc, %d in %s" % (where, s, n, sizes[s], ABI))
    cells = [c.strip() for c in line.strip().strip("|").split("|")] if line.startswith("|") else []
    if len(cells) < 4:
        continue
    m = re.fullmatch(r"`(wxdp_\w+)`", cells[0])
    if not m or m.group(1) not in maps:
        continue
    name = m.group(1)
    mp = maps[name]
    seen.add(name)
    # type: the first word of the type cell
    t = re.match(r"[A-Z_]+", cells[1])
    if not t or t.group(0) != mp["type"]:
        err("%s: map %s: type '%s' in the doc, %s in %s" % (where, name, cells[1], mp["type"], PROG))
    # entries: "TYPE[N]" or the size cell's leading number or macro
    x = re.search(r"\[([^]]+)\]", cells[1])
    lead = re.match(r"(\d[\d,]*)\b|`(WXDP_\w+)`", cells[3])
    doc_n = None
    if x:
        doc_n = x.group(1)
    elif lead:
        doc_n = lead.group(1) or lead.group(2)
    if doc_n is None:
        err("%s: map %s: no entry count in the doc (the ABI says %d)" % (where, name, mp["entries"]))
    else:
        try:
            v = int(doc_n.replace(",", "")) if doc_n[0].isdigit() else evaluate(doc_n)
        except Exception as e:
            v = None
            err("%s: map %s: cannot read the entry count '%s': %s" % (where, name, doc_n, e))
        if v is not None and v != mp["entries"]:
            err("%s: map %s: %d entries in the doc, %d in %s (max_entries %s)"
                % (where, name, v, mp["entries"], PROG, mp["max_entries"]))
    # key and value structs named on their side of "->"
    kv = cells[2]
    kpart, _, vpart = kv.partition("->")
    for side, part in (("key", kpart), ("value", vpart)):
        s = struct_of(mp[side])
        if s and not re.search(r"`(?:struct\s+)?" + s + r"`", part):
            err("%s: map %s: the %s is struct %s (%s), the doc does not name it"
                % (where, name, side, s, PROG))
    # "(... N B)" after a struct name
    for sm in SIZED.finditer(kv):
        s, inner = sm.group(1), sm.group(2)
        b = re.search(r"(\d+)\s*B\s*$", inner)
        if not b:
            continue
        if s not in sizes:
            err("%s: struct %s has no _Static_assert in %s" % (where, s, ABI))
        elif sizes[s] != int(b.group(1)):
            err("%s: map %s: struct %s is %s B in the doc, %d in %s"
                % (where, name, s, b.group(1), sizes[s], ABI))
    # "N buckets" against the value's bucket array
    vs = struct_of(mp["value"])
    for bm in re.finditer(r"\b(\d+)\s+(?:token\s+)?buckets\b", kv):
        if vs in bucket_arrays and int(bm.group(1)) != bucket_arrays[vs]:
            err("%s: map %s: %s buckets in the doc, struct %s holds %d"
                % (where, name, bm.group(1), vs, bucket_arrays[vs]))

for name in sorted(set(maps) - seen):
    err("%s: map %s (%s) has no row in a map table" % (DOC, name, PROG))

for e in errors:
    print(e)
if errors:
    print("FAIL: test_docs: %d mismatches between docs/ and the code" % len(errors), file=sys.stderr)
    sys.exit(1)
print("ok: test_docs: %d file:function references, %d maps of %s checked against %s"
      % (nrefs, len(maps), DOC, ABI))
EOF
