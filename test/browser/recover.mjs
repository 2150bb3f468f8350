// Runs recoveryRun (test/client/recover-run.mjs) in Debian's Chromium,
// driven by playwright-core, for the connection state recovery tests.
//
// Usage: node test/browser/recover.mjs '{"chromium": ..., "page": url, "client": <recover-run config>}'
// Prints each of recoveryRun's reports as one JSON line on stdout (the
// last {"event": "result", ...}). Commands on stdin, one per line:
//   offline  the page's network goes offline (DevTools' network emulation,
//            Network.emulateNetworkConditions, through context.setOffline);
//            the test cuts its NetCut at the same moment, since the
//            emulation may leave a live WebSocket open
//   online   the network comes back
// When stdin ends, the browser is closed.
import { chromium } from "playwright-core";
import readline from "node:readline";
import { recoveryRun } from "../client/recover-run.mjs";

const cfg = JSON.parse(process.argv[2]);
const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const context = await browser.newContext();
  const page = await context.newPage();
  page.on("console", (m) => report({ event: "console", text: m.text() }));
  page.on("pageerror", (e) => report({ event: "console", text: "pageerror: " + e.message }));
  await page.exposeFunction("__report", report);
  await page.goto(cfg.page);
  page.evaluate(`(${recoveryRun})(window.io, ${JSON.stringify(cfg.client)}, window.__report)`)
    .catch((err) => report({ event: "error", error: String(err && err.message || err) }));
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const cmd = line.trim();
    if (cmd === "offline" || cmd === "online") {
      await context.setOffline(cmd === "offline");
      report({ event: cmd });
    }
  }
} finally {
  await browser.close();
}
