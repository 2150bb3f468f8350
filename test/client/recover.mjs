// Runs recoveryRun (recover-run.mjs) in Node with the official
// socket.io-client, for the connection state recovery tests.
//
// Usage: node test/client/recover.mjs '{"url": ..., "transports": ["polling"] | null,
//                                       "n": 100, "intervalMs": 30, "timeoutMs": 60000}'
// Prints each of recoveryRun's reports as one JSON line on stdout, the
// last being {"event": "result", ...}, then keeps the connection open
// until stdin ends, so the test can read the worker's log before this
// client's own disconnection shows up in it. Lines on stdin other than
// that end are ignored (the browser driver's "offline"/"online" mean
// nothing to Node).
import { io } from "socket.io-client";
import readline from "node:readline";
import { recoveryRun } from "./recover-run.mjs";

const cfg = JSON.parse(process.argv[2]);
const report = (line) => process.stdout.write(JSON.stringify(line) + "\n");
const stdinEnded = new Promise((resolve) => {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", () => {});
  rl.on("close", resolve);
});
await recoveryRun(io, cfg, report);
await stdinEnded;
process.exit(0);
