#!/bin/bash
# SPDX-License-Identifier: MIT
# Private content (issue 28): what sealing costs against the same work in
# plaintext, two weftd in network namespaces on a veth bridge (release
# binaries; root).
#   add:      `content add FILE` against `content add --private --to B FILE`
#             of the same SIZE_MB file (default 1024), its pages cached
#             before each add; the share and its blobs removed after each,
#             so every add stores SIZE_MB (goal: private >= 0.8x plain).
#   download: host B `content get SHARE --from A --out DIR` of the plain
#             share against the sealed one (same bytes, same provider, same
#             path; the sealed one decrypted on the way to disk), B's copy
#             removed after each (goal >= 0.8x).
#   500:      a 1 KiB file added for 500 recipients (this node and 499
#             generated keys): wall time of the add, the wrapped keys'
#             bytes; a recipient's get of it.
# Each pair alternates its order over REPS rounds (default 3); the table
# gives the median of each side, MB/s from wall time and weftd CPU seconds
# (utime + stime of the daemon doing the work), and the ratio of medians.
# The JSON result (weft-bench/1) goes to $WEFT_BENCH_DIR or
# $BUILD/bench/results. PRIVATE_PARTS (default "add get 500") picks the
# parts run. Usage: bench/private.sh [SIZE_MB [REPS]]
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
WEFTD=${WEFTD:-$BUILD/weftd} WEFTCTL=${WEFTCTL:-$BUILD/weftctl} PYTHON=${PYTHON:-/usr/bin/python3}
SIZE_MB=${1:-1024} REPS=${2:-3} PARTS=" ${PRIVATE_PARTS:-add get 500} "
part() { case "$PARTS" in *" $1 "*) return 0 ;; esac; return 1; }
export TOP WEFTD WEFTCTL PYTHON
[ -x "$WEFTD" ] && [ -x "$WEFTCTL" ] || { echo "build $WEFTD and $WEFTCTL first"; exit 1; }
. "$TOP/tests/lib/common.sh"
. "$TOP/tests/lib/netns.sh"
netns_require_root
netns_create 2 || fail "netns setup"
D=$(mktemp -d "${TMPDIR:-/tmp}/wpbench.XXXXXX")
netns_on_exit "rm -rf '$D'"
ctl() { local n=$1; shift; "$WEFTCTL" --socket "$D/n$n/weftd.sock" "$@"; }
STARTED=$(date -u +%FT%TZ)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in 1 2; do
	mkdir -p "$D/n$n"
	NETNS_EXEC="ip netns exec $(netns_name "$n")"
	start_weftd "$D/n$n" --state-dir "$D/n$n" --io uring --workers 2 --quic-port 4433 \
		--dht-port 6881 --bootstrap "$(netns_ip4 1):6881" --log-level warn ${WEFTD_ARGS:-}
	eval "PID$n=$WEFTD_PID"
done
K2=$(ctl 2 --json status | json_get node_key)
A="$(netns_ip4 1):4433"
head -c $((SIZE_MB << 20)) /dev/urandom >"$D/file.bin"
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; } # clock ticks
TICK=$(getconf CLK_TCK)
: >"$D/rows" # kind side wall_s cpu_s

# add: one timed add of SIZE_MB, then its removal (untimed)
add_once() { # plain|private [untimed]
	local t0 t1 c0 c1 sid
	cat "$D/file.bin" >/dev/null
	c0=$(cpu "$PID1")
	t0=$(date +%s.%N)
	if [ "$1" = plain ]; then
		ctl 1 --json content add --name plain "$D/file.bin" >"$D/add" || fail "add: $(cat "$D/add")"
	else
		ctl 1 --json content add --private --to "$K2" --name priv "$D/file.bin" >"$D/add" ||
			fail "private add: $(cat "$D/add")"
	fi
	t1=$(date +%s.%N)
	c1=$(cpu "$PID1")
	[ -z "${2:-}" ] && echo "add $1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(((c1 - c0)))" >>"$D/rows"
	sid=$(json_get share_id <"$D/add")
	eval "SID_$1=$sid"
}
for ((r = 0; r < REPS; r++)); do
	part add || break
	for k in $([ $((r % 2)) = 0 ] && echo plain private || echo private plain); do
		add_once "$k"
		eval "ctl 1 content rm \$SID_$k >/dev/null" || fail "rm"
	done
done
# both shares held on A for the downloads (not measured)
if part get; then for k in plain private; do add_once "$k" untimed; done; fi

get_once() { # plain|private
	local sid t0 t1 c0 c1
	eval "sid=\$SID_$1"
	rm -rf "$D/out"
	c0=$(cpu "$PID2")
	t0=$(date +%s.%N)
	ctl 2 --json content get "$sid" --from "$A" --out "$D/out" >"$D/get" || fail "get $1: $(cat "$D/get")"
	t1=$(date +%s.%N)
	c1=$(cpu "$PID2")
	cmp -s "$D/file.bin" "$D/out/file.bin" || fail "get $1: the file differs"
	echo "get $1 $(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }') $(((c1 - c0)))" >>"$D/rows"
	ctl 2 content rm "$sid" >/dev/null || fail "rm on B"
}
for ((r = 0; r < REPS; r++)); do
	part get || break
	for k in $([ $((r % 2)) = 0 ] && echo plain private || echo private plain); do get_once "$k"; done
done

# 500 recipients
R500="" R500_S=0 R500_GET=0 R500_KEYS=0
if part 500 && KEYS=$("$PYTHON" -c 'import nacl.signing as s; print(",".join(s.SigningKey.generate().verify_key.encode().hex() for _ in range(498)))' 2>/dev/null); then
	head -c 1024 /dev/urandom >"$D/small.bin"
	t0=$(date +%s.%N)
	ctl 1 --json content add --private --to "$KEYS,$K2" --name many "$D/small.bin" >"$D/many" ||
		fail "500 recipients: $(cat "$D/many")"
	R500_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	R500_KEYS=$(json_get keys <"$D/many")
	t0=$(date +%s.%N)
	ctl 2 --json content get "$(json_get share_id <"$D/many")" --from "$A" --out "$D/m" >/dev/null ||
		fail "500 recipients: B's get"
	R500_GET=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')
	cmp -s "$D/small.bin" "$D/m/small.bin" || fail "500 recipients: B's copy differs"
	R500=1
fi

"$PYTHON" - "$D/rows" "$SIZE_MB" "$REPS" "$TICK" "$STARTED" "$LOAD0" "$R500" "$R500_S" "$R500_GET" "$R500_KEYS" "$PARTS" <<'PY'
import os, platform, statistics, sys
rows, size_mb, reps, tick, started, load0, r500, r500_s, r500_get, r500_keys = sys.argv[1:11]
size_mb, reps, tick = int(size_mb), int(reps), float(tick)
m = {}
for line in open(rows):
    kind, side, wall, cpu = line.split()
    m.setdefault((kind, side), []).append((float(wall), int(cpu) / tick))
figs, ratios = [], []
print("private content: %d MiB, %d rounds, medians (host: %s)" % (size_mb, reps, platform.node()))
print("%-9s %-8s %10s %10s %10s" % ("what", "side", "wall s", "MB/s", "CPU s"))
med = {}
for kind in ("add", "get"):
    for side in ("plain", "private"):
        v = m.get((kind, side), [])
        if not v:
            continue
        w = statistics.median(x[0] for x in v)
        c = statistics.median(x[1] for x in v)
        med[(kind, side)] = (w, c)
        mbs = size_mb * 1.048576 / w
        print("%-9s %-8s %10.2f %10.1f %10.2f" % (kind, side, w, mbs, c))
        figs.append({"id": "%s.%s_mbs" % (kind, side), "label": "%s %s, median" % (kind, side),
                     "value": mbs, "unit": "MB/s"})
        figs.append({"id": "%s.%s_cpu_s" % (kind, side), "label": "%s %s: weftd CPU" % (kind, side),
                     "value": c, "unit": "s"})
for kind, what in (("add", "encrypting add / plaintext add"),
                   ("get", "decrypting download / plaintext download")):
    if (kind, "plain") in med and (kind, "private") in med:
        r = med[(kind, "plain")][0] / med[(kind, "private")][0]
        print("%s: %.2fx (goal 0.8x); CPU plain / private %.2fx" %
              (what, r, med[(kind, "plain")][1] / med[(kind, "private")][1]))
        ratios.append({"id": "%s.private_vs_plain" % kind, "label": what,
                       "num": "%s.private_mbs" % kind, "den": "%s.plain_mbs" % kind,
                       "value": r, "goal": 0.8})
notes = ["ratios of medians of this run; order alternated each round"]
if r500:
    print("500 recipients: add of 1 KiB %.3f s, %s wrapped keys (%d bytes in the manifest), a "
          "recipient's get %.3f s" % (float(r500_s), r500_keys, int(r500_keys) * 56, float(r500_get)))
    figs += [{"id": "r500.add_s", "label": "add for 500 recipients (1 KiB)", "value": float(r500_s), "unit": "s"},
             {"id": "r500.keys_bytes", "label": "wrapped keys, 500 recipients", "value": int(r500_keys) * 56, "unit": "B"},
             {"id": "r500.get_s", "label": "a recipient's get (500 keys)", "value": float(r500_get), "unit": "s"}]
elif "500" in sys.argv[11].split():
    notes.append("python3-nacl missing: no 500-recipient row")
sys.path.insert(0, os.path.join(os.environ.get("TOP", "."), "bench"))
import benchres
path = benchres.write(
    "private", "bench/private.sh %d %d" % (size_mb, reps), started, load0,
    params={"size_mb": size_mb, "reps": reps},
    same_work="the same file, the same daemons, provider and path; the sealed side encrypts "
              "(add) or decrypts (download) on top of what the plain side does; page cache "
              "warmed before each add; each copy removed after it is measured",
    figures=figs, ratios=ratios, notes=notes)
print("result: %s" % path)
PY
