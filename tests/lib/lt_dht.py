#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""libtorrent 2.0 DHT peer for weft interop tests.

One libtorrent session bound to 127.0.0.1 with every outside feature off,
pointed only at the weft nodes given on the command line. Commands arrive
as JSON lines on stdin, results leave as JSON lines on stdout:
  {"cmd":"put_imm","value":S}            -> {"ev":"put_imm","target":HEX,"num_success":N}
  {"cmd":"get_imm","target":HEX}         -> {"ev":"get_imm","value":S|null}
  {"cmd":"put_mut","pk":HEX,"sk":HEX,"salt":S,"value":S}
                                         -> {"ev":"put_mut","seq":N,"num_success":N}
  {"cmd":"get_mut","pk":HEX,"salt":S}    -> {"ev":"get_mut","value":S|null,"seq":N,"sig":HEX}
  {"cmd":"get_peers","ih":HEX}           -> {"ev":"get_peers","peers":["ip:port",...]}
  {"cmd":"announce","ih":HEX}            -> {"ev":"announce","port":N} (tracker-less torrent)
  {"cmd":"quit"}
Exit 77 with a SKIP line when libtorrent is not installed.
"""
import json
import sys
import tempfile
import atexit
import shutil
import time
import warnings

try:
    import libtorrent as lt
except ImportError:
    print("SKIP: python3-libtorrent not installed", flush=True)
    sys.exit(77)

TIMEOUT = 30.0
warnings.simplefilter("ignore", DeprecationWarning)


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(msg):
    sys.stderr.write("lt_dht: %s\n" % msg)
    sys.stderr.flush()


def make_session(port):
    s = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": True,
        "dht_bootstrap_nodes": "",
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_prefer_verified_node_ids": False,
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1000000,
        "alert_mask": lt.alert.category_t.all_categories,
    }
    return lt.session(s)


def wait_alert(ses, pred, timeout=TIMEOUT):
    end = time.time() + timeout
    while time.time() < end:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            r = pred(a)
            if r is not None:
                return r
    return None


def entry_str(item):
    """Decode the bencoded-string value libtorrent hands back."""
    if item is None:
        return None
    if isinstance(item, dict):  # the 2.0 bindings wrap it as {'key':..., 'value':...}
        item = item.get("value", item.get(b"value"))
    if isinstance(item, bytes):
        return item.decode("latin-1")
    if isinstance(item, str):
        return item
    return None


def main():
    nodes = [a for a in sys.argv[1].split(",") if a]
    port = int(sys.argv[2])
    ses = make_session(port)
    for a in nodes:
        ip, p = a.rsplit(":", 1)
        ses.add_dht_node((ip, int(p)))
    end = time.time() + TIMEOUT
    while time.time() < end and ses.status().dht_nodes < min(len(nodes), 4):
        time.sleep(0.1)
        ses.pop_alerts()
    out({"ev": "ready", "port": ses.listen_port(), "dht_nodes": ses.status().dht_nodes})
    save = tempfile.mkdtemp(prefix="lt_dht_")
    atexit.register(shutil.rmtree, save, True)
    for line in sys.stdin:
        cmd = json.loads(line)
        c = cmd["cmd"]
        if c == "quit":
            break
        if c == "put_imm":
            target = ses.dht_put_immutable_item(cmd["value"].encode("latin-1"))
            n = wait_alert(ses, lambda a: a.num_success if isinstance(a, lt.dht_put_alert)
                           and str(a.target) == str(target) else None)
            out({"ev": "put_imm", "target": str(target), "num_success": n})
        elif c == "get_imm":
            ses.dht_get_immutable_item(lt.sha1_hash(bytes.fromhex(cmd["target"])))
            v = wait_alert(ses, lambda a: [a.item] if isinstance(a, lt.dht_immutable_item_alert)
                           else None)
            out({"ev": "get_imm", "value": entry_str(v[0]) if v else None})
        elif c == "put_mut":
            pk = bytes.fromhex(cmd["pk"])
            sk = bytes.fromhex(cmd["sk"])
            ses.dht_put_mutable_item(sk, pk, cmd["value"].encode("latin-1"),
                                     cmd["salt"].encode("latin-1"))
            r = wait_alert(ses, lambda a: (a.seq, a.num_success)
                           if isinstance(a, lt.dht_put_alert) and a.seq >= 0
                           and bytes(a.public_key) == pk else None)
            out({"ev": "put_mut", "seq": r[0] if r else None,
                 "num_success": r[1] if r else None})
        elif c == "get_mut":
            pk = bytes.fromhex(cmd["pk"])
            ses.dht_get_mutable_item(pk, cmd["salt"].encode("latin-1"))
            r = wait_alert(ses, lambda a: (a.item, a.seq, bytes(a.signature))
                           if isinstance(a, lt.dht_mutable_item_alert) and a.authoritative
                           else None)
            out({"ev": "get_mut", "value": entry_str(r[0]) if r else None,
                 "seq": r[1] if r else None, "sig": r[2].hex() if r else None})
        elif c == "get_peers":
            ses.dht_get_peers(lt.sha1_hash(bytes.fromhex(cmd["ih"])))
            r = wait_alert(ses, lambda a: a.peers() if isinstance(a, lt.dht_get_peers_reply_alert)
                           else None)
            out({"ev": "get_peers",
                 "peers": ["%s:%d" % (p[0], p[1]) for p in (r or [])]})
        elif c == "announce":
            atp = lt.add_torrent_params()
            atp.info_hashes = lt.info_hash_t(lt.sha1_hash(bytes.fromhex(cmd["ih"])))
            atp.save_path = save
            ses.add_torrent(atp)
            out({"ev": "announce", "port": ses.listen_port()})
        else:
            out({"ev": "error", "what": "unknown command %s" % c})
    ses.pause()
    return 0


if __name__ == "__main__":
    sys.exit(main())
