// The client half of the connection state recovery tests, run by
// recover.mjs in Node and by test/browser/recover.mjs in Chromium (which
// sends this function's source into the page, so it must not use anything
// from outside its own body).
//
// recoveryRun(io, cfg, report) connects with socket.io-client's io to
// cfg.url, reconnecting after a lost connection with short fixed delays
// (200 ms, at most 500 ms, no randomization), and asks the worker for a
// numbered stream: it emits `count` {n: cfg.n, interval_ms: cfg.intervalMs}
// and records every `n` event it receives (calling the ack of those that
// ask for one). On every connect it notes socket.recovered: a recovered
// reconnection continues the same run, a new session starts a new run,
// since the stream of the old one is gone with it. It reports progress by
// calling report with one object:
//
//   {event: "connect", id, recovered, transport, at}
//   {event: "counting", run, id}   the worker acknowledged `count`: the
//                                  stream is running; the test cuts now
//   {event: "disconnect", reason, at}
//   {event: "result", result}      once the latest run's `count_done` came
//                                  and `count_acks` answered, or at
//                                  cfg.timeoutMs (result.timedOut)
//
// result: {connects: [{id, recovered, transport, at}],
//          disconnects: [{reason, at}], connectErrors: [message...],
//          runs: [{connect, id, received: [i in arrival order],
//                  duplicates: [i...], done, withOffset}],
//          clientAcked: [i...], workerAcks: [i...] (count_acks of the last
//          session), badBinary: [i...], timedOut}
// withOffset counts the events of a run whose last argument was a string,
// which is where a recovering server puts its offset. Times are ms since
// the start.
export function recoveryRun(io, cfg, report) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const out = {
      connects: [], disconnects: [], connectErrors: [], runs: [],
      clientAcked: [], ackedBeforeDrop: [], workerAcks: null, badBinary: [], timedOut: false,
    };
    const opts = {
      reconnection: true, reconnectionDelay: 200, reconnectionDelayMax: 500,
      randomizationFactor: 0, timeout: 5000,
    };
    if (cfg.transports) opts.transports = cfg.transports;
    const socket = io(cfg.url, opts);
    let run = null;
    let finished = false;

    const finish = () => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      report({ event: "result", result: out });
      resolve(out);
    };
    const timer = setTimeout(() => {
      out.timedOut = true;
      finish();
    }, cfg.timeoutMs || 60000);

    const startRun = () => {
      const index = out.runs.length;
      run = { connect: out.connects.length - 1, id: socket.id, received: [], duplicates: [], done: false, withOffset: 0 };
      out.runs.push(run);
      socket.emit("count", { n: cfg.n, interval_ms: cfg.intervalMs }, () => {
        report({ event: "counting", run: index, id: socket.id });
      });
    };

    socket.on("connect", () => {
      const c = { id: socket.id, recovered: socket.recovered, transport: socket.io.engine.transport.name, at: Date.now() - t0 };
      out.connects.push(c);
      report({ event: "connect", ...c });
      if (!run || !socket.recovered) startRun();
    });
    socket.on("disconnect", (reason) => {
      const d = { reason, at: Date.now() - t0 };
      out.disconnects.push(d);
      report({ event: "disconnect", ...d });
    });
    socket.on("connect_error", (err) => out.connectErrors.push(String(err && err.message || err)));

    socket.on("n", (...args) => {
      const data = args[0];
      const last = args[args.length - 1];
      if (typeof last === "function") {
        out.clientAcked.push(data.i);
        // An acknowledgement sent on a connection that then dropped may
        // be lost with it: the edge sends such an event again only when
        // no later event proves it arrived (docs/REFERENCE.md).
        if (out.disconnects.length === 0) out.ackedBeforeDrop.push(data.i);
        last("ok");
      } else if (typeof last === "string") {
        run.withOffset++;
      }
      if (data.bin !== undefined) {
        const bytes = data.bin instanceof ArrayBuffer ? new Uint8Array(data.bin) : data.bin;
        if (bytes.length !== 3 || !Array.from(bytes).every((b) => b === data.i % 256)) out.badBinary.push(data.i);
      }
      if (run.received.includes(data.i)) run.duplicates.push(data.i);
      run.received.push(data.i);
    });
    socket.on("count_done", () => {
      const current = run;
      current.done = true;
      // The acks of the stream went out before count_done came in, on the
      // same ordered connection, so the worker has them all by now.
      socket.timeout(5000).emit("count_acks", null, (err, acks) => {
        if (current !== run) return; // a new session started meanwhile
        out.workerAcks = err ? null : acks;
        finish();
      });
    });
  });
}
