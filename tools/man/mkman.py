#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Build the man pages from their one source each.

  mkman.py weft.conf.5 CONFIG.md OUT      keys table of docs/CONFIG.md -> roff
  mkman.py PAGE.in USAGE_FILE OUT         PAGE.in with @USAGE@ replaced by the
                                          program's own usage text (roff-escaped)

weftd(8) and weftctl(8) are hand-written roff (tools/man/*.in); their option
and command lists come from the programs' --help, weft.conf(5) from
docs/CONFIG.md, so neither can drift from the code or the docs.
"""
import re
import sys

VERSION = "0.1.0"


def esc(text):
    """Escape plain text for roff (no formatting)."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    return text


def inline(md):
    """Markdown inline (`code`, **bold**, [text](url)) to roff."""
    out = []
    pos = 0
    for m in re.finditer(r"`([^`]*)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)]+)\)", md):
        out.append(esc(md[pos:m.start()]))
        if m.group(1) is not None:
            out.append("\\fB" + esc(m.group(1)) + "\\fR")
        elif m.group(2) is not None:
            out.append("\\fB" + esc(m.group(2)) + "\\fR")
        else:
            out.append(esc(m.group(3)) + " <" + esc(m.group(4)) + ">")
        pos = m.end()
    out.append(esc(md[pos:]))
    line = "".join(out)
    if line.startswith((".", "'")):
        line = "\\&" + line
    return line


def split_row(row):
    """Split a markdown table row on the pipes outside `code`."""
    cells, cur, code = [], "", False
    for ch in row:
        if ch == "`":
            code = not code
        if ch == "|" and not code:
            cells.append(cur)
            cur = ""
        else:
            cur += ch
    cells.append(cur)
    return cells


def conf_page(config_md):
    src = open(config_md, encoding="utf-8").read()
    sec = src.split("\n## Keys\n", 1)[1].split("\n## ", 1)[0]
    rows = []
    for line in sec.splitlines():
        if not line.startswith("| `"):
            continue
        cells = [c.strip() for c in split_row(line.strip()[1:-1])]
        if len(cells) < 4:
            continue
        rows.append(cells)
    o = []
    o.append('.TH WEFT.CONF 5 "" "weft %s" "File Formats"' % VERSION)
    o.append(".SH NAME")
    o.append("weft.conf \\- configuration file of weftd")
    o.append(".SH SYNOPSIS")
    o.append("/etc/weft/weft.conf")
    o.append(".SH DESCRIPTION")
    o.append("weftd(8) needs no configuration file: every key has an embedded default. "
             "A value is taken, in order of precedence, from a command-line flag "
             "(\\fB\\-\\-set SECTION.KEY=VALUE\\fR sets any key), the INI file given with "
             "\\fB\\-\\-config\\fR, else /etc/weft/weft.conf when it exists, else the default.")
    o.append(".PP")
    o.append("The file is INI: \\fB[section]\\fR headers, \\fBkey = value\\fR lines, "
             "\\fB;\\fR or \\fB#\\fR comments. \\fBdht.bootstrap\\fR may be repeated. "
             "An unknown section or key, a value out of range or of the wrong type stops "
             "weftd with exit status 1 and a message naming the file and line.")
    o.append(".PP")
    o.append("On SIGHUP (\\fBsystemctl reload weft\\fR) weftd re-reads the file; each changed "
             "key is logged as applied or as needing a restart. A file that no longer "
             "parses is refused and the running configuration is kept.")
    o.append(".PP")
    o.append("\\fBweftd \\-\\-print\\-default\\-config\\fR prints every key commented out with "
             "its default; \\fBweftd \\-\\-print\\-config\\fR prints the effective configuration.")
    o.append(".SH KEYS")
    o.append("Each key is written \\fIsection\\fR.\\fIkey\\fR; in the file it is \\fIkey\\fR "
             "under \\fB[\\fIsection\\fB]\\fR. \"Live\" keys take effect on SIGHUP.")
    for key, default, live, meaning in rows[:]:
        o.append(".TP")
        o.append(inline(key))
        o.append("Default: " + inline(default) + (" (live)" if live.strip() == "yes" else "") + ".")
        o.append(".br")
        o.append(inline(meaning))
    o.append(".SH FILES")
    o.append(".TP")
    o.append("/etc/weft/weft.conf")
    o.append("this file; the Debian package installs it with every key commented out.")
    o.append(".SH SEE ALSO")
    o.append("weftd(8), weftctl(8); docs/CONFIG.md in the weft sources.")
    return "\n".join(o) + "\n"


def usage_page(template, usage_file):
    tpl = open(template, encoding="utf-8").read()
    lines = open(usage_file, encoding="utf-8").read().rstrip("\n").splitlines()
    body = [".nf"] + [inline(l) if l.strip() else "" for l in lines] + [".fi"]
    return tpl.replace("@USAGE@", "\n".join(body)).replace("@VERSION@", VERSION)


def main():
    if len(sys.argv) != 4:
        sys.exit("usage: mkman.py weft.conf.5 CONFIG.md OUT | PAGE.in USAGE OUT")
    page, src, out = sys.argv[1:]
    text = conf_page(src) if page.endswith("weft.conf.5") else usage_page(page, src)
    with open(out, "w", encoding="utf-8") as f:
        f.write(text)


if __name__ == "__main__":
    main()
