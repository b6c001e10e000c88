# SPDX-License-Identifier: MIT
# Source from an integration test: builds network namespaces joined by veth
# pairs to a bridge (itself in a namespace of its own), and removes all of it
# on exit, even when the test fails. Addresses are from the documentation
# ranges (198.51.100.0/24, 2001:db8:77::/64) and exist only inside these namespaces.
#
#   . "$TOP/tests/lib/netns.sh"
#   netns_require_root          # exits 77 (skip) with a message if not root
#   netns_create 3              # hosts $NS_1 $NS_2 $NS_3, IPs 198.51.100.1..3
#   netns_exec 1 cmd...         # run in host 1
#   netns_ip4 2 / netns_ip6 2   # address of host 2
#   netns_ifname 1              # interface name inside host 1 ("eth0")
# Cleanup runs on EXIT (with common.sh's exit hooks when it is sourced);
# add your own with netns_on_exit.

NS_PREFIX="wt$$"
NS_COUNT=0
NS_EXIT_HOOKS=()
NS_TRAP=0 # 1 once netns_create registered the cleanup
NS_V6_LANS=() # "ROUTER PREFIX" of each netns_nat_host_v6

netns_require_root() {
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: $(basename "$0") needs root (network namespaces)"
		exit 77
	fi
	command -v ip >/dev/null || { echo "SKIP: iproute2 missing"; exit 77; }
}

netns_on_exit() { NS_EXIT_HOOKS+=("$*"); }

netns_cleanup() {
	local i h
	for h in "${NS_EXIT_HOOKS[@]}"; do eval "$h" 2>/dev/null; done
	for ((i = 1; i <= NS_COUNT; i++)); do
		ip netns pids "${NS_PREFIX}h$i" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "${NS_PREFIX}h$i" 2>/dev/null
	done
	ip netns del "${NS_PREFIX}br" 2>/dev/null
	NS_COUNT=0
}

# Namespaces a test left when it was killed before its cleanup ran (a CI
# run cut off, a SIGKILL): wt<PID> followed by a letter, where PID is ours
# (a reused PID: it cannot be ours yet) or no live process. Without this a
# later test given the same PID failed at `ip netns add` ("File exists").
# Those of tests still running (their PID alive) are left alone.
_netns_sweep_stale() {
	local ns pid
	for ns in $(ip netns list 2>/dev/null | awk '{print $1}'); do
		[[ $ns =~ ^wt([0-9]+)[a-z] ]] || continue
		pid=${BASH_REMATCH[1]}
		[ "$pid" = "$$" ] || ! kill -0 "$pid" 2>/dev/null || continue
		ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
		ip netns del "$ns" 2>/dev/null && echo "netns: removed $ns, left by a test that did not clean up"
	done
	return 0
}

netns_ip4() { echo "198.51.100.$1"; }
netns_ip6() { echo "2001:db8:77::$1"; }
netns_name() { echo "${NS_PREFIX}h$1"; }
netns_ifname() { echo "eth0"; }
netns_exec() { local n=$1; shift; ip netns exec "${NS_PREFIX}h$n" "$@"; }
# netns_bpffs_exec N DIR: prints a command prefix (for NETNS_EXEC) that runs
# in host N with a private bpffs: `ip netns exec` remounts /sys, hiding
# bpffs, and weftd --xdp needs one for pinning and libxdp's dispatcher.
netns_bpffs_exec() {
	printf '#!/bin/sh\nmount -t bpf bpf /sys/fs/bpf || exit 1\nexec "$@"\n' >"$2/bpffs.sh"
	chmod +x "$2/bpffs.sh"
	echo "ip netns exec ${NS_PREFIX}h$1 $2/bpffs.sh"
}

# netns_create N [pair]: with "pair", two hosts joined directly by one veth
# (no bridge), which XDP tests want (native XDP on veth needs the peer to
# have a program or GRO; the test decides).
netns_create() {
	local n=$1 mode=${2:-bridge} i
	# One EXIT trap: under common.sh the namespaces go with its exit
	# hooks (those registered earlier, such as removing the test's
	# directory, run after them); sourced alone, a trap of our own.
	if [ "$NS_TRAP" = 0 ]; then
		NS_TRAP=1
		if declare -F on_exit >/dev/null; then on_exit netns_cleanup; else trap netns_cleanup EXIT; fi
	fi
	trap 'exit 130' INT TERM
	_netns_sweep_stale
	if [ "$mode" = pair ]; then
		ip netns add "${NS_PREFIX}h1" && ip netns add "${NS_PREFIX}h2" || return 1
		NS_COUNT=2
		ip link add eth0 netns "${NS_PREFIX}h1" type veth peer name eth0 netns "${NS_PREFIX}h2" || return 1
		for i in 1 2; do
			_netns_addr "$i"
		done
		_netns_wait_dad
		return 0
	fi
	NS_BRIDGE_HOSTS=$n
	ip netns add "${NS_PREFIX}br" || return 1
	ip -n "${NS_PREFIX}br" link add br0 type bridge || return 1
	ip -n "${NS_PREFIX}br" link set br0 up
	ip -n "${NS_PREFIX}br" link set lo up
	for ((i = 1; i <= n; i++)); do
		ip netns add "${NS_PREFIX}h$i" || return 1
		NS_COUNT=$i
		ip link add eth0 netns "${NS_PREFIX}h$i" type veth peer name "p$i" netns "${NS_PREFIX}br" || return 1
		ip -n "${NS_PREFIX}br" link set "p$i" master br0
		ip -n "${NS_PREFIX}br" link set "p$i" up
		_netns_addr "$i"
	done
	_netns_wait_dad
}

_netns_addr() {
	local i=$1 ns="${NS_PREFIX}h$1"
	ip -n "$ns" link set lo up
	ip netns exec "$ns" sysctl -qw net.ipv6.conf.eth0.accept_dad=0 2>/dev/null
	ip -n "$ns" addr add "198.51.100.$i/24" dev eth0
	ip -n "$ns" addr add "2001:db8:77::$i/64" dev eth0 nodad
	ip -n "$ns" link set eth0 up
}

# Our namespaces only, through `ip -n` (no /sys remount): `ip -all netns
# exec` entered every namespace on the machine, other tests' included, and
# took minutes on a loaded machine with dozens of them.
_netns_wait_dad() {
	local t i
	for t in $(seq 1 50); do
		for ((i = 1; i <= NS_COUNT; i++)); do
			ip -n "${NS_PREFIX}h$i" -6 addr 2>/dev/null | grep -q tentative && break
		done
		[ "$i" -gt "$NS_COUNT" ] && return 0
		sleep 0.1
	done
}

# netns_nat_host ROUTER HOST SUBNET MASQ: host HOST (a new namespace, address
# SUBNET.2, default route via SUBNET.1) on a LAN behind ROUTER (a bridge
# host), ROUTER masquerading the LAN on its eth0 with the nftables
# statement MASQ ("masquerade", "masquerade fully-random"); nothing inside
# is reachable from outside (no forwarding in). Hosts created this way are
# numbered after the bridge's and removed with them.
netns_nat_host() {
	local r=$1 h=$2 net=$3 masq=$4 rns hns
	rns=$(netns_name "$r")
	hns=$(netns_name "$h")
	ip netns add "$hns" || return 1
	NS_COUNT=$h
	ip link add lan0 netns "$rns" type veth peer name eth0 netns "$hns" || return 1
	ip -n "$rns" addr add "$net.1/24" dev lan0
	ip -n "$rns" link set lan0 up
	ip -n "$hns" link set lo up
	ip -n "$hns" addr add "$net.2/24" dev eth0
	ip -n "$hns" link set eth0 up
	ip -n "$hns" route add default via "$net.1"
	ip netns exec "$rns" sysctl -qw net.ipv4.ip_forward=1
	ip netns exec "$rns" nft -f - <<EOF || return 1
table ip nat {
	chain post {
		type nat hook postrouting priority 100;
		oifname "eth0" ip saddr $net.0/24 $masq
	}
}
EOF
}

# netns_nat_host_v6 ROUTER HOST PREFIX: give HOST (made by netns_nat_host
# behind ROUTER) a global address PREFIX::2/64 too (PREFIX: a /64 of the
# documentation range, e.g. 2001:db8:8), its router PREFIX::1 on the LAN,
# and ROUTER the usual home router's IPv6 behaviour: it forwards without
# NAT, behind a stateful firewall (what the LAN sends passes, and from
# outside only packets of flows it started: established / related;
# everything else is dropped, unanswered). Every other bridge host routes
# PREFIX::/64 via ROUTER's bridge address (netns_ip6 ROUTER). Call it for
# every home before any netns_isp_hop N PREFIX (a hop routes the other
# homes' prefixes too).
netns_nat_host_v6() {
	local r=$1 h=$2 p=$3 rns hns i
	rns=$(netns_name "$r")
	hns=$(netns_name "$h")
	ip -n "$rns" addr add "$p::1/64" dev lan0 nodad || return 1
	ip -n "$hns" addr add "$p::2/64" dev eth0 nodad || return 1
	ip -n "$hns" -6 route add default via "$p::1" || return 1
	ip netns exec "$rns" sh -c 'sysctl -qw net.ipv6.conf.all.forwarding=1 &&
		nft -f -' <<EOF || return 1
table ip6 homefw {
	chain forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "lan0" accept
	}
}
EOF
	for ((i = 1; i <= NS_BRIDGE_HOSTS; i++)); do
		[ "$i" -eq "$r" ] && continue
		ip -n "$(netns_name "$i")" -6 route add "$p::/64" via "$(netns_ip6 "$r")" || return 1
	done
	NS_V6_LANS+=("$r $p")
}

# netns_isp_hop N [PREFIX]: put a router (a new namespace, "${NS_PREFIX}iN")
# between bridge host N and the bridge, as a provider's router sits
# between a home router and the rest of the Internet: every packet N sends
# or gets is forwarded once more (its TTL decremented; one that arrives
# with TTL 1 dies there). N keeps its addresses and on-link routes: the
# hop answers ARP for N on the bridge and for everything else towards N
# (proxy ARP). It takes over N's bridge port pN (a new veth), so
# netns_delay_uplink N still delays what N sends. IPv4, and IPv6 when
# PREFIX is given (N's LAN prefix, netns_nat_host_v6): the hop routes N's
# bridge address and PREFIX::/64 to N and answers neighbour solicitations
# on both sides for the other (proxy NDP: N's address on the bridge side,
# every other bridge host's on N's side).
netns_isp_hop() {
	local n=$1 p6=${2:-} br=${NS_PREFIX}br isp=${NS_PREFIX}i$1 i
	ip netns add "$isp" || return 1
	NS_EXIT_HOOKS+=("ip netns del $isp")
	# Interfaces moved or made in it take these: no DAD on link-local
	# addresses (NDP proxying needs them at once).
	[ -z "$p6" ] || ip netns exec "$isp" sysctl -qw net.ipv6.conf.default.accept_dad=0 || return 1
	ip -n "$br" link set "p$n" nomaster || return 1
	ip -n "$br" link set "p$n" netns "$isp" || return 1
	ip -n "$isp" link set "p$n" name down0 || return 1
	ip -n "$isp" link add up0 type veth peer name "p$n" netns "$br" || return 1
	ip -n "$br" link set "p$n" master br0 || return 1
	ip -n "$br" link set "p$n" up
	ip -n "$isp" link set lo up
	ip -n "$isp" link set up0 up
	ip -n "$isp" link set down0 up
	# One exec for all of it (each `ip netns exec` remounts /sys: slow on a
	# loaded machine). proxy_delay 0: answer ARP for the other side at
	# once (default: up to 0.8 s).
	ip netns exec "$isp" sh -c '
		for i in all up0 down0; do
			sysctl -qw net.ipv4.conf.$i.send_redirects=0 net.ipv4.conf.$i.rp_filter=0
		done
		for i in up0 down0; do
			sysctl -qw net.ipv4.conf.$i.proxy_arp=1 net.ipv4.neigh.$i.proxy_delay=0 || exit 1
			ethtool -K $i tx off gso off tso off tx-udp-segmentation off >/dev/null 2>&1
		done
		sysctl -qw net.ipv4.ip_forward=1' || return 1
	ip -n "$isp" addr add "198.51.100.$((100 + n))/24" dev up0 || return 1
	ip -n "$isp" route add 198.51.101.0/24 dev up0 || return 1
	ip -n "$isp" route add "198.51.100.$n/32" dev down0 || return 1
	[ -n "$p6" ] || return 0
	# proxy_delay 0: answer at once (default: up to 0.8 s).
	ip netns exec "$isp" sysctl -qw net.ipv6.conf.all.forwarding=1 \
		net.ipv6.conf.up0.proxy_ndp=1 net.ipv6.conf.down0.proxy_ndp=1 \
		net.ipv6.neigh.up0.proxy_delay=0 net.ipv6.neigh.down0.proxy_delay=0 || return 1
	{
		echo "route add $(netns_ip6 "$n")/128 dev down0"
		echo "route add 2001:db8:77::/64 dev up0"
		echo "route add $p6::/64 via $(netns_ip6 "$n") dev down0"
		for i in "${NS_V6_LANS[@]}"; do # the other homes' prefixes
			set -- $i
			[ "$1" -eq "$n" ] || echo "route add $2::/64 via $(netns_ip6 "$1") dev up0"
		done
		echo "neigh add proxy $(netns_ip6 "$n") dev up0"
		for ((i = 1; i <= NS_BRIDGE_HOSTS; i++)); do
			[ "$i" -eq "$n" ] || echo "neigh add proxy $(netns_ip6 "$i") dev down0"
		done
	} | ip -n "$isp" -6 -batch - || return 1
}

# netns_delay_uplink N DELAY_MS [STATS]: what host N sends to the bridge is
# held DELAY_MS (tests/lib/delay_line.py, between N's bridge port pN and a
# new veth dN whose peer bN joins the bridge: this kernel has no
# sch_netem; counters to STATS at exit). The delay line copies frames as
# they are: turn GSO and checksum offload off on N's eth0 first.
# Needs $PYTHON and $TOP.
netns_delay_uplink() {
	local n=$1 ms=$2 stats=${3:-} br=${NS_PREFIX}br i
	ip -n "$br" link set "p$n" nomaster || return 1
	ip -n "$br" link add "d$n" type veth peer name "b$n" || return 1
	ip -n "$br" link set "b$n" master br0 || return 1
	for i in "d$n" "b$n"; do
		ip -n "$br" link set "$i" up
		ip netns exec "$br" ethtool -K "$i" tx off gso off tso off \
			tx-udp-segmentation off >/dev/null 2>&1
	done
	ip netns exec "$br" "$PYTHON" "$TOP/tests/lib/delay_line.py" "p$n" "d$n" "$ms" \
		${stats:+--stats "$stats"} &
	eval "NS_DELAY_PID_$n=$!"
	NS_EXIT_HOOKS=("kill $! 2>/dev/null" "${NS_EXIT_HOOKS[@]}")
}

# netns_delay_bypass N: undo netns_delay_uplink N: the delay line stops,
# dN/bN go, and host N's port pN joins the bridge again (no added delay;
# the bridge relearns N's MAC from its next frame, flooding until then).
# Conntrack state in the namespaces is untouched.
netns_delay_bypass() {
	local n=$1 br=${NS_PREFIX}br pid
	eval "pid=\${NS_DELAY_PID_$n:-}"
	[ -n "$pid" ] || return 1
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	eval "NS_DELAY_PID_$n="
	ip -n "$br" link del "d$n" 2>/dev/null
	ip -n "$br" link set "p$n" master br0 || return 1
}

# netns_weftd N MODE DIR [args...]: start weftd in host N, state in DIR/nN,
# QUIC port 4433, DHT 6881, with the io_uring backend (MODE uring) or
# AF_XDP on eth0 in generic mode (MODE xdp; `ip netns exec` remounts /sys,
# hiding bpffs, so XDP gets a private one); extra args follow. Needs
# tests/lib/common.sh. Sets PID<N> and LOG<N> (and leaves NETNS_EXEC set).
netns_weftd() {
	local n=$1 mode=$2 dir=$3 args
	shift 3
	mkdir -p "$dir/n$n"
	if [ ! -x "$dir/bpffs.sh" ]; then
		printf '#!/bin/sh\nmount -t bpf bpf /sys/fs/bpf 2>/dev/null\nexec "$@"\n' >"$dir/bpffs.sh"
		chmod +x "$dir/bpffs.sh"
	fi
	args=(--state-dir "$dir/n$n" --quic-port 4433 --dht-port 6881 --log-level info "$@")
	if [ "$mode" = xdp ]; then
		args+=(--xdp eth0 --xdp-mode generic)
	else
		args+=(--io uring)
	fi
	NETNS_EXEC="ip netns exec $(netns_name "$n") $dir/bpffs.sh"
	start_weftd "$dir/n$n" "${args[@]}"
	eval "PID$n=$WEFTD_PID"
	eval "LOG$n=$WEFTD_LOG"
}
