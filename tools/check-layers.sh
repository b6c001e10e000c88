#!/bin/sh
# SPDX-License-Identifier: MIT
# The layers rule (docs/ARCHITECTURE.md, "Layers"): a file of
# userspace/<module>/ includes
#   - system and library headers (<...>),
#   - public headers "weft/*.h" (include/weft/), except the node layer's own
#     (weft/node.h, weft/config.h) outside userspace/node/: a module gets
#     its settings as a typed options struct, never weftd's configuration,
#   - headers of its own module ("x_int.h" next to it or "<module>/x_int.h"),
#   - generated BPF skeletons ("*.skel.h", build/bpf/).
# and no file outside the node layer names struct weft_config.
# Anything else (another module's *_int.h or any header of another module,
# an upward include of node/) is an error. Prints every violation as
# FILE:LINE: message and exits 1 if there is one.
# Usage: tools/check-layers.sh [TOP]
set -u
TOP=${1:-$(cd "$(dirname "$0")/.." && pwd)}
cd "$TOP" || exit 2
bad=0
tmp=$(mktemp) || exit 2
trap 'rm -f "$tmp"' EXIT
for f in $(find userspace -name '*.[ch]' | sort); do
	mod=$(echo "$f" | cut -d/ -f2)
	dir=$(dirname "$f")
	# "FILE:LINE:header" for every quoted include
	grep -n '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f" |
		sed 's/^\([0-9]*\):.*"\([^"]*\)".*/\1 \2/' >"$tmp" || true
	while read -r line inc; do
		why=""
		case "$inc" in
		weft/node.h | weft/config.h)
			[ "$mod" = node ] || why="includes the node layer's $inc (use a typed options struct)" ;;
		weft/*)
			[ -f "include/$inc" ] || why="includes $inc, which is not in include/weft/" ;;
		*.skel.h) ;;
		*/*)
			other=${inc%%/*}
			if [ "$other" = node ] && [ "$mod" != node ]; then
				why="upward include of node/ ($inc)"
			elif [ "$other" != "$mod" ]; then
				why="includes module $other's private header $inc (use its public header in include/weft/)"
			elif [ ! -f "userspace/$inc" ]; then
				why="includes $inc, which does not exist"
			fi ;;
		*)
			[ -f "$dir/$inc" ] || why="includes $inc, which is not a header of module $mod" ;;
		esac
		if [ -n "$why" ]; then
			echo "$f:$line: $why"
			bad=1
		fi
	done <"$tmp"
done
# weftd's configuration stays in the node layer: no other module (nor a
# public header other than the node layer's) names struct weft_config.
for f in $(grep -rl 'struct weft_config' userspace include/weft | sort); do
	case "$f" in
	userspace/node/* | include/weft/config.h | include/weft/node.h | include/weft/dhtnode.h) continue ;;
	esac
	grep -n 'struct weft_config' "$f" | sed "s|^\([0-9]*\):.*|$f:\1: names struct weft_config (node layer); take a typed options struct|"
	bad=1
done
if [ $bad -ne 0 ]; then
	echo "check-layers: layering violations (rule in docs/ARCHITECTURE.md, \"Layers\")" >&2
	exit 1
fi
echo "check-layers: ok ($(find userspace -name '*.[ch]' | wc -l) files)"
