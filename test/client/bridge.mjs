// Drives Debian's Chromium with playwright-core for client_test.go, one
// command per line on stdin, one JSON answer per line on stdout, so the
// Go test decides what happens when (kill a worker, then watch the page).
//
// Start: node bridge.mjs '{"chromium": ..., "userDataDir": ...}'
// Commands: {"op": "open", "page": name, "url": url}
//           {"op": "eval", "page": name, "expr": js}             → {"value": ...}
//           {"op": "wait", "page": name, "expr": js, "timeout": ms} → {"value": ...}
//           {"op": "screenshot", "page": name, "path": file}
//           {"op": "console", "page": name}                      → {"value": [lines]}
// Each answer is {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
import { chromium } from "playwright-core";
import readline from "node:readline";

const cfg = JSON.parse(process.argv[2]);
const browser = await chromium.launch({
  executablePath: cfg.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
const pages = new Map(); // name → {page, console}

async function run(cmd) {
  const p = pages.get(cmd.page);
  switch (cmd.op) {
    case "open": {
      // Each page its own context: its own cookies, as separate users.
      const context = await browser.newContext({ viewport: { width: 900, height: 640 } });
      const page = await context.newPage();
      const lines = [];
      page.on("console", (m) => lines.push(m.text()));
      page.on("pageerror", (e) => lines.push("pageerror: " + e.message));
      pages.set(cmd.page, { page, console: lines });
      await page.goto(cmd.url);
      return null;
    }
    case "eval":
      return await p.page.evaluate(cmd.expr);
    case "wait": {
      const handle = await p.page.waitForFunction(cmd.expr, null, { timeout: cmd.timeout ?? 20000, polling: 50 });
      return await handle.jsonValue();
    }
    case "screenshot":
      await p.page.screenshot({ path: cmd.path, fullPage: true });
      return null;
    case "console":
      return p.console;
  }
  throw new Error("unknown op " + cmd.op);
}

const rl = readline.createInterface({ input: process.stdin });
for await (const line of rl) {
  if (!line.trim()) continue;
  let answer;
  try {
    answer = { ok: true, value: await run(JSON.parse(line)) };
  } catch (err) {
    answer = { ok: false, error: String(err && err.message || err) };
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
}
await browser.close();
