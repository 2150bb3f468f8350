// Drives Debian's Chromium with playwright-core for browser_test.go.
// Usage: node driver.mjs '<json config>'; prints one JSON result.
//
// Config: {chromium, userDataDir, edge, pages: [url...], screenshot}
// For each page it loads the page, runs its runAll(edge), and records
// every response from the edge with its Access-Control-Allow-Origin
// field lines as they came off the wire (a page's script cannot read
// them). The first page is screenshotted to config.screenshot.
import { chromium } from "playwright-core";

const cfg = JSON.parse(process.argv[2]);
const context = await chromium.launchPersistentContext(cfg.userDataDir, {
  executablePath: cfg.chromium,
  headless: true,
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
const out = { pages: [] };
try {
  for (const [i, url] of cfg.pages.entries()) {
    const page = await context.newPage();
    const responses = [];
    const pending = [];
    page.on("response", (res) => {
      if (!res.url().startsWith(cfg.edge)) return;
      pending.push(res.headersArray().then((headers) => {
        const acao = headers.filter((h) => h.name.toLowerCase() === "access-control-allow-origin").map((h) => h.value);
        responses.push({ method: res.request().method(), url: res.url(), status: res.status(), acao });
      }));
    });
    const console_ = [];
    page.on("console", (m) => console_.push(m.text()));
    await page.goto(url);
    const result = await page.evaluate((edge) => runAll(edge), cfg.edge);
    if (i === 0 && cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
    await Promise.allSettled(pending);
    await page.close();
    out.pages.push({ url, result, responses, console: console_ });
  }
} finally {
  await context.close();
}
process.stdout.write(JSON.stringify(out));
