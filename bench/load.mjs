// load.mjs is the benchmark's load generator: the official socket.io-client
// (npm, pinned in package-lock.json) driven against one proxy. The Go
// driver (bench/main.go) starts it once per measurement and reads JSON
// lines from its stdout; for the measurements that need the driver to
// read the proxy's CPU time or memory at the right moment, it waits for a
// line on stdin.
//
// Usage: node bench/load.mjs '<json config>'
//
// Modes (config "mode"):
//   sessions  {url, transport: "polling"|"websocket", sessions, echoes}
//             opens every session at once, each does `echoes` sequential
//             acknowledged echoes, then closes. Prints one line:
//             {"event":"result","completed":k,"backends":{"a":n,"b":n},"failures":[...]}
//             A session completes when every echo came back intact from
//             the one backend that answered its first echo.
//   echo      {url, transport, conns, durationMs, intervalMs, payloadSize}
//             opens `conns` sessions of one transport (default WebSocket)
//             without upgrade, prints {"event":"ready"},
//             waits for "go" on stdin, then each connection does sequential
//             acknowledged echoes for durationMs, starting the next one
//             intervalMs after the previous one started (at once when it
//             is late, or always with intervalMs 0). Prints
//             {"event":"result","echoes":n,"failures":n,"latencyMs":{...},
//              "frames":{"sent":n,"received":n}}
//             where frames are the Engine.IO packets sent and received on
//             all connections during the window (over WebSocket each one
//             frame), and, polling only, "requests": the HTTP requests
//             the clients completed in the window (GET polls and POSTs).
//   idle      {url, transport, conns, batch}
//             opens `conns` sessions of one transport (default WebSocket),
//             `batch` at a time (all at once with batch >= conns),
//             prints {"event":"ready","connected":n,"failed":n,...}, holds
//             them idle until "close" on stdin, then closes them all.
//
// It exits when its stdin closes, so it never outlives the driver.

import { Agent } from "node:http";
import { createInterface } from "node:readline";
import { io } from "socket.io-client";

const cfg = {
  transport: "websocket",
  sessions: 200,
  echoes: 3,
  conns: 50,
  durationMs: 10000,
  intervalMs: 0,
  payloadSize: 64,
  batch: 100,
  timeoutMs: 30000,
  ...JSON.parse(process.argv[2] ?? "{}"),
};

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + "\n");
}

// Lines from the driver; stdin closing means the driver is gone.
const stdin = createInterface({ input: process.stdin });
const lines = [];
const waiting = [];
stdin.on("line", (line) => {
  const w = waiting.shift();
  if (w) w(line.trim());
  else lines.push(line.trim());
});
stdin.on("close", () => process.exit(0));
const nextLine = () => (lines.length > 0 ? Promise.resolve(lines.shift()) : new Promise((resolve) => waiting.push(resolve)));

// A polling client keeps its HTTP connections alive, as a browser does
// (engine.io-client in Node otherwise opens one per request): two, for
// the pending GET and a POST.
function socketFor(transport) {
  return io(cfg.url, {
    transports: [transport],
    ...(transport === "polling" ? { agent: new Agent({ keepAlive: true, maxSockets: 2 }) } : {}),
    upgrade: false,
    forceNew: true,
    reconnection: false,
    autoConnect: false,
    timeout: cfg.timeoutMs,
  });
}

function connect(socket) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("connect timeout")), cfg.timeoutMs);
    socket.once("connect", () => (clearTimeout(timer), resolve()));
    socket.once("connect_error", (err) => {
      clearTimeout(timer);
      const d = err.description;
      const detail = d === undefined ? "" : ` (${d?.message ?? d?.error?.message ?? d})`;
      reject(new Error(err.message + detail));
    });
    socket.connect();
  });
}

function echo(socket, payload) {
  return socket.timeout(cfg.timeoutMs).emitWithAck("echo", payload);
}

function padding(size) {
  return "abcdefghijklmnopqrstuvwxyz0123456789".repeat(Math.ceil(size / 36)).slice(0, size);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

const round = (ms) => Math.round(ms * 1000) / 1000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Opens sockets in batches, so that no proxy's listen backlog is what is
// being measured.
async function openAll(n, transport, batch) {
  const sockets = [];
  const errors = {};
  let failed = 0;
  for (let i = 0; i < n; i += batch) {
    const group = [];
    for (let j = i; j < Math.min(n, i + batch); j++) group.push(socketFor(transport));
    await Promise.all(
      group.map((s) =>
        connect(s).then(
          () => sockets.push(s),
          (err) => {
            failed++;
            errors[err.message] = (errors[err.message] ?? 0) + 1;
            s.disconnect();
          },
        ),
      ),
    );
  }
  return { sockets, failed, errors };
}

async function sessionsMode() {
  const result = { event: "result", sessions: cfg.sessions, completed: 0, backends: {}, failures: {} };
  const fail = (msg) => (result.failures[msg] = (result.failures[msg] ?? 0) + 1);
  const payload = { pad: padding(cfg.payloadSize) };
  await Promise.all(
    Array.from({ length: cfg.sessions }, async () => {
      const s = socketFor(cfg.transport);
      try {
        await connect(s);
        let backend = null;
        for (let k = 0; k < cfg.echoes; k++) {
          const reply = await echo(s, payload);
          if (!reply || reply.data?.pad !== payload.pad) throw new Error("echo came back altered");
          backend ??= reply.backend;
          if (reply.backend !== backend) throw new Error("session answered by two backends");
        }
        result.completed++;
        result.backends[backend] = (result.backends[backend] ?? 0) + 1;
      } catch (err) {
        fail(err.message);
      } finally {
        s.disconnect();
      }
    }),
  );
  emit(result);
}

async function echoMode() {
  const { sockets, failed, errors } = await openAll(cfg.conns, cfg.transport, cfg.batch);
  const frames = { sent: 0, received: 0 };
  let requests = 0;
  let counting = false;
  for (const s of sockets) {
    s.io.engine.on("packetCreate", () => counting && frames.sent++);
    s.io.engine.on("packet", () => counting && frames.received++);
    if (cfg.transport === "polling") {
      // A poll (GET) ends in "pollComplete", a write (POST) in "drain".
      s.io.engine.transport.on("pollComplete", () => counting && requests++);
      s.io.engine.transport.on("drain", () => counting && requests++);
    }
  }
  emit({ event: "ready", connected: sockets.length, failed, errors });
  await nextLine();

  const latencies = [];
  let failures = 0;
  const payload = { pad: padding(cfg.payloadSize) };
  counting = true;
  const start = performance.now();
  const end = start + cfg.durationMs;
  await Promise.all(
    sockets.map(async (s) => {
      // Spread the connections' first echoes over one interval.
      let next = start + Math.random() * cfg.intervalMs;
      await sleep(next - start);
      while (performance.now() < end) {
        const t0 = performance.now();
        try {
          const reply = await echo(s, payload);
          if (reply?.data?.pad !== payload.pad) throw new Error("altered");
          latencies.push(performance.now() - t0);
        } catch {
          failures++;
          return;
        }
        next += cfg.intervalMs;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        else next = performance.now();
      }
    }),
  );
  counting = false;
  latencies.sort((a, b) => a - b);
  emit({
    event: "result",
    connected: sockets.length,
    echoes: latencies.length,
    failures,
    seconds: round((performance.now() - start) / 1000),
    latencyMs: {
      p50: round(percentile(latencies, 50)),
      p99: round(percentile(latencies, 99)),
      max: round(latencies.at(-1) ?? 0),
    },
    frames,
    ...(cfg.transport === "polling" ? { requests } : {}),
  });
  for (const s of sockets) s.disconnect();
}

async function idleMode() {
  const { sockets, failed, errors } = await openAll(cfg.conns, cfg.transport, cfg.batch);
  emit({ event: "ready", connected: sockets.length, failed, errors });
  await nextLine();
  const stillConnected = sockets.filter((s) => s.connected).length;
  for (const s of sockets) s.disconnect();
  emit({ event: "result", connected: sockets.length, stillConnected });
}

const modes = { sessions: sessionsMode, echo: echoMode, idle: idleMode };
if (!modes[cfg.mode] || !cfg.url) {
  process.stderr.write('load: config needs "url" and "mode" (sessions|echo|idle)\n');
  process.exit(2);
}
modes[cfg.mode]().then(
  () => setTimeout(() => process.exit(0), 200),
  (err) => {
    process.stderr.write(`load: ${err.stack ?? err}\n`);
    process.exit(1);
  },
);
