#!/bin/bash
# SPDX-License-Identifier: MIT
# The Debian package as an operator gets it: `make deb` builds it (once),
# dpkg-deb -c lists what it ships, systemd-analyze verifies the unit, and
# the packaged weftd runs as the unit's user (weft) with exactly the unit's
# ambient capabilities, memlock limit, no_new_privs, system call filter,
# address families, MemoryDenyWriteExecute and /proc subset (seccomp and
# mounts emulated: tests/lib/unit_sandbox.py), the unit's
# ExecStartPre helper giving it its bpffs, in a network namespace: XDP
# attached with pins, AF_XDP answering a DHT ping from the peer namespace,
# the control socket mode 0660 group weft, used by a non-root member of
# group weft.
set -u
. "$TOP/tests/lib/common.sh"
prologue netns
for c in dpkg-buildpackage dh dpkg-deb systemd-analyze setpriv capsh adduser; do
	command -v $c >/dev/null || fail "$c missing (make deps installs debhelper and systemd)"
done

chmod 0755 "$D"

# --- build the package (once)
make --no-print-directory -C "$TOP" BUILD="$BUILD" deb >"$D/build.log" 2>&1 ||
	{ tail -n 30 "$D/build.log"; fail "make deb failed (log above)"; }
DEB=$(ls "$BUILD"/deb/weft_*.deb | head -n 1)
[ -f "$DEB" ] || fail "no .deb in $BUILD/deb"
pass "make deb: $(basename "$DEB")"

# --- contents
dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$D/contents"
for f in /usr/sbin/weftd /usr/bin/weftctl /usr/lib/weft/weft_xdp.bpf.o /etc/weft/weft.conf \
	/lib/systemd/system/weft.service /usr/libexec/weft/weft-bpffs \
	/usr/share/bash-completion/completions/weftctl /usr/share/man/man8/weftd.8.gz \
	/usr/share/man/man8/weftctl.8.gz /usr/share/man/man5/weft.conf.5.gz \
	/usr/bin/weftlab /usr/lib/weft/weftlab-sim /usr/lib/weft/weftlab-aria2 \
	$(cd "$TOP/tools" && ls pylib/weftlab/*.py | sed 's|^|/usr/lib/weft/|') \
	/usr/share/man/man1/weftlab.1.gz /usr/share/bash-completion/completions/weftlab; do
	grep -qx "$f" "$D/contents" || fail "$f not in the package: $(cat "$D/contents")"
done
dpkg-deb -I "$DEB" | grep -q 'postinst' || fail "no postinst (system user)"
R="$D/root"
dpkg-deb -x "$DEB" "$R"
dpkg-deb -e "$DEB" "$R/DEBIAN"
grep -q 'adduser --system --group' "$R/DEBIAN/postinst" || fail "postinst does not create the user"
grep -q '^/etc/weft/weft.conf$' "$R/DEBIAN/conffiles" || fail "weft.conf is not a conffile"
# every key of the table commented with its default, and it parses
"$R/usr/sbin/weftd" -c "$R/etc/weft/weft.conf" --print-config >/dev/null ||
	fail "the packaged weft.conf does not load"
"$R/usr/sbin/weftd" -c /dev/null --print-default-config | grep '^# [a-z_]* =' >"$D/keys"
while read -r line; do
	grep -qxF "$line" "$R/etc/weft/weft.conf" || fail "weft.conf lacks '$line'"
done <"$D/keys"
[ "$(wc -l <"$D/keys")" -ge 40 ] || fail "only $(wc -l <"$D/keys") keys in weft.conf"
# a packaged node is a data-centre host: no BEP 14 multicast on its LAN
grep -qx 'discovery = off' "$R/etc/weft/weft.conf" || fail "the packaged weft.conf leaves lan.discovery on"
"$R/usr/sbin/weftd" -c "$R/etc/weft/weft.conf" --print-config | grep -qx 'discovery = off' ||
	fail "the packaged weft.conf does not turn lan.discovery off"
# weftctl loads libcurl only when it talks to weftd (dlopen): the package
# names it, as dpkg-shlibdeps cannot see it
dpkg-deb -f "$DEB" Depends | tr ',' '\n' | grep -qx ' *libcurl4' ||
	fail "the package does not depend on libcurl4: $(dpkg-deb -f "$DEB" Depends)"
readelf -d "$R/usr/bin/weftctl" | grep -q 'NEEDED.*libcurl' && fail "weftctl links libcurl"
# weftd loads libbpf and libxdp when XDP or AF_XDP is first used (dlopen,
# include/weft/bpflib.h): the package names both
for lib in libbpf1 libxdp1; do
	dpkg-deb -f "$DEB" Depends | tr ',' '\n' | grep -q "^ *$lib\b" ||
		fail "the package does not depend on $lib: $(dpkg-deb -f "$DEB" Depends)"
done
readelf -d "$R/usr/sbin/weftd" | grep -Eq 'NEEDED.*lib(bpf|xdp|elf)' && fail "weftd links libbpf/libxdp/libelf"
"$R/usr/bin/weftctl" hash --kernel >/dev/null || fail "the packaged weftctl does not hash"
"$R/usr/bin/weftlab" --help | grep -q 'weftlab \[--dir DIR\] up' || fail "the packaged weftlab does not run"
"$R/usr/lib/weft/weftlab-aria2" --help | grep -q 'usage: weftlab-aria2' || fail "the packaged weftlab-aria2 does not run"
grep -qw sim "$R/usr/share/bash-completion/completions/weftlab" || fail "the packaged completion lacks sim"
WEFTLAB_SIM="$R/usr/lib/weft/weftlab-sim" "$R/usr/bin/weftlab" --dir "$D/lab" sim --nodes 50 lookups \
	--lookups 20 --seed 1 >/dev/null 2>&1 || fail "the packaged weftlab-sim does not run"
pass "contents: binaries, weftlab, BPF object, unit, helper, man pages, completion, conffile ($(wc -l <"$D/keys") keys)"

# --- the unit
U="$R/lib/systemd/system/weft.service"
# verified against the host's units, with the packaged files' paths (the
# man pages are checked by test_man)
sed "s|=\([+-]*\)/usr/|=\1$R/usr/|" "$U" >"$D/weft.service"
systemd-analyze verify --man=no "$D/weft.service" >"$D/verify" 2>&1 ||
	fail "systemd-analyze verify: $(cat "$D/verify")"
[ -s "$D/verify" ] && fail "systemd-analyze verify: $(cat "$D/verify")"
# Exposure at most 2.0 (--threshold is in tenths: above it, an error).
systemd-analyze security --offline=true --threshold=20 "$D/weft.service" >"$D/security" 2>&1 ||
	fail "systemd-analyze security: exposure above 2.0: $(grep -v '✓' "$D/security")"
SCORE=$(sed -n 's/.*Overall exposure level for weft.service: \([0-9.]*\).*/\1/p' "$D/security")
[ -n "$SCORE" ] || fail "no exposure figure: $(tail -n 3 "$D/security")"
for k in Type=notify StateDirectory=weft RuntimeDirectory=weft User=weft NoNewPrivileges=yes \
	ProtectSystem=strict ProtectHome=yes PrivateTmp=yes LimitMEMLOCK= ExecReload= \
	RestrictAddressFamilies= SystemCallFilter=@system-service; do
	grep -q "^$k" "$U" || fail "unit lacks $k"
done
unit() { sed -n "s/^$1=//p" "$U" | tail -n 1; }
CAPS=$(unit AmbientCapabilities)
[ "$CAPS" = "$(unit CapabilityBoundingSet)" ] || fail "ambient and bounding sets differ"
grep -q '^SystemCallFilter=.*bpf.*io_uring_setup' "$U" || fail "syscall filter lacks bpf/io_uring"
pass "unit verified, systemd-analyze security exposure $SCORE (at most 2.0); capabilities: $CAPS"

# --- run it as the unit does: user weft, exactly $CAPS, memlock, no_new_privs
created=0
if ! getent passwd weft >/dev/null; then
	adduser --system --group --home /var/lib/weft --no-create-home --shell /usr/sbin/nologin \
		weft >/dev/null || fail "cannot create the user weft"
	created=1
fi
[ $created = 1 ] && on_exit "deluser --quiet weft >/dev/null 2>&1; delgroup --quiet weft >/dev/null 2>&1"
setcaps=$(echo "$CAPS" | tr 'A-Z' 'a-z' | sed 's/cap_/+/g; s/ /,/g')
memlock=$(unit LimitMEMLOCK)
[ "$memlock" = infinity ] && memlock=unlimited
case "$memlock" in unlimited | [0-9]*) ;; *) fail "LimitMEMLOCK=$memlock: want infinity or a number" ;; esac

netns_create 2 pair
STATE="$D/state" RUN="$D/run"
mkdir -p "$STATE" "$RUN"
chown weft:weft "$STATE" "$RUN"
chmod 0700 "$STATE"
chmod 0750 "$RUN"
QP=4433 DP=6881
# The host's /sys/fs/bpf is a root-only bpffs; the unit's helper mounts
# weft's own for the pins (ExecStartPre=+, as root).
cat >"$D/unit.sh" <<SH
#!/bin/sh
set -e
mount -t bpf -o mode=0700 bpf /sys/fs/bpf
"$R/usr/libexec/weft/weft-bpffs" mount "$RUN/bpf"
# LimitMEMLOCK= (where the sandbox allows raising the hard limit: this one
# lacks CAP_SYS_RESOURCE, then the hard limit it has)
ulimit -l $memlock 2>/dev/null || ulimit -l \$(ulimit -Hl)
# ProtectProc=invisible, ProcSubset=pid: a /proc of processes only
mount -t proc -o hidepid=invisible,subset=pid proc /proc
# SystemCallFilter=, RestrictAddressFamilies=, MemoryDenyWriteExecute=
# (no systemd as PID 1 here: the helper builds the same seccomp filter)
exec /usr/bin/python3 "$TOP/tests/lib/unit_sandbox.py" "$U" -- setpriv --reuid=weft --regid=weft --init-groups \\
	--bounding-set=-all,$setcaps --inh-caps=-all,$setcaps --ambient-caps=-all,$setcaps \\
	--no-new-privs env -i PATH=/usr/bin:/bin STATE_DIRECTORY="$STATE" RUNTIME_DIRECTORY="$RUN" \\
	"$R/usr/sbin/weftd" -c "$R/etc/weft/weft.conf" --set xdp.pin_root="$RUN/bpf" \\
	--xdp eth0 --xdp-mode generic --workers 1 --quic-port $QP --dht-port $DP
SH
chmod +x "$D/unit.sh"
ip netns exec "$(netns_name 1)" "$D/unit.sh" >"$D/weftd.log" 2>&1 &
PID=$!
on_exit "kill_job -9 $PID"
SOCK="$RUN/weftd.sock"
wait_for "[ -S '$SOCK' ] && curl -sf --unix-socket '$SOCK' http://weftd/v1/status >/dev/null" 300 ||
	{ cat "$D/weftd.log"; fail "weftd did not come up as user weft with $CAPS"; }
WPID=$(pgrep -P "$PID" weftd || echo "$PID")
st=/proc/$WPID/status
[ "$(stat -c %U "/proc/$WPID")" = weft ] || fail "weftd not running as weft"
eff=$(awk '/^CapEff/{print $2}' "$st")
have=$(capsh --decode="$eff" | sed 's/.*=//' | tr ',' '\n' | sort | tr '\n' ' ')
want=$(echo "$CAPS" | tr 'A-Z' 'a-z' | tr ' ' '\n' | sort | tr '\n' ' ')
[ "$have" = "$want" ] || fail "effective capabilities '$have', the unit's '$want'"
grep -q '^NoNewPrivs:.*1' "$st" || fail "no_new_privs not set"
grep -q '^Seccomp:.*2' "$st" || fail "no seccomp filter"
pass "weftd runs as weft with CapEff $eff ($CAPS), no_new_privs, the unit's system call filter, address families, MemoryDenyWriteExecute and /proc subset"

# --- the control socket: /run/weft, 0660, group weft; a group member uses it
[ "$(stat -c '%a %G' "$SOCK")" = "660 weft" ] || fail "socket $(stat -c '%a %G' "$SOCK")"
gid=$(getent group weft | cut -d: -f3)
out=$(setpriv --reuid=65534 --regid=65534 --groups="$gid" "$R/usr/bin/weftctl" --socket "$SOCK" --json status) ||
	fail "a member of group weft cannot use weftctl"
[ "$(echo "$out" | json_get io_mode)" = xdp ] || fail "io_mode: $out"
[ "$(echo "$out" | json_get state_dir)" = "$STATE" ] || fail "state_dir (STATE_DIRECTORY): $out"
setpriv --reuid=65534 --regid=65534 --clear-groups "$R/usr/bin/weftctl" --socket "$SOCK" status \
	>/dev/null 2>&1 && fail "a user outside group weft reached the socket"
pass "control socket 0660 group weft; a group member uses weftctl, others cannot"

# --- XDP attached, maps pinned where xdp status says
x=$("$R/usr/bin/weftctl" --socket "$SOCK" --json xdp status) || fail "xdp status"
pin=$(echo "$x" | json_get pin_dir)
case "$pin" in "$RUN/bpf/"*) ;; *) fail "pin_dir '$pin' not under $RUN/bpf: $x" ;; esac
nsenter -t "$WPID" -m ls "$pin" | grep -q . || fail "nothing pinned in $pin"
ip -n "$(netns_name 1)" link show eth0 | grep -q 'xdp' || fail "no XDP program on eth0"
# loaded on first use, under the unit's sandbox (dlopen: include/weft/bpflib.h)
grep -q '/libxdp\.so' "/proc/$WPID/maps" || fail "XDP attached but libxdp not mapped: how?"
pass "XDP attached (libbpf and libxdp loaded on first use), maps pinned in $pin"

# --- AF_XDP: a DHT ping from the peer namespace is answered
cat >"$D/ping.py" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(1.0)
q = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:pk1:y1:qe"
for _ in range(10):
    s.sendto(q, (sys.argv[1], int(sys.argv[2])))
    try:
        r, _a = s.recvfrom(2048)
    except socket.timeout:
        continue
    if b"1:y1:r" in r and b"2:pk" in r:
        print("pong")
        sys.exit(0)
sys.exit(1)
PY
netns_exec 2 "$PYTHON" "$D/ping.py" "$(netns_ip4 1)" $DP >/dev/null ||
	{ cat "$D/weftd.log"; fail "no DHT answer over AF_XDP"; }
rx=$("$R/usr/bin/weftctl" --socket "$SOCK" --json io stats)
[ "$(echo "$rx" | json_get mode)" = xdp ] || fail "io stats: not AF_XDP: $rx"
pass "AF_XDP: DHT ping answered through the XDP program and the AF_XDP socket"

# --- reload (ExecReload: SIGHUP) and a clean stop
kill -HUP "$WPID"
wait_for "grep -q 'reloaded\|configuration' '$D/weftd.log'" 50 || fail "no reload line"
kill -TERM "$WPID"
wait "$PID" || fail "weftd exit status $? on SIGTERM: $(tail -n 5 "$D/weftd.log")"
[ -e "$SOCK" ] && fail "socket left behind"
ip netns exec "$(netns_name 1)" "$R/usr/libexec/weft/weft-bpffs" umount "$RUN/bpf" || fail "helper umount"
pass "SIGHUP reload, SIGTERM clean stop"
finish
