#!/bin/sh
# SPDX-License-Identifier: MIT
# Check for, or install, the Debian 12 packages weft builds, runs and tests with.
#   tools/deps.sh check    exit 0 when every package is installed
#   tools/deps.sh install  apt-get install what is missing (root), or print the
#                          exact command and exit 1 (not root)
set -u
PKGS="build-essential pkg-config clang llvm bpftool libbpf-dev libxdp-dev xdp-tools
libelf-dev zlib1g-dev liburing-dev libngtcp2-dev libngtcp2-crypto-gnutls-dev
libgnutls28-dev nettle-dev libssl-dev libsodium-dev liblmdb-dev lmdb-utils libinih-dev libunistring-dev
libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libcmocka-dev
iproute2 nftables iputils-ping curl ethtool b3sum python3 python3-libtorrent python3-websockets ngtcp2-client ngtcp2-server iperf3
golang-go golang-github-lucas-clemente-quic-go-dev coturn aria2
debhelper dpkg-dev fakeroot systemd adduser libcap2-bin util-linux man-db bash-completion
prometheus chromium python3-matplotlib nftables python3-nacl libtorrent-rasterbar-dev
librust-blake3-dev librust-rayon-dev librust-memmap2-dev"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing="$missing $p"
done

case "${1:-check}" in
check)
	[ -z "$missing" ] && exit 0
	echo "weft: missing Debian packages:$missing" >&2
	exit 1
	;;
install)
	if [ -z "$missing" ]; then
		echo "weft: all build and test dependencies are installed"
		exit 0
	fi
	if [ "$(id -u)" -ne 0 ]; then
		echo "weft: these Debian packages are missing:$missing" >&2
		echo "weft: run as root:  apt-get update && apt-get install -y$missing" >&2
		exit 1
	fi
	echo "weft: installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q || exit 1
	# iperf3 asks whether to start a daemon; answer no.
	echo "iperf3 iperf3/start_daemon boolean false" | debconf-set-selections 2>/dev/null
	apt-get install -y -q --no-install-recommends $missing || exit 1
	;;
*)
	echo "usage: $0 check|install" >&2
	exit 2
	;;
esac
