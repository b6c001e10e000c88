#!/bin/bash
# SPDX-License-Identifier: MIT
# XDP micro-costs (issue 29): ns per operation under BPF test-run of the
# operations weft's XDP program is made of (bench/xdp_micro/micro.bpf.c),
# net of an empty program, and the return sequences the JIT emitted. Needs
# root, clang and bpftool. Usage: bench/xdp_micro.sh [REPEAT] [ROUNDS]
# (default 1000000 and 3; the figure is the median of the rounds).
set -u
TOP=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
REPEAT=${1:-1000000}
ROUNDS=${2:-3}
[ "$(id -u)" -eq 0 ] || { echo "SKIP: bench/xdp_micro.sh needs root"; exit 77; }
OBJ="$BUILD/bench/xdp_micro.bpf.o"
mkdir -p "$BUILD/bench"
clang -g -O2 -target bpf -Wall -Werror -I/usr/include/"$(gcc -dumpmachine)" \
	-c "$TOP/bench/xdp_micro/micro.bpf.c" -o "$OBJ" || exit 1
PIN=/sys/fs/bpf/weft_micro_$$
TMP=$(mktemp -d)
cleanup() { rm -rf "$PIN" "$TMP"; }
trap cleanup EXIT
bpftool prog loadall "$OBJ" "$PIN" type xdp pinmaps "$PIN/maps" || exit 1
# Key 0 present in each looked-up map, value 0 (the next key: 0 again).
bpftool map update pinned "$PIN/maps/m_hash" key 0 0 0 0 value 0 0 0 0 0 0 0 0 || exit 1
bpftool map update pinned "$PIN/maps/m_lru" key hex 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 \
	value 0 0 0 0 0 0 0 0 || exit 1
# A 60-byte UDP/IPv4 frame (the programs do not read it).
head -c 60 /dev/zero >"$TMP/pkt"

ns() { # program -> median ns of ROUNDS runs
	local i out
	for ((i = 0; i < ROUNDS; i++)); do
		out=$(bpftool prog run pinned "$PIN/$1" data_in "$TMP/pkt" repeat "$REPEAT" 2>&1)
		echo "$out" | sed -n 's/.*duration (average): \([0-9]*\)ns.*/\1/p'
	done | sort -n | sed -n "$(((ROUNDS + 1) / 2))p"
}

FLOOR=$(ns empty)
echo "host: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-) ($(nproc) CPUs), kernel $(uname -r)"
echo "spectre_v2: $(cat /sys/devices/system/cpu/vulnerabilities/spectre_v2 2>/dev/null)"
echo "spec_rstack_overflow: $(cat /sys/devices/system/cpu/vulnerabilities/spec_rstack_overflow 2>/dev/null)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); repeat $REPEAT, median of $ROUNDS"
printf '%-10s %8s %8s %12s %12s\n' op "x1 ns" "x8 ns" "x1 net" "per op (x8)"
printf '%-10s %8s\n' empty "$FLOOR"
for op in arr pcpu hash lru redir coarse ktime jiffies call atomic alu; do
	a=$(ns "${op}_1")
	b=$(ns "${op}_8")
	printf '%-10s %8s %8s %12s %12.1f\n' "$op" "$a" "$b" "$((a - FLOOR))" \
		"$(echo "($b - $FLOOR) / 8" | bc -l)"
done

echo "(alu: x1 is 8 and x8 is 64 dependent multiply-adds, 2 BPF instructions each)"

