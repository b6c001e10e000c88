// SPDX-License-Identifier: MIT
// weft live dashboard: polls /api/snapshot (same origin) every second and
// fills the page. Text only (textContent), never HTML from the node.
"use strict";
(function () {
  let prev = null, updates = 0;
  const $ = (id) => document.getElementById(id);
  const set = (id, v) => { const e = $(id); if (e) e.textContent = v === undefined || v === null ? "" : String(v); };
  const num = (v) => (typeof v === "number" ? v : 0);
  const sum = (arr, k) => (Array.isArray(arr) ? arr.reduce((a, w) => a + num(w[k]), 0) : 0);
  const rate = (now, before, dt) => (before === undefined || dt <= 0 ? 0 : Math.max(0, (now - before) / dt));
  const fmt = (x) => (x >= 100 ? Math.round(x).toString() : x.toFixed(1));
  // bytes in human units (KiB, MiB...): the dashboard never shows raw byte counts
  const bytes = (x) => {
    const u = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let i = 0;
    x = num(x);
    while (x >= 1024 && i < u.length - 1) { x /= 1024; i++; }
    return (i ? x.toFixed(x >= 100 ? 0 : 1) : Math.round(x).toString()) + " " + u[i];
  };

  // a duration in seconds as weftctl status shows it: "1d 02:03:04"
  const dur = (x) => {
    x = Math.max(0, Math.floor(num(x)));
    const p2 = (v) => String(v).padStart(2, "0");
    return Math.floor(x / 86400) + "d " + p2(Math.floor(x / 3600) % 24) + ":" +
      p2(Math.floor(x / 60) % 60) + ":" + p2(x % 60);
  };

  // the upload history (bytes per second, oldest first) as a polyline
  function plot(hist, cap) {
    const line = $("seed-line"), capl = $("seed-capline");
    if (!line || !Array.isArray(hist) || !hist.length) return;
    const peak = Math.max(1, ...hist.map(num), cap > 0 ? cap : 0);
    const n = hist.length, pts = [];
    for (let i = 0; i < n; i++)
      pts.push((i * 300 / Math.max(1, n - 1)).toFixed(1) + "," + (78 - num(hist[i]) / peak * 74).toFixed(1));
    line.setAttribute("points", pts.join(" "));
    const y = (78 - cap / peak * 74).toFixed(1);
    capl.setAttribute("points", cap > 0 ? "0," + y + " 300," + y : "");
    set("seed-peak", bytes(Math.max(0, ...hist.map(num))));
  }

  function rows(id, items, cells, hot) {
    const body = $(id);
    if (!body) return;
    body.textContent = "";
    for (const it of items) {
      const tr = document.createElement("tr");
      if (hot && hot(it)) tr.className = "hot";
      for (const c of cells(it)) {
        const td = document.createElement("td");
        td.textContent = c === undefined || c === null ? "" : String(c);
        if (typeof c === "number") td.className = "num";
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
  }

  function render(s) {
    const dt = prev ? (s.time_ms - prev.time_ms) / 1000 : 0;
    const st = s.status || {}, rec = st.record || {};
    set("node-key", st.node_key);
    set("node-key-short", st.node_key ? st.node_key.slice(0, 16) + "…" : "");
    set("version", st.version);
    set("io-mode", st.io_mode);
    set("uptime", dur(st.uptime_s));
    set("port-quic", st.ports && st.ports.quic);
    set("port-dht", st.ports && st.ports.dht);
    set("addrs", (rec.addrs || []).join(" "));
    set("reflexive", (st.reflexive || []).map((r) => (typeof r === "string" ? r : r.addr || JSON.stringify(r))).join(" "));
    set("nat", st.nat);

    const x = s.xdp || {}, counters = x.counters || {}, rates = x.rates_per_s || {};
    set("xdp-policy", x.policy || x.mode || "");
    rows("xdp-rows", Object.keys(counters),
      (k) => [k, fmt(num(rates[k])), num(counters[k])],
      (k) => k.startsWith("drop_") && num(rates[k]) > 0);

    const bans = (s.bans && s.bans.bans) || [];
    set("bans-count", bans.length);
    rows("bans-rows", bans.slice(0, 50), (b) => [b.cidr, b.kind, b.expires_in_s === null || b.expires_in_s === undefined ? "never" : dur(b.expires_in_s)]);

    const d = s.dht || {}, pd = (prev && prev.dht) || {};
    const qsum = (q) => Object.values(q || {}).reduce((a, v) => a + num(v), 0);
    set("dht-nodes", num(d.nodes4) + num(d.nodes6));
    set("dht-nodes4", num(d.nodes4));
    set("dht-nodes6", num(d.nodes6));
    set("dht-infohashes", num(d.infohashes));
    set("dht-peers", num(d.peers));
    set("dht-items", num(d.items));
    set("dht-lookups", num(d.lookups));
    set("dht-qin", fmt(rate(qsum(d.queries_in), prev ? qsum(pd.queries_in) : undefined, dt)));
    set("dht-qout", fmt(rate(qsum(d.queries_out), prev ? qsum(pd.queries_out) : undefined, dt)));
    set("dht-timeouts", num(d.timeouts));

    const qw = (s.quic && s.quic.workers) || [], pq = (prev && prev.quic && prev.quic.workers) || [];
    const conns = (s.conns && s.conns.conns) || [];
    set("quic-conns", sum(qw, "conns_active"));
    set("quic-rx", fmt(rate(sum(qw, "rx_datagrams"), prev ? sum(pq, "rx_datagrams") : undefined, dt)));
    set("quic-tx", fmt(rate(sum(qw, "tx_datagrams"), prev ? sum(pq, "tx_datagrams") : undefined, dt)));
    set("quic-established", sum(qw, "conns_established"));
    set("quic-closed", sum(qw, "conns_closed"));
    rows("conn-rows", conns.slice(0, 50), (c) => [
      (c.peer_key || "").slice(0, 16), c.addr,
      Math.round(num(c.rtt_us) / 10) / 100, num(c.streams_open)]);

    const relays = rec.relays || [];
    set("relays-count", relays.length);
    rows("relay-rows", relays, (r) => [(r.key || "").slice(0, 16), r.addr]);

    const c = s.content || {}, pc = (prev && prev.content) || {};
    const shares = (s.shares && s.shares.shares) || [];
    set("content-blobs", num(c.blobs));
    set("content-used", bytes(c.used));
    set("content-quota", num(c.quota) ? bytes(c.quota) : "no quota");
    set("content-shares", shares.length);
    set("content-served", bytes(c.served_bytes));
    set("content-rate", bytes(rate(num(c.served_bytes), prev ? num(pc.served_bytes) : undefined, dt)));

    const sd = s.seed || {}, lim = sd.limits || {};
    set("seed-rate", bytes(sd.upload_bps));
    const au = lim.auto || {}, acap = num(au.cap);
    const fixed = num(lim.upload_rate) ? bytes(lim.upload_rate) + "/s" : "none";
    const ecap = lim.upload_auto && acap && (!num(lim.upload_rate) || acap < num(lim.upload_rate))
      ? acap : num(lim.upload_rate);
    set("seed-cap", lim.upload_auto
      ? "auto (" + (au.state || "?") + (acap ? ", " + bytes(acap) + "/s" : "") + ")" +
        (num(lim.upload_rate) ? " under " + fixed : "")
      : fixed);
    set("seed-queued", num(sd.queued));
    plot(sd.upload_history, ecap);
    rows("seed-rows", (sd.peers || []).slice(0, 50), (p) => [
      p.addr, p.class, bytes(p.rate_bps) + "/s", bytes(p.sent_bytes), num(p.queued), num(p.streams),
      num(p.score)],
      (p) => num(p.score) > 0);
    rows("job-rows", ((s.jobs && s.jobs.jobs) || []).slice(0, 20), (j) => [j.job, j.kind, j.state, j.have]);

    const sv = s.svc || {}, f = sv.fabric || {}, r = sv.router || {}, pf = (prev && prev.svc && prev.svc.fabric) || {};
    const services = (s.services && s.services.services) || [];
    set("svc-count", services.length);
    set("svc-in", num(f.calls_in));
    set("svc-out", num(f.calls_out));
    set("svc-out-ok", num(f.calls_out_ok));
    set("svc-inflight", num(r.inflight));
    set("svc-rate", fmt(rate(num(f.calls_in) + num(f.calls_out),
      prev ? num(pf.calls_in) + num(pf.calls_out) : undefined, dt)));
    const lat = sv.call_latency_us || {}, plat = (prev && prev.svc && prev.svc.call_latency_us) || {};
    const lc = num(lat.count), ls = num(lat.sum);
    set("svc-lat-count", lc);
    set("svc-lat-mean", lc ? (ls / lc / 1000).toFixed(2) : "-");
    let p99 = "-";
    if (lc) {
      for (const k of Object.keys(lat.le || {})) {
        if (num(lat.le[k]) >= 0.99 * lc) { p99 = k === "+Inf" ? "∞" : (Number(k) / 1000).toString(); break; }
      }
    }
    set("svc-lat-p99", p99);
    const dc = lc - num(plat.count);
    set("svc-lat-recent", prev && dc > 0 ? ((ls - num(plat.sum)) / dc / 1000).toFixed(2) : "-");
    rows("svc-rows", Object.keys(r.results || {}), (k) => [k, num(r.results[k])], (k) => k !== "ok" && num(r.results[k]) > 0);
    rows("service-rows", services, (x) => [x.name, x.backend]);

    prev = s;
    updates++;
    set("updates", updates);
    document.body.dataset.updates = String(updates);
    // first and last figures, for a reader (the browser test) to see them move
    const rx = num(counters.rx);
    if (updates === 1) {
      document.body.dataset.firstUptime = String(st.uptime_s);
      document.body.dataset.firstRx = String(rx);
      document.body.dataset.firstTime = String(s.time_ms);
    }
    document.body.dataset.lastUptime = String(st.uptime_s);
    document.body.dataset.lastRx = String(rx);
    document.body.dataset.lastTime = String(s.time_ms);
  }

  async function poll() {
    try {
      const r = await fetch("/api/snapshot", { cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      render(await r.json());
      set("conn-state", "live");
      $("conn-state").className = "state ok";
    } catch (e) {
      set("conn-state", "disconnected");
      $("conn-state").className = "state err";
    }
    setTimeout(poll, 1000);
  }
  poll();
})();
