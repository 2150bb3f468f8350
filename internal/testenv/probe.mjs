// probe.mjs drives the official socket.io-client against a Socket.IO
// server (a Flask worker or the edge in front of workers) and prints one
// JSON result on stdout. The Go tests (testenv.RunProbe) decide what the
// result means; this script only reports, and exits 0 whenever it could
// run at all. It exits 2 on a bad config and 1 if it crashes.
//
// Usage: node internal/testenv/probe.mjs '<json config>'   (or JSON on stdin)
//
// Config (all but url optional):
//   url           base URL, e.g. "http://127.0.0.1:5001"
//   urls          base URLs; session i uses urls[i % urls.length] (url ignored)
//   path          Engine.IO path, default "/socket.io/"
//   transports    e.g. ["websocket"]; null for the default polling + upgrade
//   transportMix  e.g. [["polling"], ["websocket"], null]; session i uses
//                 transportMix[i % transportMix.length] (transports ignored)
//   namespace     default "/"
//   sessions      concurrent clients, each its own Engine.IO connection; default 1
//   echoes        acknowledged "echo" round trips per session, sequential; default 0
//   payloadSize   length of the padding string in each echo; default 0
//   extraHeaders  request headers, e.g. {"Cookie": "session=..."} (no cookie jar in Node)
//   auth          Socket.IO CONNECT payload
//   upgradeWait   sessions with default transports wait for the upgrade to websocket
//                 before echoing
//   room          every session joins this room, then each sends one "broadcast"
//                 to it and waits until it has received every session's broadcast
//   timeoutMs     deadline for the whole run, default 10000; with durationMs, the
//                 deadline for getting ready (the long run comes on top)
//   reconnection  let the client reconnect after a lost connection; default false
//   reconnectionDelay, reconnectionDelayMax
//                 socket.io-client's backoff, in ms; defaults 1000 and 5000
//   ca            PEM file of a CA to trust for https/wss (verification stays on)
//   keepAlive     polling requests reuse connections and a request that fails on a
//                 reused connection before any answer is sent once more on a new
//                 one, as a browser's are (see BrowserLikePolling); default false:
//                 engine.io-client in Node opens a connection per request, which
//                 costs the client and the server CPU that a long run may lack
//   resendNew     with keepAlive, a request that fails on a new connection before
//                 any answer is sent once more too, and counted apart ("resentNew"):
//                 a browser would not, but Go's HTTP server drops a request it reads
//                 on a connection accepted just before a reload's shutdown began
//                 (golang/go#75591), which a test of reloads must tell from a
//                 request the edge dropped; default false
//   durationMs    long run: once every session is ready, each keeps sending
//                 acknowledged echoes for this long and records a timeline; default 0
//   intervalMs    long run: time between the starts of a session's echoes; default 200
//
// Ready: once every session has connected (and upgraded, and joined, and
// done its echoes, as asked) or failed trying, the probe prints the line
// {"ready":true} on stderr. A test that starts the probe asynchronously
// (testenv.StartProbe) acts on it, e.g. kills a worker.
//
// Long run: each ready session starts its loop at its own offset within
// the first interval, so the echoes of many sessions spread out. An echo
// is skipped while the session is disconnected; with reconnection the
// loop resumes once the client has reconnected. An echo that is not
// acknowledged within 5s, or that the disconnection of its connection
// cuts off ("socket has been disconnected"), is an echo failure. Give
// echoes >= 1 so that every connection's worker is known at ready.
//
// Result:
//   {"sessions": N, "completed": k,
//    "failures": [{"session": i, "stage": "connect|upgrade|join|echo|broadcast|timeout",
//                  "error": "...", "data": ...}],
//    "workers": {"<worker>": sessions answered by it},
//    "transports": {"websocket": n, "polling": n},
//    "latencyMs": {"p50": ..., "p99": ..., "max": ...},
//    "connectErrors": [{"message": ..., "data": ...}],
//    "broadcasts": {"sent": n, "expected": n, "received": n},   (only with room)
//    "timelines": [{"session": i, "transports": [...] or null,     (only with durationMs)
//                   "connects": [{"at": t, "sid": "...", "transport": "polling|websocket",
//                                 "upgradedAt": t, "worker": "...", "acks": n}],
//                   "disconnects": [{"at": t, "reason": "transport close"}],
//                   "connectErrors": [{"at": t, "error": "..."}],
//                   "echoFailures": [{"at": t, "seq": n, "error": "..."}],
//                   "workers": ["...", ...]}],
//    "eventLoopDelayMs": {"p50": ..., "p99": ..., "max": ...},       (only with durationMs)
//    "resent": n,   (only with keepAlive: polling requests sent again on a new
//                    connection after their reused one closed without an answer)
//    "resentNew": n} (only with resendNew: those sent again after a new
//                    connection closed without an answer)
//
// Timeline times are absolute Unix epoch milliseconds (fractional) from a
// monotonic clock, performance.timeOrigin + performance.now(), so that a
// test can compare them with the moment it acted. A connect's sid is the
// Engine.IO sid the client was given, to find the session in the edge's
// log; its worker is the one that answered the first ack on that
// connection, acks counts the acks on it; upgradedAt is 0 without an
// upgrade. A disconnect's reason is socket.io-client's ("transport
// close", "transport error", "ping timeout", ...); connectErrors are
// failed reconnection attempts as well as failed first connects, with
// the cause as in failures. An ack from a worker other than the
// connection's first is an echo failure: the session moved without
// reconnecting. "workers" are the workers that answered the session's
// acks, in the order they first did.
//
// A connect failure's error is err.message plus, for a transport error,
// its cause in parentheses: "xhr poll error (400)", "websocket error
// (Unexpected server response: 403)"; connectErrors keeps err.message as is.
// An Origin header for CORS tests goes in extraHeaders, for both transports.
//
// A session counts as completed when every stage it was asked for
// succeeded. "workers" counts, per worker name reported in acks, the
// sessions it answered (a session that moved, e.g. after a reconnection,
// counts once for each worker). "transports" is each session's transport
// at the end of its run. In a long run, "failures" and "completed" cover
// the stages before ready; what happened later is in the timelines.

import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import { monitorEventLoopDelay } from "node:perf_hooks";
import { isDeepStrictEqual } from "node:util";
import { Fetch, NodeWebSocket } from "engine.io-client";
import { io } from "socket.io-client";

class ConfigError extends Error {}

// Polling requests sent again after their reused connection closed, and
// (with resendNew) after a new one did.
let resent = 0;
let resentNew = 0;
let resendNew = false;

// How many times a request goes out again. Each failure takes a
// connection the server had closed out of the agent's pool, so a request
// meets a new connection after at most as many tries as there were
// pooled connections to that server; a browser retries the same way.
const maxResends = 16;

// BrowserLikePolling is Engine.IO long-polling that treats its
// connections as Chromium and Firefox do: requests go over the keep-alive
// agent's connections, and one that fails on a reused connection before
// any byte of an answer came back (the server closed that idle
// connection as the request left, e.g. the old config's server at a
// `caddy reload`) is sent again, on the next pooled connection or a new
// one.
//
// engine.io-client's own Node polling (xmlhttprequest-ssl 2.1.2, the
// newest 4.0.0 too) means to do the same, but its retry never writes the
// request: the new connection carries no byte and the request hangs
// until the session's ping timeout (bench/reloadrace/xhr-retry.mjs shows
// it). Node's fetch cannot be given the agent. So this transport keeps
// engine.io-client's polling logic (it extends its Fetch transport) and
// replaces only how a request is sent.
class BrowserLikePolling extends Fetch {
  _fetch(data) {
    return new Promise((resolve, reject) => this._send(data, 0, resolve, reject));
  }

  _send(data, tries, resolve, reject) {
    const url = new URL(this.uri());
    const post = data !== undefined;
    const headers = { ...this.opts.extraHeaders };
    if (post) headers["content-type"] = "text/plain;charset=UTF-8";
    const request = url.protocol === "https:" ? https.request : http.request;
    let answered = false;
    const req = request(url, { method: post ? "POST" : "GET", headers, agent: this.opts.agent, ca: this.opts.ca }, (res) => {
      answered = true;
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("error", reject);
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        resolve({ ok: res.statusCode >= 200 && res.statusCode < 300, status: res.statusCode, text: async () => body });
      });
    });
    req.on("error", (err) => {
      if (req.reusedSocket && !answered && tries < maxResends) {
        resent++;
        this._send(data, tries + 1, resolve, reject);
        return;
      }
      if (resendNew && !req.reusedSocket && !answered && tries < maxResends) {
        resentNew++;
        this._send(data, tries + 1, resolve, reject);
        return;
      }
      reject(err);
    });
    req.end(post ? data : undefined);
  }
}

// The transports a session asks for by name, as classes engine.io-client
// accepts, with polling replaced by BrowserLikePolling.
const keepAliveTransport = { polling: BrowserLikePolling, websocket: NodeWebSocket };

function keepAliveTransports(names) {
  return (names ?? ["polling", "websocket"]).map((name) => keepAliveTransport[name]);
}

function readConfig() {
  const text = process.argv[2] ?? readFileSync(0, "utf8");
  let raw;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(`config is not JSON: ${err.message}`);
  }
  const cfg = {
    path: "/socket.io/",
    transports: null,
    transportMix: null,
    namespace: "/",
    sessions: 1,
    echoes: 0,
    payloadSize: 0,
    extraHeaders: {},
    auth: undefined,
    upgradeWait: false,
    room: "",
    timeoutMs: 10000,
    reconnection: false,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 5000,
    ca: "",
    keepAlive: false,
    resendNew: false,
    durationMs: 0,
    intervalMs: 200,
    ...raw,
  };
  const urls = cfg.urls ?? (cfg.url ? [cfg.url] : []);
  if (!Array.isArray(urls) || urls.length === 0 || !urls.every((u) => /^https?:\/\//.test(u))) {
    throw new ConfigError('"url" (or "urls") must be http:// or https:// base URLs');
  }
  cfg.urls = urls.map((u) => u.replace(/\/+$/, ""));
  for (const key of ["sessions", "echoes", "payloadSize", "timeoutMs", "reconnectionDelay", "reconnectionDelayMax", "durationMs", "intervalMs"]) {
    if (!Number.isInteger(cfg[key]) || cfg[key] < 0) throw new ConfigError(`"${key}" must be a non-negative integer`);
  }
  if (cfg.sessions < 1) throw new ConfigError('"sessions" must be at least 1');
  if (cfg.intervalMs < 1) throw new ConfigError('"intervalMs" must be at least 1');
  if (cfg.durationMs > 0 && cfg.room) throw new ConfigError('"room" and "durationMs" cannot be combined');
  const isTransports = (t) => t === null || (Array.isArray(t) && t.every((n) => typeof n === "string"));
  if (!isTransports(cfg.transports)) {
    throw new ConfigError('"transports" must be an array such as ["websocket"] or null');
  }
  if (cfg.transportMix !== null && !(Array.isArray(cfg.transportMix) && cfg.transportMix.length > 0 && cfg.transportMix.every(isTransports))) {
    throw new ConfigError('"transportMix" must be a non-empty array of transports, e.g. [["polling"], null]');
  }
  if (cfg.resendNew && !cfg.keepAlive) throw new ConfigError('"resendNew" needs "keepAlive"');
  resendNew = cfg.resendNew === true;
  if (cfg.keepAlive) {
    for (const t of [cfg.transports, ...(cfg.transportMix ?? [])]) {
      for (const name of t ?? []) {
        if (!keepAliveTransport[name]) throw new ConfigError(`"keepAlive" takes the transports polling and websocket, not ${JSON.stringify(name)}`);
      }
    }
  }
  if (!cfg.namespace.startsWith("/")) throw new ConfigError('"namespace" must start with "/"');
  if (cfg.ca) cfg.caPEM = readFileSync(cfg.ca, "utf8");
  return cfg;
}

// Failures carry the stage they happened in; the run deadline turns
// whatever was pending into a "timeout" failure.
class StageError extends Error {
  constructor(stage, message, data) {
    super(message);
    this.stage = stage;
    this.data = data;
  }
}

function padding(session, seq, size) {
  // Varied rather than constant, so a corrupted or misrouted frame shows.
  const unit = `${session}.${seq}:abcdefghijklmnopqrstuvwxyz0123456789|`;
  return unit.repeat(Math.ceil(size / unit.length)).slice(0, size);
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

const round = (ms) => Math.round(ms * 1000) / 1000;

// Absolute time in Unix epoch milliseconds, from a monotonic clock.
const epoch = () => performance.timeOrigin + performance.now();

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

// How long an echo of the long run may wait for its ack.
const loopAckTimeoutMs = 5000;

// engine.io-client's transport errors ("xhr poll error", "websocket error")
// carry the cause in description: an HTTP status or an Error.
function transportDetail(err) {
  const d = err.description;
  if (d === undefined || d === null) return "";
  const text = typeof d === "object" ? (d.message ?? d.error?.message ?? d.type ?? String(d)) : String(d);
  return text ? ` (${text})` : "";
}

async function main() {
  let cfg;
  try {
    cfg = readConfig();
  } catch (err) {
    process.stderr.write(`probe: ${err.message}\n`);
    process.exit(2);
  }

  const deadline = Date.now() + cfg.timeoutMs;
  const result = {
    sessions: cfg.sessions,
    completed: 0,
    failures: [],
    workers: {},
    transports: {},
    latencyMs: { p50: 0, p99: 0, max: 0 },
    connectErrors: [],
  };
  const latencies = [];
  const sessions = [];

  // Resolves or rejects with the step, rejects if the socket disconnects
  // first (without reconnection), and rejects with a "timeout" failure at
  // the run deadline.
  function step(s, stage, what, run) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new StageError("timeout", `${cfg.timeoutMs}ms deadline passed while waiting for ${what}`)),
        Math.max(0, deadline - Date.now()),
      );
      const onDisconnect = (reason) => {
        if (!cfg.reconnection) reject(new StageError(stage, `disconnected while waiting for ${what}: ${reason}`));
      };
      s.socket.on("disconnect", onDisconnect);
      const done = () => {
        clearTimeout(timer);
        s.socket.off("disconnect", onDisconnect);
      };
      run().then(
        (v) => (done(), resolve(v)),
        (err) => (done(), reject(err instanceof StageError ? err : new StageError(stage, err.message, err.data))),
      );
    });
  }

  function ack(s, stage, event, payload) {
    return step(s, stage, `the ack of "${event}"`, () =>
      s.socket.timeout(Math.max(0, deadline - Date.now()) + 1000).emitWithAck(event, payload),
    );
  }

  function seenWorker(s, reply) {
    if (!reply || typeof reply.worker !== "string") return;
    s.workers.add(reply.worker);
    if (s.conn) {
      s.conn.acks++;
      s.conn.worker ||= reply.worker;
    }
  }

  // Records the session's connects, disconnects and failed connects; the
  // listeners come first, so they see each event before the stages do.
  function track(s) {
    s.timeline = {
      session: s.index,
      transports: s.transports,
      connects: [],
      disconnects: [],
      connectErrors: [],
      echoFailures: [],
    };
    s.socket.on("connect", () => {
      const engine = s.socket.io.engine;
      const conn = { at: epoch(), sid: engine.id, transport: engine.transport.name, upgradedAt: 0, worker: "", acks: 0 };
      s.timeline.connects.push(conn);
      s.conn = conn;
      engine.once("upgrade", () => (conn.upgradedAt = epoch()));
    });
    s.socket.on("disconnect", (reason) => {
      s.conn = null;
      if (!s.closing) s.timeline.disconnects.push({ at: epoch(), reason });
    });
    s.socket.on("connect_error", (err) => {
      if (!s.closing) s.timeline.connectErrors.push({ at: epoch(), error: err.message + transportDetail(err) });
    });
  }

  function connect(s) {
    return step(s, "connect", "connect", () =>
      new Promise((resolve, reject) => {
        s.socket.once("connect", resolve);
        s.socket.on("connect_error", (err) => {
          result.connectErrors.push({ message: err.message, data: err.data ?? null });
          // With reconnection the manager retries transport errors; a
          // refusal by the server (CONNECT_ERROR) is final either way.
          if (!cfg.reconnection || !s.socket.active) {
            reject(new StageError("connect", err.message + transportDetail(err), err.data));
          }
        });
        s.socket.connect();
      }),
    );
  }

  function upgraded(s) {
    return step(s, "upgrade", "the upgrade to websocket", () =>
      new Promise((resolve) => {
        const engine = s.socket.io.engine;
        if (engine.transport.name === "websocket") return resolve();
        engine.once("upgrade", () => resolve());
      }),
    );
  }

  async function echoes(s) {
    for (let seq = 0; seq < cfg.echoes; seq++) {
      const sent = { session: s.index, seq, pad: padding(s.index, seq, cfg.payloadSize) };
      const started = performance.now();
      const reply = await ack(s, "echo", "echo", sent);
      latencies.push(performance.now() - started);
      seenWorker(s, reply);
      if (!reply || !isDeepStrictEqual(reply.data, sent)) {
        throw new StageError("echo", `echo ${seq}: the ack's data differs from what was sent`, reply);
      }
    }
  }

  // Resolves once the socket is connected, or at until.
  function connectedBy(s, until) {
    return new Promise((resolve) => {
      if (s.socket.connected) return resolve();
      const done = () => {
        clearTimeout(timer);
        s.socket.off("connect", done);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, until - epoch()));
      s.socket.on("connect", done);
    });
  }

  // One echo of the long run; its failure goes to the session's timeline.
  async function loopEcho(s, seq) {
    const first = s.conn.worker;
    const sent = { session: s.index, seq, pad: padding(s.index, seq, cfg.payloadSize) };
    const started = performance.now();
    let reply;
    try {
      reply = await s.socket.timeout(loopAckTimeoutMs).emitWithAck("echo", sent);
    } catch (err) {
      s.timeline.echoFailures.push({ at: epoch(), seq, error: err.message });
      return;
    }
    latencies.push(performance.now() - started);
    seenWorker(s, reply);
    let error = "";
    if (!reply || !isDeepStrictEqual(reply.data, sent)) {
      error = "the ack's data differs from what was sent";
    } else if (first && reply.worker !== first) {
      error = `ack from worker ${reply.worker} on a connection first answered by ${first}`;
    }
    if (error) s.timeline.echoFailures.push({ at: epoch(), seq, error });
  }

  // The long run of one session: an echo every intervalMs, from its
  // offset until endAt, waiting out disconnections.
  async function keepEchoing(s, offset, endAt) {
    await sleep(Math.min(offset, endAt - epoch()));
    let seq = cfg.echoes;
    while (epoch() < endAt) {
      if (!s.socket.connected) {
        await connectedBy(s, endAt);
        continue;
      }
      const started = epoch();
      await loopEcho(s, seq++);
      await sleep(Math.min(started + cfg.intervalMs, endAt) - epoch());
    }
  }

  async function runSession(s) {
    await connect(s);
    if (cfg.upgradeWait && s.transports === null) await upgraded(s);
    if (cfg.room) {
      s.socket.on("broadcast", (msg) => {
        if (msg && msg.room === cfg.room && msg.data) s.received.add(msg.data.from);
      });
      seenWorker(s, await ack(s, "join", "join", cfg.room));
    }
    await echoes(s);
  }

  function fail(s, err) {
    s.failed = true;
    result.failures.push({
      session: s.index,
      stage: err.stage ?? "connect",
      error: err.message,
      data: err.data ?? null,
    });
  }

  const agents = cfg.keepAlive
    ? { "http:": new http.Agent({ keepAlive: true }), "https:": new https.Agent({ keepAlive: true, ca: cfg.caPEM || undefined }) }
    : null;
  for (let i = 0; i < cfg.sessions; i++) {
    const url = cfg.urls[i % cfg.urls.length];
    const transports = cfg.transportMix ? cfg.transportMix[i % cfg.transportMix.length] : cfg.transports;
    const socket = io(url + cfg.namespace, {
      path: cfg.path,
      transports: cfg.keepAlive ? keepAliveTransports(transports) : (transports ?? undefined),
      extraHeaders: cfg.extraHeaders,
      auth: cfg.auth,
      reconnection: cfg.reconnection,
      reconnectionDelay: cfg.reconnectionDelay,
      reconnectionDelayMax: cfg.reconnectionDelayMax,
      forceNew: true,
      autoConnect: false,
      timeout: cfg.timeoutMs,
      ca: cfg.caPEM || undefined,
      agent: agents ? agents[new URL(url).protocol] : false,
    });
    const s = { index: i, socket, transports, workers: new Set(), received: new Set(), failed: false, conn: null, closing: false };
    track(s);
    sessions.push(s);
  }

  await Promise.all(sessions.map((s) => runSession(s).catch((err) => fail(s, err))));
  process.stderr.write('{"ready":true}\n');

  if (cfg.durationMs > 0) {
    const endAt = epoch() + cfg.durationMs;
    const live = sessions.filter((s) => !s.failed);
    // How late this process ran its callbacks, which delays every time it
    // records: a busy client sees events late.
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    await Promise.all(live.map((s, k) => keepEchoing(s, (cfg.intervalMs * k) / live.length, endAt)));
    lag.disable();
    result.eventLoopDelayMs = {
      p50: round(lag.percentile(50) / 1e6),
      p99: round(lag.percentile(99) / 1e6),
      max: round(lag.max / 1e6),
    };
    result.timelines = sessions.map((s) => ({ ...s.timeline, workers: [...s.workers] }));
  }

  if (cfg.room) {
    // Only now has every live session joined, so every broadcast can reach all.
    const live = sessions.filter((s) => !s.failed);
    await Promise.all(
      live.map((s) =>
        ack(s, "broadcast", "broadcast", { room: cfg.room, data: { from: s.index } })
          .then((reply) => seenWorker(s, reply))
          .catch((err) => fail(s, err)),
      ),
    );
    const senders = live.filter((s) => !s.failed).map((s) => s.index);
    await Promise.all(
      live
        .filter((s) => !s.failed)
        .map((s) =>
          step(s, "broadcast", "every session's broadcast", () =>
            new Promise((resolve) => {
              const check = () => {
                if (!senders.every((i) => s.received.has(i))) return;
                s.socket.off("broadcast", check);
                resolve();
              };
              s.socket.on("broadcast", check);
              check();
            }),
          ).catch((err) => {
            const missing = senders.filter((i) => !s.received.has(i));
            fail(s, new StageError(err.stage, `${err.message}; missing broadcasts from sessions ${missing.join(", ")}`));
          }),
        ),
    );
    result.broadcasts = {
      sent: senders.length,
      expected: senders.length * live.length,
      received: live.reduce((n, s) => n + senders.filter((i) => s.received.has(i)).length, 0),
    };
  }

  for (const s of sessions) {
    s.closing = true;
    if (!s.failed) result.completed++;
    for (const w of s.workers) result.workers[w] = (result.workers[w] ?? 0) + 1;
    const engine = s.socket.io.engine;
    if (s.socket.connected && engine) {
      const name = engine.transport.name;
      result.transports[name] = (result.transports[name] ?? 0) + 1;
    }
    s.socket.disconnect();
  }

  if (cfg.keepAlive) result.resent = resent;
  if (cfg.resendNew) result.resentNew = resentNew;
  latencies.sort((a, b) => a - b);
  if (latencies.length > 0) {
    result.latencyMs = {
      p50: round(percentile(latencies, 50)),
      p99: round(percentile(latencies, 99)),
      max: round(latencies[latencies.length - 1]),
    };
  }

  process.stdout.write(JSON.stringify(result) + "\n", () => process.exit(0));
}

main().catch((err) => {
  process.stderr.write(`probe: crashed: ${err.stack ?? err}\n`);
  process.exit(1);
});
