# SPDX-License-Identifier: MIT
"""weftlab's bash completion, written from its argparse parser (cli.py) so
it cannot drift from the commands: `python3 -m weftlab.completion` prints
it; the Makefile writes it to $(BUILD)/completion/weftlab, the package
installs that. Commands whose name starts with _ are internal (weftlab runs
them itself) and are not offered."""
import argparse
import sys

from .cli import parser

HEAD = """# SPDX-License-Identifier: MIT
# bash completion for weftlab: commands, scenarios, options. Generated from
# weftlab's argparse parser by `python3 -m weftlab.completion` (make): do not
# edit; tools/pylib/weftlab/cli.py is the source.
_weftlab()
{
	local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD - 1]} i w path=""
	# the command path so far ("run distribute"): options and their values
	# are skipped
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		case "$path:$w" in
"""
MID = """		*:-*) ;;
		*) path=${path:+$path }$w ;;
		esac
	done
	if [[ $prev == --dir ]]; then
		COMPREPLY=($(compgen -d -- "$cur"))
		return
	fi
	local words=""
	case $path in
"""
TAIL = """	esac
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _weftlab weftlab
"""


def walk(p, path, out):
    """(path, words, options taking a value) of parser p and of every
    command under it, depth first, in the parser's order; a positional
    with choices (sim's scenario) adds the path "P *": its options only."""
    subs, choices, opts, valued = [], [], [], []
    for act in p._actions:
        if isinstance(act, argparse._SubParsersAction):
            for name, sp in act.choices.items():
                if not name.startswith("_"):
                    subs.append((name, sp))
        elif not act.option_strings:
            choices += list(act.choices or [])
        else:
            opts += [o for o in act.option_strings if o.startswith("--")]
            if act.nargs != 0:
                valued += [o for o in act.option_strings if o.startswith("--")]
    out.append((path, [n for n, _ in subs] + choices + opts, valued))
    if choices:
        out.append(((path + " *").strip(), opts, valued))
    for name, sp in subs:
        walk(sp, (path + " " + name).strip(), out)
    return out


def pattern(text):
    """A bash case pattern matching text, where * matches anything."""
    return "*".join('"%s"' % part if part else "" for part in text.split("*")) or '""'


def bash():
    nodes = walk(parser(), "", [])
    lines = [HEAD]
    for path, _, valued in nodes:
        if valued:
            pats = " | ".join(pattern("%s:%s" % (path, o)) for o in valued)
            lines.append("\t\t%s) ((i++)) ;;\n" % pats)
    lines.append(MID)
    for path, words, _ in nodes:
        lines.append('\t%s) words="%s" ;;\n' % (pattern(path), " ".join(words)))
    lines.append(TAIL)
    return "".join(lines)


if __name__ == "__main__":
    sys.stdout.write(bash())
