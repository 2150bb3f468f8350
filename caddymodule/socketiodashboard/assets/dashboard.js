// The live dashboard of a socketio_proxy (the socketio_dashboard
// handler). It reads the figures from
// events (Server-Sent Events, one sample a second) or, where EventSource
// is missing, by polling data.json, and derives rates from successive
// samples. Everything from the edge is put in the page as text, never as
// HTML: origins and reasons come from clients.
"use strict";

const REASONS = {
  origin: "an origin edge_cors does not allow (handshake, upgrade or preflight)",
  auth: "flask_session's require without a verified user",
  role: "flask_session's require: a user without the role",
  identity: "a session's request from another user than the one who opened it",
  malformed: "a query or packet python-engineio could read differently",
  sid: "a sid this edge did not seal (old deploy, other sticky_secret, forged)",
  size: "a body or message over max_payload",
  upstream: "the session's worker is unhealthy, or no worker is",
  namespace: "a CONNECT denied by a namespace rule",
  rate: "over a rate limit (429, or WebSocket closed 1008)",
};
const DIRECTIONS = [["client_to_upstream", "from clients"], ["upstream_to_client", "to clients"]];
const TRANSPORTS = [["websocket", "WebSocket"], ["polling", "polling"]];

const $ = (id) => document.getElementById(id);
const num = (n) => Math.round(n).toLocaleString("en-US");
const rateText = (x) => (x < 10 ? x.toFixed(1) : num(x));
function bytesText(x) {
  const units = ["B", "KB", "MB", "GB"];
  let i = 0;
  while (x >= 1000 && i < units.length - 1) { x /= 1000; i++; }
  return (x < 10 && i > 0 ? x.toFixed(1) : Math.round(x)) + " " + units[i];
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = document.createElement("td");
    if (c instanceof Node) td.appendChild(c);
    else if (c && typeof c === "object") {
      td.textContent = c.text;
      if (c.cls) td.className = c.cls;
      if (c.id) td.id = c.id;
    } else td.textContent = c ?? "";
    tr.appendChild(td);
  }
  return tr;
}

function fill(tbody, rows, emptyText, columns) {
  if (rows.length === 0) rows = [row([{ text: emptyText, cls: "empty" }])];
  if (rows.length && rows[0].cells.length === 1 && columns) rows[0].cells[0].colSpan = columns;
  tbody.replaceChildren(...rows);
}

function pill(text, cls) {
  const s = document.createElement("span");
  s.className = "pill " + cls;
  s.textContent = text;
  return s;
}

let prev = null;

// A duration in seconds as a person reads it: "45 s", "2 min", "1.5 h".
function durationText(s) {
  if (s < 120) return num(s) + " s";
  if (s < 7200) return (s % 60 === 0 ? num(s / 60) : (s / 60).toFixed(1)) + " min";
  return (s % 3600 === 0 ? num(s / 3600) : (s / 3600).toFixed(1)) + " h";
}

// Socket.IO connection state recovery: off (window 0, or an edge that
// does not report it) says so; on shows the window, the sessions held
// now and the totals.
function renderRecovery(r) {
  const on = !!r && r.window_seconds > 0;
  $("recovery-section").dataset.recovery = on ? "on" : "off";
  $("recovery-state").textContent = on ? "on" : "off";
  $("recovery-state").className = "pill " + (on ? "ok" : "");
  $("recovery-off").hidden = on;
  $("recovery-figures").hidden = !on;
  $("recovery-window-text").textContent = on ? "(a client that comes back within " + durationText(r.window_seconds) + " finds its session)" : "";
  $("recovery-window").textContent = on ? durationText(r.window_seconds) : "off";
  for (const key of ["held", "recovered", "expired", "overflowed", "refused", "replayed"]) {
    $("recovery-" + key).textContent = num((r && r[key]) || 0);
  }
}

function render(d) {
  const dt = prev ? (Date.parse(d.time) - Date.parse(prev.time)) / 1000 : 0;
  const perSecond = (now, before) => (dt > 0 && before !== undefined ? Math.max(0, now - before) / dt : 0);

  $("sessions-total").textContent = num(d.sessions.total);
  $("sessions-websocket").textContent = num(d.sessions.websocket);
  $("sessions-polling").textContent = num(d.sessions.polling);

  const ups = d.upstreams || [];
  const healthy = ups.filter((u) => u.healthy).length;
  $("workers-healthy").textContent = healthy + " / " + ups.length;
  const opened = (list) => (list || []).reduce((a, u) => a + u.handshakes.total, 0);
  $("handshakes-rate").textContent = rateText(prev ? perSecond(opened(ups), opened(prev.upstreams)) : 0);

  const msgs = (data, dir) => (data.messages[dir] || { total: 0 }).total;
  const inRate = prev ? perSecond(msgs(d, "client_to_upstream"), msgs(prev, "client_to_upstream")) : 0;
  const outRate = prev ? perSecond(msgs(d, "upstream_to_client"), msgs(prev, "upstream_to_client")) : 0;
  $("messages-rate").textContent = rateText(inRate + outRate);
  $("messages-in-rate").textContent = rateText(inRate);
  $("messages-out-rate").textContent = rateText(outRate);

  const refusals = Object.values(d.refusals).reduce((a, b) => a + b, 0);
  const refusalsBefore = prev ? Object.values(prev.refusals).reduce((a, b) => a + b, 0) : undefined;
  $("refusals-total").textContent = num(refusals);
  $("refusals-rate").textContent = rateText(perSecond(refusals, refusalsBefore));

  const most = Math.max(1, ...ups.map((u) => u.sessions));
  fill($("upstreams"), ups.map((u) => {
    const bar = document.createElement("div");
    bar.className = "bar";
    const fillEl = document.createElement("span");
    fillEl.style.width = (100 * u.sessions / most).toFixed(0) + "%";
    bar.appendChild(fillEl);
    // A draining worker (a deploy) is healthy but takes no new session.
    const state = !u.healthy ? pill("down", "bad") : u.draining ? pill("draining", "warn") : pill("healthy", "ok");
    const tr = row([{ text: u.address, cls: "mono" }, state,
      { text: num(u.sessions), cls: "n" }, { text: num(u.websocket), cls: "n" }, { text: num(u.polling), cls: "n" },
      { text: num(u.handshakes.total), cls: "n" }, bar]);
    tr.dataset.upstream = u.address;
    return tr;
  }), "no worker configured", 7);

  const traffic = [];
  for (const [dir, dirName] of DIRECTIONS) {
    for (const [tr, trName] of TRANSPORTS) {
      const m = (d.messages[dir] || {})[tr] || 0;
      const b = (d.bytes[dir] || {})[tr] || 0;
      const mBefore = prev ? ((prev.messages[dir] || {})[tr] || 0) : undefined;
      const bBefore = prev ? ((prev.bytes[dir] || {})[tr] || 0) : undefined;
      traffic.push(row([dirName, trName, { text: rateText(perSecond(m, mBefore)), cls: "n" },
        { text: bytesText(perSecond(b, bBefore)), cls: "n" }, { text: num(m), cls: "n" }]));
    }
  }
  fill($("traffic"), traffic);

  fill($("refusals"), Object.keys(REASONS).map((reason) => {
    const n = d.refusals[reason] || 0;
    const before = prev ? prev.refusals[reason] || 0 : undefined;
    const tr = row([{ text: reason, cls: "mono" }, REASONS[reason], { text: num(n), cls: "n", id: "refusals-" + reason },
      { text: rateText(perSecond(n, before)), cls: "n" }]);
    if (before !== undefined && n > before) tr.className = "fresh";
    return tr;
  }));

  renderRecovery(d.recovery);

  const rules = d.namespaces || {};
  const live = Object.fromEntries((d.live_namespaces || []).map((n) => [n.namespace, n.sessions]));
  const names = [...new Set([...Object.keys(rules), ...Object.keys(live)])].sort((a, b) => a.localeCompare(b));
  $("namespaces-section").hidden = names.length === 0;
  fill($("namespaces"), names.map((ns) => {
    const r = rules[ns] || rules["*"];
    const who = !r ? "public" : r.access === "role" ? "role " + r.roles.join(" or ") : r.access;
    return row([{ text: ns, cls: "mono" }, who, { text: num(live[ns] || 0), cls: "n", id: "namespace-" + ns }]);
  }));

  const seen = new Set((prev ? prev.events : []).map((e) => e.time + e.event + e.remote_ip));
  fill($("events"), (d.events || []).map((e) => {
    const tr = row([new Date(e.time).toLocaleTimeString(), { text: e.event, cls: "mono" }, e.reason, e.remote_ip,
      e.origin, e.user_id, e.namespace, e.module]);
    tr.dataset.event = e.event;
    if (prev && !seen.has(e.time + e.event + e.remote_ip)) tr.className = "fresh";
    return tr;
  }), "none yet", 8);

  $("proxy").textContent = d.serving ? d.path : d.path + " (no socketio_proxy serves it)";
  $("proxy").className = d.serving ? "" : "bad";
  $("updated").textContent = "updated " + new Date(d.time).toLocaleTimeString();
  prev = d;
}

function setStatus(state, text) {
  document.body.dataset.state = state;
  const s = $("status");
  s.textContent = text;
  s.className = "pill " + (state === "live" ? "ok" : state === "connecting" ? "" : "bad");
}

// After the stream failed for good: find out why from data.json. The
// edge's authentication in front of the dashboard (flask_session's
// require) answers 401 or 403 once the session is gone or lost its role.
async function diagnose() {
  try {
    const res = await fetch("data.json", { credentials: "same-origin", cache: "no-store" });
    if (res.status === 401 || res.status === 403) {
      setStatus("refused", "refused (HTTP " + res.status + "): log in again as a user allowed to see this page, then reload it");
      return false;
    }
    return res.ok;
  } catch {
    setStatus("offline", "edge unreachable; retrying");
    return true;
  }
}

function connect() {
  if (!window.EventSource) {
    const poll = async () => {
      if (await diagnose()) {
        const res = await fetch("data.json", { credentials: "same-origin", cache: "no-store" });
        if (res.ok) { render(await res.json()); setStatus("live", "live (polling)"); }
      }
      setTimeout(poll, 2000);
    };
    poll();
    return;
  }
  const es = new EventSource("events");
  es.onmessage = (ev) => {
    render(JSON.parse(ev.data));
    setStatus("live", "live");
  };
  es.onerror = async () => {
    if (es.readyState === EventSource.CONNECTING) {
      setStatus("connecting", "reconnecting…");
      return;
    }
    es.close();
    setStatus("offline", "disconnected");
    if (await diagnose()) setTimeout(connect, 3000);
  };
}

connect();
