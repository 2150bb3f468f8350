// scale.mjs is the load of the scale check and the soak (go run ./bench
// -scale, -soak): many long-lived socket.io-client sessions, each sending
// one acknowledged "echo" at a fixed interval, with every message counted.
// The Go driver (bench/scale.go) runs several of these processes, each
// with its share of the sessions, because one Node process has one core.
//
// Usage: node bench/scale.mjs '<json config>'
//
// Config:
//   url           the edge, e.g. "http://127.0.0.1:8080"
//   sessions      sessions this process opens
//   first         index of its first session (session i uses
//                 transportMix[i % transportMix.length])
//   transportMix  e.g. [["websocket"], ["polling"], null]; null is
//                 socket.io-client's default, polling then upgrade
//   batch         sessions opened at once while connecting
//   durationMs    the run: each session sends for this long
//   intervalMs    between the starts of a session's messages
//   ackTimeoutMs  a message not acknowledged within this is lost
//   progressMs    a progress line this often during the run (0: none)
//
// Protocol (JSON lines on stdout; lines from the driver on stdin):
//   {"event":"ready","connected":n,"failed":n,"errors":{...},"workers":{...}}
//                       every session connected (and did one echo) or failed;
//   "go" on stdin       starts the run: every session sends its first
//                       message at its own offset within the first interval;
//   {"event":"progress",...counts}   every progressMs;
//   {"event":"result",...counts, "hist":{...}}   after the run, once every
//                       message is acknowledged or timed out;
//   "close" on stdin    disconnects every session, then
//   {"event":"closed","stillConnected":n}.
// It exits when stdin closes, so it never outlives the driver.
//
// Counts: sent (emitted), acked (ack came back carrying the same session
// and sequence number), timedOut (no ack within ackTimeoutMs), failed (the
// emit failed: session disconnected), altered (an ack carrying another
// message), skipped (a message not sent because its session had dropped),
// disconnects (sessions that dropped during the run, with their reasons),
// moved (an ack from a worker other than the session's first). Round
// trips go into a histogram the driver merges: bucket i < 1000 covers
// [i/10, (i+1)/10) ms, bucket 1000+j covers [100+j, 101+j) ms.

import http from "node:http";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const cfg = {
  sessions: 1000,
  first: 0,
  transportMix: [["websocket"]],
  batch: 50,
  durationMs: 60000,
  intervalMs: 1000,
  ackTimeoutMs: 10000,
  progressMs: 0,
  connectTimeoutMs: 60000,
  ...JSON.parse(process.argv[2] ?? "{}"),
};

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

const stdin = createInterface({ input: process.stdin });
const lines = [];
const waiting = [];
stdin.on("line", (line) => {
  const w = waiting.shift();
  if (w) w(line.trim());
  else lines.push(line.trim());
});
stdin.on("close", () => process.exit(0));
const nextLine = () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((r) => waiting.push(r)));

const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

// Polling requests reuse connections, as a browser's do; without it every
// long-poll and POST would be a new TCP connection.
const agent = new http.Agent({ keepAlive: true, maxSockets: Infinity });

const counts = {
  sent: 0,
  acked: 0,
  timedOut: 0,
  failed: 0,
  altered: 0,
  skipped: 0,
  moved: 0,
  inFlight: 0,
  disconnects: 0,
  disconnectReasons: {},
};
const hist = new Map();
function record(ms) {
  const i = ms < 100 ? Math.floor(ms * 10) : 1000 + Math.min(Math.floor(ms - 100), 60000);
  hist.set(i, (hist.get(i) ?? 0) + 1);
}

function makeSession(i) {
  const transports = cfg.transportMix[i % cfg.transportMix.length];
  const socket = io(cfg.url, {
    transports: transports ?? undefined,
    forceNew: true,
    reconnection: false,
    autoConnect: false,
    timeout: cfg.connectTimeoutMs,
    agent,
  });
  return { i, socket, transports, worker: null, running: false, dropped: false };
}

function connect(s) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connect timeout")), cfg.connectTimeoutMs);
    s.socket.once("connect", () => (clearTimeout(timer), resolve()));
    s.socket.once("connect_error", (err) => {
      clearTimeout(timer);
      const d = err.description;
      const detail = d === undefined || d === null ? "" : ` (${d?.message ?? d?.error?.message ?? d})`;
      reject(new Error(err.message + detail));
    });
    s.socket.connect();
  });
}

async function echo(s, seq) {
  const t0 = performance.now();
  const reply = await s.socket.timeout(cfg.ackTimeoutMs).emitWithAck("echo", { s: s.i, q: seq });
  const ms = performance.now() - t0;
  if (reply?.data?.s !== s.i || reply?.data?.q !== seq) throw Object.assign(new Error("altered"), { altered: true });
  return { ms, worker: reply.worker };
}

async function main() {
  const sessions = Array.from({ length: cfg.sessions }, (_, k) => makeSession(cfg.first + k));
  const errors = {};
  const workers = {};
  let failed = 0;
  const live = [];
  for (let k = 0; k < sessions.length; k += cfg.batch) {
    await Promise.all(
      sessions.slice(k, k + cfg.batch).map(async (s) => {
        try {
          await connect(s);
          // One echo before the run, so every session's worker is known
          // and the run measures steady traffic, not handshakes.
          s.worker = (await echo(s, -1)).worker;
          workers[s.worker] = (workers[s.worker] ?? 0) + 1;
          live.push(s);
        } catch (err) {
          failed++;
          errors[err.message] = (errors[err.message] ?? 0) + 1;
          s.socket.disconnect();
        }
      }),
    );
  }
  for (const s of live) {
    s.socket.on("disconnect", (reason) => {
      if (!s.running || s.dropped) return;
      s.dropped = true;
      counts.disconnects++;
      counts.disconnectReasons[reason] = (counts.disconnectReasons[reason] ?? 0) + 1;
    });
  }
  emit({ event: "ready", connected: live.length, failed, errors, workers });
  await nextLine();

  const start = performance.now();
  const end = start + cfg.durationMs;
  let progress;
  if (cfg.progressMs > 0) {
    progress = setInterval(() => emit({ event: "progress", atMs: Math.round(performance.now() - start), ...counts }), cfg.progressMs);
  }
  await Promise.all(
    live.map(async (s) => {
      s.running = true;
      let next = start + Math.random() * cfg.intervalMs;
      for (let seq = 0; next < end; seq++) {
        await sleep(next - performance.now());
        next += cfg.intervalMs;
        if (s.dropped) {
          counts.skipped++;
          continue;
        }
        counts.sent++;
        counts.inFlight++;
        // Not awaited: a late ack does not delay the next message, as a
        // real client's timer would not wait either.
        echo(s, seq)
          .then(
            ({ ms, worker }) => {
              counts.acked++;
              record(ms);
              if (worker !== s.worker) counts.moved++;
            },
            (err) => {
              if (err.altered) counts.altered++;
              else if (/timed out/.test(err.message)) counts.timedOut++;
              else counts.failed++;
            },
          )
          .finally(() => counts.inFlight--);
      }
    }),
  );
  // Every message ends acknowledged or timed out within ackTimeoutMs.
  while (counts.inFlight > 0) await sleep(50);
  clearInterval(progress);
  emit({
    event: "result",
    sessions: live.length,
    seconds: Math.round(performance.now() - start) / 1000,
    ...counts,
    hist: Object.fromEntries(hist),
  });

  await nextLine();
  const stillConnected = live.filter((s) => s.socket.connected).length;
  for (const s of live) {
    s.running = false;
    s.socket.disconnect();
  }
  // Also the idle keep-alive connections of the polling sessions, so that
  // whatever the edge still holds afterwards is its own.
  agent.destroy();
  emit({ event: "closed", stillConnected });
}

main().then(
  () => setTimeout(() => process.exit(0), 500),
  (err) => {
    process.stderr.write(`scale: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
