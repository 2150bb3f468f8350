// Drives Debian's Chromium with playwright-core for demo_test.go: a
// newcomer's walk through the demo page of `make demo` (examples/Caddyfile
// in front of examples/flask_app), reading each namespace card as a
// person reads it, then the edge's dashboard and the page on a refused
// origin, with screenshots at a desktop and a phone width.
// Usage: node demo.mjs '<json config>'; prints one JSON result.
//
// Config: {chromium, base, other, screenshots (a directory)}. The result
// has what each step showed, or {error, step} for the step that failed.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const WIDE = { width: 1280, height: 900 }, PHONE = { width: 390, height: 844 };
const out = { steps: {}, screenshots: [] };
let step = "launch";

const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

// card is what a namespace card shows.
const card = (page, id) => page.evaluate((id) => {
  const e = document.getElementById(id);
  return {
    state: e.dataset.state ?? "", category: e.dataset.category ?? "",
    shown: e.querySelector(".state").textContent,
    message: e.querySelector(".message").textContent, action: e.querySelector(".action").textContent,
  };
}, id);

// until waits for a card to show a state (and category, when given).
const until = (page, id, state, category = "", timeout = 20000) => page.waitForFunction(
  ([id, state, category]) => {
    const e = document.getElementById(id);
    return e && e.dataset.state === state && (!category || e.dataset.category === category);
  }, [id, state, category], { timeout, polling: 50 });

async function shoot(page, name, viewport) {
  await page.setViewportSize(viewport);
  const path = `${cfg.screenshots}/${name}-${viewport.width}.png`;
  await page.screenshot({ path, fullPage: true });
  // Usable on a phone: nothing wider than the viewport.
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  out.screenshots.push({ path, width: viewport.width, overflow });
}

try {
  // The demo's certificate is from Caddy's internal CA.
  const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: WIDE });
  const page = await context.newPage();
  const console_ = [];
  page.on("console", (m) => console_.push(m.text()));
  page.on("pageerror", (e) => console_.push("pageerror: " + e.message));
  out.console = console_;

  step = "an anonymous visitor opens the demo";
  await page.goto(cfg.base + "/");
  await until(page, "main", "connected");
  await until(page, "admin", "auth_required", "not_logged_in");
  out.steps.anonymous = { main: await card(page, "main"), admin: await card(page, "admin"),
    dashboardLink: await page.isVisible("#dashboard a") };
  await shoot(page, "demo-anonymous", WIDE);

  step = "a plain user is refused /admin";
  await page.click("#login-user");
  await until(page, "admin", "auth_required", "role_missing");
  await until(page, "main", "connected");
  out.steps.user = { main: await card(page, "main"), admin: await card(page, "admin"),
    dashboardLink: await page.isVisible("#dashboard a") };

  step = "an admin connects to /admin";
  await page.click("#login-admin");
  await until(page, "admin", "connected");
  await until(page, "main", "connected");
  await page.waitForSelector("#dashboard a", { state: "visible", timeout: 10000 });
  await page.click("#stats");
  await page.waitForFunction(() => document.getElementById("stats-result").textContent.includes("connected"), null, { timeout: 10000 });
  out.steps.admin = { main: await card(page, "main"), admin: await card(page, "admin"),
    dashboardLink: await page.getAttribute("#dashboard a", "href"), stats: await page.textContent("#stats-result") };
  await shoot(page, "demo-admin", PHONE);
  await page.setViewportSize(WIDE);

  step = "the flood button trips the message rate limit";
  await page.click("#flood");
  await until(page, "main", "suspended", "rate_limited");
  const suspendedAt = Date.now();
  out.steps.rateLimited = { main: await card(page, "main") };
  await shoot(page, "demo-rate-limited", WIDE);
  await shoot(page, "demo-rate-limited", PHONE);
  await page.setViewportSize(WIDE);
  await until(page, "main", "connected", "", 60000);
  out.steps.rateLimited.waitedMs = Date.now() - suspendedAt;
  out.steps.rateLimited.after = await card(page, "main");
  await page.click("#echo");
  await page.waitForFunction(() => document.getElementById("echo-result").textContent.includes("answered by"), null, { timeout: 10000 });
  out.steps.rateLimited.echo = await page.textContent("#echo-result");

  step = "the app closes the connection";
  await page.click("#kick");
  await until(page, "main", "disconnected", "closed_by_server");
  out.steps.kicked = { main: await card(page, "main") };
  await page.click("#reconnect");
  await until(page, "main", "connected");

  step = "the admin opens the edge's dashboard";
  const dash = await context.newPage();
  const res = await dash.goto(cfg.base + out.steps.admin.dashboardLink);
  await dash.waitForFunction(() => document.body.dataset.state === "live", null, { timeout: 20000, polling: 100 });
  out.steps.dashboard = { status: res.status(), sessions: await dash.textContent("#sessions-total") };
  await shoot(dash, "dashboard", WIDE);
  await shoot(dash, "dashboard", PHONE);

  step = "a page on another origin is refused";
  const other = await context.newPage();
  other.on("console", (m) => console_.push("other: " + m.text()));
  await other.goto(cfg.other + "/");
  await until(other, "main", "cors_error", "origin_not_allowed");
  out.steps.otherOrigin = { main: await card(other, "main"), origin: await other.evaluate(() => location.origin) };
  await shoot(other, "other-origin", WIDE);
  await shoot(other, "other-origin", PHONE);
  await shoot(page, "demo", PHONE);
  step = "done";
} catch (err) {
  out.error = String(err && err.message || err);
  out.step = step;
} finally {
  await browser.close();
}
process.stdout.write(JSON.stringify(out));
