#!/bin/bash
# SPDX-License-Identifier: MIT
# Builds the like-for-like reference of bench/blake3.sh: b3ref (this
# directory), b3sum's hashing path from the blake3 crate b3sum is built from,
# once per SIMD level, as $BUILD/bench/b3ref-{avx512,avx2,sse41,portable}.
# Offline, from Debian's crate sources (librust-blake3-dev, librust-rayon-dev,
# librust-memmap2-dev in /usr/share/cargo/registry; tools/deps.sh) with any
# cargo. Without them it says so and exits 0: the harness then compares
# with b3sum only. Usage: bench/blake3ref/build.sh [BUILD]
set -u
TOP=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-${BUILD:-build}}
case "$BUILD" in /*) ;; *) BUILD="$TOP/$BUILD" ;; esac
REG=/usr/share/cargo/registry
SRC="$TOP/bench/blake3ref"
OUT="$BUILD/bench"

CARGO=$(command -v cargo || true)
[ -n "$CARGO" ] || { echo "b3ref: no cargo: the forced-level reference is not built"; exit 0; }
ls -d "$REG"/blake3-1.* >/dev/null 2>&1 ||
	{ echo "b3ref: no $REG/blake3-* (librust-blake3-dev): reference not built"; exit 0; }

# Built from a copy, so that Cargo.lock (written by whichever cargo runs)
# stays out of the source tree.
mkdir -p "$OUT/b3ref-src/src"
cp "$SRC/Cargo.toml" "$OUT/b3ref-src/"
cp "$SRC/src/main.rs" "$OUT/b3ref-src/src/"
for lv in avx512 avx2 sse41 portable; do
	case $lv in
	avx512) feat="" ;;
	avx2) feat=no_avx512 ;;
	sse41) feat=no_avx512,no_avx2 ;;
	portable) feat=no_avx512,no_avx2,no_sse41,no_sse2 ;;
	esac
	bin="$OUT/b3ref-$lv"
	if [ -x "$bin" ] && [ "$bin" -nt "$SRC/Cargo.toml" ] && [ "$bin" -nt "$SRC/src/main.rs" ]; then
		continue
	fi
	echo "  CARGO    $bin"
	(cd "$OUT/b3ref-src" && "$CARGO" \
		--config 'source.crates-io.replace-with="debian"' \
		--config "source.debian.directory=\"$REG\"" \
		build -q --offline --release --features "$feat" --target-dir "$OUT/b3ref-target") ||
		{ echo "b3ref: cargo build failed for $lv: reference not built"; exit 0; }
	cp "$OUT/b3ref-target/release/b3ref" "$bin.tmp" && mv "$bin.tmp" "$bin"
done
