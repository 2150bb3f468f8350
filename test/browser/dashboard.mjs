// Drives Debian's Chromium with playwright-core for dashboard_test.go: an
// admin watches the socketio_dashboard while this script, with the
// official Node socket.io-client, opens sessions, sends messages, gets
// a namespace refused and closes the sessions again; then a plain user
// and an anonymous visitor open the dashboard.
// Usage: node dashboard.mjs '<json config>'; prints one JSON result.
//
// Then a 390 px wide page of the admin's is given a sample with
// connection state recovery on, to see the Recovery panel render it.
//
// Config: {chromium, edge, dashboard (path, with its trailing slash),
// screenshot}. The result has what the admin's page showed at each step,
// or {error, step} for the step that failed.
import { chromium } from "playwright-core";
import { io } from "socket.io-client";

const cfg = JSON.parse(process.argv[2]);
const WAIT = { timeout: 20000, polling: 100 };
const out = { steps: [] };
let step = "launch";

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const sockets = [];

// What the admin's dashboard shows, read from the page as a person reads it.
const readPage = (page) => page.evaluate(() => {
  const text = (id) => document.getElementById(id).textContent;
  const rows = (id) => [...document.querySelectorAll("#" + id + " tr")];
  return {
    state: document.body.dataset.state,
    status: text("status"),
    proxy: text("proxy"),
    sessions: { total: +text("sessions-total"), websocket: +text("sessions-websocket"), polling: +text("sessions-polling") },
    workersHealthy: text("workers-healthy"),
    messagesRate: parseFloat(text("messages-rate").replace(/,/g, "")),
    upstreams: rows("upstreams").filter((tr) => tr.dataset.upstream).map((tr) => ({
      address: tr.dataset.upstream, health: tr.cells[1].textContent,
      sessions: +tr.cells[2].textContent, websocket: +tr.cells[3].textContent, polling: +tr.cells[4].textContent,
    })),
    refusals: Object.fromEntries(rows("refusals").map((tr) => [tr.cells[0].textContent, +tr.cells[2].textContent])),
    events: rows("events").filter((tr) => tr.dataset.event).map((tr) => ({
      event: tr.dataset.event, reason: tr.cells[2].textContent, user: tr.cells[5].textContent, namespace: tr.cells[6].textContent,
      module: tr.cells[7].textContent,
    })),
    recovery: readRecovery(),
  };
  // The Recovery panel as it is shown: what is visible, and whether it
  // fits its width (no horizontal scrolling, every figure on screen).
  function readRecovery() {
    const section = document.getElementById("recovery-section");
    const shown = (id) => document.getElementById(id).getClientRects().length > 0;
    const figures = {};
    for (const k of ["window", "held", "recovered", "expired", "overflowed", "refused", "replayed"]) {
      if (shown("recovery-" + k)) figures[k] = text("recovery-" + k);
    }
    const right = Math.max(...[...section.querySelectorAll("h2, dd, dt, p")].filter((e) => e.getClientRects().length)
      .map((e) => e.getBoundingClientRect().right));
    return {
      state: section.dataset.recovery, pill: text("recovery-state"), shown: shown("recovery-section"),
      offShown: shown("recovery-off"), offText: text("recovery-off"), figures,
      fits: section.scrollWidth <= section.clientWidth && right <= document.documentElement.clientWidth,
      pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
    };
  }
});

function connect(namespace, transport) {
  return new Promise((resolve) => {
    const s = io(cfg.edge + namespace, { transports: [transport], reconnection: false, timeout: 10000, forceNew: true });
    sockets.push(s);
    s.on("connect", () => resolve({ ok: true, socket: s }));
    s.on("connect_error", (err) => resolve({ ok: false, message: err.message, data: err.data }));
  });
}

try {
  step = "admin logs in and opens the dashboard";
  const admin = await browser.newContext();
  const login = await admin.request.post(cfg.edge + "/login", { data: { username: "root", role: "admin" } });
  if (!login.ok()) throw new Error("admin login: " + login.status());
  const page = await admin.newPage();
  const res = await page.goto(cfg.edge + cfg.dashboard);
  out.adminStatus = res.status();
  await page.waitForFunction(() => document.body.dataset.state === "live", null, WAIT);
  // A second sample, so rates have a baseline.
  await page.waitForTimeout(1500);
  out.before = await readPage(page);

  step = "sessions open";
  const opened = [];
  for (const transport of ["websocket", "websocket", "polling"]) opened.push(await connect("/", transport));
  if (!opened.every((o) => o.ok)) throw new Error("a session did not connect: " + JSON.stringify(opened.map((o) => o.message)));
  // Traffic, so the message rate is not zero.
  const chatter = setInterval(() => { for (const o of opened) o.socket.emit("echo", "hi"); }, 50);
  await page.waitForFunction((before) => {
    const n = (id) => +document.getElementById(id).textContent;
    return n("sessions-total") >= before.total + 3 && n("sessions-websocket") >= before.websocket + 2 &&
      n("sessions-polling") >= before.polling + 1 && parseFloat(document.getElementById("messages-rate").textContent) > 0;
  }, out.before.sessions, WAIT);
  out.open = await readPage(page);
  clearInterval(chatter);

  step = "a namespace is refused";
  out.refused = await connect("/admin", "websocket");
  delete out.refused.socket;
  await page.waitForFunction(() => document.querySelector('#events tr[data-event="namespace_denied"]') &&
    +document.getElementById("refusals-namespace").textContent > 0, null, WAIT);
  out.afterRefusal = await readPage(page);
  if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });

  step = "the recovery panel renders what the data say, on a 390 px wide screen";
  // The edge runs without connection state recovery (the panel says
  // off); a phone-sized page is given a sample with recovery on, as the
  // events stream would send it.
  const sample = await (await admin.request.get(cfg.edge + cfg.dashboard + "data.json")).json();
  sample.recovery = { window_seconds: 120, held: 3, recovered: 1234, expired: 5, overflowed: 2, refused: 7, replayed: 98765 };
  const phone = await admin.newPage();
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.route(cfg.edge + cfg.dashboard + "events", (route) => route.fulfill({
    status: 200, headers: { "Content-Type": "text/event-stream", "Cache-Control": "no-store" },
    body: "retry: 60000\ndata: " + JSON.stringify(sample) + "\n\n",
  }));
  await phone.goto(cfg.edge + cfg.dashboard);
  await phone.waitForFunction(() => document.getElementById("recovery-section").dataset.recovery === "on", null, WAIT);
  out.recoveryOn = (await readPage(phone)).recovery;
  if (cfg.screenshot) {
    await phone.locator("#recovery-section").screenshot({ path: cfg.screenshot.replace(/\.png$/, "") + "-recovery-390px.png" });
  }
  await phone.close();

  step = "sessions close";
  for (const s of sockets) s.disconnect();
  await page.waitForFunction((before) => +document.getElementById("sessions-total").textContent === before.total,
    out.before.sessions, WAIT);
  out.closed = await readPage(page);

  step = "a plain user is refused";
  const user = await browser.newContext();
  await user.request.post(cfg.edge + "/login", { data: { username: "bob", role: "user" } });
  // flask_session's 401 has no body, which Chromium shows as an error
  // page of its own: ask with the context's cookies instead.
  const userRes = await user.request.get(cfg.edge + cfg.dashboard);
  out.user = { status: userRes.status(), text: await userRes.text() };
  await page.waitForFunction((before) => [...document.querySelectorAll('#events tr[data-event="role_denied"]')]
    .some((tr) => tr.cells[5].textContent === "bob") &&
    +document.getElementById("refusals-role").textContent > before, out.before.refusals.role, WAIT);
  out.afterUser = await readPage(page);

  step = "an anonymous visitor is asked to log in";
  const anon = await browser.newContext();
  const anonRes = await anon.request.get(cfg.edge + cfg.dashboard);
  out.anonymous = { status: anonRes.status(), text: await anonRes.text() };
  out.anonymousData = (await anon.request.get(cfg.edge + cfg.dashboard + "data.json")).status();
  step = "done";
} catch (err) {
  out.error = String(err);
} finally {
  out.step = step;
  for (const s of sockets) s.close();
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
