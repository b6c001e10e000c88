# SPDX-License-Identifier: MIT
"""weftlab run community (docs/LAB.md, docs/COMMUNITY.md): every node but
the last joins one community and binds a share; once they all see each
other, the last node joins and the time until it sees every member and
share is measured; then one member binds a new share and the gossip it
costs (envelopes and stream bytes, summed over the nodes' metrics) is
measured until every node has it. Measured, never asserted."""
import concurrent.futures as cf
import time

from .common import api, fmt, log, metric_sums, table


def seen(lab, i, cid):
    """(members present, shares) node i sees in the community."""
    c = api(lab.sock(i), "GET", "/v1/community/" + cid, timeout=15)
    return c["members"], c["shares"]


def wait_all(lab, nodes, cid, want, timeout, pool):
    """Seconds until every node in nodes sees want (members, shares), or
    None; polled every 0.2 s."""
    t0 = time.time()
    left = set(nodes)
    while left and time.time() - t0 < timeout:
        got = list(pool.map(lambda i: (i, seen(lab, i, cid)), sorted(left)))
        for i, s in got:
            if s[0] >= want[0] and s[1] >= want[1]:
                left.discard(i)
        if left:
            time.sleep(0.2)
    return None if left else time.time() - t0


GOSSIP = ["weft_community_gossip_sent_total", "weft_community_gossip_received_total",
          "weft_community_gossip_bytes_total", "weft_community_pulls_total"]


def run_community(lab, a, rng):
    nodes = sorted(lab.nodes())
    if len(nodes) < 3:
        raise SystemExit("weftlab run community: at least 3 nodes")
    newcomer = nodes[-1]
    members = nodes[:-1]
    keys = {i: api(lab.sock(i), "GET", "/v1/status")["node_key"] for i in nodes}
    c = api(lab.sock(members[0]), "POST", "/v1/community/create",
            {"name": "lab%d" % rng.randrange(1 << 30)})
    cid, ckey = c["id"], c["key"]
    log("community %s: %d members, newcomer node %d" % (cid, len(members), newcomer))
    with cf.ThreadPoolExecutor(16) as pool:
        def join(i):
            if i != members[0]:
                api(lab.sock(i), "POST", "/v1/community/join", {"id": cid, "key": ckey},
                    timeout=30)
            api(lab.sock(i), "POST", "/v1/community/%s/shares" % cid,
                {"head": "%s/lab-share-%d" % (keys[i], i)}, timeout=30)
        t0 = time.time()
        list(pool.map(join, members))
        converge_s = wait_all(lab, members, cid, (len(members), len(members)), a.timeout, pool)
        log("members converged: %s" % fmt(converge_s, " s", 1))
        api(lab.sock(newcomer), "POST", "/v1/community/join", {"id": cid, "key": ckey})
        newcomer_s = wait_all(lab, [newcomer], cid, (len(nodes), len(members)), a.timeout, pool)
        log("newcomer sees everyone: %s" % fmt(newcomer_s, " s", 2))
        # everyone learns the newcomer (it pulled from them: they pull back)
        all_s = wait_all(lab, nodes, cid, (len(nodes), len(members)), a.timeout, pool)
        before = dict(pool.map(lambda i: (i, metric_sums(lab.sock(i), GOSSIP)), nodes))
        who = rng.choice(members)
        t1 = time.time()
        api(lab.sock(who), "POST", "/v1/community/%s/shares" % cid,
            {"head": "%s/lab-new-share" % keys[who]})
        share_s = wait_all(lab, nodes, cid, (len(nodes), len(members) + 1), a.timeout, pool)
        after = dict(pool.map(lambda i: (i, metric_sums(lab.sock(i), GOSSIP)), nodes))
    d = {n: sum(after[i][n] - before[i][n] for i in nodes) for n in GOSSIP}
    per = {n: d[n] / len(nodes) for n in GOSSIP}
    res = {"nodes": len(nodes), "community": cid, "members_converge_s": converge_s,
           "setup_s": time.time() - t0, "newcomer_sees_all_s": newcomer_s,
           "all_see_newcomer_s": all_s, "new_share_everywhere_s": share_s,
           "new_share_from": who, "t_share": t1,
           "gossip_envelopes_sent": d[GOSSIP[0]], "gossip_envelopes_received": d[GOSSIP[1]],
           "gossip_stream_bytes": d[GOSSIP[2]], "pulls_meanwhile": d[GOSSIP[3]],
           "per_member": {"envelopes_sent": per[GOSSIP[0]],
                          "envelopes_received": per[GOSSIP[1]],
                          "stream_bytes_sent_and_received": per[GOSSIP[2]]}}
    print(table(["nodes", "members converge", "newcomer sees all", "all see newcomer",
                 "new share everywhere", "envelopes/member", "bytes/member"],
                [[len(nodes), fmt(converge_s, " s", 1), fmt(newcomer_s, " s", 2),
                  fmt(all_s, " s", 1), fmt(share_s, " s", 2),
                  "%.2f sent, %.2f received" % (per[GOSSIP[0]], per[GOSSIP[1]]),
                  "%.0f" % per[GOSSIP[2]]]]))
    return res
