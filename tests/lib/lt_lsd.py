#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""libtorrent 2.0 Local Service Discovery peer for weft interop tests.

  lt_lsd.py ADDR PORT INFOHASH [SECONDS]

One libtorrent session listening on ADDR:PORT with LSD on (DHT, UPnP and
NAT-PMP off) and one torrent added by infohash (a magnet link: no
metadata, so it is not a seed; libtorrent announces it on LSD and takes
LSD peers for it). Prints JSON lines:
  {"ev":"ready","port":N}
  {"ev":"lsd_peer","ip":S,"port":N}  libtorrent heard an LSD announce of
                                     INFOHASH (its lsd_peer alert)
Runs SECONDS (default 60), or until killed.
Exit 77 with a SKIP line when libtorrent is not installed.
"""
import json
import re
import shutil
import sys
import tempfile
import time
import warnings

try:
    import libtorrent as lt
except ImportError:
    print("SKIP: python3-libtorrent not installed", flush=True)
    sys.exit(77)

warnings.simplefilter("ignore", DeprecationWarning)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    addr, port, ih = sys.argv[1], int(sys.argv[2]), sys.argv[3].lower()
    secs = float(sys.argv[4]) if len(sys.argv) > 4 else 60.0
    ses = lt.session({
        "listen_interfaces": "%s:%d" % (addr, port),
        "enable_dht": False,
        "enable_lsd": True,
        "enable_upnp": False,
        "enable_natpmp": False,
        # BEP 14's period is 5 minutes; a test cannot wait that long
        "local_service_announce_interval": 5,
        "alert_mask": lt.alert.category_t.all_categories,
    })
    save = tempfile.mkdtemp(prefix="lt_lsd_")
    try:
        atp = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + ih)
        atp.save_path = save
        ses.add_torrent(atp)
        out({"ev": "ready", "port": ses.listen_port()})
        seen = set()
        end = time.time() + secs
        while time.time() < end:
            ses.wait_for_alert(200)
            for a in ses.pop_alerts():
                # the 2.0 bindings have no lsd_peer_alert class: a plain
                # alert whose what() is "lsd_peer", its message
                # "<infohash> peer [ IP:PORT client: ... ]: received peer
                # from local service discovery"
                if a.what() != "lsd_peer":
                    continue
                m = re.match(r"(\w+) peer \[ ([0-9.]+|\[[0-9a-fA-F:]+\]):(\d+) ", a.message())
                if m and m.group(1).lower() == ih and (m.group(2), m.group(3)) not in seen:
                    seen.add((m.group(2), m.group(3)))
                    out({"ev": "lsd_peer", "ip": m.group(2), "port": int(m.group(3))})
    finally:
        shutil.rmtree(save, True)


main()
